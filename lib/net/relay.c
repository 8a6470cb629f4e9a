#include "net/relay.h"
#include "core/json.h"
#include "core/sse.h"
#include "proto/apierr.h"

#include <stdio.h>

/* How often the relay asks the sink whether the client left while the upstream
 * keeps sending; between chunks a poll() per callback would be waste. */
#define GONE_CHECK_US 200000u

typedef enum { MODE_UNDECIDED = 0, MODE_STREAM, MODE_BODY, MODE_ERROR } agw_relay_mode;

typedef struct {
    agw_upstream *u;
    const agw_relay_req *rq;
    const agw_relay_sink *sink;
    agw_relay_result *res;

    agw_relay_mode mode;
    /* The codec the answer goes through: rq->codec, or rq->reshape once the
     * upstream answered in the form the client did not ask for. */
    const agw_codec *codec;
    size_t stream_bytes;    /* upstream bytes of a streamed answer so far */
    int committed;          /* the client's head is out */
    int saw_end;            /* the upstream's terminal event ([DONE] / message_stop) */
    int saw_error_event;    /* the upstream ended the stream with its own error event */
    int saw_terminal;       /* a [DONE], message_stop or response.completed (hold_final) */
    size_t events_in_chunk;
    uint64_t start_us, last_write_us, last_gone_check_us;
    agw_sse_parser sse;
    agw_buf body;           /* MODE_BODY / MODE_ERROR: the collected answer */
    agw_buf scratch;        /* head lines and error events we write */
    agw_buf converted;      /* codec output for the event being relayed */
    agw_buf pending;        /* passthrough: upstream bytes after the last complete event */
    int codec_failed;       /* the codec rejected the upstream's stream */
    int binary;             /* the stream goes through codec->bytes (codec.h) */
    int early_status;       /* codec->early_error, when it stopped the call for failover */
    int stop_status;        /* the status a stopped call answers, when not 502 */
    int64_t next_seq;       /* Responses client: the sequence_number an error event of ours takes */
} agw_relay_call;

/* 1 when every byte of name is an RFC 9110 token character (section 5.6.2:
 * "!#$%&'*+-.^_`|~", digits and letters) and there is at least one. A name
 * with anything else (a space, a colon, a bare CR, a byte above 0x7f) could
 * split or forge a header line on its way to the client. */
static int header_name_is_token(agw_str name)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (name.len == 0)
        return 0;
    for (size_t i = 0; i < name.len; i++) {
        unsigned char c = (unsigned char)name.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c && memchr(extra, c, sizeof extra - 1))))
            return 0;
    }
    return 1;
}

/* Response headers from the upstream that the client may see: retry-after,
 * request ids and rate-limit information. Header names are matched
 * case-insensitively and must be tokens; values with control characters are
 * dropped. */
static int header_passes(agw_str name, agw_str value)
{
    static const agw_str exact[] = { AGW_STR_LIT("retry-after"), AGW_STR_LIT("retry-after-ms"),
                                     AGW_STR_LIT("x-request-id"), AGW_STR_LIT("request-id"),
                                     AGW_STR_LIT("openai-processing-ms") };
    static const agw_str prefixes[] = { AGW_STR_LIT("x-ratelimit-"),
                                        AGW_STR_LIT("anthropic-ratelimit-") };
    if (!header_name_is_token(name) || agw_str_has_ctl(value, 1) || value.len > 1024)
        return 0;
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (agw_str_eq_nocase(name, exact[i]))
            return 1;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (name.len > prefixes[i].len &&
            agw_str_eq_nocase((agw_str){ name.ptr, prefixes[i].len }, prefixes[i]))
            return 1;
    return 0;
}

/* The client's head: our extra lines plus the upstream headers that pass. */
static agw_err send_head(agw_relay_call *r, int status, const char *content_type, int with_upstream)
{
    agw_buf *h = &r->scratch;
    agw_buf_reset(h);
    agw_err e = agw_buf_append_str(h, r->rq->response_headers);
    if (!e && content_type && agw_str_starts(agw_str_c(content_type), AGW_STR_LIT("text/event-stream")))
        e = agw_buf_append_str(h, AGW_STR_LIT("Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n"));
    agw_str name, value;
    for (size_t i = 0; !e && with_upstream && agw_upstream_header_at(r->u, i, &name, &value); i++) {
        if (!header_passes(name, value))
            continue;
        if (r->rq->own_ratelimit_headers && name.len > 12 &&
            agw_str_eq_nocase((agw_str){ name.ptr, 12 }, AGW_STR_LIT("x-ratelimit-")))
            continue;
        if (!(e = agw_buf_append_str(h, name)) && !(e = agw_buf_append(h, ": ", 2)) &&
            !(e = agw_buf_append_str(h, value)))
            e = agw_buf_append(h, "\r\n", 2);
    }
    if (e)
        return e;
    r->committed = 1;
    r->res->status = status;
    r->last_write_us = agw_mono_us();
    return r->sink->head(r->sink->ud, status, content_type, agw_buf_view(h));
}

