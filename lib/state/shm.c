#include "state/shm.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Everything in the segment must work across processes: an _Atomic that is
 * not lock-free takes a lock private to each process, which guards nothing
 * against the others. */
static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
static_assert(sizeof(agw_shm_header) <= AGW_SHM_MUTEX_OFF, "header overlaps the mutex");
static_assert(AGW_SHM_MUTEX_OFF + sizeof(pthread_mutex_t) <= AGW_SHM_LIMITER_OFF,
              "mutex overlaps the limiter table");
static_assert(sizeof(agw_shm_limit_slot) == 48, "limiter slots are 48 bytes");
static_assert(AGW_SHM_BOOT_SCOPED_BYTES <= AGW_SHM_RESERVED_BYTES, "boot-scoped bytes fit");

#define TOTAL_BYTES                                                                  \
    ((uint64_t)AGW_SHM_LIMITER_OFF + (uint64_t)AGW_SHM_LIMIT_SLOTS * sizeof(agw_shm_limit_slot) + \
     AGW_SHM_RESERVED_BYTES)

struct agw_shm {
    unsigned char *base;
    size_t size;
};

uint64_t agw_shm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

char *agw_shm_path_for_db(const char *db_path)
{
    size_t n = strlen(db_path) + sizeof ".state";
    char *p = xmalloc(n);
    snprintf(p, n, "%s.state", db_path);
    return p;
}

static agw_shm_header *hdr(agw_shm *s)
{
    return (agw_shm_header *)s->base;
}

static pthread_mutex_t *claim_mutex(agw_shm *s)
{
    return (pthread_mutex_t *)(s->base + AGW_SHM_MUTEX_OFF);
}

static agw_shm_limit_slot *slots(agw_shm *s)
{
    return (agw_shm_limit_slot *)(s->base + AGW_SHM_LIMITER_OFF);
}

void agw_shm_read_boot_id(char out[40])
{
    memset(out, 0, 40);
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return; /* no /proc: the check is skipped */
    ssize_t n = read(fd, out, 39);
    close(fd);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\0'))
        out[--n] = '\0';
    if (n < 0)
        out[0] = '\0';
}

static agw_err init_mutex(pthread_mutex_t *m)
{
    pthread_mutexattr_t a;
    int rc = pthread_mutexattr_init(&a);
    if (!rc)
        rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (!rc)
        rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (!rc)
        rc = pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
    return rc ? AGW_EIO : AGW_OK;
}

/* A fresh segment, or one whose creator died before storing the magic. The
 * caller holds the flock, so no other process is looking at it. */
static agw_err initialise(agw_shm *s, const char *boot_id)
{
    memset(s->base, 0, s->size);
    agw_shm_header *h = hdr(s);
    h->layout_version = AGW_SHM_LAYOUT_VERSION;
    h->header_bytes = sizeof *h;
    h->total_bytes = TOTAL_BYTES;
    h->mutex_bytes = sizeof(pthread_mutex_t);
    h->slot_bytes = sizeof(agw_shm_limit_slot);
    h->mutex_off = AGW_SHM_MUTEX_OFF;
    h->limiter_off = AGW_SHM_LIMITER_OFF;
    h->limiter_slots = AGW_SHM_LIMIT_SLOTS;
    h->reserved_off = TOTAL_BYTES - AGW_SHM_RESERVED_BYTES;
    h->reserved_bytes = AGW_SHM_RESERVED_BYTES;
    memcpy(h->boot_id, boot_id, sizeof h->boot_id);
    h->created_at = agw_wall_s();
    if (init_mutex(claim_mutex(s)))
        return AGW_EIO;
    atomic_store_explicit(&h->magic, AGW_SHM_MAGIC, memory_order_release);
    return AGW_OK;
}

#define MISMATCH(field, have, want)                                                          \
    do {                                                                                     \
        if ((uint64_t)(have) != (uint64_t)(want)) {                                          \
            snprintf(err, errlen,                                                            \
                     "%s: %s is %llu, this program's layout needs %llu: stop every antigw "  \
                     "process and remove the file",                                          \
                     path, field, (unsigned long long)(have), (unsigned long long)(want));   \
            return AGW_EINVAL;                                                               \
        }                                                                                    \
    } while (0)

static agw_err check_layout(agw_shm *s, const char *path, char *err, size_t errlen)
{
    agw_shm_header *h = hdr(s);
    MISMATCH("the layout version", h->layout_version, AGW_SHM_LAYOUT_VERSION);
    MISMATCH("the header size", h->header_bytes, sizeof *h);
    MISMATCH("the recorded size", h->total_bytes, TOTAL_BYTES);
    MISMATCH("the mutex size", h->mutex_bytes, sizeof(pthread_mutex_t));
    MISMATCH("the limiter slot size", h->slot_bytes, sizeof(agw_shm_limit_slot));
    MISMATCH("the mutex offset", h->mutex_off, AGW_SHM_MUTEX_OFF);
    MISMATCH("the limiter offset", h->limiter_off, AGW_SHM_LIMITER_OFF);
    MISMATCH("the limiter slot count", h->limiter_slots, AGW_SHM_LIMIT_SLOTS);
    MISMATCH("the reserved offset", h->reserved_off, TOTAL_BYTES - AGW_SHM_RESERVED_BYTES);
    MISMATCH("the reserved size", h->reserved_bytes, AGW_SHM_RESERVED_BYTES);
    return AGW_OK;
}

