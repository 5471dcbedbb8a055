/*
 * file.h — read a whole (configuration or rules) file into memory.
 *
 * Every loader of a text file (config, shaping, warm-up, providers, bounce
 * rules, sink rules) reads it with sl_file_read(): one bounded read of a
 * regular file into a NUL-terminated heap buffer the caller frees.
 */
#ifndef SL_FILE_H
#define SL_FILE_H

#include <stddef.h>

/* Read path (a regular file of at most max bytes) into *out (malloc'd,
 * NUL-terminated; free() it) and its length into *len. Returns 0, -errno
 * (open/read failures; -EINVAL if not a regular file) or SL_ETOOBIG. */
int sl_file_read(const char *path, size_t max, char **out, size_t *len);

#endif
