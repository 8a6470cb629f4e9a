#include "net/fcgi_server.h"
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/epoll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

struct agw_server_worker {
    pthread_t tid;
    int index;
    void *state;
    const agw_server_opts *opts;
};

static int stop_pipe[2] = { -1, -1 };
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t live_cond = PTHREAD_COND_INITIALIZER;
static int live_workers;  /* worker threads that have not returned yet */

void *agw_server_worker_state(agw_server_worker *w)
{
    return w->state;
}

int agw_server_fd0_listening(void)
{
    int on = 0;
    socklen_t len = sizeof on;
    return getsockopt(0, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on;
}

/* The calling worker's policy (the header's "Scheduling"). */
static void worker_policy(const agw_server_opts *o, const agw_server_worker *w)
{
    if (!o->batch_scheduling)
        return;
    int rc = ENOTSUP;
#ifdef SCHED_BATCH
    struct sched_param param = { .sched_priority = 0 };
    rc = pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
#endif
    if (rc != 0 && w->index == 0)
        agw_log_warn("worker threads keep the normal scheduling policy (SCHED_BATCH: %s)",
                     strerror(rc));
}

/* Leaders/followers: at most SERVER_WAITERS workers of the process (the
 * leaders) wait for a connection, each in an epoll set of its own (a
 * "seat"); the idle others wait for their turn on turn_cond. A seat per
 * leader: leaders sharing one set both woke for each connection, as a
 * level-triggered set that hands out an event still ready wakes its next
 * waiter too, and the second found nothing to accept. */
enum { SERVER_WAITERS = 2 };
static int seat_ep[SERVER_WAITERS] = { -1, -1 }; /* fd 0 (EPOLLEXCLUSIVE), the stop pipe */
static pthread_mutex_t turn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_cond = PTHREAD_COND_INITIALIZER;
static unsigned seats_taken; /* bit i: seat i has its leader; under turn_lock */
static int stopping;         /* the stop pipe was seen: no worker leads again */

/* Waits until the calling worker leads; its seat, or -1 once the server stops. */
static int take_turn(void)
{
    pthread_mutex_lock(&turn_lock);
    while (seats_taken == (1u << SERVER_WAITERS) - 1 && !stopping)
        pthread_cond_wait(&turn_cond, &turn_lock);
    int seat = -1;
    if (!stopping) {
        for (seat = 0; seats_taken & (1u << seat); seat++)
            ;
        seats_taken |= 1u << seat;
    }
    pthread_mutex_unlock(&turn_lock);
    return seat;
}

/* A leader leaves its seat: it took a connection (a waiting worker takes its
 * place when no leader is left) or, with `stop`, every worker's turns end. */
static void end_turn(int seat, int stop)
{
    pthread_mutex_lock(&turn_lock);
    seats_taken &= ~(1u << seat);
    if (stop) {
        stopping = 1;
        pthread_cond_broadcast(&turn_cond);
    } else if (seats_taken == 0) {
        pthread_cond_signal(&turn_cond);
    }
    pthread_mutex_unlock(&turn_lock);
}

/* The leader's wait in its seat's set: 1 with a connection accepted into
 * `req`, 0 on stop, -1 when the set fails. */
static int lead(agw_server_worker *w, int ep, FCGX_Request *req)
{
    for (;;) {
        struct epoll_event ready[2];
        int n = epoll_wait(ep, ready, 2, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            agw_log_error("worker %d: epoll_wait: %s", w->index, strerror(errno));
            return -1;
        }
        /* n > 0: no timeout was given. */
        for (int i = 0; i < n; i++)
            if (ready[i].data.fd == stop_pipe[0])
                return 0;
        int rc = FCGX_Accept_r(req);
        if (rc == -EAGAIN || rc == -EWOULDBLOCK || rc == -EINTR)
            continue; /* another leader took the connection */
        if (rc < 0) {
            /* EMFILE/ENFILE and friends: back off instead of ending the thread. */
            agw_log_error("worker %d: accept failed: %s", w->index, strerror(-rc));
            usleep(100000);
            continue;
        }
        return 1;
    }
}

static void *worker_main(void *arg)
{
    agw_server_worker *w = arg;
    const agw_server_opts *o = w->opts;
    FCGX_Request req;
    worker_policy(o, w);
    w->state = o->worker_init ? o->worker_init(o->app, w->index) : NULL;
    if (FCGX_InitRequest(&req, 0, 0) != 0)
        agw_fatal(__FILE__, __LINE__, "FCGX_InitRequest failed");
    int seat;
    while ((seat = take_turn()) >= 0) {
        int got = lead(w, seat_ep[seat], &req);
        end_turn(seat, got == 0);
        if (got <= 0)
            break;
        o->handle(o->app, w, &req);
        /* libfcgi ends a connection by shutting its side down and waiting
         * (up to 2 s) for the web server to close first, so that request
         * bytes still on their way cannot make the close a reset. Once the
         * request's body was read to its end nothing more comes: a plain
         * close saves the wait for the web server and three system calls
         * per request. */
        if (req.in && FCGX_HasSeenEOF(req.in) == EOF)
            (void)FCGX_Detach(&req);
        FCGX_Finish_r(&req);
    }
    FCGX_Free(&req, 1);
    if (o->worker_done)
        o->worker_done(o->app, w->state);
    pthread_mutex_lock(&live_lock);
    live_workers--;
    pthread_cond_signal(&live_cond);
    pthread_mutex_unlock(&live_lock);
    return NULL;
}

int agw_server_run(const agw_server_opts *o)
{
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGQUIT);
    sigaddset(&sigs, SIGUSR1);
    sigaddset(&sigs, SIGUSR2);
    /* Blocked before any thread exists, so every thread inherits the mask. */
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    /* A write to a departed client must fail with EPIPE, not kill the process. */
    signal(SIGPIPE, SIG_IGN);

    if (FCGX_Init() != 0) {
        agw_log_error("FCGX_Init failed");
        return 1;
    }
    int fl = fcntl(0, F_GETFL);
    if (fl < 0 || fcntl(0, F_SETFL, fl | O_NONBLOCK) < 0) {
        agw_log_error("cannot make the listening socket non-blocking: %s", strerror(errno));
        return 1;
    }
    if (pipe2(stop_pipe, O_CLOEXEC) != 0) {
        agw_log_error("pipe: %s", strerror(errno));
        return 1;
    }
    /* EPOLLEXCLUSIVE: a connection wakes one leader of one process, not
     * every seat of every process. */
    for (int i = 0; i < SERVER_WAITERS; i++) {
        struct epoll_event listen_ev = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = 0 };
        struct epoll_event stop_ev = { .events = EPOLLIN, .data.fd = stop_pipe[0] };
        seat_ep[i] = epoll_create1(EPOLL_CLOEXEC);
        if (seat_ep[i] < 0 || epoll_ctl(seat_ep[i], EPOLL_CTL_ADD, 0, &listen_ev) != 0 ||
            epoll_ctl(seat_ep[i], EPOLL_CTL_ADD, stop_pipe[0], &stop_ev) != 0) {
            agw_log_error("epoll set-up failed: %s", strerror(errno));
            return 1;
        }
    }

    agw_server_worker *workers = xcalloc((size_t)o->threads, sizeof *workers);
    live_workers = o->threads;
    for (int i = 0; i < o->threads; i++) {
        workers[i].index = i;
        workers[i].opts = o;
        if (pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]) != 0)
            agw_fatal(__FILE__, __LINE__, "pthread_create failed");
    }
    agw_log_info("serving with %d threads", o->threads);

    int sig = 0;
    for (;;) {
        if (sigwait(&sigs, &sig) != 0 || sig == SIGUSR2)
            continue;
        if (sig != SIGHUP || !o->reload)
            break;
        agw_log_info("SIGHUP: reloading the configuration");
        o->reload(o->app);
    }
    agw_log_info("signal %d: finishing requests in flight, then exiting", sig);
    if (write(stop_pipe[1], "x", 1) != 1)
        agw_fatal(__FILE__, __LINE__, "cannot signal workers to stop");

    /* Wait for the workers, but not forever: a second signal or the grace
     * period ends the process with whatever is still in flight. */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += o->shutdown_grace_s;
    sigset_t pending;
    int code = 0;
    pthread_mutex_lock(&live_lock);
    while (live_workers > 0) {
        struct timespec step;
        clock_gettime(CLOCK_REALTIME, &step);
        if (step.tv_sec >= deadline.tv_sec) {
            agw_log_warn("grace period over with %d worker threads still running (each busy "
                         "with at most one request): exiting",
                         live_workers);
            code = 0;
            break;
        }
        step.tv_nsec += 200000000L;
        if (step.tv_nsec >= 1000000000L) {
            step.tv_sec++;
            step.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&live_cond, &live_lock, &step);
        sigpending(&pending);
        for (int s = 1; s < 32; s++) {
            if (s != SIGUSR2 && !(s == SIGHUP && o->reload) && sigismember(&sigs, s) &&
                sigismember(&pending, s)) {
                agw_log_warn("second signal: exiting with %d worker threads still running",
                             live_workers);
                pthread_mutex_unlock(&live_lock);
                _exit(0);
            }
        }
    }
    int left = live_workers;
    pthread_mutex_unlock(&live_lock);
    if (left > 0)
        _exit(code);
    for (int i = 0; i < o->threads; i++)
        pthread_join(workers[i].tid, NULL);
    free(workers);
    for (int i = 0; i < SERVER_WAITERS; i++)
        close(seat_ep[i]);
    agw_log_info("stopped");
    return code;
}
