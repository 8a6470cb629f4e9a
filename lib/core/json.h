/*
 * json: a validating scanner for forwarding client JSON byte for byte.
 *
 * The gateway relays request bodies upstream unchanged except for splicing a
 * few values (the top-level "model"). Re-serialising through a DOM would lose
 * what a DOM cannot hold (strings with \u0000, integers past 2^53, duplicate
 * keys, number spelling), so this module only validates and locates spans:
 *
 *  - agw_json_validate checks RFC 8259 strictly, in one pass, without
 *    allocating: exactly one value with optional surrounding whitespace
 *    (space, tab, CR, LF); no trailing commas, leading zeros, comments, NaN;
 *    strings must be valid UTF-8 (no overlongs, no surrogates encoded in
 *    UTF-8, nothing above U+10FFFF) without raw control characters, with valid
 *    escapes. Lone surrogates written as \u escapes are accepted, as most
 *    parsers do (RFC 8259 section 8.2 leaves them undefined);
 *    agw_json_string_decode turns them into U+FFFD. Numbers are checked for
 *    syntax only, so 1e400 and 12345678901234567890 are valid.
 *    Depth: every object or array adds one level, so a scalar document has
 *    depth 0 and "[[]]" depth 2. The recursion-free design keeps a bit per
 *    level on the stack, hence the AGW_JSON_MAX_DEPTH ceiling.
 *  - Everything else expects a document that passed agw_json_validate. Given
 *    anything else it still never reads outside the view and never recurses,
 *    but its results are meaningless.
 *  - Spans (agw_str) returned point into the caller's document, which must
 *    outlive them. Value spans carry no surrounding whitespace; strings
 *    include their quotes.
 *  - Keys are compared after unescaping, so "mod\u0065l" is "model". When a key
 *    repeats in one object the LAST occurrence wins, as in JavaScript, Python
 *    and most upstream parsers, so the gateway sees what the upstream will.
 */
#ifndef AGW_JSON_H
#define AGW_JSON_H

#include "core/core.h"

#include <stdint.h>

/* The largest max_depth honoured; larger values are treated as this. */
#define AGW_JSON_MAX_DEPTH 4096

typedef enum {
    AGW_JSON_INVALID = 0, /* empty or not the start of a JSON value */
    AGW_JSON_OBJECT,
    AGW_JSON_ARRAY,
    AGW_JSON_STRING,
    AGW_JSON_NUMBER,
    AGW_JSON_TRUE,
    AGW_JSON_FALSE,
    AGW_JSON_NULL,
} agw_json_type;

/* AGW_OK when doc is exactly one valid JSON value nested at most max_depth
 * levels (negative counts as 0). Otherwise the first problem in the text
 * decides: AGW_ETOOBIG when it is a container opening past max_depth,
 * AGW_EINVAL for anything else. On failure writes "offset N: what" into err
 * when err is not NULL and errlen > 0 (truncated to fit, NUL-terminated). */
AGW_WARN_UNUSED agw_err agw_json_validate(agw_str doc, int max_depth, char *err, size_t errlen);

/* A record of where the long values of one validated document end, so that
 * walking it level by level does not scan every byte again at each level:
 * while a record is active in a thread, that thread's iterators (and so
 * collect, find and every walk over spans of the document) jump over a long
 * value of the document instead of scanning it. agw_json_skips_begin builds
 * the record in one pass over `doc`, which must have passed
 * agw_json_validate and must outlive the record, and makes it active in the
 * calling thread; agw_json_skips_end (NULL: nothing) frees it and makes the
 * one active before it active again, so pairs nest. NULL (nothing changes)
 * for a document too small to gain from it, one inside the document of the
 * active record (which covers it already), or when memory is short.
 * Results are the same with or without a record. */
typedef struct agw_json_skips agw_json_skips;
agw_json_skips *agw_json_skips_begin(agw_str doc);
void agw_json_skips_end(agw_json_skips *s);
/* Ends every record still active in the calling thread; how many there were.
 * A record must not outlive its document, whose memory the next one may
 * take: a server thread calls this once a request is over. */
size_t agw_json_skips_end_all(void);
/* The same with the thresholds chosen: no record for a document under
 * min_doc bytes, and only values of at least min_value bytes recorded (for
 * tests and fuzzing, which want every value recorded). */
agw_json_skips *agw_json_skips_begin_with(agw_str doc, size_t min_doc, size_t min_value);

/* Finds the top-level member `key` (raw bytes, not JSON-escaped) of the
 * object doc and sets *value to its value's span. AGW_ENOTFOUND when absent,
 * AGW_EINVAL when doc is not an object. */
AGW_WARN_UNUSED agw_err agw_json_find(agw_str doc, agw_str key, agw_str *value);

