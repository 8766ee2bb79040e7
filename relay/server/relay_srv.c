/* relay_srv: see relay_srv.h and docs/relay.md (the state machines). This file:
 * the life cycle, accepting connections and their per-address budgets, and
 * the small helpers the other files share. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "relay/http1.h"
#include "common/log.h"
#include "common/random.h"
#include "relay/server/relay_srv.h"
#include "relay/ws.h"
#include "relay/server/relay_roster.h"
#include "relay/server/relay_srv_int.h"

/* ---- small helpers ------------------------------------------------------- */

void
rs_uuid(char out[37])
{
	/* ids are capabilities (a rendezvous address): the relay cannot run
	 * without them, so a failing CSPRNG is fatal here (random.h) */
	if (random_uuid(out) != 0) {
		log_error("relay", "event=fatal reason=%s", log_q("OpenSSL's random generator failed"));
		abort();
	}
}

unsigned
rs_rnd(unsigned n)
{
	unsigned r;

	if (n <= 1 || random_bytes(&r, sizeof r) != 0)
		return 0;
	return r % n;
}

void
rs_peer_of(struct bufferevent *bev, char *out, size_t len, int *port)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	evutil_socket_t fd = bufferevent_getfd(bev);

	snprintf(out, len, "?");
	if (port)
		*port = 0;
	if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
		return;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &a->sin_addr, out, (socklen_t)len);
		if (port)
			*port = ntohs(a->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &a->sin6_addr, out, (socklen_t)len);
		if (port)
			*port = ntohs(a->sin6_port);
	}
}

double
rs_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

void
rs_observe_rv(struct rsrv *s, double secs)
{
	int i;

	s->m.rv_count++;
	s->m.rv_sum += secs;
	for (i = 0; i < 8; i++)
		if (secs <= RV_BOUNDS[i])
			s->m.rv_buckets[i]++;
}

struct ws_options
rs_ws_opts(struct rsrv *s)
{
	struct ws_options o = { 0 };

	o.max_message = (size_t)s->conf->max_message;
	o.high_water = (size_t)s->conf->tunnel_buffer;
	o.low_water = (size_t)s->conf->tunnel_buffer / 4;
	o.max_head = (size_t)s->conf->max_header_bytes;
	o.handshake_timeout_ms = s->conf->handshake_timeout * 1000;
	return o;
}

static unsigned
addr_hash(const char *a)
{
	unsigned h = 2166136261u;

	while (*a)
		h = (h ^ (unsigned char)*a++) * 16777619u;
	return h % ADDR_BUCKETS;
}

static long *
kind_counter(struct rsrv *s, unsigned char k)
{
	switch (k) {
	case CK_HALF: return &s->nhalf;
	case CK_SENDER: return &s->nsender;
	case CK_NODE: return &s->nnode;
	default: return NULL;
	}
}

/* Moves a connection to another kind (its counters follow). */
void
conn_set_kind(struct rsrv *s, struct connrec *r, enum ckind k)
{
	long *c;

	if (r == NULL || r->kind == k)
		return;
	if ((c = kind_counter(s, r->kind)) != NULL)
		(*c)--;
	if (r->kind == CK_HALF)
		r->a->half--;
	r->kind = (unsigned char)k;
	if ((c = kind_counter(s, k)) != NULL)
		(*c)++;
	if (k == CK_HALF)
		r->a->half++;
}

enum ckind
conn_kind(const struct connrec *r)
{
	return r ? (enum ckind)r->kind : CK_NONE;
}

struct connrec *
rs_ws_conn(struct ws *ws)
{
	return ws ? ws_tag(ws) : NULL;
}

/* Connections senders may hold: max_connections less the reserve kept for
 * listeners and rendezvous. */
long
sender_budget(const struct rsrv *s)
{
	long m = s->conf->max_connections;

	return m - m * s->conf->reserved_percent / 100;
}

/* A sender's connection is known (its head was parsed): false when senders
 * already hold their whole budget (the caller answers 503). */
