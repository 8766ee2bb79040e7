/* lchan_ws: one WebSocket of a relay channel: the control channel or a request
 * rendezvous. Its send queue keeps a response's JSON and body together. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "node/api.h"
#include "node/listener/lchan_int.h"
#include "common/log.h"
#include "node/listener/ltun.h"
#include "node/node.h"
#include "relay/announce.h"
#include "relay/ws.h"

void
lchan_ws_resp_free(struct lresp *r)
{
	if (r == NULL)
		return;
	free(r->json), free(r->body), free(r);
}

/* Queues a text message (and a body) on s. Takes json and body. */
int
lchan_ws_queue(struct lchan_ws *s, char *json, char *body, size_t len, int has_body)
{
	struct lresp *r;
	size_t add = (json ? strlen(json) : 0) + len;

	if (s->queued + add > LCHAN_QUEUE_MAX) {
		/* the relay does not read what we send: better lose this answer
		 * (the relay will time it out) than grow without bound */
		log_warn("listener", "event=response.dropped channel=%s bytes=%zu reason=\"%zu bytes "
		    "already wait for the relay to read them\"", log_q(s->ch->cs.name), add, s->queued);
		free(json), free(body);
		return SHIR_ETOOBIG;
	}
	r = calloc(1, sizeof *r);
	if (r == NULL) {
		free(json), free(body);
		return SHIR_ENOMEM;
	}
	r->json = json;
	r->body = body;
	r->len = len;
	r->has_body = has_body;
	TAILQ_INSERT_TAIL(&s->outq, r, link);
	s->queued += add;
	lchan_ws_flush(s);
	if (!s->paused && s->queued > LCHAN_QUEUE_HIGH && s->ws != NULL) {
		/* backpressure: no new requests from this socket until it drains */
		s->paused = 1;
		ws_pause_read(s->ws, true);
	}
	return 0;
}

/* Writes queued messages while the socket is not congested. A response's
 * JSON and its body are one unit: nothing else is sent on this socket until
 * the body's last fragment is out. */
void
lchan_ws_flush(struct lchan_ws *s)
{
	struct lresp *r;

	while (s->open && !s->dead && (r = TAILQ_FIRST(&s->outq)) != NULL) {
		if (!r->started) {
			if (ws_is_congested(s->ws))
				return;
			r->started = 1;
			ws_send(s->ws, WS_OP_TEXT, r->json, strlen(r->json));
			s->ch->cs.bytes_out += strlen(r->json);
			s->queued -= strlen(r->json);
			if (r->has_body && r->len <= LCHAN_FRAGMENT) {
				ws_send(s->ws, WS_OP_BINARY, r->body ? r->body : "", r->len);
				s->ch->cs.bytes_out += r->len;
				s->queued -= r->len;
				r->off = r->len;
			}
		}
		while (r->has_body && r->off < r->len) {
			size_t n = r->len - r->off;

			/* the first fragment goes out with the JSON; later ones wait
			 * for the output to drain */
			if (r->off > 0 && ws_is_congested(s->ws))
				return;
			if (n > LCHAN_FRAGMENT)
				n = LCHAN_FRAGMENT;
			ws_send_fragment(s->ws, WS_OP_BINARY, r->body + r->off, n,
			    r->off + n == r->len);
			r->off += n;
			s->ch->cs.bytes_out += n;
			s->queued -= n;
		}
		TAILQ_REMOVE(&s->outq, r, link);
		lchan_ws_resp_free(r);
	}
	if (s->paused && s->queued < LCHAN_QUEUE_LOW && s->ws != NULL) {
		s->paused = 0;
		ws_pause_read(s->ws, false);
	}
}

void
lchan_ws_free(struct lchan_ws *s)
{
	struct lresp *r;

	if (s == NULL)
		return;
	if (s->dial)
		hcdial_cancel(s->dial);
	if (s->ws)
		ws_free(s->ws);
	while ((r = TAILQ_FIRST(&s->outq)) != NULL) {
		TAILQ_REMOVE(&s->outq, r, link);
		lchan_ws_resp_free(r);
	}
	free(s->url);
	free(s);
}

