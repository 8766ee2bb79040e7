/* scconn: one self-contained connection: dial, upgrade, HTTP/2 server, streams. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <openssl/crypto.h>

#include "common/evread.h"
#include "common/log.h"
#include "common/random.h"
#include "node/api.h"
#include "node/api_stream.h"
#include "node/node.h"
#include "node/selfcont/scconn.h"
#include "relay/announce.h"
#include "relay/hcdial.h"
#include "relay/sc_proto.h"

#define SC_WINDOW (256 * 1024)
#define SC_NO_SETTINGS_S 10	/* after the 101, the relay's SETTINGS must come within this */
#define SC_DEADLINE_MAX_S 86400	/* a larger shir-deadline-s is taken as this */
#define SC_DEADLINE_EARLY_MS 250	/* answer this much before the relay gives up */

enum sc_phase { SC_IDLE = 0, SC_DIALING, SC_UPGRADING, SC_H2 };

struct scstr {
	struct scstr *next, *prev;
	struct scconn *c;
	int32_t sid;
	char method[16];
	char *path;
	size_t hdr_bytes;
	struct evbuffer *body;
	int too_big;
	int dispatched;
	struct api_reply *handle;	/* while the API works on it */
	char *resp;			/* the answer's body, sent as the window allows */
	struct api_stream *pipe;	/* or a streamed answer, read as the window allows */
	int status;
	size_t resp_len, resp_off;
	int64_t start_ms;
	int64_t deadline_ms;		/* shir-deadline-s of the relay, 0: none */
	struct event *ev_deadline;
};

struct scconn {
	struct scctx *ctx;
	struct lspec spec;
	struct hcdial_url u;
	SSL_CTX *ssl;
	struct chstate cs;
	enum sc_phase phase;
	struct hcdial *dial;
	struct bufferevent *bev;
	nghttp2_session *sess;
	int got_settings;
	int pings_out;
	int goaway_recv;
	int retired, finished, fuzz;
	int in_recv;		/* inside nghttp2_session_mem_recv: no sending, no teardown */
	struct scstr *streams;
	unsigned nstreams;
	char conn_id[64];
	struct event *ev_retry, *ev_hs, *ev_ping, *ev_drain;
};

static void sc_down(struct scconn *c, enum chstate_why why, int code, const char *detail);
static int sc_flush(struct scconn *c);

static int64_t
sc_now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void
sc_notify(struct scconn *c)
{
	if (c->ctx->on_state)
		c->ctx->on_state(c->ctx->arg, c);
}

/* --- streams ------------------------------------------------------------------------- */

static void
sc_str_free(struct scstr *q)
{
	struct scconn *c = q->c;

	if (q->prev)
		q->prev->next = q->next;
	else
		c->streams = q->next;
	if (q->next)
		q->next->prev = q->prev;
	c->nstreams--;
	c->cs.inflight = c->nstreams;
	if (q->handle != NULL)
		api_reply_cancel(q->handle);	/* the store operation stops */
	if (q->pipe != NULL) {
		/* a streamed answer: its producer stops (the store query is
		 * cancelled) if it has not finished */
		api_stream_set_reader(q->pipe, NULL, NULL);
		api_stream_cancel(q->pipe);
		api_stream_unref(q->pipe);
	}
	if (q->ev_deadline)
		event_free(q->ev_deadline);
	if (q->body)
		evbuffer_free(q->body);
	free(q->path);
	free(q->resp);
	free(q);
}

