/*
 * metrics: the Prometheus registry of the pool (README.md, "Metrics", lists
 * the series), kept in the shared segment so every process of the pool adds
 * to the same cells and GET /metrics, answered by any one process, shows the
 * pool's totals by construction.
 *
 * Where it lives: the shm reserved region (shm.h) from offset
 * AGW_METRICS_OFFSET (64 KiB; the first 64 KiB belong to the load balancer's
 * per-provider statistics). The region starts zeroed and zero is the valid
 * empty registry, so nothing is initialised. Sub-layout (one agw_metrics):
 *
 *     unused, overflows               2 words
 *     overhead                        one histogram (agw_metrics_hist)
 *     providers[AGW_METRICS_PROVIDERS] per-provider slots (name, health,
 *                                     failovers, upstream errors, TTFT)
 *     series[AGW_METRICS_SERIES]      per-(provider, model) slots (requests
 *                                     by status class, tokens by type,
 *                                     request duration)
 *     overflow_provider, overflow_series  the overflow label sets
 *
 * Every counter is an _Atomic uint64_t updated with relaxed fetch-add: no
 * lock anywhere, and a process that dies mid-request leaves every cell
 * consistent (it only misses its own increments). The gauge of streams in
 * flight is not kept here: it lives in the load balancer's process table
 * (lb.h), per process, so a process killed during a stream gives it back.
 *
 * Label slots: a slot's `state` word is 0 (empty), hash|BUSY (being claimed)
 * or hash|READY. A new label set is claimed by one compare-and-swap 0 ->
 * hash|BUSY on the first empty slot of its linear probe chain, then its
 * names are written and READY is stored with release; lookups acquire-load
 * the state and compare names only on READY. A lookup that meets a BUSY slot
 * of its own hash waits for it briefly (the claimer is two memcpy's from
 * done), so two processes never claim one label set twice; a claimer that
 * died between the two stores leaves a BUSY slot that is skipped for good
 * (never exported), which costs one slot. Slots are never freed.
 *
 * Bounds, so no client can grow the output without limit:
 *  - the model label is a name from the model catalog (models.h:
 *    agw_models_known) or AGW_METRICS_OTHER: a model string a client made up
 *    counts under model="other" of its provider (the caller decides, see
 *    handlers.c);
 *  - a request refused before it was routed counts under provider="none";
 *  - a provider or model name longer than its slot field, and any label set
 *    once its table is full, counts under the overflow set (provider="other",
 *    model="other"), and antigateway_metrics_overflow_total says how often.
 * So the output has at most AGW_METRICS_SERIES + 1 series per family.
 *
 * Health (antigateway_provider_health): agw_metrics_set_health(m, name, up)
 * records a verdict; GET /metrics (handlers.c) feeds it from the load
 * balancer's shared state just before rendering (lb.h: up = enabled and not
 * marked unhealthy by the probes or by consecutive failures), and any other
 * source of health may call it too. A provider with no verdict shows its
 * `enabled` flag from the catalog. Failovers: relay_call (handlers.c) calls
 * agw_metrics_failover(m, name) each time an attempt fails before the first
 * byte and the next candidate is tried.
 */
#ifndef AGW_METRICS_H
#define AGW_METRICS_H

#include "core/config.h"
#include "core/core.h"
#include "state/shm.h"
#include "tenant/usage.h"

#include <stdatomic.h>

#define AGW_METRICS_OFFSET (64u << 10)
#define AGW_METRICS_PROVIDERS 64u
#define AGW_METRICS_SERIES 1024u
/* Bytes of a provider and of a model name, NUL included: every name the
 * gateway accepts fits whole (config.h). The series table lives in the shared
 * segment, so changing either changes its layout (AGW_SHM_LAYOUT_VERSION). */
#define AGW_METRICS_NAME_MAX (AGW_CONFIG_NAME_MAX + 1u)
#define AGW_METRICS_MODEL_MAX (AGW_CONFIG_MODEL_MAX + 1u)
/* Finite upper bounds per histogram, then +Inf. */
#define AGW_METRICS_BUCKETS 16u

/* Label values of the bounded sets. */
#define AGW_METRICS_OTHER "other" /* an unknown model; the overflow set */
#define AGW_METRICS_NONE "none"   /* a request refused before routing */

typedef enum {
    AGW_TOKENS_INPUT = 0,
    AGW_TOKENS_OUTPUT,
    AGW_TOKENS_CACHE_READ,
    AGW_TOKENS_CACHE_WRITE,
    AGW_TOKENS_TYPES
} agw_metrics_token_type;

typedef enum {
    AGW_UPERR_CONNECT = 0,
    AGW_UPERR_TIMEOUT,
    AGW_UPERR_STATUS_4XX,  /* 4xx other than 429 */
    AGW_UPERR_STATUS_429,
    AGW_UPERR_STATUS_5XX,
    AGW_UPERR_BROKEN,      /* the answer was cut or malformed */
    AGW_UPERR_CLASSES
} agw_metrics_uperr;

