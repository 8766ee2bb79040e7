/* peerlink: the node-to-node TLS link (peerlink.h). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "node/admin/credstore.h"
#include "node/cluster/peerframe.h"
#include "node/cluster/peerlink.h"
#include "node/cluster/rtca.h"

#define PL_RUNTIME_CA_PREFIX "shir runtime CA "

struct pl_peer;

struct pl_conn {
	struct peerlink *pl;
	struct bufferevent *bev;	/* TLS (over raw for a dial) */
	struct bufferevent *raw;	/* a dial before TCP connects */
	struct event *deadline;
	struct pl_peer *peer;		/* outbound: the peer dialed */
	int outbound, up;
	char addr[PEERLINK_ADDR_MAX + 8];	/* the other end, for logs */
	char node[CREDSTORE_ORIGIN_MAX + 1];	/* its certificate's CN, or its hello */
	char why[320];			/* why its certificate was refused */
	struct peerlink_cb vcb;		/* for the verify callback */
	struct pl_conn *prev, *next;
};

struct pl_peer {
	char node[CREDSTORE_ORIGIN_MAX + 1];
	char addr[PEERLINK_ADDR_MAX + 1];
	char fp[PEERLINK_FP_LEN + 1];
	struct pl_conn *conn;
	time_t next_try;
	int backoff;
	int used;
};

struct peerlink {
	struct event_base *base;
	struct evdns_base *dns;
	struct evconnlistener *lst;
	SSL_CTX *ctx;
	uint8_t key[32];
	char node_id[CREDSTORE_ORIGIN_MAX + 1];
	char address[PEERLINK_ADDR_MAX + 1];
	char fp[PEERLINK_FP_LEN + 1];
	char *cert_file;	/* the admin's, or NULL: issued */
	time_t issued;
	struct peerlink_cb cb;
	struct pl_conn *conns;
	struct pl_conn *dead;	/* killed, freed by reap */
	struct event *reap;
	size_t ninbound;
	struct pl_peer peers[64];
	uint64_t accepted, refused, dials, dial_failures;
	time_t last_cap_log;
};

static int pl_ex_idx = -1;

void
peerlink_cert_fp(X509 *x, char fp[PEERLINK_FP_LEN + 1])
{
	unsigned char md[32];
	unsigned int n = sizeof md, i;

	fp[0] = 0;
	if (X509_digest(x, EVP_sha256(), md, &n) != 1)
		return;
	for (i = 0; i < 32; i++)
		snprintf(fp + 2 * i, 3, "%02x", md[i]);
}

static void
pl_name_cn(X509_NAME *nm, char *cn, size_t len)
{
	cn[0] = 0;
	if (nm == NULL || X509_NAME_get_text_by_NID(nm, NID_commonName, cn, (int)len) < 0)
		cn[0] = 0;
}

void
peerlink_cert_cn(X509 *x, char *cn, size_t len)
{
	pl_name_cn(x ? X509_get_subject_name(x) : NULL, cn, len);
}

/* The CN of this runtime's CA, from the context's trust store. */
static void
pl_ca_cn(SSL *ssl, char *cn, size_t len)
{
	STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(
	    SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl)));
	int i;

	cn[0] = 0;
	for (i = 0; objs != NULL && i < sk_X509_OBJECT_num(objs); i++) {
		X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));

		if (x != NULL) {
			peerlink_cert_cn(x, cn, len);
			return;
		}
	}
}

/* Why a certificate that does not chain is refused, in words. */
static void
pl_verify_why(SSL *ssl, X509 *leaf, int e, char *why, size_t whylen)
{
	char issuer[128], ours[128];
	const char *what;

	pl_name_cn(leaf ? X509_get_issuer_name(leaf) : NULL, issuer, sizeof issuer);
	pl_ca_cn(ssl, ours, sizeof ours);
	switch (e) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		what = "the certificate has expired";
		break;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		what = "the certificate is not valid yet";
		break;
	default:
		if (issuer[0] && strcmp(issuer, ours) == 0)
			what = "the certificate names this runtime's CA as its issuer but is not "
			    "signed by it (forged)";
		else if (strncmp(issuer, PL_RUNTIME_CA_PREFIX, strlen(PL_RUNTIME_CA_PREFIX)) == 0)
			what = "the certificate is issued by another runtime's CA";
		else if (e == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT)
			what = "a self-signed certificate that no member of this runtime announced";
		else
			what = "the certificate is neither issued by this runtime's CA nor one a "
			    "member of this runtime announced";
	}
	snprintf(why, whylen, "%s (verifier: %s; issuer CN %s)", what,
	    X509_verify_cert_error_string(e), issuer[0] ? issuer : "none");
}

