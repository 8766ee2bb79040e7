#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "node/api.h"
#include "common/log.h"
#include "node/node.h"

static void node_api_metrics(struct api_reply *r, const struct api_request *rq, void *ud);

#define NODE_MAX_HOOKS 16

struct node {
	struct event_base *base;
	struct conf *conf;
	struct api *api;
	enum node_status status;
	char detail[1600];	/* a channel's last error, whole (CHSTATE_ERR_MAX + its name) */
	time_t started;
	char hostname[256];
	unsigned reloads;
	struct node_hooks hooks[NODE_MAX_HOOKS];
	size_t nhooks;
	void *ext[NODE_EXT_MAX];
};

static const char *const node_status_names[] = {
	[NODE_NEEDS_REGISTRATION] = "NeedsRegistration",
	[NODE_STARTING] = "Starting",
	[NODE_ONLINE] = "Online",
	[NODE_LIMITED] = "Limited",
	[NODE_OFFLINE] = "Offline",
};

static void node_api_get(struct api_reply *r, const struct api_request *rq, void *ud);
static void node_api_reload(struct api_reply *r, const struct api_request *rq, void *ud);

struct node *
node_new(struct event_base *base, struct conf *conf)
{
	struct node *n = calloc(1, sizeof *n);

	if (n == NULL)
		return NULL;
	n->base = base;
	n->conf = conf;
	n->status = NODE_STARTING;
	n->started = time(NULL);
	if (gethostname(n->hostname, sizeof n->hostname - 1) != 0)
		strcpy(n->hostname, "localhost");
	n->api = api_new();
	if (n->api == NULL ||
	    /* the node's status shows its pid, config path and state; reload
	     * is the admin's: the control socket only */
	    api_route(n->api, "GET", "/v1/node", API_FROM_LOCAL, node_api_get, n) != 0 ||
	    api_route(n->api, "POST", "/v1/node/reload", API_FROM_LOCAL, node_api_reload, n) != 0 ||
	    api_route(n->api, "GET", "/metrics", API_FROM_LOCAL, node_api_metrics, n) != 0) {
		node_free(n);
		return NULL;
	}
	return n;
}

void
node_free(struct node *n)
{
	if (n == NULL)
		return;
	api_free(n->api);
	conf_free(n->conf);
	free(n);
}

struct event_base *
node_base(const struct node *n)
{
	return n->base;
}

const struct conf *
node_conf(const struct node *n)
{
	return n->conf;
}

struct api *
node_api(const struct node *n)
{
	return n->api;
}

const char *
node_name(const struct node *n)
{
	if (n->conf->node_name != NULL && *n->conf->node_name)
		return n->conf->node_name;
	return n->hostname;
}

const char *
node_status_name(enum node_status st)
{
	if ((unsigned)st >= sizeof node_status_names / sizeof node_status_names[0])
		return "?";
	return node_status_names[st];
}

enum node_status
node_status(const struct node *n)
{
	return n->status;
}

const char *
node_status_detail(const struct node *n)
{
	return n->detail;
}

void
node_set_status(struct node *n, enum node_status st, const char *cause)
{
	const char *c = cause ? cause : "";

	if (n->status == st && strcmp(n->detail, c) == 0)
		return;
	log_info("node", "event=node.status old=%s new=%s cause=%s", node_status_name(n->status),
	    node_status_name(st), log_q(c));
	n->status = st;
	snprintf(n->detail, sizeof n->detail, "%s", c);
}

void *
node_ext(const struct node *n, enum node_ext slot)
{
	return (unsigned)slot < NODE_EXT_MAX ? n->ext[slot] : NULL;
}

void
node_set_ext(struct node *n, enum node_ext slot, void *p)
{
	if ((unsigned)slot < NODE_EXT_MAX)
		n->ext[slot] = p;
}

int
node_add_hooks(struct node *n, const struct node_hooks *h)
{
	if (n->nhooks == NODE_MAX_HOOKS)
		return SHIR_ETOOBIG;
	n->hooks[n->nhooks++] = *h;
	return 0;
}

