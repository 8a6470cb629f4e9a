/*
 * config: antigw.cfg (libconfig syntax) loaded into one immutable struct.
 *
 * Ownership: agw_config_load() returns a heap agw_config that owns every string
 * and array inside it; agw_config_free() releases all of it. After loading nothing
 * mutates it, so threads share it without locks.
 *
 * Validation is strict: an unknown section or key, a wrong type or a value out
 * of range fails the load with "file:line: key: what is wrong" in `err`, so a
 * typo never silently falls back to a default. Relative paths (database.path,
 * secrets.key_file) are resolved against the directory of the config file.
 * The file antigw.cfg.example documents every key and its default.
 */
#ifndef AGW_CONFIG_H
#define AGW_CONFIG_H

#include "core/core.h"
#include "core/crypto.h"

#include <stdatomic.h>

#define AGW_ERR_LEN 512

typedef enum {
    AGW_PROVIDER_OPENAI = 0,
    AGW_PROVIDER_ANTHROPIC,
    AGW_PROVIDER_KIRO,
    AGW_PROVIDER_COPILOT,
    AGW_PROVIDER_TYPE_COUNT
} agw_provider_type;

/* "openai", "anthropic", "kiro", "copilot". */
const char *agw_provider_type_name(agw_provider_type t);
/* Returns the type, or -1 for an unknown name. */
int agw_provider_type_parse(const char *name);

/* The longest provider name, in bytes. Usage rows (tenant/usage.h) and the
 * metrics registry's labels (AGW_METRICS_NAME_MAX) keep a provider's name in
 * 64-byte fields, NUL included: a longer name would be cut there and two
 * providers could end up counted as one. */
#define AGW_CONFIG_NAME_MAX 63

/* The longest model name, in bytes. The one limit for every place that takes
 * or keeps one: a client request's "model" (longer is a 400), a usage row's
 * model field, the metrics registry's model label (AGW_METRICS_MODEL_MAX) and
 * a client key's allowed_models entries in the admin API. A name accepted at
 * one place therefore fits every other, whole. */
#define AGW_CONFIG_MODEL_MAX 255

/* 1 when `name` may name a provider: 1 to AGW_CONFIG_NAME_MAX bytes, each a
 * letter, a digit, '.', '_' or '-' (no '/', which separates a provider from a
 * model in "provider/model"). NULL is not a name. antigw.cfg and the admin API
 * both check names with this. */
int agw_config_name_ok(const char *name);

/* A rule that rewrites answer text, as configured (proto/sanitize.h gives
 * its meaning): `pattern` and `text` are 1 to AGW_CONFIG_RULE_MAX bytes of
 * well-formed UTF-8 (`text` may be empty for replacements); a word pattern
 * starts and ends with an ASCII letter or digit. */
typedef enum {
    AGW_RULE_REPLACE = 0, /* pattern -> text, exact bytes */
    AGW_RULE_REPLACE_WORD, /* pattern -> text, whole words, ASCII case ignored */
    AGW_RULE_REMOVE,       /* from pattern to the first text after it */
} agw_rule_kind;

#define AGW_CONFIG_RULE_MAX 256
#define AGW_CONFIG_RULES_MAX 48
/* usage.ring_dir by default: a memory file system on every Linux system. */
#define AGW_CONFIG_RING_DIR "/dev/shm"

typedef struct {
    agw_rule_kind kind;
    char *pattern;
    char *text;
} agw_rule_cfg;

/* Settings that only one provider type reads (its URLs and the version
 * strings its client headers carry): keys of a provider's group in
 * antigw.cfg, each with a default (PROVIDERS.md), refused on a provider of
 * another type. Providers added through the admin API use the defaults. */
