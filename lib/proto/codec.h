/*
 * codec: the interface between a conversion and the relay that drives it.
 *
 * It lives with the protocols so that the bridge (which implements it) needs
 * nothing from the transport, and the relay (which calls it) needs nothing
 * from any particular protocol.
 */
#ifndef AGW_CODEC_H
#define AGW_CODEC_H

#include "core/core.h"

/* A conversion between protocols, plugged into the relay (net/relay.h) and
 * implemented by the bridge (bridge.h). The relay owns transport (timing,
 * heads, flushes, departures, failures); the codec owns bytes. Without one
 * the relay passes the upstream's bytes through. */
typedef struct {
    void *ud;
    /* One upstream SSE event; appends what the client gets for it (possibly
     * nothing, e.g. while folding for a non-streaming client). */
    agw_err (*event)(void *ud, agw_str name, agw_str data, agw_buf *out);
    /* The upstream stream ended. Streaming client: appends the last bytes.
     * Non-streaming client: the whole response body and its status (200, or
     * the error status when the upstream reported an error mid-stream).
     * AGW_EPEER when the upstream stream ended before its final event. */
    agw_err (*finish)(void *ud, agw_buf *out, int *status);
    /* A 2xx upstream answer that was not a stream (one JSON body), in place
     * of event + finish: appends the client's whole answer, the SSE stream
     * for a streaming client, the response body and its status for the
     * other. AGW_EINVAL when the body cannot be decoded. */
    agw_err (*response)(void *ud, agw_str body, agw_buf *out, int *status);
    /* A non-2xx upstream answer -> the client's status and error body. */
    agw_err (*error)(void *ud, int status, agw_str body, int *client_status, agw_buf *out);
    /* NULL, or 1 when the answer's end is held back after finish/response
     * for another upstream answer to continue it (proto/continuation.h):
     * the relay then delivers what it has without ending the answer, and a
     * non-streaming client gets nothing yet. */
    int (*held)(void *ud);
    /* NULL for upstreams that stream SSE. Otherwise (Kiro's binary AWS
     * event stream) every 2xx answer is a stream read through this in place
     * of `event`, whatever its content type: bytes in any split; appends
     * what the client gets for them, as `event` does. `finish` ends it. */
    agw_err (*bytes)(void *ud, const char *p, size_t n, agw_buf *out);
    /* With `bytes`: the HTTP status of an error the upstream's stream
     * reported before the answer produced anything (a throttling exception
     * as its first frame), with its message in *message (valid until the
     * codec is freed); 0 when there was none. Nothing of the answer went to
     * the client then, so the relay answers that status itself, or lets
     * another provider take the call. */
    int (*early_error)(void *ud, agw_str *message);
} agw_codec;

#endif
