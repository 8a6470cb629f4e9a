/* Unit tests for lib/health: the probe's verdicts against a test server
 * (2xx and other 4xx pass, 401/403 fail as a rejected key, 5xx and a refused
 * connection fail), the URL and credential it uses, the model list it reads
 * on the way (Anthropic's pages included), and that a verdict and its reason
 * reach the provider's slot. */
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
static char paths[8][600]; /* every path asked, in order */
static int n_paths;

/* The body of a 2xx: a model list by path (Anthropic's in three pages of
 * two after ?limit=1000), {} elsewhere. */
static const char *body_for(const char *path)
{
    if (strcmp(path, "/v1/models") == 0 || strcmp(path, "/v1/models?limit=1000") == 0)
        return strstr(last_head, "x-api-key")
                   ? "{\"data\":[{\"type\":\"model\",\"id\":\"claude-a\"},{\"id\":\"claude-b\"}],"
                     "\"has_more\":true,\"first_id\":\"claude-a\",\"last_id\":\"claude-b\"}"
                   : "{\"object\":\"list\",\"data\":[{\"id\":\"gpt-4o\",\"object\":\"model\"},"
                     "{\"id\":\"bad\\u0001id\"},{\"object\":\"model\"},{\"id\":\"o3\"}]}";
    if (strcmp(path, "/v1/models?limit=1000&after_id=claude-b") == 0)
        return "{\"data\":[{\"id\":\"claude-c\"},{\"id\":\"claude d/e\"}],\"has_more\":true,"
               "\"last_id\":\"claude d/e\"}";
    if (strcmp(path, "/v1/models?limit=1000&after_id=claude%20d%2Fe") == 0)
        return "{\"data\":[{\"id\":\"claude-f\"}],\"has_more\":false,\"last_id\":\"claude-f\"}";
    return "{}";
}

static int handle(testsrv *s, int fd, const testsrv_req *rq)
{
    pthread_mutex_lock(&s->mu);
    snprintf(last_path, sizeof last_path, "%s %s", rq->method, rq->path);
    snprintf(last_head, sizeof last_head, "%s", rq->head);
    if (n_paths < 8)
        snprintf(paths[n_paths++], sizeof paths[0], "%s", rq->path);
    int st = status_to_send;
    const char *body = st / 100 == 2 ? body_for(rq->path) : "{}";
    pthread_mutex_unlock(&s->mu);
    char buf[1024];
    snprintf(buf, sizeof buf,
             "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
             st, strlen(body), body);
    testsrv_send_str(fd, buf);
    return TESTSRV_KEEP;
}

