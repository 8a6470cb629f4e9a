/*
 * core: the primitives every other module builds on.
 *
 *  - agw_str: a borrowed view (pointer + length) into bytes someone else owns.
 *    Views never own memory and never assume a terminating NUL, so embedded NULs
 *    and slices of request bodies are safe.
 *  - agw_buf: an owning, growable byte buffer with a hard size cap fixed at init.
 *    Appending past the cap frees the buffer and returns AGW_ETOOBIG, so a caller
 *    only has to propagate the error. AGW_BUF_INIT(max) is a valid empty buffer
 *    that has allocated nothing. The buffer always keeps a NUL after the last byte
 *    once it has allocated, so data can be handed to APIs that want C strings,
 *    but `len` is the truth.
 *  - Memory: xmalloc & co. abort with file:line on out-of-memory. That is the
 *    project's one OOM policy; error returns are reserved for input-dependent
 *    failures (limits, protocol errors, I/O).
 *  - Logging to stderr with a level, time and thread-safe single write() per line.
 *  - Clocks in milliseconds / microseconds.
 */
#ifndef AGW_CORE_H
#define AGW_CORE_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__)
#define AGW_WARN_UNUSED __attribute__((warn_unused_result))
#define AGW_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define AGW_NORETURN __attribute__((noreturn))
#else
#define AGW_WARN_UNUSED
#define AGW_PRINTF(f, a)
#define AGW_NORETURN
#endif

/* Result codes returned by every fallible function in lib/. 0 is success. */
typedef enum {
    AGW_OK = 0,
    AGW_ETOOBIG,   /* a size limit was hit */
    AGW_EINVAL,    /* malformed input */
    AGW_ENOTFOUND, /* a lookup found nothing */
    AGW_EIO,       /* an operating-system or library call failed */
    AGW_EPEER,     /* the peer (client or upstream) went away or misbehaved */
    AGW_ETIMEOUT,  /* a deadline passed */
    AGW_EBUSY,     /* a shared allowance (agw_budget) is used up for now: try again later */
} agw_err;

/* A static string for a result code; never NULL. */
const char *agw_strerror(agw_err e);

/* ---- string views ---- */

typedef struct {
    const char *ptr;
    size_t len;
} agw_str;

/* A view of a string literal, without strlen at run time. */
#define AGW_STR_LIT(s) ((agw_str){ "" s, sizeof(s) - 1 })
/* Expands to `ptr, len` of a literal, for functions taking both. */
#define AGW_CONST_STR_LEN(s) ("" s), (sizeof(s) - 1)

/* A view of a C string; NULL gives the empty view. */
static inline agw_str agw_str_c(const char *s)
{
    return (agw_str){ s ? s : "", s ? strlen(s) : 0 };
}

