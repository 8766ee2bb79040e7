/* relay_jobs: the copy-job queue of shir-relay (docs/copy.md). Senders with
 * the Send key submit jobs to a hybrid connection (POST /{hc}/v1/jobs), read
 * them and cancel them; nodes holding the Listen key lease them by long poll
 * (POST /{hc}/v1/jobs/lease), extend the lease with heartbeats that carry
 * progress, and complete or fail them. The semantics are Azure Queue's: a
 * leased job is invisible until its lease expires; every lease counts one
 * dequeue; a job whose attempts are used up goes to the dead-letter state.
 *
 * Every job is one JSON file "<state dir>/jobs/<id>.json" (0600), replaced
 * atomically (common/atomicfile) at every change, so a relay restart or a
 * kill -9 loses nothing that was acknowledged: a job is answered 201 only
 * once its file is on disk, a lease only once its lease is. */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "common/jsonutil.h"
#include "relay/server/relay_srv_int.h"

#define JOB_BODY_MAX 65536	/* a request body to the queue */
#define JOB_FILE_MAX (4 * JOB_BODY_MAX)
#define LEASE_WAIT_MAX 50	/* seconds a lease request may wait */
#define VIS_MIN 5
#define VIS_MAX 3600
#define VIS_DEFAULT 60
#define ATTEMPTS_DEFAULT 3
#define ATTEMPTS_MAX 20
#define NODE_MAX 128

enum jstate { J_QUEUED = 0, J_RUNNING, J_SUCCEEDED, J_FAILED, J_CANCELLED, J_DEADLETTERED, J_NSTATES };

static const char *const jstate_names[J_NSTATES] = {
	"Queued", "Running", "Succeeded", "Failed", "Cancelled", "DeadLettered"
};

struct job {
	struct job *next, *prev;
	char id[RANDOM_UUID_LEN + 1];
	char *hc;
	enum jstate st;
	uint64_t seq;			/* submission order */
	cJSON *spec;			/* source, sink, format, options as submitted */
	int64_t created, updated;	/* ms since the epoch */
	int64_t visible_at;		/* Queued: not leased before this */
	int64_t lease_expires;		/* Running */
	int64_t started, finished;
	char lease_id[RANDOM_UUID_LEN + 1];
	char node[NODE_MAX];
	int dequeue_count, max_attempts;
	cJSON *progress, *result, *error;
};

/* A node waiting in a lease request. */
struct jwait {
	struct jwait *next, *prev;
	struct hconn *h;
	struct event *timer;
	char node[NODE_MAX];
	int vis;
};

struct rjobs {
	struct rsrv *s;
	char *dir;
	struct job *head, *tail;
	size_t n;
	uint64_t seq;
	struct jwait *waiters;
	struct event *tick;
	uint64_t submitted, leased, expired, deadlettered, completed, failed, cancelled;
	uint64_t write_errors;
};

