/* PostgreSql connector (libpq). Every session is read-only twice over:
 * default_transaction_read_only=on for the session and BEGIN READ ONLY for
 * each operation, so a writing Query fails in PostgreSQL itself (SQLSTATE
 * 25006) and comes back as 403 ReadOnlyViolation. Connections and queries
 * are driven asynchronously with poll() so the deadline holds; a query still
 * running at the deadline is cancelled with PQcancel.
 *
 * Only the settings of the linked service reach libpq, as explicit keywords
 * (never a conninfo string, so no value can add a keyword): no service file,
 * no password file and no client certificate (passfile, sslcert and sslkey
 * name a path that cannot exist), no GSSAPI
 * encryption with the node's Kerberos credentials, one network host; shird
 * clears every PG* variable at startup (auth_env_neutralise). */
#include "config.h"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "node/authoring/auth_ctx.h"
#include "node/authoring/auth_rows.h"

/* what libpq gets for the files of the node user it must not read */
#define PG_NO_FILE "/nonexistent/shir-no-file"

/* type OIDs from pg_type.dat (stable across versions) */
#define PG_BOOL 16
#define PG_BYTEA 17
#define PG_CHAR 18
#define PG_NAME 19
#define PG_INT8 20
#define PG_INT2 21
#define PG_INT4 23
#define PG_TEXT 25
#define PG_OID 26
#define PG_FLOAT4 700
#define PG_FLOAT8 701
#define PG_MONEY 790
#define PG_BPCHAR 1042
#define PG_VARCHAR 1043
#define PG_DATE 1082
#define PG_TIME 1083
#define PG_TIMESTAMP 1114
#define PG_TIMESTAMPTZ 1184
#define PG_INTERVAL 1186
#define PG_TIMETZ 1266
#define PG_NUMERIC 1700
#define PG_UUID 2950

static const char *
pg_type(Oid t)
{
	switch (t) {
	case PG_BOOL: return "Boolean";
	case PG_BYTEA: return "ByteArray";
	case PG_INT2: return "Int16";
	case PG_INT4: return "Int32";
	case PG_INT8: case PG_OID: return "Int64";
	case PG_FLOAT4: return "Single";
	case PG_FLOAT8: return "Double";
	case PG_NUMERIC: return "Decimal";
	case PG_DATE: case PG_TIMESTAMP: return "DateTime";
	case PG_TIMESTAMPTZ: return "DateTimeOffset";
	case PG_TIME: case PG_INTERVAL: return "TimeSpan";
	case PG_UUID: return "Guid";
	default: return "String";
	}
}

/* Classifies a failure by SQLSTATE (results) or by libpq's message
 * (connections, which carry no SQLSTATE). */
static int
pg_fail_msg(struct auth_ctx *c, const char *sqlstate, const char *msg, const char *what)
{
	if (sqlstate != NULL) {
		if (strcmp(sqlstate, "25006") == 0)
			return auth_fail(c, AUTH_E_READONLY, "the query would write, and authoring runs "
			    "in read-only transactions: %s", msg);
		if (strcmp(sqlstate, "42P01") == 0 || strcmp(sqlstate, "3F000") == 0 ||
		    strcmp(sqlstate, "3D000") == 0)
			return auth_fail(c, AUTH_E_NOTFOUND, "%s", msg);
		if (strncmp(sqlstate, "28", 2) == 0)
			return auth_fail(c, AUTH_E_AUTH, "%s", msg);
		if (strcmp(sqlstate, "57014") == 0 && auth_should_stop(c))
			return auth_fail_timeout(c, what);
		if (strncmp(sqlstate, "08", 2) == 0)
			return auth_fail(c, AUTH_E_UNREACHABLE, "%s", msg);
		return auth_fail(c, AUTH_E_STORE, "%s: %s", what, msg);
	}
	if (strstr(msg, "password authentication failed") || strstr(msg, "no password supplied") ||
	    strstr(msg, "authentication failed") || strstr(msg, "pg_hba.conf") ||
	    strstr(msg, "role \"") )
		return auth_fail(c, AUTH_E_AUTH, "%s", msg);
	if (strstr(msg, "database \"") && strstr(msg, "does not exist"))
		return auth_fail(c, AUTH_E_NOTFOUND, "%s", msg);
	if (strstr(msg, "Connection refused") || strstr(msg, "could not translate host name") ||
	    strstr(msg, "timeout expired") || strstr(msg, "Network is unreachable") ||
	    strstr(msg, "No route to host") || strstr(msg, "could not connect") ||
	    strstr(msg, "server closed the connection"))
		return auth_fail(c, AUTH_E_UNREACHABLE, "%s", msg);
	return auth_fail(c, AUTH_E_STORE, "%s: %s", what, msg);
}

