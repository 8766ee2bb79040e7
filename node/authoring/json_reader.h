/* json_reader: an incremental reader of JSON records: the elements of a
 * top-level array ([{...}, {...}]), a single top-level object (one record),
 * or the lines of JSON Lines. No I/O: bytes
 * in, any chunking. It only finds where each record begins and ends (strings,
 * escapes and nesting tracked by an explicit state machine) and hands each
 * complete record to cJSON; a record larger than max_record bytes, bad
 * framing or JSON that cJSON refuses moves it to the error state. */
#ifndef SHIR_JSON_READER_H
#define SHIR_JSON_READER_H

#include <stdbool.h>
#include <stddef.h>

struct cJSON;
struct json_reader;

/* Called per record with a parsed value (the reader frees it afterwards).
 * Return non-zero to stop reading. */
typedef int (*json_record_fn)(void *arg, const struct cJSON *value);

enum json_status { JSON_OK = 0, JSON_STOPPED = 1, JSON_ERROR = -1 };

struct json_reader *json_reader_new(bool lines, size_t max_record);
void json_reader_free(struct json_reader *r);
enum json_status json_reader_feed(struct json_reader *r, const char *buf, size_t len,
    json_record_fn fn, void *arg);
/* End of input: an array must be closed; a last JSON line without a newline
 * is emitted. */
enum json_status json_reader_finish(struct json_reader *r, json_record_fn fn, void *arg);
const char *json_reader_error(const struct json_reader *r);
unsigned long json_reader_records(const struct json_reader *r);

#endif
