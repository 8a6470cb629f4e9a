/* Unit tests for lib/limiter: the GCRA arithmetic (burst, refill, cost,
 * debt, saturation), the TPM estimate, and admission against the shared
 * segment: exact under threads and processes, QPM refunds when TPM refuses,
 * settlement, and the rate-limit hit counter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* The module itself, so the tests reach its file-local functions. */
#include "tenant/limiter.c"

#define SEC UINT64_C(1000000000)
#define T0 (1000 * SEC) /* an arbitrary monotonic "now" */

typedef struct {
    char dir[64];
    char path[128];
    agw_shm *shm;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    strcpy(f->dir, "/tmp/agw-limit-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof f->path, "%s/x.state", f->dir);
    char err[256];
    if (agw_shm_attach(f->path, &f->shm, err, sizeof err) != AGW_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    agw_shm_detach(f->shm);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* ---- GCRA ---- */

static void test_gcra_init(void **state)
{
    (void)state;
    agw_gcra g;
    gcra_init(&g, 60);
    assert_int_equal(g.interval_ns, SEC);
    assert_int_equal(g.burst_ns, 60 * SEC);
    gcra_init(&g, 7); /* 60/7 s, rounded down; the burst stays exactly 7 */
    assert_int_equal(g.interval_ns, 8571428571u);
    assert_int_equal(g.burst_ns, 7 * UINT64_C(8571428571));
    gcra_init(&g, AGW_LIMIT_MAX);
    assert_int_equal(g.interval_ns, 60);
    gcra_init(&g, 0); /* clamped, never a division by zero */
    assert_int_equal(g.limit, 1);
}

static void test_gcra_burst_then_refill(void **state)
{
    (void)state;
    agw_gcra g;
    gcra_init(&g, 60);
    uint64_t tat = 0, wait;
    for (int i = 0; i < 60; i++) {
        assert_int_equal(gcra_available(&g, tat, T0), 60 - i);
        assert_int_equal(gcra_decide(&g, tat, T0, 1, &tat, &wait), 1);
    }
    /* The 61st at the same moment: refused, one unit (1 s) away. */
    uint64_t before = tat;
    assert_int_equal(gcra_decide(&g, tat, T0, 1, &tat, &wait), 0);
    assert_int_equal(tat, before); /* a refusal takes nothing */
    assert_int_equal(wait, SEC);
    assert_int_equal(gcra_available(&g, tat, T0), 0);
    /* 999 ms later still nothing; at 1 s exactly one more. */
    assert_int_equal(gcra_decide(&g, tat, T0 + SEC - 1, 1, &tat, &wait), 0);
    assert_int_equal(wait, 1);
    assert_int_equal(gcra_decide(&g, tat, T0 + SEC, 1, &tat, &wait), 1);
    assert_int_equal(gcra_decide(&g, tat, T0 + SEC, 1, &tat, &wait), 0);
    /* A minute of silence refills the whole bucket, and no more. */
    assert_int_equal(gcra_available(&g, tat, T0 + 120 * SEC), 60);
}

static void test_gcra_costs(void **state)
{
    (void)state;
    agw_gcra g;
    gcra_init(&g, 1000); /* 60 ms per token */
    uint64_t tat = 0, wait;
    assert_int_equal(gcra_decide(&g, tat, T0, 600, &tat, &wait), 1);
    assert_int_equal(gcra_available(&g, tat, T0), 400);
    assert_int_equal(gcra_decide(&g, tat, T0, 600, &tat, &wait), 0);
    assert_int_equal(wait, 200 * g.interval_ns);
    assert_int_equal(gcra_decide(&g, tat, T0, 400, &tat, &wait), 1);
    assert_int_equal(gcra_available(&g, tat, T0), 0);
    /* Cost 0 passes while the bucket is not below zero. */
    assert_int_equal(gcra_decide(&g, tat, T0, 0, &tat, &wait), 1);
    /* More than the whole bucket can never pass. */
    assert_int_equal(gcra_decide(&g, 0, T0, 1001, &tat, &wait), 0);
    /* Saturation: an absurd cost does not wrap around the clock. */
    uint64_t t2 = 0;
    assert_int_equal(gcra_decide(&g, 0, T0, UINT64_MAX / 2, &t2, &wait), 0);
    assert_true(wait > 0);
}

static void test_gcra_adjust(void **state)
{
    (void)state;
    agw_gcra g;
    gcra_init(&g, 1000);
    uint64_t tat = 0, wait;
    assert_int_equal(gcra_decide(&g, tat, T0, 900, &tat, &wait), 1);
    /* Settled at 100 real tokens: 800 come back. */
    tat = gcra_adjust(&g, tat, T0, 100 - 900);
    assert_int_equal(gcra_available(&g, tat, T0), 900);
    /* Settled above the estimate: the bucket goes below zero... */
    tat = gcra_adjust(&g, tat, T0, 1500);
    assert_int_equal(gcra_available(&g, tat, T0), 0);
    assert_int_equal(gcra_decide(&g, tat, T0, 0, &tat, &wait), 0);
    /* ...by the whole debt: 1,000,000 tokens more at 1000 a minute keep the
     * key refused for 1000 minutes, not one. */
    tat = gcra_adjust(&g, tat, T0, 1000000);
    assert_int_equal(tat, T0 + (100 + 1500 + 1000000) * g.interval_ns);
    assert_int_equal(gcra_available(&g, tat, T0 + 120 * SEC), 0);
    assert_int_equal(gcra_available(&g, tat, tat - g.burst_ns + 10 * g.interval_ns), 10);
    assert_int_equal(gcra_available(&g, tat, tat), 1000);
    /* An absurd debt saturates; it never wraps the clock into a full bucket. */
    assert_int_equal(gcra_adjust(&g, tat, T0, INT64_MAX), UINT64_MAX);
    /* Giving back to a full bucket changes nothing that matters. */
    uint64_t past = gcra_adjust(&g, 0, T0, -50);
    assert_int_equal(gcra_available(&g, past, T0), 1000);
    assert_int_equal(gcra_adjust(&g, 5, T0, 0), 5);
    assert_int_equal(gcra_adjust(&g, 5, T0, INT64_MIN), 0);
}

static void test_estimate(void **state)
{
    (void)state;
    agw_str b = AGW_STR_LIT("{\"model\":\"m\",\"max_tokens\":100}");
    assert_int_equal(agw_limit_estimate(b), (int64_t)((b.len + 3) / 4) + 100);
    b = AGW_STR_LIT("{\"max_completion_tokens\":50,\"max_tokens\":100}");
    assert_int_equal(agw_limit_estimate(b), (int64_t)((b.len + 3) / 4) + 50);
    b = AGW_STR_LIT("{\"max_tokens\":\"lots\"}");
    assert_int_equal(agw_limit_estimate(b), (int64_t)((b.len + 3) / 4));
    b = AGW_STR_LIT("{\"max_tokens\":-5}");
    assert_int_equal(agw_limit_estimate(b), (int64_t)((b.len + 3) / 4));
    b = AGW_STR_LIT("{\"max_tokens\":99999999999999}");
    assert_int_equal(agw_limit_estimate(b), (int64_t)((b.len + 3) / 4) + AGW_LIMIT_MAX);
    b = AGW_STR_LIT("{\"messages\":[{\"max_tokens\":9}]}"); /* only the top level counts */
    assert_int_equal(agw_limit_estimate(b), (int64_t)((b.len + 3) / 4));
    /* The order of the names decides, not the order in the body; a name
     * given twice counts with its last value; a useless first name falls
     * through to the next. */
    b = AGW_STR_LIT("{\"max_output_tokens\":7,\"max_tokens\":8,\"max_completion_tokens\":9}");
    assert_int_equal(agw_limit_estimate(b), (int64_t)((b.len + 3) / 4) + 9);
    b = AGW_STR_LIT("{\"max_tokens\":8,\"max_tokens\":12}");
    assert_int_equal(agw_limit_estimate(b), (int64_t)((b.len + 3) / 4) + 12);
    b = AGW_STR_LIT("{\"max_completion_tokens\":0,\"max_output_tokens\":30}");
    assert_int_equal(agw_limit_estimate(b), (int64_t)((b.len + 3) / 4) + 30);
    b = AGW_STR_LIT("{\"max_\\u0074okens\":40}"); /* an escaped name is the same name */
    assert_int_equal(agw_limit_estimate(b), (int64_t)((b.len + 3) / 4) + 40);
    b = AGW_STR_LIT("[{\"max_tokens\":9}]");
    assert_int_equal(agw_limit_estimate(b), (int64_t)((b.len + 3) / 4));
}

/* ---- admission ---- */

typedef struct {
    agw_shm *shm;
    pthread_barrier_t *barrier;
    agw_limit_policy policy;
    int64_t estimate;
    int admitted, refused, errors;
} worker;

static void *admit_many(void *arg)
{
    worker *w = arg;
    pthread_barrier_wait(w->barrier);
    for (int i = 0; i < 50; i++) {
        agw_limit_ticket t;
        if (agw_limit_admit(w->shm, 1, &w->policy, w->estimate, T0, &t) != AGW_OK)
            w->errors++;
        else if (t.verdict == AGW_LIMIT_ADMITTED) {
            w->admitted++;
            agw_limit_finish(&t, -1, T0);
        } else {
            w->refused++;
        }
    }
    return NULL;
}

static void test_admit_qpm_exact_in_threads(void **state)
{
    fixture *f = *state;
    enum { N = 8 };
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, N);
    worker w[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        w[i] = (worker){ f->shm, &barrier, { 60, 0 }, 0, 0, 0, 0 };
        pthread_create(&t[i], NULL, admit_many, &w[i]);
    }
    int admitted = 0, refused = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        admitted += w[i].admitted;
        refused += w[i].refused;
        assert_int_equal(w[i].errors, 0);
    }
    pthread_barrier_destroy(&barrier);
    assert_int_equal(admitted, 60);
    assert_int_equal(refused, N * 50 - 60);
    assert_int_equal(agw_shm_rate_limit_hits(f->shm), (uint64_t)refused);
}

static void test_admit_tpm_exact_across_processes(void **state)
{
    fixture *f = *state;
    enum { KIDS = 4 };
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t kids[KIDS];
    for (int i = 0; i < KIDS; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            agw_shm *s = NULL;
            char err[256];
            if (agw_shm_attach(f->path, &s, err, sizeof err) != AGW_OK)
                _exit(2);
            int admitted = 0;
            agw_limit_policy p = { 0, 10000 };
            for (int j = 0; j < 100; j++) {
                agw_limit_ticket t;
                if (agw_limit_admit(s, 1, &p, 300, T0, &t) != AGW_OK)
                    _exit(3);
                if (t.verdict == AGW_LIMIT_ADMITTED) {
                    admitted++;
                    agw_limit_finish(&t, 300, T0); /* real == estimate */
                }
            }
            if (write(fds[1], &admitted, sizeof admitted) != sizeof admitted)
                _exit(4);
            _exit(0);
        }
    }
    close(fds[1]);
    int total = 0, n;
    for (int i = 0; i < KIDS; i++) {
        int st;
        assert_int_equal(waitpid(kids[i], &st, 0), kids[i]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        assert_int_equal(read(fds[0], &n, sizeof n), sizeof n);
        total += n;
    }
    close(fds[0]);
    assert_int_equal(total, 10000 / 300); /* 33: exactly what the bucket holds */
}

/* A thread that read the clock, then lost the CPU while others decided, must
 * not decide with its older time: the 60th request of a burst of 60 would be
 * refused and the remaining counts would repeat (seen in the pool test). */
static void test_a_stale_clock_reading_decides_like_the_latest(void **state)
{
    fixture *f = *state;
    agw_limit_policy p = { 60, 0 };
    agw_limit_ticket t;
    for (int i = 0; i < 59; i++) {
        assert_int_equal(agw_limit_admit(f->shm, 77, &p, 0, T0 + 5 * SEC, &t), AGW_OK);
        assert_int_equal(t.verdict, AGW_LIMIT_ADMITTED);
        assert_int_equal(t.remaining_requests, 59 - i);
        agw_limit_finish(&t, -1, T0 + 5 * SEC);
    }
    assert_int_equal(agw_limit_admit(f->shm, 77, &p, 0, T0 + 5 * SEC - 1000000, &t), AGW_OK);
    assert_int_equal(t.verdict, AGW_LIMIT_ADMITTED);
    assert_int_equal(t.remaining_requests, 0);
    agw_limit_finish(&t, -1, T0 + 5 * SEC);
    assert_int_equal(agw_limit_admit(f->shm, 77, &p, 0, T0 + 5 * SEC - 1000000, &t), AGW_OK);
    assert_int_equal(t.verdict, AGW_LIMIT_BY_QPM); /* the 61st: the bucket is empty */
}

static void test_tpm_refusal_refunds_the_request(void **state)
{
    fixture *f = *state;
    agw_limit_policy p = { 2, 100 };
    agw_limit_ticket t;
    assert_int_equal(agw_limit_admit(f->shm, 5, &p, 80, T0, &t), AGW_OK);
    assert_int_equal(t.verdict, AGW_LIMIT_ADMITTED);
    assert_int_equal(t.remaining_requests, 1);
    assert_int_equal(t.remaining_tokens, 20);
    agw_limit_ticket u;
    assert_int_equal(agw_limit_admit(f->shm, 5, &p, 80, T0, &u), AGW_OK);
    assert_int_equal(u.verdict, AGW_LIMIT_BY_TPM);
    assert_null(u.slot);
    assert_int_equal(u.remaining_requests, 1); /* its request unit came back */
    assert_true(u.retry_after_ms > 0);
    /* So a cheap request still fits the request limit. */
    agw_limit_ticket v;
    assert_int_equal(agw_limit_admit(f->shm, 5, &p, 10, T0, &v), AGW_OK);
    assert_int_equal(v.verdict, AGW_LIMIT_ADMITTED);
    agw_limit_ticket w;
    assert_int_equal(agw_limit_admit(f->shm, 5, &p, 0, T0, &w), AGW_OK);
    assert_int_equal(w.verdict, AGW_LIMIT_BY_QPM);
    assert_int_equal(w.remaining_requests, 0);
    assert_int_equal(w.remaining_tokens, 10); /* shown, not taken */
    assert_int_equal(w.retry_after_ms, 30000); /* one request refills in 30 s */
    agw_limit_finish(&t, -1, T0);
    agw_limit_finish(&v, -1, T0);
    agw_limit_finish(&w, -1, T0); /* refused tickets are fine to finish */
}

static void test_settle_and_pins(void **state)
{
    fixture *f = *state;
    agw_limit_policy p = { 0, 1000 };
    agw_limit_ticket t;
    assert_int_equal(agw_limit_admit(f->shm, 9, &p, 900, T0, &t), AGW_OK);
    assert_int_equal(t.verdict, AGW_LIMIT_ADMITTED);
    agw_shm_limit_slot *slot = t.slot;
    assert_true((atomic_load(&slot->owner) & AGW_SHM_MAX_PINS) == 1); /* pinned in flight */
    agw_limit_finish(&t, 100, T0);
    assert_null(t.slot);
    assert_true((atomic_load(&slot->owner) & AGW_SHM_MAX_PINS) == 0);
    agw_gcra g;
    gcra_init(&g, 1000);
    assert_int_equal(gcra_available(&g, atomic_load(&slot->tat[1]), T0), 900);
    agw_limit_finish(&t, 100, T0); /* twice is harmless */
    /* An estimate of exactly the limit passes a full bucket... */
    assert_int_equal(agw_limit_admit(f->shm, 10, &p, 1000, T0, &t), AGW_OK);
    assert_int_equal(t.verdict, AGW_LIMIT_ADMITTED);
    assert_int_equal(t.reserved, 1000);
    agw_limit_finish(&t, -1, T0);
    /* ...one more is too large for any bucket: refused, nothing taken, the
     * request unit given back. */
    agw_limit_policy both = { 5, 1000 };
    assert_int_equal(agw_limit_admit(f->shm, 12, &both, 1001, T0, &t), AGW_OK);
    assert_int_equal(t.verdict, AGW_LIMIT_BY_TPM);
    assert_int_equal(t.too_large, 1);
    assert_int_equal(t.remaining_tokens, 1000);
    assert_int_equal(t.remaining_requests, 5);
    assert_int_equal(t.retry_after_ms, 60000);
    assert_int_equal(agw_limit_admit(f->shm, 12, &both, 1000, T0, &t), AGW_OK);
    assert_int_equal(t.verdict, AGW_LIMIT_ADMITTED);
    assert_int_equal(t.too_large, 0);
    agw_limit_finish(&t, -1, T0);
    /* No limits: no slot, nothing pinned. */
    agw_limit_policy none = { 0, 0 };
    assert_int_equal(agw_limit_admit(f->shm, 11, &none, 5, T0, &t), AGW_OK);
    assert_int_equal(t.verdict, AGW_LIMIT_ADMITTED);
    assert_null(t.slot);
    assert_int_equal(t.remaining_requests, -1);
    assert_int_equal(t.remaining_tokens, -1);
}

static void test_limits_per_key(void **state)
{
    fixture *f = *state;
    agw_limit_policy p = { 1, 0 };
    agw_limit_ticket a, b, c;
    assert_int_equal(agw_limit_admit(f->shm, 20, &p, 0, T0, &a), AGW_OK);
    assert_int_equal(agw_limit_admit(f->shm, 21, &p, 0, T0, &b), AGW_OK);
    assert_int_equal(agw_limit_admit(f->shm, 20, &p, 0, T0, &c), AGW_OK);
    assert_int_equal(a.verdict, AGW_LIMIT_ADMITTED);
    assert_int_equal(b.verdict, AGW_LIMIT_ADMITTED); /* another key has its own bucket */
    assert_int_equal(c.verdict, AGW_LIMIT_BY_QPM);
    assert_int_equal(c.retry_after_ms, 60000);
    agw_limit_finish(&a, -1, T0);
    agw_limit_finish(&b, -1, T0);
}

/* ---- what TPM bounds over time ----
 *
 * Ten simulated minutes against the shared segment with a fake clock. Every
 * admitted request settles `latency` later with its real count. Afterwards
 * every window between two admissions is checked: the tokens of the requests
 * admitted in it stay within N + N * (its length) / 60 s, plus, for requests
 * that spend more than their estimate, what the last of them spent beyond it. */

#define SIM_N 10000 /* tokens per minute: 6 ms per token, exactly */
#define SIM_REQS 20000

typedef struct {
    uint64_t at;       /* arrival */
    int64_t estimate;  /* what admission reserves */
    int64_t actual;    /* what it spends */
    uint64_t latency;  /* until it settles */
} sim_req;

typedef struct {
    sim_req reqs[SIM_REQS];
    size_t n;
    uint64_t admitted_at[SIM_REQS];
    int64_t spent[SIM_REQS];
    size_t n_admitted;
    int too_large;
    int64_t worst_excess; /* the most one admitted request spent beyond its estimate */
} sim;

static uint64_t sim_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void sim_add(sim *m, uint64_t at, int64_t estimate, int64_t actual, uint64_t latency)
{
    assert_true(m->n < SIM_REQS);
    m->reqs[m->n++] = (sim_req){ at, estimate, actual, latency };
}

/* Runs the requests (in arrival order) for key `key`; settles each at its time. */
static void sim_run(agw_shm *shm, uint64_t key, sim *m)
{
    static agw_limit_ticket open[SIM_REQS];
    static uint64_t due[SIM_REQS];
    static int64_t real[SIM_REQS];
    size_t n_open = 0;
    agw_limit_policy p = { 0, SIM_N };
    for (size_t i = 0; i <= m->n; i++) {
        uint64_t now = i < m->n ? m->reqs[i].at : UINT64_MAX;
        for (size_t j = 0; j < n_open;) { /* settle everything due by now */
            if (due[j] <= now) {
                agw_limit_finish(&open[j], real[j], due[j]);
                open[j] = open[n_open - 1];
                due[j] = due[n_open - 1];
                real[j] = real[n_open - 1];
                n_open--;
            } else {
                j++;
            }
        }
        if (i == m->n)
            break;
        const sim_req *r = &m->reqs[i];
        agw_limit_ticket t;
        assert_int_equal(agw_limit_admit(shm, key, &p, r->estimate, now, &t), AGW_OK);
        if (t.verdict != AGW_LIMIT_ADMITTED) {
            m->too_large += t.too_large;
            continue;
        }
        m->admitted_at[m->n_admitted] = now;
        m->spent[m->n_admitted++] = r->actual;
        if (r->actual - r->estimate > m->worst_excess)
            m->worst_excess = r->actual - r->estimate;
        open[n_open] = t;
        due[n_open] = now + r->latency;
        real[n_open++] = r->actual;
    }
}

/* The most any window between two admissions spent beyond N + N*len/60 s. */
static int64_t sim_worst_overspend(const sim *m)
{
    int64_t worst = INT64_MIN;
    for (size_t i = 0; i < m->n_admitted; i++) {
        int64_t sum = 0;
        for (size_t j = i; j < m->n_admitted; j++) {
            sum += m->spent[j];
            uint64_t len = m->admitted_at[j] - m->admitted_at[i];
            int64_t allowed = SIM_N + (int64_t)(len / (60 * SEC / SIM_N));
            if (sum - allowed > worst)
                worst = sum - allowed;
        }
    }
    return worst;
}

static void test_tpm_bounds_spending_over_ten_minutes(void **state)
{
    fixture *f = *state;
    static sim m;
    uint64_t seed = 88172645463325252u, key = 100;
    const uint64_t end = T0 + 600 * SEC;

    /* 1. A huge max_tokens every two minutes: each alone exceeds the bucket,
     *    so none passes (it would spend 10x the limit in ten minutes). */
    memset(&m, 0, sizeof m);
    for (uint64_t t = T0; t < end; t += 120 * SEC)
        sim_add(&m, t, 100000, 100000, 30 * SEC);
    sim_run(f->shm, key++, &m);
    assert_int_equal(m.n_admitted, 0);
    assert_int_equal(m.too_large, 5);

    /* 2. Bucket-sized requests every second, settled a minute later. */
    memset(&m, 0, sizeof m);
    for (uint64_t t = T0; t < end; t += SEC)
        sim_add(&m, t, SIM_N, SIM_N, 60 * SEC);
    sim_run(f->shm, key++, &m);
    assert_true(m.n_admitted >= 10 && m.n_admitted <= 11);
    assert_true(sim_worst_overspend(&m) <= 0);

    /* 3. Bursts: 50 requests at once every 10 s, real counts below estimates. */
    memset(&m, 0, sizeof m);
    for (uint64_t t = T0; t < end; t += 10 * SEC)
        for (int b = 0; b < 50; b++) {
            int64_t est = 200 + (int64_t)(sim_rand(&seed) % 2000);
            sim_add(&m, t, est, est - (int64_t)(sim_rand(&seed) % 200),
                    sim_rand(&seed) % (20 * SEC));
        }
    sim_run(f->shm, key++, &m);
    assert_true(m.n_admitted > 0);
    assert_true(sim_worst_overspend(&m) <= 0);

    /* 4. Random arrivals, sizes up to the whole bucket, any real count up to
     *    the estimate, settled up to two minutes later. */
    memset(&m, 0, sizeof m);
    for (uint64_t t = T0; t < end; t += sim_rand(&seed) % (3 * SEC)) {
        int64_t est = 1 + (int64_t)(sim_rand(&seed) % SIM_N);
        sim_add(&m, t, est, (int64_t)(sim_rand(&seed) % (uint64_t)(est + 1)),
                sim_rand(&seed) % (120 * SEC));
    }
    sim_run(f->shm, key++, &m);
    assert_true(m.n_admitted > 0);
    assert_true(sim_worst_overspend(&m) <= 0);

    /* 5. No max_tokens, a long answer: an estimate of 100 that spends
     *    100,000 every two minutes. The whole debt is kept, so the key waits
     *    until the refill has paid it (ten minutes): one of the five passes
     *    (the old one-bucket cap let all five through, 500,000 tokens), and no
     *    window spends more than its share plus one request's excess. */
    memset(&m, 0, sizeof m);
    for (uint64_t t = T0; t < end; t += 120 * SEC)
        sim_add(&m, t, 100, 100000, 0);
    sim_run(f->shm, key++, &m);
    assert_int_equal(m.n_admitted, 1);
    assert_true(sim_worst_overspend(&m) <= m.worst_excess);
    int64_t total = 0;
    for (size_t i = 0; i < m.n_admitted; i++)
        total += m.spent[i];
    assert_true(total <= SIM_N * 10 + SIM_N + m.worst_excess);
}

/* A changed limit starts with a full bucket: the old limit's state is in its
 * own units (an empty bucket at 1 per minute is a minute away from full, and
 * would read as empty at 30 too). */
static void test_a_changed_limit_starts_full(void **state)
{
    fixture *f = *state;
    agw_limit_policy one = { 1, 100 }, thirty = { 30, 5000 };
    agw_limit_ticket t;
    assert_int_equal(agw_limit_admit(f->shm, 40, &one, 100, T0, &t), AGW_OK);
    assert_int_equal(t.verdict, AGW_LIMIT_ADMITTED);
    agw_limit_finish(&t, -1, T0);
    assert_int_equal(agw_limit_admit(f->shm, 40, &thirty, 1, T0 + SEC, &t), AGW_OK);
    assert_int_equal(t.verdict, AGW_LIMIT_BY_QPM); /* without a reset: still empty */
    agw_limit_reset(f->shm, 40, 1, 0, T0 + SEC);
    int passed = 0;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(agw_limit_admit(f->shm, 40, &(agw_limit_policy){ 30, 0 }, 0, T0 + SEC,
                                         &t), AGW_OK);
        passed += t.verdict == AGW_LIMIT_ADMITTED;
        agw_limit_finish(&t, -1, T0 + SEC);
    }
    assert_int_equal(passed, 30);
    /* TPM alone: the reset above left it empty; its own reset fills it. */
    assert_int_equal(agw_limit_admit(f->shm, 40, &(agw_limit_policy){ 0, 5000 }, 200, T0 + SEC,
                                     &t), AGW_OK);
    assert_int_equal(t.verdict, AGW_LIMIT_BY_TPM);
    agw_limit_reset(f->shm, 40, 0, 1, T0 + SEC);
    assert_int_equal(agw_limit_admit(f->shm, 40, &(agw_limit_policy){ 0, 5000 }, 5000,
                                     T0 + SEC, &t), AGW_OK);
    assert_int_equal(t.verdict, AGW_LIMIT_ADMITTED);
    agw_limit_finish(&t, -1, T0 + SEC);
    (void)thirty;
    agw_limit_reset(f->shm, 41, 0, 0, T0); /* nothing to fill: no slot is taken */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gcra_init),
        cmocka_unit_test_setup_teardown(test_a_stale_clock_reading_decides_like_the_latest, setup,
                                        teardown),
        cmocka_unit_test(test_gcra_burst_then_refill),
        cmocka_unit_test(test_gcra_costs),
        cmocka_unit_test(test_gcra_adjust),
        cmocka_unit_test(test_estimate),
        cmocka_unit_test_setup_teardown(test_admit_qpm_exact_in_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admit_tpm_exact_across_processes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tpm_refusal_refunds_the_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settle_and_pins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_per_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tpm_bounds_spending_over_ten_minutes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_changed_limit_starts_full, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
