/* Unit tests for peerframe: the framing of the node-to-node link (type byte,
 * 3-byte length, payload): whole frames, partial input, and every refusal. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "node/cluster/peerframe.h"

static long
parse(const uint8_t *b, size_t n, struct peerframe *f, char *why)
{
	return peerframe_parse(b, n, f, why, 128);
}

static void
test_round_trip_and_partial(void **state)
{
	uint8_t buf[64];
	const char *msg = "{\"shirSync\":{\"v\":1,\"box\":\"AA==\"}}";
	size_t n = strlen(msg), i;
	struct peerframe f;
	char why[128];

	(void)state;
	peerframe_header(buf, PEERFRAME_SYNC, n);
	memcpy(buf + PEERFRAME_HDR, msg, n);
	/* every prefix asks for more */
	for (i = 0; i < PEERFRAME_HDR + n; i++)
		assert_int_equal(parse(buf, i, &f, why), 0);
	assert_int_equal(parse(buf, PEERFRAME_HDR + n, &f, why), (long)(PEERFRAME_HDR + n));
	assert_int_equal(f.type, PEERFRAME_SYNC);
	assert_int_equal(f.len, n);
	assert_memory_equal(f.payload, msg, n);
	/* a second frame behind it is left for the next call */
	peerframe_header(buf + PEERFRAME_HDR + n, PEERFRAME_HELLO, 4);
	memcpy(buf + 2 * PEERFRAME_HDR + n, "ab12", 4);
	assert_int_equal(parse(buf, sizeof buf, &f, why), (long)(PEERFRAME_HDR + n));
	assert_int_equal(parse(buf + PEERFRAME_HDR + n, PEERFRAME_HDR + 4, &f, why),
	    PEERFRAME_HDR + 4);
	assert_int_equal(f.type, PEERFRAME_HELLO);
}

static void
test_refusals(void **state)
{
	struct peerframe f;
	char why[128];
	uint8_t big[PEERFRAME_HDR], hello[PEERFRAME_HDR + 3];

	(void)state;
	/* plain HTTP or garbage: the first byte is no frame type */
	assert_int_equal(parse((const uint8_t *)"GET / HTTP/1.1", 14, &f, why), -1);
	assert_non_null(strstr(why, "unknown frame type 0x47"));
	/* empty and oversized payloads, refused from the header alone */
	peerframe_header(big, PEERFRAME_SYNC, 0);
	assert_int_equal(parse(big, sizeof big, &f, why), -1);
	peerframe_header(big, PEERFRAME_SYNC, PEERFRAME_MAX + 1);
	assert_int_equal(parse(big, sizeof big, &f, why), -1);
	assert_non_null(strstr(why, "131073 bytes"));
	peerframe_header(big, PEERFRAME_SYNC, PEERFRAME_MAX);
	assert_int_equal(parse(big, sizeof big, &f, why), 0);
	/* a hello is a short visible node id */
	peerframe_header(big, PEERFRAME_HELLO, PEERFRAME_HELLO_MAX + 1);
	assert_int_equal(parse(big, sizeof big, &f, why), -1);
	peerframe_header(hello, PEERFRAME_HELLO, 3);
	memcpy(hello + PEERFRAME_HDR, "a b", 3);
	assert_int_equal(parse(hello, sizeof hello, &f, why), -1);
	assert_non_null(strstr(why, "not a node id"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_and_partial),
		cmocka_unit_test(test_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
