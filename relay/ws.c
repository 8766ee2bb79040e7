/* ws: the endpoint (see ws.h): the bufferevent glue, wslay for text and
 * control frames, the fast path for binary payload (docs/relay.md says why),
 * forwarding between endpoints, message assembly, backpressure and the life
 * cycle. The frame codec is ws_frame.h (pure, inline), the handshake's keys
 * and checks ws_handshake.c (pure). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <wslay/wslay.h>

#include "common/evread.h"
#include "common/log.h"
#include "common/random.h"
#include "relay/ws.h"
#include "relay/ws_frame.h"
#include "relay/ws_handshake.h"

/* most input held per endpoint: one recvmsg tops the socket's 4 KiB bufferevent read up to this */
#define WS_READ_MAX (256 * 1024)
#define WS_SMALL_FRAME 1024	/* ws_send_frame copies header and payload together up to this */
#define WS_IDLE_MS 2000	/* quiet time before an idle endpoint frees its wslay context */

enum ws_role { WS_ROLE_SERVER, WS_ROLE_CLIENT };

/* One endpoint. The fields come in groups; what must hold between them is
 * written at each group (the code keeps it; idle_now() reads most of it).
 *
 * Life cycle: state goes HANDSHAKE -> (server: DECIDING -> OPEN or REJECTING)
 * (client: OPEN) -> CLOSING -> CLOSED, through set_state() only. finished is
 * set once, by finish(), which also calls on_close exactly once (after
 * on_handshake_failed when the handshake failed); nothing is delivered after
 * it. A callback runs with busy > 0; ws_free() inside one only sets
 * free_pending, and leave() frees when busy is back to 0 (STYLE: never free
 * in your own callback). */
struct ws {
	struct bufferevent *bev;	/* NULL once dropped (finish); owned */
	struct event_base *base;
	enum ws_role role;
	enum ws_state state;
	/* wslay: NULL before the 101 and while idle (release_idle). Non-NULL
	 * whenever wslay holds anything: a partial frame (fed > parsed), a queued
	 * or fragmented message, a Close sent or received. */
	wslay_event_context_ptr wctx;
	bool proto_started;	/* the WebSocket protocol runs (after the 101) */
	uint64_t fed;		/* bytes handed to wslay; fed >= parsed */
	uint64_t parsed;	/* bytes of the frames wslay completed */
	uint64_t cur_frame;	/* header + payload of the frame being received */
	uint64_t activity;	/* bumped by every receive and send */
	uint64_t activity_armed;	/* its value when idle_ev was armed */
	struct event *idle_ev;	/* releases the wslay context after WS_IDLE_MS */
	struct ws_callbacks cb;
	void *arg;
	void *tag;		/* the owner's, kept across callback changes */
	struct ws_options opt;

	/* handshake: hp parses the peer's head; head is set once it is complete
	 * and stays valid until the endpoint is freed (ws_request) */
	struct http1 *hp;
	struct http1_msg *head;	/* server: request; client: response */
	char *protocol;		/* the agreed subprotocol, or NULL */
	char key[25];		/* client: our Sec-WebSocket-Key */
	char *offered;		/* client: offered protocols */
	bool head_delivered;	/* server: on_request called */
	bool open_pending;	/* on_open to be called from the loop */

	/* receive. A data message is open while in_msg; msg_op is its opcode.
	 * assemble: its bytes go to asm_buf and one on_message delivers them;
	 * else each piece goes to on_fragment (first_pending: the next piece is
	 * its first). frame_*: the wslay frame being received. */
	bool in_msg;
	enum ws_opcode msg_op;
	bool assemble;
	bool first_pending;
	struct evbuffer *asm_buf;	/* only while assemble; capped by max_message */
	bool frame_data;	/* the current frame is a data frame */
	bool frame_fin;
	uint64_t frame_len, frame_got;	/* frame_got <= frame_len */
	bool fin_delivered;
	/* Binary messages skip wslay (see fast_recv). fp_msg implies in_msg with
	 * msg_op binary, and that wslay has no message open; fp_frame: inside one
	 * of its frames, fp_off + fp_left = that frame's payload length. While
	 * fp_frame no byte goes to wslay. */
	bool fp_msg;		/* a binary message read by fast_recv is under way */
	bool fp_frame;		/* inside one of its frames */
	bool fp_fin;		/* that frame ends the message */
	uint64_t fp_left;	/* its payload bytes still to read */
	uint64_t fp_off;	/* its payload bytes read so far */
	uint8_t fp_mask[4];
	bool fp_masked;
	/* What wslay may read: feed_left bytes (one whole frame, set at a frame
	 * boundary by fast_header), or everything once a header was invalid
	 * (feed_all, for the rest of the connection: wslay reports the error). */
	uint64_t feed_left;	/* bytes of the current frame wslay may still take */
	bool feed_all;		/* wslay reads everything (after a bad header) */

	/* send. A message goes out either through wslay (frag_active: a
	 * fragmented one is queued there) or as raw frames written straight to
	 * the output (raw_mode; raw_open until its final frame): never both at
	 * once, and raw frames only when wslay holds nothing that must go first
	 * (raw_ok). */
	struct evbuffer *frag;
	bool frag_active;	/* a fragmented message is queued in wslay */
	bool frag_fin;
	enum ws_opcode raw_op;	/* opcode of the message ws_send_frame is writing */
	bool raw_mode;		/* that message goes out as raw frames */
	bool raw_open;		/* a raw message's last frame is not written yet */
	struct ws *fwd;		/* ws_forward: binary frames go straight to this endpoint;
				 * both directions cleared before either is freed */

	bool close_pending;	/* ws_close called: queue Close after the data */
	int close_code;
	char close_reason[124];

	/* flow: paused: reading stopped by ws_pause_read (the caller's backpressure);
	 * congested: the output is above high_water until it drains below
	 * low_water (then on_writable); want_flush: wslay has output to write
	 * once the current handler returns (leave) */
	bool paused;
	bool congested;
	bool want_flush;

	/* end */
	int busy;		/* callbacks on the stack */
	bool free_pending;	/* ws_free called while busy */
	bool finished;		/* on_close delivered; terminal */
	bool finish_pending;	/* finish from the loop (kick) with fin_* */
	int fin_code;
	char fin_reason[128];
	bool fin_remote;
	bool closing_after_flush;	/* finish once the output is empty */
	int peer_code;		/* the peer's Close, once peer_closed */
	char peer_reason[128];
	bool peer_closed;
	int hs_status;		/* client: the status of a refused handshake */
	char hs_reason[128];

	struct event *kick;	/* zero-delay: deferred work out of API calls */
	struct event *timer;	/* handshake deadline, then the Close wait */
};

static void ws_process(struct ws *ws);
static int start_wslay(struct ws *ws);
static void release_idle(struct ws *ws);
static void ws_flush(struct ws *ws);
static void deliver_open(struct ws *ws);
static void really_free(struct ws *ws);

const char *
ws_state_name(enum ws_state s)
{
	switch (s) {
	case WS_S_HANDSHAKE: return "handshake";
	case WS_S_DECIDING: return "deciding";
	case WS_S_OPEN: return "open";
	case WS_S_CLOSING: return "closing";
	case WS_S_REJECTING: return "rejecting";
	case WS_S_CLOSED: return "closed";
	}
	return "?";
}

static void
set_state(struct ws *ws, enum ws_state s)
{
	if (ws->state != s)
		log_debug("ws", "event=ws.state ws=%p from=%s to=%s", (void *)ws,
		    ws_state_name(ws->state), ws_state_name(s));
	ws->state = s;
}

static void
kick(struct ws *ws)
{
	if (ws->kick != NULL)
		event_active(ws->kick, 0, 0);
}

/* ---- finishing and freeing ---------------------------------------------- */

