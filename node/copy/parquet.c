/* parquet: see parquet.h. The layout of a file:
 *
 *   "PAR1" | row group 1: column chunk 1 (page header, page) ... | ...
 *          | FileMetaData (Thrift compact) | its length (4 bytes LE) | "PAR1"
 *
 * A data page (v1) holds, compressed together: the definition levels of a
 * nullable column (4-byte length, then RLE runs of bit width 1) and the
 * values, PLAIN (little-endian numbers, bit-packed booleans, 4-byte length
 * + bytes for byte arrays). Repetition levels are absent (flat schema). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <snappy-c.h>
#include <zstd.h>

#include "node/copy/parquet.h"

/* Parquet's enums (parquet.thrift) */
enum { PT_BOOLEAN = 0, PT_INT32 = 1, PT_INT64 = 2, PT_FLOAT = 4, PT_DOUBLE = 5, PT_BYTE_ARRAY = 6 };
enum { CT_UTF8 = 0, CT_TIMESTAMP_MICROS = 10, CT_INT_16 = 16, CT_INT_32 = 17, CT_INT_64 = 18 };
enum { ENC_PLAIN = 0, ENC_RLE = 3 };
enum { REP_REQUIRED = 0, REP_OPTIONAL = 1 };

/* Thrift compact protocol type ids */
enum { TC_TRUE = 1, TC_FALSE = 2, TC_BYTE = 3, TC_I16 = 4, TC_I32 = 5, TC_I64 = 6, TC_DOUBLE = 7,
	TC_BINARY = 8, TC_LIST = 9, TC_STRUCT = 12 };

enum pkind { PK_BOOL, PK_I16, PK_I32, PK_I64, PK_FLOAT, PK_DOUBLE, PK_STRING, PK_BYTES, PK_TS };

/* ---- a growable byte buffer ------------------------------------------------ */

struct buf {
	uint8_t *d;
	size_t n, cap;
	bool oom;
};

static int
buf_reserve(struct buf *b, size_t more)
{
	size_t cap = b->cap ? b->cap : 256;
	uint8_t *d;

	if (b->oom)
		return -1;
	if (b->n + more <= b->cap)
		return 0;
	while (cap < b->n + more) {
		if (cap > SIZE_MAX / 2) {
			b->oom = true;
			return -1;
		}
		cap *= 2;
	}
	d = realloc(b->d, cap);
	if (d == NULL) {
		b->oom = true;
		return -1;
	}
	b->d = d;
	b->cap = cap;
	return 0;
}

static void
buf_add(struct buf *b, const void *p, size_t n)
{
	if (n == 0 || buf_reserve(b, n) != 0)
		return;
	memcpy(b->d + b->n, p, n);
	b->n += n;
}

static void
buf_byte(struct buf *b, uint8_t v)
{
	buf_add(b, &v, 1);
}

static void
buf_le(struct buf *b, uint64_t v, int n)
{
	uint8_t t[8];
	int i;

	for (i = 0; i < n; i++)
		t[i] = (uint8_t)(v >> (8 * i));
	buf_add(b, t, (size_t)n);
}

static void
buf_free(struct buf *b)
{
	free(b->d);
	memset(b, 0, sizeof *b);
}

/* ---- Thrift compact protocol (the subset the footer needs) ------------------ */

struct tc {
	struct buf *b;
	int16_t last[16];	/* last field id, per open struct */
	int depth;
};

static void
tc_varint(struct tc *t, uint64_t v)
{
	while (v >= 0x80) {
		buf_byte(t->b, (uint8_t)(v | 0x80));
		v >>= 7;
	}
	buf_byte(t->b, (uint8_t)v);
}

