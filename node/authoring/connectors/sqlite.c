/* Sqlite connector: read-only connections (SQLITE_OPEN_READONLY), statements
 * checked with sqlite3_stmt_readonly, and a progress handler that interrupts
 * a statement when the deadline passes.
 *
 * Memory: SQLITE_LIMIT_LENGTH caps one string or blob at the request's
 * budget, and SQLite's allocator is wrapped so that each worker thread counts
 * what its own connection holds: past the budget an allocation fails
 * (SQLITE_NOMEM) and the request is answered 413 ResultTooLarge. A
 * connection is opened, used and closed on one worker (SQLITE_OPEN_NOMUTEX),
 * so the thread's count is the connection's; sqlite3_hard_heap_limit64()
 * would be one limit for the whole process.
 *
 * What a request's SQL (or the database file's own schema) may reach is
 * bounded by an authorizer that allows reading and nothing else: no ATTACH
 * (other files), no pragma but the few that describe a table, no function
 * that hands out or plants pointers (fts3_tokenizer) or loads code
 * (load_extension). The connection is also DEFENSIVE, with trusted_schema,
 * the FTS3 tokenizer registration and extension loading off. The path is
 * the resolved absolute path, never a file: URI (no vfs=, mode=). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "node/authoring/auth_ctx.h"
#include "node/authoring/auth_rows.h"
#include "common/log.h"

/* ---- the per-connection heap budget --------------------------------------- */

static sqlite3_mem_methods sq_base;
static bool sq_counting;		/* the wrapper is installed */
static _Thread_local long long sq_used;	/* bytes this thread holds from SQLite */
static _Thread_local long long sq_limit;	/* 0: no budget; else sq_used may not pass it */
static _Thread_local bool sq_over;	/* an allocation was refused for the budget */

static void *
sq_malloc(int n)
{
	void *p;

	if (sq_limit && sq_used + n > sq_limit) {
		sq_over = true;
		return NULL;
	}
	p = sq_base.xMalloc(n);
	if (p != NULL)
		sq_used += sq_base.xSize(p);
	return p;
}

static void
sq_free(void *p)
{
	if (p != NULL)
		sq_used -= sq_base.xSize(p);
	sq_base.xFree(p);
}

static void *
sq_realloc(void *p, int n)
{
	int old = p ? sq_base.xSize(p) : 0;
	void *q;

	if (sq_limit && n > old && sq_used - old + n > sq_limit) {
		sq_over = true;
		return NULL;
	}
	q = sq_base.xRealloc(p, n);
	if (q != NULL)
		sq_used += sq_base.xSize(q) - old;
	return q;
}

static int
sq_size(void *p)
{
	return sq_base.xSize(p);
}

static int
sq_roundup(int n)
{
	return sq_base.xRoundup(n);
}

static int
sq_init(void *arg)
{
	return sq_base.xInit(sq_base.pAppData);
}

static void
sq_shutdown(void *arg)
{
	sq_base.xShutdown(sq_base.pAppData);
}

static void
sq_install(void)
{
	static sqlite3_mem_methods m = { sq_malloc, sq_free, sq_realloc, sq_size, sq_roundup,
		sq_init, sq_shutdown, NULL };

	if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &sq_base) != SQLITE_OK ||
	    sqlite3_config(SQLITE_CONFIG_MALLOC, &m) != SQLITE_OK) {
		log_warn("authoring", "event=sqlite.budget status=off reason=\"SQLite was initialised "
		    "before its allocator could be wrapped; only SQLITE_LIMIT_LENGTH bounds a request\"");
		return;
	}
	sq_counting = true;
}

int
conn_sqlite_global_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, sq_install);
	return sq_counting ? 0 : -1;
}

/* From here on this thread's SQLite allocations may hold at most budget more
 * bytes; 0 ends the budget. */
static void
sq_budget(size_t budget)
{
	sq_over = false;
	sq_limit = budget && sq_counting ? sq_used + (long long)budget : 0;
}

static int
sq_progress(void *arg)
{
	return auth_should_stop(arg) ? 1 : 0;
}

