/* pac_fetch: the PAC file download and its charset decoding. The charset comes
 * from Content-Type (utf-8, utf-16, utf-16le/be, iso-8859-1 and its aliases,
 * us-ascii, windows-1252 read as ISO-8859-1); without one, a byte order mark
 * decides (UTF-8, UTF-16LE, UTF-16BE); without a BOM the bytes are ISO-8859-1,
 * as WinHTTP reads them. Declared UTF-8 that is not valid UTF-8 is refused. */
#include "config.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "proxy/pac_fetch.h"

enum pf_cs { PF_LATIN1, PF_UTF8, PF_UTF16LE, PF_UTF16BE, PF_UTF16 };

struct pf_buf {
	unsigned char *p;
	size_t len, cap;
	int too_big;
	char ctype[128];
};

/* the charset parameter of a Content-Type value; 1 found, 0 none, -1 unknown */
static int
pf_charset(const char *ct, enum pf_cs *cs, char *name, size_t nl)
{
	static const struct { const char *n; enum pf_cs cs; } known[] = {
		{ "utf-8", PF_UTF8 }, { "utf8", PF_UTF8 },
		{ "utf-16", PF_UTF16 }, { "utf-16le", PF_UTF16LE }, { "utf-16be", PF_UTF16BE },
		{ "iso-8859-1", PF_LATIN1 }, { "iso8859-1", PF_LATIN1 }, { "latin1", PF_LATIN1 },
		{ "iso_8859-1", PF_LATIN1 }, { "l1", PF_LATIN1 }, { "us-ascii", PF_LATIN1 },
		{ "ascii", PF_LATIN1 }, { "windows-1252", PF_LATIN1 }, { "cp1252", PF_LATIN1 },
	};
	const char *p = ct;
	size_t i, l;

	name[0] = '\0';
	while ((p = strchr(p, ';')) != NULL) {
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, "charset=", 8) != 0)
			continue;
		p += 8;
		if (*p == '"')
			p++;
		l = strcspn(p, "\"; \t");
		snprintf(name, nl, "%.*s", (int)(l > 40 ? 40 : l), p);
		for (i = 0; i < sizeof known / sizeof known[0]; i++)
			if (strlen(known[i].n) == l && strncasecmp(p, known[i].n, l) == 0) {
				*cs = known[i].cs;
				return 1;
			}
		return -1;
	}
	return 0;
}

static size_t
pf_put(unsigned char *o, uint32_t c)
{
	if (c < 0x80) {
		o[0] = (unsigned char)c;
		return 1;
	}
	if (c < 0x800) {
		o[0] = (unsigned char)(0xc0 | (c >> 6));
		o[1] = (unsigned char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		o[0] = (unsigned char)(0xe0 | (c >> 12));
		o[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
		o[2] = (unsigned char)(0x80 | (c & 0x3f));
		return 3;
	}
	o[0] = (unsigned char)(0xf0 | (c >> 18));
	o[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3f));
	o[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
	o[3] = (unsigned char)(0x80 | (c & 0x3f));
	return 4;
}

/* offset of the first invalid UTF-8 sequence, or n when valid */
static size_t
pf_utf8_bad(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t k, need;
		uint32_t v;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			v = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			v = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			v = c & 0x07;
		} else {
			return i;
		}
		if (i + need >= n)
			return i;
		for (k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return i;
			v = (v << 6) | (s[i + k] & 0x3f);
		}
		if ((need == 2 && (v < 0x800 || (v >= 0xd800 && v <= 0xdfff))) ||
		    (need == 3 && (v < 0x10000 || v > 0x10ffff)))
			return i;
		i += need + 1;
	}
	return n;
}

static int
pf_utf16(const unsigned char *b, size_t n, int le, unsigned char *o, size_t *ol,
    struct shir_error *err)
{
	size_t i, w = 0;

