/* `embargo report [LOG...]`: which machines still try to reach each vendor,
 * read from decision logs (plain or gzip, or standard input) and printed as
 * an aligned table, CSV, JSON or a self-contained HTML page. */
#ifndef EMBARGO_PROXY_REPORT_H
#define EMBARGO_PROXY_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proxy/report/inventory-t.h"

/* What a vendor list says of itself, for the report to name its legal
 * basis. Borrowed. */
struct report_vendor_info {
  const char *id;
  const char *name;
  const char *reference; /* NULL: the list gives none */
};

/* What a report shows besides the inventory. Borrowed. */
struct report_meta {
  int64_t generated_ms;      /* when the report was made */
  const char *const *inputs; /* the logs read, "-" for standard input */
  size_t ninputs;
  const struct report_vendor_info *vendors; /* the lists known (may be NULL) */
  size_t nvendors;
};

/* Runs `embargo report` with ARGV[0] = "report". Writes the report on
 * standard output and a summary of the lines read (malformed lines included)
 * on standard error. VENDORS (NVENDORS) name the lists whose legal basis the
 * report can give. Returns the exit status: 0, 1 when a log could not be
 * read whole (the report of what was read is still printed) or memory ran
 * out, 2 for usage errors. */
int report_main(int argc, char **argv, const struct report_vendor_info *vendors, size_t nvendors);

/* The list M knows as ID, or NULL. (Inline: the writers use it, and the
 * report's main calls the writers.) */
static inline const struct report_vendor_info *report_vendor_info(const struct report_meta *m,
                                                                  const char *id) {
  for (size_t i = 0; i < m->nvendors; i++)
    if (strcmp(m->vendors[i].id, id) == 0)
      return &m->vendors[i];
  return NULL;
}

/* Reads every line of the logs INPUTS (plain or gzip; "-" is standard
 * input) into INV. Returns 0, -EIO when a log could not be read whole (named
 * on standard error; the other logs are still read), or -ENOMEM. */
int report_read_logs(struct inventory *inv, const char *const *inputs, size_t n);

/* Feeds one log line (without its newline) to INV: counts it in
 * INV->counts.lines and, as the case may be, attempts, no_vendor, outside or
 * malformed. Returns 0 or -ENOMEM. */
int report_add_line(struct inventory *inv, const char *line, size_t len);

/* Writes S (UTF-8) to OUT as a JSON string, non-ASCII escaped (a writer's,
 * in report_text.c). */
void report_put_json_string(FILE *out, const char *s);

/* Writes S to OUT for a terminal: what a terminal could act on (C0 and C1
 * controls, DEL) as '?', so a hostile log line cannot move the cursor, set
 * a title or start a line of its own (a writer's, in report_text.c). */
void report_put_clean(FILE *out, const char *s);

/* The writers: each prints the whole report of INV to OUT and returns 0,
 * -ENOMEM, or -EIO when OUT failed. */
int report_write_table(const struct inventory *inv, const struct report_meta *m, FILE *out);
int report_write_csv(const struct inventory *inv, const struct report_meta *m, FILE *out);
int report_write_json(const struct inventory *inv, const struct report_meta *m, FILE *out);
int report_write_html(const struct inventory *inv, const struct report_meta *m, FILE *out);

#endif