/* What the authorizer refused, for the message. A worker thread runs one
 * job at a time and a job one connection at a time: one per thread. */
struct sq_guard {
	char denied[160];
};
static _Thread_local struct sq_guard sq_guard;

/* Pragmas that only describe a table (what sq_table_schema uses). */
static const char *const sq_pragmas[] = {
	"table_info", "table_xinfo", "index_list", "index_info", "index_xinfo",
	"foreign_key_list", NULL
};

/* Functions that reveal or plant pointers, load code or reach files. */
static const char *const sq_bad_functions[] = {
	"fts3_tokenizer", "load_extension", "readfile", "writefile", "edit", "fts5_source_id",
	"sqlite_compileoption_get", "sqlite_compileoption_used", NULL
};

static bool
sq_in(const char *s, const char *const *list)
{
	for (; s && *list; list++)
		if (strcasecmp(s, *list) == 0)
			return true;
	return false;
}

static int
sq_authorize(void *arg, int action, const char *a1, const char *a2, const char *db,
    const char *trigger)
{
	struct sq_guard *g = arg;
	const char *what;

	switch (action) {
	case SQLITE_SELECT:
	case SQLITE_READ:
	case SQLITE_RECURSIVE:
		return SQLITE_OK;
	case SQLITE_FUNCTION:
		if (!sq_in(a2, sq_bad_functions))
			return SQLITE_OK;
		snprintf(g->denied, sizeof g->denied, "the function %s()", a2);
		return SQLITE_DENY;
	case SQLITE_UPDATE:
		/* the first use of a table-valued pragma (pragma_table_info)
		 * declares its virtual table in the schema; a real UPDATE of
		 * sqlite_master cannot succeed: read-only connection, DEFENSIVE,
		 * PRAGMA writable_schema refused */
		if (a1 != NULL && (strcmp(a1, "sqlite_master") == 0 ||
		    strcmp(a1, "sqlite_schema") == 0) && trigger == NULL && db != NULL &&
		    strcmp(db, "main") == 0)
			return SQLITE_OK;
		what = "a write";
		break;
	case SQLITE_PRAGMA:
		if (sq_in(a1, sq_pragmas))
			return SQLITE_OK;
		snprintf(g->denied, sizeof g->denied, "PRAGMA %s", a1 ? a1 : "");
		return SQLITE_DENY;
	case SQLITE_ATTACH: what = "ATTACH"; break;
	case SQLITE_DETACH: what = "DETACH"; break;
	case SQLITE_TRANSACTION: what = "a transaction statement"; break;
	case SQLITE_SAVEPOINT: what = "SAVEPOINT"; break;
	case SQLITE_ANALYZE: what = "ANALYZE"; break;
	case SQLITE_INSERT: case SQLITE_DELETE: what = "a write"; break;
	default: what = "a statement that changes the database or the connection"; break;
	}
	snprintf(g->denied, sizeof g->denied, "%s", what);
	return SQLITE_DENY;
}

static int
sq_fail(struct auth_ctx *c, sqlite3 *db, int rc, const char *what)
{
	if (db != NULL && sq_guard.denied[0])
		return auth_fail(c, AUTH_E_READONLY, "%s uses %s, and authoring is read-only: "
		    "only statements that read the database's tables and views are allowed", what,
		    sq_guard.denied);
	if (rc == SQLITE_INTERRUPT)
		return auth_fail_timeout(c, what);
	if (rc == SQLITE_TOOBIG || (rc == SQLITE_NOMEM && sq_over))
		return auth_fail_budget(c, what);
	if (rc == SQLITE_READONLY)
		return auth_fail(c, AUTH_E_READONLY, "%s would write to the database, and authoring "
		    "is read-only: %s", what, sqlite3_errmsg(db));
	if (rc == SQLITE_AUTH || rc == SQLITE_PERM)
		return auth_fail(c, AUTH_E_AUTH, "%s: %s", what, sqlite3_errmsg(db));
	return auth_fail(c, AUTH_E_STORE, "%s: %s", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

/* A FIFO or a device would hold the worker in SQLite's open(); missing
 * files are left to SQLite's own error. */
static bool
sq_regular(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	bool ok;

	if (fd < 0)
		return errno == ENOENT;
	ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
	close(fd);
	return ok;
}

static void
sq_close(sqlite3 *db)
{
	sqlite3_close(db);
	sq_budget(0);
}

/* Everything off that lets SQL reach beyond reading this file. */
static int
sq_harden(struct auth_ctx *c, sqlite3 *db)
{
	int off = 0, on = 1;

	memset(&sq_guard, 0, sizeof sq_guard);
	if (sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, off, NULL) != SQLITE_OK ||
	    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, off, NULL) != SQLITE_OK ||
	    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, on, NULL) != SQLITE_OK ||
	    sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, off, NULL) != SQLITE_OK)
		return auth_fail(c, AUTH_E_INTERNAL, "cannot lock the SQLite connection down: %s",
		    sqlite3_errmsg(db));
	/* ATTACH would reach files outside the allowed folders */
	sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
	sqlite3_set_authorizer(db, sq_authorize, &sq_guard);
	return 0;
}