static void
drop_bev(struct ws *ws)
{
	if (ws->bev != NULL) {
		bufferevent_disable(ws->bev, EV_READ | EV_WRITE);
		bufferevent_setcb(ws->bev, NULL, NULL, NULL, NULL);
		bufferevent_free(ws->bev);
		ws->bev = NULL;
	}
}

/* Called from event handlers only: reports on_close once. */
static void
finish(struct ws *ws, int code, const char *reason, bool remote)
{
	if (ws->finished)
		return;
	ws->finished = true;
	set_state(ws, WS_S_CLOSED);
	drop_bev(ws);
	if (ws->timer != NULL)
		evtimer_del(ws->timer);
	if (ws->cb.on_close != NULL) {
		ws->busy++;
		ws->cb.on_close(ws, code, reason ? reason : "", remote, ws->arg);
		ws->busy--;
	}
}

/* From API calls: finish from the loop, never from inside the call. */
static void
finish_later(struct ws *ws, int code, const char *reason, bool remote)
{
	if (ws->finished || ws->finish_pending)
		return;
	ws->finish_pending = true;
	ws->fin_code = code;
	snprintf(ws->fin_reason, sizeof ws->fin_reason, "%s", reason ? reason : "");
	ws->fin_remote = remote;
	if (ws->bev != NULL)
		bufferevent_disable(ws->bev, EV_READ);
	kick(ws);
}

static void
handshake_failed(struct ws *ws, int status, const char *reason, const struct shir_error *err)
{
	if (ws->finished)
		return;
	if (ws->cb.on_handshake_failed != NULL) {
		ws->busy++;
		ws->cb.on_handshake_failed(ws, status, reason ? reason : "", err, ws->arg);
		ws->busy--;
	}
	finish(ws, WS_CLOSE_ABNORMAL, reason, false);
}

/* After any handler: release memory if ws_free was called meanwhile.
 * Returns true when ws is gone. */
static bool
leave(struct ws *ws)
{
	if (ws->busy > 0)
		return false;
	if (ws->free_pending) {
		really_free(ws);
		return true;
	}
	if (ws->want_flush && !ws->finished)
		ws_flush(ws);
	release_idle(ws);
	return false;
}

/* ---- wslay callbacks ---------------------------------------------------- */

static ssize_t
w_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
	struct ws *ws = user;
	int n;

	if (!ws->feed_all && len > ws->feed_left)
		len = (size_t)ws->feed_left;
	if (ws->paused || ws->bev == NULL || ws->free_pending || len == 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	n = evbuffer_remove(bufferevent_get_input(ws->bev), buf, len);
	if (n <= 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (!ws->feed_all)
		ws->feed_left -= (uint64_t)n;
	ws->fed += (uint64_t)n;
	ws->activity++;
	return n;
}

static ssize_t
w_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
	struct ws *ws = user;

	if (ws->bev == NULL ||
	    evbuffer_add(bufferevent_get_output(ws->bev), data, len) != 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return (ssize_t)len;
}

/* See ws.h. Masking keys must be unpredictable (RFC 6455 §5.3). */
static int
w_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
	if (random_bytes(buf, len) != 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return 0;
}

static void
fail_too_big(struct ws *ws)
{
	static const char r[] = "message too big";

	wslay_event_queue_close(ws->wctx, WS_CLOSE_TOO_BIG, (const uint8_t *)r, sizeof r - 1);
	wslay_event_shutdown_read(ws->wctx);
	ws->in_msg = false;
	if (ws->asm_buf != NULL)
		evbuffer_drain(ws->asm_buf, evbuffer_get_length(ws->asm_buf));
}

static void
deliver(struct ws *ws, const uint8_t *data, size_t len, bool fin)
{
	if (!ws->in_msg || ws->free_pending || ws->finished)
		return;
	if (ws->first_pending) {
		ws->first_pending = false;
		ws->assemble = true;
		if (ws->cb.on_fragment != NULL)
			ws->assemble = ws->cb.on_fragment(ws, ws->msg_op, data, len, true, fin,
			    ws->arg) == WS_ASSEMBLE;
		if (!ws->assemble) {
			if (fin)
				ws->in_msg = false;
			return;
		}
	} else if (!ws->assemble) {
		if (ws->cb.on_fragment != NULL)
			ws->cb.on_fragment(ws, ws->msg_op, data, len, false, fin, ws->arg);
		if (fin)
			ws->in_msg = false;
		return;
	}
	/* assembling */
	if (evbuffer_get_length(ws->asm_buf) + len > ws->opt.max_message) {
		fail_too_big(ws);
		return;
	}
	if (len > 0 && evbuffer_add(ws->asm_buf, data, len) != 0) {
		fail_too_big(ws);
		return;
	}
	if (fin) {
		size_t n = evbuffer_get_length(ws->asm_buf);
		const uint8_t *p = n ? evbuffer_pullup(ws->asm_buf, -1) : (const uint8_t *)"";

		ws->in_msg = false;
		if (ws->cb.on_message != NULL && !ws->free_pending)
			ws->cb.on_message(ws, ws->msg_op, p, n, ws->arg);
		if (ws->asm_buf != NULL)
			evbuffer_drain(ws->asm_buf, n);
	}
}

static void
w_frame_start(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_start_arg *a,
    void *user)
{
	struct ws *ws = user;
	uint64_t len = a->payload_length;

	/* the frame's size on the wire (a server receives masked frames) */
	ws->cur_frame = 2 + (len < 126 ? 0 : len <= 0xffff ? 2 : 8) +
	    (ws->role == WS_ROLE_SERVER ? 4 : 0) + len;
	ws->frame_data = (a->opcode & 0x8) == 0;
	if (!ws->frame_data)
		return;
	ws->frame_fin = a->fin != 0;
	ws->frame_len = a->payload_length;
	ws->frame_got = 0;
	ws->fin_delivered = false;
	if (a->opcode != WS_OP_CONT) {
		ws->in_msg = true;
		ws->msg_op = (enum ws_opcode)a->opcode;
		ws->first_pending = true;
		ws->assemble = false;
	}
}

static void
w_frame_chunk(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_chunk_arg *a,
    void *user)
{
	struct ws *ws = user;
	bool fin;

	if (!ws->frame_data || a->data_length == 0)
		return;
	ws->frame_got += a->data_length;
	fin = ws->frame_fin && ws->frame_got >= ws->frame_len;
	if (fin)
		ws->fin_delivered = true;
	ws->busy++;
	deliver(ws, a->data, a->data_length, fin);
	ws->busy--;
}

static void
w_frame_end(wslay_event_context_ptr ctx, void *user)
{
	struct ws *ws = user;

	ws->parsed += ws->cur_frame;
	ws->cur_frame = 0;
	if (!ws->frame_data)
		return;
	if ((ws->frame_fin && !ws->fin_delivered) || (ws->first_pending && ws->in_msg)) {
		ws->busy++;
		deliver(ws, NULL, 0, ws->frame_fin);
		ws->busy--;
		ws->fin_delivered = ws->frame_fin;
	}
}

static void
w_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a, void *user)
{
	struct ws *ws = user;

	if (a->opcode == WSLAY_CONNECTION_CLOSE) {
		ws->peer_closed = true;
		ws->peer_code = a->status_code ? a->status_code : WS_CLOSE_NO_STATUS;
		if (a->msg_length > 2)
			snprintf(ws->peer_reason, sizeof ws->peer_reason, "%.*s",
			    (int)(a->msg_length - 2), (const char *)a->msg + 2);
		if (ws->frag_active)
			ws->frag_fin = true;
	} else if (a->opcode == WSLAY_PONG && ws->cb.on_pong != NULL && !ws->free_pending) {
		ws->busy++;
		ws->cb.on_pong(ws, a->msg, a->msg_length, ws->arg);
		ws->busy--;
	}
}

