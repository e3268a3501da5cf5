/* ROUTE: judge the name, resolve it, judge the answer, then PEEK, CONNECTING or a pooled upstream.
 * The phase's contract is at the top of route.c; only the dispatcher (dispatch.c) names it. */
#ifndef EMBARGO_PROXY_ROUTE_H
#define EMBARGO_PROXY_ROUTE_H

#include "proxy/conn/conn-t.h"

extern const struct phase route_phase;

#endif
