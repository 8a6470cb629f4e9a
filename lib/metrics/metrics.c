#include "metrics/metrics.h"

#include "provider/credential.h"

#include <assert.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>

static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "metrics cells must be lock-free in shared memory");
static_assert(AGW_METRICS_OFFSET + sizeof(agw_metrics) <= AGW_SHM_RESERVED_BYTES,
              "the metrics registry must fit in the shm reserved region");

#define STATE_BUSY UINT64_C(1)
#define STATE_READY UINT64_C(2)
#define STATE_FLAGS UINT64_C(3)
/* How long a lookup waits for a claim in progress before skipping the slot. */
#define BUSY_SPINS 10000

static const uint64_t bounds_us[2][AGW_METRICS_BUCKETS] = {
    [AGW_HIST_LATENCY] = { 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
                           5000000, 10000000, 20000000, 30000000, 60000000, 120000000,
                           300000000 },
    [AGW_HIST_OVERHEAD] = { 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
                            250000, 500000, 750000, 1000000, 2500000 },
};

static const char *const status_class[AGW_METRICS_STATUS_CLASSES] = { "none", "1xx", "2xx",
                                                                      "3xx", "4xx", "5xx" };
static const char *const token_type[AGW_TOKENS_TYPES] = { "input", "output", "cache_read",
                                                          "cache_write" };
static const char *const uperr_class[AGW_UPERR_CLASSES] = {
    "connect", "timeout", "status_4xx", "status_429", "status_5xx", "broken"
};

agw_metrics *agw_metrics_in(agw_shm *s)
{
    size_t len;
    char *base = agw_shm_reserved(s, &len);
    return (agw_metrics *)(base + AGW_METRICS_OFFSET);
}

/* FNV-1a over the label values, NUL-separated; the flag bits cleared. */
static uint64_t label_hash(agw_str a, agw_str b)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < a.len; i++)
        h = (h ^ (unsigned char)a.ptr[i]) * UINT64_C(1099511628211);
    h = (h ^ 0xffu) * UINT64_C(1099511628211);
    for (size_t i = 0; i < b.len; i++)
        h = (h ^ (unsigned char)b.ptr[i]) * UINT64_C(1099511628211);
    h &= ~STATE_FLAGS;
    return h ? h : 4;
}

static int name_is(const char *field, agw_str v)
{
    return strncmp(field, v.ptr, v.len) == 0 && field[v.len] == '\0';
}

static void set_name(char *field, agw_str v)
{
    memcpy(field, v.ptr, v.len);
    field[v.len] = '\0';
}

/* Waits for a claim in progress; returns the state, still BUSY if it never ended. */
static uint64_t settled_state(_Atomic uint64_t *state)
{
    uint64_t st = atomic_load_explicit(state, memory_order_acquire);
    for (int i = 0; (st & STATE_FLAGS) == STATE_BUSY && i < BUSY_SPINS; i++) {
        sched_yield();
        st = atomic_load_explicit(state, memory_order_acquire);
    }
    return st;
}

/* The generic probe over a table of `n` slots of `size` bytes whose first
 * member is the state word; `match` and `fill` read and write the names. */
typedef struct {
    agw_str a, b;
} labels;

static void *probe(void *table, size_t n, size_t size, labels l,
                   int (*match)(void *slot, labels l), void (*fill)(void *slot, labels l))
{
    uint64_t h = label_hash(l.a, l.b);
    size_t i = (size_t)(h >> 2) % n;
    for (size_t k = 0; k < n; k++, i = (i + 1) % n) {
        void *slot = (char *)table + i * size;
        _Atomic uint64_t *state = slot;
        uint64_t st = atomic_load_explicit(state, memory_order_acquire);
        if (st == 0) {
            uint64_t want = 0;
            if (atomic_compare_exchange_strong(state, &want, h | STATE_BUSY)) {
                fill(slot, l);
                atomic_store_explicit(state, h | STATE_READY, memory_order_release);
                return slot;
            }
            st = want;
        }
        if ((st & ~STATE_FLAGS) != h)
            continue;
        if ((st & STATE_FLAGS) == STATE_BUSY)
            st = settled_state(state);
        if ((st & STATE_FLAGS) == STATE_READY && match(slot, l))
            return slot;
    }
    return NULL;
}