static int
pg_fail_res(struct auth_ctx *c, PGconn *conn, PGresult *res, const char *what)
{
	const char *ss = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *m = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);

	return pg_fail_msg(c, ss, m && *m ? m : PQerrorMessage(conn), what);
}

/* Waits for the socket; 0 ready, -1 deadline (or stop). */
static int
pg_wait_sock(struct auth_ctx *c, PGconn *conn, short ev, long cap_ms)
{
	struct pollfd p = { PQsocket(conn), ev, 0 };

	for (;;) {
		long left = auth_ms_left(c);

		if (cap_ms >= 0 && cap_ms < left)
			left = cap_ms;
		if (left <= 0)
			return -1;
		if (poll(&p, 1, left > 200 ? 200 : (int)left) > 0)
			return 0;
		if (auth_should_stop(c))
			return -1;
		if (cap_ms >= 0 && (cap_ms -= 200) <= 0)
			return -1;
	}
}

static void
pg_cancel(PGconn *conn)
{
	PGcancel *cn = PQgetCancel(conn);
	char buf[256];

	if (cn != NULL) {
		PQcancel(cn, buf, sizeof buf);
		PQfreeCancel(cn);
	}
}

/* The documented settings (docs/authoring.md); each becomes one explicit
 * libpq keyword. */
static const char *const pg_props[] = { "host", "port", "database", "username", "password",
	"sslMode", "connectTimeoutSeconds", NULL };

