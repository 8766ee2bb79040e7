#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "common/atomicfile.h"
#include "node/admin/credstore.h"
#include "common/log.h"
#include "node/admin/machinekey.h"
#include "node/admin/seal.h"
#include "common/jsonutil.h"
#include "common/random.h"

#define CREDSTORE_FILE_MAX (16u * 1024 * 1024)

struct credstore {
	char *path;
	char *lockpath;
	uint8_t key[MACHINEKEY_LEN];
};

int
credstore_name_check(const char *name, int allow_reserved, struct shir_error *err)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > CREDSTORE_NAME_MAX)
		return shir_error_set(err, SHIR_EINVAL,
		    "a credential name has 1 to %d characters", CREDSTORE_NAME_MAX);
	for (i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '_' || c == '-'))
			return shir_error_set(err, SHIR_EINVAL, "credential name %s: only letters, "
			    "digits, '.', '_' and '-' are allowed", log_q(name));
	}
	if (name[0] == '_' && !allow_reserved)
		return shir_error_set(err, SHIR_EPERM, "credential names starting with '_' are "
		    "reserved for the node itself");
	return 0;
}

int
credstore_open(const char *state_dir, struct credstore **out, struct shir_error *err)
{
	struct credstore *cs = NULL;
	int rc;

	*out = NULL;
	cs = calloc(1, sizeof *cs);
	if (cs == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	if (asprintf(&cs->path, "%s/%s", state_dir, CREDSTORE_FILE) < 0 ||
	    asprintf(&cs->lockpath, "%s/%s.lock", state_dir, CREDSTORE_FILE) < 0) {
		cs->path = cs->lockpath = NULL;
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = machinekey_load(state_dir, 1, cs->key, err)) != 0)
		goto out;
	*out = cs;
	cs = NULL;
out:
	credstore_free(cs);
	return rc;
}

void
credstore_free(struct credstore *cs)
{
	if (cs == NULL)
		return;
	OPENSSL_cleanse(cs->key, sizeof cs->key);
	free(cs->path);
	free(cs->lockpath);
	free(cs);
}

void
credstore_secret_free(char *secret)
{
	if (secret != NULL)
		atomicfile_secret_free(secret, strlen(secret));
}

/* Wipes every string of a document, then frees it. */
static void
credstore_doc_wipe(cJSON *o)
{
	cJSON *c;

	if (o == NULL)
		return;
	if (cJSON_IsString(o) && o->valuestring != NULL)
		OPENSSL_cleanse(o->valuestring, strlen(o->valuestring));
	for (c = o->child; c != NULL; c = c->next)
		credstore_doc_wipe(c);
}

void
credstore_json_free(cJSON *doc)
{
	credstore_doc_wipe(doc);
	cJSON_Delete(doc);
}

static void
credstore_doc_free(cJSON *doc)
{
	credstore_doc_wipe(doc);
	cJSON_Delete(doc);
}

