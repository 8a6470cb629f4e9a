#include "tenant/catalog.h"
#include "state/store.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define KEY_BUCKETS 1024

typedef struct agw_catalog_key_entry agw_catalog_key_entry;
struct agw_catalog_key_entry {
    agw_catalog_key_entry *next;
    unsigned char hash[AGW_SHA256_LEN];
    agw_tenant_key *key; /* NULL: known not to exist */
};

struct agw_catalog {
    uint64_t generation;      /* the shared counter when it was built */
    agw_config *base;         /* the antigw.cfg it was built on: one reference */
    agw_config view;          /* shallow copy of the base; providers below */
    size_t n_cfg_providers;   /* the first ones, borrowed from antigw.cfg */
    agw_provider_cfg *providers;
    size_t n_db_providers;    /* owned: providers[n_cfg_providers ...] */
    int refs;                 /* under the holder's lock */

    /* Lookups read the buckets without a lock: an entry is complete before
     * it is published at the head of its bucket (release store), is never
     * changed after, and lives as long as the catalog. keys_mu orders the
     * writers. */
    pthread_mutex_t keys_mu;
    _Atomic(agw_catalog_key_entry *) buckets[KEY_BUCKETS];
    size_t n_negative;        /* cached "no such key" entries */
};

struct agw_catalog_holder {
    agw_config *base;          /* one reference; swapped by a reload, under mu */
    agw_shm *shm;
    const agw_secret_key *secrets;
    pthread_mutex_t mu;        /* guards `current` and refs */
    pthread_mutex_t reload_mu; /* one rebuild at a time */
    agw_catalog *current;
    uint64_t failed_gen;       /* the generation whose rebuild last failed */
    uint64_t failed_at_ms;
};

/* ---- building ---- */

static void free_db_provider(agw_provider_cfg *p)
{
    free(p->name);
    free(p->base_url);
    if (p->api_key) {
        OPENSSL_cleanse(p->api_key, strlen(p->api_key));
        free(p->api_key);
    }
    agw_tenant_string_list_free(p->models, p->n_models);
    free(p->default_model);
    agw_config_rules_free(p);
}

static void catalog_free(agw_catalog *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_db_providers; i++)
        free_db_provider(&c->providers[c->n_cfg_providers + i]);
    free(c->providers);
    for (size_t b = 0; b < KEY_BUCKETS; b++) {
        agw_catalog_key_entry *e = atomic_load_explicit(&c->buckets[b], memory_order_relaxed);
        while (e) {
            agw_catalog_key_entry *next = e->next;
            agw_tenant_key_free(e->key);
            free(e);
            e = next;
        }
    }
    pthread_mutex_destroy(&c->keys_mu);
    agw_config_free(c->base);
    free(c);
}

/* ---- provider secrets at rest ---- */

/* Seals (seal = 1) or opens a provider's key under the associated data of
 * its place: name, type and the origin of its base_url (type and base_url
 * NULL: the name alone, the format before the origin was bound). */
static agw_err provider_secret(const agw_secret_key *k, const char *provider, const char *type,
                               const char *base_url, agw_str in, agw_buf *out, int seal)
{
    agw_buf aad = AGW_BUF_INIT(AGW_CATALOG_AAD_MAX);
    agw_err e = agw_buf_appendf(&aad, "provider:%s", provider);
    if (!e && base_url) {
        if (!type || agw_provider_type_parse(type) < 0)
            e = AGW_EINVAL;
        else if (!(e = agw_buf_appendf(&aad, "\ntype:%s\norigin:", type)))
            e = agw_config_url_origin(base_url, &aad, NULL);
    }
    if (!e)
        e = seal ? agw_aead_seal(k, agw_buf_view(&aad), in, out)
                 : agw_aead_open(k, agw_buf_view(&aad), in, out);
    agw_buf_free(&aad);
    return e;
}

agw_err agw_catalog_seal_secret(const agw_secret_key *k, const char *provider, const char *type,
                                const char *base_url, agw_str plain, agw_buf *out)
{
    return provider_secret(k, provider, type, base_url, plain, out, 1);
}

agw_err agw_catalog_open_secret(const agw_secret_key *k, const char *provider, const char *type,
                                const char *base_url, agw_str sealed, agw_buf *out)
{
    return provider_secret(k, provider, type, base_url, sealed, out, 0);
}

