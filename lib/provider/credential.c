#include "provider/credential.h"

#include "core/json.h"
#include "net/upstream.h"
#include "provider/copilot_auth.h"
#include "provider/kiro_auth.h"
#include "proto/wire.h"
#include "state/store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

/* The refresh methods, one per auth method. A provider type that logs in
 * adds its own here. */
static const agw_cred_method *const methods[] = {
    &agw_kiro_cred_social,
    &agw_kiro_cred_idc,
    &agw_kiro_cred_builder_id,
    &agw_copilot_method,
};

#define DEFAULT_REFRESH_BEFORE 600
#define DEFAULT_WAIT_MS 30000
#define DEFAULT_HTTP_TIMEOUT_MS 15000
/* A token with less than this left is treated as expired: a call made with
 * it would likely fail on the way. */
#define EXPIRY_SLACK 30
#define SEALED_MAX (AGW_AEAD_MAX_PLAIN + AGW_AEAD_OVERHEAD)

static struct {
    int ready;
    char *db_path;
    agw_secret_key key;
    int have_key;
    int refresh_before, wait_ms, http_timeout_ms;
} g;

/* ---- the thread's connection ---- */

typedef struct {
    agw_store *store;
    pid_t pid;
} thread_conn;

static pthread_key_t conn_key;
static pthread_once_t conn_once = PTHREAD_ONCE_INIT;

static void conn_destroy(void *p)
{
    thread_conn *tc = p;
    if (tc->pid == getpid())
        agw_store_close(tc->store);
    free(tc);
}

static void conn_key_make(void)
{
    (void)pthread_key_create(&conn_key, conn_destroy);
}

static sqlite3 *db(void)
{
    if (!g.ready)
        return NULL;
    pthread_once(&conn_once, conn_key_make);
    thread_conn *tc = pthread_getspecific(conn_key);
    if (tc && tc->pid != getpid()) {
        /* Inherited across fork(): the parent's connection is not ours to
         * use or close (SQLite forbids both). */
        free(tc);
        tc = NULL;
        (void)pthread_setspecific(conn_key, NULL);
    }
    if (!tc) {
        char err[AGW_ERR_LEN];
        agw_store *s = NULL;
        if (agw_store_open(g.db_path, &s, err, sizeof err) != AGW_OK) {
            agw_log_error("credentials: database: %s", err);
            return NULL;
        }
        tc = xcalloc(1, sizeof *tc);
        tc->store = s;
        tc->pid = getpid();
        (void)pthread_setspecific(conn_key, tc);
    }
    return agw_store_db(tc->store);
}

agw_err agw_cred_setup(const agw_cred_settings *s)
{
    if (!s || !s->db_path)
        return AGW_EINVAL;
    free(g.db_path);
    g.db_path = xstrdup(s->db_path);
    g.have_key = s->secrets != NULL;
    if (s->secrets)
        g.key = *s->secrets;
    else
        agw_secret_key_wipe(&g.key);
    g.refresh_before = s->refresh_before > 0 ? s->refresh_before : DEFAULT_REFRESH_BEFORE;
    g.wait_ms = s->wait_ms > 0 ? s->wait_ms : DEFAULT_WAIT_MS;
    g.http_timeout_ms = s->http_timeout_ms > 0 ? s->http_timeout_ms : DEFAULT_HTTP_TIMEOUT_MS;
    g.ready = 1;
    return AGW_OK;
}

void agw_cred_teardown(void)
{
    if (g.ready) {
        pthread_once(&conn_once, conn_key_make);
        thread_conn *tc = pthread_getspecific(conn_key);
        if (tc) {
            conn_destroy(tc);
            (void)pthread_setspecific(conn_key, NULL);
        }
    }
    agw_secret_key_wipe(&g.key);
    free(g.db_path);
    g.db_path = NULL;
    g.ready = g.have_key = 0;
}

static agw_err need_key(char *err, size_t errlen)
{
    if (!g.ready) {
        snprintf(err, errlen, "the credential store is not set up");
        return AGW_EINVAL;
    }
    if (!g.have_key) {
        snprintf(err, errlen, "secrets.key_file is not set: tokens cannot be stored or read");
        return AGW_EINVAL;
    }
    return AGW_OK;
}

static agw_err db_fail(sqlite3 *h, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: %s", what, h ? sqlite3_errmsg(h) : "no database connection");
    return AGW_EIO;
}

/* ---- names ---- */

const char *agw_cred_state_name(agw_cred_state s)
{
    return s == AGW_CRED_NEEDS_LOGIN ? "needs_login" : "ok";
}

static agw_cred_state state_parse(const char *s)
{
    return s && strcmp(s, "needs_login") == 0 ? AGW_CRED_NEEDS_LOGIN : AGW_CRED_OK;
}