/* Checks a plaintext document: {"format":1,"version":N,"credentials":[...]} */
static int
credstore_doc_check(cJSON *doc, struct shir_error *err)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, "version");
	cJSON *list = cJSON_GetObjectItemCaseSensitive(doc, "credentials"), *e, *f;
	int n = 0;

	if (!cJSON_IsObject(doc) || !cJSON_IsNumber(v) || v->valuedouble < 0 ||
	    !cJSON_IsArray(list))
		return shir_error_set(err, SHIR_EPROTO, "the credentials document is malformed");
	cJSON_ArrayForEach(e, list) {
		const char *fields[] = { "name", "value" };
		size_t i;

		if (++n > CREDSTORE_MAX_ENTRIES)
			return shir_error_set(err, SHIR_ETOOBIG, "more than %d credentials",
			    CREDSTORE_MAX_ENTRIES);
		for (i = 0; i < 2; i++) {
			f = cJSON_GetObjectItemCaseSensitive(e, fields[i]);
			if (!cJSON_IsString(f))
				return shir_error_set(err, SHIR_EPROTO,
				    "a credential in the document has no %s", fields[i]);
		}
		if (credstore_name_check(cJSON_GetObjectItemCaseSensitive(e, "name")->valuestring, 1,
		    err) != 0)
			return SHIR_EPROTO;
		if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(e, "version")))
			cJSON_AddNumberToObject(e, "version", 1);
		if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(e, "updated")))
			cJSON_AddNumberToObject(e, "updated", 0);
	}
	/* tombstones (docs/ha.md): absent in stores written before them */
	list = cJSON_GetObjectItemCaseSensitive(doc, "tombstones");
	if (list == NULL)
		return cJSON_AddArrayToObject(doc, "tombstones") ? 0 :
		    shir_error_set(err, SHIR_ENOMEM, "out of memory");
	if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) > CREDSTORE_MAX_ENTRIES)
		return shir_error_set(err, SHIR_EPROTO, "the credentials document is malformed");
	cJSON_ArrayForEach(e, list) {
		f = cJSON_GetObjectItemCaseSensitive(e, "name");
		if (!cJSON_IsString(f) || credstore_name_check(f->valuestring, 1, err) != 0)
			return shir_error_set(err, SHIR_EPROTO, "a tombstone in the document has no "
			    "valid name");
	}
	return 0;
}

int
credstore_hlc_cmp(const struct credstore_hlc *a, const struct credstore_hlc *b)
{
	if (a->ms != b->ms)
		return a->ms < b->ms ? -1 : 1;
	if (a->c != b->c)
		return a->c < b->c ? -1 : 1;
	return strcmp(a->origin, b->origin);
}

/* An entry's version: "hlc":[ms, counter, "origin"]; entries from before it
 * read as (updated * 1000, 0, ""). */
static void
credstore_hlc_read(cJSON *e, struct credstore_hlc *h)
{
	cJSON *a = cJSON_GetObjectItemCaseSensitive(e, "hlc");
	long long ms = 0, c = 0;

	memset(h, 0, sizeof *h);
	if (cJSON_IsArray(a) && cJSON_GetArraySize(a) == 3 &&
	    json_whole(cJSON_GetArrayItem(a, 0), 0, (1LL << 52), &ms) == 0 &&
	    json_whole(cJSON_GetArrayItem(a, 1), 0, UINT32_MAX, &c) == 0 &&
	    cJSON_IsString(cJSON_GetArrayItem(a, 2)) &&
	    strlen(cJSON_GetArrayItem(a, 2)->valuestring) <= CREDSTORE_ORIGIN_MAX) {
		h->ms = (uint64_t)ms;
		h->c = (uint32_t)c;
		snprintf(h->origin, sizeof h->origin, "%s", cJSON_GetArrayItem(a, 2)->valuestring);
		return;
	}
	if (json_whole(cJSON_GetObjectItemCaseSensitive(e, "updated"), 0, (1LL << 40), &ms) == 0)
		h->ms = (uint64_t)ms * 1000;
}

static int
credstore_hlc_write(cJSON *e, const struct credstore_hlc *h)
{
	cJSON *a = cJSON_CreateArray();

	if (a == NULL || !cJSON_AddItemToArray(a, cJSON_CreateNumber((double)h->ms)) ||
	    !cJSON_AddItemToArray(a, cJSON_CreateNumber((double)h->c)) ||
	    !cJSON_AddItemToArray(a, cJSON_CreateString(h->origin))) {
		cJSON_Delete(a);
		return -1;
	}
	cJSON_DeleteItemFromObjectCaseSensitive(e, "hlc");
	cJSON_AddItemToObject(e, "hlc", a);
	return 0;
}

