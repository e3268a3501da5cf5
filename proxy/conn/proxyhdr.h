/* PROXYHDR: the PROXY protocol header of a connection on a listener behind
 * a load balancer. The phase's contract is at the top of proxyhdr.c; only
 * the dispatcher (dispatch.c) names it. */
#ifndef EMBARGO_PROXY_PROXYHDR_H
#define EMBARGO_PROXY_PROXYHDR_H

#include "proxy/conn/conn-t.h"

extern const struct phase proxyhdr_phase;

#endif
