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
 *  20544  end of the statistics (the static_assert keeps them under 32 KiB)
 *  32768  AGW_LB_PROCS_OFF: the process table (state/procs.h), under 32 KiB
 *
 * What each process holds, in the process table, so a process that dies
 * gives it back (procs.h): cell i of a row is the attempts of that process in
 * flight to the provider of slot i (least-used orders by their sum), and cell
 * AGW_LB_CELL_STREAMS its streams in flight (antigateway_streams_in_flight).
 * Every antigw-fcgi process joins the table (agw_lb_join) before it serves;
 * a process that did not join counts in the table's shared row.
 *
 * Provider slots are keyed by a 64-bit FNV-1a hash of the provider's name
 * with its low two bits set to 01 (so never 0). Lookup is linear probing
 * from key % AGW_LB_SLOTS up to the first never-used slot (key 0); a name
 * not found claims the first free slot of its chain (a reclaimed one, else
 * the never-used one) with one CAS, so no lock is needed and two processes
 * claiming one name pick the same slot. Overflow (more than 128 provider
 * names configured at once): the provider gets no slot, its statistics are
 * not kept, and it is treated as healthy, never cooling down, with neutral
 * stats. Two names with the same hash would share a slot (harmless: stats).
 *
 * Reclaiming (agw_lb_reclaim, run by the prober, health.h): the slot of a
 * name no longer configured (a provider deleted or renamed) is first marked
 * retiring (key | 2, with the time in retired_ns); a lookup of that name
 * takes it back (CAS to the plain key: a process with an older catalog
 * still routes there). A slot still retiring after the grace period and with
 * nothing in flight has its statistics zeroed and becomes free (key 2, a
 * tombstone: never 0, so the probe chains through it stay intact). An
 * attempt holds its slot pointer only from agw_lb_slot_of to agw_lb_end, far
 * shorter than the grace period, and its in-flight count keeps the slot
 * retiring. The prober also reaps the process table (agw_lb_reap).
 *
 * The region holds CLOCK_MONOTONIC times, which mean nothing after a reboot:
 * it lies inside the shm's boot-scoped bytes (AGW_SHM_BOOT_SCOPED_BYTES),
 * which the first process of a new boot zeroes before any process uses them
 * (shm.h), so statistics, cooldowns and unhealthy marks start afresh.
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
#include "state/procs.h"
#include "state/shm.h"

#include <stdatomic.h>

#define AGW_LB_REGION_BYTES (64u << 10)
#define AGW_LB_MAGIC UINT64_C(0x31424c5747412e)  /* ".AGWLB1" */
#define AGW_LB_SLOTS 128u
#define AGW_LB_RR_SLOTS 256u
#define AGW_LB_HALF_LIFE_MS 30000u /* the default; defaults.lb_half_life_seconds */
#define AGW_LB_FAIL_LIMIT 3u
#define AGW_LB_PROCS_OFF (32u << 10)
#define AGW_LB_CELL_STREAMS AGW_LB_SLOTS /* the process table's streams cell */

typedef enum {
    AGW_LB_WEIGHTED = 0,
    AGW_LB_ROUND_ROBIN,
    AGW_LB_LEAST_USED,
    AGW_LB_PRIORITY,
    AGW_LB_SMART,
} agw_lb_strategy;

typedef struct {
    _Atomic uint64_t key;               /* name hash; 0 = free */
    _Atomic uint64_t unused0;           /* in-flight counts moved to the process table */
    _Atomic uint64_t requests;          /* attempts started */
    _Atomic uint64_t latency_ewma_us;   /* 0 = no sample yet */
    _Atomic uint64_t recent_429;        /* decaying, see above */
    _Atomic uint64_t recent_5xx;        /* decaying: 5xx, connect errors, timeouts */
    _Atomic uint64_t cooldown_until_ns; /* CLOCK_MONOTONIC; 0 = none */
    _Atomic uint64_t unhealthy;         /* 0 = in rotation, else why it is out
                                           (agw_lb_reason) until a probe passes */
    _Atomic uint64_t consecutive_failures;
    _Atomic uint64_t failures;          /* attempts that failed (any class) */
    _Atomic uint64_t probes;            /* health probes run */
    _Atomic uint64_t last_probe_ns;
    _Atomic uint64_t retired_ns;        /* when the slot was marked retiring */
    _Atomic uint64_t spare[3];
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
    agw_procs *procs;    /* the process table (procs.h) */
    agw_procs_row *self; /* this process's row: the shared row until agw_lb_join */
} agw_lb;

