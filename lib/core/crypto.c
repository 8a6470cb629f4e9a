#include "core/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* SHA-256 runs on every request (the client key's hash). EVP_sha256()
 * makes OpenSSL look the algorithm up again at each use, under a lock its
 * whole process shares, and EVP_Digest allocates a context each time: the
 * algorithm is fetched once per process and each thread keeps its context. */
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;
static pthread_key_t sha256_ctx_key;

static void sha256_ctx_free(void *ctx)
{
    EVP_MD_CTX_free(ctx);
}

static void sha256_init(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!sha256_md || pthread_key_create(&sha256_ctx_key, sha256_ctx_free) != 0)
        agw_fatal(__FILE__, __LINE__, "SHA-256 unavailable");
}

void agw_sha256(agw_str data, unsigned char out[AGW_SHA256_LEN])
{
    pthread_once(&sha256_once, sha256_init);
    EVP_MD_CTX *ctx = pthread_getspecific(sha256_ctx_key);
    if (!ctx) {
        ctx = EVP_MD_CTX_new();
        if (!ctx || pthread_setspecific(sha256_ctx_key, ctx) != 0)
            agw_fatal(__FILE__, __LINE__, "SHA-256 context");
    }
    unsigned int len = AGW_SHA256_LEN;
    if (EVP_DigestInit_ex2(ctx, sha256_md, NULL) != 1 ||
        EVP_DigestUpdate(ctx, data.ptr, data.len) != 1 || EVP_DigestFinal_ex(ctx, out, &len) != 1)
        agw_fatal(__FILE__, __LINE__, "SHA-256 failed");
}

void agw_sha256_recent(agw_str data, unsigned char out[AGW_SHA256_LEN])
{
    static _Thread_local unsigned char last[AGW_SHA256_RECENT_MAX];
    static _Thread_local size_t last_len = SIZE_MAX;
    static _Thread_local unsigned char last_digest[AGW_SHA256_LEN];
    if (data.len == last_len && CRYPTO_memcmp(data.ptr, last, data.len) == 0) {
        memcpy(out, last_digest, AGW_SHA256_LEN);
        return;
    }
    agw_sha256(data, out);
    if (data.len <= sizeof last) {
        memcpy(last, data.ptr, data.len);
        memcpy(last_digest, out, AGW_SHA256_LEN);
        last_len = data.len;
    }
}

int agw_secret_eq_sha256(agw_str given, const unsigned char want[AGW_SHA256_LEN])
{
    unsigned char a[AGW_SHA256_LEN];
    agw_sha256(given, a);
    return CRYPTO_memcmp(a, want, sizeof a) == 0;
}

int agw_secret_eq(agw_str given, agw_str expected)
{
    unsigned char b[AGW_SHA256_LEN];
    agw_sha256(expected, b);
    return agw_secret_eq_sha256(given, b);
}

void agw_wipe(void *p, size_t n)
{
    if (p && n)
        OPENSSL_cleanse(p, n);
}

void agw_secret_free(char *s)
{
    if (s) {
        agw_wipe(s, strlen(s));
        free(s);
    }
}

agw_err agw_random_bytes(void *out, size_t n)
{
    unsigned char *p = out;
    while (n > 0) {
        int chunk = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        if (RAND_bytes(p, chunk) != 1)
            return AGW_EIO;
        p += chunk;
        n -= (size_t)chunk;
    }
    return AGW_OK;
}

/* ---- key file ---- */

agw_err agw_secret_key_load(const char *path, agw_secret_key *out, char *err, size_t errlen)
{
    /* 64 hex + "\r\n" at most; one byte more tells a longer file apart. */
    unsigned char raw[67];
    agw_err e = AGW_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return AGW_EIO;
    }
    struct stat st;
    ssize_t n = 0;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        e = AGW_EIO;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        e = AGW_EINVAL;
        goto out;
    }
    if (st.st_mode & 077) {
        snprintf(err, errlen, "%s: mode %03o lets group or others read the key: chmod 600 it",
                 path, (unsigned)(st.st_mode & 0777));
        e = AGW_EINVAL;
        goto out;
    }
    for (;;) {
        ssize_t got = read(fd, raw + n, sizeof raw - (size_t)n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
            e = AGW_EIO;
            goto out;
        }
        if (got == 0 || (size_t)(n += got) == sizeof raw)
            break;
    }
    if (n == AGW_AEAD_KEY_LEN) {
        memcpy(out->k, raw, AGW_AEAD_KEY_LEN);
    } else {
        size_t len = (size_t)n;
        if (len && raw[len - 1] == '\n')
            len--;
        if (len && raw[len - 1] == '\r')
            len--;
        if (len != 2 * AGW_AEAD_KEY_LEN) {
            snprintf(err, errlen, "%s: must hold 64 hexadecimal characters or 32 raw bytes", path);
            e = AGW_EINVAL;
            goto out;
        }
        for (size_t i = 0; i < AGW_AEAD_KEY_LEN; i++) {
            int hi = agw_hex_value(raw[2 * i]), lo = agw_hex_value(raw[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                snprintf(err, errlen, "%s: must hold 64 hexadecimal characters or 32 raw bytes",
                         path);
                agw_secret_key_wipe(out);
                e = AGW_EINVAL;
                goto out;
            }
            out->k[i] = (unsigned char)(hi << 4 | lo);
        }
    }
out:
    OPENSSL_cleanse(raw, sizeof raw);
    close(fd);
    return e;
}

