/* The local certificate authority: creating it (`embargo ca init`),
 * loading it with every check a config error needs, and describing it
 * (`embargo ca show`). */
#include "certs/ca.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certs/certs-int.h"
#include "filters/err.h"
#include "filters/timefmt.h"

#define SKEW_SECONDS 3600 /* CA notBefore is back-dated by this much */

struct ca {
  X509 *cert;
  EVP_PKEY *key;
  int64_t not_after;
  char subject[256];
  char fingerprint[96];
};

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errsize, const char *fmt,
                                                      ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errsize, fmt, ap);
  va_end(ap);
  ERR_clear_error();
  return EMB_ECERT;
}

static void join(char *buf, size_t size, const char *dir, const char *file) {
  snprintf(buf, size, "%s/%s", dir, file);
}

/* ---- building ------------------------------------------------------------ */

int certs_add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509_EXTENSION *ext;
  X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
  ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  if (ext == NULL)
    return -1;
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok ? 0 : -1;
}

int certs_random_serial(X509 *cert) {
  unsigned char raw[16];
  BIGNUM *bn = NULL;
  int rc = -1;
  if (RAND_bytes(raw, sizeof(raw)) != 1)
    return -1;
  raw[0] |= 0x01; /* a non-zero first byte: always 16 bytes long */
  bn = BN_bin2bn(raw, sizeof(raw), NULL);
  if (bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL)
    rc = 0;
  BN_free(bn);
  return rc;
}

/* "critical,permitted;DNS:a,permitted;DNS:b,excluded;IP:0.0.0.0/0.0.0.0,excluded;IP:::/::" */
static int constraints_text(const struct ca_init_opts *o, char *buf, size_t size, char *err,
                            size_t errsize) {
  size_t used = (size_t)snprintf(buf, size, "critical");
  for (size_t i = 0; i < o->npermitted; i++) {
    const char *d = o->permitted[i];
    if (*d == '.')
      d++; /* RFC 5280: "example.com" already covers every name below it */
    if (*d == '\0' || strspn(d, "abcdefghijklmnopqrstuvwxyz0123456789-.") != strlen(d))
      return fail(err, errsize, "--permit '%s': expected a lowercase DNS name like kaspersky.com",
                  o->permitted[i]);
    used += (size_t)snprintf(buf + used, used < size ? size - used : 0, ",permitted;DNS:%s", d);
  }
  /* Constrained to names, the CA must not vouch for bare addresses either. */
  used += (size_t)snprintf(buf + used, used < size ? size - used : 0,
                           ",excluded;IP:0.0.0.0/0.0.0.0,excluded;IP:::/::");
  return used < size ? 0 : fail(err, errsize, "--permit: too many or too long names");
}

static X509 *build_ca_cert(EVP_PKEY *key, const struct ca_init_opts *o, char *err, size_t errsize) {
  char cn[256], nc[4096];
  X509 *x = X509_new();
  X509_NAME *name = X509_get_subject_name(x);
  int ok = x != NULL;

  snprintf(cn, sizeof(cn), "%.180s Embargo block-page CA", o->subject);
  ok = ok && X509_set_version(x, 2) && certs_random_serial(x) == 0;
  ok = ok && X509_time_adj_ex(X509_getm_notBefore(x), 0, -SKEW_SECONDS, (time_t *)&o->now);
  ok = ok && X509_time_adj_ex(X509_getm_notAfter(x), (int)o->days, 0, (time_t *)&o->now);
  ok = ok && X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)o->subject,
                                        -1, -1, 0);
  ok = ok &&
       X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
  ok = ok && X509_set_issuer_name(x, name) && X509_set_pubkey(x, key);
  ok = ok && certs_add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") == 0;
  ok = ok && certs_add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") == 0;
  ok = ok && certs_add_ext(x, x, NID_subject_key_identifier, "hash") == 0;
  if (ok && o->npermitted > 0) {
    if (constraints_text(o, nc, sizeof(nc), err, errsize) != 0) {
      X509_free(x);
      return NULL;
    }
    ok = certs_add_ext(x, x, NID_name_constraints, nc) == 0;
  }
  ok = ok && X509_sign(x, key, EVP_sha256()) > 0;
  if (!ok) {
    fail(err, errsize, "cannot build the CA certificate: %s",
         ERR_reason_error_string(ERR_get_error()));
    X509_free(x);
    return NULL;
  }
  return x;
}

