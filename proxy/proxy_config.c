/* proxy_config: loading shird.conf's [proxy] (and the .NET files and the
 * environment behind it) into one immutable object, and the per-destination
 * decision of .NET Framework's WebProxy (C.2/C.3 of the proxy spec) or
 * libcurl's environment rules (C.4). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <curl/curl.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <libpsl.h>

#include "common/log.h"
#include "proxy/pac.h"
#include "proxy/proxy.h"
#include "proxy/proxy_dotnet.h"
#include "proxy/proxy_int.h"
#include "proxy/proxy_noproxy.h"
#include "proxy/proxy_sysinfo.h"

extern char **environ;

#define PC_MAX_ENV 32
#define PC_MAX_PASSWORD 1024

/* A proxy endpoint: what decisions show, plus credentials embedded in an
 * environment variable (curl allows user:password@ there). */
struct pc_ep {
	char url[512];		/* "scheme://host:port", no secrets */
	char *user, *password;
};

struct pc_env {
	char name[40];		/* https_proxy, HTTPS_PROXY, ... */
	int empty;		/* set but empty: "no proxy", no fallback (curl) */
	struct pc_ep ep;
};

enum pc_kind {
	PC_NONE = 0,		/* proxy.mode = none */
	PC_DISABLED,		/* <defaultProxy enabled="false"> */
	PC_EXPLICIT_NO,		/* empty section with usesystemdefault="false" */
	PC_RULES,		/* .NET static settings and/or the environment */
	PC_CUSTOM,		/* proxy.mode = custom */
};

struct proxy_config {
	int refs;
	int mode;		/* enum proxy_mode */
	enum pc_kind kind;
	char kind_reason[512];	/* why, for the DIRECT-for-everything kinds */
	char source[1024];	/* where the settings came from */
	/* a fixed proxy (.NET proxyaddress or custom) */
	int have_fixed;
	struct pc_ep fixed;
	char fixed_src[500];
	/* the environment, when the .NET rules lead there */
	int use_env_proxy;
	struct pc_env env[PC_MAX_ENV];
	size_t nenv;
	struct proxy_noproxy *noproxy;	/* NULL: not used */
	char noproxy_var[16];
	/* .NET */
	int bypass_on_local;
	struct proxy_dotnet *dn;	/* owns the bypass list; NULL: none */
	int use_default_credentials;
	char *files[2];
	/* the machine, for bypassonlocal */
	char domain[256];
	struct proxy_addr *addrs;
	size_t naddrs;
	/* credentials from shird.conf (custom, or system with proxy.user) */
	char *user, *password;
	char *password_file;
	int auth;		/* conf index any|basic|digest|ntlm|negotiate */
	int connect_timeout;
	char *ca_file;		/* to verify https:// proxies; NULL: the system's */
	/* PAC (scriptLocation/autoDetect, or proxy.pac_url) */
	int pac;
	struct pac_params pacp;
	char warnings[4096];
};

const char *
proxy_mode_name(int mode)
{
	switch (mode) {
	case PROXY_MODE_NONE: return "none";
	case PROXY_MODE_SYSTEM: return "system";
	case PROXY_MODE_CUSTOM: return "custom";
	}
	return "?";
}

static const char *const pc_auth_names[] = { "any", "basic", "digest", "ntlm", "negotiate" };

/* --- small helpers ------------------------------------------------------- */

static void
pc_warn(struct proxy_config *pc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
pc_warn(struct proxy_config *pc, const char *fmt, ...)
{
	size_t o = strlen(pc->warnings);
	va_list ap;

	if (o + 2 >= sizeof pc->warnings)
		return;
	if (o)
		pc->warnings[o++] = '\n', pc->warnings[o] = '\0';
	va_start(ap, fmt);
	vsnprintf(pc->warnings + o, sizeof pc->warnings - o, fmt, ap);
	va_end(ap);
}

static void
pc_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s + 32);
}

static int
pc_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* %XX-decodes s[0..l) into a new string (curl decodes proxy credentials). */
static char *
pc_unescape(const char *s, size_t l)
{
	char *o = malloc(l + 1), *w = o;
	size_t i;

	if (o == NULL)
		return NULL;
	for (i = 0; i < l; i++) {
		if (s[i] == '%' && i + 2 < l && pc_hex(s[i + 1]) >= 0 && pc_hex(s[i + 2]) >= 0) {
			*w++ = (char)(pc_hex(s[i + 1]) * 16 + pc_hex(s[i + 2]));
			i += 2;
		} else {
			*w++ = s[i];
		}
	}
	*w = '\0';
	return o;
}

static void
pc_wipe_free(char *s)
{
	if (s == NULL)
		return;
	{
		volatile char *v = s;

		while (*v)
			*v++ = '\0';
	}
	free(s);
}

static void
pc_ep_clear(struct pc_ep *ep)
{
	free(ep->user);
	pc_wipe_free(ep->password);
	ep->user = ep->password = NULL;
}

/* A proxy string as curl reads it from the environment:
 * [scheme://][user[:password]@]host[:port][/...]; no scheme means http; no
 * port means 1080 (443 for https://). */