static int
pg_connect(struct auth_ctx *c, PGconn **out)
{
	const char *host, *db, *user, *ssl;
	int port, cto;
	char sport[16], scto[16], addr[64];
	const char *kw[20], *val[20];
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	PGconn *conn = NULL;
	int k = 0;

	*out = NULL;
	if (auth_props_only(c, pg_props) != 0)
		return -1;
	if ((host = auth_prop_str(c, "host", true, NULL)) == NULL ||
	    (db = auth_prop_str(c, "database", true, NULL)) == NULL)
		return -1;
	user = auth_prop_str(c, "username", false, NULL);
	if (c->code != AUTH_OK)
		return -1;
	if ((ssl = auth_prop_str(c, "sslMode", false, "prefer")) == NULL ||
	    auth_prop_int(c, "port", 5432, 1, 65535, &port) != 0 ||
	    auth_prop_int(c, "connectTimeoutSeconds", 15, 1, 300, &cto) != 0)
		return -1;
	if (strcmp(ssl, "disable") && strcmp(ssl, "prefer") && strcmp(ssl, "require") &&
	    strcmp(ssl, "verify-full") && strcmp(ssl, "verify-ca") && strcmp(ssl, "allow"))
		return auth_fail(c, AUTH_E_INVALID, "linkedService.properties.sslMode must be disable, "
		    "prefer, require or verify-full");
	/* libpq reads host as a list ("a,b": tries each) and a value starting
	 * with '/' or '@' as a Unix socket: one network host only, checked */
	if (strchr(host, ',') != NULL)
		return auth_fail(c, AUTH_E_INVALID, "linkedService.properties.host must name one host "
		    "(libpq would try each of a comma-separated list)");
	if ((host[0] == '/' || host[0] == '@') && !c->policy.local_machine_access)
		return auth_fail(c, AUTH_E_LOCAL, "the store %s is a Unix socket on this node and local "
		    "machine access is off; the node's admin can allow it with "
		    "`shirctl local-machine-access enable` (security.local_machine_access)", host);
	if (host[0] != '/' && host[0] != '@' && auth_check_host_addr(c, host, addr, sizeof addr) != 0)
		return -1;
	snprintf(sport, sizeof sport, "%d", port);
	snprintf(scto, sizeof scto, "%d", auth_secs_for(c, cto));
	kw[k] = "host", val[k++] = host;	/* still the name: TLS verifies it */
	if (addr[0] && host[0] != '/')
		kw[k] = "hostaddr", val[k++] = addr;	/* the address that was checked */
	kw[k] = "port", val[k++] = sport;
	kw[k] = "dbname", val[k++] = db;
	if (user)
		kw[k] = "user", val[k++] = user;
	if (c->password)
		kw[k] = "password", val[k++] = c->password;
	kw[k] = "sslmode", val[k++] = ssl;
	kw[k] = "connect_timeout", val[k++] = scto;
	kw[k] = "application_name", val[k++] = "shir-authoring";
	/* never shird's own ~/.pgpass nor its ~/.postgresql client
	 * certificate: a request must not borrow the node user's stored
	 * password or identity. /nonexistent never exists (Debian policy), and
	 * libpq goes on without a file that is not there */
	kw[k] = "passfile", val[k++] = PG_NO_FILE;
	kw[k] = "sslcert", val[k++] = PG_NO_FILE;
	kw[k] = "sslkey", val[k++] = PG_NO_FILE;
	kw[k] = "gssencmode", val[k++] = "disable";
	kw[k] = "options", val[k++] = "-c default_transaction_read_only=on -c TimeZone=UTC "
	    "-c DateStyle=ISO -c IntervalStyle=iso_8601";
	kw[k] = NULL, val[k] = NULL;
	conn = PQconnectStartParams(kw, val, 0);
	if (conn == NULL)
		return auth_fail(c, AUTH_E_INTERNAL, "out of memory");
	if (PQstatus(conn) == CONNECTION_BAD) {
		pg_fail_msg(c, NULL, PQerrorMessage(conn), "connecting");
		PQfinish(conn);
		return -1;
	}
	while (st != PGRES_POLLING_OK) {
		if (st == PGRES_POLLING_FAILED) {
			pg_fail_msg(c, NULL, PQerrorMessage(conn), "connecting");
			PQfinish(conn);
			return -1;
		}
		if (pg_wait_sock(c, conn, st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
			(long)cto * 1000) != 0) {
			if (auth_should_stop(c))
				auth_fail_timeout(c, "connecting to PostgreSQL");
			else
				auth_fail(c, AUTH_E_UNREACHABLE, "connecting to PostgreSQL at %s:%d timed out "
				    "after %d s (connectTimeoutSeconds)", host, port, cto);
			PQfinish(conn);
			return -1;
		}
		st = PQconnectPoll(conn);
	}
	*out = conn;
	return 0;
}

/* Bytes received on the connection so far: the kernel's count for TCP
 * (tcpi_bytes_received: at least what libpq has read), else the sum of
 * what was waiting before each read (a Unix socket). */
static unsigned long long
pg_rx(PGconn *conn, unsigned long long *acc, bool before_read)
{
	struct tcp_info ti;
	socklen_t l = sizeof ti;
	int avail = 0;

	memset(&ti, 0, sizeof ti);
	if (getsockopt(PQsocket(conn), IPPROTO_TCP, TCP_INFO, &ti, &l) == 0 &&
	    l >= offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received)
		return ti.tcpi_bytes_received;
	if (before_read && ioctl(PQsocket(conn), FIONREAD, &avail) == 0 && avail > 0)
		*acc += (unsigned)avail;
	return *acc;
}

