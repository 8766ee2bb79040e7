#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "relay/hcdial.h"
#include "proxy/proxy.h"
#include "node/admin/registration.h"
#include "common/random.h"
#include "ctl/relaycheck.h"
#include "relay/ws.h"
#include "relay/sc_proto.h"
#include <nghttp2/nghttp2.h>
#include <event2/buffer.h>

#define RELAYCHECK_HEAD_MAX (16 * 1024)

static const char *const relaycheck_names[] = {
	[RELAYCHECK_DNS] = "dns",
	[RELAYCHECK_PROXY] = "proxy",
	[RELAYCHECK_TCP] = "tcp",
	[RELAYCHECK_CONNECT] = "connect",
	[RELAYCHECK_TLS] = "tls",
	[RELAYCHECK_LISTEN] = "listen",
	[RELAYCHECK_UPGRADE] = "upgrade",
	[RELAYCHECK_SETTINGS] = "settings",
};

int
relaycheck_step_applies(const struct relaycheck_report *rep, int i)
{
	if (rep->selfcontained)
		return i != RELAYCHECK_LISTEN;
	return i != RELAYCHECK_UPGRADE && i != RELAYCHECK_SETTINGS;
}

const char *
relaycheck_step_name(enum relaycheck_step s)
{
	return (unsigned)s < RELAYCHECK_NSTEPS ? relaycheck_names[s] : "?";
}

const char *
relaycheck_result_name(enum relaycheck_result r)
{
	switch (r) {
	case RELAYCHECK_OK: return "ok";
	case RELAYCHECK_FAILED: return "FAILED";
	case RELAYCHECK_SKIPPED: return "skipped";
	default: return "not run";
	}
}

