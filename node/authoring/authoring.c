#include "config.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <mysql.h>

#include "node/api.h"
#include "node/api_stream.h"
#include "node/authoring/auth_ctx.h"
#include "node/authoring/auth_rows.h"
#include "node/authoring/authoring.h"
#include "common/log.h"
#include "node/node.h"
#include "proxy/proxy.h"
#include "node/proxy_node.h"
#include "node/workpool.h"
#include "common/jsonutil.h"

#define AUTH_LOG_LINES_MAX 5000

struct auth_job;

/* latency buckets of the answers, in ms (shird_authoring_duration_seconds) */
static const long auth_buckets_ms[] = { 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
	30000, 60000 };
#define AUTH_NBUCKETS (sizeof auth_buckets_ms / sizeof auth_buckets_ms[0])

struct auth_metrics {
	unsigned long answers[4][500];		/* by operation and HTTP status (100..599) */
	unsigned long buckets[4][AUTH_NBUCKETS];	/* cumulative per bucket at output */
	unsigned long count[4];
	double sum_s[4];
};

struct authoring {
	struct node *node;
	struct workpool *pool;
	struct auth_metrics m;
	authoring_cred_fn resolve;
	void *resolve_arg;
	struct auth_job *jobs;	/* accepted, done not yet run */
	unsigned long next_id;
	int nthreads;
	int stopping;
};

struct auth_job {
	struct authoring *a;
	struct auth_job *prev, *next;
	unsigned long id;
	struct api_reply *reply;	/* NULL once answered */
	struct event *ev_deadline;
	const struct auth_store *store;
	cJSON *req;
	struct auth_ctx ctx;
	struct timespec t0;
	/* set by the worker */
	int status;
	char *body;
	/* a streamed answer (preview, browse over a channel that takes them):
	 * the worker writes the JSON into out as rows arrive; once out is
	 * full the answer starts leaving (published) and the worker waits for
	 * room, so a peer that stops reading stops the store's row fetch */
	struct api_stream *out;
	int published;		/* loop thread: the reply went with out */
	bool prefix_done;	/* worker: the answer's head is in out */
	int rows_out;		/* worker */
	bool out_failed;	/* worker: a write failed (cancelled) */
};

static const struct auth_store *const auth_stores[] = {
	&conn_fs_store, &conn_sqlite_store, &conn_pg_store, &conn_mysql_store, &conn_odbc_store,
	&conn_http_store,
};

static const char *const auth_op_names[] = { "testConnection", "browse", "schema", "preview" };

static struct authoring *
auth_get(struct node *n)
{
	return node_ext(n, NODE_EXT_AUTHORING);
}

static long
auth_ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)(now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

static void
auth_policy_clear(struct auth_policy *p)
{
	free(p->allowed_folders);
	proxy_config_unref(p->proxy);
	memset(p, 0, sizeof *p);
}

static int
auth_policy_snapshot(struct auth_policy *p, const struct conf *c, struct node *n)
{
#define DUP(f) ((f) ? strdup(f) : NULL)
	p->path_validation = c->local_folder_path_validation;
	p->allowed_folders = DUP(c->allowed_folders);
	p->local_machine_access = c->local_machine_access;
	p->proxy = proxy_node_current(n);	/* NULL only before proxy/ started */
	p->proxy_connect_timeout = c->proxy.connect_timeout;
	p->mem_limit = (size_t)c->request_memory_limit << 20;
#undef DUP
	return (c->allowed_folders && !p->allowed_folders) ? SHIR_ENOMEM : 0;
}

static void
auth_secret_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static void
auth_job_free(struct auth_job *j)
{
	if (j == NULL)
		return;
	if (j->ev_deadline)
		event_free(j->ev_deadline);
	if (j->out != NULL) {
		api_stream_forget_producer(j->out);
		api_stream_cancel(j->out);	/* a late reader sees the end it got */
		api_stream_unref(j->out);
	}
	cJSON_Delete(j->req);
	cJSON_Delete(j->ctx.result);
	auth_rows_free(j->ctx.rows);
	auth_policy_clear(&j->ctx.policy);
	auth_secret_free(j->ctx.password);
	auth_secret_free(j->ctx.connection_string);
	free(j->body);
	free(j);
}

static void
auth_job_unlink(struct auth_job *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else if (j->a->jobs == j)
		j->a->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	j->prev = j->next = NULL;
}

/* Answers a job's request with an error (loop thread), once. */
/* Every answer an operation gets, counted once (loop thread). */
static void
auth_count(struct authoring *a, int op, int status, long ms)
{
	size_t b;

	if (op < 0 || op > 3)
		return;
	if (status >= 100 && status < 600)
		a->m.answers[op][status - 100]++;
	for (b = 0; b < AUTH_NBUCKETS; b++)
		if (ms <= auth_buckets_ms[b]) {
			a->m.buckets[op][b]++;
			break;
		}
	a->m.count[op]++;
	a->m.sum_s[op] += (double)ms / 1000.0;
}

static void
auth_job_answer_error(struct auth_job *j, enum auth_code code, const char *msg)
{
	struct api_reply *r = j->reply;

	if (r == NULL)
		return;
	j->reply = NULL;
	log_info("authoring", "event=authoring.done id=%lu op=%s store=%s status=%d code=%s ms=%ld",
	    j->id, auth_op_names[j->ctx.op], j->store->type, auth_code_http(code),
	    auth_code_name(code), auth_ms_since(&j->t0));
	auth_count(j->a, j->ctx.op, auth_code_http(code), auth_ms_since(&j->t0));
	api_reply_error(r, auth_code_http(code), auth_code_name(code), "%s", msg);
}

static void
auth_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct auth_job *j = arg;
	char msg[256];

	atomic_store(&j->ctx.stop, 1);
	if (j->out != NULL)
		api_stream_cancel(j->out);	/* a worker waiting for room wakes */
	snprintf(msg, sizeof msg, "the %s operation against the %s store timed out after %d s "
	    "(node.operation_timeout); the store did not answer in time", auth_op_names[j->ctx.op],
	    j->store->type, j->ctx.timeout_s);
	auth_job_answer_error(j, AUTH_E_UNREACHABLE, msg);
}

