#include "core/json.h"

#include <stdio.h>
#include <stdlib.h>

typedef const unsigned char *agw_json_ptr;

static agw_json_ptr json_skip_ws(agw_json_ptr p, agw_json_ptr end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

const char *agw_json_skip_ws(const char *p, const char *end)
{
    return (const char *)json_skip_ws((agw_json_ptr)p, (agw_json_ptr)end);
}

/* The value of 4 hex digits at p (end - p >= 4 checked by the caller), or -1. */
static long json_hex4(agw_json_ptr p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = agw_hex_value(p[i]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

/* ---- validation ---- */

/* p is just past the opening quote. Returns the byte past the closing quote,
 * or NULL with *why and *at set. */
static agw_json_ptr json_v_string(agw_json_ptr p, agw_json_ptr end, const char **why,
                                  agw_json_ptr *at)
{
    for (;;) {
        unsigned char c;

        p += agw_json_plain_run(p, (size_t)(end - p));
        if (p >= end) {
            *why = "unterminated string";
            *at = end;
            return NULL;
        }
        c = *p;
        if (c == '"')
            return p + 1;
        if (c == '\\') {
            if (end - p < 2)
                goto bad_escape;
            switch (p[1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                p += 2;
                continue;
            case 'u':
                if (end - p < 6 || json_hex4(p + 2) < 0)
                    goto bad_escape;
                p += 6;
                continue;
            default:
                goto bad_escape;
            }
        }
        if (c < 0x20) {
            *why = "control character in string";
            *at = p;
            return NULL;
        }
        /* What is left is a byte >= 0x80: the start of a multi-byte sequence. */
        size_t need = agw_utf8_len(p, (size_t)(end - p));
        if (!need)
            goto bad_utf8;
        p += need;
    }
bad_escape:
    *why = "invalid escape in string";
    *at = p;
    return NULL;
bad_utf8:
    *why = "invalid UTF-8 in string";
    *at = p;
    return NULL;
}

static int json_digit(agw_json_ptr p, agw_json_ptr end)
{
    return p < end && *p >= '0' && *p <= '9';
}

static agw_json_ptr json_v_number(agw_json_ptr p, agw_json_ptr end, const char **why,
                                  agw_json_ptr *at)
{
    if (*p == '-')
        p++;
    if (!json_digit(p, end))
        goto bad;
    if (*p == '0') {
        p++;
        if (json_digit(p, end)) {
            *why = "leading zero in number";
            *at = p;
            return NULL;
        }
    } else {
        while (json_digit(p, end))
            p++;
    }
    if (p < end && *p == '.') {
        p++;
        if (!json_digit(p, end))
            goto bad;
        while (json_digit(p, end))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!json_digit(p, end))
            goto bad;
        while (json_digit(p, end))
            p++;
    }
    return p;
bad:
    *why = "malformed number";
    *at = p;
    return NULL;
}

static agw_json_ptr json_v_literal(agw_json_ptr p, agw_json_ptr end, agw_str lit)
{
    if ((size_t)(end - p) < lit.len || memcmp(p, lit.ptr, lit.len) != 0)
        return NULL;
    return p + lit.len;
}

agw_err agw_json_validate(agw_str doc, int max_depth, char *err, size_t errlen)
{
    /* One bit per open container (1 = object) replaces recursion, so hostile
     * nesting costs neither stack nor time beyond the single pass. */
    uint64_t kinds[AGW_JSON_MAX_DEPTH / 64];
    agw_json_ptr start = (agw_json_ptr)doc.ptr, end = start + doc.len, p, at = NULL;
    const char *why;
    int depth = 0, obj;
    agw_err rc = AGW_EINVAL;

    if (max_depth < 0)
        max_depth = 0;
    if (max_depth > AGW_JSON_MAX_DEPTH)
        max_depth = AGW_JSON_MAX_DEPTH;
    if (doc.len == 0)
        start = end = (agw_json_ptr)"";
    p = json_skip_ws(start, end);

value:
    if (p >= end) {
        why = "expected a value";
        goto fail;
    }
    switch (*p) {
    case '{':
    case '[':
        if (depth >= max_depth) {
            why = "nesting too deep";
            rc = AGW_ETOOBIG;
            goto fail;
        }
        obj = *p == '{';
        if (obj)
            kinds[depth / 64] |= UINT64_C(1) << (depth % 64);
        else
            kinds[depth / 64] &= ~(UINT64_C(1) << (depth % 64));
        depth++;
        p = json_skip_ws(p + 1, end);
        if (p < end && *p == (obj ? '}' : ']')) {
            p++;
            depth--;
            goto after;
        }
        if (obj)
            goto key;
        goto value;
    case '"':
        if (!(p = json_v_string(p + 1, end, &why, &at)))
            goto fail_at;
        goto after;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        if (!(p = json_v_number(p, end, &why, &at)))
            goto fail_at;
        goto after;
    case 't':
        at = p;
        if (!(p = json_v_literal(p, end, AGW_STR_LIT("true"))))
            break;
        goto after;
    case 'f':
        at = p;
        if (!(p = json_v_literal(p, end, AGW_STR_LIT("false"))))
            break;
        goto after;
    case 'n':
        at = p;
        if (!(p = json_v_literal(p, end, AGW_STR_LIT("null"))))
            break;
        goto after;
    default:
        why = "expected a value";
        goto fail;
    }
    why = "invalid literal";
    p = at;
    goto fail;

key:
    if (p >= end || *p != '"') {
        why = "expected a string key";
        goto fail;
    }
    if (!(p = json_v_string(p + 1, end, &why, &at)))
        goto fail_at;
    p = json_skip_ws(p, end);
    if (p >= end || *p != ':') {
        why = "expected ':'";
        goto fail;
    }
    p = json_skip_ws(p + 1, end);
    goto value;

after:
    p = json_skip_ws(p, end);
    if (depth == 0) {
        if (p == end)
            return AGW_OK;
        why = "unexpected data after the value";
        goto fail;
    }
    obj = (int)(kinds[(depth - 1) / 64] >> ((depth - 1) % 64) & 1);
    if (p < end && *p == ',') {
        p = json_skip_ws(p + 1, end);
        if (obj)
            goto key;
        goto value;
    }
    if (p < end && *p == (obj ? '}' : ']')) {
        p++;
        depth--;
        goto after;
    }
    why = obj ? "expected ',' or '}'" : "expected ',' or ']'";
    goto fail;

fail_at:
    p = at;
fail:
    if (err && errlen > 0)
        snprintf(err, errlen, "offset %zu: %s", (size_t)(p - start), why);
    return rc;
}

/* ---- scanning validated documents ----
 * These trust the structure (brackets are only counted, not matched) but check
 * every bound, so unvalidated input gives nonsense, never a bad read. */

/* The first '"' or '\\' from p on, 8 bytes at a time; the last few bytes
 * (fewer than 8) are left to the caller's byte loop. The zero-byte tests are
 * exact as a yes/no answer, and the lowest flagged byte of a word is a true
 * match (as in agw_json_plain_run). */
static agw_json_ptr json_swar_quote_or_backslash(agw_json_ptr p, agw_json_ptr end)
{
    const uint64_t ones = UINT64_C(0x0101010101010101), highs = ones * 0x80;
    while (end - p >= 8) {
        uint64_t v, q, b, hit;
        memcpy(&v, p, 8);
        q = v ^ (ones * '"');
        b = v ^ (ones * '\\');
        if ((hit = (((q - ones) & ~q) | ((b - ones) & ~b)) & highs))
            return p + (__builtin_ctzll(hit) >> 3);
        p += 8;
    }
    return p;
}

/* p at the opening quote; returns past the closing quote or NULL. A
 * backslash takes the byte after it along (the escapes of a valid document
 * are two bytes, or six for \u whose last four are hex digits). */
static agw_json_ptr json_skip_string(agw_json_ptr p, agw_json_ptr end)
{
    p++;
    for (;;) {
        p = json_swar_quote_or_backslash(p, end);
        while (p < end && *p != '"' && *p != '\\')
            p++;
        if (p >= end)
            return NULL;
        if (*p == '"')
            return p + 1;
        if (end - p < 2)
            return NULL;
        p += 2;
    }
}

/* The bytes json_skip_value stops at inside a container. */
static const unsigned char json_structural[256] = {
    ['"'] = 1, ['{'] = 1, ['['] = 1, ['}'] = 1, [']'] = 1,
};

/* ---- where the long values of one document end (json.h agw_json_skips) ---- */

/* A value shorter than this is scanned: looking it up would cost as much. */
#define SKIPS_MIN_VALUE 128
/* A document shorter than this gets no record: its walks are cheap anyway. */
#define SKIPS_MIN_DOC 8192
/* Containers nested deeper than this are not recorded (they are scanned). */
#define SKIPS_MAX_DEPTH 256

typedef struct {
    uint32_t start, end; /* offsets into the document */
} json_skip_rec;

struct agw_json_skips {
    agw_json_ptr base;
    size_t len;
    uint64_t *starts; /* a bit per byte: a recorded value starts there */
    uint32_t *rank;   /* per word of starts: the bits set in the words before it */
    json_skip_rec *v; /* sorted by start: v[i] is the value of the i-th bit set */
    size_t n, cap;
    agw_json_skips *prev; /* the record active before this one, restored at the end */
};

static _Thread_local agw_json_skips *json_skips_active;

/* A new record starting at `from` (its end filled in later); its index, or
 * -1 when memory is short. */
static long json_skips_add(agw_json_skips *s, agw_json_ptr from)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        json_skip_rec *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n] = (json_skip_rec){ (uint32_t)(from - s->base), 0 };
    return (long)s->n++;
}

static void json_skips_mark(agw_json_skips *s, size_t k, agw_json_ptr to)
{
    uint32_t off = s->v[k].start;
    s->v[k].end = (uint32_t)(to - s->base);
    s->starts[off >> 6] |= UINT64_C(1) << (off & 63);
}

agw_json_skips *agw_json_skips_begin(agw_str doc)
{
    return agw_json_skips_begin_with(doc, SKIPS_MIN_DOC, SKIPS_MIN_VALUE);
}

agw_json_skips *agw_json_skips_begin_with(agw_str doc, size_t min_doc, size_t min_value)
{
    if (doc.len < min_doc || doc.len >= UINT32_MAX)
        return NULL;
    const agw_json_skips *a = json_skips_active;
    if (a && (agw_json_ptr)doc.ptr >= a->base &&
        (agw_json_ptr)doc.ptr + doc.len <= a->base + a->len)
        return NULL; /* the active record covers it already */
    agw_json_skips *s = calloc(1, sizeof *s);
    if (!s || !(s->starts = calloc(doc.len / 64 + 1, sizeof *s->starts))) {
        free(s);
        return NULL;
    }
    s->base = (agw_json_ptr)doc.ptr;
    s->len = doc.len;
    /* Records are made where values start, so they come out sorted: a
     * container gets one when it opens, which it gives back when it closes
     * short (nothing inside it can have been recorded then). */
    agw_json_ptr p = s->base, end = p + doc.len;
    long open[SKIPS_MAX_DEPTH], k;
    size_t depth = 0;
    while (p < end) {
        while (!json_structural[*p])
            if (++p == end)
                goto done;
        switch (*p) {
        case '"': {
            agw_json_ptr q = json_skip_string(p, end);
            if (!q)
                goto done;
            if ((size_t)(q - p) >= min_value) {
                if ((k = json_skips_add(s, p)) < 0)
                    goto fail;
                json_skips_mark(s, (size_t)k, q);
            }
            p = q;
            continue;
        }
        case '{':
        case '[':
            if (depth < SKIPS_MAX_DEPTH && (open[depth] = json_skips_add(s, p)) < 0)
                goto fail;
            depth++;
            break;
        default: /* '}' or ']' */
            if (depth && --depth < SKIPS_MAX_DEPTH) {
                k = open[depth];
                if ((size_t)(p + 1 - (s->base + s->v[k].start)) >= min_value)
                    json_skips_mark(s, (size_t)k, p + 1);
                else
                    s->n = (size_t)k;
            }
            break;
        }
        p++;
    }
done:;
    size_t words = doc.len / 64 + 1;
    if (!(s->rank = malloc(words * sizeof *s->rank)))
        goto fail;
    for (size_t w = 0, before = 0; w < words; w++) {
        s->rank[w] = (uint32_t)before;
        before += (size_t)__builtin_popcountll(s->starts[w]);
    }
    s->prev = json_skips_active;
    json_skips_active = s;
    return s;
fail:
    free(s->starts);
    free(s->rank);
    free(s->v);
    free(s);
    return NULL;
}

void agw_json_skips_end(agw_json_skips *s)
{
    if (!s)
        return;
    json_skips_active = s->prev;
    free(s->starts);
    free(s->rank);
    free(s->v);
    free(s);
}

size_t agw_json_skips_end_all(void)
{
    size_t n = 0;
    while (json_skips_active) {
        agw_json_skips_end(json_skips_active);
        n++;
    }
    return n;
}

/* Where the recorded value starting at p ends, or NULL: p starts no value
 * of the active record, or the record says it ends past `end` (a view cut
 * inside the value, which the scan must then refuse as it would anyway). */
static agw_json_ptr json_skips_lookup(agw_json_ptr p, agw_json_ptr end)
{
    const agw_json_skips *s = json_skips_active;
    if (!s || p < s->base || p >= s->base + s->len)
        return NULL;
    size_t off = (size_t)(p - s->base), w = off >> 6;
    uint64_t below = (UINT64_C(1) << (off & 63)) - 1;
    if (!(s->starts[w] >> (off & 63) & 1))
        return NULL;
    size_t i = s->rank[w] + (size_t)__builtin_popcountll(s->starts[w] & below);
    if (i >= s->n || s->v[i].start != off || s->base + s->v[i].end > end)
        return NULL;
    return s->base + s->v[i].end;
}

/* p at the first byte of a value; returns past its last byte or NULL. */
static agw_json_ptr json_skip_value(agw_json_ptr p, agw_json_ptr end)
{
    agw_json_ptr start = p, known;
    size_t depth = 0;

    if (p >= end)
        return NULL;
    if (json_skips_active && (known = json_skips_lookup(p, end)))
        return known;
    switch (*p) {
    case '"':
        return json_skip_string(p, end);
    case '{':
    case '[':
        while (p < end) {
            /* Most bytes of a container are none of these five. */
            while (!json_structural[*p])
                if (++p == end)
                    return NULL;
            switch (*p) {
            case '"':
                if (!(p = json_skip_string(p, end)))
                    return NULL;
                continue;
            case '{':
            case '[':
                depth++;
                break;
            case '}':
            case ']':
                if (--depth == 0)
                    return p + 1;
                break;
            default:
                break;
            }
            p++;
        }
        return NULL;
    default:
        while (p < end && ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
                           *p == '-' || *p == '+' || *p == '.' || *p == 'E'))
            p++;
        return p > start ? p : NULL;
    }
}

