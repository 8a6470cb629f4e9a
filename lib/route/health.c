#include "route/health.h"

#include "provider/credential.h"
#include "provider/provider.h"
#include "route/models.h"
#include "state/store.h"
#include "net/upstream.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

/* A probe's timeouts: a server that drips bytes cannot hold the pool's only
 * prober for long. */
#define PROBE_CONNECT_MS 3000
#define PROBE_IDLE_MS 5000
/* The most one page of a model list may weigh, and the most pages read. */
#define PROBE_BODY_MAX (4u << 20)
#define PROBE_MAX_PAGES 32

struct agw_health {
    const agw_config *cfg;
    agw_catalog_holder *cat;
    agw_lb *lb;
    char *lock_path;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
};

/* A response body, kept up to PROBE_BODY_MAX: past that the rest is
 * dropped (the probe's verdict does not depend on it). */
typedef struct {
    agw_buf b;
    int over;
    uint64_t credential_version; /* of the token the page was asked with (credential.h) */
} page;

static int keep(void *ud, const char *p, size_t n)
{
    page *pg = ud;
    if (!pg->over && agw_buf_append(&pg->b, p, n) != AGW_OK)
        pg->over = 1;
    return 0;
}

/* GETs one page of `p`'s model list (the first when `after` is NULL) into
 * `pg`. -1 when the type has nothing to ask with, else 0 with *res set. */
static int get_page(agw_upstream *u, const agw_provider_cfg *p, const char *after,
                    uint64_t deadline_ms, page *pg, agw_upstream_result *res)
{
    agw_provider_call call;
    const agw_provider_ops *ops = agw_provider_ops_of(p->type);
    agw_err e = !ops ? AGW_EINVAL
                : ops->probe_op == AGW_OP_MODELS ? agw_provider_prepare_models(p, after, &call)
                                                 : agw_provider_prepare(p, ops->probe_op, NULL,
                                                                        &call);
    if (e)
        return -1;
    agw_buf_free(&pg->b);
    agw_buf_init(&pg->b, PROBE_BODY_MAX);
    pg->over = 0;
    uint64_t now_ms = agw_mono_ms();
    agw_upstream_req rq = {
        .url = call.url,
        .headers = (const char *const *)call.headers,
        .body = { NULL, 0 },
        .connect_timeout_ms = PROBE_CONNECT_MS,
        .idle_timeout_ms = PROBE_IDLE_MS,
        .total_timeout_ms = deadline_ms > now_ms ? (long)(deadline_ms - now_ms) : 1,
        .on_data = keep,
        .ud = pg,
    };
    agw_upstream_perform(u, &rq, res);
    pg->credential_version = call.credential_version;
    agw_provider_call_free(&call);
    return 0;
}

/* Reads the model list from the probe's answer `pg` and the pages after it:
 * 1 with `list` filled when every page was a readable 2xx list, 0 otherwise
 * (list emptied). */
static int read_list(agw_upstream *u, const agw_provider_cfg *p, uint64_t deadline_ms, page *pg,
                     long status, agw_provider_models *list)
{
    const agw_provider_ops *ops = agw_provider_ops_of(p->type);
    if (!ops->parse_models || ops->probe_op != AGW_OP_MODELS)
        return 0;
    for (int n = 0;; n++) {
        if (status < 200 || status > 299) {
            /* No list at this server (a 404, say): quietly the literal names. */
            agw_log_debug("health: provider %s: no model list (status %ld)", p->name, status);
            agw_provider_models_free(list);
            return 0;
        }
        if (pg->over || ops->parse_models(agw_buf_view(&pg->b), list) != AGW_OK)
            break;
        if (!list->next)
            return 1;
        agw_upstream_result res;
        if (n + 1 >= PROBE_MAX_PAGES || get_page(u, p, list->next, deadline_ms, pg, &res) != 0 ||
            res.outcome != AGW_UPSTREAM_DONE)
            break;
        status = res.status;
    }
    agw_log_warn("health: provider %s: its model list cannot be read; listing its literal "
                 "model names", p->name);
    agw_provider_models_free(list);
    return 0;
}

/* One probe of `p` with `u` (its type's probe operation, see health.h):
 * AGW_LB_REASON_NONE when it passes, and when the type has nothing to probe
 * with; else why it failed. A passing probe of the model list also reads
 * the list: *listed says whether `list` holds it. */
