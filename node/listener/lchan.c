#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "node/api.h"
#include "node/listener/lchan_int.h"
#include "common/log.h"
#include "common/random.h"
#include "node/listener/ltun.h"
#include "node/node.h"
#include "node/workpool.h"
#include "relay/announce.h"
#include "relay/hc_msg.h"
#include "relay/http1.h"
#include "relay/ws.h"
#include "node/admin/servicehosts.h"

static void lchan_connect(struct lchan *ch);

int64_t
lchan_now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

uint32_t
lchan_rand(void)
{
	uint32_t r = 0;

	(void)random_bytes(&r, sizeof r);	/* jitter: 0 will do on failure */
	return r;
}

int
lchan_token(struct lchan *ch, char **out)
{
	int64_t exp = lchan_now_ms() / 1000 + ch->spec.token_lifetime;
	int rc;

	rc = hcdial_listen_token(ch->spec.endpoint, ch->spec.path, ch->spec.key_name, ch->spec.key,
	    exp, out);
	if (rc == 0)
		ch->token_expiry = exp;
	return rc;
}

void
lchan_notify(struct lchan *ch)
{
	if (ch->ctx->on_state)
		ch->ctx->on_state(ch->ctx->arg, ch);
}

static void
lchan_stop_timers(struct lchan *ch)
{
	event_del(ch->ev_ping);
	event_del(ch->ev_renew);
}

/* The channel went down or an attempt failed: record why and plan the retry. */
void
lchan_down(struct lchan *ch, enum chstate_why why, int code, const char *detail)
{
	int64_t delay;

	lchan_stop_timers(ch);
	if (ch->retired) {
		if (ch->cs.state != CHSTATE_DISCONNECTED)
			log_info("listener", "event=channel.disconnected channel=%s reason=retired",
			    log_q(ch->cs.name));
		ch->cs.state = CHSTATE_DISCONNECTED;
		lchan_check_drained(ch);
		return;
	}
	if (why == CHSTATE_WHY_HANDSHAKE && code == 409 &&
	    (detail == NULL || strncmp(detail, ANNOUNCE_NAME_IN_USE, strlen(ANNOUNCE_NAME_IN_USE)) != 0)) {
		/* the relay has a live listener with our id (a stale channel of ours
		 * it has not noticed yet, or someone squatting it): use a new one */
		char id[RANDOM_UUID_LEN + 1];

		if (random_uuid(id) == 0) {
			snprintf(ch->listener_id, sizeof ch->listener_id, "%s", id);
			log_info("listener", "event=channel.new_id channel=%s listener_id=%s reason=%s",
			    log_q(ch->cs.name), log_q(ch->listener_id),
			    log_q("the relay answered 409: the old listener id is in use"));
		} else {
			log_error("listener", "event=channel.new_id channel=%s reason=%s",
			    log_q(ch->cs.name), log_q("OpenSSL's random generator failed; keeping the old id"));
		}
	}
	delay = chstate_down(&ch->cs, lchan_now_ms(), why, code, detail, lchan_rand());
	if (delay < 0) {
		log_error("listener", "event=channel.stopped channel=%s reason=%s", log_q(ch->cs.name),
		    log_q(ch->cs.last_error));
	} else {
		struct timeval tv = { (time_t)(delay / 1000), (suseconds_t)(delay % 1000) * 1000 };

		log_warn("listener", "event=channel.disconnected channel=%s retry_in_ms=%lld reason=%s",
		    log_q(ch->cs.name), (long long)delay, log_q(ch->cs.last_error));
		evtimer_add(ch->ev_retry, &tv);
	}
	lchan_notify(ch);
}

static void
lchan_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lchan *ch = arg;
	struct lchan_ws *s;

	struct lchan_req *q, *nq;

	while ((s = TAILQ_FIRST(&ch->dead)) != NULL) {
		TAILQ_REMOVE(&ch->dead, s, link);
		lchan_ws_free(s);
	}
	TAILQ_FOREACH_SAFE(q, &ch->reqs, link, nq)
		if (q->abandoned)
			lchan_req_finish(q);
}

bool
lchan_has_forward(void *arg, const char *name)
{
	const struct conf *c = node_conf(((struct lchan *)arg)->ctx->node);
	size_t i;

	for (i = 0; i < c->nforwards; i++)
		if (strcmp(c->forwards[i].name, name) == 0)
			return true;
	return false;
}

