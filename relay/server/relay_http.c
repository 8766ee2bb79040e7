/* relay_http: HTTP senders: requests read, relayed inline on the control
 * channel or through a request rendezvous, answers streamed back, deadlines,
 * senders that go away. */
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

/* ---- HTTP senders -------------------------------------------------------------- */

void
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
	rjobs_forget(h);
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
	hconn_free_parts(h);
}

/* The hconn's own allocations (any of them may be missing: new_conn's
 * failure path frees a half-built one with this too), then h. */
void
hconn_free_parts(struct hconn *h)
{
	relay_sc_detach(h);
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
	if (h->reap)
		event_free(h->reap);
	free(h);
}

static const char *const h_state_names[] = { "head", "body", "wait", "resp", "closing" };
static const char *const h_fwd_names[] = { "none", "inline", "address", "rv_streaming", "rv_sent" };

/* The one setter of st: a transition the machine has not (see the header)
 * is a bug, logged loudly and closed rather than followed. */
void
h_set_state(struct hconn *h, enum hstate st)
{
	static const unsigned char ok[5][5] = {
		/* to:     HEAD BODY WAIT RESP CLOSING */
		[H_HEAD] = { 0, 1, 0, 0, 1 },
		[H_BODY] = { 0, 1, 1, 1, 1 },
		[H_WAIT] = { 0, 0, 0, 1, 1 },
		[H_RESP] = { 1, 0, 0, 0, 1 },
		[H_CLOSING] = { 0, 0, 0, 0, 1 },
	};

	if (!ok[h->st][st]) {
		log_error("relay", "event=http.bad_transition from=%s to=%s peer=%s",
		    h_state_names[h->st], h_state_names[st], h->peer);
		hconn_close(h);
		return;
	}
	if (h->st != st)
		log_debug("relay", "event=http.state from=%s to=%s peer=%s", h_state_names[h->st],
		    h_state_names[st], h->peer);
	h->st = st;
}

static void
h_set_fwd(struct hconn *h, enum hfwd f)
{
	if (h->fwd != f)
		log_debug("relay", "event=http.forward from=%s to=%s request=%s", h_fwd_names[h->fwd],
		    h_fwd_names[f], h->req_id);
	h->fwd = f;
}

void
hconn_close(struct hconn *h)
{
	if (h->dead)
		return;
	relay_sc_detach(h);
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
	h_set_state(h, H_CLOSING);
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
void
hconn_fail(struct hconn *h, int status, const char *msg)
{
	hconn_fail_retry(h, status, 0, msg);
}

void
hconn_fail_retry(struct hconn *h, int status, int retry_after, const char *msg)
{
	hconn_fail_reason(h, status, NULL, retry_after, msg);
}

void
hconn_fail_reason(struct hconn *h, int status, const char *reason, int retry_after,
    const char *msg)
{
	struct evbuffer *out;
	char *body;

	if (h->dead || h->bev == NULL)
		return;
	if (h->resp_started) {
		hconn_close(h);
		return;
	}
	body = rs_error_json(rs_error_code(status), msg);
	out = bufferevent_get_output(h->bev);
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n", status, reason ? reason : http1_reason(status),
	    body ? strlen(body) : 0);
	if (retry_after > 0)
		evbuffer_add_printf(out, "Retry-After: %d\r\n", retry_after);
	evbuffer_add_printf(out, "\r\n%s", body ? body : "");
	free(body);
	count_status(h->s, status);
	log_info("relay", "event=http.response status=%d origin=relay hc=%s target=%s why=%s", status,
	    log_q(h->ent ? h->ent->name : "-"), log_q(h->target), log_q(msg));
	if (h->deadline)
		evtimer_del(h->deadline);
	bufferevent_enable(h->bev, EV_WRITE);
	hconn_close_after_flush(h);
}

void
h_deadline(evutil_socket_t fd, short w, void *arg)
{
	struct hconn *h = arg;

	if (h->st == H_WAIT || h->st == H_BODY)
		hconn_fail(h, 504, "The request was routed to the listener but the listener did not "
		    "respond in the required time.");
}

/* The head deadline passed: handshake_timeout after accept, idle_timeout after
 * the previous answer on a keep-alive connection. */
