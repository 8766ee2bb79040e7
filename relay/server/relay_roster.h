/* relay_roster: the runtime-level status of each hybrid connection, as
 * Microsoft's portal shows it (docs/ha.md):
 *
 *   Online            every node the runtime has had is connected and Active
 *   Limited           some are (a node is away, or one says it is Inactive)
 *   Offline           none is connected
 *   Need Registration no node has ever connected
 *
 * "Has had" is the set of node names that ever announced themselves on the
 * hybrid connection (relay/announce.h), kept beside the state file in
 * STATE_FILE.nodes (JSON: {"hybrid connection": ["node", ...]}) so that it
 * survives a restart of the relay. At most ROSTER_NODES_MAX names per hybrid
 * connection (the oldest is dropped). A name is forgotten by removing it from
 * that file while the relay is stopped. */
#ifndef SHIR_RELAY_ROSTER_H
#define SHIR_RELAY_ROSTER_H

#include <cjson/cJSON.h>

#define ROSTER_NODES_MAX 64

struct rsrv;
struct ent;

/* A listener of e announced node name (not ""): remembered, and the file
 * rewritten when the name is new. */
void relay_roster_note(struct rsrv *s, const struct ent *e, const char *node);
/* Adds "runtimeStatus" and "knownNodes" ([{"node","status"}], status Online,
 * Inactive or Offline) to e's /status object j. */
void relay_roster_status(struct rsrv *s, const struct ent *e, cJSON *j);
/* Frees what the module holds (at exit). */
void relay_roster_free(void);

#endif
