/* hc_msg: see hc_msg.h. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "relay/hc_msg.h"
#include "common/jsonutil.h"
#include "relay/sas.h"

/* ---- headers -------------------------------------------------------------- */

void
hc_headers_clear(struct hc_headers *h)
{
	size_t i;

	if (h == NULL)
		return;
	for (i = 0; i < h->n; i++) {
		free(h->v[i].name);
		free(h->v[i].value);
	}
	free(h->v);
	h->v = NULL;
	h->n = 0;
}

int
hc_headers_add(struct hc_headers *h, const char *name, const char *value)
{
	struct hc_header *n;
	size_t i;

	for (i = 0; i < h->n; i++) {
		if (strcasecmp(h->v[i].name, name) == 0) {
			const char *sep = strcasecmp(name, "Cookie") == 0 ? "; " : ", ";
			size_t l = strlen(h->v[i].value) + strlen(sep) + strlen(value) + 1;
			char *v = malloc(l);

			if (v == NULL)
				return SHIR_ENOMEM;
			snprintf(v, l, "%s%s%s", h->v[i].value, sep, value);
			free(h->v[i].value);
			h->v[i].value = v;
			return 0;
		}
	}
	n = realloc(h->v, (h->n + 1) * sizeof *n);
	if (n == NULL)
		return SHIR_ENOMEM;
	h->v = n;
	h->v[h->n].name = strdup(name);
	h->v[h->n].value = strdup(value);
	if (h->v[h->n].name == NULL || h->v[h->n].value == NULL) {
		free(h->v[h->n].name);
		free(h->v[h->n].value);
		return SHIR_ENOMEM;
	}
	h->n++;
	return 0;
}

const char *
hc_headers_get(const struct hc_headers *h, const char *name)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		if (strcasecmp(h->v[i].name, name) == 0)
			return h->v[i].value;
	return NULL;
}

void
hc_headers_remove(struct hc_headers *h, const char *name)
{
	size_t i;

	for (i = 0; i < h->n; i++) {
		if (strcasecmp(h->v[i].name, name) == 0) {
			free(h->v[i].name);
			free(h->v[i].value);
			memmove(&h->v[i], &h->v[i + 1], (h->n - i - 1) * sizeof h->v[0]);
			h->n--;
			i--;
		}
	}
}

bool
hc_is_hop_header(const char *name)
{
	static const char *const hop[] = { "Connection", "Content-Length", "Host", "TE",
		"Trailer", "Transfer-Encoding", "Upgrade", "Close", "Keep-Alive",
		"Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", NULL };
	size_t i;

	for (i = 0; hop[i] != NULL; i++)
		if (strcasecmp(name, hop[i]) == 0)
			return true;
	return false;
}

bool
hc_list_has_token(const char *list, const char *token)
{
	size_t tl = strlen(token);

	if (list == NULL || tl == 0)
		return false;
	while (*list) {
		const char *end;
		size_t l;

		while (*list == ' ' || *list == '\t' || *list == ',')
			list++;
		end = list;
		while (*end && *end != ',')
			end++;
		l = (size_t)(end - list);
		while (l > 0 && (list[l - 1] == ' ' || list[l - 1] == '\t'))
			l--;
		if (l == tl && strncasecmp(list, token, tl) == 0)
			return true;
		list = end;
	}
	return false;
}

bool
hc_header_name_ok(const char *name)
{
	const unsigned char *p = (const unsigned char *)name;

	if (*p == '\0')
		return false;
	for (; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("!#$%&'*+-.^_`|~", *p) != NULL))
			return false;
	return true;
}

bool
hc_header_value_ok(const char *value)
{
	const unsigned char *p = (const unsigned char *)value;

	for (; *p; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return false;
	return true;
}

bool
hc_header_is_connection_option(const struct hc_headers *h, const char *name)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		if (strcasecmp(h->v[i].name, "Connection") == 0 &&
		    hc_list_has_token(h->v[i].value, name))
			return true;
	return false;
}

/* ---- decoding --------------------------------------------------------------- */