static void
rc_set(struct relaycheck_report *rep, int step, enum relaycheck_result r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
rc_set(struct relaycheck_report *rep, int step, enum relaycheck_result r, const char *fmt, ...)
{
	va_list ap;

	rep->res[step] = r;
	va_start(ap, fmt);
	vsnprintf(rep->detail[step], sizeof rep->detail[step], fmt, ap);
	va_end(ap);
	if (r == RELAYCHECK_FAILED && rep->broken < 0)
		rep->broken = step;
}

/* Resolves host; the first addresses as text in out. */
static int
rc_resolve(const char *host, int port, struct addrinfo **res, char *out, size_t outlen,
    char *why, size_t whylen)
{
	struct addrinfo hints, *ai;
	char portbuf[8], addr[INET6_ADDRSTRLEN];
	size_t l = 0;
	int e, n = 0;

	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_family = AF_UNSPEC;
	snprintf(portbuf, sizeof portbuf, "%d", port);
	e = getaddrinfo(host, portbuf, &hints, res);
	if (e != 0) {
		snprintf(why, whylen, "%s cannot be resolved: %s", host, gai_strerror(e));
		return -1;
	}
	out[0] = '\0';
	for (ai = *res; ai != NULL && n < 4; ai = ai->ai_next, n++) {
		const void *a = ai->ai_family == AF_INET6
		    ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
		    : (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;

		inet_ntop(ai->ai_family, a, addr, sizeof addr);
		l += (size_t)snprintf(out + l, l < outlen ? outlen - l : 0, "%s%s", n ? ", " : "",
		    addr);
	}
	return 0;
}

/* Splits "http://host:port" of a proxy decision. */
static int
rc_proxy_hostport(const char *url, char *host, size_t hl, int *port)
{
	int tls;

	if (registration_endpoint_hostport(url, host, hl, port, &tls) != 0)
		return -1;
	return 0;
}

/* --- the walk: the node's own dialer and WebSocket client on a private loop --- */

struct rc_walk {
	struct event_base *base;
	const struct relaycheck_target *t;
	struct relaycheck_report *rep;
	const char *host, *phost;
	int port, pport, proxied, tls;
	int raw_up;		/* TCP (and CONNECT) done */
	int done;
	struct hcdial *dial;	/* until its callback ran */
	struct ws *ws;
	/* self-contained: the upgraded connection and the node's HTTP/2 side */
	struct bufferevent *bev;
	nghttp2_session *h2;
	int upgraded;
};

static void
rc_walk_end(struct rc_walk *w)
{
	w->done = 1;
	event_base_loopbreak(w->base);
}

/* hcdial: the raw stream is up, TLS comes next */
static void
rc_on_raw(void *arg)
{
	struct rc_walk *w = arg;

	w->raw_up = 1;
	rc_set(w->rep, RELAYCHECK_TCP, RELAYCHECK_OK, "connected to %s %s:%d",
	    w->proxied ? "the proxy" : "the relay", w->proxied ? w->phost : w->host,
	    w->proxied ? w->pport : w->port);
	if (w->proxied)
		rc_set(w->rep, RELAYCHECK_CONNECT, RELAYCHECK_OK, "the proxy opened a tunnel to %s:%d "
		    "(200)", w->host, w->port);
	else
		rc_set(w->rep, RELAYCHECK_CONNECT, RELAYCHECK_SKIPPED, "direct: no proxy tunnel");
}

/* A failed dial, in the dialer's own words, under the step it broke. */
static void
rc_dial_failed(struct rc_walk *w, const struct shir_error *err)
{
	struct relaycheck_report *rep = w->rep;
	int step;

	switch (err->code) {
	case SHIR_EDNS:
		step = RELAYCHECK_DNS;
		break;
	case SHIR_ETLS:
		step = w->raw_up ? RELAYCHECK_TLS : w->proxied ? RELAYCHECK_CONNECT : RELAYCHECK_TCP;
		break;
	case SHIR_EPROXY:	/* the proxy answered CONNECT and refused */
	case SHIR_EAUTH:
		step = RELAYCHECK_CONNECT;
		break;
	default:	/* refused, timed out, I/O: before the stream was up */
		step = w->raw_up ? (w->tls ? RELAYCHECK_TLS : RELAYCHECK_LISTEN) : RELAYCHECK_TCP;
		break;
	}
	if (step == RELAYCHECK_CONNECT && rep->res[RELAYCHECK_TCP] == RELAYCHECK_NOT_RUN)
		/* the proxy answered CONNECT: TCP to it worked */
		rc_set(rep, RELAYCHECK_TCP, RELAYCHECK_OK, "connected to the proxy %s:%d", w->phost,
		    w->pport);
	if (step == RELAYCHECK_TCP)
		rc_set(rep, step, RELAYCHECK_FAILED, "cannot connect to %s %s:%d: %s",
		    w->proxied ? "the proxy" : "the relay", w->proxied ? w->phost : w->host,
		    w->proxied ? w->pport : w->port, err->msg);
	else
		rc_set(rep, step, RELAYCHECK_FAILED, "%s", err->msg);
}

static void
rc_ws_open(struct ws *ws, void *arg)
{
	struct rc_walk *w = arg;

	rc_set(w->rep, RELAYCHECK_LISTEN, RELAYCHECK_OK, "the relay accepted the node key (%s) as "
	    "a listener on %s (101 Switching Protocols)", w->t->key_name, w->t->hc);
	ws_close(ws, 1000, "shirctl check done");	/* leave politely */
}

static void
rc_ws_failed(struct ws *ws, int status, const char *reason, const struct shir_error *err,
    void *arg)
{
	struct rc_walk *w = arg;
	struct relaycheck_report *rep = w->rep;
	const struct relaycheck_target *t = w->t;

	reason = reason ? reason : "";
	if (status == 401)
		rc_set(rep, RELAYCHECK_LISTEN, RELAYCHECK_FAILED, "the relay refused the node key: "
		    "401 %s (the key %s is wrong, was rotated, or is not a Listen key; get a current "
		    "key and run `shirctl register-node KEY`)", reason, t->key_name);
	else if (status == 403)
		rc_set(rep, RELAYCHECK_LISTEN, RELAYCHECK_FAILED, "the relay refused the node key: "
		    "403 %s (the key %s may not listen on %s: a service (Send) key is not a node key)",
		    reason, t->key_name, t->hc);
	else if (status == 404)
		rc_set(rep, RELAYCHECK_LISTEN, RELAYCHECK_FAILED, "the relay does not know the hybrid "
		    "connection %s: 404 %s (the IR was deleted, or the key is for another relay)",
		    t->hc, reason);
	else if (status == 101)
		rc_set(rep, RELAYCHECK_LISTEN, RELAYCHECK_FAILED, "101 with a bad handshake (%s): "
		    "something between here and the relay rewrites it", err ? err->msg : reason);
	else if (status != 0)
		rc_set(rep, RELAYCHECK_LISTEN, RELAYCHECK_FAILED, "the relay answered %d %s instead "
		    "of 101 Switching Protocols", status, reason);
	else
		rc_set(rep, RELAYCHECK_LISTEN, RELAYCHECK_FAILED, "the endpoint does not answer the "
		    "listen request like a relay: %s", err ? err->msg : "no answer");
}

static void
rc_ws_close(struct ws *ws, int code, const char *reason, bool remote, void *arg)
{
	struct rc_walk *w = arg;

	if (w->rep->res[RELAYCHECK_LISTEN] == RELAYCHECK_NOT_RUN)
		rc_set(w->rep, RELAYCHECK_LISTEN, RELAYCHECK_FAILED, "the relay closed the "
		    "connection without answering the listen request");
	rc_walk_end(w);
}

static const struct ws_callbacks rc_ws_cbs = {
	.on_open = rc_ws_open,
	.on_handshake_failed = rc_ws_failed,
	.on_close = rc_ws_close,
};

/* --- a self-contained service endpoint: Upgrade: reverse, then SETTINGS ------ */

static int
rc_h2_frame(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
	struct rc_walk *w = arg;

	if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK) &&
	    w->rep->res[RELAYCHECK_SETTINGS] == RELAYCHECK_NOT_RUN) {
		rc_set(w->rep, RELAYCHECK_SETTINGS, RELAYCHECK_OK, "the relay speaks HTTP/2 as the "
		    "client of this connection (its SETTINGS arrived)");
		rc_walk_end(w);
	}
	return 0;
}

