/* Unit tests for lib/core: the capped buffer, JSON string escaping, string
 * views, random ids, log levels, the log line format and buffered logging. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core.h"
#include "threadproc.h"

/* Exact-bytes check of a buffer against a literal (the literal may hold NULs). */
#define ASSERT_BUF(b, lit)                                        \
    do {                                                          \
        assert_int_equal((b).len, sizeof(lit) - 1);               \
        assert_non_null((b).data);                                \
        assert_memory_equal((b).data, (lit), sizeof(lit) - 1);   \
        assert_int_equal((b).data[(b).len], '\0');                \
    } while (0)

/* ---- agw_strerror ---- */

/* ---- memory budget ---- */

static void test_budget_limit(void **state)
{
    (void)state;
    agw_budget b = { 0 };
    /* The zero value has no limit. */
    assert_int_equal(agw_budget_take(&b, (size_t)1 << 40), AGW_OK);
    agw_budget_give(&b, (size_t)1 << 40);
    agw_budget_set_limit(&b, 100);
    assert_int_equal(agw_budget_take(&b, 60), AGW_OK);
    assert_int_equal(agw_budget_take(&b, 41), AGW_EBUSY); /* nothing taken */
    assert_int_equal(agw_budget_used(&b), 60);
    assert_int_equal(agw_budget_take(&b, 40), AGW_OK);    /* exactly the limit */
    assert_int_equal(agw_budget_take(&b, 1), AGW_EBUSY);
    assert_int_equal(agw_budget_take(&b, SIZE_MAX), AGW_EBUSY); /* no wrap-around */
    agw_budget_give(&b, 60);
    assert_int_equal(agw_budget_take(&b, 60), AGW_OK);
    agw_budget_give(&b, 100);
    assert_int_equal(agw_budget_used(&b), 0);
    assert_non_null(agw_budget_process());
    assert_ptr_equal(agw_budget_process(), agw_budget_process());
}

/* A buffer in a budget holds its capacity there: taken as it grows, given
 * back when freed or detached; growth past the budget frees the buffer. */
static void test_buf_in_budget(void **state)
{
    (void)state;
    agw_budget b = { 0 };
    agw_budget_set_limit(&b, 1000);
    agw_buf x = AGW_BUF_INIT(4096);
    x.budget = &b;
    assert_int_equal(agw_buf_append(&x, "abc", 3), AGW_OK);
    assert_int_equal(agw_budget_used(&b), 256); /* the first allocation */
    char big[600];
    memset(big, 'z', sizeof big);
    assert_int_equal(agw_buf_append(&x, big, 300), AGW_OK);
    assert_int_equal(agw_budget_used(&b), 512);
    /* Doubling to 1024 would pass the limit: refused, freed, all given back. */
    assert_int_equal(agw_buf_append(&x, big, 600), AGW_EBUSY);
    assert_null(x.data);
    assert_int_equal(x.len, 0);
    assert_int_equal(agw_budget_used(&b), 0);
    /* An exact reservation takes just what it asks for (+1 for the NUL). */
    assert_int_equal(agw_buf_reserve(&x, 900), AGW_OK);
    assert_int_equal(agw_budget_used(&b), 901);
    assert_int_equal(agw_buf_append(&x, big, 600), AGW_OK);
    assert_int_equal(agw_buf_append(&x, big, 300), AGW_OK);
    assert_int_equal(agw_budget_used(&b), 901); /* it fitted: no growth */
    size_t n;
    char *owned = agw_buf_detach(&x, &n);
    assert_int_equal(n, 900);
    assert_int_equal(agw_budget_used(&b), 0); /* the caller owns it, outside the budget */
    free(owned);
    assert_int_equal(agw_buf_append(&x, "q", 1), AGW_OK);
    agw_buf_free(&x);
    assert_int_equal(agw_budget_used(&b), 0);
    /* A buffer without a budget is not limited by one. */
    agw_buf y = AGW_BUF_INIT(1 << 20);
    assert_int_equal(agw_buf_reserve(&y, 1 << 19), AGW_OK);
    assert_int_equal(agw_budget_used(&b), 0);
    /* reserve keeps the cap on len. */
    assert_int_equal(agw_buf_reserve(&y, (1 << 20) + 1), AGW_ETOOBIG);
    agw_buf_free(&y);
}

/* Many threads taking and giving at once never hold more than the limit
 * together, and every byte comes back. */
typedef struct {
    agw_budget *b;
    _Atomic size_t *held, *peak;
    int refused;
} budget_worker;

static void *budget_thread(void *arg)
{
    budget_worker *w = arg;
    for (int i = 0; i < 20000; i++) {
        if (agw_budget_take(w->b, 7) != AGW_OK) {
            w->refused++;
            continue;
        }
        size_t now = atomic_fetch_add(w->held, 7) + 7;
        size_t p = atomic_load(w->peak);
        while (now > p && !atomic_compare_exchange_weak(w->peak, &p, now))
            ;
        atomic_fetch_sub(w->held, 7);
        agw_budget_give(w->b, 7);
    }
    return NULL;
}

static void test_budget_concurrent(void **state)
{
    (void)state;
    agw_budget b = { 0 };
    agw_budget_set_limit(&b, 7 * 3); /* room for 3 of 8 threads at a time */
    _Atomic size_t held = 0, peak = 0;
    budget_worker w[8];
    pthread_t t[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (budget_worker){ &b, &held, &peak, 0 };
        assert_int_equal(pthread_create(&t[i], NULL, budget_thread, &w[i]), 0);
    }
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_true(atomic_load(&peak) <= 21);
    assert_int_equal(agw_budget_used(&b), 0);
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(agw_strerror(AGW_OK), "ok");
    assert_string_equal(agw_strerror(AGW_ETOOBIG), "size limit exceeded");
    assert_string_equal(agw_strerror(AGW_EINVAL), "invalid input");
    assert_string_equal(agw_strerror(AGW_ENOTFOUND), "not found");
    assert_string_equal(agw_strerror(AGW_EIO), "i/o error");
    assert_string_equal(agw_strerror(AGW_EPEER), "peer failure");
    assert_string_equal(agw_strerror(AGW_ETIMEOUT), "timed out");
    assert_string_equal(agw_strerror(AGW_EBUSY), "memory budget exhausted");
    /* A value outside the enum must still give a string, never NULL. */
    assert_string_equal(agw_strerror((agw_err)99), "unknown error");
}

/* ---- agw_buf: cap ---- */

static void test_buf_init_is_empty(void **state)
{
    (void)state;
    agw_buf b = AGW_BUF_INIT(16);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.max, 16);
    /* The view of a never-allocated buffer is a valid empty string. */
    agw_str v = agw_buf_view(&b);
    assert_non_null(v.ptr);
    assert_int_equal(v.len, 0);
    /* Freeing a buffer that never allocated is harmless. */
    agw_buf_free(&b);
    assert_int_equal(b.max, 16);
}