/* Loads and decrypts the file; a missing file is an empty store. */
static int
credstore_load(struct credstore *cs, cJSON **out, struct shir_error *err)
{
	char *raw = NULL, *plain = NULL;
	size_t rawlen = 0, plainlen = 0;
	cJSON *doc = NULL;
	int rc;

	*out = NULL;
	rc = atomicfile_read(cs->path, CREDSTORE_FILE_MAX, &raw, &rawlen, err);
	if (rc == SHIR_ENOENT) {
		doc = cJSON_Parse("{\"format\":1,\"version\":0,\"credentials\":[]}");
		if (doc == NULL)
			return shir_error_set(err, SHIR_ENOMEM, "out of memory");
		*out = doc;
		shir_error_clear(err);
		return 0;
	}
	if (rc != 0)
		return rc;
	rc = seal_open_key(cs->key, SEAL_PURPOSE_CREDENTIALS, (const uint8_t *)raw, rawlen, &plain,
	    &plainlen, err);
	if (rc != 0) {
		char why[SHIR_ERROR_MSG_MAX / 2];

		snprintf(why, sizeof why, "%.1000s", err->msg);
		shir_error_set(err, rc, "%s cannot be read: %s", cs->path, why);
		goto out;
	}
	doc = cJSON_ParseWithLength(plain, plainlen);
	if (doc == NULL || (rc = credstore_doc_check(doc, err)) != 0) {
		rc = shir_error_set(err, SHIR_EPROTO, "%s decrypts but its content is malformed",
		    cs->path);
		goto out;
	}
	*out = doc;
	doc = NULL;
out:
	credstore_doc_free(doc);
	seal_plain_free(plain, plainlen);
	free(raw);
	return rc;
}

static int
credstore_save(struct credstore *cs, cJSON *doc, struct shir_error *err)
{
	uint8_t *sealed = NULL;
	size_t sealedlen = 0;
	char *text = cJSON_PrintUnformatted(doc);
	int rc;

	if (text == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	rc = seal_with_key(cs->key, SEAL_PURPOSE_CREDENTIALS, text, strlen(text), &sealed,
	    &sealedlen, err);
	credstore_secret_free(text);
	if (rc == 0)
		rc = atomicfile_write(cs->path, sealed, sealedlen, 0600, err);
	free(sealed);
	return rc;
}

static int
credstore_lock(struct credstore *cs, struct shir_error *err)
{
	int fd = open(cs->lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0)
		return shir_error_set(err, errno == EACCES ? SHIR_EPERM : SHIR_EIO,
		    "cannot open the lock %s: %s", cs->lockpath, strerror(errno));
	if (atomicfile_adopt_owner(fd, cs->lockpath, err) != 0) {
		close(fd);
		return err->code;
	}
	while (flock(fd, LOCK_EX) != 0) {
		if (errno != EINTR) {
			close(fd);
			return shir_error_set(err, SHIR_EIO, "cannot lock %s: %s", cs->lockpath,
			    strerror(errno));
		}
	}
	return fd;
}

static cJSON *
credstore_find(cJSON *doc, const char *name)
{
	cJSON *e;

	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(doc, "credentials")) {
		if (strcmp(cJSON_GetObjectItemCaseSensitive(e, "name")->valuestring, name) == 0)
			return e;
	}
	return NULL;
}

static cJSON *
credstore_find_tomb(cJSON *doc, const char *name)
{
	cJSON *e;

	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(doc, "tombstones")) {
		if (strcmp(cJSON_GetObjectItemCaseSensitive(e, "name")->valuestring, name) == 0)
			return e;
	}
	return NULL;
}

/* The store's node id, made on the first change. */
static const char *
credstore_doc_node(cJSON *doc)
{
	cJSON *id = cJSON_GetObjectItemCaseSensitive(doc, "node");
	char uuid[RANDOM_UUID_LEN + 1];

	if (cJSON_IsString(id) && strlen(id->valuestring) <= CREDSTORE_ORIGIN_MAX)
		return id->valuestring;
	if (random_uuid(uuid) != 0)
		return NULL;
	cJSON_DeleteItemFromObjectCaseSensitive(doc, "node");
	id = cJSON_AddStringToObject(doc, "node", uuid);
	return id ? id->valuestring : NULL;
}

/* The store's clock: the newest version it has written or seen. */
static void
credstore_doc_clock(cJSON *doc, struct credstore_hlc *h)
{
	credstore_hlc_read(doc, h);
	if (cJSON_GetObjectItemCaseSensitive(doc, "hlc") == NULL)
		h->ms = 0;	/* the document's "updated" is not a clock */
}