static void
rc_sc_read(struct bufferevent *bev, void *arg)
{
	struct rc_walk *w = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct relaycheck_report *rep = w->rep;

	if (!w->upgraded) {
		size_t len = evbuffer_get_length(in);
		size_t take = len < SC_PROTO_HEAD_MAX ? len : SC_PROTO_HEAD_MAX;
		struct sc_answer a;
		struct shir_error e;
		nghttp2_session_callbacks *cb;
		int n = sc_proto_parse_answer((const char *)evbuffer_pullup(in, (ssize_t)take), take,
		    &a, &e);

		if (n == 0)
			return;
		if (n < 0) {
			rc_set(rep, RELAYCHECK_UPGRADE, RELAYCHECK_FAILED, "%s (something between here "
			    "and the relay may not pass Upgrade: reverse)", e.msg);
			rc_walk_end(w);
			return;
		}
		if (a.status != 101) {
			rc_set(rep, RELAYCHECK_UPGRADE, RELAYCHECK_FAILED, "the relay answered %d %s%s",
			    a.status, a.reason, a.status == 401 || a.status == 403 ? " (the node key is "
			    "wrong, rotated, or not a Listen key)" : a.status == 404 ? " (no such "
			    "integration runtime here)" : "");
			rc_walk_end(w);
			return;
		}
		evbuffer_drain(in, (size_t)n);
		w->upgraded = 1;
		rc_set(rep, RELAYCHECK_UPGRADE, RELAYCHECK_OK, "101 Upgrade: reverse, Selected-ALPN: h2 "
		    "(connection %s; self-contained mode %s)", a.conn_id, a.self_contained ? "on" : "off");
		if (nghttp2_session_callbacks_new(&cb) != 0) {
			rc_set(rep, RELAYCHECK_SETTINGS, RELAYCHECK_FAILED, "out of memory");
			rc_walk_end(w);
			return;
		}
		nghttp2_session_callbacks_set_on_frame_recv_callback(cb, rc_h2_frame);
		if (nghttp2_session_server_new(&w->h2, cb, w) != 0)
			w->h2 = NULL;
		nghttp2_session_callbacks_del(cb);
		if (w->h2 == NULL || nghttp2_submit_settings(w->h2, NGHTTP2_FLAG_NONE, NULL, 0) != 0) {
			rc_set(rep, RELAYCHECK_SETTINGS, RELAYCHECK_FAILED, "out of memory");
			rc_walk_end(w);
			return;
		}
	}
	while (evbuffer_get_length(in) > 0 && !w->done) {
		struct evbuffer_iovec v;
		ssize_t n;

		evbuffer_peek(in, -1, NULL, &v, 1);
		n = nghttp2_session_mem_recv(w->h2, v.iov_base, v.iov_len);
		if (n < 0) {
			rc_set(rep, RELAYCHECK_SETTINGS, RELAYCHECK_FAILED, "the relay broke HTTP/2 after "
			    "the upgrade: %s", nghttp2_strerror((int)n));
			rc_walk_end(w);
			return;
		}
		evbuffer_drain(in, (size_t)n);
	}
	for (;;) {
		const uint8_t *d;
		ssize_t n = nghttp2_session_mem_send(w->h2, &d);

		if (n <= 0)
			break;
		bufferevent_write(bev, d, (size_t)n);
	}
}

