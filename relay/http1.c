/* http1: see http1.h. http-parser does the parsing; this file collects the
 * head into a struct, enforces caps and maps errors. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "relay/http1.h"

struct http1 {
	http_parser hp;
	http_parser_settings st;
	enum http1_kind kind;
	enum http1_state state;
	struct http1_callbacks cb;
	void *arg;
	struct http1_limits lim;
	struct http1_msg m;
	size_t head_bytes;
	/* the string being appended to (http-parser delivers one element at a
	 * time, in pieces): its length and allocation, so that appending a piece
	 * costs the piece, not the whole value again */
	char **cur;
	size_t cur_len, cur_cap;
	bool last_was_value;
	bool head_request;
	bool too_big;
	bool bad_te;		/* a request's Transfer-Encoding is not exactly "chunked" */
	/* chunk delimiters: http-parser (built without HTTP_PARSER_STRICT) takes
	 * any two bytes after a chunk's data for its CRLF, so "5\r\nhelloXX3..."
	 * would frame differently here than in a strict peer. Checked from the
	 * body callbacks: the CRLF before a chunk's data and the one after it. */
	const uint8_t *buf, *buf_end;	/* the data being fed */
	uint8_t prev[2];	/* the last two bytes consumed before buf */
	bool chunk_start;	/* the next body piece starts a chunk */
	int crlf_need;		/* bytes of a chunk's closing CRLF still to check */
	bool bad_chunk;
	bool bad_upgrade;	/* an upgrade request with a body */
	int cb_err;
};

static void
msg_clear(struct http1_msg *m)
{
	size_t i;

	free(m->method);
	free(m->target);
	free(m->reason);
	for (i = 0; i < m->nh; i++) {
		free(m->h[i].name);
		free(m->h[i].value);
	}
	free(m->h);
	memset(m, 0, sizeof *m);
}

static int
append(struct http1 *p, char **s, const char *at, size_t len)
{
	size_t need;
	char *n;

	p->head_bytes += len;
	if (p->head_bytes > p->lim.max_head) {
		p->too_big = true;
		return -1;
	}
	if (p->cur != s) {
		p->cur = s;
		p->cur_len = *s ? strlen(*s) : 0;
		p->cur_cap = *s ? p->cur_len + 1 : 0;
	}
	need = p->cur_len + len + 1;
	if (need > p->cur_cap) {
		size_t cap = p->cur_cap < 32 ? 32 : p->cur_cap;

		while (cap < need)
			cap *= 2;
		if ((n = realloc(*s, cap)) == NULL)
			return -1;
		*s = n;
		p->cur_cap = cap;
	}
	memcpy(*s + p->cur_len, at, len);
	p->cur_len += len;
	(*s)[p->cur_len] = '\0';
	return 0;
}

static struct http1 *
P(http_parser *hp)
{
	return hp->data;
}

static int
cb_begin(http_parser *hp)
{
	struct http1 *p = P(hp);

	msg_clear(&p->m);
	p->cur = NULL;
	p->head_bytes = 0;
	p->last_was_value = false;
	p->chunk_start = false;
	p->crlf_need = 0;
	p->state = HTTP1_S_HEAD;
	return 0;
}

static int
cb_url(http_parser *hp, const char *at, size_t len)
{
	return append(P(hp), &P(hp)->m.target, at, len);
}

static int
cb_status(http_parser *hp, const char *at, size_t len)
{
	return append(P(hp), &P(hp)->m.reason, at, len);
}

static int
cb_field(http_parser *hp, const char *at, size_t len)
{
	struct http1 *p = P(hp);
	struct http1_msg *m = &p->m;

	if (m->nh == 0 || p->last_was_value) {
		struct http1_header *n;

		if (m->nh >= p->lim.max_headers) {
			p->too_big = true;
			return -1;
		}
		n = realloc(m->h, (m->nh + 1) * sizeof *n);
		if (n == NULL)
			return -1;
		m->h = n;
		p->cur = NULL;	/* the array may have moved */
		m->h[m->nh].name = NULL;
		m->h[m->nh].value = NULL;
		m->nh++;
		p->last_was_value = false;
	}
	return append(p, &m->h[m->nh - 1].name, at, len);
}

static int
cb_value(http_parser *hp, const char *at, size_t len)
{
	struct http1 *p = P(hp);
	struct http1_msg *m = &p->m;

	if (m->nh == 0)
		return -1;
	p->last_was_value = true;
	return append(p, &m->h[m->nh - 1].value, at, len);
}

