/*
 * models: the model catalog of GET /v1/models (README "Endpoints") and
 * the test of whether a model name belongs to it (which bounds the metrics'
 * model label, metrics.h).
 *
 * The catalog, in this order, each id once:
 *  1. raw ids: for each listed provider of the snapshot (antigw.cfg's, then
 *     the database's), the models its own list endpoint named at the last
 *     probe, those its `models` entries admit (a literal name admits itself,
 *     a glob what it matches, no entries everything); then the literal
 *     names it declares that its list did not name (glob patterns say which
 *     names route where; they are not models), which are all it shows when
 *     it has no list (the fetch failed, no probe ran yet, or its type has no
 *     list endpoint): a declared name routes there whether the upstream
 *     lists it or not (a deployment alias, say); then, for a Kiro or Copilot
 *     provider without a list of its own, the maintained static list of its
 *     type (models.c). A Copilot account's list is the one read with its
 *     token (provider ops account_models), not the prober's;
 *  2. the same ids again with the provider type as prefix (`openai/…`,
 *     `anthropic/…`, `kiro/…`, `copilot/…`), which route to that type.
 * The static lists appear only when a provider of their type is listed:
 * without one, their ids would route nowhere.
 *
 * The discovered lists are a cache in the database (table provider_models,
 * one row per model: provider name, the base_url it came from, position):
 * the pool's prober (health.h) writes it after each probe, and every process
 * of the pool reads it. A row whose base_url is no longer the provider's is
 * ignored, so a provider pointed elsewhere falls back to its literal names
 * until the next probe.
 *
 * Shapes: OpenAI `{"object":"list","data":[{"id","object":"model","created",
 * "owned_by"}]}`; Anthropic (the client sent anthropic-version)
 * `{"data":[{"type":"model","id","display_name","created_at"}],"has_more":
 * false,"first_id","last_id"}`. `owned_by` is the provider's name. One
 * model (GET /v1/models/{id}) is one element of `data` in the same shape.
 */
#ifndef AGW_MODELS_H
#define AGW_MODELS_H

#include "core/config.h"
#include "core/core.h"
#include "provider/provider.h"

#include <sqlite3.h>

/* 1 when `model` is a literal model of some provider of `cfg` (enabled or
 * not) or of a static list. */
int agw_models_known(const agw_config *cfg, agw_str model);

/* Filters of the listing: a provider the client may see, a model id it may
 * use. Either may be NULL (everything passes). */
typedef struct {
    int (*provider_ok)(const agw_provider_cfg *p, void *ud);
    int (*model_ok)(agw_str id, void *ud);
    void *ud;
} agw_models_filter;

/* Appends the catalog of `cfg` in the OpenAI shape, or the Anthropic shape
 * when `anthropic`. `db` holds the discovered lists (NULL: none, every
 * provider falls back to its literal names). `created` (Unix seconds) dates
 * every entry. Disabled providers are not listed. AGW_EIO when the database
 * cannot be read. */
AGW_WARN_UNUSED agw_err agw_models_render(const agw_config *cfg, sqlite3 *db,
                                          const agw_models_filter *f, int anthropic,
                                          int64_t created, agw_buf *out);

/* Appends the catalog's entry whose id (prefixed or not) is `id`, in the
 * same shape as in the list. AGW_ENOTFOUND when the catalog has no such id. */
AGW_WARN_UNUSED agw_err agw_models_render_one(const agw_config *cfg, sqlite3 *db,
                                              const agw_models_filter *f, int anthropic,
                                              int64_t created, agw_str id, agw_buf *out);

/* Replaces the discovered list of `p` with `list` (every id, before the
 * `models` filter), or forgets it when `list` is NULL: the catalog then
 * falls back to the provider's literal names. AGW_EIO on database errors. */
AGW_WARN_UNUSED agw_err agw_models_cache_put(sqlite3 *db, const agw_provider_cfg *p,
                                             const agw_provider_models *list, int64_t now);

/* Forgets the lists of providers `cfg` no longer has (deleted, renamed). */
AGW_WARN_UNUSED agw_err agw_models_cache_prune(sqlite3 *db, const agw_config *cfg);

#endif
