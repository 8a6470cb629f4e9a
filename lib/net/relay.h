/*
 * relay: one upstream call relayed to the client, in the same protocol (the
 * passthrough fast path: no conversion) or through a codec.
 *
 * The request body goes upstream as given. The answer comes back unchanged in
 * bytes, with these rules around it:
 *  - A streamed (text/event-stream) 2xx answer is written to the client as it
 *    arrives and flushed at every complete SSE event; the events are parsed on
 *    the side only to know whether the stream ended properly.
 *  - A stream that breaks (reset, timeout, no terminal event) ends with an
 *    error event in the client's protocol, never a clean-looking end.
 *  - With a codec that reads bytes (codec.h `bytes`: Kiro's binary event
 *    stream), every 2xx answer is such a stream: its bytes go through the
 *    codec, and the client's SSE head waits for the first converted bytes,
 *    so an error the stream reports before any output (codec `early_error`)
 *    is still answered with its own status, or, when another provider may
 *    take the call and it is a 429 or 5xx, left to that provider.
 *  - A non-streamed 2xx answer is collected (capped), checked to be JSON and
 *    sent with its status; garbage becomes a 502 in the client's shape.
 *  - A non-2xx answer keeps its status, `retry-after` and the error body when
 *    that body is a JSON error; other bodies are wrapped in the client's shape.
 *  - An upstream 401 or 403 is about the gateway's provider credentials: the
 *    client gets a 502 with a generic message (AGW_RELAY_AUTH_MESSAGE), never
 *    the provider's body, and failover may try another provider first.
 *  - Connect failures give 502, timeouts 504, in the client's shape.
 *  - While the upstream is silent on a stream request, after commit_ms the
 *    client gets the 200 SSE head and then comment pings every ping_ms, which
 *    keeps proxies' idle timers alive and reveals a client that left. Once the
 *    head is out, later upstream errors can only be error events.
 *  - A client that leaves stops the upstream transfer at once.
 *
 * Nothing here knows FastCGI: the client is a sink of callbacks, so the relay
 * is tested against a buffer and run against agw_fcgi_conn in the app.
 */
#ifndef AGW_RELAY_H
#define AGW_RELAY_H

#include "proto/apierr.h"
#include "proto/codec.h"
#include "core/core.h"
#include "net/upstream.h"

typedef struct {
    void *ud;
    /* Writes the status and headers (`headers`: complete "Name: value\r\n" lines). */
    agw_err (*head)(void *ud, int status, const char *content_type, agw_str headers);
    agw_err (*write)(void *ud, const char *p, size_t n);
    agw_err (*flush)(void *ud);
    /* 1 when the client is known to have left. */
    int (*gone)(void *ud);
} agw_relay_sink;

/* Watches the upstream's answer without changing it (usage accounting).
 * It sees only what goes out as the upstream sent it: an answer a codec
 * converts (rq->codec, or a reshape) is read by the codec, whose decoder
 * keeps the counts (bridge.h), so the tap is not given it. */
typedef struct {
    void *ud;
    /* Each SSE event of a streamed answer, as the upstream sent it. */
    void (*event)(void *ud, agw_str name, agw_str data);
    /* A 2xx answer that was not a stream, once it is complete and passed
     * agw_json_validate. */
    void (*body)(void *ud, agw_str body);
} agw_relay_tap;

/* A codec made only when needed: `make(ud)` is called at most once per
 * relay run, when the answer needs the codec, and returns it (NULL: none,
 * the answer passes as it is). The codec belongs to whoever made it. */
typedef struct {
    const agw_codec *(*make)(void *ud);
    void *ud;
} agw_relay_lazy_codec;