static void test_buf_cap_exact_then_over(void **state)
{
    (void)state;
    agw_buf b = AGW_BUF_INIT(10);
    assert_int_equal(agw_buf_append(&b, "01234", 5), AGW_OK);
    assert_int_equal(agw_buf_append(&b, "56789", 5), AGW_OK);
    /* Exactly at the cap is allowed and still NUL-terminated. */
    ASSERT_BUF(b, "0123456789");
    /* One byte more fails, and the contract says the buffer is freed... */
    assert_int_equal(agw_buf_append(&b, "x", 1), AGW_ETOOBIG);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.max, 10);
    /* ...and stays usable with the same max. */
    assert_int_equal(agw_buf_append(&b, "abc", 3), AGW_OK);
    ASSERT_BUF(b, "abc");
    agw_buf_free(&b);
}

static void test_buf_cap_single_append_over(void **state)
{
    (void)state;
    agw_buf b = AGW_BUF_INIT(10);
    assert_int_equal(agw_buf_append(&b, "0123456789A", 11), AGW_ETOOBIG);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    /* A huge length must be refused by the cap check without overflowing the
     * len + n arithmetic and without reading the source (it is only 1 byte). */
    assert_int_equal(agw_buf_append(&b, "xxxxx", 5), AGW_OK);
    assert_int_equal(agw_buf_append(&b, "x", SIZE_MAX), AGW_ETOOBIG);
    assert_null(b.data);
    assert_int_equal(agw_buf_append(&b, "x", SIZE_MAX - 2), AGW_ETOOBIG);
    assert_int_equal(b.len, 0);
}

static void test_buf_cap_zero(void **state)
{
    (void)state;
    /* max 0: an empty append is fine, a single byte is not. */
    agw_buf b = AGW_BUF_INIT(0);
    assert_int_equal(agw_buf_append(&b, "", 0), AGW_OK);
    assert_int_equal(b.len, 0);
    assert_int_equal(agw_buf_append(&b, "a", 1), AGW_ETOOBIG);
    assert_null(b.data);
    agw_buf_free(&b);
}

static void test_buf_growth_keeps_bytes(void **state)
{
    (void)state;
    /* Many small appends across several reallocations, with NULs inside. */
    agw_buf b = AGW_BUF_INIT(1u << 20);
    char expect[5000];
    for (size_t i = 0; i < sizeof expect; i++) {
        char c = (char)(i % 251);
        expect[i] = c;
        assert_int_equal(agw_buf_append(&b, &c, 1), AGW_OK);
    }
    assert_int_equal(b.len, sizeof expect);
    assert_true(b.cap > b.len);
    assert_memory_equal(b.data, expect, sizeof expect);
    assert_int_equal(b.data[b.len], '\0');
    agw_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.max, 1u << 20);
}

static void test_buf_append_str(void **state)
{
    (void)state;
    agw_buf b = AGW_BUF_INIT(64);
    assert_int_equal(agw_buf_append_str(&b, AGW_STR_LIT("a\0b")), AGW_OK);
    assert_int_equal(agw_buf_append_str(&b, agw_str_c(NULL)), AGW_OK);
    assert_int_equal(agw_buf_append_str(&b, agw_str_c("cd")), AGW_OK);
    ASSERT_BUF(b, "a\0bcd");
    agw_buf_free(&b);
}

/* ---- appendf ---- */

static void test_appendf_small(void **state)
{
    (void)state;
    agw_buf b = AGW_BUF_INIT(64);
    assert_int_equal(agw_buf_appendf(&b, "%d-%s-%lu", 42, "x", (unsigned long)7), AGW_OK);
    assert_int_equal(agw_buf_appendf(&b, "%s", ""), AGW_OK);
    assert_int_equal(agw_buf_appendf(&b, "|%c", 'z'), AGW_OK);
    ASSERT_BUF(b, "42-x-7|z");
    agw_buf_free(&b);
}

static void test_append_i64(void **state)
{
    (void)state;
    /* The same digits as printf's %lld, at both ends of the range. */
    const int64_t values[] = { 0, 7, -7, 10, 999999999, 1000000000, -1000000000,
                               INT64_MAX, INT64_MIN, INT64_MIN + 1 };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        agw_buf b = AGW_BUF_INIT(64);
        char want[32];
        snprintf(want, sizeof want, "%lld", (long long)values[i]);
        assert_int_equal(agw_buf_append_str(&b, AGW_STR_LIT("n=")), AGW_OK);
        assert_int_equal(agw_buf_append_i64(&b, values[i]), AGW_OK);
        assert_int_equal(b.len, 2 + strlen(want));
        assert_memory_equal(b.data + 2, want, strlen(want));
        agw_buf_free(&b);
    }
    /* Past the cap it fails like any append. */
    agw_buf small = AGW_BUF_INIT(3);
    assert_int_equal(agw_buf_append_i64(&small, 12345), AGW_ETOOBIG);
    agw_buf_free(&small);
}

/* appendf formats into a 256-byte stack buffer first; outputs of 255, 256 and
 * more bytes take the two different paths, and both must give exact bytes. */
static void check_appendf_len(size_t n, const char *prefix)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        s[i] = (char)('a' + i % 26);
    s[n] = '\0';
    agw_buf b = AGW_BUF_INIT(1u << 20);
    assert_int_equal(agw_buf_append(&b, prefix, strlen(prefix)), AGW_OK);
    assert_int_equal(agw_buf_appendf(&b, "%s", s), AGW_OK);
    assert_int_equal(b.len, strlen(prefix) + n);
    assert_memory_equal(b.data, prefix, strlen(prefix));
    assert_memory_equal(b.data + strlen(prefix), s, n);
    assert_int_equal(b.data[b.len], '\0');
    /* And the buffer is still appendable afterwards. */
    assert_int_equal(agw_buf_appendf(&b, "%d", 5), AGW_OK);
    assert_int_equal(b.len, strlen(prefix) + n + 1);
    assert_int_equal(b.data[b.len - 1], '5');
    assert_int_equal(b.data[b.len], '\0');
    agw_buf_free(&b);
    free(s);
}

static void test_appendf_growth(void **state)
{
    (void)state;
    check_appendf_len(255, "");
    check_appendf_len(256, "");
    check_appendf_len(257, "");
    check_appendf_len(300, "pre:");
    check_appendf_len(10000, "0123456789");
}

