/*
 * health: the pool's provider probes.
 *
 * Every antigw-fcgi process runs one prober thread, started before the
 * FastCGI server with every signal blocked (fcgi_server.h). Only one process
 * of the pool probes at a time: the one holding flock(LOCK_EX|LOCK_NB) on
 * "<database.path>.health.lock". The others try to take the lock at each
 * period, so when the holder dies (the kernel releases its lock) the next
 * one takes over within a period.
 *
 * Every defaults.health_check_seconds (and once at start) the holder probes
 * each enabled provider of a callable type (provider.h) with its type's probe
 * operation, a cheap GET (the model list: <base_url>/models for OpenAI,
 * /v1/models for Anthropic), with the provider's credential, a 3 s connect,
 * a 5 s idle timeout, and defaults.health_check_timeout_seconds (10) for
 * the whole probe, every page of its model list included (so a server that
 * drips bytes cannot hold the pool's only prober). The type says which statuses pass (for
 * OpenAI and Anthropic any status below 500, a 404 or 429 included, except
 * 401 and 403: a revoked key fails as AGW_LB_REASON_AUTH_REJECTED); a
 * connect error, a timeout or a 5xx fails as AGW_LB_REASON_PROBE_FAILED.
 * The verdict and its reason go into the provider's shared slot (lb.h): a
 * failed probe takes it out of the rotation, a passing one brings it back
 * and clears its cooldown.
 *
 * The probe's answer is the provider's model list: a passing 2xx is read
 * with the type's parse_models (further pages with its cursor, at most 32,
 * each at most 4 MiB) and stored for GET /v1/models (models.h); anything
 * else forgets the stored list, so the catalog falls back to the literal
 * names. The list is stored (or forgotten) before the verdict is published,
 * so a reader that sees the verdict sees the list that came with it; the
 * prober's connection waits at most 250 ms for the database, and a list it
 * could not write is written at the next probe. Lists of providers no longer
 * configured are forgotten, and their shared slots reclaimed
 * (agw_lb_reclaim, with one period as the grace).
 */
#ifndef AGW_HEALTH_H
#define AGW_HEALTH_H

#include "tenant/catalog.h"
#include "route/lb.h"

typedef struct agw_health agw_health;

/* Starts the prober when cfg->defaults.health_check_enabled; *out stays NULL
 * otherwise. `cat`, `lb` and `cfg` must outlive it. */
AGW_WARN_UNUSED agw_err agw_health_start(const agw_config *cfg, agw_catalog_holder *cat,
                                         agw_lb *lb, agw_health **out, char *err,
                                         size_t errlen);
/* Stops and joins the thread (NULL: nothing). */
void agw_health_stop(agw_health *h);

/* What one probe found (agw_health_test). */
typedef struct {
    int probed;          /* 0: the type has nothing to probe with (no request made) */
    agw_lb_reason why;   /* AGW_LB_REASON_NONE when it passed */
    long status;         /* the HTTP status; 0 when no answer came */
    uint64_t latency_ms; /* from the start to the end of the first answer */
    long models;         /* ids in its model list; -1 when no list was read */
    char detail[256];    /* what failed, in libcurl's words; "" when nothing did */
} agw_health_test_result;

/* One probe of `p` now, as the prober makes it (the same request, timeouts
 * and verdict; at most `timeout_ms` in all), for an admin who wants to see a
 * provider answer: it changes no shared state and stores no model list.
 * Blocks the calling thread for the duration of the call. Needs
 * agw_upstream_global_init to have run. */
void agw_health_test(const agw_provider_cfg *p, long timeout_ms, agw_health_test_result *out);

#endif
