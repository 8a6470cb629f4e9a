/*
 * openai_stream_encode: IR events -> an OpenAI client's SSE chunks, and a
 * folded answer -> a chat.completion object (openai.h: the stream encoder
 * and agw_openai_encode_response). Both write the same usage object, finish
 * reasons and ids, so a streamed and a non-streamed answer agree.
 */
#include "proto/openai_int.h"
#include "proto/wire.h"

#include <string.h>

/* IR block indexes the stream encoder maps: agw_openai_stream_encoder's
 * tool_index has one slot each. */
#define OAI_MAX_ENC_BLOCKS 256

/* IR usage -> OpenAI's usage object (prompt_tokens counts cached tokens;
 * reasoning_tokens 0 when the provider did not say). */
static agw_err put_usage(agw_buf *b, const agw_ir_usage *u)
{
    int64_t in = u->input > 0 ? u->input : 0;
    int64_t cr = u->cache_read > 0 ? u->cache_read : 0;
    int64_t cw = u->cache_write > 0 ? u->cache_write : 0;
    int64_t out = u->output > 0 ? u->output : 0;
    int64_t rs = u->reasoning > 0 ? u->reasoning : 0;
    int64_t prompt = in + cr + cw;

    /* Appends, not one printf: this is on every converted answer. */
    agw_wire_writer w = AGW_WIRE_WRITER(b);
    AGW_WIRE_W_LIT(&w, "{\"prompt_tokens\":");
    agw_wire_w_int(&w, prompt);
    AGW_WIRE_W_LIT(&w, ",\"completion_tokens\":");
    agw_wire_w_int(&w, out);
    AGW_WIRE_W_LIT(&w, ",\"total_tokens\":");
    agw_wire_w_int(&w, prompt + out);
    AGW_WIRE_W_LIT(&w, ",\"prompt_tokens_details\":{\"cached_tokens\":");
    agw_wire_w_int(&w, cr);
    AGW_WIRE_W_LIT(&w, "},\"completion_tokens_details\":{\"reasoning_tokens\":");
    agw_wire_w_int(&w, rs);
    AGW_WIRE_W_LIT(&w, "}}");
    return w.e;
}

/* The IR's stop reason -> OpenAI's finish_reason. */
static const char *finish_name(agw_ir_stop s)
{
    switch (s) {
    case AGW_IR_STOP_MAX_TOKENS: return "length";
    case AGW_IR_STOP_TOOL_USE: return "tool_calls";
    case AGW_IR_STOP_REFUSAL: return "content_filter";
    default: return "stop"; /* end_turn, stop_sequence, pause_turn, unknown */
    }
}

/* "chatcmpl-" + the IR id unless it already has the prefix; a random one
 * when the answer came without an id. */
static agw_err make_chat_id(agw_arena *a, agw_str id, agw_str *out)
{
    return agw_wire_make_id(a, AGW_STR_LIT("chatcmpl-"), id, out);
}

/* ======================================================================
 * Stream encoding (IR events -> client chunks)
 * ====================================================================== */

void agw_openai_stream_encoder_init(agw_openai_stream_encoder *e, int include_usage, agw_str model,
                                    int64_t created)
{
    memset(e, 0, sizeof *e);
    e->include_usage = include_usage;
    e->model = agw_arena_str(&e->arena, model);
    e->created = created;
    for (size_t i = 0; i < sizeof e->tool_index / sizeof e->tool_index[0]; i++)
        e->tool_index[i] = -1;
    e->usage = (agw_ir_usage)AGW_IR_USAGE_UNKNOWN;
    e->stop = AGW_IR_STOP_NONE;
}

/* Everything of a chunk up to the delta object. system_fingerprint is left
 * out: there is no OpenAI backend whose fingerprint it could be, and the
 * SDKs treat it as optional. */
static agw_err chunk_head(const agw_openai_stream_encoder *e, agw_buf *out)
{
    AGW_WIRE_TRY(AGW_WIRE_PUT(out, "data: {\"id\":"));
    AGW_WIRE_TRY(agw_wire_put_jstr(out, e->id));
    AGW_WIRE_TRY(agw_buf_appendf(out,
                                 ",\"object\":\"chat.completion.chunk\",\"created\":%lld,"
                                 "\"model\":",
                                 (long long)e->created));
    return agw_wire_put_jstr(out, e->model);
}

