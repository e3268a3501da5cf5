/* Admin endpoint client: blocking sockets are fine for a one-shot command. */
#include "proxy/cmd/adminclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define RESPONSE_MAX (4u << 20)

static long long ms_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for FD to become ready for EVENTS before DEADLINE. */
static int wait_fd(int fd, short events, long long deadline) {
  struct pollfd p = {.fd = fd, .events = events};
  long long left = deadline - ms_now();
  int rc;
  if (left <= 0)
    return -ETIMEDOUT;
  rc = poll(&p, 1, (int)left);
  return rc > 0 ? 0 : rc == 0 ? -ETIMEDOUT : -errno;
}

static int connect_to(const struct sockaddr *addr, long long deadline) {
  socklen_t len =
      addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), rc, soerr;
  socklen_t slen = sizeof(soerr);
  if (fd < 0)
    return -errno;
  if (connect(fd, addr, len) == 0)
    return fd;
  if (errno != EINPROGRESS) {
    rc = -errno;
    goto fail;
  }
  if ((rc = wait_fd(fd, POLLOUT, deadline)) != 0)
    goto fail;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) != 0 || soerr != 0) {
    rc = soerr != 0 ? -soerr : -errno;
    goto fail;
  }
  return fd;
fail:
  close(fd);
  return rc;
}

static int send_all(int fd, const char *p, size_t n, long long deadline) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
      int rc = wait_fd(fd, POLLOUT, deadline);
      if (rc != 0)
        return rc;
      continue;
    }
    if (w < 0)
      return -errno;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Reads until EOF (the endpoint always closes after its response). */
static int read_all(int fd, char **out, size_t *outlen, long long deadline) {
  size_t len = 0, cap = 8192;
  char *buf = malloc(cap);
  int rc = 0;
  if (buf == NULL)
    return -ENOMEM;
  for (;;) {
    ssize_t r;
    if (len + 1 >= cap) {
      char *nb = cap >= RESPONSE_MAX ? NULL : realloc(buf, cap * 2);
      if (nb == NULL) {
        rc = -EFBIG;
        break;
      }
      buf = nb;
      cap *= 2;
    }
    r = recv(fd, buf + len, cap - len - 1, 0);
    if (r == 0)
      break;
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
      if ((rc = wait_fd(fd, POLLIN, deadline)) != 0)
        break;
      continue;
    }
    if (r < 0) {
      rc = -errno;
      break;
    }
    len += (size_t)r;
  }
  if (rc != 0) {
    free(buf);
    return rc;
  }
  buf[len] = '\0';
  *out = buf;
  *outlen = len;
  return 0;
}

/* The address to connect to for ADDR: a wildcard (0.0.0.0, ::) listens
 * on loopback too, and the endpoint answers only to its own address in the
 * Host header, so the loopback address of the family is used. HOST
 * receives the Host value: "ip:port" or "[v6]:port". */
static void endpoint_of(const struct sockaddr *addr, struct sockaddr_storage *to, char *host,
                        size_t size) {
  char ip[INET6_ADDRSTRLEN] = "";
  memcpy(to, addr,
         addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
  if (to->ss_family == AF_INET6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)to;
    if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
      in6->sin6_addr = in6addr_loopback;
    inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
    snprintf(host, size, "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
  } else {
    struct sockaddr_in *in = (struct sockaddr_in *)to;
    if (in->sin_addr.s_addr == htonl(INADDR_ANY))
      in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
    snprintf(host, size, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
  }
}

int adminclient_request(const struct sockaddr *addr, const char *method, const char *path,
                        const char *token, unsigned timeout_ms, char **body, char *err,
                        size_t errsize) {
  long long deadline = ms_now() + timeout_ms;
  char req[1024], host[INET6_ADDRSTRLEN + 16], *resp = NULL, *start;
  struct sockaddr_storage to;
  size_t resp_len = 0;
  int fd, rc, status = 0;

  *body = NULL;
  endpoint_of(addr, &to, host, sizeof(host));
  /* A POST says application/json: the endpoint refuses the types a web
   * page could send without a preflight. */
  snprintf(req, sizeof(req),
           "%s %s HTTP/1.1\r\nHost: %s\r\n%sContent-Length: 0\r\nConnection: close\r\n"
           "%s%s%s\r\n",
           method, path, host,
           strcmp(method, "POST") == 0 ? "Content-Type: application/json\r\n" : "",
           token != NULL && token[0] ? "Authorization: Bearer " : "", token != NULL ? token : "",
           token != NULL && token[0] ? "\r\n" : "");
  if ((fd = connect_to((const struct sockaddr *)&to, deadline)) < 0) {
    snprintf(err, errsize, "cannot connect: %s", strerror(-fd));
    return fd;
  }
  rc = send_all(fd, req, strlen(req), deadline);
  if (rc == 0)
    rc = read_all(fd, &resp, &resp_len, deadline);
  close(fd);
  if (rc != 0) {
    snprintf(err, errsize, "%s", rc == -ETIMEDOUT ? "no answer in time" : strerror(-rc));
    return rc;
  }
  if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1 || (start = strstr(resp, "\r\n\r\n")) == NULL) {
    snprintf(err, errsize, "not an HTTP response");
    free(resp);
    return -EPROTO;
  }
  memmove(resp, start + 4, resp_len - (size_t)(start + 4 - resp) + 1);
  *body = resp;
  return status;
}
