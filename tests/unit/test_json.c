/* Unit tests for lib/json: strict validation, top-level lookup, string
 * decoding and iteration over validated documents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/json.h"

#define S(lit) lit, sizeof(lit) - 1
#define V(lit) ((agw_str){ "" lit, sizeof(lit) - 1 })
/* A view of a char array holding a string (minus its terminator). */
#define A(arr) ((agw_str){ arr, sizeof(arr) - 1 })

typedef struct {
    const char *s;
    size_t len;
} doc_t;

static agw_err validate(agw_str d)
{
    return agw_json_validate(d, 64, NULL, 0);
}

static void assert_span(agw_str got, const char *want, size_t n)
{
    assert_int_equal(got.len, n);
    assert_memory_equal(got.ptr, want, n);
}

static void test_valid_corpus(void **state)
{
    static const doc_t docs[] = {
        { S("0") }, { S("-0") }, { S("-0.0") }, { S("1e400") }, { S("-1e-400") },
        { S("12345678901234567890") }, { S("-1.5e-3") }, { S("1E+2") }, { S("0.0e-0") },
        { S("[]") }, { S("{}") }, { S(" \t\r\n{ } \n") }, { S("\"\"") }, { S("true") },
        { S("false") }, { S("null") }, { S("[1,2,[3,{\"a\":null}],\"x\"]") },
        { S("\"\\u0000\"") }, { S("\"\\uD83D\\uDE00\"") }, { S("\"\\uD800\"") },
        { S("\"\\uDC00x\"") }, { S("\"\\ud83d\\ude00\"") },
        { S("\"\\/\\b\\f\\n\\r\\t\\\\\\\"\"") }, { S("{\"a\":1,\"a\":2}") },
        { S("\"\xC3\xA9\xF0\x9F\x98\x80\"") }, { S("\"\x7F\"") }, { S("\"\xF4\x8F\xBF\xBF\"") },
        { S("\"\xEF\xBF\xBF\xEE\x80\x80\xED\x9F\xBF\"") }, { S("\"\xC2\x80\xDF\xBF\"") },
        { S("\"\xE0\xA0\x80\xF0\x90\x80\x80\"") },
        { S("{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true}") },
        { S("\"a long plain ascii string crossing several eight byte blocks!\"") },
        { S("[\"12345678\\\"12345678\"]") },
    };
    (void)state;

    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        char err[64] = "untouched";
        agw_err e = agw_json_validate((agw_str){ docs[i].s, docs[i].len }, 64, err, sizeof(err));
        if (e != AGW_OK)
            fail_msg("doc %zu (%s) rejected: %s", i, docs[i].s, err);
        assert_string_equal(err, "untouched");
    }
}

static void test_invalid_corpus(void **state)
{
    static const doc_t docs[] = {
        { S("") }, { S(" ") }, { S("[1,]") }, { S("{\"a\":1,}") }, { S("[,1]") }, { S("{,}") },
        { S("01") }, { S("-01") }, { S("00") }, { S("1.") }, { S(".5") }, { S("+1") }, { S("-") },
        { S("1e") }, { S("1e+") }, { S("0x10") }, { S("1.e3") }, { S("--1") }, { S("[1 2]") },
        { S("{\"a\" 1}") }, { S("{a:1}") }, { S("{'a':1}") }, { S("{\"a\":}") }, { S("{1:2}") },
        { S("\"\\x\"") }, { S("\"\\u12G4\"") }, { S("\"\\u123\"") }, { S("\"\\U0041\"") },
        { S("\"\\") }, { S("\"abc") }, { S("\"\x01\"") }, { S("\"\t\"") }, { S("\"a\nb\"") },
        { S("NaN") }, { S("Infinity") }, { S("-Infinity") }, { S("tru") }, { S("nul") },
        { S("True") }, { S("[") }, { S("]") }, { S("{") }, { S("}") }, { S("1 2") },
        { S("{\"a\":1}}") }, { S("[1]]") }, { S("[1}") }, { S("{\"a\":1]") }, { S("/* c */1") },
        { S("1 // c") }, { S("\xEF\xBB\xBF{}") }, { S("1\0") }, { S("\"a\0b\"") }, { S("[]\0") },
        { S("true false") }, { S("\f1") }, { S("\v1") }, { S("[1,\xC2\xA0" "2]") },
        /* overlong encodings */
        { S("\"\xC0\xAF\"") }, { S("\"\xC1\xBF\"") }, { S("\"\xE0\x80\xAF\"") },
        { S("\"\xE0\x9F\xBF\"") }, { S("\"\xF0\x80\x80\xAF\"") }, { S("\"\xF0\x8F\xBF\xBF\"") },
        /* UTF-16 surrogates encoded in UTF-8 */
        { S("\"\xED\xA0\x80\"") }, { S("\"\xED\xBF\xBF\"") }, { S("\"\xED\xA0\xBD\xED\xB8\x80\"") },
        /* beyond U+10FFFF, invalid lead bytes, stray continuations, truncation */
        { S("\"\xF4\x90\x80\x80\"") }, { S("\"\xF5\x80\x80\x80\"") }, { S("\"\xFF\"") },
        { S("\"\xFE\"") }, { S("\"\x80\"") }, { S("\"\xBF\"") }, { S("\"\xE2\x82\"") },
        { S("\"\xC3\"") }, { S("\"\xC3") }, { S("\"\xF0\x9F\x98\"") }, { S("\"\xE2\x28\xA1\"") },
        { S("\"\xC3\x28\"") },
    };
    (void)state;

    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        char err[64] = "";
        agw_err e = agw_json_validate((agw_str){ docs[i].s, docs[i].len }, 64, err, sizeof(err));
        if (e != AGW_EINVAL)
            fail_msg("doc %zu (%s) gave %d", i, docs[i].s, (int)e);
        assert_true(strncmp(err, "offset ", 7) == 0);
    }
}

