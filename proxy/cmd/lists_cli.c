/* `embargo lists keygen|sign|verify|fetch`: the signer's key pair, signing a
 * directory of vendor lists into a bundle, checking a bundle, and one update
 * of the configured lists (for a CronJob or a systemd timer). */
#include "proxy/cmd/lists_cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/bundle.h"
#include "config/config.h"
#include "config/lists.h"
#include "filters/err.h"
#include "filters/timefmt.h"
#include "proxy/process/lists.h"

#define EXIT_BAD   1
#define EXIT_USAGE 2

static const char usage_text[] =
    "Usage:\n"
    "  embargo lists keygen --key FILE [--pubkey FILE]\n"
    "      make an Ed25519 key pair: FILE (private, mode 0600) and FILE.pub\n"
    "  embargo lists sign DIR --key FILE [--serial N] [--output FILE]\n"
    "      sign the vendor lists DIR/*.yaml into a bundle (default ./lists.bundle;\n"
    "      - for standard output); the serial defaults to the time in seconds\n"
    "  embargo lists verify BUNDLE --pubkey FILE\n"
    "      check a bundle's signature, digests and lists; print its manifest\n"
    "  embargo lists fetch [-c CONFIG]\n"
    "      fetch lists.url once, check it and write it to lists.cache_dir\n";

static int usage(const char *why) {
  fprintf(stderr, "embargo: lists: %s\n\n%s", why, usage_text);
  return EXIT_USAGE;
}

/* Reads PATH whole (at most BUNDLE_MAX_BYTES) into *DATA (caller frees). */
static int read_file(const char *path, char **data, size_t *len) {
  FILE *f = fopen(path, "rb");
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap + 1);
  int rc = 0;
  *data = NULL;
  if (f == NULL || buf == NULL) {
    rc = f == NULL ? -errno : -ENOMEM;
    goto cleanup;
  }
  for (;;) {
    if (n == cap) {
      char *grown = cap <= BUNDLE_MAX_BYTES ? realloc(buf, 2 * cap + 1) : NULL;
      if (grown == NULL) {
        rc = cap <= BUNDLE_MAX_BYTES ? -ENOMEM : -EFBIG;
        goto cleanup;
      }
      buf = grown;
      cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0)
      break;
  }
  if (ferror(f))
    rc = -EIO;
  else if (n > BUNDLE_MAX_BYTES)
    rc = -EFBIG;
cleanup:
  if (f != NULL)
    fclose(f);
  if (rc != 0) {
    free(buf);
    return rc;
  }
  buf[n] = '\0';
  *data = buf;
  *len = n;
  return 0;
}

/* Creates PATH (it must not exist) with MODE and writes TEXT. */
static int write_new(const char *path, const char *text, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode), rc = 0;
  size_t len = strlen(text);
  if (fd < 0)
    return -errno;
  if (write(fd, text, len) != (ssize_t)len || fsync(fd) != 0)
    rc = errno ? -errno : -EIO;
  if (close(fd) != 0 && rc == 0)
    rc = -errno;
  if (rc != 0)
    unlink(path);
  return rc;
}

