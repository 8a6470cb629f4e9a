/* Unit tests for lib/proto/ir: stop-reason names, the fold, the token estimate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proto/ir.h"

static void test_stop_names_round_trip(void **state)
{
    (void)state;
    for (int s = AGW_IR_STOP_END_TURN; s <= AGW_IR_STOP_PAUSE; s++) {
        const char *name = agw_ir_stop_name((agw_ir_stop)s);
        assert_non_null(name);
        assert_int_equal(agw_ir_stop_parse(agw_str_c(name)), s);
    }
    assert_null(agw_ir_stop_name(AGW_IR_STOP_NONE));
    assert_string_equal(agw_ir_stop_name(AGW_IR_STOP_TOOL_USE), "tool_use");
    assert_string_equal(agw_ir_stop_name(AGW_IR_STOP_PAUSE), "pause_turn");
    assert_int_equal(agw_ir_stop_parse(AGW_STR_LIT("stop")), AGW_IR_STOP_NONE);
    assert_int_equal(agw_ir_stop_parse(AGW_STR_LIT("")), AGW_IR_STOP_NONE);
}

static agw_ir_event ev(agw_ir_event_kind kind)
{
    agw_ir_event e;
    agw_ir_event_init(&e, kind);
    return e;
}

static void add(agw_ir_fold *f, agw_ir_event e)
{
    assert_int_equal(agw_ir_fold_add(f, &e), AGW_OK);
}

static agw_ir_event start_block(int index, agw_ir_block_kind kind)
{
    agw_ir_event e = ev(AGW_IR_EV_BLOCK_START);
    e.index = index;
    e.block = kind;
    return e;
}

static agw_ir_event delta(int index, agw_ir_delta_kind kind, agw_str text)
{
    agw_ir_event e = ev(AGW_IR_EV_BLOCK_DELTA);
    e.index = index;
    e.delta_kind = kind;
    e.delta = text;
    return e;
}

static void test_fold_collects_blocks_usage_and_stop(void **state)
{
    (void)state;
    agw_ir_fold f;
    agw_ir_fold_init(&f, 1 << 20);
    agw_ir_event e = ev(AGW_IR_EV_MESSAGE_START);
    e.id = AGW_STR_LIT("msg_1");
    e.model = AGW_STR_LIT("claude-x");
    e.usage.input = 10;
    e.usage.cache_read = 3;
    add(&f, e);
    add(&f, start_block(0, AGW_IR_THINKING));
    add(&f, delta(0, AGW_IR_DELTA_THINKING, AGW_STR_LIT("hmm")));
    add(&f, delta(0, AGW_IR_DELTA_SIGNATURE, AGW_STR_LIT("sig")));
    add(&f, start_block(1, AGW_IR_TEXT));
    /* A NUL inside the text must survive: views carry lengths. */
    add(&f, delta(1, AGW_IR_DELTA_TEXT, (agw_str){ "a\0b", 3 }));
    add(&f, delta(1, AGW_IR_DELTA_TEXT, AGW_STR_LIT("c")));
    e = start_block(2, AGW_IR_TOOL_USE);
    e.tool_id = AGW_STR_LIT("toolu_1");
    e.tool_name = AGW_STR_LIT("get_weather");
    add(&f, e);
    add(&f, delta(2, AGW_IR_DELTA_JSON, AGW_STR_LIT("")));
    add(&f, delta(2, AGW_IR_DELTA_JSON, AGW_STR_LIT("{\"ci")));
    add(&f, delta(2, AGW_IR_DELTA_JSON, AGW_STR_LIT("ty\":\"Paris\"}")));
    e = ev(AGW_IR_EV_BLOCK_STOP);
    e.index = 2;
    add(&f, e);
    e = ev(AGW_IR_EV_MESSAGE_DELTA);
    e.stop = AGW_IR_STOP_TOOL_USE;
    e.usage.output = 42;
    add(&f, e);
    add(&f, ev(AGW_IR_EV_PING));
    add(&f, ev(AGW_IR_EV_MESSAGE_STOP));

    assert_true(f.started && f.finished && !f.failed);
    assert_int_equal(f.n_blocks, 3);
    assert_true(agw_str_eq(f.id, AGW_STR_LIT("msg_1")));
    assert_true(agw_str_eq(f.model, AGW_STR_LIT("claude-x")));
    assert_int_equal(f.blocks[0].kind, AGW_IR_THINKING);
    assert_true(agw_str_eq(agw_buf_view(&f.blocks[0].text), AGW_STR_LIT("hmm")));
    assert_true(agw_str_eq(agw_buf_view(&f.blocks[0].signature), AGW_STR_LIT("sig")));
    assert_int_equal(f.blocks[1].text.len, 4);
    assert_memory_equal(f.blocks[1].text.data, "a\0bc", 4);
    assert_true(agw_str_eq(agw_buf_view(&f.blocks[2].text), AGW_STR_LIT("{\"city\":\"Paris\"}")));
    assert_true(agw_str_eq(f.blocks[2].tool_name, AGW_STR_LIT("get_weather")));
    assert_int_equal(f.stop, AGW_IR_STOP_TOOL_USE);
    assert_int_equal(f.usage.input, 10);
    assert_int_equal(f.usage.output, 42);
    assert_int_equal(f.usage.cache_read, 3);
    assert_int_equal(f.usage.cache_write, -1);
    agw_ir_fold_free(&f);
}