/* ---- small helpers ---------------------------------------------------------- */

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
iso_time(int64_t ms, char *out, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
add_time(cJSON *o, const char *name, int64_t ms)
{
	char b[32];

	if (ms <= 0)
		return;
	iso_time(ms, b, sizeof b);
	cJSON_AddStringToObject(o, name, b);
}

static bool
terminal(enum jstate st)
{
	return st >= J_SUCCEEDED;
}

static struct job *
job_find(struct rjobs *q, const char *id)
{
	struct job *j;

	for (j = q->head; j != NULL; j = j->next)
		if (strcmp(j->id, id) == 0)
			return j;
	return NULL;
}

static void
job_unlink(struct rjobs *q, struct job *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else
		q->head = j->next;
	if (j->next)
		j->next->prev = j->prev;
	else
		q->tail = j->prev;
	j->next = j->prev = NULL;
	q->n--;
}

/* Appends in submission order (seq). */
static void
job_link(struct rjobs *q, struct job *j)
{
	struct job *at = q->tail;

	while (at != NULL && at->seq > j->seq)
		at = at->prev;
	j->prev = at;
	j->next = at ? at->next : q->head;
	if (at)
		at->next = j;
	else
		q->head = j;
	if (j->next)
		j->next->prev = j;
	else
		q->tail = j;
	q->n++;
	if (j->seq >= q->seq)
		q->seq = j->seq + 1;
}

static void
job_free(struct job *j)
{
	if (j == NULL)
		return;
	free(j->hc);
	cJSON_Delete(j->spec);
	cJSON_Delete(j->progress);
	cJSON_Delete(j->result);
	cJSON_Delete(j->error);
	free(j);
}

static void
job_path(const struct rjobs *q, const char *id, char *out, size_t len)
{
	snprintf(out, len, "%s/%s.json", q->dir, id);
}

/* ---- the file of a job -------------------------------------------------------- */

static cJSON *
job_to_json(const struct job *j, bool full)
{
	cJSON *o = cJSON_CreateObject();

	if (o == NULL)
		return NULL;
	cJSON_AddStringToObject(o, "id", j->id);
	cJSON_AddStringToObject(o, "hybridConnection", j->hc);
	cJSON_AddStringToObject(o, "state", jstate_names[j->st]);
	cJSON_AddNumberToObject(o, "dequeueCount", j->dequeue_count);
	cJSON_AddNumberToObject(o, "maxAttempts", j->max_attempts);
	if (full) {
		cJSON_AddNumberToObject(o, "seq", (double)j->seq);
		cJSON_AddNumberToObject(o, "createdMs", (double)j->created);
		cJSON_AddNumberToObject(o, "updatedMs", (double)j->updated);
		cJSON_AddNumberToObject(o, "visibleAtMs", (double)j->visible_at);
		cJSON_AddNumberToObject(o, "leaseExpiresMs", (double)j->lease_expires);
		cJSON_AddNumberToObject(o, "startedMs", (double)j->started);
		cJSON_AddNumberToObject(o, "finishedMs", (double)j->finished);
		cJSON_AddStringToObject(o, "leaseId", j->lease_id);
	}
	add_time(o, "created", j->created);
	add_time(o, "updated", j->updated);
	add_time(o, "started", j->started);
	add_time(o, "finished", j->finished);
	if (j->st == J_RUNNING)
		add_time(o, "leaseExpires", j->lease_expires);
	if (j->node[0])
		cJSON_AddStringToObject(o, "node", j->node);
	if (j->progress)
		cJSON_AddItemToObject(o, "progress", cJSON_Duplicate(j->progress, true));
	if (j->result)
		cJSON_AddItemToObject(o, "result", cJSON_Duplicate(j->result, true));
	if (j->error)
		cJSON_AddItemToObject(o, "error", cJSON_Duplicate(j->error, true));
	return o;
}

/* Secret values a job may carry inline (docs/copy.md recommends credential
 * references instead): never shown to a sender, an admin or a log. */
static bool
secret_key(const char *k)
{
	static const char *const names[] = { "password", "sasUrl", "sasToken", "accountKey",
		"secretAccessKey", "connectionString", "sessionToken" };
	size_t i;

	for (i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcasecmp(k, names[i]) == 0)
			return true;
	return false;
}

static void
redact(cJSON *o)
{
	cJSON *c;

	for (c = o ? o->child : NULL; c != NULL; c = c->next) {
		if (c->string != NULL && secret_key(c->string) && cJSON_IsString(c)) {
			cJSON_SetValuestring(c, "(redacted)");
			continue;
		}
		redact(c);
	}
}

/* What a sender or the admin sees: the job with its spec, secrets redacted. */
static cJSON *
job_view(const struct job *j)
{
	cJSON *o = job_to_json(j, false), *sp;

	if (o == NULL)
		return NULL;
	sp = cJSON_Duplicate(j->spec, true);
	redact(sp);
	if (sp)
		cJSON_AddItemToObject(o, "job", sp);
	return o;
}

static int
job_save(struct rjobs *q, struct job *j)
{
	cJSON *o = job_to_json(j, true);
	char *txt = NULL, path[4096];
	struct shir_error e;
	int rc = SHIR_ENOMEM;

	if (o == NULL)
		return rc;
	cJSON_AddItemToObject(o, "spec", cJSON_Duplicate(j->spec, true));
	txt = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (txt == NULL)
		return rc;
	job_path(q, j->id, path, sizeof path);
	rc = atomicfile_write(path, txt, strlen(txt), 0600, &e);
	free(txt);
	if (rc != 0) {
		q->write_errors++;
		log_error("jobs", "event=job.save_failed job=%s error=%s", j->id, log_q(e.msg));
	}
	return rc;
}

static void
job_unlink_file(struct rjobs *q, const char *id)
{
	char path[4096];

	job_path(q, id, path, sizeof path);
	if (unlink(path) != 0 && errno != ENOENT)
		log_warn("jobs", "event=job.unlink_failed job=%s error=%s", id, log_q(strerror(errno)));
}

static long long
num(const cJSON *o, const char *k)
{
	long long v = 0;

	if (json_whole(cJSON_GetObjectItemCaseSensitive(o, k), 0, INT64_MAX, &v) != 0)
		return 0;
	return v;
}

static cJSON *
take(cJSON *o, const char *k)
{
	cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(o, k);

	if (v != NULL && cJSON_IsNull(v)) {
		cJSON_Delete(v);
		return NULL;
	}
	return v;
}

static struct job *
job_from_json(cJSON *o)
{
	struct job *j = calloc(1, sizeof *j);
	const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "id"));
	const char *hc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "hybridConnection"));
	const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "state"));
	const char *lid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "leaseId"));
	const char *node = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "node"));
	int i;

	if (j == NULL)
		return NULL;
	if (id == NULL || strlen(id) != RANDOM_UUID_LEN || hc == NULL || st == NULL)
		goto bad;
	snprintf(j->id, sizeof j->id, "%s", id);
	if ((j->hc = strdup(hc)) == NULL)
		goto bad;
	for (i = 0; i < J_NSTATES; i++)
		if (strcmp(st, jstate_names[i]) == 0)
			break;
	if (i == J_NSTATES)
		goto bad;
	j->st = (enum jstate)i;
	snprintf(j->lease_id, sizeof j->lease_id, "%s", lid ? lid : "");
	snprintf(j->node, sizeof j->node, "%s", node ? node : "");
	j->seq = (uint64_t)num(o, "seq");
	j->created = num(o, "createdMs");
	j->updated = num(o, "updatedMs");
	j->visible_at = num(o, "visibleAtMs");
	j->lease_expires = num(o, "leaseExpiresMs");
	j->started = num(o, "startedMs");
	j->finished = num(o, "finishedMs");
	j->dequeue_count = (int)num(o, "dequeueCount");
	j->max_attempts = (int)num(o, "maxAttempts");
	if (j->max_attempts < 1 || j->max_attempts > ATTEMPTS_MAX)
		j->max_attempts = ATTEMPTS_DEFAULT;
	j->spec = take(o, "spec");
	j->progress = take(o, "progress");
	j->result = take(o, "result");
	j->error = take(o, "error");
	if (!cJSON_IsObject(j->spec))
		goto bad;
	return j;
bad:
	job_free(j);
	return NULL;
}

static int
jobs_load(struct rjobs *q, struct shir_error *e)
{
	DIR *d = opendir(q->dir);
	struct dirent *de;
	size_t bad = 0;

	if (d == NULL)
		return shir_error_set(e, SHIR_EIO, "cannot open the job directory %s: %s", q->dir,
		    strerror(errno));
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		char path[4096], *txt = NULL;
		size_t len;
		cJSON *o;
		struct job *j;
		struct shir_error fe;

		if (l != RANDOM_UUID_LEN + 5 || strcmp(de->d_name + RANDOM_UUID_LEN, ".json") != 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", q->dir, de->d_name);
		if (atomicfile_read(path, JOB_FILE_MAX, &txt, &len, &fe) != 0) {
			log_warn("jobs", "event=job.load_failed file=%s error=%s", log_q(path), log_q(fe.msg));
			bad++;
			continue;
		}
		o = cJSON_ParseWithLength(txt, len);
		free(txt);
		j = o ? job_from_json(o) : NULL;
		cJSON_Delete(o);
		if (j == NULL || q->n >= (size_t)q->s->conf->max_jobs) {
			log_warn("jobs", "event=job.load_failed file=%s error=%s", log_q(path),
			    j ? "too many jobs" : "not a job file");
			job_free(j);
			bad++;
			continue;
		}
		job_link(q, j);
	}
	closedir(d);
	log_info("jobs", "event=jobs.loaded dir=%s jobs=%zu unreadable=%zu", log_q(q->dir), q->n, bad);
	return 0;
}

/* ---- the state machine ------------------------------------------------------- */

