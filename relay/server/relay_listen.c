/* relay_listen: listeners' control channels (pings, expiry, the messages a
 * listener sends) and the WebSocket front end (listen, connect and rendezvous
 * upgrades routed to their handlers). */
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
#include "relay/sas.h"
#include "relay/ws.h"
#include "relay/server/relay_roster.h"
#include "relay/server/relay_srv_int.h"

/* ---- control channels ------------------------------------------------------- */

void
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

void
ctl_close(struct ctl *c, int code, const char *reason)
{
	/* stays linked (and counted) until its on_close */
	if (!c->closing) {
		c->closing = true;
		ws_close(c->ws, code, reason);
	}
}

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
			/* retryable: another listener of the hybrid connection (a
			 * node of the same runtime) takes it (docs/ha.md) */
			if ((h->st == H_WAIT || h->st == H_BODY) && h->rv == NULL)
				hconn_fail_retry(h, 503, 1, "the node serving the request went away "
				    "before answering; send it again: the runtime's other nodes take it");
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

/* Backpressure on a response body: stop reading its source (control channel
 * or rendezvous) while the sender's output is above tunnel_buffer; h_write
 * resumes it below a quarter of that. */
void
h_resp_unthrottle(struct hconn *h)
{
	if (h->resp_src != NULL) {
		ws_pause_read(h->resp_src, false);
		h->resp_src = NULL;
	}
}

void
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
struct hconn *
h_find_inflight(struct rsrv *s, const char *req_id, const struct ctl *c)
{
	struct hconn *h;

	for (h = s->hconns; h != NULL; h = h->next)
		if (!h->dead && h->req_id[0] && strcmp(h->req_id, req_id) == 0 &&
		    (c == NULL || h->ctl == c))
			return h;
	return NULL;
}

/* A node's sync message goes to every other listener of its hybrid
 * connection that takes them, as it is (the relay cannot read it). Nothing is
 * kept: a listener whose output already holds SYNC_BACKLOG bytes misses it,
 * and the periodic digest exchange of the nodes makes up for it. */
#define SYNC_BACKLOG (1024 * 1024)
#define SYNC_MSG_MAX (128 * 1024)	/* what a node's control channel takes */

static void
ctl_sync_fanout(struct ctl *c, const uint8_t *d, size_t n)
{
	struct ctl *o;
	int sent = 0, dropped = 0;

	if (!c->sync_ok || c->ent == NULL || n > SYNC_MSG_MAX) {
		log_info("relay", "event=listener.sync_refused hc=%s id=%s bytes=%zu why=%s",
		    log_q(c->ent ? c->ent->name : "-"), log_q(c->id), n,
		    log_q(!c->sync_ok ? "the listener did not ask for sync" :
		    n > SYNC_MSG_MAX ? "larger than 128 KiB" : "no hybrid connection"));
		return;
	}
	for (o = c->ent->ctls; o != NULL; o = o->next) {
		if (o == c || !o->sync_ok || o->closing)
			continue;
		if (evbuffer_get_length(bufferevent_get_output(ws_bufferevent(o->ws))) >
		    SYNC_BACKLOG) {
			dropped++;
			continue;
		}
		ws_send(o->ws, WS_OP_TEXT, d, n);
		sent++;
	}
	c->s->m.sync_relayed += (uint64_t)sent;
	c->s->m.sync_dropped += (uint64_t)dropped;
	log_debug("relay", "event=listener.sync hc=%s id=%s bytes=%zu to=%d dropped=%d",
	    log_q(c->ent->name), log_q(c->id), n, sent, dropped);
}

