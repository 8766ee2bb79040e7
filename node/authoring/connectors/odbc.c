/* Odbc connector (unixODBC): any driver. Browse and schema use the catalog
 * functions (SQLTables, SQLColumns). Read-only in layers: connections ask for
 * SQL_MODE_READ_ONLY (drivers honour it as they can), run without
 * autocommit and are always rolled back, and PostgreSQL and MySQL sessions
 * are made read-only so the store itself refuses writes. Statements get
 * SQL_ATTR_QUERY_TIMEOUT at the deadline and SQL_ATTR_MAX_ROWS. */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sql.h>
#include <sqlext.h>
#include <odbcinst.h>

#include "node/authoring/auth_ctx.h"
#include "node/authoring/auth_guard.h"
#include "node/authoring/auth_rows.h"

struct od {
	SQLHENV env;
	SQLHDBC dbc;
	SQLHSTMT st;
	bool mysql;		/* MySQL or MariaDB: Queries pass auth_guard_sql */
};

static const char *
od_type(SQLSMALLINT t)
{
	switch (t) {
	case SQL_BIT: return "Boolean";
	case SQL_TINYINT: case SQL_SMALLINT: return "Int16";
	case SQL_INTEGER: return "Int32";
	case SQL_BIGINT: return "Int64";
	case SQL_REAL: return "Single";
	case SQL_FLOAT: case SQL_DOUBLE: return "Double";
	case SQL_DECIMAL: case SQL_NUMERIC: return "Decimal";
	case SQL_TYPE_DATE: case SQL_TYPE_TIMESTAMP: case SQL_DATE: case SQL_TIMESTAMP:
		return "DateTime";
	case SQL_TYPE_TIME: case SQL_TIME: return "TimeSpan";
	case SQL_GUID: return "Guid";
	case SQL_BINARY: case SQL_VARBINARY: case SQL_LONGVARBINARY: return "ByteArray";
	default: return "String";
	}
}

/* Fails with the first diagnostic record of h, classified by SQLSTATE. */
static int
od_fail(struct auth_ctx *c, SQLSMALLINT type, SQLHANDLE h, const char *what)
{
	SQLCHAR state[6] = "", msg[768] = "";
	SQLINTEGER native = 0;
	SQLSMALLINT len = 0;
	const char *s = (const char *)state;

	if (h == SQL_NULL_HANDLE || !SQL_SUCCEEDED(SQLGetDiagRec(type, h, 1, state, &native, msg,
	    sizeof msg, &len)))
		return auth_fail(c, AUTH_E_STORE, "%s failed (the driver gave no detail)", what);
	if (strcmp(s, "28000") == 0)
		return auth_fail(c, AUTH_E_AUTH, "%s", msg);
	if (strcmp(s, "25006") == 0 || strcmp(s, "25000") == 0)
		return auth_fail(c, AUTH_E_READONLY, "the query would write, and authoring is "
		    "read-only: %s", msg);
	if (strcmp(s, "42S02") == 0 || strcmp(s, "42P01") == 0)
		return auth_fail(c, AUTH_E_NOTFOUND, "%s", msg);
	/* HYT00/HYT01: the driver's own timeout; 57014: PostgreSQL cancelled
	 * the statement, which is how psqlodbc implements SQL_ATTR_QUERY_TIMEOUT
	 * (statement_timeout) and what SQLCancel at our deadline causes. The
	 * query timeout is set to the deadline, so either may fire first. */
	if (strcmp(s, "HYT00") == 0 || strcmp(s, "HYT01") == 0 || strcmp(s, "57014") == 0)
		return auth_should_stop(c) || auth_ms_left(c) < 1000 ? auth_fail_timeout(c, what) :
		    auth_fail(c, AUTH_E_UNREACHABLE, "%s", msg);
	if (strcmp(s, "IM002") == 0 || strcmp(s, "IM003") == 0 ||
	    strstr((const char *)msg, "Can't open lib") != NULL)
		return auth_fail(c, AUTH_E_UNSUPPORTED, "the ODBC driver is not available on this "
		    "node: %s", msg);
	if (strncmp(s, "08", 2) == 0) {
		/* the PostgreSQL driver reports a refused password as 08001 */
		if (strstr((const char *)msg, "password authentication failed") ||
		    strstr((const char *)msg, "no password supplied") ||
		    strstr((const char *)msg, "Access denied"))
			return auth_fail(c, AUTH_E_AUTH, "%s", msg);
		return auth_fail(c, AUTH_E_UNREACHABLE, "%s", msg);
	}
	if (strcmp(s, "HY008") == 0 && auth_should_stop(c))
		return auth_fail_timeout(c, what);
	return auth_fail(c, AUTH_E_STORE, "%s: %s", what, msg);
}

/* Appends ;KEY=value to buf; the value goes in braces (with '}' doubled)
 * only when it needs them, since some drivers take braces literally. */
static int
od_append(char *buf, size_t cap, const char *key, const char *v)
{
	size_t l = strlen(buf);
	bool brace = strpbrk(v, ";{}=") != NULL || *v == ' ' || (*v && v[strlen(v) - 1] == ' ');
	int n;

	if (!brace) {
		n = snprintf(buf + l, cap - l, "%s%s=%s", l && buf[l - 1] != ';' ? ";" : "", key, v);
		return n < 0 || (size_t)n >= cap - l ? -1 : 0;
	}
	n = snprintf(buf + l, cap - l, "%s%s={", l && buf[l - 1] != ';' ? ";" : "", key);

	if (n < 0 || (size_t)n >= cap - l)
		return -1;
	l += (size_t)n;
	for (; *v; v++) {
		if (l + 3 >= cap)
			return -1;
		if (*v == '}')
			buf[l++] = '}';
		buf[l++] = *v;
	}
	if (l + 2 >= cap)
		return -1;
	buf[l++] = '}';
	buf[l] = '\0';
	return 0;
}

static void
od_close(struct od *o)
{
	if (o->st)
		SQLFreeHandle(SQL_HANDLE_STMT, o->st);
	if (o->dbc) {
		/* nothing an operation did is ever committed */
		SQLEndTran(SQL_HANDLE_DBC, o->dbc, SQL_ROLLBACK);
		SQLDisconnect(o->dbc);
		SQLFreeHandle(SQL_HANDLE_DBC, o->dbc);
	}
	if (o->env)
		SQLFreeHandle(SQL_HANDLE_ENV, o->env);
	memset(o, 0, sizeof *o);
}

