/* scconn: one self-contained connection of the node (docs/self-contained.md).
 *
 * It dials the relay's service endpoint the way the Hybrid Connections
 * channel does (relay/hcdial: proxy decision, CONNECT with proxy
 * authentication, TLS with verification, CA file, SPKI pin), asks for
 * `Upgrade: reverse` (relay/sc_proto), and then serves HTTP/2 with nghttp2 as
 * the *server*: every stream the relay opens is one authoring request,
 * dispatched to the node API as the self-contained channel. Answers leave
 * through a bounded output buffer (nghttp2 is asked for more bytes only while
 * fewer than SCCONN_OUT_MAX are queued on the socket). A stream the relay
 * resets cancels its request (and with it the store operation).
 *
 * Its state, causes and reconnect ladder are the Hybrid Connections
 * channel's (node/listener/chstate, backoff). */
#ifndef SHIR_SCCONN_H
#define SHIR_SCCONN_H

#include <stdint.h>

#include "node/listener/chstate.h"
#include "node/listener/lspec.h"

struct event_base;
struct evdns_base;
struct node;
struct scconn;
struct cJSON;

#define SCCONN_OUT_MAX (256 * 1024)
#define SCCONN_HEADERS_MAX (16 * 1024)	/* a request's header list */

struct scctx {
	struct node *node;
	struct event_base *base;
	struct evdns_base *dns;
	/* state changed (connected, down, the relay said GOAWAY) */
	void (*on_state)(void *arg, struct scconn *c);
	/* a retired connection is done; free it outside its callbacks */
	void (*on_finished)(void *arg, struct scconn *c);
	/* the relay said whether the runtime is in self-contained mode */
	void (*on_mode)(void *arg, int on);
	void *arg;
	int capacity;		/* SETTINGS_MAX_CONCURRENT_STREAMS */
	char instance[40];	/* this installation's id, announced at the upgrade */
};

/* spec: endpoint is the service endpoint; the rest is the runtime's. */
struct scconn *scconn_new(struct scctx *ctx, const struct lspec *spec, const char *name,
    struct shir_error *err);
void scconn_start(struct scconn *c);
/* No new streams (GOAWAY to the relay); finish those in flight, at most
 * drain_s seconds; then close and call ctx->on_finished. */
void scconn_retire(struct scconn *c, int drain_s);
void scconn_free(struct scconn *c);

const struct chstate *scconn_state(const struct scconn *c);
const struct lspec *scconn_spec(const struct scconn *c);
/* The relay sent GOAWAY: a replacement should be opened. */
int scconn_goaway(const struct scconn *c);
unsigned scconn_streams(const struct scconn *c);
void scconn_status_json(const struct scconn *c, struct cJSON *arr);

/* For the fuzz target: feeds bytes as if they came from the relay after the
 * 101 to a connection with no socket (answers are discarded). */
struct scconn *scconn_new_fuzz(struct scctx *ctx);
int scconn_fuzz_feed(struct scconn *c, const uint8_t *d, size_t n);

#endif