static ssize_t
w_frag_read(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
    const union wslay_event_msg_source *src, int *eof, void *user)
{
	struct ws *ws = user;
	int n = evbuffer_remove(ws->frag, buf, len);

	if (n < 0)
		n = 0;
	if (ws->frag_fin && evbuffer_get_length(ws->frag) == 0) {
		*eof = 1;
		ws->frag_active = false;
		ws->frag_fin = false;
	}
	return n;
}

static int
start_wslay(struct ws *ws)
{
	struct wslay_event_callbacks c = {
		.recv_callback = w_recv,
		.send_callback = w_send,
		.genmask_callback = w_genmask,
		.on_frame_recv_start_callback = w_frame_start,
		.on_frame_recv_chunk_callback = w_frame_chunk,
		.on_frame_recv_end_callback = w_frame_end,
		.on_msg_recv_callback = w_msg,
	};
	int rc;

	if (ws->role == WS_ROLE_SERVER)
		rc = wslay_event_context_server_init(&ws->wctx, &c, ws);
	else
		rc = wslay_event_context_client_init(&ws->wctx, &c, ws);
	if (rc != 0) {
		ws->wctx = NULL;
		return SHIR_ENOMEM;
	}
	wslay_event_config_set_no_buffering(ws->wctx, 1);
	wslay_event_config_set_max_recv_msg_length(ws->wctx, ws->opt.max_frame);
	ws->proto_started = true;
	ws->fed = ws->parsed = 0;
	ws->feed_left = 0;
	ws->feed_all = false;
	return 0;
}

/* An idle endpoint gives its wslay context (8.8 KB: two 4 KiB buffers) back
 * and makes a new one when bytes arrive or it must send. Idle means: open,
 * no close under way, nothing queued, no message half received, and every
 * byte handed to wslay belonged to a frame it completed (so its input buffer
 * is empty and it sits at a frame boundary). */
static unsigned long idle_releases;	/* the event loop thread only */

static bool
idle_now(struct ws *ws)
{
	return ws->wctx != NULL && ws->busy == 0 && !ws->finished && !ws->free_pending &&
	    ws->state == WS_S_OPEN && ws->bev != NULL && !ws->in_msg && !ws->frag_active &&
	    !ws->close_pending && !ws->want_flush && !ws->open_pending && ws->fed == ws->parsed &&
	    !ws->fp_msg && !ws->fp_frame && ws->feed_left == 0 && !ws->feed_all &&
	    evbuffer_get_length(bufferevent_get_input(ws->bev)) == 0 &&
	    wslay_event_get_queued_msg_count(ws->wctx) == 0 && !wslay_event_want_write(ws->wctx) &&
	    wslay_event_get_read_enabled(ws->wctx) && wslay_event_get_write_enabled(ws->wctx) &&
	    !wslay_event_get_close_sent(ws->wctx) && !wslay_event_get_close_received(ws->wctx);
}

/* Called after every handler: arms the idle timer when the endpoint is idle. */
static void
release_idle(struct ws *ws)
{
	int ms = ws->opt.idle_release_ms ? ws->opt.idle_release_ms : WS_IDLE_MS;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (ms < 0 || ws->idle_ev == NULL || !idle_now(ws) || evtimer_pending(ws->idle_ev, NULL))
		return;
	ws->activity_armed = ws->activity;
	evtimer_add(ws->idle_ev, &tv);
}

static void
idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ws *ws = arg;

	if (!idle_now(ws))
		return;	/* the next handler re-arms it */
	if (ws->activity != ws->activity_armed) {
		release_idle(ws);	/* busy meanwhile: wait another quiet period */
		return;
	}
	wslay_event_context_free(ws->wctx);
	ws->wctx = NULL;
	idle_releases++;
	log_debug("ws", "event=ws.idle_release ws=%p", (void *)ws);
}

unsigned long
ws_idle_releases(void)
{
	return idle_releases;
}

void
ws_trim_idle(void)
{
#ifdef __GLIBC__
	static unsigned long trimmed_at;	/* the event loop thread only */

	if (idle_releases - trimmed_at >= 64) {
		trimmed_at = idle_releases;
		malloc_trim(0);
	}
#endif
}

/* The wslay context, made again after release_idle. */
static int
ensure_wslay(struct ws *ws)
{
	if (ws->wctx != NULL)
		return 0;
	if (!ws->proto_started || ws->finished || ws->bev == NULL ||
	    (ws->state != WS_S_OPEN && ws->state != WS_S_CLOSING))
		return SHIR_ECLOSED;
	return start_wslay(ws);
}

/* ---- I/O ---------------------------------------------------------------- */

static void
update_congestion(struct ws *ws)
{
	if (ws->bev != NULL && ws_output_pending(ws) > ws->opt.high_water)
		ws->congested = true;
}

static void
ws_flush(struct ws *ws)
{
	int rc;

	if (ws->wctx == NULL || ws->bev == NULL || ws->finished)
		return;
	if (ws->busy > 0) {
		ws->want_flush = true;
		return;
	}
	ws->want_flush = false;
	rc = wslay_event_send(ws->wctx);
	/* wslay sends a queued Close before queued data: queue ours only once
	 * everything sent before ws_close is out. */
	if (rc == 0 && ws->close_pending && !ws->frag_active) {
		ws->close_pending = false;
		if (!wslay_event_get_close_sent(ws->wctx)) {
			wslay_event_queue_close(ws->wctx, (uint16_t)ws->close_code,
			    (const uint8_t *)ws->close_reason, strlen(ws->close_reason));
			rc = wslay_event_send(ws->wctx);
		}
	}
	if (rc != 0) {
		finish_later(ws, WS_CLOSE_ABNORMAL, "send failed", false);
		return;
	}
	update_congestion(ws);
	if (wslay_event_get_close_sent(ws->wctx)) {
		if (ws->state == WS_S_OPEN)
			set_state(ws, WS_S_CLOSING);
		if (wslay_event_get_close_received(ws->wctx) ||
		    !wslay_event_get_read_enabled(ws->wctx)) {
			ws->closing_after_flush = true;
			bufferevent_setwatermark(ws->bev, EV_WRITE, 0, 0);
			if (evbuffer_get_length(bufferevent_get_output(ws->bev)) == 0)
				kick(ws);
		} else if (ws->timer != NULL) {
			struct timeval tv = { ws->opt.close_timeout_ms / 1000,
				(ws->opt.close_timeout_ms % 1000) * 1000 };

			if (!evtimer_pending(ws->timer, NULL))
				evtimer_add(ws->timer, &tv);
		}
	}
}

static void
finish_closed(struct ws *ws)
{
	if (ws->peer_closed)
		finish(ws, ws->peer_code, ws->peer_reason, true);
	else
		finish(ws, ws->wctx ? wslay_event_get_status_code_sent(ws->wctx) : WS_CLOSE_ABNORMAL,
		    "", false);
}

/* ---- receiving: binary data frames without wslay ---------------------------
 * wslay reads a frame 4 KiB at a time into its own buffer and unmasks it a
 * byte at a time; on a relay that is most of the work for large messages.
 * So ws_process looks at each frame header at a frame boundary itself and
 * - hands control frames, text messages (wslay checks their UTF-8) and any
 *   header it does not accept as valid to wslay, exactly one frame at a time
 *   (w_recv gives wslay no byte past that frame; after a bad header wslay
 *   gets everything and reports the error as before);
 * - reads the payload of binary messages (first frame and continuations)
 *   straight from the input buffer, unmasking in place a word at a time, and
 *   delivers each piece as it arrives (no copy, no reassembly).
 * The caps and close codes are wslay's: a frame over max_frame gets 1009
 * (wslay without buffering caps each frame, not the message), a frame out of
 * sequence 1002. */

