/* Unit tests for the incremental readers (csv_reader, json_reader): every
 * input is fed whole, split at every offset, and byte by byte, and must give
 * the same records. Also the value encoding and type inference of auth_rows. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "node/authoring/auth_ctx.h"
#include "node/authoring/auth_rows.h"
#include "node/authoring/csv_reader.h"
#include "node/authoring/json_reader.h"

/* Records rendered as text: fields joined by '|', records by '\n'. */
struct out {
	char buf[8192];
	size_t len;
	int stop_after;
};

static void
out_add(struct out *o, const char *s, size_t n)
{
	if (o->len + n < sizeof o->buf) {
		memcpy(o->buf + o->len, s, n);
		o->len += n;
		o->buf[o->len] = '\0';
	}
}

static int
csv_cb(void *arg, const struct csv_field *f, size_t n)
{
	struct out *o = arg;
	size_t i;

	for (i = 0; i < n; i++) {
		if (i)
			out_add(o, "|", 1);
		if (f[i].quoted)
			out_add(o, "Q", 1);
		if (f[i].truncated)
			out_add(o, "T", 1);
		out_add(o, f[i].data, f[i].len);
	}
	out_add(o, "\n", 1);
	return o->stop_after > 0 && --o->stop_after == 0;
}

/* Feeds in[0..split) then in[split..) (split = len: whole; step 1: bytes). */
static enum csv_status
csv_run(const char *in, size_t len, size_t split, int bytewise, char delim, char quote,
    size_t maxf, struct out *o)
{
	struct csv_reader *r = csv_reader_new(delim, quote, maxf, 8);
	enum csv_status s = CSV_OK;
	size_t i;

	assert_non_null(r);
	memset(o, 0, sizeof *o);
	if (bytewise) {
		for (i = 0; i < len && s == CSV_OK; i++)
			s = csv_reader_feed(r, in + i, 1, csv_cb, o);
	} else {
		s = csv_reader_feed(r, in, split, csv_cb, o);
		if (s == CSV_OK)
			s = csv_reader_feed(r, in + split, len - split, csv_cb, o);
	}
	if (s == CSV_OK)
		s = csv_reader_finish(r, csv_cb, o);
	csv_reader_free(r);
	return s;
}

static void
csv_expect(const char *in, char delim, char quote, size_t maxf, enum csv_status want,
    const char *expect)
{
	size_t len = strlen(in), split;
	struct out o;

	for (split = 0; split <= len; split++) {
		enum csv_status s = csv_run(in, len, split, 0, delim, quote, maxf, &o);

		if (s != want || (want != CSV_ERROR && strcmp(o.buf, expect) != 0))
			fail_msg("split %zu of [%s]: status %d, got [%s] want [%s]", split, in, s, o.buf,
			    expect);
	}
	if (csv_run(in, len, 0, 1, delim, quote, maxf, &o) != want ||
	    (want != CSV_ERROR && strcmp(o.buf, expect) != 0))
		fail_msg("bytewise [%s]: got [%s] want [%s]", in, o.buf, expect);
}

static void
test_csv_basic(void **state)
{
	csv_expect("a,b\n1,2\n", ',', '"', 100, CSV_OK, "a|b\n1|2\n");
	csv_expect("a,b\r\n1,2\r\n", ',', '"', 100, CSV_OK, "a|b\n1|2\n");
	csv_expect("a,b\r1,2", ',', '"', 100, CSV_OK, "a|b\n1|2\n");
	csv_expect("a,b\n\n\n1,2\n", ',', '"', 100, CSV_OK, "a|b\n1|2\n");
	csv_expect(",\n", ',', '"', 100, CSV_OK, "|\n");
	csv_expect("a;b;c\n", ';', '"', 100, CSV_OK, "a|b|c\n");
	csv_expect("a\tb\n", '\t', 0, 100, CSV_OK, "a|b\n");
	csv_expect("", ',', '"', 100, CSV_OK, "");
}

