/* relay_sc: self-contained connections (docs/self-contained.md). A node opens
 * one TLS connection to the service endpoint, asks for `Upgrade: reverse`
 * with a Listen token, and from the 101 on the relay is the HTTP/2 client of
 * that connection: each sender request of a runtime in self-contained mode
 * becomes one stream on the connection with the fewest outstanding streams.
 *
 * Flow control: the relay consumes a response's bytes (WINDOW_UPDATE) only
 * once the sender's socket has taken them; a request body is sent as the
 * sender delivers it. A stream the node refused (REFUSED_STREAM, or above
 * the last stream of its GOAWAY, or on a connection that died before any
 * answer) is sent once more on another connection. */
#include "config.h"

#include <nghttp2/nghttp2.h>

#include "common/evread.h"
#include "relay/announce.h"
#include "relay/sc_proto.h"
#include "relay/server/relay_srv_int.h"

#define SC_MAX_PER_ENT 256	/* connections of one runtime (64 nodes of 4) */
/* Flow-control windows the relay grants the node for its answers. The bytes
 * of a stream the relay holds are at most the sender's tunnel_buffer plus
 * SC_WINDOW; of a connection at most SC_CONN_WINDOW (the memory cap of one
 * node connection, whatever its senders do). */
#define SC_WINDOW (2 * 1024 * 1024)	/* per stream */
#define SC_CONN_WINDOW (16 * 1024 * 1024)
#define SC_FRAME_MAX (64 * 1024)
#define SC_OUT_MAX (256 * 1024)	/* bytes queued to the node before nghttp2 is asked for more */
#define SC_READ_MAX (256 * 1024)	/* read from a node's socket in one wakeup */
#define SC_PING_S 15
#define SC_QUEUE_S 5		/* a request waits this long for a free stream */
#define SC_STREAMS_CAP 4096	/* whatever the node advertises */
#define SC_REQ_KEEP (64 * 1024)	/* request body kept for a retry */

struct scstream;

struct scconn {
	struct scconn *next, *prev;
	struct rsrv *s;
	struct ent *ent;
	struct bufferevent *bev;
	struct connrec *conn;
	nghttp2_session *sess;
	struct scstream *streams;
	char id[37];
	char node[96];
	char peer[64];
	struct announce ann;	/* Shir-Node, Shir-Version, Shir-Node-Instance */
	int capacity;
	int nout;		/* sender streams outstanding */
	int pings_out;
	bool goaway;		/* the node said GOAWAY, or we are closing: no new streams */
	bool dead;
	bool in_recv;		/* inside nghttp2_session_mem_recv: sc_read flushes after */
	time_t since;
	uint64_t streams_total;
	struct event *ping;
	struct event *reap;
};

struct scstream {
	struct scstream *next, *prev;
	struct scconn *c;
	int32_t sid;
	struct hconn *h;	/* NULL: the sender is gone, or a mode stream */
	size_t body_off;	/* request body bytes sent from h->body */
	bool body_drained;	/* some of the body was dropped after sending: no retry */
	bool mode;		/* a mode-change stream */
	char mode_body[32];
	size_t mode_len, mode_off;
	struct hc_response resp;
	bool resp_started;
	bool hdrs_sent;		/* our HEADERS went out (an RST before that would be for an idle stream) */
	bool cancel_pending;	/* cancel once the HEADERS are out */
	size_t owed;		/* response bytes written to the sender, not yet consumed */
};

static int sc_flush(struct scconn *c);
static void sc_conn_close(struct scconn *c, const char *why);
static void sc_queue_drain(struct rsrv *s, struct ent *e);
static bool sc_name_taken(struct rsrv *s, struct hconn *h, struct ent *e,
    const struct announce *a);

static uint64_t sc_m_streams, sc_m_retried, sc_m_refused503, sc_m_conns_total;

/* --- the upgrade ------------------------------------------------------------------ */

bool
relay_sc_wants(const struct http1_msg *req)
{
	const char *up = http1_msg_get(req, "Upgrade");

	return up != NULL && strcasecmp(up, "reverse") == 0 &&
	    strncmp(req->target, SC_PROTO_PATH, strlen(SC_PROTO_PATH)) == 0;
}

/* --- nghttp2 callbacks -------------------------------------------------------------- */

