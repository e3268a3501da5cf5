/* The service manager notifications: what a Type=notify unit's manager
 * receives on its datagram socket, at a path or an abstract name, and that
 * nothing is sent or inherited without one. */
#define _DEFAULT_SOURCE

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "proxy/process/notify.h"

/* The manager's end: a datagram socket bound to NAME (a path, or
 * "@abstract"), with a receive timeout so a missing message fails the
 * test instead of hanging it. */
static int manager_bind(const char *name) {
  struct sockaddr_un addr;
  socklen_t len;
  struct timeval tv = {.tv_sec = 2};
  int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
  cr_assert_geq(fd, 0);
  cr_assert_eq(notify_parse_address(name, &addr, &len), 0);
  cr_assert_eq(bind(fd, (struct sockaddr *)&addr, len), 0, "bind %s: %s", name, strerror(errno));
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

/* The next datagram, NUL-terminated, or "" after the timeout. */
static const char *manager_recv(int fd) {
  static char buf[1024];
  ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
  buf[n > 0 ? n : 0] = '\0';
  return buf;
}

static uint64_t monotonic_usec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void check_lifecycle(int fd) {
  cr_assert_eq(notify_serving("3f2a", NULL), 0);
  cr_expect_str_eq(manager_recv(fd), "READY=1\nSTATUS=serving: policy 3f2a");

  uint64_t before = monotonic_usec();
  cr_assert_eq(notify_reloading(), 0);
  uint64_t after = monotonic_usec();
  const char *msg = manager_recv(fd);
  unsigned long long usec = 0;
  cr_assert_eq(sscanf(msg, "RELOADING=1\nMONOTONIC_USEC=%llu", &usec), 1, "got \"%s\"", msg);
  cr_expect(usec >= before && usec <= after, "MONOTONIC_USEC %llu outside [%llu, %llu]", usec,
            (unsigned long long)before, (unsigned long long)after);

  cr_assert_eq(notify_serving("3f2a", "embargo.yaml:3:1: bad"), 0);
  cr_expect_str_eq(manager_recv(fd), "READY=1\nSTATUS=serving: policy 3f2a; the last reload was "
                                     "rejected: embargo.yaml:3:1: bad");

  cr_assert_eq(notify_stopping("stopping"), 0);
  cr_expect_str_eq(manager_recv(fd), "STOPPING=1\nSTATUS=stopping");
  /* Once only: the next message the manager gets is the barrier's. */
  cr_assert_eq(notify_stopping(NULL), 0);
  cr_assert_eq(notify_send("BARRIER=1"), 0);
  cr_expect_str_eq(manager_recv(fd), "BARRIER=1");
}

Test(notify, path_socket_receives_ready_reloading_ready_stopping) {
  char dir[] = "/tmp/embargo-notify-XXXXXX", path[64];
  cr_assert_not_null(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/notify", dir);
  int fd = manager_bind(path);
  setenv("NOTIFY_SOCKET", path, 1);
  cr_assert_eq(notify_init(), 0);
  cr_expect(notify_enabled());
  cr_expect_null(getenv("NOTIFY_SOCKET"), "a child would inherit NOTIFY_SOCKET");
  check_lifecycle(fd);
  close(fd);
  unlink(path);
  rmdir(dir);
}

Test(notify, abstract_socket_receives_ready_reloading_ready_stopping) {
  char name[64];
  snprintf(name, sizeof(name), "@embargo-notify-test-%d", (int)getpid());
  int fd = manager_bind(name);
  setenv("NOTIFY_SOCKET", name, 1);
  cr_assert_eq(notify_init(), 0);
  check_lifecycle(fd);
  close(fd);
}

Test(notify, without_notify_socket_nothing_is_sent) {
  unsetenv("NOTIFY_SOCKET");
  cr_assert_eq(notify_init(), 0);
  cr_expect_not(notify_enabled());
  cr_expect_eq(notify_serving("3f2a", NULL), 0);
  cr_expect_eq(notify_reloading(), 0);
  cr_expect_eq(notify_stopping(NULL), 0);
}

Test(notify, unusable_addresses_are_refused) {
  struct sockaddr_un addr;
  socklen_t len;
  char longname[sizeof(addr.sun_path) + 8];
  cr_expect_eq(notify_parse_address("", &addr, &len), -EINVAL);
  cr_expect_eq(notify_parse_address("run/notify", &addr, &len), -EINVAL);
  cr_expect_eq(notify_parse_address("vsock:2:1234", &addr, &len), -EINVAL);
  cr_expect_eq(notify_parse_address("@", &addr, &len), -EINVAL);
  memset(longname, 'a', sizeof(longname) - 1);
  longname[0] = '/';
  longname[sizeof(longname) - 1] = '\0';
  cr_expect_eq(notify_parse_address(longname, &addr, &len), -ENAMETOOLONG);
  /* A path filling sun_path but for its NUL fits; an abstract name may
   * use every byte. */
  longname[sizeof(addr.sun_path) - 1] = '\0';
  cr_expect_eq(notify_parse_address(longname, &addr, &len), 0);
  longname[0] = '@';
  longname[sizeof(addr.sun_path) - 1] = 'a';
  longname[sizeof(addr.sun_path)] = '\0';
  cr_expect_eq(notify_parse_address(longname, &addr, &len), 0);
  cr_expect_eq(len, sizeof(addr));

  setenv("NOTIFY_SOCKET", "relative/path", 1);
  cr_expect_eq(notify_init(), -EINVAL);
  cr_expect_not(notify_enabled());
  cr_expect_null(getenv("NOTIFY_SOCKET"));
}

Test(notify, abstract_name_keeps_its_length_and_no_nul) {
  struct sockaddr_un addr;
  socklen_t len;
  cr_assert_eq(notify_parse_address("@abc", &addr, &len), 0);
  cr_expect_eq(len, offsetof(struct sockaddr_un, sun_path) + 4);
  cr_expect_eq(addr.sun_path[0], '\0');
  cr_expect_eq(memcmp(addr.sun_path + 1, "abc", 3), 0);
  cr_assert_eq(notify_parse_address("/run/systemd/notify", &addr, &len), 0);
  cr_expect_str_eq(addr.sun_path, "/run/systemd/notify");
  cr_expect_eq(len, offsetof(struct sockaddr_un, sun_path) + sizeof("/run/systemd/notify"));
}

Test(notify, reloading_message_format) {
  char buf[64];
  cr_expect_eq(notify_format_reloading(1234567, buf, sizeof(buf)),
               (int)strlen("RELOADING=1\nMONOTONIC_USEC=1234567"));
  cr_expect_str_eq(buf, "RELOADING=1\nMONOTONIC_USEC=1234567");
  cr_expect_eq(notify_format_reloading(1234567, buf, 10), -ENOSPC);
}