static ssize_t
sc_read_resp(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
    nghttp2_data_source *src, void *arg)
{
	struct scstr *q = src->ptr;
	size_t n = q->resp_len - q->resp_off;

	if (n > len)
		n = len;
	if (n > 0)
		memcpy(buf, q->resp + q->resp_off, n);
	q->resp_off += n;
	q->c->cs.bytes_out += n;
	if (q->resp_off == q->resp_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* Headers "Name: value\r\n..." of the API as HTTP/2 fields (lower case). */
static size_t
sc_parse_headers(const char *h, char *store, size_t cap, nghttp2_nv *nv, size_t max)
{
	size_t n = 0, used = 0;

	while (h != NULL && *h && n < max) {
		const char *eol = strstr(h, "\r\n"), *colon;
		size_t ll = eol ? (size_t)(eol - h) : strlen(h), nl, vl, i;

		colon = memchr(h, ':', ll);
		if (colon != NULL && used + ll + 2 < cap) {
			const char *v = colon + 1;

			nl = (size_t)(colon - h);
			while (v < h + ll && *v == ' ')
				v++;
			vl = (size_t)(h + ll - v);
			for (i = 0; i < nl; i++)
				store[used + i] = (char)((h[i] >= 'A' && h[i] <= 'Z') ? h[i] + 32 : h[i]);
			memcpy(store + used + nl + 1, v, vl);
			nv[n].name = (uint8_t *)store + used;
			nv[n].namelen = nl;
			nv[n].value = (uint8_t *)store + used + nl + 1;
			nv[n].valuelen = vl;
			nv[n].flags = NGHTTP2_NV_FLAG_NONE;
			/* connection-specific fields are not HTTP/2 */
			if (!(nl == 10 && strncasecmp(h, "connection", 10) == 0) &&
			    !(nl == 17 && strncasecmp(h, "transfer-encoding", 17) == 0))
				n++;
			used += nl + vl + 2;
		}
		h = eol ? eol + 2 : NULL;
	}
	return n;
}

/* DATA frames as large as the relay allows (its SETTINGS_MAX_FRAME_SIZE) and
 * the windows permit, rather than nghttp2's 16 KiB */
static ssize_t
sc_read_length(nghttp2_session *s, uint8_t type, int32_t sid, int32_t swin, int32_t cwin,
    uint32_t rmax, void *arg)
{
	ssize_t n = swin < cwin ? swin : cwin;

	if (n > (ssize_t)rmax)
		n = (ssize_t)rmax;
	return n > 0 ? n : 1;
}

static void
sc_respond(struct scstr *q, int status, const char *headers, const char *ctype, const char *body,
    size_t len)
{
	struct scconn *c = q->c;
	nghttp2_nv nv[40];
	char st[8], cl[24], store[4096];
	nghttp2_data_provider dp;
	size_t n = 0;

	log_info("selfcont", "event=request.done conn=%s stream=%d method=%s target=%s status=%d "
	    "bytes=%zu ms=%lld", log_q(c->cs.name), q->sid, log_q(q->method),
	    log_q(q->path ? q->path : "-"), status, len, (long long)(sc_now_ms() - q->start_ms));
	if (c->sess == NULL)
		return;
	if (len > 0 && (q->resp = malloc(len)) == NULL) {
		nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, q->sid, NGHTTP2_INTERNAL_ERROR);
		sc_flush(c);
		return;
	}
	if (len > 0)
		memcpy(q->resp, body, len);
	q->resp_len = len;
	snprintf(st, sizeof st, "%d", status);
	snprintf(cl, sizeof cl, "%zu", len);
	nv[n++] = (nghttp2_nv){ (uint8_t *)":status", (uint8_t *)st, 7, strlen(st), 0 };
	if (ctype != NULL && *ctype)
		nv[n++] = (nghttp2_nv){ (uint8_t *)"content-type", (uint8_t *)ctype, 12, strlen(ctype), 0 };
	nv[n++] = (nghttp2_nv){ (uint8_t *)"content-length", (uint8_t *)cl, 14, strlen(cl), 0 };
	n += sc_parse_headers(headers, store, sizeof store, nv + n, sizeof nv / sizeof nv[0] - n);
	dp.source.ptr = q;
	dp.read_callback = sc_read_resp;
	if (nghttp2_submit_response(c->sess, q->sid, nv, n, len > 0 ? &dp : NULL) != 0)
		nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, q->sid, NGHTTP2_INTERNAL_ERROR);
	sc_flush(c);
}

/* A streamed answer: DATA as the pipe fills and the relay's window allows;
 * an empty pipe defers the stream until the producer writes more. */
static ssize_t
sc_read_pipe(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
    nghttp2_data_source *src, void *arg)
{
	struct scstr *q = src->ptr;
	int end;
	size_t n = api_stream_read(q->pipe, buf, len, &end);

	if (n == 0 && end == 0)
		return NGHTTP2_ERR_DEFERRED;
	if (n == 0 && end < 0) {
		/* the answer failed after it started: the sender sees it cut */
		log_warn("selfcont", "event=request.cut conn=%s stream=%d target=%s bytes=%zu "
		    "reason=\"the operation failed or was stopped after its answer started\"",
		    log_q(q->c->cs.name), q->sid, log_q(q->path ? q->path : "-"), q->resp_off);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;	/* RST_STREAM */
	}
	q->resp_off += n;
	q->c->cs.bytes_out += n;
	if (end > 0)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static void
sc_pipe_readable(void *arg)
{
	struct scstr *q = arg;

	if (q->c->sess == NULL)
		return;
	nghttp2_session_resume_data(q->c->sess, q->sid);
	sc_flush(q->c);
}

static void
sc_api_stream(void *arg, int status, const char *headers, const char *ctype, struct api_stream *p)
{
	struct scstr *q = arg;
	struct scconn *c = q->c;
	nghttp2_nv nv[40];
	char st[8], store[4096];
	nghttp2_data_provider dp;
	size_t n = 0;

	q->handle = NULL;
	q->pipe = p;
	q->status = status;
	if (q->ev_deadline)
		evtimer_del(q->ev_deadline);
	log_info("selfcont", "event=request.streaming conn=%s stream=%d method=%s target=%s "
	    "status=%d ms=%lld", log_q(c->cs.name), q->sid, log_q(q->method),
	    log_q(q->path ? q->path : "-"), status, (long long)(sc_now_ms() - q->start_ms));
	if (c->sess == NULL)
		return;
	api_stream_set_reader(p, sc_pipe_readable, q);
	snprintf(st, sizeof st, "%d", status);
	nv[n++] = (nghttp2_nv){ (uint8_t *)":status", (uint8_t *)st, 7, strlen(st), 0 };
	if (ctype != NULL && *ctype)
		nv[n++] = (nghttp2_nv){ (uint8_t *)"content-type", (uint8_t *)ctype, 12, strlen(ctype), 0 };
	n += sc_parse_headers(headers, store, sizeof store, nv + n, sizeof nv / sizeof nv[0] - n);
	dp.source.ptr = q;
	dp.read_callback = sc_read_pipe;
	if (nghttp2_submit_response(c->sess, q->sid, nv, n, &dp) != 0)
		nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, q->sid, NGHTTP2_INTERNAL_ERROR);
	sc_flush(c);
}

