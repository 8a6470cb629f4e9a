/* Unit tests for lib/state/ring: records come out in order, whole, through
 * many laps of the slots; a full ring refuses; a slot left half-written (its
 * writer dead, or stalled past AGW_RING_STALL_MS, or reserved and never
 * claimed) is skipped without stalling the reader for ever, and a stalled
 * writer whose slot was given up writes its record again; producers in
 * several processes lose and duplicate nothing; another layout or size is
 * refused; a reboot abandons what was being written; a sync covers the
 * waiting records it is asked for, wrapped round or not; a ring with an
 * image syncs into the image, which reads back as a ring; the last process
 * to detach an empty ring with an image removes its file, and a file that is
 * not private to the user is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* The module itself, so the tests can tear slots the way a crash would. */
#include "state/ring.c"

typedef struct {
    char dir[64];
    char path[128];
    char image[128];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    strcpy(f->dir, "/tmp/agw-ring-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/u.db.usage", f->dir);
    snprintf(f->image, sizeof f->image, "%s/u.db.image", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    unlink(f->path);
    unlink(f->image);
    rmdir(f->dir);
    free(f);
    return 0;
}

static agw_ring *attach(fixture *f, uint32_t layout, uint32_t slots)
{
    agw_ring *r = NULL;
    char err[256];
    if (agw_ring_attach(f->path, NULL, layout, slots, &r, err, sizeof err) != AGW_OK)
        fail_msg("attach: %s", err);
    return r;
}

typedef struct {
    uint32_t producer;
    uint32_t n;
    char text[40];
} rec;

static rec make(uint32_t producer, uint32_t n)
{
    rec x;
    memset(&x, 0, sizeof x);
    x.producer = producer;
    x.n = n;
    snprintf(x.text, sizeof x.text, "record %u of %u", n, producer);
    return x;
}

static size_t read_all(agw_ring *r, agw_ring_entry *e, size_t max, uint64_t *torn)
{
    uint64_t next;
    size_t n = agw_ring_read(r, e, max, &next, torn);
    agw_ring_consume(r, next);
    return n;
}

static void test_laps_and_full(void **state)
{
    fixture *f = *state;
    agw_ring *r = attach(f, 7, 16);
    assert_int_equal(agw_ring_capacity(r), 16);
    agw_ring_entry *e = calloc(16, sizeof *e);
    uint64_t torn, first = 0;
    uint32_t expect = 0;
    /* 10 laps: 15 bursts of 5, 11 and 16 records. */
    uint32_t i = 0;
    for (int round = 0; round < 15; round++) {
        uint32_t burst = round % 3 == 0 ? 5 : round % 3 == 1 ? 11 : 16;
        for (uint32_t k = 0; k < burst; k++, i++) {
            rec x = make(1, i);
            assert_int_equal(agw_ring_append(r, &x, sizeof x), AGW_OK);
        }
        if (burst == 16) {
            rec x = make(1, 999);
            assert_int_equal(agw_ring_append(r, &x, sizeof x), AGW_ETOOBIG); /* full */
        }
        assert_int_equal(agw_ring_used(r), burst);
        size_t n = read_all(r, e, 16, &torn);
        assert_int_equal(n, burst);
        assert_int_equal(torn, 0);
        for (size_t k = 0; k < n; k++, expect++) {
            rec got;
            assert_int_equal(e[k].len, sizeof got);
            memcpy(&got, e[k].data, sizeof got);
            assert_int_equal(got.n, expect);
            rec want = make(1, expect);
            assert_memory_equal(&got, &want, sizeof got);
            if (!first)
                first = e[k].seq;
            assert_int_equal(e[k].seq, first + expect); /* consecutive sequences */
        }
        assert_int_equal(agw_ring_used(r), 0);
    }
    assert_int_equal(expect, 160);
    /* Sequences start at the creation's wall clock in microseconds. */
    assert_true(first > (uint64_t)agw_wall_s() * 1000000u - 600000000u);
    char big[AGW_RING_PAYLOAD_MAX + 1] = { 0 };
    assert_int_equal(agw_ring_append(r, big, sizeof big), AGW_EINVAL);
    assert_int_equal(agw_ring_append(r, big, 0), AGW_EINVAL);
    assert_int_equal(agw_ring_append(r, big, AGW_RING_PAYLOAD_MAX), AGW_OK);
    free(e);
    agw_ring_detach(r);
}

/* agw_ring_sync writes the header and the slots of the waiting records it
 * is asked for, the part that wraps round included, and nothing else. */
static void test_sync_ranges(void **state)
{
    fixture *f = *state;
    agw_ring *r = attach(f, 7, 16);
    const size_t H = AGW_RING_HEADER_BYTES, S = AGW_RING_SLOT_BYTES;
    byte_range b[2] = { { 0, 0 }, { 0, 0 } };
    uint64_t base = 1000 * 16; /* a multiple of 16: slot 0 */
    assert_int_equal(slot_ranges(r, base + 3, base + 3, b), 0); /* empty */
    assert_int_equal(slot_ranges(r, base + 3, base + 2, b), 0);
    assert_int_equal(slot_ranges(r, base + 3, base + 7, b), 1);
    assert_int_equal(b[0].offset, H + 3 * S);
    assert_int_equal(b[0].length, 4 * S);
    assert_int_equal(slot_ranges(r, base + 10, base + 16, b), 1); /* up to the last slot */
    assert_int_equal(b[0].offset, H + 10 * S);
    assert_int_equal(b[0].length, 6 * S);
    assert_int_equal(slot_ranges(r, base + 10, base + 20, b), 2); /* 10..15, then 0..3 */
    assert_int_equal(b[0].offset, H + 10 * S);
    assert_int_equal(b[0].length, 6 * S);
    assert_int_equal(b[1].offset, H);
    assert_int_equal(b[1].length, 4 * S);
    assert_int_equal(slot_ranges(r, base + 5, base + 21, b), 2); /* full: one lap */
    assert_int_equal(b[0].length + b[1].length, 16 * S);
    assert_int_equal(b[1].offset, H);
    assert_int_equal(b[1].length, 5 * S);
    assert_int_equal(slot_ranges(r, base + 5, base + 40, b), 2); /* never more than a lap */
    assert_int_equal(b[0].length + b[1].length, 16 * S);

    /* A real ring whose records wrap round: the two msyncs take page-aligned
     * starts (slot 10 is not at a page boundary). */
    agw_ring_entry *e = calloc(16, sizeof *e);
    uint64_t torn;
    for (uint32_t i = 0; i < 10; i++) {
        rec x = make(2, i);
        assert_int_equal(agw_ring_append(r, &x, sizeof x), AGW_OK);
    }
    assert_int_equal(read_all(r, e, 16, &torn), 10);
    for (uint32_t i = 10; i < 20; i++) {
        rec x = make(2, i);
        assert_int_equal(agw_ring_append(r, &x, sizeof x), AGW_OK);
    }
    uint64_t head = agw_ring_head(r);
    assert_int_equal(head - agw_ring_used(r), atomic_load(&hdr(r)->tail));
    assert_int_equal(agw_ring_sync(r, head - 5), AGW_OK); /* the five youngest left out */
    assert_int_equal(agw_ring_sync(r, head), AGW_OK);
    assert_int_equal(agw_ring_sync(r, head + 100), AGW_OK); /* never past head */
    assert_int_equal(read_all(r, e, 16, &torn), 10);
    assert_int_equal(agw_ring_sync(r, head), AGW_OK); /* none waiting: nothing written */
    free(e);
    agw_ring_detach(r);
}

/* Reserves the next sequence as a producer's first step would, and returns
 * its slot, as a producer killed right after would leave it. */
static ring_slot *reserve(agw_ring *r, uint64_t *seq)
{
    *seq = atomic_fetch_add(&hdr(r)->head, 1);
    return slot_of(r, *seq);
}

static pid_t dead_pid(void)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    waitpid(pid, NULL, 0);
    return pid;
}

