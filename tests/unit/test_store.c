/* Unit tests for lib/store: pragmas on every connection, migrations run once,
 * newer schemas refused, concurrent first opens, failures reported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

/* The module itself, so the tests reach its file-local functions. */
#include "state/store.c"

typedef struct {
    char dir[64];
} fixture;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    strcpy(f->dir, "/tmp/agw-store-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

/* Removes the whole temporary tree (database, -wal and -shm files). */
static int teardown(void **state)
{
    fixture *f = *state;
    int rc = nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return rc;
}

static void db_path(const fixture *f, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", f->dir, name);
}

/* The first column of the first row of a query, as text ("" when no row). */
static void query_text(sqlite3 *db, const char *sql, char *out, size_t n)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    out[0] = '\0';
    if (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(out, n, "%s", t ? (const char *)t : "");
    }
    sqlite3_finalize(st);
}

static long long query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static agw_store *open_ok(const char *path)
{
    agw_store *s = NULL;
    char err[256] = "";
    agw_err e = agw_store_open(path, &s, err, sizeof err);
    if (e != AGW_OK)
        fail_msg("open %s: %d %s", path, (int)e, err);
    assert_non_null(s);
    return s;
}

/* ---- tests ---- */

static void test_open_creates_with_pragmas(void **state)
{
    fixture *f = *state;
    char path[256], txt[64];
    db_path(f, "gw.db", path, sizeof path);
    struct stat st;
    assert_int_equal(stat(path, &st), -1);

    agw_store *s = open_ok(path);
    assert_int_equal(stat(path, &st), 0);
    sqlite3 *db = agw_store_db(s);
    assert_non_null(db);
    query_text(db, "PRAGMA journal_mode", txt, sizeof txt);
    assert_string_equal(txt, "wal");
    assert_int_equal(query_int(db, "PRAGMA synchronous"), 1); /* NORMAL */
    assert_int_equal(query_int(db, "PRAGMA busy_timeout"), 5000);
    assert_int_equal(query_int(db, "PRAGMA foreign_keys"), 1);
    assert_int_equal(query_int(db, "PRAGMA journal_size_limit"), 67108864);
    assert_true(N_MIGRATIONS >= 1);
    assert_int_equal(query_int(db, "PRAGMA user_version"), N_MIGRATIONS);
    assert_int_equal(user_version(s->db), N_MIGRATIONS);
    /* Migration 1 made the usage table and its index; 3 dropped settings. */
    assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_master WHERE type='table' "
                                   "AND name = 'usage'"),
                     1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'settings'"),
                     0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_master WHERE type='index' "
                                   "AND name='usage_ts'"),
                     1);
    /* Migration 4: the prober's cache of the providers' model lists. */
    assert_int_equal(query_int(db, "SELECT count(*) FROM pragma_table_info('provider_models') "
                                   "WHERE name IN ('provider','base_url','position','model',"
                                   "'fetched_at')"),
                     5);
    agw_store_close(s);

    /* WAL is a property of the file: a plain connection sees it too. */
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    query_text(raw, "PRAGMA journal_mode", txt, sizeof txt);
    assert_string_equal(txt, "wal");
    sqlite3_close(raw);
}

