/* copy_node: see copy_node.h. Two halves:
 *
 * - the loop thread speaks to the relay's queue with libcurl's multi_socket
 *   API on the node's event base: one long-poll lease request at a time
 *   while fewer than copy_jobs run, a heartbeat per running job, then its
 *   complete or fail;
 * - each job runs on a thread of its own (at most copy_jobs), never on the
 *   authoring pool, so interactive authoring keeps its workers whatever the
 *   copies do. The thread reads the source, writes the sink, and counts rows
 *   and bytes in atomics the heartbeat reads; when it ends it wakes the loop
 *   (event_active, the one libevent call it makes).
 *
 * What is built: FileSystem DelimitedText sources (the policy of a preview:
 * allowed folders, path validation) and every other source a preview reads
 * (copy_sources: the connector's stream operation) to a FileSystem sink inside the node's
 * writable folders or an Azure blob (blob_sink.c), as DelimitedText, JSON
 * Lines or Parquet. The file is written under a temporary name and renamed
 * when whole, the blob committed by its block list, so a job that is
 * interrupted and leased again never leaves a partial or a doubled result. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/atomicfile.h"
#include "common/log.h"
#include "node/admin/admin_node.h"
#include "node/admin/registration.h"
#include "node/api.h"
#include "node/authoring/auth_ctx.h"
#include "node/authoring/csv_reader.h"
#include "node/conf.h"
#include "node/admin/credstore.h"
#include "node/copy/blob_sink.h"
#include "node/copy/copy_node.h"
#include "node/copy/gzip_out.h"
#include "node/copy/parquet.h"
#include "node/copy/s3_sink.h"
#include "node/node.h"
#include "node/proxy_node.h"
#include "proxy/curl_ev.h"
#include "proxy/proxy.h"
#include "relay/sas.h"

#define LEASE_WAIT 25		/* seconds a lease request waits at the relay */
#define VISIBILITY 30		/* seconds of a lease */
#define HEARTBEAT 10		/* seconds between heartbeats */
#define RESP_MAX (1024 * 1024)	/* bytes of a queue answer */
#define READ_CHUNK 65536
#define COPY_DEADLINE (7 * 86400)	/* seconds a SQL source may stream */

struct copyd;

/* One HTTP request to the relay's queue. */
struct creq {
	struct creq *next;
	struct copyd *d;
	CURL *easy;
	struct curl_slist *hdrs;
	char *body;
	char *resp;
	size_t rlen;
	bool over;
	void (*done)(struct creq *r, CURLcode rc, long status);
	void *arg;
	char err[CURL_ERROR_SIZE];
};

struct cjob {
	struct cjob *next;
	struct copyd *d;
	char id[40], lease_id[40];
	int dequeue_count;
	time_t since;
	cJSON *spec;
	pthread_t th;
	bool started;
	atomic_int stop;
	atomic_ullong rows, bytes;
	struct event *done_ev, *hb;
	bool lost;			/* the relay said LeaseLost or JobCancelled */
	bool reporting;
	struct timespec t0;
	/* written by the thread before it signals */
	int failed;			/* 0 ok, 1 failed */
	bool retryable;
	char code[64];
	char msg[1024];
	cJSON *result;
	/* the policy, copied on the loop thread */
	char *allowed, *writable;
	struct proxy_config *pc;	/* the node's proxy configuration when it started */
	struct credstore *creds;
	bool lma;			/* security.local_machine_access */
	char *ca_file;			/* node.copy_ca_file */
	size_t mem_limit;		/* node.request_memory_limit: one source row at most */
	bool validation;
};

struct copyd {
	struct node *n;
	time_t since;
	struct event_base *base;
	struct curl_ev *ce;		/* libcurl on the loop (proxy/curl_ev.c) */
	CURLM *multi;			/* its multi handle */
	struct event *check_ev, *lease_timer;
	struct creq *reqs;
	struct cjob *jobs;
	int running, max;
	bool leasing, stopping;
	char base_url[600];		/* http(s)://host:port/hc/v1/jobs */
	char *audience, *key_name, *key, *ca_file;
	char node_name[128];
};

static struct copyd *the_copyd;

/* ---- libcurl on the event loop -------------------------------------------------- */

static void check_done(void *arg);

static void
req_free(struct copyd *d, struct creq *r)
{
	struct creq **pp;

	for (pp = &d->reqs; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	if (r->easy) {
		curl_multi_remove_handle(d->multi, r->easy);
		curl_easy_cleanup(r->easy);
	}
	curl_slist_free_all(r->hdrs);
	free(r->body);
	free(r->resp);
	free(r);
}

/* Finished transfers are handled from a zero-delay event: never inside
 * curl's callbacks. */
static void
check_done(void *arg)
{
	struct copyd *d = arg;

	event_active(d->check_ev, 0, 0);
}

static void
check_event(evutil_socket_t fd, short what, void *arg)
{
	struct copyd *d = arg;
	CURLMsg *m;
	int left;

	(void)fd;
	(void)what;
	while ((m = curl_multi_info_read(d->multi, &left)) != NULL) {
		struct creq *r = NULL;
		long status = 0;
		CURLcode rc;

		if (m->msg != CURLMSG_DONE)
			continue;
		rc = m->data.result;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
		if (r == NULL)
			continue;
		r->done(r, rc, status);
		req_free(d, r);
	}
}

static size_t
on_body(char *p, size_t sz, size_t nm, void *arg)
{
	struct creq *r = arg;
	size_t n = sz * nm;
	char *b;

	if (r->rlen + n > RESP_MAX) {
		r->over = true;
		return 0;
	}
	b = realloc(r->resp, r->rlen + n + 1);
	if (b == NULL)
		return 0;
	memcpy(b + r->rlen, p, n);
	r->resp = b;
	r->rlen += n;
	r->resp[r->rlen] = '\0';
	return n;
}

/* POST {base_url}{path} with a JSON body, through the node's proxy decision. */
static int
queue_post(struct copyd *d, const char *path, cJSON *body, long timeout_s,
    void (*done)(struct creq *, CURLcode, long), void *arg)
{
	struct creq *r = calloc(1, sizeof *r);
	char url[800], *tok = NULL, *auth = NULL;
	struct proxy_config *pc = proxy_node_current(d->n);
	struct proxy_decision dec;

	if (r == NULL)
		return SHIR_ENOMEM;
	r->d = d;
	r->done = done;
	r->arg = arg;
	snprintf(url, sizeof url, "%s%s", d->base_url, path);
	r->body = cJSON_PrintUnformatted(body);
	r->easy = curl_easy_init();
	if (r->body == NULL || r->easy == NULL ||
	    sas_token_build(d->audience, d->key_name, d->key, (int64_t)time(NULL) + 3600, &tok) != 0 ||
	    asprintf(&auth, "ServiceBusAuthorization: %s", tok) < 0) {
		free(tok);
		req_free(d, r);
		return SHIR_ENOMEM;
	}
	free(tok);
	r->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	r->hdrs = curl_slist_append(r->hdrs, auth);
	free(auth);
	curl_easy_setopt(r->easy, CURLOPT_URL, url);
	curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->body);
	curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->hdrs);
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
	curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->err);
	curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT, 15L);
	curl_easy_setopt(r->easy, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	if (d->ca_file)
		curl_easy_setopt(r->easy, CURLOPT_CAINFO, d->ca_file);
	curl_easy_setopt(r->easy, CURLOPT_NOPROXY, "");
	/* the node's proxy decision, as for its control channels (the first
	 * proxy of the list; libcurl copies what it needs) */
	if (pc != NULL && proxy_decide(pc, url, &dec) == 0 && !dec.direct && dec.nproxies > 0)
		proxy_curl_setup(pc, r->easy, dec.proxies[0]);
	else
		curl_easy_setopt(r->easy, CURLOPT_PROXY, "");
	proxy_config_unref(pc);
	r->next = d->reqs;
	d->reqs = r;
	if (curl_multi_add_handle(d->multi, r->easy) != CURLM_OK) {
		req_free(d, r);
		return SHIR_EINTERNAL;
	}
	return 0;
}

static cJSON *
resp_json(const struct creq *r)
{
	return r->resp ? cJSON_ParseWithLength(r->resp, r->rlen) : NULL;
}

static const char *
resp_code(cJSON *o)
{
	const char *c = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(o, "error"), "code"));

	return c ? c : "-";
}

/* ---- the copy itself (on the job's thread) ------------------------------------- */

struct out {
	int fd;
	struct blob_sink *bs;		/* an Azure blob instead of the file */
	struct s3_sink *s3;		/* or an S3 object */
	struct blob_error be;		/* the blob's or the object's error */
	struct gzip_out *gz;		/* format.compressionCodec gzip, else NULL */
	EVP_MD_CTX *md;			/* of the bytes stored */
	unsigned long long bytes;	/* written by the format */
	unsigned long long stored;	/* stored (after gzip) */
	struct cjob *j;
	bool err;			/* a write failed: every later one fails too */
	char buf[READ_CHUNK];
	size_t n;
};