/* The one setter of a job's state: writes the file, then logs old -> new.
 * When the file cannot be written the caller puts the job back as it was
 * (snap_settle) and answers 503: what is not on disk was not done. */
static int
job_set_state(struct rjobs *q, struct job *j, enum jstate st, const char *why)
{
	enum jstate old = j->st;
	int rc;

	j->st = st;
	j->updated = now_ms();
	if (terminal(st))
		j->finished = j->updated;
	if (st != J_RUNNING)
		j->lease_id[0] = '\0';
	if ((rc = job_save(q, j)) != 0)
		return rc;
	if (old != st)
		log_info("jobs", "event=job.state job=%s hc=%s from=%s to=%s dequeue_count=%d node=%s "
		    "why=%s", j->id, log_q(j->hc), jstate_names[old], jstate_names[st], j->dequeue_count,
		    log_q(j->node[0] ? j->node : "-"), log_q(why));
	switch (st) {
	case J_SUCCEEDED: q->completed++; break;
	case J_FAILED: q->failed++; break;
	case J_CANCELLED: q->cancelled++; break;
	case J_DEADLETTERED: q->deadlettered++; break;
	default: break;
	}
	return 0;
}

/* What a change may alter, kept to put the job back if its file cannot be
 * written. */
struct jsnap {
	enum jstate st;
	char lease_id[RANDOM_UUID_LEN + 1];
	char node[NODE_MAX];
	int64_t updated, visible_at, lease_expires, started, finished;
	int dequeue_count;
	cJSON *progress, *result, *error;
};

static void
snap_take(const struct job *j, struct jsnap *s)
{
	s->st = j->st;
	memcpy(s->lease_id, j->lease_id, sizeof s->lease_id);
	memcpy(s->node, j->node, sizeof s->node);
	s->started = j->started;
	s->updated = j->updated;
	s->visible_at = j->visible_at;
	s->lease_expires = j->lease_expires;
	s->finished = j->finished;
	s->dequeue_count = j->dequeue_count;
	s->progress = j->progress ? cJSON_Duplicate(j->progress, true) : NULL;
	s->result = j->result ? cJSON_Duplicate(j->result, true) : NULL;
	s->error = j->error ? cJSON_Duplicate(j->error, true) : NULL;
}

static void
snap_restore(struct job *j, struct jsnap *s)
{
	j->st = s->st;
	memcpy(j->lease_id, s->lease_id, sizeof j->lease_id);
	memcpy(j->node, s->node, sizeof j->node);
	j->started = s->started;
	j->updated = s->updated;
	j->visible_at = s->visible_at;
	j->lease_expires = s->lease_expires;
	j->finished = s->finished;
	j->dequeue_count = s->dequeue_count;
	cJSON_Delete(j->progress);
	cJSON_Delete(j->result);
	cJSON_Delete(j->error);
	j->progress = s->progress;
	j->result = s->result;
	j->error = s->error;
	s->progress = s->result = s->error = NULL;
}

static void
snap_drop(struct jsnap *s)
{
	cJSON_Delete(s->progress);
	cJSON_Delete(s->result);
	cJSON_Delete(s->error);
}

/* Ends a change begun with snap_take: rc != 0 (it did not reach the disk)
 * puts the job back as it was. Returns rc. */
static int
snap_settle(struct job *j, struct jsnap *s, int rc)
{
	if (rc != 0)
		snap_restore(j, s);
	snap_drop(s);
	return rc;
}

static void
set_error(struct job *j, const char *code, const char *msg)
{
	cJSON_Delete(j->error);
	j->error = cJSON_CreateObject();
	cJSON_AddStringToObject(j->error, "code", code);
	cJSON_AddStringToObject(j->error, "message", msg);
}

/* An attempt ended without success (lease expired, or the node failed it
 * with a retryable error): queued again, or dead-lettered when its attempts
 * are used up. */
static int
job_retry_or_dead(struct rjobs *q, struct job *j, const char *why)
{
	if (j->dequeue_count >= j->max_attempts)
		return job_set_state(q, j, J_DEADLETTERED, why);
	/* back-off before the next attempt: 2, 4, 8 ... at most 60 seconds */
	j->visible_at = now_ms() + 1000LL * (j->dequeue_count < 5 ? 1 << j->dequeue_count : 60);
	return job_set_state(q, j, J_QUEUED, why);
}

static bool
job_visible(const struct job *j, int64_t now)
{
	return j->st == J_QUEUED && j->visible_at <= now;
}

/* ---- answering HTTP ------------------------------------------------------------ */

static void
answer(struct hconn *h, int status, cJSON *body)
{
	struct hc_response r = { 0 };
	char *txt = body ? cJSON_PrintUnformatted(body) : NULL;

	cJSON_Delete(body);
	if (body != NULL && txt == NULL) {
		hconn_fail(h, 500, "out of memory");
		return;
	}
	r.status = status;
	r.body = txt != NULL;
	if (txt)
		hc_headers_add(&r.headers, "Content-Type", "application/json");
	h_response(h, &r, NULL);
	if (txt)
		h_resp_body(h, (const uint8_t *)txt, strlen(txt), true);
	hc_headers_clear(&r.headers);
	free(txt);
}

static void
answer_error(struct hconn *h, int status, const char *code, const char *msg)
{
	cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");

	cJSON_AddStringToObject(o, "status", "Failed");
	cJSON_AddStringToObject(e, "code", code);
	cJSON_AddStringToObject(e, "message", msg);
	answer(h, status, o);
}

static cJSON *
lease_json(const struct job *j)
{
	cJSON *o = job_to_json(j, false);

	if (o == NULL)
		return NULL;
	cJSON_AddStringToObject(o, "leaseId", j->lease_id);
	cJSON_AddItemToObject(o, "job", cJSON_Duplicate(j->spec, true));
	return o;
}

/* ---- leases ------------------------------------------------------------------- */

static void
waiter_free(struct rjobs *q, struct jwait *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		q->waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	if (w->timer)
		event_free(w->timer);
	w->h->jobs_wait = NULL;
	free(w);
}

