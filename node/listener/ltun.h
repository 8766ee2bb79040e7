/* ltun: accepted WebSocket connections bridged to TCP targets (like
 * azbridge -T). A sender connects to /$hc/{hc}/tcp/{NAME}; NAME must be in
 * the [forward] allowlist of shird.conf. The node first connects to the
 * target, then opens the accept rendezvous and pumps bytes both ways with
 * backpressure: it stops reading one side while the other side's output is
 * above its high watermark. Anything else is rejected through
 * sb-hc-statusCode (403: not a forward path; 404: no such forward; 502: the
 * target is unreachable; 503: shutting down or too many tunnels).
 *
 * Tunnels belong to the listener, not to a channel: they keep running when
 * the channel that accepted them is replaced. */
#ifndef SHIR_LTUN_H
#define SHIR_LTUN_H

#include <stdint.h>

struct lctx;
struct lmsg_msg;
struct ltun_set;
struct cJSON;

#define LTUN_MAX 20000

struct ltun_set *ltun_set_new(struct lctx *ctx);
/* Drops every tunnel at once. NULL is fine. */
void ltun_set_free(struct ltun_set *ts);
/* Closes every tunnel (Close 1001 to the sender, FIN to the target). */
void ltun_set_close_all(struct ltun_set *ts);
unsigned ltun_set_count(const struct ltun_set *ts);
/* Adds tunnels, tunnelsOpened, tunnelBytesIn, tunnelBytesOut to obj. */
void ltun_set_status(const struct ltun_set *ts, struct cJSON *obj);

/* How a tunnel dials its rendezvous: the settings of the channel that took the
 * accept, given by value (the channel may be replaced while the tunnel runs;
 * ssl_ctx is referenced by the tunnel). */
struct ltun_dial {
	struct ssl_ctx_st *ssl_ctx;	/* SSL_CTX for wss; NULL for ws */
	const char *tls_pin;		/* NULL or "sha256/..." */
	int timeout_s;
	int allow_plain;		/* ws:// to a non-loopback host (test relays) */
};

/* An accept for forward m->forward arrived on a control channel. */
void ltun_accept(struct lctx *ctx, const struct ltun_dial *d, const struct lmsg_msg *m);
/* Rejects it with code and the description desc. */
void ltun_reject(struct lctx *ctx, const struct ltun_dial *d, const struct lmsg_msg *m, int code,
    const char *desc);

#endif
