#include "core/config.h"
#include "core/json.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const char *const provider_type_names[AGW_PROVIDER_TYPE_COUNT] = {
    "openai", "anthropic", "kiro", "copilot"
};

const char *agw_provider_type_name(agw_provider_type t)
{
    return (unsigned)t < AGW_PROVIDER_TYPE_COUNT ? provider_type_names[t] : "unknown";
}

int agw_config_name_ok(const char *name)
{
    if (!name || !*name)
        return 0;
    size_t n = 0;
    for (const char *s = name; *s; s++, n++)
        if (n == AGW_CONFIG_NAME_MAX ||
            !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

int agw_provider_type_parse(const char *name)
{
    for (int i = 0; i < AGW_PROVIDER_TYPE_COUNT; i++)
        if (name && strcmp(name, provider_type_names[i]) == 0)
            return i;
    return -1;
}

static const char *const lb_strategies[] = { "weighted", "round-robin", "least-used",
                                             "priority", "smart", NULL };

/* Where an error is reported: the file name and the line of a setting. */
typedef struct {
    const char *file;
    char *err;
    size_t errlen;
    int allow_link_local; /* upstream.allow_link_local, known before the providers */
} agw_config_loader;

static agw_err fail(agw_config_loader *ld, const config_setting_t *s, const char *key,
                    const char *fmt, ...)
    AGW_PRINTF(4, 5);

static agw_err fail(agw_config_loader *ld, const config_setting_t *s, const char *key,
                    const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int line = s ? config_setting_source_line(s) : 0;
    const char *file = s && config_setting_source_file(s) ? config_setting_source_file(s) : ld->file;
    if (ld->err)
        snprintf(ld->err, ld->errlen, "%s:%d: %s: %s", file, line, key, what);
    return AGW_EINVAL;
}

static char *join_path(const char *dir, const char *path)
{
    if (path[0] == '/' || !dir || !dir[0])
        return xstrdup(path);
    size_t n = strlen(dir) + strlen(path) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", dir, path);
    return p;
}

/* The index of `name` in `list` (ending with NULL), or -1; a NULL name (a
 * list element has none) is in no list. */
static int list_index(const char *name, const char *const *list)
{
    for (const char *const *k = list; *k; k++)
        if (name && strcmp(name, *k) == 0)
            return (int)(k - list);
    return -1;
}

static int in_list(const char *name, const char *const *list)
{
    return list_index(name, list) >= 0;
}

int agw_config_lb_strategy(const char *name)
{
    return list_index(name, lb_strategies);
}

/* Checks that every member of group `g` is one of `known`. */
static agw_err check_known(agw_config_loader *ld, const config_setting_t *g, const char *prefix,
                           const char *const *known)
{
    int n = config_setting_length(g);
    for (int i = 0; i < n; i++) {
        config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(m);
        if (!in_list(name, known)) {
            char key[128];
            snprintf(key, sizeof key, "%s%s", prefix, name ? name : "?");
            return fail(ld, m, key, "unknown setting");
        }
    }
    return AGW_OK;
}

/* Typed getters: absent keeps the default; present with a wrong type fails. */
static agw_err get_string(agw_config_loader *ld, const config_setting_t *g, const char *prefix,
                          const char *name, char **out)
{
    config_setting_t *s = g ? config_setting_get_member(g, name) : NULL;
    if (!s)
        return AGW_OK;
    char key[128];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return fail(ld, s, key, "must be a string");
    free(*out);
    *out = xstrdup(config_setting_get_string(s));
    return AGW_OK;
}

static agw_err get_int(agw_config_loader *ld, const config_setting_t *g, const char *prefix,
                       const char *name, long long lo, long long hi, long long *out)
{
    config_setting_t *s = g ? config_setting_get_member(g, name) : NULL;
    if (!s)
        return AGW_OK;
    char key[128];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    long long v;
    if (config_setting_type(s) == CONFIG_TYPE_INT)
        v = config_setting_get_int(s);
    else if (config_setting_type(s) == CONFIG_TYPE_INT64)
        v = config_setting_get_int64(s);
    else
        return fail(ld, s, key, "must be an integer");
    if (v < lo || v > hi)
        return fail(ld, s, key, "must be between %lld and %lld (got %lld)", lo, hi, v);
    *out = v;
    return AGW_OK;
}

/* get_int into an int field (lo and hi within int): absent keeps *field. */
static agw_err get_int_field(agw_config_loader *ld, const config_setting_t *g, const char *prefix,
                             const char *name, int lo, int hi, int *field)
{
    long long v = *field;
    agw_err e = get_int(ld, g, prefix, name, lo, hi, &v);
    if (!e)
        *field = (int)v;
    return e;
}

static agw_err get_bool(agw_config_loader *ld, const config_setting_t *g, const char *prefix,
                        const char *name, int *out)
{
    config_setting_t *s = g ? config_setting_get_member(g, name) : NULL;
    if (!s)
        return AGW_OK;
    char key[128];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    if (config_setting_type(s) != CONFIG_TYPE_BOOL)
        return fail(ld, s, key, "must be true or false");
    *out = config_setting_get_bool(s);
    return AGW_OK;
}

/* A top-level group may be left out (*out NULL: its settings keep their
 * defaults); when present, a misspelt member fails rather than being ignored. */
static agw_err group(agw_config_loader *ld, config_t *c, const char *name,
                     const char *const *known, config_setting_t **out)
{
    config_setting_t *g = config_lookup(c, name);
    *out = NULL;
    if (!g)
        return AGW_OK;
    if (!config_setting_is_group(g))
        return fail(ld, g, name, "must be a group { ... }");
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s.", name);
    agw_err e = check_known(ld, g, prefix, known);
    if (!e)
        *out = g;
    return e;
}

/* Empty strings mean "unset" for optional secrets. */
static void empty_to_null(char **s)
{
    if (*s && !**s) {
        free(*s);
        *s = NULL;
    }
}

/* Keys in messages: providers[N].field until the name is known, then
 * providers.NAME.field, so the operator can find the entry either way. Here
 * `prefix` is still the positional one: a bad name cannot label itself. */
static agw_err check_provider_name(agw_config_loader *ld, const config_setting_t *p,
                                   const char *prefix, const char *name)
{
    if (agw_config_name_ok(name))
        return AGW_OK;
    char key[128];
    snprintf(key, sizeof key, "%sname", prefix);
    const config_setting_t *at = config_setting_get_member(p, "name");
    if (name && strlen(name) > AGW_CONFIG_NAME_MAX)
        return fail(ld, at, key, "may be at most %d bytes long", AGW_CONFIG_NAME_MAX);
    return fail(ld, at ? at : p, key,
                "required, and may hold only letters, digits, '.', '_' and '-'");
}

/* The type-specific settings: key, the one type that reads it, default. */
static const struct {
    const char *name;
    agw_provider_type type;
    const char *dflt;
} type_settings[AGW_PROVIDER_SETTING_COUNT] = {
    [AGW_SET_GITHUB_URL] = { "github_url", AGW_PROVIDER_COPILOT, "https://github.com" },
    [AGW_SET_GITHUB_API_URL] = { "github_api_url", AGW_PROVIDER_COPILOT,
                                 "https://api.github.com" },
    [AGW_SET_GITHUB_CLIENT_ID] = { "github_client_id", AGW_PROVIDER_COPILOT,
                                   "Iv1.b507a08c87ecfe98" },
    [AGW_SET_COPILOT_EDITOR_VERSION] = { "editor_version", AGW_PROVIDER_COPILOT,
                                         "vscode/1.99.3" },
    [AGW_SET_COPILOT_PLUGIN_VERSION] = { "editor_plugin_version", AGW_PROVIDER_COPILOT,
                                         "copilot-chat/0.26.7" },
    [AGW_SET_COPILOT_USER_AGENT] = { "user_agent", AGW_PROVIDER_COPILOT,
                                     "GitHubCopilotChat/0.26.7" },
    [AGW_SET_COPILOT_INTEGRATION_ID] = { "integration_id", AGW_PROVIDER_COPILOT, "vscode-chat" },
    [AGW_SET_COPILOT_API_VERSION] = { "github_api_version", AGW_PROVIDER_COPILOT, "2025-04-01" },
    [AGW_SET_COPILOT_INTENT] = { "openai_intent", AGW_PROVIDER_COPILOT, "conversation-panel" },
    [AGW_SET_KIRO_VERSION] = { "kiro_version", AGW_PROVIDER_KIRO, "0.7.45" },
    [AGW_SET_KIRO_SDK_VERSION] = { "aws_sdk_version", AGW_PROVIDER_KIRO, "1.0.34" },
    [AGW_SET_KIRO_OS] = { "kiro_os", AGW_PROVIDER_KIRO, "linux" },
    [AGW_SET_KIRO_NODE_VERSION] = { "kiro_node_version", AGW_PROVIDER_KIRO, "22.21.1" },
    [AGW_SET_KIRO_AGENT_MODE] = { "kiro_agent_mode", AGW_PROVIDER_KIRO, "vibe" },
    [AGW_SET_KIRO_AUTH_URL] = { "auth_url", AGW_PROVIDER_KIRO,
                                "https://prod.{region}.auth.desktop.kiro.dev" },
    [AGW_SET_KIRO_OIDC_URL] = { "oidc_url", AGW_PROVIDER_KIRO, "https://oidc.{region}.amazonaws.com" },
    [AGW_SET_KIRO_SIGNIN_URL] = { "signin_url", AGW_PROVIDER_KIRO, "https://app.kiro.dev/signin" },
    [AGW_SET_KIRO_START_URL] = { "builder_id_start_url", AGW_PROVIDER_KIRO,
                                 "https://view.awsapps.com/start" },
    [AGW_SET_KIRO_REDIRECT_URI] = { "login_redirect_uri", AGW_PROVIDER_KIRO,
                                    "http://localhost:3128" },
};

const char *agw_provider_setting(const agw_provider_cfg *p, agw_provider_setting_id id)
{
    return p->settings[id] ? p->settings[id] : type_settings[id].dflt;
}

const char *agw_provider_setting_name(agw_provider_setting_id id)
{
    return type_settings[id].name;
}

/* The type-specific settings `p` sets: only its own type's, strings without
 * control bytes; the URLs http(s) with a host, not link-local. */
static agw_err load_provider_settings(agw_config_loader *ld, const config_setting_t *p,
                                      const char *prefix, agw_provider_cfg *out)
{
    char key[160];
    for (int i = 0; i < AGW_PROVIDER_SETTING_COUNT; i++) {
        const config_setting_t *at = config_setting_get_member(p, type_settings[i].name);
        if (!at)
            continue;
        snprintf(key, sizeof key, "%s%s", prefix, type_settings[i].name);
        if (type_settings[i].type != out->type)
            return fail(ld, at, key, "only a %s provider has this setting",
                        agw_provider_type_name(type_settings[i].type));
        agw_err e = get_string(ld, p, prefix, type_settings[i].name, &out->settings[i]);
        if (e)
            return e;
        const char *v = out->settings[i];
        if (!*v || agw_str_has_ctl(agw_str_c(v), 1))
            return fail(ld, at, key, "must be a non-empty string without control characters");
        if (i == AGW_SET_GITHUB_URL || i == AGW_SET_GITHUB_API_URL ||
            i == AGW_SET_KIRO_AUTH_URL || i == AGW_SET_KIRO_OIDC_URL) {
            size_t n = strlen(v);
            while (n > 0 && out->settings[i][n - 1] == '/')
                out->settings[i][--n] = '\0';
            agw_buf origin = AGW_BUF_INIT(AGW_LIMIT_SMALL);
            e = agw_config_url_origin(v, &origin, NULL);
            agw_buf_free(&origin);
            const char *why = e ? "must be an http:// or https:// URL with a host"
                                : agw_config_base_url_refused(v, ld->allow_link_local);
            if (why)
                return fail(ld, at, key, "%s", why);
        }
    }
    return AGW_OK;
}

/* Only the types with one public endpoint may leave base_url out. Trailing
 * slashes go so that endpoint paths can be appended as they are. */
static agw_err load_provider_base_url(agw_config_loader *ld, const config_setting_t *p,
                                      const char *prefix, agw_provider_cfg *out)
{
    char key[128];
    snprintf(key, sizeof key, "%sbase_url", prefix);
    if (!out->base_url) {
        if (out->type == AGW_PROVIDER_OPENAI)
            out->base_url = xstrdup("https://api.openai.com/v1");
        else if (out->type == AGW_PROVIDER_ANTHROPIC)
            out->base_url = xstrdup("https://api.anthropic.com");
        else if (out->type == AGW_PROVIDER_KIRO)
            /* {region}: the account's (its profile ARN's), us-east-1 without one. */
            out->base_url = xstrdup("https://q.{region}.amazonaws.com");
        else if (out->type == AGW_PROVIDER_COPILOT) {
            /* The individual plan's host, until a token names the account's. */
            out->base_url = xstrdup("https://api.githubcopilot.com");
            out->base_url_from_token = 1;
        } else
            return fail(ld, p, key, "required for this provider type");
    }
    size_t scheme = strncmp(out->base_url, "http://", 7) == 0    ? 7
                    : strncmp(out->base_url, "https://", 8) == 0 ? 8
                                                                  : 0;
    if (!scheme || !out->base_url[scheme] || out->base_url[scheme] == '/' ||
        agw_str_has_ctl(agw_str_c(out->base_url), 0))
        return fail(ld, config_setting_get_member(p, "base_url"), key,
                    "must be an http:// or https:// URL with a host");
    size_t bl = strlen(out->base_url);
    while (bl > 0 && out->base_url[bl - 1] == '/')
        out->base_url[--bl] = '\0';
    const char *why = agw_config_base_url_refused(out->base_url, ld->allow_link_local);
    if (why)
        return fail(ld, config_setting_get_member(p, "base_url"), key, "%s", why);
    return AGW_OK;
}

/* A model name from the file: at most AGW_CONFIG_MODEL_MAX bytes, the most a
 * usage row and a client's request may carry. */
static agw_err check_model_name(agw_config_loader *ld, const config_setting_t *at,
                                const char *key, const char *name)
{
    if (name && strlen(name) > AGW_CONFIG_MODEL_MAX)
        return fail(ld, at, key, "a model name may be at most %d bytes long",
                    AGW_CONFIG_MODEL_MAX);
    return AGW_OK;
}

/* A provider's list of model names or patterns (`member`: "models" or
 * "responses_models"). */
static agw_err load_model_list(agw_config_loader *ld, const config_setting_t *p,
                               const char *prefix, const char *member, char ***list, size_t *n_list)
{
    char key[128];
    snprintf(key, sizeof key, "%s%s", prefix, member);
    config_setting_t *models = config_setting_get_member(p, member);
    if (!models)
        return AGW_OK;
    if (!config_setting_is_array(models) && !config_setting_is_list(models))
        return fail(ld, models, key, "must be a list of strings");
    int n = config_setting_length(models);
    *list = xcalloc((size_t)n + 1, sizeof **list);
    for (int i = 0; i < n; i++) {
        config_setting_t *m = config_setting_get_elem(models, (unsigned)i);
        if (config_setting_type(m) != CONFIG_TYPE_STRING || !*config_setting_get_string(m))
            return fail(ld, m, key, "each model must be a non-empty string");
        agw_err e = check_model_name(ld, m, key, config_setting_get_string(m));
        if (e)
            return e;
        (*list)[(*n_list)++] = xstrdup(config_setting_get_string(m));
    }
    return AGW_OK;
}

static int ascii_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

_Static_assert(AGW_CONFIG_RULE_MAX == 256, "rule_string_refused's message names the limit");

/* Why a rule string is refused, or NULL: 1 to AGW_CONFIG_RULE_MAX bytes (0
 * allowed when `may_be_empty`) of well-formed UTF-8. */
static const char *rule_string_refused(const char *v, int may_be_empty)
{
    size_t n = strlen(v), i = 0;
    if ((!n && !may_be_empty) || n > AGW_CONFIG_RULE_MAX)
        return "must be 1 to 256 bytes";
    while (i < n) {
        size_t l = agw_utf8_len((const unsigned char *)v + i, n - i);
        if (!l)
            return "is not valid UTF-8";
        i += l;
    }
    return NULL;
}

const char *agw_config_rule_refused(agw_rule_kind kind, const char *pattern, const char *text,
                                    const char **field)
{
    const char *why;
    int remove = kind == AGW_RULE_REMOVE;
    *field = remove ? "remove" : "replace";
    if ((why = rule_string_refused(pattern, 0)))
        return why;
    *field = remove ? "until" : "with";
    if ((why = rule_string_refused(text, !remove)))
        return why;
    *field = "replace";
    size_t len = strlen(pattern);
    if (kind == AGW_RULE_REPLACE_WORD && (!ascii_alnum(pattern[0]) || !ascii_alnum(pattern[len - 1])))
        return "a word rule's text must start and end with a letter or digit";
    return NULL;
}

/* sanitize_rules = ( { replace = "..."; with = "..."; word = true; },
 *                    { remove = "<x>"; until = "</x>"; } ) */
static agw_err load_provider_rules(agw_config_loader *ld, const config_setting_t *p,
                                   const char *prefix, agw_provider_cfg *out)
{
    static const char *const known[] = { "replace", "with", "word", "remove", "until", NULL };
    char key[160];
    snprintf(key, sizeof key, "%ssanitize_rules", prefix);
    config_setting_t *list = config_setting_get_member(p, "sanitize_rules");
    if (!list)
        return AGW_OK;
    if (!config_setting_is_list(list))
        return fail(ld, list, key, "must be a list of groups ( { ... }, ... )");
    int n = config_setting_length(list);
    if (n > AGW_CONFIG_RULES_MAX)
        return fail(ld, list, key, "has more than %d rules", AGW_CONFIG_RULES_MAX);
    out->sanitize_rules = xcalloc((size_t)n + 1, sizeof *out->sanitize_rules);
    for (int i = 0; i < n; i++) {
        config_setting_t *r = config_setting_get_elem(list, (unsigned)i);
        char rkey[176];
        snprintf(rkey, sizeof rkey, "%s[%d].", key, i);
        agw_rule_cfg *rule = &out->sanitize_rules[out->n_sanitize_rules++];
        int word = 0;
        agw_err e;
        if (!config_setting_is_group(r))
            return fail(ld, r, key, "each rule must be a group { ... }");
        if ((e = check_known(ld, r, rkey, known)) || (e = get_bool(ld, r, rkey, "word", &word)))
            return e;
        int replace = config_setting_get_member(r, "replace") != NULL;
        int remove = config_setting_get_member(r, "remove") != NULL;
        if (replace == remove)
            return fail(ld, r, key, "each rule has either replace (with with) or remove "
                                    "(with until)");
        if (replace) {
            if (config_setting_get_member(r, "until"))
                return fail(ld, r, rkey, "until goes with remove, not replace");
            rule->kind = word ? AGW_RULE_REPLACE_WORD : AGW_RULE_REPLACE;
            if ((e = get_string(ld, r, rkey, "replace", &rule->pattern)) ||
                (e = get_string(ld, r, rkey, "with", &rule->text)))
                return e;
            if (!rule->text)
                rule->text = xstrdup("");
        } else {
            if (config_setting_get_member(r, "with") || word)
                return fail(ld, r, rkey, "with and word go with replace, not remove");
            rule->kind = AGW_RULE_REMOVE;
            if ((e = get_string(ld, r, rkey, "remove", &rule->pattern)) ||
                (e = get_string(ld, r, rkey, "until", &rule->text)))
                return e;
            if (!rule->text)
                return fail(ld, r, rkey, "remove needs until (the end of the region)");
        }
        const char *field, *why = agw_config_rule_refused(rule->kind, rule->pattern, rule->text,
                                                          &field);
        if (why) {
            char fkey[192];
            snprintf(fkey, sizeof fkey, "%s%s", rkey, field);
            return fail(ld, config_setting_get_member(r, field), fkey, "%s", why);
        }
    }
    return AGW_OK;
}

/* ---- the same settings as JSON (the admin API's per-provider form) ---- */

/* A member name as printf's "%.*s" arguments: the JSON token without its
 * quotes, at most 64 bytes (names are only echoed in messages). */
#define KEY_TEXT(k) (int)((k).len - 2 < 64 ? (k).len - 2 : 64), (k).ptr + 1

static int json_bool_or_null(agw_str v, int *out)
{
    if (agw_json_is_true(v) || agw_json_is_false(v)) {
        *out = agw_json_is_true(v);
        return 1;
    }
    return agw_json_is_null(v) ? 0 : -1;
}

/* A string member of a rule object, decoded; NULL when absent. */
static agw_err json_rule_string(agw_str rule, const char *name, char **out)
{
    agw_str v;
    *out = NULL;
    agw_err e = agw_json_find(rule, agw_str_c(name), &v);
    if (e == AGW_ENOTFOUND)
        return AGW_OK;
    agw_buf b = AGW_BUF_INIT(AGW_CONFIG_RULE_MAX * 6 + 16);
    if (e || agw_json_type_of(v) != AGW_JSON_STRING || agw_json_string_decode(v, &b) ||
        (b.len && memchr(b.data, '\0', b.len))) {
        agw_buf_free(&b);
        return AGW_EINVAL;
    }
    *out = b.data ? agw_buf_detach(&b, NULL) : xstrdup("");
    return AGW_OK;
}

agw_err agw_config_answers_from_json(agw_str json, agw_provider_cfg *p, char *why, size_t whylen)
{
    static const char *const known[] = { "continuation", "sanitize", "sanitize_defaults",
                                         "sanitize_thinking", "sanitize_rules", NULL };
    static const char *const rule_known[] = { "replace", "with", "word", "remove", "until", NULL };
    agw_json_iter it, rit;
    agw_str k, v;
    agw_provider_cfg got = { .continuation = -1, .sanitize = -1, .sanitize_defaults = 1 };
    agw_err e = AGW_EINVAL;
    if (agw_json_validate(json, 8, NULL, 0) != AGW_OK ||
        agw_json_type_of(json) != AGW_JSON_OBJECT || agw_json_iter_init(&it, json) != AGW_OK) {
        snprintf(why, whylen, "must be an object");
        return AGW_EINVAL;
    }
    while (agw_json_iter_next(&it, &k, &v)) {
        int known_key = 0;
        for (size_t i = 0; known[i]; i++)
            known_key |= agw_json_string_eq(k, agw_str_c(known[i]));
        if (!known_key) {
            snprintf(why, whylen, "%.*s: unknown setting", KEY_TEXT(k));
            goto out;
        }
        int b, rc;
        if (agw_json_string_eq(k, AGW_STR_LIT("sanitize_rules"))) {
            if (agw_json_type_of(v) != AGW_JSON_ARRAY || agw_json_iter_init(&rit, v)) {
                snprintf(why, whylen, "sanitize_rules: must be an array of rule objects");
                goto out;
            }
            agw_str rule;
            size_t n = 0;
            while (agw_json_iter_next(&rit, NULL, &rule)) {
                agw_json_iter fit;
                agw_str fk, fv;
                if (n >= AGW_CONFIG_RULES_MAX) {
                    snprintf(why, whylen, "sanitize_rules: more than %d rules", AGW_CONFIG_RULES_MAX);
                    goto out;
                }
                if (agw_json_type_of(rule) != AGW_JSON_OBJECT || agw_json_iter_init(&fit, rule)) {
                    snprintf(why, whylen, "sanitize_rules[%lu]: must be an object", (unsigned long)n);
                    goto out;
                }
                while (agw_json_iter_next(&fit, &fk, &fv)) {
                    int ok = 0;
                    for (size_t i = 0; rule_known[i]; i++)
                        ok |= agw_json_string_eq(fk, agw_str_c(rule_known[i]));
                    if (!ok) {
                        snprintf(why, whylen, "sanitize_rules[%lu].%.*s: unknown setting",
                                 (unsigned long)n, KEY_TEXT(fk));
                        goto out;
                    }
                }
                if (!got.sanitize_rules)
                    got.sanitize_rules = xcalloc(AGW_CONFIG_RULES_MAX, sizeof *got.sanitize_rules);
                agw_rule_cfg *r = &got.sanitize_rules[got.n_sanitize_rules++];
                char *replace, *with, *remove, *until;
                agw_str wv;
                int word = 0;
                if (agw_json_find(rule, AGW_STR_LIT("word"), &wv) == AGW_OK &&
                    json_bool_or_null(wv, &word) < 0) {
                    snprintf(why, whylen, "sanitize_rules[%lu].word: must be true or false",
                             (unsigned long)n);
                    goto out;
                }
                if (json_rule_string(rule, "replace", &replace) ||
                    json_rule_string(rule, "with", &with) ||
                    json_rule_string(rule, "remove", &remove) ||
                    json_rule_string(rule, "until", &until)) {
                    snprintf(why, whylen, "sanitize_rules[%lu]: replace, with, remove and until "
                             "must be strings", (unsigned long)n);
                    goto out;
                }
                const char *problem = NULL, *field = "replace";
                if (!replace == !remove)
                    problem = "has either replace (with with) or remove (with until)";
                else if (replace && until)
                    problem = "until goes with remove, not replace";
                else if (remove && (with || word))
                    problem = "with and word go with replace, not remove";
                else if (remove && !until)
                    problem = "remove needs until (the end of the region)";
                if (!problem) {
                    r->kind = remove ? AGW_RULE_REMOVE
                                     : word ? AGW_RULE_REPLACE_WORD : AGW_RULE_REPLACE;
                    r->pattern = remove ? remove : replace;
                    r->text = remove ? until : (with ? with : xstrdup(""));
                    remove = replace = until = with = NULL;
                    problem = agw_config_rule_refused(r->kind, r->pattern, r->text, &field);
                }
                free(replace);
                free(with);
                free(remove);
                free(until);
                if (problem) {
                    snprintf(why, whylen, "sanitize_rules[%lu]%s%s: %s", (unsigned long)n,
                             r->pattern ? "." : "", r->pattern ? field : "", problem);
                    goto out;
                }
                n++;
            }
            continue;
        }
        rc = json_bool_or_null(v, &b);
        int nullable = agw_json_string_eq(k, AGW_STR_LIT("continuation")) ||
                       agw_json_string_eq(k, AGW_STR_LIT("sanitize"));
        if (rc < 0 || (rc == 0 && !nullable)) {
            snprintf(why, whylen, "%.*s: must be true or false%s", KEY_TEXT(k),
                     nullable ? " or null (the type's default)" : "");
            goto out;
        }
        int val = rc ? b : -1;
        if (agw_json_string_eq(k, AGW_STR_LIT("continuation")))
            got.continuation = val;
        else if (agw_json_string_eq(k, AGW_STR_LIT("sanitize")))
            got.sanitize = val;
        else if (agw_json_string_eq(k, AGW_STR_LIT("sanitize_defaults")))
            got.sanitize_defaults = val;
        else
            got.sanitize_thinking = val;
    }
    agw_config_rules_free(p);
    p->continuation = got.continuation;
    p->sanitize = got.sanitize;
    p->sanitize_defaults = got.sanitize_defaults;
    p->sanitize_thinking = got.sanitize_thinking;
    p->sanitize_rules = got.sanitize_rules;
    p->n_sanitize_rules = got.n_sanitize_rules;
    got.sanitize_rules = NULL;
    got.n_sanitize_rules = 0;
    e = AGW_OK;
out:
    agw_config_rules_free(&got);
    return e;
}

agw_err agw_config_answers_to_json(const agw_provider_cfg *p, agw_buf *out)
{
    static const char *const tri[] = { "null", "false", "true" };
    agw_err e = agw_buf_appendf(out, "{\"continuation\":%s,\"sanitize\":%s,"
                                     "\"sanitize_defaults\":%s,\"sanitize_thinking\":%s,"
                                     "\"sanitize_rules\":[",
                                tri[p->continuation < 0 ? 0 : p->continuation ? 2 : 1],
                                tri[p->sanitize < 0 ? 0 : p->sanitize ? 2 : 1],
                                p->sanitize_defaults ? "true" : "false",
                                p->sanitize_thinking ? "true" : "false");
    for (size_t i = 0; !e && i < p->n_sanitize_rules; i++) {
        const agw_rule_cfg *r = &p->sanitize_rules[i];
        int remove = r->kind == AGW_RULE_REMOVE;
        if ((e = agw_buf_appendf(out, "%s{\"%s\":\"", i ? "," : "", remove ? "remove" : "replace")) ||
            (e = agw_buf_append_json_escaped(out, agw_str_c(r->pattern))) ||
            (e = agw_buf_appendf(out, "\",\"%s\":\"", remove ? "until" : "with")) ||
            (e = agw_buf_append_json_escaped(out, agw_str_c(r->text))) ||
            (e = agw_buf_appendf(out, "\"%s}", r->kind == AGW_RULE_REPLACE_WORD ? ",\"word\":true" : "")))
            break;
    }
    return e ? e : agw_buf_append(out, "]}", 2);
}

static agw_err load_provider_models(agw_config_loader *ld, const config_setting_t *p,
                                    const char *prefix, agw_provider_cfg *out)
{
    agw_err e = load_model_list(ld, p, prefix, "models", &out->models, &out->n_models);
    if (e)
        return e;
    e = load_model_list(ld, p, prefix, "responses_models", &out->responses_models,
                        &out->n_responses_models);
    if (!e && out->n_responses_models && out->type != AGW_PROVIDER_OPENAI) {
        char key[128];
        snprintf(key, sizeof key, "%sresponses_models", prefix);
        e = fail(ld, config_setting_get_member(p, "responses_models"), key,
                 "the Responses API is only for providers of type openai");
    }
    return e;
}

/* api = "chat" (default) or "responses": which OpenAI API serves model calls. */
static agw_err load_provider_api(agw_config_loader *ld, const config_setting_t *p,
                                 const char *prefix, agw_provider_cfg *out)
{
    char key[128], *api = NULL;
    agw_err e = get_string(ld, p, prefix, "api", &api);
    if (e || !api)
        return e;
    const config_setting_t *at = config_setting_get_member(p, "api");
    snprintf(key, sizeof key, "%sapi", prefix);
    if (strcmp(api, "responses") == 0)
        out->responses_api = 1;
    else if (strcmp(api, "chat") != 0)
        e = fail(ld, at, key, "must be chat or responses");
    free(api);
    if (!e && out->type != AGW_PROVIDER_OPENAI && out->responses_api)
        e = fail(ld, at, key, "the Responses API is only for providers of type openai");
    return e;
}

static agw_err load_provider(agw_config_loader *ld, const config_setting_t *p, size_t idx,
                             agw_provider_cfg *out)
{
    static const char *const common[] = { "name", "type", "base_url", "api_key", "weight",
                                          "enabled", "models", "default_model", "api",
                                          "responses_models", "continuation", "sanitize",
                                          "sanitize_defaults", "sanitize_thinking",
                                          "sanitize_rules" };
    /* The common keys, then every type-specific one (load_provider_settings
     * refuses those of another type). */
    const char *known[sizeof common / sizeof *common + AGW_PROVIDER_SETTING_COUNT + 1];
    size_t nk = 0;
    for (size_t i = 0; i < sizeof common / sizeof *common; i++)
        known[nk++] = common[i];
    for (int i = 0; i < AGW_PROVIDER_SETTING_COUNT; i++)
        known[nk++] = type_settings[i].name;
    known[nk] = NULL;
    char prefix[96], key[128];
    snprintf(prefix, sizeof prefix, "providers[%lu].", (unsigned long)idx);
    agw_err e;
    memset(out, 0, sizeof *out);
    out->weight = 100;
    out->enabled = 1;
    out->continuation = out->sanitize = -1;
    out->sanitize_defaults = 1;
    if (!config_setting_is_group(p)) {
        snprintf(key, sizeof key, "providers[%lu]", (unsigned long)idx);
        return fail(ld, p, key, "each provider must be a group { ... }");
    }
    if ((e = check_known(ld, p, prefix, known)))
        return e;
    char *type = NULL;
    if ((e = get_string(ld, p, prefix, "name", &out->name)) ||
        (e = get_string(ld, p, prefix, "type", &type)) ||
        (e = get_string(ld, p, prefix, "base_url", &out->base_url)) ||
        (e = get_string(ld, p, prefix, "api_key", &out->api_key)) ||
        (e = get_int_field(ld, p, prefix, "weight", 0, 1000000, &out->weight)) ||
        (e = get_bool(ld, p, prefix, "enabled", &out->enabled)) ||
        (e = get_string(ld, p, prefix, "default_model", &out->default_model)) ||
        (e = check_provider_name(ld, p, prefix, out->name))) {
        free(type);
        return e;
    }
    snprintf(prefix, sizeof prefix, "providers.%s.", out->name);
    int t = agw_provider_type_parse(type);
    free(type);
    if (t < 0) {
        const config_setting_t *at = config_setting_get_member(p, "type");
        snprintf(key, sizeof key, "%stype", prefix);
        return fail(ld, at ? at : p, key, "must be openai, anthropic, kiro or copilot");
    }
    out->type = (agw_provider_type)t;
    if ((e = load_provider_base_url(ld, p, prefix, out)) ||
        (e = load_provider_settings(ld, p, prefix, out)))
        return e;
    if (!out->api_key)
        out->api_key = xstrdup("");
    if (agw_str_has_ctl(agw_str_c(out->api_key), 0)) {
        snprintf(key, sizeof key, "%sapi_key", prefix);
        return fail(ld, config_setting_get_member(p, "api_key"), key,
                    "must not contain control characters");
    }
    empty_to_null(&out->default_model);
    snprintf(key, sizeof key, "%sdefault_model", prefix);
    if ((e = check_model_name(ld, config_setting_get_member(p, "default_model"), key,
                              out->default_model)))
        return e;
    if ((e = get_bool(ld, p, prefix, "continuation", &out->continuation)) ||
        (e = get_bool(ld, p, prefix, "sanitize", &out->sanitize)) ||
        (e = get_bool(ld, p, prefix, "sanitize_defaults", &out->sanitize_defaults)) ||
        (e = get_bool(ld, p, prefix, "sanitize_thinking", &out->sanitize_thinking)) ||
        (e = load_provider_rules(ld, p, prefix, out)) ||
        (e = load_provider_api(ld, p, prefix, out)))
        return e;
    return load_provider_models(ld, p, prefix, out);
}

static void set_defaults(agw_config *cfg, const char *base_dir)
{
    cfg->server.log_level = AGW_LOG_INFO;
    cfg->server.max_body_bytes = 10u << 20;
    cfg->server.threads = 16;
    cfg->server.batch_scheduling = 1;
    cfg->server.connect_timeout_ms = 10000;
    cfg->server.idle_timeout_s = 300;
    cfg->server.sse_ping_s = 10;
    cfg->server.stream_commit_ms = 2000;
    cfg->server.max_stream_bytes = (size_t)256 << 20;
    cfg->server.max_stream_s = 3600;
    cfg->server.shutdown_grace_s = 60;
    cfg->server.cors_origins = xstrdup("");
    cfg->server.max_memory_bytes = (size_t)256 << 20;
    atomic_init(&cfg->refs, 1);
    cfg->database.path = join_path(base_dir, "antigw.db");
    cfg->defaults.model = xstrdup("claude-sonnet-4-20250514");
    cfg->defaults.lb_strategy = xstrdup("smart");
    cfg->defaults.health_check_enabled = 1;
    cfg->defaults.health_check_seconds = 60;
    cfg->defaults.health_check_timeout_seconds = 10;
    cfg->defaults.max_attempts = 3;
    cfg->defaults.cooldown_seconds = 30;
    cfg->defaults.lb_half_life_seconds = 30;
    cfg->continuation.max_rounds = 3;
    cfg->continuation.max_output_chars = 200000;
    cfg->usage.retention_days = 90;
    cfg->usage.required = 1;
    cfg->usage.ring_records = 65536;
    cfg->usage.wal_reset_mib = 16;
    cfg->usage.ring_dir = xstrdup(AGW_CONFIG_RING_DIR);
}

agw_config *agw_config_defaults(const char *base_dir)
{
    agw_config *cfg = xcalloc(1, sizeof *cfg);
    set_defaults(cfg, base_dir);
    cfg->path = xstrdup("(defaults)");
    return cfg;
}

static agw_err load_server(agw_config_loader *ld, config_t *c, agw_config *cfg)
{
    static const char *const known[] = { "log_level", "max_body_bytes", "threads",
                                         "batch_scheduling",
                                         "connect_timeout_ms", "idle_timeout_seconds",
                                         "sse_ping_seconds", "stream_commit_ms",
                                         "shutdown_grace_seconds", "cors_origins",
                                         "max_memory_bytes", "max_stream_bytes",
                                         "max_stream_seconds", NULL };
    config_setting_t *g;
    agw_err e;
    if ((e = group(ld, c, "server", known, &g)) || !g)
        return e;
    char *level = NULL;
    if ((e = get_string(ld, g, "server.", "log_level", &level)))
        return e;
    if (level) {
        int lvl = agw_log_level_parse(level);
        free(level);
        if (lvl < 0)
            return fail(ld, config_setting_get_member(g, "log_level"), "server.log_level",
                        "must be error, warn, info or debug");
        cfg->server.log_level = lvl;
    }
    long long v = (long long)cfg->server.max_body_bytes;
    if ((e = get_int(ld, g, "server.", "max_body_bytes", 1024, 1ll << 30, &v)))
        return e;
    cfg->server.max_body_bytes = (size_t)v;
    v = (long long)cfg->server.max_memory_bytes;
    if ((e = get_int(ld, g, "server.", "max_memory_bytes", 1ll << 20, 1ll << 40, &v)))
        return e;
    cfg->server.max_memory_bytes = (size_t)v;
    v = (long long)cfg->server.max_stream_bytes;
    if ((e = get_int(ld, g, "server.", "max_stream_bytes", 0, 1ll << 40, &v)))
        return e;
    cfg->server.max_stream_bytes = (size_t)v;
    if ((e = get_int_field(ld, g, "server.", "max_stream_seconds", 0, 604800,
                           &cfg->server.max_stream_s)))
        return e;
    if ((e = get_int_field(ld, g, "server.", "threads", 1, 1024, &cfg->server.threads)) ||
        (e = get_bool(ld, g, "server.", "batch_scheduling", &cfg->server.batch_scheduling)) ||
        (e = get_int_field(ld, g, "server.", "connect_timeout_ms", 1, 600000,
                           &cfg->server.connect_timeout_ms)) ||
        (e = get_int_field(ld, g, "server.", "idle_timeout_seconds", 1, 86400,
                           &cfg->server.idle_timeout_s)) ||
        (e = get_int_field(ld, g, "server.", "sse_ping_seconds", 0, 3600,
                           &cfg->server.sse_ping_s)) ||
        (e = get_int_field(ld, g, "server.", "stream_commit_ms", 0, 600000,
                           &cfg->server.stream_commit_ms)) ||
        (e = get_int_field(ld, g, "server.", "shutdown_grace_seconds", 0, 86400,
                           &cfg->server.shutdown_grace_s)) ||
        (e = get_string(ld, g, "server.", "cors_origins", &cfg->server.cors_origins)))
        return e;
    return AGW_OK;
}

static agw_err load_auth(agw_config_loader *ld, config_t *c, agw_config *cfg)
{
    static const char *const known[] = { "api_key", "admin_key", NULL };
    config_setting_t *g;
    agw_err e;
    if ((e = group(ld, c, "auth", known, &g)))
        return e;
    if (g && ((e = get_string(ld, g, "auth.", "api_key", &cfg->auth.api_key)) ||
              (e = get_string(ld, g, "auth.", "admin_key", &cfg->auth.admin_key))))
        return e;
    empty_to_null(&cfg->auth.api_key);
    empty_to_null(&cfg->auth.admin_key);
    return AGW_OK;
}

/* An empty token is the same as none: /metrics stays open. */
static agw_err load_metrics(agw_config_loader *ld, config_t *c, agw_config *cfg)
{
    static const char *const known[] = { "token", NULL };
    config_setting_t *g;
    agw_err e;
    if ((e = group(ld, c, "metrics", known, &g)) || !g)
        return e;
    if ((e = get_string(ld, g, "metrics.", "token", &cfg->metrics.token)))
        return e;
    if (cfg->metrics.token && agw_str_has_ctl(agw_str_c(cfg->metrics.token), 0))
        return fail(ld, config_setting_get_member(g, "token"), "metrics.token",
                    "must not contain control characters");
    empty_to_null(&cfg->metrics.token);
    return AGW_OK;
}

static agw_err load_upstream(agw_config_loader *ld, config_t *c, agw_config *cfg)
{
    static const char *const known[] = { "allow_link_local", NULL };
    config_setting_t *g;
    agw_err e;
    if ((e = group(ld, c, "upstream", known, &g)))
        return e;
    if (g && (e = get_bool(ld, g, "upstream.", "allow_link_local",
                           &cfg->upstream.allow_link_local)))
        return e;
    ld->allow_link_local = cfg->upstream.allow_link_local;
    return AGW_OK;
}

/* A relative path is taken from the configuration file's folder, not the
 * process's working directory. */
static agw_err load_database(agw_config_loader *ld, config_t *c, const char *base_dir,
                             agw_config *cfg)
{
    static const char *const known[] = { "path", NULL };
    config_setting_t *g;
    agw_err e;
    if ((e = group(ld, c, "database", known, &g)) || !g)
        return e;
    char *path = NULL;
    if ((e = get_string(ld, g, "database.", "path", &path)))
        return e;
    if (path) {
        if (!*path) {
            free(path);
            return fail(ld, config_setting_get_member(g, "path"), "database.path",
                        "must not be empty");
        }
        free(cfg->database.path);
        cfg->database.path = join_path(base_dir, path);
        free(path);
    }
    return AGW_OK;
}

static agw_err load_defaults(agw_config_loader *ld, config_t *c, agw_config *cfg)
{
    static const char *const known[] = { "provider", "model", "lb_strategy",
                                         "health_check_enabled", "health_check_seconds",
                                         "health_check_timeout_seconds",
                                         "max_attempts", "cooldown_seconds",
                                         "lb_half_life_seconds", NULL };
    config_setting_t *g;
    agw_err e;
    if ((e = group(ld, c, "defaults", known, &g)) || !g)
        return e;
    if ((e = get_string(ld, g, "defaults.", "provider", &cfg->defaults.provider)) ||
        (e = get_string(ld, g, "defaults.", "model", &cfg->defaults.model)) ||
        (e = get_string(ld, g, "defaults.", "lb_strategy", &cfg->defaults.lb_strategy)) ||
        (e = get_bool(ld, g, "defaults.", "health_check_enabled",
                      &cfg->defaults.health_check_enabled)) ||
        (e = check_model_name(ld, config_setting_get_member(g, "model"), "defaults.model",
                              cfg->defaults.model)))
        return e;
    if ((e = get_int_field(ld, g, "defaults.", "health_check_seconds", 1, 86400,
                           &cfg->defaults.health_check_seconds)) ||
        (e = get_int_field(ld, g, "defaults.", "health_check_timeout_seconds", 1, 600,
                           &cfg->defaults.health_check_timeout_seconds)) ||
        (e = get_int_field(ld, g, "defaults.", "max_attempts", 1, 32,
                           &cfg->defaults.max_attempts)) ||
        (e = get_int_field(ld, g, "defaults.", "cooldown_seconds", 0, 3600,
                           &cfg->defaults.cooldown_seconds)) ||
        (e = get_int_field(ld, g, "defaults.", "lb_half_life_seconds", 1, 3600,
                           &cfg->defaults.lb_half_life_seconds)))
        return e;
    if (!in_list(cfg->defaults.lb_strategy, lb_strategies))
        return fail(ld, config_setting_get_member(g, "lb_strategy"), "defaults.lb_strategy",
                    "must be weighted, round-robin, least-used, priority or smart");
    empty_to_null(&cfg->defaults.provider);
    return AGW_OK;
}

static agw_err load_tenant(agw_config_loader *ld, config_t *c, agw_config *cfg)
{
    static const char *const known[] = { "enabled", NULL };
    config_setting_t *g;
    agw_err e;
    if ((e = group(ld, c, "tenant", known, &g)))
        return e;
    if (g && (e = get_bool(ld, g, "tenant.", "enabled", &cfg->tenant.enabled)))
        return e;
    return AGW_OK;
}

static agw_err load_usage(agw_config_loader *ld, config_t *c, const char *base_dir,
                          agw_config *cfg)
{
    static const char *const known[] = { "retention_days", "required", "ring_records",
                                         "wal_reset_mib", "ring_dir", NULL };
    config_setting_t *g;
    agw_err e;
    if ((e = group(ld, c, "usage", known, &g)) || !g)
        return e;
    if ((e = get_int_field(ld, g, "usage.", "retention_days", 0, 36500,
                           &cfg->usage.retention_days)) ||
        (e = get_bool(ld, g, "usage.", "required", &cfg->usage.required)) ||
        (e = get_int_field(ld, g, "usage.", "ring_records", 16, 1 << 22,
                           &cfg->usage.ring_records)) ||
        (e = get_int_field(ld, g, "usage.", "wal_reset_mib", 1, 48,
                           &cfg->usage.wal_reset_mib)))
        return e;
    if (cfg->usage.ring_records & (cfg->usage.ring_records - 1))
        return fail(ld, config_setting_get_member(g, "ring_records"), "usage.ring_records",
                    "must be a power of two (got %d)", cfg->usage.ring_records);
    char *dir = NULL;
    if ((e = get_string(ld, g, "usage.", "ring_dir", &dir)))
        return e;
    if (dir) { /* "" stays "": the ring beside the database */
        free(cfg->usage.ring_dir);
        cfg->usage.ring_dir = dir[0] ? join_path(base_dir, dir) : xstrdup("");
        free(dir);
    }
    return AGW_OK;
}

/* An empty key_file is the same as none. */
static agw_err load_continuation(agw_config_loader *ld, config_t *c, agw_config *cfg)
{
    static const char *const known[] = { "max_rounds", "max_output_chars", NULL };
    config_setting_t *g;
    agw_err e;
    if ((e = group(ld, c, "continuation", known, &g)) || !g)
        return e;
    if ((e = get_int_field(ld, g, "continuation.", "max_rounds", 0, 20,
                           &cfg->continuation.max_rounds)))
        return e;
    return get_int_field(ld, g, "continuation.", "max_output_chars", 1, 100000000,
                         &cfg->continuation.max_output_chars);
}

static agw_err load_secrets(agw_config_loader *ld, config_t *c, const char *base_dir,
                            agw_config *cfg)
{
    static const char *const known[] = { "key_file", NULL };
    config_setting_t *g;
    agw_err e;
    if ((e = group(ld, c, "secrets", known, &g)) || !g)
        return e;
    char *kf = NULL;
    if ((e = get_string(ld, g, "secrets.", "key_file", &kf)))
        return e;
    if (kf && *kf)
        cfg->secrets.key_file = join_path(base_dir, kf);
    free(kf);
    return AGW_OK;
}

/* Provider names must be unique: defaults, keys and routes refer to a
 * provider by its name. */
static agw_err load_providers(agw_config_loader *ld, config_t *c, agw_config *cfg)
{
    config_setting_t *provs = config_lookup(c, "providers");
    if (!provs)
        return AGW_OK;
    if (!config_setting_is_list(provs) && !config_setting_is_array(provs))
        return fail(ld, provs, "providers", "must be a list ( { ... }, { ... } )");
    int n = config_setting_length(provs);
    cfg->providers = xcalloc((size_t)n + 1, sizeof *cfg->providers);
    for (int i = 0; i < n; i++) {
        config_setting_t *p = config_setting_get_elem(provs, (unsigned)i);
        agw_err e = load_provider(ld, p, (size_t)i, &cfg->providers[cfg->n_providers]);
        cfg->n_providers++; /* counted even on failure so free() releases it */
        if (e)
            return e;
        for (size_t j = 0; j + 1 < cfg->n_providers; j++)
            if (strcmp(cfg->providers[j].name, cfg->providers[cfg->n_providers - 1].name) == 0)
                return fail(ld, p, "providers", "provider name %s is used twice",
                            cfg->providers[j].name);
    }
    return AGW_OK;
}

/* The order of the loaders is the order of the checks, which decides the one
 * error reported when there are several. defaults.provider comes last because
 * it can name any provider, and those are known only once all are loaded. */
static agw_err load_tree(agw_config_loader *ld, config_t *c, const char *base_dir, agw_config *cfg)
{
    static const char *const top[] = { "server", "auth", "database", "defaults", "tenant",
                                       "usage", "secrets", "metrics", "upstream", "providers",
                                       "continuation", NULL };
    agw_err e;
    if ((e = check_known(ld, config_root_setting(c), "", top)) ||
        (e = load_server(ld, c, cfg)) || (e = load_auth(ld, c, cfg)) ||
        (e = load_database(ld, c, base_dir, cfg)) || (e = load_defaults(ld, c, cfg)) ||
        (e = load_tenant(ld, c, cfg)) || (e = load_usage(ld, c, base_dir, cfg)) ||
        (e = load_secrets(ld, c, base_dir, cfg)) ||
        (e = load_metrics(ld, c, cfg)) || (e = load_upstream(ld, c, cfg)) ||
        (e = load_providers(ld, c, cfg)) || (e = load_continuation(ld, c, cfg)))
        return e;
    if (cfg->defaults.provider &&
        !agw_config_provider(cfg, agw_str_c(cfg->defaults.provider)))
        return fail(ld, config_lookup(c, "defaults.provider"), "defaults.provider",
                    "no provider is named %s", cfg->defaults.provider);
    return AGW_OK;
}

static agw_err load_common(config_t *c, int read_ok, const char *file, const char *base_dir,
                           agw_config **out, char *err, size_t errlen)
{
    agw_config_loader ld = { file, err, errlen, 0 };
    *out = NULL;
    if (!read_ok) {
        if (config_error_type(c) == CONFIG_ERR_FILE_IO) {
            if (err)
                snprintf(err, errlen, "%s: cannot read: %s", file, strerror(errno));
            return AGW_EIO;
        }
        if (err)
            snprintf(err, errlen, "%s:%d: syntax: %s",
                     config_error_file(c) ? config_error_file(c) : file, config_error_line(c),
                     config_error_text(c));
        return AGW_EINVAL;
    }
    agw_config *cfg = xcalloc(1, sizeof *cfg);
    set_defaults(cfg, base_dir);
    cfg->path = xstrdup(file);
    agw_err e = load_tree(&ld, c, base_dir, cfg);
    if (e) {
        agw_config_free(cfg);
        return e;
    }
    *out = cfg;
    return AGW_OK;
}

agw_err agw_config_load(const char *path, agw_config **out, char *err, size_t errlen)
{
    config_t c;
    config_init(&c);
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");
    config_set_include_dir(&c, dir);
    int ok = config_read_file(&c, path) == CONFIG_TRUE;
    agw_err e = load_common(&c, ok, path, dir, out, err, errlen);
    free(dir);
    config_destroy(&c);
    return e;
}

agw_err agw_config_parse(const char *text, const char *base_dir, agw_config **out, char *err,
                         size_t errlen)
{
    config_t c;
    config_init(&c);
    if (base_dir)
        config_set_include_dir(&c, base_dir);
    int ok = config_read_string(&c, text) == CONFIG_TRUE;
    agw_err e = load_common(&c, ok, "(string)", base_dir ? base_dir : ".", out, err, errlen);
    config_destroy(&c);
    return e;
}

void agw_config_rules_free(agw_provider_cfg *p)
{
    for (size_t j = 0; j < p->n_sanitize_rules; j++) {
        free(p->sanitize_rules[j].pattern);
        free(p->sanitize_rules[j].text);
    }
    free(p->sanitize_rules);
    p->sanitize_rules = NULL;
    p->n_sanitize_rules = 0;
}

agw_config *agw_config_ref(const agw_config *cfg)
{
    agw_config *c = (agw_config *)cfg; /* the count is the one mutable member */
    atomic_fetch_add(&c->refs, 1);
    return c;
}

void agw_config_free(agw_config *cfg)
{
    if (!cfg || atomic_fetch_sub(&cfg->refs, 1) != 1)
        return;
    for (size_t i = 0; i < cfg->n_providers; i++) {
        agw_provider_cfg *p = &cfg->providers[i];
        free(p->name);
        free(p->base_url);
        agw_secret_free(p->api_key);
        free(p->default_model);
        for (size_t j = 0; j < p->n_models; j++)
            free(p->models[j]);
        free(p->models);
        agw_config_rules_free(p);
        for (size_t j = 0; j < p->n_responses_models; j++)
            free(p->responses_models[j]);
        free(p->responses_models);
        for (int j = 0; j < AGW_PROVIDER_SETTING_COUNT; j++)
            free(p->settings[j]);
    }
    free(cfg->providers);
    free(cfg->path);
    free(cfg->server.cors_origins);
    agw_secret_free(cfg->auth.api_key);
    agw_secret_free(cfg->auth.admin_key);
    agw_wipe(cfg->auth.admin_key_sha256, sizeof cfg->auth.admin_key_sha256);
    agw_secret_free(cfg->metrics.token);
    free(cfg->database.path);
    free(cfg->defaults.provider);
    free(cfg->defaults.model);
    free(cfg->defaults.lb_strategy);
    free(cfg->secrets.key_file);
    free(cfg->usage.ring_dir);
    free(cfg);
}

const agw_provider_cfg *agw_config_provider(const agw_config *cfg, agw_str name)
{
    for (size_t i = 0; i < cfg->n_providers; i++)
        if (agw_str_eq(agw_str_c(cfg->providers[i].name), name))
            return &cfg->providers[i];
    return NULL;
}

/* `name` is the setting's key in antigw.cfg; the field of agw_config an int
 * (a number or a boolean) or a string. */
enum start_only_kind { START_ONLY_NUMBER, START_ONLY_BOOLEAN, START_ONLY_STRING };
#define START_ONLY(name, field, readers, kind) \
    { name, offsetof(agw_config, field), readers, kind }
static const struct {
    const char *name;
    size_t offset;
    unsigned readers;
    enum start_only_kind kind;
} start_only[] = {
    START_ONLY("server.threads", server.threads, AGW_CONFIG_READ_BY_GATEWAY, START_ONLY_NUMBER),
    START_ONLY("server.shutdown_grace_seconds", server.shutdown_grace_s,
               AGW_CONFIG_READ_BY_GATEWAY | AGW_CONFIG_READ_BY_ADMIN, START_ONLY_NUMBER),
    START_ONLY("defaults.health_check_enabled", defaults.health_check_enabled,
               AGW_CONFIG_READ_BY_GATEWAY, START_ONLY_BOOLEAN),
    START_ONLY("defaults.health_check_seconds", defaults.health_check_seconds,
               AGW_CONFIG_READ_BY_GATEWAY, START_ONLY_NUMBER),
    START_ONLY("defaults.lb_half_life_seconds", defaults.lb_half_life_seconds,
               AGW_CONFIG_READ_BY_GATEWAY, START_ONLY_NUMBER),
    START_ONLY("usage.retention_days", usage.retention_days, AGW_CONFIG_READ_BY_GATEWAY,
               START_ONLY_NUMBER),
    START_ONLY("usage.required", usage.required, AGW_CONFIG_READ_BY_GATEWAY, START_ONLY_BOOLEAN),
    START_ONLY("usage.ring_records", usage.ring_records, AGW_CONFIG_READ_BY_GATEWAY,
               START_ONLY_NUMBER),
    START_ONLY("usage.wal_reset_mib", usage.wal_reset_mib, AGW_CONFIG_READ_BY_GATEWAY,
               START_ONLY_NUMBER),
    START_ONLY("usage.ring_dir", usage.ring_dir, AGW_CONFIG_READ_BY_GATEWAY, START_ONLY_STRING),
};
#undef START_ONLY

/* Appends "name (old -> new)" when the setting differs; 1 when it did. */
static int start_only_change(size_t i, const agw_config *running, const agw_config *fresh,
                             size_t n, agw_buf *out)
{
    const char *was_at = (const char *)running + start_only[i].offset;
    const char *now_at = (const char *)fresh + start_only[i].offset;
    const char *sep = n ? ", " : "";
    if (start_only[i].kind == START_ONLY_STRING) {
        const char *was = *(char *const *)(const void *)was_at;
        const char *now = *(char *const *)(const void *)now_at;
        if (strcmp(was ? was : "", now ? now : "") == 0)
            return 0;
        return agw_buf_appendf(out, "%s%s (\"%s\" -> \"%s\")", sep, start_only[i].name,
                               was ? was : "", now ? now : "") == AGW_OK;
    }
    int was = *(const int *)(const void *)was_at;
    int now = *(const int *)(const void *)now_at;
    if (was == now)
        return 0;
    if (start_only[i].kind == START_ONLY_BOOLEAN)
        return agw_buf_appendf(out, "%s%s (%s -> %s)", sep, start_only[i].name,
                               was ? "true" : "false", now ? "true" : "false") == AGW_OK;
    return agw_buf_appendf(out, "%s%s (%d -> %d)", sep, start_only[i].name, was, now) == AGW_OK;
}

size_t agw_config_start_only_changes(const agw_config *running, const agw_config *fresh,
                                     unsigned reader, agw_buf *out)
{
    size_t n = 0;
    for (size_t i = 0; i < sizeof start_only / sizeof start_only[0]; i++)
        if ((start_only[i].readers & reader) && start_only_change(i, running, fresh, n, out))
            n++;
    return n;
}

void agw_config_warn_start_only(const agw_config *running, const agw_config *fresh,
                                unsigned reader, const char *restarts)
{
    agw_buf kept;
    agw_buf_init(&kept, 4096);
    if (agw_config_start_only_changes(running, fresh, reader, &kept))
        agw_log_warn("reload: these settings keep their values until %s restarts: %.*s", restarts,
                     (int)kept.len, kept.data);
    agw_buf_free(&kept);
}

void agw_config_hash_admin_key(agw_config *cfg, const char *env_key)
{
    const char *key = env_key && *env_key ? env_key : cfg->auth.admin_key;
    cfg->auth.has_admin_key_hash = key != NULL;
    if (key)
        agw_sha256(agw_str_c(key), cfg->auth.admin_key_sha256);
    agw_secret_free(cfg->auth.admin_key);
    cfg->auth.admin_key = NULL;
}

int agw_config_admin_key_ok(const agw_config *cfg, agw_str given)
{
    return cfg->auth.has_admin_key_hash && given.len &&
           agw_secret_eq_sha256(given, cfg->auth.admin_key_sha256);
}

/* ---- where a provider may point ---- */

static int in4_blocked(const unsigned char a[4])
{
    return a[0] == 169 && a[1] == 254; /* link-local, the metadata service */
}

static int in6_blocked(const unsigned char a[16])
{
    static const unsigned char ec2_metadata[16] = { 0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0,
                                                    0,    0,    0,    0,    0, 0, 0x02, 0x54 };
    static const unsigned char v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) /* fe80::/10 */
        return 1;
    if (memcmp(a, ec2_metadata, 16) == 0)
        return 1;
    return memcmp(a, v4_mapped, 12) == 0 && in4_blocked(a + 12);
}

int agw_config_addr_blocked(agw_str host)
{
    char h[INET6_ADDRSTRLEN + 64];
    if (host.len >= 2 && host.ptr[0] == '[' && host.ptr[host.len - 1] == ']') {
        host.ptr++;
        host.len -= 2;
    }
    if (host.len == 0 || host.len >= sizeof h)
        return 0;
    memcpy(h, host.ptr, host.len);
    h[host.len] = '\0';
    char *zone = strchr(h, '%'); /* fe80::1%eth0: the zone does not change the address */
    if (zone)
        *zone = '\0';
    unsigned char a[16];
    if (inet_pton(AF_INET, h, a) == 1)
        return in4_blocked(a);
    if (inet_pton(AF_INET6, h, a) == 1)
        return in6_blocked(a);
    return 0;
}

int agw_config_sockaddr_blocked(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return in4_blocked((const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr);
    if (sa->sa_family == AF_INET6)
        return in6_blocked(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
    return 0;
}

agw_err agw_config_url_origin(const char *url, agw_buf *origin, agw_buf *host)
{
    const char *scheme, *port = NULL;
    size_t skip;
    if (strncmp(url, "http://", 7) == 0) {
        scheme = "http", port = "80", skip = 7;
    } else if (strncmp(url, "https://", 8) == 0) {
        scheme = "https", port = "443", skip = 8;
    } else {
        return AGW_EINVAL;
    }
    const char *a = url + skip;
    size_t alen = strcspn(a, "/?#");
    /* userinfo@ is not part of the origin: the host follows the last '@' */
    for (size_t i = alen; i > 0; i--)
        if (a[i - 1] == '@') {
            a += i;
            alen -= i;
            break;
        }
    size_t hlen;
    const char *h = a;
    if (alen && a[0] == '[') {
        const char *close = memchr(a, ']', alen);
        if (!close)
            return AGW_EINVAL;
        h = a + 1;
        hlen = (size_t)(close - h);
        a = close + 1;
        alen -= hlen + 2;
    } else {
        const char *colon = memchr(a, ':', alen);
        hlen = colon ? (size_t)(colon - a) : alen;
        a += hlen;
        alen -= hlen;
    }
    size_t plen = 0;
    if (alen) {
        if (a[0] != ':')
            return AGW_EINVAL;
        a++, alen--;
        for (plen = 0; plen < alen; plen++)
            if (!isdigit((unsigned char)a[plen]))
                return AGW_EINVAL;
    }
    if (hlen == 0)
        return AGW_EINVAL;
    agw_err e = agw_buf_appendf(origin, "%s://%s", scheme, h[-1] == '[' ? "[" : "");
    for (size_t i = 0; !e && i < hlen; i++) {
        char c = (char)tolower((unsigned char)h[i]);
        e = agw_buf_append(origin, &c, 1);
        if (!e && host)
            e = agw_buf_append(host, &c, 1);
    }
    if (!e)
        e = plen ? agw_buf_appendf(origin, "%s:%.*s", h[-1] == '[' ? "]" : "", (int)plen, a)
                 : agw_buf_appendf(origin, "%s:%s", h[-1] == '[' ? "]" : "", port);
    return e;
}

const char *agw_config_base_url_refused(const char *url, int allow_link_local)
{
    agw_buf origin = AGW_BUF_INIT(4096), host = AGW_BUF_INIT(4096);
    const char *why = NULL;
    if (agw_config_url_origin(url, &origin, &host) != AGW_OK)
        why = "must be an http:// or https:// URL with a host (and a numeric port, if any)";
    else if (!allow_link_local && agw_config_addr_blocked(agw_buf_view(&host)))
        why = "points at a link-local or cloud metadata address (169.254.0.0/16, fe80::/10, "
              "fd00:ec2::254): set upstream.allow_link_local = true to allow it";
    agw_buf_free(&origin);
    agw_buf_free(&host);
    return why;
}
