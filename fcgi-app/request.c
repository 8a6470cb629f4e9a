#include "request.h"

#include <stdio.h>

agw_lb *agw_request_lb(const agw_request *r)
{
    return r->app->lb.slots ? (agw_lb *)&r->app->lb : NULL;
}

void agw_request_respond_json(agw_request *r, int status, agw_str extra_headers, agw_str body)
{
    agw_buf h = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    if (agw_buf_append_str(&h, agw_buf_view(&r->headers)) == AGW_OK &&
        agw_buf_append_str(&h, extra_headers) == AGW_OK)
        (void)agw_fcgi_respond(&r->conn, status, "application/json", agw_buf_view(&h), body);
    agw_buf_free(&h);
}

void agw_request_error_code(agw_request *r, int status, const char *code, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    agw_buf body = AGW_BUF_INIT(AGW_LIMIT_SMALL);
    if (agw_apierr_body(&body, r->proto, status, agw_str_c(msg), code) == AGW_OK)
        agw_request_respond_json(r, status, (agw_str){ "", 0 }, agw_buf_view(&body));
    agw_buf_free(&body);
}

void agw_request_busy(agw_request *r)
{
    agw_request_error_code(r, 503, "server_busy", "%s", AGW_BUDGET_BUSY_MESSAGE);
}

agw_err agw_request_cors(agw_request *r)
{
    const char *allowed = r->cfg->server.cors_origins;
    const char *origin = agw_fcgi_param(&r->conn, "HTTP_ORIGIN");
    if (!allowed || !*allowed || !origin || !*origin)
        return AGW_OK;
    if (strcmp(allowed, "*") == 0)
        return agw_buf_append_str(&r->headers,
                                  AGW_STR_LIT("Access-Control-Allow-Origin: *\r\n"));
    agw_str o = agw_str_c(origin);
    if (agw_str_has_ctl(o, 1))
        return AGW_OK;
    for (const char *p = allowed; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        agw_str item = { p, n };
        while (item.len && *item.ptr == ' ') {
            item.ptr++;
            item.len--;
        }
        while (item.len && item.ptr[item.len - 1] == ' ')
            item.len--;
        if (agw_str_eq(item, o)) {
            agw_err e;
            if ((e = agw_buf_append_str(&r->headers,
                                        AGW_STR_LIT("Access-Control-Allow-Origin: "))) ||
                (e = agw_buf_append_str(&r->headers, o)))
                return e;
            return agw_buf_append_str(&r->headers, AGW_STR_LIT("\r\nVary: Origin\r\n"));
        }
        p += n + (end ? 1 : 0);
    }
    return AGW_OK;
}

int agw_request_is_admin(const agw_request *r)
{
    return agw_config_admin_key_ok(r->cfg, agw_fcgi_bearer(&r->conn));
}
