/* `embargo report`: options, reading logs (the only user of zlib), parsing
 * their lines (with jansson, which only the JSON writer uses besides) into
 * the inventory, and choosing the writer. */
#include "proxy/report/report.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "filters/err.h"
#include "proxy/report/inventory.h"

#define EXIT_FAILED 1
#define EXIT_USAGE  2

/* Read buffer; a line longer than this is not a decision record (log.c
 * writes at most 16 KiB) and is counted malformed. */
#define READ_BUF (256 * 1024)

static const char report_usage[] =
    "Usage: embargo report [options] [LOG...]\n"
    "Reads decision logs (plain or .gz; standard input when none or \"-\" is given)\n"
    "and prints, per vendor, every client address that tried to reach it.\n"
    "\n"
    "  --since RFC3339      only lines at or after this time\n"
    "  --until RFC3339      only lines before this time\n"
    "  --vendor ID          only this vendor\n"
    "  --format FORMAT      table (default), csv, json or html\n"
    "  -c, --config FILE    also name the legal basis of this configuration's lists\n"
    "  --unmatched          instead, the names under each vendor's domains that no\n"
    "                       category matched, with their clients (see --unmatched --help)\n"
    "  -h, --help           this text\n";

/* ---- one line --------------------------------------------------------- */

enum line_kind { LINE_ATTEMPT, LINE_NO_VENDOR, LINE_MALFORMED };

static const struct {
  const char *key;
  size_t off;
} string_fields[] = {
    {"vendor", offsetof(struct inventory_fact, vendor)},
    {"client", offsetof(struct inventory_fact, client)},
    {"category", offsetof(struct inventory_fact, category)},
    {"host", offsetof(struct inventory_fact, host)},
    {"ja4", offsetof(struct inventory_fact, ja4)},
    {"user_agent", offsetof(struct inventory_fact, user_agent)},
};

/* The string under KEY into *OUT (NULL when absent or null); -1 when the
 * value is something else. */
static int get_string(const json_t *o, const char *key, const char **out) {
  const json_t *v = json_object_get(o, key);
  *out = NULL;
  if (v == NULL || json_is_null(v))
    return 0;
  if (!json_is_string(v))
    return -1;
  *out = json_string_value(v);
  return 0;
}

static int get_time(const json_t *o, const char *key, int64_t *out) {
  const char *s;
  if (get_string(o, key, &s) != 0 || s == NULL)
    return -1;
  return inventory_parse_time(s, strlen(s), out) == 0 ? 0 : -1;
}

static int get_sni(const json_t *o, struct inventory_fact *f) {
  const json_t *a = json_object_get(o, "sni"), *v;
  size_t i;
  if (a == NULL || json_is_null(a))
    return 0;
  if (!json_is_array(a))
    return -1;
  json_array_foreach(a, i, v) {
    if (!json_is_string(v))
      return -1;
    if (f->nsni < INVENTORY_FACT_SNI_MAX)
      f->sni[f->nsni++] = json_string_value(v);
  }
  return 0;
}

/* Reads the fields of a decision record into F (borrowing O's strings). */
static enum line_kind fact_from_json(const json_t *o, struct inventory_fact *f) {
  const char *cutoff, *event;
  const json_t *after;
  size_t i;

  memset(f, 0, sizeof(*f));
  f->cutoff_ms = INVENTORY_TIME_NONE;
  f->after_cutoff = -1;
  if (!json_is_object(o))
    return LINE_MALFORMED;
  for (i = 0; i < sizeof(string_fields) / sizeof(string_fields[0]); i++)
    if (get_string(o, string_fields[i].key, (const char **)((char *)f + string_fields[i].off)) != 0)
      return LINE_MALFORMED;
  if (f->vendor == NULL || f->vendor[0] == '\0')
    return LINE_NO_VENDOR;
  if (get_time(o, "time", &f->time_ms) != 0 || get_sni(o, f) != 0 ||
      get_string(o, "cutoff", &cutoff) != 0)
    return LINE_MALFORMED;
  if (cutoff != NULL && inventory_parse_time(cutoff, strlen(cutoff), &f->cutoff_ms) != 0)
    return LINE_MALFORMED;
  if (get_string(o, "event", &event) != 0)
    return LINE_MALFORMED;
  f->denied = event != NULL && strcmp(event, "deny") == 0;
  if ((after = json_object_get(o, "after_cutoff")) != NULL) {
    if (!json_is_boolean(after))
      return LINE_MALFORMED;
    f->after_cutoff = json_is_true(after);
  }
  return LINE_ATTEMPT;
}

