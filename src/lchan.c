#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar) \
	for ((var) = TAILQ_FIRST(head); (var) && ((tvar) = TAILQ_NEXT(var, field), 1); (var) = (tvar))
#endif
#include <sys/time.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "api.h"
#include "lchan.h"
#include "lctl.h"
#include "log.h"
#include "ltun.h"
#include "node.h"
#include "relay/sas.h"
#include "relay/ws.h"

#define LCHAN_INLINE_MAX (64 * 1024)	/* response JSON + body on the control channel */
#define LCHAN_FRAGMENT (64 * 1024)	/* streamed body fragments */
#define LCHAN_DEADLINE_S 57		/* default: answer before the relay's 60 s limit */
#define LCHAN_MAX_SOCKS 512		/* rendezvous sockets per channel */
#define LCHAN_MAX_REQS 4096		/* requests in flight per channel */
#define LCHAN_QUEUE_HIGH (8 * 1024 * 1024)	/* queued output: stop reading requests */
#define LCHAN_QUEUE_LOW (2 * 1024 * 1024)	/* ... and read again below this */
#define LCHAN_QUEUE_MAX (64 * 1024 * 1024)	/* never queue more than this per socket */

enum lsock_kind { LSOCK_CONTROL = 0, LSOCK_RDV };

struct lresp {
	char *json;		/* a text message */
	char *body;		/* NULL: no body message */
	size_t len, off;
	int has_body, started;
	TAILQ_ENTRY(lresp) link;
};

struct lreq;

struct lsock {
	struct lchan *ch;
	enum lsock_kind kind;
	struct ws *ws;
	struct ldial *dial;
	char *url;
	struct ldial_url u;
	int open, dead;
	struct lreq *body_for;	/* the request whose body message comes next */
	int reported;		/* the channel already recorded why this socket went down */
	size_t queued;		/* bytes in outq not yet handed to the WebSocket */
	int paused;		/* reading paused because queued is above the high mark */
	TAILQ_HEAD(, lresp) outq;
	TAILQ_ENTRY(lsock) link;
};

struct lreq {
	struct lchan *ch;
	struct lsock *sock;	/* where it came in; NULL once that socket is gone */
	char *id, *address, *method, *target;
	struct evbuffer *body;
	int too_big;
	int refuse;		/* answer at once with this status */
	int abandoned;		/* its socket went away before the body: drop it */
	struct api_reply *handle;
	struct event *ev_deadline;
	int64_t start_ms;
	TAILQ_ENTRY(lreq) link;
};

struct lchan {
	struct lctx *ctx;
	struct lspec spec;
	struct ldial_url u;
	SSL_CTX *ssl;
	struct chstate cs;
	char listener_id[40];
	char sr[600];		/* the SAS resource, encoded */
	struct lsock *ctl;
	TAILQ_HEAD(, lsock) socks;	/* every socket, control included */
	TAILQ_HEAD(, lsock) dead;	/* to free from ev_reap */
	TAILQ_HEAD(, lreq) reqs;
	unsigned nsocks, nreqs;
	struct event *ev_retry, *ev_ping, *ev_renew, *ev_reap, *ev_finish, *ev_drain;
	int64_t last_pong_ms, token_expiry;
	int retired, finished;
	int pending;		/* a make-before-break replacement not yet in service */
};

static void lsock_flush(struct lsock *s);
static void lreq_deadline_cb(evutil_socket_t fd, short what, void *arg);
static void lsock_kill(struct lsock *s);
static void lchan_connect(struct lchan *ch);
static void lchan_check_drained(struct lchan *ch);

static int64_t
lchan_now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static uint32_t
lchan_rand(void)
{
	uint32_t r = 0;

	(void)RAND_bytes((unsigned char *)&r, sizeof r);
	return r;
}

/* --- helpers -------------------------------------------------------------- */

static void
lchan_new_guid(char out[40])
{
	unsigned char b[16];

	if (RAND_bytes(b, sizeof b) != 1)
		memset(b, 0x5a, sizeof b);
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(out, 40, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
	    b[14], b[15]);
}