static void test_appendf_over_cap(void **state)
{
    (void)state;
    /* Small path over the cap. */
    agw_buf b = AGW_BUF_INIT(8);
    assert_int_equal(agw_buf_appendf(&b, "%s", "12345"), AGW_OK);
    assert_int_equal(agw_buf_appendf(&b, "%s", "6789"), AGW_ETOOBIG);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    agw_buf_free(&b);

    /* Large (> 256 bytes) path over the cap. */
    char big[400];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    agw_buf c = AGW_BUF_INIT(300);
    assert_int_equal(agw_buf_appendf(&c, "%s", "abc"), AGW_OK);
    assert_int_equal(agw_buf_appendf(&c, "%s", big), AGW_ETOOBIG);
    assert_null(c.data);
    assert_int_equal(c.len, 0);
    /* Exactly the cap through the large path is fine. */
    big[300] = '\0';
    assert_int_equal(agw_buf_appendf(&c, "%s", big), AGW_OK);
    assert_int_equal(c.len, 300);
    assert_int_equal(c.data[300], '\0');
    agw_buf_free(&c);
}

/* ---- JSON escaping ---- */

typedef struct {
    const char *in;
    size_t inlen;
    const char *out;
    size_t outlen;
} esc_case;

#define ESC(i, o) { (i), sizeof(i) - 1, (o), sizeof(o) - 1 }
#define FFFD "\xEF\xBF\xBD"

static void test_json_escape_cases(void **state)
{
    (void)state;
    static const esc_case cases[] = {
        ESC("", ""),
        ESC("plain text 123", "plain text 123"),
        ESC("a\"b\\c", "a\\\"b\\\\c"),
        ESC("/", "/"),
        ESC("\n\r\t\b\f", "\\n\\r\\t\\b\\f"),
        ESC("\x01\x1f\x0b", "\\u0001\\u001f\\u000b"),
        ESC("a\0b", "a\\u0000b"),
        ESC("\0", "\\u0000"),
        /* DEL is legal in JSON strings and passes unescaped. */
        ESC("\x7f", "\x7f"),
        /* Valid multi-byte UTF-8 (2, 3, 4 bytes, and the extremes) passes as is. */
        ESC("\xC3\xA9", "\xC3\xA9"),
        ESC("\xE2\x82\xAC", "\xE2\x82\xAC"),
        ESC("\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80"),
        ESC("\xC2\x80", "\xC2\x80"),
        ESC("\xEF\xBF\xBF", "\xEF\xBF\xBF"),
        ESC("\xF4\x8F\xBF\xBF", "\xF4\x8F\xBF\xBF"),
        ESC("\xED\x9F\xBF", "\xED\x9F\xBF"),
        ESC("\xEE\x80\x80", "\xEE\x80\x80"),
        /* Each invalid byte becomes one U+FFFD. */
        ESC("\x80", FFFD),
        ESC("\xFF", FFFD),
        ESC("\xF5\x80\x80\x80", FFFD FFFD FFFD FFFD),
        ESC("\xC3", FFFD),
        ESC("a\xC3", "a" FFFD),
        ESC("\xC3(", FFFD "("),
        ESC("\xE2\x82", FFFD FFFD),
        ESC("\xE2\x28\xA1", FFFD "(" FFFD),
        /* Overlong encodings. */
        ESC("\xC0\xAF", FFFD FFFD),
        ESC("\xC1\xBF", FFFD FFFD),
        ESC("\xE0\x80\xAF", FFFD FFFD FFFD),
        ESC("\xF0\x80\x80\xAF", FFFD FFFD FFFD FFFD),
        /* UTF-16 surrogates encoded in UTF-8 (CESU-8). */
        ESC("\xED\xA0\x80", FFFD FFFD FFFD),
        ESC("\xED\xBF\xBF", FFFD FFFD FFFD),
        ESC("\xED\xA0\xBD\xED\xB8\x80", FFFD FFFD FFFD FFFD FFFD FFFD),
        /* Past U+10FFFF. */
        ESC("\xF4\x90\x80\x80", FFFD FFFD FFFD FFFD),
        /* Mixed: the escape of one byte must not swallow its neighbours. */
        ESC("x\"\xC3\xA9\n\xFFy", "x\\\"\xC3\xA9\\n" FFFD "y"),
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        agw_buf b = AGW_BUF_INIT(1024);
        assert_int_equal(agw_buf_append(&b, "<", 1), AGW_OK);
        assert_int_equal(agw_buf_append_json_escaped(&b, (agw_str){ cases[i].in, cases[i].inlen }),
                         AGW_OK);
        assert_int_equal(agw_buf_append(&b, ">", 1), AGW_OK);
        if (b.len != cases[i].outlen + 2 || memcmp(b.data + 1, cases[i].out, cases[i].outlen) != 0)
            fail_msg("case %lu: escaped output differs (got %lu bytes, want %lu)",
                     (unsigned long)i, (unsigned long)b.len - 2, (unsigned long)cases[i].outlen);
        assert_int_equal(b.data[0], '<');
        assert_int_equal(b.data[b.len - 1], '>');
        assert_int_equal(b.data[b.len], '\0');
        agw_buf_free(&b);
    }
}

static void test_json_escape_all_controls(void **state)
{
    (void)state;
    /* Every byte below 0x20 is escaped; the short forms where JSON has them. */
    char in[32];
    for (int i = 0; i < 32; i++)
        in[i] = (char)i;
    agw_buf b = AGW_BUF_INIT(4096);
    assert_int_equal(agw_buf_append_json_escaped(&b, (agw_str){ in, sizeof in }), AGW_OK);
    agw_buf want = AGW_BUF_INIT(4096);
    for (int i = 0; i < 32; i++) {
        const char *s = NULL;
        switch (i) {
        case '\b': s = "\\b"; break;
        case '\t': s = "\\t"; break;
        case '\n': s = "\\n"; break;
        case '\f': s = "\\f"; break;
        case '\r': s = "\\r"; break;
        }
        if (s)
            assert_int_equal(agw_buf_append(&want, s, 2), AGW_OK);
        else
            assert_int_equal(agw_buf_appendf(&want, "\\u%04x", i), AGW_OK);
    }
    assert_int_equal(b.len, want.len);
    assert_memory_equal(b.data, want.data, want.len);
    agw_buf_free(&b);
    agw_buf_free(&want);
}

static void test_json_escape_over_cap(void **state)
{
    (void)state;
    /* 4 input bytes that escape to 24: the cap (22) applies to the output. */
    agw_buf b = AGW_BUF_INIT(22);
    assert_int_equal(agw_buf_append_json_escaped(&b, AGW_STR_LIT("\x01\x02\x03\x04")), AGW_ETOOBIG);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    /* The same buffer then works for output that fits exactly (22 bytes). */
    assert_int_equal(agw_buf_append_json_escaped(&b, AGW_STR_LIT("\x01\x02\x03\"\"")), AGW_OK);
    ASSERT_BUF(b, "\\u0001\\u0002\\u0003\\\"\\\"");
    agw_buf_free(&b);
}

