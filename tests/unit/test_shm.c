/* Unit tests for lib/shm: creation and attach, refusal of other layouts,
 * the generation counter across mappings and processes, the limiter table's
 * claiming (exactly one slot per key, even when processes race), its
 * overflow policy, and recovery of the claim mutex from a dead owner. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* The module itself, so the tests reach its file-local functions. */
#include "state/shm.c"

typedef struct {
    char dir[64];
    char path[128];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    strcpy(f->dir, "/tmp/agw-shm-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/antigw.db.state", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static agw_shm *attach_ok(const char *path)
{
    agw_shm *s = NULL;
    char err[512] = "";
    agw_err e = agw_shm_attach(path, &s, err, sizeof err);
    if (e != AGW_OK)
        fail_msg("attach %s: %d %s", path, (int)e, err);
    return s;
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* Patches `n` bytes at `off` of the file (what a different build would have written). */
static void poke(const char *path, off_t off, const void *p, size_t n)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, p, n, off), (ssize_t)n);
    close(fd);
}

/* ---- tests ---- */

static void test_path_for_db(void **state)
{
    (void)state;
    char *p = agw_shm_path_for_db("/var/lib/antigw/antigw.db");
    assert_string_equal(p, "/var/lib/antigw/antigw.db.state");
    free(p);
}

static void test_create_and_attach(void **state)
{
    fixture *f = *state;
    agw_shm *a = attach_ok(f->path);
    agw_shm_header *h = hdr(a);
    assert_true(atomic_load(&h->magic) == AGW_SHM_MAGIC);
    assert_int_equal(h->layout_version, AGW_SHM_LAYOUT_VERSION);
    assert_int_equal(h->header_bytes, sizeof *h);
    assert_int_equal((uint64_t)file_size(f->path), h->total_bytes);
    assert_int_equal(h->limiter_slots, AGW_SHM_LIMIT_SLOTS);
    assert_int_equal(h->reserved_bytes, AGW_SHM_RESERVED_BYTES);
    assert_int_equal(h->reserved_off + h->reserved_bytes, h->total_bytes);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* The reserved region is zeroed and writable. */
    size_t len;
    unsigned char *res = agw_shm_reserved(a, &len);
    assert_int_equal(len, AGW_SHM_RESERVED_BYTES);
    assert_int_equal(res[0] | res[len - 1], 0);

    /* A second mapping is the same memory. */
    agw_shm *b = attach_ok(f->path);
    assert_int_equal(agw_shm_generation(a), 0);
    assert_int_equal(agw_shm_generation_bump(a), 1);
    assert_int_equal(agw_shm_generation(b), 1);
    agw_shm_count_rate_limit_hit(b);
    assert_int_equal(agw_shm_rate_limit_hits(a), 1);
    agw_shm_detach(b);
    agw_shm_detach(a);
    /* It persists: attaching again keeps the counters. */
    a = attach_ok(f->path);
    assert_int_equal(agw_shm_generation(a), 1);
    agw_shm_detach(a);
    agw_shm_detach(NULL);
}

