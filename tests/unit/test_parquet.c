/* Unit tests for node/copy/parquet.c: ISO 8601 timestamps, the file's frame
 * (magic, footer length), row groups bounded in bytes, and precise errors for
 * values that do not read as their column's type. The values themselves are
 * read back by an independent reader in tests/integration/test_parquet.py. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/copy/parquet.h"

struct sink {
	uint8_t *d;
	size_t n, cap;
	int fail_after;	/* calls before refusing; 0 = never */
	int calls;
};

static int
sink_out(void *arg, const void *d, size_t n)
{
	struct sink *s = arg;

	if (s->fail_after && ++s->calls > s->fail_after)
		return -1;
	if (s->n + n > s->cap) {
		s->cap = (s->n + n) * 2;
		s->d = realloc(s->d, s->cap);
		assert_non_null(s->d);
	}
	memcpy(s->d + s->n, d, n);
	s->n += n;
	return 0;
}

static void
t_timestamps(void **st)
{
	int64_t v;

	(void)st;
	assert_int_equal(parquet_parse_timestamp("1970-01-01T00:00:00Z", 20, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parquet_parse_timestamp("2026-11-01 10:00:00", 19, &v), 0);
	assert_int_equal(v, 1793527200LL * 1000000);
	assert_int_equal(parquet_parse_timestamp("2026-11-01 12:00:00+02", 22, &v), 0);
	assert_int_equal(v, 1793527200LL * 1000000);
	assert_int_equal(parquet_parse_timestamp("2026-11-01T05:30:00.5-04:30", 27, &v), 0);
	assert_int_equal(v, 1793527200LL * 1000000 + 500000);
	assert_int_equal(parquet_parse_timestamp("1969-12-31T23:59:59.999999Z", 27, &v), 0);
	assert_int_equal(v, -1);
	assert_int_equal(parquet_parse_timestamp("2024-02-29", 10, &v), 0);
	assert_int_equal(v, 1709164800LL * 1000000);
	assert_int_equal(parquet_parse_timestamp("2023-02-29", 10, &v), SHIR_EINVAL);
	assert_int_equal(parquet_parse_timestamp("2026-13-01", 10, &v), SHIR_EINVAL);
	assert_int_equal(parquet_parse_timestamp("2026-11-01T10", 13, &v), SHIR_EINVAL);
	assert_int_equal(parquet_parse_timestamp("2026-11-01 10:00:00 junk", 24, &v), SHIR_EINVAL);
	assert_int_equal(parquet_parse_timestamp("", 0, &v), SHIR_EINVAL);
}

static void
t_frame_and_groups(void **st)
{
	struct parquet_column cols[] = { { "id", "Int64", false }, { "name", "String", true } };
	struct sink s = { 0 };
	struct shir_error e = { 0 };
	struct parquet_writer *w;
	char id[32], name[64];
	int i;
	uint32_t flen;
	size_t peak = 0;

	(void)st;
	w = parquet_writer_new(cols, 2, PARQUET_SNAPPY, PARQUET_ROW_GROUP_MIN, sink_out, &s, &e);
	assert_non_null(w);
	for (i = 0; i < 20000; i++) {
		snprintf(id, sizeof id, "%d", i);
		snprintf(name, sizeof name, "name-%d", i);
		assert_int_equal(parquet_text(w, id, strlen(id), &e), 0);
		if (i % 7 == 0)
			assert_int_equal(parquet_null(w, &e), 0);
		else
			assert_int_equal(parquet_text(w, name, strlen(name), &e), 0);
		assert_int_equal(parquet_end_row(w, &e), 0);
		if (parquet_buffered(w) > peak)
			peak = parquet_buffered(w);
	}
	/* the row group is bounded: never more than its size plus one row */
	assert_true(peak < PARQUET_ROW_GROUP_MIN + 64);
	assert_int_equal(parquet_finish(w, &e), 0);
	assert_int_equal(parquet_rows(w), 20000);
	assert_int_equal(parquet_bytes_written(w), s.n);
	assert_memory_equal(s.d, "PAR1", 4);
	assert_memory_equal(s.d + s.n - 4, "PAR1", 4);
	flen = (uint32_t)s.d[s.n - 8] | (uint32_t)s.d[s.n - 7] << 8 | (uint32_t)s.d[s.n - 6] << 16 |
	    (uint32_t)s.d[s.n - 5] << 24;
	assert_true(flen > 0 && flen < s.n - 12);
	/* finished: no more rows */
	assert_int_not_equal(parquet_text(w, "1", 1, &e), 0);
	parquet_writer_free(w);
	free(s.d);
}

static void
t_bad_values(void **st)
{
	struct parquet_column cols[] = { { "n", "Int16", false }, { "when", "DateTime", true } };
	struct sink s = { 0 };
	struct shir_error e = { 0 };
	struct parquet_writer *w;

	(void)st;
	w = parquet_writer_new(cols, 2, PARQUET_NONE, PARQUET_ROW_GROUP_MIN, sink_out, &s, &e);
	assert_non_null(w);
	assert_int_equal(parquet_text(w, "40000", 5, &e), SHIR_EINVAL);
	assert_non_null(strstr(e.msg, "row 1, column 'n': '40000' is not an Int16"));
	parquet_writer_free(w);

	w = parquet_writer_new(cols, 2, PARQUET_ZSTD, PARQUET_ROW_GROUP_MIN, sink_out, &s, &e);
	assert_int_equal(parquet_null(w, &e), SHIR_EINVAL);
	assert_non_null(strstr(e.msg, "not nullable"));
	parquet_writer_free(w);

	w = parquet_writer_new(cols, 2, PARQUET_ZSTD, PARQUET_ROW_GROUP_MIN, sink_out, &s, &e);
	assert_int_equal(parquet_text(w, "1", 1, &e), 0);
	assert_int_equal(parquet_end_row(w, &e), SHIR_EINVAL);
	assert_non_null(strstr(e.msg, "row 1 has 1 cells for 2 columns"));
	parquet_writer_free(w);

	/* a sink that refuses: the writer fails and says so */
	s.n = 0;
	s.fail_after = 1;
	s.calls = 0;
	w = parquet_writer_new(cols, 2, PARQUET_SNAPPY, PARQUET_ROW_GROUP_MIN, sink_out, &s, &e);
	assert_non_null(w);
	assert_int_equal(parquet_text(w, "1", 1, &e), 0);
	assert_int_equal(parquet_null(w, &e), 0);
	assert_int_equal(parquet_end_row(w, &e), 0);
	memset(&e, 0, sizeof e);
	assert_int_not_equal(parquet_finish(w, &e), 0);
	assert_non_null(strstr(e.msg, "refused"));
	parquet_writer_free(w);
	free(s.d);

	assert_string_equal(parquet_physical_name("DateTimeOffset"), "INT64");
	assert_string_equal(parquet_physical_name("Int16"), "INT32");
	assert_string_equal(parquet_physical_name("Decimal"), "BYTE_ARRAY");
	assert_null(parquet_writer_new(cols, 2, PARQUET_NONE, 1000, sink_out, &s, &e));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_timestamps),
		cmocka_unit_test(t_frame_and_groups),
		cmocka_unit_test(t_bad_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
