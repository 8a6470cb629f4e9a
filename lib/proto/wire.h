/*
 * wire: the JSON reading and writing every codec in proto/ does, written once.
 *
 * Internal to proto/ (the codecs include it; nothing above proto/ should).
 * It knows JSON and error messages, nothing of any protocol or of the IR.
 *
 * Reading. A codec validates a body or a stream event once with
 * agw_json_validate (at most AGW_WIRE_MAX_DEPTH levels) and then walks it
 * with json.h spans, never a DOM, so strings keep their NULs and raw values
 * (tool schemas, arguments) pass through byte for byte. Every span handed to
 * these helpers comes from such a validated document. An absent member is
 * the view {NULL, 0}.
 *
 * Writing. Two ways, one set of primitives:
 *  - agw_wire_put_* append and return the error, for encoders that
 *    propagate every step with AGW_WIRE_TRY;
 *  - agw_wire_writer keeps the first error and turns later appends into
 *    no-ops, so an encoder reads as a list of appends and checks once.
 * Both append to a caller-owned agw_buf; on AGW_ETOOBIG the buffer has freed
 * itself (core.h), and agw_wire_rollback undoes a failed encode otherwise.
 *
 * Messages. Input errors are AGW_EINVAL with a message for the client in a
 * caller-provided `char *err` of `errlen` bytes (either may be NULL / 0:
 * no message then); client- or upstream-supplied strings are quoted in
 * them only through agw_wire_show.
 */
#ifndef AGW_PROTO_WIRE_H
#define AGW_PROTO_WIRE_H

#include "core/core.h"
#include "proto/ir.h"

#include <stdarg.h>

/* Nesting allowed in a request body, a stream event or an error body: tool
 * schemas nest, but nothing legitimate comes close. */
#define AGW_WIRE_MAX_DEPTH 128

/* Returns x from the calling function unless it is AGW_OK. */
#define AGW_WIRE_TRY(x)                       \
    do {                                      \
        agw_err agw_wire_try_e_ = (x);        \
        if (agw_wire_try_e_ != AGW_OK)        \
            return agw_wire_try_e_;           \
    } while (0)

/* Appends a string literal to an agw_buf (no strlen at run time). */
#define AGW_WIRE_PUT(b, lit) agw_buf_append((b), AGW_CONST_STR_LEN(lit))

/* ---- messages ---- */

/* Formats the message into err (truncated to fit, NUL-terminated) when err
 * is not NULL and errlen > 0; always returns AGW_EINVAL. */
agw_err agw_wire_fail(char *err, size_t errlen, const char *fmt, ...) AGW_PRINTF(3, 4);
agw_err agw_wire_vfail(char *err, size_t errlen, const char *fmt, va_list ap) AGW_PRINTF(3, 0);

/* Where a field is in a request body ("messages[3].content[0].type"): a
 * decoder builds the path on its stack as it descends, and it is written out
 * only into a message, so a valid request formats no path at all. */
typedef struct agw_wire_path {
    const struct agw_wire_path *up; /* the enclosing value; NULL at the top */
    const char *name;               /* a member's name, or NULL: element `index` of up */
    size_t index;
} agw_wire_path;

/* Paths made in place, valid to the end of the enclosing block. A top-level
 * name may hold dots ("stream_options.include_usage"). */
#define AGW_WIRE_MEMBER(up, name) (&(const agw_wire_path){ (up), (name), 0 })
#define AGW_WIRE_ELEMENT(up, i) (&(const agw_wire_path){ (up), NULL, (i) })
#define AGW_WIRE_NAME(name) AGW_WIRE_MEMBER(NULL, (name))

/* `p` written out into buf (n bytes, NUL-terminated; one cut short ends in
 * "..."). Returns buf. */
const char *agw_wire_path_str(const agw_wire_path *p, char *buf, size_t n);

/* agw_wire_fail with the message "<path><fmt ...>": the text right after
 * the path, as in ": required" or " must be a string". */
agw_err agw_wire_fail_at(char *err, size_t errlen, const agw_wire_path *at, const char *fmt, ...)
    AGW_PRINTF(4, 5);
agw_err agw_wire_vfail_at(char *err, size_t errlen, const agw_wire_path *at, const char *fmt,
                          va_list ap) AGW_PRINTF(4, 0);

/* `s` made safe to quote in a message, in buf (n bytes): control bytes
 * become '?', and a string that does not fit is cut and ends in "...".
 * Returns buf. */
const char *agw_wire_show(agw_str s, char *buf, size_t n);

/* ---- reading ---- */

/* `s` without leading and trailing JSON whitespace (space, tab, CR, LF). */
agw_str agw_wire_trim(agw_str s);

/* 1 when v is present and not JSON null: both protocols treat an explicit
 * null like an absent optional member, as their SDKs send it. */
int agw_wire_given(agw_str v);

/* 1 when v (after whitespace) is a number token, with its value in *out;
 * a number beyond the range of a double reads as +-HUGE_VAL (not finite),
 * which the caller refuses or range-checks. 0 for anything else. */
