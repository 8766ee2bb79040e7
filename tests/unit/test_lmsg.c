/* Unit tests for the listener's control-message handling (lmsg), channel
 * specs (lspec: key files, URLs) and the dialer's URL and pin checks. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "node/conf.h"
#include "node/listener/lmsg.h"
#include "relay/hcdial.h"
#include "node/listener/lspec.h"
#include "relay/hc_msg.h"

static bool
has_fw(void *arg, const char *name)
{
	return strcmp(name, "echo") == 0;
}

static const struct lmsg_policy pol_ctl = { "myhc", true, has_fw, NULL };
static const struct lmsg_policy pol_rdv = { "myhc", false, has_fw, NULL };

static void
handle_ok(const char *text, const struct lmsg_policy *p, struct lmsg_msg *m)
{
	struct shir_error err;

	if (lmsg_handle(text, strlen(text), p, m, &err) != 0)
		fail_msg("%s: %s", text, err.msg);
}

static void
test_accept_decisions(void **state)
{
	struct lmsg_msg m;

	handle_ok("{\"accept\":{\"address\":\"ws://127.0.0.1:9/$hc/myhc/tcp/echo?sb-hc-action=accept"
	    "&sb-hc-id=abc\",\"id\":\"abc\",\"connectHeaders\":{\"Sec-WebSocket-Key\":\"k\","
	    "\"Sec-WebSocket-Protocol\":\"p1, p2\"}}}", &pol_ctl, &m);
	assert_int_equal(m.kind, LMSG_TUNNEL);
	assert_string_equal(m.forward, "echo");
	assert_string_equal(m.protocol, "p1");
	assert_string_equal(m.id, "abc");
	lmsg_msg_clear(&m);

	handle_ok("{\"accept\":{\"address\":\"ws://h/$hc/MyHc/tcp/nope?sb-hc-action=accept\","
	    "\"id\":\"x\",\"connectHeaders\":{}}}", &pol_ctl, &m);
	assert_int_equal(m.kind, LMSG_REJECT);
	assert_int_equal(m.code, 404);
	assert_non_null(strstr(m.desc, "no forward named nope"));
	assert_null(m.protocol);
	lmsg_msg_clear(&m);

	handle_ok("{\"accept\":{\"address\":\"ws://h/$hc/myhc/chat?sb-hc-action=accept\","
	    "\"id\":\"x\",\"connectHeaders\":{}}}", &pol_ctl, &m);
	assert_int_equal(m.kind, LMSG_REJECT);
	assert_int_equal(m.code, 403);
	assert_non_null(strstr(m.desc, "/myhc/tcp/NAME"));
	lmsg_msg_clear(&m);

	handle_ok("{\"accept\":{\"address\":\"ws://h/$hc/myhc/tcp/echo/more\",\"id\":\"x\"}}",
	    &pol_ctl, &m);
	assert_int_equal(m.kind, LMSG_REJECT);
	assert_int_equal(m.code, 403);
	lmsg_msg_clear(&m);

	/* a subprotocol with CR/LF (or another control character) is refused with
	 * 400 and never becomes a header of the rendezvous request */
	handle_ok("{\"accept\":{\"address\":\"ws://127.0.0.1:9/$hc/myhc/tcp/echo?sb-hc-action=accept"
	    "&sb-hc-id=abc\",\"id\":\"abc\",\"connectHeaders\":{\"Sec-WebSocket-Key\":\"k\","
	    "\"Sec-WebSocket-Protocol\":\"p1\\r\\nX-Injected: 1\"}}}", &pol_ctl, &m);
	assert_int_equal(m.kind, LMSG_REJECT);
	assert_int_equal(m.code, 400);
	assert_null(m.protocol);
	assert_non_null(strstr(m.desc, "Sec-WebSocket-Protocol"));
	assert_null(strpbrk(m.desc, "\r\n"));
	lmsg_msg_clear(&m);
	handle_ok("{\"accept\":{\"address\":\"ws://127.0.0.1:9/$hc/myhc/tcp/echo\",\"id\":\"a\","
	    "\"connectHeaders\":{\"Sec-WebSocket-Protocol\":\"p1\\n\"}}}", &pol_ctl, &m);
	assert_int_equal(m.kind, LMSG_REJECT);
	assert_int_equal(m.code, 400);
	lmsg_msg_clear(&m);
	handle_ok("{\"accept\":{\"address\":\"ws://127.0.0.1:9/$hc/myhc/tcp/echo\",\"id\":\"a\","
	    "\"connectHeaders\":{\"Sec-WebSocket-Protocol\":\"p(1), p2\"}}}", &pol_ctl, &m);
	assert_int_equal(m.kind, LMSG_REJECT);
	assert_int_equal(m.code, 400);
	assert_null(m.protocol);
	lmsg_msg_clear(&m);
	/* an address with CR/LF or a space cannot be dialled (nor rejected): an error */
	{
		struct shir_error err;
		static const char *const bad[] = {
			"{\"accept\":{\"address\":\"ws://127.0.0.1:9/$hc/myhc/tcp/echo?a\\r\\nX: 1\","
			    "\"id\":\"a\",\"connectHeaders\":{}}}",
			"{\"accept\":{\"address\":\"ws://127.0.0.1:9/$hc/myhc/tcp/echo HTTP/1.0\","
			    "\"id\":\"a\",\"connectHeaders\":{}}}",
			"{\"request\":{\"address\":\"ws://127.0.0.1:9/$hc/myhc?a\\nX: 1\",\"id\":\"r\"}}",
		};
		size_t i;

		for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
			assert_int_equal(lmsg_handle(bad[i], strlen(bad[i]), &pol_ctl, &m, &err),
			    SHIR_EPROTO);
			assert_int_equal(m.kind, LMSG_IGNORE);
		}
	}

	/* accept on a rendezvous: ignored */
	handle_ok("{\"accept\":{\"address\":\"ws://h/$hc/myhc/tcp/echo\",\"id\":\"x\"}}", &pol_rdv,
	    &m);
	assert_int_equal(m.kind, LMSG_IGNORE);
	lmsg_msg_clear(&m);
}

