/*
 * ring: a bounded queue of fixed-size records in a file every process of the
 * pool maps (MAP_SHARED), written by any number of producers in any number of
 * processes and read by one consumer at a time. It outlives the processes
 * that write it: a record appended by a worker that is then SIGKILLed is
 * still there for the consumer, and so is everything not yet consumed when the
 * whole pool stops (the next start reads it).
 *
 * What a record is belongs to the caller: the ring stores opaque bytes, at
 * most AGW_RING_PAYLOAD_MAX per record, and checks only that every process
 * agrees on the caller's `layout` number and on the slot count (the first
 * attacher creates the file with them; another value is refused with a
 * message saying what to do, as shm.h does for its segment).
 *
 * Sequence numbers: record i of the ring's life has sequence base + i, where
 * base is the wall clock in microseconds when the file was created. They are
 * unique over the file's life, and a file created again later starts above
 * every number an earlier file gave (unless that one took more than a
 * million records per second for its whole life), so a consumer can store them
 * as a unique key and make its writes idempotent: a batch written twice (the
 * consumer died after its write and before agw_ring_consume) is recognised
 * the second time.
 *
 * Slots and visibility: each slot has a state word, (sequence << 2 | phase),
 * with phase WRITING, READY or ABANDONED. A producer
 *  1. reserves a sequence by compare-and-swap on `head`, refused (AGW_ETOOBIG)
 *     when head - tail has reached the slot count;
 *  2. claims the slot (state: its sequence, WRITING, with its pid and the
 *     claim time), copies the record, and
 *  3. publishes it with a compare-and-swap to READY (release).
 * The consumer reads from `tail` in order and takes a slot only when its
 * state is READY for exactly the sequence it expects (acquire), so it never
 * sees half a record. A slot that stays WRITING or unclaimed is torn: when
 * its writer's pid no longer exists, or it has waited AGW_RING_STALL_MS, the
 * consumer marks it ABANDONED (compare-and-swap, so the writer's publish then
 * fails) and moves on; a writer that finds its slot abandoned appends again
 * into a new slot, so only a writer that died loses its record. The consumer
 * therefore never waits more than AGW_RING_STALL_MS for one slot.
 * (One case is not guarded: a writer frozen for more than AGW_RING_STALL_MS in
 * the middle of its copy, whose slot the ring reuses a whole lap later before
 * it wakes, would scribble over that newer record. It needs a process stopped
 * for seconds inside a 500-byte memcpy.)
 *
 * The consumer advances `tail` (agw_ring_consume) only after what it read is
 * safely stored; slots before `tail` are free for the next lap.
 *
 * Where it lives, and durability: the ring's file is either
 *  - on a memory file system (tmpfs, such as /dev/shm), with an image file on
 *    the disk: agw_ring_sync copies the header and the records the caller
 *    names into the image, at the same offsets, and waits for the disk
 *    (fdatasync). Nothing else of the ring ever reaches the disk, so
 *    appending costs no page faults for the kernel's writeback (on a disk
 *    file every write-back leaves each page write-protected, and every
 *    process then takes a fault on its next record in each page). After a
 *    reboot the memory file is gone and a new ring starts; what the image
 *    holds is read back with agw_ring_open_image. agw_ring_sync overwrites
 *    the image: the consumer reads it before its first sync;
 *  - or on the disk itself (no image): its pages reach the disk when the
 *    kernel writes them back, or, for the header and the records the caller
 *    names, at agw_ring_sync (msync).
 * After a reboot (the header's boot id differs) the first attacher of a ring
 * still there marks every slot between tail and head that is not READY as
 * abandoned, since the processes that were writing them are gone.
 *
 * Attachment: every process holds a shared flock on the ring's file while
 * it has it attached. The last one to detach a ring that has an image
 * removes the file when the ring is empty, so a stopped pool leaves no
 * memory behind; a non-empty ring, or a pool that was killed, leaves it for
 * the next start. Since the file may be in a directory other users can
 * write, it must be a private (mode 0600) regular file of the effective user.
 *
 * Layout (offsets in bytes):
 *      0  header (agw_ring_header), its own 4 KiB
 *   4096  slots: `slots` of AGW_RING_SLOT_BYTES
 * The file is allocated in full at creation (posix_fallocate): a write into
 * the mapping can never meet a full disk, which would be a SIGBUS.
 */
#ifndef AGW_RING_H
#define AGW_RING_H

#include "core/core.h"

#include <stdatomic.h>