agw_err agw_json_iter_init(agw_json_iter *it, agw_str container)
{
    agw_json_ptr p, end;

    it->pos = NULL;
    it->end = NULL;
    it->close = 0;
    it->started = 0;
    if (container.len == 0)
        return AGW_EINVAL;
    end = (agw_json_ptr)container.ptr + container.len;
    p = json_skip_ws((agw_json_ptr)container.ptr, end);
    if (p >= end || (*p != '{' && *p != '['))
        return AGW_EINVAL;
    it->close = *p == '{' ? '}' : ']';
    it->pos = (const char *)p + 1;
    it->end = (const char *)end;
    return AGW_OK;
}

int agw_json_iter_next(agw_json_iter *it, agw_str *key, agw_str *value)
{
    agw_json_ptr end = (agw_json_ptr)it->end, p, k = NULL, kend = NULL, v;

    if (!it->pos)
        return 0;
    p = json_skip_ws((agw_json_ptr)it->pos, end);
    if (p >= end || *p == (unsigned char)it->close)
        goto done;
    if (it->started) {
        if (*p != ',')
            goto done;
        p = json_skip_ws(p + 1, end);
    }
    if (it->close == '}') {
        if (p >= end || *p != '"' || !(kend = json_skip_string(p, end)))
            goto done;
        k = p;
        p = json_skip_ws(kend, end);
        if (p >= end || *p != ':')
            goto done;
        p = json_skip_ws(p + 1, end);
    }
    if (!(v = json_skip_value(p, end)))
        goto done;
    if (key)
        *key = k ? (agw_str){ (const char *)k, (size_t)(kend - k) } : (agw_str){ "", 0 };
    *value = (agw_str){ (const char *)p, (size_t)(v - p) };
    it->pos = (const char *)v;
    it->started = 1;
    return 1;
done:
    it->pos = NULL;
    return 0;
}

