/* Fixed-size cells for one loop's short-lived objects of one kind, carved
 * from slabs mapped for them alone. Objects that come and go in bursts (an
 * exchange being decided, a ClientHello reader) then neither leave holes
 * among the long-lived ones in the malloc heap nor stay resident after the
 * burst: a slab whose cells are all free is unmapped, except one spare
 * kept while objects keep coming (slab_pool_trim unmaps it once they stop).
 * A cell comes back zeroed. One loop's: not thread-safe. */
#ifndef EMBARGO_PROXY_SLAB_H
#define EMBARGO_PROXY_SLAB_H

#include <stdbool.h>
#include <stddef.h>

#define SLAB_BYTES (64u * 1024u) /* one slab, aligned to its size */

struct slab;

/* Zero-initialised, a pool is ready: the first slab_alloc sets its cell
 * size. */
struct slab_pool {
  size_t cell;          /* bytes per cell, 16-byte multiple */
  struct slab *partial; /* slabs with a free cell, the one allocated from first */
  struct slab *spare;   /* one empty slab kept, or NULL */
  bool spare_idle;      /* SPARE has not been used since the last slab_pool_trim */
  size_t in_use;        /* cells handed out */
  size_t slabs;         /* slabs mapped, the spare included */
};

/* A zeroed cell of SIZE bytes (the same SIZE on every call for a pool, at
 * most a quarter of SLAB_BYTES less the slab's header), or NULL when no
 * slab can be mapped. */
void *slab_alloc(struct slab_pool *p, size_t size);

/* Returns CELL (from slab_alloc on P; NULL-safe) to its slab; the slab is
 * unmapped when it was the last cell in use and a spare is kept already. */
void slab_free(struct slab_pool *p, void *cell);

/* Unmaps the spare slab if it has not been used since the previous call:
 * called by the loop's housekeeping, so that the last slab of a burst goes
 * too once nothing comes, while a steady flow keeps reusing it. */
void slab_pool_trim(struct slab_pool *p);

/* Unmaps P's slabs; every cell must have been freed. */
void slab_pool_free(struct slab_pool *p);

#endif
