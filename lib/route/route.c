#include "route/route.h"

#include "provider/credential.h"
#include "provider/provider.h"

#include <fnmatch.h>
#include <stdlib.h>

int agw_route_is_pattern(const char *entry)
{
    return strpbrk(entry, "*?[") != NULL;
}

/* 1 when one of the provider's model entries equals or glob-matches `model`. */
static int provider_serves(const agw_provider_cfg *p, agw_str model)
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
    /* Without a list of its own, an account that knows its models says
     * (a Copilot account serves what its plan offers). */
    const agw_provider_ops *ops = p->n_models ? NULL : agw_provider_ops_of(p->type);
    return ops && ops->serves && ops->serves(p, model) == 1;
}

/* Providers that can be filtered on, for the prefix steps. */
typedef int (*provider_filter)(const agw_provider_cfg *p, const void *arg);

/* An account that needs a new login (credential.h) is out of routing until
 * an admin gives it one. */
static int usable(const agw_provider_cfg *p, const agw_route_limits *lim)
{
    return p && p->enabled && (!lim || !lim->allowed || lim->allowed(p, lim->ud)) &&
           agw_cred_routable(p);
}

static int is_type(const agw_provider_cfg *p, const void *arg)
{
    return p->type == *(const agw_provider_type *)arg;
}

static int is_named(const agw_provider_cfg *p, const void *arg)
{
    return agw_str_eq(agw_str_c(p->name), *(const agw_str *)arg);
}

/* ---- candidates ---- */

/* The model name `p` wants: `claude-...-YYYYMMDD` loses its date suffix for
 * kiro and copilot providers (they name models without it); anything else
 * is unchanged. Returns a view into `model`. */
static agw_str normalize(const agw_provider_cfg *p, agw_str model)
{
    if (!p || (p->type != AGW_PROVIDER_KIRO && p->type != AGW_PROVIDER_COPILOT))
        return model;
    /* claude-<anything>-YYYYMMDD */
    if (model.len < 7 + 9 || memcmp(model.ptr, "claude-", 7) != 0 ||
        model.ptr[model.len - 9] != '-')
        return model;
    for (size_t i = model.len - 8; i < model.len; i++)
        if (model.ptr[i] < '0' || model.ptr[i] > '9')
            return model;
    model.len -= 9;
    return model;
}

static void add_candidate(agw_route_set *out, const agw_provider_cfg *p, agw_str model)
{
    for (size_t i = 0; i < out->n; i++)
        if (out->r[i].provider == p)
            return;
    if (out->n < AGW_ROUTE_MAX_CANDIDATES) {
        out->r[out->n].provider = p;
        out->r[out->n].model = normalize(p, model);
        out->n++;
    }
}

/* Every usable provider passing `want` that serves `model`, the preferred
 * type first; with `any`, the first passing one when none serves it. */
static void collect(const agw_config *cfg, provider_filter want, const void *arg,
                    agw_provider_type prefer, agw_str model, int any,
                    const agw_route_limits *lim, agw_route_set *out)
{
    const agw_provider_cfg *fallback = NULL;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < cfg->n_providers; i++) {
            const agw_provider_cfg *p = &cfg->providers[i];
            if (!usable(p, lim) || (pass == 0) != (p->type == prefer) || (want && !want(p, arg)))
                continue;
            if (provider_serves(p, model))
                add_candidate(out, p, model);
            else if (any && !fallback)
                fallback = p;
        }
    }
    if (!out->n && fallback)
        add_candidate(out, fallback, model);
}

static const agw_provider_cfg *named_usable(const agw_config *cfg, const char *name,
                                            const agw_route_limits *lim)
{
    const agw_provider_cfg *p = name ? agw_config_provider(cfg, agw_str_c(name)) : NULL;
    return usable(p, lim) ? p : NULL;
}

agw_err agw_route_candidates(const agw_config *cfg, agw_str model, agw_provider_type prefer,
                             const agw_route_limits *lim, agw_route_set *out)
{
    out->n = 0;
    if (model.len == 0) {
        const agw_provider_cfg *p = named_usable(cfg, lim ? lim->first_choice : NULL, lim);
        if (!p)
            p = named_usable(cfg, cfg->defaults.provider, lim);
        for (int pass = 0; !p && pass < 2; pass++)
            for (size_t i = 0; !p && i < cfg->n_providers; i++)
                if (usable(&cfg->providers[i], lim) &&
                    (pass == 1 || cfg->providers[i].type == prefer))
                    p = &cfg->providers[i];
        if (p && p->default_model && *p->default_model) {
            add_candidate(out, p, agw_str_c(p->default_model));
            return AGW_OK;
        }
        if (!cfg->defaults.model || !*cfg->defaults.model)
            return AGW_ENOTFOUND;
        model = agw_str_c(cfg->defaults.model);
    }
    const char *slash = memchr(model.ptr, '/', model.len);
    if (slash) {
        agw_str prefix = { model.ptr, (size_t)(slash - model.ptr) };
        agw_str rest = { slash + 1, model.len - prefix.len - 1 };
        int matched_prefix = 0;
        for (int t = 0; t < AGW_PROVIDER_TYPE_COUNT; t++) {
            if (agw_str_eq(prefix, agw_str_c(agw_provider_type_name((agw_provider_type)t)))) {
                agw_provider_type type = (agw_provider_type)t;
                matched_prefix = 1;
                if (rest.len)
                    collect(cfg, is_type, &type, type, rest, 1, lim, out);
            }
        }
        if (!matched_prefix && agw_config_provider(cfg, prefix)) {
            matched_prefix = 1;
            if (rest.len)
                collect(cfg, is_named, &prefix, prefer, rest, 1, lim, out);
        }
        if (matched_prefix)
            return out->n ? AGW_OK : AGW_ENOTFOUND;
    }
    const agw_provider_cfg *p = named_usable(cfg, lim ? lim->first_choice : NULL, lim);
    if (p) {
        add_candidate(out, p, model);
        return AGW_OK;
    }
    collect(cfg, NULL, NULL, prefer, model, 0, lim, out);
    if (!out->n && (p = named_usable(cfg, cfg->defaults.provider, lim)))
        add_candidate(out, p, model);
    return out->n ? AGW_OK : AGW_ENOTFOUND;
}