/* Waits for the next result of a sent query; NULL when the query is
 * finished. On the deadline, cancels it and fails. *failed tells.
 *
 * libpq buffers a whole result (in single-row mode, a whole row) before it
 * hands it over, however large the server makes it. So the bytes received
 * while one result is read are counted, and past the request's memory
 * budget the query is cancelled and the request fails 413 (PQfinish then
 * frees what libpq had buffered). */
static PGresult *
pg_next(struct auth_ctx *c, PGconn *conn, bool *failed)
{
	unsigned long long acc = 0, mark = 0;
	bool marked = false;

	*failed = false;
	while (PQisBusy(conn)) {
		/* counted from the first read this result needs: a row libpq
		 * already holds costs no system call (a copy takes most rows so) */
		if (!marked) {
			mark = pg_rx(conn, &acc, false);
			marked = true;
		}
		if (pg_wait_sock(c, conn, POLLIN, -1) != 0) {
			pg_cancel(conn);
			auth_fail_timeout(c, "the PostgreSQL query");
			*failed = true;
			return NULL;
		}
		pg_rx(conn, &acc, true);
		if (!PQconsumeInput(conn)) {
			pg_fail_msg(c, NULL, PQerrorMessage(conn), "reading from PostgreSQL");
			*failed = true;
			return NULL;
		}
		if (c->policy.mem_limit > 0 && pg_rx(conn, &acc, false) - mark > c->policy.mem_limit) {
			pg_cancel(conn);
			auth_fail_budget(c, "one row of the PostgreSQL answer");
			*failed = true;
			return NULL;
		}
	}
	return PQgetResult(conn);
}

/* Drains the remaining results of a query. */
static void
pg_drain(struct auth_ctx *c, PGconn *conn)
{
	PGresult *r;
	bool f;

	while ((r = pg_next(c, conn, &f)) != NULL)
		PQclear(r);
}

/* Runs a command expecting one result of the given status. */
static PGresult *
pg_exec(struct auth_ctx *c, PGconn *conn, const char *sql, int n, const char *const *params,
    ExecStatusType want, const char *what)
{
	PGresult *res, *extra;
	bool f;

	if (!PQsendQueryParams(conn, sql, n, NULL, params, NULL, NULL, 0)) {
		pg_fail_msg(c, NULL, PQerrorMessage(conn), what);
		return NULL;
	}
	res = pg_next(c, conn, &f);
	if (f)
		return NULL;
	if (res == NULL || PQresultStatus(res) != want) {
		pg_fail_res(c, conn, res, what);
		PQclear(res);
		pg_drain(c, conn);
		return NULL;
	}
	while ((extra = pg_next(c, conn, &f)) != NULL)
		PQclear(extra);
	return res;
}

static int
pg_begin(struct auth_ctx *c, PGconn **conn)
{
	PGresult *r;

	if (pg_connect(c, conn) != 0)
		return -1;
	r = pg_exec(c, *conn, "BEGIN READ ONLY", 0, NULL, PGRES_COMMAND_OK, "starting a read-only "
	    "transaction");
	if (r == NULL)
		return -1;
	PQclear(r);
	return 0;
}

static int
pg_test(struct auth_ctx *c)
{
	PGconn *conn = NULL;
	const char *v;
	char ver[64];

	if (pg_connect(c, &conn) != 0)
		return -1;
	v = PQparameterStatus(conn, "server_version");
	snprintf(ver, sizeof ver, "%s", v ? v : "");
	ver[strcspn(ver, " ")] = '\0';
	auth_result_store(c, "PostgreSQL", ver);
	PQfinish(conn);
	return 0;
}

