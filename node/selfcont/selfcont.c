/* selfcont: the node's self-contained channel (docs/self-contained.md): N
 * connections (scconn) to the relay's service endpoint, the runtime's mode as
 * the relay tells it, the node status in that mode, reloads
 * (make-before-break) and the drain on SIGTERM. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>

#include "common/log.h"
#include "node/api_stream.h"
#include "node/listener/listener.h"
#include "node/listener/lspec.h"
#include "node/node.h"
#include "node/proxy_node.h"
#include "node/selfcont/scconn.h"
#include "node/selfcont/selfcont.h"
#include "relay/hcdial.h"

#define SC_SLOTS 4
#define SC_RETIRED_MAX 32
#define SC_DRAIN_S 60
#define SC_CONTROL_STREAMS 2	/* the relay's mode streams on top of the jobs */
#define SC_MAX_STREAMS 4096	/* SETTINGS_MAX_CONCURRENT_STREAMS at most */

struct selfcont {
	struct scctx ctx;
	struct scconn *slots[SC_SLOTS];
	struct scconn *next[SC_SLOTS];	/* make-before-break replacements */
	int n;
	struct scconn *retired[SC_RETIRED_MAX];
	size_t nretired;
	struct scconn *finished[SC_RETIRED_MAX];
	size_t nfinished;
	struct event *ev_free;
	int mode;		/* the runtime's self-contained mode, as the relay said */
	int shutting_down;
	unsigned proxy_generation;
	unsigned gen;		/* names: selfcontained-<slot> */
};

static struct selfcont *
sc_get(struct node *n)
{
	return node_ext(n, NODE_EXT_SELFCONT);
}

/* --- status ------------------------------------------------------------------------- */

static int
sc_owns_status(void *arg)
{
	struct selfcont *s = arg;

	return s->n > 0 && s->mode;
}

static void
sc_update_status(struct selfcont *s)
{
	const struct chstate *v[SC_SLOTS * 2];
	char cause[CHSTATE_ERR_MAX + 64];
	unsigned k = 0;
	int i, st;

	if (s->shutting_down || !sc_owns_status(s))
		return;
	for (i = 0; i < s->n; i++) {
		if (s->slots[i] != NULL)
			v[k++] = scconn_state(s->slots[i]);
		if (s->next[i] != NULL && scconn_state(s->next[i])->state == CHSTATE_DISCONNECTED)
			v[k++] = scconn_state(s->next[i]);
	}
	st = chstate_node_status(v, k, cause, sizeof cause);
	node_set_status(s->ctx.node, (enum node_status)st, cause);
}

static void
sc_status_hook(void *arg, cJSON *node_obj)
{
	struct selfcont *s = arg;
	cJSON *arr = cJSON_GetObjectItemCaseSensitive(node_obj, "channels");
	cJSON *o;
	int i;

	if (arr == NULL && (arr = cJSON_AddArrayToObject(node_obj, "channels")) == NULL)
		return;
	for (i = 0; i < s->n; i++) {
		if (s->slots[i] != NULL)
			scconn_status_json(s->slots[i], arr);
		if (s->next[i] != NULL)
			scconn_status_json(s->next[i], arr);
	}
	o = cJSON_AddObjectToObject(node_obj, "selfContained");
	if (o != NULL) {
		cJSON_AddBoolToObject(o, "configured", s->n > 0);
		cJSON_AddBoolToObject(o, "mode", s->mode);
		cJSON_AddNumberToObject(o, "connections", s->n);
	}
}

