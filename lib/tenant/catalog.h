/*
 * catalog: what one process knows about providers and client keys, per
 * generation of the database, so that changes made through antigw-admin take
 * effect without a restart and without breaking streams in flight.
 *
 * A catalog is immutable once built: the routing table (antigw.cfg's
 * providers first, then the database's, with their secrets decrypted) inside
 * an agw_config view, plus a cache of client keys looked up by hash. The
 * holder keeps the current one. agw_catalog_acquire compares the catalog's
 * generation with the shared counter (one atomic load); when antigw-admin has
 * committed a change since, the first request to notice rebuilds the catalog
 * from the database (others keep using the old one meanwhile, or wait for the
 * rebuild when they arrived after the change) and swaps it in. Each request
 * holds a reference to the catalog it started with, so a stream keeps its
 * provider even if the provider is removed while it runs; the old catalog is
 * freed when its last request releases it.
 *
 * The generation is read before the database, so a change committed during a
 * rebuild leaves a newer counter behind and the next request rebuilds again.
 * If a rebuild fails (database busy past its timeout) the old catalog stays
 * and the rebuild is retried at most once a second.
 *
 * The key cache belongs to one catalog, so a new generation starts with an
 * empty cache: a key disabled through the admin API is refused by the next
 * request that looks at the new counter.
 *
 * A database provider with a secret but no secrets.key_file, or whose name
 * collides with one of antigw.cfg, is left out of the routing table and
 * logged. One whose secret does not open (another key, a tampered row, a type
 * or base_url edited in the database directly) stays, without a key, and is
 * logged: the key is never sent anywhere it was not sealed for.
 */
#ifndef AGW_CATALOG_H
#define AGW_CATALOG_H

#include "core/config.h"
#include "core/crypto.h"
#include "state/shm.h"
#include "tenant/tenant.h"

#include <sqlite3.h>

/* Unknown keys remembered per catalog; past this each is looked up again. */
#define AGW_CATALOG_KEY_CACHE 8192

typedef struct agw_catalog agw_catalog;
typedef struct agw_catalog_holder agw_catalog_holder;

/* Builds the first catalog with `db`. The holder takes a reference to `base`
 * (agw_config_ref); `secrets` (NULL when there is no key file) must outlive
 * the holder. */
AGW_WARN_UNUSED agw_err agw_catalog_holder_new(const agw_config *base, agw_shm *shm,
                                               const agw_secret_key *secrets, sqlite3 *db,
                                               agw_catalog_holder **out, char *err,
                                               size_t errlen);
/* Frees the holder and its current catalog; every acquired catalog must have
 * been released. */
void agw_catalog_holder_free(agw_catalog_holder *h);

/* The current catalog, rebuilt first with `db` (the calling thread's
 * connection) when the generation moved. Never NULL. */
const agw_catalog *agw_catalog_acquire(agw_catalog_holder *h, sqlite3 *db);
void agw_catalog_release(agw_catalog_holder *h, const agw_catalog *c);

/* A reloaded antigw.cfg: the next agw_catalog_acquire with a database
 * connection builds a catalog on `base` (the holder takes a reference), while
 * catalogs already handed out keep the configuration they were built on until
 * their last release. If that build fails the current catalog stays and the
 * build is retried at most once a second, as for a new generation. */
void agw_catalog_holder_rebase(agw_catalog_holder *h, agw_config *base);

/* The routing view: the base config with providers = antigw.cfg's followed by
 * the database's. Valid while the catalog is held. */
const agw_config *agw_catalog_config(const agw_catalog *c);

/* A database provider's API key at rest: sealed (crypto.h) with the
 * associated data
 *     "provider:<name>\ntype:<type>\norigin:<scheme>://<host>:<port>"
 * (agw_config_url_origin of its base_url), so a sealed key copied onto
 * another row does not open, and neither does one whose row was repointed
 * (type or base_url origin changed) behind the admin API's back: the gateway
 * cannot be made to send the key elsewhere. The path of base_url is not
 * bound. antigw-admin seals (and re-seals on a change of name, type or
 * origin), the catalog opens. Both append to `out` and fail as agw_aead_seal
 * and agw_aead_open do; AGW_EINVAL for an unknown type or a base_url without
 * an origin, AGW_ETOOBIG past AGW_CATALOG_AAD_MAX bytes of associated data. */
#define AGW_CATALOG_AAD_MAX 1024
AGW_WARN_UNUSED agw_err agw_catalog_seal_secret(const agw_secret_key *k, const char *provider,
                                                const char *type, const char *base_url,
                                                agw_str plain, agw_buf *out);
AGW_WARN_UNUSED agw_err agw_catalog_open_secret(const agw_secret_key *k, const char *provider,
                                                const char *type, const char *base_url,
                                                agw_str sealed, agw_buf *out);
/* Opens a key sealed before type and origin were bound (associated data
 * "provider:<name>"). Only antigw-admin's migration at start uses it, to
 * re-seal such rows: the data plane never accepts that format. */
AGW_WARN_UNUSED agw_err agw_catalog_open_secret_v1(const agw_secret_key *k, const char *provider,
                                                   agw_str sealed, agw_buf *out);

/* The client key `presented`, through the catalog's cache, then `db`.
 * AGW_ENOTFOUND for an unknown key, AGW_EIO for database errors. *out is
 * valid while the catalog is held. */
AGW_WARN_UNUSED agw_err agw_catalog_key(const agw_catalog *c, sqlite3 *db, agw_str presented,
                                        const agw_tenant_key **out);

#endif
