/* Unit tests for load_read_file (config/values.c), how every config and
 * vendor file is read: whole and NUL-terminated, sized from the file,
 * growing for files whose size is not known ahead, and refused past
 * LOAD_FILE_MAX (a vendor list of a million patterns fits). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/load.h"

static char path[64];

static void cleanup(void) {
  if (path[0] != '\0')
    unlink(path);
  path[0] = '\0';
}

TestSuite(load_file, .fini = cleanup);

/* A file of SIZE bytes (a hole, except LAST at the end). */
static void make_file(size_t size, char last) {
  int fd;
  snprintf(path, sizeof(path), "/tmp/embargo-load-XXXXXX");
  cr_assert_geq(fd = mkstemp(path), 0);
  cr_assert_eq(ftruncate(fd, (off_t)size), 0);
  if (size > 0)
    cr_assert_eq(pwrite(fd, &last, 1, (off_t)size - 1), 1);
  close(fd);
}

Test(load_file, a_file_is_read_whole_and_terminated) {
  char *data = NULL;
  size_t len = 0;
  make_file(100 * 1000, 'z');
  cr_assert_eq(load_read_file(path, &data, &len), 0);
  cr_expect_eq(len, 100 * 1000);
  cr_expect_eq(data[len - 1], 'z');
  cr_expect_eq(data[len], '\0');
  free(data);
}

Test(load_file, a_list_of_a_million_patterns_fits_and_one_byte_more_than_the_bound_does_not) {
  char *data = NULL;
  size_t len = 0;
  cr_assert_geq(LOAD_FILE_MAX, 48u << 20, "a million patterns are about 40 MB");
  make_file(LOAD_FILE_MAX, 'e');
  cr_assert_eq(load_read_file(path, &data, &len), 0);
  cr_expect_eq(len, LOAD_FILE_MAX);
  cr_expect_eq(data[len - 1], 'e');
  free(data);
  cleanup();
  data = NULL;
  make_file(LOAD_FILE_MAX + 1, 'e');
  cr_expect_eq(load_read_file(path, &data, &len), -EFBIG);
  cr_expect_null(data);
}

Test(load_file, a_file_whose_size_is_not_known_ahead_is_read_as_it_comes) {
  char *data = NULL;
  size_t len = 0;
  /* /proc files say they are empty. */
  cr_assert_eq(load_read_file("/proc/self/maps", &data, &len), 0);
  cr_expect_gt(len, 0);
  cr_expect_eq(strlen(data), len);
  cr_expect_not_null(strstr(data, "test_load_file"), "the whole of it: %zu bytes", len);
  free(data);
  cr_expect_eq(load_read_file("/nonexistent/embargo.yaml", &data, &len), -ENOENT);
}
