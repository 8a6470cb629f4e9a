/*
 * kiro_request_encode: an IR request -> a generateAssistantResponse body
 * (agw_kiro_encode_request; kiro.h lists the shapes it writes and why).
 */
#include "proto/kiro.h"
#include "proto/wire.h"

#include "core/crypto.h"
#include "core/json.h"

#include <stdio.h>

#define SYSTEM_ACK "I will follow these instructions."
#define CONTINUE "Continue"
#define TOOL_RESULTS_TEXT "Tool results provided."
#define TOOL_CALL_TEXT "(tool call)"
#define EMPTY_RESULT "(empty result)"
#define TOOL_PLACEHOLDER_DESC "Tool %.*s"

/* One turn as Kiro sees it: the blocks of adjacent IR messages of one role,
 * or a synthetic text. */
typedef struct {
    agw_ir_role role;
    const agw_ir_block **blocks;
    size_t n_blocks;
    agw_str text;   /* synthetic turns only */
} turn;

typedef struct {
    agw_wire_writer w;
    agw_arena *a;
    const agw_ir_request *rq;
    agw_str model_id;
    char *err;
    size_t errlen;
} enc;

#define enc_fail(x, ...) agw_wire_w_fail(&(x)->w, (x)->err, (x)->errlen, __VA_ARGS__)

/* Adjacent messages of one role merged into turns (arena arrays). */
static turn *merge_turns(agw_arena *a, const agw_ir_request *rq, size_t extra, size_t *n_out)
{
    turn *t = agw_arena_array(a, rq->n_messages + extra + 1, sizeof *t);
    size_t n = 0;
    for (size_t i = 0; i < rq->n_messages; i++) {
        const agw_ir_message *m = &rq->messages[i];
        if (!n || t[n - 1].role != m->role) {
            size_t total = 0;
            for (size_t j = i; j < rq->n_messages && rq->messages[j].role == m->role; j++)
                total += rq->messages[j].n_blocks;
            t[n] = (turn){ m->role, agw_arena_array(a, total + 1, sizeof(agw_ir_block *)), 0,
                           { NULL, 0 } };
            n++;
        }
        for (size_t k = 0; k < m->n_blocks; k++)
            t[n - 1].blocks[t[n - 1].n_blocks++] = &m->blocks[k];
    }
    *n_out = n;
    return t;
}

/* The JSON schema with every additionalProperties and empty required left out. */
static void w_clean_schema(enc *x, agw_str v)
{
    agw_json_type ty = agw_json_type_of(v);
    agw_json_iter it;
    agw_str k, item;
    int first = 1;
    if ((ty != AGW_JSON_OBJECT && ty != AGW_JSON_ARRAY) || agw_json_iter_init(&it, v) != AGW_OK) {
        agw_wire_w_view(&x->w, agw_wire_trim(v));
        return;
    }
    agw_wire_w_raw(&x->w, ty == AGW_JSON_OBJECT ? "{" : "[", 1);
    while (agw_json_iter_next(&it, ty == AGW_JSON_OBJECT ? &k : NULL, &item)) {
        if (ty == AGW_JSON_OBJECT) {
            if (agw_str_eq(k, AGW_STR_LIT("\"additionalProperties\"")))
                continue;
            agw_json_iter sub;
            agw_str ik, iv;
            if (agw_str_eq(k, AGW_STR_LIT("\"required\"")) &&
                agw_json_type_of(item) == AGW_JSON_ARRAY &&
                agw_json_iter_init(&sub, item) == AGW_OK && !agw_json_iter_next(&sub, &ik, &iv))
                continue;
        }
        if (!first)
            AGW_WIRE_W_LIT(&x->w, ",");
        first = 0;
        if (ty == AGW_JSON_OBJECT) {
            agw_wire_w_view(&x->w, k);
            AGW_WIRE_W_LIT(&x->w, ":");
        }
        w_clean_schema(x, item);
    }
    agw_wire_w_raw(&x->w, ty == AGW_JSON_OBJECT ? "}" : "]", 1);
}

