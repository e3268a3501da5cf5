/* HEAD: the HTTP front end (request heads). The phase's contract is at the top of front.c;
 * only the dispatcher (dispatch.c) names it. */
#ifndef EMBARGO_PROXY_FRONT_H
#define EMBARGO_PROXY_FRONT_H

#include "proxy/conn/conn-t.h"

extern const struct phase front_phase;

#endif
