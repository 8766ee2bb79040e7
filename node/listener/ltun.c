#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar) \
	for ((var) = TAILQ_FIRST(head); (var) && ((tvar) = TAILQ_NEXT(var, field), 1); (var) = (tvar))
#endif

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "node/conf.h"
#include "common/evread.h"
#include "node/listener/lchan.h"	/* struct lctx, the listener's shared context */
#include "node/listener/lmsg.h"
#include "relay/hcdial.h"
#include "common/log.h"
#include "node/listener/ltun.h"
#include "node/node.h"
#include "relay/ws.h"

#define LTUN_HIGH (256 * 1024)	/* TCP output above this: pause the WebSocket */
#define LTUN_LOW (64 * 1024)
#define LTUN_CHUNK (64 * 1024)

enum ltun_kind { LTUN_BRIDGE = 0, LTUN_REJECT };

struct ltun {
	struct ltun_set *set;
	enum ltun_kind kind;
	unsigned long id;
	char *address;		/* accept address (or the reject URL) */
	char name[128];		/* forward name */
	char target[300];	/* host:port */
	char host[256];
	int port;
	char protocol[128];	/* chosen subprotocol, or "" */
	int reject_code;
	struct hcdial_url u;
	SSL_CTX *ssl;		/* a reference */
	char pin[128];
	int timeout_s;
	struct hcdial *dial;
	struct ws *ws;
	struct bufferevent *tcp;
	int ws_open, tcp_open, dead, tcp_eof, ws_closed, tcp_paused;
	uint64_t bytes_in, bytes_out;	/* from the sender / to the sender */
	TAILQ_ENTRY(ltun) link;
};

struct ltun_set {
	struct lctx *ctx;
	TAILQ_HEAD(, ltun) live, dead;
	unsigned n;
	unsigned long next_id;
	uint64_t opened, bytes_in, bytes_out;
	struct event *ev_reap;
};

static void ltun_kill(struct ltun *t, const char *why);

/* --- the set ------------------------------------------------------------------ */

static void
ltun_free(struct ltun *t)
{
	if (t == NULL)
		return;
	if (t->dial)
		hcdial_cancel(t->dial);
	if (t->ws)
		ws_free(t->ws);
	if (t->tcp)
		bufferevent_free(t->tcp);
	SSL_CTX_free(t->ssl);
	free(t->address);
	free(t);
}

static void
ltun_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ltun_set *ts = arg;
	struct ltun *t;

	while ((t = TAILQ_FIRST(&ts->dead)) != NULL) {
		TAILQ_REMOVE(&ts->dead, t, link);
		ltun_free(t);
	}
}

struct ltun_set *
ltun_set_new(struct lctx *ctx)
{
	struct ltun_set *ts = calloc(1, sizeof *ts);

	if (ts == NULL)
		return NULL;
	ts->ctx = ctx;
	TAILQ_INIT(&ts->live);
	TAILQ_INIT(&ts->dead);
	ts->ev_reap = event_new(ctx->base, -1, 0, ltun_reap_cb, ts);
	if (ts->ev_reap == NULL) {
		free(ts);
		return NULL;
	}
	return ts;
}

void
ltun_set_free(struct ltun_set *ts)
{
	struct ltun *t;

	if (ts == NULL)
		return;
	while ((t = TAILQ_FIRST(&ts->live)) != NULL) {
		TAILQ_REMOVE(&ts->live, t, link);
		ltun_free(t);
	}
	ltun_reap_cb(-1, 0, ts);
	event_free(ts->ev_reap);
	free(ts);
}

void
ltun_set_close_all(struct ltun_set *ts)
{
	struct ltun *t, *n;

	TAILQ_FOREACH_SAFE(t, &ts->live, link, n) {
		if (t->ws && t->ws_open && !t->ws_closed) {
			t->ws_closed = 1;
			ws_close(t->ws, 1001, "the node is shutting down");
		} else {
			ltun_kill(t, "shutdown");
		}
	}
}

unsigned
ltun_set_count(const struct ltun_set *ts)
{
	return ts ? ts->n : 0;
}

void
ltun_set_status(const struct ltun_set *ts, cJSON *obj)
{
	cJSON_AddNumberToObject(obj, "tunnels", ts ? ts->n : 0);
	cJSON_AddNumberToObject(obj, "tunnelsOpened", ts ? (double)ts->opened : 0);
	cJSON_AddNumberToObject(obj, "tunnelBytesIn", ts ? (double)ts->bytes_in : 0);
	cJSON_AddNumberToObject(obj, "tunnelBytesOut", ts ? (double)ts->bytes_out : 0);
}

/* Unlinks t and frees it from a zero-delay event (never inside its own
 * callbacks). */
