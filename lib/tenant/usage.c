#include "tenant/usage.h"
#include "core/crypto.h"
#include "core/json.h"
#include "state/store.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- the record ---- */

void agw_usage_record_init(agw_usage_record *r)
{
    memset(r, 0, sizeof *r);
    r->ts = agw_wall_s();
    r->ttft_ms = -1;
    r->credits = -1;
}

static void copy_name(char *dst, size_t cap, agw_str s)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    /* Never end inside a UTF-8 sequence: back off continuation bytes. */
    if (n < s.len)
        while (n > 0 && ((unsigned char)s.ptr[n] & 0xc0) == 0x80)
            n--;
    if (n)
        memcpy(dst, s.ptr, n);
    dst[n] = '\0';
}

void agw_usage_record_names(agw_usage_record *r, agw_str provider, agw_str model)
{
    copy_name(r->provider, sizeof r->provider, provider);
    copy_name(r->model, sizeof r->model, model);
}

static int64_t nonneg(int64_t v)
{
    return v < 0 ? 0 : v;
}

void agw_usage_record_answer(agw_usage_record *r, const agw_usage_tap *tap, agw_ir_usage reported,
                             int status, int streamed, size_t request_bytes, uint64_t start_us,
                             int estimate)
{
    r->status = status;
    r->streamed = streamed;
    if (tap->first_output_us > start_us)
        r->ttft_ms = (int64_t)((tap->first_output_us - start_us) / 1000);
    if (reported.input >= 0 || reported.output >= 0) {
        r->input_tokens = nonneg(reported.input);
        r->output_tokens = nonneg(reported.output);
        r->cache_read_tokens = nonneg(reported.cache_read);
        r->cache_write_tokens = nonneg(reported.cache_write);
    } else if (status >= 200 && status <= 299 && estimate) {
        r->input_tokens = (int64_t)((request_bytes + 3) / 4);
        r->output_tokens = (tap->output_bytes + 3) / 4;
        r->tokens_estimated = 1;
    }
}

int64_t agw_usage_record_tokens(const agw_usage_record *r)
{
    return r->input_tokens + r->output_tokens + r->cache_read_tokens + r->cache_write_tokens;
}

/* ---- the tap ---- */

void agw_usage_tap_init(agw_usage_tap *t, agw_proto proto)
{
    memset(t, 0, sizeof *t);
    t->proto = proto;
    t->usage = (agw_ir_usage)AGW_IR_USAGE_UNKNOWN;
}

/* A token count: -1 when v is absent, not an integer, or negative. */
static int64_t count_of(agw_str v)
{
    int64_t n;
    return v.ptr && agw_json_int64(v, &n) == AGW_OK && n >= 0 ? n : -1;
}

/* A usage object whose input count includes the cached tokens, named in
 * `details` (OpenAI's chat and Responses APIs): the record, in Anthropic's
 * convention, keeps them apart. names: input, output, the details object. */
static void usage_with_cached(agw_usage_tap *t, agw_str usage, const char *const names[3])
{
    static const char *const detail_names[] = { "cached_tokens" };
    agw_str v[3], cached_v;
    if (agw_json_type_of(usage) != AGW_JSON_OBJECT)
        return;
    agw_json_collect(usage, names, 3, v, NULL);
    agw_json_collect(v[2], detail_names, 1, &cached_v, NULL);
    int64_t in = count_of(v[0]), out = count_of(v[1]), cached = count_of(cached_v);
    if (cached < 0)
        cached = 0;
    if (in >= 0) {
        t->usage.input = in >= cached ? in - cached : 0;
        t->usage.cache_read = cached;
        t->usage.cache_write = 0;
    }
    if (out >= 0)
        t->usage.output = out;
}

static void openai_usage(agw_usage_tap *t, agw_str usage)
{
    static const char *const names[] = { "prompt_tokens", "completion_tokens",
                                         "prompt_tokens_details" };
    usage_with_cached(t, usage, names);
}

static void anthropic_usage(agw_usage_tap *t, agw_str usage)
{
    static const char *const names[] = { "input_tokens", "output_tokens",
                                         "cache_read_input_tokens",
                                         "cache_creation_input_tokens" };
    agw_str v[4];
    if (agw_json_type_of(usage) != AGW_JSON_OBJECT)
        return;
    agw_json_collect(usage, names, 4, v, NULL);
    int64_t n;
    if ((n = count_of(v[0])) >= 0)
        t->usage.input = n;
    if ((n = count_of(v[1])) >= 0)
        t->usage.output = n; /* cumulative in message_delta: the last one wins */
    if ((n = count_of(v[2])) >= 0)
        t->usage.cache_read = n;
    if ((n = count_of(v[3])) >= 0)
        t->usage.cache_write = n;
}

static void saw_output(agw_usage_tap *t, size_t bytes)
{
    if (bytes == 0)
        return;
    t->output_bytes += (int64_t)bytes;
    if (!t->first_output_us)
        t->first_output_us = agw_mono_us();
}

/* The length of a string value's contents (escapes counted as written: this
 * feeds an estimate only). */
static size_t string_len(agw_str v)
{
    return agw_json_type_of(v) == AGW_JSON_STRING && v.len >= 2 ? v.len - 2 : 0;
}

/* One walk of each object (agw_json_collect) rather than one
 * agw_json_find per member: this runs for every event of a stream. */
