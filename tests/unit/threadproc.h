/* threadproc: what /proc says about one thread of the test process, found by
 * the name it gave itself (pthread_setname_np), for tests of background
 * threads (how often they wake, under which scheduling policy).
 *
 * Everything is read at the call; nothing is kept. */
#ifndef THREADPROC_H
#define THREADPROC_H

#include <stddef.h>

/* Reads /proc/self/task/<tid>/<file> of the first thread named `name` into
 * out (NUL-terminated, at most cap - 1 bytes). Returns the bytes read, or -1
 * when no thread has that name or the file cannot be read. */
long threadproc_read(const char *name, const char *file, char *out, size_t cap);

#endif
