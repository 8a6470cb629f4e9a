/*
 * admin: antigw-admin, the control plane (README.md, "Multi-tenancy", lists
 * its endpoints). Everything under /admin needs `Authorization: Bearer <admin key>`,
 * checked in constant time before the path is even looked at.
 *
 * Resources: providers (admin_providers.c), client keys (admin_keys.c),
 * usage totals and the audit log (admin_usage.c). This file holds what they
 * share: the request, JSON answers and errors, the strict reading of request
 * bodies, transactions and the audit row.
 *
 * Writes: one BEGIN IMMEDIATE transaction per request holds every check that
 * reads the database (names taken, ids present), the change and its audit
 * row, so a refused request leaves the database exactly as it was. After the
 * COMMIT the shared generation counter is bumped, which makes every responder
 * reload (catalog.h).
 *
 * Errors: {"error":{"type","message","field"}} with 400 (malformed JSON, wrong
 * type, unknown or repeated member, bad value), 401 (admin key), 429 (too
 * many wrong admin keys from one address, with Retry-After), 404 (unknown
 * path or id), 405, 409 (a name taken, or a read-only provider from
 * antigw.cfg), 413, 500. `field` names the offending member or query
 * parameter, or is null.
 */
#ifndef AGW_ADMIN_H
#define AGW_ADMIN_H

#include "core/config.h"
#include "core/crypto.h"
#include "net/fcgi_io.h"
#include "net/fcgi_server.h"
#include "route/lb.h"
#include "state/shm.h"
#include "state/store.h"

#include <cJSON.h>

/* The largest admin request body. */
#define AGW_ADMIN_MAX_BODY (1u << 20)
/* JSON nesting accepted in a body (metadata objects included). */
#define AGW_ADMIN_MAX_DEPTH 16
/* Wrong admin keys one client address may send in a window before it gets
 * 429 until the window ends (admin.c, "failed admin keys"); the addresses
 * each process tracks. */
#define AGW_ADMIN_FAIL_MAX 10
#define AGW_ADMIN_FAIL_WINDOW_S 60
#define AGW_ADMIN_FAIL_SLOTS 4096

typedef struct {
    const agw_config *cfg;
    const char *admin_key;
    agw_shm *shm;
    const agw_secret_key *secrets; /* NULL when secrets.key_file is not set */
} agw_admin_app;

typedef struct {
    agw_store *store;
} agw_admin_worker;

typedef struct {
    const agw_admin_app *app;
    /* app->cfg and app->admin_key as the request started: a reload swaps
     * the app's pointers (atomically), never these. */
    const agw_config *cfg;
    const char *admin_key;
    sqlite3 *db;
    agw_fcgi_conn conn;
    const char *method;
    agw_str path;            /* the whole path, without the query */
    const char *query;       /* QUERY_STRING, "" when none */
    int in_tx;               /* a transaction is open */
} agw_admin_req;

void *agw_admin_worker_init(void *app, int index);
void agw_admin_worker_done(void *app, void *state);
void agw_admin_handle(void *app, agw_server_worker *w, FCGX_Request *req);

/* ---- answers ---- */

/* Sends `doc` (taking ownership) with `status`. */
void agw_admin_reply(agw_admin_req *r, int status, cJSON *doc);
/* An error answer; `field` may be NULL. Rolls back an open transaction. */
void agw_admin_fail(agw_admin_req *r, int status, const char *field, const char *fmt, ...)
    AGW_PRINTF(4, 5);
void agw_admin_method_not_allowed(agw_admin_req *r, const char *allow);

/* ---- request bodies ---- */

/* The body as a JSON object, checked strictly: valid JSON within the depth
 * limit, an object, no member repeated in any object, no string holding
 * U+0000, and every top-level member named in `known` (NULL-terminated).
 * NULL when it answered 4xx. The caller frees the result. */
cJSON *agw_admin_body(agw_admin_req *r, const char *const *known);

/* Typed members. Each returns 1 when present (for a nullable member *is_null
 * says whether it was null), 0 when absent, -1 when it answered 400 naming
 * the member. Strings must be UTF-8 without control characters. */
