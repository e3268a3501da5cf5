/* Background threads for work taken off the loops, and the loops' ports
 * (see offload.h for why not libuv's pool). */
#include "proxy/base/offload.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

struct offload {
  uv_mutex_t mu;
  uv_cond_t more;                  /* work queued, or stopping */
  struct offload_req *head, *tail; /* queued, oldest first */
  struct offload_port *closed;     /* ports closed, kept until the threads are joined */
  bool stopping;
  int nice;
  size_t nthreads; /* started */
  uv_thread_t threads[];
};

struct offload_port {
  uv_poll_t poll; /* on EFD, readable when work came back */
  struct offload *pool;
  uv_mutex_t mu;            /* guards DONE */
  struct offload_req *done; /* come back, newest first */
  int efd;
  size_t pending; /* queued and not yet back (the loop's) */
  bool closing;
  struct offload_port *next; /* in the pool's CLOSED */
};

/* A finished R goes back to its port; the eventfd is rung only when the
 * list was empty (the loop reads the eventfd before it takes the list, so
 * nothing is missed). The ring comes after the mutex is let go, so a
 * thread preempted in the write holds up nobody. By then the loop may have
 * taken R, run the last DONE of a closing port and closed it: a closed
 * port and its eventfd stay with the pool until its threads are joined
 * (offload_free), so the late ring is harmless. */
static void hand_back(struct offload_req *r) {
  struct offload_port *p = r->port;
  uint64_t one = 1;
  bool ring;
  uv_mutex_lock(&p->mu);
  ring = p->done == NULL;
  r->next = p->done;
  p->done = r;
  uv_mutex_unlock(&p->mu);
  if (ring)
    while (write(p->efd, &one, sizeof(one)) < 0 && errno == EINTR)
      ;
}

static void thread_main(void *arg) {
  struct offload *o = arg;
  /* Below the loops: a busy background takes what CPU the loops leave. A
   * thread cannot raise itself again, and nothing else runs here. */
  setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), o->nice);
  for (;;) {
    struct offload_req *r;
    uv_mutex_lock(&o->mu);
    while (o->head == NULL && !o->stopping)
      uv_cond_wait(&o->more, &o->mu);
    if (o->head == NULL) { /* stopping, nothing left */
      uv_mutex_unlock(&o->mu);
      return;
    }
    r = o->head;
    o->head = r->next;
    if (o->head == NULL)
      o->tail = NULL;
    uv_mutex_unlock(&o->mu);
    r->work(r);
    hand_back(r);
  }
}

int offload_new(size_t nthreads, int nice, struct offload **out) {
  struct offload *o;
  sigset_t all, old;
  int rc = 0;
  if (nthreads == 0)
    nthreads = 1;
  if ((o = calloc(1, sizeof(*o) + nthreads * sizeof(uv_thread_t))) == NULL)
    return -ENOMEM;
  o->nice = nice;
  if (uv_mutex_init(&o->mu) != 0) {
    free(o);
    return -ENOMEM;
  }
  if (uv_cond_init(&o->more) != 0) {
    uv_mutex_destroy(&o->mu);
    free(o);
    return -ENOMEM;
  }
  /* Signals are the main loop's: the threads start with every one blocked
   * but those a fault raises in the thread itself (a crash must still
   * report, and end the process, from where it happened). */
  sigfillset(&all);
  for (const int *sig = (const int[]){SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, 0};
       *sig != 0; sig++)
    sigdelset(&all, *sig);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  while (o->nthreads < nthreads && rc == 0)
    if ((rc = uv_thread_create(&o->threads[o->nthreads], thread_main, o)) == 0)
      o->nthreads++;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    offload_free(o);
    return rc;
  }
  *out = o;
  return 0;
}

void offload_free(struct offload *o) {
  if (o == NULL)
    return;
  uv_mutex_lock(&o->mu);
  o->stopping = true;
  uv_cond_broadcast(&o->more);
  uv_mutex_unlock(&o->mu);
  for (size_t i = 0; i < o->nthreads; i++)
    uv_thread_join(&o->threads[i]);
  while (o->closed != NULL) { /* no thread can ring them now */
    struct offload_port *p = o->closed;
    o->closed = p->next;
    close(p->efd);
    uv_mutex_destroy(&p->mu);
    free(p);
  }
  uv_cond_destroy(&o->more);
  uv_mutex_destroy(&o->mu);
  free(o);
}

