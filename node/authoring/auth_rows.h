/* auth_rows: the columns and rows of a schema or preview answer, built on a
 * worker thread. Values arrive as text in the store's own text form (or as
 * bytes, or as JSON) and are encoded as the spec says: numbers for numeric
 * types (an Int64 or Decimal that a double cannot hold exactly stays a
 * string), booleans, null, ISO 8601 strings, base64 for ByteArray. Long
 * values are cut with a marker; the whole answer has a byte cap, after which
 * rows stop and "truncated" is set. */
#ifndef SHIR_AUTH_ROWS_H
#define SHIR_AUTH_ROWS_H

#include <stdbool.h>
#include <stddef.h>

struct cJSON;
struct auth_rows;

struct auth_rows *auth_rows_new(int limit, size_t cap);
void auth_rows_free(struct auth_rows *r);

/* nullable: 1, 0, or -1 (unknown: reported as true). Returns 0 or SHIR_E*. */
int auth_rows_add_column(struct auth_rows *r, const char *name, const char *type, int nullable);
int auth_rows_ncols(const struct auth_rows *r);
const char *auth_rows_col_type(const struct auth_rows *r, int i);
void auth_rows_set_col_type(struct auth_rows *r, int i, const char *type);

/* Rows. auth_rows_want() is false once limit rows were added or the cap was
 * reached; a connector that still has a row then calls
 * auth_rows_set_truncated() and stops. */
bool auth_rows_want(const struct auth_rows *r);
void auth_rows_set_truncated(struct auth_rows *r);
int auth_rows_count(const struct auth_rows *r);
int auth_rows_begin(struct auth_rows *r);
/* Cell i of the current row (cells are added in column order). */
void auth_rows_null(struct auth_rows *r);
void auth_rows_text(struct auth_rows *r, const char *text, size_t len);
void auth_rows_bytes(struct auth_rows *r, const void *bytes, size_t len);
void auth_rows_end(struct auth_rows *r);

/* Streaming (a preview answered as its rows arrive): each finished row goes
 * to fn, which takes the cJSON array, instead of being kept. fn returns 0,
 * or -1 to stop: auth_rows_want() is false from then on, so the connector
 * stops (and cancels) its query. */
typedef int (*auth_rows_sink_fn)(void *arg, struct auth_rows *r, struct cJSON *row);
void auth_rows_set_sink(struct auth_rows *r, auth_rows_sink_fn fn, void *arg);
bool auth_rows_truncated(const struct auth_rows *r);
/* Adds "columns" alone (as auth_rows_to_json does) to obj. */
int auth_rows_columns_json(const struct auth_rows *r, struct cJSON *obj, bool preview);

/* Adds "columns" (with "nullable" when with_nullable), and for a preview
 * "rows" and "truncated", to obj. */
int auth_rows_to_json(struct auth_rows *r, struct cJSON *obj, bool preview);

/* Helpers, exposed for tests. */
/* A cJSON value for text typed as type (one of the spec's interim names). */
struct cJSON *auth_value(const char *type, const char *text, size_t len);
/* Valid UTF-8 copy of at most max bytes (invalid bytes become U+FFFD), with
 * AUTH_TRUNC_MARKER appended when cut. */
char *auth_clean_text(const char *s, size_t len, size_t max);
/* The shortest text that reads back as exactly d; -1 for NaN/infinity. */
int auth_number_text(double d, char *buf, size_t n);
/* Does the decimal text fit a double exactly (at most 15 significant digits)? */
bool auth_decimal_fits_double(const char *s, size_t len);

/* Type inference for file columns, from the text of sampled values. */
struct auth_infer {
	unsigned cand;	/* bit set of candidate types */
	unsigned seen;	/* non-null values seen */
};
void auth_infer_init(struct auth_infer *inf);
/* from_string: the value was a JSON string (only date, time and guid
 * detection apply then, a JSON string never becomes a number). */
void auth_infer_add(struct auth_infer *inf, const char *s, bool from_string);
const char *auth_infer_type(const struct auth_infer *inf);

#endif