const char *agw_login_status_name(agw_login_status s)
{
    switch (s) {
    case AGW_LOGIN_COMPLETED: return "completed";
    case AGW_LOGIN_EXPIRED: return "expired";
    case AGW_LOGIN_ERROR: return "error";
    case AGW_LOGIN_DENIED: return "denied";
    case AGW_LOGIN_PENDING: break;
    }
    return "pending";
}

static agw_login_status login_status_parse(const char *s)
{
    if (!s)
        return AGW_LOGIN_ERROR;
    if (strcmp(s, "pending") == 0)
        return AGW_LOGIN_PENDING;
    if (strcmp(s, "completed") == 0)
        return AGW_LOGIN_COMPLETED;
    if (strcmp(s, "expired") == 0)
        return AGW_LOGIN_EXPIRED;
    if (strcmp(s, "denied") == 0)
        return AGW_LOGIN_DENIED;
    return AGW_LOGIN_ERROR;
}

int agw_cred_type_logs_in(agw_provider_type t)
{
    return t == AGW_PROVIDER_KIRO || t == AGW_PROVIDER_COPILOT;
}

const agw_cred_method *agw_cred_method_of(agw_provider_type t, const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (methods[i]->type == t && strcmp(methods[i]->name, name) == 0)
            return methods[i];
    return NULL;
}

/* ---- JSON members ---- */

char *agw_cred_json_string(agw_str doc, const char *key)
{
    agw_str v;
    if (agw_json_type_of(agw_wire_trim(doc)) != AGW_JSON_OBJECT ||
        agw_json_find(doc, agw_str_c(key), &v) != AGW_OK ||
        agw_json_type_of(v) != AGW_JSON_STRING)
        return NULL;
    agw_buf b = AGW_BUF_INIT(AGW_CRED_HTTP_MAX_BODY);
    if (agw_json_string_decode(v, &b) != AGW_OK || (b.len && memchr(b.data, '\0', b.len))) {
        agw_wipe(b.data, b.len);
        agw_buf_free(&b);
        return NULL;
    }
    char *s = agw_buf_detach(&b, NULL);
    return s ? s : xstrdup("");
}

int agw_cred_json_int(agw_str doc, const char *key, int64_t *out)
{
    agw_str v;
    double d;
    if (agw_json_type_of(agw_wire_trim(doc)) != AGW_JSON_OBJECT ||
        agw_json_find(doc, agw_str_c(key), &v) != AGW_OK)
        return 0;
    if (agw_json_int64(v, out) == AGW_OK)
        return 1;
    /* Some services write whole numbers as 3600.0. */
    if (agw_wire_number(v, &d) && d > -9e18 && d < 9e18) {
        *out = (int64_t)d;
        return 1;
    }
    return 0;
}

/* ---- one HTTP exchange ---- */

typedef struct {
    agw_buf *resp;
    int too_big;
} http_sink;

static int http_on_data(void *ud, const char *p, size_t n)
{
    http_sink *k = ud;
    if (agw_buf_append(k->resp, p, n) != AGW_OK) {
        k->too_big = 1;
        return 1;
    }
    return 0;
}

agw_err agw_cred_http(const char *url, const char *const *headers, agw_str body, int timeout_ms,
                      long *status, agw_buf *resp, char *why, size_t whylen)
{
    *status = 0;
    agw_upstream *u = agw_upstream_new();
    if (!u) {
        snprintf(why, whylen, "no HTTP client");
        return AGW_EIO;
    }
    agw_buf_free(resp);
    agw_buf_init(resp, AGW_CRED_HTTP_MAX_BODY);
    static const char *const none[] = { NULL };
    http_sink sink = { resp, 0 };
    agw_upstream_req rq = {
        .url = url,
        .headers = headers ? headers : none,
        .body = body,
        .connect_timeout_ms = timeout_ms < 10000 ? timeout_ms : 10000,
        .idle_timeout_ms = timeout_ms,
        .total_timeout_ms = timeout_ms,
        .on_data = http_on_data,
        .ud = &sink,
    };
    agw_upstream_result res;
    agw_upstream_perform(u, &rq, &res);
    agw_upstream_free(u);
    if (sink.too_big) {
        snprintf(why, whylen, "the answer is larger than %u bytes", AGW_CRED_HTTP_MAX_BODY);
        agw_buf_free(resp);
        return AGW_EIO;
    }
    if (res.outcome != AGW_UPSTREAM_DONE) {
        snprintf(why, whylen, "%s", res.detail[0] ? res.detail : "no answer");
        agw_buf_free(resp);
        return AGW_EIO;
    }
    *status = res.status;
    return AGW_OK;
}

/* ---- records ---- */

