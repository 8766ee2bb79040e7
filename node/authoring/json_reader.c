#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "node/authoring/json_reader.h"

enum json_state {
	JS_START = 0,		/* before '[' (array) or in a line (lines) */
	JS_BEFORE_ELEM,		/* after '[' or ',' */
	JS_IN_ELEM,		/* inside a record */
	JS_AFTER_ELEM,		/* after a record: ',' or ']' */
	JS_DONE,		/* after the closing ']' */
	JS_ERROR,
};

struct json_reader {
	enum json_state st;
	bool lines;
	size_t max_record;
	char *buf;
	size_t len, cap;
	int depth;
	bool in_string, escape;
	bool after_comma;
	bool single;		/* the document is one object, not an array */
	size_t bom;		/* bytes of a UTF-8 BOM matched at the start */
	bool started;		/* a non-BOM byte was seen */
	unsigned long records;
	char err[160];
};

static const unsigned char json_bom[3] = { 0xef, 0xbb, 0xbf };

struct json_reader *
json_reader_new(bool lines, size_t max_record)
{
	struct json_reader *r = calloc(1, sizeof *r);

	if (r == NULL)
		return NULL;
	r->lines = lines;
	r->max_record = max_record;
	return r;
}

void
json_reader_free(struct json_reader *r)
{
	if (r == NULL)
		return;
	free(r->buf);
	free(r);
}

const char *
json_reader_error(const struct json_reader *r)
{
	return r->err;
}

unsigned long
json_reader_records(const struct json_reader *r)
{
	return r->records;
}

static int
json_error(struct json_reader *r, const char *what)
{
	r->st = JS_ERROR;
	snprintf(r->err, sizeof r->err, "record %lu: %s", r->records + 1, what);
	return -1;
}

static int
json_put(struct json_reader *r, char ch)
{
	if (r->len >= r->max_record) {
		char m[96];

		snprintf(m, sizeof m, "a record is larger than %zu bytes", r->max_record);
		return json_error(r, m);
	}
	if (r->len + 1 > r->cap) {
		size_t nc = r->cap ? r->cap * 2 : 256;
		char *nb;

		if (nc > r->max_record)
			nc = r->max_record;
		nb = realloc(r->buf, nc);
		if (nb == NULL)
			return json_error(r, "out of memory");
		r->buf = nb;
		r->cap = nc;
	}
	r->buf[r->len++] = ch;
	return 0;
}