static int
credstore_doc_observe(cJSON *doc, const struct credstore_hlc *h)
{
	struct credstore_hlc cur;

	credstore_doc_clock(doc, &cur);
	if (h->ms < cur.ms || (h->ms == cur.ms && h->c <= cur.c))
		return 0;
	cur.ms = h->ms;
	cur.c = h->c;
	cur.origin[0] = 0;
	return credstore_hlc_write(doc, &cur);
}

/* A new version for a local write: wall time, or one tick past the newest
 * version seen when the clock is behind it. */
static int
credstore_doc_tick(cJSON *doc, struct credstore_hlc *out)
{
	struct credstore_hlc cur;
	struct timespec ts;
	const char *node = credstore_doc_node(doc);
	uint64_t now;

	if (node == NULL)
		return -1;
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	credstore_doc_clock(doc, &cur);
	memset(out, 0, sizeof *out);
	if (now > cur.ms) {
		out->ms = now;
		out->c = 0;
	} else {
		out->ms = cur.ms;
		out->c = cur.c + 1;
	}
	snprintf(out->origin, sizeof out->origin, "%s", node);
	return credstore_doc_observe(doc, out);
}

/* Adds a tombstone for name at version h (the oldest goes at the cap). */
static int
credstore_doc_bury(cJSON *doc, const char *name, const struct credstore_hlc *h,
    uint64_t version)
{
	cJSON *tombs = cJSON_GetObjectItemCaseSensitive(doc, "tombstones"), *t, *oldest = NULL;
	struct credstore_hlc th, oh;

	if ((t = credstore_find_tomb(doc, name)) != NULL)
		cJSON_Delete(cJSON_DetachItemViaPointer(tombs, t));
	if (cJSON_GetArraySize(tombs) >= CREDSTORE_MAX_ENTRIES) {
		cJSON_ArrayForEach(t, tombs) {
			credstore_hlc_read(t, &th);
			if (oldest == NULL || credstore_hlc_cmp(&th, &oh) < 0) {
				oldest = t;
				oh = th;
			}
		}
		cJSON_Delete(cJSON_DetachItemViaPointer(tombs, oldest));
	}
	t = cJSON_CreateObject();
	if (t == NULL || cJSON_AddStringToObject(t, "name", name) == NULL ||
	    cJSON_AddNumberToObject(t, "version", (double)version) == NULL ||
	    cJSON_AddNumberToObject(t, "updated", (double)time(NULL)) == NULL ||
	    credstore_hlc_write(t, h) != 0) {
		cJSON_Delete(t);
		return -1;
	}
	cJSON_AddItemToArray(tombs, t);
	return 0;
}

static uint64_t
credstore_doc_version(cJSON *doc)
{
	long long n;

	/* the document was validated at load; a bad version still never casts a NaN */
	if (json_whole(cJSON_GetObjectItemCaseSensitive(doc, "version"), 0, LLONG_MAX / 2, &n) != 0)
		return 0;
	return (uint64_t)n;
}

static void
credstore_set_number(cJSON *o, const char *k, double v)
{
	cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);

	if (it != NULL)
		cJSON_SetNumberValue(it, v);
	else
		cJSON_AddNumberToObject(o, k, v);
}

int
credstore_get(struct credstore *cs, const char *name, char **secret, struct shir_error *err)
{
	cJSON *doc = NULL, *e;
	int rc;

	*secret = NULL;
	if ((rc = credstore_name_check(name, 1, err)) != 0)
		return rc;
	if ((rc = credstore_load(cs, &doc, err)) != 0)
		return rc;
	e = credstore_find(doc, name);
	if (e == NULL) {
		rc = shir_error_set(err, SHIR_ENOENT, "no credential named %s is stored on this node",
		    name);
		goto out;
	}
	*secret = strdup(cJSON_GetObjectItemCaseSensitive(e, "value")->valuestring);
	if (*secret == NULL)
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
out:
	credstore_doc_free(doc);
	return rc;
}