static ssize_t
sc_read_body(nghttp2_session *sess, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
    nghttp2_data_source *src, void *arg)
{
	struct scstream *st = src->ptr;
	struct hconn *h = st->h;
	size_t have, n;

	if (st->mode) {
		n = st->mode_len - st->mode_off;
		if (n > len)
			n = len;
		memcpy(buf, st->mode_body + st->mode_off, n);
		st->mode_off += n;
		if (st->mode_off == st->mode_len)
			*flags |= NGHTTP2_DATA_FLAG_EOF;
		return (ssize_t)n;
	}
	if (h == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	have = evbuffer_get_length(h->body);
	n = have > st->body_off ? have - st->body_off : 0;
	if (n > len)
		n = len;
	if (n > 0) {
		struct evbuffer_ptr p;

		evbuffer_ptr_set(h->body, &p, st->body_off, EVBUFFER_PTR_SET);
		evbuffer_copyout_from(h->body, &p, buf, n);
		st->body_off += n;
		h->s->m.bytes_to_listener += n;
		if (st->body_off > SC_REQ_KEEP) {
			/* a large body is not kept for a retry: its sent part goes */
			evbuffer_drain(h->body, st->body_off);
			st->body_off = 0;
			st->body_drained = true;
			hconn_try_resume(h);
		}
	}
	if (n == 0 && !h->body_done)
		return NGHTTP2_ERR_DEFERRED;
	if (h->body_done && st->body_off == evbuffer_get_length(h->body))
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static int
sc_on_header(nghttp2_session *sess, const nghttp2_frame *f, const uint8_t *name, size_t nl,
    const uint8_t *value, size_t vl, uint8_t flags, void *arg)
{
	struct scstream *st;
	char n[128], v[4096];

	if (f->hd.type != NGHTTP2_HEADERS ||
	    (st = nghttp2_session_get_stream_user_data(sess, f->hd.stream_id)) == NULL)
		return 0;
	if (nl >= sizeof n || vl >= sizeof v || st->resp.headers.n >= 64)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;	/* resets the stream */
	memcpy(n, name, nl), n[nl] = '\0';
	memcpy(v, value, vl), v[vl] = '\0';
	if (strcmp(n, ":status") == 0) {
		st->resp.status = atoi(v);
		return 0;
	}
	if (n[0] == ':' || st->resp_started)
		return 0;	/* trailers are not passed on (HTTP/1.1 chunked trailers are not written) */
	return hc_headers_add(&st->resp.headers, n, v) == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static void
sc_stream_unlink(struct scstream *st)
{
	struct scconn *c = st->c;

	if (st->prev)
		st->prev->next = st->next;
	else
		c->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	st->next = st->prev = NULL;
	if (st->h != NULL || !st->mode)
		c->nout--;
}

static void
sc_stream_free(struct scstream *st)
{
	hc_headers_clear(&st->resp.headers);
	free(st);
}

/* The stream's hconn and the stream part. */
static struct hconn *
sc_stream_release(struct scstream *st)
{
	struct hconn *h = st->h;

	if (h != NULL) {
		h->sc = NULL;
		st->h = NULL;
		if (h->bev != NULL)
			bufferevent_setwatermark(h->bev, EV_WRITE, 0, 0);
	}
	return h;
}

static int
sc_on_frame_recv(nghttp2_session *sess, const nghttp2_frame *f, void *arg)
{
	struct scconn *c = arg;
	struct scstream *st;

	c->pings_out = 0;	/* anything from the node says it is alive */
	if (f->hd.type == NGHTTP2_GOAWAY) {
		log_info("relay", "event=sc.goaway conn=%s node=%s last_stream=%d code=%u", c->id,
		    log_q(c->node), f->goaway.last_stream_id, f->goaway.error_code);
		c->goaway = true;
		return 0;
	}
	if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK)) {
		sc_queue_drain(c->s, c->ent);
		return 0;
	}
	if (f->hd.type != NGHTTP2_HEADERS ||
	    (st = nghttp2_session_get_stream_user_data(sess, f->hd.stream_id)) == NULL ||
	    st->resp_started || st->mode)
		return 0;
	if (st->resp.status < 200) {
		if (st->resp.status >= 100)
			return 0;	/* interim */
		return 0;
	}
	st->resp_started = true;
	if (st->h != NULL) {
		bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;

		st->resp.body = !end;
		h_response(st->h, &st->resp, NULL);
		if (end && st->h != NULL) {
			struct hconn *h = sc_stream_release(st);

			h_resp_body(h, NULL, 0, true);
		}
	}
	return 0;
}

static int
sc_on_data(nghttp2_session *sess, uint8_t flags, int32_t sid, const uint8_t *d, size_t n,
    void *arg)
{
	struct scstream *st = nghttp2_session_get_stream_user_data(sess, sid);
	struct hconn *h = st ? st->h : NULL;

	if (h == NULL || h->dead || h->bev == NULL) {
		nghttp2_session_consume(sess, sid, n);
		return 0;
	}
	h_resp_body(h, d, n, false);
	if (evbuffer_get_length(bufferevent_get_output(h->bev)) > (size_t)h->s->conf->tunnel_buffer)
		st->owed += n;	/* consumed when the sender has taken it (relay_sc_writable) */
	else
		nghttp2_session_consume(sess, sid, n);
	return 0;
}

static void
sc_retry_or_fail(struct scconn *from, struct hconn *h, const char *why)
{
	if (h == NULL || h->dead)
		return;
	if (!h->sc_retried && !h->resp_started) {
		h->sc_retried = true;
		sc_m_retried++;
		log_info("relay", "event=sc.retry hc=%s target=%s from=%s why=%s",
		    log_q(h->ent ? h->ent->name : "-"), log_q(h->target), from->id, log_q(why));
		h->sc_exclude = from;
		h->sc_retry_pending = true;
		relay_sc_send(h);
		return;
	}
	hconn_fail(h, 502, why);
}

static int
sc_on_stream_close(nghttp2_session *sess, int32_t sid, uint32_t code, void *arg)
{
	struct scconn *c = arg;
	struct scstream *st = nghttp2_session_get_stream_user_data(sess, sid);
	struct hconn *h;
	bool resp_started;

	if (st == NULL)
		return 0;
	nghttp2_session_set_stream_user_data(sess, sid, NULL);
	resp_started = st->resp_started;
	if (st->owed > 0)
		nghttp2_session_consume_connection(sess, st->owed);
	sc_stream_unlink(st);
	h = sc_stream_release(st);
	if (h != NULL && !h->dead) {
		if (code == NGHTTP2_NO_ERROR && resp_started)
			h_resp_body(h, NULL, 0, true);
		else if (code == NGHTTP2_REFUSED_STREAM && !resp_started && !st->body_drained)
			sc_retry_or_fail(c, h, "the node refused the stream");
		else if (!resp_started)
			hconn_fail(h, 502, "the node reset the stream before answering");
		else
			hconn_close(h);	/* an answer cut short: the sender sees it end */
	}
	sc_stream_free(st);
	sc_queue_drain(c->s, c->ent);
	return 0;
}

static int
sc_begin_headers(nghttp2_session *sess, const nghttp2_frame *f, void *arg)
{
	return 0;
}

/* A stream is reset only after its HEADERS left: the node treats an
 * RST_STREAM for a stream it never saw as a connection error. */
static int
sc_on_frame_send(nghttp2_session *sess, const nghttp2_frame *f, void *arg)
{
	struct scstream *st;

	if (f->hd.type != NGHTTP2_HEADERS ||
	    (st = nghttp2_session_get_stream_user_data(sess, f->hd.stream_id)) == NULL)
		return 0;
	st->hdrs_sent = true;
	if (st->cancel_pending)
		nghttp2_submit_rst_stream(sess, NGHTTP2_FLAG_NONE, st->sid, NGHTTP2_CANCEL);
	return 0;
}

/* --- the connection ------------------------------------------------------------------ */

static int
sc_flush(struct scconn *c)
{
	struct evbuffer *out;

	if (c->dead || c->bev == NULL)
		return -1;
	if (c->in_recv)
		return 0;
	out = bufferevent_get_output(c->bev);
	while (evbuffer_get_length(out) < SC_OUT_MAX) {
		const uint8_t *d;
		ssize_t n = nghttp2_session_mem_send(c->sess, &d);

		if (n < 0) {
			sc_conn_close(c, nghttp2_strerror((int)n));
			return -1;
		}
		if (n == 0)
			break;
		evbuffer_add(out, d, (size_t)n);
	}
	if (!nghttp2_session_want_read(c->sess) && !nghttp2_session_want_write(c->sess) &&
	    evbuffer_get_length(out) == 0) {
		sc_conn_close(c, "the HTTP/2 session ended");
		return -1;
	}
	return 0;
}

static void
sc_read(struct bufferevent *bev, void *arg)
{
	struct scconn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	int i;

	/* libevent read 4 KiB: take what else the socket holds (a large answer
	 * otherwise costs about six system calls per 4 KiB) */
	for (i = 0; i < 4 && evread_more(bev, SC_READ_MAX) > 0; i++)
		;
	while (!c->dead && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		ssize_t n;

		evbuffer_peek(in, -1, NULL, &v, 1);
		c->in_recv = true;
		n = nghttp2_session_mem_recv(c->sess, v.iov_base, v.iov_len);
		c->in_recv = false;
		if (n < 0) {
			char why[160];

			snprintf(why, sizeof why, "HTTP/2 error from the node: %s", nghttp2_strerror((int)n));
			sc_conn_close(c, why);
			return;
		}
		evbuffer_drain(in, (size_t)n);
	}
	sc_flush(c);
}

static void
sc_write(struct bufferevent *bev, void *arg)
{
	sc_flush(arg);
}

static void
sc_event(struct bufferevent *bev, short what, void *arg)
{
	struct scconn *c = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		sc_conn_close(c, (what & BEV_EVENT_EOF) ? "the node closed the connection" :
		    "the connection to the node failed");
}

static void
sc_ping(evutil_socket_t fd, short w, void *arg)
{
	struct scconn *c = arg;

	if (c->dead)
		return;
	if (c->pings_out >= 2) {
		sc_conn_close(c, "the node answered no PING for 30 s");
		return;
	}
	c->pings_out++;
	nghttp2_submit_ping(c->sess, NGHTTP2_FLAG_NONE, NULL);
	sc_flush(c);
}

static void
sc_unlink_conn(struct scconn *c)
{
	struct ent *e = c->ent;

	if (c->prev)
		c->prev->next = c->next;
	else if (e->scs == c)
		e->scs = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
	e->nsc--;
}

static void
sc_reap(evutil_socket_t fd, short w, void *arg)
{
	struct scconn *c = arg;
	struct rsrv *s = c->s;

	if (c->ping)
		event_free(c->ping);
	event_free(c->reap);
	nghttp2_session_del(c->sess);
	if (c->bev)
		bufferevent_free(c->bev);
	if (c->conn)
		conn_gone(s, c->conn);
	free(c);
}

static void
sc_conn_close(struct scconn *c, const char *why)
{
	struct scstream *st;
	struct hconn *pending[SC_STREAMS_CAP];
	size_t np = 0, i;

	if (c->dead)
		return;
	c->dead = true;
	log_info("relay", "event=sc.closed conn=%s hc=%s node=%s peer=%s streams=%d why=%s", c->id,
	    log_q(c->ent->name), log_q(c->node), c->peer, c->nout, log_q(why));
	sc_unlink_conn(c);
	if (c->bev)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	while ((st = c->streams) != NULL) {
		struct hconn *h;
		bool retry = !st->resp_started && !st->body_drained;

		nghttp2_session_set_stream_user_data(c->sess, st->sid, NULL);
		sc_stream_unlink(st);
		h = sc_stream_release(st);
		sc_stream_free(st);
		if (h == NULL || h->dead)
			continue;
		if (retry && np < SC_STREAMS_CAP)
			pending[np++] = h;
		else if (h->resp_started)
			hconn_close(h);
		else
			hconn_fail(h, 502, "the node's self-contained connection closed");
	}
	for (i = 0; i < np; i++)
		sc_retry_or_fail(c, pending[i], "the node's self-contained connection closed");
	event_active(c->reap, 0, 0);
}

void
relay_sc_adopt(struct hconn *h)
{
	struct rsrv *s = h->s;
	struct bufferevent *bev = h->bev;
	char path[TARGET_MAX + 1], why[512], head[512], *dec = NULL;
	const char *query, *suffix;
	struct sas_verified v;
	struct scconn *c;
	struct ent *e;
	bool ua;
	struct announce ann;
	int st, n;
	nghttp2_session_callbacks *cb = NULL;
	nghttp2_option *opt = NULL;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, SC_WINDOW },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 65536 },
		/* answers come in frames of up to 64 KiB (fewer frames, callbacks
		 * and chunk heads for a large answer) */
		{ NGHTTP2_SETTINGS_MAX_FRAME_SIZE, SC_FRAME_MAX },
	};

	route_split_target(h->req->target, path, sizeof path, &query);
	if (strcmp(h->req->method, "GET") != 0 ||
	    route_decode_path(path + strlen(SC_PROTO_PATH), &dec) != 0) {
		hconn_fail(h, 400, "bad self-contained upgrade request");
		return;
	}
	e = route_entity(s, dec, &suffix);
	if (e != NULL && suffix != NULL && *suffix)
		e = NULL;	/* the runtime's name, nothing after it */
	free(dec);
	if (e == NULL) {
		hconn_fail(h, 404, "no such integration runtime");
		return;
	}
	if (fail_limited(s, h->peer)) {
		hconn_fail_retry(h, 429, 10, "too many failed attempts from this address");
		return;
	}
	st = route_authorize(s, e, h->req, query, SAS_LISTEN, &v, &ua, why, sizeof why);
	if (st != 0) {
		fail_note(s, h->peer);
		s->m.listen_fail++;
		log_info("relay", "event=sc.refused hc=%s peer=%s status=%d why=%s", log_q(e->name),
		    h->peer, st, log_q(why));
		hconn_fail(h, st, why);
		return;
	}
	announce_parse(http1_msg_get(h->req, ANNOUNCE_NODE), http1_msg_get(h->req, ANNOUNCE_VERSION),
	    http1_msg_get(h->req, ANNOUNCE_INSTANCE), &ann);
	if (sc_name_taken(s, h, e, &ann))
		return;
	if (s->shutting_down || e->nsc >= SC_MAX_PER_ENT) {
		/* written before the connection closes (hconn_fail_retry flushes) */
		hconn_fail_retry(h, 503, 5, s->shutting_down ? "the relay is shutting down" :
		    "this runtime holds as many self-contained connections as the relay allows");
		return;
	}
	c = calloc(1, sizeof *c);
	if (c == NULL || nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0) {
		free(c);
		nghttp2_session_callbacks_del(cb);
		hconn_fail(h, 500, "out of memory");
		return;
	}
	nghttp2_session_callbacks_set_on_header_callback(cb, sc_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, sc_on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, sc_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, sc_on_stream_close);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, sc_begin_headers);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, sc_on_frame_send);
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_option_set_peer_max_concurrent_streams(opt, 1);	/* until its SETTINGS */
	nghttp2_option_set_max_settings(opt, 32);
	nghttp2_option_set_max_outbound_ack(opt, 1000);
	nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
	nghttp2_option_set_max_continuations(opt, 8);
	st = nghttp2_session_client_new2(&c->sess, cb, c, opt);
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	if (st != 0) {
		free(c);
		hconn_fail(h, 500, "out of memory");
		return;
	}
	c->s = s;
	c->ent = e;
	c->since = time(NULL);
	rs_uuid(c->id);
	snprintf(c->peer, sizeof c->peer, "%s", h->peer);
	c->ann = ann;
	{
		const char *nn = http1_msg_get(h->req, "Shir-Node-Name");
		const char *cap = http1_msg_get(h->req, "Shir-Capacity");

		snprintf(c->node, sizeof c->node, "%s", c->ann.node[0] ? c->ann.node : nn ? nn : "-");
		c->capacity = cap ? atoi(cap) : 0;
	}
	c->ping = event_new(s->base, -1, EV_PERSIST, sc_ping, c);
	c->reap = event_new(s->base, -1, 0, sc_reap, c);
	n = sc_proto_answer_101(head, sizeof head, c->id, e->self_contained);
	if (c->ping == NULL || c->reap == NULL || n < 0 ||
	    nghttp2_submit_settings(c->sess, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0 ||
	    nghttp2_session_set_local_window_size(c->sess, NGHTTP2_FLAG_NONE, 0, SC_CONN_WINDOW) != 0) {
		if (c->ping)
			event_free(c->ping);
		if (c->reap)
			event_free(c->reap);
		nghttp2_session_del(c->sess);
		free(c);
		hconn_fail(h, 500, "out of memory");
		return;
	}
	/* the connection (socket, count and record) moves from the hconn */
	h->bev = NULL;
	c->bev = bev;
	c->conn = h->conn;
	h->conn = NULL;
	if (c->conn != NULL)
		conn_set_kind(s, c->conn, CK_NODE);
	hconn_close(h);
	bufferevent_set_timeouts(bev, NULL, NULL);
	bufferevent_setwatermark(bev, EV_READ, 0, 0);
	bufferevent_setwatermark(bev, EV_WRITE, SC_OUT_MAX / 2, 0);
	bufferevent_setcb(bev, sc_read, sc_write, sc_event, c);
	evbuffer_add(bufferevent_get_output(bev), head, (size_t)n);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	{
		struct timeval tv = { SC_PING_S, 0 };

		evtimer_add(c->ping, &tv);
	}
	c->next = e->scs;
	if (e->scs)
		e->scs->prev = c;
	e->scs = c;
	e->nsc++;
	s->m.listen_ok++;
	sc_m_conns_total++;
	log_info("relay", "event=sc.connected conn=%s hc=%s node=%s peer=%s capacity=%d mode=%s",
	    c->id, log_q(e->name), log_q(c->node), c->peer, c->capacity,
	    e->self_contained ? "on" : "off");
	/* bytes after the head, if the node sent any, are HTTP/2 */
	sc_read(bev, c);
}