bool
conn_sender_ok(struct rsrv *s, struct connrec *r)
{
	if (r == NULL || r->kind == CK_SENDER)
		return true;
	if (s->nsender >= sender_budget(s)) {
		s->m.senders_refused++;
		return false;
	}
	conn_set_kind(s, r, CK_SENDER);
	return true;
}

/* Registers a connection accepted from addr. NULL when that address holds
 * its share already (*why names the limit) or memory ran out. */
static struct connrec *
conn_admit(struct rsrv *s, const char *addr, const char **why)
{
	unsigned h = addr_hash(addr);
	struct addrrec *a;
	struct connrec *r;

	for (a = s->addrs[h]; a != NULL; a = a->next)
		if (strcmp(a->addr, addr) == 0)
			break;
	if (a != NULL && a->open >= s->conf->max_per_address) {
		*why = "limits.max_connections_per_address";
		return NULL;
	}
	if (a != NULL && a->half >= s->conf->max_handshakes_per_address) {
		*why = "limits.max_handshakes_per_address";
		return NULL;
	}
	*why = "memory";
	if ((r = calloc(1, sizeof *r)) == NULL)
		return NULL;
	if (a == NULL) {
		if ((a = calloc(1, sizeof *a)) == NULL) {
			free(r);
			return NULL;
		}
		snprintf(a->addr, sizeof a->addr, "%s", addr);
		a->next = s->addrs[h];
		s->addrs[h] = a;
	}
	a->open++;
	r->a = a;
	r->next = s->conns;
	if (s->conns)
		s->conns->prev = r;
	s->conns = r;
	conn_set_kind(s, r, CK_HALF);
	return r;
}

static void
conn_forget(struct rsrv *s, struct connrec *r)
{
	struct addrrec **pp, *a;

	if (r == NULL)
		return;
	conn_set_kind(s, r, CK_NONE);
	if (r->prev)
		r->prev->next = r->next;
	else
		s->conns = r->next;
	if (r->next)
		r->next->prev = r->prev;
	a = r->a;
	free(r);
	if (--a->open > 0)
		return;
	for (pp = &s->addrs[addr_hash(a->addr)]; *pp != NULL; pp = &(*pp)->next)
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	free(a);
}

void
conn_gone(struct rsrv *s, struct connrec *r)
{
	conn_forget(s, r);
	s->nconns--;
	if (s->shutting_down && s->nconns <= 0)
		event_base_loopexit(s->base, NULL);
}

void
rs_ws_free(struct rsrv *s, struct ws *ws)
{
	struct connrec *r;

	if (ws == NULL)
		return;
	r = rs_ws_conn(ws);
	ws_free(ws);
	conn_gone(s, r);
}

