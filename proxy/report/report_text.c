/* `embargo report` writers for the terminal table, CSV and JSON. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proxy/report/inventory.h"
#include "proxy/report/report.h"

/* ---- JSON strings ------------------------------------------------------ */

void report_put_json_string(FILE *out, const char *s) {
  json_t *j = json_string(s);
  if (j == NULL) /* not UTF-8: cannot happen for strings jansson decoded */
    j = json_string("?");
  json_dumpf(j, out, JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
  json_decref(j);
}

/* ---- a growable string ------------------------------------------------ */

struct sbuf {
  char *p; /* owned */
  size_t len, cap;
  bool oom;
};

static bool sb_reserve(struct sbuf *b, size_t more) {
  size_t cap = b->cap ? b->cap : 256;
  char *p;
  if (b->oom)
    return false;
  while (cap < b->len + more + 1)
    cap *= 2;
  if (cap == b->cap)
    return true;
  if ((p = realloc(b->p, cap)) == NULL) {
    b->oom = true;
    return false;
  }
  b->p = p;
  b->cap = cap;
  return true;
}

__attribute__((format(printf, 2, 3))) static void sb_printf(struct sbuf *b, const char *fmt, ...) {
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || !sb_reserve(b, (size_t)n))
    return;
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* Appends S with what a terminal could act on (C0 and C1 controls, DEL)
 * replaced by '?'. */
static void sb_clean(struct sbuf *b, const char *s) {
  size_t i;
  if (!sb_reserve(b, strlen(s)))
    return;
  for (i = 0; s[i] != '\0'; i++) {
    unsigned char c = (unsigned char)s[i];
    bool c1 = c == 0xC2 && (unsigned char)s[i + 1] >= 0x80 && (unsigned char)s[i + 1] <= 0x9F;
    if (c1)
      i++; /* U+0080..U+009F: two bytes become one '?' */
    b->p[b->len++] = (c < 0x20 || c == 0x7F || c1) ? '?' : (char)c;
  }
  b->p[b->len] = '\0';
}

static void sb_reset(struct sbuf *b) {
  b->len = 0;
  if (sb_reserve(b, 0))
    b->p[0] = '\0';
}

/* How list cells are written: separator, and the text of an empty list. */
struct list_style {
  const char *sep, *empty;
};

static const struct list_style table_style = {", ", "-"}, csv_style = {" | ", ""};

/* The values of S joined, "+N more" when some were not kept. */
static void sb_list(struct sbuf *b, const struct inventory_set *s, const struct list_style *st) {
  uint32_t i;
  for (i = 0; i < s->n; i++) {
    if (i > 0)
      sb_printf(b, "%s", st->sep);
    sb_clean(b, s->items[i]);
  }
  if (s->not_kept > 0)
    sb_printf(b, "%s+%llu more", s->n ? st->sep : "", (unsigned long long)s->not_kept);
  if (s->n == 0 && s->not_kept == 0)
    sb_printf(b, "%s", st->empty);
}

static void sb_categories(struct sbuf *b, const struct inventory_client *c,
                          const struct list_style *st) {
  uint32_t i;
  for (i = 0; i < c->ncats; i++) {
    if (i > 0)
      sb_printf(b, "%s", st->sep);
    sb_clean(b, c->cats[i].name);
    sb_printf(b, " %llu (%llu after cutoff)", (unsigned long long)c->cats[i].attempts,
              (unsigned long long)c->cats[i].after_cutoff);
  }
  if (c->cats_not_kept > 0)
    sb_printf(b, "%s+%llu more", c->ncats ? st->sep : "", (unsigned long long)c->cats_not_kept);
  if (c->ncats == 0 && c->cats_not_kept == 0)
    sb_printf(b, "%s", st->empty);
}

/* ---- rows ------------------------------------------------------------- */

typedef int (*row_fn)(const struct inventory_vendor *v, const struct inventory_client *c,
                      void *ctx);

/* Calls FN for every client of every vendor, in report order. Returns 0,
 * FN's first non-zero result, or -ENOMEM. */
static int each_row(const struct inventory *inv, row_fn fn, void *ctx) {
  struct inventory_vendor **vs = NULL;
  struct inventory_client **cs = NULL;
  size_t nv, nc, i, k;
  int rc = 0;

  vs = inventory_vendors(inv, &nv);
  if (nv == SIZE_MAX)
    return -ENOMEM;
  for (i = 0; i < nv && rc == 0; i++) {
    cs = inventory_clients(vs[i], &nc);
    if (nc == SIZE_MAX) {
      rc = -ENOMEM;
      break;
    }
    for (k = 0; k < nc && rc == 0; k++)
      rc = fn(vs[i], cs[k], ctx);
    free(cs);
  }
  free(vs);
  return rc;
}

enum column {
  COL_VENDOR,
  COL_CLIENT,
  COL_FIRST,
  COL_LAST,
  COL_ATTEMPTS,
  COL_AFTER,
  COL_CATEGORIES,
  COL_DESTINATIONS,
  COL_JA4,
  COL_AGENTS,
  NCOLUMNS
};

static const struct {
  const char *title; /* table heading */
  const char *csv;   /* CSV heading */
  bool number;       /* right-aligned in the table */
} columns[NCOLUMNS] = {
    {"VENDOR", "vendor", false},
    {"CLIENT", "client", false},
    {"FIRST SEEN", "first_seen", false},
    {"LAST SEEN", "last_seen", false},
    {"ATTEMPTS", "attempts", true},
    {"AFTER CUTOFF", "after_cutoff", true},
    {"CATEGORIES", "categories", false},
    {"DESTINATIONS", "destinations", false},
    {"JA4", "ja4", false},
    {"USER AGENTS", "user_agents", false},
};

/* The text of column COL for client C of vendor V into B. */
static void cell(struct sbuf *b, enum column col, const struct inventory_vendor *v,
                 const struct inventory_client *c, const struct list_style *st) {
  char t[40];
  sb_reset(b);
  switch (col) {
  case COL_VENDOR: sb_clean(b, v->id); break;
  case COL_CLIENT: sb_clean(b, c->addr); break;
  case COL_FIRST: sb_printf(b, "%s", inventory_format_time(c->first_ms, t, sizeof(t))); break;
  case COL_LAST: sb_printf(b, "%s", inventory_format_time(c->last_ms, t, sizeof(t))); break;
  case COL_ATTEMPTS: sb_printf(b, "%llu", (unsigned long long)c->attempts); break;
  case COL_AFTER: sb_printf(b, "%llu", (unsigned long long)c->after_cutoff); break;
  case COL_CATEGORIES: sb_categories(b, c, st); break;
  case COL_DESTINATIONS: sb_list(b, &c->destinations, st); break;
  case COL_JA4: sb_list(b, &c->ja4, st); break;
  case COL_AGENTS: sb_list(b, &c->agents, st); break;
  case NCOLUMNS: break;
  }
}

/* Terminal columns S takes: one per UTF-8 character. */
static size_t display_width(const char *s) {
  size_t w = 0;
  for (; *s != '\0'; s++)
    w += ((unsigned char)*s & 0xC0) != 0x80;
  return w;
}

/* ---- table ------------------------------------------------------------ */

struct table {
  struct sbuf cell;
  size_t width[NCOLUMNS];
  FILE *out; /* NULL: measuring */
};

static void table_put(struct table *t, enum column col, const char *text) {
  size_t w = display_width(text), pad = t->width[col] > w ? t->width[col] - w : 0;
  if (t->out == NULL) {
    if (w > t->width[col])
      t->width[col] = w;
    return;
  }
  if (columns[col].number)
    fprintf(t->out, "%*s%s", (int)pad, "", text);
  else if (col + 1 < NCOLUMNS)
    fprintf(t->out, "%s%*s", text, (int)pad, "");
  else
    fputs(text, t->out);
  fputs(col + 1 < NCOLUMNS ? "  " : "\n", t->out);
}

static int table_row(const struct inventory_vendor *v, const struct inventory_client *c,
                     void *ctx) {
  struct table *t = ctx;
  int col;
  for (col = 0; col < NCOLUMNS; col++) {
    cell(&t->cell, col, v, c, &table_style);
    if (t->cell.oom)
      return -ENOMEM;
    table_put(t, col, t->cell.p);
  }
  return 0;
}

void report_put_clean(FILE *out, const char *s) {
  for (; *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;
    bool c1 = c == 0xC2 && (unsigned char)s[1] >= 0x80 && (unsigned char)s[1] <= 0x9F;
    if (c1)
      s++; /* U+0080..U+009F: two bytes become one '?' */
    fputc(c < 0x20 || c == 0x7F || c1 ? '?' : c, out);
  }
}

/* The per-vendor totals, legal basis and categories below the table. */
static void vendor_summary(const struct inventory_vendor *v, const struct report_meta *m,
                           FILE *out) {
  const struct report_vendor_info *info = report_vendor_info(m, v->id);
  char a[40], b[40];
  uint32_t i;

  report_put_clean(out, v->id);
  fprintf(out, ": %zu client%s, %llu attempts, %llu after cutoff, %s to %s\n",
          inventory_client_count(v), inventory_client_count(v) == 1 ? "" : "s",
          (unsigned long long)v->attempts, (unsigned long long)v->after_cutoff,
          inventory_format_time(v->first_ms, a, sizeof(a)),
          inventory_format_time(v->last_ms, b, sizeof(b)));
  fputs("  legal basis: ", out);
  report_put_clean(out, info == NULL ? "not known (a list neither built in nor in --config)"
                        : info->reference != NULL ? info->reference
                                                  : "not given by its list");
  fputc('\n', out);
  for (i = 0; i < v->ncutoffs; i++) {
    const struct inventory_cutoff *k = &v->cutoffs[i];
    bool partial;
    size_t machines = inventory_category_clients(v, k->category, &partial);
    fputs("  ", out);
    report_put_clean(out, k->category);
    fprintf(out, ": cutoff %s, %llu attempts, %llu after cutoff, %llu denied, %zu%s machine%s\n",
            k->cutoff_ms == INVENTORY_TIME_NONE ? "none"
                                                : inventory_format_time(k->cutoff_ms, a, sizeof(a)),
            (unsigned long long)k->attempts, (unsigned long long)k->after_cutoff,
            (unsigned long long)k->denied, machines, partial ? "+" : "",
            machines == 1 && !partial ? "" : "s");
  }
}

static void limits_note(FILE *out) {
  fprintf(out,
          "Each client keeps its first %d destinations, %d JA4 fingerprints, %d user agents "
          "and %d categories; \"+N more\" counts the lines with values beyond those.\n",
          INVENTORY_MAX_DESTINATIONS, INVENTORY_MAX_JA4, INVENTORY_MAX_AGENTS,
          INVENTORY_MAX_CATEGORIES);
}

int report_write_table(const struct inventory *inv, const struct report_meta *m, FILE *out) {
  struct table t = {.out = NULL};
  struct inventory_vendor **vs;
  size_t nv, i;
  int rc, col;

  if (inv->counts.attempts == 0) {
    fprintf(out, "No attempt to reach a vendor in the lines read.\n");
    return ferror(out) ? -EIO : 0;
  }
  for (col = 0; col < NCOLUMNS; col++)
    table_put(&t, col, columns[col].title);
  if ((rc = each_row(inv, table_row, &t)) != 0)
    goto cleanup;
  t.out = out;
  for (col = 0; col < NCOLUMNS; col++)
    table_put(&t, col, columns[col].title);
  if ((rc = each_row(inv, table_row, &t)) != 0)
    goto cleanup;
  fputc('\n', out);
  if ((vs = inventory_vendors(inv, &nv)) == NULL) {
    rc = -ENOMEM;
    goto cleanup;
  }
  for (i = 0; i < nv; i++)
    vendor_summary(vs[i], m, out);
  free(vs);
  limits_note(out);
  rc = ferror(out) ? -EIO : 0;
cleanup:
  free(t.cell.p);
  return rc;
}

/* ---- CSV -------------------------------------------------------------- */

/* One RFC 4180 field. A text starting with = + - @ gets a leading ' so that
 * a spreadsheet shows a hostile user agent instead of running it; in a
 * quoted field the ' goes inside the quotes, which must open the field. */
static void csv_field(FILE *out, const char *s, bool text) {
  const char *p;
  bool quote = strpbrk(s, ",\"\r\n") != NULL;
  if (quote)
    fputc('"', out);
  if (text && strchr("=+-@\t\r", s[0]) != NULL && s[0] != '\0')
    fputc('\'', out);
  for (p = s; *p != '\0'; p++) {
    if (*p == '"')
      fputc('"', out);
    fputc(*p, out);
  }
  if (quote)
    fputc('"', out);
}

struct csv {
  struct sbuf cell;
  FILE *out;
};

static const struct inventory_set *set_of(const struct inventory_client *c, enum column col) {
  return col == COL_DESTINATIONS ? &c->destinations : col == COL_JA4 ? &c->ja4 : &c->agents;
}

static int csv_row(const struct inventory_vendor *v, const struct inventory_client *c, void *ctx) {
  struct csv *x = ctx;
  int col;
  for (col = 0; col < NCOLUMNS; col++) {
    cell(&x->cell, col, v, c, &csv_style);
    if (x->cell.oom)
      return -ENOMEM;
    if (col > 0)
      fputc(',', x->out);
    csv_field(x->out, x->cell.p, !columns[col].number);
    if (col >= COL_DESTINATIONS)
      fprintf(x->out, ",%llu", (unsigned long long)set_of(c, col)->not_kept);
  }
  fputs("\r\n", x->out);
  return 0;
}

int report_write_csv(const struct inventory *inv, const struct report_meta *m, FILE *out) {
  struct csv x = {.out = out};
  int rc, col;

  for (col = 0; col < NCOLUMNS; col++) {
    fprintf(out, "%s%s", col ? "," : "", columns[col].csv);
    if (col >= COL_DESTINATIONS)
      fprintf(out, ",%s_not_kept", columns[col].csv);
  }
  fputs("\r\n", out);
  rc = each_row(inv, csv_row, &x);
  free(x.cell.p);
  return rc != 0 ? rc : ferror(out) ? -EIO : 0;
}

/* ---- JSON ------------------------------------------------------------- */

static void json_time(FILE *out, const char *key, int64_t ms) {
  char t[40];
  fprintf(out, "\"%s\":", key);
  if (ms == INVENTORY_TIME_NONE)
    fputs("null", out);
  else
    fprintf(out, "\"%s\"", inventory_format_time(ms, t, sizeof(t)));
}

static void json_set(FILE *out, const char *key, const struct inventory_set *s) {
  uint32_t i;
  fprintf(out, ",\"%s\":[", key);
  for (i = 0; i < s->n; i++) {
    if (i > 0)
      fputc(',', out);
    report_put_json_string(out, s->items[i]);
  }
  fprintf(out, "],\"%s_not_kept\":%llu", key, (unsigned long long)s->not_kept);
}

static void json_client(const struct inventory_client *c, FILE *out) {
  uint32_t i;

  fputs("{\"client\":", out);
  report_put_json_string(out, c->addr);
  fputc(',', out);
  json_time(out, "first_seen", c->first_ms);
  fputc(',', out);
  json_time(out, "last_seen", c->last_ms);
  fprintf(out, ",\"attempts\":%llu,\"after_cutoff\":%llu,\"categories\":[",
          (unsigned long long)c->attempts, (unsigned long long)c->after_cutoff);
  for (i = 0; i < c->ncats; i++) {
    fputs(i ? ",{\"category\":" : "{\"category\":", out);
    report_put_json_string(out, c->cats[i].name);
    fprintf(out, ",\"attempts\":%llu,\"after_cutoff\":%llu}",
            (unsigned long long)c->cats[i].attempts, (unsigned long long)c->cats[i].after_cutoff);
  }
  fprintf(out, "],\"categories_not_kept\":%llu", (unsigned long long)c->cats_not_kept);
  json_set(out, "destinations", &c->destinations);
  json_set(out, "ja4", &c->ja4);
  json_set(out, "user_agents", &c->agents);
  fputs("}", out);
}

static void json_vendor_head(const struct inventory_vendor *v, const struct report_meta *m,
                             FILE *out) {
  const struct report_vendor_info *info = report_vendor_info(m, v->id);
  char day[16];
  uint32_t i;

  fputs("{\"vendor\":", out);
  report_put_json_string(out, v->id);
  fputs(",\"name\":", out);
  if (info != NULL)
    report_put_json_string(out, info->name);
  else
    fputs("null", out);
  fputs(",\"reference\":", out);
  if (info != NULL && info->reference != NULL)
    report_put_json_string(out, info->reference);
  else
    fputs("null", out);
  fprintf(out, ",\"clients_count\":%zu,\"attempts\":%llu,\"after_cutoff\":%llu,",
          inventory_client_count(v), (unsigned long long)v->attempts,
          (unsigned long long)v->after_cutoff);
  json_time(out, "first_seen", v->first_ms);
  fputc(',', out);
  json_time(out, "last_seen", v->last_ms);
  fputs(",\"cutoffs\":[", out);
  for (i = 0; i < v->ncutoffs; i++) {
    fputs(i ? ",{\"category\":" : "{\"category\":", out);
    report_put_json_string(out, v->cutoffs[i].category);
    fputc(',', out);
    json_time(out, "cutoff", v->cutoffs[i].cutoff_ms);
    bool partial;
    size_t machines = inventory_category_clients(v, v->cutoffs[i].category, &partial);
    fprintf(out,
            ",\"attempts\":%llu,\"after_cutoff\":%llu,\"denied\":%llu,\"clients\":%zu,"
            "\"clients_partial\":%s}",
            (unsigned long long)v->cutoffs[i].attempts,
            (unsigned long long)v->cutoffs[i].after_cutoff,
            (unsigned long long)v->cutoffs[i].denied, machines, partial ? "true" : "false");
  }
  fprintf(out, "],\"cutoffs_not_kept\":%llu,\"days\":[", (unsigned long long)v->cutoffs_not_kept);
  for (i = 0; i < v->ndays; i++)
    fprintf(out, "%s{\"day\":\"%s\",\"attempts\":%llu}", i ? "," : "",
            inventory_format_day(v->days[i].day, day, sizeof(day)),
            (unsigned long long)v->days[i].attempts);
  fprintf(out, "],\"days_not_kept\":%llu,\"clients\":[\n", (unsigned long long)v->days_not_kept);
}

static int json_vendors(const struct inventory *inv, const struct report_meta *m, FILE *out) {
  struct inventory_vendor **vs;
  struct inventory_client **cs;
  size_t nv, nc, i, k;

  if ((vs = inventory_vendors(inv, &nv)) == NULL && nv != 0)
    return -ENOMEM;
  for (i = 0; i < nv; i++) {
    if ((cs = inventory_clients(vs[i], &nc)) == NULL && nc != 0) {
      free(vs);
      return -ENOMEM;
    }
    fputs(i ? ",\n" : "\n", out);
    json_vendor_head(vs[i], m, out);
    for (k = 0; k < nc; k++) {
      fputs(k ? ",\n" : "", out);
      json_client(cs[k], out);
    }
    fputs("]}", out);
    free(cs);
  }
  free(vs);
  return 0;
}

static void json_head(const struct inventory *inv, const struct report_meta *m, FILE *out) {
  const struct inventory_counts *n = &inv->counts;
  size_t i;

  fputc('{', out);
  json_time(out, "generated", m->generated_ms);
  fputc(',', out);
  json_time(out, "since", inv->filter.since_ms);
  fputc(',', out);
  json_time(out, "until", inv->filter.until_ms);
  fputs(",\"vendor\":", out);
  if (inv->filter.vendor != NULL)
    report_put_json_string(out, inv->filter.vendor);
  else
    fputs("null", out);
  fputs(",\"inputs\":[", out);
  for (i = 0; i < m->ninputs; i++) {
    fputs(i ? "," : "", out);
    report_put_json_string(out, m->inputs[i]);
  }
  fputs("],", out);
  json_time(out, "first_seen", n->attempts ? inv->first_ms : INVENTORY_TIME_NONE);
  fputc(',', out);
  json_time(out, "last_seen", n->attempts ? inv->last_ms : INVENTORY_TIME_NONE);
  fprintf(out,
          ",\"lines\":{\"read\":%llu,\"attempts\":%llu,\"outside\":%llu,\"no_vendor\":%llu,"
          "\"malformed\":%llu},",
          (unsigned long long)n->lines, (unsigned long long)n->attempts,
          (unsigned long long)n->outside, (unsigned long long)n->no_vendor,
          (unsigned long long)n->malformed);
  fprintf(out,
          "\"limits\":{\"destinations\":%d,\"ja4\":%d,\"user_agents\":%d,\"categories\":%d,"
          "\"cutoffs\":%d,\"days\":%d,\"value_bytes\":%d},\"vendors\":[",
          INVENTORY_MAX_DESTINATIONS, INVENTORY_MAX_JA4, INVENTORY_MAX_AGENTS,
          INVENTORY_MAX_CATEGORIES, INVENTORY_MAX_CUTOFFS, INVENTORY_MAX_DAYS, INVENTORY_VALUE_MAX);
}

int report_write_json(const struct inventory *inv, const struct report_meta *m, FILE *out) {
  int rc;
  json_head(inv, m, out);
  if ((rc = json_vendors(inv, m, out)) != 0)
    return rc;
  fputs("]}\n", out);
  return ferror(out) ? -EIO : 0;
}
