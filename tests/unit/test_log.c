/* Unit tests for the log module: escaping of peer bytes and redaction. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "common/log.h"

static void
test_quote(void **state)
{
	assert_string_equal(log_q("plain"), "plain");
	assert_string_equal(log_q(""), "\"\"");
	assert_string_equal(log_q("two words"), "\"two words\"");
	assert_string_equal(log_q("a\"b"), "\"a\\\"b\"");
	assert_string_equal(log_q("line\nbreak"), "\"line\\x0abreak\"");
	assert_string_equal(log_q("k=v"), "\"k=v\"");
	assert_string_equal(log_qn("\xff\x01", 2), "\"\\xff\\x01\"");
	assert_string_equal(log_q(NULL), "-");
}

static void
test_redact(void **state)
{
	char line[512];

	strcpy(line, "event=x password=hunter2 user=bob");
	log_redact(line);
	assert_string_equal(line, "event=x password=[redacted] user=bob");
	strcpy(line, "proxy_password=\"a b c\" sb-hc-token=abc sig=zz keyName=k1 key=SECRET");
	log_redact(line);
	assert_string_equal(line, "proxy_password=[redacted] sb-hc-token=[redacted] sig=[redacted] "
	    "keyName=k1 key=[redacted]");
	strcpy(line, "authorization=x");
	log_redact(line);
	assert_string_equal(line, "authorization=[redacted]");
}

static void
test_levels(void **state)
{
	enum log_level l;

	assert_int_equal(log_level_parse("DEBUG", &l), 0);
	assert_int_equal(l, LOG_LVL_DEBUG);
	assert_int_not_equal(log_level_parse("loud", &l), 0);
	assert_string_equal(log_level_name(LOG_LVL_WARN), "warn");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quote),
		cmocka_unit_test(test_redact),
		cmocka_unit_test(test_levels),
	};

	return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