static uint64_t
zigzag(int64_t v)
{
	return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static void
tc_field(struct tc *t, int16_t id, int type)
{
	int16_t delta = (int16_t)(id - t->last[t->depth]);

	if (delta > 0 && delta <= 15) {
		buf_byte(t->b, (uint8_t)(delta << 4 | type));
	} else {
		buf_byte(t->b, (uint8_t)type);
		tc_varint(t, zigzag(id));
	}
	t->last[t->depth] = id;
}

static void
tc_i32(struct tc *t, int16_t id, int32_t v)
{
	tc_field(t, id, TC_I32);
	tc_varint(t, zigzag(v));
}

static void
tc_i64(struct tc *t, int16_t id, int64_t v)
{
	tc_field(t, id, TC_I64);
	tc_varint(t, zigzag(v));
}

static void
tc_bool(struct tc *t, int16_t id, bool v)
{
	tc_field(t, id, v ? TC_TRUE : TC_FALSE);
}

static void
tc_byte(struct tc *t, int16_t id, int8_t v)
{
	tc_field(t, id, TC_BYTE);
	buf_byte(t->b, (uint8_t)v);
}

static void
tc_binary_raw(struct tc *t, const char *s)
{
	size_t l = strlen(s);

	tc_varint(t, l);
	buf_add(t->b, s, l);
}

static void
tc_string(struct tc *t, int16_t id, const char *s)
{
	tc_field(t, id, TC_BINARY);
	tc_binary_raw(t, s);
}

/* A struct value: as a field (id > 0) or a list element (id 0). */
static void
tc_struct_begin(struct tc *t, int16_t id)
{
	if (id > 0)
		tc_field(t, id, TC_STRUCT);
	t->depth++;
	t->last[t->depth] = 0;
}

static void
tc_struct_end(struct tc *t)
{
	buf_byte(t->b, 0);	/* stop */
	t->depth--;
}

static void
tc_list_begin(struct tc *t, int16_t id, int elem_type, size_t n)
{
	tc_field(t, id, TC_LIST);
	if (n < 15) {
		buf_byte(t->b, (uint8_t)(n << 4 | elem_type));
	} else {
		buf_byte(t->b, (uint8_t)(0xf0 | elem_type));
		tc_varint(t, n);
	}
}

/* ---- the writer ------------------------------------------------------------- */

struct pcol {
	char *name;
	enum pkind kind;
	bool nullable;
	struct buf vals;	/* PLAIN values (booleans: one byte each until packed) */
	struct buf defs;	/* one byte per row: 1 present, 0 null */
	uint64_t nvals;		/* values present in this row group */
};

struct chunk_meta {
	int64_t offset, usize, csize, nvalues;
};

struct rgroup {
	struct chunk_meta *cols;
	int64_t rows, bytes;
};

struct parquet_writer {
	struct pcol *cols;
	int ncols;
	int cur;			/* next cell's column */
	enum parquet_codec codec;
	size_t rg_bytes;
	parquet_out_fn out;
	void *arg;
	uint64_t rows, rg_rows;
	uint64_t pos;			/* bytes written */
	size_t buffered;
	struct rgroup *groups;
	size_t ngroups, capgroups;
	struct buf page, comp, head;	/* scratch, reused */
	bool failed, finished;
};

static const struct {
	const char *api;
	enum pkind kind;
} TYPES[] = {
	{ "Boolean", PK_BOOL }, { "Int16", PK_I16 }, { "Int32", PK_I32 }, { "Int64", PK_I64 },
	{ "Single", PK_FLOAT }, { "Double", PK_DOUBLE }, { "Decimal", PK_STRING },
	{ "String", PK_STRING }, { "DateTime", PK_TS }, { "DateTimeOffset", PK_TS },
	{ "TimeSpan", PK_STRING }, { "Guid", PK_STRING }, { "ByteArray", PK_BYTES },
};

static enum pkind
kind_of(const char *api)
{
	size_t i;

	for (i = 0; api != NULL && i < sizeof TYPES / sizeof TYPES[0]; i++)
		if (strcmp(api, TYPES[i].api) == 0)
			return TYPES[i].kind;
	return PK_STRING;
}

static int
physical(enum pkind k)
{
	switch (k) {
	case PK_BOOL: return PT_BOOLEAN;
	case PK_I16: case PK_I32: return PT_INT32;
	case PK_I64: case PK_TS: return PT_INT64;
	case PK_FLOAT: return PT_FLOAT;
	case PK_DOUBLE: return PT_DOUBLE;
	default: return PT_BYTE_ARRAY;
	}
}

const char *
parquet_physical_name(const char *api_type)
{
	static const char *const names[] = { "BOOLEAN", "INT32", "INT64", "INT96", "FLOAT", "DOUBLE",
		"BYTE_ARRAY" };

	return names[physical(kind_of(api_type))];
}

int
parquet_codec_parse(const char *s, enum parquet_codec *out)
{
	if (s == NULL || strcasecmp(s, "snappy") == 0)
		*out = PARQUET_SNAPPY;
	else if (strcasecmp(s, "zstd") == 0)
		*out = PARQUET_ZSTD;
	else if (strcasecmp(s, "none") == 0 || strcasecmp(s, "uncompressed") == 0)
		*out = PARQUET_NONE;
	else
		return SHIR_EINVAL;
	return 0;
}

static int
emit(struct parquet_writer *w, const void *d, size_t n, struct shir_error *e)
{
	if (n == 0)
		return 0;
	if (w->out(w->arg, d, n) != 0) {
		w->failed = true;
		if (e != NULL && e->code == 0)
			shir_error_set(e, SHIR_EIO, "the Parquet file's sink refused its bytes");
		return e != NULL && e->code ? e->code : SHIR_EIO;
	}
	w->pos += n;
	return 0;
}

struct parquet_writer *
parquet_writer_new(const struct parquet_column *cols, int ncols, enum parquet_codec codec,
    size_t row_group_bytes, parquet_out_fn out, void *arg, struct shir_error *e)
{
	struct parquet_writer *w;
	int i;

	if (ncols < 1 || ncols > PARQUET_COLUMNS_MAX) {
		shir_error_set(e, SHIR_EINVAL, "a Parquet file needs 1 to %d columns (got %d)",
		    PARQUET_COLUMNS_MAX, ncols);
		return NULL;
	}
	if (row_group_bytes < PARQUET_ROW_GROUP_MIN || row_group_bytes > PARQUET_ROW_GROUP_MAX) {
		shir_error_set(e, SHIR_EINVAL, "the Parquet row group size must be from %d to %d bytes",
		    PARQUET_ROW_GROUP_MIN, PARQUET_ROW_GROUP_MAX);
		return NULL;
	}
	w = calloc(1, sizeof *w);
	if (w == NULL || (w->cols = calloc((size_t)ncols, sizeof *w->cols)) == NULL) {
		free(w);
		shir_error_set(e, SHIR_ENOMEM, "out of memory");
		return NULL;
	}
	w->ncols = ncols;
	w->codec = codec;
	w->rg_bytes = row_group_bytes;
	w->out = out;
	w->arg = arg;
	for (i = 0; i < ncols; i++) {
		const char *n = cols[i].name && *cols[i].name ? cols[i].name : "column";

		w->cols[i].name = strdup(n);
		w->cols[i].kind = kind_of(cols[i].type);
		w->cols[i].nullable = cols[i].nullable;
		if (w->cols[i].name == NULL) {
			parquet_writer_free(w);
			shir_error_set(e, SHIR_ENOMEM, "out of memory");
			return NULL;
		}
	}
	if (emit(w, "PAR1", 4, e) != 0) {
		parquet_writer_free(w);
		return NULL;
	}
	return w;
}

void
parquet_writer_free(struct parquet_writer *w)
{
	int i;
	size_t g;

	if (w == NULL)
		return;
	for (i = 0; w->cols != NULL && i < w->ncols; i++) {
		free(w->cols[i].name);
		buf_free(&w->cols[i].vals);
		buf_free(&w->cols[i].defs);
	}
	for (g = 0; g < w->ngroups; g++)
		free(w->groups[g].cols);
	free(w->groups);
	free(w->cols);
	buf_free(&w->page);
	buf_free(&w->comp);
	buf_free(&w->head);
	free(w);
}

/* ---- values ------------------------------------------------------------------ */

static struct pcol *
cell(struct parquet_writer *w, struct shir_error *e)
{
	if (w->failed || w->finished) {
		shir_error_set(e, SHIR_EINVAL, "the Parquet writer has %s", w->failed ? "failed" :
		    "finished");
		return NULL;
	}
	if (w->cur >= w->ncols) {
		shir_error_set(e, SHIR_EINVAL, "row %llu has more cells than the %d columns",
		    (unsigned long long)w->rows + 1, w->ncols);
		return NULL;
	}
	return &w->cols[w->cur];
}

static int
bad_value(struct parquet_writer *w, struct pcol *c, const char *what, const char *text, size_t len,
    struct shir_error *e)
{
	w->failed = true;
	return shir_error_set(e, SHIR_EINVAL, "row %llu, column '%s': '%.*s' is not %s",
	    (unsigned long long)w->rows + 1, c->name, (int)(len > 64 ? 64 : len), text, what);
}

static int
put_done(struct parquet_writer *w, struct pcol *c, size_t grew, struct shir_error *e)
{
	if (c->vals.oom || c->defs.oom) {
		w->failed = true;
		return shir_error_set(e, SHIR_ENOMEM, "out of memory buffering a Parquet row group");
	}
	w->buffered += grew + 1;
	w->cur++;
	return 0;
}

int
parquet_null(struct parquet_writer *w, struct shir_error *e)
{
	struct pcol *c = cell(w, e);

	if (c == NULL)
		return e->code;
	if (!c->nullable) {
		w->failed = true;
		return shir_error_set(e, SHIR_EINVAL, "row %llu, column '%s': a null in a column the "
		    "source declared not nullable", (unsigned long long)w->rows + 1, c->name);
	}
	buf_byte(&c->defs, 0);
	return put_done(w, c, 0, e);
}

static bool
parse_ll(const char *s, size_t len, long long min, long long max, long long *out)
{
	char t[32], *end;
	long long v;

	if (len == 0 || len >= sizeof t)
		return false;
	memcpy(t, s, len);
	t[len] = '\0';
	errno = 0;
	v = strtoll(t, &end, 10);
	if (errno != 0 || *end != '\0' || isspace((unsigned char)t[0]) || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool
parse_double(const char *s, size_t len, double *out)
{
	char t[64], *end;

	if (len == 0 || len >= sizeof t)
		return false;
	memcpy(t, s, len);
	t[len] = '\0';
	if (isspace((unsigned char)t[0]))
		return false;
	errno = 0;
	*out = strtod(t, &end);
	return *end == '\0' && (errno == 0 || errno == ERANGE);
}

static bool
parse_bool(const char *s, size_t len, bool *out)
{
	static const char *const yes[] = { "true", "t", "1", "yes", "y" };
	static const char *const no[] = { "false", "f", "0", "no", "n" };
	size_t i;

	for (i = 0; i < 5; i++) {
		if (strlen(yes[i]) == len && strncasecmp(s, yes[i], len) == 0) {
			*out = true;
			return true;
		}
		if (strlen(no[i]) == len && strncasecmp(s, no[i], len) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool
digits(const char *s, size_t len, size_t at, int n, int *out)
{
	int v = 0, i;

	if (at + (size_t)n > len)
		return false;
	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[at + i]))
			return false;
		v = v * 10 + (s[at + i] - '0');
	}
	*out = v;
	return true;
}

int
parquet_parse_timestamp(const char *s, size_t len, int64_t *micros)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, mo, d, hh = 0, mm = 0, ss = 0, oh = 0, om = 0;
	int64_t frac = 0, fdiv = 1, t;
	size_t i = 10;
	int sign = 0;

	if (!digits(s, len, 0, 4, &y) || len < 10 || s[4] != '-' || !digits(s, len, 5, 2, &mo) ||
	    s[7] != '-' || !digits(s, len, 8, 2, &d))
		return SHIR_EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || y < 1)
		return SHIR_EINVAL;
	if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return SHIR_EINVAL;
	if (i < len && (s[i] == 'T' || s[i] == 't' || s[i] == ' ')) {
		if (!digits(s, len, i + 1, 2, &hh) || i + 3 >= len || s[i + 3] != ':' ||
		    !digits(s, len, i + 4, 2, &mm))
			return SHIR_EINVAL;
		i += 6;
		if (i < len && s[i] == ':') {
			if (!digits(s, len, i + 1, 2, &ss))
				return SHIR_EINVAL;
			i += 3;
			if (i < len && (s[i] == '.' || s[i] == ',')) {
				size_t n = 0;

				for (i++; i < len && isdigit((unsigned char)s[i]); i++, n++)
					if (n < 6) {
						frac = frac * 10 + (s[i] - '0');
						fdiv *= 10;
					}
				if (n == 0)
					return SHIR_EINVAL;
			}
		}
		if (hh > 24 || mm > 59 || ss > 60 || (hh == 24 && (mm || ss || frac)))
			return SHIR_EINVAL;
	}
	if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
		i++;
	} else if (i < len && (s[i] == '+' || s[i] == '-')) {
		sign = s[i] == '-' ? -1 : 1;
		if (!digits(s, len, i + 1, 2, &oh))
			return SHIR_EINVAL;
		i += 3;
		if (i < len && s[i] == ':')
			i++;
		if (i < len) {
			if (!digits(s, len, i, 2, &om))
				return SHIR_EINVAL;
			i += 2;
		}
		if (oh > 18 || om > 59)
			return SHIR_EINVAL;
	}
	if (i != len)
		return SHIR_EINVAL;
	if (ss == 60)
		ss = 59;	/* a leap second reads as the second before it */
	t = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + hh * 3600 + mm * 60 + ss;
	t -= sign * (oh * 3600 + om * 60);
	*micros = t * 1000000 + frac * (1000000 / fdiv);
	return 0;
}

