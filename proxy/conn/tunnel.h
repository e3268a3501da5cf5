/* TUNNEL: bytes relayed both ways, with half-close and the HelloRetryRequest watch. The phase's
 * contract is at the top of tunnel.c; only the dispatcher (dispatch.c) names it. */
#ifndef EMBARGO_PROXY_TUNNEL_H
#define EMBARGO_PROXY_TUNNEL_H

#include "proxy/conn/conn-t.h"

extern const struct phase tunnel_phase;

#endif
