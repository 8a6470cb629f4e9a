/*
 * antigw-fcgi: the data plane. Started by spawn-fcgi (fd 0 is the listening
 * FastCGI socket), usually as several processes under multiwatch.
 */
#include "tenant/catalog.h"
#include "core/cli.h"
#include "core/config.h"
#include "core/core.h"
#include "core/crypto.h"
#include "app.h"
#include "net/fcgi_server.h"
#include "route/health.h"
#include "state/store.h"
#include "net/upstream.h"
#include "provider/credential.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac-config.h"

static void usage(FILE *to)
{
    fprintf(to,
            "usage: antigw-fcgi [-c FILE] [-t THREADS] [--check-config] [--version]\n"
            "  -c, --config FILE   configuration (default: $ANTIGW_CONFIG, then %s/antigw/antigw.cfg,\n"
            "                      then built-in defaults)\n"
            "  -t, --threads N     worker threads per process (overrides server.threads)\n"
            "      --check-config  load and validate the configuration, then exit\n"
            "      --version       print the version and exit\n"
            "Run it under spawn-fcgi, which passes the listening socket as fd 0.\n",
            SYSCONFDIR);
}

/* Everything a process shares between its threads, opened before they start:
 * the schema (migrated once here, so the first request never pays for it),
 * the shared segment, the secrets key, the first catalog and the usage log. */
static int start(const agw_config *cfg, agw_app *app, agw_secret_key *secrets)
{
    char err[AGW_ERR_LEN];
    int have_secrets = 0;
    memset(secrets, 0, sizeof *secrets);
    if (cfg->secrets.key_file) {
        if (agw_secret_key_load(cfg->secrets.key_file, secrets, err, sizeof err) != AGW_OK) {
            agw_log_error("secrets.key_file: %s", err);
            return 1;
        }
        have_secrets = 1;
    }
    agw_store *store = NULL;
    if (agw_store_open(cfg->database.path, &store, err, sizeof err) != AGW_OK) {
        agw_log_error("database: %s", err);
        return 1;
    }
    /* Accounts that log in (Kiro, Copilot) read and renew their tokens there. */
    agw_cred_settings cs = { cfg->database.path, have_secrets ? secrets : NULL, 0, 0, 0 };
    if (agw_cred_setup(&cs) != AGW_OK) {
        agw_log_error("credentials: cannot be set up");
        agw_store_close(store);
        return 1;
    }
    char *state = agw_shm_path_for_db(cfg->database.path);
    agw_err e = agw_shm_attach(state, &app->shm, err, sizeof err);
    free(state);
    if (e) {
        agw_log_error("shared state: %s", err);
        agw_store_close(store);
        return 1;
    }
    size_t reserved_len;
    void *reserved = agw_shm_reserved(app->shm, &reserved_len);
    agw_lb_set_half_life((uint64_t)cfg->defaults.lb_half_life_seconds * 1000u);
    if (agw_lb_bind(&app->lb, reserved, reserved_len) != AGW_OK) {
        agw_log_error("shared state: no room for the load balancer's statistics");
        agw_store_close(store);
        return 1;
    }
    agw_lb_join(&app->lb);
    e = agw_catalog_holder_new(cfg, app->shm, have_secrets ? secrets : NULL,
                               agw_store_db(store), &app->catalog, err, sizeof err);
    agw_store_close(store);
    if (e) {
        agw_log_error("catalog: %s", err);
        return 1;
    }
    agw_usage_log_opts uo = {
        .ring_records = (uint32_t)cfg->usage.ring_records,
        .required = cfg->usage.required,
        .drain = 1,
        .retention_days = cfg->usage.retention_days,
        .wal_reset_bytes = (uint64_t)cfg->usage.wal_reset_mib << 20,
        .ring_dir = cfg->usage.ring_dir,
    };
    if (agw_usage_log_open(cfg->database.path, &uo, &app->usage, err, sizeof err) != AGW_OK) {
        agw_log_error("usage ring: %s", err);
        return 1;
    }
    if (agw_health_start(cfg, app->catalog, &app->lb, &app->health, err, sizeof err) != AGW_OK) {
        agw_log_error("%s", err);
        return 1;
    }
    if (cfg->tenant.enabled)
        agw_log_info("tenant mode: clients authenticate with keys from the database");
    return 0;
}

/* Settings bound to what the process opened at start; a reload that changes
 * one is refused rather than half applied. NULL when none changed. */
static const char *restart_only_change(const agw_config *old, const agw_config *fresh)
{
    if (strcmp(old->database.path, fresh->database.path) != 0)
        return "database.path";
    if (old->server.batch_scheduling != fresh->server.batch_scheduling)
        return "server.batch_scheduling";
    if ((old->secrets.key_file == NULL) != (fresh->secrets.key_file == NULL) ||
        (old->secrets.key_file && strcmp(old->secrets.key_file, fresh->secrets.key_file) != 0))
        return "secrets.key_file";
    return NULL;
}

/* SIGHUP (fcgi_server.h): antigw.cfg again. New requests get a catalog built
 * on the new file, requests in flight keep the one they started with
 * (catalog.h). A file that does not load leaves everything as it was. */