static void
fail_protocol(struct ws *ws)
{
	static const char r[] = "data frame out of sequence";

	wslay_event_queue_close(ws->wctx, WS_CLOSE_PROTOCOL, (const uint8_t *)r, sizeof r - 1);
	wslay_event_shutdown_read(ws->wctx);
	ws->in_msg = false;
	ws->fp_msg = false;
	ws->fp_frame = false;
}

/* At a frame boundary: decides who reads the next frame (the header itself
 * is ws_frame_decode's; what follows from it is this endpoint's state).
 * Returns false when the header is not complete yet. */
static bool
fast_header(struct ws *ws, const uint8_t *p, size_t got, size_t *consumed)
{
	struct ws_frame_hdr h;
	enum ws_frame_verdict v;

	*consumed = 0;
	v = ws_frame_decode(p, got, ws->role == WS_ROLE_SERVER, &h);
	if (v == WS_FRAME_NEED_MORE)
		return false;
	if (v == WS_FRAME_DATA && (h.op == WS_OP_BINARY || ws->fp_msg)) {
		if (h.op == WS_OP_BINARY && ws->in_msg) {
			if (ws->fp_msg) {
				fail_protocol(ws);
				return false;
			}
			goto to_wslay;	/* wslay has a message open: it reports the error */
		}
		if (ws->fp_msg && h.op == WS_OP_BINARY) {
			fail_protocol(ws);
			return false;
		}
		if (h.op == WS_OP_BINARY) {
			ws->in_msg = true;
			ws->msg_op = WS_OP_BINARY;
			ws->first_pending = true;
			ws->assemble = false;
		}
		if (h.len > ws->opt.max_frame) {	/* wslay's cap without buffering: per frame */
			ws->fp_msg = false;
			fail_too_big(ws);
			return false;
		}
		ws->fp_msg = !h.fin;
		ws->fp_frame = true;
		ws->fp_fin = h.fin;
		ws->fp_left = h.len;
		ws->fp_off = 0;
		ws->fp_masked = h.masked;
		if (h.masked)
			memcpy(ws->fp_mask, h.mask, 4);
		*consumed = h.hl;
		ws->activity++;
		return true;
	}
	if (v != WS_FRAME_BAD && ws->fp_msg && h.op != WS_OP_CONT && h.op < 8) {
		fail_protocol(ws);
		return false;
	}
to_wslay:
	if (v != WS_FRAME_BAD)
		ws->feed_left = h.hl + h.len;
	else
		ws->feed_all = true;
	return true;
}


/* ws_forward's batch: the whole binary frames at p (avail contiguous bytes at
 * a frame boundary) are re-framed straight into the forward endpoint's output
 * (one reservation for the batch, unmasked while copied), instead of one
 * callback and one append per frame. Stops at the first frame it cannot
 * forward whole (incomplete, text, control, invalid, or the other side not
 * ready for a raw frame); the caller reads that one as usual. Returns the
 * bytes consumed from p. */
static bool can_send(struct ws *ws);
static bool raw_ok(struct ws *ws);

static size_t
fwd_batch(struct ws *ws, uint8_t *p, size_t avail)
{
	struct ws *to = ws->fwd;
	struct evbuffer *out;
	struct evbuffer_iovec v = { NULL, 0 };
	size_t used = 0, o = 0, payload = 0;

	if (to == NULL || to->role != WS_ROLE_SERVER || !can_send(to) || ws_is_congested(to))
		return 0;
	out = bufferevent_get_output(to->bev);
	while (used < avail) {
		uint8_t *f = p + used, *dst;
		unsigned op = f[0] & 0x0f;
		size_t hl, chl, oh;
		uint64_t len;
		bool fin;

		if (!ws_frame_size(f, avail - used, &hl, &len) || len > avail - used - hl)
			break;	/* not whole here */
		if (op == WS_OP_BINARY ? (to->raw_open || !raw_ok(to)) :
		    op == WS_OP_CONT ? (!to->raw_open || !to->raw_mode) : true)
			break;
		if (!fast_header(ws, f, avail - used, &chl) || !ws->fp_frame)
			break;	/* an error (reported), or wslay's frame */
		if (chl != hl || (v.iov_base == NULL &&
		    evbuffer_reserve_space(out, (ev_ssize_t)avail, &v, 1) != 1)) {
			v.iov_base = NULL;
			used += chl;	/* the header is read: the payload goes the usual way */
			break;
		}
		fin = ws->fp_fin;
		dst = (uint8_t *)v.iov_base + o;
		oh = ws_frame_put_header(dst, fin, op, len);
		memcpy(dst + oh, f + hl, (size_t)len);
		if (ws->fp_masked)
			ws_frame_unmask(dst + oh, (size_t)len, ws->fp_mask, 0);
		/* the state deliver() leaves after a streamed piece */
		ws->fp_frame = false;
		ws->fp_left = 0;
		ws->first_pending = false;
		ws->assemble = false;
		if (fin)
			ws->in_msg = false;
		to->raw_mode = true;
		to->raw_op = WS_OP_BINARY;
		to->raw_open = !fin;
		used += hl + (size_t)len;
		o += oh + (size_t)len;	/* never more than used: no mask on the way out */
		payload += (size_t)len;
		ws->activity++;
	}
	if (v.iov_base == NULL)
		return used;
	v.iov_len = o;
	evbuffer_commit_space(out, &v, 1);
	to->activity++;
	update_congestion(to);
	if (ws->cb.on_forwarded != NULL) {
		ws->busy++;
		ws->cb.on_forwarded(ws, payload, ws->arg);
		ws->busy--;
	}
	return used;
}

void
ws_forward(struct ws *ws, struct ws *to)
{
	ws->fwd = to;
}

/* Reads frames until the input is empty, the endpoint pauses or reading
 * ends. Returns 0 or wslay's error. */
/* The contiguous bytes at offset off of in (the rest of one chain), or NULL
 * at the end of the data. */
static uint8_t *
seg_at(struct evbuffer *in, size_t off, size_t *n)
{
	struct evbuffer_ptr p;
	struct evbuffer_iovec v;

	*n = 0;
	if (off >= evbuffer_get_length(in) || evbuffer_ptr_set(in, &p, off, EVBUFFER_PTR_SET) != 0 ||
	    evbuffer_peek(in, -1, &p, &v, 1) < 1 || v.iov_len == 0)
		return NULL;
	*n = v.iov_len;
	return v.iov_base;
}

/* The bytes at offset off of in, contiguous: a pointer into the buffer when
 * one chain holds `want` of them (or all there are), else a copy in tmp.
 * *got: how many (at most want; 0 at the end of the data). */
static const uint8_t *
peek_at(struct evbuffer *in, size_t off, size_t want, uint8_t *tmp, size_t *got)
{
	size_t len = evbuffer_get_length(in), seg;
	uint8_t *d = seg_at(in, off, &seg);
	struct evbuffer_ptr p;

	*got = 0;
	if (d == NULL)
		return NULL;
	if (seg >= want || seg == len - off) {
		*got = seg < want ? seg : want;
		return d;
	}
	*got = len - off < want ? len - off : want;
	if (evbuffer_ptr_set(in, &p, off, EVBUFFER_PTR_SET) != 0 ||
	    evbuffer_copyout_from(in, &p, tmp, *got) != (ev_ssize_t)*got) {
		*got = 0;
		return NULL;
	}
	return tmp;
}

/* Reads frames until the input is empty, the endpoint pauses or reading
 * ends. Bytes consumed are drained once per batch (done), not per frame:
 * small messages were dominated by buffer bookkeeping. Returns 0 or wslay's
 * error. */