static void test_generation_across_processes(void **state)
{
    fixture *f = *state;
    agw_shm *s = attach_ok(f->path);
    enum { KIDS = 4, BUMPS = 1000 };
    pid_t kids[KIDS];
    for (int i = 0; i < KIDS; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            /* A child maps the file itself, as an exec'd pool member would. */
            agw_shm *c = NULL;
            char err[256];
            if (agw_shm_attach(f->path, &c, err, sizeof err) != AGW_OK)
                _exit(2);
            for (int j = 0; j < BUMPS; j++)
                agw_shm_generation_bump(c);
            _exit(0);
        }
    }
    for (int i = 0; i < KIDS; i++) {
        int st;
        assert_int_equal(waitpid(kids[i], &st, 0), kids[i]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    assert_int_equal(agw_shm_generation(s), KIDS * BUMPS);
    agw_shm_detach(s);
}

static void expect_refusal(const char *path, const char *words)
{
    agw_shm *s = (agw_shm *)1;
    char err[512] = "";
    assert_int_equal(agw_shm_attach(path, &s, err, sizeof err), AGW_EINVAL);
    assert_null(s);
    if (!strstr(err, words))
        fail_msg("message %s lacks %s", err, words);
}

static void test_other_layouts_are_refused(void **state)
{
    fixture *f = *state;
    agw_shm *s = attach_ok(f->path);
    agw_shm_detach(s);
    uint32_t v = AGW_SHM_LAYOUT_VERSION + 1;
    poke(f->path, offsetof(agw_shm_header, layout_version), &v, sizeof v);
    char words[64];
    snprintf(words, sizeof words, "layout version is %u", AGW_SHM_LAYOUT_VERSION + 1);
    expect_refusal(f->path, words);
    v = AGW_SHM_LAYOUT_VERSION;
    poke(f->path, offsetof(agw_shm_header, layout_version), &v, sizeof v);
    agw_shm_detach(attach_ok(f->path)); /* put back: attaches again */

    uint32_t m = 41; /* a build with another pthread_mutex_t */
    poke(f->path, offsetof(agw_shm_header, mutex_bytes), &m, sizeof m);
    expect_refusal(f->path, "mutex size");
    m = sizeof(pthread_mutex_t);
    poke(f->path, offsetof(agw_shm_header, mutex_bytes), &m, sizeof m);

    uint64_t slots = AGW_SHM_LIMIT_SLOTS / 2;
    poke(f->path, offsetof(agw_shm_header, limiter_slots), &slots, sizeof slots);
    expect_refusal(f->path, "limiter slot count");
    slots = AGW_SHM_LIMIT_SLOTS;
    poke(f->path, offsetof(agw_shm_header, limiter_slots), &slots, sizeof slots);

    uint64_t magic = 0x6b6e756a6b6e756aULL;
    poke(f->path, 0, &magic, sizeof magic);
    expect_refusal(f->path, "bad magic");

    /* A file of another size is refused before it is even mapped. */
    assert_int_equal(truncate(f->path, 4096), 0);
    expect_refusal(f->path, "bytes");
    assert_int_equal(file_size(f->path), 4096);
}

static void test_half_initialised_file_is_redone(void **state)
{
    fixture *f = *state;
    agw_shm *s = attach_ok(f->path);
    off_t size = file_size(f->path);
    agw_shm_detach(s);
    /* A creator that died after sizing the file, before the magic. */
    unlink(f->path);
    int fd = open(f->path, O_RDWR | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, size), 0);
    close(fd);
    s = attach_ok(f->path);
    assert_int_equal(hdr(s)->layout_version, AGW_SHM_LAYOUT_VERSION);
    agw_shm_limit_slot *slot;
    assert_int_equal(agw_shm_slot_pin(s, 5, 1, &slot), AGW_OK);
    agw_shm_slot_unpin(slot);
    agw_shm_detach(s);
}

static void test_another_boot_clears_the_limiter_and_lb(void **state)
{
    fixture *f = *state;
    if (access("/proc/sys/kernel/random/boot_id", R_OK) != 0)
        skip(); /* no boot id to compare: the check is off */
    agw_shm *s = attach_ok(f->path);
    agw_shm_limit_slot *slot;
    assert_int_equal(agw_shm_slot_pin(s, 9, 1, &slot), AGW_OK);
    atomic_store(&slot->tat[0], UINT64_C(1) << 62); /* a time of the old boot */
    agw_shm_slot_unpin(slot);
    agw_shm_generation_bump(s);
    /* the reserved region: boot-scoped bytes (the load balancer's), then
     * the metrics' counters */
    size_t len;
    unsigned char *res = agw_shm_reserved(s, &len);
    memset(res, 0xab, AGW_SHM_BOOT_SCOPED_BYTES + 8);
    agw_shm_detach(s);
    char other[40] = "00000000-0000-0000-0000-000000000000";
    poke(f->path, offsetof(agw_shm_header, boot_id), other, sizeof other);
    s = attach_ok(f->path);
    assert_string_not_equal(hdr(s)->boot_id, other);
    assert_int_equal(agw_shm_generation(s), 1); /* kept */
    for (size_t i = 0; i < AGW_SHM_LIMIT_SLOTS; i++)
        assert_true(atomic_load(&slots(s)[i].owner) == 0);
    res = agw_shm_reserved(s, &len);
    for (size_t i = 0; i < AGW_SHM_BOOT_SCOPED_BYTES; i++)
        assert_int_equal(res[i], 0);
    assert_int_equal(res[AGW_SHM_BOOT_SCOPED_BYTES], 0xab); /* past them: kept */
    agw_shm_detach(s);
}

