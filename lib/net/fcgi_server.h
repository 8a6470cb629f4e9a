/*
 * fcgi_server: a FastCGI responder process: T worker threads accepting
 * FastCGI connections on fd 0 (the socket spawn-fcgi hands over), and a clean
 * stop. Both apps run on it: antigw-fcgi (the data plane, many threads) and
 * antigw-admin (the control plane, a few). One server per process: the stop
 * pipe and the live-worker count are process-wide.
 *
 * Accepting (leaders/followers): at most two workers of a process, the
 * leaders, wait for a connection, each in an epoll set of its own on {fd 0
 * with EPOLLEXCLUSIVE, a stop pipe}; the other idle workers wait on a
 * condition variable. A leader accepts (the listening socket is
 * non-blocking: a leader that loses the race, such as one whose set kept
 * the event of a connection that came while it was busy, gets EAGAIN and
 * waits again), then serves; the last
 * leader to go wakes one waiting worker to lead in its place, and a worker
 * that finishes while fewer than two lead becomes a leader itself. So a
 * connection wakes one thread of the pool and never sends a crowd of idle
 * threads onto a busy CPU's run queue to race for it: at 64 connections on
 * a saturated 2-CPU machine the median of three alternating runs rose
 * from 14.8k to 16.9k requests per second (README "Benchmarks"). Two
 * leaders rather than one: with one, a lone connection woke two threads
 * (the leader, then its successor), which cost about 40 µs at one
 * connection. A set per leader: two leaders in one level-triggered set both
 * woke for each connection (the set hands an event that is still ready to
 * its next waiter as well), 3.0 sleeps of the pool's threads per call at
 * one connection against 2.0 with a set each.
 *
 * Stop protocol (no signal handler ever runs in a worker): every async
 * signal is blocked in every thread; the main thread takes TERM, INT, HUP,
 * QUIT and USR1 (multiwatch's graceful signal) with sigwait. On stop the
 * pipe becomes readable: a leader sees it and ends every idle worker's
 * wait, busy workers finish their request, then the process exits 0. A
 * second signal, or shutdown_grace_s passing, exits at once.
 * SIGHUP is a reload, not a stop, when the app gives a `reload` hook: the
 * hook runs in the signal thread (never in a worker) while the workers go on
 * serving; it swaps in what new requests will use. Without the hook, HUP
 * stops like TERM. (multiwatch itself takes HUP as a stop: send it to the
 * pool's processes, not to multiwatch.)
 * No signal ever lands in a thread blocked in a response write (which libfcgi
 * would turn into a truncated stream).
 *
 * Scheduling: with `batch_scheduling` each worker thread puts itself under
 * SCHED_BATCH (Linux) before it serves: a worker woken by the web server or
 * by a provider's bytes does not preempt the task running on its CPU, it
 * runs when that task blocks or its slice ends. On a saturated machine the
 * web server, the single process every request passes through, then keeps
 * its CPU instead of being switched out for a worker at each wake-up, and
 * the machine serves more requests per second (README "Benchmarks"). The
 * cost is latency only while the CPUs are busy: a woken worker waits at most
 * a scheduler slice. The main thread and threads the app started before
 * agw_server_run keep the normal policy; threads a worker starts inherit its
 * policy. Where the policy cannot be set, the workers run with the normal one
 * and one warning is logged.
 */
#ifndef AGW_FCGI_SERVER_H
#define AGW_FCGI_SERVER_H

#include <fcgiapp.h>

typedef struct agw_server_worker agw_server_worker;

/* Serves one accepted request; the server finishes it afterwards. */
typedef void (*agw_server_request_fn)(void *app, agw_server_worker *w, FCGX_Request *req);
/* Per-thread set-up and tear-down of the app's worker state. */
typedef void *(*agw_server_worker_init_fn)(void *app, int index);
typedef void (*agw_server_worker_done_fn)(void *app, void *state);
/* SIGHUP: reload the configuration, in the signal thread. */
typedef void (*agw_server_reload_fn)(void *app);

typedef struct {
    int threads;
    int shutdown_grace_s;
    int batch_scheduling; /* 1: worker threads run under SCHED_BATCH (see above) */
    void *app;
    agw_server_request_fn handle;
    agw_server_worker_init_fn worker_init;
    agw_server_worker_done_fn worker_done;
    agw_server_reload_fn reload; /* NULL: SIGHUP stops the process */
} agw_server_opts;

/* The state worker_init returned for this worker. */
void *agw_server_worker_state(agw_server_worker *w);

/* 1 when fd 0 is a listening socket (started by spawn-fcgi or systemd). */
int agw_server_fd0_listening(void);

/* Runs until stopped; returns the process exit code. Call from the main
 * thread before any other thread exists, or only threads that block every
 * signal (the usage writer does): signals must reach the thread waiting in
 * sigwait, never a thread that would take them with libfcgi's handler. */
int agw_server_run(const agw_server_opts *o);

#endif