int
parquet_text(struct parquet_writer *w, const char *s, size_t len, struct shir_error *e)
{
	struct pcol *c = cell(w, e);
	size_t before;
	long long ll;
	double dv;
	bool bv;
	int64_t ts;

	if (c == NULL)
		return e->code;
	before = c->vals.n;
	switch (c->kind) {
	case PK_BOOL:
		if (!parse_bool(s, len, &bv))
			return bad_value(w, c, "a Boolean", s, len, e);
		buf_byte(&c->vals, bv);
		break;
	case PK_I16:
		if (!parse_ll(s, len, INT16_MIN, INT16_MAX, &ll))
			return bad_value(w, c, "an Int16", s, len, e);
		buf_le(&c->vals, (uint64_t)(int64_t)ll, 4);
		break;
	case PK_I32:
		if (!parse_ll(s, len, INT32_MIN, INT32_MAX, &ll))
			return bad_value(w, c, "an Int32", s, len, e);
		buf_le(&c->vals, (uint64_t)(int64_t)ll, 4);
		break;
	case PK_I64:
		if (!parse_ll(s, len, INT64_MIN, INT64_MAX, &ll))
			return bad_value(w, c, "an Int64", s, len, e);
		buf_le(&c->vals, (uint64_t)(int64_t)ll, 8);
		break;
	case PK_FLOAT: {
		float f;
		uint32_t u;

		if (!parse_double(s, len, &dv))
			return bad_value(w, c, "a Single", s, len, e);
		f = (float)dv;
		memcpy(&u, &f, 4);
		buf_le(&c->vals, u, 4);
		break;
	}
	case PK_DOUBLE: {
		uint64_t u;

		if (!parse_double(s, len, &dv))
			return bad_value(w, c, "a Double", s, len, e);
		memcpy(&u, &dv, 8);
		buf_le(&c->vals, u, 8);
		break;
	}
	case PK_TS:
		if (parquet_parse_timestamp(s, len, &ts) != 0)
			return bad_value(w, c, "an ISO 8601 date and time", s, len, e);
		buf_le(&c->vals, (uint64_t)ts, 8);
		break;
	case PK_STRING:
	case PK_BYTES:
		if (len > w->rg_bytes || len > UINT32_MAX) {
			w->failed = true;
			return shir_error_set(e, SHIR_ETOOBIG, "row %llu, column '%s': a value of %zu "
			    "bytes is larger than the row group size", (unsigned long long)w->rows + 1,
			    c->name, len);
		}
		buf_le(&c->vals, len, 4);
		buf_add(&c->vals, s, len);
		break;
	}
	buf_byte(&c->defs, 1);
	c->nvals++;
	return put_done(w, c, c->vals.n - before, e);
}

