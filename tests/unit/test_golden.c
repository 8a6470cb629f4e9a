/*
 * Golden tests for protocol conversion: one directory per case under
 * tests/golden/<direction>/<case>/, one cmocka test per case, discovered at
 * run time. The format is described in tests/golden/README.md; in short:
 *
 *   client_request.json    decoded with the client's codec, encoded with the
 *                          upstream's; compared with upstream_request.json
 *   expect_error           instead: decoding or encoding must fail with
 *                          AGW_EINVAL and a message containing this text
 *   upstream_stream.sse    run through agw_bridge as the relay does (SSE
 *                          parser -> codec event callback -> finish), once
 *                          for a streaming client (client_stream.sse) and
 *                          once for a non-streaming one (client_response.json,
 *                          status in client_response_status, default 200)
 *   upstream_error.json    + upstream_status: through the codec's error
 *                          callback; compared with client_error.json and
 *                          client_status
 *   options.json           {"include_usage": bool, "created": int, "model": str}
 *
 * JSON is compared as values (key order free, numbers by value, strings by
 * their decoded bytes, NULs included), with json.h rather than a DOM so that
 * a `\u0000` in a string is compared in full. Duplicate keys are a mismatch.
 *
 * Cases are found in $ANTIGW_SRCDIR/tests/golden, or when that is unset in
 * ANTIGW_GOLDEN_DIR (a -D define) or else next to this file.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

/* The bridge is compiled into the test, which checks its file-local
 * error_status against what the codec's error callback answers. */
#include "proto/bridge.c"
#include "core/json.h"
#include "proto/anthropic.h"
#include "proto/kiro.h"
#include "proto/openai.h"
#include "proto/responses.h"
#include "core/sse.h"

#define DEFAULT_CREATED 1700000000
#define MAX_DOC_DEPTH 256

/* Each direction: its directory, the client's protocol, the provider's. */
static const struct {
    const char *name;
    agw_proto client, upstream;
} directions[] = {
    { "openai-to-anthropic", AGW_PROTO_OPENAI, AGW_PROTO_ANTHROPIC },
    { "anthropic-to-openai", AGW_PROTO_ANTHROPIC, AGW_PROTO_OPENAI },
    { "responses-to-anthropic", AGW_PROTO_RESPONSES, AGW_PROTO_ANTHROPIC },
    { "responses-to-openai", AGW_PROTO_RESPONSES, AGW_PROTO_OPENAI },
    { "anthropic-to-responses", AGW_PROTO_ANTHROPIC, AGW_PROTO_RESPONSES },
    { "openai-to-responses", AGW_PROTO_OPENAI, AGW_PROTO_RESPONSES },
    { "openai-to-kiro", AGW_PROTO_OPENAI, AGW_PROTO_KIRO },
    { "anthropic-to-kiro", AGW_PROTO_ANTHROPIC, AGW_PROTO_KIRO },
};

/* What Kiro cases encode with, so that upstream_request.json is fixed. */
#define GOLDEN_KIRO_ARN "arn:aws:codewhisperer:us-east-1:123456789012:profile/GOLDEN"
#define GOLDEN_KIRO_CONVERSATION "00000000-0000-4000-8000-000000000000"

typedef struct {
    char *dir;       /* the case directory */
    char *name;      /* "<direction>/<case>", the test's name */
    agw_proto client, upstream;
} golden_case;

/* One test's state: failures are counted and printed as they are found, and
 * the test fails once at the end, after everything has been freed (a failed
 * assertion would long-jump past the frees and make the leak checker fail
 * the whole program). */
typedef struct {
    const golden_case *gc;
    int failures;
} run;

/* ---- diagnostics ---- */

static void failf(run *r, const char *fmt, ...) AGW_PRINTF(2, 3);
static void failf(run *r, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->failures++;
    print_error("# %s: %s\n", r->gc->name, msg);
}

/* Prints a document (bytes as they are; control bytes as \xNN), each line
 * prefixed so a TAP reader takes it for a comment. */
static void print_doc(const char *label, agw_str s)
{
    agw_buf b = AGW_BUF_INIT(SIZE_MAX);
    int ok = agw_buf_appendf(&b, "#   %s: ", label) == AGW_OK;

    for (size_t i = 0; ok && i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '\n')
            ok = agw_buf_append(&b, AGW_CONST_STR_LEN("\n#     ")) == AGW_OK;
        else if (c < 0x20 && c != '\t')
            ok = agw_buf_appendf(&b, "\\x%02x", c) == AGW_OK;
        else
            ok = agw_buf_append(&b, &s.ptr[i], 1) == AGW_OK;
    }
    if (ok)
        print_error("%s\n", b.data ? b.data : "");
    agw_buf_free(&b);
}

/* ---- files ---- */

typedef struct {
    int present;
    char *data;  /* NUL-terminated; the length is the truth */
    size_t len;
} blob;