static agw_err client_write(agw_relay_call *r, const char *p, size_t n)
{
    agw_err e = r->sink->write(r->sink->ud, p, n);
    if (!e) {
        r->res->bytes_out += n;
        r->last_write_us = agw_mono_us();
    }
    return e;
}

/* A whole JSON error response made by the gateway, before anything was sent. */
static void send_error(agw_relay_call *r, int status, agw_str message, int with_upstream)
{
    agw_buf body = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    if (agw_apierr_body(&body, r->rq->proto, status, message, NULL) == AGW_OK &&
        send_head(r, status, "application/json", with_upstream) == AGW_OK)
        (void)client_write(r, body.data, body.len);
    agw_buf_free(&body);
}

/* The end of a stream that did not end well: one error event, flushed. */
static void send_error_event(agw_relay_call *r, int status, agw_str message)
{
    agw_buf ev = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    if (agw_apierr_sse_numbered(&ev, r->rq->proto, status, message, r->next_seq) == AGW_OK &&
        client_write(r, ev.data, ev.len) == AGW_OK)
        (void)r->sink->flush(r->sink->ud);
    agw_buf_free(&ev);
}

/* An OpenAI Responses event's type: its `event:` name, or the data's "type"
 * for a server that sends no names. */
static agw_str responses_event_type(const agw_sse_event *ev)
{
    agw_str v;
    if (ev->event.len)
        return ev->event;
    if (ev->data.len > 9 && ev->data.ptr[0] == '{' &&
        agw_json_validate(ev->data, 64, NULL, 0) == AGW_OK &&
        agw_json_find(ev->data, AGW_STR_LIT("type"), &v) == AGW_OK &&
        agw_json_type_of(v) == AGW_JSON_STRING)
        return (agw_str){ v.ptr + 1, v.len - 2 };
    return (agw_str){ NULL, 0 };
}

/* The sequence_number after the last one in `p` (the numbered events
 * written to a Responses client); `prev` when there is none. */
static int64_t seq_after(const char *p, size_t n, int64_t prev)
{
    static const char key[] = "\"sequence_number\":";
    const char *last = NULL;
    for (const char *q = p; q && (size_t)(q - p) + sizeof key - 1 <= n;) {
        q = memmem(q, n - (size_t)(q - p), key, sizeof key - 1);
        if (q)
            last = q++;
    }
    if (!last)
        return prev;
    int64_t v = 0;
    for (const char *d = last + sizeof key - 1; d < p + n && *d >= '0' && *d <= '9'; d++)
        v = v < INT64_MAX / 10 ? v * 10 + (*d - '0') : v;
    return v + 1;
}

static int on_event(void *ud, const agw_sse_event *ev)
{
    agw_relay_call *r = ud;
    r->events_in_chunk++;
    r->res->events++;
    if (r->rq->tap && r->rq->tap->event && !r->codec) /* a codec reads its own (relay.h) */
        r->rq->tap->event(r->rq->tap->ud, ev->event, ev->data);
    agw_str rtype = r->rq->proto == AGW_PROTO_RESPONSES ? responses_event_type(ev)
                                                         : (agw_str){ NULL, 0 };
    int responses_end = agw_str_eq(rtype, AGW_STR_LIT("response.completed")) ||
                        agw_str_eq(rtype, AGW_STR_LIT("response.incomplete"));
    if (agw_str_eq(ev->event, AGW_STR_LIT("message_stop")) ||
        agw_str_eq(ev->data, AGW_STR_LIT("[DONE]")) || responses_end)
        r->saw_terminal = 1;
    if (r->codec) {
        const agw_codec *c = r->codec;
        agw_buf_reset(&r->converted);
        agw_err e = c->event(c->ud, ev->event, ev->data, &r->converted);
        if (e) {
            r->codec_failed = 1;
            snprintf(r->res->detail, sizeof r->res->detail,
                     "upstream stream could not be converted: %s", agw_strerror(e));
            return 1;
        }
        if (r->converted.len && r->rq->stream &&
            client_write(r, r->converted.data, r->converted.len))
            return 1;
        if (r->rq->proto == AGW_PROTO_RESPONSES)
            r->next_seq = seq_after(r->converted.data, r->converted.len, r->next_seq);
    } else if (r->rq->proto == AGW_PROTO_RESPONSES) {
        r->next_seq = seq_after(ev->data.ptr, ev->data.len, r->next_seq);
    }
    if (r->rq->proto == AGW_PROTO_RESPONSES) {
        if (responses_end)
            r->saw_end = 1;
        else if (agw_str_eq(rtype, AGW_STR_LIT("response.failed")) ||
                 agw_str_eq(rtype, AGW_STR_LIT("error")))
            r->saw_error_event = 1;
    } else if (r->rq->proto == AGW_PROTO_ANTHROPIC) {
        if (agw_str_eq(ev->event, AGW_STR_LIT("message_stop")))
            r->saw_end = 1;
        else if (agw_str_eq(ev->event, AGW_STR_LIT("error")))
            r->saw_error_event = 1;
    } else if (agw_str_eq(ev->data, AGW_STR_LIT("[DONE]"))) {
        r->saw_end = 1;
    } else if (ev->data.len > 9 && ev->data.ptr[0] == '{' &&
               memmem(ev->data.ptr, ev->data.len, "\"error\"", 7)) {
        /* OpenAI-compatible servers report mid-stream failures as {"error":...}.
         * The scan is for events that spell the name out (all of them in
         * practice): the others are not walked member by member. */
        agw_str v;
        if (agw_json_find(ev->data, AGW_STR_LIT("error"), &v) == AGW_OK)
            r->saw_error_event = 1;
    }
    return 0;
}

