/* relay_srv: see relay_srv.h and docs/relay.md (the state machines). */
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

#include "relay/hc_msg.h"
#include "relay/http1.h"
#include "common/log.h"
#include "common/random.h"
#include "relay/server/relay_srv.h"
#include "relay/server/relay_state.h"
#include "relay/sas.h"
#include "relay/ws.h"

#define ID_MAX 160
#define TARGET_MAX 8192	/* longer request targets get 414 */
#define FAIL_SLOTS 256

struct rsrv;
struct ctl;
struct hconn;
struct tunnel;

/* A hybrid connection as the running relay sees it. */
struct ent {
	struct ent *next;
	char *name;
	struct sas_rule *rules;
	size_t nrules;
	bool anonymous;
	bool deleted;
	struct ctl *ctls;	/* control channels (listeners) */
	int nctl;
	uint64_t requests, accepts;
};

struct ctl {
	struct ctl *next, *prev;
	struct rsrv *s;
	struct ent *ent;
	struct ws *ws;
	bool cancel_ok;		/* the listener asked for {"cancel":...} messages */
	char id[ID_MAX];
	char peer[64];
	int64_t expiry;
	time_t since;
	struct event *expiry_timer;
	struct event *probe;	/* another listen presented our id: a ping must come back */
	bool probing;
	struct hconn *body_for;	/* a response body is expected for it */
	bool discard_body;	/* the body's sender went away: drop the rest */
	bool closing;
};

enum pkind { P_ACCEPT, P_REQUEST };

struct pend {
	struct pend *next, *prev;
	enum pkind kind;
	char id[ID_MAX];
	struct tunnel *t;
	struct hconn *h;
	struct timespec created;
};

struct tunnel {
	struct tunnel *next, *prev;
	struct rsrv *s;
	struct ent *ent;
	struct ws *snd, *lst;
	struct pend *p;
	struct event *timer;
	bool open;
	bool snd_closed, lst_closed;
	char id[ID_MAX];
	struct event *reap;
};

enum hstate { H_HEAD = 0, H_BODY, H_WAIT, H_RESP, H_CLOSING };

struct hconn {
	struct hconn *next, *prev;
	struct rsrv *s;
	struct bufferevent *bev;
	struct http1 *hp;
	char peer[64];
	int peer_port;
	enum hstate st;
	bool upgrade;		/* the head is an upgrade: hand the connection to ws */
	bool auth_header_used;	/* Authorization carried the token: do not forward it */
	struct http1_msg *req;
	struct ent *ent;
	struct ctl *ctl;	/* listener chosen for the current request */
	char req_id[ID_MAX];
	char target[TARGET_MAX + 1];
	struct evbuffer *body;
	bool body_done;
	bool big;		/* too large or chunked-and-growing: use the rendezvous */
	bool sent;		/* the request (or its address) went to the listener */
	bool on_rv;		/* the full request is being sent on the rendezvous */
	bool rv_streaming;	/* body fragments are going out on rv */
	struct ws *rv;		/* request rendezvous */
	char rv_id[ID_MAX];
	struct pend *rv_pend;
	struct ent *rv_ent;	/* the hybrid connection rv_id was issued for (entities
				   are freed only in rsrv_free, deleted ones wait in the
				   graveyard: the address is never reused while running) */
	struct ws *resp_src;	/* response source paused while our output is above tunnel_buffer */
	bool rv_discard;	/* drop the body of an ignored response on the rendezvous */
	bool resp_started, resp_chunked, resp_nobody;
	bool head_req;
	bool keep_alive;
	bool paused;
	struct event *deadline;
	struct event *reap;
	struct event *resume;	/* zero-delay: read buffered input after a pause */
	struct event *head_timer;	/* deadline for a whole head (handshake_timeout, then
				   idle_timeout between keep-alive requests) */
	bool head_seen;		/* bytes of the current head arrived */
	bool evicted;		/* closed to make room (counted in nevicting until reaped) */
	struct connrec *conn;	/* NULL for adopted connections (fuzzing) */
	struct timespec since;
	bool peer_eof;		/* the sender half-closed while we owed it a response */
	bool dead;
};

/* Connection accounting (docs/relay.md "Connection budgets"): per source
 * address, and by kind. A connection is half-open from accept until its first
 * head is parsed; then a sender (HTTP requests, WebSocket connect), a node
 * side (listen, accept and request rendezvous) or other (refused upgrades). */
enum ckind { CK_NONE = 0, CK_HALF, CK_SENDER, CK_NODE, CK_OTHER };

struct addrrec {
	struct addrrec *next;
	int open, half;
	char addr[64];
};

/* One accepted connection: with its hconn, then with the ws it became
 * (ws_tag), freed with the socket (conn_gone). */
struct connrec {
	struct connrec *next, *prev;
	struct addrrec *a;
	unsigned char kind;
};

#define ADDR_BUCKETS 1024

struct failrec {
	char addr[64];
	time_t window;
	int count;
};

struct lchan_ws {
	struct lchan_ws *next;
	struct evconnlistener *l;
	void *ctx;
	bool tls;
	char addr[80];
};

struct metrics {
	uint64_t conns_total, conns_rejected;
	uint64_t conns_per_address, conns_evicted, senders_refused, head_timeouts;
	uint64_t senders_gone, senders_dropped, cancels_sent;
	uint64_t listen_ok, listen_fail, listen_ratelimited;
	uint64_t tunnels_total, tunnels_rejected, tunnels_timeout;
	uint64_t bytes_to_listener, bytes_to_sender;
	uint64_t http_requests;
	uint64_t http_status[6];	/* 1xx..5xx by first digit */
	uint64_t http_502, http_504, http_401, http_403, http_404;
	uint64_t rv_count;
	double rv_sum;
	uint64_t rv_buckets[8];
	uint64_t renew_ok, renew_fail, token_expired;
};

static const double RV_BOUNDS[8] = { 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30 };

/* Tokens verified lately: a sender reuses its token for the token's lifetime,
 * so each HTTP request need not be verified again (HMAC and parsing were a
 * fifth of the relay's CPU per request). A hit needs the whole token equal
 * (compared in constant time), the same entity and right, the same keys (the
 * table is dropped by every state load) and an unexpired token. */
#define TOKCACHE_SLOTS 16

struct tokcache {
	struct tokcache_ent {
		char *tok;
		size_t len;
		const struct ent *ent;
		unsigned need;
		struct sas_verified v;
	} e[TOKCACHE_SLOTS];
	unsigned next;
};

struct rsrv {
	struct event_base *base;
	struct relay_conf *conf;
	char *conf_path;
	struct ent *ents;
	struct ent *graveyard;
	struct pend *pends;
	size_t npend;
	struct tunnel *tunnels;
	struct hconn *hconns;
	struct lchan_ws *lsocks;
	SSL_CTX *ssl;
	struct evhttp *admin;
	struct event *state_poll;
	struct stat state_st;
	bool state_seen;
	struct failrec fails[FAIL_SLOTS];
	long nconns;
	long nhalf, nsender, nnode;
	long nevicting;		/* evicted, closed by the next reap: not counted at accept */
	struct addrrec *addrs[ADDR_BUCKETS];
	struct connrec *conns;	/* every record, freed at the end whatever happened */
	long nctl_total;
	struct metrics m;
	bool shutting_down;
	struct event *shutdown_timer;
	char public_base[512];
	time_t started;
	struct tokcache tokens;
};

static void hconn_close(struct hconn *h);
static void hconn_try_resume(struct hconn *h);
static void tunnel_check_done(struct tunnel *t);
static void ctl_on_message(struct ws *ws, enum ws_opcode op, const uint8_t *d, size_t n, void *arg);
static void h_send_request(struct hconn *h);

/* ---- small helpers ------------------------------------------------------- */

static void
make_uuid(char out[37])
{
	/* ids are capabilities (a rendezvous address): the relay cannot run
	 * without them, so a failing CSPRNG is fatal here (random.h) */
	if (random_uuid(out) != 0) {
		log_error("relay", "event=fatal reason=%s", log_q("OpenSSL's random generator failed"));
		abort();
	}
}

static unsigned
rnd(unsigned n)
{
	unsigned r;

	if (n <= 1 || random_bytes(&r, sizeof r) != 0)
		return 0;
	return r % n;
}

static void
peer_of(struct bufferevent *bev, char *out, size_t len, int *port)
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

static double
since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static void
observe_rv(struct rsrv *s, double secs)
{
	int i;

	s->m.rv_count++;
	s->m.rv_sum += secs;
	for (i = 0; i < 8; i++)
		if (secs <= RV_BOUNDS[i])
			s->m.rv_buckets[i]++;
}

static struct ws_options
ws_opts(struct rsrv *s)
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
static void
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

static enum ckind
conn_kind(const struct connrec *r)
{
	return r ? (enum ckind)r->kind : CK_NONE;
}

static struct connrec *
ws_conn(struct ws *ws)
{
	return ws ? ws_tag(ws) : NULL;
}

/* Connections senders may hold: max_connections less the reserve kept for
 * listeners and rendezvous. */
static long
sender_budget(const struct rsrv *s)
{
	long m = s->conf->max_connections;

	return m - m * s->conf->reserved_percent / 100;
}

/* A sender's connection is known (its head was parsed): false when senders
 * already hold their whole budget (the caller answers 503). */
static bool
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

static void
conn_gone(struct rsrv *s, struct connrec *r)
{
	conn_forget(s, r);
	s->nconns--;
	if (s->shutting_down && s->nconns <= 0)
		event_base_loopexit(s->base, NULL);
}

static void
rs_ws_free(struct rsrv *s, struct ws *ws)
{
	struct connrec *r;

	if (ws == NULL)
		return;
	r = ws_conn(ws);
	ws_free(ws);
	conn_gone(s, r);
}

/* Splits "/a/b?c" into path and query (query may be NULL). */
static void
split_target(const char *t, char *path, size_t pl, const char **query)
{
	const char *q = strchr(t, '?');
	size_t n = q ? (size_t)(q - t) : strlen(t);

	if (n >= pl)
		n = pl - 1;
	memcpy(path, t, n);
	path[n] = '\0';
	*query = q ? q + 1 : NULL;
}

/* Longest entity name that is a case-insensitive prefix of path (which has no
 * leading slash), ending at '/' or the end. *rest is the suffix. */
static struct ent *
find_entity(struct rsrv *s, const char *path, const char **rest)
{
	struct ent *e, *best = NULL;
	size_t bl = 0;

	for (e = s->ents; e != NULL; e = e->next) {
		size_t l = strlen(e->name);

		if (e->deleted || l <= bl || strncasecmp(path, e->name, l) != 0)
			continue;
		if (path[l] != '\0' && path[l] != '/')
			continue;
		best = e;
		bl = l;
	}
	if (best != NULL && rest != NULL)
		*rest = path + bl;
	return best;
}

static int
decode_path(const char *raw, char **out)
{
	return sas_url_decode(raw, strlen(raw), false, out);
}

static const char *
via_host(struct rsrv *s, const struct http1_msg *req)
{
	const char *h;

	if (*s->conf->namespace)
		return s->conf->namespace;
	h = req ? http1_msg_get(req, "Host") : NULL;
	return h && *h ? h : "shir-relay";
}

/* §2.5: the token of a request and which header carried it. */
static char *
find_token(const struct http1_msg *req, const char *query, bool *used_authorization)
{
	char *t = NULL;
	const char *h;

	*used_authorization = false;
	if (query != NULL && hc_query_get(query, "sb-hc-token", &t) == 0)
		return t;
	if ((h = http1_msg_get(req, "ServiceBusAuthorization")) != NULL)
		return strdup(h);
	if ((h = http1_msg_get(req, "Authorization")) != NULL) {
		*used_authorization = true;
		return strdup(h);
	}
	return NULL;
}

/* Returns 0 or the HTTP status to answer (401/403). */
static void
tokcache_clear(struct tokcache *c)
{
	int i;

	for (i = 0; i < TOKCACHE_SLOTS; i++) {
		if (c->e[i].tok != NULL)
			OPENSSL_clear_free(c->e[i].tok, c->e[i].len + 1);
		c->e[i].tok = NULL;
	}
}

