#include "admin.h"

#include "core/json.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* ---- workers ---- */

void *agw_admin_worker_init(void *app_ptr, int index)
{
    const agw_admin_app *app = app_ptr;
    agw_admin_worker *w = xcalloc(1, sizeof *w);
    char err[AGW_ERR_LEN];
    if (agw_store_open(app->cfg->database.path, &w->store, err, sizeof err) != AGW_OK)
        agw_fatal(__FILE__, __LINE__, "admin worker %d: database: %s", index, err);
    return w;
}

void agw_admin_worker_done(void *app, void *state)
{
    (void)app;
    agw_admin_worker *w = state;
    agw_store_close(w->store);
    free(w);
}

/* ---- answers ---- */

void agw_admin_reply(agw_admin_req *r, int status, cJSON *doc)
{
    char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    if (!text)
        agw_fatal(__FILE__, __LINE__, "out of memory printing JSON");
    (void)agw_fcgi_respond(&r->conn, status, "application/json",
                           AGW_STR_LIT("Cache-Control: no-store\r\n"), agw_str_c(text));
    cJSON_free(text);
}

/* The error answer; `extra` holds the response's extra header lines. */
static void vfail(agw_admin_req *r, int status, agw_str extra, const char *field, const char *fmt,
                  va_list ap) AGW_PRINTF(5, 0);
static void vfail(agw_admin_req *r, int status, agw_str extra, const char *field, const char *fmt,
                  va_list ap)
{
    if (r->in_tx)
        agw_admin_rollback(r);
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    const char *type = status == 401   ? "authentication_error"
                       : status == 404 ? "not_found_error"
                       : status == 409 ? "conflict_error"
                       : status == 429 ? "rate_limit_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    cJSON *doc = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(doc, "error");
    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddStringToObject(e, "message", msg);
    if (field)
        cJSON_AddStringToObject(e, "field", field);
    else
        cJSON_AddNullToObject(e, "field");
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (!text)
        agw_fatal(__FILE__, __LINE__, "out of memory printing JSON");
    (void)agw_fcgi_respond(&r->conn, status, "application/json", extra, agw_str_c(text));
    cJSON_free(text);
}

void agw_admin_fail(agw_admin_req *r, int status, const char *field, const char *fmt, ...)
{
    agw_str extra = status == 401 ? AGW_STR_LIT("WWW-Authenticate: Bearer\r\nCache-Control: no-store\r\n")
                                  : AGW_STR_LIT("Cache-Control: no-store\r\n");
    va_list ap;
    va_start(ap, fmt);
    vfail(r, status, extra, field, fmt, ap);
    va_end(ap);
}