static void
lchan_connect(struct lchan *ch)
{
	char url[2048];

	if (ch->retired || ch->finished)
		return;
	chstate_connecting(&ch->cs, lchan_now_ms());
	lchan_notify(ch);
	if (hcdial_listen_url(ch->spec.endpoint, ch->spec.path, ch->listener_id, url,
	    sizeof url) != 0) {
		lchan_down(ch, CHSTATE_WHY_CONFIG, 0, "cannot build the listen URL (too long, or out of memory)");
		return;
	}
	log_info("listener", "event=channel.connecting channel=%s url=%s", log_q(ch->cs.name),
	    log_q(url));
	ch->ctl = lchan_ws_new(ch, LCHAN_WS_CONTROL, url);
	if (ch->ctl == NULL)
		lchan_down(ch, CHSTATE_WHY_NETWORK, 0, "cannot start a connection (out of memory)");
}

static void
lchan_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	lchan_connect(arg);
}

static void
lchan_ping_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lchan *ch = arg;
	struct timeval tv = { ch->spec.ping_interval, 0 };
	int64_t now = lchan_now_ms();

	if (ch->ctl == NULL || !ch->ctl->open)
		return;
	if (now - ch->last_pong_ms >= (int64_t)ch->spec.ping_interval * 2000 - 200) {
		struct lchan_ws *s = ch->ctl;

		log_warn("listener", "event=channel.dead channel=%s silent_ms=%lld", log_q(ch->cs.name),
		    (long long)(now - ch->last_pong_ms));
		s->reported = 1;	/* on_close must not report it again */
		lchan_down(ch, CHSTATE_WHY_DEAD, ch->spec.ping_interval * 2, NULL);
		if (s->ws)
			ws_abort(s->ws);
		return;
	}
	ws_ping(ch->ctl->ws, "shir", 4);
	event_add(ch->ev_ping, &tv);
}

static void
lchan_renew_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lchan *ch = arg;
	char *token = NULL, *json;
	int64_t renew_s = (int64_t)ch->spec.token_lifetime * 2 / 3;
	struct timeval rt = { (time_t)(renew_s > 1 ? renew_s : 1), 0 };

	if (ch->ctl == NULL || !ch->ctl->open)
		return;
	if (lchan_token(ch, &token) != 0)
		return;
	json = lmsg_renew_json(token);
	OPENSSL_cleanse(token, strlen(token));
	free(token);
	if (json == NULL)
		return;
	lchan_ws_queue(ch->ctl, json, NULL, 0, 0);
	log_info("listener", "event=channel.renewed channel=%s expires_in_s=%d", log_q(ch->cs.name),
	    ch->spec.token_lifetime);
	event_add(ch->ev_renew, &rt);
}

static void
lchan_finish_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lchan *ch = arg;

	if (ch->ctx->on_finished)
		ch->ctx->on_finished(ch->ctx->arg, ch);
}

void
lchan_check_drained(struct lchan *ch)
{
	struct lchan_ws *s, *t;

	if (!ch->retired || ch->finished || ch->nreqs > 0)
		return;
	/* nothing in flight: close every socket, then report */
	TAILQ_FOREACH_SAFE(s, &ch->socks, link, t) {
		if (!TAILQ_EMPTY(&s->outq) && s->open)
			return;	/* a response is still being written */
	}
	TAILQ_FOREACH_SAFE(s, &ch->socks, link, t) {
		if (s->ws && s->open) {
			s->reported = 1;
			ws_close(s->ws, 1000, "listener closing");
			continue;
		}
		if (s->ws == NULL)
			lchan_ws_kill(s);
	}
	if (ch->nsocks > 0)
		return;	/* on_close of each brings us back here */
	ch->finished = 1;
	log_info("listener", "event=channel.closed channel=%s", log_q(ch->cs.name));
	event_active(ch->ev_finish, EV_TIMEOUT, 0);
}

static void
lchan_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lchan *ch = arg;
	struct lchan_req *q;

	/* drain deadline: answer what is left with 503 and close */
	while ((q = TAILQ_FIRST(&ch->reqs)) != NULL)
		lchan_req_expire(q);
	lchan_check_drained(ch);
}

void
lchan_retire(struct lchan *ch, int drain_s)
{
	struct timeval tv = { drain_s > 0 ? drain_s : 1, 0 };

	if (ch->retired)
		return;
	ch->retired = 1;
	event_del(ch->ev_retry);
	log_info("listener", "event=channel.retiring channel=%s inflight=%u", log_q(ch->cs.name),
	    ch->nreqs);
	evtimer_add(ch->ev_drain, &tv);
	if (ch->ctl == NULL || !ch->ctl->open) {
		/* not connected: nothing to wait for on the relay */
		if (ch->ctl)
			lchan_ws_kill(ch->ctl);
	}
	lchan_check_drained(ch);
}

