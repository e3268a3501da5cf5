/* Unit tests for proxy/base/slab.c: cells come zeroed and apart, a burst's
 * slabs go back to the system once its cells are freed (all but one spare,
 * and the spare too once it goes unused), and a steady flow reuses the
 * spare without mapping. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proxy/base/slab.h"

#define CELL  4000 /* rounded up to 4000 (a multiple of 16) */
#define BURST 1000 /* about 4 MB of cells, over several dozen slabs */

static struct slab_pool pool;
static void *cells[BURST];

static void release(void) {
  for (size_t i = 0; i < BURST; i++)
    slab_free(&pool, cells[i]);
  memset(cells, 0, sizeof(cells));
  slab_pool_free(&pool);
}

TestSuite(slab, .fini = release);

/* This process's resident set, in bytes (/proc/self/statm). */
static size_t resident(void) {
  unsigned long size = 0, pages = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  cr_assert_not_null(f);
  cr_assert_eq(fscanf(f, "%lu %lu", &size, &pages), 2);
  fclose(f);
  return pages * (size_t)sysconf(_SC_PAGESIZE);
}

Test(slab, cells_come_zeroed_aligned_and_apart) {
  unsigned char *a = slab_alloc(&pool, CELL), *b = slab_alloc(&pool, CELL);
  cr_assert_not_null(a);
  cr_assert_not_null(b);
  cr_expect_eq((uintptr_t)a % 16, 0);
  cr_expect(a + CELL <= b || b + CELL <= a, "cells overlap");
  for (size_t i = 0; i < CELL; i++)
    cr_assert_eq(a[i], 0);
  memset(a, 0xa5, CELL);
  slab_free(&pool, a);
  a = slab_alloc(&pool, CELL);
  for (size_t i = 0; i < CELL; i++)
    cr_assert_eq(a[i], 0, "a reused cell comes back zeroed");
  slab_free(&pool, a);
  slab_free(&pool, b);
  cr_expect_eq(pool.in_use, 0);
}

Test(slab, a_burst_goes_back_to_the_system_once_its_cells_are_freed) {
  size_t before = resident(), peak, after;
  for (size_t i = 0; i < BURST; i++) {
    cr_assert_not_null(cells[i] = slab_alloc(&pool, CELL));
    memset(cells[i], 0x5a, CELL); /* used, as an exchange would be */
  }
  peak = resident();
  cr_expect_gt(pool.slabs, 50);
  cr_expect_gt(peak, before + BURST * CELL * 9 / 10, "%zu -> %zu", before, peak);
  for (size_t i = 0; i < BURST; i++) {
    slab_free(&pool, cells[i]);
    cells[i] = NULL;
  }
  cr_expect_eq(pool.slabs, 1, "one spare is kept");
  slab_pool_trim(&pool); /* it was used since: kept */
  cr_expect_eq(pool.slabs, 1);
  slab_pool_trim(&pool); /* unused for a whole period: unmapped */
  cr_expect_eq(pool.slabs, 0);
  after = resident();
  cr_expect_lt(after, before + (peak - before) / 10, "%zu before, %zu at the peak, %zu after",
               before, peak, after);
}

Test(slab, a_steady_flow_reuses_the_spare_without_mapping) {
  void *one = slab_alloc(&pool, CELL);
  slab_free(&pool, one);
  cr_assert_eq(pool.slabs, 1);
  for (int round = 0; round < 10; round++) {
    slab_pool_trim(&pool);
    one = slab_alloc(&pool, CELL); /* a connection between two housekeeping ticks */
    cr_assert_not_null(one);
    slab_free(&pool, one);
    cr_expect_eq(pool.slabs, 1, "round %d", round);
  }
}

Test(slab, a_cell_finds_its_slab_whatever_the_order_of_frees) {
  for (size_t i = 0; i < BURST; i++)
    cr_assert_not_null(cells[i] = slab_alloc(&pool, CELL));
  for (size_t i = 0; i < BURST; i += 2) { /* every other cell: no slab empties */
    slab_free(&pool, cells[i]);
    cells[i] = NULL;
  }
  cr_expect_eq(pool.in_use, BURST / 2);
  for (size_t i = 0; i < BURST; i += 2) /* refilled from the holes, no new slab */
    cr_assert_not_null(cells[i] = slab_alloc(&pool, CELL));
  cr_expect_lt(pool.slabs, BURST * CELL / (SLAB_BYTES - 4 * CELL) + 2);
}
