/* Unit tests for provider/credential and kiro_auth's parsers: records sealed
 * at rest and bound to their provider, one refresh per account however many
 * processes and threads race for it (due, rejected), the rotated refresh
 * token stored with the new access token, invalid_grant -> needs_login and
 * out of routing, a failed refresh leaving a still-valid token in use, login
 * sessions (one pending per provider, claims, expiry), and the imports of
 * kiro-auth-token.json and kiro-cli's database. The refresh goes over real
 * HTTP to a small server forked by the test, which counts the calls in
 * shared memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/crypto.h"
#include "net/upstream.h"
#include "provider/credential.h"
#include "provider/kiro_auth.h"
#include "state/store.h"

#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the auth server ---- */

enum { MODE_OK = 0, MODE_INVALID_GRANT, MODE_500 };

typedef struct {
    atomic_int refreshes;
    atomic_int mode;
    atomic_int delay_ms;
    atomic_int rotate;
    char last_refresh_token[128];
} server_state;

static server_state *srv;
static pid_t srv_pid;
static int srv_port;

static void handle(int c)
{
    char req[8192];
    size_t n = 0;
    char *body = NULL;
    while (n < sizeof req - 1) {
        ssize_t k = read(c, req + n, sizeof req - 1 - n);
        if (k <= 0)
            break;
        n += (size_t)k;
        req[n] = '\0';
        char *end = strstr(req, "\r\n\r\n");
        if (end) {
            char *cl = strcasestr(req, "Content-Length:");
            size_t want = cl ? (size_t)atoi(cl + 15) : 0;
            if (n >= (size_t)(end + 4 - req) + want) {
                body = end + 4;
                break;
            }
        }
    }
    char out[1024], doc[512];
    int status = 200;
    if (body && strncmp(req, "POST /refreshToken", 18) == 0) {
        int no = atomic_fetch_add(&srv->refreshes, 1) + 1;
        char *rt = strstr(body, "\"refreshToken\":\"");
        if (rt) {
            rt += 16;
            size_t l = strcspn(rt, "\"");
            if (l >= sizeof srv->last_refresh_token)
                l = sizeof srv->last_refresh_token - 1;
            memcpy(srv->last_refresh_token, rt, l);
            srv->last_refresh_token[l] = '\0';
        }
        if (atomic_load(&srv->delay_ms))
            usleep((useconds_t)atomic_load(&srv->delay_ms) * 1000);
        int mode = atomic_load(&srv->mode);
        if (mode == MODE_INVALID_GRANT) {
            status = 401;
            snprintf(doc, sizeof doc, "{\"error\":\"invalid_grant\",\"message\":\"no\"}");
        } else if (mode == MODE_500) {
            status = 500;
            snprintf(doc, sizeof doc, "{\"message\":\"down\"}");
        } else if (atomic_load(&srv->rotate)) {
            snprintf(doc, sizeof doc,
                     "{\"accessToken\":\"tok-%d\",\"refreshToken\":\"rt-%d\",\"expiresIn\":3600,"
                     "\"profileArn\":\"arn:aws:codewhisperer:eu-central-1:1:profile/P\"}",
                     no, no);
        } else {
            snprintf(doc, sizeof doc, "{\"accessToken\":\"tok-%d\",\"expiresIn\":3600}", no);
        }
    } else {
        status = 404;
        snprintf(doc, sizeof doc, "{}");
    }
    int len = snprintf(out, sizeof out,
                       "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                       "Connection: close\r\n\r\n%s",
                       status, strlen(doc), doc);
    (void)!write(c, out, (size_t)len);
    close(c);
}

static void server_start(void)
{
    srv = mmap(NULL, sizeof *srv, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(srv != MAP_FAILED);
    memset(srv, 0, sizeof *srv);
    atomic_store(&srv->rotate, 1);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s, 256), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
    srv_port = ntohs(a.sin_port);
    srv_pid = fork();
    assert_true(srv_pid >= 0);
    if (srv_pid == 0) {
        for (;;) {
            int c = accept(s, NULL, NULL);
            if (c >= 0)
                handle(c);
        }
    }
    close(s);
}

static void server_stop(void)
{
    kill(srv_pid, SIGKILL);
    waitpid(srv_pid, NULL, 0);
    munmap(srv, sizeof *srv);
}

