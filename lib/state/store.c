#include "state/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct agw_store {
    sqlite3 *db;
};

/* Migration N brings the schema from version N-1 to N. Append only: a released
 * migration is never edited, since files in the field have already run it. */
static const char *const migrations[] = {
    /* 1: settings (dropped by 3), and one row per relayed request */
    "CREATE TABLE settings ("
    "  key TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL,"
    "  updated_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE usage ("
    "  id INTEGER PRIMARY KEY,"
    "  ts INTEGER NOT NULL,"
    "  key_id INTEGER,"
    "  provider TEXT NOT NULL,"
    "  model TEXT NOT NULL,"
    "  status INTEGER NOT NULL,"
    "  input_tokens INTEGER NOT NULL DEFAULT 0,"
    "  output_tokens INTEGER NOT NULL DEFAULT 0,"
    "  cache_read_tokens INTEGER NOT NULL DEFAULT 0,"
    "  cache_write_tokens INTEGER NOT NULL DEFAULT 0,"
    "  latency_ms INTEGER NOT NULL DEFAULT 0,"
    "  ttft_ms INTEGER,"
    "  streamed INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX usage_ts ON usage(ts);",

    /* 2: multi-tenancy: providers and client keys managed through
     * antigw-admin, its audit log, and usage rows that say when their token
     * counts are the gateway's estimate. AUTOINCREMENT keeps ids from ever
     * being reused: the shared-memory limiter keys its state by api_keys.id,
     * so a new key must never inherit a deleted key's window. */
    "CREATE TABLE providers ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL UNIQUE,"
    "  type TEXT NOT NULL CHECK (type IN ('openai','anthropic','kiro','copilot')),"
    "  base_url TEXT NOT NULL,"
    "  secret_enc BLOB,"          /* AES-256-GCM: nonce | ciphertext | tag, aad 'provider:'||name */
    "  secret_hint TEXT,"         /* 'sk-...abcd'; NULL when there is no secret */
    "  weight INTEGER NOT NULL DEFAULT 100,"
    "  enabled INTEGER NOT NULL DEFAULT 1,"
    "  models TEXT NOT NULL DEFAULT '[]',"   /* JSON array of names and globs */
    "  default_model TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE api_keys ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL UNIQUE,"
    "  key_hash BLOB NOT NULL UNIQUE CHECK (length(key_hash) = 32),"  /* SHA-256 of the key */
    "  key_prefix TEXT NOT NULL,"  /* the first characters, for display */
    "  enabled INTEGER NOT NULL DEFAULT 1,"
    "  allowed_models TEXT,"       /* JSON array, NULL = any */
    "  allowed_providers TEXT,"    /* JSON array, NULL = any */
    "  default_provider TEXT,"
    "  qpm_limit INTEGER NOT NULL DEFAULT 0 CHECK (qpm_limit >= 0),"
    "  tpm_limit INTEGER NOT NULL DEFAULT 0 CHECK (tpm_limit >= 0),"
    "  expires_at INTEGER,"        /* Unix seconds, NULL = never */
    "  metadata TEXT,"             /* JSON object, NULL = none */
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE audit_log ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  ts INTEGER NOT NULL,"
    "  action TEXT NOT NULL,"      /* create | update | delete */
    "  object_type TEXT NOT NULL," /* provider | key */
    "  object_id TEXT NOT NULL,"
    "  detail TEXT NOT NULL DEFAULT '{}'" /* JSON; never a secret */
    ");"
    "ALTER TABLE usage ADD COLUMN tokens_estimated INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX usage_key_ts ON usage(key_id, ts);",

    /* 3: settings (migration 1) never got a reader or a writer: antigw.cfg
     * holds the settings and the tables of migration 2 the managed state. */
    "DROP TABLE settings;",

    /* 4: the model lists the providers' own list endpoints answered, as the
     * pool's prober last fetched them (route/models.h): every process lists
     * them in GET /v1/models. base_url says where a list came from. */
    "CREATE TABLE provider_models ("
    "  provider TEXT NOT NULL,"
    "  base_url TEXT NOT NULL,"
    "  position INTEGER NOT NULL,"
    "  model TEXT NOT NULL,"
    "  fetched_at INTEGER NOT NULL,"  /* Unix seconds */
    "  PRIMARY KEY (provider, position)"
    ");",

    /* 5: each usage row keeps the sequence number of its record in the
     * usage ring (tenant/usage.h): the drainer inserts with OR IGNORE, so a
     * batch stored again after a crash adds nothing. NULL for rows from
     * before the ring. */
    "ALTER TABLE usage ADD COLUMN ring_seq INTEGER;"
    "CREATE UNIQUE INDEX usage_ring_seq ON usage(ring_seq) WHERE ring_seq IS NOT NULL;",
    /* 6: accounts that log in (Kiro, GitHub Copilot) and the login sessions
     * that create them (provider/credential.h). The three secrets of an
     * account are one AES-256-GCM blob, aad 'credential:'||provider; a
     * session's secrets one blob, aad 'login:'||id. version counts stored
     * tokens, so a process that saw a rejected token knows whether someone
     * has refreshed since. At most one session per provider is pending. */
    "CREATE TABLE credentials ("
    "  provider TEXT PRIMARY KEY,"
    "  method TEXT NOT NULL,"
    "  secret_enc BLOB NOT NULL,"   /* {access_token, refresh_token, client_secret} sealed */
    "  client_id TEXT,"
    "  region TEXT,"
    "  profile_arn TEXT,"
    "  extra TEXT NOT NULL DEFAULT '{}',"
    "  expires_at INTEGER NOT NULL DEFAULT 0,"  /* Unix seconds; 0 = unknown */
    "  state TEXT NOT NULL DEFAULT 'ok' CHECK (state IN ('ok','needs_login')),"
    "  version INTEGER NOT NULL DEFAULT 1,"
    "  last_refresh INTEGER NOT NULL DEFAULT 0,"
    "  last_error TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE login_sessions ("
    "  id TEXT PRIMARY KEY,"        /* 32 hex digits, 128 random bits */
    "  provider TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  status TEXT NOT NULL CHECK (status IN ('pending','completed','expired','error','denied')),"
    "  public TEXT NOT NULL DEFAULT '{}',"
    "  secret_enc BLOB NOT NULL,"
    "  interval INTEGER NOT NULL DEFAULT 0,"
    "  next_poll_at INTEGER NOT NULL DEFAULT 0,"  /* -1 once a code exchange took it */
    "  expires_at INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  error TEXT"
    ");"
    "CREATE UNIQUE INDEX login_sessions_one_pending ON login_sessions(provider)"
    "  WHERE status = 'pending';"
    /* A provider deleted or renamed through the admin API takes its account
     * and sessions with it, in the same transaction: a sealed token is bound
     * to the name it was stored under, and a new provider of that name must
     * not inherit it. */
    "CREATE TRIGGER providers_delete_account AFTER DELETE ON providers BEGIN"
    "  DELETE FROM credentials WHERE provider = OLD.name;"
    "  DELETE FROM login_sessions WHERE provider = OLD.name;"
    "END;"
    "CREATE TRIGGER providers_rename_account AFTER UPDATE OF name ON providers"
    "  WHEN OLD.name <> NEW.name BEGIN"
    "  DELETE FROM credentials WHERE provider = OLD.name;"
    "  DELETE FROM login_sessions WHERE provider = OLD.name;"
    "END;",

    /* 7: the credits a provider charged for a request (Kiro's metering);
     * NULL where the provider reports none. */
    "ALTER TABLE usage ADD COLUMN credits REAL;",
    /* 8: what happens to answers: a provider's settings (JSON, see
     * agw_config_answers_from_json; NULL = the type's defaults), a key's
     * continuation override (NULL = the provider's setting), and the
     * continuation rounds a usage row's answer took. */
    "ALTER TABLE providers ADD COLUMN answers TEXT;"
    "ALTER TABLE api_keys ADD COLUMN continuation INTEGER CHECK (continuation IN (0, 1));"
    "ALTER TABLE usage ADD COLUMN continuations INTEGER NOT NULL DEFAULT 0;",
};

