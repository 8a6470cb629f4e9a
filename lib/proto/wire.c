/*
 * wire: the JSON reading and writing shared by the codecs. The contract is
 * in wire.h.
 */
#include "proto/wire.h"

#include "core/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

agw_err agw_wire_vfail(char *err, size_t errlen, const char *fmt, va_list ap)
{
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
    return AGW_EINVAL;
}

agw_err agw_wire_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    agw_wire_vfail(err, errlen, fmt, ap);
    va_end(ap);
    return AGW_EINVAL;
}

/* Appends p's segments to buf from *len on; *len counts what did not fit too. */
static void path_put(const agw_wire_path *p, char *buf, size_t n, size_t *len)
{
    int k;

    if (p->up)
        path_put(p->up, buf, n, len);
    size_t at = *len < n ? *len : n;
    if (p->name)
        k = snprintf(buf + at, n - at, "%s%s", p->up ? "." : "", p->name);
    else
        k = snprintf(buf + at, n - at, "[%zu]", p->index);
    if (k > 0)
        *len += (size_t)k;
}

const char *agw_wire_path_str(const agw_wire_path *p, char *buf, size_t n)
{
    size_t len = 0;

    if (n == 0)
        return buf;
    buf[0] = '\0';
    path_put(p, buf, n, &len);
    if (len >= n && n > 4)
        memcpy(buf + n - 4, "...", 4);
    return buf;
}

agw_err agw_wire_vfail_at(char *err, size_t errlen, const agw_wire_path *at, const char *fmt,
                          va_list ap)
{
    size_t k;

    if (!err || !errlen)
        return AGW_EINVAL;
    agw_wire_path_str(at, err, errlen);
    k = strlen(err);
    vsnprintf(err + k, errlen - k, fmt, ap);
    return AGW_EINVAL;
}

agw_err agw_wire_fail_at(char *err, size_t errlen, const agw_wire_path *at, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    agw_wire_vfail_at(err, errlen, at, fmt, ap);
    va_end(ap);
    return AGW_EINVAL;
}