static int cmd_keygen(int argc, char **argv) {
  static const struct option longopts[] = {
      {"key", required_argument, NULL, 'k'}, {"pubkey", required_argument, NULL, 'p'}, {0}};
  const char *key = NULL, *pub = NULL;
  char pubpath[1024], err[256], *priv_pem = NULL, *pub_pem = NULL, id[BUNDLE_KEY_ID_LEN + 1];
  unsigned char raw[BUNDLE_KEY_LEN];
  int ch, rc;
  optind = 0; /* glibc: start afresh (an earlier scan used other settings) */
  while ((ch = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
    if (ch == 'k')
      key = optarg;
    else if (ch == 'p')
      pub = optarg;
    else
      return usage("keygen: unknown option");
  }
  if (key == NULL || optind != argc)
    return usage("keygen: --key FILE is required");
  snprintf(pubpath, sizeof(pubpath), "%s%s", pub ? pub : key, pub ? "" : ".pub");
  if (bundle_keygen(&priv_pem, &pub_pem, err, sizeof(err)) != 0) {
    fprintf(stderr, "embargo: lists keygen: %s\n", err);
    return EXIT_BAD;
  }
  if ((rc = write_new(key, priv_pem, 0600)) != 0)
    fprintf(stderr, "embargo: lists keygen: %s: %s\n", key, strerror(-rc));
  else if ((rc = write_new(pubpath, pub_pem, 0644)) != 0) {
    fprintf(stderr, "embargo: lists keygen: %s: %s\n", pubpath, strerror(-rc));
    unlink(key);
  } else {
    bundle_pubkey_parse(pub_pem, strlen(pub_pem), raw, err, sizeof(err));
    bundle_key_id(raw, id);
    printf("created %s (private, mode 0600) and %s\nkey id: %s\n", key, pubpath, id);
  }
  free(priv_pem);
  free(pub_pem);
  return rc == 0 ? 0 : EXIT_BAD;
}

/* ---- sign ------------------------------------------------------------------ */

/* The vendor lists of DIR: every *.yaml file in it, read whole. */
struct dir_lists {
  struct bundle_file files[BUNDLE_MAX_FILES];
  char *data[BUNDLE_MAX_FILES];
  size_t n;
};

static void dir_lists_free(struct dir_lists *d) {
  for (size_t i = 0; i < d->n; i++)
    free(d->data[i]);
  d->n = 0;
}

static bool is_yaml(const char *name) {
  size_t len = strlen(name);
  return len > 5 && strcmp(name + len - 5, ".yaml") == 0;
}

static int read_dir(const char *dir, struct dir_lists *d) {
  DIR *h = opendir(dir);
  struct dirent *e;
  char path[1200];
  int rc = 0;
  if (h == NULL) {
    fprintf(stderr, "embargo: lists sign: %s: %s\n", dir, strerror(errno));
    return EXIT_BAD;
  }
  while (rc == 0 && (e = readdir(h)) != NULL) {
    if (e->d_name[0] == '.' || !is_yaml(e->d_name))
      continue;
    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    if (!bundle_name_ok(e->d_name) || d->n == BUNDLE_MAX_FILES) {
      fprintf(stderr, "embargo: lists sign: %s: %s\n", path,
              d->n == BUNDLE_MAX_FILES ? "too many lists (at most 256)"
                                       : "a list file name is [a-z0-9][a-z0-9_-]*.yaml");
      rc = EXIT_BAD;
    } else if ((rc = read_file(path, &d->data[d->n], &d->files[d->n].len)) != 0) {
      fprintf(stderr, "embargo: lists sign: %s: %s\n", path, strerror(-rc));
      rc = EXIT_BAD;
    } else {
      /* bundle_name_ok bounds the name to the field's size */
      memcpy(d->files[d->n].name, e->d_name, strlen(e->d_name) + 1);
      d->files[d->n].data = d->data[d->n];
      d->n++;
    }
  }
  closedir(h);
  return rc;
}

/* Writes DATA to PATH whole: a temporary file beside it, then a rename, so
 * a web server publishing PATH never serves half a bundle. "-": stdout. */
static int write_output(const char *path, const char *data, size_t len) {
  char tmp[1100];
  int fd, rc = 0;
  if (strcmp(path, "-") == 0)
    return fwrite(data, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : -EIO;
  if ((size_t)snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= sizeof(tmp))
    return -ENAMETOOLONG;
  if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0)
    return -errno;
  if (write(fd, data, len) != (ssize_t)len || fchmod(fd, 0644) != 0 || fsync(fd) != 0)
    rc = errno ? -errno : -EIO;
  if (close(fd) != 0 && rc == 0)
    rc = -errno;
  if (rc == 0 && rename(tmp, path) != 0)
    rc = -errno;
  if (rc != 0)
    unlink(tmp);
  return rc;
}

/* Checks the signed bytes as a fetcher would, lists included. */
static int check_signed(const char *key_pem, size_t key_len, const char *data, size_t len,
                        struct bundle **out, char *err, size_t errsize) {
  unsigned char pub[BUNDLE_KEY_LEN];
  int rc = bundle_privkey_public(key_pem, key_len, pub, err, errsize);
  if (rc == 0)
    rc = bundle_parse(data, len, pub, out, err, errsize);
  if (rc == 0 && (rc = config_check_bundle(*out, err, errsize)) != 0) {
    bundle_free(*out);
    *out = NULL;
  }
  return rc;
}

/* NOW (0: the real clock) is the bundle's creation time. */
static int sign_dir(const char *dir, const char *key, uint64_t serial, const char *output,
                    int64_t now) {
  static struct dir_lists lists; /* 256 file slots: kept off the stack */
  struct bundle_input in = {.serial = serial, .created = now != 0 ? now : (int64_t)time(NULL)};
  struct bundle *b = NULL;
  char err[1200], *key_pem = NULL, *out = NULL, created[32];
  size_t key_len = 0, len = 0;
  int rc = read_dir(dir, &lists);
  if (rc == 0 && (rc = read_file(key, &key_pem, &key_len)) != 0) {
    fprintf(stderr, "embargo: lists sign: %s: %s\n", key, strerror(-rc));
    rc = EXIT_BAD;
  }
  in.files = lists.files;
  in.nfiles = lists.n;
  if (in.serial == 0)
    in.serial = (uint64_t)in.created;
  if (rc == 0 && (bundle_sign(&in, key_pem, key_len, &out, &len, err, sizeof(err)) != 0 ||
                  check_signed(key_pem, key_len, out, len, &b, err, sizeof(err)) != 0)) {
    fprintf(stderr, "embargo: lists sign: %s\n", err);
    rc = EXIT_BAD;
  }
  if (rc == 0 && (rc = write_output(output, out, len)) != 0) {
    fprintf(stderr, "embargo: lists sign: %s: %s\n", output, strerror(-rc));
    rc = EXIT_BAD;
  }
  if (rc == 0) {
    rfc3339_format(b->created, created, sizeof(created));
    fprintf(stderr, "embargo: lists sign: %s: serial %llu, created %s, key %s, %zu list(s)\n",
            output, (unsigned long long)b->serial, created, b->key_id, b->nfiles);
  }
  bundle_free(b);
  free(out);
  if (key_pem != NULL)
    memset(key_pem, 0, key_len);
  free(key_pem);
  dir_lists_free(&lists);
  return rc;
}

static int cmd_sign(int64_t now, int argc, char **argv) {
  static const struct option longopts[] = {{"key", required_argument, NULL, 'k'},
                                           {"serial", required_argument, NULL, 's'},
                                           {"output", required_argument, NULL, 'o'},
                                           {0}};
  const char *key = NULL, *output = "lists.bundle", *dir = NULL;
  uint64_t serial = 0;
  char *end;
  int ch;
  optind = 0; /* glibc: start afresh (an earlier scan used other settings) */
  while ((ch = getopt_long(argc, argv, "o:", longopts, NULL)) != -1) {
    if (ch == 'k')
      key = optarg;
    else if (ch == 'o')
      output = optarg;
    else if (ch == 's') {
      errno = 0;
      serial = strtoull(optarg, &end, 10);
      if (errno != 0 || *end != '\0' || end == optarg || serial == 0 || serial > INT64_MAX ||
          optarg[0] == '-')
        return usage("sign: --serial: expected a number from 1 to 9223372036854775807");
    } else {
      return usage("sign: unknown option");
    }
  }
  if (optind == argc - 1)
    dir = argv[optind];
  if (dir == NULL || key == NULL)
    return usage("sign: DIR and --key FILE are required");
  return sign_dir(dir, key, serial, output, now);
}

/* ---- verify ------------------------------------------------------------------ */

static void print_manifest(const char *path, const struct bundle *b) {
  char created[32];
  rfc3339_format(b->created, created, sizeof(created));
  printf("%s: OK\nserial:  %llu\ncreated: %s\nkey:     %s\nlists:   %zu\n", path,
         (unsigned long long)b->serial, created, b->key_id, b->nfiles);
  for (size_t i = 0; i < b->nfiles; i++)
    printf("  %-24s %8zu bytes  sha256 %s\n", b->files[i].name, b->files[i].len,
           b->files[i].sha256);
}

static int cmd_verify(int argc, char **argv) {
  static const struct option longopts[] = {{"pubkey", required_argument, NULL, 'p'}, {0}};
  const char *pubfile = NULL, *path = NULL, *where;
  char *pem = NULL, *data = NULL, err[1200];
  unsigned char pub[BUNDLE_KEY_LEN];
  struct bundle *b = NULL;
  size_t pem_len = 0, len = 0;
  int ch, rc;
  optind = 0; /* glibc: start afresh (an earlier scan used other settings) */
  while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    if (ch != 'p')
      return usage("verify: unknown option");
    pubfile = optarg;
  }
  if (optind == argc - 1)
    path = argv[optind];
  if (path == NULL || pubfile == NULL)
    return usage("verify: BUNDLE and --pubkey FILE are required");
  where = pubfile;
  if ((rc = read_file(pubfile, &pem, &pem_len)) != 0)
    snprintf(err, sizeof(err), "%s", strerror(-rc));
  else if ((rc = bundle_pubkey_parse(pem, pem_len, pub, err, sizeof(err))) == 0) {
    where = path;
    if ((rc = read_file(path, &data, &len)) != 0)
      snprintf(err, sizeof(err), "%s", strerror(-rc));
    else if ((rc = bundle_parse(data, len, pub, &b, err, sizeof(err))) == 0 &&
             (rc = config_check_bundle(b, err, sizeof(err))) == 0)
      print_manifest(path, b);
  }
  if (rc != 0)
    fprintf(stderr, "embargo: lists verify: %s: %s\n", where, err);
  bundle_free(b);
  free(data);
  free(pem);
  return rc == 0 ? 0 : EXIT_BAD;
}

