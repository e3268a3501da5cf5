/* `embargo report --format html`: one self-contained page (inline style and
 * SVG, no scripts, no external assets) meant to be mailed: per vendor, a
 * chart of attempts per day with the cutoff dates marked, then the table of
 * client machines. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/report/inventory.h"
#include "proxy/report/report.h"

#ifndef EMBARGO_VERSION
#define EMBARGO_VERSION "0.0.0"
#endif

#define MS_PER_DAY 86400000LL

/* Chart geometry, in SVG user units. */
#define CHART_W     960
#define CHART_H     260
#define PLOT_LEFT   56
#define PLOT_RIGHT  16
#define PLOT_TOP    28
#define PLOT_BOTTOM 36
#define PLOT_W      (CHART_W - PLOT_LEFT - PLOT_RIGHT)
#define PLOT_H      (CHART_H - PLOT_TOP - PLOT_BOTTOM)

static const char page_style[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;"
    "color:#1d2430;background:#fff;margin:2em auto;max-width:1200px;padding:0 1.5em;"
    "line-height:1.45}\n"
    "h1{font-size:1.6em;margin:0 0 .3em}h2{font-size:1.25em;margin:1.8em 0 .4em;"
    "border-bottom:2px solid #d8dee8;padding-bottom:.2em}\n"
    ".meta{color:#4a5568;margin:.2em 0}.explain{background:#f3f6fa;border-left:4px solid #3a6ea5;"
    "padding:.6em 1em;margin:1em 0}\n"
    "table{border-collapse:collapse;width:100%;font-size:.9em;margin:.8em 0}"
    "th,td{border:1px solid #d8dee8;padding:.3em .5em;text-align:left;vertical-align:top}"
    "th{background:#eef2f7}tbody tr:nth-child(even){background:#f8fafc}\n"
    "td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
    "td.time{white-space:nowrap;font-size:.85em}td.list{overflow-wrap:anywhere;min-width:9em}\n"
    ".after{color:#a11}.note{color:#4a5568;font-size:.85em}"
    "svg.chart{width:100%;height:auto;border:1px solid #e2e8f0}\n"
    "svg text{font-family:inherit;font-size:11px;fill:#4a5568}svg .bar{fill:#3a6ea5}"
    "svg .grid{stroke:#e2e8f0}svg .axis{stroke:#718096}"
    "svg .cutoff{stroke:#c53030;stroke-width:2;stroke-dasharray:6 4}"
    "svg text.cutoff-label{fill:#c53030;font-weight:600}\n"
    "figure{margin:1em 0}figcaption{font-size:.85em;color:#4a5568}\n";

/* Writes S as HTML text; controls (C0, C1, DEL) become '?'. */
static void html_text(FILE *out, const char *s) {
  for (; *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == 0xC2 && (unsigned char)s[1] >= 0x80 && (unsigned char)s[1] <= 0x9F) {
      s++;
      c = '?';
    }
    switch (c) {
    case '&': fputs("&amp;", out); break;
    case '<': fputs("&lt;", out); break;
    case '>': fputs("&gt;", out); break;
    case '"': fputs("&quot;", out); break;
    case '\'': fputs("&#39;", out); break;
    default: fputc(c < 0x20 || c == 0x7F ? '?' : c, out);
    }
  }
}

static const char *fmt_time(int64_t ms, char *buf, size_t size) {
  return ms == INVENTORY_TIME_NONE ? "none" : inventory_format_time(ms, buf, size);
}

/* ---- the chart -------------------------------------------------------- */

/* A "nice" step (1, 2 or 5 times a power of ten) for about four gridlines. */
static uint64_t nice_step(uint64_t max) {
  uint64_t p = 1;
  while (p * 10 <= max / 4)
    p *= 10;
  if (p * 5 <= max / 4 + 1 && p * 5 < max)
    return p * 5;
  if (p * 2 <= max / 4 + 1 && p * 2 < max)
    return p * 2;
  return p;
}

