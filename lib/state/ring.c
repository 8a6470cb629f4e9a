#include "state/ring.h"
#include "state/shm.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

enum { PHASE_WRITING = 1, PHASE_READY = 2, PHASE_ABANDONED = 3 };

typedef struct {
    _Atomic uint64_t magic;          /* AGW_RING_MAGIC, stored last at creation */
    uint32_t version;                /* AGW_RING_VERSION */
    uint32_t layout;                 /* the owner's record layout */
    uint32_t slots;
    uint32_t slot_bytes;             /* AGW_RING_SLOT_BYTES */
    uint64_t base;                   /* the first sequence number */
    char boot_id[40];
    _Alignas(64) _Atomic uint64_t head; /* the next sequence to reserve */
    _Alignas(64) _Atomic uint64_t tail; /* the first sequence not yet consumed */
    /* The consumer's memory of an unclaimed slot it is waiting for. */
    _Atomic uint64_t stall_seq;
    _Atomic uint64_t stall_since_ns;
    _Alignas(64) _Atomic uint64_t counters[AGW_RING_COUNTERS];
} ring_header;

typedef struct {
    _Atomic uint64_t state;          /* seq << 2 | phase */
    _Atomic uint64_t claimed_ns;     /* agw_shm_now_ns() at the claim */
    _Atomic uint32_t pid;            /* the writer */
    uint32_t len;
    uint64_t pad;
    unsigned char data[AGW_RING_PAYLOAD_MAX];
} ring_slot;

static_assert(sizeof(ring_header) <= AGW_RING_HEADER_BYTES, "ring header fits");
static_assert(sizeof(ring_slot) == AGW_RING_SLOT_BYTES, "ring slots are 512 bytes");
static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && ATOMIC_INT_LOCK_FREE == 2, "lock-free atomics");

struct agw_ring {
    unsigned char *base;
    size_t size;
    uint32_t mask;
    uint32_t pid;      /* getpid() at attach: no system call per append */
};

static ring_header *hdr(const agw_ring *r)
{
    return (ring_header *)r->base;
}

static ring_slot *slot_of(const agw_ring *r, uint64_t seq)
{
    return (ring_slot *)(r->base + AGW_RING_HEADER_BYTES) + (seq & r->mask);
}

static uint64_t word(uint64_t seq, unsigned phase)
{
    return seq << 2 | phase;
}

static uint64_t wall_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

/* A new file, or one whose creator died before storing the magic. */
static void initialise(agw_ring *r, uint32_t layout, uint32_t slots, const char *boot_id)
{
    memset(r->base, 0, r->size);
    ring_header *h = hdr(r);
    h->version = AGW_RING_VERSION;
    h->layout = layout;
    h->slots = slots;
    h->slot_bytes = AGW_RING_SLOT_BYTES;
    h->base = wall_us();
    memcpy(h->boot_id, boot_id, sizeof h->boot_id);
    atomic_store(&h->head, h->base);
    atomic_store(&h->tail, h->base);
    /* Slot states start at 0: sequence 0, before every sequence of this file. */
    atomic_store_explicit(&h->magic, AGW_RING_MAGIC, memory_order_release);
}

/* After a reboot nobody is writing: whatever is not READY between tail and
 * head never will be. */
static void recover_after_reboot(agw_ring *r, const char *boot_id)
{
    ring_header *h = hdr(r);
    uint64_t head = atomic_load(&h->head), tail = atomic_load(&h->tail);
    for (uint64_t s = tail; s != head; s++) {
        ring_slot *sl = slot_of(r, s);
        if (atomic_load(&sl->state) != word(s, PHASE_READY)) {
            atomic_store(&sl->state, word(s, PHASE_ABANDONED));
            agw_log_warn("ring: record %llu was being written when the system went down: lost",
                         (unsigned long long)s);
        }
    }
    atomic_store(&h->stall_seq, 0);
    memcpy(h->boot_id, boot_id, sizeof h->boot_id);
}

