/* libFuzzer target for the stream half of lib/proto/kiro.
 *
 * The input describes frames, so that the fuzzer spends its time on what
 * the frames say rather than on CRCs: byte 0 holds flags (bit 0: the
 * request asked for thinking; bit 1: it declared a tool with a name over 64
 * bytes) and seeds the chunking; the rest is split on "\n\n" into frames,
 * each "<event type>\n<payload>" (an event), "!<exception type>\n<payload>"
 * (an exception) or "#<bytes>" (raw bytes, no frame: garbage or a cut). The
 * frames are encoded with real CRCs and fed to the decoder in pseudo-random
 * chunks. Invariants, any violation aborts:
 *  - feeds and _end return AGW_OK (the sink never stops here);
 *  - events keep fuzz_ir_check.h's rules for a stream the decoder builds
 *    itself (FUZZ_IR_STREAM | FUZZ_IR_ANTHROPIC): one MESSAGE_START first,
 *    blocks in order, one open at a time, non-empty deltas of the block's
 *    kind, tool calls with ids, one MESSAGE_DELTA with a stop reason right
 *    before MESSAGE_STOP, an ERROR with a 4xx/5xx status, type and message;
 *  - the answer always ends: _end leaves MESSAGE_STOP or ERROR emitted;
 *  - the same stream fed whole gives the same events;
 *  - both client encoders accept every event, and a fold of an answer that
 *    finished encodes to valid JSON in both protocols (tool inputs were
 *    checked to be JSON objects).
 */
#include <string.h>

#include "fuzz_ir_check.h"

#include "core/json.h"
#include "proto/anthropic.h"
#include "proto/kiro.h"
#include "proto/openai.h"

typedef struct {
    fuzz_ir_checker chk;
    agw_anthropic_stream_encoder ae;
    agw_openai_stream_encoder oe;
    agw_ir_fold fold;
    int fold_ok;
    agw_buf out, log;
} state_t;

static void put(agw_buf *b, const void *p, size_t n)
{
    check(agw_buf_append(b, p, n) == AGW_OK, "append");
}

static void log_event(agw_buf *log, const agw_ir_event *ev)
{
    int64_t k[4] = { ev->kind, ev->index, ev->block, ev->delta_kind };
    put(log, k, sizeof k);
    put(log, &ev->delta.len, sizeof ev->delta.len);
    put(log, ev->delta.ptr, ev->delta.len);
    put(log, &ev->tool_name.len, sizeof ev->tool_name.len);
    put(log, ev->tool_name.ptr, ev->tool_name.len);
    put(log, &ev->status, sizeof ev->status);
}

static int sink(void *ud, const agw_ir_event *ev)
{
    state_t *s = ud;
    fuzz_ir_check(&s->chk, ev);
    log_event(&s->log, ev);
    check(agw_anthropic_encode_stream_event(&s->ae, ev, &s->out) == AGW_OK, "Anthropic encoder");
    check(agw_openai_encode_stream_event(&s->oe, ev, &s->out) == AGW_OK, "OpenAI encoder");
    if (s->fold_ok && agw_ir_fold_add(&s->fold, ev) != AGW_OK)
        s->fold_ok = 0;
    return 0;
}

/* The frames the input describes. */
static void build(const char *in, size_t len, agw_buf *out)
{
    size_t off = 0;
    while (off < len) {
        const char *start = in + off, *sep = NULL;
        for (size_t i = off; i + 1 < len; i++)
            if (in[i] == '\n' && in[i + 1] == '\n') {
                sep = in + i;
                break;
            }
        size_t n = sep ? (size_t)(sep - start) : len - off;
        off += n + (sep ? 2 : 0);
        if (n && start[0] == '#') {
            put(out, start + 1, n - 1);
            continue;
        }
        const char *nl = memchr(start, '\n', n);
        agw_str name = { start, nl ? (size_t)(nl - start) : n };
        agw_str payload = nl ? (agw_str){ nl + 1, n - name.len - 1 } : (agw_str){ "", 0 };
        int exc = name.len && name.ptr[0] == '!';
        if (exc) {
            name.ptr++;
            name.len--;
        }
        if (!name.len || name.len > 255)
            continue;
        agw_es_header h[2] = {
            { exc ? AGW_STR_LIT(":exception-type") : AGW_STR_LIT(":event-type"), AGW_ES_STRING, 0,
              name },
            { AGW_STR_LIT(":message-type"), AGW_ES_STRING, 0,
              exc ? AGW_STR_LIT("exception") : AGW_STR_LIT("event") },
        };
        check(agw_es_encode(out, h, 2, payload) == AGW_OK, "frame encodes");
    }
}