static void w_tool_spec(enc *x, agw_str name, agw_str desc, agw_str schema)
{
    AGW_WIRE_W_LIT(&x->w, "{\"toolSpecification\":{\"name\":");
    agw_wire_w_str(&x->w, agw_kiro_tool_name(x->a, name));
    AGW_WIRE_W_LIT(&x->w, ",\"description\":");
    if (!desc.len) {
        char buf[128];
        snprintf(buf, sizeof buf, TOOL_PLACEHOLDER_DESC, (int)(name.len < 100 ? name.len : 100),
                 name.ptr);
        agw_wire_w_str(&x->w, agw_str_c(buf));
    } else {
        /* Cut on a character boundary: the escaper would make a cut
         * character U+FFFD, but a clean cut keeps the text readable. */
        size_t n = desc.len;
        if (n > AGW_KIRO_TOOL_DESC_MAX) {
            n = AGW_KIRO_TOOL_DESC_MAX;
            while (n > 0 && ((unsigned char)desc.ptr[n] & 0xC0) == 0x80)
                n--;
        }
        agw_wire_w_str(&x->w, (agw_str){ desc.ptr, n });
    }
    AGW_WIRE_W_LIT(&x->w, ",\"inputSchema\":{\"json\":");
    if (agw_wire_object(schema))
        w_clean_schema(x, schema);
    else
        AGW_WIRE_W_LIT(&x->w, "{\"type\":\"object\",\"properties\":{}}");
    AGW_WIRE_W_LIT(&x->w, "}}}");
}

static int tool_declared(const agw_ir_request *rq, agw_str name)
{
    for (size_t i = 0; i < rq->n_tools; i++)
        if (agw_str_eq(rq->tools[i].name, name))
            return 1;
    return 0;
}

/* The first tool use of the turns that the request does not declare and
 * that no earlier block used: each such tool is declared once. */
static int undeclared_first_use(const agw_ir_request *rq, const turn *t, size_t i, size_t j)
{
    const agw_ir_block *b = t[i].blocks[j];
    if (b->kind != AGW_IR_TOOL_USE || tool_declared(rq, b->tool_name))
        return 0;
    for (size_t pi = 0; pi <= i; pi++)
        for (size_t pj = 0; pj < (pi == i ? j : t[pi].n_blocks); pj++)
            if (t[pi].blocks[pj]->kind == AGW_IR_TOOL_USE &&
                agw_str_eq(t[pi].blocks[pj]->tool_name, b->tool_name))
                return 0;
    return 1;
}

/* Whether the request's tool i goes to Kiro: always, but with tool_choice
 * none (Kiro has no such switch) only when the history used it, which then
 * needs it declared. */
static int tool_offered(const agw_ir_request *rq, const turn *t, size_t n_turns, size_t i)
{
    if (rq->tool_choice != AGW_IR_TC_NONE)
        return 1;
    for (size_t k = 0; k < n_turns; k++)
        for (size_t j = 0; j < t[k].n_blocks; j++)
            if (t[k].blocks[j]->kind == AGW_IR_TOOL_USE &&
                agw_str_eq(t[k].blocks[j]->tool_name, rq->tools[i].name))
                return 1;
    return 0;
}

static int any_tools(const agw_ir_request *rq, const turn *t, size_t n_turns)
{
    for (size_t i = 0; i < rq->n_tools; i++)
        if (tool_offered(rq, t, n_turns, i))
            return 1;
    for (size_t i = 0; i < n_turns; i++)
        for (size_t j = 0; j < t[i].n_blocks; j++)
            if (undeclared_first_use(rq, t, i, j))
                return 1;
    return 0;
}

/* "tools": the request's, then those the history used without declaring them. */
static void w_tools(enc *x, const turn *t, size_t n_turns)
{
    const agw_ir_request *rq = x->rq;
    int first = 1;
    AGW_WIRE_W_LIT(&x->w, "\"tools\":[");
    for (size_t i = 0; i < rq->n_tools; i++) {
        if (!tool_offered(rq, t, n_turns, i))
            continue;
        if (!first)
            AGW_WIRE_W_LIT(&x->w, ",");
        first = 0;
        w_tool_spec(x, rq->tools[i].name, rq->tools[i].description, rq->tools[i].schema);
    }
    for (size_t i = 0; i < n_turns; i++)
        for (size_t j = 0; j < t[i].n_blocks; j++) {
            if (!undeclared_first_use(rq, t, i, j))
                continue;
            if (!first)
            AGW_WIRE_W_LIT(&x->w, ",");
            first = 0;
            w_tool_spec(x, t[i].blocks[j]->tool_name, (agw_str){ NULL, 0 }, (agw_str){ NULL, 0 });
        }
    AGW_WIRE_W_LIT(&x->w, "]");
}

