/*
 * store: the SQLite database both apps share.
 *
 * Every connection is opened with the same pragmas (WAL, synchronous=NORMAL,
 * busy_timeout, foreign_keys, journal_size_limit), because many processes of
 * the pool write to one file, and Debian's defaults (synchronous=FULL, busy_timeout=0) would fsync per
 * commit and fail instantly under contention. Opening also brings the schema to
 * the newest version: migrations are numbered, each runs once inside
 * BEGIN IMMEDIATE, and PRAGMA user_version records how far the file has come,
 * so many processes starting at once migrate exactly once. A file from a newer
 * binary (user_version above what we know) is refused rather than misread.
 *
 * One agw_store per thread: a connection is never shared between threads and
 * never carried across fork().
 */
#ifndef AGW_STORE_H
#define AGW_STORE_H

#include "core/core.h"

#include <sqlite3.h>

typedef struct agw_store agw_store;

/* Opens (creating if needed) and migrates. On failure *out is NULL and err says why. */
AGW_WARN_UNUSED agw_err agw_store_open(const char *path, agw_store **out, char *err,
                                       size_t errlen);
void agw_store_close(agw_store *s);

/* The raw connection, for modules that own their queries. Borrowed. */
sqlite3 *agw_store_db(agw_store *s);

/* A malloc'd copy of text column `col` of the current row of `st`; NULL for
 * SQL NULL. The caller frees it. */
char *agw_store_column_dup(sqlite3_stmt *st, int col);

#endif
