/* The shared decision: refusals, vendor rules and configured outcomes. */
#include "proxy/decide/judge.h"

#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "filters/policy.h"
#include "proxy/decide/destcheck.h"
#include "proxy/base/dns.h"
#include "proxy/base/log.h"

static bool port_allowed(const struct config *cfg, uint16_t port) {
  size_t i;
  for (i = 0; i < cfg->nconnect_ports; i++)
    if (cfg->connect_ports[i] == port)
      return true;
  return false;
}

static void sockaddr_of(const struct ip_addr *a, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof(*ss));
  if (a->family == AF_INET) {
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    in4->sin_family = AF_INET;
    memcpy(&in4->sin_addr, a->addr, 4);
  } else {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in6->sin6_family = AF_INET6;
    memcpy(&in6->sin6_addr, a->addr, 16);
  }
}

/* The first refusal among the addresses to dial, if any. */
static enum judge_refusal refuse_address(struct destcheck *dc, const struct judge_input *in,
                                         uint64_t now_ms, char *detail, size_t size) {
  const char *name = in->host != NULL ? in->host->name : "the destination";
  char ip[64];
  size_t i;

  for (i = 0; i < in->ndial; i++) {
    const struct sockaddr *sa = (const struct sockaddr *)&in->dial[i];
    if (destcheck_is_self(dc, sa, now_ms)) {
      snprintf(detail, size, "the destination is this proxy (%s)",
               log_fmt_addr(sa, ip, sizeof(ip)));
      return JUDGE_SELF;
    }
    if (destcheck_is_internal(dc, sa, now_ms)) {
      if (in->host != NULL && in->host->kind == HOST_NAME)
        snprintf(detail, size, "%s resolves to internal address %s", name,
                 log_fmt_ip(sa, ip, sizeof(ip)));
      else
        snprintf(detail, size, "internal address %s", log_fmt_ip(sa, ip, sizeof(ip)));
      return JUDGE_INTERNAL;
    }
  }
  for (i = 0; i < in->nsni_addrs; i++) {
    struct sockaddr_storage ss;
    sockaddr_of(&in->sni_addrs[i], &ss);
    if (destcheck_is_internal(dc, (const struct sockaddr *)&ss, now_ms)) {
      snprintf(detail, size, "server name %s is an internal address",
               log_fmt_ip((const struct sockaddr *)&ss, ip, sizeof(ip)));
      return JUDGE_INTERNAL;
    }
  }
  return JUDGE_PASS;
}

static void ip_of(const struct sockaddr *sa, struct ip_addr *out) {
  struct sockaddr_in tmp;
  sa = sockaddr_unmapped(sa, &tmp);
  out->family = sa->sa_family;
  if (sa->sa_family == AF_INET)
    memcpy(out->addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
  else
    memcpy(out->addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
}

void judge_destination(const struct config *cfg, const struct policy *p, struct destcheck *dc,
                       const struct judge_input *in, int64_t now, uint64_t now_ms,
                       struct judgement *out) {
  struct ip_addr addrs[DNS_MAX_ADDRS + JUDGE_MAX_SNI_ADDRS];
  struct facts facts = {.host = in->host, .sni = in->sni, .nsni = in->nsni, .ja4 = in->ja4,
                        .path = in->path, .path_len = in->path_len};
  size_t i;

  memset(out, 0, sizeof(*out));
  if (in->connect && in->host != NULL && !port_allowed(cfg, in->host->port)) {
    out->refusal = JUDGE_PORT;
    snprintf(out->detail, sizeof(out->detail), "CONNECT to port %u is not allowed",
             in->host->port);
  } else {
    out->refusal = refuse_address(dc, in, now_ms, out->detail, sizeof(out->detail));
  }
  if (out->refusal != JUDGE_PASS) { /* refused whatever the vendor lists say */
    out->verdict.action = ACTION_DENY;
    out->verdict.rule_action = ACTION_DENY;
    return;
  }
  if (in->resolved != NULL) { /* the CNAME chain */
    facts.cnames = in->resolved->cnames;
    facts.ncnames = in->resolved->ncnames;
  }
  /* The addresses judged are the ones the connection may go to: the answer's
   * for a name that was resolved, the original destination for a
   * transparent connection (whatever its claimed name resolves to). */
  facts.naddrs = 0;
  for (i = 0; i < in->ndial && facts.naddrs < DNS_MAX_ADDRS; i++)
    ip_of((const struct sockaddr *)&in->dial[i], &addrs[facts.naddrs++]);
  for (i = 0; i < in->nsni_addrs && facts.naddrs < DNS_MAX_ADDRS + JUDGE_MAX_SNI_ADDRS; i++)
    addrs[facts.naddrs++] = in->sni_addrs[i];
  facts.addrs = addrs;
  if (in->client != NULL) {
    struct ip_addr client;
    ip_of(in->client, &client);
    facts.groups = policy_client_groups(p, client.family, client.addr);
  }
  policy_decide(p, &facts, now, &out->verdict);
  for (i = 0; i < in->noutcomes; i++) {
    const struct judge_outcome *o = &in->outcomes[i];
    if (action_strength(o->action) > action_strength(out->verdict.action)) {
      out->verdict.action = o->action;
      out->option = o->option;
    }
  }
  if (out->verdict.action == ACTION_DENY && policy_monitor(p)) {
    out->verdict.action = ACTION_LOG; /* monitor mode never denies */
    out->verdict.monitor = true;
  }
}

bool judge_denies(const struct judgement *j) {
  return j->refusal != JUDGE_PASS || j->verdict.action == ACTION_DENY;
}

void judge_add_outcome(struct judge_input *in, enum action action, const char *option) {
  if (in->noutcomes < JUDGE_MAX_OUTCOMES)
    in->outcomes[in->noutcomes++] = (struct judge_outcome){.action = action, .option = option};
}

/* Compares the IP addresses (not ports) of A and B, unmapped. */
static bool same_address(const struct sockaddr *a, const struct sockaddr *b) {
  struct sockaddr_in t1, t2;
  return sockaddr_same_ip(sockaddr_unmapped(a, &t1), sockaddr_unmapped(b, &t2));
}

bool judge_dst_mismatch(const struct dns_result *answer, const struct sockaddr *orig_dst) {
  size_t i;
  if (answer == NULL)
    return true;
  for (i = 0; i < answer->naddrs; i++)
    if (same_address((const struct sockaddr *)&answer->addrs[i], orig_dst))
      return false;
  return true;
}
