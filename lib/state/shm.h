/*
 * shm: the state every process of the pool shares (the limiter's windows, the
 * configuration generation, the load balancer's statistics, the metrics): one
 * file mapped MAP_SHARED by antigw-fcgi and antigw-admin, so limits and
 * totals hold for the whole pool rather than per process.
 *
 * Why a file and not anonymous memory: spawn-fcgi and multiwatch exec each
 * child, so nothing mapped before a fork is inherited. The file lives next to
 * the database ("<database.path>.state"); agw_shm_path_for_db() names it.
 *
 * Rules of the segment:
 *  - Only C11 lock-free integers live in it (static_assert'ed), because a
 *    non-lock-free _Atomic is emulated with a process-local lock and would be
 *    silently wrong across processes. Locations are offsets from the start of
 *    the mapping, never pointers: each process maps it at its own address.
 *  - The header carries a magic, a layout version, its own size, the total
 *    size and the sizes of the platform types inside (pthread_mutex_t, the
 *    limiter slot). agw_shm_attach refuses a file whose values differ from the
 *    binary's, so two builds with different layouts can never misread each
 *    other: stop every process and remove the file to change layout.
 *  - Creation is raced by every process of a starting pool: the file is
 *    created, sized and initialised under flock(LOCK_EX) on the file itself,
 *    and the magic is stored last (release), so a reader that sees the magic
 *    sees an initialised segment. A creator that died half-way left no magic;
 *    the next attacher initialises again.
 *  - Times inside are CLOCK_MONOTONIC nanoseconds, which all processes of one
 *    host share, but which restart at boot. The header records the boot id
 *    (/proc/sys/kernel/random/boot_id); a segment from an earlier boot gets its
 *    limiter table and the first AGW_SHM_BOOT_SCOPED_BYTES of the reserved
 *    region (the load balancer's statistics, cooldowns and health marks,
 *    lb.h) cleared at the first attach, under the flock, before any process
 *    of the new boot can use them (no process of that boot can still be
 *    using them). The generation counter and the rest of the reserved region
 *    (the metrics' counters) survive.
 *
 * Layout version 2 (offsets in bytes; version 1 had 32-byte limiter slots):
 *      0  header (agw_shm_header), its own 1 KiB
 *   1024  the claim mutex: a robust, process-shared pthread mutex
 *   4096  the limiter table: AGW_SHM_LIMIT_SLOTS slots of agw_shm_limit_slot
 *   ...   the reserved region, AGW_SHM_RESERVED_BYTES of zeros, for the
 *         per-provider load-balancer statistics and the metrics registry
 *         (metrics.h). A module that takes it over defines its own
 *         sub-layout there and bumps AGW_SHM_LAYOUT_VERSION when it changes
 *         the meaning of bytes a released binary reads; since this layout
 *         never reads the region, claiming zeroed space in it does not by
 *         itself require a bump.
 *
 * The limiter table: fixed-size open addressing (linear probing) keyed by the
 * client key's database id. A slot's `owner` word is `key id << 16 | pins`:
 * the pin count says how many requests of that key are between admission and
 * settlement, and it sits in the same word as the id, so one compare-and-swap
 * both checks who owns the slot and pins it. Lookups are lock-free. Claiming
 * a slot takes the claim mutex, so two processes can never give one key two
 * slots. Slots are never emptied (owner never goes back to 0), which keeps
 * probe chains valid without tombstones.
 * Overflow policy: when every slot is taken, a new key reclaims a slot whose
 * key is idle: no pins and both windows fully refilled (a full bucket, which
 * is exactly the state a fresh slot has, so the previous key loses nothing).
 * Only if none is idle is the new key refused (AGW_ETOOBIG): the caller
 * answers 503 and nothing is over-admitted. With AGW_SHM_LIMIT_SLOTS keys
 * active within the same minute that is a deployment far beyond one host.
 * A process killed while it held pins leaves them behind: that slot is then
 * never reclaimed, which only costs one slot.
 *
 * The claim mutex guards nothing but the claiming procedure, whose every step
 * is one atomic store, so a holder that dies leaves a consistent table: on
 * EOWNERDEAD the next locker marks the mutex consistent and carries on.
 */
#ifndef AGW_SHM_H
#define AGW_SHM_H

#include "core/core.h"

#include <pthread.h>
#include <stdatomic.h>

#define AGW_SHM_MAGIC UINT64_C(0x314d48535747412e) /* ".AGWSHM1" little-endian */
#define AGW_SHM_LAYOUT_VERSION 4u /* 3: metrics model labels of AGW_CONFIG_MODEL_MAX bytes;
                                     4: continuations per provider */