static int
pg_browse(struct auth_ctx *c, cJSON *items, bool *truncated)
{
	PGconn *conn = NULL;
	PGresult *r = NULL;
	const char *p[1] = { c->path };
	int i, rc = -1;

	if (pg_begin(c, &conn) != 0)
		goto out;
	if (!c->path[0]) {
		r = pg_exec(c, conn, "SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_' AND "
		    "nspname <> 'information_schema' ORDER BY 1", 0, NULL, PGRES_TUPLES_OK,
		    "listing the schemas");
		if (r == NULL)
			goto out;
		for (i = 0; i < PQntuples(r); i++)
			auth_item(items, PQgetvalue(r, i, 0), "schema");
		rc = 0;
		goto out;
	}
	r = pg_exec(c, conn, "SELECT 1 FROM pg_namespace WHERE nspname = $1", 1, p, PGRES_TUPLES_OK,
	    "looking up the schema");
	if (r == NULL)
		goto out;
	if (PQntuples(r) == 0) {
		auth_fail(c, AUTH_E_NOTFOUND, "schema \"%s\" does not exist", c->path);
		goto out;
	}
	PQclear(r);
	r = pg_exec(c, conn, "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON "
	    "n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind IN ('r','p','f','v','m') "
	    "ORDER BY 1 LIMIT 100001", 1, p, PGRES_TUPLES_OK, "listing the tables");
	if (r == NULL)
		goto out;
	for (i = 0; i < PQntuples(r); i++) {
		char k = PQgetvalue(r, i, 1)[0];
		cJSON *it = auth_item(items, PQgetvalue(r, i, 0),
		    k == 'v' || k == 'm' ? "view" : "table");

		if (it)
			cJSON_AddStringToObject(it, "schema", c->path);
	}
	if (PQntuples(r) > 100000)
		*truncated = true;
	rc = 0;
out:
	PQclear(r);
	PQfinish(conn);
	return rc;
}

/* schema.table quoted for SQL, from the dataset. */
static char *
pg_relation(struct auth_ctx *c, PGconn *conn)
{
	const char *schema = auth_ds_str(c, "schema", false, ""), *table;
	char *qs = NULL, *qt = NULL, *out = NULL;
	size_t l;

	if (schema == NULL || (table = auth_ds_str(c, "table", true, NULL)) == NULL)
		return NULL;
	qt = PQescapeIdentifier(conn, table, strlen(table));
	if (*schema)
		qs = PQescapeIdentifier(conn, schema, strlen(schema));
	if (qt == NULL || (*schema && qs == NULL)) {
		auth_fail(c, AUTH_E_INVALID, "dataset.table or dataset.schema is not a valid name");
		goto out;
	}
	l = strlen(qt) + (qs ? strlen(qs) : 0) + 2;
	out = malloc(l);
	if (out != NULL)
		snprintf(out, l, "%s%s%s", qs ? qs : "", qs ? "." : "", qt);
out:
	PQfreemem(qs);
	PQfreemem(qt);
	return out;
}

static int
pg_schema(struct auth_ctx *c)
{
	PGconn *conn = NULL;
	PGresult *r = NULL;
	char *rel = NULL;
	int i, rc = -1;

	if (pg_begin(c, &conn) != 0)
		goto out;
	if (strcmp(c->dataset_type, "Table") == 0) {
		const char *p[1];

		if ((rel = pg_relation(c, conn)) == NULL)
			goto out;
		p[0] = rel;
		r = pg_exec(c, conn, "SELECT a.attname, a.atttypid, NOT a.attnotnull FROM pg_attribute a "
		    "WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped "
		    "ORDER BY a.attnum", 1, p, PGRES_TUPLES_OK, "reading the table's columns");
		if (r == NULL)
			goto out;
		if (PQntuples(r) == 0) {
			auth_fail(c, AUTH_E_NOTFOUND, "relation %s does not exist", rel);
			goto out;
		}
		for (i = 0; i < PQntuples(r); i++)
			auth_rows_add_column(c->rows, PQgetvalue(r, i, 0),
			    pg_type((Oid)strtoul(PQgetvalue(r, i, 1), NULL, 10)),
			    PQgetvalue(r, i, 2)[0] == 't');
	} else {
		const char *q = auth_ds_str(c, "query", true, NULL);
		bool f;

		if (q == NULL)
			goto out;
		/* describe without running: the server parses and plans */
		r = NULL;
		if (!PQsendPrepare(conn, "", q, 0, NULL)) {
			pg_fail_msg(c, NULL, PQerrorMessage(conn), "the query");
			goto out;
		}
		r = pg_next(c, conn, &f);
		if (f)
			goto out;
		if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
			pg_fail_res(c, conn, r, "the query");
			goto out;
		}
		PQclear(r);
		pg_drain(c, conn);
		if (!PQsendDescribePrepared(conn, "")) {
			r = NULL;
			pg_fail_msg(c, NULL, PQerrorMessage(conn), "describing the query");
			goto out;
		}
		r = pg_next(c, conn, &f);
		if (f)
			goto out;
		if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
			pg_fail_res(c, conn, r, "describing the query");
			goto out;
		}
		for (i = 0; i < PQnfields(r); i++)
			auth_rows_add_column(c->rows, PQfname(r, i), pg_type(PQftype(r, i)), -1);
		pg_drain(c, conn);
	}
	rc = 0;
