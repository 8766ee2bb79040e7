#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "node/authoring/auth_ctx.h"
#include "proxy/pac.h"
#include "proxy/proxy.h"
#include "node/conf.h"
#include "common/log.h"
#include "common/jsonutil.h"

static const struct {
	const char *name;
	int http;
} auth_codes[AUTH_E_MAX] = {
	[AUTH_OK] = { "Succeeded", 200 },
	[AUTH_E_INVALID] = { "InvalidRequest", 400 },
	[AUTH_E_UNSUPPORTED] = { "UnsupportedStoreType", 400 },
	[AUTH_E_CREDENTIAL] = { "CredentialNotFound", 400 },
	[AUTH_E_PATH] = { "PathNotAllowed", 403 },
	[AUTH_E_LOCAL] = { "LocalMachineAccessDenied", 403 },
	[AUTH_E_READONLY] = { "ReadOnlyViolation", 403 },
	[AUTH_E_NOTFOUND] = { "NotFound", 404 },
	[AUTH_E_TOOLARGE] = { "ResultTooLarge", 413 },
	[AUTH_E_AUTH] = { "AuthenticationFailed", 422 },
	[AUTH_E_UNREACHABLE] = { "StoreUnreachable", 422 },
	[AUTH_E_STORE] = { "StoreError", 422 },
	[AUTH_E_BUSY] = { "Busy", 429 },
	[AUTH_E_SELFCONTAINED] = { "NotSupportedInSelfContainedMode", 501 },
	[AUTH_E_SHUTDOWN] = { "ShuttingDown", 503 },
	[AUTH_E_INTERNAL] = { "Internal", 500 },
};

const char *
auth_code_name(enum auth_code c)
{
	return (unsigned)c < AUTH_E_MAX ? auth_codes[c].name : "Internal";
}

int
auth_code_http(enum auth_code c)
{
	return (unsigned)c < AUTH_E_MAX ? auth_codes[c].http : 500;
}

int
auth_fail(struct auth_ctx *c, enum auth_code code, const char *fmt, ...)
{
	va_list ap;
	size_t l;

	if (c->code != AUTH_OK)
		return -1;
	c->code = code;
	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof c->msg, fmt, ap);
	va_end(ap);
	/* store messages often end in a newline */
	l = strlen(c->msg);
	while (l > 0 && (c->msg[l - 1] == '\n' || c->msg[l - 1] == ' '))
		c->msg[--l] = '\0';
	return -1;
}

long
auth_ms_left(const struct auth_ctx *c)
{
	struct timespec now;
	long ms;

	if (atomic_load(&c->stop) || (c->stop_also != NULL && atomic_load(c->stop_also)))
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long)(c->deadline.tv_sec - now.tv_sec) * 1000 +
	    (c->deadline.tv_nsec - now.tv_nsec) / 1000000;
	return ms > 0 ? ms : 0;
}

bool
auth_should_stop(const struct auth_ctx *c)
{
	return auth_ms_left(c) == 0;
}

int
auth_secs_for(const struct auth_ctx *c, int want)
{
	long left = (auth_ms_left(c) + 999) / 1000;

	if (want > 0 && want < left)
		left = want;
	return left < 1 ? 1 : (int)left;
}

int
auth_fail_timeout(struct auth_ctx *c, const char *what)
{
	return auth_fail(c, AUTH_E_UNREACHABLE, "%s timed out after %d s (node.operation_timeout); "
	    "check that the store answers, or raise the timeout", what, c->timeout_s);
}

int
auth_fail_budget(struct auth_ctx *c, const char *what)
{
	return auth_fail(c, AUTH_E_TOOLARGE, "%s needs more than the %zu MiB one request may hold "
	    "(node.request_memory_limit); narrow the query (fewer or shorter values), or ask the "
	    "node's admin to raise the limit", what, c->policy.mem_limit >> 20);
}

static const cJSON *
auth_field(const cJSON *o, const char *name)
{
	return o ? cJSON_GetObjectItemCaseSensitive(o, name) : NULL;
}

static const char *
auth_str(struct auth_ctx *c, const cJSON *o, const char *where, const char *name, bool required,
    const char *def)
{
	const cJSON *v = auth_field(o, name);

	if (v == NULL || cJSON_IsNull(v)) {
		if (required) {
			auth_fail(c, AUTH_E_INVALID, "%s.%s is required", where, name);
			return NULL;
		}
		return def;
	}
	if (!cJSON_IsString(v)) {
		auth_fail(c, AUTH_E_INVALID, "%s.%s must be a string", where, name);
		return NULL;
	}
	if (required && *v->valuestring == '\0') {
		auth_fail(c, AUTH_E_INVALID, "%s.%s must not be empty", where, name);
		return NULL;
	}
	return v->valuestring;
}

