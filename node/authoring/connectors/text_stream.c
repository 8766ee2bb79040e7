/* text_stream: text datasets (Json, DelimitedText) from any byte source,
 * streamed in full to a copy job (struct auth_stream), as the FileSystem and
 * HttpServer stores read them. Bytes come through the same pull/feed seam
 * as a preview's (auth_pull_fn); the incremental readers (json_reader,
 * csv_reader) hold one record at a time, so memory does not grow with the
 * dataset:
 *
 * - Json (a top-level array of records, one object, or JSON Lines): a record
 *   may be at most the request memory limit (at most 64 MiB). The columns
 *   are dataset.schema's ([{"name", "type"}]) when given, the record's other
 *   members then ignored; otherwise the members of the first 100 records
 *   (held while they are read, at most the request memory limit of them),
 *   in the order they appear, typed Boolean, Int64, Double or String by what
 *   those records hold; a later record with a member none of them had fails
 *   the copy rather than lose it. Nested objects and arrays are their JSON
 *   text.
 * - DelimitedText: the header row names the columns (Prop_0, Prop_1 ...
 *   without one), every value a String; a field may be at most the request
 *   memory limit (at most 64 MiB), a row with another number of fields fails. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "node/authoring/auth_ctx.h"
#include "node/authoring/csv_reader.h"
#include "node/authoring/json_reader.h"

#define TS_INFER_RECORDS 100
#define TS_RECORD_CAP ((size_t)64 << 20)
#define TS_RECORD_DEFAULT ((size_t)16 << 20)

static size_t
ts_record_max(const struct auth_ctx *c)
{
	size_t m = c->policy.mem_limit ? c->policy.mem_limit : TS_RECORD_DEFAULT;

	return m > TS_RECORD_CAP ? TS_RECORD_CAP : m;
}

/* ---- Json ---------------------------------------------------------------- */

enum ts_seen { TS_BOOL = 1, TS_INT = 2, TS_FLOAT = 4, TS_STR = 8 };

struct ts_json {
	struct auth_ctx *c;
	const struct auth_stream *s;
	const char *what;
	struct json_reader *rd;
	bool lines;
	bool fixed;			/* columns from dataset.schema */
	bool started;
	bool scalar;			/* records are not objects: one column "value" */
	char **names;
	char **types;
	unsigned *seen;
	size_t ncols;
	cJSON **pend;			/* records held to infer the columns */
	size_t npend, pend_bytes;
	unsigned long long rec;
	const char **vals;
	size_t *lens;
	char **owned;			/* printed nested values of this row */
	char (*num)[40];
	int hint;
	bool failed;
};

/* Roughly what a parsed record costs. */
static size_t
ts_cost(const cJSON *v)
{
	size_t n = 64;

	for (; v != NULL; v = v->next) {
		n += 64 + (v->string ? strlen(v->string) : 0) +
		    (v->valuestring ? strlen(v->valuestring) : 0);
		if (v->child)
			n += ts_cost(v->child);
	}
	return n;
}

static int
ts_col_add(struct ts_json *t, const char *name, const char *type)
{
	char **nn, **nt;
	unsigned *ns;

	if (t->ncols >= AUTH_COLUMNS_MAX)
		return auth_fail(t->c, AUTH_E_STORE, "%s: the records have more than %d members",
		    t->what, AUTH_COLUMNS_MAX);
	nn = realloc(t->names, (t->ncols + 1) * sizeof *nn);
	if (nn != NULL)
		t->names = nn;
	nt = realloc(t->types, (t->ncols + 1) * sizeof *nt);
	if (nt != NULL)
		t->types = nt;
	ns = realloc(t->seen, (t->ncols + 1) * sizeof *ns);
	if (ns != NULL)
		t->seen = ns;
	if (nn == NULL || nt == NULL || ns == NULL)
		return auth_fail(t->c, AUTH_E_INTERNAL, "out of memory");
	t->names[t->ncols] = strdup(name);
	t->types[t->ncols] = strdup(type);
	t->seen[t->ncols] = 0;
	t->ncols++;
	if (t->names[t->ncols - 1] == NULL || t->types[t->ncols - 1] == NULL)
		return auth_fail(t->c, AUTH_E_INTERNAL, "out of memory");
	return 0;
}