/* Gives j to the lease request h (visibility vis seconds). */
static void
lease_to(struct rjobs *q, struct job *j, struct hconn *h, const char *node, int vis)
{
	struct jsnap sn;
	char lid[RANDOM_UUID_LEN + 1];

	if (random_uuid(lid) != 0) {
		answer_error(h, 500, "Internal", "the relay's random source failed");
		return;
	}
	snap_take(j, &sn);
	memcpy(j->lease_id, lid, sizeof lid);
	j->dequeue_count++;
	snprintf(j->node, sizeof j->node, "%s", node);
	j->lease_expires = now_ms() + 1000LL * vis;
	if (j->started == 0)
		j->started = now_ms();
	cJSON_Delete(j->error);
	j->error = NULL;
	if (snap_settle(j, &sn, job_set_state(q, j, J_RUNNING, "leased")) != 0) {
		/* not on disk: the lease is not given */
		answer_error(h, 503, "ServerBusy", "the relay could not write the lease to its state "
		    "directory; try again");
		return;
	}
	q->leased++;
	answer(h, 200, lease_json(j));
}

static struct job *
first_visible(struct rjobs *q, const char *hc, int64_t now)
{
	struct job *j;

	for (j = q->head; j != NULL; j = j->next)
		if (job_visible(j, now) && strcmp(j->hc, hc) == 0)
			return j;
	return NULL;
}

/* Hands visible jobs to waiting nodes, oldest waiter first. */
static void
dispatch(struct rjobs *q)
{
	struct jwait *w, *wn;
	int64_t now = now_ms();

	for (w = q->waiters; w != NULL; w = wn) {
		struct job *j;
		struct hconn *h = w->h;
		char node[NODE_MAX];
		int vis = w->vis;

		wn = w->next;
		if (h->ent == NULL || (j = first_visible(q, h->ent->name, now)) == NULL)
			continue;
		snprintf(node, sizeof node, "%s", w->node);
		waiter_free(q, w);
		lease_to(q, j, h, node, vis);
		wn = q->waiters;	/* answering may have changed the list */
	}
}

static void
waiter_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct jwait *w = arg;
	struct hconn *h = w->h;

	waiter_free(h->s->jobs, w);
	answer(h, 204, NULL);
}

static void
tick(evutil_socket_t fd, short what, void *arg)
{
	struct rjobs *q = arg;
	struct job *j;
	int64_t now = now_ms();

	for (j = q->head; j != NULL; j = j->next) {
		if (j->st != J_RUNNING || j->lease_expires > now)
			continue;
		q->expired++;
		set_error(j, "LeaseExpired", "the node that leased the job stopped sending "
		    "heartbeats before the lease expired");
		job_retry_or_dead(q, j, "lease expired");
	}
	if (q->waiters)
		dispatch(q);
}

/* ---- requests ------------------------------------------------------------------ */

static const char *
str_field(const cJSON *o, const char *k)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static bool
typed_object(const cJSON *o, const char *k, char *why, size_t wl, const char *where)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	if (!cJSON_IsObject(v)) {
		snprintf(why, wl, "%s%s is missing or not an object", where, k);
		return false;
	}
	if (str_field(v, "type") == NULL || !*str_field(v, "type")) {
		snprintf(why, wl, "%s%s.type is missing or not a string", where, k);
		return false;
	}
	return true;
}

/* The shape the relay checks (the node checks the rest: its policy decides). */
static bool
spec_ok(const cJSON *o, int *attempts, char *why, size_t wl)
{
	static const char *const sinks[] = { "AzureBlob", "S3", "FileSystem" };
	static const char *const formats[] = { "DelimitedText", "JsonLines", "Parquet" };
	const cJSON *src = cJSON_GetObjectItemCaseSensitive(o, "source");
	const cJSON *opt = cJSON_GetObjectItemCaseSensitive(o, "options");
	const char *t;
	size_t i;
	long long a = ATTEMPTS_DEFAULT;

	if (!cJSON_IsObject(o)) {
		snprintf(why, wl, "the body is not a JSON object");
		return false;
	}
	if (!cJSON_IsObject(src)) {
		snprintf(why, wl, "source is missing or not an object");
		return false;
	}
	if (!typed_object(src, "linkedService", why, wl, "source.") ||
	    !typed_object(src, "dataset", why, wl, "source.") ||
	    !typed_object(o, "sink", why, wl, "") || !typed_object(o, "format", why, wl, ""))
		return false;
	t = str_field(cJSON_GetObjectItemCaseSensitive(o, "sink"), "type");
	for (i = 0; i < 3 && strcmp(t, sinks[i]) != 0; i++)
		;
	if (i == 3) {
		snprintf(why, wl, "sink.type '%.64s' is not AzureBlob, S3 or FileSystem", t);
		return false;
	}
	t = str_field(cJSON_GetObjectItemCaseSensitive(o, "format"), "type");
	for (i = 0; i < 3 && strcmp(t, formats[i]) != 0; i++)
		;
	if (i == 3) {
		snprintf(why, wl, "format.type '%.64s' is not DelimitedText, JsonLines or Parquet", t);
		return false;
	}
	if (opt != NULL && !cJSON_IsObject(opt)) {
		snprintf(why, wl, "options is not an object");
		return false;
	}
	if (opt != NULL && cJSON_GetObjectItemCaseSensitive(opt, "maxAttempts") != NULL &&
	    json_whole(cJSON_GetObjectItemCaseSensitive(opt, "maxAttempts"), 1, ATTEMPTS_MAX, &a) != 0) {
		snprintf(why, wl, "options.maxAttempts must be a whole number from 1 to %d", ATTEMPTS_MAX);
		return false;
	}
	*attempts = (int)a;
	return true;
}

/* Room for one more job: the oldest finished one goes if the queue is full. */
static bool
make_room(struct rjobs *q)
{
	struct job *j;

	if (q->n < (size_t)q->s->conf->max_jobs)
		return true;
	for (j = q->head; j != NULL; j = j->next)
		if (terminal(j->st)) {
			job_unlink(q, j);
			job_unlink_file(q, j->id);
			log_info("jobs", "event=job.dropped job=%s state=%s why=%s", j->id,
			    jstate_names[j->st], "the queue holds limits.max_jobs jobs");
			job_free(j);
			return true;
		}
	return false;
}