static agw_str blob_view(const blob *b)
{
    return (agw_str){ b->data ? b->data : "", b->len };
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Reads dir/name; absent files give present = 0. */
static void read_blob(run *r, const char *name, blob *out)
{
    char *path = path_join(r->gc->dir, name);
    FILE *f = fopen(path, "rb");
    agw_buf b = AGW_BUF_INIT(SIZE_MAX);
    char chunk[65536];
    size_t n;

    memset(out, 0, sizeof *out);
    if (!f) {
        free(path);
        return;
    }
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (agw_buf_append(&b, chunk, n) != AGW_OK)
            break;
    if (ferror(f))
        failf(r, "cannot read %s", path);
    fclose(f);
    free(path);
    out->present = 1;
    out->data = agw_buf_detach(&b, &out->len);
    if (!out->data)
        out->data = xstrdup("");
}

static void free_blob(blob *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static agw_str trim(agw_str s)
{
    while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t' || s.ptr[0] == '\r' || s.ptr[0] == '\n')) {
        s.ptr++;
        s.len--;
    }
    while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t' ||
                     s.ptr[s.len - 1] == '\r' || s.ptr[s.len - 1] == '\n'))
        s.len--;
    return s;
}

/* A status file: one integer. */
static int read_status(run *r, const char *name, int dflt)
{
    blob b;
    char tmp[32];
    char *end;
    long v;
    agw_str s;

    read_blob(r, name, &b);
    if (!b.present)
        return dflt;
    s = trim(blob_view(&b));
    if (s.len == 0 || s.len >= sizeof tmp) {
        failf(r, "%s: expected an HTTP status", name);
        free_blob(&b);
        return dflt;
    }
    memcpy(tmp, s.ptr, s.len);
    tmp[s.len] = '\0';
    v = strtol(tmp, &end, 10);
    if (*end || v < 100 || v > 999) {
        failf(r, "%s: expected an HTTP status, got '%s'", name, tmp);
        v = dflt;
    }
    free_blob(&b);
    return (int)v;
}

/* ---- JSON values ---- */

typedef struct {
    char path[512];
    char why[512];
} jdiff;

static void path_push(char *path, size_t *saved, const char *fmt, ...) AGW_PRINTF(3, 4);
static void path_push(char *path, size_t *saved, const char *fmt, ...)
{
    size_t len = strlen(path);
    va_list ap;

    *saved = len;
    if (len < 511) {
        va_start(ap, fmt);
        vsnprintf(path + len, 512 - len, fmt, ap);
        va_end(ap);
    }
}

/* A printable, shortened copy of decoded bytes, for messages. */
static const char *show(agw_str s, char *buf, size_t n)
{
    size_t o = 0, i;

    for (i = 0; i < s.len && o + 8 < n; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(buf + o, n - o, "\\x%02x", c);
        else
            buf[o++] = (char)c;
    }
    if (i < s.len && o + 4 <= n) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

static int decode_string(agw_str tok, agw_buf *out)
{
    agw_buf_init(out, SIZE_MAX);
    return agw_json_string_decode(tok, out) == AGW_OK;
}

/* A number token as text in buf (NUL-terminated), 0 when too long. */
static int num_text(agw_str v, char *buf, size_t n)
{
    v = trim(v);
    if (v.len >= n)
        return 0;
    memcpy(buf, v.ptr, v.len);
    buf[v.len] = '\0';
    return 1;
}

static int numbers_equal(agw_str a, agw_str b)
{
    char ta[128], tb[128];
    int64_t ia, ib;

    if (!num_text(a, ta, sizeof ta) || !num_text(b, tb, sizeof tb))
        return agw_str_eq(trim(a), trim(b));
    if (!strpbrk(ta, ".eE") && !strpbrk(tb, ".eE") && agw_json_int64(a, &ia) == AGW_OK &&
        agw_json_int64(b, &ib) == AGW_OK)
        return ia == ib;
    return strtod(ta, NULL) == strtod(tb, NULL);
}

typedef struct {
    agw_buf key;   /* decoded */
    agw_str value;
} member;

/* The members of an object; 0 (with why) when a key repeats or is malformed. */
static int members(agw_str obj, member **out, size_t *n, jdiff *d, const char *which)
{
    agw_json_iter it;
    agw_str k, v;
    size_t cap = 0;

    *out = NULL;
    *n = 0;
    if (agw_json_iter_init(&it, obj) != AGW_OK)
        return 0;
    while (agw_json_iter_next(&it, &k, &v)) {
        member *m;
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            *out = xrealloc(*out, cap * sizeof **out);
        }
        m = &(*out)[(*n)++];
        m->value = v;
        if (!decode_string(k, &m->key)) {
            snprintf(d->why, sizeof d->why, "malformed key in the %s document", which);
            return 0;
        }
        for (size_t i = 0; i + 1 < *n; i++)
            if (agw_str_eq(agw_buf_view(&(*out)[i].key), agw_buf_view(&m->key))) {
                char kb[128];
                snprintf(d->why, sizeof d->why, "key \"%s\" appears twice in the %s document",
                         show(agw_buf_view(&m->key), kb, sizeof kb), which);
                return 0;
            }
    }
    return 1;
}

static void free_members(member *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        agw_buf_free(&m[i].key);
    free(m);
}

static const char *type_name(agw_json_type t)
{
    switch (t) {
    case AGW_JSON_OBJECT: return "an object";
    case AGW_JSON_ARRAY: return "an array";
    case AGW_JSON_STRING: return "a string";
    case AGW_JSON_NUMBER: return "a number";
    case AGW_JSON_TRUE: return "true";
    case AGW_JSON_FALSE: return "false";
    case AGW_JSON_NULL: return "null";
    default: return "invalid";
    }
}

