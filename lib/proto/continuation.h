/*
 * continuation: one answer to the client made of several upstream answers,
 * when the first is cut by an output cap the client did not ask for.
 *
 * A stage over IR events, between the upstream's decoder and the rest of the
 * bridge. Each upstream answer is a round. In a round that may be continued
 * (agw_continuation_round's `allow`), an answer that stops with max_tokens
 * while its last block is text, and that has no tool call, does not end: its
 * text block's stop, its message_delta and its message_stop are held back,
 * and agw_continuation_held says so. The caller then asks the provider to go
 * on (agw_continuation_text is the text so far, as the provider wrote it)
 * and feeds that answer as the next round: its message_start is swallowed,
 * its first text block continues the held one (same index, no second
 * block_start), later blocks get the indices after it, and its end ends the
 * whole answer (or is held again). So the client sees one message whose text
 * is the rounds' texts joined. agw_continuation_release sends what is held
 * when no further round will come.
 *
 * Usage: every round's tokens add up (agw_continuation_usage); the
 * message_delta that ends the answer carries the sums.
 *
 * A continuation that starts by repeating whitespace the caller trimmed off
 * the text it sent back (agw_continuation_skip) loses that whitespace, so the
 * seam has each character once.
 *
 * Ownership: the stage owns its buffers; free with agw_continuation_free.
 */
#ifndef AGW_CONTINUATION_H
#define AGW_CONTINUATION_H

#include "core/core.h"
#include "proto/ir.h"

typedef struct {
    agw_ir_sink next;
    void *next_ud;
    int round;            /* rounds started so far */
    int allow;            /* the current round may end held */
    int held;             /* the current round ended held */
    int saw_tool;         /* a tool call in any round */
    int text_index;       /* the client index of the last text block; -1 none */
    int text_open;        /* that block is the last one and not stopped downstream */
    int stop_pending;     /* its block_stop came and is held back */
    int last_index;       /* the highest client index sent */
    int base;             /* added to this round's indices */
    int first_block;      /* no block of this round seen yet */
    int merging;          /* this round's first text block continues text_index */
    agw_buf text;         /* the text of the answer's text block(s) so far */
    agw_buf skip;         /* whitespace the next round may repeat at its start */
    size_t skip_at;       /* how much of it has matched */
    int skipping;
    agw_ir_usage done;    /* the sums of the finished rounds */
    agw_ir_usage now;     /* the current round's, merged as reported */
    int failed;           /* a buffer could not grow */
} agw_continuation;

void agw_continuation_init(agw_continuation *c, agw_ir_sink next, void *next_ud);
/* Starts a round; `allow`: it may end held. Before the first round's events
 * and before each continuation's. */
void agw_continuation_round(agw_continuation *c, int allow);
/* An agw_ir_sink (user data: the stage). */
int agw_continuation_event(void *c, const agw_ir_event *ev);
/* 1 when the last round ended held: the answer waits for another round or
 * agw_continuation_release. */
int agw_continuation_held(const agw_continuation *c);
/* 1 when the answer has not ended: the last round ended held, or a round
 * after it started and sent nothing yet (it failed: release ends the
 * answer as it was). */
int agw_continuation_open(const agw_continuation *c);
/* The text of the answer so far, as the provider wrote it. */
agw_str agw_continuation_text(const agw_continuation *c);
/* The next round's text may start with `ws`, which the caller trimmed off
 * the text it sent back: that much of it is dropped. */
void agw_continuation_skip(agw_continuation *c, agw_str ws);
/* Sends the held end: the text block's stop, the message_delta (stop
 * max_tokens, the summed usage) and message_stop. Non-zero when the next
 * sink stopped. */
int agw_continuation_release(agw_continuation *c);
/* Every round's usage added up (-1 fields: never reported). */
agw_ir_usage agw_continuation_usage(const agw_continuation *c);
/* Rounds started so far. */
int agw_continuation_rounds(const agw_continuation *c);
void agw_continuation_free(agw_continuation *c);

#endif