static void
ltun_kill(struct ltun *t, const char *why)
{
	struct ltun_set *ts = t->set;

	if (t->dead)
		return;
	t->dead = 1;
	if (t->kind == LTUN_BRIDGE && t->ws_open)
		log_info("listener", "event=tunnel.closed id=%lu forward=%s in=%llu out=%llu reason=%s",
		    t->id, log_q(t->name), (unsigned long long)t->bytes_in,
		    (unsigned long long)t->bytes_out, log_q(why));
	if (t->tcp)
		bufferevent_disable(t->tcp, EV_READ | EV_WRITE);
	TAILQ_REMOVE(&ts->live, t, link);
	ts->n--;
	TAILQ_INSERT_TAIL(&ts->dead, t, link);
	event_active(ts->ev_reap, EV_TIMEOUT, 0);
}

/* --- helpers ------------------------------------------------------------------- */

static struct ltun *
ltun_new(struct ltun_set *ts, const struct ltun_dial *d, enum ltun_kind kind, const char *url)
{
	struct ltun *t = calloc(1, sizeof *t);
	struct shir_error err;

	if (t == NULL)
		return NULL;
	t->set = ts;
	t->kind = kind;
	t->id = ++ts->next_id;
	if ((t->address = strdup(url)) == NULL ||
	    hcdial_parse_url(url, d->allow_plain, &t->u, &err) != 0) {
		if (t->address)
			log_warn("listener", "event=accept.failed reason=%s", log_q(err.msg));
		free(t->address);
		free(t);
		return NULL;
	}
	if (d->ssl_ctx) {
		SSL_CTX_up_ref(d->ssl_ctx);
		t->ssl = d->ssl_ctx;
	}
	snprintf(t->pin, sizeof t->pin, "%s", d->tls_pin ? d->tls_pin : "");
	t->timeout_s = d->timeout_s;
	TAILQ_INSERT_TAIL(&ts->live, t, link);
	ts->n++;
	return t;
}

/* --- reject ---------------------------------------------------------------------- */

static void
ltun_rej_failed(struct ws *ws, int status, const char *reason, const struct shir_error *err,
    void *arg)
{
	struct ltun *t = arg;

	if (status == 410)
		log_info("listener", "event=accept.rejected code=%d", t->reject_code);
	else
		log_warn("listener", "event=accept.reject_failed code=%d status=%d reason=%s",
		    t->reject_code, status, log_q(status ? reason : err ? err->msg : "?"));
}

static void
ltun_rej_open(struct ws *ws, void *arg)
{
	struct ltun *t = arg;

	log_warn("listener", "event=accept.reject_failed code=%d reason=\"the relay opened the "
	    "socket instead of answering 410\"", t->reject_code);
	ws_close(ws, 1000, "rejected");
}

static void
ltun_any_close(struct ws *ws, int code, const char *reason, bool remote, void *arg)
{
	struct ltun *t = arg;

	t->ws = NULL;
	ws_free(ws);
	t->ws_closed = 1;
	if (t->kind == LTUN_REJECT) {
		ltun_kill(t, "done");
		return;
	}
	if (t->tcp && t->tcp_open && evbuffer_get_length(bufferevent_get_output(t->tcp)) > 0) {
		/* let the target get the rest, then close (ltun_tcp_write) */
		bufferevent_disable(t->tcp, EV_READ);
		t->tcp_eof = 1;
		return;
	}
	ltun_kill(t, remote ? "the sender closed" : "closed");
}

static const struct ws_callbacks ltun_rej_cbs = {
	.on_open = ltun_rej_open,
	.on_handshake_failed = ltun_rej_failed,
	.on_close = ltun_any_close,
};

static void ltun_ws_dialed(void *arg, struct bufferevent *bev, const struct shir_error *err);

static void
ltun_dial_ws(struct ltun *t)
{
	struct hcdial_opts o;

	memset(&o, 0, sizeof o);
	o.url = t->address;
	o.u = &t->u;
	o.ssl_ctx = t->ssl;
	o.tls_pin = t->pin[0] ? t->pin : NULL;
	o.timeout_s = t->timeout_s;
	o.proxy = node_ext(t->set->ctx->node, NODE_EXT_PROXY);
	t->dial = hcdial_start(t->set->ctx->base, t->set->ctx->dns, &o, ltun_ws_dialed, t);
	if (t->dial == NULL)
		ltun_kill(t, "out of memory");
}

void
ltun_reject(struct lctx *ctx, const struct ltun_dial *d, const struct lmsg_msg *m, int code,
    const char *desc)
{
	char url[4096];
	struct ltun *t;

	log_info("listener", "event=accept.reject id=%s code=%d reason=%s", log_q(m->id), code,
	    log_q(desc));
	if (lmsg_reject_url(m->address, code, desc, url, sizeof url) != 0)
		return;
	t = ltun_new(ctx->tuns, d, LTUN_REJECT, url);
	if (t == NULL)
		return;
	t->reject_code = code;
	ltun_dial_ws(t);
}

