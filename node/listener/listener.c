#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/dns.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "node/api.h"
#include "node/api_stream.h"
#include "node/listener/chstate.h"
#include "node/listener/lchan.h"
#include "relay/hcdial.h"
#include "node/listener/listener.h"
#include "common/atomicfile.h"
#include "common/log.h"
#include "common/random.h"
#include "node/listener/lspec.h"
#include "node/listener/ltun.h"
#include "node/node.h"
#include "node/proxy_node.h"
#include "node/workpool.h"

#define LISTENER_MAX_SLOTS 64
#define LISTENER_DRAIN_S 60	/* an old channel's requests get this long */
#define LISTENER_BLOB_MAX (64 * 1024 * 1024)

/* One channel spec and the channels that serve it: cur, and during a
 * make-before-break change the replacement (next) that takes over once it is
 * connected. */
struct lslot {
	struct lchan *cur;
	struct lchan *next;
};

struct listener {
	struct lctx ctx;
	struct lslot slots[LISTENER_MAX_SLOTS];
	size_t nslots;
	struct lchan *retired[LISTENER_MAX_SLOTS * 4];
	size_t nretired;
	struct event *ev_free;	/* frees finished channels outside their callbacks */
	struct lchan *finished[LISTENER_MAX_SLOTS * 4];
	size_t nfinished;
	unsigned proxy_generation;	/* proxy_node_generation() the channels dialed with */
	/* another channel owns the node status while this says so (the
	 * self-contained channel, in self-contained mode) */
	int (*status_owner)(void *arg);
	void *status_owner_arg;
};

static struct listener *
listener_get(struct node *n)
{
	return node_ext(n, NODE_EXT_LISTENER);
}

/* --- the proxy settings that, when they change, reconnect every channel ----- */

/* The effective proxy changed since the channels dialed: shird.conf's [proxy],
 * the .NET files, the environment or the password file, whichever it was
 * (the proxy hook applies before this one). */
static int
listener_proxy_changed(struct listener *l)
{
	unsigned g = proxy_node_generation(l->ctx.node);

	if (g == l->proxy_generation)
		return 0;
	l->proxy_generation = g;
	return 1;
}

/* --- status ---------------------------------------------------------------- */

static void
listener_update_status(struct listener *l)
{
	const struct chstate *v[LISTENER_MAX_SLOTS * 2];
	char cause[CHSTATE_ERR_MAX + 64];	/* "channel NAME: " and the whole last error */
	unsigned n;
	size_t i;
	int st;

	if (l->ctx.shutting_down)
		return;
	if (l->status_owner != NULL && l->status_owner(l->status_owner_arg))
		return;	/* these channels are not a cause: see listener_set_status_owner */
	for (i = 0, n = 0; i < l->nslots; i++) {
		const struct chstate *nx = l->slots[i].next ? lchan_state(l->slots[i].next) : NULL;

		v[n++] = lchan_state(l->slots[i].cur);
		/* a replacement that cannot connect is worth knowing about; one that
		 * is still connecting is not (make-before-break must not flap the
		 * node's status Online -> Limited -> Online on every reload) */
		if (nx != NULL && nx->state == CHSTATE_DISCONNECTED)
			v[n++] = nx;
	}
	st = chstate_node_status(v, n, cause, sizeof cause);
	node_set_status(l->ctx.node, (enum node_status)st, cause);
}

