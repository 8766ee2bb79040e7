#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/log.h"
#include "node/node.h"
#include "proxy/pac.h"
#include "proxy/proxy.h"
#include "node/proxy_node.h"

struct proxy_node {
	struct node *node;
	struct proxy_config *pending;	/* built by validate, taken by apply */
	unsigned generation;		/* bumped when the effective proxy changes */
};

static struct proxy_node *proxy_node_state;

static void
proxy_node_log_loaded(const struct proxy_config *pc, const char *what)
{
	cJSON *o = cJSON_CreateObject();
	const char *w = proxy_config_warnings(pc);

	if (o != NULL) {
		proxy_config_describe(pc, o);
		log_info("proxy", "event=%s mode=%s source=%s", what,
		    log_q(cJSON_GetStringValue(cJSON_GetObjectItem(o, "mode"))),
		    log_q(cJSON_GetStringValue(cJSON_GetObjectItem(o, "source"))));
		cJSON_Delete(o);
	}
	while (*w) {
		size_t l = strcspn(w, "\n");

		log_warn("proxy", "event=proxy.warning msg=%s", log_qn(w, l));
		w += l + (w[l] ? 1 : 0);
	}
}

int
proxy_node_validate(const struct conf *c, struct shir_error *err)
{
	struct proxy_config *pc = NULL;
	int rc = proxy_config_load(&c->proxy, &pc, err);

	if (rc != 0) {
		char msg[SHIR_ERROR_MSG_MAX];

		snprintf(msg, sizeof msg, "%s", err->msg);
		shir_error_set(err, rc, "proxy: %s", msg);
	} else {
		/* shird -t (and startup, before the log is open): show the warnings */
		const char *w = proxy_config_warnings(pc);

		while (*w) {
			size_t l = strcspn(w, "\n");

			fprintf(stderr, "shird: proxy warning: %.*s\n", (int)l, w);
			w += l + (w[l] ? 1 : 0);
		}
	}
	proxy_config_unref(pc);
	return rc;
}

static int
proxy_node_hook_validate(void *arg, const struct conf *newc, struct shir_error *err)
{
	struct proxy_node *pn = arg;
	int rc;

	proxy_config_unref(pn->pending);
	pn->pending = NULL;
	rc = proxy_config_load(&newc->proxy, &pn->pending, err);
	if (rc != 0) {
		char msg[SHIR_ERROR_MSG_MAX];

		snprintf(msg, sizeof msg, "%s", err->msg);
		shir_error_set(err, rc, "proxy: %s", msg);
	}
	return rc;
}

static void
proxy_node_hook_apply(void *arg, const struct conf *newc, const struct conf *oldc)
{
	struct proxy_node *pn = arg;
	struct proxy_config *old = node_ext(pn->node, NODE_EXT_PROXY);

	if (pn->pending == NULL)
		return;
	if (!proxy_config_same(old, pn->pending))
		pn->generation++;	/* what the channels dialed through changed */
	node_set_ext(pn->node, NODE_EXT_PROXY, pn->pending);
	pn->pending = NULL;
	proxy_node_log_loaded(node_ext(pn->node, NODE_EXT_PROXY), "proxy.reloaded");
	proxy_config_unref(old);	/* dials in flight hold their own reference */
}

static void
proxy_node_hook_status(void *arg, cJSON *node_obj)
{
	struct proxy_node *pn = arg;
	struct proxy_config *pc = node_ext(pn->node, NODE_EXT_PROXY);
	cJSON *o;

	if (pc == NULL || (o = cJSON_AddObjectToObject(node_obj, "proxy")) == NULL)
		return;
	proxy_config_describe(pc, o);
	if (cJSON_GetObjectItem(o, "pac") != NULL) {
		/* the last PAC failure ("" when the last decision worked) */
		char why[1200];
		long age = 0;

		pac_last_error(why, sizeof why, &age);
		cJSON_AddStringToObject(o, "pacError", why);
		if (*why)
			cJSON_AddNumberToObject(o, "pacErrorAgeSeconds", (double)age);
	}
}

int
proxy_node_start(struct node *n, struct shir_error *err)
{
	struct node_hooks h = { "proxy", proxy_node_hook_validate, proxy_node_hook_apply,
		proxy_node_hook_status, NULL };
	struct proxy_config *pc = NULL;
	struct proxy_node *pn;
	int rc;

	if ((rc = proxy_config_load(&node_conf(n)->proxy, &pc, err)) != 0) {
		char msg[SHIR_ERROR_MSG_MAX];

		snprintf(msg, sizeof msg, "%s", err->msg);
		return shir_error_set(err, rc, "proxy: %s", msg);
	}
	if ((pn = calloc(1, sizeof *pn)) == NULL) {
		proxy_config_unref(pc);
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	}
	pn->node = n;
	h.arg = pn;
	if ((rc = node_add_hooks(n, &h)) != 0) {
		free(pn);
		proxy_config_unref(pc);
		return shir_error_set(err, rc, "proxy: too many node hooks");
	}
	node_set_ext(n, NODE_EXT_PROXY, pc);
	proxy_node_state = pn;
	proxy_node_log_loaded(pc, "proxy.loaded");
	return 0;
}

void
proxy_node_stop(struct node *n)
{
	if (n == NULL)
		return;
	proxy_config_unref(node_ext(n, NODE_EXT_PROXY));
	node_set_ext(n, NODE_EXT_PROXY, NULL);
	if (proxy_node_state != NULL && proxy_node_state->node == n) {
		proxy_config_unref(proxy_node_state->pending);
		free(proxy_node_state);
		proxy_node_state = NULL;
	}
}

unsigned
proxy_node_generation(struct node *n)
{
	(void)n;
	return proxy_node_state != NULL ? proxy_node_state->generation : 0;
}

struct proxy_config *
proxy_node_current(struct node *n)
{
	return proxy_config_ref(node_ext(n, NODE_EXT_PROXY));
}