void
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
		struct hconn *h = h_find_inflight(s, m.response.request_id, c);

		if (h != NULL && h->st != H_WAIT && h->st != H_BODY)
			h = NULL;	/* answered already */
		if (h == NULL) {
			/* unknown, finished, or sent to another listener: ignored */
			bool foreign = h_find_inflight(s, m.response.request_id, NULL) != NULL;

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
	} else if (m.type == HC_MSG_SYNC) {
		if (c->inactive != m.sync_inactive)
			log_info("relay", "event=listener.node_state hc=%s id=%s node=%s state=%s",
			    log_q(c->ent ? c->ent->name : ""), log_q(c->id), log_q(c->ann.node),
			    m.sync_inactive ? "Inactive" : "Active");
		c->inactive = m.sync_inactive;
		ctl_sync_fanout(c, d, n);
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

void
rs_ws_fail(struct rsrv *s, struct ws *ws, int status, const char *reason, const char *msg)
{
	char *body = rs_error_json(rs_error_code(status), msg);

	ws_reject(ws, status, reason, "application/json", body, NULL);
	free(body);
}

/* A front-end WebSocket that ends before it belongs to anything. */
void
front_ws_close(struct ws *ws, int code, const char *reason, bool remote, void *arg)
{
	rs_ws_free(arg, ws);
}

static void route_listen(struct rsrv *s, struct ws *ws, const struct http1_msg *req, struct ent *e,
    const char *query);

void
front_ws_request(struct ws *ws, const struct http1_msg *req, void *arg)
{
	struct rsrv *s = arg;
	char path[TARGET_MAX + 1], *dec = NULL, *action = NULL;
	const char *query, *suffix = "";
	struct ent *e;

	if (s->shutting_down) {
		rs_ws_fail(s, ws, 503, NULL, "the relay is shutting down");
		return;
	}
	if (strlen(req->target) > TARGET_MAX) {
		log_info("relay", "event=upgrade.refused status=414 target=%s", log_q(req->target));
		rs_ws_fail(s, ws, 414, NULL, "the request target is longer than 8192 bytes");
		return;
	}
	route_split_target(req->target, path, sizeof path, &query);
	if (strncmp(path, "/$hc/", 5) != 0) {
		rs_ws_fail(s, ws, 404, "Endpoint does not exist",
		    "WebSocket endpoints are under /$hc/{hybrid connection}");
		return;
	}
	if (query == NULL || hc_query_get(query, "sb-hc-action", &action) != 0) {
		free(action);
		action = strdup("connect");	/* a missing action means connect (§2.3) */
	}
	if (action == NULL) {
		rs_ws_fail(s, ws, 500, NULL, "out of memory");
		return;
	}
	if (strcmp(action, "accept") == 0 || strcmp(action, "request") == 0) {
		route_rendezvous(s, ws, req, action, query);
		free(action);
		return;
	}
	if (route_decode_path(path + 5, &dec) != 0) {
		rs_ws_fail(s, ws, 400, NULL, "the path has a bad percent escape");
		free(action);
		return;
	}
	e = route_entity(s, dec, &suffix);
	if (strcmp(action, "listen") == 0) {
		route_listen(s, ws, req, e, query);
	} else if (strcmp(action, "connect") == 0) {
		if (e == NULL)
			rs_ws_fail(s, ws, 404, "Endpoint does not exist", "no such hybrid connection");
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
		rs_ws_fail(s, ws, 400, NULL, "unknown sb-hc-action");
	}
	free(dec);
	free(action);
}

static const char *const SYNC_ACK[] = { "Shir-Relay-Features: sync", NULL };

/* One name per node on a hybrid connection: a live listener with the name c
 * announces, from another installation, refuses c (409, and the live one is
 * pinged: a dead one is dropped, so the next try gets in); so does a live
 * self-contained connection with that name (relay_sc.c). Listeners that
 * announce no name are not compared. Returns true when c was refused (and freed). */
static bool
listen_name_taken(struct rsrv *s, struct ws *ws, struct ent *e, struct ctl *c)
{
	struct ctl *o;
	char reason[96 + ANNOUNCE_NAME_MAX], msg[512 + ANNOUNCE_NAME_MAX];
	const char *peer = NULL;
	time_t since = 0;

	if (c->ann.node[0] == '\0')
		return false;
	for (o = e->ctls; o != NULL; o = o->next)
		if (!o->closing && strcmp(o->ann.node, c->ann.node) == 0 &&
		    strcmp(o->ann.instance, c->ann.instance) != 0)
			break;
	if (o != NULL) {
		ctl_probe(o);
		peer = o->peer;
		since = o->since;
	} else {
		/* the name may be held by a self-contained connection */
		peer = relay_sc_name_user(e, c->ann.node, c->ann.instance, &since);
	}
	if (peer == NULL)
		return false;
	s->m.listen_fail++;
	log_warn("relay", "event=listen.refused status=409 hc=%s node=%s peer=%s other_peer=%s "
	    "why=%s", log_q(e->name), log_q(c->ann.node), c->peer, peer,
	    log_q("another installation listens under this node name"));
	snprintf(reason, sizeof reason, "%s: %s", ANNOUNCE_NAME_IN_USE, c->ann.node);
	snprintf(msg, sizeof msg, "another node named \"%s\" (from %s, listening for %ld s) is "
	    "connected to hybrid connection %s; each node of a runtime needs its own name",
	    c->ann.node, peer, (long)(time(NULL) - since), e->name);
	event_free(c->expiry_timer);
	free(c);
	rs_ws_fail(s, ws, 409, reason, msg);
	return true;
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

	rs_peer_of(ws_bufferevent(ws), peer, sizeof peer, NULL);
	if (fail_limited(s, peer)) {
		s->m.listen_ratelimited++;
		rs_ws_fail(s, ws, 429, NULL, "too many failed listen attempts from this address; wait a minute");
		return;
	}
	if (e == NULL) {
		fail_note(s, peer);
		s->m.listen_fail++;
		log_info("relay", "event=listen.refused status=404 peer=%s target=%s", peer, log_q(req->target));
		rs_ws_fail(s, ws, 404, "Endpoint does not exist", "no such hybrid connection");
		return;
	}
	st = route_authorize(s, e, req, query, SAS_LISTEN, &v, &ua, why, sizeof why);
	if (st != 0) {
		fail_note(s, peer);
		s->m.listen_fail++;
		log_info("relay", "event=listen.refused status=%d hc=%s peer=%s why=%s", st, log_q(e->name),
		    peer, log_q(why));
		rs_ws_fail(s, ws, st, NULL, why);
		return;
	}
	if (e->nctl >= s->conf->max_listeners) {
		fail_note(s, peer);	/* a reconnect storm at the limit is cheap too */
		s->m.listen_fail++;
		rs_ws_fail(s, ws, 403, "Listener limit exceeded", "this hybrid connection has the maximum number of listeners");
		return;
	}
	c = calloc(1, sizeof *c);
	if (c == NULL || (c->expiry_timer = evtimer_new(s->base, ctl_expired, c)) == NULL) {
		free(c);
		rs_ws_fail(s, ws, 500, NULL, "out of memory");
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
		rs_uuid(c->id);
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
			rs_ws_fail(s, ws, 409, "Listener id in use", "a listener with this sb-hc-id is already "
			    "connected to this hybrid connection; use a unique id per listener");
			free(sid);
			return;
		}
	}
	free(sid);
	announce_parse(http1_msg_get(req, ANNOUNCE_NODE), http1_msg_get(req, ANNOUNCE_VERSION),
	    http1_msg_get(req, ANNOUNCE_INSTANCE), &c->ann);
	if (listen_name_taken(s, ws, e, c))
		return;
	ws_set_callbacks(ws, &CTL_CB, c);
	c->sync_ok = hc_list_has_token(http1_msg_get(req, "Shir-Relay-Features") ?
	    http1_msg_get(req, "Shir-Relay-Features") : "", "sync");
	/* a node sends sync messages only to a relay that says it relays them
	 * (Azure Relay would not know them) */
	if (ws_accept(ws, NULL, c->sync_ok ? SYNC_ACK : NULL) != 0) {
		event_free(c->expiry_timer);
		free(c);
		rs_ws_fail(s, ws, 500, NULL, "could not accept");
		return;
	}
	c->next = e->ctls;
	if (e->ctls)
		e->ctls->prev = c;
	e->ctls = c;
	e->nctl++;
	s->nctl_total++;
	conn_set_kind(s, rs_ws_conn(ws), CK_NODE);
	c->cancel_ok = hc_list_has_token(http1_msg_get(req, "Shir-Relay-Features") ?
	    http1_msg_get(req, "Shir-Relay-Features") : "", "cancel");
	if (c->expiry > 0)
		ctl_expiry_arm(c);
	s->m.listen_ok++;
	relay_roster_note(s, e, c->ann.node);
	log_info("relay", "event=listener.connected hc=%s id=%s peer=%s listeners=%d node=%s "
	    "version=%s", log_q(e->name), log_q(c->id), peer, e->nctl, log_q(c->ann.node),
	    log_q(c->ann.version));
}