/* The length of p up to and including the end of its last blank line (the
 * end of an SSE event), or 0. A blank line can only end an event: event
 * fields cannot hold raw line breaks. */
static size_t complete_events_len(const char *p, size_t n)
{
    for (size_t i = n; i-- > 1;) {
        if (p[i] == '\n') {
            if (p[i - 1] == '\n' || (i >= 2 && p[i - 1] == '\r' && (p[i - 2] == '\n' || p[i - 2] == '\r')))
                return i + 1;
        } else if (p[i] == '\r' && p[i - 1] == '\r') {
            return i + 1;
        }
    }
    return 0;
}

/* OpenAI's usage chunk: a data object with an empty `choices` and a `usage`
 * object. This runs for every event of such a stream, so the cheap tests go
 * first (the scanners stay within the bytes whatever they hold), and only a
 * candidate is validated. */
static int is_usage_chunk(agw_str data)
{
    agw_str choices, usage, k, v;
    agw_json_iter it;
    return data.len >= 2 && data.ptr[0] == '{' &&
           agw_json_find(data, AGW_STR_LIT("usage"), &usage) == AGW_OK &&
           agw_json_type_of(usage) == AGW_JSON_OBJECT &&
           agw_json_find(data, AGW_STR_LIT("choices"), &choices) == AGW_OK &&
           agw_json_type_of(choices) == AGW_JSON_ARRAY &&
           agw_json_iter_init(&it, choices) == AGW_OK && !agw_json_iter_next(&it, &k, &v) &&
           agw_json_validate(data, 64, NULL, 0) == AGW_OK;
}

/* The length of the first event of p (through the blank line that ends it),
 * 0 when none ends in p, and in *data the value of its one `data:` line
 * (empty view when it has none or several). */
static size_t first_event(const char *p, size_t n, agw_str *data)
{
    size_t line = 0;
    int n_data = 0;
    *data = (agw_str){ NULL, 0 };
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n' && p[i] != '\r')
            continue;
        size_t end = i;
        if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
            i++;
        else if (p[i] == '\r' && i + 1 == n)
            return 0; /* a CR that a LF may follow in the next chunk */
        if (end == line)
            return i + 1;
        agw_str l = { p + line, end - line };
        if (agw_str_starts(l, AGW_STR_LIT("data:"))) {
            l.ptr += 5;
            l.len -= 5;
            if (l.len && l.ptr[0] == ' ') {
                l.ptr++;
                l.len--;
            }
            *data = n_data++ ? (agw_str){ NULL, 0 } : l;
        }
        line = i + 1;
    }
    return 0;
}

/* Writes complete events to the client; with rq->drop_usage_chunk, without
 * OpenAI's usage chunk (the gateway asked for it, the client did not). */
static agw_err write_events(agw_relay_call *r, const char *p, size_t n)
{
    if (!r->rq->drop_usage_chunk)
        return client_write(r, p, n);
    while (n) {
        agw_str data;
        size_t len = first_event(p, n, &data);
        if (!len)
            return client_write(r, p, n);
        if (!is_usage_chunk(data)) {
            agw_err e = client_write(r, p, len);
            if (e)
                return e;
        }
        p += len;
        n -= len;
    }
    return AGW_OK;
}

/* Passthrough: forwards whole events only, so that when the upstream breaks
 * in the middle of one, the client never sees half an event glued to the
 * error event that follows. */