static void assert_error(const char *doc, size_t len, const char *want)
{
    char err[80];
    assert_int_equal(agw_json_validate((agw_str){ doc, len }, 64, err, sizeof(err)), AGW_EINVAL);
    assert_string_equal(err, want);
}

static void test_error_messages(void **state)
{
    char small[5];
    (void)state;

    assert_error(S("[1,]"), "offset 3: expected a value");
    assert_error(S("{\"a\":1,}"), "offset 7: expected a string key");
    assert_error(S("01"), "offset 1: leading zero in number");
    assert_error(S("[1.]"), "offset 3: malformed number");
    assert_error(S("\"ab\\x\""), "offset 3: invalid escape in string");
    assert_error(S("{\"a\" 1}"), "offset 5: expected ':'");
    assert_error(S("[1 2]"), "offset 3: expected ',' or ']'");
    assert_error(S("{\"a\":1 2}"), "offset 7: expected ',' or '}'");
    assert_error(S("\"abc"), "offset 4: unterminated string");
    assert_error(S("\"x\x01\""), "offset 2: control character in string");
    assert_error(S("\"xy\xC0\xAF\""), "offset 3: invalid UTF-8 in string");
    assert_error(S("[tru]"), "offset 1: invalid literal");
    assert_error(S("{} x"), "offset 3: unexpected data after the value");
    assert_error(S(""), "offset 0: expected a value");
    assert_error(S("  "), "offset 2: expected a value");
    assert_int_equal(agw_json_validate(V("[1,]"), 64, small, sizeof(small)), AGW_EINVAL);
    assert_string_equal(small, "offs");
    assert_int_equal(agw_json_validate(V("[1,]"), 64, NULL, 100), AGW_EINVAL);
    assert_int_equal(agw_json_validate(V("[1,]"), 64, small, 0), AGW_EINVAL);
}

static char *nested(int depth, char **close_out)
{
    char *s = malloc((size_t)depth * 2 + 1);
    assert_non_null(s);
    for (int i = 0; i < depth; i++) {
        s[i] = '[';
        s[depth * 2 - 1 - i] = ']';
    }
    s[depth * 2] = '\0';
    if (close_out)
        *close_out = s + depth;
    return s;
}

static void test_depth(void **state)
{
    char err[64];
    char *s;
    (void)state;

    assert_int_equal(agw_json_validate(V("[[[]]]"), 3, NULL, 0), AGW_OK);
    assert_int_equal(agw_json_validate(V("[[[[]]]]"), 3, err, sizeof(err)), AGW_ETOOBIG);
    assert_string_equal(err, "offset 3: nesting too deep");
    assert_int_equal(agw_json_validate(V("{\"a\":{\"b\":{}}}"), 3, NULL, 0), AGW_OK);
    assert_int_equal(agw_json_validate(V("{\"a\":{\"b\":{}}}"), 2, NULL, 0), AGW_ETOOBIG);
    assert_int_equal(agw_json_validate(V("[{\"a\":[1]},{\"b\":[2]}]"), 3, NULL, 0), AGW_OK);
    assert_int_equal(agw_json_validate(V("[{\"a\":[1]},{\"b\":[[2]]}]"), 3, NULL, 0), AGW_ETOOBIG);
    assert_int_equal(agw_json_validate(V("1"), 0, NULL, 0), AGW_OK);
    assert_int_equal(agw_json_validate(V("[]"), 0, NULL, 0), AGW_ETOOBIG);
    assert_int_equal(agw_json_validate(V("[]"), -5, NULL, 0), AGW_ETOOBIG);
    /* The first problem in the text decides the code. */
    assert_int_equal(agw_json_validate(V("[[[1,]]]"), 3, NULL, 0), AGW_EINVAL);
    assert_int_equal(agw_json_validate(V("[[[1,]]]"), 2, NULL, 0), AGW_ETOOBIG);
    assert_int_equal(agw_json_validate(V("[1,][[[]]]"), 2, NULL, 0), AGW_EINVAL);

    s = nested(AGW_JSON_MAX_DEPTH, NULL);
    assert_int_equal(agw_json_validate((agw_str){ s, strlen(s) }, AGW_JSON_MAX_DEPTH, NULL, 0), AGW_OK);
    assert_int_equal(agw_json_validate((agw_str){ s, strlen(s) }, 1 << 30, NULL, 0), AGW_OK);
    assert_int_equal(agw_json_validate((agw_str){ s, strlen(s) }, AGW_JSON_MAX_DEPTH - 1, NULL, 0),
                     AGW_ETOOBIG);
    free(s);
    s = nested(AGW_JSON_MAX_DEPTH + 1, NULL);
    assert_int_equal(agw_json_validate((agw_str){ s, strlen(s) }, 1 << 30, NULL, 0), AGW_ETOOBIG);
    free(s);
    /* Object/array bits for every level past the first stack word. */
    {
        char buf[4 * 200 + 8];
        size_t n = 0;
        for (int i = 0; i < 200; i++) {
            memcpy(buf + n, i % 3 ? "[" : "{\"k\":", i % 3 ? 1 : 5);
            n += i % 3 ? 1 : 5;
        }
        for (int i = 199; i >= 0; i--)
            buf[n++] = i % 3 ? ']' : '}';
        assert_int_equal(agw_json_validate((agw_str){ buf, n }, 200, NULL, 0), AGW_OK);
        assert_int_equal(agw_json_validate((agw_str){ buf, n }, 199, NULL, 0), AGW_ETOOBIG);
        buf[n - 2] = '}';
        assert_int_equal(agw_json_validate((agw_str){ buf, n }, 200, NULL, 0), AGW_EINVAL);
    }
}

static void test_hostile_nesting_unvalidated(void **state)
{
    size_t n = 1000000;
    char *s = malloc(n);
    agw_json_iter it;
    agw_str k, v;
    (void)state;

    memset(s, '[', n);
    assert_int_equal(agw_json_validate((agw_str){ s, n }, 100, NULL, 0), AGW_ETOOBIG);
    assert_int_equal(agw_json_iter_init(&it, (agw_str){ s, n }), AGW_OK);
    assert_int_equal(agw_json_iter_next(&it, &k, &v), 0);
    assert_int_equal(agw_json_iter_next(&it, &k, &v), 0);
    s[0] = '{';
    assert_int_equal(agw_json_find((agw_str){ s, n }, V("model"), &v), AGW_ENOTFOUND);
    free(s);
}

