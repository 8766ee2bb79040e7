/* api: the node's HTTP+JSON API (/v1/...), independent of the channel a
 * request came on (control socket, relay, self-contained). A channel turns its
 * request into a struct api_request and calls api_dispatch(); a handler answers
 * through the struct api_reply, now or later, but always on the loop thread.
 * The channel's callback runs exactly once, unless the channel cancelled first
 * (its peer went away). See docs/api.md. */
#ifndef SHIR_API_H
#define SHIR_API_H

#include <stddef.h>

struct cJSON;
struct api;
struct api_reply;

enum api_channel { API_CH_LOCAL = 0, API_CH_RELAY, API_CH_SELF_CONTAINED };

/* Which channels may call a route (a bit set of enum api_channel). Every
 * route declares it; a request from another channel is answered 403
 * Forbidden before its handler runs. The control socket is the node's
 * admin (local, file permissions); the relay carries whoever holds the
 * service (Send) key, who may only author (docs/security-limits.md). */
#define API_FROM(ch) (1u << (ch))
#define API_FROM_LOCAL API_FROM(API_CH_LOCAL)
#define API_FROM_RELAY API_FROM(API_CH_RELAY)
#define API_FROM_SELF_CONTAINED API_FROM(API_CH_SELF_CONTAINED)
#define API_FROM_ANY (API_FROM_LOCAL | API_FROM_RELAY | API_FROM_SELF_CONTAINED)
const char *api_channel_name(enum api_channel ch);

#define API_MAX_BODY (1024 * 1024)	/* request bodies above this: 413 */

struct api_request {
	const char *method;	/* "GET", "POST", ... */
	const char *target;	/* origin form starting with /v1, query allowed */
	const char *body;	/* NUL-terminated copy; may be "" */
	size_t body_len;
	enum api_channel channel;
};

/* The channel's completion: status, extra headers as "Name: value\r\n" lines
 * (may be ""), content type and body. Called on the loop thread. */
typedef void (*api_done_fn)(void *arg, int status, const char *headers, const char *ctype,
    const char *body, size_t len);
typedef void (*api_handler_fn)(struct api_reply *r, const struct api_request *rq, void *ud);

struct api *api_new(void);
void api_free(struct api *api);

/* Adds a route. pattern is an exact path ("/v1/node") or a prefix ending in
 * '*' ("/v1/credentials/\*"). method NULL matches any method. channels: the
 * API_FROM_* bits of the channels that may call it (0 is refused). */
int api_route(struct api *api, const char *method, const char *pattern, unsigned channels,
    api_handler_fn h, void *ud);
/* Logs every route with the channels it accepts (event=api.route), once
 * at startup: what the admin (and the channel test) can check. */
void api_log_routes(const struct api *api);
/* For tests and docs: route i (0..), or -1 past the last. */
int api_route_info(const struct api *api, size_t i, const char **method, const char **pattern,
    unsigned *channels);

/* Starts a request. If handle is not NULL, *handle holds the pending reply
 * until done has run (then the api sets it to NULL), so the channel can cancel. */
void api_dispatch(struct api *api, const struct api_request *rq, api_done_fn done, void *arg,
    struct api_reply **handle);
/* Streamed answers (node/api_stream.h). A channel that can send an answer
 * as it is produced dispatches with api_dispatch_stream(): a handler may then
 * complete with api_reply_stream(), and the channel gets the pipe in stream()
 * (instead of done()) with one reference to drop. Other answers arrive in
 * done() as with api_dispatch(). */
struct api_stream;
typedef void (*api_stream_fn)(void *arg, int status, const char *headers, const char *ctype,
    struct api_stream *s);
void api_dispatch_stream(struct api *api, const struct api_request *rq, api_done_fn done,
    api_stream_fn stream, void *arg, struct api_reply **handle);
/* The channel no longer wants the answer; done will not be called and the
 * handle slot is no longer touched. r may be NULL. */
void api_reply_cancel(struct api_reply *r);
/* Handler side: fn(arg) runs (on the loop thread) if the channel cancels
 * while the reply is pending, so long work can stop early; the handler still
 * completes r afterwards as usual (nobody gets that answer). */
void api_reply_on_cancel(struct api_reply *r, void (*fn)(void *arg), void *arg);
/* Requests dispatched and not yet answered (for draining). */
unsigned api_inflight(const struct api *api);
/* While draining, new requests get 503 ShuttingDown. */
void api_set_draining(struct api *api, int on);

/* Handler side. Each of these completes and frees r. */
void api_reply_send(struct api_reply *r, int status, const char *ctype, const char *body,
    size_t len);
void api_reply_json(struct api_reply *r, int status, struct cJSON *json); /* takes json */
void api_reply_error(struct api_reply *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Handler side: may this reply be streamed (the channel takes pipes)? */
int api_reply_can_stream(const struct api_reply *r);
/* Completes and frees r with a streamed answer; takes a reference to s for
 * the channel. Only when api_reply_can_stream(r). */
void api_reply_stream(struct api_reply *r, int status, const char *ctype, struct api_stream *s);
/* Adds a response header before completion. */
int api_reply_header(struct api_reply *r, const char *name, const char *value);
const struct api_request *api_reply_request(const struct api_reply *r);
/* The path of the request target without its query. */
const char *api_reply_path(const struct api_reply *r);

#endif
