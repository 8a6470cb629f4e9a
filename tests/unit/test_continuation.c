/* Unit tests for proto/continuation: rounds of upstream events joined into
 * one answer's events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/continuation.h"

/* Every event the stage sends, one line each: "S", "B0t", "D0:text", "X0",
 * "m<stop>:<output>", "M", "E", "P". */
typedef struct {
    agw_buf log;
} sink_t;

static int on_event(void *ud, const agw_ir_event *ev)
{
    sink_t *k = ud;
    agw_err e = AGW_OK;
    switch (ev->kind) {
    case AGW_IR_EV_MESSAGE_START:
        e = agw_buf_appendf(&k->log, "S|");
        break;
    case AGW_IR_EV_BLOCK_START:
        e = agw_buf_appendf(&k->log, "B%d%c|", ev->index, ev->block == AGW_IR_TEXT ? 't' : 'u');
        break;
    case AGW_IR_EV_BLOCK_DELTA:
        e = agw_buf_appendf(&k->log, "D%d:%.*s|", ev->index, (int)ev->delta.len, ev->delta.ptr);
        break;
    case AGW_IR_EV_BLOCK_STOP:
        e = agw_buf_appendf(&k->log, "X%d|", ev->index);
        break;
    case AGW_IR_EV_MESSAGE_DELTA:
        e = agw_buf_appendf(&k->log, "m%s:%lld|", agw_ir_stop_name(ev->stop),
                            (long long)ev->usage.output);
        break;
    case AGW_IR_EV_MESSAGE_STOP:
        e = agw_buf_appendf(&k->log, "M|");
        break;
    case AGW_IR_EV_ERROR:
        e = agw_buf_appendf(&k->log, "E|");
        break;
    case AGW_IR_EV_PING:
        e = agw_buf_appendf(&k->log, "P|");
        break;
    }
    assert_int_equal(e, AGW_OK);
    return 0;
}

static void ev(agw_continuation *c, agw_ir_event_kind kind, int index, const char *text)
{
    agw_ir_event e;
    agw_ir_event_init(&e, kind);
    e.index = index;
    if (kind == AGW_IR_EV_BLOCK_START)
        e.block = text && !strcmp(text, "tool") ? AGW_IR_TOOL_USE : AGW_IR_TEXT;
    if (kind == AGW_IR_EV_BLOCK_DELTA) {
        e.delta_kind = AGW_IR_DELTA_TEXT;
        e.delta = agw_str_c(text);
    }
    if (kind == AGW_IR_EV_MESSAGE_START)
        e.usage.input = 10;
    if (kind == AGW_IR_EV_MESSAGE_DELTA) {
        e.stop = agw_ir_stop_parse(agw_str_c(text));
        e.usage.output = 5;
    }
    assert_int_equal(agw_continuation_event(c, &e), 0);
}

/* One upstream answer of text deltas ending with `stop`. */
static void answer(agw_continuation *c, const char *const *deltas, const char *stop)
{
    ev(c, AGW_IR_EV_MESSAGE_START, 0, NULL);
    ev(c, AGW_IR_EV_BLOCK_START, 0, "text");
    for (; *deltas; deltas++)
        ev(c, AGW_IR_EV_BLOCK_DELTA, 0, *deltas);
    ev(c, AGW_IR_EV_BLOCK_STOP, 0, NULL);
    ev(c, AGW_IR_EV_MESSAGE_DELTA, 0, stop);
    ev(c, AGW_IR_EV_MESSAGE_STOP, 0, NULL);
}

static void test_rounds_join_into_one_message(void **state)
{
    (void)state;
    sink_t k = { AGW_BUF_INIT(1 << 16) };
    agw_continuation c;
    agw_continuation_init(&c, on_event, &k);
    agw_continuation_round(&c, 1);
    answer(&c, (const char *const[]){ "Hello, ", "wor", NULL }, "max_tokens");
    assert_true(agw_continuation_held(&c));
    assert_string_equal(agw_continuation_text(&c).ptr, "Hello, wor");
    assert_string_equal(k.log.data, "S|B0t|D0:Hello, |D0:wor|");
    agw_continuation_skip(&c, AGW_STR_LIT(" "));
    agw_continuation_round(&c, 1);
    assert_true(agw_continuation_open(&c));
    answer(&c, (const char *const[]){ "ld", NULL }, "end_turn");
    assert_false(agw_continuation_held(&c));
    assert_false(agw_continuation_open(&c));
    /* the round's message_start and block_start are swallowed; its end is
     * the answer's, with the output of both rounds */
    assert_string_equal(k.log.data, "S|B0t|D0:Hello, |D0:wor|D0:ld|X0|mend_turn:10|M|");
    agw_ir_usage u = agw_continuation_usage(&c);
    assert_int_equal(u.input, 20);
    assert_int_equal(u.output, 10);
    assert_int_equal(agw_continuation_rounds(&c), 2);
    agw_continuation_free(&c);
    agw_buf_free(&k.log);
}

static void test_seam_whitespace_is_not_repeated(void **state)
{
    (void)state;
    sink_t k = { AGW_BUF_INIT(1 << 16) };
    agw_continuation c;
    agw_continuation_init(&c, on_event, &k);
    agw_continuation_round(&c, 1);
    answer(&c, (const char *const[]){ "a. \n", NULL }, "max_tokens");
    agw_continuation_skip(&c, AGW_STR_LIT(" \n"));
    agw_continuation_round(&c, 1);
    /* the continuation repeats the trimmed whitespace across two deltas */
    answer(&c, (const char *const[]){ " ", "\nb", NULL }, "end_turn");
    assert_string_equal(k.log.data, "S|B0t|D0:a. \n|D0:b|X0|mend_turn:10|M|");
    agw_continuation_free(&c);
    agw_buf_free(&k.log);
}

