/* The cost the sanitize stage adds to each streamed text event: the time of
 * agw_sanitize_stage_event for an answer streamed as short deltas (the size
 * providers send), with Kiro's default rules and with no rules (the stage
 * passing events through), as p50/p99 per event in nanoseconds.
 *
 *   make tests/bench/bench_sanitize && tests/bench/bench_sanitize [events]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "proto/sanitize.h"

static int sink(void *ud, const agw_ir_event *ev)
{
    (void)ev;
    ++*(size_t *)ud;
    return 0;
}

/* Streams `n` deltas of a realistic answer (prose, code, an identity line,
 * a leaked tool tag now and then) through a stage with `rules`. */
static void run(const char *label, const agw_sanitize_rules *rules, size_t n)
{
    static const char *const words[] = {
        "The ", "gateway ", "streams ", "each ", "event ", "as ", "it ", "comes; ",
        "I am Kiro, ", "your ", "assistant. ", "```c\nint main(void) { return 0; }\n```\n",
        "Ünïcödé ", "日本語の", "テキスト。", "<tool_call>{\"n\":1}</tool_call>", "Amazon Q ",
        "says ", "hello ", "(CodeWhisperer) ", "and ", "more. ",
    };
    size_t nw = sizeof words / sizeof words[0], out = 0;
    uint64_t *t = malloc(n * sizeof *t);
    agw_sanitize_stage s;
    agw_sanitize_stage_init(&s, rules, sink, &out);
    agw_ir_event ev;
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_DELTA);
    ev.delta_kind = AGW_IR_DELTA_TEXT;
    for (size_t i = 0; i < n; i++) {
        ev.delta = agw_str_c(words[(i * 7) % nw]);
        uint64_t t0 = bench_now_ns();
        if (agw_sanitize_stage_event(&s, &ev))
            abort();
        t[i] = bench_now_ns() - t0;
    }
    agw_sanitize_stage_free(&s);
    bench_sort(t, n);
    printf("%-22s events=%zu out=%zu p50=%llu ns p99=%llu ns held=%zu\n", label, n, out,
           (unsigned long long)t[n / 2], (unsigned long long)t[n * 99 / 100], s.held_events);
    free(t);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 200000;
    if (n < 100)
        n = 100;
    agw_sanitize_rules *none = agw_sanitize_rules_new();
    agw_sanitize_rules *kiro = agw_sanitize_rules_kiro_default();
    for (int round = 0; round < 2; round++) { /* the first round warms caches */
        run("sanitize off", none, n);
        run("kiro default rules", kiro, n);
    }
    agw_sanitize_rules_free(none);
    agw_sanitize_rules_free(kiro);
    return 0;
}