static void
listener_metrics_one(struct evbuffer *out, const struct chstate *cs, int replacing)
{
	int st;

	for (st = CHSTATE_CONNECTING; st <= CHSTATE_DISCONNECTED; st++)
		evbuffer_add_printf(out, "shird_channel_state{channel=\"%s\",endpoint=\"%s\","
		    "replacing=\"%d\",state=\"%s\"} %d\n", cs->name, cs->endpoint, replacing,
		    chstate_name((enum chstate_state)st), cs->state == (enum chstate_state)st);
	evbuffer_add_printf(out, "shird_channel_connects_total{channel=\"%s\",replacing=\"%d\"} "
	    "%u\nshird_channel_bytes_in_total{channel=\"%s\",replacing=\"%d\"} %llu\n"
	    "shird_channel_bytes_out_total{channel=\"%s\",replacing=\"%d\"} %llu\n"
	    "shird_channel_inflight{channel=\"%s\",replacing=\"%d\"} %u\n", cs->name, replacing,
	    cs->connects, cs->name, replacing, (unsigned long long)cs->bytes_in, cs->name, replacing,
	    (unsigned long long)cs->bytes_out, cs->name, replacing, cs->inflight);
	for (st = 0; st < CHSTATE_WHY_COUNT; st++)
		evbuffer_add_printf(out, "shird_channel_disconnects_total{channel=\"%s\",replacing="
		    "\"%d\",cause=\"%s\"} %u\n", cs->name, replacing,
		    chstate_why_name((enum chstate_why)st), cs->downs[st]);
	for (st = 0; st < CHSTATE_PROXY_COUNT; st++)
		evbuffer_add_printf(out, "shird_channel_proxy_failures_total{channel=\"%s\","
		    "replacing=\"%d\",kind=\"%s\"} %u\n", cs->name, replacing,
		    chstate_proxy_kind_name((enum chstate_proxy_kind)st), cs->proxy_fails[st]);
}

/* GET /metrics: each channel's state, connects, bytes and requests in flight. */
static void
listener_metrics_hook(void *arg, struct evbuffer *out)
{
	struct listener *l = arg;
	size_t i;

	evbuffer_add_printf(out, "# HELP shird_channel_state A control channel's state (1 for the "
	    "current one).\n# TYPE shird_channel_state gauge\n"
	    "# HELP shird_channel_connects_total Connects of a channel so far.\n"
	    "# TYPE shird_channel_connects_total counter\n"
	    "# HELP shird_channel_bytes_in_total Bytes a channel received.\n"
	    "# TYPE shird_channel_bytes_in_total counter\n"
	    "# HELP shird_channel_bytes_out_total Bytes a channel sent.\n"
	    "# TYPE shird_channel_bytes_out_total counter\n"
	    "# HELP shird_channel_inflight Requests and tunnels a channel serves now.\n"
	    "# TYPE shird_channel_inflight gauge\n"
	    "# HELP shird_channel_disconnects_total Failed connects and drops of a channel, by "
	    "cause.\n# TYPE shird_channel_disconnects_total counter\n"
	    "# HELP shird_channel_proxy_failures_total A channel's proxy failures, by kind.\n"
	    "# TYPE shird_channel_proxy_failures_total counter\n");
	for (i = 0; i < l->nslots; i++) {
		listener_metrics_one(out, lchan_state(l->slots[i].cur), 0);
		if (l->slots[i].next != NULL)
			listener_metrics_one(out, lchan_state(l->slots[i].next), 1);
	}
	evbuffer_add_printf(out, "# HELP shird_tunnels Accepted TCP tunnels open now.\n"
	    "# TYPE shird_tunnels gauge\nshird_tunnels %u\n", ltun_set_count(l->ctx.tuns));
}

static void
listener_status_hook(void *arg, cJSON *node_obj)
{
	struct listener *l = arg;
	cJSON *arr = cJSON_CreateArray();
	size_t i;

	if (arr == NULL)
		return;
	for (i = 0; i < l->nslots; i++) {
		lchan_status_json(l->slots[i].cur, arr);
		if (l->slots[i].next != NULL)
			lchan_status_json(l->slots[i].next, arr);
	}
	cJSON_DeleteItemFromObject(node_obj, "channels");
	cJSON_AddItemToObject(node_obj, "channels", arr);
	ltun_set_status(l->ctx.tuns, node_obj);
}

/* --- channel events ---------------------------------------------------------- */

static void
listener_retire(struct listener *l, struct lchan *ch)
{
	if (ch == NULL)
		return;
	if (l->nretired == sizeof l->retired / sizeof l->retired[0]) {
		log_warn("listener", "event=channel.dropped channel=%s reason=\"too many retiring "
		    "channels\"", log_q(lchan_state(ch)->name));
		lchan_free(ch);
		return;
	}
	l->retired[l->nretired++] = ch;
	lchan_retire(ch, LISTENER_DRAIN_S);
}