#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

static int user_version(sqlite3 *db)
{
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    return v;
}

static agw_err exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        if (err)
            snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return AGW_EIO;
    }
    return AGW_OK;
}

static agw_err migrate(sqlite3 *db, char *err, size_t errlen)
{
    if (user_version(db) == N_MIGRATIONS)
        return AGW_OK; /* the common case, without taking the write lock */
    agw_err e = exec(db, "BEGIN IMMEDIATE", err, errlen);
    if (e)
        return e;
    /* Re-read under the lock: another process may have migrated meanwhile. */
    int v = user_version(db);
    if (v > N_MIGRATIONS) {
        snprintf(err, errlen, "database schema version %d is newer than this program's %d", v,
                 N_MIGRATIONS);
        (void)exec(db, "ROLLBACK", NULL, 0);
        return AGW_EINVAL;
    }
    for (; v < N_MIGRATIONS; v++) {
        char bump[64];
        snprintf(bump, sizeof bump, "PRAGMA user_version=%d", v + 1);
        if ((e = exec(db, migrations[v], err, errlen)) || (e = exec(db, bump, err, errlen))) {
            (void)exec(db, "ROLLBACK", NULL, 0);
            return e;
        }
    }
    return exec(db, "COMMIT", err, errlen);
}

/* Switching a new file to WAL needs a moment alone with it, and SQLite
 * often answers SQLITE_BUSY at once instead of waiting out busy_timeout;
 * many processes starting together would then fail. Retry, for
 * STORE_WAL_WAIT_MS in all: an attempt can also wait in the busy handler (for
 * a lock another connection holds while it is stuck), so each one gets only
 * what is left of that time. A bound on attempts alone let 500 of them wait
 * 5 s each. */