static bool
tokcache_find(struct tokcache *c, const char *tok, const struct ent *e, unsigned need, int64_t now,
    int skew, struct sas_verified *v)
{
	size_t len = strlen(tok);
	int i;

	for (i = 0; i < TOKCACHE_SLOTS; i++) {
		struct tokcache_ent *t = &c->e[i];

		if (t->tok == NULL || t->ent != e || t->need != need || t->len != len ||
		    CRYPTO_memcmp(t->tok, tok, len) != 0)
			continue;
		if (t->v.expiry <= now - (skew > 0 ? skew : 0))
			return false;	/* as sas_verify: expired */
		if (v != NULL)
			*v = t->v;
		return true;
	}
	return false;
}

static void
tokcache_add(struct tokcache *c, const char *tok, const struct ent *e, unsigned need,
    const struct sas_verified *v)
{
	struct tokcache_ent *t = &c->e[c->next++ % TOKCACHE_SLOTS];
	size_t len = strlen(tok);

	if (t->tok != NULL)
		OPENSSL_clear_free(t->tok, t->len + 1);
	if ((t->tok = OPENSSL_memdup(tok, len + 1)) == NULL)
		return;
	t->len = len;
	t->ent = e;
	t->need = need;
	t->v = *v;
}

static int
authorize(struct rsrv *s, struct ent *e, const struct http1_msg *req, const char *query,
    unsigned need, struct sas_verified *v, bool *used_auth, char *why, size_t wl)
{
	struct shir_error err;
	struct sas_verified ok;
	char *tok = find_token(req, query, used_auth);
	int64_t now;
	int rc;

	if (tok != NULL && *used_auth && need == SAS_SEND && e->anonymous) {
		/* §2.5: with anonymous senders, Authorization belongs to the listener */
		free(tok);
		tok = NULL;
		*used_auth = false;
	}
	if (tok == NULL) {
		if (need == SAS_SEND && e->anonymous)
			return 0;
		snprintf(why, wl, "no SAS token: send ServiceBusAuthorization or sb-hc-token");
		return 401;
	}
	now = (int64_t)time(NULL);
	if (tokcache_find(&s->tokens, tok, e, need, now, s->conf->token_skew, v)) {
		free(tok);
		return 0;
	}
	rc = sas_verify(tok, e->rules, e->nrules, e->name, *s->conf->namespace ? s->conf->namespace : NULL,
	    need, now, s->conf->token_skew, &ok, &err);
	if (rc == 0) {
		tokcache_add(&s->tokens, tok, e, need, &ok);
		if (v != NULL)
			*v = ok;
	}
	free(tok);
	if (rc == 0)
		return 0;
	if (need == SAS_SEND && e->anonymous && rc == SHIR_EAUTH)
		return 0;
	snprintf(why, wl, "%.400s", err.msg);
	return rc == SHIR_EPERM ? 403 : 401;
}

static bool
listener_allowed(const struct ctl *c, const struct http1_msg *req)
{
	const char *al = http1_msg_get(req, "Microsoft-Relay-AllowedListeners");
	const char *dl = http1_msg_get(req, "Microsoft-Relay-DisallowedListeners");
	struct http1_msg tmp = { 0 };
	struct http1_header hh;

	tmp.h = &hh;
	tmp.nh = 1;
	hh.name = (char *)"L";
	if (al != NULL) {
		hh.value = (char *)al;
		if (!http1_msg_has_token(&tmp, "L", c->id))
			return false;
	}
	if (dl != NULL) {
		hh.value = (char *)dl;
		if (http1_msg_has_token(&tmp, "L", c->id))
			return false;
	}
	return true;
}

/* A random live listener honouring the pinning headers; *filtered tells
 * whether listeners existed but none qualified. */
static struct ctl *
pick_listener(struct ent *e, const struct http1_msg *req, bool *filtered)
{
	struct ctl *c, *cand[1024];
	int n = 0;

	*filtered = false;
	for (c = e->ctls; c != NULL && n < 1024; c = c->next) {
		if (c->closing)
			continue;
		if (!listener_allowed(c, req)) {
			*filtered = true;
			continue;
		}
		cand[n++] = c;
	}
	if (n == 0)
		return NULL;
	*filtered = false;
	return cand[rnd((unsigned)n)];
}