typedef enum {
    AGW_SET_GITHUB_URL = 0,         /* copilot: device flow; https://github.com */
    AGW_SET_GITHUB_API_URL,         /* copilot: token exchange, user, quota; https://api.github.com */
    AGW_SET_GITHUB_CLIENT_ID,       /* copilot: the OAuth app of the device flow */
    AGW_SET_COPILOT_EDITOR_VERSION, /* copilot: editor-version */
    AGW_SET_COPILOT_PLUGIN_VERSION, /* copilot: editor-plugin-version */
    AGW_SET_COPILOT_USER_AGENT,     /* copilot: user-agent */
    AGW_SET_COPILOT_INTEGRATION_ID, /* copilot: copilot-integration-id */
    AGW_SET_COPILOT_API_VERSION,    /* copilot: x-github-api-version */
    AGW_SET_COPILOT_INTENT,         /* copilot: openai-intent */
    AGW_SET_KIRO_VERSION,           /* kiro: the KiroIDE version its user agents name */
    AGW_SET_KIRO_SDK_VERSION,       /* kiro: the aws-sdk-js version its user agents name */
    AGW_SET_KIRO_OS,                /* kiro: the os/ part of user-agent */
    AGW_SET_KIRO_NODE_VERSION,      /* kiro: the md/nodejs# part of user-agent */
    AGW_SET_KIRO_AGENT_MODE,        /* kiro: x-amzn-kiro-agent-mode */
    AGW_SET_KIRO_AUTH_URL,          /* kiro: social token service; https://prod.{region}.auth.desktop.kiro.dev */
    AGW_SET_KIRO_OIDC_URL,          /* kiro: AWS SSO OIDC; https://oidc.{region}.amazonaws.com */
    AGW_SET_KIRO_SIGNIN_URL,        /* kiro: the social sign-in page; https://app.kiro.dev/signin */
    AGW_SET_KIRO_START_URL,         /* kiro: Builder ID start URL; https://view.awsapps.com/start */
    AGW_SET_KIRO_REDIRECT_URI,      /* kiro: the loopback sign-in callback; http://localhost:3128 */
    AGW_PROVIDER_SETTING_COUNT
} agw_provider_setting_id;

typedef struct {
    char *name;          /* unique; agw_config_name_ok */
    agw_provider_type type;
    char *base_url;      /* no trailing slash; OpenAI style ends in /v1, Anthropic style does not */
    char *api_key;       /* may be empty: no credential is sent */
    int weight;          /* >= 0, default 100 */
    int enabled;         /* default 1 */
    char **models;       /* model names or glob patterns (fnmatch) */
    size_t n_models;
    char *default_model; /* may be NULL */
    /* What the gateway does to this provider's answers; -1 = the type's
     * default (both on for kiro only). */
    int continuation;    /* continue answers cut by an output cap the client did not set */
    int sanitize;        /* rewrite answer text by rules */
    int sanitize_defaults; /* the type's own rules before the configured ones; default 1 */
    int sanitize_thinking; /* thinking text too; default 0 */
    agw_rule_cfg *sanitize_rules; /* after the type's own */
    size_t n_sanitize_rules;
    /* OpenAI type: api = "responses" sends every model call to the Responses
     * API (/responses) instead of chat completions; responses_models (names
     * or globs) does so for those models only. */
    int responses_api;
    char **responses_models;
    size_t n_responses_models;
    /* Type-specific settings (agw_provider_setting_id); NULL = the default:
     * read them with agw_provider_setting(). */
    char *settings[AGW_PROVIDER_SETTING_COUNT];
    /* copilot: base_url was left out, so calls go to the host the account's
     * token names (endpoints.api), base_url being the fallback. */
    int base_url_from_token;
} agw_provider_cfg;

/* Why a rule is refused (NULL when it is fine), and in *field which of its
 * strings ("replace", "with", "remove", "until"): the one check for
 * antigw.cfg and the admin API. */
const char *agw_config_rule_refused(agw_rule_kind kind, const char *pattern, const char *text,
                                    const char **field);

/* A provider's answer settings as the admin API takes and shows them, one
 * JSON object: {"continuation": true|false|null, "sanitize": true|false|null,
 * "sanitize_defaults": bool, "sanitize_thinking": bool, "sanitize_rules":
 * [{"replace": "...", "with": "...", "word": bool} | {"remove": "...",
 * "until": "..."}]} (members absent = defaults; null = the type's default).
 * _from_json replaces p's settings (nothing changes and `why` says what is
 * wrong on AGW_EINVAL); _to_json appends p's. */
AGW_WARN_UNUSED agw_err agw_config_answers_from_json(agw_str json, agw_provider_cfg *p, char *why,
                                                     size_t whylen);
AGW_WARN_UNUSED agw_err agw_config_answers_to_json(const agw_provider_cfg *p, agw_buf *out);

/* Frees p's sanitize rules and leaves it with none (for the owners of
 * provider entries built outside a configuration: the catalog). */
void agw_config_rules_free(agw_provider_cfg *p);