static void
test_request_decisions(void **state)
{
	struct lmsg_msg m;
	struct shir_error err;
	const char *addr_only = "{\"request\":{\"address\":\"ws://h/$hc/myhc?sb-hc-action=request"
	    "&sb-hc-id=1\",\"id\":\"1\"}}";

	handle_ok("{\"request\":{\"address\":\"ws://h/$hc/myhc?sb-hc-action=request\",\"id\":\"r1\","
	    "\"requestTarget\":\"/myhc/v1/node?x=1\",\"method\":\"GET\",\"requestHeaders\":{},"
	    "\"body\":false}}", &pol_ctl, &m);
	assert_int_equal(m.kind, LMSG_REQUEST);
	assert_string_equal(m.target, "/v1/node?x=1");
	assert_string_equal(m.method, "GET");
	assert_string_equal(m.id, "r1");
	assert_false(m.body);
	lmsg_msg_clear(&m);

	handle_ok("{\"request\":{\"id\":\"r2\",\"requestTarget\":\"/MYHC\",\"method\":\"POST\","
	    "\"body\":true}}", &pol_rdv, &m);
	assert_int_equal(m.kind, LMSG_REQUEST);
	assert_string_equal(m.target, "/");
	assert_true(m.body);
	assert_null(m.address);
	lmsg_msg_clear(&m);

	handle_ok(addr_only, &pol_ctl, &m);
	assert_int_equal(m.kind, LMSG_RENDEZVOUS);
	assert_non_null(strstr(m.address, "sb-hc-action=request"));
	lmsg_msg_clear(&m);

	/* address-only on a rendezvous makes no sense */
	assert_int_not_equal(lmsg_handle(addr_only, strlen(addr_only), &pol_rdv, &m, &err), 0);

	handle_ok("{\"renewToken\":{\"token\":\"x\"}}", &pol_ctl, &m);
	assert_int_equal(m.kind, LMSG_IGNORE);
	lmsg_msg_clear(&m);
	handle_ok("{\"somethingNew\":{}}", &pol_ctl, &m);
	assert_int_equal(m.kind, LMSG_IGNORE);
	lmsg_msg_clear(&m);
	assert_int_not_equal(lmsg_handle("{\"request\":", 11, &pol_ctl, &m, &err), 0);
	assert_int_not_equal(lmsg_handle("[1,2]", 5, &pol_ctl, &m, &err), 0);
}

/* Every prefix of a valid message is handled without crashing, and only the
 * whole message decides the same as before. */
