#include "route.h"

#include <fnmatch.h>
#include <stdlib.h>

int agw_route_is_pattern(const char *entry)
{
    return strpbrk(entry, "*?[") != NULL;
}

int agw_route_provider_serves(const agw_provider_cfg *p, agw_str model)
{
    /* fnmatch wants a C string; model names are short, so a bounded stack copy. */
    char name[512];
    if (model.len == 0 || model.len >= sizeof name || memchr(model.ptr, '\0', model.len))
        return 0;
    memcpy(name, model.ptr, model.len);
    name[model.len] = '\0';
    for (size_t i = 0; i < p->n_models; i++) {
        const char *m = p->models[i];
        if (agw_route_is_pattern(m) ? fnmatch(m, name, 0) == 0 : strcmp(m, name) == 0)
            return 1;
    }
    return 0;
}

/* Walks the enabled providers that pass `want`, the preferred type first.
 * Returns the first that serves `model`, or with `any` set, the first at all. */
typedef int (*provider_filter)(const agw_provider_cfg *p, const void *arg);

static int usable(const agw_provider_cfg *p, const agw_route_limits *lim)
{
    return p && p->enabled && (!lim || !lim->allowed || lim->allowed(p, lim->ud));
}

static const agw_provider_cfg *pick(const agw_config *cfg, provider_filter want, const void *arg,
                                    agw_provider_type prefer, agw_str model, int any,
                                    const agw_route_limits *lim)
{
    const agw_provider_cfg *fallback = NULL;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < cfg->n_providers; i++) {
            const agw_provider_cfg *p = &cfg->providers[i];
            if (!usable(p, lim) || (pass == 0) != (p->type == prefer))
                continue;
            if (want && !want(p, arg))
                continue;
            if (agw_route_provider_serves(p, model))
                return p;
            if (any && !fallback)
                fallback = p;
        }
    }
    return fallback;
}

static int is_type(const agw_provider_cfg *p, const void *arg)
{
    return p->type == *(const agw_provider_type *)arg;
}

static int is_named(const agw_provider_cfg *p, const void *arg)
{
    return agw_str_eq(agw_str_c(p->name), *(const agw_str *)arg);
}

agw_err agw_route_resolve(const agw_config *cfg, agw_str model, agw_provider_type prefer,
                          agw_route *out)
{
    return agw_route_resolve_limited(cfg, model, prefer, NULL, out);
}

agw_err agw_route_resolve_limited(const agw_config *cfg, agw_str model, agw_provider_type prefer,
                                  const agw_route_limits *lim, agw_route *out)
{
    const char *slash = model.len ? memchr(model.ptr, '/', model.len) : NULL;
    if (slash) {
        agw_str prefix = { model.ptr, (size_t)(slash - model.ptr) };
        agw_str rest = { slash + 1, model.len - prefix.len - 1 };
        const agw_provider_cfg *p = NULL;
        int matched_prefix = 0;
        for (int t = 0; t < AGW_PROVIDER_TYPE_COUNT; t++) {
            if (agw_str_eq(prefix, agw_str_c(agw_provider_type_name((agw_provider_type)t)))) {
                agw_provider_type type = (agw_provider_type)t;
                matched_prefix = 1;
                p = pick(cfg, is_type, &type, type, rest, 1, lim);
            }
        }
        if (!matched_prefix && agw_config_provider(cfg, prefix)) {
            matched_prefix = 1;
            p = pick(cfg, is_named, &prefix, prefer, rest, 1, lim);
        }
        if (matched_prefix) {
            if (!p || rest.len == 0)
                return AGW_ENOTFOUND;
            out->provider = p;
            out->model = rest;
            return AGW_OK;
        }
    }
    const agw_provider_cfg *p = NULL;
    if (lim && lim->first_choice) {
        p = agw_config_provider(cfg, agw_str_c(lim->first_choice));
        if (!usable(p, lim))
            p = NULL;
    }
    if (!p)
        p = pick(cfg, NULL, NULL, prefer, model, 0, lim);
    if (!p && cfg->defaults.provider) {
        p = agw_config_provider(cfg, agw_str_c(cfg->defaults.provider));
        if (!usable(p, lim))
            p = NULL;
    }
    if (!p)
        return AGW_ENOTFOUND;
    out->provider = p;
    out->model = model;
    return AGW_OK;
}