/* p's value of setting `id`, its default when unset (never NULL). */
const char *agw_provider_setting(const agw_provider_cfg *p, agw_provider_setting_id id);
/* The antigw.cfg key of setting `id` ("github_url"). */
const char *agw_provider_setting_name(agw_provider_setting_id id);

typedef struct {
    char *path;          /* the file this was loaded from */

    struct {
        int log_level;               /* agw_log_level; default info */
        size_t max_body_bytes;       /* default 10 MiB */
        int threads;                 /* worker threads per process; default 16 */
        int batch_scheduling;        /* worker threads under SCHED_BATCH (fcgi_server.h);
                                        default 1; applied at start only */
        int connect_timeout_ms;      /* upstream connect; default 10000 */
        int idle_timeout_s;          /* no upstream byte for this long aborts; default 300 */
        int sse_ping_s;              /* SSE comment to an idle client stream; default 10 */
        int stream_commit_ms;        /* send 200 + SSE head if upstream is silent this long; default 2000 */
        size_t max_stream_bytes;     /* a streamed answer past this many upstream bytes is
                                        stopped with an error event; 0 = no limit; default 256 MiB */
        int max_stream_s;            /* the same for its duration in seconds; default 3600 */
        int shutdown_grace_s;        /* finish in-flight requests for at most this; default 60 */
        char *cors_origins;          /* "" (default) = no CORS headers; "*" or a comma-separated
                                        list of origins */
        size_t max_memory_bytes;     /* request bodies held at once by one process, all threads
                                        together (core.h's agw_budget); default 256 MiB */
    } server;

    struct {
        char *api_key;   /* single-key mode client key; NULL = no client auth */
        char *admin_key; /* NULL when unset, or after agw_config_hash_admin_key */
        /* SHA-256 of the admin key, set by agw_config_hash_admin_key: a
         * process that only checks the key keeps this, never the key. */
        unsigned char admin_key_sha256[AGW_SHA256_LEN];
        int has_admin_key_hash;
    } auth;

    struct {
        char *token;     /* NULL: /metrics is open; else it needs Authorization: Bearer <token> */
    } metrics;

    struct {
        /* 0 (default): a provider's base_url may not name a link-local or
         * cloud-metadata address (agw_config_addr_blocked), and the upstream
         * client refuses to connect to one after DNS resolution. */
        int allow_link_local;
    } upstream;

    struct {
        char *path;      /* SQLite file; default "antigw.db" next to the config */
    } database;

    struct {
        char *provider;        /* NULL = first usable */
        char *model;           /* default claude-sonnet-4-20250514 */
        char *lb_strategy;     /* weighted|round-robin|least-used|priority|smart; default smart */
        int health_check_enabled;
        int health_check_seconds;
        int health_check_timeout_seconds; /* one probe, every page of its list; default 10 */
        int max_attempts;            /* providers tried per request before the first byte; default 3 */
        int cooldown_seconds;        /* a failing provider leaves the rotation this long; default 30 */
        int lb_half_life_seconds;    /* decay of the recent 429/5xx counts (smart); default 30 */
    } defaults;

    struct {
        int enabled;
    } tenant;

    struct {
        int retention_days; /* usage rows older than this are pruned; 0 = kept forever;
                               default 90 */
        int required;       /* a full usage ring refuses model calls (503) rather than
                               serving them without records; default true */
        int ring_records;   /* slots of the usage ring (a power of two); default 65536 */
        int wal_reset_mib;  /* the drainer empties the WAL once it passes this; default 16 */
        char *ring_dir;     /* where the ring lives (memory); "" beside the database; read at
                               start; default AGW_CONFIG_RING_DIR */
    } usage;

    struct {
        char *key_file;  /* NULL when unset */
    } secrets;

    struct {
        int max_rounds;        /* follow-up calls per answer; default 3 */
        int max_output_chars;  /* no round starts once the answer is this long; default 200000 */
    } continuation;

    agw_provider_cfg *providers;
    size_t n_providers;

    atomic_int refs;     /* agw_config_ref / agw_config_free; 1 after loading */
} agw_config;

/* Loads and validates `path`. On failure returns AGW_EINVAL or AGW_EIO, *out is
 * NULL and `err` (AGW_ERR_LEN bytes) says file, line and key. */
AGW_WARN_UNUSED agw_err agw_config_load(const char *path, agw_config **out, char *err,
                                        size_t errlen);