void
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
void
h_send_request(struct hconn *h)
{
	char *json;
	size_t bl = evbuffer_get_length(h->body);

	if (h->dead)
		return;
	if (h->jobs) {
		if (h->body_done)
			rjobs_request(h);
		return;
	}
	if (h->sc_mode) {
		/* self-contained: one stream, its body sent as it arrives */
		relay_sc_send(h);
		return;
	}
	if (h->rv != NULL && !h_on_rv(h)) {
		/* full request on the rendezvous, body streamed */
		bool has_body = h->big || bl > 0;

		json = h_request_json(h, false, has_body);
		if (json == NULL || ws_send(h->rv, WS_OP_TEXT, json, strlen(json)) != 0) {
			free(json);
			hconn_fail(h, 502, "could not send the request to the listener");
			return;
		}
		free(json);
		if (!has_body) {
			h_set_fwd(h, HF_RV_SENT);
			return;
		}
		h_set_fwd(h, HF_RV_STREAMING);
	}
	if (h->fwd == HF_RV_STREAMING) {
		while (evbuffer_get_length(h->body) > 0) {
			struct evbuffer_iovec v;

			evbuffer_peek(h->body, -1, NULL, &v, 1);
			if (ws_send_fragment(h->rv, WS_OP_BINARY, v.iov_base, v.iov_len, false) != 0) {
				hconn_fail(h, 502, "could not send the request body to the listener");
				return;
			}
			h->s->m.bytes_to_listener += v.iov_len;
			evbuffer_drain(h->body, v.iov_len);
		}
		if (h->body_done) {
			if (ws_send_fragment(h->rv, WS_OP_BINARY, "", 0, true) != 0) {
				hconn_fail(h, 502, "could not send the request body to the listener");
				return;
			}
			h_set_fwd(h, HF_RV_SENT);
		}
		h_pause(h, ws_is_congested(h->rv));
		return;
	}
	if (h_sent(h))
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
		h_set_fwd(h, HF_ADDRESS);
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
		if (ws_send(h->ctl->ws, WS_OP_BINARY, evbuffer_pullup(h->body, -1), bl) != 0) {
			hconn_fail(h, 502, "could not send the request body to the listener");
			return;
		}
		h->s->m.bytes_to_listener += bl;
		evbuffer_drain(h->body, bl);
	}
	h_set_fwd(h, HF_INLINE);
}

int
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
	h_set_state(h, H_BODY);
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
	h->big = h->body_done = false;
	h_set_fwd(h, HF_NONE);
	h->head_req = strcmp(h->req->method, "HEAD") == 0;
	h->jobs = h->jobs_started = h->sc_mode = false;
	h->keep_alive = h->req->keep_alive;
	rs_uuid(h->req_id);
	if (strlen(h->req->target) > TARGET_MAX) {
		snprintf(h->target, sizeof h->target, "%.120s...", h->req->target);
		hconn_fail(h, 414, "the request target is longer than 8192 bytes");
		return;
	}
	route_split_target(h->req->target, path, sizeof path, &query);
	snprintf(h->target, sizeof h->target, "%s", path);
	if (path[0] != '/' || strcmp(h->req->method, "CONNECT") == 0) {
		hconn_fail(h, 400, "bad request target");
		return;
	}
	if (strncmp(path, "/$hc/", 5) == 0) {
		hconn_fail(h, 400, "WebSocket endpoints need an Upgrade request");
		return;
	}
	if (route_decode_path(path + 1, &dec) != 0) {
		hconn_fail(h, 400, "the path has a bad percent escape");
		return;
	}
	h->ent = route_entity(s, dec, &suffix);
	if (h->ent == NULL) {
		free(dec);
		hconn_fail(h, 404, "no such hybrid connection");
		return;
	}
	if (!conn_sender_ok(s, h->conn)) {
		free(dec);
		hconn_fail(h, 503, "the relay holds as many sender connections as it allows "
		    "(limits.max_connections less limits.reserved_percent, kept for listeners)");
		return;
	}
	if (rjobs_path(suffix)) {	/* the relay's own job queue answers */
		rjobs_begin(h, suffix, query);
		free(dec);
		return;
	}
	free(dec);
	st = route_authorize(s, h->ent, h->req, query, SAS_SEND, &v, &ua, why, sizeof why);
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
	h->sc_mode = h->ent->self_contained;
	h->sc_sent = h->sc_retried = h->sc_retry_pending = false;
	h->sc_exclude = NULL;
	if (h->sc_mode) {
		/* self-contained mode: no listener, no rendezvous (relay_sc.c) */
		h->ent->requests++;
		if (h->req->expect_continue)
			evbuffer_add_printf(bufferevent_get_output(h->bev), "HTTP/1.1 100 Continue\r\n\r\n");
		h_arm_deadline(h);
		h_set_state(h, H_BODY);
		h_send_request(h);
		return;
	}
	if (h->rv == NULL) {	/* a rendezvous kept from the last request carries this one */
		h->ctl = route_pick_listener(h->ent, h->req, &filtered);
		if (h->ctl == NULL && h->rv == NULL) {
			if (filtered)
				hconn_fail(h, 404, "None of the connected listeners meet the "
				    "AllowedListeners/DisallowedListeners criteria");
			else
				hconn_fail(h, 502, "no listener is connected to this hybrid connection");
			return;
		}
	}
	h->ent->requests++;
	if (h->rv_id[0] == '\0') {
		rs_uuid(h->rv_id);
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
	h_set_state(h, H_BODY);
	if (!h->req->chunked && !h->req->has_length)
		h->body_done = false;
	h_send_request(h);
}