static int
lchan_token(struct lchan *ch, char **out)
{
	int64_t exp = lchan_now_ms() / 1000 + ch->spec.token_lifetime;
	char uri[1024], *aud = NULL;
	int rc;

	*out = NULL;
	snprintf(uri, sizeof uri, "%s/$hc/%s", ch->spec.endpoint, ch->spec.path);
	if ((rc = sas_audience_dotnet(uri, &aud)) != 0)
		return rc;
	rc = sas_token_build(aud, ch->spec.key_name, ch->spec.key, exp, out);
	free(aud);
	if (rc == 0)
		ch->token_expiry = exp;
	return rc;
}

/* Host header value: host[:port], IPv6 in brackets. */
static void
lchan_host_header(const struct ldial_url *u, char *out, size_t len)
{
	int v6 = strchr(u->host, ':') != NULL;
	int dflt = (u->tls && u->port == 443) || (!u->tls && u->port == 80);

	if (dflt)
		snprintf(out, len, v6 ? "[%s]" : "%s", u->host);
	else
		snprintf(out, len, v6 ? "[%s]:%d" : "%s:%d", u->host, u->port);
}

/* --- state ------------------------------------------------------------------ */

static void
lchan_notify(struct lchan *ch)
{
	if (ch->ctx->on_state)
		ch->ctx->on_state(ch->ctx->arg, ch);
}

static void
lchan_stop_timers(struct lchan *ch)
{
	event_del(ch->ev_ping);
	event_del(ch->ev_renew);
}

/* The channel went down or an attempt failed: record why and plan the retry. */
static void
lchan_down(struct lchan *ch, enum chstate_why why, int code, const char *detail)
{
	int64_t delay;

	lchan_stop_timers(ch);
	if (ch->retired) {
		if (ch->cs.state != CHSTATE_DISCONNECTED)
			log_info("listener", "event=channel.disconnected channel=%s reason=retired",
			    log_q(ch->cs.name));
		ch->cs.state = CHSTATE_DISCONNECTED;
		lchan_check_drained(ch);
		return;
	}
	delay = chstate_down(&ch->cs, lchan_now_ms(), why, code, detail, lchan_rand());
	if (delay < 0) {
		log_error("listener", "event=channel.stopped channel=%s reason=%s", log_q(ch->cs.name),
		    log_q(ch->cs.last_error));
	} else {
		struct timeval tv = { (time_t)(delay / 1000), (suseconds_t)(delay % 1000) * 1000 };

		log_warn("listener", "event=channel.disconnected channel=%s retry_in_ms=%lld reason=%s",
		    log_q(ch->cs.name), (long long)delay, log_q(ch->cs.last_error));
		evtimer_add(ch->ev_retry, &tv);
	}
	lchan_notify(ch);
}

/* --- sockets ----------------------------------------------------------------- */

static void
lresp_free(struct lresp *r)
{
	if (r == NULL)
		return;
	free(r->json), free(r->body), free(r);
}

static void
lreq_free(struct lreq *q)
{
	if (q == NULL)
		return;
	if (q->handle != NULL)
		api_reply_cancel(q->handle);
	if (q->ev_deadline)
		event_free(q->ev_deadline);
	if (q->body)
		evbuffer_free(q->body);
	free(q->id), free(q->address), free(q->method), free(q->target);
	free(q);
}

static void
lreq_finish(struct lreq *q)
{
	struct lchan *ch = q->ch;

	if (q->sock != NULL && q->sock->body_for == q)
		q->sock->body_for = NULL;	/* the rest of its body is dropped */
	TAILQ_REMOVE(&ch->reqs, q, link);
	ch->nreqs--;
	ch->cs.inflight = ch->nreqs;
	lreq_free(q);
	lchan_check_drained(ch);
}

/* Queues a text message (and a body) on s. Takes json and body. */
static int
lsock_queue(struct lsock *s, char *json, char *body, size_t len, int has_body)
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
	lsock_flush(s);
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
static void
lsock_flush(struct lsock *s)
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
		lresp_free(r);
	}
	if (s->paused && s->queued < LCHAN_QUEUE_LOW && s->ws != NULL) {
		s->paused = 0;
		ws_pause_read(s->ws, false);
	}
}

static void
lsock_free(struct lsock *s)
{
	struct lresp *r;

	if (s == NULL)
		return;
	if (s->dial)
		ldial_cancel(s->dial);
	if (s->ws)
		ws_free(s->ws);
	while ((r = TAILQ_FIRST(&s->outq)) != NULL) {
		TAILQ_REMOVE(&s->outq, r, link);
		lresp_free(r);
	}
	free(s->url);
	free(s);
}

