#include "proto/continuation.h"

#include <string.h>

void agw_continuation_init(agw_continuation *c, agw_ir_sink next, void *next_ud)
{
    memset(c, 0, sizeof *c);
    c->next = next;
    c->next_ud = next_ud;
    c->text_index = c->last_index = -1;
    agw_buf_init(&c->text, AGW_LIMIT_UPSTREAM_BODY);
    agw_buf_init(&c->skip, AGW_LIMIT_SMALL);
    c->done = (agw_ir_usage)AGW_IR_USAGE_UNKNOWN;
    c->now = (agw_ir_usage)AGW_IR_USAGE_UNKNOWN;
}

static int64_t add(int64_t a, int64_t b)
{
    if (a < 0 && b < 0)
        return -1;
    return (a < 0 ? 0 : a) + (b < 0 ? 0 : b);
}

static agw_ir_usage sum(agw_ir_usage a, agw_ir_usage b)
{
    return (agw_ir_usage){ add(a.input, b.input), add(a.output, b.output),
                           add(a.cache_read, b.cache_read), add(a.cache_write, b.cache_write),
                           add(a.reasoning, b.reasoning) };
}

void agw_continuation_round(agw_continuation *c, int allow)
{
    if (c->round > 0) {
        c->done = sum(c->done, c->now);
        c->now = (agw_ir_usage)AGW_IR_USAGE_UNKNOWN;
        c->merging = c->held && c->text_open;
    }
    c->round++;
    c->allow = allow;
    c->held = 0;
    c->first_block = 1;
}

static int send(agw_continuation *c, const agw_ir_event *ev)
{
    int idx = ev->index;
    if (ev->kind == AGW_IR_EV_BLOCK_START || ev->kind == AGW_IR_EV_BLOCK_DELTA ||
        ev->kind == AGW_IR_EV_BLOCK_STOP) {
        if (idx > c->last_index)
            c->last_index = idx;
    }
    return c->next(c->next_ud, ev);
}

/* Sends the text block's stop that was held back (or that its round never
 * sent), before anything that must come after it. */
static int close_text_block(agw_continuation *c)
{
    if (!c->stop_pending)
        return 0;
    c->stop_pending = 0;
    c->text_open = 0;
    agw_ir_event ev;
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_STOP);
    ev.index = c->text_index;
    return send(c, &ev);
}

/* A continuation's first block: text goes on in the held block; anything
 * else comes after it. */
static int first_block_of_round(agw_continuation *c, const agw_ir_event *ev, int *swallow)
{
    c->first_block = 0;
    *swallow = 0;
    if (c->round <= 1) {
        c->base = 0;
        return 0;
    }
    if (c->merging && ev->kind == AGW_IR_EV_BLOCK_START && ev->block == AGW_IR_TEXT) {
        c->base = c->text_index - ev->index;
        c->merging = 0;
        c->stop_pending = 0;
        c->skipping = c->skip.len > 0;
        c->skip_at = 0;
        *swallow = 1;
        return 0;
    }
    c->merging = 0;
    /* the held block ends here, stopped or not by its own round */
    if (c->text_open && c->text_index >= 0)
        c->stop_pending = 1;
    c->base = c->last_index + 1 - ev->index;
    return close_text_block(c);
}

/* A text delta of the held block: drops the repeated whitespace at a seam,
 * keeps the text. Sets *rest to what goes to the client. */
static int take_text(agw_continuation *c, agw_str delta, agw_str *rest)
{
    size_t i = 0;
    while (c->skipping && i < delta.len) {
        if (c->skip_at < c->skip.len && delta.ptr[i] == c->skip.data[c->skip_at]) {
            c->skip_at++;
            i++;
            if (c->skip_at == c->skip.len)
                c->skipping = 0;
        } else {
            c->skipping = 0;
        }
    }
    *rest = (agw_str){ delta.ptr + i, delta.len - i };
    if (agw_buf_append_str(&c->text, delta)) {
        c->failed = 1;
        return 1;
    }
    return 0;
}