char *
rs_error_json(const char *code, const char *msg)
{
	cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
	char *s;

	cJSON_AddStringToObject(e, "code", code);
	cJSON_AddStringToObject(e, "message", msg);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

const char *
rs_error_code(int status)
{
	switch (status) {
	case 400: return "BadRequest";
	case 401: return "TokenMissingOrInvalid";
	case 403: return "Forbidden";
	case 404: return "EndpointNotFound";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 414: return "URITooLong";
	case 429: return "TooManyRequests";
	case 502: return "BadGateway";
	case 503: return "ServiceUnavailable";
	case 504: return "GatewayTimeout";
	default: return "Error";
	}
}

/* ---- accepting connections ------------------------------------------------------ */

static void
new_conn(struct rsrv *s, struct bufferevent *bev, struct connrec *conn)
{
	struct hconn *h = calloc(1, sizeof *h);
	struct http1_limits lim = { (size_t)s->conf->max_header_bytes, 100 };
	struct http1_callbacks cb = { h_on_head, h_on_body, h_on_complete };
	struct timeval tv = { s->conf->handshake_timeout, 0 };

	s->nconns++;
	s->m.conns_total++;
	if (h == NULL || (h->hp = http1_new(HTTP1_REQUEST, &lim, &cb, h)) == NULL ||
	    (h->body = evbuffer_new()) == NULL ||
	    (h->deadline = evtimer_new(s->base, h_deadline, h)) == NULL ||
	    (h->reap = event_new(s->base, -1, 0, hconn_reap, h)) == NULL ||
	    (h->resume = event_new(s->base, -1, 0, h_resume_cb, h)) == NULL ||
	    (h->head_timer = evtimer_new(s->base, h_head_expired, h)) == NULL) {
		if (h)
			hconn_free_parts(h);
		bufferevent_free(bev);
		conn_gone(s, conn);
		return;
	}
	h->s = s;
	h->bev = bev;
	h->conn = conn;
	clock_gettime(CLOCK_MONOTONIC, &h->since);
	rs_peer_of(bev, h->peer, sizeof h->peer, &h->peer_port);
	h->next = s->hconns;
	if (s->hconns)
		s->hconns->prev = h;
	s->hconns = h;
	bufferevent_setcb(bev, h_read, h_write, h_event, h);
	/* a deadline from accept (TLS handshake included) to the whole head,
	 * not a timeout that each trickled byte restarts */
	evtimer_add(h->head_timer, &tv);
	/* never more than tunnel_buffer of unread input (bytes pipelined behind
	 * a pending request, a body while the listener is slow): libevent stops
	 * reading above it and resumes once h_feed has drained some */
	bufferevent_setwatermark(bev, EV_READ, 0, (size_t)s->conf->tunnel_buffer);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* The oldest connection still sending its first head: under pressure it is
 * the one closed to make room (a listener's or sender's head takes a round
 * trip; a trickled one takes as long as the attacker likes). */
static struct hconn *
oldest_half_open(struct rsrv *s)
{
	struct hconn *h, *best = NULL;

	for (h = s->hconns; h != NULL; h = h->next)
		if (!h->dead && h->bev != NULL && conn_kind(h->conn) == CK_HALF)
			best = h;	/* the list is newest first */
	return best;
}

struct rs_accept_ctx {
	struct rsrv *s;
	bool tls;
};

static void
accept_cb2(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	struct rs_accept_ctx *c = arg;
	struct rsrv *s = c->s;
	struct bufferevent *bev;
	int one = 1;

	const char *why;
	char addr[64] = "?";
	struct connrec *conn;

	/* connections evicted in this same burst of accepts are closed by the
	 * next reap: they no longer take room */
	if (s->shutting_down || s->nconns - s->nevicting >= s->conf->max_connections) {
		s->m.conns_rejected++;
		evutil_closesocket(fd);
		return;
	}
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, addr, sizeof addr);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, addr, sizeof addr);
	if ((conn = conn_admit(s, addr, &why)) == NULL) {
		s->m.conns_rejected++;
		s->m.conns_per_address++;
		log_debug("relay", "event=conn.refused peer=%s limit=%s", addr, why);
		evutil_closesocket(fd);
		return;
	}
	if (s->nhalf + s->nsender > sender_budget(s)) {
		/* half-open connections and senders may not eat into the reserve
		 * kept for listeners and rendezvous: the oldest head still being
		 * sent makes room (it is the kind a trickling client holds) */
		struct hconn *old = oldest_half_open(s);

		if (old != NULL) {
			s->m.conns_evicted++;
			log_info("relay", "event=conn.evicted peer=%s why=%s", old->peer,
			    log_q("the relay is full and this connection had not sent its head yet"));
			conn_set_kind(s, old->conn, CK_OTHER);
			old->evicted = true;
			s->nevicting++;
			hconn_close(old);
		}
	}
	setsockopt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof one);
	if (c->tls) {
		SSL *ssl = SSL_new(s->ssl);

		if (ssl == NULL) {
			conn_forget(s, conn);
			evutil_closesocket(fd);
			return;
		}
		bev = bufferevent_openssl_socket_new(s->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (bev != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	} else {
		bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	}
	if (bev == NULL) {
		conn_forget(s, conn);
		evutil_closesocket(fd);
		return;
	}
	/* fewer, larger reads and writes on busy tunnels */
	bufferevent_set_max_single_read(bev, 128 * 1024);
	bufferevent_set_max_single_write(bev, 128 * 1024);
	new_conn(s, bev, conn);
}

/* ---- life cycle -------------------------------------------------------------------- */

static int
parse_hostport(const char *s, char *host, size_t hl, int *port)
{
	const char *c;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (rb == NULL || rb[1] != ':')
			return -1;
		snprintf(host, hl, "%.*s", (int)(rb - s - 1), s + 1);
		c = rb + 1;
	} else {
		c = strrchr(s, ':');
		if (c == NULL)
			return -1;
		snprintf(host, hl, "%.*s", (int)(c - s), s);
	}
	*port = atoi(c + 1);
	return *port > 0 && *port < 65536 ? 0 : -1;
}