/* ---- consume / reset / detach ---- */

static void test_buf_consume(void **state)
{
    (void)state;
    agw_buf b = AGW_BUF_INIT(64);
    assert_int_equal(agw_buf_append(&b, "hello world", 11), AGW_OK);
    char *before = b.data;
    size_t cap = b.cap;
    agw_buf_consume(&b, 0);
    ASSERT_BUF(b, "hello world");
    agw_buf_consume(&b, 6);
    ASSERT_BUF(b, "world");
    /* The allocation is kept. */
    assert_ptr_equal(b.data, before);
    assert_int_equal(b.cap, cap);
    agw_buf_consume(&b, 5);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.data, before);
    assert_int_equal(b.data[0], '\0');
    /* More than len empties it too. */
    assert_int_equal(agw_buf_append(&b, "abc", 3), AGW_OK);
    agw_buf_consume(&b, 100);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.data[0], '\0');
    /* Consuming an unallocated buffer does nothing. */
    agw_buf e = AGW_BUF_INIT(4);
    agw_buf_consume(&e, 0);
    assert_null(e.data);
    agw_buf_free(&b);
}

static void test_buf_reset(void **state)
{
    (void)state;
    agw_buf b = AGW_BUF_INIT(64);
    assert_int_equal(agw_buf_append(&b, "abc", 3), AGW_OK);
    char *p = b.data;
    agw_buf_reset(&b);
    assert_ptr_equal(b.data, p);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.data[0], '\0');
    assert_int_equal(agw_buf_append(&b, "z", 1), AGW_OK);
    ASSERT_BUF(b, "z");
    agw_buf_free(&b);
}

static void test_buf_detach(void **state)
{
    (void)state;
    agw_buf b = AGW_BUF_INIT(64);
    assert_int_equal(agw_buf_append(&b, "a\0bc", 4), AGW_OK);
    size_t len = 99;
    char *p = agw_buf_detach(&b, &len);
    assert_non_null(p);
    assert_int_equal(len, 4);
    assert_memory_equal(p, "a\0bc", 5); /* includes the trailing NUL */
    /* The buffer is empty, owns nothing, keeps its max and is reusable. */
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.max, 64);
    assert_int_equal(agw_buf_append(&b, "x", 1), AGW_OK);
    assert_true(b.data != p);
    ASSERT_BUF(b, "x");
    free(p);
    /* len may be NULL. */
    p = agw_buf_detach(&b, NULL);
    assert_string_equal(p, "x");
    free(p);
    /* An empty never-allocated buffer detaches to NULL with len 0. */
    len = 99;
    assert_null(agw_buf_detach(&b, &len));
    assert_int_equal(len, 0);
}

/* ---- string views ---- */

static void test_str_eq_nocase(void **state)
{
    (void)state;
    assert_true(agw_str_eq_nocase(AGW_STR_LIT("Content-Type"), AGW_STR_LIT("content-type")));
    assert_true(agw_str_eq_nocase(AGW_STR_LIT("RETRY-AFTER"), AGW_STR_LIT("retry-after")));
    assert_true(agw_str_eq_nocase(AGW_STR_LIT(""), AGW_STR_LIT("")));
    assert_true(agw_str_eq_nocase((agw_str){ NULL, 0 }, AGW_STR_LIT("")));
    assert_true(agw_str_eq_nocase(AGW_STR_LIT("a\0B"), AGW_STR_LIT("A\0b")));
    assert_false(agw_str_eq_nocase(AGW_STR_LIT("abc"), AGW_STR_LIT("abcd")));
    assert_false(agw_str_eq_nocase(AGW_STR_LIT("abc"), AGW_STR_LIT("abd")));
    assert_false(agw_str_eq_nocase(AGW_STR_LIT("a\0c"), AGW_STR_LIT("a\0d")));
    /* Only ASCII letters fold: these pairs differ by 0x20 but are not letters,
     * so a sloppy "c | 0x20" comparison would wrongly call them equal. */
    assert_false(agw_str_eq_nocase(AGW_STR_LIT("["), AGW_STR_LIT("{")));
    assert_false(agw_str_eq_nocase(AGW_STR_LIT("@"), AGW_STR_LIT("`")));
    assert_false(agw_str_eq_nocase(AGW_STR_LIT("^"), AGW_STR_LIT("~")));
    assert_false(agw_str_eq_nocase(AGW_STR_LIT("\xC4"), AGW_STR_LIT("\xE4")));
    assert_false(agw_str_eq_nocase(AGW_STR_LIT("-"), AGW_STR_LIT("\r")));
}

static void test_str_starts_eq(void **state)
{
    (void)state;
    assert_true(agw_str_starts(AGW_STR_LIT("openai/gpt-4o"), AGW_STR_LIT("openai/")));
    assert_true(agw_str_starts(AGW_STR_LIT("openai"), AGW_STR_LIT("openai")));
    assert_true(agw_str_starts(AGW_STR_LIT("x"), AGW_STR_LIT("")));
    assert_false(agw_str_starts(AGW_STR_LIT("open"), AGW_STR_LIT("openai")));
    assert_false(agw_str_starts(AGW_STR_LIT("Openai/x"), AGW_STR_LIT("openai/")));
    assert_false(agw_str_starts(AGW_STR_LIT(""), AGW_STR_LIT("a")));

    assert_true(agw_str_eq(AGW_STR_LIT("ab"), agw_str_c("ab")));
    assert_true(agw_str_eq((agw_str){ NULL, 0 }, AGW_STR_LIT("")));
    assert_false(agw_str_eq(AGW_STR_LIT("ab"), AGW_STR_LIT("aB")));
    assert_false(agw_str_eq(AGW_STR_LIT("a\0b"), AGW_STR_LIT("a\0c")));

    agw_str n = agw_str_c(NULL);
    assert_non_null(n.ptr);
    assert_int_equal(n.len, 0);
    assert_int_equal(AGW_STR_LIT("a\0b").len, 3);
}

static void test_str_dup(void **state)
{
    (void)state;
    char *p = agw_str_dup(AGW_STR_LIT("ab\0cd"));
    assert_memory_equal(p, "ab\0cd", 6);
    free(p);
    /* A view that is a slice, not a C string: the copy must stop at len. */
    const char *whole = "model-name-and-more";
    p = agw_str_dup((agw_str){ whole, 10 });
    assert_string_equal(p, "model-name");
    free(p);
    p = agw_str_dup((agw_str){ NULL, 0 });
    assert_string_equal(p, "");
    free(p);
}