agw_err agw_json_find_member(agw_str doc, agw_str key, agw_str *value, agw_str *member)
{
    agw_json_iter it;
    agw_str k, v;
    const char *prev_end = NULL, *hit_prev_end = NULL;
    agw_str hit_key = { NULL, 0 }, hit_val = { NULL, 0 };
    int found = 0;

    if (agw_json_iter_init(&it, doc) != AGW_OK || it.close != '}')
        return AGW_EINVAL;
    while (agw_json_iter_next(&it, &k, &v)) {
        if (agw_json_string_eq(k, key)) {
            found = 1;
            hit_key = k;
            hit_val = v;
            hit_prev_end = prev_end;
        }
        prev_end = v.ptr + v.len;
    }
    if (!found)
        return AGW_ENOTFOUND;
    *value = hit_val;
    if (member) {
        agw_json_ptr end = (agw_json_ptr)it.end;
        agw_json_ptr vend = (agw_json_ptr)hit_val.ptr + hit_val.len;
        agw_json_ptr from = (agw_json_ptr)hit_key.ptr, to = vend;

        if (hit_prev_end) {
            /* Not first: take the comma before it, leaving the one after. */
            from = json_skip_ws((agw_json_ptr)hit_prev_end, end);
        } else {
            agw_json_ptr q = json_skip_ws(vend, end);
            if (q < end && *q == ',')
                to = json_skip_ws(q + 1, end);
        }
        *member = (agw_str){ (const char *)from, (size_t)(to - from) };
    }
    return AGW_OK;
}

