/* Fuzz target: relay/irkey strict decoding; a decoded key must encode and
 * decode back to the same fields. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/irkey.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), *enc = NULL;
	struct irkey k, k2;
	struct shir_error e;

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (irkey_decode(s, &k, &e) == 0) {
		if (irkey_encode(&k, &enc, &e) != 0)
			abort();
		if (irkey_decode(enc, &k2, &e) != 0 || strcmp(k.key, k2.key) != 0 ||
		    strcmp(k.endpoint, k2.endpoint) != 0)
			abort();
		irkey_clear(&k2);
		free(enc);
		irkey_clear(&k);
	}
	free(s);
	return 0;
}
