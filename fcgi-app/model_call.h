/*
 * model_call: what every call to a model has in common before it goes
 * upstream: the body read and checked, the model found, the candidates
 * routed and ordered, the key's restrictions and limits applied.
 *
 * An agw_model_call borrows the request's body and config; it owns
 * model_buf (the decoded model name) and `skips`, released with
 * agw_model_call_free, which must run in the thread that prepared it.
 */
#ifndef AGW_MODEL_CALL_H
#define AGW_MODEL_CALL_H

#include "request.h"

#include "provider/provider.h"
#include "route/route.h"

/* Client JSON deeper than this is refused before anything else looks at it. */
#define AGW_MODEL_CALL_MAX_DEPTH 128
/* Longest model name accepted from a client: the gateway's one model-name
 * limit, so the name fits usage rows and metrics labels whole. */
#define AGW_MODEL_CALL_MAX_MODEL AGW_CONFIG_MODEL_MAX

typedef struct {
    agw_provider_op op;    /* what the client asked for */
    agw_str body;          /* the client's bytes */
    agw_str model_raw;     /* the "model" value token, NULL ptr when absent */
    agw_str model;         /* the model name as the client meant it */
    int stream;
    agw_buf model_buf;     /* owns the decoded model name */
    /* where the body's long values end, active in the handling thread from
     * the body's validation on, so the walks that follow (checks, limits,
     * decoders) skip them instead of scanning them (json.h) */
    struct agw_json_skips *skips;
    agw_route_set cands;   /* the candidates in the order they are tried */
    size_t n_tries;        /* how many of cands are tried at most */
} agw_model_call;

void agw_model_call_init(agw_model_call *mc, agw_provider_op op);
void agw_model_call_free(agw_model_call *mc);

/* Reads and checks the body, finds the model, routes it for a client of
 * protocol r->proto, and checks what the key allows and what the first
 * candidate can do. Returns 0 when it has already answered the client. */
int agw_model_call_prepare(agw_request *r, agw_model_call *mc);

/* QPM and TPM admission across the pool (limiter.h), with the key's
 * x-ratelimit-* lines added to r->headers. Returns 0 when the client already
 * got its 429 (or 503 when the limiter has no room). */
int agw_model_call_admit(agw_request *r, const agw_model_call *mc);

#endif
