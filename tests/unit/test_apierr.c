/* Unit tests for lib/apierr: the exact bytes of error bodies and error events
 * in both client protocols, the status -> type tables and reason phrases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/apierr.h"

/* Exact comparison with a readable failure message. */
static void assert_bytes(const agw_buf *b, const char *want, size_t wantlen)
{
    if (b->len != wantlen || memcmp(b->data, want, wantlen) != 0)
        fail_msg("got  [%.*s] (%lu bytes)\nwant [%.*s] (%lu bytes)", (int)b->len,
                 b->data ? b->data : "", (unsigned long)b->len, (int)wantlen, want,
                 (unsigned long)wantlen);
}
#define ASSERT_BYTES(b, lit) assert_bytes(&(b), (lit), sizeof(lit) - 1)

typedef struct {
    int status;
    const char *openai;
    const char *anthropic;
    const char *reason;
} status_row;

/* The whole table the two SDK families rely on. */
static const status_row rows[] = {
    { 400, "invalid_request_error", "invalid_request_error", "Bad Request" },
    { 401, "authentication_error", "authentication_error", "Unauthorized" },
    { 403, "permission_error", "permission_error", "Forbidden" },
    { 404, "invalid_request_error", "not_found_error", "Not Found" },
    { 405, "invalid_request_error", "invalid_request_error", "Method Not Allowed" },
    { 408, "invalid_request_error", "invalid_request_error", "Request Timeout" },
    { 409, "invalid_request_error", "invalid_request_error", "Conflict" },
    { 413, "invalid_request_error", "request_too_large", "Payload Too Large" },
    { 422, "invalid_request_error", "invalid_request_error", "Unprocessable Entity" },
    { 429, "rate_limit_error", "rate_limit_error", "Too Many Requests" },
    { 500, "server_error", "api_error", "Internal Server Error" },
    { 502, "server_error", "api_error", "Bad Gateway" },
    { 503, "server_error", "overloaded_error", "Service Unavailable" },
    { 504, "timeout_error", "timeout_error", "Gateway Timeout" },
    { 529, "server_error", "overloaded_error", "Overloaded" },
    { 418, "invalid_request_error", "invalid_request_error", "Unknown" },
    { 501, "server_error", "api_error", "Unknown" },
    { 599, "server_error", "api_error", "Unknown" },
};

static void test_types_and_reasons(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        assert_string_equal(agw_apierr_type(AGW_PROTO_OPENAI, rows[i].status), rows[i].openai);
        assert_string_equal(agw_apierr_type(AGW_PROTO_ANTHROPIC, rows[i].status), rows[i].anthropic);
        assert_string_equal(agw_http_reason(rows[i].status), rows[i].reason);
    }
    assert_string_equal(agw_http_reason(200), "OK");
    assert_string_equal(agw_http_reason(204), "No Content");
    assert_string_equal(agw_http_reason(0), "Unknown");
    assert_string_equal(agw_http_reason(-1), "Unknown");
    assert_string_equal(agw_http_reason(201), "Unknown");
}

/* Every status of the table gives the exact documented body in both shapes. */
static void test_body_every_status(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char want[512];
        agw_buf b = AGW_BUF_INIT(4096);
        assert_int_equal(agw_apierr_body(&b, AGW_PROTO_OPENAI, rows[i].status, AGW_STR_LIT("msg"), NULL),
                         AGW_OK);
        int n = snprintf(want, sizeof want,
                         "{\"error\":{\"message\":\"msg\",\"type\":\"%s\",\"param\":null,\"code\":null}}",
                         rows[i].openai);
        assert_bytes(&b, want, (size_t)n);
        agw_buf_free(&b);

        assert_int_equal(agw_apierr_body(&b, AGW_PROTO_ANTHROPIC, rows[i].status, AGW_STR_LIT("msg"),
                                         "ignored"),
                         AGW_OK);
        n = snprintf(want, sizeof want,
                     "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":\"msg\"}}",
                     rows[i].anthropic);
        assert_bytes(&b, want, (size_t)n);
        agw_buf_free(&b);
    }
}

