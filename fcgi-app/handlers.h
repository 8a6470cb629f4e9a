/*
 * handlers: the endpoints of antigw-fcgi and the per-request flow
 * (DESIGN.md §4): path and method, client authentication, body limits, JSON
 * checks, model routing, then the relay to the chosen provider.
 *
 * agw_app is built once at start and read-only afterwards; each worker thread
 * has an agw_app_worker with its own libcurl handle.
 */
#ifndef AGW_HANDLERS_H
#define AGW_HANDLERS_H

#include "config.h"
#include "server.h"
#include "upstream.h"

typedef struct {
    const agw_config *cfg;
    int64_t started_at;   /* Unix time this process loaded its config */
} agw_app;

typedef struct {
    agw_upstream *upstream;
    int index;
} agw_app_worker;

void *agw_app_worker_init(void *app, int index);
void agw_app_worker_done(void *app, void *state);
void agw_app_handle(void *app, agw_worker *w, FCGX_Request *req);

#endif