static void test_not_held_when_not_allowed_or_tools(void **state)
{
    (void)state;
    sink_t k = { AGW_BUF_INIT(1 << 16) };
    agw_continuation c;
    /* not allowed: the end passes */
    agw_continuation_init(&c, on_event, &k);
    agw_continuation_round(&c, 0);
    answer(&c, (const char *const[]){ "x", NULL }, "max_tokens");
    assert_false(agw_continuation_held(&c));
    assert_string_equal(k.log.data, "S|B0t|D0:x|X0|mmax_tokens:5|M|");
    agw_continuation_free(&c);
    /* a tool call in the answer: never continued */
    agw_buf_reset(&k.log);
    agw_continuation_init(&c, on_event, &k);
    agw_continuation_round(&c, 1);
    ev(&c, AGW_IR_EV_MESSAGE_START, 0, NULL);
    ev(&c, AGW_IR_EV_BLOCK_START, 0, "text");
    ev(&c, AGW_IR_EV_BLOCK_DELTA, 0, "x");
    ev(&c, AGW_IR_EV_BLOCK_STOP, 0, NULL);
    ev(&c, AGW_IR_EV_BLOCK_START, 1, "tool");
    ev(&c, AGW_IR_EV_BLOCK_STOP, 1, NULL);
    ev(&c, AGW_IR_EV_MESSAGE_DELTA, 0, "max_tokens");
    ev(&c, AGW_IR_EV_MESSAGE_STOP, 0, NULL);
    assert_false(agw_continuation_held(&c));
    assert_string_equal(k.log.data, "S|B0t|D0:x|X0|B1u|X1|mmax_tokens:5|M|");
    agw_continuation_free(&c);
    /* other stops are never held */
    agw_buf_reset(&k.log);
    agw_continuation_init(&c, on_event, &k);
    agw_continuation_round(&c, 1);
    answer(&c, (const char *const[]){ "x", NULL }, "end_turn");
    assert_false(agw_continuation_held(&c));
    assert_string_equal(k.log.data, "S|B0t|D0:x|X0|mend_turn:5|M|");
    agw_continuation_free(&c);
    agw_buf_free(&k.log);
}

static void test_release_and_failed_round(void **state)
{
    (void)state;
    sink_t k = { AGW_BUF_INIT(1 << 16) };
    agw_continuation c;
    agw_continuation_init(&c, on_event, &k);
    agw_continuation_round(&c, 1);
    answer(&c, (const char *const[]){ "x", NULL }, "max_tokens");
    /* a round starts and fails before any event: the answer ends as it was */
    agw_continuation_round(&c, 1);
    assert_true(agw_continuation_open(&c));
    assert_int_equal(agw_continuation_release(&c), 0);
    assert_false(agw_continuation_open(&c));
    assert_string_equal(k.log.data, "S|B0t|D0:x|X0|mmax_tokens:5|M|");
    assert_int_equal(agw_continuation_release(&c), 0); /* once */
    assert_string_equal(k.log.data, "S|B0t|D0:x|X0|mmax_tokens:5|M|");
    agw_continuation_free(&c);
    agw_buf_free(&k.log);
}

static void test_later_blocks_follow_the_held_one(void **state)
{
    (void)state;
    sink_t k = { AGW_BUF_INIT(1 << 16) };
    agw_continuation c;
    agw_continuation_init(&c, on_event, &k);
    agw_continuation_round(&c, 1);
    answer(&c, (const char *const[]){ "a", NULL }, "max_tokens");
    agw_continuation_round(&c, 1);
    ev(&c, AGW_IR_EV_MESSAGE_START, 0, NULL);
    ev(&c, AGW_IR_EV_BLOCK_START, 0, "text");
    ev(&c, AGW_IR_EV_BLOCK_DELTA, 0, "b");
    ev(&c, AGW_IR_EV_BLOCK_STOP, 0, NULL);
    ev(&c, AGW_IR_EV_BLOCK_START, 1, "tool");
    ev(&c, AGW_IR_EV_BLOCK_STOP, 1, NULL);
    ev(&c, AGW_IR_EV_MESSAGE_DELTA, 0, "tool_use");
    ev(&c, AGW_IR_EV_MESSAGE_STOP, 0, NULL);
    assert_string_equal(k.log.data, "S|B0t|D0:a|D0:b|X0|B1u|X1|mtool_use:10|M|");
    agw_continuation_free(&c);
    /* a continuation that starts with another kind of block: the held text
     * block ends first, the new block takes the next index */
    agw_buf_reset(&k.log);
    agw_continuation_init(&c, on_event, &k);
    agw_continuation_round(&c, 1);
    answer(&c, (const char *const[]){ "a", NULL }, "max_tokens");
    agw_continuation_round(&c, 1);
    ev(&c, AGW_IR_EV_MESSAGE_START, 0, NULL);
    ev(&c, AGW_IR_EV_BLOCK_START, 0, "tool");
    ev(&c, AGW_IR_EV_BLOCK_STOP, 0, NULL);
    ev(&c, AGW_IR_EV_ERROR, 0, NULL);
    assert_string_equal(k.log.data, "S|B0t|D0:a|X0|B1u|X1|E|");
    agw_continuation_free(&c);
    agw_buf_free(&k.log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rounds_join_into_one_message),
        cmocka_unit_test(test_seam_whitespace_is_not_repeated),
        cmocka_unit_test(test_not_held_when_not_allowed_or_tools),
        cmocka_unit_test(test_release_and_failed_round),
        cmocka_unit_test(test_later_blocks_follow_the_held_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