static void
op_submit(struct rjobs *q, struct hconn *h, cJSON *body)
{
	struct job *j = NULL;
	char why[256];
	int attempts = ATTEMPTS_DEFAULT;

	if (!spec_ok(body, &attempts, why, sizeof why)) {
		answer_error(h, 400, "InvalidRequest", why);
		return;
	}
	if (!make_room(q)) {
		snprintf(why, sizeof why, "the relay holds its maximum of unfinished jobs "
		    "(limits.max_jobs = %d); retry when some have finished", h->s->conf->max_jobs);
		answer_error(h, 503, "QueueFull", why);
		return;
	}
	j = calloc(1, sizeof *j);
	if (j == NULL || (j->hc = strdup(h->ent->name)) == NULL || random_uuid(j->id) != 0) {
		job_free(j);
		answer_error(h, 500, "Internal", "out of memory or no random bytes");
		return;
	}
	j->spec = cJSON_Duplicate(body, true);
	j->seq = q->seq;
	j->created = j->updated = j->visible_at = now_ms();
	j->max_attempts = attempts;
	j->st = J_QUEUED;
	if (j->spec == NULL || job_save(q, j) != 0) {
		job_free(j);
		answer_error(h, 503, "ServerBusy", "the relay could not write the job to its state "
		    "directory; it was not queued");
		return;
	}
	job_link(q, j);
	q->submitted++;
	log_info("jobs", "event=job.submitted job=%s hc=%s peer=%s source=%s sink=%s format=%s", j->id,
	    log_q(j->hc), h->peer,
	    log_q(str_field(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(body,
	    "source"), "dataset"), "type")),
	    log_q(str_field(cJSON_GetObjectItemCaseSensitive(body, "sink"), "type")),
	    log_q(str_field(cJSON_GetObjectItemCaseSensitive(body, "format"), "type")));
	answer(h, 201, job_view(j));
	dispatch(q);
}

static int
vis_of(const cJSON *body, int *vis)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, "visibilityTimeoutSeconds");
	long long x = VIS_DEFAULT;

	if (v != NULL && json_whole(v, VIS_MIN, VIS_MAX, &x) != 0)
		return -1;
	*vis = (int)x;
	return 0;
}

static void
op_lease(struct rjobs *q, struct hconn *h, cJSON *body)
{
	const char *node = str_field(body, "node");
	const cJSON *wv = cJSON_GetObjectItemCaseSensitive(body, "waitSeconds");
	long long wait = 0;
	int vis;
	struct job *j;
	struct jwait *w;
	int wmax = h->s->conf->response_timeout - 5;

	if (wmax > LEASE_WAIT_MAX)
		wmax = LEASE_WAIT_MAX;
	if (wmax < 0)
		wmax = 0;
	if (node == NULL || !*node || strlen(node) >= NODE_MAX) {
		answer_error(h, 400, "InvalidRequest", "node is missing or not a string of 1 to 127 "
		    "characters");
		return;
	}
	if (wv != NULL && json_whole(wv, 0, wmax, &wait) != 0) {
		char why[160];

		snprintf(why, sizeof why, "waitSeconds must be a whole number from 0 to %d", wmax);
		answer_error(h, 400, "InvalidRequest", why);
		return;
	}
	if (vis_of(body, &vis) != 0) {
		answer_error(h, 400, "InvalidRequest", "visibilityTimeoutSeconds must be a whole number "
		    "from 5 to 3600");
		return;
	}
	j = first_visible(q, h->ent->name, now_ms());
	if (j != NULL) {
		lease_to(q, j, h, node, vis);
		return;
	}
	if (wait == 0 || h->s->shutting_down) {
		answer(h, 204, NULL);
		return;
	}
	w = calloc(1, sizeof *w);
	if (w == NULL || (w->timer = evtimer_new(h->s->base, waiter_timeout, w)) == NULL) {
		free(w);
		answer_error(h, 500, "Internal", "out of memory");
		return;
	}
	w->h = h;
	w->vis = vis;
	snprintf(w->node, sizeof w->node, "%s", node);
	{
		struct timeval tv = { (time_t)wait, 0 };
		struct jwait **pp = &q->waiters;

		evtimer_add(w->timer, &tv);
		while (*pp != NULL) {		/* oldest waiter first */
			w->prev = *pp;
			pp = &(*pp)->next;
		}
		*pp = w;
	}
	h->jobs_wait = w;
}

/* The job named by a node's request, with its lease checked. */
static struct job *
leased_job(struct rjobs *q, struct hconn *h, const char *id, const cJSON *body)
{
	struct job *j = job_find(q, id);
	const char *lid = str_field(body, "leaseId");

	if (j == NULL || strcmp(j->hc, h->ent->name) != 0) {
		answer_error(h, 404, "JobNotFound", "no such job on this hybrid connection");
		return NULL;
	}
	if (lid == NULL) {
		answer_error(h, 400, "InvalidRequest", "leaseId is missing or not a string");
		return NULL;
	}
	if (j->st == J_CANCELLED) {
		answer_error(h, 409, "JobCancelled", "the job was cancelled: stop it and discard "
		    "what it did not commit");
		return NULL;
	}
	if (j->st != J_RUNNING || strlen(lid) != strlen(j->lease_id) ||
	    CRYPTO_memcmp(lid, j->lease_id, strlen(lid)) != 0) {
		answer_error(h, 409, "LeaseLost", "this lease is no longer the job's (it expired and "
		    "the job was queued again, or it finished): stop working on it");
		return NULL;
	}
	return j;
}

static void
op_heartbeat(struct rjobs *q, struct hconn *h, const char *id, cJSON *body)
{
	struct job *j = leased_job(q, h, id, body);
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(body, "progress");
	int vis;
	cJSON *o;

	if (j == NULL)
		return;
	if (vis_of(body, &vis) != 0) {
		answer_error(h, 400, "InvalidRequest", "visibilityTimeoutSeconds must be a whole number "
		    "from 5 to 3600");
		return;
	}
	if (p != NULL && !cJSON_IsObject(p)) {
		answer_error(h, 400, "InvalidRequest", "progress is not an object");
		return;
	}
	if (p != NULL) {
		cJSON_Delete(j->progress);
		j->progress = cJSON_Duplicate(p, true);
	}
	j->lease_expires = now_ms() + 1000LL * vis;
	j->updated = now_ms();
	if (job_save(q, j) != 0) {
		answer_error(h, 503, "ServerBusy", "the relay could not write the lease; the old "
		    "lease stands, retry the heartbeat");
		return;
	}
	o = job_to_json(j, false);
	answer(h, 200, o);
}

