/* Unit tests for the sealed file format: round trips, and a change of any
 * byte or a truncation at any length is refused with nothing returned. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/admin/seal.h"

static const uint8_t key1[SEAL_KEY_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
static const uint8_t key2[SEAL_KEY_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 11 };
static const char text[] = "{\"version\":3,\"credentials\":[{\"name\":\"a\",\"value\":\"s3cr3t\"}]}";

static void
test_key_round_trip(void **state)
{
	struct shir_error err;
	uint8_t *s1 = NULL, *s2 = NULL;
	size_t l1, l2, pl;
	char *p = NULL;

	assert_int_equal(seal_with_key(key1, SEAL_PURPOSE_CREDENTIALS, text, strlen(text), &s1, &l1,
	    &err), 0);
	assert_int_equal(seal_with_key(key1, SEAL_PURPOSE_CREDENTIALS, text, strlen(text), &s2, &l2,
	    &err), 0);
	assert_int_equal(l1, 12 + 12 + strlen(text) + 16);
	assert_true(seal_looks_sealed(s1, l1));
	assert_memory_not_equal(s1, s2, l1);	/* a fresh nonce each time */
	assert_null(memmem(s1, l1, "s3cr3t", 6));
	assert_int_equal(seal_open_key(key1, SEAL_PURPOSE_CREDENTIALS, s1, l1, &p, &pl, &err), 0);
	assert_int_equal(pl, strlen(text));
	assert_string_equal(p, text);
	seal_plain_free(p, pl);
	/* another key, another purpose */
	assert_int_equal(seal_open_key(key2, SEAL_PURPOSE_CREDENTIALS, s1, l1, &p, &pl, &err),
	    SHIR_ECRYPTO);
	assert_null(p);
	assert_non_null(strstr(err.msg, "machine key"));
	assert_int_equal(seal_open_key(key1, SEAL_PURPOSE_BACKUP, s1, l1, &p, &pl, &err),
	    SHIR_ECRYPTO);
	assert_null(p);
	free(s1);
	free(s2);
}

static void
test_key_empty_plaintext(void **state)
{
	struct shir_error err;
	uint8_t *s = NULL;
	size_t l, pl;
	char *p = NULL;

	assert_int_equal(seal_with_key(key1, SEAL_PURPOSE_CREDENTIALS, "", 0, &s, &l, &err), 0);
	assert_int_equal(seal_open_key(key1, SEAL_PURPOSE_CREDENTIALS, s, l, &p, &pl, &err), 0);
	assert_int_equal(pl, 0);
	assert_string_equal(p, "");
	seal_plain_free(p, pl);
	free(s);
}

/* Every single-bit flip at every offset and every truncation is refused. */
static void
test_key_tamper_every_offset(void **state)
{
	struct shir_error err;
	uint8_t *s = NULL, *c;
	size_t l, i, pl;
	int bit;
	char *p = NULL;

	assert_int_equal(seal_with_key(key1, SEAL_PURPOSE_CREDENTIALS, text, strlen(text), &s, &l,
	    &err), 0);
	c = malloc(l);
	for (i = 0; i < l; i++) {
		for (bit = 0; bit < 8; bit += 7) {
			memcpy(c, s, l);
			c[i] ^= (uint8_t)(1u << bit);
			if (seal_open_key(key1, SEAL_PURPOSE_CREDENTIALS, c, l, &p, &pl, &err) == 0)
				fail_msg("a flip of bit %d at offset %zu was accepted", bit, i);
			assert_null(p);
			assert_true(err.msg[0] != '\0');
		}
	}
	for (i = 0; i < l; i++) {
		if (seal_open_key(key1, SEAL_PURPOSE_CREDENTIALS, s, i, &p, &pl, &err) == 0)
			fail_msg("a truncation to %zu bytes was accepted", i);
		assert_null(p);
	}
	/* a byte added at the end */
	c = realloc(c, l + 1);
	memcpy(c, s, l);
	c[l] = 0;
	assert_int_not_equal(seal_open_key(key1, SEAL_PURPOSE_CREDENTIALS, c, l + 1, &p, &pl, &err), 0);
	free(c);
	free(s);
}

static void
test_password(void **state)
{
	struct shir_error err;
	uint8_t *s = NULL, *c;
	size_t l, i, pl;
	char *p = NULL;

	/* a low cost keeps the every-offset loop fast; the format records it */
	assert_int_equal(seal_with_password("correct horse", 10, SEAL_PURPOSE_BACKUP, text,
	    strlen(text), &s, &l, &err), 0);
	assert_int_equal(l, 12 + 20 + 12 + strlen(text) + 16);
	assert_int_equal(seal_open_password("correct horse", SEAL_PURPOSE_BACKUP, s, l, &p, &pl,
	    &err), 0);
	assert_string_equal(p, text);
	seal_plain_free(p, pl);
	assert_int_equal(seal_open_password("correct horsf", SEAL_PURPOSE_BACKUP, s, l, &p, &pl,
	    &err), SHIR_ECRYPTO);
	assert_non_null(strstr(err.msg, "wrong password"));
	assert_null(p);
	/* a backup is not a credentials file */
	assert_int_not_equal(seal_open_key(key1, SEAL_PURPOSE_CREDENTIALS, s, l, &p, &pl, &err), 0);
	c = malloc(l);
	for (i = 0; i < l; i++) {
		memcpy(c, s, l);
		c[i] ^= 0x01;
		if (seal_open_password("correct horse", SEAL_PURPOSE_BACKUP, c, l, &p, &pl, &err) == 0)
			fail_msg("a flip at offset %zu was accepted", i);
		assert_null(p);
	}
	for (i = 0; i < l; i++)
		assert_int_not_equal(seal_open_password("correct horse", SEAL_PURPOSE_BACKUP, s, i, &p,
		    &pl, &err), 0);
	/* a cost raised past the bound is refused before any work */
	memcpy(c, s, l);
	c[12] = 30;
	assert_int_equal(seal_open_password("correct horse", SEAL_PURPOSE_BACKUP, c, l, &p, &pl,
	    &err), SHIR_ECRYPTO);
	assert_non_null(strstr(err.msg, "parameters"));
	free(c);
	free(s);
	assert_int_equal(seal_with_password("x", 9, SEAL_PURPOSE_BACKUP, "", 0, &s, &l, &err),
	    SHIR_EINVAL);
}

static void
test_not_sealed(void **state)
{
	struct shir_error err;
	char *p = NULL;
	size_t pl;

	assert_false(seal_looks_sealed((const uint8_t *)"{\"a\":1}", 7));
	assert_int_equal(seal_open_key(key1, SEAL_PURPOSE_CREDENTIALS,
	    (const uint8_t *)"plain text, not sealed", 22, &p, &pl, &err), SHIR_ECRYPTO);
	assert_non_null(strstr(err.msg, "SHIRSEAL"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_round_trip),
		cmocka_unit_test(test_key_empty_plaintext),
		cmocka_unit_test(test_key_tamper_every_offset),
		cmocka_unit_test(test_password),
		cmocka_unit_test(test_not_sealed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