/* Writes KEY to a new file PATH, mode 0600, never replacing one. */
static int write_key(const char *path, EVP_PKEY *key, char *err, size_t errsize) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  FILE *f;
  int ok;
  if (fd < 0)
    return fail(err, errsize, "%s: %s%s", path, strerror(errno),
                errno == EEXIST ? " (a CA is already there; remove it to make a new one)" : "");
  fchmod(fd, 0600); /* whatever the umask said */
  if ((f = fdopen(fd, "w")) == NULL) {
    close(fd);
    unlink(path);
    return fail(err, errsize, "%s: %s", path, strerror(errno));
  }
  ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
  if (fclose(f) != 0 || !ok) {
    unlink(path);
    return fail(err, errsize, "%s: cannot write the key", path);
  }
  return 0;
}

static int write_cert(const char *path, X509 *x, char *err, size_t errsize) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  FILE *f;
  int ok;
  if (fd < 0)
    return fail(err, errsize, "%s: %s", path, strerror(errno));
  if ((f = fdopen(fd, "w")) == NULL) {
    close(fd);
    unlink(path);
    return fail(err, errsize, "%s: %s", path, strerror(errno));
  }
  ok = PEM_write_X509(f, x);
  if (fclose(f) != 0 || !ok) {
    unlink(path);
    return fail(err, errsize, "%s: cannot write the certificate", path);
  }
  return 0;
}

int ca_init(const char *dir, const struct ca_init_opts *o, char *err, size_t errsize) {
  char keypath[4096], certpath[4096];
  EVP_PKEY *key = NULL;
  X509 *x = NULL;
  int rc = EMB_ECERT;

  if (o->subject == NULL || o->subject[0] == '\0' || strlen(o->subject) > 64)
    return fail(err, errsize, "--subject: expected the site's name, 1 to 64 characters");
  if (o->npermitted > CA_MAX_PERMITTED)
    return fail(err, errsize, "--permit: at most %d names", CA_MAX_PERMITTED);
  if (o->days < 1 || o->days > 36500)
    return fail(err, errsize, "--days: expected 1 to 36500");
  if (mkdir(dir, 0700) != 0 && errno != EEXIST)
    return fail(err, errsize, "%s: %s", dir, strerror(errno));
  join(keypath, sizeof(keypath), dir, CA_KEY_FILE);
  join(certpath, sizeof(certpath), dir, CA_CERT_FILE);
  if (access(certpath, F_OK) == 0)
    return fail(err, errsize, "%s exists (a CA is already there; remove it to make a new one)",
                certpath);
  if ((key = EVP_EC_gen("P-256")) == NULL) {
    rc = fail(err, errsize, "cannot generate an EC P-256 key");
    goto cleanup;
  }
  if ((x = build_ca_cert(key, o, err, errsize)) == NULL)
    goto cleanup;
  if ((rc = write_key(keypath, key, err, errsize)) != 0)
    goto cleanup;
  if ((rc = write_cert(certpath, x, err, errsize)) != 0)
    unlink(keypath);
cleanup:
  EVP_PKEY_free(key);
  X509_free(x);
  return rc;
}

/* ---- loading ------------------------------------------------------------- */

static int64_t asn1_seconds(const ASN1_TIME *t) {
  struct tm tm;
  if (ASN1_TIME_to_tm(t, &tm) != 1)
    return 0;
  return (int64_t)timegm(&tm);
}

static void format_time(int64_t t, char *buf, size_t size) {
  if (rfc3339_format(t, buf, size) < 0)
    snprintf(buf, size, "?");
}

static void fill_names(struct ca *ca) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  BIO *b = BIO_new(BIO_s_mem());
  if (b != NULL) {
    X509_NAME_print_ex(b, X509_get_subject_name(ca->cert), 0,
                       XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
    int len = BIO_read(b, ca->subject, sizeof(ca->subject) - 1);
    ca->subject[len > 0 ? len : 0] = '\0';
    BIO_free(b);
  }
  X509_digest(ca->cert, EVP_sha256(), md, &n);
  for (unsigned i = 0; i < n && i * 3 + 3 <= sizeof(ca->fingerprint); i++)
    snprintf(ca->fingerprint + i * 3, 4, "%02X%s", md[i], i + 1 < n ? ":" : "");
}

