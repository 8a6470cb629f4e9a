/*
 * provider: one interface for every upstream type, and the call it prepares.
 *
 * A provider type is a const agw_provider_ops: how a call authenticates (a
 * static key from the configuration, or a token source that may refresh),
 * which path and protocol serve each operation, which extra headers go with
 * it, how its health is probed and how its model list reads. OpenAI and
 * Anthropic are the first two; a new type is a new provider/type_<name>.c registered in provider.c's
 * table, and the request path does not change: it asks agw_provider_ops_of()
 * and agw_provider_prepare(), never for a type by name.
 *
 * The client's own credential never appears here: only the provider's.
 * Anthropic's `anthropic-version` and `anthropic-beta` from the client are
 * forwarded (values with control bytes refused), with 2023-06-01 as the
 * version when the client sent none.
 *
 * Ownership: the ops tables are static and immutable. agw_provider_call owns
 * its strings; release it with agw_provider_call_free().
 */
#ifndef AGW_PROVIDER_H
#define AGW_PROVIDER_H

#include "core/config.h"
#include "proto/apierr.h"

typedef enum {
    AGW_OP_CHAT = 0,     /* OpenAI chat completions */
    AGW_OP_MESSAGES,     /* Anthropic messages */
    AGW_OP_COUNT_TOKENS, /* Anthropic messages/count_tokens */
    AGW_OP_MODELS,       /* list models */
    AGW_OP_EMBEDDINGS,   /* OpenAI embeddings (OpenAI-type providers only) */
    AGW_OP_RESPONSES,    /* OpenAI Responses (OpenAI-type providers only) */
} agw_provider_op;

#define AGW_PROVIDER_MAX_HEADERS 16

typedef struct {
    char *url;
    char *headers[AGW_PROVIDER_MAX_HEADERS + 1]; /* NULL-terminated "Name: value" */
    size_t n_headers;
    /* The credential record version whose token authenticate() used
     * (provider/credential.h); 0 for a static key. After a 401 the caller
     * hands it to agw_cred_rejected() and retries once. */
    uint64_t credential_version;
    /* Kiro: the account's profile ARN, which the request body carries
     * (proto/kiro.h); NULL when none. */
    char *profile_arn;
} agw_provider_call;

/* The client headers a provider call may carry over (NULL when absent). */
typedef struct {
    const char *anthropic_version;
    const char *anthropic_beta;
    /* The client's body (as it goes upstream when passed through) and its
     * protocol, for providers whose headers depend on what it holds
     * (Copilot's X-Initiator and vision flag); an empty view when none. */
    agw_str body;
    agw_proto body_proto;
    /* The gateway's own follow-up call for the client (a continuation
     * round, proto/continuation.h), not a turn the client sent. */
    int followup;
} agw_client_hints;

/* How one model call goes to a provider: the protocol of its body and the
 * operation (endpoint) that takes it. */
typedef struct {
    agw_proto proto;
    agw_provider_op op;
} agw_provider_plan;

/* What a health probe's answer says (agw_provider_ops.probe_verdict). */
typedef enum {
    AGW_PROBE_PASSED = 0,    /* the server is there and takes the credential */
    AGW_PROBE_FAILED,        /* no answer, a timeout, or a server error */
    AGW_PROBE_AUTH_REJECTED, /* 401 or 403: a revoked or wrong key */
} agw_probe_verdict;

/* One provider's model list as read from its list endpoint. Owns its
 * strings; release with agw_provider_models_free(). AGW_PROVIDER_MODELS_INIT
 * is an empty list. */
typedef struct {
    char **ids;
    size_t n, cap;
    char *next; /* cursor of the next page; NULL after the last */
} agw_provider_models;

#define AGW_PROVIDER_MODELS_INIT { NULL, 0, 0, NULL }
/* Past this many ids a list is cut (a hostile server cannot grow it). */
#define AGW_PROVIDER_MODELS_MAX 4096u

