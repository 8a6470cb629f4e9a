/* libFuzzer target for proto/sanitize.
 *
 * Input layout: byte 0 picks how many rules (0-7); each rule is a kind byte,
 * a pattern length and a text length (1-12 each, from the low bits) and
 * those bytes; then one byte for the thinking flag and one seeding the
 * splits; the rest is the answer's text. Invariants, any violation aborts:
 *  - the stage's output, joined, equals agw_sanitize_apply on the joined
 *    input, for pseudo-random splits into deltas (empty ones included) and
 *    for byte-by-byte deltas;
 *  - when the input is well-formed UTF-8, no delta ends inside a sequence;
 *  - tool-argument deltas interleaved between text blocks pass unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/sanitize.h"

typedef struct {
    agw_buf text, json;
    int utf8_ok;
} sink_t;

static int mid_sequence(agw_str s)
{
    const unsigned char *p = (const unsigned char *)s.ptr;
    for (size_t back = 1; back <= 3 && back <= s.len; back++) {
        unsigned char c = p[s.len - back];
        if ((c & 0xC0) == 0x80)
            continue;
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > back;
    }
    return 0;
}

static int on_event(void *ud, const agw_ir_event *ev)
{
    sink_t *k = ud;
    if (ev->kind != AGW_IR_EV_BLOCK_DELTA)
        return 0;
    if (ev->delta_kind == AGW_IR_DELTA_JSON) {
        if (agw_buf_append_str(&k->json, ev->delta))
            abort();
        return 0;
    }
    if (k->utf8_ok && mid_sequence(ev->delta))
        abort();
    if (agw_buf_append_str(&k->text, ev->delta))
        abort();
    return 0;
}

static int well_formed(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t l = agw_utf8_len(p + i, n - i);
        if (!l)
            return 0;
        i += l;
    }
    return 1;
}

static void send(agw_sanitize_stage *s, agw_ir_event_kind kind, agw_ir_delta_kind dk, agw_str d)
{
    agw_ir_event ev;
    agw_ir_event_init(&ev, kind);
    ev.delta_kind = dk;
    ev.delta = d;
    ev.index = dk == AGW_IR_DELTA_JSON ? 1 : 0;
    if (agw_sanitize_stage_event(s, &ev))
        abort();
}

/* Streams text in pieces chosen by `seed` (bytewise when seed is 0) and
 * checks the result. */
static void run(const agw_sanitize_rules *r, const uint8_t *text, size_t n, unsigned seed,
                agw_str want, int utf8_ok)
{
    sink_t k = { AGW_BUF_INIT(1u << 26), AGW_BUF_INIT(1u << 20), utf8_ok };
    agw_sanitize_stage s;
    agw_sanitize_stage_init(&s, r, on_event, &k);
    size_t i = 0;
    while (i < n) {
        size_t step = seed ? (seed = seed * 1103515245u + 12345u, (seed >> 16) % 9) : 1;
        if (step > n - i)
            step = n - i;
        send(&s, AGW_IR_EV_BLOCK_DELTA, AGW_IR_DELTA_TEXT, (agw_str){ (const char *)text + i, step });
        i += step;
    }
    send(&s, AGW_IR_EV_BLOCK_STOP, AGW_IR_DELTA_TEXT, (agw_str){ NULL, 0 });
    /* a tool block after the text: its arguments are not rewritten */
    send(&s, AGW_IR_EV_BLOCK_DELTA, AGW_IR_DELTA_JSON, (agw_str){ (const char *)text, n });
    send(&s, AGW_IR_EV_MESSAGE_STOP, AGW_IR_DELTA_TEXT, (agw_str){ NULL, 0 });
    if (!agw_str_eq(agw_buf_view(&k.text), want))
        abort();
    if (!agw_str_eq(agw_buf_view(&k.json), (agw_str){ (const char *)text, n }))
        abort();
    agw_sanitize_stage_free(&s);
    agw_buf_free(&k.text);
    agw_buf_free(&k.json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t at = 0;
    unsigned n_rules = data[at++] % 8;
    agw_sanitize_rules *r = agw_sanitize_rules_new();
    for (unsigned i = 0; i < n_rules; i++) {
        if (size - at < 2)
            break;
        agw_sanitize_kind kind = (agw_sanitize_kind)(data[at] % 3);
        size_t plen = 1 + (data[at] >> 2) % 12, tlen = 1 + data[at + 1] % 12;
        if (kind != AGW_SANITIZE_REGION && data[at + 1] & 0x80)
            tlen = 0;
        at += 2;
        if (size - at < plen + tlen)
            break;
        /* refused rules (a word rule on non-word ends, NUL bytes) are skipped */
        (void)agw_sanitize_rules_add(r, kind, (agw_str){ (const char *)data + at, plen },
                                     (agw_str){ (const char *)data + at + plen, tlen });
        at += plen + tlen;
    }
    if (size - at < 2) {
        agw_sanitize_rules_free(r);
        return 0;
    }
    agw_sanitize_rules_set_thinking(r, data[at++] & 1);
    unsigned seed = data[at++] | 1u;
    const uint8_t *text = data + at;
    size_t n = size - at;
    agw_buf want = AGW_BUF_INIT(1u << 26);
    if (agw_sanitize_apply(r, (agw_str){ (const char *)text, n }, &want))
        abort();
    /* with no rules the stage is a pass-through: the splits are the input's */
    int utf8_ok = agw_sanitize_rules_count(r) && well_formed(text, n);
    run(r, text, n, seed, agw_buf_view(&want), utf8_ok);
    run(r, text, n, 0, agw_buf_view(&want), utf8_ok);
    agw_buf_free(&want);
    agw_sanitize_rules_free(r);
    return 0;
}