size_t offload_threads(const struct offload *o) {
  return o != NULL ? o->nthreads : 0;
}

/* Nothing is out (pending is 0), but the thread that handed back the last
 * piece may not have rung yet: the port goes to the pool, which frees it
 * once its threads are joined. */
static void on_port_closed(uv_handle_t *h) {
  struct offload_port *p = h->data;
  uv_mutex_lock(&p->pool->mu);
  p->next = p->pool->closed;
  p->pool->closed = p;
  uv_mutex_unlock(&p->pool->mu);
}

/* A port that could not start: nothing was ever queued on it. */
static void on_port_failed(uv_handle_t *h) {
  struct offload_port *p = h->data;
  close(p->efd);
  uv_mutex_destroy(&p->mu);
  free(p);
}

/* The loop's side: what came back, oldest first, each DONE run; the port
 * closes after the last one when it is closing. The mutex is held by a
 * thread only for the three stores of a push (never across a system
 * call), so the loop does not wait for one in practice. */
static void on_port_ready(uv_poll_t *h, int status, int events) {
  struct offload_port *p = h->data;
  struct offload_req *list, *fifo = NULL;
  uint64_t n;
  (void)status;
  (void)events;
  while (read(p->efd, &n, sizeof(n)) < 0 && errno == EINTR)
    ;
  uv_mutex_lock(&p->mu);
  list = p->done;
  p->done = NULL;
  uv_mutex_unlock(&p->mu);
  while (list != NULL) { /* newest first: reversed */
    struct offload_req *r = list;
    list = r->next;
    r->next = fifo;
    fifo = r;
  }
  while (fifo != NULL) {
    struct offload_req *r = fifo;
    fifo = r->next;
    p->pending--;
    r->done(r);
  }
  if (p->closing && p->pending == 0 && !uv_is_closing((uv_handle_t *)&p->poll))
    uv_close((uv_handle_t *)&p->poll, on_port_closed);
}

int offload_port_new(uv_loop_t *loop, struct offload *o, struct offload_port **out) {
  struct offload_port *p = calloc(1, sizeof(*p));
  int rc;
  if (p == NULL)
    return -ENOMEM;
  p->pool = o;
  if ((p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
    rc = -errno;
    free(p);
    return rc;
  }
  if (uv_mutex_init(&p->mu) != 0) {
    close(p->efd);
    free(p);
    return -ENOMEM;
  }
  if ((rc = uv_poll_init(loop, &p->poll, p->efd)) != 0) {
    uv_mutex_destroy(&p->mu);
    close(p->efd);
    free(p);
    return rc;
  }
  p->poll.data = p;
  if ((rc = uv_poll_start(&p->poll, UV_READABLE, on_port_ready)) != 0) {
    uv_close((uv_handle_t *)&p->poll, on_port_failed); /* freed once the loop has let go */
    return rc;
  }
  *out = p;
  return 0;
}

void offload_port_close(struct offload_port *p) {
  if (p == NULL || p->closing)
    return;
  p->closing = true;
  if (p->pending == 0)
    uv_close((uv_handle_t *)&p->poll, on_port_closed);
}

int offload_queue(struct offload_port *p, struct offload_req *r,
                  void (*work)(struct offload_req *r), void (*done)(struct offload_req *r)) {
  struct offload *o = p->pool;
  if (p->closing)
    return -ESHUTDOWN;
  r->next = NULL;
  r->port = p;
  r->work = work;
  r->done = done;
  p->pending++;
  uv_mutex_lock(&o->mu);
  if (o->tail != NULL)
    o->tail->next = r;
  else
    o->head = r;
  o->tail = r;
  uv_cond_signal(&o->more);
  uv_mutex_unlock(&o->mu);
  return 0;
}
