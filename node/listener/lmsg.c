#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "node/listener/lmsg.h"
#include "common/log.h"
#include "relay/sas.h"

void
lmsg_msg_clear(struct lmsg_msg *m)
{
	hc_msg_clear(&m->raw);
	memset(m, 0, sizeof *m);
}

int
lmsg_strip_hc(const char *target, const char *hc, char *out, size_t len)
{
	size_t hl = strlen(hc);
	const char *rest = target;
	int n;

	if (*rest == '/' && strncasecmp(rest + 1, hc, hl) == 0 &&
	    (rest[1 + hl] == '\0' || rest[1 + hl] == '/' || rest[1 + hl] == '?'))
		rest += 1 + hl;
	n = snprintf(out, len, "%s%s", *rest == '/' ? "" : "/", rest);
	return n < 0 || (size_t)n >= len ? SHIR_ETOOBIG : 0;
}

int
lmsg_suffix(const char *address, const char *hc, char *out, size_t len)
{
	const char *p = strstr(address, "/$hc/");
	size_t hl = strlen(hc), n;

	if (p == NULL)
		return SHIR_EINVAL;
	p += 5;
	if (strncasecmp(p, hc, hl) != 0 || (p[hl] != '\0' && p[hl] != '/' && p[hl] != '?'))
		return SHIR_EINVAL;
	p += hl;
	n = strcspn(p, "?#");
	if (n >= len)
		return SHIR_ETOOBIG;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

int
lmsg_reject_url(const char *address, int code, const char *desc, char *out, size_t len)
{
	char *enc = sas_url_encode(desc);
	int n;

	if (enc == NULL)
		return SHIR_ENOMEM;
	n = snprintf(out, len, "%s%ssb-hc-statusCode=%d&sb-hc-statusDescription=%s", address,
	    strchr(address, '?') ? "&" : "?", code, enc);
	free(enc);
	return n < 0 || (size_t)n >= len ? SHIR_ETOOBIG : 0;
}

/* An address the listener dials: no control characters and no spaces, so it
 * can never add lines or words to the request line it becomes. */
static bool
lmsg_address_ok(const char *address)
{
	const unsigned char *p = (const unsigned char *)address;

	if (p == NULL || *p == '\0')
		return false;
	for (; *p; p++)
		if (*p <= 0x20 || *p == 0x7f)
			return false;
	return true;
}

static void
lmsg_accept(const struct lmsg_policy *p, struct lmsg_msg *m)
{
	const struct hc_accept *a = &m->raw.accept;
	char suffix[1024];
	const char *proto, *name;

	m->address = a->address;
	m->id = a->id;
	proto = hc_headers_get(&a->connect_headers, "Sec-WebSocket-Protocol");
	if (proto != NULL && !hc_header_value_ok(proto)) {
		/* it would be copied into the rendezvous request: refuse it */
		m->kind = LMSG_REJECT;
		m->code = 400;
		snprintf(m->desc, sizeof m->desc, "the Sec-WebSocket-Protocol header has a control "
		    "character (CR, LF, ...); offer subprotocol names that are RFC 7230 tokens");
		return;
	}
	if (lmsg_suffix(a->address, p->hc, suffix, sizeof suffix) != 0 ||
	    strncmp(suffix, "/tcp/", 5) != 0 || suffix[5] == '\0' ||
	    strchr(suffix + 5, '/') != NULL || strlen(suffix + 5) >= sizeof m->forward) {
		m->kind = LMSG_REJECT;
		m->code = 403;
		snprintf(m->desc, sizeof m->desc, "this node accepts WebSocket connections only on "
		    "/%.200s/tcp/NAME, where NAME is a forward in its [forward] list", p->hc);
		return;
	}
	name = suffix + 5;
	if (p->has_forward == NULL || !p->has_forward(p->arg, name)) {
		m->kind = LMSG_REJECT;
		m->code = 404;
		snprintf(m->desc, sizeof m->desc, "this node has no forward named %.200s", name);
		return;
	}
	m->kind = LMSG_TUNNEL;
	snprintf(m->forward, sizeof m->forward, "%s", name);
	if (proto != NULL) {
		size_t l;

		proto += strspn(proto, " \t");
		l = strcspn(proto, ", \t");
		if (l > 0 && l < sizeof m->proto_buf) {
			memcpy(m->proto_buf, proto, l);
			m->proto_buf[l] = '\0';
			m->protocol = m->proto_buf;
		}
		if (m->protocol != NULL && !hc_header_name_ok(m->protocol)) {
			m->protocol = NULL;
			m->kind = LMSG_REJECT;
			m->code = 400;
			snprintf(m->desc, sizeof m->desc, "the first offered subprotocol is not an "
			    "RFC 7230 token");
		}
	}
}

int
lmsg_handle(const char *text, size_t len, const struct lmsg_policy *p, struct lmsg_msg *m,
    struct shir_error *err)
{
	const struct hc_request *r;
	int rc;

	memset(m, 0, sizeof *m);
	if ((rc = hc_msg_decode(text, len, &m->raw, err)) != 0) {
		memset(m, 0, sizeof *m);
		return rc;
	}
	switch (m->raw.type) {
	case HC_MSG_ACCEPT:
		if (!p->control)
			break;	/* accept belongs on the control channel only */
		if (!lmsg_address_ok(m->raw.accept.address)) {
			/* cannot be opened, nor rejected (the reject goes there too) */
			rc = shir_error_set(err, SHIR_EPROTO, "an accept address is missing or has a "
			    "control character or a space");
			goto fail;
		}
		lmsg_accept(p, m);
		return 0;
	case HC_MSG_REQUEST:
		r = &m->raw.request;
		m->address = r->address;
		m->id = r->id;
		if (r->id == NULL || !*r->id) {
			rc = shir_error_set(err, SHIR_EPROTO, "a request has no id");
			goto fail;
		}
		if (!hc_request_is_inline(r)) {
			if (!p->control || r->address == NULL) {
				rc = shir_error_set(err, SHIR_EPROTO,
				    "an address-only request came %s", p->control ?
				    "without an address" : "on a rendezvous");
				goto fail;
			}
			if (!lmsg_address_ok(r->address)) {
				rc = shir_error_set(err, SHIR_EPROTO, "a request address has a control "
				    "character or a space");
				goto fail;
			}
			m->kind = LMSG_RENDEZVOUS;
			return 0;
		}
		m->kind = LMSG_REQUEST;
		m->method = r->method;
		m->body = r->has_body && r->body;
		if (lmsg_strip_hc(r->request_target ? r->request_target : "/", p->hc, m->target,
		    sizeof m->target) != 0) {
			m->code = 414;
			snprintf(m->desc, sizeof m->desc, "the request target is too long");
			m->target[0] = '\0';
		}
		return 0;
	case HC_MSG_CANCEL:
		if (!p->control)
			break;	/* a rendezvous ends by closing */
		m->id = m->raw.cancel_id;
		m->kind = LMSG_CANCEL;
		return 0;
	case HC_MSG_SYNC:
		if (!p->control)
			break;
		m->kind = LMSG_SYNC;
		return 0;
	default:
		break;
	}
	m->kind = LMSG_IGNORE;
	return 0;
fail:
	lmsg_msg_clear(m);
	return rc;
}

static const char *
lmsg_reason(int status)
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
	case 414: return "URI Too Long";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	}
	return NULL;
}