static void test_body_openai_exact(void **state)
{
    (void)state;
    agw_buf b = AGW_BUF_INIT(4096);
    assert_int_equal(agw_apierr_body(&b, AGW_PROTO_OPENAI, 404,
                                     AGW_STR_LIT("The model `gpt-9` does not exist"), "model_not_found"),
                     AGW_OK);
    ASSERT_BYTES(b, "{\"error\":{\"message\":\"The model `gpt-9` does not exist\","
                    "\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"model_not_found\"}}");
    agw_buf_free(&b);

    assert_int_equal(agw_apierr_body(&b, AGW_PROTO_OPENAI, 401, AGW_STR_LIT("Invalid API key"), NULL),
                     AGW_OK);
    ASSERT_BYTES(b, "{\"error\":{\"message\":\"Invalid API key\",\"type\":\"authentication_error\","
                    "\"param\":null,\"code\":null}}");
    agw_buf_free(&b);

    assert_int_equal(agw_apierr_body(&b, AGW_PROTO_OPENAI, 429, AGW_STR_LIT("slow down"),
                                     "rate_limit_exceeded"),
                     AGW_OK);
    ASSERT_BYTES(b, "{\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit_error\","
                    "\"param\":null,\"code\":\"rate_limit_exceeded\"}}");
    agw_buf_free(&b);

    /* An empty code string is a string, not null. */
    assert_int_equal(agw_apierr_body(&b, AGW_PROTO_OPENAI, 500, AGW_STR_LIT(""), ""), AGW_OK);
    ASSERT_BYTES(b, "{\"error\":{\"message\":\"\",\"type\":\"server_error\",\"param\":null,\"code\":\"\"}}");
    agw_buf_free(&b);
}

static void test_body_anthropic_exact(void **state)
{
    (void)state;
    agw_buf b = AGW_BUF_INIT(4096);
    assert_int_equal(agw_apierr_body(&b, AGW_PROTO_ANTHROPIC, 529, AGW_STR_LIT("Overloaded"), NULL),
                     AGW_OK);
    ASSERT_BYTES(b, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}");
    agw_buf_free(&b);

    assert_int_equal(agw_apierr_body(&b, AGW_PROTO_ANTHROPIC, 413,
                                     AGW_STR_LIT("request body over 10485760 bytes"), NULL),
                     AGW_OK);
    ASSERT_BYTES(b, "{\"type\":\"error\",\"error\":{\"type\":\"request_too_large\","
                    "\"message\":\"request body over 10485760 bytes\"}}");
    agw_buf_free(&b);
}

static void test_message_and_code_escaping(void **state)
{
    (void)state;
    agw_buf b = AGW_BUF_INIT(4096);
    /* Quotes, backslash, newline, a NUL and an invalid byte must all come out
     * as valid JSON string content. */
    assert_int_equal(agw_apierr_body(&b, AGW_PROTO_OPENAI, 400, AGW_STR_LIT("a\"b\\c\nd\0e\xFF"),
                                     "x\"y"),
                     AGW_OK);
    ASSERT_BYTES(b, "{\"error\":{\"message\":\"a\\\"b\\\\c\\nd\\u0000e\xEF\xBF\xBD\","
                    "\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"x\\\"y\"}}");
    agw_buf_free(&b);

    assert_int_equal(agw_apierr_body(&b, AGW_PROTO_ANTHROPIC, 400, AGW_STR_LIT("<\"tab\t\">"), NULL),
                     AGW_OK);
    ASSERT_BYTES(b, "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\","
                    "\"message\":\"<\\\"tab\\t\\\">\"}}");
    agw_buf_free(&b);
}

static void test_body_appends(void **state)
{
    (void)state;
    /* The functions append: what is in the buffer stays. */
    agw_buf b = AGW_BUF_INIT(4096);
    assert_int_equal(agw_buf_append(&b, "X", 1), AGW_OK);
    assert_int_equal(agw_apierr_body(&b, AGW_PROTO_ANTHROPIC, 401, AGW_STR_LIT("no"), NULL), AGW_OK);
    ASSERT_BYTES(b, "X{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"no\"}}");
    agw_buf_free(&b);
}

static void test_sse_openai_exact(void **state)
{
    (void)state;
    agw_buf b = AGW_BUF_INIT(4096);
    assert_int_equal(agw_apierr_sse(&b, AGW_PROTO_OPENAI, 502, AGW_STR_LIT("upstream broke")), AGW_OK);
    ASSERT_BYTES(b, "data: {\"error\":{\"message\":\"upstream broke\",\"type\":\"server_error\","
                    "\"param\":null,\"code\":null}}\n\n");
    agw_buf_free(&b);

    assert_int_equal(agw_apierr_sse(&b, AGW_PROTO_OPENAI, 504, AGW_STR_LIT("slow")), AGW_OK);
    ASSERT_BYTES(b, "data: {\"error\":{\"message\":\"slow\",\"type\":\"timeout_error\","
                    "\"param\":null,\"code\":null}}\n\n");
    agw_buf_free(&b);
}