/* Skipping strings: backslash runs of either parity, escaped quotes on both
 * sides of an 8-byte step, \u escapes, and a document cut inside an escape. */
static void test_find_past_escapes(void **state)
{
    static const char body[] =
        "{\"a\":\"x\\\\\",\"b\":\"\\\\\\\"\\\\\",\"c\":\"0123456\\\"89abcdef\\\"0123456789\","
        "\"d\":\"\\u0022\\\"\",\"e\":[\"]\\\\\",\"\\\"]\"],\"model\":\"m\"}";
    agw_str d = { body, sizeof(body) - 1 }, v;
    (void)state;
    assert_int_equal(validate(d), AGW_OK);
    assert_int_equal(agw_json_find(d, V("a"), &v), AGW_OK);
    assert_span(v, S("\"x\\\\\""));
    assert_int_equal(agw_json_find(d, V("b"), &v), AGW_OK);
    assert_span(v, S("\"\\\\\\\"\\\\\""));
    assert_int_equal(agw_json_find(d, V("c"), &v), AGW_OK);
    assert_span(v, S("\"0123456\\\"89abcdef\\\"0123456789\""));
    assert_int_equal(agw_json_find(d, V("d"), &v), AGW_OK);
    assert_span(v, S("\"\\u0022\\\"\""));
    assert_int_equal(agw_json_find(d, V("e"), &v), AGW_OK);
    assert_span(v, S("[\"]\\\\\",\"\\\"]\"]"));
    assert_int_equal(agw_json_find(d, V("model"), &v), AGW_OK);
    assert_span(v, S("\"m\""));
    /* Cut right after a backslash, or inside a long string: not found, and
     * no byte past the end is read (the sanitizer run checks that). */
    for (size_t cut = 1; cut < d.len; cut++) {
        char *part = malloc(cut);
        assert_non_null(part);
        memcpy(part, body, cut);
        agw_str p = { part, cut };
        if (agw_json_find(p, V("model"), &v) == AGW_OK) /* the closing brace cut off */
            assert_true(cut == d.len - 1 && v.ptr + v.len <= part + cut);
        free(part);
    }
}

static void test_find(void **state)
{
    static const char body[] =
        "{ \"messages\" : [{\"role\":\"user\",\"model\":\"inner\",\"content\":\"\\\"model\\\": \\\"no\\\"\"}],"
        "\n  \"model\"\t:\t\"gpt-4o\" ,\"stream\":true,\"n\":1e400,\"big\":12345678901234567890,"
        "\"o\":{\"x\":[1,{\"y\":\"}\"}]},\"z\":null}  ";
    agw_str d = { body, sizeof(body) - 1 }, v;
    (void)state;

    assert_int_equal(validate(d), AGW_OK);
    assert_int_equal(agw_json_find(d, V("model"), &v), AGW_OK);
    assert_span(v, S("\"gpt-4o\""));
    assert_int_equal(agw_json_find(d, V("stream"), &v), AGW_OK);
    assert_span(v, S("true"));
    assert_int_equal(agw_json_find(d, V("n"), &v), AGW_OK);
    assert_span(v, S("1e400"));
    assert_int_equal(agw_json_find(d, V("big"), &v), AGW_OK);
    assert_span(v, S("12345678901234567890"));
    assert_int_equal(agw_json_find(d, V("o"), &v), AGW_OK);
    assert_span(v, S("{\"x\":[1,{\"y\":\"}\"}]}"));
    assert_int_equal(agw_json_find(d, V("z"), &v), AGW_OK);
    assert_span(v, S("null"));
    assert_int_equal(agw_json_find(d, V("messages"), &v), AGW_OK);
    assert_int_equal(v.ptr[0], '[');
    assert_int_equal(v.ptr[v.len - 1], ']');
    assert_int_equal(agw_json_find(d, V("role"), &v), AGW_ENOTFOUND);
    assert_int_equal(agw_json_find(d, V("x"), &v), AGW_ENOTFOUND);
    assert_int_equal(agw_json_find(d, V("mode"), &v), AGW_ENOTFOUND);
    assert_int_equal(agw_json_find(d, V("models"), &v), AGW_ENOTFOUND);
    assert_int_equal(agw_json_find(d, V(""), &v), AGW_ENOTFOUND);

    assert_int_equal(agw_json_find(V("{\"model\":\"a\",\"model\":\"b\"}"), V("model"), &v), AGW_OK);
    assert_span(v, S("\"b\""));
    assert_int_equal(agw_json_find(V("{\"mod\\u0065l\":\"esc\"}"), V("model"), &v), AGW_OK);
    assert_span(v, S("\"esc\""));
    assert_int_equal(agw_json_find(V("{\"model\":1,\"m\\u006fdel\":2}"), V("model"), &v), AGW_OK);
    assert_span(v, S("2"));
    assert_int_equal(agw_json_find(V("{\"a\\u0000b\":1,\"a\":2}"), (agw_str){ "a\0b", 3 }, &v), AGW_OK);
    assert_span(v, S("1"));
    assert_int_equal(agw_json_find(V("{\"a\\u0000b\":1}"), V("a"), &v), AGW_ENOTFOUND);
    assert_int_equal(agw_json_find(V("{\"\":7}"), V(""), &v), AGW_OK);
    assert_span(v, S("7"));
    assert_int_equal(agw_json_find(V("{\"\\ud83d\\ude00\":1}"), V("\xF0\x9F\x98\x80"), &v), AGW_OK);
    assert_int_equal(agw_json_find(V("{}"), V("model"), &v), AGW_ENOTFOUND);
    assert_int_equal(agw_json_find(V(" {\"model\":[]} "), V("model"), &v), AGW_OK);
    assert_span(v, S("[]"));

    assert_int_equal(agw_json_find(V("[{\"model\":1}]"), V("model"), &v), AGW_EINVAL);
    assert_int_equal(agw_json_find(V("\"model\""), V("model"), &v), AGW_EINVAL);
    assert_int_equal(agw_json_find(V("1"), V("model"), &v), AGW_EINVAL);
    assert_int_equal(agw_json_find(V(""), V("model"), &v), AGW_EINVAL);
    assert_int_equal(agw_json_find((agw_str){ NULL, 0 }, V("model"), &v), AGW_EINVAL);
}

