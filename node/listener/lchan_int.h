/* lchan_int: what lchan.c (the channel), lchan_ws.c (its WebSockets) and
 * lchan_req.c (its requests) share. Internal to the listener; see lchan.h. */
#ifndef SHIR_LCHAN_INT_H
#define SHIR_LCHAN_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar) \
	for ((var) = TAILQ_FIRST(head); (var) && ((tvar) = TAILQ_NEXT(var, field), 1); (var) = (tvar))
#endif

#include <event2/util.h>

#include "node/listener/chstate.h"
#include "node/listener/lchan.h"
#include "node/listener/lmsg.h"
#include "relay/hcdial.h"
#include "node/listener/lspec.h"

struct bufferevent;
struct evbuffer;
struct event;
struct api_reply;
struct ws;

#define LCHAN_INLINE_MAX (64 * 1024)	/* response JSON + body on the control channel */
#define LCHAN_FRAGMENT (64 * 1024)	/* streamed body fragments */
#define LCHAN_DEADLINE_S 57		/* default: answer before the relay's 60 s limit */
#define LCHAN_MAX_SOCKS 512		/* rendezvous sockets per channel */
#define LCHAN_MAX_REQS 4096		/* requests in flight per channel */
#define LCHAN_QUEUE_HIGH (8 * 1024 * 1024)	/* queued output: stop reading requests */
#define LCHAN_QUEUE_LOW (2 * 1024 * 1024)	/* ... and read again below this */
#define LCHAN_QUEUE_MAX (64 * 1024 * 1024)	/* never queue more than this per socket */

enum lchan_ws_kind { LCHAN_WS_CONTROL = 0, LCHAN_WS_RDV };

struct lresp {
	char *json;		/* a text message */
	char *body;		/* NULL: no body message */
	size_t len, off;
	int has_body, started;
	TAILQ_ENTRY(lresp) link;
};

struct lchan_req;

struct lchan_ws {
	struct lchan *ch;
	enum lchan_ws_kind kind;
	struct ws *ws;
	struct hcdial *dial;
	char *url;
	struct hcdial_url u;
	int open, dead;
	struct lchan_req *body_for;	/* the request whose body message comes next */
	int reported;		/* the channel already recorded why this socket went down */
	size_t queued;		/* bytes in outq not yet handed to the WebSocket */
	int paused;		/* reading paused because queued is above the high mark */
	TAILQ_HEAD(, lresp) outq;
	TAILQ_ENTRY(lchan_ws) link;
};

struct lchan_req {
	struct lchan *ch;
	struct lchan_ws *sock;	/* where it came in; NULL once that socket is gone */
	char *id, *address, *method, *target;
	struct evbuffer *body;
	int too_big;
	int refuse;		/* answer at once with this status */
	int abandoned;		/* its socket went away before the body: drop it */
	struct api_reply *handle;
	struct event *ev_deadline;
	int64_t start_ms;
	TAILQ_ENTRY(lchan_req) link;
};

struct lchan {
	struct lctx *ctx;
	struct lspec spec;
	struct hcdial_url u;
	SSL_CTX *ssl;
	struct chstate cs;
	char listener_id[40];
	char sr[600];		/* the SAS resource, encoded */
	struct lchan_ws *ctl;
	TAILQ_HEAD(, lchan_ws) socks;	/* every socket, control included */
	TAILQ_HEAD(, lchan_ws) dead;	/* to free from ev_reap */
	TAILQ_HEAD(, lchan_req) reqs;
	unsigned nsocks, nreqs;
	struct event *ev_retry, *ev_ping, *ev_renew, *ev_reap, *ev_finish, *ev_drain;
	int64_t last_pong_ms, token_expiry;
	int retired, finished;
	int pending;		/* a make-before-break replacement not yet in service */
	char noted[8][264];	/* other hosts recorded for service-urls ("host:port") */
	unsigned nnoted;
};

/* lchan.c */
int64_t lchan_now_ms(void);
uint32_t lchan_rand(void);
/* A fresh SAS token for the channel's control channel (*out malloc'ed). */
int lchan_token(struct lchan *ch, char **out);
void lchan_notify(struct lchan *ch);
/* The control channel went down or an attempt failed: record why, plan the retry. */
void lchan_down(struct lchan *ch, enum chstate_why why, int code, const char *detail);
/* A retired channel closes once nothing is in flight. */
void lchan_check_drained(struct lchan *ch);
bool lchan_has_forward(void *arg, const char *name);

/* lchan_ws.c: one WebSocket to the relay (control channel or rendezvous) */
struct lchan_ws *lchan_ws_new(struct lchan *ch, enum lchan_ws_kind kind, const char *url);
/* Opens a request rendezvous at address; first (if any) is sent once it is open. */
void lchan_ws_open_rdv(struct lchan *ch, const char *address, struct lresp *first);
/* Queues a text message (and a body) on s; takes json and body. */
int lchan_ws_queue(struct lchan_ws *s, char *json, char *body, size_t len, int has_body);
void lchan_ws_flush(struct lchan_ws *s);
/* Unlinks s, detaches its requests, frees it from a zero-delay event. */
void lchan_ws_kill(struct lchan_ws *s);
void lchan_ws_free(struct lchan_ws *s);
void lchan_ws_resp_free(struct lresp *r);
void lchan_ws_dialed(void *arg, struct bufferevent *bev, const struct shir_error *err);

/* lchan_req.c: one relayed request */
/* A request (full form) arrived on s. */
void lchan_req_start(struct lchan_ws *s, const struct lmsg_msg *m);
/* Its body is complete (or it had none): hand it to the node API. */
void lchan_req_dispatch(struct lchan_req *q);
/* Out of time: answer 503 Timeout now. */
void lchan_req_expire(struct lchan_req *q);
void lchan_req_finish(struct lchan_req *q);
void lchan_req_free(struct lchan_req *q);

/* The dial settings of this channel for one of its sockets at url/u (a rendezvous
 * on a new host is noted for service-urls). */
void lchan_dial_opts(struct lchan *ch, const char *url, const struct hcdial_url *u,
    struct hcdial_opts *o);

#endif
