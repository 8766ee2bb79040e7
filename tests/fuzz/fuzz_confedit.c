/* Fuzz target: the shird.conf in-place editor over arbitrary text. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/admin/confedit.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct confedit edits[] = {
		{ "node", "name", "fuzz" },
		{ "security", "allowed_folders", NULL },
		{ "proxy", "mode", "custom" },
	};
	struct shir_error err;
	char *text = malloc(size + 1), *out = NULL;
	size_t i;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	for (i = 0; i < sizeof edits / sizeof edits[0]; i++) {
		if (confedit_set(text, &edits[i], &out, &err) == 0) {
			/* setting a key is idempotent: the second edit finds the line
			 * the first one wrote and leaves the text as it is */
			char *again = NULL;

			if (edits[i].value != NULL &&
			    confedit_set(out, &edits[i], &again, &err) == 0 && strcmp(again, out) != 0)
				abort();
			free(again);
			free(out);
		}
	}
	free(text);
	return 0;
}
