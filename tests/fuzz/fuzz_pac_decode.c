/* Fuzz target: PAC file decoding to UTF-8. The first line is the
 * Content-Type ("-" for none), the rest the body. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/pac_fetch.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	struct shir_error err;
	char ct[200], *text = NULL;
	size_t cl = 0, len = 0;
	const uint8_t *body = data;
	size_t blen = size;

	if (nl != NULL) {
		cl = (size_t)(nl - data);
		if (cl >= sizeof ct)
			cl = sizeof ct - 1;
		memcpy(ct, data, cl);
		body = nl + 1;
		blen = size - (size_t)(nl - data) - 1;
	}
	ct[cl] = '\0';
	if (pac_fetch_decode(body, blen, nl && strcmp(ct, "-") != 0 ? ct : NULL, &text, &len,
	    &err) == 0) {
		if (text == NULL || strlen(text) != len)
			abort();
		free(text);
	}
	return 0;
}
