#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "node/authoring/auth_ctx.h"
#include "node/authoring/auth_rows.h"

struct auth_col {
	char *name;
	char type[24];
	int nullable;
};

struct auth_rows {
	struct auth_col *cols;
	int ncols;
	int limit;
	size_t cap, used;
	cJSON *rows;	/* array of arrays */
	cJSON *cur;	/* row being built */
	int ncur;
	int count;
	bool truncated;
	auth_rows_sink_fn sink;	/* streaming: rows go here, not to rows */
	void *sink_arg;
	bool sink_stop;
};

struct auth_rows *
auth_rows_new(int limit, size_t cap)
{
	struct auth_rows *r = calloc(1, sizeof *r);

	if (r == NULL)
		return NULL;
	r->limit = limit;
	r->cap = cap;
	r->rows = cJSON_CreateArray();
	if (r->rows == NULL) {
		free(r);
		return NULL;
	}
	return r;
}

void
auth_rows_free(struct auth_rows *r)
{
	int i;

	if (r == NULL)
		return;
	for (i = 0; i < r->ncols; i++)
		free(r->cols[i].name);
	free(r->cols);
	cJSON_Delete(r->rows);
	cJSON_Delete(r->cur);
	free(r);
}

int
auth_rows_add_column(struct auth_rows *r, const char *name, const char *type, int nullable)
{
	struct auth_col *n;

	if (r->ncols >= AUTH_COLUMNS_MAX)
		return SHIR_ETOOBIG;
	n = realloc(r->cols, sizeof *n * (size_t)(r->ncols + 1));
	if (n == NULL)
		return SHIR_ENOMEM;
	r->cols = n;
	n = &r->cols[r->ncols];
	n->name = auth_clean_text(name, strlen(name), 256);
	if (n->name == NULL)
		return SHIR_ENOMEM;
	snprintf(n->type, sizeof n->type, "%s", type);
	n->nullable = nullable;
	r->ncols++;
	r->used += strlen(n->name) + 40;
	return 0;
}

int
auth_rows_ncols(const struct auth_rows *r)
{
	return r->ncols;
}

const char *
auth_rows_col_type(const struct auth_rows *r, int i)
{
	return i >= 0 && i < r->ncols ? r->cols[i].type : "String";
}

void
auth_rows_set_col_type(struct auth_rows *r, int i, const char *type)
{
	if (i >= 0 && i < r->ncols)
		snprintf(r->cols[i].type, sizeof r->cols[i].type, "%s", type);
}

bool
auth_rows_want(const struct auth_rows *r)
{
	return r->count < r->limit && r->used < r->cap && !r->truncated && !r->sink_stop;
}

void
auth_rows_set_sink(struct auth_rows *r, auth_rows_sink_fn fn, void *arg)
{
	r->sink = fn;
	r->sink_arg = arg;
}

bool
auth_rows_truncated(const struct auth_rows *r)
{
	return r->truncated;
}

void
auth_rows_set_truncated(struct auth_rows *r)
{
	r->truncated = true;
}

int
auth_rows_count(const struct auth_rows *r)
{
	return r->count;
}

int
auth_rows_begin(struct auth_rows *r)
{
	cJSON_Delete(r->cur);
	r->cur = cJSON_CreateArray();
	r->ncur = 0;
	return r->cur ? 0 : SHIR_ENOMEM;
}

static void
auth_rows_put(struct auth_rows *r, cJSON *v, size_t cost)
{
	if (r->cur == NULL || v == NULL) {
		cJSON_Delete(v);
		return;
	}
	cJSON_AddItemToArray(r->cur, v);
	r->ncur++;
	r->used += cost + 2;
}

void
auth_rows_null(struct auth_rows *r)
{
	auth_rows_put(r, cJSON_CreateNull(), 4);
}

void
auth_rows_text(struct auth_rows *r, const char *text, size_t len)
{
	const char *type = auth_rows_col_type(r, r->ncur);

	auth_rows_put(r, auth_value(type, text, len), len < AUTH_VALUE_MAX ? len : AUTH_VALUE_MAX);
}