/* 1 when the values are equal; else 0 with the first difference in d. */
static int jequal(agw_str want, agw_str got, jdiff *d)
{
    agw_json_type tw = agw_json_type_of(want), tg = agw_json_type_of(got);
    char b1[160], b2[160];

    if (tw != tg) {
        snprintf(d->why, sizeof d->why, "expected %s, got %s", type_name(tw), type_name(tg));
        return 0;
    }
    switch (tw) {
    case AGW_JSON_TRUE:
    case AGW_JSON_FALSE:
    case AGW_JSON_NULL:
        return 1;
    case AGW_JSON_NUMBER:
        if (numbers_equal(want, got))
            return 1;
        snprintf(d->why, sizeof d->why, "expected %s, got %s",
                 show(trim(want), b1, sizeof b1), show(trim(got), b2, sizeof b2));
        return 0;
    case AGW_JSON_STRING: {
        agw_buf a, b;
        int ok = decode_string(want, &a) && decode_string(got, &b);
        agw_str w = agw_buf_view(&a), g = agw_buf_view(&b);
        /* "<generated:P>": an id the gateway makes up (random), P and more. */
        if (ok && w.len > 12 && agw_str_starts(w, AGW_STR_LIT("<generated:")) &&
            w.ptr[w.len - 1] == '>') {
            agw_str prefix = { w.ptr + 11, w.len - 12 };
            ok = g.len > prefix.len && agw_str_starts(g, prefix);
            if (!ok)
                snprintf(d->why, sizeof d->why, "expected an id starting with \"%s\", got \"%s\"",
                         show(prefix, b1, sizeof b1), show(g, b2, sizeof b2));
        } else if (ok && !agw_str_eq(agw_buf_view(&a), agw_buf_view(&b))) {
            snprintf(d->why, sizeof d->why, "expected \"%s\" (%zu bytes), got \"%s\" (%zu bytes)",
                     show(agw_buf_view(&a), b1, sizeof b1), a.len,
                     show(agw_buf_view(&b), b2, sizeof b2), b.len);
            ok = 0;
        } else if (!ok) {
            snprintf(d->why, sizeof d->why, "malformed string");
        }
        agw_buf_free(&a);
        agw_buf_free(&b);
        return ok;
    }
    case AGW_JSON_ARRAY: {
        agw_json_iter ia, ib;
        agw_str va, vb;
        size_t i = 0, saved;
        if (agw_json_iter_init(&ia, want) != AGW_OK || agw_json_iter_init(&ib, got) != AGW_OK)
            return 0;
        for (;; i++) {
            int ha = agw_json_iter_next(&ia, NULL, &va), hb = agw_json_iter_next(&ib, NULL, &vb);
            if (!ha && !hb)
                return 1;
            if (ha != hb) {
                size_t nw = i, ng = i;
                while (agw_json_iter_next(&ia, NULL, &va))
                    nw++;
                while (agw_json_iter_next(&ib, NULL, &vb))
                    ng++;
                snprintf(d->why, sizeof d->why, "expected %zu elements, got %zu",
                         nw + (size_t)ha, ng + (size_t)hb);
                return 0;
            }
            path_push(d->path, &saved, "[%zu]", i);
            if (!jequal(va, vb, d))
                return 0;
            d->path[saved] = '\0';
        }
    }
    case AGW_JSON_OBJECT: {
        member *ma = NULL, *mb = NULL;
        size_t na = 0, nb = 0, saved;
        int ok = members(want, &ma, &na, d, "expected") && members(got, &mb, &nb, d, "actual");
        for (size_t i = 0; ok && i < nb; i++) {
            size_t j;
            for (j = 0; j < na && !agw_str_eq(agw_buf_view(&ma[j].key), agw_buf_view(&mb[i].key));
                 j++)
                ;
            if (j == na) {
                snprintf(d->why, sizeof d->why, "unexpected key \"%s\"",
                         show(agw_buf_view(&mb[i].key), b1, sizeof b1));
                ok = 0;
            }
        }
        for (size_t i = 0; ok && i < na; i++) {
            size_t j;
            for (j = 0; j < nb && !agw_str_eq(agw_buf_view(&ma[i].key), agw_buf_view(&mb[j].key));
                 j++)
                ;
            if (j == nb) {
                snprintf(d->why, sizeof d->why, "missing key \"%s\"",
                         show(agw_buf_view(&ma[i].key), b1, sizeof b1));
                ok = 0;
                break;
            }
            path_push(d->path, &saved, ".%s", show(agw_buf_view(&ma[i].key), b1, sizeof b1));
            if (!jequal(ma[i].value, mb[j].value, d))
                ok = 0;
            else
                d->path[saved] = '\0';
        }
        free_members(ma, na);
        free_members(mb, nb);
        return ok;
    }
    default:
        snprintf(d->why, sizeof d->why, "not a JSON value");
        return 0;
    }
}