int
credstore_resolve(void *arg, const char *name, char **secret, struct shir_error *err)
{
	*secret = NULL;
	if (name[0] == '_')
		return shir_error_set(err, SHIR_ENOENT, "no credential named %s is stored on this "
		    "node", log_q(name));
	return credstore_get(arg, name, secret, err);
}

/* Under the lock no other writer is between its temp file and its rename, so
 * a temp file of the credentials is left over from a crash: remove it. */
static void
credstore_sweep(struct credstore *cs)
{
	const char *slash = strrchr(cs->path, '/');
	char dir[PATH_MAX], prefix[64];
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - cs->path) : 1,
	    slash ? cs->path : ".");
	snprintf(prefix, sizeof prefix, "%s.tmp-", CREDSTORE_FILE);
	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0 &&
		    unlinkat(dirfd(d), de->d_name, 0) == 0)
			log_info("admin", "event=credentials.sweep removed=%s", log_q(de->d_name));
	}
	closedir(d);
}

/* The common shape of a change: lock, load, change, bump the version, save. */
static int
credstore_change(struct credstore *cs, const char *name, const char *value,
    struct shir_error *err)
{
	cJSON *doc = NULL, *e, *list, *t;
	struct credstore_hlc h;
	uint64_t v;
	int lockfd, rc;

	if ((lockfd = credstore_lock(cs, err)) < 0)
		return lockfd;
	credstore_sweep(cs);
	if ((rc = credstore_load(cs, &doc, err)) != 0)
		goto out;
	list = cJSON_GetObjectItemCaseSensitive(doc, "credentials");
	e = credstore_find(doc, name);
	v = credstore_doc_version(doc) + 1;
	if (value == NULL && e == NULL) {
		rc = shir_error_set(err, SHIR_ENOENT,
		    "no credential named %s is stored on this node", name);
		goto out;
	}
	if (credstore_doc_tick(doc, &h) != 0) {
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	if (value == NULL) {
		double cv = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "version"));

		cJSON_DetachItemViaPointer(list, e);
		credstore_doc_free(e);
		e = NULL;
		if (credstore_doc_bury(doc, name, &h, (uint64_t)cv + 1) != 0) {
			rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
			goto out;
		}
	} else if (e != NULL) {
		cJSON *val = cJSON_GetObjectItemCaseSensitive(e, "value");

		OPENSSL_cleanse(val->valuestring, strlen(val->valuestring));
		if (cJSON_ReplaceItemInObjectCaseSensitive(e, "value", cJSON_CreateString(value)) == 0) {
			rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
			goto out;
		}
		credstore_set_number(e, "version",
		    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "version")) + 1);
		credstore_set_number(e, "updated", (double)time(NULL));
	} else {
		if (cJSON_GetArraySize(list) >= CREDSTORE_MAX_ENTRIES) {
			rc = shir_error_set(err, SHIR_ETOOBIG, "the node already stores %d credentials, "
			    "the most it keeps; delete one first", CREDSTORE_MAX_ENTRIES);
			goto out;
		}
		e = cJSON_CreateObject();
		if (e == NULL || cJSON_AddStringToObject(e, "name", name) == NULL ||
		    cJSON_AddStringToObject(e, "value", value) == NULL ||
		    cJSON_AddNumberToObject(e, "version", 1) == NULL ||
		    cJSON_AddNumberToObject(e, "updated", (double)time(NULL)) == NULL) {
			credstore_doc_free(e);
			rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
			goto out;
		}
		cJSON_AddItemToArray(list, e);
		if ((t = credstore_find_tomb(doc, name)) != NULL)
			cJSON_Delete(cJSON_DetachItemViaPointer(cJSON_GetObjectItemCaseSensitive(doc, "tombstones"), t));
	}
	if (e != NULL && credstore_hlc_write(e, &h) != 0) {
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	credstore_set_number(doc, "version", (double)v);
	if ((rc = credstore_save(cs, doc, err)) != 0)
		goto out;
	log_info("admin", "event=credential.%s name=%s store_version=%llu",
	    value ? "stored" : "deleted", log_q(name), (unsigned long long)v);
out:
	credstore_doc_free(doc);
	close(lockfd);
	return rc;
}