static int
get_str(const cJSON *o, const char *key, bool required, char **out, struct shir_error *e,
    const char *cmd)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	*out = NULL;
	if (v == NULL || cJSON_IsNull(v)) {
		if (required)
			return shir_error_set(e, SHIR_EPROTO, "%s lacks \"%s\"", cmd, key);
		return 0;
	}
	if (!cJSON_IsString(v) || v->valuestring == NULL)
		return shir_error_set(e, SHIR_EPROTO, "%s.%s must be a string", cmd, key);
	if ((*out = strdup(v->valuestring)) == NULL)
		return shir_error_set(e, SHIR_ENOMEM, "out of memory");
	return 0;
}

static int
get_headers(const cJSON *o, const char *key, struct hc_headers *h, struct shir_error *e,
    const char *cmd)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key), *it;

	if (v == NULL || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsObject(v))
		return shir_error_set(e, SHIR_EPROTO, "%s.%s must be an object", cmd, key);
	cJSON_ArrayForEach(it, v) {
		char num[64];
		const char *val;

		if (it->string == NULL)
			continue;
		if (cJSON_IsString(it))
			val = it->valuestring;
		else if (cJSON_IsNumber(it)) {
			snprintf(num, sizeof num, "%.17g", it->valuedouble);
			val = num;
		} else if (cJSON_IsBool(it))
			val = cJSON_IsTrue(it) ? "true" : "false";
		else
			return shir_error_set(e, SHIR_EPROTO, "%s.%s[%s] must be a string", cmd, key,
			    it->string);
		if (hc_headers_add(h, it->string, val) != 0)
			return shir_error_set(e, SHIR_ENOMEM, "out of memory");
	}
	return 0;
}

static int
get_endpoint(const cJSON *o, struct hc_endpoint *ep, struct shir_error *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "remoteEndpoint"), *a, *p;

	if (v == NULL || !cJSON_IsObject(v))
		return 0;
	a = cJSON_GetObjectItemCaseSensitive(v, "address");
	p = cJSON_GetObjectItemCaseSensitive(v, "port");
	if (cJSON_IsString(a) && (ep->address = strdup(a->valuestring)) == NULL)
		return shir_error_set(e, SHIR_ENOMEM, "out of memory");
	if (cJSON_IsNumber(p) && p->valuedouble >= 0 && p->valuedouble <= 65535)
		ep->port = (int)p->valuedouble;
	ep->set = ep->address != NULL;
	return 0;
}

static int
get_bool(const cJSON *o, const char *key, bool *present, bool *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	*out = false;
	if (present != NULL)
		*present = v != NULL && !cJSON_IsNull(v);
	if (v == NULL || cJSON_IsNull(v))
		return 0;
	if (cJSON_IsBool(v)) {
		*out = cJSON_IsTrue(v);
		return 0;
	}
	if (cJSON_IsString(v) && v->valuestring != NULL) {
		if (strcasecmp(v->valuestring, "true") == 0)
			*out = true;
		else if (strcasecmp(v->valuestring, "false") != 0)
			return SHIR_EPROTO;
		return 0;
	}
	return SHIR_EPROTO;
}

static int
decode_status(const cJSON *v, int *out, struct shir_error *e)
{
	if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;

		if (!(d >= 100 && d <= 999) || floor(d) != d)
			return shir_error_set(e, SHIR_EPROTO, "response.statusCode %g is not a status", d);
		*out = (int)d;
		return 0;
	}
	if (cJSON_IsString(v) && v->valuestring != NULL) {
		const char *s = v->valuestring;
		char *end = NULL;
		long n = strtol(s, &end, 10);

		if (end == s || *end != '\0' || n < 100 || n > 999 || s[0] < '0' || s[0] > '9')
			return shir_error_set(e, SHIR_EPROTO, "response.statusCode is not a status");
		*out = (int)n;
		return 0;
	}
	return shir_error_set(e, SHIR_EPROTO, "response.statusCode is missing");
}

/* cJSON ends a C string at a decoded \u0000, silently cutting the value
 * there. So that a NUL is seen (and refused) instead of cut, a copy of the
 * text is given to cJSON with each \u0000 escape inside a string turned into
 * \u0001 (a control character every later check rejects). *copy stays NULL
 * when the text has none (use it as is), else it is a malloc'ed copy. */
