/* What the micro-benchmarks in tests/bench share: a nanosecond clock and the
 * sorting their percentiles are read from. Header-only; each benchmark is
 * one program. */
#ifndef AGW_TESTS_BENCH_H
#define AGW_TESTS_BENCH_H

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int bench_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts t[0..n) in place; its p-th percentile is then t[n * p / 100]. */
static inline void bench_sort(uint64_t *t, size_t n)
{
    qsort(t, n, sizeof *t, bench_cmp_u64);
}

#endif