static void
op_finish(struct rjobs *q, struct hconn *h, const char *id, cJSON *body, bool ok)
{
	struct job *j = leased_job(q, h, id, body);
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(body, ok ? "result" : "error");
	struct jsnap sn;
	int rc;

	if (j == NULL)
		return;
	if (!cJSON_IsObject(r)) {
		answer_error(h, 400, "InvalidRequest", ok ? "result is missing or not an object" :
		    "error is missing or not an object");
		return;
	}
	snap_take(j, &sn);
	if (ok) {
		cJSON_Delete(j->result);
		j->result = cJSON_Duplicate(r, true);
		if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(body, "progress"))) {
			cJSON_Delete(j->progress);
			j->progress = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(body, "progress"),
			    true);
		}
		rc = job_set_state(q, j, J_SUCCEEDED, "completed by the node");
	} else {
		const char *code = str_field(r, "code"), *msg = str_field(r, "message");

		set_error(j, code ? code : "Failed", msg ? msg : "the node reported no message");
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "retryable")))
			rc = job_retry_or_dead(q, j, "failed, retryable");
		else
			rc = job_set_state(q, j, J_FAILED, "failed by the node");
	}
	if (snap_settle(j, &sn, rc) != 0) {
		answer_error(h, 503, "ServerBusy", "the relay could not write the job's new state; "
		    "the lease stands, retry");
		return;
	}
	answer(h, 200, job_to_json(j, false));
	dispatch(q);
}

static int
job_cancel(struct rjobs *q, struct job *j, const char *who)
{
	char why[96];
	struct jsnap sn;

	if (terminal(j->st))
		return SHIR_EEXIST;
	snprintf(why, sizeof why, "cancelled by %s", who);
	snap_take(j, &sn);
	set_error(j, "Cancelled", why);
	return snap_settle(j, &sn, job_set_state(q, j, J_CANCELLED, why));
}

static void
op_sender_job(struct rjobs *q, struct hconn *h, const char *id, bool cancel)
{
	struct job *j = job_find(q, id);
	int rc;

	if (j == NULL || strcmp(j->hc, h->ent->name) != 0) {
		answer_error(h, 404, "JobNotFound", "no such job on this hybrid connection");
		return;
	}
	if (cancel && (rc = job_cancel(q, j, "the sender")) != 0) {
		char why[128];

		if (rc != SHIR_EEXIST) {
			answer_error(h, 503, "ServerBusy", "the relay could not write the cancel; the "
			    "job was not cancelled, retry");
			return;
		}
		snprintf(why, sizeof why, "the job has already finished (%s)", jstate_names[j->st]);
		answer_error(h, 409, "JobFinished", why);
		return;
	}
	answer(h, 200, job_view(j));
}

static void
op_list(struct rjobs *q, struct hconn *h)
{
	cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "jobs");
	struct job *j;
	int n = 0;

	bool more = false;

	for (j = q->tail; j != NULL; j = j->prev) {
		if (strcmp(j->hc, h->ent->name) != 0 ||
		    (h->jobs_filter >= 0 && (int)j->st != h->jobs_filter))
			continue;
		if (n == 1000) {
			more = true;
			break;
		}
		cJSON_AddItemToArray(a, job_to_json(j, false));
		n++;
	}
	cJSON_AddBoolToObject(o, "truncated", more);
	answer(h, 200, o);
}

/* ---- routing ----------------------------------------------------------------- */

enum jop { OP_NONE, OP_SUBMIT, OP_LIST, OP_GET, OP_CANCEL, OP_LEASE, OP_HEARTBEAT, OP_COMPLETE,
	OP_FAIL };

/* Parses "/v1/jobs[/ID[/verb]]" with the method; *id gets the ID. */
static enum jop
parse_op(const char *method, const char *suffix, char id[RANDOM_UUID_LEN + 1])
{
	const char *p = suffix + strlen("/v1/jobs"), *slash;
	bool post = strcmp(method, "POST") == 0, get = strcmp(method, "GET") == 0;
	size_t l;

	id[0] = '\0';
	if (*p == '\0' || strcmp(p, "/") == 0)
		return post ? OP_SUBMIT : get ? OP_LIST : OP_NONE;
	if (strcmp(p, "/lease") == 0)
		return post ? OP_LEASE : OP_NONE;
	p++;
	slash = strchr(p, '/');
	l = slash ? (size_t)(slash - p) : strlen(p);
	if (l != RANDOM_UUID_LEN)
		return OP_NONE;
	memcpy(id, p, l);
	id[l] = '\0';
	if (slash == NULL)
		return get ? OP_GET : strcmp(method, "DELETE") == 0 ? OP_CANCEL : OP_NONE;
	if (!post)
		return OP_NONE;
	if (strcmp(slash, "/cancel") == 0)
		return OP_CANCEL;
	if (strcmp(slash, "/heartbeat") == 0)
		return OP_HEARTBEAT;
	if (strcmp(slash, "/complete") == 0)
		return OP_COMPLETE;
	if (strcmp(slash, "/fail") == 0)
		return OP_FAIL;
	return OP_NONE;
}

/* "state=NAME" in a query: its index, -1 when absent, -2 when unknown. */
static int
state_filter(const char *query)
{
	const char *p = query;
	int i;

	while (p != NULL && *p) {
		if (strncmp(p, "state=", 6) == 0) {
			size_t l = strcspn(p + 6, "&");

			for (i = 0; i < J_NSTATES; i++)
				if (strlen(jstate_names[i]) == l && strncmp(p + 6, jstate_names[i], l) == 0)
					return i;
			return -2;
		}
		p = strchr(p, '&');
		if (p)
			p++;
	}
	return -1;
}

bool
rjobs_path(const char *suffix)
{
	return suffix != NULL && strncmp(suffix, "/v1/jobs", 8) == 0 &&
	    (suffix[8] == '\0' || suffix[8] == '/');
}

/* A request for the queue: authorized now (Send for senders' operations,
 * Listen for nodes'); answered once its body is whole (rjobs_request). */