static void
sc_api_done(void *arg, int status, const char *headers, const char *ctype, const char *body,
    size_t len)
{
	struct scstr *q = arg;

	q->handle = NULL;
	if (q->ev_deadline)
		evtimer_del(q->ev_deadline);
	sc_respond(q, status, headers, ctype, body, len);
}

static void
sc_error(struct scstr *q, int status, const char *code, const char *msg)
{
	char body[512];
	int n = snprintf(body, sizeof body, "{\"status\":\"Failed\",\"error\":{\"code\":\"%s\","
	    "\"message\":\"%s\"}}", code, msg);

	sc_respond(q, status, "", "application/json", body, n > 0 ? (size_t)n : 0);
}

static int
sc_path_is(const char *path, const char *p)
{
	size_t l = strlen(p);

	return strncmp(path, p, l) == 0 && (path[l] == '\0' || path[l] == '?');
}

/* The request's deadline (shir-deadline-s) passed while the store works: the
 * operation is cancelled (as when the relay resets the stream) and the
 * stream, still open, gets 504. It fires a little before the relay's own
 * limit, so the sender reads the node's reason rather than the relay's. */
static void
sc_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct scstr *q = arg;
	char msg[200];

	if (q->handle == NULL)
		return;
	log_warn("selfcont", "event=request.timeout conn=%s stream=%d method=%s target=%s ms=%lld",
	    log_q(q->c->cs.name), q->sid, log_q(q->method), log_q(q->path ? q->path : "-"),
	    (long long)(sc_now_ms() - q->start_ms));
	api_reply_cancel(q->handle);	/* the store operation stops */
	q->handle = NULL;
	snprintf(msg, sizeof msg, "the request did not finish within its deadline of %lld ms "
	    "(shir-deadline-s from the relay); the operation was cancelled",
	    (long long)q->deadline_ms);
	sc_error(q, 504, "Timeout", msg);
}

static void
sc_deadline_arm(struct scstr *q)
{
	int64_t ms = q->deadline_ms - (sc_now_ms() - q->start_ms);
	struct timeval tv;

	if (q->deadline_ms <= 0)
		return;
	if (ms > 2 * SC_DEADLINE_EARLY_MS)
		ms -= SC_DEADLINE_EARLY_MS;
	else if (ms > SC_DEADLINE_EARLY_MS)
		ms = SC_DEADLINE_EARLY_MS;
	if (ms < 1)
		ms = 1;
	if (q->ev_deadline == NULL &&
	    (q->ev_deadline = evtimer_new(q->c->ctx->base, sc_deadline_cb, q)) == NULL)
		return;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(q->ev_deadline, &tv);
}

static void
sc_dispatch(struct scstr *q)
{
	struct scconn *c = q->c;
	struct api_request rq;
	size_t blen = evbuffer_get_length(q->body);
	const char *body;

	q->dispatched = 1;
	if (q->path == NULL || q->method[0] == '\0') {
		sc_error(q, 400, "InvalidRequest", "a stream without :method or :path");
		return;
	}
	if (q->too_big) {
		sc_error(q, 413, "InvalidRequest", "the request body is too large");
		return;
	}
	evbuffer_add(q->body, "", 1);
	body = (const char *)evbuffer_pullup(q->body, -1);
	if (strcmp(q->method, "PUT") == 0 && sc_path_is(q->path, SC_PROTO_MODE_PATH)) {
		cJSON *j = cJSON_Parse(body ? body : "");
		cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "selfContained");

		if (!cJSON_IsBool(v)) {
			cJSON_Delete(j);
			sc_error(q, 400, "InvalidRequest", "selfContained must be true or false");
			return;
		}
		log_info("selfcont", "event=selfcontained.told conn=%s mode=%s", log_q(c->cs.name),
		    cJSON_IsTrue(v) ? "on" : "off");
		if (c->ctx->on_mode)
			c->ctx->on_mode(c->ctx->arg, cJSON_IsTrue(v));
		cJSON_Delete(j);
		sc_respond(q, 204, "", NULL, NULL, 0);
		return;
	}
	/* as on Windows: no "Get IP" and no "Send log" in self-contained mode */
	if (sc_path_is(q->path, "/v1/node/ip") || sc_path_is(q->path, "/v1/node/logs")) {
		sc_error(q, 501, "NotSupportedInSelfContainedMode", "this operation is not available "
		    "while self-contained interactive authoring is on");
		return;
	}
	memset(&rq, 0, sizeof rq);
	rq.method = q->method;
	rq.target = q->path;
	rq.body = body ? body : "";
	rq.body_len = blen;
	rq.channel = API_CH_SELF_CONTAINED;
	if (c->fuzz) {
		sc_error(q, 503, "Fuzz", "not dispatched");
		return;
	}
	api_dispatch_stream(node_api(c->ctx->node), &rq, sc_api_done, sc_api_stream, q, &q->handle);
	if (q->handle != NULL)
		sc_deadline_arm(q);
}