int agw_continuation_event(void *ud, const agw_ir_event *in)
{
    agw_continuation *c = ud;
    agw_ir_event ev = *in;
    int swallow = 0;
    switch (in->kind) {
    case AGW_IR_EV_MESSAGE_START:
        agw_ir_usage_merge(&c->now, &in->usage);
        return c->round > 1 ? 0 : send(c, &ev);
    case AGW_IR_EV_PING:
        return send(c, &ev);
    case AGW_IR_EV_BLOCK_START:
    case AGW_IR_EV_BLOCK_DELTA:
    case AGW_IR_EV_BLOCK_STOP:
        if (c->first_block && first_block_of_round(c, in, &swallow))
            return 1;
        ev.index = in->index + c->base;
        break;
    default:
        break;
    }
    switch (in->kind) {
    case AGW_IR_EV_BLOCK_START:
        if (swallow)
            return 0;
        if (close_text_block(c))
            return 1;
        if (in->block == AGW_IR_TOOL_USE)
            c->saw_tool = 1;
        if (in->block == AGW_IR_TEXT)
            c->text_index = ev.index;
        c->text_open = in->block == AGW_IR_TEXT;
        return send(c, &ev);
    case AGW_IR_EV_BLOCK_DELTA:
        if (ev.index != c->text_index) {
            if (close_text_block(c))
                return 1;
            return send(c, &ev);
        }
        if (in->delta_kind == AGW_IR_DELTA_TEXT) {
            if (take_text(c, in->delta, &ev.delta))
                return 1;
            if (!ev.delta.len)
                return 0;
        }
        return send(c, &ev);
    case AGW_IR_EV_BLOCK_STOP:
        if (ev.index == c->text_index && c->text_open && c->allow && !c->saw_tool) {
            c->stop_pending = 1;
            return 0;
        }
        if (close_text_block(c))
            return 1;
        if (ev.index == c->text_index)
            c->text_open = 0;
        return send(c, &ev);
    case AGW_IR_EV_MESSAGE_DELTA:
        agw_ir_usage_merge(&c->now, &in->usage);
        if (c->allow && in->stop == AGW_IR_STOP_MAX_TOKENS && !c->saw_tool && c->text_open &&
            c->text.len) {
            c->held = 1;
            return 0;
        }
        if (close_text_block(c))
            return 1;
        if (c->round > 1)
            ev.usage = sum(c->done, c->now);
        return send(c, &ev);
    case AGW_IR_EV_MESSAGE_STOP:
        return c->held ? 0 : send(c, &ev);
    default: /* ERROR: the answer ends here, whatever was held */
        return send(c, &ev);
    }
}

int agw_continuation_held(const agw_continuation *c)
{
    return c->held;
}

int agw_continuation_open(const agw_continuation *c)
{
    return c->held || (c->round > 1 && c->first_block && c->merging);
}

agw_str agw_continuation_text(const agw_continuation *c)
{
    return agw_buf_view(&c->text);
}

void agw_continuation_skip(agw_continuation *c, agw_str ws)
{
    agw_buf_reset(&c->skip);
    if (agw_buf_append_str(&c->skip, ws))
        agw_buf_reset(&c->skip);
}

int agw_continuation_release(agw_continuation *c)
{
    if (!agw_continuation_open(c))
        return 0;
    c->held = 0;
    c->merging = 0;
    if (c->text_open)
        c->stop_pending = 1;
    if (close_text_block(c))
        return 1;
    agw_ir_event ev;
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_DELTA);
    ev.stop = AGW_IR_STOP_MAX_TOKENS;
    ev.usage = sum(c->done, c->now);
    if (send(c, &ev))
        return 1;
    agw_ir_event_init(&ev, AGW_IR_EV_MESSAGE_STOP);
    return send(c, &ev);
}

agw_ir_usage agw_continuation_usage(const agw_continuation *c)
{
    return sum(c->done, c->now);
}

int agw_continuation_rounds(const agw_continuation *c)
{
    return c->round;
}

void agw_continuation_free(agw_continuation *c)
{
    agw_buf_free(&c->text);
    agw_buf_free(&c->skip);
}
