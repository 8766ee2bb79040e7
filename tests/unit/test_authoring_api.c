/* Unit tests for the authoring dispatcher through the node's API router
 * (no sockets): routes, the self-contained channel's 501s, validation, and
 * that stopping answers every accepted request. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "node/api.h"
#include "node/authoring/authoring.h"
#include "node/conf.h"
#include "node/node.h"

static struct event_base *g_base;

struct answer {
	int calls, status;
	char code[64];
	char body[4096];
};

static void
on_done(void *arg, int status, const char *headers, const char *ctype, const char *body,
    size_t len)
{
	struct answer *a = arg;
	cJSON *o = cJSON_ParseWithLength(body, len);
	const char *c = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "error"),
	    "code"));

	a->calls++;
	a->status = status;
	snprintf(a->code, sizeof a->code, "%s", c ? c : "");
	snprintf(a->body, sizeof a->body, "%.*s", (int)len, body);
	cJSON_Delete(o);
	if (g_base)
		event_base_loopbreak(g_base);
}

static void
dispatch(struct node *n, const char *method, const char *target, const char *body,
    enum api_channel ch, struct answer *a)
{
	struct api_request rq = { method, target, body, strlen(body), ch };

	memset(a, 0, sizeof *a);
	api_dispatch(node_api(n), &rq, on_done, a, NULL);
}

static struct node *
mknode(struct event_base **base)
{
	struct conf *c = conf_new_defaults();
	struct shir_error err;
	struct node *n;

	evthread_use_pthreads();
	*base = event_base_new();
	c->concurrent_jobs = 1;
	n = node_new(*base, c);
	assert_non_null(n);
	assert_int_equal(authoring_start(n, &err), 0);
	return n;
}

static void
test_self_contained_501(void **state)
{
	struct event_base *base;
	struct node *n = mknode(&base);
	struct answer a;

	dispatch(n, "GET", "/v1/node/ip", "", API_CH_SELF_CONTAINED, &a);
	assert_int_equal(a.status, 501);
	assert_string_equal(a.code, "NotSupportedInSelfContainedMode");
	dispatch(n, "POST", "/v1/node/logs", "{}", API_CH_SELF_CONTAINED, &a);
	assert_int_equal(a.status, 501);
	dispatch(n, "GET", "/v1/node/ip", "", API_CH_RELAY, &a);
	assert_int_equal(a.status, 200);
	assert_non_null(strstr(a.body, "\"addresses\""));
	authoring_stop(n);
	node_free(n);
	event_base_free(base);
}

static void
test_validation_and_status(void **state)
{
	struct event_base *base;
	struct node *n = mknode(&base);
	struct answer a;
	cJSON *st;

	dispatch(n, "POST", "/v1/preview", "[1]", API_CH_LOCAL, &a);
	assert_int_equal(a.status, 400);
	assert_string_equal(a.code, "InvalidRequest");
	dispatch(n, "POST", "/v1/schema", "{\"linkedService\":{\"type\":\"Sqlite\"}}", API_CH_LOCAL, &a);
	assert_int_equal(a.status, 400);
	assert_non_null(strstr(a.body, "dataset is required"));
	dispatch(n, "POST", "/v1/testConnection", "{\"linkedService\":{\"type\":\"Db2\"}}",
	    API_CH_LOCAL, &a);
	assert_string_equal(a.code, "UnsupportedStoreType");
	st = node_status_json(n);
	assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(
	    cJSON_GetObjectItem(st, "concurrency"), "concurrentJobs")), 1);
	cJSON_Delete(st);
	authoring_stop(n);
	node_free(n);
	event_base_free(base);
}

static void
test_stop_answers_everything(void **state)
{
	struct event_base *base;
	struct node *n = mknode(&base);
	struct answer a[3];
	int i;

	/* accepted, never run by the loop: stop must answer each exactly once */
	for (i = 0; i < 3; i++)
		dispatch(n, "POST", "/v1/testConnection",
		    "{\"linkedService\":{\"type\":\"FileSystem\",\"properties\":{\"root\":\"/\"}}}",
		    API_CH_LOCAL, &a[i]);
	authoring_stop(n);
	for (i = 0; i < 3; i++) {
		assert_int_equal(a[i].calls, 1);
		/* either it ran (403: / is not an allowed folder) or it was stopped */
		assert_true((a[i].status == 403 && strcmp(a[i].code, "PathNotAllowed") == 0) ||
		    (a[i].status == 503 && strcmp(a[i].code, "ShuttingDown") == 0));
	}
	assert_int_equal(api_inflight(node_api(n)), 0);
	node_free(n);
	event_base_free(base);
}

static int resolver_calls;

static int
resolver(void *arg, const char *name, char **secret, struct shir_error *err)
{
	resolver_calls++;
	if (strcmp(name, "known") != 0)
		return SHIR_ENOENT;
	*secret = strdup("the-secret");
	return 0;
}

static void
test_credential_seam(void **state)
{
	struct event_base *base;
	struct node *n = mknode(&base);
	struct answer a;
	char req[512];

	authoring_set_credential_resolver(n, resolver, NULL);
	dispatch(n, "POST", "/v1/testConnection", "{\"linkedService\":{\"type\":\"PostgreSql\","
	    "\"properties\":{\"host\":\"h\",\"database\":\"d\",\"password\":{\"type\":"
	    "\"CredentialReference\",\"name\":\"unknown\"}}}}", API_CH_LOCAL, &a);
	assert_int_equal(a.status, 400);
	assert_string_equal(a.code, "CredentialNotFound");
	assert_non_null(strstr(a.body, "unknown"));
	/* a resolved reference reaches the store: here a closed port */
	snprintf(req, sizeof req, "{\"linkedService\":{\"type\":\"PostgreSql\",\"properties\":"
	    "{\"host\":\"127.0.0.1\",\"port\":1,\"database\":\"d\",\"sslMode\":\"disable\","
	    "\"password\":{\"type\":\"CredentialReference\",\"name\":\"known\"}}}}");
	g_base = base;
	((struct conf *)node_conf(n))->local_machine_access = true;
	dispatch(n, "POST", "/v1/testConnection", req, API_CH_LOCAL, &a);
	if (a.calls == 0)
		event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
	g_base = NULL;
	assert_int_equal(resolver_calls, 2);
	assert_int_equal(a.status, 422);
	assert_string_equal(a.code, "StoreUnreachable");
	assert_null(strstr(a.body, "the-secret"));
	authoring_stop(n);
	node_free(n);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_self_contained_501),
		cmocka_unit_test(test_validation_and_status),
		cmocka_unit_test(test_stop_answers_everything),
		cmocka_unit_test(test_credential_seam),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
