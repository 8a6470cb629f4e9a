/* libFuzzer target for agw_anthropic_decode_response (a non-streamed
 * Anthropic answer -> IR events); the invariants are in fuzz_response.h,
 * with fuzz_ir_check.h's Anthropic rules (FUZZ_IR_ANTHROPIC: redacted
 * thinking blocks and signature deltas allowed, an error's message not
 * required). */
#include "fuzz_response.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_response(agw_anthropic_decode_response, FUZZ_IR_ANTHROPIC, data, size);
}