static int
pl_verify_cb(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct pl_conn *c = ssl ? SSL_get_ex_data(ssl, pl_ex_idx) : NULL;
	X509 *leaf = X509_STORE_CTX_get0_cert(x);
	int e = X509_STORE_CTX_get_error(x);
	char fp[PEERLINK_FP_LEN + 1];

	if (ok)
		return 1;
	/* an announced (admin's) certificate: pinned, still within its dates */
	if (c != NULL && c->vcb.pinned != NULL && leaf != NULL) {
		peerlink_cert_fp(leaf, fp);
		if (fp[0] && c->vcb.pinned(c->vcb.arg, fp)) {
			if (X509_cmp_current_time(X509_get0_notAfter(leaf)) > 0 &&
			    X509_cmp_current_time(X509_get0_notBefore(leaf)) < 0) {
				X509_STORE_CTX_set_error(x, X509_V_OK);
				return 1;
			}
			e = X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0 ?
			    X509_V_ERR_CERT_HAS_EXPIRED : X509_V_ERR_CERT_NOT_YET_VALID;
		}
	}
	if (c != NULL && c->why[0] == 0)
		pl_verify_why(ssl, leaf, e, c->why, sizeof c->why);
	return 0;
}

/* The node's own certificate: the admin's file (certificate chain and key),
 * or one issued now by the runtime CA. */
static int
pl_ctx_cert(SSL_CTX *ctx, const struct conf *c, EVP_PKEY *ca_key, X509 *ca_cert,
    const char *node_id, struct shir_error *err)
{
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	int ok;

	if (c->remote_access_cert != NULL) {
		if (SSL_CTX_use_certificate_chain_file(ctx, c->remote_access_cert) != 1)
			return shir_error_set(err, SHIR_EINVAL, "remote access: cannot use the "
			    "certificate in %s", c->remote_access_cert);
		if (SSL_CTX_use_PrivateKey_file(ctx, c->remote_access_cert, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1)
			return shir_error_set(err, SHIR_EINVAL, "remote access: %s holds no private "
			    "key matching its certificate (put both in the PEM file)",
			    c->remote_access_cert);
		return 0;
	}
	if (rtca_issue(ca_key, ca_cert, node_id, PEERLINK_CERT_S, &k, &x, err) != 0)
		return -1;
	ok = SSL_CTX_use_certificate(ctx, x) == 1 && SSL_CTX_use_PrivateKey(ctx, k) == 1;
	EVP_PKEY_free(k);
	X509_free(x);
	if (!ok)
		return shir_error_set(err, SHIR_ECRYPTO, "remote access: cannot use the issued "
		    "certificate");
	return 0;
}

SSL_CTX *
peerlink_ctx_new(const struct conf *c, const uint8_t key[32], const char *node_id,
    char fp[PEERLINK_FP_LEN + 1], struct shir_error *err)
{
	EVP_PKEY *ca_key = NULL;
	X509 *ca_cert = NULL;
	SSL_CTX *ctx;

	if (pl_ex_idx < 0)
		pl_ex_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (rtca_derive(key, &ca_key, &ca_cert, err) != 0)
		return NULL;
	ctx = SSL_CTX_new(TLS_method());
	if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca_cert) != 1) {
		shir_error_set(err, SHIR_ECRYPTO, "remote access: cannot make the TLS context");
		goto fail;
	}
	if (pl_ctx_cert(ctx, c, ca_key, ca_cert, node_id, err) != 0)
		goto fail;
	/* no session tickets or resumption: every link shows its certificate */
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* an issued certificate goes alone: every member has the CA already */
	SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, pl_verify_cb);
	peerlink_cert_fp(SSL_CTX_get0_certificate(ctx), fp);
	EVP_PKEY_free(ca_key);
	X509_free(ca_cert);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	EVP_PKEY_free(ca_key);
	X509_free(ca_cert);
	return NULL;
}

/* --- connections ------------------------------------------------------- */

/* Frees a connection that is already off the live list. */
static void
pl_conn_destroy(struct pl_conn *c)
{
	if (c->deadline)
		event_free(c->deadline);
	if (c->bev) {
		SSL *ssl = bufferevent_openssl_get_ssl(c->bev);

		if (ssl != NULL)
			SSL_set_ex_data(ssl, pl_ex_idx, NULL);
		bufferevent_free(c->bev);
	}
	if (c->raw)
		bufferevent_free(c->raw);
	free(c);
}