/* ---- fetch ------------------------------------------------------------------- */

static int cmd_fetch(const char *config, int argc, char **argv) {
  static const struct option longopts[] = {{"config", required_argument, NULL, 'c'}, {0}};
  static struct lists_job job; /* large: kept off the stack */
  struct config cfg;
  char err[1024];
  int ch;
  optind = 0; /* glibc: start afresh (an earlier scan used other settings) */
  while ((ch = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
    if (ch != 'c')
      return usage("fetch: unknown option");
    config = optarg;
  }
  if (optind != argc)
    return usage("fetch: unexpected argument");
  memset(&cfg, 0, sizeof(cfg));
  if ((config ? config_load_file(&cfg, config, err, sizeof(err))
              : config_load_default(&cfg, err, sizeof(err))) != 0) {
    fprintf(stderr, "embargo: %s\n", err);
    return EXIT_USAGE;
  }
  if (!cfg.lists.enabled || cfg.lists.url[0] == '\0') {
    fprintf(stderr, "embargo: lists fetch: no lists.url in %s\n", cfg.source);
    config_free(&cfg);
    return EXIT_USAGE;
  }
  if (cfg.lists.note[0] != '\0')
    fprintf(stderr, "embargo: lists: %s\n", cfg.lists.note);
  lists_job_init(&job, &cfg);
  config_free(&cfg);
  lists_job_run(&job);
  fprintf(job.result == LISTS_APPLIED || job.result == LISTS_UNCHANGED ? stdout : stderr,
          "embargo: lists fetch: %s: %s: %s\n", job.settings.url, lists_result_name(job.result),
          job.message);
  if (job.result == LISTS_APPLIED)
    printf("a running Embargo takes it up on its next reload (embargo reload, or SIGHUP)\n");
  return job.result == LISTS_APPLIED || job.result == LISTS_UNCHANGED ? 0 : EXIT_BAD;
}

int lists_main(const char *config, int64_t now, int argc, char **argv) {
  if (argc < 1)
    return usage("name a command");
  if (strcmp(argv[0], "keygen") == 0)
    return cmd_keygen(argc, argv);
  if (strcmp(argv[0], "sign") == 0)
    return cmd_sign(now, argc, argv);
  if (strcmp(argv[0], "verify") == 0)
    return cmd_verify(argc, argv);
  if (strcmp(argv[0], "fetch") == 0)
    return cmd_fetch(config, argc, argv);
  return usage("unknown command");
}
