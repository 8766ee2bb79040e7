#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "lctl.h"
#include "log.h"

#define LCTL_MAX_TEXT (64 * 1024)

void
lctl_msg_clear(struct lctl_msg *m)
{
	size_t i;

	free(m->address), free(m->id), free(m->target), free(m->method);
	for (i = 0; i < m->nheaders; i++)
		free(m->headers[i].name), free(m->headers[i].value);
	memset(m, 0, sizeof *m);
}

const char *
lctl_header(const struct lctl_msg *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->nheaders; i++)
		if (strcasecmp(m->headers[i].name, name) == 0)
			return m->headers[i].value;
	return NULL;
}

/* A string member, copied; absent is fine (NULL), another type is an error. */
static int
lctl_str(const cJSON *o, const char *key, char **out, int required, struct shir_error *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	*out = NULL;
	if (v == NULL || cJSON_IsNull(v)) {
		if (required)
			return shir_error_set(err, SHIR_EPROTO, "the command has no \"%s\"", key);
		return 0;
	}
	if (!cJSON_IsString(v) || v->valuestring == NULL)
		return shir_error_set(err, SHIR_EPROTO, "\"%s\" is not a string", key);
	if ((*out = strdup(v->valuestring)) == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	return 0;
}

static int
lctl_headers(const cJSON *o, const char *key, struct lctl_msg *m, struct shir_error *err)
{
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, key), *it;

	if (h == NULL || cJSON_IsNull(h))
		return 0;
	if (!cJSON_IsObject(h))
		return shir_error_set(err, SHIR_EPROTO, "\"%s\" is not an object", key);
	cJSON_ArrayForEach(it, h) {
		char num[32];
		const char *v;

		if (m->nheaders == LCTL_MAX_HEADERS)
			break;	/* more headers than we look at: ignore the rest */
		if (cJSON_IsString(it))
			v = it->valuestring;
		else if (cJSON_IsNumber(it))
			snprintf(num, sizeof num, "%.0f", it->valuedouble), v = num;
		else
			continue;	/* arrays and objects are not header values */
		if (it->string == NULL)
			continue;
		m->headers[m->nheaders].name = strdup(it->string);
		m->headers[m->nheaders].value = strdup(v);
		if (!m->headers[m->nheaders].name || !m->headers[m->nheaders].value) {
			free(m->headers[m->nheaders].name), free(m->headers[m->nheaders].value);
			return shir_error_set(err, SHIR_ENOMEM, "out of memory");
		}
		m->nheaders++;
	}
	return 0;
}

int
lctl_parse(const char *text, size_t len, struct lctl_msg *m, struct shir_error *err)
{
	cJSON *root = NULL, *cmd;
	int rc = 0;

	memset(m, 0, sizeof *m);
	if (len > LCTL_MAX_TEXT)
		return shir_error_set(err, SHIR_EPROTO, "a control message of %zu bytes is too large",
		    len);
	root = cJSON_ParseWithLength(text, len);
	if (root == NULL || !cJSON_IsObject(root)) {
		rc = shir_error_set(err, SHIR_EPROTO, "a control message is not a JSON object");
		goto out;
	}
	if ((cmd = cJSON_GetObjectItemCaseSensitive(root, "accept")) != NULL) {
		if (!cJSON_IsObject(cmd)) {
			rc = shir_error_set(err, SHIR_EPROTO, "\"accept\" is not an object");
			goto out;
		}
		m->kind = LCTL_ACCEPT;
		if ((rc = lctl_str(cmd, "address", &m->address, 1, err)) != 0 ||
		    (rc = lctl_str(cmd, "id", &m->id, 0, err)) != 0 ||
		    (rc = lctl_headers(cmd, "connectHeaders", m, err)) != 0)
			goto out;
	} else if ((cmd = cJSON_GetObjectItemCaseSensitive(root, "request")) != NULL) {
		const cJSON *b;

		if (!cJSON_IsObject(cmd)) {
			rc = shir_error_set(err, SHIR_EPROTO, "\"request\" is not an object");
			goto out;
		}
		if ((rc = lctl_str(cmd, "address", &m->address, 0, err)) != 0 ||
		    (rc = lctl_str(cmd, "id", &m->id, 1, err)) != 0 ||
		    (rc = lctl_str(cmd, "method", &m->method, 0, err)) != 0 ||
		    (rc = lctl_str(cmd, "requestTarget", &m->target, 0, err)) != 0)
			goto out;
		b = cJSON_GetObjectItemCaseSensitive(cmd, "body");
		if (m->method == NULL && b == NULL) {
			m->kind = LCTL_REQUEST_ADDRESS;
			if (m->address == NULL) {
				rc = shir_error_set(err, SHIR_EPROTO,
				    "an address-only request has no \"address\"");
				goto out;
			}
			goto out;
		}
		m->kind = LCTL_REQUEST;
		if (m->method == NULL || m->target == NULL) {
			rc = shir_error_set(err, SHIR_EPROTO,
			    "a request has \"body\" but no \"method\" or \"requestTarget\"");
			goto out;
		}
		if (b != NULL && !cJSON_IsBool(b)) {
			rc = shir_error_set(err, SHIR_EPROTO, "\"body\" is not true or false");
			goto out;
		}
		m->body = b != NULL && cJSON_IsTrue(b);
		if ((rc = lctl_headers(cmd, "requestHeaders", m, err)) != 0)
			goto out;
	} else {
		m->kind = LCTL_UNKNOWN;
		if (root->child != NULL && root->child->string != NULL)
			snprintf(m->unknown, sizeof m->unknown, "%s", root->child->string);
	}
out:
	cJSON_Delete(root);
	if (rc != 0)
		lctl_msg_clear(m);
	return rc;
}