typedef struct agw_provider_ops {
    agw_provider_type type;
    /* The wire protocol of its model calls: the codec a conversion encodes
     * for, and the protocol a same-protocol client passes through to. */
    agw_proto proto;
    /* The operation a model call of its protocol uses (CHAT or MESSAGES). */
    agw_provider_op model_op;
    /* The path appended to base_url for `op`; NULL when the type has no such
     * endpoint. */
    const char *(*path)(agw_provider_op op);
    /* Adds the headers that carry the provider's credential. A static key
     * cannot fail; a token source that must refresh first may answer
     * AGW_EIO (no usable token: the provider fails this call). A type whose
     * API host comes with its credential sets c->url to that base (owned by
     * the call); else base_url is the base. */
    agw_err (*authenticate)(const agw_provider_cfg *p, agw_provider_call *c);
    /* Adds the protocol headers `op` needs, from the client's hints where the
     * protocol lets a client choose. AGW_EINVAL when a hint cannot go into a
     * header. NULL: none. */
    agw_err (*extra_headers)(agw_provider_op op, const agw_client_hints *hints,
                             agw_provider_call *c);
    /* The operation a health probe sends (a cheap GET: the model list). */
    agw_provider_op probe_op;
    /* What a probe's HTTP status says about the provider. */
    agw_probe_verdict (*probe_verdict)(long status);
    /* Reads one page of the model list (a 2xx answer to AGW_OP_MODELS):
     * appends each model id to `out` and sets out->next to the cursor of
     * the page after it (NULL on the last page). AGW_EINVAL when `body` is
     * not such a list. NULL: the type's list cannot be read. */
    agw_err (*parse_models)(agw_str body, agw_provider_models *out);
    /* The query of the model list's first page ("?limit=1000"), and the
     * parameter that asks for the page after a cursor ("after_id"); either
     * NULL when the type has none. */
    const char *models_query;
    const char *models_after;
    /* The parameter that names the account's profile in the list's query,
     * when the call has one (Kiro: profileArn, which IAM Identity Center
     * accounts need); NULL: none. */
    const char *models_profile_param;
    /* The protocol and operation of a model call for `model` from a client
     * speaking `client`, for types that serve some models on several
     * endpoints (Copilot: Claude models natively in Anthropic's protocol).
     * AGW_EINVAL with `why` when the model cannot be served through this
     * gateway (a 400 to the client). NULL: always proto and model_op. */
    agw_err (*plan)(const agw_provider_cfg *p, agw_proto client, agw_str model,
                    agw_provider_plan *out, char *why, size_t whylen);
    /* For a provider without a models list of its own in the configuration:
     * 1 when the account serves `model`, 0 when it does not, -1 when it
     * cannot tell (routing then treats it as not listed). NULL: -1. */
    int (*serves)(const agw_provider_cfg *p, agw_str model);
    /* Fixes a body passed through in the client's protocol for `op` where
     * the type refuses what clients send (Copilot: tool calls without their
     * results). AGW_OK with the fixed body in `out` when it changed
     * something; AGW_ENOTFOUND when the body goes as it is (byte for byte);
     * AGW_EBUSY/AGW_ETOOBIG from `out`'s limits. NULL: always as it is. */
    agw_err (*repair_body)(agw_provider_op op, agw_str body, agw_buf *out);
    /* Appends the ids of the models the account serves, as this process
     * last learnt them with its token (Copilot), for the model catalog.
     * AGW_ENOTFOUND when it knows none. NULL: the prober's cached list. */
    agw_err (*account_models)(const agw_provider_cfg *p, agw_provider_models *out);
} agw_provider_ops;

/* The interface of a provider type; NULL for a type this gateway cannot call
 * yet (its model calls answer 501, probes skip it). */
const agw_provider_ops *agw_provider_ops_of(agw_provider_type t);

/* The protocol and operation of a model call of `model` (the name sent
 * upstream) on `p` for a client of `client`: ops->plan, or the type's own
 * protocol and model operation, except that an OpenAI provider with api =
 * "responses", or whose responses_models match the model, is called through
 * the Responses API. */
AGW_WARN_UNUSED agw_err agw_provider_plan_call(const agw_provider_cfg *p, agw_proto client,
                                               agw_str model, agw_provider_plan *out, char *why,
                                               size_t whylen);

/* 1 when providers of `p`'s type can be called. */
int agw_provider_callable(const agw_provider_cfg *p);

/* The URL and headers of `op` on `p`: the credential, the operation's extra
 * headers, and Content-Type for operations with a body. AGW_EINVAL when the
 * type cannot be called, has no such operation, or a hint is refused;
 * AGW_EIO when the credential is not available. `out` is left empty (safe to
 * free) on failure. */
AGW_WARN_UNUSED agw_err agw_provider_prepare(const agw_provider_cfg *p, agw_provider_op op,
                                             const agw_client_hints *hints,
                                             agw_provider_call *out);
void agw_provider_call_free(agw_provider_call *c);

/* The call of one page of `p`'s model list: the first page when `after` is
 * NULL, else the page after that cursor (percent-encoded into the URL).
 * Fails as agw_provider_prepare does. */
AGW_WARN_UNUSED agw_err agw_provider_prepare_models(const agw_provider_cfg *p, const char *after,
                                                    agw_provider_call *out);

/* Appends a copy of `id` to `list` (ignored past AGW_PROVIDER_MODELS_MAX). */
void agw_provider_models_add(agw_provider_models *list, agw_str id);
void agw_provider_models_free(agw_provider_models *list);

/* ---- for the provider types' own files ---- */

/* Appends "<name><value>" as the call's next header (at most
 * AGW_PROVIDER_MAX_HEADERS; past that the header is dropped and AGW_ETOOBIG
 * returned). */
agw_err agw_provider_call_header(agw_provider_call *c, const char *name, const char *value);

/* The probe verdict of types whose model list checks the credential: 401
 * and 403 reject it; any other status below 500 (a 404, a 429) shows a
 * working server; 5xx and no status fail. */
agw_probe_verdict agw_provider_probe_status(long status);

/* The model list reader of lists shaped {"data":[{"id":...},...]} (OpenAI's
 * and Anthropic's): appends the ids (out->next untouched). AGW_EINVAL when
 * there is no such array. */
AGW_WARN_UNUSED agw_err agw_provider_parse_model_data(agw_str body, agw_provider_models *out);
/* The same for lists shaped {"<list>":[{"<member>":...},...]} (Kiro's
 * {"models":[{"modelId":...}]}). */
AGW_WARN_UNUSED agw_err agw_provider_parse_model_list(agw_str body, agw_str list, agw_str member,
                                                      agw_provider_models *out);

/* The provider types (provider/type_*.c). */
extern const agw_provider_ops agw_provider_openai;
extern const agw_provider_ops agw_provider_anthropic;
extern const agw_provider_ops agw_provider_kiro;
extern const agw_provider_ops agw_provider_copilot;

#endif