/* Bytes as stored: hashed, counted and handed to the sink. */
static int
out_emit(void *arg, const void *p, size_t n)
{
	struct out *o = arg;
	const char *c = p;
	size_t off = 0;

	EVP_DigestUpdate(o->md, p, n);	/* hashed a buffer at a time, not per cell */
	o->stored += n;
	/* the sinks block while uploads are behind: the reader waits (backpressure) */
	if (o->s3 != NULL)
		return s3_sink_write(o->s3, p, n, &o->be);
	if (o->bs != NULL)
		return blob_sink_write(o->bs, p, n, &o->be);
	while (off < n) {
		ssize_t w = write(o->fd, c + off, n - off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		off += (size_t)w;
	}
	return 0;
}

static int
out_flush(struct out *o)
{
	int rc;

	atomic_store_explicit(&o->j->bytes, o->bytes, memory_order_relaxed);	/* progress */
	rc = o->gz != NULL ? gzip_out_write(o->gz, o->buf, o->n) : out_emit(o, o->buf, o->n);

	o->n = 0;
	return rc;
}

/* The last buffer, and the end of the gzip stream. */
static int
out_finish(struct out *o)
{
	if (out_flush(o) != 0)
		return -1;
	return o->gz != NULL ? gzip_out_finish(o->gz) : 0;
}

static int
out_write(void *arg, const void *d, size_t n)
{
	struct out *o = arg;
	const char *p = d;

	if (o->err)
		return -1;
	o->bytes += n;
	if (n <= sizeof o->buf - o->n) {	/* the common case: it fits */
		memcpy(o->buf + o->n, p, n);
		o->n += n;
		return 0;
	}
	while (n > 0) {
		size_t k = sizeof o->buf - o->n < n ? sizeof o->buf - o->n : n;

		memcpy(o->buf + o->n, p, k);
		o->n += k;
		p += k;
		n -= k;
		if (o->n == sizeof o->buf && out_flush(o) != 0) {
			o->err = true;
			return -1;
		}
	}
	return 0;
}

enum fmt { F_CSV, F_JSONL, F_PARQUET };

struct copyrun {
	struct cjob *j;
	enum fmt fmt;
	char odelim, oquote;
	bool oheader;
	bool iheader;
	struct out *o;
	struct parquet_writer *pw;
	char **names;
	char **types;			/* the source's column types (SQL), else NULL: String */
	char **jkeys;			/* JSON Lines: ",\"name\":" per column, escaped once */
	size_t ncols;
	enum parquet_codec codec;
	bool special[256];		/* the bytes that make a CSV field quoted */
	bool have_cols;
	unsigned long long rows;
	struct shir_error e;
	bool failed;
};

static int
fail_job(struct cjob *j, const char *code, bool retryable, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
fail_job(struct cjob *j, const char *code, bool retryable, const char *fmt, ...)
{
	va_list ap;

	if (j->failed)
		return -1;
	j->failed = 1;
	j->retryable = retryable;
	snprintf(j->code, sizeof j->code, "%s", code);
	va_start(ap, fmt);
	vsnprintf(j->msg, sizeof j->msg, fmt, ap);
	va_end(ap);
	return -1;
}

/* A field, quoted when it holds the delimiter, the quote or a line break
 * (one pass over it, with the table of those bytes). */
static void
csv_cell(struct copyrun *c, const char *s, size_t n)
{
	size_t i, st = 0;
	bool q = false;

	if (c->oquote)
		for (i = 0; i < n; i++)
			if (c->special[(unsigned char)s[i]]) {
				q = true;
				break;
			}
	if (!q) {
		out_write(c->o, s, n);
		return;
	}
	out_write(c->o, &c->oquote, 1);
	for (i = 0; i < n; i++)
		if (s[i] == c->oquote) {
			out_write(c->o, s + st, i + 1 - st);
			out_write(c->o, &c->oquote, 1);
			st = i + 1;
		}
	out_write(c->o, s + st, n - st);
	out_write(c->o, &c->oquote, 1);
}

static void
json_str(struct copyrun *c, const char *s, size_t n)
{
	size_t i, st = 0;
	char esc[8];

	out_write(c->o, "\"", 1);
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch >= 0x20 && ch != '"' && ch != '\\')
			continue;
		out_write(c->o, s + st, i - st);
		if (ch == '"' || ch == '\\')
			snprintf(esc, sizeof esc, "\\%c", ch);
		else if (ch == '\n')
			snprintf(esc, sizeof esc, "\\n");
		else
			snprintf(esc, sizeof esc, "\\u%04x", ch);
		out_write(c->o, esc, strlen(esc));
		st = i + 1;
	}
	out_write(c->o, s + st, n - st);
	out_write(c->o, "\"", 1);
}

static int start_output(struct copyrun *c);

static int
start_columns(struct copyrun *c, const struct csv_field *f, size_t n, bool from_header)
{
	size_t i;

	c->names = calloc(n, sizeof *c->names);
	if (c->names == NULL)
		return -1;
	c->ncols = n;
	for (i = 0; i < n; i++) {
		char tmp[32];

		snprintf(tmp, sizeof tmp, "Prop_%zu", i);
		c->names[i] = strdup(from_header ? f[i].data : tmp);
		if (c->names[i] == NULL)
			return -1;
	}
	return start_output(c);
}

/* The header (CSV) or the schema (Parquet), once the columns are known. */
static int
start_output(struct copyrun *c)
{
	size_t i, n = c->ncols;

	c->have_cols = true;
	if (c->fmt == F_PARQUET) {
		struct parquet_column *pc = calloc(n, sizeof *pc);

		if (pc == NULL)
			return -1;
		for (i = 0; i < n; i++) {
			pc[i].name = c->names[i];
			pc[i].type = c->types ? c->types[i] : "String";
			pc[i].nullable = true;
		}
		c->pw = parquet_writer_new(pc, (int)n, c->codec, PARQUET_ROW_GROUP_DEFAULT,
		    out_write, c->o, &c->e);
		free(pc);
		if (c->pw == NULL)
			return fail_job(c->j, "InvalidRequest", false, "%s", c->e.msg);
	} else if (c->fmt == F_JSONL) {
		struct out *o = c->o, tmp;

		/* each key escaped once, by json_str writing into a scratch output */
		if ((c->jkeys = calloc(n, sizeof *c->jkeys)) == NULL)
			return -1;
		for (i = 0; i < n; i++) {
			if (strlen(c->names[i]) > 4096)	/* escaped, it must fit the scratch buffer */
				return fail_job(c->j, "StoreError", false, "column %zu's name is longer "
				    "than 4 KiB", i + 1);
			memset(&tmp, 0, sizeof tmp);
			tmp.j = o->j;
			c->o = &tmp;
			out_write(&tmp, i ? "," : "{", 1);
			json_str(c, c->names[i], strlen(c->names[i]));
			out_write(&tmp, ":", 1);
			c->o = o;
			if (tmp.err || tmp.n == sizeof tmp.buf ||
			    (c->jkeys[i] = strndup(tmp.buf, tmp.n)) == NULL)
				return -1;
		}
	} else if (c->fmt == F_CSV && c->oheader) {
		for (i = 0; i < n; i++) {
			if (i)
				out_write(c->o, &c->odelim, 1);
			csv_cell(c, c->names[i], strlen(c->names[i]));
		}
		out_write(c->o, "\n", 1);
	}
	return 0;
}

static int
on_record(void *arg, const struct csv_field *f, size_t n)
{
	struct copyrun *c = arg;
	size_t i;

	if (atomic_load(&c->j->stop))
		return 1;
	if (!c->have_cols) {
		if (start_columns(c, f, n, c->iheader) != 0) {
			c->failed = true;
			return 1;
		}
		if (c->iheader)
			return 0;
	}
	if (n != c->ncols) {
		fail_job(c->j, "StoreError", false, "row %llu has %zu fields where the first row has %zu",
		    c->rows + 1, n, c->ncols);
		c->failed = true;
		return 1;
	}
	for (i = 0; i < n; i++) {
		if (f[i].truncated) {
			fail_job(c->j, "StoreError", false, "row %llu: a field is longer than 16 MiB",
			    c->rows + 1);
			c->failed = true;
			return 1;
		}
		switch (c->fmt) {
		case F_CSV:
			if (i)
				out_write(c->o, &c->odelim, 1);
			csv_cell(c, f[i].data, f[i].len);
			break;
		case F_JSONL:
			out_write(c->o, c->jkeys[i], strlen(c->jkeys[i]));
			json_str(c, f[i].data, f[i].len);
			break;
		case F_PARQUET:
			if (parquet_text(c->pw, f[i].data, f[i].len, &c->e) != 0) {
				fail_job(c->j, "StoreError", false, "%s", c->e.msg);
				c->failed = true;
				return 1;
			}
			break;
		}
	}
	if (c->fmt == F_CSV)
		out_write(c->o, "\n", 1);
	else if (c->fmt == F_JSONL)
		out_write(c->o, "}\n", 2);
	else if (parquet_end_row(c->pw, &c->e) != 0) {
		fail_job(c->j, "StoreError", false, "%s", c->e.msg);
		c->failed = true;
		return 1;
	}
	if (c->o->err) {		/* the sink failed: run_copy says why */
		c->failed = true;
		return 1;
	}
	c->rows++;
	atomic_store_explicit(&c->j->rows, c->rows, memory_order_relaxed);
	return 0;
}

