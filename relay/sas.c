/* sas: see sas.h. */
#include "config.h"

#include <ctype.h>
#include <pthread.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "relay/sas.h"

#define SAS_PREFIX "SharedAccessSignature "
#define SAS_MAX_TOKEN 4096

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
sas_url_decode(const char *in, size_t len, bool form, char **out)
{
	char *r = malloc(len + 1);
	size_t i, o = 0;

	*out = NULL;
	if (r == NULL)
		return SHIR_ENOMEM;
	for (i = 0; i < len; i++) {
		int c = (unsigned char)in[i];

		if (c == '%') {
			int h, l;

			if (i + 2 >= len || (h = hexval(in[i + 1])) < 0 ||
			    (l = hexval(in[i + 2])) < 0 || (h == 0 && l == 0)) {
				free(r);
				return SHIR_EINVAL;
			}
			c = h * 16 + l;
			i += 2;
		} else if (c == '+' && form) {
			c = ' ';
		} else if (c == '\0') {
			free(r);
			return SHIR_EINVAL;
		}
		r[o++] = (char)c;
	}
	r[o] = '\0';
	*out = r;
	return 0;
}

char *
sas_url_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s), i, o = 0;
	char *r = malloc(n * 3 + 1);

	if (r == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (isalnum(c) || strchr("-_.!~*'()", c) != NULL) {
			r[o++] = (char)c;
		} else {
			r[o++] = '%';
			r[o++] = hex[c >> 4];
			r[o++] = hex[c & 15];
		}
	}
	r[o] = '\0';
	return r;
}

int
sas_make_key(char out[45])
{
	unsigned char b[32];

	if (RAND_bytes(b, sizeof b) != 1)
		return SHIR_ECRYPTO;
	EVP_EncodeBlock((unsigned char *)out, b, sizeof b);
	OPENSSL_cleanse(b, sizeof b);
	return 0;
}

/* Splits scheme://authority/path?query#frag. Pointers into a copy. */
struct uri_parts {
	char *buf;
	const char *host;	/* authority (host[:port]) */
	const char *path;	/* starts with '/' or is "" */
};

static int
uri_split(const char *uri, struct uri_parts *u)
{
	char *p, *a, *q;

	memset(u, 0, sizeof *u);
	if ((u->buf = strdup(uri)) == NULL)
		return SHIR_ENOMEM;
	p = strstr(u->buf, "://");
	if (p == NULL) {
		free(u->buf);
		u->buf = NULL;
		return SHIR_EINVAL;
	}
	a = p + 3;
	q = a + strcspn(a, "?#");
	*q = '\0';
	u->host = a;
	p = strchr(a, '/');
	if (p != NULL) {
		/* move the path out: make room by splitting at '/' */
		size_t hl = (size_t)(p - a);
		char *h = malloc(hl + 1 + strlen(p) + 1);

		if (h == NULL) {
			free(u->buf);
			u->buf = NULL;
			return SHIR_ENOMEM;
		}
		memcpy(h, a, hl);
		h[hl] = '\0';
		strcpy(h + hl + 1, p);
		free(u->buf);
		u->buf = h;
		u->host = h;
		u->path = h + hl + 1;
	} else {
		u->path = "";
	}
	return 0;
}

static int
audience(const char *uri, bool dotnet, char **out)
{
	struct uri_parts u;
	char host[512];
	const char *path;
	char *hc, *r;
	size_t i, n;
	int rc;

	*out = NULL;
	if ((rc = uri_split(uri, &u)) != 0)
		return rc;
	snprintf(host, sizeof host, "%s", u.host);
	for (i = 0; host[i]; i++)
		host[i] = (char)tolower((unsigned char)host[i]);
	if (dotnet) {
		char *c = strrchr(host, ':');

		if (c != NULL && strchr(host, ']') == NULL)
			*c = '\0';
		else if (c != NULL && c > strchr(host, ']'))
			*c = '\0';
	}
	path = *u.path ? u.path : "/";
	n = strlen(host) + strlen(path) + 16;
	r = malloc(n);
	if (r == NULL) {
		free(u.buf);
		return SHIR_ENOMEM;
	}
	hc = strstr(path, "$hc/");
	if (hc != NULL)
		snprintf(r, n, "http://%s%.*s%s", host, (int)(hc - path), path, hc + 4);
	else
		snprintf(r, n, "http://%s%s", host, path);
	if (dotnet && r[strlen(r) - 1] != '/')
		strcat(r, "/");
	free(u.buf);
	*out = r;
	return 0;
}

