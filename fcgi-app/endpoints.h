/*
 * endpoints: what each path of antigw-fcgi does once dispatch.c has checked
 * the method and, where the path needs it, the client's key. Each answers
 * the client itself.
 */
#ifndef AGW_ENDPOINTS_H
#define AGW_ENDPOINTS_H

#include "request.h"

#include "provider/provider.h"

/* POST /v1/chat/completions (AGW_OP_CHAT) and /v1/messages (AGW_OP_MESSAGES). */
void agw_endpoint_model_call(agw_request *r, agw_provider_op op);
/* POST /v1/messages/count_tokens */
void agw_endpoint_count_tokens(agw_request *r);
/* POST /v1/embeddings */
void agw_endpoint_embeddings(agw_request *r);
/* GET /v1/models */
void agw_endpoint_models(agw_request *r);
/* GET /v1/models/{id}: one model of the catalog, 404 for an unknown id */
void agw_endpoint_model(agw_request *r, agw_str id);
/* GET /metrics */
void agw_endpoint_metrics(agw_request *r);
/* GET /health */
void agw_endpoint_health(agw_request *r);

#endif
