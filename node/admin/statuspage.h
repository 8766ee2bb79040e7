/* statuspage: shird's loopback HTTP listeners (docs/admin.md "Status page").
 *
 * [admin] status_page = 127.0.0.1:PORT serves the local status page: Status
 * (the node and its channels with their causes), Settings (the effective proxy
 * and why, allowed folders, credential names and versions, never a secret)
 * and Diagnostics (recent log lines as the log module redacted them, and a
 * button that runs `shirctl diagnose`). The page is read-only and carries
 * its own HTML, script and style; its data routes need the token kept in
 * state_dir/statuspage.token (0600), which `shirctl ui` prints as part of the
 * page's address (GET /v1/node/ui on the control socket).
 *
 * [admin] metrics = 127.0.0.1:PORT serves GET /metrics (the control socket's
 * Prometheus text) to a scraper, without a token.
 *
 * Both addresses must be loopback: shird -t and start refuse anything else. */
#ifndef SHIR_STATUSPAGE_H
#define SHIR_STATUSPAGE_H

#include <stddef.h>

#include "common/shir_err.h"

struct conf;
struct node;

#define STATUSPAGE_TOKEN_FILE "statuspage.token"

/* Checks [admin] status_page and metrics: host:port on a loopback address. */
int statuspage_validate(const struct conf *c, struct shir_error *err);
/* Binds what is configured, creates the token file, adds GET /v1/node/ui. */
int statuspage_start(struct node *n, struct shir_error *err);
void statuspage_stop(struct node *n);

/* Parses "host:port" ("[::1]:port" for IPv6) of a loopback address: 127.0.0.0/8,
 * ::1 or localhost. Exposed for tests. */
int statuspage_parse_addr(const char *key, const char *v, char *host, size_t hostlen, int *port,
    struct shir_error *err);

#endif