/* ---- random ids ---- */

static int is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static void test_random_hex(void **state)
{
    (void)state;
    char out[40];
    memset(out, '#', sizeof out);
    assert_int_equal(agw_random_hex(out, 16), AGW_OK);
    assert_int_equal(strlen(out), 32);
    assert_true(is_lower_hex(out, 32));
    /* Nothing written past the NUL. */
    assert_int_equal(out[33], '#');

    /* nbytes 0 gives the empty string. */
    char z[1] = { '#' };
    assert_int_equal(agw_random_hex(z, 0), AGW_OK);
    assert_int_equal(z[0], '\0');

    /* More than one internal 64-byte chunk. */
    char big[2 * 200 + 2];
    memset(big, '#', sizeof big);
    assert_int_equal(agw_random_hex(big, 200), AGW_OK);
    assert_int_equal(strlen(big), 400);
    assert_true(is_lower_hex(big, 400));
    assert_int_equal(big[401], '#');
    /* The second chunk is random too, not a repeat of the first. */
    assert_memory_not_equal(big, big + 128, 128);
}

static void test_random_hex_unique(void **state)
{
    (void)state;
    /* 200 ids of 64 bits: a collision would be a broken RNG, not bad luck. */
    enum { N = 200 };
    char ids[N][17];
    int hist[16] = { 0 };
    for (int i = 0; i < N; i++) {
        assert_int_equal(agw_random_hex(ids[i], 8), AGW_OK);
        for (int k = 0; k < 16; k++)
            hist[agw_hex_value((unsigned char)ids[i][k])]++;
        for (int j = 0; j < i; j++)
            assert_string_not_equal(ids[i], ids[j]);
    }
    /* All 16 digits appear among 3200 of them (each misses with p ~ 1e-89). */
    for (int k = 0; k < 16; k++)
        assert_true(hist[k] > 0);
}

/* ---- logging ---- */

static void test_log_level_parse(void **state)
{
    (void)state;
    assert_int_equal(agw_log_level_parse("error"), AGW_LOG_ERROR);
    assert_int_equal(agw_log_level_parse("warn"), AGW_LOG_WARN);
    assert_int_equal(agw_log_level_parse("info"), AGW_LOG_INFO);
    assert_int_equal(agw_log_level_parse("debug"), AGW_LOG_DEBUG);
    assert_int_equal(agw_log_level_parse("INFO"), -1);
    assert_int_equal(agw_log_level_parse("warning"), -1);
    assert_int_equal(agw_log_level_parse("inf"), -1);
    assert_int_equal(agw_log_level_parse("info "), -1);
    assert_int_equal(agw_log_level_parse(""), -1);
    assert_int_equal(agw_log_level_parse(NULL), -1);

    agw_log_level old = agw_log_get_level();
    agw_log_set_level(AGW_LOG_DEBUG);
    assert_int_equal(agw_log_get_level(), AGW_LOG_DEBUG);
    agw_log_set_level(AGW_LOG_ERROR);
    assert_int_equal(agw_log_get_level(), AGW_LOG_ERROR);
    agw_log_set_level(old);
}

