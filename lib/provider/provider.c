#include "provider/provider.h"

#include <stdio.h>
#include <stdlib.h>

/* Indexed by agw_provider_type; NULL where the type is not callable. */
static const agw_provider_ops *const types[AGW_PROVIDER_TYPE_COUNT] = {
    [AGW_PROVIDER_OPENAI] = &agw_provider_openai,
    [AGW_PROVIDER_ANTHROPIC] = &agw_provider_anthropic,
};

const agw_provider_ops *agw_provider_ops_of(agw_provider_type t)
{
    return (unsigned)t < AGW_PROVIDER_TYPE_COUNT ? types[t] : NULL;
}

int agw_provider_callable(const agw_provider_cfg *p)
{
    return agw_provider_ops_of(p->type) != NULL;
}

int agw_provider_probe_answered(long status)
{
    return status > 0 && status < 500;
}

agw_err agw_provider_call_header(agw_provider_call *c, const char *name, const char *value)
{
    if (c->n_headers >= AGW_PROVIDER_MAX_HEADERS)
        return AGW_ETOOBIG;
    size_t n = strlen(name) + strlen(value) + 1;
    char *h = xmalloc(n);
    snprintf(h, n, "%s%s", name, value);
    c->headers[c->n_headers++] = h;
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
    size_t n = strlen(p->base_url) + strlen(path) + 1;
    out->url = xmalloc(n);
    snprintf(out->url, n, "%s%s", p->base_url, path);
    return AGW_OK;
}

void agw_provider_call_free(agw_provider_call *c)
{
    free(c->url);
    for (size_t i = 0; i < c->n_headers; i++)
        free(c->headers[i]);
    memset(c, 0, sizeof *c);
}
