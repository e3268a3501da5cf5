/* `embargo check`: the verdict for destinations given on the command line,
 * with exactly which rule decided it and, for names, the CNAME chain and
 * addresses the configured resolver returns. */
#ifndef EMBARGO_PROXY_CHECK_H
#define EMBARGO_PROXY_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/config.h"
#include "filters/normalise.h"
#include "proxy/base/dns.h"
#include "proxy/decide/judge.h"

struct destcheck;

/* Output of batch mode (checkfile.c). */
enum check_format {
  CHECK_FORMAT_TEXT, /* one human line per destination */
  CHECK_FORMAT_CSV,  /* RFC 4180 with a header row */
  CHECK_FORMAT_JSON  /* one JSON object per line (JSON Lines) */
};

struct check_opts {
  int64_t now;            /* policy time, seconds since the epoch */
  const char *const *sni; /* normalised server names to judge as well */
  size_t nsni;
  const char *ja4;        /* a JA4 fingerprint to judge as well, or NULL */
  bool resolve;           /* resolve names through cfg's resolver */
  const struct sockaddr *client; /* judge for a client at this address (its groups), or NULL */
  enum check_format format; /* batch mode's output */
};

/* A destination as `check` reads it: NAME, IP, NAME:PORT, [v6]:PORT or a
 * bare IPv6 address (destination_parse; a CONNECT, default port 443),
 * http://HOST[:PORT]/PATH (a plain-HTTP request, its path judged too) or
 * https://HOST[:PORT]/... (a CONNECT to HOST). */
struct check_dest {
  struct host host;
  bool http;        /* a plain-HTTP request */
  const char *path; /* its target, borrowed from the text parsed */
  size_t path_len;
};

/* What check_judge found. */
struct check_result {
  struct judgement j;
  struct dns_result res; /* the answer (or the IP literal's address) */
  bool resolved;         /* RES is a DNS answer */
  const char *implied;   /* the SNI assumed for a name on a TLS port, or NULL */
};

/* Parses TEXT (LEN bytes) into OUT (which borrows TEXT). 0 or what
 * authority_parse / url_parse_absolute return. */
int check_parse_dest(const char *text, size_t len, struct check_dest *out);

/* Judges D as the proxy would: the name alone, then (unless denied, an IP
 * literal, or O says not to resolve) its answer. Returns DNS_OK, or the
 * status of a failed lookup (R then holds the verdict on the name). */
enum dns_status check_judge(const struct config *cfg, struct destcheck *dc,
                            const struct check_opts *o, const struct check_dest *d,
                            struct check_result *r);

/* "list", "preset NAME: BASIS" or "override at FILE:LINE:COL": who set the
 * action of V's rule (V must have one). */
void check_format_by(const struct verdict *v, char *buf, size_t size);

/* Sets up DC with CFG's internal ranges and listeners. 0, or -1 (printed). */
int check_destcheck_init(const struct config *cfg, struct destcheck *dc);

/* Prints a verdict for each of DESTS (as check_parse_dest reads them), each
 * headed "NAME:PORT: VERDICT" ("[v6]:PORT: ..." for an IPv6 address).
 * Returns 0 if all are allowed, 1 if any is denied or does not resolve (the
 * proxy would open no connection), 2 if any is invalid. */
int check_run(const struct config *cfg, const struct check_opts *o, int ndests,
              char *const *dests);

/* Batch mode: judges every line of PATH ("-": standard input), one
 * destination a line (blank lines and lines starting with '#' skipped,
 * white space around trimmed), and prints one line each in O->format, or
 * judges DESTS when PATH is NULL. Returns like check_run; 2 also when PATH
 * cannot be read. */
int check_batch(const struct config *cfg, const struct check_opts *o, const char *path,
                int ndests, char *const *dests);

#endif
