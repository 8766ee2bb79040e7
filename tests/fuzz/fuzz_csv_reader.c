/* Fuzz target: the incremental CSV reader. The first byte picks the
 * delimiter/quote and where the input is split; the rest is fed in two
 * chunks, then byte by byte, and both must give the same record count. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/authoring/csv_reader.h"

static int
count(void *arg, const struct csv_field *f, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (f[i].data[f[i].len] != '\0')
			abort();
	(*(unsigned long *)arg)++;
	return 0;
}

static unsigned long
run(const uint8_t *d, size_t n, size_t split, int bytewise, char delim, char quote, int *err)
{
	struct csv_reader *r = csv_reader_new(delim, quote, 64, 32);
	unsigned long c = 0;
	enum csv_status s = CSV_OK;
	size_t i;

	if (r == NULL)
		return 0;
	if (bytewise) {
		for (i = 0; i < n && s == CSV_OK; i++)
			s = csv_reader_feed(r, (const char *)d + i, 1, count, &c);
	} else {
		s = csv_reader_feed(r, (const char *)d, split, count, &c);
		if (s == CSV_OK)
			s = csv_reader_feed(r, (const char *)d + split, n - split, count, &c);
	}
	if (s == CSV_OK)
		s = csv_reader_finish(r, count, &c);
	*err = s == CSV_ERROR;
	csv_reader_free(r);
	return c;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char delims[] = { ',', ';', '\t', '|' };
	char delim, quote;
	size_t split;
	int e1, e2;

	if (size < 1)
		return 0;
	delim = delims[data[0] & 3];
	quote = (data[0] & 4) ? '\'' : (data[0] & 8) ? 0 : '"';
	data++, size--;
	split = size ? (size_t)data[0] % (size + 1) : 0;
	if (run(data, size, split, 0, delim, quote, &e1) != run(data, size, 0, 1, delim, quote, &e2) ||
	    e1 != e2)
		abort();
	return 0;
}
