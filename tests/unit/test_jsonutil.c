/* Unit tests for json_whole(): no NaN or out-of-range cast ever happens. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "common/jsonutil.h"

static int
whole(const char *json, long long min, long long max, long long *out)
{
	cJSON *v = cJSON_Parse(json);
	int rc = json_whole(v, min, max, out);

	cJSON_Delete(v);
	return rc;
}

static void
test_whole(void **state)
{
	long long n = -7;

	assert_int_equal(whole("42", 1, 100, &n), 0);
	assert_int_equal(n, 42);
	assert_int_equal(whole("-3", -5, 5, &n), 0);
	assert_int_equal(n, -3);
	assert_int_equal(whole("1e2", 1, 100, &n), 0);
	assert_int_equal(n, 100);
	n = -7;
	assert_int_not_equal(whole("101", 1, 100, &n), 0);
	assert_int_not_equal(whole("1.5", 1, 100, &n), 0);
	assert_int_not_equal(whole("1e300", 1, 100, &n), 0);
	assert_int_not_equal(whole("-1e300", -100, 100, &n), 0);
	assert_int_not_equal(whole("1e999", 1, 100, &n), 0);	/* cJSON: inf */
	assert_int_not_equal(whole("\"5\"", 1, 100, &n), 0);
	assert_int_not_equal(whole("null", 1, 100, &n), 0);
	assert_int_equal(n, -7);	/* untouched on failure */
	assert_int_not_equal(json_whole(NULL, 0, 1, &n), 0);	/* a missing item */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whole),
	};

	return cmocka_run_group_tests_name("jsonutil", tests, NULL, NULL);
}