/* --- nghttp2 callbacks -------------------------------------------------------------- */

static int
sc_on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
	struct scconn *c = arg;
	struct scstr *q;

	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	q = calloc(1, sizeof *q);
	if (q == NULL || (q->body = evbuffer_new()) == NULL) {
		free(q);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	q->c = c;
	q->sid = f->hd.stream_id;
	q->start_ms = sc_now_ms();
	q->next = c->streams;
	if (c->streams)
		c->streams->prev = q;
	c->streams = q;
	c->nstreams++;
	c->cs.inflight = c->nstreams;
	nghttp2_session_set_stream_user_data(s, q->sid, q);
	return 0;
}

static int
sc_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
    const uint8_t *value, size_t vl, uint8_t flags, void *arg)
{
	struct scstr *q;

	if (f->hd.type != NGHTTP2_HEADERS ||
	    (q = nghttp2_session_get_stream_user_data(s, f->hd.stream_id)) == NULL)
		return 0;
	q->hdr_bytes += nl + vl + 32;
	if (q->hdr_bytes > SCCONN_HEADERS_MAX)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;	/* the stream is reset */
	if (nl == 7 && memcmp(name, ":method", 7) == 0 && vl < sizeof q->method) {
		memcpy(q->method, value, vl);
		q->method[vl] = '\0';
	} else if (nl == 5 && memcmp(name, ":path", 5) == 0 && q->path == NULL) {
		if (vl == 0 || value[0] != '/' || (q->path = malloc(vl + 1)) == NULL)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		memcpy(q->path, value, vl);
		q->path[vl] = '\0';
	} else if (nl == 15 && memcmp(name, "shir-deadline-s", 15) == 0 && vl > 0 && vl < 24) {
		char v[24], *end;
		double d;

		memcpy(v, value, vl);
		v[vl] = '\0';
		d = strtod(v, &end);
		/* a value that is not a positive number is ignored (no deadline) */
		if (*end == '\0' && d > 0) {
			if (d > SC_DEADLINE_MAX_S)
				d = SC_DEADLINE_MAX_S;
			q->deadline_ms = (int64_t)(d * 1000);
		}
	}
	return 0;
}

static int
sc_on_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *d, size_t n, void *arg)
{
	struct scstr *q = nghttp2_session_get_stream_user_data(s, sid);

	if (q == NULL || q->dispatched)
		return 0;
	q->c->cs.bytes_in += n;
	if (q->too_big || evbuffer_get_length(q->body) + n > API_MAX_BODY) {
		q->too_big = 1;
		evbuffer_drain(q->body, evbuffer_get_length(q->body));
		return 0;
	}
	evbuffer_add(q->body, d, n);
	return 0;
}

static int
sc_on_frame(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
	struct scconn *c = arg;
	struct scstr *q;

	c->pings_out = 0;	/* the relay is alive */
	switch (f->hd.type) {
	case NGHTTP2_SETTINGS:
		if (!(f->hd.flags & NGHTTP2_FLAG_ACK) && !c->got_settings) {
			c->got_settings = 1;
			if (c->ev_hs)
				event_del(c->ev_hs);
			if (!c->fuzz) {
				chstate_connected(&c->cs, sc_now_ms());
				log_info("selfcont", "event=channel.connected conn=%s endpoint=%s id=%s",
				    log_q(c->cs.name), log_q(c->spec.endpoint), log_q(c->conn_id));
				sc_notify(c);
			}
		}
		return 0;
	case NGHTTP2_GOAWAY:
		if (!c->goaway_recv) {
			c->goaway_recv = 1;
			log_info("selfcont", "event=channel.goaway conn=%s code=%u streams=%u",
			    log_q(c->cs.name), f->goaway.error_code, c->nstreams);
			if (!c->fuzz)
				sc_notify(c);
		}
		return 0;
	case NGHTTP2_HEADERS:
	case NGHTTP2_DATA:
		if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
		    (q = nghttp2_session_get_stream_user_data(s, f->hd.stream_id)) != NULL &&
		    !q->dispatched)
			sc_dispatch(q);
		return 0;
	default:
		return 0;
	}
}