static int forward_complete_events(agw_relay_call *r, const char *p, size_t n)
{
    if (r->pending.len == 0) {
        size_t done = complete_events_len(p, n);
        if (done && write_events(r, p, done))
            return 1;
        p += done;
        n -= done;
        if (n && agw_buf_append(&r->pending, p, n))
            goto too_big;
        return 0;
    }
    if (agw_buf_append(&r->pending, p, n))
        goto too_big;
    size_t done = complete_events_len(r->pending.data, r->pending.len);
    if (done) {
        if (write_events(r, r->pending.data, done))
            return 1;
        agw_buf_consume(&r->pending, done);
    }
    return 0;
too_big:
    snprintf(r->res->detail, sizeof r->res->detail, "upstream SSE event over %u bytes",
             AGW_LIMIT_SSE_EVENT);
    return 1;
}

/* The same-protocol codec for an answer in the other form (relay.h), made
 * now; NULL when the call has none. Called at most once per run: the result
 * becomes r->codec. */
static const agw_codec *reshape_codec(agw_relay_call *r)
{
    const agw_relay_lazy_codec *lazy = r->rq->reshape;
    return lazy && lazy->make ? lazy->make(lazy->ud) : NULL;
}

static int is_event_stream(agw_str ct)
{
    return ct.ptr && ct.len >= 17 && agw_str_eq_nocase((agw_str){ ct.ptr, 17 },
                                                       AGW_STR_LIT("text/event-stream"));
}

/* 1 (with the reason in res->detail) when a streamed answer has gone past
 * rq->max_stream_bytes or lasted past rq->max_stream_ms: an upstream that
 * never ends must not hold a worker (or fill a client) for ever. */
static int stream_over_limit(agw_relay_call *r)
{
    const agw_relay_req *rq = r->rq;
    if (r->mode != MODE_STREAM)
        return 0;
    if (rq->max_stream_bytes && r->stream_bytes > rq->max_stream_bytes) {
        snprintf(r->res->detail, sizeof r->res->detail,
                 "streamed answer stopped: over %lu bytes", (unsigned long)rq->max_stream_bytes);
        return 1;
    }
    if (rq->max_stream_ms > 0 && agw_mono_us() - r->start_us > (uint64_t)rq->max_stream_ms * 1000u) {
        snprintf(r->res->detail, sizeof r->res->detail,
                 "streamed answer stopped: longer than %ld s", rq->max_stream_ms / 1000);
        return 1;
    }
    return 0;
}

/* Bytes of a stream that is not SSE, through the codec (codec.h `bytes`). */
static int on_binary(agw_relay_call *r, const char *p, size_t n)
{
    const agw_codec *c = r->codec;
    agw_buf_reset(&r->converted);
    agw_err e = c->bytes(c->ud, p, n, &r->converted);
    if (e) {
        r->codec_failed = 1;
        snprintf(r->res->detail, sizeof r->res->detail,
                 "upstream stream could not be converted: %s", agw_strerror(e));
        return 1;
    }
    agw_str msg;
    int early = c->early_error ? c->early_error(c->ud, &msg) : 0;
    if (early && !r->committed && r->rq->may_retry && (early == 429 || early >= 500)) {
        r->early_status = early;
        snprintf(r->res->detail, sizeof r->res->detail, "upstream stream error: %.*s",
                 (int)(msg.len < 200 ? msg.len : 200), msg.ptr ? msg.ptr : "");
        return 1;
    }
    if (!r->converted.len || !r->rq->stream)
        return r->sink->gone(r->sink->ud);
    r->res->events++;
    if (!r->committed) {
        r->res->streamed = 1;
        if (send_head(r, 200, "text/event-stream; charset=utf-8", 1))
            return 1;
    }
    return client_write(r, r->converted.data, r->converted.len) || r->sink->flush(r->sink->ud);
}