static void test_torn_slots(void **state)
{
    fixture *f = *state;
    agw_ring *r = attach(f, 7, 16);
    agw_ring_entry *e = calloc(16, sizeof *e);
    uint64_t torn, seq;
    rec a = make(2, 1), b = make(2, 2), c = make(2, 3);

    /* A writer killed mid-copy: its pid is gone, the slot is skipped at once. */
    assert_int_equal(agw_ring_append(r, &a, sizeof a), AGW_OK);
    ring_slot *s = reserve(r, &seq);
    atomic_store(&s->pid, (uint32_t)dead_pid());
    atomic_store(&s->claimed_ns, agw_shm_now_ns());
    atomic_store(&s->state, word(seq, PHASE_WRITING));
    memset(s->data, 0xee, 10);
    assert_int_equal(agw_ring_append(r, &b, sizeof b), AGW_OK);
    assert_int_equal(read_all(r, e, 16, &torn), 2);
    assert_int_equal(torn, 1);
    assert_memory_equal(e[0].data, &a, sizeof a);
    assert_memory_equal(e[1].data, &b, sizeof b);

    /* A live writer in the middle of its copy: the reader waits for it... */
    s = reserve(r, &seq);
    atomic_store(&s->pid, (uint32_t)getpid());
    atomic_store(&s->claimed_ns, agw_shm_now_ns());
    atomic_store(&s->state, word(seq, PHASE_WRITING));
    assert_int_equal(agw_ring_append(r, &c, sizeof c), AGW_OK);
    assert_int_equal(read_all(r, e, 16, &torn), 0);
    assert_int_equal(torn, 0);
    assert_int_equal(agw_ring_used(r), 2);
    /* ... and gives it up after AGW_RING_STALL_MS; its publish then fails. */
    atomic_store(&s->claimed_ns, agw_shm_now_ns() - (AGW_RING_STALL_MS + 1) * 1000000ull);
    assert_int_equal(read_all(r, e, 16, &torn), 1);
    assert_int_equal(torn, 1);
    assert_memory_equal(e[0].data, &c, sizeof c);
    uint64_t writing = word(seq, PHASE_WRITING);
    assert_false(atomic_compare_exchange_strong(&s->state, &writing, word(seq, PHASE_READY)));

    /* Reserved and never claimed (killed between the two steps): only time
     * tells, so the reader waits AGW_RING_STALL_MS from when it first saw it. */
    s = reserve(r, &seq);
    assert_int_equal(agw_ring_append(r, &a, sizeof a), AGW_OK);
    assert_int_equal(read_all(r, e, 16, &torn), 0);
    atomic_store(&hdr(r)->stall_since_ns,
                 agw_shm_now_ns() - (AGW_RING_STALL_MS + 1) * 1000000ull);
    assert_int_equal(read_all(r, e, 16, &torn), 1);
    assert_int_equal(torn, 1);
    assert_memory_equal(e[0].data, &a, sizeof a);
    /* A writer that reserved it and wakes now finds it abandoned. */
    uint64_t old = atomic_load(&s->state);
    assert_true(old >> 2 >= seq);
    assert_int_equal(agw_ring_used(r), 0);
    free(e);
    agw_ring_detach(r);
}

