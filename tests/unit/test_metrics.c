/* Unit tests for lib/metrics: label slots claimed once per label set (also
 * when processes race), the overflow set when a table is full or a name too
 * long, histogram buckets, and the text exposition. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "metrics/metrics.c"

static agw_metrics *fresh(void)
{
    /* Shared anonymous memory, so forked children write to the same cells. */
    void *p = mmap(NULL, sizeof(agw_metrics), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    assert_true(p != MAP_FAILED);
    return p;
}

static void done(agw_metrics *m)
{
    munmap(m, sizeof *m);
}

static char *render(agw_metrics *m, const agw_config *cfg)
{
    agw_buf b = AGW_BUF_INIT(AGW_LIMIT_UPSTREAM_BODY);
    assert_int_equal(agw_metrics_render(m, cfg, 7, 1, &b), AGW_OK);
    size_t n;
    char *s = agw_buf_detach(&b, &n);
    return s ? s : xstrdup("");
}

static size_t count_lines(const char *text, const char *prefix)
{
    size_t n = 0, len = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        n += strncmp(p, prefix, len) == 0;
    return n;
}

static void claims_one_slot_per_label_set(void **state)
{
    (void)state;
    agw_metrics *m = fresh();
    agw_metrics_series *a = agw_metrics_series_slot(m, AGW_STR_LIT("p1"), AGW_STR_LIT("gpt-4o"));
    agw_metrics_series *b = agw_metrics_series_slot(m, AGW_STR_LIT("p1"), AGW_STR_LIT("gpt-4o"));
    agw_metrics_series *c = agw_metrics_series_slot(m, AGW_STR_LIT("p2"), AGW_STR_LIT("gpt-4o"));
    /* "p1"+"gpt-4o" and "p1g"+"pt-4o" must not be the same label set */
    agw_metrics_series *d = agw_metrics_series_slot(m, AGW_STR_LIT("p1g"), AGW_STR_LIT("pt-4o"));
    assert_ptr_equal(a, b);
    assert_ptr_not_equal(a, c);
    assert_ptr_not_equal(a, d);
    assert_string_equal(a->provider, "p1");
    assert_string_equal(a->model, "gpt-4o");
    assert_ptr_equal(agw_metrics_provider_slot(m, AGW_STR_LIT("p1")),
                     agw_metrics_provider_slot(m, AGW_STR_LIT("p1")));
    assert_int_equal(atomic_load(&m->overflows), 0);
    done(m);
}

static void racing_processes_claim_once(void **state)
{
    (void)state;
    agw_metrics *m = fresh();
    enum { KIDS = 4, SETS = 200, ROUNDS = 5 };
    for (int k = 0; k < KIDS; k++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            for (int r = 0; r < ROUNDS; r++)
                for (int i = 0; i < SETS; i++) {
                    char model[32];
                    snprintf(model, sizeof model, "m%d", i);
                    agw_metrics_count_request(
                        agw_metrics_series_slot(m, AGW_STR_LIT("p"), agw_str_c(model)), 200);
                }
            _exit(0);
        }
    }
    for (int k = 0; k < KIDS; k++) {
        int st;
        assert_true(wait(&st) > 0);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    size_t used = 0;
    uint64_t total = 0;
    for (size_t i = 0; i < AGW_METRICS_SERIES; i++)
        if (atomic_load(&m->series[i].state)) {
            used++;
            total += atomic_load(&m->series[i].requests[2]);
        }
    assert_int_equal(used, SETS);
    assert_int_equal(total, KIDS * SETS * ROUNDS);
    done(m);
}