static void assert_removal(const char *doc, size_t len, agw_str key, const char *want, size_t wantlen)
{
    agw_str v, m;
    char out[256];
    size_t n;

    assert_int_equal(agw_json_find_member((agw_str){ doc, len }, key, &v, &m), AGW_OK);
    assert_true(m.ptr >= doc && m.ptr + m.len <= doc + len);
    n = (size_t)(m.ptr - doc);
    memcpy(out, doc, n);
    memcpy(out + n, m.ptr + m.len, len - n - m.len);
    n = len - m.len;
    assert_int_equal(n, wantlen);
    assert_memory_equal(out, want, n);
    assert_int_equal(validate((agw_str){ out, n }), AGW_OK);
}

static void test_find_member(void **state)
{
    agw_str v, m;
    (void)state;

    assert_removal(S("{\"a\":1, \"b\":2, \"c\":3}"), V("a"), S("{\"b\":2, \"c\":3}"));
    assert_removal(S("{\"a\":1, \"b\":2, \"c\":3}"), V("b"), S("{\"a\":1, \"c\":3}"));
    assert_removal(S("{\"a\":1, \"b\":2, \"c\":3}"), V("c"), S("{\"a\":1, \"b\":2}"));
    assert_removal(S("{ \"a\" : 1 }"), V("a"), S("{  }"));
    assert_removal(S("{\n \"a\": [1, 2] ,\n \"b\": {}\n}"), V("a"), S("{\n \"b\": {}\n}"));
    assert_removal(S("{\"a\":1,\"a\":2}"), V("a"), S("{\"a\":1}"));
    assert_removal(S("{\"stream_options\":{\"include_usage\":true},\"model\":\"x\"}"), V("stream_options"),
                   S("{\"model\":\"x\"}"));
    assert_int_equal(agw_json_find_member(V("{\"a\":1}"), V("b"), &v, &m), AGW_ENOTFOUND);
    assert_int_equal(agw_json_find_member(V("{\"a\":1}"), V("a"), &v, NULL), AGW_OK);
    assert_span(v, S("1"));
}

static void test_find_path(void **state)
{
    static const char body[] =
        "{\"stream_options\":{\"include_usage\":true,\"x\":{\"y\":[1]}},\"model\":\"m\",\"s\":\"str\"}";
    agw_str d = { body, sizeof(body) - 1 }, v;
    (void)state;

    assert_int_equal(agw_json_find_path(d, (const char *[]){ "stream_options", "include_usage", NULL }, &v),
                     AGW_OK);
    assert_span(v, S("true"));
    assert_true(agw_json_is_true(v));
    assert_int_equal(agw_json_find_path(d, (const char *[]){ "stream_options", "x", "y", NULL }, &v), AGW_OK);
    assert_span(v, S("[1]"));
    assert_int_equal(agw_json_find_path(d, (const char *[]){ "model", NULL }, &v), AGW_OK);
    assert_span(v, S("\"m\""));
    assert_int_equal(agw_json_find_path(d, (const char *[]){ "stream_options", "nope", NULL }, &v),
                     AGW_ENOTFOUND);
    assert_int_equal(agw_json_find_path(d, (const char *[]){ "nope", "x", NULL }, &v), AGW_ENOTFOUND);
    assert_int_equal(agw_json_find_path(d, (const char *[]){ "s", "x", NULL }, &v), AGW_EINVAL);
    assert_int_equal(agw_json_find_path(d, (const char *[]){ "stream_options", "x", "y", "z", NULL }, &v),
                     AGW_EINVAL);
    assert_int_equal(agw_json_find_path(V("  {\"a\":1} \n"), (const char *[]){ NULL }, &v), AGW_OK);
    assert_span(v, S("{\"a\":1}"));
}

static void assert_decodes(const char *tok, size_t toklen, const char *want, size_t wantlen)
{
    agw_buf b = AGW_BUF_INIT(1024);
    agw_str t = { tok, toklen };

    assert_int_equal(agw_json_string_decode(t, &b), AGW_OK);
    assert_int_equal(b.len, wantlen);
    if (wantlen)
        assert_memory_equal(b.data, want, wantlen);
    assert_true(agw_json_string_eq(t, (agw_str){ want, wantlen }));
    if (wantlen) {
        assert_false(agw_json_string_eq(t, (agw_str){ want, wantlen - 1 }));
        char *alt = malloc(wantlen);
        memcpy(alt, want, wantlen);
        alt[wantlen - 1] ^= 1;
        assert_false(agw_json_string_eq(t, (agw_str){ alt, wantlen }));
        free(alt);
    }
    {
        char *longer = malloc(wantlen + 1);
        if (wantlen)
            memcpy(longer, want, wantlen);
        longer[wantlen] = 'x';
        assert_false(agw_json_string_eq(t, (agw_str){ longer, wantlen + 1 }));
        free(longer);
    }
    agw_buf_free(&b);
}

