/* http1: an HTTP/1.1 message parser on top of http-parser. No I/O: bytes in,
 * events out. One parser reads a stream of requests (or of responses) on one
 * connection: for each message it collects the head (start line and headers,
 * capped), then streams the body (Content-Length or chunked, already
 * de-chunked), then reports completion. An Upgrade request or a 101 response
 * stops the parser after the head: the rest of the bytes belong to the new
 * protocol (see http1_feed's *consumed). */
#ifndef SHIR_HTTP1_H
#define SHIR_HTTP1_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "common/shir_err.h"

enum http1_kind { HTTP1_REQUEST, HTTP1_RESPONSE };

enum http1_state {
	HTTP1_S_HEAD = 0,	/* reading a start line and headers */
	HTTP1_S_BODY,		/* head delivered, reading the body */
	HTTP1_S_UPGRADED,	/* head of an upgrade delivered; parser is done */
	HTTP1_S_ERROR,		/* bad input or over a cap; parser is done */
};

struct http1_header {
	char *name;
	char *value;
};

/* A parsed head. Owned by the parser; valid until the next message starts
 * (or use http1_msg_dup). */
struct http1_msg {
	bool is_request;
	char *method;		/* request: "GET", ... */
	char *target;		/* request: raw request-target as received */
	int status;		/* response: status code */
	char *reason;		/* response: reason phrase ("" if none) */
	int http_major, http_minor;
	struct http1_header *h;
	size_t nh;
	bool upgrade;		/* Connection: upgrade + Upgrade (request) or 101 */
	bool chunked;
	bool has_length;
	uint64_t content_length;
	bool keep_alive;
	bool expect_continue;
};

struct http1_callbacks {
	/* The head is complete. Return 0 to go on, or a negative SHIR_E* to
	 * stop (the parser enters HTTP1_S_ERROR). */
	int (*on_head)(const struct http1_msg *m, void *arg);
	/* A piece of the body (de-chunked). */
	int (*on_body)(const uint8_t *data, size_t len, void *arg);
	/* The message ended (after its body). */
	int (*on_complete)(void *arg);
};

struct http1_limits {
	size_t max_head;	/* bytes of start line + header names/values (default 32 KiB) */
	size_t max_headers;	/* header count (default 100) */
};

struct http1;

struct http1 *http1_new(enum http1_kind kind, const struct http1_limits *lim,
    const struct http1_callbacks *cb, void *arg);
void http1_free(struct http1 *p);

/* Feeds bytes. Sets *consumed to how many were used: fewer than len only
 * when the parser stopped (upgrade, error, or paused by http1_pause from a
 * callback). Returns 0, or SHIR_EPROTO / SHIR_ETOOBIG (with e filled) when
 * the input is bad; a callback's negative code is passed through. */
int http1_feed(struct http1 *p, const uint8_t *data, size_t len, size_t *consumed,
    struct shir_error *e);
/* The connection ended: completes a body delimited by EOF (responses only).
 * Returns 0, or SHIR_EPROTO if a message was cut short. */
int http1_eof(struct http1 *p, struct shir_error *e);
/* From a callback: stop after the current callback; http1_feed returns with
 * *consumed short. Resume with http1_resume and feed the rest. */
void http1_pause(struct http1 *p);
void http1_resume(struct http1 *p);

enum http1_state http1_state(const struct http1 *p);
/* A response parser must know the request method to find HEAD bodies. */
void http1_set_head_request(struct http1 *p, bool head);

/* Head helpers. */
const char *http1_msg_get(const struct http1_msg *m, const char *name);	/* first, case-insensitive */
/* True if a comma-separated header (any occurrence) contains token. */
bool http1_msg_has_token(const struct http1_msg *m, const char *name, const char *token);
struct http1_msg *http1_msg_dup(const struct http1_msg *m);
void http1_msg_free(struct http1_msg *m);

const char *http1_reason(int status);	/* standard reason phrase or "Unknown" */

#endif