static void test_fold_rejects_broken_sequences(void **state)
{
    (void)state;
    agw_ir_fold f;
    agw_ir_fold_init(&f, 1 << 20);
    agw_ir_event d = delta(0, AGW_IR_DELTA_TEXT, AGW_STR_LIT("x"));
    assert_int_equal(agw_ir_fold_add(&f, &d), AGW_EINVAL); /* no block started */
    add(&f, start_block(0, AGW_IR_TEXT));
    agw_ir_event again = start_block(0, AGW_IR_TEXT);
    assert_int_equal(agw_ir_fold_add(&f, &again), AGW_EINVAL); /* index reused */
    agw_ir_event far = start_block(5000, AGW_IR_TEXT);
    assert_int_equal(agw_ir_fold_add(&f, &far), AGW_EINVAL); /* beyond the block cap */
    agw_ir_event neg = start_block(-1, AGW_IR_TEXT);
    assert_int_equal(agw_ir_fold_add(&f, &neg), AGW_EINVAL);
    agw_ir_event stop = ev(AGW_IR_EV_BLOCK_STOP);
    stop.index = 7;
    assert_int_equal(agw_ir_fold_add(&f, &stop), AGW_EINVAL);
    /* Skipped indexes become empty text blocks. */
    add(&f, start_block(3, AGW_IR_TEXT));
    assert_int_equal(f.n_blocks, 4);
    assert_int_equal(f.blocks[2].kind, AGW_IR_TEXT);
    assert_int_equal(f.blocks[2].text.len, 0);
    agw_ir_fold_free(&f);
}

static void test_fold_caps_total_bytes(void **state)
{
    (void)state;
    agw_ir_fold f;
    agw_ir_fold_init(&f, 8);
    add(&f, start_block(0, AGW_IR_TEXT));
    add(&f, delta(0, AGW_IR_DELTA_TEXT, AGW_STR_LIT("12345678")));
    agw_ir_event over = delta(0, AGW_IR_DELTA_TEXT, AGW_STR_LIT("9"));
    assert_int_equal(agw_ir_fold_add(&f, &over), AGW_ETOOBIG);
    agw_ir_fold_free(&f);
}

static void test_fold_records_errors(void **state)
{
    (void)state;
    agw_ir_fold f;
    agw_ir_fold_init(&f, 1024);
    agw_ir_event e = ev(AGW_IR_EV_ERROR);
    e.status = 529;
    e.error_type = AGW_STR_LIT("overloaded_error");
    e.error_message = AGW_STR_LIT("Overloaded");
    add(&f, e);
    assert_true(f.failed);
    assert_int_equal(f.error_status, 529);
    assert_true(agw_str_eq(f.error_type, AGW_STR_LIT("overloaded_error")));
    assert_true(agw_str_eq(f.error_message, AGW_STR_LIT("Overloaded")));
    agw_ir_fold_free(&f);
}

static void test_estimate_counts_every_part(void **state)
{
    (void)state;
    agw_ir_request rq;
    memset(&rq, 0, sizeof rq);
    assert_int_equal(agw_ir_estimate_tokens(&rq), 1); /* never below one */

    agw_ir_block system = { .kind = AGW_IR_TEXT, .text = AGW_STR_LIT("12345678") }; /* 8 bytes */
    agw_ir_block inner = { .kind = AGW_IR_TEXT, .text = AGW_STR_LIT("abcd") };       /* 4 */
    agw_ir_block blocks[3] = {
        { .kind = AGW_IR_TEXT, .text = AGW_STR_LIT("hello world!") },                /* 12 */
        { .kind = AGW_IR_TOOL_RESULT, .content = &inner, .n_content = 1 },
        { .kind = AGW_IR_IMAGE },                                                    /* 6400 */
    };
    agw_ir_message msg = { AGW_IR_USER, blocks, 3 };                                 /* +16 */
    agw_ir_tool tool = { AGW_STR_LIT("fn"), AGW_STR_LIT("desc"), AGW_STR_LIT("{}"), { NULL, 0 } };
    rq.system = &system;
    rq.n_system = 1;
    rq.messages = &msg;
    rq.n_messages = 1;
    rq.tools = &tool;
    rq.n_tools = 1; /* 2 + 4 + 2 = 8 */
    /* 8 + 16 + 12 + 4 + 6400 + 8 = 6448 bytes -> 1612 tokens */
    assert_int_equal(agw_ir_estimate_tokens(&rq), 1612);
}

static void test_event_init_marks_usage_unknown(void **state)
{
    (void)state;
    agw_ir_event e;
    memset(&e, 0x5a, sizeof e);
    agw_ir_event_init(&e, AGW_IR_EV_MESSAGE_DELTA);
    assert_int_equal(e.kind, AGW_IR_EV_MESSAGE_DELTA);
    assert_int_equal(e.usage.input, -1);
    assert_int_equal(e.usage.output, -1);
    assert_int_equal(e.usage.cache_read, -1);
    assert_int_equal(e.usage.cache_write, -1);
    assert_null(e.delta.ptr);
    assert_int_equal(e.stop, AGW_IR_STOP_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_names_round_trip),
        cmocka_unit_test(test_fold_collects_blocks_usage_and_stop),
        cmocka_unit_test(test_fold_rejects_broken_sequences),
        cmocka_unit_test(test_fold_caps_total_bytes),
        cmocka_unit_test(test_fold_records_errors),
        cmocka_unit_test(test_estimate_counts_every_part),
        cmocka_unit_test(test_event_init_marks_usage_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