/* ---- what a connection string may say ---------------------------------
 *
 * Every keyword is either one the driver manager or the drivers we support
 * (psqlODBC, MariaDB Connector/ODBC, FreeTDS, Microsoft's) read without
 * touching the node's files, or refused: SAVEFILE writes a .dsn file,
 * FILEDSN reads one, a DRIVER given as a path loads any library, psqlODBC's
 * pqopt hands libpq its own keywords (service, passfile, ssl key paths,
 * host lists), ConnSettings/INITSTMT run SQL before the session is
 * read-only, MariaDB's PLUGIN_DIR/SOCKET/NAMEDPIPE/SSLKEY load or open
 * local files. Each keyword may appear once (drivers take the last of two,
 * the check would see the first), and aliases of one setting (Server,
 * Servername, Host, Address ...) count as the same keyword. */

enum od_kind { OD_PLAIN, OD_DRIVER, OD_DSN, OD_HOST, OD_USER, OD_PASSWORD };

static const struct od_key {
	const char *name;
	const char *setting;	/* aliases share it */
	enum od_kind kind;
} od_keys[] = {
	{ "DRIVER", "DRIVER", OD_DRIVER },
	{ "DSN", "DSN", OD_DSN },
	{ "SERVER", "SERVER", OD_HOST },
	{ "SERVERNAME", "SERVER", OD_HOST },
	{ "HOST", "SERVER", OD_HOST },
	{ "HOSTNAME", "SERVER", OD_HOST },
	{ "ADDRESS", "SERVER", OD_HOST },
	{ "ADDR", "SERVER", OD_HOST },
	{ "NETWORK ADDRESS", "SERVER", OD_HOST },
	{ "DATA SOURCE", "SERVER", OD_HOST },
	{ "PORT", "PORT", OD_PLAIN },
	{ "DATABASE", "DATABASE", OD_PLAIN },
	{ "DB", "DATABASE", OD_PLAIN },
	{ "INITIAL CATALOG", "DATABASE", OD_PLAIN },
	{ "UID", "UID", OD_USER },
	{ "USER", "UID", OD_USER },
	{ "USERNAME", "UID", OD_USER },
	{ "USER ID", "UID", OD_USER },
	{ "PWD", "PWD", OD_PASSWORD },
	{ "PASSWORD", "PWD", OD_PASSWORD },
	{ "SSLMODE", "SSLMODE", OD_PLAIN },
	{ "SSLVERIFY", "SSLVERIFY", OD_PLAIN },
	{ "FORCETLS", "FORCETLS", OD_PLAIN },
	{ "ENCRYPT", "ENCRYPT", OD_PLAIN },
	{ "TRUSTSERVERCERTIFICATE", "TRUSTSERVERCERTIFICATE", OD_PLAIN },
	{ "READONLY", "READONLY", OD_PLAIN },
	{ "DESCRIPTION", "DESCRIPTION", OD_PLAIN },
	{ "CHARSET", "CHARSET", OD_PLAIN },
	{ "CLIENTCHARSET", "CHARSET", OD_PLAIN },
	{ "TDS_VERSION", "TDS_VERSION", OD_PLAIN },
	{ "APP", "APP", OD_PLAIN },
	{ "APPLICATIONINTENT", "APPLICATIONINTENT", OD_PLAIN },
	{ "TIMEOUT", "TIMEOUT", OD_PLAIN },
	{ "CONNECTTIMEOUT", "TIMEOUT", OD_PLAIN },
	{ "LOGINTIMEOUT", "TIMEOUT", OD_PLAIN },
	{ "USEDECLAREFETCH", "USEDECLAREFETCH", OD_PLAIN },
	{ "FETCH", "FETCH", OD_PLAIN },
	{ "MAXVARCHARSIZE", "MAXVARCHARSIZE", OD_PLAIN },
	{ "MAXLONGVARCHARSIZE", "MAXLONGVARCHARSIZE", OD_PLAIN },
	{ "TEXTASLONGVARCHAR", "TEXTASLONGVARCHAR", OD_PLAIN },
	{ "UNKNOWNSASLONGVARCHAR", "UNKNOWNSASLONGVARCHAR", OD_PLAIN },
	{ "BOOLSASCHAR", "BOOLSASCHAR", OD_PLAIN },
	{ "BYTEAASLONGVARBINARY", "BYTEAASLONGVARBINARY", OD_PLAIN },
};

#define OD_NKEYS (sizeof od_keys / sizeof od_keys[0])

struct od_cs {
	struct auth_ctx *c;
	bool seen[OD_NKEYS];
	const char *seen_as[OD_NKEYS];	/* the keyword that set a setting */
	char dsn[256];
	bool has_driver, has_user, has_password;
	char lib[512];		/* the driver's library, as registered */
	/* the host values, checked once the whole string was read */
	char hosts[4][256];
	int nhosts;
};

static const struct od_key *
od_key_find(const char *key)
{
	size_t i;

	for (i = 0; i < OD_NKEYS; i++)
		if (strcmp(od_keys[i].name, key) == 0)
			return &od_keys[i];
	return NULL;
}

/* The index of the first keyword of a setting (where seen[] is kept). */
static size_t
od_setting_slot(const struct od_key *k)
{
	size_t i;

	for (i = 0; i < OD_NKEYS; i++)
		if (strcmp(od_keys[i].setting, k->setting) == 0)
			return i;
	return 0;
}

