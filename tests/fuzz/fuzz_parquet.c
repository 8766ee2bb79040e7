/* Fuzz target: the Parquet writer's value parsing and row groups. The first
 * byte picks the column types and the codec; the rest is split at '\n' into
 * cells (a cell "\x01" is a null), rows of three cells. Whatever the input,
 * the writer either fails with a message or writes a framed file. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/copy/parquet.h"

static const char *const TYPES[] = { "Boolean", "Int16", "Int32", "Int64", "Single", "Double",
	"Decimal", "String", "DateTime", "DateTimeOffset", "TimeSpan", "Guid", "ByteArray" };

static size_t total;

static int
out(void *arg, const void *d, size_t n)
{
	(void)arg;
	(void)d;
	total += n;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct parquet_column cols[3];
	struct parquet_writer *w;
	struct shir_error e = { 0 };
	size_t i = 1, start;
	int c = 0, rc = 0;

	if (size < 1)
		return 0;
	for (c = 0; c < 3; c++) {
		cols[c].name = c == 0 ? "a" : c == 1 ? "b" : "c";
		cols[c].type = TYPES[(data[0] >> (c * 2)) % 13];
		cols[c].nullable = c != 0;
	}
	total = 0;
	w = parquet_writer_new(cols, 3, (enum parquet_codec)(data[0] % 3), PARQUET_ROW_GROUP_MIN, out,
	    NULL, &e);
	if (w == NULL)
		abort();
	c = 0;
	for (start = 1; i <= size && rc == 0; i++) {
		if (i < size && data[i] != '\n')
			continue;
		if (i - start == 1 && data[start] == 1)
			rc = parquet_null(w, &e);
		else
			rc = parquet_text(w, (const char *)data + start, i - start, &e);
		if (rc == 0 && ++c == 3) {
			rc = parquet_end_row(w, &e);
			c = 0;
		}
		start = i + 1;
	}
	if (rc == 0 && c == 0) {
		if (parquet_finish(w, &e) != 0 || total < 12)
			abort();
	} else if (rc != 0 && e.msg[0] == '\0') {
		abort();
	}
	parquet_writer_free(w);
	return 0;
}