static void
test_every_split(void **state)
{
	const char *msgs[] = {
		"{\"request\":{\"address\":\"ws://h/$hc/myhc?sb-hc-action=request\",\"id\":\"r1\","
		"\"requestTarget\":\"/myhc/v1/node\",\"method\":\"GET\",\"requestHeaders\":"
		"{\"A\":\"b\"},\"body\":true}}",
		"{\"accept\":{\"address\":\"ws://h/$hc/myhc/tcp/echo?x\",\"id\":\"a\","
		"\"connectHeaders\":{\"Sec-WebSocket-Protocol\":\"chat\"},\"remoteEndpoint\":"
		"{\"address\":\"1.2.3.4\",\"port\":5}}}",
	};
	size_t i, k;

	for (i = 0; i < 2; i++) {
		size_t len = strlen(msgs[i]);

		for (k = 0; k <= len; k++) {
			struct lmsg_msg m;
			struct shir_error err;
			char *copy = malloc(k + 1);
			int rc;

			memcpy(copy, msgs[i], k);
			copy[k] = '\0';
			rc = lmsg_handle(copy, k, &pol_ctl, &m, &err);
			if (k < len)
				assert_int_not_equal(rc, 0);
			else
				assert_int_equal(rc, 0);
			if (rc == 0)
				lmsg_msg_clear(&m);
			free(copy);
		}
	}
}

static void
test_response_json(void **state)
{
	char *s = lmsg_response_json("r1", 201, "Location: /x\r\nConnection: close\r\nX-A: b\r\n",
	    "application/json", true);
	struct hc_msg m;
	struct shir_error err;

	assert_non_null(s);
	assert_int_equal(hc_msg_decode(s, strlen(s), &m, &err), 0);
	assert_int_equal(m.type, HC_MSG_RESPONSE);
	assert_string_equal(m.response.request_id, "r1");
	assert_int_equal(m.response.status, 201);
	assert_string_equal(m.response.status_description, "Created");
	assert_true(m.response.body);
	assert_string_equal(hc_headers_get(&m.response.headers, "content-type"), "application/json");
	assert_string_equal(hc_headers_get(&m.response.headers, "Location"), "/x");
	assert_string_equal(hc_headers_get(&m.response.headers, "X-A"), "b");
	assert_null(hc_headers_get(&m.response.headers, "Connection"));
	hc_msg_clear(&m);
	free(s);
	s = lmsg_renew_json("SharedAccessSignature sr=a&sig=b&se=1&skn=k");
	assert_int_equal(hc_msg_decode(s, strlen(s), &m, &err), 0);
	assert_int_equal(m.type, HC_MSG_RENEW);
	assert_string_equal(m.renew_token, "SharedAccessSignature sr=a&sig=b&se=1&skn=k");
	hc_msg_clear(&m);
	free(s);
}

static void
test_paths(void **state)
{
	char out[256];

	assert_int_equal(lmsg_strip_hc("/myhc/v1/node", "myhc", out, sizeof out), 0);
	assert_string_equal(out, "/v1/node");
	assert_int_equal(lmsg_strip_hc("/myhc?x=1", "myhc", out, sizeof out), 0);
	assert_string_equal(out, "/?x=1");
	assert_int_equal(lmsg_strip_hc("/myhcx/v1", "myhc", out, sizeof out), 0);
	assert_string_equal(out, "/myhcx/v1");
	assert_int_equal(lmsg_strip_hc("/a/b/v1/node", "a/b", out, sizeof out), 0);
	assert_string_equal(out, "/v1/node");
	assert_int_equal(lmsg_strip_hc("/myhc/v1", "myhc", out, 3), SHIR_ETOOBIG);
	assert_int_equal(lmsg_suffix("wss://r:443/$hc/myhc/tcp/db?sb-hc-action=accept", "myhc", out,
	    sizeof out), 0);
	assert_string_equal(out, "/tcp/db");
	assert_int_not_equal(lmsg_suffix("wss://r/$hc/other/tcp/db", "myhc", out, sizeof out), 0);
	assert_int_equal(lmsg_reject_url("ws://r/$hc/h?sb-hc-action=accept&sb-hc-id=1", 404,
	    "no forward named x", out, sizeof out), 0);
	assert_string_equal(out, "ws://r/$hc/h?sb-hc-action=accept&sb-hc-id=1&sb-hc-statusCode=404"
	    "&sb-hc-statusDescription=no%20forward%20named%20x");
}