int
parquet_bytes(struct parquet_writer *w, const void *data, size_t len, struct shir_error *e)
{
	return parquet_text(w, data, len, e);
}

/* ---- row groups ------------------------------------------------------------- */

/* Definition levels, bit width 1, as RLE runs: header (run << 1), value byte. */
static void
rle_levels(struct buf *out, const struct buf *defs)
{
	size_t i = 0, at = out->n;

	buf_le(out, 0, 4);	/* length, filled below */
	while (i < defs->n) {
		size_t j = i;
		uint64_t run;

		while (j < defs->n && defs->d[j] == defs->d[i])
			j++;
		run = (uint64_t)(j - i) << 1;	/* an RLE run's header: its length << 1 */
		while (run >= 0x80) {
			buf_byte(out, (uint8_t)(run | 0x80));
			run >>= 7;
		}
		buf_byte(out, (uint8_t)run);
		buf_byte(out, defs->d[i]);
		i = j;
	}
	if (!out->oom) {
		uint32_t l = (uint32_t)(out->n - at - 4);

		out->d[at] = (uint8_t)l;
		out->d[at + 1] = (uint8_t)(l >> 8);
		out->d[at + 2] = (uint8_t)(l >> 16);
		out->d[at + 3] = (uint8_t)(l >> 24);
	}
}