static int
nul_escapes_marked(const char *json, size_t len, char **copy)
{
	char *c;
	size_t i;
	bool in_str = false;

	*copy = NULL;
	if (memmem(json, len, "u0000", 5) == NULL)
		return 0;	/* the usual case: one fast scan, no copy */
	if ((c = malloc(len ? len : 1)) == NULL)
		return SHIR_ENOMEM;
	memcpy(c, json, len);
	for (i = 0; i < len; i++) {
		if (!in_str) {
			in_str = c[i] == '"';
			continue;
		}
		if (c[i] == '"') {
			in_str = false;
		} else if (c[i] == '\\' && i + 1 < len) {
			if (c[i + 1] == 'u' && i + 5 < len && memcmp(c + i + 2, "0000", 4) == 0)
				c[i + 5] = '1';
			i++;	/* the escaped character (the \u digits are plain) */
		}
	}
	*copy = c;
	return 0;
}

static int
decode_text(const char *json, size_t len, struct hc_msg *m, struct shir_error *e)
{
	cJSON *root = NULL;
	const cJSON *o;
	int rc = 0;

	memset(m, 0, sizeof *m);
	json_arena_begin();	/* the tree dies here; strings are copied out */
	root = cJSON_ParseWithLength(json, len);
	if (root == NULL || !cJSON_IsObject(root)) {
		rc = shir_error_set(e, SHIR_EPROTO, "the control message is not a JSON object");
		goto out;
	}
	if ((o = cJSON_GetObjectItemCaseSensitive(root, "accept")) != NULL) {
		m->type = HC_MSG_ACCEPT;
		if (!cJSON_IsObject(o)) {
			rc = shir_error_set(e, SHIR_EPROTO, "accept must be an object");
			goto out;
		}
		if ((rc = get_str(o, "address", true, &m->accept.address, e, "accept")) != 0 ||
		    (rc = get_str(o, "id", false, &m->accept.id, e, "accept")) != 0 ||
		    (rc = get_headers(o, "connectHeaders", &m->accept.connect_headers, e, "accept")) != 0 ||
		    (rc = get_endpoint(o, &m->accept.remote, e)) != 0)
			goto out;
	} else if ((o = cJSON_GetObjectItemCaseSensitive(root, "request")) != NULL) {
		struct hc_request *r = &m->request;

		m->type = HC_MSG_REQUEST;
		if (!cJSON_IsObject(o)) {
			rc = shir_error_set(e, SHIR_EPROTO, "request must be an object");
			goto out;
		}
		if ((rc = get_str(o, "address", false, &r->address, e, "request")) != 0 ||
		    (rc = get_str(o, "id", true, &r->id, e, "request")) != 0 ||
		    (rc = get_str(o, "method", false, &r->method, e, "request")) != 0 ||
		    (rc = get_str(o, "requestTarget", false, &r->request_target, e, "request")) != 0 ||
		    (rc = get_headers(o, "requestHeaders", &r->headers, e, "request")) != 0 ||
		    (rc = get_endpoint(o, &r->remote, e)) != 0)
			goto out;
		if (get_bool(o, "body", &r->has_body, &r->body) != 0) {
			rc = shir_error_set(e, SHIR_EPROTO, "request.body must be a boolean");
			goto out;
		}
		if (r->method != NULL && r->request_target == NULL) {
			rc = shir_error_set(e, SHIR_EPROTO, "an inline request lacks requestTarget");
			goto out;
		}
		if (r->method == NULL && r->address == NULL) {
			rc = shir_error_set(e, SHIR_EPROTO,
			    "an address-only request lacks its address");
			goto out;
		}
	} else if ((o = cJSON_GetObjectItemCaseSensitive(root, "response")) != NULL) {
		struct hc_response *r = &m->response;

		m->type = HC_MSG_RESPONSE;
		if (!cJSON_IsObject(o)) {
			rc = shir_error_set(e, SHIR_EPROTO, "response must be an object");
			goto out;
		}
		if ((rc = get_str(o, "requestId", true, &r->request_id, e, "response")) != 0 ||
		    (rc = decode_status(cJSON_GetObjectItemCaseSensitive(o, "statusCode"), &r->status,
		    e)) != 0 ||
		    (rc = get_str(o, "statusDescription", false, &r->status_description, e,
		    "response")) != 0 ||
		    (rc = get_headers(o, "responseHeaders", &r->headers, e, "response")) != 0)
			goto out;
		if (get_bool(o, "body", NULL, &r->body) != 0) {
			rc = shir_error_set(e, SHIR_EPROTO, "response.body must be a boolean");
			goto out;
		}
	} else if ((o = cJSON_GetObjectItemCaseSensitive(root, "cancel")) != NULL) {
		/* shir-relay's extension: the sender of an inline request left */
		m->type = HC_MSG_CANCEL;
		if (!cJSON_IsObject(o)) {
			rc = shir_error_set(e, SHIR_EPROTO, "cancel must be an object");
			goto out;
		}
		if ((rc = get_str(o, "id", true, &m->cancel_id, e, "cancel")) != 0)
			goto out;
	} else if ((o = cJSON_GetObjectItemCaseSensitive(root, "shirSync")) != NULL) {
		/* shir's extension: a sealed message between the nodes of one
		 * runtime, relayed as it is (docs/ha.md) */
		m->type = HC_MSG_SYNC;
		if (!cJSON_IsObject(o)) {
			rc = shir_error_set(e, SHIR_EPROTO, "shirSync must be an object");
			goto out;
		}
		/* the one unsealed field: the sending node says it is Inactive
		 * (shown in the relay's roster) */
		m->sync_inactive = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "state")) &&
		    strcmp(cJSON_GetObjectItemCaseSensitive(o, "state")->valuestring, "Inactive") == 0;
	} else if ((o = cJSON_GetObjectItemCaseSensitive(root, "renewToken")) != NULL) {
		m->type = HC_MSG_RENEW;
		if (!cJSON_IsObject(o)) {
			rc = shir_error_set(e, SHIR_EPROTO, "renewToken must be an object");
			goto out;
		}
		if ((rc = get_str(o, "token", true, &m->renew_token, e, "renewToken")) != 0)
			goto out;
	}
