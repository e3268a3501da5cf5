/* `embargo check`. */
#include "proxy/check.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "filters/err.h"
#include "filters/normalise.h"
#include "filters/policy.h"
#include "filters/timefmt.h"
#include "proxy/destcheck.h"
#include "proxy/dns.h"
#include "proxy/judge.h"
#include "proxy/log.h"

struct lookup {
  bool done;
  enum dns_status status;
  struct dns_result result;
  struct dns_query *query;
};

static void on_lookup(void *arg, enum dns_status status, const struct dns_result *res) {
  struct lookup *l = arg;
  l->done = true;
  l->status = status;
  if (res != NULL)
    memcpy(&l->result, res, sizeof(l->result));
}

/* Resolves NAME through the configured resolver, waiting for the answer. */
static enum dns_status resolve(const struct config *cfg, const char *name, uint16_t port,
                               struct dns_result *out) {
  struct lookup l;
  struct resolver *r = NULL;
  uv_loop_t loop;
  char err[256];

  memset(&l, 0, sizeof(l));
  l.status = DNS_ERROR;
  uv_loop_init(&loop);
  if (resolver_new(&loop, cfg->resolvers, cfg->timeouts.resolve, NULL, NULL, &r, err,
                   sizeof(err)) != 0) {
    fprintf(stderr, "embargo: %s\n", err);
  } else if (resolver_lookup(r, name, port, on_lookup, &l, &l.query) == 0) {
    while (!l.done) /* bounded: c-ares times the query out */
      uv_run(&loop, UV_RUN_ONCE);
  }
  resolver_close(r);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  memcpy(out, &l.result, sizeof(*out));
  return l.status;
}

static void print_rule(const struct verdict *v) {
  const struct rule *r = v->rule;
  char cutoff[32] = "none";

  if (r->category->cutoff != POLICY_TIME_NEVER)
    rfc3339_format(r->category->cutoff, cutoff, sizeof(cutoff));
  printf("  matched:   %s (%s%s)\n", v->matched, match_on_name(v->on),
         v->hint ? ", hint: never denies on its own" : "");
  printf("  vendor:    %s (%s)\n", r->vendor->name, r->vendor->id);
  printf("  category:  %s\n", r->category->name);
  printf("  pattern:   %s\n", r->pattern);
  printf("  rule:      %s:%u:%u\n", r->where.file, r->where.line, r->where.col);
  printf("  cutoff:    %s (%s; before: %s, after: %s)\n", cutoff,
         v->after_cutoff ? "passed" : "not yet reached", action_name(r->category->before),
         action_name(r->category->after));
  printf("  action:    %s%s\n", action_name(v->action),
         v->monitor ? " (monitor mode; the rule says deny)" : "");
  if (v->exception != NULL)
    printf("  exception: %s at %s:%u overrides the vendor rule\n", v->exception->pattern,
           v->exception->where.file, v->exception->where.line);
  if (r->vendor->reference != NULL)
    printf("  reference: %s\n", r->vendor->reference);
}

static void print_resolution(enum dns_status st, const struct dns_result *res) {
  char ip[64];
  size_t i;

  if (st != DNS_OK) {
    printf("  resolved:  failed (%s); the proxy would answer 50x and open no connection\n",
           dns_status_name(st));
    return;
  }
  if (res->ncnames > 0) {
    printf("  chain:    ");
    for (i = 0; i < res->ncnames; i++)
      printf(" -> %s", res->cnames[i]);
    printf("\n");
  }
  printf("  addresses:");
  for (i = 0; i < res->naddrs; i++)
    printf(" %s", log_fmt_ip((const struct sockaddr *)&res->addrs[i], ip, sizeof(ip)));
  printf("\n");
}

/* Whether PORT's tunnels get their ClientHello inspected by the proxy. */
static bool tls_port(const struct config *cfg, uint16_t port) {
  size_t i;
  for (i = 0; i < cfg->tls.nports; i++)
    if (cfg->tls.ports[i] == port)
      return true;
  return false;
}

/* What the proxy would know of DEST at its next stage: the CONNECT
 * authority, the answer and addresses, and, on a TLS port, the hello's
 * server names (those given with --sni, else the name itself, as a client
 * sends it) with the outcome a hello without one would have. */