static agw_err image_format(enc *x, const agw_ir_block *b, agw_str *fmt)
{
    static const struct {
        const char *media, *format;
    } formats[] = { { "image/jpeg", "jpeg" }, { "image/jpg", "jpeg" }, { "image/png", "png" },
                    { "image/gif", "gif" },   { "image/webp", "webp" } };
    if (b->image_is_url)
        return enc_fail(x, "images must be base64 data for Kiro providers, not URLs");
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (agw_str_eq_nocase(b->media_type, agw_str_c(formats[i].media))) {
            *fmt = agw_str_c(formats[i].format);
            return AGW_OK;
        }
    char shown[64];
    return enc_fail(x, "image type '%s' is not supported by Kiro (jpeg, png, gif, webp)",
                    agw_wire_show(b->media_type, shown, sizeof shown));
}

static void w_image(enc *x, const agw_ir_block *b, int *first)
{
    agw_str fmt;
    if (image_format(x, b, &fmt) != AGW_OK)
        return;
    if (agw_wire_put_sep(x->w.b, first) != AGW_OK)
        x->w.e = AGW_ETOOBIG;
    AGW_WIRE_W_LIT(&x->w, "{\"format\":");
    agw_wire_w_str(&x->w, fmt);
    AGW_WIRE_W_LIT(&x->w, ",\"source\":{\"bytes\":");
    agw_wire_w_str(&x->w, b->image_data);
    AGW_WIRE_W_LIT(&x->w, "}}");
}

/* The texts of a turn's blocks (and of tool results when `results`), joined. */
static int w_texts(enc *x, const turn *t, const char *sep)
{
    int any = 0;
    for (size_t i = 0; i < t->n_blocks; i++) {
        const agw_ir_block *b = t->blocks[i];
        if (b->kind != AGW_IR_TEXT || !b->text.len)
            continue;
        if (any)
            agw_wire_w_esc(&x->w, agw_str_c(sep));
        agw_wire_w_esc(&x->w, b->text);
        any = 1;
    }
    return any;
}

static int has_kind(const turn *t, agw_ir_block_kind k)
{
    for (size_t i = 0; i < t->n_blocks; i++)
        if (t->blocks[i]->kind == k)
            return 1;
    return 0;
}

static void w_tool_result(enc *x, const agw_ir_block *b)
{
    AGW_WIRE_W_LIT(&x->w, "{\"toolUseId\":");
    agw_wire_w_str(&x->w, b->tool_id);
    AGW_WIRE_W_LIT(&x->w, ",\"content\":[{\"text\":\"");
    int any = 0;
    for (size_t i = 0; i < b->n_content; i++) {
        const agw_ir_block *c = &b->content[i];
        if (c->kind != AGW_IR_TEXT || !c->text.len)
            continue;
        if (any)
            AGW_WIRE_W_LIT(&x->w, "\\n\\n");
        agw_wire_w_esc(&x->w, c->text);
        any = 1;
    }
    if (!any)
        AGW_WIRE_W_LIT(&x->w, EMPTY_RESULT);
    AGW_WIRE_W_LIT(&x->w, "\"}],\"status\":");
    agw_wire_w_cstr(&x->w, b->is_error ? "\"error\"" : "\"success\"");
    AGW_WIRE_W_LIT(&x->w, "}");
}