const char *
relay_sc_name_user(struct ent *e, const char *node, const char *instance, time_t *since)
{
	const struct scconn *o;

	for (o = e->scs; o != NULL; o = o->next)
		if (!o->dead && strcmp(o->ann.node, node) == 0 && strcmp(o->ann.instance, instance) != 0) {
			*since = o->since;
			return o->peer;
		}
	return NULL;
}

/* One name per node on a runtime, as for listeners (relay_listen.c): a live
 * self-contained connection or listener with the announced name from another
 * installation refuses this one with 409 "Node name in use: NAME". A node
 * that announces no name is not compared. Returns true when refused. */
static bool
sc_name_taken(struct rsrv *s, struct hconn *h, struct ent *e, const struct announce *a)
{
	const struct ctl *l;
	const char *peer = NULL;
	time_t since = 0;
	char reason[96 + ANNOUNCE_NAME_MAX], msg[512 + ANNOUNCE_NAME_MAX];

	if (a->node[0] == '\0')
		return false;
	peer = relay_sc_name_user(e, a->node, a->instance, &since);
	for (l = e->ctls; l != NULL && peer == NULL; l = l->next)
		if (!l->closing && strcmp(l->ann.node, a->node) == 0 &&
		    strcmp(l->ann.instance, a->instance) != 0)
			peer = l->peer, since = l->since;
	if (peer == NULL)
		return false;
	s->m.listen_fail++;
	log_warn("relay", "event=sc.refused status=409 hc=%s node=%s peer=%s other_peer=%s why=%s",
	    log_q(e->name), log_q(a->node), h->peer, peer,
	    log_q("another installation is connected under this node name"));
	snprintf(reason, sizeof reason, "%s: %s", ANNOUNCE_NAME_IN_USE, a->node);
	snprintf(msg, sizeof msg, "another node named \"%s\" (from %s, connected for %ld s) serves "
	    "integration runtime %s; each node of a runtime needs its own name", a->node, peer,
	    (long)(time(NULL) - since), e->name);
	hconn_fail_reason(h, 409, reason, 0, msg);
	return true;
}