static int
fast_recv(struct ws *ws)
{
	struct evbuffer *in = NULL;
	uint8_t *seg = NULL;	/* the input at offset done, seg_left bytes of one chain */
	size_t done = 0, seg_left = 0;
	int rc = 0;

#define FR_DRAIN() do {							\
	if (done > 0 && ws->bev != NULL)				\
		evbuffer_drain(bufferevent_get_input(ws->bev), done);	\
	done = 0;							\
	seg_left = 0;							\
} while (0)
#define FR_TAKE(k) do { done += (k); seg += (k); seg_left -= (k); } while (0)
	for (;;) {
		if (ws->paused || ws->bev == NULL || ws->free_pending || ws->finished ||
		    ws->wctx == NULL)
			break;
		in = bufferevent_get_input(ws->bev);
		if (ws->feed_all || ws->feed_left > 0) {
			FR_DRAIN();	/* wslay reads from the head of the buffer */
			rc = wslay_event_recv(ws->wctx);
			if (rc != 0 || ws->feed_all || ws->feed_left > 0)
				return rc;	/* wslay waits for the rest of its frame */
			continue;
		}
		if (!wslay_event_get_read_enabled(ws->wctx))
			break;
		if (seg_left == 0 && (seg = seg_at(in, done, &seg_left)) == NULL)
			break;
		if (!ws->fp_frame && ws->fwd != NULL) {
			size_t k = fwd_batch(ws, seg, seg_left);

			if (k > 0) {
				FR_TAKE(k);
				continue;
			}
			if (ws->feed_all || ws->feed_left > 0 || ws->fp_frame ||
			    !wslay_event_get_read_enabled(ws->wctx))
				continue;	/* fwd_batch read a header that is not its to forward */
		}
		if (!ws->fp_frame) {
			uint8_t tmp[14];
			size_t got = seg_left, hl;
			const uint8_t *h = seg;

			if (seg_left < sizeof tmp &&
			    (h = peek_at(in, done, sizeof tmp, tmp, &got)) == NULL)
				break;
			if (!fast_header(ws, h, got, &hl))
				break;
			if (hl > 0) {
				if (h == seg) {
					FR_TAKE(hl);
				} else {	/* the header spanned chains */
					done += hl;
					seg_left = 0;
				}
			}
			if (!ws->fp_frame)
				continue;	/* wslay's frame */
			if (ws->fp_left == 0) {
				ws->fp_frame = false;
				ws->busy++;
				deliver(ws, (const uint8_t *)"", 0, ws->fp_fin);
				ws->busy--;
				continue;
			}
		}
		while (ws->fp_left > 0 && !ws->paused && !ws->free_pending && !ws->finished &&
		    ws->bev != NULL) {
			size_t n;
			bool fin;
			uint8_t *d;

			if (seg_left == 0 && (seg = seg_at(in, done, &seg_left)) == NULL)
				goto out;
			d = seg;
			n = seg_left < ws->fp_left ? seg_left : (size_t)ws->fp_left;
			if (ws->fp_masked)
				ws_frame_unmask(d, n, ws->fp_mask, ws->fp_off);
			ws->fp_off += n;
			ws->fp_left -= n;
			fin = ws->fp_fin && ws->fp_left == 0;
			if (ws->fp_left == 0)
				ws->fp_frame = false;
			ws->activity++;
			FR_TAKE(n);
			ws->busy++;
			deliver(ws, d, n, fin);
			ws->busy--;
		}
	}
out:
	FR_DRAIN();
#undef FR_TAKE
#undef FR_DRAIN
	return rc;
}

/* Frames from the peer. */
static void
ws_process(struct ws *ws)
{
	int rc;

	if (ws->bev == NULL || ws->finished || ws->paused)
		return;
	if (ws->state != WS_S_OPEN && ws->state != WS_S_CLOSING)
		return;
	if (ws->wctx == NULL) {
		if (evbuffer_get_length(bufferevent_get_input(ws->bev)) == 0)
			return;
		if (ensure_wslay(ws) != 0) {
			finish(ws, WS_CLOSE_ABNORMAL, "out of memory", false);
			return;
		}
	}
	if (ws->open_pending) {
		deliver_open(ws);
		if (ws->free_pending || ws->finished || ws->paused)
			return;
	}
	ws->busy++;
	rc = fast_recv(ws);
	ws->busy--;
	if (ws->free_pending || ws->finished)
		return;
	if (rc != 0) {
		char why[64];

		snprintf(why, sizeof why, "receive failed (wslay %d)", rc);
		finish(ws, WS_CLOSE_ABNORMAL, why, false);
		return;
	}
	if (wslay_event_get_close_received(ws->wctx) && ws->state == WS_S_OPEN)
		set_state(ws, WS_S_CLOSING);
	ws_flush(ws);
}

static void
deliver_open(struct ws *ws)
{
	ws->open_pending = false;
	if (ws->cb.on_open != NULL) {
		ws->busy++;
		ws->cb.on_open(ws, ws->arg);
		ws->busy--;
	}
}

static void
handshake_read(struct ws *ws)
{
	struct evbuffer *in = bufferevent_get_input(ws->bev);
	struct shir_error err;
	size_t len, used = 0;
	const uint8_t *p;
	int rc;

	shir_error_clear(&err);
	while ((len = evbuffer_get_length(in)) > 0 && !ws->finished) {
		struct evbuffer_iovec v;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		p = v.iov_base;
		len = v.iov_len;
		rc = http1_feed(ws->hp, p, len, &used, &err);
		evbuffer_drain(in, used);
		if (rc != 0) {
			if (ws->role == WS_ROLE_SERVER) {
				log_info("ws", "event=ws.bad_request error=%s", log_q(err.msg));
				ws_reject(ws, rc == SHIR_ETOOBIG ? 431 : 400, NULL, "text/plain",
				    err.msg, NULL);
			} else {
				handshake_failed(ws, ws->hs_status, ws->hs_reason, &err);
			}
			return;
		}
		if (ws->finished || ws->free_pending)
			return;
		if (http1_state(ws->hp) == HTTP1_S_UPGRADED || ws->head != NULL)
			break;
		if (used < len)
			break;
	}
	if (ws->head == NULL)
		return;
	if (ws->role == WS_ROLE_SERVER) {
		if (http1_state(ws->hp) != HTTP1_S_UPGRADED) {
			if (http1_state(ws->hp) == HTTP1_S_HEAD)
				ws_reject(ws, 426, NULL, "text/plain",
				    "this endpoint expects a WebSocket upgrade", NULL);
			return;	/* wait for the end of a non-upgrade request */
		}
		if (ws_handshake_check_request(ws->head, &err) != 0) {
			const char *ver13[] = { "Sec-WebSocket-Version: 13", NULL };

			ws_reject(ws, err.code == SHIR_EUNSUPPORTED ? 426 : 400, NULL, "text/plain",
			    err.msg, err.code == SHIR_EUNSUPPORTED ? ver13 : NULL);
			return;
		}
		set_state(ws, WS_S_DECIDING);
		bufferevent_disable(ws->bev, EV_READ);
		ws->head_delivered = true;
		if (ws->cb.on_request != NULL) {
			ws->busy++;
			ws->cb.on_request(ws, ws->head, ws->arg);
			ws->busy--;
		}
		return;
	}
	/* client */
	if (ws->head->status != 101) {
		handshake_failed(ws, ws->head->status, ws->head->reason, NULL);
		return;
	}
	if (ws_handshake_check_101(ws->head, ws->key, ws->offered, &ws->protocol, &err) != 0 || start_wslay(ws) != 0) {
		if (err.code == 0)
			shir_error_set(&err, SHIR_ENOMEM, "out of memory");
		handshake_failed(ws, 0, err.msg, &err);
		return;
	}
	if (ws->timer != NULL)
		evtimer_del(ws->timer);
	set_state(ws, WS_S_OPEN);
	bufferevent_setwatermark(ws->bev, EV_WRITE, ws->opt.low_water, 0);
	deliver_open(ws);
	if (!ws->free_pending && !ws->finished) {
		ws_process(ws);
		ws_flush(ws);
	}
}

