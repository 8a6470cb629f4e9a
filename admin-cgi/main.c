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

#include "tenant/catalog.h"
#include "core/cli.h"
#include "core/config.h"
#include "core/core.h"
#include "net/fcgi_server.h"
#include "net/upstream.h"
#include "provider/credential.h"
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

/* Provider keys sealed before their type and base_url origin were bound
 * (associated data "provider:<name>" alone) are re-sealed for their row's
 * name, type and origin, once, in one transaction, before the admin API
 * serves: the data plane opens only the bound format. Returns how many rows
 * were re-sealed, or -1 when the database refused (the admin app then does not
 * start, since it would keep writing beside rows nobody can open). */
static int migrate_secrets(sqlite3 *db, const agw_secret_key *k)
{
    static const char sel[] = "SELECT id, name, type, base_url, secret_enc FROM providers"
                              " WHERE secret_enc IS NOT NULL";
    sqlite3_stmt *st = NULL, *up = NULL;
    int n = 0, rc;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_prepare_v2(db, sel, sizeof sel - 1, &st, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "UPDATE providers SET secret_enc = ? WHERE id = ?", -1, &up,
                           NULL) != SQLITE_OK)
        goto fail;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 1);
        const char *type = (const char *)sqlite3_column_text(st, 2);
        const char *url = (const char *)sqlite3_column_text(st, 3);
        agw_str sealed = { sqlite3_column_blob(st, 4), (size_t)sqlite3_column_bytes(st, 4) };
        agw_buf plain = AGW_BUF_INIT(AGW_AEAD_MAX_PLAIN + 1);
        agw_buf fresh = AGW_BUF_INIT(AGW_AEAD_MAX_PLAIN + AGW_AEAD_OVERHEAD);
        if (!name || !type || !url ||
            agw_catalog_open_secret(k, name, type, url, sealed, &plain) == AGW_OK) {
            agw_wipe(plain.data, plain.len);
            agw_buf_free(&plain);
            continue; /* already bound (or malformed: the catalog reports it) */
        }
        int ok = agw_catalog_open_secret_v1(k, name, sealed, &plain) == AGW_OK &&
                 agw_catalog_seal_secret(k, name, type, url, agw_buf_view(&plain), &fresh) ==
                     AGW_OK;
        agw_wipe(plain.data, plain.len);
        agw_buf_free(&plain);
        if (!ok) {
            agw_log_warn("provider %s: its stored key does not open with secrets.key_file: left "
                         "as it is (set its api_key again)", name);
            agw_buf_free(&fresh);
            continue;
        }
        sqlite3_bind_blob(up, 1, fresh.data, (int)fresh.len, SQLITE_TRANSIENT);
        sqlite3_bind_int64(up, 2, sqlite3_column_int64(st, 0));
        rc = sqlite3_step(up);
        sqlite3_reset(up);
        agw_buf_free(&fresh);
        if (rc != SQLITE_DONE)
            goto fail;
        n++;
    }
    if (rc != SQLITE_DONE)
        goto fail;
    sqlite3_finalize(st);
    sqlite3_finalize(up);
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return n;
fail:
    agw_log_error("migrating provider keys: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_finalize(up);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

/* The admin key: ANTIGW_ADMIN_KEY, else auth.admin_key; NULL when neither
 * is long enough. */
static const char *admin_key_of(const agw_config *cfg)
{
    const char *k = getenv("ANTIGW_ADMIN_KEY");
    if (!k || !*k)
        k = cfg->auth.admin_key;
    return k && strlen(k) >= MIN_ADMIN_KEY ? k : NULL;
}

/* Configurations replaced by a reload. An admin request takes app->cfg once
 * at its start without holding a reference, so a replaced one is kept until
 * exit (a few KiB per reload). */
static agw_config **retired;
static size_t n_retired;

/* SIGHUP (fcgi_server.h): antigw.cfg again, for the requests that start
 * after it; a file that does not load, or has no admin key, is refused and the
 * running configuration stays. */
static void reload(void *app_ptr)
{
    agw_admin_app *app = app_ptr;
    agw_config *fresh = NULL;
    char err[AGW_ERR_LEN];
    if (agw_config_load(app->cfg->path, &fresh, err, sizeof err) != AGW_OK) {
        agw_log_error("reload refused, the running configuration stays: %s", err);
        return;
    }
    const char *key = admin_key_of(fresh);
    if (!key || strcmp(fresh->database.path, app->cfg->database.path) != 0) {
        agw_log_error("reload refused, the running configuration stays: %s",
                      key ? "database.path changed, which needs a restart"
                          : "no admin key of at least 16 characters");
        agw_config_free(fresh);
        return;
    }
    /* Compared with the configuration of the start: the first one retired, if any. */
    agw_config_warn_start_only(n_retired ? retired[0] : app->cfg, fresh, AGW_CONFIG_READ_BY_ADMIN,
                               "antigw-admin");
    retired = xrealloc(retired, (n_retired + 1) * sizeof *retired);
    retired[n_retired++] = (agw_config *)app->cfg;
    __atomic_store_n(&app->admin_key, key, __ATOMIC_RELEASE);
    __atomic_store_n(&app->cfg, fresh, __ATOMIC_RELEASE);
    agw_log_set_level((agw_log_level)fresh->server.log_level);
    agw_upstream_set_allow_link_local(fresh->upstream.allow_link_local);
    agw_log_info("reloaded %s", fresh->path);
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
    const char *admin_key = admin_key_of(cfg);
    if (!admin_key) {
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
    int migrated = have_secrets ? migrate_secrets(agw_store_db(store), &secrets) : 0;
    agw_store_close(store);
    if (migrated < 0)
        goto out;
    char *state = agw_shm_path_for_db(cfg->database.path);
    agw_err e = agw_shm_attach(state, &shm, err, sizeof err);
    free(state);
    if (e) {
        agw_log_error("shared state: %s", err);
        goto out;
    }
    if (migrated > 0) {
        agw_log_info("re-sealed %d provider keys for their type and base_url origin", migrated);
        agw_shm_generation_bump(shm);
    }
    /* The provider test (POST /admin/providers/:id/test) calls upstreams. */
    if (agw_upstream_global_init() != AGW_OK) {
        agw_log_error("libcurl could not be initialised");
        goto out;
    }
    agw_upstream_set_allow_link_local(cfg->upstream.allow_link_local);
    agw_cred_settings cs = { cfg->database.path, have_secrets ? &secrets : NULL, 0, 0, 0 };
    if (agw_cred_setup(&cs) != AGW_OK) {
        agw_log_error("credentials: cannot be set up");
        goto out;
    }
    agw_admin_app app = { cfg, admin_key, shm, have_secrets ? &secrets : NULL };
    size_t reserved_len;
    void *reserved = agw_shm_reserved(shm, &reserved_len);
    agw_lb lb;
    if (agw_lb_bind(&lb, reserved, reserved_len) == AGW_OK)
        agw_admin_providers_bind(&lb);
    else
        agw_log_warn("shared state: no load-balancer region; provider health is not shown");
    agw_server_opts opts = {
        .threads = threads,
        .shutdown_grace_s = 10,
        .app = &app,
        .handle = agw_admin_handle,
        .worker_init = agw_admin_worker_init,
        .worker_done = agw_admin_worker_done,
        .reload = reload,
    };
    code = agw_server_run(&opts);
    cfg = (agw_config *)app.cfg;
out:
    agw_cred_teardown();
    agw_shm_detach(shm);
    if (have_secrets)
        agw_secret_key_wipe(&secrets);
    agw_config_free(cfg);
    for (size_t i = 0; i < n_retired; i++)
        agw_config_free(retired[i]);
    free(retired);
    return code;
}
