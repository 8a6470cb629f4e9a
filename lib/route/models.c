#include "route/models.h"

#include "route/route.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* The maintained lists (checked against the providers' own pickers,
 * 2026-11): Kiro's CodeWhisperer model ids and GitHub Copilot's chat models.
 * Edit here, and only here, when the providers change their lineup. */
static const char *const kiro_models[] = {
    "auto",
    "claude-sonnet-4.5",
    "claude-sonnet-4",
    "claude-haiku-4.5",
    "claude-opus-4.5",
    "claude-opus-4.6",
    "claude-3.7-sonnet",
    NULL,
};

static const char *const copilot_models[] = {
    "gpt-4.1",
    "gpt-4o",
    "gpt-5",
    "gpt-5-mini",
    "o3-mini",
    "o4-mini",
    "claude-sonnet-4",
    "claude-sonnet-4.5",
    "claude-3.7-sonnet",
    "gemini-2.5-pro",
    NULL,
};

static const char *const no_models[] = { NULL };

/* The maintained static list of a provider type (NULL-terminated); an empty
 * list for types without one. */
static const char *const *static_models(agw_provider_type t)
{
    switch (t) {
    case AGW_PROVIDER_KIRO: return kiro_models;
    case AGW_PROVIDER_COPILOT: return copilot_models;
    default: return no_models;
    }
}

static int in_list(const char *const *list, agw_str model)
{
    for (; *list; list++)
        if (agw_str_eq(agw_str_c(*list), model))
            return 1;
    return 0;
}

int agw_models_known(const agw_config *cfg, agw_str model)
{
    if (in_list(kiro_models, model) || in_list(copilot_models, model))
        return 1;
    for (size_t i = 0; i < cfg->n_providers; i++) {
        const agw_provider_cfg *p = &cfg->providers[i];
        for (size_t j = 0; j < p->n_models; j++)
            if (!agw_route_is_pattern(p->models[j]) && agw_str_eq(agw_str_c(p->models[j]), model))
                return 1;
    }
    return 0;
}

/* One catalog entry: `prefix` is the provider type's name, or NULL for the raw id. */
typedef struct {
    const char *prefix;
    const char *id;
    const char *owner;
} entry;

typedef struct {
    entry *v;
    size_t n, cap;
} entries;

static void add(entries *es, const char *prefix, const char *id, const char *owner)
{
    for (size_t i = 0; i < es->n; i++)
        if (strcmp(es->v[i].id, id) == 0 &&
            (es->v[i].prefix == prefix || (es->v[i].prefix && prefix &&
                                           strcmp(es->v[i].prefix, prefix) == 0)))
            return;
    if (es->n == es->cap) {
        es->cap = es->cap ? es->cap * 2 : 32;
        es->v = xrealloc(es->v, es->cap * sizeof *es->v);
    }
    es->v[es->n++] = (entry){ prefix, id, owner };
}

/* 1 when `p`'s model entries admit the discovered id `id` (models.h). */
static int admits(const agw_provider_cfg *p, const char *id)
{
    if (p->n_models == 0)
        return 1;
    for (size_t j = 0; j < p->n_models; j++) {
        const char *m = p->models[j];
        if (agw_route_is_pattern(m) ? fnmatch(m, id, 0) == 0 : strcmp(m, id) == 0)
            return 1;
    }
    return 0;
}

/* The discovered lists of the providers of one catalog, index by index:
 * found[i] is 0 when provider i has none (the literal names stand in). */
typedef struct {
    agw_provider_models *lists;
    unsigned char *found;
    size_t n;
} discovered;

static void discovered_free(discovered *d)
{
    for (size_t i = 0; i < d->n; i++)
        agw_provider_models_free(&d->lists[i]);
    free(d->lists);
    free(d->found);
}

/* Reads the cached lists of the listed providers of `cfg` from `db`. */
static agw_err discovered_load(sqlite3 *db, const agw_config *cfg, const agw_models_filter *f,
                               discovered *d)
{
    d->n = cfg->n_providers;
    d->lists = xcalloc(d->n ? d->n : 1, sizeof *d->lists);
    d->found = xcalloc(d->n ? d->n : 1, 1);
    if (!db)
        return AGW_OK;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT model FROM provider_models WHERE provider = ?1 AND "
                           "base_url = ?2 ORDER BY position",
                           -1, &st, NULL) != SQLITE_OK) {
        agw_log_warn("models: %s", sqlite3_errmsg(db));
        return AGW_EIO;
    }
    int rc = SQLITE_DONE;
    for (size_t i = 0; i < d->n && rc == SQLITE_DONE; i++) {
        const agw_provider_cfg *p = &cfg->providers[i];
        if (!p->enabled || (f && f->provider_ok && !f->provider_ok(p, f->ud)))
            continue;
        const agw_provider_ops *ops = agw_provider_ops_of(p->type);
        if (ops && ops->account_models && ops->account_models(p, &d->lists[i]) == AGW_OK) {
            d->found[i] = 1;
            continue;
        }
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, p->base_url ? p->base_url : "", -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const unsigned char *m = sqlite3_column_text(st, 0);
            if (m)
                agw_provider_models_add(&d->lists[i], agw_str_c((const char *)m));
            d->found[i] = 1;
        }
    }
    if (rc != SQLITE_DONE)
        agw_log_warn("models: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? AGW_OK : AGW_EIO;
}