void
auth_rows_bytes(struct auth_rows *r, const void *bytes, size_t len)
{
	size_t n = len, elen;
	char *b64, *cut;
	int truncated = 0;

	/* base64 grows by 4/3: cut the input so the text stays within the cap */
	if (n > AUTH_VALUE_MAX / 4 * 3) {
		n = AUTH_VALUE_MAX / 4 * 3;
		truncated = 1;
	}
	elen = 4 * ((n + 2) / 3);
	b64 = malloc(elen + sizeof AUTH_TRUNC_MARKER + 1);
	if (b64 == NULL) {
		auth_rows_null(r);
		return;
	}
	EVP_EncodeBlock((unsigned char *)b64, bytes, (int)n);
	b64[elen] = '\0';
	if (truncated) {
		cut = b64 + elen;
		memcpy(cut, AUTH_TRUNC_MARKER, sizeof AUTH_TRUNC_MARKER);
	}
	auth_rows_put(r, cJSON_CreateString(b64), strlen(b64));
	free(b64);
}

void
auth_rows_end(struct auth_rows *r)
{
	if (r->cur == NULL)
		return;
	while (r->ncur < r->ncols)
		auth_rows_null(r);
	if (r->sink != NULL) {
		cJSON *row = r->cur;

		r->cur = NULL;
		r->count++;
		if (!r->sink_stop && r->sink(r->sink_arg, r, row) != 0)
			r->sink_stop = true;
		return;
	}
	cJSON_AddItemToArray(r->rows, r->cur);
	r->cur = NULL;
	r->count++;
}

int
auth_rows_to_json(struct auth_rows *r, cJSON *obj, bool preview)
{
	int rc = auth_rows_columns_json(r, obj, preview);

	if (rc != 0)
		return rc;
	if (preview) {
		cJSON_AddItemToObject(obj, "rows", r->rows);
		r->rows = NULL;
		cJSON_AddBoolToObject(obj, "truncated", r->truncated);
		r->rows = cJSON_CreateArray();
	}
	return 0;
}

int
auth_rows_columns_json(const struct auth_rows *r, cJSON *obj, bool preview)
{
	cJSON *cols = cJSON_AddArrayToObject(obj, "columns");
	int i;

	if (cols == NULL)
		return SHIR_ENOMEM;
	for (i = 0; i < r->ncols; i++) {
		cJSON *c = cJSON_CreateObject();

		if (c == NULL)
			return SHIR_ENOMEM;
		cJSON_AddStringToObject(c, "name", r->cols[i].name);
		cJSON_AddStringToObject(c, "type", r->cols[i].type);
		if (!preview)
			cJSON_AddBoolToObject(c, "nullable", r->cols[i].nullable != 0);
		cJSON_AddItemToArray(cols, c);
	}
	return 0;
}

/* ---- values ----------------------------------------------------------- */