agw_err agw_catalog_open_secret_v1(const agw_secret_key *k, const char *provider, agw_str sealed,
                                   agw_buf *out)
{
    return provider_secret(k, provider, NULL, NULL, sealed, out, 0);
}

/* One row of `providers` as a routing entry; 0 when it must be left out. */
static int load_row(const agw_catalog_holder *h, const agw_config *base, sqlite3_stmt *st,
                    agw_provider_cfg *p)
{
    memset(p, 0, sizeof *p);
    int64_t id = sqlite3_column_int64(st, 0);
    const char *name = (const char *)sqlite3_column_text(st, 1);
    const char *type = (const char *)sqlite3_column_text(st, 2);
    int t = agw_provider_type_parse(type);
    if (!name || t < 0 || !sqlite3_column_text(st, 3)) {
        agw_log_error("provider row %lld is malformed: left out", (long long)id);
        return 0;
    }
    if (agw_config_provider(base, agw_str_c(name))) {
        agw_log_error("database provider %s has the name of a provider in %s: left out", name,
                      base->path);
        return 0;
    }
    if (sqlite3_column_type(st, 4) != SQLITE_NULL) {
        if (!h->secrets) {
            agw_log_error("provider %s has an encrypted key but secrets.key_file is not set: "
                          "left out", name);
            return 0;
        }
        agw_str sealed = { sqlite3_column_blob(st, 4), (size_t)sqlite3_column_bytes(st, 4) };
        agw_buf plain = AGW_BUF_INIT(AGW_AEAD_MAX_PLAIN + 1);
        agw_err e = agw_catalog_open_secret(h->secrets, name, type,
                                            (const char *)sqlite3_column_text(st, 3), sealed,
                                            &plain);
        if (e || (plain.len && memchr(plain.data, '\0', plain.len))) {
            /* Another key, a tampered row, or a type or base_url changed
             * outside the admin API: the provider stays, without its key, so
             * the key never goes anywhere it was not stored for. */
            agw_log_error("provider %s: its key does not open with secrets.key_file for this "
                          "name, type and base_url origin: calls go out without a key",
                          name);
            if (plain.data)
                OPENSSL_cleanse(plain.data, plain.len);
            agw_buf_free(&plain);
            p->api_key = xstrdup("");
        } else {
            p->api_key = plain.data ? agw_buf_detach(&plain, NULL) : xstrdup("");
        }
    } else {
        p->api_key = xstrdup("");
    }
    agw_str models = { (const char *)sqlite3_column_text(st, 7), (size_t)sqlite3_column_bytes(st, 7) };
    if (!models.ptr || agw_tenant_string_list(models, &p->models, &p->n_models) != AGW_OK) {
        agw_log_error("provider %s: unreadable model list: left out", name);
        OPENSSL_cleanse(p->api_key, strlen(p->api_key));
        free(p->api_key);
        p->api_key = NULL;
        return 0;
    }
    p->name = xstrdup(name);
    p->type = (agw_provider_type)t;
    p->base_url = agw_store_column_dup(st, 3);
    p->weight = sqlite3_column_int(st, 5);
    p->enabled = sqlite3_column_int(st, 6) != 0;
    p->default_model = agw_store_column_dup(st, 8);
    p->continuation = p->sanitize = -1; /* the type's defaults */
    p->sanitize_defaults = 1;
    if (sqlite3_column_type(st, 9) != SQLITE_NULL) {
        agw_str answers = { (const char *)sqlite3_column_text(st, 9),
                            (size_t)sqlite3_column_bytes(st, 9) };
        char why[256];
        /* antigw-admin stores only settings this reads; anything else came
         * from outside it and leaves the type's defaults */
        if (agw_config_answers_from_json(answers, p, why, sizeof why) != AGW_OK)
            agw_log_error("provider %s: unreadable answer settings (%s): the type's defaults "
                          "apply", name, why);
    }
    return 1;
}