void agw_admin_method_not_allowed(agw_admin_req *r, const char *allow)
{
    char msg[160];
    snprintf(msg, sizeof msg, "%s is not allowed here: use %s", r->method, allow);
    char head[128];
    snprintf(head, sizeof head, "Allow: %s\r\n", allow);
    cJSON *doc = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(doc, "error");
    cJSON_AddStringToObject(e, "type", "invalid_request_error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddNullToObject(e, "field");
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (!text)
        agw_fatal(__FILE__, __LINE__, "out of memory printing JSON");
    (void)agw_fcgi_respond(&r->conn, 405, "application/json", agw_str_c(head), agw_str_c(text));
    cJSON_free(text);
}

/* ---- reading bodies ---- */

/* Walks the raw document (already validated) for what cJSON would hide: a
 * member repeated in one object (cJSON keeps both, lookups see the first,
 * other parsers the last) and strings holding U+0000 (cJSON cuts them there). */
static int scan_json(agw_str doc, int depth, char *why, size_t whylen, char *field, size_t fieldlen)
{
    agw_json_type t = agw_json_type_of(doc);
    agw_buf a = AGW_BUF_INIT(AGW_ADMIN_MAX_BODY), b = AGW_BUF_INIT(AGW_ADMIN_MAX_BODY);
    int ok = 1;
    if (t == AGW_JSON_STRING) {
        if (agw_json_string_decode(doc, &a) != AGW_OK || memchr(a.data ? a.data : "", '\0', a.len)) {
            snprintf(why, whylen, "strings may not contain U+0000");
            ok = 0;
        }
    } else if ((t == AGW_JSON_OBJECT || t == AGW_JSON_ARRAY) && depth < AGW_ADMIN_MAX_DEPTH) {
        agw_json_iter it, it2;
        agw_str k, v, k2, v2;
        size_t i = 0;
        if (agw_json_iter_init(&it, doc) != AGW_OK)
            ok = 0;
        while (ok && agw_json_iter_next(&it, &k, &v)) {
            if (t == AGW_JSON_OBJECT) {
                agw_buf_reset(&a);
                if (agw_json_string_decode(k, &a) != AGW_OK ||
                    memchr(a.data ? a.data : "", '\0', a.len)) {
                    snprintf(why, whylen, "member names may not contain U+0000");
                    ok = 0;
                    break;
                }
                /* Compare with every earlier member: objects here are small. */
                if (agw_json_iter_init(&it2, doc) != AGW_OK)
                    break;
                for (size_t j = 0; j < i && agw_json_iter_next(&it2, &k2, &v2); j++) {
                    agw_buf_reset(&b);
                    if (agw_json_string_decode(k2, &b) == AGW_OK &&
                        agw_str_eq(agw_buf_view(&a), agw_buf_view(&b))) {
                        snprintf(why, whylen, "member '%.*s' appears more than once",
                                 (int)(a.len > 100 ? 100 : a.len), a.data);
                        if (depth == 0)
                            snprintf(field, fieldlen, "%.*s", (int)(a.len > 100 ? 100 : a.len),
                                     a.data);
                        ok = 0;
                        break;
                    }
                }
                if (i++ > 1024) {
                    snprintf(why, whylen, "objects may have at most 1024 members");
                    ok = 0;
                }
            }
            if (ok && !scan_json(v, depth + 1, why, whylen, field, fieldlen)) {
                if (depth == 0 && t == AGW_JSON_OBJECT && !field[0] && a.len < 100)
                    snprintf(field, fieldlen, "%.*s", (int)a.len, a.data ? a.data : "");
                ok = 0;
            }
        }
    }
    agw_buf_free(&a);
    agw_buf_free(&b);
    return ok;
}

cJSON *agw_admin_body(agw_admin_req *r, const char *const *known)
{
    agw_err e = agw_fcgi_read_body(&r->conn, AGW_ADMIN_MAX_BODY);
    if (e == AGW_ETOOBIG) {
        agw_admin_fail(r, 413, NULL, "the body is larger than %u bytes", AGW_ADMIN_MAX_BODY);
        return NULL;
    }
    if (e) {
        agw_admin_fail(r, 400, NULL, "the body could not be read");
        return NULL;
    }
    agw_str body = agw_buf_view(&r->conn.body);
    char why[200];
    if (body.len == 0) {
        agw_admin_fail(r, 400, NULL, "a JSON object is required");
        return NULL;
    }
    if (agw_json_validate(body, AGW_ADMIN_MAX_DEPTH, why, sizeof why) != AGW_OK) {
        agw_admin_fail(r, 400, NULL, "malformed JSON: %s", why);
        return NULL;
    }
    if (agw_json_type_of(body) != AGW_JSON_OBJECT) {
        agw_admin_fail(r, 400, NULL, "the body must be a JSON object");
        return NULL;
    }
    char field[128] = "";
    if (!scan_json(body, 0, why, sizeof why, field, sizeof field)) {
        agw_admin_fail(r, 400, field[0] ? field : NULL, "%s", why);
        return NULL;
    }
    cJSON *doc = cJSON_ParseWithLength(body.ptr, body.len);
    if (!doc) {
        agw_admin_fail(r, 400, NULL, "malformed JSON");
        return NULL;
    }
    for (const cJSON *m = doc->child; m; m = m->next) {
        int ok = 0;
        for (const char *const *k = known; *k && !ok; k++)
            ok = strcmp(m->string, *k) == 0;
        if (!ok) {
            agw_admin_fail(r, 400, m->string, "unknown field '%.100s'", m->string);
            cJSON_Delete(doc);
            return NULL;
        }
    }
    return doc;
}

/* The start every typed reader shares: finds member `name` of obj into *m and
 * clears *is_null (when given). 0 when absent; 1 when null and `nullable`
 * (*is_null set); 2 when there is a value for the caller to check. */
static int member(const cJSON *obj, const char *name, int nullable, const cJSON **m,
                  int *is_null)
{
    *m = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (is_null)
        *is_null = 0;
    if (!*m)
        return 0;
    if (nullable && cJSON_IsNull(*m)) {
        if (is_null)
            *is_null = 1;
        return 1;
    }
    return 2;
}

int agw_admin_string(agw_admin_req *r, const cJSON *obj, const char *name, size_t max_len,
                     int nullable, const char **out, int *is_null)
{
    const cJSON *m;
    int rc = member(obj, name, nullable, &m, is_null);
    if (rc < 2) {
        if (rc)
            *out = NULL;
        return rc;
    }
    if (!cJSON_IsString(m)) {
        agw_admin_fail(r, 400, name, "'%s' must be a string%s", name, nullable ? " or null" : "");
        return -1;
    }
    if (strlen(m->valuestring) > max_len) {
        agw_admin_fail(r, 400, name, "'%s' is longer than %lu bytes", name, (unsigned long)max_len);
        return -1;
    }
    if (agw_str_has_ctl(agw_str_c(m->valuestring), 0)) {
        agw_admin_fail(r, 400, name, "'%s' may not contain control characters", name);
        return -1;
    }
    *out = m->valuestring;
    return 1;
}

int agw_admin_int(agw_admin_req *r, const cJSON *obj, const char *name, int64_t lo, int64_t hi,
                  int nullable, int64_t *out, int *is_null)
{
    const cJSON *m;
    int rc = member(obj, name, nullable, &m, is_null);
    if (rc < 2)
        return rc; /* *out is left alone for null */
    /* cJSON keeps numbers as doubles: an integer is a whole number within
     * 2^53, where doubles are exact. */
    double d = m->valuedouble;
    if (!cJSON_IsNumber(m) || d != d || d < -9007199254740992.0 || d > 9007199254740992.0 ||
        (double)(int64_t)d != d) {
        agw_admin_fail(r, 400, name, "'%s' must be an integer%s", name, nullable ? " or null" : "");
        return -1;
    }
    int64_t v = (int64_t)d;
    if (v < lo || v > hi) {
        agw_admin_fail(r, 400, name, "'%s' must be between %lld and %lld", name, (long long)lo,
                       (long long)hi);
        return -1;
    }
    *out = v;
    return 1;
}

int agw_admin_bool(agw_admin_req *r, const cJSON *obj, const char *name, int *out)
{
    const cJSON *m;
    if (!member(obj, name, 0, &m, NULL))
        return 0;
    if (!cJSON_IsBool(m)) {
        agw_admin_fail(r, 400, name, "'%s' must be true or false", name);
        return -1;
    }
    *out = cJSON_IsTrue(m);
    return 1;
}

int agw_admin_string_array(agw_admin_req *r, const cJSON *obj, const char *name,
                           size_t max_items, size_t max_len, int nullable, const cJSON **out,
                           int *is_null)
{
    const cJSON *m;
    int rc = member(obj, name, nullable, &m, is_null);
    if (rc < 2) {
        if (rc)
            *out = NULL;
        return rc;
    }
    if (!cJSON_IsArray(m)) {
        agw_admin_fail(r, 400, name, "'%s' must be an array of strings%s", name,
                       nullable ? " or null" : "");
        return -1;
    }
    size_t n = 0;
    for (const cJSON *e = m->child; e; e = e->next, n++) {
        if (n >= max_items) {
            agw_admin_fail(r, 400, name, "'%s' may hold at most %lu entries", name,
                           (unsigned long)max_items);
            return -1;
        }
        if (!cJSON_IsString(e) || !e->valuestring[0] || strlen(e->valuestring) > max_len ||
            agw_str_has_ctl(agw_str_c(e->valuestring), 0)) {
            agw_admin_fail(r, 400, name,
                           "'%s'[%lu] must be a non-empty string of at most %lu printable bytes",
                           name, (unsigned long)n, (unsigned long)max_len);
            return -1;
        }
    }
    *out = m;
    return 1;
}

int64_t agw_admin_parse_id(agw_str s)
{
    if (s.len == 0 || s.len > 18 || s.ptr[0] == '0')
        return 0;
    int64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return 0;
        v = v * 10 + (s.ptr[i] - '0');
    }
    return v;
}