#define AGW_RING_MAGIC UINT64_C(0x31474e5257474121) /* "!AGWRNG1" little-endian */
#define AGW_RING_VERSION 1u
#define AGW_RING_HEADER_BYTES 4096u
#define AGW_RING_SLOT_BYTES 512u
#define AGW_RING_PAYLOAD_MAX (AGW_RING_SLOT_BYTES - 32u)
#define AGW_RING_MIN_SLOTS 16u
#define AGW_RING_MAX_SLOTS (1u << 22)
/* How long the consumer waits for a slot whose writer is alive. */
#define AGW_RING_STALL_MS 2000u
/* Counters the owner of the ring keeps in its header (agw_ring_counter). */
#define AGW_RING_COUNTERS 16u

typedef struct agw_ring agw_ring;

/* Maps the ring at `path`, creating it with `slots` slots (a power of two,
 * AGW_RING_MIN_SLOTS..AGW_RING_MAX_SLOTS) when absent. `image`: the disk
 * file agw_ring_sync writes, or NULL to sync `path` itself (see "Where it
 * lives"). A file with another slot count or layout, or not private to this
 * user, is refused (AGW_EINVAL) with `err` saying so; AGW_EIO for system
 * errors (a disk too full to allocate the file included). */
AGW_WARN_UNUSED agw_err agw_ring_attach(const char *path, const char *image, uint32_t layout,
                                        uint32_t slots, agw_ring **out, char *err,
                                        size_t errlen);
/* Maps an image agw_ring_sync wrote, of any slot count, for its consumer to
 * read with agw_ring_read and agw_ring_consume like a ring (never append to
 * it); or a ring's own file, which its producers may still be appending to
 * (a producer whose slot this abandons appends again). Slots of its window
 * that are not READY (not synced, or being written) are abandoned at once;
 * *unsynced gets how many. Detaching it writes its header, with the tail
 * consumed, to the disk. AGW_ENOTFOUND when there is no such file, it was
 * never written, or it holds no record (a header read, nothing mapped);
 * AGW_EINVAL when it holds another layout; AGW_EIO for system errors. */
AGW_WARN_UNUSED agw_err agw_ring_open_image(const char *path, uint32_t layout, agw_ring **out,
                                            uint64_t *unsynced, char *err, size_t errlen);
/* Unmaps (see "Attachment" for the removal of an empty ring). NULL is fine.
 * A handle belongs to the process that attached it (it carries its pid and
 * its lock): a child of fork() attaches its own. */
void agw_ring_detach(agw_ring *r);

/* 1 when the file of a ring with an image has lost its name (removed by
 * hand, or by systemd-logind's RemoveIPC, which removes a user's files in
 * /dev/shm when their last login session ends) while this process has it
 * attached: processes that attach from now on get a new ring. 0 otherwise. */
int agw_ring_removed(const agw_ring *r);
/* 1 when no other process has the ring attached; this one then holds it
 * alone until it detaches (nobody else can attach a removed ring). */
int agw_ring_sole_user(agw_ring *r);

/* ---- producers (any thread of any process) ---- */

/* Appends `len` bytes (1..AGW_RING_PAYLOAD_MAX). AGW_OK once the record is
 * visible to the consumer; AGW_ETOOBIG when the ring is full (nothing
 * written); AGW_EINVAL for a bad length. */
AGW_WARN_UNUSED agw_err agw_ring_append(agw_ring *r, const void *rec, size_t len);

/* The sequence the next append will take. */
uint64_t agw_ring_head(const agw_ring *r);
/* Records appended and not yet consumed, and the slot count. */
uint64_t agw_ring_used(const agw_ring *r);
uint64_t agw_ring_capacity(const agw_ring *r);

/* Counter i (< AGW_RING_COUNTERS) in the header, shared by every process;
 * what each one means is the owner's business. */
_Atomic uint64_t *agw_ring_counter(agw_ring *r, unsigned i);

/* ---- the consumer (one at a time: the caller elects it) ---- */

typedef struct {
    uint64_t seq;                       /* the record's sequence number */
    uint32_t len;
    unsigned char data[AGW_RING_PAYLOAD_MAX];
} agw_ring_entry;

/* Copies up to `max` READY records from the current tail on into `out`,
 * skipping abandoned slots (and abandoning torn ones, see above). Stops at
 * the first slot still being written. *next gets the sequence after the last
 * slot it went past: pass it to agw_ring_consume once the records are stored.
 * *torn gets how many slots it abandoned now. Returns how many it copied. */
size_t agw_ring_read(agw_ring *r, agw_ring_entry *out, size_t max, uint64_t *next,
                     uint64_t *torn);
/* Frees every slot before `next` (a value agw_ring_read gave). */
void agw_ring_consume(agw_ring *r, uint64_t next);
/* Writes the slots of the records not yet consumed whose sequence is below
 * `before`, and the header, to the disk (the image, or the ring's own file)
 * and waits; writes nothing when there is no such record. agw_ring_head(r)
 * as `before` takes every record appended so far. */
agw_err agw_ring_sync(agw_ring *r, uint64_t before);

#endif