/* The channel cancelled (the sender went away): the worker stops at its next
 * check, a running statement is cancelled (PQcancel, mysql KILL QUERY, ...)
 * as at the deadline; nobody gets the answer. */
static void
auth_on_cancel(void *arg)
{
	struct auth_job *j = arg;

	atomic_store(&j->ctx.stop, 1);
	if (j->out != NULL)
		api_stream_cancel(j->out);
	log_info("authoring", "event=authoring.cancelled id=%lu op=%s store=%s why=%s", j->id,
	    auth_op_names[j->ctx.op], j->store->type, log_q("the caller went away"));
}

static int
auth_item_cmp(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
	const char *nx = cJSON_GetStringValue(cJSON_GetObjectItem(x, "name"));
	const char *ny = cJSON_GetStringValue(cJSON_GetObjectItem(y, "name"));
	int c = strcmp(nx ? nx : "", ny ? ny : "");

	if (c == 0) {
		const char *sx = cJSON_GetStringValue(cJSON_GetObjectItem(x, "schema"));
		const char *sy = cJSON_GetStringValue(cJSON_GetObjectItem(y, "schema"));

		c = strcmp(sx ? sx : "", sy ? sy : "");
	}
	return c;
}

/* Sorts items by name and keeps the first limit. */
static void
auth_items_finish(cJSON *result, cJSON *items, int limit, bool truncated)
{
	int n = cJSON_GetArraySize(items), i;
	cJSON **v, *sorted;

	if (n > 0 && (v = calloc((size_t)n, sizeof *v)) != NULL) {
		cJSON *it = items->child, *next;

		/* unlinked in one walk: cJSON_DetachItemFromArray(i) walks to i
		 * each time, which made a 100,000-entry listing quadratic (tens
		 * of seconds of a worker) */
		for (i = 0; it != NULL && i < n; i++, it = next) {
			next = it->next;
			it->prev = it->next = NULL;
			v[i] = it;
		}
		items->child = NULL;
		n = i;
		qsort(v, (size_t)n, sizeof *v, auth_item_cmp);
		sorted = items;
		for (i = 0; i < n; i++) {
			if (i < limit)
				cJSON_AddItemToArray(sorted, v[i]);
			else
				cJSON_Delete(v[i]), truncated = true;
		}
		free(v);
	}
	cJSON_AddItemToObject(result, "items", items);
	cJSON_AddBoolToObject(result, "truncated", truncated);
}

/* ---- streamed answers (worker thread) ----------------------------------
 * The same bytes as cJSON_PrintUnformatted() of the whole answer, written
 * into j->out piece by piece: the head (the result's members, "columns",
 * then "rows":[), each row as the store returns it, then the tail. */

static int
auth_out(struct auth_job *j, const char *d, size_t n)
{
	if (j->out_failed)
		return -1;
	if (api_stream_write(j->out, d, n) != 0) {
		/* the reader went away, or the deadline passed: the store
		 * operation stops (the connector cancels its query) */
		j->out_failed = true;
		atomic_store(&j->ctx.stop, 1);
		return -1;
	}
	return 0;
}

static int
auth_out_json(struct auth_job *j, const cJSON *v)
{
	char *t = cJSON_PrintUnformatted(v);
	int rc;

	if (t == NULL) {
		j->out_failed = true;
		atomic_store(&j->ctx.stop, 1);
		return -1;
	}
	rc = auth_out(j, t, strlen(t));
	free(t);
	return rc;
}

static int
auth_out_preview_head(struct auth_job *j)
{
	cJSON *cols = cJSON_CreateObject();
	char *a = cJSON_PrintUnformatted(j->ctx.result), *b = NULL;
	int rc = -1;

	j->prefix_done = true;
	if (cols != NULL && a != NULL && auth_rows_columns_json(j->ctx.rows, cols, true) == 0 &&
	    (b = cJSON_PrintUnformatted(cols)) != NULL) {
		size_t la = strlen(a), lb = strlen(b);

		/* "{...}" and "{"columns":[...]}" make {...,"columns":[...],"rows":[ */
		if (la > 2 && lb > 2 && auth_out(j, a, la - 1) == 0 && auth_out(j, ",", 1) == 0 &&
		    auth_out(j, b + 1, lb - 2) == 0 && auth_out(j, ",\"rows\":[", 9) == 0)
			rc = 0;
	}
	if (rc != 0 && !j->out_failed) {
		j->out_failed = true;	/* out of memory */
		atomic_store(&j->ctx.stop, 1);
	}
	cJSON_Delete(cols);
	free(a);
	free(b);
	return rc;
}

/* auth_rows' sink: a finished preview row leaves now. */
static int
auth_sink_row(void *arg, struct auth_rows *r, cJSON *row)
{
	struct auth_job *j = arg;
	int rc = -1;

	if ((j->prefix_done || auth_out_preview_head(j) == 0) &&
	    (j->rows_out == 0 || auth_out(j, ",", 1) == 0))
		rc = auth_out_json(j, row);
	j->rows_out++;
	cJSON_Delete(row);
	return rc;
}

/* An object member by member, its arrays element by element (a browse
 * answer: the listing is not printed whole). */
