/* sc_proto: the self-contained channel's upgrade handshake (both sides). */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "relay/announce.h"
#include "relay/sc_proto.h"

static int
sc_proto_value_ok(const char *v)
{
	for (; v != NULL && *v; v++)
		if ((unsigned char)*v < 0x20 || *v == 0x7f)
			return 0;
	return v != NULL;
}

char *
sc_proto_request(const struct sc_hello *h)
{
#define SC_PROTO_REQ_FMT "GET " SC_PROTO_PATH "%s HTTP/1.1\r\nHost: %s\r\nConnection: upgrade\r\n" \
	    "Upgrade: reverse\r\nALPN: h2\r\nServiceBusAuthorization: %s\r\nShir-Node-Name: %s\r\n" \
	    "Shir-Node-Id: %s\r\nShir-Version: %s\r\nShir-Capacity: %d\r\n%s%s%s%s\r\n"
	char *out;
	int n;
	const char *a1 = h->ann ? h->ann->node : "", *a2 = h->ann ? h->ann->instance : "";
	const char *e1 = h->ann ? "\r\n" : "";

	if (!sc_proto_value_ok(h->host) || !sc_proto_value_ok(h->hc) || !sc_proto_value_ok(h->token) ||
	    !sc_proto_value_ok(h->node_name) || !sc_proto_value_ok(h->node_id) ||
	    !sc_proto_value_ok(h->version) || strpbrk(h->hc, " ?#") != NULL ||
	    (h->ann != NULL && (!sc_proto_value_ok(a1) || !sc_proto_value_ok(a2))))
		return NULL;
	/* Shir-Version is already there: the announce adds Shir-Node and
	 * Shir-Node-Instance */
	n = snprintf(NULL, 0, SC_PROTO_REQ_FMT, h->hc, h->host, h->token, h->node_name, h->node_id, h->version,
	    h->capacity, a1, e1, a2, e1);
	if (n < 0 || (out = malloc((size_t)n + 1)) == NULL)
		return NULL;
	snprintf(out, (size_t)n + 1, SC_PROTO_REQ_FMT, h->hc, h->host, h->token, h->node_name, h->node_id,
	    h->version, h->capacity, a1, e1, a2, e1);
	return out;
}

/* Copies a header value (trimmed) of at most cap-1 bytes. */
static void
sc_proto_copy(char *dst, size_t cap, const char *v, size_t n)
{
	while (n > 0 && (*v == ' ' || *v == '\t'))
		v++, n--;
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

static int
sc_proto_line(const char *name, size_t nl, const char *val, size_t vl, struct sc_answer *out,
    int *upgrade, int *alpn, struct shir_error *err)
{
	char v[128];

	sc_proto_copy(v, sizeof v, val, vl);
	if (nl == 7 && strncasecmp(name, "Upgrade", 7) == 0)
		*upgrade = strcasecmp(v, "reverse") == 0 ? 1 : -1;
	else if (nl == 13 && strncasecmp(name, "Selected-ALPN", 13) == 0) {
		if (strcmp(v, "h2") != 0)
			return shir_error_set(err, SHIR_EPROTO, "the relay selected the protocol "
			    "\"%.40s\" (Selected-ALPN), not h2", v);
		*alpn = 1;
	} else if (nl == 18 && strncasecmp(name, "Shir-Connection-Id", 18) == 0)
		sc_proto_copy(out->conn_id, sizeof out->conn_id, val, vl);
	else if (nl == 19 && strncasecmp(name, "Shir-Self-Contained", 19) == 0)
		out->self_contained = strcasecmp(v, "on") == 0;
	else if (nl == 11 && strncasecmp(name, "Retry-After", 11) == 0) {
		long ra = strtol(v, NULL, 10);

		out->retry_after = ra < 0 ? 0 : ra > 3600 ? 3600 : (int)ra;
	}
	return 0;
}

int
sc_proto_parse_answer(const char *buf, size_t len, struct sc_answer *out, struct shir_error *err)
{
	const char *end = NULL, *p, *eol;
	size_t i, scan = len < SC_PROTO_HEAD_MAX ? len : SC_PROTO_HEAD_MAX;
	int upgrade = 0, alpn = 0, rc;

	memset(out, 0, sizeof *out);
	for (i = 0; i + 3 < scan; i++)
		if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') {
			end = buf + i + 2;	/* the last line's CRLF is kept */
			break;
		}
	if (end == NULL) {
		if (len >= 5 && memcmp(buf, "HTTP/", 5) != 0)
			return shir_error_set(err, SHIR_EPROTO, "the relay did not answer the upgrade "
			    "in HTTP/1.1 (the answer starts with bytes that are not a status line)");
		if (len >= SC_PROTO_HEAD_MAX)
			return shir_error_set(err, SHIR_ETOOBIG, "the relay's answer to the upgrade has "
			    "no end of head within %d bytes", SC_PROTO_HEAD_MAX);
		return 0;
	}
	eol = memchr(buf, '\r', (size_t)(end - buf));
	if (eol == NULL || eol - buf < 12 || memcmp(buf, "HTTP/1.1 ", 9) != 0 ||
	    !isdigit((unsigned char)buf[9]) || !isdigit((unsigned char)buf[10]) ||
	    !isdigit((unsigned char)buf[11]) || (eol - buf > 12 && buf[12] != ' '))
		return shir_error_set(err, SHIR_EPROTO, "the relay's answer to the upgrade has a bad "
		    "status line");
	out->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	if (eol - buf > 13)
		sc_proto_copy(out->reason, sizeof out->reason, buf + 13, (size_t)(eol - buf - 13));
	for (i = 0; out->reason[i]; i++)
		if ((unsigned char)out->reason[i] < 0x20 || out->reason[i] == 0x7f)
			out->reason[i] = ' ';
	for (p = eol + 2; p < end; p = eol + 2) {
		const char *colon;

		eol = memchr(p, '\r', (size_t)(end - p));
		if (eol == NULL || eol[1] != '\n')
			return shir_error_set(err, SHIR_EPROTO, "the relay's answer to the upgrade has a "
			    "bare CR in its head");
		colon = memchr(p, ':', (size_t)(eol - p));
		if (colon == NULL || colon == p || memchr(p, ' ', (size_t)(colon - p)) != NULL)
			return shir_error_set(err, SHIR_EPROTO, "the relay's answer to the upgrade has a "
			    "bad header line");
		if ((rc = sc_proto_line(p, (size_t)(colon - p), colon + 1, (size_t)(eol - colon - 1), out,
		    &upgrade, &alpn, err)) != 0)
			return rc;
	}
	if (out->status == 101) {
		if (upgrade != 1)
			return shir_error_set(err, SHIR_EPROTO, "the relay switched protocols without "
			    "Upgrade: reverse");
		if (!alpn)
			return shir_error_set(err, SHIR_EPROTO, "the relay switched protocols without "
			    "Selected-ALPN: h2");
	}
	return (int)(end - buf) + 2;
}

int
sc_proto_answer_101(char *out, size_t len, const char *conn_id, int self_contained)
{
	int n = snprintf(out, len, "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
	    "Upgrade: reverse\r\nSelected-ALPN: h2\r\nShir-Connection-Id: %s\r\n"
	    "Shir-Self-Contained: %s\r\n\r\n", conn_id, self_contained ? "on" : "off");

	return n < 0 || (size_t)n >= len ? SHIR_ETOOBIG : n;
}