int agw_admin_string(agw_admin_req *r, const cJSON *obj, const char *name, size_t max_len,
                     int nullable, const char **out, int *is_null);
int agw_admin_int(agw_admin_req *r, const cJSON *obj, const char *name, int64_t lo, int64_t hi,
                  int nullable, int64_t *out, int *is_null);
int agw_admin_bool(agw_admin_req *r, const cJSON *obj, const char *name, int *out);
/* An array of 1..max_len-byte strings (at most max_items), or null. */
int agw_admin_string_array(agw_admin_req *r, const cJSON *obj, const char *name,
                           size_t max_items, size_t max_len, int nullable, const cJSON **out,
                           int *is_null);

/* A positive integer id from a path segment; 0 when it is not one. */
int64_t agw_admin_parse_id(agw_str s);

/* ---- the database ---- */

/* BEGIN IMMEDIATE; 0 when it answered 503. */
int agw_admin_begin(agw_admin_req *r);
/* COMMIT and bump the generation; 0 when it answered 500 (rolled back). */
int agw_admin_commit(agw_admin_req *r);
void agw_admin_rollback(agw_admin_req *r);
/* The audit row of this change (inside the transaction); takes `detail`.
 * 0 when it answered 500. */
int agw_admin_audit(agw_admin_req *r, const char *action, const char *object_type,
                    const char *object_id, cJSON *detail);
/* Answers 500 "database error while <what>" for a failed statement, and logs
 * it with SQLite's message (neither names a secret). */
void agw_admin_db_fail(agw_admin_req *r, const char *what_fmt, ...) AGW_PRINTF(2, 3);

/* A JSON array (as stored) from a column, or null; a cJSON array or NULL. */
cJSON *agw_admin_json_column(sqlite3_stmt *st, int col);
/* Binds `s`, or SQL NULL when it is NULL (SQLITE_STATIC: keep `s` until the step). */
void agw_admin_bind_text_or_null(sqlite3_stmt *st, int i, const char *s);
/* 1 when a provider of that name exists in antigw.cfg or the database. */
int agw_admin_provider_exists(agw_admin_req *r, const char *name);
/* "sk-...abcd" style hint of a secret; "" for an empty one. */
void agw_admin_secret_hint(const char *secret, char out[32]);

/* ---- resources kept as table rows: keys, providers ----
 *
 * A resource describes its table and its row type; the code here does what
 * every such resource does the same way: GET of the list and of one id,
 * DELETE, the 404 and 405 answers, the name check, storing a row, and the end
 * of every write (audit row, the row read back, COMMIT, the answer). What a
 * body means stays with the resource: its create and update hooks.
 *
 * Rows are handled through `void *` so one skeleton serves every row type;
 * row_init must make a row that row_free accepts, and row_free must accept a
 * row that row_read filled only in part. */
typedef struct agw_admin_resource agw_admin_resource;
struct agw_admin_resource {
    const char *noun;       /* "key": in messages, and the audit log's object_type */
    const char *select_sql; /* the columns row_read takes, of the row "WHERE id = ?" */
    const char *ids_sql;    /* "SELECT id ...": every id, in the list's order */
    const char *name_sql;   /* "SELECT ... WHERE name = ? AND id != ?" */
    const char *delete_sql; /* "DELETE ... WHERE id = ?" */
    /* 1: ids are JSON strings in answers and quoted in messages (providers
     * have "cfg:<name>" ids beside the numbers); 0: numbers, unquoted. */
    int string_ids;
    size_t row_size;
    void (*row_init)(void *row);
    void (*row_free)(void *row);
    int (*row_read)(sqlite3_stmt *st, void *row); /* a select_sql row; 0 on failure */
    cJSON *(*row_json)(const void *row);
    const char *(*row_name)(const void *row);
    /* Adds the entries listed before the table's rows; NULL: none. */
    void (*list_head)(agw_admin_req *r, cJSON *data);
    void (*create)(agw_admin_req *r);             /* POST to the collection */
    void (*update)(agw_admin_req *r, int64_t id); /* PUT to an id that was found */
};