static int on_data(void *ud, const char *p, size_t n)
{
    agw_relay_call *r = ud;
    if (r->mode == MODE_UNDECIDED) {
        long status = agw_upstream_status(r->u);
        if (status < 200 || status > 299)
            r->mode = MODE_ERROR;
        else if (r->codec && r->codec->bytes)
            r->mode = MODE_STREAM, r->binary = 1;
        else if (is_event_stream(agw_upstream_header(r->u, AGW_STR_LIT("content-type"))))
            r->mode = MODE_STREAM;
        else
            r->mode = MODE_BODY;
        if (r->mode == MODE_ERROR)
            r->body.max = AGW_LIMIT_ERROR_BODY;
        if (!r->codec &&
            ((r->mode == MODE_STREAM && !r->rq->stream) || (r->mode == MODE_BODY && r->rq->stream)))
            r->codec = reshape_codec(r);
        /* A binary stream's head waits for its first converted bytes: an
         * error before them can still be answered with its status. */
        if (r->mode == MODE_STREAM && (r->rq->stream || !r->codec) && !r->binary) {
            r->res->streamed = 1;
            if (!r->committed && send_head(r, 200, "text/event-stream; charset=utf-8", 1))
                return 1;
        }
    }
    switch (r->mode) {
    case MODE_STREAM: {
        r->stream_bytes += n;
        if (stream_over_limit(r))
            return 1;
        if (r->binary)
            return on_binary(r, p, n);
        r->events_in_chunk = 0;
        agw_err e = agw_sse_feed(&r->sse, p, n, on_event, r);
        if (r->codec_failed || (r->codec && r->sink->gone(r->sink->ud)))
            return 1;
        if (!r->codec && forward_complete_events(r, p, n))
            return 1;
        if (e == AGW_ETOOBIG) {
            snprintf(r->res->detail, sizeof r->res->detail, "upstream SSE event over %u bytes",
                     AGW_LIMIT_SSE_EVENT);
            return 1;
        }
        if (r->events_in_chunk && r->committed && !(r->rq->hold_final && r->saw_terminal) &&
            r->sink->flush(r->sink->ud))
            return 1;
        return 0;
    }
    case MODE_BODY: {
        agw_err e = agw_buf_append(&r->body, p, n);
        if (e == AGW_EBUSY) {
            r->stop_status = 503;
            snprintf(r->res->detail, sizeof r->res->detail, "%s", AGW_BUDGET_BUSY_MESSAGE);
            return 1;
        }
        if (e) {
            snprintf(r->res->detail, sizeof r->res->detail, "upstream body over %u bytes",
                     AGW_LIMIT_UPSTREAM_BODY);
            return 1;
        }
        return 0;
    }
    case MODE_ERROR:
        /* Keep the head of an error body; the rest is noise we need not relay. */
        if (r->body.len < r->body.max) {
            size_t room = r->body.max - r->body.len;
            if (agw_buf_append(&r->body, p, n < room ? n : room))
                return 1;
        }
        return 0;
    case MODE_UNDECIDED:
        break;
    }
    return 1;
}

static int on_tick(void *ud, uint64_t idle_ms)
{
    (void)idle_ms;
    agw_relay_call *r = ud;
    uint64_t now = agw_mono_us();
    if (now - r->last_gone_check_us >= GONE_CHECK_US) {
        r->last_gone_check_us = now;
        if (r->sink->gone(r->sink->ud))
            return 1;
    }
    if (stream_over_limit(r))
        return 1;
    if (!r->rq->stream || r->mode == MODE_BODY || r->mode == MODE_ERROR)
        return 0;
    if (!r->committed) {
        if (r->rq->commit_ms <= 0 || now - r->start_us < (uint64_t)r->rq->commit_ms * 1000u)
            return 0;
        r->res->streamed = 1;
        if (send_head(r, 200, "text/event-stream; charset=utf-8", 0) ||
            client_write(r, AGW_CONST_STR_LEN(": waiting for upstream\n\n")) ||
            r->sink->flush(r->sink->ud))
            return 1;
        return 0;
    }
    if (r->rq->ping_ms > 0 && now - r->last_write_us >= (uint64_t)r->rq->ping_ms * 1000u) {
        if (client_write(r, AGW_CONST_STR_LEN(": ping\n\n")) || r->sink->flush(r->sink->ud))
            return 1;
    }
    return 0;
}

/* Once the head is out, an upstream error can only be an error event; it
 * carries the start of the upstream's body, which is what the operator needs. */
static void send_upstream_error_event(agw_relay_call *r, long status)
{
    agw_str b = agw_buf_view(&r->body);
    agw_buf msg = AGW_BUF_INIT(1024);
    if (agw_buf_appendf(&msg, "upstream returned HTTP %ld: ", status) == AGW_OK &&
        agw_buf_append(&msg, b.ptr, b.len < 300 ? b.len : 300) == AGW_OK)
        send_error_event(r, (int)status, agw_buf_view(&msg));
    agw_buf_free(&msg);
}

/* An upstream error body goes to the client as is when it is a JSON object with
 * an "error" member (same protocol, so same shape); anything else is wrapped. */
