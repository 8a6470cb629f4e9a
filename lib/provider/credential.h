/*
 * credential: the OAuth-style token records of providers that log in (Kiro,
 * GitHub Copilot), shared by every process of the pool through SQLite, and
 * the login sessions that create them.
 *
 * A record (table `credentials`, one row per provider name) holds what one
 * account needs to call its upstream and to renew that: the access token,
 * the refresh token, the OAuth client id and secret, the auth method, the
 * region, the profile ARN, the expiry, a state, when it was last refreshed,
 * the last refresh error, and `extra`, a small JSON object for what one
 * provider type alone needs (Copilot's endpoints.api). The three secrets
 * (access token, refresh token, client secret) are sealed together with
 * AES-256-GCM (core/crypto.h) under secrets.key_file, associated data
 * "credential:<provider>", so a database copy alone gives no token away and
 * a blob moved onto another row does not open. Without secrets.key_file no
 * record can be written or read (AGW_EINVAL, "secrets.key_file is not set").
 *
 * Every stored token bumps the record's `version` (a counter that never goes
 * back). A caller that got a token learns its version, and reports a
 * rejection with it: if the record has moved past that version someone has
 * already refreshed, and the caller simply retries with the new token.
 *
 * Refresh, exactly once per account across the pool: a token is renewed
 * when less than `refresh_before` seconds of it are left (default 600: the
 * 5-10 minutes before expiry), on agw_cred_rejected(), and on an admin's
 * forced refresh. The one who renews holds an exclusive flock(2) on the
 * account's lock file (`<database path>-cred-<provider>.lock`; released by
 * the kernel when its holder dies, so a crash never wedges an account);
 * everyone else who needs the token meanwhile waits for that lock (bounded
 * by `wait_ms`) and then reads the new token from the database instead of
 * refreshing again: under the lock the record is read afresh, and a record
 * whose version moved on, or that is no longer due, is used as it is. The
 * new access token, a rotated refresh token and the new expiry are written
 * in one transaction. A refresh that answers invalid_grant (the refresh
 * token is dead) puts the record in state "needs_login": it is not
 * refreshed again, agw_cred_routable() takes the provider out of routing,
 * and /health, /metrics and the admin API show it until a login or an
 * import stores a new token. A transient failure (network, 5xx) keeps the
 * state, records last_error, and lets the old token serve while it is still
 * valid.
 *
 * Refresh methods: each auth method is an agw_cred_method in the table of
 * credential.c (Kiro's "social", "idc" and "builder-id" in kiro_auth.c;
 * Copilot's token exchange in its own file). The method runs under the lock
 * and only talks to its upstream; storing and locking are this module's.
 *
 * Login sessions (table `login_sessions`): a login that spans several admin
 * requests (a browser sign-in returning a code, an OAuth device flow) keeps
 * its state in one row, so any admin process can finish it. A session
 * expires after AGW_CRED_LOGIN_TTL seconds; at most one session per provider
 * is pending at a time (a unique index, so two admin processes cannot both
 * start one). Its secret part (a PKCE verifier, the OAuth `state`, a device
 * code, a client secret) is sealed like a record, aad "login:<id>"; its
 * public part is JSON an admin may see.
 *
 * Nothing here ever writes a token, a refresh token, a client secret or a
 * sealed blob to the log or into an error message; `last_error` and the
 * `err` texts are written by this module and the methods in their own words.
 *
 * Threads and processes: agw_cred_setup() once per process before threads
 * start; every other function is safe from any thread. Each thread uses its
 * own SQLite connection, opened on first use and closed at thread exit; a
 * child after fork() opens its own.
 *
 * Ownership: agw_cred, agw_cred_token and agw_cred_login own their strings;
 * release them with the matching _free(), which wipes the secrets first.
 */
#ifndef AGW_CREDENTIAL_H
#define AGW_CREDENTIAL_H

#include "core/config.h"
#include "core/crypto.h"

/* ---- the process's settings ---- */

typedef struct {
    const char *db_path;          /* database.path */
    const agw_secret_key *secrets; /* NULL when secrets.key_file is not set (copied) */
    int refresh_before;           /* seconds before expiry to renew; 0 = 600 */
    int wait_ms;                  /* how long a caller waits for another's refresh; 0 = 30000 */
    int http_timeout_ms;          /* a refresh call's whole deadline; 0 = 15000 */
} agw_cred_settings;

/* Binds the module to the database and the key (both copied). Call once per
 * process before threads start; a second call replaces the settings. */
AGW_WARN_UNUSED agw_err agw_cred_setup(const agw_cred_settings *s);
/* Wipes the key copy and closes the calling thread's connection. */
void agw_cred_teardown(void);

/* ---- records ---- */

typedef enum {
    AGW_CRED_OK = 0,        /* usable (a token may still need a refresh) */
    AGW_CRED_NEEDS_LOGIN,   /* the refresh token was refused for good */
} agw_cred_state;

/* "ok", "needs_login". */
const char *agw_cred_state_name(agw_cred_state s);