static int
sc_on_close(nghttp2_session *s, int32_t sid, uint32_t code, void *arg)
{
	struct scstr *q = nghttp2_session_get_stream_user_data(s, sid);

	if (q == NULL)
		return 0;
	if (q->pipe != NULL)
		log_info("selfcont", "event=request.done conn=%s stream=%d method=%s target=%s "
		    "status=%d bytes=%zu ms=%lld streamed=%s code=%u", log_q(q->c->cs.name), sid,
		    log_q(q->method), log_q(q->path ? q->path : "-"), q->status, q->resp_off,
		    (long long)(sc_now_ms() - q->start_ms), code == NGHTTP2_NO_ERROR ? "complete" :
		    code == NGHTTP2_CANCEL ? "cancelled by the relay" : "reset", code);
	if (q->handle != NULL || (q->pipe != NULL && code == NGHTTP2_CANCEL))
		log_info("selfcont", "event=request.cancelled conn=%s stream=%d target=%s code=%u "
		    "reason=%s", log_q(q->c->cs.name), sid, log_q(q->path ? q->path : "-"), code,
		    log_q(code == NGHTTP2_CANCEL ? "the relay cancelled the stream (the sender went "
		    "away or its deadline passed)" : "the stream was reset"));
	nghttp2_session_set_stream_user_data(s, sid, NULL);
	sc_str_free(q);
	return 0;
}

/* --- the connection ------------------------------------------------------------------ */

static int
sc_flush(struct scconn *c)
{
	struct evbuffer *out;

	if (c->sess == NULL)
		return -1;
	if (c->in_recv)
		return 0;	/* the caller of mem_recv flushes */
	out = c->bev ? bufferevent_get_output(c->bev) : NULL;
	while (out == NULL || evbuffer_get_length(out) < SCCONN_OUT_MAX) {
		const uint8_t *d;
		ssize_t n = nghttp2_session_mem_send(c->sess, &d);

		if (n < 0) {
			sc_down(c, CHSTATE_WHY_PROTOCOL, 0, nghttp2_strerror((int)n));
			return -1;
		}
		if (n == 0)
			break;
		if (out != NULL)
			evbuffer_add(out, d, (size_t)n);
	}
	if (c->retired && c->nstreams == 0 && c->bev != NULL &&
	    !nghttp2_session_want_write(c->sess) && evbuffer_get_length(out) == 0) {
		sc_down(c, CHSTATE_WHY_CLOSED, 0, "retired");
		return -1;
	}
	if (c->bev != NULL && !nghttp2_session_want_read(c->sess) &&
	    !nghttp2_session_want_write(c->sess) && evbuffer_get_length(out) == 0) {
		/* nghttp2 ended the session: the relay said GOAWAY and nothing is
		 * left, or it broke HTTP/2 and our GOAWAY went out */
		if (c->goaway_recv)
			sc_down(c, CHSTATE_WHY_NETWORK, 0, "the relay ended the HTTP/2 session (GOAWAY)");
		else
			sc_down(c, CHSTATE_WHY_PROTOCOL, 0, "the relay broke HTTP/2 (a connection error: "
			    "the node sent GOAWAY)");
		return -1;
	}
	return 0;
}

static int
sc_session_new(struct scconn *c)
{
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)c->ctx->capacity },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, SC_WINDOW },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, SCCONN_HEADERS_MAX },
	};
	int rc;

	if (nghttp2_session_callbacks_new(&cb) != 0)
		return -1;
	if (nghttp2_option_new(&opt) != 0) {
		nghttp2_session_callbacks_del(cb);
		return -1;
	}
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, sc_on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, sc_on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, sc_on_data);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, sc_on_frame);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, sc_on_close);
	nghttp2_session_callbacks_set_data_source_read_length_callback(cb, sc_read_length);
	/* abuse limits: nghttp2 keeps its reset-rate limit and CONTINUATION cap
	 * on; these bound what a relay can make us hold */
	nghttp2_option_set_max_settings(opt, 32);
	nghttp2_option_set_max_outbound_ack(opt, 1000);
	nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
	nghttp2_option_set_max_send_header_block_length(opt, 64 * 1024);
	/* a relay that resets streams in a flood, or splits headers into
	 * endless CONTINUATION frames, ends the connection */
	nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
	nghttp2_option_set_max_continuations(opt, 8);
	rc = nghttp2_session_server_new2(&c->sess, cb, c, opt);
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	if (rc != 0)
		return -1;
	if (nghttp2_submit_settings(c->sess, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0)
		return -1;
	nghttp2_session_set_local_window_size(c->sess, NGHTTP2_FLAG_NONE, 0, 4 * 1024 * 1024);
	return 0;
}

static void
sc_teardown(struct scconn *c)
{
	if (c->dial) {
		hcdial_cancel(c->dial);
		c->dial = NULL;
	}
	if (c->sess) {
		nghttp2_session_del(c->sess);	/* no callbacks: the streams go below */
		c->sess = NULL;
	}
	while (c->streams != NULL)
		sc_str_free(c->streams);
	if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	if (c->ev_hs)
		event_del(c->ev_hs);
	if (c->ev_ping)
		event_del(c->ev_ping);
	c->phase = SC_IDLE;
	c->got_settings = 0;
	c->pings_out = 0;
	c->goaway_recv = 0;
}

