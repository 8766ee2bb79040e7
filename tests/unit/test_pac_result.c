/* Unit tests for PAC's pure parts: the FindProxyForURL result string
 * (proxy/pac_result.c), split at every offset too, and the charset decoding
 * of a fetched PAC file (proxy/pac_fetch.c). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/shir_err.h"
#include "proxy/pac_fetch.h"
#include "proxy/pac_result.h"

static void
urls(const struct pac_result *r, char *buf, size_t len)
{
	size_t i, o = 0;
	char u[600];

	buf[0] = '\0';
	for (i = 0; i < r->n; i++) {
		pac_entry_url(&r->e[i], u, sizeof u);
		o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? " " : "", u);
	}
}

static void
test_result_table(void **state)
{
	static const struct { const char *in; int rc; const char *out; } t[] = {
		{ "PROXY a.corp:8080; PROXY b:3128; DIRECT", 0,
		  "http://a.corp:8080 http://b:3128 DIRECT" },
		{ "proxy A.Corp:8080;direct", 0, "http://a.corp:8080 DIRECT" },
		{ "PROXY a", 0, "http://a:80" },
		{ "HTTPS p:8443; HTTP q:81", 0, "https://p:8443 http://q:81" },
		{ "HTTPS p", 0, "https://p:443" },
		{ "SOCKS s; SOCKS4 t:9; SOCKS5 u:1081", 0,
		  "socks4a://s:1080 socks4a://t:9 socks5h://u:1081" },
		{ "PROXY [2001:db8::1]:3128", 0, "http://[2001:db8::1]:3128" },
		{ "", 0, "DIRECT" },
		{ "  ;  ; ", 0, "DIRECT" },
		{ "QUIC q:443; PROXY p:1", 0, "http://p:1" },
		{ "PROXY p:0; PROXY q:70000; PROXY r:", -1, "" },
		{ "PROXY bad host:1", -1, "" },
		{ "garbage", -1, "" },
		{ "DIRECT x", -1, "" },
		{ "PROXY a:1;PROXY a:2;PROXY a:3;PROXY a:4;PROXY a:5;PROXY a:6;PROXY a:7;"
		  "PROXY a:8;PROXY a:9", 0,
		  "http://a:1 http://a:2 http://a:3 http://a:4 http://a:5 http://a:6 http://a:7 "
		  "http://a:8" },
	};
	struct pac_result r;
	char buf[2048];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof t / sizeof t[0]; i++) {
		int rc = pac_result_parse(t[i].in, strlen(t[i].in), &r);

		if ((rc == 0) != (t[i].rc == 0))
			fail_msg("%s: rc %d, note %s", t[i].in, rc, r.note);
		if (rc == 0) {
			urls(&r, buf, sizeof buf);
			if (strcmp(buf, t[i].out) != 0)
				fail_msg("%s: got %s, want %s", t[i].in, buf, t[i].out);
		} else {
			assert_true(r.note[0] != '\0');
		}
	}
	/* a skipped entry is reported */
	assert_int_equal(pac_result_parse("QUIC q:1; PROXY p:2", 19, &r), 0);
	assert_int_equal(r.skipped, 1);
	assert_non_null(strstr(r.note, "unknown type"));
	/* the cap */
	memset(buf, 'a', sizeof buf);
	assert_int_equal(pac_result_parse(buf, PAC_RESULT_MAX_LEN + 1, &r), SHIR_EINVAL);
}

/* every prefix of a valid string parses or fails cleanly, never reads past */
static void
test_result_split(void **state)
{
	const char *s = "PROXY a.b:8080; HTTPS [::1]:443; SOCKS5 c:1; DIRECT";
	struct pac_result r;
	size_t i, n = strlen(s);

	(void)state;
	for (i = 0; i <= n; i++) {
		char *p = malloc(i ? i : 1);

		memcpy(p, s, i);
		(void)pac_result_parse(p, i, &r);
		assert_true(r.n <= PAC_RESULT_MAX);
		free(p);
	}
}

static void
decode_ok(const char *ct, const char *in, size_t inl, const char *want)
{
	struct shir_error err;
	char *t = NULL;
	size_t l = 0;

	if (pac_fetch_decode((const unsigned char *)in, inl, ct, &t, &l, &err) != 0)
		fail_msg("decode failed: %s", err.msg);
	assert_int_equal(l, strlen(want));
	assert_string_equal(t, want);
	free(t);
}

static void
decode_bad(const char *ct, const char *in, size_t inl, const char *msg)
{
	struct shir_error err;
	char *t = NULL;
	size_t l = 0;

	assert_true(pac_fetch_decode((const unsigned char *)in, inl, ct, &t, &l, &err) != 0);
	assert_null(t);
	if (strstr(err.msg, msg) == NULL)
		fail_msg("message %s lacks %s", err.msg, msg);
}

static void
test_decode(void **state)
{
	(void)state;
	/* no charset, no BOM: ISO-8859-1 */
	decode_ok(NULL, "caf\xe9", 4, "caf\xc3\xa9");
	decode_ok("application/x-ns-proxy-autoconfig", "caf\xe9", 4, "caf\xc3\xa9");
	/* BOMs */
	decode_ok(NULL, "\xef\xbb\xbf" "caf\xc3\xa9", 8, "caf\xc3\xa9");
	decode_ok(NULL, "\xff\xfe" "a\0\xe9\0", 6, "a\xc3\xa9");
	decode_ok(NULL, "\xfe\xff" "\0a\0\xe9", 6, "a\xc3\xa9");
	decode_ok(NULL, "\xff\xfe" "=\xd8\0\xde", 6, "\xf0\x9f\x98\x80");	/* a surrogate pair */
	/* Content-Type wins over the default */
	decode_ok("text/plain; charset=UTF-8", "caf\xc3\xa9", 5, "caf\xc3\xa9");
	decode_ok("text/plain;charset=\"iso-8859-1\"", "\xc3\xa9", 2, "\xc3\x83\xc2\xa9");
	decode_ok("text/plain; charset=utf-16le", "a\0", 2, "a");
	/* refused */
	decode_bad("text/plain; charset=utf-8", "caf\xe9", 4, "not valid UTF-8 (byte 0xe9 at offset 3)");
	decode_bad("text/plain; charset=utf-8", "\xed\xa0\x80", 3, "not valid UTF-8");
	decode_bad("text/plain; charset=utf-8", "\xc0\xaf", 2, "not valid UTF-8");
	decode_bad("text/plain; charset=shift_jis", "x", 1, "charset \"shift_jis\"");
	decode_bad(NULL, "\xff\xfe" "a", 3, "odd number of bytes");
	decode_bad(NULL, "\xff\xfe" "\0\xdc", 4, "lone surrogate");
	decode_bad(NULL, "a\0b", 3, "NUL character");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_result_table),
		cmocka_unit_test(test_result_split),
		cmocka_unit_test(test_decode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