static void
test_csv_quotes(void **state)
{
	csv_expect("\"a,b\",c\n", ',', '"', 100, CSV_OK, "Qa,b|c\n");
	csv_expect("\"say \"\"hi\"\"\"\n", ',', '"', 100, CSV_OK, "Qsay \"hi\"\n");
	csv_expect("\"two\r\nlines\",x\r\n", ',', '"', 100, CSV_OK, "Qtwo\r\nlines|x\n");
	csv_expect("\"\"\n", ',', '"', 100, CSV_OK, "Q\n");
	csv_expect("a\"b,c\n", ',', '"', 100, CSV_OK, "a\"b|c\n");
	csv_expect("\"ab\"cd,e\n", ',', '"', 100, CSV_OK, "Qabcd|e\n");
	csv_expect("'x,y',z\n", ',', '\'', 100, CSV_OK, "Qx,y|z\n");
	csv_expect("\"x,y\",z\n", ',', 0, 100, CSV_OK, "\"x|y\"|z\n");
	csv_expect("\"open\n", ',', '"', 100, CSV_ERROR, "");
}

static void
test_csv_limits(void **state)
{
	csv_expect("abcdefgh,x\n", ',', '"', 4, CSV_OK, "Tabcd|x\n");
	csv_expect("1,2,3,4,5,6,7,8\n", ',', '"', 10, CSV_OK, "1|2|3|4|5|6|7|8\n");
	csv_expect("1,2,3,4,5,6,7,8,9\n", ',', '"', 10, CSV_ERROR, "");
	assert_null(csv_reader_new(',', ',', 10, 10));
}

static void
test_csv_stop(void **state)
{
	struct csv_reader *r = csv_reader_new(',', '"', 100, 8);
	struct out o;

	memset(&o, 0, sizeof o);
	o.stop_after = 2;
	assert_int_equal(csv_reader_feed(r, "a\nb\nc\nd\n", 8, csv_cb, &o), CSV_STOPPED);
	assert_string_equal(o.buf, "a\nb\n");
	csv_reader_free(r);
	csv_reader_free(NULL);
}

static int
json_cb(void *arg, const cJSON *v)
{
	struct out *o = arg;
	char *s = cJSON_PrintUnformatted(v);

	out_add(o, s, strlen(s));
	out_add(o, "\n", 1);
	cJSON_free(s);
	return o->stop_after > 0 && --o->stop_after == 0;
}

static enum json_status
json_run(const char *in, size_t len, size_t split, int bytewise, int lines, struct out *o)
{
	struct json_reader *r = json_reader_new(lines, 64);
	enum json_status s = JSON_OK;
	size_t i;

	assert_non_null(r);
	memset(o, 0, sizeof *o);
	if (bytewise) {
		for (i = 0; i < len && s == JSON_OK; i++)
			s = json_reader_feed(r, in + i, 1, json_cb, o);
	} else {
		s = json_reader_feed(r, in, split, json_cb, o);
		if (s == JSON_OK)
			s = json_reader_feed(r, in + split, len - split, json_cb, o);
	}
	if (s == JSON_OK)
		s = json_reader_finish(r, json_cb, o);
	json_reader_free(r);
	return s;
}

static void
json_expect(const char *in, int lines, enum json_status want, const char *expect)
{
	size_t len = strlen(in), split;
	struct out o;

	for (split = 0; split <= len; split++) {
		enum json_status s = json_run(in, len, split, 0, lines, &o);

		if (s != want || (want != JSON_ERROR && strcmp(o.buf, expect) != 0))
			fail_msg("split %zu of [%s]: status %d, got [%s] want [%s]", split, in, s, o.buf,
			    expect);
	}
	if (json_run(in, len, 0, 1, lines, &o) != want ||
	    (want != JSON_ERROR && strcmp(o.buf, expect) != 0))
		fail_msg("bytewise [%s]: got [%s] want [%s]", in, o.buf, expect);
}

