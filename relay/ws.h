/* ws: a WebSocket endpoint over a libevent bufferevent (plain or TLS), built
 * on wslay's event API, for both roles.
 *
 * Server: ws_new_server() reads the HTTP/1.1 upgrade request itself (or
 * ws_new_server_with_request() takes one the caller already parsed, plus any
 * bytes that followed it), validates it and calls on_request. The
 * application answers then or later with ws_accept() (101, optional
 * subprotocol, never extensions) or ws_reject() (an HTTP status with a body;
 * the connection closes after it is written).
 *
 * Client: ws_new_client() sends the upgrade request with extra headers,
 * checks the 101 and Sec-WebSocket-Accept, then calls on_open; on failure it
 * calls on_handshake_failed with the HTTP status and reason (0 when there was
 * no HTTP answer at all) so the caller can tell 401/403/404 apart.
 *
 * Messages: on_fragment sees every data frame's payload as it arrives (the
 * first call of a message has first=true; returning WS_ASSEMBLE there makes
 * the endpoint collect that message, up to max_message bytes, and deliver it
 * whole through on_message instead). Without on_fragment, every message is
 * assembled. Sending: ws_send() queues a whole message; ws_send_fragment()
 * streams one message in pieces (fin=true on the last). Pings are answered
 * automatically; ws_ping() sends one and on_pong reports pongs.
 *
 * Backpressure: ws_output_pending() and ws_is_congested() tell when the
 * output is above the high watermark; on_writable fires once it drains
 * below the low one. ws_pause_read() stops reading from the peer.
 *
 * Lifetime: on_close is called exactly once, when the endpoint is finished
 * (close handshake done, connection lost, protocol error, or handshake
 * failure after on_handshake_failed). ws_free() may be called from any
 * callback, including this endpoint's own: the memory is then released
 * after the callback returns. The endpoint owns the bufferevent. */
#ifndef SHIR_WS_H
#define SHIR_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>

#include "relay/http1.h"
#include "common/shir_err.h"

struct ws;

enum ws_opcode {
	WS_OP_CONT = 0,
	WS_OP_TEXT = 1,
	WS_OP_BINARY = 2,
	WS_OP_CLOSE = 8,
	WS_OP_PING = 9,
	WS_OP_PONG = 10,
};

enum ws_state {
	WS_S_HANDSHAKE = 0,	/* server: reading the request; client: awaiting 101 */
	WS_S_DECIDING,		/* server: request delivered, awaiting ws_accept/ws_reject */
	WS_S_OPEN,
	WS_S_CLOSING,		/* a Close frame was sent or received */
	WS_S_REJECTING,		/* server: writing an HTTP error answer */
	WS_S_CLOSED,		/* finished; on_close was called */
};

/* Close codes. */
#define WS_CLOSE_NORMAL 1000
#define WS_CLOSE_GOING_AWAY 1001
#define WS_CLOSE_PROTOCOL 1002
#define WS_CLOSE_NO_STATUS 1005
#define WS_CLOSE_ABNORMAL 1006
#define WS_CLOSE_POLICY 1008
#define WS_CLOSE_TOO_BIG 1009
#define WS_CLOSE_INTERNAL 1011

/* on_fragment's answer for the first piece of a message. */
#define WS_STREAM 0
#define WS_ASSEMBLE 1

struct ws_callbacks {
	/* Server: a valid upgrade request arrived; call ws_accept or ws_reject
	 * now or later. req stays valid until the endpoint is freed. */
	void (*on_request)(struct ws *ws, const struct http1_msg *req, void *arg);
	/* The connection is open (after 101 in either role). */
	void (*on_open)(struct ws *ws, void *arg);
	/* Client: the handshake failed. status is the HTTP status (0 if none,
	 * e.g. connection refused, TLS failure or a bad 101). on_close follows. */
	void (*on_handshake_failed)(struct ws *ws, int status, const char *reason,
	    const struct shir_error *err, void *arg);
	/* A whole message (assembled). */
	void (*on_message)(struct ws *ws, enum ws_opcode op, const uint8_t *data, size_t len,
	    void *arg);
	/* A piece of a data message; op is the message's opcode (text/binary).
	 * The return value matters only when first is true. */
	int (*on_fragment)(struct ws *ws, enum ws_opcode op, const uint8_t *data, size_t len,
	    bool first, bool fin, void *arg);
	void (*on_pong)(struct ws *ws, const uint8_t *data, size_t len, void *arg);
	/* The output drained below the low watermark after being above the high. */
	void (*on_writable)(struct ws *ws, void *arg);
	/* Finished. code/reason: the peer's Close (code 1005 when it had none),
	 * or 1006 when the connection was lost, or the code we sent on a
	 * protocol error. remote tells whether the peer sent a Close. */
	void (*on_close)(struct ws *ws, int code, const char *reason, bool remote, void *arg);
	/* ws_forward moved `bytes` of payload to the other endpoint (optional). */
	void (*on_forwarded)(struct ws *ws, size_t bytes, void *arg);
};

