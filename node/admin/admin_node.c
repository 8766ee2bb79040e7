#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "node/admin/admin_node.h"
#include "node/api.h"
#include "node/admin/credstore.h"
#include "common/log.h"
#include "node/node.h"
#include "node/admin/registration.h"

struct admin_node {
	struct node *node;
	struct credstore *cs;
	struct registration *reg;	/* current (also in NODE_EXT_REGISTRATION) */
	struct registration *pending;	/* read by validate, swapped in by apply */
	int pending_valid;
};

static struct admin_node *admin_state;	/* one node per process */

static const char *
admin_state_dir(struct admin_node *a)
{
	return node_conf(a->node)->state_dir;
}

static void
admin_iso8601(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int
admin_status_code(int rc)
{
	switch (rc) {
	case SHIR_EINVAL: case SHIR_ETOOBIG: return 400;
	case SHIR_EPERM: return 403;
	case SHIR_ENOENT: return 404;
	default: return 500;
	}
}

static const char *
admin_error_code(int rc)
{
	switch (rc) {
	case SHIR_EINVAL: case SHIR_ETOOBIG: case SHIR_EPERM: return "InvalidRequest";
	case SHIR_ENOENT: return "NotFound";
	default: return "Internal";
	}
}

static void
admin_api_creds_list(struct api_reply *r, const struct api_request *rq, void *ud)
{
	struct admin_node *a = ud;
	struct credstore_info *v = NULL;
	struct shir_error err;
	uint64_t ver = 0;
	size_t n = 0, i;
	cJSON *o, *arr;
	int rc;

	if ((rc = credstore_list(a->cs, 0, &v, &n, &err)) != 0 ||
	    (rc = credstore_version(a->cs, &ver, &err)) != 0) {
		free(v);
		api_reply_error(r, 500, "Internal", "%s", err.msg);
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", "Succeeded");
	cJSON_AddNumberToObject(o, "version", (double)ver);
	arr = cJSON_AddArrayToObject(o, "credentials");
	for (i = 0; i < n; i++) {
		cJSON *e = cJSON_CreateObject();
		char ts[32];

		admin_iso8601(v[i].updated, ts, sizeof ts);
		cJSON_AddStringToObject(e, "name", v[i].name);
		cJSON_AddNumberToObject(e, "version", (double)v[i].version);
		cJSON_AddStringToObject(e, "updated", ts);
		cJSON_AddItemToArray(arr, e);
	}
	free(v);
	api_reply_json(r, 200, o);
}

static void
admin_api_creds_change(struct api_reply *r, const struct api_request *rq, void *ud)
{
	struct admin_node *a = ud;
	const char *name = api_reply_path(r) + strlen("/v1/credentials/");
	struct shir_error err;
	cJSON *body = NULL, *val, *o;
	uint64_t ver = 0;
	int rc, put = strcmp(rq->method, "PUT") == 0;

	if ((rc = credstore_name_check(name, 0, &err)) != 0) {
		api_reply_error(r, 400, "InvalidRequest", "%s", err.msg);
		return;
	}
	if (put) {
		body = cJSON_ParseWithLength(rq->body, rq->body_len);
		val = cJSON_GetObjectItemCaseSensitive(body, "value");
		if (!cJSON_IsString(val)) {
			cJSON_Delete(body);
			api_reply_error(r, 400, "InvalidRequest",
			    "the body must be a JSON object {\"value\": \"...\"} with a string value");
			return;
		}
		rc = credstore_put(a->cs, name, val->valuestring, &err);
		memset(val->valuestring, 0, strlen(val->valuestring));
		cJSON_Delete(body);
	} else {
		rc = credstore_delete(a->cs, name, &err);
	}
	if (rc != 0) {
		api_reply_error(r, admin_status_code(rc), admin_error_code(rc), "%s", err.msg);
		return;
	}
	credstore_version(a->cs, &ver, &err);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", "Succeeded");
	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddNumberToObject(o, "version", (double)ver);
	api_reply_json(r, 200, o);
}

static cJSON *
admin_registration_json(const struct registration *reg)
{
	cJSON *o = cJSON_CreateObject();
	char ts[32];

	cJSON_AddBoolToObject(o, "registered", reg != NULL);
	if (reg == NULL)
		return o;
	admin_iso8601(reg->registered, ts, sizeof ts);
	cJSON_AddStringToObject(o, "nodeName", reg->node_name ? reg->node_name : "");
	cJSON_AddStringToObject(o, "ir", reg->ir);
	cJSON_AddStringToObject(o, "endpoint", reg->endpoint);
	cJSON_AddStringToObject(o, "hc", reg->hc);
	cJSON_AddStringToObject(o, "keyName", reg->key_name);
	if (reg->tls_pin)
		cJSON_AddStringToObject(o, "tlsPin", reg->tls_pin);
	cJSON_AddStringToObject(o, "registeredAt", ts);
	return o;
}

static void
admin_api_reg_get(struct api_reply *r, const struct api_request *rq, void *ud)
{
	struct admin_node *a = ud;

	api_reply_json(r, 200, admin_registration_json(a->reg));
}

static void
admin_api_reg_post(struct api_reply *r, const struct api_request *rq, void *ud)
{
	struct admin_node *a = ud;
	struct shir_error err;
	cJSON *o;

	if (rq->channel != API_CH_LOCAL) {
		/* registering is the node admin's act, on the node itself */
		api_reply_error(r, 403, "Forbidden", "POST /v1/node/registration is accepted on the "
		    "node's control socket only");
		return;
	}
	if (node_reload(a->node, &err) != 0) {
		api_reply_error(r, 400, "InvalidConfiguration", "%s", err.msg);
		return;
	}
	o = admin_registration_json(a->reg);
	cJSON_AddStringToObject(o, "status", "Succeeded");
	api_reply_json(r, 200, o);
}

/* Reads the registration; a node that is not registered is fine (NULL). */
static int
admin_read_registration(struct admin_node *a, struct registration **out, struct shir_error *err)
{
	int rc = registration_load(admin_state_dir(a), a->cs, out, err);

	if (rc == SHIR_ENOENT) {	/* not registered (a missing key is SHIR_ECONFIG) */
		shir_error_clear(err);
		return 0;
	}
	return rc;
}

static int
admin_hook_validate(void *arg, const struct conf *newc, struct shir_error *err)
{
	struct admin_node *a = arg;
	int rc;

	registration_free(a->pending);
	a->pending = NULL;
	a->pending_valid = 0;
	rc = admin_read_registration(a, &a->pending, err);
	if (rc != 0) {
		char why[SHIR_ERROR_MSG_MAX / 2];

		snprintf(why, sizeof why, "%.1000s", err->msg);
		return shir_error_set(err, rc, "registration: %s", why);
	}
	a->pending_valid = 1;
	return 0;
}

/* Security switches are logged when they change (the admin's explicit act). */
static void
admin_log_security(const struct conf *newc, const struct conf *oldc)
{
	if (newc->local_folder_path_validation != oldc->local_folder_path_validation)
		log_write(newc->local_folder_path_validation ? LOG_LVL_INFO : LOG_LVL_WARN, "admin",
		    "event=security.changed setting=local_folder_path_validation old=%s new=%s",
		    oldc->local_folder_path_validation ? "on" : "off",
		    newc->local_folder_path_validation ? "on" : "off");
	if (newc->local_machine_access != oldc->local_machine_access)
		log_write(newc->local_machine_access ? LOG_LVL_WARN : LOG_LVL_INFO, "admin",
		    "event=security.changed setting=local_machine_access old=%s new=%s",
		    oldc->local_machine_access ? "on" : "off", newc->local_machine_access ? "on" : "off");
	if (strcmp(newc->allowed_folders ? newc->allowed_folders : "",
	    oldc->allowed_folders ? oldc->allowed_folders : "") != 0)
		log_info("admin", "event=security.changed setting=allowed_folders new=%s",
		    log_q(newc->allowed_folders ? newc->allowed_folders : ""));
}

static void
admin_hook_apply(void *arg, const struct conf *newc, const struct conf *oldc)
{
	struct admin_node *a = arg;
	int changed;

	admin_log_security(newc, oldc);

	if (!a->pending_valid)
		return;
	changed = !registration_equal(a->reg, a->pending);
	registration_free(a->reg);
	a->reg = a->pending;
	a->pending = NULL;
	a->pending_valid = 0;
	node_set_ext(a->node, NODE_EXT_REGISTRATION, a->reg);
	if (changed)
		log_info("admin", "event=registration.applied registered=%d ir=%s endpoint=%s",
		    a->reg != NULL, log_q(a->reg ? a->reg->ir : ""),
		    log_q(a->reg ? a->reg->endpoint : ""));
}

static void
admin_hook_status(void *arg, cJSON *o)
{
	struct admin_node *a = arg;
	struct shir_error err;
	uint64_t ver = 0;

	if (credstore_version(a->cs, &ver, &err) == 0)
		cJSON_AddNumberToObject(o, "credentialsVersion", (double)ver);
	else
		cJSON_AddStringToObject(o, "credentialsError", err.msg);
	cJSON_AddItemToObject(o, "registration", admin_registration_json(a->reg));
	if (a->reg && a->reg->node_name && *a->reg->node_name &&
	    (node_conf(a->node)->node_name == NULL || !*node_conf(a->node)->node_name))
		cJSON_ReplaceItemInObject(o, "name", cJSON_CreateString(a->reg->node_name));
}

const struct registration *
admin_node_registration(const struct node *n)
{
	struct admin_node *a = admin_state;

	if (a == NULL || a->node != n)
		return NULL;
	return a->pending_valid ? a->pending : a->reg;
}

int
admin_node_start(struct node *n, struct shir_error *err)
{
	struct admin_node *a = calloc(1, sizeof *a);
	struct node_hooks h = { "admin", admin_hook_validate, admin_hook_apply, admin_hook_status,
	    NULL };
	struct api *api = node_api(n);
	int rc;

	if (a == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	a->node = n;
	h.arg = a;
	if ((rc = credstore_open(node_conf(n)->state_dir, &a->cs, err)) != 0)
		goto fail;
	if ((rc = admin_read_registration(a, &a->reg, err)) != 0) {
		/* a broken registration is not fatal: the node stays unregistered */
		log_error("admin", "event=registration.unreadable reason=%s", log_q(err->msg));
		shir_error_clear(err);
		a->reg = NULL;
	}
	if ((rc = api_route(api, "GET", "/v1/credentials", API_FROM_LOCAL, admin_api_creds_list, a)) != 0 ||
	    (rc = api_route(api, "PUT", "/v1/credentials/*", API_FROM_LOCAL, admin_api_creds_change, a)) != 0 ||
	    (rc = api_route(api, "DELETE", "/v1/credentials/*", API_FROM_LOCAL, admin_api_creds_change, a)) != 0 ||
	    (rc = api_route(api, "GET", "/v1/node/registration", API_FROM_LOCAL, admin_api_reg_get, a)) != 0 ||
	    (rc = api_route(api, "POST", "/v1/node/registration", API_FROM_LOCAL, admin_api_reg_post, a)) != 0 ||
	    (rc = node_add_hooks(n, &h)) != 0) {
		shir_error_set(err, rc, "cannot add the credentials routes");
		goto fail;
	}
	node_set_ext(n, NODE_EXT_CREDS, a->cs);
	node_set_ext(n, NODE_EXT_REGISTRATION, a->reg);
	admin_state = a;
	log_info("admin", "event=admin.started registered=%d ir=%s", a->reg != NULL,
	    log_q(a->reg ? a->reg->ir : ""));
	return 0;
fail:
	credstore_free(a->cs);
	registration_free(a->reg);
	free(a);
	return rc;
}

void
admin_node_stop(struct node *n)
{
	struct admin_node *a = admin_state;

	if (a == NULL)
		return;
	if (n != NULL) {
		node_set_ext(n, NODE_EXT_CREDS, NULL);
		node_set_ext(n, NODE_EXT_REGISTRATION, NULL);
	}
	credstore_free(a->cs);
	registration_free(a->reg);
	registration_free(a->pending);
	free(a);
	admin_state = NULL;
}