/* ---- fixture ---- */

static char dir[64], db_path[128];
static agw_secret_key key;
static agw_provider_cfg prov;
static char auth_url[64];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/agw-cred-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(db_path, sizeof db_path, "%s/antigw.db", dir);
    if (agw_random_bytes(key.k, sizeof key.k) != AGW_OK)
        return -1;
    agw_cred_settings s = { db_path, &key, 0, 5000, 5000 };
    if (agw_cred_setup(&s) != AGW_OK)
        return -1;
    memset(&prov, 0, sizeof prov);
    prov.name = "kiro-a";
    prov.type = AGW_PROVIDER_KIRO;
    prov.base_url = "http://127.0.0.1:9";
    prov.enabled = 1;
    snprintf(auth_url, sizeof auth_url, "http://127.0.0.1:%d", srv_port);
    prov.settings[AGW_SET_KIRO_AUTH_URL] = auth_url;
    atomic_store(&srv->refreshes, 0);
    atomic_store(&srv->mode, MODE_OK);
    atomic_store(&srv->delay_ms, 0);
    atomic_store(&srv->rotate, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    agw_cred_teardown();
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* An account of `prov` with the given access token and expiry. */
static void store_account(const char *access, int64_t expires_at)
{
    agw_cred c;
    memset(&c, 0, sizeof c);
    c.provider = "kiro-a";
    c.method = "social";
    c.access_token = (char *)access;
    c.refresh_token = "rt-0";
    c.region = "us-east-1";
    c.expires_at = expires_at;
    char err[AGW_ERR_LEN];
    assert_int_equal(agw_cred_store(&c, err, sizeof err), AGW_OK);
}

static sqlite3 *raw_db(void)
{
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db_path, &h), SQLITE_OK);
    sqlite3_busy_timeout(h, 5000);
    return h;
}

static void exec_sql(const char *sql)
{
    sqlite3 *h = raw_db();
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
}

/* ---- records ---- */

