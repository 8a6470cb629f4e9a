/* Unit tests for lib/lb: the decaying counters, the latency EWMA, slot
 * claiming and reclaiming, cooldown and health marks (with their reasons),
 * the reset at a boot change, and the five strategies' orders. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* The module itself, so the tests reach its file-local functions. */
#include "route/lb.c"

#include <fcntl.h>

static int setup(void **state)
{
    void *region = calloc(1, AGW_LB_REGION_BYTES);
    agw_lb *lb = calloc(1, sizeof *lb);
    assert_int_equal(agw_lb_bind(lb, region, AGW_LB_REGION_BYTES), AGW_OK);
    *state = lb;
    return 0;
}

static int teardown(void **state)
{
    agw_lb *lb = *state;
    free(lb->hdr);
    free(lb);
    return 0;
}

/* A removed provider's slot: retiring at the first pass, back when its name
 * is looked up again, freed after the grace period only while idle, and then
 * reused by a new name with fresh statistics. */
static void test_reclaim_removed_names(void **state)
{
    agw_lb *lb = *state;
    agw_lb_slot *old = agw_lb_slot_of(lb, AGW_STR_LIT("old"));
    agw_lb_slot *keep = agw_lb_slot_of(lb, AGW_STR_LIT("keep"));
    agw_lb_begin(lb, old);
    agw_lb_end(lb, old, AGW_LB_FAIL_5XX, 1000, 60000, 1, 10);
    agw_lb_begin(lb, keep);
    const agw_str live[] = { AGW_STR_LIT("keep") };
    const uint64_t grace = 1000;
    /* first pass: retiring, not freed */
    assert_int_equal(agw_lb_reclaim(lb, live, 1, 100, grace), 0);
    assert_true(atomic_load(&old->key) & KEY_RETIRING);
    /* still in use by a process with an older catalog: taken back */
    assert_ptr_equal(agw_lb_slot_of(lb, AGW_STR_LIT("old")), old);
    assert_false(atomic_load(&old->key) & KEY_RETIRING);
    assert_int_equal(atomic_load(&old->requests), 1);
    /* retiring again, with a request in flight: never freed */
    assert_int_equal(agw_lb_reclaim(lb, live, 1, 200, grace), 0);
    agw_lb_begin(lb, old);
    assert_int_equal(agw_lb_reclaim(lb, live, 1, 200 + 10 * grace, grace), 0);
    assert_true(atomic_load(&old->key) & KEY_RETIRING);
    /* idle, but within the grace period: not yet */
    agw_lb_end(lb, old, AGW_LB_OK, 0, 0, 1, 300);
    assert_int_equal(agw_lb_reclaim(lb, live, 1, 200 + grace - 1, grace), 0);
    /* idle past the grace period: freed, statistics gone */
    assert_int_equal(agw_lb_reclaim(lb, live, 1, 200 + grace, grace), 1);
    assert_int_equal(atomic_load(&old->key), KEY_TOMBSTONE);
    assert_int_equal(atomic_load(&old->requests), 0);
    assert_int_equal(atomic_load(&old->cooldown_until_ns), 0);
    /* the kept name's slot is untouched, in flight included */
    assert_int_equal(agw_lb_in_flight(lb, keep), 1);
    assert_false(atomic_load(&keep->key) & KEY_RETIRING);
    /* "old" comes back: a fresh slot, found again by the next lookup */
    agw_lb_slot *again = agw_lb_slot_of(lb, AGW_STR_LIT("old"));
    assert_non_null(again);
    assert_int_equal(atomic_load(&again->requests), 0);
    assert_ptr_equal(agw_lb_slot_of(lb, AGW_STR_LIT("old")), again);
}

/* Renaming more providers than the table holds, over and over: with
 * reclaiming, every new name still gets a slot, and names stay distinct. */
