/* Unit tests for relay/hc_msg: decoding what real clients send (hyco-https
 * numbers and lower-case names, the article's string statusCode), the §3.4
 * inline vs address-only encoding rule, header merging (§2.6) and the
 * sb-hc-* query stripping rule with the cases of the .NET cloud test (§2.3). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "relay/hc_msg.h"
#include "common/jsonutil.h"

static int
dec(const char *j, struct hc_msg *m)
{
	struct shir_error e;

	return hc_msg_decode(j, strlen(j), m, &e);
}

/* Connection options (RFC 7230 §6.1) and field syntax (§3.2). */
static void
test_header_rules(void **state)
{
	struct hc_headers h = { 0 };

	assert_true(hc_is_hop_header("proxy-authorization"));
	assert_true(hc_is_hop_header("Proxy-Authenticate"));
	assert_true(hc_list_has_token("close, X-Secret", "x-secret"));
	assert_true(hc_list_has_token(" ,X-A ,\tX-B\t", "X-B"));
	assert_false(hc_list_has_token("X-Secrets", "X-Secret"));
	assert_false(hc_list_has_token("", "X"));
	assert_false(hc_list_has_token(NULL, "X"));
	hc_headers_add(&h, "X-Private", "1");
	hc_headers_add(&h, "connection", "keep-alive, X-Private");
	hc_headers_add(&h, "Connection", "X-Other");
	assert_true(hc_header_is_connection_option(&h, "x-private"));
	assert_true(hc_header_is_connection_option(&h, "X-Other"));
	assert_false(hc_header_is_connection_option(&h, "X-Public"));
	hc_headers_clear(&h);
	assert_false(hc_header_is_connection_option(&h, "X-Private"));

	assert_true(hc_header_name_ok("X-Custom_1.a~!#$%&'*+^`|"));
	assert_false(hc_header_name_ok(""));
	assert_false(hc_header_name_ok("X Space"));
	assert_false(hc_header_name_ok("X:Colon"));
	assert_false(hc_header_name_ok("X\r\nInjected"));
	assert_false(hc_header_name_ok("X(paren)"));
	assert_false(hc_header_name_ok("X\xc3\xa9"));
	assert_true(hc_header_value_ok(""));
	assert_true(hc_header_value_ok("a b\tc \xc3\xa9 \"q\""));
	assert_false(hc_header_value_ok("a\r\nX-Injected: 1"));
	assert_false(hc_header_value_ok("a\nb"));
	assert_false(hc_header_value_ok("a\rb"));
	assert_false(hc_header_value_ok("a\x01"));
	assert_false(hc_header_value_ok("a\x7f"));
}

/* A \u0000 in a JSON string is not cut silently (cJSON would end the C
 * string there): it arrives as \x01, which the header rules refuse. An
 * escaped backslash before "u0000" stays text. */
static void
test_decode_nul(void **state)
{
	static const char j[] = "{\"response\":{\"requestId\":\"r\\u0000x\",\"statusCode\":200,"
	    "\"responseHeaders\":{\"X-Nul\":\"ok\\u0000\\r\\nX-Evil: 1\",\"X-Text\":\"a\\\\u0000\","
	    "\"X-Nul\\u0000Name\":\"v\"},\"body\":false}}";
	struct hc_msg m;
	struct shir_error e;
	const char *v;
	size_t i;

	assert_int_equal(hc_msg_decode(j, strlen(j), &m, &e), 0);
	assert_string_equal(m.response.request_id, "r\x01x");
	v = hc_headers_get(&m.response.headers, "X-Nul");
	assert_non_null(v);
	assert_string_equal(v, "ok\x01\r\nX-Evil: 1");
	assert_false(hc_header_value_ok(v));
	assert_string_equal(hc_headers_get(&m.response.headers, "X-Text"), "a\\u0000");
	for (i = 0; i < m.response.headers.n; i++)
		if (strncmp(m.response.headers.v[i].name, "X-Nul\x01", 6) == 0)
			break;
	assert_true(i < m.response.headers.n);
	assert_false(hc_header_name_ok(m.response.headers.v[i].name));
	hc_msg_clear(&m);
}