static int
auth_out_object(struct auth_job *j, const cJSON *o)
{
	const cJSON *m, *e;
	int rc = auth_out(j, "{", 1);

	for (m = o->child; m != NULL && rc == 0; m = m->next) {
		cJSON *k = cJSON_CreateString(m->string ? m->string : "");

		if (k == NULL) {
			j->out_failed = true;	/* out of memory */
			atomic_store(&j->ctx.stop, 1);
			return -1;
		}
		rc = (m == o->child ? 0 : auth_out(j, ",", 1));
		if (rc == 0)
			rc = auth_out_json(j, k);
		cJSON_Delete(k);
		if (rc == 0)
			rc = auth_out(j, ":", 1);
		if (rc != 0 || !cJSON_IsArray(m)) {
			if (rc == 0)
				rc = auth_out_json(j, m);
			continue;
		}
		rc = auth_out(j, "[", 1);
		for (e = m->child; e != NULL && rc == 0; e = e->next)
			rc = (e == m->child ? 0 : auth_out(j, ",", 1)) == 0 ? auth_out_json(j, e) : -1;
		if (rc == 0)
			rc = auth_out(j, "]", 1);
	}
	return rc == 0 ? auth_out(j, "}", 1) : -1;
}

/* The end of a streamed job: a success writes the rest; an answer that
 * never filled the pipe is taken back whole (j->body, answered as
 * today, with its length); one that started leaving ends in the pipe (a
 * failure resets the stream). */
static void
auth_out_finish(struct auth_job *j)
{
	struct auth_ctx *c = &j->ctx;
	int ok = c->code == AUTH_OK && !j->out_failed;

	if (ok && c->op == AUTH_OP_PREVIEW) {
		char tail[40];

		if (!j->prefix_done)
			auth_out_preview_head(j);
		snprintf(tail, sizeof tail, "],\"truncated\":%s}",
		    auth_rows_truncated(c->rows) ? "true" : "false");
		auth_out(j, tail, strlen(tail));
	} else if (ok) {
		auth_out_object(j, c->result);
	}
	ok = c->code == AUTH_OK && !j->out_failed;
	if (!api_stream_started(j->out)) {
		/* all of it is in the pipe (at most its capacity) */
		size_t n = api_stream_buffered(j->out), got = 0, k;
		char *b = malloc(n + 1);
		int end;

		while (b != NULL && got < n &&
		    (k = api_stream_read(j->out, b + got, n - got, &end)) > 0)
			got += k;
		if (ok && b != NULL) {
			b[got] = '\0';
			j->body = b;
			j->status = 200;
		} else {
			free(b);
			if (ok)
				auth_fail(c, AUTH_E_INTERNAL, "out of memory");
		}
	} else if (ok) {
		j->status = 200;	/* it left through the pipe */
	}
	if (!ok && c->code == AUTH_OK)
		auth_fail(c, AUTH_E_INTERNAL, "the answer was cancelled while it was being sent");
	api_stream_end(j->out, !ok);
}

/* Worker thread: runs the operation and serialises the answer. */
static void
auth_run(void *arg)
{
	struct auth_job *j = arg;
	struct auth_ctx *c = &j->ctx;
	const struct auth_store *s = j->store;
	struct timespec t0;
	cJSON *items = NULL;
	bool truncated = false;
	int rc = -1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (auth_should_stop(c)) {
		auth_fail_timeout(c, "waiting for a worker");
		goto out;
	}
	c->result = cJSON_CreateObject();
	if (c->result == NULL || cJSON_AddStringToObject(c->result, "status", "Succeeded") == NULL) {
		auth_fail(c, AUTH_E_INTERNAL, "out of memory");
		goto out;
	}
	switch (c->op) {
	case AUTH_OP_TEST:
		rc = s->test(c);
		if (rc == 0)
			cJSON_AddNumberToObject(c->result, "durationMs", (double)auth_ms_since(&t0));
		break;
	case AUTH_OP_BROWSE:
		items = cJSON_CreateArray();
		if (items == NULL) {
			auth_fail(c, AUTH_E_INTERNAL, "out of memory");
			break;
		}
		rc = s->browse(c, items, &truncated);
		if (rc == 0) {
			auth_items_finish(c->result, items, c->limit, truncated);
			items = NULL;
		}
		break;
	case AUTH_OP_SCHEMA:
	case AUTH_OP_PREVIEW:
		c->rows = auth_rows_new(c->limit, AUTH_RESPONSE_MAX);
		if (c->rows == NULL) {
			auth_fail(c, AUTH_E_INTERNAL, "out of memory");
			break;
		}
		if (j->out != NULL && c->op == AUTH_OP_PREVIEW)
			auth_rows_set_sink(c->rows, auth_sink_row, j);
		rc = c->op == AUTH_OP_SCHEMA ? s->schema(c) : s->preview(c);
		if (rc == 0 && j->out_failed && c->code == AUTH_OK)
			rc = auth_fail(c, AUTH_E_INTERNAL, "the answer was cancelled while it was being "
			    "sent");
		if (rc == 0 && j->out == NULL &&
		    auth_rows_to_json(c->rows, c->result, c->op == AUTH_OP_PREVIEW) != 0)
			rc = auth_fail(c, AUTH_E_INTERNAL, "out of memory");
		break;
	}
	if (rc != 0 && c->code == AUTH_OK)
		auth_fail(c, AUTH_E_INTERNAL, "the %s connector failed without saying why", s->type);
out:
	cJSON_Delete(items);
	if (j->out != NULL) {
		auth_out_finish(j);
	} else if (c->code == AUTH_OK) {
		j->status = 200;
		j->body = cJSON_PrintUnformatted(c->result);
	}
	if (c->code != AUTH_OK) {
		cJSON *o = cJSON_CreateObject(), *e = cJSON_CreateObject();

		if (o && e) {
			cJSON_AddStringToObject(o, "status", "Failed");
			cJSON_AddStringToObject(e, "code", auth_code_name(c->code));
			cJSON_AddStringToObject(e, "message", c->msg);
			cJSON_AddItemToObject(o, "error", e);
			e = NULL;
			j->body = cJSON_PrintUnformatted(o);
		}
		cJSON_Delete(o);
		cJSON_Delete(e);
		j->status = auth_code_http(c->code);
	}
	cJSON_Delete(c->result);
	c->result = NULL;
	auth_rows_free(c->rows);
	c->rows = NULL;
}