struct ws_options {
	size_t max_message;	/* assembled message cap; default 16 MiB */
	size_t max_frame;	/* streamed frame payload cap; default = max_message */
	size_t high_water;	/* output bytes; default 256 KiB */
	size_t low_water;	/* default high_water / 4 */
	size_t max_head;	/* HTTP head cap; default 32 KiB */
	int close_timeout_ms;	/* wait for the peer's Close; default 5000 */
	int handshake_timeout_ms;	/* 0 = none */
	/* An open endpoint that stays idle this long (no message half received,
	 * nothing queued) frees its wslay context (8.8 KB) and makes a new one
	 * when bytes arrive or it sends. 0 = 2000 ms; negative = never. */
	int idle_release_ms;
};

/* The application may set any subset; a zeroed struct means defaults. */
struct ws_client_request {
	const char *host;	/* Host header (host[:port]) */
	const char *target;	/* request-target, e.g. "/$hc/x?sb-hc-action=listen" */
	const char *const *headers;	/* extra "Name: value" lines, NULL-terminated; may be NULL */
	const char *protocols;	/* Sec-WebSocket-Protocol offer, e.g. "p1, p2"; may be NULL */
};

/* Server endpoint reading its own upgrade request from bev. */
struct ws *ws_new_server(struct bufferevent *bev, const struct ws_options *opt,
    const struct ws_callbacks *cb, void *arg);
/* Server endpoint for a request the caller parsed already; extra holds the
 * bytes that followed the request head (may be NULL/0). Validates the
 * request: on failure returns NULL with e set (the caller still owns bev and
 * should answer 400). On success on_request is called from the event loop
 * (never from inside this function). */
struct ws *ws_new_server_with_request(struct bufferevent *bev, const struct http1_msg *req,
    const uint8_t *extra, size_t extra_len, const struct ws_options *opt,
    const struct ws_callbacks *cb, void *arg, struct shir_error *e);
/* Client endpoint: sends the upgrade on bev (connected or connecting). */
struct ws *ws_new_client(struct bufferevent *bev, const struct ws_client_request *req,
    const struct ws_options *opt, const struct ws_callbacks *cb, void *arg);
void ws_free(struct ws *ws);

void ws_set_callbacks(struct ws *ws, const struct ws_callbacks *cb, void *arg);
enum ws_state ws_state(const struct ws *ws);
const char *ws_state_name(enum ws_state s);

/* Server: answer the upgrade. protocol may be NULL. extra_headers: "Name:
 * value" lines, NULL-terminated, may be NULL. */
int ws_accept(struct ws *ws, const char *protocol, const char *const *extra_headers);
/* Server: answer with an HTTP error and close. body may be NULL. */
int ws_reject(struct ws *ws, int status, const char *reason, const char *content_type,
    const char *body, const char *const *extra_headers);

/* Server: the upgrade request; client: the 101 response. NULL before. */
const struct http1_msg *ws_request(const struct ws *ws);
/* The negotiated subprotocol, or NULL. */
const char *ws_protocol(const struct ws *ws);

int ws_send(struct ws *ws, enum ws_opcode op, const void *data, size_t len);
/* Streams one data message: op (text/binary) is used on the first call;
 * fin ends the message. Whole messages sent in between wait until it ends. */
int ws_send_fragment(struct ws *ws, enum ws_opcode op, const void *data, size_t len, bool fin);
/* Relays: writes one data frame as is (op WS_OP_TEXT/BINARY for the first
 * frame of a message, WS_OP_CONT after; fin ends the message) with a single
 * copy, bypassing wslay's message queue. Only between whole messages sent
 * this way: do not mix with ws_send_fragment on the same endpoint. A client
 * endpoint falls back to ws_send_fragment (its frames must be masked). */
int ws_send_frame(struct ws *ws, enum ws_opcode op, const void *data, size_t len, bool fin);
int ws_ping(struct ws *ws, const void *data, size_t len);
/* Starts the close handshake (code 0: a Close without status). */
int ws_close(struct ws *ws, int code, const char *reason);
/* Drops the connection at once (no Close frame); on_close follows with 1006. */
void ws_abort(struct ws *ws);

size_t ws_output_pending(const struct ws *ws);
bool ws_is_congested(const struct ws *ws);
void ws_pause_read(struct ws *ws, bool pause);
/* Relays (server role on both sides): whole binary frames read by ws are
 * re-framed straight into to's output, a batch at a time, instead of going
 * through on_fragment one piece each (on_forwarded says how much moved);
 * everything else, and any frame that is not whole in the input, still goes
 * through the callbacks. The caller's on_fragment must stream (never
 * assemble) binary messages, and must clear both directions (NULL) before
 * either endpoint is freed. */
void ws_forward(struct ws *ws, struct ws *to);

/* The bufferevent (for peer addresses, TLS details). */
struct bufferevent *ws_bufferevent(const struct ws *ws);
/* An owner's pointer that stays with the endpoint whatever its callbacks and
 * state (the bufferevent is freed before on_close; the tag is not touched). */
void ws_set_tag(struct ws *ws, void *tag);
void *ws_tag(const struct ws *ws);

/* How many idle endpoints have freed their wslay context so far (process
 * wide; lets a daemon decide when to hand freed memory back, malloc_trim). */
unsigned long ws_idle_releases(void);
/* Called every few seconds by a program's loop: once 64 more endpoints have
 * released their contexts (or a burst freed buffers), hands free heap pages
 * back to the system (glibc malloc_trim). */
void ws_trim_idle(void);

#endif
