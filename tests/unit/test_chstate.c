/* Unit tests for the reconnect ladder (backoff) and the channel state
 * machine (chstate), including the node status that follows from channels. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "node/listener/backoff.h"
#include "node/listener/chstate.h"
#include "node/node.h"

static void
test_ladder_without_jitter(void **state)
{
	static const int64_t want[] = { 0, 1000, 2000, 5000, 10000, 30000, 30000, 30000 };
	struct backoff b;
	size_t i;

	backoff_init(&b, 60000);
	for (i = 0; i < sizeof want / sizeof want[0]; i++)
		assert_int_equal(backoff_next_ms(&b, 0), want[i]);
}

static void
test_ladder_jitter_bounds(void **state)
{
	static const int64_t base[] = { 0, 1000, 2000, 5000, 10000, 30000 };
	uint32_t rnds[] = { 0, 1, 7, 12345, 0x7fffffff, 0xffffffff };
	size_t r, i;

	for (r = 0; r < sizeof rnds / sizeof rnds[0]; r++) {
		struct backoff b;

		backoff_init(&b, 60000);
		for (i = 0; i < 6; i++) {
			int64_t d = backoff_next_ms(&b, rnds[r]);
			int64_t span = base[i] ? base[i] / 5 : 250;

			assert_true(d >= base[i]);
			assert_true(d <= base[i] + span);
		}
	}
}

static void
test_ladder_resets_after_stable_period(void **state)
{
	struct backoff b;
	int i;

	backoff_init(&b, 60000);
	for (i = 0; i < 4; i++)
		backoff_next_ms(&b, 0);
	assert_int_equal(backoff_next_ms(&b, 0), 10000);
	/* up for 10 s only: keeps climbing */
	backoff_up(&b, 1000000);
	backoff_down(&b, 1010000);
	assert_int_equal(backoff_next_ms(&b, 0), 30000);
	/* up for a minute: starts from the bottom */
	backoff_up(&b, 2000000);
	backoff_down(&b, 2060000);
	assert_int_equal(backoff_next_ms(&b, 0), 0);
	assert_int_equal(backoff_next_ms(&b, 0), 1000);
	/* a failure while down does not reset */
	backoff_down(&b, 3000000);
	assert_int_equal(backoff_next_ms(&b, 0), 2000);
}

static void
test_state_machine(void **state)
{
	struct chstate cs;
	int64_t d;

	chstate_init(&cs, "relay", "wss://relay.example:443", "sales-ir");
	assert_int_equal(cs.state, CHSTATE_CONNECTING);
	d = chstate_down(&cs, 1000, CHSTATE_WHY_NETWORK, 0, "connection refused", 0);
	assert_int_equal(d, 0);
	assert_int_equal(cs.state, CHSTATE_DISCONNECTED);
	assert_non_null(strstr(cs.last_error, "connection refused"));
	assert_non_null(strstr(cs.last_error, "wss://relay.example:443"));
	assert_int_equal(cs.next_retry_ms, 1000);
	chstate_connecting(&cs, 1000);
	d = chstate_down(&cs, 1100, CHSTATE_WHY_NETWORK, 0, "timeout", 0);
	assert_int_equal(d, 1000);
	assert_int_equal(cs.next_retry_ms, 2100);
	chstate_connecting(&cs, 2100);
	assert_int_equal(cs.state, CHSTATE_CONNECTING);
	assert_int_equal(cs.next_retry_ms, 0);
	chstate_connected(&cs, 2200);
	assert_int_equal(cs.state, CHSTATE_CONNECTED);
	assert_int_equal(cs.connected_since_ms, 2200);
	assert_string_equal(cs.last_error, "");
	assert_int_equal(cs.connects, 1);
	/* dropped after a short time: the ladder goes on (2 s) */
	d = chstate_down(&cs, 3200, CHSTATE_WHY_CLOSED, 1008, NULL, 0);
	assert_int_equal(d, 2000);
	assert_int_equal(cs.connected_since_ms, 0);
	assert_non_null(strstr(cs.last_error, "1008"));
	assert_non_null(strstr(cs.last_error, "token"));
}

static void
test_404_stops_auth_backs_off(void **state)
{
	struct chstate cs;
	int64_t d;

	chstate_init(&cs, "relay", "ws://127.0.0.1:9", "nohc");
	d = chstate_down(&cs, 1000, CHSTATE_WHY_HANDSHAKE, 401, "Unauthorized", 0);
	assert_int_equal(d, 5000);	/* backs off at once */
	assert_non_null(strstr(cs.last_error, "authorization failed"));
	assert_false(cs.stopped);
	chstate_connecting(&cs, 1000);
	d = chstate_down(&cs, 1000, CHSTATE_WHY_HANDSHAKE, 403, NULL, 0);
	assert_int_equal(d, 10000);
	assert_non_null(strstr(cs.last_error, "authorization failed"));
	chstate_connecting(&cs, 3000);
	d = chstate_down(&cs, 3000, CHSTATE_WHY_HANDSHAKE, 404, NULL, 0);
	assert_int_equal(d, -1);
	assert_true(cs.stopped);
	assert_int_equal(cs.next_retry_ms, 0);
	assert_non_null(strstr(cs.last_error, "does not exist"));
	assert_non_null(strstr(cs.last_error, "nohc"));
	/* a config change restarts it */
	chstate_connecting(&cs, 4000);
	assert_false(cs.stopped);
}

