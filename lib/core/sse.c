#include "core/sse.h"

#include <limits.h>

static const char sse_bom[3] = { '\xEF', '\xBB', '\xBF' };

void agw_sse_init(agw_sse_parser *p, size_t max_event_bytes)
{
    *p = (agw_sse_parser)AGW_SSE_PARSER_INIT(max_event_bytes);
}

void agw_sse_free(agw_sse_parser *p)
{
    agw_buf_free(&p->line);
    agw_buf_free(&p->data);
    agw_buf_free(&p->event);
    agw_buf_free(&p->id);
}

static agw_err sse_fail(agw_sse_parser *p, agw_err e)
{
    p->err = e;
    /* A failed parser is never fed again, so give the memory back now rather
     * than holding up to the limit until the stream is torn down. */
    agw_sse_free(p);
    return e;
}

/* Offset of the first c in s[from, len), or len. */
static size_t sse_find(const char *s, size_t from, size_t len, char c)
{
    const char *hit = from < len ? memchr(s + from, c, len - from) : NULL;
    return hit ? (size_t)(hit - s) : len;
}

static int sse_name_is(const char *name, size_t n, agw_str lit)
{
    return n == lit.len && memcmp(name, lit.ptr, n) == 0;
}

/* Per spec: digits only; anything else (sign, space, overflow) is ignored. */
static long sse_parse_retry(const char *v, size_t n)
{
    long r = 0;

    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned char)v[i] - (unsigned)'0';
        if (d > 9 || r > (LONG_MAX - (long)d) / 10)
            return -1;
        r = r * 10 + (long)d;
    }
    return r;
}

static agw_err sse_set(agw_buf *b, const char *v, size_t n)
{
    agw_buf_reset(b);
    return agw_buf_append(b, v, n);
}

static void sse_reset_event(agw_sse_parser *p)
{
    agw_buf_reset(&p->data);
    agw_buf_reset(&p->event);
    agw_buf_reset(&p->id);
    p->retry = -1;
    p->fields = 0;
    p->raw = 0;
}

static void sse_dispatch(agw_sse_parser *p, agw_sse_cb cb, void *ud)
{
    /* Every data line appended at least its "\n", so non-empty means "had data". */
    if (p->data.len > 0) {
        agw_sse_event ev = {
            .event = agw_buf_view(&p->event),
            .data = { p->data.data, p->data.len - 1 },
            .id = agw_buf_view(&p->id),
            .retry = p->retry,
            .raw_len = p->raw,
        };
        p->events++;
        if (cb) {
            int r = cb(ud, &ev);
            if (r)
                p->stop = r;
        }
    }
    sse_reset_event(p);
}

static agw_err sse_line(agw_sse_parser *p, const char *l, size_t n, agw_sse_cb cb, void *ud)
{
    const char *colon, *v;
    size_t name_len, vlen;

    if (n == 0) {
        sse_dispatch(p, cb, ud);
        return AGW_OK;
    }
    if (l[0] == ':') {
        p->comments++;
        return AGW_OK;
    }
    p->fields = 1;
    colon = memchr(l, ':', n);
    if (colon) {
        name_len = (size_t)(colon - l);
        v = colon + 1;
        vlen = n - name_len - 1;
        if (vlen > 0 && *v == ' ') {
            v++;
            vlen--;
        }
    } else {
        name_len = n;
        v = l + n;
        vlen = 0;
    }

    if (sse_name_is(l, name_len, AGW_STR_LIT("data"))) {
        agw_err e = agw_buf_append(&p->data, v, vlen);
        return e ? e : agw_buf_append(&p->data, "\n", 1);
    }
    if (sse_name_is(l, name_len, AGW_STR_LIT("event")))
        return sse_set(&p->event, v, vlen);
    if (sse_name_is(l, name_len, AGW_STR_LIT("id")))
        return vlen && memchr(v, '\0', vlen) ? AGW_OK : sse_set(&p->id, v, vlen);
    if (sse_name_is(l, name_len, AGW_STR_LIT("retry"))) {
        long r = sse_parse_retry(v, vlen);
        if (r >= 0)
            p->retry = p->last_retry = r;
    }
    return AGW_OK;
}

/* The line splitter. raw only ever grows by bytes consumed and is checked
 * before any line is acted on, so the limit trips at the same logical point
 * however the input is split. */