static int
compress_page(struct parquet_writer *w, struct shir_error *e)
{
	size_t cap;

	w->comp.n = 0;
	if (w->codec == PARQUET_NONE) {
		buf_add(&w->comp, w->page.d, w->page.n);
		return w->comp.oom ? shir_error_set(e, SHIR_ENOMEM, "out of memory") : 0;
	}
	cap = w->codec == PARQUET_SNAPPY ? snappy_max_compressed_length(w->page.n) :
	    ZSTD_compressBound(w->page.n);
	if (buf_reserve(&w->comp, cap) != 0)
		return shir_error_set(e, SHIR_ENOMEM, "out of memory compressing a Parquet page");
	if (w->codec == PARQUET_SNAPPY) {
		size_t ol = cap;

		if (snappy_compress((const char *)w->page.d, w->page.n, (char *)w->comp.d, &ol) !=
		    SNAPPY_OK)
			return shir_error_set(e, SHIR_EINTERNAL, "Snappy could not compress a page");
		w->comp.n = ol;
	} else {
		size_t r = ZSTD_compress(w->comp.d, cap, w->page.d, w->page.n, 3);

		if (ZSTD_isError(r))
			return shir_error_set(e, SHIR_EINTERNAL, "ZSTD could not compress a page: %s",
			    ZSTD_getErrorName(r));
		w->comp.n = r;
	}
	return 0;
}