static void openai_chunk(agw_usage_tap *t, agw_str data)
{
    static const char *const top_names[] = { "usage", "choices" };
    static const char *const delta_names[] = { "content", "reasoning_content", "tool_calls" };
    agw_str top[2], d[3], choice, delta, k;
    agw_json_iter it;
    agw_json_collect(data, top_names, 2, top, NULL);
    if (top[0].ptr)
        openai_usage(t, top[0]);
    if (!top[1].ptr || agw_json_iter_init(&it, top[1]) != AGW_OK)
        return;
    while (agw_json_iter_next(&it, &k, &choice)) {
        if (agw_json_find(choice, AGW_STR_LIT("delta"), &delta) != AGW_OK ||
            agw_json_type_of(delta) != AGW_JSON_OBJECT)
            continue;
        agw_json_collect(delta, delta_names, 3, d, NULL);
        saw_output(t, string_len(d[0]));
        saw_output(t, string_len(d[1]));
        agw_json_iter ci;
        agw_str call, s;
        if (d[2].ptr && agw_json_iter_init(&ci, d[2]) == AGW_OK)
            while (agw_json_iter_next(&ci, NULL, &call))
                if (agw_json_find_path(call, (const char *const[]){ "function", "arguments", NULL },
                                       &s) == AGW_OK)
                    saw_output(t, string_len(s) ? string_len(s) : 1);
    }
}

static void anthropic_event(agw_usage_tap *t, agw_str name, agw_str data)
{
    agw_str v;
    if (agw_str_eq(name, AGW_STR_LIT("message_start"))) {
        if (agw_json_find_path(data, (const char *const[]){ "message", "usage", NULL }, &v) ==
            AGW_OK)
            anthropic_usage(t, v);
    } else if (agw_str_eq(name, AGW_STR_LIT("message_delta"))) {
        if (agw_json_find(data, AGW_STR_LIT("usage"), &v) == AGW_OK)
            anthropic_usage(t, v);
    } else if (agw_str_eq(name, AGW_STR_LIT("content_block_delta"))) {
        static const char *const fields[] = { "text", "partial_json", "thinking" };
        agw_str delta, f[3];
        if (agw_json_find(data, AGW_STR_LIT("delta"), &delta) != AGW_OK)
            return;
        agw_json_collect(delta, fields, 3, f, NULL);
        for (size_t i = 0; i < 3; i++)
            if (f[i].ptr)
                saw_output(t, string_len(f[i]) ? string_len(f[i]) : 1);
    } else if (agw_str_eq(name, AGW_STR_LIT("content_block_start"))) {
        /* A tool call's name arrives here: the first output of a tool-only answer. */
        if (agw_json_find_path(data, (const char *const[]){ "content_block", "name", NULL }, &v) ==
            AGW_OK)
            saw_output(t, string_len(v));
    }
}

/* The Responses API's usage object: input_tokens includes the cached ones. */
static void responses_usage(agw_usage_tap *t, agw_str usage)
{
    static const char *const names[] = { "input_tokens", "output_tokens",
                                         "input_tokens_details" };
    usage_with_cached(t, usage, names);
}

/* Responses events name themselves in their data's "type". */
static void responses_event(agw_usage_tap *t, agw_str data)
{
    agw_str type, v;
    if (agw_json_find(data, AGW_STR_LIT("type"), &type) != AGW_OK ||
        agw_json_type_of(type) != AGW_JSON_STRING)
        return;
    if (agw_json_string_eq(type, AGW_STR_LIT("response.completed")) ||
        agw_json_string_eq(type, AGW_STR_LIT("response.incomplete")) ||
        agw_json_string_eq(type, AGW_STR_LIT("response.failed"))) {
        if (agw_json_find_path(data, (const char *const[]){ "response", "usage", NULL }, &v) ==
            AGW_OK)
            responses_usage(t, v);
    } else if (agw_json_string_eq(type, AGW_STR_LIT("response.output_item.added"))) {
        /* A function call's name: the first output of a call-only answer. */
        if (agw_json_find_path(data, (const char *const[]){ "item", "name", NULL }, &v) == AGW_OK)
            saw_output(t, string_len(v));
    } else if (agw_json_find(data, AGW_STR_LIT("delta"), &v) == AGW_OK) {
        saw_output(t, string_len(v) ? string_len(v) : 1);
    }
}

void agw_usage_tap_event(agw_usage_tap *t, agw_str name, agw_str data)
{
    /* Events are the upstream's: check them before any lookup. */
    if (data.len < 2 || data.ptr[0] != '{' || agw_json_validate(data, 64, NULL, 0) != AGW_OK)
        return;
    if (t->proto == AGW_PROTO_OPENAI)
        openai_chunk(t, data);
    else if (t->proto == AGW_PROTO_RESPONSES)
        responses_event(t, data);
    else
        anthropic_event(t, name, data);
}

void agw_usage_tap_body(agw_usage_tap *t, agw_str body)
{
    agw_str v;
    if (agw_json_find(body, AGW_STR_LIT("usage"), &v) != AGW_OK)
        return;
    if (t->proto == AGW_PROTO_OPENAI)
        openai_usage(t, v);
    else if (t->proto == AGW_PROTO_RESPONSES)
        responses_usage(t, v);
    else
        anthropic_usage(t, v);
}

/* ---- the log ---- */

/* The ring's record layout: the version of agw_usage_record's bytes and their
 * size (a change to either makes the pool refuse an old ring, ring.h). */
