/* `embargo check`. */
#include "proxy/check.h"

#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "filters/err.h"
#include "filters/normalise.h"
#include "filters/policy.h"
#include "filters/timefmt.h"
#include "proxy/dns.h"
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
  if (resolver_new(&loop, cfg->resolvers, cfg->timeouts.resolve, NULL, &r, err, sizeof(err)) !=
      0) {
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

static int check_one(const struct config *cfg, const struct check_opts *o, const char *dest) {
  struct host h;
  struct verdict v;
  struct facts facts = {.host = &h, .sni = o->sni, .nsni = o->nsni, .ja4 = o->ja4};
  struct dns_result res;
  struct fact_store store;
  enum dns_status st = DNS_OK;
  bool resolved = false;
  int err = authority_parse(dest, strlen(dest), 443, &h);

  if (err != 0) {
    printf("%s: invalid destination: %s\n", dest, err_str(err));
    return 2;
  }
  policy_decide(cfg->policy, &facts, o->now, &v);
  /* A name denied by name is never resolved, as in the proxy. */
  if (v.action != ACTION_DENY && h.kind == HOST_NAME && o->resolve) {
    st = resolve(cfg, h.name, h.port, &res);
    resolved = true;
    if (st == DNS_OK) {
      dns_result_facts(&res, &facts, &store);
      policy_decide(cfg->policy, &facts, o->now, &v);
    }
  }
  if (resolved && st != DNS_OK && v.action != ACTION_DENY) {
    /* The proxy would answer 502/504 and open no connection. */
    printf("%s:%u: UNREACHABLE\n", h.name, h.port);
    print_resolution(st, &res);
    return 1;
  }
  printf("%s:%u: %s\n", h.name, h.port, v.action == ACTION_DENY ? "DENY"
                                         : v.action == ACTION_LOG ? "ALLOW (logged)"
                                                                  : "ALLOW");
  if (resolved)
    print_resolution(st, &res);
  if (v.rule != NULL)
    print_rule(&v);
  else
    printf("  no vendor rule matches\n");
  return v.action == ACTION_DENY ? 1 : 0;
}

int check_run(const struct config *cfg, const struct check_opts *o, int ndests,
              char *const *dests) {
  char at[32];
  int i, rc, status = 0;

  rfc3339_format(o->now, at, sizeof(at));
  printf("policy time: %s\n", at);
  for (i = 0; i < ndests; i++) {
    rc = check_one(cfg, o, dests[i]);
    if (rc > status)
      status = rc;
  }
  return status;
}
