/*
 * app: antigw-fcgi's state and its entry points for the FastCGI server
 * (net/fcgi_server.h). A request goes endpoint -> authenticate -> admit ->
 * route -> call -> account; dispatch.c follows that line, and each step lives
 * in the module that owns it: request.h (the request and its answers),
 * auth.c, model_call.h (body checks, routing, admission), failover.h (the
 * attempts on each candidate), endpoints.h (what each path does).
 *
 * agw_app is built once at start and read-only afterwards (the catalog and the
 * usage log synchronise themselves); each worker thread has an
 * agw_app_worker with its own libcurl handle and SQLite connection.
 */
#ifndef AGW_APP_H
#define AGW_APP_H

#include "tenant/catalog.h"
#include "core/config.h"
#include "net/fcgi_server.h"
#include "route/lb.h"
#include "state/shm.h"
#include "state/store.h"
#include "net/upstream.h"
#include "tenant/usage.h"

typedef struct {
    const agw_config *cfg;         /* antigw.cfg as loaded at start (database.path, threads);
                                      requests use the catalog's view, which a reload renews */
    const char *config_path;       /* what SIGHUP reloads; NULL when started on the defaults */
    int threads_from_cli;          /* -t was given: the file's server.threads is not read */
    int64_t started_at;            /* Unix time this process loaded its config */
    agw_shm *shm;                  /* the pool's shared segment: generation, limiter */
    agw_catalog_holder *catalog;   /* providers (config + database) and client keys */
    agw_usage_log *usage;          /* the pool's usage ring, and this process's drainer */
    agw_lb lb;                     /* per-provider stats in the shm (lb.h); unbound = none */
    struct agw_health *health;     /* this process's prober thread (health.h), or NULL */
} agw_app;

typedef struct {
    agw_upstream *upstream;
    agw_store *store;              /* this thread's connection: key lookups, catalog reloads */
    int index;
} agw_app_worker;

void *agw_app_worker_init(void *app, int index);
void agw_app_worker_done(void *app, void *state);
void agw_app_handle(void *app, agw_server_worker *w, FCGX_Request *req);

#endif