struct chart {
  int64_t first_day, ndays; /* days shown */
  uint64_t max;             /* attempts on the busiest day */
  double day_w;             /* width of one day */
};

static double chart_y(const struct chart *ch, uint64_t n) {
  return PLOT_TOP + PLOT_H - (double)PLOT_H * (double)n / (double)ch->max;
}

static void chart_axes(const struct chart *ch, FILE *out) {
  uint64_t step = nice_step(ch->max), n;
  int64_t every = ch->ndays / 6 + 1, d;
  char day[16];

  for (n = 0; n <= ch->max; n += step)
    fprintf(out,
            "<line class=\"grid\" x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\"/>"
            "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%llu</text>\n",
            PLOT_LEFT, PLOT_LEFT + PLOT_W, chart_y(ch, n), chart_y(ch, n), PLOT_LEFT - 6,
            chart_y(ch, n) + 4, (unsigned long long)n);
  fprintf(out, "<line class=\"axis\" x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\"/>\n", PLOT_LEFT,
          PLOT_LEFT + PLOT_W, PLOT_TOP + PLOT_H, PLOT_TOP + PLOT_H);
  for (d = 0; d < ch->ndays; d += every)
    fprintf(out, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
            PLOT_LEFT + ch->day_w * ((double)d + 0.5), PLOT_TOP + PLOT_H + 16,
            inventory_format_day(ch->first_day + d, day, sizeof(day)));
}

static void chart_bars(const struct chart *ch, const struct inventory_vendor *v, FILE *out) {
  /* a gap between wide bars; narrow ones stay visible */
  double w = ch->day_w > 3 ? ch->day_w * 0.8 : ch->day_w > 1.5 ? ch->day_w : 1.5;
  char day[16];
  uint32_t i;

  for (i = 0; i < v->ndays; i++) {
    const struct inventory_day *d = &v->days[i];
    double y = chart_y(ch, d->attempts);
    inventory_format_day(d->day, day, sizeof(day));
    fprintf(out,
            "<rect class=\"bar\" data-day=\"%s\" data-attempts=\"%llu\" x=\"%.2f\" y=\"%.2f\" "
            "width=\"%.2f\" height=\"%.2f\"><title>%s: %llu attempts</title></rect>\n",
            day, (unsigned long long)d->attempts,
            PLOT_LEFT + ch->day_w * (double)(d->day - ch->first_day) + (ch->day_w - w) / 2, y, w,
            PLOT_TOP + PLOT_H - y, day, (unsigned long long)d->attempts);
  }
}

/* Marks each distinct cutoff inside the period shown; returns how many. */
static int chart_cutoffs(const struct chart *ch, const struct inventory_vendor *v, FILE *out) {
  int64_t start = ch->first_day * MS_PER_DAY, end = start + ch->ndays * MS_PER_DAY;
  char t[40];
  uint32_t i, k;
  int drawn = 0;

  for (i = 0; i < v->ncutoffs; i++) {
    int64_t at = v->cutoffs[i].cutoff_ms;
    double x;
    for (k = 0; k < i && v->cutoffs[k].cutoff_ms != at; k++)
      ;
    if (k < i || at == INVENTORY_TIME_NONE || at < start || at > end)
      continue; /* drawn already, none, or outside the period */
    x = PLOT_LEFT + ch->day_w * (double)(at - start) / MS_PER_DAY;
    fprintf(out,
            "<line class=\"cutoff\" data-cutoff=\"%s\" x1=\"%.2f\" x2=\"%.2f\" y1=\"%d\" "
            "y2=\"%d\"/>\n",
            fmt_time(at, t, sizeof(t)), x, x, PLOT_TOP - 4, PLOT_TOP + PLOT_H);
    fprintf(out, "<text class=\"cutoff-label\" x=\"%.2f\" y=\"%d\" text-anchor=\"%s\">", x,
            PLOT_TOP - 8 - 12 * (drawn % 2), x > PLOT_LEFT + PLOT_W / 2 ? "end" : "start");
    html_text(out, v->cutoffs[i].category);
    fprintf(out, " cutoff %.10s</text>\n", t);
    drawn++;
  }
  return drawn;
}