static void test_reclaim_makes_room_for_renames(void **state)
{
    agw_lb *lb = *state;
    char name[32];
    agw_str names[AGW_LB_SLOTS];
    char buf[AGW_LB_SLOTS][32];
    for (int round = 0; round < 4; round++) {
        for (size_t i = 0; i < AGW_LB_SLOTS; i++) {
            snprintf(buf[i], sizeof buf[i], "r%d-%zu", round, i);
            names[i] = agw_str_c(buf[i]);
            agw_lb_slot *s = agw_lb_slot_of(lb, names[i]);
            assert_non_null(s);
            assert_int_equal(atomic_load(&s->requests), 0);
            agw_lb_begin(lb, s);
            agw_lb_end(lb, s, AGW_LB_OK, 0, 0, 0, 1);
        }
        /* two passes a grace period apart free the previous round's names */
        uint64_t t = (uint64_t)round * 100;
        (void)agw_lb_reclaim(lb, names, AGW_LB_SLOTS, t + 1, 10);
        (void)agw_lb_reclaim(lb, names, AGW_LB_SLOTS, t + 20, 10);
        for (size_t i = 0; i < AGW_LB_SLOTS; i++)
            assert_int_equal(atomic_load(&agw_lb_slot_of(lb, names[i])->requests), 1);
        /* the next round reuses every slot: nothing is left for others */
        snprintf(name, sizeof name, "extra%d", round);
        assert_null(agw_lb_slot_of(lb, agw_str_c(name)));
        (void)agw_lb_reclaim(lb, NULL, 0, t + 30, 10);
        (void)agw_lb_reclaim(lb, NULL, 0, t + 50, 10);
    }
}

/* The region lies in the shm's boot-scoped bytes: a new boot starts the
 * statistics, cooldowns and health marks afresh. */
static void test_another_boot_resets_the_lb(void **state)
{
    (void)state;
    if (access("/proc/sys/kernel/random/boot_id", R_OK) != 0)
        skip(); /* no boot id to compare: the check is off */
    char dir[] = "/tmp/agw-lb-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64], err[AGW_ERR_LEN];
    snprintf(path, sizeof path, "%s/antigw.db.state", dir);
    agw_shm *shm;
    assert_int_equal(agw_shm_attach(path, &shm, err, sizeof err), AGW_OK);
    size_t len;
    agw_lb lb;
    void *region = agw_shm_reserved(shm, &len);
    assert_int_equal(agw_lb_bind(&lb, region, len), AGW_OK);
    agw_lb_slot *s = agw_lb_slot_of(&lb, AGW_STR_LIT("p"));
    agw_lb_begin(&lb, s);
    agw_lb_end(&lb, s, AGW_LB_FAIL_5XX, 5000, 60000, 1, UINT64_C(1) << 50); /* the old boot's clock */
    agw_lb_probe_result(s, AGW_LB_REASON_AUTH_REJECTED, UINT64_C(1) << 50);
    agw_shm_detach(shm);
    /* the file now says another boot wrote it */
    char other[40] = "00000000-0000-0000-0000-000000000000";
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, other, sizeof other, offsetof(agw_shm_header, boot_id)),
                     (ssize_t)sizeof other);
    close(fd);
    assert_int_equal(agw_shm_attach(path, &shm, err, sizeof err), AGW_OK);
    region = agw_shm_reserved(shm, &len);
    assert_int_equal(agw_lb_bind(&lb, region, len), AGW_OK);
    s = agw_lb_slot_of(&lb, AGW_STR_LIT("p"));
    assert_true(agw_lb_usable(s, 1)); /* no cooldown from the old clock, no mark */
    assert_int_equal(agw_lb_unhealthy_reason(s), AGW_LB_REASON_NONE);
    assert_int_equal(atomic_load(&s->requests), 0);
    assert_int_equal(atomic_load(&s->failures), 0);
    assert_int_equal(atomic_load(&s->latency_ewma_us), 0);
    assert_int_equal(atomic_load(&s->recent_5xx), 0);
    assert_int_equal(atomic_load(&lb.hdr->magic), AGW_LB_MAGIC);
    agw_shm_detach(shm);
    unlink(path);
    rmdir(dir);
}

static void test_bind_too_small(void **state)
{
    (void)state;
    agw_lb lb;
    char small[64];
    assert_int_equal(agw_lb_bind(&lb, small, sizeof small), AGW_EINVAL);
    /* The config's names are in the enum's order. */
    assert_int_equal(agw_config_lb_strategy("weighted"), AGW_LB_WEIGHTED);
    assert_int_equal(agw_config_lb_strategy("round-robin"), AGW_LB_ROUND_ROBIN);
    assert_int_equal(agw_config_lb_strategy("least-used"), AGW_LB_LEAST_USED);
    assert_int_equal(agw_config_lb_strategy("priority"), AGW_LB_PRIORITY);
    assert_int_equal(agw_config_lb_strategy("smart"), AGW_LB_SMART);
    assert_int_equal(agw_config_lb_strategy("random"), -1);
    assert_int_equal(agw_config_lb_strategy(NULL), -1);
}

