/* Unit tests for lib/catalog: the routing view (antigw.cfg's providers, then
 * the database's with their keys decrypted), what is left out and why,
 * reloads on a new generation while old catalogs stay valid for whoever holds
 * them, and the key cache. */
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

/* The module itself, so the tests reach its file-local functions. */
#include "tenant/catalog.c"
#include "route/route.h"
#include "state/store.h"

typedef struct {
    char dir[64];
    char db[128], state[128];
    agw_config *cfg;
    agw_store *store;
    agw_shm *shm;
    agw_secret_key key;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    strcpy(f->dir, "/tmp/agw-cat-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->db, sizeof f->db, "%s/antigw.db", f->dir);
    snprintf(f->state, sizeof f->state, "%s/antigw.db.state", f->dir);
    char err[512];
    if (agw_config_parse("providers = ( { name = \"cfg-a\"; type = \"openai\";"
                         " base_url = \"http://127.0.0.1:1/v1\"; api_key = \"sk-cfg\";"
                         " models = [ \"gpt-*\" ]; } );",
                         f->dir, &f->cfg, err, sizeof err) != AGW_OK ||
        agw_store_open(f->db, &f->store, err, sizeof err) != AGW_OK ||
        agw_shm_attach(f->state, &f->shm, err, sizeof err) != AGW_OK) {
        fprintf(stderr, "setup: %s\n", err);
        return -1;
    }
    for (int i = 0; i < 32; i++)
        f->key.k[i] = (unsigned char)(i * 7);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    agw_store_close(f->store);
    agw_shm_detach(f->shm);
    agw_config_free(f->cfg);
    char p[200];
    const char *const suffix[] = { "", "-wal", "-shm", ".state" };
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", f->db, suffix[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static sqlite3 *db(fixture *f)
{
    return agw_store_db(f->store);
}

/* A database provider, its key sealed for `seal_as` (its own name when NULL). */
static void add_provider(fixture *f, const char *name, const char *secret, const char *seal_as,
                         const agw_secret_key *with, int enabled)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db(f),
                                        "INSERT INTO providers(name, type, base_url, secret_enc,"
                                        " secret_hint, weight, enabled, models, created_at,"
                                        " updated_at) VALUES (?, 'anthropic',"
                                        " 'http://127.0.0.1:2', ?, 'h', 5, ?,"
                                        " '[\"claude-*\"]', 0, 0)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    agw_buf sealed = AGW_BUF_INIT(4096), aad = AGW_BUF_INIT(256);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (secret) {
        assert_int_equal(agw_catalog_seal_secret(with ? with : &f->key, seal_as ? seal_as : name,
                                                 "anthropic", "http://127.0.0.1:2",
                                                 agw_str_c(secret), &sealed),
                         AGW_OK);
        sqlite3_bind_blob(st, 2, sealed.data, (int)sealed.len, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, 2);
    }
    sqlite3_bind_int(st, 3, enabled);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    agw_buf_free(&sealed);
    agw_buf_free(&aad);
}