static int
sq_open(struct auth_ctx *c, sqlite3 **dbp)
{
	const char *path = auth_prop_str(c, "path", true, NULL);
	char *real = NULL;
	sqlite3 *db = NULL;
	int rc;

	*dbp = NULL;
	if (path == NULL || auth_check_local_path(c, "the Sqlite database", path, &real) != 0)
		return -1;
	/* real is absolute: never read as a file: URI (no SQLITE_OPEN_URI) */
	if (!sq_regular(real)) {
		auth_fail(c, AUTH_E_INVALID, "the Sqlite database %s is not a regular file (a "
		    "folder, FIFO, socket or device)", path);
		free(real);
		return -1;
	}
	sq_budget(c->policy.mem_limit);
	rc = sqlite3_open_v2(real, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
	    NULL);
	free(real);
	if (rc != SQLITE_OK) {
		sq_fail(c, db, rc, "opening the database");
		sq_close(db);
		return -1;
	}
	if (sq_harden(c, db) != 0) {
		sq_close(db);
		return -1;
	}
	/* no string or blob (a value, a row, an SQL text) above the budget */
	if (c->policy.mem_limit > 0)
		sqlite3_limit(db, SQLITE_LIMIT_LENGTH, c->policy.mem_limit < INT_MAX ?
		    (int)c->policy.mem_limit : INT_MAX);
	sqlite3_progress_handler(db, 1000, sq_progress, c);
	sqlite3_busy_timeout(db, auth_secs_for(c, 5) * 1000);
	*dbp = db;
	return 0;
}

static int
sq_test(struct auth_ctx *c)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc = -1, s;

	if (sq_open(c, &db) != 0)
		return -1;
	s = sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master", -1, &st, NULL);
	if (s == SQLITE_OK)
		s = sqlite3_step(st);
	if (s != SQLITE_ROW) {
		sq_fail(c, db, s, "reading the database");
		goto out;
	}
	auth_result_store(c, "SQLite", sqlite3_libversion());
	rc = 0;
out:
	sqlite3_finalize(st);
	sq_close(db);
	return rc;
}

static int
sq_browse(struct auth_ctx *c, cJSON *items, bool *truncated)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc = -1, s;

	if (c->path[0] && strcmp(c->path, "main") != 0)
		return auth_fail(c, AUTH_E_NOTFOUND, "a Sqlite database has one schema, \"main\"; "
		    "there is no \"%s\"", c->path);
	if (sq_open(c, &db) != 0)
		return -1;
	s = sqlite3_prepare_v2(db, "SELECT name, type FROM sqlite_master WHERE type IN ('table', "
	    "'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name", -1, &st, NULL);
	while (s == SQLITE_OK && (s = sqlite3_step(st)) == SQLITE_ROW) {
		cJSON *it = auth_item(items, (const char *)sqlite3_column_text(st, 0),
		    (const char *)sqlite3_column_text(st, 1));

		if (it)
			cJSON_AddStringToObject(it, "schema", "main");
		s = SQLITE_OK;
	}
	if (s != SQLITE_DONE) {
		sq_fail(c, db, s, "listing the tables");
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	sq_close(db);
	return rc;
}

