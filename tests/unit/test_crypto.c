/* Unit tests for lib/crypto: SHA-256 against published vectors and the
 * constant-time secret comparison. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crypto.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_sha256_uses_view_length),
        cmocka_unit_test(test_secret_eq),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