typedef struct {
    char *provider;       /* the provider's name */
    char *method;         /* auth method: "social", "idc", "builder-id", "copilot" */
    char *access_token;   /* secret */
    char *refresh_token;  /* secret; NULL when the method has none */
    char *client_id;      /* NULL when none */
    char *client_secret;  /* secret; NULL when none */
    char *region;         /* where it logged in (OIDC, auth service); NULL = none */
    char *profile_arn;    /* NULL when none */
    char *extra;          /* a JSON object; NULL reads as {} */
    int64_t expires_at;   /* Unix seconds; 0 = unknown (refreshed only on rejection) */
    agw_cred_state state;
    uint64_t version;     /* bumped by every stored token */
    int64_t last_refresh; /* Unix seconds of the last stored token; 0 = never */
    char *last_error;     /* the last refresh failure, in our words; NULL = none */
} agw_cred;

void agw_cred_free(agw_cred *c);
/* A deep copy of `src` into `dst`. */
void agw_cred_copy(agw_cred *dst, const agw_cred *src);

/* Reads provider's whole record, secrets included (for methods and the
 * admin app's own use; never for an answer). AGW_ENOTFOUND when there is
 * none; AGW_EINVAL when it does not open under this key. */
AGW_WARN_UNUSED agw_err agw_cred_load(const char *provider, agw_cred *out, char *err,
                                      size_t errlen);

/* Stores a new account for c->provider (a login or an import): replaces any
 * record, state "ok", last_error cleared, version one past the old one,
 * last_refresh now. Takes the account's lock, so it never interleaves with
 * a refresh in progress (AGW_ETIMEOUT past wait_ms). */
AGW_WARN_UNUSED agw_err agw_cred_store(const agw_cred *c, char *err, size_t errlen);

/* Removes provider's record (with its provider). AGW_ENOTFOUND when none. */
AGW_WARN_UNUSED agw_err agw_cred_delete(const char *provider);

/* ---- the data path ---- */

/* What one call needs: a snapshot of the record, the secret part reduced to
 * the access token. */
typedef struct {
    char *access_token;   /* secret */
    char *profile_arn;    /* NULL when none */
    char *region;         /* where it logged in (OIDC, auth service); NULL = none */
    char *extra;          /* JSON object text, never NULL */
    int64_t expires_at;
    uint64_t version;
} agw_cred_token;

void agw_cred_token_free(agw_cred_token *t);

/* The current access token of `p`, renewed first when it is due (see the
 * top). AGW_ENOTFOUND: no record, or it needs a login; AGW_ETIMEOUT:
 * another refresh held the account past wait_ms; AGW_EIO: the refresh
 * failed and the token has expired. `err` says which, never with a token. */
AGW_WARN_UNUSED agw_err agw_cred_access(const agw_provider_cfg *p, agw_cred_token *out,
                                        char *err, size_t errlen);

/* The upstream refused the token of `version` (a 401, or an answer that says
 * the token is invalid; never on a 403 alone). Renews it once, unless the
 * record has already moved past `version`. AGW_OK: retry the call once with
 * agw_cred_access(); anything else: do not retry (same codes as above). */
AGW_WARN_UNUSED agw_err agw_cred_rejected(const agw_provider_cfg *p, uint64_t version,
                                          char *err, size_t errlen);

/* An admin's forced refresh: renews now, under the lock, whatever the
 * expiry (a record needing login is tried again: an admin asked). */
AGW_WARN_UNUSED agw_err agw_cred_refresh_now(const agw_provider_cfg *p, char *err,
                                             size_t errlen);

/* 1 unless `p` is of a type that logs in (kiro, copilot) and its record is
 * missing or needs a login: route candidates skip such a provider. Always 1
 * before agw_cred_setup() (nothing is known). */
int agw_cred_routable(const agw_provider_cfg *p);

/* What /health says of `p`'s account: "ok", "needs_login", "none" (never
 * logged in); NULL for a type that does not log in, or before setup. */
const char *agw_cred_health(const agw_provider_cfg *p);

/* 1 when providers of type `t` authenticate through a credential record. */
int agw_cred_type_logs_in(agw_provider_type t);

/* ---- what /health, /metrics and the admin API show ---- */

typedef struct {
    char provider[AGW_CONFIG_NAME_MAX + 1];
    char method[16];
    agw_cred_state state;
    int64_t expires_at;
    int64_t last_refresh;
    uint64_t version;
} agw_cred_status;

/* Fills up to `cap` statuses (every record, by provider name); returns how
 * many records there are (may exceed cap). -1 when the database fails. */
long agw_cred_statuses(agw_cred_status *out, size_t cap);

/* ---- refresh methods ---- */

typedef enum {
    AGW_CRED_REFRESHED = 0, /* `out` holds the new token */
    AGW_CRED_DEAD,          /* invalid_grant: the refresh token will never work again */
    AGW_CRED_FAILED,        /* anything else; may work later */
} agw_cred_outcome;