static const char *
lctl_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	}
	return NULL;
}

char *
lctl_response_json(const char *request_id, int status, const char *headers, const char *ctype,
    int body)
{
	cJSON *root = cJSON_CreateObject(), *r = cJSON_CreateObject(), *h = cJSON_CreateObject();
	const char *p = headers, *reason = lctl_reason(status);
	char *s = NULL;

	if (root == NULL || r == NULL || h == NULL) {
		cJSON_Delete(root), cJSON_Delete(r), cJSON_Delete(h);
		return NULL;
	}
	cJSON_AddItemToObject(root, "response", r);
	cJSON_AddStringToObject(r, "requestId", request_id);
	cJSON_AddNumberToObject(r, "statusCode", status);
	if (reason)
		cJSON_AddStringToObject(r, "statusDescription", reason);
	if (ctype != NULL && *ctype)
		cJSON_AddStringToObject(h, "Content-Type", ctype);
	while (p != NULL && *p) {
		const char *eol = strstr(p, "\r\n"), *colon;
		size_t l = eol ? (size_t)(eol - p) : strlen(p);
		char name[128], val[1024];

		colon = memchr(p, ':', l);
		if (colon != NULL && (size_t)(colon - p) < sizeof name) {
			const char *v = colon + 1;
			size_t vl;

			memcpy(name, p, (size_t)(colon - p));
			name[colon - p] = '\0';
			while (v < p + l && *v == ' ')
				v++;
			vl = (size_t)(p + l - v);
			if (vl >= sizeof val)
				vl = sizeof val - 1;
			memcpy(val, v, vl);
			val[vl] = '\0';
			cJSON_DeleteItemFromObject(h, name);
			cJSON_AddStringToObject(h, name, val);
		}
		p = eol ? eol + 2 : p + l;
	}
	cJSON_AddItemToObject(r, "responseHeaders", h);
	cJSON_AddBoolToObject(r, "body", body);
	s = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return s;
}

char *
lctl_renew_json(const char *token)
{
	cJSON *root = cJSON_CreateObject(), *r = cJSON_CreateObject();
	char *s;

	if (root == NULL || r == NULL) {
		cJSON_Delete(root), cJSON_Delete(r);
		return NULL;
	}
	cJSON_AddItemToObject(root, "renewToken", r);
	cJSON_AddStringToObject(r, "token", token);
	s = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return s;
}

int
lctl_strip_hc(const char *target, const char *hc, char *out, size_t len)
{
	size_t hl = strlen(hc);
	const char *rest = target;

	if (*rest == '/' && strncasecmp(rest + 1, hc, hl) == 0 &&
	    (rest[1 + hl] == '\0' || rest[1 + hl] == '/' || rest[1 + hl] == '?'))
		rest += 1 + hl;
	if (*rest != '/') {
		if (snprintf(out, len, "/%s", rest) >= (int)len)
			return SHIR_ETOOBIG;
		return 0;
	}
	if (snprintf(out, len, "%s", rest) >= (int)len)
		return SHIR_ETOOBIG;
	return 0;
}