/* Unlinks s, detaches its requests, and frees it from a zero-delay event. */
void
lchan_ws_kill(struct lchan_ws *s)
{
	struct lchan *ch = s->ch;
	struct lchan_req *q;

	if (s->dead)
		return;
	s->dead = 1;
	s->open = 0;
	TAILQ_FOREACH(q, &ch->reqs, link) {
		if (q->sock != s)
			continue;
		q->sock = NULL;
		if (s->kind == LCHAN_WS_RDV && !q->abandoned) {
			/* a request rendezvous ends when its sender goes (the relay
			 * closes it with 1001): nobody can get this answer any more,
			 * so the work stops (lchan_req_free cancels the API reply) */
			log_info("listener", "event=request.cancelled channel=%s id=%s reason=%s",
			    log_q(ch->cs.name), log_q(q->id),
			    log_q("its rendezvous closed (the sender went away)"));
			q->abandoned = 1;
			event_active(ch->ev_reap, EV_TIMEOUT, 0);
		}
	}
	if (s->body_for != NULL) {
		/* its body will never come: nobody can be answered either */
		log_warn("listener", "event=request.abandoned channel=%s id=%s reason=\"the socket "
		    "closed before the body arrived\"", log_q(ch->cs.name), log_q(s->body_for->id));
		q = s->body_for;
		s->body_for = NULL;
		q->abandoned = 1;
		event_active(ch->ev_reap, EV_TIMEOUT, 0);
	}
	if (ch->ctl == s)
		ch->ctl = NULL;
	TAILQ_REMOVE(&ch->socks, s, link);
	ch->nsocks--;
	TAILQ_INSERT_TAIL(&ch->dead, s, link);
	event_active(ch->ev_reap, EV_TIMEOUT, 0);
}

static void
lchan_ws_on_text(struct lchan_ws *s, const uint8_t *data, size_t len)
{
	struct lchan *ch = s->ch;
	struct lmsg_policy pol;
	struct lmsg_msg m;
	struct ltun_dial d;
	struct shir_error err;

	memset(&pol, 0, sizeof pol);
	pol.hc = ch->spec.path;
	pol.control = s->kind == LCHAN_WS_CONTROL;
	pol.has_forward = lchan_has_forward;
	pol.arg = ch;
	if (lmsg_handle((const char *)data, len, &pol, &m, &err) != 0) {
		log_warn("listener", "event=control.bad channel=%s reason=%s", log_q(ch->cs.name),
		    log_q(err.msg));
		return;
	}
	if (m.kind == LMSG_TUNNEL || m.kind == LMSG_REJECT)
		lchan_tun_dial(ch, m.address, &d);
	switch (m.kind) {
	case LMSG_TUNNEL:
		if (ch->retired || ch->ctx->shutting_down)
			ltun_reject(ch->ctx, &d, &m, 503, "the node is shutting down");
		else
			ltun_accept(ch->ctx, &d, &m);
		break;
	case LMSG_REJECT:
		ltun_reject(ch->ctx, &d, &m, m.code, m.desc);
		break;
	case LMSG_RENDEZVOUS:
		log_debug("listener", "event=request.rendezvous channel=%s id=%s", log_q(ch->cs.name),
		    log_q(m.id));
		lchan_ws_open_rdv(ch, m.address, NULL);
		break;
	case LMSG_REQUEST:
		lchan_req_start(s, &m);
		break;
	case LMSG_CANCEL: {
		struct lchan_req *q;

		TAILQ_FOREACH(q, &ch->reqs, link)
			if (q->sock == s && !q->abandoned && q->id != NULL && strcmp(q->id, m.id) == 0)
				break;
		log_info("listener", "event=request.cancelled channel=%s id=%s found=%d reason=%s",
		    log_q(ch->cs.name), log_q(m.id), q != NULL,
		    log_q("the relay says the sender went away"));
		if (q != NULL) {
			if (s->body_for == q)
				s->body_for = NULL;
			q->abandoned = 1;
			event_active(ch->ev_reap, EV_TIMEOUT, 0);
		}
		break;
	}
	case LMSG_SYNC:
		if (ch->ctx->on_sync != NULL && !ch->retired)
			ch->ctx->on_sync(ch->ctx->sync_arg, (const char *)data, len);
		break;
	case LMSG_IGNORE:
		log_debug("listener", "event=control.ignored channel=%s", log_q(ch->cs.name));
		break;
	}
	lmsg_msg_clear(&m);
}

static void
lchan_ws_ws_open(struct ws *ws, void *arg)
{
	struct lchan_ws *s = arg;
	struct lchan *ch = s->ch;

	s->open = 1;
	if (s->kind == LCHAN_WS_CONTROL) {
		struct timeval tv = { ch->spec.ping_interval, 0 };
		int64_t renew_s = (int64_t)ch->spec.token_lifetime * 2 / 3;
		struct timeval rt = { (time_t)(renew_s > 1 ? renew_s : 1), 0 };

		chstate_connected(&ch->cs, lchan_now_ms());
		ch->last_pong_ms = lchan_now_ms();
		event_add(ch->ev_ping, &tv);
		event_add(ch->ev_renew, &rt);
		log_info("listener", "event=channel.connected channel=%s endpoint=%s path=%s id=%s",
		    log_q(ch->cs.name), log_q(ch->spec.endpoint), log_q(ch->spec.path),
		    ch->listener_id);
		lchan_notify(ch);
	} else {
		log_debug("listener", "event=rendezvous.open channel=%s", log_q(ch->cs.name));
	}
	lchan_ws_flush(s);
}

