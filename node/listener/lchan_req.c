/* lchan_req: one relayed HTTP request: its body, its deadline, its dispatch to the
 * node API and its answer (inline, or on the rendezvous). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "node/api.h"
#include "node/listener/lchan_int.h"
#include "common/log.h"
#include "node/node.h"
#include "relay/ws.h"

static void lchan_req_deadline_cb(evutil_socket_t fd, short what, void *arg);

static char *
lchan_req_strdup0(const char *s)
{
	return s ? strdup(s) : NULL;
}

void
lchan_req_free(struct lchan_req *q)
{
	if (q == NULL)
		return;
	if (q->handle != NULL)
		api_reply_cancel(q->handle);
	if (q->ev_deadline)
		event_free(q->ev_deadline);
	if (q->body)
		evbuffer_free(q->body);
	free(q->id), free(q->address), free(q->method), free(q->target);
	free(q);
}

void
lchan_req_finish(struct lchan_req *q)
{
	struct lchan *ch = q->ch;

	if (q->sock != NULL && q->sock->body_for == q)
		q->sock->body_for = NULL;	/* the rest of its body is dropped */
	TAILQ_REMOVE(&ch->reqs, q, link);
	ch->nreqs--;
	ch->cs.inflight = ch->nreqs;
	lchan_req_free(q);
	lchan_check_drained(ch);
}

/* A request (full form) arrived on s. */
void
lchan_req_start(struct lchan_ws *s, const struct lmsg_msg *m)
{
	struct lchan *ch = s->ch;
	struct timeval deadline = { ch->spec.request_timeout > 0 ? ch->spec.request_timeout :
	    LCHAN_DEADLINE_S, 0 };
	struct lchan_req *q;

	if (s->body_for != NULL) {
		/* a new command where a body message was due: the relay broke the
		 * framing of the earlier request; it cannot be answered sensibly */
		log_warn("listener", "event=request.abandoned channel=%s id=%s reason=\"a command came "
		    "where its body was due\"", log_q(ch->cs.name), log_q(s->body_for->id));
		s->body_for->abandoned = 1;
		s->body_for = NULL;
		event_active(ch->ev_reap, EV_TIMEOUT, 0);
	}

	if (ch->nreqs >= LCHAN_MAX_REQS) {
		log_warn("listener", "event=request.refused channel=%s reason=\"too many in flight\"",
		    log_q(ch->cs.name));
		lchan_ws_queue(s, lmsg_response_json(m->id, 503, "Retry-After: 1\r\n", NULL, false),
		    NULL, 0, 0);
		return;
	}
	q = calloc(1, sizeof *q);
	if (q == NULL)
		return;
	q->ch = ch;
	q->sock = s;
	q->start_ms = lchan_now_ms();
	q->refuse = m->code;
	q->id = lchan_req_strdup0(m->id);
	q->address = lchan_req_strdup0(m->address);
	q->method = lchan_req_strdup0(m->method);
	q->target = lchan_req_strdup0(m->target);
	q->body = evbuffer_new();
	q->ev_deadline = evtimer_new(ch->ctx->base, lchan_req_deadline_cb, q);
	TAILQ_INSERT_TAIL(&ch->reqs, q, link);
	ch->nreqs++;
	ch->cs.inflight = ch->nreqs;
	if (q->body == NULL || q->ev_deadline == NULL || q->id == NULL || q->method == NULL ||
	    q->target == NULL || (m->address != NULL && q->address == NULL)) {
		lchan_req_finish(q);
		return;
	}
	evtimer_add(q->ev_deadline, &deadline);
	log_debug("listener", "event=request.start channel=%s id=%s method=%s target=%s body=%d",
	    log_q(ch->cs.name), log_q(q->id), log_q(q->method), log_q(q->target), m->body);
	if (m->body)
		s->body_for = q;
	else
		lchan_req_dispatch(q);
}