static void test_decay_half_life(void **state)
{
    (void)state;
    _Atomic uint64_t w = 0;
    uint64_t t0 = 1000000;
    decay_add(&w, t0);
    decay_add(&w, t0);
    assert_true(decayed(w, t0) > 1.99 && decayed(w, t0) < 2.01);
    /* one half-life: half; two: a quarter; long after: nothing */
    double h = decayed(w, t0 + AGW_LB_HALF_LIFE_MS);
    assert_true(h > 0.99 && h < 1.01);
    double q = decayed(w, t0 + 2 * AGW_LB_HALF_LIFE_MS);
    assert_true(q > 0.49 && q < 0.51);
    double third = decayed(w, t0 + AGW_LB_HALF_LIFE_MS / 2);
    assert_true(third > 1.41 && third < 1.42); /* 2 / sqrt(2) */
    assert_true(decayed(w, t0 + 100 * AGW_LB_HALF_LIFE_MS) < 1e-6);
    /* an add after a half-life: 1 decayed + 1 */
    decay_add(&w, t0 + AGW_LB_HALF_LIFE_MS);
    double v = decayed(w, t0 + AGW_LB_HALF_LIFE_MS);
    assert_true(v > 1.99 && v < 2.01);
    /* a clock read earlier than the stamp counts as no time passed */
    assert_true(decayed(w, t0) > 1.99);
}

static void test_ewma(void **state)
{
    (void)state;
    assert_int_equal(ewma_next(0, 1000), 1000);
    assert_int_equal(ewma_next(1000, 2000), 1200); /* alpha 0.2 */
    assert_int_equal(ewma_next(1000, 0), 800);
    uint64_t e = 100;
    for (int i = 0; i < 100; i++)
        e = ewma_next(e, 50000);
    assert_true(e > 49000 && e <= 50000);
}

static void test_slots(void **state)
{
    agw_lb *lb = *state;
    agw_lb_slot *a = agw_lb_slot_of(lb, AGW_STR_LIT("a"));
    agw_lb_slot *b = agw_lb_slot_of(lb, AGW_STR_LIT("b"));
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    assert_ptr_equal(agw_lb_slot_of(lb, AGW_STR_LIT("a")), a);
    assert_null(agw_lb_slot_of(NULL, AGW_STR_LIT("a")));
    /* the table fills: 128 names fit, the 129th gets none */
    size_t got = 2;
    char name[32];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof name, "p%d", i);
        if (agw_lb_slot_of(lb, agw_str_c(name)))
            got++;
    }
    assert_int_equal(got, AGW_LB_SLOTS);
    /* a provider without a slot is neutral: usable */
    assert_true(agw_lb_usable(NULL, 1));
}

static void test_cooldown_and_health(void **state)
{
    agw_lb *lb = *state;
    agw_lb_slot *s = agw_lb_slot_of(lb, AGW_STR_LIT("x"));
    uint64_t now = 5000000000ull;
    agw_lb_begin(lb, s);
    assert_int_equal(agw_lb_in_flight(lb, s), 1);
    agw_lb_end(lb, s, AGW_LB_FAIL_5XX, 0, 30000, 1, now);
    assert_int_equal(agw_lb_in_flight(lb, s), 0);
    assert_false(agw_lb_usable(s, now));
    assert_false(agw_lb_usable(s, now + 29999000000ull));
    assert_true(agw_lb_usable(s, now + 30000000000ull));
    /* three in a row: unhealthy until a probe passes */
    agw_lb_end(lb, s, AGW_LB_FAIL_429, 0, 0, 1, now);
    assert_int_equal(atomic_load(&s->unhealthy), 0);
    agw_lb_end(lb, s, AGW_LB_FAIL_429, 0, 0, 1, now);
    assert_int_equal(atomic_load(&s->unhealthy), 1);
    assert_int_equal(agw_lb_unhealthy_reason(s), AGW_LB_REASON_CONSECUTIVE_FAILURES);
    assert_string_equal(agw_lb_reason_name(agw_lb_unhealthy_reason(s)), "consecutive_failures");
    assert_false(agw_lb_usable(s, now + 3600000000000ull));
    agw_lb_probe_result(s, AGW_LB_REASON_NONE, now);
    assert_true(agw_lb_usable(s, now));
    /* without health checks failures only cool down */
    agw_lb_slot *t = agw_lb_slot_of(lb, AGW_STR_LIT("y"));
    for (int i = 0; i < 5; i++)
        agw_lb_end(lb, t, AGW_LB_FAIL_5XX, 0, 0, 0, now);
    assert_int_equal(atomic_load(&t->unhealthy), 0);
    /* a success resets the run and feeds the EWMA */
    agw_lb_end(lb, t, AGW_LB_OK, 2000, 0, 0, now);
    assert_int_equal(atomic_load(&t->consecutive_failures), 0);
    assert_int_equal(atomic_load(&t->latency_ewma_us), 2000);
}