out:
	cJSON_Delete(root);
	json_arena_end();
	if (rc != 0)
		hc_msg_clear(m);
	return rc;
}

int
hc_msg_decode(const char *json, size_t len, struct hc_msg *m, struct shir_error *e)
{
	char *marked = NULL;
	int rc;

	if (nul_escapes_marked(json, len, &marked) != 0) {
		memset(m, 0, sizeof *m);
		return shir_error_set(e, SHIR_ENOMEM, "out of memory");
	}
	rc = decode_text(marked ? marked : json, len, m, e);
	free(marked);
	return rc;
}

static void
endpoint_clear(struct hc_endpoint *ep)
{
	free(ep->address);
	memset(ep, 0, sizeof *ep);
}

void
hc_msg_clear(struct hc_msg *m)
{
	if (m == NULL)
		return;
	free(m->accept.address);
	free(m->accept.id);
	hc_headers_clear(&m->accept.connect_headers);
	endpoint_clear(&m->accept.remote);
	free(m->request.address);
	free(m->request.id);
	free(m->request.method);
	free(m->request.request_target);
	hc_headers_clear(&m->request.headers);
	endpoint_clear(&m->request.remote);
	free(m->response.request_id);
	free(m->response.status_description);
	hc_headers_clear(&m->response.headers);
	free(m->renew_token);
	free(m->cancel_id);
	memset(m, 0, sizeof *m);
}

bool
hc_request_is_inline(const struct hc_request *r)
{
	return r->method != NULL;
}

/* ---- encoding ---------------------------------------------------------------- */

static bool
add_headers(cJSON *o, const char *key, const struct hc_headers *h)
{
	cJSON *hh = cJSON_AddObjectToObject(o, key);
	size_t i;

	if (hh == NULL)
		return false;
	for (i = 0; i < h->n; i++)
		if (cJSON_AddStringToObject(hh, h->v[i].name, h->v[i].value) == NULL)
			return false;
	return true;
}

static bool
add_endpoint(cJSON *o, const struct hc_endpoint *ep)
{
	cJSON *r;

	if (!ep->set)
		return true;
	r = cJSON_AddObjectToObject(o, "remoteEndpoint");
	return r != NULL && cJSON_AddStringToObject(r, "address", ep->address ? ep->address : "") &&
	    cJSON_AddNumberToObject(r, "port", ep->port);
}

/* Encoders build their tree in the scratch arena (begin_json) and copy the
 * printed text out of it here. */
static cJSON *
begin_json(void)
{
	cJSON *root;

	json_arena_begin();
	if ((root = cJSON_CreateObject()) == NULL)
		json_arena_end();
	return root;
}