const char *
auth_prop_str(struct auth_ctx *c, const char *name, bool required, const char *def)
{
	return auth_str(c, c->props, "linkedService.properties", name, required, def);
}

int
auth_props_only(struct auth_ctx *c, const char *const *allowed)
{
	const cJSON *e;
	const char *const *a;

	cJSON_ArrayForEach(e, c->props) {
		for (a = allowed; *a && strcmp(*a, e->string ? e->string : "") != 0; a++)
			;
		if (*a == NULL) {
			char list[512] = "";

			for (a = allowed; *a; a++)
				snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
				    a == allowed ? "" : ", ", *a);
			return auth_fail(c, AUTH_E_INVALID, "linkedService.properties.%.64s is not a "
			    "setting of a %s store (it takes %s)", e->string ? e->string : "",
			    c->store_type, list);
		}
	}
	return 0;
}

const char *
auth_ds_str(struct auth_ctx *c, const char *name, bool required, const char *def)
{
	return auth_str(c, c->dataset, "dataset", name, required, def);
}

int
auth_prop_int(struct auth_ctx *c, const char *name, int def, int min, int max, int *out)
{
	const cJSON *v = auth_field(c->props, name);
	long long n;

	if (v == NULL || cJSON_IsNull(v)) {
		*out = def;
		return 0;
	}
	if (json_whole(v, min, max, &n) != 0)
		return auth_fail(c, AUTH_E_INVALID,
		    "linkedService.properties.%s must be a whole number from %d to %d", name, min, max);
	*out = (int)n;
	return 0;
}

static int
auth_bool(struct auth_ctx *c, const cJSON *o, const char *where, const char *name, bool def,
    bool *out)
{
	const cJSON *v = auth_field(o, name);

	if (v == NULL || cJSON_IsNull(v)) {
		*out = def;
		return 0;
	}
	if (!cJSON_IsBool(v))
		return auth_fail(c, AUTH_E_INVALID, "%s.%s must be true or false", where, name);
	*out = cJSON_IsTrue(v);
	return 0;
}

int
auth_prop_bool(struct auth_ctx *c, const char *name, bool def, bool *out)
{
	return auth_bool(c, c->props, "linkedService.properties", name, def, out);
}

int
auth_ds_bool(struct auth_ctx *c, const char *name, bool def, bool *out)
{
	return auth_bool(c, c->dataset, "dataset", name, def, out);
}

/* ---- local folder path validation ------------------------------------- */

bool
auth_path_inside(const char *real, const char *dir)
{
	size_t l = strlen(dir);

	while (l > 1 && dir[l - 1] == '/')
		l--;
	if (l == 1 && dir[0] == '/')
		return real[0] == '/';
	return strncmp(real, dir, l) == 0 && (real[l] == '\0' || real[l] == '/');
}

static bool
auth_has_dotdot(const char *p)
{
	const char *s = p;

	while ((s = strstr(s, "..")) != NULL) {
		if ((s == p || s[-1] == '/') && (s[2] == '\0' || s[2] == '/'))
			return true;
		s += 2;
	}
	return false;
}

/* For a path that does not exist: the resolved form of its deepest existing
 * ancestor plus the rest, so the allowed-folder check can run on it (and a
 * missing file outside the allowed folders is refused, not reported missing,
 * which would let anyone probe the node's file system). */
static char *
auth_realpath_missing(const char *path)
{
	char *dir = strdup(path), *slash, *base, *out = NULL;
	size_t l;

	if (dir == NULL)
		return NULL;
	while ((slash = strrchr(dir, '/')) != NULL) {
		*slash = '\0';
		base = realpath(*dir ? dir : "/", NULL);
		if (base != NULL) {
			const char *rest = path + (slash - dir);

			l = strlen(base) + strlen(rest) + 1;
			out = malloc(l);
			if (out != NULL)
				snprintf(out, l, "%s%s", strcmp(base, "/") == 0 ? "" : base, rest);
			free(base);
			break;
		}
	}
	free(dir);
	return out;
}

