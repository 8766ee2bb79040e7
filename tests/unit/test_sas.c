/* Unit tests for relay/sas: the worked example and extra vectors of spec
 * §6.5, building hyco and .NET style tokens, and every verification outcome
 * of §6.4 (401 vs 403, skew, audience forms, claims). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "relay/sas.h"

#define KEY "K1bR8pX3nQ2vL6tY9wZ4cF7hJ0mA5sD8gE1uI3oP6rT="
#define SE 1735689600
#define NS "contoso.servicebus.windows.net"
#define WORKED "SharedAccessSignature sr=http%3A%2F%2Fcontoso.servicebus.windows.net%2Fmyhc%2F" \
	"&sig=RdpeEXk4lwLhdzeZI%2FAKpMUU84Gs8a6FhpM5GLBqg2s%3D&se=1735689600&skn=RootManageSharedAccessKey"

static const struct sas_rule RULES[] = {
	{ "RootManageSharedAccessKey", KEY, SAS_MANAGE },
	{ "send", KEY, SAS_SEND },
	{ "listen", "other-key", SAS_LISTEN },
};

static void
test_worked_example(void **state)
{
	char *t = NULL;

	assert_int_equal(sas_token_build("http://contoso.servicebus.windows.net/myhc/",
	    "RootManageSharedAccessKey", KEY, SE, &t), 0);
	assert_string_equal(t, WORKED);
	free(t);
}

static void
test_extra_vectors(void **state)
{
	char *t = NULL;
	struct sas_token p;

	assert_int_equal(sas_token_build("http://contoso.servicebus.windows.net/myhc", "k", KEY, SE, &t), 0);
	assert_int_equal(sas_token_parse(t, &p, NULL), 0);
	assert_string_equal(p.sig, "2lTp25F5rcvgN5Ku3iCMnhkmHI8DoxoM3tEaBj/DuW8=");
	assert_string_equal(p.sr, "http%3A%2F%2Fcontoso.servicebus.windows.net%2Fmyhc");
	assert_int_equal(p.expiry, SE);
	sas_token_clear(&p);
	free(t);
}

static void
test_lower_case_sr_verified_as_received(void **state)
{
	const char *t = "SharedAccessSignature sr=http%3a%2f%2fcontoso.servicebus.windows.net%2fmyhc%2f"
	    "&sig=ltsl1NVV4tJfc819q9UtTGQZf4KS08iJ2Y5HZfUGwDU%3D&se=1735689600&skn=RootManageSharedAccessKey";
	struct shir_error e;
	struct sas_verified v;

	assert_int_equal(sas_verify(t, RULES, 3, "myhc", NS, SAS_LISTEN, SE - 10, 5, &v, &e), 0);
	assert_string_equal(v.rule->name, "RootManageSharedAccessKey");
	assert_int_equal(v.expiry, SE);
}

static void
test_query_form(void **state)
{
	const char *q = "SharedAccessSignature%20sr%3Dhttp%253A%252F%252Fcontoso.servicebus.windows.net"
	    "%252Fmyhc%252F%26sig%3DRdpeEXk4lwLhdzeZI%252FAKpMUU84Gs8a6FhpM5GLBqg2s%253D%26se%3D1735689600"
	    "%26skn%3DRootManageSharedAccessKey";
	char *d = NULL, *plus;

	assert_int_equal(sas_url_decode(q, strlen(q), true, &d), 0);
	assert_string_equal(d, WORKED);
	free(d);
	/* .NET's WebUtility.UrlEncode writes the space as '+' */
	plus = strdup(q);
	memcpy(plus + strlen("SharedAccessSignature"), "+  ", 3);
	memmove(plus + strlen("SharedAccessSignature") + 1, plus + strlen("SharedAccessSignature") + 3,
	    strlen(plus + strlen("SharedAccessSignature") + 3) + 1);
	assert_int_equal(sas_url_decode(plus, strlen(plus), true, &d), 0);
	assert_string_equal(d, WORKED);
	free(d);
	free(plus);
	assert_int_equal(sas_url_decode("%4", 2, true, &d), SHIR_EINVAL);
	assert_int_equal(sas_url_decode("%zz", 3, true, &d), SHIR_EINVAL);
	assert_int_equal(sas_url_decode("%00", 3, true, &d), SHIR_EINVAL);
}