static void
sc_down(struct scconn *c, enum chstate_why why, int code, const char *detail)
{
	int64_t delay;
	uint32_t rnd = 0;

	sc_teardown(c);
	if (c->retired) {
		if (c->ev_drain)
			event_del(c->ev_drain);
		c->cs.state = CHSTATE_DISCONNECTED;
		if (!c->finished) {
			c->finished = 1;
			log_info("selfcont", "event=channel.closed conn=%s reason=retired",
			    log_q(c->cs.name));
			if (c->ctx->on_finished)
				c->ctx->on_finished(c->ctx->arg, c);
		}
		return;
	}
	(void)random_bytes(&rnd, sizeof rnd);
	delay = chstate_down(&c->cs, sc_now_ms(), why, code, detail, rnd);
	if (delay < 0) {
		log_error("selfcont", "event=channel.stopped conn=%s reason=%s", log_q(c->cs.name),
		    log_q(c->cs.last_error));
	} else {
		struct timeval tv = { (time_t)(delay / 1000), (suseconds_t)(delay % 1000) * 1000 };

		log_warn("selfcont", "event=channel.disconnected conn=%s retry_in_ms=%lld reason=%s",
		    log_q(c->cs.name), (long long)delay, log_q(c->cs.last_error));
		evtimer_add(c->ev_retry, &tv);
	}
	sc_notify(c);
}

static void
sc_upgrading_read(struct scconn *c, struct evbuffer *in)
{
	struct sc_answer a;
	struct shir_error err;
	size_t len = evbuffer_get_length(in);
	size_t take = len < SC_PROTO_HEAD_MAX ? len : SC_PROTO_HEAD_MAX;
	const char *p = (const char *)evbuffer_pullup(in, (ssize_t)take);
	int n = sc_proto_parse_answer(p, take, &a, &err);
	char why[256];

	if (n == 0)
		return;
	if (n < 0) {
		sc_down(c, CHSTATE_WHY_PROTOCOL, 0, err.msg);
		return;
	}
	if (a.status != 101) {
		snprintf(why, sizeof why, "%s%s", a.reason,
		    a.status == 404 ? " (no such integration runtime at the service endpoint)" : "");
		evbuffer_drain(in, (size_t)n);
		sc_down(c, CHSTATE_WHY_HANDSHAKE, a.status, why);
		return;
	}
	evbuffer_drain(in, (size_t)n);
	snprintf(c->conn_id, sizeof c->conn_id, "%s", a.conn_id);
	if (sc_session_new(c) != 0) {
		sc_down(c, CHSTATE_WHY_NETWORK, 0, "out of memory");
		return;
	}
	c->phase = SC_H2;
	log_info("selfcont", "event=channel.upgraded conn=%s id=%s mode=%s", log_q(c->cs.name),
	    log_q(c->conn_id), a.self_contained ? "on" : "off");
	if (c->ctx->on_mode)
		c->ctx->on_mode(c->ctx->arg, a.self_contained);
	/* the relay's SETTINGS must follow within a bounded time */
	{
		struct timeval tv = { SC_NO_SETTINGS_S, 0 };

		evtimer_add(c->ev_hs, &tv);
	}
	{
		struct timeval tv = { c->spec.ping_interval > 0 ? c->spec.ping_interval / 2 : 15, 0 };

		evtimer_add(c->ev_ping, &tv);
	}
}

static void
sc_read_cb(struct bufferevent *bev, void *arg)
{
	struct scconn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (c->phase == SC_UPGRADING)
		sc_upgrading_read(c, in);
	else
		evread_more(bev, SCCONN_OUT_MAX);	/* a request body: fewer wakeups */
	while (c->phase == SC_H2 && c->sess != NULL && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		ssize_t n;

		evbuffer_peek(in, -1, NULL, &v, 1);
		c->in_recv = 1;
		n = nghttp2_session_mem_recv(c->sess, v.iov_base, v.iov_len);
		c->in_recv = 0;
		if (n < 0) {
			char why[200];

			snprintf(why, sizeof why, "the relay broke HTTP/2: %s", nghttp2_strerror((int)n));
			sc_down(c, CHSTATE_WHY_PROTOCOL, 0, why);
			return;
		}
		evbuffer_drain(in, (size_t)n);
	}
	if (c->phase == SC_H2 && c->sess != NULL)
		sc_flush(c);
}

static void
sc_write_cb(struct bufferevent *bev, void *arg)
{
	struct scconn *c = arg;

	if (c->phase == SC_H2)
		sc_flush(c);
}

static void
sc_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct scconn *c = arg;

	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)))
		return;
	if (c->phase == SC_UPGRADING)
		sc_down(c, CHSTATE_WHY_PROTOCOL, 0, (what & BEV_EVENT_EOF) ? "the relay closed the "
		    "connection instead of answering the upgrade" : "the connection failed during the "
		    "upgrade");
	else
		sc_down(c, CHSTATE_WHY_NETWORK, 0, (what & BEV_EVENT_EOF) ? "the relay closed the "
		    "connection" : "the connection to the relay failed");
}

/* Large answers: libevent reads and writes 16 KiB a loop turn by default, and
 * Nagle would hold the tail of a frame; both cost a preview's transfer time. */
