/* libFuzzer target for the request half of lib/proto/openai.
 *
 * The whole input is a request body. Invariants, any violation aborts:
 *  - decoding never crashes or leaks, and fails only with AGW_EINVAL and a
 *    message;
 *  - a decoded request encodes (AGW_OK) to valid JSON;
 *  - that body decodes again (unless the conversation was empty), and
 *    encoding it gives the same bytes: decode+encode is a normalisation that
 *    reaches its fixed point in one step.
 */
#include <string.h>

#include "fuzz_check.h"

#include "core/json.h"
#include "proto/openai.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    agw_arena a1 = AGW_ARENA_INIT, a2 = AGW_ARENA_INIT;
    agw_ir_request rq, rq2;
    agw_buf b1 = AGW_BUF_INIT(64u << 20), b2 = AGW_BUF_INIT(64u << 20);
    char err[256];
    agw_err e;
    int had_content;

    e = agw_openai_decode_request((agw_str){ (const char *)data, size }, &a1, &rq, err, sizeof err);
    if (e != AGW_OK) {
        check(e == AGW_EINVAL, "decode fails only with EINVAL");
        check(err[0] != '\0', "a failed decode says why");
        agw_arena_free(&a1);
        return 0;
    }
    had_content = rq.n_messages > 0;
    for (size_t i = 0; i < rq.n_system; i++)
        had_content |= rq.system[i].text.len > 0;
    check(rq.top_k == -1, "OpenAI requests have no top_k");
    check(agw_openai_encode_request(&rq, &b1, err, sizeof err) == AGW_OK, "decoded request encodes");
    check(agw_json_validate(agw_buf_view(&b1), 4096, NULL, 0) == AGW_OK, "encoding is JSON");

    e = agw_openai_decode_request(agw_buf_view(&b1), &a2, &rq2, err, sizeof err);
    if (!had_content) {
        check(e == AGW_EINVAL, "an empty conversation stays rejected");
    } else {
        check(e == AGW_OK, "our own encoding decodes");
        check(agw_openai_encode_request(&rq2, &b2, err, sizeof err) == AGW_OK, "re-encodes");
        check(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0,
              "encode(decode(encode(decode(x)))) == encode(decode(x))");
    }
    agw_buf_free(&b1);
    agw_buf_free(&b2);
    agw_arena_free(&a1);
    agw_arena_free(&a2);
    return 0;
}
