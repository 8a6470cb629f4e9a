#include "tenant/limiter.h"
#include "core/json.h"

/* ---- the pure GCRA arithmetic (no shared memory; limiter.h says what it means) ---- */

#define WINDOW_NS UINT64_C(60000000000)

typedef struct {
    uint64_t interval_ns; /* one unit refills in this time: floor(60 s / N), at least 1 */
    uint64_t burst_ns;    /* interval_ns * N: a full bucket */
    int64_t limit;        /* N */
} agw_gcra;

/* N is clamped to 1..AGW_LIMIT_MAX. */
static void gcra_init(agw_gcra *g, int64_t per_minute)
{
    if (per_minute < 1)
        per_minute = 1;
    if (per_minute > AGW_LIMIT_MAX)
        per_minute = AGW_LIMIT_MAX;
    g->limit = per_minute;
    g->interval_ns = WINDOW_NS / (uint64_t)per_minute;
    if (g->interval_ns == 0)
        g->interval_ns = 1;
    /* N*I rather than 60 s: a burst of exactly N fits even when I was rounded down. */
    g->burst_ns = g->interval_ns * (uint64_t)per_minute;
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Decides a request of `cost` units (>= 0) against `tat` at `now`: 1 and the
 * TAT to store when admitted; 0 and *wait_ns (how long until it would be) when
 * not. Arithmetic saturates, so no cost can wrap the clock. */
static int gcra_decide(const agw_gcra *g, uint64_t tat, uint64_t now, uint64_t cost,
                       uint64_t *new_tat, uint64_t *wait_ns)
{
    uint64_t base = tat > now ? tat : now;
    uint64_t next = sat_add(base, sat_mul(cost, g->interval_ns));
    uint64_t ahead = next - now; /* next >= base >= now */
    if (ahead <= g->burst_ns) {
        *new_tat = next;
        *wait_ns = 0;
        return 1;
    }
    *new_tat = tat;
    *wait_ns = ahead - g->burst_ns;
    return 0;
}

/* Whole units in the bucket at `now` (0 when empty or below zero). */
static int64_t gcra_available(const agw_gcra *g, uint64_t tat, uint64_t now)
{
    uint64_t used = tat > now ? tat - now : 0;
    if (used >= g->burst_ns)
        return 0;
    return (int64_t)((g->burst_ns - used) / g->interval_ns);
}

/* The TAT after `delta` units are taken (delta > 0) or given back (< 0).
 * The whole debt is kept (limiter.h, TPM): capping it would forgive tokens
 * that were spent, and a key could then spend more than N per minute. */
static uint64_t gcra_adjust(const agw_gcra *g, uint64_t tat, uint64_t now, int64_t delta)
{
    if (delta == 0)
        return tat;
    if (delta < 0) {
        /* Giving back: move the full-again time earlier. A TAT already in the
         * past is a full bucket; further back changes nothing. */
        uint64_t back = sat_mul((uint64_t)(-(delta + 1)) + 1, g->interval_ns);
        return tat > back ? tat - back : 0;
    }
    uint64_t base = tat > now ? tat : now;
    return sat_add(base, sat_mul((uint64_t)delta, g->interval_ns));
}

int64_t agw_limit_estimate(agw_str body)
{
    int64_t est = (int64_t)((body.len + 3) / 4);
    /* The first of these names that holds a positive count is the answer's
     * bound. */
    static const char *const names[] = { "max_completion_tokens", "max_tokens",
                                          "max_output_tokens" };
    enum { N_NAMES = sizeof names / sizeof names[0] };
    agw_str found[N_NAMES];
    agw_json_collect(body, names, N_NAMES, found, NULL);
    for (size_t i = 0; i < N_NAMES; i++) {
        int64_t n;
        if (found[i].ptr && agw_json_int64(found[i], &n) == AGW_OK && n > 0)
            return est + (n > AGW_LIMIT_MAX ? AGW_LIMIT_MAX : n);
    }
    return est;
}

/* Raises `now` to the latest time any decision on this bucket used. A thread
 * preempted between reading the clock and its compare-and-swap would
 * otherwise decide with a time earlier than decisions already made: it could
 * refuse a request the bucket has room for (59 of a burst of 60) and report
 * one unit too few remaining. */
static uint64_t latest_now(_Atomic uint64_t *seen, uint64_t now)
{
    uint64_t prev = atomic_load(seen);
    while (prev < now && !atomic_compare_exchange_weak(seen, &prev, now))
        ;
    return prev > now ? prev : now;
}

/* Takes `cost` from bucket `which`: 1 admitted, 0 refused with *wait_ns. */
static int take(agw_shm_limit_slot *slot, int which, const agw_gcra *g, uint64_t now,
                uint64_t cost, uint64_t *wait_ns, int64_t *remaining)
{
    uint64_t tat = atomic_load(&slot->tat[which]), next;
    for (;;) {
        now = latest_now(&slot->seen[which], now);
        if (!gcra_decide(g, tat, now, cost, &next, wait_ns)) {
            *remaining = gcra_available(g, tat, now);
            return 0;
        }
        if (atomic_compare_exchange_weak(&slot->tat[which], &tat, next)) {
            *remaining = gcra_available(g, next, now);
            return 1;
        }
    }
}

static void adjust(agw_shm_limit_slot *slot, int which, const agw_gcra *g, uint64_t now,
                   int64_t delta)
{
    uint64_t tat = atomic_load(&slot->tat[which]);
    while (!atomic_compare_exchange_weak(&slot->tat[which], &tat,
                                         gcra_adjust(g, tat, now, delta)))
        ;
}

static uint64_t ceil_ms(uint64_t ns)
{
    return ns / 1000000u + (ns % 1000000u != 0);
}

agw_err agw_limit_admit(agw_shm *shm, uint64_t key_id, const agw_limit_policy *p,
                        int64_t estimate, uint64_t now_ns, agw_limit_ticket *t)
{
    memset(t, 0, sizeof *t);
    t->policy = *p;
    t->remaining_requests = t->remaining_tokens = -1;
    if (p->qpm <= 0 && p->tpm <= 0)
        return AGW_OK;
    agw_err e = agw_shm_slot_pin(shm, key_id, now_ns, &t->slot);
    if (e)
        return e;
    agw_gcra q, k;
    uint64_t wait = 0;
    int64_t rem;
    if (p->qpm > 0) {
        gcra_init(&q, p->qpm);
        if (!take(t->slot, 0, &q, now_ns, 1, &wait, &rem)) {
            t->verdict = AGW_LIMIT_BY_QPM;
            t->remaining_requests = rem;
            if (p->tpm > 0) { /* shown in the 429's headers; nothing is taken */
                gcra_init(&k, p->tpm);
                t->remaining_tokens = gcra_available(&k, atomic_load(&t->slot->tat[1]), now_ns);
            }
            goto refused;
        }
        t->remaining_requests = rem;
    }
    if (p->tpm > 0) {
        gcra_init(&k, p->tpm);
        int64_t cost = estimate < 0 ? 0 : estimate;
        int fits = cost <= p->tpm;
        if (!fits) {
            /* More than a whole bucket: no wait makes it fit (limiter.h). */
            t->too_large = 1;
            wait = k.burst_ns;
            rem = gcra_available(&k, atomic_load(&t->slot->tat[1]), now_ns);
        }
        if (!fits || !take(t->slot, 1, &k, now_ns, (uint64_t)cost, &wait, &rem)) {
            t->verdict = AGW_LIMIT_BY_TPM;
            t->remaining_tokens = rem;
            if (p->qpm > 0) {
                adjust(t->slot, 0, &q, now_ns, -1); /* the request unit goes back */
                t->remaining_requests++;
            }
            goto refused;
        }
        t->reserved = cost;
        t->remaining_tokens = rem;
    }
    return AGW_OK;
refused:
    t->retry_after_ms = ceil_ms(wait);
    atomic_fetch_add(&t->slot->hits, 1);
    agw_shm_count_rate_limit_hit(shm);
    agw_shm_slot_unpin(t->slot);
    t->slot = NULL;
    return AGW_OK;
}

void agw_limit_finish(agw_limit_ticket *t, int64_t actual, uint64_t now_ns)
{
    if (!t->slot)
        return;
    if (t->policy.tpm > 0 && actual >= 0 && actual != t->reserved) {
        agw_gcra k;
        gcra_init(&k, t->policy.tpm);
        adjust(t->slot, 1, &k, now_ns, actual - t->reserved);
    }
    agw_shm_slot_unpin(t->slot);
    t->slot = NULL;
}

void agw_limit_reset(agw_shm *shm, uint64_t key_id, int qpm, int tpm, uint64_t now_ns)
{
    agw_shm_limit_slot *slot;
    if ((!qpm && !tpm) || agw_shm_slot_pin(shm, key_id, now_ns, &slot) != AGW_OK)
        return; /* no slot to be had: the key has none, so its buckets are full */
    if (qpm)
        atomic_store(&slot->tat[0], 0);
    if (tpm)
        atomic_store(&slot->tat[1], 0);
    agw_shm_slot_unpin(slot);
}
