/* announce: what a shir node tells the relay about itself when it opens a
 * control channel (a listener): three headers of the WebSocket upgrade
 *
 *   Shir-Node: <the node's name, percent-encoded>
 *   Shir-Version: <shir's version>
 *   Shir-Node-Instance: <the installation's id: a UUID kept in state_dir>
 *
 * Other relays (Azure Relay) ignore them. shir-relay shows name and version
 * in /status, and refuses a second live listener with the same name and
 * another instance on one hybrid connection (409 "Node name in use ..."),
 * so two machines cannot serve one runtime under one name. The same
 * installation may hold several channels (make-before-break, reconnects).
 * Any channel a node opens (relay listener, self-contained HTTP/2) announces
 * itself with announce_headers(). */
#ifndef SHIR_ANNOUNCE_H
#define SHIR_ANNOUNCE_H

#include <stddef.h>

#define ANNOUNCE_NODE "Shir-Node"
#define ANNOUNCE_VERSION "Shir-Version"
#define ANNOUNCE_INSTANCE "Shir-Node-Instance"
#define ANNOUNCE_NAME_MAX 128		/* bytes of the decoded name */
#define ANNOUNCE_VERSION_MAX 32
#define ANNOUNCE_INSTANCE_MAX 64
/* the reason phrase of the relay's 409 (the node tells it from an id clash) */
#define ANNOUNCE_NAME_IN_USE "Node name in use"

struct announce {
	char node[ANNOUNCE_NAME_MAX + 1];	/* "" when not announced or invalid */
	char version[ANNOUNCE_VERSION_MAX + 1];
	char instance[ANNOUNCE_INSTANCE_MAX + 1];
};

/* "Name: value" lines for the upgrade request; the name is percent-encoded.
 * A version or instance over its limit is cut; a name over ANNOUNCE_NAME_MAX
 * bytes is refused with -1, as is an allocation failure. */
struct announce_lines {
	char node[32 + 3 * ANNOUNCE_NAME_MAX];
	char version[32 + ANNOUNCE_VERSION_MAX];
	char instance[32 + ANNOUNCE_INSTANCE_MAX];
};
int announce_headers(const char *node, const char *version, const char *instance,
    struct announce_lines *out);

/* Relay side: the three header values as received (any may be NULL). A value
 * that is too long, badly encoded or holds control bytes is dropped (left
 * ""); the others are kept. */
void announce_parse(const char *node, const char *version, const char *instance,
    struct announce *out);

#endif