/* --- routing ------------------------------------------------------------------------ */

static struct scconn *
sc_pick(struct ent *e, const struct scconn *exclude)
{
	struct scconn *c, *best = NULL, *fallback = NULL;

	for (c = e->scs; c != NULL; c = c->next) {
		uint32_t max;

		if (c->dead || c->goaway)
			continue;
		max = nghttp2_session_get_remote_settings(c->sess,
		    NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
		if (max > SC_STREAMS_CAP)
			max = SC_STREAMS_CAP;
		if ((uint32_t)c->nout >= max)
			continue;
		if (c == exclude) {
			fallback = c;
			continue;
		}
		if (best == NULL || c->nout < best->nout)
			best = c;
	}
	return best ? best : fallback;
}

static void
sc_queue_timeout(evutil_socket_t fd, short w, void *arg)
{
	struct hconn *h = arg;

	h->sc_queued = false;
	h->s->nscqueued--;
	sc_m_refused503++;
	hconn_fail_retry(h, 503, 1, h->ent && h->ent->nsc > 0 ?
	    "every self-contained connection of this runtime is busy" :
	    "no node of this runtime holds a self-contained connection");
}

static void
sc_queue_drain(struct rsrv *s, struct ent *e)
{
	struct hconn *h, *hn;

	if (s->nscqueued <= 0)
		return;
	for (h = s->hconns; h != NULL && s->nscqueued > 0; h = hn) {
		hn = h->next;
		if (!h->sc_queued || h->ent != e || h->dead)
			continue;
		if (sc_pick(e, NULL) == NULL)
			return;
		h->sc_draining = true;
		relay_sc_send(h);
		h->sc_draining = false;
	}
}

void
relay_sc_unqueue(struct hconn *h)
{
	if (!h->sc_queued)
		return;
	h->sc_queued = false;
	h->s->nscqueued--;
	if (h->sc_wait)
		evtimer_del(h->sc_wait);
}

void
relay_sc_send(struct hconn *h)
{
	struct scconn *c;
	struct scstream *st;
	nghttp2_nv nv[64];
	size_t nn = 0, i;
	char dl[32];
	nghttp2_data_provider dp;
	int32_t sid;
	bool has_body;

	if (h->dead || h->ent == NULL)
		return;
	if (h->sc != NULL) {	/* more of the request body */
		nghttp2_session_resume_data(h->sc->c->sess, h->sc->sid);
		sc_flush(h->sc->c);
		return;
	}
	if ((h->sc_sent && !h->sc_retry_pending) || (h->sc_queued && !h->sc_draining))
		return;	/* under way, or waiting for a stream (its timer keeps running) */
	relay_sc_unqueue(h);
	c = sc_pick(h->ent, h->sc_exclude);
	if (c == NULL) {
		if (h->sc_wait == NULL)
			h->sc_wait = evtimer_new(h->s->base, sc_queue_timeout, h);
		if (h->sc_wait == NULL) {
			hconn_fail(h, 500, "out of memory");
			return;
		}
		h->sc_queued = true;
		h->s->nscqueued++;
		{
			struct timeval tv = { SC_QUEUE_S, 0 };

			evtimer_add(h->sc_wait, &tv);
		}
		return;
	}
	st = calloc(1, sizeof *st);
	if (st == NULL) {
		hconn_fail(h, 500, "out of memory");
		return;
	}
	st->c = c;
	st->h = h;
	has_body = !h->body_done || evbuffer_get_length(h->body) > 0;
#define NV(n, v) do { nv[nn].name = (uint8_t *)(n); nv[nn].namelen = strlen(n); \
	nv[nn].value = (uint8_t *)(v); nv[nn].valuelen = strlen(v); \
	nv[nn].flags = NGHTTP2_NV_FLAG_NONE; nn++; } while (0)
	NV(":method", h->req->method);
	NV(":scheme", "https");
	NV(":authority", "node");
	{
		/* the node sees /v1/..., the path after /{hc} (as the listener
		 * strips it from a relayed request's target) */
		size_t hl = strlen(h->ent->name);
		const char *t = h->target;

		if (t[0] == '/' && strncasecmp(t + 1, h->ent->name, hl) == 0 &&
		    (t[1 + hl] == '/' || t[1 + hl] == '?'))
			t += 1 + hl;
		NV(":path", t);
	}
	{
		/* what is left of the sender's deadline (it may have waited in the
		 * queue): the node cancels the store operation when it passes */
		struct timeval at, now;
		long long ms = (long long)h->s->conf->response_timeout * 1000;

		if (h->deadline != NULL && evtimer_pending(h->deadline, &at) &&
		    event_base_gettimeofday_cached(h->s->base, &now) == 0) {
			ms = ((long long)at.tv_sec - now.tv_sec) * 1000 + (at.tv_usec - now.tv_usec) / 1000;
			if (ms < 1)
				ms = 1;
		}
		snprintf(dl, sizeof dl, "%lld.%03lld", ms / 1000, ms % 1000);
	}
	NV("shir-request-id", h->req_id);
	NV("shir-deadline-s", dl);
	for (i = 0; i < h->req->nh && nn < sizeof nv / sizeof nv[0] - 1; i++) {
		const char *n = h->req->h[i].name;

		/* HTTP/2 has no connection-level headers; the token stays at the relay */
		if (hc_is_hop_header(n) || http1_msg_has_token(h->req, "Connection", n) ||
		    strcasecmp(n, "ServiceBusAuthorization") == 0 ||
		    (strcasecmp(n, "Authorization") == 0 && h->auth_header_used) ||
		    strcasecmp(n, "Expect") == 0 || strcasecmp(n, "Host") == 0)
			continue;
		/* names must be lower case in HTTP/2: the value points into h->req */
		{
			char *p = h->req->h[i].name;

			for (; *p; p++)
				*p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
		}
		NV(h->req->h[i].name, h->req->h[i].value);
	}
#undef NV
	dp.source.ptr = st;
	dp.read_callback = sc_read_body;
	sid = nghttp2_submit_request(c->sess, NULL, nv, nn, has_body ? &dp : NULL, st);
	if (sid < 0) {
		free(st);
		hconn_fail(h, 502, "could not open a stream to the node");
		return;
	}
	st->sid = sid;
	st->next = c->streams;
	if (c->streams)
		c->streams->prev = st;
	c->streams = st;
	c->nout++;
	c->streams_total++;
	sc_m_streams++;
	h->sc = st;
	/* the window is granted again as the sender's socket takes the bytes,
	 * well before its output is empty, so the node keeps sending */
	if (h->bev != NULL)
		bufferevent_setwatermark(h->bev, EV_WRITE, (size_t)h->s->conf->tunnel_buffer / 2, 0);
	h->sc_sent = true;
	h->sc_retry_pending = false;
	h->fwd = HF_INLINE;
	log_debug("relay", "event=sc.stream conn=%s stream=%d hc=%s target=%s", c->id, sid,
	    log_q(h->ent->name), log_q(h->target));
	sc_flush(c);
}

