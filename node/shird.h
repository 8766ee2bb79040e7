/* shird.h: the places where subsystems join the daemon's life cycle. Each
 * subsystem that runs inside shird (relay listener, authoring, proxy) adds its
 * calls to the functions in shird_hooks.c, so main stays short. */
#ifndef SHIR_SHIRD_H
#define SHIR_SHIRD_H

#include "node/conf.h"
#include "common/shir_err.h"

struct node;

/* shird -t and startup: checks beyond the config table (files, XML). */
int shird_hook_validate(const struct conf *c, struct shir_error *err);
/* After the loop and control socket exist: start subsystems, add routes and
 * node hooks. A failure is fatal at startup. */
int shird_hook_start(struct node *n, struct shir_error *err);
/* SIGTERM: stop taking new work (close listeners); in-flight work finishes. */
void shird_hook_shutdown(struct node *n);
/* Before exit: free everything. n may be NULL. */
void shird_hook_stop(struct node *n);

#endif
