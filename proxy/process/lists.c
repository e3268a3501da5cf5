/* One update of the vendor lists from the signed bundle at lists.url:
 * fetched, checked, tried with the configuration, and cached atomically
 * before anything may put it in force. */
#include "proxy/process/lists.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/bundle.h"
#include "config/lists.h"
#include "filters/err.h"
#include "filters/policy.h"
#include "filters/timefmt.h"
#include "proxy/process/fetch.h"

#define FETCH_TIMEOUT_MS 60000

static const char *const result_names[LISTS_NRESULTS] = {
    [LISTS_APPLIED] = "applied",
    [LISTS_UNCHANGED] = "unchanged",
    [LISTS_FETCH_FAILED] = "fetch_failed",
    [LISTS_MALFORMED] = "malformed",
    [LISTS_BAD_SIGNATURE] = "bad_signature",
    [LISTS_BAD_DIGEST] = "bad_digest",
    [LISTS_ROLLBACK] = "rollback",
    [LISTS_INVALID] = "invalid",
    [LISTS_CACHE_FAILED] = "cache_failed",
    [LISTS_FUTURE] = "future",
};

const char *lists_result_name(enum lists_result r) {
  return (unsigned)r < LISTS_NRESULTS ? result_names[r] : "?";
}

void lists_job_init(struct lists_job *job, const struct config *cfg) {
  memset(job, 0, sizeof(*job));
  job->settings = cfg->lists;
  if (strcmp(cfg->source, "(built-in)") != 0)
    snprintf(job->config_path, sizeof(job->config_path), "%s", cfg->source);
  job->serial = cfg->lists.serial;
  memcpy(job->digest, cfg->lists.digest, sizeof(job->digest));
}

static void finish(struct lists_job *job, enum lists_result r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void finish(struct lists_job *job, enum lists_result r, const char *fmt, ...) {
  va_list ap;
  job->result = r;
  va_start(ap, fmt);
  vsnprintf(job->message, sizeof(job->message), fmt, ap);
  va_end(ap);
}

/* Writes all of DATA to FD. 0 or -errno. */
static int write_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

/* DIR/lists.bundle replaced by DATA: written to a temporary file in DIR,
 * flushed, renamed over it, and the directory flushed, so a crash leaves
 * the old bundle or the new one, never a part. 0 or -errno, WHY set. */
static int cache_write(const char *dir, const char *data, size_t len, char *why, size_t size) {
  char path[600], tmp[600];
  int fd = -1, dfd, rc = 0;
  if (!lists_cache_path(dir, path, sizeof(path)) ||
      (size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, LISTS_CACHE_FILE) >= sizeof(tmp)) {
    snprintf(why, size, "%s: path too long", dir);
    return -ENAMETOOLONG;
  }
  if (mkdir(dir, 0755) != 0 && errno != EEXIST)
    rc = -errno;
  else if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0)
    rc = -errno;
  else if ((rc = write_all(fd, data, len)) == 0 && (fchmod(fd, 0644) != 0 || fsync(fd) != 0))
    rc = -errno;
  if (fd >= 0 && close(fd) != 0 && rc == 0)
    rc = -errno;
  if (rc == 0 && rename(tmp, path) != 0)
    rc = -errno;
  if (rc != 0) {
    if (fd >= 0)
      unlink(tmp);
    snprintf(why, size, "cannot write %s: %s", path, strerror(-rc));
    return rc;
  }
  if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
    fsync(dfd); /* the rename itself reaches the disk */
    close(dfd);
  }
  return 0;
}

static enum lists_result result_of_check(int rc) {
  switch (rc) {
  case EMB_EBADBUNDLE: return LISTS_MALFORMED;
  case EMB_EBADSIG: return LISTS_BAD_SIGNATURE;
  case EMB_EBADDIGEST: return LISTS_BAD_DIGEST;
  default: return LISTS_FETCH_FAILED; /* out of memory */
  }
}

/* Loads the configuration with B's lists: a bundle that does not load is
 * never cached, so a restart cannot trip over it. */
static int try_bundle(struct lists_job *job, const struct bundle *b, char *why, size_t size) {
  struct config cfg;
  memset(&cfg, 0, sizeof(cfg));
  int rc = config_load_bundle(&cfg, job->config_path[0] ? job->config_path : NULL, b, why, size);
  config_free(&cfg);
  return rc;
}