static int
verify(const char *tok, const char *entity, const char *ns, unsigned need, long long now)
{
	struct shir_error e;

	return sas_verify(tok, RULES, 3, entity, ns, need, now, 5, NULL, &e);
}

static void
test_verify_outcomes(void **state)
{
	char *t = NULL, *h = NULL;

	assert_int_equal(verify(WORKED, "myhc", NS, SAS_LISTEN, SE - 100), 0);
	assert_int_equal(verify(WORKED, "MyHC", NS, SAS_SEND, SE - 100), 0);
	assert_int_equal(verify(WORKED, "myhc/sub/path", NS, SAS_SEND, SE - 100), 0);
	assert_int_equal(verify(WORKED, "myhc", NULL, SAS_SEND, SE - 100), 0);
	assert_int_equal(verify(WORKED, "myhc", "CONTOSO.servicebus.windows.net", SAS_SEND, SE - 1), 0);
	/* clock skew: accepted a few seconds after se, refused later */
	assert_int_equal(verify(WORKED, "myhc", NS, SAS_SEND, SE + 3), 0);
	assert_int_equal(verify(WORKED, "myhc", NS, SAS_SEND, SE + 6), SHIR_EAUTH);
	/* audience */
	assert_int_equal(verify(WORKED, "myhc2", NS, SAS_SEND, SE - 100), SHIR_EPERM);
	assert_int_equal(verify(WORKED, "other", NS, SAS_SEND, SE - 100), SHIR_EPERM);
	assert_int_equal(verify(WORKED, "myhc", "evil.example", SAS_SEND, SE - 100), SHIR_EPERM);
	/* tampering */
	{
		char bad[512];

		snprintf(bad, sizeof bad, "%s", WORKED);
		strstr(bad, "sig=")[4] = 'S';
		assert_int_equal(verify(bad, "myhc", NS, SAS_SEND, SE - 100), SHIR_EAUTH);
		snprintf(bad, sizeof bad, "%s", WORKED);
		strstr(bad, "se=")[12] = '1';
		assert_int_equal(verify(bad, "myhc", NS, SAS_SEND, SE - 100), SHIR_EAUTH);
	}
	assert_int_equal(verify("SharedAccessSignature sr=a&sig=b&se=1", "myhc", NS, SAS_SEND, 0),
	    SHIR_EAUTH);
	assert_int_equal(verify("Bearer xyz", "myhc", NS, SAS_SEND, 0), SHIR_EAUTH);
	assert_int_equal(verify("", "myhc", NS, SAS_SEND, 0), SHIR_EAUTH);
	assert_int_equal(verify(NULL, "myhc", NS, SAS_SEND, 0), SHIR_EAUTH);
	/* claims: "send" has Send only; "listen" signs with another key */
	assert_int_equal(sas_token_build("http://" NS "/myhc", "send", KEY, SE, &t), 0);
	assert_int_equal(verify(t, "myhc", NS, SAS_SEND, SE - 100), 0);
	assert_int_equal(verify(t, "myhc", NS, SAS_LISTEN, SE - 100), SHIR_EPERM);
	free(t);
	assert_int_equal(sas_token_build("http://" NS "/myhc", "listen", KEY, SE, &t), 0);
	assert_int_equal(verify(t, "myhc", NS, SAS_LISTEN, SE - 100), SHIR_EAUTH);
	free(t);
	assert_int_equal(sas_token_build("http://" NS "/myhc", "nobody", KEY, SE, &t), 0);
	assert_int_equal(verify(t, "myhc", NS, SAS_LISTEN, SE - 100), SHIR_EAUTH);
	free(t);
	/* namespace-wide token; hyco token with a port; field order and case */
	assert_int_equal(sas_token_build("http://" NS "/", "send", KEY, SE, &t), 0);
	assert_int_equal(verify(t, "anything/below", NS, SAS_SEND, SE - 100), 0);
	free(t);
	assert_int_equal(sas_audience_hyco("ws://127.0.0.1:9300/$hc/myhc?sb-hc-action=listen", &h), 0);
	assert_string_equal(h, "http://127.0.0.1:9300/myhc");
	assert_int_equal(sas_token_build(h, "send", KEY, SE, &t), 0);
	assert_int_equal(verify(t, "myhc", NULL, SAS_SEND, SE - 100), 0);
	assert_int_equal(verify(t, "myhc", "127.0.0.1", SAS_SEND, SE - 100), 0);
	free(t);
	free(h);
	assert_int_equal(verify("sharedaccesssignature SKN=RootManageSharedAccessKey&se=1735689600"
	    "&SIG=RdpeEXk4lwLhdzeZI%2FAKpMUU84Gs8a6FhpM5GLBqg2s%3D"
	    "&sr=http%3A%2F%2Fcontoso.servicebus.windows.net%2Fmyhc%2F", "myhc", NS, SAS_SEND, SE - 1), 0);
}