static void test_one_slot_per_key(void **state)
{
    fixture *f = *state;
    agw_shm *s = attach_ok(f->path);
    agw_shm_limit_slot *a, *b, *c;
    assert_int_equal(agw_shm_slot_pin(s, 42, 1, &a), AGW_OK);
    assert_int_equal(agw_shm_slot_pin(s, 42, 1, &b), AGW_OK);
    assert_ptr_equal(a, b);
    assert_int_equal(owner_key(atomic_load(&a->owner)), 42);
    assert_true((atomic_load(&a->owner) & AGW_SHM_MAX_PINS) == 2);
    assert_int_equal(agw_shm_slot_pin(s, 43, 1, &c), AGW_OK);
    assert_ptr_not_equal(a, c);
    agw_shm_slot_unpin(a);
    agw_shm_slot_unpin(b);
    agw_shm_slot_unpin(c);
    assert_true((atomic_load(&a->owner) & AGW_SHM_MAX_PINS) == 0);
    assert_int_equal(owner_key(atomic_load(&a->owner)), 42); /* slots keep their key */
    agw_shm_slot_unpin(NULL);
    assert_int_equal(agw_shm_slot_pin(s, 0, 1, &a), AGW_EINVAL);
    assert_int_equal(agw_shm_slot_pin(s, AGW_SHM_MAX_KEY_ID + 1, 1, &a), AGW_EINVAL);
    agw_shm_detach(s);
}

/* Processes and threads race to claim the same keys: each key ends in one slot. */
typedef struct {
    const char *path;
    pthread_barrier_t *barrier;
} racer;

static void *claim_thread(void *arg)
{
    racer *r = arg;
    agw_shm *s = NULL;
    char err[256];
    if (agw_shm_attach(r->path, &s, err, sizeof err) != AGW_OK)
        return (void *)1;
    pthread_barrier_wait(r->barrier);
    for (uint64_t k = 1; k <= 300; k++) {
        agw_shm_limit_slot *slot;
        if (agw_shm_slot_pin(s, k, 1, &slot) != AGW_OK)
            return (void *)1;
        agw_shm_slot_unpin(slot);
    }
    agw_shm_detach(s);
    return NULL;
}

