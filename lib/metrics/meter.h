/*
 * meter: what one model call adds to the registry (metrics.h), so the request
 * path states each event once and the label rules live in one place.
 *
 * Label rules: a call's series is its provider ("none" before routing) and its
 * model when the catalog knows the name (models.h), else "other", which
 * bounds the label set whatever clients send. Estimated token counts are not
 * counted: the token counters hold only what providers reported.
 *
 * Nothing here allocates or locks; every function takes the pool's registry.
 */
#ifndef AGW_METER_H
#define AGW_METER_H

#include "metrics/metrics.h"
#include "net/relay.h"
#include "route/lb.h"
#include "tenant/usage.h"

/* One upstream attempt ended: when it failed, its failure class. */
void agw_meter_attempt(agw_metrics *m, agw_str provider, const agw_relay_result *res);

/* An answered call: its reported tokens, and its time to first token
 * (`ttft_us` 0: none) under its provider. */
void agw_meter_answer(agw_metrics *m, const agw_config *cfg, const agw_usage_record *u,
                      uint64_t ttft_us);

/* A model call ended with `status` after `total_us`, of which `upstream_us`
 * were spent in upstream transfers: the request count, its duration, and the
 * gateway's own share (the overhead histogram). */
void agw_meter_request(agw_metrics *m, const agw_config *cfg, const agw_usage_record *u,
                       int status, uint64_t total_us, uint64_t upstream_us);

/* antigateway_provider_health from the load balancer's shared view: up when
 * enabled and not marked unhealthy by probes or consecutive failures. */
void agw_meter_health(agw_metrics *m, agw_lb *lb, const agw_config *cfg);

#endif