void
rjobs_begin(struct hconn *h, const char *suffix, const char *query)
{
	struct rsrv *s = h->s;
	char id[RANDOM_UUID_LEN + 1], why[512];
	enum jop op = parse_op(h->req->method, suffix, id);
	unsigned need = op >= OP_LEASE ? SAS_LISTEN : SAS_SEND;
	bool anon = h->ent->anonymous, ua;
	struct sas_verified v;
	int st;

	if (s->jobs == NULL) {
		hconn_fail(h, 503, "the job queue is not running");
		return;
	}
	if (op == OP_NONE) {
		hconn_fail(h, 404, "no such job operation: see docs/copy.md for the queue's paths");
		return;
	}
	/* the queue never takes anonymous senders: a job outlives the request */
	h->ent->anonymous = false;
	st = route_authorize(s, h->ent, h->req, query, need, &v, &ua, why, sizeof why);
	h->ent->anonymous = anon;
	if (st != 0) {
		hconn_fail(h, st, why);
		return;
	}
	h->jobs_filter = -1;
	if (op == OP_LIST && query != NULL && (st = state_filter(query)) != -1) {
		if (st == -2) {
			hconn_fail(h, 400, "state must be one of Queued, Running, Succeeded, Failed, "
			    "Cancelled, DeadLettered");
			return;
		}
		h->jobs_filter = st;
	}
	h->jobs = true;
	h->jobs_op = (int)op;
	snprintf(h->jobs_id, sizeof h->jobs_id, "%s", id);
	if (h->req->expect_continue)	/* curl asks before sending a larger body */
		evbuffer_add_printf(bufferevent_get_output(h->bev), "HTTP/1.1 100 Continue\r\n\r\n");
	h_set_state(h, H_BODY);
}

/* Body bytes of a queue request: capped. */
int
rjobs_body(struct hconn *h, const uint8_t *d, size_t n)
{
	if (evbuffer_get_length(h->body) + n > JOB_BODY_MAX) {
		hconn_fail(h, 413, "a job request body is limited to 65536 bytes");
		return SHIR_ETOOBIG;
	}
	return evbuffer_add(h->body, d, n) == 0 ? 0 : SHIR_ENOMEM;
}

void
rjobs_request(struct hconn *h)
{
	struct rjobs *q = h->s->jobs;
	size_t bl = evbuffer_get_length(h->body);
	cJSON *body = NULL;
	enum jop op = (enum jop)h->jobs_op;

	if (h->jobs_started || h->dead)
		return;
	h->jobs_started = true;
	if (bl > 0) {
		body = cJSON_ParseWithLength((const char *)evbuffer_pullup(h->body, -1), bl);
		evbuffer_drain(h->body, bl);
		if (body == NULL) {
			answer_error(h, 400, "InvalidRequest", "the body is not valid JSON");
			return;
		}
	} else if (op != OP_LIST && op != OP_GET && op != OP_CANCEL) {
		answer_error(h, 400, "InvalidRequest", "the request needs a JSON body");
		return;
	}
	if (body == NULL)
		body = cJSON_CreateObject();
	if (body != NULL && !cJSON_IsObject(body)) {
		cJSON_Delete(body);
		answer_error(h, 400, "InvalidRequest", "the body is not a JSON object");
		return;
	}
	switch (op) {
	case OP_SUBMIT: op_submit(q, h, body); break;
	case OP_LIST: op_list(q, h); break;
	case OP_GET: op_sender_job(q, h, h->jobs_id, false); break;
	case OP_CANCEL: op_sender_job(q, h, h->jobs_id, true); break;
	case OP_LEASE: op_lease(q, h, body); break;
	case OP_HEARTBEAT: op_heartbeat(q, h, h->jobs_id, body); break;
	case OP_COMPLETE: op_finish(q, h, h->jobs_id, body, true); break;
	case OP_FAIL: op_finish(q, h, h->jobs_id, body, false); break;
	default: answer_error(h, 404, "NotFound", "no such job operation"); break;
	}
	cJSON_Delete(body);
}

void
rjobs_forget(struct hconn *h)
{
	if (h->jobs_wait != NULL && h->s->jobs != NULL)
		waiter_free(h->s->jobs, h->jobs_wait);
}

/* Shutdown: nodes waiting in a lease request get 204 now. */
void
rjobs_shutdown(struct rsrv *s)
{
	struct rjobs *q = s->jobs;

	while (q != NULL && q->waiters != NULL) {
		struct hconn *h = q->waiters->h;

		waiter_free(q, q->waiters);
		answer(h, 204, NULL);
	}
}

/* ---- life cycle ---------------------------------------------------------------- */

int
rjobs_start(struct rsrv *s, struct shir_error *e)
{
	struct rjobs *q = calloc(1, sizeof *q);
	char *copy = strdup(s->conf->state_file);
	struct timeval one = { 1, 0 };
	int rc;

	if (q == NULL || copy == NULL) {
		free(q);
		free(copy);
		return shir_error_set(e, SHIR_ENOMEM, "out of memory");
	}
	q->s = s;
	if (asprintf(&q->dir, "%s/jobs", dirname(copy)) < 0)
		q->dir = NULL;
	free(copy);
	if (q->dir == NULL) {
		free(q);
		return shir_error_set(e, SHIR_ENOMEM, "out of memory");
	}
	if ((rc = atomicfile_mkdir(q->dir, e)) != 0 || (rc = jobs_load(q, e)) != 0) {
		free(q->dir);
		while (q->head) {
			struct job *j = q->head;

			job_unlink(q, j);
			job_free(j);
		}
		free(q);
		return rc;
	}
	q->tick = event_new(s->base, -1, EV_PERSIST, tick, q);
	if (q->tick != NULL)
		evtimer_add(q->tick, &one);
	s->jobs = q;
	return 0;
}

void
rjobs_free(struct rsrv *s)
{
	struct rjobs *q = s->jobs;

	if (q == NULL)
		return;
	while (q->waiters != NULL)
		waiter_free(q, q->waiters);
	while (q->head) {
		struct job *j = q->head;

		job_unlink(q, j);
		job_free(j);
	}
	if (q->tick)
		event_free(q->tick);
	free(q->dir);
	free(q);
	s->jobs = NULL;
}

/* ---- admin: /metrics, /status, /jobs ------------------------------------------ */

static void
counts(const struct rjobs *q, size_t c[J_NSTATES])
{
	const struct job *j;

	memset(c, 0, sizeof(size_t) * J_NSTATES);
	for (j = q->head; j != NULL; j = j->next)
		c[j->st]++;
}

static size_t
nwaiters(const struct rjobs *q)
{
	const struct jwait *w;
	size_t n = 0;

	for (w = q->waiters; w != NULL; w = w->next)
		n++;
	return n;
}

