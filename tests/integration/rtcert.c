/* rtcert: a helper of test_ha_direct.py. "rtcert STATE-DIR SECONDS OUT.pem"
 * reads the node's runtime data key (sealed under its machine key), derives
 * the runtime CA and writes to OUT.pem (mode 0600) a certificate it issues
 * for the CN "rtcert", valid SECONDS from now (negative: already expired),
 * with its key: what a member could present, for the test to present it from
 * a plain TLS client. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/pem.h>

#include "node/cluster/rtca.h"
#include "node/cluster/rtkey.h"

int
main(int argc, char **argv)
{
	struct shir_error err;
	uint8_t key[RTKEY_LEN];
	EVP_PKEY *ca_key = NULL, *k = NULL;
	X509 *ca = NULL, *c = NULL;
	FILE *f;
	int ok;

	if (argc != 4) {
		fprintf(stderr, "usage: rtcert STATE-DIR SECONDS OUT.pem\n");
		return 2;
	}
	if (rtkey_load(argv[1], key, &err) != 0 || rtca_derive(key, &ca_key, &ca, &err) != 0 ||
	    rtca_issue(ca_key, ca, "rtcert", strtol(argv[2], NULL, 10), &k, &c, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	OPENSSL_cleanse(key, sizeof key);
	umask(077);
	ok = (f = fopen(argv[3], "w")) != NULL && PEM_write_X509(f, c) == 1 &&
	    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1;
	if (f != NULL && fclose(f) != 0)
		ok = 0;
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(k);
	X509_free(ca);
	X509_free(c);
	if (!ok) {
		perror(argv[3]);
		return 1;
	}
	return 0;
}