static agw_err build(const agw_catalog_holder *h, agw_config *base, sqlite3 *db, uint64_t gen,
                     agw_catalog **out, char *err, size_t errlen)
{
    static const char sql[] = "SELECT id, name, type, base_url, secret_enc, weight, enabled, models,"
                              " default_model, answers FROM providers ORDER BY id";
    *out = NULL;
    sqlite3_stmt *st;
    /* One read transaction, so the list is one committed state. */
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql, sizeof sql - 1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "loading providers: %s", sqlite3_errmsg(db));
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return AGW_EIO;
    }
    agw_catalog *c = xcalloc(1, sizeof *c);
    c->generation = gen;
    c->base = agw_config_ref(base);
    c->n_cfg_providers = base->n_providers;
    size_t cap = c->n_cfg_providers + 8;
    c->providers = xcalloc(cap, sizeof *c->providers);
    if (c->n_cfg_providers)
        memcpy(c->providers, base->providers, c->n_cfg_providers * sizeof *c->providers);
    pthread_mutex_init(&c->keys_mu, NULL);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        size_t at = c->n_cfg_providers + c->n_db_providers;
        if (at + 1 >= cap) {
            cap *= 2;
            c->providers = xrealloc(c->providers, cap * sizeof *c->providers);
        }
        if (load_row(h, base, st, &c->providers[at]))
            c->n_db_providers++;
    }
    sqlite3_finalize(st);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "loading providers: %s", sqlite3_errmsg(db));
        catalog_free(c);
        return AGW_EIO;
    }
    c->view = *base; /* shallow: every pointer but providers borrows from the base */
    c->view.providers = c->providers;
    c->view.n_providers = c->n_cfg_providers + c->n_db_providers;
    *out = c;
    return AGW_OK;
}

/* ---- the holder ---- */

agw_err agw_catalog_holder_new(const agw_config *base, agw_shm *shm, const agw_secret_key *secrets,
                               sqlite3 *db, agw_catalog_holder **out, char *err, size_t errlen)
{
    *out = NULL;
    agw_catalog_holder *h = xcalloc(1, sizeof *h);
    h->base = agw_config_ref(base);
    h->shm = shm;
    h->secrets = secrets;
    pthread_mutex_init(&h->mu, NULL);
    pthread_mutex_init(&h->reload_mu, NULL);
    agw_err e = build(h, h->base, db, agw_shm_generation(shm), &h->current, err, errlen);
    if (e) {
        agw_config_free(h->base);
        pthread_mutex_destroy(&h->mu);
        pthread_mutex_destroy(&h->reload_mu);
        free(h);
        return e;
    }
    h->current->refs = 1; /* the holder's own reference */
    *out = h;
    return AGW_OK;
}

static void unref_locked(agw_catalog_holder *h, agw_catalog *c, agw_catalog **to_free)
{
    (void)h;
    if (--c->refs == 0)
        *to_free = c;
}

void agw_catalog_holder_free(agw_catalog_holder *h)
{
    if (!h)
        return;
    agw_catalog *dead = NULL;
    unref_locked(h, h->current, &dead);
    if (dead)
        catalog_free(dead);
    else
        agw_log_error("catalog: freed while requests still hold it");
    agw_config_free(h->base);
    pthread_mutex_destroy(&h->mu);
    pthread_mutex_destroy(&h->reload_mu);
    free(h);
}

static void reload(agw_catalog_holder *h, sqlite3 *db)
{
    pthread_mutex_lock(&h->reload_mu);
    uint64_t gen = agw_shm_generation(h->shm);
    pthread_mutex_lock(&h->mu);
    int stale = h->current->generation != gen || h->current->base != h->base;
    agw_config *base = agw_config_ref(h->base);
    pthread_mutex_unlock(&h->mu);
    uint64_t now = agw_mono_ms();
    if (stale && (h->failed_gen != gen || now - h->failed_at_ms >= 1000)) {
        agw_catalog *fresh;
        char err[AGW_ERR_LEN];
        if (build(h, base, db, gen, &fresh, err, sizeof err) == AGW_OK) {
            agw_catalog *dead = NULL;
            fresh->refs = 1;
            pthread_mutex_lock(&h->mu);
            unref_locked(h, h->current, &dead);
            h->current = fresh;
            pthread_mutex_unlock(&h->mu);
            catalog_free(dead);
            h->failed_gen = 0;
            agw_log_info("catalog: generation %llu, %lu providers",
                         (unsigned long long)gen, (unsigned long)fresh->view.n_providers);
        } else {
            h->failed_gen = gen;
            h->failed_at_ms = now;
            agw_log_error("catalog: cannot load generation %llu, keeping %llu: %s",
                          (unsigned long long)gen, (unsigned long long)h->current->generation, err);
        }
    }
    pthread_mutex_unlock(&h->reload_mu);
    agw_config_free(base);
}