static int provider_match(void *slot, labels l)
{
    return name_is(((agw_metrics_provider *)slot)->name, l.a);
}

static void provider_fill(void *slot, labels l)
{
    set_name(((agw_metrics_provider *)slot)->name, l.a);
}

static int series_match(void *slot, labels l)
{
    agw_metrics_series *s = slot;
    return name_is(s->provider, l.a) && name_is(s->model, l.b);
}

static void series_fill(void *slot, labels l)
{
    agw_metrics_series *s = slot;
    set_name(s->provider, l.a);
    set_name(s->model, l.b);
}

static const agw_str other = AGW_STR_LIT(AGW_METRICS_OTHER);

agw_metrics_provider *agw_metrics_provider_slot(agw_metrics *m, agw_str provider)
{
    agw_metrics_provider *p = NULL;
    if (provider.len < AGW_METRICS_NAME_MAX && !memchr(provider.ptr, '\0', provider.len) &&
        !agw_str_eq(provider, other))
        p = probe(m->providers, AGW_METRICS_PROVIDERS, sizeof m->providers[0],
                  (labels){ provider, { "", 0 } }, provider_match, provider_fill);
    if (p)
        return p;
    if (!agw_str_eq(provider, other))
        atomic_fetch_add_explicit(&m->overflows, 1, memory_order_relaxed);
    return &m->overflow_provider;
}

agw_metrics_series *agw_metrics_series_slot(agw_metrics *m, agw_str provider, agw_str model)
{
    if (!model.ptr)
        model = other;
    agw_metrics_series *s = NULL;
    int overflow_set = agw_str_eq(provider, other) && agw_str_eq(model, other);
    if (!overflow_set && provider.len < AGW_METRICS_NAME_MAX &&
        model.len < AGW_METRICS_MODEL_MAX && !memchr(provider.ptr, '\0', provider.len) &&
        !memchr(model.ptr, '\0', model.len))
        s = probe(m->series, AGW_METRICS_SERIES, sizeof m->series[0], (labels){ provider, model },
                  series_match, series_fill);
    if (s)
        return s;
    if (!overflow_set)
        atomic_fetch_add_explicit(&m->overflows, 1, memory_order_relaxed);
    return &m->overflow_series;
}

void agw_metrics_observe(agw_metrics_hist *h, agw_metrics_buckets set, uint64_t us)
{
    size_t i = 0;
    while (i < AGW_METRICS_BUCKETS && us > bounds_us[set][i])
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
}

void agw_metrics_count_request(agw_metrics_series *s, int status)
{
    size_t c = status >= 100 && status <= 599 ? (size_t)(status / 100) : 0;
    atomic_fetch_add_explicit(&s->requests[c], 1, memory_order_relaxed);
}

static void add_tokens(_Atomic uint64_t *counters, agw_metrics_token_type t, int64_t n)
{
    if (n > 0 && (unsigned)t < AGW_TOKENS_TYPES)
        atomic_fetch_add_explicit(&counters[t], (uint64_t)n, memory_order_relaxed);
}

void agw_metrics_count_tokens(agw_metrics_series *s, agw_metrics_token_type t, int64_t n)
{
    add_tokens(s->tokens, t, n);
}

void agw_metrics_count_tokens_estimated(agw_metrics_series *s, agw_metrics_token_type t,
                                        int64_t n)
{
    add_tokens(s->tokens_estimated, t, n);
}