static void test_string_eq_raw_bytes_are_not_the_value(void **state)
{
    (void)state;
    /* A name equal to a token's raw bytes is not its value when the token
     * holds an escape: "a\\b" stands for a\b, and "\u0041" for A. */
    assert_false(agw_json_string_eq(V("\"a\\\\b\""), AGW_STR_LIT("a\\\\b")));
    assert_true(agw_json_string_eq(V("\"a\\\\b\""), AGW_STR_LIT("a\\b")));
    assert_false(agw_json_string_eq(V("\"\\u0041\""), AGW_STR_LIT("\\u0041")));
    assert_true(agw_json_string_eq(V("\"\\u0041\""), AGW_STR_LIT("A")));
    assert_true(agw_json_string_eq(V("\"\""), AGW_STR_LIT("")));
    assert_false(agw_json_string_eq(V("\"\""), AGW_STR_LIT("x")));
    assert_false(agw_json_string_eq(V("\"x\""), AGW_STR_LIT("")));
    assert_false(agw_json_string_eq(V("\"usage\""), AGW_STR_LIT("usages")));
    assert_false(agw_json_string_eq(V("\"usages\""), AGW_STR_LIT("usage")));
}

static void test_string_decode(void **state)
{
    agw_buf b = AGW_BUF_INIT(1024);
    (void)state;

    assert_decodes(S("\"\""), S(""));
    assert_decodes(S("\"plain\""), S("plain"));
    assert_decodes(S("\"a\\u0000b\""), S("a\0b"));
    assert_decodes(S("\"\\u0000\""), S("\0"));
    assert_decodes(S("\"\\uD83D\\uDE00\""), S("\xF0\x9F\x98\x80"));
    assert_decodes(S("\"\\ud83d\\ude00!\""), S("\xF0\x9F\x98\x80!"));
    assert_decodes(S("\"\\uDBFF\\uDFFF\""), S("\xF4\x8F\xBF\xBF"));
    assert_decodes(S("\"\\uD800\""), S("\xEF\xBF\xBD"));
    assert_decodes(S("\"\\uDC00\""), S("\xEF\xBF\xBD"));
    assert_decodes(S("\"\\uD800\\u0041\""), S("\xEF\xBF\xBD" "A"));
    assert_decodes(S("\"\\uD800\\uD83D\\uDE00\""), S("\xEF\xBF\xBD\xF0\x9F\x98\x80"));
    assert_decodes(S("\"\\uDE00\\uD83D\""), S("\xEF\xBF\xBD\xEF\xBF\xBD"));
    assert_decodes(S("\"\\uD83Dx\\uDE00\""), S("\xEF\xBF\xBDx\xEF\xBF\xBD"));
    assert_decodes(S("\"\\u00e9\\u00C9\\u20AC\\u007f\\u0080\\u07FF\\u0800\\uFFFF\""),
                   S("\xC3\xA9\xC3\x89\xE2\x82\xAC\x7F\xC2\x80\xDF\xBF\xE0\xA0\x80\xEF\xBF\xBF"));
    assert_decodes(S("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""), S("\"\\/\b\f\n\r\t"));
    assert_decodes(S("\"caf\xC3\xA9 \\n\""), S("caf\xC3\xA9 \n"));

    /* Appends, and leaves out alone on a malformed token. */
    assert_int_equal(agw_buf_append(&b, "pre:", 4), AGW_OK);
    assert_int_equal(agw_json_string_decode(V("\"x\""), &b), AGW_OK);
    assert_int_equal(agw_json_string_decode(V("\"ok\\x\""), &b), AGW_EINVAL);
    assert_int_equal(agw_json_string_decode(V("\"ok\\u12\""), &b), AGW_EINVAL);
    assert_int_equal(agw_json_string_decode(V("\"\\\""), &b), AGW_EINVAL);
    assert_int_equal(agw_json_string_decode(V("x"), &b), AGW_EINVAL);
    assert_int_equal(agw_json_string_decode(V("\""), &b), AGW_EINVAL);
    assert_int_equal(agw_json_string_decode(V("'a'"), &b), AGW_EINVAL);
    assert_int_equal(agw_json_string_decode(V("\"a"), &b), AGW_EINVAL);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "pre:x");
    assert_false(agw_json_string_eq(V("\"ok\\x\""), V("ok\\x")));
    assert_false(agw_json_string_eq(V("x"), V("x")));
    agw_buf_free(&b);

    agw_buf_init(&b, 4);
    assert_int_equal(agw_json_string_decode(V("\"\\u20AC\\u20AC\""), &b), AGW_ETOOBIG);
    assert_int_equal(b.len, 0);
    agw_buf_free(&b);
}

static void test_types(void **state)
{
    (void)state;

    assert_int_equal(agw_json_type_of(V("{}")), AGW_JSON_OBJECT);
    assert_int_equal(agw_json_type_of(V(" [1]")), AGW_JSON_ARRAY);
    assert_int_equal(agw_json_type_of(V("\"s\"")), AGW_JSON_STRING);
    assert_int_equal(agw_json_type_of(V("-1")), AGW_JSON_NUMBER);
    assert_int_equal(agw_json_type_of(V("0")), AGW_JSON_NUMBER);
    assert_int_equal(agw_json_type_of(V("true")), AGW_JSON_TRUE);
    assert_int_equal(agw_json_type_of(V("false")), AGW_JSON_FALSE);
    assert_int_equal(agw_json_type_of(V("null")), AGW_JSON_NULL);
    assert_int_equal(agw_json_type_of(V("")), AGW_JSON_INVALID);
    assert_int_equal(agw_json_type_of(V("  ")), AGW_JSON_INVALID);
    assert_int_equal(agw_json_type_of(V("x")), AGW_JSON_INVALID);
    assert_int_equal(agw_json_type_of((agw_str){ NULL, 0 }), AGW_JSON_INVALID);
    assert_true(agw_json_is_true(V(" true\n")));
    assert_false(agw_json_is_true(V("truex")));
    assert_false(agw_json_is_true(V("\"true\"")));
    assert_true(agw_json_is_false(V("false")));
    assert_false(agw_json_is_false(V("null")));
    assert_true(agw_json_is_null(V("null")));
    assert_false(agw_json_is_null(V("")));
}

