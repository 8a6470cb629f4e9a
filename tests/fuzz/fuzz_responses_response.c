/* libFuzzer target for agw_responses_decode_response (a non-streamed OpenAI
 * Responses answer -> IR events); the invariants are in fuzz_response.h,
 * with fuzz_ir_check.h's Anthropic kinds (reasoning items give redacted
 * thinking and signature deltas). */
#include "fuzz_response.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_response(agw_responses_decode_response, FUZZ_IR_ANTHROPIC, data, size);
}
