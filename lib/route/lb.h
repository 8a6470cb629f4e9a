/*
 * lb: per-provider statistics shared by every process of the pool, and the
 * five load-balancing strategies that order a request's candidates
 * (README "Routing" says the same for operators).
 *
 * Where the state lives: the first AGW_LB_REGION_BYTES (64 KiB) of the shm
 * reserved region (shm.h). The rest of the reserved region belongs to the
 * metrics registry; nothing here reads or writes past 64 KiB.
 *
 * Sub-layout (offsets from the start of the reserved region):
 *      0  agw_lb_header (64 bytes): magic AGW_LB_MAGIC, set once with CAS
 *     64  AGW_LB_SLOTS (128) provider slots of agw_lb_slot (128 bytes each)
 *  16448  AGW_LB_RR_SLOTS (256) round-robin counters of agw_lb_rr (16 bytes)
 *  20544  end (the static_assert keeps it under 64 KiB)
 *
 * Provider slots are keyed by a 64-bit FNV-1a hash of the provider's name
 * (never 0: the low bit is forced to 1). Lookup is linear probing from
 * hash % AGW_LB_SLOTS; a free slot (key 0) is claimed with one CAS, so no
 * lock is needed and two processes can never give one name two slots. Slots
 * are never freed. Overflow (more than 128 distinct provider names over the
 * life of the segment): the provider gets no slot, its statistics are not
 * kept, and it is treated as healthy, never cooling down, with neutral stats.
 * Two names with the same 64-bit hash would share a slot (harmless: stats).
 *
 * Round-robin counters are keyed the same way by the hash of the ordered
 * candidate set (its provider names), so rotation is across the whole pool:
 * each request takes counter++ (one atomic add) and starts at that index.
 * When the 256 counters are all taken, a set shares the counter at its home
 * index: rotation still spreads, only no longer exactly.
 *
 * Constants (also in README "Routing"):
 *  - Latency EWMA of the time to first byte: ewma += (sample - ewma) / 5,
 *    i.e. alpha = 0.2, kept in microseconds; the first sample sets it.
 *  - Recent 429 and 5xx counters decay with a half-life of 30 s
 *    (defaults.lb_half_life_seconds, set per process with
 *    agw_lb_set_half_life before any thread starts). Each is one
 *    64-bit word: the value in 1/256 event units (low 24 bits, saturating) and
 *    the time of the last update in CLOCK_MONOTONIC milliseconds (high 40
 *    bits). Decayed on read, and on update under CAS.
 *  - smart: score = weight * 100 / (1 + 10 * recent_429 + latency_ewma_ms / 100).
 *    recent_5xx counts like a 429 (a failing provider should also be
 *    avoided). The order is drawn at random with probabilities proportional
 *    to the scores (not "best first"): near-equal providers share the load
 *    instead of the whole pool herding onto one, and a penalised provider
 *    keeps a small share, which refreshes its latency EWMA when it recovers.
 *  - A provider with AGW_LB_FAIL_LIMIT (3) consecutive failed requests is
 *    marked unhealthy (only when health checks are enabled: a passing probe
 *    brings it back; without probes nothing would).
 */
#ifndef AGW_LB_H
#define AGW_LB_H

#include "core/core.h"
#include "provider/provider.h"
#include "route/route.h"

#include <stdatomic.h>

#define AGW_LB_REGION_BYTES (64u << 10)
#define AGW_LB_MAGIC UINT64_C(0x31424c5747412e)  /* ".AGWLB1" */
#define AGW_LB_SLOTS 128u
#define AGW_LB_RR_SLOTS 256u
#define AGW_LB_HALF_LIFE_MS 30000u /* the default; defaults.lb_half_life_seconds */
#define AGW_LB_FAIL_LIMIT 3u

typedef enum {
    AGW_LB_WEIGHTED = 0,
    AGW_LB_ROUND_ROBIN,
    AGW_LB_LEAST_USED,
    AGW_LB_PRIORITY,
    AGW_LB_SMART,
} agw_lb_strategy;

