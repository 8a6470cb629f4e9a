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
 * The log: every record goes into a ring in a file the pool maps
 * (state/ring.h): in usage.ring_dir (a memory file system, /dev/shm by
 * default; agw_usage_ring_path), imaged to "<database.path>.usage.image" on
 * the disk; or, with ring_dir "", "<database.path>.usage" itself. The
 * drainer stores what the image holds before its first sync, and what a
 * ring beside the database holds (left, or still written, by processes of
 * an earlier version or with ring_dir "") then and every second. Appending is
 * a few atomic operations and one copy, with no lock and no system call, and
 * the file outlives the process: a record appended by a worker that is
 * killed the next instant is still written. One process of the pool drains
 * the ring into SQLite: each process runs a drainer thread, and the one
 * holding flock(LOCK_EX|LOCK_NB) on "<database.path>.usage.lock" drains (the
 * health prober's election, health.h); when it dies the kernel releases its
 * lock and another takes over within AGW_USAGE_ELECT_MS.
 *
 * The drainer commits up to AGW_USAGE_BATCH records per transaction (BEGIN
 * IMMEDIATE, synchronous=FULL on its own connection: the commit is on the
 * disk when it returns, and the fsync costs the drainer, not a request).
 * Each row carries the record's ring sequence number (usage.ring_seq,
 * unique), inserted with INSERT OR IGNORE, and the ring's read cursor moves
 * only after the commit: a drainer killed between the two leaves the batch
 * in the ring, and the next drainer's second insert of it changes nothing.
 * Every row is therefore written exactly once. A failing commit (database
 * locked past busy_timeout, disk full, I/O error) is retried for ever with a
 * backoff up to AGW_USAGE_RETRY_MAX_MS; the records wait in the ring, never
 * dropped. Between batches the drainer checkpoints (below), and once a
 * minute it prunes old rows (retention).
 *
 * Durability, the contract handlers build on: a request that went to a
 * provider appends its record (agw_usage_append with `held_end`) before it
 * finishes the FastCGI request, so the client's response ends only after the
 * record is in the ring. A worker killed by SIGKILL therefore loses no record
 * of a response whose end was delivered; it loses the records of requests
 * still in flight (whose clients see a cut response). A power loss or kernel
 * crash: README.md, "Usage records and what a crash can lose".
 *
 * A full ring (the database has not taken rows for a while): with
 * usage.required (the default) new model calls are refused with 503 once
 * the ring is fuller than AGW_USAGE_ADMIT_FILL (agw_usage_accepting); the
 * rest is headroom for the calls already in flight, whose records wait for
 * room if even that runs out (their clients wait for the end). Without
 * usage.required calls are served and a record that finds no room is
 * dropped and counted. Records of requests the gateway refused itself
 * (401/403/429, bad input) never use the headroom: past AGW_USAGE_ADMIT_FILL
 * they are dropped and counted. /metrics and /health show the fill, the
 * refused calls, the dropped records and the drainer's errors.
 *
 * The WAL: the drainer's connection has SQLite's auto-checkpoint off; after
 * each batch, when the WAL file has grown past the options' wal_reset_bytes,
 * it runs a TRUNCATE checkpoint (which waits, on the drainer's time, for
 * readers of older snapshots, then empties the WAL), and otherwise a PASSIVE
 * one every second. The WAL so stays near wal_reset_bytes, far below
 * journal_size_limit (store.h), whatever the load.
 */
#ifndef AGW_USAGE_H
#define AGW_USAGE_H

#include "proto/apierr.h"
#include "core/config.h"
#include "core/core.h"
#include "proto/ir.h"
#include "state/ring.h"

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
    int continuations;          /* follow-up calls that continued the answer (README,
                                   "Answers: continuation") */
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
/* A complete non-streamed 2xx answer body that is JSON (the relay's tap
 * hands over only such bodies); its scanners stay within the bytes given
 * whatever they hold. */
void agw_usage_tap_body(agw_usage_tap *t, agw_str body);

/* ---- the log ---- */

#define AGW_USAGE_RING_SLOTS 65536u   /* usage.ring_records default */
#define AGW_USAGE_ADMIT_FILL 0.875    /* new model calls refused past this fill */
/* Rows per transaction at most: what a nap gathers below the helper's
 * threshold with the default ring (AGW_USAGE_IDLE_BELOW), so that one
 * round, one commit and one fsync take it all. 1024 took two at one
 * connection (four at the threshold's rate): each round a hand-over and a
 * commit more, which the requests then had to preempt. The drainer's copy
 * of a batch is about 2 MiB. */