static void
lchan_req_respond(struct lchan_req *q, int status, const char *headers, const char *ctype,
    const char *body, size_t len)
{
	struct lchan *ch = q->ch;
	char *json = lmsg_response_json(q->id, status, headers, ctype, true);
	char *copy = NULL;
	struct lresp *r;

	log_info("listener", "event=request.done channel=%s id=%s method=%s target=%s status=%d "
	    "bytes=%zu ms=%lld", log_q(ch->cs.name), log_q(q->id), log_q(q->method),
	    log_q(q->target), status, len, (long long)(lchan_now_ms() - q->start_ms));
	if (json == NULL || (len > 0 && (copy = malloc(len)) == NULL)) {
		free(json);
		return;
	}
	if (len > 0)
		memcpy(copy, body, len);
	if (q->sock != NULL && (q->sock->kind == LCHAN_WS_RDV ||
	    strlen(json) + len <= LCHAN_INLINE_MAX)) {
		lchan_ws_queue(q->sock, json, copy, len, 1);
		return;
	}
	if (q->sock == NULL && q->address == NULL) {
		log_warn("listener", "event=request.orphaned channel=%s id=%s reason=\"the socket it "
		    "came on is gone\"", log_q(ch->cs.name), log_q(q->id));
		free(json), free(copy);
		return;
	}
	/* too large for the control channel: answer on the request's rendezvous */
	if (q->address == NULL) {
		free(json), free(copy);
		return;
	}
	r = calloc(1, sizeof *r);
	if (r == NULL) {
		free(json), free(copy);
		return;
	}
	r->json = json, r->body = copy, r->len = len, r->has_body = 1;
	lchan_ws_open_rdv(ch, q->address, r);
}

static void
lchan_req_api_done(void *arg, int status, const char *headers, const char *ctype, const char *body,
    size_t len)
{
	struct lchan_req *q = arg;

	q->handle = NULL;
	lchan_req_respond(q, status, headers, ctype, body, len);
	lchan_req_finish(q);
}

static void
lchan_req_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lchan_req *q = arg;
	static const char msg[] = "{\"status\":\"Failed\",\"error\":{\"code\":\"Timeout\","
	    "\"message\":\"the node did not finish the request in time for the relay's 60 s "
	    "limit (relay.request_timeout)\"}}";

	log_warn("listener", "event=request.timeout channel=%s id=%s method=%s target=%s ms=%lld",
	    log_q(q->ch->cs.name), log_q(q->id), log_q(q->method), log_q(q->target),
	    (long long)(lchan_now_ms() - q->start_ms));
	if (q->handle != NULL) {
		api_reply_cancel(q->handle);
		q->handle = NULL;
	}
	lchan_req_respond(q, 503, "", "application/json", msg, sizeof msg - 1);
	lchan_req_finish(q);
}

void
lchan_req_dispatch(struct lchan_req *q)
{
	struct lchan *ch = q->ch;
	struct api_request rq;
	size_t blen = evbuffer_get_length(q->body);
	const char *body;

	if (q->too_big) {
		static const char msg[] = "{\"status\":\"Failed\",\"error\":{\"code\":\"InvalidRequest\","
		    "\"message\":\"the request body is too large\"}}";

		lchan_req_respond(q, 413, "", "application/json", msg, sizeof msg - 1);
		lchan_req_finish(q);
		return;
	}
	if (q->refuse) {
		static const char msg[] = "{\"status\":\"Failed\",\"error\":{\"code\":\"InvalidRequest\","
		    "\"message\":\"the request target is too long\"}}";

		lchan_req_respond(q, q->refuse, "", "application/json", msg, sizeof msg - 1);
		lchan_req_finish(q);
		return;
	}
	evbuffer_add(q->body, "", 1);	/* NUL-terminated for the API */
	body = (const char *)evbuffer_pullup(q->body, -1);
	memset(&rq, 0, sizeof rq);
	rq.method = q->method;
	rq.target = q->target;
	rq.body = body ? body : "";
	rq.body_len = blen;
	rq.channel = API_CH_RELAY;
	api_dispatch(node_api(ch->ctx->node), &rq, lchan_req_api_done, q, &q->handle);
}

void
lchan_req_expire(struct lchan_req *q)
{
	lchan_req_deadline_cb(-1, 0, q);
}