int report_add_line(struct inventory *inv, const char *line, size_t len) {
  struct inventory_fact f;
  json_error_t jerr;
  json_t *o;
  int rc = 0;

  inv->counts.lines++;
  if (len > 0 && line[len - 1] == '\r')
    len--;
  /* A \u0000 a peer sent must not hide the line: its value is cut there. */
  o = json_loadb(line, len, JSON_ALLOW_NUL, &jerr);
  switch (o != NULL ? fact_from_json(o, &f) : LINE_MALFORMED) {
  case LINE_MALFORMED: inv->counts.malformed++; break;
  case LINE_NO_VENDOR:
    inv->counts.no_vendor++;
    if (inv->also != NULL && f.host != NULL) {
      if (get_time(o, "time", &f.time_ms) != 0)
        f.time_ms = 0;
      rc = inv->also(inv->also_arg, &f);
    }
    break;
  case LINE_ATTEMPT:
    rc = inventory_add(inv, &f) < 0 ? -ENOMEM : 0;
    if (rc == 0 && inv->also != NULL && f.host != NULL)
      rc = inv->also(inv->also_arg, &f);
    break;
  }
  json_decref(o);
  return rc;
}

/* ---- one log ---------------------------------------------------------- */

/* Feeds the complete lines of BUF[0..*HAVE) to INV and keeps the partial
 * last one at the start of BUF. *SKIPPING: the rest of an overlong line is
 * being skipped. */
static int feed_lines(struct inventory *inv, char *buf, size_t *have, bool *skipping) {
  char *p = buf, *end = buf + *have, *nl;
  int rc = 0;

  while (rc == 0 && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
    if (!*skipping)
      rc = report_add_line(inv, p, (size_t)(nl - p));
    *skipping = false;
    p = nl + 1;
  }
  *have = (size_t)(end - p);
  memmove(buf, p, *have);
  if (*have == READ_BUF) { /* a line longer than the buffer: count it once, skip the rest */
    if (!*skipping) {
      inv->counts.lines++;
      inv->counts.malformed++;
    }
    *skipping = true;
    *have = 0;
  }
  return rc;
}

static const char *gz_reason(gzFile gz) {
  int errnum = Z_OK;
  const char *msg = gzerror(gz, &errnum);
  if (errnum == Z_ERRNO)
    return strerror(errno);
  if (errnum == Z_OK)
    return NULL;
  return errnum == Z_BUF_ERROR ? "truncated gzip data" : msg;
}

/* Reads every line of GZ into INV. Returns 0, -ENOMEM, or -EIO with the
 * reason in *WHY. */
static int read_stream(struct inventory *inv, gzFile gz, char *buf, const char **why) {
  size_t have = 0;
  bool skipping = false;
  int n, rc = 0;

  gzbuffer(gz, 128 * 1024);
  while (rc == 0 && (n = gzread(gz, buf + have, (unsigned)(READ_BUF - have))) > 0) {
    have += (size_t)n;
    rc = feed_lines(inv, buf, &have, &skipping);
  }
  if (rc == 0 && have > 0 && !skipping) /* a last line without its newline */
    rc = report_add_line(inv, buf, have);
  if (rc == 0 && (*why = gz_reason(gz)) != NULL)
    rc = -EIO;
  return rc;
}

/* Reads the log at PATH ("-": standard input). Returns 0, -ENOMEM or -EIO
 * (already reported on stderr). */
static int read_log(struct inventory *inv, const char *path, char *buf) {
  bool std_in = strcmp(path, "-") == 0;
  const char *why = NULL;
  gzFile gz;
  int fd, rc;

  fd = std_in ? dup(STDIN_FILENO) : open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || (gz = gzdopen(fd, "rb")) == NULL) {
    why = strerror(errno);
    if (fd >= 0)
      close(fd);
    fprintf(stderr, "embargo: report: %s: %s\n", std_in ? "standard input" : path, why);
    return -EIO;
  }
  rc = read_stream(inv, gz, buf, &why);
  if (rc == -EIO)
    fprintf(stderr, "embargo: report: %s: %s\n", std_in ? "standard input" : path, why);
  gzclose(gz);
  return rc;
}

/* ---- the command ------------------------------------------------------ */

typedef int (*report_writer)(const struct inventory *, const struct report_meta *, FILE *);

static const struct {
  const char *name;
  report_writer write;
} formats[] = {
    {"table", report_write_table},
    {"csv", report_write_csv},
    {"json", report_write_json},
    {"html", report_write_html},
};

struct report_opts {
  struct inventory_filter filter;
  report_writer write;
};