#define AGW_USAGE_BATCH 4096
/* The drainer's nap once the ring is drained. A commit's cost hardly
 * depends on its rows (the WAL frames of the pages it touched, the fsync),
 * and every round of the drainer is also a hand-over to its helper thread
 * and CPU time that requests may have to preempt: 50 ms rather than 10 ms
 * roughly halved the drainer's CPU per row at 64 connections, and 250 ms
 * rather than 50 ms cut it by another quarter at one connection, where it
 * is what stretches the latency tail (README "Usage records and what a
 * crash can lose"). A row so reaches the database within about 250 ms. */
#define AGW_USAGE_POLL_MS 250
/* While the ring holds less than 1/AGW_USAGE_IDLE_BELOW of its capacity,
 * the drainer's work (batch, checkpoint, prune) runs on a helper thread
 * under SCHED_IDLE, which a woken request thread preempts (request threads
 * under SCHED_BATCH, server.batch_scheduling, preempt nothing else), and a
 * batch yields its CPU after every AGW_USAGE_YIELD_ROWS rows: a batch then
 * never holds a CPU that a request waits for long enough to show in the
 * latency tail. Each half helps on its own; together they cut the p99 at
 * one connection most (README "Usage records and what a crash can lose").
 * Past that fill the drainer thread itself, under the normal policy, does
 * the work without yielding, so CPUs saturated by the pool or by other
 * programs cannot starve it into refusing calls (an unprivileged thread
 * cannot leave SCHED_IDLE, hence two threads). A helper round that took
 * longer than AGW_USAGE_IDLE_SLOW_MS (starved, or a long prune or
 * checkpoint) sends the next AGW_USAGE_IDLE_PAUSE_MS of rounds to the
 * drainer thread too. */
/* 1/16 of the default ring (4,096 records) is what a 250-ms nap gathers at
 * 16,000 calls a second: below that the helper does the steady work. */
#define AGW_USAGE_IDLE_BELOW 16
#define AGW_USAGE_YIELD_ROWS 16
#define AGW_USAGE_IDLE_SLOW_MS 500
#define AGW_USAGE_IDLE_PAUSE_MS 10000
/* A record still waiting in the ring this many seconds after it was
 * appended is written to the disk (agw_ring_sync) between the drainer's
 * attempts: within a second, or within AGW_USAGE_BUSY_MS plus the retry
 * backoff (AGW_USAGE_RETRY_MAX_MS) while the database refuses rows. Younger
 * ones are not: a pool that saturates its CPUs runs a second or two behind,
 * and syncing that backlog would cost the drainer for nothing. */
#define AGW_USAGE_SYNC_AGE_S 5
#define AGW_USAGE_BUSY_MS 1000        /* the drainer's SQLite busy timeout */
/* How often a follower tries to take the lock, and looks whether the ring's
 * file was removed: a wake-up of every process but one, idle or not. */
#define AGW_USAGE_ELECT_MS 1000
#define AGW_USAGE_ORPHAN_MS 10000     /* the last user of a removed ring stores it for this long */
#define AGW_USAGE_RETRY_MAX_MS 2000   /* longest wait before a failed commit is retried */
#define AGW_USAGE_WAL_RESET_BYTES (16u << 20) /* usage.wal_reset_mib default */

/* Ownership: a process opens one log at start and closes it after its
 * request threads have stopped; agw_usage_append, agw_usage_accepting and
 * the stats may be called from any thread meanwhile. */
typedef struct agw_usage_log agw_usage_log;

typedef struct {
    uint32_t ring_records;      /* slots; 0 = AGW_USAGE_RING_SLOTS */
    int required;               /* usage.required: refuse calls rather than lose records */
    int drain;                  /* run the drainer thread (its election included) */
    int retention_days;         /* 0 = keep every row */
    uint64_t wal_reset_bytes;   /* 0 = AGW_USAGE_WAL_RESET_BYTES */
    const char *ring_dir;       /* usage.ring_dir; NULL or "": the ring beside the database */
} agw_usage_log_opts;