static void
test_decode_response(void **state)
{
	struct hc_msg m;

	assert_int_equal(dec("{\"response\":{\"requestId\":\"r1\",\"statusCode\":201,"
	    "\"statusDescription\":\"Made It\",\"responseHeaders\":{\"content-type\":\"text/plain\"},"
	    "\"body\":true}}", &m), 0);
	assert_int_equal(m.type, HC_MSG_RESPONSE);
	assert_string_equal(m.response.request_id, "r1");
	assert_int_equal(m.response.status, 201);
	assert_string_equal(m.response.status_description, "Made It");
	assert_string_equal(hc_headers_get(&m.response.headers, "Content-Type"), "text/plain");
	assert_true(m.response.body);
	hc_msg_clear(&m);
	assert_int_equal(dec("{\"response\":{\"requestId\":\"r\",\"statusCode\":\"200\",\"body\":false}}",
	    &m), 0);
	assert_int_equal(m.response.status, 200);
	assert_null(m.response.status_description);
	hc_msg_clear(&m);
	assert_int_equal(dec("{\"response\":{\"requestId\":\"r\",\"statusCode\":\"2x0\"}}", &m),
	    SHIR_EPROTO);
	assert_int_equal(dec("{\"response\":{\"requestId\":\"r\",\"statusCode\":99}}", &m), SHIR_EPROTO);
	assert_int_equal(dec("{\"response\":{\"statusCode\":200}}", &m), SHIR_EPROTO);
	assert_int_equal(dec("{\"response\":{\"requestId\":\"r\",\"statusCode\":200,"
	    "\"responseHeaders\":{\"a\":[1]}}}", &m), SHIR_EPROTO);
	assert_int_equal(dec("not json", &m), SHIR_EPROTO);
	assert_int_equal(dec("[1]", &m), SHIR_EPROTO);
	assert_int_equal(dec("{\"injectFault\":{}}", &m), 0);
	assert_int_equal(m.type, HC_MSG_UNKNOWN);
	hc_msg_clear(&m);
}

static void
test_decode_renew_accept_request(void **state)
{
	struct hc_msg m;

	assert_int_equal(dec("{\"renewToken\":{\"token\":\"SharedAccessSignature sr=a&sig=b\"}}", &m), 0);
	assert_int_equal(m.type, HC_MSG_RENEW);
	assert_string_equal(m.renew_token, "SharedAccessSignature sr=a&sig=b");
	hc_msg_clear(&m);
	/* shir-relay's extension (issue 18): an inline request whose sender left */
	assert_int_equal(dec("{\"cancel\":{\"id\":\"r-1\",\"reason\":\"the sender went away\"}}", &m), 0);
	assert_int_equal(m.type, HC_MSG_CANCEL);
	assert_string_equal(m.cancel_id, "r-1");
	hc_msg_clear(&m);
	assert_int_equal(dec("{\"cancel\":\"r-1\"}", &m), SHIR_EPROTO);
	/* shir's sync envelope: the sender's Inactive mark, the only field read */
	assert_int_equal(dec("{\"shirSync\":{\"v\":1,\"state\":\"Inactive\",\"box\":\"x\"}}", &m), 0);
	assert_int_equal(m.type, HC_MSG_SYNC);
	assert_true(m.sync_inactive);
	hc_msg_clear(&m);
	assert_int_equal(dec("{\"shirSync\":{\"v\":1,\"box\":\"x\"}}", &m), 0);
	assert_false(m.sync_inactive);
	hc_msg_clear(&m);
	assert_int_equal(dec("{\"shirSync\":{\"state\":7}}", &m), 0);
	assert_false(m.sync_inactive);
	hc_msg_clear(&m);
	assert_int_equal(dec("{\"cancel\":{\"id\":7}}", &m), SHIR_EPROTO);
	assert_int_equal(dec("{\"accept\":{\"address\":\"wss://h/$hc/x?sb-hc-action=accept&sb-hc-id=1\","
	    "\"id\":\"1\",\"connectHeaders\":{\"Sec-WebSocket-Key\":\"k\"},"
	    "\"remoteEndpoint\":{\"address\":\"1.2.3.4\",\"port\":5}}}", &m), 0);
	assert_int_equal(m.type, HC_MSG_ACCEPT);
	assert_string_equal(hc_headers_get(&m.accept.connect_headers, "sec-websocket-key"), "k");
	assert_int_equal(m.accept.remote.port, 5);
	hc_msg_clear(&m);
	assert_int_equal(dec("{\"request\":{\"address\":\"a\",\"id\":\"i\"}}", &m), 0);
	assert_false(hc_request_is_inline(&m.request));
	assert_false(m.request.has_body);
	hc_msg_clear(&m);
	assert_int_equal(dec("{\"request\":{\"address\":\"a\",\"id\":\"i\",\"method\":\"GET\","
	    "\"requestTarget\":\"/x\",\"body\":false}}", &m), 0);
	assert_true(hc_request_is_inline(&m.request));
	assert_true(m.request.has_body);
	hc_msg_clear(&m);
}