const char *agw_wire_show(agw_str s, char *buf, size_t n)
{
    size_t i, lim = n > 4 ? n - 4 : 0;

    for (i = 0; i < s.len && i < lim; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        buf[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (i < s.len && n >= 4) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    if (n)
        buf[i < n ? i : n - 1] = '\0';
    return buf;
}

static int json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

agw_str agw_wire_trim(agw_str s)
{
    while (s.len && json_ws(s.ptr[0])) {
        s.ptr++;
        s.len--;
    }
    while (s.len && json_ws(s.ptr[s.len - 1]))
        s.len--;
    return s;
}

int agw_wire_given(agw_str v)
{
    return v.ptr != NULL && !agw_json_is_null(v);
}

int agw_wire_number(agw_str v, double *out)
{
    char small[64];
    char *p = small, *heap = NULL, *end;
    int ok;

    v = agw_wire_trim(v);
    if (agw_json_type_of(v) != AGW_JSON_NUMBER)
        return 0;
    /* strtod wants a C string; numbers that long are rare but valid JSON. */
    if (v.len >= sizeof small) {
        p = heap = agw_str_dup(v);
    } else {
        memcpy(small, v.ptr, v.len);
        small[v.len] = '\0';
    }
    *out = strtod(p, &end);
    ok = *end == '\0';
    free(heap);
    return ok;
}

int agw_wire_object(agw_str s)
{
    return s.len && agw_json_validate(s, AGW_WIRE_MAX_DEPTH, NULL, 0) == AGW_OK &&
           agw_json_type_of(s) == AGW_JSON_OBJECT;
}

agw_err agw_wire_string(agw_arena *a, agw_buf *scratch, agw_str tok, agw_str *out)
{
    agw_err e = agw_json_string_view(tok, scratch, out);

    if (e == AGW_OK && out->ptr != tok.ptr + 1)
        *out = agw_arena_str(a, *out);
    return e;
}

agw_err agw_wire_string_copy(agw_arena *a, agw_str tok, agw_str *out)
{
    agw_buf tmp = AGW_BUF_INIT(tok.len + 1);
    agw_str v;
    agw_err e = agw_json_string_view(tok, &tmp, &v);

    if (e == AGW_OK)
        *out = agw_arena_str(a, v);
    agw_buf_free(&tmp);
    return e;
}

agw_err agw_wire_make_id(agw_arena *a, agw_str prefix, agw_str id, agw_str *out)
{
    char hex[25];
    char *p;

    if (agw_str_starts(id, prefix)) {
        *out = agw_arena_str(a, id);
        return AGW_OK;
    }
    if (id.len == 0) {
        AGW_WIRE_TRY(agw_random_hex(hex, 12));
        id = (agw_str){ hex, 24 };
    }
    p = agw_arena_alloc(a, prefix.len + id.len + 1); /* zeroed: NUL-terminated */
    memcpy(p, prefix.ptr, prefix.len);
    memcpy(p + prefix.len, id.ptr, id.len);
    *out = (agw_str){ p, prefix.len + id.len };
    return AGW_OK;
}

agw_err agw_wire_put_jstr(agw_buf *b, agw_str s)
{
    AGW_WIRE_TRY(agw_buf_append(b, "\"", 1));
    AGW_WIRE_TRY(agw_buf_append_json_escaped(b, s));
    return agw_buf_append(b, "\"", 1);
}

agw_err agw_wire_put_sep(agw_buf *b, int *first)
{
    if (*first) {
        *first = 0;
        return AGW_OK;
    }
    return agw_buf_append(b, ",", 1);
}

void agw_wire_fmt_double(double v, char *buf, size_t n)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

agw_err agw_wire_put_double(agw_buf *b, double v)
{
    char s[40];

    if (!isfinite(v))
        return AGW_EINVAL;
    agw_wire_fmt_double(v, s, sizeof s);
    return agw_buf_append_str(b, agw_str_c(s));
}

agw_err agw_wire_rollback(agw_buf *out, size_t start, agw_err e)
{
    if (e != AGW_OK && e != AGW_ETOOBIG && out->len >= start) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
    }
    return e;
}

/* ---- reading a client request ---- */

agw_err agw_wire_want_str(agw_wire_reader *r, agw_str v, const agw_wire_path *at, agw_str *out)
{
    if (agw_json_type_of(v) != AGW_JSON_STRING ||
        agw_wire_string(r->arena, &r->scratch, v, out) != AGW_OK)
        return agw_wire_fail_at(r->err, r->errlen, at, ": expected a string");
    return AGW_OK;
}

agw_err agw_wire_need_str(agw_wire_reader *r, agw_str v, const agw_wire_path *at, agw_str *out)
{
    if (!agw_wire_given(v))
        return agw_wire_fail_at(r->err, r->errlen, at, ": required");
    return agw_wire_want_str(r, v, at, out);
}

agw_err agw_wire_want_bool(agw_wire_reader *r, agw_str v, const agw_wire_path *at, int *out)
{
    if (agw_json_is_true(v))
        *out = 1;
    else if (agw_json_is_false(v))
        *out = 0;
    else
        return agw_wire_fail_at(r->err, r->errlen, at, ": expected a boolean");
    return AGW_OK;
}

agw_err agw_wire_want_num(agw_wire_reader *r, agw_str v, const agw_wire_path *at, double *out)
{
    if (!agw_wire_number(v, out) || !isfinite(*out))
        return agw_wire_fail_at(r->err, r->errlen, at, ": expected a number");
    return AGW_OK;
}

agw_err agw_wire_want_int(agw_wire_reader *r, agw_str v, const agw_wire_path *at, int64_t *out)
{
    if (agw_json_type_of(v) != AGW_JSON_NUMBER || agw_json_int64(v, out) != AGW_OK)
        return agw_wire_fail_at(r->err, r->errlen, at, ": expected an integer");
    return AGW_OK;
}

agw_err agw_wire_decode_request(agw_wire_reader *r, agw_arena *arena, char *err, size_t errlen,
                                agw_str body, agw_ir_request *out,
                                agw_err (*members)(void *dec, agw_str body, agw_ir_request *out),
                                void *dec)
{
    char verr[96];
    agw_err e;

    agw_ir_request_init(out);
    r->arena = arena;
    agw_buf_init(&r->scratch, body.len + 1);
    r->err = err;
    r->errlen = errlen;
    if (err && errlen)
        err[0] = '\0';
    if (agw_json_validate(body, AGW_WIRE_MAX_DEPTH, verr, sizeof verr) != AGW_OK) {
        e = agw_wire_fail(err, errlen, "invalid JSON body: %s", verr);
    } else if (agw_json_type_of(body) != AGW_JSON_OBJECT) {
        e = agw_wire_fail(err, errlen, "the request body must be a JSON object");
    } else {
        agw_json_skips *skips = agw_json_skips_begin(body);
        e = members(dec, body, out);
        agw_json_skips_end(skips);
    }
    agw_buf_free(&r->scratch);
    return e;
}

agw_err agw_wire_read_sampling(agw_wire_reader *r, agw_str temperature, agw_str top_p,
                               agw_ir_request *out)
{
    if (agw_wire_given(temperature)) {
        AGW_WIRE_TRY(agw_wire_want_num(r, temperature, AGW_WIRE_NAME("temperature"),
                                       &out->temperature));
        if (out->temperature < 0 || out->temperature > 2)
            return agw_wire_fail(r->err, r->errlen, "temperature: must be between 0 and 2");
        out->has_temperature = 1;
    }
    if (agw_wire_given(top_p)) {
        AGW_WIRE_TRY(agw_wire_want_num(r, top_p, AGW_WIRE_NAME("top_p"), &out->top_p));
        if (out->top_p < 0 || out->top_p > 1)
            return agw_wire_fail(r->err, r->errlen, "top_p: must be between 0 and 1");
        out->has_top_p = 1;
    }
    return AGW_OK;
}

agw_wire_turn *agw_wire_turn_for(agw_arena *a, agw_wire_turns *t, agw_ir_role role)
{
    if (t->n && t->v[t->n - 1].role == role)
        return &t->v[t->n - 1];
    t->v = agw_wire_grow(a, t->v, t->n, &t->cap, sizeof *t->v);
    agw_wire_turn *m = &t->v[t->n++];
    memset(m, 0, sizeof *m);
    m->role = role;
    return m;
}

void agw_wire_turns_finish(agw_arena *a, const agw_wire_turns *t, agw_ir_request *out)
{
    out->messages = agw_arena_array(a, t->n ? t->n : 1, sizeof *out->messages);
    out->n_messages = t->n;
    for (size_t i = 0; i < t->n; i++) {
        const agw_wire_turn *m = &t->v[i];
        agw_ir_message *o = &out->messages[i];
        o->role = m->role;
        o->blocks = m->v;
        o->n_blocks = m->n;
        if (m->role != AGW_IR_USER)
            continue;
        int other = 0, reorder = 0;
        for (size_t b = 0; b < m->n; b++) {
            if (m->v[b].kind != AGW_IR_TOOL_RESULT)
                other = 1;
            else if (other)
                reorder = 1;
        }
        if (!reorder)
            continue;
        agw_ir_block *nv = agw_arena_array(a, m->n, sizeof *nv);
        size_t k = 0;
        for (size_t b = 0; b < m->n; b++)
            if (m->v[b].kind == AGW_IR_TOOL_RESULT)
                nv[k++] = m->v[b];
        for (size_t b = 0; b < m->n; b++)
            if (m->v[b].kind != AGW_IR_TOOL_RESULT)
                nv[k++] = m->v[b];
        o->blocks = nv;
    }
}

void *agw_wire_grow(agw_arena *a, void *old, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap)
        return old;
    *cap = *cap ? *cap * 2 : 4;
    void *p = agw_arena_array(a, *cap, elem);
    if (n)
        memcpy(p, old, n * elem);
    return p;
}