/* The ring's file in ring_dir for the database at db_path (which need not
 * exist): "<ring_dir>/antigw-<16 hex digits>.usage", the digits from the
 * SHA-256 of db_path's real directory, '/' and its file name. The caller
 * frees it. */
char *agw_usage_ring_path(const char *ring_dir, const char *db_path);

/* Attaches the ring (creating it): with opts->ring_dir, the file
 * agw_usage_ring_path names, imaged to "<db_path>.usage.image" on the disk;
 * otherwise "<db_path>.usage" itself. With opts->drain, starts the drainer
 * thread, whose first work is to store what the image (and, with ring_dir,
 * "<db_path>.usage") holds. */
AGW_WARN_UNUSED agw_err agw_usage_log_open(const char *db_path, const agw_usage_log_opts *opts,
                                           agw_usage_log **out, char *err, size_t errlen);

/* With opts->drain: the drainer, when this process holds the lock, stores
 * every complete record still in the ring (trying for at most 2 s), then
 * stops. Detaches. NULL is fine. */
void agw_usage_log_close(agw_usage_log *l);

/* 1 when a new model call may start: the ring is below AGW_USAGE_ADMIT_FILL,
 * or usage.required is off. */
int agw_usage_accepting(agw_usage_log *l);
/* Counts a model call refused because agw_usage_accepting said no. */
void agw_usage_count_rejected(agw_usage_log *l);

/* Appends a copy of `r`. `held_end`: the record of a provider call whose
 * response end waits for it; with usage.required it waits for room in a full
 * ring for as long as it takes. Otherwise a record that finds the ring past
 * its limit is dropped, counted, and AGW_ETOOBIG returned. */
agw_err agw_usage_append(agw_usage_log *l, const agw_usage_record *r, int held_end);

typedef struct {
    uint64_t records;           /* in the ring, not yet stored */
    uint64_t capacity;
    uint64_t rejected;          /* model calls refused with 503: the ring was full */
    uint64_t dropped;           /* records lost: no room without usage.required, or torn */
    uint64_t written;           /* rows the drainers committed */
    uint64_t already_stored;    /* records stored again after a drainer died between its
                                   commit and freeing their slots: ignored, no new row */
    uint64_t drainer_errors;    /* failed commits (each retried) */
    int last_error;             /* SQLite result code of the latest failure; 0 = none
                                   since the last success */
    int64_t drainer_pid;        /* the process draining; 0 = none yet */
    int accepting;              /* agw_usage_accepting */
} agw_usage_stats;

/* The pool's figures (shared in the ring's header). */
void agw_usage_log_stats(agw_usage_log *l, agw_usage_stats *out);

/* One drain step on `db` (the drainer's connection): reads up to
 * AGW_USAGE_BATCH records, stores them in one transaction, then frees their
 * slots. Returns how many records it stored (0: the ring has none ready),
 * -1 when the transaction failed (nothing freed; the SQLite code in *rc). */
int agw_usage_drain_once(agw_usage_log *l, sqlite3 *db, int *rc);

/* Stores `n` ring entries holding records, INSERT OR IGNORE keyed by their
 * sequence numbers, in one transaction (from 64 entries on, sixteen rows to
 * a statement while sixteen are left), offering the CPU to others once at
 * least `yield_rows` rows went in since it last did (0: never). SQLITE_OK
 * (with *stored, if not NULL, the rows that were not in the table yet) or
 * the failing code. */
int agw_usage_store_entries(sqlite3 *db, const agw_ring_entry *e, size_t n, size_t yield_rows,
                            size_t *stored);

/* ---- retention ----
 *
 * usage.retention_days (antigw.cfg) bounds how long rows are kept. The
 * drainer prunes, on its own connection: every
 * AGW_USAGE_PRUNE_MS it deletes rows older than the window in transactions of
 * AGW_USAGE_PRUNE_BATCH rows (oldest first, through the usage_ts index),
 * pausing between them, so the write lock is never held for long and commits
 * of new rows get in between. */

#define AGW_USAGE_PRUNE_BATCH 500
#define AGW_USAGE_PRUNE_MS 60000

/* One prune transaction: deletes up to `batch` rows with ts < `before`
 * (Unix seconds), oldest first. Returns how many it deleted, -1 on a
 * database error (logged). */
int agw_usage_prune(sqlite3 *db, int64_t before, int batch);

#endif
