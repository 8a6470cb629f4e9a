#include "proto/ir.h"
#include "proto/wire.h"

#include <stdlib.h>

/* Blocks an answer may hold before the fold refuses it: far more than any
 * model emits, small enough that a hostile upstream cannot make us allocate
 * without bound through sparse indexes. */
#define FOLD_MAX_BLOCKS 1024

static const char *const stop_names[] = {
    NULL, "end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal", "pause_turn",
};

const char *agw_ir_stop_name(agw_ir_stop s)
{
    return (unsigned)s < sizeof stop_names / sizeof stop_names[0] ? stop_names[s] : NULL;
}

agw_ir_stop agw_ir_stop_parse(agw_str name)
{
    for (size_t i = 1; i < sizeof stop_names / sizeof stop_names[0]; i++)
        if (agw_str_eq(name, agw_str_c(stop_names[i])))
            return (agw_ir_stop)i;
    return AGW_IR_STOP_NONE;
}

void agw_ir_request_init(agw_ir_request *rq)
{
    memset(rq, 0, sizeof *rq);
    rq->tool_choice = AGW_IR_TC_UNSET;
    rq->parallel_tool_calls = -1;
    rq->max_tokens = -1;
    rq->top_k = -1;
}

agw_ir_block *agw_ir_push_block(agw_arena *a, agw_ir_block **v, size_t *n, size_t *cap)
{
    *v = agw_wire_grow(a, *v, *n, cap, sizeof **v);
    agw_ir_block *b = &(*v)[(*n)++];
    memset(b, 0, sizeof *b);
    return b;
}

void agw_ir_event_init(agw_ir_event *ev, agw_ir_event_kind kind)
{
    memset(ev, 0, sizeof *ev);
    ev->kind = kind;
    ev->usage = (agw_ir_usage)AGW_IR_USAGE_UNKNOWN;
}

#define EST_BYTES_PER_TOKEN 4
#define EST_PER_MESSAGE 4
#define EST_PER_IMAGE 1600

static size_t block_bytes(const agw_ir_block *b, size_t depth)
{
    size_t n = b->text.len + b->tool_name.len + b->tool_input.len;
    if (b->kind == AGW_IR_IMAGE)
        n += EST_PER_IMAGE * EST_BYTES_PER_TOKEN;
    /* Tool results nest blocks one level; deeper nesting does not occur. */
    for (size_t i = 0; depth == 0 && i < b->n_content; i++)
        n += block_bytes(&b->content[i], depth + 1);
    return n;
}

int64_t agw_ir_estimate_tokens(const agw_ir_request *rq)
{
    size_t bytes = 0;
    for (size_t i = 0; i < rq->n_system; i++)
        bytes += block_bytes(&rq->system[i], 0);
    for (size_t i = 0; i < rq->n_messages; i++) {
        bytes += EST_PER_MESSAGE * EST_BYTES_PER_TOKEN;
        for (size_t j = 0; j < rq->messages[i].n_blocks; j++)
            bytes += block_bytes(&rq->messages[i].blocks[j], 0);
    }
    for (size_t i = 0; i < rq->n_tools; i++)
        bytes += rq->tools[i].name.len + rq->tools[i].description.len + rq->tools[i].schema.len;
    int64_t tokens = (int64_t)((bytes + EST_BYTES_PER_TOKEN - 1) / EST_BYTES_PER_TOKEN);
    return tokens > 0 ? tokens : 1;
}

void agw_ir_fold_init(agw_ir_fold *f, size_t max_bytes)
{
    memset(f, 0, sizeof *f);
    f->usage = (agw_ir_usage)AGW_IR_USAGE_UNKNOWN;
    f->max_bytes = max_bytes;
}

void agw_ir_usage_merge(agw_ir_usage *into, const agw_ir_usage *from)
{
    if (from->input >= 0)
        into->input = from->input;
    if (from->output >= 0)
        into->output = from->output;
    if (from->cache_read >= 0)
        into->cache_read = from->cache_read;
    if (from->cache_write >= 0)
        into->cache_write = from->cache_write;
    if (from->reasoning >= 0)
        into->reasoning = from->reasoning;
}

