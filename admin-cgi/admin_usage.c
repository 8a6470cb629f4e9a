/*
 * GET /admin/usage: totals of the usage table, filtered and grouped; and
 * GET /admin/audit: the audit log, newest first.
 *
 * Latency percentiles are nearest-rank (the smallest latency with at least p%
 * of the group at or below it), computed by SQLite with window functions in
 * the same query as the sums, so no row leaves the database.
 */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct {
    const char *name;
    const char *expr;   /* the grouping expression over usage */
    const char *label;  /* the member naming the group in the answer */
} agw_admin_grouping;

static const agw_admin_grouping groupings[] = {
    { "key", "key_id", "key_id" },
    { "model", "model", "model" },
    { "provider", "provider", "provider" },
    { "key_model", "key_id, model", "key_id" },
    { "day", "strftime('%Y-%m-%d', ts, 'unixepoch')", "day" },
    { "hour", "strftime('%Y-%m-%dT%H:00:00Z', ts, 'unixepoch')", "hour" },
};

enum { P_KEY, P_PROVIDER, P_MODEL, P_FROM, P_TO, P_GROUP, P_COUNT };

/* Columns after the group columns in the statement below. */
static cJSON *stats(sqlite3_stmt *st, int c)
{
    cJSON *o = cJSON_CreateObject();
    static const char *const sums[] = { "requests",           "input_tokens",
                                        "output_tokens",      "cache_read_tokens",
                                        "cache_write_tokens", "errors",
                                        "streamed",           "estimated_token_counts" };
    for (size_t i = 0; i < sizeof sums / sizeof sums[0]; i++)
        cJSON_AddNumberToObject(o, sums[i], (double)sqlite3_column_int64(st, c++));
    cJSON *lat = cJSON_AddObjectToObject(o, "latency_ms");
    static const char *const ps[] = { "p50", "p90", "p95", "p99", "max" };
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++, c++)
        if (sqlite3_column_type(st, c) == SQLITE_NULL)
            cJSON_AddNullToObject(lat, ps[i]);
        else
            cJSON_AddNumberToObject(lat, ps[i], (double)sqlite3_column_int64(st, c));
    if (sqlite3_column_type(st, c) == SQLITE_NULL)
        cJSON_AddNullToObject(lat, "avg");
    else
        cJSON_AddNumberToObject(lat, "avg", (double)(int64_t)(sqlite3_column_double(st, c) + 0.5));
    c++;
    if (sqlite3_column_type(st, c) == SQLITE_NULL)
        cJSON_AddNullToObject(o, "ttft_ms_avg");
    else
        cJSON_AddNumberToObject(o, "ttft_ms_avg",
                                (double)(int64_t)(sqlite3_column_double(st, c) + 0.5));
    c++;
    /* Credits the providers charged (Kiro); null when none reported any. */
    if (sqlite3_column_type(st, c) == SQLITE_NULL)
        cJSON_AddNullToObject(o, "credits");
    else
        cJSON_AddNumberToObject(o, "credits", sqlite3_column_double(st, c));
    return o;
}