/* Walks an object once: vals[k] gets the value of the LAST member named
 * names[k] (last wins, as agw_json_find), {NULL, 0} when there is none, and
 * *unknown (may be NULL) the key token of the first member not listed, or
 * {NULL, 0}. One pass instead of one agw_json_find per name keeps big bodies
 * linear. A non-object leaves every value absent. */
void agw_json_collect(agw_str obj, const char *const *names, size_t n, agw_str *vals,
                      agw_str *unknown);

/* agw_json_find, plus *member (may be NULL): a span that can be cut out of doc
 * to delete the member and leave a valid object. It runs from the comma before
 * the member through its value, or for a first member from its key through
 * the comma after it (and the whitespace before the next key), or is just the
 * member when it is the only one. Deleting the last occurrence of a repeated
 * key makes the previous occurrence effective. */
AGW_WARN_UNUSED agw_err agw_json_find_member(agw_str doc, agw_str key, agw_str *value,
                                             agw_str *member);

/* Follows a NULL-terminated list of keys through nested objects, e.g.
 * (const char *[]){ "stream_options", "include_usage", NULL }. The keys are
 * the program's own C strings. An empty list gives doc itself (trimmed).
 * AGW_ENOTFOUND when a key is absent; AGW_EINVAL when doc or an intermediate
 * value is not an object. */
AGW_WARN_UNUSED agw_err agw_json_find_path(agw_str doc, const char *const *path, agw_str *value);

/* The type of a value span, from its first byte after whitespace. */
agw_json_type agw_json_type_of(agw_str value);

/* The first byte at or after `p` (before `end`) that is not JSON whitespace
 * (space, tab, CR, LF); `end` when there is none. */
const char *agw_json_skip_ws(const char *p, const char *end);

/* 1 when value (trimmed) is exactly that literal. */
int agw_json_is_true(agw_str value);
int agw_json_is_false(agw_str value);
int agw_json_is_null(agw_str value);

/* Reads an integer value (no fraction or exponent, optional '-') into *out.
 * AGW_EINVAL when value is not such a number; AGW_ETOOBIG when it does not fit
 * in int64_t. */
AGW_WARN_UNUSED agw_err agw_json_int64(agw_str value, int64_t *out);

/* Appends the decoded contents of a string token (with its quotes) to out as
 * UTF-8: \u0000 becomes a NUL byte, surrogate pairs combine, lone surrogates
 * become U+FFFD; unescaped bytes are copied as they are. AGW_EINVAL (out
 * unchanged) when token is not quote-delimited or has a malformed escape;
 * AGW_ETOOBIG from out's cap (out freed, as agw_buf_append does). */
AGW_WARN_UNUSED agw_err agw_json_string_decode(agw_str token, agw_buf *out);

/* The decoded contents of a string token, copying only when it must: a view
 * into the token itself when it holds no escape, else the decoding (as
 * above) in `scratch`, which is reset first; that view is valid until scratch
 * changes. Callers that keep the value copy it when out->ptr is not inside
 * the token. AGW_EINVAL when token is not a quote-delimited string. */
AGW_WARN_UNUSED agw_err agw_json_string_view(agw_str token, agw_buf *scratch, agw_str *out);

/* 1 when the string token decodes (as above) to exactly s, without
 * allocating; 0 otherwise, including for a malformed token. */
int agw_json_string_eq(agw_str token, agw_str s);

/* Walks the members of an object or the elements of an array without
 * allocating. Typical use:
 *     agw_json_iter it;
 *     agw_str k, v;
 *     if (agw_json_iter_init(&it, doc) == AGW_OK)
 *         while (agw_json_iter_next(&it, &k, &v)) ...
 * Fields are private. */
typedef struct {
    const char *pos;
    const char *end;
    char close; /* '}' or ']' */
    char started;
} agw_json_iter;

/* AGW_EINVAL unless container (after whitespace) is an object or array. */
AGW_WARN_UNUSED agw_err agw_json_iter_init(agw_json_iter *it, agw_str container);

/* 1 and the next key token (with quotes; empty for arrays) and value span; 0
 * at the end, and from then on. key may be NULL. */
int agw_json_iter_next(agw_json_iter *it, agw_str *key, agw_str *value);

/* AGW_OK when no member name occurs twice at the top level of the object
 * doc (names compared after unescaping, so "model" and "mod\u0065l" are the
 * same); AGW_EINVAL with *dup (may be NULL) set to the key token of a
 * repeated name's later occurrence; AGW_EINVAL with *dup empty when doc is
 * not an object. O(n log n) in the number of members. */
AGW_WARN_UNUSED agw_err agw_json_duplicate_key(agw_str doc, agw_str *dup);

#endif