int
auth_check_local_path(struct auth_ctx *c, const char *what, const char *path, char **out)
{
	char *real = NULL, *folders = NULL, *tok, *save = NULL;
	bool missing = false;
	int rc = -1;

	*out = NULL;
	if (path[0] != '/')
		return auth_fail(c, AUTH_E_INVALID, "%s must be an absolute path", what);
	if (c->policy.path_validation && auth_has_dotdot(path))
		return auth_fail(c, AUTH_E_PATH, "%s %s contains '..': local folder path validation "
		    "refuses paths that climb out of a folder", what, path);
	real = realpath(path, NULL);
	if (real == NULL) {
		if (errno != ENOENT && errno != ENOTDIR)
			return auth_fail(c, AUTH_E_STORE, "cannot resolve %s %s: %s", what, path,
			    strerror(errno));
		if (!c->policy.path_validation || (real = auth_realpath_missing(path)) == NULL)
			return auth_fail(c, AUTH_E_NOTFOUND, "%s %s does not exist", what, path);
		missing = true;
	}
	if (!c->policy.path_validation) {
		*out = real;
		return 0;
	}
	folders = strdup(c->policy.allowed_folders ? c->policy.allowed_folders : "");
	if (folders == NULL) {
		auth_fail(c, AUTH_E_INTERNAL, "out of memory");
		goto out;
	}
	for (tok = strtok_r(folders, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
		char *rdir = realpath(tok, NULL);

		if (rdir != NULL && auth_path_inside(real, rdir)) {
			free(rdir);
			if (missing) {
				auth_fail(c, AUTH_E_NOTFOUND, "%s %s does not exist", what, path);
				goto out;
			}
			*out = real;
			real = NULL;
			rc = 0;
			goto out;
		}
		free(rdir);
	}
	if (c->policy.allowed_folders == NULL || !*c->policy.allowed_folders)
		auth_fail(c, AUTH_E_PATH, "%s %s is not allowed: no folder is allowed yet; the node's "
		    "admin lists folders in security.allowed_folders of shird.conf", what, path);
	else if (strcmp(real, path) != 0 && !missing)
		auth_fail(c, AUTH_E_PATH, "%s %s resolves (through a symbolic link) to a place outside "
		    "the allowed folders (security.allowed_folders)", what, path);
	else
		auth_fail(c, AUTH_E_PATH, "%s %s is outside the allowed folders "
		    "(security.allowed_folders of shird.conf)", what, path);
out:
	free(real);
	free(folders);
	return rc;
}

/* ---- local machine access --------------------------------------------- */

static bool
auth_addr_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127 || s4->sin_addr.s_addr == 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		const unsigned char *b = s6->sin6_addr.s6_addr;

		if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr) || IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr))
			return true;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			return b[12] == 127 || (b[12] | b[13] | b[14] | b[15]) == 0;
	}
	return false;
}

static bool
auth_addr_same(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a == NULL || b == NULL || a->sa_family != b->sa_family)
		return false;
	if (a->sa_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		    ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	if (a->sa_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		    &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
	return false;
}

int
auth_check_host(struct auth_ctx *c, const char *host)
{
	return auth_check_host_addr(c, host, NULL, 0);
}

int
auth_check_host_addr(struct auth_ctx *c, const char *host, char *addr, size_t addrlen)
{
	struct addrinfo hints, *res = NULL, *ai;
	struct ifaddrs *ifs = NULL, *ifa;
	char ip[INET6_ADDRSTRLEN] = "";
	int rc = 0, g;

	if (addr != NULL && addrlen > 0)
		addr[0] = '\0';
	if (c->policy.local_machine_access)
		return 0;
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	g = getaddrinfo(host, NULL, &hints, &res);
	if (g != 0)
		return auth_fail(c, AUTH_E_UNREACHABLE, "cannot resolve the host name %s: %s", host,
		    gai_strerror(g));
	if (getifaddrs(&ifs) != 0)
		ifs = NULL;
	for (ai = res; ai != NULL && rc == 0; ai = ai->ai_next) {
		bool local = auth_addr_loopback(ai->ai_addr);

		for (ifa = ifs; ifa != NULL && !local; ifa = ifa->ifa_next)
			local = auth_addr_same(ai->ai_addr, ifa->ifa_addr);
		if (local) {
			getnameinfo(ai->ai_addr, ai->ai_addrlen, ip, sizeof ip, NULL, 0, NI_NUMERICHOST);
			rc = auth_fail(c, AUTH_E_LOCAL, "the store %s is this node itself (%s) and local "
			    "machine access is off; the node's admin can allow it with "
			    "`shirctl local-machine-access enable` (security.local_machine_access)",
			    host, ip);
		}
	}
	if (rc == 0 && addr != NULL && res != NULL &&
	    getnameinfo(res->ai_addr, res->ai_addrlen, addr, (socklen_t)addrlen, NULL, 0,
		NI_NUMERICHOST) != 0)
		addr[0] = '\0';
	freeifaddrs(ifs);
	freeaddrinfo(res);
	return rc;
}

/* ---- the environment -------------------------------------------------- */

extern char **environ;

void
auth_env_neutralise(void)
{
	static const char *const my[] = { "MYSQL_PWD", "MYSQL_HOST", "MYSQL_TCP_PORT",
	    "MYSQL_UNIX_PORT", NULL };
	char names[512] = "", name[128];
	bool again = true;
	size_t i;

	while (again) {
		again = false;
		for (i = 0; environ != NULL && environ[i] != NULL; i++) {
			const char *e = environ[i];
			size_t l = strcspn(e, "=");
			bool drop = strncmp(e, "PG", 2) == 0;
			const char *const *m;

			for (m = my; !drop && *m; m++)
				drop = strlen(*m) == l && strncmp(e, *m, l) == 0;
			if (!drop || l >= sizeof name)
				continue;
			snprintf(name, sizeof name, "%.*s", (int)l, e);
			if (strlen(names) + l + 2 < sizeof names)
				snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
				    names[0] ? "," : "", name);
			unsetenv(name);
			again = true;	/* environ changed under us */
			break;
		}
	}
	if (names[0])
		log_info("authoring", "event=authoring.environment_cleared names=%s reason=\"store "
		    "connections take their settings from the request only\"", names);
}