static void reload(void *app_ptr)
{
    agw_app *app = app_ptr;
    agw_config *fresh = NULL;
    char err[AGW_ERR_LEN];
    if (!app->config_path) {
        agw_log_warn("reload: started without a configuration file: nothing to reload");
        return;
    }
    if (agw_config_load(app->config_path, &fresh, err, sizeof err) != AGW_OK) {
        agw_log_error("reload refused, the running configuration stays: %s", err);
        return;
    }
    const char *fixed = restart_only_change(app->cfg, fresh);
    if (fixed) {
        agw_log_error("reload refused, the running configuration stays: %s changed, which "
                      "needs a restart", fixed);
        agw_config_free(fresh);
        return;
    }
    if (app->threads_from_cli)
        fresh->server.threads = app->cfg->server.threads;
    agw_config_warn_start_only(app->cfg, fresh, AGW_CONFIG_READ_BY_GATEWAY, "the pool");
    agw_config_hash_admin_key(fresh, getenv("ANTIGW_ADMIN_KEY"));
    agw_log_set_level((agw_log_level)fresh->server.log_level);
    agw_budget_set_limit(agw_budget_process(), fresh->server.max_memory_bytes);
    agw_upstream_set_allow_link_local(fresh->upstream.allow_link_local);
    agw_catalog_holder_rebase(app->catalog, fresh);
    agw_log_info("reloaded %s: %lu providers", fresh->path, (unsigned long)fresh->n_providers);
    agw_config_free(fresh); /* the holder has its own reference */
}

static void stop(agw_app *app, agw_secret_key *secrets)
{
    agw_health_stop(app->health);
    agw_usage_log_close(app->usage);
    agw_catalog_holder_free(app->catalog);
    agw_shm_detach(app->shm);
    agw_cred_teardown();
    agw_secret_key_wipe(secrets);
}

int main(int argc, char **argv)
{
    static const agw_cli_spec spec = { "antigw-fcgi", 1024, usage };
    agw_cli cli = { .threads = 0 }; /* 0: server.threads */
    int rc = agw_cli_parse(&spec, argc, argv, &cli);
    if (rc >= 0)
        return rc;
    const char *path = cli.config_path;
    int threads = cli.threads, check_only = cli.check_only;

    agw_config *cfg = NULL;
    char err[AGW_ERR_LEN];
    if (path) {
        if (agw_config_load(path, &cfg, err, sizeof err) != AGW_OK) {
            fprintf(stderr, "antigw-fcgi: %s\n", err);
            return 1;
        }
    } else {
        cfg = agw_config_defaults(".");
    }
    if (check_only) {
        printf("%s: ok, %lu providers\n", cfg->path, (unsigned long)cfg->n_providers);
        for (size_t i = 0; i < cfg->n_providers; i++)
            printf("provider %s %s %s%s\n", cfg->providers[i].name,
                   agw_provider_type_name(cfg->providers[i].type), cfg->providers[i].base_url,
                   cfg->providers[i].enabled ? "" : " (disabled)");
        agw_config_free(cfg);
        return 0;
    }
    /* This process checks the admin key (/health details) but never sends it:
     * it keeps the key's SHA-256 only. */
    agw_config_hash_admin_key(cfg, getenv("ANTIGW_ADMIN_KEY"));
    agw_log_set_level((agw_log_level)cfg->server.log_level);
    agw_budget_set_limit(agw_budget_process(), cfg->server.max_memory_bytes);
    agw_upstream_set_allow_link_local(cfg->upstream.allow_link_local);
    if (threads)
        cfg->server.threads = threads;

    if (!agw_server_fd0_listening()) {
        fprintf(stderr, "antigw-fcgi: fd 0 is not a listening socket: start it with spawn-fcgi "
                        "(see deploy/quickstart.sh)\n");
        agw_config_free(cfg);
        return 2;
    }
    if (!cfg->auth.api_key && !cfg->tenant.enabled)
        agw_log_warn("auth.api_key is not set: any client that reaches the web server can use "
                     "the configured providers");
    if (cfg->n_providers == 0)
        agw_log_warn("no providers configured in %s: model calls will get 404", cfg->path);

    if (agw_upstream_global_init() != AGW_OK) {
        agw_log_error("libcurl initialisation failed");
        agw_config_free(cfg);
        return 1;
    }
    agw_app app = { .cfg = cfg, .config_path = path, .threads_from_cli = threads != 0,
                    .started_at = agw_wall_s() };
    agw_secret_key secrets;
    int code = start(cfg, &app, &secrets);
    if (code) {
        stop(&app, &secrets);
        agw_config_free(cfg);
        return code;
    }
    agw_server_opts opts = {
        .threads = cfg->server.threads,
        .shutdown_grace_s = cfg->server.shutdown_grace_s,
        .batch_scheduling = cfg->server.batch_scheduling,
        .app = &app,
        .handle = agw_app_handle,
        .worker_init = agw_app_worker_init,
        .worker_done = agw_app_worker_done,
        .reload = reload,
    };
    /* An access line per call from every worker thread: buffered, see core.h. */
    if (agw_log_buffer_start() != AGW_OK)
        agw_log_warn("log lines are written one at a time: no thread for the log buffer");
    code = agw_server_run(&opts);
    stop(&app, &secrets); /* the drainer, if this process is it, stores what is complete */
    agw_log_buffer_stop();
    agw_config_free(cfg);
    return code;
}
