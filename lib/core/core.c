#include "core/core.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

const char *agw_strerror(agw_err e)
{
    switch (e) {
    case AGW_OK: return "ok";
    case AGW_ETOOBIG: return "size limit exceeded";
    case AGW_EINVAL: return "invalid input";
    case AGW_ENOTFOUND: return "not found";
    case AGW_EIO: return "i/o error";
    case AGW_EPEER: return "peer failure";
    case AGW_ETIMEOUT: return "timed out";
    case AGW_EBUSY: return "memory budget exhausted";
    }
    return "unknown error";
}

int agw_str_eq_nocase(agw_str a, agw_str b)
{
    if (a.len != b.len)
        return 0;
    for (size_t i = 0; i < a.len; i++) {
        unsigned char x = (unsigned char)a.ptr[i], y = (unsigned char)b.ptr[i];
        if (x >= 'A' && x <= 'Z')
            x += 32;
        if (y >= 'A' && y <= 'Z')
            y += 32;
        if (x != y)
            return 0;
    }
    return 1;
}

int agw_str_has_ctl(agw_str s, int allow_tab)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if ((c < 0x20 && !(allow_tab && c == '\t')) || c == 0x7f)
            return 1;
    }
    return 0;
}

char *agw_str_dup(agw_str s)
{
    char *p = xmalloc(s.len + 1);
    if (s.len)
        memcpy(p, s.ptr, s.len);
    p[s.len] = '\0';
    return p;
}

/* ---- buffer ---- */

/* Room for `extra` more bytes; `exact` allocates just that (a size known in
 * advance), else the capacity doubles so appends stay amortised O(1). */
static agw_err buf_reserve(agw_buf *b, size_t extra, int exact)
{
    if (extra > b->max || b->len > b->max - extra) {
        agw_buf_free(b);
        return AGW_ETOOBIG;
    }
    size_t need = b->len + extra + 1; /* +1 keeps room for the trailing NUL */
    if (need <= b->cap)
        return AGW_OK;
    size_t cap = exact ? need : b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (b->budget && agw_budget_take(b->budget, cap - b->cap) != AGW_OK) {
        agw_buf_free(b);
        return AGW_EBUSY;
    }
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
    return AGW_OK;
}

agw_err agw_buf_reserve(agw_buf *b, size_t extra)
{
    return buf_reserve(b, extra, 1);
}

agw_err agw_buf_append(agw_buf *b, const void *p, size_t n)
{
    agw_err e = buf_reserve(b, n, 0);
    if (e)
        return e;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return AGW_OK;
}

agw_err agw_buf_append_str(agw_buf *b, agw_str s)
{
    return agw_buf_append(b, s.ptr, s.len);
}

agw_err agw_buf_append_i64(agw_buf *b, int64_t v)
{
    char digits[24];
    char *p = digits + sizeof digits;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    return agw_buf_append(b, p, (size_t)(digits + sizeof digits - p));
}

agw_err agw_buf_appendf(agw_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return AGW_EINVAL;
    if ((size_t)n < sizeof small)
        return agw_buf_append(b, small, (size_t)n);
    agw_err e = buf_reserve(b, (size_t)n, 0);
    if (e)
        return e;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return AGW_OK;
}

agw_err agw_buf_append_json_escaped(agw_buf *b, agw_str s)
{
    if (s.len == 0)
        return AGW_OK; /* also covers the NULL view of an absent value */
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s.ptr;
    size_t i = 0, run = 0;
    agw_err e;
    while (i < s.len) {
        i += agw_json_plain_run(p + i, s.len - i);
        if (i == s.len)
            break;
        unsigned char c = p[i];
        size_t seq = c >= 0x80 ? agw_utf8_len(p + i, s.len - i) : 0;
        if (seq > 1) {
            i += seq;
            continue;
        }
        if ((e = agw_buf_append(b, p + run, i - run)))
            return e;
        char esc[7];
        const char *out = esc;
        size_t outlen = 2;
        esc[0] = '\\';
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            if (c < 0x20) {
                esc[1] = 'u';
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                outlen = 6;
            } else {
                out = "\xEF\xBF\xBD"; /* invalid UTF-8 byte: U+FFFD */
                outlen = 3;
            }
        }
        if ((e = agw_buf_append(b, out, outlen)))
            return e;
        i++;
        run = i;
    }
    return agw_buf_append(b, p + run, i - run);
}