/* The same bundle as the one in force: its cache is put back if it is gone. */
static void unchanged(struct lists_job *job, const char *data, size_t len) {
  char path[600], why[700];
  if (lists_cache_path(job->settings.cache_dir, path, sizeof(path)) && access(path, F_OK) != 0 &&
      cache_write(job->settings.cache_dir, data, len, why, sizeof(why)) != 0) {
    finish(job, LISTS_CACHE_FAILED, "serial %llu is in force but its cache is gone: %s",
           (unsigned long long)job->serial, why);
    return;
  }
  finish(job, LISTS_UNCHANGED, "serial %llu, the bundle in force", (unsigned long long)job->serial);
}

/* The newest bundle known here: the one in force, or the cached one when
 * it verifies and is newer (cached by `embargo lists fetch` run beside the
 * proxy, or by an update whose reload failed). A fetched bundle must be
 * above it: the cache is never replaced by an older bundle. */
struct newest {
  uint64_t serial;
  char digest[65];
  bool cached; /* the cached bundle, not yet in force */
};

static void newest_known(const struct lists_job *job, struct newest *n) {
  struct bundle *c = NULL;
  char why[400];
  n->serial = job->serial;
  memcpy(n->digest, job->digest, sizeof(n->digest));
  n->cached = false;
  if (lists_cache_read(job->settings.cache_dir, job->settings.pubkey, &c, why, sizeof(why)) == 0 &&
      c->serial > job->serial) {
    n->serial = c->serial;
    memcpy(n->digest, c->digest, sizeof(n->digest));
    n->cached = true;
  }
  bundle_free(c);
}

/* Checks the LEN bytes at DATA and caches them if they are to be applied. */
static void take(struct lists_job *job, const char *data, size_t len) {
  struct bundle *b = NULL;
  struct newest n;
  char why[1200], created[32];
  int rc = bundle_parse(data, len, job->settings.pubkey, &b, why, sizeof(why));
  if (rc != 0) {
    finish(job, result_of_check(rc), "%s", why);
    return;
  }
  job->got_serial = b->serial;
  job->got_created = b->created;
  rfc3339_format(b->created, created, sizeof(created));
  newest_known(job, &n);
  if (b->created > (int64_t)time(NULL) + LISTS_FUTURE_SLACK)
    finish(job, LISTS_FUTURE,
           "serial %llu was created %s, more than a day ahead of this host's clock (a signer "
           "whose clock is wrong, or a bundle made to outrank later ones)",
           (unsigned long long)b->serial, created);
  else if (b->serial == n.serial && strcmp(b->digest, n.digest) == 0 && n.cached)
    finish(job, LISTS_APPLIED, "serial %llu (created %s) is cached already, not yet in force",
           (unsigned long long)b->serial, created);
  else if (b->serial == n.serial && strcmp(b->digest, n.digest) == 0)
    unchanged(job, data, len);
  else if (b->serial <= n.serial)
    finish(job, LISTS_ROLLBACK, "serial %llu (created %s) is not above serial %llu %s",
           (unsigned long long)b->serial, created, (unsigned long long)n.serial,
           n.cached ? "in the cache (not yet in force)" : "in force");
  else if (try_bundle(job, b, why, sizeof(why)) != 0)
    finish(job, LISTS_INVALID, "serial %llu: its lists do not load: %s",
           (unsigned long long)b->serial, why);
  else if (cache_write(job->settings.cache_dir, data, len, why, sizeof(why)) != 0)
    finish(job, LISTS_CACHE_FAILED, "serial %llu: %s", (unsigned long long)b->serial, why);
  else
    finish(job, LISTS_APPLIED, "serial %llu (created %s, key %s, %zu list file(s)) cached",
           (unsigned long long)b->serial, created, b->key_id, b->nfiles);
  bundle_free(b);
}

void lists_job_run(struct lists_job *job) {
  struct fetch_opts o = {.url = job->settings.url,
                         .ca_file = job->settings.ca_file,
                         .proxy = job->settings.proxy,
                         .timeout_ms = FETCH_TIMEOUT_MS,
                         .max_body = BUNDLE_MAX_BYTES,
                         .stop = job->stop};
  char *body = NULL, why[600];
  size_t len = 0;
  if (job->settings.url[0] == '\0') {
    finish(job, LISTS_FETCH_FAILED, "lists.url is not set");
    return;
  }
  if (fetch_https(&o, &body, &len, why, sizeof(why)) != 0) {
    finish(job, LISTS_FETCH_FAILED, "%s", why);
    return;
  }
  take(job, body, len);
  free(body);
}