static int
od_cs_pair(void *arg, const char *key, const char *val, size_t vlen)
{
	struct od_cs *o = arg;
	struct auth_ctx *c = o->c;
	const struct od_key *k = od_key_find(key);
	char v[256], reg[512];
	size_t slot;

	if (strcmp(key, "SAVEFILE") == 0 || strcmp(key, "FILEDSN") == 0)
		return auth_fail(c, AUTH_E_INVALID, "the connection string keyword %s is not allowed: "
		    "it makes the driver manager %s a file on the node; name a driver "
		    "(Driver={name}) or a data source the node's admin registered (DSN=name)", key,
		    key[0] == 'S' ? "write" : "read");
	if (k == NULL)
		return auth_fail(c, AUTH_E_INVALID, "the connection string keyword %s is not allowed "
		    "in authoring (keywords that name files, load code or run statements are refused; "
		    "docs/security-connectors.md lists the allowed ones)", key);
	slot = od_setting_slot(k);
	if (o->seen[slot])
		return auth_fail(c, AUTH_E_INVALID, "the connection string sets %s twice (%s and %s): "
		    "give each setting once", k->setting, o->seen_as[slot], k->name);
	o->seen[slot] = true;
	o->seen_as[slot] = k->name;
	if (vlen >= sizeof v)
		return auth_fail(c, AUTH_E_INVALID, "the connection string value of %s is too long",
		    key);
	memcpy(v, val, vlen);
	v[vlen] = '\0';
	switch (k->kind) {
	case OD_DRIVER:
		/* only a driver registered by name in odbcinst.ini: given as a
		 * path, unixODBC would load that library */
		if (strchr(v, '/') != NULL || SQLGetPrivateProfileString(v, "Driver", "", reg,
		    sizeof reg, "ODBCINST.INI") <= 0 || reg[0] == '\0')
			return auth_fail(c, AUTH_E_UNSUPPORTED, "the ODBC driver \"%s\" is not registered "
			    "on this node: Driver= takes the name of a driver in the node's odbcinst.ini, "
			    "never a path", v);
		o->has_driver = true;
		snprintf(o->lib, sizeof o->lib, "%s", reg);
		break;
	case OD_DSN:
		if (strchr(v, '/') != NULL || SQLGetPrivateProfileString(v, "Driver", "", reg,
		    sizeof reg, "ODBC.INI") <= 0 || reg[0] == '\0')
			return auth_fail(c, AUTH_E_INVALID, "the data source \"%s\" is not registered on "
			    "this node: DSN= takes the name of a data source in the node's odbc.ini", v);
		snprintf(o->dsn, sizeof o->dsn, "%s", v);
		/* a DSN's Driver is a registered name or the admin's path */
		if (strchr(reg, '/') == NULL) {
			char name[sizeof reg];

			snprintf(name, sizeof name, "%s", reg);
			if (SQLGetPrivateProfileString(name, "Driver", "", reg, sizeof reg,
			    "ODBCINST.INI") <= 0)
				reg[0] = '\0';
		}
		snprintf(o->lib, sizeof o->lib, "%s", reg);
		break;
	case OD_HOST:
		if (o->nhosts < 4)
			snprintf(o->hosts[o->nhosts++], sizeof o->hosts[0], "%s", v);
		break;
	case OD_USER:
		o->has_user = true;
		break;
	case OD_PASSWORD:
		o->has_password = true;
		break;
	case OD_PLAIN:
		break;
	}
	return 0;
}

/* The local machine access rule for one host value. Every form a driver
 * reads is checked: lists (libpq under psqlODBC takes "a,b"), "tcp:host",
 * "host\instance", "host,port", "[v6]", and socket paths or named pipes,
 * which are this machine. */
static int
od_check_host_value(struct auth_ctx *c, const char *key, const char *v)
{
	char one[256];
	const char *p = v;
	bool first = true;

	if (c->policy.local_machine_access)
		return 0;
	while (*p) {
		size_t l = strcspn(p, ",");
		char *h = one;

		snprintf(one, sizeof one, "%.*s", (int)l, p);
		p += l;
		if (*p == ',')
			p++;
		while (*h == ' ')
			h++;
		/* trailing spaces only: "a b" stays whole and fails to resolve */
		while (*h && h[strlen(h) - 1] == ' ')
			h[strlen(h) - 1] = '\0';
		if (!first && *h && strspn(h, "0123456789") == strlen(h))
			continue;	/* "host,port" */
		first = false;
		if (strncasecmp(h, "tcp:", 4) == 0)
			h += 4;
		if (*h == '/' || *h == '@' || *h == '.' || strncasecmp(h, "np:", 3) == 0 ||
		    strncasecmp(h, "lpc:", 4) == 0 || strcasecmp(h, "(local)") == 0 || *h == '\\')
			return auth_fail(c, AUTH_E_LOCAL, "the connection string's %s names a socket, pipe "
			    "or path on this node (%s) and local machine access is off; the node's admin "
			    "can allow it with `shirctl local-machine-access enable` "
			    "(security.local_machine_access)", key, h);
		h[strcspn(h, "\\")] = '\0';
		if (*h == '[') {
			h++;
			h[strcspn(h, "]")] = '\0';
		}
		if (*h == '\0')
			continue;
		if (auth_check_host(c, h) != 0)
			return -1;
	}
	return 0;
}

/* Checks the request's connection string before any driver sees it. */
static int
od_check_cs(struct auth_ctx *c, const char *cs, bool user, bool password, bool *psql)
{
	static const char *const dsn_host_keys[] = { "Server", "Servername", "Host", "Hostname",
	    "Address", "Addr", "Network Address", "Data Source", "Socket", "NamedPipe", "pqopt",
	    NULL };
	struct od_cs o;
	char why[256];
	int rc, i, nhosts;

	memset(&o, 0, sizeof o);
	o.c = c;
	rc = auth_guard_odbc_pairs(cs, od_cs_pair, &o, why, sizeof why);
	if (rc != 0)
		return rc < 0 && c->code == AUTH_OK ? auth_fail(c, AUTH_E_INVALID, "%s", why) : -1;
	if (o.has_driver && o.dsn[0])
		return auth_fail(c, AUTH_E_INVALID, "the connection string names both a driver and a "
		    "data source: give one");
	if (!o.has_driver && !o.dsn[0])
		return auth_fail(c, AUTH_E_INVALID, "the connection string names no driver: give "
		    "Driver={name} (a driver registered on the node) or DSN=name");
	if ((user && o.has_user) || (password && o.has_password))
		return auth_fail(c, AUTH_E_INVALID, "the connection string has %s and the linked "
		    "service has %s: give it once", user && o.has_user ? "UID" : "PWD",
		    user && o.has_user ? "username" : "password");
	for (i = 0; i < o.nhosts; i++)
		if (od_check_host_value(c, "Server", o.hosts[i]) != 0)
			return -1;
	nhosts = o.nhosts;
	/* psqlODBC hands its connection to libpq, which would read the node
	 * user's ~/.pgpass when the request gives no password */
	*psql = strstr(o.lib, "psqlodbc") != NULL;
	/* a data source the admin registered: check where it points too */
	for (i = 0; o.dsn[0] && dsn_host_keys[i] != NULL; i++) {
		char v[256] = "";

		if (SQLGetPrivateProfileString(o.dsn, dsn_host_keys[i], "", v, sizeof v,
		    "ODBC.INI") > 0 && v[0]) {
			if (strcmp(dsn_host_keys[i], "Socket") == 0 ||
			    strcmp(dsn_host_keys[i], "NamedPipe") == 0) {
				if (!c->policy.local_machine_access)
					return auth_fail(c, AUTH_E_LOCAL, "the data source %s connects through "
					    "a local socket and local machine access is off", o.dsn);
			} else if (strcmp(dsn_host_keys[i], "pqopt") == 0) {
				if (!c->policy.local_machine_access && strstr(v, "host"))
					return auth_fail(c, AUTH_E_LOCAL, "the data source %s sets libpq "
					    "hosts (pqopt) that cannot be checked, and local machine access is "
					    "off", o.dsn);
			} else if (od_check_host_value(c, dsn_host_keys[i], v) != 0) {
				return -1;
			}
			nhosts++;
		}
	}
	/* no host at all: drivers then use this machine (libpq's Unix socket,
	 * libmariadb's localhost) */
	if (nhosts == 0 && !c->policy.local_machine_access)
		return auth_fail(c, AUTH_E_LOCAL, "the connection string names no server, so the "
		    "driver would connect to this node itself, and local machine access is off; give "
		    "Server=");
	return 0;
}