static void test_racing_claims(void **state)
{
    fixture *f = *state;
    agw_shm *s = attach_ok(f->path);
    enum { KIDS = 3, THREADS = 4 };
    pid_t kids[KIDS];
    for (int i = 0; i < KIDS; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            pthread_barrier_t barrier;
            pthread_barrier_init(&barrier, NULL, THREADS);
            racer r = { f->path, &barrier };
            pthread_t t[THREADS];
            int bad = 0;
            for (int j = 0; j < THREADS; j++)
                pthread_create(&t[j], NULL, claim_thread, &r);
            for (int j = 0; j < THREADS; j++) {
                void *rv;
                pthread_join(t[j], &rv);
                bad |= rv != NULL;
            }
            _exit(bad);
        }
    }
    for (int i = 0; i < KIDS; i++) {
        int st;
        assert_int_equal(waitpid(kids[i], &st, 0), kids[i]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    int seen[301] = { 0 };
    for (size_t i = 0; i < AGW_SHM_LIMIT_SLOTS; i++) {
        uint64_t w = atomic_load(&slots(s)[i].owner);
        if (w) {
            assert_true((w >> 16) >= 1 && (w >> 16) <= 300);
            assert_int_equal(w & AGW_SHM_MAX_PINS, 0);
            seen[w >> 16]++;
        }
    }
    for (int k = 1; k <= 300; k++)
        assert_int_equal(seen[k], 1);
    agw_shm_detach(s);
}

static void test_full_table_reclaims_idle_slots(void **state)
{
    fixture *f = *state;
    agw_shm *s = attach_ok(f->path);
    agw_shm_limit_slot *slot;
    uint64_t now = 1000000000;
    /* Fill the table: every key pinned once. */
    for (uint64_t k = 1; k <= AGW_SHM_LIMIT_SLOTS; k++)
        assert_int_equal(agw_shm_slot_pin(s, k, now, &slot), AGW_OK);
    /* No slot is idle (all pinned): a new key is refused, and counted. */
    assert_int_equal(agw_shm_slot_pin(s, 999999, now, &slot), AGW_ETOOBIG);
    assert_int_equal(hdr(s)->limiter_full_total, 1);
    /* Existing keys still work. */
    agw_shm_limit_slot *k7;
    assert_int_equal(agw_shm_slot_pin(s, 7, now, &k7), AGW_OK);
    agw_shm_slot_unpin(k7);
    /* Key 7 goes idle but its bucket is not full yet (TAT in the future). */
    agw_shm_slot_unpin(k7);
    atomic_store(&k7->tat[1], now + 5);
    assert_int_equal(agw_shm_slot_pin(s, 999999, now, &slot), AGW_ETOOBIG);
    /* Once it has refilled, the new key takes it over. */
    assert_int_equal(agw_shm_slot_pin(s, 999999, now + 5, &slot), AGW_OK);
    assert_ptr_equal(slot, k7);
    assert_int_equal(owner_key(atomic_load(&slot->owner)), 999999);
    /* And finds it again (full table: the whole table is the probe chain). */
    agw_shm_limit_slot *again;
    assert_int_equal(agw_shm_slot_pin(s, 999999, now + 5, &again), AGW_OK);
    assert_ptr_equal(again, slot);
    agw_shm_slot_unpin(again);
    agw_shm_slot_unpin(slot);
    agw_shm_detach(s);
}

static void test_claim_mutex_survives_a_dead_owner(void **state)
{
    fixture *f = *state;
    agw_shm *s = attach_ok(f->path);
    pid_t kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) {
        agw_shm *c = NULL;
        char err[256];
        if (agw_shm_attach(f->path, &c, err, sizeof err) != AGW_OK)
            _exit(2);
        pthread_mutex_t *m = claim_mutex(c);
        if (pthread_mutex_lock(m) != 0)
            _exit(3);
        _exit(0); /* dies holding the claim mutex */
    }
    int st;
    assert_int_equal(waitpid(kid, &st, 0), kid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* Claiming needs the mutex: EOWNERDEAD is recovered, not a deadlock. */
    agw_shm_limit_slot *slot;
    assert_int_equal(agw_shm_slot_pin(s, 77, 1, &slot), AGW_OK);
    agw_shm_slot_unpin(slot);
    /* And the mutex stays usable afterwards. */
    assert_int_equal(agw_shm_slot_pin(s, 78, 1, &slot), AGW_OK);
    agw_shm_slot_unpin(slot);
    agw_shm_detach(s);
}

static void test_unwritable_path(void **state)
{
    (void)state;
    agw_shm *s = NULL;
    char err[256] = "";
    assert_int_equal(agw_shm_attach("/nonexistent-dir/x.state", &s, err, sizeof err), AGW_EIO);
    assert_null(s);
    assert_non_null(strstr(err, "cannot open"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_for_db),
        cmocka_unit_test_setup_teardown(test_create_and_attach, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generation_across_processes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_layouts_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_initialised_file_is_redone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_another_boot_clears_the_limiter_and_lb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_slot_per_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_racing_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_table_reclaims_idle_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_mutex_survives_a_dead_owner, setup, teardown),
        cmocka_unit_test(test_unwritable_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
