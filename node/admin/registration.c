#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "common/atomicfile.h"
#include "node/admin/credstore.h"
#include "common/log.h"
#include "node/admin/registration.h"
#include "common/jsonutil.h"

#define REGISTRATION_FILE_MAX (64 * 1024)

void
registration_free(struct registration *r)
{
	if (r == NULL)
		return;
	free(r->node_name);
	free(r->ir);
	free(r->endpoint);
	free(r->hc);
	free(r->key_name);
	credstore_secret_free(r->key);
	free(r->tls_pin);
	free(r);
}

static int
registration_dupstr(char **dst, const char *src)
{
	if (src == NULL) {
		*dst = NULL;
		return 0;
	}
	*dst = strdup(src);
	return *dst == NULL ? -1 : 0;
}

struct registration *
registration_dup(const struct registration *r)
{
	struct registration *d = calloc(1, sizeof *d);

	if (d == NULL)
		return NULL;
	if (registration_dupstr(&d->node_name, r->node_name) || registration_dupstr(&d->ir, r->ir) ||
	    registration_dupstr(&d->endpoint, r->endpoint) || registration_dupstr(&d->hc, r->hc) ||
	    registration_dupstr(&d->key_name, r->key_name) || registration_dupstr(&d->key, r->key) ||
	    registration_dupstr(&d->tls_pin, r->tls_pin)) {
		registration_free(d);
		return NULL;
	}
	d->registered = r->registered;
	return d;
}

static int
registration_streq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

int
registration_equal(const struct registration *a, const struct registration *b)
{
	size_t la, lb;

	if (a == NULL || b == NULL)
		return a == b;
	la = a->key ? strlen(a->key) : 0;
	lb = b->key ? strlen(b->key) : 0;
	return registration_streq(a->node_name, b->node_name) && registration_streq(a->ir, b->ir) &&
	    registration_streq(a->endpoint, b->endpoint) && registration_streq(a->hc, b->hc) &&
	    registration_streq(a->key_name, b->key_name) &&
	    registration_streq(a->tls_pin, b->tls_pin) && la == lb &&
	    (la == 0 || CRYPTO_memcmp(a->key, b->key, la) == 0);
}

int
registration_endpoint_hostport(const char *endpoint, char *host, size_t hostlen, int *port,
    int *tls)
{
	const char *p, *end, *colon;
	size_t hl;

	if (strncasecmp(endpoint, "wss://", 6) == 0 || strncasecmp(endpoint, "https://", 8) == 0)
		*tls = 1, *port = 443;
	else if (strncasecmp(endpoint, "ws://", 5) == 0 || strncasecmp(endpoint, "http://", 7) == 0)
		*tls = 0, *port = 80;
	else
		return SHIR_EINVAL;
	p = strstr(endpoint, "://") + 3;
	end = p + strcspn(p, "/?#");
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));

		if (rb == NULL)
			return SHIR_EINVAL;
		hl = (size_t)(rb - p - 1);
		colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
		p++;
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
		hl = (size_t)((colon ? colon : end) - p);
	}
	if (hl == 0 || hl >= hostlen)
		return SHIR_EINVAL;
	memcpy(host, p, hl);
	host[hl] = '\0';
	if (colon != NULL) {
		char *e;
		long v = strtol(colon + 1, &e, 10);

		if (e != end || v < 1 || v > 65535)
			return SHIR_EINVAL;
		*port = (int)v;
	}
	return 0;
}

static char *
registration_jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) && v->valuestring[0] ? strdup(v->valuestring) : NULL;
}

int
registration_parse(const char *text, const char *what, struct registration **out,
    struct shir_error *err)
{
	struct registration *r = NULL;
	cJSON *o = cJSON_Parse(text);
	int rc = 0, port, tls;
	char host[256];