struct lchan *
lchan_new(struct lctx *ctx, const struct lspec *spec, struct shir_error *err)
{
	struct lchan *ch = calloc(1, sizeof *ch);

	if (ch == NULL) {
		shir_error_set(err, SHIR_ENOMEM, "out of memory");
		return NULL;
	}
	ch->ctx = ctx;
	TAILQ_INIT(&ch->socks);
	TAILQ_INIT(&ch->dead);
	TAILQ_INIT(&ch->reqs);
	if (lspec_copy(&ch->spec, spec) != 0) {
		shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto fail;
	}
	if (hcdial_parse_url(spec->endpoint, 0, &ch->u, err) != 0)
		goto fail;
	if (ch->u.tls && hcdial_tls_ctx_new(spec->ca_file, &ch->ssl, err) != 0)
		goto fail;
	chstate_init(&ch->cs, spec->name, spec->endpoint, spec->path);
	if (random_uuid(ch->listener_id) != 0)
		goto fail;
	ch->ev_retry = evtimer_new(ctx->base, lchan_retry_cb, ch);
	ch->ev_ping = evtimer_new(ctx->base, lchan_ping_cb, ch);
	ch->ev_renew = evtimer_new(ctx->base, lchan_renew_cb, ch);
	ch->ev_reap = event_new(ctx->base, -1, 0, lchan_reap_cb, ch);
	ch->ev_finish = event_new(ctx->base, -1, 0, lchan_finish_cb, ch);
	ch->ev_drain = evtimer_new(ctx->base, lchan_drain_cb, ch);
	if (!ch->ev_retry || !ch->ev_ping || !ch->ev_renew || !ch->ev_reap || !ch->ev_finish ||
	    !ch->ev_drain) {
		shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto fail;
	}
	return ch;
fail:
	lchan_free(ch);
	return NULL;
}

void
lchan_start(struct lchan *ch)
{
	lchan_connect(ch);
}

void
lchan_free(struct lchan *ch)
{
	struct lchan_ws *s;
	struct lchan_req *q;

	if (ch == NULL)
		return;
	while ((q = TAILQ_FIRST(&ch->reqs)) != NULL) {
		TAILQ_REMOVE(&ch->reqs, q, link);
		lchan_req_free(q);
	}
	while ((s = TAILQ_FIRST(&ch->socks)) != NULL) {
		TAILQ_REMOVE(&ch->socks, s, link);
		lchan_ws_free(s);
	}
	while ((s = TAILQ_FIRST(&ch->dead)) != NULL) {
		TAILQ_REMOVE(&ch->dead, s, link);
		lchan_ws_free(s);
	}
	if (ch->ev_retry) event_free(ch->ev_retry);
	if (ch->ev_ping) event_free(ch->ev_ping);
	if (ch->ev_renew) event_free(ch->ev_renew);
	if (ch->ev_reap) event_free(ch->ev_reap);
	if (ch->ev_finish) event_free(ch->ev_finish);
	if (ch->ev_drain) event_free(ch->ev_drain);
	SSL_CTX_free(ch->ssl);
	lspec_clear(&ch->spec);
	free(ch);
}

const struct chstate *
lchan_state(const struct lchan *ch)
{
	return &ch->cs;
}

const struct lspec *
lchan_spec(const struct lchan *ch)
{
	return &ch->spec;
}

/* A rendezvous on another host than the endpoint (Azure hands out gateway
 * hosts): record it in state_dir for `shirctl service-urls`, so firewall
 * rules can allow it. The file is written (and fsynced) on the listener's
 * file thread, never on the loop, and only for a host this channel has not
 * recorded yet. */
struct note_job {
	char *state_dir;
	char host[256];
	int port;
	char channel[128];
	int rc;
	struct shir_error err;
};

static void
note_run(void *arg)
{
	struct note_job *j = arg;

	j->rc = servicehosts_note(j->state_dir, j->host, j->port, "rendezvous", &j->err);
}

static void
note_done(void *arg, int ran)
{
	struct note_job *j = arg;

	if (ran && j->rc != 0)
		log_warn("listener", "event=servicehosts.failed channel=%s host=%s port=%d reason=%s",
		    log_q(j->channel), log_q(j->host), j->port, log_q(j->err.msg));
	free(j->state_dir);
	free(j);
}

