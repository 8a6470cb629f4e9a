#include "net/upstream.h"
#include "core/config.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <sys/socket.h>

#define MAX_HEADERS 64

struct agw_upstream {
    CURL *easy;
    agw_buf header_bytes;           /* "name\0value\0" pairs of the current response */
    size_t name_off[MAX_HEADERS];
    size_t value_off[MAX_HEADERS];
    size_t name_len[MAX_HEADERS], value_len[MAX_HEADERS];
    size_t n_headers;
    long status;                    /* from the last status line seen */
    char errbuf[CURL_ERROR_SIZE];
    /* The request headers of the last perform, kept for the next one: a
     * handle mostly calls the same provider with the same headers. */
    struct curl_slist *hdrs;

    /* per perform */
    const agw_upstream_req *rq;
    uint64_t start_us, last_byte_us, first_byte_us;
    int stopped, idle_expired;
};

static atomic_int allow_link_local;

void agw_upstream_set_allow_link_local(int allow)
{
    atomic_store(&allow_link_local, allow != 0);
}

/* Every new connection passes here with the address DNS gave: a provider
 * host name that resolves to a link-local or metadata address is refused,
 * which a check of the URL alone cannot see. */
static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    (void)ud;
    (void)purpose;
    if (!atomic_load(&allow_link_local) && agw_config_sockaddr_blocked(&a->addr)) {
        agw_log_warn("upstream: refusing to connect to a link-local or metadata address "
                     "(upstream.allow_link_local is off)");
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

agw_err agw_upstream_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? AGW_OK : AGW_EIO;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow);
static size_t on_header(char *p, size_t size, size_t n, void *ud);
static size_t on_body(char *p, size_t size, size_t n, void *ud);

/* Whether any variable libcurl reads to choose a proxy is set. */
static int proxy_in_environment(void)
{
    static const char *const names[] = { "http_proxy", "HTTP_PROXY", "https_proxy",
                                         "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                                         "no_proxy", "NO_PROXY" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (getenv(names[i]))
            return 1;
    return 0;
}

agw_upstream *agw_upstream_new(void)
{
    agw_upstream *u = xcalloc(1, sizeof *u);
    u->easy = curl_easy_init();
    if (!u->easy)
        agw_fatal(__FILE__, __LINE__, "curl_easy_init failed");
    agw_buf_init(&u->header_bytes, 64u << 10);
    /* What every request of the handle shares is set once: agw_upstream_perform
     * sets the rest, each option every time, so nothing of one request
     * carries over to the next (no curl_easy_reset, whose cost is that of
     * setting them all again). */
    CURL *h = u->easy;
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, u->errbuf);
    /* gzip from providers, decoded here. Only gzip: libcurl formats the
     * offer again for every request, at a cost that grows with its length
     * ("deflate, gzip, br, zstd" for "" cost twice what "gzip" costs). */
    if (curl_version_info(CURLVERSION_NOW)->features & CURL_VERSION_LIBZ)
        curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "gzip");
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, u);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, u);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, u);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    /* libcurl looks for a proxy in the environment on every request (five
     * getenv() walks of the whole environment, ~1.5k instructions a call).
     * When none of its variables is set, saying "no proxy" once spares that;
     * when one is, libcurl reads them as it always does. */
    if (!proxy_in_environment()) {
        curl_easy_setopt(h, CURLOPT_PROXY, "");
        curl_easy_setopt(h, CURLOPT_NOPROXY, "");
    }
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    return u;
}

void agw_upstream_free(agw_upstream *u)
{
    if (!u)
        return;
    curl_easy_cleanup(u->easy);
    curl_slist_free_all(u->hdrs);
    agw_buf_free(&u->header_bytes);
    free(u);
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    agw_upstream *u = ud;
    size_t len = size * n;
    agw_str line = { p, len };
    while (line.len && (line.ptr[line.len - 1] == '\n' || line.ptr[line.len - 1] == '\r'))
        line.len--;
    /* A status line starts a new header block (1xx interim responses come first). */
    if (agw_str_starts(line, AGW_STR_LIT("HTTP/"))) {
        const char *sp = memchr(line.ptr, ' ', line.len);
        u->status = 0;
        for (const char *d = sp ? sp + 1 : line.ptr + line.len;
             d < line.ptr + line.len && *d >= '0' && *d <= '9' && u->status < 1000; d++)
            u->status = u->status * 10 + (*d - '0');
        u->n_headers = 0;
        agw_buf_reset(&u->header_bytes);
        return len;
    }
    const char *colon = line.len ? memchr(line.ptr, ':', line.len) : NULL;
    if (!colon || u->n_headers >= MAX_HEADERS)
        return len;
    agw_str name = { line.ptr, (size_t)(colon - line.ptr) };
    agw_str value = { colon + 1, line.len - name.len - 1 };
    while (value.len && (*value.ptr == ' ' || *value.ptr == '\t')) {
        value.ptr++;
        value.len--;
    }
    while (value.len && (value.ptr[value.len - 1] == ' ' || value.ptr[value.len - 1] == '\t'))
        value.len--;
    if (name.len + value.len + 2 > u->header_bytes.max - u->header_bytes.len)
        return len; /* over the header cap: drop it (a failed append would free the others) */
    size_t i = u->n_headers;
    u->name_off[i] = u->header_bytes.len;
    u->name_len[i] = name.len;
    if (agw_buf_append_str(&u->header_bytes, name) || agw_buf_append(&u->header_bytes, "", 1))
        return len; /* over the header cap: drop the rest, the body still flows */
    u->value_off[i] = u->header_bytes.len;
    u->value_len[i] = value.len;
    if (agw_buf_append_str(&u->header_bytes, value) || agw_buf_append(&u->header_bytes, "", 1))
        return len;
    u->n_headers++;
    return len;
}