/* RFC 9112 §6.1 and §6.3: a request's transfer codings must end with chunked,
 * and this parser decodes no other coding, so a request may only carry
 * exactly one "chunked" (any case, in one header or spread over several,
 * with optional whitespace and empty list elements). Anything else
 * ("chunked, identity", "gzip, chunked", "chunked, chunked", an unknown
 * coding, an empty value) is a framing the relay cannot follow: 400. */
static bool
request_te_ok(const struct http1_msg *m)
{
	size_t i, nchunked = 0;
	bool seen = false;

	for (i = 0; i < m->nh; i++) {
		const char *v = m->h[i].value;

		if (strcasecmp(m->h[i].name, "Transfer-Encoding") != 0)
			continue;
		seen = true;
		while (*v) {
			size_t l;

			while (*v == ' ' || *v == '\t' || *v == ',')
				v++;
			if (!*v)
				break;
			l = strcspn(v, ",");
			while (l > 0 && (v[l - 1] == ' ' || v[l - 1] == '\t'))
				l--;
			if (l != 7 || strncasecmp(v, "chunked", 7) != 0)
				return false;
			nchunked++;
			v += l;
		}
	}
	return !seen || nchunked == 1;
}

static int
cb_headers_complete(http_parser *hp)
{
	struct http1 *p = P(hp);
	struct http1_msg *m = &p->m;
	size_t i;
	int rc;

	for (i = 0; i < m->nh; i++) {
		if (m->h[i].name == NULL)
			m->h[i].name = strdup("");
		if (m->h[i].value == NULL)
			m->h[i].value = strdup("");
		if (m->h[i].name == NULL || m->h[i].value == NULL)
			return -1;
	}
	m->is_request = p->kind == HTTP1_REQUEST;
	if (m->is_request && !request_te_ok(m)) {
		p->bad_te = true;
		return -1;
	}
	if (m->is_request) {
		m->method = strdup(http_method_str((enum http_method)hp->method));
		if (m->method == NULL)
			return -1;
		if (m->target == NULL && (m->target = strdup("")) == NULL)
			return -1;
	} else {
		m->status = hp->status_code;
		if (m->reason == NULL && (m->reason = strdup("")) == NULL)
			return -1;
	}
	m->http_major = hp->http_major;
	m->http_minor = hp->http_minor;
	m->chunked = (hp->flags & F_CHUNKED) != 0;
	m->has_length = hp->content_length != (uint64_t)-1 && !m->chunked;
	m->content_length = m->has_length ? hp->content_length : 0;
	m->keep_alive = http_should_keep_alive(hp) != 0;
	if (m->is_request)
		m->upgrade = hp->upgrade && hp->method != HTTP_CONNECT;
	else
		m->upgrade = hp->status_code == 101;
	if (m->is_request && m->upgrade && (m->chunked || (m->has_length && m->content_length > 0))) {
		/* http-parser would read the body before the switch when the bytes
		 * are there, and stop at the head when they are not: whether they
		 * are HTTP or the new protocol's would depend on how TCP cut them */
		p->bad_upgrade = true;
		return -1;
	}
	m->expect_continue = m->is_request && http1_msg_has_token(m, "Expect", "100-continue");
	p->state = m->upgrade ? HTTP1_S_UPGRADED : HTTP1_S_BODY;
	if (p->cb.on_head != NULL && (rc = p->cb.on_head(m, p->arg)) < 0) {
		p->cb_err = rc;
		return -1;
	}
	if (!m->is_request && (p->head_request || m->upgrade))
		return 1;	/* no body */
	return 0;
}

/* Byte i of the input relative to buf (i may be -1 or -2: before it). */
static int
byte_at(const struct http1 *p, ptrdiff_t i)
{
	if (i >= 0)
		return p->buf + i < p->buf_end ? p->buf[i] : -1;
	return i >= -2 ? p->prev[2 + i] : -1;
}

static int
cb_chunk_header(http_parser *hp)
{
	P(hp)->chunk_start = true;
	return 0;
}