int agw_wire_number(agw_str v, double *out);

/* 1 when s is exactly one valid JSON object (what a raw view must be before
 * it is spliced into a body). */
int agw_wire_object(agw_str s);

/* The decoded value of a string token (quotes included): a view into the
 * token when it holds no escape (the document outlives the result), else
 * decoded through scratch and copied into the arena, NULs kept. AGW_EINVAL
 * when tok is not a string token. */
AGW_WARN_UNUSED agw_err agw_wire_string(agw_arena *a, agw_buf *scratch, agw_str tok,
                                        agw_str *out);

/* The same, always copied into the arena: for values that must outlive the
 * document (a stream event's data lives for one call). */
AGW_WARN_UNUSED agw_err agw_wire_string_copy(agw_arena *a, agw_str tok, agw_str *out);

/* An id with the protocol's prefix, in the arena: `id` itself when it
 * already starts with `prefix`, else prefix + id, and prefix + 24 random
 * lowercase hex digits when id is empty. AGW_EIO when the RNG fails. */
AGW_WARN_UNUSED agw_err agw_wire_make_id(agw_arena *a, agw_str prefix, agw_str id, agw_str *out);

/* ---- reading a client request ---- */

/* What a request decoder reads fields with: the arena decoded strings go to,
 * a scratch buffer for escapes (reused), and the caller's message buffer. */
typedef struct {
    agw_arena *arena;
    agw_buf scratch;
    char *err;
    size_t errlen;
} agw_wire_reader;

/* Field readers: the value at `v` (found at `at`) or AGW_EINVAL with
 * "<at>: expected a string" (a boolean, a finite number, an integer).
 * need_str also refuses an absent or null value ("<at>: required").
 * Strings as agw_wire_string. */
AGW_WARN_UNUSED agw_err agw_wire_want_str(agw_wire_reader *r, agw_str v,
                                          const agw_wire_path *at, agw_str *out);
AGW_WARN_UNUSED agw_err agw_wire_need_str(agw_wire_reader *r, agw_str v,
                                          const agw_wire_path *at, agw_str *out);
AGW_WARN_UNUSED agw_err agw_wire_want_bool(agw_wire_reader *r, agw_str v,
                                           const agw_wire_path *at, int *out);
AGW_WARN_UNUSED agw_err agw_wire_want_num(agw_wire_reader *r, agw_str v,
                                          const agw_wire_path *at, double *out);
AGW_WARN_UNUSED agw_err agw_wire_want_int(agw_wire_reader *r, agw_str v,
                                          const agw_wire_path *at, int64_t *out);

/* What a request decoder whose state holds an agw_wire_reader named `rd`
 * calls the readers with. */
#define AGW_WIRE_DFAIL(c, ...) agw_wire_fail((c)->rd.err, (c)->rd.errlen, __VA_ARGS__)
#define AGW_WIRE_DFAIL_AT(c, at, ...) \
    agw_wire_fail_at((c)->rd.err, (c)->rd.errlen, (at), __VA_ARGS__)
#define AGW_WIRE_WANT_STR(c, ...) agw_wire_want_str(&(c)->rd, __VA_ARGS__)
#define AGW_WIRE_NEED_STR(c, ...) agw_wire_need_str(&(c)->rd, __VA_ARGS__)
#define AGW_WIRE_WANT_BOOL(c, ...) agw_wire_want_bool(&(c)->rd, __VA_ARGS__)
#define AGW_WIRE_WANT_NUM(c, ...) agw_wire_want_num(&(c)->rd, __VA_ARGS__)
#define AGW_WIRE_WANT_INT(c, ...) agw_wire_want_int(&(c)->rd, __VA_ARGS__)

/* The frame of a request decoder whose messages are OpenAI's: `out` an
 * empty request (agw_ir_request_init), `r` set up over `arena` and the
 * caller's message buffer, `body` checked to be one JSON object ("invalid
 * JSON body: ...", "the request body must be a JSON object"), then
 * `members(dec, body, out)` run with a record of the body's long values
 * active (json.h agw_json_skips), and r's scratch freed. Returns what
 * members returned. */
AGW_WARN_UNUSED agw_err agw_wire_decode_request(agw_wire_reader *r, agw_arena *arena, char *err,
                                                size_t errlen, agw_str body, agw_ir_request *out,
                                                agw_err (*members)(void *dec, agw_str body,
                                                                   agw_ir_request *out),
                                                void *dec);

/* OpenAI-style `temperature` (0..2) and `top_p` (0..1), either absent
 * (empty or null views leave them unset in `out`): AGW_EINVAL with
 * "<name>: must be between ..." for a value out of its range. */
AGW_WARN_UNUSED agw_err agw_wire_read_sampling(agw_wire_reader *r, agw_str temperature,
                                               agw_str top_p, agw_ir_request *out);

/* The turns of a conversation a request decoder builds: consecutive
 * messages of one role merge into one turn. Blocks and turns live in the
 * decoder's arena. */
typedef struct {
    agw_ir_role role;
    agw_ir_block *v;
    size_t n, cap;
} agw_wire_turn;