static void check_input(const struct config *cfg, const struct check_opts *o, const struct host *h,
                        const struct dns_result *res, const char **implied,
                        struct judge_input *in) {
  memset(in, 0, sizeof(*in));
  in->host = h;
  in->connect = true;
  in->ja4 = o->ja4;
  if (res != NULL) {
    in->resolved = res;
    in->dial = res->addrs;
    in->ndial = res->naddrs;
  }
  if (!tls_port(cfg, h->port))
    return;
  in->sni = o->sni;
  in->nsni = o->nsni;
  if (o->nsni == 0 && h->kind == HOST_NAME) {
    *implied = h->name;
    in->sni = implied;
    in->nsni = 1;
  }
  if (in->nsni == 0)
    judge_add_outcome(in, cfg->tls.on_no_sni, "tls_inspect.on_no_sni");
}

/* The verdict's first line; SUFFIX follows the verdict (", UNREACHABLE"). */
static void print_verdict(const struct host *h, const struct judgement *j, const char *suffix) {
  static const char *const refusals[] = {
      [JUDGE_PORT] = "http_request_denied", [JUDGE_INTERNAL] = "destination_ip_prohibited",
      [JUDGE_SELF] = "destination_ip_prohibited"};
  const struct verdict *v = &j->verdict;
  char where[HOST_NAME_MAX_LEN + 16]; /* "name:port", "[v6]:port" */

  host_format(h, where, sizeof(where));
  if (j->refusal != JUDGE_PASS) {
    printf("%s: DENY\n  refused:   %s (%s)\n", where, j->detail, refusals[j->refusal]);
    return;
  }
  printf("%s: %s%s\n", where,
         v->action == ACTION_DENY  ? "DENY"
         : v->action == ACTION_LOG ? "ALLOW (logged)"
                                   : "ALLOW",
         suffix);
  if (j->option != NULL)
    printf("  decided:   %s\n", j->option);
}

static int check_one(const struct config *cfg, struct destcheck *dc, const struct check_opts *o,
                     const char *dest) {
  struct host h;
  struct judgement j;
  struct judge_input in;
  struct dns_result res;
  const char *implied = NULL;
  enum dns_status st = DNS_OK;
  int err = destination_parse(dest, strlen(dest), 443, &h);

  if (err != 0) {
    printf("%s: invalid destination: %s\n", dest, err_str(err));
    return 2;
  }
  /* The name first, as the proxy does: a name denied by name is never
   * resolved. An IP literal's address is the one to dial. */
  memset(&res, 0, sizeof(res));
  if (h.kind != HOST_NAME)
    dns_result_literal(&res, &h);
  check_input(cfg, o, &h, h.kind != HOST_NAME ? &res : NULL, &implied, &in);
  judge_destination(cfg, cfg->policy, dc, &in, o->now, uv_hrtime() / 1000000, &j);
  if (!judge_denies(&j) && h.kind == HOST_NAME && o->resolve) {
    st = resolve(cfg, h.name, h.port, &res);
    if (st != DNS_OK) {
      /* The verdict on the name, then why the proxy would answer 502/504
       * and open no connection. */
      print_verdict(&h, &j, ", UNREACHABLE");
      print_resolution(st, &res);
      if (j.verdict.rule != NULL)
        print_rule(&j.verdict);
      return 1;
    }
    check_input(cfg, o, &h, &res, &implied, &in);
    judge_destination(cfg, cfg->policy, dc, &in, o->now, uv_hrtime() / 1000000, &j);
  }
  print_verdict(&h, &j, "");
  if (h.kind == HOST_NAME && st == DNS_OK && o->resolve && j.refusal != JUDGE_PORT &&
      res.naddrs > 0)
    print_resolution(st, &res);
  if (implied != NULL)
    printf("  sni:       %s (assumed: the name a client sends on a TLS port)\n", implied);
  if (j.verdict.rule != NULL)
    print_rule(&j.verdict);
  else if (j.refusal == JUDGE_PASS)
    printf("  no vendor rule matches\n");
  return judge_denies(&j) ? 1 : 0;
}

int check_run(const struct config *cfg, const struct check_opts *o, int ndests,
              char *const *dests) {
  char at[32];
  int i, rc, status = 0;

  struct destcheck dc;
  size_t k;

  if (destcheck_init(&dc, cfg->internal_allow) != 0) {
    fprintf(stderr, "embargo: out of memory\n");
    destcheck_free(&dc);
    return 2;
  }
  for (k = 0; k < cfg->nlisten; k++) /* the proxy refuses its own listeners */
    destcheck_add_self(&dc, (const struct sockaddr *)&cfg->listen[k].addr);
  rfc3339_format(o->now, at, sizeof(at));
  printf("policy time: %s\n", at);
  for (i = 0; i < ndests; i++) {
    rc = check_one(cfg, &dc, o, dests[i]);
    if (rc > status)
      status = rc;
  }
  destcheck_free(&dc);
  return status;
}