static int
cb_body(http_parser *hp, const char *at, size_t len)
{
	struct http1 *p = P(hp);
	int rc;

	if ((hp->flags & F_CHUNKED) && p->buf != NULL) {
		ptrdiff_t o = (const uint8_t *)at - p->buf;

		if (p->chunk_start) {
			/* the chunk-size line ended with CRLF */
			p->chunk_start = false;
			if (byte_at(p, o - 2) != '\r' || byte_at(p, o - 1) != '\n') {
				p->bad_chunk = true;
				return -1;
			}
		}
		if (hp->content_length == 0) {
			/* the chunk's data ends here: CRLF must follow (what is not in
			 * this buffer yet is checked at the start of the next one) */
			ptrdiff_t e = o + (ptrdiff_t)len;
			int c0 = byte_at(p, e), c1 = byte_at(p, e + 1);

			if ((c0 >= 0 && c0 != '\r') || (c1 >= 0 && c1 != '\n')) {
				p->bad_chunk = true;
				return -1;
			}
			p->crlf_need = c0 < 0 ? 2 : c1 < 0 ? 1 : 0;
		}
	}
	if (p->cb.on_body != NULL && (rc = p->cb.on_body((const uint8_t *)at, len, p->arg)) < 0) {
		p->cb_err = rc;
		return -1;
	}
	return 0;
}

static int
cb_complete(http_parser *hp)
{
	struct http1 *p = P(hp);
	int rc;

	if (p->state != HTTP1_S_UPGRADED)
		p->state = HTTP1_S_HEAD;
	else
		http_parser_pause(hp, 1);	/* what follows a 101 is not HTTP, however
					   the input was cut (http-parser would read on
					   when the 101 lacks Connection: upgrade) */
	if (p->cb.on_complete != NULL && (rc = p->cb.on_complete(p->arg)) < 0) {
		p->cb_err = rc;
		return -1;
	}
	return 0;
}

struct http1 *
http1_new(enum http1_kind kind, const struct http1_limits *lim,
    const struct http1_callbacks *cb, void *arg)
{
	struct http1 *p = calloc(1, sizeof *p);

	if (p == NULL)
		return NULL;
	p->kind = kind;
	http_parser_init(&p->hp, kind == HTTP1_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE);
	p->hp.data = p;
	http_parser_settings_init(&p->st);
	p->st.on_message_begin = cb_begin;
	p->st.on_url = cb_url;
	p->st.on_status = cb_status;
	p->st.on_header_field = cb_field;
	p->st.on_header_value = cb_value;
	p->st.on_headers_complete = cb_headers_complete;
	p->st.on_body = cb_body;
	p->st.on_chunk_header = cb_chunk_header;
	p->st.on_message_complete = cb_complete;
	if (cb != NULL)
		p->cb = *cb;
	p->arg = arg;
	p->lim.max_head = lim && lim->max_head ? lim->max_head : 32 * 1024;
	p->lim.max_headers = lim && lim->max_headers ? lim->max_headers : 100;
	return p;
}

void
http1_free(struct http1 *p)
{
	if (p == NULL)
		return;
	msg_clear(&p->m);
	free(p);
}

int
http1_feed(struct http1 *p, const uint8_t *data, size_t len, size_t *consumed,
    struct shir_error *e)
{
	size_t n;
	enum http_errno en;

	*consumed = 0;
	if (p->state == HTTP1_S_ERROR)
		return shir_error_set(e, SHIR_EPROTO, "the HTTP parser already failed");
	if (p->state == HTTP1_S_UPGRADED)
		return 0;
	if (len == 0)
		return 0;
	while (p->crlf_need > 0 && *consumed < len) {
		/* the rest of a chunk's closing CRLF, split from its data */
		if (data[*consumed] != (p->crlf_need == 2 ? '\r' : '\n')) {
			p->state = HTTP1_S_ERROR;
			*consumed = 0;
			return shir_error_set(e, SHIR_EPROTO, "malformed chunked body: a chunk's data is "
			    "not followed by CRLF");
		}
		p->crlf_need--;
		(*consumed)++;
	}
	*consumed = 0;
	p->buf = data;
	p->buf_end = data + len;
	n = http_parser_execute(&p->hp, &p->st, (const char *)data, len);
	p->buf = p->buf_end = NULL;
	if (n >= 2) {
		p->prev[0] = data[n - 2];
		p->prev[1] = data[n - 1];
	} else if (n == 1) {
		p->prev[0] = p->prev[1];
		p->prev[1] = data[0];
	}
	*consumed = n;
	en = HTTP_PARSER_ERRNO(&p->hp);
	if (en == HPE_PAUSED)
		return 0;
	if (en != HPE_OK) {
		p->state = HTTP1_S_ERROR;
		if (p->cb_err < 0)
			return shir_error_set(e, p->cb_err, "HTTP message handling stopped");
		if (p->bad_chunk)
			return shir_error_set(e, SHIR_EPROTO, "malformed chunked body: a chunk's size "
			    "line or data is not followed by CRLF");
		if (p->bad_upgrade)
			return shir_error_set(e, SHIR_EPROTO, "an Upgrade request must not carry a body "
			    "(Content-Length or Transfer-Encoding)");
		if (p->bad_te)
			return shir_error_set(e, SHIR_EPROTO, "the request's Transfer-Encoding must be "
			    "exactly \"chunked\" (RFC 9112 section 6.1): no other coding is accepted");
		if (en == HPE_INVALID_CHUNK_SIZE)
			return shir_error_set(e, SHIR_EPROTO, "malformed chunked body: the chunk size is "
			    "not hexadecimal or does not fit in 64 bits");
		if (p->too_big)
			return shir_error_set(e, SHIR_ETOOBIG,
			    "the HTTP head is larger than %zu bytes or has more than %zu headers",
			    p->lim.max_head, p->lim.max_headers);
		return shir_error_set(e, SHIR_EPROTO, "malformed HTTP/1.1 message: %s",
		    http_errno_description(en));
	}
	if (p->hp.upgrade)
		p->state = HTTP1_S_UPGRADED;
	return 0;
}