static inline int agw_str_eq(agw_str a, agw_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* ASCII case-insensitive equality (header names). */
int agw_str_eq_nocase(agw_str a, agw_str b);

/* 1 when `s` starts with `prefix`. */
static inline int agw_str_starts(agw_str s, agw_str prefix)
{
    return s.len >= prefix.len && memcmp(s.ptr, prefix.ptr, prefix.len) == 0;
}

/* 1 when s holds a control byte: a C0 control or DEL, except '\t' when
 * `allow_tab` (HTTP field values allow it). Bytes >= 0x80 are not control
 * bytes here, so UTF-8 passes. Names, header values and anything that ends up
 * in a URL or a log line are checked with this. */
int agw_str_has_ctl(agw_str s, int allow_tab);
/* A NUL-terminated malloc'd copy of a view; the caller frees it. */
char *agw_str_dup(agw_str s);

/* The value (0-15) of one hexadecimal digit, either case; -1 for any other
 * byte. The one hex decoder: JSON \u escapes, %XX in query strings, key files. */
static inline int agw_hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* How many bytes at the start of p[0..n) a JSON string holds as they are:
 * printable ASCII other than '"' and '\\' (0x20-0x7F less those two). The one
 * such scan: the JSON validator and the JSON string escaper use it. Chat
 * texts are mostly long runs of these, so it looks at 8 bytes at a time. */
static inline size_t agw_json_plain_run(const unsigned char *p, size_t n)
{
    const uint64_t ones = UINT64_C(0x0101010101010101), highs = ones * 0x80;
    size_t i = 0;
    for (; n - i >= 8; i += 8) {
        uint64_t v, q, bs, hit;
        memcpy(&v, p + i, 8);
        q = v ^ (ones * '"');
        bs = v ^ (ones * '\\');
        /* Zero-byte tests: exact as a yes/no answer, and the lowest flagged
         * byte is a true one (a false one only follows a true one, as the
         * borrow runs upwards, and little-endian puts the first byte lowest). */
        hit = (((q - ones) & ~q) | ((bs - ones) & ~bs) | ((v - ones * 0x20) & ~v) | v) & highs;
        if (hit)
            return i + ((size_t)__builtin_ctzll(hit) >> 3);
    }
    for (; i < n; i++)
        if (p[i] < 0x20 || p[i] >= 0x80 || p[i] == '"' || p[i] == '\\')
            break;
    return i;
}

/* The length (1-4) of the well-formed UTF-8 sequence at p, of which `avail`
 * bytes (>= 1) are readable; 0 when it is not one: a stray continuation byte,
 * an overlong form, a UTF-16 surrogate, a code point past U+10FFFF or a
 * truncated sequence (RFC 3629's table of well-formed byte sequences). The
 * one UTF-8 check: the JSON validator and the JSON string escaper use it. */
static inline size_t agw_utf8_len(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xBF;
    size_t need;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong below U+0800 */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates U+D800-DFFF */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong below U+10000 */
        else if (c == 0xF4)
            hi = 0x8F; /* past U+10FFFF */
    } else {
        return 0;
    }
    if (avail < need || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return need;
}

/* ---- memory budget: bytes held at once, across threads ---- */

/* A count of bytes in use against a limit, shared by every thread that joins
 * it: a buffer whose size the client decides (a request body; later the
 * converted request and the folded answer) takes its bytes before it grows and
 * gives them back when it is freed, so that many large requests at once get a clean
 * "try again" instead of taking the process down. Lock-free: one CAS per take.
 * The zero value is a valid budget without a limit. */
typedef struct {
    atomic_size_t used;  /* bytes taken and not given back */
    atomic_size_t limit; /* 0 = no limit */
} agw_budget;

/* What a client is told (503) when the process's budget cannot hold what its
 * request needs. */
#define AGW_BUDGET_BUSY_MESSAGE \
    "the gateway is holding too much request and answer data right now " \
    "(server.max_memory_bytes): retry shortly"

/* The process's budget (server.max_memory_bytes); unlimited until set. */
agw_budget *agw_budget_process(void);
void agw_budget_set_limit(agw_budget *b, size_t limit);
/* Takes n bytes: AGW_EBUSY (nothing taken) when they would pass the limit. */
AGW_WARN_UNUSED agw_err agw_budget_take(agw_budget *b, size_t n);
/* Gives back n bytes taken before. */
void agw_budget_give(agw_budget *b, size_t n);
size_t agw_budget_used(const agw_budget *b);

/* ---- owning buffer ---- */

typedef struct {
    char *data;  /* NULL until the first append */
    size_t len;  /* bytes in use */
    size_t cap;  /* bytes allocated (excluding nothing: data[len] is always NUL) */
    size_t max;  /* hard cap on len; appends beyond it fail with AGW_ETOOBIG */
    agw_budget *budget; /* NULL, or the allowance `cap` is taken from: growth past
                           it fails with AGW_EBUSY, freeing gives `cap` back */
} agw_buf;

#define AGW_BUF_INIT(maxbytes) { NULL, 0, 0, (maxbytes), NULL }

/* Named caps, one per use, so every limit in the project lives here. */
#define AGW_LIMIT_SSE_EVENT      (4u << 20)  /* one SSE event from an upstream */
#define AGW_LIMIT_ERROR_BODY     (64u << 10) /* an upstream error body we relay */
#define AGW_LIMIT_UPSTREAM_BODY  (64u << 20) /* a non-streamed upstream body */
#define AGW_LIMIT_HEADER_LINE    (16u << 10) /* one response header line */
#define AGW_LIMIT_SMALL          (1u << 20)  /* small JSON documents we build */

static inline void agw_buf_init(agw_buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
    b->budget = NULL;
}

/* Makes room for `extra` more bytes in one allocation of just that size, for a
 * size known in advance (no doubling past it). Fails like agw_buf_append. */
AGW_WARN_UNUSED agw_err agw_buf_reserve(agw_buf *b, size_t extra);

/* Appends n bytes. On AGW_ETOOBIG (past max) or AGW_EBUSY (its budget has no
 * room to grow) the buffer is freed (and stays usable, empty). */
AGW_WARN_UNUSED agw_err agw_buf_append(agw_buf *b, const void *p, size_t n);
AGW_WARN_UNUSED agw_err agw_buf_append_str(agw_buf *b, agw_str s);
AGW_WARN_UNUSED agw_err agw_buf_appendf(agw_buf *b, const char *fmt, ...) AGW_PRINTF(2, 3);
/* Appends v in decimal: what appendf's "%lld" makes, without printf's cost. */
AGW_WARN_UNUSED agw_err agw_buf_append_i64(agw_buf *b, int64_t v);
/* Appends `s` as the inside of a JSON string (no quotes), escaping as JSON needs.
 * Invalid UTF-8 bytes are replaced with U+FFFD so the output is always valid JSON. */
AGW_WARN_UNUSED agw_err agw_buf_append_json_escaped(agw_buf *b, agw_str s);
/* Drops the first n bytes (n <= len), keeping the allocation. */
void agw_buf_consume(agw_buf *b, size_t n);
/* Empties the buffer, keeping the allocation. */
static inline void agw_buf_reset(agw_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}
/* Frees the allocation; the buffer stays usable with the same max. */
void agw_buf_free(agw_buf *b);
/* Hands the allocation (NUL-terminated; may be NULL when empty) to the caller
 * and resets the buffer to empty. */
char *agw_buf_detach(agw_buf *b, size_t *len);
static inline agw_str agw_buf_view(const agw_buf *b)
{
    return (agw_str){ b->data ? b->data : "", b->len };
}

/* ---- arena: request-scoped memory freed in one call ---- */

/* Allocations live until agw_arena_free(); nothing is freed one by one. Used
 * for everything a request decodes, so a handler frees a whole parse tree in
 * one call when the request ends instead of tracking each piece. The zero
 * value AGW_ARENA_INIT is an empty arena. Allocation aborts on OOM like xmalloc. */
typedef struct agw_arena_chunk agw_arena_chunk;
typedef struct {
    agw_arena_chunk *head;
} agw_arena;
#define AGW_ARENA_INIT { NULL }

/* n bytes aligned for any type (zeroed). */
void *agw_arena_alloc(agw_arena *a, size_t n);
/* An array of k elements of size n, zeroed; aborts if k*n overflows. */
void *agw_arena_array(agw_arena *a, size_t k, size_t n);
/* A copy of s in the arena (with a NUL after it, not counted). */
agw_str agw_arena_str(agw_arena *a, agw_str s);
void agw_arena_free(agw_arena *a);

/* ---- memory: abort on OOM ---- */

#define xmalloc(n) agw_xmalloc((n), __FILE__, __LINE__)
#define xcalloc(k, n) agw_xcalloc((k), (n), __FILE__, __LINE__)
#define xrealloc(p, n) agw_xrealloc((p), (n), __FILE__, __LINE__)
#define xstrdup(s) agw_xstrdup((s), __FILE__, __LINE__)
/* A new string: a followed by b. */
#define xstrcat(a, b) agw_xstrcat((a), (b), __FILE__, __LINE__)
void *agw_xmalloc(size_t n, const char *file, int line);
void *agw_xcalloc(size_t k, size_t n, const char *file, int line);
void *agw_xrealloc(void *p, size_t n, const char *file, int line);
char *agw_xstrdup(const char *s, const char *file, int line);
char *agw_xstrcat(const char *a, const char *b, const char *file, int line);
AGW_NORETURN void agw_fatal(const char *file, int line, const char *fmt, ...) AGW_PRINTF(3, 4);

/* ---- logging ---- */

typedef enum { AGW_LOG_ERROR = 0, AGW_LOG_WARN, AGW_LOG_INFO, AGW_LOG_DEBUG } agw_log_level;

void agw_log_set_level(agw_log_level lvl);
agw_log_level agw_log_get_level(void);
/* Parses "error|warn|info|debug"; returns -1 for anything else. */
int agw_log_level_parse(const char *name);
/* One line to stderr, prefixed with time, level and pid. Never pass secrets. */
void agw_log(agw_log_level lvl, const char *fmt, ...) AGW_PRINTF(2, 3);
/* Buffering, for a process that logs a line per request from many threads:
 * one write() per line made them queue on the log file. From
 * agw_log_buffer_start until agw_log_buffer_stop, info and debug lines go to
 * a process-wide buffer that a thread of its own ("agw-logger") writes out
 * 100 ms after the first line of a batch, or sooner when it is half full;
 * while lines keep coming it writes every 100 ms, woken by its timer alone,
 * and after 100 ms without a line it sleeps until the next one, so an idle
 * process never wakes it. Warnings and errors are
 * written at once, after every line logged before them, and so is a line
 * that finds the buffer full; agw_fatal writes out what is buffered before
 * its own line. What a process killed by a signal loses is the info and
 * debug lines of its last 100 ms or so. The order of lines is kept. A child
 * of fork() writes its lines at once. start returns AGW_EINVAL when
 * buffering is already on, AGW_EIO when the thread cannot be started; stop
 * writes out the rest and is a no-op when buffering is off. */
agw_err agw_log_buffer_start(void);
void agw_log_buffer_stop(void);
/* Writes out what is buffered now. */
void agw_log_flush(void);
#define agw_log_error(...) agw_log(AGW_LOG_ERROR, __VA_ARGS__)
#define agw_log_warn(...) agw_log(AGW_LOG_WARN, __VA_ARGS__)
#define agw_log_info(...) agw_log(AGW_LOG_INFO, __VA_ARGS__)
#define agw_log_debug(...) \
    do { if (agw_log_get_level() >= AGW_LOG_DEBUG) agw_log(AGW_LOG_DEBUG, __VA_ARGS__); } while (0)

/* ---- clocks ---- */

uint64_t agw_mono_ms(void);  /* monotonic milliseconds */
uint64_t agw_mono_us(void);  /* monotonic microseconds */
int64_t agw_wall_s(void);    /* Unix time, seconds */
struct timespec;
/* *ts = CLOCK_MONOTONIC now + ms: the deadline for pthread_cond_timedwait on
 * a condition variable whose clock is CLOCK_MONOTONIC. */
void agw_mono_deadline(struct timespec *ts, unsigned ms);

/* Unix seconds from "1717171717", "2024-05-31" or "2024-05-31T12:00:00Z"
 * (fractions of a second dropped; an offset like +02:00 instead of Z is
 * honoured). -1 when invalid. */
int64_t agw_time_parse(const char *s);

/* ---- files ---- */

/* flock(fd, op), taken again when a signal interrupts the wait: 0, or -1
 * with errno set (EWOULDBLOCK for a LOCK_NB that found the lock held). */
int agw_flock(int fd, int op);

/* ---- ids ---- */

/* Fills `out` with 2*nbytes lowercase hex chars of cryptographic randomness plus a
 * NUL (`out` must hold 2*nbytes+1). Returns AGW_EIO when the RNG fails. */
AGW_WARN_UNUSED agw_err agw_random_hex(char *out, size_t nbytes);

#endif