/* probe() without the list. */
static agw_lb_reason probe_only(agw_upstream *u, const agw_provider_cfg *p)
{
    agw_provider_models l = AGW_PROVIDER_MODELS_INIT;
    int listed;
    agw_lb_reason why = probe(u, p, 5000, &l, &listed);
    agw_provider_models_free(&l);
    return why;
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

/* A test server and an OpenAI provider at it (base URL in `url`). */
static agw_upstream *start_openai(testsrv *s, char url[128], agw_provider_cfg *p)
{
    assert_int_equal(testsrv_start(s, handle), 0);
    snprintf(url, 128, "http://127.0.0.1:%d/v1", s->port);
    provider(p, AGW_PROVIDER_OPENAI, url);
    return agw_upstream_new();
}

/* A server that answers a byte every 200 ms, under any idle timeout, for up
 * to 20 s, or until the prober hangs up. */
static int drip(testsrv *s, int fd, const testsrv_req *rq)
{
    (void)s, (void)rq;
    if (testsrv_send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Content-Length: 100000\r\n\r\n") != 0)
        return TESTSRV_CLOSE;
    for (int i = 0; i < 100; i++) {
        if (testsrv_send_str(fd, " ") != 0)
            break;
        usleep(200 * 1000);
    }
    return TESTSRV_CLOSE;
}

/* The probe's total timeout bounds a provider that drips its answer: the
 * probe fails at the deadline instead of holding the prober for as long as
 * the server keeps sending. */
static void test_probe_total_timeout(void **state)
{
    (void)state;
    testsrv s;
    assert_int_equal(testsrv_start(&s, drip), 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", s.port);
    agw_provider_cfg p;
    provider(&p, AGW_PROVIDER_OPENAI, url);
    agw_upstream *u = agw_upstream_new();
    agw_provider_models l = AGW_PROVIDER_MODELS_INIT;
    int listed;
    uint64_t t0 = agw_mono_ms();
    assert_int_equal(probe(u, &p, 1000, &l, &listed), AGW_LB_REASON_PROBE_FAILED);
    uint64_t took = agw_mono_ms() - t0;
    assert_false(listed);
    /* The deadline, not the 20 s the server would go on for. */
    if (took < 900 || took > 5000)
        fail_msg("the probe took %llu ms with a 1000 ms timeout", (unsigned long long)took);
    agw_upstream_free(u);
    testsrv_stop(&s);
}

static void test_probe_verdicts(void **state)
{
    (void)state;
    testsrv s;
    char url[128];
    agw_provider_cfg p;
    agw_upstream *u = start_openai(&s, url, &p);
    static const int statuses[] = { 200, 401, 403, 404, 429, 500, 503 };
    static const agw_lb_reason want[] = {
        AGW_LB_REASON_NONE,         AGW_LB_REASON_AUTH_REJECTED, AGW_LB_REASON_AUTH_REJECTED,
        AGW_LB_REASON_NONE,         AGW_LB_REASON_NONE,          AGW_LB_REASON_PROBE_FAILED,
        AGW_LB_REASON_PROBE_FAILED,
    };
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        pthread_mutex_lock(&s.mu);
        status_to_send = statuses[i];
        pthread_mutex_unlock(&s.mu);
        assert_int_equal(probe_only(u, &p), want[i]);
    }
    assert_string_equal(last_path, "GET /v1/models");
    assert_non_null(strstr(last_head, "Bearer sk-probe"));
    /* Anthropic: /v1/models under a base URL without /v1, with x-api-key */
    snprintf(url, sizeof url, "http://127.0.0.1:%d", s.port);
    provider(&p, AGW_PROVIDER_ANTHROPIC, url);
    pthread_mutex_lock(&s.mu);
    status_to_send = 200;
    pthread_mutex_unlock(&s.mu);
    assert_int_equal(probe_only(u, &p), AGW_LB_REASON_NONE);
    assert_string_equal(last_path, "GET /v1/models?limit=1000&after_id=claude%20d%2Fe");
    assert_non_null(strstr(last_head, "sk-probe"));
    testsrv_stop(&s);
    /* nothing listens any more: refused */
    assert_int_equal(probe_only(u, &p), AGW_LB_REASON_PROBE_FAILED);
    agw_upstream_free(u);
}

static void test_probe_reads_the_model_list(void **state)
{
    (void)state;
    testsrv s;
    char url[128];
    agw_provider_cfg p;
    agw_upstream *u = start_openai(&s, url, &p);
    agw_provider_models l = AGW_PROVIDER_MODELS_INIT;
    int listed;
    /* OpenAI: one page; entries without a usable id are skipped */
    status_to_send = 200;
    assert_int_equal(probe(u, &p, 5000, &l, &listed), AGW_LB_REASON_NONE);
    assert_true(listed);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.ids[0], "gpt-4o");
    assert_string_equal(l.ids[1], "o3");
    agw_provider_models_free(&l);
    /* a 404 passes the probe but gives no list */
    status_to_send = 404;
    assert_int_equal(probe(u, &p, 5000, &l, &listed), AGW_LB_REASON_NONE);
    assert_false(listed);
    assert_int_equal(l.n, 0);
    /* Anthropic: has_more / last_id / after_id over three pages */
    snprintf(url, sizeof url, "http://127.0.0.1:%d", s.port);
    provider(&p, AGW_PROVIDER_ANTHROPIC, url);
    status_to_send = 200;
    n_paths = 0;
    assert_int_equal(probe(u, &p, 5000, &l, &listed), AGW_LB_REASON_NONE);
    assert_true(listed);
    assert_int_equal(n_paths, 3);
    assert_string_equal(paths[0], "/v1/models?limit=1000");
    assert_string_equal(paths[1], "/v1/models?limit=1000&after_id=claude-b");
    assert_int_equal(l.n, 5);
    assert_string_equal(l.ids[3], "claude d/e");
    assert_string_equal(l.ids[4], "claude-f");
    assert_null(l.next);
    agw_provider_models_free(&l);
    testsrv_stop(&s);
    agw_upstream_free(u);
}

static void test_verdict_reaches_the_slot(void **state)
{
    (void)state;
    void *region = calloc(1, AGW_LB_REGION_BYTES);
    agw_lb lb;
    assert_int_equal(agw_lb_bind(&lb, region, AGW_LB_REGION_BYTES), AGW_OK);
    agw_lb_slot *s = agw_lb_slot_of(&lb, AGW_STR_LIT("probe-me"));
    agw_lb_probe_result(s, AGW_LB_REASON_AUTH_REJECTED, 1);
    assert_false(agw_lb_usable(s, 2));
    assert_int_equal(agw_lb_unhealthy_reason(s), AGW_LB_REASON_AUTH_REJECTED);
    assert_string_equal(agw_lb_reason_name(agw_lb_unhealthy_reason(s)), "auth_rejected");
    agw_lb_end(&lb, s, AGW_LB_FAIL_5XX, 0, 60000, 1, 2);
    agw_lb_probe_result(s, AGW_LB_REASON_NONE, 3);
    assert_true(agw_lb_usable(s, 4)); /* a passing probe clears the cooldown too */
    assert_int_equal(agw_lb_unhealthy_reason(s), AGW_LB_REASON_NONE);
    assert_int_equal(atomic_load(&s->probes), 2);
    agw_lb_probe_result(s, AGW_LB_REASON_PROBE_FAILED, 5);
    assert_string_equal(agw_lb_reason_name(agw_lb_unhealthy_reason(s)), "probe_failed");
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
        cmocka_unit_test(test_probe_total_timeout),
        cmocka_unit_test(test_probe_reads_the_model_list),
        cmocka_unit_test(test_verdict_reaches_the_slot),
        cmocka_unit_test(test_disabled_starts_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