agw_err agw_ring_attach(const char *path, uint32_t layout, uint32_t slots, agw_ring **out,
                        char *err, size_t errlen)
{
    *out = NULL;
    if (slots < AGW_RING_MIN_SLOTS || slots > AGW_RING_MAX_SLOTS || (slots & (slots - 1))) {
        snprintf(err, errlen, "%s: %u slots: must be a power of two from %u to %u", path, slots,
                 AGW_RING_MIN_SLOTS, AGW_RING_MAX_SLOTS);
        return AGW_EINVAL;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return AGW_EIO;
    }
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            snprintf(err, errlen, "%s: flock: %s", path, strerror(errno));
            close(fd);
            return AGW_EIO;
        }
    }
    agw_err e = AGW_OK;
    agw_ring r = { NULL, 0, slots - 1, (uint32_t)getpid() };
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        e = AGW_EIO;
        goto out;
    }
    size_t want = AGW_RING_HEADER_BYTES + (size_t)slots * AGW_RING_SLOT_BYTES;
    if (st.st_size == 0) {
        int rc = posix_fallocate(fd, 0, (off_t)want);
        if (rc != 0) {
            snprintf(err, errlen, "%s: cannot allocate %zu bytes: %s", path, want, strerror(rc));
            (void)ftruncate(fd, 0);
            e = AGW_EIO;
            goto out;
        }
        st.st_size = (off_t)want;
    } else if ((uint64_t)st.st_size < AGW_RING_HEADER_BYTES) {
        snprintf(err, errlen, "%s: not a ring file (%llu bytes): stop every antigw process and "
                 "remove it", path, (unsigned long long)st.st_size);
        e = AGW_EINVAL;
        goto out;
    }
    r.size = (size_t)st.st_size;
    void *p = mmap(NULL, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
        e = AGW_EIO;
        goto out;
    }
    r.base = p;
    char boot_id[40];
    agw_shm_read_boot_id(boot_id);
    ring_header *h = hdr(&r);
    uint64_t magic = atomic_load_explicit(&h->magic, memory_order_acquire);
    if (magic == 0 && r.size == want) {
        initialise(&r, layout, slots, boot_id);
    } else if (magic != AGW_RING_MAGIC) {
        snprintf(err, errlen, "%s: not a ring file (bad magic or size): stop every antigw "
                 "process and remove it", path);
        e = AGW_EINVAL;
    } else if (h->version != AGW_RING_VERSION || h->layout != layout ||
               h->slot_bytes != AGW_RING_SLOT_BYTES || h->slots != slots || r.size != want) {
        snprintf(err, errlen,
                 "%s: holds %u slots of layout %u.%u, this program wants %u slots of layout "
                 "%u.%u: let the pool drain it (the usage ring metrics show 0), stop every "
                 "antigw process, and remove the file",
                 path, h->slots, h->version, h->layout, slots, AGW_RING_VERSION, layout);
        e = AGW_EINVAL;
    } else if (boot_id[0] && memcmp(h->boot_id, boot_id, sizeof boot_id) != 0) {
        recover_after_reboot(&r, boot_id);
    }
    if (e) {
        munmap(r.base, r.size);
        goto out;
    }
    *out = xmalloc(sizeof **out);
    **out = r;
out:
    flock(fd, LOCK_UN);
    close(fd);
    return e;
}

void agw_ring_detach(agw_ring *r)
{
    if (!r)
        return;
    munmap(r->base, r->size);
    free(r);
}

uint64_t agw_ring_head(const agw_ring *r)
{
    return atomic_load_explicit(&hdr(r)->head, memory_order_acquire);
}

uint64_t agw_ring_used(const agw_ring *r)
{
    /* tail first: head read later is never behind it. */
    uint64_t tail = atomic_load_explicit(&hdr(r)->tail, memory_order_acquire);
    uint64_t head = atomic_load_explicit(&hdr(r)->head, memory_order_acquire);
    return head - tail;
}

uint64_t agw_ring_capacity(const agw_ring *r)
{
    return (uint64_t)r->mask + 1;
}

_Atomic uint64_t *agw_ring_counter(agw_ring *r, unsigned i)
{
    assert(i < AGW_RING_COUNTERS);
    return &hdr(r)->counters[i];
}

/* ---- producers ---- */

agw_err agw_ring_append(agw_ring *r, const void *rec, size_t len)
{
    if (len == 0 || len > AGW_RING_PAYLOAD_MAX)
        return AGW_EINVAL;
    ring_header *h = hdr(r);
    for (;;) {
        uint64_t seq = atomic_load_explicit(&h->head, memory_order_relaxed);
        do {
            if (seq - atomic_load_explicit(&h->tail, memory_order_acquire) > r->mask)
                return AGW_ETOOBIG;
        } while (!atomic_compare_exchange_weak_explicit(&h->head, &seq, seq + 1,
                                                        memory_order_acq_rel,
                                                        memory_order_relaxed));
        ring_slot *s = slot_of(r, seq);
        /* The slot's previous lap was consumed (seq - slots < tail). Claim it
         * unless the consumer gave up on this sequence meanwhile. */
        uint64_t old = atomic_load_explicit(&s->state, memory_order_acquire);
        if (old >> 2 >= seq)
            continue; /* abandoned while unclaimed: take another sequence */
        atomic_store_explicit(&s->pid, r->pid, memory_order_relaxed);
        atomic_store_explicit(&s->claimed_ns, agw_shm_now_ns(), memory_order_relaxed);
        if (!atomic_compare_exchange_strong_explicit(&s->state, &old, word(seq, PHASE_WRITING),
                                                     memory_order_acq_rel, memory_order_acquire))
            continue;
        memcpy(s->data, rec, len);
        s->len = (uint32_t)len;
        uint64_t writing = word(seq, PHASE_WRITING);
        if (atomic_compare_exchange_strong_explicit(&s->state, &writing, word(seq, PHASE_READY),
                                                    memory_order_release, memory_order_relaxed))
            return AGW_OK;
        /* Taken for torn after a stall of AGW_RING_STALL_MS: write it again. */
    }
}

/* ---- the consumer ---- */