static char *
error_json(const char *code, const char *msg)
{
	cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
	char *s;

	cJSON_AddStringToObject(e, "code", code);
	cJSON_AddStringToObject(e, "message", msg);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static const char *
error_code(int status)
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

/* ---- pending rendezvous --------------------------------------------------- */

static struct pend *
pend_add(struct rsrv *s, enum pkind k, const char *id)
{
	struct pend *p = calloc(1, sizeof *p);

	if (p == NULL)
		return NULL;
	p->kind = k;
	snprintf(p->id, sizeof p->id, "%s", id);
	clock_gettime(CLOCK_MONOTONIC, &p->created);
	p->next = s->pends;
	if (s->pends)
		s->pends->prev = p;
	s->pends = p;
	s->npend++;
	return p;
}

static void
pend_del(struct rsrv *s, struct pend *p)
{
	if (p == NULL)
		return;
	if (p->prev)
		p->prev->next = p->next;
	else
		s->pends = p->next;
	if (p->next)
		p->next->prev = p->prev;
	s->npend--;
	free(p);
}

static struct pend *
pend_find(struct rsrv *s, const char *id)
{
	struct pend *p;

	for (p = s->pends; p != NULL; p = p->next)
		if (strcmp(p->id, id) == 0)
			return p;
	return NULL;
}

/* ---- entities -------------------------------------------------------------- */

static void
ent_set_rules(struct ent *e, const struct rstate_entity *se)
{
	size_t i;

	for (i = 0; i < e->nrules; i++) {
		free((char *)e->rules[i].name);
		OPENSSL_cleanse((char *)e->rules[i].key, strlen(e->rules[i].key));
		free((char *)e->rules[i].key);
	}
	free(e->rules);
	e->rules = calloc(se->nrules ? se->nrules : 1, sizeof *e->rules);
	e->nrules = 0;
	if (e->rules == NULL)
		return;
	for (i = 0; i < se->nrules; i++) {
		e->rules[i].name = strdup(se->rules[i].name);
		e->rules[i].key = strdup(se->rules[i].key);
		e->rules[i].rights = se->rules[i].rights;
		if (e->rules[i].name == NULL || e->rules[i].key == NULL)
			break;
		e->nrules++;
	}
	e->anonymous = se->anonymous_senders;
}

static void
ent_free(struct ent *e)
{
	struct rstate_entity empty = { 0 };

	ent_set_rules(e, &empty);
	free(e->rules);
	free(e->name);
	free(e);
}

static void ctl_close(struct ctl *c, int code, const char *reason);

static int
load_state(struct rsrv *s, struct shir_error *err)
{
	struct rstate *st = NULL;
	struct ent *e, **pp;
	size_t i;
	int rc, added = 0, removed = 0;

	if ((rc = rstate_load(s->conf->state_file, &st, err)) != 0)
		return rc;
	tokcache_clear(&s->tokens);	/* keys may have changed */
	for (i = 0; i < st->n; i++) {
		for (e = s->ents; e != NULL; e = e->next)
			if (strcasecmp(e->name, st->e[i].name) == 0)
				break;
		if (e == NULL) {
			e = calloc(1, sizeof *e);
			if (e == NULL || (e->name = strdup(st->e[i].name)) == NULL) {
				free(e);
				rstate_free(st);
				return shir_error_set(err, SHIR_ENOMEM, "out of memory");
			}
			e->next = s->ents;
			s->ents = e;
			added++;
		}
		ent_set_rules(e, &st->e[i]);
	}
	for (pp = &s->ents; *pp != NULL;) {
		e = *pp;
		if (rstate_find(st, e->name) == NULL) {
			*pp = e->next;
			e->deleted = true;
			log_info("relay", "event=entity.deleted hc=%s listeners=%d", log_q(e->name), e->nctl);
			{
				struct ctl *c;

				for (c = e->ctls; c != NULL; c = c->next)
					ctl_close(c, WS_CLOSE_GOING_AWAY, "hybrid connection deleted");
			}
			e->next = s->graveyard;
			s->graveyard = e;
			removed++;
			continue;
		}
		pp = &e->next;
	}
	log_info("relay", "event=state.loaded entities=%zu added=%d removed=%d file=%s", st->n, added,
	    removed, log_q(s->conf->state_file));
	rstate_free(st);
	return 0;
}

/* ---- listen failures rate limit --------------------------------------------- */

static struct failrec *
fail_slot(struct rsrv *s, const char *addr)
{
	unsigned h = 5381;
	const char *p;

	for (p = addr; *p; p++)
		h = h * 33 + (unsigned char)*p;
	return &s->fails[h % FAIL_SLOTS];
}

static bool
fail_limited(struct rsrv *s, const char *addr)
{
	struct failrec *f = fail_slot(s, addr);
	time_t now = time(NULL);

	return strcmp(f->addr, addr) == 0 && now - f->window < 60 &&
	    f->count >= s->conf->listen_fail_limit;
}

static void
fail_note(struct rsrv *s, const char *addr)
{
	struct failrec *f = fail_slot(s, addr);
	time_t now = time(NULL);

	if (strcmp(f->addr, addr) != 0 || now - f->window >= 60) {
		snprintf(f->addr, sizeof f->addr, "%s", addr);
		f->window = now;
		f->count = 0;
	}
	f->count++;
}

/* ---- control channels ------------------------------------------------------- */

static void
ctl_unlink(struct ctl *c)
{
	struct ent *e = c->ent;

	if (e == NULL)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		e->ctls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	e->nctl--;
	c->s->nctl_total--;
	c->ent = NULL;
}

static void
ctl_close(struct ctl *c, int code, const char *reason)
{
	/* stays linked (and counted) until its on_close */
	if (!c->closing) {
		c->closing = true;
		ws_close(c->ws, code, reason);
	}
}

static void hconn_fail(struct hconn *h, int status, const char *msg);

static void
ctl_on_close(struct ws *ws, int code, const char *reason, bool remote, void *arg)
{
	struct ctl *c = arg;
	struct rsrv *s = c->s;
	struct hconn *h, *hn;

	log_info("relay", "event=listener.closed hc=%s id=%s code=%d reason=%s remote=%d",
	    log_q(c->ent ? c->ent->name : "-"), log_q(c->id), code, log_q(reason), remote);
	ctl_unlink(c);
	/* requests waiting on this listener (and not on a rendezvous) fail now */
	for (h = s->hconns; h != NULL; h = hn) {
		hn = h->next;
		if (h->resp_src == c->ws)
			h->resp_src = NULL;
		if (h->ctl == c) {
			h->ctl = NULL;
			if ((h->st == H_WAIT || h->st == H_BODY) && h->rv == NULL)
				hconn_fail(h, 502, "the listener went away before answering");
			else if (h->st == H_RESP && c->body_for == h)
				hconn_close(h);
		}
	}
	if (c->body_for != NULL)
		c->body_for = NULL;
	if (c->expiry_timer)
		event_free(c->expiry_timer);
	if (c->probe)
		event_free(c->probe);
	rs_ws_free(s, c->ws);
	free(c);
}

/* A listen presented the id of this channel: it is refused (409), and this
 * channel must show it is alive. A half-open channel (its peer gone without
 * a FIN) would otherwise keep the id, and its listener, locked out. */
static void
ctl_probe_expired(evutil_socket_t fd, short w, void *arg)
{
	struct ctl *c = arg;

	c->probing = false;
	log_info("relay", "event=listener.stale hc=%s id=%s peer=%s why=%s",
	    log_q(c->ent ? c->ent->name : "-"), log_q(c->id), c->peer,
	    log_q("no pong after another listen presented its id"));
	c->closing = true;
	ws_abort(c->ws);	/* on_close frees c */
}

static void
ctl_probe(struct ctl *c)
{
	struct timeval tv = { c->s->conf->handshake_timeout, 0 };

	if (c->probing)
		return;
	if (c->probe == NULL && (c->probe = evtimer_new(c->s->base, ctl_probe_expired, c)) == NULL)
		return;
	if (ws_ping(c->ws, "id-check", 8) != 0)
		return;
	c->probing = true;
	evtimer_add(c->probe, &tv);
}

static void
ctl_on_pong(struct ws *ws, const uint8_t *d, size_t n, void *arg)
{
	struct ctl *c = arg;

	if (!c->probing)
		return;	/* hyco-https keep-alive pongs */
	c->probing = false;
	evtimer_del(c->probe);
	log_info("relay", "event=listener.alive hc=%s id=%s", log_q(c->ent ? c->ent->name : "-"),
	    log_q(c->id));
}

static void
ctl_expiry_arm(struct ctl *c)
{
	struct timeval tv = { 0, 0 };
	int64_t left = c->expiry - (int64_t)time(NULL) + c->s->conf->token_skew;

	tv.tv_sec = left > 0 ? (time_t)left : 0;
	if (tv.tv_sec > 86400 * 365)
		tv.tv_sec = 86400 * 365;
	evtimer_add(c->expiry_timer, &tv);
}

static void
ctl_expired(evutil_socket_t fd, short w, void *arg)
{
	struct ctl *c = arg;

	if ((int64_t)time(NULL) - c->s->conf->token_skew < c->expiry) {
		ctl_expiry_arm(c);
		return;
	}
	c->s->m.token_expired++;
	log_info("relay", "event=listener.token_expired hc=%s id=%s", log_q(c->ent ? c->ent->name : "-"),
	    log_q(c->id));
	ctl_close(c, WS_CLOSE_POLICY, "token expired");
}

/* Response body pieces from a control channel or a rendezvous. */
static void h_resp_body(struct hconn *h, const uint8_t *d, size_t n, bool fin);
static void h_response(struct hconn *h, const struct hc_response *r, void **body_src);

/* Backpressure on a response body: stop reading its source (control channel
 * or rendezvous) while the sender's output is above tunnel_buffer; h_write
 * resumes it below a quarter of that. */
static void
h_resp_unthrottle(struct hconn *h)
{
	if (h->resp_src != NULL) {
		ws_pause_read(h->resp_src, false);
		h->resp_src = NULL;
	}
}

static void
h_resp_throttle(struct hconn *h, struct ws *src)
{
	if (h->dead || h->bev == NULL ||
	    evbuffer_get_length(bufferevent_get_output(h->bev)) <= (size_t)h->s->conf->tunnel_buffer)
		return;
	if (h->resp_src != src)
		h_resp_unthrottle(h);
	h->resp_src = src;
	ws_pause_read(src, true);
	bufferevent_setwatermark(h->bev, EV_WRITE, (size_t)h->s->conf->tunnel_buffer / 4, 0);
}

static int
ctl_on_fragment(struct ws *ws, enum ws_opcode op, const uint8_t *d, size_t n, bool first, bool fin,
    void *arg)
{
	struct ctl *c = arg;

	if (op == WS_OP_TEXT)
		return WS_ASSEMBLE;
	if (c->body_for != NULL) {
		struct hconn *h = c->body_for;

		if (fin)
			c->body_for = NULL;
		h_resp_body(h, d, n, fin);
		/* a control channel is shared by every sender of the listener: it
		 * is never paused for one of them. A sender that does not read
		 * gets sender_backlog bytes held for it, then it is dropped. */
		if (!h->dead && h->bev != NULL && evbuffer_get_length(bufferevent_get_output(h->bev)) >
		    (size_t)c->s->conf->sender_backlog) {
			c->s->m.senders_dropped++;
			log_info("relay", "event=http.sender_dropped hc=%s target=%s peer=%s held=%zu why=%s",
			    log_q(h->ent ? h->ent->name : "-"), log_q(h->target), h->peer,
			    evbuffer_get_length(bufferevent_get_output(h->bev)),
			    log_q("the sender does not read its answer (limits.sender_backlog)"));
			hconn_close(h);
			if (c->body_for == h) {
				c->body_for = NULL;
				c->discard_body = true;
			}
		}
		return WS_STREAM;
	}
	if (c->discard_body) {
		if (fin)
			c->discard_body = false;
		return WS_STREAM;
	}
	/* hyco-https sends an empty binary message after "body":false (§3.6) */
	if (first && !(fin && n == 0))
		log_debug("relay", "event=listener.stray_binary hc=%s id=%s bytes=%zu",
		    log_q(c->ent ? c->ent->name : "-"), log_q(c->id), n);
	return WS_STREAM;
}

/* The request in flight with this id that was sent to control channel c
 * (NULL: any channel). A listener may answer only what it was sent. */
static struct hconn *
find_inflight(struct rsrv *s, const char *req_id, const struct ctl *c)
{
	struct hconn *h;

	for (h = s->hconns; h != NULL; h = h->next)
		if (!h->dead && h->req_id[0] && strcmp(h->req_id, req_id) == 0 &&
		    (c == NULL || h->ctl == c))
			return h;
	return NULL;
}

static void
ctl_on_message(struct ws *ws, enum ws_opcode op, const uint8_t *d, size_t n, void *arg)
{
	struct ctl *c = arg;
	struct rsrv *s = c->s;
	struct hc_msg m;
	struct shir_error err;

	if (op != WS_OP_TEXT)
		return;
	if (hc_msg_decode((const char *)d, n, &m, &err) != 0) {
		log_info("relay", "event=listener.bad_message hc=%s id=%s error=%s",
		    log_q(c->ent ? c->ent->name : "-"), log_q(c->id), log_q(err.msg));
		return;
	}
	if (m.type == HC_MSG_RESPONSE) {
		struct hconn *h = find_inflight(s, m.response.request_id, c);

		if (h != NULL && h->st != H_WAIT && h->st != H_BODY)
			h = NULL;	/* answered already */
		if (h == NULL) {
			/* unknown, finished, or sent to another listener: ignored */
			bool foreign = find_inflight(s, m.response.request_id, NULL) != NULL;

			log_info("relay", "event=listener.%s hc=%s id=%s request=%s",
			    foreign ? "foreign_response" : "unknown_response",
			    log_q(c->ent ? c->ent->name : "-"), log_q(c->id),
			    log_q(m.response.request_id));
			if (m.response.body)
				c->discard_body = true;
		} else {
			void *src = NULL;

			h_response(h, &m.response, &src);
			if (m.response.body && !h->dead && h->st == H_RESP)
				c->body_for = h;
			else if (m.response.body)
				c->discard_body = true;
		}
	} else if (m.type == HC_MSG_RENEW) {
		struct sas_verified v;

		if (c->ent != NULL && sas_verify(m.renew_token, c->ent->rules, c->ent->nrules, c->ent->name,
		    *s->conf->namespace ? s->conf->namespace : NULL, SAS_LISTEN, (int64_t)time(NULL),
		    s->conf->token_skew, &v, &err) == 0) {
			c->expiry = v.expiry;
			ctl_expiry_arm(c);
			s->m.renew_ok++;
			log_info("relay", "event=listener.renewed hc=%s id=%s expiry=%lld", log_q(c->ent->name),
			    log_q(c->id), (long long)v.expiry);
		} else {
			s->m.renew_fail++;
			log_info("relay", "event=listener.renew_failed id=%s error=%s", log_q(c->id),
			    log_q(c->ent ? err.msg : "deleted"));
			ctl_close(c, WS_CLOSE_POLICY, "renewToken failed");
		}
	} else if (m.type != HC_MSG_UNKNOWN) {
		log_info("relay", "event=listener.unexpected_command id=%s type=%d", log_q(c->id), m.type);
	}
	hc_msg_clear(&m);
}

static const struct ws_callbacks CTL_CB = {
	.on_message = ctl_on_message,
	.on_fragment = ctl_on_fragment,
	.on_pong = ctl_on_pong,
	.on_close = ctl_on_close,
};

/* ---- WebSocket routes ------------------------------------------------------- */

static void
ws_fail(struct rsrv *s, struct ws *ws, int status, const char *reason, const char *msg)
{
	char *body = error_json(error_code(status), msg);

	ws_reject(ws, status, reason, "application/json", body, NULL);
	free(body);
}

/* A front-end WebSocket that ends before it belongs to anything. */
static void
front_ws_close(struct ws *ws, int code, const char *reason, bool remote, void *arg)
{
	rs_ws_free(arg, ws);
}

static void route_listen(struct rsrv *s, struct ws *ws, const struct http1_msg *req, struct ent *e,
    const char *query);
static void route_connect(struct rsrv *s, struct ws *ws, const struct http1_msg *req,
    struct ent *e, const char *suffix, const char *query);
static void route_rendezvous(struct rsrv *s, struct ws *ws, const struct http1_msg *req,
    const char *action, const char *query);

static void
front_ws_request(struct ws *ws, const struct http1_msg *req, void *arg)
{
	struct rsrv *s = arg;
	char path[TARGET_MAX + 1], *dec = NULL, *action = NULL;
	const char *query, *suffix = "";
	struct ent *e;

	if (s->shutting_down) {
		ws_fail(s, ws, 503, NULL, "the relay is shutting down");
		return;
	}
	if (strlen(req->target) > TARGET_MAX) {
		log_info("relay", "event=upgrade.refused status=414 target=%s", log_q(req->target));
		ws_fail(s, ws, 414, NULL, "the request target is longer than 8192 bytes");
		return;
	}
	split_target(req->target, path, sizeof path, &query);
	if (strncmp(path, "/$hc/", 5) != 0) {
		ws_fail(s, ws, 404, "Endpoint does not exist",
		    "WebSocket endpoints are under /$hc/{hybrid connection}");
		return;
	}
	if (query == NULL || hc_query_get(query, "sb-hc-action", &action) != 0) {
		free(action);
		action = strdup("connect");	/* a missing action means connect (§2.3) */
	}
	if (action == NULL) {
		ws_fail(s, ws, 500, NULL, "out of memory");
		return;
	}
	if (strcmp(action, "accept") == 0 || strcmp(action, "request") == 0) {
		route_rendezvous(s, ws, req, action, query);
		free(action);
		return;
	}
	if (decode_path(path + 5, &dec) != 0) {
		ws_fail(s, ws, 400, NULL, "the path has a bad percent escape");
		free(action);
		return;
	}
	e = find_entity(s, dec, &suffix);
	if (strcmp(action, "listen") == 0) {
		route_listen(s, ws, req, e, query);
	} else if (strcmp(action, "connect") == 0) {
		if (e == NULL)
			ws_fail(s, ws, 404, "Endpoint does not exist", "no such hybrid connection");
		else {
			/* suffix points into dec; route_connect copies what it needs */
			char raw_suffix[TARGET_MAX + 1];
			const char *rs = path + 5 + strlen(e->name);

			/* keep the suffix as sent (still encoded) when names have no escapes */
			snprintf(raw_suffix, sizeof raw_suffix, "%s",
			    strncasecmp(path + 5, e->name, strlen(e->name)) == 0 ? rs : suffix);
			route_connect(s, ws, req, e, raw_suffix, query);
		}
	} else {
		ws_fail(s, ws, 400, NULL, "unknown sb-hc-action");
	}
	free(dec);
	free(action);
}

static void
route_listen(struct rsrv *s, struct ws *ws, const struct http1_msg *req, struct ent *e,
    const char *query)
{
	char peer[64], why[512], *sid = NULL;
	struct sas_verified v = { 0 };
	bool ua;
	int st;
	struct ctl *c;

	peer_of(ws_bufferevent(ws), peer, sizeof peer, NULL);
	if (fail_limited(s, peer)) {
		s->m.listen_ratelimited++;
		ws_fail(s, ws, 429, NULL, "too many failed listen attempts from this address; wait a minute");
		return;
	}
	if (e == NULL) {
		fail_note(s, peer);
		s->m.listen_fail++;
		log_info("relay", "event=listen.refused status=404 peer=%s target=%s", peer, log_q(req->target));
		ws_fail(s, ws, 404, "Endpoint does not exist", "no such hybrid connection");
		return;
	}
	st = authorize(s, e, req, query, SAS_LISTEN, &v, &ua, why, sizeof why);
	if (st != 0) {
		fail_note(s, peer);
		s->m.listen_fail++;
		log_info("relay", "event=listen.refused status=%d hc=%s peer=%s why=%s", st, log_q(e->name),
		    peer, log_q(why));
		ws_fail(s, ws, st, NULL, why);
		return;
	}
	if (e->nctl >= s->conf->max_listeners) {
		fail_note(s, peer);	/* a reconnect storm at the limit is cheap too */
		s->m.listen_fail++;
		ws_fail(s, ws, 403, "Listener limit exceeded", "this hybrid connection has the maximum number of listeners");
		return;
	}
	c = calloc(1, sizeof *c);
	if (c == NULL || (c->expiry_timer = evtimer_new(s->base, ctl_expired, c)) == NULL) {
		free(c);
		ws_fail(s, ws, 500, NULL, "out of memory");
		return;
	}
	c->s = s;
	c->ws = ws;
	c->ent = e;
	c->since = time(NULL);
	c->expiry = v.expiry;
	snprintf(c->peer, sizeof c->peer, "%s", peer);
	if (query != NULL && hc_query_get(query, "sb-hc-id", &sid) == 0 && *sid)
		snprintf(c->id, sizeof c->id, "%s", sid);
	else
		make_uuid(c->id);
	if (sid != NULL && *sid) {
		/* a listener id names one listener (pinning routes by it, §2.7): a
		 * second channel with the id of a live one is refused, and the live
		 * one is pinged (no pong within handshake_timeout: it is dropped).
		 * Ids the relay made up are random: no search for those. */
		struct ctl *o;

		for (o = e->ctls; o != NULL; o = o->next)
			if (!o->closing && strcasecmp(o->id, c->id) == 0)
				break;
		if (o != NULL) {
			ctl_probe(o);
			s->m.listen_fail++;
			log_info("relay", "event=listen.refused status=409 hc=%s id=%s peer=%s why=%s",
			    log_q(e->name), log_q(c->id), peer, log_q("a listener with this id is connected"));
			event_free(c->expiry_timer);
			free(c);
			ws_fail(s, ws, 409, "Listener id in use", "a listener with this sb-hc-id is already "
			    "connected to this hybrid connection; use a unique id per listener");
			free(sid);
			return;
		}
	}
	free(sid);
	ws_set_callbacks(ws, &CTL_CB, c);
	if (ws_accept(ws, NULL, NULL) != 0) {
		event_free(c->expiry_timer);
		free(c);
		ws_fail(s, ws, 500, NULL, "could not accept");
		return;
	}
	c->next = e->ctls;
	if (e->ctls)
		e->ctls->prev = c;
	e->ctls = c;
	e->nctl++;
	s->nctl_total++;
	conn_set_kind(s, ws_conn(ws), CK_NODE);
	c->cancel_ok = hc_list_has_token(http1_msg_get(req, "Shir-Relay-Features") ?
	    http1_msg_get(req, "Shir-Relay-Features") : "", "cancel");
	if (c->expiry > 0)
		ctl_expiry_arm(c);
	s->m.listen_ok++;
	log_info("relay", "event=listener.connected hc=%s id=%s peer=%s listeners=%d", log_q(e->name),
	    log_q(c->id), peer, e->nctl);
}

/* ---- WebSocket tunnels ------------------------------------------------------- */

static void
tunnel_reap(evutil_socket_t fd, short w, void *arg)
{
	struct tunnel *t = arg;
	struct rsrv *s = t->s;

	if (t->prev)
		t->prev->next = t->next;
	else
		s->tunnels = t->next;
	if (t->next)
		t->next->prev = t->prev;
	pend_del(s, t->p);
	if (t->snd != NULL)
		ws_forward(t->snd, NULL);
	if (t->lst != NULL)
		ws_forward(t->lst, NULL);
	rs_ws_free(s, t->snd);
	rs_ws_free(s, t->lst);
	if (t->timer)
		event_free(t->timer);
	event_free(t->reap);
	free(t);
}

static void
tunnel_check_done(struct tunnel *t)
{
	if ((t->snd == NULL || t->snd_closed) && (t->lst == NULL || t->lst_closed))
		event_active(t->reap, 0, 0);
}

static struct ws *
other(struct tunnel *t, struct ws *ws)
{
	return ws == t->snd ? t->lst : t->snd;
}

/* n bytes went from ws to o: count them, and stop reading ws while o backs up
 * (tun_writable resumes it). */
static void
tun_moved(struct tunnel *t, struct ws *ws, struct ws *o, size_t n)
{
	if (ws == t->snd)
		t->s->m.bytes_to_listener += n;
	else
		t->s->m.bytes_to_sender += n;
	if (ws_is_congested(o))
		ws_pause_read(ws, true);
}

static int
tun_fragment(struct ws *ws, enum ws_opcode op, const uint8_t *d, size_t n, bool first, bool fin,
    void *arg)
{
	struct tunnel *t = arg;
	struct ws *o = other(t, ws);

	if (o == NULL || ws_send_frame(o, first ? op : WS_OP_CONT, d, n, fin) != 0)
		return WS_STREAM;
	tun_moved(t, ws, o, n);
	return WS_STREAM;
}

/* ws_forward moved a batch of whole binary frames to the other side. */
static void
tun_forwarded(struct ws *ws, size_t n, void *arg)
{
	struct tunnel *t = arg;
	struct ws *o = other(t, ws);

	if (o != NULL)
		tun_moved(t, ws, o, n);
}

static void
tun_writable(struct ws *ws, void *arg)
{
	struct tunnel *t = arg;
	struct ws *o = other(t, ws);

	if (o != NULL)
		ws_pause_read(o, false);
}

static void
tun_close(struct ws *ws, int code, const char *reason, bool remote, void *arg)
{
	struct tunnel *t = arg;
	struct ws *o = other(t, ws);

	if (ws == t->snd)
		t->snd_closed = true;
	else
		t->lst_closed = true;
	ws_forward(ws, NULL);	/* before either side can be freed */
	if (o != NULL)
		ws_forward(o, NULL);
	if (o != NULL && t->open) {
		if (code == WS_CLOSE_ABNORMAL || code == WS_CLOSE_NO_STATUS || code == 1015 || !remote)
			ws_close(o, code == WS_CLOSE_NO_STATUS ? WS_CLOSE_NORMAL : WS_CLOSE_GOING_AWAY,
			    code == WS_CLOSE_NO_STATUS ? "" : "the other side went away");
		else
			ws_close(o, code, reason);
	} else if (o != NULL) {
		/* not open yet: the sender gave up while waiting */
		if (ws_state(o) == WS_S_DECIDING)
			ws_fail(t->s, o, 410, NULL, "the sender went away");
	}
	log_info("relay", "event=tunnel.side_closed id=%s side=%s code=%d remote=%d", log_q(t->id),
	    ws == t->snd ? "sender" : "listener", code, remote);
	tunnel_check_done(t);
}

static const struct ws_callbacks TUN_CB = {
	.on_fragment = tun_fragment,
	.on_writable = tun_writable,
	.on_close = tun_close,
	.on_forwarded = tun_forwarded,
};

static void
tunnel_timeout(evutil_socket_t fd, short w, void *arg)
{
	struct tunnel *t = arg;

	if (t->open)
		return;
	t->s->m.tunnels_timeout++;
	log_info("relay", "event=tunnel.timeout id=%s", log_q(t->id));
	pend_del(t->s, t->p);
	t->p = NULL;
	if (t->snd && ws_state(t->snd) == WS_S_DECIDING)
		ws_fail(t->s, t->snd, 504, "Listener did not accept in time",
		    "the listener did not open the rendezvous in time");
}

static void
route_connect(struct rsrv *s, struct ws *ws, const struct http1_msg *req, struct ent *e,
    const char *suffix, const char *query)
{
	char why[512], uuid[37], id[ID_MAX], *sid = NULL, *q = NULL, *addr = NULL, *json = NULL, *eid;
	struct sas_verified v;
	bool ua, filtered;
	struct ctl *c;
	struct hc_accept a = { 0 };
	struct tunnel *t = NULL;
	size_t i, al;
	int st;
	struct timeval tv = { s->conf->rendezvous_timeout, 0 };

	if (!conn_sender_ok(s, ws_conn(ws))) {
		ws_fail(s, ws, 503, NULL, "the relay holds as many sender connections as it allows "
		    "(limits.max_connections less limits.reserved_percent, kept for listeners)");
		return;
	}
	st = authorize(s, e, req, query, SAS_SEND, &v, &ua, why, sizeof why);
	if (st != 0) {
		log_info("relay", "event=connect.refused status=%d hc=%s why=%s", st, log_q(e->name), log_q(why));
		ws_fail(s, ws, st, NULL, why);
		return;
	}
	c = pick_listener(e, req, &filtered);
	if (c == NULL) {
		ws_fail(s, ws, 404, filtered ? "None of the connected listeners meet the "
		    "AllowedListeners/DisallowedListeners criteria" : "No listener",
		    filtered ? "no connected listener qualifies" : "no listener is connected");
		return;
	}
	make_uuid(uuid);
	if (query != NULL && hc_query_get(query, "sb-hc-id", &sid) == 0 && *sid && strlen(sid) < 100)
		snprintf(id, sizeof id, "%s_%s", sid, uuid);
	else
		snprintf(id, sizeof id, "%s", uuid);
	free(sid);
	q = hc_strip_query(query ? query : "");
	eid = sas_url_encode(id);
	al = strlen(s->public_base) + strlen(e->name) + strlen(suffix) + (q ? strlen(q) : 0) +
	    (eid ? strlen(eid) : 0) + 64;
	addr = malloc(al);
	t = calloc(1, sizeof *t);
	if (q == NULL || eid == NULL || addr == NULL || t == NULL) {
		ws_fail(s, ws, 500, NULL, "out of memory");
		goto out;
	}
	snprintf(addr, al, "%s/$hc/%s%s?%s%ssb-hc-action=accept&sb-hc-id=%s", s->public_base, e->name,
	    suffix, q, *q ? "&" : "", eid);
	a.address = addr;
	a.id = id;
	for (i = 0; i < req->nh; i++)
		if (strcasecmp(req->h[i].name, "ServiceBusAuthorization") != 0 &&
		    !(ua && strcasecmp(req->h[i].name, "Authorization") == 0))
			hc_headers_add(&a.connect_headers, req->h[i].name, req->h[i].value);
	{
		char peer[64];
		int port;

		peer_of(ws_bufferevent(ws), peer, sizeof peer, &port);
		a.remote.set = true;
		a.remote.address = peer;
		a.remote.port = port;
		json = hc_msg_encode_accept(&a);
		a.remote.address = NULL;
	}
	if (json == NULL || ws_send(c->ws, WS_OP_TEXT, json, strlen(json)) != 0) {
		ws_fail(s, ws, 502, NULL, "could not reach the listener");
		goto out;
	}
	t->s = s;
	t->ent = e;
	t->snd = ws;
	snprintf(t->id, sizeof t->id, "%s", id);
	t->p = pend_add(s, P_ACCEPT, id);
	t->timer = evtimer_new(s->base, tunnel_timeout, t);
	t->reap = event_new(s->base, -1, 0, tunnel_reap, t);
	if (t->p == NULL || t->timer == NULL || t->reap == NULL) {
		pend_del(s, t->p);
		if (t->timer)
			event_free(t->timer);
		if (t->reap)
			event_free(t->reap);
		ws_fail(s, ws, 500, NULL, "out of memory");
		goto out;
	}
	t->p->t = t;
	evtimer_add(t->timer, &tv);
	ws_set_callbacks(ws, &TUN_CB, t);
	t->next = s->tunnels;
	if (s->tunnels)
		s->tunnels->prev = t;
	s->tunnels = t;
	e->accepts++;
	s->m.tunnels_total++;
	log_info("relay", "event=tunnel.accept_sent hc=%s id=%s listener=%s", log_q(e->name), log_q(id),
	    log_q(c->id));
	t = NULL;
out:
	free(t);
	free(q);
	free(eid);
	free(addr);
	free(json);
	a.address = NULL;
	a.id = NULL;
	hc_headers_clear(&a.connect_headers);
}

/* ---- rendezvous ------------------------------------------------------------- */

static const struct ws_callbacks RV_CB;

static void
route_rendezvous(struct rsrv *s, struct ws *ws, const struct http1_msg *req, const char *action,
    const char *query)
{
	char *id = NULL, *code = NULL, *desc = NULL;
	struct pend *p;

	if (hc_query_get(query, "sb-hc-id", &id) != 0 || (p = pend_find(s, id)) == NULL ||
	    (strcmp(action, "accept") == 0) != (p->kind == P_ACCEPT)) {
		ws_fail(s, ws, 403, "Rendezvous expired or invalid", "unknown or expired rendezvous id");
		goto out;
	}
	observe_rv(s, since(&p->created));
	if (p->kind == P_ACCEPT) {
		struct tunnel *t = p->t;

		if (hc_query_get(query, "sb-hc-statusCode", &code) == 0) {
			long sc = strtol(code, NULL, 10);

			if (hc_query_get(query, "sb-hc-statusDescription", &desc) != 0)
				desc = NULL;
			if (sc < 200 || sc > 599)
				sc = 400;
			log_info("relay", "event=tunnel.rejected id=%s status=%ld description=%s", log_q(t->id),
			    sc, log_q(desc ? desc : ""));
			s->m.tunnels_rejected++;
			if (t->snd && ws_state(t->snd) == WS_S_DECIDING) {
				char *body = error_json("Rejected", desc ? desc : "rejected by the listener");

				ws_reject(t->snd, (int)sc, desc, "application/json", body, NULL);
				free(body);
			}
			pend_del(s, p);
			t->p = NULL;
			ws_reject(ws, 410, "Gone", NULL, NULL, NULL);	/* front_ws_close frees it */
			goto out;
		}
		{
			const char *proto = http1_msg_get(req, "Sec-WebSocket-Protocol");
			char pbuf[256] = "";

			if (proto != NULL) {
				size_t l = strcspn(proto, ", \t");

				snprintf(pbuf, sizeof pbuf, "%.*s", (int)l, proto);
			}
			pend_del(s, p);
			t->p = NULL;
			if (t->snd == NULL || ws_state(t->snd) != WS_S_DECIDING) {
				ws_fail(s, ws, 403, "Rendezvous expired or invalid", "the sender is gone");
				goto out;
			}
			t->lst = ws;
			conn_set_kind(s, ws_conn(ws), CK_NODE);
			ws_set_callbacks(ws, &TUN_CB, t);
			ws_accept(ws, *pbuf ? pbuf : NULL, NULL);
			ws_accept(t->snd, *pbuf ? pbuf : NULL, NULL);
			ws_forward(t->snd, ws);	/* whole binary frames skip tun_fragment */
			ws_forward(ws, t->snd);
			t->open = true;
			evtimer_del(t->timer);
			log_info("relay", "event=tunnel.open hc=%s id=%s protocol=%s", log_q(t->ent->name),
			    log_q(t->id), log_q(pbuf));
		}
	} else {
		struct hconn *h = p->h;

		pend_del(s, p);
		h->rv_pend = NULL;
		h->rv = ws;
		conn_set_kind(s, ws_conn(ws), CK_NODE);
		ws_set_callbacks(ws, &RV_CB, h);
		ws_accept(ws, NULL, NULL);
		log_info("relay", "event=request.rendezvous id=%s", log_q(h->rv_id));
		if (h->st == H_BODY || h->st == H_WAIT) {
			if (h->big && !h->on_rv)
				h_send_request(h);
		}
	}
out:
	free(id);
	free(code);
	free(desc);
}

/* ---- HTTP senders -------------------------------------------------------------- */

static void
hconn_reap(evutil_socket_t fd, short w, void *arg)
{
	struct hconn *h = arg;
	struct rsrv *s = h->s;
	struct ent *e;
	struct ctl *c;

	if (h->prev)
		h->prev->next = h->next;
	else
		s->hconns = h->next;
	if (h->next)
		h->next->prev = h->prev;
	{
		struct ent *lists[2] = { s->ents, s->graveyard };
		int li;

		/* deleted entities' channels may still be streaming a body */
		for (li = 0; li < 2; li++)
			for (e = lists[li]; e != NULL; e = e->next)
				for (c = e->ctls; c != NULL; c = c->next)
					if (c->body_for == h) {
						c->body_for = NULL;
						c->discard_body = true;
					}
	}
	h_resp_unthrottle(h);
	pend_del(s, h->rv_pend);
	if (h->rv != NULL) {
		ws_close(h->rv, WS_CLOSE_GOING_AWAY, "the sender went away");
		ws_set_callbacks(h->rv, &(struct ws_callbacks){ .on_close = front_ws_close }, s);
		h->rv = NULL;
	}
	if (h->evicted)
		s->nevicting--;
	if (h->bev != NULL) {
		bufferevent_free(h->bev);
		conn_gone(s, h->conn);
	}
	http1_free(h->hp);
	http1_msg_free(h->req);
	if (h->body)
		evbuffer_free(h->body);
	if (h->deadline)
		event_free(h->deadline);
	if (h->resume)
		event_free(h->resume);
	if (h->head_timer)
		event_free(h->head_timer);
	event_free(h->reap);
	free(h);
}

static void
hconn_close(struct hconn *h)
{
	if (h->dead)
		return;
	h->dead = true;
	h->req_id[0] = '\0';
	if (h->bev)
		bufferevent_disable(h->bev, EV_READ | EV_WRITE);
	event_active(h->reap, 0, 0);
}

/* Close once the output is written. */
static void
hconn_close_after_flush(struct hconn *h)
{
	h->st = H_CLOSING;
	h->req_id[0] = '\0';
	bufferevent_disable(h->bev, EV_READ);
	bufferevent_setwatermark(h->bev, EV_WRITE, 0, 0);
	if (evbuffer_get_length(bufferevent_get_output(h->bev)) == 0)
		hconn_close(h);
}

static void
count_status(struct rsrv *s, int st)
{
	if (st >= 100 && st < 600)
		s->m.http_status[st / 100]++;
	if (st == 502)
		s->m.http_502++;
	if (st == 504)
		s->m.http_504++;
	if (st == 401)
		s->m.http_401++;
	if (st == 403)
		s->m.http_403++;
	if (st == 404)
		s->m.http_404++;
}

/* A response from the relay itself (JSON error body, no Via), then close. */
static void
hconn_fail(struct hconn *h, int status, const char *msg)
{
	struct evbuffer *out;
	char *body;

	if (h->dead || h->bev == NULL)
		return;
	if (h->resp_started) {
		hconn_close(h);
		return;
	}
	body = error_json(error_code(status), msg);
	out = bufferevent_get_output(h->bev);
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", status, http1_reason(status),
	    body ? strlen(body) : 0, body ? body : "");
	free(body);
	count_status(h->s, status);
	log_info("relay", "event=http.response status=%d origin=relay hc=%s target=%s why=%s", status,
	    log_q(h->ent ? h->ent->name : "-"), log_q(h->target), log_q(msg));
	if (h->deadline)
		evtimer_del(h->deadline);
	bufferevent_enable(h->bev, EV_WRITE);
	hconn_close_after_flush(h);
}

