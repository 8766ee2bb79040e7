/* atomicfile: crash-safe replacement of a small file. The new content goes to
 * a temporary file in the same directory, is fsync'ed, renamed over the old
 * file, and the directory is fsync'ed, so after a crash (kill -9, power loss)
 * the file holds either the old or the new content, never a mix.
 *
 * When run as root, a new file takes the owner and group of its directory, so
 * shirctl run as root writes state files that shird (user shir) can read. */
#ifndef SHIR_ATOMICFILE_H
#define SHIR_ATOMICFILE_H

#include <stddef.h>
#include <sys/types.h>

#include "common/shir_err.h"

/* Replaces path with data (len bytes) with the given mode. */
int atomicfile_write(const char *path, const void *data, size_t len, mode_t mode,
    struct shir_error *err);

/* Reads a whole file of at most max bytes into a NUL-terminated buffer.
 * SHIR_ENOENT when it does not exist (err filled). */
int atomicfile_read(const char *path, size_t max, char **out, size_t *len,
    struct shir_error *err);

/* Like atomicfile_read, and the buffer is wiped before it is freed by
 * atomicfile_secret_free (for files holding secrets). */
void atomicfile_secret_free(char *buf, size_t len);

/* Run as root: gives the new file fd (at path) the owner and group of its
 * directory, so files shirctl creates stay usable by shird's user. */
int atomicfile_adopt_owner(int fd, const char *path, struct shir_error *err);

/* fsync of the directory that holds path (after a rename or link in it). */
int atomicfile_fsync_dir(const char *path, struct shir_error *err);

/* Creates dir (0700) if it is missing; its parent must exist. */
int atomicfile_mkdir(const char *dir, struct shir_error *err);

#endif
