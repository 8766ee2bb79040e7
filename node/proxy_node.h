/* proxy_node: the proxy configuration inside shird. The current
 * struct proxy_config lives in the node's NODE_EXT_PROXY slot; reload builds a
 * new one in the validate hook (a broken .NET file refuses the reload) and
 * swaps it in the apply hook, so new connections use it while dials already
 * under way keep their reference to the old one. */
#ifndef SHIR_PROXY_NODE_H
#define SHIR_PROXY_NODE_H

#include "node/conf.h"
#include "common/shir_err.h"

struct node;
struct proxy_config;

/* shird -t and startup: loads (and drops) the proxy configuration of c. */
int proxy_node_validate(const struct conf *c, struct shir_error *err);
/* Loads the configuration into the node and registers the reload/status hooks. */
int proxy_node_start(struct node *n, struct shir_error *err);
void proxy_node_stop(struct node *n);
/* A new reference to the current configuration (release with proxy_config_unref). */
struct proxy_config *proxy_node_current(struct node *n);
/* Changes each time a reload changed the effective proxy configuration (the
 * .NET files, the environment, the password file, shird.conf's [proxy]),
 * whichever file it was. */
unsigned proxy_node_generation(struct node *n);

#endif