/* Loop thread: the worker filled the pipe; the answer starts leaving now
 * (200; the channel reads the pipe as its peer takes the bytes). */
static void
auth_on_full(void *arg)
{
	struct auth_job *j = arg;
	struct api_reply *r = j->reply;

	if (r == NULL) {
		api_stream_cancel(j->out);	/* answered already (the deadline) */
		return;
	}
	j->reply = NULL;
	j->published = 1;
	log_info("authoring", "event=authoring.streaming id=%lu op=%s store=%s ms=%ld", j->id,
	    auth_op_names[j->ctx.op], j->store->type, auth_ms_since(&j->t0));
	api_reply_stream(r, 200, "application/json", j->out);
}

/* Loop thread: the pool finished (ran) or dropped (!ran) the job. */
static void
auth_done(void *arg, int ran)
{
	struct auth_job *j = arg;
	struct api_reply *r = j->reply;

	auth_job_unlink(j);
	if (!ran) {
		auth_job_answer_error(j, AUTH_E_SHUTDOWN,
		    "the node is shutting down and did not start this operation; retry on another node");
	} else if (r != NULL) {
		j->reply = NULL;
		log_info("authoring", "event=authoring.done id=%lu op=%s store=%s status=%d code=%s ms=%ld",
		    j->id, auth_op_names[j->ctx.op], j->store->type, j->status,
		    auth_code_name(j->ctx.code), auth_ms_since(&j->t0));
		auth_count(j->a, j->ctx.op, j->body ? j->status : 500, auth_ms_since(&j->t0));
		if (j->body == NULL)
			api_reply_error(r, 500, "Internal", "out of memory serialising the answer");
		else
			api_reply_send(r, j->status, "application/json", j->body, strlen(j->body));
	} else if (j->published) {
		/* the answer left as a stream: complete, or cut (the reader
		 * went away, the deadline passed, the store failed midway) */
		int ok = j->ctx.code == AUTH_OK;

		log_info("authoring", "event=authoring.done id=%lu op=%s store=%s status=%d code=%s "
		    "ms=%ld streamed=%s rows=%d", j->id, auth_op_names[j->ctx.op], j->store->type,
		    ok ? 200 : j->status, auth_code_name(j->ctx.code), auth_ms_since(&j->t0),
		    ok ? "complete" : "cut", j->rows_out);
		auth_count(j->a, j->ctx.op, ok ? 200 : j->status, auth_ms_since(&j->t0));
	} else {
		log_debug("authoring", "event=authoring.late id=%lu ms=%ld reason=\"answered before the "
		    "store call returned\"", j->id, auth_ms_since(&j->t0));
	}
	auth_job_free(j);
}

/* ---- request validation (loop thread) --------------------------------- */

static const struct auth_store *
auth_find_store(const char *type)
{
	size_t i;

	for (i = 0; i < sizeof auth_stores / sizeof auth_stores[0]; i++)
		if (strcmp(auth_stores[i]->type, type) == 0)
			return auth_stores[i];
	return NULL;
}

/* A secret property: a string, or a CredentialReference. */
static int
auth_secret(struct authoring *a, const cJSON *props, const char *name, char **out,
    enum auth_code *code, char *msg, size_t msgsz)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(props, name);
	const cJSON *t, *n;
	struct shir_error err;
	int rc;

	*out = NULL;
	if (v == NULL || cJSON_IsNull(v))
		return 0;
	if (cJSON_IsString(v)) {
		*out = strdup(v->valuestring);
		return *out ? 0 : (*code = AUTH_E_INTERNAL, snprintf(msg, msgsz, "out of memory"), -1);
	}
	t = cJSON_GetObjectItemCaseSensitive(v, "type");
	n = cJSON_GetObjectItemCaseSensitive(v, "name");
	if (!cJSON_IsObject(v) || !cJSON_IsString(t) ||
	    strcmp(t->valuestring, "CredentialReference") != 0) {
		*code = AUTH_E_INVALID;
		snprintf(msg, msgsz, "linkedService.properties.%s must be a string or "
		    "{\"type\": \"CredentialReference\", \"name\": NAME}", name);
		return -1;
	}
	if (!cJSON_IsString(n) || !*n->valuestring) {
		*code = AUTH_E_INVALID;
		snprintf(msg, msgsz, "linkedService.properties.%s.name is required", name);
		return -1;
	}
	if (a->resolve == NULL) {
		*code = AUTH_E_CREDENTIAL;
		snprintf(msg, msgsz, "no credential named \"%.200s\" is stored on this node (this build "
		    "has no credential store yet: give the secret inline)", n->valuestring);
		return -1;
	}
	shir_error_clear(&err);
	rc = a->resolve(a->resolve_arg, n->valuestring, out, &err);
	if (rc == SHIR_ENOENT) {
		*code = AUTH_E_CREDENTIAL;
		snprintf(msg, msgsz, "no credential named \"%.200s\" is stored on this node; store it "
		    "there first", n->valuestring);
		return -1;
	}
	if (rc != 0) {
		*code = AUTH_E_INTERNAL;
		snprintf(msg, msgsz, "cannot read credential \"%.200s\": %.200s", n->valuestring,
		    err.msg);
		return -1;
	}
	return 0;
}

