/* credstore: the node's credentials, encrypted at rest (AES-256-GCM under the
 * machine key, see seal.h) in state_dir/credentials. The file carries a
 * version number that grows with each change; every change is a locked
 * read-modify-write (flock on state_dir/credentials.lock) replaced atomically
 * (atomicfile.h), so shird and shirctl may both write, and a crash leaves the
 * old or the new file.
 *
 * Names: 1 to 128 of [A-Za-z0-9._-]. Names starting with '_' are reserved for
 * the node itself (the node key of the registration); the node API refuses
 * them and never lists them. Values: at most 64 KiB.
 *
 * Every call reads the file again, so a change by another process is seen at
 * once. Secrets are wiped from memory when freed; they are never logged. */
#ifndef SHIR_CREDSTORE_H
#define SHIR_CREDSTORE_H

#include <stdint.h>
#include <time.h>

#include "common/shir_err.h"

#define CREDSTORE_FILE "credentials"
#define CREDSTORE_NAME_MAX 128
#define CREDSTORE_VALUE_MAX (64 * 1024)
#define CREDSTORE_MAX_ENTRIES 4096

struct credstore;

/* The version that orders writes across the nodes of a runtime (docs/ha.md):
 * a hybrid logical clock (wall milliseconds, a counter for writes within one
 * millisecond or while the wall clock is behind what was seen) and the id of
 * the node that wrote it as the tie-break. Entries written before there was
 * one read as (updated * 1000, 0, ""). */
#define CREDSTORE_ORIGIN_MAX 36
struct credstore_hlc {
	uint64_t ms;
	uint32_t c;
	char origin[CREDSTORE_ORIGIN_MAX + 1];
};
/* <0, 0, >0 like strcmp: by ms, then c, then origin. */
int credstore_hlc_cmp(const struct credstore_hlc *a, const struct credstore_hlc *b);

struct credstore_info {
	char name[CREDSTORE_NAME_MAX + 1];
	uint64_t version;	/* this credential's changes on this node, from 1 */
	time_t updated;		/* last change, seconds since the epoch */
	struct credstore_hlc hlc;
};

/* One credential as it travels between the nodes of a runtime: a value, or a
 * tombstone (value NULL) for a delete. */
struct credstore_rec {
	char name[CREDSTORE_NAME_MAX + 1];
	char *value;
	struct credstore_hlc hlc;
};

/* Opens the store of state_dir, creating the machine key (and the directory)
 * if it is missing. The credentials file itself is created on the first put. */
int credstore_open(const char *state_dir, struct credstore **out, struct shir_error *err);
void credstore_free(struct credstore *cs);

/* *secret is a copy; free it with credstore_secret_free. SHIR_ENOENT when
 * there is no such credential. */
int credstore_get(struct credstore *cs, const char *name, char **secret, struct shir_error *err);
void credstore_secret_free(char *secret);
/* For the authoring dispatcher's credential seam (authoring_cred_fn, arg =
 * the store): resolves a CredentialReference. Reserved names ('_...', the
 * node key) are never given out: they are SHIR_ENOENT like a missing name. */
int credstore_resolve(void *cs, const char *name, char **secret, struct shir_error *err);
/* Stores or replaces. */
int credstore_put(struct credstore *cs, const char *name, const char *value,
    struct shir_error *err);
/* SHIR_ENOENT when there is no such credential (nothing changes). */
int credstore_delete(struct credstore *cs, const char *name, struct shir_error *err);
/* All credentials, sorted by name, reserved ones included when
 * with_reserved; free *out with free(). */
int credstore_list(struct credstore *cs, int with_reserved, struct credstore_info **out,
    size_t *n, struct shir_error *err);
/* The file's version: 0 before the first change. */
int credstore_version(struct credstore *cs, uint64_t *version, struct shir_error *err);

/* Every credential and tombstone but the reserved names, sorted by name, with
 * values: free with credstore_records_free (wipes them). Deletes are kept as
 * tombstones (at most CREDSTORE_MAX_ENTRIES, the oldest dropped first). */
int credstore_records(struct credstore *cs, struct credstore_rec **out, size_t *n,
    struct shir_error *err);
void credstore_records_free(struct credstore_rec *v, size_t n);
/* Applies records from another node of the runtime: each one whose version
 * is newer than this store's record of that name (or that this store lacks)
 * replaces it; older ones are ignored; reserved names are refused. One locked
 * read-modify-write; the store version grows once when anything changed.
 * *applied: how many records won. */
int credstore_merge(struct credstore *cs, const struct credstore_rec *recs, size_t n,
    const char *from, size_t *applied, struct shir_error *err);
/* The store's node id (random, made on the first change or the first call
 * and kept; it is the origin of this node's versions). */
int credstore_node_id(struct credstore *cs, char out[CREDSTORE_ORIGIN_MAX + 1],
    struct shir_error *err);

/* For backups: the whole store as JSON text (with values; wipe it with
 * credstore_secret_free), and replacing the whole store by such a text (the
 * version still grows). */
int credstore_export(struct credstore *cs, char **json, struct shir_error *err);
int credstore_import(struct credstore *cs, const char *json, struct shir_error *err);

/* Wipes every string of a cJSON document (one that held secrets), then
 * frees it. NULL is fine. */
struct cJSON;
void credstore_json_free(struct cJSON *doc);

/* 0 when name is a valid credential name (reserved ones only when
 * allow_reserved), else SHIR_EINVAL with a sentence. */
int credstore_name_check(const char *name, int allow_reserved, struct shir_error *err);

#endif
