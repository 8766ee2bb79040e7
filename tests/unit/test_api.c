/* Unit tests for the API router: routing, 404/405, draining, cancel. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/api.h"
#include "common/shir_err.h"

struct got {
	int calls, status;
	char body[512];
	char headers[256];
};

static void
done(void *arg, int status, const char *headers, const char *ctype, const char *body, size_t len)
{
	struct got *g = arg;

	g->calls++;
	g->status = status;
	snprintf(g->body, sizeof g->body, "%.*s", (int)len, body);
	snprintf(g->headers, sizeof g->headers, "%s", headers);
}

static struct api_reply *held;

static void
h_echo(struct api_reply *r, const struct api_request *rq, void *ud)
{
	api_reply_header(r, "X-Path", api_reply_path(r));
	api_reply_send(r, 200, "text/plain", rq->body, rq->body_len);
}

static void
h_hold(struct api_reply *r, const struct api_request *rq, void *ud)
{
	held = r;
}

static void
dispatch(struct api *api, const char *m, const char *t, const char *body, struct got *g,
    struct api_reply **h)
{
	struct api_request rq = { m, t, body, strlen(body), API_CH_LOCAL };

	memset(g, 0, sizeof *g);
	api_dispatch(api, &rq, done, g, h);
}

static void
test_routes(void **state)
{
	struct api *api = api_new();
	struct got g;

	assert_int_equal(api_route(api, "POST", "/v1/echo", API_FROM_ANY, h_echo, NULL), 0);
	assert_int_equal(api_route(api, NULL, "/v1/creds/*", API_FROM_LOCAL, h_echo, NULL), 0);
	dispatch(api, "POST", "/v1/echo?x=1", "hello", &g, NULL);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.status, 200);
	assert_string_equal(g.body, "hello");
	assert_string_equal(g.headers, "X-Path: /v1/echo\r\n");
	dispatch(api, "GET", "/v1/echo", "", &g, NULL);
	assert_int_equal(g.status, 405);
	dispatch(api, "GET", "/v1/nope", "", &g, NULL);
	assert_int_equal(g.status, 404);
	assert_non_null(strstr(g.body, "\"code\":\"NotFound\""));
	dispatch(api, "DELETE", "/v1/creds/abc", "", &g, NULL);
	assert_int_equal(g.status, 200);
	assert_int_equal(api_inflight(api), 0);
	api_free(api);
}

static void
dispatch_ch(struct api *api, enum api_channel ch, const char *m, const char *t, struct got *g)
{
	struct api_request rq = { m, t, "", 0, ch };

	memset(g, 0, sizeof *g);
	api_dispatch(api, &rq, done, g, NULL);
}

/* Each route answers only the channels it declares; the others get 403
 * before the handler runs, and the handler never sees them. */
static void
test_channels(void **state)
{
	struct api *api = api_new();
	const char *m, *p;
	unsigned chs;
	struct got g;

	assert_int_equal(api_route(api, "GET", "/v1/admin", 0, h_echo, NULL), SHIR_EINVAL);
	assert_int_equal(api_route(api, "GET", "/v1/admin", 1u << 7, h_echo, NULL), SHIR_EINVAL);
	assert_int_equal(api_route(api, "GET", "/v1/admin", API_FROM_LOCAL, h_echo, NULL), 0);
	assert_int_equal(api_route(api, "GET", "/v1/author", API_FROM_LOCAL | API_FROM_RELAY, h_echo,
	    NULL), 0);
	assert_int_equal(api_route_info(api, 0, &m, &p, &chs), 0);
	assert_string_equal(p, "/v1/admin");
	assert_int_equal(chs, API_FROM_LOCAL);
	assert_int_equal(api_route_info(api, 2, &m, &p, &chs), -1);

	dispatch_ch(api, API_CH_LOCAL, "GET", "/v1/admin", &g);
	assert_int_equal(g.status, 200);
	dispatch_ch(api, API_CH_RELAY, "GET", "/v1/admin?x", &g);
	assert_int_equal(g.status, 403);
	assert_null(strstr(g.headers, "X-Path"));	/* the handler did not run */
	assert_non_null(strstr(g.body, "\"code\":\"Forbidden\""));
	assert_non_null(strstr(g.body, "control socket only"));
	assert_non_null(strstr(g.body, "relay"));
	dispatch_ch(api, API_CH_SELF_CONTAINED, "GET", "/v1/admin", &g);
	assert_int_equal(g.status, 403);
	dispatch_ch(api, API_CH_RELAY, "GET", "/v1/author", &g);
	assert_int_equal(g.status, 200);
	dispatch_ch(api, API_CH_SELF_CONTAINED, "GET", "/v1/author", &g);
	assert_int_equal(g.status, 403);
	assert_non_null(strstr(g.body, "self-contained"));
	/* a wrong method is still 405, an unknown path 404, from any channel */
	dispatch_ch(api, API_CH_RELAY, "POST", "/v1/admin", &g);
	assert_int_equal(g.status, 405);
	dispatch_ch(api, API_CH_RELAY, "GET", "/v1/none", &g);
	assert_int_equal(g.status, 404);
	assert_int_equal(api_inflight(api), 0);
	api_free(api);
}

static void
test_async_cancel_and_drain(void **state)
{
	struct api *api = api_new();
	struct api_reply *h = NULL;
	struct got g;

	api_route(api, "GET", "/v1/slow", API_FROM_ANY, h_hold, NULL);
	dispatch(api, "GET", "/v1/slow", "", &g, &h);
	assert_non_null(h);
	assert_int_equal(g.calls, 0);
	assert_int_equal(api_inflight(api), 1);
	api_reply_send(held, 200, "text/plain", "late", 4);
	assert_null(h);
	assert_int_equal(g.calls, 1);

	dispatch(api, "GET", "/v1/slow", "", &g, &h);
	api_reply_cancel(h);
	api_reply_send(held, 200, "text/plain", "late", 4);
	assert_int_equal(g.calls, 0);
	assert_int_equal(api_inflight(api), 0);

	api_set_draining(api, 1);
	dispatch(api, "GET", "/v1/slow", "", &g, NULL);
	assert_int_equal(g.status, 503);
	assert_non_null(strstr(g.body, "ShuttingDown"));
	api_free(api);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_channels),
		cmocka_unit_test(test_async_cancel_and_drain),
	};

	return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}