void
relay_sc_detach(struct hconn *h)
{
	struct scstream *st = h->sc;

	relay_sc_unqueue(h);
	if (h->sc_wait) {
		event_free(h->sc_wait);
		h->sc_wait = NULL;
	}
	if (st == NULL)
		return;
	h->sc = NULL;
	st->h = NULL;
	if (h->bev != NULL)
		bufferevent_setwatermark(h->bev, EV_WRITE, 0, 0);
	if (st->owed > 0) {
		nghttp2_session_consume(st->c->sess, st->sid, st->owed);
		st->owed = 0;
	}
	if (!st->c->dead) {
		/* the sender went away, or its deadline passed: the node cancels */
		if (st->hdrs_sent)
			nghttp2_submit_rst_stream(st->c->sess, NGHTTP2_FLAG_NONE, st->sid, NGHTTP2_CANCEL);
		else
			st->cancel_pending = true;
		sc_flush(st->c);
	}
}

void
relay_sc_writable(struct hconn *h)
{
	struct scstream *st = h->sc;

	if (st == NULL || st->owed == 0 || st->c->dead)
		return;
	nghttp2_session_consume(st->c->sess, st->sid, st->owed);
	st->owed = 0;
	sc_flush(st->c);
}

/* --- the runtime's mode ------------------------------------------------------------- */

