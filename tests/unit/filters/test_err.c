/* Unit tests for filters/err.c: one set of names and messages for
 * Embargo's codes, negative errno values and libuv's codes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <uv.h>

#include "filters/err.h"

Test(err, names_an_errno_code_by_its_errno_name) {
  cr_expect_str_eq(err_name(-ENOENT), "ENOENT");
  cr_expect_str_eq(err_name(-EMFILE), "EMFILE");
}

Test(err, names_libuv_codes_like_the_errno_values_they_are) {
  cr_expect_str_eq(err_name(UV_ECONNREFUSED), "ECONNREFUSED");
  cr_expect_str_eq(err_name(UV_ETIMEDOUT), "ETIMEDOUT");
  cr_expect_str_eq(err_str(UV_ECONNREFUSED), strerror(ECONNREFUSED));
}

Test(err, names_libuv_end_of_file_which_is_no_errno) {
  cr_assert_eq(EMB_UV_EOF, UV_EOF);
  cr_expect_str_eq(err_name(UV_EOF), "EOF");
  cr_expect_str_eq(err_str(UV_EOF), "end of file");
}

Test(err, names_embargo_codes_from_the_table) {
  cr_expect_str_eq(err_name(EMB_EBADHOST), "EMB_EBADHOST");
  cr_expect_str_eq(err_str(EMB_EBADHOST), "invalid host name");
  cr_expect_str_eq(err_name(EMB_ECERT), "EMB_ECERT");
}

Test(err, names_success_and_unknown_codes) {
  cr_expect_str_eq(err_name(0), "OK");
  cr_expect_str_eq(err_str(0), "success");
  cr_expect_str_eq(err_name(-9000), "ERRNO"); /* an errno value without a name */
  cr_expect_str_eq(err_name(EMB_ERR_BASE - 100), "EUNKNOWN");
  cr_expect_str_eq(err_str(EMB_ERR_BASE - 100), "unknown error");
  cr_expect_str_eq(err_name(1), "EUNKNOWN");
}