static void relay_error_body(agw_relay_call *r, int status)
{
    agw_str body = agw_buf_view(&r->body);
    agw_str v;
    if (agw_json_validate(body, 64, NULL, 0) == AGW_OK &&
        agw_json_find(body, AGW_STR_LIT("error"), &v) == AGW_OK) {
        if (send_head(r, status, "application/json", 1) == AGW_OK)
            (void)client_write(r, body.ptr, body.len);
        return;
    }
    char msg[320];
    size_t shown = body.len < 200 ? body.len : 200;
    agw_buf text = AGW_BUF_INIT(1024);
    if (agw_buf_appendf(&text, "upstream returned HTTP %d: ", status) ||
        agw_buf_append(&text, body.ptr, shown)) {
        snprintf(msg, sizeof msg, "upstream returned HTTP %d", status);
        send_error(r, status, agw_str_c(msg), 1);
    } else {
        send_error(r, status, agw_buf_view(&text), 1);
    }
    agw_buf_free(&text);
}

/* The end of a converted answer (rq->codec set): the codec turns what the
 * upstream said into the client's protocol; the relay only delivers it. */
static void finish_converted(agw_relay_call *r, long status)
{
    const agw_codec *c = r->codec;
    agw_buf *out = &r->converted;
    agw_buf_reset(out);
    if (r->mode == MODE_ERROR) {
        int client_status = (int)status;
        if (r->committed) {
            send_upstream_error_event(r, status);
        } else if (c->error(c->ud, (int)status, agw_buf_view(&r->body), &client_status, out) ==
                       AGW_OK &&
                   send_head(r, client_status, "application/json", 1) == AGW_OK) {
            (void)client_write(r, out->data, out->len);
        } else {
            send_error(r, 502, AGW_STR_LIT("upstream error could not be converted"), 1);
        }
        return;
    }
    int final_status = 200;
    agw_err e;
    if (r->mode == MODE_BODY) {
        /* One JSON answer, whatever was asked: the codec makes the client's
         * form of it (a whole SSE stream for a streaming client). */
        e = c->response(c->ud, agw_buf_view(&r->body), out, &final_status);
        if (e != AGW_OK) {
            int busy = e == AGW_EBUSY;
            agw_str msg = busy ? AGW_STR_LIT(AGW_BUDGET_BUSY_MESSAGE)
                               : AGW_STR_LIT("upstream answer could not be converted");
            if (r->committed)
                send_error_event(r, busy ? 503 : 502, msg);
            else
                send_error(r, busy ? 503 : 502, msg, 1);
            return;
        }
        if (r->rq->stream && !r->committed) {
            r->res->streamed = 1;
            if (send_head(r, 200, "text/event-stream; charset=utf-8", 1) != AGW_OK)
                return;
        }
    } else {
        e = c->finish(c->ud, out, &final_status);
        agw_str msg;
        int early = c->early_error ? c->early_error(c->ud, &msg) : 0;
        if (early) {
            if (r->committed)
                send_error_event(r, early, msg);
            else
                send_error(r, early, msg, 1);
            return;
        }
    }
    if (r->rq->stream && !r->committed) {
        r->res->streamed = 1;
        if (e == AGW_OK && send_head(r, 200, "text/event-stream; charset=utf-8", 1) != AGW_OK)
            return;
        if (e != AGW_OK) {
            send_error(r, 502, AGW_STR_LIT("upstream stream ended before its final event"), 1);
            return;
        }
    }
    r->res->held = e == AGW_OK && c->held && c->held(c->ud);
    if (r->rq->stream) {
        if (out->len)
            (void)client_write(r, out->data, out->len);
        if (e == AGW_OK)
            r->res->complete = 1;
        else
            send_error_event(r, 502, AGW_STR_LIT("upstream stream ended before its final event"));
        if (!(r->rq->hold_final && r->res->complete) || r->res->held)
            (void)r->sink->flush(r->sink->ud);
        return;
    }
    if (r->res->held) {
        r->res->complete = 1;
        return;
    }
    if (e == AGW_EBUSY) {
        send_error(r, 503, AGW_STR_LIT(AGW_BUDGET_BUSY_MESSAGE), 1);
        return;
    }
    if (e != AGW_OK) {
        send_error(r, 502, AGW_STR_LIT("upstream stream ended before its final event"), 1);
        return;
    }
    if (send_head(r, final_status, "application/json", 1) == AGW_OK &&
        client_write(r, out->data, out->len) == AGW_OK)
        r->res->complete = final_status >= 200 && final_status <= 299;
}

/* retry-after in whole seconds (delay-seconds form only), or -1. */
static long retry_after(const agw_upstream *u)
{
    agw_str v = agw_upstream_header(u, AGW_STR_LIT("retry-after"));
    if (!v.ptr || v.len == 0 || v.len > 9)
        return -1;
    long s = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9')
            return -1;
        s = s * 10 + (v.ptr[i] - '0');
    }
    return s;
}