static int usage_error(const char *what, const char *arg) {
  fprintf(stderr, "embargo: report: %s \"%s\"\n\n%s", what, arg, report_usage);
  return EXIT_USAGE;
}

static int parse_format(const char *name, report_writer *out) {
  size_t i;
  for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
    if (strcmp(formats[i].name, name) == 0) {
      *out = formats[i].write;
      return 0;
    }
  return usage_error("--format: expected table, csv, json or html, got", name);
}

static int parse_opts(int argc, char **argv, struct report_opts *o) {
  static char prog[] = "embargo report";
  static const struct option longopts[] = {
      {"since", required_argument, NULL, 's'},  {"until", required_argument, NULL, 'u'},
      {"vendor", required_argument, NULL, 'V'}, {"format", required_argument, NULL, 'f'},
      {"help", no_argument, NULL, 'h'},         {"config", required_argument, NULL, 'c'},
      {NULL, 0, NULL, 0}};
  int ch;

  o->filter = (struct inventory_filter){INVENTORY_TIME_NONE, INVENTORY_TIME_NONE, NULL};
  o->write = report_write_table;
  argv[0] = prog; /* getopt's own messages name it */
  optind = 0;     /* a new argument vector: reinitialise getopt */
  while ((ch = getopt_long(argc, argv, "hc:", longopts, NULL)) != -1) {
    switch (ch) {
    case 's':
    case 'u':
      if (inventory_parse_time(optarg, strlen(optarg),
                               ch == 's' ? &o->filter.since_ms : &o->filter.until_ms) != 0)
        return usage_error(ch == 's' ? "--since: expected an RFC 3339 time, got"
                                     : "--until: expected an RFC 3339 time, got",
                           optarg);
      break;
    case 'V': o->filter.vendor = optarg; break;
    case 'c': break; /* read by the caller: the lists whose legal basis is named */
    case 'f':
      if (parse_format(optarg, &o->write) != 0)
        return EXIT_USAGE;
      break;
    case 'h': fputs(report_usage, stdout); return -1;
    default: fprintf(stderr, "\n%s", report_usage); return EXIT_USAGE;
    }
  }
  return 0;
}

static uint64_t random_seed(void) {
  uint64_t seed;
  if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
    seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
  return seed;
}

static void print_summary(const struct inventory_counts *c) {
  fprintf(stderr,
          "embargo: report: %llu lines read, %llu attempts counted, %llu left out by "
          "--since/--until/--vendor, %llu without a vendor, %llu malformed lines skipped\n",
          (unsigned long long)c->lines, (unsigned long long)(c->attempts),
          (unsigned long long)c->outside, (unsigned long long)c->no_vendor,
          (unsigned long long)c->malformed);
}

int report_read_logs(struct inventory *inv, const char *const *inputs, size_t n) {
  char *buf = malloc(READ_BUF);
  int rc = 0;
  size_t i;

  if (buf == NULL)
    return -ENOMEM;
  for (i = 0; i < n && rc != -ENOMEM; i++) {
    int r = read_log(inv, inputs[i], buf);
    if (r != 0)
      rc = r;
  }
  free(buf);
  return rc;
}

int report_main(int argc, char **argv, const struct report_vendor_info *vendors,
                size_t nvendors) {
  static const char *const std_in[] = {"-"};
  struct report_opts o;
  struct inventory inv;
  struct report_meta meta = {.vendors = vendors, .nvendors = nvendors};
  struct timespec ts;
  int rc, status = 0;

  if ((rc = parse_opts(argc, argv, &o)) != 0)
    return rc < 0 ? 0 : rc;
  clock_gettime(CLOCK_REALTIME, &ts);
  meta.generated_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  meta.inputs = optind < argc ? (const char *const *)argv + optind : std_in;
  meta.ninputs = optind < argc ? (size_t)(argc - optind) : 1;
  inventory_init(&inv, &o.filter, random_seed());
  rc = report_read_logs(&inv, meta.inputs, meta.ninputs);
  if (rc == -ENOMEM) {
    fprintf(stderr, "embargo: report: out of memory\n");
    status = EXIT_FAILED;
    goto cleanup;
  }
  if (rc != 0)
    status = EXIT_FAILED;
  if ((rc = o.write(&inv, &meta, stdout)) != 0 || (rc = fflush(stdout) ? -errno : 0) != 0) {
    fprintf(stderr, "embargo: report: cannot write the report: %s\n", err_str(rc));
    status = EXIT_FAILED;
  }
  print_summary(&inv.counts);
cleanup:
  inventory_free(&inv);
  return status;
}
