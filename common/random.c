/* random: see random.h. */
#include "config.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/random.h"

int
random_bytes(void *buf, size_t len)
{
	static __thread unsigned char pool[4096];
	static __thread size_t left;

	if (len > sizeof pool)
		return RAND_bytes(buf, (int)len) == 1 ? 0 : SHIR_ECRYPTO;
	if (left < len) {
		if (RAND_bytes(pool, sizeof pool) != 1)
			return SHIR_ECRYPTO;
		left = sizeof pool;
	}
	left -= len;
	memcpy(buf, pool + left, len);
	OPENSSL_cleanse(pool + left, len);
	return 0;
}

int
random_uuid(char out[RANDOM_UUID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	size_t i, o = 0;

	out[0] = '\0';
	if (random_bytes(b, sizeof b) != 0)
		return SHIR_ECRYPTO;
	b[6] = (b[6] & 0x0f) | 0x40;	/* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
	for (i = 0; i < sizeof b; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 15];
	}
	out[o] = '\0';
	return 0;
}
