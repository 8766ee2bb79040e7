/* MySql connector (libmariadb; MySQL and MariaDB). Each session is made
 * read-only (SET SESSION TRANSACTION READ ONLY, which also stops DDL and its
 * implicit commit) and each operation runs in START TRANSACTION READ ONLY,
 * so a writing Query fails in the server
 * (ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION) and comes back as 403
 * ReadOnlyViolation. Reads have a socket timeout at the deadline; a query
 * still running then is stopped with KILL QUERY from a second connection.
 *
 * Nothing the request or the server says may reach the node's files: LOAD
 * DATA LOCAL is off in the client (MYSQL_OPT_LOCAL_INFILE 0, so the
 * handshake does not offer CLIENT_LOCAL_FILES and a server's file request is
 * answered with an empty file), a Query must pass auth_guard_sql (one
 * reading statement that names no file) before it is sent, and only the
 * authentication plugins that never hand the password over in a form the
 * server can read are allowed (MARIADB_OPT_RESTRICTED_AUTH). */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <errmsg.h>

#include "node/authoring/auth_ctx.h"
#include "node/authoring/auth_guard.h"
#include "node/authoring/auth_rows.h"

#ifndef ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
#define ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION 1792
#endif

struct my_conn {
	MYSQL *m;
	const char *host, *user, *db;
	char addr[64];		/* the address the local machine check resolved */
	int port, cto;
	bool ssl;
	/* my_wait: the statement running, and whether it was killed */
	unsigned long id;
	bool killed;
	struct timespec killed_at;
};

static const char *
my_type(enum enum_field_types t, unsigned flags, unsigned long len, unsigned charsetnr)
{
	switch (t) {
	case MYSQL_TYPE_TINY: return len == 1 ? "Boolean" : "Int16";
	case MYSQL_TYPE_SHORT: return (flags & UNSIGNED_FLAG) ? "Int32" : "Int16";
	case MYSQL_TYPE_INT24: return "Int32";
	case MYSQL_TYPE_LONG: return (flags & UNSIGNED_FLAG) ? "Int64" : "Int32";
	case MYSQL_TYPE_LONGLONG: return (flags & UNSIGNED_FLAG) ? "Decimal" : "Int64";
	case MYSQL_TYPE_YEAR: return "Int16";
	case MYSQL_TYPE_FLOAT: return "Single";
	case MYSQL_TYPE_DOUBLE: return "Double";
	case MYSQL_TYPE_DECIMAL: case MYSQL_TYPE_NEWDECIMAL: return "Decimal";
	case MYSQL_TYPE_DATE: case MYSQL_TYPE_DATETIME: case MYSQL_TYPE_TIMESTAMP:
	case MYSQL_TYPE_NEWDATE: return "DateTime";
	case MYSQL_TYPE_TIME: return "TimeSpan";
	case MYSQL_TYPE_BIT: return len == 1 ? "Boolean" : "ByteArray";
	case MYSQL_TYPE_TINY_BLOB: case MYSQL_TYPE_MEDIUM_BLOB: case MYSQL_TYPE_LONG_BLOB:
	case MYSQL_TYPE_BLOB: case MYSQL_TYPE_VAR_STRING: case MYSQL_TYPE_STRING:
	case MYSQL_TYPE_VARCHAR:
		return charsetnr == 63 ? "ByteArray" : "String";	/* 63: binary */
	default: return "String";
	}
}

