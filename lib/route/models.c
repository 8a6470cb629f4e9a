#include "route/models.h"

#include "route/route.h"

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

/* The catalog's entries with or without prefixes (see models.h for the order). */
static void collect(const agw_config *cfg, const agw_models_filter *f, int prefixed,
                    entries *es)
{
    for (size_t i = 0; i < cfg->n_providers; i++) {
        const agw_provider_cfg *p = &cfg->providers[i];
        if (!p->enabled || (f && f->provider_ok && !f->provider_ok(p, f->ud)))
            continue;
        const char *prefix = prefixed ? agw_provider_type_name(p->type) : NULL;
        for (size_t j = 0; j < p->n_models; j++) {
            const char *id = p->models[j];
            if (!agw_route_is_pattern(id) &&
                !(f && f->model_ok && !f->model_ok(agw_str_c(id), f->ud)))
                add(es, prefix, id, p->name);
        }
        for (const char *const *s = static_models(p->type); *s; s++)
            if (!(f && f->model_ok && !f->model_ok(agw_str_c(*s), f->ud)))
                add(es, prefix, *s, p->name);
    }
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

agw_err agw_models_render(const agw_config *cfg, const agw_models_filter *f, int anthropic,
                          int64_t created, agw_buf *out)
{
    entries es = { NULL, 0, 0 };
    collect(cfg, f, 0, &es);
    collect(cfg, f, 1, &es);
    char date[32];
    struct tm tm;
    time_t t = (time_t)created;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
    agw_err e = agw_buf_append_str(out, anthropic ? AGW_STR_LIT("{\"data\":[")
                                                  : AGW_STR_LIT("{\"object\":\"list\",\"data\":["));
    for (size_t i = 0; !e && i < es.n; i++) {
        const entry *en = &es.v[i];
        if (i && (e = agw_buf_append(out, ",", 1)))
            break;
        if (anthropic) {
            if (!(e = agw_buf_append_str(out, AGW_STR_LIT("{\"type\":\"model\",\"id\":\""))) &&
                !(e = append_id(out, en)) &&
                !(e = agw_buf_append_str(out, AGW_STR_LIT("\",\"display_name\":\""))) &&
                !(e = append_id(out, en)))
                e = agw_buf_appendf(out, "\",\"created_at\":\"%s\"}", date);
        } else {
            if (!(e = agw_buf_append_str(out, AGW_STR_LIT("{\"id\":\""))) &&
                !(e = append_id(out, en)) &&
                !(e = agw_buf_appendf(out, "\",\"object\":\"model\",\"created\":%lld,"
                                           "\"owned_by\":\"",
                                      (long long)created)) &&
                !(e = agw_buf_append_json_escaped(out, agw_str_c(en->owner))))
                e = agw_buf_append(out, "\"}", 2);
        }
    }
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
    return e;
}
