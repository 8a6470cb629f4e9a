/*
 * models: the model catalog of GET /v1/models (README "Endpoints") and
 * the test of whether a model name belongs to it (which bounds the metrics'
 * model label, metrics.h).
 *
 * The catalog, in this order, each id once:
 *  1. raw ids: for each listed provider of the snapshot (antigw.cfg's, then
 *     the database's), the literal names it declares (glob patterns say
 *     which names route where; they are not models), then, for a Kiro or
 *     Copilot provider, the maintained static list of its type (models.c);
 *  2. the same ids again with the provider type as prefix (`openai/…`,
 *     `anthropic/…`, `kiro/…`, `copilot/…`), which route to that type.
 * The static lists appear only when a provider of their type is listed:
 * without one, their ids would route nowhere. Models discovered from Copilot
 * at run time are not listed yet (no Copilot client exists).
 *
 * Shapes: OpenAI `{"object":"list","data":[{"id","object":"model","created",
 * "owned_by"}]}`; Anthropic (the client sent anthropic-version)
 * `{"data":[{"type":"model","id","display_name","created_at"}],"has_more":
 * false,"first_id","last_id"}`. `owned_by` is the provider's name.
 */
#ifndef AGW_MODELS_H
#define AGW_MODELS_H

#include "core/config.h"
#include "core/core.h"

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
 * when `anthropic`. `created` (Unix seconds) dates every entry. Disabled
 * providers are not listed. */
AGW_WARN_UNUSED agw_err agw_models_render(const agw_config *cfg, const agw_models_filter *f,
                                          int anthropic, int64_t created, agw_buf *out);

#endif