static int
write_chunk(struct parquet_writer *w, struct pcol *c, struct chunk_meta *m, struct shir_error *e)
{
	struct tc t = { .b = &w->head };
	size_t i;
	int rc;

	w->page.n = 0;
	w->head.n = 0;
	if (c->nullable)
		rle_levels(&w->page, &c->defs);
	if (c->kind == PK_BOOL) {	/* bit-packed, least significant bit first */
		uint8_t acc = 0;

		for (i = 0; i < c->vals.n; i++) {
			acc |= (uint8_t)((c->vals.d[i] & 1) << (i % 8));
			if (i % 8 == 7 || i + 1 == c->vals.n) {
				buf_byte(&w->page, acc);
				acc = 0;
			}
		}
	} else {
		buf_add(&w->page, c->vals.d, c->vals.n);
	}
	if (w->page.oom)
		return shir_error_set(e, SHIR_ENOMEM, "out of memory building a Parquet page");
	if ((rc = compress_page(w, e)) != 0)
		return rc;
	/* PageHeader */
	tc_i32(&t, 1, 0);	/* DATA_PAGE */
	tc_i32(&t, 2, (int32_t)w->page.n);
	tc_i32(&t, 3, (int32_t)w->comp.n);
	tc_struct_begin(&t, 5);	/* DataPageHeader */
	tc_i32(&t, 1, (int32_t)c->defs.n);
	tc_i32(&t, 2, ENC_PLAIN);
	tc_i32(&t, 3, ENC_RLE);
	tc_i32(&t, 4, ENC_RLE);
	tc_struct_end(&t);
	buf_byte(t.b, 0);
	if (w->head.oom)
		return shir_error_set(e, SHIR_ENOMEM, "out of memory");
	m->offset = (int64_t)w->pos;
	m->usize = (int64_t)(w->head.n + w->page.n);
	m->csize = (int64_t)(w->head.n + w->comp.n);
	m->nvalues = (int64_t)c->defs.n;
	if ((rc = emit(w, w->head.d, w->head.n, e)) != 0 ||
	    (rc = emit(w, w->comp.d, w->comp.n, e)) != 0)
		return rc;
	return 0;
}

