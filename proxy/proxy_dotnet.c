#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <curl/curl.h>
#include <expat.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "common/log.h"
#include "proxy/proxy_dotnet.h"

#define DOTNET_MAX_FILE (4 * 1024 * 1024)
#define DOTNET_MAX_BYPASS 10000
#define DOTNET_MAX_ATTR 4096

/* Where the parser is: the element path matters only down to
 * configuration/system.net/defaultProxy/{proxy,bypasslist/{add,remove,clear},module}. */
enum dn_where {
	DN_OTHER = 0,		/* anything we ignore */
	DN_ROOT,		/* <configuration> */
	DN_SYSNET,		/* <system.net> */
	DN_DEFPROXY,
	DN_PROXY,
	DN_BYPASSLIST,
	DN_BYPASS_ITEM,
	DN_MODULE,
	DN_SETTINGS,		/* <system.net><settings> */
};

#define DN_MAX_DEPTH 256

struct dn_parse {
	const char *name;
	XML_Parser xp;
	struct proxy_dotnet *d;
	struct shir_error *err;
	int failed;
	int depth;
	enum dn_where stack[DN_MAX_DEPTH];
	int seen_proxy, seen_bypasslist, seen_module;
};

const char *
proxy_tri_name(enum proxy_tri t)
{
	switch (t) {
	case PROXY_TRI_TRUE: return "true";
	case PROXY_TRI_FALSE: return "false";
	default: return "unspecified";
	}
}

static int
dn_line(struct dn_parse *p)
{
	return (int)XML_GetCurrentLineNumber(p->xp);
}

