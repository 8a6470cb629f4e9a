/*
 * crypto: the few cryptographic primitives the gateway needs, over OpenSSL.
 * Inputs are views; outputs go to caller-owned memory or agw_buf.
 *
 * Secrets at rest: provider API keys stored through antigw-admin are sealed
 * with AES-256-GCM under a 256-bit key read from a file only the service user
 * may read, so a copy of the database alone does not give the keys away. A sealed value is one self-contained blob,
 *     nonce (12 bytes, random) ‖ ciphertext (as long as the plaintext) ‖ tag (16 bytes),
 * and the caller binds it to its place with associated data (e.g.
 * "provider:NAME"), so a blob copied onto another row fails to open instead of
 * decrypting under the wrong name. A random 96-bit nonce per seal keeps the
 * chance of a repeat negligible for the number of secrets an admin writes
 * (NIST SP 800-38D §8.3 bounds it at 2^32 seals per key).
 */
#ifndef AGW_CRYPTO_H
#define AGW_CRYPTO_H

#include "core/core.h"

#define AGW_SHA256_LEN 32

void agw_sha256(agw_str data, unsigned char out[AGW_SHA256_LEN]);
/* The same for an input the calling thread hashes again and again (a client
 * key on each of its requests): each thread keeps its last input of up to
 * AGW_SHA256_RECENT_MAX bytes with its digest, and a repeat, compared in
 * constant time, costs a copy instead of a hash. The input stays in that
 * thread's memory until its next call with another one. */
#define AGW_SHA256_RECENT_MAX 512
void agw_sha256_recent(agw_str data, unsigned char out[AGW_SHA256_LEN]);

/* 1 when the two secrets are equal. Both sides are hashed first and the digests
 * compared in constant time, so neither the content nor the length of the
 * expected secret leaks through timing. */
int agw_secret_eq(agw_str given, agw_str expected);

/* The same against a secret of which only the SHA-256 is kept: 1 when
 * SHA-256(given) equals `want`, compared in constant time. */
int agw_secret_eq_sha256(agw_str given, const unsigned char want[AGW_SHA256_LEN]);

/* Overwrites n bytes at p (OPENSSL_cleanse, which the compiler cannot drop
 * as a dead store); p may be NULL when n is 0. */
void agw_wipe(void *p, size_t n);
/* Wipes the C string s (up to its NUL) and frees it; NULL is allowed. */
void agw_secret_free(char *s);

/* Fills `out` with n bytes from the operating system's CSPRNG. AGW_EIO when it fails. */
AGW_WARN_UNUSED agw_err agw_random_bytes(void *out, size_t n);

/* ---- AES-256-GCM secrets at rest ---- */

#define AGW_AEAD_KEY_LEN 32
#define AGW_AEAD_NONCE_LEN 12
#define AGW_AEAD_TAG_LEN 16
#define AGW_AEAD_OVERHEAD (AGW_AEAD_NONCE_LEN + AGW_AEAD_TAG_LEN)
/* The largest plaintext agw_aead_seal accepts: secrets are API keys and
 * tokens, never documents. */
#define AGW_AEAD_MAX_PLAIN (64u << 10)

typedef struct {
    unsigned char k[AGW_AEAD_KEY_LEN];
} agw_secret_key;

/* Reads the key file: exactly 64 hexadecimal characters (one trailing newline
 * allowed) or exactly 32 raw bytes. The file must be a regular file without any
 * group or other permission (mode 0600 or 0400), like ssh's private keys:
 * a key everyone can read protects nothing. On failure `err` says why (never
 * the key's bytes): AGW_EIO when it cannot be read, AGW_EINVAL for a bad
 * format or mode. */
AGW_WARN_UNUSED agw_err agw_secret_key_load(const char *path, agw_secret_key *out, char *err,
                                            size_t errlen);

/* Overwrites the key in memory (OPENSSL_cleanse, which the compiler cannot drop). */
void agw_secret_key_wipe(agw_secret_key *k);

/* Appends nonce ‖ ciphertext ‖ tag of `plain` (plain.len + AGW_AEAD_OVERHEAD
 * bytes) to `out`. `aad` is authenticated, not stored. AGW_ETOOBIG past
 * AGW_AEAD_MAX_PLAIN or out's cap; AGW_EIO when the RNG or OpenSSL fails. */
AGW_WARN_UNUSED agw_err agw_aead_seal(const agw_secret_key *k, agw_str aad, agw_str plain,
                                      agw_buf *out);

/* Appends the plaintext of a sealed blob to `out`. AGW_EINVAL when the blob
 * is too short or does not authenticate (tampered, other key, other aad);
 * nothing is appended then. */
AGW_WARN_UNUSED agw_err agw_aead_open(const agw_secret_key *k, agw_str aad, agw_str sealed,
                                      agw_buf *out);

#endif
