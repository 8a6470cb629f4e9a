/* libFuzzer target for the request half of lib/proto/anthropic.
 *
 * The input is a Messages request body. Invariants, any violation aborts:
 *  - decoding returns AGW_OK or AGW_EINVAL, and AGW_EINVAL comes with a
 *    message;
 *  - a decoded request encodes to AGW_OK or AGW_EINVAL (with a message, and
 *    the output buffer left as it was);
 *  - an encoded request is valid JSON that decodes again, and encoding that
 *    gives the same bytes: the encoder's output is a fixed point.
 */
#include <stdio.h>
#include <string.h>

#include "fuzz_check.h"

#include "core/json.h"
#include "proto/anthropic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    agw_arena a1 = AGW_ARENA_INIT, a2 = AGW_ARENA_INIT;
    agw_ir_request r1, r2;
    agw_buf o1 = AGW_BUF_INIT(SIZE_MAX), o2 = AGW_BUF_INIT(SIZE_MAX);
    char err[256];
    agw_err e;

    err[0] = '\0';
    e = agw_anthropic_decode_request((agw_str){ (const char *)data, size }, &a1, &r1, err,
                                     sizeof err);
    check(e == AGW_OK || e == AGW_EINVAL, "decode returns OK or EINVAL");
    check(e == AGW_OK || err[0] != '\0', "a rejection has a message");
    if (e != AGW_OK)
        goto out;

    err[0] = '\0';
    check(agw_buf_append(&o1, "x", 1) == AGW_OK, "append");
    e = agw_anthropic_encode_request(&r1, &o1, err, sizeof err);
    check(e == AGW_OK || e == AGW_EINVAL, "encode returns OK or EINVAL");
    if (e != AGW_OK) {
        check(err[0] != '\0', "an encode failure has a message");
        check(o1.len == 1, "a failed encode leaves the buffer as it was");
        goto out;
    }
    agw_buf_consume(&o1, 1);
    check(agw_json_validate(agw_buf_view(&o1), 4096, NULL, 0) == AGW_OK, "valid JSON out");

    err[0] = '\0';
    e = agw_anthropic_decode_request(agw_buf_view(&o1), &a2, &r2, err, sizeof err);
    if (e != AGW_OK)
        fprintf(stderr, "re-decode: %s\n", err);
    check(e == AGW_OK, "the encoder's output decodes");
    check(agw_anthropic_encode_request(&r2, &o2, err, sizeof err) == AGW_OK, "and encodes");
    check(agw_str_eq(agw_buf_view(&o1), agw_buf_view(&o2)), "to the same bytes");
out:
    agw_buf_free(&o1);
    agw_buf_free(&o2);
    agw_arena_free(&a1);
    agw_arena_free(&a2);
    return 0;
}