void agw_cred_free(agw_cred *c)
{
    if (!c)
        return;
    free(c->provider);
    free(c->method);
    agw_secret_free(c->access_token);
    agw_secret_free(c->refresh_token);
    free(c->client_id);
    agw_secret_free(c->client_secret);
    free(c->region);
    free(c->profile_arn);
    free(c->extra);
    free(c->last_error);
    memset(c, 0, sizeof *c);
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

void agw_cred_copy(agw_cred *dst, const agw_cred *src)
{
    *dst = *src;
    dst->provider = dup_or_null(src->provider);
    dst->method = dup_or_null(src->method);
    dst->access_token = dup_or_null(src->access_token);
    dst->refresh_token = dup_or_null(src->refresh_token);
    dst->client_id = dup_or_null(src->client_id);
    dst->client_secret = dup_or_null(src->client_secret);
    dst->region = dup_or_null(src->region);
    dst->profile_arn = dup_or_null(src->profile_arn);
    dst->extra = dup_or_null(src->extra);
    dst->last_error = dup_or_null(src->last_error);
}

void agw_cred_token_free(agw_cred_token *t)
{
    if (!t)
        return;
    agw_secret_free(t->access_token);
    free(t->profile_arn);
    free(t->region);
    free(t->extra);
    memset(t, 0, sizeof *t);
}

static agw_err aad_of(const char *kind, const char *name, agw_buf *aad)
{
    agw_buf_init(aad, 256);
    return agw_buf_appendf(aad, "%s:%s", kind, name);
}

/* Seals JSON object `plain` (wiped by the caller) for row `kind:name`. */
static agw_err seal(const char *kind, const char *name, agw_str plain, agw_buf *out)
{
    agw_buf aad;
    agw_err e = aad_of(kind, name, &aad);
    if (!e) {
        agw_buf_init(out, SEALED_MAX);
        e = agw_aead_seal(&g.key, agw_buf_view(&aad), plain, out);
    }
    agw_buf_free(&aad);
    return e;
}

static agw_err unseal(const char *kind, const char *name, const void *blob, int len,
                      agw_buf *out)
{
    agw_buf aad;
    agw_err e = aad_of(kind, name, &aad);
    agw_buf_init(out, AGW_AEAD_MAX_PLAIN + 1);
    if (!e)
        e = agw_aead_open(&g.key, agw_buf_view(&aad),
                          (agw_str){ blob, len > 0 ? (size_t)len : 0 }, out);
    agw_buf_free(&aad);
    if (!e && agw_json_validate(agw_buf_view(out), 4, NULL, 0) != AGW_OK)
        e = AGW_EINVAL;
    if (e) {
        agw_wipe(out->data, out->len);
        agw_buf_free(out);
    }
    return e ? AGW_EINVAL : AGW_OK;
}

static void wipe_buf(agw_buf *b)
{
    agw_wipe(b->data, b->cap);
    agw_buf_free(b);
}

static void put_member(agw_wire_writer *w, int *first, const char *name, const char *value)
{
    if (!value)
        return;
    if (!*first)
        AGW_WIRE_W_LIT(w, ",");
    *first = 0;
    agw_wire_w_str(w, agw_str_c(name));
    AGW_WIRE_W_LIT(w, ":");
    agw_wire_w_str(w, agw_str_c(value));
}

static agw_err seal_record(const agw_cred *c, agw_buf *sealed)
{
    agw_buf plain = AGW_BUF_INIT(AGW_AEAD_MAX_PLAIN);
    agw_wire_writer w = AGW_WIRE_WRITER(&plain);
    int first = 1;
    AGW_WIRE_W_LIT(&w, "{");
    put_member(&w, &first, "access_token", c->access_token);
    put_member(&w, &first, "refresh_token", c->refresh_token);
    put_member(&w, &first, "client_secret", c->client_secret);
    AGW_WIRE_W_LIT(&w, "}");
    agw_err e = w.e ? w.e : seal("credential", c->provider, agw_buf_view(&plain), sealed);
    wipe_buf(&plain);
    return e;
}

static const char record_columns[] =
    "provider, method, secret_enc, client_id, region, profile_arn, extra, expires_at, state,"
    " version, last_refresh, last_error";

/* Row of `record_columns` into `out`. */
static agw_err read_record(sqlite3_stmt *st, agw_cred *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->provider = agw_store_column_dup(st, 0);
    out->method = agw_store_column_dup(st, 1);
    out->client_id = agw_store_column_dup(st, 3);
    out->region = agw_store_column_dup(st, 4);
    out->profile_arn = agw_store_column_dup(st, 5);
    out->extra = agw_store_column_dup(st, 6);
    out->expires_at = sqlite3_column_int64(st, 7);
    out->state = state_parse((const char *)sqlite3_column_text(st, 8));
    out->version = (uint64_t)sqlite3_column_int64(st, 9);
    out->last_refresh = sqlite3_column_int64(st, 10);
    out->last_error = agw_store_column_dup(st, 11);
    agw_buf plain;
    if (!out->provider ||
        unseal("credential", out->provider, sqlite3_column_blob(st, 2),
               sqlite3_column_bytes(st, 2), &plain) != AGW_OK) {
        snprintf(err, errlen, "the stored token of %s does not open with secrets.key_file",
                 out->provider ? out->provider : "?");
        agw_cred_free(out);
        return AGW_EINVAL;
    }
    agw_str doc = agw_buf_view(&plain);
    out->access_token = agw_cred_json_string(doc, "access_token");
    out->refresh_token = agw_cred_json_string(doc, "refresh_token");
    out->client_secret = agw_cred_json_string(doc, "client_secret");
    wipe_buf(&plain);
    if (!out->access_token)
        out->access_token = xstrdup("");
    return AGW_OK;
}

agw_err agw_cred_load(const char *provider, agw_cred *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    agw_err e = need_key(err, errlen);
    if (e)
        return e;
    sqlite3 *h = db();
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT %s FROM credentials WHERE provider = ?1", record_columns);
    sqlite3_stmt *st;
    if (!h || sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
        return db_fail(h, "reading credentials", err, errlen);
    sqlite3_bind_text(st, 1, provider, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        e = read_record(st, out, err, errlen);
    else if (rc == SQLITE_DONE) {
        snprintf(err, errlen, "provider %s has no account: log in or import one", provider);
        e = AGW_ENOTFOUND;
    } else
        e = db_fail(h, "reading credentials", err, errlen);
    sqlite3_finalize(st);
    return e;
}

/* ---- the account lock ---- */

static void sleep_ms(unsigned ms)
{
    struct timespec t = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
}

/* Takes the account's lock: waits up to `wait_ms` (0: one try). The fd to
 * hand to unlock(); -1 with AGW_ETIMEOUT when another held it throughout,
 * AGW_EIO when the file cannot be opened. */
static int lock_account(const char *provider, int wait_ms, agw_err *e, char *err, size_t errlen)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s-cred-%s.lock", g.db_path, provider);
    if (n < 0 || (size_t)n >= sizeof path) {
        *e = AGW_EINVAL;
        snprintf(err, errlen, "the lock file's path is too long");
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0660);
    if (fd < 0) {
        *e = AGW_EIO;
        snprintf(err, errlen, "cannot open the account's lock file %s: %s", path,
                 strerror(errno));
        return -1;
    }
    uint64_t deadline = agw_mono_ms() + (uint64_t)(wait_ms > 0 ? wait_ms : 0);
    unsigned pause = 2;
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            *e = AGW_OK;
            return fd;
        }
        if (errno != EWOULDBLOCK && errno != EINTR) {
            *e = AGW_EIO;
            snprintf(err, errlen, "cannot lock %s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        if (agw_mono_ms() >= deadline) {
            *e = AGW_ETIMEOUT;
            snprintf(err, errlen, "another process is refreshing the account of %s and has "
                     "not finished", provider);
            close(fd);
            return -1;
        }
        sleep_ms(pause);
        if (pause < 25)
            pause += 3;
    }
}

static void unlock_account(int fd)
{
    if (fd >= 0) {
        (void)flock(fd, LOCK_UN);
        close(fd);
    }
}

/* ---- writing records ---- */

static agw_err write_record(const agw_cred *c, int replace, uint64_t expect_version, char *err,
                            size_t errlen)
{
    sqlite3 *h = db();
    agw_buf sealed;
    agw_err e = seal_record(c, &sealed);
    if (e) {
        snprintf(err, errlen, "cannot seal the token: %s", agw_strerror(e));
        return e;
    }
    static const char insert_sql[] =
        "INSERT INTO credentials (provider, method, secret_enc, client_id, region, profile_arn,"
        " extra, expires_at, state, version, last_refresh, last_error, created_at, updated_at)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'ok', 1, ?9, NULL, ?9, ?9)"
        " ON CONFLICT(provider) DO UPDATE SET method = ?2, secret_enc = ?3, client_id = ?4,"
        " region = ?5, profile_arn = ?6, extra = ?7, expires_at = ?8, state = 'ok',"
        " version = version + 1, last_refresh = ?9, last_error = NULL, updated_at = ?9";
    static const char refresh_sql[] =
        "UPDATE credentials SET secret_enc = ?3, client_id = ?4, region = ?5, profile_arn = ?6,"
        " extra = ?7, expires_at = ?8, state = 'ok', version = version + 1, last_refresh = ?9,"
        " last_error = NULL, updated_at = ?9 WHERE provider = ?1 AND method = ?2 AND version = ?10";
    sqlite3_stmt *st;
    if (!h || sqlite3_prepare_v2(h, replace ? insert_sql : refresh_sql, -1, &st, NULL) !=
                  SQLITE_OK) {
        wipe_buf(&sealed);
        return db_fail(h, "storing the token", err, errlen);
    }
    int64_t now = agw_wall_s();
    sqlite3_bind_text(st, 1, c->provider, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->method, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, sealed.data, (int)sealed.len, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, c->client_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, c->region, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, c->profile_arn, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, c->extra ? c->extra : "{}", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, c->expires_at);
    sqlite3_bind_int64(st, 9, now);
    if (!replace)
        sqlite3_bind_int64(st, 10, (sqlite3_int64)expect_version);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    wipe_buf(&sealed);
    if (rc != SQLITE_DONE)
        return db_fail(h, "storing the token", err, errlen);
    if (!replace && sqlite3_changes(h) != 1) {
        snprintf(err, errlen, "the account of %s changed while it was refreshed", c->provider);
        return AGW_EIO;
    }
    return AGW_OK;
}

/* Records a failed refresh: its reason, and needs_login when it was final. */
static void note_failure(const char *provider, uint64_t version, int dead, const char *why)
{
    sqlite3 *h = db();
    sqlite3_stmt *st;
    if (!h || sqlite3_prepare_v2(h,
                                 "UPDATE credentials SET last_error = ?1, updated_at = ?2,"
                                 " state = CASE WHEN ?3 THEN 'needs_login' ELSE state END"
                                 " WHERE provider = ?4 AND version = ?5",
                                 -1, &st, NULL) != SQLITE_OK) {
        agw_log_error("credentials: cannot record the refresh failure of %s", provider);
        return;
    }
    sqlite3_bind_text(st, 1, why, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, agw_wall_s());
    sqlite3_bind_int(st, 3, dead);
    sqlite3_bind_text(st, 4, provider, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)version);
    if (sqlite3_step(st) != SQLITE_DONE)
        agw_log_error("credentials: cannot record the refresh failure of %s: %s", provider,
                      sqlite3_errmsg(h));
    sqlite3_finalize(st);
}