static const char *
str(const cJSON *o, const char *k, const char *def)
{
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));

	return v ? v : def;
}

static bool
flag(const cJSON *o, const char *k, bool def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

/* A path checked by the node's policy (auth_check_local_path), with its
 * failure turned into the job's. */
static char *
checked_path(struct cjob *j, const char *what, const char *path, bool validation, const char *folders)
{
	struct auth_ctx ac;
	char *real = NULL;

	memset(&ac, 0, sizeof ac);
	ac.policy.path_validation = validation;
	ac.policy.allowed_folders = (char *)folders;
	if (auth_check_local_path(&ac, what, path, &real) != 0) {
		fail_job(j, auth_code_name(ac.code), false, "%s", ac.msg);
		return NULL;
	}
	return real;
}

/* An earlier attempt of this job that died (the node killed, the lease
 * expired) left its temporary file: it goes, the new attempt starts over. */
static void
remove_stale_parts(const char *dir, const char *name, const char *id)
{
	DIR *dd = opendir(dir);
	struct dirent *de;
	char prefix[400];
	size_t pl;

	if (dd == NULL)
		return;
	pl = (size_t)snprintf(prefix, sizeof prefix, ".%s.%s.", name, id);
	while ((de = readdir(dd)) != NULL) {
		size_t l = strlen(de->d_name);

		if (pl < sizeof prefix && strncmp(de->d_name, prefix, pl) == 0 && l > 5 &&
		    strcmp(de->d_name + l - 5, ".part") == 0 && unlinkat(dirfd(dd), de->d_name, 0) == 0)
			log_info("copy", "event=job.stale_part_removed job=%s file=%s", id,
			    log_q(de->d_name));
	}
	closedir(dd);
}

static void
hex(const unsigned char *d, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* ---- the Azure Blob sink (blob_sink.c does the REST) ----------------------------- */

struct blob_secrets {
	char *sas_url, *sas, *key;
	char *account_url, *container, *account;
	char *akid, *secret, *token;	/* S3 */
};

static void
blob_secrets_free(struct blob_secrets *s)
{
	if (s->sas_url)
		credstore_secret_free(s->sas_url);
	if (s->sas)
		credstore_secret_free(s->sas);
	if (s->key)
		credstore_secret_free(s->key);
	if (s->akid)
		credstore_secret_free(s->akid);
	if (s->secret)
		credstore_secret_free(s->secret);
	if (s->token)
		credstore_secret_free(s->token);
	free(s->account_url);
	free(s->container);
	free(s->account);
	memset(s, 0, sizeof *s);
}

/* sink.<name>: an inline string or {"type": "CredentialReference", "name": N}
 * from the node's credential store. 0 with *out NULL when absent. */
static int
sink_secret(struct cjob *j, const cJSON *sink, const char *where, const char *name, char **out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(sink, name);
	struct shir_error e;
	const char *ref;

	*out = NULL;
	if (v == NULL)
		return 0;
	if (cJSON_IsString(v)) {
		if ((*out = strdup(v->valuestring)) == NULL)
			return fail_job(j, "Internal", true, "out of memory");
		return 0;
	}
	ref = str(v, "name", NULL);
	if (!cJSON_IsObject(v) || strcmp(str(v, "type", ""), "CredentialReference") != 0 || ref == NULL)
		return fail_job(j, "InvalidRequest", false, "%s.%s must be a string or a "
		    "CredentialReference {\"type\": \"CredentialReference\", \"name\": ...}", where, name);
	if (j->creds == NULL || credstore_resolve(j->creds, ref, out, &e) != 0) {
		*out = NULL;
		return fail_job(j, "CredentialNotFound", false, "%s.%s names credential '%.128s', which "
		    "this node does not have (shirctl credentials set %.128s)", where, name, ref, ref);
	}
	return 0;
}

/* The URL's host is a DNS name (not an IP literal, not localhost). */
static bool
host_is_name(const char *url)
{
	struct proxy_url u;
	char why[300];

	return proxy_url_parse(url, &u, why, sizeof why) == 0 && !u.ip && strcmp(u.host, "localhost") != 0;
}

/* Local machine access applies to a sink's host as to a store's: with it
 * off, a direct connection may not reach the node's own addresses. The name
 * is resolved and checked once, and the upload goes to that address only
 * (no second DNS answer). Through a proxy the proxy resolves the name, as for
 * every other outbound connection of the node. */
static int
sink_host_check(struct cjob *j, const char *url, char *resolve, size_t rlen)
{
	struct proxy_decision dec;
	struct proxy_url u;
	struct auth_ctx ac;
	char host[300], addr[64], why[300];
	size_t hl;

	if (proxy_url_parse(url, &u, why, sizeof why) != 0)
		return 0;		/* the sink refuses it */
	hl = strlen(u.host);		/* an IPv6 literal without its brackets */
	if (u.host[0] == '[' && hl >= 2)
		snprintf(host, sizeof host, "%.*s", (int)(hl - 2), u.host + 1);
	else
		snprintf(host, sizeof host, "%s", u.host);
	if (j->pc != NULL && proxy_decide(j->pc, url, &dec) == 0 && !dec.direct && dec.nproxies > 0)
		return 0;
	memset(&ac, 0, sizeof ac);
	ac.policy.local_machine_access = false;
	clock_gettime(CLOCK_MONOTONIC, &ac.deadline);
	ac.deadline.tv_sec += 60;
	ac.timeout_s = 60;
	if (auth_check_host_addr(&ac, host, addr, sizeof addr) != 0)
		return fail_job(j, auth_code_name(ac.code), ac.code == AUTH_E_UNREACHABLE, "the sink: %s",
		    ac.msg);
	if (addr[0])
		snprintf(resolve, rlen, "%s:%d:%s%s%s", host, u.port, strchr(addr, ':') ? "[" : "", addr,
		    strchr(addr, ':') ? "]" : "");
	return 0;
}

/* The object's name: sink.path, or {job id}.csv (.jsonl, .parquet, + .gz)
 * in the folder sink.path ends with '/'. */
static void
object_name(const struct cjob *j, const char *p, enum fmt fmt, bool gz, char *name, size_t namelen)
{
	size_t pl = strlen(p);

	if (pl > 0 && p[pl - 1] == '/')
		snprintf(name, namelen, "%s%s.%s%s", p, j->id, fmt == F_CSV ? "csv" : fmt == F_JSONL ?
		    "jsonl" : "parquet", gz ? ".gz" : "");
	else
		snprintf(name, namelen, "%s", p);
}

static int
blob_open(struct cjob *j, const cJSON *sink, enum fmt fmt, bool gz, struct blob_secrets *sec, char *name,
    size_t namelen, struct blob_sink **out)
{
	const char *au = str(sink, "accountUrl", NULL), *ct = str(sink, "container", NULL);
	const char *p = str(sink, "path", ""), *an = str(sink, "accountName", NULL);
	const cJSON *bsz = cJSON_GetObjectItemCaseSensitive(sink, "blockSizeMB");
	struct blob_target t;
	struct blob_error be;
	size_t pl = strlen(p);
	char resolve[400] = "";

	if (sink_secret(j, sink, "sink", "sasUrl", &sec->sas_url) != 0 ||
	    sink_secret(j, sink, "sink", "sasToken", &sec->sas) != 0 ||
	    sink_secret(j, sink, "sink", "accountKey", &sec->key) != 0)
		return -1;
	if (sec->sas_url != NULL) {
		/* a container's SAS URL: scheme://host[/account]/container?token */
		char *q = strchr(sec->sas_url, '?'), *slash;

		if (q == NULL || sec->sas != NULL)
			return fail_job(j, "InvalidRequest", false, "sink.sasUrl must be a container URL "
			    "with its SAS token after '?' (and comes without sink.sasToken)");
		if ((sec->sas = strdup(q + 1)) == NULL)
			return fail_job(j, "Internal", true, "out of memory");
		*q = '\0';
		while (q > sec->sas_url && q[-1] == '/')
			*--q = '\0';
		slash = strrchr(sec->sas_url, '/');
		if (slash == NULL || slash < strstr(sec->sas_url, "://") + 3)
			return fail_job(j, "InvalidRequest", false, "sink.sasUrl must name the container "
			    "(https://account.blob.core.windows.net/container?sv=...)");
		if ((sec->container = strdup(slash + 1)) == NULL ||
		    (sec->account_url = strndup(sec->sas_url, (size_t)(slash - sec->sas_url))) == NULL)
			return fail_job(j, "Internal", true, "out of memory");
		if (au == NULL)
			au = sec->account_url;
		if (ct == NULL)
			ct = sec->container;
	}
	if (sec->sas != NULL && sec->sas[0] == '?')
		memmove(sec->sas, sec->sas + 1, strlen(sec->sas));
	if (au == NULL || ct == NULL || *ct == '\0' || pl == 0 || pl > 900 || p[0] == '/' ||
	    strcspn(p, "\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r") != pl)
		return fail_job(j, "InvalidRequest", false, "the AzureBlob sink needs accountUrl (or "
		    "sasUrl), container and path (a blob name, or a folder ending in '/')");
	if ((sec->sas == NULL) == (sec->key == NULL))
		return fail_job(j, "InvalidRequest", false, "the AzureBlob sink needs one credential: "
		    "sasUrl, sasToken or accountKey (with accountName)");
	if (sec->key != NULL && an == NULL) {
		/* the account: the host's first label, or the path's first
		 * segment for an emulator addressed by IP (path style) */
		struct proxy_url u;
		char why[300];

		if (proxy_url_parse(au, &u, why, sizeof why) != 0)
			return fail_job(j, "InvalidRequest", false, "sink.accountUrl: %s", why);
		if (host_is_name(au))
			sec->account = strndup(u.host, strcspn(u.host, "."));
		else if (u.path[1] != '\0')
			sec->account = strndup(u.path + 1, strcspn(u.path + 1, "/"));
		an = sec->account;
	}
	object_name(j, p, fmt, gz, name, namelen);
	memset(&t, 0, sizeof t);
	t.account_url = au;
	t.container = ct;
	t.blob = name;
	t.sas = sec->sas;
	t.key = sec->key;
	t.account = an;
	t.job_id = j->id;
	t.resume = j->dequeue_count > 1;	/* an earlier attempt may have left blocks */
	t.block_size = BLOB_BLOCK_DEFAULT;
	if (bsz != NULL) {
		double mb = cJSON_GetNumberValue(bsz);

		if (!cJSON_IsNumber(bsz) || mb * 1048576 < BLOB_BLOCK_MIN || mb * 1048576 > BLOB_BLOCK_MAX)
			return fail_job(j, "InvalidRequest", false, "sink.blockSizeMB must be a number "
			    "from 0.0625 (64 KiB) to 100");
		t.block_size = (size_t)(mb * 1048576);
	}
	t.pc = j->pc;
	t.ca_file = j->ca_file;
	if (!j->lma && sink_host_check(j, au, resolve, sizeof resolve) != 0)
		return -1;
	t.resolve = resolve[0] ? resolve : NULL;
	t.stop = &j->stop;
	memset(&be, 0, sizeof be);
	if ((*out = blob_sink_new(&t, &be)) == NULL)
		return fail_job(j, be.code, be.retryable, "%s", be.msg);
	log_info("copy", "event=job.blob job=%s url=%s block_size=%zu auth=%s", j->id,
	    log_q(blob_sink_url(*out)), t.block_size, t.key ? "SharedKey" : "SAS");
	return 0;
}

/* ---- the S3 sink (s3_sink.c does the REST) ----------------------------------- */

static int
s3_open(struct cjob *j, const cJSON *sink, enum fmt fmt, bool gz, struct blob_secrets *sec, char *name,
    size_t namelen, struct s3_sink **out)
{
	const char *region = str(sink, "region", "us-east-1"), *bucket = str(sink, "bucket", NULL);
	const char *su = str(sink, "serviceUrl", NULL), *p = str(sink, "path", "");
	const cJSON *psz = cJSON_GetObjectItemCaseSensitive(sink, "partSizeMB");
	const cJSON *mc = cJSON_GetObjectItemCaseSensitive(sink, "maxConcurrentConnections");
	char def[200], resolve[400] = "";
	struct s3_target t;
	struct blob_error be;
	size_t pl = strlen(p);

	if (sink_secret(j, sink, "sink", "accessKeyId", &sec->akid) != 0 ||
	    sink_secret(j, sink, "sink", "secretAccessKey", &sec->secret) != 0 ||
	    sink_secret(j, sink, "sink", "sessionToken", &sec->token) != 0)
		return -1;
	if (*region == '\0' || strlen(region) > 40 || strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") !=
	    strlen(region))
		return fail_job(j, "InvalidRequest", false, "sink.region must be a region name (us-east-1 ...)");
	if (su == NULL) {
		snprintf(def, sizeof def, "https://s3.%s.amazonaws.com", region);
		su = def;
	}
	if (bucket == NULL || pl == 0 || pl > 900 || p[0] == '/' ||
	    strcspn(p, "\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r") != pl)
		return fail_job(j, "InvalidRequest", false, "the S3 sink needs bucket and path (an object "
		    "key, or a folder ending in '/')");
	if (sec->akid == NULL || sec->secret == NULL)
		return fail_job(j, "InvalidRequest", false, "the S3 sink needs accessKeyId and "
		    "secretAccessKey (best a CredentialReference to the node's credential store)");
	object_name(j, p, fmt, gz, name, namelen);
	memset(&t, 0, sizeof t);
	t.endpoint = su;
	t.region = region;
	t.bucket = bucket;
	t.key = name;
	t.path_style = flag(sink, "forcePathStyle", false);
	t.access_key_id = sec->akid;
	t.secret = sec->secret;
	t.session_token = sec->token;
	t.part_size = S3_PART_DEFAULT;
	if (psz != NULL) {
		double mb = cJSON_GetNumberValue(psz);

		if (!cJSON_IsNumber(psz) || mb * 1048576 < S3_PART_MIN || mb * 1048576 > S3_PART_MAX)
			return fail_job(j, "InvalidRequest", false, "sink.partSizeMB must be a number from 5 "
			    "to 512");
		t.part_size = (size_t)(mb * 1048576);
	}
	t.parallel = 2;
	if (mc != NULL) {
		double v = cJSON_GetNumberValue(mc);

		if (!cJSON_IsNumber(mc) || v < 1 || v > S3_PARALLEL_MAX || v != (int)v)
			return fail_job(j, "InvalidRequest", false, "sink.maxConcurrentConnections must be "
			    "an integer from 1 to %d", S3_PARALLEL_MAX);
		t.parallel = (unsigned)v;
	}
	t.pc = j->pc;
	t.ca_file = j->ca_file;
	t.stop = &j->stop;
	memset(&be, 0, sizeof be);
	if ((*out = s3_sink_new(&t, &be)) == NULL)
		return fail_job(j, be.code, be.retryable, "%s", be.msg);
	if (!j->lma && sink_host_check(j, s3_sink_url(*out), resolve, sizeof resolve) != 0)
		return -1;
	if (resolve[0] && s3_sink_pin(*out, resolve) != 0)
		return fail_job(j, "Internal", true, "out of memory");
	log_info("copy", "event=job.s3 job=%s url=%s part_size=%zu parallel=%u", j->id,
	    log_q(s3_sink_url(*out)), t.part_size, t.parallel);
	return 0;
}

/* The result's common part; returns its files array. */
static cJSON *
result_new(struct cjob *j, const struct copyrun *c, const struct out *o)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	j->result = cJSON_CreateObject();
	cJSON_AddNumberToObject(j->result, "rowsRead", (double)c->rows);
	cJSON_AddNumberToObject(j->result, "rowsWritten", (double)c->rows);
	cJSON_AddNumberToObject(j->result, "bytesWritten", (double)o->stored);
	if (o->gz != NULL) {
		cJSON_AddStringToObject(j->result, "compressionCodec", "gzip");
		cJSON_AddNumberToObject(j->result, "uncompressedBytes", (double)o->bytes);
	}
	cJSON_AddNumberToObject(j->result, "durationMs", (double)((t1.tv_sec - j->t0.tv_sec) *
	    1000 + (t1.tv_nsec - j->t0.tv_nsec) / 1000000));
	return cJSON_AddArrayToObject(j->result, "files");
}

static void
s3_result(struct cjob *j, const struct copyrun *c, const struct out *o, struct s3_sink *s3,
    const char *name, const char *sha)
{
	cJSON *files = result_new(j, c, o), *f = cJSON_CreateObject();

	cJSON_AddStringToObject(f, "path", name);
	cJSON_AddStringToObject(f, "url", s3_sink_url(s3));
	cJSON_AddNumberToObject(f, "bytes", (double)o->stored);
	cJSON_AddNumberToObject(f, "parts", s3_sink_parts(s3));
	cJSON_AddStringToObject(f, "etag", s3_sink_etag(s3));
	if (*s3_sink_md5(s3))	/* one PutObject: the object's MD5 */
		cJSON_AddStringToObject(f, "contentMd5", s3_sink_md5(s3));
	cJSON_AddStringToObject(f, "sha256", sha);
	cJSON_AddItemToArray(files, f);
	log_info("copy", "event=job.s3_committed job=%s url=%s bytes=%llu parts=%u etag=%s", j->id,
	    log_q(s3_sink_url(s3)), o->stored, s3_sink_parts(s3), log_q(s3_sink_etag(s3)));
}

/* The sink refused a write: the blob's or the object's own error, or the file's. */
static void
sink_failed(struct cjob *j, struct out *o, const char *opath)
{
	if ((o->bs != NULL || o->s3 != NULL) && o->be.code[0])
		fail_job(j, o->be.code, o->be.retryable, "%s", o->be.msg);
	else
		fail_job(j, "StoreError", true, "writing %s failed", opath);
}

static void
blob_result(struct cjob *j, const struct copyrun *c, const struct out *o, struct blob_sink *bs,
    const char *name, const char *sha)
{
	cJSON *files = result_new(j, c, o), *f = cJSON_CreateObject();

	cJSON_AddStringToObject(f, "path", name);
	cJSON_AddStringToObject(f, "url", blob_sink_url(bs));
	cJSON_AddNumberToObject(f, "bytes", (double)o->stored);
	cJSON_AddNumberToObject(f, "blocks", blob_sink_blocks(bs));
	cJSON_AddNumberToObject(f, "blocksSkipped", blob_sink_skipped(bs));
	cJSON_AddStringToObject(f, "contentMd5", blob_sink_md5(bs));
	cJSON_AddStringToObject(f, "sha256", sha);
	cJSON_AddItemToArray(files, f);
	log_info("copy", "event=job.blob_committed job=%s url=%s bytes=%llu blocks=%u "
	    "blocks_skipped=%u writer_wait_ms=%llu", j->id, log_q(blob_sink_url(bs)), o->stored,
	    blob_sink_blocks(bs), blob_sink_skipped(bs), blob_sink_wait_ms(bs));
}

/* ---- SQL sources (the connectors' stream operation) --------------------------- */

static int
sql_columns(void *arg, size_t n, const char *const *names, const char *const *types,
    const int *nullable)
{
	struct copyrun *c = arg;
	size_t i;

	(void)nullable;
	if (n == 0 || n > AUTH_COLUMNS_MAX)
		return fail_job(c->j, "StoreError", false, "the query returns %zu columns (1 to %d "
		    "can be copied)", n, AUTH_COLUMNS_MAX);
	c->names = calloc(n, sizeof *c->names);
	c->types = calloc(n, sizeof *c->types);
	if (c->names == NULL || c->types == NULL)
		return fail_job(c->j, "Internal", true, "out of memory");
	c->ncols = n;
	for (i = 0; i < n; i++) {
		c->names[i] = strdup(names[i]);
		c->types[i] = strdup(types[i]);
		if (c->names[i] == NULL || c->types[i] == NULL)
			return fail_job(c->j, "Internal", true, "out of memory");
	}
	if (start_output(c) != 0)
		return -1;
	return c->o->err ? -1 : 0;
}

/* One row of typed values: CSV (a null is an empty field), JSON Lines (a
 * null is null, every other value a string), Parquet (the column's type). */
static int
sql_row(void *arg, size_t n, const char *const *v, const size_t *l)
{
	struct copyrun *c = arg;
	size_t i;

	if (atomic_load(&c->j->stop))
		return 1;
	for (i = 0; i < n; i++) {
		switch (c->fmt) {
		case F_CSV:
			if (i)
				out_write(c->o, &c->odelim, 1);
			if (v[i] != NULL)
				csv_cell(c, v[i], l[i]);
			break;
		case F_JSONL:
			out_write(c->o, c->jkeys[i], strlen(c->jkeys[i]));
			if (v[i] == NULL)
				out_write(c->o, "null", 4);
			else
				json_str(c, v[i], l[i]);
			break;
		case F_PARQUET:
			if ((v[i] == NULL ? parquet_null(c->pw, &c->e) :
			    strcmp(c->types[i], "ByteArray") == 0 ? parquet_bytes(c->pw, v[i], l[i], &c->e) :
			    parquet_text(c->pw, v[i], l[i], &c->e)) != 0)
				return fail_job(c->j, "StoreError", false, "%s", c->e.msg);
			break;
		}
	}
	if (c->fmt == F_CSV)
		out_write(c->o, "\n", 1);
	else if (c->fmt == F_JSONL)
		out_write(c->o, "}\n", 2);
	else if (parquet_end_row(c->pw, &c->e) != 0)
		return fail_job(c->j, "StoreError", false, "%s", c->e.msg);
	if (c->o->err)
		return -1;
	c->rows++;
	atomic_store_explicit(&c->j->rows, c->rows, memory_order_relaxed);
	return 0;
}

/* The sources a connector streams in full (its stream operation), by linked
 * service and dataset type. FileSystem DelimitedText is read by run_copy
 * itself (csv_reader), as before. */
static const struct copy_source {
	const char *ls, *ds;
	const struct auth_store *st;
} copy_sources[] = {
	{ "PostgreSql", "Table", &conn_pg_store }, { "PostgreSql", "Query", &conn_pg_store },
	{ "MySql", "Table", &conn_mysql_store }, { "MySql", "Query", &conn_mysql_store },
	{ "Sqlite", "Table", &conn_sqlite_store }, { "Sqlite", "Query", &conn_sqlite_store },
	{ "Odbc", "Table", &conn_odbc_store }, { "Odbc", "Query", &conn_odbc_store },
	{ "FileSystem", "Json", &conn_fs_store },
	{ "HttpServer", "Json", &conn_http_store }, { "HttpServer", "DelimitedText", &conn_http_store },
};

/* The store that streams ls/ds; NULL when run_copy reads it (FileSystem
 * DelimitedText) or nothing does (*known false: the message lists them). */
static const struct auth_store *
copy_source_store(const char *ls, const char *ds, bool *known)
{
	size_t i;

	*known = strcmp(ls, "FileSystem") == 0 && strcmp(ds, "DelimitedText") == 0;
	for (i = 0; i < sizeof copy_sources / sizeof copy_sources[0]; i++)
		if (strcmp(copy_sources[i].ls, ls) == 0 && strcmp(copy_sources[i].ds, ds) == 0) {
			*known = true;
			return copy_sources[i].st;
		}
	return NULL;
}

#define COPY_SOURCES_TEXT "FileSystem (DelimitedText, Json), HttpServer (Json, DelimitedText), " \
	"and PostgreSql, MySql, Sqlite and Odbc (Table, Query)"

/* options.timeoutSeconds: the job's deadline for reading its source. */
static int
copy_deadline(struct cjob *j, int *secs)
{
	const cJSON *opt = cJSON_GetObjectItemCaseSensitive(j->spec, "options");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(opt, "timeoutSeconds");

	*secs = COPY_DEADLINE;
	if (v == NULL)
		return 0;
	if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > COPY_DEADLINE ||
	    v->valuedouble != (double)(int)v->valuedouble)
		return fail_job(j, "InvalidRequest", false, "options.timeoutSeconds must be a whole "
		    "number of seconds from 1 to %d", COPY_DEADLINE);
	*secs = (int)v->valuedouble;
	return 0;
}