static void
listener_on_state(void *arg, struct lchan *ch)
{
	struct listener *l = arg;
	size_t i;

	for (i = 0; i < l->nslots; i++) {
		struct lslot *s = &l->slots[i];

		/* make-before-break: the replacement is up, the old one goes */
		if (s->next == ch && lchan_state(ch)->state == CHSTATE_CONNECTED) {
			struct lchan *old = s->cur;

			log_info("listener", "event=channel.replaced channel=%s",
			    log_q(lchan_state(ch)->name));
			s->cur = ch;
			s->next = NULL;
			lchan_set_pending(ch, 0);
			listener_retire(l, old);
		}
	}
	listener_update_status(l);
}

static void
listener_free_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;
	size_t i;

	for (i = 0; i < l->nfinished; i++)
		lchan_free(l->finished[i]);
	l->nfinished = 0;
}

static void
listener_on_finished(void *arg, struct lchan *ch)
{
	struct listener *l = arg;
	size_t i;

	for (i = 0; i < l->nretired; i++) {
		if (l->retired[i] == ch) {
			l->retired[i] = l->retired[--l->nretired];
			if (l->nfinished < sizeof l->finished / sizeof l->finished[0]) {
				l->finished[l->nfinished++] = ch;
				event_active(l->ev_free, EV_TIMEOUT, 0);
			}
			return;
		}
	}
}

/* --- specs -> slots ------------------------------------------------------------ */

static struct lchan *
listener_new_chan(struct listener *l, const struct lspec *sp)
{
	struct shir_error err;
	struct lchan *ch = lchan_new(&l->ctx, sp, &err);

	if (ch == NULL)
		log_error("listener", "event=channel.failed channel=%s reason=%s", log_q(sp->name),
		    log_q(err.msg));
	return ch;
}

/* Makes the slots follow specs. force: reconnect even unchanged channels
 * (the proxy changed). */
static void
listener_apply_specs(struct listener *l, const struct lspec_list *specs, int force)
{
	struct lslot nslots[LISTENER_MAX_SLOTS];
	struct lchan *start[LISTENER_MAX_SLOTS];
	size_t nn = 0, ns = 0, i, j;
	int used[LISTENER_MAX_SLOTS] = { 0 };

	for (i = 0; i < specs->n && nn < LISTENER_MAX_SLOTS; i++) {
		const struct lspec *sp = &specs->v[i];
		struct lslot *old = NULL;

		for (j = 0; j < l->nslots; j++)
			if (!used[j] && strcmp(lchan_spec(l->slots[j].cur)->name, sp->name) == 0)
				old = &l->slots[j], used[j] = 1;
		memset(&nslots[nn], 0, sizeof nslots[nn]);
		if (old == NULL) {
			nslots[nn].cur = listener_new_chan(l, sp);
			if (nslots[nn].cur == NULL)
				continue;
			start[ns++] = nslots[nn].cur;
			nn++;
			continue;
		}
		nslots[nn] = *old;
		/* unchanged: keep it, unless it had stopped (404): a reload is the
		 * admin saying "try again" (the hybrid connection may exist now) */
		if (!force && !lchan_state(old->cur)->stopped && lspec_equal(lchan_spec(old->cur), sp) &&
		    (old->next == NULL || lspec_equal(lchan_spec(old->next), sp))) {
			nn++;
			continue;
		}
		/* changed: build the new one; the old one stays until it is up */
		if (old->next != NULL) {
			listener_retire(l, old->next);
			nslots[nn].next = NULL;
		}
		{
			struct lchan *nc = listener_new_chan(l, sp);

			if (nc == NULL) {
				nn++;
				continue;
			}
			const struct lspec *os = lchan_spec(old->cur);
			/* another runtime (relay or hybrid connection): the node was
			 * moved, the old one must not be served a moment longer */
			int moved = strcmp(os->endpoint, sp->endpoint) != 0 ||
			    strcmp(os->path, sp->path) != 0;

			log_info("listener", "event=channel.changing channel=%s reason=%s",
			    log_q(sp->name), moved ? "runtime" : force ? "proxy" : "settings");
			if (moved || lchan_state(old->cur)->state != CHSTATE_CONNECTED) {
				/* nothing to keep: replace at once */
				listener_retire(l, old->cur);
				nslots[nn].cur = nc;
			} else {
				nslots[nn].next = nc;
				lchan_set_pending(nc, 1);
			}
			start[ns++] = nc;
		}
		nn++;
	}
	for (j = 0; j < l->nslots; j++) {
		if (used[j])
			continue;
		log_info("listener", "event=channel.removed channel=%s",
		    log_q(lchan_state(l->slots[j].cur)->name));
		listener_retire(l, l->slots[j].next);
		listener_retire(l, l->slots[j].cur);
	}
	memcpy(l->slots, nslots, nn * sizeof nslots[0]);
	l->nslots = nn;
	/* start once the slots are in place, so status sees every channel */
	for (i = 0; i < ns; i++)
		lchan_start(start[i]);
	listener_update_status(l);
}

