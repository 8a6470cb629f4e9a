/* Unit tests for lib/crypto: SHA-256 against published vectors, the
 * constant-time secret comparison, AES-256-GCM sealing (round trip, a
 * published vector, tamper detection) and the key file. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/crypto.h"

static void test_secret_eq_sha256_and_wipe(void **state);

static void hex(const unsigned char *d, char out[2 * AGW_SHA256_LEN + 1])
{
    for (int i = 0; i < AGW_SHA256_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void check_sha(agw_str s, const char *want)
{
    unsigned char d[AGW_SHA256_LEN];
    char h[2 * AGW_SHA256_LEN + 1];
    agw_sha256(s, d);
    hex(d, h);
    assert_string_equal(h, want);
}

/* FIPS 180-2 appendix B vectors plus the empty string. */
static void test_sha256_vectors(void **state)
{
    (void)state;
    check_sha(AGW_STR_LIT("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    check_sha(AGW_STR_LIT(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check_sha((agw_str){ NULL, 0 }, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check_sha(AGW_STR_LIT("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    char *mil = malloc(1000000);
    assert_non_null(mil);
    memset(mil, 'a', 1000000);
    check_sha((agw_str){ mil, 1000000 }, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(mil);
}

static void test_sha256_uses_view_length(void **state)
{
    (void)state;
    /* A slice hashes only its bytes, and NULs inside count. */
    check_sha((agw_str){ "abcdef", 3 }, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    unsigned char a[AGW_SHA256_LEN], b[AGW_SHA256_LEN];
    agw_sha256(AGW_STR_LIT("a\0b"), a);
    agw_sha256(AGW_STR_LIT("a"), b);
    assert_memory_not_equal(a, b, AGW_SHA256_LEN);
}

static void test_sha256_recent(void **state)
{
    (void)state;
    /* The memo gives the digest agw_sha256 gives, for a repeat, for a new
     * input of the same length, for another length, for one past the memo's
     * size, and for the one before that again. */
    char big[AGW_SHA256_RECENT_MAX + 1];
    memset(big, 'k', sizeof big);
    const agw_str inputs[] = {
        AGW_STR_LIT("agw-0123456789abcdef"), AGW_STR_LIT("agw-0123456789abcdef"),
        AGW_STR_LIT("agw-0123456789abcdeg"), AGW_STR_LIT("agw-0123"),
        AGW_STR_LIT(""), (agw_str){ big, sizeof big }, (agw_str){ big, sizeof big },
        AGW_STR_LIT("agw-0123"), (agw_str){ big, sizeof big - 1 },
        (agw_str){ big, sizeof big - 1 },
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        unsigned char want[AGW_SHA256_LEN], got[AGW_SHA256_LEN];
        agw_sha256(inputs[i], want);
        agw_sha256_recent(inputs[i], got);
        assert_memory_equal(got, want, AGW_SHA256_LEN);
    }
}

static void test_secret_eq(void **state)
{
    (void)state;
    assert_int_equal(agw_secret_eq(AGW_STR_LIT("sk-secret-123"), AGW_STR_LIT("sk-secret-123")), 1);
    assert_int_equal(agw_secret_eq(AGW_STR_LIT("sk-secret-123"), AGW_STR_LIT("sk-secret-124")), 0);
    assert_int_equal(agw_secret_eq(AGW_STR_LIT("Sk-secret-123"), AGW_STR_LIT("sk-secret-123")), 0);
    /* Different lengths, including a prefix of the expected secret. */
    assert_int_equal(agw_secret_eq(AGW_STR_LIT("sk-secret"), AGW_STR_LIT("sk-secret-123")), 0);
    assert_int_equal(agw_secret_eq(AGW_STR_LIT("sk-secret-1234"), AGW_STR_LIT("sk-secret-123")), 0);
    /* Empty. */
    assert_int_equal(agw_secret_eq(AGW_STR_LIT(""), AGW_STR_LIT("")), 1);
    assert_int_equal(agw_secret_eq((agw_str){ NULL, 0 }, AGW_STR_LIT("")), 1);
    assert_int_equal(agw_secret_eq(AGW_STR_LIT(""), AGW_STR_LIT("x")), 0);
    assert_int_equal(agw_secret_eq(AGW_STR_LIT("x"), AGW_STR_LIT("")), 0);
    /* Bytes after a NUL matter: this is not a C-string comparison. */
    assert_int_equal(agw_secret_eq(AGW_STR_LIT("a\0b"), AGW_STR_LIT("a\0c")), 0);
    assert_int_equal(agw_secret_eq(AGW_STR_LIT("a"), AGW_STR_LIT("a\0")), 0);
    assert_int_equal(agw_secret_eq(AGW_STR_LIT("a\0b"), AGW_STR_LIT("a\0b")), 1);
    /* Slices of larger strings compare by their own length. */
    assert_int_equal(agw_secret_eq((agw_str){ "key-and-junk", 3 }, AGW_STR_LIT("key")), 1);
}

/* ---- AES-256-GCM ---- */

static agw_secret_key test_key(unsigned char fill)
{
    agw_secret_key k;
    for (size_t i = 0; i < sizeof k.k; i++)
        k.k[i] = (unsigned char)(fill + i);
    return k;
}

static void test_aead_round_trip(void **state)
{
    (void)state;
    agw_secret_key k = test_key(1);
    static const char *const plains[] = { "", "x", "sk-ant-api03-0123456789abcdef",
                                          "with\0nul" };
    for (size_t i = 0; i < sizeof plains / sizeof plains[0]; i++) {
        agw_str p = agw_str_c(plains[i]);
        if (i == 3)
            p.len = 9;
        agw_buf sealed = AGW_BUF_INIT(4096), out = AGW_BUF_INIT(4096);
        assert_int_equal(agw_aead_seal(&k, AGW_STR_LIT("provider:a"), p, &sealed), AGW_OK);
        assert_int_equal(sealed.len, p.len + AGW_AEAD_OVERHEAD);
        if (p.len > 4) /* the plaintext does not appear in the blob */
            assert_null(memmem(sealed.data, sealed.len, p.ptr, p.len));
        assert_int_equal(agw_aead_open(&k, AGW_STR_LIT("provider:a"), agw_buf_view(&sealed), &out),
                         AGW_OK);
        assert_int_equal(out.len, p.len);
        if (p.len)
            assert_memory_equal(out.data, p.ptr, p.len);
        agw_buf_free(&sealed);
        agw_buf_free(&out);
    }
    /* Two seals of one secret differ (fresh nonce each time). */
    agw_buf a = AGW_BUF_INIT(256), b = AGW_BUF_INIT(256);
    assert_int_equal(agw_aead_seal(&k, AGW_STR_LIT(""), AGW_STR_LIT("same"), &a), AGW_OK);
    assert_int_equal(agw_aead_seal(&k, AGW_STR_LIT(""), AGW_STR_LIT("same"), &b), AGW_OK);
    assert_memory_not_equal(a.data, b.data, a.len);
    agw_buf_free(&a);
    agw_buf_free(&b);
}

/* Hex text (an even number of digits) as bytes; returns how many. */
static int unhex(const char *h, unsigned char *out)
{
    int n = 0;
    for (; h[0] && h[1]; h += 2) {
        int hi = agw_hex_value((unsigned char)h[0]), lo = agw_hex_value((unsigned char)h[1]);
        assert_true(hi >= 0 && lo >= 0);
        out[n++] = (unsigned char)(hi << 4 | lo);
    }
    return n;
}

static void test_aead_known_vector(void **state)
{
    (void)state;
    /* McGrew & Viega, "The Galois/Counter Mode of Operation", test case 16
     * (AES-256, 96-bit IV, with AAD), fed as nonce | ciphertext | tag. */
    agw_secret_key k;
    unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", k.k);
    unsigned char blob[256], plain[128], aad[64];
    int nn = unhex("cafebabefacedbaddecaf888", blob);
    int pn = unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                   "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39", plain);
    int cn = unhex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
                   "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662", blob + nn);
    int tn = unhex("76fc6ece0f4e1768cddf8853bb2d551b", blob + nn + cn);
    int an = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2", aad);
    agw_buf out = AGW_BUF_INIT(256);
    assert_int_equal(agw_aead_open(&k, (agw_str){ (char *)aad, (size_t)an },
                                   (agw_str){ (char *)blob, (size_t)(nn + cn + tn) }, &out),
                     AGW_OK);
    assert_int_equal(out.len, (size_t)pn);
    assert_memory_equal(out.data, plain, (size_t)pn);
    agw_buf_free(&out);
}

static void test_aead_detects_tampering(void **state)
{
    (void)state;
    agw_secret_key k = test_key(7), other = test_key(8);
    agw_buf sealed = AGW_BUF_INIT(256), out = AGW_BUF_INIT(256);
    agw_str aad = AGW_STR_LIT("provider:work");
    assert_int_equal(agw_aead_seal(&k, aad, AGW_STR_LIT("sk-secret-value"), &sealed), AGW_OK);
    /* Every single bit flipped anywhere (nonce, ciphertext, tag) is caught. */
    for (size_t i = 0; i < sealed.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            sealed.data[i] ^= (char)(1 << bit);
            assert_int_equal(agw_aead_open(&k, aad, agw_buf_view(&sealed), &out), AGW_EINVAL);
            assert_int_equal(out.len, 0); /* nothing unauthenticated comes out */
            sealed.data[i] ^= (char)(1 << bit);
        }
    }
    assert_int_equal(agw_aead_open(&other, aad, agw_buf_view(&sealed), &out), AGW_EINVAL);
    assert_int_equal(agw_aead_open(&k, AGW_STR_LIT("provider:other"), agw_buf_view(&sealed), &out),
                     AGW_EINVAL);
    assert_int_equal(agw_aead_open(&k, aad, (agw_str){ sealed.data, sealed.len - 1 }, &out),
                     AGW_EINVAL);
    assert_int_equal(agw_aead_open(&k, aad, (agw_str){ sealed.data, AGW_AEAD_OVERHEAD - 1 }, &out),
                     AGW_EINVAL);
    assert_int_equal(agw_aead_open(&k, aad, (agw_str){ NULL, 0 }, &out), AGW_EINVAL);
    assert_int_equal(agw_aead_open(&k, aad, agw_buf_view(&sealed), &out), AGW_OK);
    assert_int_equal(out.len, 15);
    agw_buf_free(&sealed);
    agw_buf_free(&out);
}

static void test_aead_limits(void **state)
{
    (void)state;
    agw_secret_key k = test_key(3);
    char *big = calloc(1, AGW_AEAD_MAX_PLAIN + 1);
    assert_non_null(big);
    agw_buf out = AGW_BUF_INIT(AGW_AEAD_MAX_PLAIN * 2);
    assert_int_equal(agw_aead_seal(&k, AGW_STR_LIT(""), (agw_str){ big, AGW_AEAD_MAX_PLAIN + 1 }, &out),
                     AGW_ETOOBIG);
    assert_int_equal(agw_aead_seal(&k, AGW_STR_LIT(""), (agw_str){ big, AGW_AEAD_MAX_PLAIN }, &out),
                     AGW_OK);
    free(big);
    agw_buf_free(&out);
    agw_buf small = AGW_BUF_INIT(10); /* out's own cap is honoured */
    assert_int_equal(agw_aead_seal(&k, AGW_STR_LIT(""), AGW_STR_LIT("0123456789"), &small),
                     AGW_ETOOBIG);
    agw_buf_free(&small);
}

static void test_random_bytes(void **state)
{
    (void)state;
    unsigned char a[32], b[32], zero[32] = { 0 };
    assert_int_equal(agw_random_bytes(a, sizeof a), AGW_OK);
    assert_int_equal(agw_random_bytes(b, sizeof b), AGW_OK);
    assert_memory_not_equal(a, b, sizeof a);
    assert_memory_not_equal(a, zero, sizeof a);
    assert_int_equal(agw_random_bytes(a, 0), AGW_OK);
}

/* ---- the key file ---- */

static void write_file(const char *path, const void *data, size_t n, mode_t mode)
{
    unlink(path);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_key_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/agw-crypto-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/secret.key", dir);
    agw_secret_key k, want;
    for (int i = 0; i < 32; i++)
        want.k[i] = (unsigned char)(0xa0 + i);
    const char *hex = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf";

    write_file(path, hex, 64, 0600);
    assert_int_equal(agw_secret_key_load(path, &k, err, sizeof err), AGW_OK);
    assert_memory_equal(k.k, want.k, 32);
    char line[80];
    snprintf(line, sizeof line, "%s\n", hex);
    write_file(path, line, 65, 0400);
    assert_int_equal(agw_secret_key_load(path, &k, err, sizeof err), AGW_OK);
    assert_memory_equal(k.k, want.k, 32);
    write_file(path, want.k, 32, 0600); /* raw bytes */
    assert_int_equal(agw_secret_key_load(path, &k, err, sizeof err), AGW_OK);
    assert_memory_equal(k.k, want.k, 32);
    char upper[64];
    for (int i = 0; i < 64; i++)
        upper[i] = (char)toupper((unsigned char)hex[i]);
    write_file(path, upper, 64, 0600); /* digits in either case */
    assert_int_equal(agw_secret_key_load(path, &k, err, sizeof err), AGW_OK);
    assert_memory_equal(k.k, want.k, 32);

    /* Readable by others: refused, and the message says what to do. */
    write_file(path, hex, 64, 0644);
    assert_int_equal(agw_secret_key_load(path, &k, err, sizeof err), AGW_EINVAL);
    assert_non_null(strstr(err, "chmod 600"));
    write_file(path, hex, 64, 0640);
    assert_int_equal(agw_secret_key_load(path, &k, err, sizeof err), AGW_EINVAL);
    /* Wrong lengths and characters. */
    write_file(path, hex, 63, 0600);
    assert_int_equal(agw_secret_key_load(path, &k, err, sizeof err), AGW_EINVAL);
    write_file(path, hex, 31, 0600);
    assert_int_equal(agw_secret_key_load(path, &k, err, sizeof err), AGW_EINVAL);
    char longer[70];
    memcpy(longer, hex, 64);
    memcpy(longer + 64, "00", 2);
    write_file(path, longer, 66, 0600);
    assert_int_equal(agw_secret_key_load(path, &k, err, sizeof err), AGW_EINVAL);
    char badhex[64];
    memcpy(badhex, hex, 64);
    badhex[10] = 'g';
    write_file(path, badhex, 64, 0600);
    assert_int_equal(agw_secret_key_load(path, &k, err, sizeof err), AGW_EINVAL);
    assert_null(strstr(err, "a0a1")); /* the key never shows in a message */
    unlink(path);
    assert_int_equal(agw_secret_key_load(path, &k, err, sizeof err), AGW_EIO);
    assert_int_equal(agw_secret_key_load(dir, &k, err, sizeof err), AGW_EINVAL);
    rmdir(dir);
    agw_secret_key_wipe(&k);
    unsigned char zero[32] = { 0 };
    assert_memory_equal(k.k, zero, 32);
}

/* A secret checked against its stored hash only; and a wiped secret. */
static void test_secret_eq_sha256_and_wipe(void **state)
{
    (void)state;
    unsigned char h[AGW_SHA256_LEN];
    agw_sha256(AGW_STR_LIT("admin-secret"), h);
    assert_true(agw_secret_eq_sha256(AGW_STR_LIT("admin-secret"), h));
    assert_false(agw_secret_eq_sha256(AGW_STR_LIT("admin-secreT"), h));
    assert_false(agw_secret_eq_sha256(AGW_STR_LIT(""), h));
    char buf[8] = "abcdefg";
    agw_wipe(buf, 3);
    assert_memory_equal(buf, "\0\0\0defg", 8);
    agw_wipe(NULL, 0);
    agw_secret_free(NULL);
    agw_secret_free(strdup("sk-to-be-wiped"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_sha256_uses_view_length),
        cmocka_unit_test(test_sha256_recent),
        cmocka_unit_test(test_secret_eq),
        cmocka_unit_test(test_aead_round_trip),
        cmocka_unit_test(test_aead_known_vector),
        cmocka_unit_test(test_aead_detects_tampering),
        cmocka_unit_test(test_aead_limits),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_secret_eq_sha256_and_wipe),
        cmocka_unit_test(test_key_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