/* ---- the database ---- */

void agw_admin_db_fail(agw_admin_req *r, const char *what_fmt, ...)
{
    char what[160];
    va_list ap;
    va_start(ap, what_fmt);
    vsnprintf(what, sizeof what, what_fmt, ap);
    va_end(ap);
    agw_log_error("admin: %s: %s", what, sqlite3_errmsg(r->db));
    agw_admin_fail(r, 500, NULL, "database error while %s", what);
}

int agw_admin_begin(agw_admin_req *r)
{
    if (sqlite3_exec(r->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        agw_log_error("admin: BEGIN IMMEDIATE: %s", sqlite3_errmsg(r->db));
        agw_admin_fail(r, 503, NULL, "the database is busy: try again");
        return 0;
    }
    r->in_tx = 1;
    return 1;
}

void agw_admin_rollback(agw_admin_req *r)
{
    if (r->in_tx)
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    r->in_tx = 0;
}

int agw_admin_commit(agw_admin_req *r)
{
    if (sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        agw_admin_db_fail(r, "committing");
        return 0;
    }
    r->in_tx = 0;
    /* After the commit, never before: a responder that sees the new number
     * must find the change in the database. */
    agw_shm_generation_bump(r->app->shm);
    return 1;
}

int agw_admin_audit(agw_admin_req *r, const char *action, const char *object_type,
                    const char *object_id, cJSON *detail)
{
    char *text = cJSON_PrintUnformatted(detail ? detail : cJSON_CreateObject());
    cJSON_Delete(detail);
    sqlite3_stmt *st;
    int ok = sqlite3_prepare_v2(r->db,
                                "INSERT INTO audit_log(ts, action, object_type, object_id, detail)"
                                " VALUES (?, ?, ?, ?, ?)",
                                -1, &st, NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_int64(st, 1, agw_wall_s());
        sqlite3_bind_text(st, 2, action, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, object_type, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, object_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, text ? text : "{}", -1, SQLITE_STATIC);
        ok = sqlite3_step(st) == SQLITE_DONE;
    }
    sqlite3_finalize(st);
    cJSON_free(text);
    if (!ok)
        agw_admin_db_fail(r, "writing the audit log");
    return ok;
}

cJSON *agw_admin_json_column(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return NULL;
    const char *t = (const char *)sqlite3_column_text(st, col);
    return t ? cJSON_ParseWithLength(t, (size_t)sqlite3_column_bytes(st, col)) : NULL;
}

void agw_admin_bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

int agw_admin_provider_exists(agw_admin_req *r, const char *name)
{
    if (agw_config_provider(r->cfg, agw_str_c(name)))
        return 1;
    sqlite3_stmt *st;
    int found = 0;
    if (sqlite3_prepare_v2(r->db, "SELECT 1 FROM providers WHERE name = ?", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        found = sqlite3_step(st) == SQLITE_ROW;
    }
    sqlite3_finalize(st);
    return found;
}

void agw_admin_secret_hint(const char *secret, char out[32])
{
    size_t n = secret ? strlen(secret) : 0;
    /* Show enough to tell keys apart, never enough to matter: the first
     * three and last four of a long key, the last two of a short one. */
    if (n == 0)
        out[0] = '\0';
    else if (n >= 16)
        snprintf(out, 32, "%.3s...%s", secret, secret + n - 4);
    else if (n >= 8)
        snprintf(out, 32, "...%s", secret + n - 2);
    else
        snprintf(out, 32, "...");
}

/* ---- resources kept as table rows ---- */

static void *row_new(const agw_admin_resource *res)
{
    void *row = xmalloc(res->row_size);
    res->row_init(row);
    return row;
}

static void row_delete(const agw_admin_resource *res, void *row)
{
    res->row_free(row);
    free(row);
}

int agw_admin_load(agw_admin_req *r, const agw_admin_resource *res, int64_t id, void *row)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, res->select_sql, -1, &st, NULL) != SQLITE_OK) {
        agw_admin_db_fail(r, "reading a %s", res->noun);
        return -1;
    }
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st), found = 0;
    if (rc == SQLITE_ROW)
        found = res->row_read(st, row) ? 1 : -1;
    else if (rc != SQLITE_DONE)
        found = -1;
    sqlite3_finalize(st);
    if (found < 0)
        agw_admin_db_fail(r, "reading a %s", res->noun);
    return found;
}