static void
lchan_note_host(struct lchan *ch, const struct hcdial_url *u)
{
	struct shir_error err;
	struct note_job *j;
	char hp[264];
	unsigned i, n = ch->nnoted < 8 ? ch->nnoted : 8;

	if (strcasecmp(u->host, ch->u.host) == 0 && u->port == ch->u.port)
		return;
	snprintf(hp, sizeof hp, "%s:%d", u->host, u->port);
	for (i = 0; i < n; i++)
		if (strcmp(ch->noted[i], hp) == 0)
			return;
	snprintf(ch->noted[ch->nnoted++ % 8], sizeof ch->noted[0], "%s", hp);
	if (ch->ctx->files == NULL &&
	    (ch->ctx->files = workpool_new(ch->ctx->base, 1, 16, &err)) == NULL)
		goto fail;
	if ((j = calloc(1, sizeof *j)) == NULL ||
	    (j->state_dir = strdup(node_conf(ch->ctx->node)->state_dir)) == NULL) {
		if (j != NULL)
			free(j);
		shir_error_set(&err, SHIR_ENOMEM, "out of memory");
		goto fail;
	}
	snprintf(j->host, sizeof j->host, "%s", u->host);
	j->port = u->port;
	snprintf(j->channel, sizeof j->channel, "%s", ch->cs.name);
	if (workpool_submit(ch->ctx->files, j, note_run, note_done) != 0) {
		note_done(j, 0);
		shir_error_set(&err, SHIR_EBUSY, "too many notes are waiting to be written");
		goto fail;
	}
	return;
fail:
	log_warn("listener", "event=servicehosts.failed channel=%s host=%s reason=%s",
	    log_q(ch->cs.name), log_q(hp), log_q(err.msg));
}

void
lchan_dial_opts(struct lchan *ch, const char *url, const struct hcdial_url *u,
    struct hcdial_opts *o)
{
	if (u != &ch->u)
		lchan_note_host(ch, u);
	memset(o, 0, sizeof *o);
	o->url = url;
	o->u = u;
	if (u->tls && ch->ssl == NULL) {
		struct shir_error err;

		if (hcdial_tls_ctx_new(ch->spec.ca_file, &ch->ssl, &err) != 0)
			log_warn("listener", "event=tls.context channel=%s reason=%s", log_q(ch->cs.name),
			    log_q(err.msg));
	}
	o->ssl_ctx = ch->ssl;
	o->tls_pin = ch->spec.tls_pin;
	o->timeout_s = ch->spec.connect_timeout;
	o->proxy = node_ext(ch->ctx->node, NODE_EXT_PROXY);
}

void
lchan_tun_dial(struct lchan *ch, const char *url, struct ltun_dial *d)
{
	struct hcdial_url u;
	struct hcdial_opts o;
	struct shir_error err;

	memset(d, 0, sizeof *d);
	d->allow_plain = strncmp(ch->spec.endpoint, "ws:", 3) == 0;
	if (hcdial_parse_url(url, d->allow_plain, &u, &err) != 0)
		return;	/* the tunnel parses it again and says why */
	lchan_dial_opts(ch, url, &u, &o);
	d->ssl_ctx = o.ssl_ctx;
	d->tls_pin = o.tls_pin;
	d->timeout_s = o.timeout_s;
}

void
lchan_status_json(const struct lchan *ch, cJSON *arr)
{
	cJSON *o = cJSON_CreateObject();

	if (o == NULL)
		return;
	chstate_to_json(&ch->cs, o, lchan_now_ms());
	cJSON_AddStringToObject(o, "kind", "hybridConnection");
	cJSON_AddStringToObject(o, "transport", "websocket");
	cJSON_AddStringToObject(o, "listenerId", ch->listener_id);
	if (ch->pending)
		cJSON_AddBoolToObject(o, "replacing", 1);
	cJSON_AddNumberToObject(o, "rendezvousSockets", ch->nsocks > 0 && ch->ctl ? ch->nsocks - 1 :
	    ch->nsocks);
	cJSON_AddItemToArray(arr, o);
}

void
lchan_set_pending(struct lchan *ch, int pending)
{
	ch->pending = pending;
}


int
lchan_sync_send(struct lchan *ch, const char *text, size_t len)
{
	struct lchan_ws *s = ch->ctl;

	const struct http1_msg *resp;
	const char *feat;

	if (s == NULL || !s->open || s->dead || ch->retired || s->ws == NULL)
		return 0;
	/* only to a relay that said it relays them (shir-relay answers the
	 * listen with "Shir-Relay-Features: sync"; Azure Relay does not) */
	resp = ws_request(s->ws);
	feat = resp != NULL ? http1_msg_get(resp, "Shir-Relay-Features") : NULL;
	if (feat == NULL || !hc_list_has_token(feat, "sync"))
		return 0;
	ws_send(s->ws, WS_OP_TEXT, text, len);
	return 1;
}
