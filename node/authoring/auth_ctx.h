/* auth_ctx: what a connector sees of one authoring operation while it runs
 * on a worker thread: the request's linked service and dataset, the policy
 * snapshot (security rules of the spec, section 6), the deadline and stop
 * flag, the error it reports, and the result it builds.
 *
 * Connectors (connectors/, one file per store) implement struct auth_store. They never
 * touch libevent or the node; everything they need is in here. */
#ifndef SHIR_AUTH_CTX_H
#define SHIR_AUTH_CTX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "common/shir_err.h"

struct cJSON;
struct auth_rows;

enum auth_op { AUTH_OP_TEST = 0, AUTH_OP_BROWSE, AUTH_OP_SCHEMA, AUTH_OP_PREVIEW };

/* The error codes of the spec's table, section 5. */
enum auth_code {
	AUTH_OK = 0,
	AUTH_E_INVALID,		/* 400 InvalidRequest */
	AUTH_E_UNSUPPORTED,	/* 400 UnsupportedStoreType */
	AUTH_E_CREDENTIAL,	/* 400 CredentialNotFound */
	AUTH_E_PATH,		/* 403 PathNotAllowed */
	AUTH_E_LOCAL,		/* 403 LocalMachineAccessDenied */
	AUTH_E_READONLY,	/* 403 ReadOnlyViolation */
	AUTH_E_NOTFOUND,	/* 404 NotFound */
	AUTH_E_TOOLARGE,	/* 413 ResultTooLarge */
	AUTH_E_AUTH,		/* 422 AuthenticationFailed */
	AUTH_E_UNREACHABLE,	/* 422 StoreUnreachable */
	AUTH_E_STORE,		/* 422 StoreError */
	AUTH_E_BUSY,		/* 429 Busy */
	AUTH_E_SELFCONTAINED,	/* 501 NotSupportedInSelfContainedMode */
	AUTH_E_SHUTDOWN,	/* 503 ShuttingDown */
	AUTH_E_INTERNAL,	/* 500 Internal */
	AUTH_E_MAX
};
const char *auth_code_name(enum auth_code c);
int auth_code_http(enum auth_code c);

/* Limits (docs/authoring.md). */
#define AUTH_PREVIEW_DEFAULT 100
#define AUTH_PREVIEW_MAX 1000
#define AUTH_BROWSE_DEFAULT 1000
#define AUTH_BROWSE_MAX 10000
#define AUTH_VALUE_MAX 4096		/* bytes of one value before it is cut */
#define AUTH_TRUNC_MARKER "...(truncated)"
#define AUTH_RESPONSE_MAX (4 * 1024 * 1024)	/* bytes of rows in one answer */
#define AUTH_COLUMNS_MAX 1024
#define AUTH_FILE_SCAN_MAX (64 * 1024 * 1024)	/* bytes read looking for rows */

/* A snapshot of the node's policy, taken when the request is accepted. */
struct auth_policy {
	bool path_validation;
	char *allowed_folders;	/* colon-separated */
	bool local_machine_access;
	struct proxy_config *proxy;	/* a reference to the node's proxy settings */
	int proxy_connect_timeout;
	size_t mem_limit;	/* bytes: node.request_memory_limit */
};

struct auth_ctx {
	enum auth_op op;
	const char *store_type;
	const struct cJSON *props;	/* linkedService.properties */
	const struct cJSON *dataset;	/* NULL for test/browse */
	const char *dataset_type;
	const char *path;		/* browse path, may be "" */
	int limit;
	struct auth_policy policy;
	struct timespec deadline;	/* CLOCK_MONOTONIC */
	int timeout_s;
	atomic_int stop;		/* set by the loop: deadline passed or shutdown */
	atomic_int *stop_also;		/* NULL, or another flag that stops it (a copy job's) */
	/* secrets resolved on the loop thread (by the credential seam) */
	char *password;
	char *connection_string;
	/* outcome */
	enum auth_code code;
	char msg[1024];
	struct cJSON *result;		/* the success object being built */
	struct auth_rows *rows;		/* preview/schema sink */
};

