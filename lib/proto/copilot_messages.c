#include "proto/copilot_messages.h"

#include "core/json.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

/* The last element of body's "messages" array (an empty view when none). */
static agw_str last_message(agw_str body)
{
    agw_str msgs, m, last = { NULL, 0 };
    agw_json_iter it;
    if (agw_json_find(body, AGW_STR_LIT("messages"), &msgs) != AGW_OK ||
        agw_json_type_of(msgs) != AGW_JSON_ARRAY || agw_json_iter_init(&it, msgs) != AGW_OK)
        return last;
    while (agw_json_iter_next(&it, NULL, &m))
        last = m;
    return last;
}

/* 1 when a content array holds a block whose "type" is one of `kinds`
 * (NULL-terminated); with `deep`, the content of tool results too. */
static int content_has(agw_str content, const char *const *kinds, int deep)
{
    agw_json_iter it;
    agw_str part, type, inner;
    if (agw_json_type_of(content) != AGW_JSON_ARRAY || agw_json_iter_init(&it, content) != AGW_OK)
        return 0;
    while (agw_json_iter_next(&it, NULL, &part)) {
        if (agw_json_find(part, AGW_STR_LIT("type"), &type) != AGW_OK)
            continue;
        for (const char *const *k = kinds; *k; k++)
            if (agw_json_string_eq(type, agw_str_c(*k)))
                return 1;
        if (deep && agw_json_find(part, AGW_STR_LIT("content"), &inner) == AGW_OK &&
            content_has(inner, kinds, 0))
            return 1;
    }
    return 0;
}

/* A Responses body's last input item: "user" when it is the user's own
 * message (or `input` is a string), "agent" for a function_call_output and
 * anything else. */
static const char *responses_initiator(agw_str body)
{
    agw_str input, item, last = { NULL, 0 }, type, role;
    agw_json_iter it;
    if (agw_json_find(body, AGW_STR_LIT("input"), &input) != AGW_OK)
        return "agent";
    if (agw_json_type_of(input) == AGW_JSON_STRING)
        return "user";
    if (agw_json_type_of(input) != AGW_JSON_ARRAY || agw_json_iter_init(&it, input) != AGW_OK)
        return "agent";
    while (agw_json_iter_next(&it, NULL, &item))
        last = item;
    if (!last.ptr)
        return "agent";
    if (agw_json_find(last, AGW_STR_LIT("type"), &type) == AGW_OK &&
        !agw_json_string_eq(type, AGW_STR_LIT("message")))
        return "agent";
    return agw_json_find(last, AGW_STR_LIT("role"), &role) == AGW_OK &&
                   agw_json_string_eq(role, AGW_STR_LIT("user"))
               ? "user"
               : "agent";
}

const char *agw_copilot_messages_initiator(agw_str body, agw_proto proto)
{
    static const char *const tool_results[] = { "tool_result", NULL };
    if (proto == AGW_PROTO_RESPONSES)
        return responses_initiator(body);
    agw_str m = last_message(body), role, content;
    if (!m.ptr || agw_json_find(m, AGW_STR_LIT("role"), &role) != AGW_OK ||
        !agw_json_string_eq(role, AGW_STR_LIT("user")))
        return "agent"; /* a tool message, an assistant prefill, nothing */
    if (proto == AGW_PROTO_ANTHROPIC && agw_json_find(m, AGW_STR_LIT("content"), &content) ==
                                            AGW_OK &&
        content_has(content, tool_results, 0))
        return "agent";
    return "user";
}

int agw_copilot_messages_has_images(agw_str body)
{
    static const char *const kinds[] = { "image_url", "image", "input_image", NULL };
    agw_str msgs, m, content;
    agw_json_iter it;
    /* chat and messages bodies list "messages", Responses bodies "input" */
    if ((agw_json_find(body, AGW_STR_LIT("messages"), &msgs) != AGW_OK &&
         agw_json_find(body, AGW_STR_LIT("input"), &msgs) != AGW_OK) ||
        agw_json_iter_init(&it, msgs) != AGW_OK)
        return 0;
    while (agw_json_iter_next(&it, NULL, &m))
        if (agw_json_find(m, AGW_STR_LIT("content"), &content) == AGW_OK &&
            content_has(content, kinds, 1))
            return 1;
    return 0;
}

static const char *role_of(const cJSON *m)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "role");
    return cJSON_IsString(r) && r->valuestring ? r->valuestring : "";
}

static const char *string_member(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) && v->valuestring ? v->valuestring : NULL;
}

/* Keeps the calls of assistant message `m` that have a name and an answer
 * among the tool messages msgs[from, to), with arguments that are a JSON
 * object text ("{}" otherwise). Returns 1 when it changed anything. */