static agw_err append_counted(agw_ir_fold *f, agw_buf *b, agw_str s)
{
    if (s.len > f->max_bytes - f->bytes)
        return AGW_ETOOBIG;
    f->bytes += s.len;
    return agw_buf_append_str(b, s);
}

agw_err agw_ir_fold_add(agw_ir_fold *f, const agw_ir_event *ev)
{
    switch (ev->kind) {
    case AGW_IR_EV_MESSAGE_START:
        f->started = 1;
        if (ev->id.len)
            f->id = agw_arena_str(&f->arena, ev->id);
        if (ev->model.len)
            f->model = agw_arena_str(&f->arena, ev->model);
        agw_ir_usage_merge(&f->usage, &ev->usage);
        return AGW_OK;
    case AGW_IR_EV_BLOCK_START: {
        if (ev->index < 0 || ev->index >= FOLD_MAX_BLOCKS || (size_t)ev->index < f->n_blocks)
            return AGW_EINVAL;
        size_t need = (size_t)ev->index + 1;
        if (need > f->cap_blocks) {
            size_t cap = f->cap_blocks ? f->cap_blocks * 2 : 8;
            while (cap < need)
                cap *= 2;
            f->blocks = xrealloc(f->blocks, cap * sizeof *f->blocks);
            f->cap_blocks = cap;
        }
        /* Indexes skipped by the producer become empty text blocks, which
         * the response encoders leave out. */
        for (size_t i = f->n_blocks; i < need; i++) {
            agw_ir_fold_block *b = &f->blocks[i];
            memset(b, 0, sizeof *b);
            b->kind = AGW_IR_TEXT;
            agw_buf_init(&b->text, AGW_LIMIT_UPSTREAM_BODY);
            agw_buf_init(&b->signature, AGW_LIMIT_SMALL);
        }
        f->n_blocks = need;
        agw_ir_fold_block *b = &f->blocks[ev->index];
        b->kind = ev->block;
        if (ev->block == AGW_IR_TOOL_USE) {
            b->tool_id = agw_arena_str(&f->arena, ev->tool_id);
            b->tool_name = agw_arena_str(&f->arena, ev->tool_name);
        }
        if (ev->block == AGW_IR_REDACTED_THINKING && ev->delta.len)
            return append_counted(f, &b->text, ev->delta);
        return AGW_OK;
    }
    case AGW_IR_EV_BLOCK_DELTA: {
        if (ev->index < 0 || (size_t)ev->index >= f->n_blocks)
            return AGW_EINVAL;
        agw_ir_fold_block *b = &f->blocks[ev->index];
        return append_counted(f, ev->delta_kind == AGW_IR_DELTA_SIGNATURE ? &b->signature : &b->text,
                              ev->delta);
    }
    case AGW_IR_EV_BLOCK_STOP:
        return ev->index >= 0 && (size_t)ev->index < f->n_blocks ? AGW_OK : AGW_EINVAL;
    case AGW_IR_EV_MESSAGE_DELTA:
        if (ev->stop != AGW_IR_STOP_NONE)
            f->stop = ev->stop;
        if (ev->stop_sequence.len)
            f->stop_sequence = agw_arena_str(&f->arena, ev->stop_sequence);
        agw_ir_usage_merge(&f->usage, &ev->usage);
        return AGW_OK;
    case AGW_IR_EV_MESSAGE_STOP:
        f->finished = 1;
        return AGW_OK;
    case AGW_IR_EV_ERROR:
        f->failed = 1;
        f->error_status = ev->status;
        f->error_type = agw_arena_str(&f->arena, ev->error_type);
        f->error_message = agw_arena_str(&f->arena, ev->error_message);
        return AGW_OK;
    case AGW_IR_EV_PING:
        return AGW_OK;
    }
    return AGW_EINVAL;
}

void agw_ir_fold_free(agw_ir_fold *f)
{
    for (size_t i = 0; i < f->n_blocks; i++) {
        agw_buf_free(&f->blocks[i].text);
        agw_buf_free(&f->blocks[i].signature);
    }
    free(f->blocks);
    agw_arena_free(&f->arena);
    memset(f, 0, sizeof *f);
}