static X509 *read_cert(const char *path, char *err, size_t errsize) {
  FILE *f = fopen(path, "r");
  X509 *x;
  if (f == NULL) {
    fail(err, errsize, "%s: cannot read: %s", path, strerror(errno));
    return NULL;
  }
  x = PEM_read_X509(f, NULL, NULL, NULL);
  fclose(f);
  if (x == NULL)
    fail(err, errsize, "%s: not a PEM certificate", path);
  return x;
}

/* Opens the key file only if nobody but its owner may read or write it. */
static EVP_PKEY *read_key(const char *path, char *err, size_t errsize) {
  struct stat st;
  EVP_PKEY *key;
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  FILE *f;
  if (fd < 0) {
    fail(err, errsize, "%s: cannot read: %s", path, strerror(errno));
    return NULL;
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
    fail(err, errsize,
         "%s: private key is accessible to group or others (mode %04o); "
         "chmod 600 it",
         path, (unsigned)(st.st_mode & 07777));
    close(fd);
    return NULL;
  }
  if ((f = fdopen(fd, "r")) == NULL) {
    close(fd);
    fail(err, errsize, "%s: %s", path, strerror(errno));
    return NULL;
  }
  key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
  fclose(f);
  if (key == NULL)
    fail(err, errsize, "%s: not a PEM private key (encrypted keys are not supported)", path);
  return key;
}

/* The checks that make CA->cert usable as Embargo's CA at NOW. */
static int check_cert(const struct ca *ca, const char *path, int64_t now, char *err,
                      size_t errsize) {
  char when[40];
  uint32_t flags = X509_get_extension_flags(ca->cert);
  int64_t nb = asn1_seconds(X509_get0_notBefore(ca->cert));

  if (!(flags & EXFLAG_CA))
    return fail(err, errsize, "%s: not a CA certificate (basicConstraints CA:TRUE missing)", path);
  if ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(ca->cert) & KU_KEY_CERT_SIGN))
    return fail(err, errsize, "%s: not a CA certificate (keyUsage lacks keyCertSign)", path);
  if (ca->not_after <= now) {
    format_time(ca->not_after, when, sizeof(when));
    return fail(err, errsize, "%s: CA certificate expired at %s", path, when);
  }
  if (nb > now) {
    format_time(nb, when, sizeof(when));
    return fail(err, errsize, "%s: CA certificate not valid before %s", path, when);
  }
  if (X509_check_private_key(ca->cert, ca->key) != 1)
    return fail(err, errsize, "%s: does not match the key in %s", path, CA_KEY_FILE);
  return 0;
}

int ca_load(const char *dir, int64_t now, struct ca **out, char *err, size_t errsize) {
  char keypath[4096], certpath[4096];
  struct ca *ca = calloc(1, sizeof(*ca));
  int rc = EMB_ECERT;

  *out = NULL;
  if (ca == NULL)
    return -ENOMEM;
  join(keypath, sizeof(keypath), dir, CA_KEY_FILE);
  join(certpath, sizeof(certpath), dir, CA_CERT_FILE);
  if ((ca->cert = read_cert(certpath, err, errsize)) == NULL ||
      (ca->key = read_key(keypath, err, errsize)) == NULL)
    goto cleanup;
  ca->not_after = asn1_seconds(X509_get0_notAfter(ca->cert));
  if ((rc = check_cert(ca, certpath, now, err, errsize)) != 0)
    goto cleanup;
  fill_names(ca);
  *out = ca;
  return 0;
cleanup:
  ca_free(ca);
  return rc;
}

void ca_free(struct ca *ca) {
  if (ca == NULL)
    return;
  X509_free(ca->cert);
  EVP_PKEY_free(ca->key);
  free(ca);
}

struct x509_st *ca_cert(const struct ca *ca) {
  return ca->cert;
}
struct evp_pkey_st *ca_key(const struct ca *ca) {
  return ca->key;
}
const char *ca_subject(const struct ca *ca) {
  return ca->subject;
}
const char *ca_fingerprint(const struct ca *ca) {
  return ca->fingerprint;
}
int64_t ca_not_after(const struct ca *ca) {
  return ca->not_after;
}

/* ---- describing ---------------------------------------------------------- */