static int
my_fail(struct auth_ctx *c, MYSQL *m, const char *what)
{
	unsigned e = mysql_errno(m);
	const char *msg = mysql_error(m);

	switch (e) {
	case ER_ACCESS_DENIED_ERROR: case ER_DBACCESS_DENIED_ERROR: case 1698:	/* no password */
		return auth_fail(c, AUTH_E_AUTH, "%s", msg);
	case ER_NO_SUCH_TABLE: case ER_BAD_DB_ERROR: case ER_BAD_TABLE_ERROR:
		return auth_fail(c, AUTH_E_NOTFOUND, "%s", msg);
	case ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION:
		return auth_fail(c, AUTH_E_READONLY, "the query would write, and authoring runs in "
		    "read-only transactions: %s", msg);
	case CR_CONN_HOST_ERROR: case CR_CONNECTION_ERROR: case CR_UNKNOWN_HOST:
	case CR_SERVER_GONE_ERROR:
		return auth_fail(c, AUTH_E_UNREACHABLE, "%s", msg);
	case CR_NET_PACKET_TOO_LARGE: case ER_NET_PACKET_TOO_LARGE:
		return auth_fail_budget(c, "one row of the MySQL answer");
	case CR_SERVER_LOST:
		if (auth_should_stop(c))
			return auth_fail_timeout(c, what);
		/* libmariadb reports a packet over MYSQL_OPT_MAX_ALLOWED_PACKET
		 * as a lost connection; its net layer says why (error 1: the
		 * packet did not fit, 2: the socket failed) */
		if (c->policy.mem_limit > 0 && m->net.error == 1)
			return auth_fail_budget(c, "one row of the MySQL answer");
		return auth_fail(c, AUTH_E_UNREACHABLE, "%s", msg);
	case ER_QUERY_INTERRUPTED:
		if (auth_should_stop(c))
			return auth_fail_timeout(c, what);
		/* FALLTHROUGH */
	default:
		if (e >= 2000 && e < 3000 && strstr(msg, "timeout"))
			return auth_fail(c, AUTH_E_UNREACHABLE, "%s", msg);
		return auth_fail(c, AUTH_E_STORE, "%s: %s", what, msg);
	}
}

static MYSQL *
my_open(struct auth_ctx *c, struct my_conn *mc, bool with_db)
{
	MYSQL *m = mysql_init(NULL);
	unsigned to;
	my_bool on = 1;
	unsigned int off = 0;

	if (m == NULL) {
		auth_fail(c, AUTH_E_INTERNAL, "out of memory");
		return NULL;
	}
	/* the statements run with the non-blocking calls (my_wait) */
	mysql_options(m, MYSQL_OPT_NONBLOCK, 0);
	to = (unsigned)auth_secs_for(c, mc->cto);
	mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &to);
	to = (unsigned)auth_secs_for(c, 0);
	mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &to);
	mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &to);
	mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	/* one packet (a row of mysql_use_result) may not pass the request's
	 * memory budget: libmariadb would otherwise take up to 1 GiB from
	 * whatever server the linked service names */
	if (c->policy.mem_limit > 0) {
		unsigned long maxp = c->policy.mem_limit;

		mysql_optionsv(m, MYSQL_OPT_MAX_ALLOWED_PACKET, &maxp);
	}
	/* no LOAD DATA LOCAL: the server must never name a file the client
	 * sends (the handshake no longer offers CLIENT_LOCAL_FILES) */
	mysql_options(m, MYSQL_OPT_LOCAL_INFILE, &off);
	/* the server picks the authentication plugin: only those that send a
	 * scramble, never the password itself (mysql_clear_password, dialog);
	 * caching_sha2_password and sha256_password send it RSA-encrypted with
	 * a key the server gives, so only inside TLS */
	mysql_options(m, MARIADB_OPT_RESTRICTED_AUTH, mc->ssl ?
	    "mysql_native_password,client_ed25519,caching_sha2_password,sha256_password" :
	    "mysql_native_password,client_ed25519");
	if (mc->ssl) {
		mysql_options(m, MYSQL_OPT_SSL_ENFORCE, &on);
		mysql_options(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &on);
	}
	/* without TLS there is no name to verify: connect to exactly the
	 * address that was checked (no second DNS answer) */
	if (!mysql_real_connect(m, !mc->ssl && mc->addr[0] ? mc->addr : mc->host, mc->user,
		c->password ? c->password : "",
		with_db ? mc->db : NULL, (unsigned)mc->port, NULL, 0)) {
		my_fail(c, m, "connecting");
		mysql_close(m);
		return NULL;
	}
	return m;
}

/* Stops the statement of thread id in the server, from a second connection,
 * as the mysql client does on Ctrl-C (at most 5 s). */
static void
my_kill(struct auth_ctx *c, struct my_conn *mc, unsigned long id)
{
	struct auth_ctx tmp;
	MYSQL *k;
	char kill[64];

	memset(&tmp, 0, sizeof tmp);
	tmp.props = c->props;
	tmp.password = c->password;
	clock_gettime(CLOCK_MONOTONIC, &tmp.deadline);
	tmp.deadline.tv_sec += 5;
	k = my_open(&tmp, mc, false);
	if (k != NULL) {
		snprintf(kill, sizeof kill, "KILL QUERY %lu", id);
		mysql_real_query(k, kill, strlen(kill));
		mysql_close(k);
	}
}

