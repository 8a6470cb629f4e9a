#include "state/ring.h"
#include "state/shm.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
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
    int fd;            /* the ring's file, shared-locked while attached; -1 for an image */
    char *path;
    char *image_path;  /* NULL: agw_ring_sync writes the ring's own file (msync) */
    int image_fd;      /* opened by the first agw_ring_sync that writes the image */
    int is_image;      /* from agw_ring_open_image: its header is written at detach */
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

/* Marks every slot between tail and head that is not READY abandoned, for a
 * ring nobody writes any more; returns how many. */
static uint64_t abandon_unready(agw_ring *r)
{
    ring_header *h = hdr(r);
    uint64_t head = atomic_load(&h->head), tail = atomic_load(&h->tail), n = 0;
    for (uint64_t s = tail; s != head; s++) {
        ring_slot *sl = slot_of(r, s);
        if (atomic_load(&sl->state) != word(s, PHASE_READY)) {
            atomic_store(&sl->state, word(s, PHASE_ABANDONED));
            n++;
        }
    }
    atomic_store(&h->stall_seq, 0);
    return n;
}

/* After a reboot nobody is writing: whatever is not READY between tail and
 * head never will be. */
static void recover_after_reboot(agw_ring *r, const char *boot_id)
{
    uint64_t lost = abandon_unready(r);
    if (lost)
        agw_log_warn("ring: %llu records were being written when the system went down: lost",
                     (unsigned long long)lost);
    memcpy(hdr(r)->boot_id, boot_id, sizeof hdr(r)->boot_id);
}

/* The ring's file may sit in a directory other users can write (/dev/shm):
 * it must be this user's own, private, regular file. */
static int private_file(const struct stat *st)
{
    return S_ISREG(st->st_mode) && st->st_uid == geteuid() && (st->st_mode & 077) == 0;
}

/* 1 when a header holds what this program wants: its layout, this slot count, this size. */
static int header_fits(const ring_header *h, size_t size, uint32_t layout, uint32_t slots)
{
    return h->version == AGW_RING_VERSION && h->layout == layout &&
           h->slot_bytes == AGW_RING_SLOT_BYTES && h->slots == slots &&
           size == AGW_RING_HEADER_BYTES + (size_t)slots * AGW_RING_SLOT_BYTES;
}

/* Opens the ring's file with a shared lock, the mark of a process that has
 * it attached; an exclusive one (held by the caller on return) when it
 * needs creating. Retries when the file it opened was removed meanwhile (the
 * last process to detach an empty ring on a memory file system removes it). */
static agw_err open_locked(const char *path, size_t want, int *fd_out, int *creating,
                           char *err, size_t errlen)
{
    for (int attempt = 0; attempt < 5000; attempt++) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
            snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
            return AGW_EIO;
        }
        struct stat st;
        if (fstat(fd, &st) != 0 || !private_file(&st)) {
            snprintf(err, errlen, "%s: not a private file of this user (owner uid %u, mode "
                     "%03o): remove it, or set usage.ring_dir to a directory of your own",
                     path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777));
            close(fd);
            return AGW_EINVAL;
        }
        uint64_t magic = 0;
        if (agw_flock(fd, LOCK_SH) != 0 || fstat(fd, &st) != 0) {
            snprintf(err, errlen, "%s: flock: %s", path, strerror(errno));
            close(fd);
            return AGW_EIO;
        }
        if (st.st_nlink == 0) { /* removed before we locked it: open the new one */
            close(fd);
            continue;
        }
        if ((size_t)st.st_size >= sizeof magic &&
            pread(fd, &magic, sizeof magic, 0) != (ssize_t)sizeof magic)
            magic = 0;
        if (magic != 0) {
            *fd_out = fd;
            *creating = 0;
            return AGW_OK;
        }
        /* Nobody has it attached (they would hold their shared lock with the
         * magic stored) unless another process is creating it right now. */
        if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &st) == 0 && st.st_nlink > 0) {
            if (st.st_size == 0) {
                int rc = posix_fallocate(fd, 0, (off_t)want);
                if (rc != 0) {
                    snprintf(err, errlen, "%s: cannot allocate %zu bytes: %s", path, want,
                             strerror(rc));
                    unlink(path); /* empty, and ours: nobody else attaches an empty file */
                    close(fd);
                    return AGW_EIO;
                }
            }
            *fd_out = fd;
            *creating = 1;
            return AGW_OK;
        }
        close(fd);
        struct timespec pause = { 0, 1000000L };
        nanosleep(&pause, NULL);
    }
    snprintf(err, errlen, "%s: another process kept creating it for 5 s", path);
    return AGW_EIO;
}

