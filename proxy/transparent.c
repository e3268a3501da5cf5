/* Intercepted connections (listeners in intercept or tproxy mode): the
 * original destination, recovered from the kernel, and the first bytes,
 * read without answering to tell a TLS ClientHello (inspected like a
 * CONNECT tunnel's) from an HTTP request (judged on its Host) from
 * anything else (judged on the original destination alone). */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy/conn-int.h"
#include "proxy/log.h"
#include "proxy/server.h"

/* From linux/netfilter_ipv4.h and linux/netfilter_ipv6/ip6_tables.h, whose
 * headers clash with the C library's netinet/in.h. */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

/* Bytes enough to tell a request line from anything else: the longest
 * method Embargo forwards plus a space. */
#define SNIFF_MAX 24

int transparent_original_dst(struct conn *c) {
  socklen_t len = sizeof(c->ex->orig_dst);
  uv_os_fd_t fd;
  int rc;

  memset(&c->ex->orig_dst, 0, sizeof(c->ex->orig_dst));
  if (uv_fileno((const uv_handle_t *)&c->cli.tcp, &fd) != 0)
    return UV_EBADF;
  if (c->lst->mode == LISTEN_TPROXY) /* the socket was accepted for the original address */
    rc = getsockname(fd, (struct sockaddr *)&c->ex->orig_dst, &len);
  else if (c->lst->addr.ss_family == AF_INET6)
    rc = getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &c->ex->orig_dst, &len);
  else
    rc = getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &c->ex->orig_dst, &len);
  if (rc != 0) {
    memset(&c->ex->orig_dst, 0, sizeof(c->ex->orig_dst));
    return -errno;
  }
  return 0;
}

void transparent_start(struct conn *c) {
  conn_arm_timer(c, c->srv->cfg->transparent.timeout);
  conn_update_reading(c);
}

/* The destination is the original one, as an IP literal: what is judged
 * when the connection claims no name. */
void transparent_dest_from_orig(struct conn *c) {
  const struct sockaddr *sa = (const struct sockaddr *)&c->ex->orig_dst;
  memset(&c->ex->dest, 0, sizeof(c->ex->dest));
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    c->ex->dest.kind = HOST_IPV4;
    c->ex->dest.port = ntohs(in->sin_port);
    memcpy(c->ex->dest.addr, &in->sin_addr, 4);
  } else {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    c->ex->dest.kind = HOST_IPV6;
    c->ex->dest.port = ntohs(in6->sin6_port);
    memcpy(c->ex->dest.addr, &in6->sin6_addr, 16);
  }
  log_fmt_ip(sa, c->ex->dest.name, sizeof(c->ex->dest.name));
  c->ex->dest.len = strlen(c->ex->dest.name);
  host_format(&c->ex->dest, c->ex->authority, sizeof(c->ex->authority));
}

/* Neither TLS nor HTTP (or nothing at all): judged on the original
 * destination with transparent.on_unknown, relayed as bytes if allowed. */
static void route_unknown(struct conn *c) {
  c->ex->relay = CONN_RELAY_TUNNEL;
  transparent_dest_from_orig(c);
  route_start(c);
}

/* What the buffered first bytes are: 1 TLS, 2 HTTP, 3 neither, 0 not yet
 * known. A request line starts with an upper-case token and a space. */
static int classify(const char *p, size_t n) {
  size_t i;
  if (n == 0)
    return 0;
  if ((unsigned char)p[0] == 0x16)
    return 1;
  for (i = 0; i < n && i < SNIFF_MAX; i++) {
    if (p[i] == ' ')
      return i > 0 ? 2 : 3;
    if (p[i] < 'A' || p[i] > 'Z')
      return 3;
  }
  return n >= SNIFF_MAX ? 3 : 0;
}

/* Hands the connection to the front end its first bytes call for. */
static void dispatch(struct conn *c) {
  switch (classify(c->ex->spill + c->ex->spill_off, c->ex->spill_len)) {
  case 1:
    c->ex->relay = CONN_RELAY_TUNNEL;
    peek_start(c);
    break;
  case 2:
    if (front_init(c) != 0) {
      conn_close(c);
      return;
    }
    conn_set_state(c, CONN_ST_HEAD);
    uv_timer_stop(&c->timer);
    front_process_spill(c);
    break;
  case 3:
    uv_timer_stop(&c->timer);
    route_unknown(c);
    break;
  default:
    break; /* wait for more */
  }
}

void transparent_data(struct conn *c, ssize_t nread, const char *data) {
  if (nread < 0) {
    if (nread == UV_EOF && c->ex->spill_len > 0) {
      c->cli.eof = true;
      uv_timer_stop(&c->timer);
      route_unknown(c); /* a few bytes, then FIN: still judged and logged */
      return;
    }
    conn_close(c);
    return;
  }
  /* Keep everything read so far for the front end (or the destination). */
  if (c->ex->spill_len == 0) {
    if (conn_input_consumed(c, data, (size_t)nread, 0, false) != 0)
      return;
  } else {
    char *grown = realloc(c->ex->spill, c->ex->spill_off + c->ex->spill_len + (size_t)nread);
    if (grown == NULL) {
      conn_close(c);
      return;
    }
    c->ex->spill = grown;
    memcpy(c->ex->spill + c->ex->spill_off + c->ex->spill_len, data, (size_t)nread);
    c->ex->spill_len += (size_t)nread;
  }
  dispatch(c);
}

void transparent_timeout(struct conn *c) {
  route_unknown(c); /* silent: a protocol where the server speaks first, or nothing */
}