static void
sc_metrics_hook(void *arg, struct evbuffer *out)
{
	struct selfcont *s = arg;
	int i, up = 0;
	unsigned streams = 0;

	for (i = 0; i < s->n; i++)
		if (s->slots[i] != NULL) {
			up += scconn_state(s->slots[i])->state == CHSTATE_CONNECTED;
			streams += scconn_streams(s->slots[i]);
		}
	evbuffer_add_printf(out, "# HELP shird_selfcontained_mode The runtime's self-contained mode "
	    "(1 on).\n# TYPE shird_selfcontained_mode gauge\nshird_selfcontained_mode %d\n"
	    "# HELP shird_selfcontained_connections Self-contained connections up.\n"
	    "# TYPE shird_selfcontained_connections gauge\nshird_selfcontained_connections %d\n"
	    "# HELP shird_selfcontained_streams Streams served now.\n"
	    "# TYPE shird_selfcontained_streams gauge\nshird_selfcontained_streams %u\n"
	    "# HELP shird_streamed_answer_bytes Bytes of streamed answers waiting in their pipes.\n"
	    "# TYPE shird_streamed_answer_bytes gauge\nshird_streamed_answer_bytes %zu\n",
	    s->mode, up, streams, api_stream_total_buffered());
}

/* --- connections ---------------------------------------------------------------------- */

static void
sc_retire(struct selfcont *s, struct scconn *c)
{
	if (c == NULL)
		return;
	if (s->nretired == SC_RETIRED_MAX) {
		scconn_free(c);
		return;
	}
	s->retired[s->nretired++] = c;
	scconn_retire(c, SC_DRAIN_S);
}

static struct scconn *
sc_new_conn(struct selfcont *s, const struct lspec *sp, int slot)
{
	struct shir_error err;
	char name[96];
	struct scconn *c;

	snprintf(name, sizeof name, "selfcontained-%d", slot + 1);
	c = scconn_new(&s->ctx, sp, name, &err);
	if (c == NULL)
		log_error("selfcont", "event=channel.failed conn=%s reason=%s", log_q(name),
		    log_q(err.msg));
	return c;
}

static void
sc_on_state(void *arg, struct scconn *c)
{
	struct selfcont *s = arg;
	int i;

	for (i = 0; i < s->n; i++) {
		/* make-before-break: the replacement is up, the old one drains */
		if (s->next[i] == c && scconn_state(c)->state == CHSTATE_CONNECTED) {
			log_info("selfcont", "event=channel.replaced conn=%s", log_q(scconn_state(c)->name));
			sc_retire(s, s->slots[i]);
			s->slots[i] = c;
			s->next[i] = NULL;
		}
		/* the current one dropped while its replacement is on its way:
		 * the replacement takes the slot, the old one stops retrying */
		if (s->slots[i] == c && s->next[i] != NULL &&
		    scconn_state(c)->state == CHSTATE_DISCONNECTED) {
			s->slots[i] = s->next[i];
			s->next[i] = NULL;
			sc_retire(s, c);
			continue;
		}
		/* the relay is going away (GOAWAY): connect again at once, finish
		 * what this one serves */
		if (s->slots[i] == c && scconn_goaway(c) && s->next[i] == NULL && !s->shutting_down) {
			s->next[i] = sc_new_conn(s, scconn_spec(c), i);
			if (s->next[i] != NULL)
				scconn_start(s->next[i]);
		}
	}
	sc_update_status(s);
}

static void
sc_free_cb(evutil_socket_t fd, short w, void *arg)
{
	struct selfcont *s = arg;
	size_t i;

	for (i = 0; i < s->nfinished; i++)
		scconn_free(s->finished[i]);
	s->nfinished = 0;
}

static void
sc_on_finished(void *arg, struct scconn *c)
{
	struct selfcont *s = arg;
	size_t i;

	for (i = 0; i < s->nretired; i++)
		if (s->retired[i] == c) {
			s->retired[i] = s->retired[--s->nretired];
			if (s->nfinished < SC_RETIRED_MAX) {
				s->finished[s->nfinished++] = c;
				event_active(s->ev_free, EV_TIMEOUT, 0);
			}
			return;
		}
}