typedef struct {
    agw_proto proto;            /* the client's protocol */
    const agw_codec *codec; /* NULL: same protocol, bytes pass through */
    /* Same protocol only (codec NULL), may be NULL: a codec from the
     * client's protocol to itself, used when the upstream answers in the
     * other form than the client asked for: a JSON body to a stream request
     * becomes an SSE stream of that answer, a stream to a non-stream request
     * is folded into one JSON object. Without it such answers pass as they are.
     * Made lazily: most answers come in the form asked for and need none. */
    const agw_relay_lazy_codec *reshape;
    const agw_relay_tap *tap;   /* NULL: nobody watches */
    /* The caller flushes the end of a successful stream itself: the chunk
     * holding the terminal event ([DONE] / message_stop) is written but not
     * flushed, so the client cannot see the end before the caller's
     * bookkeeping (the usage record's commit) is done. */
    int hold_final;
    /* The gateway sends its own x-ratelimit-* headers: the upstream's (the
     * provider account's limits) are not passed on. */
    int own_ratelimit_headers;
    const char *url;
    const char *const *headers; /* NULL-terminated, for the upstream */
    agw_str body;               /* NULL ptr: GET */
    int stream;                 /* the client asked for a stream */
    long connect_timeout_ms;
    long idle_timeout_ms;
    long commit_ms;             /* see above; 0 = commit only when upstream answers */
    long ping_ms;               /* 0 = no pings */
    agw_str response_headers;   /* extra lines for the client's head (CORS), pre-validated */
    /* Another provider can take the call (failover): a failure that left
     * the client untouched (nothing written, not even the SSE head) is not
     * answered but reported with res->retryable. Failures that qualify: a
     * connect error, a timeout, a broken connection, a 401/403, a 402 (the
     * provider's account is out of quota), a 429 or a 5xx. */
    int may_retry;
    /* Without may_retry, a refused token (res->token_refused) is still
     * reported, not answered: the caller can renew the credential and send
     * the call again. */
    int may_retry_auth;
    /* A streamed answer (text/event-stream from the upstream) past either
     * limit is stopped, and ends with the protocol's error event (or a 502
     * when nothing went out yet); res->detail says which. 0: no limit. */
    size_t max_stream_bytes;    /* upstream bytes */
    /* Passthrough OpenAI stream whose client did not ask for the usage
     * chunk (the gateway added stream_options.include_usage for its own
     * accounting): that chunk (`choices: []` with `usage`) is not relayed. */
    int drop_usage_chunk;
    long max_stream_ms;         /* from the start of the call */
    /* NULL, or the memory allowance a non-streamed answer and its conversion
     * are held under (core.h agw_budget): when it has no room the client gets
     * 503 with AGW_BUDGET_BUSY_MESSAGE (core.h). */
    agw_budget *budget;
    /* A continuation round (proto/continuation.h): an earlier call of this
     * answer already sent a streaming client its head and events, so none
     * is sent again and failures can only be error events. */
    int continued;
} agw_relay_req;

/* What a client gets (502) for an upstream 401 or 403 in place of the body. */
#define AGW_RELAY_AUTH_MESSAGE "the provider rejected the gateway's credentials"


typedef struct {
    int status;                 /* the status the client got (0 if the client left first) */
    int streamed;               /* the answer went out as SSE */
    int complete;               /* the upstream answer ended properly */
    int client_gone;            /* the client left before the end */
    agw_upstream_outcome outcome;
    uint64_t first_byte_us;     /* upstream time to first byte */
    size_t bytes_out;           /* body bytes written to the client */
    size_t events;              /* SSE events relayed */
    char detail[256];           /* why it failed, for the log */
    /* rq->may_retry only: the call failed and the client got nothing. */
    int retryable;
    int upstream_status;        /* the upstream's status (0: no answer) */
    /* The upstream refused the credential itself: a 401, or a 403 saying
     * the token is invalid or expired (a renewed token may pass). */
    int token_refused;
    long retry_after_s;         /* the upstream's retry-after in seconds, or -1 */
    /* The codec held the answer's end back for a continuation round: what
     * the client got so far is flushed, nothing ended (complete is set). */
    int held;
} agw_relay_result;

void agw_relay_run(agw_upstream *u, const agw_relay_req *rq, const agw_relay_sink *sink,
                   agw_relay_result *res);

#endif
