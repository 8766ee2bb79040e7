/* relay_state: see relay_state.h. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "common/atomicfile.h"
#include "relay/server/relay_state.h"

#define STATE_MAX (16 * 1024 * 1024)

bool
rstate_name_ok(const char *n)
{
	size_t l = strlen(n), i;

	if (l == 0 || l > 260 || n[0] == '/' || n[l - 1] == '/' || n[0] == '.')
		return false;
	for (i = 0; i < l; i++) {
		char c = n[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '/'))
			return false;
		if (c == '/' && n[i + 1] == '/')
			return false;
	}
	return strncasecmp(n, "$hc", 3) != 0;
}

static void
entity_clear(struct rstate_entity *en)
{
	size_t i;

	free(en->name);
	free(en->endpoint);
	for (i = 0; i < en->nrules; i++) {
		free(en->rules[i].name);
		if (en->rules[i].key != NULL) {
			OPENSSL_cleanse(en->rules[i].key, strlen(en->rules[i].key));
			free(en->rules[i].key);
		}
	}
	free(en->rules);
	memset(en, 0, sizeof *en);
}

void
rstate_free(struct rstate *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->n; i++)
		entity_clear(&s->e[i]);
	free(s->e);
	free(s);
}

struct rstate_entity *
rstate_find(const struct rstate *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (strcasecmp(s->e[i].name, name) == 0)
			return &s->e[i];
	return NULL;
}

struct rstate_entity *
rstate_add(struct rstate *s, const char *name, struct shir_error *e)
{
	struct rstate_entity *n;

	if (!rstate_name_ok(name)) {
		shir_error_set(e, SHIR_EINVAL,
		    "%s is not a valid name: use letters, digits, - _ . and / (not at either end)", name);
		return NULL;
	}
	if (rstate_find(s, name) != NULL) {
		shir_error_set(e, SHIR_EEXIST, "%s already exists", name);
		return NULL;
	}
	n = realloc(s->e, (s->n + 1) * sizeof *n);
	if (n == NULL) {
		shir_error_set(e, SHIR_ENOMEM, "out of memory");
		return NULL;
	}
	s->e = n;
	memset(&s->e[s->n], 0, sizeof s->e[0]);
	if ((s->e[s->n].name = strdup(name)) == NULL) {
		shir_error_set(e, SHIR_ENOMEM, "out of memory");
		return NULL;
	}
	s->e[s->n].created = (int64_t)time(NULL);
	return &s->e[s->n++];
}

int
rstate_remove(struct rstate *s, const char *name)
{
	struct rstate_entity *en = rstate_find(s, name);
	size_t i;

	if (en == NULL)
		return SHIR_ENOENT;
	i = (size_t)(en - s->e);
	entity_clear(en);
	memmove(&s->e[i], &s->e[i + 1], (s->n - i - 1) * sizeof s->e[0]);
	s->n--;
	return 0;
}

int
rstate_add_rule(struct rstate_entity *en, const char *name, const char *key, unsigned rights)
{
	struct rstate_rule *r = realloc(en->rules, (en->nrules + 1) * sizeof *r);

	if (r == NULL)
		return SHIR_ENOMEM;
	en->rules = r;
	r[en->nrules].name = strdup(name);
	r[en->nrules].key = strdup(key);
	r[en->nrules].rights = rights;
	if (r[en->nrules].name == NULL || r[en->nrules].key == NULL)
		return SHIR_ENOMEM;
	en->nrules++;
	return 0;
}

struct rstate_rule *
rstate_rule(const struct rstate_entity *en, const char *name)
{
	size_t i;

	for (i = 0; i < en->nrules; i++)
		if (strcmp(en->rules[i].name, name) == 0)
			return &en->rules[i];
	return NULL;
}

static unsigned
rights_parse(const cJSON *a)
{
	const cJSON *it;
	unsigned r = 0;

	cJSON_ArrayForEach(it, a) {
		if (!cJSON_IsString(it))
			continue;
		if (strcasecmp(it->valuestring, "Listen") == 0)
			r |= SAS_LISTEN;
		else if (strcasecmp(it->valuestring, "Send") == 0)
			r |= SAS_SEND;
		else if (strcasecmp(it->valuestring, "Manage") == 0)
			r |= SAS_MANAGE;
	}
	return r;
}

static char *
read_file(const char *path, size_t *len, struct shir_error *e, bool *missing)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	long n;

	*missing = false;
	if (f == NULL) {
		if (errno == ENOENT) {
			*missing = true;
			return NULL;
		}
		shir_error_set(e, SHIR_EIO, "cannot open the state file %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || n > STATE_MAX ||
	    fseek(f, 0, SEEK_SET) != 0) {
		shir_error_set(e, SHIR_EIO, "the state file %s is unreadable or too large", path);
		fclose(f);
		return NULL;
	}
	buf = malloc((size_t)n + 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		shir_error_set(e, SHIR_EIO, "cannot read the state file %s", path);
		free(buf);
		fclose(f);
		return NULL;
	}
	buf[n] = '\0';
	*len = (size_t)n;
	fclose(f);
	return buf;
}

int
rstate_load(const char *path, struct rstate **out, struct shir_error *e)
{
	struct rstate *s = calloc(1, sizeof *s);
	size_t len = 0;
	bool missing;
	char *buf = NULL;
	cJSON *root = NULL;
	const cJSON *ents, *it;
	int rc = SHIR_ECONFIG;

	*out = NULL;
	if (s == NULL)
		return shir_error_set(e, SHIR_ENOMEM, "out of memory");
	buf = read_file(path, &len, e, &missing);
	if (buf == NULL) {
		if (missing) {
			*out = s;
			return 0;
		}
		rstate_free(s);
		return SHIR_EIO;
	}
	root = cJSON_ParseWithLength(buf, len);
	ents = root ? cJSON_GetObjectItemCaseSensitive(root, "entities") : NULL;
	if (root == NULL || !cJSON_IsArray(ents)) {
		shir_error_set(e, SHIR_ECONFIG, "the state file %s is not valid (no \"entities\" array)",
		    path);
		goto out;
	}
	cJSON_ArrayForEach(it, ents) {
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name"), *r, *rules;
		struct rstate_entity *en;
		struct shir_error e2;

		if (!cJSON_IsString(name) || (en = rstate_add(s, name->valuestring, &e2)) == NULL) {
			shir_error_set(e, SHIR_ECONFIG, "the state file %s has a bad entity: %s", path,
			    cJSON_IsString(name) ? e2.msg : "no name");
			goto out;
		}
		en->ir = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "ir"));
		en->anonymous_senders = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it,
		    "anonymousSenders"));
		en->self_contained = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it,
		    "selfContained"));
		r = cJSON_GetObjectItemCaseSensitive(it, "endpoint");
		if (cJSON_IsString(r) && (en->endpoint = strdup(r->valuestring)) == NULL)
			goto nomem;
		r = cJSON_GetObjectItemCaseSensitive(it, "created");
		if (cJSON_IsNumber(r) && r->valuedouble >= 0 && r->valuedouble < 1e15)
			en->created = (int64_t)r->valuedouble;
		rules = cJSON_GetObjectItemCaseSensitive(it, "rules");
		cJSON_ArrayForEach(r, rules) {
			const cJSON *rn = cJSON_GetObjectItemCaseSensitive(r, "name");
			const cJSON *rk = cJSON_GetObjectItemCaseSensitive(r, "key");

			if (!cJSON_IsString(rn) || !cJSON_IsString(rk) || !*rn->valuestring ||
			    !*rk->valuestring) {
				shir_error_set(e, SHIR_ECONFIG, "the state file %s has a bad rule in %s",
				    path, en->name);
				goto out;
			}
			if (rstate_add_rule(en, rn->valuestring, rk->valuestring,
			    rights_parse(cJSON_GetObjectItemCaseSensitive(r, "rights"))) != 0)
				goto nomem;
		}
	}
	*out = s;
	s = NULL;
	rc = 0;
	goto out;
nomem:
	rc = shir_error_set(e, SHIR_ENOMEM, "out of memory");
out:
	if (buf != NULL) {
		OPENSSL_cleanse(buf, len);
		free(buf);
	}
	cJSON_Delete(root);
	rstate_free(s);
	return rc;
}

int
rstate_save(const struct rstate *s, const char *path, struct shir_error *e)
{
	cJSON *root = cJSON_CreateObject(), *ents;
	char *txt = NULL, *tmp = NULL, *dcopy = NULL;
	size_t i, j, tl;
	int fd = -1, dfd = -1, rc = SHIR_EIO;

	if (root == NULL || !cJSON_AddNumberToObject(root, "version", 1) ||
	    (ents = cJSON_AddArrayToObject(root, "entities")) == NULL)
		goto nomem;
	for (i = 0; i < s->n; i++) {
		const struct rstate_entity *en = &s->e[i];
		cJSON *o = cJSON_CreateObject(), *rules;

		if (o == NULL)
			goto nomem;
		cJSON_AddItemToArray(ents, o);
		if (!cJSON_AddStringToObject(o, "name", en->name) ||
		    !cJSON_AddBoolToObject(o, "ir", en->ir) ||
		    (en->endpoint && !cJSON_AddStringToObject(o, "endpoint", en->endpoint)) ||
		    !cJSON_AddBoolToObject(o, "anonymousSenders", en->anonymous_senders) ||
		    !cJSON_AddBoolToObject(o, "selfContained", en->self_contained) ||
		    !cJSON_AddNumberToObject(o, "created", (double)en->created) ||
		    (rules = cJSON_AddArrayToObject(o, "rules")) == NULL)
			goto nomem;
		for (j = 0; j < en->nrules; j++) {
			cJSON *r = cJSON_CreateObject(), *rights;

			if (r == NULL)
				goto nomem;
			cJSON_AddItemToArray(rules, r);
			if (!cJSON_AddStringToObject(r, "name", en->rules[j].name) ||
			    !cJSON_AddStringToObject(r, "key", en->rules[j].key) ||
			    (rights = cJSON_AddArrayToObject(r, "rights")) == NULL)
				goto nomem;
			if (en->rules[j].rights & SAS_LISTEN)
				cJSON_AddItemToArray(rights, cJSON_CreateString("Listen"));
			if (en->rules[j].rights & SAS_SEND)
				cJSON_AddItemToArray(rights, cJSON_CreateString("Send"));
			if (en->rules[j].rights & SAS_MANAGE)
				cJSON_AddItemToArray(rights, cJSON_CreateString("Manage"));
		}
	}
	if ((txt = cJSON_Print(root)) == NULL)
		goto nomem;
	tl = strlen(path) + 16;
	if ((tmp = malloc(tl)) == NULL || (dcopy = strdup(path)) == NULL)
		goto nomem;
	snprintf(tmp, tl, "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		shir_error_set(e, SHIR_EIO, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	/* `shir-relay ir create` run as root keeps the file the service's
	 * (the owner of /var/lib/shir-relay) */
	if (atomicfile_adopt_owner(fd, path, e) != 0) {
		close(fd);
		unlink(tmp);
		goto out;
	}
	{
		size_t n = strlen(txt), off = 0;

		while (off < n) {
			ssize_t w = write(fd, txt + off, n - off);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				shir_error_set(e, SHIR_EIO, "cannot write %s: %s", tmp, strerror(errno));
				goto out;
			}
			off += (size_t)w;
		}
	}
	if (write(fd, "\n", 1) != 1 || fsync(fd) != 0 || close(fd) != 0) {
		fd = -1;
		shir_error_set(e, SHIR_EIO, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		shir_error_set(e, SHIR_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		goto out;
	}
	dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		fsync(dfd);
	rc = 0;
	goto out;
nomem:
	rc = shir_error_set(e, SHIR_ENOMEM, "out of memory");
out:
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	if (dfd >= 0)
		close(dfd);
	if (txt != NULL) {
		OPENSSL_cleanse(txt, strlen(txt));
		free(txt);
	}
	free(tmp);
	free(dcopy);
	cJSON_Delete(root);
	return rc;
}

int
rstate_lock(const char *path, struct shir_error *e)
{
	char lp[4096];
	int fd;

	snprintf(lp, sizeof lp, "%s.lock", path);
	fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX) != 0) {
		shir_error_set(e, SHIR_EIO, "cannot lock %s: %s", lp, strerror(errno));
		if (fd >= 0)
			close(fd);
		return SHIR_EIO;
	}
	return fd;
}

void
rstate_unlock(int fd)
{
	if (fd >= 0) {
		flock(fd, LOCK_UN);
		close(fd);
	}
}
