/* Fuzz target: the shird.conf loader. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "node/conf.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct shir_error err;
	struct conf *c = NULL;

	if (conf_load_buffer("fuzz.conf", (const char *)data, size, &c, &err) == 0) {
		struct conf *d = conf_new_defaults();

		if (d != NULL) {
			conf_keep_unreloadable(d, c, &err);
			conf_free(d);
		}
	}
	conf_free(c);
	return 0;
}