void agw_metrics_upstream_error(agw_metrics *m, agw_str provider, agw_metrics_uperr c)
{
    if ((unsigned)c < AGW_UPERR_CLASSES)
        atomic_fetch_add_explicit(&agw_metrics_provider_slot(m, provider)->errors[c], 1,
                                  memory_order_relaxed);
}

void agw_metrics_set_health(agw_metrics *m, const char *provider, int up)
{
    atomic_store_explicit(&agw_metrics_provider_slot(m, agw_str_c(provider))->health,
                          up ? 2 : 1, memory_order_relaxed);
}

void agw_metrics_failover(agw_metrics *m, const char *provider)
{
    atomic_fetch_add_explicit(&agw_metrics_provider_slot(m, agw_str_c(provider))->failovers, 1,
                              memory_order_relaxed);
}

void agw_metrics_continuation(agw_metrics *m, const char *provider)
{
    atomic_fetch_add_explicit(&agw_metrics_provider_slot(m, agw_str_c(provider))->continuations, 1,
                              memory_order_relaxed);
}

/* ---- exposition ---- */

static uint64_t load(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static int slot_ready(_Atomic uint64_t *state)
{
    return (atomic_load_explicit(state, memory_order_acquire) & STATE_FLAGS) == STATE_READY;
}

/* A label value: backslash, double quote and newline escaped (format 0.0.4). */
static agw_err label_value(agw_buf *out, const char *v)
{
    agw_err e = AGW_OK;
    for (const char *p = v; *p && !e; p++) {
        if (*p == '\\')
            e = agw_buf_append(out, "\\\\", 2);
        else if (*p == '"')
            e = agw_buf_append(out, "\\\"", 2);
        else if (*p == '\n')
            e = agw_buf_append(out, "\\n", 2);
        else
            e = agw_buf_append(out, p, 1);
    }
    return e;
}

/* `name{k1="v1",k2="v2"` without the closing brace; k2 NULL for one label. */
static agw_err series_head(agw_buf *out, const char *name, const char *k1, const char *v1,
                           const char *k2, const char *v2)
{
    agw_err e;
    if ((e = agw_buf_appendf(out, "%s{%s=\"", name, k1)) || (e = label_value(out, v1)) ||
        (e = agw_buf_append(out, "\"", 1)))
        return e;
    if (k2 && ((e = agw_buf_appendf(out, ",%s=\"", k2)) || (e = label_value(out, v2)) ||
               (e = agw_buf_append(out, "\"", 1))))
        return e;
    return AGW_OK;
}

static agw_err family(agw_buf *out, const char *name, const char *type, const char *help)
{
    return agw_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One labelled counter or gauge sample. */
static agw_err sample(agw_buf *out, const char *name, const char *k1, const char *v1,
                      const char *k2, const char *v2, const char *k3, const char *v3,
                      uint64_t value)
{
    agw_err e = series_head(out, name, k1, v1, k2, v2);
    if (!e && k3 && ((e = agw_buf_appendf(out, ",%s=\"", k3)) || (e = label_value(out, v3)) ||
                     (e = agw_buf_append(out, "\"", 1))))
        return e;
    return e ? e : agw_buf_appendf(out, "} %llu\n", (unsigned long long)value);
}

/* Microseconds as decimal seconds without trailing zeros: 0.00005, 2.5, 300. */
static void seconds(char *dst, size_t n, uint64_t us)
{
    int len = snprintf(dst, n, "%llu.%06llu", (unsigned long long)(us / 1000000),
                       (unsigned long long)(us % 1000000));
    while (len > 0 && dst[len - 1] == '0')
        dst[--len] = '\0';
    if (len > 0 && dst[len - 1] == '.')
        dst[--len] = '\0';
}

/* The histogram's samples; k1 NULL for an unlabelled one. Skipped when empty
 * unless `always`. */
static agw_err histogram(agw_buf *out, const char *name, agw_metrics_hist *h,
                         agw_metrics_buckets set, const char *k1, const char *v1, const char *k2,
                         const char *v2, int always)
{
    uint64_t counts[AGW_METRICS_BUCKETS + 1], total = 0;
    for (size_t i = 0; i <= AGW_METRICS_BUCKETS; i++)
        total += counts[i] = load(&h->bucket[i]);
    if (!total && !always)
        return AGW_OK;
    uint64_t sum_us = load(&h->sum_us);
    agw_err e = AGW_OK;
    uint64_t cum = 0;
    for (size_t i = 0; i <= AGW_METRICS_BUCKETS && !e; i++) {
        cum += counts[i];
        char le[32];
        if (i == AGW_METRICS_BUCKETS)
            snprintf(le, sizeof le, "+Inf");
        else
            seconds(le, sizeof le, bounds_us[set][i]);
        if (k1)
            e = series_head(out, name, k1, v1, k2, v2);
        else
            e = agw_buf_appendf(out, "%s{", name);
        if (!e)
            e = agw_buf_appendf(out, "%sle=\"%s\"} %llu\n", k1 ? "," : "", le,
                                (unsigned long long)cum);
    }
    const char *suffix[2] = { "_sum", "_count" };
    for (int k = 0; k < 2 && !e; k++) {
        char full[128];
        snprintf(full, sizeof full, "%.*s%s", (int)(strlen(name) - strlen("_bucket")), name,
                 suffix[k]);
        if (k1) {
            if (!(e = series_head(out, full, k1, v1, k2, v2)))
                e = agw_buf_append(out, "}", 1);
        } else {
            e = agw_buf_appendf(out, "%s", full);
        }
        if (!e && k == 0)
            e = agw_buf_appendf(out, " %llu.%06llu\n", (unsigned long long)(sum_us / 1000000),
                                (unsigned long long)(sum_us % 1000000));
        else if (!e)
            e = agw_buf_appendf(out, " %llu\n", (unsigned long long)total);
    }
    return e;
}

/* Each READY series of the table plus the overflow set when it was used. */
#define FOR_SERIES(m, s)                                                                      \
    for (agw_metrics_series *s = (m)->series; s <= &(m)->overflow_series;                      \
         s = s == &(m)->series[AGW_METRICS_SERIES - 1] ? &(m)->overflow_series : s + 1)       \
        if (s == &(m)->overflow_series || slot_ready(&s->state))

#define FOR_PROVIDERS(m, p)                                                                   \
    for (agw_metrics_provider *p = (m)->providers; p <= &(m)->overflow_provider;               \
         p = p == &(m)->providers[AGW_METRICS_PROVIDERS - 1] ? &(m)->overflow_provider : p + 1) \
        if (p == &(m)->overflow_provider || slot_ready(&p->state))

static const char *series_provider(agw_metrics *m, agw_metrics_series *s)
{
    return s == &m->overflow_series ? AGW_METRICS_OTHER : s->provider;
}
static const char *series_model(agw_metrics *m, agw_metrics_series *s)
{
    return s == &m->overflow_series ? AGW_METRICS_OTHER : s->model;
}

/* One token counter family: the reported counts, or the estimated ones. */
static agw_err token_family(agw_buf *out, agw_metrics *m, const char *name, const char *help,
                            int estimated)
{
    agw_err e = family(out, name, "counter", help);
    FOR_SERIES(m, s)
    {
        for (size_t t = 0; !e && t < AGW_TOKENS_TYPES; t++) {
            uint64_t v = load(estimated ? &s->tokens_estimated[t] : &s->tokens[t]);
            if (v)
                e = sample(out, name, "provider", series_provider(m, s), "model",
                           series_model(m, s), "type", token_type[t], v);
        }
    }
    return e;
}

static const char *provider_name(agw_metrics *m, agw_metrics_provider *p)
{
    return p == &m->overflow_provider ? AGW_METRICS_OTHER : p->name;
}

/* The health of a provider of the catalog: the last probe, else `enabled`. */
static uint64_t health_of(agw_metrics *m, const agw_provider_cfg *p)
{
    FOR_PROVIDERS(m, slot)
    {
        if (slot != &m->overflow_provider && strcmp(slot->name, p->name) == 0) {
            uint64_t h = load(&slot->health);
            if (h)
                return h == 2;
        }
    }
    return p->enabled != 0;
}

agw_err agw_metrics_render(agw_metrics *m, const agw_config *cfg, uint64_t rate_limit_hits,
                           uint64_t streams_in_flight, agw_buf *out)
{
    agw_err e;
    const char *N;

    N = "antigateway_requests_total";
    if ((e = family(out, N, "counter",
                    "Model calls answered, by provider, model and status class.")))
        return e;
    FOR_SERIES(m, s)
    {
        for (size_t c = 0; c < AGW_METRICS_STATUS_CLASSES; c++) {
            uint64_t v = load(&s->requests[c]);
            if (v && (e = sample(out, N, "provider", series_provider(m, s), "model",
                                 series_model(m, s), "status", status_class[c], v)))
                return e;
        }
    }

    N = "antigateway_request_duration_seconds";
    if ((e = family(out, N, "histogram",
                    "Time from a model call's arrival to its end, in seconds.")))
        return e;
    FOR_SERIES(m, s)
    {
        if ((e = histogram(out, "antigateway_request_duration_seconds_bucket", &s->duration,
                           AGW_HIST_LATENCY, "provider", series_provider(m, s), "model",
                           series_model(m, s), 0)))
            return e;
    }

    if ((e = token_family(out, m, "antigateway_tokens_total",
                          "Tokens reported by providers, by provider, model and type.", 0)) ||
        (e = token_family(out, m, "antigateway_tokens_estimated_total",
                          "Tokens the gateway estimated for answers that reported none (always "
                          "for Kiro), by provider, model and type.",
                          1)))
        return e;

    N = "antigateway_provider_health";
    if ((e = family(out, N, "gauge",
                    "1 when the provider is usable (last health probe, else enabled), else 0.")))
        return e;
    for (size_t i = 0; i < cfg->n_providers; i++)
        if ((e = sample(out, N, "provider", cfg->providers[i].name, NULL, NULL, NULL, NULL,
                        health_of(m, &cfg->providers[i]))))
            return e;

    N = "antigateway_provider_needs_login";
    if ((e = family(out, N, "gauge",
                    "1 when the account of a provider that logs in (kiro, copilot) has no "
                    "usable login: its refresh token was refused, or it never logged in.")))
        return e;
    for (size_t i = 0; i < cfg->n_providers; i++)
        if (agw_cred_type_logs_in(cfg->providers[i].type) &&
            (e = sample(out, N, "provider", cfg->providers[i].name, NULL, NULL, NULL, NULL,
                        !agw_cred_routable(&cfg->providers[i]))))
            return e;

    N = "antigateway_rate_limit_hits_total";
    if ((e = family(out, N, "counter", "Requests refused with 429 by a client key's limits.")) ||
        (e = agw_buf_appendf(out, "%s %llu\n", N, (unsigned long long)rate_limit_hits)))
        return e;

    N = "antigateway_gateway_overhead_seconds";
    if ((e = family(out, N, "histogram",
                    "The gateway's own time per model call, excluding the upstream transfer.")) ||
        (e = histogram(out, "antigateway_gateway_overhead_seconds_bucket", &m->overhead,
                       AGW_HIST_OVERHEAD, NULL, NULL, NULL, NULL, 1)))
        return e;

    N = "antigateway_time_to_first_token_seconds";
    if ((e = family(out, N, "histogram",
                    "Time from a model call's arrival to its first output token, in seconds.")))
        return e;
    FOR_PROVIDERS(m, p)
    {
        if ((e = histogram(out, "antigateway_time_to_first_token_seconds_bucket", &p->ttft,
                           AGW_HIST_LATENCY, "provider", provider_name(m, p), NULL, NULL, 0)))
            return e;
    }

    N = "antigateway_streams_in_flight";
    if ((e = family(out, N, "gauge", "Streamed answers in progress across the pool.")) ||
        (e = agw_buf_appendf(out, "%s %llu\n", N,
                             (unsigned long long)streams_in_flight)))
        return e;

    N = "antigateway_failovers_total";
    if ((e = family(out, N, "counter", "Times a failing provider was left for the next one.")))
        return e;
    FOR_PROVIDERS(m, p)
    {
        uint64_t v = load(&p->failovers);
        if (v && (e = sample(out, N, "provider", provider_name(m, p), NULL, NULL, NULL, NULL, v)))
            return e;
    }

    N = "antigateway_continuations_total";
    if ((e = family(out, N, "counter",
                    "Follow-up calls that continued an answer cut by an output cap.")))
        return e;
    FOR_PROVIDERS(m, p)
    {
        uint64_t v = load(&p->continuations);
        if (v && (e = sample(out, N, "provider", provider_name(m, p), NULL, NULL, NULL, NULL, v)))
            return e;
    }

    N = "antigateway_upstream_errors_total";
    if ((e = family(out, N, "counter", "Failed upstream calls, by provider and class.")))
        return e;
    FOR_PROVIDERS(m, p)
    {
        for (size_t c = 0; c < AGW_UPERR_CLASSES; c++) {
            uint64_t v = load(&p->errors[c]);
            if (v && (e = sample(out, N, "provider", provider_name(m, p), "class",
                                 uperr_class[c], NULL, NULL, v)))
                return e;
        }
    }

    N = "antigateway_metrics_overflow_total";
    if ((e = family(out, N, "counter",
                    "Label sets counted under the overflow set (provider and model other) because "
                    "a table was full or a name too long.")) ||
        (e = agw_buf_appendf(out, "%s %llu\n", N, (unsigned long long)load(&m->overflows))))
        return e;
    return AGW_OK;
}

agw_err agw_metrics_render_usage(const agw_usage_stats *st, agw_buf *out)
{
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } fams[] = {
        { "antigateway_usage_ring_records", "gauge",
          "Usage records waiting in the ring for the database.",
          offsetof(agw_usage_stats, records) },
        { "antigateway_usage_ring_capacity", "gauge", "Records the usage ring holds.",
          offsetof(agw_usage_stats, capacity) },
        { "antigateway_usage_rejected_total", "counter",
          "Model calls refused with 503 because the usage ring was full (usage.required).",
          offsetof(agw_usage_stats, rejected) },
        { "antigateway_usage_dropped_total", "counter",
          "Usage records lost: no room in the ring (usage.required off, or a request the "
          "gateway refused itself), or left half-written by a killed process.",
          offsetof(agw_usage_stats, dropped) },
        { "antigateway_usage_rows_written_total", "counter",
          "Usage rows the drainer committed to the database.",
          offsetof(agw_usage_stats, written) },
        { "antigateway_usage_rows_already_stored_total", "counter",
          "Usage records a drainer stored again after its predecessor died between its "
          "commit and freeing them: recognised by their sequence number, no row added.",
          offsetof(agw_usage_stats, already_stored) },
        { "antigateway_usage_drainer_errors_total", "counter",
          "Failed usage commits (database locked, disk full, I/O error); each is retried.",
          offsetof(agw_usage_stats, drainer_errors) },
    };
    agw_err e;
    for (size_t i = 0; i < sizeof fams / sizeof fams[0]; i++) {
        uint64_t v;
        memcpy(&v, (const char *)st + fams[i].off, sizeof v);
        if ((e = family(out, fams[i].name, fams[i].type, fams[i].help)) ||
            (e = agw_buf_appendf(out, "%s %llu\n", fams[i].name, (unsigned long long)v)))
            return e;
    }
    return AGW_OK;
}
