/* PEEK: the ClientHello read before dialling. The phase's contract is at the top of peek.c;
 * only the dispatcher (dispatch.c) names it. */
#ifndef EMBARGO_PROXY_PEEK_H
#define EMBARGO_PROXY_PEEK_H

#include "proxy/conn/conn-t.h"

extern const struct phase peek_phase;

#endif