static bool
is_loopback(const char *host)
{
	return strcmp(host, "127.0.0.1") == 0 || strncmp(host, "127.", 4) == 0 ||
	    strcmp(host, "::1") == 0 || strcasecmp(host, "localhost") == 0;
}

static int
bind_one(struct rsrv *s, const char *spec, bool tls, struct shir_error *e)
{
	char host[256];
	int port;
	struct evutil_addrinfo hints = { 0 }, *ai = NULL;
	char ps[16];
	struct rs_listen_sock *ls;
	struct rs_accept_ctx *c;

	if (parse_hostport(spec, host, sizeof host, &port) != 0)	/* rsrv_check_conf said why */
		return shir_error_set(e, SHIR_ECONFIG, "%s is not host:port", spec);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = EVUTIL_AI_PASSIVE;
	snprintf(ps, sizeof ps, "%d", port);
	if (evutil_getaddrinfo(host, ps, &hints, &ai) != 0 || ai == NULL)
		return shir_error_set(e, SHIR_ECONFIG, "cannot resolve %s", spec);
	ls = calloc(1, sizeof *ls);
	c = calloc(1, sizeof *c);
	if (ls == NULL || c == NULL) {
		free(ls);
		free(c);
		evutil_freeaddrinfo(ai);
		return shir_error_set(e, SHIR_ENOMEM, "out of memory");
	}
	c->s = s;
	c->tls = tls;
	ls->l = evconnlistener_new_bind(s->base, accept_cb2, c,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 1024, ai->ai_addr,
	    (int)ai->ai_addrlen);
	evutil_freeaddrinfo(ai);
	if (ls->l == NULL) {
		free(ls);
		free(c);
		return shir_error_set(e, SHIR_EIO, "cannot listen on %s: %s", spec, strerror(errno));
	}
	ls->tls = tls;
	ls->ctx = c;
	snprintf(ls->addr, sizeof ls->addr, "%s", spec);
	ls->next = s->lsocks;
	s->lsocks = ls;
	log_info("relay", "event=listening addr=%s tls=%d", spec, tls);
	return 0;
}

static void
set_public_base(struct rsrv *s)
{
	char host[256];
	int port;

	if (*s->conf->public_url) {
		size_t l;

		snprintf(s->public_base, sizeof s->public_base, "%s", s->conf->public_url);
		l = strlen(s->public_base);
		while (l > 0 && s->public_base[l - 1] == '/')
			s->public_base[--l] = '\0';
	} else if (*s->conf->listen_tls && parse_hostport(s->conf->listen_tls, host, sizeof host, &port) == 0) {
		snprintf(s->public_base, sizeof s->public_base, "wss://%s:%d",
		    strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 ? "localhost" : host, port);
	} else if (parse_hostport(s->conf->listen, host, sizeof host, &port) == 0) {
		snprintf(s->public_base, sizeof s->public_base, "ws://%s%s%s:%d", strchr(host, ':') ? "[" : "",
		    host, strchr(host, ':') ? "]" : "", port);
	}
}