/* --- node hooks ----------------------------------------------------------------- */

static int
listener_hook_validate(void *arg, const struct conf *newc, struct shir_error *err)
{
	return listener_validate(newc, err);
}

static void
listener_hook_apply(void *arg, const struct conf *newc, const struct conf *oldc)
{
	struct listener *l = arg;
	struct lspec_list specs;
	struct shir_error err;

	if (l->ctx.shutting_down)
		return;
	if (lspec_collect(newc, &specs, &err) != 0) {
		/* validate passed a moment ago; a key file may have changed since */
		log_error("listener", "event=reload.listener status=failed reason=%s kept=old",
		    log_q(err.msg));
		return;
	}
	listener_apply_specs(l, &specs, listener_proxy_changed(l));
	lspec_list_clear(&specs);
}

/* --- test route ------------------------------------------------------------------- */

struct listener_blob {
	struct api_reply *r;
	struct event *ev;
	struct event_base *base;
	long n;
};

struct listener_blob_fill {
	struct api_stream *s;
	long n;
};

/* A streamed blob (a channel that takes streams): written from a thread of
 * its own as the channel's peer reads, as a store's rows would be. */
static void *
listener_blob_fill(void *arg)
{
	struct listener_blob_fill *f = arg;
	char chunk[26 * 2048];
	long off = 0, i;

	for (i = 0; i < (long)sizeof chunk; i++)
		chunk[i] = (char)('a' + i % 26);
	while (off < f->n) {
		long k = f->n - off < (long)sizeof chunk ? f->n - off : (long)sizeof chunk;

		if (api_stream_write(f->s, chunk, (size_t)k) != 0)
			break;
		off += k;
	}
	api_stream_end(f->s, off < f->n);
	api_stream_unref(f->s);
	free(f);
	return NULL;
}

static int
listener_blob_stream(struct api_reply *r, struct event_base *base, long n)
{
	struct listener_blob_fill *f = calloc(1, sizeof *f);
	pthread_attr_t at;
	pthread_t t;
	int rc;

	if (f == NULL || (f->s = api_stream_new(base, API_STREAM_CAP, NULL, NULL)) == NULL) {
		free(f);
		return -1;
	}
	f->n = n;
	api_stream_ref(f->s);	/* the thread's */
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &at, listener_blob_fill, f);
	pthread_attr_destroy(&at);
	if (rc != 0) {
		api_stream_unref(f->s);
		api_stream_unref(f->s);
		free(f);
		return -1;
	}
	api_reply_stream(r, 200, "application/octet-stream", f->s);
	api_stream_unref(f->s);	/* ours; the thread's and the channel's remain */
	return 0;
}

static void
listener_blob_send(struct api_reply *r, struct event_base *base, long n)
{
	char *buf;
	long i;

	/* larger than a pipe: streamed where the channel takes it (as a large
	 * preview is); smaller ones whole, as before */
	if (n > API_STREAM_CAP && api_reply_can_stream(r) && listener_blob_stream(r, base, n) == 0)
		return;
	buf = malloc((size_t)n + 1);
	if (buf == NULL) {
		api_reply_error(r, 500, "Internal", "out of memory");
		return;
	}
	for (i = 0; i < n; i++)
		buf[i] = (char)('a' + i % 26);
	api_reply_send(r, 200, "application/octet-stream", buf, (size_t)n);
	free(buf);
}

static void
listener_blob_later(evutil_socket_t fd, short what, void *arg)
{
	struct listener_blob *b = arg;

	listener_blob_send(b->r, b->base, b->n);
	event_free(b->ev);
	free(b);
}