static int
flush_group(struct parquet_writer *w, struct shir_error *e)
{
	struct rgroup *g;
	int i, rc;

	if (w->rg_rows == 0)
		return 0;
	if (w->ngroups == w->capgroups) {
		size_t nc = w->capgroups ? w->capgroups * 2 : 8;
		struct rgroup *ng = realloc(w->groups, nc * sizeof *ng);

		if (ng == NULL)
			return shir_error_set(e, SHIR_ENOMEM, "out of memory");
		w->groups = ng;
		w->capgroups = nc;
	}
	g = &w->groups[w->ngroups];
	memset(g, 0, sizeof *g);
	g->cols = calloc((size_t)w->ncols, sizeof *g->cols);
	if (g->cols == NULL)
		return shir_error_set(e, SHIR_ENOMEM, "out of memory");
	w->ngroups++;
	g->rows = (int64_t)w->rg_rows;
	for (i = 0; i < w->ncols; i++) {
		struct pcol *c = &w->cols[i];

		if ((rc = write_chunk(w, c, &g->cols[i], e)) != 0) {
			w->failed = true;
			return rc;
		}
		g->bytes += g->cols[i].usize;
		c->vals.n = c->defs.n = 0;
		c->nvals = 0;
		/* give back what a large group took, keep a modest buffer */
		if (c->vals.cap > 4 * w->rg_bytes / (size_t)w->ncols + 4096) {
			buf_free(&c->vals);
		}
	}
	w->rg_rows = 0;
	w->buffered = 0;
	return 0;
}

int
parquet_end_row(struct parquet_writer *w, struct shir_error *e)
{
	if (w->failed || w->finished)
		return shir_error_set(e, SHIR_EINVAL, "the Parquet writer has %s", w->failed ?
		    "failed" : "finished");
	if (w->cur != w->ncols) {
		w->failed = true;
		return shir_error_set(e, SHIR_EINVAL, "row %llu has %d cells for %d columns",
		    (unsigned long long)w->rows + 1, w->cur, w->ncols);
	}
	w->cur = 0;
	w->rows++;
	w->rg_rows++;
	if (w->buffered >= w->rg_bytes)
		return flush_group(w, e);
	return 0;
}

static void
schema_element(struct tc *t, const struct pcol *c)
{
	tc_struct_begin(t, 0);
	tc_i32(t, 1, physical(c->kind));
	tc_i32(t, 3, c->nullable ? REP_OPTIONAL : REP_REQUIRED);
	tc_string(t, 4, c->name);
	switch (c->kind) {
	case PK_STRING:
		tc_i32(t, 6, CT_UTF8);
		tc_struct_begin(t, 10);		/* LogicalType */
		tc_struct_begin(t, 1);		/* STRING */
		tc_struct_end(t);
		tc_struct_end(t);
		break;
	case PK_I16:
		tc_i32(t, 6, CT_INT_16);
		tc_struct_begin(t, 10);
		tc_struct_begin(t, 10);		/* INTEGER */
		tc_byte(t, 1, 16);
		tc_bool(t, 2, true);
		tc_struct_end(t);
		tc_struct_end(t);
		break;
	case PK_TS:
		tc_i32(t, 6, CT_TIMESTAMP_MICROS);
		tc_struct_begin(t, 10);
		tc_struct_begin(t, 8);		/* TIMESTAMP */
		tc_bool(t, 1, true);		/* isAdjustedToUTC */
		tc_struct_begin(t, 2);		/* unit */
		tc_struct_begin(t, 2);		/* MICROS */
		tc_struct_end(t);
		tc_struct_end(t);
		tc_struct_end(t);
		tc_struct_end(t);
		break;
	default:
		break;
	}
	tc_struct_end(t);
}

