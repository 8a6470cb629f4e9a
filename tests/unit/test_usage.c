/* Unit tests for lib/usage: reading token counts on the side of OpenAI and
 * Anthropic answers (streamed and not), the record's names, and the log:
 * records reach the database through the ring, a batch stored twice adds no
 * row, the drainer thread stores everything, a full ring refuses or drops as
 * usage.required says, and old rows are pruned. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "state/store.h"
#include "threadproc.h"
/* The module itself, so the tests reach the log's ring. */
#include "tenant/usage.c"

typedef struct {
    char dir[64];
    char db[128];
    agw_store *reader; /* another connection, as another process would see it */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    strcpy(f->dir, "/tmp/agw-usage-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->db, sizeof f->db, "%s/u.db", f->dir);
    char err[256];
    if (agw_store_open(f->db, &f->reader, err, sizeof err) != AGW_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    agw_store_close(f->reader);
    char p[200];
    const char *const suffix[] = { "", "-wal", "-shm" };
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", f->db, suffix[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static long long count(fixture *f, const char *where)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM usage%s%s", where ? " WHERE " : "",
             where ? where : "");
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(agw_store_db(f->reader), sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* ---- the tap ---- */

/* 1 when the provider reported input and output counts. */
static int tap_reported(const agw_usage_tap *t)
{
    return t->usage.input >= 0 && t->usage.output >= 0;
}

static void test_tap_openai(void **state)
{
    (void)state;
    agw_usage_tap t;
    agw_usage_tap_init(&t, AGW_PROTO_OPENAI);
    assert_int_equal(tap_reported(&t), 0);
    agw_usage_tap_event(&t, (agw_str){ NULL, 0 },
                        AGW_STR_LIT("{\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],"
                                    "\"usage\":null}"));
    assert_int_equal(t.first_output_us, 0); /* an empty delta is not output */
    agw_usage_tap_event(&t, (agw_str){ NULL, 0 },
                        AGW_STR_LIT("{\"choices\":[{\"delta\":{\"content\":\"Hello\"}}]}"));
    assert_true(t.first_output_us > 0);
    assert_int_equal(t.output_bytes, 5);
    agw_usage_tap_event(&t, (agw_str){ NULL, 0 },
                        AGW_STR_LIT("{\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":"
                                    "\"xyz\"}},{\"index\":1,\"delta\":{\"content\":\"ab\"}}]}"));
    assert_int_equal(t.output_bytes, 10); /* every choice, reasoning too */
    agw_usage_tap_event(&t, (agw_str){ NULL, 0 },
                        AGW_STR_LIT("{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,"
                                    "\"function\":{\"arguments\":\"{\\\"a\\\":1}\"}}]}}]}"));
    assert_int_equal(t.output_bytes, 10 + (int64_t)strlen("{\\\"a\\\":1}"));
    agw_usage_tap_event(&t, (agw_str){ NULL, 0 }, AGW_STR_LIT("not json {"));
    agw_usage_tap_event(&t, (agw_str){ NULL, 0 }, AGW_STR_LIT("[DONE]"));
    assert_int_equal(tap_reported(&t), 0);
    agw_usage_tap_event(&t, (agw_str){ NULL, 0 },
                        AGW_STR_LIT("{\"choices\":[],\"usage\":{\"prompt_tokens\":30,"
                                    "\"completion_tokens\":7,\"prompt_tokens_details\":"
                                    "{\"cached_tokens\":12}}}"));
    assert_int_equal(tap_reported(&t), 1);
    assert_int_equal(t.usage.input, 18); /* cached ones kept apart */
    assert_int_equal(t.usage.cache_read, 12);
    assert_int_equal(t.usage.output, 7);

    agw_usage_tap_init(&t, AGW_PROTO_OPENAI);
    agw_usage_tap_body(&t, AGW_STR_LIT("{\"id\":\"x\",\"usage\":{\"prompt_tokens\":3,"
                                       "\"completion_tokens\":4}}"));
    assert_int_equal(t.usage.input, 3);
    assert_int_equal(t.usage.output, 4);
    assert_int_equal(t.usage.cache_read, 0);
    agw_usage_tap_init(&t, AGW_PROTO_OPENAI);
    agw_usage_tap_body(&t, AGW_STR_LIT("{\"usage\":{\"prompt_tokens\":-3,\"completion_tokens\":"
                                       "\"4\"}}"));
    assert_int_equal(tap_reported(&t), 0);
}

static void test_tap_responses(void **state)
{
    (void)state;
    agw_usage_tap t;
    agw_usage_tap_init(&t, AGW_PROTO_RESPONSES);
    agw_usage_tap_event(&t, AGW_STR_LIT("response.output_text.delta"),
                        AGW_STR_LIT("{\"type\":\"response.output_text.delta\",\"delta\":\"Hello\"}"));
    assert_int_equal(t.output_bytes, 5);
    assert_true(t.first_output_us > 0);
    assert_int_equal(tap_reported(&t), 0);
    agw_usage_tap_event(&t, AGW_STR_LIT("response.completed"),
                        AGW_STR_LIT("{\"type\":\"response.completed\",\"response\":{\"usage\":"
                                    "{\"input_tokens\":30,\"input_tokens_details\":"
                                    "{\"cached_tokens\":12},\"output_tokens\":7}}}"));
    assert_int_equal(tap_reported(&t), 1);
    assert_int_equal(t.usage.input, 18); /* cached ones kept apart */
    assert_int_equal(t.usage.cache_read, 12);
    assert_int_equal(t.usage.output, 7);

    agw_usage_tap_init(&t, AGW_PROTO_RESPONSES);
    agw_usage_tap_body(&t, AGW_STR_LIT("{\"object\":\"response\",\"usage\":{\"input_tokens\":3,"
                                       "\"output_tokens\":4}}"));
    assert_int_equal(t.usage.input, 3);
    assert_int_equal(t.usage.output, 4);
}

static void test_tap_anthropic(void **state)
{
    (void)state;
    agw_usage_tap t;
    agw_usage_tap_init(&t, AGW_PROTO_ANTHROPIC);
    agw_usage_tap_event(&t, AGW_STR_LIT("message_start"),
                        AGW_STR_LIT("{\"type\":\"message_start\",\"message\":{\"usage\":"
                                    "{\"input_tokens\":21,\"cache_creation_input_tokens\":4,"
                                    "\"cache_read_input_tokens\":9,\"output_tokens\":1}}}"));
    assert_int_equal(t.usage.input, 21);
    assert_int_equal(t.usage.cache_write, 4);
    assert_int_equal(t.usage.cache_read, 9);
    assert_int_equal(t.first_output_us, 0);
    agw_usage_tap_event(&t, AGW_STR_LIT("content_block_delta"),
                        AGW_STR_LIT("{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
                                    "{\"type\":\"text_delta\",\"text\":\"Hi\"}}"));
    assert_true(t.first_output_us > 0);
    assert_int_equal(t.output_bytes, 2);
    /* Each kind of delta, and the output bytes after it: an empty piece of
     * a tool call's input still counts, a signature does not. */
    static const struct {
        const char *delta;
        int64_t bytes_after;
    } deltas[] = {
        { "{\"type\":\"thinking_delta\",\"thinking\":\"abc\"}", 5 },
        { "{\"type\":\"input_json_delta\",\"partial_json\":\"\"}", 6 },
        { "{\"type\":\"signature_delta\",\"signature\":\"zz\"}", 6 },
    };
    for (size_t i = 0; i < sizeof deltas / sizeof deltas[0]; i++) {
        char data[256];
        snprintf(data, sizeof data,
                 "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":%s}", deltas[i].delta);
        agw_usage_tap_event(&t, AGW_STR_LIT("content_block_delta"), agw_str_c(data));
        assert_int_equal(t.output_bytes, deltas[i].bytes_after);
    }
    agw_usage_tap_event(&t, AGW_STR_LIT("message_delta"),
                        AGW_STR_LIT("{\"type\":\"message_delta\",\"usage\":{\"output_tokens\":5}}"));
    agw_usage_tap_event(&t, AGW_STR_LIT("message_delta"),
                        AGW_STR_LIT("{\"type\":\"message_delta\",\"usage\":{\"output_tokens\":8}}"));
    assert_int_equal(t.usage.output, 8); /* cumulative: the last one counts */
    assert_int_equal(t.usage.input, 21);
    assert_int_equal(tap_reported(&t), 1);

    agw_usage_tap_init(&t, AGW_PROTO_ANTHROPIC);
    agw_usage_tap_body(&t, AGW_STR_LIT("{\"type\":\"message\",\"usage\":{\"input_tokens\":2,"
                                       "\"output_tokens\":3,\"cache_read_input_tokens\":1}}"));
    assert_int_equal(t.usage.input, 2);
    assert_int_equal(t.usage.output, 3);
    assert_int_equal(t.usage.cache_read, 1);
    agw_usage_tap_init(&t, AGW_PROTO_ANTHROPIC);
    agw_usage_tap_body(&t, AGW_STR_LIT("<html>"));
    agw_usage_tap_event(&t, AGW_STR_LIT("ping"), AGW_STR_LIT("{\"type\":\"ping\"}"));
    assert_int_equal(tap_reported(&t), 0);
}

static void test_record_names(void **state)
{
    (void)state;
    agw_usage_record r;
    agw_usage_record_init(&r);
    assert_true(r.ts > 1600000000);
    assert_int_equal(r.ttft_ms, -1);
    agw_usage_record_names(&r, AGW_STR_LIT("p"), AGW_STR_LIT("m"));
    assert_string_equal(r.provider, "p");
    assert_string_equal(r.model, "m");
    /* Too long: cut, never inside a UTF-8 sequence. */
    char model[400];
    memset(model, 'a', sizeof model);
    memcpy(model + 253, "\xe2\x82\xac", 3); /* a euro sign across the cut at 255 */
    agw_usage_record_names(&r, AGW_STR_LIT(""), (agw_str){ model, sizeof model });
    assert_int_equal(strlen(r.model), 253);
    /* Every name the gateway accepts is kept whole: AGW_CONFIG_MODEL_MAX
     * bytes of model, AGW_CONFIG_NAME_MAX of provider. */
    char prov[AGW_CONFIG_NAME_MAX + 1];
    memset(model, 'b', sizeof model);
    memset(prov, 'p', sizeof prov);
    agw_usage_record_names(&r, (agw_str){ prov, AGW_CONFIG_NAME_MAX },
                           (agw_str){ model, AGW_CONFIG_MODEL_MAX });
    assert_int_equal(strlen(r.model), AGW_CONFIG_MODEL_MAX);
    assert_int_equal(strlen(r.provider), AGW_CONFIG_NAME_MAX);
    agw_usage_record_names(&r, AGW_STR_LIT(""), (agw_str){ model, AGW_CONFIG_MODEL_MAX + 1 });
    assert_int_equal(strlen(r.model), AGW_CONFIG_MODEL_MAX); /* never reached: a 400 first */
}

/* ---- the log ---- */

static agw_usage_log *open_log(fixture *f, uint32_t slots, int required, int drain, int days)
{
    agw_usage_log *l = NULL;
    char err[256];
    agw_usage_log_opts o = { slots, required, drain, days, 0, NULL };
    if (agw_usage_log_open(f->db, &o, &l, err, sizeof err) != AGW_OK)
        fail_msg("log: %s", err);
    return l;
}

static void remove_ring(fixture *f)
{
    char p[200];
    snprintf(p, sizeof p, "%s.usage", f->db);
    unlink(p);
    snprintf(p, sizeof p, "%s.usage.lock", f->db);
    unlink(p);
}

static agw_usage_record sample(int64_t key, int64_t out)
{
    agw_usage_record r;
    agw_usage_record_init(&r);
    r.key_id = key;
    agw_usage_record_names(&r, AGW_STR_LIT("prov"), AGW_STR_LIT("model"));
    r.status = 200;
    r.input_tokens = 3;
    r.output_tokens = out;
    r.latency_ms = 5;
    return r;
}

static void test_append_then_drain(void **state)
{
    fixture *f = *state;
    agw_usage_log *l = open_log(f, 64, 1, 0, 0);
    agw_usage_record r = sample(1, 42);
    r.ttft_ms = 12;
    r.streamed = 1;
    assert_int_equal(agw_usage_append(l, &r, 1), AGW_OK);
    r = sample(0, 43);
    r.ttft_ms = -1;
    r.input_tokens = -1; /* unknown counts are stored as 0 */
    assert_int_equal(agw_usage_append(l, &r, 0), AGW_OK);
    assert_int_equal(count(f, NULL), 0); /* in the ring, not yet in the database */
    int rc;
    sqlite3 *db = agw_store_db(f->reader);
    assert_int_equal(agw_usage_drain_once(l, db, &rc), 2);
    assert_int_equal(agw_usage_drain_once(l, db, &rc), 0);
    assert_int_equal(count(f, "output_tokens = 42 AND key_id = 1 AND ttft_ms = 12 AND streamed = 1"
                              " AND ring_seq IS NOT NULL"),
                     1);
    assert_int_equal(count(f, "output_tokens = 43 AND key_id IS NULL AND ttft_ms IS NULL AND "
                              "input_tokens = 0"),
                     1);
    agw_usage_stats st;
    agw_usage_log_stats(l, &st);
    assert_int_equal(st.written, 2);
    assert_int_equal(st.records, 0);
    assert_int_equal(st.dropped, 0);
    agw_usage_log_close(l);
    remove_ring(f);
}

/* A drainer killed after its commit and before it freed the slots: the next
 * one stores the same batch again, and it adds no row. */
static void test_a_batch_stored_twice_is_one_set_of_rows(void **state)
{
    fixture *f = *state;
    agw_usage_log *l = open_log(f, 64, 1, 0, 0);
    for (int i = 0; i < 10; i++) {
        agw_usage_record r = sample(5, i);
        assert_int_equal(agw_usage_append(l, &r, 1), AGW_OK);
    }
    agw_ring_entry *e = calloc(16, sizeof *e);
    uint64_t next, torn;
    assert_int_equal(agw_ring_read(l->ring, e, 16, &next, &torn), 10);
    sqlite3 *db = agw_store_db(f->reader);
    size_t stored;
    assert_int_equal(agw_usage_store_entries(db, e, 10, 3, &stored), SQLITE_OK);
    assert_int_equal(stored, 10);
    /* ... killed here: agw_ring_consume never ran. */
    int rc;
    assert_int_equal(agw_usage_drain_once(l, db, &rc), 10);
    agw_usage_stats st;
    agw_usage_log_stats(l, &st);
    assert_int_equal(st.already_stored, 10);
    assert_int_equal(st.written, 0);
    assert_int_equal(count(f, "key_id = 5"), 10);
    assert_int_equal(count(f, "key_id = 5 AND ring_seq IS NOT NULL"), 10);
    assert_int_equal(agw_ring_used(l->ring), 0);
    free(e);
    agw_usage_log_close(l);
    remove_ring(f);
}

/* Big batches go in sixteen rows to a statement: every field of every row
 * lands in its own row, also when a batch stored again finds some of a
 * statement's rows there already (those, and only those, are ignored). */
static void test_rows_sixteen_to_a_statement_keep_their_fields(void **state)
{
    fixture *f = *state;
    enum { N = 100 };
    agw_usage_log *l = open_log(f, 128, 1, 0, 0);
    for (int i = 0; i < N; i++) {
        agw_usage_record r = sample(7, i);
        char model[24];
        snprintf(model, sizeof model, "model-%d", i);
        agw_usage_record_names(&r, AGW_STR_LIT("prov"), agw_str_c(model));
        r.input_tokens = 1000 + i;
        r.latency_ms = 2000 + i;
        r.ttft_ms = i % 3 ? 3000 + i : -1;
        r.streamed = i & 1;
        r.tokens_estimated = (i >> 1) & 1;
        r.continuations = i % 4;
        r.credits = i % 5 ? i * 0.5 : -1;
        assert_int_equal(agw_usage_append(l, &r, 1), AGW_OK);
    }
    agw_ring_entry *e = calloc(N, sizeof *e);
    uint64_t next, torn;
    assert_int_equal(agw_ring_read(l->ring, e, N, &next, &torn), N);
    sqlite3 *db = agw_store_db(f->reader);
    size_t stored;
    /* Entries 5..74 first: four statements of sixteen and six single rows. */
    assert_int_equal(agw_usage_store_entries(db, e + 5, 70, 16, &stored), SQLITE_OK);
    assert_int_equal(stored, 70);
    /* Then all: of its six statements of sixteen, 0..15 and 64..79 find
     * some of their rows there, the three between all of theirs, 80..95
     * none; 96..99 go in one by one. */
    assert_int_equal(agw_usage_store_entries(db, e, N, 16, &stored), SQLITE_OK);
    assert_int_equal(stored, N - 70);
    sqlite3_stmt *st;
    assert_int_equal(
        sqlite3_prepare_v2(db,
                           "SELECT ring_seq, output_tokens, input_tokens, latency_ms, ttft_ms,"
                           " streamed, tokens_estimated, continuations, credits, model, key_id,"
                           " provider, status FROM usage WHERE key_id = 7 ORDER BY ring_seq",
                           -1, &st, NULL),
        SQLITE_OK);
    int i = 0;
    for (; sqlite3_step(st) == SQLITE_ROW; i++) {
        assert_true(i < N);
        assert_int_equal(sqlite3_column_int64(st, 0), (sqlite3_int64)e[i].seq);
        assert_int_equal(sqlite3_column_int64(st, 1), i);
        assert_int_equal(sqlite3_column_int64(st, 2), 1000 + i);
        assert_int_equal(sqlite3_column_int64(st, 3), 2000 + i);
        if (i % 3)
            assert_int_equal(sqlite3_column_int64(st, 4), 3000 + i);
        else
            assert_int_equal(sqlite3_column_type(st, 4), SQLITE_NULL);
        assert_int_equal(sqlite3_column_int(st, 5), i & 1);
        assert_int_equal(sqlite3_column_int(st, 6), (i >> 1) & 1);
        assert_int_equal(sqlite3_column_int(st, 7), i % 4);
        if (i % 5)
            assert_true(sqlite3_column_double(st, 8) == i * 0.5);
        else
            assert_int_equal(sqlite3_column_type(st, 8), SQLITE_NULL);
        char model[24];
        snprintf(model, sizeof model, "model-%d", i);
        assert_string_equal((const char *)sqlite3_column_text(st, 9), model);
        assert_int_equal(sqlite3_column_int64(st, 10), 7);
        assert_string_equal((const char *)sqlite3_column_text(st, 11), "prov");
        assert_int_equal(sqlite3_column_int(st, 12), 200);
    }
    sqlite3_finalize(st);
    assert_int_equal(i, N);
    free(e);
    agw_usage_log_close(l);
    remove_ring(f);
}

typedef struct {
    agw_usage_log *l;
    int id;
    int errors;
} appender;

static void *append_many(void *arg)
{
    appender *a = arg;
    for (int i = 0; i < 500; i++) {
        agw_usage_record r = sample(100 + a->id, i);
        if (agw_usage_append(a->l, &r, 1) != AGW_OK)
            a->errors++;
    }
    return NULL;
}

/* Threads append while the drainer thread (elected: the only process here)
 * stores; closing stores what is left. */
static void test_drainer_stores_everything(void **state)
{
    fixture *f = *state;
    agw_usage_log *l = open_log(f, 1024, 1, 1, 0);
    enum { N = 8 };
    appender a[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        a[i] = (appender){ l, i, 0 };
        pthread_create(&t[i], NULL, append_many, &a[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(a[i].errors, 0);
    }
    agw_usage_log_close(l);
    assert_int_equal(count(f, "key_id >= 100"), N * 500);
    remove_ring(f);
}

/* The scheduling policy (field 41 of /proc's stat) of this process's thread
 * named `name`; -1 when there is none. */
static int thread_policy(const char *name)
{
    char stat[1024];
    if (threadproc_read(name, "stat", stat, sizeof stat) < 0)
        return -1;
    char *p = strrchr(stat, ')'); /* the name may hold spaces */
    int field = 2, policy = -1;
    for (; p && *p; p++)
        if (*p == ' ' && ++field == 41)
            policy = atoi(p + 1);
    return policy;
}

/* A nearly empty ring is stored by the helper under SCHED_IDLE, which the
 * request threads preempt; the drainer thread keeps the normal policy, for
 * the rounds of a fuller ring. */
static void test_nearly_empty_ring_drains_on_an_idle_thread(void **state)
{
    fixture *f = *state;
    agw_usage_log *l = open_log(f, 4096, 1, 1, 0);
    for (int i = 0; i < 20; i++) {
        agw_usage_record r = sample(7, i);
        assert_int_equal(agw_usage_append(l, &r, 1), AGW_OK);
    }
    for (int i = 0; i < 500 && count(f, "key_id = 7") < 20; i++)
        usleep(10000);
    assert_int_equal(count(f, "key_id = 7"), 20);
    assert_int_equal(thread_policy("agw-drain-idle"), SCHED_IDLE);
    assert_int_equal(thread_policy("agw-drainer"), SCHED_OTHER);
    agw_usage_log_close(l);
    assert_int_equal(thread_policy("agw-drain-idle"), -1);
    remove_ring(f);
}

static int held_done;

static void *append_held(void *arg)
{
    agw_usage_record r = sample(9, 9);
    assert_int_equal(agw_usage_append(arg, &r, 1), AGW_OK);
    __atomic_store_n(&held_done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/* Past 7/8 of the ring new calls are refused and refused requests' records
 * dropped; the rest is for records whose response waits for them, which wait
 * for room when even that is gone. Without usage.required calls go on and
 * records that find no room are dropped and counted. */
static void test_full_ring(void **state)
{
    fixture *f = *state;
    agw_usage_log *l = open_log(f, 16, 1, 0, 0);
    agw_usage_record r = sample(3, 1);
    for (int i = 0; i < 14; i++) {
        assert_true(agw_usage_accepting(l));
        assert_int_equal(agw_usage_append(l, &r, 0), AGW_OK);
    }
    assert_false(agw_usage_accepting(l));
    assert_int_equal(agw_usage_append(l, &r, 0), AGW_ETOOBIG); /* a refused request's */
    assert_int_equal(agw_usage_append(l, &r, 1), AGW_OK);
    assert_int_equal(agw_usage_append(l, &r, 1), AGW_OK); /* 16: full */
    held_done = 0;
    pthread_t t;
    pthread_create(&t, NULL, append_held, l);
    usleep(100000);
    assert_int_equal(__atomic_load_n(&held_done, __ATOMIC_SEQ_CST), 0); /* waits for room */
    int rc;
    assert_int_equal(agw_usage_drain_once(l, agw_store_db(f->reader), &rc), 16);
    pthread_join(t, NULL);
    assert_int_equal(held_done, 1);
    assert_int_equal(agw_usage_drain_once(l, agw_store_db(f->reader), &rc), 1);
    agw_usage_count_rejected(l);
    agw_usage_stats st;
    agw_usage_log_stats(l, &st);
    assert_int_equal(st.dropped, 1);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.written, 17);
    assert_true(st.accepting);
    agw_usage_log_close(l);

    l = open_log(f, 16, 0, 0, 0); /* usage.required = false */
    for (int i = 0; i < 16; i++)
        assert_int_equal(agw_usage_append(l, &r, 1), AGW_OK);
    assert_true(agw_usage_accepting(l));
    assert_int_equal(agw_usage_append(l, &r, 1), AGW_ETOOBIG); /* served, not recorded */
    agw_usage_log_stats(l, &st);
    assert_int_equal(st.dropped, 2); /* the same ring: its counters carry on */
    agw_usage_log_close(l);
    remove_ring(f);
}

/* Inserts `n` rows at Unix time `ts` through the reader connection. */
static void insert_at(fixture *f, int64_t ts, int n)
{
    sqlite3 *db = agw_store_db(f->reader);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO usage(ts, provider, model, status,"
                                        " input_tokens, output_tokens, cache_read_tokens,"
                                        " cache_write_tokens, latency_ms, streamed)"
                                        " VALUES (?, 'p', 'm', 200, 1, 1, 0, 0, 1, 0)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    for (int i = 0; i < n; i++) {
        sqlite3_bind_int64(st, 1, ts);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
}

/* One prune transaction deletes at most its batch, oldest first, and only
 * rows before the cut. */
static void test_prune_in_batches(void **state)
{
    fixture *f = *state;
    int64_t now = agw_wall_s(), day = 86400;
    insert_at(f, now - 200 * day, 300);
    insert_at(f, now - 91 * day, 400);
    insert_at(f, now - 89 * day, 50);
    insert_at(f, now, 50);
    sqlite3 *db = agw_store_db(f->reader);
    int64_t cut = now - 90 * day;
    assert_int_equal(agw_usage_prune(db, cut, 500), 500);
    char where[64];
    snprintf(where, sizeof where, "ts = %lld", (long long)(now - 200 * day));
    assert_int_equal(count(f, where), 0); /* the oldest went first */
    assert_int_equal(agw_usage_prune(db, cut, 500), 200);
    assert_int_equal(agw_usage_prune(db, cut, 500), 0);
    assert_int_equal(count(f, NULL), 100); /* inside the window: kept */
    assert_true(sqlite3_get_autocommit(db)); /* every batch committed */
}

/* The drainer prunes with usage.retention_days; 0 keeps all. */
static void test_drainer_prunes_rows_older_than_the_window(void **state)
{
    fixture *f = *state;
    int64_t now = agw_wall_s(), day = 86400;
    insert_at(f, now - 400 * day, 1200); /* more than two batches */
    insert_at(f, now - 31 * day, 10);
    insert_at(f, now - 29 * day, 10);
    agw_usage_log *keep = open_log(f, 64, 1, 1, 0); /* no retention: keeps everything */
    struct timespec tick = { 0, 500000000L };
    nanosleep(&tick, NULL);
    agw_usage_log_close(keep);
    assert_int_equal(count(f, NULL), 1220);

    agw_usage_log *l = open_log(f, 64, 1, 1, 30);
    agw_usage_record r = sample(1, 7);
    assert_int_equal(agw_usage_append(l, &r, 1), AGW_OK);
    for (int i = 0; i < 100 && count(f, NULL) != 11; i++) {
        struct timespec ms100 = { 0, 100000000L };
        nanosleep(&ms100, NULL);
    }
    assert_int_equal(count(f, NULL), 11); /* 10 inside the window and the new row */
    char where[64];
    snprintf(where, sizeof where, "ts < %lld", (long long)(now - 30 * day));
    assert_int_equal(count(f, where), 0);
    agw_usage_log_close(l);
    remove_ring(f);
}

static agw_usage_log *open_log_in(fixture *f, const char *ring_dir, int drain)
{
    agw_usage_log *l = NULL;
    char err[256];
    agw_usage_log_opts o = { 64, 1, drain, 0, 0, ring_dir };
    if (agw_usage_log_open(f->db, &o, &l, err, sizeof err) != AGW_OK)
        fail_msg("log: %s", err);
    return l;
}

static void wait_rows(fixture *f, const char *where, long long want)
{
    for (int i = 0; i < 500 && count(f, where) < want; i++)
        usleep(10000);
    assert_int_equal(count(f, where), want);
}

/* With usage.ring_dir the ring lives there and only syncs reach the disk,
 * in the image beside the database. After a reboot (the memory file gone)
 * the next drainer stores what the image holds before anything else, once:
 * rows already stored are not stored again. The last process to close an
 * empty ring removes it. A ring beside the database (an earlier version's)
 * is drained too, also while its writers go on. */
static void test_ring_in_memory_with_an_image(void **state)
{
    fixture *f = *state;
    char mem[160], image[160];
    snprintf(mem, sizeof mem, "%s/mem", f->dir);
    snprintf(image, sizeof image, "%s.usage.image", f->db);
    assert_int_equal(mkdir(mem, 0700), 0);
    char *ring = agw_usage_ring_path(mem, f->db);
    assert_non_null(strstr(ring, "/mem/antigw-"));
    assert_int_equal(strlen(strrchr(ring, '/')), strlen("/antigw-0123456789abcdef.usage"));

    agw_usage_log *l = open_log_in(f, mem, 0);
    assert_int_equal(access(ring, F_OK), 0);
    assert_int_equal(access(image, F_OK), -1); /* nothing synced yet */
    for (int i = 0; i < 5; i++) {
        agw_usage_record r = sample(21, i);
        assert_int_equal(agw_usage_append(l, &r, 1), AGW_OK);
    }
    assert_int_equal(agw_ring_sync(l->ring, agw_ring_head(l->ring)), AGW_OK);
    assert_int_equal(access(image, F_OK), 0);
    uint64_t first_head = agw_ring_head(l->ring);
    agw_usage_log_close(l);
    assert_int_equal(access(ring, F_OK), 0); /* records wait: kept */
    assert_int_equal(unlink(ring), 0);         /* the reboot */

    l = open_log_in(f, mem, 1);
    assert_true(agw_ring_head(l->ring) > first_head); /* a new ring, above the old numbers */
    wait_rows(f, "key_id = 21", 5);
    for (int i = 0; i < 3; i++) {
        agw_usage_record r = sample(22, i);
        assert_int_equal(agw_usage_append(l, &r, 1), AGW_OK);
    }
    wait_rows(f, "key_id = 22", 3);
    assert_int_equal(count(f, "ring_seq IS NOT NULL"), 8);
    agw_usage_log_close(l);
    assert_int_equal(access(ring, F_OK), -1); /* empty and the last: removed */

    /* Synced, then stored, then the image read again at the next start:
     * nothing is stored twice. */
    l = open_log_in(f, mem, 0);
    for (int i = 0; i < 2; i++) {
        agw_usage_record r = sample(23, i);
        assert_int_equal(agw_usage_append(l, &r, 1), AGW_OK);
    }
    assert_int_equal(agw_ring_sync(l->ring, agw_ring_head(l->ring)), AGW_OK);
    int rc;
    assert_int_equal(agw_usage_drain_once(l, agw_store_db(f->reader), &rc), 2);
    agw_usage_log_close(l);
    l = open_log_in(f, mem, 1);
    agw_usage_stats st;
    for (int i = 0; i < 500; i++) {
        agw_usage_log_stats(l, &st);
        if (st.already_stored >= 2)
            break;
        usleep(10000);
    }
    assert_int_equal(st.already_stored, 2);
    assert_int_equal(count(f, "key_id = 23"), 2);
    agw_usage_log_close(l);

    /* A ring beside the database, written by processes of an earlier
     * version (or with ring_dir ""), which may still be running: its records
     * are stored at the drainer's start and then every second. */
    agw_usage_log *beside = open_log_in(f, NULL, 0);
    for (int i = 0; i < 3; i++) {
        agw_usage_record r = sample(24, i);
        assert_int_equal(agw_usage_append(beside, &r, 1), AGW_OK);
    }
    l = open_log_in(f, mem, 1);
    wait_rows(f, "key_id = 24", 3);
    for (int i = 0; i < 2; i++) {
        agw_usage_record r = sample(25, i);
        assert_int_equal(agw_usage_append(beside, &r, 1), AGW_OK);
    }
    wait_rows(f, "key_id = 25", 2);
    assert_int_equal(agw_ring_used(beside->ring), 0);
    agw_usage_log_close(beside);
    agw_usage_log_close(l);
    free(ring);
    unlink(image);
    remove_ring(f);
    rmdir(mem);
}

/* An image the drainer cannot read (another record layout, from another
 * version) is moved aside with a message, not overwritten and not retried
 * for ever: the drainer goes on storing the ring. */
static void test_unreadable_image_is_moved_aside(void **state)
{
    fixture *f = *state;
    char mem[160], image[160], aside[180];
    snprintf(mem, sizeof mem, "%s/mem", f->dir);
    snprintf(image, sizeof image, "%s.usage.image", f->db);
    snprintf(aside, sizeof aside, "%s.unread", image);
    assert_int_equal(mkdir(mem, 0700), 0);
    agw_ring *other;
    char err[256];
    assert_int_equal(agw_ring_attach(image, NULL, RING_LAYOUT + 1, 16, &other, err, sizeof err),
                     AGW_OK);
    const char rec[] = "a record of another layout";
    assert_int_equal(agw_ring_append(other, rec, sizeof rec), AGW_OK);
    agw_ring_detach(other);

    agw_usage_log *l = open_log_in(f, mem, 1);
    agw_usage_record r = sample(26, 1);
    assert_int_equal(agw_usage_append(l, &r, 1), AGW_OK);
    wait_rows(f, "key_id = 26", 1);
    assert_int_equal(access(image, F_OK), -1);
    assert_int_equal(access(aside, F_OK), 0);
    agw_usage_log_close(l);
    unlink(aside);
    unlink(image);
    remove_ring(f);
    rmdir(mem);
}

static void test_open_fails_cleanly(void **state)
{
    (void)state;
    agw_usage_log *l = (agw_usage_log *)1;
    char err[256] = "";
    agw_usage_log_opts o = { 64, 1, 1, 0, 0, NULL };
    assert_int_not_equal(agw_usage_log_open("/nonexistent-dir/x.db", &o, &l, err, sizeof err),
                         AGW_OK);
    assert_null(l);
    assert_true(err[0] != '\0');
    agw_usage_log_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tap_openai),
        cmocka_unit_test(test_tap_anthropic),
        cmocka_unit_test(test_tap_responses),
        cmocka_unit_test(test_record_names),
        cmocka_unit_test_setup_teardown(test_append_then_drain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_batch_stored_twice_is_one_set_of_rows, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rows_sixteen_to_a_statement_keep_their_fields, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_drainer_stores_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nearly_empty_ring_drains_on_an_idle_thread, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_full_ring, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_in_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drainer_prunes_rows_older_than_the_window, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ring_in_memory_with_an_image, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_image_is_moved_aside, setup, teardown),
        cmocka_unit_test(test_open_fails_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