static void
pl_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct peerlink *pl = arg;
	struct pl_conn *c;

	(void)fd;
	(void)what;
	while ((c = pl->dead) != NULL) {
		pl->dead = c->next;
		pl_conn_destroy(c);
	}
}

/* Takes a connection out of use at once (callbacks off, no longer a peer's
 * link) and frees it from a zero-delay event: it may be inside one of its
 * own callbacks. */
static void
pl_conn_kill(struct pl_conn *c)
{
	struct peerlink *pl = c->pl;
	struct timeval zero = { 0, 0 };

	if (c->prev)
		c->prev->next = c->next;
	else
		pl->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (!c->outbound)
		pl->ninbound--;
	if (c->peer != NULL && c->peer->conn == c)
		c->peer->conn = NULL;
	c->peer = NULL;
	if (c->deadline)
		event_del(c->deadline);
	if (c->bev) {
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	}
	if (c->raw) {
		bufferevent_disable(c->raw, EV_READ | EV_WRITE);
		bufferevent_setcb(c->raw, NULL, NULL, NULL, NULL);
	}
	c->prev = NULL;
	c->next = pl->dead;
	pl->dead = c;
	event_add(pl->reap, &zero);
}

static struct pl_conn *
pl_conn_new(struct peerlink *pl, int outbound)
{
	struct pl_conn *c = calloc(1, sizeof *c);

	if (c == NULL)
		return NULL;
	c->pl = pl;
	c->outbound = outbound;
	c->vcb = pl->cb;
	c->next = pl->conns;
	if (pl->conns)
		pl->conns->prev = c;
	pl->conns = c;
	if (!outbound)
		pl->ninbound++;
	return c;
}

/* The OpenSSL or socket error of a failed connection, in words. */
static void
pl_conn_error(struct pl_conn *c, short what, char *out, size_t len)
{
	unsigned long e = c->bev ? bufferevent_get_openssl_error(c->bev) : 0;
	int reason = e ? ERR_GET_REASON(e) : 0;
	char buf[160];

	if (c->why[0]) {
		snprintf(out, len, "%s", c->why);
		return;
	}
	if (e != 0) {
		ERR_error_string_n(e, buf, sizeof buf);
		if (reason == SSL_R_HTTP_REQUEST || reason == SSL_R_HTTPS_PROXY_REQUEST)
			snprintf(out, len, "plain HTTP, not TLS (%s)", buf);
		else if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
		    reason == SSL_R_RECORD_LENGTH_MISMATCH)
			snprintf(out, len, "not a TLS client: garbage bytes (%s)", buf);
		else if (reason == SSL_R_UNSUPPORTED_PROTOCOL || reason == SSL_R_NO_PROTOCOLS_AVAILABLE)
			snprintf(out, len, "not TLS 1.3 (%s)", buf);
		else if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
			snprintf(out, len, "the peer presented no certificate (%s)", buf);
		else
			snprintf(out, len, "TLS handshake failed: %s", buf);
		return;
	}
	if (what & BEV_EVENT_EOF)
		snprintf(out, len, "the peer closed the connection%s", c->up ? "" :
		    " during the handshake (it refused this node's certificate, or is no shir node)");
	else if (EVUTIL_SOCKET_ERROR() != 0)
		snprintf(out, len, "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	else
		snprintf(out, len, "connection error");
}

static void
pl_dial_failed(struct pl_conn *c, const char *why)
{
	struct pl_peer *p = c->peer;

	c->pl->dial_failures++;
	if (p != NULL) {
		p->backoff = p->backoff ? p->backoff * 2 : 1;
		if (p->backoff > PEERLINK_BACKOFF_MAX_S)
			p->backoff = PEERLINK_BACKOFF_MAX_S;
		p->next_try = time(NULL) + p->backoff;
		log_warn("cluster", "event=%s side=dial node=%s addr=%s reason=%s retry_in_s=%d "
		    "fallback=relay", c->why[0] ? "peer.refused" : "peer.unreachable", log_q(p->node),
		    log_q(p->addr), log_q(why), p->backoff);
	}
	pl_conn_kill(c);
}

static void
pl_close(struct pl_conn *c, short what, const char *why_in)
{
	char why[400];

	if (why_in != NULL)
		snprintf(why, sizeof why, "%s", why_in);
	else
		pl_conn_error(c, what, why, sizeof why);
	if (c->outbound && !c->up) {
		pl_dial_failed(c, why);
		return;
	}
	if (!c->outbound && !c->up) {
		c->pl->refused++;
		log_warn("cluster", "event=peer.refused side=accept peer=%s reason=%s", log_q(c->addr),
		    log_q(why));
	} else {
		log_info("cluster", "event=peer.closed side=%s peer=%s node=%s reason=%s",
		    c->outbound ? "dial" : "accept", log_q(c->addr), log_q(c->node), log_q(why));
		if (c->outbound && c->peer != NULL)
			c->peer->next_try = time(NULL) + 1;
	}
	pl_conn_kill(c);
}

