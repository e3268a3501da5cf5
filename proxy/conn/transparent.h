/* SNIFF: an intercepted connection's original destination and first bytes. The phase's contract is
 * at the top of transparent.c; only the dispatcher (dispatch.c) names it. */
#ifndef EMBARGO_PROXY_TRANSPARENT_H
#define EMBARGO_PROXY_TRANSPARENT_H

#include "proxy/conn/conn-t.h"

extern const struct phase sniff_phase;

#endif
