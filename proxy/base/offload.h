/* Work taken off the loops: Embargo's own background threads, below the
 * loops' priority, and each loop's port through which finished work comes
 * back to the loop that queued it.
 *
 * libuv's thread pool is not used for this: in libuv 1.44 a pool thread
 * hands a finished request back with uv_async_send, whose loop side spins
 * (sched_yield in a loop) while the sender is between its two stores. A
 * sender below the loop's priority is preempted exactly there by the loop
 * it has just woken, and the loop spins, serving nobody, until the
 * scheduler lets the sender finish: milliseconds for every connection on
 * that loop. Here a thread appends to the port's list under a mutex held
 * for nothing else (no system call inside), then rings an eventfd the loop
 * polls; nothing the loop needs is held while a thread rings.
 *
 * The process's pool (struct offload) is made and freed by one thread,
 * outside every loop; a port belongs to its loop. */
#ifndef EMBARGO_PROXY_OFFLOAD_H
#define EMBARGO_PROXY_OFFLOAD_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

struct offload;
struct offload_port;

/* One piece of work. WORK runs on a background thread, DONE then on the
 * loop of the port it was queued on; the request is the caller's
 * (usually inside its own structure) and untouched after DONE. */
struct offload_req {
  struct offload_req *next;
  struct offload_port *port;
  void (*work)(struct offload_req *r);
  void (*done)(struct offload_req *r);
};

/* NTHREADS threads (at least one) that lower themselves to NICE before
 * their first work. 0, or a negative errno with nothing made. */
int offload_new(size_t nthreads, int nice, struct offload **out);

/* Stops and joins the threads, then frees the ports closed on it (a
 * thread may ring a port after its loop has seen the last piece and
 * closed it); every port must be closed, and its loop done (NULL-safe). */
void offload_free(struct offload *o);

size_t offload_threads(const struct offload *o);

/* A port on LOOP for O's work. 0, or a negative errno with nothing made
 * (*OUT untouched). */
int offload_port_new(uv_loop_t *loop, struct offload *o, struct offload_port **out);

/* Closes the port once the work queued on it has come back (each DONE
 * still runs, on the loop); the loop lives until then (NULL-safe). */
void offload_port_close(struct offload_port *p);

/* Queues R on port P: WORK on a thread, then DONE on P's loop. 0, or
 * -ESHUTDOWN once the port is closing. */
int offload_queue(struct offload_port *p, struct offload_req *r,
                  void (*work)(struct offload_req *r), void (*done)(struct offload_req *r));

#endif
