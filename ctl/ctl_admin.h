/* ctl_admin: helpers shared by the admin commands of shirctl (ctl_admin*.c,
 * ctl_net.c). Not used by shird. */
#ifndef SHIR_CTL_ADMIN_H
#define SHIR_CTL_ADMIN_H

#include "node/conf.h"
#include "common/shir_err.h"

struct ctl_ctx;
struct ctl_response;

/* shird.conf's path: --conf, else the default. */
const char *ctl_admin_conf_path(const struct ctl_ctx *ctx);
/* Loads shird.conf; on failure prints the reason and returns NULL. A missing
 * file gives the defaults. */
struct conf *ctl_admin_conf(const struct ctl_ctx *ctx);

/* Reads a secret: from the terminal without echo (asking twice when confirm),
 * else all of standard input (one trailing newline removed). Empty is refused.
 * Wipe *out with credstore_secret_free. */
int ctl_read_secret(const char *prompt, int confirm, char **out, struct shir_error *err);

/* 1 when shird answers on the control socket. */
int ctl_shird_running(const struct ctl_ctx *ctx);
/* Sends a request to a running shird; prints shird's error message when the
 * status is not 2xx. Returns 0, 1 (shird refused or failed) or 2 (not running). */
int ctl_admin_call(const struct ctl_ctx *ctx, const char *method, const char *path,
    const char *body, struct ctl_response *resp);
/* Tells a running shird to re-read its configuration (path
 * /v1/node/reload) or its registration and configuration
 * (/v1/node/registration); prints what happened. Returns 0 when applied or
 * when shird is not running. */
int ctl_admin_apply(const struct ctl_ctx *ctx, const char *path);

/* Case-insensitive match of argv[0] against dmgcmd flags. */
int ctl_admin_is(const char *arg, const char *a, const char *b);

#endif