int
h_on_body(const uint8_t *d, size_t n, void *arg)
{
	struct hconn *h = arg;

	if (h->jobs)
		return h->dead ? SHIR_ENOMEM : rjobs_body(h, d, n);
	if (h->dead || evbuffer_add(h->body, d, n) != 0)
		return SHIR_ENOMEM;
	if (!h->big && evbuffer_get_length(h->body) + 2048 > (size_t)h->s->conf->inline_max) {
		/* a chunked body that grew too large: switch to the rendezvous */
		h->big = true;
		if (h->rv == NULL)
			h_send_request(h);
	}
	if ((h->rv != NULL && h_on_rv(h)) || h->sc != NULL)
		h_send_request(h);
	if (evbuffer_get_length(h->body) > (size_t)h->s->conf->tunnel_buffer) {
		h_pause(h, true);
		http1_pause(h->hp);
	}
	return 0;
}

int
h_on_complete(void *arg)
{
	struct hconn *h = arg;

	if (h->upgrade && h->st == H_HEAD)
		return 0;
	h->body_done = true;
	h_set_state(h, H_WAIT);
	http1_pause(h->hp);	/* one request at a time */
	return 0;
}

void
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
		if (h->upgrade && h->st == H_HEAD && relay_sc_wants(h->req)) {
			/* a node's self-contained connection (relay_sc.c) */
			relay_sc_adopt(h);
			return;
		}
		if (h->upgrade && h->st == H_HEAD) {
			/* hand the connection to a WebSocket endpoint */
			struct ws_options o = rs_ws_opts(h->s);
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
		if (h->st == H_BODY && h->req_id[0] == '\0') {	/* a new head: route it */
			bool was_sent = h_sent(h);

			h_dispatch(h);
			if (!was_sent)
				continue;
		}
		if (h->st == H_WAIT)	/* the request, or the end of its body on the rendezvous */
			h_send_request(h);
		if (used == 0 && h->st != H_BODY)
			break;
	}
}

void
h_read(struct bufferevent *bev, void *arg)
{
	h_feed(arg);
}

void
h_resume_cb(evutil_socket_t fd, short w, void *arg)
{
	struct hconn *h = arg;

	if (!h->dead)
		h_feed(h);
}

void
hconn_try_resume(struct hconn *h)
{
	if (h->dead || h->bev == NULL)
		return;
	h_pause(h, false);
	h_feed(h);
}

void
h_write(struct bufferevent *bev, void *arg)
{
	struct hconn *h = arg;

	if (h->sc != NULL)
		relay_sc_writable(h);
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
	bool inline_req = h->fwd == HF_INLINE && h->rv == NULL;

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

void
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
		    (h->st == H_WAIT || (h->st == H_BODY && h_sent(h))))
			h_sender_gone(h, what);
		hconn_close(h);
	}
}

/* Start of a response from the listener. */
void
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
			evbuffer_add_printf(out, "Via: %s, 1.1 %s\r\n", via, route_via_host(h->s, h->req));
		else
			evbuffer_add_printf(out, "Via: 1.1 %s\r\n", route_via_host(h->s, h->req));
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
	log_info("relay", "event=http.response status=%d origin=%s hc=%s target=%s", st,
	    h->jobs ? "relay" : "listener", log_q(h->ent ? h->ent->name : "-"), log_q(h->target));
	if (!r->body) {
		if (!h->resp_nobody)
			evbuffer_add_printf(out, "Content-Length: 0\r\n");
		evbuffer_add(out, "\r\n", 2);
		h_set_state(h, H_RESP);
		h_resp_body(h, NULL, 0, true);
		return;
	}
	h_set_state(h, H_RESP);
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

void
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
	h_set_state(h, H_HEAD);
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
		    h_find_inflight(h->s, m.response.request_id, NULL) != NULL ? "foreign" : "unknown",
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

	if (!h->dead && h->fwd == HF_RV_STREAMING)
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

const struct ws_callbacks RV_CB = {
	.on_message = rv_message,
	.on_fragment = rv_fragment,
	.on_writable = rv_writable,
	.on_close = rv_close,
};