int agw_admin_begin_load(agw_admin_req *r, const agw_admin_resource *res, int64_t id, void *row)
{
    if (!agw_admin_begin(r))
        return 0;
    int found = agw_admin_load(r, res, id, row);
    if (found == 0) {
        if (res->string_ids)
            agw_admin_fail(r, 404, NULL, "no %s with id '%lld'", res->noun, (long long)id);
        else
            agw_admin_fail(r, 404, NULL, "no %s with id %lld", res->noun, (long long)id);
    }
    return found > 0;
}

int agw_admin_name_free(agw_admin_req *r, const agw_admin_resource *res, const char *name,
                        int64_t self)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, res->name_sql, -1, &st, NULL) != SQLITE_OK) {
        agw_admin_db_fail(r, "checking the name");
        return 0;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, self);
    int taken = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    if (taken) {
        agw_admin_fail(r, 409, "name", "a %s named '%s' already exists", res->noun, name);
        return 0;
    }
    return 1;
}

int agw_admin_write(agw_admin_req *r, const agw_admin_resource *res, sqlite3_stmt *st,
                    const char *name, int64_t *new_id)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_CONSTRAINT) {
        agw_admin_fail(r, 409, "name", "a %s named '%s' already exists", res->noun, name);
        return 0;
    }
    if (rc != SQLITE_DONE) {
        agw_admin_db_fail(r, "storing the %s", res->noun);
        return 0;
    }
    if (new_id)
        *new_id = sqlite3_last_insert_rowid(r->db);
    return 1;
}