static void
lchan_ws_ws_failed(struct ws *ws, int status, const char *reason, const struct shir_error *err,
    void *arg)
{
	struct lchan_ws *s = arg;
	struct lchan *ch = s->ch;

	if (s->kind != LCHAN_WS_CONTROL) {
		log_warn("listener", "event=rendezvous.failed channel=%s status=%d reason=%s",
		    log_q(ch->cs.name), status, log_q(status ? reason : err ? err->msg : "?"));
		return;
	}
	if (status != 0)
		lchan_down(ch, CHSTATE_WHY_HANDSHAKE, status, reason);
	else
		lchan_down(ch, err && err->code == SHIR_ETLS ? CHSTATE_WHY_TLS : CHSTATE_WHY_NETWORK, 0,
		    err ? err->msg : reason);
	s->open = 0;
	s->reported = 1;	/* on_close must not report it twice */
}

static void
lchan_ws_ws_message(struct ws *ws, enum ws_opcode op, const uint8_t *data, size_t len, void *arg)
{
	struct lchan_ws *s = arg;

	s->ch->cs.bytes_in += len;
	if (op == WS_OP_TEXT)
		lchan_ws_on_text(s, data, len);
}

static int
lchan_ws_ws_fragment(struct ws *ws, enum ws_opcode op, const uint8_t *data, size_t len, bool first,
    bool fin, void *arg)
{
	struct lchan_ws *s = arg;
	struct lchan_req *q = s->body_for;

	if (op == WS_OP_TEXT)
		return WS_ASSEMBLE;
	s->ch->cs.bytes_in += len;
	if (q == NULL) {
		/* a body nobody waits for (a refused request, or the empty frame
		 * some relays send after body:false): dropped */
		return WS_STREAM;
	}
	if (!q->too_big) {
		if (evbuffer_get_length(q->body) + len > API_MAX_BODY)
			q->too_big = 1;
		else
			evbuffer_add(q->body, data, len);
	}
	if (fin) {
		s->body_for = NULL;
		lchan_req_dispatch(q);
	}
	return WS_STREAM;
}

static void
lchan_ws_ws_pong(struct ws *ws, const uint8_t *data, size_t len, void *arg)
{
	struct lchan_ws *s = arg;

	s->ch->last_pong_ms = lchan_now_ms();
}

static void
lchan_ws_ws_writable(struct ws *ws, void *arg)
{
	lchan_ws_flush(arg);
}

static void
lchan_ws_ws_close(struct ws *ws, int code, const char *reason, bool remote, void *arg)
{
	struct lchan_ws *s = arg;
	struct lchan *ch = s->ch;
	int was_ctl = s->kind == LCHAN_WS_CONTROL && ch->ctl == s && !s->reported;
	int was_open = s->open;

	s->ws = NULL;
	ws_free(ws);	/* released after this callback returns */
	lchan_ws_kill(s);
	if (!was_ctl)
		log_debug("listener", "event=rendezvous.closed channel=%s code=%d", log_q(ch->cs.name),
		    code);
	else if (was_open && ch->cs.state == CHSTATE_CONNECTED)
		lchan_down(ch, code == 1006 && !remote ? CHSTATE_WHY_NETWORK : CHSTATE_WHY_CLOSED,
		    code == 1006 && !remote ? 0 : code,
		    code == 1006 && !remote ? "the connection was lost" : reason);
	if (ch->retired)
		lchan_check_drained(ch);
}

static const struct ws_callbacks lchan_ws_ws_cbs = {
	.on_open = lchan_ws_ws_open,
	.on_handshake_failed = lchan_ws_ws_failed,
	.on_message = lchan_ws_ws_message,
	.on_fragment = lchan_ws_ws_fragment,
	.on_pong = lchan_ws_ws_pong,
	.on_writable = lchan_ws_ws_writable,
	.on_close = lchan_ws_ws_close,
};