/* ---- results ---------------------------------------------------------- */

void
auth_result_store(struct auth_ctx *c, const char *product, const char *version)
{
	cJSON *st = cJSON_AddObjectToObject(c->result, "store");

	if (st == NULL)
		return;
	cJSON_AddStringToObject(st, "product", product);
	cJSON_AddStringToObject(st, "version", version ? version : "");
}

cJSON *
auth_item(cJSON *items, const char *name, const char *type)
{
	cJSON *it = cJSON_CreateObject();

	if (it == NULL)
		return NULL;
	cJSON_AddStringToObject(it, "name", name);
	cJSON_AddStringToObject(it, "type", type);
	cJSON_AddItemToArray(items, it);
	return it;
}

/* ---- proxy seam ------------------------------------------------------- */

int
auth_proxy_setup(struct auth_ctx *c, void *curl_handle, const char *url, size_t idx,
    bool *proxied, char *used, size_t ulen)
{
	struct proxy_decision d;
	CURL *h = curl_handle;

	*proxied = false;
	used[0] = '\0';
	if (c->policy.proxy == NULL) {
		curl_easy_setopt(h, CURLOPT_PROXY, "");
		return idx == 0 ? 0 : 1;
	}
	if (proxy_decide(c->policy.proxy, url, &d) != 0)
		return auth_fail(c, AUTH_E_UNREACHABLE, "no proxy decision for %s: %s", url, d.reason);
	if (d.direct || d.nproxies == 0) {
		curl_easy_setopt(h, CURLOPT_PROXY, "");
		return idx == 0 ? 0 : 1;
	}
	/* a list (PAC's "PROXY a; PROXY b"): the caller moves to the next entry
	 * when a proxy cannot be reached, as the node's own dialer does */
	if (idx >= d.nproxies)
		return 1;
	*proxied = true;
	snprintf(used, ulen, "%s", d.proxies[idx]);
	proxy_curl_setup(c->policy.proxy, h, d.proxies[idx]);
	return 0;
}

int
auth_proxy_next(struct auth_ctx *c, void *curl_handle, const char *url, int curl_code,
    size_t *idx, bool *proxied, char *used, size_t ulen)
{
	long connect_code = 0;
	char failed[512];
	int r;

	if (!*proxied || (curl_code != CURLE_COULDNT_CONNECT &&
	    curl_code != CURLE_COULDNT_RESOLVE_PROXY))
		return 0;
	curl_easy_getinfo((CURL *)curl_handle, CURLINFO_HTTP_CONNECTCODE, &connect_code);
	if (connect_code != 0)
		return 0;	/* the proxy answered: its answer is the error */
	snprintf(failed, sizeof failed, "%s", used);
	r = auth_proxy_setup(c, curl_handle, url, *idx + 1, proxied, used, ulen);
	if (r != 0) {
		if (r == 1) {	/* none left: the last error stands */
			snprintf(used, ulen, "%s", failed);
			*proxied = true;
		}
		return r < 0 ? -1 : 0;
	}
	pac_mark_bad(failed);
	(*idx)++;
	log_info("authoring", "event=http.proxy.failover url=%s failed=%s next=%s", log_q(url),
	    log_q(failed), log_q(used));
	return 1;
}