void agw_admin_finish(agw_admin_req *r, const agw_admin_resource *res, int64_t id,
                      const char *action, cJSON *detail, int status, const char *shown_once)
{
    char oid[24];
    snprintf(oid, sizeof oid, "%lld", (long long)id);
    void *fresh = row_new(res);
    /* A failed audit or commit has answered (and rolled back); a row not
     * found again has not. */
    if (!agw_admin_audit(r, action, res->noun, oid, detail) ||
        agw_admin_load(r, res, id, fresh) != 1 || !agw_admin_commit(r)) {
        if (r->in_tx)
            agw_admin_fail(r, 500, NULL, "the change could not be stored");
    } else {
        cJSON *doc = res->row_json(fresh);
        if (shown_once)
            cJSON_AddStringToObject(doc, "key", shown_once);
        agw_admin_reply(r, status, doc);
    }
    row_delete(res, fresh);
}

cJSON *agw_admin_audit_detail(const char *name, cJSON *changed)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "name", name);
    if (changed)
        cJSON_AddItemToObject(d, "fields", changed);
    return d;
}

void agw_admin_changed_fields(const cJSON *body, const char *const *fields, cJSON *changed)
{
    for (const char *const *f = fields; *f; f++)
        if (cJSON_GetObjectItemCaseSensitive(body, *f))
            cJSON_AddItemToArray(changed, cJSON_CreateString(*f));
}

int agw_admin_required(agw_admin_req *r, const char *name)
{
    agw_admin_fail(r, 400, name, "'%s' is required", name);
    return 0;
}

static void delete_row(agw_admin_req *r, const agw_admin_resource *res, int64_t id)
{
    void *row = row_new(res);
    if (!agw_admin_begin_load(r, res, id, row))
        goto out;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, res->delete_sql, -1, &st, NULL) != SQLITE_OK) {
        agw_admin_db_fail(r, "deleting the %s", res->noun);
        goto out;
    }
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        agw_admin_db_fail(r, "deleting the %s", res->noun);
        goto out;
    }
    char oid[24];
    snprintf(oid, sizeof oid, "%lld", (long long)id);
    if (!agw_admin_audit(r, "delete", res->noun, oid,
                         agw_admin_audit_detail(res->row_name(row), NULL)) ||
        !agw_admin_commit(r))
        goto out;
    cJSON *doc = cJSON_CreateObject();
    if (res->string_ids)
        cJSON_AddStringToObject(doc, "id", oid);
    else
        cJSON_AddNumberToObject(doc, "id", (double)id);
    cJSON_AddBoolToObject(doc, "deleted", 1);
    agw_admin_reply(r, 200, doc);