	*out = NULL;
	r = calloc(1, sizeof *r);
	if (r == NULL) {
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	if (!cJSON_IsObject(o)) {
		rc = shir_error_set(err, SHIR_EPROTO, "%s is not a JSON object; register the node "
		    "again with `shirctl register-node KEY`", what);
		goto out;
	}
	r->node_name = registration_jstr(o, "nodeName");
	r->ir = registration_jstr(o, "ir");
	r->endpoint = registration_jstr(o, "endpoint");
	r->hc = registration_jstr(o, "hc");
	r->key_name = registration_jstr(o, "keyName");
	r->tls_pin = registration_jstr(o, "tlsPin");
	{
		long long t;

		/* a missing or absurd time is "unknown" (0) */
		if (json_whole(cJSON_GetObjectItem(o, "registered"), 0, LLONG_MAX / 2, &t) == 0)
			r->registered = (time_t)t;
	}
	if (r->ir == NULL || r->endpoint == NULL || r->hc == NULL || r->key_name == NULL) {
		rc = shir_error_set(err, SHIR_EPROTO, "%s lacks ir, endpoint, hc or keyName; register "
		    "the node again with `shirctl register-node KEY`", what);
		goto out;
	}
	if (registration_endpoint_hostport(r->endpoint, host, sizeof host, &port, &tls) != 0) {
		rc = shir_error_set(err, SHIR_EPROTO, "%s: endpoint %s is not a wss:// URL", what,
		    log_q(r->endpoint));
		goto out;
	}
	*out = r;
	r = NULL;
out:
	registration_free(r);
	cJSON_Delete(o);
	return rc;
}

int
registration_load_public(const char *state_dir, struct registration **out,
    struct shir_error *err)
{
	char path[PATH_MAX], *text = NULL;
	int rc;

	*out = NULL;
	snprintf(path, sizeof path, "%s/%s", state_dir, REGISTRATION_FILE);
	rc = atomicfile_read(path, REGISTRATION_FILE_MAX, &text, NULL, err);
	if (rc == SHIR_ENOENT)
		return shir_error_set(err, SHIR_ENOENT, "this node is not registered (%s does not "
		    "exist): run `shirctl register-node KEY`", path);
	if (rc != 0)
		return rc;
	rc = registration_parse(text, path, out, err);
	free(text);
	return rc;
}

int
registration_load(const char *state_dir, struct credstore *cs, struct registration **out,
    struct shir_error *err)
{
	struct registration *r = NULL;
	int rc;

	*out = NULL;
	if ((rc = registration_load_public(state_dir, &r, err)) != 0)
		return rc;
	rc = credstore_get(cs, REGISTRATION_KEY_CREDENTIAL, &r->key, err);
	if (rc != 0) {
		if (rc == SHIR_ENOENT)
			rc = shir_error_set(err, SHIR_ECONFIG, "node.json names IR %s but the node key is not "
			    "in the credential store; register again with `shirctl register-node "
			    "KEY`", r->ir);
		registration_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

int
registration_save(const char *state_dir, struct credstore *cs, const struct registration *r,
    struct shir_error *err)
{
	char path[PATH_MAX], *text = NULL;
	cJSON *o = cJSON_CreateObject();
	int rc;

	if (o == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	if ((rc = credstore_put(cs, REGISTRATION_KEY_CREDENTIAL, r->key, err)) != 0)
		goto out;
	cJSON_AddNumberToObject(o, "format", 1);
	cJSON_AddStringToObject(o, "nodeName", r->node_name ? r->node_name : "");
	cJSON_AddStringToObject(o, "ir", r->ir);
	cJSON_AddStringToObject(o, "endpoint", r->endpoint);
	cJSON_AddStringToObject(o, "hc", r->hc);
	cJSON_AddStringToObject(o, "keyName", r->key_name);
	if (r->tls_pin != NULL)
		cJSON_AddStringToObject(o, "tlsPin", r->tls_pin);
	cJSON_AddStringToObject(o, "keyCredential", REGISTRATION_KEY_CREDENTIAL);
	cJSON_AddNumberToObject(o, "registered", (double)r->registered);
	text = cJSON_Print(o);
	if (text == NULL) {
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	snprintf(path, sizeof path, "%s/%s", state_dir, REGISTRATION_FILE);
	rc = atomicfile_write(path, text, strlen(text), 0600, err);
	if (rc == 0)
		log_info("admin", "event=registration.saved ir=%s endpoint=%s key_name=%s node=%s",
		    log_q(r->ir), log_q(r->endpoint), log_q(r->key_name),
		    log_q(r->node_name ? r->node_name : ""));
out:
	free(text);
	cJSON_Delete(o);
	return rc;
}