#define AGW_SHM_LIMIT_SLOTS 16384u
#define AGW_SHM_RESERVED_BYTES (1u << 20)
#define AGW_SHM_MUTEX_OFF 1024u
#define AGW_SHM_LIMITER_OFF 4096u
/* The start of the reserved region that holds CLOCK_MONOTONIC times and is
 * cleared when the boot changes (see above). */
#define AGW_SHM_BOOT_SCOPED_BYTES (64u << 10)

/* Key ids fit in the 48 bits above the pin count. */
#define AGW_SHM_MAX_KEY_ID ((UINT64_C(1) << 48) - 1)
#define AGW_SHM_MAX_PINS 0xffffu

typedef struct {
    _Atomic uint64_t owner;  /* key id << 16 | pins; 0 = never used */
    _Atomic uint64_t tat[2]; /* GCRA theoretical arrival times (CLOCK_MONOTONIC ns):
                                [0] requests (QPM), [1] tokens (TPM); 0 = full bucket */
    _Atomic uint64_t hits;   /* requests of this key refused with 429 */
    _Atomic uint64_t seen[2]; /* the latest `now` any decision on tat[i] used: a decision
                                 never uses an earlier one (see limiter.c) */
} agw_shm_limit_slot;

typedef struct {
    _Atomic uint64_t magic;          /* AGW_SHM_MAGIC, stored last at creation */
    uint32_t layout_version;         /* AGW_SHM_LAYOUT_VERSION */
    uint32_t header_bytes;           /* sizeof(agw_shm_header) */
    uint64_t total_bytes;            /* the file's size */
    uint32_t mutex_bytes;            /* sizeof(pthread_mutex_t) */
    uint32_t slot_bytes;             /* sizeof(agw_shm_limit_slot) */
    uint64_t mutex_off;              /* AGW_SHM_MUTEX_OFF */
    uint64_t limiter_off;            /* AGW_SHM_LIMITER_OFF */
    uint64_t limiter_slots;          /* AGW_SHM_LIMIT_SLOTS */
    uint64_t reserved_off;           /* start of the reserved region */
    uint64_t reserved_bytes;         /* AGW_SHM_RESERVED_BYTES */
    char boot_id[40];                /* the boot the monotonic times belong to */
    int64_t created_at;              /* Unix seconds */
    _Atomic uint64_t generation;     /* bumped by antigw-admin after each committed change */
    _Atomic uint64_t rate_limit_hits_total; /* antigateway_rate_limit_hits_total */
    _Atomic uint64_t limiter_full_total;    /* keys refused because no slot was free */
} agw_shm_header;

typedef struct agw_shm agw_shm;

/* "<db_path>.state", malloc'd. */
char *agw_shm_path_for_db(const char *db_path);

/* Maps the segment at `path`, creating and initialising it when absent.
 * AGW_EINVAL (with `err` saying which value differs and what to do) for a
 * file of another layout, AGW_EIO for system errors. */
AGW_WARN_UNUSED agw_err agw_shm_attach(const char *path, agw_shm **out, char *err, size_t errlen);
void agw_shm_detach(agw_shm *s);

/* The generation of the configuration in the database. */
uint64_t agw_shm_generation(agw_shm *s);
/* Adds one; returns the new value. Call after the change is committed. */
uint64_t agw_shm_generation_bump(agw_shm *s);

/* antigateway_rate_limit_hits_total. */
void agw_shm_count_rate_limit_hit(agw_shm *s);
uint64_t agw_shm_rate_limit_hits(agw_shm *s);

/* The slot of `key_id` (1..AGW_SHM_MAX_KEY_ID), claimed if needed, with one
 * pin taken: the slot stays this key's until agw_shm_slot_unpin. `now_ns`
 * decides which slots are idle when the table is full. AGW_EINVAL for a bad
 * id; AGW_ETOOBIG when the table is full and no slot is idle, or the key
 * already has AGW_SHM_MAX_PINS requests in flight. */
AGW_WARN_UNUSED agw_err agw_shm_slot_pin(agw_shm *s, uint64_t key_id, uint64_t now_ns,
                                         agw_shm_limit_slot **out);
void agw_shm_slot_unpin(agw_shm_limit_slot *slot);

/* The reserved region (see above); *len gets its size. */
void *agw_shm_reserved(agw_shm *s, size_t *len);

/* This boot's id (/proc/sys/kernel/random/boot_id), "" when unknown. */
void agw_shm_read_boot_id(char out[40]);

/* CLOCK_MONOTONIC in nanoseconds, the clock of every time in the segment. */
uint64_t agw_shm_now_ns(void);

#endif