typedef struct {
    const char *name;       /* the record's `method` */
    agw_provider_type type; /* the provider type it serves */
    /* Renews `cur` on its upstream. `out` starts as a deep copy of `cur`;
     * the method replaces what changed (access_token, expires_at, a rotated
     * refresh_token, profile_arn, extra), freeing the strings it replaces.
     * `why` receives a failure's reason (status, OAuth error code; never a
     * token). Runs under the account's lock; it must not call this module. */
    agw_cred_outcome (*refresh)(const agw_provider_cfg *p, const agw_cred *cur, agw_cred *out,
                                int timeout_ms, char *why, size_t whylen);
} agw_cred_method;

/* The method named `name` for type `t`, or NULL. */
const agw_cred_method *agw_cred_method_of(agw_provider_type t, const char *name);

/* ---- for methods and logins: one small HTTP exchange ---- */

#define AGW_CRED_HTTP_MAX_BODY (1u << 20) /* an auth service's answer */

/* Sends one request (`body.ptr` NULL: GET; else POST) with `headers`
 * (NULL-terminated "Name: value", may be NULL) and collects the answer's
 * body (at most AGW_CRED_HTTP_MAX_BODY) into `resp`. AGW_OK with *status
 * set for any complete answer; AGW_EIO (no answer, `why` says what
 * happened in libcurl's words) otherwise. */
AGW_WARN_UNUSED agw_err agw_cred_http(const char *url, const char *const *headers, agw_str body,
                                      int timeout_ms, long *status, agw_buf *resp, char *why,
                                      size_t whylen);

/* The decoded string member `key` of JSON object `doc` as a malloc'd C
 * string; NULL when `doc` is not an object, the member is missing, not a
 * string, or holds a NUL. */
char *agw_cred_json_string(agw_str doc, const char *key);
/* The integer member `key` of `doc` in *out: 1 when there is one. */
int agw_cred_json_int(agw_str doc, const char *key, int64_t *out);

/* ---- login sessions ---- */

#define AGW_CRED_LOGIN_TTL 600 /* seconds a session lives */
#define AGW_CRED_LOGIN_ID_LEN 32 /* hex digits of a session id (128 random bits) */

typedef enum {
    AGW_LOGIN_PENDING = 0,
    AGW_LOGIN_COMPLETED,
    AGW_LOGIN_EXPIRED,
    AGW_LOGIN_ERROR,
    AGW_LOGIN_DENIED, /* the user declined (a device flow's access_denied) */
} agw_login_status;

/* "pending", "completed", "expired", "error", "denied". */
const char *agw_login_status_name(agw_login_status s);

typedef struct {
    char id[AGW_CRED_LOGIN_ID_LEN + 1];
    char *provider;
    char *kind;           /* "kiro-social", "kiro-builder-id", "kiro-idc", "copilot", ... */
    agw_login_status status;
    char *public_json;    /* a JSON object an admin may see (user code, URLs, interval) */
    char *secret_json;    /* a JSON object sealed at rest (verifier, state, device code) */
    int interval;         /* seconds between polls of a device flow; 0 = not polled */
    int64_t next_poll_at; /* Unix seconds; a poll before it is not sent upstream */
    int64_t expires_at;   /* Unix seconds */
    int64_t created_at;
    char *error;          /* why it ended in AGW_LOGIN_ERROR, in our words; NULL otherwise */
} agw_cred_login;

void agw_cred_login_free(agw_cred_login *l);

/* Starts a session from l->provider, kind, public_json, secret_json,
 * interval and next_poll_at; sets l->id, created_at, expires_at (now +
 * AGW_CRED_LOGIN_TTL) and status pending. Pending sessions past their
 * expiry are marked expired first. AGW_EBUSY when the provider already has
 * a pending session (nothing written). */
AGW_WARN_UNUSED agw_err agw_cred_login_create(agw_cred_login *l, char *err, size_t errlen);

/* Reads session `id` (secret part opened). A pending session past its
 * expiry is marked and returned expired. AGW_ENOTFOUND when there is none
 * (or `id` is not an id). */
AGW_WARN_UNUSED agw_err agw_cred_login_get(const char *id, agw_cred_login *out, char *err,
                                           size_t errlen);

/* Takes the right to act on pending session `id` now: for a device flow,
 * the poll due at next_poll_at (which moves to now + `next_interval`, so
 * concurrent status requests send one poll); for a code exchange
 * (`next_interval` < 0), the one exchange (the session leaves "pending" for
 * good: a replayed code finds it taken). 1 when taken, 0 when not due, not
 * pending or already taken, -1 on a database failure. */
int agw_cred_login_claim(const char *id, int next_interval);

/* Ends or updates session l->id: its status, error (may be NULL), and,
 * when set (non-NULL, above 0), new public/secret parts, interval and
 * next_poll_at. */
AGW_WARN_UNUSED agw_err agw_cred_login_update(const agw_cred_login *l, char *err, size_t errlen);

#endif