static void
test_json_array(void **state)
{
	json_expect("[{\"a\":1},{\"b\":\"x,]}\"}]", 0, JSON_OK, "{\"a\":1}\n{\"b\":\"x,]}\"}\n");
	json_expect(" \xef\xbb\xbf[ ]", 0, JSON_ERROR, "");
	json_expect("\xef\xbb\xbf [ {\"a\" : [1, {\"b\":2}]} ] \n", 0, JSON_OK,
	    "{\"a\":[1,{\"b\":2}]}\n");
	json_expect("[1, true, \"s\\\"]\", null]", 0, JSON_OK, "1\ntrue\n\"s\\\"]\"\nnull\n");
	json_expect("[]", 0, JSON_OK, "");
	json_expect("[{\"a\":\"\\\\\"}]", 0, JSON_OK, "{\"a\":\"\\\\\"}\n");
	json_expect("[{\"a\":1},]", 0, JSON_ERROR, "");
	json_expect("[{\"a\":1}", 0, JSON_ERROR, "");
	json_expect(" {\"a\":{\"b\":[1]}} \n", 0, JSON_OK, "{\"a\":{\"b\":[1]}}\n");
	json_expect("{\"a\":1", 0, JSON_ERROR, "");
	json_expect("{\"a\":1} {}", 0, JSON_ERROR, "");
	json_expect("1", 0, JSON_ERROR, "");
	json_expect("[{\"a\":1}] x", 0, JSON_ERROR, "");
	json_expect("[{\"a\":1}}]", 0, JSON_ERROR, "");
	json_expect("[{\"a\":nope}]", 0, JSON_ERROR, "");
	json_expect("", 0, JSON_ERROR, "");
	/* a record over the 64-byte cap */
	json_expect("[{\"a\":\"0123456789012345678901234567890123456789012345678901234567890\"}]", 0,
	    JSON_ERROR, "");
}

static void
test_json_lines(void **state)
{
	json_expect("{\"a\":1}\n{\"a\":2}\n", 1, JSON_OK, "{\"a\":1}\n{\"a\":2}\n");
	json_expect("{\"a\":1}\r\n\n  \n{\"a\":2}", 1, JSON_OK, "{\"a\":1}\n{\"a\":2}\n");
	json_expect("{\"a\":1}\n{bad}\n", 1, JSON_ERROR, "");
	json_expect("", 1, JSON_OK, "");
}

static void
test_values(void **state)
{
	struct { const char *type, *in, *out; } cases[] = {
		{ "Int64", "42", "42" },
		{ "Int64", "-9007199254740992", "-9007199254740992" },
		{ "Int64", "9007199254740993", "\"9007199254740993\"" },
		{ "Int32", "x", "\"x\"" },
		{ "Decimal", "12.50", "12.5" },
		{ "Decimal", "123456789012345", "123456789012345" },
		{ "Decimal", "1234567890123456", "\"1234567890123456\"" },
		{ "Decimal", "0.000000000000001", "1e-15" },
		{ "Decimal", "12345678901234567890.1234", "\"12345678901234567890.1234\"" },
		{ "Decimal", "NaN", "\"NaN\"" },
		{ "Double", "0.5", "0.5" },
		{ "Double", "Infinity", "\"Infinity\"" },
		{ "Boolean", "t", "true" },
		{ "Boolean", "0", "false" },
		{ "String", "a\"b", "\"a\\\"b\"" },
		{ "String", "\xff", "\"\xef\xbf\xbd\"" },
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cJSON *v = auth_value(cases[i].type, cases[i].in, strlen(cases[i].in));
		char *s = cJSON_PrintUnformatted(v);

		if (strcmp(s, cases[i].out) != 0)
			fail_msg("%s %s: got %s want %s", cases[i].type, cases[i].in, s, cases[i].out);
		cJSON_free(s);
		cJSON_Delete(v);
	}
}

static void
test_truncation(void **state)
{
	char big[AUTH_VALUE_MAX * 2];
	char *s;

	memset(big, 'x', sizeof big);
	s = auth_clean_text(big, sizeof big, AUTH_VALUE_MAX);
	assert_int_equal(strlen(s), AUTH_VALUE_MAX + strlen(AUTH_TRUNC_MARKER));
	assert_string_equal(s + AUTH_VALUE_MAX, AUTH_TRUNC_MARKER);
	free(s);
	/* never cut inside a UTF-8 sequence */
	s = auth_clean_text("a\xc3\xa9", 3, 2);
	assert_string_equal(s, "a" AUTH_TRUNC_MARKER);
	free(s);
}

/* Replacement characters take 3 bytes for 1: a short value of bad bytes or
 * NULs, cut near the cap, once wrote past its buffer (the marker, or the
 * U+FFFD of a NUL counted as 1 byte); the sanitizer build catches it. */