/* Waits for what a non-blocking call asked for (status: MYSQL_WAIT_*), looking
 * every 100 ms whether the request must stop (the sender went away, the
 * deadline): then the statement is killed in the server, which answers it
 * with an error at once; a server that stays silent 5 s after the kill has
 * its socket shut down, so the call fails instead of waiting for the read
 * timeout. Returns the ready status for the _cont call. */
static int
my_wait(struct auth_ctx *c, struct my_conn *mc, int status)
{
	struct pollfd p = { .fd = mysql_get_socket(mc->m) };
	struct timespec now;
	int r;

	if (status & MYSQL_WAIT_READ)
		p.events |= POLLIN;
	if (status & MYSQL_WAIT_WRITE)
		p.events |= POLLOUT;
	if (status & MYSQL_WAIT_EXCEPT)
		p.events |= POLLPRI;
	for (;;) {
		if (!mc->killed && auth_should_stop(c)) {
			mc->killed = true;
			clock_gettime(CLOCK_MONOTONIC, &mc->killed_at);
			my_kill(c, mc, mc->id);
		} else if (mc->killed) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec - mc->killed_at.tv_sec > 5)
				shutdown(p.fd, SHUT_RDWR);
		}
		r = poll(&p, 1, 100);
		if (r > 0) {
			r = 0;
			if (p.revents & (POLLIN | POLLHUP | POLLERR))
				r |= MYSQL_WAIT_READ;
			if (p.revents & (POLLOUT | POLLHUP | POLLERR))
				r |= MYSQL_WAIT_WRITE;
			if (p.revents & POLLPRI)
				r |= MYSQL_WAIT_EXCEPT;
			return r & status;
		}
		if (r < 0 && errno != EINTR)
			return status & (MYSQL_WAIT_READ | MYSQL_WAIT_WRITE);
	}
}

/* mysql_real_query, cancellable within 100 ms (my_wait). */
static int
my_real_query(struct auth_ctx *c, struct my_conn *mc, const char *sql)
{
	int err = 0, st;

	mc->id = mysql_thread_id(mc->m);
	st = mysql_real_query_start(&err, mc->m, sql, strlen(sql));
	while (st != 0)
		st = mysql_real_query_cont(&err, mc->m, my_wait(c, mc, st));
	return err;
}

/* mysql_fetch_row of a mysql_use_result, cancellable the same way: a row the
 * server is still computing (SELECT SLEEP(60)) is waited for here. */
static MYSQL_ROW
my_fetch(struct auth_ctx *c, struct my_conn *mc, MYSQL_RES *res)
{
	MYSQL_ROW row = NULL;
	int st = mysql_fetch_row_start(&row, res);

	while (st != 0)
		st = mysql_fetch_row_cont(&row, res, my_wait(c, mc, st));
	return row;
}

static int
my_query(struct auth_ctx *c, struct my_conn *mc, const char *sql, const char *what)
{
	if (my_real_query(c, mc, sql) == 0)
		return 0;
	if (auth_should_stop(c) && !mc->killed && (mysql_errno(mc->m) == CR_SERVER_LOST ||
		mysql_errno(mc->m) == CR_SERVER_GONE_ERROR)) {
		/* the read timed out at the deadline: stop the query in the server */
		my_kill(c, mc, mc->id);
		return auth_fail_timeout(c, what);
	}
	if (auth_should_stop(c) && mc->killed)
		return auth_fail_timeout(c, what);
	return my_fail(c, mc->m, what);
}

