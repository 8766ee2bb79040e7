/* Unit tests for relay/sc_proto: the upgrade request's form, the relay's 101
 * and refusals, and every way a hostile or broken answer is refused. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "relay/sc_proto.h"

static int
parse(const char *s, struct sc_answer *a, struct shir_error *e)
{
	return sc_proto_parse_answer(s, strlen(s), a, e);
}

static void
test_request(void **st)
{
	struct sc_hello h = { "relay.test:443", "ir1", "SharedAccessSignature sr=x", "node-a", "id",
	    "1.0", 66 };
	char *r = sc_proto_request(&h);

	assert_non_null(r);
	assert_true(strncmp(r, "GET /$shir/v1/tunnel/ir1 HTTP/1.1\r\n", 35) == 0);
	assert_non_null(strstr(r, "\r\nUpgrade: reverse\r\n"));
	assert_non_null(strstr(r, "\r\nALPN: h2\r\n"));
	assert_non_null(strstr(r, "\r\nShir-Capacity: 66\r\n"));
	assert_true(strcmp(r + strlen(r) - 4, "\r\n\r\n") == 0);
	free(r);
	h.node_name = "bad\r\nX: y";
	assert_null(sc_proto_request(&h));
	h.node_name = "n";
	h.hc = "a?b";
	assert_null(sc_proto_request(&h));
}

static void
test_101(void **st)
{
	char buf[512];
	struct sc_answer a;
	struct shir_error e;
	int n = sc_proto_answer_101(buf, sizeof buf, "abc", 1), m;

	assert_true(n > 0);
	/* HTTP/2 bytes in the same read stay after the head */
	strcat(buf, "PRI");
	m = parse(buf, &a, &e);
	assert_int_equal(m, n);
	assert_int_equal(a.status, 101);
	assert_string_equal(a.conn_id, "abc");
	assert_int_equal(a.self_contained, 1);
	/* incomplete: more bytes needed */
	assert_int_equal(sc_proto_parse_answer(buf, 20, &a, &e), 0);
}

static void
test_refusals(void **st)
{
	struct sc_answer a;
	struct shir_error e;

	assert_true(parse("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n\r\n", &a, &e) > 0);
	assert_int_equal(a.status, 503);
	assert_int_equal(a.retry_after, 7);
	assert_string_equal(a.reason, "Service Unavailable");
	assert_true(parse("HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\n{}", &a, &e) > 0);
	assert_int_equal(a.status, 401);
}

static void
expect_bad(const char *s, const char *needle)
{
	struct sc_answer a;
	struct shir_error e;

	memset(&e, 0, sizeof e);
	assert_true(parse(s, &a, &e) < 0);
	if (strstr(e.msg, needle) == NULL)
		fail_msg("%s: got \"%s\"", needle, e.msg);
}

static void
test_hostile(void **st)
{
	char big[SC_PROTO_HEAD_MAX + 16];

	expect_bad("HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\nSelected-ALPN: h2\r\n\r\n",
	    "Upgrade: reverse");
	expect_bad("HTTP/1.1 101 Switching\r\nUpgrade: reverse\r\n\r\n", "Selected-ALPN");
	expect_bad("HTTP/1.1 101 Switching\r\nUpgrade: reverse\r\nSelected-ALPN: http/1.1\r\n\r\n",
	    "\"http/1.1\"");
	expect_bad("\x16\x03\x01garbage garbage\r\n\r\n", "status line");
	expect_bad("\x16\x03\x01garbage", "not a status line");
	expect_bad("HTTP/1.1 1x1 What\r\n\r\n", "status line");
	expect_bad("HTTP/1.1 101 OK\r\nno colon here\r\n\r\n", "header line");
	expect_bad("HTTP/1.1 101 OK\r\nA\rB: c\r\n\r\n", "bare CR");
	memset(big, 'a', sizeof big);
	memcpy(big, "HTTP/1.1 101 OK\r\nX: ", 20);
	big[sizeof big - 1] = '\0';
	expect_bad(big, "no end of head");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request),
		cmocka_unit_test(test_101),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_hostile),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