static void
h_deadline(evutil_socket_t fd, short w, void *arg)
{
	struct hconn *h = arg;

	if (h->st == H_WAIT || h->st == H_BODY)
		hconn_fail(h, 504, "The request was routed to the listener but the listener did not "
		    "respond in the required time.");
}

/* The head deadline passed: handshake_timeout after accept, idle_timeout after
 * the previous answer on a keep-alive connection. */
static void
h_head_expired(evutil_socket_t fd, short w, void *arg)
{
	struct hconn *h = arg;
	bool first = h->req == NULL;

	if (h->dead || h->bev == NULL || h->st != H_HEAD)
		return;
	if (!h->head_seen) {
		hconn_close(h);	/* idle: nothing to answer */
		return;
	}
	h->s->m.head_timeouts++;
	log_info("relay", "event=http.head_timeout peer=%s limit=%s seconds=%d", h->peer,
	    first ? "handshake_timeout" : "idle_timeout",
	    first ? h->s->conf->handshake_timeout : h->s->conf->idle_timeout);
	hconn_fail(h, 408, first ? "the request head did not arrive whole within "
	    "limits.handshake_timeout of the connection's start" : "the next request head did not "
	    "arrive whole within limits.idle_timeout of the previous answer");
}

static void
h_arm_deadline(struct hconn *h)
{
	struct timeval tv = { h->s->conf->response_timeout, 0 };

	evtimer_add(h->deadline, &tv);
}