static void
rc_sc_event(struct bufferevent *bev, short what, void *arg)
{
	struct rc_walk *w = arg;

	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)))
		return;
	rc_set(w->rep, w->upgraded ? RELAYCHECK_SETTINGS : RELAYCHECK_UPGRADE, RELAYCHECK_FAILED,
	    "the relay closed the connection %s", w->upgraded ? "before its HTTP/2 SETTINGS" :
	    "instead of answering the upgrade");
	rc_walk_end(w);
}

static void
rc_sc_start(struct rc_walk *w, struct bufferevent *bev)
{
	const struct relaycheck_target *t = w->t;
	struct hcdial_url u;
	struct shir_error e;
	struct sc_hello hl;
	char hosth[300], *token = NULL, *head;

	w->bev = bev;
	if (hcdial_parse_url(t->endpoint, 1, &u, &e) != 0 ||
	    hcdial_listen_token(t->endpoint, t->hc, t->key_name, t->key,
	    (int64_t)time(NULL) + 300, &token) != 0) {
		rc_set(w->rep, RELAYCHECK_UPGRADE, RELAYCHECK_FAILED,
		    "cannot build the upgrade request (the key's name or key is malformed)");
		rc_walk_end(w);
		return;
	}
	hcdial_host_header(&u, hosth, sizeof hosth);
	memset(&hl, 0, sizeof hl);
	hl.host = hosth;
	hl.hc = t->hc;
	hl.token = token;
	hl.node_name = "shirctl-diagnose";
	hl.node_id = "shirctl-diagnose";
	hl.version = PACKAGE_VERSION;
	hl.capacity = 1;
	head = sc_proto_request(&hl);
	OPENSSL_cleanse(token, strlen(token));
	free(token);
	if (head == NULL) {
		rc_set(w->rep, RELAYCHECK_UPGRADE, RELAYCHECK_FAILED, "cannot build the upgrade request");
		rc_walk_end(w);
		return;
	}
	bufferevent_setcb(bev, rc_sc_read, NULL, rc_sc_event, w);
	bufferevent_write(bev, head, strlen(head));
	OPENSSL_cleanse(head, strlen(head));
	free(head);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* hcdial is done: TLS verified (or plain ws://); the listen handshake next,
 * over the node's own WebSocket client, with the node's URL and token. */
static void
rc_dialed(void *arg, struct bufferevent *bev, const struct shir_error *err)
{
	struct rc_walk *w = arg;
	const struct relaycheck_target *t = w->t;
	struct ws_options opt;
	struct ws_client_request rq;
	struct hcdial_url u;
	struct shir_error e;
	char uuid[RANDOM_UUID_LEN + 1], id[64], url[2400], hosth[300], auth[1400], *token = NULL;
	const char *hdrs[2] = { auth, NULL };

	w->dial = NULL;	/* hcdial frees itself after this callback */
	if (bev == NULL) {
		rc_dial_failed(w, err);
		rc_walk_end(w);
		return;
	}
	if (w->tls)
		rc_set(w->rep, RELAYCHECK_TLS, RELAYCHECK_OK, "certificate of %s verified%s", w->host,
		    t->tls_pin ? " and matches the key's pin" : "");
	else
		rc_set(w->rep, RELAYCHECK_TLS, RELAYCHECK_SKIPPED, "ws:// endpoint: no TLS (loopback "
		    "test relays only)");
	if (t->hc == NULL || t->key == NULL) {
		rc_set(w->rep, t->selfcontained ? RELAYCHECK_UPGRADE : RELAYCHECK_LISTEN,
		    RELAYCHECK_SKIPPED, "no node key to try");
		bufferevent_free(bev);
		rc_walk_end(w);
		return;
	}
	if (t->selfcontained) {
		rc_sc_start(w, bev);
		return;
	}
	/* a listener id of its own, so the relay's log tells the check apart */
	if (random_uuid(uuid) != 0 || snprintf(id, sizeof id, "shirctl-check-%s", uuid) < 0 ||
	    hcdial_listen_url(t->endpoint, t->hc, id, url, sizeof url) != 0 ||
	    hcdial_parse_url(url, 1, &u, &e) != 0 ||
	    hcdial_listen_token(t->endpoint, t->hc, t->key_name, t->key,
	    (int64_t)time(NULL) + 300, &token) != 0) {
		rc_set(w->rep, RELAYCHECK_LISTEN, RELAYCHECK_FAILED,
		    "cannot build the listen request (the key's name or key is malformed)");
		bufferevent_free(bev);
		rc_walk_end(w);
		return;
	}
	snprintf(auth, sizeof auth, "ServiceBusAuthorization: %s", token);
	OPENSSL_cleanse(token, strlen(token));
	free(token);
	hcdial_host_header(&u, hosth, sizeof hosth);
	memset(&opt, 0, sizeof opt);
	opt.max_message = 128 * 1024;
	opt.handshake_timeout_ms = t->timeout_s * 1000;
	opt.close_timeout_ms = 2000;
	memset(&rq, 0, sizeof rq);
	rq.host = hosth;
	rq.target = u.target;
	rq.headers = hdrs;
	w->ws = ws_new_client(bev, &rq, &opt, &rc_ws_cbs, w);
	OPENSSL_cleanse(auth, sizeof auth);
	if (w->ws == NULL) {
		bufferevent_free(bev);
		rc_set(w->rep, RELAYCHECK_LISTEN, RELAYCHECK_FAILED, "out of memory");
		rc_walk_end(w);
	}
}

static void
rc_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct rc_walk *w = arg;
	int i;

	for (i = RELAYCHECK_TCP; i < RELAYCHECK_NSTEPS; i++)
		if (w->rep->res[i] == RELAYCHECK_NOT_RUN && relaycheck_step_applies(w->rep, i)) {
			rc_set(w->rep, i, RELAYCHECK_FAILED, "no answer within %d s", w->t->timeout_s);
			break;
		}
	rc_walk_end(w);
}

/* TCP, CONNECT, TLS and the listen handshake, exactly as shird makes them:
 * hcdial (proxy_dial through the proxy, TLS with verification and the pin)
 * and the WebSocket client, on a loop of our own. */
static void
rc_connect(struct rc_walk *w, const struct proxy_config *pc)
{
	const struct relaycheck_target *t = w->t;
	struct evdns_base *dns = NULL;
	struct event *deadline = NULL;
	struct hcdial_url u;
	struct hcdial_opts o;
	struct shir_error err;
	SSL_CTX *ssl = NULL;
	struct timeval tv = { t->timeout_s + 5, 0 };

	if (hcdial_parse_url(t->endpoint, 1, &u, &err) != 0) {
		rc_set(w->rep, RELAYCHECK_TCP, RELAYCHECK_FAILED, "%s", err.msg);
		return;
	}
	if (u.tls && hcdial_tls_ctx_new(t->ca_file, &ssl, &err) != 0) {
		rc_set(w->rep, RELAYCHECK_TLS, RELAYCHECK_FAILED, "%s", err.msg);
		return;
	}
	w->base = event_base_new();
	if (w->base != NULL)
		dns = evdns_base_new(w->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (w->base != NULL)
		deadline = evtimer_new(w->base, rc_deadline, w);
	if (w->base == NULL || dns == NULL || deadline == NULL) {
		rc_set(w->rep, RELAYCHECK_TCP, RELAYCHECK_FAILED, "cannot start an event loop");
		goto out;
	}
	memset(&o, 0, sizeof o);
	o.url = t->endpoint;
	o.u = &u;
	o.ssl_ctx = ssl;
	o.tls_pin = t->tls_pin;
	o.timeout_s = t->timeout_s;
	o.proxy = (void *)pc;	/* hcdial only reads it */
	o.on_raw = rc_on_raw;
	if ((w->dial = hcdial_start(w->base, dns, &o, rc_dialed, w)) == NULL) {
		rc_set(w->rep, RELAYCHECK_TCP, RELAYCHECK_FAILED, "out of memory");
		goto out;
	}
	evtimer_add(deadline, &tv);
	while (!w->done && event_base_loop(w->base, EVLOOP_ONCE) == 0)
		;
	if (w->dial != NULL)	/* the deadline came first */
		hcdial_cancel(w->dial);
	if (w->ws != NULL)
		ws_free(w->ws);
	if (w->h2 != NULL)
		nghttp2_session_del(w->h2);
	if (w->bev != NULL)
		bufferevent_free(w->bev);
out:
	if (deadline != NULL)
		event_free(deadline);
	if (dns != NULL)
		evdns_base_free(dns, 0);
	if (w->base != NULL)
		event_base_free(w->base);
	SSL_CTX_free(ssl);
}

void
relaycheck_run(const struct proxy_config *pc, const char *proxy_err,
    const struct relaycheck_target *t, struct relaycheck_report *rep)
{
	struct proxy_decision d;
	struct addrinfo *res = NULL;
	struct rc_walk w;
	char host[256], phost[256] = "", addrs[256], why[400], url[600];
	int port, pport = 0, tls, i, proxied = 0;

	memset(rep, 0, sizeof *rep);
	memset(&w, 0, sizeof w);
	rep->broken = -1;
	rep->selfcontained = t->selfcontained;
	if (registration_endpoint_hostport(t->endpoint, host, sizeof host, &port, &tls) != 0) {
		rc_set(rep, RELAYCHECK_DNS, RELAYCHECK_FAILED, "%s is not a wss:// URL", t->endpoint);
		goto rest;
	}
	/* The proxy decision first: it says whose name this node resolves. */
	snprintf(url, sizeof url, "%s://%s:%d/", tls ? "https" : "http", host, port);
	if (pc == NULL) {
		rc_set(rep, RELAYCHECK_PROXY, RELAYCHECK_FAILED, "the proxy configuration does not "
		    "load: %s", proxy_err ? proxy_err : "unknown error");
	} else if (proxy_decide(pc, url, &d) != 0) {
		rc_set(rep, RELAYCHECK_PROXY, RELAYCHECK_FAILED, "no decision for %s: %s", url,
		    d.reason);
	} else if (d.direct || d.nproxies == 0) {
		rc_set(rep, RELAYCHECK_PROXY, RELAYCHECK_OK, "DIRECT (%s)", d.reason);
	} else if (rc_proxy_hostport(d.proxies[0], phost, sizeof phost, &pport) != 0) {
		rc_set(rep, RELAYCHECK_PROXY, RELAYCHECK_FAILED, "the proxy %s is not a host:port",
		    d.proxies[0]);
	} else {
		proxied = 1;
		rc_set(rep, RELAYCHECK_PROXY, RELAYCHECK_OK, "through %s (%s)%s", d.proxies[0],
		    d.reason, d.nproxies > 1 ? "; only the first proxy is checked" : "");
	}
	if (rep->broken >= 0)
		goto rest;
	/* DNS: the relay's name, or the proxy's when the proxy resolves the relay. */
	if (rc_resolve(proxied ? phost : host, proxied ? pport : port, &res, addrs, sizeof addrs,
	    why, sizeof why) != 0) {
		rc_set(rep, RELAYCHECK_DNS, RELAYCHECK_FAILED, "%s%s", why,
		    proxied ? " (the proxy's own name)" : "");
		goto rest;
	}
	rc_set(rep, RELAYCHECK_DNS, RELAYCHECK_OK, "%s resolves to %s%s%s", proxied ? phost : host,
	    addrs, proxied ? "; the proxy resolves " : "", proxied ? host : "");
	w.t = t;
	w.rep = rep;
	w.host = host;
	w.port = port;
	w.tls = tls;
	w.proxied = proxied;
	w.phost = phost;
	w.pport = pport;
	rc_connect(&w, pc);
rest:
	for (i = 0; i < RELAYCHECK_NSTEPS; i++)
		if (rep->res[i] == RELAYCHECK_NOT_RUN)
			rc_set(rep, i, RELAYCHECK_NOT_RUN, "%s", rep->broken >= 0 ? "not reached" : "");
	if (res != NULL)
		freeaddrinfo(res);
}