out:
    row_delete(res, row);
}

static void list_rows(agw_admin_req *r, const agw_admin_resource *res)
{
    cJSON *doc = cJSON_CreateObject(), *data = cJSON_AddArrayToObject(doc, "data");
    if (res->list_head)
        res->list_head(r, data);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, res->ids_sql, -1, &st, NULL) != SQLITE_OK) {
        cJSON_Delete(doc);
        agw_admin_db_fail(r, "listing %ss", res->noun);
        return;
    }
    /* One read transaction, so the list is one committed state. */
    sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL);
    int rc = SQLITE_DONE;
    int found = 1;
    void *row = xmalloc(res->row_size);
    while (found >= 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        res->row_init(row);
        if ((found = agw_admin_load(r, res, sqlite3_column_int64(st, 0), row)) == 1)
            cJSON_AddItemToArray(data, res->row_json(row));
        res->row_free(row);
    }
    free(row);
    sqlite3_finalize(st);
    sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
    if (found < 0) { /* answered already */
        cJSON_Delete(doc);
        return;
    }
    if (rc != SQLITE_DONE) {
        cJSON_Delete(doc);
        agw_admin_db_fail(r, "listing %ss", res->noun);
        return;
    }
    agw_admin_reply(r, 200, doc);
}

void agw_admin_resource_serve(agw_admin_req *r, const agw_admin_resource *res, agw_str rest)
{
    int get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    if (rest.len == 0) {
        if (get)
            list_rows(r, res);
        else if (strcmp(r->method, "POST") == 0)
            res->create(r);
        else
            agw_admin_method_not_allowed(r, "GET, POST");
        return;
    }
    agw_str id = { rest.ptr + 1, rest.len - 1 };
    int64_t n = agw_admin_parse_id(id);
    void *row = row_new(res);
    int found = n ? agw_admin_load(r, res, n, row) : 0;
    if (found < 0) {
        /* answered 500 */
    } else if (!get && strcmp(r->method, "PUT") != 0 && strcmp(r->method, "DELETE") != 0) {
        agw_admin_method_not_allowed(r, "GET, PUT, DELETE");
    } else if (!found) {
        agw_admin_fail(r, 404, NULL, "no %s with id '%.*s'", res->noun,
                       (int)(id.len > 100 ? 100 : id.len), id.ptr);
    } else if (get) {
        agw_admin_reply(r, 200, res->row_json(row));
    } else if (strcmp(r->method, "PUT") == 0) {
        res->update(r, n);
    } else {
        delete_row(r, res, n);
    }
    row_delete(res, row);
}

/* ---- query strings ---- */

/* Percent-decodes [p, p+n) ('+' is a space) into a malloc'd string; NULL for
 * a bad escape or a NUL. */
static char *decode(const char *p, size_t n)
{
    char *out = xmalloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '%') {
            int a = i + 1 < n ? agw_hex_value((unsigned char)p[i + 1]) : -1;
            int b = i + 2 < n ? agw_hex_value((unsigned char)p[i + 2]) : -1;
            if (a < 0 || b < 0 || (a == 0 && b == 0)) {
                free(out);
                return NULL;
            }
            *o++ = (char)(a << 4 | b);
            i += 2;
        } else {
            *o++ = p[i] == '+' ? ' ' : p[i];
        }
    }
    *o = '\0';
    return out;
}

void agw_admin_query_free(agw_admin_param *params, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(params[i].value);
        params[i].value = NULL;
    }
}

int agw_admin_query(agw_admin_req *r, agw_admin_param *params, size_t n)
{
    const char *q = r->query;
    while (*q) {
        const char *end = strchr(q, '&');
        size_t len = end ? (size_t)(end - q) : strlen(q);
        if (len) {
            const char *eq = memchr(q, '=', len);
            size_t klen = eq ? (size_t)(eq - q) : len;
            char *key = decode(q, klen);
            char *val = eq ? decode(eq + 1, len - klen - 1) : xstrdup("");
            if (!key || !val) {
                free(key);
                free(val);
                agw_admin_query_free(params, n);
                agw_admin_fail(r, 400, NULL, "malformed query string");
                return 0;
            }
            size_t i;
            for (i = 0; i < n && strcmp(params[i].name, key) != 0; i++)
                ;
            if (i == n || params[i].value) {
                char field[64];
                snprintf(field, sizeof field, "%.60s", key);
                free(key);
                free(val);
                agw_admin_query_free(params, n);
                agw_admin_fail(r, 400, field,
                               i == n ? "unknown query parameter '%s'"
                                      : "query parameter '%s' given more than once",
                               field);
                return 0;
            }
            free(key);
            params[i].value = val;
        }
        q += len + (end ? 1 : 0);
    }
    return 1;
}