/* The catalog's entries with or without prefixes (see models.h for the order). */
static void collect(const agw_config *cfg, const discovered *d, const agw_models_filter *f,
                    int prefixed, entries *es)
{
    for (size_t i = 0; i < cfg->n_providers; i++) {
        const agw_provider_cfg *p = &cfg->providers[i];
        if (!p->enabled || (f && f->provider_ok && !f->provider_ok(p, f->ud)))
            continue;
        const char *prefix = prefixed ? agw_provider_type_name(p->type) : NULL;
        for (size_t j = 0; d->found[i] && j < d->lists[i].n; j++) {
            const char *id = d->lists[i].ids[j];
            if (admits(p, id) && !(f && f->model_ok && !f->model_ok(agw_str_c(id), f->ud)))
                add(es, prefix, id, p->name);
        }
        for (size_t j = 0; j < p->n_models; j++) {
            const char *id = p->models[j];
            if (!agw_route_is_pattern(id) &&
                !(f && f->model_ok && !f->model_ok(agw_str_c(id), f->ud)))
                add(es, prefix, id, p->name);
        }
        /* The maintained list stands in for an account that named none. */
        for (const char *const *s = static_models(p->type); !d->found[i] && *s; s++)
            if (!(f && f->model_ok && !f->model_ok(agw_str_c(*s), f->ud)))
                add(es, prefix, *s, p->name);
    }
}

/* The whole catalog in `es` (the caller frees es->v and `d`). */
static agw_err catalog(const agw_config *cfg, sqlite3 *db, const agw_models_filter *f,
                       discovered *d, entries *es)
{
    agw_err e = discovered_load(db, cfg, f, d);
    if (e)
        return e;
    collect(cfg, d, f, 0, es);
    collect(cfg, d, f, 1, es);
    return AGW_OK;
}

static agw_err append_id(agw_buf *out, const entry *e)
{
    agw_err err = AGW_OK;
    if (e->prefix && ((err = agw_buf_append_json_escaped(out, agw_str_c(e->prefix))) ||
                      (err = agw_buf_append(out, "/", 1))))
        return err;
    return agw_buf_append_json_escaped(out, agw_str_c(e->id));
}

static agw_err quoted_id(agw_buf *out, const entry *e)
{
    agw_err err;
    if (!e)
        return agw_buf_append_str(out, AGW_STR_LIT("null"));
    if ((err = agw_buf_append(out, "\"", 1)) || (err = append_id(out, e)))
        return err;
    return agw_buf_append(out, "\"", 1);
}

/* One entry as an element of `data` in the OpenAI or Anthropic shape. */
static agw_err append_entry(agw_buf *out, const entry *en, int anthropic, int64_t created)
{
    agw_err e;
    if (anthropic) {
        char date[32];
        struct tm tm;
        time_t t = (time_t)created;
        gmtime_r(&t, &tm);
        strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
        if (!(e = agw_buf_append_str(out, AGW_STR_LIT("{\"type\":\"model\",\"id\":\""))) &&
            !(e = append_id(out, en)) &&
            !(e = agw_buf_append_str(out, AGW_STR_LIT("\",\"display_name\":\""))) &&
            !(e = append_id(out, en)))
            e = agw_buf_appendf(out, "\",\"created_at\":\"%s\"}", date);
        return e;
    }
    if (!(e = agw_buf_append_str(out, AGW_STR_LIT("{\"id\":\""))) && !(e = append_id(out, en)) &&
        !(e = agw_buf_appendf(out, "\",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"",
                              (long long)created)) &&
        !(e = agw_buf_append_json_escaped(out, agw_str_c(en->owner))))
        e = agw_buf_append(out, "\"}", 2);
    return e;
}

