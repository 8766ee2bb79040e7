/* relay_tunnel: WebSocket tunnels between a sender and a listener (accept,
 * the pending rendezvous, forwarding with backpressure) and the listener's
 * side of a rendezvous. */
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
#include "relay/server/relay_srv_int.h"

/* ---- pending rendezvous --------------------------------------------------- */

struct pend *
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

void
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

/* ---- WebSocket tunnels ------------------------------------------------------- */

void
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

void
tunnel_check_done(struct tunnel *t)
{
	if ((t->snd == NULL || t->snd_closed) && (t->lst == NULL || t->lst_closed))
		event_active(t->reap, 0, 0);
}

struct ws *
tunnel_other(struct tunnel *t, struct ws *ws)
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
	struct ws *o = tunnel_other(t, ws);

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
	struct ws *o = tunnel_other(t, ws);

	if (o != NULL)
		tun_moved(t, ws, o, n);
}

static void
tun_writable(struct ws *ws, void *arg)
{
	struct tunnel *t = arg;
	struct ws *o = tunnel_other(t, ws);

	if (o != NULL)
		ws_pause_read(o, false);
}

static void
tun_close(struct ws *ws, int code, const char *reason, bool remote, void *arg)
{
	struct tunnel *t = arg;
	struct ws *o = tunnel_other(t, ws);

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
			rs_ws_fail(t->s, o, 410, NULL, "the sender went away");
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
		rs_ws_fail(t->s, t->snd, 504, "Listener did not accept in time",
		    "the listener did not open the rendezvous in time");
}

void
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

	if (!conn_sender_ok(s, rs_ws_conn(ws))) {
		rs_ws_fail(s, ws, 503, NULL, "the relay holds as many sender connections as it allows "
		    "(limits.max_connections less limits.reserved_percent, kept for listeners)");
		return;
	}
	st = route_authorize(s, e, req, query, SAS_SEND, &v, &ua, why, sizeof why);
	if (st != 0) {
		log_info("relay", "event=connect.refused status=%d hc=%s why=%s", st, log_q(e->name), log_q(why));
		rs_ws_fail(s, ws, st, NULL, why);
		return;
	}
	c = route_pick_listener(e, req, &filtered);
	if (c == NULL) {
		rs_ws_fail(s, ws, 404, filtered ? "None of the connected listeners meet the "
		    "AllowedListeners/DisallowedListeners criteria" : "No listener",
		    filtered ? "no connected listener qualifies" : "no listener is connected");
		return;
	}
	rs_uuid(uuid);
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
		rs_ws_fail(s, ws, 500, NULL, "out of memory");
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

		rs_peer_of(ws_bufferevent(ws), peer, sizeof peer, &port);
		a.remote.set = true;
		a.remote.address = peer;
		a.remote.port = port;
		json = hc_msg_encode_accept(&a);
		a.remote.address = NULL;
	}
	if (json == NULL || ws_send(c->ws, WS_OP_TEXT, json, strlen(json)) != 0) {
		rs_ws_fail(s, ws, 502, NULL, "could not reach the listener");
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
		rs_ws_fail(s, ws, 500, NULL, "out of memory");
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

void
route_rendezvous(struct rsrv *s, struct ws *ws, const struct http1_msg *req, const char *action,
    const char *query)
{
	char *id = NULL, *code = NULL, *desc = NULL;
	struct pend *p;

	if (hc_query_get(query, "sb-hc-id", &id) != 0 || (p = pend_find(s, id)) == NULL ||
	    (strcmp(action, "accept") == 0) != (p->kind == P_ACCEPT)) {
		rs_ws_fail(s, ws, 403, "Rendezvous expired or invalid", "unknown or expired rendezvous id");
		goto out;
	}
	rs_observe_rv(s, rs_since(&p->created));
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
				char *body = rs_error_json("Rejected", desc ? desc : "rejected by the listener");

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
				rs_ws_fail(s, ws, 403, "Rendezvous expired or invalid", "the sender is gone");
				goto out;
			}
			t->lst = ws;
			conn_set_kind(s, rs_ws_conn(ws), CK_NODE);
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
		conn_set_kind(s, rs_ws_conn(ws), CK_NODE);
		ws_set_callbacks(ws, &RV_CB, h);
		ws_accept(ws, NULL, NULL);
		log_info("relay", "event=request.rendezvous id=%s", log_q(h->rv_id));
		if (h->st == H_BODY || h->st == H_WAIT) {
			if (h->big && !h_on_rv(h))
				h_send_request(h);
		}
	}
out:
	free(id);
	free(code);
	free(desc);
}