/* ---- failed admin keys, per client address ----
 *
 * Guessing the admin key is slowed down per client address (REMOTE_ADDR):
 * after AGW_ADMIN_FAIL_MAX wrong keys within AGW_ADMIN_FAIL_WINDOW_S seconds
 * of the first, that address gets 429 with Retry-After for the rest of the
 * window, without its key being compared at all. The right key is never
 * locked out: from any other address it keeps working, and from the blocked
 * address again once the window has passed. A right key from an address that
 * is not blocked clears that address's count. A request without a key is a
 * 401 but no guess, and is not counted.
 *
 * The table is per process (antigw-admin normally runs one), in memory, with
 * AGW_ADMIN_FAIL_SLOTS addresses: a slot whose window has passed is free
 * again; when every slot an address may use holds a live window, the oldest
 * is taken over, which can only shorten that other address's block. */

static struct {
    pthread_mutex_t mu;
    struct fail_slot {
        char addr[48];     /* "" = free; longer addresses are cut */
        uint64_t since_ms; /* agw_mono_ms() of the window's first failure */
        unsigned fails;
    } slots[AGW_ADMIN_FAIL_SLOTS];
} failures = { PTHREAD_MUTEX_INITIALIZER, { { "", 0, 0 } } };

#define FAIL_PROBE 8
#define FAIL_WINDOW_MS ((uint64_t)AGW_ADMIN_FAIL_WINDOW_S * 1000u)

/* The slot of `addr` (under the lock), or with `claim` a new one; NULL when
 * it has none and `claim` is 0. */
static struct fail_slot *fail_slot_of(const char *addr, uint64_t now, int claim)
{
    uint64_t h = UINT64_C(1469598103934665603);
    for (const char *p = addr; *p; p++)
        h = (h ^ (unsigned char)*p) * UINT64_C(1099511628211);
    struct fail_slot *take = NULL;
    int take_live = 1;
    for (unsigned i = 0; i < FAIL_PROBE; i++) {
        struct fail_slot *s = &failures.slots[(h + i) % AGW_ADMIN_FAIL_SLOTS];
        int live = s->addr[0] && now - s->since_ms < FAIL_WINDOW_MS;
        if (live && strncmp(s->addr, addr, sizeof s->addr - 1) == 0)
            return s;
        /* A free or expired slot first; else the live one that is oldest. */
        if (!take || (take_live && !live) || (take_live && live && s->since_ms < take->since_ms)) {
            take = s;
            take_live = live;
        }
    }
    if (!claim)
        return NULL;
    snprintf(take->addr, sizeof take->addr, "%s", addr);
    take->since_ms = now;
    take->fails = 0;
    return take;
}

/* Seconds until `addr` may try again; 0 when it may now. */
static unsigned fail_blocked(const char *addr, uint64_t now)
{
    unsigned secs = 0;
    pthread_mutex_lock(&failures.mu);
    struct fail_slot *s = fail_slot_of(addr, now, 0);
    if (s && s->fails >= AGW_ADMIN_FAIL_MAX)
        secs = (unsigned)((s->since_ms + FAIL_WINDOW_MS - now + 999) / 1000);
    pthread_mutex_unlock(&failures.mu);
    return secs;
}

static void fail_count(const char *addr, uint64_t now, int failed)
{
    pthread_mutex_lock(&failures.mu);
    struct fail_slot *s = fail_slot_of(addr, now, failed);
    if (s && failed)
        s->fails++;
    else if (s)
        s->addr[0] = '\0'; /* the right key: the address starts afresh */
    pthread_mutex_unlock(&failures.mu);
}

/* ---- dispatch ---- */

static void fail_with(agw_admin_req *r, int status, agw_str extra, const char *fmt, ...)
    AGW_PRINTF(4, 5);
