#include "proto/sanitize.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    agw_sanitize_kind kind;
    agw_str pattern;  /* owned */
    agw_str text;     /* replacement, or the close of a region; owned */
    int open_word_end; /* REGION: the opening ends in a word character */
    int last_word;    /* the matched input ends in a word character */
} rule;

struct agw_sanitize_rules {
    rule rules[AGW_SANITIZE_RULES_MAX];
    size_t n;
    int thinking;
    unsigned char first[256]; /* bytes a match can start with */
};

/* ---- characters ---- */

/* The code point at p (len bytes of a well-formed sequence). */
static uint32_t decode_cp(const unsigned char *p, size_t len)
{
    switch (len) {
    case 1:
        return p[0];
    case 2:
        return ((uint32_t)(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
    case 3:
        return ((uint32_t)(p[0] & 0x0F) << 12) | ((uint32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    default:
        return ((uint32_t)(p[0] & 0x07) << 18) | ((uint32_t)(p[1] & 0x3F) << 12) |
               ((uint32_t)(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
    }
}

/* Letters, digits and '_' of ASCII, and every other script's letters; not
 * punctuation, spaces, symbols of the Latin-1 and general punctuation blocks,
 * CJK punctuation and ideographs (Chinese text has no spaces between words). */
static int is_word_cp(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
               cp == '_';
    if (cp <= 0xBF || cp == 0xD7 || cp == 0xF7)
        return 0;
    if ((cp >= 0x2000 && cp <= 0x2BFF) || (cp >= 0x3000 && cp <= 0x303F) ||
        (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x4E00 && cp <= 0x9FFF) ||
        (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0xFE30 && cp <= 0xFE4F) ||
        (cp >= 0xFF00 && cp <= 0xFF20) || (cp >= 0xFF3B && cp <= 0xFF40) ||
        (cp >= 0xFF5B && cp <= 0xFF65) || (cp >= 0x1F000 && cp <= 0x1FAFF) ||
        (cp >= 0x20000 && cp <= 0x2FA1F))
        return 0;
    return 1;
}

/* The bytes a sequence starting with `c` needs (1 for a byte that starts
 * none: it is taken alone). */
static size_t utf8_need(unsigned char c)
{
    if (c >= 0xC2 && c <= 0xDF)
        return 2;
    if (c >= 0xE0 && c <= 0xEF)
        return 3;
    if (c >= 0xF0 && c <= 0xF4)
        return 4;
    return 1;
}

typedef enum { CH_OK = 0, CH_MORE } ch_result;

/* The character at p (avail bytes): its length (1 for a byte that is not
 * well-formed UTF-8) and whether it is a word character. CH_MORE when the
 * bytes so far start a sequence that continues past `avail` and more input
 * may follow (!at_end). */
static ch_result char_at(const unsigned char *p, size_t avail, int at_end, size_t *len, int *word)
{
    size_t need = utf8_need(p[0]);
    if (need > avail && !at_end) {
        size_t i = 1;
        while (i < avail && (p[i] & 0xC0) == 0x80)
            i++;
        if (i == avail)
            return CH_MORE;
    }
    size_t l = agw_utf8_len(p, avail);
    if (l == 0) {
        *len = 1;
        *word = 0;
        return CH_OK;
    }
    *len = l;
    *word = is_word_cp(decode_cp(p, l));
    return CH_OK;
}

/* The word-ness of the last character of s (s well-formed or not). */
static int last_is_word(agw_str s)
{
    const unsigned char *p = (const unsigned char *)s.ptr;
    size_t i = s.len, len;
    int word;
    /* back up over continuation bytes to a lead byte, at most 3 */
    size_t back = 1;
    while (back < 4 && back < s.len && (p[i - back] & 0xC0) == 0x80)
        back++;
    if (char_at(p + i - back, back, 1, &len, &word) == CH_OK && len == back)
        return word;
    return char_at(p + i - 1, 1, 1, &len, &word) == CH_OK && word;
}

static int first_is_word(agw_str s)
{
    size_t len;
    int word;
    return char_at((const unsigned char *)s.ptr, s.len, 1, &len, &word) == CH_OK && word;
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* ---- rules ---- */

agw_sanitize_rules *agw_sanitize_rules_new(void)
{
    return xcalloc(1, sizeof(agw_sanitize_rules));
}

static int acceptable(agw_str s, int may_be_empty)
{
    if (!s.len)
        return may_be_empty;
    if (s.len > AGW_SANITIZE_PATTERN_MAX || memchr(s.ptr, '\0', s.len))
        return 0;
    /* whole characters only, so that a match never ends inside one */
    for (size_t i = 0; i < s.len;) {
        size_t l = agw_utf8_len((const unsigned char *)s.ptr + i, s.len - i);
        if (!l)
            return 0;
        i += l;
    }
    return 1;
}

agw_err agw_sanitize_rules_add(agw_sanitize_rules *r, agw_sanitize_kind kind, agw_str pattern,
                               agw_str text)
{
    if (r->n >= AGW_SANITIZE_RULES_MAX || !acceptable(pattern, 0) ||
        !acceptable(text, kind != AGW_SANITIZE_REGION))
        return AGW_EINVAL;
    if (kind != AGW_SANITIZE_LITERAL && kind != AGW_SANITIZE_WORD && kind != AGW_SANITIZE_REGION)
        return AGW_EINVAL;
    if (kind == AGW_SANITIZE_WORD && (!first_is_word(pattern) || !last_is_word(pattern)))
        return AGW_EINVAL;
    rule *ru = &r->rules[r->n++];
    ru->kind = kind;
    ru->pattern = (agw_str){ agw_str_dup(pattern), pattern.len };
    ru->text = (agw_str){ agw_str_dup(text), text.len };
    ru->open_word_end = kind == AGW_SANITIZE_REGION && last_is_word(pattern);
    ru->last_word = kind == AGW_SANITIZE_REGION ? last_is_word(text) : last_is_word(pattern);
    unsigned char c = (unsigned char)pattern.ptr[0];
    r->first[c] = 1;
    if (kind == AGW_SANITIZE_WORD) {
        r->first[lower(c)] = 1;
        if (c >= 'a' && c <= 'z')
            r->first[c - 32] = 1;
    }
    return AGW_OK;
}

void agw_sanitize_rules_set_thinking(agw_sanitize_rules *r, int on)
{
    r->thinking = on != 0;
}

size_t agw_sanitize_rules_count(const agw_sanitize_rules *r)
{
    return r ? r->n : 0;
}

void agw_sanitize_rules_free(agw_sanitize_rules *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free((char *)r->rules[i].pattern.ptr);
        free((char *)r->rules[i].text.ptr);
    }
    free(r);
}

agw_sanitize_rules *agw_sanitize_rules_kiro_default(void)
{
    static const char *const identity[] = {
        "AWS CodeWhisperer", "Amazon CodeWhisperer", "CodeWhisperer",
        "Amazon Q Developer", "Amazon Q", "Kiro",
    };
    static const char *const regions[][2] = {
        { "<function_calls>", "</function_calls>" },
        { "<invoke", "</invoke>" },
        { "<tool_call>", "</tool_call>" },
    };
    agw_sanitize_rules *r = agw_sanitize_rules_new();
    agw_err e = AGW_OK;
    /* Regions first: markup that mentions a name goes whole. */
    for (size_t i = 0; i < sizeof regions / sizeof regions[0] && !e; i++)
        e = agw_sanitize_rules_add(r, AGW_SANITIZE_REGION, agw_str_c(regions[i][0]),
                                   agw_str_c(regions[i][1]));
    for (size_t i = 0; i < sizeof identity / sizeof identity[0] && !e; i++)
        e = agw_sanitize_rules_add(r, AGW_SANITIZE_WORD, agw_str_c(identity[i]),
                                   AGW_STR_LIT("Claude"));
    if (e) {
        agw_sanitize_rules_free(r);
        return NULL;
    }
    return r;
}

/* ---- matching ---- */

typedef enum { M_NO = 0, M_YES, M_MAYBE } match;

/* Compares the first bytes of p (avail) with pat: M_YES when all of pat is
 * there, M_MAYBE when what is there agrees and more may follow. */
static match prefix(const unsigned char *p, size_t avail, agw_str pat, int nocase, int at_end)
{
    size_t m = avail < pat.len ? avail : pat.len;
    const unsigned char *q = (const unsigned char *)pat.ptr;
    for (size_t i = 0; i < m; i++)
        if (nocase ? lower(p[i]) != lower(q[i]) : p[i] != q[i])
            return M_NO;
    if (m < pat.len)
        return at_end ? M_NO : M_MAYBE;
    return M_YES;
}

/* Whether the character at p (avail bytes, possibly none) ends a word
 * match: M_YES when it is not a word character or the text ends there. */
static match boundary_after(const unsigned char *p, size_t avail, int at_end)
{
    if (!avail)
        return at_end ? M_YES : M_MAYBE;
    size_t len;
    int word;
    if (char_at(p, avail, at_end, &len, &word) == CH_MORE)
        return M_MAYBE;
    return word ? M_NO : M_YES;
}

static const unsigned char *find(const unsigned char *h, size_t hn, agw_str needle)
{
    return memmem(h, hn, needle.ptr, needle.len);
}

/* Whether rule `ru` matches at p (avail bytes); on M_YES *len is the input
 * it covers. */
static match rule_at(const rule *ru, const unsigned char *p, size_t avail, int at_end,
                     int prev_word, size_t *len)
{
    match m;
    switch (ru->kind) {
    case AGW_SANITIZE_LITERAL:
        m = prefix(p, avail, ru->pattern, 0, at_end);
        *len = ru->pattern.len;
        return m;
    case AGW_SANITIZE_WORD:
        if (prev_word)
            return M_NO;
        m = prefix(p, avail, ru->pattern, 1, at_end);
        if (m != M_YES)
            return m;
        *len = ru->pattern.len;
        return boundary_after(p + ru->pattern.len, avail - ru->pattern.len, at_end);
    case AGW_SANITIZE_REGION: {
        size_t olen = ru->pattern.len;
        m = prefix(p, avail, ru->pattern, 0, at_end);
        if (m != M_YES)
            return m;
        if (ru->open_word_end && (m = boundary_after(p + olen, avail - olen, at_end)) != M_YES)
            return m;
        size_t window = avail < AGW_SANITIZE_REGION_MAX ? avail : AGW_SANITIZE_REGION_MAX;
        const unsigned char *c = find(p + olen, window - olen, ru->text);
        if (c) {
            *len = (size_t)(c - p) + ru->text.len;
            return M_YES;
        }
        return (at_end || avail >= AGW_SANITIZE_REGION_MAX) ? M_NO : M_MAYBE;
    }
    }
    return M_NO;
}

/* Rewrites p[0..n) into out as far as it can be decided; *decided is how
 * many input bytes that took (the rest must wait for more input, or is 0
 * when at_end). *prev_word carries the word-ness of the last decided input
 * character from one call to the next. */
static agw_err scan(const agw_sanitize_rules *r, const unsigned char *p, size_t n, int at_end,
                    int *prev_word, agw_buf *out, size_t *decided)
{
    size_t i = 0, run = 0; /* out gets p[run..i) as it is, in one append */
    agw_err e = AGW_OK;
    while (i < n) {
        if (r->first[p[i]]) {
            match m = M_NO;
            size_t len = 0;
            const rule *hit = NULL;
            for (size_t k = 0; k < r->n && m == M_NO; k++) {
                m = rule_at(&r->rules[k], p + i, n - i, at_end, *prev_word, &len);
                hit = &r->rules[k];
            }
            if (m == M_MAYBE)
                break;
            if (m == M_YES) {
                if ((e = agw_buf_append(out, p + run, i - run)))
                    return e;
                if (hit->kind != AGW_SANITIZE_REGION &&
                    (e = agw_buf_append_str(out, hit->text)))
                    return e;
                i += len;
                run = i;
                *prev_word = hit->last_word;
                continue;
            }
        }
        size_t len;
        int word;
        if (char_at(p + i, n - i, at_end, &len, &word) == CH_MORE)
            break;
        i += len;
        *prev_word = word;
    }
    if ((e = agw_buf_append(out, p + run, i - run)))
        return e;
    *decided = i;
    return AGW_OK;
}

agw_err agw_sanitize_apply(const agw_sanitize_rules *r, agw_str in, agw_buf *out)
{
    int prev_word = 0;
    size_t decided;
    if (!r || !r->n)
        return agw_buf_append_str(out, in);
    return scan(r, (const unsigned char *)in.ptr, in.len, 1, &prev_word, out, &decided);
}

/* ---- the stage ---- */

/* A delta of up to one upstream event, and what rules can make of it. */
#define HELD_MAX (AGW_LIMIT_SSE_EVENT + AGW_SANITIZE_REGION_MAX)
#define OUT_MAX  (AGW_LIMIT_UPSTREAM_BODY)

void agw_sanitize_stage_init(agw_sanitize_stage *s, const agw_sanitize_rules *rules,
                             agw_ir_sink next, void *next_ud)
{
    memset(s, 0, sizeof *s);
    s->rules = rules;
    s->next = next;
    s->next_ud = next_ud;
    agw_buf_init(&s->held, HELD_MAX);
    agw_buf_init(&s->out, OUT_MAX);
    s->index = -1;
}

/* Sends what scanning the held bytes decided, as a delta of the held block. */
static int send_decided(agw_sanitize_stage *s, int at_end)
{
    size_t decided = 0;
    agw_buf_reset(&s->out);
    if (scan(s->rules, (const unsigned char *)s->held.data, s->held.len, at_end, &s->prev_word,
             &s->out, &decided))
        return 1;
    agw_buf_consume(&s->held, decided);
    if (!s->out.len)
        return 0;
    agw_ir_event ev;
    agw_ir_event_init(&ev, AGW_IR_EV_BLOCK_DELTA);
    ev.index = s->index;
    ev.delta_kind = s->delta_kind;
    ev.delta = agw_buf_view(&s->out);
    return s->next(s->next_ud, &ev);
}

int agw_sanitize_stage_flush(agw_sanitize_stage *s)
{
    if (s->index < 0)
        return 0;
    int stop = s->held.len ? send_decided(s, 1) : 0;
    agw_buf_reset(&s->held);
    s->index = -1;
    return stop;
}

static int rewritten(const agw_sanitize_stage *s, const agw_ir_event *ev)
{
    return ev->kind == AGW_IR_EV_BLOCK_DELTA &&
           (ev->delta_kind == AGW_IR_DELTA_TEXT ||
            (ev->delta_kind == AGW_IR_DELTA_THINKING && s->rules->thinking));
}

int agw_sanitize_stage_event(void *ud, const agw_ir_event *ev)
{
    agw_sanitize_stage *s = ud;
    if (!s->rules || !s->rules->n || ev->kind == AGW_IR_EV_PING)
        return s->next(s->next_ud, ev);
    if (rewritten(s, ev)) {
        if (s->index >= 0 && (s->index != ev->index || s->delta_kind != ev->delta_kind) &&
            agw_sanitize_stage_flush(s))
            return 1;
        if (s->index < 0) {
            s->index = ev->index;
            s->delta_kind = ev->delta_kind;
            s->prev_word = 0;
        }
        if (agw_buf_append_str(&s->held, ev->delta))
            return 1;
        int stop = send_decided(s, 0);
        if (s->held.len)
            s->held_events++;
        return stop;
    }
    /* Anything else comes after the held text in the stream's order. */
    if (agw_sanitize_stage_flush(s))
        return 1;
    return s->next(s->next_ud, ev);
}

void agw_sanitize_stage_free(agw_sanitize_stage *s)
{
    agw_buf_free(&s->held);
    agw_buf_free(&s->out);
}