/* Runs fn with stderr pointed at a pipe and returns what was written. */
static size_t capture_stderr(void (*fn)(void), char *out, size_t cap)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(p[1], STDERR_FILENO) >= 0);
    close(p[1]);
    fn();
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    size_t n = 0;
    ssize_t r;
    while (n < cap - 1 && (r = read(p[0], out + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    close(p[0]);
    out[n] = '\0';
    return n;
}

static void log_some(void)
{
    agw_log_set_level(AGW_LOG_INFO);
    agw_log_debug("hidden %d", 1);          /* below the level: nothing */
    agw_log(AGW_LOG_DEBUG, "hidden too");   /* the function filters as well */
    agw_log_warn("disk %s at %d%%", "full", 99);
}

static void test_log_line(void **state)
{
    (void)state;
    agw_log_level old = agw_log_get_level();
    char out[4096];
    size_t n = capture_stderr(log_some, out, sizeof out);
    agw_log_set_level(old);
    /* Exactly one line: "YYYY-MM-DDTHH:MM:SS.mmmZ antigw[pid] warn: msg\n". */
    char tail[128];
    snprintf(tail, sizeof tail, "Z antigw[%d] warn: disk full at 99%%\n", (int)getpid());
    assert_int_equal(n, 23 + strlen(tail));
    assert_string_equal(out + 23, tail);
    assert_int_equal(out[4], '-');
    assert_int_equal(out[7], '-');
    assert_int_equal(out[10], 'T');
    assert_int_equal(out[13], ':');
    assert_int_equal(out[16], ':');
    assert_int_equal(out[19], '.');
}

/* What the file behind `fd` holds, NUL-terminated, in a malloc'd buffer. */
static char *file_text(int fd)
{
    off_t size = lseek(fd, 0, SEEK_END);
    assert_true(size >= 0);
    char *text = malloc((size_t)size + 1);
    assert_non_null(text);
    assert_int_equal(pread(fd, text, (size_t)size, 0), (ssize_t)size);
    text[size] = '\0';
    return text;
}

/* Where `needle` is in the file's text, or -1. */
static long file_find(int fd, const char *needle)
{
    char *text = file_text(fd);
    const char *at = strstr(text, needle);
    long pos = at ? (long)(at - text) : -1;
    free(text);
    return pos;
}

enum { LOG_THREADS = 4, LOG_THREAD_LINES = 1500 };

static void *log_lines(void *arg)
{
    int t = (int)(intptr_t)arg;
    char pad[101];
    memset(pad, 'x', 100);
    pad[100] = '\0';
    for (int i = 0; i < LOG_THREAD_LINES; i++)
        agw_log_info("thread %d line %05d %s", t, i, pad);
    return NULL;
}

/* How often the thread named `name` of this process has gone to sleep on
 * its own (voluntary_ctxt_switches in its status); -1 when there is none. */
static long thread_sleeps(const char *name)
{
    char status[4096];
    long sleeps = -1;
    if (threadproc_read(name, "status", status, sizeof status) < 0)
        return -1;
    const char *p = strstr(status, "\nvoluntary_ctxt_switches:");
    if (!p || sscanf(p, "\nvoluntary_ctxt_switches: %ld", &sleeps) != 1)
        return -1;
    return sleeps;
}

static void test_log_buffered(void **state)
{
    (void)state;
    agw_log_level old = agw_log_get_level();
    agw_log_set_level(AGW_LOG_INFO);
    char path[] = "/tmp/agw-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0 && dup2(fd, STDERR_FILENO) >= 0);

    assert_int_equal(agw_log_buffer_start(), AGW_OK);
    assert_int_equal(agw_log_buffer_start(), AGW_EINVAL);
    /* A warning goes out at once, after the info lines logged before it. */
    agw_log_info("first info");
    agw_log_info("second info");
    agw_log_warn("then a warning");
    long a = file_find(fd, "info: first info\n"), b = file_find(fd, "info: second info\n");
    long c = file_find(fd, "warn: then a warning\n");
    assert_true(a >= 0 && a < b && b < c);
    agw_log_info("flushed by hand");
    agw_log_flush();
    assert_true(file_find(fd, "info: flushed by hand\n") > c);
    /* The logger thread writes an info line out on its own. */
    agw_log_info("left to the logger");
    long d = -1;
    for (int i = 0; i < 400 && d < 0; i++) {
        usleep(5000);
        d = file_find(fd, "info: left to the logger\n");
    }
    assert_true(d > c);
    /* With nothing buffered the logger sleeps until a line comes: it must
     * not wake every 100 ms in an idle process (it looks once more 100 ms
     * after its last write). */
    usleep(150000);
    long before = thread_sleeps("agw-logger");
    usleep(300000);
    long after = thread_sleeps("agw-logger");
    assert_true(before >= 0);
    assert_true(after - before <= 1);
    /* A line every 5 ms for a second or so: the logger writes every 100
     * ms, woken by its deadline alone; a wake-up for the first line after
     * each write would double the count. */
    before = thread_sleeps("agw-logger");
    uint64_t start_ms = agw_mono_ms();
    for (int i = 0; i < 200; i++) {
        agw_log_info("steady line %d", i);
        usleep(5000);
    }
    long writes = (long)((agw_mono_ms() - start_ms) / 100);
    after = thread_sleeps("agw-logger");
    assert_true(after - before >= writes / 2);
    assert_true(after - before <= writes + 3);
    /* Threads logging more than the buffer holds: every line, once, each
     * thread's in its order. */
    pthread_t th[LOG_THREADS];
    for (int t = 0; t < LOG_THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, log_lines, (void *)(intptr_t)t), 0);
    for (int t = 0; t < LOG_THREADS; t++)
        pthread_join(th[t], NULL);
    agw_log_buffer_stop();
    agw_log_buffer_stop(); /* a no-op once off */
    char *text = file_text(fd);
    for (int t = 0; t < LOG_THREADS; t++) {
        const char *from = text;
        for (int i = 0; i < LOG_THREAD_LINES; i++) {
            char want[64];
            snprintf(want, sizeof want, "info: thread %d line %05d x", t, i);
            const char *at = strstr(from, want);
            assert_non_null(at);
            assert_null(strstr(at + 1, want));
            from = at;
        }
    }
    free(text);
    /* Off again: a line is written at once. */
    agw_log_info("unbuffered again");
    assert_true(file_find(fd, "info: unbuffered again\n") > d);
    /* And on again: a second start works, its stop writes out the rest. */
    assert_int_equal(agw_log_buffer_start(), AGW_OK);
    agw_log_info("buffered again");
    agw_log_buffer_stop();
    assert_true(file_find(fd, "info: buffered again\n") > file_find(fd, "info: unbuffered again\n"));

    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    close(fd);
    agw_log_set_level(old);
}

static void log_one(void)
{
    agw_log_warn("tick");
}

/* The wall-clock second a log line names. */
static time_t log_line_time(const char *line)
{
    struct tm tm = { 0 };
    assert_non_null(strptime(line, "%Y-%m-%dT%H:%M:%S", &tm));
    return timegm(&tm);
}

static void test_log_time_is_current(void **state)
{
    (void)state;
    /* Each thread keeps its last formatted second: a line written a second
     * after another must name the later second, and both the clock's. */
    /* The bounds come from the clock the log reads: time() reads a coarser
     * one that can be a tick behind, and so a second behind at a boundary. */
    char a[512], b[512];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    time_t before = now.tv_sec;
    capture_stderr(log_one, a, sizeof a);
    struct timespec pause = { 1, 100000000 };
    nanosleep(&pause, NULL);
    capture_stderr(log_one, b, sizeof b);
    clock_gettime(CLOCK_REALTIME, &now);
    time_t after = now.tv_sec;
    time_t ta = log_line_time(a), tb = log_line_time(b);
    assert_true(ta >= before && ta <= after);
    assert_true(tb >= ta + 1 && tb <= after);
}

static void log_long(void)
{
    char msg[3000];
    memset(msg, 'm', sizeof msg - 1);
    msg[sizeof msg - 1] = '\0';
    agw_log_error("%s", msg);
}

static void test_log_long_line_truncated(void **state)
{
    (void)state;
    char out[8192];
    size_t n = capture_stderr(log_long, out, sizeof out);
    /* Truncated to the 2048-byte line buffer, still one whole line. */
    assert_int_equal(n, 2047);
    assert_int_equal(out[n - 1], '\n');
    assert_null(memchr(out, '\n', n - 1));
    assert_int_equal(out[n - 2], 'm');
}

/* ---- memory helpers and clocks (smoke: they must not lie) ---- */

/* agw_json_plain_run stops at the first byte a JSON string cannot hold as
 * it is, for every byte value, at every place in and across 8-byte words,
 * also when more such bytes follow. */
static void test_json_plain_run(void **state)
{
    (void)state;
    unsigned char buf[21];
    for (int c = 0; c < 256; c++) {
        int plain = c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
        for (size_t k = 0; k < 20; k++) {
            memset(buf, 'a', sizeof buf);
            buf[k] = (unsigned char)c;
            assert_int_equal(agw_json_plain_run(buf, 20), plain ? 20 : k);
            buf[k + 1] = 0x01; /* a second stop right after the first */
            assert_int_equal(agw_json_plain_run(buf, 20), plain ? (k + 1 < 20 ? k + 1 : 20) : k);
            assert_int_equal(agw_json_plain_run(buf, k), k); /* n bounds the scan */
        }
    }
    assert_int_equal(agw_json_plain_run((const unsigned char *)"", 0), 0);
}

static void test_x_alloc(void **state)
{
    (void)state;
    char *s = xstrdup("abc");
    assert_string_equal(s, "abc");
    free(s);
    int *z = xcalloc(4, sizeof *z);
    for (int i = 0; i < 4; i++)
        assert_int_equal(z[i], 0);
    z = xrealloc(z, 100 * sizeof *z);
    z[99] = 7;
    assert_int_equal(z[0], 0);
    free(z);
    /* Zero-size requests return a real pointer, never NULL. */
    void *p = xmalloc(0);
    assert_non_null(p);
    free(p);
}

/* ---- files ---- */

static volatile sig_atomic_t flock_signals;

static void on_flock_signal(int sig)
{
    (void)sig;
    flock_signals++;
}

typedef struct {
    pthread_t waiter;
    int held_fd;
} flock_peer;

/* Interrupts the waiter twice, then lets the lock go. */
static void *flock_interrupter(void *arg)
{
    flock_peer *p = arg;
    for (int i = 0; i < 2; i++) {
        usleep(50000);
        pthread_kill(p->waiter, SIGUSR1);
    }
    usleep(50000);
    flock(p->held_fd, LOCK_UN);
    return NULL;
}

/* A signal during the wait does not end it: agw_flock waits on for the lock. */
static void test_flock_survives_signals(void **state)
{
    (void)state;
    char path[] = "/tmp/antigw-test-flock-XXXXXX";
    int a = mkstemp(path);
    assert_true(a >= 0);
    int b = open(path, O_RDWR);
    assert_true(b >= 0);
    unlink(path);
    /* No SA_RESTART: the signal makes flock fail with EINTR. */
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_flock_signal;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);

    assert_int_equal(agw_flock(a, LOCK_EX), 0);
    assert_int_equal(agw_flock(b, LOCK_EX | LOCK_NB), -1);
    assert_int_equal(errno, EWOULDBLOCK);
    flock_peer peer = { pthread_self(), a };
    pthread_t t;
    flock_signals = 0;
    assert_int_equal(pthread_create(&t, NULL, flock_interrupter, &peer), 0);
    assert_int_equal(agw_flock(b, LOCK_EX), 0);
    assert_int_equal(flock_signals, 2);
    pthread_join(t, NULL);
    sigaction(SIGUSR1, &old, NULL);
    close(a);
    close(b);
}

