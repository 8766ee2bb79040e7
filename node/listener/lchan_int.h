/* lchan_int: what lchan.c (the channel), lsock.c (its WebSockets) and
 * lreq.c (its requests) share. Internal to the listener; see lchan.h. */
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

#include "chstate.h"
#include "lchan.h"
#include "lctl.h"
#include "ldial.h"
#include "lspec.h"

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

enum lsock_kind { LSOCK_CONTROL = 0, LSOCK_RDV };

struct lresp {
	char *json;		/* a text message */
	char *body;		/* NULL: no body message */
	size_t len, off;
	int has_body, started;
	TAILQ_ENTRY(lresp) link;
};

struct lreq;

struct lsock {
	struct lchan *ch;
	enum lsock_kind kind;
	struct ws *ws;
	struct ldial *dial;
	char *url;
	struct ldial_url u;
	int open, dead;
	struct lreq *body_for;	/* the request whose body message comes next */
	int reported;		/* the channel already recorded why this socket went down */
	size_t queued;		/* bytes in outq not yet handed to the WebSocket */
	int paused;		/* reading paused because queued is above the high mark */
	TAILQ_HEAD(, lresp) outq;
	TAILQ_ENTRY(lsock) link;
};

struct lreq {
	struct lchan *ch;
	struct lsock *sock;	/* where it came in; NULL once that socket is gone */
	char *id, *address, *method, *target;
	struct evbuffer *body;
	int too_big;
	int refuse;		/* answer at once with this status */
	int abandoned;		/* its socket went away before the body: drop it */
	struct api_reply *handle;
	struct event *ev_deadline;
	int64_t start_ms;
	TAILQ_ENTRY(lreq) link;
};

struct lchan {
	struct lctx *ctx;
	struct lspec spec;
	struct ldial_url u;
	SSL_CTX *ssl;
	struct chstate cs;
	char listener_id[40];
	char sr[600];		/* the SAS resource, encoded */
	struct lsock *ctl;
	TAILQ_HEAD(, lsock) socks;	/* every socket, control included */
	TAILQ_HEAD(, lsock) dead;	/* to free from ev_reap */
	TAILQ_HEAD(, lreq) reqs;
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
void lchan_host_header(const struct ldial_url *u, char *out, size_t len);
void lchan_notify(struct lchan *ch);
/* The control channel went down or an attempt failed: record why, plan the retry. */
void lchan_down(struct lchan *ch, enum chstate_why why, int code, const char *detail);
/* A retired channel closes once nothing is in flight. */
void lchan_check_drained(struct lchan *ch);
bool lchan_has_forward(void *arg, const char *name);

/* lsock.c: one WebSocket to the relay (control channel or rendezvous) */
struct lsock *lsock_new(struct lchan *ch, enum lsock_kind kind, const char *url);
/* Opens a request rendezvous at address; first (if any) is sent once it is open. */
void lsock_open_rdv(struct lchan *ch, const char *address, struct lresp *first);
/* Queues a text message (and a body) on s; takes json and body. */
int lsock_queue(struct lsock *s, char *json, char *body, size_t len, int has_body);
void lsock_flush(struct lsock *s);
/* Unlinks s, detaches its requests, frees it from a zero-delay event. */
void lsock_kill(struct lsock *s);
void lsock_free(struct lsock *s);
void lsock_resp_free(struct lresp *r);
void lsock_dialed(void *arg, struct bufferevent *bev, const struct shir_error *err);

/* lreq.c: one relayed request */
/* A request (full form) arrived on s. */
void lreq_start(struct lsock *s, const struct lctl_msg *m);
/* Its body is complete (or it had none): hand it to the node API. */
void lreq_dispatch(struct lreq *q);
/* Out of time: answer 503 Timeout now. */
void lreq_expire(struct lreq *q);
void lreq_finish(struct lreq *q);
void lreq_free(struct lreq *q);

#endif