static void
auth_handle(struct api_reply *r, const struct api_request *rq, struct authoring *a, enum auth_op op)
{
	const struct conf *conf = node_conf(a->node);
	struct auth_job *j = NULL;
	const cJSON *ls, *lt, *props, *ds = NULL, *dt = NULL, *lim, *path = NULL;
	enum auth_code code = AUTH_E_INVALID;
	char msg[512] = "";
	struct timeval tv;
	int rc;

	if (a->stopping) {
		api_reply_error(r, 503, "ShuttingDown", "the node is shutting down; retry on another node");
		return;
	}
	j = calloc(1, sizeof *j);
	if (j == NULL) {
		api_reply_error(r, 500, "Internal", "out of memory");
		return;
	}
	j->a = a;
	j->ctx.op = op;
	clock_gettime(CLOCK_MONOTONIC, &j->t0);
	j->req = cJSON_ParseWithLength(rq->body, rq->body_len);
	if (j->req == NULL || !cJSON_IsObject(j->req)) {
		snprintf(msg, sizeof msg, "the request body must be a JSON object%s",
		    j->req == NULL ? " (it is not valid JSON)" : "");
		goto fail;
	}
	ls = cJSON_GetObjectItemCaseSensitive(j->req, "linkedService");
	if (!cJSON_IsObject(ls)) {
		snprintf(msg, sizeof msg, "linkedService %s", ls ? "must be an object" : "is required");
		goto fail;
	}
	lt = cJSON_GetObjectItemCaseSensitive(ls, "type");
	if (!cJSON_IsString(lt)) {
		snprintf(msg, sizeof msg, "linkedService.type %s", lt ? "must be a string" : "is required");
		goto fail;
	}
	props = cJSON_GetObjectItemCaseSensitive(ls, "properties");
	if (props != NULL && !cJSON_IsObject(props)) {
		snprintf(msg, sizeof msg, "linkedService.properties must be an object");
		goto fail;
	}
	j->store = auth_find_store(lt->valuestring);
	if (j->store == NULL) {
		code = AUTH_E_UNSUPPORTED;
		snprintf(msg, sizeof msg, "linked service type \"%.100s\" is not supported; this node "
		    "supports FileSystem, Sqlite, PostgreSql, MySql, Odbc and HttpServer",
		    lt->valuestring);
		goto fail;
	}
	j->ctx.store_type = j->store->type;
	j->ctx.props = props;
	if (op == AUTH_OP_SCHEMA || op == AUTH_OP_PREVIEW) {
		size_t i;

		ds = cJSON_GetObjectItemCaseSensitive(j->req, "dataset");
		if (!cJSON_IsObject(ds)) {
			snprintf(msg, sizeof msg, "dataset %s", ds ? "must be an object" : "is required");
			goto fail;
		}
		dt = cJSON_GetObjectItemCaseSensitive(ds, "type");
		if (!cJSON_IsString(dt)) {
			snprintf(msg, sizeof msg, "dataset.type %s", dt ? "must be a string" : "is required");
			goto fail;
		}
		for (i = 0; j->store->datasets[i]; i++)
			if (strcmp(j->store->datasets[i], dt->valuestring) == 0)
				break;
		if (j->store->datasets[i] == NULL) {
			code = AUTH_E_UNSUPPORTED;
			snprintf(msg, sizeof msg, "dataset type \"%.100s\" is not supported for %s linked "
			    "services", dt->valuestring, j->store->type);
			goto fail;
		}
		/* the dataset's fields may sit in "properties" (as in Data Factory) */
		if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(ds, "properties")))
			ds = cJSON_GetObjectItemCaseSensitive(ds, "properties");
		j->ctx.dataset = ds;
		j->ctx.dataset_type = dt->valuestring;
	}
	if ((op == AUTH_OP_BROWSE && j->store->browse == NULL) ||
	    (op == AUTH_OP_SCHEMA && j->store->schema == NULL) ||
	    (op == AUTH_OP_PREVIEW && j->store->preview == NULL)) {
		snprintf(msg, sizeof msg, "%s is not supported for %s linked services",
		    auth_op_names[op], j->store->type);
		goto fail;
	}
	lim = cJSON_GetObjectItemCaseSensitive(j->req, "limit");
	if (op == AUTH_OP_PREVIEW || op == AUTH_OP_BROWSE) {
		int max = op == AUTH_OP_PREVIEW ? AUTH_PREVIEW_MAX : AUTH_BROWSE_MAX;

		j->ctx.limit = op == AUTH_OP_PREVIEW ? AUTH_PREVIEW_DEFAULT : AUTH_BROWSE_DEFAULT;
		if (lim != NULL && !cJSON_IsNull(lim)) {
			long long n;

			if (json_whole(lim, 1, max, &n) != 0) {
				snprintf(msg, sizeof msg, "limit must be a whole number from 1 to %d", max);
				goto fail;
			}
			j->ctx.limit = (int)n;
		}
	} else if (op == AUTH_OP_SCHEMA) {
		j->ctx.limit = AUTH_PREVIEW_DEFAULT;	/* rows sampled to infer file types */
	}
	j->ctx.path = "";
	if (op == AUTH_OP_BROWSE) {
		path = cJSON_GetObjectItemCaseSensitive(j->req, "path");
		if (path != NULL && !cJSON_IsNull(path)) {
			if (!cJSON_IsString(path)) {
				snprintf(msg, sizeof msg, "path must be a string");
				goto fail;
			}
			j->ctx.path = path->valuestring;
		}
	}
	if (auth_secret(a, props, "password", &j->ctx.password, &code, msg, sizeof msg) != 0 ||
	    auth_secret(a, props, "connectionString", &j->ctx.connection_string, &code, msg,
		sizeof msg) != 0)
		goto fail;
	if (auth_policy_snapshot(&j->ctx.policy, conf, a->node) != 0) {
		code = AUTH_E_INTERNAL;
		snprintf(msg, sizeof msg, "out of memory");
		goto fail;
	}
	j->ctx.timeout_s = conf->operation_timeout;
	clock_gettime(CLOCK_MONOTONIC, &j->ctx.deadline);
	j->ctx.deadline.tv_sec += conf->operation_timeout;
	j->ev_deadline = evtimer_new(node_base(a->node), auth_on_deadline, j);
	if (j->ev_deadline == NULL) {
		code = AUTH_E_INTERNAL;
		snprintf(msg, sizeof msg, "out of memory");
		goto fail;
	}
	/* preview and browse answers leave as they are produced when the
	 * channel can send them so (self-contained streams) */
	if ((op == AUTH_OP_PREVIEW || op == AUTH_OP_BROWSE) && api_reply_can_stream(r) &&
	    (j->out = api_stream_new(node_base(a->node), API_STREAM_CAP, auth_on_full, j)) == NULL) {
		code = AUTH_E_INTERNAL;
		snprintf(msg, sizeof msg, "out of memory");
		goto fail;
	}
	j->id = ++a->next_id;
	j->reply = r;
	rc = workpool_submit(a->pool, j, auth_run, auth_done);
	if (rc != 0) {
		char ra[16];

		j->reply = NULL;
		if (rc == SHIR_EBUSY) {
			/* an operation takes a few seconds at most in the common case */
			snprintf(ra, sizeof ra, "%d", 1 + workpool_queued(a->pool) / (a->nthreads ? a->nthreads : 1));
			api_reply_header(r, "Retry-After", ra);
			log_info("authoring", "event=authoring.busy op=%s store=%s queued=%d",
			    auth_op_names[op], j->store->type, workpool_queued(a->pool));
			auth_count(a, op, 429, 0);
			api_reply_error(r, 429, "Busy", "the node's job queue is full (%d running, %d "
			    "waiting); retry after %s s", workpool_running(a->pool),
			    workpool_queued(a->pool), ra);
		} else if (rc == SHIR_ECLOSED) {
			api_reply_error(r, 503, "ShuttingDown", "the node is shutting down; retry on "
			    "another node");
		} else {
			api_reply_error(r, 500, "Internal", "cannot queue the operation: %s",
			    shir_strerror(rc));
		}
		auth_job_free(j);
		return;
	}
	/* accepted: the pool calls auth_done exactly once */
	api_reply_on_cancel(r, auth_on_cancel, j);
	j->next = a->jobs;
	if (a->jobs)
		a->jobs->prev = j;
	a->jobs = j;
	tv.tv_sec = conf->operation_timeout;
	tv.tv_usec = 0;
	evtimer_add(j->ev_deadline, &tv);
	log_info("authoring", "event=authoring.request id=%lu op=%s store=%s dataset=%s channel=%d",
	    j->id, auth_op_names[op], j->store->type, dt ? log_q(dt->valuestring) : "-",
	    (int)rq->channel);
	return;