static void
h_pause(struct hconn *h, bool p)
{
	if (h->paused == p || h->bev == NULL)
		return;
	h->paused = p;
	if (p) {
		bufferevent_disable(h->bev, EV_READ);
	} else {
		if (!h->peer_eof)
			bufferevent_enable(h->bev, EV_READ);
		/* bytes may already wait in the input buffer: no read event for them */
		if (h->resume != NULL)
			event_active(h->resume, 0, 0);
	}
}

static char *
h_request_json(struct hconn *h, bool with_address, bool body)
{
	struct hc_request r = { 0 };
	char *addr = NULL, *json, *eid = sas_url_encode(h->rv_id);
	size_t i, al;

	al = strlen(h->s->public_base) + strlen(h->ent->name) + (eid ? strlen(eid) : 0) + 64;
	addr = malloc(al);
	if (addr == NULL || eid == NULL) {
		free(addr);
		free(eid);
		return NULL;
	}
	snprintf(addr, al, "%s/$hc/%s?sb-hc-action=request&sb-hc-id=%s", h->s->public_base,
	    h->ent->name, eid);
	r.address = with_address ? addr : NULL;
	r.id = h->req_id;
	r.method = h->req->method;
	r.request_target = h->target;
	r.body = body;
	r.remote.set = true;
	r.remote.address = h->peer;
	r.remote.port = h->peer_port;
	for (i = 0; i < h->req->nh; i++) {
		const char *n = h->req->h[i].name;

		if (hc_is_hop_header(n) || strcasecmp(n, "ServiceBusAuthorization") == 0 ||
		    strcasecmp(n, "Expect") == 0 || http1_msg_has_token(h->req, "Connection", n))
			continue;
		if (strcasecmp(n, "Authorization") == 0 && h->auth_header_used)
			continue;
		hc_headers_add(&r.headers, n, h->req->h[i].value);
	}
	json = hc_msg_encode_request(&r);
	hc_headers_clear(&r.headers);
	free(addr);
	free(eid);
	return json;
}

/* Sends what can be sent of the current request. */
static void
h_send_request(struct hconn *h)
{
	char *json;
	size_t bl = evbuffer_get_length(h->body);

	if (h->dead)
		return;
	if (h->rv != NULL && !h->on_rv) {
		/* full request on the rendezvous, body streamed */
		bool has_body = h->big || bl > 0;

		json = h_request_json(h, false, has_body);
		if (json == NULL || ws_send(h->rv, WS_OP_TEXT, json, strlen(json)) != 0) {
			free(json);
			hconn_fail(h, 502, "could not send the request to the listener");
			return;
		}
		free(json);
		h->on_rv = true;
		h->sent = true;
		if (!has_body)
			return;
		h->rv_streaming = true;
	}
	if (h->rv_streaming) {
		while (evbuffer_get_length(h->body) > 0) {
			struct evbuffer_iovec v;

			evbuffer_peek(h->body, -1, NULL, &v, 1);
			ws_send_fragment(h->rv, WS_OP_BINARY, v.iov_base, v.iov_len, false);
			h->s->m.bytes_to_listener += v.iov_len;
			evbuffer_drain(h->body, v.iov_len);
		}
		if (h->body_done) {
			ws_send_fragment(h->rv, WS_OP_BINARY, "", 0, true);
			h->rv_streaming = false;
		}
		h_pause(h, ws_is_congested(h->rv));
		return;
	}
	if (h->sent)
		return;
	if (h->ctl == NULL || h->ctl->closing) {
		hconn_fail(h, 502, "no listener is connected");
		return;
	}
	if (h->big) {
		struct hc_request r = { 0 };
		char addr[1024];
		char *eid = sas_url_encode(h->rv_id);

		snprintf(addr, sizeof addr, "%s/$hc/%s?sb-hc-action=request&sb-hc-id=%s", h->s->public_base,
		    h->ent->name, eid ? eid : "");
		free(eid);
		r.address = addr;
		r.id = h->req_id;
		json = hc_msg_encode_request(&r);
		if (json == NULL || ws_send(h->ctl->ws, WS_OP_TEXT, json, strlen(json)) != 0) {
			free(json);
			hconn_fail(h, 502, "could not send the request to the listener");
			return;
		}
		free(json);
		h->sent = true;
		return;
	}
	if (!h->body_done)
		return;
	json = h_request_json(h, true, bl > 0);
	if (json == NULL || ws_send(h->ctl->ws, WS_OP_TEXT, json, strlen(json)) != 0) {
		free(json);
		hconn_fail(h, 502, "could not send the request to the listener");
		return;
	}
	free(json);
	if (bl > 0) {
		ws_send(h->ctl->ws, WS_OP_BINARY, evbuffer_pullup(h->body, -1), bl);
		h->s->m.bytes_to_listener += bl;
		evbuffer_drain(h->body, bl);
	}
	h->sent = true;
}

