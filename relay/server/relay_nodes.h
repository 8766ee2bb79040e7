/* relay_nodes: `shir-relay ir nodes NAME`, the runtime's roster as the
 * running relay sees it: each connected node (listener) of the hybrid
 * connection with its announced name and version, and the runtime's status
 * (Online / Limited / Offline / Need Registration, relay_roster.h). It asks
 * the running relay's /status on its admin address (relay.admin). */
#ifndef SHIR_RELAY_NODES_H
#define SHIR_RELAY_NODES_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/* Prints the roster of runtime name; 0, or 1 with the reason on stderr. */
int relay_nodes_print(const char *admin, const char *name, bool json);
/* The running relay's /status, parsed; NULL with why filled (relay.admin not
 * set, the relay not answering). */
cJSON *relay_nodes_status(const char *admin, char *why, size_t whylen);

#endif
