#include "tenant/usage.h"
#include "core/json.h"
#include "state/store.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

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

static int64_t int_at(agw_str obj, const char *const *path)
{
    agw_str v;
    int64_t n;
    if (agw_json_find_path(obj, path, &v) == AGW_OK && agw_json_int64(v, &n) == AGW_OK && n >= 0)
        return n;
    return -1;
}

/* OpenAI's usage object: prompt_tokens includes the cached ones, which the
 * record (Anthropic's convention) keeps apart. */
static void openai_usage(agw_usage_tap *t, agw_str usage)
{
    if (agw_json_type_of(usage) != AGW_JSON_OBJECT)
        return;
    int64_t prompt = int_at(usage, (const char *const[]){ "prompt_tokens", NULL });
    int64_t completion = int_at(usage, (const char *const[]){ "completion_tokens", NULL });
    int64_t cached =
        int_at(usage, (const char *const[]){ "prompt_tokens_details", "cached_tokens", NULL });
    if (cached < 0)
        cached = 0;
    if (prompt >= 0) {
        t->usage.input = prompt >= cached ? prompt - cached : 0;
        t->usage.cache_read = cached;
        t->usage.cache_write = 0;
    }
    if (completion >= 0)
        t->usage.output = completion;
}

static void anthropic_usage(agw_usage_tap *t, agw_str usage)
{
    if (agw_json_type_of(usage) != AGW_JSON_OBJECT)
        return;
    int64_t v;
    if ((v = int_at(usage, (const char *const[]){ "input_tokens", NULL })) >= 0)
        t->usage.input = v;
    if ((v = int_at(usage, (const char *const[]){ "output_tokens", NULL })) >= 0)
        t->usage.output = v; /* cumulative in message_delta: the last one wins */
    if ((v = int_at(usage, (const char *const[]){ "cache_read_input_tokens", NULL })) >= 0)
        t->usage.cache_read = v;
    if ((v = int_at(usage, (const char *const[]){ "cache_creation_input_tokens", NULL })) >= 0)
        t->usage.cache_write = v;
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

static void openai_chunk(agw_usage_tap *t, agw_str data)
{
    agw_str v, choice, k;
    if (agw_json_find(data, AGW_STR_LIT("usage"), &v) == AGW_OK)
        openai_usage(t, v);
    agw_json_iter it;
    if (agw_json_find(data, AGW_STR_LIT("choices"), &v) != AGW_OK ||
        agw_json_iter_init(&it, v) != AGW_OK)
        return;
    while (agw_json_iter_next(&it, &k, &choice)) {
        agw_str delta, s, calls;
        if (agw_json_find(choice, AGW_STR_LIT("delta"), &delta) != AGW_OK ||
            agw_json_type_of(delta) != AGW_JSON_OBJECT)
            continue;
        if (agw_json_find(delta, AGW_STR_LIT("content"), &s) == AGW_OK)
            saw_output(t, string_len(s));
        if (agw_json_find(delta, AGW_STR_LIT("reasoning_content"), &s) == AGW_OK)
            saw_output(t, string_len(s));
        agw_json_iter ci;
        agw_str call;
        if (agw_json_find(delta, AGW_STR_LIT("tool_calls"), &calls) == AGW_OK &&
            agw_json_iter_init(&ci, calls) == AGW_OK)
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
        agw_str delta, s;
        if (agw_json_find(data, AGW_STR_LIT("delta"), &delta) != AGW_OK)
            return;
        static const agw_str fields[] = { AGW_STR_LIT("text"), AGW_STR_LIT("partial_json"),
                                          AGW_STR_LIT("thinking") };
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
            if (agw_json_find(delta, fields[i], &s) == AGW_OK)
                saw_output(t, string_len(s) ? string_len(s) : 1);
    } else if (agw_str_eq(name, AGW_STR_LIT("content_block_start"))) {
        /* A tool call's name arrives here: the first output of a tool-only answer. */
        if (agw_json_find_path(data, (const char *const[]){ "content_block", "name", NULL }, &v) ==
            AGW_OK)
            saw_output(t, string_len(v));
    }
}

void agw_usage_tap_event(agw_usage_tap *t, agw_str name, agw_str data)
{
    /* Events are the upstream's: check them before any lookup. */
    if (data.len < 2 || data.ptr[0] != '{' || agw_json_validate(data, 64, NULL, 0) != AGW_OK)
        return;
    if (t->proto == AGW_PROTO_OPENAI)
        openai_chunk(t, data);
    else
        anthropic_event(t, name, data);
}

void agw_usage_tap_body(agw_usage_tap *t, agw_str body)
{
    agw_str v;
    if (agw_json_validate(body, 512, NULL, 0) != AGW_OK ||
        agw_json_find(body, AGW_STR_LIT("usage"), &v) != AGW_OK)
        return;
    if (t->proto == AGW_PROTO_OPENAI)
        openai_usage(t, v);
    else
        anthropic_usage(t, v);
}

/* ---- the writer ---- */

/* What a writer has done (under its lock). */
typedef struct {
    uint64_t submitted;   /* records accepted */
    uint64_t committed;   /* records in the database */
    uint64_t dropped;     /* records lost: queue full, or the database refused them */
    uint64_t commits;     /* transactions */
} agw_usage_stats;

struct agw_usage_writer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work;        /* the writer waits here */
    pthread_cond_t done;        /* submitters wait here for commits and room */
    agw_store *store;
    sqlite3_stmt *insert;
    unsigned flush_ms;
    size_t batch;

    agw_usage_record *ring;     /* AGW_USAGE_QUEUE records */
    uint64_t *queued_ms;        /* when each was queued */
    uint64_t seq_in;            /* records queued so far; the next goes to ring[seq_in % Q] */
    uint64_t seq_done;          /* records finished (committed or dropped) */
    int waiting;                /* durable submitters waiting for a commit */
    int stop;
    agw_usage_stats stats;

    /* Checkpoints run on their own connection and thread: a checkpoint
     * fsyncs, and a commit that triggered one (SQLite's auto-checkpoint)
     * would hold up every request waiting for that commit. */
    pthread_t ckpt_thread;
    pthread_cond_t ckpt_wake;
    agw_store *ckpt_store;
    int retention_days;         /* 0 = keep every row */
    uint64_t next_prune_ms;     /* agw_mono_ms() of the next prune round */
};

