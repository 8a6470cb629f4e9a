/*
 * crypto: the few cryptographic primitives the gateway needs, over OpenSSL.
 * Nothing here allocates; inputs are views.
 */
#ifndef AGW_CRYPTO_H
#define AGW_CRYPTO_H

#include "core.h"

#define AGW_SHA256_LEN 32

void agw_sha256(agw_str data, unsigned char out[AGW_SHA256_LEN]);

/* 1 when the two secrets are equal. Both sides are hashed first and the digests
 * compared in constant time, so neither the content nor the length of the
 * expected secret leaks through timing. */
int agw_secret_eq(agw_str given, agw_str expected);

#endif