agw_err agw_ring_attach(const char *path, const char *image, uint32_t layout, uint32_t slots,
                        agw_ring **out, char *err, size_t errlen)
{
    *out = NULL;
    if (slots < AGW_RING_MIN_SLOTS || slots > AGW_RING_MAX_SLOTS || (slots & (slots - 1))) {
        snprintf(err, errlen, "%s: %u slots: must be a power of two from %u to %u", path, slots,
                 AGW_RING_MIN_SLOTS, AGW_RING_MAX_SLOTS);
        return AGW_EINVAL;
    }
    size_t want = AGW_RING_HEADER_BYTES + (size_t)slots * AGW_RING_SLOT_BYTES;
    int fd, creating;
    agw_err e = open_locked(path, want, &fd, &creating, err, errlen);
    if (e)
        return e;
    agw_ring r = { NULL, 0, slots - 1, (uint32_t)getpid(), fd, NULL, NULL, -1, 0 };
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        e = AGW_EIO;
        goto fail;
    }
    if ((uint64_t)st.st_size < AGW_RING_HEADER_BYTES) {
        snprintf(err, errlen, "%s: not a ring file (%llu bytes): stop every antigw process and "
                 "remove it", path, (unsigned long long)st.st_size);
        e = AGW_EINVAL;
        goto fail;
    }
    r.size = (size_t)st.st_size;
    void *p = mmap(NULL, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
        e = AGW_EIO;
        goto fail;
    }
    r.base = p;
    char boot_id[40];
    agw_shm_read_boot_id(boot_id);
    ring_header *h = hdr(&r);
    uint64_t magic = atomic_load_explicit(&h->magic, memory_order_acquire);
    if (creating && magic == 0 && r.size == want) {
        initialise(&r, layout, slots, boot_id);
    } else if (magic != AGW_RING_MAGIC) {
        snprintf(err, errlen, "%s: not a ring file (bad magic or size): stop every antigw "
                 "process and remove it", path);
        e = AGW_EINVAL;
    } else if (!header_fits(h, r.size, layout, slots)) {
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
        goto fail;
    }
    if (creating && agw_flock(fd, LOCK_SH) != 0) { /* created: now one user among others */
        snprintf(err, errlen, "%s: flock: %s", path, strerror(errno));
        munmap(r.base, r.size);
        e = AGW_EIO;
        goto fail;
    }
    r.path = xstrdup(path);
    r.image_path = image ? xstrdup(image) : NULL;
    *out = xmalloc(sizeof **out);
    **out = r;
    return AGW_OK;
fail:
    close(fd); /* releases the lock */
    return e;
}

agw_err agw_ring_open_image(const char *path, uint32_t layout, agw_ring **out,
                            uint64_t *unsynced, char *err, size_t errlen)
{
    *out = NULL;
    *unsynced = 0;
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return AGW_ENOTFOUND;
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return AGW_EIO;
    }
    struct stat st;
    agw_err e = AGW_OK;
    ring_header head_copy;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        e = AGW_EIO;
    } else if ((uint64_t)st.st_size < AGW_RING_HEADER_BYTES ||
               pread(fd, &head_copy, sizeof head_copy, 0) != (ssize_t)sizeof head_copy ||
               atomic_load(&head_copy.magic) == 0 ||
               atomic_load(&head_copy.head) == atomic_load(&head_copy.tail)) {
        e = AGW_ENOTFOUND; /* allocated and never written, or holding nothing */
    } else if (atomic_load(&head_copy.magic) != AGW_RING_MAGIC ||
               head_copy.slots < AGW_RING_MIN_SLOTS || head_copy.slots > AGW_RING_MAX_SLOTS ||
               (head_copy.slots & (head_copy.slots - 1)) ||
               !header_fits(&head_copy, (size_t)st.st_size, layout, head_copy.slots)) {
        snprintf(err, errlen, "%s: not a ring image of layout %u.%u", path, AGW_RING_VERSION,
                 layout);
        e = AGW_EINVAL;
    }
    if (e) {
        close(fd);
        return e;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
        return AGW_EIO;
    }
    agw_ring r = { p, (size_t)st.st_size, head_copy.slots - 1, (uint32_t)getpid(), -1, NULL,
                   NULL, -1, 1 };
    *unsynced = abandon_unready(&r);
    *out = xmalloc(sizeof **out);
    **out = r;
    return AGW_OK;
}

