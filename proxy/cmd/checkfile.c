/* `embargo check --file FILE` and `--format`: many destinations at once (a
 * DNS log, a list of URLs), one verdict line each, as text, CSV or JSON
 * Lines. Each line is judged by check_judge, the proxy's own decision. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "filters/err.h"
#include "filters/policy.h"
#include "filters/timefmt.h"
#include "proxy/cmd/check.h"
#include "proxy/decide/destcheck.h"
#include "proxy/base/log.h"

#define LINE_MAX_BYTES 4096 /* a longer input line is refused, not judged in part */

/* The columns of a row, in output order. */
enum column {
  COL_INPUT,
  COL_DESTINATION,
  COL_VERDICT,
  COL_VENDOR,
  COL_CATEGORY,
  COL_MATCHED_ON,
  COL_MATCHED,
  COL_PATTERN,
  COL_RULE,
  COL_CUTOFF,
  COL_AFTER_CUTOFF,
  COL_SET_BY,
  COL_PRESET,
  COL_OVERRIDE,
  COL_OPTION,
  COL_REFUSED,
  COL_DNS,
  COL_ERROR,
  NCOLUMNS
};

static const char *const columns[NCOLUMNS] = {[COL_INPUT] = "input",
                                              [COL_DESTINATION] = "destination",
                                              [COL_VERDICT] = "verdict",
                                              [COL_VENDOR] = "vendor",
                                              [COL_CATEGORY] = "category",
                                              [COL_MATCHED_ON] = "matched_on",
                                              [COL_MATCHED] = "matched",
                                              [COL_PATTERN] = "pattern",
                                              [COL_RULE] = "rule",
                                              [COL_CUTOFF] = "cutoff",
                                              [COL_AFTER_CUTOFF] = "after_cutoff",
                                              [COL_SET_BY] = "set_by",
                                              [COL_PRESET] = "preset",
                                              [COL_OVERRIDE] = "override",
                                              [COL_OPTION] = "option",
                                              [COL_REFUSED] = "refused",
                                              [COL_DNS] = "dns",
                                              [COL_ERROR] = "error"};

/* One output row: every field a string, "" when it does not apply. */
struct row {
  const char *f[NCOLUMNS];
};

static void row_init(struct row *r) {
  for (size_t i = 0; i < NCOLUMNS; i++)
    r->f[i] = "";
}

/* ---- writers ---------------------------------------------------------------- */

/* A CSV cell (RFC 4180); a cell starting with '=', '+', '-' or '@' gets a
 * leading "'" so that a spreadsheet shows a hostile name instead of running
 * it as a formula. */
static void csv_cell(const char *s, FILE *out) {
  bool defuse = s[0] != '\0' && strchr("=+-@\t\r", s[0]) != NULL;
  bool quote = strpbrk(s, ",\"\r\n") != NULL;
  if (quote) /* the quote opens the field: the defusing "'" goes inside it */
    fputc('"', out);
  if (defuse)
    fputc('\'', out);
  for (; *s != '\0'; s++) {
    if (*s == '"')
      fputc('"', out);
    fputc(*s, out);
  }
  if (quote)
    fputc('"', out);
}

static void write_csv(const char *const *cells, FILE *out) {
  for (size_t i = 0; i < NCOLUMNS; i++) {
    if (i > 0)
      fputc(',', out);
    csv_cell(cells[i], out);
  }
  fputs("\r\n", out);
}

/* JSON Lines: the fields that apply, strings escaped as the decision log's. */
static void write_json(const struct row *r, FILE *out) {
  char buf[3 * LINE_MAX_BYTES];
  bool first = true;
  fputc('{', out);
  for (size_t i = 0; i < NCOLUMNS; i++) {
    const char *v = r->f[i];
    if (v[0] == '\0' && i > COL_VERDICT)
      continue;
    log_json_escape(buf, 0, sizeof(buf), v, strlen(v), LINE_MAX_BYTES);
    if (i == COL_AFTER_CUTOFF)
      fprintf(out, "%s\"%s\":%s", first ? "" : ",", columns[i], v);
    else
      fprintf(out, "%s\"%s\":\"%s\"", first ? "" : ",", columns[i], buf);
    first = false;
  }
  fputs("}\n", out);
}

/* S with control bytes shown as '?': a hostile log line must not drive the
 * terminal. */