static agw_lb_reason probe(agw_upstream *u, const agw_provider_cfg *p, long timeout_ms,
                           agw_provider_models *list, int *listed)
{
    *listed = 0;
    uint64_t deadline_ms = agw_mono_ms() + (uint64_t)timeout_ms;
    page pg = { AGW_BUF_INIT(PROBE_BODY_MAX), 0, 0 };
    agw_upstream_result res;
    if (get_page(u, p, NULL, deadline_ms, &pg, &res) != 0) {
        agw_buf_free(&pg.b);
        return AGW_LB_REASON_NONE; /* nothing to probe with: not a reason to leave the rotation */
    }
    /* A token that ran out is renewed and asked with once more, as a call
     * would; only a renewed token refused again says the account is. */
    char why[256];
    if (res.outcome == AGW_UPSTREAM_DONE && res.status == 401 && pg.credential_version &&
        agw_cred_rejected(p, pg.credential_version, why, sizeof why) == AGW_OK &&
        get_page(u, p, NULL, deadline_ms, &pg, &res) != 0) {
        agw_buf_free(&pg.b);
        return AGW_LB_REASON_NONE;
    }
    agw_probe_verdict v = res.outcome == AGW_UPSTREAM_DONE
                              ? agw_provider_ops_of(p->type)->probe_verdict(res.status)
                              : AGW_PROBE_FAILED;
    if (v == AGW_PROBE_PASSED)
        *listed = read_list(u, p, deadline_ms, &pg, res.status, list);
    else
        agw_log_warn("health: provider %s failed its probe (%s%s%ld%s)", p->name,
                     res.detail[0] ? res.detail : "", res.detail[0] ? ", status " : "status ",
                     res.status, v == AGW_PROBE_AUTH_REJECTED ? ": its key is refused" : "");
    agw_buf_free(&pg.b);
    return v == AGW_PROBE_PASSED ? AGW_LB_REASON_NONE
           : v == AGW_PROBE_AUTH_REJECTED ? AGW_LB_REASON_AUTH_REJECTED
                                          : AGW_LB_REASON_PROBE_FAILED;
}

void agw_health_test(const agw_provider_cfg *p, long timeout_ms, agw_health_test_result *out)
{
    memset(out, 0, sizeof *out);
    out->why = AGW_LB_REASON_NONE;
    out->models = -1;
    agw_upstream *u = agw_upstream_new();
    uint64_t start_ms = agw_mono_ms(), deadline_ms = start_ms + (uint64_t)timeout_ms;
    page pg = { AGW_BUF_INIT(PROBE_BODY_MAX), 0, 0 };
    agw_upstream_result res;
    if (get_page(u, p, NULL, deadline_ms, &pg, &res) == 0) {
        out->probed = 1;
        out->latency_ms = agw_mono_ms() - start_ms;
        out->status = res.outcome == AGW_UPSTREAM_DONE ? res.status : 0;
        snprintf(out->detail, sizeof out->detail, "%s", res.detail);
        agw_probe_verdict v = res.outcome == AGW_UPSTREAM_DONE
                                  ? agw_provider_ops_of(p->type)->probe_verdict(res.status)
                                  : AGW_PROBE_FAILED;
        out->why = v == AGW_PROBE_PASSED         ? AGW_LB_REASON_NONE
                   : v == AGW_PROBE_AUTH_REJECTED ? AGW_LB_REASON_AUTH_REJECTED
                                                  : AGW_LB_REASON_PROBE_FAILED;
        agw_provider_models list = AGW_PROVIDER_MODELS_INIT;
        if (v == AGW_PROBE_PASSED && read_list(u, p, deadline_ms, &pg, res.status, &list)) {
            out->models = (long)list.n;
            agw_provider_models_free(&list);
        }
    }
    agw_buf_free(&pg.b);
    agw_upstream_free(u);
}

/* Frees the shared slots of providers no longer configured (lb.h), at
 * least one period after they left. */
static void reclaim(agw_health *h, const agw_config *cfg)
{
    agw_str *names = xcalloc(cfg->n_providers ? cfg->n_providers : 1, sizeof *names);
    for (size_t i = 0; i < cfg->n_providers; i++)
        names[i] = agw_str_c(cfg->providers[i].name);
    uint64_t grace = (uint64_t)h->cfg->defaults.health_check_seconds * 1000000000u;
    size_t n = agw_lb_reclaim(h->lb, names, cfg->n_providers, agw_shm_now_ns(), grace);
    if (n)
        agw_log_info("health: freed %zu shared slot%s of removed providers", n, n == 1 ? "" : "s");
    free(names);
    n = agw_lb_reap(h->lb);
    if (n)
        agw_log_warn("health: gave back what %zu dead process%s held in flight", n,
                     n == 1 ? "" : "es");
}