/* The linked service's store, run in full by its stream operation under the
 * policy of a preview (the same checks: paths, hosts, local machine access,
 * the read-only session), with the request memory limit bounding one row.
 * The job's stop flag stops the connector too (auth_ctx.stop_also), even
 * while it waits for a store that does not answer. */
static int
run_sql(struct cjob *j, struct copyrun *c, const struct auth_store *st, const cJSON *ls,
    const cJSON *ds)
{
	const char *dt = str(ds, "type", "");
	const cJSON *lp = cJSON_GetObjectItemCaseSensitive(ls, "properties");
	struct auth_stream s = { sql_columns, sql_row, c };
	struct auth_ctx *ac;
	char *pw = NULL, *cs = NULL;
	int rc, secs;
	bool timed_out;

	if (copy_deadline(j, &secs) != 0)
		return -1;
	if (sink_secret(j, lp, "source.linkedService.properties", "password", &pw) != 0 ||
	    sink_secret(j, lp, "source.linkedService.properties", "connectionString", &cs) != 0) {
		if (pw != NULL)
			credstore_secret_free(pw);
		return -1;
	}
	if ((ac = calloc(1, sizeof *ac)) == NULL) {
		if (pw != NULL)
			credstore_secret_free(pw);
		if (cs != NULL)
			credstore_secret_free(cs);
		return fail_job(j, "Internal", true, "out of memory");
	}
	ac->op = AUTH_OP_PREVIEW;
	ac->store_type = st->type;
	ac->props = lp;
	ac->dataset = ds;
	ac->dataset_type = dt;
	ac->path = "";
	ac->password = pw;
	ac->connection_string = cs;
	ac->policy.path_validation = j->validation;
	ac->policy.allowed_folders = j->allowed;
	ac->policy.local_machine_access = j->lma;
	ac->policy.proxy = j->pc;
	ac->policy.mem_limit = j->mem_limit;
	ac->stop_also = &j->stop;
	ac->timeout_s = secs;
	clock_gettime(CLOCK_MONOTONIC, &ac->deadline);
	ac->deadline.tv_sec += secs;
	rc = st->stream(ac, &s);
	timed_out = auth_ms_left(ac) == 0 && !atomic_load(&j->stop);
	if (pw != NULL)
		credstore_secret_free(pw);
	if (cs != NULL)
		credstore_secret_free(cs);
	if (j->failed)
		goto out;
	if (c->o->err) {
		sink_failed(j, c->o, "the sink");
		goto out;
	}
	if (atomic_load(&j->stop)) {
		fail_job(j, "Stopped", true, "the job was stopped");
		goto out;
	}
	if (timed_out && (rc != 0 || ac->code != AUTH_OK)) {
		/* a store that hangs: the job's deadline, not a preview's */
		fail_job(j, "StoreUnreachable", false, "the %s source did not finish within the job's "
		    "deadline (options.timeoutSeconds: %d s); %llu rows were read and nothing was "
		    "committed", st->type, secs, c->rows);
		goto out;
	}
	if (rc != 0 || ac->code != AUTH_OK)
		fail_job(j, auth_code_name(ac->code), ac->code == AUTH_E_UNREACHABLE ||
		    ac->code == AUTH_E_INTERNAL, "%s", ac->msg);
out:
	rc = j->failed ? -1 : 0;
	free(ac);
	return rc;
}

