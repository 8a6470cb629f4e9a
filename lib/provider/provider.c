#include "provider/provider.h"

#include "core/json.h"

#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>

/* Indexed by agw_provider_type; NULL where the type is not callable. */
static const agw_provider_ops *const types[AGW_PROVIDER_TYPE_COUNT] = {
    [AGW_PROVIDER_OPENAI] = &agw_provider_openai,
    [AGW_PROVIDER_ANTHROPIC] = &agw_provider_anthropic,
    [AGW_PROVIDER_KIRO] = &agw_provider_kiro,
    [AGW_PROVIDER_COPILOT] = &agw_provider_copilot,
};

const agw_provider_ops *agw_provider_ops_of(agw_provider_type t)
{
    return (unsigned)t < AGW_PROVIDER_TYPE_COUNT ? types[t] : NULL;
}

/* 1 when `p`, an OpenAI provider, serves `model` through the Responses API. */
static int uses_responses(const agw_provider_cfg *p, agw_str model)
{
    if (p->type != AGW_PROVIDER_OPENAI)
        return 0;
    if (p->responses_api)
        return 1;
    if (!p->n_responses_models)
        return 0;
    char *name = agw_str_dup(model);
    int hit = 0;
    for (size_t i = 0; !hit && i < p->n_responses_models; i++)
        hit = strcmp(p->responses_models[i], name) == 0 ||
              fnmatch(p->responses_models[i], name, 0) == 0;
    free(name);
    return hit;
}

agw_err agw_provider_plan_call(const agw_provider_cfg *p, agw_proto client, agw_str model,
                               agw_provider_plan *out, char *why, size_t whylen)
{
    const agw_provider_ops *ops = agw_provider_ops_of(p->type);
    if (!ops)
        return AGW_EINVAL;
    out->proto = ops->proto;
    out->op = ops->model_op;
    if (uses_responses(p, model)) {
        out->proto = AGW_PROTO_RESPONSES;
        out->op = AGW_OP_RESPONSES;
    }
    return ops->plan ? ops->plan(p, client, model, out, why, whylen) : AGW_OK;
}

int agw_provider_callable(const agw_provider_cfg *p)
{
    return agw_provider_ops_of(p->type) != NULL;
}

agw_probe_verdict agw_provider_probe_status(long status)
{
    if (status == 401 || status == 403)
        return AGW_PROBE_AUTH_REJECTED;
    return status > 0 && status < 500 ? AGW_PROBE_PASSED : AGW_PROBE_FAILED;
}

void agw_provider_models_add(agw_provider_models *list, agw_str id)
{
    if (list->n >= AGW_PROVIDER_MODELS_MAX)
        return;
    if (list->n == list->cap) {
        list->cap = list->cap ? list->cap * 2 : 64;
        list->ids = xrealloc(list->ids, list->cap * sizeof *list->ids);
    }
    list->ids[list->n++] = agw_str_dup(id);
}

void agw_provider_models_free(agw_provider_models *list)
{
    for (size_t i = 0; i < list->n; i++)
        free(list->ids[i]);
    free(list->ids);
    free(list->next);
    memset(list, 0, sizeof *list);
}

agw_err agw_provider_parse_model_data(agw_str body, agw_provider_models *out)
{
    return agw_provider_parse_model_list(body, AGW_STR_LIT("data"), AGW_STR_LIT("id"), out);
}