static void
test_urls(void **state)
{
	struct hcdial_url u;
	struct shir_error err;

	assert_int_equal(hcdial_parse_url("ws://127.0.0.1:9300", 0, &u, &err), 0);
	assert_false(u.tls);
	assert_string_equal(u.host, "127.0.0.1");
	assert_int_equal(u.port, 9300);
	assert_string_equal(u.target, "/");
	assert_int_equal(hcdial_parse_url("wss://relay.example/$hc/x?sb-hc-action=accept&a=1", 0,
	    &u, &err), 0);
	assert_true(u.tls);
	assert_int_equal(u.port, 443);
	assert_string_equal(u.target, "/$hc/x?sb-hc-action=accept&a=1");
	assert_int_equal(hcdial_parse_url("ws://[::1]:80/a", 0, &u, &err), 0);
	assert_string_equal(u.host, "::1");
	assert_int_equal(hcdial_parse_url("ws://localhost:1", 0, &u, &err), 0);
	assert_int_equal(hcdial_parse_url("ws://relay.example:80", 0, &u, &err), SHIR_EPERM);
	assert_non_null(strstr(err.msg, "only for a relay on this machine"));
	assert_int_equal(hcdial_parse_url("ws://relay.example:80", 1, &u, &err), 0);
	assert_int_not_equal(hcdial_parse_url("http://relay.example", 0, &u, &err), 0);
	assert_int_not_equal(hcdial_parse_url("wss://u:p@relay.example", 0, &u, &err), 0);
	assert_int_not_equal(hcdial_parse_url("", 0, &u, &err), 0);
	assert_int_equal(hcdial_pin_check("sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", &err),
	    0);
	assert_int_not_equal(hcdial_pin_check("sha1/abc", &err), 0);
	assert_int_not_equal(hcdial_pin_check("sha256/short", &err), 0);
}

static void
test_key_file_mode(void **state)
{
	char path[] = "/tmp/shir-key-XXXXXX", *key = NULL;
	struct shir_error err;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "c2VjcmV0\n", 9), 9);
	close(fd);
	chmod(path, 0644);
	assert_int_equal(lspec_read_secret(path, "relay.key_file", &key, &err), SHIR_EPERM);
	assert_non_null(strstr(err.msg, "chmod 600"));
	assert_null(strstr(err.msg, "c2VjcmV0"));
	chmod(path, 0600);
	assert_int_equal(lspec_read_secret(path, "relay.key_file", &key, &err), 0);
	assert_string_equal(key, "c2VjcmV0");
	free(key);
	unlink(path);
	assert_int_equal(lspec_read_secret(path, "relay.key_file", &key, &err), SHIR_ENOENT);
}

static int
test_source(void *arg, const struct conf *c, struct lspec_list *out, struct shir_error *err)
{
	struct lspec s;

	memset(&s, 0, sizeof s);
	s.name = arg;
	s.endpoint = "wss://relay.example:443";
	s.path = "sales-ir";
	s.key_name = "node-key1";
	s.key = "c2VjcmV0";
	return lspec_list_add(out, &s);
}

/* The seam for stored registrations: a source adds a channel; timings come
 * from [relay]; names must be unique. */
static void
test_spec_sources(void **state)
{
	struct conf *c = conf_new_defaults();
	struct lspec_list l;
	struct shir_error err;

	assert_int_equal(lspec_add_source(test_source, "registration"), 0);
	assert_int_equal(lspec_collect(c, &l, &err), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.v[0].name, "registration");
	assert_int_equal(l.v[0].ping_interval, 30);
	assert_int_equal(l.v[0].token_lifetime, 3600);
	assert_int_equal(l.v[0].request_timeout, 57);
	lspec_list_clear(&l);
	assert_int_equal(lspec_add_source(test_source, "registration"), 0);
	assert_int_not_equal(lspec_collect(c, &l, &err), 0);
	assert_non_null(strstr(err.msg, "two channels are named registration"));
	conf_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accept_decisions),
		cmocka_unit_test(test_request_decisions),
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_response_json),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_urls),
		cmocka_unit_test(test_key_file_mode),
		cmocka_unit_test(test_spec_sources),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