static void test_int64(void **state)
{
    int64_t x = 99;
    (void)state;

    assert_int_equal(agw_json_int64(V("0"), &x), AGW_OK);
    assert_true(x == 0);
    assert_int_equal(agw_json_int64(V("-0"), &x), AGW_OK);
    assert_true(x == 0);
    assert_int_equal(agw_json_int64(V(" 4096 "), &x), AGW_OK);
    assert_true(x == 4096);
    assert_int_equal(agw_json_int64(V("-42"), &x), AGW_OK);
    assert_true(x == -42);
    assert_int_equal(agw_json_int64(V("9223372036854775807"), &x), AGW_OK);
    assert_true(x == INT64_MAX);
    assert_int_equal(agw_json_int64(V("-9223372036854775808"), &x), AGW_OK);
    assert_true(x == INT64_MIN);
    x = 5;
    assert_int_equal(agw_json_int64(V("9223372036854775808"), &x), AGW_ETOOBIG);
    assert_int_equal(agw_json_int64(V("-9223372036854775809"), &x), AGW_ETOOBIG);
    assert_int_equal(agw_json_int64(V("12345678901234567890"), &x), AGW_ETOOBIG);
    assert_int_equal(agw_json_int64(V("123456789012345678901x"), &x), AGW_EINVAL);
    assert_int_equal(agw_json_int64(V("1.0"), &x), AGW_EINVAL);
    assert_int_equal(agw_json_int64(V("1e3"), &x), AGW_EINVAL);
    assert_int_equal(agw_json_int64(V("\"1\""), &x), AGW_EINVAL);
    assert_int_equal(agw_json_int64(V("-"), &x), AGW_EINVAL);
    assert_int_equal(agw_json_int64(V("01"), &x), AGW_EINVAL);
    assert_int_equal(agw_json_int64(V(""), &x), AGW_EINVAL);
    assert_int_equal(agw_json_int64((agw_str){ NULL, 0 }, &x), AGW_EINVAL);
    assert_int_equal(agw_json_int64(V("true"), &x), AGW_EINVAL);
    assert_true(x == 5);
}

static void test_duplicate_key(void **state)
{
    (void)state;
    agw_str dup;
    assert_int_equal(agw_json_duplicate_key(AGW_STR_LIT("{}"), &dup), AGW_OK);
    assert_null(dup.ptr);
    assert_int_equal(agw_json_duplicate_key(AGW_STR_LIT("{\"a\":1,\"b\":{\"a\":2,\"a\":3},\"c\":[1]}"),
                                            &dup),
                     AGW_OK);
    static const char twice[] = "{\"model\":\"x\",\"n\":1,\"model\":\"y\"}";
    assert_int_equal(agw_json_duplicate_key((agw_str){ twice, sizeof twice - 1 }, &dup), AGW_EINVAL);
    assert_ptr_equal(dup.ptr, twice + 19); /* the later occurrence */
    assert_int_equal(dup.len, 7);
    /* Compared after unescaping; the escaped one is the later here. */
    static const char esc[] = "{\"stream\":false,\"str\\u0065am\":true}";
    assert_int_equal(agw_json_duplicate_key((agw_str){ esc, sizeof esc - 1 }, &dup), AGW_EINVAL);
    assert_true(agw_str_eq(dup, AGW_STR_LIT("\"str\\u0065am\"")));
    /* Prefixes and NULs are different names. */
    assert_int_equal(agw_json_duplicate_key(AGW_STR_LIT("{\"a\":1,\"ab\":2,\"a\\u0000\":3,\"\":4}"),
                                            &dup),
                     AGW_OK);
    assert_int_equal(agw_json_duplicate_key(AGW_STR_LIT("{\"\":1,\"\":2}"), NULL), AGW_EINVAL);
    assert_int_equal(agw_json_duplicate_key(AGW_STR_LIT("[1,1]"), &dup), AGW_EINVAL);
    assert_null(dup.ptr);
    /* Many members: each compared once after sorting. */
    agw_buf big = AGW_BUF_INIT(1u << 20);
    assert_int_equal(agw_buf_append(&big, "{", 1), AGW_OK);
    for (int i = 0; i < 5000; i++)
        assert_int_equal(agw_buf_appendf(&big, "%s\"k%d\":%d", i ? "," : "", i, i), AGW_OK);
    assert_int_equal(agw_buf_append(&big, "}", 1), AGW_OK);
    assert_int_equal(agw_json_duplicate_key(agw_buf_view(&big), &dup), AGW_OK);
    big.len--;
    assert_int_equal(agw_buf_append_str(&big, AGW_STR_LIT(",\"k4999\":0}")), AGW_OK);
    assert_int_equal(agw_json_duplicate_key(agw_buf_view(&big), &dup), AGW_EINVAL);
    assert_true(agw_str_eq(dup, AGW_STR_LIT("\"k4999\"")));
    agw_buf_free(&big);
    /* An escaped name among the first members (kept on the stack) still
     * meets its twin once the members outgrow it. */
    agw_buf mixed = AGW_BUF_INIT(4096);
    assert_int_equal(agw_buf_append_str(&mixed, AGW_STR_LIT("{\"\\u0061\":0")), AGW_OK);
    for (int i = 1; i < 20; i++)
        assert_int_equal(agw_buf_appendf(&mixed, ",\"m%d\":%d", i, i), AGW_OK);
    assert_int_equal(agw_buf_append_str(&mixed, AGW_STR_LIT(",\"a\":1}")), AGW_OK);
    assert_int_equal(agw_json_duplicate_key(agw_buf_view(&mixed), &dup), AGW_EINVAL);
    assert_true(agw_str_eq(dup, AGW_STR_LIT("\"a\"")) ||
                agw_str_eq(dup, AGW_STR_LIT("\"\\u0061\"")));
    agw_buf_free(&mixed);
}