static int writer_gone(const ring_slot *s, uint64_t now)
{
    pid_t pid = (pid_t)atomic_load_explicit(&s->pid, memory_order_relaxed);
    if (pid > 0 && kill(pid, 0) != 0 && errno == ESRCH)
        return 1;
    uint64_t since = atomic_load_explicit(&s->claimed_ns, memory_order_relaxed);
    return now > since && now - since > (uint64_t)AGW_RING_STALL_MS * 1000000u;
}

size_t agw_ring_read(agw_ring *r, agw_ring_entry *out, size_t max, uint64_t *next,
                     uint64_t *torn)
{
    ring_header *h = hdr(r);
    uint64_t seq = atomic_load_explicit(&h->tail, memory_order_acquire);
    uint64_t head = atomic_load_explicit(&h->head, memory_order_acquire);
    size_t n = 0;
    *torn = 0;
    while (n < max && seq != head) {
        ring_slot *s = slot_of(r, seq);
        uint64_t st = atomic_load_explicit(&s->state, memory_order_acquire);
        if (st == word(seq, PHASE_READY)) {
            out[n].seq = seq;
            out[n].len = s->len <= AGW_RING_PAYLOAD_MAX ? s->len : AGW_RING_PAYLOAD_MAX;
            memcpy(out[n].data, s->data, out[n].len);
            n++;
            seq++;
            continue;
        }
        if (st == word(seq, PHASE_ABANDONED)) {
            seq++;
            continue;
        }
        uint64_t now = agw_shm_now_ns();
        int give_up;
        if (st == word(seq, PHASE_WRITING)) {
            give_up = writer_gone(s, now);
        } else {
            /* Reserved but not claimed yet: a writer between its two steps,
             * or one that died there. Only time tells them apart. */
            if (atomic_load(&h->stall_seq) != seq) {
                atomic_store(&h->stall_seq, seq);
                atomic_store(&h->stall_since_ns, now);
            }
            give_up = now - atomic_load(&h->stall_since_ns) >
                      (uint64_t)AGW_RING_STALL_MS * 1000000u;
        }
        if (!give_up)
            break;
        if (atomic_compare_exchange_strong(&s->state, &st, word(seq, PHASE_ABANDONED))) {
            (*torn)++;
            agw_log_warn("ring: record %llu was left half-written by its writer: skipped",
                         (unsigned long long)seq);
        }
        /* Either way the slot changed: look at it again. */
    }
    *next = seq;
    return n;
}

void agw_ring_consume(agw_ring *r, uint64_t next)
{
    atomic_store_explicit(&hdr(r)->tail, next, memory_order_release);
}

/* The slots from sequence `from` up to `to` (at most one lap) as at most two
 * byte ranges of the file, the second for the part that wraps round to the
 * first slot. Returns how many ranges (0..2). */
typedef struct {
    size_t offset, length;
} byte_range;

static int slot_ranges(const agw_ring *r, uint64_t from, uint64_t to, byte_range out[2])
{
    uint64_t slots = (uint64_t)r->mask + 1, count = to - from;
    if (to <= from)
        return 0;
    if (count > slots)
        count = slots;
    uint64_t first = from & r->mask, before_wrap = slots - first;
    uint64_t n1 = count < before_wrap ? count : before_wrap;
    out[0].offset = AGW_RING_HEADER_BYTES + (size_t)first * AGW_RING_SLOT_BYTES;
    out[0].length = (size_t)n1 * AGW_RING_SLOT_BYTES;
    if (n1 == count)
        return 1;
    out[1].offset = AGW_RING_HEADER_BYTES;
    out[1].length = (size_t)(count - n1) * AGW_RING_SLOT_BYTES;
    return 2;
}

static int sync_bytes(agw_ring *r, size_t offset, size_t length)
{
    /* msync wants a page-aligned start; the mapping itself is one. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE), lead = offset % page;
    return msync(r->base + offset - lead, length + lead, MS_SYNC);
}

/* Not the whole file: every sync leaves the pages it wrote clean, and each
 * process then takes a page fault on its next write to each of them (a few
 * microseconds per call, measured, when the whole file was synced every
 * second). Records older than `before` sit in pages that are full by then,
 * so syncing them costs no fault; consumed slots are in the database. With
 * none of them waiting, not even the header is written: it is on every
 * append's path, and a stale tail on the disk only makes the consumer read
 * stored records again (their sequences say so). */
agw_err agw_ring_sync(agw_ring *r, uint64_t before)
{
    ring_header *h = hdr(r);
    uint64_t tail = atomic_load_explicit(&h->tail, memory_order_acquire);
    uint64_t head = atomic_load_explicit(&h->head, memory_order_acquire);
    byte_range ranges[2];
    int n = slot_ranges(r, tail, before < head ? before : head, ranges);
    if (n == 0)
        return AGW_OK;
    if (sync_bytes(r, 0, AGW_RING_HEADER_BYTES) != 0)
        return AGW_EIO;
    for (int i = 0; i < n; i++)
        if (sync_bytes(r, ranges[i].offset, ranges[i].length) != 0)
            return AGW_EIO;
    return AGW_OK;
}