static void probe_all(agw_health *h, agw_store *store, agw_upstream *u)
{
    sqlite3 *db = agw_store_db(store);
    const agw_catalog *c = agw_catalog_acquire(h->cat, db);
    const agw_config *cfg = agw_catalog_config(c);
    for (size_t i = 0; i < cfg->n_providers; i++) {
        const agw_provider_cfg *p = &cfg->providers[i];
        if (!p->enabled || !agw_provider_callable(p))
            continue;
        agw_lb_slot *s = agw_lb_slot_of(h->lb, agw_str_c(p->name));
        agw_lb_reason was = agw_lb_unhealthy_reason(s);
        agw_provider_models list = AGW_PROVIDER_MODELS_INIT;
        int listed;
        agw_lb_reason why =
            probe(u, p, (long)cfg->defaults.health_check_timeout_seconds * 1000, &list, &listed);
        /* The list is stored before the verdict is published, so that whoever
         * sees the provider out (or back) also sees its list gone (or back). */
        if (agw_models_cache_put(db, p, listed ? &list : NULL, agw_wall_s()) != AGW_OK)
            agw_log_warn("health: provider %s: its model list was not stored", p->name);
        agw_lb_probe_result(s, why, agw_shm_now_ns());
        if (s && was != why)
            agw_log_info("health: provider %s is %s%s", p->name,
                         why == AGW_LB_REASON_NONE ? "healthy again" : "unhealthy: ",
                         why == AGW_LB_REASON_NONE ? "" : agw_lb_reason_name(why));
        agw_provider_models_free(&list);
    }
    if (agw_models_cache_prune(db, cfg) != AGW_OK)
        agw_log_warn("health: the model lists of removed providers were not forgotten");
    if (h->lb)
        reclaim(h, cfg);
    agw_catalog_release(h->cat, c);
}

/* Sleeps `ms` or until stopped; returns 1 when stopped. */
static int nap(agw_health *h, long ms)
{
    struct timespec ts;
    agw_mono_deadline(&ts, (unsigned)ms);
    pthread_mutex_lock(&h->mu);
    while (!h->stop && pthread_cond_timedwait(&h->cv, &h->mu, &ts) != ETIMEDOUT)
        ;
    int stop = h->stop;
    pthread_mutex_unlock(&h->mu);
    return stop;
}

static void *run(void *arg)
{
    agw_health *h = arg;
    pthread_setname_np(pthread_self(), "agw-prober"); /* as top -H and perf show it */
    char err[AGW_ERR_LEN];
    agw_store *store = NULL;
    agw_upstream *u = agw_upstream_new();
    int fd = open(h->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        agw_log_error("health: %s: %s: no probes from this process", h->lock_path,
                      strerror(errno));
    else if (agw_store_open(h->cfg->database.path, &store, err, sizeof err) != AGW_OK)
        agw_log_error("health: database: %s: no probes from this process", err);
    else
        /* A verdict waits for its list's write (probe_all); while the pool's
         * writers hold the database, it waits a quarter second at most, and
         * the list is written again at the next probe. */
        sqlite3_busy_timeout(agw_store_db(store), 250);
    int leader = 0;
    long period_ms = (long)h->cfg->defaults.health_check_seconds * 1000L;
    while (fd >= 0 && store) {
        if (!leader && flock(fd, LOCK_EX | LOCK_NB) == 0) {
            leader = 1;
            agw_log_info("health: this process probes the providers every %d s",
                         h->cfg->defaults.health_check_seconds);
        }
        if (leader)
            probe_all(h, store, u);
        if (nap(h, period_ms))
            break;
    }
    if (store)
        agw_store_close(store);
    if (fd >= 0)
        close(fd); /* releases the lock */
    agw_upstream_free(u);
    return NULL;
}

agw_err agw_health_start(const agw_config *cfg, agw_catalog_holder *cat, agw_lb *lb,
                         agw_health **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg->defaults.health_check_enabled)
        return AGW_OK;
    agw_health *h = xcalloc(1, sizeof *h);
    h->cfg = cfg;
    h->cat = cat;
    h->lb = lb;
    size_t n = strlen(cfg->database.path) + sizeof ".health.lock";
    h->lock_path = xmalloc(n);
    snprintf(h->lock_path, n, "%s.health.lock", cfg->database.path);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&h->mu, NULL);
    /* The thread starts with every signal blocked (fcgi_server.h). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&h->thread, NULL, run, h);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        snprintf(err, errlen, "health prober thread: %s", strerror(rc));
        pthread_cond_destroy(&h->cv);
        pthread_mutex_destroy(&h->mu);
        free(h->lock_path);
        free(h);
        return AGW_EIO;
    }
    *out = h;
    return AGW_OK;
}

void agw_health_stop(agw_health *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->stop = 1;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->thread, NULL);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h->lock_path);
    free(h);
}
