/* pac_result: parsing FindProxyForURL's answer (Chromium's and WinHTTP's
 * grammar): entries separated by ';', each "DIRECT" or "TYPE host[:port]" with
 * TYPE one of PROXY, HTTP, HTTPS, SOCKS, SOCKS4, SOCKS5 (case-insensitive).
 * An entry that cannot be understood is skipped, the others are kept. */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/shir_err.h"
#include "proxy/pac_result.h"

static const struct {
	const char *name;
	enum pac_type type;
	int port;		/* default port */
} pr_types[] = {
	{ "PROXY", PAC_HTTP, 80 },
	{ "HTTP", PAC_HTTP, 80 },
	{ "HTTPS", PAC_HTTPS, 443 },
	{ "SOCKS", PAC_SOCKS4, 1080 },
	{ "SOCKS4", PAC_SOCKS4, 1080 },
	{ "SOCKS5", PAC_SOCKS5, 1080 },
};

static void
pr_skip(struct pac_result *r, const char *tok, size_t tl, const char *why)
{
	if (r->skipped++ == 0)
		snprintf(r->note, sizeof r->note, "entry \"%.*s\" skipped: %s",
		    (int)(tl > 80 ? 80 : tl), tok, why);
}

static int
pr_host_ok(const char *h, size_t l)
{
	size_t i;

	if (l == 0 || l > 253)
		return 0;
	if (h[0] == '[') {
		if (l < 4 || h[l - 1] != ']')
			return 0;
		for (i = 1; i + 1 < l; i++)
			if (!isxdigit((unsigned char)h[i]) && h[i] != ':' && h[i] != '.')
				return 0;
		return 1;
	}
	for (i = 0; i < l; i++)
		if (!isalnum((unsigned char)h[i]) && h[i] != '.' && h[i] != '-' && h[i] != '_')
			return 0;
	return h[0] != '.' && h[0] != '-';
}

/* one entry, already trimmed and non-empty */
static void
pr_entry(struct pac_result *r, const char *tok, size_t tl)
{
	struct pac_entry *e;
	size_t wl = 0, i, hl;
	const char *hp, *colon = NULL;
	long port;

	while (wl < tl && !isspace((unsigned char)tok[wl]))
		wl++;
	if (wl == 6 && strncasecmp(tok, "DIRECT", 6) == 0 && wl == tl) {
		if (r->n >= PAC_RESULT_MAX)
			return pr_skip(r, tok, tl, "more entries than the dialer keeps");
		r->e[r->n].type = PAC_DIRECT;
		r->e[r->n].host[0] = '\0';
		r->e[r->n].port = 0;
		r->n++;
		return;
	}
	for (i = 0; i < sizeof pr_types / sizeof pr_types[0]; i++)
		if (strlen(pr_types[i].name) == wl && strncasecmp(tok, pr_types[i].name, wl) == 0)
			break;
	if (i == sizeof pr_types / sizeof pr_types[0])
		return pr_skip(r, tok, tl, "unknown type");
	hp = tok + wl;
	while (hp < tok + tl && isspace((unsigned char)*hp))
		hp++;
	hl = (size_t)(tok + tl - hp);
	if (hl == 0)
		return pr_skip(r, tok, tl, "no host");
	if (hp[0] == '[') {
		const char *rb = memchr(hp, ']', hl);

		if (rb != NULL && rb + 1 < hp + hl && rb[1] == ':')
			colon = rb + 1;
	} else {
		colon = memchr(hp, ':', hl);
	}
	port = pr_types[i].port;
	if (colon != NULL) {
		const char *p = colon + 1, *end = hp + hl;

		port = 0;
		if (p == end)
			return pr_skip(r, tok, tl, "empty port");
		for (; p < end; p++) {
			if (!isdigit((unsigned char)*p) || port > 65535)
				return pr_skip(r, tok, tl, "bad port");
			port = port * 10 + (*p - '0');
		}
		if (port < 1 || port > 65535)
			return pr_skip(r, tok, tl, "bad port");
		hl = (size_t)(colon - hp);
	}
	if (!pr_host_ok(hp, hl))
		return pr_skip(r, tok, tl, "bad host");
	if (r->n >= PAC_RESULT_MAX)
		return pr_skip(r, tok, tl, "more entries than the dialer keeps");
	e = &r->e[r->n++];
	e->type = pr_types[i].type;
	memcpy(e->host, hp, hl);
	e->host[hl] = '\0';
	for (i = 0; i < hl; i++)
		e->host[i] = (char)tolower((unsigned char)e->host[i]);
	e->port = (int)port;
}

int
pac_result_parse(const char *s, size_t len, struct pac_result *r)
{
	size_t i = 0, blank = 1;

	memset(r, 0, sizeof *r);
	if (len > PAC_RESULT_MAX_LEN) {
		snprintf(r->note, sizeof r->note, "the string is %zu bytes long (at most %d)", len,
		    PAC_RESULT_MAX_LEN);
		return SHIR_EINVAL;
	}
	while (i < len) {
		size_t s0 = i, e;

		while (i < len && s[i] != ';')
			i++;
		e = i;
		while (s0 < e && isspace((unsigned char)s[s0]))
			s0++;
		while (e > s0 && isspace((unsigned char)s[e - 1]))
			e--;
		if (e > s0) {
			blank = 0;
			if (memchr(s + s0, '\0', e - s0) != NULL)
				pr_skip(r, s + s0, e - s0, "NUL byte");
			else
				pr_entry(r, s + s0, e - s0);
		}
		i++;	/* past ';' */
	}
	if (blank) {
		r->n = 1;	/* an empty answer is DIRECT (WinHTTP) */
		r->e[0].type = PAC_DIRECT;
		return 0;
	}
	if (r->n == 0) {
		if (r->note[0] == '\0')
			snprintf(r->note, sizeof r->note, "no entry");
		return SHIR_EINVAL;
	}
	return 0;
}

void
pac_entry_url(const struct pac_entry *e, char *buf, size_t len)
{
	static const char *const schemes[] = { "", "http", "https", "socks4a", "socks5h" };

	if (e->type == PAC_DIRECT)
		snprintf(buf, len, "DIRECT");
	else
		snprintf(buf, len, "%s://%s:%d", schemes[e->type], e->host, e->port);
}
