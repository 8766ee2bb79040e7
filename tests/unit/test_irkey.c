/* Unit tests for relay/irkey: round trip, exact encoding, and every strict
 * decoding error (prefix, version, alphabet, padding, JSON, fields, endpoint,
 * tlsPin). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "relay/irkey.h"

static char *
wrap(const char *json)
{
	size_t n = strlen(json), i, bl;
	char *b = malloc(4 * ((n + 2) / 3) + 1), *r = malloc(4 * ((n + 2) / 3) + 16);

	EVP_EncodeBlock((unsigned char *)b, (const unsigned char *)json, (int)n);
	bl = strlen(b);
	while (bl > 0 && b[bl - 1] == '=')
		b[--bl] = '\0';
	for (i = 0; i < bl; i++)
		b[i] = b[i] == '+' ? '-' : b[i] == '/' ? '_' : b[i];
	sprintf(r, "IR@v1@%s", b);
	free(b);
	return r;
}

static void
expect_bad(const char *s, const char *needle)
{
	struct irkey k;
	struct shir_error e;

	if (irkey_decode(s, &k, &e) != SHIR_EINVAL || strstr(e.msg, needle) == NULL)
		fail_msg("decode(%s): wanted an error with [%s], got [%s]", s, needle, e.msg);
	assert_null(k.key);
}

static void
expect_bad_json(const char *json, const char *needle)
{
	char *s = wrap(json);

	expect_bad(s, needle);
	free(s);
}

static void
test_roundtrip(void **state)
{
	struct irkey k = { "sales-ir", "wss://relay.corp.example:443", "sales-ir", "node-key1",
		"K1bR8pX3nQ2vL6tY9wZ4cF7hJ0mA5sD8gE1uI3oP6rT=",
		"sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=" };
	struct irkey d;
	struct shir_error e;
	char *s = NULL, *w;

	assert_int_equal(irkey_encode(&k, &s, &e), 0);
	assert_int_equal(strncmp(s, "IR@v1@", 6), 0);
	assert_null(strchr(s + 6, '='));
	assert_null(strchr(s + 6, '+'));
	assert_null(strchr(s + 6, '/'));
	w = wrap("{\"ir\":\"sales-ir\",\"endpoint\":\"wss://relay.corp.example:443\",\"hc\":\"sales-ir\","
	    "\"keyName\":\"node-key1\",\"key\":\"K1bR8pX3nQ2vL6tY9wZ4cF7hJ0mA5sD8gE1uI3oP6rT=\","
	    "\"tlsPin\":\"sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\"}");
	assert_string_equal(s, w);
	free(w);
	assert_int_equal(irkey_decode(s, &d, &e), 0);
	assert_string_equal(d.ir, k.ir);
	assert_string_equal(d.endpoint, k.endpoint);
	assert_string_equal(d.hc, k.hc);
	assert_string_equal(d.key_name, k.key_name);
	assert_string_equal(d.key, k.key);
	assert_string_equal(d.tls_pin, k.tls_pin);
	irkey_clear(&d);
	/* pasted with whitespace around it */
	w = malloc(strlen(s) + 8);
	sprintf(w, "  %s\n", s);
	assert_int_equal(irkey_decode(w, &d, &e), 0);
	assert_null(d.tls_pin == NULL ? NULL : NULL);
	irkey_clear(&d);
	free(w);
	free(s);
	k.tls_pin = NULL;
	assert_int_equal(irkey_encode(&k, &s, &e), 0);
	assert_int_equal(irkey_decode(s, &d, &e), 0);
	assert_null(d.tls_pin);
	irkey_clear(&d);
	free(s);
	k.endpoint = "https://x";
	assert_int_equal(irkey_encode(&k, &s, &e), SHIR_EINVAL);
	k.endpoint = "ws://127.0.0.1:9300";
	k.key = "";
	assert_int_equal(irkey_encode(&k, &s, &e), SHIR_EINVAL);
}

static void
test_strict_errors(void **state)
{
	expect_bad(NULL, "no key");
	expect_bad("", "must start with IR@v1@");
	expect_bad("Endpoint=sb://x/;SharedAccessKeyName=a", "must start with IR@v1@");
	expect_bad("IR@v2@abcd", "format version");
	expect_bad("IR@v1@", "empty");
	expect_bad("IR@v1@abcde", "truncated");
	expect_bad("IR@v1@ab=c", "outside base64url");
	expect_bad("IR@v1@eyJ+", "outside base64url");
	expect_bad("IR@v1@eyJhIjox", "JSON object");	/* {"a":1 */
	expect_bad_json("[1,2]", "JSON object");
	expect_bad_json("{\"endpoint\":\"ws://h\",\"hc\":\"h\",\"keyName\":\"k\",\"key\":\"s\"}",
	    "\"ir\"");
	expect_bad_json("{\"ir\":\"i\",\"endpoint\":\"ws://h\",\"hc\":\"h\",\"keyName\":\"k\",\"key\":5}",
	    "\"key\" must be a non-empty string");
	expect_bad_json("{\"ir\":\"i\",\"endpoint\":\"ws://h\",\"hc\":\"\",\"keyName\":\"k\",\"key\":\"s\"}",
	    "\"hc\" must be a non-empty string");
	expect_bad_json("{\"ir\":\"i\",\"endpoint\":\"http://h\",\"hc\":\"h\",\"keyName\":\"k\",\"key\":\"s\"}",
	    "not a ws:// or wss://");
	expect_bad_json("{\"ir\":\"i\",\"endpoint\":\"wss://\",\"hc\":\"h\",\"keyName\":\"k\",\"key\":\"s\"}",
	    "not a ws:// or wss://");
	expect_bad_json("{\"ir\":\"i\",\"endpoint\":\"wss://h\",\"hc\":\"h\",\"keyName\":\"k\",\"key\":\"s\","
	    "\"tlsPin\":\"md5/abc\"}", "tlsPin");
}

static void
test_unknown_fields_ignored(void **state)
{
	char *s = wrap("{\"ir\":\"i\",\"endpoint\":\"ws://127.0.0.1:1\",\"hc\":\"h\",\"keyName\":\"k\","
	    "\"key\":\"s\",\"future\":{\"x\":1}}");
	struct irkey k;
	struct shir_error e;

	assert_int_equal(irkey_decode(s, &k, &e), 0);
	assert_string_equal(k.endpoint, "ws://127.0.0.1:1");
	irkey_clear(&k);
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_strict_errors),
		cmocka_unit_test(test_unknown_fields_ignored),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
