#include "core/eventstream.h"

#include <pthread.h>
#include <stdio.h>

#define PRELUDE_LEN 12u /* total length, headers length, prelude CRC */
#define MIN_FRAME 16u   /* the prelude and the message CRC */
#define FEED_SLICE (64u << 10) /* input taken into the buffer at a time */

static uint32_t crc_table[256];

static void crc_table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t agw_crc32(uint32_t crc, const void *p, size_t n)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, crc_table_init);
    const unsigned char *b = p;
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *b++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const unsigned char *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

void agw_es_decoder_init(agw_es_decoder *d, size_t max_frame)
{
    memset(d, 0, sizeof *d);
    d->max_frame = max_frame ? max_frame : AGW_ES_MAX_FRAME;
    /* A frame and the slice of input that completed it. */
    agw_buf_init(&d->buf, d->max_frame + FEED_SLICE);
}

void agw_es_decoder_free(agw_es_decoder *d)
{
    agw_buf_free(&d->buf);
}

const char *agw_es_why(const agw_es_decoder *d)
{
    return d->why;
}

static agw_err fail(agw_es_decoder *d, agw_err e, const char *why)
{
    d->failed = e;
    snprintf(d->why, sizeof d->why, "%s", why);
    return e;
}

/* The header block of one frame into d->headers. */
static agw_err parse_headers(agw_es_decoder *d, const unsigned char *p, size_t len, size_t *count)
{
    size_t i = 0, n = 0;
    while (i < len) {
        if (n == AGW_ES_MAX_HEADERS)
            return fail(d, AGW_EINVAL, "too many headers in a frame");
        agw_es_header *h = &d->headers[n];
        memset(h, 0, sizeof *h);
        size_t name_len = p[i++];
        if (name_len == 0 || len - i < name_len + 1)
            return fail(d, AGW_EINVAL, "header name runs past the header block");
        h->name = (agw_str){ (const char *)p + i, name_len };
        i += name_len;
        h->type = (agw_es_type)p[i++];
        size_t fixed = 0;
        switch (h->type) {
        case AGW_ES_TRUE: h->num = 1; break;
        case AGW_ES_FALSE: h->num = 0; break;
        case AGW_ES_BYTE: fixed = 1; break;
        case AGW_ES_SHORT: fixed = 2; break;
        case AGW_ES_INT: fixed = 4; break;
        case AGW_ES_LONG:
        case AGW_ES_TIMESTAMP: fixed = 8; break;
        case AGW_ES_UUID: fixed = 16; break;
        case AGW_ES_BYTES:
        case AGW_ES_STRING: {
            if (len - i < 2)
                return fail(d, AGW_EINVAL, "header value runs past the header block");
            size_t vlen = (size_t)p[i] << 8 | p[i + 1];
            i += 2;
            if (len - i < vlen)
                return fail(d, AGW_EINVAL, "header value runs past the header block");
            h->bytes = (agw_str){ (const char *)p + i, vlen };
            i += vlen;
            break;
        }
        default: return fail(d, AGW_EINVAL, "header of an unknown value type");
        }
        if (fixed) {
            if (len - i < fixed)
                return fail(d, AGW_EINVAL, "header value runs past the header block");
            const unsigned char *v = p + i;
            switch (h->type) {
            case AGW_ES_BYTE: h->num = (int8_t)v[0]; break;
            case AGW_ES_SHORT: h->num = (int16_t)(uint16_t)(v[0] << 8 | v[1]); break;
            case AGW_ES_INT: h->num = (int32_t)be32(v); break;
            case AGW_ES_UUID: h->bytes = (agw_str){ (const char *)v, 16 }; break;
            default: h->num = (int64_t)be64(v); break;
            }
            i += fixed;
        }
        n++;
    }
    *count = n;
    return AGW_OK;
}

/* The length of the complete frame at p (avail bytes), 0 while it is not
 * complete, or an error for a bad prelude. */
static agw_err frame_length(agw_es_decoder *d, const unsigned char *p, size_t avail, size_t *len)
{
    *len = 0;
    if (avail < PRELUDE_LEN)
        return AGW_OK;
    uint32_t total = be32(p), hlen = be32(p + 4);
    /* The prelude CRC first: garbage is refused before its "length" is believed. */
    if (agw_crc32(0, p, 8) != be32(p + 8))
        return fail(d, AGW_EINVAL, "prelude CRC mismatch");
    if (total < MIN_FRAME || hlen > total - MIN_FRAME)
        return fail(d, AGW_EINVAL, "frame lengths out of range");
    if (total > d->max_frame)
        return fail(d, AGW_ETOOBIG, "frame larger than the cap");
    if (avail >= total)
        *len = total;
    return AGW_OK;
}