void
rjobs_metrics(struct rsrv *s, struct evbuffer *b)
{
	struct rjobs *q = s->jobs;
	size_t c[J_NSTATES];
	int i;

	if (q == NULL)
		return;
	counts(q, c);
	evbuffer_add_printf(b, "# HELP shir_relay_jobs Copy jobs held by the queue, by state.\n"
	    "# TYPE shir_relay_jobs gauge\n");
	for (i = 0; i < J_NSTATES; i++)
		evbuffer_add_printf(b, "shir_relay_jobs{state=\"%s\"} %zu\n", jstate_names[i], c[i]);
	evbuffer_add_printf(b, "# HELP shir_relay_jobs_lease_waiters Lease requests waiting for a job.\n"
	    "# TYPE shir_relay_jobs_lease_waiters gauge\nshir_relay_jobs_lease_waiters %zu\n",
	    nwaiters(q));
	evbuffer_add_printf(b, "# TYPE shir_relay_jobs_events_total counter\n"
	    "shir_relay_jobs_events_total{event=\"submitted\"} %llu\n"
	    "shir_relay_jobs_events_total{event=\"leased\"} %llu\n"
	    "shir_relay_jobs_events_total{event=\"lease_expired\"} %llu\n"
	    "shir_relay_jobs_events_total{event=\"succeeded\"} %llu\n"
	    "shir_relay_jobs_events_total{event=\"failed\"} %llu\n"
	    "shir_relay_jobs_events_total{event=\"cancelled\"} %llu\n"
	    "shir_relay_jobs_events_total{event=\"deadlettered\"} %llu\n"
	    "shir_relay_jobs_events_total{event=\"write_error\"} %llu\n",
	    (unsigned long long)q->submitted, (unsigned long long)q->leased,
	    (unsigned long long)q->expired, (unsigned long long)q->completed,
	    (unsigned long long)q->failed, (unsigned long long)q->cancelled,
	    (unsigned long long)q->deadlettered, (unsigned long long)q->write_errors);
}

void
rjobs_status(struct rsrv *s, cJSON *o)
{
	struct rjobs *q = s->jobs;
	size_t c[J_NSTATES];
	cJSON *j;
	int i;

	if (q == NULL)
		return;
	counts(q, c);
	j = cJSON_AddObjectToObject(o, "jobs");
	for (i = 0; i < J_NSTATES; i++)
		cJSON_AddNumberToObject(j, jstate_names[i], (double)c[i]);
	cJSON_AddNumberToObject(j, "leaseWaiters", (double)nwaiters(q));
	cJSON_AddStringToObject(j, "directory", q->dir);
}

static void
admin_reply(struct evhttp_request *req, int status, cJSON *o)
{
	struct evbuffer *b = evbuffer_new();
	char *txt = o ? cJSON_Print(o) : NULL;

	cJSON_Delete(o);
	if (b == NULL) {
		free(txt);
		evhttp_send_error(req, 500, "out of memory");
		return;
	}
	evbuffer_add_printf(b, "%s\n", txt ? txt : "{}");
	free(txt);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evhttp_send_reply(req, status, status == 200 ? "OK" : http1_reason(status), b);
	evbuffer_free(b);
}

static cJSON *
admin_error(const char *code, const char *msg)
{
	cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");

	cJSON_AddStringToObject(e, "code", code);
	cJSON_AddStringToObject(e, "message", msg);
	return o;
}

static bool
peer_is_loopback(struct evhttp_request *req)
{
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	char *addr = NULL;
	ev_uint16_t port;

	if (c == NULL)
		return false;
	evhttp_connection_get_peer(c, &addr, &port);
	return addr != NULL && (strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0 ||
	    strncmp(addr, "::ffff:127.", 11) == 0);
}

/* GET /jobs, GET /jobs/ID, POST /jobs/ID/cancel (from loopback only) on the
 * admin address: what `shir-relay jobs` uses. */
void
rjobs_admin(struct evhttp_request *req, void *arg)
{
	struct rsrv *s = arg;
	struct rjobs *q = s->jobs;
	const char *uri = evhttp_request_get_uri(req);
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	char id[RANDOM_UUID_LEN + 1];
	struct job *j;

	if (q == NULL || uri == NULL || strncmp(uri, "/jobs", 5) != 0 ||
	    (uri[5] != '\0' && uri[5] != '/' && uri[5] != '?')) {
		admin_reply(req, 404, admin_error("NotFound", "no such path on the admin address"));
		return;
	}
	if (uri[5] == '\0' || uri[5] == '?' || strcmp(uri + 5, "/") == 0) {
		cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "jobs");
		int f = uri[5] == '?' ? state_filter(uri + 6) : -1;

		if (m != EVHTTP_REQ_GET) {
			cJSON_Delete(o);
			admin_reply(req, 405, admin_error("MethodNotAllowed", "GET /jobs"));
			return;
		}
		if (f == -2) {
			cJSON_Delete(o);
			admin_reply(req, 400, admin_error("InvalidRequest", "state must be one of Queued, "
			    "Running, Succeeded, Failed, Cancelled, DeadLettered"));
			return;
		}
		for (j = q->head; j != NULL; j = j->next)
			if (f < 0 || (int)j->st == f)
				cJSON_AddItemToArray(a, job_to_json(j, false));
		admin_reply(req, 200, o);
		return;
	}
	if (strlen(uri + 6) < RANDOM_UUID_LEN) {
		admin_reply(req, 404, admin_error("JobNotFound", "no such job"));
		return;
	}
	memcpy(id, uri + 6, RANDOM_UUID_LEN);
	id[RANDOM_UUID_LEN] = '\0';
	j = job_find(q, id);
	if (j == NULL) {
		admin_reply(req, 404, admin_error("JobNotFound", "no such job"));
		return;
	}
	if (uri[6 + RANDOM_UUID_LEN] == '\0' && m == EVHTTP_REQ_GET) {
		admin_reply(req, 200, job_view(j));
		return;
	}
	if (strcmp(uri + 6 + RANDOM_UUID_LEN, "/cancel") == 0 && m == EVHTTP_REQ_POST) {
		if (!peer_is_loopback(req)) {
			admin_reply(req, 403, admin_error("Forbidden", "jobs are cancelled on the admin "
			    "address only from the relay's own host"));
			return;
		}
		int rc = job_cancel(q, j, "the relay admin");

		if (rc == SHIR_EEXIST) {
			admin_reply(req, 409, admin_error("JobFinished", "the job has already finished"));
			return;
		}
		if (rc != 0) {
			admin_reply(req, 503, admin_error("ServerBusy", "the relay could not write the "
			    "cancel to its state directory"));
			return;
		}
		admin_reply(req, 200, job_view(j));
		return;
	}
	admin_reply(req, 405, admin_error("MethodNotAllowed", "GET /jobs/ID or POST /jobs/ID/cancel"));
}