typedef struct {
    agw_wire_turn *v;
    size_t n, cap;
} agw_wire_turns;

/* The last turn when it has `role`, else a new empty one at the end. */
agw_wire_turn *agw_wire_turn_for(agw_arena *a, agw_wire_turns *t, agw_ir_role role);
/* The turns as out->messages; in a user turn the tool results go first, the
 * other blocks after them in their order (the order Anthropic requires). */
void agw_wire_turns_finish(agw_arena *a, const agw_wire_turns *t, agw_ir_request *out);

/* An arena array of n elements of `elem` bytes with room for one more: `old`
 * itself while n < *cap, else a copy twice as large (the old one stays in
 * the arena, which bounds the waste at the final size). */
void *agw_wire_grow(agw_arena *a, void *old, size_t n, size_t *cap, size_t elem);

/* An image URL as the OpenAI APIs take it. */
typedef enum {
    AGW_WIRE_IMAGE_DATA = 0, /* data:<media type>;base64,<data>: both views set */
    AGW_WIRE_IMAGE_HTTP,     /* an http(s) URL: `data` is the URL */
    AGW_WIRE_IMAGE_BAD_DATA, /* a data: URI of another form */
    AGW_WIRE_IMAGE_BAD,      /* neither */
} agw_wire_image;

/* Reads `url` (views into it). */
agw_wire_image agw_wire_image_url(agw_str url, agw_str *media_type, agw_str *data);

/* ---- writing ---- */

/* `s` as a quoted JSON string, escaped by agw_buf_append_json_escaped
 * (invalid UTF-8 becomes U+FFFD); the absent view writes "". */
AGW_WARN_UNUSED agw_err agw_wire_put_jstr(agw_buf *b, agw_str s);

/* Nothing the first time (*first is then cleared), a comma after that. */
AGW_WARN_UNUSED agw_err agw_wire_put_sep(agw_buf *b, int *first);

/* The shortest "%g" spelling that reads back as the same double, so 0.7
 * goes out as 0.7 and not 0.69999999999999996; into buf (40 bytes are
 * plenty). Non-finite values give "inf" / "nan" (for messages only). */
void agw_wire_fmt_double(double v, char *buf, size_t n);
/* That spelling appended; AGW_EINVAL (nothing appended) when v is not finite,
 * which JSON cannot write. */
AGW_WARN_UNUSED agw_err agw_wire_put_double(agw_buf *b, double v);

/* Ends an encode that started at out->len == start and returns e: after an
 * error other than AGW_ETOOBIG (which has already freed out) out is cut
 * back to its first `start` bytes, so a failed encode appends nothing. */
agw_err agw_wire_rollback(agw_buf *out, size_t start, agw_err e);

/* A writer with a sticky error: every append after the first failure does
 * nothing, and `e` holds that failure. AGW_WIRE_WRITER(buf) is ready to use. */
typedef struct {
    agw_buf *b;
    agw_err e;
} agw_wire_writer;

#define AGW_WIRE_WRITER(buf) { (buf), AGW_OK }

/* An encoder's refusal: the message into err (agw_wire_vfail) and the
 * writer stopped with AGW_EINVAL, unless it had already failed; returns
 * the writer's error. */
agw_err agw_wire_w_fail(agw_wire_writer *w, char *err, size_t errlen, const char *fmt, ...)
    AGW_PRINTF(4, 5);

static inline void agw_wire_w_raw(agw_wire_writer *w, const char *p, size_t n)
{
    if (w->e == AGW_OK)
        w->e = agw_buf_append(w->b, p, n);
}

/* A string literal. */
#define AGW_WIRE_W_LIT(w, s) agw_wire_w_raw((w), AGW_CONST_STR_LEN(s))

static inline void agw_wire_w_cstr(agw_wire_writer *w, const char *s)
{
    agw_wire_w_raw(w, s, strlen(s));
}

/* Raw bytes of a view (a JSON value passed through). */
static inline void agw_wire_w_view(agw_wire_writer *w, agw_str s)
{
    agw_wire_w_raw(w, s.ptr, s.len);
}

/* The inside of a JSON string, escaped. */
static inline void agw_wire_w_esc(agw_wire_writer *w, agw_str s)
{
    if (w->e == AGW_OK)
        w->e = agw_buf_append_json_escaped(w->b, s);
}

/* A quoted JSON string (agw_wire_put_jstr). */
static inline void agw_wire_w_str(agw_wire_writer *w, agw_str s)
{
    if (w->e == AGW_OK)
        w->e = agw_wire_put_jstr(w->b, s);
}

static inline void agw_wire_w_int(agw_wire_writer *w, int64_t v)
{
    if (w->e == AGW_OK)
        w->e = agw_buf_append_i64(w->b, v);
}

/* A finite double (agw_wire_put_double). */
static inline void agw_wire_w_double(agw_wire_writer *w, double v)
{
    if (w->e == AGW_OK)
        w->e = agw_wire_put_double(w->b, v);
}

#endif