static void test_sse_responses_exact(void **state)
{
    (void)state;
    agw_buf b = AGW_BUF_INIT(4096);
    assert_int_equal(agw_apierr_sse(&b, AGW_PROTO_RESPONSES, 502, AGW_STR_LIT("upstream \"broke\"")),
                     AGW_OK);
    ASSERT_BYTES(b, "event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\","
                    "\"message\":\"upstream \\\"broke\\\"\",\"param\":null,\"sequence_number\":0}\n\n");
    agw_buf_free(&b);
    assert_int_equal(agw_apierr_sse_numbered(&b, AGW_PROTO_RESPONSES, 504, AGW_STR_LIT("slow"), 17),
                     AGW_OK);
    ASSERT_BYTES(b, "event: error\ndata: {\"type\":\"error\",\"code\":\"timeout_error\","
                    "\"message\":\"slow\",\"param\":null,\"sequence_number\":17}\n\n");
    agw_buf_free(&b);
    /* Bodies have OpenAI's shape. */
    assert_int_equal(agw_apierr_body(&b, AGW_PROTO_RESPONSES, 429, AGW_STR_LIT("slow"), NULL),
                     AGW_OK);
    ASSERT_BYTES(b, "{\"error\":{\"message\":\"slow\",\"type\":\"rate_limit_error\","
                    "\"param\":null,\"code\":null}}");
    agw_buf_free(&b);
}

static void test_sse_anthropic_exact(void **state)
{
    (void)state;
    agw_buf b = AGW_BUF_INIT(4096);
    assert_int_equal(agw_apierr_sse(&b, AGW_PROTO_ANTHROPIC, 529, AGW_STR_LIT("Overloaded")), AGW_OK);
    ASSERT_BYTES(b, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                    "\"message\":\"Overloaded\"}}\n\n");
    agw_buf_free(&b);

    assert_int_equal(agw_apierr_sse(&b, AGW_PROTO_ANTHROPIC, 500, AGW_STR_LIT("boom")), AGW_OK);
    ASSERT_BYTES(b, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\","
                    "\"message\":\"boom\"}}\n\n");
    agw_buf_free(&b);
}

static void test_sse_message_cannot_break_event(void **state)
{
    (void)state;
    /* Line breaks in the message must not end the event or inject fields:
     * the only raw newlines are the event's own. */
    static const char msg[] = "line1\nline2\r\n\ndata: [DONE]\r";
    for (int proto = 0; proto <= AGW_PROTO_RESPONSES; proto++) {
        agw_buf b = AGW_BUF_INIT(4096);
        assert_int_equal(agw_apierr_sse(&b, (agw_proto)proto, 500, (agw_str){ msg, sizeof msg - 1 }), AGW_OK);
        assert_null(memchr(b.data, '\r', b.len));
        size_t newlines = 0;
        for (size_t i = 0; i < b.len; i++)
            newlines += b.data[i] == '\n';
        assert_int_equal(newlines, proto == AGW_PROTO_OPENAI ? 2 : 3);
        assert_memory_equal(b.data + b.len - 2, "\n\n", 2);
        assert_non_null(strstr(b.data, "line1\\nline2\\r\\n\\ndata: [DONE]\\r"));
        agw_buf_free(&b);
    }
}

static void test_over_cap(void **state)
{
    (void)state;
    /* A message that does not fit: ETOOBIG and the buffer freed, as agw_buf does. */
    char big[300];
    memset(big, 'm', sizeof big);
    agw_buf b = AGW_BUF_INIT(200);
    assert_int_equal(agw_apierr_body(&b, AGW_PROTO_OPENAI, 500, (agw_str){ big, sizeof big }, NULL),
                     AGW_ETOOBIG);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(agw_apierr_body(&b, AGW_PROTO_ANTHROPIC, 500, (agw_str){ big, sizeof big }, NULL),
                     AGW_ETOOBIG);
    assert_null(b.data);
    assert_int_equal(agw_apierr_sse(&b, AGW_PROTO_ANTHROPIC, 500, (agw_str){ big, sizeof big }),
                     AGW_ETOOBIG);
    assert_null(b.data);
    /* Exactly at the cap works: the OpenAI body around a 1-byte message. */
    static const char want[] = "{\"error\":{\"message\":\"m\",\"type\":\"server_error\","
                               "\"param\":null,\"code\":null}}";
    agw_buf c = AGW_BUF_INIT(sizeof want - 1);
    assert_int_equal(agw_apierr_body(&c, AGW_PROTO_OPENAI, 500, AGW_STR_LIT("m"), NULL), AGW_OK);
    ASSERT_BYTES(c, want);
    agw_buf_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types_and_reasons),
        cmocka_unit_test(test_body_every_status),
        cmocka_unit_test(test_body_openai_exact),
        cmocka_unit_test(test_body_anthropic_exact),
        cmocka_unit_test(test_message_and_code_escaping),
        cmocka_unit_test(test_body_appends),
        cmocka_unit_test(test_sse_openai_exact),
        cmocka_unit_test(test_sse_anthropic_exact),
        cmocka_unit_test(test_sse_message_cannot_break_event),
        cmocka_unit_test(test_over_cap),
        cmocka_unit_test(test_sse_responses_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
