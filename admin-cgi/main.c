/*
 * antigw-admin: the control plane, in a process of its own: it writes
 * providers and keys to the database and bumps the shared generation, and the
 * antigw-fcgi processes pick the change up at their next request, without a
 * restart (catalog.h). Started by spawn-fcgi on its own socket, routed at
 * /admin by the web server.
 *
 * It refuses to start without an admin key (auth.admin_key, or
 * ANTIGW_ADMIN_KEY in the environment): the admin API adds providers and
 * client keys, so one open to anyone would give the gateway away.
 */
#include "admin.h"

#include "core/cli.h"
#include "core/config.h"
#include "core/core.h"
#include "net/fcgi_server.h"
#include "state/shm.h"
#include "state/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac-config.h"

/* Shorter admin keys are refused: the key guards every provider secret. */
#define MIN_ADMIN_KEY 16

static void usage(FILE *to)
{
    fprintf(to,
            "usage: antigw-admin [-c FILE] [-t THREADS] [--check-config] [--version]\n"
            "  -c, --config FILE   configuration (default: $ANTIGW_CONFIG, then %s/antigw/antigw.cfg)\n"
            "  -t, --threads N     worker threads (default 4)\n"
            "      --check-config  load and validate the configuration and the admin key, then exit\n"
            "      --version       print the version and exit\n"
            "The admin key comes from $ANTIGW_ADMIN_KEY, else auth.admin_key.\n"
            "Run it under spawn-fcgi, which passes the listening socket as fd 0.\n",
            SYSCONFDIR);
}

int main(int argc, char **argv)
{
    static const agw_cli_spec spec = { "antigw-admin", 64, usage };
    agw_cli cli = { .threads = 4 };
    int rc = agw_cli_parse(&spec, argc, argv, &cli);
    if (rc >= 0)
        return rc;
    const char *path = cli.config_path;
    int threads = cli.threads, check_only = cli.check_only;
    if (!path) {
        fprintf(stderr, "antigw-admin: no configuration: pass -c FILE or set ANTIGW_CONFIG\n");
        return 2;
    }
    agw_config *cfg = NULL;
    char err[AGW_ERR_LEN];
    if (agw_config_load(path, &cfg, err, sizeof err) != AGW_OK) {
        fprintf(stderr, "antigw-admin: %s\n", err);
        return 1;
    }
    const char *admin_key = getenv("ANTIGW_ADMIN_KEY");
    if (!admin_key || !*admin_key)
        admin_key = cfg->auth.admin_key;
    if (!admin_key || strlen(admin_key) < MIN_ADMIN_KEY) {
        fprintf(stderr,
                "antigw-admin: %s: refusing to serve the admin API without an admin key of at "
                "least %d characters: set auth.admin_key or ANTIGW_ADMIN_KEY\n",
                cfg->path, MIN_ADMIN_KEY);
        agw_config_free(cfg);
        return 1;
    }
    agw_secret_key secrets;
    int have_secrets = 0;
    if (cfg->secrets.key_file) {
        if (agw_secret_key_load(cfg->secrets.key_file, &secrets, err, sizeof err) != AGW_OK) {
            fprintf(stderr, "antigw-admin: secrets.key_file: %s\n", err);
            agw_config_free(cfg);
            return 1;
        }
        have_secrets = 1;
    }
    if (check_only) {
        printf("%s: ok, admin key set, %s\n", cfg->path,
               have_secrets ? "secrets key loaded" : "no secrets.key_file (provider keys cannot "
                                                     "be stored)");
        if (have_secrets)
            agw_secret_key_wipe(&secrets);
        agw_config_free(cfg);
        return 0;
    }
    agw_log_set_level((agw_log_level)cfg->server.log_level);
    if (!agw_server_fd0_listening()) {
        fprintf(stderr, "antigw-admin: fd 0 is not a listening socket: start it with spawn-fcgi "
                        "(see deploy/quickstart.sh)\n");
        agw_config_free(cfg);
        return 2;
    }
    if (!have_secrets)
        agw_log_warn("secrets.key_file is not set: providers with an api_key cannot be added");
    int code = 1;
    agw_store *store = NULL;
    agw_shm *shm = NULL;
    if (agw_store_open(cfg->database.path, &store, err, sizeof err) != AGW_OK) {
        agw_log_error("database: %s", err);
        goto out;
    }
    agw_store_close(store);
    char *state = agw_shm_path_for_db(cfg->database.path);
    agw_err e = agw_shm_attach(state, &shm, err, sizeof err);
    free(state);
    if (e) {
        agw_log_error("shared state: %s", err);
        goto out;
    }
    agw_admin_app app = { cfg, admin_key, shm, have_secrets ? &secrets : NULL };
    agw_server_opts opts = {
        .threads = threads,
        .shutdown_grace_s = 10,
        .app = &app,
        .handle = agw_admin_handle,
        .worker_init = agw_admin_worker_init,
        .worker_done = agw_admin_worker_done,
    };
    code = agw_server_run(&opts);
out:
    agw_shm_detach(shm);
    if (have_secrets)
        agw_secret_key_wipe(&secrets);
    agw_config_free(cfg);
    return code;
}
