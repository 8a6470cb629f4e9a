/* testsrv: a small HTTP/1.1 server for unit tests, run in threads of the test
 * process on 127.0.0.1 (an ephemeral port), that answers with whatever the
 * test's handler writes.
 *
 * How it works: an acceptor thread and one thread per connection (at most
 * TESTSRV_MAX_CONNS over the server's life), each reading requests in order
 * (keep-alive) and passing each to the handler. Every blocking wait also
 * watches a wake pipe, so testsrv_stop() never hangs on a client that keeps
 * a connection open.
 *
 * Lockstep instead of sleeping: `progress` (and `heads`) are counters that
 * the test's client-side callbacks bump (testsrv_bump, testsrv_bump_heads)
 * as they see data; a handler waits for them (testsrv_wait_progress,
 * testsrv_wait_field_or_close) before it sends the next piece.
 *
 * Threads and locking: the handler runs on a connection thread. Every int
 * field of struct testsrv that a handler or the test reads while the server
 * runs must be read with testsrv_get() (or under `mu`) and written under `mu`
 * (the functions below do). `port` is fixed once testsrv_start() returned.
 * `last` may be read directly only once no request is in flight (after the
 * client call that made it returned).
 *
 * Ownership: the caller owns the struct testsrv (usually in its fixture);
 * testsrv_start() initialises it and testsrv_stop() releases everything it
 * holds (threads, sockets, `last`). A testsrv_req passed to a handler belongs
 * to the server and is valid only during that call. */
#ifndef AGW_TESTS_TESTSRV_H
#define AGW_TESTS_TESTSRV_H

#include <pthread.h>
#include <stddef.h>

#define TESTSRV_MAX_CONNS 32
/* How long a lockstep wait lasts before it gives up. */
#define TESTSRV_WAIT_MS 10000

/* What a handler returns: keep the connection for the next request, close
 * it, or it was already closed by the handler (testsrv_close_with_reset). */
enum { TESTSRV_KEEP = 1, TESTSRV_CLOSE = 0, TESTSRV_CLOSED = -1 };

typedef struct {
    char method[16];
    char path[512];
    char *head;          /* request line and headers, NUL-terminated */
    unsigned char *body; /* body_len bytes (+ a NUL) */
    size_t body_len;
} testsrv_req;

typedef struct testsrv testsrv;

/* Answers one request by writing to fd (with testsrv_send_* or anything
 * else); returns TESTSRV_KEEP, TESTSRV_CLOSE or TESTSRV_CLOSED. Runs on a
 * connection thread, possibly in parallel with other connections. */
typedef int (*testsrv_handler)(testsrv *s, int fd, const testsrv_req *rq);

struct testsrv {
    int lfd, port, wake[2];
    pthread_t acceptor;
    pthread_t conns[TESTSRV_MAX_CONNS];
    int n_conns;
    testsrv_handler handler;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast on every counter change and on stop */
    int stopping;
    int accepts, requests; /* connections accepted, requests read */
    int progress;          /* bumped by the test's client (testsrv_bump) */
    int heads;             /* bumped by the test's client (testsrv_bump_heads) */
    int peer_gone;         /* a handler saw the client close or reset its connection */
    testsrv_req last;      /* a copy of the last request, stored before it is answered */
};

/* Zeroes *s, listens on 127.0.0.1 at an ephemeral port (then in s->port) and
 * starts serving with h. 0 on success, -1 on failure. */
int testsrv_start(testsrv *s, testsrv_handler h);
/* Wakes every wait, joins every thread and frees what the server holds.
 * Connections still open are closed from the server's side. */
void testsrv_stop(testsrv *s);

/* Reads *field (a member of *s) under the lock. */
int testsrv_get(testsrv *s, const int *field);
/* progress++ / heads++, waking the waiting handlers. */
void testsrv_bump(testsrv *s);
void testsrv_bump_heads(testsrv *s);
/* Sets peer_gone. */
void testsrv_set_peer_gone(testsrv *s);

/* Waits until progress >= n (the client saw that much); 1 if so, 0 on
 * timeout (TESTSRV_WAIT_MS) or stop. */
int testsrv_wait_progress(testsrv *s, int n);
/* Waits until *field (a member of *s) >= n, polling fd so a client that
 * closed it ends the wait at once (then peer_gone is set). 1 reached, 0
 * otherwise (closed, timeout or stop). May consume bytes the client sent. */
int testsrv_wait_field_or_close(testsrv *s, int fd, const int *field, int n);
/* Blocks until the client closes fd (then peer_gone is set) or the server
 * stops. Discards what the client sends meanwhile. */
void testsrv_wait_peer_close(testsrv *s, int fd);

/* Writes all n bytes (no SIGPIPE); 0 or -1. */
int testsrv_send_all(int fd, const void *p, size_t n);
/* Writes a NUL-terminated string; 0 or -1. */
int testsrv_send_str(int fd, const char *str);
/* Writes data as one chunk of a chunked body; 0 or -1. */
int testsrv_send_chunk(int fd, const char *data);
/* Closes fd with a TCP RST instead of a FIN; returns TESTSRV_CLOSED, for a
 * handler to return. */
int testsrv_close_with_reset(int fd);

#endif
