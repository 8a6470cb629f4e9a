/*
 * sanitize: rewriting of an answer's text by rules, as a stage between the
 * upstream's decoder and the client's encoder, so that it works for every
 * provider and every client protocol, streamed or not.
 *
 * Three kinds of rule, tried in the order they were added at each position of
 * a text block (the first that matches wins, then scanning resumes after the
 * matched text):
 *  - AGW_SANITIZE_LITERAL: the exact bytes of `pattern` become `replacement`.
 *  - AGW_SANITIZE_WORD: `pattern`, ASCII letters compared without case, and
 *    only as a whole word: the characters on either side are not letters,
 *    digits, '_' or letters of other scripts (so "Kiro's", "Kiro’s" and
 *    "(Kiro)" match, "Kirov" and "_Kiro" do not). CJK ideographs count as
 *    boundaries, since Chinese text runs words together.
 *  - AGW_SANITIZE_REGION: from `pattern` (the opening, e.g. "<invoke") to the
 *    first `close` after it ("</invoke>") everything is removed, both ends
 *    included. An opening that ends in a word character must be followed by a
 *    non-word character ("<invoke " or "<invoke>", not "<invoked>"). An
 *    opening with no close within AGW_SANITIZE_REGION_MAX bytes, or none
 *    before the block ends, is not a region and stays as it is: text that
 *    only mentions a tag is never eaten.
 *
 * agw_sanitize_apply is the meaning of the rules on a whole text. The stream
 * stage gives exactly that result however the text is split into deltas: it
 * holds back only bytes that could still be the start of a match (at most
 * the longest pattern and one more character, or an open region), releases
 * them as soon as they cannot match, and flushes a block's held bytes before
 * its block_stop (and before message_delta, message_stop and error). Its
 * deltas never end inside a UTF-8 sequence that continues in a later delta.
 * Only TEXT deltas are touched, and THINKING deltas when the rules say so;
 * tool calls (names, ids, argument JSON), signatures and every other event
 * pass unchanged and in order.
 *
 * Ownership: a rule set is built once (agw_sanitize_rules_new/add), then only
 * read: any number of stages on any threads may share it; the caller frees it
 * after the last stage. A stage owns its buffers; free with
 * agw_sanitize_stage_free.
 */
#ifndef AGW_SANITIZE_H
#define AGW_SANITIZE_H

#include "core/core.h"
#include "proto/ir.h"

typedef enum {
    AGW_SANITIZE_LITERAL = 0,
    AGW_SANITIZE_WORD,
    AGW_SANITIZE_REGION,
} agw_sanitize_kind;

/* Past this many bytes from its opening, an unclosed region is not a region. */
#define AGW_SANITIZE_REGION_MAX (64u << 10)
/* Patterns, closes and replacements are at most this long. */
#define AGW_SANITIZE_PATTERN_MAX 256u
#define AGW_SANITIZE_RULES_MAX 64u

typedef struct agw_sanitize_rules agw_sanitize_rules;

agw_sanitize_rules *agw_sanitize_rules_new(void);
/* Adds a rule. `text` is the replacement (LITERAL, WORD; may be empty) or
 * the close (REGION; not empty). AGW_EINVAL for an empty pattern, an empty
 * close, a string past AGW_SANITIZE_PATTERN_MAX, one with a NUL byte or one
 * that is not well-formed UTF-8, a
 * word pattern that does not start and end with a word character, or more
 * than AGW_SANITIZE_RULES_MAX rules. */
AGW_WARN_UNUSED agw_err agw_sanitize_rules_add(agw_sanitize_rules *r, agw_sanitize_kind kind,
                                               agw_str pattern, agw_str text);
/* Whether THINKING text is rewritten too (default: no). */
void agw_sanitize_rules_set_thinking(agw_sanitize_rules *r, int on);
size_t agw_sanitize_rules_count(const agw_sanitize_rules *r);
void agw_sanitize_rules_free(agw_sanitize_rules *r);

/* The rule set Kiro answers need: its identity names (Kiro, Amazon Q,
 * CodeWhisperer) become "Claude", and tool-call markup that leaks into text
 * (<function_calls>, <invoke>, <tool_call> regions) is removed. */
agw_sanitize_rules *agw_sanitize_rules_kiro_default(void);

/* Appends `in` rewritten by the rules to `out`. */
AGW_WARN_UNUSED agw_err agw_sanitize_apply(const agw_sanitize_rules *r, agw_str in, agw_buf *out);

/* ---- the stream stage ---- */

typedef struct {
    const agw_sanitize_rules *rules;
    agw_ir_sink next;
    void *next_ud;
    agw_buf held;    /* input bytes of the current block not yet decided */
    agw_buf out;     /* the rewritten text of the delta being sent */
    int index;       /* the block `held` belongs to; -1 for none */
    agw_ir_delta_kind delta_kind;
    int prev_word;   /* the input character before `held` is a word character */
    size_t held_events; /* deltas that went out shorter than they came in */
} agw_sanitize_stage;

/* `next` receives the rewritten events. */
void agw_sanitize_stage_init(agw_sanitize_stage *s, const agw_sanitize_rules *rules,
                             agw_ir_sink next, void *next_ud);
/* An agw_ir_sink: pass it as the upstream decoder's sink with `s` as its
 * user data. Non-zero when `next` asked to stop or a buffer could not grow
 * (the stage then stops too). */
int agw_sanitize_stage_event(void *s, const agw_ir_event *ev);
/* Sends any held text (a stream that ends without block_stop). */
int agw_sanitize_stage_flush(agw_sanitize_stage *s);
void agw_sanitize_stage_free(agw_sanitize_stage *s);

#endif
