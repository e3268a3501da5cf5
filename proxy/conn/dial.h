/* CONNECTING: the judged addresses dialled in turn. The phase's contract is at the top of dial.c;
 * only the dispatcher (dispatch.c) names it. */
#ifndef EMBARGO_PROXY_DIAL_H
#define EMBARGO_PROXY_DIAL_H

#include "proxy/conn/conn-t.h"

extern const struct phase dial_phase;

#endif