static agw_err sse_lines(agw_sse_parser *p, const char *s, size_t len, agw_sse_cb cb, void *ud)
{
    size_t pos = 0, lf, cr;
    agw_err e;

    /* Both next-occurrence offsets are cached and only searched again once
     * passed, so a stream that uses only one kind of line end does not rescan
     * for the other on every line. */
    lf = sse_find(s, 0, len, '\n');
    cr = sse_find(s, 0, len, '\r');
    while (pos < len) {
        size_t eol, n;
        const char *line;

        if (p->skip_lf) {
            p->skip_lf = 0;
            if (s[pos] == '\n') {
                if (p->raw >= p->max)
                    return sse_fail(p, AGW_ETOOBIG);
                p->raw++;
                pos++;
                continue;
            }
        }
        if (lf < pos)
            lf = sse_find(s, pos, len, '\n');
        if (cr < pos)
            cr = sse_find(s, pos, len, '\r');
        eol = lf < cr ? lf : cr;

        if (eol == len) {
            n = len - pos;
            if (n > p->max - p->raw)
                return sse_fail(p, AGW_ETOOBIG);
            p->raw += n;
            if ((e = agw_buf_append(&p->line, s + pos, n)) != AGW_OK)
                return sse_fail(p, e);
            return AGW_OK;
        }

        n = eol - pos;
        if (n + 1 > p->max - p->raw)
            return sse_fail(p, AGW_ETOOBIG);
        p->raw += n + 1;
        line = s + pos;
        if (p->line.len > 0) {
            if ((e = agw_buf_append(&p->line, line, n)) != AGW_OK)
                return sse_fail(p, e);
            line = p->line.data;
            n = p->line.len;
        }
        p->skip_lf = s[eol] == '\r';
        pos = eol + 1;
        if ((e = sse_line(p, line, n, cb, ud)) != AGW_OK)
            return sse_fail(p, e);
        agw_buf_reset(&p->line);
        if (p->stop)
            return AGW_OK;
    }
    return AGW_OK;
}

agw_err agw_sse_feed(agw_sse_parser *p, const char *bytes, size_t len, agw_sse_cb cb, void *ud)
{
    if (p->err)
        return p->err;
    if (p->stop)
        return AGW_OK;

    while (p->bom < 3 && len > 0) {
        if (*bytes == sse_bom[p->bom]) {
            p->bom++;
            bytes++;
            len--;
        } else {
            /* Not a BOM after all: the bytes held back so far are exactly its
             * first p->bom bytes, so they can be replayed from the constant. */
            size_t held = p->bom;
            p->bom = 3;
            if (held) {
                agw_err e = sse_lines(p, sse_bom, held, cb, ud);
                if (e || p->stop)
                    return e;
            }
        }
    }
    return len ? sse_lines(p, bytes, len, cb, ud) : AGW_OK;
}

agw_err agw_sse_finish(const agw_sse_parser *p)
{
    if (p->err)
        return p->err;
    if (p->stop)
        return AGW_OK;
    if ((p->bom > 0 && p->bom < 3) || p->line.len > 0 || p->fields)
        return AGW_EPEER;
    return AGW_OK;
}

/* ---- writer ---- */

/* Appends `name` then one line per line of text (CRLF, CR and LF all break). */
static agw_err sse_put_lines(agw_buf *out, agw_str name, agw_str text)
{
    const char *s = text.ptr;
    size_t len = text.len, pos = 0, lf, cr;
    agw_err e;

    lf = sse_find(s, 0, len, '\n');
    cr = sse_find(s, 0, len, '\r');
    for (;;) {
        size_t eol;

        if (lf < pos)
            lf = sse_find(s, pos, len, '\n');
        if (cr < pos)
            cr = sse_find(s, pos, len, '\r');
        eol = lf < cr ? lf : cr;
        if ((e = agw_buf_append_str(out, name)) != AGW_OK)
            return e;
        if (eol > pos) {
            if ((e = agw_buf_append(out, " ", 1)) != AGW_OK ||
                (e = agw_buf_append(out, s + pos, eol - pos)) != AGW_OK)
                return e;
        }
        if ((e = agw_buf_append(out, "\n", 1)) != AGW_OK)
            return e;
        if (eol == len)
            return AGW_OK;
        pos = eol + 1;
        if (s[eol] == '\r' && pos < len && s[pos] == '\n')
            pos++;
    }
}

static int sse_has_eol(agw_str s)
{
    return s.len && (memchr(s.ptr, '\n', s.len) || memchr(s.ptr, '\r', s.len));
}

agw_err agw_sse_write_event(agw_buf *out, const agw_sse_event *ev)
{
    agw_err e;

    if (sse_has_eol(ev->event) || sse_has_eol(ev->id) ||
        (ev->id.len && memchr(ev->id.ptr, '\0', ev->id.len)))
        return AGW_EINVAL;
    /* Single-line fields go through the same writer; they have one line. */
    if (ev->event.len && (e = sse_put_lines(out, AGW_STR_LIT("event:"), ev->event)) != AGW_OK)
        return e;
    if (ev->id.len && (e = sse_put_lines(out, AGW_STR_LIT("id:"), ev->id)) != AGW_OK)
        return e;
    if (ev->retry >= 0) {
        char num[24];
        size_t i = sizeof(num);
        unsigned long r = (unsigned long)ev->retry;
        do
            num[--i] = (char)('0' + r % 10);
        while ((r /= 10) != 0);
        if ((e = sse_put_lines(out, AGW_STR_LIT("retry:"), (agw_str){ num + i, sizeof(num) - i })) != AGW_OK)
            return e;
    }
    if ((e = sse_put_lines(out, AGW_STR_LIT("data:"), ev->data)) != AGW_OK)
        return e;
    return agw_buf_append(out, "\n", 1);
}

agw_err agw_sse_write(agw_buf *out, agw_str event, agw_str data)
{
    agw_sse_event ev = { .event = event, .data = data, .id = { "", 0 }, .retry = -1 };
    return agw_sse_write_event(out, &ev);
}

agw_err agw_sse_write_comment(agw_buf *out, agw_str text)
{
    return sse_put_lines(out, AGW_STR_LIT(":"), text);
}