/* A read-only session in the DBMSs that have one. */
static int
od_session_read_only(struct auth_ctx *c, struct od *o)
{
	SQLCHAR name[128] = "";
	SQLSMALLINT l = 0;
	const char *sql = NULL;

	SQLGetInfo(o->dbc, SQL_DBMS_NAME, name, sizeof name, &l);
	if (strstr((const char *)name, "PostgreSQL"))
		sql = "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY";
	else if (strstr((const char *)name, "MySQL") || strstr((const char *)name, "MariaDB")) {
		sql = "SET SESSION TRANSACTION READ ONLY";
		o->mysql = true;
	}
	if (sql == NULL)
		return 0;
	if (!SQL_SUCCEEDED(SQLExecDirect(o->st, (SQLCHAR *)sql, SQL_NTS)))
		return od_fail(c, SQL_HANDLE_STMT, o->st, "making the session read-only");
	SQLFreeStmt(o->st, SQL_CLOSE);
	/* the setting applies from the next transaction: end the one the
	 * driver opened for the SET (it changed nothing else) */
	if (!SQL_SUCCEEDED(SQLEndTran(SQL_HANDLE_DBC, o->dbc, SQL_COMMIT)))
		return od_fail(c, SQL_HANDLE_DBC, o->dbc, "making the session read-only");
	return 0;
}

static int
od_connect_as(struct auth_ctx *c, struct od *o, bool whole)
{
	const char *user = auth_prop_str(c, "username", false, NULL);
	bool psql = false;
	char cs[4096];
	SQLRETURN r;
	int rc = -1;

	memset(o, 0, sizeof *o);
	if (c->code != AUTH_OK)
		return -1;
	if (c->connection_string == NULL || !*c->connection_string)
		return auth_fail(c, AUTH_E_INVALID, "linkedService.properties.connectionString is "
		    "required");
	if (strlen(c->connection_string) >= sizeof cs - 512)
		return auth_fail(c, AUTH_E_INVALID, "linkedService.properties.connectionString is too "
		    "long");
	if (od_check_cs(c, c->connection_string, user != NULL, c->password != NULL, &psql) != 0)
		return -1;
	snprintf(cs, sizeof cs, "%s", c->connection_string);
	if ((user && od_append(cs, sizeof cs, "UID", user) != 0) ||
	    (c->password && od_append(cs, sizeof cs, "PWD", c->password) != 0) ||
	    (psql && od_append(cs, sizeof cs, "pqopt", "passfile=/nonexistent/shir-no-file "
	    "sslcert=/nonexistent/shir-no-file sslkey=/nonexistent/shir-no-file "
	    "gssencmode=disable") != 0) ||
	    (psql && whole && !strcasestr(c->connection_string, "usedeclarefetch") &&
	    (od_append(cs, sizeof cs, "UseDeclareFetch", "1") != 0 ||
	    od_append(cs, sizeof cs, "Fetch", "1000") != 0))) {
		explicit_bzero(cs, sizeof cs);
		return auth_fail(c, AUTH_E_INVALID, "the connection string is too long");
	}
	if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_ENV, SQL_NULL_HANDLE, &o->env)) ||
	    !SQL_SUCCEEDED(SQLSetEnvAttr(o->env, SQL_ATTR_ODBC_VERSION, (SQLPOINTER)SQL_OV_ODBC3, 0)) ||
	    !SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_DBC, o->env, &o->dbc))) {
		auth_fail(c, AUTH_E_INTERNAL, "cannot set up unixODBC");
		goto out;
	}
	SQLSetConnectAttr(o->dbc, SQL_ATTR_LOGIN_TIMEOUT,
	    (SQLPOINTER)(SQLULEN)auth_secs_for(c, 15), 0);
	SQLSetConnectAttr(o->dbc, SQL_ATTR_CONNECTION_TIMEOUT,
	    (SQLPOINTER)(SQLULEN)auth_secs_for(c, 0), 0);
	SQLSetConnectAttr(o->dbc, SQL_ATTR_ACCESS_MODE, (SQLPOINTER)SQL_MODE_READ_ONLY, 0);
	r = SQLDriverConnect(o->dbc, NULL, (SQLCHAR *)cs, SQL_NTS, NULL, 0, NULL,
	    SQL_DRIVER_NOPROMPT);
	explicit_bzero(cs, sizeof cs);
	if (!SQL_SUCCEEDED(r)) {
		od_fail(c, SQL_HANDLE_DBC, o->dbc, "connecting through ODBC");
		SQLFreeHandle(SQL_HANDLE_DBC, o->dbc);
		o->dbc = NULL;
		goto out;
	}
	/* read-only again, now that the driver is loaded; many drivers only
	 * report it, so also: no autocommit (everything is rolled back at the
	 * end), and a read-only session where the DBMS has one, so the store
	 * itself refuses writes */
	SQLSetConnectAttr(o->dbc, SQL_ATTR_ACCESS_MODE, (SQLPOINTER)SQL_MODE_READ_ONLY, 0);
	if (!SQL_SUCCEEDED(SQLSetConnectAttr(o->dbc, SQL_ATTR_AUTOCOMMIT,
	    (SQLPOINTER)SQL_AUTOCOMMIT_OFF, 0))) {
		od_fail(c, SQL_HANDLE_DBC, o->dbc, "turning autocommit off");
		goto out;
	}
	if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, o->dbc, &o->st))) {
		od_fail(c, SQL_HANDLE_DBC, o->dbc, "allocating a statement");
		goto out;
	}
	if (od_session_read_only(c, o) != 0)
		goto out;
	SQLSetStmtAttr(o->st, SQL_ATTR_QUERY_TIMEOUT, (SQLPOINTER)(SQLULEN)auth_secs_for(c, 0), 0);
	rc = 0;
