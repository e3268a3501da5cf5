/* RESPONDING: the answers Embargo gives itself. The phase's contract is at the top of respond.c;
 * only the dispatcher (dispatch.c) names it. */
#ifndef EMBARGO_PROXY_RESPOND_H
#define EMBARGO_PROXY_RESPOND_H

#include "proxy/conn/conn-t.h"

extern const struct phase respond_phase;

#endif
