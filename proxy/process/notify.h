/* Telling the service manager what the process is doing: the sd_notify(3)
 * datagram protocol over the AF_UNIX socket named by $NOTIFY_SOCKET, which
 * systemd sets for a Type=notify unit. Written out here: a few lines do not
 * justify linking libsystemd. Without $NOTIFY_SOCKET every call does
 * nothing. Main thread only. */
#ifndef EMBARGO_PROXY_NOTIFY_H
#define EMBARGO_PROXY_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

/* Parses TEXT, a $NOTIFY_SOCKET value, into *ADDR and *LEN: an absolute
 * path, or '@' followed by an abstract socket name (the '@' becomes the
 * leading NUL). Returns 0, or -EINVAL for anything else (relative, empty,
 * "vsock:" and other forms) and -ENAMETOOLONG when it does not fit
 * sun_path. */
int notify_parse_address(const char *text, struct sockaddr_un *addr, socklen_t *len);

/* Reads $NOTIFY_SOCKET and removes it from the environment, so that no
 * program Embargo might start inherits it. Returns 0 (also when it is not
 * set: notifications are then off), or a negative code when it is set but
 * unusable: a warning on standard error names it, and notifications are
 * off. */
int notify_init(void);

/* Whether notify_init found a socket to tell. */
bool notify_enabled(void);

/* Sends MSG, lines of "KEY=VALUE" separated by '\n', as one datagram.
 * Returns 0 (also when notifications are off) or -errno. */
int notify_send(const char *msg);

/* READY=1: the listeners are bound, the policy is loaded and the workers
 * accept; STATUS (may be NULL) is a one-line description for `systemctl
 * status`. */
int notify_ready(const char *status);

/* notify_ready with the status "serving: policy VERSION", followed by
 * "; the last reload was rejected: REJECTED" when REJECTED is not NULL.
 * After a reload the service manager waits for it, whatever the outcome. */
int notify_serving(const char *version, const char *rejected);

/* RELOADING=1 with MONOTONIC_USEC=, CLOCK_MONOTONIC now in microseconds
 * (systemd 253 and later want it for Type=notify-reload; earlier ones
 * ignore it). Must be followed by notify_serving once the reload is over,
 * whatever its outcome. */
int notify_reloading(void);

/* STOPPING=1, sent once whatever the number of calls: the process is
 * shutting down. STATUS (may be NULL) says why. */
int notify_stopping(const char *status);

/* "RELOADING=1\nMONOTONIC_USEC=USEC" into BUF (SIZE bytes). Returns the
 * length, or -ENOSPC. */
int notify_format_reloading(uint64_t usec, char *buf, size_t size);

#endif