/* The start of a chunk with one choice, up to its delta object. */
static agw_err chunk_open(const agw_openai_stream_encoder *e, agw_buf *out)
{
    AGW_WIRE_TRY(chunk_head(e, out));
    return AGW_WIRE_PUT(out, ",\"choices\":[{\"index\":0,\"delta\":");
}

/* The rest of it, after the delta object. */
static agw_err chunk_close(const agw_openai_stream_encoder *e, agw_buf *out, const char *finish)
{
    AGW_WIRE_TRY(AGW_WIRE_PUT(out, ",\"logprobs\":null,\"finish_reason\":"));
    if (finish)
        AGW_WIRE_TRY(agw_buf_appendf(out, "\"%s\"", finish));
    else
        AGW_WIRE_TRY(AGW_WIRE_PUT(out, "null"));
    AGW_WIRE_TRY(agw_buf_append(out, "}]", 2));
    /* With include_usage the API puts "usage":null on every chunk but the last. */
    if (e->include_usage)
        AGW_WIRE_TRY(AGW_WIRE_PUT(out, ",\"usage\":null"));
    return AGW_WIRE_PUT(out, "}\n\n");
}

/* The opening chunk (role) once, before anything else, even when the
 * producer skipped MESSAGE_START. */
static agw_err enc_role(agw_openai_stream_encoder *e, agw_str id, agw_buf *out)
{
    if (e->role_sent)
        return AGW_OK;
    AGW_WIRE_TRY(make_chat_id(&e->arena, id, &e->id));
    e->role_sent = 1;
    AGW_WIRE_TRY(chunk_open(e, out));
    AGW_WIRE_TRY(AGW_WIRE_PUT(out, "{\"role\":\"assistant\",\"content\":\"\"}"));
    return chunk_close(e, out, NULL);
}

/* {"<key>":"<text>"}: content or reasoning_content. */
static agw_err enc_text_delta(agw_openai_stream_encoder *e, agw_buf *out, const char *key,
                              agw_str text)
{
    AGW_WIRE_TRY(chunk_open(e, out));
    AGW_WIRE_TRY(agw_buf_appendf(out, "{\"%s\":\"", key));
    AGW_WIRE_TRY(agw_buf_append_json_escaped(out, text));
    AGW_WIRE_TRY(AGW_WIRE_PUT(out, "\"}"));
    return chunk_close(e, out, NULL);
}

static agw_err enc_tool_start(agw_openai_stream_encoder *e, const agw_ir_event *ev, agw_buf *out)
{
    int n = e->n_tool_calls++;

    e->tool_index[ev->index] = n;
    AGW_WIRE_TRY(chunk_open(e, out));
    AGW_WIRE_TRY(agw_buf_appendf(out, "{\"tool_calls\":[{\"index\":%d,\"id\":", n));
    AGW_WIRE_TRY(agw_wire_put_jstr(out, ev->tool_id));
    AGW_WIRE_TRY(AGW_WIRE_PUT(out, ",\"type\":\"function\",\"function\":{\"name\":"));
    AGW_WIRE_TRY(agw_wire_put_jstr(out, ev->tool_name));
    AGW_WIRE_TRY(AGW_WIRE_PUT(out, ",\"arguments\":\"\"}}]}"));
    return chunk_close(e, out, NULL);
}

/* Later pieces of a call carry only its index and the arguments text. */
static agw_err enc_tool_delta(agw_openai_stream_encoder *e, int n, agw_str args, agw_buf *out)
{
    AGW_WIRE_TRY(chunk_open(e, out));
    AGW_WIRE_TRY(agw_buf_appendf(out,
                                 "{\"tool_calls\":[{\"index\":%d,\"function\":{\"arguments\":\"",
                                 n));
    AGW_WIRE_TRY(agw_buf_append_json_escaped(out, args));
    AGW_WIRE_TRY(AGW_WIRE_PUT(out, "\"}}]}"));
    return chunk_close(e, out, NULL);
}