static void
state_poll(evutil_socket_t fd, short w, void *arg)
{
	struct rsrv *s = arg;
	struct stat st;
	struct shir_error e;

	ws_trim_idle();	/* idle WebSockets free their wslay contexts: hand the pages back */
	if (stat(s->conf->state_file, &st) != 0)
		memset(&st, 0, sizeof st);
	if (s->state_seen && st.st_mtim.tv_sec == s->state_st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == s->state_st.st_mtim.tv_nsec && st.st_ino == s->state_st.st_ino &&
	    st.st_size == s->state_st.st_size)
		return;
	s->state_st = st;
	if (!s->state_seen) {
		s->state_seen = true;
		return;
	}
	if (ent_load_state(s, &e) != 0)
		log_warn("relay", "event=state.reload status=failed error=%s", log_q(e.msg));
	else
		log_info("relay", "event=state.reload status=done trigger=file");
}

struct rsrv *
rsrv_new(struct event_base *base, struct relay_conf *conf, const char *conf_path,
    struct shir_error *e)
{
	struct rsrv *s = calloc(1, sizeof *s);

	if (s == NULL || (s->conf_path = strdup(conf_path)) == NULL) {
		free(s);
		relay_conf_free(conf);
		shir_error_set(e, SHIR_ENOMEM, "out of memory");
		return NULL;
	}
	s->base = base;
	s->conf = conf;
	s->started = time(NULL);
	set_public_base(s);
	return s;
}

/* The server SSL_CTX from tls_cert (chain file) and tls_key: TLS 1.2 at
 * least, key checked against the certificate. Used at start and on SIGHUP.
 * An SSL made from a context holds a reference to it (SSL_new up-refs it,
 * SSL_free drops it), so the caller may free a replaced context while
 * connections made from it are still open. */
static int
tls_ctx_build(const struct relay_conf *c, SSL_CTX **out, struct shir_error *e)
{
	SSL_CTX *ctx = NULL;
	char why[256] = "";
	unsigned long err;
	int rc = 0, n = 0;

	*out = NULL;
	ERR_clear_error();
	if (!*c->tls_cert || !*c->tls_key) {
		rc = shir_error_set(e, SHIR_ECONFIG, "TLS needs both tls_cert and tls_key in [relay]");
		goto out;
	}
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, c->tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		/* OpenSSL's queue, oldest first ("DECODER routines: unsupported,
		 * SSL routines: PEM lib"); reasons only, never key material */
		const char *data;
		int flags;

		while ((err = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0 && n < 3) {
			const char *lib = ERR_lib_error_string(err), *r = ERR_reason_error_string(err);
			size_t l = strlen(why);

			if (ERR_SYSTEM_ERROR(err)) {
				/* "calling fopen(/etc/x.pem, r): No such file or directory" */
				snprintf(why + l, sizeof why - l, "%s%s%s%s", n++ ? ", " : "",
				    data && (flags & ERR_TXT_STRING) ? data : "",
				    data && (flags & ERR_TXT_STRING) ? ": " : "", strerror(ERR_GET_REASON(err)));
				continue;
			}
			if (r == NULL)
				continue;
			snprintf(why + l, sizeof why - l, "%s%s%s%s", n++ ? ", " : "", lib ? lib : "",
			    lib ? ": " : "", r);
		}
		rc = shir_error_set(e, SHIR_ETLS, "cannot load the TLS certificate %s with the key %s (%s); "
		    "check that both are PEM files readable by the relay and that the key belongs to the "
		    "certificate", c->tls_cert, c->tls_key, n ? why : "unknown OpenSSL error");
		goto out;
	}
	*out = ctx;
	ctx = NULL;
out:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return rc;
}