static void
test_json(void **state)
{
	struct chstate cs;
	cJSON *o = cJSON_CreateObject();

	chstate_init(&cs, "relay", "ws://127.0.0.1:9", "hc");
	chstate_connected(&cs, 1795000000000LL);
	cs.bytes_in = 10, cs.bytes_out = 20, cs.inflight = 3;
	chstate_to_json(&cs, o, 1795000001000LL);
	assert_string_equal(cJSON_GetObjectItem(o, "state")->valuestring, "Connected");
	assert_string_equal(cJSON_GetObjectItem(o, "name")->valuestring, "relay");
	assert_string_equal(cJSON_GetObjectItem(o, "connectedSince")->valuestring,
	    "2026-11-18T11:06:40Z");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "nextRetry")));
	assert_int_equal(cJSON_GetObjectItem(o, "bytesIn")->valueint, 10);
	assert_int_equal(cJSON_GetObjectItem(o, "bytesOut")->valueint, 20);
	assert_int_equal(cJSON_GetObjectItem(o, "requestsInFlight")->valueint, 3);
	assert_string_equal(cJSON_GetObjectItem(o, "lastError")->valuestring, "");
	cJSON_Delete(o);
}

/* A proxy's 407 with the Kerberos hint runs past 600 characters: the last
 * error keeps it whole, the schemes the proxy offers included (issue 13: the
 * detail used to be cut at 600, losing "(the proxy offers: ...)"). */
static void
test_long_error_kept_whole(void **state)
{
	struct chstate cs;
	char detail[1100];
	size_t i;

	(void)state;
	chstate_init(&cs, "relay", "wss://relay.corp.example:443", "sales-ir");
	for (i = 0; i < 900; i++)
		detail[i] = 'a' + (char)(i % 26);
	snprintf(detail + 900, sizeof detail - 900, " (the proxy offers: Negotiate, NTLM)");
	chstate_down(&cs, 1000, CHSTATE_WHY_PROXY, 0, detail, 0);
	assert_non_null(strstr(cs.last_error, "(the proxy offers: Negotiate, NTLM)"));
}

static void
test_node_status(void **state)
{
	struct chstate a, b;
	const struct chstate *v[2] = { &a, &b };
	char cause[1024];

	assert_int_equal(chstate_node_status(v, 0, cause, sizeof cause), NODE_NEEDS_REGISTRATION);
	assert_non_null(strstr(cause, "register-node"));
	chstate_init(&a, "a", "wss://r:443", "hc");
	chstate_init(&b, "b", "wss://r:443", "hc");
	assert_int_equal(chstate_node_status(v, 2, cause, sizeof cause), NODE_STARTING);
	chstate_connected(&a, 1000);
	chstate_connected(&b, 1000);
	assert_int_equal(chstate_node_status(v, 2, cause, sizeof cause), NODE_ONLINE);
	chstate_down(&b, 2000, CHSTATE_WHY_PROXY, 0,
	    "proxy proxy.corp:8080: 407 Proxy Authentication Required", 0);
	assert_int_equal(chstate_node_status(v, 2, cause, sizeof cause), NODE_LIMITED);
	assert_non_null(strstr(cause,
	    "relay wss://r:443 unreachable through proxy proxy.corp:8080: 407 Proxy Authentication Required"));
	assert_non_null(strstr(cause, "channel b"));
	chstate_down(&a, 2000, CHSTATE_WHY_NETWORK, 0, "connection refused", 0);
	assert_int_equal(chstate_node_status(v, 2, cause, sizeof cause), NODE_OFFLINE);
	/* one channel that is down: Offline with its reason */
	assert_int_equal(chstate_node_status(v, 1, cause, sizeof cause), NODE_OFFLINE);
	assert_non_null(strstr(cause, "connection refused"));
	/* retrying after an error is not "Starting" */
	chstate_connecting(&a, 3000);
	assert_int_equal(chstate_node_status(v, 1, cause, sizeof cause), NODE_OFFLINE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ladder_without_jitter),
		cmocka_unit_test(test_ladder_jitter_bounds),
		cmocka_unit_test(test_ladder_resets_after_stable_period),
		cmocka_unit_test(test_state_machine),
		cmocka_unit_test(test_404_stops_auth_backs_off),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_node_status),
		cmocka_unit_test(test_long_error_kept_whole),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
