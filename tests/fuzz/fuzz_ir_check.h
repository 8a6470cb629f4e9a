/* The IR event checker the decoder fuzz targets share: a target embeds a
 * fuzz_ir_checker, initialises it with the FUZZ_IR_* flags that describe its
 * decoder, and passes every event the decoder emits to fuzz_ir_check(),
 * which aborts on the first event out of place. The rules with no flag set
 * (each flag below relaxes the ones it names):
 *  - nothing after MESSAGE_STOP or ERROR;
 *  - one MESSAGE_START; every block and message event comes after it;
 *  - BLOCK_START: block indexes strictly increase (so are >= 0), one block
 *    open at a time, of a kind the protocol has (text, thinking, tool_use;
 *    Anthropic also redacted_thinking), a tool call with an id;
 *  - BLOCK_DELTA and BLOCK_STOP only for the open block; a delta is not
 *    empty and its kind fits the block (text/text, json/tool_use,
 *    thinking/thinking; Anthropic also signature/thinking);
 *  - MESSAGE_DELTA once, with no block open and a stop reason, and right
 *    after it MESSAGE_STOP;
 *  - ERROR with a status in 400..599, a type and a message; it is the only
 *    event of a whole answer;
 *  - no PING.
 */
#ifndef FUZZ_IR_CHECK_H
#define FUZZ_IR_CHECK_H

#include "fuzz_check.h"

#include "proto/ir.h"

enum {
    /* A stream: an ERROR may come at any point (an upstream fails mid-answer),
     * not only as the one event of a whole answer. */
    FUZZ_IR_STREAM = 1 << 0,
    /* PING may come anywhere before the end (Anthropic streams). */
    FUZZ_IR_PINGS = 1 << 1,
    /* Anthropic content: redacted_thinking blocks, signature deltas, and
     * errors without a message. */
    FUZZ_IR_ANTHROPIC = 1 << 2,
    /* The decoder passes the upstream's block and message events on as they
     * came (the Anthropic stream decoder): of the block and message rules
     * only "after MESSAGE_START", block indexes >= 0 and the block kinds
     * hold; order, open blocks, delta kinds, empty deltas, tool ids and stop
     * reasons are the upstream's business. */
    FUZZ_IR_RELAYED = 1 << 3,
};

typedef struct {
    unsigned flags;    /* FUZZ_IR_* */
    int started;       /* MESSAGE_START seen */
    int ended;         /* MESSAGE_STOP or ERROR seen: nothing may follow */
    int open;          /* the open block's index, -1 for none (not RELAYED) */
    int open_kind;     /* its agw_ir_block_kind */
    int last_index;    /* the last BLOCK_START's index, -1 before the first */
    int saw_delta_msg; /* MESSAGE_DELTA seen */
    size_t events;     /* events checked so far */
} fuzz_ir_checker;

static void fuzz_ir_check_init(fuzz_ir_checker *c, unsigned flags)
{
    *c = (fuzz_ir_checker){ .flags = flags, .open = -1, .open_kind = -1, .last_index = -1 };
}

/* 1 when the protocol has that kind of block in an answer. */
static int fuzz_ir_block_known(unsigned flags, agw_ir_block_kind b)
{
    switch (b) {
    case AGW_IR_TEXT: case AGW_IR_THINKING: case AGW_IR_TOOL_USE: return 1;
    case AGW_IR_REDACTED_THINKING: return (flags & FUZZ_IR_ANTHROPIC) != 0;
    case AGW_IR_IMAGE: case AGW_IR_TOOL_RESULT: return 0;
    }
    return 0;
}

/* 1 when a delta of kind d may go to a block of kind block. */
static int fuzz_ir_delta_fits(unsigned flags, agw_ir_delta_kind d, int block)
{
    switch (d) {
    case AGW_IR_DELTA_TEXT: return block == AGW_IR_TEXT;
    case AGW_IR_DELTA_JSON: return block == AGW_IR_TOOL_USE;
    case AGW_IR_DELTA_THINKING: return block == AGW_IR_THINKING;
    case AGW_IR_DELTA_SIGNATURE: return (flags & FUZZ_IR_ANTHROPIC) && block == AGW_IR_THINKING;
    }
    return 0;
}

static void fuzz_ir_check(fuzz_ir_checker *c, const agw_ir_event *ev)
{
    int ordered = !(c->flags & FUZZ_IR_RELAYED);

    check(!c->ended, "nothing after MESSAGE_STOP or ERROR");
    check(!ordered || !c->saw_delta_msg || ev->kind == AGW_IR_EV_MESSAGE_STOP,
          "MESSAGE_STOP right after MESSAGE_DELTA");
    c->events++;
    switch (ev->kind) {
    case AGW_IR_EV_MESSAGE_START:
        check(!c->started, "one MESSAGE_START");
        c->started = 1;
        break;
    case AGW_IR_EV_BLOCK_START:
        check(c->started, "blocks after MESSAGE_START");
        check(ev->index >= 0, "block indexes are not negative");
        check(fuzz_ir_block_known(c->flags, ev->block), "block kinds the protocol has");
        if (!ordered)
            break;
        check(c->open < 0, "the previous block was closed");
        check(ev->index > c->last_index, "block indexes increase");
        check(ev->block != AGW_IR_TOOL_USE || ev->tool_id.len > 0, "tool calls have an id");
        c->last_index = c->open = ev->index;
        c->open_kind = (int)ev->block;
        break;
    case AGW_IR_EV_BLOCK_DELTA:
        check(c->started && ev->index >= 0, "deltas after MESSAGE_START, indexes >= 0");
        if (!ordered)
            break;
        check(ev->index == c->open && c->open >= 0, "deltas go to the open block");
        check(fuzz_ir_delta_fits(c->flags, ev->delta_kind, c->open_kind),
              "delta kind matches the block");
        check(ev->delta.len > 0, "no empty deltas");
        break;
    case AGW_IR_EV_BLOCK_STOP:
        check(c->started && ev->index >= 0, "stops after MESSAGE_START, indexes >= 0");
        if (!ordered)
            break;
        check(ev->index == c->open && c->open >= 0, "stop the open block");
        c->open = -1;
        break;
    case AGW_IR_EV_MESSAGE_DELTA:
        check(c->started, "MESSAGE_DELTA after MESSAGE_START");
        if (ordered) {
            check(c->open < 0, "MESSAGE_DELTA after the blocks");
            check(ev->stop != AGW_IR_STOP_NONE, "a stop reason");
        }
        c->saw_delta_msg = 1;
        break;
    case AGW_IR_EV_MESSAGE_STOP:
        check(c->started, "MESSAGE_STOP after MESSAGE_START");
        check(!ordered || c->saw_delta_msg, "MESSAGE_DELTA before MESSAGE_STOP");
        c->ended = 1;
        break;
    case AGW_IR_EV_ERROR:
        check((c->flags & FUZZ_IR_STREAM) || !c->started, "an error answer is the only event");
        check(ev->status >= 400 && ev->status <= 599, "error status");
        check(ev->error_type.len > 0, "error type");
        check(ev->error_message.len > 0 || (c->flags & FUZZ_IR_ANTHROPIC), "error message");
        c->ended = 1;
        break;
    case AGW_IR_EV_PING:
        check(c->flags & FUZZ_IR_PINGS, "no pings from this decoder");
        break;
    }
}

#endif