void agw_buf_consume(agw_buf *b, size_t n)
{
    if (n >= b->len) {
        agw_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

void agw_buf_free(agw_buf *b)
{
    if (b->budget)
        agw_budget_give(b->budget, b->cap);
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *agw_buf_detach(agw_buf *b, size_t *len)
{
    /* The caller owns the bytes from here, outside any budget. */
    if (b->budget)
        agw_budget_give(b->budget, b->cap);
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

/* ---- arena ---- */

struct agw_arena_chunk {
    agw_arena_chunk *next;
    size_t used, size;
    max_align_t data[]; /* flexible: the bytes handed out */
};

#define ARENA_CHUNK 16384u
/* Chunks of ARENA_CHUNK bytes that a thread's freed arenas leave for its
 * next ones. A converted call uses about five arenas at once; taking their
 * chunks from malloc and back costs a lock on a malloc arena each time, which
 * the pool's threads share. */
#define ARENA_SPARES 8u

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
/* A spare chunk's bytes stay poisoned until it is handed out again, so a use
 * after agw_arena_free is still caught. */
#define ARENA_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define ARENA_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define ARENA_POISON(p, n) ((void)(p), (void)(n))
#define ARENA_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

typedef struct {
    agw_arena_chunk *head;
    unsigned count;
    int registered; /* spares_key has a value in this thread */
} arena_spares;

static _Thread_local arena_spares spares;
static pthread_key_t spares_key;
static int spares_key_made;
static pthread_once_t spares_once = PTHREAD_ONCE_INIT;

/* At a thread's exit: its spares go back to malloc. */
static void spares_release(void *unused)
{
    (void)unused;
    agw_arena_chunk *c = spares.head;
    while (c) {
        agw_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    spares.head = NULL;
    spares.count = 0;
    spares.registered = 0;
}

static void spares_key_create(void)
{
    spares_key_made = pthread_key_create(&spares_key, spares_release) == 0;
}

/* Keeps c for the thread's next arena; 0 when it must be freed instead. */
static int spare_keep(agw_arena_chunk *c)
{
    if (c->size != ARENA_CHUNK || spares.count >= ARENA_SPARES)
        return 0;
    if (!spares.registered) {
        /* The key's value only makes spares_release run at the thread's exit. */
        pthread_once(&spares_once, spares_key_create);
        if (!spares_key_made || pthread_setspecific(spares_key, &spares) != 0)
            return 0;
        spares.registered = 1;
    }
    ARENA_POISON(c->data, c->size);
    c->next = spares.head;
    spares.head = c;
    spares.count++;
    return 1;
}

static agw_arena_chunk *chunk_new(size_t size)
{
    agw_arena_chunk *c;
    if (size == ARENA_CHUNK && (c = spares.head)) {
        spares.head = c->next;
        spares.count--;
        ARENA_UNPOISON(c->data, c->size);
    } else {
        c = xmalloc(sizeof *c + size);
        c->size = size;
    }
    c->used = 0;
    return c;
}

void *agw_arena_alloc(agw_arena *a, size_t n)
{
    const size_t align = sizeof(max_align_t);
    n = (n + align - 1) / align * align;
    if (n == 0)
        n = align;
    agw_arena_chunk *c = a->head;
    if (!c || c->size - c->used < n) {
        c = chunk_new(n > ARENA_CHUNK ? n : ARENA_CHUNK);
        c->next = a->head;
        a->head = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

void *agw_arena_array(agw_arena *a, size_t k, size_t n)
{
    if (n && k > SIZE_MAX / n)
        agw_fatal(__FILE__, __LINE__, "arena array overflow");
    return agw_arena_alloc(a, k * n);
}

agw_str agw_arena_str(agw_arena *a, agw_str s)
{
    char *p = agw_arena_alloc(a, s.len + 1);
    if (s.len)
        memcpy(p, s.ptr, s.len);
    return (agw_str){ p, s.len };
}

void agw_arena_free(agw_arena *a)
{
    agw_arena_chunk *c = a->head;
    while (c) {
        agw_arena_chunk *next = c->next;
        if (!spare_keep(c))
            free(c);
        c = next;
    }
    a->head = NULL;
}

/* ---- memory ---- */

static void log_drain_before_fatal(void);

void agw_fatal(const char *file, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_drain_before_fatal();
    fprintf(stderr, "antigw: fatal at %s:%d: %s\n", file, line, msg);
    abort();
}

void *agw_xmalloc(size_t n, const char *file, int line)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        agw_fatal(file, line, "out of memory (%lu bytes)", (unsigned long)n);
    return p;
}

void *agw_xcalloc(size_t k, size_t n, const char *file, int line)
{
    void *p = calloc(k ? k : 1, n ? n : 1);
    if (!p)
        agw_fatal(file, line, "out of memory (%lu x %lu bytes)", (unsigned long)k,
                  (unsigned long)n);
    return p;
}

void *agw_xrealloc(void *p, size_t n, const char *file, int line)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        agw_fatal(file, line, "out of memory (%lu bytes)", (unsigned long)n);
    return q;
}

char *agw_xstrdup(const char *s, const char *file, int line)
{
    size_t n = strlen(s) + 1;
    char *p = agw_xmalloc(n, file, line);
    memcpy(p, s, n);
    return p;
}

char *agw_xstrcat(const char *a, const char *b, const char *file, int line)
{
    size_t na = strlen(a), nb = strlen(b) + 1;
    char *p = agw_xmalloc(na + nb, file, line);
    memcpy(p, a, na);
    memcpy(p + na, b, nb);
    return p;
}

/* ---- logging ---- */

static volatile int log_level = AGW_LOG_INFO;

void agw_log_set_level(agw_log_level lvl) { log_level = (int)lvl; }
agw_log_level agw_log_get_level(void) { return (agw_log_level)log_level; }

int agw_log_level_parse(const char *name)
{
    static const char *names[] = { "error", "warn", "info", "debug" };
    for (int i = 0; i < 4; i++)
        if (name && strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

/* The pid in every log line, read once per process rather than with a
 * system call per line; a forked child reads its own. */
static _Atomic int log_pid;

static void log_pid_forget(void)
{
    log_pid = 0;
}

static void log_pid_at_fork(void)
{
    pthread_atfork(NULL, NULL, log_pid_forget);
}

static int log_pid_get(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    int pid = log_pid;
    if (!pid) {
        pthread_once(&once, log_pid_at_fork);
        log_pid = pid = (int)getpid();
    }
    return pid;
}

/* Buffered lines (agw_log_buffer_start). Every write to stderr happens
 * under log_write_lock, and each takes all that was buffered when it began,
 * so lines reach the file in the order they were logged. Lock order:
 * log_write_lock, then log_fill_lock. */
enum { LOG_BUFFER_CAP = 256 * 1024, LOG_FLUSH_MS = 100 };
static pthread_mutex_t log_write_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t log_fill_lock = PTHREAD_MUTEX_INITIALIZER; /* the four below */
static char log_buffers[2][LOG_BUFFER_CAP];
static char *log_fill = log_buffers[0], *log_spare = log_buffers[1];
static size_t log_fill_len;
static int log_flusher_stop;
/* The writer waits for a first line, without a deadline: only then does a
 * line have to wake it. */
static int log_flusher_idle;
/* Changed under log_fill_lock; log_emit also reads it without the lock to
 * take the unbuffered path at no cost when buffering is off. */
static _Atomic int log_buffering;
static pthread_cond_t log_flush_cond;
static pthread_t log_flusher;

static void log_write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* nowhere to report it */
        p += w;
        n -= (size_t)w;
    }
}

/* Writes what is buffered; the caller holds log_write_lock. */
static void log_drain(void)
{
    pthread_mutex_lock(&log_fill_lock);
    char *full = log_fill;
    size_t n = log_fill_len;
    log_fill = log_spare;
    log_spare = full;
    log_fill_len = 0;
    pthread_mutex_unlock(&log_fill_lock);
    log_write_all(full, n);
}

/* What was logged before a fatal error, if the lock can be had: a thread
 * that died holding it must not turn the error into a hang. */
static void log_drain_before_fatal(void)
{
    if (pthread_mutex_trylock(&log_write_lock) == 0) {
        log_drain();
        pthread_mutex_unlock(&log_write_lock);
    }
}

static void log_emit(agw_log_level lvl, const char *line, size_t len)
{
    if (!atomic_load_explicit(&log_buffering, memory_order_relaxed)) {
        /* One write() per line keeps lines from different threads whole. */
        log_write_all(line, len);
        return;
    }
    if (lvl >= AGW_LOG_INFO) {
        pthread_mutex_lock(&log_fill_lock);
        if (log_buffering && log_fill_len + len <= LOG_BUFFER_CAP) {
            memcpy(log_fill + log_fill_len, line, len);
            log_fill_len += len;
            /* Signalled under the lock: buffering cannot have been stopped
             * in between. The first line wakes an idle writer; half full,
             * the writer writes at once. */
            if ((log_flusher_idle && log_fill_len == len) ||
                (log_fill_len > LOG_BUFFER_CAP / 2 && log_fill_len - len <= LOG_BUFFER_CAP / 2))
                pthread_cond_signal(&log_flush_cond);
            pthread_mutex_unlock(&log_fill_lock);
            return;
        }
        pthread_mutex_unlock(&log_fill_lock);
    }
    /* A warning or an error, or a full buffer: what came before it first. */
    pthread_mutex_lock(&log_write_lock);
    log_drain();
    log_write_all(line, len);
    pthread_mutex_unlock(&log_write_lock);
}

void agw_log_flush(void)
{
    pthread_mutex_lock(&log_write_lock);
    log_drain();
    pthread_mutex_unlock(&log_write_lock);
}

static void *log_flusher_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "agw-logger"); /* as top -H and perf show it */
    pthread_mutex_lock(&log_fill_lock);
    while (!log_flusher_stop) {
        /* Nothing buffered for a whole interval: sleep until a line comes
         * (an idle process never wakes this thread). */
        log_flusher_idle = 1;
        while (!log_flusher_stop && log_fill_len == 0)
            pthread_cond_wait(&log_flush_cond, &log_fill_lock);
        log_flusher_idle = 0;
        /* Then write every LOG_FLUSH_MS while lines keep coming: only the
         * deadline wakes this thread, once per write (a signal from the
         * first line after each write made it two). */
        while (!log_flusher_stop) {
            struct timespec deadline;
            agw_mono_deadline(&deadline, LOG_FLUSH_MS);
            while (!log_flusher_stop && log_fill_len <= LOG_BUFFER_CAP / 2 &&
                   pthread_cond_timedwait(&log_flush_cond, &log_fill_lock, &deadline) != ETIMEDOUT)
                ;
            if (log_fill_len == 0)
                break;
            pthread_mutex_unlock(&log_fill_lock);
            agw_log_flush();
            pthread_mutex_lock(&log_fill_lock);
        }
    }
    pthread_mutex_unlock(&log_fill_lock);
    return NULL;
}

/* fork() keeps only the calling thread: the child writes its own lines at
 * once and leaves the parent's buffered ones to the parent. */
static void log_fork_prepare(void)
{
    pthread_mutex_lock(&log_write_lock);
    pthread_mutex_lock(&log_fill_lock);
}

static void log_fork_parent(void)
{
    pthread_mutex_unlock(&log_fill_lock);
    pthread_mutex_unlock(&log_write_lock);
}

static void log_fork_child(void)
{
    log_buffering = 0;
    log_fill_len = 0;
    log_fork_parent();
}

/* Once per process: the fork handlers, and the condition variable (on the
 * monotonic clock, as agw_mono_deadline wants), which is never destroyed so
 * that buffering can be started again after a stop. */
static void log_buffer_once(void)
{
    pthread_atfork(log_fork_prepare, log_fork_parent, log_fork_child);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&log_flush_cond, &attr);
    pthread_condattr_destroy(&attr);
}

agw_err agw_log_buffer_start(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, log_buffer_once);
    pthread_mutex_lock(&log_fill_lock);
    if (log_buffering) {
        pthread_mutex_unlock(&log_fill_lock);
        return AGW_EINVAL;
    }
    log_flusher_stop = 0;
    if (pthread_create(&log_flusher, NULL, log_flusher_main, NULL) != 0) {
        pthread_mutex_unlock(&log_fill_lock);
        return AGW_EIO;
    }
    log_buffering = 1;
    pthread_mutex_unlock(&log_fill_lock);
    return AGW_OK;
}

void agw_log_buffer_stop(void)
{
    pthread_mutex_lock(&log_fill_lock);
    if (!log_buffering) {
        pthread_mutex_unlock(&log_fill_lock);
        return;
    }
    log_buffering = 0;
    log_flusher_stop = 1;
    pthread_cond_signal(&log_flush_cond);
    pthread_mutex_unlock(&log_fill_lock);
    pthread_join(log_flusher, NULL);
    agw_log_flush();
}

void agw_log(agw_log_level lvl, const char *fmt, ...)
{
    static const char *tags[] = { "error", "warn", "info", "debug" };
    if ((int)lvl > log_level)
        return;
    /* The prefix up to the seconds changes once a second: formatting it
     * costs more than the message, so each thread keeps its last one. */
    static _Thread_local time_t prefix_sec = -1;
    static _Thread_local char prefix[20]; /* "YYYY-MM-DDTHH:MM:SS" */
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != prefix_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(prefix, sizeof prefix, "%04u-%02u-%02uT%02u:%02u:%02u",
                 (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)(tm.tm_mon + 1) % 100u,
                 (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u,
                 (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u);
        prefix_sec = ts.tv_sec;
    }
    static _Thread_local int pid_of_text;
    static _Thread_local char pid_text[32]; /* "Z antigw[<pid>] " */
    static _Thread_local size_t pid_text_len;
    int pid = log_pid_get();
    if (pid != pid_of_text) {
        pid_text_len = (size_t)snprintf(pid_text, sizeof pid_text, "Z antigw[%d] ", pid);
        pid_of_text = pid;
    }
    long ms = ts.tv_nsec / 1000000;
    size_t tag_len = strlen(tags[lvl]);
    memcpy(line, prefix, 19);
    line[19] = '.';
    line[20] = (char)('0' + ms / 100);
    line[21] = (char)('0' + ms / 10 % 10);
    line[22] = (char)('0' + ms % 10);
    memcpy(line + 23, pid_text, pid_text_len);
    memcpy(line + 23 + pid_text_len, tags[lvl], tag_len);
    int n = (int)(23 + pid_text_len + tag_len);
    line[n++] = ':';
    line[n++] = ' ';
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    log_emit(lvl, line, len);
}

/* ---- files ---- */

int agw_flock(int fd, int op)
{
    int rc;
    while ((rc = flock(fd, op)) != 0 && errno == EINTR)
        ;
    return rc;
}

/* ---- clocks ---- */

uint64_t agw_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t agw_mono_ms(void) { return agw_mono_us() / 1000u; }

void agw_mono_deadline(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int64_t agw_wall_s(void) { return (int64_t)time(NULL); }

/* ---- ids ---- */

agw_err agw_random_hex(char *out, size_t nbytes)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[64];
    size_t done = 0;
    while (done < nbytes) {
        size_t chunk = nbytes - done < sizeof raw ? nbytes - done : sizeof raw;
        ssize_t got = getrandom(raw, chunk, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return AGW_EIO;
        }
        for (ssize_t i = 0; i < got; i++) {
            out[2 * (done + (size_t)i)] = hex[raw[i] >> 4];
            out[2 * (done + (size_t)i) + 1] = hex[raw[i] & 15];
        }
        done += (size_t)got;
    }
    out[2 * nbytes] = '\0';
    return AGW_OK;
}

/* ---- memory budget ---- */

static agw_budget process_budget;

agw_budget *agw_budget_process(void)
{
    return &process_budget;
}

void agw_budget_set_limit(agw_budget *b, size_t limit)
{
    atomic_store(&b->limit, limit);
}

agw_err agw_budget_take(agw_budget *b, size_t n)
{
    size_t limit = atomic_load(&b->limit);
    size_t used = atomic_load(&b->used);
    do {
        if (limit && (n > limit || used > limit - n))
            return AGW_EBUSY;
    } while (!atomic_compare_exchange_weak(&b->used, &used, used + n));
    return AGW_OK;
}

void agw_budget_give(agw_budget *b, size_t n)
{
    atomic_fetch_sub(&b->used, n);
}

size_t agw_budget_used(const agw_budget *b)
{
    return atomic_load(&((agw_budget *)b)->used);
}

int64_t agw_time_parse(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 40)
        return -1;
    int digits = 1;
    for (size_t i = 0; i < n; i++)
        digits &= isdigit((unsigned char)s[i]) != 0;
    if (digits) {
        if (n > 12)
            return -1;
        return strtoll(s, NULL, 10);
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int consumed = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &consumed) != 3 ||
        consumed != 10)
        return -1;
    const char *p = s + 10;
    int offset = 0;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        consumed = 0;
        if (sscanf(p + 1, "%2d:%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 3 ||
            consumed != 8)
            return -1;
        p += 9;
        if (*p == '.') /* fractions of a second are dropped */
            for (p++; isdigit((unsigned char)*p); p++)
                ;
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int oh, om;
            consumed = 0;
            if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &consumed) != 2 || consumed != 5 || oh > 23 ||
                om > 59)
                return -1;
            offset = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
            p += 6;
        } else {
            return -1;
        }
    }
    if (*p)
        return -1;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_year < 1970)
        return -1;
    int mday = tm.tm_mday, mon = tm.tm_mon;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_mday != mday || tm.tm_mon != mon - 1)
        return -1; /* timegm normalised an impossible date like 02-30 */
    return (int64_t)t - offset;
}
