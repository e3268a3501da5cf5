/* The admin endpoint's defences against a web page: a browser on the same
 * host (or in the same pod) can send requests to a loopback address, and
 * DNS rebinding lets a page read the answers under a name of its own. A
 * request is let in only if its Host names the endpoint itself, it carries
 * no Origin but the endpoint's own, and a POST is one no page can send
 * without a CORS preflight (which the endpoint never approves). */
#ifndef EMBARGO_PROXY_ADMINGATE_H
#define EMBARGO_PROXY_ADMINGATE_H

#include <sys/socket.h>

struct http_head;
struct config_admin;

enum admingate_verdict {
  ADMINGATE_OK,
  ADMINGATE_NO_HOST,        /* HTTP/1.1 without Host: 400 */
  ADMINGATE_FOREIGN_HOST,   /* Host names something else: 421 */
  ADMINGATE_FOREIGN_ORIGIN, /* Origin is not the endpoint's: 403 */
  ADMINGATE_SIMPLE_POST     /* POST without Content-Type: application/json: 415 */
};

/* Judges request head H that reached the endpoint at LOCAL (the accepted
 * connection's own address) under CFG (admin.names). The endpoint's names
 * are: LOCAL's address, "localhost" when LOCAL is a loopback address, and
 * every entry of admin.names; an authority with a port must carry LOCAL's
 * port (an Origin without one means port 80). A Host may be left out in
 * HTTP/1.0 only. Pure: reads nothing but its arguments. */
enum admingate_verdict admingate_check(const struct http_head *h, const struct sockaddr *local,
                                       const struct config_admin *cfg);

#endif
