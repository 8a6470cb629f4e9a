/* libFuzzer target for lib/core/json. The whole input is the document.
 * Invariants, any violation aborts:
 *  - the verdict is the same at depth 64 and at the ceiling unless depth was
 *    the reason;
 *  - whatever we accept (within cJSON's own limits: depth 1000, numbers under
 *    64 bytes, no \u surrogate escapes, which cJSON rejects when unpaired)
 *    cJSON accepts too;
 *  - in a valid document every member/element span is itself a valid
 *    document; find agrees with iteration (last key wins); cutting out the
 *    member span of find_member leaves a valid document; splicing a new
 *    value over a found one leaves a valid document;
 *  - every string decodes to valid UTF-8 and compares equal to its decoding;
 *  - agw_json_duplicate_key finds a repeated member name exactly when a
 *    pairwise comparison of the decoded names does;
 *    agw_json_int64 agrees with strtoll;
 *  - find and iteration over invalid input stay in bounds (ASan);
 *  - a record of where the values end (agw_json_skips) changes no span.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/json.h"

static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            need = 2;
        else if (c >= 0xE0 && c <= 0xEF)
            need = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        else if (c >= 0xF0 && c <= 0xF4)
            need = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        else
            return 0;
        if (n - i < need || s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k < need; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
        i += need;
    }
    return 1;
}

static void check_string(agw_str tok)
{
    agw_buf b = AGW_BUF_INIT(SIZE_MAX);

    if (agw_json_type_of(tok) != AGW_JSON_STRING)
        abort();
    if (agw_json_string_decode(tok, &b) != AGW_OK)
        abort();
    if (!utf8_valid((const unsigned char *)agw_buf_view(&b).ptr, b.len))
        abort();
    if (!agw_json_string_eq(tok, agw_buf_view(&b)))
        abort();
    if (b.len > 0 && agw_json_string_eq(tok, (agw_str){ b.data, b.len - 1 }))
        abort();
    agw_buf_free(&b);
}

static void check_number(agw_str v)
{
    char tmp[64];
    int64_t x = 0;
    agw_err e = agw_json_int64(v, &x);
    int integral = !memchr(v.ptr, '.', v.len) && !memchr(v.ptr, 'e', v.len) && !memchr(v.ptr, 'E', v.len);
    long long want;

    if (!integral) {
        if (e != AGW_EINVAL)
            abort();
        return;
    }
    if (v.len >= sizeof(tmp)) {
        if (e != AGW_ETOOBIG)
            abort();
        return;
    }
    memcpy(tmp, v.ptr, v.len);
    tmp[v.len] = '\0';
    errno = 0;
    want = strtoll(tmp, NULL, 10);
    if (errno == ERANGE ? e != AGW_ETOOBIG : (e != AGW_OK || x != want))
        abort();
}

static void check_value(agw_str v, int depth);

static void check_container(agw_str c, int depth)
{
    agw_json_iter it;
    agw_str k, v, last = { NULL, 0 }, found;
    int obj = agw_json_type_of(c) == AGW_JSON_OBJECT;

    if (agw_json_iter_init(&it, c) != AGW_OK)
        abort();
    while (agw_json_iter_next(&it, &k, &v)) {
        if (obj) {
            check_string(k);
            if (agw_json_string_eq(k, AGW_STR_LIT("model")))
                last = v;
        } else if (k.len != 0) {
            abort();
        }
        check_value(v, depth + 1);
    }
    if (obj) {
        agw_err e = agw_json_find(c, AGW_STR_LIT("model"), &found);
        if (last.ptr ? e != AGW_OK || found.ptr != last.ptr || found.len != last.len : e != AGW_ENOTFOUND)
            abort();
    }
}

static void check_value(agw_str v, int depth)
{
    if (v.len == 0 || agw_json_validate(v, AGW_JSON_MAX_DEPTH, NULL, 0) != AGW_OK)
        abort();
    switch (agw_json_type_of(v)) {
    case AGW_JSON_STRING:
        check_string(v);
        break;
    case AGW_JSON_NUMBER:
        check_number(v);
        break;
    case AGW_JSON_OBJECT:
    case AGW_JSON_ARRAY:
        /* Each level is checked once, on its own; going deeper multiplies work. */
        if (depth < 3)
            check_container(v, depth);
        break;
    case AGW_JSON_TRUE:
        if (!agw_json_is_true(v))
            abort();
        break;
    case AGW_JSON_FALSE:
        if (!agw_json_is_false(v))
            abort();
        break;
    case AGW_JSON_NULL:
        if (!agw_json_is_null(v))
            abort();
        break;
    default:
        abort();
    }
}

