/* Fuzz target: the WebSocket frame path of relay/ws. A server endpoint gets a
 * valid upgrade request followed by the fuzz input as frames (through a
 * bufferevent pair, no sockets); it echoes every message, so both the
 * receive path (wslay, assembly, caps) and the send path run. The first input
 * byte picks streaming or assembling, a small message cap, and relay mode
 * (ws_forward into a second endpoint, as shir-relay's tunnels run). */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "relay/ws.h"

static const char REQ[] = "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

static bool streaming;

static void
on_request(struct ws *ws, const struct http1_msg *m, void *arg)
{
	ws_accept(ws, NULL, NULL);
}

static void
on_message(struct ws *ws, enum ws_opcode op, const uint8_t *d, size_t n, void *arg)
{
	ws_send(ws, op, d, n);
}

static int
on_fragment(struct ws *ws, enum ws_opcode op, const uint8_t *d, size_t n, bool first, bool fin,
    void *arg)
{
	if (!streaming)
		return WS_ASSEMBLE;
	ws_send_fragment(ws, op, d, n, fin);
	return WS_STREAM;
}

static void
on_close(struct ws *ws, int code, const char *reason, bool remote, void *arg)
{
	*(int *)arg = 1;
}

/* Relay mode (ws_forward): whole binary frames go straight to a second
 * endpoint; the rest comes here and is re-sent there frame by frame. */
static struct ws *fwd_to;

static int
fwd_fragment(struct ws *ws, enum ws_opcode op, const uint8_t *d, size_t n, bool first, bool fin,
    void *arg)
{
	if (fwd_to != NULL)
		ws_send_frame(fwd_to, first ? op : WS_OP_CONT, d, n, fin);
	return WS_STREAM;
}

static void
fwd_nothing(struct ws *ws, const struct http1_msg *m, void *arg)
{
	ws_accept(ws, NULL, NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct event_base *base = event_base_new();
	struct bufferevent *pair[2];
	struct ws_callbacks cb = { .on_request = on_request, .on_message = on_message,
		.on_fragment = on_fragment, .on_close = on_close };
	struct ws_callbacks fcb = { .on_request = fwd_nothing };
	struct bufferevent *pair2[2] = { NULL, NULL };
	struct ws_options o = { 0 };
	struct ws *ws;
	int closed = 0, i, relay = 0;

	if (base == NULL)
		return 0;
	if (size > 0) {
		streaming = data[0] & 1;
		o.max_message = (data[0] & 2) ? 64 : 0;
		relay = (data[0] & 4) != 0;
		data++;
		size--;
	}
	fwd_to = NULL;
	if (relay) {	/* the other side of the tunnel, open first */
		bufferevent_pair_new(base, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS, pair2);
		fwd_to = ws_new_server(pair2[0], NULL, &fcb, NULL);
		bufferevent_write(pair2[1], REQ, strlen(REQ));
		bufferevent_enable(pair2[1], EV_READ | EV_WRITE);
		for (i = 0; i < 10; i++)
			event_base_loop(base, EVLOOP_NONBLOCK);
		cb.on_fragment = fwd_fragment;
		cb.on_message = NULL;
	}
	bufferevent_pair_new(base, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS, pair);
	ws = ws_new_server(pair[0], &o, &cb, &closed);
	if (relay)
		ws_forward(ws, fwd_to);
	bufferevent_write(pair[1], REQ, strlen(REQ));
	bufferevent_write(pair[1], data, size);
	bufferevent_enable(pair[1], EV_READ | EV_WRITE);
	for (i = 0; i < 20 && !closed; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	if (relay) {
		ws_forward(ws, NULL);
		ws_free(fwd_to);
		fwd_to = NULL;
		bufferevent_free(pair2[1]);
	}
	ws_free(ws);
	bufferevent_free(pair[1]);
	event_base_free(base);
	return 0;
}