/* Builds the statement for one grouping (NULL: the totals). */
static int prepare(agw_admin_req *r, const agw_admin_grouping *g, const agw_admin_param *p,
                   int64_t key_id, int64_t from, int64_t to, sqlite3_stmt **out)
{
    agw_buf sql = AGW_BUF_INIT(8192);
    const char *part = g ? g->expr : NULL;
    int two = g && strcmp(g->name, "key_model") == 0;
    agw_err e = agw_buf_appendf(
        &sql,
        "WITH f AS (SELECT %s%s status, input_tokens, output_tokens, cache_read_tokens,"
        " cache_write_tokens, streamed, tokens_estimated, latency_ms, ttft_ms, credits,"
        " ROW_NUMBER() OVER (%s%s ORDER BY latency_ms) AS rn,"
        " COUNT(*) OVER (%s%s) AS n FROM usage WHERE 1",
        part ? part : "", part ? (two ? "," : " AS g1,") : "", part ? "PARTITION BY " : "",
        part ? part : "", part ? "PARTITION BY " : "", part ? part : "");
    if (!e && key_id)
        e = agw_buf_append_str(&sql, AGW_STR_LIT(" AND key_id = :key"));
    if (!e && p[P_PROVIDER].value)
        e = agw_buf_append_str(&sql, AGW_STR_LIT(" AND provider = :provider"));
    if (!e && p[P_MODEL].value)
        e = agw_buf_append_str(&sql, AGW_STR_LIT(" AND model = :model"));
    if (!e && from >= 0)
        e = agw_buf_append_str(&sql, AGW_STR_LIT(" AND ts >= :from"));
    if (!e && to >= 0)
        e = agw_buf_append_str(&sql, AGW_STR_LIT(" AND ts < :to"));
    if (!e)
        e = agw_buf_appendf(
            &sql,
            ") SELECT %s COUNT(*), COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0),"
            " COALESCE(SUM(cache_read_tokens), 0), COALESCE(SUM(cache_write_tokens), 0),"
            " COALESCE(SUM(status < 200 OR status >= 400), 0), COALESCE(SUM(streamed), 0),"
            " COALESCE(SUM(tokens_estimated), 0),"
            " MIN(CASE WHEN rn * 100 >= n * 50 THEN latency_ms END),"
            " MIN(CASE WHEN rn * 100 >= n * 90 THEN latency_ms END),"
            " MIN(CASE WHEN rn * 100 >= n * 95 THEN latency_ms END),"
            " MIN(CASE WHEN rn * 100 >= n * 99 THEN latency_ms END),"
            " MAX(latency_ms), AVG(latency_ms), AVG(ttft_ms), SUM(credits) FROM f%s%s%s",
            !g ? "" : two ? "key_id, model," : "g1,", g ? " GROUP BY " : "",
            !g ? "" : two ? "key_id, model" : "g1", !g ? "" : two ? " ORDER BY key_id, model"
                                                               : " ORDER BY g1");
    if (e) {
        agw_buf_free(&sql);
        agw_admin_fail(r, 500, NULL, "query too long");
        return 0;
    }
    int rc = sqlite3_prepare_v2(r->db, sql.data, (int)sql.len, out, NULL);
    agw_buf_free(&sql);
    if (rc != SQLITE_OK) {
        agw_admin_db_fail(r, "querying usage");
        return 0;
    }
    int i;
    if (key_id && (i = sqlite3_bind_parameter_index(*out, ":key")))
        sqlite3_bind_int64(*out, i, key_id);
    if (p[P_PROVIDER].value && (i = sqlite3_bind_parameter_index(*out, ":provider")))
        sqlite3_bind_text(*out, i, p[P_PROVIDER].value, -1, SQLITE_STATIC);
    if (p[P_MODEL].value && (i = sqlite3_bind_parameter_index(*out, ":model")))
        sqlite3_bind_text(*out, i, p[P_MODEL].value, -1, SQLITE_STATIC);
    if (from >= 0 && (i = sqlite3_bind_parameter_index(*out, ":from")))
        sqlite3_bind_int64(*out, i, from);
    if (to >= 0 && (i = sqlite3_bind_parameter_index(*out, ":to")))
        sqlite3_bind_int64(*out, i, to);
    return 1;
}