/* TESTING ONLY (relay.test_routes): GET /v1/test/blob?bytes=N[&delay_ms=M]
 * answers N bytes of a pattern, after M ms. */
static void
listener_blob(struct api_reply *r, const struct api_request *rq, void *ud)
{
	struct listener *l = ud;
	const char *q = strchr(rq->target, '?'), *p;
	long n = 200 * 1024, delay = 0;
	struct listener_blob *b;
	struct timeval tv;

	if (q != NULL && (p = strstr(q, "bytes=")) != NULL)
		n = strtol(p + 6, NULL, 10);
	if (q != NULL && (p = strstr(q, "delay_ms=")) != NULL)
		delay = strtol(p + 9, NULL, 10);
	if (n < 0 || n > LISTENER_BLOB_MAX || delay < 0 || delay > 120000) {
		api_reply_error(r, 400, "InvalidRequest",
		    "bytes must be from 0 to %d and delay_ms from 0 to 120000", LISTENER_BLOB_MAX);
		return;
	}
	if (delay == 0) {
		listener_blob_send(r, l->ctx.base, n);
		return;
	}
	b = calloc(1, sizeof *b);
	if (b == NULL || (b->ev = evtimer_new(l->ctx.base, listener_blob_later, b)) == NULL) {
		free(b);
		api_reply_error(r, 500, "Internal", "out of memory");
		return;
	}
	b->r = r;
	b->base = l->ctx.base;
	b->n = n;
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	evtimer_add(b->ev, &tv);
}

/* --- public -------------------------------------------------------------------------- */

int
listener_validate(const struct conf *c, struct shir_error *err)
{
	struct lspec_list specs;
	size_t i;
	int rc;

	if ((rc = lspec_collect(c, &specs, err)) != 0)
		return rc;
	for (i = 0; i < specs.n; i++) {
		SSL_CTX *ctx = NULL;
		struct hcdial_url u;

		if (hcdial_parse_url(specs.v[i].endpoint, 0, &u, err) != 0) {
			rc = err->code;
			break;
		}
		if (specs.v[i].ca_file && (rc = hcdial_tls_ctx_new(specs.v[i].ca_file, &ctx, err)) != 0)
			break;
		SSL_CTX_free(ctx);
	}
	lspec_list_clear(&specs);
	return rc;
}

/* The installation's id the channels announce (relay/announce.h): a UUID in
 * state_dir/node-instance, made at first start. Not part of a backup, so a
 * node restored on another machine is another installation. */
void
listener_instance(const char *state_dir, char *out, size_t len)
{
	char path[4096], *buf = NULL, id[RANDOM_UUID_LEN + 2];
	size_t n = 0;
	struct shir_error err;

	snprintf(path, sizeof path, "%s/node-instance", state_dir);
	if (atomicfile_read(path, 128, &buf, &n, &err) == 0) {
		buf[strcspn(buf, "\r\n")] = '\0';
		if (strlen(buf) == RANDOM_UUID_LEN) {
			snprintf(out, len, "%s", buf);
			free(buf);
			return;
		}
		free(buf);
	}
	if (random_uuid(id) != 0) {
		snprintf(out, len, "unknown");
		return;
	}
	snprintf(out, len, "%s", id);
	strcat(id, "\n");
	if (atomicfile_write(path, id, strlen(id), 0600, &err) != 0)
		log_warn("listener", "event=instance.unsaved reason=%s", log_q(err.msg));
}