static void
dn_fail(struct dn_parse *p, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
dn_fail(struct dn_parse *p, int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (p->failed)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	shir_error_set(p->err, code, "%s:%d: %s", p->name, dn_line(p), msg);
	p->failed = 1;
	XML_StopParser(p->xp, XML_FALSE);
}

/* .NET's reserved attributes of every configuration element: meaningful only
 * for inheritance between config levels, so accepted and ignored. */
static int
dn_lock_attr(const char *a)
{
	static const char *const lock[] = { "lockAttributes", "lockAllAttributesExcept",
		"lockElements", "lockAllElementsExcept", "lockItem", NULL };
	int i;

	for (i = 0; lock[i]; i++)
		if (strcmp(a, lock[i]) == 0)
			return 1;
	return 0;
}

static int
dn_bool(struct dn_parse *p, const char *elem, const char *attr, const char *v, int *out)
{
	if (strcasecmp(v, "true") == 0)
		return *out = 1, 0;
	if (strcasecmp(v, "false") == 0)
		return *out = 0, 0;
	dn_fail(p, SHIR_ECONFIG, "<%s %s=%s>: the value must be true or false", elem, attr,
	    log_q(v));
	return -1;
}

static int
dn_tri(struct dn_parse *p, const char *attr, const char *v, enum proxy_tri *out)
{
	if (strcasecmp(v, "true") == 0)
		return *out = PROXY_TRI_TRUE, 0;
	if (strcasecmp(v, "false") == 0)
		return *out = PROXY_TRI_FALSE, 0;
	if (strcasecmp(v, "unspecified") == 0)
		return *out = PROXY_TRI_UNSPEC, 0;
	dn_fail(p, SHIR_ECONFIG, "<proxy %s=%s>: the value must be true, false or unspecified",
	    attr, log_q(v));
	return -1;
}

static void
dn_unknown_attr(struct dn_parse *p, const char *elem, const char *attr)
{
	if (strcmp(attr, "configSource") == 0)
		dn_fail(p, SHIR_EUNSUPPORTED, "<%s configSource=...> is not supported: put the "
		    "defaultProxy element itself in this file", elem);
	else
		dn_fail(p, SHIR_ECONFIG, "<%s>: unrecognized attribute %s (attribute names are "
		    "case-sensitive; .NET refuses to load such a section, and so do we)", elem,
		    log_q(attr));
}

/* proxyaddress: an absolute http:// or https:// URI; kept as scheme://host:port
 * with the scheme's default port (80/443, as System.Uri does). */
static int
dn_proxy_address(struct dn_parse *p, const char *v)
{
	CURLU *u = NULL;
	char *scheme = NULL, *host = NULL, *port = NULL;
	char buf[600];
	int rc = -1;

	if (*v == '\0')
		return 0;	/* empty: not set */
	if (strstr(v, "://") == NULL) {
		dn_fail(p, SHIR_ECONFIG, "<proxy proxyaddress=%s>: not an absolute URI; write "
		    "it with its scheme, e.g. \"http://%s\"", log_q(v), log_q(v));
		return -1;
	}
	if ((u = curl_url()) == NULL) {
		dn_fail(p, SHIR_ENOMEM, "out of memory");
		return -1;
	}
	if (curl_url_set(u, CURLUPART_URL, v, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		dn_fail(p, SHIR_ECONFIG, "<proxy proxyaddress=%s>: not a valid URI", log_q(v));
		goto out;
	}
	if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
		dn_fail(p, SHIR_ECONFIG, "<proxy proxyaddress=%s>: the scheme must be http:// "
		    "(or https:// for TLS to the proxy)", log_q(v));
		goto out;
	}
	if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
		dn_fail(p, SHIR_ECONFIG, "<proxy proxyaddress=%s>: no port", log_q(v));
		goto out;
	}
	{
		char *s;

		for (s = scheme; *s; s++)
			*s = (char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s);
		for (s = host; *s; s++)
			*s = (char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s);
	}
	snprintf(buf, sizeof buf, "%s://%s:%s", scheme, host, port);
	free(p->d->proxy_address);
	if ((p->d->proxy_address = strdup(buf)) == NULL) {
		dn_fail(p, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	p->d->proxy_address_line = dn_line(p);
	rc = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return rc;
}

static void
dn_defproxy_attrs(struct dn_parse *p, const char **atts)
{
	for (; *atts && !p->failed; atts += 2) {
		if (strcmp(atts[0], "enabled") == 0)
			dn_bool(p, "defaultProxy", atts[0], atts[1], &p->d->enabled);
		else if (strcmp(atts[0], "useDefaultCredentials") == 0)
			dn_bool(p, "defaultProxy", atts[0], atts[1], &p->d->use_default_credentials);
		else if (!dn_lock_attr(atts[0]))
			dn_unknown_attr(p, "defaultProxy", atts[0]);
	}
}

static void
dn_proxy_attrs(struct dn_parse *p, const char **atts)
{
	for (; *atts && !p->failed; atts += 2) {
		const char *a = atts[0], *v = atts[1];

		if (strcmp(a, "autoDetect") == 0)
			dn_tri(p, a, v, &p->d->auto_detect);
		else if (strcmp(a, "bypassonlocal") == 0)
			dn_tri(p, a, v, &p->d->bypass_on_local);
		else if (strcmp(a, "usesystemdefault") == 0)
			dn_tri(p, a, v, &p->d->use_system_default);
		else if (strcmp(a, "proxyaddress") == 0)
			dn_proxy_address(p, v);
		else if (strcmp(a, "scriptLocation") == 0) {
			if (*v == '\0')
				continue;
			if (strstr(v, "://") == NULL) {
				dn_fail(p, SHIR_ECONFIG, "<proxy scriptLocation=%s>: not an absolute "
				    "URI (e.g. http://wpad.corp/proxy.pac)", log_q(v));
				continue;
			}
			free(p->d->script_location);
			if ((p->d->script_location = strdup(v)) == NULL)
				dn_fail(p, SHIR_ENOMEM, "out of memory");
		} else if (!dn_lock_attr(a))
			dn_unknown_attr(p, "proxy", a);
	}
}

static void
dn_bypass_remove_at(struct proxy_dotnet *d, size_t i)
{
	free(d->bypass[i].pattern);
	memmove(&d->bypass[i], &d->bypass[i + 1], (d->nbypass - i - 1) * sizeof d->bypass[0]);
	d->nbypass--;
}

static void
dn_bypass_item(struct dn_parse *p, const char *el, const char **atts)
{
	struct proxy_dotnet *d = p->d;
	const char *addr = NULL;
	size_t i;

	for (; *atts && !p->failed; atts += 2) {
		if (strcmp(el, "clear") != 0 && strcmp(atts[0], "address") == 0)
			addr = atts[1];
		else if (!dn_lock_attr(atts[0]))
			dn_unknown_attr(p, el, atts[0]);
	}
	if (p->failed)
		return;
	if (strcmp(el, "clear") == 0) {
		while (d->nbypass > 0)
			dn_bypass_remove_at(d, d->nbypass - 1);
		return;
	}
	if (addr == NULL) {
		dn_fail(p, SHIR_ECONFIG, "<bypasslist><%s>: the required attribute 'address' is "
		    "missing", el);
		return;
	}
	/* the collection is keyed by the exact string */
	for (i = 0; i < d->nbypass; i++)
		if (strcmp(d->bypass[i].pattern, addr) == 0)
			break;
	if (strcmp(el, "remove") == 0) {
		if (i < d->nbypass)
			dn_bypass_remove_at(d, i);
		return;
	}
	if (i < d->nbypass)
		return;		/* the same entry again: .NET keeps one */
	if (d->nbypass >= DOTNET_MAX_BYPASS) {
		dn_fail(p, SHIR_ETOOBIG, "<bypasslist>: more than %d entries", DOTNET_MAX_BYPASS);
		return;
	}
	{
		struct proxy_bypass *nb = realloc(d->bypass, (d->nbypass + 1) * sizeof *nb);

		if (nb == NULL) {
			dn_fail(p, SHIR_ENOMEM, "out of memory");
			return;
		}
		d->bypass = nb;
		nb[d->nbypass].re = NULL;
		nb[d->nbypass].line = dn_line(p);
		if ((nb[d->nbypass].pattern = strdup(addr)) == NULL) {
			dn_fail(p, SHIR_ENOMEM, "out of memory");
			return;
		}
		d->nbypass++;
	}
}

/* A TimeSpan ("00:01:00", "1.00:00:00") or plain seconds, into seconds; -1 bad. */
static long
dn_timespan(const char *v)
{
	long d = 0, h = 0, m = 0, sec = 0;
	char tail;

	if (sscanf(v, "%ld.%ld:%ld:%ld%c", &d, &h, &m, &sec, &tail) == 4 ||
	    (d = 0, sscanf(v, "%ld:%ld:%ld%c", &h, &m, &sec, &tail) == 3)) {
		if (d < 0 || h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec > 59 || d > 30)
			return -1;
		return ((d * 24 + h) * 60 + m) * 60 + sec;
	}
	if (sscanf(v, "%ld%c", &sec, &tail) == 1 && sec >= 0 && sec <= 30L * 86400)
		return sec;
	return -1;
}

static void
dn_webproxyscript(struct dn_parse *p, const XML_Char **atts)
{
	for (; *atts && !p->failed; atts += 2) {
		long v;

		if (strcmp(atts[0], "downloadTimeout") == 0 ||
		    strcmp(atts[0], "autoConfigUrlRetryInterval") == 0) {
			if ((v = dn_timespan(atts[1])) < 0) {
				dn_fail(p, SHIR_ECONFIG, "<webProxyScript %s=%s>: not a time span "
				    "(write hh:mm:ss, e.g. 00:01:00)", atts[0], log_q(atts[1]));
				return;
			}
			if (atts[0][0] == 'd')
				p->d->pac_download_timeout_ms = v > 0 ? v * 1000 : 1;
			else
				p->d->pac_retry_interval_s = v > 0 ? (int)v : 1;
		}
	}
}

static void XMLCALL
dn_start(void *ud, const XML_Char *el, const XML_Char **atts)
{
	struct dn_parse *p = ud;
	enum dn_where parent = p->depth > 0 ? p->stack[p->depth - 1] : DN_OTHER, w = DN_OTHER;

	if (p->failed)
		return;
	if (p->depth >= DN_MAX_DEPTH) {
		dn_fail(p, SHIR_ETOOBIG, "elements nested deeper than %d", DN_MAX_DEPTH);
		return;
	}
	if (p->depth == 0) {
		w = strcmp(el, "configuration") == 0 ? DN_ROOT : DN_OTHER;
	} else if (parent == DN_ROOT) {
		w = strcmp(el, "system.net") == 0 ? DN_SYSNET : DN_OTHER;
	} else if (parent == DN_SETTINGS) {
		if (strcmp(el, "webProxyScript") == 0)
			dn_webproxyscript(p, atts);
	} else if (parent == DN_SYSNET) {
		if (strcmp(el, "settings") == 0)
			w = DN_SETTINGS;
		if (strcmp(el, "defaultProxy") == 0) {
			if (p->d->present) {
				dn_fail(p, SHIR_ECONFIG, "<defaultProxy> appears a second time (first "
				    "at line %d); sections must only appear once per config file",
				    p->d->line);
				return;
			}
			p->d->present = 1;
			p->d->line = dn_line(p);
			dn_defproxy_attrs(p, atts);
			w = DN_DEFPROXY;
		}
	} else if (parent == DN_DEFPROXY) {
		int *seen = NULL;

		if (strcmp(el, "proxy") == 0) {
			w = DN_PROXY, seen = &p->seen_proxy;
		} else if (strcmp(el, "bypasslist") == 0) {
			w = DN_BYPASSLIST, seen = &p->seen_bypasslist;
		} else if (strcmp(el, "module") == 0) {
			w = DN_MODULE, seen = &p->seen_module;
		} else {
			dn_fail(p, SHIR_ECONFIG, "<defaultProxy>: unrecognized element <%s> (the "
			    "children are proxy, bypasslist and module; names are case-sensitive)",
			    log_q(el));
			return;
		}
		if (*seen) {
			dn_fail(p, SHIR_ECONFIG, "<%s> may only appear once in <defaultProxy>", el);
			return;
		}
		*seen = 1;
		if (w == DN_PROXY) {
			dn_proxy_attrs(p, atts);
		} else if (w == DN_MODULE) {
			const char *type = NULL;

			for (; *atts; atts += 2)
				if (strcmp(atts[0], "type") == 0)
					type = atts[1];
			dn_fail(p, SHIR_EUNSUPPORTED, "<module type=%s> is not supported: a custom "
			    ".NET IWebProxy class cannot run on Linux; remove the module element "
			    "and describe the proxy with <proxy> and <bypasslist> (or use "
			    "proxy.mode = custom in shird.conf)", log_q(type ? type : ""));
			return;
		} else {
			for (; *atts && !p->failed; atts += 2)
				if (!dn_lock_attr(atts[0]))
					dn_unknown_attr(p, "bypasslist", atts[0]);
		}
	} else if (parent == DN_BYPASSLIST) {
		if (strcmp(el, "add") != 0 && strcmp(el, "remove") != 0 &&
		    strcmp(el, "clear") != 0) {
			dn_fail(p, SHIR_ECONFIG, "<bypasslist>: unrecognized element <%s> (use add, "
			    "remove or clear)", log_q(el));
			return;
		}
		dn_bypass_item(p, el, atts);
		w = DN_BYPASS_ITEM;
	} else if (parent == DN_PROXY || parent == DN_MODULE || parent == DN_BYPASS_ITEM) {
		dn_fail(p, SHIR_ECONFIG, "unrecognized element <%s> inside a defaultProxy element",
		    log_q(el));
		return;
	}
	p->stack[p->depth++] = w;
}

static void XMLCALL
dn_end(void *ud, const XML_Char *el)
{
	struct dn_parse *p = ud;

	if (p->depth > 0)
		p->depth--;
}

/* An entry that looks like a shell/IE wildcard rather than a regex. */
static int
dn_looks_glob(const char *s)
{
	return s[0] == '*' || s[0] == '?' || strstr(s, "*.") != NULL;
}

static void
dn_glob_hint(const char *s, char *buf, size_t len)
{
	char esc[600];
	size_t o = 0;
	const char *q = s;

	while (*q == '*' || *q == '.')
		q++;
	for (; *q && o + 3 < sizeof esc; q++) {
		if (*q == '.')
			esc[o++] = '\\';
		if (*q == '*') {
			esc[o++] = '.';
			esc[o++] = '*';
			continue;
		}
		esc[o++] = *q;
	}
	esc[o] = '\0';
	snprintf(buf, len, "; it looks like a wildcard, but bypass entries are .NET regular "
	    "expressions: write \"\\.%s(:\\d+)?$\" for every host under that domain, or "
	    "\"^https?://([^/:]*\\.)?%s(:\\d+)?$\" to include the domain itself", esc, esc);
}

static int
dn_compile(const char *name, struct proxy_dotnet *d, struct shir_error *err)
{
	size_t i;

	for (i = 0; i < d->nbypass; i++) {
		struct proxy_bypass *b = &d->bypass[i];
		int ec = 0;
		PCRE2_SIZE off = 0;
		pcre2_code *re = pcre2_compile((PCRE2_SPTR)b->pattern, PCRE2_ZERO_TERMINATED,
		    PCRE2_CASELESS | PCRE2_UTF, &ec, &off, NULL);

		if (re == NULL) {
			PCRE2_UCHAR why[256];
			char hint[1500] = "";

			pcre2_get_error_message(ec, why, sizeof why);
			if (dn_looks_glob(b->pattern))
				dn_glob_hint(b->pattern, hint, sizeof hint);
			return shir_error_set(err, SHIR_ECONFIG, "%s:%d: <bypasslist> entry %s is not "
			    "a valid regular expression (%s at offset %zu)%s", name, b->line,
			    log_q(b->pattern), (const char *)why, (size_t)off, hint);
		}
		(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
		b->re = re;
	}
	return 0;
}

int
proxy_dotnet_parse(const char *name, const char *buf, size_t len, struct proxy_dotnet **out,
    struct shir_error *err)
{
	struct dn_parse p;
	int rc = SHIR_ENOMEM;

	*out = NULL;
	shir_error_clear(err);
	memset(&p, 0, sizeof p);
	p.name = name;
	p.err = err;
	p.d = calloc(1, sizeof *p.d);
	if (p.d == NULL || (p.d->file = strdup(name)) == NULL) {
		shir_error_set(err, rc, "out of memory");
		goto out;
	}
	p.d->enabled = 1;
	p.xp = XML_ParserCreate(NULL);
	if (p.xp == NULL) {
		shir_error_set(err, rc, "out of memory");
		goto out;
	}
	XML_SetUserData(p.xp, &p);
	XML_SetElementHandler(p.xp, dn_start, dn_end);
	if (len > DOTNET_MAX_FILE) {
		rc = shir_error_set(err, SHIR_ETOOBIG, "%s: larger than %d bytes", name,
		    DOTNET_MAX_FILE);
		goto out;
	}
	if (XML_Parse(p.xp, buf, (int)len, XML_TRUE) != XML_STATUS_OK) {
		if (p.failed) {
			rc = err->code;
		} else {
			rc = shir_error_set(err, SHIR_ECONFIG, "%s:%lu: not well-formed XML: %s",
			    name, (unsigned long)XML_GetCurrentLineNumber(p.xp),
			    XML_ErrorString(XML_GetErrorCode(p.xp)));
		}
		goto out;
	}
	if (p.failed) {
		rc = err->code;
		goto out;
	}
	if ((rc = dn_compile(name, p.d, err)) != 0)
		goto out;
	*out = p.d;
	p.d = NULL;
	rc = 0;
out:
	if (p.xp)
		XML_ParserFree(p.xp);
	proxy_dotnet_free(p.d);
	return rc;
}

int
proxy_dotnet_load_file(const char *path, struct proxy_dotnet **out, struct shir_error *err)
{
	FILE *f = NULL;
	char *buf = NULL;
	size_t n = 0;
	int rc;

	*out = NULL;
	if ((f = fopen(path, "rb")) == NULL) {
		int e = errno;

		rc = shir_error_set(err, e == ENOENT ? SHIR_ENOENT : SHIR_EIO, "cannot read %s: %s",
		    path, strerror(e));
		goto out;
	}
	if ((buf = malloc(DOTNET_MAX_FILE + 1)) == NULL) {
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	n = fread(buf, 1, DOTNET_MAX_FILE + 1, f);
	if (ferror(f)) {
		rc = shir_error_set(err, SHIR_EIO, "cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	rc = proxy_dotnet_parse(path, buf, n, out, err);
out:
	if (f)
		fclose(f);
	free(buf);
	return rc;
}

void
proxy_dotnet_free(struct proxy_dotnet *d)
{
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < d->nbypass; i++) {
		free(d->bypass[i].pattern);
		pcre2_code_free(d->bypass[i].re);
	}
	free(d->bypass);
	free(d->proxy_address);
	free(d->script_location);
	free(d->file);
	free(d);
}

void
proxy_dotnet_canon(const struct proxy_dotnet *d, char *buf, size_t len)
{
	size_t o = 0, i;

#define CANON(...) do { int w_ = snprintf(buf + o, o < len ? len - o : 0, __VA_ARGS__); \
	if (w_ > 0) o += (size_t)w_; } while (0)
	if (len)
		buf[0] = '\0';
	if (d == NULL || !d->present) {
		CANON("defaultProxy=absent\n");
		return;
	}
	CANON("enabled=%s\n", d->enabled ? "true" : "false");
	CANON("useDefaultCredentials=%s\n", d->use_default_credentials ? "true" : "false");
	CANON("autoDetect=%s\n", proxy_tri_name(d->auto_detect));
	CANON("scriptLocation=%s\n", d->script_location ? d->script_location : "");
	CANON("bypassonlocal=%s\n", proxy_tri_name(d->bypass_on_local));
	CANON("proxyaddress=%s\n", d->proxy_address ? d->proxy_address : "");
	CANON("usesystemdefault=%s\n", proxy_tri_name(d->use_system_default));
	for (i = 0; i < d->nbypass; i++)
		CANON("bypass=%s\n", d->bypass[i].pattern);
#undef CANON
}

void
proxy_dotnet_diff(const struct proxy_dotnet *a, const struct proxy_dotnet *b, char *buf, size_t len)
{
	char ca[8192], cb[8192];
	const char *pa = ca, *pb = cb;
	size_t o = 0;

	proxy_dotnet_canon(a, ca, sizeof ca);
	proxy_dotnet_canon(b, cb, sizeof cb);
	if (len)
		buf[0] = '\0';
	if (a == NULL || !a->present || b == NULL || !b->present) {
		snprintf(buf, len, "%s vs %s",
		    a && a->present ? "a defaultProxy section" : "no defaultProxy section",
		    b && b->present ? "a defaultProxy section" : "no defaultProxy section");
		return;
	}
	/* line by line; the bypass lists are compared as a whole at the end */
	while (*pa && *pb && strncmp(pa, "bypass=", 7) != 0 && strncmp(pb, "bypass=", 7) != 0) {
		size_t la = strcspn(pa, "\n"), lb = strcspn(pb, "\n");

		if (la != lb || memcmp(pa, pb, la) != 0) {
			int w = snprintf(buf + o, o < len ? len - o : 0, "%s%.*s vs %.*s",
			    o ? "; " : "", (int)la, pa, (int)lb, pb);

			if (w > 0)
				o += (size_t)w;
		}
		pa += la + (pa[la] ? 1 : 0);
		pb += lb + (pb[lb] ? 1 : 0);
	}
	if (strcmp(pa, pb) != 0) {
		size_t na = 0, nb = 0;
		const char *s;

		for (s = pa; (s = strstr(s, "bypass=")) != NULL; s++)
			na++;
		for (s = pb; (s = strstr(s, "bypass=")) != NULL; s++)
			nb++;
		snprintf(buf + o, o < len ? len - o : 0, "%sbypasslist with %zu entries vs "
			    "%zu entries (or in another order)", o ? "; " : "", na, nb);
	}
}