/* Cuts member out of doc, or replaces value with "\"x\"", and revalidates. */
static void check_edits(agw_str doc, agw_str value, agw_str member)
{
    size_t head = (size_t)(member.ptr - doc.ptr), tail = doc.len - head - member.len;
    char *buf = malloc(doc.len + 4);
    agw_str v2;

    memcpy(buf, doc.ptr, head);
    memcpy(buf + head, member.ptr + member.len, tail);
    if (agw_json_validate((agw_str){ buf, head + tail }, AGW_JSON_MAX_DEPTH, NULL, 0) != AGW_OK)
        abort();

    head = (size_t)(value.ptr - doc.ptr);
    tail = doc.len - head - value.len;
    memcpy(buf, doc.ptr, head);
    memcpy(buf + head, "\"x\"", 3);
    memcpy(buf + head + 3, value.ptr + value.len, tail);
    if (agw_json_validate((agw_str){ buf, head + 3 + tail }, AGW_JSON_MAX_DEPTH, NULL, 0) != AGW_OK ||
        agw_json_find((agw_str){ buf, head + 3 + tail }, AGW_STR_LIT("model"), &v2) != AGW_OK ||
        !agw_str_eq(v2, AGW_STR_LIT("\"x\"")))
        abort();
    free(buf);
}

