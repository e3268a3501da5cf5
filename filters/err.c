/* Names and messages for Embargo's error codes. */
#include "filters/err.h"

#include <string.h>

const char *err_name(int err) {
  switch (err) {
#define XX(code, _) case EMB_E##code: return "EMB_E" #code;
    EMB_ERRNO_MAP(XX)
#undef XX
  case 0: return "OK";
  case EMB_UV_EOF: return "EOF";
  default: break;
  }
  if (err < 0 && err > EMB_ERR_BASE) {
    const char *name = strerrorname_np(-err);
    return name != NULL ? name : "ERRNO";
  }
  return "EUNKNOWN";
}

const char *err_str(int err) {
  switch (err) {
#define XX(code, msg) case EMB_E##code: return msg;
    EMB_ERRNO_MAP(XX)
#undef XX
  case 0: return "success";
  case EMB_UV_EOF: return "end of file";
  default: return err < 0 && err > EMB_ERR_BASE ? strerror(-err) : "unknown error";
  }
}