static void
test_encode_request_rule(void **state)
{
	struct hc_request r = { 0 };
	struct hc_msg m;
	char *j;

	r.address = "ws://127.0.0.1:1/$hc/x?sb-hc-action=request&sb-hc-id=abc";
	r.id = "abc";
	j = hc_msg_encode_request(&r);
	assert_string_equal(j, "{\"request\":{\"address\":\"ws://127.0.0.1:1/$hc/x?sb-hc-action=request"
	    "&sb-hc-id=abc\",\"id\":\"abc\"}}");
	assert_null(strstr(j, "method"));
	assert_null(strstr(j, "body"));
	free(j);
	r.method = "POST";
	r.request_target = "/x/y?a=1";
	r.body = false;
	r.remote.set = true;
	r.remote.address = "127.0.0.1";
	r.remote.port = 4000;
	hc_headers_add(&r.headers, "X-A", "1");
	hc_headers_add(&r.headers, "x-a", "2");
	hc_headers_add(&r.headers, "Cookie", "a=1");
	hc_headers_add(&r.headers, "cookie", "b=2");
	j = hc_msg_encode_request(&r);
	assert_non_null(strstr(j, "\"method\":\"POST\""));
	assert_non_null(strstr(j, "\"body\":false"));
	assert_non_null(strstr(j, "\"X-A\":\"1, 2\""));
	assert_non_null(strstr(j, "\"Cookie\":\"a=1; b=2\""));
	assert_non_null(strstr(j, "\"remoteEndpoint\":{\"address\":\"127.0.0.1\",\"port\":4000}"));
	assert_int_equal(dec(j, &m), 0);
	assert_string_equal(m.request.request_target, "/x/y?a=1");
	hc_msg_clear(&m);
	free(j);
	hc_headers_clear(&r.headers);
}

static void
test_encode_others(void **state)
{
	struct hc_response rs = { 0 };
	struct hc_accept a = { 0 };
	char *j;

	rs.request_id = "r";
	rs.status = 504;
	rs.body = true;
	j = hc_msg_encode_response(&rs);
	assert_string_equal(j, "{\"response\":{\"requestId\":\"r\",\"statusCode\":504,"
	    "\"responseHeaders\":{},\"body\":true}}");
	free(j);
	a.address = "x";
	a.id = "i";
	j = hc_msg_encode_accept(&a);
	assert_string_equal(j, "{\"accept\":{\"address\":\"x\",\"id\":\"i\",\"connectHeaders\":{}}}");
	free(j);
	j = hc_msg_encode_renew("t\"q");
	assert_string_equal(j, "{\"renewToken\":{\"token\":\"t\\\"q\"}}");
	free(j);
}

static void
strip(const char *in, const char *want)
{
	char *s = hc_strip_query(in);

	if (strcmp(s, want) != 0)
		fail_msg("strip(%s) = [%s], want [%s]", in, s, want);
	free(s);
}

