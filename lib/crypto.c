#include "crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

void agw_sha256(agw_str data, unsigned char out[AGW_SHA256_LEN])
{
    unsigned int len = AGW_SHA256_LEN;
    if (!EVP_Digest(data.ptr, data.len, out, &len, EVP_sha256(), NULL))
        agw_fatal(__FILE__, __LINE__, "SHA-256 failed");
}

int agw_secret_eq(agw_str given, agw_str expected)
{
    unsigned char a[AGW_SHA256_LEN], b[AGW_SHA256_LEN];
    agw_sha256(given, a);
    agw_sha256(expected, b);
    return CRYPTO_memcmp(a, b, sizeof a) == 0;
}