static int
my_connect(struct auth_ctx *c, struct my_conn *mc, bool begin)
{
	memset(mc, 0, sizeof *mc);
	if ((mc->host = auth_prop_str(c, "host", true, NULL)) == NULL ||
	    auth_prop_int(c, "port", 3306, 1, 65535, &mc->port) != 0 ||
	    auth_prop_int(c, "connectTimeoutSeconds", 15, 1, 300, &mc->cto) != 0 ||
	    auth_prop_bool(c, "ssl", false, &mc->ssl) != 0)
		return -1;
	mc->user = auth_prop_str(c, "username", false, NULL);
	mc->db = auth_prop_str(c, "database", false, NULL);
	if (c->code != AUTH_OK || auth_check_host_addr(c, mc->host, mc->addr, sizeof mc->addr) != 0)
		return -1;
	mc->m = my_open(c, mc, true);
	if (mc->m == NULL)
		return -1;
	/* the session first: DDL commits a transaction implicitly and would run
	 * outside START TRANSACTION READ ONLY, but not in a read-only session */
	if (my_query(c, mc, "SET SESSION TRANSACTION READ ONLY", "making the session read-only") != 0)
		return -1;
	if (begin && my_query(c, mc, "START TRANSACTION READ ONLY", "starting a read-only "
	    "transaction") != 0)
		return -1;
	return 0;
}

static int
my_test(struct auth_ctx *c)
{
	struct my_conn mc;
	const char *v;
	char ver[64];

	if (my_connect(c, &mc, false) != 0) {
		mysql_close(mc.m);
		return -1;
	}
	v = mysql_get_server_info(mc.m);
	snprintf(ver, sizeof ver, "%s", v ? v : "");
	ver[strcspn(ver, "-")] = '\0';
	auth_result_store(c, v && strstr(v, "MariaDB") ? "MariaDB" : "MySQL", ver);
	mysql_close(mc.m);
	return 0;
}

/* 'text' quoted as a string literal. */
static char *
my_literal(MYSQL *m, const char *s)
{
	size_t l = strlen(s);
	char *q = malloc(2 * l + 3);

	if (q == NULL)
		return NULL;
	q[0] = '\'';
	l = mysql_real_escape_string(m, q + 1, s, (unsigned long)l);
	q[l + 1] = '\'';
	q[l + 2] = '\0';
	return q;
}

/* `name` quoted as an identifier. */
static char *
my_ident(const char *s)
{
	size_t l = strlen(s), i, o = 0;
	char *q = malloc(2 * l + 3);

	if (q == NULL)
		return NULL;
	q[o++] = '`';
	for (i = 0; i < l; i++) {
		if (s[i] == '`')
			q[o++] = '`';
		q[o++] = s[i];
	}
	q[o++] = '`';
	q[o] = '\0';
	return q;
}

#define MY_BROWSE_ROWS_MAX 100000

/* The next row of a catalog listing read with mysql_use_result (a row at a
 * time: the server names how many rows there are, a hostile one without
 * end). NULL at the end, after MY_BROWSE_ROWS_MAX rows (*truncated set), or
 * past the request's memory budget (failed). */
static MYSQL_ROW
my_browse_row(struct auth_ctx *c, MYSQL *m, MYSQL_RES *res, int *n, size_t *bytes,
    bool *truncated)
{
	MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
	unsigned long *lens;
	unsigned i;

	if (row == NULL) {
		if (mysql_errno(m))
			my_fail(c, m, "listing");
		return NULL;
	}
	if (++*n > MY_BROWSE_ROWS_MAX) {
		*truncated = true;
		return NULL;
	}
	lens = mysql_fetch_lengths(res);
	for (i = 0; lens && i < mysql_num_fields(res); i++)
		*bytes += lens[i] + 64;	/* and what a browse item costs */
	if (c->policy.mem_limit > 0 && *bytes > c->policy.mem_limit) {
		auth_fail_budget(c, "the MySQL listing");
		return NULL;
	}
	return row;
}