static void full_table_and_long_names_overflow(void **state)
{
    (void)state;
    agw_metrics *m = fresh();
    for (unsigned i = 0; i < AGW_METRICS_SERIES; i++) {
        char model[32];
        snprintf(model, sizeof model, "m%u", i);
        assert_ptr_not_equal(agw_metrics_series_slot(m, AGW_STR_LIT("p"), agw_str_c(model)),
                             &m->overflow_series);
    }
    assert_ptr_equal(agw_metrics_series_slot(m, AGW_STR_LIT("p"), AGW_STR_LIT("one-more")),
                     &m->overflow_series);
    /* an existing set is still found in a full table */
    assert_ptr_not_equal(agw_metrics_series_slot(m, AGW_STR_LIT("p"), AGW_STR_LIT("m7")),
                         &m->overflow_series);
    char longname[AGW_METRICS_MODEL_MAX + 8];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    agw_metrics *m2 = fresh();
    assert_ptr_equal(agw_metrics_series_slot(m2, AGW_STR_LIT("p"), agw_str_c(longname)),
                     &m2->overflow_series);
    assert_ptr_equal(agw_metrics_series_slot(m2, AGW_STR_LIT("other"), AGW_STR_LIT("other")),
                     &m2->overflow_series);
    assert_int_equal(atomic_load(&m2->overflows), 1); /* the long name only */
    for (unsigned i = 0; i < AGW_METRICS_PROVIDERS; i++) {
        char name[32];
        snprintf(name, sizeof name, "prov%u", i);
        assert_ptr_not_equal(agw_metrics_provider_slot(m2, agw_str_c(name)),
                             &m2->overflow_provider);
    }
    assert_ptr_equal(agw_metrics_provider_slot(m2, AGW_STR_LIT("late")), &m2->overflow_provider);
    done(m);
    done(m2);
}

/* Every model name the gateway accepts (AGW_CONFIG_MODEL_MAX bytes) gets its
 * own series, whole; one byte more is the overflow set. Provider names alike
 * at AGW_CONFIG_NAME_MAX. */
static void names_at_the_gateway_limits(void **state)
{
    (void)state;
    agw_metrics *m = fresh();
    char model[AGW_CONFIG_MODEL_MAX + 2], prov[AGW_CONFIG_NAME_MAX + 2];
    memset(model, 'm', sizeof model);
    memset(prov, 'p', sizeof prov);
    agw_str longest = { model, AGW_CONFIG_MODEL_MAX }, over = { model, AGW_CONFIG_MODEL_MAX + 1 };
    agw_str plong = { prov, AGW_CONFIG_NAME_MAX }, pover = { prov, AGW_CONFIG_NAME_MAX + 1 };
    agw_metrics_series *s = agw_metrics_series_slot(m, plong, longest);
    assert_ptr_not_equal(s, &m->overflow_series);
    assert_int_equal(strlen(s->model), AGW_CONFIG_MODEL_MAX);
    assert_memory_equal(s->model, model, AGW_CONFIG_MODEL_MAX);
    assert_int_equal(strlen(s->provider), AGW_CONFIG_NAME_MAX);
    assert_ptr_equal(agw_metrics_series_slot(m, plong, longest), s); /* found again */
    assert_ptr_equal(agw_metrics_series_slot(m, plong, over), &m->overflow_series);
    assert_ptr_equal(agw_metrics_series_slot(m, pover, longest), &m->overflow_series);
    assert_ptr_not_equal(agw_metrics_provider_slot(m, plong), &m->overflow_provider);
    assert_ptr_equal(agw_metrics_provider_slot(m, pover), &m->overflow_provider);
    done(m);
}

static void histogram_buckets(void **state)
{
    (void)state;
    agw_metrics *m = fresh();
    agw_metrics_hist *h = &m->overhead;
    agw_metrics_observe(h, AGW_HIST_OVERHEAD, 0);       /* <= 50 us */
    agw_metrics_observe(h, AGW_HIST_OVERHEAD, 50);      /* on the bound: same bucket */
    agw_metrics_observe(h, AGW_HIST_OVERHEAD, 51);      /* next */
    agw_metrics_observe(h, AGW_HIST_OVERHEAD, 10000000); /* +Inf */
    assert_int_equal(atomic_load(&h->bucket[0]), 2);
    assert_int_equal(atomic_load(&h->bucket[1]), 1);
    assert_int_equal(atomic_load(&h->bucket[AGW_METRICS_BUCKETS]), 1);
    assert_int_equal(atomic_load(&h->sum_us), 10000101);
    for (size_t i = 1; i < AGW_METRICS_BUCKETS; i++) {
        assert_true(bounds_us[AGW_HIST_LATENCY][i] > bounds_us[AGW_HIST_LATENCY][i - 1]);
        assert_true(bounds_us[AGW_HIST_OVERHEAD][i] > bounds_us[AGW_HIST_OVERHEAD][i - 1]);
    }
    char s[32];
    seconds(s, sizeof s, 50);
    assert_string_equal(s, "0.00005");
    seconds(s, sizeof s, 2500000);
    assert_string_equal(s, "2.5");
    seconds(s, sizeof s, 300000000);
    assert_string_equal(s, "300");
    done(m);
}

