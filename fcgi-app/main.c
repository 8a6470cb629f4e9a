/*
 * antigw-fcgi: the data plane. Started by spawn-fcgi (fd 0 is the listening
 * FastCGI socket), usually as several processes under multiwatch.
 */
#include "config.h"
#include "core.h"
#include "handlers.h"
#include "server.h"
#include "store.h"
#include "upstream.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

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

static const char *default_config_path(void)
{
    const char *env = getenv("ANTIGW_CONFIG");
    if (env && *env)
        return env;
    static char sys[512];
    snprintf(sys, sizeof sys, "%s/antigw/antigw.cfg", SYSCONFDIR);
    return access(sys, R_OK) == 0 ? sys : NULL;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "threads", required_argument, NULL, 't' },
        { "check-config", no_argument, NULL, 'C' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *path = NULL;
    int threads = 0, check_only = 0, opt;
    while ((opt = getopt_long(argc, argv, "c:t:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 't':
            threads = atoi(optarg);
            if (threads < 1 || threads > 1024) {
                fprintf(stderr, "antigw-fcgi: --threads must be between 1 and 1024\n");
                return 2;
            }
            break;
        case 'C': check_only = 1; break;
        case 'V': printf("antigw-fcgi %s\n", PACKAGE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (!path)
        path = default_config_path();

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
    agw_log_set_level((agw_log_level)cfg->server.log_level);
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

    /* Migrate once here, so the first request never pays for it. */
    agw_store *store = NULL;
    if (agw_store_open(cfg->database.path, &store, err, sizeof err) != AGW_OK) {
        agw_log_error("database: %s", err);
        agw_config_free(cfg);
        return 1;
    }
    agw_store_close(store);

    if (agw_upstream_global_init() != AGW_OK) {
        agw_log_error("libcurl initialisation failed");
        agw_config_free(cfg);
        return 1;
    }
    agw_app app = { .cfg = cfg, .started_at = agw_wall_s() };
    agw_server_opts opts = {
        .threads = cfg->server.threads,
        .shutdown_grace_s = cfg->server.shutdown_grace_s,
        .app = &app,
        .handle = agw_app_handle,
        .worker_init = agw_app_worker_init,
        .worker_done = agw_app_worker_done,
    };
    int code = agw_server_run(&opts);
    agw_config_free(cfg);
    return code;
}
