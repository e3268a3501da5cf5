/* The one decision the proxy and `embargo check` share: every refusal and
 * every vendor rule, for what is known of a destination at one stage of a
 * connection (the requested name; then its answer and the addresses to be
 * dialled; then the ClientHello). Strictest wins; refusals first. */
#ifndef EMBARGO_PROXY_JUDGE_H
#define EMBARGO_PROXY_JUDGE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "filters/policy-t.h"

struct config;
struct destcheck;
struct dns_answer;
struct dns_result;
struct policy;

#define JUDGE_MAX_OUTCOMES 4
#define JUDGE_MAX_SNI_ADDRS 8

/* A configured action for something the proxy observed (a ClientHello
 * outcome, an unidentified protocol, a destination mismatch), named by the
 * option that sets it. */
struct judge_outcome {
  enum action action;
  const char *option; /* "tls_inspect.on_no_sni", "transparent.on_dst_mismatch", ... */
};

/* What is known of a destination. All borrowed; absent facts NULL / 0. */
struct judge_input {
  const struct host *host;           /* requested or claimed name (or IP literal) */
  bool connect;                      /* a CONNECT: its port must be in connect_ports */
  const struct dns_answer *resolved;   /* HOST's answer: CNAME chain and addresses */
  const struct sockaddr_storage *dial; /* the addresses the connection may go to */
  size_t ndial;
  const char *const *sni;            /* normalised server names of the ClientHello */
  size_t nsni;
  const struct ip_addr *sni_addrs;   /* its IP-literal server names: judged as addresses, */
  size_t nsni_addrs;                 /* and refused when internal, like a destination */
  const char *ja4;                   /* JA4 fingerprint of the ClientHello */
  const char *path;                  /* a plain-HTTP request's target, judged against path rules */
  size_t path_len;
  const struct sockaddr *client; /* the client's address, for its client groups; NULL: none */
  struct judge_outcome outcomes[JUDGE_MAX_OUTCOMES];
  size_t noutcomes;
};

enum judge_refusal {
  JUDGE_PASS,     /* no refusal: the verdict decides */
  JUDGE_PORT,     /* CONNECT to a port outside connect_ports */
  JUDGE_INTERNAL, /* an address to dial is internal */
  JUDGE_SELF      /* an address to dial is one of Embargo's own listeners */
};

struct judgement {
  enum judge_refusal refusal;
  char detail[320];      /* why, for a refusal */
  struct verdict verdict; /* the vendor rules and outcomes, strictest wins */
  const char *option;    /* the outcome option that decided, or NULL */
};

/* Judges IN at policy time NOW (NOW_MS: monotonic, for the host address
 * cache). Refusals are checked first (port, then each address to dial) and
 * stand whatever the vendor lists say (OUT's verdict is then a bare deny,
 * no rule). Otherwise the policy decides on every fact, and each outcome
 * stricter than the policy's verdict replaces its action (monitor mode
 * turns a deny into a log). Always fills OUT. */
void judge_destination(const struct config *cfg, const struct policy *p, struct destcheck *dc,
                       const struct judge_input *in, int64_t now, uint64_t now_ms,
                       struct judgement *out);

/* Whether OUT denies (a refusal or a deny verdict). */
bool judge_denies(const struct judgement *j);

/* Adds an outcome to IN (ignored past JUDGE_MAX_OUTCOMES). */
void judge_add_outcome(struct judge_input *in, enum action action, const char *option);

/* Whether a transparent connection's claimed name does not lead to where
 * the client was going: ANSWER (the name's answer, NULL when it did not
 * resolve) holds no address equal to ORIG_DST (ports aside; IPv4-mapped
 * IPv6 addresses compare as the IPv4 address they carry). The caller then
 * adds the transparent.on_dst_mismatch outcome. */
bool judge_dst_mismatch(const struct dns_result *answer, const struct sockaddr *orig_dst);

#endif
