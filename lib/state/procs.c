#include "state/procs.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free in shared memory");
static_assert(sizeof(agw_procs_row) % 64 == 0, "rows are whole cache lines");
static_assert(sizeof(agw_procs) <= (32u << 10), "the process table fits in 32 KiB");

#define OWNER_CLAIMING 1u
#define OWNER_LIVE 2u
#define OWNER_REAPING 3u
#define OWNER_STATE(o) ((o) & 3u)
#define OWNER_PID(o) ((o) >> 2)

agw_procs *agw_procs_bind(void *region, size_t len)
{
    if (!region || len < AGW_PROCS_BYTES)
        return NULL;
    agw_procs *p = region;
    uint64_t zero = 0;
    atomic_compare_exchange_strong(&p->magic, &zero, AGW_PROCS_MAGIC);
    return p;
}

agw_procs_row *agw_procs_shared(agw_procs *p)
{
    return &p->rows[AGW_PROCS_ROWS - 1];
}

uint64_t agw_procs_start_time(uint64_t pid, int *zombie)
{
    *zombie = 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/%llu/stat", (unsigned long long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[1024];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* "pid (comm) S ppid ...": comm may hold spaces and parentheses, so
     * fields are counted from the last ')'. State is field 3, start time 22. */
    char *s = strrchr(buf, ')');
    if (!s || s[1] != ' ')
        return 0;
    s += 2;
    *zombie = *s == 'Z' || *s == 'X';
    for (int field = 3; field < 22; field++) {
        s = strchr(s, ' ');
        if (!s)
            return 0;
        s++;
    }
    unsigned long long t = 0;
    return sscanf(s, "%llu", &t) == 1 ? (uint64_t)t : 0;
}

int agw_procs_alive(uint64_t pid, uint64_t started)
{
    if (pid == 0 || pid > INT32_MAX)
        return 0;
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
        return 0;
    int zombie;
    uint64_t now = agw_procs_start_time(pid, &zombie);
    if (zombie)
        return 0;
    /* /proc unreadable: the pid exists, trust it. */
    return now == 0 || started == 0 || now == started;
}

static void row_clear(agw_procs_row *r)
{
    for (size_t i = 0; i < AGW_PROCS_CELLS; i++)
        atomic_store_explicit(&r->cells[i], 0, memory_order_relaxed);
    atomic_store(&r->started, 0);
}

size_t agw_procs_reap(agw_procs *p)
{
    if (!p)
        return 0;
    size_t used = (size_t)atomic_load(&p->rows_used), reaped = 0;
    for (size_t i = 0; i < used && i < AGW_PROCS_ROWS - 1; i++) {
        agw_procs_row *r = &p->rows[i];
        uint64_t o = atomic_load(&r->owner);
        if (o == 0 || OWNER_STATE(o) == OWNER_REAPING)
            continue;
        /* A claimer writes `started` before it stores LIVE (release), so a
         * LIVE owner's start time is read whole; a row still being claimed
         * is judged by its pid alone. */
        uint64_t started = OWNER_STATE(o) == OWNER_LIVE ? atomic_load(&r->started) : 0;
        if (agw_procs_alive(OWNER_PID(o), started))
            continue;
        if (!atomic_compare_exchange_strong(&r->owner, &o, (o & ~UINT64_C(3)) | OWNER_REAPING))
            continue;
        row_clear(r);
        atomic_store(&r->owner, 0);
        atomic_fetch_add(&p->reaped, 1);
        reaped++;
    }
    return reaped;
}

agw_procs_row *agw_procs_join(agw_procs *p)
{
    (void)agw_procs_reap(p);
    uint64_t pid = (uint64_t)getpid();
    int zombie;
    uint64_t started = agw_procs_start_time(pid, &zombie);
    uint64_t live = pid << 2 | OWNER_LIVE;
    size_t used = (size_t)atomic_load(&p->rows_used);
    for (size_t i = 0; i < used && i < AGW_PROCS_ROWS - 1; i++) {
        agw_procs_row *r = &p->rows[i];
        if (atomic_load(&r->owner) == live && atomic_load(&r->started) == started)
            return r;
    }
    for (size_t i = 0; i < AGW_PROCS_ROWS - 1; i++) {
        agw_procs_row *r = &p->rows[i];
        if (atomic_load(&r->owner) != 0)
            continue;
        /* The mark first, so that a claimer killed right after its exchange
         * leaves a row that reapers still visit. */
        uint64_t hw = atomic_load(&p->rows_used);
        while (hw < i + 1 && !atomic_compare_exchange_weak(&p->rows_used, &hw, i + 1))
            ;
        uint64_t o = 0;
        if (!atomic_compare_exchange_strong(&r->owner, &o, pid << 2 | OWNER_CLAIMING))
            continue;
        /* A reaper zeroed the cells before it freed the row. */
        atomic_store(&r->started, started);
        atomic_store(&r->owner, live);
        return r;
    }
    return agw_procs_shared(p);
}

uint64_t agw_procs_sum(agw_procs *p, size_t cell)
{
    if (!p || cell >= AGW_PROCS_CELLS)
        return 0;
    size_t used = (size_t)atomic_load_explicit(&p->rows_used, memory_order_relaxed);
    uint64_t sum = atomic_load_explicit(&agw_procs_shared(p)->cells[cell], memory_order_relaxed);
    for (size_t i = 0; i < used && i < AGW_PROCS_ROWS - 1; i++)
        sum += atomic_load_explicit(&p->rows[i].cells[cell], memory_order_relaxed);
    /* Never negative while every -1 follows its +1 in the same process;
     * the guard keeps a caller's mistake from showing as 2^64. */
    return (int64_t)sum < 0 ? 0 : sum;
}
