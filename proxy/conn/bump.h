/* BUMP: the block page over TLS for a denied tunnel. The phase's contract is at the top of bump.c;
 * only the dispatcher (dispatch.c) names it. */
#ifndef EMBARGO_PROXY_BUMP_H
#define EMBARGO_PROXY_BUMP_H

#include "proxy/conn/conn-t.h"

extern const struct phase bump_phase;

#endif