agw_err agw_json_find(agw_str doc, agw_str key, agw_str *value)
{
    return agw_json_find_member(doc, key, value, NULL);
}

void agw_json_collect(agw_str obj, const char *const *names, size_t n, agw_str *vals,
                      agw_str *unknown)
{
    agw_json_iter it;
    agw_str k, v;

    for (size_t i = 0; i < n; i++)
        vals[i] = (agw_str){ NULL, 0 };
    if (unknown)
        *unknown = (agw_str){ NULL, 0 };
    if (agw_json_iter_init(&it, obj) != AGW_OK || it.close != '}')
        return;
    while (agw_json_iter_next(&it, &k, &v)) {
        /* Keys without escapes (nearly all) are compared as raw bytes. The
         * first byte sorts out most names; strnlen, and not the NUL after
         * inner_len bytes, decides the length, as an unchecked key may hold a
         * NUL that ends strncmp early. */
        const char *inner = k.ptr + 1;
        size_t inner_len = k.len >= 2 ? k.len - 2 : 0;
        int plain = k.len >= 2 && !memchr(inner, '\\', inner_len);
        char first = inner_len ? inner[0] : '\0';
        size_t i;
        for (i = 0; i < n; i++) {
            const char *name = names[i];
            if (plain ? name[0] == first && strncmp(name, inner, inner_len) == 0 &&
                            strnlen(name, inner_len + 1) == inner_len
                      : agw_json_string_eq(k, agw_str_c(name))) {
                vals[i] = v;
                break;
            }
        }
        if (i == n && unknown && !unknown->ptr)
            *unknown = k;
    }
}