int
http1_eof(struct http1 *p, struct shir_error *e)
{
	size_t n;

	if (p->state == HTTP1_S_ERROR || p->state == HTTP1_S_UPGRADED)
		return 0;
	n = http_parser_execute(&p->hp, &p->st, NULL, 0);
	(void)n;
	if (HTTP_PARSER_ERRNO(&p->hp) != HPE_OK) {
		p->state = HTTP1_S_ERROR;
		return shir_error_set(e, SHIR_EPROTO, "the connection closed in the middle of an HTTP message");
	}
	if (p->state == HTTP1_S_BODY)
		return shir_error_set(e, SHIR_EPROTO, "the connection closed before the HTTP body ended");
	return 0;
}

void
http1_pause(struct http1 *p)
{
	http_parser_pause(&p->hp, 1);
}

void
http1_resume(struct http1 *p)
{
	http_parser_pause(&p->hp, 0);
}

enum http1_state
http1_state(const struct http1 *p)
{
	return p->state;
}

void
http1_set_head_request(struct http1 *p, bool head)
{
	p->head_request = head;
}

const char *
http1_msg_get(const struct http1_msg *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->nh; i++)
		if (strcasecmp(m->h[i].name, name) == 0)
			return m->h[i].value;
	return NULL;
}

bool
http1_msg_has_token(const struct http1_msg *m, const char *name, const char *token)
{
	size_t i, tl = strlen(token);

	for (i = 0; i < m->nh; i++) {
		const char *v = m->h[i].value;

		if (strcasecmp(m->h[i].name, name) != 0)
			continue;
		while (*v) {
			const char *end;
			size_t l;

			while (*v == ' ' || *v == '\t' || *v == ',')
				v++;
			end = v;
			while (*end && *end != ',')
				end++;
			l = (size_t)(end - v);
			while (l > 0 && (v[l - 1] == ' ' || v[l - 1] == '\t'))
				l--;
			if (l == tl && strncasecmp(v, token, tl) == 0)
				return true;
			v = end;
		}
	}
	return false;
}

static char *
xdup(const char *s, bool *bad)
{
	char *r;

	if (s == NULL)
		return NULL;
	if ((r = strdup(s)) == NULL)
		*bad = true;
	return r;
}

struct http1_msg *
http1_msg_dup(const struct http1_msg *m)
{
	struct http1_msg *d = calloc(1, sizeof *d);
	bool bad = false;
	size_t i;

	if (d == NULL)
		return NULL;
	*d = *m;
	d->method = xdup(m->method, &bad);
	d->target = xdup(m->target, &bad);
	d->reason = xdup(m->reason, &bad);
	d->h = NULL;
	d->nh = 0;
	if (m->nh > 0) {
		d->h = calloc(m->nh, sizeof *d->h);
		if (d->h == NULL)
			bad = true;
		else
			for (i = 0; i < m->nh; i++, d->nh++) {
				d->h[i].name = xdup(m->h[i].name, &bad);
				d->h[i].value = xdup(m->h[i].value, &bad);
			}
	}
	if (bad) {
		http1_msg_free(d);
		return NULL;
	}
	return d;
}

void
http1_msg_free(struct http1_msg *m)
{
	if (m == NULL)
		return;
	msg_clear(m);
	free(m);
}

const char *
http1_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 203: return "Non-Authoritative Information";
	case 204: return "No Content";
	case 205: return "Reset Content";
	case 206: return "Partial Content";
	case 300: return "Multiple Choices";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}
