/* Fuzz target: node.json as registration_parse reads it. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/admin/registration.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct registration *r = NULL, *d;
	struct shir_error err;
	char *text = malloc(size + 1);

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (registration_parse(text, "fuzz", &r, &err) == 0) {
		/* a parsed registration has what the listener needs */
		if (r->ir == NULL || r->endpoint == NULL || r->hc == NULL || r->key_name == NULL)
			abort();
		d = registration_dup(r);
		registration_free(d);
	}
	registration_free(r);
	free(text);
	return 0;
}