static void
sc_on_mode(void *arg, int on)
{
	struct selfcont *s = arg;

	if (s->mode == on)
		return;
	s->mode = on;
	log_info("selfcont", "event=selfcontained.mode mode=%s reason=%s", on ? "on" : "off",
	    log_q(on ? "the runtime's self-contained interactive authoring is on: authoring comes "
	    "over the self-contained connections; the Hybrid Connections channels are not a cause "
	    "of the node status" : "the runtime's self-contained interactive authoring is off: "
	    "authoring comes over the Hybrid Connections channels"));
	if (on)
		sc_update_status(s);
	else
		listener_refresh_status(s->ctx.node);
}

/* The spec of the self-contained connections for c: the runtime's first
 * channel spec with the service endpoint. 1 = one, 0 = none configured. */
static int
sc_spec(const struct conf *c, struct lspec *out, struct shir_error *err)
{
	struct lspec_list specs;
	int rc;

	memset(out, 0, sizeof *out);
	if (c->sc_endpoint == NULL || *c->sc_endpoint == '\0')
		return 0;
	if ((rc = lspec_collect(c, &specs, err)) != 0)
		return rc;
	if (specs.n == 0) {
		lspec_list_clear(&specs);
		return shir_error_set(err, SHIR_ECONFIG, "selfcontained.endpoint is set but the node "
		    "has no runtime: register it or set [relay]");
	}
	rc = lspec_copy(out, &specs.v[0]);
	lspec_list_clear(&specs);
	if (rc != 0)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	free(out->endpoint);
	if ((out->endpoint = strdup(c->sc_endpoint)) == NULL) {
		lspec_clear(out);
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	}
	return 1;
}

static void
sc_apply(struct selfcont *s, const struct conf *c, int force)
{
	struct lspec sp;
	struct shir_error err;
	int want = c->sc_connections, i, rc;

	rc = sc_spec(c, &sp, &err);
	if (rc < 0) {
		log_error("selfcont", "event=reload.selfcontained status=failed reason=%s kept=old",
		    log_q(err.msg));
		return;
	}
	if (rc == 0)
		want = 0;
	/* streams a connection takes at once: what the node holds (jobs running
	 * and queued; requests beyond get the authoring queue's answer anyway)
	 * and the relay's mode streams */
	s->ctx.capacity = (c->concurrent_jobs > 0 ? c->concurrent_jobs : 16) + c->queue_size +
	    SC_CONTROL_STREAMS;
	if (s->ctx.capacity > SC_MAX_STREAMS)
		s->ctx.capacity = SC_MAX_STREAMS;
	for (i = 0; i < SC_SLOTS; i++) {
		struct scconn *cur = s->slots[i];

		if (i >= want) {
			sc_retire(s, s->next[i]);
			sc_retire(s, cur);
			s->slots[i] = s->next[i] = NULL;
			continue;
		}
		if (cur != NULL && !force && !scconn_state(cur)->stopped &&
		    lspec_equal(scconn_spec(cur), &sp))
			continue;
		sc_retire(s, s->next[i]);
		s->next[i] = NULL;
		if (cur == NULL || scconn_state(cur)->state != CHSTATE_CONNECTED) {
			sc_retire(s, cur);
			s->slots[i] = sc_new_conn(s, &sp, i);
			if (s->slots[i] != NULL)
				scconn_start(s->slots[i]);
		} else {
			/* make-before-break: the old one serves until this one is up */
			log_info("selfcont", "event=channel.changing conn=%s reason=%s",
			    log_q(scconn_state(cur)->name), force ? "proxy" : "settings");
			s->next[i] = sc_new_conn(s, &sp, i);
			if (s->next[i] != NULL)
				scconn_start(s->next[i]);
		}
	}
	s->n = want;
	if (rc == 1)
		lspec_clear(&sp);
	if (s->n == 0 && s->mode) {
		s->mode = 0;
		listener_refresh_status(s->ctx.node);
	}
	sc_update_status(s);
}

static int
sc_hook_validate(void *arg, const struct conf *newc, struct shir_error *err)
{
	return selfcont_validate(newc, err);
}