static agw_str json_trim(agw_str s)
{
    agw_json_ptr p, end;

    if (s.len == 0)
        return s;
    end = (agw_json_ptr)s.ptr + s.len;
    p = json_skip_ws((agw_json_ptr)s.ptr, end);
    while (end > p && (end[-1] == ' ' || end[-1] == '\n' || end[-1] == '\r' || end[-1] == '\t'))
        end--;
    return (agw_str){ (const char *)p, (size_t)(end - p) };
}

agw_err agw_json_find_path(agw_str doc, const char *const *path, agw_str *value)
{
    agw_str cur = json_trim(doc);

    for (; *path; path++) {
        agw_err e = agw_json_find(cur, agw_str_c(*path), &cur);
        if (e)
            return e;
    }
    *value = cur;
    return AGW_OK;
}

agw_json_type agw_json_type_of(agw_str value)
{
    agw_str v = json_trim(value);

    if (v.len == 0)
        return AGW_JSON_INVALID;
    switch (v.ptr[0]) {
    case '{': return AGW_JSON_OBJECT;
    case '[': return AGW_JSON_ARRAY;
    case '"': return AGW_JSON_STRING;
    case 't': return AGW_JSON_TRUE;
    case 'f': return AGW_JSON_FALSE;
    case 'n': return AGW_JSON_NULL;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        return AGW_JSON_NUMBER;
    default:
        return AGW_JSON_INVALID;
    }
}