long agw_upstream_status(const agw_upstream *u)
{
    return u->status;
}

int agw_upstream_header_at(const agw_upstream *u, size_t i, agw_str *name, agw_str *value)
{
    if (i >= u->n_headers || !u->header_bytes.data)
        return 0;
    *name = (agw_str){ u->header_bytes.data + u->name_off[i], u->name_len[i] };
    *value = (agw_str){ u->header_bytes.data + u->value_off[i], u->value_len[i] };
    return 1;
}

agw_str agw_upstream_header(const agw_upstream *u, agw_str name)
{
    agw_str n, v;
    for (size_t i = 0; agw_upstream_header_at(u, i, &n, &v); i++)
        if (agw_str_eq_nocase(n, name))
            return v;
    return (agw_str){ NULL, 0 };
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    agw_upstream *u = ud;
    size_t len = size * n;
    uint64_t now = agw_mono_us();
    u->last_byte_us = now;
    if (!u->first_byte_us)
        u->first_byte_us = now - u->start_us;
    if (u->rq->on_data && u->rq->on_data(u->rq->ud, p, len)) {
        u->stopped = 1;
        return CURL_WRITEFUNC_ERROR;
    }
    return len;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    agw_upstream *u = ud;
    uint64_t idle_ms = (agw_mono_us() - u->last_byte_us) / 1000u;
    if (u->rq->idle_timeout_ms > 0 && idle_ms >= (uint64_t)u->rq->idle_timeout_ms) {
        u->idle_expired = 1;
        return 1;
    }
    if (u->rq->on_tick && u->rq->on_tick(u->rq->ud, idle_ms)) {
        u->stopped = 1;
        return 1;
    }
    return 0;
}

#define EXPECT_NONE "Expect:"

/* 1 when `list` holds exactly `want` (NULL-terminated) and then EXPECT_NONE. */
static int same_headers(const struct curl_slist *list, const char *const *want)
{
    for (const char *const *hp = want; hp && *hp; hp++, list = list->next)
        if (!list || strcmp(list->data, *hp) != 0)
            return 0;
    return list && strcmp(list->data, EXPECT_NONE) == 0 && !list->next;
}

void agw_upstream_perform(agw_upstream *u, const agw_upstream_req *rq, agw_upstream_result *res)
{
    CURL *h = u->easy;
    memset(res, 0, sizeof *res);
    u->rq = rq;
    u->n_headers = 0;
    u->status = 0;
    agw_buf_reset(&u->header_bytes);
    u->errbuf[0] = '\0';
    u->start_us = u->last_byte_us = agw_mono_us();
    u->first_byte_us = 0;
    u->stopped = u->idle_expired = 0;

    if (!same_headers(u->hdrs, rq->headers)) {
        curl_slist_free_all(u->hdrs);
        struct curl_slist *hdrs = NULL;
        for (const char *const *hp = rq->headers; hp && *hp; hp++)
            if (!(hdrs = curl_slist_append(hdrs, *hp)))
                agw_fatal(__FILE__, __LINE__, "curl_slist_append failed");
        /* libcurl would send Expect: 100-continue for bodies over 1 MiB and
         * wait up to a second for a 100 Continue that many servers never send. */
        if (!(hdrs = curl_slist_append(hdrs, EXPECT_NONE)))
            agw_fatal(__FILE__, __LINE__, "curl_slist_append failed");
        u->hdrs = hdrs;
    }

    curl_easy_setopt(h, CURLOPT_URL, rq->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, u->hdrs);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, rq->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, rq->total_timeout_ms > 0 ? rq->total_timeout_ms : 0L);
    if (rq->body.ptr) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body.ptr);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body.len);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }

    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    res->status = status;
    res->first_byte_us = u->first_byte_us;

    if (rc == CURLE_OK) {
        res->outcome = AGW_UPSTREAM_DONE;
    } else if (u->stopped) {
        res->outcome = AGW_UPSTREAM_STOPPED;
    } else if (u->idle_expired || rc == CURLE_OPERATION_TIMEDOUT) {
        res->outcome = AGW_UPSTREAM_TIMEOUT;
    } else if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
               rc == CURLE_COULDNT_RESOLVE_PROXY || rc == CURLE_SSL_CONNECT_ERROR) {
        res->outcome = AGW_UPSTREAM_CONNECT;
    } else {
        res->outcome = AGW_UPSTREAM_BROKEN;
    }
    if (rc != CURLE_OK)
        snprintf(res->detail, sizeof res->detail, "%s",
                 u->errbuf[0] ? u->errbuf : curl_easy_strerror(rc));
    if (res->outcome == AGW_UPSTREAM_TIMEOUT && u->idle_expired)
        snprintf(res->detail, sizeof res->detail, "no data from upstream for %ld ms",
                 rq->idle_timeout_ms);
    u->rq = NULL;
}