#define STORE_WAL_WAIT_MS 5000
static agw_err enable_wal(sqlite3 *db, char *err, size_t errlen)
{
    uint64_t deadline = agw_mono_ms() + STORE_WAL_WAIT_MS;
    for (;;) {
        uint64_t now = agw_mono_ms();
        sqlite3_busy_timeout(db, now < deadline ? (int)(deadline - now) : 1);
        int rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            return AGW_OK;
        if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || agw_mono_ms() >= deadline) {
            snprintf(err, errlen, "cannot enable WAL: %s", sqlite3_errmsg(db));
            return AGW_EIO;
        }
        struct timespec pause = { 0, 10 * 1000 * 1000 };
        nanosleep(&pause, NULL);
    }
}

agw_err agw_store_open(const char *path, agw_store **out, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    *out = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                            SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return AGW_EIO;
    }
    agw_err e = enable_wal(db, err, errlen);
    sqlite3_busy_timeout(db, 5000);
    if (!e)
        e = exec(db,
                 "PRAGMA synchronous=NORMAL;"
                 "PRAGMA foreign_keys=ON;"
                 "PRAGMA journal_size_limit=67108864;",
                 err, errlen);
    if (!e)
        e = migrate(db, err, errlen);
    if (e) {
        sqlite3_close(db);
        return e;
    }
    agw_store *s = xcalloc(1, sizeof *s);
    s->db = db;
    *out = s;
    return AGW_OK;
}

void agw_store_close(agw_store *s)
{
    if (!s)
        return;
    sqlite3_close(s->db);
    free(s);
}

sqlite3 *agw_store_db(agw_store *s)
{
    return s->db;
}

char *agw_store_column_dup(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? xstrdup((const char *)t) : NULL;
}