static void call_init(agw_relay_call *r, agw_upstream *u, const agw_relay_req *rq,
                      const agw_relay_sink *sink, agw_relay_result *res)
{
    memset(r, 0, sizeof *r);
    memset(res, 0, sizeof *res);
    r->u = u;
    r->rq = rq;
    r->sink = sink;
    r->res = res;
    r->codec = rq->codec;
    r->committed = rq->continued && rq->stream;
    r->start_us = r->last_gone_check_us = agw_mono_us();
    agw_sse_init(&r->sse, AGW_LIMIT_SSE_EVENT);
    agw_buf_init(&r->body, AGW_LIMIT_UPSTREAM_BODY);
    agw_buf_init(&r->scratch, AGW_LIMIT_SMALL);
    agw_buf_init(&r->converted, AGW_LIMIT_UPSTREAM_BODY);
    r->body.budget = r->converted.budget = rq->budget;
    agw_buf_init(&r->pending, AGW_LIMIT_SSE_EVENT + (64u << 10));
}

static void call_free(agw_relay_call *r)
{
    agw_sse_free(&r->sse);
    agw_buf_free(&r->body);
    agw_buf_free(&r->scratch);
    agw_buf_free(&r->converted);
    agw_buf_free(&r->pending);
}

/* The transfer itself; the callbacks may already have answered the client. A
 * detail they wrote (a limit, a codec failure) says more than the transfer's. */
static void call_upstream(agw_relay_call *r, agw_upstream_result *ures)
{
    const agw_relay_req *rq = r->rq;
    agw_relay_result *res = r->res;
    agw_upstream_req ur = {
        .url = rq->url,
        .headers = rq->headers,
        .body = rq->body,
        .connect_timeout_ms = rq->connect_timeout_ms,
        .idle_timeout_ms = rq->idle_timeout_ms,
        .on_data = on_data,
        .on_tick = on_tick,
        .ud = r,
    };
    agw_upstream_perform(r->u, &ur, ures);
    res->outcome = ures->outcome;
    res->first_byte_us = ures->first_byte_us;
    if (!res->detail[0])
        snprintf(res->detail, sizeof res->detail, "%s", ures->detail);
    res->upstream_status = r->early_status ? r->early_status : (int)agw_upstream_status(r->u);
    res->retry_after_s = retry_after(r->u);
}

/* 401 and 403 from a provider are about the gateway's credentials, never
 * the client's: another provider may take the call, and the client is never
 * shown the body (it may quote the provider's key). */
static int provider_refused(int status)
{
    return status == 401 || status == 403;
}

/* Failover is possible only while the client has seen nothing at all: the
 * next provider's answer must be the first thing it gets. The failure is then
 * reported, not answered; res->status is what the client would have got. */
static int leave_for_failover(agw_relay_call *r, const agw_upstream_result *ures, int gone)
{
    agw_relay_result *res = r->res;
    res->token_refused = ures->outcome == AGW_UPSTREAM_DONE &&
                         agw_apierr_token_refused(res->upstream_status,
                                                  r->mode == MODE_ERROR ? agw_buf_view(&r->body)
                                                                        : (agw_str){ NULL, 0 });
    int auth_renewable = r->rq->may_retry_auth && res->token_refused;
    if ((!r->rq->may_retry && !auth_renewable) || gone || r->committed || res->bytes_out != 0)
        return 0;
    if (r->early_status) {
        res->retryable = 1;
        res->status = r->early_status;
        return 1;
    }
    if (!(ures->outcome == AGW_UPSTREAM_CONNECT || ures->outcome == AGW_UPSTREAM_TIMEOUT ||
          ures->outcome == AGW_UPSTREAM_BROKEN ||
          (ures->outcome == AGW_UPSTREAM_DONE &&
           (res->upstream_status == 402 || res->upstream_status == 429 ||
            res->upstream_status >= 500 || provider_refused(res->upstream_status)))))
        return 0;
    res->retryable = 1;
    res->status = ures->outcome == AGW_UPSTREAM_TIMEOUT   ? 504
                  : ures->outcome == AGW_UPSTREAM_DONE    ? res->upstream_status
                                                          : 502;
    return 1;
}

/* Stopped by us: the client left (nobody to answer), or an upstream limit was
 * hit (res->detail says which). */
static void answer_stopped(agw_relay_call *r, int gone)
{
    r->res->client_gone = gone;
    if (gone)
        return;
    int status = r->stop_status ? r->stop_status : 502;
    if (r->committed && r->mode != MODE_BODY)
        send_error_event(r, status, agw_str_c(r->res->detail));
    else if (!r->committed)
        send_error(r, status, agw_str_c(r->res->detail), 0);
}