enum { PRODUCERS = 4, PER_PRODUCER = 5000 };

/* Producers in four processes and a reader in this one, through a ring much
 * smaller than what passes: every record arrives once, each producer's in
 * its order. */
static void test_producers_in_several_processes(void **state)
{
    fixture *f = *state;
    agw_ring *r = attach(f, 7, 256);
    pid_t kids[PRODUCERS];
    for (uint32_t p = 0; p < PRODUCERS; p++) {
        kids[p] = fork();
        assert_true(kids[p] >= 0);
        if (kids[p] == 0) {
            agw_ring *mine = NULL;
            char err[256];
            if (agw_ring_attach(f->path, NULL, 7, 256, &mine, err, sizeof err) != AGW_OK)
                _exit(2);
            for (uint32_t i = 0; i < PER_PRODUCER; i++) {
                rec x = make(p, i);
                agw_err e;
                while ((e = agw_ring_append(mine, &x, sizeof x)) == AGW_ETOOBIG)
                    sched_yield();
                if (e != AGW_OK)
                    _exit(3);
            }
            agw_ring_detach(mine);
            _exit(0);
        }
    }
    uint32_t next_of[PRODUCERS] = { 0 };
    agw_ring_entry *e = calloc(64, sizeof *e);
    uint64_t last_seq = 0, torn;
    size_t total = 0;
    uint64_t t0 = agw_mono_ms();
    while (total < PRODUCERS * PER_PRODUCER) {
        assert_true(agw_mono_ms() - t0 < 60000);
        size_t n = read_all(r, e, 64, &torn);
        assert_int_equal(torn, 0);
        for (size_t k = 0; k < n; k++) {
            rec got;
            memcpy(&got, e[k].data, sizeof got);
            assert_true(got.producer < PRODUCERS);
            assert_int_equal(got.n, next_of[got.producer]);
            rec want = make(got.producer, got.n);
            assert_memory_equal(&got, &want, sizeof got);
            next_of[got.producer]++;
            assert_true(e[k].seq > last_seq);
            last_seq = e[k].seq;
        }
        total += n;
        if (!n)
            sched_yield();
    }
    for (int p = 0; p < PRODUCERS; p++) {
        int st;
        assert_int_equal(waitpid(kids[p], &st, 0), kids[p]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        assert_int_equal(next_of[p], PER_PRODUCER);
    }
    assert_int_equal(agw_ring_used(r), 0);
    free(e);
    agw_ring_detach(r);
}

static void test_other_layout_refused_and_reboot(void **state)
{
    fixture *f = *state;
    agw_ring *r = attach(f, 7, 16);
    agw_ring *other = (agw_ring *)1;
    char err[256] = "";
    assert_int_equal(agw_ring_attach(f->path, NULL, 8, 16, &other, err, sizeof err), AGW_EINVAL);
    assert_null(other);
    assert_non_null(strstr(err, "remove the file"));
    assert_int_equal(agw_ring_attach(f->path, NULL, 7, 32, &other, err, sizeof err), AGW_EINVAL);
    assert_int_equal(agw_ring_attach(f->path, NULL, 7, 24, &other, err, sizeof err), AGW_EINVAL);

    /* One record complete, one being written when the machine went down. */
    rec a = make(3, 1);
    assert_int_equal(agw_ring_append(r, &a, sizeof a), AGW_OK);
    uint64_t seq;
    ring_slot *s = reserve(r, &seq);
    atomic_store(&s->pid, (uint32_t)getpid()); /* a pid that is alive after the reboot */
    atomic_store(&s->claimed_ns, agw_shm_now_ns());
    atomic_store(&s->state, word(seq, PHASE_WRITING));
    memcpy(hdr(r)->boot_id, "an-earlier-boot", 16);
    agw_ring_detach(r);
    r = attach(f, 7, 16);
    agw_ring_entry e[4];
    uint64_t torn;
    assert_int_equal(read_all(r, e, 4, &torn), 1); /* no wait for the dead boot's writer */
    assert_memory_equal(e[0].data, &a, sizeof a);
    assert_int_equal(agw_ring_used(r), 0);
    agw_ring_detach(r);
}

static agw_ring *attach_imaged(fixture *f, uint32_t slots)
{
    agw_ring *r = NULL;
    char err[256];
    if (agw_ring_attach(f->path, f->image, 7, slots, &r, err, sizeof err) != AGW_OK)
        fail_msg("attach: %s", err);
    return r;
}

/* With an image, a sync writes the waiting records it is asked for and the
 * header into the image, not the ring's file; the image reads back as a
 * ring holding exactly those records, and once read (its header written at
 * detach) it holds none. */
static void test_image_sync_and_read_back(void **state)
{
    fixture *f = *state;
    agw_ring *r = attach_imaged(f, 16);
    agw_ring *img = NULL;
    uint64_t unsynced = 99;
    char err[256] = "";
    assert_int_equal(agw_ring_open_image(f->image, 7, &img, &unsynced, err, sizeof err),
                     AGW_ENOTFOUND); /* no image yet */
    agw_ring_entry *e = calloc(16, sizeof *e);
    uint64_t torn;
    for (uint32_t i = 0; i < 14; i++) { /* 14 records, the last 4 wrap round */
        rec x = make(4, i);
        assert_int_equal(agw_ring_append(r, &x, sizeof x), AGW_OK);
    }
    assert_int_equal(read_all(r, e, 4, &torn), 4); /* 0..3 stored */
    for (uint32_t i = 14; i < 20; i++) {
        rec x = make(4, i);
        assert_int_equal(agw_ring_append(r, &x, sizeof x), AGW_OK);
    }
    uint64_t head = agw_ring_head(r);
    assert_int_equal(agw_ring_sync(r, head - 3), AGW_OK); /* 4..16; 17..19 too young */
    struct stat st;
    assert_int_equal(stat(f->image, &st), 0);
    assert_int_equal((size_t)st.st_size, AGW_RING_HEADER_BYTES + 16 * AGW_RING_SLOT_BYTES);

    /* Attached as a ring, the image counts as one from another boot: its
     * unsynced slots are skipped at once. */
    char copy[160];
    snprintf(copy, sizeof copy, "%s/copy", f->dir);
    FILE *in = fopen(f->image, "rb"), *out = fopen(copy, "wb");
    char block[4096];
    size_t got;
    while ((got = fread(block, 1, sizeof block, in)) > 0)
        assert_int_equal(fwrite(block, 1, got, out), got);
    fclose(in);
    fclose(out);
    assert_int_equal(chmod(copy, 0600), 0);
    agw_ring *as_ring = NULL;
    assert_int_equal(agw_ring_attach(copy, NULL, 7, 16, &as_ring, err, sizeof err), AGW_OK);
    assert_int_equal(read_all(as_ring, e, 16, &torn), 13);
    assert_int_equal(agw_ring_used(as_ring), 0);
    agw_ring_detach(as_ring);
    unlink(copy);

    /* Another layout is refused. */
    assert_int_equal(agw_ring_open_image(f->image, 8, &img, &unsynced, err, sizeof err),
                     AGW_EINVAL);
    assert_null(img);
    assert_int_equal(agw_ring_open_image(f->image, 7, &img, &unsynced, err, sizeof err), AGW_OK);
    assert_int_equal(unsynced, 3);
    uint64_t next;
    size_t n = agw_ring_read(img, e, 16, &next, &torn);
    assert_int_equal(n, 13);
    for (uint32_t i = 0; i < 13; i++) {
        rec want = make(4, 4 + i);
        assert_int_equal(e[i].seq, head - 16 + i);
        assert_memory_equal(e[i].data, &want, sizeof want);
    }
    agw_ring_consume(img, next);
    agw_ring_detach(img);
    assert_int_equal(agw_ring_open_image(f->image, 7, &img, &unsynced, err, sizeof err),
                     AGW_ENOTFOUND); /* read already: nothing in it */
    assert_null(img);

    /* The ring itself is untouched by all this: its 16 records are there. */
    assert_int_equal(read_all(r, e, 16, &torn), 16);
    free(e);
    agw_ring_detach(r);
}

/* The last process to detach an empty ring that has an image removes the
 * ring's file; one with records waiting, or without an image, stays. Two
 * attachments of one process hold two locks, as two processes would. */
static void test_last_detach_removes_an_empty_ring(void **state)
{
    fixture *f = *state;
    agw_ring *a = attach_imaged(f, 16), *b = attach_imaged(f, 16);
    rec x = make(5, 1);
    assert_int_equal(agw_ring_append(a, &x, sizeof x), AGW_OK);
    agw_ring_detach(a);
    agw_ring_detach(b); /* the last one, but a record waits */
    assert_int_equal(access(f->path, F_OK), 0);
    a = attach_imaged(f, 16);
    b = attach_imaged(f, 16);
    agw_ring_entry e[4];
    uint64_t torn;
    assert_int_equal(read_all(a, e, 4, &torn), 1);
    assert_memory_equal(e[0].data, &x, sizeof x);
    agw_ring_detach(a);
    assert_int_equal(access(f->path, F_OK), 0); /* b still has it */
    agw_ring_detach(b);
    assert_int_equal(access(f->path, F_OK), -1);

    /* A new attachment creates the ring again, with higher sequences. */
    a = attach_imaged(f, 16);
    assert_true(agw_ring_head(a) > e[0].seq);
    agw_ring_detach(a);

    /* Without an image the file is the only copy: it stays. */
    agw_ring *plain = attach(f, 7, 16);
    agw_ring_detach(plain);
    assert_int_equal(access(f->path, F_OK), 0);
}

static void test_file_of_others_refused(void **state)
{
    fixture *f = *state;
    agw_ring *r = attach(f, 7, 16);
    agw_ring_detach(r);
    assert_int_equal(chmod(f->path, 0644), 0);
    char err[256] = "";
    assert_int_equal(agw_ring_attach(f->path, NULL, 7, 16, &r, err, sizeof err), AGW_EINVAL);
    assert_null(r);
    assert_non_null(strstr(err, "not a private file"));
    assert_int_equal(chmod(f->path, 0600), 0);
    assert_int_equal(symlink(f->path, f->image), 0); /* a link is never followed */
    assert_int_equal(agw_ring_attach(f->image, NULL, 7, 16, &r, err, sizeof err), AGW_EIO);
    assert_null(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_laps_and_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_ranges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_producers_in_several_processes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_layout_refused_and_reboot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_image_sync_and_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_detach_removes_an_empty_ring, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_of_others_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