char *
lmsg_response_json(const char *request_id, int status, const char *headers, const char *ctype,
    bool body)
{
	struct hc_response r;
	const char *p = headers;
	char *s = NULL;

	memset(&r, 0, sizeof r);
	r.request_id = (char *)request_id;
	r.status = status;
	r.status_description = (char *)lmsg_reason(status);
	r.body = body;
	if (ctype != NULL && *ctype && hc_headers_add(&r.headers, "Content-Type", ctype) != 0)
		goto out;
	while (p != NULL && *p) {
		const char *eol = strstr(p, "\r\n"), *colon, *v;
		size_t l = eol ? (size_t)(eol - p) : strlen(p);
		char name[128], val[1024];
		size_t vl;

		colon = memchr(p, ':', l);
		if (colon != NULL && (size_t)(colon - p) < sizeof name && colon > p) {
			memcpy(name, p, (size_t)(colon - p));
			name[colon - p] = '\0';
			v = colon + 1;
			while (v < p + l && *v == ' ')
				v++;
			vl = (size_t)(p + l - v);
			if (vl >= sizeof val)
				vl = sizeof val - 1;
			memcpy(val, v, vl);
			val[vl] = '\0';
			if (!hc_is_hop_header(name) && hc_headers_add(&r.headers, name, val) != 0)
				goto out;
		}
		p = eol ? eol + 2 : p + l;
	}
	s = hc_msg_encode_response(&r);
out:
	hc_headers_clear(&r.headers);
	return s;
}

char *
lmsg_renew_json(const char *token)
{
	return hc_msg_encode_renew(token);
}
