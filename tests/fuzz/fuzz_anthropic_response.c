/* libFuzzer target for agw_anthropic_decode_response (a non-streamed
 * Anthropic answer -> IR events); the invariants are in fuzz_response.h. */
#include "fuzz_response.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_response(agw_anthropic_decode_response, data, size);
}