static int
my_browse(struct auth_ctx *c, cJSON *items, bool *truncated)
{
	struct my_conn mc;
	MYSQL_RES *res = NULL;
	MYSQL_ROW row;
	char *lit = NULL, sql[1024];
	const char *schema;
	size_t bytes = 0;
	int rc = -1, n = 0;

	if (my_connect(c, &mc, true) != 0)
		goto out;
	schema = c->path[0] ? c->path : mc.db;
	if (schema == NULL || !*schema) {
		if (my_query(c, &mc, "SELECT schema_name FROM information_schema.schemata WHERE "
		    "schema_name NOT IN ('information_schema','mysql','performance_schema','sys') "
		    "ORDER BY 1", "listing the databases") != 0)
			goto out;
		res = mysql_use_result(mc.m);
		while ((row = my_browse_row(c, mc.m, res, &n, &bytes, truncated)) != NULL)
			auth_item(items, row[0], "schema");
		rc = c->code == AUTH_OK ? 0 : -1;
		goto out;
	}
	lit = my_literal(mc.m, schema);
	if (lit == NULL)
		goto out;
	snprintf(sql, sizeof sql, "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
	    lit);
	if (my_query(c, &mc, sql, "looking up the database") != 0)
		goto out;
	res = mysql_use_result(mc.m);
	if (res == NULL || mysql_fetch_row(res) == NULL) {
		if (mysql_errno(mc.m)) {
			my_fail(c, mc.m, "looking up the database");
			goto out;
		}
		auth_fail(c, AUTH_E_NOTFOUND, "database (schema) \"%s\" does not exist or is not "
		    "visible to this user", schema);
		goto out;
	}
	mysql_free_result(res);
	snprintf(sql, sizeof sql, "SELECT table_name, table_type FROM information_schema.tables "
	    "WHERE table_schema = %s ORDER BY 1 LIMIT 100001", lit);
	if (my_query(c, &mc, sql, "listing the tables") != 0) {
		res = NULL;
		goto out;
	}
	res = mysql_use_result(mc.m);
	while ((row = my_browse_row(c, mc.m, res, &n, &bytes, truncated)) != NULL) {
		cJSON *it = auth_item(items, row[0], row[1] && strstr(row[1], "VIEW") ? "view" : "table");

		if (it)
			cJSON_AddStringToObject(it, "schema", schema);
	}
	rc = c->code == AUTH_OK ? 0 : -1;
out:
	if (res)
		mysql_free_result(res);
	free(lit);
	mysql_close(mc.m);
	return rc;
}

/* The SELECT for a Table dataset (limit < 0: every row); NULL after
 * auth_fail. */
static char *
my_table_sql(struct auth_ctx *c, int limit)
{
	const char *schema = auth_ds_str(c, "schema", false, ""), *table;
	char *qs = NULL, *qt = NULL, *sql = NULL;
	size_t l;

	if (schema == NULL || (table = auth_ds_str(c, "table", true, NULL)) == NULL)
		return NULL;
	qt = my_ident(table);
	qs = *schema ? my_ident(schema) : NULL;
	l = (qt ? strlen(qt) : 0) + (qs ? strlen(qs) : 0) + 64;
	sql = qt ? malloc(l) : NULL;
	if (sql != NULL && limit < 0) {
		snprintf(sql, l, "SELECT * FROM %s%s%s", qs ? qs : "", qs ? "." : "", qt);
	} else if (sql != NULL) {
		snprintf(sql, l, "SELECT * FROM %s%s%s LIMIT %d", qs ? qs : "", qs ? "." : "", qt,
		    limit);
	} else {
		auth_fail(c, AUTH_E_INTERNAL, "out of memory");
	}
	free(qs);
	free(qt);
	return sql;
}

/* How my_rows reads a dataset. */
struct my_rows_how {
	bool write_timeout;		/* net_write_timeout raised to the deadline (a copy) */
	int table_limit;		/* a Table's LIMIT (my_table_sql) */
	int query_limit;		/* a Query's sql_select_limit, or 0 for none */
	const char *need;		/* who needs rows (with its verb), for a query with none */
};

/* Connects (read-only), runs the Table's or Query's one statement (a Query
 * checked by auth_guard_sql before the server hears of it) and opens its
 * rows unbuffered; NULL after auth_fail. *sql: what the caller frees. */
