/* libFuzzer target for lib/proto/copilot_messages. The whole input is a
 * chat body. Invariants, any violation aborts:
 *  - the initiator is "user" or "agent" in both protocols, and the image
 *    flag 0 or 1, on any bytes;
 *  - the repair fails only with AGW_ENOTFOUND (nothing to do, or not JSON
 *    it can read), and leaves `out` empty then;
 *  - a repaired body that the gateway would pass on (valid JSON, no member
 *    twice) is valid JSON with as many messages or fewer, and needs no
 *    second repair (it reaches its fixed point in one step).
 */
#include <string.h>

#include "fuzz_check.h"

#include "core/json.h"
#include "proto/copilot_messages.h"

static long count_messages(agw_str body)
{
    agw_str msgs, m;
    agw_json_iter it;
    long n = 0;
    if (agw_json_find(body, AGW_STR_LIT("messages"), &msgs) != AGW_OK ||
        agw_json_iter_init(&it, msgs) != AGW_OK)
        return -1;
    while (agw_json_iter_next(&it, NULL, &m))
        n++;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    agw_str body = { (const char *)data, size };
    for (int p = 0; p < 2; p++) {
        const char *who = agw_copilot_messages_initiator(body, p ? AGW_PROTO_ANTHROPIC
                                                                 : AGW_PROTO_OPENAI);
        check(strcmp(who, "user") == 0 || strcmp(who, "agent") == 0, "initiator");
    }
    int img = agw_copilot_messages_has_images(body);
    check(img == 0 || img == 1, "image flag");

    agw_buf out = AGW_BUF_INIT(64u << 20), again = AGW_BUF_INIT(64u << 20);
    agw_str dup;
    agw_err e = agw_copilot_messages_repair(body, &out);
    if (e != AGW_OK) {
        check(e == AGW_ENOTFOUND, "repair fails only with ENOTFOUND");
        check(out.len == 0, "a body left alone writes nothing");
    } else if (agw_json_validate(body, 64, NULL, 0) == AGW_OK &&
               agw_json_duplicate_key(body, &dup) == AGW_OK) {
        agw_str fixed = agw_buf_view(&out);
        check(agw_json_validate(fixed, 1000, NULL, 0) == AGW_OK, "the repaired body is JSON");
        check(count_messages(fixed) <= count_messages(body), "repair only removes messages");
        check(agw_copilot_messages_repair(fixed, &again) == AGW_ENOTFOUND,
              "a repaired body needs no second repair");
    }
    agw_buf_free(&out);
    agw_buf_free(&again);
    return 0;
}
