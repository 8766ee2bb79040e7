/* rtkey: the runtime data key, the one secret the nodes of a runtime share
 * (docs/ha.md). It seals every sync message, so only member nodes can read
 * or forge one, and the relay carries them blind. Each node keeps it in
 * state_dir/runtime-data-key sealed under its own machine key (purpose 'R');
 * it moves to another node in a file sealed under a password (scrypt, the
 * backup format), never in clear. */
#ifndef SHIR_RTKEY_H
#define SHIR_RTKEY_H

#include <stdint.h>

#include "common/shir_err.h"

#define RTKEY_FILE "runtime-data-key"
#define RTKEY_LEN 32
#define SEAL_PURPOSE_RTKEY 'R'

/* SHIR_ENOENT when this node has none yet. */
int rtkey_load(const char *state_dir, uint8_t key[RTKEY_LEN], struct shir_error *err);
/* Makes a new random key; SHIR_EEXIST when the node has one. */
int rtkey_create(const char *state_dir, struct shir_error *err);
/* Writes the key to file sealed under password (mode 0600). */
int rtkey_export(const char *state_dir, const char *password, int log2n, const char *file,
    struct shir_error *err);
/* Takes the key from such a file. Refused (SHIR_EEXIST) when the node
 * already has a different key: it would stop agreeing with its runtime. */
int rtkey_import(const char *state_dir, const char *password, const char *file,
    struct shir_error *err);

/* For backups (node/admin/backup.c): the key as 64 hex characters (wipe
 * them; SHIR_ENOENT when the node has none), whether hex may be taken
 * (SHIR_EEXIST when the node has another key, SHIR_EPROTO when it is not a
 * key), and taking it. */
int rtkey_hex_get(const char *state_dir, char hex[2 * RTKEY_LEN + 1], struct shir_error *err);
int rtkey_hex_check(const char *state_dir, const char *hex, struct shir_error *err);
int rtkey_hex_put(const char *state_dir, const char *hex, struct shir_error *err);

#endif