int
listener_start(struct node *n, struct shir_error *err)
{
	const struct conf *c = node_conf(n);
	struct listener *l = calloc(1, sizeof *l);
	struct lspec_list specs;
	struct node_hooks h;
	int rc;

	if (l == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	l->ctx.node = n;
	l->proxy_generation = proxy_node_generation(n);
	l->ctx.base = node_base(n);
	l->ctx.on_state = listener_on_state;
	l->ctx.on_finished = listener_on_finished;
	l->ctx.arg = l;
	listener_instance(c->state_dir, l->ctx.instance, sizeof l->ctx.instance);
	l->ctx.dns = evdns_base_new(l->ctx.base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (l->ctx.dns == NULL)	/* no resolv.conf: numeric hosts still work */
		l->ctx.dns = evdns_base_new(l->ctx.base, 0);
	l->ctx.tuns = ltun_set_new(&l->ctx);
	l->ev_free = event_new(l->ctx.base, -1, 0, listener_free_cb, l);
	if (l->ctx.dns == NULL || l->ctx.tuns == NULL || l->ev_free == NULL) {
		node_set_ext(n, NODE_EXT_LISTENER, l);
		listener_stop(n);
		return shir_error_set(err, SHIR_ENOMEM, "cannot set up the relay listener");
	}
	node_set_ext(n, NODE_EXT_LISTENER, l);
	if (c->relay_test_routes) {
		log_warn("listener", "event=test_routes enabled=true reason=\"relay.test_routes is on: "
		    "GET /v1/test/blob is served; never use this in production\"");
		if ((rc = api_route(node_api(n), "GET", "/v1/test/blob", API_FROM_ANY, listener_blob, l)) != 0)
			return shir_error_set(err, rc, "cannot add the test route");
	}
	memset(&h, 0, sizeof h);
	h.name = "listener";
	h.validate = listener_hook_validate;
	h.apply = listener_hook_apply;
	h.status = listener_status_hook;
	h.metrics = listener_metrics_hook;
	h.arg = l;
	if ((rc = node_add_hooks(n, &h)) != 0)
		return shir_error_set(err, rc, "cannot register the listener's hooks");
	if ((rc = lspec_collect(c, &specs, err)) != 0)
		return rc;
	listener_apply_specs(l, &specs, 0);
	lspec_list_clear(&specs);
	return 0;
}

void
listener_set_status_owner(struct node *n, int (*owns)(void *arg), void *arg)
{
	struct listener *l = listener_get(n);

	if (l == NULL)
		return;
	l->status_owner = owns;
	l->status_owner_arg = arg;
}

void
listener_refresh_status(struct node *n)
{
	struct listener *l = listener_get(n);

	if (l != NULL)
		listener_update_status(l);
}

void
listener_shutdown(struct node *n)
{
	struct listener *l = listener_get(n);
	size_t i;

	if (l == NULL || l->ctx.shutting_down)
		return;
	l->ctx.shutting_down = 1;
	log_info("listener", "event=listener.draining channels=%zu tunnels=%u", l->nslots,
	    ltun_set_count(l->ctx.tuns));
	for (i = 0; i < l->nslots; i++) {
		listener_retire(l, l->slots[i].next);
		listener_retire(l, l->slots[i].cur);
	}
	l->nslots = 0;
	ltun_set_close_all(l->ctx.tuns);
}

void
listener_stop(struct node *n)
{
	struct listener *l;
	size_t i;

	if (n == NULL || (l = listener_get(n)) == NULL)
		return;
	for (i = 0; i < l->nslots; i++) {
		lchan_free(l->slots[i].next);
		lchan_free(l->slots[i].cur);
	}
	for (i = 0; i < l->nretired; i++)
		lchan_free(l->retired[i]);
	for (i = 0; i < l->nfinished; i++)
		lchan_free(l->finished[i]);
	ltun_set_free(l->ctx.tuns);
	workpool_free(l->ctx.files);	/* finishes a note being written */
	if (l->ev_free)
		event_free(l->ev_free);
	if (l->ctx.dns)
		evdns_base_free(l->ctx.dns, 0);
	node_set_ext(n, NODE_EXT_LISTENER, NULL);
	/* let libevent finish freeing the bufferevents: TLS ones are finalized
	 * from the loop, which has already stopped (none of ours is left to run) */
	event_base_loop(l->ctx.base, EVLOOP_NONBLOCK);
	free(l);
}

void
listener_set_sync_handler(struct node *n, void (*fn)(void *arg, const char *text, size_t len),
    void *arg)
{
	struct listener *l = n ? listener_get(n) : NULL;

	if (l == NULL)
		return;
	l->ctx.on_sync = fn;
	l->ctx.sync_arg = arg;
}

int
listener_sync_send(struct node *n, const char *text, size_t len)
{
	struct listener *l = n ? listener_get(n) : NULL;
	size_t i;
	int sent = 0;

	if (l == NULL)
		return 0;
	for (i = 0; i < l->nslots; i++)
		if (l->slots[i].cur != NULL)
			sent += lchan_sync_send(l->slots[i].cur, text, len);
	return sent;
}