/* Frames complete in the buffer go to the sink; returns the first error. */
static agw_err drain(agw_es_decoder *d, agw_es_sink sink, void *ud, int *stopped)
{
    size_t off = 0;
    agw_err e = AGW_OK;
    for (;;) {
        const unsigned char *f = (const unsigned char *)d->buf.data + off;
        size_t len;
        if ((e = frame_length(d, f, d->buf.len - off, &len)) != AGW_OK || !len)
            break;
        if (agw_crc32(0, f, len - 4) != be32(f + len - 4)) {
            e = fail(d, AGW_EINVAL, "message CRC mismatch");
            break;
        }
        size_t hlen = be32(f + 4), count = 0;
        if ((e = parse_headers(d, f + PRELUDE_LEN, hlen, &count)) != AGW_OK)
            break;
        agw_es_message m = { d->headers, count,
                             { (const char *)f + PRELUDE_LEN + hlen, len - MIN_FRAME - hlen } };
        off += len;
        if (sink(ud, &m)) {
            *stopped = 1;
            break;
        }
    }
    if (off)
        agw_buf_consume(&d->buf, off);
    return e;
}

agw_err agw_es_feed(agw_es_decoder *d, const char *p, size_t n, agw_es_sink sink, void *ud)
{
    if (d->failed)
        return d->failed;
    /* In slices, so that the buffer holds at most one frame and a slice
     * however much arrives at once. */
    int stopped = 0;
    do {
        size_t k = n < FEED_SLICE ? n : FEED_SLICE;
        if (k && agw_buf_append(&d->buf, p, k) != AGW_OK)
            return fail(d, AGW_ETOOBIG, "frame larger than the cap");
        p += k;
        n -= k;
        agw_err e = drain(d, sink, ud, &stopped);
        if (e)
            return e;
    } while (n && !stopped);
    /* A sink that stopped leaves the rest for the next feed. */
    if (n && agw_buf_append(&d->buf, p, n) != AGW_OK)
        return fail(d, AGW_ETOOBIG, "frame larger than the cap");
    return AGW_OK;
}

agw_err agw_es_finish(agw_es_decoder *d)
{
    if (d->failed)
        return d->failed;
    if (d->buf.len) {
        snprintf(d->why, sizeof d->why, "stream ended inside a frame");
        return AGW_EPEER;
    }
    return AGW_OK;
}

agw_str agw_es_header_str(const agw_es_message *m, agw_str name)
{
    for (size_t i = 0; i < m->n_headers; i++)
        if ((m->headers[i].type == AGW_ES_STRING || m->headers[i].type == AGW_ES_BYTES) &&
            agw_str_eq(m->headers[i].name, name))
            return m->headers[i].bytes;
    return (agw_str){ NULL, 0 };
}

static agw_err put_be(agw_buf *b, uint64_t v, int bytes)
{
    unsigned char x[8];
    for (int i = 0; i < bytes; i++)
        x[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    return agw_buf_append(b, x, (size_t)bytes);
}

agw_err agw_es_encode(agw_buf *out, const agw_es_header *headers, size_t n, agw_str payload)
{
    agw_buf h = AGW_BUF_INIT(out->max);
    agw_err e = AGW_OK;
    for (size_t i = 0; !e && i < n; i++) {
        const agw_es_header *x = &headers[i];
        if (x->name.len == 0 || x->name.len > 255) {
            e = AGW_EINVAL;
            break;
        }
        unsigned char t = (unsigned char)x->type;
        if (!(e = put_be(&h, x->name.len, 1)) && !(e = agw_buf_append_str(&h, x->name)))
            e = agw_buf_append(&h, &t, 1);
        if (e)
            break;
        switch (x->type) {
        case AGW_ES_TRUE:
        case AGW_ES_FALSE: break;
        case AGW_ES_BYTE: e = put_be(&h, (uint64_t)x->num, 1); break;
        case AGW_ES_SHORT: e = put_be(&h, (uint64_t)x->num, 2); break;
        case AGW_ES_INT: e = put_be(&h, (uint64_t)x->num, 4); break;
        case AGW_ES_LONG:
        case AGW_ES_TIMESTAMP: e = put_be(&h, (uint64_t)x->num, 8); break;
        case AGW_ES_UUID:
            e = x->bytes.len == 16 ? agw_buf_append_str(&h, x->bytes) : AGW_EINVAL;
            break;
        case AGW_ES_BYTES:
        case AGW_ES_STRING:
            if (x->bytes.len > 65535)
                e = AGW_EINVAL;
            else if (!(e = put_be(&h, x->bytes.len, 2)))
                e = agw_buf_append_str(&h, x->bytes);
            break;
        default: e = AGW_EINVAL;
        }
    }
    size_t total = MIN_FRAME + h.len + payload.len;
    if (!e && total > UINT32_MAX)
        e = AGW_ETOOBIG;
    size_t start = out->len;
    if (!e && !(e = put_be(out, total, 4)) && !(e = put_be(out, h.len, 4)))
        e = put_be(out, agw_crc32(0, out->data + start, 8), 4);
    if (!e && !(e = agw_buf_append_str(out, agw_buf_view(&h))) && !(e = agw_buf_append_str(out, payload)))
        e = put_be(out, agw_crc32(0, out->data + start, out->len - start), 4);
    agw_buf_free(&h);
    return e;
}
