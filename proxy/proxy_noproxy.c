#include "config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/proxy_noproxy.h"

#define NOPROXY_MAX_TOKENS 4096
#define NOPROXY_MAX_TEXT (64 * 1024)

struct noproxy_tok {
	const char *s;	/* into text; not NUL-terminated */
	size_t len;
};

struct proxy_noproxy {
	char *text;
	int star;	/* the whole value is "*" */
	int blanks;
	struct noproxy_tok *toks;
	size_t ntoks;
};

static int
noproxy_blank(char c)
{
	return c == ' ' || c == '\t';
}

struct proxy_noproxy *
proxy_noproxy_parse(const char *text, size_t len)
{
	struct proxy_noproxy *np = calloc(1, sizeof *np);
	const char *p;

	if (np == NULL)
		return NULL;
	if (len > NOPROXY_MAX_TEXT)
		len = NOPROXY_MAX_TEXT;
	np->text = malloc(len + 1);
	if (np->text == NULL)
		goto fail;
	memcpy(np->text, text, len);
	np->text[len] = '\0';
	/* a NUL inside ends the value, as getenv would */
	len = strlen(np->text);
	if (strcmp(np->text, "*") == 0) {
		np->star = 1;
		return np;
	}
	p = np->text;
	while (*p && np->ntoks < NOPROXY_MAX_TOKENS) {
		const char *tok;
		size_t tl = 0;

		while (*p && noproxy_blank(*p))
			p++;
		tok = p;
		while (*p && !noproxy_blank(*p) && *p != ',')
			p++, tl++;
		if (tl > 0) {
			struct noproxy_tok *nt = realloc(np->toks, (np->ntoks + 1) * sizeof *nt);

			if (nt == NULL)
				goto fail;
			np->toks = nt;
			nt[np->ntoks].s = tok;
			nt[np->ntoks].len = tl;
			np->ntoks++;
		}
		while (*p && noproxy_blank(*p))
			p++;
		if (*p && *p != ',') {
			/* curl 7.88 accepts blank-separated tokens and warns */
			np->blanks = 1;
			continue;
		}
		while (*p == ',')
			p++;
	}
	return np;
fail:
	proxy_noproxy_free(np);
	return NULL;
}

void
proxy_noproxy_free(struct proxy_noproxy *np)
{
	if (np == NULL)
		return;
	free(np->toks);
	free(np->text);
	free(np);
}

int
proxy_noproxy_blank_separated(const struct proxy_noproxy *np)
{
	return np->blanks;
}

size_t
proxy_noproxy_count(const struct proxy_noproxy *np)
{
	return np->star ? 1 : np->ntoks;
}

const char *
proxy_noproxy_text(const struct proxy_noproxy *np)
{
	return np->text;
}

static int
noproxy_cidr4(const char *ip, const char *net, unsigned bits)
{
	struct in_addr a, c;
	unsigned long ha, hc, mask;

	if (bits > 32)
		return 0;
	if (inet_pton(AF_INET, ip, &a) != 1 || inet_pton(AF_INET, net, &c) != 1)
		return 0;
	if (bits == 0 || bits == 32)
		return a.s_addr == c.s_addr;
	ha = ntohl(a.s_addr);
	hc = ntohl(c.s_addr);
	mask = (0xffffffffUL << (32 - bits)) & 0xffffffffUL;
	return ((ha ^ hc) & mask) == 0;
}

static int
noproxy_cidr6(const char *ip, const char *net, unsigned bits)
{
	unsigned char a[16], c[16];
	unsigned bytes, rest;

	if (bits == 0)
		bits = 128;
	if (bits > 128)
		return 0;
	bytes = bits / 8;
	rest = bits & 7;
	if (inet_pton(AF_INET6, ip, a) != 1 || inet_pton(AF_INET6, net, c) != 1)
		return 0;
	if (bytes && memcmp(a, c, bytes) != 0)
		return 0;
	/* curl 7.88 inverts this test (a bug fixed later); we keep the meaning */
	if (rest && ((a[bytes] ^ c[bytes]) & (0xff << (8 - rest)) & 0xff))
		return 0;
	return 1;
}

static void
noproxy_copy(char *dst, size_t dl, const char *s, size_t l)
{
	if (dl == 0)
		return;
	if (l >= dl)
		l = dl - 1;
	memcpy(dst, s, l);
	dst[l] = '\0';
}

int
proxy_noproxy_match(const struct proxy_noproxy *np, const char *host, char *tok, size_t toklen)
{
	enum { T_HOST, T_IPV4, T_IPV6 } type = T_HOST;
	char ip[128];
	const char *name = host;
	struct in_addr a4;
	size_t namelen, i;

	if (np == NULL || host == NULL || *host == '\0')
		return 0;
	if (np->star) {
		noproxy_copy(tok, toklen, "*", 1);
		return 1;
	}
	if (np->ntoks == 0)
		return 0;
	if (name[0] == '[') {
		const char *end = strchr(name, ']');

		if (end == NULL || (size_t)(end - name - 1) >= sizeof ip)
			return 0;
		namelen = (size_t)(end - name - 1);
		memcpy(ip, name + 1, namelen);
		ip[namelen] = '\0';
		name = ip;
		type = T_IPV6;
	} else {
		namelen = strlen(name);
		if (inet_pton(AF_INET, name, &a4) == 1)
			type = T_IPV4;
		else if (name[namelen - 1] == '.')
			namelen--;	/* trailing dot of the host name ignored */
	}
	for (i = 0; i < np->ntoks; i++) {
		const char *t = np->toks[i].s;
		size_t tl = np->toks[i].len;
		int match = 0;

		if (type == T_HOST) {
			if (t[tl - 1] == '.')
				tl--;
			if (tl && *t == '.')
				t++, tl--;
			if (tl == namelen)
				match = tl > 0 && strncasecmp(t, name, namelen) == 0;
			else if (tl < namelen)
				match = tl > 0 && name[namelen - tl - 1] == '.' &&
				    strncasecmp(t, name + (namelen - tl), tl) == 0;
		} else {
			char chk[128], *slash;
			unsigned bits = 0;

			if (tl >= sizeof chk)
				continue;
			memcpy(chk, t, tl);
			chk[tl] = '\0';
			if ((slash = strchr(chk, '/')) != NULL) {
				long b = strtol(slash + 1, NULL, 10);

				bits = b < 0 || b > 1000 ? 1000 : (unsigned)b;
				*slash = '\0';
			}
			match = type == T_IPV6 ? noproxy_cidr6(name, chk, bits) :
			    noproxy_cidr4(name, chk, bits);
		}
		if (match) {
			noproxy_copy(tok, toklen, np->toks[i].s, np->toks[i].len);
			return 1;
		}
	}
	return 0;
}
