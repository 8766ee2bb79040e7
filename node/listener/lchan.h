/* lchan: one relay channel of the listener (internal to the listener).
 *
 * An lchan owns the control channel WebSocket (sb-hc-action=listen) and
 * everything that hangs off it: request rendezvous sockets, requests in
 * flight, and accepted tunnels (ltun). It reconnects by itself following the
 * ladder in chstate/backoff, renews its SAS token with renewToken, pings the
 * relay and declares it dead when pongs stop.
 *
 * Every WebSocket (control or rendezvous) has its own send queue, so a
 * response's JSON and its body message are never separated by anything else
 * on that socket (renewToken goes through the same queue). */
#ifndef SHIR_LCHAN_H
#define SHIR_LCHAN_H

#include <stdint.h>
#include <openssl/ssl.h>

#include "node/listener/chstate.h"
#include "relay/hcdial.h"
#include "node/listener/lspec.h"
#include "node/listener/ltun.h"

struct event_base;
struct evdns_base;
struct node;
struct lchan;
struct ws;
struct ltun_set;
struct cJSON;

/* What the channels share, owned by the listener. */
struct workpool;

struct lctx {
	struct node *node;
	struct event_base *base;
	struct evdns_base *dns;
	/* a channel's state changed (recompute the node status; promote a
	 * make-before-break replacement) */
	void (*on_state)(void *arg, struct lchan *ch);
	/* a retired channel has finished; the listener may free it now */
	void (*on_finished)(void *arg, struct lchan *ch);
	void *arg;
	struct ltun_set *tuns;	/* accepted tunnels (they outlive their channel) */
	/* one thread for file writes the loop must not wait for (the
	 * service-hosts note, which fsyncs); made at the first write */
	struct workpool *files;
	/* this installation's id, announced to the relay (state_dir/node-instance) */
	char instance[40];
	int shutting_down;
	/* a node sync message came on a control channel (docs/ha.md) */
	void (*on_sync)(void *arg, const char *text, size_t len);
	void *sync_arg;
};

struct lchan *lchan_new(struct lctx *ctx, const struct lspec *spec, struct shir_error *err);
/* Frees at once (closing every socket without waiting). NULL is fine. */
void lchan_free(struct lchan *ch);
void lchan_start(struct lchan *ch);
/* Stop reconnecting; close the control channel once the requests in flight
 * are answered (at most drain_s seconds; then 503 for what is left), then
 * call ctx->on_finished. */
void lchan_retire(struct lchan *ch, int drain_s);

const struct chstate *lchan_state(const struct lchan *ch);
const struct lspec *lchan_spec(const struct lchan *ch);
/* Marks a make-before-break replacement (shown as "replacing" in status). */
void lchan_set_pending(struct lchan *ch, int pending);
/* Adds the channel's status object to arr. */
void lchan_status_json(const struct lchan *ch, struct cJSON *arr);

/* The dial settings of this channel for a tunnel whose rendezvous is url (a
 * new rendezvous host is noted for service-urls). */
void lchan_tun_dial(struct lchan *ch, const char *url, struct ltun_dial *d);
/* Sends a node sync message on the control channel when it is open: 1 sent,
 * 0 not (no open control channel). */
int lchan_sync_send(struct lchan *ch, const char *text, size_t len);

#endif