void agw_secret_key_wipe(agw_secret_key *k)
{
    agw_wipe(k->k, sizeof k->k);
}

/* ---- AES-256-GCM ---- */

agw_err agw_aead_seal(const agw_secret_key *k, agw_str aad, agw_str plain, agw_buf *out)
{
    if (plain.len > AGW_AEAD_MAX_PLAIN || aad.len > INT_MAX)
        return AGW_ETOOBIG;
    unsigned char nonce[AGW_AEAD_NONCE_LEN], tag[AGW_AEAD_TAG_LEN];
    if (agw_random_bytes(nonce, sizeof nonce) != AGW_OK)
        return AGW_EIO;
    size_t start = out->len;
    agw_err e = agw_buf_append(out, nonce, sizeof nonce);
    if (e)
        return e;
    /* Reserve the ciphertext bytes in the buffer, then encrypt into them. */
    static const unsigned char zeros[256];
    for (size_t left = plain.len; left > 0;) {
        size_t step = left < sizeof zeros ? left : sizeof zeros;
        if ((e = agw_buf_append(out, zeros, step)))
            return e;
        left -= step;
    }
    unsigned char *ct = (unsigned char *)out->data + start + AGW_AEAD_NONCE_LEN;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, ok = ctx && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, k->k, nonce) == 1 &&
                      (aad.len == 0 ||
                       EVP_EncryptUpdate(ctx, NULL, &len, (const unsigned char *)aad.ptr,
                                         (int)aad.len) == 1) &&
                      (plain.len == 0 ||
                       EVP_EncryptUpdate(ctx, ct, &len, (const unsigned char *)plain.ptr,
                                         (int)plain.len) == 1) &&
                      EVP_EncryptFinal_ex(ctx, ct + plain.len, &len) == 1 &&
                      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, sizeof tag, tag) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        OPENSSL_cleanse(out->data + start, out->len - start);
        out->len = start;
        out->data[start] = '\0';
        return AGW_EIO;
    }
    return agw_buf_append(out, tag, sizeof tag);
}

agw_err agw_aead_open(const agw_secret_key *k, agw_str aad, agw_str sealed, agw_buf *out)
{
    if (sealed.len < AGW_AEAD_OVERHEAD || aad.len > INT_MAX ||
        sealed.len - AGW_AEAD_OVERHEAD > AGW_AEAD_MAX_PLAIN)
        return AGW_EINVAL;
    const unsigned char *nonce = (const unsigned char *)sealed.ptr;
    const unsigned char *ct = nonce + AGW_AEAD_NONCE_LEN;
    size_t ct_len = sealed.len - AGW_AEAD_OVERHEAD;
    unsigned char tag[AGW_AEAD_TAG_LEN];
    memcpy(tag, ct + ct_len, sizeof tag);
    /* Decrypt into a scratch buffer first, so a blob that fails to
     * authenticate never leaves unauthenticated plaintext in `out`. */
    unsigned char *plain = xmalloc(ct_len + 1);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, ok = ctx && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, k->k, nonce) == 1 &&
                      (aad.len == 0 ||
                       EVP_DecryptUpdate(ctx, NULL, &len, (const unsigned char *)aad.ptr,
                                         (int)aad.len) == 1) &&
                      (ct_len == 0 || EVP_DecryptUpdate(ctx, plain, &len, ct, (int)ct_len) == 1) &&
                      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, sizeof tag, tag) == 1 &&
                      EVP_DecryptFinal_ex(ctx, plain + ct_len, &len) == 1;
    EVP_CIPHER_CTX_free(ctx);
    agw_err e = ok ? agw_buf_append(out, plain, ct_len) : AGW_EINVAL;
    OPENSSL_cleanse(plain, ct_len + 1);
    free(plain);
    return e;
}