static void write_chart(const struct inventory_vendor *v, FILE *out) {
  struct chart ch = {.max = 1};
  uint32_t i;

  ch.first_day = inventory_day_of(v->first_ms);
  ch.ndays = inventory_day_of(v->last_ms) - ch.first_day + 1;
  ch.day_w = (double)PLOT_W / (double)ch.ndays;
  for (i = 0; i < v->ndays; i++)
    if (v->days[i].attempts > ch.max)
      ch.max = v->days[i].attempts;
  fprintf(out,
          "<figure><svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
          "role=\"img\" aria-label=\"attempts per day\">\n",
          CHART_W, CHART_H);
  chart_axes(&ch, out);
  chart_bars(&ch, v, out);
  chart_cutoffs(&ch, v, out);
  fputs("</svg><figcaption>Attempts per day (UTC). Dashed red lines mark the cutoff dates that "
        "fall inside the period shown.",
        out);
  if (v->days_not_kept > 0)
    fprintf(out, " %llu attempts on days beyond the %d charted are not drawn.",
            (unsigned long long)v->days_not_kept, INVENTORY_MAX_DAYS);
  fputs("</figcaption></figure>\n", out);
}

/* ---- the table -------------------------------------------------------- */

static void cell_list(FILE *out, const struct inventory_set *s) {
  uint32_t i;
  fputs("<td class=\"list\">", out);
  for (i = 0; i < s->n; i++) {
    fputs(i ? ", " : "", out);
    html_text(out, s->items[i]);
  }
  if (s->not_kept > 0)
    fprintf(out, "%s<em>+%llu more</em>", s->n ? ", " : "", (unsigned long long)s->not_kept);
  fputs(s->n || s->not_kept ? "</td>" : "&ndash;</td>", out);
}

static void cell_categories(FILE *out, const struct inventory_client *c) {
  uint32_t i;
  fputs("<td class=\"categories\">", out);
  for (i = 0; i < c->ncats; i++) {
    fputs(i ? "<br>" : "", out);
    html_text(out, c->cats[i].name);
    fprintf(out, " %llu (<span class=\"after\">%llu after cutoff</span>)",
            (unsigned long long)c->cats[i].attempts, (unsigned long long)c->cats[i].after_cutoff);
  }
  if (c->cats_not_kept > 0)
    fprintf(out, "<br><em>+%llu more</em>", (unsigned long long)c->cats_not_kept);
  fputs("</td>", out);
}

static void client_row(const struct inventory_client *c, FILE *out) {
  char a[40], b[40];
  fputs("<tr class=\"client\"><td class=\"addr\">", out);
  html_text(out, c->addr);
  fprintf(out,
          "</td><td class=\"time first\">%s</td><td class=\"time last\">%s</td>"
          "<td class=\"num attempts\">%llu</td><td class=\"num after\">%llu</td>",
          fmt_time(c->first_ms, a, sizeof(a)), fmt_time(c->last_ms, b, sizeof(b)),
          (unsigned long long)c->attempts, (unsigned long long)c->after_cutoff);
  cell_categories(out, c);
  cell_list(out, &c->destinations);
  cell_list(out, &c->ja4);
  cell_list(out, &c->agents);
  fputs("</tr>\n", out);
}