/* The interim type of a declared column type (SQLite's affinity rules). */
static const char *
sq_type(const char *decl)
{
	char up[64];
	size_t i;

	if (decl == NULL || !*decl)
		return NULL;
	for (i = 0; decl[i] && i < sizeof up - 1; i++)
		up[i] = (char)(decl[i] >= 'a' && decl[i] <= 'z' ? decl[i] - 32 : decl[i]);
	up[i] = '\0';
	if (strstr(up, "BOOL"))
		return "Boolean";
	if (strstr(up, "INT"))
		return "Int64";
	if (strstr(up, "CHAR") || strstr(up, "CLOB") || strstr(up, "TEXT"))
		return "String";
	if (strstr(up, "BLOB"))
		return "ByteArray";
	if (strstr(up, "REAL") || strstr(up, "FLOA") || strstr(up, "DOUB"))
		return "Double";
	if (strstr(up, "DEC") || strstr(up, "NUMERIC"))
		return "Decimal";
	if (strstr(up, "TIMESTAMP") || strstr(up, "DATE"))
		return "DateTime";
	if (strstr(up, "TIME"))
		return "TimeSpan";
	if (strstr(up, "GUID") || strstr(up, "UUID"))
		return "Guid";
	return "String";
}

static const char *
sq_value_type(int t)
{
	switch (t) {
	case SQLITE_INTEGER: return "Int64";
	case SQLITE_FLOAT: return "Double";
	case SQLITE_BLOB: return "ByteArray";
	default: return "String";
	}
}

/* "name" with embedded quotes doubled. */
static char *
sq_ident(const char *s)
{
	size_t l = strlen(s), i, o = 0;
	char *q = malloc(2 * l + 3);

	if (q == NULL)
		return NULL;
	q[o++] = '"';
	for (i = 0; i < l; i++) {
		if (s[i] == '"')
			q[o++] = '"';
		q[o++] = s[i];
	}
	q[o++] = '"';
	q[o] = '\0';
	return q;
}

/* Prepares the dataset's statement: a table or a single read-only query. */
static int
sq_prepare(struct auth_ctx *c, sqlite3 *db, sqlite3_stmt **stp, int limit)
{
	const char *tail = NULL;
	char *sql = NULL, *id = NULL;
	int s;

	*stp = NULL;
	if (strcmp(c->dataset_type, "Table") == 0) {
		const char *table = auth_ds_str(c, "table", true, NULL);
		const char *schema = auth_ds_str(c, "schema", false, "main");
		sqlite3_stmt *chk = NULL;
		int found;

		if (table == NULL || schema == NULL)
			return -1;
		if (strcmp(schema, "main") != 0 && *schema)
			return auth_fail(c, AUTH_E_NOTFOUND, "a Sqlite database has one schema, \"main\"");
		s = sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type IN ('table','view') "
		    "AND name = ?1", -1, &chk, NULL);
		if (s == SQLITE_OK)
			sqlite3_bind_text(chk, 1, table, -1, SQLITE_STATIC);
		found = s == SQLITE_OK ? sqlite3_step(chk) : s;
		sqlite3_finalize(chk);
		if (found == SQLITE_DONE)
			return auth_fail(c, AUTH_E_NOTFOUND, "no table or view named \"%s\" in the Sqlite "
			    "database", table);
		if (found != SQLITE_ROW)
			return sq_fail(c, db, found, "looking up the table");
		id = sq_ident(table);
		sql = id ? sqlite3_mprintf("SELECT * FROM %s LIMIT %d", id, limit) : NULL;
		free(id);
		if (sql == NULL)
			return auth_fail(c, AUTH_E_INTERNAL, "out of memory");
		s = sqlite3_prepare_v2(db, sql, -1, stp, NULL);
		sqlite3_free(sql);
		return s == SQLITE_OK ? 0 : sq_fail(c, db, s, "preparing the query");
	}
	sql = (char *)auth_ds_str(c, "query", true, NULL);
	if (sql == NULL)
		return -1;
	s = sqlite3_prepare_v2(db, sql, -1, stp, &tail);
	if (s != SQLITE_OK)
		return sq_fail(c, db, s, "the query");
	if (*stp == NULL)
		return auth_fail(c, AUTH_E_INVALID, "dataset.query is empty");
	while (tail && (*tail == ' ' || *tail == '\n' || *tail == '\t' || *tail == '\r' ||
		*tail == ';'))
		tail++;
	if (tail && *tail)
		return auth_fail(c, AUTH_E_INVALID, "dataset.query must be a single statement");
	if (!sqlite3_stmt_readonly(*stp))
		return auth_fail(c, AUTH_E_READONLY, "the query would write to the database, and "
		    "authoring is read-only: only statements that read are allowed");
	return 0;
}

