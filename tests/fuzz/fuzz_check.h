/* What every protocol fuzz target starts with: the libFuzzer entry point's
 * prototype and check(), which aborts (so libFuzzer keeps the input) with the
 * broken invariant's name when ok is 0. */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "invariant failed: %s\n", what);
        abort();
    }
}

#endif