static int
ts_col_find(struct ts_json *t, const char *name)
{
	size_t i;

	if (t->hint >= 0 && (size_t)t->hint < t->ncols && strcmp(t->names[t->hint], name) == 0)
		return t->hint;
	for (i = 0; i < t->ncols; i++)
		if (strcmp(t->names[i], name) == 0)
			return (int)i;
	return -1;
}

static bool
ts_integral(double d)
{
	/* range first: casting a double beyond long long is undefined */
	return d < 9007199254740992.0 && d > -9007199254740992.0 && d == (double)(long long)d;
}

static unsigned
ts_kind(const cJSON *m)
{
	if (cJSON_IsBool(m))
		return TS_BOOL;
	if (cJSON_IsNumber(m))
		return ts_integral(m->valuedouble) ? TS_INT : TS_FLOAT;
	if (cJSON_IsNull(m))
		return 0;
	return TS_STR;
}

/* dataset.schema: [{"name": N, "type": T}, ...] */
static int
ts_schema(struct ts_json *t)
{
	const cJSON *sc = t->c->dataset ? cJSON_GetObjectItemCaseSensitive(t->c->dataset, "schema") :
	    NULL, *e;

	if (sc == NULL)
		return 0;
	if (!cJSON_IsArray(sc) || cJSON_GetArraySize(sc) == 0)
		return auth_fail(t->c, AUTH_E_INVALID, "dataset.schema must be a non-empty array of "
		    "{\"name\", \"type\"}");
	cJSON_ArrayForEach(e, sc) {
		const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "name"));
		const cJSON *ty = cJSON_GetObjectItemCaseSensitive(e, "type");

		if (n == NULL || !*n || (ty != NULL && !cJSON_IsString(ty)))
			return auth_fail(t->c, AUTH_E_INVALID, "dataset.schema: each column needs a "
			    "\"name\" (and a \"type\" string)");
		if (ts_col_add(t, n, ty ? ty->valuestring : "String") != 0)
			return -1;
	}
	t->fixed = true;
	return 0;
}

/* Columns from the held records: their members, in order, typed. */
static int
ts_infer(struct ts_json *t)
{
	size_t i;

	for (i = 0; i < t->npend; i++) {
		const cJSON *v = t->pend[i], *m;

		if (!cJSON_IsObject(v)) {
			t->scalar = true;
			break;
		}
		cJSON_ArrayForEach(m, v) {
			int k = ts_col_find(t, m->string);

			if (k < 0 && ts_col_add(t, m->string, "String") != 0)
				return -1;
			if (k < 0)
				k = (int)t->ncols - 1;
			t->seen[k] |= ts_kind(m);
		}
	}
	if (t->scalar) {
		for (i = 0; i < t->ncols; i++) {
			free(t->names[i]);
			free(t->types[i]);
		}
		t->ncols = 0;
		if (ts_col_add(t, "value", "String") != 0)
			return -1;
		for (i = 0; i < t->npend; i++)
			t->seen[0] |= ts_kind(t->pend[i]);
	}
	for (i = 0; i < t->ncols; i++) {
		const char *ty = t->seen[i] == TS_BOOL ? "Boolean" : t->seen[i] == TS_INT ? "Int64" :
		    t->seen[i] == TS_FLOAT || t->seen[i] == (TS_INT | TS_FLOAT) ? "Double" : "String";

		free(t->types[i]);
		if ((t->types[i] = strdup(ty)) == NULL)
			return auth_fail(t->c, AUTH_E_INTERNAL, "out of memory");
	}
	if (t->ncols == 0)
		return auth_fail(t->c, AUTH_E_STORE, "%s: the first records have no members to take "
		    "columns from; give dataset.schema", t->what);
	return 0;
}