/* Status classes of antigateway_requests_total: index status / 100 for
 * 100..599 ("1xx".."5xx"), 0 for anything else ("none": no answer, the
 * client left first). */
#define AGW_METRICS_STATUS_CLASSES 6u

/* The histograms' bucket sets (upper bounds in microseconds). */
typedef enum {
    AGW_HIST_LATENCY = 0, /* request duration, time to first token: 5 ms .. 300 s */
    AGW_HIST_OVERHEAD,    /* the gateway's own time: 50 us .. 1 s */
} agw_metrics_buckets;

typedef struct {
    _Atomic uint64_t bucket[AGW_METRICS_BUCKETS + 1]; /* per bucket, not cumulative; last = +Inf */
    _Atomic uint64_t sum_us;
} agw_metrics_hist;

typedef struct {
    _Atomic uint64_t state;               /* 0, hash|BUSY, hash|READY */
    char name[AGW_METRICS_NAME_MAX];
    _Atomic uint64_t health;              /* 0 never probed, 1 down, 2 up */
    _Atomic uint64_t failovers;
    _Atomic uint64_t continuations;
    _Atomic uint64_t errors[AGW_UPERR_CLASSES];
    agw_metrics_hist ttft;
} agw_metrics_provider;

typedef struct {
    _Atomic uint64_t state;
    char provider[AGW_METRICS_NAME_MAX];
    char model[AGW_METRICS_MODEL_MAX];
    _Atomic uint64_t requests[AGW_METRICS_STATUS_CLASSES];
    _Atomic uint64_t tokens[AGW_TOKENS_TYPES];
    /* The gateway's estimates where the provider reported no counts (Kiro):
     * antigateway_tokens_estimated_total, kept apart from the reported ones. */
    _Atomic uint64_t tokens_estimated[AGW_TOKENS_TYPES];
    agw_metrics_hist duration;
} agw_metrics_series;

typedef struct agw_metrics {
    _Atomic uint64_t unused0;             /* streams in flight moved to lb.h's process table */
    _Atomic uint64_t overflows;           /* label sets sent to the overflow set */
    agw_metrics_hist overhead;
    agw_metrics_provider providers[AGW_METRICS_PROVIDERS];
    agw_metrics_series series[AGW_METRICS_SERIES];
    agw_metrics_provider overflow_provider;
    agw_metrics_series overflow_series;
} agw_metrics;

/* The registry inside the segment's reserved region. */
agw_metrics *agw_metrics_in(agw_shm *s);

/* The slots of a label set, claimed when new; never NULL (the overflow set
 * when the name does not fit or the table is full). `model` NULL-ptr views
 * count as AGW_METRICS_OTHER. */
agw_metrics_provider *agw_metrics_provider_slot(agw_metrics *m, agw_str provider);
agw_metrics_series *agw_metrics_series_slot(agw_metrics *m, agw_str provider, agw_str model);

/* Adds one observation of `us` microseconds. */
void agw_metrics_observe(agw_metrics_hist *h, agw_metrics_buckets set, uint64_t us);

/* One model call answered with `status` (0 = no answer). */
void agw_metrics_count_request(agw_metrics_series *s, int status);
void agw_metrics_count_tokens(agw_metrics_series *s, agw_metrics_token_type t, int64_t n);
/* Tokens the gateway estimated (antigateway_tokens_estimated_total). */
void agw_metrics_count_tokens_estimated(agw_metrics_series *s, agw_metrics_token_type t,
                                        int64_t n);
void agw_metrics_upstream_error(agw_metrics *m, agw_str provider, agw_metrics_uperr c);

/* For the health checker: the result of the last probe of `provider`. */
void agw_metrics_set_health(agw_metrics *m, const char *provider, int up);
/* For the failover loop: one failover away from `provider`. */
void agw_metrics_failover(agw_metrics *m, const char *provider);
/* One continuation round of an answer from `provider` (proto/continuation.h). */
void agw_metrics_continuation(agw_metrics *m, const char *provider);

/* The Prometheus text exposition (format 0.0.4) of the registry, with
 * antigateway_provider_health for each provider of `cfg`,
 * antigateway_rate_limit_hits_total = `rate_limit_hits` and
 * antigateway_streams_in_flight = `streams_in_flight` (agw_lb_streams). */
AGW_WARN_UNUSED agw_err agw_metrics_render(agw_metrics *m, const agw_config *cfg,
                                           uint64_t rate_limit_hits, uint64_t streams_in_flight,
                                           agw_buf *out);

/* The usage log's families (tenant/usage.h), appended after the registry's:
 * antigateway_usage_ring_records and _capacity (gauges), and the counters
 * antigateway_usage_rejected_total, _dropped_total, _rows_written_total,
 * _rows_already_stored_total and _drainer_errors_total. */
AGW_WARN_UNUSED agw_err agw_metrics_render_usage(const agw_usage_stats *st, agw_buf *out);

#define AGW_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