int
credstore_put(struct credstore *cs, const char *name, const char *value, struct shir_error *err)
{
	int rc;

	if ((rc = credstore_name_check(name, 1, err)) != 0)
		return rc;
	if (strlen(value) > CREDSTORE_VALUE_MAX)
		return shir_error_set(err, SHIR_ETOOBIG, "a credential value is at most %d bytes",
		    CREDSTORE_VALUE_MAX);
	return credstore_change(cs, name, value, err);
}

int
credstore_delete(struct credstore *cs, const char *name, struct shir_error *err)
{
	int rc;

	if ((rc = credstore_name_check(name, 1, err)) != 0)
		return rc;
	return credstore_change(cs, name, NULL, err);
}

static int
credstore_info_cmp(const void *a, const void *b)
{
	return strcmp(((const struct credstore_info *)a)->name,
	    ((const struct credstore_info *)b)->name);
}

int
credstore_list(struct credstore *cs, int with_reserved, struct credstore_info **out, size_t *n,
    struct shir_error *err)
{
	struct credstore_info *v = NULL;
	cJSON *doc = NULL, *e;
	size_t k = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if ((rc = credstore_load(cs, &doc, err)) != 0)
		return rc;
	v = calloc((size_t)cJSON_GetArraySize(cJSON_GetObjectItem(doc, "credentials")) + 1,
	    sizeof *v);
	if (v == NULL) {
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(doc, "credentials")) {
		const char *name = cJSON_GetObjectItemCaseSensitive(e, "name")->valuestring;

		if (name[0] == '_' && !with_reserved)
			continue;
		snprintf(v[k].name, sizeof v[k].name, "%s", name);
		long long num;

		v[k].version = json_whole(cJSON_GetObjectItem(e, "version"), 0, LLONG_MAX / 2, &num) ==
		    0 ? (uint64_t)num : 0;
		v[k].updated = json_whole(cJSON_GetObjectItem(e, "updated"), 0, LLONG_MAX / 2, &num) ==
		    0 ? (time_t)num : 0;
		credstore_hlc_read(e, &v[k].hlc);
		k++;
	}
	qsort(v, k, sizeof *v, credstore_info_cmp);
	*out = v;
	*n = k;
	v = NULL;
out:
	free(v);
	credstore_doc_free(doc);
	return rc;
}

int
credstore_version(struct credstore *cs, uint64_t *version, struct shir_error *err)
{
	cJSON *doc = NULL;
	int rc;

	*version = 0;
	if ((rc = credstore_load(cs, &doc, err)) != 0)
		return rc;
	*version = credstore_doc_version(doc);
	credstore_doc_free(doc);
	return 0;
}

int
credstore_export(struct credstore *cs, char **json, struct shir_error *err)
{
	cJSON *doc = NULL;
	int rc;

	*json = NULL;
	if ((rc = credstore_load(cs, &doc, err)) != 0)
		return rc;
	*json = cJSON_PrintUnformatted(doc);
	credstore_doc_free(doc);
	if (*json == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	return 0;
}

int
credstore_import(struct credstore *cs, const char *json, struct shir_error *err)
{
	cJSON *doc = NULL, *cur = NULL;
	int lockfd, rc;

	doc = cJSON_Parse(json);
	if (doc == NULL || (rc = credstore_doc_check(doc, err)) != 0) {
		credstore_doc_free(doc);
		return shir_error_set(err, SHIR_EPROTO, "the credentials to import are malformed");
	}
	if ((lockfd = credstore_lock(cs, err)) < 0) {
		credstore_doc_free(doc);
		return lockfd;
	}
	if ((rc = credstore_load(cs, &cur, err)) != 0)
		goto out;
	credstore_set_number(doc, "version", (double)(credstore_doc_version(cur) + 1));
	/* the node id and the clock are this node's, never the backup's */
	cJSON_DeleteItemFromObjectCaseSensitive(doc, "node");
	cJSON_DeleteItemFromObjectCaseSensitive(doc, "hlc");
	if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(cur, "node")))
		cJSON_AddStringToObject(doc, "node",
		    cJSON_GetObjectItemCaseSensitive(cur, "node")->valuestring);
	if (cJSON_GetObjectItemCaseSensitive(cur, "hlc") != NULL)
		cJSON_AddItemToObject(doc, "hlc",
		    cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(cur, "hlc"), 1));
	if ((rc = credstore_save(cs, doc, err)) != 0)
		goto out;
	log_info("admin", "event=credentials.imported count=%d store_version=%llu",
	    cJSON_GetArraySize(cJSON_GetObjectItem(doc, "credentials")),
	    (unsigned long long)credstore_doc_version(doc));
