/* testsrv: the in-test HTTP/1.1 server shared by the unit tests (see
 * testsrv.h for the contract). */
#include "testsrv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    testsrv *s;
    int fd;
} testsrv_conn_arg;

static void req_free(testsrv_req *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* 1 readable, 0 timeout, -1 stop or error. */
static int wait_fd(testsrv *s, int fd, int timeout_ms)
{
    struct pollfd p[2] = { { fd, POLLIN, 0 }, { s->wake[0], POLLIN, 0 } };
    for (;;) {
        int r = poll(p, 2, timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r;
        return p[1].revents ? -1 : 1;
    }
}

static ssize_t srv_recv(testsrv *s, int fd, void *buf, size_t n)
{
    if (wait_fd(s, fd, 30000) != 1)
        return -1;
    return recv(fd, buf, n, 0);
}

int testsrv_send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int testsrv_send_str(int fd, const char *str)
{
    return testsrv_send_all(fd, str, strlen(str));
}

/* Reads one request; 0 at EOF, on error or on stop. */
static int read_request(testsrv *s, int fd, testsrv_req *rq)
{
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap);
    char *end = NULL;
    memset(rq, 0, sizeof *rq);
    for (;;) {
        if (len + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t r = srv_recv(s, fd, buf + len, cap - len - 1);
        if (r <= 0) {
            free(buf);
            return 0;
        }
        len += (size_t)r;
        buf[len] = '\0';
        if ((end = strstr(buf, "\r\n\r\n")))
            break;
    }
    size_t head_len = (size_t)(end + 4 - buf);
    rq->head = strndup(buf, head_len);
    if (sscanf(buf, "%15s %511s", rq->method, rq->path) != 2) {
        free(buf);
        req_free(rq);
        return 0;
    }
    size_t cl = 0;
    const char *h = strcasestr(rq->head, "\r\ncontent-length:");
    if (h)
        cl = strtoul(h + 17, NULL, 10);
    rq->body = malloc(cl + 1);
    size_t have = len - head_len < cl ? len - head_len : cl;
    memcpy(rq->body, buf + head_len, have);
    free(buf);
    while (have < cl) {
        ssize_t r = srv_recv(s, fd, rq->body + have, cl - have);
        if (r <= 0) {
            req_free(rq);
            return 0;
        }
        have += (size_t)r;
    }
    rq->body[cl] = '\0';
    rq->body_len = cl;
    return 1;
}

static void *conn_main(void *arg)
{
    testsrv_conn_arg a = *(testsrv_conn_arg *)arg;
    free(arg);
    for (;;) {
        testsrv_req rq;
        if (!read_request(a.s, a.fd, &rq))
            break;
        pthread_mutex_lock(&a.s->mu);
        a.s->requests++;
        req_free(&a.s->last);
        a.s->last = rq;
        a.s->last.head = strdup(rq.head);
        a.s->last.body = malloc(rq.body_len + 1);
        memcpy(a.s->last.body, rq.body, rq.body_len + 1);
        pthread_mutex_unlock(&a.s->mu);
        int keep = a.s->handler(a.s, a.fd, &rq);
        req_free(&rq);
        if (keep == TESTSRV_CLOSED) {
            a.fd = -1;
            break;
        }
        if (keep == TESTSRV_CLOSE)
            break;
    }
    if (a.fd >= 0)
        close(a.fd);
    return NULL;
}

static void *acceptor_main(void *arg)
{
    testsrv *s = arg;
    for (;;) {
        struct pollfd p[2] = { { s->lfd, POLLIN, 0 }, { s->wake[0], POLLIN, 0 } };
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            break;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pthread_mutex_lock(&s->mu);
        if (s->n_conns == TESTSRV_MAX_CONNS) {
            pthread_mutex_unlock(&s->mu);
            close(fd);
            continue;
        }
        s->accepts++;
        int idx = s->n_conns++;
        pthread_mutex_unlock(&s->mu);
        testsrv_conn_arg *ca = malloc(sizeof *ca);
        ca->s = s;
        ca->fd = fd;
        if (pthread_create(&s->conns[idx], NULL, conn_main, ca) != 0)
            abort();
    }
    return NULL;
}

int testsrv_start(testsrv *s, testsrv_handler h)
{
    memset(s, 0, sizeof *s);
    s->handler = h;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pipe(s->wake) != 0)
        return -1;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    socklen_t sl = sizeof sa;
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(s->lfd, 16) != 0 ||
        getsockname(s->lfd, (struct sockaddr *)&sa, &sl) != 0)
        return -1;
    s->port = ntohs(sa.sin_port);
    return pthread_create(&s->acceptor, NULL, acceptor_main, s) == 0 ? 0 : -1;
}

void testsrv_stop(testsrv *s)
{
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (write(s->wake[1], "x", 1) != 1)
        abort();
    pthread_join(s->acceptor, NULL);
    for (int i = 0; i < s->n_conns; i++)
        pthread_join(s->conns[i], NULL);
    close(s->lfd);
    close(s->wake[0]);
    close(s->wake[1]);
    req_free(&s->last);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
}

void testsrv_bump(testsrv *s)
{
    pthread_mutex_lock(&s->mu);
    s->progress++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void testsrv_bump_heads(testsrv *s)
{
    pthread_mutex_lock(&s->mu);
    s->heads++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void testsrv_set_peer_gone(testsrv *s)
{
    pthread_mutex_lock(&s->mu);
    s->peer_gone = 1;
    pthread_mutex_unlock(&s->mu);
}

int testsrv_wait_progress(testsrv *s, int n)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += TESTSRV_WAIT_MS / 1000;
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while (s->progress < n && !s->stopping && rc == 0)
        rc = pthread_cond_timedwait(&s->cv, &s->mu, &dl);
    int ok = s->progress >= n;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

int testsrv_get(testsrv *s, const int *field)
{
    pthread_mutex_lock(&s->mu);
    int v = *field;
    pthread_mutex_unlock(&s->mu);
    return v;
}

void testsrv_wait_peer_close(testsrv *s, int fd)
{
    char b[256];
    for (;;) {
        if (wait_fd(s, fd, 30000) != 1)
            return;
        ssize_t r = recv(fd, b, sizeof b, 0);
        if (r <= 0) {
            testsrv_set_peer_gone(s);
            return;
        }
    }
}

int testsrv_close_with_reset(int fd)
{
    struct linger lg = { 1, 0 };
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    return TESTSRV_CLOSED;
}

int testsrv_send_chunk(int fd, const char *data)
{
    char hdr[32];
    snprintf(hdr, sizeof hdr, "%lx\r\n", (unsigned long)strlen(data));
    return testsrv_send_str(fd, hdr) || testsrv_send_str(fd, data) || testsrv_send_str(fd, "\r\n") ? -1 : 0;
}

int testsrv_wait_field_or_close(testsrv *s, int fd, const int *field, int n)
{
    for (int waited = 0; waited < TESTSRV_WAIT_MS; waited += 20) {
        if (testsrv_get(s, field) >= n)
            return 1;
        int r = wait_fd(s, fd, 20);
        if (r < 0)
            return 0;
        if (r == 1) {
            char b[64];
            if (recv(fd, b, sizeof b, MSG_DONTWAIT) <= 0) {
                testsrv_set_peer_gone(s);
                return 0;
            }
        }
    }
    return 0;
}