#define RING_LAYOUT ((3u << 16) | (uint32_t)sizeof(agw_usage_record)) /* 3: continuations, credits */
static_assert(sizeof(agw_usage_record) <= AGW_RING_PAYLOAD_MAX, "a record fits a ring slot");

/* The counters in the ring's header (agw_ring_counter). */
enum {
    C_REJECTED,
    C_DROPPED,
    C_WRITTEN,
    C_DRAINER_ERRORS,
    C_LAST_ERROR,
    C_DRAINER_PID,
    C_ALREADY_STORED,
};

struct agw_usage_log {
    agw_ring *ring;
    uint64_t admit_limit;       /* records in the ring past which calls are refused */
    int required;
    char *db_path;
    char *lock_path;
    char *image_path;           /* "<db>.usage.image": what a ring in memory syncs to */
    char *beside_path;          /* "<db>.usage" when the ring is in memory, else NULL */
    int ring_removed;           /* the drainer thread saw it (restart_if_ring_removed) */
    int retention_days;
    uint64_t wal_reset_bytes;
    agw_ring_entry *batch;      /* AGW_USAGE_BATCH entries: agw_usage_drain_once's copy,
                                   allocated at its first call */
    /* the drainer thread */
    int draining;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
};

static uint64_t counter(agw_usage_log *l, unsigned i)
{
    return atomic_load_explicit(agw_ring_counter(l->ring, i), memory_order_relaxed);
}

static void add(agw_usage_log *l, unsigned i, uint64_t n)
{
    atomic_fetch_add_explicit(agw_ring_counter(l->ring, i), n, memory_order_relaxed);
}

int agw_usage_accepting(agw_usage_log *l)
{
    return !l->required || agw_ring_used(l->ring) < l->admit_limit;
}

void agw_usage_count_rejected(agw_usage_log *l)
{
    add(l, C_REJECTED, 1);
}

agw_err agw_usage_append(agw_usage_log *l, const agw_usage_record *r, int held_end)
{
    if (!held_end && agw_ring_used(l->ring) >= l->admit_limit) {
        add(l, C_DROPPED, 1);
        return AGW_ETOOBIG;
    }
    uint64_t next_warn_ms = 0;
    for (unsigned tries = 0;; tries++) {
        agw_err e = agw_ring_append(l->ring, r, sizeof *r);
        if (e != AGW_ETOOBIG)
            return e;
        if (!held_end || !l->required) {
            add(l, C_DROPPED, 1);
            return AGW_ETOOBIG;
        }
        uint64_t now = agw_mono_ms();
        if (now >= next_warn_ms) {
            agw_log_warn("usage: the ring is full; a response waits for room for its record");
            next_warn_ms = now + 10000;
        }
        /* 1 ms at first, then 10 ms: many waiting threads must not spin. */
        struct timespec pause = { 0, (tries < 10 ? 1 : 10) * 1000000L };
        nanosleep(&pause, NULL);
    }
}

void agw_usage_log_stats(agw_usage_log *l, agw_usage_stats *out)
{
    memset(out, 0, sizeof *out);
    out->records = agw_ring_used(l->ring);
    out->capacity = agw_ring_capacity(l->ring);
    out->rejected = counter(l, C_REJECTED);
    out->dropped = counter(l, C_DROPPED);
    out->written = counter(l, C_WRITTEN);
    out->drainer_errors = counter(l, C_DRAINER_ERRORS);
    out->last_error = (int)counter(l, C_LAST_ERROR);
    out->drainer_pid = (int64_t)counter(l, C_DRAINER_PID);
    out->already_stored = counter(l, C_ALREADY_STORED);
    out->accepting = agw_usage_accepting(l);
}

/* Rows go in INSERT_ROWS at a time, in one statement, and the rest of a
 * batch one by one: SQLite's cost per statement is about as much again as a
 * row's own (the table and its three indexes alone under callgrind: 23k
 * instructions a row one at a time, 13.4k sixteen at a time, and 64 at a
 * time save only 3 % more). Preparing the statement of sixteen costs about
 * 500k instructions (the one-row statement 71k), so a batch uses it from
 * INSERT_MANY_FROM rows on; below, it would cost more than it saves. */
#define INSERT_COLUMNS 16
#define INSERT_ROWS 16
#define INSERT_MANY_FROM 64
#define INSERT_HEAD                                                                        \
    "INSERT OR IGNORE INTO usage(ts, key_id, provider, model, status, input_tokens,"       \
    " output_tokens, cache_read_tokens, cache_write_tokens, latency_ms, ttft_ms, streamed," \
    " tokens_estimated, ring_seq, continuations, credits) VALUES "
#define INSERT_ROW "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
#define INSERT_ROW2 INSERT_ROW "," INSERT_ROW
#define INSERT_ROW4 INSERT_ROW2 "," INSERT_ROW2
#define INSERT_ROW8 INSERT_ROW4 "," INSERT_ROW4
#define INSERT_ROW16 INSERT_ROW8 "," INSERT_ROW8