agw_err agw_cred_store(const agw_cred *c, char *err, size_t errlen)
{
    agw_err e = need_key(err, errlen);
    if (e)
        return e;
    if (!c->provider || !agw_config_name_ok(c->provider) || !c->method || !c->access_token) {
        snprintf(err, errlen, "an account needs a provider, a method and an access token");
        return AGW_EINVAL;
    }
    int fd = lock_account(c->provider, g.wait_ms, &e, err, errlen);
    if (fd < 0)
        return e;
    e = write_record(c, 1, 0, err, errlen);
    unlock_account(fd);
    if (!e)
        agw_log_info("credentials: %s: account stored (method %s)", c->provider, c->method);
    return e;
}

agw_err agw_cred_delete(const char *provider)
{
    sqlite3 *h = db();
    sqlite3_stmt *st;
    if (!h || sqlite3_prepare_v2(h, "DELETE FROM credentials WHERE provider = ?1", -1, &st,
                                 NULL) != SQLITE_OK)
        return AGW_EIO;
    sqlite3_bind_text(st, 1, provider, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return AGW_EIO;
    return sqlite3_changes(h) ? AGW_OK : AGW_ENOTFOUND;
}

/* ---- the data path ---- */

typedef enum {
    RENEW_DUE,      /* the token is near its expiry */
    RENEW_REJECTED, /* the upstream refused the token of a version */
    RENEW_FORCED,   /* an admin asked */
} renew_mode;

static int due(const agw_cred *c, int64_t now)
{
    return c->expires_at != 0 && c->expires_at - now < g.refresh_before;
}

static int expired(const agw_cred *c, int64_t now)
{
    return c->expires_at != 0 && c->expires_at - now < EXPIRY_SLACK;
}

static void snapshot(const agw_cred *c, agw_cred_token *out)
{
    out->access_token = xstrdup(c->access_token);
    out->profile_arn = dup_or_null(c->profile_arn);
    out->region = dup_or_null(c->region);
    out->extra = xstrdup(c->extra ? c->extra : "{}");
    out->expires_at = c->expires_at;
    out->version = c->version;
}

static agw_err needs_login(const agw_cred *c, char *err, size_t errlen)
{
    snprintf(err, errlen, "provider %s needs a new login: its refresh token was refused",
             c->provider);
    return AGW_ENOTFOUND;
}

/* Renews `cur` under the account's lock unless someone else already has
 * (see the header). `cur` is replaced by what the account holds afterwards. */
static agw_err renew(const agw_provider_cfg *p, agw_cred *cur, renew_mode mode, uint64_t seen,
                     char *err, size_t errlen)
{
    agw_err e;
    int fd = lock_account(p->name, g.wait_ms, &e, err, errlen);
    if (fd < 0)
        return e;
    agw_cred fresh;
    e = agw_cred_load(p->name, &fresh, err, errlen);
    if (e) {
        unlock_account(fd);
        return e;
    }
    agw_cred_free(cur);
    *cur = fresh;
    int64_t now = agw_wall_s();
    int settled = (mode == RENEW_DUE && (cur->version != seen || !due(cur, now))) ||
                  (mode == RENEW_REJECTED && cur->version != seen);
    if (settled) {
        unlock_account(fd);
        return cur->state == AGW_CRED_NEEDS_LOGIN ? needs_login(cur, err, errlen) : AGW_OK;
    }
    if (cur->state == AGW_CRED_NEEDS_LOGIN && mode != RENEW_FORCED) {
        unlock_account(fd);
        return needs_login(cur, err, errlen);
    }
    const agw_cred_method *m = agw_cred_method_of(p->type, cur->method);
    if (!m) {
        unlock_account(fd);
        snprintf(err, errlen, "provider %s: auth method %s cannot be refreshed by a %s provider",
                 p->name, cur->method ? cur->method : "?", agw_provider_type_name(p->type));
        return AGW_EINVAL;
    }
    agw_cred next;
    agw_cred_copy(&next, cur);
    char why[256] = "";
    agw_cred_outcome out = m->refresh(p, cur, &next, g.http_timeout_ms, why, sizeof why);
    if (out == AGW_CRED_REFRESHED) {
        e = write_record(&next, 0, cur->version, err, errlen);
        if (!e) {
            next.version = cur->version + 1;
            next.state = AGW_CRED_OK;
            next.last_refresh = now;
            free(next.last_error);
            next.last_error = NULL;
            agw_cred_free(cur);
            *cur = next;
            agw_log_info("credentials: %s: token refreshed (%s)", p->name,
                         mode == RENEW_DUE ? "near expiry"
                         : mode == RENEW_REJECTED ? "rejected upstream" : "forced");
        } else {
            agw_cred_free(&next);
        }
        unlock_account(fd);
        return e;
    }
    agw_cred_free(&next);
    if (!why[0])
        snprintf(why, sizeof why, "the refresh failed");
    note_failure(p->name, cur->version, out == AGW_CRED_DEAD, why);
    unlock_account(fd);
    free(cur->last_error);
    cur->last_error = xstrdup(why);
    if (out == AGW_CRED_DEAD) {
        cur->state = AGW_CRED_NEEDS_LOGIN;
        agw_log_error("credentials: %s: the refresh token was refused (%s): the account needs "
                      "a new login", p->name, why);
        return needs_login(cur, err, errlen);
    }
    agw_log_warn("credentials: %s: refresh failed: %s", p->name, why);
    snprintf(err, errlen, "provider %s: token refresh failed: %s", p->name, why);
    return AGW_EIO;
}

agw_err agw_cred_access(const agw_provider_cfg *p, agw_cred_token *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    agw_cred c;
    agw_err e = agw_cred_load(p->name, &c, err, errlen);
    if (e)
        return e;
    if (c.state == AGW_CRED_NEEDS_LOGIN) {
        e = needs_login(&c, err, errlen);
        agw_cred_free(&c);
        return e;
    }
    int64_t now = agw_wall_s();
    if (due(&c, now)) {
        /* While the token still has a while to live, a refresh someone else
         * is running is not worth waiting for. */
        if (!expired(&c, now)) {
            int fd = lock_account(p->name, 0, &e, err, errlen);
            if (fd < 0) {
                snapshot(&c, out);
                agw_cred_free(&c);
                return AGW_OK;
            }
            unlock_account(fd);
        }
        e = renew(p, &c, RENEW_DUE, c.version, err, errlen);
        if (e && !expired(&c, agw_wall_s()) && c.state == AGW_CRED_OK && c.access_token) {
            e = AGW_OK; /* the old token still serves; the next call tries again */
        }
        if (e) {
            agw_cred_free(&c);
            return e;
        }
    }
    snapshot(&c, out);
    agw_cred_free(&c);
    return AGW_OK;
}

agw_err agw_cred_rejected(const agw_provider_cfg *p, uint64_t version, char *err, size_t errlen)
{
    agw_cred c;
    agw_err e = need_key(err, errlen);
    if (e)
        return e;
    memset(&c, 0, sizeof c);
    e = renew(p, &c, RENEW_REJECTED, version, err, errlen);
    agw_cred_free(&c);
    return e;
}

agw_err agw_cred_refresh_now(const agw_provider_cfg *p, char *err, size_t errlen)
{
    agw_cred c;
    agw_err e = need_key(err, errlen);
    if (e)
        return e;
    memset(&c, 0, sizeof c);
    e = renew(p, &c, RENEW_FORCED, 0, err, errlen);
    agw_cred_free(&c);
    return e;
}

const char *agw_cred_health(const agw_provider_cfg *p)
{
    if (!agw_cred_type_logs_in(p->type) || !g.ready)
        return NULL;
    sqlite3 *h = db();
    sqlite3_stmt *st;
    if (!h || sqlite3_prepare_v2(h, "SELECT state FROM credentials WHERE provider = ?1", -1, &st,
                                 NULL) != SQLITE_OK)
        return NULL; /* the database failing is not the account's fault */
    sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
    const char *says = "none";
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        says = agw_cred_state_name(state_parse((const char *)sqlite3_column_text(st, 0)));
    else if (rc != SQLITE_DONE)
        says = NULL;
    sqlite3_finalize(st);
    return says;
}

int agw_cred_routable(const agw_provider_cfg *p)
{
    const char *says = agw_cred_health(p);
    return !says || strcmp(says, "ok") == 0;
}

long agw_cred_statuses(agw_cred_status *out, size_t cap)
{
    sqlite3 *h = db();
    sqlite3_stmt *st;
    if (!h || sqlite3_prepare_v2(h,
                                 "SELECT provider, method, state, expires_at, last_refresh,"
                                 " version FROM credentials ORDER BY provider",
                                 -1, &st, NULL) != SQLITE_OK)
        return -1;
    long n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((size_t)n < cap) {
            agw_cred_status *s = &out[n];
            memset(s, 0, sizeof *s);
            const char *name = (const char *)sqlite3_column_text(st, 0);
            const char *method = (const char *)sqlite3_column_text(st, 1);
            snprintf(s->provider, sizeof s->provider, "%s", name ? name : "");
            snprintf(s->method, sizeof s->method, "%s", method ? method : "");
            s->state = state_parse((const char *)sqlite3_column_text(st, 2));
            s->expires_at = sqlite3_column_int64(st, 3);
            s->last_refresh = sqlite3_column_int64(st, 4);
            s->version = (uint64_t)sqlite3_column_int64(st, 5);
        }
        n++;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? n : -1;
}

/* ---- login sessions ---- */

void agw_cred_login_free(agw_cred_login *l)
{
    if (!l)
        return;
    free(l->provider);
    free(l->kind);
    free(l->public_json);
    agw_secret_free(l->secret_json);
    free(l->error);
    memset(l, 0, sizeof *l);
}

static int id_ok(const char *id)
{
    if (!id || strlen(id) != AGW_CRED_LOGIN_ID_LEN)
        return 0;
    for (const char *c = id; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
            return 0;
    return 1;
}

static int exec_sql(sqlite3 *h, const char *sql)
{
    return sqlite3_exec(h, sql, NULL, NULL, NULL) == SQLITE_OK;
}

static void expire_sessions(sqlite3 *h, int64_t now)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h,
                           "UPDATE login_sessions SET status = 'expired', updated_at = ?1"
                           " WHERE status = 'pending' AND expires_at <= ?1",
                           -1, &st, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int64(st, 1, now);
    (void)sqlite3_step(st);
    sqlite3_finalize(st);
}

agw_err agw_cred_login_create(agw_cred_login *l, char *err, size_t errlen)
{
    agw_err e = need_key(err, errlen);
    if (e)
        return e;
    if (!l->provider || !l->kind) {
        snprintf(err, errlen, "a login needs a provider and a kind");
        return AGW_EINVAL;
    }
    if (agw_random_hex(l->id, AGW_CRED_LOGIN_ID_LEN / 2) != AGW_OK) {
        snprintf(err, errlen, "no randomness for a session id");
        return AGW_EIO;
    }
    agw_buf sealed;
    const char *secret = l->secret_json ? l->secret_json : "{}";
    if ((e = seal("login", l->id, agw_str_c(secret), &sealed))) {
        snprintf(err, errlen, "cannot seal the session: %s", agw_strerror(e));
        return e;
    }
    sqlite3 *h = db();
    int64_t now = agw_wall_s();
    l->created_at = now;
    l->expires_at = now + AGW_CRED_LOGIN_TTL;
    l->status = AGW_LOGIN_PENDING;
    sqlite3_stmt *st = NULL;
    if (!h || !exec_sql(h, "BEGIN IMMEDIATE")) {
        wipe_buf(&sealed);
        return db_fail(h, "starting a login", err, errlen);
    }
    expire_sessions(h, now);
    int rc = SQLITE_ERROR;
    if (sqlite3_prepare_v2(h,
                           "INSERT INTO login_sessions (id, provider, kind, status, public,"
                           " secret_enc, interval, next_poll_at, expires_at, created_at,"
                           " updated_at) VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6, ?7, ?8, ?9,"
                           " ?9)",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, l->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, l->provider, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, l->kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, l->public_json ? l->public_json : "{}", -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 5, sealed.data, (int)sealed.len, SQLITE_STATIC);
        sqlite3_bind_int(st, 6, l->interval);
        sqlite3_bind_int64(st, 7, l->next_poll_at);
        sqlite3_bind_int64(st, 8, l->expires_at);
        sqlite3_bind_int64(st, 9, now);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
    }
    wipe_buf(&sealed);
    if (rc == SQLITE_CONSTRAINT) {
        exec_sql(h, "ROLLBACK");
        snprintf(err, errlen, "provider %s already has a login in progress: finish it or wait "
                 "until it expires", l->provider);
        return AGW_EBUSY;
    }
    if (rc != SQLITE_DONE || !exec_sql(h, "COMMIT")) {
        e = db_fail(h, "starting a login", err, errlen);
        exec_sql(h, "ROLLBACK");
        return e;
    }
    return AGW_OK;
}

agw_err agw_cred_login_get(const char *id, agw_cred_login *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    agw_err e = need_key(err, errlen);
    if (e)
        return e;
    if (!id_ok(id)) {
        snprintf(err, errlen, "no login session has this id");
        return AGW_ENOTFOUND;
    }
    sqlite3 *h = db();
    sqlite3_stmt *st;
    if (!h)
        return db_fail(h, "reading a login", err, errlen);
    expire_sessions(h, agw_wall_s());
    if (sqlite3_prepare_v2(h,
                           "SELECT provider, kind, status, public, secret_enc, interval,"
                           " next_poll_at, expires_at, created_at, error FROM login_sessions"
                           " WHERE id = ?1",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(h, "reading a login", err, errlen);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            return db_fail(h, "reading a login", err, errlen);
        snprintf(err, errlen, "no login session has this id");
        return AGW_ENOTFOUND;
    }
    snprintf(out->id, sizeof out->id, "%s", id);
    out->provider = agw_store_column_dup(st, 0);
    out->kind = agw_store_column_dup(st, 1);
    out->status = login_status_parse((const char *)sqlite3_column_text(st, 2));
    out->public_json = agw_store_column_dup(st, 3);
    out->interval = sqlite3_column_int(st, 5);
    out->next_poll_at = sqlite3_column_int64(st, 6);
    out->expires_at = sqlite3_column_int64(st, 7);
    out->created_at = sqlite3_column_int64(st, 8);
    out->error = agw_store_column_dup(st, 9);
    agw_buf plain;
    e = unseal("login", id, sqlite3_column_blob(st, 4), sqlite3_column_bytes(st, 4), &plain);
    sqlite3_finalize(st);
    if (e) {
        agw_cred_login_free(out);
        snprintf(err, errlen, "the login session does not open with secrets.key_file");
        return AGW_EINVAL;
    }
    out->secret_json = agw_buf_detach(&plain, NULL);
    return AGW_OK;
}

int agw_cred_login_claim(const char *id, int next_interval)
{
    sqlite3 *h = db();
    sqlite3_stmt *st;
    if (!h || !id_ok(id))
        return -1;
    int64_t now = agw_wall_s();
    if (sqlite3_prepare_v2(h,
                           "UPDATE login_sessions SET next_poll_at = ?1, updated_at = ?2"
                           " WHERE id = ?3 AND status = 'pending' AND expires_at > ?2"
                           " AND next_poll_at >= 0 AND next_poll_at <= ?2",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, next_interval < 0 ? -1 : now + next_interval);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return -1;
    return sqlite3_changes(h) == 1;
}

agw_err agw_cred_login_update(const agw_cred_login *l, char *err, size_t errlen)
{
    agw_err e = need_key(err, errlen);
    if (e)
        return e;
    agw_buf sealed = AGW_BUF_INIT(0);
    if (l->secret_json && (e = seal("login", l->id, agw_str_c(l->secret_json), &sealed))) {
        snprintf(err, errlen, "cannot seal the session: %s", agw_strerror(e));
        return e;
    }
    sqlite3 *h = db();
    sqlite3_stmt *st;
    if (!h || sqlite3_prepare_v2(h,
                                 "UPDATE login_sessions SET status = ?1, error = ?2,"
                                 " public = COALESCE(?3, public),"
                                 " secret_enc = COALESCE(?4, secret_enc),"
                                 " interval = CASE WHEN ?5 > 0 THEN ?5 ELSE interval END,"
                                 " next_poll_at = CASE WHEN ?8 > 0 THEN ?8 ELSE next_poll_at END,"
                                 " updated_at = ?6 WHERE id = ?7",
                                 -1, &st, NULL) != SQLITE_OK) {
        wipe_buf(&sealed);
        return db_fail(h, "updating a login", err, errlen);
    }
    sqlite3_bind_text(st, 1, agw_login_status_name(l->status), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, l->error, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, l->public_json, -1, SQLITE_STATIC);
    if (l->secret_json)
        sqlite3_bind_blob(st, 4, sealed.data, (int)sealed.len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 4);
    sqlite3_bind_int(st, 5, l->interval);
    sqlite3_bind_int64(st, 6, agw_wall_s());
    sqlite3_bind_text(st, 7, l->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, l->next_poll_at);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    wipe_buf(&sealed);
    if (rc != SQLITE_DONE)
        return db_fail(h, "updating a login", err, errlen);
    if (sqlite3_changes(h) != 1) {
        snprintf(err, errlen, "no login session has this id");
        return AGW_ENOTFOUND;
    }
    return AGW_OK;
}