static void
pl_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pl_conn *c = arg;
	char why[96];

	(void)fd;
	(void)what;
	snprintf(why, sizeof why, "the handshake did not finish within %d s", PEERLINK_HANDSHAKE_S);
	pl_close(c, 0, why);
}

static void
pl_read_cb(struct bufferevent *bev, void *arg)
{
	struct pl_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct peerframe f;
	char why[128];
	long n;

	for (;;) {
		size_t have = evbuffer_get_length(in), want = have < PEERFRAME_HDR + PEERFRAME_MAX ?
		    have : PEERFRAME_HDR + PEERFRAME_MAX;
		uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)want);

		if (have == 0 || p == NULL)
			return;
		if ((n = peerframe_parse(p, want, &f, why, sizeof why)) == 0)
			return;
		if (n < 0) {
			pl_close(c, 0, why);
			return;
		}
		if (f.type == PEERFRAME_HELLO) {
			if (c->outbound && !c->up) {
				c->up = 1;
				if (c->deadline)
					event_del(c->deadline);
				if (c->peer)
					c->peer->backoff = 0;
				log_info("cluster", "event=peer.connected side=dial node=%s addr=%s",
				    log_q(c->node), log_q(c->addr));
			}
		} else if (c->up && c->pl->cb.on_sync != NULL) {
			c->pl->cb.on_sync(c->pl->cb.arg, (const char *)f.payload, f.len);
		}
		evbuffer_drain(in, (size_t)n);
	}
}

static int
pl_write_frame(struct pl_conn *c, uint8_t type, const void *p, size_t len)
{
	uint8_t h[PEERFRAME_HDR];

	peerframe_header(h, type, len);
	return bufferevent_write(c->bev, h, sizeof h) == 0 && bufferevent_write(c->bev, p, len) == 0 ?
	    0 : -1;
}

/* The dialed peer must be the node meant: its certificate names that node
 * (issued) or is the one it announced (pinned). */
static int
pl_check_dialed(struct pl_conn *c, char *why, size_t len)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	X509 *x = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
	char fp[PEERLINK_FP_LEN + 1], cn[CREDSTORE_ORIGIN_MAX + 1];

	if (x == NULL) {
		snprintf(why, len, "the peer presented no certificate");
		return -1;
	}
	peerlink_cert_fp(x, fp);
	peerlink_cert_cn(x, cn, sizeof cn);
	if (c->peer != NULL && (strcmp(cn, c->peer->node) == 0 || strcmp(fp, c->peer->fp) == 0))
		return 0;
	snprintf(why, len, "the node at this address is not the one announced (certificate "
	    "CN %s)", cn);
	return -1;
}

static void
pl_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct pl_conn *c = arg;
	char why[200];

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
		X509 *x = ssl ? SSL_get0_peer_certificate(ssl) : NULL;

		peerlink_cert_cn(x, c->node, sizeof c->node);
		if (c->outbound) {
			if (pl_check_dialed(c, why, sizeof why) != 0)
				pl_close(c, 0, why);
			return;	/* up at the peer's hello */
		}
		c->up = 1;
		c->pl->accepted++;
		event_del(c->deadline);
		log_info("cluster", "event=peer.accepted peer=%s node=%s", log_q(c->addr),
		    log_q(c->node));
		if (pl_write_frame(c, PEERFRAME_HELLO, c->pl->node_id, strlen(c->pl->node_id)) != 0)
			pl_close(c, 0, "out of memory");
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		pl_close(c, what, NULL);
}