static void
test_audiences(void **state)
{
	char *a = NULL;

	assert_int_equal(sas_audience_hyco("wss://Contoso.servicebus.windows.net:443/$hc/MyHc?x=1#f", &a), 0);
	assert_string_equal(a, "http://contoso.servicebus.windows.net:443/MyHc");
	free(a);
	assert_int_equal(sas_audience_dotnet("sb://Contoso.servicebus.windows.net:443/myhc", &a), 0);
	assert_string_equal(a, "http://contoso.servicebus.windows.net/myhc/");
	free(a);
	assert_int_equal(sas_audience_dotnet("wss://ns/$hc/a/b/", &a), 0);
	assert_string_equal(a, "http://ns/a/b/");
	free(a);
	assert_int_equal(sas_audience_hyco("no-scheme", &a), SHIR_EINVAL);
	a = sas_url_encode("a b/c?d=é");
	assert_string_equal(a, "a%20b%2Fc%3Fd%3D%C3%A9");
	free(a);
}

static void
test_far_expiry_no_overflow(void **state)
{
	char *t = NULL;
	struct sas_verified v;
	struct shir_error e;

	/* a validly signed token with the largest se: se + skew must not overflow */
	assert_int_equal(sas_token_build("http://contoso.servicebus.windows.net/myhc", "send", KEY,
	    INT64_MAX, &t), 0);
	assert_int_equal(sas_verify(t, RULES, 3, "myhc", NS, SAS_SEND, SE, 5, &v, &e), 0);
	assert_true(v.expiry == INT64_MAX);
	free(t);
}

/* Keyed HMAC contexts are kept per key (relay/sas.c): a token signed with one
 * key never verifies with another, whatever the table holds: more keys than
 * the table has slots, keys that differ in the last byte, a key that is a
 * prefix of another, and the empty key, in two rounds. */
static void
test_many_keys(void **state)
{
	char keys[40][48], *t[40];
	struct sas_rule r[2];
	struct shir_error e;
	int i, round;

	for (i = 0; i < 40; i++) {
		if (i < 20)
			snprintf(keys[i], sizeof keys[i], "key-number-%02d-abcdefghijklmnopqrstuv", i);
		else if (i < 38)
			snprintf(keys[i], sizeof keys[i], "%.*s", 10 + i - 20, "key-number-00-abcdefghijklmnopqrstuv");
		else
			snprintf(keys[i], sizeof keys[i], "%s", i == 38 ? "" : "k");
	}
	for (round = 0; round < 2; round++) {
		for (i = 0; i < 40; i++)
			assert_int_equal(sas_token_build("http://" NS "/myhc", "r", keys[i], SE, &t[i]), 0);
		for (i = 0; i < 40; i++) {
			int j = (i * 7 + 3) % 40;

			r[0] = (struct sas_rule){ "r", keys[i], SAS_SEND };
			assert_int_equal(sas_verify(t[i], r, 1, "myhc", NS, SAS_SEND, SE - 10, 5, NULL, &e), 0);
			if (strcmp(keys[i], keys[j]) != 0)
				assert_int_equal(sas_verify(t[j], r, 1, "myhc", NS, SAS_SEND, SE - 10, 5, NULL,
				    &e), SHIR_EAUTH);
		}
		for (i = 0; i < 40; i++)
			free(t[i]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_worked_example),
		cmocka_unit_test(test_extra_vectors),
		cmocka_unit_test(test_lower_case_sr_verified_as_received),
		cmocka_unit_test(test_query_form),
		cmocka_unit_test(test_verify_outcomes),
		cmocka_unit_test(test_far_expiry_no_overflow),
		cmocka_unit_test(test_audiences),
		cmocka_unit_test(test_many_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