static int
hs_on_head(const struct http1_msg *m, void *arg)
{
	struct ws *ws = arg;

	if (ws->head != NULL)
		return 0;
	ws->head = http1_msg_dup(m);
	if (ws->head == NULL)
		return SHIR_ENOMEM;
	if (!m->is_request) {
		ws->hs_status = m->status;
		snprintf(ws->hs_reason, sizeof ws->hs_reason, "%s", m->reason);
	}
	return 0;
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct ws *ws = arg;

	ws->busy++;
	if (ws->state == WS_S_HANDSHAKE)
		handshake_read(ws);
	else if (ws->state == WS_S_OPEN || ws->state == WS_S_CLOSING) {
		if (!ws->paused)
			evread_more(bev, WS_READ_MAX);
		ws_process(ws);
	}
	else if (ws->state == WS_S_REJECTING || ws->state == WS_S_DECIDING)
		bufferevent_disable(bev, EV_READ);
	ws->busy--;
	leave(ws);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct ws *ws = arg;
	size_t out = evbuffer_get_length(bufferevent_get_output(bev));

	ws->busy++;
	if (ws->closing_after_flush || ws->state == WS_S_REJECTING) {
		if (out == 0) {
			if (ws->state == WS_S_REJECTING)
				finish(ws, WS_CLOSE_ABNORMAL, "rejected", false);
			else
				finish_closed(ws);
		}
	} else if (ws->congested && out <= ws->opt.low_water) {
		ws->congested = false;
		if (ws->cb.on_writable != NULL)
			ws->cb.on_writable(ws, ws->arg);
	}
	ws->busy--;
	leave(ws);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct ws *ws = arg;

	/* deferred callbacks can merge CONNECTED with EOF or ERROR */
	if ((what & BEV_EVENT_CONNECTED) && !(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)))
		return;
	ws->busy++;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
		/* Frames still buffered before EOF are processed first, and so is
		 * an answer head that came with the close (a refusal, a non-relay) */
		if ((ws->state == WS_S_OPEN || ws->state == WS_S_CLOSING) && !ws->paused)
			ws_process(ws);
		else if (ws->state == WS_S_HANDSHAKE && ws->role == WS_ROLE_CLIENT &&
		    evbuffer_get_length(bufferevent_get_input(bev)) > 0)
			handshake_read(ws);
		if (!ws->finished && !ws->free_pending) {
			if (ws->state == WS_S_HANDSHAKE && ws->role == WS_ROLE_CLIENT) {
				struct shir_error e;

				shir_error_set(&e, (what & BEV_EVENT_ERROR) ? SHIR_EIO : SHIR_ECLOSED,
				    "the connection %s before the WebSocket handshake completed",
				    (what & BEV_EVENT_ERROR) ? "failed" : "closed");
				handshake_failed(ws, 0, e.msg, &e);
			} else if (ws->peer_closed) {
				finish(ws, ws->peer_code, ws->peer_reason, true);
			} else {
				finish(ws, WS_CLOSE_ABNORMAL, "connection lost", false);
			}
		}
	}
	ws->busy--;
	leave(ws);
}

static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ws *ws = arg;

	ws->busy++;
	if (ws->finish_pending && !ws->finished) {
		ws->finish_pending = false;
		finish(ws, ws->fin_code, ws->fin_reason, ws->fin_remote);
	}
	if (!ws->finished && !ws->free_pending) {
		if (ws->state == WS_S_DECIDING && !ws->head_delivered) {
			ws->head_delivered = true;
			if (ws->cb.on_request != NULL)
				ws->cb.on_request(ws, ws->head, ws->arg);
		}
	}
	if (!ws->finished && !ws->free_pending && ws->open_pending)
		deliver_open(ws);
	if (!ws->finished && !ws->free_pending && ws->closing_after_flush && ws->bev &&
	    evbuffer_get_length(bufferevent_get_output(ws->bev)) == 0)
		finish_closed(ws);
	if (!ws->finished && !ws->free_pending && ws->state == WS_S_HANDSHAKE && ws->bev &&
	    evbuffer_get_length(bufferevent_get_input(ws->bev)) > 0)
		handshake_read(ws);
	if (!ws->finished && !ws->free_pending)
		ws_process(ws);
	ws->busy--;
	leave(ws);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ws *ws = arg;

	ws->busy++;
	if (ws->state == WS_S_HANDSHAKE && ws->role == WS_ROLE_CLIENT) {
		struct shir_error e;

		shir_error_set(&e, SHIR_ETIMEDOUT, "the WebSocket handshake timed out");
		handshake_failed(ws, 0, e.msg, &e);
	} else if (ws->state == WS_S_HANDSHAKE) {
		finish(ws, WS_CLOSE_ABNORMAL, "handshake timed out", false);
	} else {
		finish_closed(ws);
	}
	ws->busy--;
	leave(ws);
}

/* ---- construction ------------------------------------------------------- */

static struct ws *
ws_alloc(struct bufferevent *bev, enum ws_role role, const struct ws_options *opt,
    const struct ws_callbacks *cb, void *arg)
{
	struct ws *ws = calloc(1, sizeof *ws);

	if (ws == NULL)
		return NULL;
	ws->bev = bev;
	ws->base = bufferevent_get_base(bev);
	ws->role = role;
	if (opt != NULL)
		ws->opt = *opt;
	if (ws->opt.max_message == 0)
		ws->opt.max_message = 16 * 1024 * 1024;
	if (ws->opt.max_frame == 0)
		ws->opt.max_frame = ws->opt.max_message;
	if (ws->opt.high_water == 0)
		ws->opt.high_water = 256 * 1024;
	if (ws->opt.low_water == 0 || ws->opt.low_water >= ws->opt.high_water)
		ws->opt.low_water = ws->opt.high_water / 4;
	if (ws->opt.max_head == 0)
		ws->opt.max_head = 32 * 1024;
	if (ws->opt.close_timeout_ms <= 0)
		ws->opt.close_timeout_ms = 5000;
	if (cb != NULL)
		ws->cb = *cb;
	ws->arg = arg;
	ws->asm_buf = evbuffer_new();
	ws->frag = evbuffer_new();
	ws->kick = event_new(ws->base, -1, 0, kick_cb, ws);
	ws->timer = evtimer_new(ws->base, timer_cb, ws);
	ws->idle_ev = evtimer_new(ws->base, idle_cb, ws);
	if (ws->asm_buf == NULL || ws->frag == NULL || ws->kick == NULL || ws->timer == NULL ||
	    ws->idle_ev == NULL) {
		ws->bev = NULL;	/* the caller keeps it */
		really_free(ws);
		return NULL;
	}
	bufferevent_setcb(bev, read_cb, write_cb, event_cb, ws);
	return ws;
}

static void
arm_handshake_timer(struct ws *ws)
{
	if (ws->opt.handshake_timeout_ms > 0) {
		struct timeval tv = { ws->opt.handshake_timeout_ms / 1000,
			(ws->opt.handshake_timeout_ms % 1000) * 1000 };

		evtimer_add(ws->timer, &tv);
	}
}

