/* listener: shird's relay listener. It keeps one control channel (lchan) per
 * channel spec (lspec: the [relay] section now, stored registrations later),
 * derives the node status from them, adds "channels" to GET /v1/node,
 * follows reloads make-before-break, and drains on shutdown. Its state lives
 * in the node's NODE_EXT_LISTENER slot. See docs/listener.md. */
#ifndef SHIR_LISTENER_H
#define SHIR_LISTENER_H

#include "node/conf.h"
#include "common/shir_err.h"

struct node;

/* shird -t and startup: the channel specs can be built (key files 0600,
 * URLs, pins, CA files). */
int listener_validate(const struct conf *c, struct shir_error *err);
/* Starts the channels, registers the node hooks (and the test routes when
 * relay.test_routes is on). */
int listener_start(struct node *n, struct shir_error *err);
/* While owns(arg) says so, the node status is not derived from these
 * channels (self-contained mode: an unreachable Hybrid Connections endpoint
 * is not a cause); listener_refresh_status() derives it again. */
void listener_set_status_owner(struct node *n, int (*owns)(void *arg), void *arg);
void listener_refresh_status(struct node *n);
/* SIGTERM: take no new work; channels close once their requests are done;
 * tunnels are closed. */
void listener_shutdown(struct node *n);
/* The installation's id every channel announces (state_dir/node-instance,
 * made at first use; relay/announce.h). */
void listener_instance(const char *state_dir, char *out, size_t len);
/* Frees everything (n may be NULL). */
void listener_stop(struct node *n);

/* Node sync through the relay (docs/ha.md): fn gets each {"shirSync":...}
 * message another node of the runtime sent (on the loop, the text as it
 * came); listener_sync_send sends one on every open control channel and says
 * on how many. Before listener_start or after listener_stop: nothing. */
void listener_set_sync_handler(struct node *n, void (*fn)(void *arg, const char *text,
    size_t len), void *arg);
int listener_sync_send(struct node *n, const char *text, size_t len);

#endif