/* Compares two documents; on a difference prints why and both documents. */
static int check_json(run *r, const char *what, agw_str want, agw_str got)
{
    jdiff d;
    char verr[128];

    if (agw_json_validate(want, MAX_DOC_DEPTH, verr, sizeof verr) != AGW_OK) {
        failf(r, "%s: the expected document is not valid JSON (%s)", what, verr);
        return 0;
    }
    if (agw_json_validate(got, MAX_DOC_DEPTH, verr, sizeof verr) != AGW_OK) {
        failf(r, "%s: the gateway's output is not valid JSON (%s)", what, verr);
        print_doc("actual", got);
        return 0;
    }
    memset(&d, 0, sizeof d);
    strcpy(d.path, "$");
    if (jequal(want, got, &d))
        return 1;
    failf(r, "%s differs at %s: %s", what, d.path, d.why);
    print_doc("expected", trim(want));
    print_doc("actual  ", trim(got));
    return 0;
}

/* ---- SSE ---- */

typedef struct {
    agw_buf name, data;
} sse_ev;

typedef struct {
    sse_ev *v;
    size_t n, cap;
} sse_list;

static int collect_event(void *ud, const agw_sse_event *ev)
{
    sse_list *l = ud;
    sse_ev *e;

    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    e = &l->v[l->n++];
    agw_buf_init(&e->name, SIZE_MAX);
    agw_buf_init(&e->data, SIZE_MAX);
    return agw_buf_append_str(&e->name, ev->event) != AGW_OK ||
           agw_buf_append_str(&e->data, ev->data) != AGW_OK;
}

