/* Unit tests for rtca: the runtime CA derived from the runtime data key, the
 * certificates a node issues itself, and their verification (the proof of
 * membership the node-to-node transport is to use; docs/ha.md). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/x509.h>

#include "node/cluster/rtca.h"

static const uint8_t KEY[RTCA_KEY_LEN] = { 1, 2, 3 };
static const uint8_t OTHER[RTCA_KEY_LEN] = { 9 };

static void
der_of(X509 *c, unsigned char **out, int *len)
{
	*out = NULL;
	*len = i2d_X509(c, out);
	assert_true(*len > 0);
}

static void
test_same_ca_on_every_member(void **state)
{
	struct shir_error err;
	EVP_PKEY *k1, *k2, *k3;
	X509 *c1, *c2, *c3;
	unsigned char *d1, *d2, *d3;
	int l1, l2, l3;

	(void)state;
	assert_int_equal(rtca_derive(KEY, &k1, &c1, &err), 0);
	assert_int_equal(rtca_derive(KEY, &k2, &c2, &err), 0);
	assert_int_equal(rtca_derive(OTHER, &k3, &c3, &err), 0);
	der_of(c1, &d1, &l1);
	der_of(c2, &d2, &l2);
	der_of(c3, &d3, &l3);
	/* the same bytes from the same data key, other bytes from another */
	assert_int_equal(l1, l2);
	assert_memory_equal(d1, d2, (size_t)l1);
	assert_true(l1 != l3 || memcmp(d1, d3, (size_t)l1) != 0);
	OPENSSL_free(d1);
	OPENSSL_free(d2);
	OPENSSL_free(d3);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(k3);
	X509_free(c1);
	X509_free(c2);
	X509_free(c3);
}

static void
test_members_accepted_others_refused(void **state)
{
	struct shir_error err;
	EVP_PKEY *ca, *oca, *nk, *ok, *ek;
	X509 *cac, *ocac, *nc, *oc, *ec;
	char why[256];

	(void)state;
	assert_int_equal(rtca_derive(KEY, &ca, &cac, &err), 0);
	assert_int_equal(rtca_derive(OTHER, &oca, &ocac, &err), 0);
	assert_int_equal(rtca_issue(ca, cac, "node-a", 86400, &nk, &nc, &err), 0);
	assert_int_equal(rtca_issue(oca, ocac, "node-x", 86400, &ok, &oc, &err), 0);
	assert_int_equal(rtca_issue(ca, cac, "node-old", -10, &ek, &ec, &err), 0);
	/* a member: accepted */
	assert_int_equal(rtca_verify(cac, nc, why, sizeof why), 0);
	assert_string_equal(why, "");
	/* another runtime's node, a self-signed certificate (its own CA): refused */
	assert_int_equal(rtca_verify(cac, oc, why, sizeof why), -1);
	assert_non_null(strstr(why, "issuer"));
	assert_int_equal(rtca_verify(cac, ocac, why, sizeof why), -1);
	/* an expired member certificate */
	assert_int_equal(rtca_verify(cac, ec, why, sizeof why), -1);
	assert_non_null(strstr(why, "expired"));
	EVP_PKEY_free(ca);
	EVP_PKEY_free(oca);
	EVP_PKEY_free(nk);
	EVP_PKEY_free(ok);
	EVP_PKEY_free(ek);
	X509_free(cac);
	X509_free(ocac);
	X509_free(nc);
	X509_free(oc);
	X509_free(ec);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_ca_on_every_member),
		cmocka_unit_test(test_members_accepted_others_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