agw_wire_image agw_wire_image_url(agw_str url, agw_str *media_type, agw_str *data)
{
    static const agw_str b64 = AGW_STR_LIT(";base64");
    *media_type = *data = (agw_str){ NULL, 0 };
    if (url.len >= 5 && agw_str_eq_nocase((agw_str){ url.ptr, 5 }, AGW_STR_LIT("data:"))) {
        const char *comma = memchr(url.ptr, ',', url.len);
        if (!comma)
            return AGW_WIRE_IMAGE_BAD_DATA;
        agw_str head = { url.ptr + 5, (size_t)(comma - url.ptr) - 5 };
        if (head.len < b64.len ||
            !agw_str_eq_nocase((agw_str){ head.ptr + head.len - b64.len, b64.len }, b64))
            return AGW_WIRE_IMAGE_BAD_DATA;
        const char *semi = memchr(head.ptr, ';', head.len);
        agw_str mt = { head.ptr, (size_t)(semi - head.ptr) };
        agw_str d = { comma + 1, url.len - (size_t)(comma + 1 - url.ptr) };
        if (mt.len == 0 || d.len == 0)
            return AGW_WIRE_IMAGE_BAD_DATA;
        *media_type = mt;
        *data = d;
        return AGW_WIRE_IMAGE_DATA;
    }
    if ((url.len > 7 && agw_str_eq_nocase((agw_str){ url.ptr, 7 }, AGW_STR_LIT("http://"))) ||
        (url.len > 8 && agw_str_eq_nocase((agw_str){ url.ptr, 8 }, AGW_STR_LIT("https://")))) {
        *data = url;
        return AGW_WIRE_IMAGE_HTTP;
    }
    return AGW_WIRE_IMAGE_BAD;
}

agw_err agw_wire_w_fail(agw_wire_writer *w, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    agw_wire_vfail(err, errlen, fmt, ap);
    va_end(ap);
    if (w->e == AGW_OK)
        w->e = AGW_EINVAL;
    return w->e;
}