out:
	if (rc != 0)
		od_close(o);
	return rc;
}

static int
od_connect(struct auth_ctx *c, struct od *o)
{
	return od_connect_as(c, o, false);
}

static int
od_test(struct auth_ctx *c)
{
	struct od o;
	SQLCHAR name[128] = "", ver[64] = "";
	SQLSMALLINT l;

	if (od_connect(c, &o) != 0)
		return -1;
	SQLGetInfo(o.dbc, SQL_DBMS_NAME, name, sizeof name, &l);
	SQLGetInfo(o.dbc, SQL_DBMS_VER, ver, sizeof ver, &l);
	auth_result_store(c, (const char *)name, (const char *)ver);
	od_close(&o);
	return 0;
}

/* Column text of the current row (SQL_C_CHAR); NULL for SQL NULL. */
static const char *
od_str(SQLHSTMT st, int col, char *buf, size_t n)
{
	SQLLEN ind = 0;

	if (!SQL_SUCCEEDED(SQLGetData(st, (SQLUSMALLINT)col, SQL_C_CHAR, buf, (SQLLEN)n, &ind)) ||
	    ind == SQL_NULL_DATA)
		return NULL;
	return buf;
}

static int
od_browse(struct auth_ctx *c, cJSON *items, bool *truncated)
{
	struct od o;
	char name[256], type[64], schema[256];
	int n = 0, rc = -1;
	SQLRETURN r;

	if (od_connect(c, &o) != 0)
		return -1;
	if (!c->path[0]) {
		/* the schemas (ODBC's SQL_ALL_SCHEMAS form of SQLTables) */
		r = SQLTables(o.st, (SQLCHAR *)"", 0, (SQLCHAR *)SQL_ALL_SCHEMAS, SQL_NTS,
		    (SQLCHAR *)"", 0, (SQLCHAR *)"", 0);
		if (!SQL_SUCCEEDED(r)) {
			od_fail(c, SQL_HANDLE_STMT, o.st, "listing the schemas");
			goto out;
		}
		while (SQL_SUCCEEDED(SQLFetch(o.st))) {
			const char *s = od_str(o.st, 2, schema, sizeof schema);

			if (s && *s && strcmp(s, "information_schema") && strncmp(s, "pg_", 3)) {
				auth_item(items, s, "schema");
				n++;
			}
		}
		if (n > 0) {
			rc = 0;
			goto out;
		}
		/* a driver without schemas: list every table */
		SQLCloseCursor(o.st);
	}
	r = SQLTables(o.st, NULL, 0, c->path[0] ? (SQLCHAR *)c->path : NULL,
	    c->path[0] ? SQL_NTS : 0, (SQLCHAR *)"%", SQL_NTS, (SQLCHAR *)"TABLE,VIEW", SQL_NTS);
	if (!SQL_SUCCEEDED(r)) {
		od_fail(c, SQL_HANDLE_STMT, o.st, "listing the tables");
		goto out;
	}
	while (SQL_SUCCEEDED(SQLFetch(o.st))) {
		const char *s = od_str(o.st, 2, schema, sizeof schema);
		const char *t = od_str(o.st, 3, name, sizeof name);
		const char *k = od_str(o.st, 4, type, sizeof type);
		cJSON *it;

		if (t == NULL)
			continue;
		if (++n > 100000) {
			*truncated = true;
			break;
		}
		it = auth_item(items, t, k && strstr(k, "VIEW") ? "view" : "table");
		if (it && s && *s)
			cJSON_AddStringToObject(it, "schema", s);
	}
	if (n == 0 && c->path[0]) {
		auth_fail(c, AUTH_E_NOTFOUND, "schema \"%s\" has no tables or does not exist",
		    c->path);
		goto out;
	}
	rc = 0;
out:
	od_close(&o);
	return rc;
}

static int
od_table_schema(struct auth_ctx *c, struct od *o)
{
	const char *schema = auth_ds_str(c, "schema", false, NULL);
	const char *table = auth_ds_str(c, "table", true, NULL);
	char name[256];
	SQLSMALLINT dt;
	SQLLEN ind, nullable;
	int n = 0;

	if (table == NULL || c->code != AUTH_OK)
		return -1;
	if (!SQL_SUCCEEDED(SQLColumns(o->st, NULL, 0, schema ? (SQLCHAR *)schema : NULL,
	    schema ? SQL_NTS : 0, (SQLCHAR *)table, SQL_NTS, (SQLCHAR *)"%", SQL_NTS)))
		return od_fail(c, SQL_HANDLE_STMT, o->st, "reading the table's columns");
	while (SQL_SUCCEEDED(SQLFetch(o->st))) {
		if (od_str(o->st, 4, name, sizeof name) == NULL)
			continue;
		dt = 0;
		nullable = SQL_NULLABLE_UNKNOWN;
		SQLGetData(o->st, 5, SQL_C_SSHORT, &dt, 0, &ind);
		SQLGetData(o->st, 11, SQL_C_SLONG, &nullable, 0, &ind);
		auth_rows_add_column(c->rows, name, od_type(dt), nullable != SQL_NO_NULLS);
		n++;
	}
	if (n == 0)
		return auth_fail(c, AUTH_E_NOTFOUND, "no table or view named \"%s\"%s%s", table,
		    schema ? " in schema " : "", schema ? schema : "");
	return 0;
}

