/*
 * usage: one record per request (README.md, "Usage records and what a crash
 * can lose") and how it reaches the database.
 *
 * Token counts come from what the provider reported, read on the side of the
 * answer without changing a byte of it (agw_usage_tap): OpenAI's `usage`
 * object (in the body, or in the final chunk of a stream whose request asked
 * for stream_options.include_usage), Anthropic's message_start and
 * message_delta usage (cumulative output), or the body's `usage`.
 *
 * The gateway never adds stream_options to a client's passthrough body: the
 * body goes upstream byte for byte, and a client that did not ask must not get
 * a usage chunk it cannot expect. Such a stream reports no usage, so its
 * record carries estimates, flagged tokens_estimated = 1: the input from the
 * request (agw_limit_estimate's quarter of the body bytes) and the output as
 * a quarter of the text and tool-argument bytes the stream carried.
 *
 * The writer: each process has one writer thread with its own connection and
 * a bounded queue of records. It commits everything queued in one BEGIN
 * IMMEDIATE transaction, at the latest every flush_ms or when batch rows are
 * waiting, and at once when a request waits for its record (group commit: the
 * requests ending meanwhile share the commit). The connection runs WAL with
 * synchronous=NORMAL (store.h), so no commit fsyncs, and with SQLite's
 * auto-checkpoint off: a second thread on its own connection runs a passive
 * checkpoint every second, so the fsyncs of checkpoints never delay a commit
 * that requests wait for.
 *
 * Durability, the contract handlers build on: a request that went to a
 * provider submits its record with `durable` set before it finishes the
 * FastCGI request, so the client's response ends only after the record is
 * committed. A worker killed by SIGKILL therefore loses no record of a
 * response whose end was delivered; it loses the records of requests still in
 * flight (whose clients see a cut response) and of requests the gateway
 * refused itself (401/403/429 and bad input, submitted without waiting), at
 * most the last flush_ms of those. Committed rows survive any process crash;
 * a power loss can take the last transactions (synchronous=NORMAL in WAL).
 */
#ifndef AGW_USAGE_H
#define AGW_USAGE_H

#include "proto/apierr.h"
#include "core/config.h"
#include "core/core.h"
#include "proto/ir.h"

#include <sqlite3.h>

/* ---- the record ---- */

typedef struct {
    int64_t ts;                 /* Unix seconds when the request arrived */
    int64_t key_id;             /* the client key's id; 0 = none (single-key mode) */
    char provider[AGW_CONFIG_NAME_MAX + 1]; /* "" when the request was refused before routing */
    char model[AGW_CONFIG_MODEL_MAX + 1];   /* the model sent upstream (or requested, if refused) */
    int status;                 /* HTTP status the client got; 0 = left before the head */
    int64_t input_tokens;       /* excluding cached input, as Anthropic counts */
    int64_t output_tokens;
    int64_t cache_read_tokens;
    int64_t cache_write_tokens;
    int64_t latency_ms;         /* arrival to end */
    int64_t ttft_ms;            /* arrival to the first output token; -1 = none */
    int streamed;
    int tokens_estimated;       /* the counts are the gateway's estimate (see above) */
    double credits;             /* what the provider charged (Kiro's metering); < 0 = none */
} agw_usage_record;

/* Zeroes a record (ttft_ms = -1) and stamps ts. */
void agw_usage_record_init(agw_usage_record *r);
/* Copies provider and model, truncated to fit (on a UTF-8 boundary). */
void agw_usage_record_names(agw_usage_record *r, agw_str provider, agw_str model);

typedef struct agw_usage_tap agw_usage_tap;

/* The outcome of a provider call: the client's `status`, `streamed`, the time
 * to first token from the tap (against `start_us`, agw_mono_us() at arrival),
 * and the token counts. `reported` holds what the provider reported (the
 * tap's counts, merged with what a conversion read; -1 where unknown). When
 * it reported nothing, a 2xx answer whose call allows it (`estimate`: not for
 * count_tokens, which produces no tokens) gets the estimate described above,
 * from `request_bytes` and the tap's output bytes, with tokens_estimated. */
void agw_usage_record_answer(agw_usage_record *r, const agw_usage_tap *tap, agw_ir_usage reported,
                             int status, int streamed, size_t request_bytes, uint64_t start_us,
                             int estimate);

/* Every token of the record, cached ones included: what the call costs
 * against the key's TPM limit (limiter.h agw_limit_finish). */
int64_t agw_usage_record_tokens(const agw_usage_record *r);

/* ---- reading usage on the side of an answer ---- */

struct agw_usage_tap {
    agw_proto proto;            /* the protocol of the answer (the provider's) */
    agw_ir_usage usage;         /* reported counts; -1 = not reported */
    int64_t output_bytes;       /* text and tool-argument bytes seen in a stream */
    uint64_t first_output_us;   /* agw_mono_us() at the first output event; 0 = none */
};

void agw_usage_tap_init(agw_usage_tap *t, agw_proto proto);
/* One SSE event of a streamed answer. Never fails: what it cannot read it skips. */
void agw_usage_tap_event(agw_usage_tap *t, agw_str name, agw_str data);
/* A complete non-streamed 2xx answer body. */
void agw_usage_tap_body(agw_usage_tap *t, agw_str body);

/* ---- the writer ---- */

#define AGW_USAGE_QUEUE 4096      /* records a process holds before refusing more */
#define AGW_USAGE_FLUSH_MS 250    /* oldest record's longest wait for a commit */
#define AGW_USAGE_BATCH 512       /* rows that make a commit happen at once */

typedef struct agw_usage_writer agw_usage_writer;

/* Opens its own connection to `db_path` and starts the thread. flush_ms and
 * batch of 0 take the defaults above. */
AGW_WARN_UNUSED agw_err agw_usage_writer_start(const char *db_path, unsigned flush_ms,
                                               size_t batch, agw_usage_writer **out, char *err,
                                               size_t errlen);

/* Queues a copy of `r`. With `durable` set, returns once the record is
 * committed (AGW_OK) or given up (AGW_EIO: the database kept failing, or the
 * queue stayed full for seconds). Without it returns at once; AGW_ETOOBIG
 * when the queue is full (the record is dropped and counted). */
agw_err agw_usage_submit(agw_usage_writer *w, const agw_usage_record *r, int durable);

/* Commits what is queued, stops the thread, closes the connection. NULL is fine. */
void agw_usage_writer_stop(agw_usage_writer *w);

/* ---- retention ----
 *
 * usage.retention_days (antigw.cfg) bounds how long rows are kept. The
 * writer's checkpoint thread prunes, on its own connection: every
 * AGW_USAGE_PRUNE_MS it deletes rows older than the window in transactions of
 * AGW_USAGE_PRUNE_BATCH rows (oldest first, through the usage_ts index),
 * pausing between them, so the write lock is never held for long and commits
 * of new rows get in between. Every process of the pool prunes; they
 * overlap harmlessly (a row is deleted once). */

#define AGW_USAGE_PRUNE_BATCH 500
#define AGW_USAGE_PRUNE_MS 60000

/* Keeps rows for `days` (0 = forever, the writer's default); the first prune
 * runs at the next checkpoint tick. */
void agw_usage_writer_set_retention(agw_usage_writer *w, int days);

/* One prune transaction: deletes up to `batch` rows with ts < `before`
 * (Unix seconds), oldest first. Returns how many it deleted, -1 on a
 * database error (logged). */
int agw_usage_prune(sqlite3 *db, int64_t before, int batch);

#endif