static int
pc_parse_env_proxy(const char *var, const char *v, struct pc_ep *ep, struct shir_error *err)
{
	char scheme[16] = "http", host[300];
	const char *p = v, *sep = strstr(v, "://"), *at, *end, *hs, *he;
	long port = -1;

	if (sep != NULL) {
		size_t sl = (size_t)(sep - v);

		if (sl == 0 || sl >= sizeof scheme)
			goto bad_scheme;
		memcpy(scheme, v, sl);
		scheme[sl] = '\0';
		pc_lower(scheme);
		if (strcmp(scheme, "http") && strcmp(scheme, "https") && strcmp(scheme, "socks4") &&
		    strcmp(scheme, "socks4a") && strcmp(scheme, "socks5") && strcmp(scheme, "socks5h"))
			goto bad_scheme;
		p = sep + 3;
	}
	end = p + strcspn(p, "/?#");
	at = NULL;
	{
		const char *q;

		for (q = p; q < end; q++)
			if (*q == '@')
				at = q;
	}
	if (at != NULL) {
		const char *colon = memchr(p, ':', (size_t)(at - p));

		if (colon != NULL) {
			ep->user = pc_unescape(p, (size_t)(colon - p));
			ep->password = pc_unescape(colon + 1, (size_t)(at - colon - 1));
		} else {
			ep->user = pc_unescape(p, (size_t)(at - p));
		}
		p = at + 1;
	}
	if (*p == '[') {
		he = memchr(p, ']', (size_t)(end - p));
		if (he == NULL)
			goto bad;
		hs = p;
		he++;
	} else {
		hs = p;
		he = hs;
		while (he < end && *he != ':')
			he++;
	}
	if (he == hs || (size_t)(he - hs) >= sizeof host)
		goto bad;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	pc_lower(host);
	if (he < end && *he == ':') {
		char *e;

		port = strtol(he + 1, &e, 10);
		if (e == he + 1 || e != end || port < 1 || port > 65535)
			goto bad;
	} else if (he != end) {
		goto bad;
	}
	if (port < 0)
		port = strcmp(scheme, "https") == 0 ? 443 : 1080;
	snprintf(ep->url, sizeof ep->url, "%s://%s:%ld", scheme, host, port);
	return 0;
bad_scheme:
	return shir_error_set(err, SHIR_ECONFIG, "environment variable %s: unsupported proxy "
	    "scheme (use http://, https://, socks4://, socks4a://, socks5:// or socks5h://)", var);
bad:
	pc_ep_clear(ep);
	return shir_error_set(err, SHIR_ECONFIG, "environment variable %s: %s is not a proxy "
	    "address of the form [http://]host[:port]", var, log_q(v));
}

static const char *
pc_getenv(const struct proxy_sysinfo *si, const char *name, int *set)
{
	const char *const *e = si && si->env ? si->env : (const char *const *)environ;
	size_t nl = strlen(name);

	*set = 0;
	for (; e && *e; e++) {
		if (strncmp(*e, name, nl) == 0 && (*e)[nl] == '=') {
			*set = 1;
			return *e + nl + 1;
		}
	}
	return NULL;
}

/* Snapshot of the environment's proxy variables (curl's names). */
static int
pc_load_env(struct proxy_config *pc, const struct proxy_sysinfo *si, struct shir_error *err)
{
	static const char *const names[] = { "https_proxy", "HTTPS_PROXY", "http_proxy",
		"all_proxy", "ALL_PROXY", "ws_proxy", "WS_PROXY", "wss_proxy", "WSS_PROXY",
		"ftp_proxy", "FTP_PROXY", NULL };
	static const char *const np_names[] = { "no_proxy", "NO_PROXY", NULL };
	int i, set, rc;

	for (i = 0; names[i] && pc->nenv < PC_MAX_ENV; i++) {
		const char *v = pc_getenv(si, names[i], &set);
		struct pc_env *e;

		if (!set)
			continue;
		e = &pc->env[pc->nenv];
		memset(e, 0, sizeof *e);
		snprintf(e->name, sizeof e->name, "%s", names[i]);
		if (*v == '\0') {
			e->empty = 1;
		} else if ((rc = pc_parse_env_proxy(names[i], v, &e->ep, err)) != 0) {
			return rc;
		}
		pc->nenv++;
	}
	if (pc_getenv(si, "HTTP_PROXY", &set) != NULL && set)
		pc_warn(pc, "HTTP_PROXY (upper case) is ignored for http:// destinations, as curl "
		    "does (httpoxy); set http_proxy");
	for (i = 0; np_names[i]; i++) {
		const char *v = pc_getenv(si, np_names[i], &set);

		if (!set)
			continue;
		pc->noproxy = proxy_noproxy_parse(v, strlen(v));
		if (pc->noproxy == NULL)
			return shir_error_set(err, SHIR_ENOMEM, "out of memory");
		snprintf(pc->noproxy_var, sizeof pc->noproxy_var, "%s", np_names[i]);
		if (proxy_noproxy_blank_separated(pc->noproxy))
			pc_warn(pc, "%s separates entries with blanks; curl accepts that with a "
			    "warning and newer curl does not: use commas", np_names[i]);
		break;
	}
	return 0;
}

static int
pc_load_sysinfo(struct proxy_config *pc, const struct proxy_sysinfo *si, struct shir_error *err)
{
	size_t i;

	if (si && si->domain)
		snprintf(pc->domain, sizeof pc->domain, "%s", si->domain);
	else
		proxy_sysinfo_domain(pc->domain, sizeof pc->domain);
	if (si && si->addrs) {
		pc->addrs = calloc(si->naddrs ? si->naddrs : 1, sizeof *pc->addrs);
		if (pc->addrs == NULL)
			return shir_error_set(err, SHIR_ENOMEM, "out of memory");
		for (i = 0; i < si->naddrs; i++)
			if (proxy_addr_parse(si->addrs[i], &pc->addrs[pc->naddrs]) == 0)
				pc->naddrs++;
		return 0;
	}
	if (proxy_sysinfo_addrs(&pc->addrs, &pc->naddrs) != 0)
		pc_warn(pc, "cannot list this machine's addresses (getifaddrs failed): "
		    "bypassonlocal only knows loopback, dotless names and the domain suffix");
	return 0;
}

static struct proxy_config *
pc_new(const struct proxy_settings *c)
{
	struct proxy_config *pc = calloc(1, sizeof *pc);

	if (pc == NULL)
		return NULL;
	pc->refs = 1;
	pc->connect_timeout = c && c->connect_timeout > 0 ? c->connect_timeout : 15;
	pc->auth = c ? c->auth : 0;
	if (pc->auth < 0 || pc->auth > 4)
		pc->auth = 0;
	if (c && c->ca_file && *c->ca_file &&
	    (pc->ca_file = strdup(c->ca_file)) == NULL) {
		free(pc);
		return NULL;
	}
	return pc;
}

static void
pc_free(struct proxy_config *pc)
{
	size_t i;

	for (i = 0; i < pc->nenv; i++)
		pc_ep_clear(&pc->env[i].ep);
	pc_ep_clear(&pc->fixed);
	proxy_noproxy_free(pc->noproxy);
	proxy_dotnet_free(pc->dn);
	free(pc->files[0]);
	free(pc->files[1]);
	free(pc->addrs);
	free(pc->user);
	pc_wipe_free(pc->password);
	free(pc->password_file);
	free(pc->ca_file);
	free(pc);
}