static void test_sealed_and_bound(void **state)
{
    (void)state;
    store_account("secret-access-CANARY", agw_wall_s() + 3600);
    agw_cred c;
    char err[AGW_ERR_LEN];
    assert_int_equal(agw_cred_load("kiro-a", &c, err, sizeof err), AGW_OK);
    assert_string_equal(c.access_token, "secret-access-CANARY");
    assert_string_equal(c.refresh_token, "rt-0");
    assert_null(c.client_secret);
    assert_int_equal(c.version, 1);
    assert_int_equal(c.state, AGW_CRED_OK);
    agw_cred_free(&c);

    /* Nothing of a token in the file. */
    sqlite3 *h = raw_db();
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(h, "SELECT secret_enc FROM credentials", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const char *blob = sqlite3_column_blob(st, 0);
    int bl = sqlite3_column_bytes(st, 0);
    assert_null(memmem(blob, (size_t)bl, "CANARY", 6));
    assert_null(memmem(blob, (size_t)bl, "rt-0", 4));
    sqlite3_finalize(st);
    /* A blob copied onto another provider's row does not open there. */
    assert_int_equal(sqlite3_exec(h,
                                  "INSERT INTO credentials (provider, method, secret_enc,"
                                  " created_at, updated_at) SELECT 'kiro-b', method, secret_enc,"
                                  " 0, 0 FROM credentials WHERE provider = 'kiro-a'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(h);
    assert_int_equal(agw_cred_load("kiro-b", &c, err, sizeof err), AGW_EINVAL);
    assert_null(strstr(err, "CANARY"));
    assert_int_equal(agw_cred_load("nobody", &c, err, sizeof err), AGW_ENOTFOUND);

    /* A provider deleted or renamed in the admin API takes its account along. */
    exec_sql("INSERT INTO providers (name, type, base_url, created_at, updated_at)"
             " VALUES ('kiro-b', 'kiro', 'http://x', 0, 0)");
    exec_sql("UPDATE providers SET name = 'kiro-c' WHERE name = 'kiro-b'");
    assert_int_equal(agw_cred_load("kiro-b", &c, err, sizeof err), AGW_ENOTFOUND);
    exec_sql("INSERT INTO credentials (provider, method, secret_enc, created_at, updated_at)"
             " VALUES ('kiro-c', 'social', x'00', 0, 0)");
    exec_sql("INSERT INTO login_sessions (id, provider, kind, status, secret_enc, expires_at,"
             " created_at, updated_at) VALUES ('s', 'kiro-c', 'kiro-social', 'pending', x'00',"
             " 0, 0, 0)");
    exec_sql("DELETE FROM providers WHERE name = 'kiro-c'");
    h = raw_db();
    assert_int_equal(sqlite3_prepare_v2(h, "SELECT (SELECT count(*) FROM credentials WHERE"
                                           " provider = 'kiro-c') + (SELECT count(*) FROM"
                                           " login_sessions WHERE provider = 'kiro-c')",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
    sqlite3_close(h);

    /* A second store replaces the account and bumps the version. */
    store_account("other", agw_wall_s() + 3600);
    assert_int_equal(agw_cred_load("kiro-a", &c, err, sizeof err), AGW_OK);
    assert_int_equal(c.version, 2);
    agw_cred_free(&c);
}

static void test_fresh_token_is_not_refreshed(void **state)
{
    (void)state;
    store_account("tok-live", agw_wall_s() + 3600);
    agw_cred_token t;
    char err[AGW_ERR_LEN];
    assert_int_equal(agw_cred_access(&prov, &t, err, sizeof err), AGW_OK);
    assert_string_equal(t.access_token, "tok-live");
    assert_string_equal(t.extra, "{}");
    assert_int_equal(t.version, 1);
    agw_cred_token_free(&t);
    assert_int_equal(atomic_load(&srv->refreshes), 0);
    assert_int_equal(agw_cred_routable(&prov), 1);
    assert_string_equal(agw_cred_health(&prov), "ok");
}

/* ---- the race ---- */

#define RACE_PROCS 8
#define RACE_THREADS 6

typedef struct {
    int rejected; /* call agw_cred_rejected(version 1) first */
    int ok;
    char token[64];
} racer;

static void *race_thread(void *arg)
{
    racer *r = arg;
    char err[AGW_ERR_LEN];
    agw_cred_token t;
    if (r->rejected && agw_cred_rejected(&prov, 1, err, sizeof err) != AGW_OK)
        return NULL;
    if (agw_cred_access(&prov, &t, err, sizeof err) == AGW_OK) {
        snprintf(r->token, sizeof r->token, "%s", t.access_token);
        r->ok = 1;
        agw_cred_token_free(&t);
    }
    return NULL;
}

/* RACE_PROCS processes x RACE_THREADS threads all want the token at once. */
static void race(int rejected)
{
    atomic_store(&srv->delay_ms, 300); /* a slow refresh: everyone arrives during it */
    pid_t kids[RACE_PROCS];
    for (int p = 0; p < RACE_PROCS; p++) {
        kids[p] = fork();
        assert_true(kids[p] >= 0);
        if (kids[p] == 0) {
            pthread_t th[RACE_THREADS];
            racer rs[RACE_THREADS];
            memset(rs, 0, sizeof rs);
            for (int i = 0; i < RACE_THREADS; i++) {
                rs[i].rejected = rejected;
                pthread_create(&th[i], NULL, race_thread, &rs[i]);
            }
            int bad = 0;
            for (int i = 0; i < RACE_THREADS; i++) {
                pthread_join(th[i], NULL);
                bad += !rs[i].ok || strcmp(rs[i].token, "tok-1") != 0;
            }
            agw_cred_teardown();
            _exit(bad ? 1 : 0);
        }
    }
    for (int p = 0; p < RACE_PROCS; p++) {
        int ws;
        assert_int_equal(waitpid(kids[p], &ws, 0), kids[p]);
        assert_true(WIFEXITED(ws));
        assert_int_equal(WEXITSTATUS(ws), 0);
    }
    assert_int_equal(atomic_load(&srv->refreshes), 1);
    agw_cred c;
    char err[AGW_ERR_LEN];
    assert_int_equal(agw_cred_load("kiro-a", &c, err, sizeof err), AGW_OK);
    assert_int_equal(c.version, 2);
    assert_string_equal(c.access_token, "tok-1");
    /* The rotated refresh token went in with the access token. */
    assert_string_equal(c.refresh_token, "rt-1");
    assert_string_equal(srv->last_refresh_token, "rt-0");
    assert_string_equal(c.profile_arn, "arn:aws:codewhisperer:eu-central-1:1:profile/P");
    assert_string_equal(c.region, "us-east-1"); /* where it logged in */
    assert_true(c.expires_at > agw_wall_s() + 3000);
    assert_null(c.last_error);
    agw_cred_free(&c);
}

static void test_expired_token_refreshed_once_across_processes(void **state)
{
    (void)state;
    store_account("tok-old", agw_wall_s() - 10);
    race(0);
}

static void test_rejected_token_refreshed_once_across_processes(void **state)
{
    (void)state;
    store_account("tok-old", agw_wall_s() + 3600); /* looks fine, the upstream said no */
    race(1);
    /* A late report of the old version finds it already renewed. */
    char err[AGW_ERR_LEN];
    assert_int_equal(agw_cred_rejected(&prov, 1, err, sizeof err), AGW_OK);
    assert_int_equal(atomic_load(&srv->refreshes), 1);
}

static void test_refresh_token_kept_when_not_rotated(void **state)
{
    (void)state;
    atomic_store(&srv->rotate, 0);
    store_account("tok-old", agw_wall_s() - 10);
    agw_cred_token t;
    char err[AGW_ERR_LEN];
    assert_int_equal(agw_cred_access(&prov, &t, err, sizeof err), AGW_OK);
    assert_string_equal(t.access_token, "tok-1");
    agw_cred_token_free(&t);
    agw_cred c;
    assert_int_equal(agw_cred_load("kiro-a", &c, err, sizeof err), AGW_OK);
    assert_string_equal(c.refresh_token, "rt-0");
    agw_cred_free(&c);
}

static void test_invalid_grant_needs_login(void **state)
{
    (void)state;
    atomic_store(&srv->mode, MODE_INVALID_GRANT);
    store_account("tok-old", agw_wall_s() - 10);
    agw_cred_token t;
    char err[AGW_ERR_LEN];
    assert_int_equal(agw_cred_access(&prov, &t, err, sizeof err), AGW_ENOTFOUND);
    assert_non_null(strstr(err, "needs a new login"));
    assert_int_equal(atomic_load(&srv->refreshes), 1);
    /* Not tried again, out of routing, shown. */
    assert_int_equal(agw_cred_access(&prov, &t, err, sizeof err), AGW_ENOTFOUND);
    assert_int_equal(agw_cred_rejected(&prov, 1, err, sizeof err), AGW_ENOTFOUND);
    assert_int_equal(atomic_load(&srv->refreshes), 1);
    assert_int_equal(agw_cred_routable(&prov), 0);
    assert_string_equal(agw_cred_health(&prov), "needs_login");
    agw_cred_status st[4];
    assert_int_equal(agw_cred_statuses(st, 4), 1);
    assert_int_equal(st[0].state, AGW_CRED_NEEDS_LOGIN);
    assert_string_equal(st[0].provider, "kiro-a");
    agw_cred c;
    assert_int_equal(agw_cred_load("kiro-a", &c, err, sizeof err), AGW_OK);
    assert_non_null(c.last_error);
    assert_non_null(strstr(c.last_error, "invalid_grant"));
    assert_null(strstr(c.last_error, "rt-0"));
    agw_cred_free(&c);
    /* A new login brings it back. */
    store_account("tok-new", agw_wall_s() + 3600);
    assert_int_equal(agw_cred_routable(&prov), 1);
    assert_int_equal(agw_cred_access(&prov, &t, err, sizeof err), AGW_OK);
    assert_string_equal(t.access_token, "tok-new");
    agw_cred_token_free(&t);
}

static void test_failed_refresh_keeps_a_valid_token(void **state)
{
    (void)state;
    atomic_store(&srv->mode, MODE_500);
    store_account("tok-still-good", agw_wall_s() + 300); /* due (< 600 s), not expired */
    agw_cred_token t;
    char err[AGW_ERR_LEN];
    assert_int_equal(agw_cred_access(&prov, &t, err, sizeof err), AGW_OK);
    assert_string_equal(t.access_token, "tok-still-good");
    agw_cred_token_free(&t);
    agw_cred c;
    assert_int_equal(agw_cred_load("kiro-a", &c, err, sizeof err), AGW_OK);
    assert_int_equal(c.state, AGW_CRED_OK);
    assert_non_null(strstr(c.last_error, "HTTP 500"));
    agw_cred_free(&c);
    /* Expired: the failure is the caller's answer. */
    store_account("tok-dead", agw_wall_s() - 1);
    assert_int_equal(agw_cred_access(&prov, &t, err, sizeof err), AGW_EIO);
    assert_non_null(strstr(err, "refresh failed"));
    assert_int_equal(agw_cred_routable(&prov), 1); /* may work later */
}

static void test_forced_refresh(void **state)
{
    (void)state;
    store_account("tok-live", agw_wall_s() + 3600);
    char err[AGW_ERR_LEN];
    assert_int_equal(agw_cred_refresh_now(&prov, err, sizeof err), AGW_OK);
    assert_int_equal(atomic_load(&srv->refreshes), 1);
    agw_cred_token t;
    assert_int_equal(agw_cred_access(&prov, &t, err, sizeof err), AGW_OK);
    assert_string_equal(t.access_token, "tok-1");
    assert_int_equal(t.version, 2);
    agw_cred_token_free(&t);
    agw_provider_cfg other = prov;
    other.name = "kiro-none";
    assert_int_equal(agw_cred_refresh_now(&other, err, sizeof err), AGW_ENOTFOUND);
    assert_int_equal(agw_cred_routable(&other), 0);
    assert_string_equal(agw_cred_health(&other), "none");
    other.type = AGW_PROVIDER_OPENAI;
    assert_int_equal(agw_cred_routable(&other), 1);
    assert_null(agw_cred_health(&other));
}

static void *slow_refresh(void *arg)
{
    char err[AGW_ERR_LEN];
    *(agw_err *)arg = agw_cred_refresh_now(&prov, err, sizeof err);
    return NULL;
}

static void test_waiting_is_bounded(void **state)
{
    (void)state;
    agw_cred_settings s = { db_path, &key, 0, 300, 5000 }; /* wait at most 300 ms */
    assert_int_equal(agw_cred_setup(&s), AGW_OK);
    atomic_store(&srv->delay_ms, 1500);
    store_account("tok-old", agw_wall_s() - 10);
    pthread_t th;
    agw_err slow = AGW_EIO;
    assert_int_equal(pthread_create(&th, NULL, slow_refresh, &slow), 0);
    while (atomic_load(&srv->refreshes) == 0)
        usleep(10000);
    agw_cred_token t;
    char err[AGW_ERR_LEN];
    uint64_t t0 = agw_mono_ms();
    assert_int_equal(agw_cred_access(&prov, &t, err, sizeof err), AGW_ETIMEOUT);
    assert_true(agw_mono_ms() - t0 < 1200);
    assert_non_null(strstr(err, "has not finished"));
    pthread_join(th, NULL);
    assert_int_equal(slow, AGW_OK);
    /* The refresh it waited for is there now, and no second one was made. */
    assert_int_equal(agw_cred_access(&prov, &t, err, sizeof err), AGW_OK);
    assert_string_equal(t.access_token, "tok-1");
    agw_cred_token_free(&t);
    assert_int_equal(atomic_load(&srv->refreshes), 1);
}

static void test_no_key_no_tokens(void **state)
{
    (void)state;
    agw_cred_settings s = { db_path, NULL, 0, 0, 0 };
    assert_int_equal(agw_cred_setup(&s), AGW_OK);
    agw_cred c;
    memset(&c, 0, sizeof c);
    c.provider = "kiro-a";
    c.method = "social";
    c.access_token = "x";
    char err[AGW_ERR_LEN];
    assert_int_equal(agw_cred_store(&c, err, sizeof err), AGW_EINVAL);
    assert_non_null(strstr(err, "secrets.key_file"));
}

/* ---- login sessions ---- */

static void test_login_sessions(void **state)
{
    (void)state;
    char err[AGW_ERR_LEN];
    agw_cred_login l;
    memset(&l, 0, sizeof l);
    l.provider = xstrdup("kiro-a");
    l.kind = xstrdup("kiro-social");
    l.public_json = xstrdup("{\"method\":\"social\"}");
    l.secret_json = xstrdup("{\"state\":\"STATE-CANARY\"}");
    assert_int_equal(agw_cred_login_create(&l, err, sizeof err), AGW_OK);
    assert_int_equal(strlen(l.id), AGW_CRED_LOGIN_ID_LEN);
    /* A second one for the same provider is refused while this one is pending. */
    agw_cred_login l2;
    memset(&l2, 0, sizeof l2);
    l2.provider = xstrdup("kiro-a");
    l2.kind = xstrdup("kiro-social");
    assert_int_equal(agw_cred_login_create(&l2, err, sizeof err), AGW_EBUSY);
    assert_non_null(strstr(err, "already has a login in progress"));

    agw_cred_login got;
    assert_int_equal(agw_cred_login_get(l.id, &got, err, sizeof err), AGW_OK);
    assert_int_equal(got.status, AGW_LOGIN_PENDING);
    assert_string_equal(got.secret_json, "{\"state\":\"STATE-CANARY\"}");
    agw_cred_login_free(&got);
    assert_int_equal(agw_cred_login_get("0123456789abcdef0123456789abcdef", &got, err, sizeof err),
                     AGW_ENOTFOUND);
    assert_int_equal(agw_cred_login_get("../x", &got, err, sizeof err), AGW_ENOTFOUND);

    /* The code exchange is claimed once. */
    assert_int_equal(agw_cred_login_claim(l.id, -1), 1);
    assert_int_equal(agw_cred_login_claim(l.id, -1), 0);
    l.status = AGW_LOGIN_COMPLETED;
    free(l.public_json);
    agw_secret_free(l.secret_json);
    l.public_json = l.secret_json = NULL;
    assert_int_equal(agw_cred_login_update(&l, err, sizeof err), AGW_OK);
    /* Not pending any more: a new one may start. */
    assert_int_equal(agw_cred_login_create(&l2, err, sizeof err), AGW_OK);

    /* A device flow polls at most once per interval. */
    exec_sql("UPDATE login_sessions SET interval = 5, next_poll_at = 0 WHERE status='pending'");
    assert_int_equal(agw_cred_login_claim(l2.id, 5), 1);
    assert_int_equal(agw_cred_login_claim(l2.id, 5), 0);

    /* Expired after its time: reported so, and the provider is free again. */
    exec_sql("UPDATE login_sessions SET expires_at = 1 WHERE status='pending'");
    assert_int_equal(agw_cred_login_get(l2.id, &got, err, sizeof err), AGW_OK);
    assert_int_equal(got.status, AGW_LOGIN_EXPIRED);
    agw_cred_login_free(&got);
    assert_int_equal(agw_cred_login_claim(l2.id, -1), 0);
    agw_cred_login l3;
    memset(&l3, 0, sizeof l3);
    l3.provider = xstrdup("kiro-a");
    l3.kind = xstrdup("kiro-builder-id");
    assert_int_equal(agw_cred_login_create(&l3, err, sizeof err), AGW_OK);

    /* The secret part is sealed. */
    sqlite3 *h = raw_db();
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(h, "SELECT secret_enc FROM login_sessions", -1, &st, NULL),
                     SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW)
        assert_null(memmem(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0),
                           "CANARY", 6));
    sqlite3_finalize(st);
    sqlite3_close(h);
    agw_cred_login_free(&l);
    agw_cred_login_free(&l2);
    agw_cred_login_free(&l3);
}

/* ---- imports ---- */

static void test_import_token_file(void **state)
{
    (void)state;
    agw_cred c;
    char why[256];
    assert_int_equal(agw_kiro_import_token_file(
                         AGW_STR_LIT("{\"accessToken\":\"a1\",\"refreshToken\":\"r1\","
                                     "\"expiresAt\":\"2030-01-01T00:00:00.000Z\","
                                     "\"authMethod\":\"social\",\"provider\":\"Google\","
                                     "\"profileArn\":\"arn:aws:codewhisperer:us-west-2:9:profile/X\"}"),
                         (agw_str){ NULL, 0 }, &c, why, sizeof why),
                     AGW_OK);
    assert_string_equal(c.method, "social");
    assert_string_equal(c.access_token, "a1");
    assert_string_equal(c.refresh_token, "r1");
    assert_int_equal(c.expires_at, 1893456000);
    assert_string_equal(c.region, "us-west-2");
    agw_cred_free(&c);

    /* IdC needs its client registration. */
    agw_str idc = AGW_STR_LIT("{\"accessToken\":\"a2\",\"refreshToken\":\"r2\",\"expiresAt\":"
                              "\"2030-01-01T00:00:00Z\",\"authMethod\":\"IdC\",\"provider\":"
                              "\"BuilderId\",\"region\":\"us-east-1\",\"clientIdHash\":\"ab\"}");
    assert_int_equal(agw_kiro_import_token_file(idc, (agw_str){ NULL, 0 }, &c, why, sizeof why),
                     AGW_EINVAL);
    assert_non_null(strstr(why, "client_registration"));
    assert_int_equal(agw_kiro_import_token_file(idc, AGW_STR_LIT("{\"clientId\":\"c\"}"), &c, why,
                                                sizeof why),
                     AGW_EINVAL);
    assert_int_equal(agw_kiro_import_token_file(
                         idc, AGW_STR_LIT("{\"clientId\":\"c\",\"clientSecret\":\"s\"}"), &c, why,
                         sizeof why),
                     AGW_OK);
    assert_string_equal(c.method, "builder-id");
    assert_string_equal(c.client_secret, "s");
    agw_cred_free(&c);

    static const char *const bad[] = { "", "[]", "{\"accessToken\":\"a\"}", "{\"refreshToken\":5}",
                                       "{\"refreshToken\":\"r\",\"authMethod\":\"magic\"}",
                                       "{\"refreshToken\":\"r\"" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        assert_int_equal(agw_kiro_import_token_file(agw_str_c(bad[i]), (agw_str){ NULL, 0 }, &c,
                                                    why, sizeof why),
                         AGW_EINVAL);
        assert_true(why[0] != '\0');
    }
}

/* A kiro-cli database's bytes, built with SQLite itself. */
static unsigned char *cli_db(const char *token_key, const char *token, const char *reg,
                             sqlite3_int64 *len)
{
    sqlite3 *h;
    assert_int_equal(sqlite3_open(":memory:", &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h,
                                  "CREATE TABLE auth_kv (key TEXT PRIMARY KEY, value TEXT);"
                                  "CREATE TABLE state (key TEXT PRIMARY KEY, value BLOB);"
                                  "INSERT INTO state VALUES ('api.codewhisperer.profile',"
                                  " '{\"arn\":\"arn:aws:codewhisperer:eu-central-1:7:profile/Q\"}');",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(h, "INSERT INTO auth_kv VALUES (?1, ?2)", -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, token_key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, token, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    if (reg) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, "kirocli:odic:device-registration", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, reg, -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    }
    sqlite3_finalize(st);
    unsigned char *bytes = sqlite3_serialize(h, "main", len, 0);
    sqlite3_close(h);
    return bytes;
}

static void test_import_cli_db(void **state)
{
    (void)state;
    agw_cred c;
    char why[256];
    sqlite3_int64 n;
    unsigned char *b = cli_db("kirocli:odic:token",
                              "{\"access_token\":\"a3\",\"refresh_token\":\"r3\",\"expires_at\":"
                              "\"2030-01-01T00:00:00Z\",\"region\":\"eu-central-1\",\"start_url\":"
                              "\"https://corp.awsapps.com/start\"}",
                              "{\"client_id\":\"cid\",\"client_secret\":\"cs\"}", &n);
    assert_non_null(b);
    assert_int_equal(agw_kiro_import_cli_db((agw_str){ (char *)b, (size_t)n }, &c, why, sizeof why),
                     AGW_OK);
    assert_string_equal(c.method, "idc");
    assert_string_equal(c.refresh_token, "r3");
    assert_string_equal(c.client_id, "cid");
    assert_string_equal(c.profile_arn, "arn:aws:codewhisperer:eu-central-1:7:profile/Q");
    agw_cred_free(&c);
    /* The same without its registration, cut short, or not a database. */
    sqlite3_free(b);
    b = cli_db("kirocli:odic:token", "{\"refresh_token\":\"r3\"}", NULL, &n);
    assert_int_equal(agw_kiro_import_cli_db((agw_str){ (char *)b, (size_t)n }, &c, why, sizeof why),
                     AGW_EINVAL);
    assert_non_null(strstr(why, "device-registration"));
    assert_int_equal(agw_kiro_import_cli_db((agw_str){ (char *)b, (size_t)n / 2 }, &c, why,
                                            sizeof why),
                     AGW_EINVAL);
    sqlite3_free(b);
    b = cli_db("kirocli:social:token", "{\"access_token\":\"a4\",\"refresh_token\":\"r4\"}", NULL,
               &n);
    assert_int_equal(agw_kiro_import_cli_db((agw_str){ (char *)b, (size_t)n }, &c, why, sizeof why),
                     AGW_OK);
    assert_string_equal(c.method, "social");
    agw_cred_free(&c);
    sqlite3_free(b);
    b = cli_db("something:else", "{}", NULL, &n);
    assert_int_equal(agw_kiro_import_cli_db((agw_str){ (char *)b, (size_t)n }, &c, why, sizeof why),
                     AGW_EINVAL);
    assert_non_null(strstr(why, "holds no Kiro token"));
    sqlite3_free(b);
    char junk[1024];
    memset(junk, 'x', sizeof junk);
    assert_int_equal(agw_kiro_import_cli_db((agw_str){ junk, sizeof junk }, &c, why, sizeof why),
                     AGW_EINVAL);
}

static void test_callback_and_urls(void **state)
{
    (void)state;
    char *code, *st, *opt, why[256];
    assert_int_equal(agw_kiro_parse_callback("http://localhost:3128/oauth/callback?code=a%2Bb&"
                                             "state=s1&login_option=github",
                                             &code, &st, &opt, why, sizeof why),
                     AGW_OK);
    assert_string_equal(code, "a+b");
    assert_string_equal(st, "s1");
    assert_string_equal(opt, "github");
    free(code);
    free(st);
    free(opt);
    assert_int_equal(agw_kiro_parse_callback("http://localhost:3128/oauth/callback?state=s1",
                                             &code, &st, &opt, why, sizeof why),
                     AGW_EINVAL);
    assert_int_equal(agw_kiro_parse_callback("nothing", &code, &st, &opt, why, sizeof why),
                     AGW_EINVAL);
    assert_int_equal(agw_kiro_parse_callback("http://x/?error=access_denied&state=s", &code, &st,
                                             &opt, why, sizeof why),
                     AGW_EINVAL);

    agw_kiro_social_start s;
    assert_int_equal(agw_kiro_social_begin(&prov, &s), AGW_OK);
    assert_int_equal(strncmp(s.auth_url, "https://app.kiro.dev/signin?state=", 34), 0);
    assert_non_null(strstr(s.auth_url, "&code_challenge_method=S256&redirect_uri="
                                       "http%3A%2F%2Flocalhost%3A3128&redirect_from=KiroIDE"));
    assert_int_equal(strlen(s.verifier), 43);
    assert_non_null(strstr(s.auth_url, s.state));
    agw_kiro_social_start_free(&s);

    char *u = agw_kiro_url(&prov, AGW_SET_KIRO_OIDC_URL, "eu-west-1");
    assert_string_equal(u, "https://oidc.eu-west-1.amazonaws.com");
    free(u);
    u = agw_kiro_url(&prov, AGW_SET_KIRO_OIDC_URL, NULL);
    assert_string_equal(u, "https://oidc.us-east-1.amazonaws.com");
    free(u);
    char *r = agw_kiro_arn_region("arn:aws:codewhisperer:ap-south-1:1:profile/x");
    assert_string_equal(r, "ap-south-1");
    free(r);
    assert_null(agw_kiro_arn_region("arn:aws:s3:::b"));
    assert_null(agw_kiro_arn_region("arn:aws:codewhisperer:US_EAST:1:x"));
}

int main(void)
{
    if (agw_upstream_global_init() != AGW_OK)
        return 1;
    agw_log_set_level(AGW_LOG_ERROR);
    server_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sealed_and_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fresh_token_is_not_refreshed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_token_refreshed_once_across_processes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rejected_token_refreshed_once_across_processes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refresh_token_kept_when_not_rotated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_grant_needs_login, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_refresh_keeps_a_valid_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forced_refresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiting_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_key_no_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_login_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_token_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_cli_db, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callback_and_urls, setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    server_stop();
    return failed;
}
