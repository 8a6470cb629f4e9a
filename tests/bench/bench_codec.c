/* The CPU a conversion costs per request, on requests the size agents send:
 * an OpenAI Chat Completions body (system prompt, ROUNDS rounds of a user
 * message in content parts, an assistant answer with two tool calls and
 * their two results, TOOLS function tools) decoded to the IR and encoded
 * for Anthropic, then that Anthropic body decoded back. Prints the median
 * and p99 time per request of each step, in microseconds, and the bodies'
 * sizes.
 *
 *   make tests/bench/bench_codec && tests/bench/bench_codec [rounds] [tools] [iterations]
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "proto/anthropic.h"
#include "proto/openai.h"

static void put(agw_buf *b, const char *s)
{
    if (agw_buf_append(b, s, strlen(s)) != AGW_OK)
        abort();
}

#define appendf(b, ...)                               \
    do {                                              \
        if (agw_buf_appendf((b), __VA_ARGS__) != AGW_OK) \
            abort();                                  \
    } while (0)

static agw_buf openai_body(size_t rounds, size_t tools)
{
    agw_buf b = AGW_BUF_INIT(1u << 26);
    put(&b, "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":4096,\"temperature\":0.2,"
            "\"messages\":[{\"role\":\"system\",\"content\":\"You are a careful coding "
            "assistant. Answer briefly; use the tools to read and change files.\"}");
    for (size_t i = 0; i < rounds; i++) {
        appendf(&b, ",{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Step %zu: look "
                 "at src/module_%zu.c and fix the off-by-one in the loop that copies the "
                 "buffer; keep the style of the file.\"}]}",
             i, i);
        appendf(&b, ",{\"role\":\"assistant\",\"content\":\"I will read the file first, then "
                 "the header it includes.\",\"tool_calls\":[{\"id\":\"call_%zu_a\",\"type\":"
                 "\"function\",\"function\":{\"name\":\"read_file\",\"arguments\":"
                 "\"{\\\"path\\\":\\\"src/module_%zu.c\\\"}\"}}",
             i, i);
        appendf(&b, ",{\"id\":\"call_%zu_b\",\"type\":\"function\",\"function\":{\"name\":"
                 "\"read_file\",\"arguments\":\"{\\\"path\\\":\\\"src/module_%zu.h\\\"}\"}}]}",
             i, i);
        appendf(&b, ",{\"role\":\"tool\",\"tool_call_id\":\"call_%zu_a\",\"content\":\"#include "
                 "\\\"module.h\\\"\\n\\nint copy(char *dst, const char *src, size_t n)\\n{\\n"
                 "    for (size_t i = 0; i <= n; i++)\\n        dst[i] = src[i];\\n    return "
                 "0;\\n}\\n/* file %zu */\"}",
             i, i);
        appendf(&b, ",{\"role\":\"tool\",\"tool_call_id\":\"call_%zu_b\",\"content\":\"int "
                 "copy(char *dst, const char *src, size_t n); /* header %zu */\"}",
             i, i);
    }
    put(&b, ",{\"role\":\"user\",\"content\":\"Now run the tests.\"}],\"tools\":[");
    for (size_t k = 0; k < tools; k++) {
        if (k)
            put(&b, ",");
        appendf(&b, "{\"type\":\"function\",\"function\":{\"name\":\"tool_%zu\",\"description\":"
                 "\"Does one thing to the workspace and reports what changed.\",\"parameters\":"
                 "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\","
                 "\"description\":\"A path relative to the workspace root\"},\"recursive\":"
                 "{\"type\":\"boolean\"},\"limit\":{\"type\":\"integer\",\"minimum\":1}},"
                 "\"required\":[\"path\"]}}}",
             k);
    }
    put(&b, "]}");
    return b;
}

typedef struct {
    const char *label;
    uint64_t *t;
} step;

static void report(const step *s, size_t n)
{
    bench_sort(s->t, n);
    printf("  %-36s p50 %8.1f us  p99 %8.1f us\n", s->label, (double)s->t[n / 2] / 1000.0,
           (double)s->t[n * 99 / 100] / 1000.0);
}

int main(int argc, char **argv)
{
    size_t rounds = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 40;
    size_t tools = argc > 2 ? (size_t)strtoull(argv[2], NULL, 10) : 20;
    size_t iters = argc > 3 ? (size_t)strtoull(argv[3], NULL, 10) : 2000;
    char err[256];
    /* A loop that frees everything after each request would otherwise
     * measure glibc handing the top of its heap back to the kernel and
     * faulting it in again, which a pool of threads serving requests
     * seldom does (page faults are about 3 % of a pool converting such
     * bodies). */
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    if (iters < 100)
        iters = 100;
    agw_buf body = openai_body(rounds, tools);
    agw_buf anth = AGW_BUF_INIT(1u << 26);
    step dec = { "OpenAI request -> IR", calloc(iters, sizeof(uint64_t)) };
    step enc = { "IR -> Anthropic request", calloc(iters, sizeof(uint64_t)) };
    step back = { "Anthropic request -> IR", calloc(iters, sizeof(uint64_t)) };

    for (int pass = 0; pass < 2; pass++) { /* the first pass warms caches */
        for (size_t i = 0; i < iters; i++) {
            agw_arena arena = AGW_ARENA_INIT, arena2 = AGW_ARENA_INIT;
            agw_ir_request rq, rq2;
            anth.len = 0;
            uint64_t t0 = bench_now_ns();
            agw_err e =
                agw_openai_decode_request(agw_buf_view(&body), &arena, &rq, err, sizeof err);
            uint64_t t1 = bench_now_ns();
            e = e ? e : agw_anthropic_encode_request(&rq, &anth, err, sizeof err);
            uint64_t t2 = bench_now_ns();
            e = e ? e : agw_anthropic_decode_request(agw_buf_view(&anth), &arena2, &rq2, err,
                                                     sizeof err);
            uint64_t t3 = bench_now_ns();
            if (e) { /* the body is the benchmark's own: a failure is its bug */
                fprintf(stderr, "bench_codec: %s\n", err);
                return 1;
            }
            dec.t[i] = t1 - t0;
            enc.t[i] = t2 - t1;
            back.t[i] = t3 - t2;
            agw_arena_free(&arena);
            agw_arena_free(&arena2);
        }
    }
    printf("%zu rounds, %zu tools: OpenAI body %zu bytes, Anthropic body %zu bytes, %zu "
           "requests\n",
           rounds, tools, body.len, anth.len, iters);
    report(&dec, iters);
    report(&enc, iters);
    report(&back, iters);
    agw_buf_free(&body);
    agw_buf_free(&anth);
    free(dec.t);
    free(enc.t);
    free(back.t);
    return 0;
}