	if (n % 2 != 0)
		return shir_error_set(err, SHIR_EINVAL, "not valid UTF-16: an odd number of bytes");
	for (i = 0; i < n; i += 2) {
		uint32_t c = le ? (uint32_t)(b[i] | b[i + 1] << 8) : (uint32_t)(b[i] << 8 | b[i + 1]);

		if (c >= 0xd800 && c <= 0xdbff) {
			uint32_t c2;

			if (i + 3 >= n)
				return shir_error_set(err, SHIR_EINVAL, "not valid UTF-16: a lone "
				    "surrogate at byte %zu", i);
			c2 = le ? (uint32_t)(b[i + 2] | b[i + 3] << 8) :
			    (uint32_t)(b[i + 2] << 8 | b[i + 3]);
			if (c2 < 0xdc00 || c2 > 0xdfff)
				return shir_error_set(err, SHIR_EINVAL, "not valid UTF-16: a lone "
				    "surrogate at byte %zu", i);
			c = 0x10000 + ((c - 0xd800) << 10) + (c2 - 0xdc00);
			i += 2;
		} else if (c >= 0xdc00 && c <= 0xdfff) {
			return shir_error_set(err, SHIR_EINVAL, "not valid UTF-16: a lone surrogate "
			    "at byte %zu", i);
		}
		w += pf_put(o + w, c);
	}
	*ol = w;
	return 0;
}