/* The same from text in memory; `base_dir` resolves relative paths (may be NULL = "."). */
AGW_WARN_UNUSED agw_err agw_config_parse(const char *text, const char *base_dir,
                                         agw_config **out, char *err, size_t errlen);
/* A config with every default and no providers (used when no file is given). */
agw_config *agw_config_defaults(const char *base_dir);
/* Configurations are reference counted, so that a reload (SIGHUP) can swap
 * in a new one while requests in flight keep the one they started with.
 * agw_config_ref takes one more reference and returns cfg; agw_config_free
 * drops one and frees everything when it was the last. Secrets (the client
 * and admin keys, provider api keys, metrics.token) are overwritten before
 * their memory is released. */
agw_config *agw_config_ref(const agw_config *cfg);
void agw_config_free(agw_config *cfg);

/* Settings a process reads once, at its start, into what it builds then
 * (the worker threads, the usage ring and its drainer, the health prober,
 * the load balancer's decay): a reload (SIGHUP) leaves them as they were and
 * applies the rest of the file. (The few a reload refuses to change at all,
 * database.path and the like, each program checks itself.) The bits say
 * which program reads one. */
#define AGW_CONFIG_READ_BY_GATEWAY 1u /* antigw-fcgi */
#define AGW_CONFIG_READ_BY_ADMIN 2u   /* antigw-admin */
/* Appends to `out` the names of the start-only settings read by `reader`
 * (AGW_CONFIG_READ_BY_*) whose values differ between `running` and `fresh`,
 * each as "name (old -> new)", separated by ", "; returns how many. */
size_t agw_config_start_only_changes(const agw_config *running, const agw_config *fresh,
                                     unsigned reader, agw_buf *out);
/* A reload's warning: logs "reload: these settings keep their values until
 * <restarts> restarts: <the changes above>", or nothing when there are none. */
void agw_config_warn_start_only(const agw_config *running, const agw_config *fresh,
                                unsigned reader, const char *restarts);

/* Replaces auth.admin_key by its SHA-256 (auth.admin_key_sha256) and wipes
 * the key: for a process that checks the admin key but never needs to send
 * it. `env_key` (ANTIGW_ADMIN_KEY, may be NULL or "") wins over the file's,
 * as it does for antigw-admin. */
void agw_config_hash_admin_key(agw_config *cfg, const char *env_key);

/* 1 when `given` is the admin key of a config hashed by
 * agw_config_hash_admin_key (constant time); 0 when it is not, or when no
 * admin key is set. */
int agw_config_admin_key_ok(const agw_config *cfg, agw_str given);

/* 1 when `host` (a URL's host part: a literal IPv4 address, or an IPv6
 * address with or without brackets) is one a provider must not point at
 * unless upstream.allow_link_local is set: link-local 169.254.0.0/16 (which
 * holds the cloud metadata service 169.254.169.254), fe80::/10, and AWS's
 * IPv6 metadata address fd00:ec2::254. An IPv4-mapped IPv6 address counts as
 * its IPv4 address. Host names are not resolved here (0); loopback and
 * private networks are allowed. */
int agw_config_addr_blocked(agw_str host);
/* The same for a socket address (after DNS resolution). */
struct sockaddr;
int agw_config_sockaddr_blocked(const struct sockaddr *sa);

/* The load-balancing strategy `name` (defaults.lb_strategy) as its index in
 * weighted, round-robin, least-used, priority, smart: the order of
 * agw_lb_strategy (route/lb.h). -1 for any other name or NULL. */
int agw_config_lb_strategy(const char *name);

/* The origin of an http(s) URL, "scheme://host:port" with the default port
 * written out (80, 443) and the host lower-cased; `host` (may be NULL) gets
 * the host alone, brackets of an IPv6 literal removed. AGW_EINVAL when `url`
 * is not http:// or https:// with a host, AGW_ETOOBIG past `max` bytes. */
AGW_WARN_UNUSED agw_err agw_config_url_origin(const char *url, agw_buf *origin, agw_buf *host);

/* The check antigw.cfg and the admin API both apply to a base_url: NULL when
 * it may be used, else why not (a static string). */
const char *agw_config_base_url_refused(const char *url, int allow_link_local);

/* The provider named `name`, or NULL. */
const agw_provider_cfg *agw_config_provider(const agw_config *cfg, agw_str name);

#endif