/* Why a provider is out of the rotation: the value of agw_lb_slot.unhealthy,
 * so the mark and its reason change in one store. */
typedef enum {
    AGW_LB_REASON_NONE = 0,
    AGW_LB_REASON_CONSECUTIVE_FAILURES = 1, /* AGW_LB_FAIL_LIMIT failed requests in a row */
    AGW_LB_REASON_PROBE_FAILED,             /* no answer, timeout or 5xx to the probe */
    AGW_LB_REASON_AUTH_REJECTED,            /* the probe got 401 or 403: a revoked key */
} agw_lb_reason;

/* "none", "consecutive_failures", "probe_failed", "auth_rejected". */
const char *agw_lb_reason_name(agw_lb_reason r);
/* The reason `s` is out of the rotation (AGW_LB_REASON_NONE for NULL). */
agw_lb_reason agw_lb_unhealthy_reason(const agw_lb_slot *s);

/* Binds `lb` to `region` (the shm reserved region, at least
 * AGW_LB_REGION_BYTES, zeroed when new). AGW_EINVAL when it is too small. */
AGW_WARN_UNUSED agw_err agw_lb_bind(agw_lb *lb, void *region, size_t len);

/* Makes this process's attempts and streams count in a row of its own
 * (procs.h: agw_procs_join, which first reaps the rows of dead processes).
 * Call once per process before threads start, after agw_lb_bind. */
void agw_lb_join(agw_lb *lb);

/* Gives back what dead processes held (agw_procs_reap); returns how many
 * processes it reaped. Off the request path: the prober, /metrics, /health. */
size_t agw_lb_reap(agw_lb *lb);

/* The pool's attempts in flight to the provider of `s` (0 for NULL). */
uint64_t agw_lb_in_flight(agw_lb *lb, const agw_lb_slot *s);

/* antigateway_streams_in_flight: this process's +1 when a stream starts and
 * -1 when it ends; agw_lb_streams is the pool's sum. */
void agw_lb_stream_begin(agw_lb *lb);
void agw_lb_stream_end(agw_lb *lb);
uint64_t agw_lb_streams(agw_lb *lb);

/* The slot of provider `name`, claimed if needed (taken back when it was
 * retiring); NULL when the table is full (or lb is NULL). */
agw_lb_slot *agw_lb_slot_of(agw_lb *lb, agw_str name);

/* Frees the slots of names not among `names` (the configured providers):
 * marks each such slot retiring, and frees one that was retiring for at
 * least `grace_ns` with nothing in flight (see above). Returns how many it
 * freed. Run by one process at a time (the prober). */
size_t agw_lb_reclaim(agw_lb *lb, const agw_str *names, size_t n, uint64_t now_ns,
                      uint64_t grace_ns);

/* The half-life of the decaying counters in this process (default
 * AGW_LB_HALF_LIFE_MS). Call before threads start; every process of a pool
 * runs with the same configuration. */
void agw_lb_set_half_life(uint64_t ms);

/* ---- one attempt ---- */

typedef enum {
    AGW_LB_OK = 0,       /* the provider answered (any non-failure status) */
    AGW_LB_FAIL_429,
    AGW_LB_FAIL_5XX,     /* 5xx, connect error, timeout, broken before the first byte */
    AGW_LB_FAIL_AUTH,    /* 401/403: the provider refused the gateway's credentials */
} agw_lb_result;

/* Counts an attempt to the provider of `s` (NULL: none) as in flight in
 * this process's row until agw_lb_end. */
void agw_lb_begin(agw_lb *lb, agw_lb_slot *s);
/* Ends an attempt: `ttfb_us` feeds the EWMA when non-zero. A failure sets a
 * cooldown of `cooldown_ms` from `now_ns`; `health_on` lets
 * AGW_LB_FAIL_LIMIT consecutive failures mark the provider unhealthy, and
 * AGW_LB_FAIL_AUTH mark it at once (AGW_LB_REASON_AUTH_REJECTED): no request
 * can succeed until its key is fixed. AGW_LB_FAIL_AUTH counts as a failure
 * (recent_5xx, failures, cooldown) in any case. */
void agw_lb_end(agw_lb *lb, agw_lb_slot *s, agw_lb_result r, uint64_t ttfb_us,
                uint64_t cooldown_ms, int health_on, uint64_t now_ns);
/* A probe's verdict: AGW_LB_REASON_NONE (passed) clears the mark, the
 * failure count and the cooldown; any other reason sets the mark to it. */
void agw_lb_probe_result(agw_lb_slot *s, agw_lb_reason why, uint64_t now_ns);

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
