/* csv_reader: an incremental reader of delimited text (RFC 4180 and what
 * spreadsheets write). No I/O: bytes in (UTF-8, any chunking), records out.
 * Quoted fields may hold delimiters, doubled quotes and line breaks; records
 * end at LF, CRLF or CR. A field longer than max_field bytes keeps its first
 * max_field bytes and is flagged truncated; a record with more than
 * max_fields fields moves the reader to the error state. */
#ifndef SHIR_CSV_READER_H
#define SHIR_CSV_READER_H

#include <stdbool.h>
#include <stddef.h>

struct csv_reader;

struct csv_field {
	const char *data;	/* NUL-terminated */
	size_t len;
	bool quoted;
	bool truncated;
};

/* Called once per record. Return non-zero to stop reading: feed then
 * returns CSV_STOPPED and the rest of its buffer is not read. */
typedef int (*csv_record_fn)(void *arg, const struct csv_field *fields, size_t n);

enum csv_status { CSV_OK = 0, CSV_STOPPED = 1, CSV_ERROR = -1 };

/* quote 0: no quoting. Returns NULL when out of memory or delim == quote. */
struct csv_reader *csv_reader_new(char delim, char quote, size_t max_field, size_t max_fields);
void csv_reader_free(struct csv_reader *r);

enum csv_status csv_reader_feed(struct csv_reader *r, const char *buf, size_t len,
    csv_record_fn fn, void *arg);
/* End of input: emits the last record if it did not end with a newline.
 * An unterminated quoted field is an error. */
enum csv_status csv_reader_finish(struct csv_reader *r, csv_record_fn fn, void *arg);
/* After CSV_ERROR: what went wrong, with the record number (1-based). */
const char *csv_reader_error(const struct csv_reader *r);
unsigned long csv_reader_records(const struct csv_reader *r);

#endif