static agw_err enc_stop(agw_openai_stream_encoder *e, agw_buf *out)
{
    AGW_WIRE_TRY(enc_role(e, (agw_str){ NULL, 0 }, out));
    e->done = 1;
    AGW_WIRE_TRY(chunk_open(e, out));
    AGW_WIRE_TRY(agw_buf_append(out, "{}", 2));
    AGW_WIRE_TRY(chunk_close(e, out, finish_name(e->stop)));
    if (e->include_usage) {
        AGW_WIRE_TRY(chunk_head(e, out));
        AGW_WIRE_TRY(AGW_WIRE_PUT(out, ",\"choices\":[],\"usage\":"));
        AGW_WIRE_TRY(put_usage(out, &e->usage));
        AGW_WIRE_TRY(AGW_WIRE_PUT(out, "}\n\n"));
    }
    return AGW_WIRE_PUT(out, "data: [DONE]\n\n");
}

static agw_err enc_error(agw_openai_stream_encoder *e, const agw_ir_event *ev, agw_buf *out)
{
    e->done = 1;
    AGW_WIRE_TRY(AGW_WIRE_PUT(out, "data: {\"error\":{\"message\":"));
    AGW_WIRE_TRY(agw_wire_put_jstr(out, ev->error_message));
    AGW_WIRE_TRY(agw_buf_appendf(out, ",\"type\":\"%s\",\"param\":null,\"code\":null}}\n\n",
                                 agw_openai_error_type(ev->error_type, ev->status)));
    return AGW_OK;
}

agw_err agw_openai_encode_stream_event(agw_openai_stream_encoder *e, const agw_ir_event *ev,
                                       agw_buf *out)
{
    if (e->done)
        return AGW_OK; /* after [DONE] or an error the client reads nothing more */
    switch (ev->kind) {
    case AGW_IR_EV_MESSAGE_START:
        /* Anthropic reports input and cache tokens only here; the usage chunk
         * at the end needs them. */
        agw_ir_usage_merge(&e->usage, &ev->usage);
        return enc_role(e, ev->id, out);
    case AGW_IR_EV_BLOCK_START:
        if (ev->index < 0)
            return AGW_EINVAL;
        AGW_WIRE_TRY(enc_role(e, (agw_str){ NULL, 0 }, out));
        /* Text and thinking show up with their deltas; only a call announces
         * itself, and only calls need their index remembered. */
        if (ev->block != AGW_IR_TOOL_USE) {
            if (ev->index < OAI_MAX_ENC_BLOCKS)
                e->tool_index[ev->index] = -1;
            return AGW_OK;
        }
        if (ev->index >= OAI_MAX_ENC_BLOCKS)
            return AGW_EINVAL;
        e->tool_args_sent[ev->index] = 0;
        return enc_tool_start(e, ev, out);
    case AGW_IR_EV_BLOCK_DELTA:
        if (ev->delta.len == 0 || ev->delta_kind == AGW_IR_DELTA_SIGNATURE)
            return AGW_OK;
        AGW_WIRE_TRY(enc_role(e, (agw_str){ NULL, 0 }, out));
        switch (ev->delta_kind) {
        case AGW_IR_DELTA_TEXT: return enc_text_delta(e, out, "content", ev->delta);
        case AGW_IR_DELTA_THINKING: return enc_text_delta(e, out, "reasoning_content", ev->delta);
        case AGW_IR_DELTA_JSON:
            if (ev->index < 0 || ev->index >= OAI_MAX_ENC_BLOCKS || e->tool_index[ev->index] < 0)
                return AGW_EINVAL;
            e->tool_args_sent[ev->index] = 1;
            return enc_tool_delta(e, e->tool_index[ev->index], ev->delta, out);
        case AGW_IR_DELTA_SIGNATURE: return AGW_OK;
        }
        return AGW_EINVAL;
    case AGW_IR_EV_BLOCK_STOP:
        /* A call without input streams only "" from Anthropic; the client
         * must still be able to parse the arguments it assembled. */
        if (ev->index >= 0 && ev->index < OAI_MAX_ENC_BLOCKS && e->tool_index[ev->index] >= 0 &&
            !e->tool_args_sent[ev->index]) {
            e->tool_args_sent[ev->index] = 1;
            return enc_tool_delta(e, e->tool_index[ev->index], AGW_STR_LIT("{}"), out);
        }
        return AGW_OK;
    case AGW_IR_EV_PING:
        return AGW_OK;
    case AGW_IR_EV_MESSAGE_DELTA:
        if (ev->stop != AGW_IR_STOP_NONE)
            e->stop = ev->stop;
        agw_ir_usage_merge(&e->usage, &ev->usage);
        return AGW_OK;
    case AGW_IR_EV_MESSAGE_STOP:
        return enc_stop(e, out);
    case AGW_IR_EV_ERROR:
        return enc_error(e, ev, out);
    }
    return AGW_EINVAL;
}