int
sas_audience_hyco(const char *uri, char **out)
{
	return audience(uri, false, out);
}

int
sas_audience_dotnet(const char *uri, char **out)
{
	return audience(uri, true, out);
}

/* HMAC-SHA256 keyed contexts, kept per key: OpenSSL 3's one-shot HMAC()
 * fetches the algorithm and parses parameters on every call, which cost the
 * relay a quarter of its CPU per request (every HTTP request carries a token).
 * A keyed template is made once per key and duplicated per signature. Few
 * keys are live at a time (the rules of a relay's entities, a node's key), so
 * a small table replaced round-robin does; keys are the owner's, never a
 * peer's, and are compared in constant time. */
#define HMAC_CACHE 16

static struct hmac_ent {
	unsigned char *key;
	size_t klen;
	EVP_MAC_CTX *tmpl;
} hmac_cache[HMAC_CACHE];
static unsigned hmac_next;
static EVP_MAC *hmac_alg;
static pthread_mutex_t hmac_lock = PTHREAD_MUTEX_INITIALIZER;

/* A context ready for update/final, or NULL. Holds hmac_lock while looking. */
static EVP_MAC_CTX *
hmac_ctx_for(const char *key)
{
	size_t kl = strlen(key);
	struct hmac_ent *e = NULL;
	EVP_MAC_CTX *ctx = NULL;
	OSSL_PARAM params[2];
	unsigned i;

	pthread_mutex_lock(&hmac_lock);
	for (i = 0; i < HMAC_CACHE; i++) {
		if (hmac_cache[i].tmpl != NULL && hmac_cache[i].klen == kl &&
		    CRYPTO_memcmp(hmac_cache[i].key, key, kl) == 0) {
			e = &hmac_cache[i];
			break;
		}
	}
	if (e == NULL) {
		if (hmac_alg == NULL && (hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
			goto out;
		e = &hmac_cache[hmac_next++ % HMAC_CACHE];
		EVP_MAC_CTX_free(e->tmpl);
		if (e->key != NULL)
			OPENSSL_clear_free(e->key, e->klen);
		e->tmpl = NULL;
		e->key = OPENSSL_memdup(key, kl ? kl : 1);
		e->klen = kl;
		params[0] = OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0);
		params[1] = OSSL_PARAM_construct_end();
		if (e->key == NULL || (e->tmpl = EVP_MAC_CTX_new(hmac_alg)) == NULL ||
		    EVP_MAC_init(e->tmpl, (const unsigned char *)key, kl, params) != 1) {
			EVP_MAC_CTX_free(e->tmpl);
			e->tmpl = NULL;
			goto out;
		}
	}
	ctx = EVP_MAC_CTX_dup(e->tmpl);
out:
	pthread_mutex_unlock(&hmac_lock);
	return ctx;
}

static int
hmac_b64(const char *key, const char *sr, const char *se, char out[45])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	size_t mdlen = 0;
	EVP_MAC_CTX *ctx = hmac_ctx_for(key);
	int rc = SHIR_ECRYPTO;

	if (ctx == NULL)
		return SHIR_ECRYPTO;
	if (EVP_MAC_update(ctx, (const unsigned char *)sr, strlen(sr)) == 1 &&
	    EVP_MAC_update(ctx, (const unsigned char *)"\n", 1) == 1 &&
	    EVP_MAC_update(ctx, (const unsigned char *)se, strlen(se)) == 1 &&
	    EVP_MAC_final(ctx, md, &mdlen, sizeof md) == 1 && mdlen == 32) {
		EVP_EncodeBlock((unsigned char *)out, md, 32);
		rc = 0;
	}
	EVP_MAC_CTX_free(ctx);
	OPENSSL_cleanse(md, sizeof md);
	return rc;
}