static void
test_strip_query(void **state)
{
	/* HybridRequestTests.cs:568-603 */
	strip("sb-hc-action=connect", "");
	strip("sb-hc-id=1&sb-hc-foo=bar", "");
	strip("&&&", "&&&");
	strip("a=1&a=2&", "a=1&a=2&");
	strip("&foo=bar", "&foo=bar");
	strip("sb-hc-undefined", "sb-hc-undefined");
	strip("x=1&sb-hc-id=zzz&y=2", "x=1&y=2");
	strip("foo=bar&sb-hc-action=connect&sb-hc-id=my-trace-id", "foo=bar");
	strip("SB-HC-TOKEN=abc&q", "q");
	strip("sb-hc-token=a%20b&sb-hc-undefined&z=", "sb-hc-undefined&z=");
	strip("", "");
}

static void
test_query_get(void **state)
{
	char *v = NULL;

	assert_int_equal(hc_query_get("a=1&sb-hc-action=listen&b", "sb-hc-action", &v), 0);
	assert_string_equal(v, "listen");
	free(v);
	assert_int_equal(hc_query_get("t=a+b%2B", "t", &v), 0);
	assert_string_equal(v, "a b+");
	free(v);
	assert_int_equal(hc_query_get("b", "b", &v), 0);
	assert_string_equal(v, "");
	free(v);
	assert_int_equal(hc_query_get("ab=1", "a", &v), SHIR_ENOENT);
	assert_int_equal(hc_query_get("a=%G1", "a", &v), SHIR_EINVAL);
}

static void
test_headers(void **state)
{
	struct hc_headers h = { 0 };

	hc_headers_add(&h, "Accept", "a");
	hc_headers_add(&h, "ACCEPT", "b");
	assert_int_equal(h.n, 1);
	assert_string_equal(hc_headers_get(&h, "accept"), "a, b");
	hc_headers_remove(&h, "accept");
	assert_int_equal(h.n, 0);
	hc_headers_clear(&h);
	assert_true(hc_is_hop_header("transfer-encoding"));
	assert_true(hc_is_hop_header("Host"));
	assert_false(hc_is_hop_header("Via"));
	assert_false(hc_is_hop_header("Authorization"));
}

/* Messages larger than the scratch arena (64 KiB) spill to malloc and still
 * round-trip; small ones after them reuse the arena. */
static void
test_arena_spill(void **state)
{
	struct hc_request r = { 0 };
	struct hc_msg m;
	struct shir_error e;
	char name[32], value[64], *j;
	int i, round;

	for (round = 0; round < 3; round++) {
		int n = round == 1 ? 2000 : 3;

		memset(&r, 0, sizeof r);
		r.id = (char *)"id-1";
		r.method = (char *)"GET";
		r.request_target = (char *)"/hc/x";
		for (i = 0; i < n; i++) {
			snprintf(name, sizeof name, "X-H%d", i);
			snprintf(value, sizeof value, "value-%d-abcdefghijklmnopqrstuvwxyz", i);
			assert_int_equal(hc_headers_add(&r.headers, name, value), 0);
		}
		j = hc_msg_encode_request(&r);
		assert_non_null(j);
		assert_true(round != 1 || strlen(j) > 64 * 1024);
		assert_int_equal(hc_msg_decode(j, strlen(j), &m, &e), 0);
		assert_int_equal(m.type, HC_MSG_REQUEST);
		assert_int_equal(m.request.headers.n, (size_t)n);
		assert_string_equal(hc_headers_get(&m.request.headers, "X-H2"),
		    "value-2-abcdefghijklmnopqrstuvwxyz");
		hc_msg_clear(&m);
		free(j);
		hc_headers_clear(&r.headers);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_rules),
		cmocka_unit_test(test_decode_nul),
		cmocka_unit_test(test_decode_response),
		cmocka_unit_test(test_decode_renew_accept_request),
		cmocka_unit_test(test_encode_request_rule),
		cmocka_unit_test(test_encode_others),
		cmocka_unit_test(test_strip_query),
		cmocka_unit_test(test_query_get),
		cmocka_unit_test(test_headers),
		cmocka_unit_test(test_arena_spill),
	};

	json_arena_install();	/* as shird and shir-relay run */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