/* ---- the guard: memory budget and deadline inside the driver ---------------
 *
 * A driver reads a statement's answer itself, and many (psqlODBC by default)
 * buffer all of it before SQLExecDirect returns, whatever SQL_ATTR_MAX_ROWS
 * says. So while a statement runs, a guard thread watches the driver's own
 * socket, found exactly by asking the server for the connection's client and
 * server ports (PostgreSQL and MySQL/MariaDB) and matching them against this
 * process's sockets. Past the request's memory budget of bytes received, or
 * 2 s after the deadline's SQLCancel, it shuts the socket down: the driver's
 * read fails, the statement ends, and od_close frees what it held. The guard
 * works on a dup() of the socket, so the descriptor it acts on can never be
 * another one that reused the number. Other DBMSs, or a connection through a
 * Unix socket: no guard (the query timeout and SQLCancel still apply). */

struct od_guard {
	struct auth_ctx *c;
	SQLHSTMT st;
	int fd;			/* our dup of the driver's socket; -1: no guard */
	unsigned long long base;
	pthread_t th;
	atomic_int done;
	atomic_int tripped;	/* 1: budget, 2: deadline */
	bool whole;		/* a copy: no budget for the whole answer */
};

static bool
od_sock_rx(int fd, unsigned long long *rx)
{
	struct tcp_info ti;
	socklen_t l = sizeof ti;

	memset(&ti, 0, sizeof ti);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l) != 0 ||
	    l < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received)
		return false;
	*rx = ti.tcpi_bytes_received;
	return true;
}

static int
od_sock_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return -1;
}

/* This process's one TCP socket with these local and peer ports, dup'ed;
 * -1 when there is none or more than one. */
static int
od_find_socket(int lport, int pport)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int found = -1, n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		struct sockaddr_storage a, b;
		socklen_t al = sizeof a, bl = sizeof b;
		struct stat st;
		int fd = atoi(e->d_name);

		if (e->d_name[0] < '0' || e->d_name[0] > '9' || fd == dirfd(d))
			continue;
		if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
			continue;
		if (getsockname(fd, (struct sockaddr *)&a, &al) != 0 ||
		    getpeername(fd, (struct sockaddr *)&b, &bl) != 0)
			continue;
		if (od_sock_port(&a) == lport && od_sock_port(&b) == pport) {
			found = fd;
			n++;
		}
	}
	closedir(d);
	return n == 1 ? fcntl(found, F_DUPFD_CLOEXEC, 0) : -1;
}

/* The driver's socket, when the DBMS can name the connection's ports. */
static int
od_driver_socket(struct od *o)
{
	SQLCHAR name[128] = "", lp[32] = "", pp[32] = "";
	SQLSMALLINT l = 0;
	SQLLEN i1 = 0, i2 = 0;
	const char *sql = NULL;
	int fd = -1;

	SQLGetInfo(o->dbc, SQL_DBMS_NAME, name, sizeof name, &l);
	if (strstr((const char *)name, "PostgreSQL"))
		sql = "SELECT inet_client_port(), inet_server_port()";
	else if (strstr((const char *)name, "MySQL") || strstr((const char *)name, "MariaDB"))
		sql = "SELECT SUBSTRING_INDEX(host, ':', -1), @@port FROM "
		    "information_schema.processlist WHERE id = CONNECTION_ID()";
	if (sql == NULL)
		return -1;
	if (SQL_SUCCEEDED(SQLExecDirect(o->st, (SQLCHAR *)sql, SQL_NTS)) &&
	    SQL_SUCCEEDED(SQLFetch(o->st)) &&
	    SQL_SUCCEEDED(SQLGetData(o->st, 1, SQL_C_CHAR, lp, sizeof lp, &i1)) &&
	    SQL_SUCCEEDED(SQLGetData(o->st, 2, SQL_C_CHAR, pp, sizeof pp, &i2)) &&
	    i1 != SQL_NULL_DATA && i2 != SQL_NULL_DATA && atoi((char *)lp) > 0)
		fd = od_find_socket(atoi((char *)lp), atoi((char *)pp));
	SQLFreeStmt(o->st, SQL_CLOSE);
	return fd;
}

static void *
od_guard_run(void *arg)
{
	struct od_guard *g = arg;
	struct timespec tick = { 0, 5 * 1000 * 1000 };
	int stopped_ticks = -1;

	while (!atomic_load(&g->done)) {
		unsigned long long rx;

		nanosleep(&tick, NULL);
		if (g->c->policy.mem_limit > 0 && !g->whole && od_sock_rx(g->fd, &rx) &&
		    rx - g->base > g->c->policy.mem_limit) {
			atomic_store(&g->tripped, 1);
			shutdown(g->fd, SHUT_RDWR);
			break;
		}
		if (auth_should_stop(g->c)) {
			if (stopped_ticks < 0) {
				SQLCancel(g->st);	/* allowed from another thread */
				stopped_ticks = 0;
			} else if (++stopped_ticks >= 400) {	/* 2 s later */
				atomic_store(&g->tripped, 2);
				shutdown(g->fd, SHUT_RDWR);
				break;
			}
		}
	}
	return NULL;
}

static void
od_guard_start(struct od_guard *g, struct auth_ctx *c, struct od *o, bool whole)
{
	memset(g, 0, sizeof *g);
	g->c = c;
	g->whole = whole;
	g->st = o->st;
	g->fd = od_driver_socket(o);
	if (g->fd >= 0 && (!od_sock_rx(g->fd, &g->base) ||
	    pthread_create(&g->th, NULL, od_guard_run, g) != 0)) {
		close(g->fd);
		g->fd = -1;
	}
}

/* Stops the guard; returns what it did (0 nothing, 1 budget, 2 deadline). */
static int
od_guard_stop(struct od_guard *g)
{
	if (g->fd < 0)
		return 0;
	atomic_store(&g->done, 1);
	pthread_join(g->th, NULL);
	close(g->fd);
	g->fd = -1;
	return atomic_load(&g->tripped);
}

/* The failure of a statement the guard may have stopped. */
static int
od_stmt_fail(struct auth_ctx *c, struct od_guard *g, struct od *o, const char *what)
{
	int t = od_guard_stop(g);

	if (t == 1)
		return auth_fail_budget(c, "the ODBC answer");
	if (t == 2)
		return auth_fail_timeout(c, what);
	return od_fail(c, SQL_HANDLE_STMT, o->st, what);
}

/* The SELECT of a Table dataset, or the Query (checked by auth_guard_sql
 * on MySQL/MariaDB drivers); NULL after auth_fail. *sql is what to free. */
