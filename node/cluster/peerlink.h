/* peerlink: the node-to-node link on the remote-access port (docs/ha.md,
 * "Node-to-node transport"). When remote access is enabled and the node has
 * the runtime data key, shird listens on node.remote_access_port and dials
 * the peers whose address it heard in their sealed digests; sync messages
 * then go direct (cluster.c falls back to the relay per peer).
 *
 * TLS 1.3 only, mutual: each side presents a certificate, by default one
 * issued to the node by the runtime CA derived from the data key (rtca.h),
 * or the administrator's (node.remote_access_cert). A peer is accepted when
 * its certificate chains to this runtime's CA, or when it is a certificate a
 * member announced in its sealed digest (its SHA-256 fingerprint, "pinned").
 * Frames: peerframe.h. Every refusal is logged as event=peer.refused with
 * the reason. */
#ifndef SHIR_PEERLINK_H
#define SHIR_PEERLINK_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "node/conf.h"
#include "common/shir_err.h"

struct event_base;
struct evbuffer;
struct cJSON;
struct peerlink;

#define PEERLINK_HANDSHAKE_S 5		/* a peer finishes its handshake (and hello) within */
#define PEERLINK_INBOUND_MAX 64		/* connections accepted at once */
#define PEERLINK_OUT_MAX (1024 * 1024)	/* bytes queued to one peer before the relay takes over */
#define PEERLINK_BACKOFF_MAX_S 60	/* direct retries back off up to this */
#define PEERLINK_CERT_S (7L * 86400)	/* lifetime of a node's issued certificate */
#define PEERLINK_FP_LEN 64		/* hex SHA-256 of a certificate (DER) */
#define PEERLINK_ADDR_MAX 262		/* host:port */

struct peerlink_cb {
	/* a sync message ('S' frame) from a peer, accepted or dialed */
	void (*on_sync)(void *arg, const char *text, size_t len);
	/* non-zero when fp (hex) is a certificate a live member announced */
	int (*pinned)(void *arg, const char *fp);
	void *arg;
};

/* The remote-access settings of a configuration (shird -t, start, reload). */
int peerlink_validate(const struct conf *c, struct shir_error *err);
int peerlink_start(struct event_base *base, const struct conf *c, const uint8_t key[32],
    const char *node_id, const struct peerlink_cb *cb, struct peerlink **out,
    struct shir_error *err);
void peerlink_free(struct peerlink *pl);

/* What this node announces in its digest: host:port, and its certificate's
 * fingerprint. */
const char *peerlink_address(const struct peerlink *pl);
const char *peerlink_fingerprint(const struct peerlink *pl);

/* Sends a sync message to node_id on the direct link. Returns 1 when queued
 * on an established link; 0 when there is none yet (a dial is started, at
 * most as often as the back-off allows) or its queue is full: the caller
 * sends it through the relay instead. fp: the peer's announced fingerprint. */
int peerlink_send(struct peerlink *pl, const char *node_id, const char *addr, const char *fp,
    const char *text, size_t len);
/* Closes the link to a peer no longer heard. */
void peerlink_forget(struct peerlink *pl, const char *node_id);
/* Once a second: renews the node's certificate before it expires. */
void peerlink_tick(struct peerlink *pl);
int peerlink_up(const struct peerlink *pl, const char *node_id);
void peerlink_status(const struct peerlink *pl, struct cJSON *obj);
void peerlink_metrics(const struct peerlink *pl, struct evbuffer *out);

/* The TLS context both ends use (also shirctl remote-access check): TLS 1.3
 * only, the node's certificate (issued, or the admin's from c), peers'
 * certificates verified against the runtime CA, pins asked from cb (NULL:
 * none). fp gets this side's certificate fingerprint. */
SSL_CTX *peerlink_ctx_new(const struct conf *c, const uint8_t key[32], const char *node_id,
    char fp[PEERLINK_FP_LEN + 1], struct shir_error *err);
/* The fingerprint of a certificate, hex. */
void peerlink_cert_fp(X509 *x, char fp[PEERLINK_FP_LEN + 1]);
/* The CN of a certificate's subject ("" when none). */
void peerlink_cert_cn(X509 *x, char *cn, size_t len);

#endif