/* Unlinks s, detaches its requests, and frees it from a zero-delay event. */
static void
lsock_kill(struct lsock *s)
{
	struct lchan *ch = s->ch;
	struct lreq *q;

	if (s->dead)
		return;
	s->dead = 1;
	s->open = 0;
	TAILQ_FOREACH(q, &ch->reqs, link)
		if (q->sock == s)
			q->sock = NULL;
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
lchan_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lchan *ch = arg;
	struct lsock *s;

	struct lreq *q, *nq;

	while ((s = TAILQ_FIRST(&ch->dead)) != NULL) {
		TAILQ_REMOVE(&ch->dead, s, link);
		lsock_free(s);
	}
	TAILQ_FOREACH_SAFE(q, &ch->reqs, link, nq)
		if (q->abandoned)
			lreq_finish(q);
}

static void lreq_dispatch(struct lreq *q);

static char *
lchan_strdup0(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* A request (full form) arrived on s. */
static void
lsock_on_request(struct lsock *s, const struct lctl_msg *m)
{
	struct lchan *ch = s->ch;
	struct timeval deadline = { ch->spec.request_timeout > 0 ? ch->spec.request_timeout :
	    LCHAN_DEADLINE_S, 0 };
	struct lreq *q;

	if (s->body_for != NULL) {
		/* a new command where a body message was due: the relay broke the
		 * framing of the earlier request; it cannot be answered sensibly */
		log_warn("listener", "event=request.abandoned channel=%s id=%s reason=\"a command came "
		    "where its body was due\"", log_q(ch->cs.name), log_q(s->body_for->id));
		s->body_for->abandoned = 1;
		s->body_for = NULL;
		event_active(ch->ev_reap, EV_TIMEOUT, 0);
	}

	if (ch->nreqs >= LCHAN_MAX_REQS) {
		log_warn("listener", "event=request.refused channel=%s reason=\"too many in flight\"",
		    log_q(ch->cs.name));
		lsock_queue(s, lctl_response_json(m->id, 503, "Retry-After: 1\r\n", NULL, false),
		    NULL, 0, 0);
		return;
	}
	q = calloc(1, sizeof *q);
	if (q == NULL)
		return;
	q->ch = ch;
	q->sock = s;
	q->start_ms = lchan_now_ms();
	q->refuse = m->code;
	q->id = lchan_strdup0(m->id);
	q->address = lchan_strdup0(m->address);
	q->method = lchan_strdup0(m->method);
	q->target = lchan_strdup0(m->target);
	q->body = evbuffer_new();
	q->ev_deadline = evtimer_new(ch->ctx->base, lreq_deadline_cb, q);
	TAILQ_INSERT_TAIL(&ch->reqs, q, link);
	ch->nreqs++;
	ch->cs.inflight = ch->nreqs;
	if (q->body == NULL || q->ev_deadline == NULL || q->id == NULL || q->method == NULL ||
	    q->target == NULL || (m->address != NULL && q->address == NULL)) {
		lreq_finish(q);
		return;
	}
	evtimer_add(q->ev_deadline, &deadline);
	log_debug("listener", "event=request.start channel=%s id=%s method=%s target=%s body=%d",
	    log_q(ch->cs.name), log_q(q->id), log_q(q->method), log_q(q->target), m->body);
	if (m->body)
		s->body_for = q;
	else
		lreq_dispatch(q);
}

static bool
lchan_has_forward(void *arg, const char *name)
{
	const struct conf *c = node_conf(((struct lchan *)arg)->ctx->node);
	size_t i;

	for (i = 0; i < c->nforwards; i++)
		if (strcmp(c->forwards[i].name, name) == 0)
			return true;
	return false;
}

static void
lsock_open_rdv(struct lchan *ch, const char *address, struct lresp *first);

static void
lsock_on_text(struct lsock *s, const uint8_t *data, size_t len)
{
	struct lchan *ch = s->ch;
	struct lctl_policy pol;
	struct lctl_msg m;
	struct shir_error err;

	memset(&pol, 0, sizeof pol);
	pol.hc = ch->spec.path;
	pol.control = s->kind == LSOCK_CONTROL;
	pol.has_forward = lchan_has_forward;
	pol.arg = ch;
	if (lctl_handle((const char *)data, len, &pol, &m, &err) != 0) {
		log_warn("listener", "event=control.bad channel=%s reason=%s", log_q(ch->cs.name),
		    log_q(err.msg));
		return;
	}
	switch (m.kind) {
	case LCTL_TUNNEL:
		if (ch->retired || ch->ctx->shutting_down)
			ltun_reject(ch->ctx, ch, &m, 503, "the node is shutting down");
		else
			ltun_accept(ch->ctx, ch, &m);
		break;
	case LCTL_REJECT:
		ltun_reject(ch->ctx, ch, &m, m.code, m.desc);
		break;
	case LCTL_RENDEZVOUS:
		log_debug("listener", "event=request.rendezvous channel=%s id=%s", log_q(ch->cs.name),
		    log_q(m.id));
		lsock_open_rdv(ch, m.address, NULL);
		break;
	case LCTL_REQUEST:
		lsock_on_request(s, &m);
		break;
	case LCTL_IGNORE:
		log_debug("listener", "event=control.ignored channel=%s", log_q(ch->cs.name));
		break;
	}
	lctl_msg_clear(&m);
}

/* --- ws callbacks ------------------------------------------------------------ */

static void
lsock_ws_open(struct ws *ws, void *arg)
{
	struct lsock *s = arg;
	struct lchan *ch = s->ch;

	s->open = 1;
	if (s->kind == LSOCK_CONTROL) {
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
	lsock_flush(s);
}

static void
lsock_ws_failed(struct ws *ws, int status, const char *reason, const struct shir_error *err,
    void *arg)
{
	struct lsock *s = arg;
	struct lchan *ch = s->ch;

	if (s->kind != LSOCK_CONTROL) {
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
lsock_ws_message(struct ws *ws, enum ws_opcode op, const uint8_t *data, size_t len, void *arg)
{
	struct lsock *s = arg;

	s->ch->cs.bytes_in += len;
	if (op == WS_OP_TEXT)
		lsock_on_text(s, data, len);
}

static int
lsock_ws_fragment(struct ws *ws, enum ws_opcode op, const uint8_t *data, size_t len, bool first,
    bool fin, void *arg)
{
	struct lsock *s = arg;
	struct lreq *q = s->body_for;

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
		lreq_dispatch(q);
	}
	return WS_STREAM;
}

static void
lsock_ws_pong(struct ws *ws, const uint8_t *data, size_t len, void *arg)
{
	struct lsock *s = arg;

	s->ch->last_pong_ms = lchan_now_ms();
}

static void
lsock_ws_writable(struct ws *ws, void *arg)
{
	lsock_flush(arg);
}

static void
lsock_ws_close(struct ws *ws, int code, const char *reason, bool remote, void *arg)
{
	struct lsock *s = arg;
	struct lchan *ch = s->ch;
	int was_ctl = s->kind == LSOCK_CONTROL && ch->ctl == s && !s->reported;
	int was_open = s->open;

	s->ws = NULL;
	ws_free(ws);	/* released after this callback returns */
	lsock_kill(s);
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

static const struct ws_callbacks lsock_ws_cbs = {
	.on_open = lsock_ws_open,
	.on_handshake_failed = lsock_ws_failed,
	.on_message = lsock_ws_message,
	.on_fragment = lsock_ws_fragment,
	.on_pong = lsock_ws_pong,
	.on_writable = lsock_ws_writable,
	.on_close = lsock_ws_close,
};

static void
lsock_dialed(void *arg, struct bufferevent *bev, const struct shir_error *err)
{
	struct lsock *s = arg;
	struct lchan *ch = s->ch;
	struct ws_options opt;
	struct ws_client_request rq;
	char host[300], auth[1400], *token = NULL;
	const char *hdrs[3] = { NULL, NULL, NULL };

	s->dial = NULL;
	if (bev == NULL) {
		if (s->kind == LSOCK_CONTROL) {
			enum chstate_why why = err->code == SHIR_ETLS ? CHSTATE_WHY_TLS :
			    err->code == SHIR_EPROXY ? CHSTATE_WHY_PROXY : CHSTATE_WHY_NETWORK;

			lsock_kill(s);
			lchan_down(ch, why, 0, err->msg);
		} else {
			log_warn("listener", "event=rendezvous.failed channel=%s reason=%s",
			    log_q(ch->cs.name), log_q(err->msg));
			lsock_kill(s);
		}
		return;
	}
	memset(&opt, 0, sizeof opt);
	opt.max_message = 128 * 1024;
	opt.max_frame = 64 * 1024 * 1024;
	opt.handshake_timeout_ms = ch->spec.connect_timeout * 1000;
	memset(&rq, 0, sizeof rq);
	lchan_host_header(&s->u, host, sizeof host);
	rq.host = host;
	rq.target = s->u.target;
	if (s->kind == LSOCK_CONTROL) {
		if (lchan_token(ch, &token) != 0) {
			bufferevent_free(bev);
			lsock_kill(s);
			lchan_down(ch, CHSTATE_WHY_CONFIG, 0, "cannot make a SAS token from the key");
			return;
		}
		snprintf(auth, sizeof auth, "ServiceBusAuthorization: %s", token);
		OPENSSL_cleanse(token, strlen(token));
		free(token);
		hdrs[0] = auth;
		rq.headers = hdrs;
	}
	s->ws = ws_new_client(bev, &rq, &opt, &lsock_ws_cbs, s);
	OPENSSL_cleanse(auth, sizeof auth);
	if (s->ws == NULL) {
		bufferevent_free(bev);
		lsock_kill(s);
		if (s->kind == LSOCK_CONTROL)
			lchan_down(ch, CHSTATE_WHY_NETWORK, 0, "out of memory");
	}
}

static struct lsock *
lsock_new(struct lchan *ch, enum lsock_kind kind, const char *url)
{
	struct lsock *s = calloc(1, sizeof *s);
	struct shir_error err;
	struct ldial_opts o;

	if (s == NULL)
		return NULL;
	s->ch = ch;
	s->kind = kind;
	TAILQ_INIT(&s->outq);
	if ((s->url = strdup(url)) == NULL ||
	    ldial_parse_url(url, kind == LSOCK_RDV && ch->u.tls == 0, &s->u, &err) != 0) {
		log_warn("listener", "event=rendezvous.failed channel=%s reason=%s",
		    log_q(ch->cs.name), log_q(s->url ? err.msg : "out of memory"));
		lsock_free(s);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&ch->socks, s, link);
	ch->nsocks++;
	lchan_dial_opts(ch, url, &s->u, &o);
	s->dial = ldial_start(ch->ctx->base, ch->ctx->dns, &o, lsock_dialed, s);
	if (s->dial == NULL) {
		lsock_kill(s);
		return NULL;
	}
	return s;
}

/* Opens a request rendezvous at address; first (if any) is sent on it once
 * it is open. */
static void
lsock_open_rdv(struct lchan *ch, const char *address, struct lresp *first)
{
	struct lsock *s;

	if (ch->nsocks >= LCHAN_MAX_SOCKS) {
		log_warn("listener", "event=rendezvous.refused channel=%s reason=\"too many sockets\"",
		    log_q(ch->cs.name));
		lresp_free(first);
		return;
	}
	s = lsock_new(ch, LSOCK_RDV, address);
	if (s == NULL) {
		lresp_free(first);
		return;
	}
	if (first != NULL) {
		TAILQ_INSERT_TAIL(&s->outq, first, link);
		s->queued += strlen(first->json) + first->len;
	}
}

/* --- requests ---------------------------------------------------------------- */

static void
lreq_respond(struct lreq *q, int status, const char *headers, const char *ctype,
    const char *body, size_t len)
{
	struct lchan *ch = q->ch;
	char *json = lctl_response_json(q->id, status, headers, ctype, true);
	char *copy = NULL;
	struct lresp *r;

	log_info("listener", "event=request.done channel=%s id=%s method=%s target=%s status=%d "
	    "bytes=%zu ms=%lld", log_q(ch->cs.name), log_q(q->id), log_q(q->method),
	    log_q(q->target), status, len, (long long)(lchan_now_ms() - q->start_ms));
	if (json == NULL || (len > 0 && (copy = malloc(len)) == NULL)) {
		free(json);
		return;
	}
	if (len > 0)
		memcpy(copy, body, len);
	if (q->sock != NULL && (q->sock->kind == LSOCK_RDV ||
	    strlen(json) + len <= LCHAN_INLINE_MAX)) {
		lsock_queue(q->sock, json, copy, len, 1);
		return;
	}
	if (q->sock == NULL && q->address == NULL) {
		log_warn("listener", "event=request.orphaned channel=%s id=%s reason=\"the socket it "
		    "came on is gone\"", log_q(ch->cs.name), log_q(q->id));
		free(json), free(copy);
		return;
	}
	/* too large for the control channel: answer on the request's rendezvous */
	if (q->address == NULL) {
		free(json), free(copy);
		return;
	}
	r = calloc(1, sizeof *r);
	if (r == NULL) {
		free(json), free(copy);
		return;
	}
	r->json = json, r->body = copy, r->len = len, r->has_body = 1;
	lsock_open_rdv(ch, q->address, r);
}

static void
lreq_api_done(void *arg, int status, const char *headers, const char *ctype, const char *body,
    size_t len)
{
	struct lreq *q = arg;

	q->handle = NULL;
	lreq_respond(q, status, headers, ctype, body, len);
	lreq_finish(q);
}

static void
lreq_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lreq *q = arg;
	static const char msg[] = "{\"status\":\"Failed\",\"error\":{\"code\":\"Timeout\","
	    "\"message\":\"the node did not finish the request in time for the relay's 60 s "
	    "limit (relay.request_timeout)\"}}";

	log_warn("listener", "event=request.timeout channel=%s id=%s method=%s target=%s ms=%lld",
	    log_q(q->ch->cs.name), log_q(q->id), log_q(q->method), log_q(q->target),
	    (long long)(lchan_now_ms() - q->start_ms));
	if (q->handle != NULL) {
		api_reply_cancel(q->handle);
		q->handle = NULL;
	}
	lreq_respond(q, 503, "", "application/json", msg, sizeof msg - 1);
	lreq_finish(q);
}

static void
lreq_dispatch(struct lreq *q)
{
	struct lchan *ch = q->ch;
	struct api_request rq;
	size_t blen = evbuffer_get_length(q->body);
	const char *body;

	if (q->too_big) {
		static const char msg[] = "{\"status\":\"Failed\",\"error\":{\"code\":\"InvalidRequest\","
		    "\"message\":\"the request body is too large\"}}";

		lreq_respond(q, 413, "", "application/json", msg, sizeof msg - 1);
		lreq_finish(q);
		return;
	}
	if (q->refuse) {
		static const char msg[] = "{\"status\":\"Failed\",\"error\":{\"code\":\"InvalidRequest\","
		    "\"message\":\"the request target is too long\"}}";

		lreq_respond(q, q->refuse, "", "application/json", msg, sizeof msg - 1);
		lreq_finish(q);
		return;
	}
	evbuffer_add(q->body, "", 1);	/* NUL-terminated for the API */
	body = (const char *)evbuffer_pullup(q->body, -1);
	memset(&rq, 0, sizeof rq);
	rq.method = q->method;
	rq.target = q->target;
	rq.body = body ? body : "";
	rq.body_len = blen;
	rq.channel = API_CH_RELAY;
	api_dispatch(node_api(ch->ctx->node), &rq, lreq_api_done, q, &q->handle);
}

/* --- the control channel ----------------------------------------------------- */

static void
lchan_connect(struct lchan *ch)
{
	char url[2048], *hc;

	if (ch->retired || ch->finished)
		return;
	chstate_connecting(&ch->cs, lchan_now_ms());
	lchan_notify(ch);
	hc = sas_url_encode(ch->spec.path);
	if (hc == NULL) {
		lchan_down(ch, CHSTATE_WHY_CONFIG, 0, "out of memory");
		return;
	}
	/* keep '/' in hybrid connection names that have it */
	for (char *p = strstr(hc, "%2F"); p; p = strstr(p, "%2F"))
		*p = '/', memmove(p + 1, p + 3, strlen(p + 3) + 1);
	snprintf(url, sizeof url, "%s%s$hc/%s?sb-hc-action=listen&sb-hc-id=%s", ch->spec.endpoint,
	    ch->spec.endpoint[strlen(ch->spec.endpoint) - 1] == '/' ? "" : "/", hc,
	    ch->listener_id);
	free(hc);
	log_info("listener", "event=channel.connecting channel=%s url=%s", log_q(ch->cs.name),
	    log_q(url));
	ch->ctl = lsock_new(ch, LSOCK_CONTROL, url);
	if (ch->ctl == NULL)
		lchan_down(ch, CHSTATE_WHY_NETWORK, 0, "cannot start a connection (out of memory)");
}

static void
lchan_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	lchan_connect(arg);
}

static void
lchan_ping_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lchan *ch = arg;
	struct timeval tv = { ch->spec.ping_interval, 0 };
	int64_t now = lchan_now_ms();

	if (ch->ctl == NULL || !ch->ctl->open)
		return;
	if (now - ch->last_pong_ms >= (int64_t)ch->spec.ping_interval * 2000 - 200) {
		struct lsock *s = ch->ctl;

		log_warn("listener", "event=channel.dead channel=%s silent_ms=%lld", log_q(ch->cs.name),
		    (long long)(now - ch->last_pong_ms));
		s->reported = 1;	/* on_close must not report it again */
		lchan_down(ch, CHSTATE_WHY_DEAD, ch->spec.ping_interval * 2, NULL);
		if (s->ws)
			ws_abort(s->ws);
		return;
	}
	ws_ping(ch->ctl->ws, "shir", 4);
	event_add(ch->ev_ping, &tv);
}

static void
lchan_renew_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lchan *ch = arg;
	char *token = NULL, *json;
	int64_t renew_s = (int64_t)ch->spec.token_lifetime * 2 / 3;
	struct timeval rt = { (time_t)(renew_s > 1 ? renew_s : 1), 0 };

	if (ch->ctl == NULL || !ch->ctl->open)
		return;
	if (lchan_token(ch, &token) != 0)
		return;
	json = lctl_renew_json(token);
	OPENSSL_cleanse(token, strlen(token));
	free(token);
	if (json == NULL)
		return;
	lsock_queue(ch->ctl, json, NULL, 0, 0);
	log_info("listener", "event=channel.renewed channel=%s expires_in_s=%d", log_q(ch->cs.name),
	    ch->spec.token_lifetime);
	event_add(ch->ev_renew, &rt);
}