/* A provider that refuses the gateway's key: out at once (with health checks
 * on, reason auth_rejected), counted as a failure and cooled down either way. */
static void test_auth_refusal(void **state)
{
    agw_lb *lb = *state;
    agw_lb_slot *s = agw_lb_slot_of(lb, AGW_STR_LIT("revoked"));
    uint64_t now = 5000000000ull;
    agw_lb_begin(lb, s);
    agw_lb_end(lb, s, AGW_LB_FAIL_AUTH, 0, 30000, 1, now);
    assert_int_equal(agw_lb_unhealthy_reason(s), AGW_LB_REASON_AUTH_REJECTED);
    assert_int_equal(atomic_load(&s->failures), 1);
    assert_false(agw_lb_usable(s, now + 3600000000000ull));
    agw_lb_probe_result(s, AGW_LB_REASON_NONE, now);
    assert_true(agw_lb_usable(s, now));
    agw_lb_slot *t = agw_lb_slot_of(lb, AGW_STR_LIT("revoked-no-probes"));
    agw_lb_end(lb, t, AGW_LB_FAIL_AUTH, 0, 30000, 0, now);
    assert_int_equal(agw_lb_unhealthy_reason(t), AGW_LB_REASON_NONE);
    assert_int_equal(atomic_load(&t->failures), 1);
    assert_false(agw_lb_usable(t, now));
    assert_true(agw_lb_usable(t, now + 30000000000ull));
}

static void test_round_robin_exact(void **state)
{
    agw_lb *lb = *state;
    agw_lb_candidate c[4] = { { AGW_STR_LIT("a"), 1, NULL }, { AGW_STR_LIT("b"), 1, NULL },
                              { AGW_STR_LIT("c"), 1, NULL }, { AGW_STR_LIT("d"), 1, NULL } };
    size_t count[4] = { 0 }, order[4];
    for (int i = 0; i < 400; i++) {
        order_by(lb, AGW_LB_ROUND_ROBIN, c, 4, 0, 0, order);
        count[order[0]]++;
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(count[i], 100);
    /* another set has its own counter */
    order_by(lb, AGW_LB_ROUND_ROBIN, c, 3, 0, 0, order);
    assert_int_equal(order[0], 0);
    assert_int_equal(order[1], 1);
}

static void test_weighted(void **state)
{
    agw_lb *lb = *state;
    agw_lb_candidate c[3] = { { AGW_STR_LIT("a"), 1, NULL }, { AGW_STR_LIT("b"), 3, NULL },
                              { AGW_STR_LIT("z"), 0, NULL } };
    size_t count[3] = { 0 }, order[3];
    uint64_t seed = 42;
    for (int i = 0; i < 40000; i++) {
        order_by(lb, AGW_LB_WEIGHTED, c, 3, 0, seed++ * 0x9e3779b97f4a7c15ull, order);
        count[order[0]]++;
        assert_int_equal(order[2], 2); /* weight 0 only last */
        assert_true(order[0] != order[1]);
    }
    /* p = 0.25, n = 40000: sd = 0.22 %, so +-1.5 % is about 7 sd */
    assert_true(count[0] > 9400 && count[0] < 10600);
    assert_int_equal(count[2], 0);
}

static void test_priority_and_least_used(void **state)
{
    agw_lb *lb = *state;
    agw_lb_slot *sa = agw_lb_slot_of(lb, AGW_STR_LIT("a"));
    agw_lb_slot *sb = agw_lb_slot_of(lb, AGW_STR_LIT("b"));
    agw_lb_candidate c[3] = { { AGW_STR_LIT("a"), 10, sa }, { AGW_STR_LIT("b"), 50, sb },
                              { AGW_STR_LIT("c"), 10, NULL } };
    size_t order[3];
    order_by(lb, AGW_LB_PRIORITY, c, 3, 0, 0, order);
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 0); /* equal weights keep their order */
    assert_int_equal(order[2], 2);
    agw_lb_begin(lb, sa);
    agw_lb_begin(lb, sb);
    agw_lb_begin(lb, sb);
    order_by(lb, AGW_LB_LEAST_USED, c, 3, 0, 0, order);
    assert_int_equal(order[0], 2);
    assert_int_equal(order[1], 0);
    assert_int_equal(order[2], 1);
}

