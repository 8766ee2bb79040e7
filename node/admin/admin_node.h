/* admin_node: the admin subsystem inside shird. Opens the credential store
 * (creating the machine key at first start) into NODE_EXT_CREDS, loads the
 * registration into NODE_EXT_REGISTRATION (NULL while the node is not
 * registered), serves
 *   GET    /v1/credentials          names and versions, never values
 *   PUT    /v1/credentials/{name}   body {"value": "..."}
 *   DELETE /v1/credentials/{name}
 *   GET    /v1/node/registration    the registration without its key
 *   POST   /v1/node/registration    re-read node.json and the key, then reload
 * and takes part in reload: its validate hook re-reads the registration, its
 * apply hook swaps it in, so hooks registered after it (the listener) see the
 * new registration in their apply. */
#ifndef SHIR_ADMIN_NODE_H
#define SHIR_ADMIN_NODE_H

#include "common/shir_err.h"

struct node;

struct registration;

int admin_node_start(struct node *n, struct shir_error *err);
/* The registration a channel source should use now: during a reload (between
 * admin's validate and apply hooks) the one being validated, else the current
 * one (NODE_EXT_REGISTRATION). NULL when the node is not registered. For the
 * listener's channel-spec source (lspec_add_source), see docs/admin.md. */
const struct registration *admin_node_registration(const struct node *n);
void admin_node_stop(struct node *n);

#endif