struct ws *
ws_new_server(struct bufferevent *bev, const struct ws_options *opt,
    const struct ws_callbacks *cb, void *arg)
{
	struct ws *ws = ws_alloc(bev, WS_ROLE_SERVER, opt, cb, arg);
	struct http1_limits lim = { 0 };
	struct http1_callbacks hc = { .on_head = hs_on_head };

	if (ws == NULL)
		return NULL;
	lim.max_head = ws->opt.max_head;
	ws->hp = http1_new(HTTP1_REQUEST, &lim, &hc, ws);
	if (ws->hp == NULL) {
		ws->bev = NULL;
		really_free(ws);
		return NULL;
	}
	arm_handshake_timer(ws);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
		kick(ws);
	return ws;
}

struct ws *
ws_new_server_with_request(struct bufferevent *bev, const struct http1_msg *req,
    const uint8_t *extra, size_t extra_len, const struct ws_options *opt,
    const struct ws_callbacks *cb, void *arg, struct shir_error *e)
{
	struct ws *ws;

	if (ws_handshake_check_request(req, e) != 0)
		return NULL;
	ws = ws_alloc(bev, WS_ROLE_SERVER, opt, cb, arg);
	if (ws == NULL) {
		shir_error_set(e, SHIR_ENOMEM, "out of memory");
		return NULL;
	}
	ws->head = http1_msg_dup(req);
	if (ws->head == NULL || (extra_len > 0 &&
	    evbuffer_prepend(bufferevent_get_input(bev), extra, extra_len) != 0)) {
		ws->bev = NULL;
		really_free(ws);
		shir_error_set(e, SHIR_ENOMEM, "out of memory");
		return NULL;
	}
	set_state(ws, WS_S_DECIDING);
	bufferevent_disable(bev, EV_READ);
	bufferevent_enable(bev, EV_WRITE);
	kick(ws);
	return ws;
}

struct ws *
ws_new_client(struct bufferevent *bev, const struct ws_client_request *req,
    const struct ws_options *opt, const struct ws_callbacks *cb, void *arg)
{
	struct ws *ws = ws_alloc(bev, WS_ROLE_CLIENT, opt, cb, arg);
	struct http1_limits lim = { 0 };
	struct http1_callbacks hc = { .on_head = hs_on_head };
	struct evbuffer *out;
	size_t i;

	if (ws == NULL)
		return NULL;
	lim.max_head = ws->opt.max_head;
	ws->hp = http1_new(HTTP1_RESPONSE, &lim, &hc, ws);
	if (ws->hp == NULL || ws_handshake_make_key(ws->key) != 0 ||
	    (req->protocols != NULL && (ws->offered = strdup(req->protocols)) == NULL)) {
		ws->bev = NULL;
		really_free(ws);
		return NULL;
	}
	out = bufferevent_get_output(bev);
	evbuffer_add_printf(out,
	    "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n",
	    req->target ? req->target : "/", req->host ? req->host : "localhost", ws->key);
	if (req->protocols != NULL)
		evbuffer_add_printf(out, "Sec-WebSocket-Protocol: %s\r\n", req->protocols);
	for (i = 0; req->headers != NULL && req->headers[i] != NULL; i++)
		evbuffer_add_printf(out, "%s\r\n", req->headers[i]);
	evbuffer_add(out, "\r\n", 2);
	arm_handshake_timer(ws);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	return ws;
}

static void
really_free(struct ws *ws)
{
	drop_bev(ws);
	if (ws->wctx != NULL)
		wslay_event_context_free(ws->wctx);
	http1_free(ws->hp);
	http1_msg_free(ws->head);
	free(ws->protocol);
	free(ws->offered);
	if (ws->asm_buf != NULL)
		evbuffer_free(ws->asm_buf);
	if (ws->frag != NULL)
		evbuffer_free(ws->frag);
	if (ws->kick != NULL)
		event_free(ws->kick);
	if (ws->timer != NULL)
		event_free(ws->timer);
	if (ws->idle_ev != NULL)
		event_free(ws->idle_ev);
	free(ws);
}

void
ws_free(struct ws *ws)
{
	if (ws == NULL)
		return;
	if (ws->busy > 0) {
		ws->free_pending = true;
		memset(&ws->cb, 0, sizeof ws->cb);	/* no callback after ws_free, whichever */
		if (ws->bev != NULL)
			bufferevent_disable(ws->bev, EV_READ | EV_WRITE);
		return;
	}
	really_free(ws);
}

void
ws_set_callbacks(struct ws *ws, const struct ws_callbacks *cb, void *arg)
{
	ws->cb = *cb;
	ws->arg = arg;
}

enum ws_state
ws_state(const struct ws *ws)
{
	return ws->state;
}

/* ---- server answers ------------------------------------------------------ */

int
ws_accept(struct ws *ws, const char *protocol, const char *const *extra_headers)
{
	char acc[29];
	struct evbuffer *out;
	size_t i;

	if (ws->role != WS_ROLE_SERVER || ws->state != WS_S_DECIDING || ws->bev == NULL)
		return SHIR_EINVAL;
	if (ws_handshake_accept_key(http1_msg_get(ws->head, "Sec-WebSocket-Key"), acc) != 0)
		return SHIR_ECRYPTO;
	if (protocol != NULL && (ws->protocol = strdup(protocol)) == NULL)
		return SHIR_ENOMEM;
	if (start_wslay(ws) != 0)
		return SHIR_ENOMEM;
	out = bufferevent_get_output(ws->bev);
	evbuffer_add_printf(out,
	    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\n", acc);
	if (protocol != NULL)
		evbuffer_add_printf(out, "Sec-WebSocket-Protocol: %s\r\n", protocol);
	for (i = 0; extra_headers != NULL && extra_headers[i] != NULL; i++)
		evbuffer_add_printf(out, "%s\r\n", extra_headers[i]);
	evbuffer_add(out, "\r\n", 2);
	if (ws->timer != NULL)
		evtimer_del(ws->timer);
	set_state(ws, WS_S_OPEN);
	bufferevent_setwatermark(ws->bev, EV_WRITE, ws->opt.low_water, 0);
	bufferevent_enable(ws->bev, EV_READ | EV_WRITE);
	ws->open_pending = true;
	kick(ws);
	return 0;
}

int
ws_reject(struct ws *ws, int status, const char *reason, const char *content_type,
    const char *body, const char *const *extra_headers)
{
	struct evbuffer *out;
	size_t blen = body ? strlen(body) : 0, i;
	char r[128];
	size_t k;

	if (ws->role != WS_ROLE_SERVER || ws->bev == NULL ||
	    (ws->state != WS_S_DECIDING && ws->state != WS_S_HANDSHAKE))
		return SHIR_EINVAL;
	if (status < 200 || status > 999)
		status = 500;
	/* The reason phrase must not break the status line. */
	snprintf(r, sizeof r, "%s", reason && *reason ? reason : http1_reason(status));
	for (k = 0; r[k]; k++)
		if ((unsigned char)r[k] < 0x20 || r[k] == 0x7f)
			r[k] = ' ';
	out = bufferevent_get_output(ws->bev);
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Length: %zu\r\n",
	    status, r, blen);
	if (blen > 0)
		evbuffer_add_printf(out, "Content-Type: %s\r\n",
		    content_type ? content_type : "text/plain");
	for (i = 0; extra_headers != NULL && extra_headers[i] != NULL; i++)
		evbuffer_add_printf(out, "%s\r\n", extra_headers[i]);
	evbuffer_add(out, "\r\n", 2);
	if (blen > 0)
		evbuffer_add(out, body, blen);
	set_state(ws, WS_S_REJECTING);
	bufferevent_disable(ws->bev, EV_READ);
	bufferevent_setwatermark(ws->bev, EV_WRITE, 0, 0);
	bufferevent_enable(ws->bev, EV_WRITE);
	return 0;
}

const struct http1_msg *
ws_request(const struct ws *ws)
{
	return ws->head;
}

const char *
ws_protocol(const struct ws *ws)
{
	return ws->protocol;
}

/* ---- sending -------------------------------------------------------------- */