static int repair_calls(cJSON *m, cJSON *msgs, int from, int to)
{
    cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
    int changed = 0;
    for (int i = cJSON_GetArraySize(calls) - 1; i >= 0; i--) {
        cJSON *c = cJSON_GetArrayItem(calls, i);
        cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
        const char *id = string_member(c, "id");
        const char *name = string_member(fn, "name");
        int answered = 0;
        for (int k = from; id && k < to && !answered; k++) {
            const char *tid = string_member(cJSON_GetArrayItem(msgs, k), "tool_call_id");
            answered = tid && strcmp(tid, id) == 0;
        }
        if (!name || !*name || !answered) {
            cJSON_DeleteItemFromArray(calls, i);
            changed = 1;
            continue;
        }
        const char *args = string_member(fn, "arguments");
        cJSON *parsed = args ? cJSON_Parse(args) : NULL;
        if (!cJSON_IsObject(parsed)) {
            /* Missing or broken alike: "{}" in their place. */
            cJSON_DeleteItemFromObjectCaseSensitive(fn, "arguments");
            cJSON_AddStringToObject(fn, "arguments", "{}");
            changed = 1;
        }
        cJSON_Delete(parsed);
    }
    if (calls && cJSON_GetArraySize(calls) == 0) {
        cJSON_DeleteItemFromObjectCaseSensitive(m, "tool_calls");
        changed = 1;
    }
    return changed;
}

/* 1 when assistant message `m` still calls `id`. */
static int calls_id(const cJSON *m, const char *id)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(m, "tool_calls"))
    {
        const char *cid = string_member(c, "id");
        if (cid && id && strcmp(cid, id) == 0)
            return 1;
    }
    return 0;
}

/* An assistant message left with neither calls nor text says nothing. */
static int empty_assistant(const cJSON *m)
{
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    return !cJSON_GetObjectItemCaseSensitive(m, "tool_calls") &&
           (!content || cJSON_IsNull(content) ||
            (cJSON_IsString(content) && !*content->valuestring) ||
            (cJSON_IsArray(content) && cJSON_GetArraySize(content) == 0));
}

/* A member repeated in one object means what each reader wants (cJSON
 * reads the first, other parsers the last): the repair reads, and a rebuilt
 * body keeps, only the first. */
static void drop_repeated_members(cJSON *node)
{
    for (cJSON *c = node ? node->child : NULL; c; c = c->next) {
        if (cJSON_IsObject(node) && c->string) {
            cJSON *d = c->next;
            while (d) {
                cJSON *next = d->next;
                if (d->string && strcmp(d->string, c->string) == 0)
                    cJSON_Delete(cJSON_DetachItemViaPointer(node, d));
                d = next;
            }
        }
        drop_repeated_members(c);
    }
}

agw_err agw_copilot_messages_repair(agw_str body, agw_buf *out)
{
    if (!memmem(body.ptr, body.len, "\"tool", 5))
        return AGW_ENOTFOUND;
    cJSON *doc = cJSON_ParseWithLength(body.ptr, body.len);
    drop_repeated_members(doc); /* read as cJSON reads: the first wins */
    cJSON *msgs = doc ? cJSON_GetObjectItemCaseSensitive(doc, "messages") : NULL;
    if (!cJSON_IsArray(msgs)) {
        cJSON_Delete(doc);
        return AGW_ENOTFOUND; /* the upstream says what is wrong with it */
    }
    int changed = 0, n = cJSON_GetArraySize(msgs);
    /* keep[i]: message i stays. */
    char *keep = xcalloc((size_t)n + 1, 1);
    for (int i = 0; i < n;) {
        cJSON *m = cJSON_GetArrayItem(msgs, i);
        const char *role = role_of(m);
        keep[i] = 1;
        if (strcmp(role, "tool") == 0) { /* no assistant call before it */
            keep[i] = 0;
            changed = 1;
            i++;
            continue;
        }
        if (strcmp(role, "assistant") != 0 ||
            !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(m, "tool_calls"))) {
            i++;
            continue;
        }
        int j = i + 1;
        while (j < n && strcmp(role_of(cJSON_GetArrayItem(msgs, j)), "tool") == 0)
            j++;
        changed |= repair_calls(m, msgs, i + 1, j);
        for (int k = i + 1; k < j; k++) {
            const char *tid = string_member(cJSON_GetArrayItem(msgs, k), "tool_call_id");
            int dup = 0;
            for (int q = i + 1; q < k && tid; q++) {
                const char *qid = string_member(cJSON_GetArrayItem(msgs, q), "tool_call_id");
                dup |= keep[q] && qid && strcmp(qid, tid) == 0;
            }
            keep[k] = calls_id(m, tid) && !dup;
            changed |= !keep[k];
        }
        if (empty_assistant(m)) {
            keep[i] = 0;
            changed = 1;
        }
        i = j;
    }
    agw_err e = AGW_ENOTFOUND;
    if (changed) {
        for (int i = n - 1; i >= 0; i--)
            if (!keep[i])
                cJSON_DeleteItemFromArray(msgs, i);
        char *text = cJSON_PrintUnformatted(doc);
        e = text ? agw_buf_append_str(out, agw_str_c(text)) : AGW_ETOOBIG;
        cJSON_free(text);
    }
    free(keep);
    cJSON_Delete(doc);
    return e;
}