static MYSQL_RES *
my_rows(struct auth_ctx *c, struct my_conn *mc, const struct my_rows_how *how, char **sql)
{
	MYSQL_RES *res;
	const char *q;
	char lim[64], why[256], set[96];

	if (strcmp(c->dataset_type, "Table") != 0 &&
	    (q = auth_ds_str(c, "query", true, NULL)) != NULL &&
	    auth_guard_sql(q, why, sizeof why) != 0) {
		auth_fail(c, AUTH_E_READONLY, "%s", why);
		return NULL;
	}
	if (c->code != AUTH_OK || my_connect(c, mc, true) != 0)
		return NULL;
	if (how->write_timeout) {
		snprintf(set, sizeof set, "SET SESSION net_write_timeout = %d", auth_secs_for(c, 31536000));
		if (my_query(c, mc, set, "setting the write timeout") != 0)
			return NULL;
	}
	if (strcmp(c->dataset_type, "Table") == 0) {
		if ((*sql = my_table_sql(c, how->table_limit)) == NULL)
			return NULL;
		q = *sql;
	} else {
		if ((q = auth_ds_str(c, "query", true, NULL)) == NULL)
			return NULL;
		/* the server stops a SELECT after this many rows */
		snprintf(lim, sizeof lim, "SET SESSION sql_select_limit = %d", how->query_limit);
		if (how->query_limit > 0 && my_query(c, mc, lim, "limiting the rows") != 0)
			return NULL;
	}
	if (my_query(c, mc, q, "the query") != 0)
		return NULL;
	if (mysql_more_results(mc->m)) {
		auth_fail(c, AUTH_E_INVALID, "dataset.query must be a single statement");
		return NULL;
	}
	res = mysql_use_result(mc->m);
	if (res == NULL) {
		if (mysql_errno(mc->m))
			my_fail(c, mc->m, "the query");
		else
			auth_fail(c, AUTH_E_INVALID, "dataset.query returns no rows: %s a query that "
			    "reads rows", how->need);
	}
	return res;
}

/* After the rows: whether reading them failed (the deadline's KILL QUERY or
 * the server), after auth_fail. */
static bool
my_read_failed(struct auth_ctx *c, struct my_conn *mc)
{
	if (!mysql_errno(mc->m))
		return false;
	if (auth_should_stop(c) && mc->killed)
		auth_fail_timeout(c, "the query");
	else
		my_fail(c, mc->m, "reading the rows");
	return true;
}

static int
my_run(struct auth_ctx *c, bool preview)
{
	struct my_rows_how how = { false, preview ? c->limit + 1 : 0, preview ? c->limit + 1 : 1,
	    "preview and schema need" };
	struct my_conn mc;
	MYSQL_RES *res = NULL;
	MYSQL_FIELD *f;
	MYSQL_ROW row;
	unsigned long *lens;
	char *sql = NULL;
	unsigned i, n;
	int rc = -1;

	mc.m = NULL;
	if ((res = my_rows(c, &mc, &how, &sql)) == NULL)
		goto out;
	n = mysql_num_fields(res);
	f = mysql_fetch_fields(res);
	for (i = 0; i < n; i++)
		auth_rows_add_column(c->rows, f[i].name,
		    my_type(f[i].type, f[i].flags, f[i].length, f[i].charsetnr),
		    preview ? -1 : !(f[i].flags & NOT_NULL_FLAG));
	while ((row = my_fetch(c, &mc, res)) != NULL) {
		if (!preview)
			continue;
		if (!auth_rows_want(c->rows)) {
			auth_rows_set_truncated(c->rows);
			continue;	/* at most one more row was asked for */
		}
		lens = mysql_fetch_lengths(res);
		auth_rows_begin(c->rows);
		for (i = 0; i < n; i++) {
			const char *t = auth_rows_col_type(c->rows, (int)i);

			if (row[i] == NULL)
				auth_rows_null(c->rows);
			else if (strcmp(t, "ByteArray") == 0)
				auth_rows_bytes(c->rows, row[i], lens[i]);
			else if (strcmp(t, "DateTime") == 0 && lens[i] == 19 && row[i][10] == ' ') {
				char d[20];

				memcpy(d, row[i], 19);
				d[10] = 'T';
				auth_rows_text(c->rows, d, 19);
			} else
				auth_rows_text(c->rows, row[i], lens[i]);
		}
		auth_rows_end(c->rows);
	}
	if (my_read_failed(c, &mc))
		goto out;
	rc = 0;
out:
	if (res)
		mysql_free_result(res);
	free(sql);
	mysql_close(mc.m);
	return rc;
}

static int
my_schema(struct auth_ctx *c)
{
	return my_run(c, false);
}

static int
my_preview(struct auth_ctx *c)
{
	return my_run(c, true);
}

/* One value as a copy wants it: timestamps as in a preview ('T'), a BIT(1)
 * Boolean as true/false (the server sends the raw bit), bytes raw. */