/* Records the failure (first one wins) and returns -1. */
int auth_fail(struct auth_ctx *c, enum auth_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Milliseconds left before the deadline (0 when passed); 1 when the loop
 * asked to stop. */
long auth_ms_left(const struct auth_ctx *c);
bool auth_should_stop(const struct auth_ctx *c);
/* Seconds to give a driver's own timeout: min(want, time left), at least 1. */
int auth_secs_for(const struct auth_ctx *c, int want);
/* The standard deadline failure: 422 StoreUnreachable "... timed out ...". */
int auth_fail_timeout(struct auth_ctx *c, const char *what);

/* The memory budget failure: 413 ResultTooLarge naming
 * node.request_memory_limit. what: "a value of the answer", ... */
int auth_fail_budget(struct auth_ctx *c, const char *what);

/* Dataset and property helpers (missing or wrongly typed: 400 naming the field). */
const char *auth_prop_str(struct auth_ctx *c, const char *name, bool required, const char *def);
int auth_prop_int(struct auth_ctx *c, const char *name, int def, int min, int max, int *out);
int auth_prop_bool(struct auth_ctx *c, const char *name, bool def, bool *out);
/* Refuses (400, listing allowed) a linked service property not in allowed
 * (NULL-terminated): settings a store does not document are never passed
 * on, and saying so beats ignoring them. */
int auth_props_only(struct auth_ctx *c, const char *const *allowed);
const char *auth_ds_str(struct auth_ctx *c, const char *name, bool required, const char *def);
int auth_ds_bool(struct auth_ctx *c, const char *name, bool def, bool *out);

/* Security rules (spec section 6). */
/* Local folder path validation: path (absolute) resolved with realpath must
 * lie inside an allowed folder. Fills *real (malloc'd) on success. */
int auth_check_local_path(struct auth_ctx *c, const char *what, const char *path, char **real);
/* Resolves host; refuses loopback and the node's own addresses unless local
 * machine access is on. DNS failure: StoreUnreachable. */
int auth_check_host(struct auth_ctx *c, const char *host);
/* The same, and when the check ran (local machine access off) the first
 * checked address in addr ("" otherwise), so the caller can connect to
 * exactly that address and a second DNS answer cannot differ. */
int auth_check_host_addr(struct auth_ctx *c, const char *host, char *addr, size_t addrlen);
/* Removes from the environment what store client libraries read besides
 * the settings a request gives: every PG* variable (libpq: PGSERVICEFILE,
 * PGPASSFILE, PGSYSCONFDIR, PGSSLKEY, PGHOST ...) and libmariadb's MYSQL_PWD,
 * MYSQL_HOST, MYSQL_TCP_PORT, MYSQL_UNIX_PORT. Logs the names removed. Call
 * once at startup, before threads. */
void auth_env_neutralise(void);
/* Is real (a resolved path) equal to or below dir (also resolved)? */
bool auth_path_inside(const char *real, const char *dir);

/* Success object helpers. */
void auth_result_store(struct auth_ctx *c, const char *product, const char *version);

/* A whole dataset for a copy job (node/copy): the columns once, then every
 * row, with no row, byte or value caps (a preview's limits do not apply); the
 * connector holds one row at a time (c->policy.mem_limit bounds it) and
 * waits while row() runs, so a slow sink pauses the reading. vals[i] is NULL
 * for a null; a ByteArray value is its raw bytes; timestamps are ISO 8601
 * as in a preview. row() returns 0, or non-zero to stop (the connector then
 * cancels the query and returns -1 after auth_fail, or 0 when c->code is
 * already set by the caller). */
struct auth_stream {
	int (*columns)(void *arg, size_t n, const char *const *names, const char *const *types,
	    const int *nullable);
	int (*row)(void *arg, size_t n, const char *const *vals, const size_t *lens);
	void *arg;
};

/* A connector. Each function returns 0 or -1 after auth_fail(). test fills
 * the store object; browse appends to items (and sets *truncated); schema
 * and preview fill c->rows. NULL: the operation is not supported by this
 * store type (400 InvalidRequest). */
struct auth_store {
	const char *type;
	const char *const *datasets;	/* dataset types it accepts, NULL-terminated */
	int (*test)(struct auth_ctx *c);
	int (*browse)(struct auth_ctx *c, struct cJSON *items, bool *truncated);
	int (*schema)(struct auth_ctx *c);
	int (*preview)(struct auth_ctx *c);
	/* copy jobs: the whole dataset (NULL: not streamed yet) */
	int (*stream)(struct auth_ctx *c, const struct auth_stream *s);
};

extern const struct auth_store conn_fs_store;
extern const struct auth_store conn_sqlite_store;
extern const struct auth_store conn_pg_store;
extern const struct auth_store conn_mysql_store;
extern const struct auth_store conn_odbc_store;
extern const struct auth_store conn_http_store;
/* Wraps SQLite's allocator for the per-request heap budget; call once before
 * any SQLite use. -1 when SQLite was already initialised (then only
 * SQLITE_LIMIT_LENGTH bounds a request). */
int conn_sqlite_global_init(void);

/* Json records from any byte source (files, HTTP): pull calls feed with
 * chunks of UTF-8 (last = true on the final one) until feed returns non-zero
 * (1 = enough rows, -1 = error) or the source ends; pull returns 0 or -1
 * after auth_fail. The records' members become the columns, typed by
 * inference; c->rows is filled. Lives in connectors/fs.c. */
typedef int (*auth_feed_fn)(void *feeder, const char *buf, size_t len, bool last);
typedef int (*auth_pull_fn)(void *arg, void *feeder, auth_feed_fn feed);
int conn_json_rows(struct auth_ctx *c, bool lines, auth_pull_fn pull, void *pull_arg,
    const char *what);

/* A copy job's whole text dataset from the same byte sources
 * (connectors/text_stream.c): Json records or delimited text to s, one
 * record held at a time (at most the request memory limit, 64 MiB at
 * most). Json columns: dataset.schema, else the first 100 records' members.
 * Return 0 or -1 after auth_fail. */
int conn_json_stream(struct auth_ctx *c, bool lines, auth_pull_fn pull, void *pull_arg,
    const char *what, const struct auth_stream *s);
int conn_csv_stream(struct auth_ctx *c, char delim, char quote, bool header, auth_pull_fn pull,
    void *pull_arg, const char *what, const struct auth_stream *s);

/* Browse items. */
struct cJSON *auth_item(struct cJSON *items, const char *name, const char *type);

/* HttpServer's proxy: decides for url with the node's proxy settings (the
 * same decision as every other outbound connection: .NET rules, environment,
 * custom, PAC) and sets entry `idx` of the decided list on the curl handle,
 * with the proxy's credentials, auth scheme and CA; `used` gets its URL ("" for
 * none). *proxied tells whether a proxy was set. Returns 0, 1 when the list
 * has no entry idx (every proxy was tried), -1 (after auth_fail) when url
 * cannot be decided. */
int auth_proxy_setup(struct auth_ctx *c, void *curl_handle, const char *url, size_t idx,
    bool *proxied, char *used, size_t ulen);
/* After a transfer that ended with curl_code: when the proxy in use (entry
 * *idx, URL `used`) could not be reached at all, it is marked bad for the
 * node's other connections and the next entry of the list is set up. Returns
 * 1 to try again, 0 when there is nothing to retry (the error stands), -1
 * after auth_fail. */
int auth_proxy_next(struct auth_ctx *c, void *curl_handle, const char *url, int curl_code,
    size_t *idx, bool *proxied, char *used, size_t ulen);

#endif
