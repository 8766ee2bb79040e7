/* cluster: the nodes of one runtime keep the same credentials without a
 * leader (docs/ha.md). Each node watches its credential store; its own
 * changes are pushed at once, and every CLUSTER_DIGEST_S seconds it sends the
 * digest of its records; a node that sees a digest other than its own sends
 * all its records, and each side keeps, name by name, the newest version
 * (credstore_merge). Messages are sealed under the runtime data key (rtkey.h)
 * and travel direct on node-to-node TLS links (peerlink.h) to the peers that
 * can be reached, and through the relay on the nodes' control channels (the
 * relay hands each to the runtime's other listeners, unread) for the others
 * and for every digest. Without a runtime data key the node does not sync,
 * and GET /v1/node says so. */
#ifndef SHIR_CLUSTER_H
#define SHIR_CLUSTER_H

#include "common/shir_err.h"

struct node;

#define CLUSTER_TICK_MS 100	/* the store is looked at (stat) this often */
#define CLUSTER_DIGEST_S 5	/* digest exchange period */
#define CLUSTER_DUMP_MIN_S 2	/* at most one full send per this many seconds */
#define CLUSTER_PEERS_MAX 64

/* After listener_start: takes the node's sync messages. */
int cluster_start(struct node *n, struct shir_error *err);
/* Before listener_stop. NULL is fine. */
void cluster_stop(struct node *n);

#endif