static const char *
my_stream_cell(const MYSQL_FIELD *f, const char *type, const char *v, unsigned long *len,
    char *buf, size_t buflen)
{
	if (v == NULL)
		return NULL;
	if (f->type == MYSQL_TYPE_BIT && strcmp(type, "Boolean") == 0) {
		*len = v[0] ? 4 : 5;
		return v[0] ? "true" : "false";
	}
	if (strcmp(type, "DateTime") == 0 && *len >= 19 && *len < buflen && v[10] == ' ') {
		memcpy(buf, v, *len);
		buf[10] = 'T';
		return buf;
	}
	return v;
}

/* The whole Table or Query for a copy job: the session and transaction of
 * every operation (read-only, the Query checked by auth_guard_sql first),
 * read unbuffered (mysql_use_result: libmariadb holds one row, at most
 * MYSQL_OPT_MAX_ALLOWED_PACKET = the request memory limit), so while the
 * sink is busy the socket is not read and the server waits. The server's
 * net_write_timeout is raised to the job's deadline, or it would drop a
 * reader that pauses for a slow upload. Stopping (the deadline, the job
 * stopped) kills the statement with KILL QUERY as a preview's deadline does. */
static int
my_stream(struct auth_ctx *c, const struct auth_stream *s)
{
	struct my_rows_how how = { true, -1, 0, "a copy needs" };
	struct my_conn mc;
	MYSQL_RES *res = NULL;
	MYSQL_FIELD *f;
	MYSQL_ROW row;
	unsigned long *lens;
	char *sql = NULL;
	const char **names = NULL, **types = NULL, **vals = NULL;
	size_t *vl = NULL;
	int *nullable = NULL;
	char (*bufs)[40] = NULL;
	unsigned i, n;
	int rc = -1;

	mc.m = NULL;
	if ((res = my_rows(c, &mc, &how, &sql)) == NULL)
		goto out;
	n = mysql_num_fields(res);
	f = mysql_fetch_fields(res);
	names = calloc(n + 1, sizeof *names);
	types = calloc(n + 1, sizeof *types);
	vals = calloc(n + 1, sizeof *vals);
	vl = calloc(n + 1, sizeof *vl);
	nullable = calloc(n + 1, sizeof *nullable);
	bufs = calloc(n + 1, sizeof *bufs);
	if (!names || !types || !vals || !vl || !nullable || !bufs) {
		auth_fail(c, AUTH_E_INTERNAL, "out of memory");
		goto stop;
	}
	for (i = 0; i < n; i++) {
		names[i] = f[i].name;
		types[i] = my_type(f[i].type, f[i].flags, f[i].length, f[i].charsetnr);
		nullable[i] = !(f[i].flags & NOT_NULL_FLAG);
	}
	if (s->columns(s->arg, n, names, types, nullable) != 0)
		goto stop;
	while ((row = my_fetch(c, &mc, res)) != NULL) {
		lens = mysql_fetch_lengths(res);
		for (i = 0; i < n; i++) {
			unsigned long l = lens[i];

			vals[i] = my_stream_cell(&f[i], types[i], row[i], &l, bufs[i], sizeof bufs[i]);
			vl[i] = l;
		}
		if (s->row(s->arg, n, vals, vl) != 0 || auth_should_stop(c))
			goto stop;
	}
	if (my_read_failed(c, &mc))
		goto out;
	rc = 0;
	goto out;
stop:
	/* the server is still sending: stop the statement rather than read
	 * the rest of the table to free the result */
	if (!mc.killed)
		my_kill(c, &mc, mc.id);
	mc.killed = true;
	if (c->code == AUTH_OK)
		auth_fail(c, AUTH_E_SHUTDOWN, "the copy was stopped");
out:
	if (res)
		mysql_free_result(res);
	free(sql);
	free(names);
	free(types);
	free(vals);
	free(vl);
	free(nullable);
	free(bufs);
	mysql_close(mc.m);
	return rc;
}

static const char *const my_datasets[] = { "Table", "Query", NULL };

const struct auth_store conn_mysql_store = {
	.type = "MySql",
	.datasets = my_datasets,
	.test = my_test,
	.browse = my_browse,
	.schema = my_schema,
	.preview = my_preview,
	.stream = my_stream,
};