int agw_json_is_true(agw_str value)
{
    return agw_str_eq(json_trim(value), AGW_STR_LIT("true"));
}

int agw_json_is_false(agw_str value)
{
    return agw_str_eq(json_trim(value), AGW_STR_LIT("false"));
}

int agw_json_is_null(agw_str value)
{
    return agw_str_eq(json_trim(value), AGW_STR_LIT("null"));
}

agw_err agw_json_int64(agw_str value, int64_t *out)
{
    agw_str v = json_trim(value);
    agw_json_ptr p, end;
    uint64_t mag = 0, limit = INT64_MAX;
    int neg = 0;

    if (v.len == 0)
        return AGW_EINVAL;
    p = (agw_json_ptr)v.ptr;
    end = p + v.len;

    if (p < end && *p == '-') {
        neg = 1;
        limit = (uint64_t)INT64_MAX + 1;
        p++;
    }
    if (p >= end || (*p == '0' && end - p > 1))
        return AGW_EINVAL;
    for (; p < end; p++) {
        unsigned d = (unsigned)*p - '0';
        if (d > 9)
            return AGW_EINVAL;
        if (mag > (limit - d) / 10) {
            /* Keep scanning: a malformed tail is EINVAL, not ETOOBIG. */
            while (++p < end)
                if ((unsigned)*p - '0' > 9)
                    return AGW_EINVAL;
            return AGW_ETOOBIG;
        }
        mag = mag * 10 + d;
    }
    if (neg)
        *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    else
        *out = (int64_t)mag;
    return AGW_OK;
}

/* ---- string decoding ---- */

static size_t json_utf8(uint32_t cp, unsigned char *o)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the escape at p (*p == '\\') into o[0..*olen). Returns the bytes of
 * input consumed, 0 when malformed. */