/* Small messages go out at once (no Nagle delay waiting for an ACK). */
static void
pl_nodelay(evutil_socket_t fd)
{
	int one = 1;

	if (fd >= 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int
pl_conn_tls(struct pl_conn *c, evutil_socket_t fd, struct bufferevent *under)
{
	SSL *ssl = SSL_new(c->pl->ctx);
	struct timeval tv = { PEERLINK_HANDSHAKE_S, 0 };

	if (ssl == NULL)
		return -1;
	pl_nodelay(under != NULL ? bufferevent_getfd(under) : fd);
	SSL_set_ex_data(ssl, pl_ex_idx, c);
	if (under != NULL)
		c->bev = bufferevent_openssl_filter_new(c->pl->base, under, ssl,
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	else
		c->bev = bufferevent_openssl_socket_new(c->pl->base, fd, ssl,
		    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (c->bev == NULL) {
		SSL_free(ssl);
		return -1;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_setcb(c->bev, pl_read_cb, NULL, pl_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, PEERFRAME_HDR + PEERFRAME_MAX);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (c->deadline == NULL &&
	    (c->deadline = evtimer_new(c->pl->base, pl_deadline_cb, c)) == NULL)
		return -1;
	return evtimer_add(c->deadline, &tv);
}

static void
pl_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg)
{
	struct peerlink *pl = arg;
	struct pl_conn *c;
	char host[64] = "?";

	(void)l;
	if (sa->sa_family == AF_INET)
		evutil_inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, host, sizeof host);
	else if (sa->sa_family == AF_INET6)
		evutil_inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, host, sizeof host);
	(void)salen;
	if (pl->ninbound >= PEERLINK_INBOUND_MAX) {
		time_t now = time(NULL);

		pl->refused++;
		if (now != pl->last_cap_log)
			log_warn("cluster", "event=peer.refused side=accept peer=%s reason=%s",
			    log_q(host), log_q("too many node-to-node connections at once"));
		pl->last_cap_log = now;
		evutil_closesocket(fd);
		return;
	}
	if ((c = pl_conn_new(pl, 0)) == NULL) {
		evutil_closesocket(fd);
		return;
	}
	snprintf(c->addr, sizeof c->addr, "%s:%d", host, sa->sa_family == AF_INET ?
	    ntohs(((struct sockaddr_in *)sa)->sin_port) :
	    ntohs(((struct sockaddr_in6 *)sa)->sin6_port));
	if (pl_conn_tls(c, fd, NULL) != 0) {
		if (c->bev == NULL)
			evutil_closesocket(fd);
		pl_conn_kill(c);
	}
}

/* --- dialing ----------------------------------------------------------- */

static void
pl_raw_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct pl_conn *c = arg;
	char why[200];

	if (what & BEV_EVENT_CONNECTED) {
		c->raw = NULL;	/* now the TLS filter's */
		bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
		if (pl_conn_tls(c, -1, bev) != 0) {
			if (c->bev == NULL)
				bufferevent_free(bev);
			pl_dial_failed(c, "out of memory");
		}
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		int dnserr = bufferevent_socket_get_dns_error(bev);

		snprintf(why, sizeof why, "%s", dnserr ? evutil_gai_strerror(dnserr) :
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	} else {
		snprintf(why, sizeof why, "closed while connecting");
	}
	pl_dial_failed(c, why);
}

static int
pl_split_addr(const char *addr, char *host, size_t hlen, int *port)
{
	const char *colon = strrchr(addr, ':');
	char *e;
	long v;

	if (colon == NULL || colon == addr || (size_t)(colon - addr) >= hlen)
		return -1;
	v = strtol(colon + 1, &e, 10);
	if (*e || v < 1 || v > 65535)
		return -1;
	if (addr[0] == '[' && colon[-1] == ']') {
		memcpy(host, addr + 1, (size_t)(colon - addr) - 2);
		host[colon - addr - 2] = 0;
	} else {
		memcpy(host, addr, (size_t)(colon - addr));
		host[colon - addr] = 0;
	}
	*port = (int)v;
	return 0;
}

static void
pl_dial(struct peerlink *pl, struct pl_peer *p)
{
	struct pl_conn *c;
	char host[PEERLINK_ADDR_MAX + 1];
	int port;
	struct timeval tv = { PEERLINK_HANDSHAKE_S, 0 };

	p->next_try = time(NULL) + (p->backoff ? p->backoff : 1);
	if (pl_split_addr(p->addr, host, sizeof host, &port) != 0) {
		p->backoff = PEERLINK_BACKOFF_MAX_S;
		p->next_try = time(NULL) + p->backoff;
		log_warn("cluster", "event=peer.unreachable node=%s addr=%s reason=%s fallback=relay",
		    log_q(p->node), log_q(p->addr), log_q("the announced address is not host:port"));
		return;
	}
	if ((c = pl_conn_new(pl, 1)) == NULL)
		return;
	c->peer = p;
	p->conn = c;
	pl->dials++;
	snprintf(c->addr, sizeof c->addr, "%s", p->addr);
	snprintf(c->node, sizeof c->node, "%s", p->node);
	if ((c->raw = bufferevent_socket_new(pl->base, -1, BEV_OPT_CLOSE_ON_FREE)) == NULL ||
	    (c->deadline = evtimer_new(pl->base, pl_deadline_cb, c)) == NULL ||
	    evtimer_add(c->deadline, &tv) != 0) {
		pl_conn_kill(c);
		return;
	}
	bufferevent_setcb(c->raw, NULL, NULL, pl_raw_event_cb, c);
	if (bufferevent_socket_connect_hostname(c->raw, pl->dns, AF_UNSPEC, host, port) != 0)
		pl_dial_failed(c, "cannot start the connection");
}

static struct pl_peer *
pl_peer_find(struct peerlink *pl, const char *node_id, int make)
{
	size_t i, free_i = SIZE_MAX;

	for (i = 0; i < sizeof pl->peers / sizeof pl->peers[0]; i++) {
		if (pl->peers[i].used && strcmp(pl->peers[i].node, node_id) == 0)
			return &pl->peers[i];
		if (!pl->peers[i].used && free_i == SIZE_MAX)
			free_i = i;
	}
	if (!make || free_i == SIZE_MAX)
		return NULL;
	memset(&pl->peers[free_i], 0, sizeof pl->peers[free_i]);
	pl->peers[free_i].used = 1;
	snprintf(pl->peers[free_i].node, sizeof pl->peers[free_i].node, "%s", node_id);
	return &pl->peers[free_i];
}

int
peerlink_send(struct peerlink *pl, const char *node_id, const char *addr, const char *fp,
    const char *text, size_t len)
{
	struct pl_peer *p;

	if (pl == NULL || addr == NULL || addr[0] == 0 || len == 0 || len > PEERFRAME_MAX ||
	    (p = pl_peer_find(pl, node_id, 1)) == NULL)
		return 0;
	if (strcmp(p->addr, addr) != 0) {
		/* moved: a new address is tried at once */
		snprintf(p->addr, sizeof p->addr, "%s", addr);
		p->backoff = 0;
		p->next_try = 0;
		if (p->conn != NULL)
			pl_conn_kill(p->conn);
	}
	snprintf(p->fp, sizeof p->fp, "%s", fp ? fp : "");
	if (p->conn == NULL) {
		if (time(NULL) >= p->next_try)
			pl_dial(pl, p);
		return 0;
	}
	if (!p->conn->up ||
	    evbuffer_get_length(bufferevent_get_output(p->conn->bev)) > PEERLINK_OUT_MAX)
		return 0;
	return pl_write_frame(p->conn, PEERFRAME_SYNC, text, len) == 0;
}

int
peerlink_up(const struct peerlink *pl, const char *node_id)
{
	size_t i;

	for (i = 0; pl != NULL && i < sizeof pl->peers / sizeof pl->peers[0]; i++)
		if (pl->peers[i].used && strcmp(pl->peers[i].node, node_id) == 0)
			return pl->peers[i].conn != NULL && pl->peers[i].conn->up;
	return 0;
}

void
peerlink_forget(struct peerlink *pl, const char *node_id)
{
	struct pl_peer *p = pl ? pl_peer_find(pl, node_id, 0) : NULL;

	if (p == NULL)
		return;
	if (p->conn != NULL)
		pl_conn_kill(p->conn);
	p->used = 0;
}

/* --- the listener and the whole ------------------------------------------ */

int
peerlink_validate(const struct conf *c, struct shir_error *err)
{
	const char *l = c->remote_access_listen, *a = c->remote_access_address;
	unsigned char buf[sizeof(struct in6_addr)];
	size_t i;

	if (l != NULL && l[0] && evutil_inet_pton(AF_INET, l, buf) != 1 &&
	    evutil_inet_pton(AF_INET6, l, buf) != 1)
		return shir_error_set(err, SHIR_ECONFIG, "node.remote_access_listen = %s is not an IP "
		    "address (leave it unset to listen on all addresses)", l);
	if (a == NULL || a[0] == 0)
		return 0;
	for (i = 0; a[i]; i++)
		if ((unsigned char)a[i] <= 0x20 || (unsigned char)a[i] >= 0x7f)
			break;
	if (a[i] != 0 || i > PEERLINK_ADDR_MAX - 7)
		return shir_error_set(err, SHIR_ECONFIG, "node.remote_access_address must be host or "
		    "host:port (at most %d visible characters, no spaces)", PEERLINK_ADDR_MAX - 7);
	return 0;
}

static int
pl_listen(struct peerlink *pl, const struct conf *c, struct shir_error *err)
{
	struct sockaddr_storage ss;
	int sl = sizeof ss;
	char spec[PEERLINK_ADDR_MAX + 16];
	const char *tries[2];
	int i, n = 0;

	if (c->remote_access_listen != NULL && c->remote_access_listen[0]) {
		snprintf(spec, sizeof spec, strchr(c->remote_access_listen, ':') ? "[%s]:%d" : "%s:%d",
		    c->remote_access_listen, c->remote_access_port);
		tries[n++] = spec;
	} else {
		tries[n++] = "[::]";
		tries[n++] = "0.0.0.0";
	}
	for (i = 0; i < n; i++) {
		char s[PEERLINK_ADDR_MAX + 16];

		if (tries[i] == spec)
			snprintf(s, sizeof s, "%s", spec);
		else
			snprintf(s, sizeof s, "%s:%d", tries[i], c->remote_access_port);
		sl = sizeof ss;
		if (evutil_parse_sockaddr_port(s, (struct sockaddr *)&ss, &sl) != 0)
			return shir_error_set(err, SHIR_EINVAL, "remote access: %s is not an IP "
			    "address to listen on", c->remote_access_listen);
		pl->lst = evconnlistener_new_bind(pl->base, pl_accept_cb, pl,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 64, (struct sockaddr *)&ss, sl);
		if (pl->lst != NULL)
			return 0;
	}
	return shir_error_set(err, SHIR_EIO, "remote access: cannot listen on port %d: %s",
	    c->remote_access_port, strerror(errno));
}

static void
pl_announce(struct peerlink *pl, const struct conf *c)
{
	char host[256];

	if (c->remote_access_address != NULL && c->remote_access_address[0]) {
		const char *colon = strrchr(c->remote_access_address, ':');
		int has_port = colon != NULL && (c->remote_access_address[0] != '[' || colon[-1] == ']');

		if (has_port && strchr(c->remote_access_address, ':') != colon &&
		    c->remote_access_address[0] != '[')
			has_port = 0;	/* a bare IPv6 address */
		if (has_port)
			snprintf(pl->address, sizeof pl->address, "%.255s", c->remote_access_address);
		else
			snprintf(pl->address, sizeof pl->address, strchr(c->remote_access_address,
			    ':') ? "[%.240s]:%d" : "%.240s:%d", c->remote_access_address,
			    c->remote_access_port);
		return;
	}
	if (gethostname(host, sizeof host) != 0)
		snprintf(host, sizeof host, "localhost");
	host[sizeof host - 1] = 0;
	snprintf(pl->address, sizeof pl->address, "%.240s:%d", host, c->remote_access_port);
}

int
peerlink_start(struct event_base *base, const struct conf *c, const uint8_t key[32],
    const char *node_id, const struct peerlink_cb *cb, struct peerlink **out,
    struct shir_error *err)
{
	struct peerlink *pl = calloc(1, sizeof *pl);

	*out = NULL;
	if (pl == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	pl->base = base;
	pl->cb = *cb;
	memcpy(pl->key, key, sizeof pl->key);
	snprintf(pl->node_id, sizeof pl->node_id, "%s", node_id);
	if ((pl->reap = evtimer_new(base, pl_reap_cb, pl)) == NULL) {
		free(pl);
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	}
	if ((pl->ctx = peerlink_ctx_new(c, key, node_id, pl->fp, err)) == NULL ||
	    pl_listen(pl, c, err) != 0) {
		peerlink_free(pl);
		return -1;
	}
	if ((pl->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS)) == NULL)
		pl->dns = evdns_base_new(base, 0);
	if (c->remote_access_cert != NULL && (pl->cert_file = strdup(c->remote_access_cert)) == NULL) {
		peerlink_free(pl);
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	}
	pl->issued = time(NULL);
	pl_announce(pl, c);
	log_info("cluster", "event=peer.listening port=%d address=%s certificate=%s fingerprint=%s",
	    c->remote_access_port, log_q(pl->address), pl->cert_file ? log_q(pl->cert_file) :
	    "issued-by-runtime-ca", pl->fp);
	*out = pl;
	return 0;
}

void
peerlink_tick(struct peerlink *pl)
{
	struct shir_error err;
	struct conf c;
	SSL_CTX *ctx;
	char fp[PEERLINK_FP_LEN + 1];

	/* an issued certificate is renewed when a day of its life is left; the
	 * connections made already keep theirs */
	if (pl == NULL || pl->cert_file != NULL ||
	    time(NULL) - pl->issued < PEERLINK_CERT_S - 86400)
		return;
	memset(&c, 0, sizeof c);
	if ((ctx = peerlink_ctx_new(&c, pl->key, pl->node_id, fp, &err)) == NULL) {
		log_error("cluster", "event=peer.renew_failed reason=%s", log_q(err.msg));
		return;
	}
	SSL_CTX_free(pl->ctx);
	pl->ctx = ctx;
	memcpy(pl->fp, fp, sizeof fp);
	pl->issued = time(NULL);
	log_info("cluster", "event=peer.certificate_renewed fingerprint=%s", pl->fp);
}

void
peerlink_free(struct peerlink *pl)
{
	if (pl == NULL)
		return;
	while (pl->conns != NULL)
		pl_conn_kill(pl->conns);
	if (pl->reap != NULL)
		pl_reap_cb(-1, 0, pl);
	if (pl->reap != NULL)
		event_free(pl->reap);
	if (pl->lst)
		evconnlistener_free(pl->lst);
	if (pl->dns)
		evdns_base_free(pl->dns, 0);
	SSL_CTX_free(pl->ctx);
	OPENSSL_cleanse(pl->key, sizeof pl->key);
	free(pl->cert_file);
	free(pl);
}

const char *
peerlink_address(const struct peerlink *pl)
{
	return pl ? pl->address : NULL;
}

const char *
peerlink_fingerprint(const struct peerlink *pl)
{
	return pl ? pl->fp : NULL;
}

void
peerlink_status(const struct peerlink *pl, cJSON *obj)
{
	cJSON *d = cJSON_AddObjectToObject(obj, "remoteAccess"), *links;
	size_t i;

	if (d == NULL)
		return;
	cJSON_AddBoolToObject(d, "listening", pl != NULL);
	if (pl == NULL)
		return;
	cJSON_AddStringToObject(d, "address", pl->address);
	cJSON_AddStringToObject(d, "certificate", pl->cert_file ? "admin" : "issued");
	cJSON_AddStringToObject(d, "fingerprint", pl->fp);
	cJSON_AddNumberToObject(d, "accepted", (double)pl->accepted);
	cJSON_AddNumberToObject(d, "refused", (double)pl->refused);
	cJSON_AddNumberToObject(d, "dials", (double)pl->dials);
	cJSON_AddNumberToObject(d, "dialFailures", (double)pl->dial_failures);
	cJSON_AddNumberToObject(d, "inbound", (double)pl->ninbound);
	links = cJSON_AddArrayToObject(d, "links");
	for (i = 0; links != NULL && i < sizeof pl->peers / sizeof pl->peers[0]; i++) {
		const struct pl_peer *p = &pl->peers[i];
		cJSON *l;

		if (!p->used || (l = cJSON_CreateObject()) == NULL)
			continue;
		cJSON_AddStringToObject(l, "nodeId", p->node);
		cJSON_AddStringToObject(l, "address", p->addr);
		cJSON_AddStringToObject(l, "state", p->conn && p->conn->up ? "up" : p->conn ?
		    "connecting" : "down");
		cJSON_AddNumberToObject(l, "retryInSeconds", p->conn || p->next_try <= time(NULL) ?
		    0 : (double)(p->next_try - time(NULL)));
		cJSON_AddItemToArray(links, l);
	}
}

void
peerlink_metrics(const struct peerlink *pl, struct evbuffer *out)
{
	size_t i, up = 0;

	evbuffer_add_printf(out, "# HELP shird_peer_connections_total node-to-node TLS "
	    "connections accepted, refused and dialed\n# TYPE shird_peer_connections_total counter\n");
	evbuffer_add_printf(out, "shird_peer_connections_total{result=\"accepted\"} %llu\n",
	    pl ? (unsigned long long)pl->accepted : 0ULL);
	evbuffer_add_printf(out, "shird_peer_connections_total{result=\"refused\"} %llu\n",
	    pl ? (unsigned long long)pl->refused : 0ULL);
	evbuffer_add_printf(out, "shird_peer_connections_total{result=\"dialed\"} %llu\n",
	    pl ? (unsigned long long)pl->dials : 0ULL);
	evbuffer_add_printf(out, "shird_peer_connections_total{result=\"dial_failed\"} %llu\n",
	    pl ? (unsigned long long)pl->dial_failures : 0ULL);
	for (i = 0; pl != NULL && i < sizeof pl->peers / sizeof pl->peers[0]; i++)
		up += pl->peers[i].used && pl->peers[i].conn && pl->peers[i].conn->up;
	evbuffer_add_printf(out, "# HELP shird_peer_links_up direct links to peers that are up\n"
	    "# TYPE shird_peer_links_up gauge\nshird_peer_links_up %zu\n", up);
}