out:
	close(lockfd);
	credstore_doc_free(cur);
	credstore_doc_free(doc);
	return rc;
}

void
credstore_records_free(struct credstore_rec *v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		credstore_secret_free(v[i].value);
	free(v);
}

static int
credstore_rec_cmp(const void *a, const void *b)
{
	return strcmp(((const struct credstore_rec *)a)->name,
	    ((const struct credstore_rec *)b)->name);
}

int
credstore_records(struct credstore *cs, struct credstore_rec **out, size_t *n,
    struct shir_error *err)
{
	const char *arrays[] = { "credentials", "tombstones" };
	struct credstore_rec *v = NULL;
	cJSON *doc = NULL, *e;
	size_t k = 0, i, cap;
	int rc;

	*out = NULL;
	*n = 0;
	if ((rc = credstore_load(cs, &doc, err)) != 0)
		return rc;
	cap = (size_t)cJSON_GetArraySize(cJSON_GetObjectItem(doc, "credentials")) +
	    (size_t)cJSON_GetArraySize(cJSON_GetObjectItem(doc, "tombstones")) + 1;
	if ((v = calloc(cap, sizeof *v)) == NULL) {
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < 2; i++) {
		cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(doc, arrays[i])) {
			const char *name = cJSON_GetObjectItemCaseSensitive(e, "name")->valuestring;

			if (name[0] == '_')
				continue;	/* the node's own, never shared */
			snprintf(v[k].name, sizeof v[k].name, "%s", name);
			credstore_hlc_read(e, &v[k].hlc);
			if (i == 0 && (v[k].value = strdup(cJSON_GetObjectItemCaseSensitive(e,
			    "value")->valuestring)) == NULL) {
				rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
				goto out;
			}
			k++;
		}
	}
	qsort(v, k, sizeof *v, credstore_rec_cmp);
	*out = v;
	*n = k;
	v = NULL;
out:
	credstore_records_free(v, k);
	credstore_doc_free(doc);
	return rc;
}

/* Applies one remote record to doc when it is newer: 1 applied, 0 not, -1
 * out of memory. */
static int
credstore_merge_one(cJSON *doc, const struct credstore_rec *r)
{
	cJSON *list = cJSON_GetObjectItemCaseSensitive(doc, "credentials");
	cJSON *e = credstore_find(doc, r->name), *t = credstore_find_tomb(doc, r->name);
	struct credstore_hlc cur;
	double cv = 0;

	if (e != NULL || t != NULL) {
		credstore_hlc_read(e != NULL ? e : t, &cur);
		if (credstore_hlc_cmp(&r->hlc, &cur) <= 0)
			return 0;
		cv = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e != NULL ? e : t,
		    "version"));
		if (cv != cv)
			cv = 0;
	}
	/* a delete of what this node never had is kept too, so an older value
	 * arriving later does not come back */
	if (e != NULL) {
		cJSON_DetachItemViaPointer(list, e);
		credstore_doc_free(e);
	}
	if (r->value == NULL)
		return credstore_doc_bury(doc, r->name, &r->hlc, (uint64_t)cv + 1) == 0 ? 1 : -1;
	if (t != NULL)
		cJSON_Delete(cJSON_DetachItemViaPointer(cJSON_GetObjectItemCaseSensitive(doc, "tombstones"), t));
	if (cJSON_GetArraySize(list) >= CREDSTORE_MAX_ENTRIES)
		return 0;	/* full: refused like a local put would be */
	e = cJSON_CreateObject();
	if (e == NULL || cJSON_AddStringToObject(e, "name", r->name) == NULL ||
	    cJSON_AddStringToObject(e, "value", r->value) == NULL ||
	    cJSON_AddNumberToObject(e, "version", cv + 1) == NULL ||
	    cJSON_AddNumberToObject(e, "updated", (double)time(NULL)) == NULL ||
	    credstore_hlc_write(e, &r->hlc) != 0) {
		credstore_doc_free(e);
		return -1;
	}
	cJSON_AddItemToArray(list, e);
	return 1;
}