out:
	PQclear(r);
	PQfinish(conn);
	free(rel);
	return rc;
}

/* Writes one cell in the interim encoding. */
static void
pg_cell(struct auth_rows *rows, PGresult *r, int row, int col)
{
	Oid t = PQftype(r, col);
	const char *v = PQgetvalue(r, row, col);
	size_t len = (size_t)PQgetlength(r, row, col);
	char buf[96];

	if (PQgetisnull(r, row, col)) {
		auth_rows_null(rows);
		return;
	}
	if (t == PG_BYTEA) {
		size_t n = 0;
		unsigned char *b = PQunescapeBytea((const unsigned char *)v, &n);

		if (b == NULL)
			auth_rows_null(rows);
		else
			auth_rows_bytes(rows, b, n);
		PQfreemem(b);
		return;
	}
	if ((t == PG_TIMESTAMP || t == PG_TIMESTAMPTZ) && len >= 19 && len < sizeof buf - 8 &&
	    v[10] == ' ') {
		/* "2026-11-01 10:00:00+00" -> "2026-11-01T10:00:00Z" */
		memcpy(buf, v, len + 1);
		buf[10] = 'T';
		if (t == PG_TIMESTAMPTZ) {
			char *off = buf + 19;

			while (*off == '.' || (*off >= '0' && *off <= '9'))
				off++;
			if (strcmp(off, "+00") == 0)
				strcpy(off, "Z");
			else if ((off[0] == '+' || off[0] == '-') && strlen(off) == 3)
				strcat(off, ":00");
		}
		auth_rows_text(rows, buf, strlen(buf));
		return;
	}
	auth_rows_text(rows, v, len);
}

/* What pg_rows hands each row to: the columns once (before the first row),
 * then each row (PQgetvalue(r, 0, i)). row answers 0 for more, 1 to stop
 * with what it has (a preview that has its rows), -1 to fail (after
 * auth_fail, or with c->code still AUTH_OK for a stop: the caller says why). */
struct pg_row_sink {
	int (*columns)(void *arg, PGresult *r);
	int (*row)(void *arg, PGresult *r);
	void *arg;
	const char *needs;		/* "preview needs", "a copy needs" */
};

/* The one row iterator of previews and copies: the dataset's Table (SELECT *
 * FROM schema.table, with LIMIT limit + 1 when limit >= 0) or Query (run as
 * given: one statement, the extended protocol refuses several) in the
 * read-only transaction, rows one at a time (single-row mode: libpq holds
 * one row; the socket is read only as rows are taken, so a slow sink makes
 * the server wait). Returns 0 (every row, or the sink stopped with 1), -1. */