static void
run_copy(struct cjob *j)
{
	const cJSON *src = cJSON_GetObjectItemCaseSensitive(j->spec, "source");
	const cJSON *ls = cJSON_GetObjectItemCaseSensitive(src, "linkedService");
	const cJSON *lp = cJSON_GetObjectItemCaseSensitive(ls, "properties");
	const cJSON *ds = cJSON_GetObjectItemCaseSensitive(src, "dataset");
	const cJSON *sink = cJSON_GetObjectItemCaseSensitive(j->spec, "sink");
	const cJSON *fm = cJSON_GetObjectItemCaseSensitive(j->spec, "format");
	const char *ft = str(fm, "type", ""), *root = str(lp, "root", NULL);
	const char *rel = str(ds, "path", NULL), *folder = str(sink, "folder", NULL);
	const char *opath = str(sink, "path", NULL);
	char *srcreal = NULL, *dirreal = NULL, *path = NULL, *final = NULL, *tmp = NULL;
	struct copyrun c;
	struct out *o = NULL;
	struct csv_reader *rd = NULL;
	int fd = -1, in = -1;
	char buf[READ_CHUNK], md[65];
	unsigned char dg[EVP_MAX_MD_SIZE];
	unsigned dl = 0;
	const char *idelim = str(ds, "columnDelimiter", ","), *iquote = str(ds, "quoteChar", "\"");
	struct shir_error fe;
	bool blob = strcmp(str(sink, "type", ""), "AzureBlob") == 0;
	bool known;
	const struct auth_store *st = copy_source_store(str(ls, "type", ""), str(ds, "type", ""),
	    &known);
	bool sql = st != NULL;
	bool s3 = strcmp(str(sink, "type", ""), "S3") == 0, cloud = blob || s3;
	const char *codec = str(fm, "compressionCodec", str(fm, "compression", "none"));
	bool gz = false;
	int gz_level = 6;
	struct blob_sink *bs = NULL;
	struct s3_sink *s3s = NULL;
	struct blob_secrets sec;
	char blob_name[1100];

	memset(&c, 0, sizeof c);
	memset(&sec, 0, sizeof sec);
	c.j = j;
	if (!known) {
		fail_job(j, "UnsupportedStoreType", false, "this node copies " COPY_SOURCES_TEXT
		    " sources (got %s %s)", str(ls, "type", "?"), str(ds, "type", "?"));
		goto out;
	}
	if (strcmp(str(sink, "type", ""), "FileSystem") != 0 && !cloud) {
		fail_job(j, "UnsupportedStoreType", false, "this node writes to FileSystem, AzureBlob and "
		    "S3 sinks (got %s)", str(sink, "type", "?"));
		goto out;
	}
	c.fmt = strcmp(ft, "DelimitedText") == 0 ? F_CSV : strcmp(ft, "JsonLines") == 0 ? F_JSONL :
	    F_PARQUET;
	if (((root == NULL || rel == NULL) && !sql) || (folder == NULL && !cloud) || opath == NULL ||
	    *opath == '\0' || opath[0] == '/' || strlen(idelim) != 1 || strlen(iquote) > 1) {
		fail_job(j, "InvalidRequest", false, "the job needs source.linkedService.properties.root, "
		    "source.dataset.path, sink.folder and a relative sink.path (one-character "
		    "columnDelimiter and quoteChar)");
		goto out;
	}
	c.odelim = str(fm, "columnDelimiter", ",")[0] ? str(fm, "columnDelimiter", ",")[0] : ',';
	c.oquote = str(fm, "quoteChar", "\"")[0];
	c.oheader = flag(fm, "firstRowAsHeader", true);
	c.special[(unsigned char)c.odelim] = c.special[(unsigned char)c.oquote] = true;
	c.special['\n'] = c.special['\r'] = true;
	c.iheader = flag(ds, "firstRowAsHeader", true);
	if (sql)
		rel = str(ds, "table", str(ds, "path", str(ds, "type", "query")));
	/* gzip for the text formats (Parquet compresses its pages itself) */
	if (c.fmt != F_PARQUET && strcasecmp(codec, "none") != 0) {
		const char *lv = str(fm, "compressionLevel", "Optimal");

		if (strcasecmp(codec, "gzip") != 0 || (strcasecmp(lv, "Optimal") != 0 &&
		    strcasecmp(lv, "Fastest") != 0)) {
			fail_job(j, "InvalidRequest", false, "format.compressionCodec must be gzip or none "
			    "for %s (format.compressionLevel Optimal or Fastest)", ft);
			goto out;
		}
		gz = true;
		gz_level = strcasecmp(lv, "Fastest") == 0 ? 1 : 6;
	}
	if (c.fmt == F_PARQUET && parquet_codec_parse(str(fm, "compression", "snappy"), &c.codec) != 0) {
		fail_job(j, "InvalidRequest", false, "format.compression must be snappy, zstd or none");
		goto out;
	}
	/* the source: the policy of a preview (SQL stores: checked when connecting) */
	if (sql)
		goto source_checked;
	if (asprintf(&path, "%s/%s", root, rel) < 0) {
		path = NULL;
		goto nomem;
	}
	if ((srcreal = checked_path(j, "dataset path", path, j->validation, j->allowed)) == NULL)
		goto out;
source_checked:
	if (blob) {
		if (blob_open(j, sink, c.fmt, gz, &sec, blob_name, sizeof blob_name, &bs) != 0)
			goto out;
		goto opened;
	}
	if (s3) {
		if (s3_open(j, sink, c.fmt, gz, &sec, blob_name, sizeof blob_name, &s3s) != 0)
			goto out;
		goto opened;
	}
	/* the sink: inside the writable folders, always checked */
	free(path);
	if (asprintf(&path, "%s/%s", folder, opath) < 0) {
		path = NULL;
		goto nomem;
	}
	if (strchr(opath, '/') != NULL || opath[0] == '.' || strlen(opath) > 200 ||
	    strcspn(opath, "\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r") != strlen(opath)) {
		fail_job(j, "PathNotAllowed", false, "sink.path must be a file name in sink.folder (no "
		    "'/', not starting with '.', at most 200 bytes)");
		goto out;
	}
	if (!*j->writable) {
		fail_job(j, "PathNotAllowed", false, "this node allows no writes: its admin sets "
		    "security.writable_folders to let copy jobs write files");
		goto out;
	}
	if ((dirreal = checked_path(j, "sink.folder", folder, true, j->writable)) == NULL)
		goto out;
	if (asprintf(&final, "%s/%s", dirreal, opath) < 0 ||
	    asprintf(&tmp, "%s/.%s.%s.%s.part", dirreal, opath, j->id, j->lease_id) < 0) {
		final = tmp = NULL;
		goto nomem;
	}
	remove_stale_parts(dirreal, opath, j->id);
opened:
	if (!sql && (in = open(srcreal, O_RDONLY | O_CLOEXEC)) < 0) {
		fail_job(j, "NotFound", false, "cannot open %s: %s", rel, strerror(errno));
		goto out;
	}
	if (!cloud && (fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640)) < 0) {
		fail_job(j, "StoreError", false, "cannot create %s in the sink folder: %s", opath,
		    strerror(errno));
		goto out;
	}
	o = calloc(1, sizeof *o);
	rd = csv_reader_new(idelim[0], iquote[0], 16 * 1024 * 1024, AUTH_COLUMNS_MAX);
	if (o == NULL || rd == NULL || (o->md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(o->md, EVP_sha256(), NULL) != 1)
		goto nomem;
	o->fd = fd;
	o->bs = bs;
	o->s3 = s3s;
	o->j = j;
	if (gz && (o->gz = gzip_out_new(gz_level, out_emit, o)) == NULL)
		goto nomem;
	c.o = o;
	if (sql) {
		if (run_sql(j, &c, st, ls, ds) != 0)
			goto out;
		goto read_done;
	}
	for (;;) {
		ssize_t r = read(in, buf, sizeof buf);
		enum csv_status cs;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fail_job(j, "StoreError", true, "reading %s: %s", rel, strerror(errno));
			goto out;
		}
		cs = r == 0 ? csv_reader_finish(rd, on_record, &c) :
		    csv_reader_feed(rd, buf, (size_t)r, on_record, &c);
		if (o->err && !j->failed)
			sink_failed(j, o, opath);
		if (c.failed || j->failed)
			goto out;
		if (atomic_load(&j->stop)) {
			fail_job(j, "Stopped", true, "the job was stopped");
			goto out;
		}
		if (cs == CSV_ERROR) {
			fail_job(j, "StoreError", false, "%s is not valid delimited text: %s", rel,
			    csv_reader_error(rd));
			goto out;
		}
		if (r == 0)
			break;
	}