static void add_key(fixture *f, const char *key, int enabled)
{
    unsigned char h[AGW_SHA256_LEN];
    agw_tenant_key_hash(agw_str_c(key), h);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db(f),
                                        "INSERT INTO api_keys(name, key_hash, key_prefix, enabled,"
                                        " created_at, updated_at) VALUES (?, ?, 'agw-', ?, 0, 0)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, h, sizeof h, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 3, enabled);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

static agw_catalog_holder *holder(fixture *f, const agw_secret_key *secrets)
{
    agw_catalog_holder *h = NULL;
    char err[512];
    if (agw_catalog_holder_new(f->cfg, f->shm, secrets, db(f), &h, err, sizeof err) != AGW_OK)
        fail_msg("holder: %s", err);
    return h;
}

static void test_view_joins_config_and_database(void **state)
{
    fixture *f = *state;
    add_provider(f, "db-b", "sk-ant-db-secret", NULL, NULL, 1);
    add_provider(f, "db-open", NULL, NULL, NULL, 0);
    agw_catalog_holder *h = holder(f, &f->key);
    const agw_catalog *c = agw_catalog_acquire(h, db(f));
    const agw_config *v = agw_catalog_config(c);
    assert_int_equal(v->n_providers, 3);
    assert_int_equal(c->n_cfg_providers, 1);
    assert_string_equal(v->providers[0].name, "cfg-a");
    assert_string_equal(v->providers[1].name, "db-b");
    assert_string_equal(v->providers[1].api_key, "sk-ant-db-secret");
    assert_int_equal(v->providers[1].type, AGW_PROVIDER_ANTHROPIC);
    assert_int_equal(v->providers[1].weight, 5);
    assert_int_equal(v->providers[1].n_models, 1);
    assert_string_equal(v->providers[2].api_key, "");
    assert_int_equal(v->providers[2].enabled, 0);
    /* The view routes like a config: database providers by name and model. */
    agw_route_set set;
    assert_int_equal(agw_route_candidates(v, AGW_STR_LIT("claude-3"), AGW_PROVIDER_OPENAI, NULL, &set),
                     AGW_OK);
    assert_string_equal(set.r[0].provider->name, "db-b");
    assert_int_equal(agw_route_candidates(v, AGW_STR_LIT("db-b/x"), AGW_PROVIDER_OPENAI, NULL, &set),
                     AGW_OK);
    assert_int_equal(set.r[0].model.len, 1);
    /* Settings come from the base. */
    assert_int_equal(v->server.threads, f->cfg->server.threads);
    agw_catalog_release(h, c);
    agw_catalog_holder_free(h);
}

static void test_what_is_left_out(void **state)
{
    fixture *f = *state;
    agw_secret_key other;
    memset(&other, 0x55, sizeof other);
    add_provider(f, "wrong-key", "sk-x", NULL, &other, 1);   /* sealed with another key */
    add_provider(f, "moved", "sk-x", "elsewhere", NULL, 1);  /* sealed for another name */
    add_provider(f, "cfg-a", NULL, NULL, NULL, 1);           /* collides with antigw.cfg */
    add_provider(f, "fine", "sk-fine", NULL, NULL, 1);
    assert_int_equal(sqlite3_exec(db(f),
                                  "INSERT INTO providers(name, type, base_url, models, created_at,"
                                  " updated_at) VALUES ('badlist', 'openai', 'http://x', 'nope', 0, 0)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    agw_catalog_holder *h = holder(f, &f->key);
    const agw_catalog *c = agw_catalog_acquire(h, db(f));
    const agw_config *v = agw_catalog_config(c);
    /* A key that does not open leaves its provider in, without the key. */
    assert_int_equal(v->n_providers, 4);
    assert_string_equal(v->providers[1].name, "wrong-key");
    assert_string_equal(v->providers[1].api_key, "");
    assert_string_equal(v->providers[2].name, "moved");
    assert_string_equal(v->providers[2].api_key, "");
    assert_string_equal(v->providers[3].name, "fine");
    assert_string_equal(v->providers[3].api_key, "sk-fine");
    agw_catalog_release(h, c);
    agw_catalog_holder_free(h);
    /* Without a key file, a provider with a secret cannot be used. */
    h = holder(f, NULL);
    c = agw_catalog_acquire(h, db(f));
    assert_int_equal(agw_catalog_config(c)->n_providers, 1);
    agw_catalog_release(h, c);
    agw_catalog_holder_free(h);
}

/* Provider keys at rest are bound to the provider's name, type and
 * base_url origin: sealed for one place, they open there only, and under the
 * documented format. */
static void test_secret_bound_to_its_place(void **state)
{
    fixture *f = *state;
    agw_buf sealed = AGW_BUF_INIT(4096), plain = AGW_BUF_INIT(4096);
    const char *url = "https://api.example.com/v1";
    assert_int_equal(agw_catalog_seal_secret(&f->key, "work", "openai", url, AGW_STR_LIT("sk-1"),
                                             &sealed),
                     AGW_OK);
    assert_int_equal(sealed.len, 4 + AGW_AEAD_OVERHEAD);
    assert_int_equal(agw_catalog_open_secret(&f->key, "work", "openai", url,
                                             agw_buf_view(&sealed), &plain),
                     AGW_OK);
    assert_int_equal(plain.len, 4);
    assert_memory_equal(plain.data, "sk-1", 4);
    agw_buf_reset(&plain);
    /* The associated data names the provider, its type and its origin. */
    assert_int_equal(agw_aead_open(&f->key,
                                   AGW_STR_LIT("provider:work\ntype:openai\n"
                                               "origin:https://api.example.com:443"),
                                   agw_buf_view(&sealed), &plain),
                     AGW_OK);
    agw_buf_reset(&plain);
    /* Only the path may change; the same origin spelt otherwise still opens. */
    assert_int_equal(agw_catalog_open_secret(&f->key, "work", "openai",
                                             "https://API.example.com:443/other/",
                                             agw_buf_view(&sealed), &plain),
                     AGW_OK);
    agw_buf_reset(&plain);
    static const char *const elsewhere[] = {
        "https://evil.example.com/v1", "http://api.example.com/v1",
        "https://api.example.com:8443/v1", "https://api.example.com.evil.example/v1",
        "http://169.254.169.254/v1",
    };
    for (size_t i = 0; i < sizeof elsewhere / sizeof *elsewhere; i++) {
        assert_int_equal(agw_catalog_open_secret(&f->key, "work", "openai", elsewhere[i],
                                                 agw_buf_view(&sealed), &plain),
                         AGW_EINVAL);
        assert_int_equal(plain.len, 0);
    }
    assert_int_equal(agw_catalog_open_secret(&f->key, "work", "anthropic", url,
                                             agw_buf_view(&sealed), &plain),
                     AGW_EINVAL);
    assert_int_equal(agw_catalog_open_secret(&f->key, "other", "openai", url,
                                             agw_buf_view(&sealed), &plain),
                     AGW_EINVAL);
    assert_int_equal(agw_catalog_open_secret_v1(&f->key, "work", agw_buf_view(&sealed), &plain),
                     AGW_EINVAL);
    assert_int_equal(plain.len, 0);
    agw_secret_key wrong;
    memset(&wrong, 0x55, sizeof wrong);
    assert_int_equal(agw_catalog_open_secret(&wrong, "work", "openai", url,
                                             agw_buf_view(&sealed), &plain),
                     AGW_EINVAL);
    /* The format before the binding ("provider:<name>") opens only through
     * the migration's door. */
    agw_buf_reset(&sealed);
    assert_int_equal(agw_aead_seal(&f->key, AGW_STR_LIT("provider:work"), AGW_STR_LIT("sk-old"),
                                   &sealed),
                     AGW_OK);
    assert_int_equal(agw_catalog_open_secret(&f->key, "work", "openai", url,
                                             agw_buf_view(&sealed), &plain),
                     AGW_EINVAL);
    assert_int_equal(agw_catalog_open_secret_v1(&f->key, "work", agw_buf_view(&sealed), &plain),
                     AGW_OK);
    assert_int_equal(plain.len, 6);
    /* No origin, an unknown type, a name too long: refused, not cut. */
    assert_int_equal(agw_catalog_seal_secret(&f->key, "work", "openai", "api.example.com",
                                             AGW_STR_LIT("sk-1"), &sealed),
                     AGW_EINVAL);
    assert_int_equal(agw_catalog_seal_secret(&f->key, "work", "nope", url, AGW_STR_LIT("sk-1"),
                                             &sealed),
                     AGW_EINVAL);
    char name[AGW_CATALOG_AAD_MAX + 1];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    assert_int_equal(agw_catalog_seal_secret(&f->key, name, "openai", url, AGW_STR_LIT("sk-1"),
                                             &sealed),
                     AGW_ETOOBIG);
    agw_buf_free(&sealed);
    agw_buf_free(&plain);
}

/* A row repointed in the database directly (base_url to another host)
 * keeps its provider, but without the key. */
static void test_repointed_row_loses_its_key(void **state)
{
    fixture *f = *state;
    add_provider(f, "db-b", "sk-ant-db-secret", NULL, NULL, 1);
    agw_catalog_holder *h = holder(f, &f->key);
    const agw_catalog *c = agw_catalog_acquire(h, db(f));
    assert_string_equal(agw_catalog_config(c)->providers[1].api_key, "sk-ant-db-secret");
    agw_catalog_release(h, c);
    assert_int_equal(sqlite3_exec(db(f), "UPDATE providers SET base_url = 'http://127.0.0.1:3'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    agw_shm_generation_bump(f->shm);
    c = agw_catalog_acquire(h, db(f));
    assert_int_equal(agw_catalog_config(c)->n_providers, 2);
    assert_string_equal(agw_catalog_config(c)->providers[1].base_url, "http://127.0.0.1:3");
    assert_string_equal(agw_catalog_config(c)->providers[1].api_key, "");
    agw_catalog_release(h, c);
    agw_catalog_holder_free(h);
}

/* A reloaded antigw.cfg (SIGHUP): new acquisitions see it, a catalog held
 * across the reload keeps the configuration it started with, and the old
 * configuration lives until its last catalog is released. */
static void test_rebase_on_reload(void **state)
{
    fixture *f = *state;
    add_provider(f, "db-b", "sk-ant-db-secret", NULL, NULL, 1);
    agw_catalog_holder *h = holder(f, &f->key);
    const agw_catalog *old = agw_catalog_acquire(h, db(f));
    agw_config *fresh = NULL;
    char err[512];
    assert_int_equal(agw_config_parse("server = { threads = 7; };\n"
                                      "providers = ( { name = \"cfg-new\"; type = \"anthropic\";"
                                      " base_url = \"http://127.0.0.1:5\"; } );",
                                      f->dir, &fresh, err, sizeof err),
                     AGW_OK);
    agw_catalog_holder_rebase(h, fresh);
    agw_config_free(fresh); /* the holder keeps its own reference */
    const agw_catalog *nodb = agw_catalog_acquire(h, NULL);
    assert_ptr_equal(nodb, old); /* a rebuild needs a connection */
    agw_catalog_release(h, nodb);
    const agw_catalog *now = agw_catalog_acquire(h, db(f));
    assert_ptr_not_equal(now, old);
    const agw_config *v = agw_catalog_config(now);
    assert_int_equal(v->server.threads, 7);
    assert_int_equal(v->n_providers, 2);
    assert_string_equal(v->providers[0].name, "cfg-new");
    assert_string_equal(v->providers[1].name, "db-b");
    /* The request that started before the reload still sees its world. */
    v = agw_catalog_config(old);
    assert_string_equal(v->providers[0].name, "cfg-a");
    assert_string_equal(v->providers[0].api_key, "sk-cfg");
    agw_catalog_release(h, old);
    agw_catalog_release(h, now);
    agw_catalog_holder_free(h);
}

static void test_reload_on_generation(void **state)
{
    fixture *f = *state;
    agw_catalog_holder *h = holder(f, &f->key);
    const agw_catalog *old = agw_catalog_acquire(h, db(f));
    assert_int_equal(agw_catalog_config(old)->n_providers, 1);
    /* A change without a bump is not seen... */
    add_provider(f, "new", "sk-new", NULL, NULL, 1);
    const agw_catalog *same = agw_catalog_acquire(h, db(f));
    assert_ptr_equal(same, old);
    agw_catalog_release(h, same);
    /* ...a bump makes the next acquire rebuild. */
    agw_shm_generation_bump(f->shm);
    const agw_catalog *fresh = agw_catalog_acquire(h, db(f));
    assert_ptr_not_equal(fresh, old);
    assert_int_equal(fresh->generation, agw_shm_generation(f->shm));
    assert_int_equal(agw_catalog_config(fresh)->n_providers, 2);
    /* The old one is still whole for whoever holds it (a stream in flight). */
    assert_int_equal(agw_catalog_config(old)->n_providers, 1);
    assert_string_equal(agw_catalog_config(old)->providers[0].name, "cfg-a");
    agw_catalog_release(h, old); /* freed here: ASan would see a use after this */
    /* Without a connection nothing is rebuilt: the current one is returned. */
    agw_shm_generation_bump(f->shm);
    const agw_catalog *nodb = agw_catalog_acquire(h, NULL);
    assert_ptr_equal(nodb, fresh);
    agw_catalog_release(h, nodb);
    agw_catalog_release(h, fresh);
    agw_catalog_holder_free(h);
}

static void test_key_cache(void **state)
{
    fixture *f = *state;
    add_key(f, "agw-alpha", 1);
    agw_catalog_holder *h = holder(f, &f->key);
    const agw_catalog *c = agw_catalog_acquire(h, db(f));
    const agw_tenant_key *k, *k2;
    assert_int_equal(agw_catalog_key(c, db(f), AGW_STR_LIT("agw-alpha"), &k), AGW_OK);
    assert_string_equal(k->name, "agw-alpha");
    assert_int_equal(agw_catalog_key(c, db(f), AGW_STR_LIT("agw-beta"), &k2), AGW_ENOTFOUND);
    assert_null(k2);
    /* Cached within the generation: the database is not asked again... */
    assert_int_equal(sqlite3_exec(db(f), "UPDATE api_keys SET enabled = 0", NULL, NULL, NULL),
                     SQLITE_OK);
    add_key(f, "agw-beta", 1);
    assert_int_equal(agw_catalog_key(c, db(f), AGW_STR_LIT("agw-alpha"), &k2), AGW_OK);
    assert_ptr_equal(k2, k);
    assert_int_equal(k2->enabled, 1);
    assert_int_equal(agw_catalog_key(c, db(f), AGW_STR_LIT("agw-beta"), &k2), AGW_ENOTFOUND);
    agw_catalog_release(h, c);
    /* ...until the generation moves. */
    agw_shm_generation_bump(f->shm);
    c = agw_catalog_acquire(h, db(f));
    assert_int_equal(agw_catalog_key(c, db(f), AGW_STR_LIT("agw-alpha"), &k), AGW_OK);
    assert_int_equal(k->enabled, 0);
    assert_int_equal(agw_catalog_key(c, db(f), AGW_STR_LIT("agw-beta"), &k), AGW_OK);
    /* Empty and absurdly long keys are refused without a lookup. */
    char big[AGW_KEY_MAX_PRESENTED + 2];
    memset(big, 'a', sizeof big);
    assert_int_equal(agw_catalog_key(c, db(f), (agw_str){ big, sizeof big }, &k), AGW_ENOTFOUND);
    assert_int_equal(agw_catalog_key(c, db(f), AGW_STR_LIT(""), &k), AGW_ENOTFOUND);
    agw_catalog_release(h, c);
    agw_catalog_holder_free(h);
}

/* Many threads acquiring, looking keys up and releasing while the
 * generation moves: no catalog is freed under a reader (ASan checks). */
typedef struct {
    fixture *f;
    agw_catalog_holder *h;
    int failures;
} churner;

static void *churn(void *arg)
{
    churner *c = arg;
    agw_store *s;
    char err[256];
    if (agw_store_open(c->f->db, &s, err, sizeof err) != AGW_OK) {
        c->failures++;
        return NULL;
    }
    for (int i = 0; i < 300; i++) {
        const agw_catalog *cat = agw_catalog_acquire(c->h, agw_store_db(s));
        const agw_tenant_key *k;
        if (agw_catalog_key(cat, agw_store_db(s), AGW_STR_LIT("agw-alpha"), &k) != AGW_OK ||
            strcmp(k->name, "agw-alpha") != 0 || agw_catalog_config(cat)->n_providers < 1)
            c->failures++;
        if (i % 50 == 0)
            agw_shm_generation_bump(c->f->shm);
        agw_catalog_release(c->h, cat);
    }
    agw_store_close(s);
    return NULL;
}

static void test_concurrent_reloads(void **state)
{
    fixture *f = *state;
    add_key(f, "agw-alpha", 1);
    agw_catalog_holder *h = holder(f, &f->key);
    enum { N = 6 };
    churner c[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        c[i] = (churner){ f, h, 0 };
        pthread_create(&t[i], NULL, churn, &c[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(c[i].failures, 0);
    }
    agw_catalog_holder_free(h);
}

/* Lookups take no lock while other threads add entries to the same cache:
 * every answer is still right. */
typedef struct {
    fixture *f;
    const agw_catalog *cat;
    int id, failures;
} looker;

static void *look(void *arg)
{
    looker *l = arg;
    agw_store *s;
    char err[256];
    if (agw_store_open(l->f->db, &s, err, sizeof err) != AGW_OK) {
        l->failures++;
        return NULL;
    }
    for (int i = 0; i < 400; i++) {
        const agw_tenant_key *k;
        const char *known = i % 2 ? "agw-alpha" : "agw-gamma";
        if (agw_catalog_key(l->cat, agw_store_db(s), agw_str_c(known), &k) != AGW_OK ||
            strcmp(k->name, known) != 0)
            l->failures++;
        char unknown[64];
        snprintf(unknown, sizeof unknown, "agw-unknown-%d-%d", l->id, i % 100);
        if (agw_catalog_key(l->cat, agw_store_db(s), agw_str_c(unknown), &k) != AGW_ENOTFOUND ||
            k)
            l->failures++;
    }
    agw_store_close(s);
    return NULL;
}

static void test_concurrent_lookups(void **state)
{
    fixture *f = *state;
    add_key(f, "agw-alpha", 1);
    add_key(f, "agw-gamma", 1);
    agw_catalog_holder *h = holder(f, &f->key);
    const agw_catalog *cat = agw_catalog_acquire(h, db(f));
    enum { N = 8 };
    looker l[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        l[i] = (looker){ f, cat, i, 0 };
        pthread_create(&t[i], NULL, look, &l[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(l[i].failures, 0);
    }
    agw_catalog_release(h, cat);
    agw_catalog_holder_free(h);
}

int main(void)
{
    agw_log_set_level(AGW_LOG_WARN); /* no line per reload */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_view_joins_config_and_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_lookups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_what_is_left_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_bound_to_its_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repointed_row_loses_its_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebase_on_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_on_generation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_reloads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
