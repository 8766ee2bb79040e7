/* copy_node: shird's copy-job runner (docs/copy.md, "The node side"). With
 * node.copy_jobs > 0 and a registration, the node leases jobs from its
 * relay's queue by long poll (HTTPS out through the node's proxy decision,
 * a SAS token from its node key), runs up to copy_jobs of them on threads of
 * their own, sends heartbeats with progress, and completes or fails each. */
#ifndef SHIR_COPY_NODE_H
#define SHIR_COPY_NODE_H

#include "common/shir_err.h"

struct node;

int copy_node_start(struct node *n, struct shir_error *err);
/* Stops leasing; running jobs are told to stop (their leases expire and the
 * relay queues them again). */
void copy_node_shutdown(struct node *n);
void copy_node_stop(struct node *n);

#endif