read_done:
	if (!c.have_cols && c.fmt == F_PARQUET) {
		fail_job(j, "StoreError", false, "%s has no rows to give Parquet a schema", rel);
		goto out;
	}
	if (c.pw != NULL && parquet_finish(c.pw, &c.e) != 0) {
		fail_job(j, "StoreError", false, "%s", c.e.msg);
		goto out;
	}
	if (cloud) {
		/* nothing is visible before the commit (the block list, or the
		 * multipart upload's completion) succeeds */
		if (o->err || out_finish(o) != 0 || (bs != NULL ? blob_sink_commit(bs, &o->be) :
		    s3_sink_commit(s3s, &o->be)) != 0) {
			sink_failed(j, o, opath);
			goto out;
		}
		EVP_DigestFinal_ex(o->md, dg, &dl);
		hex(dg, dl, md);
		if (bs != NULL)
			blob_result(j, &c, o, bs, blob_name, md);
		else
			s3_result(j, &c, o, s3s, blob_name, md);
		goto out;
	}
	if (o->err || out_finish(o) != 0 || fsync(fd) != 0) {
		fail_job(j, "StoreError", true, "writing %s: %s", opath, strerror(errno));
		goto out;
	}
	close(fd);
	fd = -1;
	/* commit: the whole file appears under its name, or nothing does */
	if (rename(tmp, final) != 0 || atomicfile_fsync_dir(final, &fe) != 0) {
		fail_job(j, "StoreError", true, "committing %s: %s", opath, strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL;
	EVP_DigestFinal_ex(o->md, dg, &dl);
	hex(dg, dl, md);
	{
		cJSON *files = result_new(j, &c, o), *f = cJSON_CreateObject();

		cJSON_AddStringToObject(f, "path", opath);
		cJSON_AddNumberToObject(f, "bytes", (double)o->stored);
		cJSON_AddStringToObject(f, "sha256", md);
		cJSON_AddItemToArray(files, f);
	}
	goto out;
nomem:
	fail_job(j, "Internal", true, "out of memory");
out:
	if (fd >= 0)
		close(fd);
	if (in >= 0)
		close(in);
	if (tmp != NULL)
		unlink(tmp);
	if (o != NULL) {
		gzip_out_free(o->gz);
		EVP_MD_CTX_free(o->md);
		free(o);
	}
	if (c.names) {
		size_t i;

		for (i = 0; i < c.ncols; i++)
			free(c.names[i]);
		free(c.names);
		for (i = 0; c.types != NULL && i < c.ncols; i++)
			free(c.types[i]);
		free(c.types);
		for (i = 0; c.jkeys != NULL && i < c.ncols; i++)
			free(c.jkeys[i]);
		free(c.jkeys);
	}
	parquet_writer_free(c.pw);
	blob_sink_free(bs);
	s3_sink_free(s3s);	/* aborts an upload that was not completed */
	blob_secrets_free(&sec);
	csv_reader_free(rd);
	free(srcreal);
	free(dirreal);
	free(path);
	free(final);
	free(tmp);
}

static void *
job_thread(void *arg)
{
	struct cjob *j = arg;

	run_copy(j);
	event_active(j->done_ev, 0, 0);
	return NULL;
}

/* ---- jobs on the loop ---------------------------------------------------------- */

static void lease(struct copyd *d);

static void
job_free(struct copyd *d, struct cjob *j)
{
	struct cjob **pp;

	struct creq *r;

	for (pp = &d->jobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	for (r = d->reqs; r != NULL; r = r->next)	/* a heartbeat still under way */
		if (r->arg == j)
			r->arg = NULL;
	if (j->hb)
		event_free(j->hb);
	if (j->done_ev)
		event_free(j->done_ev);
	cJSON_Delete(j->spec);
	cJSON_Delete(j->result);
	free(j->allowed);
	free(j->writable);
	if (j->pc != NULL)
		proxy_config_unref(j->pc);
	free(j->ca_file);
	free(j);
}

static cJSON *
progress(struct cjob *j)
{
	cJSON *p = cJSON_CreateObject();

	cJSON_AddNumberToObject(p, "rowsRead", (double)atomic_load(&j->rows));
	cJSON_AddNumberToObject(p, "bytesWritten", (double)atomic_load(&j->bytes));
	return p;
}

static void
report_done(struct creq *r, CURLcode rc, long status)
{
	struct cjob *j = r->arg;
	struct copyd *d = r->d;

	if (rc != CURLE_OK || (status >= 500 && status != 501)) {
		/* the relay may have it or not: the lease decides; log and let it expire
		 * if it did not (the job runs again, the commit is idempotent) */
		log_warn("copy", "event=job.report_failed job=%s status=%ld error=%s", j->id, status,
		    log_q(rc != CURLE_OK ? r->err : "relay error"));
	} else {
		cJSON *o = resp_json(r);

		log_info("copy", "event=job.reported job=%s status=%ld state=%s", j->id, status,
		    log_q(str(o, "state", resp_code(o))));
		cJSON_Delete(o);
	}
	d->running--;
	job_free(d, j);
	lease(d);
}

static void
job_done(evutil_socket_t fd, short what, void *arg)
{
	struct cjob *j = arg;
	struct copyd *d = j->d;
	cJSON *b;
	char path[128];

	(void)fd;
	(void)what;
	if (j->started)
		pthread_join(j->th, NULL);
	j->started = false;
	evtimer_del(j->hb);
	if (j->lost || d->stopping) {
		log_info("copy", "event=job.abandoned job=%s why=%s", j->id,
		    j->lost ? "the relay took the lease back" : "shutting down");
		d->running--;
		job_free(d, j);
		lease(d);
		return;
	}
	b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "leaseId", j->lease_id);
	cJSON_AddItemToObject(b, "progress", progress(j));
	if (!j->failed) {
		cJSON_AddItemToObject(b, "result", j->result);
		j->result = NULL;
		snprintf(path, sizeof path, "/%s/complete", j->id);
		log_info("copy", "event=job.succeeded job=%s rows=%llu bytes=%llu", j->id,
		    (unsigned long long)atomic_load(&j->rows), (unsigned long long)atomic_load(&j->bytes));
	} else {
		cJSON *e = cJSON_AddObjectToObject(b, "error");

		cJSON_AddStringToObject(e, "code", j->code);
		cJSON_AddStringToObject(e, "message", j->msg);
		cJSON_AddBoolToObject(b, "retryable", j->retryable);
		snprintf(path, sizeof path, "/%s/fail", j->id);
		log_info("copy", "event=job.failed job=%s code=%s retryable=%d why=%s", j->id,
		    j->code, j->retryable, log_q(j->msg));
	}
	if (queue_post(d, path, b, 30, report_done, j) != 0) {
		d->running--;
		job_free(d, j);
		lease(d);
	}
	cJSON_Delete(b);
}

static void
hb_done(struct creq *r, CURLcode rc, long status)
{
	struct cjob *j = r->arg;

	if (j == NULL)		/* the job ended meanwhile */
		return;
	if (rc == CURLE_OK && status == 409) {
		cJSON *o = resp_json(r);

		log_info("copy", "event=job.stop job=%s why=%s", j->id, log_q(resp_code(o)));
		cJSON_Delete(o);
		j->lost = true;
		atomic_store(&j->stop, 1);
	} else if (rc != CURLE_OK || status != 200) {
		log_warn("copy", "event=job.heartbeat_failed job=%s status=%ld error=%s", j->id, status,
		    log_q(rc != CURLE_OK ? r->err : "relay error"));
	}
	j->reporting = false;
}

static void
heartbeat(evutil_socket_t fd, short what, void *arg)
{
	struct cjob *j = arg;
	cJSON *b;
	char path[128];

	(void)fd;
	(void)what;
	if (!j->started || j->reporting)
		return;
	b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "leaseId", j->lease_id);
	cJSON_AddNumberToObject(b, "visibilityTimeoutSeconds", VISIBILITY);
	cJSON_AddItemToObject(b, "progress", progress(j));
	snprintf(path, sizeof path, "/%s/heartbeat", j->id);
	if (queue_post(j->d, path, b, HEARTBEAT, hb_done, j) == 0)
		j->reporting = true;
	cJSON_Delete(b);
}