static void
sc_send_mode(struct scconn *c, bool on)
{
	struct scstream *st = calloc(1, sizeof *st);
	nghttp2_nv nv[] = {
		{ (uint8_t *)":method", (uint8_t *)"PUT", 7, 3, 0 },
		{ (uint8_t *)":scheme", (uint8_t *)"https", 7, 5, 0 },
		{ (uint8_t *)":authority", (uint8_t *)"node", 10, 4, 0 },
		{ (uint8_t *)":path", (uint8_t *)SC_PROTO_MODE_PATH, 5, sizeof SC_PROTO_MODE_PATH - 1, 0 },
	};
	nghttp2_data_provider dp;
	int32_t sid;

	if (st == NULL)
		return;
	st->c = c;
	st->mode = true;
	st->mode_len = (size_t)snprintf(st->mode_body, sizeof st->mode_body,
	    "{\"selfContained\":%s}", on ? "true" : "false");
	dp.source.ptr = st;
	dp.read_callback = sc_read_body;
	sid = nghttp2_submit_request(c->sess, NULL, nv, 4, &dp, st);
	if (sid < 0) {
		free(st);
		sc_conn_close(c, "could not tell the node the runtime's mode");
		return;
	}
	st->sid = sid;
	st->next = c->streams;
	if (c->streams)
		c->streams->prev = st;
	c->streams = st;
	sc_flush(c);
}

