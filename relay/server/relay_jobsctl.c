/* relay_jobsctl: `shir-relay jobs ...` talks to the admin address of the
 * running relay (the queue lives in its memory and its state directory; the
 * relay alone changes it). A blocking libcurl call is fine here: this is a
 * command, not the event loop. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "relay/server/relay_conf.h"
#include "relay/server/relay_jobsctl.h"

#define REPLY_MAX (64 * 1024 * 1024)

struct reply {
	char *d;
	size_t n;
	bool over;
};

static size_t
on_data(char *p, size_t sz, size_t nm, void *arg)
{
	struct reply *r = arg;
	size_t n = sz * nm;
	char *d;

	if (r->n + n > REPLY_MAX) {
		r->over = true;
		return 0;
	}
	d = realloc(r->d, r->n + n + 1);
	if (d == NULL)
		return 0;
	memcpy(d + r->n, p, n);
	r->d = d;
	r->n += n;
	r->d[r->n] = '\0';
	return n;
}

/* One request to the admin address; *status the HTTP status, *out the body. */
static int
admin_call(const char *admin, const char *method, const char *path, long *status, cJSON **out)
{
	CURL *c = curl_easy_init();
	struct reply r = { 0 };
	char url[512];
	CURLcode cc;

	*out = NULL;
	if (c == NULL)
		return -1;
	snprintf(url, sizeof url, "http://%s%s", admin, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "POST") == 0)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		fprintf(stderr, "shir-relay: cannot reach the relay's admin address %s: %s (is "
		    "shir-relay running with this configuration?)\n", admin, r.over ?
		    "the answer is too large" : curl_easy_strerror(cc));
		free(r.d);
		curl_easy_cleanup(c);
		return -1;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	*out = r.d ? cJSON_Parse(r.d) : NULL;
	free(r.d);
	if (*out == NULL) {
		fprintf(stderr, "shir-relay: the admin address %s answered %ld without JSON\n", admin,
		    *status);
		return -1;
	}
	return 0;
}

static const char *
s_of(const cJSON *o, const char *k)
{
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));

	return v ? v : "-";
}

static void
print_list(const cJSON *o)
{
	const cJSON *j;

	printf("%-36s %-24s %-12s %-8s %-20s %s\n", "ID", "HYBRID CONNECTION", "STATE", "DEQUEUE",
	    "CREATED", "NODE");
	cJSON_ArrayForEach(j, cJSON_GetObjectItemCaseSensitive(o, "jobs")) {
		printf("%-36s %-24s %-12s %-8d %-20s %s\n", s_of(j, "id"), s_of(j, "hybridConnection"),
		    s_of(j, "state"),
		    (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "dequeueCount")),
		    s_of(j, "created"), s_of(j, "node"));
	}
}

static bool
id_ok(const char *id)
{
	size_t i;

	if (strlen(id) != 36)
		return false;
	for (i = 0; i < 36; i++)
		if (!(id[i] == '-' || (id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	return true;
}

int
relay_jobsctl(const char *conf_path, int argc, char **argv)
{
	struct shir_error e;
	struct relay_conf *c = relay_conf_load(conf_path, &e);
	const char *sub = argc > 0 ? argv[0] : "";
	bool json = false;
	char path[128];
	const char *method = "GET", *state = NULL;
	cJSON *o = NULL;
	long st = 0;
	int rc = 1, i;

	if (c == NULL) {
		fprintf(stderr, "shir-relay: %s: %s\n", conf_path, e.msg);
		return 1;
	}
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (strcmp(argv[i], "--state") == 0 && i + 1 < argc)
			state = argv[++i];
	}
	if (state != NULL && (strlen(state) > 20 || strspn(state, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(state))) {
		fprintf(stderr, "shir-relay: --state takes Queued, Running, Succeeded, Failed, "
		    "Cancelled or DeadLettered\n");
		rc = 2;
		goto out;
	}
	if (strcmp(sub, "list") == 0 && argc - json - (state ? 2 : 0) == 1) {
		snprintf(path, sizeof path, "/jobs%s%s", state ? "?state=" : "", state ? state : "");
	} else if ((strcmp(sub, "show") == 0 || strcmp(sub, "cancel") == 0) && argc - json == 2) {
		const char *id = strcmp(argv[1], "--json") == 0 ? argv[2] : argv[1];

		if (!id_ok(id)) {
			fprintf(stderr, "shir-relay: %s is not a job id (see: shir-relay jobs list)\n", id);
			goto out;
		}
		if (strcmp(sub, "cancel") == 0) {
			method = "POST";
			snprintf(path, sizeof path, "/jobs/%s/cancel", id);
		} else {
			snprintf(path, sizeof path, "/jobs/%s", id);
		}
	} else {
		fprintf(stderr, "usage: shir-relay [-f FILE] jobs list [--state STATE] [--json] | show ID | "
		    "cancel ID\n");
		rc = 2;
		goto out;
	}
	if (!*c->admin) {
		fprintf(stderr, "shir-relay: %s sets no admin address: `jobs` talks to the running "
		    "relay there (set admin = 127.0.0.1:PORT under [relay])\n", conf_path);
		goto out;
	}
	if (admin_call(c->admin, method, path, &st, &o) != 0)
		goto out;
	if (st != 200) {
		const cJSON *er = cJSON_GetObjectItemCaseSensitive(o, "error");

		fprintf(stderr, "shir-relay: %s (%s)\n", s_of(er, "message"), s_of(er, "code"));
		goto out;
	}
	if (json || strcmp(sub, "show") == 0) {
		char *txt = cJSON_Print(o);

		printf("%s\n", txt ? txt : "{}");
		free(txt);
	} else if (strcmp(sub, "cancel") == 0) {
		printf("Job %s cancelled; a node working on it stops at its next heartbeat.\n",
		    s_of(o, "id"));
	} else {
		print_list(o);
	}
	rc = 0;
out:
	cJSON_Delete(o);
	relay_conf_free(c);
	return rc;
}