fail:
	log_info("authoring", "event=authoring.refused op=%s code=%s reason=%s", auth_op_names[op],
	    auth_code_name(code), log_q(msg));
	api_reply_error(r, auth_code_http(code), auth_code_name(code), "%s", msg);
	auth_job_free(j);
}

#define AUTH_HANDLER(fn, op) \
	static void fn(struct api_reply *r, const struct api_request *rq, void *ud) \
	{ \
		auth_handle(r, rq, ud, op); \
	}
AUTH_HANDLER(auth_api_test, AUTH_OP_TEST)
AUTH_HANDLER(auth_api_browse, AUTH_OP_BROWSE)
AUTH_HANDLER(auth_api_schema, AUTH_OP_SCHEMA)
AUTH_HANDLER(auth_api_preview, AUTH_OP_PREVIEW)

/* ---- Get IP and Send log ---------------------------------------------- */

static void
auth_api_ip(struct api_reply *r, const struct api_request *rq, void *ud)
{
	struct authoring *a = ud;
	struct ifaddrs *ifs = NULL, *ifa;
	char host[256] = "", ip[INET6_ADDRSTRLEN];
	cJSON *o, *arr;

	if (rq->channel == API_CH_SELF_CONTAINED) {
		api_reply_error(r, 501, "NotSupportedInSelfContainedMode",
		    "Get IP is not available over the self-contained channel");
		return;
	}
	o = cJSON_CreateObject();
	arr = cJSON_CreateArray();
	if (o == NULL || arr == NULL) {
		cJSON_Delete(o), cJSON_Delete(arr);
		api_reply_error(r, 500, "Internal", "out of memory");
		return;
	}
	if (gethostname(host, sizeof host - 1) != 0)
		snprintf(host, sizeof host, "%s", node_name(a->node));
	cJSON_AddStringToObject(o, "status", "Succeeded");
	cJSON_AddStringToObject(o, "nodeName", node_name(a->node));
	cJSON_AddStringToObject(o, "hostName", host);
	if (getifaddrs(&ifs) == 0) {
		for (ifa = ifs; ifa != NULL; ifa = ifa->ifa_next) {
			cJSON *e;
			int fam;

			if (ifa->ifa_addr == NULL)
				continue;
			fam = ifa->ifa_addr->sa_family;
			if (fam != AF_INET && fam != AF_INET6)
				continue;
			if (getnameinfo(ifa->ifa_addr, fam == AF_INET ? sizeof(struct sockaddr_in) :
				sizeof(struct sockaddr_in6), ip, sizeof ip, NULL, 0, NI_NUMERICHOST) != 0)
				continue;
			e = cJSON_CreateObject();
			if (e == NULL)
				break;
			cJSON_AddStringToObject(e, "interface", ifa->ifa_name);
			cJSON_AddStringToObject(e, "family", fam == AF_INET ? "IPv4" : "IPv6");
			cJSON_AddStringToObject(e, "address", ip);
			cJSON_AddBoolToObject(e, "loopback", (ifa->ifa_flags & IFF_LOOPBACK) != 0);
			cJSON_AddItemToArray(arr, e);
		}
		freeifaddrs(ifs);
	}
	cJSON_AddItemToObject(o, "addresses", arr);
	api_reply_json(r, 200, o);
}