void
relay_sc_set_mode(struct ent *e, bool on)
{
	struct scconn *c, *cn;

	if (e->self_contained == on)
		return;
	e->self_contained = on;
	log_info("relay", "event=sc.mode hc=%s mode=%s connections=%d", log_q(e->name),
	    on ? "on" : "off", e->nsc);
	for (c = e->scs; c != NULL; c = cn) {
		cn = c->next;
		sc_send_mode(c, on);
	}
}

/* --- life cycle, status ---------------------------------------------------------------- */

void
relay_sc_close_ent(struct ent *e, const char *why)
{
	while (e->scs != NULL)
		sc_conn_close(e->scs, why);
}

void
relay_sc_shutdown(struct rsrv *s)
{
	struct ent *e;
	struct scconn *c;

	for (e = s->ents; e != NULL; e = e->next)
		for (c = e->scs; c != NULL; c = c->next) {
			c->goaway = true;
			nghttp2_submit_goaway(c->sess, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR,
			    (const uint8_t *)"relay shutting down", 19);
			sc_flush(c);
		}
}

void
relay_sc_free_ent(struct ent *e)
{
	while (e->scs != NULL) {
		struct scconn *c = e->scs;

		sc_conn_close(c, "relay stopping");
		event_del(c->reap);
		sc_reap(-1, 0, c);
	}
}

