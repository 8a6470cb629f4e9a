/* libFuzzer target for agw_openai_decode_response (a non-streamed OpenAI
 * answer -> IR events); the invariants are in fuzz_response.h, with
 * fuzz_ir_check.h's OpenAI rules (no redacted thinking or signature deltas,
 * errors with a message). */
#include "fuzz_response.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_response(agw_openai_decode_response, 0, data, size);
}
