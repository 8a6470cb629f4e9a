/* Unit tests for lib/config: every key parsed into its field, defaults, each
 * validation error with its file:line: key: message, path resolution, loading
 * from a file (missing file, @include) and provider lookup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"

/* ---- helpers ---- */

static agw_config *parse_ok(const char *text, const char *base_dir)
{
    agw_config *cfg = NULL;
    char err[AGW_ERR_LEN] = "";
    agw_err e = agw_config_parse(text, base_dir, &cfg, err, sizeof err);
    if (e != AGW_OK)
        fail_msg("parse failed (%d): %s", (int)e, err);
    assert_non_null(cfg);
    return cfg;
}

/* Parses text that must fail with AGW_EINVAL and exactly `want` in err. */
static void expect_error(const char *text, const char *want)
{
    agw_config *cfg = (agw_config *)0x1; /* must be reset to NULL on failure */
    char err[AGW_ERR_LEN];
    memset(err, 'Z', sizeof err);
    agw_err e = agw_config_parse(text, "/base", &cfg, err, sizeof err);
    assert_int_equal(e, AGW_EINVAL);
    assert_null(cfg);
    assert_string_equal(err, want);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* ---- provider type names ---- */

static void test_provider_type_names(void **state)
{
    (void)state;
    assert_string_equal(agw_provider_type_name(AGW_PROVIDER_OPENAI), "openai");
    assert_string_equal(agw_provider_type_name(AGW_PROVIDER_ANTHROPIC), "anthropic");
    assert_string_equal(agw_provider_type_name(AGW_PROVIDER_KIRO), "kiro");
    assert_string_equal(agw_provider_type_name(AGW_PROVIDER_COPILOT), "copilot");
    assert_string_equal(agw_provider_type_name(AGW_PROVIDER_TYPE_COUNT), "unknown");
    assert_string_equal(agw_provider_type_name((agw_provider_type)-1), "unknown");
    for (int t = 0; t < AGW_PROVIDER_TYPE_COUNT; t++)
        assert_int_equal(agw_provider_type_parse(agw_provider_type_name((agw_provider_type)t)), t);
    assert_int_equal(agw_provider_type_parse("OpenAI"), -1);
    assert_int_equal(agw_provider_type_parse("openai "), -1);
    assert_int_equal(agw_provider_type_parse(""), -1);
    assert_int_equal(agw_provider_type_parse(NULL), -1);
}

/* ---- a full config ---- */

static const char full_cfg[] =
    "server = {\n"
    "  log_level = \"debug\";\n"
    "  max_body_bytes = 2097152;\n"
    "  threads = 8;\n"
    "  batch_scheduling = false;\n"
    "  connect_timeout_ms = 1500;\n"
    "  idle_timeout_seconds = 120;\n"
    "  sse_ping_seconds = 15;\n"
    "  stream_commit_ms = 750;\n"
    "  shutdown_grace_seconds = 30;\n"
    "  cors_origins = \"https://a.example,https://b.example\";\n"
    "};\n"
    "auth = { api_key = \"client-key\"; admin_key = \"admin-key\"; };\n"
    "database = { path = \"data/gw.db\"; };\n"
    "defaults = {\n"
    "  provider = \"work-anthropic\";\n"
    "  model = \"gpt-4o\";\n"
    "  lb_strategy = \"round-robin\";\n"
    "  health_check_enabled = false;\n"
    "  health_check_seconds = 30;\n"
    "};\n"
    "tenant = { enabled = true; };\n"
    "secrets = { key_file = \"keys/master.key\"; };\n"
    "providers = (\n"
    "  { name = \"work-openai\"; type = \"openai\"; base_url = \"https://oa.example/v1//\";\n"
    "    api_key = \"sk-1\"; weight = 5; enabled = false;\n"
    "    models = [ \"gpt-4o\", \"gpt-*\" ]; default_model = \"gpt-4o\"; },\n"
    "  { name = \"work-anthropic\"; type = \"anthropic\"; api_key = \"ak\";\n"
    "    models = ( \"claude-*\" ); },\n"
    "  { name = \"k.1_x\"; type = \"kiro\"; base_url = \"http://127.0.0.1:9/\"; weight = 0; },\n"
    "  { name = \"cp\"; type = \"copilot\"; base_url = \"https://cp.example\"; default_model = \"\"; }\n"
    ");\n";

static void test_full_config(void **state)
{
    (void)state;
    agw_config *cfg = parse_ok(full_cfg, "/etc/antigw");
    assert_string_equal(cfg->path, "(string)");
    assert_int_equal(cfg->server.log_level, AGW_LOG_DEBUG);
    assert_int_equal(cfg->server.max_body_bytes, 2097152);
    assert_int_equal(cfg->server.threads, 8);
    assert_int_equal(cfg->server.batch_scheduling, 0);
    assert_int_equal(cfg->server.connect_timeout_ms, 1500);
    assert_int_equal(cfg->server.idle_timeout_s, 120);
    assert_int_equal(cfg->server.sse_ping_s, 15);
    assert_int_equal(cfg->server.stream_commit_ms, 750);
    assert_int_equal(cfg->server.shutdown_grace_s, 30);
    assert_string_equal(cfg->server.cors_origins, "https://a.example,https://b.example");
    assert_string_equal(cfg->auth.api_key, "client-key");
    assert_string_equal(cfg->auth.admin_key, "admin-key");
    assert_string_equal(cfg->database.path, "/etc/antigw/data/gw.db");
    assert_string_equal(cfg->defaults.provider, "work-anthropic");
    assert_string_equal(cfg->defaults.model, "gpt-4o");
    assert_string_equal(cfg->defaults.lb_strategy, "round-robin");
    assert_int_equal(cfg->defaults.health_check_enabled, 0);
    assert_int_equal(cfg->defaults.health_check_seconds, 30);
    assert_int_equal(cfg->tenant.enabled, 1);
    assert_string_equal(cfg->secrets.key_file, "/etc/antigw/keys/master.key");

    assert_int_equal(cfg->n_providers, 4);
    const agw_provider_cfg *p = &cfg->providers[0];
    assert_string_equal(p->name, "work-openai");
    assert_int_equal(p->type, AGW_PROVIDER_OPENAI);
    assert_string_equal(p->base_url, "https://oa.example/v1"); /* slashes trimmed */
    assert_string_equal(p->api_key, "sk-1");
    assert_int_equal(p->weight, 5);
    assert_int_equal(p->enabled, 0);
    assert_int_equal(p->n_models, 2);
    assert_string_equal(p->models[0], "gpt-4o");
    assert_string_equal(p->models[1], "gpt-*");
    assert_string_equal(p->default_model, "gpt-4o");

    p = &cfg->providers[1];
    assert_string_equal(p->name, "work-anthropic");
    assert_int_equal(p->type, AGW_PROVIDER_ANTHROPIC);
    assert_string_equal(p->base_url, "https://api.anthropic.com"); /* the type's default */
    assert_string_equal(p->api_key, "ak");
    assert_int_equal(p->weight, 100);
    assert_int_equal(p->enabled, 1);
    assert_int_equal(p->n_models, 1);
    assert_string_equal(p->models[0], "claude-*");
    assert_null(p->default_model);

    p = &cfg->providers[2];
    assert_string_equal(p->name, "k.1_x");
    assert_int_equal(p->type, AGW_PROVIDER_KIRO);
    assert_string_equal(p->base_url, "http://127.0.0.1:9");
    assert_string_equal(p->api_key, ""); /* absent key: empty, never NULL */
    assert_int_equal(p->weight, 0);
    assert_int_equal(p->n_models, 0);

    p = &cfg->providers[3];
    assert_int_equal(p->type, AGW_PROVIDER_COPILOT);
    assert_string_equal(p->base_url, "https://cp.example");
    assert_null(p->default_model); /* "" means unset */
    agw_config_free(cfg);
}

static void check_defaults(const agw_config *cfg)
{
    assert_int_equal(cfg->server.log_level, AGW_LOG_INFO);
    assert_int_equal(cfg->server.max_body_bytes, 10u << 20);
    assert_int_equal(cfg->server.threads, 16);
    assert_int_equal(cfg->server.batch_scheduling, 1);
    assert_int_equal(cfg->server.connect_timeout_ms, 10000);
    assert_int_equal(cfg->server.idle_timeout_s, 300);
    assert_int_equal(cfg->server.sse_ping_s, 10);
    assert_int_equal(cfg->server.stream_commit_ms, 2000);
    assert_int_equal(cfg->server.shutdown_grace_s, 60);
    assert_string_equal(cfg->server.cors_origins, "");
    assert_int_equal(cfg->server.max_memory_bytes, 256u << 20);
    assert_int_equal(cfg->server.max_stream_bytes, 256u << 20);
    assert_int_equal(cfg->server.max_stream_s, 3600);
    assert_null(cfg->metrics.token);
    assert_int_equal(cfg->upstream.allow_link_local, 0);
    assert_null(cfg->auth.api_key);
    assert_null(cfg->auth.admin_key);
    assert_null(cfg->defaults.provider);
    assert_string_equal(cfg->defaults.model, "claude-sonnet-4-20250514");
    assert_string_equal(cfg->defaults.lb_strategy, "smart");
    assert_int_equal(cfg->defaults.health_check_enabled, 1);
    assert_int_equal(cfg->defaults.health_check_seconds, 60);
    assert_int_equal(cfg->tenant.enabled, 0);
    assert_int_equal(cfg->usage.retention_days, 90);
    assert_null(cfg->secrets.key_file);
    assert_int_equal(cfg->n_providers, 0);
}

static void test_defaults_when_absent(void **state)
{
    (void)state;
    agw_config *cfg = parse_ok("", "/srv/gw");
    check_defaults(cfg);
    assert_string_equal(cfg->database.path, "/srv/gw/antigw.db");
    agw_config_free(cfg);

    /* Empty groups change nothing either. */
    cfg = parse_ok("server = { }; auth = { }; database = { }; defaults = { };\n"
                   "tenant = { }; secrets = { }; providers = ( );\n",
                   NULL);
    check_defaults(cfg);
    assert_string_equal(cfg->database.path, "./antigw.db"); /* NULL base_dir = "." */
    agw_config_free(cfg);

    cfg = agw_config_defaults("/d");
    check_defaults(cfg);
    assert_string_equal(cfg->path, "(defaults)");
    assert_string_equal(cfg->database.path, "/d/antigw.db");
    agw_config_free(cfg);
}

static void test_empty_strings_mean_unset(void **state)
{
    (void)state;
    agw_config *cfg = parse_ok("auth = { api_key = \"\"; admin_key = \"\"; };\n"
                               "defaults = { provider = \"\"; };\n"
                               "secrets = { key_file = \"\"; };\n"
                               "server = { cors_origins = \"\"; };\n",
                               "/b");
    assert_null(cfg->auth.api_key);
    assert_null(cfg->auth.admin_key);
    assert_null(cfg->defaults.provider);
    assert_null(cfg->secrets.key_file);
    /* For CORS "" is a value of its own: no CORS headers. */
    assert_string_equal(cfg->server.cors_origins, "");
    agw_config_free(cfg);
}

static void test_range_bounds_accepted(void **state)
{
    (void)state;
    /* Every bound itself is inside the range. */
    agw_config *cfg = parse_ok("server = { max_body_bytes = 1024; threads = 1; connect_timeout_ms = 1;\n"
                               " idle_timeout_seconds = 1; sse_ping_seconds = 0; stream_commit_ms = 0;\n"
                               " shutdown_grace_seconds = 0; };\n"
                               "defaults = { health_check_seconds = 1; };\n"
                               "providers = ( { name = \"a\"; type = \"openai\"; weight = 1000000; } );\n",
                               "/b");
    assert_int_equal(cfg->server.max_body_bytes, 1024);
    assert_int_equal(cfg->server.threads, 1);
    assert_int_equal(cfg->server.sse_ping_s, 0);
    assert_int_equal(cfg->server.stream_commit_ms, 0);
    assert_int_equal(cfg->providers[0].weight, 1000000);
    agw_config_free(cfg);

    cfg = parse_ok("server = { max_body_bytes = 1073741824; threads = 1024; connect_timeout_ms = 600000;\n"
                   " idle_timeout_seconds = 86400; sse_ping_seconds = 3600; stream_commit_ms = 600000;\n"
                   " shutdown_grace_seconds = 86400; };\n"
                   "defaults = { health_check_seconds = 86400; };\n",
                   "/b");
    assert_int_equal(cfg->server.max_body_bytes, 1u << 30);
    assert_int_equal(cfg->server.threads, 1024);
    assert_int_equal(cfg->server.idle_timeout_s, 86400);
    assert_int_equal(cfg->defaults.health_check_seconds, 86400);
    agw_config_free(cfg);

    cfg = parse_ok("usage = { retention_days = 0; };\n", "/b"); /* 0: kept forever */
    assert_int_equal(cfg->usage.retention_days, 0);
    agw_config_free(cfg);
    cfg = parse_ok("usage = { retention_days = 36500; };\n", "/b");
    assert_int_equal(cfg->usage.retention_days, 36500);
    assert_int_equal(cfg->usage.required, 1); /* the defaults */
    assert_int_equal(cfg->usage.ring_records, 65536);
    assert_int_equal(cfg->usage.wal_reset_mib, 16);
    assert_string_equal(cfg->usage.ring_dir, "/dev/shm");
    agw_config_free(cfg);
    cfg = parse_ok("usage = { required = false; ring_records = 16; wal_reset_mib = 1;\n"
                   "  ring_dir = \"run/ring\"; };\n", "/b");
    assert_int_equal(cfg->usage.required, 0);
    assert_int_equal(cfg->usage.ring_records, 16);
    assert_int_equal(cfg->usage.wal_reset_mib, 1);
    assert_string_equal(cfg->usage.ring_dir, "/b/run/ring"); /* beside the configuration */
    agw_config_free(cfg);
    cfg = parse_ok("usage = { ring_dir = \"\"; };\n", "/b"); /* beside the database */
    assert_string_equal(cfg->usage.ring_dir, "");
    agw_config_free(cfg);
    cfg = agw_config_defaults("/b");
    assert_string_equal(cfg->usage.ring_dir, "/dev/shm");
    agw_config_free(cfg);

    /* A 64-bit literal inside the range is an integer too. */
    cfg = parse_ok("server = { max_body_bytes = 4096L; };\n", "/b");
    assert_int_equal(cfg->server.max_body_bytes, 4096);
    agw_config_free(cfg);
}

static void test_every_log_level_and_strategy(void **state)
{
    (void)state;
    static const char *const levels[] = { "error", "warn", "info", "debug" };
    for (int i = 0; i < 4; i++) {
        char text[128];
        snprintf(text, sizeof text, "server = { log_level = \"%s\"; };", levels[i]);
        agw_config *cfg = parse_ok(text, "/b");
        assert_int_equal(cfg->server.log_level, i);
        agw_config_free(cfg);
    }
    static const char *const lbs[] = { "weighted", "round-robin", "least-used", "priority", "smart" };
    for (int i = 0; i < 5; i++) {
        char text[128];
        snprintf(text, sizeof text, "defaults = { lb_strategy = \"%s\"; };", lbs[i]);
        agw_config *cfg = parse_ok(text, "/b");
        assert_string_equal(cfg->defaults.lb_strategy, lbs[i]);
        agw_config_free(cfg);
    }
}

/* ---- errors: one per kind, with line and key ---- */

static void test_err_unknown_top_level(void **state)
{
    (void)state;
    expect_error("server = { };\n"
                 "serverx = { threads = 4; };\n",
                 "(string):2: serverx: unknown setting");
    expect_error("# comment\n\nproviders = ( );\nlog_level = \"info\";\n",
                 "(string):4: log_level: unknown setting");
}

static void test_err_unknown_key_in_group(void **state)
{
    (void)state;
    expect_error("server = {\n"
                 "  threads = 4;\n"
                 "  thread = 5;\n"
                 "};\n",
                 "(string):3: server.thread: unknown setting");
    expect_error("\nauth = { api_key = \"k\";\n user = \"x\"; };\n",
                 "(string):3: auth.user: unknown setting");
    expect_error("database = { file = \"x\"; };\n", "(string):1: database.file: unknown setting");
    expect_error("defaults = {\n model = \"m\";\n lb = \"smart\"; };\n",
                 "(string):3: defaults.lb: unknown setting");
    expect_error("tenant = { enable = true; };\n", "(string):1: tenant.enable: unknown setting");
    expect_error("secrets = { keyfile = \"k\"; };\n", "(string):1: secrets.keyfile: unknown setting");
    expect_error("providers = (\n"
                 "  { name = \"a\"; type = \"openai\"; },\n"
                 "  { name = \"b\"; type = \"openai\";\n"
                 "    apikey = \"x\"; }\n"
                 ");\n",
                 "(string):4: providers[1].apikey: unknown setting");
}

static void test_err_wrong_type(void **state)
{
    (void)state;
    expect_error("server = {\n threads = \"4\";\n};\n",
                 "(string):2: server.threads: must be an integer");
    expect_error("server = {\n threads = 4.0;\n};\n",
                 "(string):2: server.threads: must be an integer");
    expect_error("server = { log_level = 3; };\n", "(string):1: server.log_level: must be a string");
    expect_error("auth = {\n\n api_key = 5; };\n", "(string):3: auth.api_key: must be a string");
    expect_error("tenant = { enabled = 1; };\n", "(string):1: tenant.enabled: must be true or false");
    expect_error("server = { batch_scheduling = \"batch\"; };\n",
                 "(string):1: server.batch_scheduling: must be true or false");
    expect_error("defaults = { health_check_enabled = \"yes\"; };\n",
                 "(string):1: defaults.health_check_enabled: must be true or false");
    expect_error("server = 5;\n", "(string):1: server: must be a group { ... }");
    expect_error("\nauth = ( );\n", "(string):2: auth: must be a group { ... }");
    expect_error("providers = 5;\n", "(string):1: providers: must be a list ( { ... }, { ... } )");
    expect_error("providers = (\n \"x\" );\n",
                 "(string):2: providers[0]: each provider must be a group { ... }");
    expect_error("providers = ( { name = \"a\"; type = \"openai\";\n enabled = \"no\"; } );\n",
                 "(string):2: providers[0].enabled: must be true or false");
    expect_error("providers = ( { name = \"a\"; type = \"openai\";\n models = \"gpt-4o\"; } );\n",
                 "(string):2: providers.a.models: must be a list of strings");
    expect_error("providers = ( { name = \"a\"; type = \"openai\";\n models = ( \"x\",\n 5 ); } );\n",
                 "(string):3: providers.a.models: each model must be a non-empty string");
    expect_error("providers = ( { name = \"a\"; type = \"openai\";\n models = [ \"\" ]; } );\n",
                 "(string):2: providers.a.models: each model must be a non-empty string");
}

static void test_err_out_of_range(void **state)
{
    (void)state;
    expect_error("server = {\n threads = 0;\n};\n",
                 "(string):2: server.threads: must be between 1 and 1024 (got 0)");
    expect_error("server = { threads = 1025; };\n",
                 "(string):1: server.threads: must be between 1 and 1024 (got 1025)");
    expect_error("server = { max_body_bytes = 1023; };\n",
                 "(string):1: server.max_body_bytes: must be between 1024 and 1073741824 (got 1023)");
    /* A 64-bit value must not be truncated to int before the range check. */
    expect_error("server = {\n\n max_body_bytes = 5000000000L; };\n",
                 "(string):3: server.max_body_bytes: must be between 1024 and 1073741824 (got 5000000000)");
    expect_error("server = { connect_timeout_ms = 600001; };\n",
                 "(string):1: server.connect_timeout_ms: must be between 1 and 600000 (got 600001)");
    expect_error("server = { idle_timeout_seconds = 0; };\n",
                 "(string):1: server.idle_timeout_seconds: must be between 1 and 86400 (got 0)");
    expect_error("server = { sse_ping_seconds = -1; };\n",
                 "(string):1: server.sse_ping_seconds: must be between 0 and 3600 (got -1)");
    expect_error("server = { stream_commit_ms = 600001; };\n",
                 "(string):1: server.stream_commit_ms: must be between 0 and 600000 (got 600001)");
    expect_error("server = {\n max_stream_bytes = -1; };\n",
                 "(string):2: server.max_stream_bytes: must be between 0 and 1099511627776 (got -1)");
    expect_error("server = {\n\n max_stream_seconds = 604801; };\n",
                 "(string):3: server.max_stream_seconds: must be between 0 and 604800 (got 604801)");
    expect_error("server = { max_stream_seconds = \"1h\"; };\n",
                 "(string):1: server.max_stream_seconds: must be an integer");
    expect_error("server = { shutdown_grace_seconds = 86401; };\n",
                 "(string):1: server.shutdown_grace_seconds: must be between 0 and 86400 (got 86401)");
    expect_error("usage = { retention_days = -1; };\n",
                 "(string):1: usage.retention_days: must be between 0 and 36500 (got -1)");
    expect_error("usage = { retention_days = 36501; };\n",
                 "(string):1: usage.retention_days: must be between 0 and 36500 (got 36501)");
    expect_error("usage = { keep_days = 1; };\n", "(string):1: usage.keep_days: unknown setting");
    expect_error("usage = { required = 1; };\n",
                 "(string):1: usage.required: must be true or false");
    expect_error("usage = { ring_records = 1000; };\n",
                 "(string):1: usage.ring_records: must be a power of two (got 1000)");
    expect_error("usage = { ring_records = 8; };\n",
                 "(string):1: usage.ring_records: must be between 16 and 4194304 (got 8)");
    expect_error("usage = { ring_dir = 1; };\n", "(string):1: usage.ring_dir: must be a string");
    expect_error("usage = { wal_reset_mib = 0; };\n",
                 "(string):1: usage.wal_reset_mib: must be between 1 and 48 (got 0)");
    expect_error("usage = { wal_reset_mib = 64; };\n",
                 "(string):1: usage.wal_reset_mib: must be between 1 and 48 (got 64)");
    expect_error("defaults = { health_check_seconds = 0; };\n",
                 "(string):1: defaults.health_check_seconds: must be between 1 and 86400 (got 0)");
    expect_error("providers = ( { name = \"a\"; type = \"openai\";\n weight = -1; } );\n",
                 "(string):2: providers[0].weight: must be between 0 and 1000000 (got -1)");
}

static void test_err_bad_log_level(void **state)
{
    (void)state;
    expect_error("server = {\n  threads = 2;\n  log_level = \"verbose\";\n};\n",
                 "(string):3: server.log_level: must be error, warn, info or debug");
    expect_error("server = { log_level = \"INFO\"; };\n",
                 "(string):1: server.log_level: must be error, warn, info or debug");
}

static void test_err_bad_lb_strategy(void **state)
{
    (void)state;
    expect_error("defaults = {\n  model = \"m\";\n  lb_strategy = \"fastest\";\n};\n",
                 "(string):3: defaults.lb_strategy: must be weighted, round-robin, least-used, "
                 "priority or smart");
}

static void test_err_provider_name(void **state)
{
    (void)state;
    /* Missing name: reported at the provider's group. */
    expect_error("providers = (\n"
                 "  { type = \"openai\"; }\n"
                 ");\n",
                 "(string):2: providers[0].name: required, and may hold only letters, "
                 "digits, '.', '_' and '-'");
    /* Bad characters: a space, a slash (it would clash with model prefixes), empty. */
    expect_error("providers = (\n"
                 "  { name = \"a\"; type = \"openai\"; },\n"
                 "  { name = \"my provider\"; type = \"openai\"; }\n"
                 ");\n",
                 "(string):3: providers[1].name: required, and may hold only letters, "
                 "digits, '.', '_' and '-'");
    expect_error("providers = ( { name = \"a/b\"; type = \"openai\"; } );\n",
                 "(string):1: providers[0].name: required, and may hold only letters, "
                 "digits, '.', '_' and '-'");
    expect_error("providers = ( { name = \"\"; type = \"openai\"; } );\n",
                 "(string):1: providers[0].name: required, and may hold only letters, "
                 "digits, '.', '_' and '-'");
    expect_error("providers = ( { name = 7; type = \"openai\"; } );\n",
                 "(string):1: providers[0].name: must be a string");
}

/* Provider names are at most AGW_CONFIG_NAME_MAX bytes: the usage rows and
 * the metrics labels that carry them hold no more. */
static void test_provider_name_rule(void **state)
{
    (void)state;
    char name[AGW_CONFIG_NAME_MAX + 2];
    memset(name, 'a', sizeof name);
    name[AGW_CONFIG_NAME_MAX] = '\0';
    assert_int_equal(agw_config_name_ok(name), 1);
    name[AGW_CONFIG_NAME_MAX] = 'a';
    name[AGW_CONFIG_NAME_MAX + 1] = '\0';
    assert_int_equal(agw_config_name_ok(name), 0); /* one byte over */
    assert_int_equal(agw_config_name_ok("a"), 1);
    assert_int_equal(agw_config_name_ok("Work-1.eu_west"), 1);
    assert_int_equal(agw_config_name_ok(""), 0);
    assert_int_equal(agw_config_name_ok(NULL), 0);
    assert_int_equal(agw_config_name_ok("a/b"), 0);
    assert_int_equal(agw_config_name_ok("a b"), 0);
    assert_int_equal(agw_config_name_ok("caf\xc3\xa9"), 0);
    assert_int_equal(agw_config_name_ok("a\n"), 0);
    assert_int_equal(AGW_CONFIG_NAME_MAX, 63);
}

/* Model names in the file are held to AGW_CONFIG_MODEL_MAX like a client's:
 * a provider's models and default_model, and defaults.model. */
static void test_err_model_name_length(void **state)
{
    (void)state;
    char model[AGW_CONFIG_MODEL_MAX + 2], text[1024], want[256];
    memset(model, 'm', sizeof model);
    model[AGW_CONFIG_MODEL_MAX] = '\0';
    snprintf(text, sizeof text,
             "defaults = { model = \"%s\"; };\n"
             "providers = ( { name = \"p\"; type = \"openai\"; models = [ \"%s\" ];\n"
             "  default_model = \"%s\"; } );\n",
             model, model, model);
    agw_config *cfg = parse_ok(text, NULL);
    assert_int_equal(strlen(cfg->providers[0].models[0]), AGW_CONFIG_MODEL_MAX);
    assert_int_equal(strlen(cfg->providers[0].default_model), AGW_CONFIG_MODEL_MAX);
    assert_int_equal(strlen(cfg->defaults.model), AGW_CONFIG_MODEL_MAX);
    agw_config_free(cfg);
    model[AGW_CONFIG_MODEL_MAX] = 'm';
    model[AGW_CONFIG_MODEL_MAX + 1] = '\0';
    snprintf(text, sizeof text,
             "providers = ( { name = \"p\"; type = \"openai\";\n  models = [ \"%s\" ]; } );\n",
             model);
    snprintf(want, sizeof want,
             "(string):2: providers.p.models: a model name may be at most %d bytes long",
             AGW_CONFIG_MODEL_MAX);
    expect_error(text, want);
    snprintf(text, sizeof text,
             "providers = ( { name = \"p\"; type = \"openai\";\n  default_model = \"%s\"; } );\n",
             model);
    snprintf(want, sizeof want,
             "(string):2: providers.p.default_model: a model name may be at most %d bytes long",
             AGW_CONFIG_MODEL_MAX);
    expect_error(text, want);
    snprintf(text, sizeof text, "defaults = {\n  model = \"%s\"; };\n", model);
    snprintf(want, sizeof want,
             "(string):2: defaults.model: a model name may be at most %d bytes long",
             AGW_CONFIG_MODEL_MAX);
    expect_error(text, want);
}

static void test_err_provider_name_length(void **state)
{
    (void)state;
    char text[256], want[256];
    char name[AGW_CONFIG_NAME_MAX + 2];
    memset(name, 'n', sizeof name);
    name[AGW_CONFIG_NAME_MAX] = '\0';
    /* The longest name loads... */
    snprintf(text, sizeof text, "providers = ( { name = \"%s\"; type = \"openai\"; } );\n", name);
    agw_config *cfg = parse_ok(text, NULL);
    assert_int_equal(cfg->n_providers, 1);
    assert_string_equal(cfg->providers[0].name, name);
    agw_config_free(cfg);
    /* ...one byte more does not. */
    name[AGW_CONFIG_NAME_MAX] = 'n';
    name[AGW_CONFIG_NAME_MAX + 1] = '\0';
    snprintf(text, sizeof text, "providers = (\n  { name = \"%s\"; type = \"openai\"; }\n);\n",
             name);
    snprintf(want, sizeof want, "(string):2: providers[0].name: may be at most %d bytes long",
             AGW_CONFIG_NAME_MAX);
    expect_error(text, want);
}

static void test_err_provider_type(void **state)
{
    (void)state;
    expect_error("providers = (\n"
                 "  { name = \"p1\";\n"
                 "    type = \"gemini\"; }\n"
                 ");\n",
                 "(string):3: providers.p1.type: must be openai, anthropic, kiro or copilot");
    /* Missing type: reported at the group. */
    expect_error("providers = (\n"
                 "  { name = \"p1\"; }\n"
                 ");\n",
                 "(string):2: providers.p1.type: must be openai, anthropic, kiro or copilot");
}

static void test_err_provider_base_url(void **state)
{
    (void)state;
    expect_error("providers = (\n"
                 "  { name = \"p1\"; type = \"openai\";\n"
                 "    base_url = \"ftp://example.com\"; }\n"
                 ");\n",
                 "(string):3: providers.p1.base_url: must be an http:// or https:// URL with a host");
    expect_error("providers = ( { name = \"p1\"; type = \"anthropic\"; base_url = \"HTTPS://x\"; } );\n",
                 "(string):1: providers.p1.base_url: must be an http:// or https:// URL with a host");
    expect_error("providers = ( { name = \"p1\"; type = \"anthropic\"; base_url = \"\"; } );\n",
                 "(string):1: providers.p1.base_url: must be an http:// or https:// URL with a host");
    /* A scheme alone is not a URL (trimming slashes would leave "https:"). */
    expect_error("providers = ( { name = \"p1\"; type = \"openai\"; base_url = \"https://\"; } );\n",
                 "(string):1: providers.p1.base_url: must be an http:// or https:// URL with a host");
    expect_error("providers = ( { name = \"p1\"; type = \"openai\"; base_url = \"http://h\\r\\nX: y\"; } );\n",
                 "(string):1: providers.p1.base_url: must be an http:// or https:// URL with a host");
    /* The key goes into a request header: no CR/LF smuggling. */
    expect_error("providers = ( { name = \"p1\"; type = \"openai\"; api_key = \"sk\\r\\nX: y\"; } );\n",
                 "(string):1: providers.p1.api_key: must not contain control characters");
    /* Type-specific settings: only on their own type, URLs checked. */
    expect_error("providers = ( { name = \"o\"; type = \"openai\"; github_url = \"https://g\"; } );\n",
                 "(string):1: providers.o.github_url: only a copilot provider has this setting");
    expect_error("providers = ( { name = \"c\"; type = \"copilot\"; github_api_url = \"ftp://g\"; } );\n",
                 "(string):1: providers.c.github_api_url: must be an http:// or https:// URL with a host");
    expect_error("providers = ( { name = \"c\"; type = \"copilot\"; github_url = \"http://169.254.169.254\"; } );\n",
                 "(string):1: providers.c.github_url: points at a link-local or cloud metadata "
                 "address (169.254.0.0/16, fe80::/10, fd00:ec2::254): set "
                 "upstream.allow_link_local = true to allow it");
    expect_error("providers = ( { name = \"c\"; type = \"copilot\"; editor_version = \"\"; } );\n",
                 "(string):1: providers.c.editor_version: must be a non-empty string without control "
                 "characters");
}

/* A Copilot provider may leave base_url out (the token names the host) and
 * has a default for every setting it does not set. */
static void test_copilot_settings(void **state)
{
    (void)state;
    agw_config *cfg = NULL;
    char err[AGW_ERR_LEN];
    assert_int_equal(agw_config_parse("providers = (\n"
                                      "  { name = \"c1\"; type = \"copilot\"; },\n"
                                      "  { name = \"c2\"; type = \"copilot\"; base_url = \"http://127.0.0.1:9/\";\n"
                                      "    github_api_url = \"http://127.0.0.1:8/\"; user_agent = \"UA/1\"; }\n"
                                      ");\n",
                                      "/tmp", &cfg, err, sizeof err),
                     AGW_OK);
    const agw_provider_cfg *c1 = &cfg->providers[0], *c2 = &cfg->providers[1];
    assert_string_equal(c1->base_url, "https://api.githubcopilot.com");
    assert_true(c1->base_url_from_token);
    assert_string_equal(agw_provider_setting(c1, AGW_SET_GITHUB_URL), "https://github.com");
    assert_string_equal(agw_provider_setting(c1, AGW_SET_GITHUB_API_URL), "https://api.github.com");
    assert_string_equal(agw_provider_setting(c1, AGW_SET_COPILOT_INTEGRATION_ID), "vscode-chat");
    assert_string_equal(c2->base_url, "http://127.0.0.1:9");
    assert_false(c2->base_url_from_token);
    assert_string_equal(agw_provider_setting(c2, AGW_SET_GITHUB_API_URL), "http://127.0.0.1:8");
    assert_string_equal(agw_provider_setting(c2, AGW_SET_COPILOT_USER_AGENT), "UA/1");
    assert_string_equal(agw_provider_setting_name(AGW_SET_GITHUB_API_URL), "github_api_url");
    agw_config_free(cfg);
}

static void test_err_duplicate_provider(void **state)
{
    (void)state;
    expect_error("providers = (\n"
                 "  { name = \"dup\"; type = \"openai\"; },\n"
                 "  { name = \"other\"; type = \"openai\"; },\n"
                 "  { name = \"dup\"; type = \"anthropic\"; }\n"
                 ");\n",
                 "(string):4: providers: provider name dup is used twice");
}

static void test_err_default_provider_missing(void **state)
{
    (void)state;
    expect_error("defaults = {\n"
                 "  provider = \"nope\";\n"
                 "};\n"
                 "providers = ( { name = \"yes\"; type = \"openai\"; } );\n",
                 "(string):2: defaults.provider: no provider is named nope");
    /* Names are case-sensitive. */
    expect_error("defaults = { provider = \"YES\"; };\n"
                 "providers = ( { name = \"yes\"; type = \"openai\"; } );\n",
                 "(string):1: defaults.provider: no provider is named YES");
}

static void test_err_database_path_empty(void **state)
{
    (void)state;
    expect_error("database = {\n path = \"\"; };\n", "(string):2: database.path: must not be empty");
}

static void test_err_syntax(void **state)
{
    (void)state;
    expect_error("server = {\n  threads = 4;\n  log_level = ;\n};\n",
                 "(string):3: syntax: syntax error");
    expect_error("server = {\n  threads = 4;\n", "(string):3: syntax: syntax error");
}

static void test_err_reporting_edges(void **state)
{
    (void)state;
    /* err may be NULL; *out is still cleared. */
    agw_config *cfg = (agw_config *)0x1;
    assert_int_equal(agw_config_parse("bogus = 1;", "/b", &cfg, NULL, 0), AGW_EINVAL);
    assert_null(cfg);
    /* A short err buffer is truncated and NUL-terminated. */
    char small[12];
    memset(small, 'Z', sizeof small);
    assert_int_equal(agw_config_parse("bogus = 1;", "/b", &cfg, small, sizeof small), AGW_EINVAL);
    assert_string_equal(small, "(string):1:");
    /* A failure after providers were allocated must not leak (ASan checks). */
    assert_int_equal(agw_config_parse("providers = ( { name = \"a\"; type = \"openai\"; models = [\"x\"]; },\n"
                                      "{ name = \"b\"; type = \"zzz\"; } );",
                                      "/b", &cfg, NULL, 0),
                     AGW_EINVAL);
    assert_null(cfg);
    agw_config_free(NULL); /* harmless */
}

/* ---- paths ---- */

static void test_paths(void **state)
{
    (void)state;
    agw_config *cfg = parse_ok("database = { path = \"gw.db\"; };\n"
                               "secrets = { key_file = \"../k/secret.key\"; };\n",
                               "/etc/antigw");
    assert_string_equal(cfg->database.path, "/etc/antigw/gw.db");
    assert_string_equal(cfg->secrets.key_file, "/etc/antigw/../k/secret.key");
    agw_config_free(cfg);

    cfg = parse_ok("database = { path = \"/var/lib/antigw/gw.db\"; };\n"
                   "secrets = { key_file = \"/etc/k\"; };\n",
                   "/etc/antigw");
    assert_string_equal(cfg->database.path, "/var/lib/antigw/gw.db");
    assert_string_equal(cfg->secrets.key_file, "/etc/k");
    agw_config_free(cfg);

    cfg = parse_ok("database = { path = \"gw.db\"; };\n", NULL);
    assert_string_equal(cfg->database.path, "./gw.db");
    agw_config_free(cfg);
}

static void test_base_url_trim_and_defaults(void **state)
{
    (void)state;
    agw_config *cfg = parse_ok(
        "providers = (\n"
        " { name = \"o\"; type = \"openai\"; },\n"
        " { name = \"a\"; type = \"anthropic\"; },\n"
        " { name = \"o2\"; type = \"openai\"; base_url = \"http://127.0.0.1:8080/v1/\"; },\n"
        " { name = \"a2\"; type = \"anthropic\"; base_url = \"https://proxy.example/anthropic///\"; },\n"
        " { name = \"a3\"; type = \"anthropic\"; base_url = \"https://proxy.example\"; }\n"
        ");\n",
        "/b");
    assert_string_equal(cfg->providers[0].base_url, "https://api.openai.com/v1");
    assert_string_equal(cfg->providers[1].base_url, "https://api.anthropic.com");
    assert_string_equal(cfg->providers[2].base_url, "http://127.0.0.1:8080/v1");
    assert_string_equal(cfg->providers[3].base_url, "https://proxy.example/anthropic");
    assert_string_equal(cfg->providers[4].base_url, "https://proxy.example");
    agw_config_free(cfg);
}

/* ---- lookup ---- */

static void test_provider_lookup(void **state)
{
    (void)state;
    agw_config *cfg = parse_ok(full_cfg, "/etc/antigw");
    const agw_provider_cfg *p = agw_config_provider(cfg, AGW_STR_LIT("work-anthropic"));
    assert_non_null(p);
    assert_ptr_equal(p, &cfg->providers[1]);
    assert_ptr_equal(agw_config_provider(cfg, AGW_STR_LIT("cp")), &cfg->providers[3]);
    /* A slice of a longer string (a model prefix) works: no NUL needed. */
    const char *model = "work-openai/gpt-4o";
    assert_ptr_equal(agw_config_provider(cfg, (agw_str){ model, 11 }), &cfg->providers[0]);
    /* Exact names only. */
    assert_null(agw_config_provider(cfg, AGW_STR_LIT("work-openai/")));
    assert_null(agw_config_provider(cfg, AGW_STR_LIT("work")));
    assert_null(agw_config_provider(cfg, AGW_STR_LIT("Work-OpenAI")));
    assert_null(agw_config_provider(cfg, AGW_STR_LIT("")));
    assert_null(agw_config_provider(cfg, AGW_STR_LIT("cp\0")));
    agw_config_free(cfg);

    agw_config *d = agw_config_defaults(NULL);
    assert_null(agw_config_provider(d, AGW_STR_LIT("x")));
    agw_config_free(d);
}

/* ---- loading files ---- */

typedef struct {
    char dir[64];
} tmp_fixture;

static int tmp_setup(void **state)
{
    tmp_fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    strcpy(f->dir, "/tmp/agw-config-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

/* Removes the fixed set of names the tests create, then the directory. */
static int tmp_teardown(void **state)
{
    tmp_fixture *f = *state;
    static const char *const names[] = { "main.cfg", "providers.cfg", "bad.cfg", "inc_bad.cfg",
                                         "plain.cfg", "sub/inner.cfg", "sub", NULL };
    char path[256];
    for (const char *const *n = names; *n; n++) {
        snprintf(path, sizeof path, "%s/%s", f->dir, *n);
        if (unlink(path) != 0)
            rmdir(path);
    }
    int rc = rmdir(f->dir);
    free(f);
    return rc;
}

static void test_load_missing_file(void **state)
{
    tmp_fixture *f = *state;
    char path[256], err[AGW_ERR_LEN] = "";
    snprintf(path, sizeof path, "%s/does-not-exist.cfg", f->dir);
    agw_config *cfg = (agw_config *)0x1;
    assert_int_equal(agw_config_load(path, &cfg, err, sizeof err), AGW_EIO);
    assert_null(cfg);
    char want[512];
    snprintf(want, sizeof want, "%s: cannot read: No such file or directory", path);
    assert_string_equal(err, want);
}

static void test_load_with_include(void **state)
{
    tmp_fixture *f = *state;
    char path[256], inc[256], err[AGW_ERR_LEN] = "";
    snprintf(path, sizeof path, "%s/main.cfg", f->dir);
    snprintf(inc, sizeof inc, "%s/providers.cfg", f->dir);
    write_file(inc, "providers = (\n"
                    "  { name = \"inc\"; type = \"openai\"; models = [ \"gpt-*\" ]; }\n"
                    ");\n");
    /* The include names a file relative to main.cfg's directory, which is not
     * the working directory of the test. */
    write_file(path, "server = { threads = 3; };\n"
                     "database = { path = \"db/x.db\"; };\n"
                     "@include \"providers.cfg\"\n"
                     "defaults = { provider = \"inc\"; };\n");
    agw_config *cfg = NULL;
    agw_err e = agw_config_load(path, &cfg, err, sizeof err);
    if (e != AGW_OK)
        fail_msg("load failed: %s", err);
    assert_string_equal(cfg->path, path);
    assert_int_equal(cfg->server.threads, 3);
    char want[512];
    snprintf(want, sizeof want, "%s/db/x.db", f->dir);
    assert_string_equal(cfg->database.path, want);
    assert_int_equal(cfg->n_providers, 1);
    assert_string_equal(cfg->providers[0].name, "inc");
    assert_string_equal(cfg->providers[0].models[0], "gpt-*");
    assert_string_equal(cfg->defaults.provider, "inc");
    agw_config_free(cfg);
}

static void test_load_errors_name_the_file(void **state)
{
    tmp_fixture *f = *state;
    char path[256], inc[256], err[AGW_ERR_LEN] = "", want[600];
    agw_config *cfg = NULL;

    /* A validation error in the main file. */
    snprintf(path, sizeof path, "%s/bad.cfg", f->dir);
    write_file(path, "server = {\n  threads = 2;\n  bogus = 1;\n};\n");
    assert_int_equal(agw_config_load(path, &cfg, err, sizeof err), AGW_EINVAL);
    assert_null(cfg);
    snprintf(want, sizeof want, "%s:3: server.bogus: unknown setting", path);
    assert_string_equal(err, want);

    /* A syntax error in the main file. */
    write_file(path, "server = {\n  threads = ;\n};\n");
    assert_int_equal(agw_config_load(path, &cfg, err, sizeof err), AGW_EINVAL);
    snprintf(want, sizeof want, "%s:2: syntax: syntax error", path);
    assert_string_equal(err, want);

    /* A validation error inside an included file names that file and its own
     * line. libconfig 1.5 records the include name as written in the
     * @include; later versions may record the resolved path: both name it. */
    snprintf(inc, sizeof inc, "%s/inc_bad.cfg", f->dir);
    write_file(inc, "providers = (\n  { name = \"x\"; type = \"openai\";\n    wieght = 1; }\n);\n");
    write_file(path, "# main\n@include \"inc_bad.cfg\"\n");
    assert_int_equal(agw_config_load(path, &cfg, err, sizeof err), AGW_EINVAL);
    assert_null(cfg);
    snprintf(want, sizeof want, "%s:3: providers[0].wieght: unknown setting", inc);
    if (strcmp(err, want) != 0)
        assert_string_equal(err, "inc_bad.cfg:3: providers[0].wieght: unknown setting");
}

static void test_load_relative_path_in_cwd(void **state)
{
    tmp_fixture *f = *state;
    char old[512], err[AGW_ERR_LEN] = "";
    assert_non_null(getcwd(old, sizeof old));
    char path[256];
    snprintf(path, sizeof path, "%s/plain.cfg", f->dir);
    write_file(path, "database = { path = \"p.db\"; };\n");
    assert_int_equal(chdir(f->dir), 0);
    agw_config *cfg = NULL;
    agw_err e = agw_config_load("plain.cfg", &cfg, err, sizeof err);
    assert_int_equal(chdir(old), 0);
    if (e != AGW_OK)
        fail_msg("load failed: %s", err);
    /* A bare file name: its directory is "." */
    assert_string_equal(cfg->database.path, "./p.db");
    assert_string_equal(cfg->path, "plain.cfg");
    agw_config_free(cfg);
}

/* The shipped example documents every key with its default: loading it must
 * give exactly the built-in defaults. */
/* server.max_memory_bytes, metrics.token and upstream.allow_link_local. */
static void test_security_settings(void **state)
{
    (void)state;
    agw_config *cfg = parse_ok("server = { max_memory_bytes = 1048576; };\n"
                               "metrics = { token = \"scrape-me\"; };\n"
                               "upstream = { allow_link_local = true; };\n"
                               "providers = ( { name = \"meta\"; type = \"openai\";\n"
                               "  base_url = \"http://169.254.169.254/v1\"; } );\n",
                               "/b");
    assert_int_equal(cfg->server.max_memory_bytes, 1u << 20);
    assert_string_equal(cfg->metrics.token, "scrape-me");
    assert_int_equal(cfg->upstream.allow_link_local, 1);
    agw_config_free(cfg);
    cfg = parse_ok("metrics = { token = \"\"; };\n", "/b");
    assert_null(cfg->metrics.token);
    agw_config_free(cfg);
    expect_error("server = { max_memory_bytes = 1000; };\n",
                 "(string):1: server.max_memory_bytes: must be between 1048576 and "
                 "1099511627776 (got 1000)");
    expect_error("upstream = { allow_link_local = 1; };\n",
                 "(string):1: upstream.allow_link_local: must be true or false");
}

/* Link-local and metadata addresses are refused by default, in every
 * spelling of a literal; loopback, private networks and names pass. */
static void test_link_local_base_url_refused(void **state)
{
    (void)state;
    static const char *const refused[] = {
        "http://169.254.169.254/latest", "https://169.254.1.2:8443/v1", "http://[fe80::1]/v1",
        "http://[FE80::1%25eth0]:80", "http://[febf::1]", "http://[fd00:ec2::254]/",
        "http://[::ffff:169.254.169.254]/v1", "http://user@169.254.169.254/",
    };
    static const char *const allowed[] = {
        "http://127.0.0.1:8080/v1", "http://10.1.2.3/v1", "http://192.168.0.1",
        "http://[::1]:9/v1", "http://[fd00::1]/", "https://api.openai.com/v1",
        "http://169.255.0.1/", "http://[fec0::1]/",
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        char text[512];
        snprintf(text, sizeof text,
                 "providers = ( { name = \"p\"; type = \"openai\"; base_url = \"%s\"; } );\n",
                 refused[i]);
        agw_config *cfg = NULL;
        char err[AGW_ERR_LEN] = "";
        assert_int_equal(agw_config_parse(text, "/b", &cfg, err, sizeof err), AGW_EINVAL);
        if (!strstr(err, "providers.p.base_url: points at a link-local"))
            fail_msg("%s: %s", refused[i], err);
        assert_non_null(agw_config_base_url_refused(refused[i], 0));
        assert_null(agw_config_base_url_refused(refused[i], 1));
    }
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++)
        if (agw_config_base_url_refused(allowed[i], 0))
            fail_msg("%s refused", allowed[i]);
}

/* The origin that provider keys are sealed for: scheme, lower-cased host,
 * port written out. */
static void test_url_origin(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        { "https://API.openai.com/v1", "https://api.openai.com:443" },
        { "http://127.0.0.1:8080/v1/", "http://127.0.0.1:8080" },
        { "http://[::1]/x", "http://[::1]:80" },
        { "http://u:p@host:9?q", "http://host:9" },
        { "ftp://host", NULL },
        { "http://", NULL },
        { "http://host:9x/", NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        agw_buf o = AGW_BUF_INIT(1024);
        agw_err e = agw_config_url_origin(cases[i][0], &o, NULL);
        if (cases[i][1]) {
            assert_int_equal(e, AGW_OK);
            assert_string_equal(o.data, cases[i][1]);
        } else {
            assert_int_equal(e, AGW_EINVAL);
        }
        agw_buf_free(&o);
    }
}

/* antigw-fcgi keeps the admin key's hash only; the environment wins. */
static void test_admin_key_hashed(void **state)
{
    (void)state;
    agw_config *cfg = parse_ok("auth = { admin_key = \"admin-key-0123456789\"; };\n", "/b");
    agw_config_hash_admin_key(cfg, NULL);
    assert_null(cfg->auth.admin_key);
    assert_int_equal(cfg->auth.has_admin_key_hash, 1);
    assert_true(agw_config_admin_key_ok(cfg, AGW_STR_LIT("admin-key-0123456789")));
    assert_false(agw_config_admin_key_ok(cfg, AGW_STR_LIT("admin-key-012345678")));
    assert_false(agw_config_admin_key_ok(cfg, AGW_STR_LIT("")));
    agw_config_hash_admin_key(cfg, "from-the-environment");
    assert_true(agw_config_admin_key_ok(cfg, AGW_STR_LIT("from-the-environment")));
    agw_config_free(cfg);
    cfg = parse_ok("", "/b");
    agw_config_hash_admin_key(cfg, "");
    assert_int_equal(cfg->auth.has_admin_key_hash, 0);
    assert_false(agw_config_admin_key_ok(cfg, AGW_STR_LIT("")));
    agw_config_free(cfg);
}

/* A reference keeps a configuration alive after its first owner let go. */
static void test_reference_counted(void **state)
{
    (void)state;
    agw_config *cfg = parse_ok("server = { threads = 3; };\n", "/b");
    agw_config *again = agw_config_ref(cfg);
    assert_ptr_equal(again, cfg);
    agw_config_free(cfg);
    assert_int_equal(again->server.threads, 3); /* still there: ASan would object */
    agw_config_free(again);
}

static void test_example_file_matches_defaults(void **state)
{
    (void)state;
    char path[1024];
    const char *src = getenv("ANTIGW_SRCDIR");
    if (src && *src) {
        snprintf(path, sizeof path, "%s/antigw.cfg.example", src);
    } else {
        /* __FILE__ is .../tests/unit/test_config.c */
        snprintf(path, sizeof path, "%s", __FILE__);
        char *cut = strstr(path, "tests/unit/test_config.c");
        if (!cut)
            skip();
        strcpy(cut, "antigw.cfg.example");
    }
    if (access(path, R_OK) != 0)
        skip();
    char err[AGW_ERR_LEN] = "";
    agw_config *cfg = NULL;
    agw_err e = agw_config_load(path, &cfg, err, sizeof err);
    if (e != AGW_OK)
        fail_msg("example failed to load: %s", err);
    check_defaults(cfg);
    agw_config_free(cfg);
}

/* Answer rules: defaults, what a rule list reads as, and each refusal. */
static void test_answer_rules(void **state)
{
    (void)state;
    agw_config *cfg = parse_ok("providers = (\n"
                               " { name = \"k\"; type = \"kiro\"; base_url = \"https://q.example\"; },\n"
                               " { name = \"o\"; type = \"openai\"; continuation = true;\n"
                               "   sanitize = true; sanitize_defaults = false; sanitize_thinking = true;\n"
                               "   sanitize_rules = ( { replace = \"Amazon Q\"; with = \"Claude\"; word = true; },\n"
                               "                      { replace = \"x\"; with = \"\"; },\n"
                               "                      { remove = \"<a>\"; until = \"</a>\"; } ); } );\n"
                               "continuation = { max_rounds = 5; max_output_chars = 1000; };\n",
                               NULL);
    const agw_provider_cfg *k = &cfg->providers[0], *o = &cfg->providers[1];
    assert_int_equal(k->continuation, -1);
    assert_int_equal(k->sanitize, -1);
    assert_int_equal(k->sanitize_defaults, 1);
    assert_int_equal(k->sanitize_thinking, 0);
    assert_int_equal(k->n_sanitize_rules, 0);
    assert_int_equal(o->continuation, 1);
    assert_int_equal(o->sanitize, 1);
    assert_int_equal(o->sanitize_defaults, 0);
    assert_int_equal(o->sanitize_thinking, 1);
    assert_int_equal(o->n_sanitize_rules, 3);
    assert_int_equal(o->sanitize_rules[0].kind, AGW_RULE_REPLACE_WORD);
    assert_string_equal(o->sanitize_rules[0].pattern, "Amazon Q");
    assert_string_equal(o->sanitize_rules[0].text, "Claude");
    assert_int_equal(o->sanitize_rules[1].kind, AGW_RULE_REPLACE);
    assert_string_equal(o->sanitize_rules[1].text, "");
    assert_int_equal(o->sanitize_rules[2].kind, AGW_RULE_REMOVE);
    assert_string_equal(o->sanitize_rules[2].text, "</a>");
    assert_int_equal(cfg->continuation.max_rounds, 5);
    assert_int_equal(cfg->continuation.max_output_chars, 1000);
    agw_config_free(cfg);

#define RULES(r) "providers = ( { name = \"p\"; type = \"openai\";\n sanitize_rules = " r "; } );\n"
    expect_error(RULES("5"),
                 "(string):2: providers.p.sanitize_rules: must be a list of groups ( { ... }, ... )");
    expect_error(RULES("( \"x\" )"),
                 "(string):2: providers.p.sanitize_rules: each rule must be a group { ... }");
    expect_error(RULES("( { replace = \"a\"; remove = \"b\"; until = \"c\"; } )"),
                 "(string):2: providers.p.sanitize_rules: each rule has either replace (with "
                 "with) or remove (with until)");
    expect_error(RULES("( { with = \"a\"; } )"),
                 "(string):2: providers.p.sanitize_rules: each rule has either replace (with "
                 "with) or remove (with until)");
    expect_error(RULES("( { remove = \"<a>\"; } )"),
                 "(string):2: providers.p.sanitize_rules[0].: remove needs until (the end of the "
                 "region)");
    expect_error(RULES("( { remove = \"<a>\"; until = \"</a>\"; word = true; } )"),
                 "(string):2: providers.p.sanitize_rules[0].: with and word go with replace, not "
                 "remove");
    expect_error(RULES("( { replace = \" Kiro\"; with = \"C\"; word = true; } )"),
                 "(string):2: providers.p.sanitize_rules[0].replace: a word rule's text must "
                 "start and end with a letter or digit");
    expect_error(RULES("( { replace = \"\"; with = \"C\"; } )"),
                 "(string):2: providers.p.sanitize_rules[0].replace: must be 1 to 256 bytes");
    expect_error(RULES("( { replace = \"a\"; with = \"C\"; regex = true; } )"),
                 "(string):2: providers.p.sanitize_rules[0].regex: unknown setting");
    expect_error(RULES("( { replace = \"\\xff\"; with = \"C\"; } )"),
                 "(string):2: providers.p.sanitize_rules[0].replace: is not valid UTF-8");
#undef RULES
    expect_error("continuation = { max_rounds = 21; };\n",
                 "(string):1: continuation.max_rounds: must be between 0 and 20 (got 21)");
}

/* The admin API's JSON form of the answer settings: read, refused, written. */
static void test_answers_json(void **state)
{
    (void)state;
    agw_provider_cfg p = { .continuation = -1, .sanitize = -1, .sanitize_defaults = 1 };
    char why[256] = "";
    static const char doc[] =
        "{\"continuation\":true,\"sanitize\":null,\"sanitize_defaults\":false,"
        "\"sanitize_thinking\":true,\"sanitize_rules\":[{\"replace\":\"Amazon Q\","
        "\"with\":\"Claude\",\"word\":true},{\"replace\":\"\\u00e9\",\"with\":\"\"},"
        "{\"remove\":\"<a>\",\"until\":\"</a>\"}]}";
    assert_int_equal(agw_config_answers_from_json((agw_str){ doc, sizeof doc - 1 }, &p, why, sizeof why), AGW_OK);
    assert_int_equal(p.continuation, 1);
    assert_int_equal(p.sanitize, -1);
    assert_int_equal(p.sanitize_defaults, 0);
    assert_int_equal(p.sanitize_thinking, 1);
    assert_int_equal(p.n_sanitize_rules, 3);
    assert_int_equal(p.sanitize_rules[0].kind, AGW_RULE_REPLACE_WORD);
    assert_string_equal(p.sanitize_rules[1].pattern, "\xc3\xa9");
    assert_int_equal(p.sanitize_rules[2].kind, AGW_RULE_REMOVE);
    agw_buf out = AGW_BUF_INIT(1 << 16);
    assert_int_equal(agw_config_answers_to_json(&p, &out), AGW_OK);
    assert_string_equal(out.data,
                        "{\"continuation\":true,\"sanitize\":null,\"sanitize_defaults\":false,"
                        "\"sanitize_thinking\":true,\"sanitize_rules\":[{\"replace\":\"Amazon Q\","
                        "\"with\":\"Claude\",\"word\":true},{\"replace\":\"\xc3\xa9\",\"with\":\"\"},"
                        "{\"remove\":\"<a>\",\"until\":\"</a>\"}]}");
    /* what it wrote reads back the same */
    agw_provider_cfg q = { .continuation = -1, .sanitize = -1, .sanitize_defaults = 1 };
    assert_int_equal(agw_config_answers_from_json(agw_buf_view(&out), &q, why, sizeof why), AGW_OK);
    assert_int_equal(q.n_sanitize_rules, 3);
    agw_config_rules_free(&q);
    agw_buf_free(&out);

    static const struct {
        const char *doc, *why;
    } bad[] = {
        { "[]", "must be an object" },
        { "{\"colour\":1}", "colour: unknown setting" },
        { "{\"sanitize\":1}", "sanitize: must be true or false or null (the type's default)" },
        { "{\"sanitize_thinking\":null}", "sanitize_thinking: must be true or false" },
        { "{\"sanitize_rules\":{}}", "sanitize_rules: must be an array of rule objects" },
        { "{\"sanitize_rules\":[1]}", "sanitize_rules[0]: must be an object" },
        { "{\"sanitize_rules\":[{\"replace\":\"a\",\"regex\":true}]}",
          "sanitize_rules[0].regex: unknown setting" },
        { "{\"sanitize_rules\":[{\"with\":\"a\"}]}",
          "sanitize_rules[0]: has either replace (with with) or remove (with until)" },
        { "{\"sanitize_rules\":[{\"remove\":\"a\"}]}",
          "sanitize_rules[0]: remove needs until (the end of the region)" },
        { "{\"sanitize_rules\":[{\"replace\":\" x\",\"word\":true}]}",
          "sanitize_rules[0].replace: a word rule's text must start and end with a letter or "
          "digit" },
        { "{\"sanitize_rules\":[{\"replace\":\"a\\u0000\"}]}",
          "sanitize_rules[0]: replace, with, remove and until must be strings" },
        { "{\"sanitize_rules\":[{\"replace\":\"\"}]}",
          "sanitize_rules[0].replace: must be 1 to 256 bytes" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        assert_int_equal(agw_config_answers_from_json(agw_str_c(bad[i].doc), &p, why, sizeof why),
                         AGW_EINVAL);
        assert_string_equal(why, bad[i].why);
        assert_int_equal(p.n_sanitize_rules, 3); /* unchanged */
    }
    agw_config_rules_free(&p);
}

/* What a reload cannot change is named, with both values, for the program
 * that reads it, and nothing else is. */
static void test_start_only_changes(void **state)
{
    (void)state;
    agw_config *running = parse_ok("server = { threads = 16; shutdown_grace_seconds = 60; };\n"
                                   "usage = { required = true; retention_days = 90; };\n",
                                   "/srv/gw");
    agw_config *same = parse_ok("server = { threads = 16; log_level = \"debug\"; };\n"
                                "defaults = { max_attempts = 5; };\n",
                                "/srv/gw");
    agw_config *fresh = parse_ok("server = { threads = 32; shutdown_grace_seconds = 5; };\n"
                                 "usage = { required = false; retention_days = 90;\n"
                                 "          wal_reset_mib = 4; ring_dir = \"ring\"; };\n"
                                 "defaults = { health_check_seconds = 7; };\n",
                                 "/srv/gw");
    agw_buf out;
    agw_buf_init(&out, 4096);
    assert_int_equal(agw_config_start_only_changes(running, same, AGW_CONFIG_READ_BY_GATEWAY,
                                                   &out), 0);
    assert_int_equal(out.len, 0);
    assert_int_equal(agw_config_start_only_changes(running, fresh, AGW_CONFIG_READ_BY_GATEWAY,
                                                   &out), 6);
    assert_string_equal(out.data, "server.threads (16 -> 32), server.shutdown_grace_seconds (60 -> 5), "
                                  "defaults.health_check_seconds (60 -> 7), "
                                  "usage.required (true -> false), usage.wal_reset_mib (16 -> 4), "
                                  "usage.ring_dir (\"" AGW_CONFIG_RING_DIR "\" -> \"/srv/gw/ring\")");
    /* "" (the ring beside the database) is a value like any other. */
    agw_config *beside = parse_ok("usage = { ring_dir = \"\"; };\n", "/srv/gw");
    agw_buf_reset(&out);
    assert_int_equal(agw_config_start_only_changes(running, beside, AGW_CONFIG_READ_BY_GATEWAY,
                                                   &out), 1);
    assert_string_equal(out.data, "usage.ring_dir (\"" AGW_CONFIG_RING_DIR "\" -> \"\")");
    agw_config_free(beside);
    agw_buf_reset(&out);
    assert_int_equal(agw_config_start_only_changes(running, fresh, AGW_CONFIG_READ_BY_ADMIN,
                                                   &out), 1);
    assert_string_equal(out.data, "server.shutdown_grace_seconds (60 -> 5)");
    agw_buf_free(&out);
    agw_config_free(running);
    agw_config_free(same);
    agw_config_free(fresh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_provider_type_names),
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_defaults_when_absent),
        cmocka_unit_test(test_empty_strings_mean_unset),
        cmocka_unit_test(test_range_bounds_accepted),
        cmocka_unit_test(test_every_log_level_and_strategy),
        cmocka_unit_test(test_err_unknown_top_level),
        cmocka_unit_test(test_err_unknown_key_in_group),
        cmocka_unit_test(test_err_wrong_type),
        cmocka_unit_test(test_err_out_of_range),
        cmocka_unit_test(test_err_bad_log_level),
        cmocka_unit_test(test_err_bad_lb_strategy),
        cmocka_unit_test(test_err_provider_name),
        cmocka_unit_test(test_provider_name_rule),
        cmocka_unit_test(test_err_provider_name_length),
        cmocka_unit_test(test_err_model_name_length),
        cmocka_unit_test(test_err_provider_type),
        cmocka_unit_test(test_err_provider_base_url),
        cmocka_unit_test(test_copilot_settings),
        cmocka_unit_test(test_err_duplicate_provider),
        cmocka_unit_test(test_err_default_provider_missing),
        cmocka_unit_test(test_err_database_path_empty),
        cmocka_unit_test(test_err_syntax),
        cmocka_unit_test(test_err_reporting_edges),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_base_url_trim_and_defaults),
        cmocka_unit_test(test_provider_lookup),
        cmocka_unit_test_setup_teardown(test_load_missing_file, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_load_with_include, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_load_errors_name_the_file, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_load_relative_path_in_cwd, tmp_setup, tmp_teardown),
        cmocka_unit_test(test_security_settings),
        cmocka_unit_test(test_link_local_base_url_refused),
        cmocka_unit_test(test_url_origin),
        cmocka_unit_test(test_admin_key_hashed),
        cmocka_unit_test(test_reference_counted),
        cmocka_unit_test(test_start_only_changes),
        cmocka_unit_test(test_example_file_matches_defaults),
        cmocka_unit_test(test_answer_rules),
        cmocka_unit_test(test_answers_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