static int
pg_rows(struct auth_ctx *c, long limit, const struct pg_row_sink *s)
{
	PGconn *conn = NULL;
	PGresult *r = NULL;
	char *rel = NULL, *sql = NULL;
	const char *q;
	bool f, cols = false;
	int rc = -1, st2;

	if (pg_begin(c, &conn) != 0)
		goto out;
	if (strcmp(c->dataset_type, "Table") == 0) {
		size_t l;

		if ((rel = pg_relation(c, conn)) == NULL)
			goto out;
		l = strlen(rel) + 64;
		if ((sql = malloc(l)) == NULL) {
			auth_fail(c, AUTH_E_INTERNAL, "out of memory");
			goto out;
		}
		if (limit >= 0)
			snprintf(sql, l, "SELECT * FROM %s LIMIT %ld", rel, limit + 1);
		else
			snprintf(sql, l, "SELECT * FROM %s", rel);
		q = sql;
	} else if ((q = auth_ds_str(c, "query", true, NULL)) == NULL) {
		goto out;
	}
	if (!PQsendQueryParams(conn, q, 0, NULL, NULL, NULL, NULL, 0)) {
		pg_fail_msg(c, NULL, PQerrorMessage(conn), "the query");
		goto out;
	}
	PQsetSingleRowMode(conn);
	while ((r = pg_next(c, conn, &f)) != NULL) {
		ExecStatusType st = PQresultStatus(r);

		if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK) {
			if (st == PGRES_COMMAND_OK)
				auth_fail(c, AUTH_E_INVALID, "dataset.query returns no rows: %s a query "
				    "that reads rows", s->needs);
			else
				pg_fail_res(c, conn, r, "the query");
			PQclear(r);
			r = NULL;
			pg_drain(c, conn);
			goto out;
		}
		if (!cols) {
			if (s->columns(s->arg, r) != 0)
				goto stop;
			cols = true;
		}
		if (PQntuples(r) > 0) {
			st2 = s->row(s->arg, r);
			if (st2 == 1) {
				rc = 0;
				goto stop;
			}
			if (st2 != 0)
				goto stop;
			if (auth_should_stop(c)) {
				auth_fail_timeout(c, "the PostgreSQL query");
				goto stop;
			}
		}
		PQclear(r);
		r = NULL;
	}
	if (f)
		goto out;
	rc = 0;
	goto out;
stop:
	/* the query may still be sending: cancel it and drop the rest */
	PQclear(r);
	r = NULL;
	pg_cancel(conn);
	pg_drain(c, conn);
out:
	PQclear(r);
	PQfinish(conn);
	free(rel);
	free(sql);
	return rc;
}

static int
pv_columns(void *arg, PGresult *r)
{
	struct auth_ctx *c = arg;
	int i;

	for (i = 0; i < PQnfields(r); i++)
		auth_rows_add_column(c->rows, PQfname(r, i), pg_type(PQftype(r, i)), -1);
	return 0;
}

static int
pv_row(void *arg, PGresult *r)
{
	struct auth_ctx *c = arg;
	int i;

	if (!auth_rows_want(c->rows)) {
		/* one row more than asked: say so and stop the query */
		auth_rows_set_truncated(c->rows);
		return 1;
	}
	auth_rows_begin(c->rows);
	for (i = 0; i < PQnfields(r); i++)
		pg_cell(c->rows, r, 0, i);
	auth_rows_end(c->rows);
	return 0;
}

static int
pg_preview(struct auth_ctx *c)
{
	const struct pg_row_sink s = { pv_columns, pv_row, c, "preview needs" };

	return pg_rows(c, c->limit, &s);
}

/* A cell as a copy wants it: timestamps as in a preview, bytea raw. buf
 * holds a converted timestamp; *freeme what PQunescapeBytea allocated. */
static const char *
pg_stream_cell(PGresult *r, int col, Oid t, char *buf, size_t buflen, size_t *len,
    unsigned char **freeme)
{
	const char *v;

	if (PQgetisnull(r, 0, col))
		return NULL;
	v = PQgetvalue(r, 0, col);
	*len = (size_t)PQgetlength(r, 0, col);
	if (t == PG_BYTEA) {
		size_t n = 0;

		*freeme = PQunescapeBytea((const unsigned char *)v, &n);
		*len = n;
		return *freeme ? (const char *)*freeme : "";
	}
	if ((t == PG_TIMESTAMP || t == PG_TIMESTAMPTZ) && *len >= 19 && *len < buflen - 8 &&
	    v[10] == ' ') {
		char *off;

		memcpy(buf, v, *len + 1);
		buf[10] = 'T';
		off = buf + 19;
		if (t == PG_TIMESTAMPTZ) {
			while (*off == '.' || (*off >= '0' && *off <= '9'))
				off++;
			if (strcmp(off, "+00") == 0)
				strcpy(off, "Z");
			else if ((off[0] == '+' || off[0] == '-') && strlen(off) == 3)
				strcat(off, ":00");
		}
		*len = strlen(buf);
		return buf;
	}
	return v;
}