/* The record of ring entry `e` as the parameters after `base` of `st`. */
static void bind_entry(sqlite3_stmt *st, int base, const agw_ring_entry *e)
{
    agw_usage_record r;
    memset(&r, 0, sizeof r);
    memcpy(&r, e->data, e->len < sizeof r ? e->len : sizeof r);
    sqlite3_bind_int64(st, base + 1, r.ts);
    if (r.key_id > 0)
        sqlite3_bind_int64(st, base + 2, r.key_id);
    else
        sqlite3_bind_null(st, base + 2);
    /* The names come from a file other processes write: bounded reads. */
    sqlite3_bind_text(st, base + 3, r.provider, (int)strnlen(r.provider, sizeof r.provider),
                      SQLITE_TRANSIENT);
    sqlite3_bind_text(st, base + 4, r.model, (int)strnlen(r.model, sizeof r.model),
                      SQLITE_TRANSIENT);
    sqlite3_bind_int(st, base + 5, r.status);
    sqlite3_bind_int64(st, base + 6, nonneg(r.input_tokens));
    sqlite3_bind_int64(st, base + 7, nonneg(r.output_tokens));
    sqlite3_bind_int64(st, base + 8, nonneg(r.cache_read_tokens));
    sqlite3_bind_int64(st, base + 9, nonneg(r.cache_write_tokens));
    sqlite3_bind_int64(st, base + 10, nonneg(r.latency_ms));
    if (r.ttft_ms >= 0)
        sqlite3_bind_int64(st, base + 11, r.ttft_ms);
    else
        sqlite3_bind_null(st, base + 11);
    sqlite3_bind_int(st, base + 12, r.streamed != 0);
    sqlite3_bind_int(st, base + 13, r.tokens_estimated != 0);
    sqlite3_bind_int64(st, base + 14, (sqlite3_int64)e->seq);
    sqlite3_bind_int(st, base + 15, r.continuations);
    if (r.credits >= 0)
        sqlite3_bind_double(st, base + 16, r.credits);
    else
        sqlite3_bind_null(st, base + 16);
}

int agw_usage_store_entries(sqlite3 *db, const agw_ring_entry *e, size_t n, size_t yield_rows,
                            size_t *stored)
{
    sqlite3_stmt *one = NULL, *many = NULL;
    size_t added = 0, unyielded = 0;
    size_t in_many = n >= INSERT_MANY_FROM ? n / INSERT_ROWS * INSERT_ROWS : 0;
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK && in_many)
        rc = sqlite3_prepare_v3(db, INSERT_HEAD INSERT_ROW16, -1, SQLITE_PREPARE_PERSISTENT,
                                &many, NULL);
    if (rc == SQLITE_OK && in_many < n)
        rc = sqlite3_prepare_v3(db, INSERT_HEAD INSERT_ROW, -1, SQLITE_PREPARE_PERSISTENT, &one,
                                NULL);
    for (size_t i = 0; rc == SQLITE_OK && i < n;) {
        size_t rows = i < in_many ? INSERT_ROWS : 1;
        sqlite3_stmt *st = rows > 1 ? many : one;
        for (size_t j = 0; j < rows; j++)
            bind_entry(st, (int)j * INSERT_COLUMNS, &e[i + j]);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
            break;
        rc = SQLITE_OK;
        /* OR IGNORE: the rows already stored (a batch stored again) count none. */
        added += (size_t)sqlite3_changes(db);
        i += rows;
        if (yield_rows && (unyielded += rows) >= yield_rows) {
            sched_yield();
            unyielded = 0;
        }
    }
    sqlite3_finalize(one);
    sqlite3_finalize(many);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        int keep = sqlite3_extended_errcode(db);
        if (!sqlite3_get_autocommit(db))
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return keep != SQLITE_OK ? keep : rc;
    }
    if (stored)
        *stored = added;
    return SQLITE_OK;
}

/* Fewer records wait than 1/AGW_USAGE_IDLE_BELOW of the ring: the drainer's
 * work gives way to requests (usage.h). */
static int nearly_empty(agw_usage_log *l)
{
    return agw_ring_used(l->ring) < agw_ring_capacity(l->ring) / AGW_USAGE_IDLE_BELOW;
}

/* One batch from `from` (the log's ring, or a ring file replay reads) into
 * the database: read, store, and only then consume. -1 with *rc when the
 * store failed (nothing consumed); otherwise how many records it read,
 * *stored of them new rows. *torn gets the slots it abandoned either way. */
static int store_batch(agw_usage_log *l, agw_ring *from, sqlite3 *db, size_t yield_rows,
                       size_t *stored, uint64_t *torn, int *rc)
{
    if (!l->batch) /* only the drainer's process needs it */
        l->batch = xmalloc(AGW_USAGE_BATCH * sizeof *l->batch);
    uint64_t next;
    *rc = SQLITE_OK;
    *stored = 0;
    size_t n = agw_ring_read(from, l->batch, AGW_USAGE_BATCH, &next, torn);
    if (n && (*rc = agw_usage_store_entries(db, l->batch, n, yield_rows, stored)) != SQLITE_OK)
        return -1;
    /* Only now: a drainer that dies before this line leaves the batch in the
     * ring, and its successor's INSERT OR IGNORE finds the rows there. */
    agw_ring_consume(from, next);
    return (int)n;
}

int agw_usage_drain_once(agw_usage_log *l, sqlite3 *db, int *rc)
{
    size_t stored;
    uint64_t torn;
    size_t yield_rows = nearly_empty(l) ? AGW_USAGE_YIELD_ROWS : 0;
    int n = store_batch(l, l->ring, db, yield_rows, &stored, &torn, rc);
    if (torn)
        add(l, C_DROPPED, torn);
    if (n > 0) {
        add(l, C_WRITTEN, stored);
        add(l, C_ALREADY_STORED, (size_t)n - stored);
        atomic_store(agw_ring_counter(l->ring, C_LAST_ERROR), 0);
    }
    return n;
}