static bool
can_send(struct ws *ws)
{
	if (ensure_wslay(ws) != 0)
		return false;
	ws->activity++;
	return ws->wctx != NULL && !ws->finished && ws->bev != NULL && !ws->close_pending &&
	    (ws->state == WS_S_OPEN || ws->state == WS_S_CLOSING) &&
	    wslay_event_get_write_enabled(ws->wctx) && !wslay_event_get_close_sent(ws->wctx);
}

static int raw_frame(struct ws *ws, enum ws_opcode op, const void *data, size_t len, bool fin);

int
ws_send(struct ws *ws, enum ws_opcode op, const void *data, size_t len)
{
	struct wslay_event_msg m = { (uint8_t)op, data, len };

	if (!can_send(ws))
		return SHIR_ECLOSED;
	if (!ws->raw_open && raw_ok(ws))	/* one frame, no copy through wslay */
		return raw_frame(ws, op, data, len, true);
	if (wslay_event_queue_msg(ws->wctx, &m) != 0)
		return SHIR_EINVAL;
	ws_flush(ws);
	return 0;
}

int
ws_send_fragment(struct ws *ws, enum ws_opcode op, const void *data, size_t len, bool fin)
{
	if (!can_send(ws))
		return SHIR_ECLOSED;
	if (!ws->frag_active) {
		struct wslay_event_fragmented_msg m;

		memset(&m, 0, sizeof m);
		m.opcode = (uint8_t)op;
		m.read_callback = w_frag_read;
		if (wslay_event_queue_fragmented_msg(ws->wctx, &m) != 0)
			return SHIR_EINVAL;
		ws->frag_active = true;
		ws->frag_fin = false;
	}
	if (len > 0 && evbuffer_add(ws->frag, data, len) != 0)
		return SHIR_ENOMEM;
	if (fin)
		ws->frag_fin = true;
	ws_flush(ws);
	return 0;
}

/* Writes one frame straight into the output buffer, masked in the client
 * role (word at a time, while copying). Only when nothing wslay holds could
 * go out before it (see raw_ok). */
static int
raw_frame(struct ws *ws, enum ws_opcode op, const void *data, size_t len, bool fin)
{
	struct evbuffer *out = bufferevent_get_output(ws->bev);
	uint8_t hdr[14], key[4];
	bool mask = ws->role == WS_ROLE_CLIENT;
	size_t hl = ws_frame_put_header(hdr, fin, op, len);

	if (mask) {
		if (random_bytes(key, sizeof key) != 0)
			return SHIR_ECRYPTO;
		hdr[1] |= 0x80;
		memcpy(hdr + hl, key, 4);
		hl += 4;
	}
	if (len <= WS_SMALL_FRAME) {	/* one append (one callback run) per small frame */
		uint8_t f[14 + WS_SMALL_FRAME];

		memcpy(f, hdr, hl);
		if (len > 0)
			memcpy(f + hl, data, len);
		if (mask)
			ws_frame_unmask(f + hl, len, key, 0);
		if (evbuffer_add(out, f, hl + len) != 0)
			return SHIR_ENOMEM;
	} else if (!mask) {
		if (evbuffer_add(out, hdr, hl) != 0 || evbuffer_add(out, data, len) != 0)
			return SHIR_ENOMEM;
	} else {
		struct evbuffer_iovec v;

		if (evbuffer_add(out, hdr, hl) != 0 || evbuffer_reserve_space(out, (ev_ssize_t)len, &v, 1) != 1)
			return SHIR_ENOMEM;
		memcpy(v.iov_base, data, len);
		ws_frame_unmask(v.iov_base, len, key, 0);	/* XOR: masking is the same operation */
		v.iov_len = len;
		if (evbuffer_commit_space(out, &v, 1) != 0)
			return SHIR_ENOMEM;
	}
	ws->raw_open = !fin;
	update_congestion(ws);
	return 0;
}

/* A data frame may bypass wslay when wslay holds nothing that must go first. */
static bool
raw_ok(struct ws *ws)
{
	return !ws->frag_active && !ws->want_flush && !ws->close_pending &&
	    wslay_event_get_queued_msg_count(ws->wctx) == 0 && !wslay_event_want_write(ws->wctx);
}

int
ws_send_frame(struct ws *ws, enum ws_opcode op, const void *data, size_t len, bool fin)
{
	if (!can_send(ws))
		return SHIR_ECLOSED;
	if (op != WS_OP_CONT) {
		/* decided per message: raw unless wslay has data queued (order) */
		ws->raw_op = op;
		ws->raw_mode = raw_ok(ws);
	}
	if (!ws->raw_mode)
		return ws_send_fragment(ws, ws->raw_op, data, len, fin);
	return raw_frame(ws, op, data, len, fin);
}

int
ws_ping(struct ws *ws, const void *data, size_t len)
{
	struct wslay_event_msg m = { WSLAY_PING, data, len };

	if (len > 125)
		return SHIR_EINVAL;
	if (!can_send(ws))
		return SHIR_ECLOSED;
	if (wslay_event_queue_msg(ws->wctx, &m) != 0)
		return SHIR_EINVAL;
	ws_flush(ws);
	return 0;
}

int
ws_close(struct ws *ws, int code, const char *reason)
{
	size_t rl = reason ? strlen(reason) : 0;

	if (ws->finished || ws->free_pending)
		return SHIR_ECLOSED;
	if (ws->state == WS_S_HANDSHAKE || ws->state == WS_S_DECIDING) {
		if (ws->role == WS_ROLE_SERVER && ws->state == WS_S_DECIDING)
			return ws_reject(ws, 503, NULL, NULL, NULL, NULL);
		finish_later(ws, WS_CLOSE_ABNORMAL, "closed before the handshake", false);
		return 0;
	}
	if (!can_send(ws))
		return 0;	/* already closing */
	if (ws->close_pending)
		return 0;
	if (rl > 123)
		rl = 123;
	if (ws->frag_active)
		ws->frag_fin = true;
	ws->close_pending = true;
	ws->close_code = code;
	memcpy(ws->close_reason, reason ? reason : "", rl);
	ws->close_reason[rl] = '\0';
	set_state(ws, WS_S_CLOSING);
	ws_flush(ws);
	if (ws->want_flush)
		kick(ws);
	return 0;
}

void
ws_abort(struct ws *ws)
{
	finish_later(ws, WS_CLOSE_ABNORMAL, "aborted", false);
}

/* Bytes written but not yet sent: the output buffer, plus what wslay holds
 * when the flush waits for a callback to return (a producer looping inside a
 * callback must see those, or it queues without bound). */
size_t
ws_output_pending(const struct ws *ws)
{
	size_t n = ws->bev ? evbuffer_get_length(bufferevent_get_output(ws->bev)) : 0;

	if (ws->wctx != NULL)
		n += wslay_event_get_queued_msg_length(ws->wctx);
	return n;
}

bool
ws_is_congested(const struct ws *ws)
{
	return ws_output_pending(ws) > ws->opt.high_water;
}

void
ws_pause_read(struct ws *ws, bool pause)
{
	if (ws->paused == pause || ws->bev == NULL || ws->finished)
		return;
	ws->paused = pause;
	if (ws->state != WS_S_OPEN && ws->state != WS_S_CLOSING)
		return;
	if (pause) {
		bufferevent_disable(ws->bev, EV_READ);
	} else {
		bufferevent_enable(ws->bev, EV_READ);
		kick(ws);	/* bytes already buffered */
	}
}

struct bufferevent *
ws_bufferevent(const struct ws *ws)
{
	return ws->bev;
}

void
ws_set_tag(struct ws *ws, void *tag)
{
	ws->tag = tag;
}

void *
ws_tag(const struct ws *ws)
{
	return ws->tag;
}
