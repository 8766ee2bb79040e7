/* node: the daemon's state. One owner of the status (node_set_status logs
 * old -> new), the current configuration (swapped whole on reload), the API
 * router, and the hooks subsystems register to take part in reload and
 * status. */
#ifndef SHIR_NODE_H
#define SHIR_NODE_H

#include <time.h>

#include "node/conf.h"
#include "common/shir_err.h"

struct event_base;
struct cJSON;
struct api;
struct node;

enum node_status {
	NODE_NEEDS_REGISTRATION = 0,
	NODE_STARTING,
	NODE_ONLINE,
	NODE_LIMITED,
	NODE_OFFLINE,
};

/* A subsystem's part in reload: validate the new configuration (fill err and
 * return non-zero to refuse it), then apply it after the swap. */
struct evbuffer;

struct node_hooks {
	const char *name;
	int (*validate)(void *arg, const struct conf *newc, struct shir_error *err);
	void (*apply)(void *arg, const struct conf *newc, const struct conf *oldc);
	/* adds its part to the GET /v1/node object */
	void (*status)(void *arg, struct cJSON *node_obj);
	void *arg;
	/* optional: appends its series to GET /metrics (Prometheus text format,
	 * every name prefixed shird_) */
	void (*metrics)(void *arg, struct evbuffer *out);
};

struct node *node_new(struct event_base *base, struct conf *conf);
void node_free(struct node *n);

struct event_base *node_base(const struct node *n);
const struct conf *node_conf(const struct node *n);
struct api *node_api(const struct node *n);
const char *node_name(const struct node *n);

const char *node_status_name(enum node_status st);
enum node_status node_status(const struct node *n);
const char *node_status_detail(const struct node *n);
/* The one status setter: logs "event=node.status old=X new=Y cause=...". */
void node_set_status(struct node *n, enum node_status st, const char *cause);

int node_add_hooks(struct node *n, const struct node_hooks *h);

/* Each subsystem keeps its runtime state in its own slot, so node.c does not
 * need to know their types. */
enum node_ext {
	NODE_EXT_PROXY = 0,	/* struct proxy_config * (current; swapped on reload) */
	NODE_EXT_AUTHORING,	/* the dispatcher and worker pool */
	NODE_EXT_CREDS,		/* the credential store */
	NODE_EXT_LISTENER,	/* the relay channels */
	NODE_EXT_REGISTRATION,	/* registration (node.json + node key) */
	NODE_EXT_CLUSTER,	/* credential sync between the nodes of a runtime */
	NODE_EXT_SELFCONT,	/* the self-contained channel (node/selfcont) */
	NODE_EXT_MAX
};
void *node_ext(const struct node *n, enum node_ext slot);
void node_set_ext(struct node *n, enum node_ext slot, void *p);

/* Builds the new configuration from its file, validates (with the hooks),
 * swaps and applies. On failure the old one stays and err says why. */
int node_reload(struct node *n, struct shir_error *err);

/* The status object of GET /v1/node (caller frees). */
struct cJSON *node_status_json(struct node *n);

#endif
