/* Fuzz target: relay/sc_proto, the relay's answer to the self-contained
 * upgrade; a complete head's length is within the input, a 101 it accepts
 * has Upgrade: reverse and Selected-ALPN: h2. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/sc_proto.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sc_answer a;
	struct shir_error e;
	int n = sc_proto_parse_answer((const char *)data, size, &a, &e);

	if (n > 0 && ((size_t)n > size || n < 4 || a.status < 0 || a.status > 999))
		abort();
	if (n > 0 && a.status == 101 && memmem(data, (size_t)n, "h2", 2) == NULL)
		abort();
	return 0;
}
