/* relay_nodes: `shir-relay ir nodes NAME`, the runtime's roster as the
 * running relay sees it: each connected node (listener) of the hybrid
 * connection with its announced name and version, and the runtime's status
 * (Online with at least one node connected, else Offline). It asks the
 * running relay's /status on its admin address (relay.admin). */
#ifndef SHIR_RELAY_NODES_H
#define SHIR_RELAY_NODES_H

#include <stdbool.h>

/* Prints the roster of runtime name; 0, or 1 with the reason on stderr. */
int relay_nodes_print(const char *admin, const char *name, bool json);

#endif