agw_err agw_provider_parse_model_list(agw_str body, agw_str list, agw_str member,
                                      agw_provider_models *out)
{
    agw_str data, item, id;
    agw_json_iter it;
    if (agw_json_find(body, list, &data) != AGW_OK ||
        agw_json_type_of(data) != AGW_JSON_ARRAY || agw_json_iter_init(&it, data) != AGW_OK)
        return AGW_EINVAL;
    agw_buf scratch = AGW_BUF_INIT(AGW_LIMIT_HEADER_LINE);
    while (agw_json_iter_next(&it, NULL, &item)) {
        agw_str v;
        /* An entry without a readable id, or with one no URL or JSON could
         * carry back (control bytes), is skipped, not fatal. */
        if (agw_json_find(item, member, &id) != AGW_OK ||
            agw_json_type_of(id) != AGW_JSON_STRING ||
            agw_json_string_view(id, &scratch, &v) != AGW_OK || v.len == 0 ||
            agw_str_has_ctl(v, 1))
            continue;
        agw_provider_models_add(out, v);
    }
    agw_buf_free(&scratch);
    return AGW_OK;
}

agw_err agw_provider_call_header(agw_provider_call *c, const char *name, const char *value)
{
    if (c->n_headers >= AGW_PROVIDER_MAX_HEADERS)
        return AGW_ETOOBIG;
    c->headers[c->n_headers++] = xstrcat(name, value);
    c->headers[c->n_headers] = NULL;
    return AGW_OK;
}

agw_err agw_provider_prepare(const agw_provider_cfg *p, agw_provider_op op,
                             const agw_client_hints *hints, agw_provider_call *out)
{
    memset(out, 0, sizeof *out);
    const agw_provider_ops *ops = agw_provider_ops_of(p->type);
    const char *path = ops ? ops->path(op) : NULL;
    if (!path)
        return AGW_EINVAL;
    agw_err e = ops->authenticate(p, out);
    if (!e && ops->extra_headers)
        e = ops->extra_headers(op, hints, out);
    /* Every operation but the model list sends a JSON body. */
    if (!e && op != AGW_OP_MODELS)
        e = agw_provider_call_header(out, "Content-Type: ", "application/json");
    if (e) {
        agw_provider_call_free(out);
        return e;
    }
    /* The base authenticate() named, else the configured one. */
    char *base = out->url;
    const char *b = base ? base : p->base_url;
    out->url = xstrcat(b, path);
    free(base);
    return AGW_OK;
}

/* "?name=value" (or "&..." after another), the value percent-encoded. */
static agw_err query_param(agw_buf *u, int after_another, const char *name, const char *value)
{
    agw_err e = agw_buf_appendf(u, "%c%s=", after_another ? '&' : '?', name);
    for (const unsigned char *c = (const unsigned char *)value; !e && *c; c++)
        e = isalnum(*c) || strchr("-._~", *c) ? agw_buf_append(u, (const char *)c, 1)
                                              : agw_buf_appendf(u, "%%%02X", *c);
    return e;
}

agw_err agw_provider_prepare_models(const agw_provider_cfg *p, const char *after,
                                    agw_provider_call *out)
{
    agw_err e = agw_provider_prepare(p, AGW_OP_MODELS, NULL, out);
    if (e)
        return e;
    const agw_provider_ops *ops = agw_provider_ops_of(p->type);
    const char *arn = ops->models_profile_param ? out->profile_arn : NULL;
    if (!ops->models_query && !(after && ops->models_after) && !arn)
        return AGW_OK;
    agw_buf u = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    e = agw_buf_append_str(&u, agw_str_c(out->url));
    const char *q = ops->models_query;
    int have_query = q != NULL;
    if (!e && q)
        e = agw_buf_append_str(&u, agw_str_c(q));
    if (!e && after && ops->models_after) {
        e = query_param(&u, have_query, ops->models_after, after);
        have_query = 1;
    }
    if (!e && arn)
        e = query_param(&u, have_query, ops->models_profile_param, arn);
    if (e) {
        agw_buf_free(&u);
        agw_provider_call_free(out);
        return e;
    }
    size_t n;
    free(out->url);
    out->url = agw_buf_detach(&u, &n);
    return AGW_OK;
}

void agw_provider_call_free(agw_provider_call *c)
{
    free(c->url);
    free(c->profile_arn);
    for (size_t i = 0; i < c->n_headers; i++)
        free(c->headers[i]);
    memset(c, 0, sizeof *c);
}
