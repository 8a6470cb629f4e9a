/*
 * eventstream: the AWS event-stream framing (application/vnd.amazon.eventstream),
 * decoded incrementally, and encoded (tests and tools build frames with it).
 *
 * A frame, all integers big-endian:
 *   total length u32 (the whole frame, >= 16) | headers length u32 |
 *   prelude CRC u32 (CRC-32 of the first 8 bytes) | headers | payload |
 *   message CRC u32 (CRC-32 of everything before it)
 * A header: name length u8, name, value type u8, value. Value types: 0 true,
 * 1 false (no value), 2 i8, 3 i16, 4 i32, 5 i64, 6 bytes (u16 length +
 * data), 7 string (u16 length + UTF-8), 8 timestamp (i64 ms), 9 UUID (16
 * bytes). Every type is decoded; an unknown type is a bad frame.
 *
 * The decoder takes the bytes in any split (one byte at a time works) and
 * hands each complete, checked frame to a sink. Both CRCs are checked, and a
 * frame longer than the decoder's cap is refused before it is buffered. The
 * first bad frame is final: the decoder stays failed and every later feed
 * returns the same error, so a broken stream can never look like a clean end.
 *
 * Ownership: the message handed to the sink and every view in it point into
 * the decoder's buffer and live until the sink returns. The decoder owns its
 * buffer; release it with agw_es_decoder_free().
 */
#ifndef AGW_EVENTSTREAM_H
#define AGW_EVENTSTREAM_H

#include "core/core.h"

#include <stdint.h>

/* The largest frame a decoder takes by default (what AWS SDKs allow). */
#define AGW_ES_MAX_FRAME (16u << 20)
/* Headers one frame may carry; more is a bad frame. */
#define AGW_ES_MAX_HEADERS 32

typedef enum {
    AGW_ES_TRUE = 0,
    AGW_ES_FALSE = 1,
    AGW_ES_BYTE = 2,
    AGW_ES_SHORT = 3,
    AGW_ES_INT = 4,
    AGW_ES_LONG = 5,
    AGW_ES_BYTES = 6,
    AGW_ES_STRING = 7,
    AGW_ES_TIMESTAMP = 8,
    AGW_ES_UUID = 9,
} agw_es_type;

typedef struct {
    agw_str name;
    agw_es_type type;
    /* TRUE/FALSE: 1/0; BYTE..LONG and TIMESTAMP (ms): the number. */
    int64_t num;
    /* BYTES, STRING: the data; UUID: its 16 bytes. Empty otherwise. */
    agw_str bytes;
} agw_es_header;

typedef struct {
    const agw_es_header *headers;
    size_t n_headers;
    agw_str payload;
} agw_es_message;

/* A frame sink; non-zero stops the feed (agw_es_feed returns AGW_OK then and
 * keeps the bytes after that frame for the next feed). */
typedef int (*agw_es_sink)(void *ud, const agw_es_message *m);

typedef struct {
    agw_buf buf;              /* bytes of the frame not yet complete */
    size_t max_frame;
    agw_err failed;           /* sticky: the first decoding error */
    char why[96];             /* what was wrong with the bad frame */
    agw_es_header headers[AGW_ES_MAX_HEADERS];
} agw_es_decoder;

/* max_frame 0 takes AGW_ES_MAX_FRAME. */
void agw_es_decoder_init(agw_es_decoder *d, size_t max_frame);
void agw_es_decoder_free(agw_es_decoder *d);

/* Feeds n bytes: every frame they complete goes to the sink, in order.
 * AGW_EINVAL on a bad frame (a CRC mismatch, a length out of range, a header
 * that runs past its block or has an unknown type), AGW_ETOOBIG for a frame
 * past max_frame; agw_es_why() then says what was wrong. */
AGW_WARN_UNUSED agw_err agw_es_feed(agw_es_decoder *d, const char *p, size_t n, agw_es_sink sink,
                                    void *ud);

/* The end of the stream: AGW_EPEER when it stopped inside a frame, the
 * sticky error when a frame was bad, else AGW_OK. */
AGW_WARN_UNUSED agw_err agw_es_finish(agw_es_decoder *d);

/* Why the decoder failed ("" while it has not). */
const char *agw_es_why(const agw_es_decoder *d);

/* The value of the STRING (or BYTES) header `name`; the empty view when the
 * message has no such header. */
agw_str agw_es_header_str(const agw_es_message *m, agw_str name);

/* CRC-32 (IEEE 802.3, zlib's): crc 0 to start, the previous result to go on. */
uint32_t agw_crc32(uint32_t crc, const void *p, size_t n);

/* Appends one frame of these headers and payload. AGW_EINVAL for a header
 * name over 255 bytes, a string or bytes value over 65535, or an unknown
 * type; the buffer's errors otherwise. */
AGW_WARN_UNUSED agw_err agw_es_encode(agw_buf *out, const agw_es_header *headers, size_t n,
                                      agw_str payload);

#endif
