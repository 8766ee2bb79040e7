/* Fuzz target: the streaming reader of a Get Block List answer (the
 * uncommitted block ids a resumed copy may skip). The first byte sets the
 * size of the pieces the answer arrives in (as libcurl hands it over); the
 * rest is the answer. Whatever the input, the reader keeps at most max ids,
 * each one of this sink's format. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/copy/blob_sink.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct blob_list_parser p;
	size_t piece, i;

	if (size < 1)
		return 0;
	memset(&p, 0, sizeof p);
	p.max = 16;
	piece = (size_t)data[0] + 1;
	data++;
	size--;
	blob_list_reset(&p);
	while (size > 0) {
		size_t k = size < piece ? size : piece;

		blob_list_feed(&p, (const char *)data, k);
		data += k;
		size -= k;
	}
	if (blob_list_count(&p) > p.max || p.nc > sizeof p.carry)
		abort();
	for (i = 0; i < blob_list_count(&p); i++)
		if (memcmp(p.ids + i * 57, "shir-2-", 7) != 0)
			abort();
	blob_list_free(&p);
	return 0;
}
