#include "route/lb.h"

#include <assert.h>
#include <stdint.h>
#include <unistd.h>
#include <string.h>

static_assert(sizeof(agw_lb_header) == 64, "lb header size");
static_assert(sizeof(agw_lb_slot) == 128, "lb slot size");
static_assert(sizeof(agw_lb_header) + AGW_LB_SLOTS * sizeof(agw_lb_slot) +
                      AGW_LB_RR_SLOTS * sizeof(agw_lb_rr) <=
                  AGW_LB_PROCS_OFF,
              "the statistics must stay below the process table");
static_assert(AGW_LB_PROCS_OFF + AGW_PROCS_BYTES <= AGW_LB_REGION_BYTES,
              "the process table must stay in the load balancer's 64 KiB");
static_assert(AGW_LB_CELL_STREAMS < AGW_PROCS_CELLS, "a cell per slot and one for streams");
static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free in shared memory");
static_assert(AGW_LB_REGION_BYTES <= AGW_SHM_BOOT_SCOPED_BYTES,
              "the load balancer's monotonic times must be cleared at a boot change");

/* Slot keys (lb.h): a name's key ends in binary 01, the same key while
 * retiring in 11; a freed slot holds the tombstone 10. */
#define KEY_RETIRING 2u
#define KEY_TOMBSTONE UINT64_C(2)

#define DECAY_VALUE_BITS 24u
#define DECAY_VALUE_MAX ((UINT64_C(1) << DECAY_VALUE_BITS) - 1)
#define DECAY_UNIT 256u
#define DECAY_TIME_MASK ((UINT64_C(1) << 40) - 1)
#define EWMA_DIV 5u /* alpha = 1/5 = 0.2 */

/* What a candidate brings to the ordering. */
typedef struct {
    agw_str name;
    int weight;
    agw_lb_slot *slot; /* may be NULL: neutral stats */
} agw_lb_candidate;

agw_err agw_lb_bind(agw_lb *lb, void *region, size_t len)
{
    if (!region || len < AGW_LB_REGION_BYTES)
        return AGW_EINVAL;
    char *base = region;
    lb->hdr = (agw_lb_header *)base;
    lb->slots = (agw_lb_slot *)(base + sizeof(agw_lb_header));
    lb->rr = (agw_lb_rr *)(base + sizeof(agw_lb_header) + AGW_LB_SLOTS * sizeof(agw_lb_slot));
    lb->procs = agw_procs_bind(base + AGW_LB_PROCS_OFF, len - AGW_LB_PROCS_OFF);
    lb->self = agw_procs_shared(lb->procs);
    uint64_t zero = 0;
    atomic_compare_exchange_strong(&lb->hdr->magic, &zero, AGW_LB_MAGIC);
    return AGW_OK;
}

void agw_lb_join(agw_lb *lb)
{
    if (lb && lb->procs)
        lb->self = agw_procs_join(lb->procs);
}

size_t agw_lb_reap(agw_lb *lb)
{
    return lb ? agw_procs_reap(lb->procs) : 0;
}

uint64_t agw_lb_in_flight(agw_lb *lb, const agw_lb_slot *s)
{
    if (!lb || !lb->slots || !s)
        return 0;
    return agw_procs_sum(lb->procs, (size_t)(s - lb->slots));
}

void agw_lb_stream_begin(agw_lb *lb)
{
    if (lb && lb->self)
        agw_procs_add(lb->self, AGW_LB_CELL_STREAMS, 1);
}

void agw_lb_stream_end(agw_lb *lb)
{
    if (lb && lb->self)
        agw_procs_add(lb->self, AGW_LB_CELL_STREAMS, -1);
}

uint64_t agw_lb_streams(agw_lb *lb)
{
    return lb ? agw_procs_sum(lb->procs, AGW_LB_CELL_STREAMS) : 0;
}