static int
h_on_head(const struct http1_msg *m, void *arg)
{
	struct hconn *h = arg;

	http1_msg_free(h->req);
	h->req = http1_msg_dup(m);
	if (h->req == NULL)
		return SHIR_ENOMEM;
	evtimer_del(h->head_timer);
	h->head_seen = false;
	if (conn_kind(h->conn) == CK_HALF)
		conn_set_kind(h->s, h->conn, CK_OTHER);
	if (m->upgrade) {
		/* http-parser stops by itself after an upgrade head (pausing here
		 * would leave the head's last byte unconsumed) */
		h->upgrade = true;
		return 0;
	}
	h->st = H_BODY;
	http1_pause(h->hp);	/* dispatch outside the parser */
	return 0;
}

static void
h_dispatch(struct hconn *h)
{
	struct rsrv *s = h->s;
	char path[TARGET_MAX + 1], *dec = NULL, why[512], *q = NULL;
	const char *query, *suffix;
	struct sas_verified v;
	bool ua, filtered;
	int st;
	uint64_t cl;

	s->m.http_requests++;
	h->resp_started = h->resp_chunked = h->resp_nobody = false;
	h->sent = h->on_rv = h->rv_streaming = h->big = h->body_done = false;
	h->head_req = strcmp(h->req->method, "HEAD") == 0;
	h->keep_alive = h->req->keep_alive;
	make_uuid(h->req_id);
	if (strlen(h->req->target) > TARGET_MAX) {
		snprintf(h->target, sizeof h->target, "%.120s...", h->req->target);
		hconn_fail(h, 414, "the request target is longer than 8192 bytes");
		return;
	}
	split_target(h->req->target, path, sizeof path, &query);
	snprintf(h->target, sizeof h->target, "%s", path);
	if (path[0] != '/' || strcmp(h->req->method, "CONNECT") == 0) {
		hconn_fail(h, 400, "bad request target");
		return;
	}
	if (strncmp(path, "/$hc/", 5) == 0) {
		hconn_fail(h, 400, "WebSocket endpoints need an Upgrade request");
		return;
	}
	if (decode_path(path + 1, &dec) != 0) {
		hconn_fail(h, 400, "the path has a bad percent escape");
		return;
	}
	h->ent = find_entity(s, dec, &suffix);
	free(dec);
	if (h->ent == NULL) {
		hconn_fail(h, 404, "no such hybrid connection");
		return;
	}
	if (!conn_sender_ok(s, h->conn)) {
		hconn_fail(h, 503, "the relay holds as many sender connections as it allows "
		    "(limits.max_connections less limits.reserved_percent, kept for listeners)");
		return;
	}
	st = authorize(s, h->ent, h->req, query, SAS_SEND, &v, &ua, why, sizeof why);
	if (st != 0) {
		hconn_fail(h, st, why);
		return;
	}
	h->auth_header_used = ua;
	if (h->rv_id[0] != '\0' && h->rv_ent != h->ent) {
		/* a rendezvous belongs to one hybrid connection's listener: a request
		 * for another one on this connection must not reach it */
		pend_del(s, h->rv_pend);
		h->rv_pend = NULL;
		if (h->resp_src == h->rv)
			h_resp_unthrottle(h);
		if (h->rv != NULL) {
			ws_close(h->rv, WS_CLOSE_NORMAL, "the sender moved to another hybrid connection");
			ws_set_callbacks(h->rv, &(struct ws_callbacks){ .on_close = front_ws_close }, s);
			h->rv = NULL;
		}
		h->rv_id[0] = '\0';
	}
	q = hc_strip_query(query ? query : "");
	if (q != NULL && *q) {
		size_t l = strlen(h->target);

		snprintf(h->target + l, sizeof h->target - l, "?%s", q);
	}
	free(q);
	if (h->rv == NULL || h->on_rv) {
		h->ctl = pick_listener(h->ent, h->req, &filtered);
		if (h->ctl == NULL && h->rv == NULL) {
			if (filtered)
				hconn_fail(h, 404, "None of the connected listeners meet the "
				    "AllowedListeners/DisallowedListeners criteria");
			else
				hconn_fail(h, 502, "no listener is connected to this hybrid connection");
			return;
		}
	}
	h->on_rv = false;
	h->ent->requests++;
	if (h->rv_id[0] == '\0') {
		make_uuid(h->rv_id);
		h->rv_ent = h->ent;
		h->rv_pend = pend_add(s, P_REQUEST, h->rv_id);
		if (h->rv_pend == NULL) {
			hconn_fail(h, 500, "out of memory");
			return;
		}
		h->rv_pend->h = h;
	}
	cl = h->req->has_length ? h->req->content_length : 0;
	if (h->req->chunked || cl + 2048 > (uint64_t)s->conf->inline_max)
		h->big = h->req->chunked ? false : true;
	if (h->req->expect_continue)
		evbuffer_add_printf(bufferevent_get_output(h->bev), "HTTP/1.1 100 Continue\r\n\r\n");
	h_arm_deadline(h);
	h->st = H_BODY;
	if (!h->req->chunked && !h->req->has_length)
		h->body_done = false;
	h_send_request(h);
}

static int
h_on_body(const uint8_t *d, size_t n, void *arg)
{
	struct hconn *h = arg;

	if (h->dead || evbuffer_add(h->body, d, n) != 0)
		return SHIR_ENOMEM;
	if (!h->big && evbuffer_get_length(h->body) + 2048 > (size_t)h->s->conf->inline_max) {
		/* a chunked body that grew too large: switch to the rendezvous */
		h->big = true;
		if (h->rv == NULL)
			h_send_request(h);
	}
	if (h->rv_streaming || (h->rv != NULL && h->on_rv))
		h_send_request(h);
	if (evbuffer_get_length(h->body) > (size_t)h->s->conf->tunnel_buffer) {
		h_pause(h, true);
		http1_pause(h->hp);
	}
	return 0;
}

static int
h_on_complete(void *arg)
{
	struct hconn *h = arg;

	if (h->upgrade && h->st == H_HEAD)
		return 0;
	h->body_done = true;
	h->st = H_WAIT;
	http1_pause(h->hp);	/* one request at a time */
	return 0;
}

static void h_read(struct bufferevent *bev, void *arg);

static void
h_feed(struct hconn *h)
{
	struct evbuffer *in;
	struct shir_error err;

	while (!h->dead && h->bev != NULL && !h->paused) {
		struct evbuffer_iovec v;
		size_t used = 0;
		int rc;

		in = bufferevent_get_input(h->bev);
		if (evbuffer_get_length(in) == 0)
			break;
		if (h->st == H_WAIT || h->st == H_RESP || h->st == H_CLOSING)
			break;
		if (h->st == H_HEAD)
			h->head_seen = true;
		evbuffer_peek(in, -1, NULL, &v, 1);
		http1_resume(h->hp);
		rc = http1_feed(h->hp, v.iov_base, v.iov_len, &used, &err);
		evbuffer_drain(in, used);
		if (rc != 0) {
			/* RFC 9112: bad framing (a transfer coding other than chunked,
			 * a bad or overflowing chunk size, bad chunk delimiters) gets
			 * 400 and the connection closes, in the head or the body; the
			 * request, if the listener has it, is void (its rendezvous
			 * closes with 1001) */
			if (h->req == NULL || h->st == H_HEAD)
				hconn_fail(h, rc == SHIR_ETOOBIG ? 431 : 400, err.msg);
			else
				hconn_fail(h, rc == SHIR_ENOMEM ? 500 : 400, err.msg);
			return;
		}
		if (h->upgrade && h->st == H_HEAD) {
			/* hand the connection to a WebSocket endpoint */
			struct ws_options o = ws_opts(h->s);
			struct ws *ws;
			struct bufferevent *bev = h->bev;

			h->bev = NULL;
			/* WebSockets are long-lived: no HTTP head/idle timeout from here on,
			 * and ws bounds its own input (it reads only what it can pass on) */
			bufferevent_set_timeouts(bev, NULL, NULL);
			bufferevent_setwatermark(bev, EV_READ, 0, 0);
			ws = ws_new_server_with_request(bev, h->req, NULL, 0, &o,
			    &(struct ws_callbacks){ .on_request = front_ws_request, .on_close = front_ws_close },
			    h->s, &err);
			if (ws == NULL) {
				h->bev = bev;
				hconn_fail(h, 400, err.msg);
				return;
			}
			/* the connection (count and record) moves from the hconn to the ws */
			ws_set_tag(ws, h->conn);
			h->conn = NULL;
			hconn_close(h);
			return;
		}
		if (h->st == H_BODY && !h->sent && h->req_id[0] == '\0') {
			h_dispatch(h);
			continue;
		}
		if (h->st == H_BODY && h->req_id[0] == '\0')
			h_dispatch(h);
		if (h->st == H_WAIT && !h->sent)
			h_send_request(h);
		else if (h->st == H_WAIT)
			h_send_request(h);	/* flush the body's end on the rendezvous */
		if (used == 0 && h->st != H_BODY)
			break;
	}
}

static void
h_read(struct bufferevent *bev, void *arg)
{
	h_feed(arg);
}

static void
h_resume_cb(evutil_socket_t fd, short w, void *arg)
{
	struct hconn *h = arg;

	if (!h->dead)
		h_feed(h);
}

static void
hconn_try_resume(struct hconn *h)
{
	if (h->dead || h->bev == NULL)
		return;
	h_pause(h, false);
	h_feed(h);
}