agw_err agw_shm_attach(const char *path, agw_shm **out, char *err, size_t errlen)
{
    *out = NULL;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return AGW_EIO;
    }
    agw_err e = AGW_OK;
    agw_shm s = { NULL, (size_t)TOTAL_BYTES };
    struct stat st;
    if (agw_flock(fd, LOCK_EX) != 0) {
        snprintf(err, errlen, "%s: flock: %s", path, strerror(errno));
        close(fd);
        return AGW_EIO;
    }
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        e = AGW_EIO;
        goto out;
    }
    if (st.st_size == 0) {
        /* Allocated, not just sized: a store into a hole of a file on a
         * full disk would be a SIGBUS. */
        int rc = posix_fallocate(fd, 0, (off_t)TOTAL_BYTES);
        if (rc != 0) {
            (void)ftruncate(fd, 0);
            snprintf(err, errlen, "%s: cannot allocate: %s", path, strerror(rc));
            e = AGW_EIO;
            goto out;
        }
    } else if ((uint64_t)st.st_size != TOTAL_BYTES) {
        snprintf(err, errlen,
                 "%s: the file has %llu bytes, this program's layout needs %llu: stop every antigw "
                 "process and remove the file",
                 path, (unsigned long long)st.st_size, (unsigned long long)TOTAL_BYTES);
        e = AGW_EINVAL;
        goto out;
    }
    void *p = mmap(NULL, s.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
        e = AGW_EIO;
        goto out;
    }
    s.base = p;
    char boot_id[40];
    agw_shm_read_boot_id(boot_id);
    uint64_t magic = atomic_load_explicit(&hdr(&s)->magic, memory_order_acquire);
    if (magic == 0) {
        if ((e = initialise(&s, boot_id)))
            snprintf(err, errlen, "%s: cannot initialise the mutex", path);
    } else if (magic != AGW_SHM_MAGIC) {
        snprintf(err, errlen, "%s: not an AntiGateway state file (bad magic)", path);
        e = AGW_EINVAL;
    } else if ((e = check_layout(&s, path, err, errlen)) == AGW_OK && boot_id[0] &&
               memcmp(hdr(&s)->boot_id, boot_id, sizeof boot_id) != 0) {
        /* Monotonic times from another boot mean nothing now, and no process
         * of that boot is alive: start the limiter and the load balancer
         * afresh. */
        memset(slots(&s), 0, AGW_SHM_LIMIT_SLOTS * sizeof(agw_shm_limit_slot));
        memset(s.base + (TOTAL_BYTES - AGW_SHM_RESERVED_BYTES), 0, AGW_SHM_BOOT_SCOPED_BYTES);
        if (init_mutex(claim_mutex(&s)) != AGW_OK) {
            snprintf(err, errlen, "%s: cannot initialise the mutex", path);
            e = AGW_EIO;
        }
        memcpy(hdr(&s)->boot_id, boot_id, sizeof boot_id);
    }
    if (e) {
        munmap(s.base, s.size);
        goto out;
    }
    *out = xmalloc(sizeof **out);
    **out = s;
out:
    flock(fd, LOCK_UN);
    close(fd); /* the mapping stays valid without the descriptor */
    return e;
}

void agw_shm_detach(agw_shm *s)
{
    if (!s)
        return;
    munmap(s->base, s->size);
    free(s);
}

uint64_t agw_shm_generation(agw_shm *s)
{
    return atomic_load_explicit(&hdr(s)->generation, memory_order_acquire);
}

uint64_t agw_shm_generation_bump(agw_shm *s)
{
    return atomic_fetch_add_explicit(&hdr(s)->generation, 1, memory_order_acq_rel) + 1;
}

void agw_shm_count_rate_limit_hit(agw_shm *s)
{
    atomic_fetch_add_explicit(&hdr(s)->rate_limit_hits_total, 1, memory_order_relaxed);
}

uint64_t agw_shm_rate_limit_hits(agw_shm *s)
{
    return atomic_load_explicit(&hdr(s)->rate_limit_hits_total, memory_order_relaxed);
}

void *agw_shm_reserved(agw_shm *s, size_t *len)
{
    *len = AGW_SHM_RESERVED_BYTES;
    return s->base + (TOTAL_BYTES - AGW_SHM_RESERVED_BYTES);
}

/* ---- the limiter table ---- */

/* The key id in a slot's owner word (0 for a never used slot). */
static uint64_t owner_key(uint64_t owner)
{
    return owner >> 16;
}

static size_t home_of(uint64_t key_id)
{
    /* A multiplicative hash spreads sequential database ids over the table. */
    return (size_t)((key_id * UINT64_C(0x9e3779b97f4a7c15)) >> 40) % AGW_SHM_LIMIT_SLOTS;
}