/* Logs "<what> subject=... not_after=..." for the context's certificate. */
static void
tls_ctx_log(SSL_CTX *ctx, const char *what)
{
	X509 *x = SSL_CTX_get0_certificate(ctx);
	BIO *b = BIO_new(BIO_s_mem());
	char subj[512] = "?", na[32] = "?";
	const ASN1_TIME *t;
	struct tm tm;
	int n;

	if (x != NULL && b != NULL &&
	    X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0 &&
	    (n = BIO_read(b, subj, (int)sizeof subj - 1)) >= 0)
		subj[n] = '\0';
	if (x != NULL && (t = X509_get0_notAfter(x)) != NULL && ASN1_TIME_to_tm(t, &tm) == 1)
		strftime(na, sizeof na, "%Y-%m-%dT%H:%M:%SZ", &tm);
	BIO_free(b);
	ERR_clear_error();
	if (x != NULL && X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
		log_warn("relay", "%s subject=%s not_after=%s expired=1", what, log_q(subj), na);
	else
		log_info("relay", "%s subject=%s not_after=%s", what, log_q(subj), na);
}

int
rsrv_check_conf(const struct relay_conf *c, struct shir_error *e)
{
	char host[256];
	int port;
	SSL_CTX *ctx = NULL;

	if (*c->listen_tls && parse_hostport(c->listen_tls, host, sizeof host, &port) != 0)
		return shir_error_set(e, SHIR_ECONFIG, "listen_tls = %s is not host:port", c->listen_tls);
	if (*c->listen) {
		if (parse_hostport(c->listen, host, sizeof host, &port) != 0)
			return shir_error_set(e, SHIR_ECONFIG, "listen = %s is not host:port", c->listen);
		if (!is_loopback(host) && !c->allow_plain_nonloopback)
			return shir_error_set(e, SHIR_ECONFIG,
			    "plain (non-TLS) listen address %s is not loopback: use listen_tls, or set "
			    "allow_plain_nonloopback = true if a TLS proxy fronts the relay", c->listen);
	}
	if (*c->admin && parse_hostport(c->admin, host, sizeof host, &port) != 0)
		return shir_error_set(e, SHIR_ECONFIG, "admin = %s is not host:port", c->admin);
	if (*c->listen_tls) {	/* the certificate and key load and match */
		if (tls_ctx_build(c, &ctx, e) != 0)
			return e->code ? e->code : SHIR_ECONFIG;
		SSL_CTX_free(ctx);
	}
	return 0;
}

int
rsrv_start(struct rsrv *s, struct shir_error *e)
{
	int rc;
	struct timeval one = { 1, 0 };

	if ((rc = rsrv_check_conf(s->conf, e)) != 0)
		return rc;
	if ((rc = ent_load_state(s, e)) != 0)
		return rc;
	if ((rc = rjobs_start(s, e)) != 0)
		return rc;
	state_poll(-1, 0, s);
	if (*s->conf->listen_tls) {
		if ((rc = tls_ctx_build(s->conf, &s->ssl, e)) != 0)
			return rc;
		tls_ctx_log(s->ssl, "event=tls.loaded");
		if ((rc = bind_one(s, s->conf->listen_tls, true, e)) != 0)
			return rc;
	}
	if (*s->conf->listen && (rc = bind_one(s, s->conf->listen, false, e)) != 0)
		return rc;
	if (*s->conf->admin) {
		char host[256];
		int port;

		if (parse_hostport(s->conf->admin, host, sizeof host, &port) != 0)
			return shir_error_set(e, SHIR_ECONFIG, "admin = %s is not host:port", s->conf->admin);
		s->admin = evhttp_new(s->base);
		if (s->admin == NULL)
			return shir_error_set(e, SHIR_ENOMEM, "out of memory");
		errno = 0;
		if (evhttp_bind_socket(s->admin, host, (ev_uint16_t)port) != 0)
			return shir_error_set(e, SHIR_EIO, "cannot listen on the admin address %s: %s "
			    "(another process holds it, or the address is not this host's; change "
			    "admin in the configuration file)", s->conf->admin,
			    errno ? strerror(errno) : "bind failed");
		evhttp_set_allowed_methods(s->admin, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
		evhttp_set_cb(s->admin, "/metrics", admin_metrics, s);
		evhttp_set_cb(s->admin, "/status", admin_status, s);
		evhttp_set_gencb(s->admin, rjobs_admin, s);	/* /jobs... */
		log_info("relay", "event=listening addr=%s admin=1", s->conf->admin);
	}
	s->state_poll = event_new(s->base, -1, EV_PERSIST, state_poll, s);
	if (s->state_poll != NULL)
		evtimer_add(s->state_poll, &one);
	log_info("relay", "event=ready public_url=%s", s->public_base);
	return 0;
}

int
rsrv_start_unbound(struct rsrv *s, struct shir_error *e)
{
	return ent_load_state(s, e);
}

void
rsrv_adopt(struct rsrv *s, struct bufferevent *bev)
{
	new_conn(s, bev, NULL);
}

long
rsrv_connections(const struct rsrv *s)
{
	return s->nconns;
}

/* Replaces a string of a relay_conf with a copy of v: 0 or SHIR_ENOMEM. */
static int
conf_str_set(char **slot, const char *v)
{
	char *d = strdup(v);

	if (d == NULL)
		return SHIR_ENOMEM;
	free(*slot);
	*slot = d;
	return 0;
}

/* A setting read only at start: a changed value is logged and replaced by
 * the running one. Returns 0 or SHIR_ENOMEM. */
static int
keep_running(char **slot, const char *running, const char *name)
{
	if (strcmp(*slot, running) == 0)
		return 0;
	log_warn("relay", "event=reload.restart_needed setting=%s running=%s configured=%s "
	    "msg=\"%s changed in the configuration file; restart shir-relay to apply it (the running "
	    "value stays)\"", name, log_q(running), log_q(*slot), name);
	return conf_str_set(slot, running);
}

/* SIGHUP with TLS: a new SSL_CTX from the re-read tls_cert/tls_key for new
 * connections; open ones keep theirs. On failure the old context and the
 * running file names stay. Returns 0, or SHIR_ENOMEM when n cannot be set. */
static int
tls_reload(struct rsrv *s, struct relay_conf *n)
{
	struct shir_error e;
	SSL_CTX *ctx = NULL;

	if (tls_ctx_build(n, &ctx, &e) != 0) {
		log_warn("relay", "event=reload.tls status=failed cert_file=%s key_file=%s error=%s "
		    "msg=\"new connections keep getting the certificate loaded before\"",
		    log_q(n->tls_cert), log_q(n->tls_key), log_q(e.msg));
		if (conf_str_set(&n->tls_cert, s->conf->tls_cert) != 0 ||
		    conf_str_set(&n->tls_key, s->conf->tls_key) != 0)
			return SHIR_ENOMEM;
		return 0;
	}
	SSL_CTX_free(s->ssl);	/* open connections hold their own reference */
	s->ssl = ctx;
	tls_ctx_log(s->ssl, "event=reload.tls status=done");
	return 0;
}

void
rsrv_reload(struct rsrv *s)
{
	struct shir_error e;
	struct relay_conf *n = relay_conf_load(s->conf_path, &e);
	enum log_level lvl;

	if (n == NULL) {
		log_warn("relay", "event=reload status=failed error=%s", log_q(e.msg));
		return;
	}
	/* addresses and the state file need a restart: say so, keep the running ones */
	if (keep_running(&n->listen, s->conf->listen, "listen") != 0 ||
	    keep_running(&n->listen_tls, s->conf->listen_tls, "listen_tls") != 0 ||
	    keep_running(&n->admin, s->conf->admin, "admin") != 0 ||
	    keep_running(&n->state_file, s->conf->state_file, "state_file") != 0) {
		relay_conf_free(n);
		log_warn("relay", "event=reload status=failed error=\"out of memory\"");
		return;
	}
	if (s->ssl != NULL && tls_reload(s, n) != 0) {
		relay_conf_free(n);
		log_warn("relay", "event=reload status=failed error=\"out of memory\"");
		return;
	}
	relay_conf_free(s->conf);
	s->conf = n;
	set_public_base(s);
	if (log_level_parse(n->log_level, &lvl) == 0)
		log_set_level(lvl);
	if (ent_load_state(s, &e) != 0) {
		log_warn("relay", "event=reload status=failed error=%s", log_q(e.msg));
		return;
	}
	log_info("relay", "event=reload status=done");
}

static void
shutdown_timeout(evutil_socket_t fd, short w, void *arg)
{
	struct rsrv *s = arg;

	log_info("relay", "event=shutdown.timeout connections=%ld", s->nconns);
	event_base_loopexit(s->base, NULL);
}

void
rsrv_shutdown(struct rsrv *s)
{
	struct rs_listen_sock *ls;
	struct ent *e;
	struct tunnel *t;
	struct hconn *h, *hn;
	struct timeval tv = { 3, 0 };

	if (s->shutting_down)
		return;
	s->shutting_down = true;
	log_info("relay", "event=shutdown.begin connections=%ld", s->nconns);
	for (ls = s->lsocks; ls; ls = ls->next)
		evconnlistener_disable(ls->l);
	for (e = s->ents; e; e = e->next) {
		struct ctl *c;

		for (c = e->ctls; c != NULL; c = c->next)
			ctl_close(c, WS_CLOSE_GOING_AWAY, "relay shutting down");
	}
	relay_sc_shutdown(s);
	for (t = s->tunnels; t; t = t->next) {
		if (t->snd && !t->snd_closed)
			ws_close(t->snd, WS_CLOSE_GOING_AWAY, "relay shutting down");
		if (t->lst && !t->lst_closed)
			ws_close(t->lst, WS_CLOSE_GOING_AWAY, "relay shutting down");
	}
	rjobs_shutdown(s);
	for (h = s->hconns; h; h = hn) {
		hn = h->next;
		if (h->st == H_HEAD)
			hconn_close(h);
	}
	s->shutdown_timer = evtimer_new(s->base, shutdown_timeout, s);
	if (s->shutdown_timer)
		evtimer_add(s->shutdown_timer, &tv);
	if (s->nconns <= 0)
		event_base_loopexit(s->base, NULL);
}

void
rsrv_free(struct rsrv *s)
{
	struct rs_listen_sock *ls;
	struct ent *e;

	if (s == NULL)
		return;
	relay_roster_free();
	tokcache_clear(&s->tokens);
	while ((ls = s->lsocks) != NULL) {
		s->lsocks = ls->next;
		evconnlistener_free(ls->l);
		free(ls->ctx);
		free(ls);
	}
	if (s->admin)
		evhttp_free(s->admin);
	if (s->state_poll)
		event_free(s->state_poll);
	if (s->shutdown_timer)
		event_free(s->shutdown_timer);
	while (s->hconns != NULL)
		hconn_reap(-1, 0, s->hconns);
	rjobs_free(s);
	while (s->tunnels != NULL)
		tunnel_reap(-1, 0, s->tunnels);
	while ((e = s->ents) != NULL || (e = s->graveyard) != NULL) {
		if (e == s->ents)
			s->ents = e->next;
		else
			s->graveyard = e->next;
		relay_sc_free_ent(e);
		while (e->ctls != NULL) {
			struct ctl *c = e->ctls;

			ctl_unlink(c);
			if (c->expiry_timer)
				event_free(c->expiry_timer);
			if (c->probe)
				event_free(c->probe);
			ws_free(c->ws);
			free(c);
		}
		ent_free(e);
	}
	while (s->pends)
		pend_del(s, s->pends);
	if (s->ssl)
		SSL_CTX_free(s->ssl);
	{
		size_t i;
		struct addrrec *a;

		struct connrec *r;

		while ((r = s->conns) != NULL) {
			s->conns = r->next;
			free(r);
		}
		for (i = 0; i < ADDR_BUCKETS; i++)
			while ((a = s->addrs[i]) != NULL) {
				s->addrs[i] = a->next;
				free(a);
			}
	}
	relay_conf_free(s->conf);
	free(s->conf_path);
	free(s);
}