int
parquet_finish(struct parquet_writer *w, struct shir_error *e)
{
	struct buf foot = { 0 };
	struct tc t = { .b = &foot };
	size_t g;
	int i, rc;
	uint8_t tail[8];

	if (w->failed || w->finished)
		return shir_error_set(e, SHIR_EINVAL, "the Parquet writer has %s", w->failed ?
		    "failed" : "finished");
	if (w->cur != 0)
		return shir_error_set(e, SHIR_EINVAL, "the last row is incomplete");
	if ((rc = flush_group(w, e)) != 0)
		return rc;
	/* FileMetaData */
	tc_i32(&t, 1, 1);
	tc_list_begin(&t, 2, TC_STRUCT, (size_t)w->ncols + 1);
	tc_struct_begin(&t, 0);		/* the root */
	tc_string(&t, 4, "schema");
	tc_i32(&t, 5, w->ncols);
	tc_struct_end(&t);
	for (i = 0; i < w->ncols; i++)
		schema_element(&t, &w->cols[i]);
	tc_i64(&t, 3, (int64_t)w->rows);
	tc_list_begin(&t, 4, TC_STRUCT, w->ngroups);
	for (g = 0; g < w->ngroups; g++) {
		const struct rgroup *r = &w->groups[g];
		int64_t csum = 0;

		tc_struct_begin(&t, 0);
		tc_list_begin(&t, 1, TC_STRUCT, (size_t)w->ncols);
		for (i = 0; i < w->ncols; i++) {
			const struct chunk_meta *m = &r->cols[i];

			csum += m->csize;
			tc_struct_begin(&t, 0);		/* ColumnChunk */
			tc_i64(&t, 2, m->offset);
			tc_struct_begin(&t, 3);		/* ColumnMetaData */
			tc_i32(&t, 1, physical(w->cols[i].kind));
			tc_list_begin(&t, 2, TC_I32, 2);
			tc_varint(&t, zigzag(ENC_PLAIN));
			tc_varint(&t, zigzag(ENC_RLE));
			tc_list_begin(&t, 3, TC_BINARY, 1);
			tc_binary_raw(&t, w->cols[i].name);
			tc_i32(&t, 4, w->codec == PARQUET_SNAPPY ? 1 : w->codec == PARQUET_ZSTD ? 6 : 0);
			tc_i64(&t, 5, m->nvalues);
			tc_i64(&t, 6, m->usize);
			tc_i64(&t, 7, m->csize);
			tc_i64(&t, 9, m->offset);
			tc_struct_end(&t);
			tc_struct_end(&t);
		}
		tc_i64(&t, 2, r->bytes);
		tc_i64(&t, 3, r->rows);
		tc_i64(&t, 5, r->cols[0].offset);
		tc_i64(&t, 6, csum);
		tc_struct_end(&t);
	}
	tc_string(&t, 6, "shir " PACKAGE_VERSION);
	buf_byte(&foot, 0);
	if (foot.oom) {
		buf_free(&foot);
		return shir_error_set(e, SHIR_ENOMEM, "out of memory writing the Parquet footer");
	}
	for (i = 0; i < 4; i++)
		tail[i] = (uint8_t)(foot.n >> (8 * i));
	memcpy(tail + 4, "PAR1", 4);
	rc = emit(w, foot.d, foot.n, e);
	if (rc == 0)
		rc = emit(w, tail, 8, e);
	buf_free(&foot);
	if (rc == 0)
		w->finished = true;
	return rc;
}

uint64_t
parquet_rows(const struct parquet_writer *w)
{
	return w->rows;
}

uint64_t
parquet_bytes_written(const struct parquet_writer *w)
{
	return w->pos;
}

size_t
parquet_buffered(const struct parquet_writer *w)
{
	return w->buffered;
}