static size_t json_unescape(agw_json_ptr p, agw_json_ptr end, unsigned char o[4], size_t *olen)
{
    long cp, lo;

    if (end - p < 2)
        return 0;
    switch (p[1]) {
    case '"': o[0] = '"'; break;
    case '\\': o[0] = '\\'; break;
    case '/': o[0] = '/'; break;
    case 'b': o[0] = '\b'; break;
    case 'f': o[0] = '\f'; break;
    case 'n': o[0] = '\n'; break;
    case 'r': o[0] = '\r'; break;
    case 't': o[0] = '\t'; break;
    case 'u':
        if (end - p < 6 || (cp = json_hex4(p + 2)) < 0)
            return 0;
        if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 12 && p[6] == '\\' && p[7] == 'u' &&
            (lo = json_hex4(p + 8)) >= 0xDC00 && lo <= 0xDFFF) {
            *olen = json_utf8((uint32_t)(0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)), o);
            return 12;
        }
        if (cp >= 0xD800 && cp <= 0xDFFF)
            cp = 0xFFFD;
        *olen = json_utf8((uint32_t)cp, o);
        return 6;
    default:
        return 0;
    }
    *olen = 1;
    return 2;
}

static int json_token_inner(agw_str token, agw_json_ptr *p, agw_json_ptr *end)
{
    if (token.len < 2 || token.ptr[0] != '"' || token.ptr[token.len - 1] != '"')
        return 0;
    *p = (agw_json_ptr)token.ptr + 1;
    *end = (agw_json_ptr)token.ptr + token.len - 1;
    return 1;
}

agw_err agw_json_string_decode(agw_str token, agw_buf *out)
{
    agw_json_ptr p, end;
    size_t saved = out->len;
    agw_err e;

    if (!json_token_inner(token, &p, &end))
        return AGW_EINVAL;
    for (;;) {
        agw_json_ptr bs = p < end ? memchr(p, '\\', (size_t)(end - p)) : NULL;
        agw_json_ptr run_end = bs ? bs : end;
        unsigned char o[4];
        size_t olen = 0, used;

        if (run_end > p && (e = agw_buf_append(out, p, (size_t)(run_end - p))) != AGW_OK)
            return e;
        if (!bs)
            return AGW_OK;
        if (!(used = json_unescape(bs, end, o, &olen))) {
            out->len = saved;
            if (out->data)
                out->data[saved] = '\0';
            return AGW_EINVAL;
        }
        if ((e = agw_buf_append(out, o, olen)) != AGW_OK)
            return e;
        p = bs + used;
    }
}

int agw_json_string_eq(agw_str token, agw_str s)
{
    agw_json_ptr p, end;
    const unsigned char *want = (const unsigned char *)s.ptr;
    size_t left = s.len;

    if (!json_token_inner(token, &p, &end))
        return 0;
    /* An escape makes the raw bytes longer than what they stand for: a
     * token no longer than s can only match byte for byte and unescaped,
     * and a longer one only with an escape in it. */
    size_t raw = (size_t)(end - p);
    if (raw <= left)
        return raw == left && (raw == 0 || memcmp(p, want, raw) == 0) && !memchr(p, '\\', raw);
    if (!memchr(p, '\\', raw))
        return 0;
    for (;;) {
        agw_json_ptr bs = p < end ? memchr(p, '\\', (size_t)(end - p)) : NULL;
        size_t run = (size_t)((bs ? bs : end) - p), olen = 0, used;
        unsigned char o[4];

        if (run > left || (run && memcmp(p, want, run) != 0))
            return 0;
        want += run;
        left -= run;
        if (!bs)
            return left == 0;
        if (!(used = json_unescape(bs, end, o, &olen)) || olen > left ||
            memcmp(o, want, olen) != 0)
            return 0;
        want += olen;
        left -= olen;
        p = bs + used;
    }
}