/* FNV-1a 64 of `s`, low bit set (0 marks a free entry). */
static uint64_t hash(agw_str s)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < s.len; i++) {
        h ^= (unsigned char)s.ptr[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h | 1u;
}

/* Finds or claims the entry for `key` in a table of `n` words spaced `stride`
 * bytes apart. NULL when every entry belongs to another key. */
static _Atomic uint64_t *claim(void *table, size_t n, size_t stride, uint64_t key)
{
    for (size_t i = 0; i < n; i++) {
        _Atomic uint64_t *k = (_Atomic uint64_t *)((char *)table + ((key + i) % n) * stride);
        uint64_t seen = atomic_load(k);
        if (seen == key)
            return k;
        if (seen == 0) {
            if (atomic_compare_exchange_strong(k, &seen, key) || seen == key)
                return k;
        }
    }
    return NULL;
}

static uint64_t slot_key(agw_str name)
{
    return (hash(name) & ~UINT64_C(3)) | 1u;
}

/* One pass over `key`'s chain: its slot (taken back when retiring), else
 * the claim of the chain's first free slot. NULL with *retry set when another
 * process changed the chain meanwhile; NULL alone when the table is full. */
static agw_lb_slot *find_or_claim(agw_lb *lb, uint64_t key, int *retry)
{
    agw_lb_slot *target = NULL;
    uint64_t expect = 0;
    for (size_t i = 0; i < AGW_LB_SLOTS; i++) {
        agw_lb_slot *s = &lb->slots[(key + i) % AGW_LB_SLOTS];
        uint64_t k = atomic_load(&s->key);
        if (k == key)
            return s;
        if (k == (key | KEY_RETIRING)) {
            if (atomic_compare_exchange_strong(&s->key, &k, key) || k == key)
                return s;
            *retry = 1; /* freed under us: look again */
            return NULL;
        }
        if (k == KEY_TOMBSTONE && !target) {
            target = s;
            expect = KEY_TOMBSTONE;
        }
        if (k == 0) {
            if (!target)
                target = s;
            break;
        }
    }
    if (!target)
        return NULL;
    uint64_t seen = expect;
    if (atomic_compare_exchange_strong(&target->key, &seen, key) || seen == key)
        return target;
    *retry = 1;
    return NULL;
}

agw_lb_slot *agw_lb_slot_of(agw_lb *lb, agw_str name)
{
    if (!lb || !lb->slots)
        return NULL;
    uint64_t key = slot_key(name);
    /* Each retry means another process claimed or freed a slot of this chain
     * meanwhile; a few are plenty. */
    for (int attempt = 0; attempt < 16; attempt++) {
        int retry = 0;
        agw_lb_slot *s = find_or_claim(lb, key, &retry);
        if (s || !retry)
            return s;
    }
    return NULL;
}

/* Everything but the key back to zero (a slot about to be freed). */
static void slot_clear(agw_lb_slot *s)
{
    _Atomic uint64_t *w = (_Atomic uint64_t *)s;
    for (size_t i = 1; i < sizeof *s / sizeof *w; i++)
        atomic_store(&w[i], 0);
}

size_t agw_lb_reclaim(agw_lb *lb, const agw_str *names, size_t n, uint64_t now_ns,
                      uint64_t grace_ns)
{
    if (!lb || !lb->slots)
        return 0;
    /* The configured names' own slots (claimed, or taken back, here). */
    unsigned char keep[AGW_LB_SLOTS] = { 0 };
    for (size_t i = 0; i < n; i++) {
        agw_lb_slot *s = agw_lb_slot_of(lb, names[i]);
        if (s)
            keep[s - lb->slots] = 1;
    }
    size_t freed = 0;
    for (size_t i = 0; i < AGW_LB_SLOTS; i++) {
        agw_lb_slot *s = &lb->slots[i];
        uint64_t k = atomic_load(&s->key);
        if (keep[i] || k == 0 || k == KEY_TOMBSTONE)
            continue;
        if (!(k & KEY_RETIRING)) {
            atomic_store(&s->retired_ns, now_ns);
            atomic_compare_exchange_strong(&s->key, &k, k | KEY_RETIRING);
        } else if (now_ns - atomic_load(&s->retired_ns) >= grace_ns &&
                   agw_lb_in_flight(lb, s) == 0) {
            /* Zeroed while still retiring: a name that comes back meanwhile
             * takes the slot back (the exchange below then fails) and only
             * loses its old statistics. */
            slot_clear(s);
            freed += atomic_compare_exchange_strong(&s->key, &k, KEY_TOMBSTONE);
        }
    }
    return freed;
}

const char *agw_lb_reason_name(agw_lb_reason r)
{
    switch (r) {
    case AGW_LB_REASON_NONE: return "none";
    case AGW_LB_REASON_CONSECUTIVE_FAILURES: return "consecutive_failures";
    case AGW_LB_REASON_PROBE_FAILED: return "probe_failed";
    case AGW_LB_REASON_AUTH_REJECTED: return "auth_rejected";
    }
    return "none";
}

agw_lb_reason agw_lb_unhealthy_reason(const agw_lb_slot *s)
{
    if (!s)
        return AGW_LB_REASON_NONE;
    uint64_t v = atomic_load(&((agw_lb_slot *)s)->unhealthy);
    return v > AGW_LB_REASON_AUTH_REJECTED ? AGW_LB_REASON_PROBE_FAILED : (agw_lb_reason)v;
}

/* 2^-x for x >= 0 without libm: whole halvings by division, the fraction by a
 * series of e^-y (y = f ln 2 < 0.7: error below 2e-5). */
static double pow2_neg(double x)
{
    if (x >= 64)
        return 0;
    unsigned k = (unsigned)x;
    double y = (x - k) * 0.69314718055994531;
    double term = 1, sum = 1;
    for (int i = 1; i <= 7; i++) {
        term *= -y / i;
        sum += term;
    }
    return sum / (double)(UINT64_C(1) << k);
}

static uint64_t half_life_ms = AGW_LB_HALF_LIFE_MS;

void agw_lb_set_half_life(uint64_t ms)
{
    half_life_ms = ms ? ms : AGW_LB_HALF_LIFE_MS;
}

/* The value of a decaying counter word at `now_ms`, in events. */
static double decayed(uint64_t word, uint64_t now_ms)
{
    uint64_t v = word & DECAY_VALUE_MAX;
    uint64_t t = word >> DECAY_VALUE_BITS;
    now_ms &= DECAY_TIME_MASK;
    uint64_t dt = now_ms > t ? now_ms - t : 0;
    return (double)v / DECAY_UNIT * pow2_neg((double)dt / (double)half_life_ms);
}

/* Adds one event at `now_ms` (CAS loop). */
static void decay_add(_Atomic uint64_t *word, uint64_t now_ms)
{
    uint64_t old = atomic_load(word), next;
    do {
        double v = decayed(old, now_ms) * DECAY_UNIT + DECAY_UNIT;
        uint64_t iv = v >= (double)DECAY_VALUE_MAX ? DECAY_VALUE_MAX : (uint64_t)(v + 0.5);
        next = ((now_ms & DECAY_TIME_MASK) << DECAY_VALUE_BITS) | iv;
    } while (!atomic_compare_exchange_weak(word, &old, next));
}

/* One EWMA step (alpha 0.2); `ewma` 0 means no sample yet. */
static uint64_t ewma_next(uint64_t ewma, uint64_t sample)
{
    if (ewma == 0)
        return sample ? sample : 1;
    int64_t d = (int64_t)sample - (int64_t)ewma;
    int64_t next = (int64_t)ewma + d / (int64_t)EWMA_DIV;
    return next > 0 ? (uint64_t)next : 1;
}

void agw_lb_begin(agw_lb *lb, agw_lb_slot *s)
{
    if (!s)
        return;
    if (lb && lb->self)
        agw_procs_add(lb->self, (size_t)(s - lb->slots), 1);
    atomic_fetch_add(&s->requests, 1);
}

void agw_lb_end(agw_lb *lb, agw_lb_slot *s, agw_lb_result r, uint64_t ttfb_us,
                uint64_t cooldown_ms, int health_on, uint64_t now_ns)
{
    if (!s)
        return;
    if (lb && lb->self)
        agw_procs_add(lb->self, (size_t)(s - lb->slots), -1);
    if (ttfb_us) {
        uint64_t old = atomic_load(&s->latency_ewma_us);
        while (!atomic_compare_exchange_weak(&s->latency_ewma_us, &old,
                                             ewma_next(old, ttfb_us)))
            ;
    }
    if (r == AGW_LB_OK) {
        atomic_store(&s->consecutive_failures, 0);
        return;
    }
    uint64_t now_ms = now_ns / 1000000u;
    decay_add(r == AGW_LB_FAIL_429 ? &s->recent_429 : &s->recent_5xx, now_ms);
    atomic_fetch_add(&s->failures, 1);
    uint64_t until = now_ns + cooldown_ms * 1000000u;
    uint64_t cur = atomic_load(&s->cooldown_until_ns);
    while (cur < until && !atomic_compare_exchange_weak(&s->cooldown_until_ns, &cur, until))
        ;
    if (atomic_fetch_add(&s->consecutive_failures, 1) + 1 >= AGW_LB_FAIL_LIMIT && health_on &&
        r != AGW_LB_FAIL_AUTH)
        atomic_store(&s->unhealthy, 1);
    /* Without probes nothing would bring the provider back: then the
     * cooldown alone keeps it aside. */
    if (r == AGW_LB_FAIL_AUTH && health_on)
        atomic_store(&s->unhealthy, AGW_LB_REASON_AUTH_REJECTED);
}

void agw_lb_probe_result(agw_lb_slot *s, agw_lb_reason why, uint64_t now_ns)
{
    if (!s)
        return;
    atomic_fetch_add(&s->probes, 1);
    atomic_store(&s->last_probe_ns, now_ns);
    if (why == AGW_LB_REASON_NONE) {
        atomic_store(&s->consecutive_failures, 0);
        atomic_store(&s->cooldown_until_ns, 0);
    }
    atomic_store(&s->unhealthy, (uint64_t)why);
}

int agw_lb_usable(const agw_lb_slot *s, uint64_t now_ns)
{
    if (!s)
        return 1;
    agw_lb_slot *m = (agw_lb_slot *)s;
    return !atomic_load(&m->unhealthy) && atomic_load(&m->cooldown_until_ns) <= now_ns;
}

static uint64_t load(const agw_lb_slot *s, size_t off)
{
    if (!s)
        return 0;
    return atomic_load((_Atomic uint64_t *)((char *)s + off));
}

/* The smart score of a candidate at `now_ns` (lb.h). */
static double smart_score(const agw_lb_candidate *c, uint64_t now_ns)
{
    uint64_t now_ms = now_ns / 1000000u;
    double r429 = decayed(load(c->slot, offsetof(agw_lb_slot, recent_429)), now_ms);
    double r5xx = decayed(load(c->slot, offsetof(agw_lb_slot, recent_5xx)), now_ms);
    double lat_ms = (double)load(c->slot, offsetof(agw_lb_slot, latency_ewma_us)) / 1000.0;
    return (double)c->weight * 100.0 / (1.0 + 10.0 * (r429 + r5xx) + lat_ms / 100.0);
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* A stable insertion sort of order[] by `before`. */
typedef int (*before_fn)(const agw_lb_candidate *a, const agw_lb_candidate *b);

static void sort_by(const agw_lb_candidate *c, size_t n, size_t *order, before_fn before)
{
    for (size_t i = 1; i < n; i++) {
        size_t v = order[i], j = i;
        while (j > 0 && before(&c[v], &c[order[j - 1]])) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = v;
    }
}

static int by_weight(const agw_lb_candidate *a, const agw_lb_candidate *b)
{
    return a->weight > b->weight;
}

/* least-used: fewest attempts in flight across the pool (summed over the
 * process table once per candidate), then fewest started. */
static void sort_by_use(agw_lb *lb, const agw_lb_candidate *c, size_t n, size_t *order)
{
    uint64_t flying[AGW_ROUTE_MAX_CANDIDATES], started[AGW_ROUTE_MAX_CANDIDATES];
    for (size_t i = 0; i < n; i++) {
        flying[i] = agw_lb_in_flight(lb, c[i].slot);
        started[i] = load(c[i].slot, offsetof(agw_lb_slot, requests));
    }
    for (size_t i = 1; i < n; i++) {
        size_t v = order[i], j = i;
        while (j > 0) {
            size_t u = order[j - 1];
            if (flying[v] != flying[u] ? flying[v] >= flying[u] : started[v] >= started[u])
                break;
            order[j] = u;
            j--;
        }
        order[j] = v;
    }
}

/* Draws order[] without replacement, each pick with probability
 * proportional to w[]; weight-0 entries keep their order after the others. */
static void weighted_draw(const uint64_t *w, size_t n, uint64_t rnd, size_t *order)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += w[i];
    for (size_t pos = 0; pos < n && total; pos++) {
        uint64_t pick = splitmix(&rnd) % total, acc = 0;
        for (size_t j = pos; j < n; j++) {
            uint64_t wj = w[order[j]];
            acc += wj;
            if (wj && pick < acc) {
                size_t v = order[j];
                memmove(&order[pos + 1], &order[pos], (j - pos) * sizeof *order);
                order[pos] = v;
                total -= wj;
                break;
            }
        }
    }
}

/* Orders `n` candidates (n <= AGW_ROUTE_MAX_CANDIDATES) by `strategy`: on
 * return order[0..n) is a permutation of 0..n-1, best first. `rnd` is a
 * random 64-bit value (weighted draws). `lb` supplies the round-robin
 * counters (NULL: the first candidate first). */
static void order_by(agw_lb *lb, agw_lb_strategy strategy, const agw_lb_candidate *c, size_t n,
                     uint64_t now_ns, uint64_t rnd, size_t *order)
{
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    if (n < 2)
        return;
    switch (strategy) {
    case AGW_LB_ROUND_ROBIN: {
        if (!lb || !lb->rr)
            return;
        uint64_t h = UINT64_C(0xcbf29ce484222325);
        for (size_t i = 0; i < n; i++)
            h = h * 31 + hash(c[i].name);
        h |= 1u;
        _Atomic uint64_t *k = claim(lb->rr, AGW_LB_RR_SLOTS, sizeof(agw_lb_rr), h);
        agw_lb_rr *e = k ? (agw_lb_rr *)k : &lb->rr[h % AGW_LB_RR_SLOTS];
        uint64_t start = atomic_fetch_add(&e->counter, 1) % n;
        for (size_t i = 0; i < n; i++)
            order[i] = (size_t)((start + i) % n);
        return;
    }
    case AGW_LB_PRIORITY:
        sort_by(c, n, order, by_weight);
        return;
    case AGW_LB_LEAST_USED:
        sort_by_use(lb, c, n, order);
        return;
    case AGW_LB_SMART:
    case AGW_LB_WEIGHTED: {
        /* weighted: draws proportional to weight. smart: proportional to the
         * score (in 1/1000 units, at least 1 for a non-zero weight), so
         * near-equal providers share the traffic and a penalised one keeps
         * a small share that shows when it recovers. */
        uint64_t w[AGW_ROUTE_MAX_CANDIDATES];
        for (size_t i = 0; i < n; i++) {
            if (c[i].weight <= 0) {
                w[i] = 0;
            } else if (strategy == AGW_LB_WEIGHTED) {
                w[i] = (uint64_t)c[i].weight;
            } else {
                double s = smart_score(&c[i], now_ns) * 1000.0;
                w[i] = s < 1 ? 1 : s > 1e15 ? (uint64_t)1e15 : (uint64_t)s;
            }
        }
        weighted_draw(w, n, rnd, order);
        return;
    }
    }
}

agw_lb_strategy agw_lb_strategy_of(const agw_config *cfg)
{
    int s = agw_config_lb_strategy(cfg->defaults.lb_strategy);
    return s < 0 ? AGW_LB_SMART : (agw_lb_strategy)s;
}

/* A per-thread xorshift generator for the weighted draws: no lock, no
 * syscall, and the threads of a pool do not draw in step. */
static uint64_t draw_random(void)
{
    static _Thread_local uint64_t x;
    if (!x)
        x = agw_mono_us() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&x;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

size_t agw_lb_order_candidates(agw_lb *lb, agw_lb_strategy strategy, agw_proto client,
                               agw_route_set *s, size_t max_attempts, uint64_t now)
{
    agw_route in[AGW_ROUTE_MAX_CANDIDATES];
    size_t n_in = 0;
    for (size_t i = 0; i < s->n; i++)
        if (agw_provider_callable(s->r[i].provider))
            in[n_in++] = s->r[i];
    if (!n_in) {
        s->n = s->n ? 1 : 0;
        return s->n;
    }
    size_t out = 0;
    for (int group = 0; group < 3; group++) {
        agw_lb_candidate c[AGW_ROUTE_MAX_CANDIDATES];
        agw_route g[AGW_ROUTE_MAX_CANDIDATES];
        size_t n = 0;
        for (size_t i = 0; i < n_in; i++) {
            agw_lb_slot *slot = agw_lb_slot_of(lb, agw_str_c(in[i].provider->name));
            int ok = agw_lb_usable(slot, now);
            agw_provider_plan plan;
            char why[8];
            int same = agw_provider_plan_call(in[i].provider, client, in[i].model, &plan, why,
                                              sizeof why) == AGW_OK &&
                       plan.proto == client;
            if (group == 0 ? !(ok && same) : group == 1 ? !(ok && !same) : ok)
                continue;
            c[n] = (agw_lb_candidate){ agw_str_c(in[i].provider->name), in[i].provider->weight,
                                       slot };
            g[n++] = in[i];
        }
        size_t order[AGW_ROUTE_MAX_CANDIDATES];
        order_by(lb, group == 2 ? AGW_LB_PRIORITY : strategy, c, n, now, draw_random(), order);
        for (size_t i = 0; i < n; i++)
            s->r[out++] = g[order[i]];
    }
    s->n = out;
    return out < max_attempts ? out : max_attempts;
}