void agw_openai_stream_encoder_free(agw_openai_stream_encoder *e)
{
    agw_arena_free(&e->arena);
}

/* ======================================================================
 * Response encoding (a fold -> chat.completion)
 * ====================================================================== */

agw_err agw_openai_encode_response(const agw_ir_fold *f, agw_str model, int64_t created,
                                   agw_buf *out)
{
    agw_arena a = AGW_ARENA_INIT;
    agw_str id;
    int has_text = 0, has_thinking = 0, ncalls = 0, first = 1;
    agw_err e;

    for (size_t i = 0; i < f->n_blocks; i++) {
        const agw_ir_fold_block *b = &f->blocks[i];
        has_text |= b->kind == AGW_IR_TEXT && b->text.len;
        has_thinking |= b->kind == AGW_IR_THINKING && b->text.len;
        ncalls += b->kind == AGW_IR_TOOL_USE;
    }
    e = make_chat_id(&a, f->id, &id);
    if (e == AGW_OK && (e = AGW_WIRE_PUT(out, "{\"id\":")) == AGW_OK)
        e = agw_wire_put_jstr(out, id);
    agw_arena_free(&a);
    AGW_WIRE_TRY(e);
    AGW_WIRE_TRY(AGW_WIRE_PUT(out, ",\"object\":\"chat.completion\",\"created\":"));
    AGW_WIRE_TRY(agw_buf_append_i64(out, created));
    AGW_WIRE_TRY(AGW_WIRE_PUT(out, ",\"model\":"));
    AGW_WIRE_TRY(agw_wire_put_jstr(out, model));
    AGW_WIRE_TRY(AGW_WIRE_PUT(out, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                                   "\"content\":"));
    if (has_text) {
        AGW_WIRE_TRY(agw_buf_append(out, "\"", 1));
        for (size_t i = 0; i < f->n_blocks; i++)
            if (f->blocks[i].kind == AGW_IR_TEXT)
                AGW_WIRE_TRY(agw_buf_append_json_escaped(out, agw_buf_view(&f->blocks[i].text)));
        AGW_WIRE_TRY(agw_buf_append(out, "\"", 1));
    } else {
        AGW_WIRE_TRY(AGW_WIRE_PUT(out, "null"));
    }
    AGW_WIRE_TRY(AGW_WIRE_PUT(out, ",\"refusal\":null"));
    if (has_thinking) {
        AGW_WIRE_TRY(AGW_WIRE_PUT(out, ",\"reasoning_content\":\""));
        for (size_t i = 0; i < f->n_blocks; i++)
            if (f->blocks[i].kind == AGW_IR_THINKING)
                AGW_WIRE_TRY(agw_buf_append_json_escaped(out, agw_buf_view(&f->blocks[i].text)));
        AGW_WIRE_TRY(agw_buf_append(out, "\"", 1));
    }
    if (ncalls) {
        AGW_WIRE_TRY(AGW_WIRE_PUT(out, ",\"tool_calls\":["));
        for (size_t i = 0; i < f->n_blocks; i++) {
            const agw_ir_fold_block *b = &f->blocks[i];
            if (b->kind != AGW_IR_TOOL_USE)
                continue;
            AGW_WIRE_TRY(agw_wire_put_sep(out, &first));
            AGW_WIRE_TRY(
                agw_openai_put_tool_call(out, b->tool_id, b->tool_name, agw_buf_view(&b->text)));
        }
        AGW_WIRE_TRY(agw_buf_append(out, "]", 1));
    }
    AGW_WIRE_TRY(AGW_WIRE_PUT(out, "},\"logprobs\":null,\"finish_reason\":\""));
    AGW_WIRE_TRY(agw_buf_append_str(out, agw_str_c(finish_name(f->stop))));
    AGW_WIRE_TRY(AGW_WIRE_PUT(out, "\"}],\"usage\":"));
    AGW_WIRE_TRY(put_usage(out, &f->usage));
    return agw_buf_append(out, "}", 1);
}