static const char *
od_statement(struct auth_ctx *c, struct od *o, char **sql)
{
	const char *q;

	*sql = NULL;
	if (strcmp(c->dataset_type, "Table") == 0) {
		const char *schema = auth_ds_str(c, "schema", false, NULL);
		const char *table = auth_ds_str(c, "table", true, NULL);
		size_t l;

		if (table == NULL || c->code != AUTH_OK)
			return NULL;
		if (strchr(table, '"') || (schema && strchr(schema, '"'))) {
			auth_fail(c, AUTH_E_INVALID, "dataset.table and dataset.schema must not contain "
			    "double quotes for ODBC stores");
			return NULL;
		}
		l = strlen(table) + (schema ? strlen(schema) : 0) + 32;
		if ((*sql = malloc(l)) == NULL) {
			auth_fail(c, AUTH_E_INTERNAL, "out of memory");
			return NULL;
		}
		snprintf(*sql, l, "SELECT * FROM %s%s%s\"%s\"", schema ? "\"" : "", schema ? schema : "",
		    schema ? "\"." : "", table);
		return *sql;
	}
	if ((q = auth_ds_str(c, "query", true, NULL)) == NULL)
		return NULL;
	if (o->mysql) {
		char why[256];

		if (auth_guard_sql(q, why, sizeof why) != 0) {
			auth_fail(c, AUTH_E_READONLY, "%s", why);
			return NULL;
		}
	}
	return q;
}

/* Runs q under the guard (whole: a copy's); its number of columns, or -1
 * after auth_fail. A statement without rows is not a read: it is refused,
 * and nothing is committed (od_close rolls back). need: who needs rows (with
 * its verb), for the message. */
static SQLSMALLINT
od_execute(struct auth_ctx *c, struct od_guard *g, struct od *o, const char *q, bool whole,
    const char *need)
{
	SQLSMALLINT ncols = 0;
	SQLRETURN r;

	od_guard_start(g, c, o, whole);
	r = SQLExecDirect(o->st, (SQLCHAR *)q, SQL_NTS);
	if (!SQL_SUCCEEDED(r) && r != SQL_NO_DATA) {
		od_stmt_fail(c, g, o, "the query");
		return -1;
	}
	SQLNumResultCols(o->st, &ncols);
	if (ncols <= 0) {
		auth_fail(c, AUTH_E_READONLY, "dataset.query returns no rows, so it is not a read: "
		    "authoring is read-only and rolled it back; %s a query that reads rows", need);
		return -1;
	}
	return ncols;
}

static int
od_run(struct auth_ctx *c, bool preview)
{
	struct od o;
	struct od_guard g = { .fd = -1 };
	char *sql = NULL, *buf = NULL;
	const char *q;
	SQLSMALLINT ncols = 0, i;
	SQLRETURN r;
	int rc = -1;

	if (od_connect(c, &o) != 0)
		return -1;
	if (!preview && strcmp(c->dataset_type, "Table") == 0) {
		rc = od_table_schema(c, &o);
		goto out;
	}
	if ((q = od_statement(c, &o, &sql)) == NULL)
		goto out;
	SQLSetStmtAttr(o.st, SQL_ATTR_MAX_ROWS, (SQLPOINTER)(SQLULEN)(preview ? c->limit + 1 : 1), 0);
	/* values are cut at AUTH_VALUE_MAX and read through a buffer of that
	 * size; drivers that honour it need not hold more of a long value */
	SQLSetStmtAttr(o.st, SQL_ATTR_MAX_LENGTH, (SQLPOINTER)(SQLULEN)(AUTH_VALUE_MAX + 1), 0);
	if ((ncols = od_execute(c, &g, &o, q, false, "preview and schema need")) < 0)
		goto out;
	for (i = 1; i <= ncols; i++) {
		SQLCHAR name[256] = "";
		SQLSMALLINT nl, dt, dd, nul;
		SQLULEN sz;

		SQLDescribeCol(o.st, (SQLUSMALLINT)i, name, sizeof name, &nl, &dt, &sz, &dd, &nul);
		auth_rows_add_column(c->rows, (const char *)name, od_type(dt),
		    preview ? -1 : nul != SQL_NO_NULLS);
	}
	if (!preview) {
		rc = 0;
		goto out;
	}
	buf = malloc(AUTH_VALUE_MAX + 16);
	if (buf == NULL)
		goto out;
	while ((r = SQLFetch(o.st)) != SQL_NO_DATA) {
		if (!SQL_SUCCEEDED(r)) {
			od_stmt_fail(c, &g, &o, "reading the rows");
			goto out;
		}
		if (!auth_rows_want(c->rows)) {
			auth_rows_set_truncated(c->rows);
			break;
		}
		auth_rows_begin(c->rows);
		for (i = 1; i <= ncols; i++) {
			const char *t = auth_rows_col_type(c->rows, i - 1);
			bool bin = strcmp(t, "ByteArray") == 0;
			SQLLEN ind = 0;

			r = SQLGetData(o.st, (SQLUSMALLINT)i, bin ? SQL_C_BINARY : SQL_C_CHAR, buf,
			    AUTH_VALUE_MAX + 1, &ind);
			if (!SQL_SUCCEEDED(r) || ind == SQL_NULL_DATA) {
				auth_rows_null(c->rows);
			} else {
				size_t len = ind == SQL_NO_TOTAL || ind > AUTH_VALUE_MAX ? AUTH_VALUE_MAX + (bin ? 0 : 1) :
				    (size_t)ind;

				if (bin) {
					auth_rows_bytes(c->rows, buf, len);
				} else {
					if (len > AUTH_VALUE_MAX)
						len = strlen(buf);	/* cut by the driver */
					if (strcmp(t, "DateTime") == 0 && len >= 19 && buf[10] == ' ')
						buf[10] = 'T';
					auth_rows_text(c->rows, buf, len);
				}
			}
		}
		auth_rows_end(c->rows);
	}
	rc = 0;
out:
	od_guard_stop(&g);
	free(buf);
	free(sql);
	od_close(&o);
	return rc;
}

static int
od_schema(struct auth_ctx *c)
{
	return od_run(c, false);
}

static int
od_preview(struct auth_ctx *c)
{
	return od_run(c, true);
}

/* One whole value with SQLGetData, in pieces, into *buf (grown, at most
 * cap bytes for the row): 0, 1 for a null, -1 after auth_fail. */
