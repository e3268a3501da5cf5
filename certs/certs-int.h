/* Helpers shared by the certificate modules (ca.c, mint.c). Includes
 * OpenSSL: not for use outside certs/. */
#ifndef EMBARGO_CERTS_CERTS_INT_H
#define EMBARGO_CERTS_CERTS_INT_H

#include <openssl/x509.h>

/* Adds extension NID with VALUE (openssl.cnf syntax, "critical,..." allowed)
 * to CERT, issued by ISSUER (CERT itself when self-signed). 0 or -1. */
int certs_add_ext(X509 *cert, X509 *issuer, int nid, const char *value);

/* Sets CERT's serial to 128 random bits (positive, never short). 0 or -1. */
int certs_random_serial(X509 *cert);

#endif