static void
sc_tune(struct bufferevent *bev)
{
	evutil_socket_t fd = bufferevent_getfd(bev);
	int one = 1;

	bufferevent_set_max_single_read(bev, SCCONN_OUT_MAX);
	bufferevent_set_max_single_write(bev, SCCONN_OUT_MAX);
	if (fd >= 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void
sc_dial_cb(void *arg, struct bufferevent *bev, const struct shir_error *err)
{
	struct scconn *c = arg;
	struct sc_hello h;
	struct announce_lines ann;
	char host[300], *tok = NULL, *head;
	char cap[16];

	c->dial = NULL;
	if (bev == NULL) {
		sc_down(c, err->code == SHIR_ETLS ? CHSTATE_WHY_TLS : hcdial_via_proxy(err) ?
		    CHSTATE_WHY_PROXY : CHSTATE_WHY_NETWORK, 0, err->msg);
		return;
	}
	c->bev = bev;
	sc_tune(bev);
	hcdial_host_header(&c->u, host, sizeof host);
	if (hcdial_listen_token(c->spec.endpoint, c->spec.path, c->spec.key_name, c->spec.key,
	    sc_now_ms() / 1000 + c->spec.token_lifetime, &tok) != 0) {
		sc_down(c, CHSTATE_WHY_CONFIG, 0, "cannot make the SAS token (out of memory)");
		return;
	}
	memset(&h, 0, sizeof h);
	h.host = host;
	h.hc = c->spec.path;
	h.token = tok;
	h.node_name = node_name(c->ctx->node);
	h.node_id = c->cs.name;
	h.version = PACKAGE_VERSION;
	h.capacity = c->ctx->capacity;
	(void)cap;
	/* name, version and installation, as on the listener's upgrade: the
	 * relay refuses another installation under this node's name (409) */
	if (announce_headers(node_name(c->ctx->node), PACKAGE_VERSION, c->ctx->instance, &ann) == 0)
		h.ann = &ann;
	head = sc_proto_request(&h);
	OPENSSL_cleanse(tok, strlen(tok));
	free(tok);
	if (head == NULL) {
		sc_down(c, CHSTATE_WHY_CONFIG, 0, "cannot build the upgrade request (a name has "
		    "control characters, or out of memory)");
		return;
	}
	bufferevent_setcb(bev, sc_read_cb, sc_write_cb, sc_event_cb, c);
	bufferevent_setwatermark(bev, EV_WRITE, SCCONN_OUT_MAX / 2, 0);
	bufferevent_setwatermark(bev, EV_READ, 0, 0);
	evbuffer_add(bufferevent_get_output(bev), head, strlen(head));
	OPENSSL_cleanse(head, strlen(head));
	free(head);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	c->phase = SC_UPGRADING;
	{
		struct timeval tv = { c->spec.connect_timeout, 0 };

		evtimer_add(c->ev_hs, &tv);
	}
}

static void
sc_connect(struct scconn *c)
{
	struct hcdial_opts o;

	if (c->retired || c->finished)
		return;
	chstate_connecting(&c->cs, sc_now_ms());
	sc_notify(c);
	memset(&o, 0, sizeof o);
	o.url = c->spec.endpoint;
	o.u = &c->u;
	o.ssl_ctx = c->ssl;
	o.tls_pin = c->spec.tls_pin;
	o.timeout_s = c->spec.connect_timeout;
	o.proxy = node_ext(c->ctx->node, NODE_EXT_PROXY);
	log_info("selfcont", "event=channel.connecting conn=%s endpoint=%s", log_q(c->cs.name),
	    log_q(c->spec.endpoint));
	c->phase = SC_DIALING;
	c->dial = hcdial_start(c->ctx->base, c->ctx->dns, &o, sc_dial_cb, c);
	if (c->dial == NULL)
		sc_down(c, CHSTATE_WHY_NETWORK, 0, "cannot start a connection (out of memory)");
}

static void
sc_retry_cb(evutil_socket_t fd, short w, void *arg)
{
	sc_connect(arg);
}

static void
sc_hs_cb(evutil_socket_t fd, short w, void *arg)
{
	struct scconn *c = arg;
	char why[160];

	if (c->phase == SC_UPGRADING)
		snprintf(why, sizeof why, "the relay did not answer the upgrade within %d s",
		    c->spec.connect_timeout);
	else
		snprintf(why, sizeof why, "the relay sent no HTTP/2 SETTINGS within %d s of the 101",
		    SC_NO_SETTINGS_S);
	sc_down(c, CHSTATE_WHY_PROTOCOL, 0, why);
}

static void
sc_ping_cb(evutil_socket_t fd, short w, void *arg)
{
	struct scconn *c = arg;
	struct timeval tv = { c->spec.ping_interval > 0 ? c->spec.ping_interval / 2 : 15, 0 };

	if (c->sess == NULL)
		return;
	if (c->pings_out >= 2) {
		sc_down(c, CHSTATE_WHY_DEAD, (int)tv.tv_sec * 2, NULL);
		return;
	}
	c->pings_out++;
	nghttp2_submit_ping(c->sess, NGHTTP2_FLAG_NONE, NULL);
	if (sc_flush(c) == 0)
		evtimer_add(c->ev_ping, &tv);
}

static void
sc_drain_cb(evutil_socket_t fd, short w, void *arg)
{
	struct scconn *c = arg;

	log_warn("selfcont", "event=channel.drain_timeout conn=%s streams=%u", log_q(c->cs.name),
	    c->nstreams);
	sc_down(c, CHSTATE_WHY_CLOSED, 0, "retired");
}

/* --- public -------------------------------------------------------------------------- */

struct scconn *
scconn_new(struct scctx *ctx, const struct lspec *spec, const char *name, struct shir_error *err)
{
	struct scconn *c = calloc(1, sizeof *c);

	if (c == NULL) {
		shir_error_set(err, SHIR_ENOMEM, "out of memory");
		return NULL;
	}
	c->ctx = ctx;
	if (lspec_copy(&c->spec, spec) != 0) {
		free(c);
		shir_error_set(err, SHIR_ENOMEM, "out of memory");
		return NULL;
	}
	if (hcdial_parse_url(spec->endpoint, 0, &c->u, err) != 0 ||
	    (c->u.tls && hcdial_tls_ctx_new(spec->ca_file, &c->ssl, err) != 0)) {
		lspec_clear(&c->spec);
		free(c);
		return NULL;
	}
	chstate_init(&c->cs, name, spec->endpoint, spec->path);
	c->ev_retry = evtimer_new(ctx->base, sc_retry_cb, c);
	c->ev_hs = evtimer_new(ctx->base, sc_hs_cb, c);
	c->ev_ping = evtimer_new(ctx->base, sc_ping_cb, c);
	c->ev_drain = evtimer_new(ctx->base, sc_drain_cb, c);
	if (c->ev_retry == NULL || c->ev_hs == NULL || c->ev_ping == NULL || c->ev_drain == NULL) {
		scconn_free(c);
		shir_error_set(err, SHIR_ENOMEM, "out of memory");
		return NULL;
	}
	return c;
}

void
scconn_start(struct scconn *c)
{
	sc_connect(c);
}

void
scconn_retire(struct scconn *c, int drain_s)
{
	struct timeval tv = { drain_s, 0 };

	if (c->retired)
		return;
	c->retired = 1;
	evtimer_del(c->ev_retry);
	if (c->sess == NULL || c->phase != SC_H2) {
		sc_down(c, CHSTATE_WHY_CLOSED, 0, "retired");
		return;
	}
	log_info("selfcont", "event=channel.draining conn=%s streams=%u", log_q(c->cs.name),
	    c->nstreams);
	/* no new streams: GOAWAY naming the last one we took */
	nghttp2_submit_goaway(c->sess, NGHTTP2_FLAG_NONE,
	    nghttp2_session_get_last_proc_stream_id(c->sess), NGHTTP2_NO_ERROR,
	    (const uint8_t *)"node draining", 13);
	evtimer_add(c->ev_drain, &tv);
	sc_flush(c);
}

void
scconn_free(struct scconn *c)
{
	if (c == NULL)
		return;
	c->retired = 1;
	c->finished = 1;
	sc_teardown(c);
	if (c->ev_retry)
		event_free(c->ev_retry);
	if (c->ev_hs)
		event_free(c->ev_hs);
	if (c->ev_ping)
		event_free(c->ev_ping);
	if (c->ev_drain)
		event_free(c->ev_drain);
	SSL_CTX_free(c->ssl);
	lspec_clear(&c->spec);
	free(c);
}

const struct chstate *
scconn_state(const struct scconn *c)
{
	return &c->cs;
}

const struct lspec *
scconn_spec(const struct scconn *c)
{
	return &c->spec;
}

int
scconn_goaway(const struct scconn *c)
{
	return c->goaway_recv;
}

unsigned
scconn_streams(const struct scconn *c)
{
	return c->nstreams;
}

void
scconn_status_json(const struct scconn *c, cJSON *arr)
{
	cJSON *o = cJSON_CreateObject();

	if (o == NULL)
		return;
	chstate_to_json(&c->cs, o, sc_now_ms());
	cJSON_AddStringToObject(o, "kind", "selfContained");
	cJSON_AddStringToObject(o, "transport", "h2-reverse");
	cJSON_AddStringToObject(o, "connectionId", c->conn_id);
	if (c->retired)
		cJSON_AddBoolToObject(o, "draining", 1);
	cJSON_AddItemToArray(arr, o);
}

struct scconn *
scconn_new_fuzz(struct scctx *ctx)
{
	struct scconn *c = calloc(1, sizeof *c);

	if (c == NULL)
		return NULL;
	c->ctx = ctx;
	c->fuzz = 1;
	chstate_init(&c->cs, "fuzz", "wss://fuzz", "fuzz");
	c->phase = SC_H2;
	if (sc_session_new(c) != 0) {
		scconn_free(c);
		return NULL;
	}
	return c;
}

int
scconn_fuzz_feed(struct scconn *c, const uint8_t *d, size_t n)
{
	ssize_t rc;

	if (c->sess == NULL)
		return -1;
	c->in_recv = 1;
	rc = nghttp2_session_mem_recv(c->sess, d, n);
	c->in_recv = 0;
	if (rc < 0)
		return -1;
	return sc_flush(c);
}