static cJSON *key_name(agw_admin_req *r, int64_t id)
{
    sqlite3_stmt *st;
    cJSON *v = NULL;
    if (sqlite3_prepare_v2(r->db, "SELECT name FROM api_keys WHERE id = ?", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        if (sqlite3_step(st) == SQLITE_ROW)
            v = cJSON_CreateString((const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
    }
    return v ? v : cJSON_CreateNull();
}

void agw_admin_usage(agw_admin_req *r)
{
    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) {
        agw_admin_method_not_allowed(r, "GET");
        return;
    }
    agw_admin_param p[P_COUNT] = { { "key_id", NULL }, { "provider", NULL }, { "model", NULL },
                                   { "from", NULL },   { "to", NULL },       { "group_by", NULL } };
    if (!agw_admin_query(r, p, P_COUNT))
        return;
    cJSON *doc = NULL;
    sqlite3_stmt *st = NULL;
    int64_t key_id = 0, from = -1, to = -1;
    const agw_admin_grouping *g = NULL;
    if (p[P_KEY].value && !(key_id = agw_admin_parse_id(agw_str_c(p[P_KEY].value)))) {
        agw_admin_fail(r, 400, "key_id", "'key_id' must be a positive integer");
        goto out;
    }
    if (p[P_FROM].value && (from = agw_time_parse(p[P_FROM].value)) < 0) {
        agw_admin_fail(r, 400, "from", "'from' must be Unix seconds, YYYY-MM-DD or RFC 3339");
        goto out;
    }
    if (p[P_TO].value && (to = agw_time_parse(p[P_TO].value)) < 0) {
        agw_admin_fail(r, 400, "to", "'to' must be Unix seconds, YYYY-MM-DD or RFC 3339");
        goto out;
    }
    if (p[P_GROUP].value) {
        for (size_t i = 0; i < sizeof groupings / sizeof groupings[0]; i++)
            if (strcmp(groupings[i].name, p[P_GROUP].value) == 0)
                g = &groupings[i];
        if (!g) {
            agw_admin_fail(r, 400, "group_by",
                           "'group_by' must be key, model, provider, key_model, day or hour");
            goto out;
        }
    }
    doc = cJSON_CreateObject();
    cJSON *filters = cJSON_AddObjectToObject(doc, "filters");
    if (key_id)
        cJSON_AddNumberToObject(filters, "key_id", (double)key_id);
    else
        cJSON_AddNullToObject(filters, "key_id");
    for (int i = P_PROVIDER; i <= P_MODEL; i++)
        if (p[i].value)
            cJSON_AddStringToObject(filters, p[i].name, p[i].value);
        else
            cJSON_AddNullToObject(filters, p[i].name);
    if (from >= 0)
        cJSON_AddNumberToObject(filters, "from", (double)from);
    else
        cJSON_AddNullToObject(filters, "from");
    if (to >= 0)
        cJSON_AddNumberToObject(filters, "to", (double)to);
    else
        cJSON_AddNullToObject(filters, "to");
    if (g)
        cJSON_AddStringToObject(doc, "group_by", g->name);
    else
        cJSON_AddNullToObject(doc, "group_by");

    /* One read transaction: the totals and the groups describe the same rows. */
    sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL);
    if (!prepare(r, NULL, p, key_id, from, to, &st))
        goto out;
    if (sqlite3_step(st) != SQLITE_ROW) {
        agw_admin_db_fail(r, "querying usage");
        goto out;
    }
    cJSON_AddItemToObject(doc, "totals", stats(st, 0));
    sqlite3_finalize(st);
    st = NULL;
    cJSON *groups = cJSON_AddArrayToObject(doc, "groups");
    if (g) {
        int two = strcmp(g->name, "key_model") == 0, rc;
        if (!prepare(r, g, p, key_id, from, to, &st))
            goto out;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            cJSON *row = stats(st, two ? 2 : 1);
            if (strcmp(g->label, "key_id") == 0) {
                if (sqlite3_column_type(st, 0) == SQLITE_NULL) {
                    cJSON_AddNullToObject(row, "key_id");
                    cJSON_AddNullToObject(row, "key_name");
                } else {
                    int64_t id = sqlite3_column_int64(st, 0);
                    cJSON_AddNumberToObject(row, "key_id", (double)id);
                    cJSON_AddItemToObject(row, "key_name", key_name(r, id));
                }
                if (two)
                    cJSON_AddStringToObject(row, "model", (const char *)sqlite3_column_text(st, 1));
            } else {
                const unsigned char *t = sqlite3_column_text(st, 0);
                cJSON_AddStringToObject(row, g->label, t ? (const char *)t : "");
            }
            cJSON_AddItemToArray(groups, row);
        }
        if (rc != SQLITE_DONE) {
            agw_admin_db_fail(r, "querying usage");
            goto out;
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
    agw_admin_reply(r, 200, doc);
    doc = NULL;
out:
    sqlite3_finalize(st);
    if (sqlite3_get_autocommit(r->db) == 0)
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    cJSON_Delete(doc);
    agw_admin_query_free(p, P_COUNT);
}

enum { A_LIMIT, A_BEFORE, A_TYPE, A_ID, A_COUNT };

void agw_admin_audit_list(agw_admin_req *r)
{
    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) {
        agw_admin_method_not_allowed(r, "GET");
        return;
    }
    agw_admin_param p[A_COUNT] = { { "limit", NULL }, { "before_id", NULL },
                                   { "object_type", NULL }, { "object_id", NULL } };
    if (!agw_admin_query(r, p, A_COUNT))
        return;
    int64_t limit = 100, before = 0;
    sqlite3_stmt *st = NULL;
    cJSON *doc = NULL;
    if (p[A_LIMIT].value &&
        ((limit = agw_admin_parse_id(agw_str_c(p[A_LIMIT].value))) < 1 || limit > 1000)) {
        agw_admin_fail(r, 400, "limit", "'limit' must be an integer from 1 to 1000");
        goto out;
    }
    if (p[A_BEFORE].value && !(before = agw_admin_parse_id(agw_str_c(p[A_BEFORE].value)))) {
        agw_admin_fail(r, 400, "before_id", "'before_id' must be a positive integer");
        goto out;
    }
    if (p[A_TYPE].value && strcmp(p[A_TYPE].value, "provider") != 0 &&
        strcmp(p[A_TYPE].value, "key") != 0) {
        agw_admin_fail(r, 400, "object_type", "'object_type' must be provider or key");
        goto out;
    }
    if (sqlite3_prepare_v2(r->db,
                           "SELECT id, ts, action, object_type, object_id, detail FROM audit_log"
                           " WHERE (?1 = 0 OR id < ?1) AND (?2 IS NULL OR object_type = ?2)"
                           " AND (?3 IS NULL OR object_id = ?3) ORDER BY id DESC LIMIT ?4",
                           -1, &st, NULL) != SQLITE_OK) {
        agw_admin_db_fail(r, "reading the audit log");
        goto out;
    }
    sqlite3_bind_int64(st, 1, before);
    if (p[A_TYPE].value)
        sqlite3_bind_text(st, 2, p[A_TYPE].value, -1, SQLITE_STATIC);
    if (p[A_ID].value)
        sqlite3_bind_text(st, 3, p[A_ID].value, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, limit);
    doc = cJSON_CreateObject();
    cJSON *data = cJSON_AddArrayToObject(doc, "data");
    int rc;
    int64_t last = 0, n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cJSON *e = cJSON_CreateObject();
        last = sqlite3_column_int64(st, 0);
        n++;
        cJSON_AddNumberToObject(e, "id", (double)last);
        cJSON_AddNumberToObject(e, "ts", (double)sqlite3_column_int64(st, 1));
        cJSON_AddStringToObject(e, "action", (const char *)sqlite3_column_text(st, 2));
        cJSON_AddStringToObject(e, "object_type", (const char *)sqlite3_column_text(st, 3));
        cJSON_AddStringToObject(e, "object_id", (const char *)sqlite3_column_text(st, 4));
        cJSON *d = agw_admin_json_column(st, 5);
        cJSON_AddItemToObject(e, "detail", d ? d : cJSON_CreateObject());
        cJSON_AddItemToArray(data, e);
    }
    if (rc != SQLITE_DONE) {
        agw_admin_db_fail(r, "reading the audit log");
        goto out;
    }
    if (n == limit)
        cJSON_AddNumberToObject(doc, "next_before_id", (double)last);
    else
        cJSON_AddNullToObject(doc, "next_before_id");
    agw_admin_reply(r, 200, doc);
    doc = NULL;
out:
    sqlite3_finalize(st);
    cJSON_Delete(doc);
    agw_admin_query_free(p, A_COUNT);
}
