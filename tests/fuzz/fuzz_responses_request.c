/* libFuzzer target for the request half of lib/proto/responses.
 *
 * The whole input is a request body. Invariants, any violation aborts:
 *  - decoding never crashes or leaks, and fails only with AGW_EINVAL and a
 *    message (the stateless check included);
 *  - a decoded request encodes (AGW_OK) to valid JSON;
 *  - that body decodes again, unless its input came out empty (a
 *    conversation of nothing the upstream can read), and encoding it gives
 *    the same bytes: decode+encode reaches its fixed point in one step.
 */
#include <string.h>

#include "fuzz_check.h"

#include "core/json.h"
#include "proto/responses.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    agw_arena a1 = AGW_ARENA_INIT, a2 = AGW_ARENA_INIT;
    agw_ir_request rq, rq2;
    agw_buf b1 = AGW_BUF_INIT(64u << 20), b2 = AGW_BUF_INIT(64u << 20);
    char err[256];
    agw_str input;

    agw_err e = agw_responses_decode_request((agw_str){ (const char *)data, size }, &a1, &rq, err,
                                             sizeof err);
    if (e != AGW_OK) {
        check(e == AGW_EINVAL, "decode fails only with EINVAL");
        check(err[0] != '\0', "a failed decode says why");
        agw_arena_free(&a1);
        return 0;
    }
    check(rq.top_k == -1, "Responses requests have no top_k");
    check(agw_responses_check_stateless((agw_str){ (const char *)data, size }, NULL, 0) == AGW_OK,
          "a decoded request is stateless");
    check(agw_responses_encode_request(&rq, &b1, err, sizeof err) == AGW_OK,
          "decoded request encodes");
    check(agw_json_validate(agw_buf_view(&b1), 4096, NULL, 0) == AGW_OK, "encoding is JSON");
    check(agw_json_find(agw_buf_view(&b1), AGW_STR_LIT("input"), &input) == AGW_OK, "has input");

    e = agw_responses_decode_request(agw_buf_view(&b1), &a2, &rq2, err, sizeof err);
    if (agw_str_eq(input, AGW_STR_LIT("[]"))) {
        check(e == AGW_EINVAL, "an empty input stays rejected");
    } else {
        check(e == AGW_OK, "our own encoding decodes");
        check(agw_responses_encode_request(&rq2, &b2, err, sizeof err) == AGW_OK, "re-encodes");
        check(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0,
              "encode(decode(encode(decode(x)))) == encode(decode(x))");
    }
    agw_buf_free(&b1);
    agw_buf_free(&b2);
    agw_arena_free(&a1);
    agw_arena_free(&a2);
    return 0;
}