int
sas_token_build(const char *aud, const char *key_name, const char *key, int64_t expiry,
    char **out)
{
	char se[32], sig[45];
	char *sr = NULL, *esig = NULL, *r = NULL;
	size_t n;
	int rc;

	*out = NULL;
	snprintf(se, sizeof se, "%lld", (long long)expiry);
	if ((sr = sas_url_encode(aud)) == NULL) {
		rc = SHIR_ENOMEM;
		goto out;
	}
	if ((rc = hmac_b64(key, sr, se, sig)) != 0)
		goto out;
	if ((esig = sas_url_encode(sig)) == NULL) {
		rc = SHIR_ENOMEM;
		goto out;
	}
	n = strlen(SAS_PREFIX) + strlen(sr) + strlen(esig) + strlen(se) + strlen(key_name) + 32;
	if ((r = malloc(n)) == NULL) {
		rc = SHIR_ENOMEM;
		goto out;
	}
	snprintf(r, n, SAS_PREFIX "sr=%s&sig=%s&se=%s&skn=%s", sr, esig, se, key_name);
	*out = r;
	rc = 0;
out:
	OPENSSL_cleanse(sig, sizeof sig);
	free(sr);
	free(esig);
	return rc;
}

void
sas_token_clear(struct sas_token *t)
{
	if (t == NULL)
		return;
	free(t->sr);
	if (t->sig != NULL) {
		OPENSSL_cleanse(t->sig, strlen(t->sig));
		free(t->sig);
	}
	free(t->se);
	free(t->skn);
	memset(t, 0, sizeof *t);
}

int
sas_token_parse(const char *token, struct sas_token *t, struct shir_error *e)
{
	const char *p, *end;
	size_t plen = strlen(SAS_PREFIX);
	int rc = SHIR_EAUTH;

	memset(t, 0, sizeof *t);
	if (token == NULL || *token == '\0')
		return shir_error_set(e, SHIR_EAUTH, "no SAS token was presented");
	if (strlen(token) > SAS_MAX_TOKEN)
		return shir_error_set(e, SHIR_EAUTH, "the SAS token is longer than %d bytes",
		    SAS_MAX_TOKEN);
	if (strncasecmp(token, SAS_PREFIX, plen) != 0)
		return shir_error_set(e, SHIR_EAUTH,
		    "the token does not start with \"SharedAccessSignature \"");
	p = token + plen;
	while (*p == ' ')
		p++;
	while (*p) {
		const char *eq;
		size_t kl, vl;
		char **dst = NULL;

		end = p + strcspn(p, "&");
		eq = memchr(p, '=', (size_t)(end - p));
		if (eq != NULL) {
			kl = (size_t)(eq - p);
			vl = (size_t)(end - eq - 1);
			if (kl == 2 && strncasecmp(p, "sr", 2) == 0)
				dst = &t->sr;
			else if (kl == 3 && strncasecmp(p, "sig", 3) == 0)
				dst = &t->sig;
			else if (kl == 2 && strncasecmp(p, "se", 2) == 0)
				dst = &t->se;
			else if (kl == 3 && strncasecmp(p, "skn", 3) == 0)
				dst = &t->skn;
			if (dst != NULL) {
				if (*dst != NULL) {
					shir_error_set(e, SHIR_EAUTH, "the SAS token repeats a field");
					goto fail;
				}
				if (dst == &t->sr) {
					if ((*dst = strndup(eq + 1, vl)) == NULL)
						goto nomem;
				} else if (sas_url_decode(eq + 1, vl, false, dst) != 0) {
					shir_error_set(e, SHIR_EAUTH,
					    "a SAS token field has a bad percent escape");
					goto fail;
				}
			}
		}
		p = *end ? end + 1 : end;
	}
	if (t->sr == NULL || t->sig == NULL || t->se == NULL || t->skn == NULL ||
	    *t->sr == '\0' || *t->sig == '\0' || *t->skn == '\0') {
		shir_error_set(e, SHIR_EAUTH, "the SAS token lacks one of sr, sig, se, skn");
		goto fail;
	}
	{
		char *ep = NULL;
		long long v;

		errno = 0;
		v = strtoll(t->se, &ep, 10);
		if (errno != 0 || ep == t->se || *ep != '\0' || v < 0 || !isdigit((unsigned char)*t->se)) {
			shir_error_set(e, SHIR_EAUTH, "the SAS token's se is not a number of seconds");
			goto fail;
		}
		t->expiry = v;
	}
	return 0;
nomem:
	rc = shir_error_set(e, SHIR_ENOMEM, "out of memory");
fail:
	sas_token_clear(t);
	return rc;
}

