/* relay_state: the state file shir-relay owns (JSON): hybrid connections
 * (entities), their SAS rules, and the integration-runtime metadata that
 * `shir-relay ir ...` manages. Written atomically (temp file, fsync, rename,
 * fsync of the directory) under an flock on "<file>.lock", mode 0600. */
#ifndef SHIR_RELAY_STATE_H
#define SHIR_RELAY_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/sas.h"
#include "common/shir_err.h"

struct rstate_rule {
	char *name;
	char *key;
	unsigned rights;	/* SAS_LISTEN | SAS_SEND | SAS_MANAGE */
};

struct rstate_entity {
	char *name;
	bool ir;		/* created by `ir create` */
	char *endpoint;		/* the endpoint written into its keys */
	bool anonymous_senders;
	bool self_contained;	/* self-contained interactive authoring (docs/self-contained.md) */
	int64_t created;
	struct rstate_rule *rules;
	size_t nrules;
};

struct rstate {
	struct rstate_entity *e;
	size_t n;
};

/* A missing file is an empty state. */
int rstate_load(const char *path, struct rstate **out, struct shir_error *e);
int rstate_save(const struct rstate *s, const char *path, struct shir_error *e);
void rstate_free(struct rstate *s);

struct rstate_entity *rstate_find(const struct rstate *s, const char *name);
/* Appends a new entity (name checked); returns it or NULL with e set. */
struct rstate_entity *rstate_add(struct rstate *s, const char *name, struct shir_error *e);
int rstate_remove(struct rstate *s, const char *name);
int rstate_add_rule(struct rstate_entity *en, const char *name, const char *key, unsigned rights);
struct rstate_rule *rstate_rule(const struct rstate_entity *en, const char *name);
bool rstate_name_ok(const char *name);

/* Exclusive lock for read-modify-write by the CLI; returns an fd or <0. */
int rstate_lock(const char *path, struct shir_error *e);
void rstate_unlock(int fd);

#endif