int
node_reload(struct node *n, struct shir_error *err)
{
	struct conf *newc = NULL, *oldc = n->conf;
	struct shir_error warn;
	size_t i;
	int rc;

	shir_error_clear(err);
	shir_error_clear(&warn);
	log_info("node", "event=reload status=begin file=%s", log_q(oldc->path));
	rc = conf_load_file(oldc->path, &newc, err);
	if (rc != 0)
		goto fail;
	for (i = 0; i < n->nhooks; i++) {
		if (n->hooks[i].validate != NULL &&
		    (rc = n->hooks[i].validate(n->hooks[i].arg, newc, err)) != 0)
			goto fail;
	}
	if (conf_keep_unreloadable(newc, oldc, &warn) > 0)
		log_warn("node", "event=reload.partial reason=%s", log_q(warn.msg));
	n->conf = newc;
	if (strcmp(newc->log_file ? newc->log_file : "-", oldc->log_file ? oldc->log_file : "-") != 0 &&
	    log_open(newc->log_file) != 0)
		log_warn("node", "event=reload.log file=%s reason=\"cannot open; still logging to the old file\"",
		    log_q(newc->log_file));
	log_set_level((enum log_level)newc->log_level);
	for (i = 0; i < n->nhooks; i++)
		if (n->hooks[i].apply != NULL)
			n->hooks[i].apply(n->hooks[i].arg, newc, oldc);
	conf_free(oldc);
	n->reloads++;
	log_info("node", "event=reload status=done file=%s", log_q(newc->path));
	return 0;
fail:
	conf_free(newc);
	log_error("node", "event=reload status=failed reason=%s kept=old", log_q(err->msg));
	return rc;
}

cJSON *
node_status_json(struct node *n)
{
	cJSON *o = cJSON_CreateObject();
	size_t i;

	if (o == NULL)
		return NULL;
	cJSON_AddStringToObject(o, "name", node_name(n));
	cJSON_AddStringToObject(o, "version", PACKAGE_VERSION);
	cJSON_AddStringToObject(o, "status", node_status_name(n->status));
	cJSON_AddStringToObject(o, "statusDetail", n->detail);
	cJSON_AddNumberToObject(o, "uptimeSeconds", (double)(time(NULL) - n->started));
	cJSON_AddNumberToObject(o, "pid", (double)getpid());
	cJSON_AddStringToObject(o, "configFile", n->conf->path ? n->conf->path : "");
	cJSON_AddNumberToObject(o, "reloads", n->reloads);
	cJSON_AddStringToObject(o, "proxyMode", proxy_mode_name(n->conf->proxy.mode));
	for (i = 0; i < n->nhooks; i++)
		if (n->hooks[i].status != NULL)
			n->hooks[i].status(n->hooks[i].arg, o);
	if (cJSON_GetObjectItem(o, "channels") == NULL)
		cJSON_AddItemToObject(o, "channels", cJSON_CreateArray());
	return o;
}

/* GET /metrics on the control socket: the node's own series, then each
 * subsystem's (Prometheus text exposition format 0.0.4). */
static void
node_api_metrics(struct api_reply *r, const struct api_request *rq, void *ud)
{
	struct node *n = ud;
	struct evbuffer *out = evbuffer_new();
	size_t i, len;
	int st;

	if (out == NULL) {
		api_reply_error(r, 500, "Internal", "out of memory");
		return;
	}
	evbuffer_add_printf(out, "# HELP shird_up 1 while shird answers.\n# TYPE shird_up gauge\n"
	    "shird_up 1\n");
	evbuffer_add_printf(out, "# HELP shird_info The node's name and version.\n"
	    "# TYPE shird_info gauge\nshird_info{node=\"%s\",version=\"%s\"} 1\n", node_name(n),
	    PACKAGE_VERSION);
	evbuffer_add_printf(out, "# HELP shird_node_status The node's status (1 for the current "
	    "one).\n# TYPE shird_node_status gauge\n");
	for (st = NODE_NEEDS_REGISTRATION; st <= NODE_OFFLINE; st++)
		evbuffer_add_printf(out, "shird_node_status{status=\"%s\"} %d\n",
		    node_status_name((enum node_status)st), n->status == (enum node_status)st);
	evbuffer_add_printf(out, "# HELP shird_uptime_seconds Seconds since shird started.\n"
	    "# TYPE shird_uptime_seconds gauge\nshird_uptime_seconds %ld\n",
	    (long)(time(NULL) - n->started));
	evbuffer_add_printf(out, "# HELP shird_reloads_total Configuration reloads applied.\n"
	    "# TYPE shird_reloads_total counter\nshird_reloads_total %u\n", n->reloads);
	for (i = 0; i < n->nhooks; i++)
		if (n->hooks[i].metrics != NULL)
			n->hooks[i].metrics(n->hooks[i].arg, out);
	len = evbuffer_get_length(out);
	api_reply_send(r, 200, "text/plain; version=0.0.4", (const char *)evbuffer_pullup(out, -1),
	    len);
	evbuffer_free(out);
}

static void
node_api_get(struct api_reply *r, const struct api_request *rq, void *ud)
{
	api_reply_json(r, 200, node_status_json(ud));
}

static void
node_api_reload(struct api_reply *r, const struct api_request *rq, void *ud)
{
	struct shir_error err;
	cJSON *o;

	if (node_reload(ud, &err) != 0) {
		api_reply_error(r, 400, "InvalidConfiguration", "%s", err.msg);
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", "Succeeded");
	api_reply_json(r, 200, o);
}