/* --- bridge ------------------------------------------------------------------------ */

/* Sends what the target wrote while the WebSocket is not congested. */
static void
ltun_pump_tcp(struct ltun *t)
{
	struct evbuffer *in;
	unsigned char buf[LTUN_CHUNK];

	if (!t->ws_open || t->ws == NULL || t->tcp == NULL)
		return;
	in = bufferevent_get_input(t->tcp);
	while (evbuffer_get_length(in) > 0) {
		size_t n;

		if (ws_is_congested(t->ws)) {
			bufferevent_disable(t->tcp, EV_READ);
			t->tcp_paused = 1;
			return;
		}
		n = evbuffer_remove(in, buf, sizeof buf);
		if (n == 0)
			break;
		ws_send(t->ws, WS_OP_BINARY, buf, n);
		t->bytes_out += n;
		t->set->bytes_out += n;
	}
	if (t->tcp_paused && !t->tcp_eof) {
		t->tcp_paused = 0;
		bufferevent_enable(t->tcp, EV_READ);
	}
}

static void
ltun_tcp_read(struct bufferevent *bev, void *arg)
{
	evread_more(bev, LTUN_CHUNK * 4);	/* libevent read 4 KiB: take the rest in one recvmsg */
	ltun_pump_tcp(arg);
}

static void
ltun_tcp_write(struct bufferevent *bev, void *arg)
{
	struct ltun *t = arg;

	/* the target's output fell below the low watermark */
	if (t->ws_closed && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		ltun_kill(t, "the sender closed");
		return;
	}
	if (t->ws)
		ws_pause_read(t->ws, false);
}

static void ltun_start_ws(struct ltun *t);

/* Turns a bridge whose target failed into a reject of its accept. */
static int
ltun_become_reject(struct ltun *t, int code, const char *why)
{
	char url[4096], *dup;
	struct hcdial_url u;
	struct shir_error err;

	if (lmsg_reject_url(t->address, code, why, url, sizeof url) != 0 ||
	    hcdial_parse_url(url, 1, &u, &err) != 0 || (dup = strdup(url)) == NULL)
		return -1;
	free(t->address);
	t->address = dup;
	t->u = u;
	t->kind = LTUN_REJECT;
	t->reject_code = code;
	log_info("listener", "event=accept.reject id=%lu code=%d reason=%s", t->id, code, log_q(why));
	ltun_dial_ws(t);
	return 0;
}

static void
ltun_tcp_event(struct bufferevent *bev, short what, void *arg)
{
	struct ltun *t = arg;

	if (what & BEV_EVENT_CONNECTED) {
		t->tcp_open = 1;
		ltun_start_ws(t);
		return;
	}
	if (!t->tcp_open) {
		int e = EVUTIL_SOCKET_ERROR();
		int dnserr = bufferevent_socket_get_dns_error(bev);
		char why[900];

		snprintf(why, sizeof why, "the forward target %s (%s) is unreachable: %s", t->name,
		    t->target, dnserr ? evutil_gai_strerror(dnserr) :
		    e ? evutil_socket_error_to_string(e) : "connection failed");
		log_warn("listener", "event=tunnel.target_failed forward=%s reason=%s", log_q(t->name),
		    log_q(why));
		bufferevent_disable(bev, EV_READ | EV_WRITE);	/* freed with t */
		if (ltun_become_reject(t, 502, why) == 0)
			return;
		ltun_kill(t, why);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		/* the target finished: send what is left, then Close */
		t->tcp_eof = 1;
		ltun_pump_tcp(t);
		if (t->ws && !t->ws_closed) {
			t->ws_closed = 1;
			ws_close(t->ws, 1000, "the target closed the connection");
		}
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		if (t->ws && !t->ws_closed) {
			t->ws_closed = 1;
			ws_close(t->ws, 1011, "the target connection failed");
		} else {
			ltun_kill(t, "target error");
		}
	}
}

static int
ltun_ws_fragment(struct ws *ws, enum ws_opcode op, const uint8_t *data, size_t len, bool first,
    bool fin, void *arg)
{
	struct ltun *t = arg;
	struct evbuffer *out;

	if (t->tcp == NULL || !t->tcp_open)
		return WS_STREAM;
	out = bufferevent_get_output(t->tcp);
	evbuffer_add(out, data, len);
	t->bytes_in += len;
	t->set->bytes_in += len;
	if (evbuffer_get_length(out) > LTUN_HIGH)
		ws_pause_read(ws, true);
	return WS_STREAM;
}

static void
ltun_ws_writable(struct ws *ws, void *arg)
{
	ltun_pump_tcp(arg);
}