#define CHECKPOINT_MS 1000

#define INSERT_SQL                                                                         \
    "INSERT INTO usage(ts, key_id, provider, model, status, input_tokens, output_tokens,"  \
    " cache_read_tokens, cache_write_tokens, latency_ms, ttft_ms, streamed,"              \
    " tokens_estimated, credits) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"

/* One transaction for records [from, from + n). AGW_OK when committed. */
static agw_err commit_rows(agw_usage_writer *w, uint64_t from, size_t n)
{
    sqlite3 *db = agw_store_db(w->store);
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        agw_log_error("usage: cannot begin a transaction: %s", sqlite3_errmsg(db));
        return AGW_EIO;
    }
    sqlite3_stmt *st = w->insert;
    for (size_t i = 0; i < n; i++) {
        /* Slots between seq_done and seq_in are never written by submitters,
         * so reading them without the lock is safe. */
        const agw_usage_record *r = &w->ring[(from + i) % AGW_USAGE_QUEUE];
        sqlite3_bind_int64(st, 1, r->ts);
        if (r->key_id > 0)
            sqlite3_bind_int64(st, 2, r->key_id);
        else
            sqlite3_bind_null(st, 2);
        sqlite3_bind_text(st, 3, r->provider, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, r->model, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 5, r->status);
        sqlite3_bind_int64(st, 6, nonneg(r->input_tokens));
        sqlite3_bind_int64(st, 7, nonneg(r->output_tokens));
        sqlite3_bind_int64(st, 8, nonneg(r->cache_read_tokens));
        sqlite3_bind_int64(st, 9, nonneg(r->cache_write_tokens));
        sqlite3_bind_int64(st, 10, nonneg(r->latency_ms));
        if (r->ttft_ms >= 0)
            sqlite3_bind_int64(st, 11, r->ttft_ms);
        else
            sqlite3_bind_null(st, 11);
        sqlite3_bind_int(st, 12, r->streamed != 0);
        sqlite3_bind_int(st, 13, r->tokens_estimated != 0);
        if (r->credits >= 0)
            sqlite3_bind_double(st, 14, r->credits);
        else
            sqlite3_bind_null(st, 14);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) {
            agw_log_error("usage: insert failed: %s", sqlite3_errmsg(db));
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return AGW_EIO;
        }
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        agw_log_error("usage: commit failed: %s", sqlite3_errmsg(db));
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return AGW_EIO;
    }
    return AGW_OK;
}

