/* rtca: the runtime CA derived from the runtime data key (rtca.h). */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "node/cluster/rtca.h"

static const char RTCA_INFO[] = "shir runtime CA v1";

static int
rtca_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ex;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	if ((ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
		return 0;
	ok = X509_add_ext(cert, ex, -1) == 1;
	X509_EXTENSION_free(ex);
	return ok;
}

static int
rtca_name(X509 *cert, const char *cn, int issuer_too)
{
	X509_NAME *n = X509_get_subject_name(cert);

	if (X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char *)"shir runtime",
	    -1, -1, 0) != 1 || X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0) != 1)
		return 0;
	return !issuer_too || X509_set_issuer_name(cert, n) == 1;
}

int
rtca_derive(const uint8_t data_key[RTCA_KEY_LEN], EVP_PKEY **ca_key, X509 **ca_cert,
    struct shir_error *err)
{
	EVP_PKEY_CTX *h = NULL;
	EVP_PKEY *k = NULL;
	X509 *c = NULL;
	uint8_t seed[32], pub[32], fp[SHA256_DIGEST_LENGTH];
	size_t sl = sizeof seed, pl = sizeof pub;
	char cn[64];
	int ok;

	*ca_key = NULL;
	*ca_cert = NULL;
	ok = (h = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL)) != NULL &&
	    EVP_PKEY_derive_init(h) == 1 && EVP_PKEY_CTX_set_hkdf_md(h, EVP_sha256()) == 1 &&
	    EVP_PKEY_CTX_set1_hkdf_key(h, data_key, RTCA_KEY_LEN) == 1 &&
	    EVP_PKEY_CTX_add1_hkdf_info(h, (const unsigned char *)RTCA_INFO, sizeof RTCA_INFO - 1) ==
	    1 && EVP_PKEY_derive(h, seed, &sl) == 1 &&
	    (k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof seed)) != NULL &&
	    EVP_PKEY_get_raw_public_key(k, pub, &pl) == 1;
	EVP_PKEY_CTX_free(h);
	OPENSSL_cleanse(seed, sizeof seed);
	if (ok) {
		SHA256(pub, sizeof pub, fp);
		snprintf(cn, sizeof cn, "shir runtime CA %02x%02x%02x%02x%02x%02x%02x%02x", fp[0],
		    fp[1], fp[2], fp[3], fp[4], fp[5], fp[6], fp[7]);
		/* fixed serial and dates: the same certificate on every member */
		ok = (c = X509_new()) != NULL && X509_set_version(c, 2) == 1 &&
		    ASN1_INTEGER_set(X509_get_serialNumber(c), 1) == 1 &&
		    ASN1_TIME_set_string(X509_getm_notBefore(c), "20000101000000Z") == 1 &&
		    ASN1_TIME_set_string(X509_getm_notAfter(c), "21000101000000Z") == 1 &&
		    rtca_name(c, cn, 1) && X509_set_pubkey(c, k) == 1 &&
		    rtca_ext(c, c, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
		    rtca_ext(c, c, NID_key_usage, "critical,keyCertSign,cRLSign") &&
		    X509_sign(c, k, NULL) > 0;
	}
	if (!ok) {
		EVP_PKEY_free(k);
		X509_free(c);
		return shir_error_set(err, SHIR_ECRYPTO, "cannot derive the runtime CA");
	}
	*ca_key = k;
	*ca_cert = c;
	return 0;
}

int
rtca_issue(EVP_PKEY *ca_key, X509 *ca_cert, const char *node_id, long seconds,
    EVP_PKEY **key, X509 **cert, struct shir_error *err)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	X509 *c = NULL;
	uint8_t serial[16];
	BIGNUM *bn = NULL;
	time_t now = time(NULL);
	int ok;

	*key = NULL;
	*cert = NULL;
	ok = k != NULL && RAND_bytes(serial, sizeof serial) == 1 &&
	    (serial[0] &= 0x7f, (bn = BN_bin2bn(serial, sizeof serial, NULL)) != NULL) &&
	    (c = X509_new()) != NULL && X509_set_version(c, 2) == 1 &&
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c)) != NULL &&
	    X509_time_adj(X509_getm_notBefore(c), seconds < 0 ? seconds - 120 : -60, &now) != NULL &&
	    X509_time_adj(X509_getm_notAfter(c), seconds, &now) != NULL &&
	    rtca_name(c, node_id, 0) &&
	    X509_set_issuer_name(c, X509_get_subject_name(ca_cert)) == 1 &&
	    X509_set_pubkey(c, k) == 1 &&
	    rtca_ext(c, ca_cert, NID_basic_constraints, "critical,CA:FALSE") &&
	    rtca_ext(c, ca_cert, NID_key_usage, "critical,digitalSignature") &&
	    rtca_ext(c, ca_cert, NID_ext_key_usage, "serverAuth,clientAuth") &&
	    X509_sign(c, ca_key, NULL) > 0;
	BN_free(bn);
	if (!ok) {
		EVP_PKEY_free(k);
		X509_free(c);
		return shir_error_set(err, SHIR_ECRYPTO, "cannot issue the node's certificate");
	}
	*key = k;
	*cert = c;
	return 0;
}

int
rtca_verify(X509 *ca_cert, X509 *peer, char *why, size_t whylen)
{
	X509_STORE *st = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ok = 0;

	snprintf(why, whylen, "out of memory");
	if (st != NULL && ctx != NULL && X509_STORE_add_cert(st, ca_cert) == 1 &&
	    X509_STORE_CTX_init(ctx, st, peer, NULL) == 1) {
		ok = X509_verify_cert(ctx) == 1;
		if (!ok)
			snprintf(why, whylen, "%s",
			    X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
	}
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	if (ok)
		why[0] = 0;
	return ok ? 0 : -1;
}
