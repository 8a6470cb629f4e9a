#include "route/health.h"

#include "provider/provider.h"
#include "state/store.h"
#include "net/upstream.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

/* A probe's timeouts: a server that drips bytes cannot hold the pool's only
 * prober for long. */
#define PROBE_CONNECT_MS 3000
#define PROBE_IDLE_MS 5000
#define PROBE_TOTAL_MS 10000

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

static int discard(void *ud, const char *p, size_t n)
{
    (void)ud, (void)p, (void)n;
    return 0;
}

/* One probe of `p` with `u` (its type's probe operation, see health.h): 1
 * when it passes, and when the type has nothing to probe with. */
static int probe(agw_upstream *u, const agw_provider_cfg *p)
{
    agw_provider_call call;
    memset(&call, 0, sizeof call);
    const agw_provider_ops *ops = agw_provider_ops_of(p->type);
    if (!ops || agw_provider_prepare(p, ops->probe_op, NULL, &call) != AGW_OK) {
        agw_provider_call_free(&call);
        return 1; /* nothing to probe with: not a reason to leave the rotation */
    }
    agw_upstream_req rq = {
        .url = call.url,
        .headers = (const char *const *)call.headers,
        .body = { NULL, 0 },
        .connect_timeout_ms = PROBE_CONNECT_MS,
        .idle_timeout_ms = PROBE_IDLE_MS,
        .total_timeout_ms = PROBE_TOTAL_MS,
        .on_data = discard,
    };
    agw_upstream_result res;
    agw_upstream_perform(u, &rq, &res);
    agw_provider_call_free(&call);
    int ok = res.outcome == AGW_UPSTREAM_DONE && ops->probe_passes(res.status);
    if (!ok)
        agw_log_warn("health: provider %s failed its probe (%s%s%ld)", p->name,
                     res.detail[0] ? res.detail : "", res.detail[0] ? ", status " : "status ",
                     res.status);
    return ok;
}

static void probe_all(agw_health *h, agw_store *store, agw_upstream *u)
{
    const agw_catalog *c = agw_catalog_acquire(h->cat, agw_store_db(store));
    const agw_config *cfg = agw_catalog_config(c);
    for (size_t i = 0; i < cfg->n_providers; i++) {
        const agw_provider_cfg *p = &cfg->providers[i];
        if (!p->enabled || !agw_provider_callable(p))
            continue;
        agw_lb_slot *s = agw_lb_slot_of(h->lb, agw_str_c(p->name));
        int was = s && !atomic_load(&s->unhealthy);
        int ok = probe(u, p);
        agw_lb_probe_result(s, ok, agw_shm_now_ns());
        if (s && was != ok)
            agw_log_info("health: provider %s is %s", p->name, ok ? "healthy again" : "unhealthy");
    }
    agw_catalog_release(h->cat, c);
}

/* Sleeps `ms` or until stopped; returns 1 when stopped. */
static int nap(agw_health *h, long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
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
    char err[AGW_ERR_LEN];
    agw_store *store = NULL;
    agw_upstream *u = agw_upstream_new();
    int fd = open(h->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        agw_log_error("health: %s: %s: no probes from this process", h->lock_path,
                      strerror(errno));
    else if (agw_store_open(h->cfg->database.path, &store, err, sizeof err) != AGW_OK)
        agw_log_error("health: database: %s: no probes from this process", err);
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