/* 1 when `id` is the entry's id with its prefix, if any. */
static int entry_is(const entry *en, agw_str id)
{
    if (!en->prefix)
        return agw_str_eq(agw_str_c(en->id), id);
    size_t n = strlen(en->prefix);
    return id.len > n && memcmp(id.ptr, en->prefix, n) == 0 && id.ptr[n] == '/' &&
           agw_str_eq(agw_str_c(en->id), (agw_str){ id.ptr + n + 1, id.len - n - 1 });
}

agw_err agw_models_render_one(const agw_config *cfg, sqlite3 *db, const agw_models_filter *f,
                              int anthropic, int64_t created, agw_str id, agw_buf *out)
{
    entries es = { NULL, 0, 0 };
    discovered d = { NULL, NULL, 0 };
    agw_err e = catalog(cfg, db, f, &d, &es);
    size_t i = 0;
    while (!e && i < es.n && !entry_is(&es.v[i], id))
        i++;
    if (!e)
        e = i < es.n ? append_entry(out, &es.v[i], anthropic, created) : AGW_ENOTFOUND;
    free(es.v);
    discovered_free(&d);
    return e;
}

agw_err agw_models_render(const agw_config *cfg, sqlite3 *db, const agw_models_filter *f,
                          int anthropic, int64_t created, agw_buf *out)
{
    entries es = { NULL, 0, 0 };
    discovered d = { NULL, NULL, 0 };
    agw_err e = catalog(cfg, db, f, &d, &es);
    if (!e)
        e = agw_buf_append_str(out, anthropic ? AGW_STR_LIT("{\"data\":[")
                                              : AGW_STR_LIT("{\"object\":\"list\",\"data\":["));
    for (size_t i = 0; !e && i < es.n; i++)
        if (!(i && (e = agw_buf_append(out, ",", 1))))
            e = append_entry(out, &es.v[i], anthropic, created);
    if (!e && anthropic) {
        if (!(e = agw_buf_append_str(out, AGW_STR_LIT("],\"has_more\":false,\"first_id\":"))) &&
            !(e = quoted_id(out, es.n ? &es.v[0] : NULL)) &&
            !(e = agw_buf_append_str(out, AGW_STR_LIT(",\"last_id\":"))) &&
            !(e = quoted_id(out, es.n ? &es.v[es.n - 1] : NULL)))
            e = agw_buf_append(out, "}", 1);
    } else if (!e) {
        e = agw_buf_append(out, "]}", 2);
    }
    free(es.v);
    discovered_free(&d);
    return e;
}

agw_err agw_models_cache_put(sqlite3 *db, const agw_provider_cfg *p,
                             const agw_provider_models *list, int64_t now)
{
    const char *base = p->base_url ? p->base_url : "";
    sqlite3_stmt *del = NULL, *ins = NULL;
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "DELETE FROM provider_models WHERE provider = ?1", -1, &del,
                                NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(del, 1, p->name, -1, SQLITE_STATIC);
        rc = sqlite3_step(del) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    if (rc == SQLITE_OK && list)
        rc = sqlite3_prepare_v2(db,
                                "INSERT INTO provider_models (provider, base_url, position, model,"
                                " fetched_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                                -1, &ins, NULL);
    for (size_t i = 0; rc == SQLITE_OK && list && i < list->n; i++) {
        sqlite3_reset(ins);
        sqlite3_bind_text(ins, 1, p->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, base, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 3, (sqlite3_int64)i);
        sqlite3_bind_text(ins, 4, list->ids[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 5, now);
        rc = sqlite3_step(ins) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    if (rc != SQLITE_OK)
        agw_log_warn("models: the list of %s: %s", p->name, sqlite3_errmsg(db));
    sqlite3_finalize(del);
    sqlite3_finalize(ins);
    if (sqlite3_exec(db, rc == SQLITE_OK ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
        rc = SQLITE_ERROR;
    return rc == SQLITE_OK ? AGW_OK : AGW_EIO;
}

agw_err agw_models_cache_prune(sqlite3 *db, const agw_config *cfg)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT DISTINCT provider FROM provider_models", -1, &st, NULL) !=
        SQLITE_OK)
        return AGW_EIO;
    char **gone = NULL;
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        size_t i = 0;
        while (name && i < cfg->n_providers && strcmp(cfg->providers[i].name, name) != 0)
            i++;
        if (name && i == cfg->n_providers) {
            gone = xrealloc(gone, (n + 1) * sizeof *gone);
            gone[n++] = xstrdup(name);
        }
    }
    sqlite3_finalize(st);
    agw_err e = rc == SQLITE_DONE ? AGW_OK : AGW_EIO;
    for (size_t i = 0; i < n; i++) {
        agw_provider_cfg p = { .name = gone[i] };
        if (!e)
            e = agw_models_cache_put(db, &p, NULL, 0);
        free(gone[i]);
    }
    free(gone);
    return e;
}
