/* PARENT: an allowed exchange through the upstream proxy. The phase's
 * contract is at the top of parent.c; only the dispatcher (dispatch.c)
 * names it. */
#ifndef EMBARGO_PROXY_PARENT_H
#define EMBARGO_PROXY_PARENT_H

#include "proxy/conn/conn-t.h"

extern const struct phase parent_phase;

#endif