agw_err agw_json_string_view(agw_str token, agw_buf *scratch, agw_str *out)
{
    if (token.len < 2 || token.ptr[0] != '"' || token.ptr[token.len - 1] != '"')
        return AGW_EINVAL;
    if (!memchr(token.ptr + 1, '\\', token.len - 2)) {
        *out = (agw_str){ token.ptr + 1, token.len - 2 };
        return AGW_OK;
    }
    agw_buf_reset(scratch);
    agw_err e = agw_json_string_decode(token, scratch);
    if (e)
        return e;
    *out = agw_buf_view(scratch);
    return AGW_OK;
}

/* One member name for agw_json_duplicate_key: its decoded bytes (a view
 * into the document when it holds no escape) and its key token. */
typedef struct {
    agw_str name;
    agw_str token;
} json_key;

static int json_key_cmp(const void *a, const void *b)
{
    const json_key *x = a, *y = b;
    size_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
    int c = n ? memcmp(x->name.ptr, y->name.ptr, n) : 0;
    if (c)
        return c;
    if (x->name.len != y->name.len)
        return x->name.len < y->name.len ? -1 : 1;
    /* Equal names: document order, so the later occurrence is reported. */
    return x->token.ptr < y->token.ptr ? -1 : x->token.ptr > y->token.ptr;
}

agw_err agw_json_duplicate_key(agw_str doc, agw_str *dup)
{
    agw_json_iter it;
    agw_str k, v;
    enum { ON_STACK = 16 };
    size_t n = 0, cap = ON_STACK;
    agw_err e = AGW_OK;

    if (dup)
        *dup = (agw_str){ NULL, 0 };
    if (agw_json_type_of(doc) != AGW_JSON_OBJECT || agw_json_iter_init(&it, doc) != AGW_OK)
        return AGW_EINVAL;
    /* Runs on every request body: the usual object's few members stay on
     * the stack, only a larger one allocates. */
    json_key keys_on_stack[ON_STACK];
    size_t decoded_on_stack[ON_STACK];
    json_key *keys = keys_on_stack;
    /* Escaped names are decoded one after the other into `names`; their
     * views are made once it stops growing (name.ptr NULL until then, with
     * the offset in `decoded`). */
    agw_buf names = AGW_BUF_INIT(doc.len + 1);
    size_t *decoded = decoded_on_stack;
    while (agw_json_iter_next(&it, &k, &v)) {
        if (n == cap) {
            cap *= 2;
            if (keys == keys_on_stack) {
                keys = memcpy(xmalloc(cap * sizeof *keys), keys_on_stack, sizeof keys_on_stack);
                decoded = memcpy(xmalloc(cap * sizeof *decoded), decoded_on_stack,
                                 sizeof decoded_on_stack);
            } else {
                keys = xrealloc(keys, cap * sizeof *keys);
                decoded = xrealloc(decoded, cap * sizeof *decoded);
            }
        }
        keys[n].token = k;
        keys[n].name = (agw_str){ k.ptr + 1, k.len >= 2 ? k.len - 2 : 0 };
        if (memchr(k.ptr, '\\', k.len)) {
            decoded[n] = names.len;
            if (agw_json_string_decode(k, &names) != AGW_OK) {
                e = AGW_EINVAL;
                goto out;
            }
            keys[n].name = (agw_str){ NULL, names.len - decoded[n] };
        }
        n++;
    }
    for (size_t i = 0; i < n; i++)
        if (!keys[i].name.ptr)
            keys[i].name.ptr = names.data + decoded[i];
    qsort(keys, n, sizeof *keys, json_key_cmp);
    for (size_t i = 1; i < n; i++)
        if (agw_str_eq(keys[i].name, keys[i - 1].name)) {
            if (dup)
                *dup = keys[i].token;
            e = AGW_EINVAL;
            break;
        }
out:
    agw_buf_free(&names);
    if (keys != keys_on_stack) {
        free(decoded);
        free(keys);
    }
    return e;
}
