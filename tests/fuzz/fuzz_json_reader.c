/* Fuzz target: the incremental JSON record reader (arrays and JSON Lines).
 * The first byte picks the mode and the split point; fed in two chunks and
 * byte by byte, both must agree. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "node/authoring/json_reader.h"

static int
count(void *arg, const cJSON *v)
{
	(*(unsigned long *)arg)++;
	return 0;
}

static unsigned long
run(const uint8_t *d, size_t n, size_t split, int bytewise, int lines, int *err)
{
	struct json_reader *r = json_reader_new(lines, 256);
	unsigned long c = 0;
	enum json_status s = JSON_OK;
	size_t i;

	if (r == NULL)
		return 0;
	if (bytewise) {
		for (i = 0; i < n && s == JSON_OK; i++)
			s = json_reader_feed(r, (const char *)d + i, 1, count, &c);
	} else {
		s = json_reader_feed(r, (const char *)d, split, count, &c);
		if (s == JSON_OK)
			s = json_reader_feed(r, (const char *)d + split, n - split, count, &c);
	}
	if (s == JSON_OK)
		s = json_reader_finish(r, count, &c);
	*err = s == JSON_ERROR;
	json_reader_free(r);
	return c;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int lines, e1, e2;
	size_t split;

	if (size < 1)
		return 0;
	lines = data[0] & 1;
	data++, size--;
	split = size ? (size_t)data[0] % (size + 1) : 0;
	if (run(data, size, split, 0, lines, &e1) != run(data, size, 0, 1, lines, &e2) || e1 != e2)
		abort();
	return 0;
}
