/* confedit: changes keys of shird.conf in place. Comments, blank lines, the
 * order of keys and every other line stay as they are; the key's line is
 * rewritten (keeping its indentation and an inline "; comment"), or added at
 * the end of its section, or the section is added at the end of the file.
 * The result is checked with the config loader before anything is written,
 * and written atomically with the old file's mode. No I/O in confedit_set. */
#ifndef SHIR_CONFEDIT_H
#define SHIR_CONFEDIT_H

#include <stddef.h>

#include "common/shir_err.h"

struct confedit {
	const char *section;
	const char *key;
	const char *value;	/* NULL removes the key */
};

/* Applies one edit to text; *out is malloc'ed. SHIR_EINVAL for a value with a
 * newline or one too long for a line. */
int confedit_set(const char *text, const struct confedit *e, char **out, struct shir_error *err);

/* Applies edits to text (in order), then checks the result with the loader.
 * *out is malloc'ed. */
int confedit_apply(const char *name, const char *text, const struct confedit *edits, size_t n,
    char **out, struct shir_error *err);

/* Reads path (a missing file is empty), applies the edits, checks, writes it
 * back atomically (mode kept, 0644 for a new file). */
int confedit_file(const char *path, const struct confedit *edits, size_t n,
    struct shir_error *err);

#endif