/* One row per category of V: the grouping by vendor and category. */
static void category_rows(const struct inventory_vendor *v, bool with_vendor, FILE *out) {
  char t[40];
  for (uint32_t i = 0; i < v->ncutoffs; i++) {
    const struct inventory_cutoff *k = &v->cutoffs[i];
    bool partial;
    size_t machines = inventory_category_clients(v, k->category, &partial);
    fputs("<tr class=\"category\">", out);
    if (with_vendor) {
      fputs("<td class=\"vendor\">", out);
      html_text(out, v->id);
      fputs("</td>", out);
    }
    fputs("<td class=\"name\">", out);
    html_text(out, k->category);
    fprintf(out,
            "</td><td class=\"time cutoff\">%s</td><td class=\"num attempts\">%llu</td>"
            "<td class=\"num after\">%llu</td><td class=\"num denied\">%llu</td>"
            "<td class=\"num machines\">%zu%s</td></tr>\n",
            fmt_time(k->cutoff_ms, t, sizeof(t)), (unsigned long long)k->attempts,
            (unsigned long long)k->after_cutoff, (unsigned long long)k->denied, machines,
            partial ? "+" : "");
  }
}

static const char category_head[] =
    "<th>Category</th><th>Cutoff (UTC)</th><th>Attempts</th><th>After cutoff</th>"
    "<th>Denied</th><th>Machines</th></tr></thead><tbody>\n";

static void vendor_cutoffs(const struct inventory_vendor *v, FILE *out) {
  fprintf(out, "<table class=\"cutoffs\"><thead><tr>%s", category_head);
  category_rows(v, false, out);
  fputs("</tbody></table>\n", out);
}

/* The vendor's legal basis, as its list gives it. */
static void legal_basis(const struct inventory_vendor *v, const struct report_meta *m,
                        FILE *out) {
  const struct report_vendor_info *info = report_vendor_info(m, v->id);
  fputs("<p class=\"basis\"><b>Legal basis:</b> <span class=\"reference\">", out);
  if (info != NULL && info->reference != NULL)
    html_text(out, info->reference);
  else
    fputs(info != NULL ? "not given by its list"
                       : "not known (a list neither built in nor in the configuration given "
                         "with --config)",
          out);
  fputs("</span>", out);
  if (info != NULL && strcmp(info->name, v->id) != 0) {
    fputs(" (", out);
    html_text(out, info->name);
    fputs(")", out);
  }
  fputs("</p>\n", out);
}

static int write_vendor(const struct inventory_vendor *v, const struct report_meta *m,
                        FILE *out) {
  struct inventory_client **cs;
  size_t nc, k;

  if ((cs = inventory_clients(v, &nc)) == NULL && nc != 0)
    return -ENOMEM;
  fputs("<section class=\"vendor\" data-vendor=\"", out);
  html_text(out, v->id);
  fputs("\">\n<h2>", out);
  html_text(out, v->id);
  fprintf(
      out,
      "</h2>\n<p class=\"summary\"><b class=\"clients\">%zu</b> machine%s, "
      "<b class=\"attempts\">%llu</b> attempts, <b class=\"after\">%llu</b> after cutoff.</p>\n",
      nc, nc == 1 ? "" : "s", (unsigned long long)v->attempts, (unsigned long long)v->after_cutoff);
  legal_basis(v, m, out);
  vendor_cutoffs(v, out);
  write_chart(v, out);
  fputs("<table class=\"clients\"><thead><tr><th>Client</th><th>First seen (UTC)</th>"
        "<th>Last seen (UTC)</th><th>Attempts</th><th>After cutoff</th><th>Categories</th>"
        "<th>Destinations</th><th>JA4</th><th>User agents</th></tr></thead><tbody>\n",
        out);
  for (k = 0; k < nc; k++)
    client_row(cs[k], out);
  fputs("</tbody></table>\n</section>\n", out);
  free(cs);
  return 0;
}

/* ---- the page --------------------------------------------------------- */