struct proxy_config *
proxy_config_ref(struct proxy_config *pc)
{
	if (pc != NULL)
		__atomic_add_fetch(&pc->refs, 1, __ATOMIC_RELAXED);
	return pc;
}

void
proxy_config_unref(struct proxy_config *pc)
{
	if (pc != NULL && __atomic_sub_fetch(&pc->refs, 1, __ATOMIC_ACQ_REL) == 0)
		pc_free(pc);
}

const char *
proxy_config_warnings(const struct proxy_config *pc)
{
	return pc->warnings;
}

int
proxy_config_connect_timeout(const struct proxy_config *pc)
{
	return pc->connect_timeout;
}

/* --- credentials from shird.conf ------------------------------------------ */

static int
pc_read_password(struct proxy_config *pc, const char *path, struct shir_error *err)
{
	char buf[PC_MAX_PASSWORD + 2];
	struct stat st;
	ssize_t n;
	int fd = -1, rc;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		rc = shir_error_set(err, errno == ENOENT ? SHIR_ENOENT : SHIR_EPERM,
		    "proxy.password_file %s cannot be read: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = shir_error_set(err, SHIR_ECONFIG, "proxy.password_file %s is not a regular "
		    "file", path);
		goto out;
	}
	if (st.st_mode & 077) {
		rc = shir_error_set(err, SHIR_EPERM, "proxy.password_file %s is readable by group "
		    "or others (mode %04o); the password is a secret: run `chmod 600 %s`", path,
		    (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	n = read(fd, buf, sizeof buf - 1);
	if (n < 0) {
		rc = shir_error_set(err, SHIR_EIO, "proxy.password_file %s: %s", path,
		    strerror(errno));
		goto out;
	}
	if ((size_t)n > PC_MAX_PASSWORD) {
		rc = shir_error_set(err, SHIR_ETOOBIG, "proxy.password_file %s is longer than %d "
		    "bytes", path, PC_MAX_PASSWORD);
		goto out;
	}
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	if (n == 0) {
		rc = shir_error_set(err, SHIR_ECONFIG, "proxy.password_file %s is empty", path);
		goto out;
	}
	if ((pc->password = strdup(buf)) == NULL ||
	    (pc->password_file = strdup(path)) == NULL) {
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	rc = 0;
out:
	{
		volatile char *v = buf;
		size_t i;

		for (i = 0; i < sizeof buf; i++)
			v[i] = 0;
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

static int
pc_load_conf_creds(struct proxy_config *pc, const struct proxy_settings *c, struct shir_error *err)
{
	int rc;

	if (c->user != NULL && *c->user &&
	    (pc->user = strdup(c->user)) == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	if (c->password_file != NULL && *c->password_file) {
		if ((rc = pc_read_password(pc, c->password_file, err)) != 0)
			return rc;
		if (pc->user == NULL)
			pc_warn(pc, "proxy.password_file is set but proxy.user is not: the password "
			    "is not used");
	} else if (pc->user != NULL && pc->auth != 4) {
		pc_warn(pc, "proxy.user is set without proxy.password_file: the proxy will be "
		    "asked with an empty password");
	}
	return 0;
}

/* --- PAC ------------------------------------------------------------------- */

static void
pc_pac_defaults(struct pac_params *p)
{
	memset(p, 0, sizeof *p);
	p->download_timeout_ms = 60 * 1000;	/* .NET's webProxyScript downloadTimeout */
	p->retry_interval_s = 600;		/* autoConfigUrlRetryInterval */
	p->call_timeout_ms = 5000;
}

static int
pc_pac_url_check(const char *u, const char *what, struct shir_error *err)
{
	if (strncasecmp(u, "http://", 7) != 0 && strncasecmp(u, "https://", 8) != 0 &&
	    strncasecmp(u, "file:", 5) != 0)
		return shir_error_set(err, SHIR_ECONFIG, "%s %s: a PAC file is fetched with "
		    "http://, https:// or file:// only", what, log_q(u));
	if (strlen(u) >= sizeof(((struct pac_params *)0)->script_url))
		return shir_error_set(err, SHIR_ECONFIG, "%s is longer than 1023 bytes", what);
	return 0;
}

/* proxy.wpad_devolution: wpad.<domain>, then its parents, down to and
 * including the registrable domain (Public Suffix List), never a public
 * suffix; at most 4 names. */
static void
pc_pac_devolve(struct proxy_config *pc)
{
	psl_ctx_t *psl = psl_latest(NULL);
	const char *d = pc->domain, *reg;
	char desc[1300] = "";

	if (psl == NULL || *d == '\0') {
		pc_warn(pc, "proxy.wpad_devolution is set but %s: only http://wpad/wpad.dat "
		    "(the resolver's search list) is tried", *d ? "the public suffix list cannot "
		    "be read" : "this machine has no DNS domain");
		psl_free(psl);
		return;
	}
	reg = psl_registrable_domain(psl, d);
	while (reg != NULL && *d && pc->pacp.ndevolve < 4 && !psl_is_public_suffix(psl, d)) {
		size_t o = strlen(desc);

		snprintf(pc->pacp.devolve[pc->pacp.ndevolve++], sizeof pc->pacp.devolve[0],
		    "wpad.%.250s", d);
		snprintf(desc + o, sizeof desc - o, "%swpad.%.250s", o ? ", " : "", d);
		if (d == reg)
			break;
		d = strchr(d, '.');
		if (d == NULL)
			break;
		d++;
	}
	if (pc->pacp.ndevolve == 0)
		pc_warn(pc, "proxy.wpad_devolution: the domain %s is a public suffix: no "
		    "wpad name under it is tried", pc->domain);
	else
		log_debug("proxy", "event=pac.devolution names=%s", log_q(desc));
	psl_free(psl);
}

const struct pac_params *
proxy_config_pac(const struct proxy_config *pc)
{
	return pc->pac ? &pc->pacp : NULL;
}

/* --- custom ----------------------------------------------------------------- */

static int
pc_load_custom(struct proxy_config *pc, const struct proxy_settings *c, struct shir_error *err)
{
	const char *a = c->address, *sep;
	char scheme[8] = "http", host[300];
	long port = c->port;
	size_t hl;

	if (c->pac_url != NULL && *c->pac_url) {
		if (pc_pac_url_check(c->pac_url, "proxy.pac_url", err) != 0)
			return err->code;
		pc->pac = 1;
		pc_pac_defaults(&pc->pacp);
		snprintf(pc->pacp.script_url, sizeof pc->pacp.script_url, "%s", c->pac_url);
		snprintf(pc->pacp.origin, sizeof pc->pacp.origin, "proxy.pac_url in %s",
		    c->source ? c->source : "shird.conf");
		snprintf(pc->source, sizeof pc->source, "%s [proxy]", c->source ? c->source :
		    "shird.conf");
		pc->kind = PC_CUSTOM;
		if (a != NULL && *a)
			pc_warn(pc, "proxy.pac_url and proxy.address are both set: the PAC file "
			    "decides, proxy.address is not used");
		return pc_load_conf_creds(pc, c, err);
	}
	if (a == NULL || *a == '\0')
		return shir_error_set(err, SHIR_ECONFIG, "proxy.mode is custom but proxy.address "
		    "is not set");
	if ((sep = strstr(a, "://")) != NULL) {
		if ((size_t)(sep - a) == 4 && strncasecmp(a, "http", 4) == 0)
			strcpy(scheme, "http");
		else if ((size_t)(sep - a) == 5 && strncasecmp(a, "https", 5) == 0)
			strcpy(scheme, "https");
		else
			return shir_error_set(err, SHIR_ECONFIG, "proxy.address %s: the scheme must "
			    "be http:// or https://", log_q(a));
		a = sep + 3;
	}
	if (*a == '[') {
		const char *e = strchr(a, ']');

		if (e == NULL)
			goto bad;
		hl = (size_t)(e - a + 1);
	} else {
		hl = strcspn(a, ":/");
	}
	if (hl == 0 || hl >= sizeof host)
		goto bad;
	memcpy(host, a, hl);
	host[hl] = '\0';
	pc_lower(host);
	if (a[hl] == ':') {
		char *e;

		port = strtol(a + hl + 1, &e, 10);
		if (e == a + hl + 1 || (*e && *e != '/') || port < 1 || port > 65535)
			goto bad;
	} else if (a[hl] != '\0' && !(a[hl] == '/' && a[hl + 1] == '\0')) {
		goto bad;
	}
	snprintf(pc->fixed.url, sizeof pc->fixed.url, "%s://%s:%ld", scheme, host, port);
	pc->have_fixed = 1;
	snprintf(pc->fixed_src, sizeof pc->fixed_src, "proxy.address in %s",
	    c->source ? c->source : "shird.conf");
	snprintf(pc->source, sizeof pc->source, "%s [proxy]", c->source ? c->source : "shird.conf");
	pc->kind = PC_CUSTOM;
	return pc_load_conf_creds(pc, c, err);
bad:
	return shir_error_set(err, SHIR_ECONFIG, "proxy.address %s is not a host name, "
	    "[IPv6] or host:port", log_q(c->address));
}

/* --- system (.NET) -------------------------------------------------------- */

static const char *
pc_describe_static(const struct proxy_config *pc, char *buf, size_t len)
{
	if (pc->have_fixed)
		snprintf(buf, len, "the static proxy %s%s", pc->fixed.url,
		    pc->dn && pc->dn->nbypass ? " with the bypass list" : "");
	else if (pc->use_env_proxy)
		snprintf(buf, len, "the environment (https_proxy, http_proxy, all_proxy, no_proxy)");
	else
		snprintf(buf, len, "DIRECT for every destination (no proxyaddress)");
	return buf;
}

/* Turns one parsed section into the decision inputs (C.2). d may be NULL
 * or absent: the system settings, i.e. the environment on Linux. */
static int
pc_from_dotnet(struct proxy_config *pc, struct proxy_dotnet *d, const char *file,
    const struct proxy_sysinfo *si, struct shir_error *err)
{
	int nothing, pac, killed = 0, rc;
	char desc[600];

	pc->kind = PC_RULES;
	if (d == NULL || !d->present) {
		snprintf(pc->kind_reason, sizeof pc->kind_reason, "%s has no defaultProxy element: "
		    "the system settings apply, on Linux the environment", file);
		pc->use_env_proxy = 1;
		rc = pc_load_env(pc, si, err);
		proxy_dotnet_free(d);
		return rc;
	}
	pc->dn = d;
	pc->use_default_credentials = d->use_default_credentials;
	if (!d->enabled) {
		pc->kind = PC_DISABLED;
		snprintf(pc->kind_reason, sizeof pc->kind_reason, "<defaultProxy enabled=\"false\"> "
		    "(%s line %d): no proxy for anything", file, d->line);
		return 0;
	}
	nothing = d->auto_detect == PROXY_TRI_UNSPEC && d->script_location == NULL &&
	    d->use_system_default != PROXY_TRI_TRUE && d->proxy_address == NULL &&
	    d->bypass_on_local == PROXY_TRI_UNSPEC && d->nbypass == 0;
	if (nothing) {
		if (d->use_system_default == PROXY_TRI_FALSE) {
			pc->kind = PC_EXPLICIT_NO;
			snprintf(pc->kind_reason, sizeof pc->kind_reason, "<proxy usesystemdefault="
			    "\"false\"> and nothing else (%s line %d): explicitly no proxy", file,
			    d->line);
			return 0;
		}
		snprintf(pc->kind_reason, sizeof pc->kind_reason, "the defaultProxy element of %s "
		    "(line %d) sets no proxy: the system settings apply, on Linux the environment",
		    file, d->line);
		pc->use_env_proxy = 1;
		return pc_load_env(pc, si, err);
	}
	/* step 4: start from the system's static settings, or from nothing */
	if (d->use_system_default == PROXY_TRI_TRUE && d->auto_detect == PROXY_TRI_UNSPEC &&
	    d->script_location == NULL) {
		pc->use_env_proxy = 1;
		if ((rc = pc_load_env(pc, si, err)) != 0)
			return rc;
	}
	pac = d->auto_detect == PROXY_TRI_TRUE || d->script_location != NULL;
	/* step 6, in .NET's order */
	if (d->bypass_on_local != PROXY_TRI_UNSPEC) {
		pc->bypass_on_local = d->bypass_on_local == PROXY_TRI_TRUE;
		killed = 1;
	}
	if (d->proxy_address != NULL) {
		snprintf(pc->fixed.url, sizeof pc->fixed.url, "%s", d->proxy_address);
		pc->have_fixed = 1;
		pc->use_env_proxy = 0;	/* discards the per-scheme system proxies */
		snprintf(pc->fixed_src, sizeof pc->fixed_src, "proxyaddress (%s line %d)", file,
		    d->proxy_address_line);
		killed = 1;
	}
	if (d->nbypass > 0) {
		proxy_noproxy_free(pc->noproxy);	/* replaces, does not merge */
		pc->noproxy = NULL;
		killed = 1;
	}
	if (pac && killed)
		pc_warn(pc, "%s: autoDetect/scriptLocation together with bypassonlocal, "
		    "proxyaddress or bypasslist: .NET Framework 4.8 then drops the script "
		    "engine, so no PAC/WPAD is used, only %s (as on Windows)", file,
		    pc_describe_static(pc, desc, sizeof desc));
	else if (pac) {
		pc->pac = 1;
		pc_pac_defaults(&pc->pacp);
		pc->pacp.auto_detect = d->auto_detect == PROXY_TRI_TRUE;
		if (d->script_location != NULL) {
			if ((rc = pc_pac_url_check(d->script_location, "scriptLocation", err)) != 0)
				return rc;
			snprintf(pc->pacp.script_url, sizeof pc->pacp.script_url, "%s",
			    d->script_location);
		}
		snprintf(pc->pacp.origin, sizeof pc->pacp.origin, "%s%s%s (%s line %d)",
		    pc->pacp.auto_detect ? "autoDetect=\"true\"" : "",
		    pc->pacp.auto_detect && d->script_location ? " then " : "",
		    d->script_location ? "scriptLocation" : "", file, d->line);
		if (d->pac_download_timeout_ms > 0)
			pc->pacp.download_timeout_ms = d->pac_download_timeout_ms;
		if (d->pac_retry_interval_s > 0)
			pc->pacp.retry_interval_s = d->pac_retry_interval_s;
	}
	return 0;
}

static int
pc_load_system(struct proxy_config *pc, const struct proxy_settings *c, const struct proxy_sysinfo *si,
    struct shir_error *err)
{
	const char *paths[2] = { c->dotnet_config, c->dotnet_config_worker };
	struct proxy_dotnet *d[2] = { NULL, NULL };
	int present[2] = { 0, 0 }, i, rc;
	char diff[2048];

	for (i = 0; i < 2; i++) {
		if (paths[i] == NULL || *paths[i] == '\0')
			continue;
		rc = proxy_dotnet_load_file(paths[i], &d[i], err);
		if (rc == SHIR_ENOENT) {
			pc_warn(pc, "%s does not exist: read as a file without a defaultProxy "
			    "element", paths[i]);
			shir_error_clear(err);
			continue;
		}
		if (rc != 0)
			goto out;
		present[i] = 1;
		if ((pc->files[i] = strdup(paths[i])) == NULL) {
			rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
			goto out;
		}
	}
	snprintf(pc->source, sizeof pc->source, "%s%s%s", present[0] ? paths[0] : "",
	    present[0] && present[1] ? " + " : "", present[1] ? paths[1] : "");
	if (!present[0] && !present[1])
		snprintf(pc->source, sizeof pc->source, "the environment (no .NET config file)");
	if ((present[0] || present[1]) && paths[0] && paths[1] && *paths[0] && *paths[1]) {
		char ca[8192], cb[8192];

		proxy_dotnet_canon(d[0], ca, sizeof ca);
		proxy_dotnet_canon(d[1], cb, sizeof cb);
		if (strcmp(ca, cb) != 0) {
			proxy_dotnet_diff(d[0], d[1], diff, sizeof diff);
			pc_warn(pc, "the defaultProxy elements of %s and %s differ (%s); using %s's, "
			    "as the node's host process does", paths[0], paths[1], diff, paths[0]);
		}
	}
	rc = pc_from_dotnet(pc, d[0], paths[0] && *paths[0] ? paths[0] : "diahost.exe.config",
	    si, err);
	d[0] = NULL;
	if (rc == 0 && pc->pac && pc->pacp.auto_detect && c->wpad_devolution)
		pc_pac_devolve(pc);
	if (rc == 0)
		rc = pc_load_conf_creds(pc, c, err);
out:
	proxy_dotnet_free(d[0]);
	proxy_dotnet_free(d[1]);
	return rc;
}

int
proxy_config_load_with(const struct proxy_settings *c, const struct proxy_sysinfo *si,
    struct proxy_config **out, struct shir_error *err)
{
	struct proxy_config *pc = pc_new(c);
	int rc = 0;

	*out = NULL;
	shir_error_clear(err);
	if (pc == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	pc->mode = c->mode;
	switch (c->mode) {
	case PROXY_MODE_NONE:
		pc->kind = PC_NONE;
		snprintf(pc->kind_reason, sizeof pc->kind_reason, "proxy.mode is none");
		snprintf(pc->source, sizeof pc->source, "%s [proxy]",
		    c->source ? c->source : "shird.conf");
		break;
	case PROXY_MODE_CUSTOM:
		rc = pc_load_custom(pc, c, err);
		break;
	case PROXY_MODE_SYSTEM:
		rc = pc_load_sysinfo(pc, si, err);
		if (rc == 0)
			rc = pc_load_system(pc, c, si, err);
		break;
	default:
		rc = shir_error_set(err, SHIR_ECONFIG, "proxy.mode %d is unknown", c->mode);
	}
	if (rc == 0 && c->mode == PROXY_MODE_CUSTOM)
		rc = pc_load_sysinfo(pc, si, err);
	if (rc != 0) {
		pc_free(pc);
		return rc;
	}
	*out = pc;
	return 0;
}

int
proxy_config_load(const struct proxy_settings *c, struct proxy_config **out, struct shir_error *err)
{
	return proxy_config_load_with(c, NULL, out, err);
}

int
proxy_config_load_dotnet_with(const char *file, const struct proxy_sysinfo *si,
    struct proxy_config **out, struct shir_error *err)
{
	struct proxy_config *pc = pc_new(NULL);
	struct proxy_dotnet *d = NULL;
	int rc;

	*out = NULL;
	shir_error_clear(err);
	if (pc == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	pc->mode = PROXY_MODE_SYSTEM;
	if ((rc = pc_load_sysinfo(pc, si, err)) != 0 ||
	    (rc = proxy_dotnet_load_file(file, &d, err)) != 0)
		goto out;
	if ((pc->files[0] = strdup(file)) == NULL) {
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	snprintf(pc->source, sizeof pc->source, "%s", file);
	rc = pc_from_dotnet(pc, d, file, si, err);
	d = NULL;
out:
	proxy_dotnet_free(d);
	if (rc != 0) {
		pc_free(pc);
		return rc;
	}
	*out = pc;
	return 0;
}

int
proxy_config_load_dotnet(const char *file, struct proxy_config **out, struct shir_error *err)
{
	return proxy_config_load_dotnet_with(file, NULL, out, err);
}

/* --- the decision ------------------------------------------------------------ */

struct pc_target {
	char scheme[32];
	char host[300];		/* lower case; IPv6 in brackets */
	char hostport[400];	/* "scheme://host[:port]", default port omitted */
	int port;		/* explicit or the scheme's default; -1 unknown */
};

static int
pc_default_port(const char *scheme)
{
	if (!strcmp(scheme, "http") || !strcmp(scheme, "ws"))
		return 80;
	if (!strcmp(scheme, "https") || !strcmp(scheme, "wss"))
		return 443;
	if (!strcmp(scheme, "ftp"))
		return 21;
	return -1;
}

static int
pc_parse_url(const char *url, struct pc_target *t, char *why, size_t wl)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;
	int rc = -1;

	if (u == NULL) {
		snprintf(why, wl, "out of memory");
		return -1;
	}
	if (strstr(url, "://") == NULL) {
		snprintf(why, wl, "%.200s is not a URL: give it with its scheme, e.g. "
		    "https://%.200s/", url, url);
		goto out;
	}
	if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || *host == '\0' ||
	    strlen(scheme) >= sizeof t->scheme || strlen(host) >= sizeof t->host) {
		snprintf(why, wl, "%s is not a valid URL", log_q(url));
		goto out;
	}
	snprintf(t->scheme, sizeof t->scheme, "%s", scheme);
	snprintf(t->host, sizeof t->host, "%s", host);
	pc_lower(t->scheme);
	pc_lower(t->host);
	t->port = pc_default_port(t->scheme);
	if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
		t->port = atoi(port);
	if (port != NULL &&
	    atoi(port) != pc_default_port(t->scheme))
		snprintf(t->hostport, sizeof t->hostport, "%s://%s:%s", t->scheme, t->host, port);
	else
		snprintf(t->hostport, sizeof t->hostport, "%s://%s", t->scheme, t->host);
	rc = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return rc;
}

static int
pc_is_loopback(const char *host)
{
	struct proxy_addr a;

	if (strcmp(host, "localhost") == 0 || strcmp(host, "loopback") == 0)
		return 1;
	if (proxy_addr_parse(host, &a) != 0)
		return 0;
	if (a.family == AF_INET)
		return a.a[0] == 127;
	{
		static const unsigned char one[16] = { [15] = 1 };

		return memcmp(a.a, one, 16) == 0;
	}
}

int
proxy_url_parse(const char *url, struct proxy_url *u, char *why, size_t wl)
{
	struct pc_target t;
	struct proxy_addr a;
	CURLU *cu;
	char *path = NULL;

	memset(u, 0, sizeof *u);
	if (pc_parse_url(url, &t, why, wl) != 0)
		return -1;
	snprintf(u->scheme, sizeof u->scheme, "%s", t.scheme);
	snprintf(u->host, sizeof u->host, "%s", t.host);
	u->port = t.port;
	u->ip = proxy_addr_parse(t.host, &a) == 0;
	/* "loopback", a name .NET's bypass list knows, is not one here */
	u->loopback = strcmp(t.host, "localhost") == 0 || (u->ip && pc_is_loopback(t.host));
	snprintf(u->path, sizeof u->path, "/");
	if ((cu = curl_url()) != NULL &&
	    curl_url_set(cu, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
	    curl_url_get(cu, CURLUPART_PATH, &path, 0) == CURLUE_OK && path != NULL)
		snprintf(u->path, sizeof u->path, "%s", path);
	curl_free(path);
	curl_url_cleanup(cu);
	return 0;
}

/* WebProxy.IsLocal: own IP, dotless name, or the text after the first dot
 * equals the machine's domain. Writes why into why. */
static int
pc_is_local(const struct proxy_config *pc, const char *host, char *why, size_t wl)
{
	struct proxy_addr a;
	const char *dot;
	size_t i;

	if (proxy_addr_parse(host, &a) == 0) {
		for (i = 0; i < pc->naddrs; i++) {
			if (proxy_addr_equal(&a, &pc->addrs[i])) {
				snprintf(why, wl, "bypassonlocal: %s is one of this machine's addresses",
				    host);
				return 1;
			}
		}
		return 0;
	}
	dot = strchr(host, '.');
	if (dot == NULL) {
		snprintf(why, wl, "bypassonlocal: %s has no dot, so it is a local name", host);
		return 1;
	}
	if (strlen(dot + 1) == strlen(pc->domain) && strcasecmp(dot + 1, pc->domain) == 0) {
		snprintf(why, wl, "bypassonlocal: %.200s is in this machine's domain %.200s", host,
		    *pc->domain ? pc->domain : "(none)");
		return 1;
	}
	return 0;
}

static const struct pc_env *
pc_env_find(const struct proxy_config *pc, const char *name)
{
	size_t i;

	for (i = 0; i < pc->nenv; i++)
		if (strcmp(pc->env[i].name, name) == 0)
			return &pc->env[i];
	return NULL;
}

/* curl's variable order for a scheme; https/wss read the https variables,
 * http/ws the http ones (never HTTP_PROXY upper case). */
static const struct pc_env *
pc_env_proxy(const struct proxy_config *pc, const char *scheme, char *tried, size_t tl)
{
	const char *names[5];
	const struct pc_env *e;
	size_t n = 0, i, o = 0;

	if (!strcmp(scheme, "https") || !strcmp(scheme, "wss")) {
		names[n++] = "https_proxy", names[n++] = "HTTPS_PROXY";
	} else if (!strcmp(scheme, "http") || !strcmp(scheme, "ws")) {
		names[n++] = "http_proxy";
	} else if (!strcmp(scheme, "ftp")) {
		names[n++] = "ftp_proxy", names[n++] = "FTP_PROXY";
	}
	names[n++] = "all_proxy", names[n++] = "ALL_PROXY";
	for (i = 0; i < n; i++) {
		int w = snprintf(tried + o, o < tl ? tl - o : 0, "%s%s", i ? ", " : "", names[i]);

		if (w > 0)
			o += (size_t)w;
		if ((e = pc_env_find(pc, names[i])) != NULL)
			return e;
	}
	return NULL;
}

static void
pc_direct(struct proxy_decision *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
pc_direct(struct proxy_decision *d, const char *fmt, ...)
{
	va_list ap;

	d->direct = 1;
	d->nproxies = 0;
	va_start(ap, fmt);
	vsnprintf(d->reason, sizeof d->reason, fmt, ap);
	va_end(ap);
}

int
proxy_decide(const struct proxy_config *pc, const char *url, struct proxy_decision *d)
{
	struct pc_target t;
	const struct pc_ep *ep = NULL;
	const struct pc_env *env = NULL;
	char why[512], tried[200] = "";
	size_t i;

	memset(d, 0, sizeof *d);
	if (pc_parse_url(url, &t, why, sizeof why) != 0) {
		pc_direct(d, "%s", why);
		return SHIR_EINVAL;
	}
	switch (pc->kind) {
	case PC_NONE:
	case PC_DISABLED:
	case PC_EXPLICIT_NO:
		pc_direct(d, "%s", pc->kind_reason);
		return 0;
	default:
		break;
	}
	if (pc_is_loopback(t.host)) {
		pc_direct(d, "%s is a loopback destination: always direct (as .NET Framework "
		    "does)", t.host);
		return 0;
	}
	if (pc->pac) {
		pac_decide(&pc->pacp, t.scheme, t.host, t.port, d, NULL);
		return 0;
	}
	if (pc->have_fixed) {
		ep = &pc->fixed;
	} else if (pc->use_env_proxy) {
		env = pc_env_proxy(pc, t.scheme, tried, sizeof tried);
		if (env != NULL && !env->empty)
			ep = &env->ep;
	}
	/* .NET: no proxy address, then local, then the bypass list */
	if (ep == NULL) {
		if (pc->have_fixed || !pc->use_env_proxy)
			pc_direct(d, "no proxy address: the defaultProxy element of %s sets no "
			    "proxyaddress", pc->dn ? pc->dn->file : "the .NET config");
		else if (env != NULL)
			pc_direct(d, "%s is set but empty: no proxy for %s://", env->name, t.scheme);
		else
			pc_direct(d, "no proxy for %s:// in the environment (none of %s is set)",
			    t.scheme, tried);
		return 0;
	}
	if (pc->bypass_on_local && pc_is_local(pc, t.host, why, sizeof why)) {
		pc_direct(d, "%s", why);
		return 0;
	}
	if (pc->dn != NULL) {
		pcre2_match_data *md = NULL;

		for (i = 0; i < pc->dn->nbypass; i++) {
			const struct proxy_bypass *b = &pc->dn->bypass[i];
			int r;

			if (md == NULL && (md = pcre2_match_data_create(1, NULL)) == NULL)
				break;
			r = pcre2_match(b->re, (PCRE2_SPTR)t.hostport, strlen(t.hostport), 0, 0, md,
			    NULL);
			if (r >= 0) {
				pcre2_match_data_free(md);
				pc_direct(d, "bypasslist entry %s (%s line %d) matches %s", b->pattern,
				    pc->dn->file, b->line, t.hostport);
				return 0;
			}
		}
		pcre2_match_data_free(md);
	}
	if (pc->noproxy != NULL) {
		char tok[256];

		if (proxy_noproxy_match(pc->noproxy, t.host, tok, sizeof tok)) {
			pc_direct(d, "%s entry %s matches %s", pc->noproxy_var, tok, t.host);
			return 0;
		}
	}
	d->direct = 0;
	d->nproxies = 1;
	snprintf(d->proxies[0], sizeof d->proxies[0], "%s", ep->url);
	if (env != NULL)
		snprintf(d->reason, sizeof d->reason, "environment variable %s (%.400s)", env->name,
		    pc->kind_reason[0] ? pc->kind_reason : "usesystemdefault=\"true\": the system "
		    "settings, on Linux the environment");
	else
		snprintf(d->reason, sizeof d->reason, "%.500s", pc->fixed_src);
	return 0;
}

int
proxy_decide_nowait(const struct proxy_config *pc, const char *url, struct proxy_decision *d)
{
	struct pc_target t;
	char why[512];

	if (!pc->pac)
		return proxy_decide(pc, url, d) == 0 ? 1 : -1;
	memset(d, 0, sizeof *d);
	if (pc_parse_url(url, &t, why, sizeof why) != 0) {
		pc_direct(d, "%s", why);
		return -1;
	}
	if (pc_is_loopback(t.host))
		return proxy_decide(pc, url, d) == 0 ? 1 : -1;
	return pac_decide_cached(&pc->pacp, t.scheme, t.host, t.port, d);
}

/* For `shirctl proxy explain`: the decision and what PAC saw (ex->source is
 * "" when PAC was not consulted). */
int
proxy_decide_explain(const struct proxy_config *pc, const char *url, struct proxy_decision *d,
    struct pac_explain *ex)
{
	struct pc_target t;
	char why[512];

	memset(ex, 0, sizeof *ex);
	if (!pc->pac || pc_parse_url(url, &t, why, sizeof why) != 0 || pc_is_loopback(t.host))
		return proxy_decide(pc, url, d);
	memset(d, 0, sizeof *d);
	pac_decide(&pc->pacp, t.scheme, t.host, t.port, d, ex);
	return 0;
}

/* --- for tunnels and status -------------------------------------------------- */

void
proxy_config_cred(const struct proxy_config *pc, const char *proxy_url, struct proxy_cred *out)
{
	static const unsigned long masks[] = { CURLAUTH_ANY, CURLAUTH_BASIC, CURLAUTH_DIGEST,
		CURLAUTH_NTLM, CURLAUTH_NEGOTIATE };
	size_t i;

	memset(out, 0, sizeof *out);
	out->auth = masks[pc->auth];
	out->auth_name = pc_auth_names[pc->auth];
	for (i = 0; i < pc->nenv; i++) {
		if (!pc->env[i].empty && strcmp(pc->env[i].ep.url, proxy_url) == 0 &&
		    pc->env[i].ep.user != NULL) {
			out->user = pc->env[i].ep.user;
			out->password = pc->env[i].ep.password;
			return;
		}
	}
	if (pc->user != NULL) {
		out->user = pc->user;
		out->password = pc->password;
		return;
	}
	if (pc->use_default_credentials) {
		/* the service's own identity: Kerberos from its credential cache */
		out->user = "";
		out->password = "";
		out->auth = CURLAUTH_NEGOTIATE;
		out->auth_name = "negotiate (useDefaultCredentials)";
	} else if (out->auth == CURLAUTH_NEGOTIATE) {
		/* auth = negotiate without a user: the same, the service's ticket
		 * (libcurl sends no proxy authentication at all without a user) */
		out->user = "";
		out->password = "";
	}
}

const char *
proxy_config_ca_file(const struct proxy_config *pc)
{
	return pc->ca_file;
}

static const char *
pc_kind_name(enum pc_kind k)
{
	switch (k) {
	case PC_NONE: return "none";
	case PC_DISABLED: return "disabled";
	case PC_EXPLICIT_NO: return "no-proxy";
	case PC_RULES: return "rules";
	case PC_CUSTOM: return "custom";
	}
	return "?";
}

void
proxy_config_describe(const struct proxy_config *pc, cJSON *o)
{
	cJSON *a;
	size_t i;

	cJSON_AddStringToObject(o, "mode", proxy_mode_name(pc->mode));
	cJSON_AddStringToObject(o, "kind", pc_kind_name(pc->kind));
	cJSON_AddStringToObject(o, "source", pc->source);
	a = cJSON_AddArrayToObject(o, "files");
	for (i = 0; i < 2; i++)
		if (pc->files[i] && a)
			cJSON_AddItemToArray(a, cJSON_CreateString(pc->files[i]));
	if (pc->kind_reason[0])
		cJSON_AddStringToObject(o, "summary", pc->kind_reason);
	if (pc->have_fixed) {
		cJSON_AddStringToObject(o, "proxy", pc->fixed.url);
		cJSON_AddStringToObject(o, "proxySource", pc->fixed_src);
	}
	if (pc->kind == PC_RULES) {
		cJSON_AddBoolToObject(o, "bypassOnLocal", pc->bypass_on_local);
		cJSON_AddStringToObject(o, "domain", pc->domain);
		cJSON_AddNumberToObject(o, "ownAddresses", (double)pc->naddrs);
		a = cJSON_AddArrayToObject(o, "bypassList");
		for (i = 0; pc->dn && a && i < pc->dn->nbypass; i++)
			cJSON_AddItemToArray(a, cJSON_CreateString(pc->dn->bypass[i].pattern));
		cJSON_AddBoolToObject(o, "useEnvironment", pc->use_env_proxy);
		if (pc->use_env_proxy) {
			cJSON *e = cJSON_AddObjectToObject(o, "environment");

			for (i = 0; e && i < pc->nenv; i++)
				cJSON_AddStringToObject(e, pc->env[i].name,
				    pc->env[i].empty ? "" : pc->env[i].ep.url);
		}
		if (pc->noproxy)
			cJSON_AddStringToObject(o, pc->noproxy_var, proxy_noproxy_text(pc->noproxy));
		cJSON_AddBoolToObject(o, "useDefaultCredentials", pc->use_default_credentials);
	}
	if (pc->kind == PC_CUSTOM || pc->kind == PC_RULES) {
		if (pc->user)
			cJSON_AddStringToObject(o, "user", pc->user);
		if (pc->password_file)
			cJSON_AddStringToObject(o, "passwordFile", pc->password_file);
		cJSON_AddStringToObject(o, "auth", pc_auth_names[pc->auth]);
	}
	cJSON_AddNumberToObject(o, "connectTimeout", pc->connect_timeout);
	if (pc->ca_file)
		cJSON_AddStringToObject(o, "caFile", pc->ca_file);
	if (pc->pac) {
		cJSON *j = cJSON_AddObjectToObject(o, "pac");

		if (j != NULL) {
			cJSON_AddStringToObject(j, "scriptLocation", pc->pacp.script_url);
			cJSON_AddBoolToObject(j, "autoDetect", pc->pacp.auto_detect);
			if (pc->pacp.ndevolve > 0) {
				cJSON *dv = cJSON_AddArrayToObject(j, "wpadDevolution");
				int k;

				for (k = 0; dv && k < pc->pacp.ndevolve; k++)
					cJSON_AddItemToArray(dv,
					    cJSON_CreateString(pc->pacp.devolve[k]));
			}
			cJSON_AddStringToObject(j, "origin", pc->pacp.origin);
			cJSON_AddNumberToObject(j, "downloadTimeoutMs",
			    (double)pc->pacp.download_timeout_ms);
			cJSON_AddNumberToObject(j, "retryIntervalS", pc->pacp.retry_interval_s);
			cJSON_AddNumberToObject(j, "callTimeoutMs", pc->pacp.call_timeout_ms);
		}
	}
	if (pc->warnings[0])
		cJSON_AddStringToObject(o, "warnings", pc->warnings);
}

int
proxy_config_same(const struct proxy_config *a, const struct proxy_config *b)
{
	cJSON *ja, *jb;
	char *ta = NULL, *tb = NULL;
	size_t la, lb;
	int same;

	if (a == b)
		return 1;
	if (a == NULL || b == NULL)
		return 0;
	/* every decision input is in the description (the bypass list, the
	 * environment, the fixed proxy, the user ...); the password is not */
	ja = cJSON_CreateObject();
	jb = cJSON_CreateObject();
	if (ja != NULL && jb != NULL) {
		proxy_config_describe(a, ja);
		proxy_config_describe(b, jb);
		ta = cJSON_PrintUnformatted(ja);
		tb = cJSON_PrintUnformatted(jb);
	}
	same = ta != NULL && tb != NULL && strcmp(ta, tb) == 0;
	la = a->password ? strlen(a->password) : 0;
	lb = b->password ? strlen(b->password) : 0;
	if (same && ((a->password == NULL) != (b->password == NULL) || la != lb ||
	    (la > 0 && CRYPTO_memcmp(a->password, b->password, la) != 0)))
		same = 0;
	cJSON_Delete(ja);
	cJSON_Delete(jb);
	free(ta);
	free(tb);
	return same;
}
