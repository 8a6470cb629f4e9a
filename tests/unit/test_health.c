/* Unit tests for lib/health: the probe's verdicts against a test server
 * (2xx and 4xx pass, 5xx and a refused connection fail), the URL and
 * credential it uses, and that a verdict reaches the provider's slot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* The module itself, so the tests reach its file-local functions. */
#include "route/health.c"
#include "testsrv.h"

static int status_to_send = 200;
static char last_path[600];
static char last_head[2048];

static int handle(testsrv *s, int fd, const testsrv_req *rq)
{
    pthread_mutex_lock(&s->mu);
    snprintf(last_path, sizeof last_path, "%s %s", rq->method, rq->path);
    snprintf(last_head, sizeof last_head, "%s", rq->head);
    int st = status_to_send;
    pthread_mutex_unlock(&s->mu);
    char buf[256];
    snprintf(buf, sizeof buf,
             "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", st);
    testsrv_send_str(fd, buf);
    return TESTSRV_KEEP;
}

static void provider(agw_provider_cfg *p, agw_provider_type t, const char *url)
{
    memset(p, 0, sizeof *p);
    p->name = (char *)"probe-me";
    p->type = t;
    p->base_url = (char *)url;
    p->api_key = (char *)"sk-probe";
    p->enabled = 1;
}

static void test_probe_verdicts(void **state)
{
    (void)state;
    testsrv s;
    assert_int_equal(testsrv_start(&s, handle), 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", s.port);
    agw_provider_cfg p;
    provider(&p, AGW_PROVIDER_OPENAI, url);
    agw_upstream *u = agw_upstream_new();
    static const int statuses[] = { 200, 401, 404, 429, 500, 503 };
    static const int pass[] = { 1, 1, 1, 1, 0, 0 };
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        pthread_mutex_lock(&s.mu);
        status_to_send = statuses[i];
        pthread_mutex_unlock(&s.mu);
        assert_int_equal(probe(u, &p), pass[i]);
    }
    assert_string_equal(last_path, "GET /v1/models");
    assert_non_null(strstr(last_head, "Bearer sk-probe"));
    /* Anthropic: /v1/models under a base URL without /v1, with x-api-key */
    snprintf(url, sizeof url, "http://127.0.0.1:%d", s.port);
    provider(&p, AGW_PROVIDER_ANTHROPIC, url);
    pthread_mutex_lock(&s.mu);
    status_to_send = 200;
    pthread_mutex_unlock(&s.mu);
    assert_int_equal(probe(u, &p), 1);
    assert_string_equal(last_path, "GET /v1/models");
    assert_non_null(strstr(last_head, "sk-probe"));
    testsrv_stop(&s);
    /* nothing listens any more: refused */
    assert_int_equal(probe(u, &p), 0);
    agw_upstream_free(u);
}

static void test_verdict_reaches_the_slot(void **state)
{
    (void)state;
    void *region = calloc(1, AGW_LB_REGION_BYTES);
    agw_lb lb;
    assert_int_equal(agw_lb_bind(&lb, region, AGW_LB_REGION_BYTES), AGW_OK);
    agw_lb_slot *s = agw_lb_slot_of(&lb, AGW_STR_LIT("probe-me"));
    agw_lb_probe_result(s, 0, 1);
    assert_false(agw_lb_usable(s, 2));
    agw_lb_end(s, AGW_LB_FAIL_5XX, 0, 60000, 1, 2);
    agw_lb_probe_result(s, 1, 3);
    assert_true(agw_lb_usable(s, 4)); /* a passing probe clears the cooldown too */
    assert_int_equal(atomic_load(&s->probes), 2);
    free(region);
}

static void test_disabled_starts_nothing(void **state)
{
    (void)state;
    agw_config *cfg = agw_config_defaults("/tmp");
    cfg->defaults.health_check_enabled = 0;
    agw_health *h = (agw_health *)1;
    char err[AGW_ERR_LEN];
    assert_int_equal(agw_health_start(cfg, NULL, NULL, &h, err, sizeof err), AGW_OK);
    assert_null(h);
    agw_health_stop(NULL);
    agw_config_free(cfg);
}

int main(void)
{
    if (agw_upstream_global_init() != AGW_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_verdicts),
        cmocka_unit_test(test_verdict_reaches_the_slot),
        cmocka_unit_test(test_disabled_starts_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