/* --- retire ----------------------------------------------------------------- */

static void
lchan_finish_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lchan *ch = arg;

	if (ch->ctx->on_finished)
		ch->ctx->on_finished(ch->ctx->arg, ch);
}

static void
lchan_check_drained(struct lchan *ch)
{
	struct lsock *s, *t;

	if (!ch->retired || ch->finished || ch->nreqs > 0)
		return;
	/* nothing in flight: close every socket, then report */
	TAILQ_FOREACH_SAFE(s, &ch->socks, link, t) {
		if (!TAILQ_EMPTY(&s->outq) && s->open)
			return;	/* a response is still being written */
	}
	TAILQ_FOREACH_SAFE(s, &ch->socks, link, t) {
		if (s->ws && s->open) {
			s->reported = 1;
			ws_close(s->ws, 1000, "listener closing");
			continue;
		}
		if (s->ws == NULL)
			lsock_kill(s);
	}
	if (ch->nsocks > 0)
		return;	/* on_close of each brings us back here */
	ch->finished = 1;
	log_info("listener", "event=channel.closed channel=%s", log_q(ch->cs.name));
	event_active(ch->ev_finish, EV_TIMEOUT, 0);
}

static void
lchan_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lchan *ch = arg;
	struct lreq *q;

	/* drain deadline: answer what is left with 503 and close */
	while ((q = TAILQ_FIRST(&ch->reqs)) != NULL)
		lreq_deadline_cb(-1, 0, q);
	lchan_check_drained(ch);
}