/* Serves `rest`, what follows the resource's path: "" (GET/HEAD: the list,
 * POST: create) or "/<id>" (GET/HEAD, PUT, DELETE); 405 for other methods
 * (before the 404 of an unknown id). */
void agw_admin_resource_serve(agw_admin_req *r, const agw_admin_resource *res, agw_str rest);

/* Reads row `id` into `row` (made by row_init). 1 found, 0 not, -1 when it
 * answered 500. */
int agw_admin_load(agw_admin_req *r, const agw_admin_resource *res, int64_t id, void *row);
/* BEGIN IMMEDIATE, then row `id` as agw_admin_load. 1 when it is loaded;
 * 0 when it answered (503 busy, 404 for a row deleted meanwhile, 500). */
int agw_admin_begin_load(agw_admin_req *r, const agw_admin_resource *res, int64_t id,
                         void *row);
/* 1 when no row other than `self` (0 for a new row) is named `name`;
 * otherwise 0, having answered 409 (or 500). */
int agw_admin_name_free(agw_admin_req *r, const agw_admin_resource *res, const char *name,
                        int64_t self);
/* Steps and finalizes `st`, a prepared INSERT (then *new_id gets the row's
 * id; pass NULL for an UPDATE) of the row named `name`. 1 when done; 0 when
 * it answered 409 (the name is taken: a UNIQUE constraint) or 500. */
int agw_admin_write(agw_admin_req *r, const agw_admin_resource *res, sqlite3_stmt *st,
                    const char *name, int64_t *new_id);
/* The end of a write, inside its transaction: the audit row (takes
 * `detail`), row `id` read back, COMMIT; then the answer `status` with that
 * row, plus the member "key": `shown_once` when not NULL (a new client key,
 * which no other answer shows). Answers an error instead when a step fails. */
void agw_admin_finish(agw_admin_req *r, const agw_admin_resource *res, int64_t id,
                      const char *action, cJSON *detail, int status, const char *shown_once);
/* The audit detail {"name": name, "fields": changed}; takes `changed`, which
 * may be NULL (no "fields" member). */
cJSON *agw_admin_audit_detail(const char *name, cJSON *changed);
/* Appends to the array `changed` the names in `fields` (NULL-terminated)
 * that `body` holds, in the order of `fields`. */
void agw_admin_changed_fields(const cJSON *body, const char *const *fields, cJSON *changed);
/* Answers 400 "'<name>' is required" naming the member; returns 0, so a
 * body reader can `return agw_admin_required(r, "name");`. */
int agw_admin_required(agw_admin_req *r, const char *name);

/* ---- resources ---- */

void agw_admin_providers(agw_admin_req *r, agw_str rest);
/* The pool's load-balancer view the provider answers read health from; set
 * once before the server starts (NULL: no health fields). */
void agw_admin_providers_bind(agw_lb *lb);
void agw_admin_keys(agw_admin_req *r, agw_str rest);
void agw_admin_usage(agw_admin_req *r);
void agw_admin_audit_list(agw_admin_req *r);
/* GitHub Copilot logins and accounts (admin_copilot.c): `rest` follows
 * /admin/copilot. */
void agw_admin_copilot(agw_admin_req *r, agw_str rest);
/* A PUT of `provider` whose body holds github_token: stores it (answered
 * either way) and returns 1; 0 when the body has no github_token. */
int agw_admin_copilot_set_token(agw_admin_req *r, const char *provider, const cJSON *body);
/* /admin/kiro/...: Kiro logins and accounts (admin_kiro.c); `rest` is the
 * path after /admin/kiro. */
void agw_admin_kiro(agw_admin_req *r, agw_str rest);

/* ---- query strings ---- */

typedef struct {
    const char *name;   /* the parameter */
    char *value;        /* decoded, malloc'd; NULL when absent */
} agw_admin_param;

/* Decodes the query into `params` (names given, values filled). 0 when it
 * answered 400: an unknown or repeated parameter, or a bad escape. */
int agw_admin_query(agw_admin_req *r, agw_admin_param *params, size_t n);
void agw_admin_query_free(agw_admin_param *params, size_t n);

#endif