static void
start_job(struct copyd *d, cJSON *lease_answer)
{
	struct cjob *j = calloc(1, sizeof *j);
	const struct conf *c = node_conf(d->n);
	const char *id = str(lease_answer, "id", ""), *lid = str(lease_answer, "leaseId", "");
	struct timeval hb = { HEARTBEAT, 0 };

	if (j == NULL)
		return;
	j->d = d;
	snprintf(j->id, sizeof j->id, "%s", id);
	snprintf(j->lease_id, sizeof j->lease_id, "%s", lid);
	j->spec = cJSON_DetachItemFromObjectCaseSensitive(lease_answer, "job");
	j->allowed = strdup(c->allowed_folders ? c->allowed_folders : "");
	j->writable = strdup(c->writable_folders ? c->writable_folders : "");
	j->validation = c->local_folder_path_validation;
	j->pc = proxy_node_current(d->n);
	j->lma = c->local_machine_access;
	j->ca_file = c->copy_ca_file ? strdup(c->copy_ca_file) : NULL;
	j->mem_limit = (size_t)c->request_memory_limit << 20;
	j->creds = node_ext(d->n, NODE_EXT_CREDS);
	j->done_ev = event_new(d->base, -1, 0, job_done, j);
	j->hb = event_new(d->base, -1, EV_PERSIST, heartbeat, j);
	clock_gettime(CLOCK_MONOTONIC, &j->t0);
	j->since = time(NULL);
	j->dequeue_count = (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(lease_answer,
	    "dequeueCount"));
	j->next = d->jobs;
	d->jobs = j;
	d->running++;
	if (j->spec == NULL || j->allowed == NULL || j->writable == NULL || j->done_ev == NULL ||
	    j->hb == NULL || pthread_create(&j->th, NULL, job_thread, j) != 0) {
		fail_job(j, "Internal", true, "the node could not start the job");
		if (j->done_ev != NULL && j->hb != NULL) {
			event_active(j->done_ev, 0, 0);	/* reports the failure */
		} else {
			d->running--;
			job_free(d, j);
		}
		return;
	}
	j->started = true;
	evtimer_add(j->hb, &hb);
	log_info("copy", "event=job.started job=%s dequeue_count=%d running=%d", j->id,
	    (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(lease_answer, "dequeueCount")),
	    d->running);
}