static int
ts_start(struct ts_json *t)
{
	int *nullable;
	size_t i;
	int rc;

	t->started = true;
	t->vals = calloc(t->ncols, sizeof *t->vals);
	t->lens = calloc(t->ncols, sizeof *t->lens);
	t->owned = calloc(t->ncols, sizeof *t->owned);
	t->num = calloc(t->ncols, sizeof *t->num);
	nullable = calloc(t->ncols, sizeof *nullable);
	if (!t->vals || !t->lens || !t->owned || !t->num || !nullable) {
		free(nullable);
		return auth_fail(t->c, AUTH_E_INTERNAL, "out of memory");
	}
	for (i = 0; i < t->ncols; i++)
		nullable[i] = -1;
	rc = t->s->columns(t->s->arg, t->ncols, (const char *const *)t->names,
	    (const char *const *)t->types, nullable);
	free(nullable);
	return rc != 0 ? -1 : 0;
}

static int
ts_value(struct ts_json *t, size_t k, const cJSON *m)
{
	if (cJSON_IsNull(m)) {
		t->vals[k] = NULL;
	} else if (cJSON_IsString(m)) {
		t->vals[k] = m->valuestring;
		t->lens[k] = strlen(m->valuestring);
	} else if (cJSON_IsBool(m)) {
		t->vals[k] = cJSON_IsTrue(m) ? "true" : "false";
		t->lens[k] = strlen(t->vals[k]);
	} else if (cJSON_IsNumber(m)) {
		if (ts_integral(m->valuedouble))
			snprintf(t->num[k], sizeof t->num[k], "%lld", (long long)m->valuedouble);
		else
			snprintf(t->num[k], sizeof t->num[k], "%.17g", m->valuedouble);
		t->vals[k] = t->num[k];
		t->lens[k] = strlen(t->num[k]);
	} else {
		free(t->owned[k]);
		t->owned[k] = cJSON_PrintUnformatted(m);
		if (t->owned[k] == NULL)
			return auth_fail(t->c, AUTH_E_INTERNAL, "out of memory");
		t->vals[k] = t->owned[k];
		t->lens[k] = strlen(t->owned[k]);
	}
	return 0;
}

/* One record to the stream: 0, or -1 (failed or stopped). */
static int
ts_emit(struct ts_json *t, const cJSON *v)
{
	const cJSON *m;
	size_t i;
	int rc;

	t->rec++;
	for (i = 0; i < t->ncols; i++)
		t->vals[i] = NULL;
	if (t->scalar || !cJSON_IsObject(v)) {
		if (!t->scalar)
			return auth_fail(t->c, AUTH_E_STORE, "%s: record %llu is not an object, where "
			    "the first records were", t->what, t->rec);
		if (t->scalar && ts_value(t, 0, v) != 0)
			return -1;
	} else {
		t->hint = 0;
		cJSON_ArrayForEach(m, v) {
			int k = ts_col_find(t, m->string);

			if (k < 0) {
				if (t->fixed)
					continue;
				return auth_fail(t->c, AUTH_E_STORE, "%s: record %llu has a member \"%.100s\" "
				    "that none of the first %zu records had; give dataset.schema to name "
				    "the columns", t->what, t->rec, m->string, t->npend);
			}
			t->hint = k + 1;
			if (ts_value(t, (size_t)k, m) != 0)
				return -1;
		}
	}
	rc = t->s->row(t->s->arg, t->ncols, t->vals, t->lens);
	for (i = 0; i < t->ncols; i++) {
		free(t->owned[i]);
		t->owned[i] = NULL;
	}
	if (rc != 0 || auth_should_stop(t->c)) {
		if (t->c->code == AUTH_OK)
			auth_fail(t->c, AUTH_E_SHUTDOWN, "the copy was stopped");
		return -1;
	}
	return 0;
}

/* The held records go out once the columns are known. */
static int
ts_flush(struct ts_json *t)
{
	size_t i;
	int rc = 0;

	if (!t->fixed && ts_infer(t) != 0)
		rc = -1;
	if (rc == 0 && ts_start(t) != 0)
		rc = -1;
	for (i = 0; i < t->npend; i++) {
		if (rc == 0 && ts_emit(t, t->pend[i]) != 0)
			rc = -1;
		cJSON_Delete(t->pend[i]);
	}
	t->npend = 0;
	return rc;
}