static void
ltun_ws_open(struct ws *ws, void *arg)
{
	struct ltun *t = arg;

	t->ws_open = 1;
	t->set->opened++;
	log_info("listener", "event=tunnel.open id=%lu forward=%s target=%s protocol=%s", t->id,
	    log_q(t->name), log_q(t->target), log_q(t->protocol));
	bufferevent_enable(t->tcp, EV_READ | EV_WRITE);
	ltun_pump_tcp(t);
}

static void
ltun_ws_failed(struct ws *ws, int status, const char *reason, const struct shir_error *err,
    void *arg)
{
	log_warn("listener", "event=tunnel.failed status=%d reason=%s", status,
	    log_q(status ? reason : err ? err->msg : "?"));
}

static const struct ws_callbacks ltun_ws_cbs = {
	.on_open = ltun_ws_open,
	.on_handshake_failed = ltun_ws_failed,
	.on_fragment = ltun_ws_fragment,
	.on_writable = ltun_ws_writable,
	.on_close = ltun_any_close,
};

static void
ltun_ws_dialed(void *arg, struct bufferevent *bev, const struct shir_error *err)
{
	struct ltun *t = arg;
	struct ws_options opt;
	struct ws_client_request rq;
	char host[300];
	int v6 = strchr(t->u.host, ':') != NULL;

	t->dial = NULL;
	if (bev == NULL) {
		log_warn("listener", "event=%s reason=%s",
		    t->kind == LTUN_REJECT ? "accept.reject_failed" : "tunnel.failed", log_q(err->msg));
		ltun_kill(t, err->msg);
		return;
	}
	memset(&opt, 0, sizeof opt);
	opt.max_message = 1024 * 1024;
	opt.max_frame = 16 * 1024 * 1024;
	opt.high_water = LTUN_HIGH;
	opt.low_water = LTUN_LOW;
	opt.handshake_timeout_ms = t->timeout_s * 1000;
	memset(&rq, 0, sizeof rq);
	snprintf(host, sizeof host, v6 ? "[%s]:%d" : "%s:%d", t->u.host, t->u.port);
	rq.host = host;
	rq.target = t->u.target;
	rq.protocols = t->protocol[0] ? t->protocol : NULL;
	t->ws = ws_new_client(bev, &rq, &opt, t->kind == LTUN_REJECT ? &ltun_rej_cbs : &ltun_ws_cbs,
	    t);
	if (t->ws == NULL) {
		bufferevent_free(bev);
		ltun_kill(t, "out of memory");
	}
}

static void
ltun_start_ws(struct ltun *t)
{
	bufferevent_disable(t->tcp, EV_READ);	/* until the sender is there */
	ltun_dial_ws(t);
}

void
ltun_accept(struct lctx *ctx, const struct ltun_dial *d, const struct lmsg_msg *m)
{
	const struct conf *c = node_conf(ctx->node);
	const struct conf_forward *fw = NULL;
	struct ltun *t;
	size_t i;

	for (i = 0; i < c->nforwards; i++)
		if (strcmp(c->forwards[i].name, m->forward) == 0)
			fw = &c->forwards[i];
	if (fw == NULL) {
		char desc[300];

		snprintf(desc, sizeof desc, "this node has no forward named %.200s", m->forward);
		ltun_reject(ctx, d, m, 404, desc);
		return;
	}
	if (ctx->tuns->n >= LTUN_MAX) {
		ltun_reject(ctx, d, m, 503, "this node has too many open tunnels; try again later");
		return;
	}
	t = ltun_new(ctx->tuns, d, LTUN_BRIDGE, m->address);
	if (t == NULL)
		return;
	snprintf(t->name, sizeof t->name, "%s", fw->name);
	snprintf(t->host, sizeof t->host, "%s", fw->host);
	t->port = fw->port;
	snprintf(t->target, sizeof t->target, strchr(fw->host, ':') ? "[%s]:%d" : "%s:%d",
	    fw->host, fw->port);
	snprintf(t->protocol, sizeof t->protocol, "%s", m->protocol ? m->protocol : "");
	t->tcp = bufferevent_socket_new(ctx->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (t->tcp == NULL) {
		ltun_kill(t, "out of memory");
		return;
	}
	bufferevent_setcb(t->tcp, ltun_tcp_read, ltun_tcp_write, ltun_tcp_event, t);
	bufferevent_setwatermark(t->tcp, EV_WRITE, LTUN_LOW, 0);
	bufferevent_setwatermark(t->tcp, EV_READ, 0, LTUN_CHUNK * 4);
	log_debug("listener", "event=tunnel.connecting id=%lu forward=%s target=%s", t->id,
	    log_q(t->name), log_q(t->target));
	/* failures arrive through ltun_tcp_event */
	(void)bufferevent_socket_connect_hostname(t->tcp, ctx->dns, AF_UNSPEC, t->host, t->port);
}