/* ---- arena ---- */

static void test_arena_zeroed_across_chunks(void **state)
{
    (void)state;
    /* Dirty the chunks the next arena may reuse. */
    agw_arena a = AGW_ARENA_INIT;
    for (int i = 0; i < 40; i++)
        memset(agw_arena_alloc(&a, 1000), 0xAA, 1000);
    memset(agw_arena_alloc(&a, 40000), 0xAA, 40000); /* larger than a chunk */
    agw_arena_free(&a);
    assert_null(a.head);

    agw_arena b = AGW_ARENA_INIT;
    unsigned char *p[40];
    for (int i = 0; i < 40; i++) {
        p[i] = agw_arena_alloc(&b, 1000);
        for (int k = 0; k < 1000; k++)
            assert_int_equal(p[i][k], 0);
        memset(p[i], i, 1000);
        assert_int_equal((uintptr_t)p[i] % _Alignof(max_align_t), 0);
    }
    unsigned char *big = agw_arena_alloc(&b, 40000);
    for (int k = 0; k < 40000; k++)
        assert_int_equal(big[k], 0);
    /* Every allocation kept its own bytes: none overlaps another. */
    for (int i = 0; i < 40; i++)
        for (int k = 0; k < 1000; k++)
            assert_int_equal(p[i][k], i);
    agw_str s = agw_arena_str(&b, AGW_STR_LIT("kept"));
    assert_int_equal(s.len, 4);
    assert_string_equal(s.ptr, "kept");
    agw_arena_free(&b);
}

/* Arenas of many chunks, freed in threads that then end: what a thread keeps
 * for its next arenas goes back at its exit (LeakSanitizer checks this in the
 * sanitizer build). */
static void *arena_thread(void *arg)
{
    (void)arg;
    for (int round = 0; round < 3; round++) {
        agw_arena a = AGW_ARENA_INIT, b = AGW_ARENA_INIT;
        for (int i = 0; i < 100; i++) {
            agw_arena_alloc(&a, 2000);
            agw_arena_alloc(&b, 500);
        }
        agw_arena_free(&a);
        agw_arena_free(&b);
    }
    return NULL;
}

static void test_arena_threads(void **state)
{
    (void)state;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, arena_thread, NULL), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
}

/* A freed arena's chunk goes to the thread's next arena, usable. With
 * AddressSanitizer, its bytes stay unusable while it waits: a use after
 * agw_arena_free is still reported. */
static void test_arena_chunk_reused(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        agw_arena a = AGW_ARENA_INIT;
        volatile char *p = agw_arena_alloc(&a, 64);
        p[0] = 'x';
        agw_arena_free(&a);
        char c = p[0]; /* must not return */
        _exit(c == 'x' ? 0 : 3);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_false(WIFEXITED(st) && WEXITSTATUS(st) == 0);
#endif
    agw_arena a = AGW_ARENA_INIT;
    char *p = agw_arena_alloc(&a, 64);
    agw_arena_free(&a);
    agw_arena b = AGW_ARENA_INIT;
    char *q = agw_arena_alloc(&b, 64);
    assert_ptr_equal(p, q);
    memset(q, 'y', 64);
    agw_arena_free(&b);
}

static void test_clocks(void **state)
{
    (void)state;
    uint64_t a = agw_mono_us(), b = agw_mono_us();
    assert_true(b >= a);
    uint64_t ms = agw_mono_ms();
    assert_true(ms >= a / 1000u);
    assert_true(agw_wall_s() > 1600000000);
}

static void test_str_has_ctl(void **state)
{
    (void)state;
    assert_int_equal(agw_str_has_ctl(AGW_STR_LIT(""), 1), 0);
    assert_int_equal(agw_str_has_ctl(AGW_STR_LIT("2023-06-01"), 1), 0);
    assert_int_equal(agw_str_has_ctl(AGW_STR_LIT("a b\tc ~!@#$%^&*()"), 1), 0);
    assert_int_equal(agw_str_has_ctl(AGW_STR_LIT("\t"), 1), 0);
    assert_int_equal(agw_str_has_ctl(AGW_STR_LIT("a\rb"), 1), 1);
    assert_int_equal(agw_str_has_ctl(AGW_STR_LIT("a\nb"), 1), 1);
    assert_int_equal(agw_str_has_ctl(AGW_STR_LIT("a\r\nb"), 1), 1);
    assert_int_equal(agw_str_has_ctl(AGW_STR_LIT("ab\n"), 1), 1);
    assert_int_equal(agw_str_has_ctl(AGW_STR_LIT("a\0b"), 1), 1);
    assert_int_equal(agw_str_has_ctl(AGW_STR_LIT("\x1f"), 1), 1);
    assert_int_equal(agw_str_has_ctl(AGW_STR_LIT("\x7f"), 1), 1);
    assert_int_equal(agw_str_has_ctl(AGW_STR_LIT("\x0b"), 1), 1);
    /* Without allow_tab a tab is a control byte too. */
    assert_int_equal(agw_str_has_ctl(AGW_STR_LIT("a\tb"), 0), 1);
    assert_int_equal(agw_str_has_ctl(AGW_STR_LIT("caf\xc3\xa9"), 0), 0);
    /* Only the view's bytes are checked. */
    assert_int_equal(agw_str_has_ctl((agw_str){ "ok\r\n", 2 }, 1), 0);
}