/* Audience match per §6.4 step 6. */
static bool
audience_ok(const char *sr_raw, const char *entity, const char *ns_host)
{
	char *dec = NULL;
	struct uri_parts u = { 0 };
	const char *ap, *ep;
	size_t al, el;
	bool ok = false;

	if (sas_url_decode(sr_raw, strlen(sr_raw), false, &dec) != 0)
		return false;
	if (uri_split(dec, &u) != 0)
		goto out;
	if (ns_host != NULL) {
		char h[512];
		char *c;

		snprintf(h, sizeof h, "%s", u.host);
		c = strrchr(h, ':');
		if (c != NULL && (strchr(h, ']') == NULL || c > strchr(h, ']')))
			*c = '\0';
		if (strcasecmp(h, ns_host) != 0)
			goto out;
	}
	ap = u.path;
	while (*ap == '/')
		ap++;
	if (strncmp(ap, "$hc/", 4) == 0)
		ap += 4;
	al = strlen(ap);
	while (al > 0 && ap[al - 1] == '/')
		al--;
	ep = entity;
	while (*ep == '/')
		ep++;
	el = strlen(ep);
	while (el > 0 && ep[el - 1] == '/')
		el--;
	if (al == 0)
		ok = true;
	else if (el == al && strncasecmp(ap, ep, al) == 0)
		ok = true;
	else if (el > al && strncasecmp(ap, ep, al) == 0 && ep[al] == '/')
		ok = true;
out:
	free(u.buf);
	free(dec);
	return ok;
}

int
sas_verify(const char *token, const struct sas_rule *rules, size_t nrules,
    const char *entity, const char *ns_host, unsigned need, int64_t now, int skew,
    struct sas_verified *out, struct shir_error *e)
{
	struct sas_token t;
	const struct sas_rule *rule = NULL;
	char expect[45];
	size_t i;
	int rc;
	unsigned have;

	if ((rc = sas_token_parse(token, &t, e)) != 0)
		return rc;
	for (i = 0; i < nrules; i++)
		if (rules[i].name != NULL && strcmp(rules[i].name, t.skn) == 0) {
			rule = &rules[i];
			break;
		}
	if (rule == NULL || rule->key == NULL) {
		rc = shir_error_set(e, SHIR_EAUTH, "the SAS token names an unknown rule");
		goto out;
	}
	if ((rc = hmac_b64(rule->key, t.sr, t.se, expect)) != 0) {
		shir_error_set(e, rc, "could not compute the SAS signature");
		goto out;
	}
	if (strlen(t.sig) != 44 || CRYPTO_memcmp(expect, t.sig, 44) != 0) {
		rc = shir_error_set(e, SHIR_EAUTH, "the SAS token's signature is invalid");
		goto out;
	}
	if (t.expiry <= now - (skew > 0 ? skew : 0)) {
		rc = shir_error_set(e, SHIR_EAUTH, "the SAS token expired at %lld",
		    (long long)t.expiry);
		goto out;
	}
	if (!audience_ok(t.sr, entity, ns_host)) {
		rc = shir_error_set(e, SHIR_EPERM,
		    "the SAS token's audience does not cover this hybrid connection");
		goto out;
	}
	have = rule->rights;
	if (have & SAS_MANAGE)
		have |= SAS_LISTEN | SAS_SEND;
	if ((have & need) != need) {
		rc = shir_error_set(e, SHIR_EPERM, "the SAS rule lacks the %s claim",
		    (need & SAS_LISTEN) ? "Listen" : (need & SAS_SEND) ? "Send" : "Manage");
		goto out;
	}
	if (out != NULL) {
		out->rule = rule;
		out->expiry = t.expiry;
	}
	rc = 0;
out:
	OPENSSL_cleanse(expect, sizeof expect);
	sas_token_clear(&t);
	return rc;
}
