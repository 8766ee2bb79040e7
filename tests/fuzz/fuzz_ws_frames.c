/* Fuzz target: the WebSocket frame path of relay/ws. A server endpoint gets a
 * valid upgrade request followed by the fuzz input as frames (through a
 * bufferevent pair, no sockets); it echoes every message, so both the
 * receive path (wslay, assembly, caps) and the send path run. The first input
 * byte picks streaming or assembling and a small message cap. */
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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct event_base *base = event_base_new();
	struct bufferevent *pair[2];
	struct ws_callbacks cb = { .on_request = on_request, .on_message = on_message,
		.on_fragment = on_fragment, .on_close = on_close };
	struct ws_options o = { 0 };
	struct ws *ws;
	int closed = 0, i;

	if (base == NULL)
		return 0;
	if (size > 0) {
		streaming = data[0] & 1;
		o.max_message = (data[0] & 2) ? 64 : 0;
		data++;
		size--;
	}
	bufferevent_pair_new(base, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS, pair);
	ws = ws_new_server(pair[0], &o, &cb, &closed);
	bufferevent_write(pair[1], REQ, strlen(REQ));
	bufferevent_write(pair[1], data, size);
	bufferevent_enable(pair[1], EV_READ | EV_WRITE);
	for (i = 0; i < 20 && !closed; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	ws_free(ws);
	bufferevent_free(pair[1]);
	event_base_free(base);
	return 0;
}
