/* Fuzz target: node sync messages. Input starting with byte 0: the rest is
 * the sealed JSON inside a box (sealed here under the fixed key, so the
 * parser behind the seal is reached); anything else: a message as it comes
 * from the relay. Nothing may crash, leak or read out of bounds. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "node/admin/seal.h"
#include "node/cluster/csync.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t key[CSYNC_KEY_LEN] = { 5 };
	struct shir_error err;
	struct csync_msg m;
	uint8_t *sealed = NULL;
	size_t sealedlen = 0;
	char *text = NULL, *b64;

	if (size > 0 && data[0] == 0 && size < 64 * 1024) {
		if (seal_with_key(key, SEAL_PURPOSE_SYNC, data + 1, size - 1, &sealed, &sealedlen,
		    &err) != 0)
			return 0;
		b64 = malloc(4 * ((sealedlen + 2) / 3) + 1);
		if (b64 != NULL) {
			EVP_EncodeBlock((unsigned char *)b64, sealed, (int)sealedlen);
			if (asprintf(&text, "{\"shirSync\":{\"v\":1,\"box\":\"%s\"}}", b64) < 0)
				text = NULL;
		}
		free(b64);
		free(sealed);
		if (text != NULL && csync_decode(key, text, strlen(text), &m, &err) == 0)
			csync_msg_clear(&m);
		free(text);
		return 0;
	}
	if (csync_decode(key, (const char *)data, size, &m, &err) == 0)
		csync_msg_clear(&m);
	return 0;
}
