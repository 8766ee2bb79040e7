/* Unit tests for the admin routes inside a node (no sockets: requests go
 * straight to api_dispatch, as every channel does). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <event2/event.h>

#include "node/admin/admin_node.h"
#include "node/api.h"
#include "node/conf.h"
#include "node/admin/credstore.h"
#include "node/node.h"
#include "node/admin/registration.h"

struct got {
	int status;
	char body[2048];
};

static void
done(void *arg, int status, const char *headers, const char *ctype, const char *body, size_t len)
{
	struct got *g = arg;

	g->status = status;
	snprintf(g->body, sizeof g->body, "%.*s", (int)len, body);
}

static void
call(struct node *n, enum api_channel ch, const char *m, const char *t, const char *body,
    struct got *g)
{
	struct api_request rq = { m, t, body, strlen(body), ch };

	memset(g, 0, sizeof *g);
	api_dispatch(node_api(n), &rq, done, g, NULL);
	assert_int_not_equal(g->status, 0);	/* answered at once */
}

static char dir[64];

static struct node *
start(struct event_base **base)
{
	struct shir_error err;
	struct conf *c;
	struct node *n;
	char confpath[128];
	FILE *f;

	snprintf(dir, sizeof dir, "/tmp/shir-admin-node-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(confpath, sizeof confpath, "%s/shird.conf", dir);
	f = fopen(confpath, "w");
	fprintf(f, "[node]\nstate_dir = %s/state\n", dir);
	fclose(f);
	assert_int_equal(conf_load_file(confpath, &c, &err), 0);
	*base = event_base_new();
	n = node_new(*base, c);
	assert_non_null(n);
	assert_int_equal(admin_node_start(n, &err), 0);
	assert_non_null(node_ext(n, NODE_EXT_CREDS));
	assert_null(node_ext(n, NODE_EXT_REGISTRATION));
	return n;
}

static void
stop(struct node *n, struct event_base *base)
{
	char cmd[128];

	admin_node_stop(n);
	node_free(n);
	event_base_free(base);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void
test_credentials_routes(void **state)
{
	struct event_base *base;
	struct node *n = start(&base);
	struct got g;
	char *sec = NULL;

	/* the credential store is the admin's: the relay (a Send key) may not
	 * set, list or delete credentials (docs/security-limits.md) */
	call(n, API_CH_RELAY, "PUT", "/v1/credentials/db", "{\"value\":\"pw-1\"}", &g);
	assert_int_equal(g.status, 403);
	assert_int_equal(credstore_get(node_ext(n, NODE_EXT_CREDS), "db", &sec, NULL), SHIR_ENOENT);
	call(n, API_CH_LOCAL, "PUT", "/v1/credentials/db", "{\"value\":\"pw-1\"}", &g);
	assert_int_equal(g.status, 200);
	assert_non_null(strstr(g.body, "\"version\":1"));
	assert_int_equal(credstore_get(node_ext(n, NODE_EXT_CREDS), "db", &sec, NULL), 0);
	assert_string_equal(sec, "pw-1");
	credstore_secret_free(sec);
	call(n, API_CH_LOCAL, "GET", "/v1/credentials", "", &g);
	assert_int_equal(g.status, 200);
	assert_non_null(strstr(g.body, "\"name\":\"db\""));
	assert_null(strstr(g.body, "pw-1"));
	call(n, API_CH_LOCAL, "PUT", "/v1/credentials/db", "not json", &g);
	assert_int_equal(g.status, 400);
	call(n, API_CH_LOCAL, "PUT", "/v1/credentials/db", "{\"value\":7}", &g);
	assert_int_equal(g.status, 400);
	call(n, API_CH_LOCAL, "PUT", "/v1/credentials/", "{\"value\":\"x\"}", &g);
	assert_int_equal(g.status, 400);
	call(n, API_CH_LOCAL, "GET", "/v1/credentials/db", "", &g);
	assert_int_equal(g.status, 405);	/* values are never read back */
	call(n, API_CH_RELAY, "GET", "/v1/credentials", "", &g);
	assert_int_equal(g.status, 403);
	call(n, API_CH_SELF_CONTAINED, "DELETE", "/v1/credentials/db", "", &g);
	assert_int_equal(g.status, 403);
	call(n, API_CH_LOCAL, "DELETE", "/v1/credentials/db", "", &g);
	assert_int_equal(g.status, 200);
	call(n, API_CH_LOCAL, "DELETE", "/v1/credentials/db", "", &g);
	assert_int_equal(g.status, 404);
	stop(n, base);
}

static void
test_registration_routes(void **state)
{
	struct event_base *base;
	struct node *n = start(&base);
	struct registration r = { "edge-1", "sales-ir", "wss://relay.example", "sales-ir",
	    "node-key1", "k3y", NULL, 1 };
	const struct registration *cur;
	struct shir_error err;
	struct got g;
	cJSON *o;
	char sd[96];

	call(n, API_CH_LOCAL, "GET", "/v1/node/registration", "", &g);
	assert_string_equal(g.body, "{\"registered\":false}");
	snprintf(sd, sizeof sd, "%s/state", dir);
	assert_int_equal(registration_save(sd, node_ext(n, NODE_EXT_CREDS), &r, &err), 0);
	/* only the control socket may make the node take it */
	call(n, API_CH_RELAY, "POST", "/v1/node/registration", "{}", &g);
	assert_int_equal(g.status, 403);
	assert_null(node_ext(n, NODE_EXT_REGISTRATION));
	call(n, API_CH_LOCAL, "POST", "/v1/node/registration", "{}", &g);
	assert_int_equal(g.status, 200);
	cur = node_ext(n, NODE_EXT_REGISTRATION);
	assert_non_null(cur);
	assert_string_equal(cur->key, "k3y");
	assert_ptr_equal(admin_node_registration(n), cur);
	call(n, API_CH_RELAY, "GET", "/v1/node/registration", "", &g);
	assert_int_equal(g.status, 403);
	call(n, API_CH_LOCAL, "GET", "/v1/node/registration", "", &g);
	o = cJSON_Parse(g.body);
	assert_string_equal(cJSON_GetObjectItem(o, "ir")->valuestring, "sales-ir");
	assert_null(strstr(g.body, "k3y"));
	cJSON_Delete(o);
	/* a status hook adds the registration and the store's version */
	o = node_status_json(n);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "registration"),
	    "registered")));
	assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(o, "credentialsVersion")), 1);
	cJSON_Delete(o);
	stop(n, base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_credentials_routes),
		cmocka_unit_test(test_registration_routes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