/* No complete answer from the upstream: connect error, timeout or reset. */
static void answer_transport_failure(agw_relay_call *r, const agw_upstream_result *ures)
{
    int status = ures->outcome == AGW_UPSTREAM_TIMEOUT ? 504 : 502;
    char msg[400];
    snprintf(msg, sizeof msg, "%s: %s",
             ures->outcome == AGW_UPSTREAM_CONNECT   ? "upstream unreachable"
             : ures->outcome == AGW_UPSTREAM_TIMEOUT ? "upstream timed out"
                                                     : "upstream connection broken",
             ures->detail);
    if (r->committed)
        send_error_event(r, status, agw_str_c(msg));
    else
        send_error(r, status, agw_str_c(msg), 0);
}

static void finish_stream(agw_relay_call *r)
{
    if (agw_sse_finish(&r->sse) == AGW_OK && r->saw_end) {
        /* Bytes after the final event (a trailing comment, a stray line
         * end) belong to a complete stream: pass them on. */
        if (r->pending.len)
            (void)client_write(r, r->pending.data, r->pending.len);
        r->res->complete = 1;
    } else if (!r->saw_error_event) {
        send_error_event(r, 502, AGW_STR_LIT("upstream stream ended before its final event"));
    }
    if ((r->saw_end && !r->rq->hold_final) || r->saw_error_event)
        (void)r->sink->flush(r->sink->ud);
}

static void finish_body(agw_relay_call *r, long status)
{
    if (agw_json_validate(agw_buf_view(&r->body), 512, NULL, 0) != AGW_OK) {
        if (r->committed)
            send_error_event(r, 502, AGW_STR_LIT("upstream answered with invalid JSON"));
        else
            send_error(r, 502, AGW_STR_LIT("upstream answered with invalid JSON"), 1);
        return;
    }
    if (r->rq->tap && r->rq->tap->body)
        r->rq->tap->body(r->rq->tap->ud, agw_buf_view(&r->body));
    if (r->committed) {
        /* The SSE head went out while we waited, but the upstream answered
         * with plain JSON: deliver it as one data event. */
        agw_buf ev = AGW_BUF_INIT(AGW_LIMIT_UPSTREAM_BODY + 64);
        if (agw_sse_write(&ev, (agw_str){ NULL, 0 }, agw_buf_view(&r->body)) == AGW_OK &&
            client_write(r, ev.data, ev.len) == AGW_OK)
            r->res->complete = 1;
        agw_buf_free(&ev);
    } else if (send_head(r, (int)status, "application/json", 1) == AGW_OK &&
               client_write(r, r->body.data ? r->body.data : "", r->body.len) == AGW_OK) {
        r->res->complete = 1;
    }
}

/* The end of a passthrough answer (no codec): the bytes already went out as
 * they came; what is left is to close the stream or deliver the body. */
static void finish_passthrough(agw_relay_call *r, long status)
{
    switch (r->mode) {
    case MODE_STREAM:
        finish_stream(r);
        break;
    case MODE_BODY:
        finish_body(r, status);
        break;
    case MODE_ERROR:
        if (r->committed)
            send_upstream_error_event(r, status);
        else
            relay_error_body(r, (int)status);
        break;
    case MODE_UNDECIDED:
        break;
    }
}

static void answer_outcome(agw_relay_call *r, const agw_upstream_result *ures, int gone)
{
    if (gone || ures->outcome == AGW_UPSTREAM_STOPPED) {
        answer_stopped(r, gone);
        return;
    }
    if (ures->outcome != AGW_UPSTREAM_DONE) {
        answer_transport_failure(r, ures);
        return;
    }
    long status = agw_upstream_status(r->u);
    if (r->mode == MODE_UNDECIDED) /* an answer with no body at all */
        r->mode = status >= 200 && status <= 299 ? MODE_BODY : MODE_ERROR;
    if (r->mode == MODE_ERROR && provider_refused((int)status)) {
        if (r->committed)
            send_error_event(r, 502, agw_str_c(AGW_RELAY_AUTH_MESSAGE));
        else
            send_error(r, 502, agw_str_c(AGW_RELAY_AUTH_MESSAGE), 1);
        return;
    }
    if (r->mode == MODE_BODY && !r->codec && r->rq->stream)
        r->codec = reshape_codec(r); /* an empty answer to a stream request */
    if (r->codec)
        finish_converted(r, status);
    else
        finish_passthrough(r, status);
}

void agw_relay_run(agw_upstream *u, const agw_relay_req *rq, const agw_relay_sink *sink,
                   agw_relay_result *res)
{
    agw_relay_call r;
    call_init(&r, u, rq, sink, res);
    agw_upstream_result ures;
    call_upstream(&r, &ures);
    int gone = sink->gone(sink->ud);
    if (!leave_for_failover(&r, &ures, gone))
        answer_outcome(&r, &ures, gone);
    call_free(&r);
}