static int cjson_comparable(const char *s, size_t n)
{
    size_t run = 0;

    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' && i + 2 < n && s[i + 1] == 'u' && (s[i + 2] == 'd' || s[i + 2] == 'D'))
            return 0;
        if ((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')
            run++;
        else
            run = 0;
        if (run >= 60)
            return 0;
    }
    return 1;
}

/* agw_json_duplicate_key agrees with comparing every pair of decoded member
 * names (objects of at most 256 members, to keep the pairs few). */
static void check_duplicates(agw_str doc)
{
    agw_json_iter a, b;
    agw_str ka, kb, va, vb, dup;
    size_t i = 0, n = 0;
    int found = 0;
    if (agw_json_iter_init(&a, doc) != AGW_OK)
        abort();
    while (agw_json_iter_next(&a, &ka, &va))
        n++;
    if (n > 256)
        return;
    agw_err e = agw_json_duplicate_key(doc, &dup);
    if (agw_json_iter_init(&a, doc) != AGW_OK)
        abort();
    while (!found && agw_json_iter_next(&a, &ka, &va)) {
        agw_buf name = AGW_BUF_INIT(SIZE_MAX);
        if (agw_json_string_decode(ka, &name) != AGW_OK || agw_json_iter_init(&b, doc) != AGW_OK)
            abort();
        for (size_t j = 0; !found && agw_json_iter_next(&b, &kb, &vb); j++)
            found = j > i && agw_json_string_eq(kb, agw_buf_view(&name));
        agw_buf_free(&name);
        i++;
    }
    if ((e == AGW_OK) == found || (e != AGW_OK && e != AGW_EINVAL))
        abort();
    if (found && (dup.ptr < doc.ptr || dup.ptr + dup.len > doc.ptr + doc.len))
        abort();
}

/* Every member and element span, depth first (at most `cap`), into out. */
static size_t walk_spans(agw_str c, agw_str *out, size_t n, size_t cap, int depth)
{
    agw_json_iter it;
    agw_str k, v;
    if (depth > 32 || agw_json_iter_init(&it, c) != AGW_OK)
        return n;
    while (n + 2 <= cap && agw_json_iter_next(&it, &k, &v)) {
        out[n++] = k;
        out[n++] = v;
        n = walk_spans(v, out, n, cap, depth + 1);
    }
    return n;
}

static void same_spans(const agw_str *a, size_t na, const agw_str *b, size_t nb)
{
    if (na != nb)
        abort();
    for (size_t j = 0; j < na; j++)
        if (a[j].ptr != b[j].ptr || a[j].len != b[j].len)
            abort();
}

/* A record of where the values end (agw_json_skips) changes no span: the
 * walk with every value of two bytes or more recorded equals the walk
 * without, also over a view that ends inside the document; so does the walk
 * under a record of another document, and under the outer record made
 * active again when that one ends. */
static void check_skips(agw_str doc)
{
    enum { CAP = 4096 };
    static agw_str plain[CAP], with[CAP];
    agw_str views[2] = { doc, { doc.ptr, doc.len / 2 } };
    char *copy = malloc(doc.len + 1);
    memcpy(copy, doc.ptr, doc.len);
    for (int i = 0; i < 2; i++) {
        size_t n = walk_spans(views[i], plain, 0, CAP, 0);
        agw_json_skips *s = agw_json_skips_begin_with(doc, 0, 2);
        if (!s || agw_json_skips_begin_with(views[i], 0, 2)) /* covered by s */
            abort();
        same_spans(plain, n, with, walk_spans(views[i], with, 0, CAP, 0));
        agw_json_skips *other = agw_json_skips_begin_with((agw_str){ copy, doc.len }, 0, 2);
        same_spans(plain, n, with, walk_spans(views[i], with, 0, CAP, 0));
        agw_json_skips_end(other);
        same_spans(plain, n, with, walk_spans(views[i], with, 0, CAP, 0));
        agw_json_skips_end(s);
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    agw_str doc = { (const char *)data, size }, v, m;
    agw_err shallow = agw_json_validate(doc, 64, NULL, 0);
    agw_err deep = agw_json_validate(doc, AGW_JSON_MAX_DEPTH, NULL, 0);
    agw_json_iter it;
    agw_str k;
    char err[32];

    if (shallow != AGW_ETOOBIG && shallow != deep)
        abort();
    if (agw_json_validate(doc, 64, err, sizeof(err)) != shallow)
        abort();
    if (shallow != AGW_OK && strncmp(err, "offset ", 7) != 0)
        abort();

    if (shallow == AGW_OK && cjson_comparable(doc.ptr, doc.len)) {
        char *z = malloc(size + 1);
        cJSON *j;
        memcpy(z, data, size);
        z[size] = '\0';
        j = cJSON_ParseWithOpts(z, NULL, 1);
        if (!j)
            abort();
        cJSON_Delete(j);
        free(z);
    }

    if (deep == AGW_OK) {
        agw_str trimmed;
        check_skips(doc);
        if (agw_json_find_path(doc, (const char *const[]){ NULL }, &trimmed) != AGW_OK)
            abort();
        check_value(trimmed, 0);
        if (agw_json_type_of(doc) == AGW_JSON_OBJECT) {
            static const agw_str keys[] = { AGW_STR_LIT("model"), AGW_STR_LIT("stream"),
                                             AGW_STR_LIT(""), AGW_STR_LIT("a") };
            for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
                agw_err e = agw_json_find_member(doc, keys[i], &v, &m);
                if (e == AGW_OK) {
                    if (m.ptr > v.ptr || m.ptr + m.len < v.ptr + v.len)
                        abort();
                    if (i == 0)
                        check_edits(doc, v, m);
                } else if (e != AGW_ENOTFOUND) {
                    abort();
                }
            }
            if (agw_json_find_path(doc, (const char *const[]){ "stream_options", "include_usage", NULL },
                                   &v) == AGW_OK && v.len == 0)
                abort();
            check_duplicates(doc);
        } else if (agw_json_find(doc, AGW_STR_LIT("model"), &v) != AGW_EINVAL) {
            abort();
        }
    } else {
        /* Not valid: results are meaningless but must stay in bounds. */
        if (agw_json_find(doc, AGW_STR_LIT("model"), &v) == AGW_OK &&
            (v.ptr < doc.ptr || v.ptr + v.len > doc.ptr + doc.len))
            abort();
        if (agw_json_iter_init(&it, doc) == AGW_OK) {
            while (agw_json_iter_next(&it, &k, &v)) {
                agw_buf b = AGW_BUF_INIT(SIZE_MAX);
                if (v.ptr < doc.ptr || v.ptr + v.len > doc.ptr + doc.len)
                    abort();
                if (k.len && agw_json_string_decode(k, &b) == AGW_OK && b.len > k.len)
                    abort();
                agw_buf_free(&b);
            }
        }
    }
    return 0;
}