/* The share of draws that put candidate 0 first. */
static double first_share(agw_lb *lb, const agw_lb_candidate *c, uint64_t now)
{
    size_t order[2], hits = 0;
    for (uint64_t i = 0; i < 20000; i++) {
        order_by(lb, AGW_LB_SMART, c, 2, now, i * 0x9e3779b97f4a7c15ull + 7, order);
        hits += order[0] == 0;
    }
    return hits / 20000.0;
}

static void test_smart(void **state)
{
    agw_lb *lb = *state;
    agw_lb_slot *sa = agw_lb_slot_of(lb, AGW_STR_LIT("a"));
    agw_lb_slot *sb = agw_lb_slot_of(lb, AGW_STR_LIT("b"));
    agw_lb_candidate c[2] = { { AGW_STR_LIT("a"), 100, sa }, { AGW_STR_LIT("b"), 100, sb } };
    uint64_t now = 10000000000ull;
    /* neutral: equal scores, an even split */
    assert_true(smart_score(&c[0], now) == 10000.0);
    double f = first_share(lb, c, now);
    assert_true(f > 0.47 && f < 0.53);
    agw_lb_begin(lb, sa);
    agw_lb_end(lb, sa, AGW_LB_FAIL_429, 0, 0, 0, now);
    /* one recent 429: 100 * 100 / 11 = 909, so a is first 909 / 10909 = 8.3 % */
    double s = smart_score(&c[0], now);
    assert_true(s > 909 && s < 910);
    f = first_share(lb, c, now);
    assert_true(f > 0.07 && f < 0.10);
    /* after ten half-lives the 429 is forgotten; a slow b (EWMA 900 ms)
     * scores 10000 / 10 = 1000 against a's ~9990: a first ~91 % */
    agw_lb_end(lb, sb, AGW_LB_OK, 900000, 0, 0, now);
    uint64_t later = now + 10ull * AGW_LB_HALF_LIFE_MS * 1000000ull;
    s = smart_score(&c[1], later);
    assert_true(s > 999 && s < 1001);
    f = first_share(lb, c, later);
    assert_true(f > 0.89 && f < 0.93);
    /* the half-life is a setting */
    agw_lb_set_half_life(1000);
    agw_lb_end(lb, sa, AGW_LB_FAIL_5XX, 0, 0, 0, later);
    s = smart_score(&c[0], later + 1000000000ull);
    assert_true(s > 10000.0 / 6.1 && s < 10000.0 / 5.9); /* 1 + 10 * 0.5 */
    agw_lb_set_half_life(0);
}

/* ---- a request's candidates (agw_lb_order_candidates) ---- */

static agw_config *parse_cfg(const char *text)
{
    agw_config *cfg = NULL;
    char err[AGW_ERR_LEN] = "";
    if (agw_config_parse(text, "/tmp", &cfg, err, sizeof err) != AGW_OK)
        fail_msg("config: %s", err);
    return cfg;
}

/* The ordered candidates' provider names joined by spaces, the first `tries`
 * of them before a '|'. */
static void expect_order(agw_lb *lb, const agw_config *cfg, agw_lb_strategy strategy,
                         agw_proto client, size_t max_attempts, uint64_t now, const char *want)
{
    agw_route_set set;
    assert_int_equal(agw_route_candidates(cfg, AGW_STR_LIT("m"), AGW_PROVIDER_OPENAI, NULL, &set),
                     AGW_OK);
    size_t tries = agw_lb_order_candidates(lb, strategy, client, &set, max_attempts, now);
    char got[256] = "";
    for (size_t i = 0; i < set.n; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s%s", i ? " " : "",
                 i == tries ? "| " : "", set.r[i].provider->name);
    assert_string_equal(got, want);
}