void
lchan_ws_dialed(void *arg, struct bufferevent *bev, const struct shir_error *err)
{
	struct lchan_ws *s = arg;
	struct lchan *ch = s->ch;
	struct ws_options opt;
	struct ws_client_request rq;
	char host[300], auth[1400], *token = NULL;
	const char *hdrs[6] = { NULL, NULL, NULL, NULL, NULL, NULL };
	struct announce_lines ann;

	s->dial = NULL;
	if (bev == NULL) {
		if (s->kind == LCHAN_WS_CONTROL) {
			enum chstate_why why = err->code == SHIR_ETLS ? CHSTATE_WHY_TLS :
			    hcdial_via_proxy(err) ? CHSTATE_WHY_PROXY : CHSTATE_WHY_NETWORK;

			lchan_ws_kill(s);
			lchan_down(ch, why, why == CHSTATE_WHY_PROXY ? (int)chstate_proxy_kind(err->code) :
			    0, err->msg);
		} else {
			log_warn("listener", "event=rendezvous.failed channel=%s reason=%s",
			    log_q(ch->cs.name), log_q(err->msg));
			lchan_ws_kill(s);
		}
		return;
	}
	memset(&opt, 0, sizeof opt);
	opt.max_message = 128 * 1024;
	opt.max_frame = 64 * 1024 * 1024;
	opt.handshake_timeout_ms = ch->spec.connect_timeout * 1000;
	memset(&rq, 0, sizeof rq);
	hcdial_host_header(&s->u, host, sizeof host);
	rq.host = host;
	rq.target = s->u.target;
	if (s->kind == LCHAN_WS_CONTROL) {
		if (lchan_token(ch, &token) != 0) {
			bufferevent_free(bev);
			lchan_ws_kill(s);
			lchan_down(ch, CHSTATE_WHY_CONFIG, 0, "cannot make a SAS token from the key");
			return;
		}
		snprintf(auth, sizeof auth, "ServiceBusAuthorization: %s", token);
		OPENSSL_cleanse(token, strlen(token));
		free(token);
		hdrs[0] = auth;
		/* shir-relay then sends {"cancel":{"id":...}} when the sender of an
		 * inline request goes away (docs/relay.md), and relays the nodes'
		 * {"shirSync":...} messages (docs/ha.md); others ignore it */
		hdrs[1] = "Shir-Relay-Features: cancel, sync";
		/* the node's name, version and installation (relay/announce.h) */
		if (announce_headers(node_name(ch->ctx->node), PACKAGE_VERSION, ch->ctx->instance,
		    &ann) == 0) {
			hdrs[2] = ann.node;
			hdrs[3] = ann.version;
			hdrs[4] = ann.instance;
		}
		rq.headers = hdrs;
	}
	s->ws = ws_new_client(bev, &rq, &opt, &lchan_ws_ws_cbs, s);
	OPENSSL_cleanse(auth, sizeof auth);
	if (s->ws == NULL) {
		bufferevent_free(bev);
		lchan_ws_kill(s);
		if (s->kind == LCHAN_WS_CONTROL)
			lchan_down(ch, CHSTATE_WHY_NETWORK, 0, "out of memory");
	}
}

struct lchan_ws *
lchan_ws_new(struct lchan *ch, enum lchan_ws_kind kind, const char *url)
{
	struct lchan_ws *s = calloc(1, sizeof *s);
	struct shir_error err;
	struct hcdial_opts o;

	if (s == NULL)
		return NULL;
	s->ch = ch;
	s->kind = kind;
	TAILQ_INIT(&s->outq);
	if ((s->url = strdup(url)) == NULL ||
	    hcdial_parse_url(url, kind == LCHAN_WS_RDV && ch->u.tls == 0, &s->u, &err) != 0) {
		log_warn("listener", "event=rendezvous.failed channel=%s reason=%s",
		    log_q(ch->cs.name), log_q(s->url ? err.msg : "out of memory"));
		lchan_ws_free(s);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&ch->socks, s, link);
	ch->nsocks++;
	lchan_dial_opts(ch, url, &s->u, &o);
	s->dial = hcdial_start(ch->ctx->base, ch->ctx->dns, &o, lchan_ws_dialed, s);
	if (s->dial == NULL) {
		lchan_ws_kill(s);
		return NULL;
	}
	return s;
}

/* Opens a request rendezvous at address; first (if any) is sent on it once
 * it is open. */
void
lchan_ws_open_rdv(struct lchan *ch, const char *address, struct lresp *first)
{
	struct lchan_ws *s;

	if (ch->nsocks >= LCHAN_MAX_SOCKS) {
		log_warn("listener", "event=rendezvous.refused channel=%s reason=\"too many sockets\"",
		    log_q(ch->cs.name));
		lchan_ws_resp_free(first);
		return;
	}
	s = lchan_ws_new(ch, LCHAN_WS_RDV, address);
	if (s == NULL) {
		lchan_ws_resp_free(first);
		return;
	}
	if (first != NULL) {
		TAILQ_INSERT_TAIL(&s->outq, first, link);
		s->queued += strlen(first->json) + first->len;
	}
}