static void put_safe(const char *s, FILE *out) {
  for (; *s != '\0'; s++)
    fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, out);
}

/* "INPUT: VERDICT vendor/category (matched_on matched), set by ..." */
static void write_text(const struct row *r, FILE *out) {
  const char *const *f = r->f;
  char verdict[16];
  size_t i;
  for (i = 0; f[COL_VERDICT][i] != '\0' && i + 1 < sizeof(verdict); i++)
    verdict[i] = (char)(f[COL_VERDICT][i] - ('a' - 'A'));
  verdict[i] = '\0';
  put_safe(f[COL_INPUT], out);
  fprintf(out, ": %s", verdict);
  if (f[COL_VENDOR][0] != '\0')
    fprintf(out, " %s/%s (%s %s), set by %s%s%s%s%s", f[COL_VENDOR], f[COL_CATEGORY],
            f[COL_MATCHED_ON], f[COL_MATCHED], f[COL_SET_BY], f[COL_PRESET][0] ? " " : "",
            f[COL_PRESET], f[COL_OVERRIDE][0] ? " at " : "", f[COL_OVERRIDE]);
  if (f[COL_OPTION][0] != '\0')
    fprintf(out, " (decided by %s)", f[COL_OPTION]);
  if (f[COL_REFUSED][0] != '\0')
    fprintf(out, " (refused: %s)", f[COL_REFUSED]);
  if (f[COL_DNS][0] != '\0' && strcmp(f[COL_DNS], "ok") != 0)
    fprintf(out, " (unreachable: %s)", f[COL_DNS]);
  if (f[COL_ERROR][0] != '\0')
    fprintf(out, " (%s)", f[COL_ERROR]);
  fputc('\n', out);
}

static void write_row(const struct row *r, enum check_format f, FILE *out) {
  if (f == CHECK_FORMAT_CSV)
    write_csv(r->f, out);
  else if (f == CHECK_FORMAT_JSON)
    write_json(r, out);
  else
    write_text(r, out);
}

/* ---- one destination ------------------------------------------------------------- */

/* Text kept for a row's fields. */
struct row_text {
  char dest[HOST_NAME_MAX_LEN + LINE_MAX_BYTES + 32];
  char rule[600], cutoff[32], override[600];
};

/* Fills R from a judged destination. */
static void fill_row(const struct check_dest *d, const struct check_result *res, enum dns_status st,
                     struct row *r, struct row_text *t) {
  const struct verdict *v = &res->j.verdict;
  const char **f = r->f;
  bool v6 = d->host.kind == HOST_IPV6;
  snprintf(t->dest, sizeof(t->dest), "%s%s%s%s:%u%.*s", d->http ? "http://" : "", v6 ? "[" : "",
           d->host.name, v6 ? "]" : "", d->host.port, d->http ? (int)d->path_len : 0,
           d->path ? d->path : "");
  f[COL_DESTINATION] = t->dest;
  f[COL_VERDICT] = judge_denies(&res->j) ? "deny" : action_name(v->action);
  if (res->j.refusal != JUDGE_PASS)
    f[COL_REFUSED] = res->j.detail;
  if (res->j.option != NULL)
    f[COL_OPTION] = res->j.option;
  f[COL_DNS] = st != DNS_OK ? dns_status_name(st) : res->resolved ? "ok" : "";
  if (v->rule == NULL)
    return;
  const struct rule *rl = v->rule;
  const struct category *c = rl->category;
  f[COL_VENDOR] = rl->vendor->id;
  f[COL_CATEGORY] = c->name;
  f[COL_MATCHED_ON] = match_on_name(v->on);
  f[COL_MATCHED] = v->matched;
  f[COL_PATTERN] = rl->pattern;
  snprintf(t->rule, sizeof(t->rule), "%s:%u:%u", rl->where.file, rl->where.line, rl->where.col);
  f[COL_RULE] = t->rule;
  if (c->cutoff != POLICY_TIME_NEVER) {
    rfc3339_format(c->cutoff, t->cutoff, sizeof(t->cutoff));
    f[COL_CUTOFF] = t->cutoff;
  }
  f[COL_AFTER_CUTOFF] = v->after_cutoff ? "true" : "false";
  f[COL_SET_BY] = action_from_name(v->from);
  const struct category_scope a = verdict_actions(v);
  if (v->from == ACTION_FROM_PRESET)
    f[COL_PRESET] = a.preset;
  if (v->from == ACTION_FROM_OVERRIDE) {
    snprintf(t->override, sizeof(t->override), "%s:%u:%u", a.override_where.file,
             a.override_where.line, a.override_where.col);
    f[COL_OVERRIDE] = t->override;
  }
}