/* The slot owned by key_id, or NULL. Stops at the first never-used slot: keys
 * are only ever placed at the first free slot of their probe chain, or, once
 * the table has no free slot left, anywhere (then every chain is the whole
 * table and the scan never meets a free slot). */
static agw_shm_limit_slot *find(agw_shm *s, uint64_t key_id, agw_shm_limit_slot **first_free)
{
    agw_shm_limit_slot *t = slots(s);
    size_t h = home_of(key_id);
    if (first_free)
        *first_free = NULL;
    for (size_t i = 0; i < AGW_SHM_LIMIT_SLOTS; i++) {
        agw_shm_limit_slot *slot = &t[(h + i) % AGW_SHM_LIMIT_SLOTS];
        uint64_t w = atomic_load(&slot->owner);
        if (w == 0) {
            if (first_free)
                *first_free = slot;
            return NULL;
        }
        if (owner_key(w) == key_id)
            return slot;
    }
    return NULL;
}

/* 1 pinned, 0 the slot belongs to another key now, -1 too many pins. */
static int pin(agw_shm_limit_slot *slot, uint64_t key_id)
{
    uint64_t w = atomic_load(&slot->owner);
    for (;;) {
        if (owner_key(w) != key_id)
            return 0;
        if ((w & AGW_SHM_MAX_PINS) == AGW_SHM_MAX_PINS)
            return -1;
        if (atomic_compare_exchange_weak(&slot->owner, &w, w + 1))
            return 1;
    }
}

static void claim_lock(agw_shm *s)
{
    int rc = pthread_mutex_lock(claim_mutex(s));
    if (rc == EOWNERDEAD) {
        /* The holder died inside the claiming procedure. Each of its steps is
         * a single atomic store, so the table is consistent as it is. */
        agw_log_warn("limiter: a process died while claiming a slot; recovering the lock");
        pthread_mutex_consistent(claim_mutex(s));
    } else if (rc != 0) {
        agw_fatal(__FILE__, __LINE__, "limiter claim mutex: %s", strerror(rc));
    }
}

/* With the claim mutex held and no free slot left: take over an idle slot.
 * Idle = no pins and both buckets full (TATs in the past), so the key that
 * loses it loses nothing a fresh slot would not give it back. */
static agw_shm_limit_slot *reclaim(agw_shm *s, uint64_t key_id, uint64_t now_ns)
{
    agw_shm_limit_slot *t = slots(s);
    size_t h = home_of(key_id);
    for (size_t i = 0; i < AGW_SHM_LIMIT_SLOTS; i++) {
        agw_shm_limit_slot *slot = &t[(h + i) % AGW_SHM_LIMIT_SLOTS];
        uint64_t w = atomic_load(&slot->owner);
        if ((w & AGW_SHM_MAX_PINS) != 0 || atomic_load(&slot->tat[0]) > now_ns ||
            atomic_load(&slot->tat[1]) > now_ns)
            continue;
        /* A request of the old key that pins meanwhile changes the word, and
         * the exchange fails: the slot is only taken while really idle. */
        if (atomic_compare_exchange_strong(&slot->owner, &w, key_id << 16 | 1)) {
            atomic_store(&slot->hits, 0);
            return slot;
        }
    }
    return NULL;
}

agw_err agw_shm_slot_pin(agw_shm *s, uint64_t key_id, uint64_t now_ns, agw_shm_limit_slot **out)
{
    *out = NULL;
    if (key_id == 0 || key_id > AGW_SHM_MAX_KEY_ID)
        return AGW_EINVAL;
    for (;;) {
        agw_shm_limit_slot *slot = find(s, key_id, NULL);
        if (slot) {
            int r = pin(slot, key_id);
            if (r > 0) {
                *out = slot;
                return AGW_OK;
            }
            if (r < 0)
                return AGW_ETOOBIG;
            continue; /* reclaimed by another key between find and pin: look again */
        }
        claim_lock(s);
        agw_shm_limit_slot *free_slot;
        slot = find(s, key_id, &free_slot);
        if (!slot && free_slot) {
            /* Only claimers (under this mutex) write a never-used slot. */
            atomic_store(&free_slot->tat[0], 0);
            atomic_store(&free_slot->tat[1], 0);
            atomic_store(&free_slot->owner, key_id << 16 | 1);
            *out = free_slot;
        } else if (!slot) {
            *out = reclaim(s, key_id, now_ns);
            if (!*out)
                atomic_fetch_add(&hdr(s)->limiter_full_total, 1);
        }
        pthread_mutex_unlock(claim_mutex(s));
        if (*out)
            return AGW_OK;
        if (!slot)
            return AGW_ETOOBIG;
        /* Another process claimed it first: pin it like any found slot. */
    }
}

void agw_shm_slot_unpin(agw_shm_limit_slot *slot)
{
    if (slot)
        atomic_fetch_sub(&slot->owner, 1);
}