static void run(const agw_ir_request *rq, agw_str stream, unsigned seed, state_t *s)
{
    memset(s, 0, sizeof *s);
    fuzz_ir_check_init(&s->chk, FUZZ_IR_STREAM | FUZZ_IR_ANTHROPIC);
    agw_anthropic_stream_encoder_init(&s->ae, AGW_STR_LIT("m"), AGW_STR_LIT(""));
    agw_openai_stream_encoder_init(&s->oe, 1, AGW_STR_LIT("m"), 1);
    agw_ir_fold_init(&s->fold, 1u << 24);
    s->fold_ok = 1;
    agw_buf_init(&s->out, SIZE_MAX);
    agw_buf_init(&s->log, SIZE_MAX);
    agw_kiro_stream_decoder d;
    agw_kiro_stream_decoder_init(&d, rq);
    size_t off = 0;
    while (off < stream.len) {
        size_t k = seed ? (seed = seed * 1103515245u + 12345u) % 41 : stream.len - off;
        if (k > stream.len - off)
            k = stream.len - off;
        check(agw_kiro_decode_stream_bytes(&d, stream.ptr + off, k, sink, s) == AGW_OK,
              "feeds succeed");
        off += k;
    }
    check(agw_kiro_decode_stream_end(&d, sink, s) == AGW_OK, "_end succeeds");
    check(s->chk.ended, "the answer always ends");
    if (s->fold_ok && s->fold.finished && !s->fold.failed) {
        agw_buf r = AGW_BUF_INIT(SIZE_MAX);
        check(agw_anthropic_encode_response(&s->fold, AGW_STR_LIT("m"), AGW_STR_LIT(""), &r) ==
                      AGW_OK &&
                  agw_json_validate(agw_buf_view(&r), 4096, NULL, 0) == AGW_OK,
              "an Anthropic response");
        agw_buf_reset(&r);
        check(agw_openai_encode_response(&s->fold, AGW_STR_LIT("m"), 1, &r) == AGW_OK &&
                  agw_json_validate(agw_buf_view(&r), 4096, NULL, 0) == AGW_OK,
              "an OpenAI response");
        agw_buf_free(&r);
    }
    agw_kiro_stream_decoder_free(&d);
    agw_anthropic_stream_encoder_free(&s->ae);
    agw_openai_stream_encoder_free(&s->oe);
    agw_ir_fold_free(&s->fold);
    agw_buf_free(&s->out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char long_name[80];
    memset(long_name, 't', sizeof long_name);
    agw_ir_tool tool = { { long_name, sizeof long_name }, AGW_STR_LIT("d"), AGW_STR_LIT("{}"),
                         { NULL, 0 } };
    agw_ir_request rq;
    memset(&rq, 0, sizeof rq);
    rq.model = AGW_STR_LIT("claude-sonnet-4-5");
    if (data[0] & 1)
        rq.thinking = AGW_STR_LIT("{\"type\":\"enabled\",\"budget_tokens\":1024}");
    if (data[0] & 2) {
        rq.tools = &tool;
        rq.n_tools = 1;
    }
    agw_buf stream = AGW_BUF_INIT(SIZE_MAX);
    build((const char *)data + 1, size - 1, &stream);
    state_t a, b;
    run(&rq, agw_buf_view(&stream), data[0] | 1u, &a);
    run(&rq, agw_buf_view(&stream), 0, &b);
    check(agw_str_eq(agw_buf_view(&a.log), agw_buf_view(&b.log)), "chunked = whole");
    agw_buf_free(&a.log);
    agw_buf_free(&b.log);
    agw_buf_free(&stream);
    return 0;
}
