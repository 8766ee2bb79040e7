/* Unit tests for random: UUIDs have the version 4 form and do not repeat;
 * bytes come out of the pool and past it (larger than the pool), and two
 * draws differ. */
#include "config.h"

#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/random.h"

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void
test_uuid_form_and_uniqueness(void **state)
{
	enum { N = 5000 };
	char (*ids)[RANDOM_UUID_LEN + 1] = calloc(N, sizeof *ids);
	size_t i, j;

	(void)state;
	assert_non_null(ids);
	for (i = 0; i < N; i++) {
		assert_int_equal(random_uuid(ids[i]), 0);
		assert_int_equal(strlen(ids[i]), RANDOM_UUID_LEN);
		for (j = 0; j < RANDOM_UUID_LEN; j++) {
			if (j == 8 || j == 13 || j == 18 || j == 23)
				assert_int_equal(ids[i][j], '-');
			else
				assert_true(isxdigit((unsigned char)ids[i][j]) && !isupper((unsigned char)ids[i][j]));
		}
		assert_int_equal(ids[i][14], '4');			/* version 4 */
		assert_non_null(strchr("89ab", ids[i][19]));		/* RFC 4122 variant */
	}
	qsort(ids, N, sizeof *ids, cmp_str);
	for (i = 1; i < N; i++)
		assert_string_not_equal(ids[i - 1], ids[i]);
	free(ids);
}

static void
test_bytes_small_and_large(void **state)
{
	unsigned char a[16], b[16], big[3][10000];
	size_t i, zeros = 0;

	(void)state;
	assert_int_equal(random_bytes(a, sizeof a), 0);
	assert_int_equal(random_bytes(b, sizeof b), 0);
	assert_memory_not_equal(a, b, sizeof a);
	/* larger than the pool, and draws that cross a refill */
	for (i = 0; i < 3; i++)
		assert_int_equal(random_bytes(big[i], sizeof big[i]), 0);
	assert_memory_not_equal(big[0], big[1], sizeof big[0]);
	for (i = 0; i < sizeof big[2]; i++)
		zeros += big[2][i] == 0;
	assert_true(zeros < 200);	/* about 39 expected */
	for (i = 0; i < 1000; i++)
		assert_int_equal(random_bytes(a, 7), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uuid_form_and_uniqueness),
		cmocka_unit_test(test_bytes_small_and_large),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