static size_t
utf8_seq(const unsigned char *s, size_t left)
{
	unsigned c = s[0];
	size_t n, i;
	unsigned cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	if (left < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

char *
auth_clean_text(const char *s, size_t len, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, o = 0, cap = (len < max ? len : max) * 3 / 2 + sizeof AUTH_TRUNC_MARKER + 4;
	char *out = malloc(cap);

	if (out == NULL)
		return NULL;
	while (i < len) {
		size_t n, add;

		/* a run of plain ASCII (no NUL) is copied as it is, in one go:
		 * byte by byte this was half of a large preview's CPU */
		if (p[i] > 0 && p[i] < 0x80 && o < max) {
			size_t j = i, take;

			/* eight bytes at a time: none with the high bit, none zero */
			while (j + 8 <= len) {
				uint64_t w;

				memcpy(&w, p + j, 8);
				if ((w & 0x8080808080808080ULL) != 0 ||
				    ((w - 0x0101010101010101ULL) & ~w & 0x8080808080808080ULL) != 0)
					break;
				j += 8;
			}
			while (j < len && p[j] > 0 && p[j] < 0x80)
				j++;
			take = j - i < max - o ? j - i : max - o;
			if (o + take + 1 > cap) {
				char *nb;

				cap = (o + take + 1) * 2 + sizeof AUTH_TRUNC_MARKER;
				if ((nb = realloc(out, cap)) == NULL) {
					free(out);
					return NULL;
				}
				out = nb;
			}
			memcpy(out + o, p + i, take);
			o += take;
			i += take;
			continue;
		}
		n = utf8_seq(p + i, len - i);
		add = n && !(n == 1 && p[i] == 0) ? n : 3;	/* NUL and bad bytes: U+FFFD */

		if (o + add > max) {
			/* room for the marker: replacement characters (3 bytes for
			 * 1) may have filled a buffer sized from len */
			if (o + sizeof AUTH_TRUNC_MARKER > cap) {
				char *nb = realloc(out, o + sizeof AUTH_TRUNC_MARKER);

				if (nb == NULL) {
					free(out);
					return NULL;
				}
				out = nb;
			}
			memcpy(out + o, AUTH_TRUNC_MARKER, sizeof AUTH_TRUNC_MARKER);
			return out;
		}
		if (o + add + 1 > cap) {
			char *nb;

			cap = (o + add + 1) * 2 + sizeof AUTH_TRUNC_MARKER;
			nb = realloc(out, cap);
			if (nb == NULL) {
				free(out);
				return NULL;
			}
			out = nb;
		}
		if (n) {
			if (n == 1 && p[i] == 0) {
				/* a NUL would end the C string: show it as U+FFFD */
				memcpy(out + o, "\xef\xbf\xbd", 3);
				o += 3;
			} else {
				memcpy(out + o, p + i, n);
				o += n;
			}
			i += n;
		} else {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	out[o] = '\0';
	return out;
}

bool
auth_decimal_fits_double(const char *s, size_t len)
{
	size_t i = 0, digits = 0, lead = 1, pend_zeros = 0;
	int seen_digit = 0;

	if (i < len && (s[i] == '-' || s[i] == '+'))
		i++;
	for (; i < len; i++) {
		char ch = s[i];

		if (ch == '.')
			continue;
		if (ch == 'e' || ch == 'E')
			return false;
		if (!isdigit((unsigned char)ch))
			return false;
		seen_digit = 1;
		if (lead && ch == '0')
			continue;
		lead = 0;
		if (ch == '0') {
			pend_zeros++;
		} else {
			digits += pend_zeros + 1;
			pend_zeros = 0;
		}
	}
	/* trailing zeros after the point do not matter; before it they do, but
	 * a double holds 10^k exactly for the k we allow */
	return seen_digit && digits <= 15 && len < 40;
}

int
auth_number_text(double d, char *buf, size_t n)
{
	int prec;

	if (!isfinite(d))
		return -1;
	/* the shortest form that reads back as exactly the same double */
	for (prec = 15; prec <= 17; prec++) {
		snprintf(buf, n, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	return 0;
}

/* A JSON number written exactly (cJSON's own printer rounds to 15 digits
 * when it thinks that is close enough, which loses large integers). */
static cJSON *
auth_number(double d)
{
	char buf[40];

	if (auth_number_text(d, buf, sizeof buf) != 0)
		return NULL;
	return cJSON_CreateRaw(buf);
}

static bool
auth_parse_ll(const char *s, long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno == 0 && end != s && *end == '\0';
}

cJSON *
auth_value(const char *type, const char *text, size_t len)
{
	char buf[64];
	char *clean;
	cJSON *v;

	if (len < sizeof buf) {
		memcpy(buf, text, len);
		buf[len] = '\0';
	} else {
		buf[0] = '\0';
	}
	if (strcmp(type, "Boolean") == 0 && len < sizeof buf) {
		if (!strcasecmp(buf, "t") || !strcasecmp(buf, "true") || !strcmp(buf, "1"))
			return cJSON_CreateTrue();
		if (!strcasecmp(buf, "f") || !strcasecmp(buf, "false") || !strcmp(buf, "0"))
			return cJSON_CreateFalse();
	} else if ((strcmp(type, "Int16") == 0 || strcmp(type, "Int32") == 0 ||
		       strcmp(type, "Int64") == 0) && len < sizeof buf) {
		long long ll;

		if (auth_parse_ll(buf, &ll) && ll <= (1LL << 53) && ll >= -(1LL << 53)) {
			snprintf(buf, sizeof buf, "%lld", ll);
			return cJSON_CreateRaw(buf);
		}
		/* too big for a double: a string, exactly as the store said */
	} else if ((strcmp(type, "Single") == 0 || strcmp(type, "Double") == 0) &&
	    len < sizeof buf) {
		char *end;
		double d = strtod(buf, &end);

		if (end != buf && *end == '\0' && isfinite(d))
			return auth_number(d);
	} else if (strcmp(type, "Decimal") == 0 && len < sizeof buf) {
		if (auth_decimal_fits_double(buf, len)) {
			char *end;
			double d = strtod(buf, &end);

			if (end != buf && *end == '\0' && isfinite(d))
				return auth_number(d);
		}
	}
	clean = auth_clean_text(text, len, AUTH_VALUE_MAX);
	if (clean == NULL)
		return NULL;
	v = cJSON_CreateString(clean);
	free(clean);
	return v;
}

/* ---- type inference ---------------------------------------------------- */

enum {
	INF_BOOL = 1 << 0,
	INF_INT32 = 1 << 1,
	INF_INT64 = 1 << 2,
	INF_DOUBLE = 1 << 3,
	INF_DATETIME = 1 << 4,
	INF_DTO = 1 << 5,
	INF_GUID = 1 << 6,
	INF_ALL = 0x7f
};

void
auth_infer_init(struct auth_infer *inf)
{
	inf->cand = INF_ALL;
	inf->seen = 0;
}

static bool
inf_digits(const char *s, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* 0: not a date; 1: date or date-time without offset; 2: with an offset. */
static int
inf_datetime(const char *s)
{
	size_t l = strlen(s);
	const char *p;

	if (l < 10 || !inf_digits(s, 4) || s[4] != '-' || !inf_digits(s + 5, 2) || s[7] != '-' ||
	    !inf_digits(s + 8, 2))
		return 0;
	if (l == 10)
		return 1;
	if (s[10] != 'T' && s[10] != ' ')
		return 0;
	p = s + 11;
	if (strlen(p) < 5 || !inf_digits(p, 2) || p[2] != ':' || !inf_digits(p + 3, 2))
		return 0;
	p += 5;
	if (*p == ':') {
		if (!inf_digits(p + 1, 2))
			return 0;
		p += 3;
		if (*p == '.') {
			p++;
			if (!isdigit((unsigned char)*p))
				return 0;
			while (isdigit((unsigned char)*p))
				p++;
		}
	}
	if (*p == '\0')
		return 1;
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
		return 2;
	if ((*p == '+' || *p == '-') && inf_digits(p + 1, 2) &&
	    (p[3] == '\0' || (p[3] == ':' && inf_digits(p + 4, 2) && p[6] == '\0') ||
		(inf_digits(p + 3, 2) && p[5] == '\0')))
		return 2;
	return 0;
}

static bool
inf_guid(const char *s)
{
	int i;

	if (strlen(s) != 36)
		return false;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

void
auth_infer_add(struct auth_infer *inf, const char *s, bool from_string)
{
	unsigned ok = 0;
	long long ll;
	int dt;

	inf->seen++;
	if (!from_string) {
		if (!strcasecmp(s, "true") || !strcasecmp(s, "false"))
			ok |= INF_BOOL;
		if (*s && !isspace((unsigned char)*s) && auth_parse_ll(s, &ll)) {
			ok |= INF_INT64 | INF_DOUBLE;
			if (ll >= -2147483648LL && ll <= 2147483647LL)
				ok |= INF_INT32;
		} else if (*s && !isspace((unsigned char)*s)) {
			char *end;
			double d = strtod(s, &end);

			if (end != s && *end == '\0' && isfinite(d) && strpbrk(s, "xXnN") == NULL)
				ok |= INF_DOUBLE;
		}
	}
	dt = inf_datetime(s);
	if (dt == 1)
		ok |= INF_DATETIME;
	else if (dt == 2)
		ok |= INF_DTO;
	if (inf_guid(s))
		ok |= INF_GUID;
	inf->cand &= ok;
}

const char *
auth_infer_type(const struct auth_infer *inf)
{
	if (inf->seen == 0)
		return "String";
	if (inf->cand & INF_BOOL)
		return "Boolean";
	if (inf->cand & INF_INT32)
		return "Int32";
	if (inf->cand & INF_INT64)
		return "Int64";
	if (inf->cand & INF_DOUBLE)
		return "Double";
	if (inf->cand & INF_DATETIME)
		return "DateTime";
	if (inf->cand & INF_DTO)
		return "DateTimeOffset";
	if (inf->cand & INF_GUID)
		return "Guid";
	return "String";
}
