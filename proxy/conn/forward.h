/* FORWARD: an HTTP request and its response relayed. The phase's contract is at the top of
 * forward.c; only the dispatcher (dispatch.c) names it. */
#ifndef EMBARGO_PROXY_FORWARD_H
#define EMBARGO_PROXY_FORWARD_H

#include "proxy/conn/conn-t.h"

extern const struct phase forward_phase;

#endif
