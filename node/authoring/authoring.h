/* authoring: the interactive authoring dispatcher (specs/authoring-api.md).
 * It adds the /v1 authoring routes to the node's API router, validates
 * requests, resolves credential references, applies the security rules, and
 * runs each operation on a bounded worker pool under a deadline; results are
 * answered on the loop thread. Its state lives in the node's
 * NODE_EXT_AUTHORING slot. See docs/authoring.md. */
#ifndef SHIR_AUTHORING_H
#define SHIR_AUTHORING_H

#include "common/shir_err.h"

struct node;

/* Starts the worker pool and adds the routes and node hooks. */
int authoring_start(struct node *n, struct shir_error *err);
/* SIGTERM: queued operations are answered 503 ShuttingDown, running ones
 * finish (or hit their deadline). */
void authoring_shutdown(struct node *n);
/* Before exit: running operations still unanswered get 503 ShuttingDown,
 * their store calls are told to stop, the workers are joined. */
void authoring_stop(struct node *n);

/* The credential seam: resolves a CredentialReference name to its secret
 * (malloc'd; the dispatcher wipes and frees it). Returns 0, SHIR_ENOENT when
 * no such credential is stored (400 CredentialNotFound), or another SHIR_E*
 * with err filled. Called on the loop thread. Until the credential store
 * registers itself, every reference gives CredentialNotFound. */
typedef int (*authoring_cred_fn)(void *arg, const char *name, char **secret,
    struct shir_error *err);
void authoring_set_credential_resolver(struct node *n, authoring_cred_fn fn, void *arg);

#endif
