#include "metrics/meter.h"
#include "provider/credential.h"
#include "route/models.h"

void agw_meter_attempt(agw_metrics *m, agw_str provider, const agw_relay_result *res)
{
    int status = res->upstream_status;
    int c = -1;
    if (res->outcome == AGW_UPSTREAM_CONNECT)
        c = AGW_UPERR_CONNECT;
    else if (res->outcome == AGW_UPSTREAM_TIMEOUT)
        c = AGW_UPERR_TIMEOUT;
    else if (res->outcome == AGW_UPSTREAM_BROKEN)
        c = AGW_UPERR_BROKEN;
    else if (status == 429)
        c = AGW_UPERR_STATUS_429;
    else if (status >= 400 && status <= 499)
        c = AGW_UPERR_STATUS_4XX;
    else if (status >= 500)
        c = AGW_UPERR_STATUS_5XX;
    if (c >= 0)
        agw_metrics_upstream_error(m, provider, (agw_metrics_uperr)c);
}

static agw_metrics_series *series_of(agw_metrics *m, const agw_config *cfg,
                                     const agw_usage_record *u)
{
    agw_str provider = u->provider[0] ? agw_str_c(u->provider) : AGW_STR_LIT(AGW_METRICS_NONE);
    agw_str model = agw_str_c(u->model);
    if (!u->provider[0] || !agw_models_known(cfg, model))
        model = AGW_STR_LIT(AGW_METRICS_OTHER);
    return agw_metrics_series_slot(m, provider, model);
}

void agw_meter_answer(agw_metrics *m, const agw_config *cfg, const agw_usage_record *u,
                      uint64_t ttft_us)
{
    agw_metrics_series *s = series_of(m, cfg, u);
    if (!u->tokens_estimated) {
        agw_metrics_count_tokens(s, AGW_TOKENS_INPUT, u->input_tokens);
        agw_metrics_count_tokens(s, AGW_TOKENS_OUTPUT, u->output_tokens);
        agw_metrics_count_tokens(s, AGW_TOKENS_CACHE_READ, u->cache_read_tokens);
        agw_metrics_count_tokens(s, AGW_TOKENS_CACHE_WRITE, u->cache_write_tokens);
    } else {
        agw_metrics_count_tokens_estimated(s, AGW_TOKENS_INPUT, u->input_tokens);
        agw_metrics_count_tokens_estimated(s, AGW_TOKENS_OUTPUT, u->output_tokens);
    }
    if (ttft_us)
        agw_metrics_observe(&agw_metrics_provider_slot(m, agw_str_c(u->provider))->ttft,
                            AGW_HIST_LATENCY, ttft_us);
}

void agw_meter_request(agw_metrics *m, const agw_config *cfg, const agw_usage_record *u,
                       int status, uint64_t total_us, uint64_t upstream_us)
{
    agw_metrics_series *s = series_of(m, cfg, u);
    agw_metrics_count_request(s, status);
    agw_metrics_observe(&s->duration, AGW_HIST_LATENCY, total_us);
    agw_metrics_observe(&m->overhead, AGW_HIST_OVERHEAD,
                        total_us > upstream_us ? total_us - upstream_us : 0);
}

void agw_meter_health(agw_metrics *m, agw_lb *lb, const agw_config *cfg)
{
    for (size_t i = 0; lb && i < cfg->n_providers; i++) {
        const agw_provider_cfg *p = &cfg->providers[i];
        agw_lb_slot *slot = agw_lb_slot_of(lb, agw_str_c(p->name));
        if (slot)
            agw_metrics_set_health(m, p->name, p->enabled && !atomic_load(&slot->unhealthy) &&
                                                   agw_cred_routable(p));
    }
}
