/* Unit tests: auth_guard's statement check and ODBC connection string
 * reader, on whole inputs and on every prefix of them (a string cut at any
 * offset is read without going past its end, and a statement cut anywhere
 * is still judged by the same rules). */
#include "config.h"
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "node/authoring/auth_guard.h"

static void
test_sql_allowed(void **state)
{
	static const char *const ok[] = {
		"SELECT 1", "  select * from t", "(SELECT a FROM t) UNION (SELECT b FROM u)",
		"WITH x AS (SELECT 1) SELECT * FROM x", "SHOW TABLES", "DESCRIBE t", "DESC t",
		"EXPLAIN SELECT 1", "VALUES (1)", "TABLE t", "-- c\nSELECT 1", "# c\nSELECT 1",
		"/* c */ SELECT 1", "SELECT 'INFILE' AS a", "SELECT `outfile` FROM t",
		"SELECT \"dumpfile\"", "SELECT 'it''s'", "SELECT a--b FROM t",
	};
	char why[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		why[0] = '\0';
		assert_int_equal(auth_guard_sql(ok[i], why, sizeof why), 0);
	}
}

static void
test_sql_refused(void **state)
{
	static const char *const bad[] = {
		"LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE t",
		"load data local infile 'x' into table t", "  /* c */ LOAD DATA INFILE 'x' INTO TABLE t",
		"SELECT 1 INTO OUTFILE '/tmp/x'", "SELECT 1 INTO DUMPFILE '/tmp/x'",
		"/*!LOAD DATA LOCAL INFILE 'x' INTO TABLE t*/", "SELECT /*!50000 1 INTO OUTFILE 'x'*/",
		"/*M!100000 SELECT 1*/", "INSERT INTO t VALUES (1)", "SET GLOBAL local_infile=1",
		"DO SLEEP(1)", "HANDLER t OPEN", "CALL p()", "'SELECT'", "", "   ", "-- only\n",
		/* with backslash escapes the string ends late, without them early:
		 * either reading must refuse */
		"SELECT '\\' INTO OUTFILE '/tmp/x' -- '", "SELECT \"\\\" INTO DUMPFILE 'x' -- \"",
		"; SELECT 1",
	};
	char why[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		why[0] = '\0';
		assert_int_equal(auth_guard_sql(bad[i], why, sizeof why), -1);
		assert_true(why[0] != '\0');
	}
}

static void
test_sql_prefixes(void **state)
{
	static const char *const all[] = {
		"SELECT 'a''b\\'c' /* x */ FROM `t``u` -- z\n WHERE b = \"q\"",
		"LOAD DATA LOCAL INFILE 'x' INTO TABLE t", "SELECT 1 INTO OUTFILE 'x'",
	};
	char buf[128], why[256];
	size_t i, k;

	(void)state;
	for (i = 0; i < sizeof all / sizeof all[0]; i++) {
		for (k = 0; k <= strlen(all[i]); k++) {
			char *p = malloc(k + 1);	/* exact size: ASan sees any over-read */
			int rc;

			memcpy(p, all[i], k);
			p[k] = '\0';
			rc = auth_guard_sql(p, why, sizeof why);
			/* a prefix that reaches "LOAD" or "INFILE"/"OUTFILE" is refused */
			snprintf(buf, sizeof buf, "%s", p);
			if (strstr(buf, "LOAD") == buf || strstr(buf, "OUTFILE "))
				assert_int_equal(rc, -1);
			free(p);
		}
	}
}

struct pairs {
	char out[512];
	int n;
};

static int
collect(void *arg, const char *key, const char *val, size_t vlen)
{
	struct pairs *p = arg;
	size_t l = strlen(p->out);

	snprintf(p->out + l, sizeof p->out - l, "%s=%.*s|", key, (int)vlen, val);
	p->n++;
	return 0;
}

static int
stop_at_two(void *arg, const char *key, const char *val, size_t vlen)
{
	(void)key;
	(void)val;
	(void)vlen;
	return ++*(int *)arg == 2 ? 7 : 0;
}

static void
test_odbc_pairs(void **state)
{
	struct pairs p;
	char why[256];
	int n = 0;

	(void)state;
	memset(&p, 0, sizeof p);
	assert_int_equal(auth_guard_odbc_pairs("Driver={PostgreSQL Unicode}; server = h ;Port=5;;"
	    "Network Address={a;b}", collect, &p, why, sizeof why), 0);
	assert_string_equal(p.out, "DRIVER=PostgreSQL Unicode|SERVER= h |PORT=5|NETWORK ADDRESS=a;b|");
	memset(&p, 0, sizeof p);
	assert_int_equal(auth_guard_odbc_pairs("", collect, &p, why, sizeof why), 0);
	assert_int_equal(p.n, 0);
	assert_int_equal(auth_guard_odbc_pairs("A=1;B=2;C=3", stop_at_two, &n, why, sizeof why), 7);
	{
		static const char *const bad[] = {
			"Server", "=x", "Server={a}}};Server=b}", "Server={a}x", "Server=a{b",
			"Server=a}b", "Server={a", "Ser{ver=a", "Se;rver", "Server={a{b}",
			"S\x01=a", "KEYKEYKEYKEYKEYKEYKEYKEYKEYKEYKEYKEYKEYKEYKEYKEYKEYKEYKEYKEYKEYKEY=1",
		};
		size_t i;

		for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
			memset(&p, 0, sizeof p);
			why[0] = '\0';
			assert_int_equal(auth_guard_odbc_pairs(bad[i], collect, &p, why, sizeof why), -1);
			assert_true(why[0] != '\0');
		}
	}
}

static void
test_odbc_prefixes(void **state)
{
	static const char *const cs = "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;"
	    "Database={a;b};UID=u";
	struct pairs whole, p;
	char why[256];
	size_t k;

	(void)state;
	memset(&whole, 0, sizeof whole);
	assert_int_equal(auth_guard_odbc_pairs(cs, collect, &whole, why, sizeof why), 0);
	assert_int_equal(whole.n, 5);
	for (k = 0; k <= strlen(cs); k++) {
		char *s = malloc(k + 1);
		int rc;

		memcpy(s, cs, k);
		s[k] = '\0';
		memset(&p, 0, sizeof p);
		rc = auth_guard_odbc_pairs(s, collect, &p, why, sizeof why);
		/* a prefix gives the first pairs of the whole, the last one maybe
		 * cut, or is refused (a cut brace or key); never more pairs */
		assert_true(p.n <= whole.n);
		if (rc == 0 && p.n > 0) {
			char *last = strrchr(p.out, '|');

			*last = '\0';
			last = strrchr(p.out, '|');
			assert_memory_equal(p.out, whole.out, last ? (size_t)(last - p.out) : 0);
		}
		free(s);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sql_allowed),
		cmocka_unit_test(test_sql_refused),
		cmocka_unit_test(test_sql_prefixes),
		cmocka_unit_test(test_odbc_pairs),
		cmocka_unit_test(test_odbc_prefixes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