static void w_user(enc *x, const turn *t, int current, const turn *all, size_t n_turns)
{
    AGW_WIRE_W_LIT(&x->w, "{\"userInputMessage\":{\"content\":\"");
    if (t->text.len)
        agw_wire_w_esc(&x->w, t->text);
    else if (!w_texts(x, t, "\n\n"))
        agw_wire_w_cstr(&x->w, has_kind(t, AGW_IR_TOOL_RESULT) ? TOOL_RESULTS_TEXT : CONTINUE);
    AGW_WIRE_W_LIT(&x->w, "\",\"modelId\":");
    agw_wire_w_str(&x->w, x->model_id);
    AGW_WIRE_W_LIT(&x->w, ",\"origin\":\"AI_EDITOR\"");
    /* Images: the turn's own, then those inside its tool results. */
    int first = 1;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < t->n_blocks; i++) {
            const agw_ir_block *b = t->blocks[i];
            if (pass == 0 && b->kind == AGW_IR_IMAGE) {
                if (first)
                    AGW_WIRE_W_LIT(&x->w, ",\"images\":[");
                w_image(x, b, &first);
            } else if (pass == 1 && b->kind == AGW_IR_TOOL_RESULT) {
                for (size_t c = 0; c < b->n_content; c++)
                    if (b->content[c].kind == AGW_IR_IMAGE) {
                        if (first)
                            AGW_WIRE_W_LIT(&x->w, ",\"images\":[");
                        w_image(x, &b->content[c], &first);
                    }
            }
        }
    if (!first)
        AGW_WIRE_W_LIT(&x->w, "]");
    int results = has_kind(t, AGW_IR_TOOL_RESULT);
    int tools = current && any_tools(x->rq, all, n_turns);
    if (results || tools) {
        AGW_WIRE_W_LIT(&x->w, ",\"userInputMessageContext\":{");
        int comma = 0;
        if (results) {
            AGW_WIRE_W_LIT(&x->w, "\"toolResults\":[");
            int f = 1;
            for (size_t i = 0; i < t->n_blocks; i++) {
                const agw_ir_block *b = t->blocks[i];
                if (b->kind != AGW_IR_TOOL_RESULT)
                    continue;
                int dup = 0;
                for (size_t j = 0; j < i && !dup; j++)
                    dup = t->blocks[j]->kind == AGW_IR_TOOL_RESULT &&
                          agw_str_eq(t->blocks[j]->tool_id, b->tool_id);
                if (dup)
                    continue;
                if (!f)
                    AGW_WIRE_W_LIT(&x->w, ",");
                f = 0;
                w_tool_result(x, b);
            }
            AGW_WIRE_W_LIT(&x->w, "]");
            comma = 1;
        }
        if (tools) {
            if (comma)
                AGW_WIRE_W_LIT(&x->w, ",");
            w_tools(x, all, n_turns);
        }
        AGW_WIRE_W_LIT(&x->w, "}");
    }
    AGW_WIRE_W_LIT(&x->w, "}}");
}

static void w_assistant(enc *x, const turn *t)
{
    AGW_WIRE_W_LIT(&x->w, "{\"assistantResponseMessage\":{\"content\":\"");
    if (t->text.len)
        agw_wire_w_esc(&x->w, t->text);
    else if (!w_texts(x, t, ""))
        agw_wire_w_cstr(&x->w, has_kind(t, AGW_IR_TOOL_USE) ? TOOL_CALL_TEXT : "(empty)");
    AGW_WIRE_W_LIT(&x->w, "\"");
    int first = 1;
    for (size_t i = 0; i < t->n_blocks; i++) {
        const agw_ir_block *b = t->blocks[i];
        if (b->kind != AGW_IR_TOOL_USE)
            continue;
        if (first)
            AGW_WIRE_W_LIT(&x->w, ",\"toolUses\":[");
        else
            AGW_WIRE_W_LIT(&x->w, ",");
        first = 0;
        AGW_WIRE_W_LIT(&x->w, "{\"toolUseId\":");
        agw_wire_w_str(&x->w, b->tool_id);
        AGW_WIRE_W_LIT(&x->w, ",\"name\":");
        agw_wire_w_str(&x->w, agw_kiro_tool_name(x->a, b->tool_name));
        AGW_WIRE_W_LIT(&x->w, ",\"input\":");
        if (agw_wire_object(b->tool_input))
            agw_wire_w_view(&x->w, agw_wire_trim(b->tool_input));
        else
            AGW_WIRE_W_LIT(&x->w, "{}");
        AGW_WIRE_W_LIT(&x->w, "}");
    }
    if (!first)
        AGW_WIRE_W_LIT(&x->w, "]");
    AGW_WIRE_W_LIT(&x->w, "}}");
}

/* The thinking budget the client asked for, or -1: Anthropic `thinking` of
 * type enabled, or OpenAI's reasoning_effort (the budgets the README's
 * table maps back to low / medium / high). */
static int64_t thinking_budget(const agw_ir_request *rq)
{
    agw_str thinking = rq->thinking, type, budget;
    double n;
    if (rq->reasoning_effort.len) {
        static const struct {
            const char *effort;
            int64_t budget;
        } efforts[] = { { "minimal", 1024 }, { "low", 2048 }, { "medium", 8192 }, { "high", 24576 } };
        for (size_t i = 0; i < sizeof efforts / sizeof efforts[0]; i++)
            if (agw_str_eq(rq->reasoning_effort, agw_str_c(efforts[i].effort)))
                return efforts[i].budget;
        return -1; /* "none", or a value Kiro has no budget for */
    }
    if (!thinking.len || agw_json_find(thinking, AGW_STR_LIT("type"), &type) != AGW_OK ||
        !agw_str_eq(agw_wire_trim(type), AGW_STR_LIT("\"enabled\"")))
        return -1;
    if (agw_json_find(thinking, AGW_STR_LIT("budget_tokens"), &budget) == AGW_OK &&
        agw_wire_number(budget, &n) && n >= 1 && n <= 1e9)
        return (int64_t)n;
    return 16000;
}

