/* Unit tests for lib/state/procs: a row per process, gauges as sums, and
 * what a killed process held given back by whoever reaps; a pid reused by a
 * later process does not inherit the row; the shared row is never reaped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "state/procs.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static int setup(void **state)
{
    /* Shared between parent and children, as the segment is between the
     * processes of a pool. */
    void *m = mmap(NULL, AGW_PROCS_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    assert_true(m != MAP_FAILED);
    assert_non_null(agw_procs_bind(m, AGW_PROCS_BYTES));
    *state = m;
    return 0;
}

static int teardown(void **state)
{
    munmap(*state, AGW_PROCS_BYTES);
    return 0;
}

/* A child joins, takes `n` of cell 3, tells the parent, and waits to be
 * killed; returns its pid once its counts are in. */
static pid_t child_holding(agw_procs *p, int n)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        agw_procs_row *row = agw_procs_join(p);
        for (int i = 0; i < n; i++)
            agw_procs_add(row, 3, 1);
        (void)!write(fds[1], "x", 1);
        for (;;)
            pause();
    }
    char c;
    assert_int_equal(read(fds[0], &c, 1), 1);
    close(fds[0]);
    close(fds[1]);
    return pid;
}

static void test_killed_process_gives_back(void **state)
{
    agw_procs *p = *state;
    agw_procs_row *mine = agw_procs_join(p);
    assert_ptr_not_equal(mine, agw_procs_shared(p));
    assert_ptr_equal(agw_procs_join(p), mine); /* joining again finds the same row */
    agw_procs_add(mine, 3, 2);
    pid_t a = child_holding(p, 5), b = child_holding(p, 7);
    assert_int_equal(agw_procs_sum(p, 3), 14);
    assert_int_equal(agw_procs_sum(p, 4), 0);
    assert_int_equal(agw_procs_reap(p), 0); /* everybody alive */

    kill(a, SIGKILL);
    int st;
    assert_int_equal(waitpid(a, &st, 0), a);
    assert_int_equal(agw_procs_sum(p, 3), 14); /* until someone notices */
    assert_int_equal(agw_procs_reap(p), 1);
    assert_int_equal(agw_procs_sum(p, 3), 9);
    assert_int_equal(agw_procs_reap(p), 0); /* once */

    /* a zombie (killed, not yet waited for) is gone too, and a new process
     * reaps it when it joins */
    kill(b, SIGKILL);
    for (int i = 0; i < 200; i++) {
        int zombie;
        (void)agw_procs_start_time((uint64_t)b, &zombie);
        if (zombie)
            break;
        usleep(5000);
    }
    pid_t c = child_holding(p, 1);
    assert_int_equal(agw_procs_sum(p, 3), 3);
    assert_int_equal(atomic_load(&p->reaped), 2);
    kill(c, SIGKILL);
    assert_int_equal(waitpid(b, &st, 0), b);
    assert_int_equal(waitpid(c, &st, 0), c);
    assert_int_equal(agw_procs_reap(p), 1);
    agw_procs_add(mine, 3, -2);
    assert_int_equal(agw_procs_sum(p, 3), 0);
}

/* A row whose pid now belongs to a process that started at another time
 * (the kernel reused the pid) is reaped; the shared row never is. */
static void test_reused_pid_and_shared_row(void **state)
{
    agw_procs *p = *state;
    int zombie;
    uint64_t me = (uint64_t)getpid(), started = agw_procs_start_time(me, &zombie);
    assert_true(started > 0);
    assert_false(zombie);
    assert_true(agw_procs_alive(me, started));
    assert_false(agw_procs_alive(me, started + 1));
    assert_false(agw_procs_alive(0, 0));

    agw_procs_row *r = &p->rows[0];
    atomic_store(&r->started, started + 1);
    atomic_store(&r->owner, me << 2 | 2u);
    atomic_store(&r->cells[9], 4);
    atomic_store(&p->rows_used, 1);
    agw_procs_add(agw_procs_shared(p), 9, 6);
    assert_int_equal(agw_procs_sum(p, 9), 10);
    assert_int_equal(agw_procs_reap(p), 1);
    assert_int_equal(agw_procs_sum(p, 9), 6);
    assert_int_equal(atomic_load(&r->owner), 0);
    /* the freed row is the first a joiner claims */
    assert_ptr_equal(agw_procs_join(p), r);
    assert_int_equal(agw_procs_sum(NULL, 9), 0);
    assert_int_equal(agw_procs_sum(p, AGW_PROCS_CELLS), 0);
    assert_null(agw_procs_bind(p, AGW_PROCS_BYTES - 1));
}

/* Every row owned by a live process: a joiner counts in the shared row. */
static void test_full_table_uses_shared_row(void **state)
{
    agw_procs *p = *state;
    int zombie;
    uint64_t parent = (uint64_t)getppid();
    uint64_t started = agw_procs_start_time(parent, &zombie);
    for (size_t i = 0; i < AGW_PROCS_ROWS - 1; i++) {
        atomic_store(&p->rows[i].started, started);
        atomic_store(&p->rows[i].owner, parent << 2 | 2u);
    }
    atomic_store(&p->rows_used, AGW_PROCS_ROWS - 1);
    assert_ptr_equal(agw_procs_join(p), agw_procs_shared(p));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_killed_process_gives_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reused_pid_and_shared_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_table_uses_shared_row, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
