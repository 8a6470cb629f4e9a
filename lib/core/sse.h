/*
 * sse: an incremental Server-Sent Events parser and writer.
 *
 * Parser (WHATWG HTML "server-sent events", section "Interpreting an event
 * stream"), fed whatever chunks the network delivers:
 *  - Lines end with CRLF, LF or CR. A CR is acted on as soon as it is seen and a
 *    LF right after it (even at the start of the next feed) is swallowed, so a
 *    CRLF split across feeds never makes an extra blank line. Acting on the CR
 *    at once keeps CR-only streams from stalling an event until more bytes come.
 *  - One UTF-8 BOM at the very start of the stream is skipped, even when split.
 *  - ":..." lines are comments: ignored, counted in `comments`.
 *  - "name:value" drops one space after the colon; a line without a colon is a
 *    field name with an empty value. Fields: event, data (lines joined with
 *    "\n"), id (ignored when its value contains a NUL, per the spec), retry
 *    (ignored unless all ASCII digits and within a long). Other names are
 *    ignored.
 *  - A blank line dispatches the event if it had at least one data line; either
 *    way the fields reset. Unlike a browser's lastEventId, `id` does not carry
 *    over to later events: it is only what this event said.
 *  - Bytes are not decoded: any byte (NUL, invalid UTF-8, a multi-byte
 *    sequence split across feeds) passes through unchanged, so the result is
 *    the same however the input is split.
 *  - At end of input an unterminated event is not dispatched (per the spec);
 *    agw_sse_finish reports it as a truncated stream.
 *
 * Ownership: the parser owns its buffers; agw_sse_free releases them. Views in
 * an agw_sse_event point into those buffers and are valid only during the
 * callback. Buffers are reused, so a warmed-up parser does not allocate per
 * event. Not thread-safe; one parser per stream.
 *
 * Limit: the bytes of one event, counted as for raw_len (and any part of a line
 * still waiting for its end), may not exceed max_event_bytes. Past it, feed
 * returns AGW_ETOOBIG, releases the buffers and the parser stays failed: later
 * feeds and finish return AGW_ETOOBIG. Everything buffered is part of those
 * bytes, so memory stays within a small multiple of max_event_bytes even when
 * an upstream never sends a line end. max_event_bytes 0 is not special.
 *
 * Stopping: a callback returning non-zero stops the parser. feed returns AGW_OK
 * immediately (later bytes of that chunk are not looked at), the value is kept
 * in `stop`, and later feeds are ignored (AGW_OK). Stopping is the caller's
 * decision, not an input error, hence no error code.
 *
 * Writer: appends well-formed events and comments to an agw_buf. A bare CR or
 * CRLF in data or comment text cannot be carried by SSE (it ends a line), and
 * emitting it raw would let text inject fields or whole events. So the writer
 * splits on CRLF, CR and LF alike, one "data:" line per line: parsing the
 * output gives back the data with every CRLF and CR turned into LF, and data
 * without CR round-trips exactly (including a trailing "\n" and NUL bytes). On
 * AGW_ETOOBIG the out buffer has been freed, as agw_buf_append does.
 */
#ifndef AGW_SSE_H
#define AGW_SSE_H

#include "core/core.h"

typedef struct {
    agw_str event;  /* "event" field; empty when absent (meaning "message") */
    agw_str data;   /* data lines joined with "\n", no trailing newline */
    agw_str id;     /* last "id" field in this event; empty if none */
    long retry;     /* last valid "retry" field in this event; -1 if none */
    /* Bytes of input from just after the previous blank line through this
     * event's blank line. Leading BOM and the bytes of events that were not
     * dispatched are not counted anywhere. When a CR ends the blank line, the
     * LF of its CRLF arrives after dispatch and is counted in the next event,
     * so the figure is the same however the input was split. */
    size_t raw_len;
} agw_sse_event;

/* Return 0 to go on, non-zero to stop the parser (see "Stopping" above). The
 * callback must not feed, finish or free the parser that called it. */
typedef int (*agw_sse_cb)(void *ud, const agw_sse_event *ev);

typedef struct {
    /* Read-only for the caller. */
    unsigned long comments; /* comment lines seen */
    unsigned long events;   /* events dispatched */
    long last_retry;        /* last valid retry anywhere in the stream, even in an
                               undispatched event (the spec's reconnection time);
                               -1 if none */
    int stop;               /* the callback's non-zero return; 0 while running */
    agw_err err;            /* AGW_OK, or the sticky AGW_ETOOBIG */
    /* Private. */
    size_t max;
    size_t raw;             /* bytes of the pending event so far */
    long retry;
    unsigned char bom;      /* BOM bytes matched while < 3; 3 once past the BOM */
    unsigned char skip_lf;  /* the last byte was a line-ending CR */
    unsigned char fields;   /* a field line came since the last blank line */
    agw_buf line;           /* an unterminated line carried between feeds */
    agw_buf data;           /* each data line plus "\n" */
    agw_buf event;
    agw_buf id;
} agw_sse_parser;

/* A ready parser, so it can live on the stack without calling agw_sse_init. */
#define AGW_SSE_PARSER_INIT(maxbytes)                                          \
    {                                                                          \
        .last_retry = -1, .err = AGW_OK, .max = (maxbytes), .retry = -1,       \
        .line = AGW_BUF_INIT(maxbytes), .data = AGW_BUF_INIT(maxbytes),        \
        .event = AGW_BUF_INIT(maxbytes), .id = AGW_BUF_INIT(maxbytes),         \
    }

/* Same as AGW_SSE_PARSER_INIT; allocates nothing. */
void agw_sse_init(agw_sse_parser *p, size_t max_event_bytes);

/* Parses len bytes, calling cb (may be NULL) for each complete event in order.
 * AGW_OK, also after a stop; AGW_ETOOBIG past the limit (sticky). */
AGW_WARN_UNUSED agw_err agw_sse_feed(agw_sse_parser *p, const char *bytes, size_t len,
                                     agw_sse_cb cb, void *ud);

/* End of input; changes nothing. AGW_OK when the stream ended cleanly (after a
 * blank line or only comments since, or the parser was stopped); AGW_EPEER
 * when a line or an event was left unterminated (a truncated stream, nothing
 * of it dispatched); AGW_ETOOBIG if the parser had failed. */
AGW_WARN_UNUSED agw_err agw_sse_finish(const agw_sse_parser *p);

/* Releases the buffers. The parser must be initialised again before reuse. */
void agw_sse_free(agw_sse_parser *p);

/* Appends one event: "event: X" when event is non-empty, one "data:" line per
 * line of data (at least one, so empty data still dispatches), a blank line.
 * AGW_EINVAL (nothing appended) when event contains CR or LF. */
AGW_WARN_UNUSED agw_err agw_sse_write(agw_buf *out, agw_str event, agw_str data);

/* Like agw_sse_write, plus "id:" when ev->id is non-empty and "retry:" when
 * ev->retry >= 0, so a parsed event is relayed with the same meaning. raw_len
 * is ignored. AGW_EINVAL (nothing appended) when event or id contains CR or
 * LF, or id contains NUL (the parser would drop it). */
AGW_WARN_UNUSED agw_err agw_sse_write_event(agw_buf *out, const agw_sse_event *ev);

/* Appends text as comment lines (":" per line, split like data): keep-alives
 * that every client ignores. Empty text gives a single ":" line. */
AGW_WARN_UNUSED agw_err agw_sse_write_comment(agw_buf *out, agw_str text);

#endif