void
relay_sc_status(const struct ent *e, cJSON *o)
{
	cJSON *arr;
	const struct scconn *c;

	cJSON_AddBoolToObject(o, "selfContained", e->self_contained);
	arr = cJSON_AddArrayToObject(o, "selfContainedConnections");
	for (c = e->scs; arr != NULL && c != NULL; c = c->next) {
		cJSON *j = cJSON_CreateObject();

		if (j == NULL)
			return;
		cJSON_AddItemToArray(arr, j);
		cJSON_AddStringToObject(j, "id", c->id);
		cJSON_AddStringToObject(j, "node", c->node);
		if (c->ann.version[0])
			cJSON_AddStringToObject(j, "nodeVersion", c->ann.version);
		if (c->ann.instance[0])
			cJSON_AddStringToObject(j, "instance", c->ann.instance);
		cJSON_AddStringToObject(j, "peer", c->peer);
		cJSON_AddStringToObject(j, "transport", "h2-reverse");
		cJSON_AddNumberToObject(j, "capacity", c->capacity);
		cJSON_AddNumberToObject(j, "streams", c->nout);
		cJSON_AddNumberToObject(j, "streamsTotal", (double)c->streams_total);
		cJSON_AddBoolToObject(j, "draining", c->goaway);
		cJSON_AddNumberToObject(j, "connectedSeconds", (double)(time(NULL) - c->since));
	}
}

void
relay_sc_metrics(struct rsrv *s, struct evbuffer *out)
{
	struct ent *e;
	long n = 0, streams = 0;

	for (e = s->ents; e != NULL; e = e->next) {
		const struct scconn *c;

		n += e->nsc;
		for (c = e->scs; c != NULL; c = c->next)
			streams += c->nout;
	}
	evbuffer_add_printf(out, "# HELP shir_relay_sc_connections Self-contained connections open.\n"
	    "# TYPE shir_relay_sc_connections gauge\nshir_relay_sc_connections %ld\n"
	    "# HELP shir_relay_sc_streams Streams outstanding on self-contained connections.\n"
	    "# TYPE shir_relay_sc_streams gauge\nshir_relay_sc_streams %ld\n"
	    "# HELP shir_relay_sc_connections_total Self-contained connections accepted.\n"
	    "# TYPE shir_relay_sc_connections_total counter\nshir_relay_sc_connections_total %llu\n"
	    "# HELP shir_relay_sc_streams_total Sender requests sent as streams.\n"
	    "# TYPE shir_relay_sc_streams_total counter\nshir_relay_sc_streams_total %llu\n"
	    "# HELP shir_relay_sc_retried_total Streams sent again on another connection.\n"
	    "# TYPE shir_relay_sc_retried_total counter\nshir_relay_sc_retried_total %llu\n"
	    "# HELP shir_relay_sc_busy_total Requests answered 503 with no free stream.\n"
	    "# TYPE shir_relay_sc_busy_total counter\nshir_relay_sc_busy_total %llu\n",
	    n, streams, (unsigned long long)sc_m_conns_total, (unsigned long long)sc_m_streams,
	    (unsigned long long)sc_m_retried, (unsigned long long)sc_m_refused503);
}