static void print_constraints(FILE *out, X509 *x) {
  NAME_CONSTRAINTS *nc = X509_get_ext_d2i(x, NID_name_constraints, NULL, NULL);
  const char *sep = "";
  if (nc == NULL) {
    fprintf(out, "  name constraints: none (clients trusting it accept it for any name)\n");
    return;
  }
  fprintf(out, "  name constraints: permitted DNS ");
  for (int i = 0; i < sk_GENERAL_SUBTREE_num(nc->permittedSubtrees); i++) {
    GENERAL_NAME *g = sk_GENERAL_SUBTREE_value(nc->permittedSubtrees, i)->base;
    if (g->type == GEN_DNS) {
      fprintf(out, "%s%.*s", sep, ASN1_STRING_length(g->d.dNSName),
              (const char *)ASN1_STRING_get0_data(g->d.dNSName));
      sep = ", ";
    }
  }
  fprintf(out, "%s\n", *sep ? "" : "(none)");
  if (sk_GENERAL_SUBTREE_num(nc->excludedSubtrees) > 0)
    fprintf(out, "                    excluded: %d subtree(s) (IP addresses)\n",
            sk_GENERAL_SUBTREE_num(nc->excludedSubtrees));
  NAME_CONSTRAINTS_free(nc);
}

static void print_install(FILE *out, const char *cert) {
  fprintf(
      out,
      "\nInstall %s as a trusted root on the machines behind Embargo:\n"
      "  Debian/Ubuntu: cp %s /usr/local/share/ca-certificates/embargo-ca.crt\n"
      "                 update-ca-certificates\n"
      "  RHEL/Fedora:   cp %s /etc/pki/ca-trust/source/anchors/embargo-ca.crt\n"
      "                 update-ca-trust extract\n"
      "  Windows (GPO): Group Policy Management Editor > Computer Configuration > Policies >\n"
      "                 Windows Settings > Security Settings > Public Key Policies >\n"
      "                 Trusted Root Certification Authorities > Import... %s\n"
      "                 (one machine: certutil -addstore -f Root embargo-ca.crt)\n"
      "  macOS:         sudo security add-trusted-cert -d -r trustRoot \\\n"
      "                   -k /Library/Keychains/System.keychain %s\n"
      "  Firefox:       policies.json (distribution/ folder, or /etc/firefox/policies/):\n"
      "                 {\"policies\": {\"Certificates\": {\"Install\": "
      "[\"/path/to/embargo-ca.crt\"]}}}\n"
      "                 or {\"policies\": {\"Certificates\": {\"ImportEnterpriseRoots\": true}}}\n"
      "                 to trust the operating system's store (Windows, macOS)\n"
      "Only the certificate is distributed; %s never leaves this machine.\n",
      cert, cert, cert, cert, cert, CA_KEY_FILE);
}

int ca_show(const char *dir, int64_t now, FILE *out, char *err, size_t errsize) {
  char certpath[4096], keypath[4096], nb[40], na[40];
  struct ca tmp = {0};
  struct stat st;
  int64_t t;

  join(certpath, sizeof(certpath), dir, CA_CERT_FILE);
  join(keypath, sizeof(keypath), dir, CA_KEY_FILE);
  if ((tmp.cert = read_cert(certpath, err, errsize)) == NULL)
    return EMB_ECERT;
  fill_names(&tmp);
  format_time(asn1_seconds(X509_get0_notBefore(tmp.cert)), nb, sizeof(nb));
  t = asn1_seconds(X509_get0_notAfter(tmp.cert));
  format_time(t, na, sizeof(na));
  fprintf(out, "Embargo CA in %s\n", dir);
  fprintf(out, "  certificate:      %s\n", certpath);
  fprintf(out, "  subject:          %s\n", tmp.subject);
  fprintf(out, "  SHA-256:          %s\n", tmp.fingerprint);
  fprintf(out, "  valid:            %s to %s (%s)\n", nb, na, t <= now ? "EXPIRED" : "valid now");
  fprintf(out, "  CA:               %s\n",
          (X509_get_extension_flags(tmp.cert) & EXFLAG_CA) ? "yes" : "NO (not usable)");
  print_constraints(out, tmp.cert);
  if (stat(keypath, &st) != 0)
    fprintf(out, "  key:              %s missing\n", keypath);
  else
    fprintf(out, "  key:              %s (mode %04o%s)\n", keypath, (unsigned)(st.st_mode & 07777),
            (st.st_mode & 077) ? ", TOO OPEN: chmod 600 it" : "");
  print_install(out, certpath);
  X509_free(tmp.cert);
  return 0;
}