struct auth_logs {
	cJSON *lines;
	int n;
};

static void
auth_log_line(const char *line, void *arg)
{
	struct auth_logs *l = arg;
	char *copy = strdup(line);

	if (copy == NULL)
		return;
	log_redact(copy);	/* again: a bundle leaves the machine */
	cJSON_AddItemToArray(l->lines, cJSON_CreateString(copy));
	free(copy);
	l->n++;
}

static void
auth_api_logs(struct api_reply *r, const struct api_request *rq, void *ud)
{
	struct authoring *a = ud;
	struct auth_logs l = { NULL, 0 };
	cJSON *req = NULL, *o, *mx;
	int max = 1000;
	char ts[32];
	time_t now = time(NULL);
	struct tm tm;

	if (rq->channel == API_CH_SELF_CONTAINED) {
		api_reply_error(r, 501, "NotSupportedInSelfContainedMode",
		    "Send log is not available over the self-contained channel");
		return;
	}
	if (rq->body_len > 0) {
		req = cJSON_ParseWithLength(rq->body, rq->body_len);
		if (req == NULL || !cJSON_IsObject(req)) {
			cJSON_Delete(req);
			api_reply_error(r, 400, "InvalidRequest", "the request body must be a JSON object");
			return;
		}
		mx = cJSON_GetObjectItemCaseSensitive(req, "maxLines");
		if (mx != NULL) {
			long long n;

			if (json_whole(mx, 1, AUTH_LOG_LINES_MAX, &n) != 0) {
				cJSON_Delete(req);
				api_reply_error(r, 400, "InvalidRequest",
				    "maxLines must be a whole number from 1 to %d", AUTH_LOG_LINES_MAX);
				return;
			}
			max = (int)n;
		}
		cJSON_Delete(req);
	}
	o = cJSON_CreateObject();
	l.lines = cJSON_CreateArray();
	if (o == NULL || l.lines == NULL) {
		cJSON_Delete(o), cJSON_Delete(l.lines);
		api_reply_error(r, 500, "Internal", "out of memory");
		return;
	}
	log_recent(auth_log_line, &l);
	while (cJSON_GetArraySize(l.lines) > max)
		cJSON_DeleteItemFromArray(l.lines, 0);
	gmtime_r(&now, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
	cJSON_AddStringToObject(o, "status", "Succeeded");
	cJSON_AddStringToObject(o, "nodeName", node_name(a->node));
	cJSON_AddStringToObject(o, "generated", ts);
	cJSON_AddNumberToObject(o, "lineCount", cJSON_GetArraySize(l.lines));
	cJSON_AddItemToObject(o, "lines", l.lines);
	log_info("authoring", "event=authoring.logs lines=%d", cJSON_GetArraySize(l.lines));
	api_reply_json(r, 200, o);
}

/* ---- node hooks ------------------------------------------------------- */

/* The security switches are admin decisions worth a line in the log each
 * time they take effect (spec 6: turning validation off is logged). */
static void
auth_log_security(const struct conf *c, const struct conf *old)
{
	if (old == NULL || old->local_folder_path_validation != c->local_folder_path_validation) {
		if (c->local_folder_path_validation)
			log_info("authoring", "event=security.local_folder_path_validation state=on "
			    "allowed_folders=%s", log_q(c->allowed_folders ? c->allowed_folders : ""));
		else
			log_warn("authoring", "event=security.local_folder_path_validation state=off "
			    "reason=\"disabled by the admin: file stores may use any path shird can read\"");
	}
	if (old == NULL || old->local_machine_access != c->local_machine_access)
		log_write(c->local_machine_access ? LOG_LVL_WARN : LOG_LVL_INFO, "authoring",
		    "event=security.local_machine_access state=%s", c->local_machine_access ? "on" : "off");
}

static void
auth_hook_apply(void *arg, const struct conf *newc, const struct conf *oldc)
{
	struct authoring *a = arg;

	workpool_set_queue_max(a->pool, newc->queue_size);
	auth_log_security(newc, oldc);
}

static void
auth_hook_status(void *arg, cJSON *node_obj)
{
	struct authoring *a = arg;
	cJSON *c = cJSON_AddObjectToObject(node_obj, "concurrency");

	if (c == NULL)
		return;
	cJSON_AddNumberToObject(c, "concurrentJobs", a->nthreads);
	cJSON_AddNumberToObject(c, "queueSize", workpool_queue_max(a->pool));
	cJSON_AddNumberToObject(c, "running", workpool_running(a->pool));
	cJSON_AddNumberToObject(c, "queued", workpool_queued(a->pool));
	cJSON_AddNumberToObject(c, "operationTimeoutSeconds",
	    node_conf(a->node)->operation_timeout);
}

static void
auth_hook_metrics(void *arg, struct evbuffer *out)
{
	struct authoring *a = arg;
	int op, st;
	size_t b;

	evbuffer_add_printf(out, "# HELP shird_authoring_requests_total Authoring operations "
	    "answered, by operation and HTTP status.\n# TYPE shird_authoring_requests_total counter\n");
	for (op = 0; op < 4; op++)
		for (st = 0; st < 500; st++)
			if (a->m.answers[op][st] > 0)
				evbuffer_add_printf(out, "shird_authoring_requests_total{op=\"%s\","
				    "status=\"%d\"} %lu\n", auth_op_names[op], st + 100,
				    a->m.answers[op][st]);
	evbuffer_add_printf(out, "# HELP shird_authoring_duration_seconds Time to answer an "
	    "authoring operation.\n# TYPE shird_authoring_duration_seconds histogram\n");
	for (op = 0; op < 4; op++) {
		unsigned long cum = 0;

		for (b = 0; b < AUTH_NBUCKETS; b++) {
			cum += a->m.buckets[op][b];
			evbuffer_add_printf(out, "shird_authoring_duration_seconds_bucket{op=\"%s\","
			    "le=\"%g\"} %lu\n", auth_op_names[op], auth_buckets_ms[b] / 1000.0, cum);
		}
		evbuffer_add_printf(out, "shird_authoring_duration_seconds_bucket{op=\"%s\","
		    "le=\"+Inf\"} %lu\nshird_authoring_duration_seconds_sum{op=\"%s\"} %.3f\n"
		    "shird_authoring_duration_seconds_count{op=\"%s\"} %lu\n", auth_op_names[op],
		    a->m.count[op], auth_op_names[op], a->m.sum_s[op], auth_op_names[op],
		    a->m.count[op]);
	}
	if (a->pool != NULL)
		evbuffer_add_printf(out, "# HELP shird_workers Worker threads of the authoring pool.\n"
		    "# TYPE shird_workers gauge\nshird_workers %d\n"
		    "# HELP shird_workers_busy Workers running an operation.\n"
		    "# TYPE shird_workers_busy gauge\nshird_workers_busy %d\n"
		    "# HELP shird_queue_depth Operations waiting for a worker.\n"
		    "# TYPE shird_queue_depth gauge\nshird_queue_depth %d\n",
		    workpool_threads(a->pool), workpool_running(a->pool), workpool_queued(a->pool));
}

int
authoring_start(struct node *n, struct shir_error *err)
{
	const struct conf *c = node_conf(n);
	struct authoring *a = calloc(1, sizeof *a);
	struct api *api = node_api(n);
	struct node_hooks h = { "authoring", NULL, auth_hook_apply, auth_hook_status, NULL,
		auth_hook_metrics };
	int rc;

	if (a == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory starting authoring");
	a->node = n;
	/* before any thread exists: store clients must not pick up ambient
	 * settings (service files, password files, key paths) from shird's
	 * environment */
	auth_env_neutralise();
	/* libmariadb initialises itself lazily, which is not thread safe: do
	 * it once before the workers exist */
	if (mysql_library_init(0, NULL, NULL) != 0) {
		free(a);
		return shir_error_set(err, SHIR_EINTERNAL, "cannot initialise the MariaDB client library");
	}
	/* SQLite's allocator counts each request's heap (node.request_memory_limit) */
	conn_sqlite_global_init();
	a->nthreads = c->concurrent_jobs > 0 ? c->concurrent_jobs : workpool_default_threads();
	a->pool = workpool_new(node_base(n), a->nthreads, c->queue_size, err);
	if (a->pool == NULL) {
		mysql_library_end();
		free(a);
		return err->code ? err->code : SHIR_ENOMEM;
	}
	h.arg = a;
	node_set_ext(n, NODE_EXT_AUTHORING, a);
	/* Authoring is what the service (Send) key is for: every channel. Get IP
	 * and Send log are the spec's operations of the service too (the Windows
	 * runtime serves them to it): host name, addresses and the node's own
	 * recent log lines, redacted, never a file the request names; the
	 * self-contained channel gets 501 from the handlers. */
	if ((rc = api_route(api, "POST", "/v1/testConnection", API_FROM_ANY, auth_api_test, a)) != 0 ||
	    (rc = api_route(api, "POST", "/v1/browse", API_FROM_ANY, auth_api_browse, a)) != 0 ||
	    (rc = api_route(api, "POST", "/v1/schema", API_FROM_ANY, auth_api_schema, a)) != 0 ||
	    (rc = api_route(api, "POST", "/v1/preview", API_FROM_ANY, auth_api_preview, a)) != 0 ||
	    (rc = api_route(api, "GET", "/v1/node/ip", API_FROM_ANY, auth_api_ip, a)) != 0 ||
	    (rc = api_route(api, "POST", "/v1/node/logs", API_FROM_ANY, auth_api_logs, a)) != 0 ||
	    (rc = node_add_hooks(n, &h)) != 0)
		return shir_error_set(err, rc, "cannot add the authoring routes: %s", shir_strerror(rc));
	auth_log_security(c, NULL);
	log_info("authoring", "event=authoring.started concurrent_jobs=%d%s queue_size=%d "
	    "operation_timeout_s=%d", a->nthreads, c->concurrent_jobs > 0 ? "" : " (derived)",
	    c->queue_size, c->operation_timeout);
	return 0;
}

void
authoring_shutdown(struct node *n)
{
	struct authoring *a = auth_get(n);

	if (a == NULL)
		return;
	log_info("authoring", "event=authoring.draining running=%d queued=%d",
	    workpool_running(a->pool), workpool_queued(a->pool));
	workpool_close(a->pool);
}

void
authoring_stop(struct node *n)
{
	struct authoring *a = n ? auth_get(n) : NULL;
	struct auth_job *j;

	if (a == NULL)
		return;
	a->stopping = 1;
	workpool_close(a->pool);
	for (j = a->jobs; j != NULL; j = j->next) {
		atomic_store(&j->ctx.stop, 1);
		if (j->out != NULL)
			api_stream_cancel(j->out);	/* a worker waiting for room wakes */
		auth_job_answer_error(j, AUTH_E_SHUTDOWN, "the node is shutting down; the operation "
		    "was stopped; retry on another node");
	}
	workpool_free(a->pool);	/* joins the workers; runs the remaining completions */
	node_set_ext(n, NODE_EXT_AUTHORING, NULL);
	free(a);
	mysql_library_end();
}

void
authoring_set_credential_resolver(struct node *n, authoring_cred_fn fn, void *arg)
{
	struct authoring *a = auth_get(n);

	if (a != NULL) {
		a->resolve = fn;
		a->resolve_arg = arg;
	}
}
