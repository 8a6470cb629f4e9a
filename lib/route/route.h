/*
 * route: which configured provider serves a model name, and under what name.
 *
 * Order (README "Routing"): a prefix naming a provider type (`openai/gpt-4o`) or a
 * provider name (`work-openai/gpt-4o`) picks among those providers and is
 * stripped; otherwise the first enabled provider whose model list matches
 * (entries may be fnmatch globs such as `gpt-*`); otherwise defaults.provider.
 * At every step providers of `prefer` type come first, so a model served by
 * both an OpenAI and an Anthropic provider goes to the one that speaks the
 * client's protocol. A prefix that names neither a type nor a provider is part
 * of the model name (`meta-llama/Llama-3` is a model).
 *
 * The route borrows: `provider` points into the config, `model` into the
 * caller's model string.
 */
#ifndef AGW_ROUTE_H
#define AGW_ROUTE_H

#include "core/config.h"

typedef struct {
    const agw_provider_cfg *provider;
    agw_str model; /* the name to send upstream (prefix stripped) */
} agw_route;

/* What a client key changes about routing (tenant.h):
 * its default provider is tried before the model lists, for a model without
 * a provider prefix, and only providers `allowed` accepts are considered at
 * any step (NULL accepts all). */
typedef struct {
    const char *first_choice;   /* a provider name, or NULL */
    int (*allowed)(const agw_provider_cfg *p, const void *ud);
    const void *ud;
} agw_route_limits;

/* 1 when a model-list entry is a glob pattern rather than a literal name. */
int agw_route_is_pattern(const char *entry);

/* ---- every candidate: the load balancer orders them, failover walks them ---- */

#define AGW_ROUTE_MAX_CANDIDATES 32

typedef struct {
    size_t n;
    agw_route r[AGW_ROUTE_MAX_CANDIDATES];
} agw_route_set;

/* Every provider that may serve `model`, in resolution order (the steps
 * above), for the load balancer to reorder: at the model-list step every
 * enabled provider whose list holds the model is a candidate (those of
 * `prefer` type first), not only the first one; the first candidate is where
 * the model routes when nothing else decides. A prefix
 * naming a type gives every provider of that type that serves the rest (or
 * the first of the type when none lists it); a provider name, the key's
 * default provider and defaults.provider give one candidate.
 * An empty model takes the provider chosen for it (the key's default
 * provider, else defaults.provider, else the first enabled provider of
 * `prefer` type, else the first enabled) and its default_model; a provider
 * without one sends defaults.model, routed like any name.
 * Each candidate's model is the name its provider wants: for kiro and
 * copilot providers, which name models without a date, `claude-...-YYYYMMDD`
 * loses its date suffix; other names go unchanged.
 * AGW_ENOTFOUND when there is none. */
AGW_WARN_UNUSED agw_err agw_route_candidates(const agw_config *cfg, agw_str model,
                                             agw_provider_type prefer,
                                             const agw_route_limits *lim, agw_route_set *out);

#endif