void
lchan_retire(struct lchan *ch, int drain_s)
{
	struct timeval tv = { drain_s > 0 ? drain_s : 1, 0 };

	if (ch->retired)
		return;
	ch->retired = 1;
	event_del(ch->ev_retry);
	log_info("listener", "event=channel.retiring channel=%s inflight=%u", log_q(ch->cs.name),
	    ch->nreqs);
	evtimer_add(ch->ev_drain, &tv);
	if (ch->ctl == NULL || !ch->ctl->open) {
		/* not connected: nothing to wait for on the relay */
		if (ch->ctl)
			lsock_kill(ch->ctl);
	}
	lchan_check_drained(ch);
}


/* --- life cycle ----------------------------------------------------------------- */

struct lchan *
lchan_new(struct lctx *ctx, const struct lspec *spec, struct shir_error *err)
{
	struct lchan *ch = calloc(1, sizeof *ch);

	if (ch == NULL) {
		shir_error_set(err, SHIR_ENOMEM, "out of memory");
		return NULL;
	}
	ch->ctx = ctx;
	TAILQ_INIT(&ch->socks);
	TAILQ_INIT(&ch->dead);
	TAILQ_INIT(&ch->reqs);
	if (lspec_copy(&ch->spec, spec) != 0) {
		shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto fail;
	}
	if (ldial_parse_url(spec->endpoint, 0, &ch->u, err) != 0)
		goto fail;
	if (ch->u.tls && ldial_tls_ctx_new(spec->ca_file, &ch->ssl, err) != 0)
		goto fail;
	chstate_init(&ch->cs, spec->name, spec->endpoint, spec->path);
	lchan_new_guid(ch->listener_id);
	ch->ev_retry = evtimer_new(ctx->base, lchan_retry_cb, ch);
	ch->ev_ping = evtimer_new(ctx->base, lchan_ping_cb, ch);
	ch->ev_renew = evtimer_new(ctx->base, lchan_renew_cb, ch);
	ch->ev_reap = event_new(ctx->base, -1, 0, lchan_reap_cb, ch);
	ch->ev_finish = event_new(ctx->base, -1, 0, lchan_finish_cb, ch);
	ch->ev_drain = evtimer_new(ctx->base, lchan_drain_cb, ch);
	if (!ch->ev_retry || !ch->ev_ping || !ch->ev_renew || !ch->ev_reap || !ch->ev_finish ||
	    !ch->ev_drain) {
		shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto fail;
	}
	return ch;
fail:
	lchan_free(ch);
	return NULL;
}