static void write_head(const struct inventory *inv, const struct report_meta *m, FILE *out) {
  char a[40], b[40];
  fprintf(out,
          "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<title>Embargo report: machines still calling banned vendors</title>\n"
          "<style>\n%s</style></head>\n<body>\n"
          "<h1>Which machines still call a banned vendor</h1>\n"
          "<p class=\"meta\">Generated <span class=\"generated\">%s</span> by Embargo %s.</p>\n",
          page_style, fmt_time(m->generated_ms, a, sizeof(a)), EMBARGO_VERSION);
  fputs("<p class=\"meta period\">Period covered: ", out);
  if (inv->counts.attempts > 0)
    fprintf(out, "<span class=\"first\">%s</span> to <span class=\"last\">%s</span>",
            fmt_time(inv->first_ms, a, sizeof(a)), fmt_time(inv->last_ms, b, sizeof(b)));
  else
    fputs("no attempts", out);
  if (inv->filter.since_ms != INVENTORY_TIME_NONE)
    fprintf(out, "; only from %s", fmt_time(inv->filter.since_ms, a, sizeof(a)));
  if (inv->filter.until_ms != INVENTORY_TIME_NONE)
    fprintf(out, "; only before %s", fmt_time(inv->filter.until_ms, a, sizeof(a)));
  if (inv->filter.vendor != NULL) {
    fputs("; vendor ", out);
    html_text(out, inv->filter.vendor);
  }
  fprintf(out, " (%llu log lines read, <span class=\"total\">%llu</span> attempts).</p>\n",
          (unsigned long long)inv->counts.lines, (unsigned long long)inv->counts.attempts);
  fputs("<p class=\"explain\">Each row below is a machine on this network that tried to reach "
        "the update, licensing, cloud or telemetry servers of a vendor on Embargo's lists. "
        "<b>After cutoff</b> counts the attempts made after the legal cutoff date of the "
        "category reached; <b>Denied</b> those Embargo refused (a category whose law asks "
        "for no block, such as covered equipment's firmware, is only recorded). These "
        "machines still run the vendor's software or equipment: someone needs to visit "
        "them. Each vendor's section names the legal basis its list gives.</p>\n",
        out);
}

static void write_foot(const struct inventory_counts *n, FILE *out) {
  fprintf(out,
          "<p class=\"note\">Each machine keeps its first %d destinations, %d JA4 TLS "
          "fingerprints, %d user agents and %d categories; &ldquo;+N more&rdquo; counts the log "
          "lines with values beyond those. Lines read: %llu; without a vendor: %llu; left out "
          "by the period or vendor chosen: %llu; malformed and skipped: "
          "<span class=\"malformed\">%llu</span>.</p>\n</body></html>\n",
          INVENTORY_MAX_DESTINATIONS, INVENTORY_MAX_JA4, INVENTORY_MAX_AGENTS,
          INVENTORY_MAX_CATEGORIES, (unsigned long long)n->lines, (unsigned long long)n->no_vendor,
          (unsigned long long)n->outside, (unsigned long long)n->malformed);
}

/* Every vendor's categories in one table, before the vendors' sections. */
static void overview(struct inventory_vendor *const *vs, size_t nv, FILE *out) {
  fprintf(out, "<h2>By vendor and category</h2>\n<table class=\"overview\"><thead><tr>"
               "<th>Vendor</th>%s",
          category_head);
  for (size_t i = 0; i < nv; i++)
    category_rows(vs[i], true, out);
  fputs("</tbody></table>\n", out);
}

int report_write_html(const struct inventory *inv, const struct report_meta *m, FILE *out) {
  struct inventory_vendor **vs;
  size_t nv, i;
  int rc = 0;

  if ((vs = inventory_vendors(inv, &nv)) == NULL && nv != 0)
    return -ENOMEM;
  write_head(inv, m, out);
  if (nv == 0)
    fputs("<p class=\"none\">No attempt to reach a vendor was found in the logs read.</p>\n", out);
  else
    overview(vs, nv, out);
  for (i = 0; i < nv && rc == 0; i++)
    rc = write_vendor(vs[i], m, out);
  free(vs);
  if (rc != 0)
    return rc;
  write_foot(&inv->counts, out);
  return ferror(out) ? -EIO : 0;
}