static void test_iter(void **state)
{
    static const char body[] =
        "{ \"a\" : 1 , \"b\":[1,[2]], \"c\":\"]}\\\"\\\\\" ,\"d\":{\"e\":{}} ,\"f\":-1.5e3,\"g\":null}";
    static const char *const keys[] = { "\"a\"", "\"b\"", "\"c\"", "\"d\"", "\"f\"", "\"g\"" };
    static const char *const vals[] = { "1", "[1,[2]]", "\"]}\\\"\\\\\"", "{\"e\":{}}", "-1.5e3", "null" };
    agw_json_iter it;
    agw_str k, v;
    int i = 0;
    (void)state;

    assert_int_equal(validate(A(body)), AGW_OK);
    assert_int_equal(agw_json_iter_init(&it, A(body)), AGW_OK);
    while (agw_json_iter_next(&it, &k, &v)) {
        assert_true(i < 6);
        assert_span(k, keys[i], strlen(keys[i]));
        assert_span(v, vals[i], strlen(vals[i]));
        i++;
    }
    assert_int_equal(i, 6);
    assert_int_equal(agw_json_iter_next(&it, &k, &v), 0);

    assert_int_equal(agw_json_iter_init(&it, V(" [ 1, \"x\" ,{\"k\":[]} , [] ,true] ")), AGW_OK);
    assert_int_equal(agw_json_iter_next(&it, &k, &v), 1);
    assert_int_equal(k.len, 0);
    assert_span(v, S("1"));
    assert_int_equal(agw_json_iter_next(&it, NULL, &v), 1);
    assert_span(v, S("\"x\""));
    assert_int_equal(agw_json_iter_next(&it, NULL, &v), 1);
    assert_span(v, S("{\"k\":[]}"));
    assert_int_equal(agw_json_iter_next(&it, NULL, &v), 1);
    assert_span(v, S("[]"));
    assert_int_equal(agw_json_iter_next(&it, NULL, &v), 1);
    assert_span(v, S("true"));
    assert_int_equal(agw_json_iter_next(&it, NULL, &v), 0);

    assert_int_equal(agw_json_iter_init(&it, V("{}")), AGW_OK);
    assert_int_equal(agw_json_iter_next(&it, &k, &v), 0);
    assert_int_equal(agw_json_iter_init(&it, V("[ ]")), AGW_OK);
    assert_int_equal(agw_json_iter_next(&it, &k, &v), 0);
    assert_int_equal(agw_json_iter_init(&it, V("\"x\"")), AGW_EINVAL);
    assert_int_equal(agw_json_iter_init(&it, V("  ")), AGW_EINVAL);
    assert_int_equal(agw_json_iter_next(&it, &k, &v), 0);

    /* Unvalidated garbage ends iteration instead of reading past the view. */
    assert_int_equal(agw_json_iter_init(&it, V("{\"a\":\"unterminated")), AGW_OK);
    assert_int_equal(agw_json_iter_next(&it, &k, &v), 0);
    assert_int_equal(agw_json_iter_init(&it, V("{\"a\" 1}")), AGW_OK);
    assert_int_equal(agw_json_iter_next(&it, &k, &v), 0);
    assert_int_equal(agw_json_iter_init(&it, V("[1 2]")), AGW_OK);
    assert_int_equal(agw_json_iter_next(&it, &k, &v), 1);
    assert_int_equal(agw_json_iter_next(&it, &k, &v), 0);
}

/* Every strict prefix of a valid document is invalid, and validation never
 * reads past the view (checked under ASan by copying each prefix alone). */
static void assert_view(agw_str v, const char *want)
{
    if (!want) {
        assert_null(v.ptr);
        return;
    }
    assert_non_null(v.ptr);
    assert_int_equal(v.len, strlen(want));
    assert_memory_equal(v.ptr, want, v.len);
}

static void test_collect(void **state)
{
    (void)state;
    static const char *const names[] = { "type", "types", "", "t\"q", "model" };
    agw_str v[5], unknown;

    agw_json_collect(AGW_STR_LIT("{\"types\":1, \"typ\":2 ,\"type\":\"a\",\"\":[3],"
                                 "\"t\\\"q\":4,\"ty\\u0070e\":\"b\"}"),
                     names, 5, v, &unknown);
    assert_view(v[0], "\"b\""); /* last wins, also when spelt with an escape */
    assert_view(v[1], "1");
    assert_view(v[2], "[3]");
    assert_view(v[3], "4");
    assert_view(v[4], NULL);
    assert_view(unknown, "\"typ\"");

    /* No member unknown; a non-object leaves everything absent. */
    agw_json_collect(AGW_STR_LIT("{\"model\":\"m\"}"), names, 5, v, &unknown);
    assert_view(v[4], "\"m\"");
    assert_view(unknown, NULL);
    agw_json_collect(AGW_STR_LIT("[\"type\"]"), names, 5, v, &unknown);
    for (int i = 0; i < 5; i++)
        assert_view(v[i], NULL);

    /* Unchecked input: a key with a NUL inside matches no shorter name (and
     * reads nothing past either). */
    static const char doc[] = "{\"type\0xyz\":1,\"t\0\":2}";
    agw_json_collect((agw_str){ doc, sizeof doc - 1 }, names, 5, v, &unknown);
    assert_view(v[0], NULL);
    assert_ptr_equal(unknown.ptr, doc + 1);
    assert_int_equal(unknown.len, 10);
}

static void test_prefixes(void **state)
{
    static const char body[] =
        "{\"model\":\"claude\",\"max_tokens\":1024,\"messages\":[{\"role\":\"user\","
        "\"content\":\"h\xC3\xA9llo \\u00e9 \\ud83d\\ude00 \xF0\x9F\x98\x80\"}],\"t\":-0.5e+10,\"s\":false}";
    (void)state;

    assert_int_equal(validate(A(body)), AGW_OK);
    for (size_t n = 0; n < sizeof(body) - 1; n++) {
        char *c = malloc(n ? n : 1);
        agw_str v;
        memcpy(c, body, n);
        assert_int_equal(validate((agw_str){ c, n }), AGW_EINVAL);
        if (agw_json_find((agw_str){ c, n }, V("s"), &v) == AGW_OK)
            assert_true(v.ptr >= c && v.ptr + v.len <= c + n);
        free(c);
    }
}

