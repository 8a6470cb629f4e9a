/*
 * tenant: client keys for multi-tenancy (README.md, "Multi-tenancy"): how
 * they are made, how they are stored, and what a key allows.
 *
 * A key is "agw-" followed by 64 lowercase hex digits: 256 bits from the
 * operating system's CSPRNG, shown once when it is created. The database
 * keeps its SHA-256 (a lookup index: the key's entropy makes a salt
 * pointless) and its first AGW_KEY_DISPLAY_LEN characters for display.
 * Nothing can turn a stored row back into the key.
 *
 * A key record says which models and providers the key may use (an absent or
 * null list allows all, an empty list allows none; entries of allowed_models
 * may be fnmatch globs, like provider model lists), which provider to try
 * first, its limits (limiter.h), when it expires, and whether it is enabled.
 *
 * Ownership: agw_tenant_key_load returns a heap record freed with
 * agw_tenant_key_free; every string in it is owned by the record.
 */
#ifndef AGW_TENANT_H
#define AGW_TENANT_H

#include "core/core.h"
#include "core/crypto.h"
#include "tenant/limiter.h"

#include <sqlite3.h>

#define AGW_KEY_PREFIX "agw-"
#define AGW_KEY_RANDOM_BYTES 32
#define AGW_KEY_LEN (sizeof AGW_KEY_PREFIX - 1 + 2 * AGW_KEY_RANDOM_BYTES)
#define AGW_KEY_DISPLAY_LEN 12
/* Longest key a client may present; longer ones are refused unhashed. */
#define AGW_KEY_MAX_PRESENTED 512

/* A fresh key, NUL-terminated (out holds AGW_KEY_LEN + 1). AGW_EIO when the RNG fails. */
AGW_WARN_UNUSED agw_err agw_tenant_key_generate(char out[AGW_KEY_LEN + 1]);
/* The stored form of a key. */
void agw_tenant_key_hash(agw_str key, unsigned char out[AGW_SHA256_LEN]);
/* The display prefix: the first AGW_KEY_DISPLAY_LEN bytes (fewer for a short key). */
void agw_tenant_key_display(agw_str key, char out[AGW_KEY_DISPLAY_LEN + 1]);

typedef struct {
    int64_t id;                 /* api_keys.id, >= 1 */
    char *name;
    int enabled;
    int64_t expires_at;         /* Unix seconds; 0 = never */
    agw_limit_policy limits;    /* qpm_limit, tpm_limit; 0 = none */
    char **allowed_models;      /* NULL = any; n_allowed_models 0 = none */
    size_t n_allowed_models;
    char **allowed_providers;   /* NULL = any; n_allowed_providers 0 = none */
    size_t n_allowed_providers;
    char *default_provider;     /* NULL = none */
    int continuation;           /* -1: the provider's setting; 0 or 1 overrides it */
} agw_tenant_key;

/* The key whose hash is `hash`, from api_keys. AGW_ENOTFOUND when there is
 * none; AGW_EIO for database errors (logged). */
AGW_WARN_UNUSED agw_err agw_tenant_key_load(sqlite3 *db, const unsigned char hash[AGW_SHA256_LEN],
                                            agw_tenant_key **out);
void agw_tenant_key_free(agw_tenant_key *k);

typedef enum { AGW_TENANT_KEY_OK = 0, AGW_TENANT_KEY_DISABLED, AGW_TENANT_KEY_EXPIRED } agw_tenant_key_state;

/* Whether the key may be used at Unix time `now`. */
agw_tenant_key_state agw_tenant_key_check(const agw_tenant_key *k, int64_t now);

/* 1 when the key may use `model` (an entry equal to it or a glob matching it). */
int agw_tenant_model_allowed(const agw_tenant_key *k, agw_str model);
/* 1 when the key may use the provider named `name`. */
int agw_tenant_provider_allowed(const agw_tenant_key *k, const char *name);

/* Parses a JSON array of strings (as stored in the database) into a
 * NULL-terminated malloc'd array of malloc'd strings. AGW_EINVAL when the
 * text is not such an array, or an element is empty or holds a NUL. */
AGW_WARN_UNUSED agw_err agw_tenant_string_list(agw_str json, char ***out, size_t *n);
void agw_tenant_string_list_free(char **list, size_t n);

#endif