static void
test_clean_text_replacements_fit(void **state)
{
	char bad[20], nul[40], *s;
	size_t i;

	memset(bad, 0xff, sizeof bad);
	s = auth_clean_text(bad, sizeof bad, 50);
	assert_int_equal(strlen(s), 48 + strlen(AUTH_TRUNC_MARKER));	/* 16 x U+FFFD, then the marker */
	assert_string_equal(s + 48, AUTH_TRUNC_MARKER);
	free(s);
	memset(nul, 0, sizeof nul);
	s = auth_clean_text(nul, sizeof nul, AUTH_VALUE_MAX);
	assert_int_equal(strlen(s), 3 * sizeof nul);
	for (i = 0; i < sizeof nul; i++)
		assert_memory_equal(s + 3 * i, "\xef\xbf\xbd", 3);
	free(s);
	s = auth_clean_text(nul, sizeof nul, 10);	/* 3 fit within 10 bytes */
	assert_string_equal(s, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" AUTH_TRUNC_MARKER);
	free(s);
	/* a long ASCII run is copied whole, and cut exactly at the cap */
	s = auth_clean_text("abcdefgh\xc3\xa9", 10, 5);
	assert_string_equal(s, "abcde" AUTH_TRUNC_MARKER);
	free(s);
}

static void
test_infer(void **state)
{
	struct { const char *vals[4]; int from_string; const char *type; } cases[] = {
		{ { "1", "2", NULL }, 0, "Int32" },
		{ { "1", "99999999999", NULL }, 0, "Int64" },
		{ { "1", "2.5", NULL }, 0, "Double" },
		{ { "true", "FALSE", NULL }, 0, "Boolean" },
		{ { "2026-11-01", "2026-11-02T10:00:00", NULL }, 0, "DateTime" },
		{ { "2026-11-01T10:00:00Z", "2026-11-01T10:00:00+02:00", NULL }, 0, "DateTimeOffset" },
		{ { "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", NULL }, 0, "Guid" },
		{ { "1", "x", NULL }, 0, "String" },
		{ { "12", NULL }, 1, "String" },
		{ { "nan", NULL }, 0, "String" },
		{ { NULL }, 0, "String" },
	};
	size_t i, k;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct auth_infer inf;

		auth_infer_init(&inf);
		for (k = 0; cases[i].vals[k]; k++)
			auth_infer_add(&inf, cases[i].vals[k], cases[i].from_string);
		if (strcmp(auth_infer_type(&inf), cases[i].type) != 0)
			fail_msg("case %zu: got %s want %s", i, auth_infer_type(&inf), cases[i].type);
	}
}

static void
test_rows(void **state)
{
	struct auth_rows *r = auth_rows_new(2, 1 << 20);
	cJSON *o = cJSON_CreateObject();
	char *s;

	assert_int_equal(auth_rows_add_column(r, "id", "Int64", 0), 0);
	assert_int_equal(auth_rows_add_column(r, "b", "ByteArray", 1), 0);
	assert_true(auth_rows_want(r));
	auth_rows_begin(r);
	auth_rows_text(r, "1", 1);
	auth_rows_bytes(r, "\x00\xff", 2);
	auth_rows_end(r);
	auth_rows_begin(r);
	auth_rows_text(r, "2", 1);	/* the missing cell becomes null */
	auth_rows_end(r);
	assert_false(auth_rows_want(r));
	auth_rows_set_truncated(r);
	auth_rows_to_json(r, o, true);
	s = cJSON_PrintUnformatted(o);
	assert_string_equal(s, "{\"columns\":[{\"name\":\"id\",\"type\":\"Int64\"},{\"name\":\"b\","
	    "\"type\":\"ByteArray\"}],\"rows\":[[1,\"AP8=\"],[2,null]],\"truncated\":true}");
	cJSON_free(s);
	cJSON_Delete(o);
	auth_rows_free(r);
	auth_rows_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csv_basic),
		cmocka_unit_test(test_csv_quotes),
		cmocka_unit_test(test_csv_limits),
		cmocka_unit_test(test_csv_stop),
		cmocka_unit_test(test_json_array),
		cmocka_unit_test(test_json_lines),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_clean_text_replacements_fit),
		cmocka_unit_test(test_infer),
		cmocka_unit_test(test_rows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