static void test_string_view(void **state)
{
    (void)state;
    agw_buf scratch = AGW_BUF_INIT(1024);
    agw_str out;
    /* No escape: a view into the token, nothing copied. */
    agw_str plain = AGW_STR_LIT("\"gpt-4o\"");
    assert_int_equal(agw_json_string_view(plain, &scratch, &out), AGW_OK);
    assert_ptr_equal(out.ptr, plain.ptr + 1);
    assert_int_equal(out.len, 6);
    assert_int_equal(scratch.len, 0);
    /* Escapes: decoded into scratch, NUL kept. */
    agw_str esc = AGW_STR_LIT("\"a\\u0000b\\n\"");
    assert_int_equal(agw_json_string_view(esc, &scratch, &out), AGW_OK);
    assert_ptr_equal(out.ptr, scratch.data);
    assert_int_equal(out.len, 4);
    assert_memory_equal(out.ptr, "a\0b\n", 4);
    /* The empty string is a view of length 0. */
    assert_int_equal(agw_json_string_view(AGW_STR_LIT("\"\""), &scratch, &out), AGW_OK);
    assert_int_equal(out.len, 0);
    /* Not a string token. */
    assert_int_equal(agw_json_string_view(AGW_STR_LIT("42"), &scratch, &out), AGW_EINVAL);
    assert_int_equal(agw_json_string_view(AGW_STR_LIT("\""), &scratch, &out), AGW_EINVAL);
    assert_int_equal(agw_json_string_view(AGW_STR_LIT("\"ab"), &scratch, &out), AGW_EINVAL);
    agw_buf_free(&scratch);
}

/* A body the size agents send: long strings with escapes, nested arrays. */
static agw_buf big_doc(void)
{
    agw_buf b = AGW_BUF_INIT(SIZE_MAX);
    assert_int_equal(agw_buf_appendf(&b, "{\"model\":\"m\",\"messages\":["), AGW_OK);
    for (int i = 0; i < 60; i++)
        assert_int_equal(agw_buf_appendf(&b,
                                         "%s{\"role\":\"user\",\"content\":[{\"type\":"
                                         "\"text\",\"text\":\"line %d\\n\\\"quoted\\\" "
                                         "%0200d\"},{\"a\":[[1],[2,{}]]}]}",
                                         i ? "," : "", i, i),
                         AGW_OK);
    assert_int_equal(agw_buf_appendf(&b, "],\"model\":\"last\"}"), AGW_OK);
    assert_int_equal(agw_json_validate(agw_buf_view(&b), 64, NULL, 0), AGW_OK);
    return b;
}

/* Every member and element span of c, depth first, as "offset:length;". */
static void walk(agw_str c, const char *base, agw_buf *out)
{
    agw_json_iter it;
    agw_str k, v;
    if (agw_json_iter_init(&it, c) != AGW_OK)
        return;
    while (agw_json_iter_next(&it, &k, &v)) {
        assert_int_equal(agw_buf_appendf(out, "%td:%zu;%td:%zu;", k.ptr - base, k.len,
                                         v.ptr - base, v.len),
                         AGW_OK);
        walk(v, base, out);
    }
}

static void test_skips(void **state)
{
    (void)state;
    agw_buf doc = big_doc(), plain = AGW_BUF_INIT(SIZE_MAX), fast = AGW_BUF_INIT(SIZE_MAX);
    agw_str d = agw_buf_view(&doc), half = { d.ptr, d.len / 2 }, model;

    /* small documents get no record */
    assert_null(agw_json_skips_begin(AGW_STR_LIT("{\"a\":\"b\"}")));
    agw_json_skips_end(NULL);

    walk(d, d.ptr, &plain);
    walk(half, d.ptr, &plain);
    agw_json_skips *s = agw_json_skips_begin(d);
    assert_non_null(s);
    walk(d, d.ptr, &fast);
    /* a view cut inside a long value: the record must not jump past its end */
    walk(half, d.ptr, &fast);
    assert_int_equal(agw_json_find(d, AGW_STR_LIT("model"), &model), AGW_OK);
    assert_true(agw_str_eq(model, AGW_STR_LIT("\"last\"")));
    agw_json_skips_end(s);
    assert_true(plain.len > 10000);
    assert_int_equal(plain.len, fast.len);
    assert_memory_equal(plain.data, fast.data, plain.len);

    /* a part of the active record's document needs no record of its own;
     * another document's record nests, and the outer one is active again
     * after it (its spans still the same) */
    fast.len = 0;
    agw_json_skips *outer = agw_json_skips_begin_with(d, 0, 2);
    assert_non_null(outer);
    assert_null(agw_json_skips_begin(half));
    agw_buf other = big_doc();
    agw_json_skips *inner = agw_json_skips_begin(agw_buf_view(&other));
    assert_non_null(inner);
    agw_json_skips_end(inner);
    agw_buf_free(&other);
    walk(d, d.ptr, &fast);
    walk(half, d.ptr, &fast);
    agw_json_skips_end(outer);
    assert_int_equal(plain.len, fast.len);
    assert_memory_equal(plain.data, fast.data, plain.len);

    /* what a server thread does after each request: nothing left active */
    assert_int_equal(agw_json_skips_end_all(), 0);
    assert_non_null(agw_json_skips_begin(d));
    agw_buf other2 = big_doc();
    assert_non_null(agw_json_skips_begin(agw_buf_view(&other2)));
    assert_int_equal(agw_json_skips_end_all(), 2);
    assert_int_equal(agw_json_skips_end_all(), 0);
    agw_buf_free(&other2);

    agw_buf_free(&doc);
    agw_buf_free(&plain);
    agw_buf_free(&fast);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_corpus),
        cmocka_unit_test(test_invalid_corpus),
        cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_hostile_nesting_unvalidated),
        cmocka_unit_test(test_find_past_escapes),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_find_member),
        cmocka_unit_test(test_find_path),
        cmocka_unit_test(test_string_decode),
        cmocka_unit_test(test_string_eq_raw_bytes_are_not_the_value),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_int64),
        cmocka_unit_test(test_iter),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_collect),
        cmocka_unit_test(test_string_view),
        cmocka_unit_test(test_skips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