/* Judges TEXT (LEN bytes, NUL-terminated) and prints its row. Returns the
 * exit status it asks for: 0 allowed, 1 denied or unreachable, 2 invalid. */
static int batch_one(const struct config *cfg, struct destcheck *dc, const struct check_opts *o,
                     const char *text, size_t len, const char *why_invalid) {
  struct check_result res;
  struct row_text t;
  struct check_dest d;
  struct row r;
  int err = why_invalid != NULL ? EMB_EBADURL : check_parse_dest(text, len, &d);

  row_init(&r);
  r.f[COL_INPUT] = text;
  if (err != 0) {
    r.f[COL_VERDICT] = "invalid";
    r.f[COL_ERROR] = why_invalid != NULL ? why_invalid : err_str(err);
    write_row(&r, o->format, stdout);
    return 2;
  }
  enum dns_status st = check_judge(cfg, dc, o, &d, &res);
  fill_row(&d, &res, st, &r, &t);
  write_row(&r, o->format, stdout);
  return judge_denies(&res.j) || st != DNS_OK ? 1 : 0;
}

/* ---- input ------------------------------------------------------------------ */

/* Reads one line of F into BUF (at most LINE_MAX_BYTES, NUL-terminated, white
 * space around it trimmed). Returns its length, or -1 at the end of F.
 * *WHY: NULL, or why the line cannot be judged (too long, a NUL byte). */
static long read_line(FILE *f, char *buf, const char **why) {
  size_t n = 0;
  int ch, got = 0;
  *why = NULL;
  while ((ch = getc(f)) != EOF) {
    got = 1;
    if (ch == '\n')
      break;
    if (ch == '\0')
      *why = "a NUL byte in the line";
    if (n < LINE_MAX_BYTES)
      buf[n++] = (char)ch;
    else
      *why = "line longer than 4096 bytes";
  }
  if (!got)
    return -1;
  while (n > 0 && strchr(" \t\r", buf[n - 1]) != NULL)
    n--;
  buf[n] = '\0';
  size_t skip = strspn(buf, " \t");
  memmove(buf, buf + skip, n - skip + 1);
  return (long)(n - skip);
}

static int batch_file(const struct config *cfg, struct destcheck *dc, const struct check_opts *o,
                      FILE *f) {
  static char line[LINE_MAX_BYTES + 1];
  const char *why;
  long len;
  int status = 0, rc;
  while ((len = read_line(f, line, &why)) >= 0) {
    if (why == NULL && (len == 0 || line[0] == '#'))
      continue;
    rc = batch_one(cfg, dc, o, line, (size_t)len, why);
    status = rc > status ? rc : status;
  }
  return status;
}

int check_batch(const struct config *cfg, const struct check_opts *o, const char *path, int ndests,
                char *const *dests) {
  struct destcheck dc;
  FILE *f = NULL;
  int status = 0, rc;

  if (path != NULL && strcmp(path, "-") != 0 && (f = fopen(path, "r")) == NULL) {
    fprintf(stderr, "embargo: check: --file %s: %s\n", path, strerror(errno));
    return 2;
  }
  if (check_destcheck_init(cfg, &dc) != 0) {
    if (f != NULL)
      fclose(f);
    return 2;
  }
  if (o->format == CHECK_FORMAT_CSV)
    write_csv(columns, stdout);
  for (int i = 0; i < ndests; i++) {
    rc = batch_one(cfg, &dc, o, dests[i], strlen(dests[i]), NULL);
    status = rc > status ? rc : status;
  }
  if (path != NULL) {
    rc = batch_file(cfg, &dc, o, f != NULL ? f : stdin);
    status = rc > status ? rc : status;
  }
  if (f != NULL)
    fclose(f);
  destcheck_free(&dc);
  if (fflush(stdout) != 0) {
    fprintf(stderr, "embargo: check: cannot write: %s\n", strerror(errno));
    return 2;
  }
  return status;
}