static int
ts_json_record(void *arg, const cJSON *v)
{
	struct ts_json *t = arg;

	if (t->started)
		return ts_emit(t, v) != 0 ? (t->failed = true, 1) : 0;
	if (t->fixed)
		return ts_start(t) != 0 || ts_emit(t, v) != 0 ? (t->failed = true, 1) : 0;
	if (t->pend == NULL && (t->pend = calloc(TS_INFER_RECORDS, sizeof *t->pend)) == NULL) {
		auth_fail(t->c, AUTH_E_INTERNAL, "out of memory");
		t->failed = true;
		return 1;
	}
	t->pend[t->npend] = cJSON_Duplicate(v, true);
	if (t->pend[t->npend] == NULL) {
		auth_fail(t->c, AUTH_E_INTERNAL, "out of memory");
		t->failed = true;
		return 1;
	}
	t->pend_bytes += ts_cost(v);
	t->npend++;
	if (t->npend == TS_INFER_RECORDS || t->pend_bytes > ts_record_max(t->c))
		return ts_flush(t) != 0 ? (t->failed = true, 1) : 0;
	return 0;
}

static int
ts_json_feed(void *arg, const char *buf, size_t len, bool last)
{
	struct ts_json *t = arg;
	enum json_status s = json_reader_feed(t->rd, buf, len, ts_json_record, t);

	if (s == JSON_OK && last)
		s = json_reader_finish(t->rd, ts_json_record, t);
	if (t->failed || t->c->code != AUTH_OK)
		return -1;
	if (s == JSON_ERROR)
		return auth_fail(t->c, AUTH_E_STORE, "%s is not valid %s: %s", t->what,
		    t->lines ? "JSON Lines" : "JSON", json_reader_error(t->rd));
	if (s == JSON_STOPPED)
		return -1;
	if (auth_should_stop(t->c))
		return auth_fail_timeout(t->c, "reading the source");
	return 0;
}

int
conn_json_stream(struct auth_ctx *c, bool lines, auth_pull_fn pull, void *pull_arg,
    const char *what, const struct auth_stream *s)
{
	struct ts_json t;
	size_t i;
	int rc = -1;

	memset(&t, 0, sizeof t);
	t.c = c;
	t.s = s;
	t.what = what;
	t.lines = lines;
	if (ts_schema(&t) != 0)
		goto out;
	if ((t.rd = json_reader_new(lines, ts_record_max(c))) == NULL) {
		auth_fail(c, AUTH_E_INTERNAL, "out of memory");
		goto out;
	}
	if (pull(pull_arg, &t, ts_json_feed) != 0 || c->code != AUTH_OK)
		goto out;
	if (!t.started && (t.npend > 0 || t.fixed)) {
		if (t.fixed ? ts_start(&t) != 0 : ts_flush(&t) != 0)
			goto out;
	} else if (!t.started) {
		auth_fail(c, AUTH_E_STORE, "%s has no records to take columns from; give "
		    "dataset.schema to copy an empty dataset", what);
		goto out;
	}
	rc = 0;
out:
	for (i = 0; i < t.npend; i++)
		cJSON_Delete(t.pend[i]);
	free(t.pend);
	for (i = 0; i < t.ncols; i++) {
		free(t.names[i]);
		free(t.types[i]);
		if (t.owned)
			free(t.owned[i]);
	}
	free(t.names);
	free(t.types);
	free(t.seen);
	free(t.vals);
	free(t.lens);
	free(t.owned);
	free(t.num);
	json_reader_free(t.rd);
	return rc;
}

/* ---- DelimitedText ------------------------------------------------------- */

struct ts_csv {
	struct auth_ctx *c;
	const struct auth_stream *s;
	const char *what;
	struct csv_reader *rd;
	bool header, started, failed;
	size_t ncols;
	unsigned long long rec;
	const char **vals;
	size_t *lens;
};