static void test_utf8_len(void **state)
{
    (void)state;
#define U(lit) ((const unsigned char *)(lit)), (sizeof(lit) - 1)
    assert_int_equal(agw_utf8_len(U("a")), 1);
    assert_int_equal(agw_utf8_len(U("\x7f")), 1);
    assert_int_equal(agw_utf8_len(U("\xc2\x80")), 2);      /* U+0080 */
    assert_int_equal(agw_utf8_len(U("\xdf\xbf")), 2);      /* U+07FF */
    assert_int_equal(agw_utf8_len(U("\xe0\xa0\x80")), 3);  /* U+0800 */
    assert_int_equal(agw_utf8_len(U("\xed\x9f\xbf")), 3);  /* U+D7FF */
    assert_int_equal(agw_utf8_len(U("\xee\x80\x80")), 3);  /* U+E000 */
    assert_int_equal(agw_utf8_len(U("\xef\xbf\xbd")), 3);  /* U+FFFD */
    assert_int_equal(agw_utf8_len(U("\xf0\x90\x80\x80")), 4); /* U+10000 */
    assert_int_equal(agw_utf8_len(U("\xf4\x8f\xbf\xbf")), 4); /* U+10FFFF */
    /* Only the first sequence counts. */
    assert_int_equal(agw_utf8_len(U("\xc3\xa9t\xc3\xa9")), 2);
    /* Not well-formed. */
    assert_int_equal(agw_utf8_len(U("\x80")), 0);                /* stray continuation */
    assert_int_equal(agw_utf8_len(U("\xbf")), 0);
    assert_int_equal(agw_utf8_len(U("\xc0\x80")), 0);            /* overlong NUL */
    assert_int_equal(agw_utf8_len(U("\xc1\xbf")), 0);
    assert_int_equal(agw_utf8_len(U("\xe0\x9f\xbf")), 0);        /* overlong U+07FF */
    assert_int_equal(agw_utf8_len(U("\xed\xa0\x80")), 0);        /* surrogate U+D800 */
    assert_int_equal(agw_utf8_len(U("\xed\xbf\xbf")), 0);        /* surrogate U+DFFF */
    assert_int_equal(agw_utf8_len(U("\xf0\x8f\xbf\xbf")), 0);    /* overlong U+FFFF */
    assert_int_equal(agw_utf8_len(U("\xf4\x90\x80\x80")), 0);    /* U+110000 */
    assert_int_equal(agw_utf8_len(U("\xf5\x80\x80\x80")), 0);
    assert_int_equal(agw_utf8_len(U("\xff")), 0);
    assert_int_equal(agw_utf8_len(U("\xc3z")), 0);               /* no continuation */
    assert_int_equal(agw_utf8_len(U("\xe2\x82z")), 0);
    assert_int_equal(agw_utf8_len(U("\xf0\x9f\x98z")), 0);
    /* Truncated: fewer bytes readable than the sequence needs. */
    assert_int_equal(agw_utf8_len(U("\xc3")), 0);
    assert_int_equal(agw_utf8_len(U("\xe2\x82")), 0);
    assert_int_equal(agw_utf8_len(U("\xf0\x9f\x98")), 0);
    assert_int_equal(agw_utf8_len((const unsigned char *)"\xe2\x82\xac", 2), 0);
#undef U
}

static void test_hex_value(void **state)
{
    (void)state;
    static const char digits[] = "0123456789abcdef";
    for (int v = 0; v < 16; v++) {
        assert_int_equal(agw_hex_value(digits[v]), v);
        assert_int_equal(agw_hex_value(toupper((unsigned char)digits[v])), v);
    }
    /* Every other byte, and EOF, is not a digit. */
    int accepted = 0;
    for (int c = 0; c < 256; c++)
        accepted += agw_hex_value(c) >= 0;
    assert_int_equal(accepted, 22);
    assert_int_equal(agw_hex_value('g'), -1);
    assert_int_equal(agw_hex_value('G'), -1);
    assert_int_equal(agw_hex_value('/'), -1);
    assert_int_equal(agw_hex_value(':'), -1);
    assert_int_equal(agw_hex_value('@'), -1);
    assert_int_equal(agw_hex_value('`'), -1);
    assert_int_equal(agw_hex_value(' '), -1);
    assert_int_equal(agw_hex_value('\0'), -1);
    assert_int_equal(agw_hex_value(0xe6), -1); /* 'f' | 0x80 */
    assert_int_equal(agw_hex_value(-1), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_str_has_ctl),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_budget_limit),
        cmocka_unit_test(test_buf_in_budget),
        cmocka_unit_test(test_budget_concurrent),
        cmocka_unit_test(test_buf_init_is_empty),
        cmocka_unit_test(test_buf_cap_exact_then_over),
        cmocka_unit_test(test_buf_cap_single_append_over),
        cmocka_unit_test(test_buf_cap_zero),
        cmocka_unit_test(test_buf_growth_keeps_bytes),
        cmocka_unit_test(test_buf_append_str),
        cmocka_unit_test(test_appendf_small),
        cmocka_unit_test(test_append_i64),
        cmocka_unit_test(test_appendf_growth),
        cmocka_unit_test(test_appendf_over_cap),
        cmocka_unit_test(test_json_escape_cases),
        cmocka_unit_test(test_json_escape_all_controls),
        cmocka_unit_test(test_json_escape_over_cap),
        cmocka_unit_test(test_buf_consume),
        cmocka_unit_test(test_buf_reset),
        cmocka_unit_test(test_buf_detach),
        cmocka_unit_test(test_str_eq_nocase),
        cmocka_unit_test(test_str_starts_eq),
        cmocka_unit_test(test_str_dup),
        cmocka_unit_test(test_random_hex),
        cmocka_unit_test(test_random_hex_unique),
        cmocka_unit_test(test_hex_value),
        cmocka_unit_test(test_utf8_len),
        cmocka_unit_test(test_log_level_parse),
        cmocka_unit_test(test_log_line),
        cmocka_unit_test(test_log_time_is_current),
        cmocka_unit_test(test_log_long_line_truncated),
        cmocka_unit_test(test_log_buffered),
        cmocka_unit_test(test_json_plain_run),
        cmocka_unit_test(test_x_alloc),
        cmocka_unit_test(test_clocks),
        cmocka_unit_test(test_arena_zeroed_across_chunks),
        cmocka_unit_test(test_arena_threads),
        cmocka_unit_test(test_arena_chunk_reused),
        cmocka_unit_test(test_flock_survives_signals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