/* A copy's state: the columns' arrays, allocated once. */
struct pg_copy {
	struct auth_ctx *c;
	const struct auth_stream *s;
	int nf;
	Oid *oids;
	const char **vals;
	size_t *lens;
	unsigned char **frees;
	char (*bufs)[96];
};

static int
st_columns(void *arg, PGresult *r)
{
	struct pg_copy *p = arg;
	const char **names, **types;
	int *nullable, i, rc;

	p->nf = PQnfields(r);
	names = calloc((size_t)p->nf + 1, sizeof *names);
	types = calloc((size_t)p->nf + 1, sizeof *types);
	nullable = calloc((size_t)p->nf + 1, sizeof *nullable);
	p->oids = calloc((size_t)p->nf + 1, sizeof *p->oids);
	p->vals = calloc((size_t)p->nf + 1, sizeof *p->vals);
	p->lens = calloc((size_t)p->nf + 1, sizeof *p->lens);
	p->frees = calloc((size_t)p->nf + 1, sizeof *p->frees);
	p->bufs = calloc((size_t)p->nf + 1, sizeof *p->bufs);
	if (!names || !types || !nullable || !p->oids || !p->vals || !p->lens || !p->frees || !p->bufs) {
		rc = auth_fail(p->c, AUTH_E_INTERNAL, "out of memory");
		goto out;
	}
	for (i = 0; i < p->nf; i++) {
		names[i] = PQfname(r, i);
		p->oids[i] = PQftype(r, i);
		types[i] = pg_type(p->oids[i]);
		nullable[i] = -1;
	}
	rc = p->s->columns(p->s->arg, (size_t)p->nf, names, types, nullable) != 0 ? -1 : 0;
out:
	free(names);
	free(types);
	free(nullable);
	return rc;
}

static int
st_row(void *arg, PGresult *r)
{
	struct pg_copy *p = arg;
	int i, rc;

	for (i = 0; i < p->nf; i++)
		p->vals[i] = pg_stream_cell(r, i, p->oids[i], p->bufs[i], sizeof p->bufs[i], &p->lens[i],
		    &p->frees[i]);
	rc = p->s->row(p->s->arg, (size_t)p->nf, p->vals, p->lens);
	for (i = 0; i < p->nf; i++)
		if (p->frees[i] != NULL) {
			PQfreemem(p->frees[i]);
			p->frees[i] = NULL;
		}
	return rc != 0 ? -1 : 0;
}

/* The whole Table or Query: the iterator of previews with no row limit (and
 * no byte or value caps: the request memory limit bounds one row). */
static int
pg_stream(struct auth_ctx *c, const struct auth_stream *s)
{
	struct pg_copy p = { .c = c, .s = s };
	const struct pg_row_sink rs = { st_columns, st_row, &p, "a copy needs" };
	int rc = pg_rows(c, -1, &rs);

	if (rc != 0 && c->code == AUTH_OK)
		auth_fail(c, AUTH_E_SHUTDOWN, "the copy was stopped");
	free(p.oids);
	free(p.vals);
	free(p.lens);
	free(p.frees);
	free(p.bufs);
	return rc;
}

static const char *const pg_datasets[] = { "Table", "Query", NULL };

const struct auth_store conn_pg_store = {
	.type = "PostgreSql",
	.datasets = pg_datasets,
	.test = pg_test,
	.browse = pg_browse,
	.schema = pg_schema,
	.preview = pg_preview,
	.stream = pg_stream,
};