static void test_reopen_keeps_data(void **state)
{
    fixture *f = *state;
    char path[256], txt[128];
    db_path(f, "gw.db", path, sizeof path);
    agw_store *s = open_ok(path);
    assert_int_equal(sqlite3_exec(agw_store_db(s),
                                  "INSERT INTO usage(ts, provider, model, status) "
                                  "VALUES (1700000000, 'p', 'gpt-4o', 200);"
                                  "INSERT INTO audit_log(ts, action, object_type, object_id)"
                                  " VALUES (1, 'create', 'key', 'k');",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    agw_store_close(s);

    /* Reopening must not run migration 1 again (that would fail on the
     * existing tables or, worse, recreate them empty). */
    s = open_ok(path);
    sqlite3 *db = agw_store_db(s);
    assert_int_equal(user_version(s->db), N_MIGRATIONS);
    assert_int_equal(query_int(db, "SELECT count(*) FROM usage"), 1);
    query_text(db, "SELECT model || '/' || status || '/' || streamed FROM usage", txt, sizeof txt);
    assert_string_equal(txt, "gpt-4o/200/0"); /* the column default applied */
    query_text(db, "SELECT object_id || '/' || detail FROM audit_log", txt, sizeof txt);
    assert_string_equal(txt, "k/{}");
    /* Every connection gets the pragmas, not only the one that created the file. */
    assert_int_equal(query_int(db, "PRAGMA synchronous"), 1);
    assert_int_equal(query_int(db, "PRAGMA busy_timeout"), 5000);
    agw_store_close(s);
}

static void test_newer_schema_refused(void **state)
{
    fixture *f = *state;
    char path[256];
    db_path(f, "future.db", path, sizeof path);
    int future = N_MIGRATIONS + 1;
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version=%d", future);
    assert_int_equal(sqlite3_exec(raw, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);

    agw_store *s = (agw_store *)0x1;
    char err[256] = "";
    assert_int_equal(agw_store_open(path, &s, err, sizeof err), AGW_EINVAL);
    assert_null(s);
    char want[256];
    snprintf(want, sizeof want, "database schema version %d is newer than this program's %d",
             future, N_MIGRATIONS);
    assert_string_equal(err, want);

    /* The file was left alone: same version, no tables of ours. */
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    assert_int_equal(query_int(raw, "PRAGMA user_version"), future);
    assert_int_equal(query_int(raw, "SELECT count(*) FROM sqlite_master"), 0);
    sqlite3_close(raw);
}

static void test_failed_migration_rolls_back(void **state)
{
    fixture *f = *state;
    char path[256];
    db_path(f, "clash.db", path, sizeof path);
    /* A version-0 file that already has a "usage" table: migration 1 fails
     * half way (after creating settings), and the transaction must leave
     * nothing behind. */
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, "CREATE TABLE usage(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);

    agw_store *s = (agw_store *)0x1;
    char err[256] = "";
    assert_int_equal(agw_store_open(path, &s, err, sizeof err), AGW_EIO);
    assert_null(s);
    assert_string_equal(err, "table usage already exists");

    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    assert_int_equal(query_int(raw, "PRAGMA user_version"), 0);
    assert_int_equal(query_int(raw, "SELECT count(*) FROM sqlite_master WHERE name='settings'"), 0);
    assert_int_equal(query_int(raw, "SELECT count(*) FROM pragma_table_info('usage')"), 1);
    sqlite3_close(raw);
}

static void test_not_a_database(void **state)
{
    fixture *f = *state;
    char path[256];
    db_path(f, "junk.db", path, sizeof path);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 64; i++)
        fputs("this is not an SQLite database, just text\n", fp);
    fclose(fp);
    agw_store *s = (agw_store *)0x1;
    char err[256] = "";
    assert_int_equal(agw_store_open(path, &s, err, sizeof err), AGW_EIO);
    assert_null(s);
    assert_string_equal(err, "cannot enable WAL: file is not a database");
}

typedef struct {
    const char *path;
    pthread_barrier_t *barrier; /* NULL: start at once */
    agw_err e;
    int version;
    char err[256];
    uint64_t took_ms;
} opener;

static void *open_thread(void *arg)
{
    opener *o = arg;
    agw_store *s = NULL;
    if (o->barrier)
        pthread_barrier_wait(o->barrier);
    uint64_t start = agw_mono_ms();
    o->e = agw_store_open(o->path, &s, o->err, sizeof o->err);
    o->took_ms = agw_mono_ms() - start;
    if (o->e == AGW_OK) {
        o->version = user_version(s->db);
        agw_store_close(s);
    }
    return NULL;
}

static void test_concurrent_first_open(void **state)
{
    fixture *f = *state;
    /* Several fresh files, each opened by threads released at the same moment:
     * all must succeed and the migrations must run exactly once (a second run
     * would fail on a table that already exists). */
    enum { ROUNDS = 40, THREADS = 4 };
    int failures = 0;
    char first_err[300] = "";
    for (int round = 0; round < ROUNDS; round++) {
        char path[256], name[32];
        snprintf(name, sizeof name, "race%d.db", round);
        db_path(f, name, path, sizeof path);
        pthread_barrier_t barrier;
        assert_int_equal(pthread_barrier_init(&barrier, NULL, THREADS), 0);
        opener o[THREADS];
        pthread_t t[THREADS];
        for (int i = 0; i < THREADS; i++) {
            memset(&o[i], 0, sizeof o[i]);
            o[i].path = path;
            o[i].barrier = &barrier;
            assert_int_equal(pthread_create(&t[i], NULL, open_thread, &o[i]), 0);
        }
        for (int i = 0; i < THREADS; i++)
            assert_int_equal(pthread_join(t[i], NULL), 0);
        pthread_barrier_destroy(&barrier);
        for (int i = 0; i < THREADS; i++) {
            if (o[i].e != AGW_OK) {
                if (!failures++)
                    snprintf(first_err, sizeof first_err, "round %d thread %d: %s", round, i,
                             o[i].err);
                continue;
            }
            assert_int_equal(o[i].version, N_MIGRATIONS);
        }
        agw_store *s = open_ok(path);
        /* usage (1); providers, api_keys, audit_log (2); settings of 1 dropped
         * (3); provider_models (4); credentials, login_sessions (5) */
        assert_int_equal(query_int(agw_store_db(s), "SELECT count(*) FROM sqlite_master "
                                                    "WHERE type='table' AND name NOT LIKE 'sqlite_%'"),
                         7);
        agw_store_close(s);
    }
    if (failures)
        fail_msg("%d of %d concurrent opens failed; first: %s", failures, ROUNDS * THREADS,
                 first_err);
}

typedef struct {
    sqlite3 *db;
    int rc;
} releaser;

/* Holds the other connection's write lock a little, then commits it. */
static void *release_later(void *arg)
{
    releaser *r = arg;
    usleep(200 * 1000);
    r->rc = sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
    return NULL;
}

/* Another connection (say, a second process in the middle of its first
 * start) holds the write lock of a new, not yet WAL, file for 200 ms. The
 * open has a 5000 ms busy timeout, so it must wait and then succeed rather
 * than fail at once with "database is locked". This is the deterministic form
 * of the race in test_concurrent_first_open. */
static void test_open_waits_for_writer_on_new_file(void **state)
{
    fixture *f = *state;
    char path[256];
    db_path(f, "busy.db", path, sizeof path);
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    /* As a pool process's own open: its COMMIT waits for the opener's
     * momentary read lock. Without a timeout it could fail at once and keep
     * the lock that blocks every new reader, and the open would wait it out
     * in vain. */
    sqlite3_busy_timeout(raw, 5000);
    assert_int_equal(sqlite3_exec(raw, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    releaser r = { raw, -1 };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, release_later, &r), 0);

    agw_store *s = NULL;
    char err[256] = "";
    agw_err e = agw_store_open(path, &s, err, sizeof err);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(r.rc, SQLITE_OK);
    sqlite3_close(raw);
    if (e != AGW_OK)
        fail_msg("open under a 200 ms lock failed: %d %s", (int)e, err);
    assert_int_equal(user_version(s->db), N_MIGRATIONS);
    agw_store_close(s);
}

/* A connection that keeps a new file locked (here, exclusively, so that no
 * one can even read it): the open gives up after its 5 s for WAL, with a
 * message, instead of retrying attempt after attempt of 5 s each. */
static void test_open_gives_up_on_a_file_locked_for_good(void **state)
{
    fixture *f = *state;
    char path[256];
    db_path(f, "stuck.db", path, sizeof path);
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    /* Static: if the wait below gives up, the thread still writes here after
     * this function has returned. */
    static char path_kept[256];
    static opener o;
    snprintf(path_kept, sizeof path_kept, "%s", path);
    o = (opener){ .path = path_kept };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, open_thread, &o), 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    if (pthread_timedjoin_np(t, NULL, &until) != 0)
        fail_msg("the open still waits for the locked file after 10 s");
    assert_int_equal(o.e, AGW_EIO);
    assert_string_equal(o.err, "cannot enable WAL: database is locked");
    if (o.took_ms < 4900)
        fail_msg("gave up after %llu ms, before its 5 s", (unsigned long long)o.took_ms);
    assert_int_equal(sqlite3_exec(raw, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
}

static void test_two_connections_share_data(void **state)
{
    fixture *f = *state;
    char path[256];
    db_path(f, "shared.db", path, sizeof path);
    agw_store *a = open_ok(path), *b = open_ok(path);
    assert_int_equal(sqlite3_exec(agw_store_db(a),
                                  "INSERT INTO audit_log(ts, action, object_type, object_id)"
                                  " VALUES (1, 'create', 'key', 'x')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(
        query_int(agw_store_db(b), "SELECT count(*) FROM audit_log WHERE object_id='x'"), 1);
    agw_store_close(a);
    agw_store_close(b);
}

static void test_open_unwritable_path(void **state)
{
    fixture *f = *state;
    char path[512], err[600] = "", want[600];
    agw_store *s = (agw_store *)0x1;

    /* A directory that does not exist. */
    snprintf(path, sizeof path, "%s/no/such/dir/gw.db", f->dir);
    assert_int_equal(agw_store_open(path, &s, err, sizeof err), AGW_EIO);
    assert_null(s);
    snprintf(want, sizeof want, "%s: unable to open database file", path);
    assert_string_equal(err, want);

    /* A parent that is a regular file (fails even for root, unlike chmod). */
    char file[256];
    db_path(f, "plainfile", file, sizeof file);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    snprintf(path, sizeof path, "%s/gw.db", file);
    err[0] = '\0';
    s = (agw_store *)0x1;
    assert_int_equal(agw_store_open(path, &s, err, sizeof err), AGW_EIO);
    assert_null(s);
    snprintf(want, sizeof want, "%s: unable to open database file", path);
    assert_string_equal(err, want);

    /* The directory itself is not a database file either. */
    err[0] = '\0';
    s = (agw_store *)0x1;
    assert_int_equal(agw_store_open(f->dir, &s, err, sizeof err), AGW_EIO);
    assert_null(s);
    assert_true(err[0] != '\0');
}

/* Migration 2 (multi-tenancy) on a file that stopped at version 1 with data in it:
 * the usage rows survive, the new tables and column appear, and ids of keys
 * are never reused (the limiter keys shared memory by them). */
static void test_migration_2_upgrades_a_version_1_file(void **state)
{
    fixture *f = *state;
    char path[256], txt[64];
    db_path(f, "v1.db", path, sizeof path);
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw,
                                  "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL,"
                                  " updated_at INTEGER NOT NULL);"
                                  "CREATE TABLE usage (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL,"
                                  " key_id INTEGER, provider TEXT NOT NULL, model TEXT NOT NULL,"
                                  " status INTEGER NOT NULL, input_tokens INTEGER NOT NULL DEFAULT 0,"
                                  " output_tokens INTEGER NOT NULL DEFAULT 0,"
                                  " cache_read_tokens INTEGER NOT NULL DEFAULT 0,"
                                  " cache_write_tokens INTEGER NOT NULL DEFAULT 0,"
                                  " latency_ms INTEGER NOT NULL DEFAULT 0, ttft_ms INTEGER,"
                                  " streamed INTEGER NOT NULL DEFAULT 0);"
                                  "CREATE INDEX usage_ts ON usage(ts);"
                                  "INSERT INTO usage(ts, provider, model, status) VALUES (1, 'p', 'm', 200);"
                                  "PRAGMA user_version=1;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(raw);

    agw_store *s = open_ok(path);
    sqlite3 *db = agw_store_db(s);
    assert_true(N_MIGRATIONS >= 2);
    assert_int_equal(user_version(s->db), N_MIGRATIONS);
    assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_master WHERE type='table' AND "
                                   "name IN ('providers','api_keys','audit_log')"),
                     3);
    query_text(db, "SELECT model || '/' || tokens_estimated FROM usage", txt, sizeof txt);
    assert_string_equal(txt, "m/0");
    /* Migration 3 ran too. */
    assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_master WHERE name='settings'"), 0);
    /* Ids are never reused after a delete. */
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO api_keys(name, key_hash, key_prefix, created_at,"
                                  " updated_at) VALUES ('a', zeroblob(32), 'agw-', 0, 0);"
                                  "DELETE FROM api_keys;"
                                  "INSERT INTO api_keys(name, key_hash, key_prefix, created_at,"
                                  " updated_at) VALUES ('b', zeroblob(32), 'agw-', 0, 0);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(query_int(db, "SELECT id FROM api_keys"), 2);
    /* The schema's own guards. */
    assert_int_not_equal(sqlite3_exec(db,
                                      "INSERT INTO api_keys(name, key_hash, key_prefix, created_at,"
                                      " updated_at) VALUES ('c', x'00', 'agw-', 0, 0)",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db,
                                      "INSERT INTO providers(name, type, base_url, created_at,"
                                      " updated_at) VALUES ('x', 'azure', 'http://x', 0, 0)",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
    agw_store_close(s);
}

/* Migration 3 on a file at version 2: the unused settings table goes (rows
 * and all), everything else stays. */
static void test_migration_3_drops_settings(void **state)
{
    fixture *f = *state;
    char path[256], txt[64];
    db_path(f, "v2.db", path, sizeof path);
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    for (int v = 0; v < 2; v++)
        assert_int_equal(sqlite3_exec(raw, migrations[v], NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw,
                                  "INSERT INTO settings(key, value, updated_at) VALUES ('k','v',1);"
                                  "INSERT INTO usage(ts, provider, model, status)"
                                  " VALUES (1, 'p', 'm', 200);"
                                  "INSERT INTO providers(name, type, base_url, created_at,"
                                  " updated_at) VALUES ('db-p', 'openai', 'http://x', 0, 0);"
                                  "PRAGMA user_version=2;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(raw);

    assert_true(N_MIGRATIONS >= 3);
    agw_store *s = open_ok(path);
    sqlite3 *db = agw_store_db(s);
    assert_int_equal(user_version(db), N_MIGRATIONS);
    assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_master WHERE name='settings'"), 0);
    query_text(db, "SELECT model FROM usage", txt, sizeof txt);
    assert_string_equal(txt, "m");
    query_text(db, "SELECT name FROM providers", txt, sizeof txt);
    assert_string_equal(txt, "db-p");
    agw_store_close(s);
}

static void test_column_dup(void **state)
{
    (void)state;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT 'text', NULL, '', 42", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    char *s = agw_store_column_dup(st, 0);
    assert_string_equal(s, "text");
    free(s);
    assert_null(agw_store_column_dup(st, 1)); /* SQL NULL */
    s = agw_store_column_dup(st, 2);
    assert_string_equal(s, ""); /* empty text is not NULL */
    free(s);
    s = agw_store_column_dup(st, 3);
    assert_string_equal(s, "42"); /* other types as SQLite converts them */
    free(s);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_close_null(void **state)
{
    (void)state;
    agw_store_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_creates_with_pragmas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_migration_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_first_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_waits_for_writer_on_new_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_gives_up_on_a_file_locked_for_good, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_two_connections_share_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_unwritable_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_2_upgrades_a_version_1_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_migration_3_drops_settings, setup, teardown),
        cmocka_unit_test(test_column_dup),
        cmocka_unit_test(test_close_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
