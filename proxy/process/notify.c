/* The sd_notify(3) protocol: one datagram per state change to the socket
 * $NOTIFY_SOCKET names. */
#include "proxy/process/notify.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Where to send; len 0: notifications are off. */
static struct sockaddr_un target;
static socklen_t target_len;
static bool stopping_sent;

int notify_parse_address(const char *text, struct sockaddr_un *addr, socklen_t *len) {
  size_t n = text != NULL ? strlen(text) : 0;
  if (n < 2 || (text[0] != '/' && text[0] != '@'))
    return -EINVAL;
  /* A path needs its NUL inside sun_path; an abstract name is counted by
   * the address length and has none. */
  if (n > sizeof(addr->sun_path) - (text[0] == '/'))
    return -ENAMETOOLONG;
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  memcpy(addr->sun_path, text, n);
  if (text[0] == '@')
    addr->sun_path[0] = '\0';
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (text[0] == '/'));
  return 0;
}

int notify_init(void) {
  const char *text = getenv("NOTIFY_SOCKET");
  int rc = 0;
  target_len = 0;
  stopping_sent = false;
  if (text == NULL)
    return 0;
  if ((rc = notify_parse_address(text, &target, &target_len)) != 0) {
    fprintf(stderr,
            "embargo: warning: NOTIFY_SOCKET=%.120s: %s; the service manager is not told when "
            "Embargo is ready\n",
            text, rc == -ENAMETOOLONG ? "too long" : "not a path or @abstract name");
    target_len = 0;
  }
  unsetenv("NOTIFY_SOCKET");
  return rc;
}

bool notify_enabled(void) {
  return target_len != 0;
}

int notify_send(const char *msg) {
  int fd, rc = 0;
  if (target_len == 0)
    return 0;
  /* A fresh socket each time, as sd_notify does: these are rare events,
   * and nothing stays open for a forked child to inherit. */
  if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
    return -errno;
  if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (const struct sockaddr *)&target, target_len) < 0)
    rc = -errno;
  close(fd);
  return rc;
}

/* "HEAD\nSTATUS=status" (or HEAD alone) sent as one datagram. */
static int send_with_status(const char *head, const char *status) {
  char msg[512];
  if (status == NULL)
    return notify_send(head);
  snprintf(msg, sizeof(msg), "%s\nSTATUS=%s", head, status);
  return notify_send(msg);
}

int notify_ready(const char *status) {
  return send_with_status("READY=1", status);
}

int notify_serving(const char *version, const char *rejected) {
  char status[400];
  if (rejected == NULL)
    snprintf(status, sizeof(status), "serving: policy %s", version);
  else
    snprintf(status, sizeof(status), "serving: policy %s; the last reload was rejected: %.300s",
             version, rejected);
  return notify_ready(status);
}

int notify_format_reloading(uint64_t usec, char *buf, size_t size) {
  int n = snprintf(buf, size, "RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)usec);
  return n < 0 || (size_t)n >= size ? -ENOSPC : n;
}

int notify_reloading(void) {
  struct timespec ts;
  char msg[64];
  if (target_len == 0)
    return 0;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  notify_format_reloading((uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u, msg,
                          sizeof(msg));
  return notify_send(msg);
}

int notify_stopping(const char *status) {
  if (stopping_sent)
    return 0;
  stopping_sent = true;
  return send_with_status("STOPPING=1", status);
}
