/* Slabs of fixed-size cells, mapped and unmapped whole. */
#include "proxy/base/slab.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

/* The header at the start of every slab; its cells follow. A slab is
 * aligned to SLAB_BYTES, so a cell finds its slab by masking its address. */
struct slab {
  struct slab *prev, *next; /* in the pool's partial list, while it has a free cell */
  void *free;               /* free cells, linked through their first word */
  size_t nfree;
  size_t ncells;
  char *untouched; /* cells never handed out start here (up to END) */
  char *end;
};

#define HEADER ((sizeof(struct slab) + 15) & ~(size_t)15)

static struct slab *slab_of(const void *cell) {
  return (struct slab *)((uintptr_t)cell & ~(uintptr_t)(SLAB_BYTES - 1));
}

/* A new slab aligned to its size: twice the size mapped, the rest given
 * back. Its pages are touched only as its cells are first handed out. */
static struct slab *map_slab(size_t cell) {
  size_t span = 2 * (size_t)SLAB_BYTES, head, tail;
  char *raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  char *at;
  struct slab *s;

  if (raw == MAP_FAILED)
    return NULL;
  at = (char *)(((uintptr_t)raw + SLAB_BYTES - 1) & ~(uintptr_t)(SLAB_BYTES - 1));
  head = (size_t)(at - raw);
  tail = span - head - SLAB_BYTES;
  if (head > 0)
    munmap(raw, head);
  if (tail > 0)
    munmap(at + SLAB_BYTES, tail);
  s = (struct slab *)at;
  s->ncells = (SLAB_BYTES - HEADER) / cell;
  s->nfree = s->ncells;
  s->untouched = at + HEADER;
  s->end = at + HEADER + s->ncells * cell;
  return s;
}

static void unlink_partial(struct slab_pool *p, struct slab *s) {
  if (s->prev != NULL)
    s->prev->next = s->next;
  else
    p->partial = s->next;
  if (s->next != NULL)
    s->next->prev = s->prev;
  s->prev = s->next = NULL;
}

static void push_partial(struct slab_pool *p, struct slab *s) {
  s->prev = NULL;
  s->next = p->partial;
  if (p->partial != NULL)
    p->partial->prev = s;
  p->partial = s;
}

void *slab_alloc(struct slab_pool *p, size_t size) {
  struct slab *s;
  void *cell;

  size = (size + 15) & ~(size_t)15;
  assert(p->cell == 0 || p->cell == size);
  assert(size >= sizeof(void *) && size <= (SLAB_BYTES - HEADER) / 4);
  p->cell = size;
  if ((s = p->partial) == NULL) {
    if ((s = p->spare) != NULL) {
      p->spare = NULL;
    } else if ((s = map_slab(size)) != NULL) {
      p->slabs++;
    } else {
      return NULL;
    }
    push_partial(p, s);
  }
  if (s->free != NULL) {
    cell = s->free;
    memcpy(&s->free, cell, sizeof(void *));
  } else {
    cell = s->untouched;
    s->untouched += size;
  }
  if (--s->nfree == 0)
    unlink_partial(p, s);
  p->in_use++;
  memset(cell, 0, size);
  return cell;
}

void slab_free(struct slab_pool *p, void *cell) {
  struct slab *s;
  if (cell == NULL)
    return;
  s = slab_of(cell);
  memcpy(cell, &s->free, sizeof(void *));
  s->free = cell;
  p->in_use--;
  if (s->nfree++ == 0)
    push_partial(p, s);
  if (s->nfree < s->ncells)
    return;
  /* Empty: kept as the spare if there is none, else given back whole. */
  unlink_partial(p, s);
  if (p->spare == NULL) {
    p->spare = s;
    p->spare_idle = false;
    return;
  }
  munmap(s, SLAB_BYTES);
  p->slabs--;
}

void slab_pool_trim(struct slab_pool *p) {
  if (p->spare != NULL && p->spare_idle) {
    munmap(p->spare, SLAB_BYTES);
    p->spare = NULL;
    p->slabs--;
  }
  p->spare_idle = p->spare != NULL;
}

void slab_pool_free(struct slab_pool *p) {
  assert(p->in_use == 0);
  while (p->partial != NULL) { /* slabs with free cells but none in use: none left */
    struct slab *s = p->partial;
    unlink_partial(p, s);
    munmap(s, SLAB_BYTES);
  }
  if (p->spare != NULL)
    munmap(p->spare, SLAB_BYTES);
  memset(p, 0, sizeof(*p));
}