static bool
json_ws(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

/* Parses the buffered record and hands it over. -1 error, 1 stop, 0 go on. */
static int
json_emit(struct json_reader *r, json_record_fn fn, void *arg)
{
	cJSON *v = cJSON_ParseWithLength(r->buf, r->len);
	int stop;

	r->len = 0;
	r->depth = 0;
	r->in_string = r->escape = false;
	if (v == NULL)
		return json_error(r, "not valid JSON");
	r->records++;
	stop = fn(arg, v);
	cJSON_Delete(v);
	return stop ? 1 : 0;
}

/* Tracks strings and nesting for one byte of a record; returns true when
 * the byte closes a record that started with '{', '[' or '"'. */
static bool
json_track(struct json_reader *r, char ch)
{
	if (r->in_string) {
		if (r->escape)
			r->escape = false;
		else if (ch == '\\')
			r->escape = true;
		else if (ch == '"') {
			r->in_string = false;
			return r->depth == 0;
		}
		return false;
	}
	if (ch == '"')
		r->in_string = true;
	else if (ch == '{' || ch == '[')
		r->depth++;
	else if (ch == '}' || ch == ']')
		return --r->depth == 0;
	return false;
}

static enum json_status
json_feed_lines(struct json_reader *r, char ch, json_record_fn fn, void *arg)
{
	size_t i;
	int rc;

	if (ch != '\n')
		return json_put(r, ch) ? JSON_ERROR : JSON_OK;
	for (i = 0; i < r->len && json_ws(r->buf[i]); i++)
		;
	if (i == r->len) {
		r->len = 0;	/* a blank line */
		return JSON_OK;
	}
	rc = json_emit(r, fn, arg);
	return rc < 0 ? JSON_ERROR : rc > 0 ? JSON_STOPPED : JSON_OK;
}

enum json_status
json_reader_feed(struct json_reader *r, const char *buf, size_t len, json_record_fn fn, void *arg)
{
	size_t i;
	int rc;

	for (i = 0; i < len; i++) {
		char ch = buf[i];

		if (r->st == JS_ERROR)
			return JSON_ERROR;
		if (!r->started) {
			if (r->bom < 3 && (unsigned char)ch == json_bom[r->bom]) {
				r->bom++;
				continue;
			}
			if (r->bom > 0 && r->bom < 3) {
				json_error(r, "a broken byte order mark");
				return JSON_ERROR;
			}
			r->started = true;
		}
		if (r->lines) {
			enum json_status s = json_feed_lines(r, ch, fn, arg);

			if (s != JSON_OK)
				return s;
			continue;
		}
		switch (r->st) {
		case JS_START:
			if (json_ws(ch))
				break;
			if (ch == '{') {
				/* a single document: one record */
				r->single = true;
				r->st = JS_IN_ELEM;
				i--;
				break;
			}
			if (ch != '[') {
				json_error(r, "the file must hold a JSON object or an array of records "
				    "(or set jsonLines for JSON Lines)");
				return JSON_ERROR;
			}
			r->st = JS_BEFORE_ELEM;
			r->after_comma = false;
			break;
		case JS_BEFORE_ELEM:
			if (json_ws(ch))
				break;
			if (ch == ']') {
				if (r->after_comma) {
					json_error(r, "a comma before ']'");
					return JSON_ERROR;
				}
				r->st = JS_DONE;
				break;
			}
			if (ch == ',') {
				json_error(r, "an empty element");
				return JSON_ERROR;
			}
			r->st = JS_IN_ELEM;
			/* FALLTHROUGH */
		case JS_IN_ELEM:
			if (r->depth == 0 && !r->in_string && r->len > 0 &&
			    (ch == ',' || ch == ']' || json_ws(ch))) {
				/* the end of a bare scalar (number, true, ...) */
				rc = json_emit(r, fn, arg);
				if (rc != 0)
					return rc < 0 ? JSON_ERROR : JSON_STOPPED;
				r->st = JS_AFTER_ELEM;
				i--;
				break;
			}
			if (json_put(r, ch) != 0)
				return JSON_ERROR;
			if (r->depth < 0) {
				json_error(r, "unbalanced brackets");
				return JSON_ERROR;
			}
			if (json_track(r, ch)) {
				rc = json_emit(r, fn, arg);
				if (rc != 0)
					return rc < 0 ? JSON_ERROR : JSON_STOPPED;
				r->st = r->single ? JS_DONE : JS_AFTER_ELEM;
			} else if (r->depth < 0) {
				json_error(r, "unbalanced brackets");
				return JSON_ERROR;
			}
			break;
		case JS_AFTER_ELEM:
			if (json_ws(ch))
				break;
			if (ch == ',') {
				r->st = JS_BEFORE_ELEM;
				r->after_comma = true;
			} else if (ch == ']') {
				r->st = JS_DONE;
			} else {
				json_error(r, "expected ',' or ']' after a record");
				return JSON_ERROR;
			}
			break;
		case JS_DONE:
			if (!json_ws(ch)) {
				json_error(r, "data after the closing ']'");
				return JSON_ERROR;
			}
			break;
		case JS_ERROR:
			return JSON_ERROR;
		}
	}
	return JSON_OK;
}

enum json_status
json_reader_finish(struct json_reader *r, json_record_fn fn, void *arg)
{
	int rc;

	if (r->st == JS_ERROR)
		return JSON_ERROR;
	if (r->lines) {
		if (r->len == 0)
			return JSON_OK;
		return json_feed_lines(r, '\n', fn, arg);
	}
	if (r->st == JS_IN_ELEM && r->depth == 0 && !r->in_string && r->len > 0) {
		rc = json_emit(r, fn, arg);
		if (rc != 0)
			return rc < 0 ? JSON_ERROR : JSON_STOPPED;
		r->st = JS_AFTER_ELEM;
	}
	if (r->st != JS_DONE) {
		json_error(r, r->st == JS_START ? "the file is empty: expected JSON" :
		    r->single ? "the JSON object is not closed at the end of the file" :
		    "the JSON array is not closed at the end of the file");
		return JSON_ERROR;
	}
	return JSON_OK;
}
