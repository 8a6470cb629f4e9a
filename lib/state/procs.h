/*
 * procs: what each process of the pool holds right now, kept per process in
 * the shared segment so that what a dead process held can be given back.
 *
 * Why: gauges such as "attempts in flight to provider X" or "streams in
 * flight" go up when a request starts and down when it ends. Kept as one
 * shared counter, a process killed (SIGKILL, OOM killer, crash) between the
 * two leaves the counter too high for good, even across a restart of the
 * pool, since the segment is a file; a load balancer that prefers the least
 * used provider then avoids that provider forever. Here every process adds
 * and subtracts only in its own row, a gauge is the sum of the rows, and the
 * row of a process that is gone is zeroed (reaped), which gives back exactly
 * what it held, with no window in which a kill can leave a count behind.
 *
 * The table: a header and AGW_PROCS_ROWS rows of AGW_PROCS_CELLS 64-bit
 * cells. What a cell means is the caller's business (lb.h assigns them); the
 * table only adds, sums and reaps. The last row is the shared row: used by a
 * process that never joined (or found no free row); it is never reaped, so
 * what is counted there behaves like the plain shared counter it replaces.
 *
 * A row is owned by one process, named by its pid and its start time (field
 * 22 of /proc/<pid>/stat, clock ticks since boot), so a pid the kernel hands
 * to a new process never inherits the row of the dead one. The owner word:
 * 0 = free; pid << 2 | 1 = being claimed; pid << 2 | 2 = live;
 * pid << 2 | 3 = being reaped. A process is gone when kill(pid, 0) says no
 * such process, when it is a zombie, or when the process with that pid
 * started at another time. Reaping a live row is one compare-and-swap from
 * live to reaping, so two reapers never both zero it; the dead owner writes
 * nothing any more, so zeroing then freeing (owner 0, release) is safe.
 *
 * Who reaps: every process when it joins (so a worker respawned by
 * multiwatch gives back what its predecessor held at once, and a restarted
 * pool what the old one held), the prober at each period, and GET /metrics
 * and /health before they read the gauges (lb.h). Reaping costs one kill(2)
 * per row in use, never runs on the request path.
 *
 * Rows are cached by nobody but their owner (agw_procs_join's result), so a
 * process must join again after a fork. The table holds pids, meaningful
 * only within one boot: it lives in the shm's boot-scoped bytes (shm.h),
 * zeroed when the boot changes.
 */
#ifndef AGW_PROCS_H
#define AGW_PROCS_H

#include "core/core.h"

#include <stdatomic.h>

#define AGW_PROCS_CELLS 136u
#define AGW_PROCS_ROWS 28u /* the last one is the shared row */
#define AGW_PROCS_MAGIC UINT64_C(0x31535052505741) /* "AWPRPS1" */

typedef struct {
    _Atomic uint64_t owner;   /* see above */
    _Atomic uint64_t started; /* the owner's start time, clock ticks since boot */
    uint64_t spare[6];
    _Atomic uint64_t cells[AGW_PROCS_CELLS];
} agw_procs_row;

typedef struct {
    _Atomic uint64_t magic;
    _Atomic uint64_t rows_used;   /* high-water mark of claimed rows: sums stop there */
    _Atomic uint64_t reaped;      /* rows given back since the segment was made */
    uint64_t spare[5];
    agw_procs_row rows[AGW_PROCS_ROWS];
} agw_procs;

/* The bytes the table takes (a little under 32 KiB). */
#define AGW_PROCS_BYTES (sizeof(agw_procs))

/* The table at `region` (zeroed when new, at least AGW_PROCS_BYTES, 8-byte
 * aligned); NULL when it is too small. */
agw_procs *agw_procs_bind(void *region, size_t len);

/* Reaps the rows of processes that are gone, then returns the calling
 * process's row: the one it already owns, else a free one it claims, else
 * (every row owned by a live process) the shared row. Never NULL for a
 * bound table. Call once per process, before threads use the row. */
agw_procs_row *agw_procs_join(agw_procs *p);

/* The shared row (for a process that did not join). */
agw_procs_row *agw_procs_shared(agw_procs *p);

/* Adds `delta` to `cell` of `row` (the caller's own row). A row's cell never
 * goes below 0 when every subtraction matches an earlier addition of the
 * same process. */
static inline void agw_procs_add(agw_procs_row *row, size_t cell, int64_t delta)
{
    atomic_fetch_add_explicit(&row->cells[cell], (uint64_t)delta, memory_order_relaxed);
}

/* The gauge: `cell` summed over every row in use (the dead processes' rows
 * not yet reaped included). 0 for a NULL table. */
uint64_t agw_procs_sum(agw_procs *p, size_t cell);

/* Gives back the rows of processes that are gone (see above); returns how
 * many it reaped. Any process may call it at any time. */
size_t agw_procs_reap(agw_procs *p);

/* Whether process `pid` that started at `started` (0: unknown, only the pid
 * counts) is still running. */
int agw_procs_alive(uint64_t pid, uint64_t started);

/* The start time of process `pid` (field 22 of /proc/<pid>/stat), 0 when
 * unknown; `*zombie` set when it has exited but not been waited for. */
uint64_t agw_procs_start_time(uint64_t pid, int *zombie);

#endif
