#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/atomicfile.h"
#include "node/admin/servicehosts.h"
#include "common/jsonutil.h"

static int
servicehosts_cmp(const void *a, const void *b)
{
	const struct servicehost *x = a, *y = b;

	return x->last_seen < y->last_seen ? 1 : x->last_seen > y->last_seen ? -1 : 0;
}

int
servicehosts_list(const char *state_dir, struct servicehost **out, size_t *n,
    struct shir_error *err)
{
	struct servicehost *v = NULL;
	char path[PATH_MAX], *text = NULL;
	cJSON *o = NULL, *e;
	size_t k = 0;
	int rc;

	*out = NULL;
	*n = 0;
	snprintf(path, sizeof path, "%s/%s", state_dir, SERVICEHOSTS_FILE);
	rc = atomicfile_read(path, 256 * 1024, &text, NULL, err);
	if (rc == SHIR_ENOENT) {
		shir_error_clear(err);
		return 0;
	}
	if (rc != 0)
		return rc;
	o = cJSON_Parse(text);
	v = calloc(SERVICEHOSTS_MAX + 1, sizeof *v);
	if (v == NULL) {
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(o, "hosts")) {
		const char *h = cJSON_GetStringValue(cJSON_GetObjectItem(e, "host"));
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(e, "purpose"));
		double port = cJSON_GetNumberValue(cJSON_GetObjectItem(e, "port"));

		if (k == SERVICEHOSTS_MAX || h == NULL || !*h || strlen(h) >= sizeof v[k].host ||
		    !(port >= 1 && port <= 65535))
			continue;
		snprintf(v[k].host, sizeof v[k].host, "%s", h);
		snprintf(v[k].purpose, sizeof v[k].purpose, "%s", p ? p : "");
		v[k].port = (int)port;
		{
			long long num;

			v[k].last_seen = json_whole(cJSON_GetObjectItem(e, "lastSeen"), 0,
			    LLONG_MAX / 2, &num) == 0 ? (time_t)num : 0;
		}
		k++;
	}
	qsort(v, k, sizeof *v, servicehosts_cmp);
	*out = v;
	*n = k;
	v = NULL;
out:
	free(v);
	cJSON_Delete(o);
	free(text);
	return rc;
}

int
servicehosts_note(const char *state_dir, const char *host, int port, const char *purpose,
    struct shir_error *err)
{
	struct servicehost *v = NULL;
	char path[PATH_MAX], *text = NULL;
	time_t now = time(NULL);
	size_t n = 0, i;
	cJSON *o = NULL, *arr;
	int rc;

	if (!*host || strlen(host) >= sizeof v->host || port < 1 || port > 65535)
		return shir_error_set(err, SHIR_EINVAL, "not a host and port");
	if ((rc = servicehosts_list(state_dir, &v, &n, err)) != 0)
		return rc;
	if (v == NULL && (v = calloc(SERVICEHOSTS_MAX + 1, sizeof *v)) == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		if (strcmp(v[i].host, host) == 0 && v[i].port == port) {
			if (now - v[i].last_seen < 3600) {
				free(v);
				return 0;
			}
			v[i].last_seen = now;
			break;
		}
	}
	if (i == n) {
		if (n == SERVICEHOSTS_MAX)
			n--;	/* sorted newest first: the oldest goes */
		snprintf(v[n].host, sizeof v[n].host, "%s", host);
		snprintf(v[n].purpose, sizeof v[n].purpose, "%s", purpose ? purpose : "");
		v[n].port = port;
		v[n].last_seen = now;
		n++;
	}
	o = cJSON_CreateObject();
	arr = cJSON_AddArrayToObject(o, "hosts");
	for (i = 0; i < n; i++) {
		cJSON *e = cJSON_CreateObject();

		cJSON_AddStringToObject(e, "host", v[i].host);
		cJSON_AddNumberToObject(e, "port", v[i].port);
		cJSON_AddStringToObject(e, "purpose", v[i].purpose);
		cJSON_AddNumberToObject(e, "lastSeen", (double)v[i].last_seen);
		cJSON_AddItemToArray(arr, e);
	}
	text = cJSON_Print(o);
	snprintf(path, sizeof path, "%s/%s", state_dir, SERVICEHOSTS_FILE);
	rc = text ? atomicfile_write(path, text, strlen(text), 0600, err)
		  : shir_error_set(err, SHIR_ENOMEM, "out of memory");
	free(text);
	cJSON_Delete(o);
	free(v);
	return rc;
}