int agw_usage_prune(sqlite3 *db, int64_t before, int batch)
{
    static const char sql[] = "DELETE FROM usage WHERE rowid IN"
                              " (SELECT rowid FROM usage WHERE ts < ?1 ORDER BY ts LIMIT ?2)";
    sqlite3_stmt *st = NULL;
    int n = -1;
    /* IMMEDIATE: a deferred transaction that read first could not take the
     * write lock after another connection committed (WAL snapshot). */
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    if (sqlite3_prepare_v2(db, sql, sizeof sql - 1, &st, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_bind_int64(st, 1, before);
    sqlite3_bind_int(st, 2, batch);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto fail;
    n = sqlite3_changes(db);
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        n = -1;
        goto fail;
    }
    sqlite3_finalize(st);
    return n;
fail:
    agw_log_warn("usage: pruning old rows: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

/* Longest a prune round runs before the thread goes back to checkpointing;
 * a backlog is worked off over the following ticks. */
#define PRUNE_ROUND_MS 250
/* Pause between two prune transactions: room for other writers' commits. */
#define PRUNE_PAUSE_MS 5

/* Deletes rows older than `days` days, batch by batch. Returns 1 when
 * rows may be left (the round ran out of time), 0 when done or failed. */
static int prune_round(sqlite3 *db, int days)
{
    int64_t before = agw_wall_s() - (int64_t)days * 86400;
    uint64_t start = agw_mono_ms();
    for (;;) {
        int n = agw_usage_prune(db, before, AGW_USAGE_PRUNE_BATCH);
        if (n < AGW_USAGE_PRUNE_BATCH)
            return 0;
        if (agw_mono_ms() - start >= PRUNE_ROUND_MS)
            return 1;
        struct timespec pause = { 0, PRUNE_PAUSE_MS * 1000000L };
        nanosleep(&pause, NULL);
    }
}

/* Sleeps `ms` or until stopped; returns 1 when stopped. */
static int nap(agw_usage_log *l, unsigned ms)
{
    struct timespec ts;
    agw_mono_deadline(&ts, ms);
    pthread_mutex_lock(&l->mu);
    while (!l->stop && pthread_cond_timedwait(&l->cv, &l->mu, &ts) != ETIMEDOUT)
        ;
    int stop = l->stop;
    pthread_mutex_unlock(&l->mu);
    return stop;
}

/* A removed ring file (ring.h) takes the pool apart: processes started from
 * now on append to a new ring that the drainer, attached to the old one,
 * never reads. So every process restarts (its supervisor starts a new one
 * on the new ring); the last to leave the old ring stores what it holds
 * (agw_usage_log_close). Checked by the drainer thread about once a second. */
static void restart_if_ring_removed(agw_usage_log *l)
{
    if (l->ring_removed || !agw_ring_removed(l->ring))
        return;
    l->ring_removed = 1;
    agw_log_error("usage: the ring's file was removed while in use (systemd-logind removes a "
                  "user's files in /dev/shm when their last session ends: set usage.ring_dir "
                  "to a directory of your own); restarting this process");
    kill(getpid(), SIGTERM); /* the server's graceful stop */
}

static int stopping(agw_usage_log *l)
{
    pthread_mutex_lock(&l->mu);
    int stop = l->stop;
    pthread_mutex_unlock(&l->mu);
    return stop;
}

/* The drainer's connection: commits that are on the disk when they return
 * (synchronous=FULL costs this thread only), checkpoints by hand. */
static agw_store *open_drain_store(agw_usage_log *l)
{
    char err[AGW_ERR_LEN];
    agw_store *store;
    if (agw_store_open(l->db_path, &store, err, sizeof err) != AGW_OK) {
        agw_log_error("usage drainer: database: %s", err);
        return NULL;
    }
    /* A short busy timeout: the drainer retries anyway, and between its
     * attempts it syncs the records that wait (lead). */
    sqlite3_busy_timeout(agw_store_db(store), AGW_USAGE_BUSY_MS);
    if (sqlite3_exec(agw_store_db(store), "PRAGMA wal_autocheckpoint=0; PRAGMA synchronous=FULL",
                     NULL, NULL, NULL) != SQLITE_OK) {
        agw_log_error("usage drainer: %s", sqlite3_errmsg(agw_store_db(store)));
        agw_store_close(store);
        return NULL;
    }
    return store;
}

static uint64_t wal_bytes(const agw_usage_log *l)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s-wal", l->db_path);
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Between batches: a TRUNCATE checkpoint when the WAL has grown past
 * wal_reset_bytes (the only kind that empties it while writes go
 * on), else a PASSIVE one at most every second. */
static void checkpoint(agw_usage_log *l, sqlite3 *db, uint64_t *last_ms)
{
    uint64_t now = agw_mono_ms();
    int mode;
    if (wal_bytes(l) > l->wal_reset_bytes)
        mode = SQLITE_CHECKPOINT_TRUNCATE;
    else if (now - *last_ms >= 1000)
        mode = SQLITE_CHECKPOINT_PASSIVE;
    else
        return;
    *last_ms = now;
    int rc = sqlite3_wal_checkpoint_v2(db, NULL, mode, NULL, NULL);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        agw_log_warn("usage drainer: checkpoint failed: %s", sqlite3_errmsg(db));
}

/* What one round of the drainer's work needs, whichever thread runs it. */
typedef struct {
    agw_usage_log *l;
    sqlite3 *db;
    uint64_t last_ckpt_ms, next_prune_ms;
} drain_work;

/* One round: a batch, then the checkpoint and the prune that are due.
 * Returns the batch's size, or -1 (the SQLite code in *rc) when it failed. */
static int drain_round(drain_work *w, int *rc)
{
    int n = agw_usage_drain_once(w->l, w->db, rc);
    if (n < 0)
        return n;
    checkpoint(w->l, w->db, &w->last_ckpt_ms);
    uint64_t now = agw_mono_ms();
    if (w->l->retention_days > 0 && now >= w->next_prune_ms)
        w->next_prune_ms =
            now + (prune_round(w->db, w->l->retention_days) ? 0 : AGW_USAGE_PRUNE_MS);
    return n;
}

/* The SCHED_IDLE helper (AGW_USAGE_IDLE_BELOW): runs a round when asked,
 * while the drainer thread waits for it, so the two never use the
 * connection at once. */
typedef struct {
    drain_work *work;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int asked, quit; /* under mu */
    int n, rc;       /* the last round's result, under mu */
} idle_helper;

static void *idle_helper_main(void *arg)
{
    idle_helper *h = arg;
    pthread_setname_np(pthread_self(), "agw-drain-idle");
#ifdef SCHED_IDLE
    struct sched_param none = { 0 };
    int e = pthread_setschedparam(pthread_self(), SCHED_IDLE, &none);
    if (e != 0)
        agw_log_warn("usage drainer: SCHED_IDLE: %s; its rounds may delay requests", strerror(e));
#endif
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (!h->asked && !h->quit)
            pthread_cond_wait(&h->cv, &h->mu);
        if (h->quit)
            break;
        pthread_mutex_unlock(&h->mu);
        int rc = SQLITE_OK;
        int n = drain_round(h->work, &rc);
        pthread_mutex_lock(&h->mu);
        h->n = n;
        h->rc = rc;
        h->asked = 0;
        pthread_cond_broadcast(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* 0 when the helper runs; otherwise the drainer thread does every round. */
static int idle_helper_start(idle_helper *h, drain_work *w)
{
    memset(h, 0, sizeof *h);
    h->work = w;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    /* Created from the drainer thread, it inherits its blocked signals. */
    int e = pthread_create(&h->thread, NULL, idle_helper_main, h);
    if (e != 0) {
        agw_log_warn("usage drainer: no idle helper thread (%s); its rounds may delay requests",
                     strerror(e));
        pthread_cond_destroy(&h->cv);
        pthread_mutex_destroy(&h->mu);
    }
    return e;
}

static int idle_helper_round(idle_helper *h, int *rc)
{
    pthread_mutex_lock(&h->mu);
    h->asked = 1;
    pthread_cond_broadcast(&h->cv);
    while (h->asked)
        pthread_cond_wait(&h->cv, &h->mu);
    int n = h->n;
    *rc = h->rc;
    pthread_mutex_unlock(&h->mu);
    return n;
}

static void idle_helper_stop(idle_helper *h)
{
    pthread_mutex_lock(&h->mu);
    h->quit = 1;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->thread, NULL);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
}

/* Stores what a ring file on the disk holds: the ring's image (records that
 * waited for the database when the ring was last synced: after a reboot,
 * the only copy), read before this drainer's first sync overwrites it; or a
 * ring beside the database that processes of an earlier version, or with
 * usage.ring_dir "", wrote (read again every second: such processes may
 * still run). 1 when done (or nothing to do), 0 to try again later, when
 * the database takes rows again. */
static int replay(agw_usage_log *l, sqlite3 *db, const char *path, int *rc)
{
    *rc = SQLITE_OK;
    if (!path)
        return 1;
    agw_ring *img;
    uint64_t unsynced;
    char err[AGW_ERR_LEN];
    agw_err e = agw_ring_open_image(path, RING_LAYOUT, &img, &unsynced, err, sizeof err);
    if (e == AGW_ENOTFOUND)
        return 1;
    if (e) {
        /* Kept for whoever can read it; the next sync starts a new image. */
        size_t n = strlen(path) + sizeof ".unread";
        char *aside = xmalloc(n);
        snprintf(aside, n, "%s.unread", path);
        agw_log_error("usage: %s; moved to %s, its records are not stored", err, aside);
        int moved = rename(path, aside) == 0;
        free(aside);
        return moved;
    }
    size_t total = 0, stored_total = 0, stored;
    uint64_t torn;
    int n;
    while ((n = store_batch(l, img, db, 0, &stored, &torn, rc)) > 0) {
        total += (size_t)n;
        stored_total += stored;
    }
    agw_ring_detach(img);
    add(l, C_WRITTEN, stored_total);
    add(l, C_ALREADY_STORED, total - stored_total);
    if (total)
        agw_log_info("usage: %s held %zu records (%zu new to the database, %llu slots not "
                     "synced)", path, total, stored_total, (unsigned long long)unsynced);
    return *rc == SQLITE_OK;
}

/* The last batches, through `store` (NULL: nothing to do), for at most `ms`:
 * until no complete record is left or, with `everything`, until the ring is
 * empty, waiting out slots still being written (agw_ring_read abandons
 * them after AGW_RING_STALL_MS). A failed commit is tried again after a
 * pause. */
static void store_for(agw_usage_log *l, agw_store *store, uint64_t ms, int everything)
{
    uint64_t until = agw_mono_ms() + ms;
    while (store && agw_mono_ms() < until) {
        int rc;
        int n = agw_usage_drain_once(l, agw_store_db(store), &rc);
        if (n == 0 && (!everything || agw_ring_used(l->ring) == 0))
            break;
        if (n <= 0) {
            struct timespec pause = { 0, 50 * 1000000L };
            nanosleep(&pause, NULL);
        }
    }
}

/* The elected process's work: drain, retry, checkpoint, prune, until stopped. */
static void lead(agw_usage_log *l)
{
    agw_store *store = NULL;
    unsigned backoff_ms = 0;
    uint64_t last_sync_ms = agw_mono_ms(), no_idle_until_ms = 0;
    drain_work work = { .l = l };
    int replayed = 0; /* the image read: agw_ring_sync may overwrite it */
    idle_helper helper;
    int have_helper = idle_helper_start(&helper, &work) == 0;
    /* The ring's head at each of the last AGW_USAGE_SYNC_AGE_S ticks (one a
     * second, or one per second elapsed when an attempt took longer), oldest
     * at `tick`. */
    uint64_t heads[AGW_USAGE_SYNC_AGE_S];
    unsigned tick = 0;
    for (unsigned i = 0; i < AGW_USAGE_SYNC_AGE_S; i++)
        heads[i] = agw_ring_head(l->ring);
    atomic_store(agw_ring_counter(l->ring, C_DRAINER_PID), (uint64_t)getpid());
    agw_log_info("usage: this process stores the pool's usage records");
    while (!stopping(l)) {
        /* Once a second: the records that have waited AGW_USAGE_SYNC_AGE_S
         * seconds and are still not stored (the database is not taking
         * them) reach the disk with the ring's header, so that a power loss
         * finds them. */
        uint64_t now = agw_mono_ms(), seconds = (now - last_sync_ms) / 1000;
        if (seconds && replayed) {
            uint64_t before = 0;
            for (uint64_t i = 0; i < seconds && i < AGW_USAGE_SYNC_AGE_S; i++) {
                before = heads[tick];
                heads[tick] = agw_ring_head(l->ring);
                tick = (tick + 1) % AGW_USAGE_SYNC_AGE_S;
            }
            (void)agw_ring_sync(l->ring, before);
        }
        if (seconds) {
            restart_if_ring_removed(l);
            if (replayed && store)
                (void)replay(l, agw_store_db(store), l->beside_path, &(int){ 0 });
            last_sync_ms = now;
        }
        if (!store && !(store = open_drain_store(l))) {
            add(l, C_DRAINER_ERRORS, 1);
            atomic_store(agw_ring_counter(l->ring, C_LAST_ERROR), SQLITE_CANTOPEN);
            if (nap(l, AGW_USAGE_RETRY_MAX_MS))
                break;
            continue;
        }
        work.db = agw_store_db(store);
        int rc;
        if (!replayed && !(replayed = replay(l, work.db, l->image_path, &rc) &&
                                      replay(l, work.db, l->beside_path, &rc))) {
            add(l, C_DRAINER_ERRORS, 1);
            atomic_store(agw_ring_counter(l->ring, C_LAST_ERROR), (uint64_t)rc);
            if (nap(l, AGW_USAGE_RETRY_MAX_MS))
                break;
            continue;
        }
        int idle = have_helper && now >= no_idle_until_ms && nearly_empty(l);
        uint64_t round_start_ms = agw_mono_ms();
        int n = idle ? idle_helper_round(&helper, &rc) : drain_round(&work, &rc);
        if (idle && agw_mono_ms() - round_start_ms > AGW_USAGE_IDLE_SLOW_MS)
            no_idle_until_ms = agw_mono_ms() + AGW_USAGE_IDLE_PAUSE_MS;
        if (n < 0) {
            add(l, C_DRAINER_ERRORS, 1);
            atomic_store(agw_ring_counter(l->ring, C_LAST_ERROR), (uint64_t)rc);
            backoff_ms = backoff_ms ? backoff_ms * 2 : 50;
            if (backoff_ms > AGW_USAGE_RETRY_MAX_MS)
                backoff_ms = AGW_USAGE_RETRY_MAX_MS;
            agw_log_error("usage drainer: %s; %llu records wait in the ring, retrying in %u ms",
                          sqlite3_errstr(rc), (unsigned long long)agw_ring_used(l->ring),
                          backoff_ms);
            if (nap(l, backoff_ms))
                break;
            continue;
        }
        backoff_ms = 0;
        if (n < AGW_USAGE_BATCH && nap(l, AGW_USAGE_POLL_MS))
            break;
    }
    if (have_helper)
        idle_helper_stop(&helper);
    /* Stopping: store what is complete, for at most 2 s. */
    store_for(l, store, 2000, 0);
    if (store && replayed)
        (void)agw_ring_sync(l->ring, agw_ring_head(l->ring));
    agw_store_close(store);
}

static void *drainer_main(void *arg)
{
    agw_usage_log *l = arg;
    pthread_setname_np(pthread_self(), "agw-drainer"); /* as top -H and perf show it */
    int fd = open(l->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        agw_log_error("usage drainer: %s: %s: this process will not store records",
                      l->lock_path, strerror(errno));
        return NULL;
    }
    while (!stopping(l)) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            lead(l);
            break;
        }
        restart_if_ring_removed(l);
        if (nap(l, AGW_USAGE_ELECT_MS))
            break;
    }
    close(fd); /* releases the lock */
    return NULL;
}

char *agw_usage_ring_path(const char *ring_dir, const char *db_path)
{
    /* The directory's real path and the file's name: the same whether or
     * not the database exists yet. */
    const char *slash = strrchr(db_path, '/');
    char dir[PATH_MAX], real[PATH_MAX], which[2 * PATH_MAX];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == db_path ? 1 : (int)(slash - db_path), db_path);
    if (realpath(dir, real))
        snprintf(which, sizeof which, "%s%s%s", real, strcmp(real, "/") ? "/" : "",
                 slash ? slash + 1 : db_path);
    else
        snprintf(which, sizeof which, "%s", db_path);
    unsigned char digest[AGW_SHA256_LEN];
    agw_sha256(agw_str_c(which), digest);
    size_t n = strlen(ring_dir) + sizeof "/antigw-0123456789abcdef.usage";
    char *path = xmalloc(n);
    int at = snprintf(path, n, "%s/antigw-", ring_dir);
    for (int i = 0; i < 8; i++)
        at += snprintf(path + at, n - (size_t)at, "%02x", digest[i]);
    snprintf(path + at, n - (size_t)at, ".usage");
    return path;
}

agw_err agw_usage_log_open(const char *db_path, const agw_usage_log_opts *opts,
                           agw_usage_log **out, char *err, size_t errlen)
{
    *out = NULL;
    uint32_t slots = opts->ring_records ? opts->ring_records : AGW_USAGE_RING_SLOTS;
    size_t n = strlen(db_path) + sizeof ".usage.image";
    char *image_path = xmalloc(n), *beside_path = xmalloc(n), *ring_path;
    snprintf(image_path, n, "%s.usage.image", db_path);
    snprintf(beside_path, n, "%s.usage", db_path);
    int in_memory = opts->ring_dir && opts->ring_dir[0];
    if (in_memory) {
        ring_path = agw_usage_ring_path(opts->ring_dir, db_path);
    } else {
        ring_path = beside_path;
        beside_path = NULL;
    }
    agw_ring *ring;
    agw_err e = agw_ring_attach(ring_path, in_memory ? image_path : NULL, RING_LAYOUT, slots,
                                &ring, err, errlen);
    free(ring_path);
    if (e == AGW_EIO && in_memory && errlen) {
        /* A container's /dev/shm may be small (Docker's is 64 MiB). */
        size_t used = strlen(err);
        snprintf(err + used, errlen - used,
                 " (the ring takes %u MiB of usage.ring_dir, %s: make room, or set "
                 "usage.ring_dir elsewhere, or lower usage.ring_records)",
                 (unsigned)(((uint64_t)slots * AGW_RING_SLOT_BYTES + AGW_RING_HEADER_BYTES +
                             (1u << 20) - 1) >> 20), opts->ring_dir);
    }
    if (e) {
        free(image_path);
        free(beside_path);
        return e;
    }
    agw_usage_log *l = xcalloc(1, sizeof *l);
    l->ring = ring;
    l->image_path = image_path;
    l->beside_path = beside_path;
    l->admit_limit = (uint64_t)((double)agw_ring_capacity(ring) * AGW_USAGE_ADMIT_FILL);
    l->required = opts->required;
    l->retention_days = opts->retention_days > 0 ? opts->retention_days : 0;
    l->wal_reset_bytes = opts->wal_reset_bytes ? opts->wal_reset_bytes : AGW_USAGE_WAL_RESET_BYTES;
    l->db_path = xstrdup(db_path);
    l->lock_path = xmalloc(n);
    snprintf(l->lock_path, n, "%s.usage.lock", db_path);
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (opts->drain) {
        /* The thread starts with every signal blocked: it may be created
         * before the server blocks them in the main thread (fcgi_server.h),
         * and a stop signal taken here would never reach the thread that
         * waits for it. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int rc = pthread_create(&l->thread, NULL, drainer_main, l);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc != 0)
            agw_fatal(__FILE__, __LINE__, "cannot start the usage drainer thread");
        l->draining = 1;
    }
    *out = l;
    return AGW_OK;
}

/* The last process attached to a removed ring: nobody else will ever read
 * it, so it stores what is left (trying for AGW_USAGE_ORPHAN_MS). */
static void store_the_rest(agw_usage_log *l)
{
    agw_store *store = open_drain_store(l);
    store_for(l, store, AGW_USAGE_ORPHAN_MS, 1);
    agw_store_close(store);
    if (agw_ring_used(l->ring) > 0)
        agw_log_error("usage: %llu records of the removed ring could not be stored: lost",
                      (unsigned long long)agw_ring_used(l->ring));
    else
        agw_log_info("usage: stored what the removed ring held");
}

void agw_usage_log_close(agw_usage_log *l)
{
    if (!l)
        return;
    if (l->draining) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
    }
    if (agw_ring_removed(l->ring) && agw_ring_used(l->ring) > 0 && agw_ring_sole_user(l->ring))
        store_the_rest(l);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    agw_ring_detach(l->ring);
    free(l->db_path);
    free(l->lock_path);
    free(l->image_path);
    free(l->beside_path);
    free(l->batch);
    free(l);
}