typedef struct {
    _Atomic uint64_t key;               /* name hash; 0 = free */
    _Atomic uint64_t in_flight;
    _Atomic uint64_t requests;          /* attempts started */
    _Atomic uint64_t latency_ewma_us;   /* 0 = no sample yet */
    _Atomic uint64_t recent_429;        /* decaying, see above */
    _Atomic uint64_t recent_5xx;        /* decaying: 5xx, connect errors, timeouts */
    _Atomic uint64_t cooldown_until_ns; /* CLOCK_MONOTONIC; 0 = none */
    _Atomic uint64_t unhealthy;         /* 1 = out of rotation until a probe passes */
    _Atomic uint64_t consecutive_failures;
    _Atomic uint64_t failures;          /* attempts that failed (any class) */
    _Atomic uint64_t probes;            /* health probes run */
    _Atomic uint64_t last_probe_ns;
    _Atomic uint64_t spare[4];
} agw_lb_slot;

typedef struct {
    _Atomic uint64_t key;     /* candidate-set hash; 0 = free */
    _Atomic uint64_t counter;
} agw_lb_rr;

typedef struct {
    _Atomic uint64_t magic;
    uint64_t spare[7];
} agw_lb_header;

typedef struct {
    agw_lb_header *hdr;
    agw_lb_slot *slots;
    agw_lb_rr *rr;
} agw_lb;

/* Binds `lb` to `region` (the shm reserved region, at least
 * AGW_LB_REGION_BYTES, zeroed when new). AGW_EINVAL when it is too small. */
AGW_WARN_UNUSED agw_err agw_lb_bind(agw_lb *lb, void *region, size_t len);

/* The slot of provider `name`, claimed if needed; NULL when the table is full
 * (or lb is NULL). */
agw_lb_slot *agw_lb_slot_of(agw_lb *lb, agw_str name);

/* The half-life of the decaying counters in this process (default
 * AGW_LB_HALF_LIFE_MS). Call before threads start; every process of a pool
 * runs with the same configuration. */
void agw_lb_set_half_life(uint64_t ms);

/* ---- one attempt ---- */

typedef enum {
    AGW_LB_OK = 0,       /* the provider answered (any non-failure status) */
    AGW_LB_FAIL_429,
    AGW_LB_FAIL_5XX,     /* 5xx, connect error, timeout, broken before the first byte */
} agw_lb_result;

void agw_lb_begin(agw_lb_slot *s);
/* Ends an attempt: `ttfb_us` feeds the EWMA when non-zero. A failure sets a
 * cooldown of `cooldown_ms` from `now_ns`; `health_on` lets
 * AGW_LB_FAIL_LIMIT consecutive failures mark the provider unhealthy. */
void agw_lb_end(agw_lb_slot *s, agw_lb_result r, uint64_t ttfb_us, uint64_t cooldown_ms,
                int health_on, uint64_t now_ns);
/* A probe's verdict: healthy clears the mark, the failure count and the
 * cooldown; unhealthy sets the mark. */
void agw_lb_probe_result(agw_lb_slot *s, int healthy, uint64_t now_ns);

/* 1 when the provider may be chosen first: healthy and not cooling down. */
int agw_lb_usable(const agw_lb_slot *s, uint64_t now_ns);

/* ---- a request's candidates ---- */

/* The strategy antigw.cfg names (defaults.lb_strategy: "weighted",
 * "round-robin", "least-used", "priority" or "smart"); smart when unset or
 * not one of those. */
agw_lb_strategy agw_lb_strategy_of(const agw_config *cfg);

/* Orders a request's candidates in place, in the order failover tries them:
 * the usable ones (healthy, not cooling down) whose provider speaks the
 * client's protocol `client` first, then the usable ones of other protocols,
 * each group ordered by `strategy`; then the rest by priority, so a request
 * still has somewhere to go when every provider is cooling down. Candidates
 * of a type this gateway cannot call (provider.h) are dropped unless none
 * other is left, in which case only the first stays (for its 501).
 * Returns how many of them are tried at most: set->n, capped at
 * `max_attempts`. `lb` NULL: neutral statistics. */
size_t agw_lb_order_candidates(agw_lb *lb, agw_lb_strategy strategy, agw_proto client,
                               agw_route_set *set, size_t max_attempts, uint64_t now_ns);

#endif