static void exposition_format(void **state)
{
    (void)state;
    agw_metrics *m = fresh();
    char *names[2] = { "alpha", "beta" };
    agw_provider_cfg provs[2];
    memset(provs, 0, sizeof provs);
    provs[0].name = names[0];
    provs[0].enabled = 1;
    provs[1].name = names[1];
    provs[1].enabled = 1;
    agw_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.providers = provs;
    cfg.n_providers = 2;

    agw_metrics_series *s = agw_metrics_series_slot(m, AGW_STR_LIT("alpha"),
                                                    AGW_STR_LIT("we\"ird\\name"));
    agw_metrics_count_request(s, 200);
    agw_metrics_count_request(s, 200);
    agw_metrics_count_request(s, 429);
    agw_metrics_count_request(s, 0);
    agw_metrics_count_tokens(s, AGW_TOKENS_INPUT, 12);
    agw_metrics_count_tokens(s, AGW_TOKENS_CACHE_WRITE, 3);
    agw_metrics_observe(&s->duration, AGW_HIST_LATENCY, 7000);
    agw_metrics_upstream_error(m, AGW_STR_LIT("alpha"), AGW_UPERR_STATUS_429);
    agw_metrics_failover(m, "alpha");
    agw_metrics_set_health(m, "beta", 0);

    char *t = render(m, &cfg);
    const char *families[] = {
        "antigateway_requests_total counter",
        "antigateway_request_duration_seconds histogram",
        "antigateway_tokens_total counter",
        "antigateway_provider_health gauge",
        "antigateway_rate_limit_hits_total counter",
        "antigateway_gateway_overhead_seconds histogram",
        "antigateway_time_to_first_token_seconds histogram",
        "antigateway_streams_in_flight gauge",
        "antigateway_failovers_total counter",
        "antigateway_upstream_errors_total counter",
    };
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        char want[128];
        snprintf(want, sizeof want, "# TYPE %s\n", families[i]);
        assert_non_null(strstr(t, want));
    }
    assert_non_null(strstr(t, "antigateway_requests_total{provider=\"alpha\",model=\"we\\\"ird\\\\"
                              "name\",status=\"2xx\"} 2\n"));
    assert_non_null(strstr(t, ",status=\"4xx\"} 1\n"));
    assert_non_null(strstr(t, ",status=\"none\"} 1\n"));
    assert_non_null(strstr(t, ",type=\"input\"} 12\n"));
    assert_non_null(strstr(t, ",type=\"cache_write\"} 3\n"));
    assert_null(strstr(t, ",type=\"output\"}"));
    assert_non_null(strstr(t, ",le=\"0.005\"} 0\n"));
    assert_non_null(strstr(t, ",le=\"0.01\"} 1\n"));
    assert_non_null(strstr(t, ",le=\"+Inf\"} 1\n"));
    assert_non_null(strstr(t, "name\"} 0.007000\n")); /* _sum */
    assert_non_null(strstr(t, "antigateway_provider_health{provider=\"alpha\"} 1\n"));
    assert_non_null(strstr(t, "antigateway_provider_health{provider=\"beta\"} 0\n"));
    assert_non_null(strstr(t, "antigateway_rate_limit_hits_total 7\n"));
    assert_non_null(strstr(t, "antigateway_streams_in_flight 1\n"));
    assert_non_null(strstr(t, "antigateway_failovers_total{provider=\"alpha\"} 1\n"));
    assert_non_null(strstr(t, "antigateway_upstream_errors_total{provider=\"alpha\","
                              "class=\"status_429\"} 1\n"));
    assert_non_null(strstr(t, "antigateway_gateway_overhead_seconds_count 0\n"));
    /* one histogram: 17 buckets + sum + count */
    assert_int_equal(count_lines(t, "antigateway_request_duration_seconds_"), 19);
    assert_int_equal(t[strlen(t) - 1], '\n');
    free(t);
    done(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(claims_one_slot_per_label_set),
        cmocka_unit_test(racing_processes_claim_once),
        cmocka_unit_test(full_table_and_long_names_overflow),
        cmocka_unit_test(names_at_the_gateway_limits),
        cmocka_unit_test(histogram_buckets),
        cmocka_unit_test(exposition_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