static int
od_value(struct auth_ctx *c, struct od_guard *g, struct od *o, SQLUSMALLINT col, bool bin,
    char **buf, size_t *size, size_t *used, size_t cap, size_t *len)
{
	size_t start = *used;

	for (;;) {
		SQLLEN ind = 0;
		size_t room, got;
		SQLRETURN r;

		if (*size - *used < 4096) {
			size_t ns = *size * 2;
			char *nb;

			if (ns > cap + 4096)
				ns = cap + 4096;
			if (ns <= *size || *used >= cap)
				return auth_fail_budget(c, "one row of the ODBC answer");
			if ((nb = realloc(*buf, ns)) == NULL)
				return auth_fail(c, AUTH_E_INTERNAL, "out of memory");
			*buf = nb;
			*size = ns;
		}
		room = *size - *used;
		r = SQLGetData(o->st, col, bin ? SQL_C_BINARY : SQL_C_CHAR, *buf + *used,
		    (SQLLEN)room, &ind);
		if (r == SQL_NO_DATA)
			break;
		if (!SQL_SUCCEEDED(r))
			return od_stmt_fail(c, g, o, "reading a value");
		if (ind == SQL_NULL_DATA)
			return 1;
		/* a piece fills the buffer (less the text's terminator) while
		 * more is left (01004); the last piece says its length */
		if (r == SQL_SUCCESS_WITH_INFO && (ind == SQL_NO_TOTAL || (size_t)ind >= room -
		    (bin ? 0 : 1))) {
			got = room - (bin ? 0 : 1);
			*used += got;
			continue;
		}
		got = (size_t)ind;
		*used += got;
		break;
	}
	*len = *used - start;
	return 0;
}

/* The whole Table or Query for a copy job: the connection of every
 * operation (the keyword allowlist, every host checked, read-only session,
 * no autocommit and rolled back), the statement without SQL_ATTR_MAX_ROWS,
 * then SQLFetch and SQLGetData in pieces: a row may hold up to the request
 * memory limit. What the driver itself buffers is the driver's: psqlODBC is
 * given UseDeclareFetch=1 (a cursor, 1,000 rows at a time) unless the
 * connection string sets it. The guard thread cancels at the deadline. */
static int
od_stream(struct auth_ctx *c, const struct auth_stream *s)
{
	struct od o;
	struct od_guard g = { .fd = -1 };
	char *sql = NULL, *buf = NULL, (*names)[256] = NULL;
	const char *q, **np = NULL, **types = NULL, **vals = NULL;
	size_t *vl = NULL, *off = NULL, size = 65536, used, cap;
	int *nullable = NULL, rc = -1, v;
	SQLSMALLINT ncols = 0, i;
	SQLRETURN r;

	cap = c->policy.mem_limit > 0 ? c->policy.mem_limit : (size_t)256 << 20;
	if (od_connect_as(c, &o, true) != 0)
		return -1;
	if ((q = od_statement(c, &o, &sql)) == NULL)
		goto out;
	if ((ncols = od_execute(c, &g, &o, q, true, "a copy needs")) < 0)
		goto out;
	names = calloc((size_t)ncols, sizeof *names);
	np = calloc((size_t)ncols, sizeof *np);
	types = calloc((size_t)ncols, sizeof *types);
	vals = calloc((size_t)ncols, sizeof *vals);
	vl = calloc((size_t)ncols, sizeof *vl);
	off = calloc((size_t)ncols, sizeof *off);
	nullable = calloc((size_t)ncols, sizeof *nullable);
	buf = malloc(size);
	if (!names || !np || !types || !vals || !vl || !off || !nullable || !buf) {
		auth_fail(c, AUTH_E_INTERNAL, "out of memory");
		goto out;
	}
	for (i = 0; i < ncols; i++) {
		SQLSMALLINT nl, dt, dd, nul;
		SQLULEN sz;

		SQLDescribeCol(o.st, (SQLUSMALLINT)(i + 1), (SQLCHAR *)names[i], sizeof names[i], &nl,
		    &dt, &sz, &dd, &nul);
		np[i] = names[i];
		types[i] = od_type(dt);
		nullable[i] = nul == SQL_NO_NULLS ? 0 : nul == SQL_NULLABLE ? 1 : -1;
	}
	if (s->columns(s->arg, (size_t)ncols, np, types, nullable) != 0)
		goto stopped;
	while ((r = SQLFetch(o.st)) != SQL_NO_DATA) {
		if (!SQL_SUCCEEDED(r)) {
			od_stmt_fail(c, &g, &o, "reading the rows");
			goto out;
		}
		used = 0;
		for (i = 0; i < ncols; i++) {
			bool bin = strcmp(types[i], "ByteArray") == 0;

			off[i] = used;
			v = od_value(c, &g, &o, (SQLUSMALLINT)(i + 1), bin, &buf, &size, &used, cap,
			    &vl[i]);
			if (v < 0)
				goto out;
			off[i] = v == 1 ? (size_t)-1 : off[i];
			if (v == 0 && !bin) {
				buf[off[i] + vl[i]] = '\0';
				used++;		/* its terminator, so the next one starts after */
			}
		}
		for (i = 0; i < ncols; i++) {
			vals[i] = off[i] == (size_t)-1 ? NULL : buf + off[i];
			if (vals[i] != NULL && strcmp(types[i], "DateTime") == 0 && vl[i] >= 19 &&
			    vals[i][10] == ' ')
				buf[off[i] + 10] = 'T';
		}
		if (s->row(s->arg, (size_t)ncols, vals, vl) != 0 || auth_should_stop(c))
			goto stopped;
	}
	rc = 0;
	goto out;
stopped:
	SQLCancel(o.st);
	if (c->code == AUTH_OK)
		auth_fail(c, AUTH_E_SHUTDOWN, "the copy was stopped");
out:
	od_guard_stop(&g);
	free(buf);
	free(sql);
	free(names);
	free(np);
	free(types);
	free(vals);
	free(vl);
	free(off);
	free(nullable);
	od_close(&o);
	return rc;
}

static const char *const od_datasets[] = { "Table", "Query", NULL };

const struct auth_store conn_odbc_store = {
	.type = "Odbc",
	.datasets = od_datasets,
	.test = od_test,
	.browse = od_browse,
	.schema = od_schema,
	.preview = od_preview,
	.stream = od_stream,
};