const agw_catalog *agw_catalog_acquire(agw_catalog_holder *h, sqlite3 *db)
{
    uint64_t gen = agw_shm_generation(h->shm);
    /* One lock per request in the common case: the current catalog is
     * fresh and taken at once. */
    pthread_mutex_lock(&h->mu);
    agw_catalog *c = h->current;
    int stale = c->generation != gen || c->base != h->base;
    if (!stale || !db) {
        c->refs++;
        pthread_mutex_unlock(&h->mu);
        return c;
    }
    pthread_mutex_unlock(&h->mu);
    reload(h, db);
    pthread_mutex_lock(&h->mu);
    c = h->current;
    c->refs++;
    pthread_mutex_unlock(&h->mu);
    return c;
}

void agw_catalog_holder_rebase(agw_catalog_holder *h, agw_config *base)
{
    agw_config *ref = agw_config_ref(base), *old;
    pthread_mutex_lock(&h->mu);
    old = h->base;
    h->base = ref;
    pthread_mutex_unlock(&h->mu);
    agw_config_free(old); /* catalogs built on it keep their own references */
}

void agw_catalog_release(agw_catalog_holder *h, const agw_catalog *c)
{
    if (!c)
        return;
    agw_catalog *dead = NULL;
    pthread_mutex_lock(&h->mu);
    unref_locked(h, (agw_catalog *)c, &dead);
    pthread_mutex_unlock(&h->mu);
    catalog_free(dead);
}

const agw_config *agw_catalog_config(const agw_catalog *c)
{
    return &c->view;
}

/* ---- keys ---- */

/* The cache entry of `hash` in bucket b, or NULL; keys_mu held. */
static const agw_catalog_key_entry *cached(const agw_catalog *c, size_t b,
                                           const unsigned char hash[AGW_SHA256_LEN])
{
    for (const agw_catalog_key_entry *e =
             atomic_load_explicit(&((agw_catalog *)c)->buckets[b], memory_order_acquire);
         e; e = e->next)
        if (memcmp(e->hash, hash, AGW_SHA256_LEN) == 0)
            return e;
    return NULL;
}

agw_err agw_catalog_key(const agw_catalog *cc, sqlite3 *db, agw_str presented,
                        const agw_tenant_key **out)
{
    /* The cache is the one mutable part of a catalog (see buckets). */
    agw_catalog *c = (agw_catalog *)cc;
    *out = NULL;
    if (presented.len == 0 || presented.len > AGW_KEY_MAX_PRESENTED)
        return AGW_ENOTFOUND;
    unsigned char hash[AGW_SHA256_LEN];
    agw_tenant_key_hash(presented, hash);
    size_t b = ((size_t)hash[0] << 8 | hash[1]) % KEY_BUCKETS;
    const agw_catalog_key_entry *hit = cached(c, b, hash);
    if (hit) {
        *out = hit->key; /* entries live as long as the catalog */
        return hit->key ? AGW_OK : AGW_ENOTFOUND;
    }

    agw_tenant_key *k = NULL;
    agw_err err = agw_tenant_key_load(db, hash, &k);
    if (err == AGW_EIO)
        return err;
    pthread_mutex_lock(&c->keys_mu);
    /* Another thread may have cached it meanwhile: keep one entry. */
    if ((hit = cached(c, b, hash))) {
        pthread_mutex_unlock(&c->keys_mu);
        agw_tenant_key_free(k);
        *out = hit->key;
        return hit->key ? AGW_OK : AGW_ENOTFOUND;
    }
    /* Known keys are always cached: there are only as many as the database
     * holds. Unknown ones (typos, or someone guessing) only up to the cap, so
     * guessing cannot grow the cache; past it each guess is one indexed read. */
    if (k || c->n_negative < AGW_CATALOG_KEY_CACHE) {
        agw_catalog_key_entry *e = xcalloc(1, sizeof *e);
        memcpy(e->hash, hash, sizeof hash);
        e->key = k;
        e->next = atomic_load_explicit(&c->buckets[b], memory_order_relaxed);
        atomic_store_explicit(&c->buckets[b], e, memory_order_release);
        c->n_negative += k == NULL;
    }
    pthread_mutex_unlock(&c->keys_mu);
    *out = k;
    return k ? AGW_OK : AGW_ENOTFOUND;
}
