/* parquet: a minimal Parquet writer (docs/copy.md, "Parquet"): a flat schema
 * of the authoring API's column types, PLAIN encoding, one data page (v1)
 * per column chunk, definition levels (RLE) for nullable columns, Snappy or
 * ZSTD, row groups bounded in bytes, the footer in Thrift's compact protocol
 * written by hand. It does no I/O: bytes go to the caller's out function as
 * they are ready, so a sink may upload them; memory is one row group's
 * values plus its compressed copy, whatever the number of rows. */
#ifndef SHIR_PARQUET_H
#define SHIR_PARQUET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/shir_err.h"

enum parquet_codec { PARQUET_NONE = 0, PARQUET_SNAPPY, PARQUET_ZSTD };

#define PARQUET_ROW_GROUP_MIN (64 * 1024)
#define PARQUET_ROW_GROUP_MAX (1024 * 1024 * 1024)
#define PARQUET_ROW_GROUP_DEFAULT (16 * 1024 * 1024)
#define PARQUET_COLUMNS_MAX 1024

struct parquet_column {
	const char *name;
	const char *type;	/* Boolean, Int16, Int32, Int64, Single, Double, Decimal,
				   String, DateTime, DateTimeOffset, TimeSpan, Guid, ByteArray */
	bool nullable;
};

/* Receives the file's bytes in order; returns 0, or non-zero to stop the
 * writer (its error is then SHIR_EIO unless e was set by the callback's
 * owner). */
typedef int (*parquet_out_fn)(void *arg, const void *data, size_t len);

struct parquet_writer;

/* "snappy", "zstd", "none" (or NULL: snappy). */
int parquet_codec_parse(const char *s, enum parquet_codec *out);
/* The Parquet physical type name a column type maps to ("INT64", ...). */
const char *parquet_physical_name(const char *api_type);

struct parquet_writer *parquet_writer_new(const struct parquet_column *cols, int ncols,
    enum parquet_codec codec, size_t row_group_bytes, parquet_out_fn out, void *arg,
    struct shir_error *e);
void parquet_writer_free(struct parquet_writer *w);

/* The cells of one row, in column order, then parquet_end_row. Text is what
 * the connectors give (and the authoring API shows): "true"/"t"/"1",
 * decimal integers, floating point text ("NaN", "Infinity"), ISO 8601 dates
 * and times (a time without an offset is UTC); bytes are raw (ByteArray).
 * A value that does not read as its column's type fails with SHIR_EINVAL
 * naming the column and the row. */
int parquet_null(struct parquet_writer *w, struct shir_error *e);
int parquet_text(struct parquet_writer *w, const char *text, size_t len, struct shir_error *e);
int parquet_bytes(struct parquet_writer *w, const void *data, size_t len, struct shir_error *e);
int parquet_end_row(struct parquet_writer *w, struct shir_error *e);
/* Writes the last row group and the footer. */
int parquet_finish(struct parquet_writer *w, struct shir_error *e);

uint64_t parquet_rows(const struct parquet_writer *w);
uint64_t parquet_bytes_written(const struct parquet_writer *w);
/* Bytes held for the current row group (values, levels). */
size_t parquet_buffered(const struct parquet_writer *w);

/* ISO 8601 text to microseconds since 1970-01-01T00:00:00Z; exposed for tests. */
int parquet_parse_timestamp(const char *s, size_t len, int64_t *micros);

#endif