static void free_sse(sse_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        agw_buf_free(&l->v[i].name);
        agw_buf_free(&l->v[i].data);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Parses a whole stream; AGW_EPEER when it ends inside an event. */
static agw_err parse_sse(agw_str text, sse_list *out)
{
    agw_sse_parser p = AGW_SSE_PARSER_INIT(AGW_LIMIT_SSE_EVENT);
    agw_err e = agw_sse_feed(&p, text.ptr, text.len, collect_event, out);

    if (e == AGW_OK)
        e = agw_sse_finish(&p);
    agw_sse_free(&p);
    return e;
}

static void print_events(const char *label, const sse_list *l)
{
    agw_buf b = AGW_BUF_INIT(SIZE_MAX);
    int ok = 1;

    for (size_t i = 0; ok && i < l->n; i++) {
        if (l->v[i].name.len)
            ok = agw_buf_appendf(&b, "event: %.*s\n", (int)l->v[i].name.len,
                                 l->v[i].name.data) == AGW_OK;
        ok = ok && agw_buf_append(&b, AGW_CONST_STR_LEN("data: ")) == AGW_OK &&
             agw_buf_append_str(&b, agw_buf_view(&l->v[i].data)) == AGW_OK &&
             agw_buf_append(&b, "\n", 1) == AGW_OK;
    }
    if (ok)
        print_doc(label, agw_buf_view(&b));
    agw_buf_free(&b);
}

static void check_sse(run *r, agw_str want_text, agw_str got_text)
{
    sse_list want = { 0 }, got = { 0 };
    int before = r->failures;

    if (parse_sse(want_text, &want) != AGW_OK) {
        failf(r, "client_stream.sse: the expected stream does not parse (unterminated event?)");
        goto out;
    }
    if (parse_sse(got_text, &got) != AGW_OK) {
        failf(r, "the gateway's client stream ends inside an event");
        print_doc("actual", got_text);
        goto out;
    }
    for (size_t i = 0; i < want.n && i < got.n; i++) {
        agw_str wn = agw_buf_view(&want.v[i].name), gn = agw_buf_view(&got.v[i].name);
        agw_str wd = agw_buf_view(&want.v[i].data), gd = agw_buf_view(&got.v[i].data);
        char what[96];
        if (!agw_str_eq(wn, gn)) {
            failf(r, "client stream event %zu: expected event name '%.*s', got '%.*s'", i + 1,
                  (int)wn.len, wn.ptr, (int)gn.len, gn.ptr);
            break;
        }
        snprintf(what, sizeof what, "client stream event %zu (%s) data", i + 1,
                 wn.len ? want.v[i].name.data : "message");
        if (agw_str_eq(trim(wd), AGW_STR_LIT("[DONE]")) || agw_str_eq(trim(gd), AGW_STR_LIT("[DONE]"))) {
            if (!agw_str_eq(wd, gd)) {
                failf(r, "%s: expected '%.*s', got '%.*s'", what, (int)wd.len, wd.ptr, (int)gd.len,
                      gd.ptr);
                break;
            }
        } else if (!check_json(r, what, wd, gd)) {
            break;
        }
    }
    if (r->failures == before && want.n != got.n)
        failf(r, "client stream: expected %zu events, got %zu", want.n, got.n);
    if (r->failures != before) {
        print_events("expected stream", &want);
        print_events("actual stream  ", &got);
    }
out:
    free_sse(&want);
    free_sse(&got);
}

/* ---- the bridge, driven as the relay drives it ---- */

typedef struct {
    const agw_codec *c;
    agw_buf out;       /* everything the client would get */
    agw_buf converted; /* one event's output */
    agw_err err;
    size_t events, failed_at;
} feed;

static int feed_event(void *ud, const agw_sse_event *ev)
{
    feed *f = ud;
    agw_err e;

    f->events++;
    agw_buf_reset(&f->converted);
    e = f->c->event(f->c->ud, ev->event, ev->data, &f->converted);
    if (e == AGW_OK)
        e = agw_buf_append_str(&f->out, agw_buf_view(&f->converted));
    if (e != AGW_OK) {
        f->err = e;
        f->failed_at = f->events;
        return 1;
    }
    return 0;
}

typedef struct {
    int include_usage;
    agw_str model;
    int64_t created;
} bridge_opts;

/* Runs the upstream stream through a bridge; *body gets what the client
 * receives, *status the status finish reports. 0 when the bridge failed. */
/* The bridge fed an upstream answer: `upstream_sse` as a stream, or when
 * `whole` is set, as one non-streamed JSON body. */
static int run_bridge(run *r, agw_str upstream_sse, int whole, int client_stream,
                      const bridge_opts *o, const agw_ir_request *ir, agw_buf *body, int *status)
{
    agw_bridge *b = agw_bridge_new(r->gc->client, r->gc->upstream, client_stream,
                                   o->include_usage, o->model, o->created);
    if (ir)
        agw_bridge_set_request(b, ir);
    agw_sse_parser p = AGW_SSE_PARSER_INIT(AGW_LIMIT_SSE_EVENT);
    feed f = { agw_bridge_codec(b), AGW_BUF_INIT(AGW_LIMIT_UPSTREAM_BODY),
               AGW_BUF_INIT(AGW_LIMIT_UPSTREAM_BODY), AGW_OK, 0, 0 };
    const char *mode = client_stream ? "streaming client" : "non-streaming client";
    int ok = 0;
    agw_err e;

    *status = 0;
    if (whole) {
        e = f.c->response(f.c->ud, upstream_sse, &f.out, status);
        if (e != AGW_OK) {
            failf(r, "%s: the bridge refused upstream_response.json: %s", mode, agw_strerror(e));
            goto out;
        }
        goto done;
    }
    if (f.c->bytes) {
        /* A binary stream (Kiro): fed in small pieces, as reads may cut it. */
        for (size_t i = 0; i < upstream_sse.len; i += 7) {
            agw_buf_reset(&f.converted);
            size_t n = upstream_sse.len - i < 7 ? upstream_sse.len - i : 7;
            e = f.c->bytes(f.c->ud, upstream_sse.ptr + i, n, &f.converted);
            if (e == AGW_OK)
                e = agw_buf_append_str(&f.out, agw_buf_view(&f.converted));
            if (e != AGW_OK) {
                failf(r, "%s: the bridge rejected the stream at byte %zu: %s", mode, i,
                      agw_strerror(e));
                goto out;
            }
        }
        agw_buf_reset(&f.converted);
        e = f.c->finish(f.c->ud, &f.converted, status);
        agw_str msg;
        int early = f.c->early_error(f.c->ud, &msg);
        if (e == AGW_OK && early) {
            /* What the relay answers for an error before any output. */
            *status = early;
            agw_buf_reset(&f.out);
            e = agw_apierr_body(&f.out, r->gc->client, early, msg, NULL);
        } else if (e == AGW_OK) {
            e = agw_buf_append_str(&f.out, agw_buf_view(&f.converted));
        }
        if (e != AGW_OK) {
            failf(r, "%s: the bridge's finish failed: %s", mode, agw_strerror(e));
            goto out;
        }
        goto done;
    }
    e = agw_sse_feed(&p, upstream_sse.ptr, upstream_sse.len, feed_event, &f);
    if (e != AGW_OK) {
        failf(r, "%s: the SSE parser failed on upstream_stream.sse: %s", mode, agw_strerror(e));
        goto out;
    }
    if (f.err != AGW_OK) {
        failf(r, "%s: the bridge rejected upstream event %zu: %s", mode, f.failed_at,
              agw_strerror(f.err));
        goto out;
    }
    if (agw_sse_finish(&p) != AGW_OK) {
        failf(r, "upstream_stream.sse ends inside an event (test data error)");
        goto out;
    }
    agw_buf_reset(&f.converted);
    e = f.c->finish(f.c->ud, &f.converted, status);
    if (e == AGW_OK)
        e = agw_buf_append_str(&f.out, agw_buf_view(&f.converted));
    if (e != AGW_OK) {
        failf(r, "%s: the bridge's finish failed: %s", mode, agw_strerror(e));
        print_doc("output so far", agw_buf_view(&f.out));
        goto out;
    }
done:
    *body = f.out;
    f.out = (agw_buf)AGW_BUF_INIT(0);
    ok = 1;
out:
    agw_buf_free(&f.out);
    agw_buf_free(&f.converted);
    agw_sse_free(&p);
    agw_bridge_free(b);
    return ok;
}

/* ---- one case ---- */

static agw_err decode_request(agw_proto p, agw_str body, agw_arena *a, agw_ir_request *ir,
                              char *err, size_t errlen)
{
    if (p == AGW_PROTO_RESPONSES)
        return agw_responses_decode_request(body, a, ir, err, errlen);
    return p == AGW_PROTO_OPENAI ? agw_openai_decode_request(body, a, ir, err, errlen)
                                 : agw_anthropic_decode_request(body, a, ir, err, errlen);
}

static agw_err encode_request(agw_proto p, const agw_ir_request *ir, agw_buf *out, char *err,
                              size_t errlen)
{
    if (p == AGW_PROTO_RESPONSES)
        return agw_responses_encode_request(ir, out, err, errlen);
    agw_kiro_request_opts ko = { AGW_STR_LIT(GOLDEN_KIRO_ARN),
                                 AGW_STR_LIT(GOLDEN_KIRO_CONVERSATION) };
    return p == AGW_PROTO_OPENAI ? agw_openai_encode_request(ir, out, err, errlen)
           : p == AGW_PROTO_KIRO ? agw_kiro_encode_request(ir, &ko, out, err, errlen)
                                 : agw_anthropic_encode_request(ir, out, err, errlen);
}

static const char *proto_name(agw_proto p)
{
    return p == AGW_PROTO_OPENAI      ? "OpenAI"
           : p == AGW_PROTO_RESPONSES ? "Responses"
           : p == AGW_PROTO_KIRO      ? "Kiro"
                                      : "Anthropic";
}

/* upstream_events.txt -> the AWS event stream it describes: frames
 * separated by a blank line, each "<event type>\n<JSON payload>" or
 * "!<exception type>\n<JSON payload>" (an exception frame); a line
 * "#garbage" stands for bytes that are no frame. */
static agw_err kiro_frames(agw_str text, agw_buf *out)
{
    size_t off = 0;
    while (off < text.len) {
        const char *start = text.ptr + off, *sep = memmem(start, text.len - off, "\n\n", 2);
        size_t n = sep ? (size_t)(sep - start) : text.len - off;
        off += n + (sep ? 2 : 0);
        agw_str f = trim((agw_str){ start, n });
        if (!f.len)
            continue;
        if (agw_str_starts(f, AGW_STR_LIT("#garbage"))) {
            agw_err e = agw_buf_append_str(out, AGW_STR_LIT("<html>not a frame</html>"));
            if (e)
                return e;
            continue;
        }
        const char *nl = memchr(f.ptr, '\n', f.len);
        if (!nl)
            return AGW_EINVAL;
        agw_str name = { f.ptr, (size_t)(nl - f.ptr) }, payload = trim((agw_str){ nl + 1,
                                                                                 f.len - name.len - 1 });
        int exc = name.ptr[0] == '!';
        if (exc) {
            name.ptr++;
            name.len--;
        }
        agw_es_header h[3] = {
            { exc ? AGW_STR_LIT(":exception-type") : AGW_STR_LIT(":event-type"), AGW_ES_STRING, 0,
              name },
            { AGW_STR_LIT(":content-type"), AGW_ES_STRING, 0, AGW_STR_LIT("application/json") },
            { AGW_STR_LIT(":message-type"), AGW_ES_STRING, 0,
              exc ? AGW_STR_LIT("exception") : AGW_STR_LIT("event") },
        };
        agw_err e = agw_es_encode(out, h, 3, payload);
        if (e)
            return e;
    }
    return AGW_OK;
}

/* options.json -> o (defaults already in it). */
static void read_options(run *r, bridge_opts *o, agw_arena *a)
{
    blob b;
    agw_str doc, v;
    int64_t n;

    read_blob(r, "options.json", &b);
    if (!b.present)
        return;
    doc = blob_view(&b);
    if (agw_json_validate(doc, MAX_DOC_DEPTH, NULL, 0) != AGW_OK ||
        agw_json_type_of(doc) != AGW_JSON_OBJECT) {
        failf(r, "options.json: expected a JSON object");
        goto out;
    }
    if (agw_json_find(doc, AGW_STR_LIT("include_usage"), &v) == AGW_OK) {
        if (agw_json_is_true(v) || agw_json_is_false(v))
            o->include_usage = agw_json_is_true(v);
        else
            failf(r, "options.json: include_usage must be a boolean");
    }
    if (agw_json_find(doc, AGW_STR_LIT("created"), &v) == AGW_OK) {
        if (agw_json_int64(v, &n) == AGW_OK)
            o->created = n;
        else
            failf(r, "options.json: created must be an integer");
    }
    if (agw_json_find(doc, AGW_STR_LIT("model"), &v) == AGW_OK) {
        agw_buf m = AGW_BUF_INIT(SIZE_MAX);
        if (agw_json_type_of(v) == AGW_JSON_STRING && agw_json_string_decode(v, &m) == AGW_OK)
            o->model = agw_arena_str(a, agw_buf_view(&m));
        else
            failf(r, "options.json: model must be a string");
        agw_buf_free(&m);
    }
out:
    free_blob(&b);
}

/* expect_error: the request must be refused with AGW_EINVAL by the client's
 * decoder or the upstream's encoder, with a message holding the text. */
static void check_rejection(run *r, agw_str request, agw_str want)
{
    agw_arena arena = AGW_ARENA_INIT;
    agw_ir_request ir;
    agw_buf out = AGW_BUF_INIT(AGW_LIMIT_UPSTREAM_BODY);
    char err[512] = "";
    const char *stage = "decoding";
    agw_err e;

    want = trim(want);
    e = decode_request(r->gc->client, request, &arena, &ir, err, sizeof err);
    if (e == AGW_OK) {
        stage = "encoding";
        e = encode_request(r->gc->upstream, &ir, &out, err, sizeof err);
    }
    if (e == AGW_OK) {
        failf(r, "the request was accepted; expected a rejection mentioning '%.*s'",
              (int)want.len, want.ptr);
        print_doc("upstream request", agw_buf_view(&out));
    } else if (e != AGW_EINVAL) {
        failf(r, "%s failed with %s, expected AGW_EINVAL", stage, agw_strerror(e));
    } else if (!memmem(err, strlen(err), want.ptr, want.len)) {
        failf(r, "%s refused the request with \"%s\", which does not contain '%.*s'", stage, err,
              (int)want.len, want.ptr);
    }
    agw_buf_free(&out);
    agw_arena_free(&arena);
}

static void check_error(run *r, const bridge_opts *o, int client_stream)
{
    blob up, want;
    int status = read_status(r, "upstream_status", 0);
    int want_status = read_status(r, "client_status", 0);
    agw_buf out = AGW_BUF_INIT(AGW_LIMIT_UPSTREAM_BODY);
    agw_bridge *b;
    const agw_codec *c;
    int client_status = 0;
    agw_err e;

    read_blob(r, "upstream_error.json", &up);
    read_blob(r, "client_error.json", &want);
    if (!status || !want.present || !want_status) {
        failf(r, "upstream_error.json needs upstream_status, client_error.json and client_status");
        goto out;
    }
    b = agw_bridge_new(r->gc->client, r->gc->upstream, client_stream, o->include_usage, o->model,
                       o->created);
    c = agw_bridge_codec(b);
    e = c->error(c->ud, status, blob_view(&up), &client_status, &out);
    agw_bridge_free(b);
    if (e != AGW_OK) {
        failf(r, "the error callback failed: %s", agw_strerror(e));
        goto out;
    }
    if (client_status != want_status)
        failf(r, "upstream error %d: the client got status %d, expected %d", status,
              client_status, want_status);
    if (client_status != error_status(r->gc->client, status))
        failf(r, "the error callback's status %d is not error_status's %d", client_status,
              error_status(r->gc->client, status));
    check_json(r, "client_error.json", blob_view(&want), agw_buf_view(&out));
out:
    agw_buf_free(&out);
    free_blob(&up);
    free_blob(&want);
}

static void test_case(void **state)
{
    const golden_case *gc = *state;
    run r = { gc, 0 };
    blob request, upstream_req, reject, stream, want_stream, want_response, up_error, whole,
        events;
    agw_arena arena = AGW_ARENA_INIT;
    agw_ir_request ir;
    agw_buf upstream_body = AGW_BUF_INIT(AGW_LIMIT_UPSTREAM_BODY);
    bridge_opts o = { 0, { "", 0 }, DEFAULT_CREATED };
    int client_stream = 1, checks = 0;

    read_blob(&r, "client_request.json", &request);
    read_blob(&r, "upstream_request.json", &upstream_req);
    read_blob(&r, "expect_error", &reject);
    read_blob(&r, "upstream_stream.sse", &stream);
    read_blob(&r, "upstream_response.json", &whole);
    read_blob(&r, "client_stream.sse", &want_stream);
    read_blob(&r, "client_response.json", &want_response);
    read_blob(&r, "upstream_error.json", &up_error);
    read_blob(&r, "upstream_events.txt", &events);
    if (events.present) {
        /* Kiro's answer, described as text and framed here (kiro_frames). */
        agw_buf framed = AGW_BUF_INIT(AGW_LIMIT_UPSTREAM_BODY);
        if (stream.present || kiro_frames(blob_view(&events), &framed) != AGW_OK)
            failf(&r, "upstream_events.txt: not frames (or given with upstream_stream.sse)");
        free_blob(&stream);
        stream.present = 1;
        stream.data = agw_buf_detach(&framed, &stream.len);
    }

    if (reject.present) {
        checks++;
        if (!request.present)
            failf(&r, "expect_error needs client_request.json");
        else
            check_rejection(&r, blob_view(&request), blob_view(&reject));
        goto out;
    }

    if (request.present) {
        char err[512] = "";
        agw_err e = decode_request(gc->client, blob_view(&request), &arena, &ir, err, sizeof err);
        checks++;
        if (e != AGW_OK) {
            failf(&r, "the %s decoder refused client_request.json: %s (%s)",
                  proto_name(gc->client), agw_strerror(e), err);
            goto out;
        }
        /* The gateway puts the routed model name here; the cases route to
         * the name the client used. */
        o.model = agw_arena_str(&arena, ir.model);
        o.include_usage = ir.stream_usage;
        client_stream = ir.stream;
        e = encode_request(gc->upstream, &ir, &upstream_body, err, sizeof err);
        if (e != AGW_OK) {
            failf(&r, "the %s encoder refused the request: %s (%s)", proto_name(gc->upstream),
                  agw_strerror(e), err);
        } else if (upstream_req.present) {
            check_json(&r, "upstream_request.json", blob_view(&upstream_req),
                       agw_buf_view(&upstream_body));
        }
    } else if (upstream_req.present) {
        failf(&r, "upstream_request.json needs client_request.json");
    }
    read_options(&r, &o, &arena);

    if ((want_stream.present || want_response.present) && stream.present == whole.present)
        failf(&r, "client_stream.sse and client_response.json need upstream_stream.sse or "
                  "upstream_response.json (one of them)");
    int is_whole = whole.present;
    if (is_whole) {
        free_blob(&stream);
        stream = whole;
        memset(&whole, 0, sizeof whole);
    }
    if (stream.present && want_stream.present) {
        agw_buf got = AGW_BUF_INIT(0);
        int status;
        checks++;
        if (run_bridge(&r, blob_view(&stream), is_whole, 1, &o, request.present ? &ir : NULL, &got,
                       &status)) {
            if (status != 200)
                failf(&r, "streaming client: finish reported status %d", status);
            check_sse(&r, blob_view(&want_stream), agw_buf_view(&got));
        }
        agw_buf_free(&got);
    }
    if (stream.present && want_response.present) {
        agw_buf got = AGW_BUF_INIT(0);
        int status, want_status = read_status(&r, "client_response_status", 200);
        checks++;
        if (run_bridge(&r, blob_view(&stream), is_whole, 0, &o, request.present ? &ir : NULL, &got,
                       &status)) {
            if (status != want_status)
                failf(&r, "non-streaming client: status %d, expected %d", status, want_status);
            check_json(&r, "client_response.json", blob_view(&want_response),
                       agw_buf_view(&got));
        }
        agw_buf_free(&got);
    }
    if (up_error.present) {
        checks++;
        check_error(&r, &o, client_stream);
    }
    if (!checks)
        failf(&r, "the case has nothing to check");
out:
    agw_buf_free(&upstream_body);
    agw_arena_free(&arena);
    free_blob(&request);
    free_blob(&upstream_req);
    free_blob(&reject);
    free_blob(&stream);
    free_blob(&want_stream);
    free_blob(&want_response);
    free_blob(&up_error);
    free_blob(&whole);
    free_blob(&events);
    if (r.failures)
        fail_msg("%s: %d check(s) failed (details above)", gc->name, r.failures);
}

/* ---- discovery ---- */

static void test_no_cases(void **state)
{
    const char *root = *state;
    fail_msg("no golden cases found under %s", root);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *golden_root(void)
{
    const char *src = getenv("ANTIGW_SRCDIR");
    if (src && *src)
        return path_join(src, "tests/golden");
#ifdef ANTIGW_GOLDEN_DIR
    return xstrdup(ANTIGW_GOLDEN_DIR);
#else
    {
        /* .../tests/unit/test_golden.c -> .../tests/golden */
        char *p = xstrdup(__FILE__), *slash = strrchr(p, '/'), *res;
        if (!slash) {
            free(p);
            return xstrdup("../golden");
        }
        *slash = '\0';
        res = path_join(p, "../golden");
        free(p);
        return res;
    }
#endif
}

int main(void)
{
    char *root = golden_root();
    golden_case *cases = NULL;
    struct CMUnitTest *tests;
    size_t n = 0, cap = 0;
    int rc;

    for (size_t d = 0; d < sizeof directions / sizeof directions[0]; d++) {
        char *ddir = path_join(root, directions[d].name);
        DIR *dp = opendir(ddir);
        struct dirent *de;
        char **names = NULL;
        size_t nn = 0, ncap = 0;

        while (dp && (de = readdir(dp)) != NULL) {
            char *full;
            struct stat st;
            if (de->d_name[0] == '.')
                continue;
            full = path_join(ddir, de->d_name);
            if (stat(full, &st) == 0 && S_ISDIR(st.st_mode)) {
                if (nn == ncap) {
                    ncap = ncap ? ncap * 2 : 32;
                    names = xrealloc(names, ncap * sizeof *names);
                }
                names[nn++] = xstrdup(de->d_name);
            }
            free(full);
        }
        if (dp)
            closedir(dp);
        if (nn)
            qsort(names, nn, sizeof *names, cmp_names);
        for (size_t i = 0; i < nn; i++) {
            size_t len = strlen(directions[d].name) + strlen(names[i]) + 2;
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                cases = xrealloc(cases, cap * sizeof *cases);
            }
            cases[n].dir = path_join(ddir, names[i]);
            cases[n].name = xmalloc(len);
            snprintf(cases[n].name, len, "%s/%s", directions[d].name, names[i]);
            cases[n].client = directions[d].client;
            cases[n].upstream = directions[d].upstream;
            n++;
            free(names[i]);
        }
        free(names);
        free(ddir);
    }

    tests = xcalloc(n ? n : 1, sizeof *tests);
    for (size_t i = 0; i < n; i++) {
        tests[i].name = cases[i].name;
        tests[i].test_func = test_case;
        tests[i].initial_state = &cases[i];
    }
    if (n == 0) {
        tests[0].name = "golden_cases_present";
        tests[0].test_func = test_no_cases;
        tests[0].initial_state = root;
    }
    rc = _cmocka_run_group_tests("golden", tests, n ? n : 1, NULL, NULL);

    for (size_t i = 0; i < n; i++) {
        free(cases[i].dir);
        free(cases[i].name);
    }
    free(cases);
    free(tests);
    free(root);
    return rc;
}