static void
lease_later(struct copyd *d, int secs)
{
	struct timeval tv = { secs, 0 };

	evtimer_add(d->lease_timer, &tv);
}

static void
lease_done(struct creq *r, CURLcode rc, long status)
{
	struct copyd *d = r->d;

	d->leasing = false;
	if (d->stopping)
		return;
	if (rc == CURLE_OK && status == 200) {
		cJSON *o = resp_json(r);

		if (o != NULL)
			start_job(d, o);
		cJSON_Delete(o);
		lease(d);
		return;
	}
	if (rc == CURLE_OK && status == 204) {
		lease(d);
		return;
	}
	{
		cJSON *o = resp_json(r);

		log_warn("copy", "event=lease.failed status=%ld code=%s error=%s", status,
		    log_q(resp_code(o)), log_q(rc != CURLE_OK ? r->err : "the relay refused"));
		cJSON_Delete(o);
	}
	lease_later(d, 2);
}

static void
lease(struct copyd *d)
{
	cJSON *b;

	if (d->leasing || d->stopping || d->running >= d->max)
		return;
	b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "node", d->node_name);
	cJSON_AddNumberToObject(b, "waitSeconds", LEASE_WAIT);
	cJSON_AddNumberToObject(b, "visibilityTimeoutSeconds", VISIBILITY);
	if (queue_post(d, "/lease", b, LEASE_WAIT + 15, lease_done, NULL) == 0)
		d->leasing = true;
	else
		lease_later(d, 2);
	cJSON_Delete(b);
}

static void
lease_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	lease(arg);
}

/* ---- GET /v1/copy/jobs (control socket): what `shirctl jobs` shows ---------------- */

static const char *copy_off_why;

static void
api_jobs(struct api_reply *r, const struct api_request *rq, void *ud)
{
	struct copyd *d = the_copyd;
	cJSON *o = cJSON_CreateObject(), *a;
	struct cjob *j;

	(void)rq;
	(void)ud;
	cJSON_AddBoolToObject(o, "enabled", d != NULL);
	if (d == NULL)
		cJSON_AddStringToObject(o, "why", copy_off_why ? copy_off_why : "not started");
	cJSON_AddNumberToObject(o, "maxJobs", d ? d->max : 0);
	if (d != NULL)
		cJSON_AddStringToObject(o, "queue", d->base_url);
	a = cJSON_AddArrayToObject(o, "jobs");
	for (j = d ? d->jobs : NULL; j != NULL; j = j->next) {
		cJSON *x = cJSON_CreateObject();
		const cJSON *src = cJSON_GetObjectItemCaseSensitive(j->spec, "source");

		cJSON_AddStringToObject(x, "id", j->id);
		cJSON_AddNumberToObject(x, "dequeueCount", j->dequeue_count);
		cJSON_AddNumberToObject(x, "runningSeconds", (double)(time(NULL) - j->since));
		cJSON_AddNumberToObject(x, "rowsRead", (double)atomic_load(&j->rows));
		cJSON_AddNumberToObject(x, "bytesWritten", (double)atomic_load(&j->bytes));
		cJSON_AddStringToObject(x, "source", str(cJSON_GetObjectItemCaseSensitive(src, "dataset"),
		    "path", str(cJSON_GetObjectItemCaseSensitive(src, "dataset"), "type", "?")));
		cJSON_AddStringToObject(x, "sink", str(cJSON_GetObjectItemCaseSensitive(j->spec, "sink"),
		    "path", "?"));
		cJSON_AddStringToObject(x, "format", str(cJSON_GetObjectItemCaseSensitive(j->spec,
		    "format"), "type", "?"));
		cJSON_AddStringToObject(x, "state", j->started ? "running" : "reporting");
		cJSON_AddItemToArray(a, x);
	}
	api_reply_json(r, 200, o);
}

/* ---- life cycle ------------------------------------------------------------------ */

int
copy_node_start(struct node *n, struct shir_error *err)
{
	const struct conf *c = node_conf(n);
	const struct registration *reg = admin_node_registration(n);
	struct copyd *d;
	const char *ep;
	static bool routed;

	if (!routed) {
		if (api_route(node_api(n), "GET", "/v1/copy/jobs", API_FROM_LOCAL, api_jobs, NULL) != 0)
			return shir_error_set(err, SHIR_ENOMEM, "out of memory");
		routed = true;
	}
	if (c->copy_jobs <= 0) {
		copy_off_why = "node.copy_jobs = 0 in shird.conf";
		log_info("copy", "event=copy.off why=%s", log_q(copy_off_why));
		return 0;
	}
	if (reg == NULL || reg->endpoint == NULL) {
		copy_off_why = "the node was not registered when shird started";
		log_info("copy", "event=copy.off why=%s", log_q(copy_off_why));
		return 0;
	}
	ep = reg->endpoint;
	d = calloc(1, sizeof *d);
	if (d == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	d->n = n;
	d->base = node_base(n);
	d->max = c->copy_jobs;
	snprintf(d->node_name, sizeof d->node_name, "%s", node_name(n));
	snprintf(d->base_url, sizeof d->base_url, "%s%s/%s/v1/jobs",
	    strncmp(ep, "wss://", 6) == 0 ? "https://" : "http://",
	    ep + (strncmp(ep, "wss://", 6) == 0 ? 6 : strncmp(ep, "ws://", 5) == 0 ? 5 : 0), reg->hc);
	if (asprintf(&d->audience, "%s%s/%s", strncmp(ep, "wss://", 6) == 0 ? "https://" : "http://",
	    ep + (strncmp(ep, "wss://", 6) == 0 ? 6 : strncmp(ep, "ws://", 5) == 0 ? 5 : 0),
	    reg->hc) < 0)
		d->audience = NULL;
	d->key_name = strdup(reg->key_name);
	d->key = strdup(reg->key);
	d->ca_file = c->relay_ca_file ? strdup(c->relay_ca_file) : NULL;
	d->ce = curl_ev_new(d->base, check_done, d);
	d->multi = d->ce ? curl_ev_multi(d->ce) : NULL;
	d->check_ev = event_new(d->base, -1, 0, check_event, d);
	d->lease_timer = evtimer_new(d->base, lease_timer, d);
	the_copyd = d;
	if (d->audience == NULL || d->key_name == NULL || d->key == NULL || d->multi == NULL ||
	    d->check_ev == NULL || d->lease_timer == NULL) {
		copy_node_stop(n);
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	}
	log_info("copy", "event=copy.started jobs=%d queue=%s writable=%s", d->max, log_q(d->base_url),
	    log_q(c->writable_folders && *c->writable_folders ? c->writable_folders : "(none)"));
	lease(d);
	return 0;
}

void
copy_node_shutdown(struct node *n)
{
	struct copyd *d = the_copyd;
	struct cjob *j;

	(void)n;
	if (d == NULL)
		return;
	d->stopping = true;
	for (j = d->jobs; j != NULL; j = j->next)
		atomic_store(&j->stop, 1);
}

void
copy_node_stop(struct node *n)
{
	struct copyd *d = the_copyd;

	(void)n;
	if (d == NULL)
		return;
	d->stopping = true;
	while (d->jobs != NULL) {
		struct cjob *j = d->jobs;

		atomic_store(&j->stop, 1);
		if (j->started)
			pthread_join(j->th, NULL);
		job_free(d, j);
	}
	while (d->reqs != NULL)
		req_free(d, d->reqs);
	curl_ev_free(d->ce);
	if (d->check_ev)
		event_free(d->check_ev);
	if (d->lease_timer)
		event_free(d->lease_timer);
	if (d->key)
		OPENSSL_cleanse(d->key, strlen(d->key));
	free(d->key);
	free(d->key_name);
	free(d->audience);
	free(d->ca_file);
	free(d);
	the_copyd = NULL;
}