static char *
finish_json(cJSON *root, bool ok)
{
	char *s = ok ? json_arena_strdup(cJSON_PrintUnformatted(root)) : NULL;

	cJSON_Delete(root);
	json_arena_end();
	return s;
}

char *
hc_msg_encode_accept(const struct hc_accept *a)
{
	cJSON *root = begin_json(), *o;
	bool ok;

	if (root == NULL)
		return NULL;
	o = cJSON_AddObjectToObject(root, "accept");
	ok = o != NULL && cJSON_AddStringToObject(o, "address", a->address ? a->address : "") &&
	    cJSON_AddStringToObject(o, "id", a->id ? a->id : "") &&
	    add_headers(o, "connectHeaders", &a->connect_headers) && add_endpoint(o, &a->remote);
	return finish_json(root, ok);
}

char *
hc_msg_encode_request(const struct hc_request *r)
{
	cJSON *root = begin_json(), *o;
	bool ok;

	if (root == NULL)
		return NULL;
	o = cJSON_AddObjectToObject(root, "request");
	ok = o != NULL;
	if (ok && r->address != NULL)
		ok = cJSON_AddStringToObject(o, "address", r->address) != NULL;
	if (ok)
		ok = cJSON_AddStringToObject(o, "id", r->id ? r->id : "") != NULL;
	if (ok && r->method != NULL)
		ok = cJSON_AddStringToObject(o, "requestTarget",
		    r->request_target ? r->request_target : "/") &&
		    cJSON_AddStringToObject(o, "method", r->method) &&
		    add_endpoint(o, &r->remote) &&
		    add_headers(o, "requestHeaders", &r->headers) &&
		    cJSON_AddBoolToObject(o, "body", r->body);
	return finish_json(root, ok);
}

char *
hc_msg_encode_response(const struct hc_response *r)
{
	cJSON *root = begin_json(), *o;
	bool ok;

	if (root == NULL)
		return NULL;
	o = cJSON_AddObjectToObject(root, "response");
	ok = o != NULL &&
	    cJSON_AddStringToObject(o, "requestId", r->request_id ? r->request_id : "") &&
	    cJSON_AddNumberToObject(o, "statusCode", r->status);
	if (ok && r->status_description != NULL)
		ok = cJSON_AddStringToObject(o, "statusDescription", r->status_description) != NULL;
	if (ok)
		ok = add_headers(o, "responseHeaders", &r->headers) &&
		    cJSON_AddBoolToObject(o, "body", r->body);
	return finish_json(root, ok);
}

char *
hc_msg_encode_renew(const char *token)
{
	cJSON *root = begin_json(), *o;
	bool ok;

	if (root == NULL)
		return NULL;
	o = cJSON_AddObjectToObject(root, "renewToken");
	ok = o != NULL && cJSON_AddStringToObject(o, "token", token ? token : "");
	return finish_json(root, ok);
}

/* ---- query rules ---------------------------------------------------------- */

char *
hc_strip_query(const char *q)
{
	size_t n = strlen(q), o = 0;
	char *r = malloc(n + 1);
	const char *p = q;
	bool first = true;

	if (r == NULL)
		return NULL;
	for (;;) {
		const char *end = p + strcspn(p, "&");
		size_t l = (size_t)(end - p);
		bool drop = l >= 6 && strncasecmp(p, "sb-hc-", 6) == 0 && memchr(p, '=', l) != NULL;

		if (!drop) {
			if (!first)
				r[o++] = '&';
			memcpy(r + o, p, l);
			o += l;
			first = false;
		}
		if (*end == '\0')
			break;
		p = end + 1;
	}
	r[o] = '\0';
	return r;
}

int
hc_query_get(const char *q, const char *key, char **out)
{
	size_t kl = strlen(key);
	const char *p = q;

	*out = NULL;
	while (p != NULL && *p) {
		const char *end = p + strcspn(p, "&");

		if ((size_t)(end - p) > kl && strncmp(p, key, kl) == 0 && p[kl] == '=')
			return sas_url_decode(p + kl + 1, (size_t)(end - p - (ptrdiff_t)kl - 1), true, out) ?
			    SHIR_EINVAL : 0;
		if ((size_t)(end - p) == kl && strncmp(p, key, kl) == 0)
			return (*out = strdup("")) ? 0 : SHIR_ENOMEM;
		p = *end ? end + 1 : NULL;
	}
	return SHIR_ENOENT;
}
