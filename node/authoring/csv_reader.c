#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/authoring/csv_reader.h"

enum csv_state {
	CS_FIELD_START = 0,	/* at the start of a field */
	CS_UNQUOTED,		/* inside an unquoted field */
	CS_QUOTED,		/* inside a quoted field */
	CS_QUOTE_IN_QUOTED,	/* saw a quote inside a quoted field: end or doubled */
	CS_AFTER_CR,		/* a record ended with CR; swallow a following LF */
	CS_ERROR,
};

struct csv_buf {
	char *data;
	size_t len, cap;
	bool quoted, truncated;
};

struct csv_reader {
	enum csv_state st;
	char delim, quote;
	size_t max_field, max_fields;
	struct csv_buf *fields;	/* max_fields + 1 */
	size_t nfields;		/* fields of the current record, the last in progress */
	bool in_record;		/* the current record has any byte */
	unsigned long records;
	char err[160];
};

struct csv_reader *
csv_reader_new(char delim, char quote, size_t max_field, size_t max_fields)
{
	struct csv_reader *r;

	if (delim == quote || delim == '\n' || delim == '\r' || max_fields == 0)
		return NULL;
	r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	r->fields = calloc(max_fields + 1, sizeof *r->fields);
	if (r->fields == NULL) {
		free(r);
		return NULL;
	}
	r->delim = delim;
	r->quote = quote;
	r->max_field = max_field;
	r->max_fields = max_fields;
	r->nfields = 1;
	return r;
}

void
csv_reader_free(struct csv_reader *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i <= r->max_fields; i++)
		free(r->fields[i].data);
	free(r->fields);
	free(r);
}

const char *
csv_reader_error(const struct csv_reader *r)
{
	return r->err;
}

unsigned long
csv_reader_records(const struct csv_reader *r)
{
	return r->records;
}

static int
csv_error(struct csv_reader *r, const char *what)
{
	r->st = CS_ERROR;
	snprintf(r->err, sizeof r->err, "record %lu: %s", r->records + 1, what);
	return -1;
}

static int
csv_put(struct csv_reader *r, char ch)
{
	struct csv_buf *b = &r->fields[r->nfields - 1];

	r->in_record = true;
	if (b->len >= r->max_field) {
		b->truncated = true;
		return 0;
	}
	if (b->len + 2 > b->cap) {
		size_t nc = b->cap ? b->cap * 2 : 64;
		char *nd;

		if (nc > r->max_field + 1)
			nc = r->max_field + 1;
		if (nc < b->len + 2)
			nc = b->len + 2;
		nd = realloc(b->data, nc);
		if (nd == NULL)
			return csv_error(r, "out of memory");
		b->data = nd;
		b->cap = nc;
	}
	b->data[b->len++] = ch;
	return 0;
}

static int
csv_next_field(struct csv_reader *r)
{
	r->in_record = true;
	if (r->nfields == r->max_fields) {
		char m[96];

		snprintf(m, sizeof m, "more than %zu fields", r->max_fields);
		return csv_error(r, m);
	}
	r->nfields++;
	return 0;
}

static void
csv_reset(struct csv_reader *r)
{
	size_t i;

	for (i = 0; i < r->nfields; i++) {
		r->fields[i].len = 0;
		r->fields[i].quoted = r->fields[i].truncated = false;
	}
	r->nfields = 1;
	r->in_record = false;
}

/* Emits the current record. Returns 1 when the callback asked to stop. */
static int
csv_emit(struct csv_reader *r, csv_record_fn fn, void *arg)
{
	struct csv_field f[r->nfields];
	size_t i;
	int stop;

	for (i = 0; i < r->nfields; i++) {
		struct csv_buf *b = &r->fields[i];

		if (b->data == NULL) {
			b->data = malloc(1);
			if (b->data == NULL)
				return csv_error(r, "out of memory");
			b->cap = 1;
		}
		b->data[b->len] = '\0';
		f[i].data = b->data;
		f[i].len = b->len;
		f[i].quoted = b->quoted;
		f[i].truncated = b->truncated;
	}
	r->records++;
	stop = fn(arg, f, r->nfields);
	csv_reset(r);
	return stop ? 1 : 0;
}

enum csv_status
csv_reader_feed(struct csv_reader *r, const char *buf, size_t len, csv_record_fn fn, void *arg)
{
	size_t i;
	int rc;

	for (i = 0; i < len; i++) {
		char ch = buf[i];

		switch (r->st) {
		case CS_ERROR:
			return CSV_ERROR;
		case CS_AFTER_CR:
			r->st = CS_FIELD_START;
			if (ch == '\n')
				break;
			/* FALLTHROUGH */
		case CS_FIELD_START:
			if (r->quote && ch == r->quote) {
				r->fields[r->nfields - 1].quoted = true;
				r->in_record = true;
				r->st = CS_QUOTED;
				break;
			}
			r->st = CS_UNQUOTED;
			/* FALLTHROUGH */
		case CS_UNQUOTED:
			if (ch == r->delim) {
				if (csv_next_field(r) != 0)
					return CSV_ERROR;
				r->st = CS_FIELD_START;
			} else if (ch == '\n' || ch == '\r') {
				r->st = ch == '\r' ? CS_AFTER_CR : CS_FIELD_START;
				/* a blank line is no record */
				if (r->in_record) {
					rc = csv_emit(r, fn, arg);
					if (rc < 0)
						return CSV_ERROR;
					if (rc > 0)
						return CSV_STOPPED;
				} else {
					csv_reset(r);
				}
			} else if (csv_put(r, ch) != 0) {
				return CSV_ERROR;
			}
			break;
		case CS_QUOTED:
			if (ch == r->quote)
				r->st = CS_QUOTE_IN_QUOTED;
			else if (csv_put(r, ch) != 0)
				return CSV_ERROR;
			break;
		case CS_QUOTE_IN_QUOTED:
			if (ch == r->quote) {
				/* a doubled quote is one quote */
				if (csv_put(r, ch) != 0)
					return CSV_ERROR;
				r->st = CS_QUOTED;
				break;
			}
			/* the field's closing quote; what follows is lenient:
			 * text after it joins the field, as spreadsheets do */
			r->st = CS_UNQUOTED;
			i--;
			break;
		}
	}
	return r->st == CS_ERROR ? CSV_ERROR : CSV_OK;
}

enum csv_status
csv_reader_finish(struct csv_reader *r, csv_record_fn fn, void *arg)
{
	int rc;

	if (r->st == CS_ERROR)
		return CSV_ERROR;
	if (r->st == CS_QUOTED) {
		csv_error(r, "a quoted field is not closed at the end of the file");
		return CSV_ERROR;
	}
	if (!r->in_record)
		return CSV_OK;
	rc = csv_emit(r, fn, arg);
	r->st = CS_FIELD_START;
	return rc < 0 ? CSV_ERROR : rc > 0 ? CSV_STOPPED : CSV_OK;
}