int agw_kiro_thinking_asked(const agw_ir_request *rq)
{
    return thinking_budget(rq) > 0;
}

/* The system turn's text: the thinking switch, then the system blocks. */
static agw_str system_text(enc *x)
{
    const agw_ir_request *rq = x->rq;
    agw_buf b = AGW_BUF_INIT(SIZE_MAX);
    int64_t budget = thinking_budget(rq);
    agw_err e = AGW_OK;
    if (budget > 0)
        e = agw_buf_appendf(&b,
                            "<thinking_mode>enabled</thinking_mode>"
                            "<max_thinking_length>%lld</max_thinking_length>",
                            (long long)budget);
    for (size_t i = 0; !e && i < rq->n_system; i++) {
        if (!rq->system[i].text.len)
            continue;
        if (b.len)
            e = agw_buf_append(&b, "\n\n", 2);
        if (!e)
            e = agw_buf_append_str(&b, rq->system[i].text);
    }
    agw_str s = e ? (agw_str){ NULL, 0 } : agw_arena_str(x->a, agw_buf_view(&b));
    if (e && x->w.e == AGW_OK)
        x->w.e = e;
    agw_buf_free(&b);
    return s;
}

agw_err agw_kiro_encode_request(const agw_ir_request *rq, const agw_kiro_request_opts *opts,
                                agw_buf *out, char *err, size_t errlen)
{
    size_t start = out->len;
    agw_arena arena = AGW_ARENA_INIT;
    enc x = { AGW_WIRE_WRITER(out), &arena, rq, agw_kiro_model_id(&arena, rq->model), err, errlen };
    char uuid[37];
    agw_str conv = opts ? opts->conversation_id : (agw_str){ NULL, 0 };
    if (!conv.len) {
        if (agw_kiro_uuid(uuid) != AGW_OK) {
            agw_arena_free(&arena);
            return agw_wire_fail(err, errlen, "no random bytes for a conversation id"), AGW_EIO;
        }
        conv = agw_str_c(uuid);
    }

    /* Turns: system pair, a leading "Continue" before an assistant turn,
     * the client's turns, a trailing "Continue" after one. */
    size_t n_client;
    turn *client = merge_turns(&arena, rq, 0, &n_client);
    turn *t = agw_arena_array(&arena, n_client + 4, sizeof *t);
    size_t n = 0;
    agw_str sys = system_text(&x);
    if (sys.len) {
        t[n++] = (turn){ AGW_IR_USER, NULL, 0, sys };
        t[n++] = (turn){ AGW_IR_ASSISTANT, NULL, 0, AGW_STR_LIT(SYSTEM_ACK) };
    }
    if (n_client && client[0].role == AGW_IR_ASSISTANT)
        t[n++] = (turn){ AGW_IR_USER, NULL, 0, AGW_STR_LIT(CONTINUE) };
    for (size_t i = 0; i < n_client; i++)
        t[n++] = client[i];
    if (!n || t[n - 1].role == AGW_IR_ASSISTANT)
        t[n++] = (turn){ AGW_IR_USER, NULL, 0, AGW_STR_LIT(CONTINUE) };

    AGW_WIRE_W_LIT(&x.w, "{\"conversationState\":{\"chatTriggerType\":\"MANUAL\",\"conversationId\":");
    agw_wire_w_str(&x.w, conv);
    AGW_WIRE_W_LIT(&x.w, ",\"currentMessage\":");
    w_user(&x, &t[n - 1], 1, t, n - 1);
    AGW_WIRE_W_LIT(&x.w, ",\"history\":[");
    for (size_t i = 0; i + 1 < n && x.w.e == AGW_OK; i++) {
        if (i)
            AGW_WIRE_W_LIT(&x.w, ",");
        if (t[i].role == AGW_IR_USER)
            w_user(&x, &t[i], 0, t, 0);
        else
            w_assistant(&x, &t[i]);
    }
    AGW_WIRE_W_LIT(&x.w, "]}");
    if (opts && opts->profile_arn.len) {
        AGW_WIRE_W_LIT(&x.w, ",\"profileArn\":");
        agw_wire_w_str(&x.w, opts->profile_arn);
    }
    AGW_WIRE_W_LIT(&x.w, "}");
    agw_arena_free(&arena);
    return agw_wire_rollback(out, start, x.w.e);
}