static void
h_write(struct bufferevent *bev, void *arg)
{
	struct hconn *h = arg;

	if (h->resp_src != NULL &&
	    evbuffer_get_length(bufferevent_get_output(bev)) <= (size_t)h->s->conf->tunnel_buffer / 4)
		h_resp_unthrottle(h);
	if (h->st == H_CLOSING && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		hconn_close(h);
}

/* The sender closed (or reset) its connection while its answer was owed:
 * the request is void. Its rendezvous, if any, is closed with 1001 by the
 * reap; an inline request on a control channel is cancelled there with a
 * {"cancel"} message when the listener asked for those (Shir-Relay-Features:
 * cancel on its listen), so the node stops working for nobody. */
static void
h_sender_gone(struct hconn *h, short what)
{
	struct rsrv *s = h->s;
	bool inline_req = h->sent && !h->on_rv && !h->big && h->rv == NULL;

	s->m.senders_gone++;
	log_info("relay", "event=http.sender_gone hc=%s target=%s request=%s how=%s rendezvous=%d "
	    "cancel=%d", log_q(h->ent ? h->ent->name : "-"), log_q(h->target), log_q(h->req_id),
	    (what & BEV_EVENT_ERROR) ? "reset" : "eof", h->rv != NULL,
	    inline_req && h->ctl != NULL && h->ctl->cancel_ok);
	if (inline_req && h->ctl != NULL && !h->ctl->closing && h->ctl->cancel_ok) {
		char msg[ID_MAX + 96];
		int n = snprintf(msg, sizeof msg, "{\"cancel\":{\"id\":\"%s\",\"reason\":"
		    "\"the sender went away\"}}", h->req_id);

		if (n > 0 && (size_t)n < sizeof msg && ws_send(h->ctl->ws, WS_OP_TEXT, msg, (size_t)n) == 0)
			s->m.cancels_sent++;
	}
}

static void
h_event(struct bufferevent *bev, short what, void *arg)
{
	struct hconn *h = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
		/* deferred callbacks may merge a read EOF with a write error: only a
		 * pure read EOF is a half-close */
		if ((what & BEV_EVENT_EOF) && !(what & (BEV_EVENT_ERROR | BEV_EVENT_WRITING |
		    BEV_EVENT_TIMEOUT)) && h->st == H_RESP) {
			/* half-close once the answer is under way: it is written to
			 * the end, then the connection closes */
			h->peer_eof = true;
			bufferevent_disable(bev, EV_READ);
			return;
		}
		/* before the answer starts, an end of file is the sender going
		 * away (as Azure Relay reads it), half-close or not: see
		 * docs/relay.md "Senders that go away" */
		if (!h->dead && !h->resp_started && h->req_id[0] &&
		    (h->st == H_WAIT || (h->st == H_BODY && h->sent)))
			h_sender_gone(h, what);
		hconn_close(h);
	}
}

/* Start of a response from the listener. */
static void
h_response(struct hconn *h, const struct hc_response *r, void **src)
{
	struct evbuffer *out;
	size_t i, nbad = 0;
	const char *bad = NULL;
	int st = r->status;

	if (h->dead || h->bev == NULL || (h->st != H_WAIT && h->st != H_BODY)) {
		return;
	}
	if (st < 200 || st > 599) {
		/* a 1xx is interim (the sender would take the next response for
		 * this one's) and 6xx..9xx are not HTTP: never written */
		log_info("relay", "event=http.bad_response_status hc=%s target=%s status=%d",
		    log_q(h->ent ? h->ent->name : "-"), log_q(h->target), st);
		hconn_fail(h, 502, "the listener answered with a status that is not a final HTTP "
		    "status (200-599)");
		return;
	}
	if (h->deadline)
		evtimer_del(h->deadline);
	if (!h->body_done)
		h->keep_alive = false;	/* answered before the request body ended */
	out = bufferevent_get_output(h->bev);
	{
		/* the listener's statusDescription must not break the status line */
		char reason[128];
		size_t k;

		snprintf(reason, sizeof reason, "%s", r->status_description && *r->status_description ?
		    r->status_description : http1_reason(st));
		for (k = 0; reason[k]; k++)
			if ((unsigned char)reason[k] < 0x20 || reason[k] == 0x7f)
				reason[k] = ' ';
		evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", st, reason);
	}
	for (i = 0; i < r->headers.n; i++) {
		const char *n = r->headers.v[i].name, *v = r->headers.v[i].value;

		if (!hc_header_name_ok(n) || !hc_header_value_ok(v)) {
			/* never written: it could end the head or add lines */
			if (nbad++ == 0)
				bad = n;
			continue;
		}
		if (hc_is_hop_header(n) || strcasecmp(n, "Via") == 0 ||
		    hc_header_is_connection_option(&r->headers, n))
			continue;
		evbuffer_add_printf(out, "%s: %s\r\n", n, v);
	}
	{
		const char *via = NULL;

		for (i = 0; i < r->headers.n; i++)
			if (strcasecmp(r->headers.v[i].name, "Via") == 0)
				via = r->headers.v[i].value;
		if (via != NULL && hc_header_value_ok(via))
			evbuffer_add_printf(out, "Via: %s, 1.1 %s\r\n", via, via_host(h->s, h->req));
		else
			evbuffer_add_printf(out, "Via: 1.1 %s\r\n", via_host(h->s, h->req));
	}
	if (nbad > 0)
		log_info("relay", "event=http.bad_response_header hc=%s target=%s dropped=%zu first=%s "
		    "why=%s", log_q(h->ent ? h->ent->name : "-"), log_q(h->target), nbad, log_q(bad),
		    hc_header_name_ok(bad) ? "control character in the value" :
		    "the name is not an RFC 7230 token");
	if (!h->keep_alive)
		evbuffer_add_printf(out, "Connection: close\r\n");
	h->resp_started = true;
	h->resp_nobody = h->head_req || st == 204 || st == 304 || (st >= 100 && st < 200);
	count_status(h->s, st);
	log_info("relay", "event=http.response status=%d origin=listener hc=%s target=%s", st,
	    log_q(h->ent ? h->ent->name : "-"), log_q(h->target));
	if (!r->body) {
		if (!h->resp_nobody)
			evbuffer_add_printf(out, "Content-Length: 0\r\n");
		evbuffer_add(out, "\r\n", 2);
		h->st = H_RESP;
		h_resp_body(h, NULL, 0, true);
		return;
	}
	h->st = H_RESP;
	if (h->resp_nobody) {
		evbuffer_add(out, "\r\n", 2);
		h->resp_chunked = false;
	} else if (h->req->http_major == 1 && h->req->http_minor == 0) {
		/* HTTP/1.0 has no chunked coding: the body ends with the connection */
		if (h->keep_alive)
			evbuffer_add_printf(out, "Connection: close\r\n");
		h->keep_alive = false;
		evbuffer_add(out, "\r\n", 2);
		h->resp_chunked = false;
	} else {
		evbuffer_add_printf(out, "Transfer-Encoding: chunked\r\n\r\n");
		h->resp_chunked = true;
	}
}

static void
h_resp_body(struct hconn *h, const uint8_t *d, size_t n, bool fin)
{
	struct evbuffer *out;

	if (h->dead || h->bev == NULL || h->st != H_RESP)
		return;
	out = bufferevent_get_output(h->bev);
	if (n > 0 && !h->resp_nobody) {
		if (h->resp_chunked)
			evbuffer_add_printf(out, "%zx\r\n", n);
		evbuffer_add(out, d, n);
		if (h->resp_chunked)
			evbuffer_add(out, "\r\n", 2);
		h->s->m.bytes_to_sender += n;
	}
	if (!fin)
		return;
	if (h->resp_chunked)
		evbuffer_add(out, "0\r\n\r\n", 5);
	h->req_id[0] = '\0';
	if (!h->keep_alive || h->s->shutting_down) {
		hconn_close_after_flush(h);
		return;
	}
	/* next request on this connection */
	h->st = H_HEAD;
	h->upgrade = false;
	evbuffer_drain(h->body, evbuffer_get_length(h->body));
	{
		struct timeval tv = { h->s->conf->idle_timeout, 0 };

		h->head_seen = false;
		evtimer_add(h->head_timer, &tv);
	}
	http1_resume(h->hp);
	h_pause(h, false);
	h_feed(h);
	/* a sender that half-closed gets its answers, then the connection ends */
	if (!h->dead && h->bev != NULL && h->st == H_HEAD && h->peer_eof &&
	    evbuffer_get_length(bufferevent_get_input(h->bev)) == 0)
		hconn_close_after_flush(h);
}

/* Request rendezvous callbacks: responses (and their bodies) come back here. */
static int
rv_fragment(struct ws *ws, enum ws_opcode op, const uint8_t *d, size_t n, bool first, bool fin,
    void *arg)
{
	struct hconn *h = arg;

	if (op == WS_OP_TEXT)
		return WS_ASSEMBLE;
	if (h->rv_discard) {
		if (fin)
			h->rv_discard = false;
		return WS_STREAM;
	}
	if (h->st == H_RESP) {
		h_resp_body(h, d, n, fin);
		h_resp_throttle(h, ws);
	}
	return WS_STREAM;
}

static void
rv_message(struct ws *ws, enum ws_opcode op, const uint8_t *d, size_t n, void *arg)
{
	struct hconn *h = arg;
	struct hc_msg m;
	struct shir_error err;

	if (hc_msg_decode((const char *)d, n, &m, &err) != 0) {
		log_info("relay", "event=rendezvous.bad_message error=%s", log_q(err.msg));
		return;
	}
	/* a rendezvous belongs to one sender connection: it answers that
	 * connection's request and nothing else */
	if (m.type == HC_MSG_RESPONSE && h->req_id[0] && !h->dead &&
	    strcmp(m.response.request_id, h->req_id) == 0 && (h->st == H_WAIT || h->st == H_BODY)) {
		h_response(h, &m.response, NULL);
	} else if (m.type == HC_MSG_RESPONSE) {
		log_info("relay", "event=rendezvous.%s_response hc=%s rendezvous=%s request=%s",
		    find_inflight(h->s, m.response.request_id, NULL) != NULL ? "foreign" : "unknown",
		    log_q(h->ent ? h->ent->name : "-"), log_q(h->rv_id), log_q(m.response.request_id));
		if (m.response.body)
			h->rv_discard = true;
	}
	hc_msg_clear(&m);
}

static void
rv_writable(struct ws *ws, void *arg)
{
	struct hconn *h = arg;

	if (!h->dead && h->rv_streaming)
		hconn_try_resume(h);
}

static void
rv_close(struct ws *ws, int code, const char *reason, bool remote, void *arg)
{
	struct hconn *h = arg;

	log_info("relay", "event=request.rendezvous_closed id=%s code=%d", log_q(h->rv_id), code);
	h->rv = NULL;
	if (h->resp_src == ws)
		h->resp_src = NULL;
	rs_ws_free(h->s, ws);
	/* §3.7: the sender's connection goes with its rendezvous */
	if (h->st == H_RESP || h->st == H_HEAD)
		hconn_close_after_flush(h);
	else
		hconn_fail(h, 502, "the listener closed the rendezvous");
}

static const struct ws_callbacks RV_CB = {
	.on_message = rv_message,
	.on_fragment = rv_fragment,
	.on_writable = rv_writable,
	.on_close = rv_close,
};

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
		if (h) {
			if (h->reap)
				event_free(h->reap);
			http1_free(h->hp);
			if (h->body)
				evbuffer_free(h->body);
			if (h->deadline)
				event_free(h->deadline);
			if (h->resume)
				event_free(h->resume);
			free(h);
		}
		bufferevent_free(bev);
		conn_gone(s, conn);
		return;
	}
	h->s = s;
	h->bev = bev;
	h->conn = conn;
	clock_gettime(CLOCK_MONOTONIC, &h->since);
	peer_of(bev, h->peer, sizeof h->peer, &h->peer_port);
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

struct lctx {
	struct rsrv *s;
	bool tls;
};