static void
sc_hook_apply(void *arg, const struct conf *newc, const struct conf *oldc)
{
	struct selfcont *s = arg;
	unsigned g = proxy_node_generation(s->ctx.node);
	int force = g != s->proxy_generation;

	if (s->shutting_down)
		return;
	s->proxy_generation = g;
	sc_apply(s, newc, force);
}

/* --- public ----------------------------------------------------------------------------- */

int
selfcont_validate(const struct conf *c, struct shir_error *err)
{
	struct lspec sp;
	struct hcdial_url u;
	int rc = sc_spec(c, &sp, err);

	if (rc <= 0)
		return rc;
	rc = hcdial_parse_url(sp.endpoint, 0, &u, err);
	lspec_clear(&sp);
	if (rc != 0)
		return shir_error_set(err, rc, "selfcontained.endpoint: %s", err->msg);
	return 0;
}

int
selfcont_start(struct node *n, struct shir_error *err)
{
	struct selfcont *s = calloc(1, sizeof *s);
	struct node_hooks h;
	int rc;

	if (s == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	s->ctx.node = n;
	s->ctx.base = node_base(n);
	if (node_conf(n) != NULL && node_conf(n)->state_dir != NULL)
		listener_instance(node_conf(n)->state_dir, s->ctx.instance, sizeof s->ctx.instance);
	else
		snprintf(s->ctx.instance, sizeof s->ctx.instance, "unknown");
	s->ctx.on_state = sc_on_state;
	s->ctx.on_finished = sc_on_finished;
	s->ctx.on_mode = sc_on_mode;
	s->ctx.arg = s;
	s->proxy_generation = proxy_node_generation(n);
	s->ctx.dns = evdns_base_new(s->ctx.base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (s->ctx.dns == NULL)
		s->ctx.dns = evdns_base_new(s->ctx.base, 0);
	s->ev_free = event_new(s->ctx.base, -1, 0, sc_free_cb, s);
	node_set_ext(n, NODE_EXT_SELFCONT, s);
	if (s->ctx.dns == NULL || s->ev_free == NULL) {
		selfcont_stop(n);
		return shir_error_set(err, SHIR_ENOMEM, "cannot set up the self-contained channel");
	}
	memset(&h, 0, sizeof h);
	h.name = "selfcont";
	h.validate = sc_hook_validate;
	h.apply = sc_hook_apply;
	h.status = sc_status_hook;
	h.metrics = sc_metrics_hook;
	h.arg = s;
	if ((rc = node_add_hooks(n, &h)) != 0)
		return shir_error_set(err, rc, "cannot register the self-contained channel's hooks");
	listener_set_status_owner(n, sc_owns_status, s);
	sc_apply(s, node_conf(n), 0);
	return 0;
}

void
selfcont_shutdown(struct node *n)
{
	struct selfcont *s = sc_get(n);
	int i;

	if (s == NULL || s->shutting_down)
		return;
	s->shutting_down = 1;
	for (i = 0; i < SC_SLOTS; i++) {
		sc_retire(s, s->next[i]);
		sc_retire(s, s->slots[i]);
		s->slots[i] = s->next[i] = NULL;
	}
	s->n = 0;
}

void
selfcont_stop(struct node *n)
{
	struct selfcont *s;
	size_t i;

	if (n == NULL || (s = sc_get(n)) == NULL)
		return;
	listener_set_status_owner(n, NULL, NULL);
	for (i = 0; i < SC_SLOTS; i++) {
		scconn_free(s->slots[i]);
		scconn_free(s->next[i]);
	}
	for (i = 0; i < s->nretired; i++)
		scconn_free(s->retired[i]);
	for (i = 0; i < s->nfinished; i++)
		scconn_free(s->finished[i]);
	if (s->ev_free)
		event_free(s->ev_free);
	if (s->ctx.dns)
		evdns_base_free(s->ctx.dns, 0);
	node_set_ext(n, NODE_EXT_SELFCONT, NULL);
	event_base_loop(s->ctx.base, EVLOOP_NONBLOCK);
	free(s);
}