int
pac_fetch_decode(const unsigned char *body, size_t blen, const char *content_type,
    char **text, size_t *len, struct shir_error *err)
{
	enum pf_cs cs = PF_LATIN1;
	char csname[48] = "";
	unsigned char *o = NULL;
	size_t i, w = 0, bad;
	int have = 0, rc;

	*text = NULL;
	*len = 0;
	if (content_type != NULL && (have = pf_charset(content_type, &cs, csname,
	    sizeof csname)) < 0)
		return shir_error_set(err, SHIR_EUNSUPPORTED, "the charset \"%s\" of its "
		    "Content-Type is not supported (UTF-8, UTF-16 or ISO-8859-1 only)", csname);
	if (!have || cs == PF_UTF16 || cs == PF_UTF8) {
		if (blen >= 3 && body[0] == 0xef && body[1] == 0xbb && body[2] == 0xbf &&
		    (!have || cs == PF_UTF8)) {
			cs = PF_UTF8;
			body += 3;
			blen -= 3;
		} else if (blen >= 2 && body[0] == 0xff && body[1] == 0xfe &&
		    (!have || cs == PF_UTF16)) {
			cs = PF_UTF16LE;
			body += 2;
			blen -= 2;
		} else if (blen >= 2 && body[0] == 0xfe && body[1] == 0xff &&
		    (!have || cs == PF_UTF16)) {
			cs = PF_UTF16BE;
			body += 2;
			blen -= 2;
		} else if (cs == PF_UTF16) {
			cs = PF_UTF16BE;	/* RFC 2781: big-endian without a BOM */
		}
	}
	/* at most 2 bytes of UTF-8 per Latin-1 byte, 3 per UTF-16 unit of 2 */
	if ((o = malloc(blen * 2 + 1)) == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	switch (cs) {
	case PF_UTF8:
		if ((bad = pf_utf8_bad(body, blen)) != blen) {
			free(o);
			return shir_error_set(err, SHIR_EINVAL, "not valid UTF-8 (byte 0x%02x at "
			    "offset %zu)%s", body[bad], bad, have ? " although its Content-Type "
			    "says UTF-8" : "");
		}
		memcpy(o, body, blen);
		w = blen;
		break;
	case PF_UTF16LE:
	case PF_UTF16BE:
	case PF_UTF16:
		if ((rc = pf_utf16(body, blen, cs == PF_UTF16LE, o, &w, err)) != 0) {
			free(o);
			return rc;
		}
		break;
	case PF_LATIN1:
		for (i = 0; i < blen; i++)
			w += pf_put(o + w, body[i]);
		break;
	}
	if (memchr(o, '\0', w) != NULL) {
		size_t at = (size_t)((unsigned char *)memchr(o, '\0', w) - o);

		free(o);
		return shir_error_set(err, SHIR_EINVAL, "it holds a NUL character (decoded offset "
		    "%zu): not a text file", at);
	}
	o[w] = '\0';
	*text = (char *)o;
	*len = w;
	return 0;
}

static size_t
pf_write(char *p, size_t sz, size_t n, void *ud)
{
	struct pf_buf *b = ud;
	size_t l = sz * n;

	if (b->len + l > PAC_FETCH_MAX) {
		b->too_big = 1;
		return 0;
	}
	if (b->len + l > b->cap) {
		size_t cap = b->cap ? b->cap : 16384;
		unsigned char *q;

		while (cap < b->len + l)
			cap *= 2;
		if (cap > PAC_FETCH_MAX)
			cap = PAC_FETCH_MAX;
		if ((q = realloc(b->p, cap)) == NULL)
			return 0;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, l);
	b->len += l;
	return l;
}

static size_t
pf_header(char *p, size_t sz, size_t n, void *ud)
{
	struct pf_buf *b = ud;
	size_t l = sz * n;

	if (l > 13 && strncasecmp(p, "Content-Type:", 13) == 0) {
		size_t s = 13, e = l;

		while (s < e && (p[s] == ' ' || p[s] == '\t'))
			s++;
		while (e > s && (p[e - 1] == '\r' || p[e - 1] == '\n' || p[e - 1] == ' '))
			e--;
		snprintf(b->ctype, sizeof b->ctype, "%.*s", (int)(e - s), p + s);
	} else if (l > 5 && strncasecmp(p, "HTTP/", 5) == 0) {
		b->ctype[0] = '\0';	/* a new response (redirect): forget the old one */
	}
	return l;
}

int
pac_fetch(const char *url, long timeout_ms, char **text, size_t *len, struct shir_error *err)
{
	struct pf_buf b;
	CURL *h = NULL;
	CURLcode cc;
	char ebuf[CURL_ERROR_SIZE] = "";
	long code = 0;
	int rc, is_file = strncasecmp(url, "file:", 5) == 0;

	memset(&b, 0, sizeof b);
	*text = NULL;
	*len = 0;
	if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0 && !is_file)
		return shir_error_set(err, SHIR_EINVAL, "not an http:, https: or file: URL");
	if ((h = curl_easy_init()) == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROXY, "");		/* never through a proxy */
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https,file");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)PAC_FETCH_MAX);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, pf_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, pf_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &b);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "shir-pac/1");
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (b.too_big || cc == CURLE_FILESIZE_EXCEEDED) {
		rc = shir_error_set(err, SHIR_ETOOBIG, "larger than 1 MiB (the limit for a PAC file)");
	} else if (cc == CURLE_OPERATION_TIMEDOUT) {
		rc = shir_error_set(err, SHIR_ETIMEDOUT, "no complete answer within %ld s (%s)",
		    timeout_ms / 1000, ebuf[0] ? ebuf : curl_easy_strerror(cc));
	} else if (cc == CURLE_COULDNT_RESOLVE_HOST) {
		rc = shir_error_set(err, SHIR_EDNS, "cannot resolve its host (%s)",
		    ebuf[0] ? ebuf : curl_easy_strerror(cc));
	} else if (cc == CURLE_COULDNT_CONNECT) {
		rc = shir_error_set(err, SHIR_ECONNREFUSED, "cannot connect (%s)",
		    ebuf[0] ? ebuf : curl_easy_strerror(cc));
	} else if (cc != CURLE_OK) {
		rc = shir_error_set(err, SHIR_EIO, "%s", ebuf[0] ? ebuf : curl_easy_strerror(cc));
	} else if (!is_file && code != 200) {
		rc = shir_error_set(err, SHIR_EPROTO, "HTTP %ld", code);
	} else {
		rc = pac_fetch_decode(b.p ? b.p : (const unsigned char *)"", b.len,
		    b.ctype[0] && !is_file ? b.ctype : NULL, text, len, err);
	}
	curl_easy_cleanup(h);
	free(b.p);
	return rc;
}
