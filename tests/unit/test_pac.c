/* Unit tests for proxy/pac.c's caches with the real helper (SHIR_PAC_HELPER,
 * set by make check) and a PAC file read from a file: URL: the 12-hour script
 * cache, stale-while-error, the retry back-off bounded by
 * autoConfigUrlRetryInterval, the 60 s result cache and proxies marked bad.
 * The caches' clock is moved with pac_test_clock_advance(). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "proxy/pac.h"

static char dir[] = "/tmp/shir-test-pac-XXXXXX";
static char file[300];

static void
write_pac(const char *answer)
{
	FILE *f = fopen(file, "w");

	assert_non_null(f);
	fprintf(f, "function FindProxyForURL(url, host) { return \"%s\"; }\n", answer);
	fclose(f);
}

static void
params(struct pac_params *p, int retry)
{
	memset(p, 0, sizeof *p);
	snprintf(p->script_url, sizeof p->script_url, "file://%s", file);
	p->download_timeout_ms = 5000;
	p->retry_interval_s = retry;
	p->call_timeout_ms = 5000;
}

static void
decide(const struct pac_params *p, const char *host, struct proxy_decision *d,
    struct pac_explain *ex)
{
	pac_decide(p, "https", host, 443, d, ex);
}

static void
test_stale_while_error_and_backoff(void **state)
{
	struct pac_params p;
	struct proxy_decision d;
	struct pac_explain ex;

	(void)state;
	params(&p, 100);
	write_pac("PROXY a.test:1");
	decide(&p, "h1.test", &d, &ex);
	assert_int_equal(d.direct, 0);
	assert_string_equal(d.proxies[0], "http://a.test:1");
	assert_int_equal(ex.stale, 0);
	/* the file goes away; within 12 h the cached script goes on */
	unlink(file);
	pac_test_clock_advance(11 * 3600);
	decide(&p, "h2.test", &d, &ex);
	assert_string_equal(d.proxies[0], "http://a.test:1");
	assert_int_equal(ex.stale, 0);
	/* after 12 h the refresh fails: stale-while-error */
	pac_test_clock_advance(3600 + 1);
	decide(&p, "h3.test", &d, &ex);
	assert_string_equal(d.proxies[0], "http://a.test:1");
	assert_int_equal(ex.stale, 1);
	assert_non_null(strstr(d.reason, "stale: its refresh failed"));
	/* a new file: not fetched before the back-off (30 s) */
	write_pac("PROXY b.test:2");
	pac_test_clock_advance(10);
	decide(&p, "h4.test", &d, &ex);
	assert_string_equal(d.proxies[0], "http://a.test:1");
	pac_test_clock_advance(21);
	decide(&p, "h5.test", &d, &ex);
	assert_string_equal(d.proxies[0], "http://b.test:2");
	assert_int_equal(ex.stale, 0);
	/* h1's answer is still in the result cache for 60 s, then the new script decides */
	pac_test_clock_advance(61);
	decide(&p, "h1.test", &d, &ex);
	assert_string_equal(d.proxies[0], "http://b.test:2");
	pac_shutdown();
}

static void
test_backoff_capped_by_retry_interval(void **state)
{
	struct pac_params p;
	struct proxy_decision d;
	struct pac_explain ex;

	(void)state;
	params(&p, 45);		/* autoConfigUrlRetryInterval = 45 s */
	unlink(file);
	decide(&p, "x1.test", &d, &ex);
	assert_int_equal(d.direct, 1);
	assert_non_null(strstr(d.reason, "using DIRECT as .NET does (next download in 30 s)"));
	pac_test_clock_advance(31);
	decide(&p, "x2.test", &d, &ex);	/* second failure: 60 s, capped to 45 */
	assert_non_null(strstr(d.reason, "(next download in 45 s)"));
	pac_test_clock_advance(46);
	decide(&p, "x3.test", &d, &ex);	/* third: still 45 */
	assert_non_null(strstr(d.reason, "(next download in 45 s)"));
	write_pac("DIRECT");
	pac_test_clock_advance(46);
	decide(&p, "x4.test", &d, &ex);
	assert_int_equal(d.direct, 1);
	assert_string_equal(ex.error, "");
	assert_string_equal(ex.result, "DIRECT");
	pac_shutdown();
}

static void
test_bad_proxy_tried_last(void **state)
{
	struct pac_params p;
	struct proxy_decision d;
	struct pac_explain ex;

	(void)state;
	params(&p, 600);
	write_pac("PROXY a.test:1; PROXY b.test:2; DIRECT");
	decide(&p, "y.test", &d, &ex);
	assert_int_equal(d.nproxies, 3);
	assert_string_equal(d.proxies[0], "http://a.test:1");
	pac_mark_bad("http://a.test:1");
	decide(&p, "y.test", &d, &ex);	/* from the result cache, reordered */
	assert_int_equal(ex.cached, 1);
	assert_int_equal(d.nproxies, 3);
	assert_string_equal(d.proxies[0], "http://b.test:2");
	assert_string_equal(d.proxies[1], "DIRECT");
	assert_string_equal(d.proxies[2], "http://a.test:1");
	/* 5 minutes later a is first again */
	pac_test_clock_advance(301);
	decide(&p, "y.test", &d, &ex);
	assert_string_equal(d.proxies[0], "http://a.test:1");
	pac_shutdown();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stale_while_error_and_backoff),
		cmocka_unit_test(test_backoff_capped_by_retry_interval),
		cmocka_unit_test(test_bad_proxy_tried_last),
	};
	int rc;

	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(file, sizeof file, "%s/t.pac", dir);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	unlink(file);
	rmdir(dir);
	return rc;
}