static int
sq_table_schema(struct auth_ctx *c, sqlite3 *db, const char *table)
{
	sqlite3_stmt *st = NULL;
	int s, n = 0;

	s = sqlite3_prepare_v2(db, "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1)",
	    -1, &st, NULL);
	if (s == SQLITE_OK)
		sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	while (s == SQLITE_OK && (s = sqlite3_step(st)) == SQLITE_ROW) {
		const char *t = sq_type((const char *)sqlite3_column_text(st, 1));

		auth_rows_add_column(c->rows, (const char *)sqlite3_column_text(st, 0),
		    t ? t : "String", !sqlite3_column_int(st, 2));
		n++;
		s = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (s != SQLITE_DONE)
		return sq_fail(c, db, s, "reading the table's columns");
	return 0;
}

static int
sq_run(struct auth_ctx *c, bool preview)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc = -1, s, i, n;
	bool cols_done = false;

	if (sq_open(c, &db) != 0)
		return -1;
	if (sq_prepare(c, db, &st, preview ? c->limit + 1 : 1) != 0)
		goto out;
	n = sqlite3_column_count(st);
	if (!preview && strcmp(c->dataset_type, "Table") == 0) {
		rc = sq_table_schema(c, db, auth_ds_str(c, "table", true, NULL));
		goto out;
	}
	/* declared types when known; otherwise the first row's storage classes */
	for (s = sqlite3_step(st);; s = sqlite3_step(st)) {
		if (s != SQLITE_ROW && s != SQLITE_DONE) {
			sq_fail(c, db, s, "running the query");
			goto out;
		}
		if (!cols_done) {
			for (i = 0; i < n; i++) {
				const char *t = sq_type(sqlite3_column_decltype(st, i));

				if (t == NULL)
					t = s == SQLITE_ROW ? sq_value_type(sqlite3_column_type(st, i)) :
					    "String";
				if (auth_rows_add_column(c->rows, sqlite3_column_name(st, i), t, -1) != 0) {
					auth_fail(c, AUTH_E_INTERNAL, "too many columns");
					goto out;
				}
			}
			cols_done = true;
		}
		if (s == SQLITE_DONE || !preview)
			break;
		if (!auth_rows_want(c->rows)) {
			auth_rows_set_truncated(c->rows);
			break;
		}
		auth_rows_begin(c->rows);
		for (i = 0; i < n; i++) {
			switch (sqlite3_column_type(st, i)) {
			case SQLITE_NULL:
				auth_rows_null(c->rows);
				break;
			case SQLITE_BLOB:
				auth_rows_bytes(c->rows, sqlite3_column_blob(st, i),
				    (size_t)sqlite3_column_bytes(st, i));
				break;
			default:
				auth_rows_text(c->rows, (const char *)sqlite3_column_text(st, i),
				    (size_t)sqlite3_column_bytes(st, i));
			}
		}
		auth_rows_end(c->rows);
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	sq_close(db);
	return rc;
}

static int
sq_schema(struct auth_ctx *c)
{
	return sq_run(c, false);
}

static int
sq_preview(struct auth_ctx *c)
{
	return sq_run(c, true);
}

/* The whole Table or Query for a copy job, one sqlite3_step at a time: the
 * connection of every operation (read-only, DEFENSIVE, the authorizer, no
 * ATTACH, the statement checked with sqlite3_stmt_readonly), SQLite's heap
 * for this connection within the request memory limit (a value or row
 * larger fails), the progress handler stopping it at the deadline or when
 * the job stops. Column types: the declared ones, else the first row's. */
static int
sq_stream(struct auth_ctx *c, const struct auth_stream *s)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	const char **names = NULL, **types = NULL, **vals = NULL;
	size_t *vl = NULL;
	int *nullable = NULL;
	char (*bufs)[40] = NULL;
	int rc = -1, r, i, n;
	bool cols = false;

	if (sq_open(c, &db) != 0)
		return -1;
	if (sq_prepare(c, db, &st, -1) != 0)	/* LIMIT -1: every row */
		goto out;
	n = sqlite3_column_count(st);
	names = calloc((size_t)n + 1, sizeof *names);
	types = calloc((size_t)n + 1, sizeof *types);
	vals = calloc((size_t)n + 1, sizeof *vals);
	vl = calloc((size_t)n + 1, sizeof *vl);
	nullable = calloc((size_t)n + 1, sizeof *nullable);
	bufs = calloc((size_t)n + 1, sizeof *bufs);
	if (!names || !types || !vals || !vl || !nullable || !bufs) {
		auth_fail(c, AUTH_E_INTERNAL, "out of memory");
		goto out;
	}
	for (r = sqlite3_step(st);; r = sqlite3_step(st)) {
		if (r != SQLITE_ROW && r != SQLITE_DONE) {
			if (auth_should_stop(c))
				auth_fail_timeout(c, "the query");
			else
				sq_fail(c, db, r, "running the query");
			goto out;
		}
		if (!cols) {
			for (i = 0; i < n; i++) {
				const char *t = sq_type(sqlite3_column_decltype(st, i));

				names[i] = sqlite3_column_name(st, i);
				types[i] = t ? t : r == SQLITE_ROW ?
				    sq_value_type(sqlite3_column_type(st, i)) : "String";
				nullable[i] = -1;
			}
			if (s->columns(s->arg, (size_t)n, names, types, nullable) != 0)
				goto stopped;
			cols = true;
		}
		if (r == SQLITE_DONE)
			break;
		for (i = 0; i < n; i++) {
			int ct = sqlite3_column_type(st, i);

			if (ct == SQLITE_NULL) {
				vals[i] = NULL;
				vl[i] = 0;
			} else if (strcmp(types[i], "ByteArray") == 0) {
				vals[i] = sqlite3_column_blob(st, i);
				vl[i] = (size_t)sqlite3_column_bytes(st, i);
				if (vals[i] == NULL)
					vals[i] = "";
			} else {
				vals[i] = (const char *)sqlite3_column_text(st, i);
				vl[i] = (size_t)sqlite3_column_bytes(st, i);
				if (vals[i] == NULL) {
					auth_fail_budget(c, "a value of the SQLite answer");
					goto out;
				}
				if (strcmp(types[i], "DateTime") == 0 && vl[i] >= 19 &&
				    vl[i] < sizeof bufs[i] && vals[i][10] == ' ') {
					memcpy(bufs[i], vals[i], vl[i]);
					bufs[i][10] = 'T';
					vals[i] = bufs[i];
				}
			}
		}
		if (s->row(s->arg, (size_t)n, vals, vl) != 0 || auth_should_stop(c))
			goto stopped;
	}
	rc = 0;
	goto out;
stopped:
	if (c->code == AUTH_OK)
		auth_fail(c, AUTH_E_SHUTDOWN, "the copy was stopped");
out:
	free(names);
	free(types);
	free(vals);
	free(vl);
	free(nullable);
	free(bufs);
	sqlite3_finalize(st);
	sq_close(db);
	return rc;
}

static const char *const sq_datasets[] = { "Table", "Query", NULL };

const struct auth_store conn_sqlite_store = {
	.type = "Sqlite",
	.datasets = sq_datasets,
	.test = sq_test,
	.browse = sq_browse,
	.schema = sq_schema,
	.preview = sq_preview,
	.stream = sq_stream,
};