static void fail_with(agw_admin_req *r, int status, agw_str extra, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(r, status, extra, NULL, fmt, ap);
    va_end(ap);
}

static int authorized(agw_admin_req *r)
{
    agw_str key = agw_fcgi_bearer(&r->conn);
    if (!key.ptr) {
        agw_admin_fail(r, 401, NULL, "missing admin key: send Authorization: Bearer <admin key>");
        return 0;
    }
    const char *addr = agw_fcgi_param(&r->conn, "REMOTE_ADDR");
    if (!addr)
        addr = "";
    uint64_t now = agw_mono_ms();
    unsigned wait = fail_blocked(addr, now);
    if (wait) {
        char extra[96];
        snprintf(extra, sizeof extra, "Retry-After: %u\r\nCache-Control: no-store\r\n", wait);
        fail_with(r, 429, agw_str_c(extra),
                  "too many wrong admin keys from this address: retry after %u s", wait);
        return 0;
    }
    int ok = agw_secret_eq(key, agw_str_c(r->admin_key));
    fail_count(addr, now, !ok);
    if (!ok) {
        agw_admin_fail(r, 401, NULL, "invalid admin key");
        return 0;
    }
    return 1;
}

void agw_admin_handle(void *app_ptr, agw_server_worker *w, FCGX_Request *req)
{
    agw_admin_worker *worker = agw_server_worker_state(w);
    agw_admin_req r;
    memset(&r, 0, sizeof r);
    r.app = app_ptr;
    r.cfg = __atomic_load_n(&r.app->cfg, __ATOMIC_ACQUIRE);
    r.admin_key = __atomic_load_n(&r.app->admin_key, __ATOMIC_ACQUIRE);
    r.db = agw_store_db(worker->store);
    agw_fcgi_conn_init(&r.conn, req);
    r.method = agw_fcgi_param(&r.conn, "REQUEST_METHOD");
    if (!r.method)
        r.method = "GET";
    r.query = agw_fcgi_param(&r.conn, "QUERY_STRING");
    if (!r.query)
        r.query = "";
    r.path = agw_fcgi_path(&r.conn);
    while (r.path.len > 1 && r.path.ptr[r.path.len - 1] == '/')
        r.path.len--;
    uint64_t start = agw_mono_us();

    /* The key first: without it nobody learns even which paths exist. */
    if (!authorized(&r))
        goto out;
    static const agw_str prov = AGW_STR_LIT("/admin/providers"), keys = AGW_STR_LIT("/admin/keys");
    if (agw_str_eq(r.path, prov) ||
        (agw_str_starts(r.path, prov) && r.path.ptr[prov.len] == '/'))
        agw_admin_providers(&r, (agw_str){ r.path.ptr + prov.len, r.path.len - prov.len });
    else if (agw_str_eq(r.path, keys) ||
             (agw_str_starts(r.path, keys) && r.path.ptr[keys.len] == '/'))
        agw_admin_keys(&r, (agw_str){ r.path.ptr + keys.len, r.path.len - keys.len });
    else if (agw_str_eq(r.path, AGW_STR_LIT("/admin/usage")))
        agw_admin_usage(&r);
    else if (agw_str_eq(r.path, AGW_STR_LIT("/admin/audit")))
        agw_admin_audit_list(&r);
    else if (agw_str_starts(r.path, AGW_STR_LIT("/admin/copilot/")))
        agw_admin_copilot(&r, (agw_str){ r.path.ptr + 14, r.path.len - 14 });
    else if (agw_str_starts(r.path, AGW_STR_LIT("/admin/kiro/")))
        agw_admin_kiro(&r, (agw_str){ r.path.ptr + 11, r.path.len - 11 });
    else
        agw_admin_fail(&r, 404, NULL, "no admin endpoint at %.*s",
                       (int)(r.path.len > 200 ? 200 : r.path.len), r.path.ptr);
out:
    if (r.in_tx) /* every path commits or fails; this is the belt to those braces */
        agw_admin_rollback(&r);
    agw_log_info("admin %s %.*s -> %d (%lu ms)", r.method,
                 (int)(r.path.len > 200 ? 200 : r.path.len), r.path.ptr, r.conn.status,
                 (unsigned long)((agw_mono_us() - start) / 1000));
    agw_fcgi_conn_release(&r.conn);
}