static int
ts_csv_start(struct ts_csv *t, const struct csv_field *f, size_t n)
{
	char **names = calloc(n, sizeof *names);
	const char **types = calloc(n, sizeof *types);
	int *nullable = calloc(n, sizeof *nullable);
	size_t i;
	int rc = -1;

	t->vals = calloc(n, sizeof *t->vals);
	t->lens = calloc(n, sizeof *t->lens);
	if (!names || !types || !nullable || !t->vals || !t->lens) {
		auth_fail(t->c, AUTH_E_INTERNAL, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		char tmp[32];

		snprintf(tmp, sizeof tmp, "Prop_%zu", i);
		if ((names[i] = strdup(t->header ? f[i].data : tmp)) == NULL) {
			auth_fail(t->c, AUTH_E_INTERNAL, "out of memory");
			goto out;
		}
		types[i] = "String";
		nullable[i] = -1;
	}
	t->ncols = n;
	t->started = true;
	rc = t->s->columns(t->s->arg, n, (const char *const *)names, types, nullable) != 0 ? -1 : 0;
out:
	for (i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
	free(types);
	free(nullable);
	return rc;
}

static int
ts_csv_record(void *arg, const struct csv_field *f, size_t n)
{
	struct ts_csv *t = arg;
	size_t i;

	if (!t->started) {
		if (ts_csv_start(t, f, n) != 0)
			goto failed;
		if (t->header)
			return 0;
	}
	t->rec++;
	if (n != t->ncols) {
		auth_fail(t->c, AUTH_E_STORE, "%s: row %llu has %zu fields where the first row has %zu",
		    t->what, t->rec, n, t->ncols);
		goto failed;
	}
	for (i = 0; i < n; i++) {
		if (f[i].truncated) {
			auth_fail_budget(t->c, "one field of the delimited text");
			goto failed;
		}
		t->vals[i] = f[i].data;
		t->lens[i] = f[i].len;
	}
	if (t->s->row(t->s->arg, n, t->vals, t->lens) != 0 || auth_should_stop(t->c)) {
		if (t->c->code == AUTH_OK)
			auth_fail(t->c, AUTH_E_SHUTDOWN, "the copy was stopped");
		goto failed;
	}
	return 0;
failed:
	t->failed = true;
	return 1;
}

static int
ts_csv_feed(void *arg, const char *buf, size_t len, bool last)
{
	struct ts_csv *t = arg;
	enum csv_status s = csv_reader_feed(t->rd, buf, len, ts_csv_record, t);

	if (s == CSV_OK && last)
		s = csv_reader_finish(t->rd, ts_csv_record, t);
	if (t->failed || t->c->code != AUTH_OK)
		return -1;
	if (s == CSV_ERROR)
		return auth_fail(t->c, AUTH_E_STORE, "%s is not valid delimited text: %s", t->what,
		    csv_reader_error(t->rd));
	if (auth_should_stop(t->c))
		return auth_fail_timeout(t->c, "reading the source");
	return s == CSV_STOPPED ? -1 : 0;
}

int
conn_csv_stream(struct auth_ctx *c, char delim, char quote, bool header, auth_pull_fn pull,
    void *pull_arg, const char *what, const struct auth_stream *s)
{
	struct ts_csv t;
	int rc = -1;

	memset(&t, 0, sizeof t);
	t.c = c;
	t.s = s;
	t.what = what;
	t.header = header;
	if ((t.rd = csv_reader_new(delim, quote, ts_record_max(c), AUTH_COLUMNS_MAX)) == NULL) {
		auth_fail(c, AUTH_E_INTERNAL, "out of memory");
		goto out;
	}
	if (pull(pull_arg, &t, ts_csv_feed) != 0 || c->code != AUTH_OK)
		goto out;
	if (!t.started) {
		auth_fail(c, AUTH_E_STORE, "%s is empty: no row to take columns from", what);
		goto out;
	}
	rc = 0;
out:
	free(t.vals);
	free(t.lens);
	csv_reader_free(t.rd);
	return rc;
}
