/* Listening sockets: binding, accepting, and the accept-error diagnostics.
 * A listener belongs to its server (one worker) and outlives its
 * connections; every worker has its own socket for each configured
 * listener. */
#ifndef EMBARGO_PROXY_LISTENER_H
#define EMBARGO_PROXY_LISTENER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

struct server;
struct config_listen;

struct listener {
  uv_tcp_t tcp;
  struct server *srv;
  struct sockaddr_storage addr; /* as bound (port filled in if it was 0) */
  char name[64];                /* "127.0.0.1:3128" */
  int mode;                     /* enum listen_mode */
  bool proxy_protocol;          /* a PROXY protocol header starts each connection */
  uint64_t accept_errors;       /* failed accepts (EMFILE, ...) */
  uint64_t last_error_log;      /* loop time of the last one logged */
  bool paused;                  /* a connection is pending, not accepted (proxy/admit) */
};

/* Binds LST to CL's address on SRV's loop and starts listening. FIRST is
 * NULL for the first worker's socket, which binds CL's address itself (and,
 * with SHARED, lets the other workers' sockets join it with SO_REUSEPORT
 * once bound); otherwise LST joins FIRST's group, on the address FIRST got
 * (its port filled in if CL's was 0). Returns 0 or a negative libuv code
 * with a message in ERR. The handle is open (and must be closed with
 * listener_close) whatever the result. */
int listener_open(struct server *srv, struct listener *lst, const struct config_listen *cl,
                  const struct listener *first, bool shared, char *err, size_t errsize);

/* Stops accepting and closes the handle. Idempotent. */
void listener_close(struct listener *lst);

#endif