static void deadline_in(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void *writer_main(void *arg)
{
    agw_usage_writer *w = arg;
    int failures = 0;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        uint64_t pending = w->seq_in - w->seq_done;
        if (pending == 0) {
            if (w->stop)
                break;
            pthread_cond_wait(&w->work, &w->mu);
            continue;
        }
        /* Commit now when someone waits for it, when a batch is full, when
         * stopping, or when the oldest record has waited flush_ms. */
        uint64_t age = agw_mono_ms() - w->queued_ms[w->seq_done % AGW_USAGE_QUEUE];
        if (!w->stop && !w->waiting && pending < w->batch && age < w->flush_ms) {
            struct timespec ts;
            deadline_in(&ts, (unsigned)(w->flush_ms - age));
            pthread_cond_timedwait(&w->work, &w->mu, &ts);
            continue;
        }
        size_t n = pending > AGW_USAGE_QUEUE ? AGW_USAGE_QUEUE : (size_t)pending;
        uint64_t from = w->seq_done;
        pthread_mutex_unlock(&w->mu);
        agw_err e = commit_rows(w, from, n);
        pthread_mutex_lock(&w->mu);
        if (e && ++failures < 3 && !w->stop) {
            /* Busy for longer than busy_timeout, or a full disk: try again soon. */
            struct timespec ts;
            deadline_in(&ts, 200);
            pthread_cond_timedwait(&w->work, &w->mu, &ts);
            continue;
        }
        if (e) {
            agw_log_error("usage: dropping %lu records the database refused",
                          (unsigned long)n);
            w->stats.dropped += n;
        } else {
            w->stats.committed += n;
            w->stats.commits++;
        }
        failures = 0;
        w->seq_done += n;
        pthread_cond_broadcast(&w->done);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
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

void agw_usage_writer_set_retention(agw_usage_writer *w, int days)
{
    pthread_mutex_lock(&w->mu);
    w->retention_days = days > 0 ? days : 0;
    w->next_prune_ms = 0;
    pthread_mutex_unlock(&w->mu);
}

static void *checkpoint_main(void *arg)
{
    agw_usage_writer *w = arg;
    sqlite3 *db = agw_store_db(w->ckpt_store);
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        struct timespec ts;
        deadline_in(&ts, CHECKPOINT_MS);
        pthread_cond_timedwait(&w->ckpt_wake, &w->mu, &ts);
        if (w->stop)
            break;
        pthread_mutex_unlock(&w->mu);
        /* PASSIVE never waits for readers or writers; what it cannot copy
         * now it copies next time. SQLITE_BUSY only means another process
         * is checkpointing. */
        int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            agw_log_warn("usage: checkpoint failed: %s", sqlite3_errmsg(db));
        pthread_mutex_lock(&w->mu);
        int days = w->retention_days;
        if (days > 0 && agw_mono_ms() >= w->next_prune_ms && !w->stop) {
            pthread_mutex_unlock(&w->mu);
            int more = prune_round(db, days);
            pthread_mutex_lock(&w->mu);
            if (w->retention_days == days) /* not changed meanwhile */
                w->next_prune_ms = agw_mono_ms() + (more ? 0 : AGW_USAGE_PRUNE_MS);
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

agw_err agw_usage_writer_start(const char *db_path, unsigned flush_ms, size_t batch,
                               agw_usage_writer **out, char *err, size_t errlen)
{
    *out = NULL;
    agw_store *store;
    agw_err e = agw_store_open(db_path, &store, err, errlen);
    if (e)
        return e;
    agw_store *ckpt;
    if ((e = agw_store_open(db_path, &ckpt, err, errlen))) {
        agw_store_close(store);
        return e;
    }
    agw_usage_writer *w = xcalloc(1, sizeof *w);
    w->store = store;
    w->ckpt_store = ckpt;
    if (sqlite3_exec(agw_store_db(store), "PRAGMA wal_autocheckpoint=0", NULL, NULL, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(agw_store_db(store), INSERT_SQL, -1, &w->insert, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "usage: %s", sqlite3_errmsg(agw_store_db(store)));
        agw_store_close(store);
        agw_store_close(ckpt);
        free(w);
        return AGW_EIO;
    }
    w->flush_ms = flush_ms ? flush_ms : AGW_USAGE_FLUSH_MS;
    w->batch = batch ? batch : AGW_USAGE_BATCH;
    w->ring = xcalloc(AGW_USAGE_QUEUE, sizeof *w->ring);
    w->queued_ms = xcalloc(AGW_USAGE_QUEUE, sizeof *w->queued_ms);
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->work, &ca);
    pthread_cond_init(&w->done, &ca);
    pthread_cond_init(&w->ckpt_wake, &ca);
    pthread_condattr_destroy(&ca);
    /* The thread starts with every signal blocked: it may be created before
     * the server blocks them in the main thread (fcgi_server.h), and a stop
     * signal taken here would never reach the thread that waits for it. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&w->thread, NULL, writer_main, w);
    if (rc == 0)
        rc = pthread_create(&w->ckpt_thread, NULL, checkpoint_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        agw_fatal(__FILE__, __LINE__, "cannot start the usage writer threads");
    *out = w;
    return AGW_OK;
}

agw_err agw_usage_submit(agw_usage_writer *w, const agw_usage_record *r, int durable)
{
    agw_err e = AGW_OK;
    pthread_mutex_lock(&w->mu);
    if (w->seq_in - w->seq_done >= AGW_USAGE_QUEUE && durable) {
        /* Full: wait for room a while rather than lose a provider call's record. */
        struct timespec ts;
        deadline_in(&ts, 5000);
        w->waiting++;
        pthread_cond_signal(&w->work);
        while (w->seq_in - w->seq_done >= AGW_USAGE_QUEUE && !w->stop &&
               pthread_cond_timedwait(&w->done, &w->mu, &ts) != ETIMEDOUT)
            ;
        w->waiting--;
    }
    if (w->seq_in - w->seq_done >= AGW_USAGE_QUEUE || w->stop) {
        w->stats.dropped++;
        pthread_mutex_unlock(&w->mu);
        agw_log_warn("usage: queue full, a record was dropped");
        return durable ? AGW_EIO : AGW_ETOOBIG;
    }
    uint64_t seq = w->seq_in++;
    w->ring[seq % AGW_USAGE_QUEUE] = *r;
    w->queued_ms[seq % AGW_USAGE_QUEUE] = agw_mono_ms();
    w->stats.submitted++;
    if (durable) {
        w->waiting++;
        pthread_cond_signal(&w->work);
        uint64_t dropped_before = w->stats.dropped;
        while (w->seq_done <= seq)
            pthread_cond_wait(&w->done, &w->mu);
        w->waiting--;
        if (w->stats.dropped != dropped_before)
            e = AGW_EIO; /* some batch was given up; maybe ours */
    } else if (w->seq_in - w->seq_done == 1 || w->seq_in - w->seq_done >= w->batch) {
        /* The first record of an empty queue starts the flush timer: the
         * writer sleeps without a deadline while there is nothing to write. */
        pthread_cond_signal(&w->work);
    }
    pthread_mutex_unlock(&w->mu);
    return e;
}

void agw_usage_writer_stop(agw_usage_writer *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->work);
    pthread_cond_broadcast(&w->done);
    pthread_cond_broadcast(&w->ckpt_wake);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_join(w->ckpt_thread, NULL);
    sqlite3_finalize(w->insert);
    agw_store_close(w->store);
    agw_store_close(w->ckpt_store);
    pthread_cond_destroy(&w->ckpt_wake);
    pthread_cond_destroy(&w->work);
    pthread_cond_destroy(&w->done);
    pthread_mutex_destroy(&w->mu);
    free(w->ring);
    free(w->queued_ms);
    free(w);
}
