/* selfcont: the node's self-contained interactive authoring channel
 * (docs/self-contained.md). With [selfcontained] endpoint set, the node keeps
 * selfcontained.connections (1..4) connections to the relay's service
 * endpoint; the runtime's mode, switched on the relay, decides whether
 * authoring comes over them (and then they, not the Hybrid Connections
 * channels, make the node status). State in the node's NODE_EXT_SELFCONT. */
#ifndef SHIR_SELFCONT_H
#define SHIR_SELFCONT_H

#include "common/shir_err.h"
#include "node/conf.h"

struct node;

/* shird -t, startup and reload: the service endpoint parses, the node has a
 * runtime to present. */
int selfcont_validate(const struct conf *c, struct shir_error *err);
/* After listener_start (the status of both is tied). */
int selfcont_start(struct node *n, struct shir_error *err);
/* SIGTERM: GOAWAY on every connection; streams in flight finish. */
void selfcont_shutdown(struct node *n);
void selfcont_stop(struct node *n);

#endif