static void test_order_candidates(void **state)
{
    agw_lb *lb = *state;
    agw_config *cfg = parse_cfg("providers = (\n"
                                " { name = \"a1\"; type = \"anthropic\"; models = [\"m\"]; },\n"
                                " { name = \"o1\"; type = \"openai\"; models = [\"m\"]; },\n"
                                " { name = \"o2\"; type = \"openai\"; models = [\"m\"]; },\n"
                                " { name = \"a2\"; type = \"anthropic\"; models = [\"m\"]; }\n"
                                ");\n");
    uint64_t now = 5000000000ull;
    /* The client's protocol first, then the other; priority keeps the
     * config order inside each group. */
    expect_order(lb, cfg, AGW_LB_PRIORITY, AGW_PROTO_OPENAI, 8, now, "o1 o2 a1 a2");
    expect_order(lb, cfg, AGW_LB_PRIORITY, AGW_PROTO_ANTHROPIC, 8, now, "a1 a2 o1 o2");
    /* max_attempts bounds the tries, not the list. */
    expect_order(lb, cfg, AGW_LB_PRIORITY, AGW_PROTO_OPENAI, 3, now, "o1 o2 a1 | a2");
    /* A provider cooling down goes after every usable one, whatever its protocol. */
    agw_lb_end(lb, agw_lb_slot_of(lb, AGW_STR_LIT("o1")), AGW_LB_FAIL_5XX, 0, 30000, 0, now);
    expect_order(lb, cfg, AGW_LB_PRIORITY, AGW_PROTO_OPENAI, 8, now, "o2 a1 a2 o1");
    /* Round-robin rotates inside the group across calls. */
    char first[2][8];
    for (int i = 0; i < 2; i++) {
        agw_route_set set;
        assert_int_equal(agw_route_candidates(cfg, AGW_STR_LIT("m"), AGW_PROVIDER_OPENAI, NULL,
                                              &set),
                         AGW_OK);
        (void)agw_lb_order_candidates(lb, AGW_LB_ROUND_ROBIN, AGW_PROTO_ANTHROPIC, &set, 8, now);
        snprintf(first[i], sizeof first[i], "%s", set.r[0].provider->name);
        assert_string_equal(set.r[2].provider->name, "o2");
        assert_string_equal(set.r[3].provider->name, "o1");
    }
    assert_string_not_equal(first[0], first[1]);
    agw_config_free(cfg);

    /* Kiro speaks neither client protocol: always in the other group, after
     * the route's preferred type (OpenAI here) under priority (new names: o1
     * above is cooling down). */
    cfg = parse_cfg("providers = (\n"
                    " { name = \"k3\"; type = \"kiro\"; base_url = \"http://127.0.0.1:1\";"
                    "   models = [\"m\"]; },\n"
                    " { name = \"o3\"; type = \"openai\"; models = [\"m\"]; },\n"
                    " { name = \"a3\"; type = \"anthropic\"; models = [\"m\"]; }\n"
                    ");\n");
    expect_order(lb, cfg, AGW_LB_PRIORITY, AGW_PROTO_OPENAI, 8, now, "o3 k3 a3");
    expect_order(lb, cfg, AGW_LB_PRIORITY, AGW_PROTO_ANTHROPIC, 8, now, "a3 o3 k3");
    agw_config_free(cfg);
    /* No shared state: neutral statistics, the same grouping. */
    cfg = parse_cfg("providers = (\n"
                    " { name = \"a1\"; type = \"anthropic\"; models = [\"m\"]; },\n"
                    " { name = \"o1\"; type = \"openai\"; models = [\"m\"]; }\n"
                    ");\n");
    expect_order(NULL, cfg, AGW_LB_SMART, AGW_PROTO_OPENAI, 8, now, "o1 a1");
    agw_config_free(cfg);
}

static void test_strategy_of(void **state)
{
    (void)state;
    agw_config *cfg = parse_cfg("defaults = { lb_strategy = \"least-used\"; };\n");
    assert_int_equal(agw_lb_strategy_of(cfg), AGW_LB_LEAST_USED);
    agw_config_free(cfg);
    cfg = parse_cfg("");
    assert_int_equal(agw_lb_strategy_of(cfg), AGW_LB_SMART);
    agw_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bind_too_small),
        cmocka_unit_test(test_decay_half_life),
        cmocka_unit_test(test_ewma),
        cmocka_unit_test_setup_teardown(test_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reclaim_removed_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reclaim_makes_room_for_renames, setup, teardown),
        cmocka_unit_test(test_another_boot_resets_the_lb),
        cmocka_unit_test_setup_teardown(test_cooldown_and_health, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_refusal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_robin_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_weighted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_priority_and_least_used, setup, teardown),
        cmocka_unit_test_setup_teardown(test_smart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_candidates, setup, teardown),
        cmocka_unit_test(test_strategy_of),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