void agw_ring_detach(agw_ring *r)
{
    if (!r)
        return;
    if (r->is_image)
        (void)msync(r->base, AGW_RING_HEADER_BYTES, MS_SYNC); /* the tail consume moved */
    /* A ring kept in memory beside its image, empty, and attached by no other
     * process (their shared locks would refuse this one): nothing in it is
     * worth the memory it holds. */
    struct stat mine, named;
    if (r->image_path && agw_ring_used(r) == 0 && agw_ring_sole_user(r) &&
        agw_ring_used(r) == 0 && fstat(r->fd, &mine) == 0 && lstat(r->path, &named) == 0 &&
        mine.st_ino == named.st_ino && mine.st_dev == named.st_dev)
        unlink(r->path); /* only while the name is still this ring's */
    munmap(r->base, r->size);
    if (r->fd >= 0)
        close(r->fd);
    if (r->image_fd >= 0)
        close(r->image_fd);
    free(r->path);
    free(r->image_path);
    free(r);
}

int agw_ring_removed(const agw_ring *r)
{
    struct stat st;
    return r->image_path && fstat(r->fd, &st) == 0 && st.st_nlink == 0;
}

int agw_ring_sole_user(agw_ring *r)
{
    return r->fd >= 0 && flock(r->fd, LOCK_EX | LOCK_NB) == 0;
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

/* The image gets the same bytes at the same offsets as the ring's file
 * would, so agw_ring_open_image reads it as a ring. Made the ring's size at
 * the first write (it may hold another ring's layout, already read). */
static agw_err write_image(agw_ring *r, const byte_range *ranges, int n)
{
    if (r->image_fd < 0) {
        int fd = open(r->image_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        struct stat st;
        if (fd < 0)
            return AGW_EIO;
        if (fstat(fd, &st) != 0 ||
            ((size_t)st.st_size != r->size &&
             (ftruncate(fd, 0) != 0 || posix_fallocate(fd, 0, (off_t)r->size) != 0))) {
            close(fd);
            return AGW_EIO;
        }
        r->image_fd = fd;
    }
    /* The header without its boot id: should the image ever be attached as
     * a ring, it counts as a ring from another boot, whose slots that are
     * not READY are nobody's. */
    union {
        ring_header h;
        unsigned char b[AGW_RING_HEADER_BYTES];
    } header;
    memcpy(header.b, r->base, sizeof header.b);
    memset(header.h.boot_id, 0, sizeof header.h.boot_id);
    for (int i = 0; i < n; i++)
        for (size_t done = 0; done < ranges[i].length;) {
            const unsigned char *from =
                ranges[i].offset == 0 ? header.b : r->base + ranges[i].offset;
            ssize_t w = pwrite(r->image_fd, from + done,
                               ranges[i].length - done, (off_t)(ranges[i].offset + done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return AGW_EIO;
            done += (size_t)w;
        }
    return fdatasync(r->image_fd) == 0 ? AGW_OK : AGW_EIO;
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
    byte_range ranges[3] = { { 0, AGW_RING_HEADER_BYTES } };
    int n = slot_ranges(r, tail, before < head ? before : head, ranges + 1);
    if (n == 0)
        return AGW_OK;
    if (r->image_path)
        return write_image(r, ranges, n + 1);
    for (int i = 0; i <= n; i++)
        if (sync_bytes(r, ranges[i].offset, ranges[i].length) != 0)
            return AGW_EIO;
    return AGW_OK;
}