void
lchan_start(struct lchan *ch)
{
	lchan_connect(ch);
}

void
lchan_free(struct lchan *ch)
{
	struct lsock *s;
	struct lreq *q;

	if (ch == NULL)
		return;
	while ((q = TAILQ_FIRST(&ch->reqs)) != NULL) {
		TAILQ_REMOVE(&ch->reqs, q, link);
		lreq_free(q);
	}
	while ((s = TAILQ_FIRST(&ch->socks)) != NULL) {
		TAILQ_REMOVE(&ch->socks, s, link);
		lsock_free(s);
	}
	while ((s = TAILQ_FIRST(&ch->dead)) != NULL) {
		TAILQ_REMOVE(&ch->dead, s, link);
		lsock_free(s);
	}
	if (ch->ev_retry) event_free(ch->ev_retry);
	if (ch->ev_ping) event_free(ch->ev_ping);
	if (ch->ev_renew) event_free(ch->ev_renew);
	if (ch->ev_reap) event_free(ch->ev_reap);
	if (ch->ev_finish) event_free(ch->ev_finish);
	if (ch->ev_drain) event_free(ch->ev_drain);
	SSL_CTX_free(ch->ssl);
	lspec_clear(&ch->spec);
	free(ch);
}

const struct chstate *
lchan_state(const struct lchan *ch)
{
	return &ch->cs;
}