static void
accept_cb2(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	struct lctx *c = arg;
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

/* ---- admin: /metrics and /status -------------------------------------------------- */

static void
admin_metrics(struct evhttp_request *req, void *arg)
{
	struct rsrv *s = arg;
	struct evbuffer *b = evbuffer_new();
	struct ent *e;
	int i;
	long ntun = 0, nh = 0;
	struct tunnel *t;
	struct hconn *h;

	for (t = s->tunnels; t; t = t->next)
		ntun += t->open;
	for (h = s->hconns; h; h = h->next)
		nh++;
	evbuffer_add_printf(b,
	    "# HELP shir_relay_connections Open TCP connections (all kinds).\n"
	    "# TYPE shir_relay_connections gauge\nshir_relay_connections %ld\n"
	    "# TYPE shir_relay_connections_total counter\nshir_relay_connections_total %llu\n"
	    "# TYPE shir_relay_connections_rejected_total counter\nshir_relay_connections_rejected_total %llu\n"
	    "# HELP shir_relay_listeners Connected control channels.\n"
	    "# TYPE shir_relay_listeners gauge\nshir_relay_listeners %ld\n"
	    "# TYPE shir_relay_tunnels gauge\nshir_relay_tunnels %ld\n"
	    "# TYPE shir_relay_http_connections gauge\nshir_relay_http_connections %ld\n"
	    "# TYPE shir_relay_pending_rendezvous gauge\nshir_relay_pending_rendezvous %zu\n"
	    "# TYPE shir_relay_listen_total counter\n"
	    "shir_relay_listen_total{result=\"ok\"} %llu\nshir_relay_listen_total{result=\"refused\"} %llu\n"
	    "shir_relay_listen_total{result=\"rate_limited\"} %llu\n"
	    "# TYPE shir_relay_tunnels_total counter\n"
	    "shir_relay_tunnels_total{result=\"accept_sent\"} %llu\n"
	    "shir_relay_tunnels_total{result=\"rejected\"} %llu\n"
	    "shir_relay_tunnels_total{result=\"timeout\"} %llu\n"
	    "# TYPE shir_relay_bytes_total counter\n"
	    "shir_relay_bytes_total{direction=\"to_listener\"} %llu\n"
	    "shir_relay_bytes_total{direction=\"to_sender\"} %llu\n"
	    "# TYPE shir_relay_token_events_total counter\n"
	    "shir_relay_token_events_total{event=\"renewed\"} %llu\n"
	    "shir_relay_token_events_total{event=\"renew_failed\"} %llu\n"
	    "shir_relay_token_events_total{event=\"expired\"} %llu\n"
	    "# TYPE shir_relay_http_requests_total counter\nshir_relay_http_requests_total %llu\n"
	    "# TYPE shir_relay_http_responses_total counter\n",
	    s->nconns, (unsigned long long)s->m.conns_total, (unsigned long long)s->m.conns_rejected,
	    s->nctl_total, ntun, nh, s->npend, (unsigned long long)s->m.listen_ok,
	    (unsigned long long)s->m.listen_fail, (unsigned long long)s->m.listen_ratelimited,
	    (unsigned long long)s->m.tunnels_total, (unsigned long long)s->m.tunnels_rejected,
	    (unsigned long long)s->m.tunnels_timeout, (unsigned long long)s->m.bytes_to_listener,
	    (unsigned long long)s->m.bytes_to_sender, (unsigned long long)s->m.renew_ok,
	    (unsigned long long)s->m.renew_fail, (unsigned long long)s->m.token_expired,
	    (unsigned long long)s->m.http_requests);
	for (i = 1; i < 6; i++)
		evbuffer_add_printf(b, "shir_relay_http_responses_total{class=\"%dxx\"} %llu\n", i,
		    (unsigned long long)s->m.http_status[i]);
	evbuffer_add_printf(b, "shir_relay_http_responses_total{status=\"401\"} %llu\n"
	    "shir_relay_http_responses_total{status=\"403\"} %llu\n"
	    "shir_relay_http_responses_total{status=\"404\"} %llu\n"
	    "shir_relay_http_responses_total{status=\"502\"} %llu\n"
	    "shir_relay_http_responses_total{status=\"504\"} %llu\n",
	    (unsigned long long)s->m.http_401, (unsigned long long)s->m.http_403,
	    (unsigned long long)s->m.http_404, (unsigned long long)s->m.http_502,
	    (unsigned long long)s->m.http_504);
	evbuffer_add_printf(b, "# HELP shir_relay_connections_by_kind Open connections: half-open "
	    "(first head not parsed yet), senders, node side (listeners and rendezvous).\n"
	    "# TYPE shir_relay_connections_by_kind gauge\n"
	    "shir_relay_connections_by_kind{kind=\"half_open\"} %ld\n"
	    "shir_relay_connections_by_kind{kind=\"sender\"} %ld\n"
	    "shir_relay_connections_by_kind{kind=\"node\"} %ld\n"
	    "# HELP shir_relay_limit_events_total Connections and requests the limits acted on.\n"
	    "# TYPE shir_relay_limit_events_total counter\n"
	    "shir_relay_limit_events_total{limit=\"per_address\"} %llu\n"
	    "shir_relay_limit_events_total{limit=\"evicted_half_open\"} %llu\n"
	    "shir_relay_limit_events_total{limit=\"sender_budget\"} %llu\n"
	    "shir_relay_limit_events_total{limit=\"head_timeout\"} %llu\n"
	    "shir_relay_limit_events_total{limit=\"sender_backlog\"} %llu\n"
	    "# HELP shir_relay_senders_gone_total Senders that left while their answer was owed.\n"
	    "# TYPE shir_relay_senders_gone_total counter\nshir_relay_senders_gone_total %llu\n"
	    "# TYPE shir_relay_cancels_sent_total counter\nshir_relay_cancels_sent_total %llu\n",
	    s->nhalf, s->nsender, s->nnode, (unsigned long long)s->m.conns_per_address,
	    (unsigned long long)s->m.conns_evicted, (unsigned long long)s->m.senders_refused,
	    (unsigned long long)s->m.head_timeouts, (unsigned long long)s->m.senders_dropped,
	    (unsigned long long)s->m.senders_gone, (unsigned long long)s->m.cancels_sent);
	evbuffer_add_printf(b, "# HELP shir_relay_rendezvous_seconds Time from accept/request to the "
	    "listener's rendezvous.\n# TYPE shir_relay_rendezvous_seconds histogram\n");
	for (i = 0; i < 8; i++)
		evbuffer_add_printf(b, "shir_relay_rendezvous_seconds_bucket{le=\"%g\"} %llu\n", RV_BOUNDS[i],
		    (unsigned long long)s->m.rv_buckets[i]);
	evbuffer_add_printf(b, "shir_relay_rendezvous_seconds_bucket{le=\"+Inf\"} %llu\n"
	    "shir_relay_rendezvous_seconds_sum %.6f\nshir_relay_rendezvous_seconds_count %llu\n",
	    (unsigned long long)s->m.rv_count, s->m.rv_sum, (unsigned long long)s->m.rv_count);
#ifdef __GLIBC__
	{
		struct mallinfo2 mi = mallinfo2();

		evbuffer_add_printf(b, "# HELP shir_relay_heap_bytes Heap memory in use (glibc mallinfo2).\n"
		    "# TYPE shir_relay_heap_bytes gauge\nshir_relay_heap_bytes %zu\n",
		    mi.uordblks + mi.hblkhd);
	}
#endif
	evbuffer_add_printf(b, "# TYPE shir_relay_entity_listeners gauge\n");
	for (e = s->ents; e; e = e->next)
		evbuffer_add_printf(b, "shir_relay_entity_listeners{hc=\"%s\"} %d\n", e->name, e->nctl);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void
admin_status(struct evhttp_request *req, void *arg)
{
	struct rsrv *s = arg;
	cJSON *o = cJSON_CreateObject(), *ents, *pend;
	struct ent *e;
	struct pend *p;
	struct evbuffer *b = evbuffer_new();
	char *txt;

	cJSON_AddStringToObject(o, "program", "shir-relay");
	cJSON_AddStringToObject(o, "version", PACKAGE_VERSION);
	cJSON_AddNumberToObject(o, "uptimeSeconds", (double)(time(NULL) - s->started));
	cJSON_AddStringToObject(o, "publicUrl", s->public_base);
	cJSON_AddNumberToObject(o, "connections", (double)s->nconns);
	ents = cJSON_AddArrayToObject(o, "entities");
	for (e = s->ents; e; e = e->next) {
		cJSON *j = cJSON_CreateObject(), *ls = NULL;
		struct ctl *c;

		cJSON_AddItemToArray(ents, j);
		cJSON_AddStringToObject(j, "name", e->name);
		cJSON_AddBoolToObject(j, "anonymousSenders", e->anonymous);
		cJSON_AddNumberToObject(j, "requests", (double)e->requests);
		cJSON_AddNumberToObject(j, "accepts", (double)e->accepts);
		ls = cJSON_AddArrayToObject(j, "listeners");
		for (c = e->ctls; c; c = c->next) {
			cJSON *l = cJSON_CreateObject();

			cJSON_AddItemToArray(ls, l);
			cJSON_AddStringToObject(l, "id", c->id);
			cJSON_AddStringToObject(l, "remote", c->peer);
			cJSON_AddNumberToObject(l, "connectedSeconds", (double)(time(NULL) - c->since));
			cJSON_AddNumberToObject(l, "tokenExpiry", (double)c->expiry);
		}
	}
	{
		static const char *const hs[] = { "head", "body", "wait", "response", "closing" };
		cJSON *hc = cJSON_AddArrayToObject(o, "httpConnections");
		struct hconn *h;
		int n = 0;

		for (h = s->hconns; h != NULL && n < 100; h = h->next, n++) {
			cJSON *j = cJSON_CreateObject();

			cJSON_AddItemToArray(hc, j);
			cJSON_AddStringToObject(j, "state", hs[h->st]);
			cJSON_AddStringToObject(j, "peer", h->peer);
			cJSON_AddStringToObject(j, "target", h->target);
			cJSON_AddBoolToObject(j, "rendezvous", h->rv != NULL);
			cJSON_AddBoolToObject(j, "paused", h->paused);
			cJSON_AddBoolToObject(j, "senderClosed", h->peer_eof);
			cJSON_AddNumberToObject(j, "outputBytes", h->bev ?
			    (double)evbuffer_get_length(bufferevent_get_output(h->bev)) : 0);
			cJSON_AddNumberToObject(j, "inputBytes", h->bev ?
			    (double)evbuffer_get_length(bufferevent_get_input(h->bev)) : 0);
			cJSON_AddNumberToObject(j, "events", h->bev ? bufferevent_get_enabled(h->bev) : 0);
			cJSON_AddNumberToObject(j, "ageSeconds", since(&h->since));
		}
	}
	pend = cJSON_AddArrayToObject(o, "pendingRendezvous");
	for (p = s->pends; p; p = p->next) {
		cJSON *j = cJSON_CreateObject();

		cJSON_AddItemToArray(pend, j);
		cJSON_AddStringToObject(j, "kind", p->kind == P_ACCEPT ? "accept" : "request");
		cJSON_AddStringToObject(j, "id", p->id);
		cJSON_AddNumberToObject(j, "ageSeconds", since(&p->created));
	}
	txt = cJSON_Print(o);
	evbuffer_add_printf(b, "%s\n", txt ? txt : "{}");
	free(txt);
	cJSON_Delete(o);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
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
	struct lchan_ws *ls;
	struct lctx *c;

	if (parse_hostport(spec, host, sizeof host, &port) != 0)
		return shir_error_set(e, SHIR_ECONFIG, "%s is not host:port", spec);
	if (!tls && !is_loopback(host) && !s->conf->allow_plain_nonloopback)
		return shir_error_set(e, SHIR_ECONFIG,
		    "plain (non-TLS) listen address %s is not loopback: use listen_tls, or set "
		    "allow_plain_nonloopback = true if a TLS proxy fronts the relay", spec);
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
	if (load_state(s, &e) != 0)
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
rsrv_start(struct rsrv *s, struct shir_error *e)
{
	int rc;
	struct timeval one = { 1, 0 };

	if ((rc = load_state(s, e)) != 0)
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
		if (s->admin == NULL || evhttp_bind_socket(s->admin, host, (ev_uint16_t)port) != 0)
			return shir_error_set(e, SHIR_EIO, "cannot listen on the admin address %s",
			    s->conf->admin);
		evhttp_set_allowed_methods(s->admin, EVHTTP_REQ_GET);
		evhttp_set_cb(s->admin, "/metrics", admin_metrics, s);
		evhttp_set_cb(s->admin, "/status", admin_status, s);
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
	return load_state(s, e);
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
	if (load_state(s, &e) != 0) {
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
	struct lchan_ws *ls;
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
	for (t = s->tunnels; t; t = t->next) {
		if (t->snd && !t->snd_closed)
			ws_close(t->snd, WS_CLOSE_GOING_AWAY, "relay shutting down");
		if (t->lst && !t->lst_closed)
			ws_close(t->lst, WS_CLOSE_GOING_AWAY, "relay shutting down");
	}
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
	struct lchan_ws *ls;
	struct ent *e;

	if (s == NULL)
		return;
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
	while (s->tunnels != NULL)
		tunnel_reap(-1, 0, s->tunnels);
	while ((e = s->ents) != NULL || (e = s->graveyard) != NULL) {
		if (e == s->ents)
			s->ents = e->next;
		else
			s->graveyard = e->next;
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
