/* Unit tests for log_json_escape (proxy/log.c): the escaper every peer
 * string of the decision log goes through. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "proxy/base/log.h"

#define CANARY 0x5a
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Escapes IN (LEN bytes, at most MAXIN) into a SIZE-byte window of a larger,
 * canary-filled buffer starting at POS; checks nothing outside the window
 * was written and that the result is NUL-terminated inside it. Returns the
 * result in OUT (at most OUTSIZE bytes). */
static size_t escape_checked(const char *in, size_t len, size_t maxin, size_t pos, size_t size,
                             char *out, size_t outsize) {
  unsigned char arena[4096 + 64];
  unsigned char *buf = arena + 32;
  size_t ret, i;

  cr_assert(size + 64 <= sizeof(arena));
  memset(arena, CANARY, sizeof(arena));
  memset(buf, 'p', pos < size ? pos : size); /* what came before in the line */
  ret = log_json_escape((char *)buf, pos, size, in, len, maxin);
  for (i = 0; i < 32; i++)
    cr_assert_eq(arena[i], CANARY, "byte %zu before the buffer was written", i);
  for (i = size; i < size + 32; i++)
    cr_assert_eq(buf[i], CANARY, "byte %zu past SIZE %zu was written", i, size);
  if (size > 0) {
    cr_assert(memchr(buf, '\0', size) != NULL, "not NUL-terminated within SIZE");
    cr_assert(ret < size, "returned length %zu does not leave room for the NUL", ret);
    cr_assert_eq(buf[ret], '\0');
  }
  out[0] = '\0';
  if (size > 0 && pos < size)
    memcpy(out, buf + pos, strnlen((const char *)buf + pos, outsize - 1) + 1);
  out[outsize - 1] = '\0';
  return ret;
}

struct esc_case {
  const char *in;
  size_t len;
  const char *want;
};

Test(log_escape, escapes_every_byte_json_needs) {
  static const struct esc_case cases[] = {
      {"plain.example.org", 17, "plain.example.org"},
      {"", 0, ""},
      {"a\"b", 3, "a\\\"b"},
      {"a\\b", 3, "a\\\\b"},
      {"\r\n\t", 3, "\\u000d\\u000a\\u0009"},
      {"\x00x", 2, "\\u0000x"},
      {"\x1f\x20\x7e\x7f", 4, "\\u001f ~\\u007f"},
      {"b\xc3\xbc" "cher", 7, "b\\u00c3\\u00bccher"},
      {"\xff\x80", 2, "\\u00ff\\u0080"},
      {"</script>", 9, "</script>"},
      {"{\"k\":1}", 7, "{\\\"k\\\":1}"},
  };
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    char out[512];
    size_t ret = escape_checked(cases[i].in, cases[i].len, 512, 0, 512, out, sizeof(out));
    cr_expect_str_eq(out, cases[i].want, "case %zu", i);
    cr_expect_eq(ret, strlen(cases[i].want), "case %zu", i);
  }
}

Test(log_escape, appends_after_what_the_line_holds) {
  char out[64];
  size_t ret = escape_checked("x\"", 2, 64, 10, 64, out, sizeof(out));
  cr_expect_str_eq(out, "x\\\"");
  cr_expect_eq(ret, 13);
}

Test(log_escape, marks_input_cut_at_maxin_with_dots) {
  char out[64];
  size_t ret = escape_checked("abcdefgh", 8, 5, 0, 64, out, sizeof(out));
  cr_expect_str_eq(out, "abcde...");
  cr_expect_eq(ret, 8);
  /* Exactly MAXIN bytes are not a truncation. */
  escape_checked("abcde", 5, 5, 0, 64, out, sizeof(out));
  cr_expect_str_eq(out, "abcde");
  /* The cut counts input bytes, not escaped output. */
  escape_checked("\n\n\n\n", 4, 2, 0, 64, out, sizeof(out));
  cr_expect_str_eq(out, "\\u000a\\u000a...");
}

Test(log_escape, never_splits_an_escape_when_room_runs_out) {
  static const char in[] = "\x01\x02\x03\x04\x05\x06\x07\x08";
  for (size_t size = 1; size <= 60; size++) {
    char out[128];
    escape_checked(in, sizeof(in) - 1, 64, 0, size, out, sizeof(out));
    size_t n = strlen(out);
    cr_expect_eq(n % 6, 0, "size %zu: output \"%s\" ends inside an escape", size, out);
    cr_expect(strncmp(out, "\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\u0008", n) == 0,
              "size %zu: \"%s\" is not a prefix of the whole escape", size, out);
  }
}

Test(log_escape, never_writes_past_a_small_buffer) {
  static const char in[] = "\"\\\"\\\"\\\xff\xfe\x00 quoted";
  for (size_t size = 1; size <= 40; size++)
    for (size_t maxin = 0; maxin <= sizeof(in); maxin += 3) {
      char out[128];
      escape_checked(in, sizeof(in) - 1, maxin, 0, size, out, sizeof(out));
    }
}

Test(log_escape, writes_nothing_with_no_room) {
  char out[8];
  /* POS at the end of the buffer already: nothing appended, still terminated. */
  size_t ret = escape_checked("abc", 3, 64, 15, 16, out, sizeof(out));
  cr_expect_eq(ret, 15);
  cr_expect_str_eq(out, "");
  /* A zero-sized buffer is never touched. */
  escape_checked("abc", 3, 64, 0, 0, out, sizeof(out));
}

Test(log_escape, escaped_output_is_json_for_every_byte) {
  /* All 256 byte values, one each: the output holds only printable ASCII,
   * every quote and backslash escaped. */
  char in[256], out[2048];
  unsigned char arena[2048];
  size_t i;
  for (i = 0; i < 256; i++)
    in[i] = (char)i;
  size_t ret = log_json_escape((char *)arena, 0, sizeof(arena), in, 256, 256);
  cr_assert(ret < sizeof(arena));
  memcpy(out, arena, ret + 1);
  for (i = 0; i < ret; i++) {
    unsigned char c = (unsigned char)out[i];
    cr_assert(c >= 0x20 && c < 0x7f, "byte 0x%02x at %zu", c, i);
    if (c == '"')
      cr_assert(i > 0 && out[i - 1] == '\\', "bare quote at %zu", i);
  }
}