int
credstore_merge(struct credstore *cs, const struct credstore_rec *recs, size_t n,
    const char *from, size_t *applied, struct shir_error *err)
{
	cJSON *doc = NULL;
	size_t i, won = 0;
	uint64_t v;
	int lockfd, rc, r;

	*applied = 0;
	for (i = 0; i < n; i++) {
		if ((rc = credstore_name_check(recs[i].name, 0, err)) != 0)
			return rc;
		if (recs[i].value != NULL && strlen(recs[i].value) > CREDSTORE_VALUE_MAX)
			return shir_error_set(err, SHIR_ETOOBIG, "a credential value is at most %d "
			    "bytes", CREDSTORE_VALUE_MAX);
	}
	if ((lockfd = credstore_lock(cs, err)) < 0)
		return lockfd;
	credstore_sweep(cs);
	if ((rc = credstore_load(cs, &doc, err)) != 0)
		goto out;
	v = credstore_doc_version(doc) + 1;
	for (i = 0; i < n; i++) {
		if ((r = credstore_merge_one(doc, &recs[i])) < 0 ||
		    credstore_doc_observe(doc, &recs[i].hlc) != 0) {
			rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
			goto out;
		}
		if (r == 1) {
			won++;
			log_info("admin", "event=credential.synced name=%s change=%s from=%s "
			    "store_version=%llu", log_q(recs[i].name),
			    recs[i].value ? "stored" : "deleted", log_q(from ? from : "-"),
			    (unsigned long long)v);
		}
	}
	if (won == 0)
		goto out;
	if (credstore_doc_node(doc) == NULL) {
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	credstore_set_number(doc, "version", (double)v);
	if ((rc = credstore_save(cs, doc, err)) != 0)
		goto out;
	*applied = won;
out:
	credstore_doc_free(doc);
	close(lockfd);
	return rc;
}

int
credstore_node_id(struct credstore *cs, char out[CREDSTORE_ORIGIN_MAX + 1],
    struct shir_error *err)
{
	cJSON *doc = NULL, *id;
	int rc;

	int lockfd;

	out[0] = 0;
	if ((rc = credstore_load(cs, &doc, err)) != 0)
		return rc;
	id = cJSON_GetObjectItemCaseSensitive(doc, "node");
	if (cJSON_IsString(id)) {
		snprintf(out, CREDSTORE_ORIGIN_MAX + 1, "%s", id->valuestring);
		credstore_doc_free(doc);
		return 0;
	}
	credstore_doc_free(doc);
	doc = NULL;
	/* none yet: made and kept now (the store version does not change) */
	if ((lockfd = credstore_lock(cs, err)) < 0)
		return lockfd;
	if ((rc = credstore_load(cs, &doc, err)) != 0)
		goto out;
	if (credstore_doc_node(doc) == NULL) {
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = credstore_save(cs, doc, err)) != 0)
		goto out;
	snprintf(out, CREDSTORE_ORIGIN_MAX + 1, "%s",
	    cJSON_GetObjectItemCaseSensitive(doc, "node")->valuestring);
out:
	credstore_doc_free(doc);
	close(lockfd);
	return rc;
}