const struct lspec *
lchan_spec(const struct lchan *ch)
{
	return &ch->spec;
}



void
lchan_dial_opts(struct lchan *ch, const char *url, const struct ldial_url *u,
    struct ldial_opts *o)
{
	memset(o, 0, sizeof *o);
	o->url = url;
	o->u = u;
	if (u->tls && ch->ssl == NULL) {
		struct shir_error err;

		if (ldial_tls_ctx_new(ch->spec.ca_file, &ch->ssl, &err) != 0)
			log_warn("listener", "event=tls.context channel=%s reason=%s", log_q(ch->cs.name),
			    log_q(err.msg));
	}
	o->ssl_ctx = ch->ssl;
	o->tls_pin = ch->spec.tls_pin;
	o->timeout_s = ch->spec.connect_timeout;
	o->proxy = node_ext(ch->ctx->node, NODE_EXT_PROXY);
}

void
lchan_status_json(const struct lchan *ch, cJSON *arr)
{
	cJSON *o = cJSON_CreateObject();

	if (o == NULL)
		return;
	chstate_to_json(&ch->cs, o, lchan_now_ms());
	cJSON_AddStringToObject(o, "listenerId", ch->listener_id);
	if (ch->pending)
		cJSON_AddBoolToObject(o, "replacing", 1);
	cJSON_AddNumberToObject(o, "rendezvousSockets", ch->nsocks > 0 && ch->ctl ? ch->nsocks - 1 :
	    ch->nsocks);
	cJSON_AddItemToArray(arr, o);
}

void
lchan_set_pending(struct lchan *ch, int pending)
{
	ch->pending = pending;
}
