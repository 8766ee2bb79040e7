/* HttpServer connector: REST/JSON sources over libcurl (easy interface: this
 * runs on a worker thread, never on the loop), through the node's proxy
 * settings (auth_proxy_for), Anonymous or Basic authentication. A Json
 * dataset's body is streamed into the incremental JSON reader and the
 * transfer stops once enough rows were read. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "node/authoring/auth_ctx.h"

#define HT_MAX_REDIRECTS 5

struct ht {
	struct auth_ctx *c;
	CURL *h;
	char *url;
	char *userpwd;
	/* body handling */
	void *feeder;
	auth_feed_fn feed;
	int feed_rc;		/* 1 enough rows, -1 reader error */
	size_t body_bytes;	/* read so far; at most the request's memory budget */
	bool whole;		/* a copy job: the whole body, no budget for it */
	long status;
	bool proxied;		/* through the node's proxy */
	size_t pidx;		/* the entry of the proxy list in use */
	char proxy[512];	/* its URL, "" for none */
	char origin[512];	/* scheme://host:port the credentials belong to */
	char errbody[512];
	size_t errlen;
	char errbuf[CURL_ERROR_SIZE];
};

static int
ht_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct ht *t = arg;

	return auth_should_stop(t->c) ? 1 : 0;
}

/* Every socket curl opens (redirects too) is checked against the local
 * machine access rule with the address it is about to connect to, before
 * the connection: neither a redirect nor a DNS answer that changed can
 * reach the node itself, and a refused address fails the same way whether
 * or not something listens there (no port scanner). Through a proxy the
 * socket goes to the admin's proxy; the destination is checked by name in
 * ht_prereq before any request is sent. */
static curl_socket_t
ht_opensocket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct ht *t = arg;
	char ip[INET6_ADDRSTRLEN] = "";

	(void)purpose;
	if (!t->c->policy.local_machine_access && !t->proxied) {
		if (getnameinfo(&a->addr, a->addrlen, ip, sizeof ip, NULL, 0, NI_NUMERICHOST) != 0) {
			auth_fail(t->c, AUTH_E_LOCAL, "a connection to an address that cannot be "
			    "checked against local machine access was refused");
			return CURL_SOCKET_BAD;
		}
		if (auth_check_host(t->c, ip) != 0)
			return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* Once connected, before the request: the address again (belt and braces:
 * ht_opensocket checked it). Through a proxy the destination was checked by
 * name before the transfer (ht_check_url). */
static int
ht_prereq(void *arg, char *ip, char *local_ip, int remote_port, int local_port)
{
	struct ht *t = arg;

	(void)local_ip;
	(void)remote_port;
	(void)local_port;
	if (t->c->policy.local_machine_access || t->proxied)
		return CURL_PREREQFUNC_OK;
	return auth_check_host(t->c, ip) == 0 ? CURL_PREREQFUNC_OK : CURL_PREREQFUNC_ABORT;
}

/* A URL the connector is about to fetch (the linked service's, or a
 * redirect's Location): http or https, and a host that passes the local
 * machine access rule, checked by name before any connection so that
 * neither a redirect nor the proxy can reach the node, whatever listens
 * there. origin (scheme://host:port) is filled for the credential rule. */
static int
ht_check_url(struct auth_ctx *c, const char *url, const char *what, char *origin, size_t olen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;
	int rc = -1;

	if (u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
		auth_fail(c, AUTH_E_INVALID, "%s is not a valid URL", what);
		goto out;
	}
	if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
		auth_fail(c, AUTH_E_INVALID, "%s must be http:// or https://, not %.16s://", what,
		    scheme);
		goto out;
	}
	snprintf(origin, olen, "%s://%s:%s", scheme, host, port);
	{
		/* [::1] comes back with its brackets */
		char *h = host;
		size_t hl = strlen(h);

		if (hl > 2 && h[0] == '[' && h[hl - 1] == ']') {
			h[hl - 1] = '\0';
			h++;
		}
		if (auth_check_host(c, h) != 0)
			goto out;
	}
	rc = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return rc;
}

static size_t
ht_write(char *p, size_t sz, size_t n, void *arg)
{
	struct ht *t = arg;
	size_t len = sz * n;

	if (t->status == 0)
		curl_easy_getinfo(t->h, CURLINFO_RESPONSE_CODE, &t->status);
	if (t->status >= 300 && t->status < 400)
		return len;	/* a redirect's body: ht_perform follows it */
	if (t->status >= 400 || t->feed == NULL) {
		size_t k = len < sizeof t->errbody - 1 - t->errlen ? len :
		    sizeof t->errbody - 1 - t->errlen;

		memcpy(t->errbody + t->errlen, p, k);
		t->errlen += k;
		t->errbody[t->errlen] = '\0';
		/* test: the status is known, the body is not needed */
		return t->feed == NULL && t->status < 400 ? 0 : len;
	}
	t->body_bytes += len;
	if (!t->whole && t->c->policy.mem_limit > 0 && t->body_bytes > t->c->policy.mem_limit) {
		/* an answer that goes on without giving the rows asked for */
		auth_fail_budget(t->c, "the HttpServer answer (read without finding enough rows)");
		return 0;
	}
	t->feed_rc = t->feed(t->feeder, p, len, false);
	return t->feed_rc == 0 ? len : 0;	/* 0 stops the transfer */
}

static void
ht_free(struct ht *t)
{
	if (t->h)
		curl_easy_cleanup(t->h);
	free(t->url);
	if (t->userpwd) {
		explicit_bzero(t->userpwd, strlen(t->userpwd));
		free(t->userpwd);
	}
}

/* Builds the handle for base url + rel. */
static int
ht_setup(struct auth_ctx *c, struct ht *t, const char *rel)
{
	const char *base = auth_prop_str(c, "url", true, NULL);
	const char *auth = auth_prop_str(c, "authenticationType", false, "Anonymous");
	const char *user = auth_prop_str(c, "username", false, NULL);
	size_t l;
	int rc = -1;

	memset(t, 0, sizeof *t);
	t->c = c;
	if (base == NULL || auth == NULL || c->code != AUTH_OK)
		return -1;
	if (strcmp(auth, "Anonymous") != 0 && strcmp(auth, "Basic") != 0)
		return auth_fail(c, AUTH_E_INVALID, "linkedService.properties.authenticationType must "
		    "be Anonymous or Basic");
	if (strcmp(auth, "Basic") == 0 && (user == NULL || !*user))
		return auth_fail(c, AUTH_E_INVALID, "linkedService.properties.username is required for "
		    "Basic authentication");
	l = strlen(base) + (rel ? strlen(rel) : 0) + 2;
	t->url = malloc(l);
	if (t->url == NULL)
		return auth_fail(c, AUTH_E_INTERNAL, "out of memory");
	if (rel && *rel) {
		size_t bl = strlen(base);

		snprintf(t->url, l, "%s%s%s", base, (bl && base[bl - 1] == '/') || rel[0] == '/' ? "" : "/",
		    (bl && base[bl - 1] == '/' && rel[0] == '/') ? rel + 1 : rel);
	} else {
		snprintf(t->url, l, "%s", base);
	}
	if (ht_check_url(c, t->url, "linkedService.properties.url", t->origin,
	    sizeof t->origin) != 0)
		goto out;
	t->h = curl_easy_init();
	if (t->h == NULL) {
		auth_fail(c, AUTH_E_INTERNAL, "out of memory");
		goto out;
	}
	curl_easy_setopt(t->h, CURLOPT_URL, t->url);
	curl_easy_setopt(t->h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(t->h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	/* redirects are followed by ht_perform, each checked before curl
	 * connects anywhere */
	curl_easy_setopt(t->h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(t->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(t->h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(t->h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(t->h, CURLOPT_TIMEOUT_MS, auth_ms_left(c) > 0 ? auth_ms_left(c) : 1L);
	curl_easy_setopt(t->h, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)auth_secs_for(c, c->policy.proxy_connect_timeout ? c->policy.proxy_connect_timeout : 15) * 1000L);
	curl_easy_setopt(t->h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(t->h, CURLOPT_XFERINFOFUNCTION, ht_progress);
	curl_easy_setopt(t->h, CURLOPT_XFERINFODATA, t);
	curl_easy_setopt(t->h, CURLOPT_OPENSOCKETFUNCTION, ht_opensocket);
	curl_easy_setopt(t->h, CURLOPT_OPENSOCKETDATA, t);
	curl_easy_setopt(t->h, CURLOPT_PREREQFUNCTION, ht_prereq);
	curl_easy_setopt(t->h, CURLOPT_PREREQDATA, t);
	curl_easy_setopt(t->h, CURLOPT_WRITEFUNCTION, ht_write);
	curl_easy_setopt(t->h, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(t->h, CURLOPT_ERRORBUFFER, t->errbuf);
	curl_easy_setopt(t->h, CURLOPT_USERAGENT, "shir-authoring/" PACKAGE_VERSION);
	curl_easy_setopt(t->h, CURLOPT_ACCEPT_ENCODING, "");
	if (auth_proxy_setup(c, t->h, t->url, 0, &t->proxied, t->proxy, sizeof t->proxy) != 0)
		goto out;
	if (strcmp(auth, "Basic") == 0) {
		l = strlen(user) + (c->password ? strlen(c->password) : 0) + 2;
		t->userpwd = malloc(l);
		if (t->userpwd == NULL) {
			auth_fail(c, AUTH_E_INTERNAL, "out of memory");
			goto out;
		}
		snprintf(t->userpwd, l, "%s:%s", user, c->password ? c->password : "");
		curl_easy_setopt(t->h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(t->h, CURLOPT_USERPWD, t->userpwd);
	}
	rc = 0;
out:
	return rc;
}

/* Performs the transfer and classifies the outcome. */
/* After a 3xx: whether to follow it, having pointed the handle at the new
 * URL (checked before any connection, with the proxy decided for it, and
 * without the credentials when it leaves their origin). 1 follow, 0 no
 * Location (the 3xx is the answer), -1 refused (after auth_fail). */
static int
ht_redirect(struct ht *t, int hops)
{
	struct auth_ctx *c = t->c;
	char *loc = NULL, origin[512], *nu;

	if (curl_easy_getinfo(t->h, CURLINFO_REDIRECT_URL, &loc) != CURLE_OK || loc == NULL)
		return 0;
	if (hops >= HT_MAX_REDIRECTS)
		return auth_fail(c, AUTH_E_STORE, "%s: more than %d redirects", t->url,
		    HT_MAX_REDIRECTS);
	if (ht_check_url(c, loc, "the redirect's Location", origin, sizeof origin) != 0)
		return -1;
	nu = strdup(loc);
	if (nu == NULL)
		return auth_fail(c, AUTH_E_INTERNAL, "out of memory");
	free(t->url);
	t->url = nu;
	curl_easy_setopt(t->h, CURLOPT_URL, t->url);
	t->pidx = 0;
	if (auth_proxy_setup(c, t->h, t->url, 0, &t->proxied, t->proxy, sizeof t->proxy) != 0)
		return -1;
	if (t->userpwd != NULL && strcmp(origin, t->origin) != 0) {
		/* credentials belong to the origin they were given for */
		curl_easy_setopt(t->h, CURLOPT_USERPWD, NULL);
		curl_easy_setopt(t->h, CURLOPT_HTTPAUTH, (long)CURLAUTH_NONE);
	}
	snprintf(t->origin, sizeof t->origin, "%s", origin);
	curl_easy_setopt(t->h, CURLOPT_TIMEOUT_MS, auth_ms_left(c) > 0 ? auth_ms_left(c) : 1L);
	t->status = 0;
	t->errlen = 0;
	t->errbody[0] = '\0';
	t->errbuf[0] = '\0';
	return 1;
}

static int
ht_perform(struct ht *t)
{
	struct auth_ctx *c = t->c;
	CURLcode e;
	int hops = 0, r;

	for (;;) {
		e = curl_easy_perform(t->h);
		if ((r = auth_proxy_next(c, t->h, t->url, (int)e, &t->pidx, &t->proxied, t->proxy,
		    sizeof t->proxy)) < 0)
			return -1;
		if (r == 1) {
			t->errbuf[0] = '\0';
			continue;
		}
		if (t->status == 0)
			curl_easy_getinfo(t->h, CURLINFO_RESPONSE_CODE, &t->status);
		if (e != CURLE_OK || c->code != AUTH_OK || t->status < 300 || t->status >= 400)
			break;
		if ((r = ht_redirect(t, hops++)) < 0)
			return -1;
		if (r == 0)
			break;
	}
	if (e == CURLE_WRITE_ERROR && (t->feed_rc != 0 || (t->feed == NULL && t->status < 400)))
		e = CURLE_OK;	/* we stopped it: enough rows, or a reader error */
	if (t->feed_rc < 0 || c->code != AUTH_OK)
		return -1;	/* the reader or the prereq check already said why */
	if (e != CURLE_OK) {
		const char *m = t->errbuf[0] ? t->errbuf : curl_easy_strerror(e);

		switch (e) {
		case CURLE_OPERATION_TIMEDOUT:
		case CURLE_ABORTED_BY_CALLBACK:
			if (auth_should_stop(c) || e == CURLE_ABORTED_BY_CALLBACK)
				return auth_fail_timeout(c, "the HTTP request");
			return auth_fail(c, AUTH_E_UNREACHABLE, "%s: %s", t->url, m);
		case CURLE_COULDNT_RESOLVE_HOST: case CURLE_COULDNT_RESOLVE_PROXY:
		case CURLE_COULDNT_CONNECT: case CURLE_SSL_CONNECT_ERROR:
		case CURLE_PEER_FAILED_VERIFICATION: case CURLE_RECV_ERROR: case CURLE_SEND_ERROR:
		case CURLE_GOT_NOTHING:
			return auth_fail(c, AUTH_E_UNREACHABLE, "%s: %s", t->url, m);
		default:
			return auth_fail(c, AUTH_E_STORE, "%s: %s", t->url, m);
		}
	}
	if (t->status == 401 || t->status == 403)
		return auth_fail(c, AUTH_E_AUTH, "%s answered %ld: the credentials were refused",
		    t->url, t->status);
	if (t->status == 404 || t->status == 410)
		return auth_fail(c, AUTH_E_NOTFOUND, "%s answered %ld: no such resource", t->url,
		    t->status);
	if (t->status == 407)
		return auth_fail(c, AUTH_E_UNREACHABLE, "the proxy refused the request (407); check "
		    "the node's proxy settings");
	if (t->status >= 400 && (t->feed != NULL || t->status >= 500))
		return auth_fail(c, AUTH_E_STORE, "%s answered %ld: %s", t->url, t->status,
		    t->errbody);
	return 0;
}

static int
ht_test(struct auth_ctx *c)
{
	struct ht t;
	char v[32];
	int rc = -1;

	if (ht_setup(c, &t, NULL) != 0)
		goto out;
	if (ht_perform(&t) != 0)
		goto out;
	snprintf(v, sizeof v, "%ld", t.status);
	auth_result_store(c, "HTTP", v);
	rc = 0;
out:
	ht_free(&t);
	return rc;
}

static int
ht_pull(void *arg, void *feeder, auth_feed_fn feed)
{
	struct ht *t = arg;

	t->feeder = feeder;
	t->feed = feed;
	if (ht_perform(t) != 0)
		return -1;
	if (t->feed_rc == 0 && feed(feeder, "", 0, true) < 0)
		return -1;
	return 0;
}

static int
ht_rows(struct auth_ctx *c)
{
	const char *rel = auth_ds_str(c, "relativeUrl", false, NULL);
	struct ht t;
	bool lines;
	int rc = -1;

	memset(&t, 0, sizeof t);
	if (rel == NULL && c->code == AUTH_OK)
		rel = auth_ds_str(c, "path", false, "");
	if (rel == NULL || auth_ds_bool(c, "jsonLines", false, &lines) != 0)
		goto out;
	if (ht_setup(c, &t, rel) != 0)
		goto out;
	rc = conn_json_rows(c, lines, ht_pull, &t, t.url);
out:
	ht_free(&t);
	return rc;
}

/* A Json or DelimitedText body in full for a copy job: the same request as
 * a preview's (every address checked before curl connects, redirects
 * followed by ht_redirect with each Location checked, the node's proxy
 * decision, Basic credentials kept to their origin), the body handed to
 * the reader as it arrives: while the sink is busy the write callback
 * waits, curl stops reading and TCP holds the server back. */
static int
ht_stream(struct auth_ctx *c, const struct auth_stream *s)
{
	const char *rel = auth_ds_str(c, "relativeUrl", false, NULL), *cd, *qc;
	struct ht t;
	bool lines, header;
	int rc = -1;

	memset(&t, 0, sizeof t);
	if (rel == NULL && c->code == AUTH_OK)
		rel = auth_ds_str(c, "path", false, "");
	if (rel == NULL || auth_ds_bool(c, "jsonLines", false, &lines) != 0 ||
	    (cd = auth_ds_str(c, "columnDelimiter", false, ",")) == NULL ||
	    (qc = auth_ds_str(c, "quoteChar", false, "\"")) == NULL ||
	    auth_ds_bool(c, "firstRowAsHeader", true, &header) != 0)
		goto out;
	if (strcmp(c->dataset_type, "DelimitedText") == 0 && (strlen(cd) != 1 || strlen(qc) > 1 ||
	    cd[0] == qc[0] || cd[0] == '\n' || cd[0] == '\r')) {
		auth_fail(c, AUTH_E_INVALID, "dataset.columnDelimiter must be one character and "
		    "dataset.quoteChar one character or empty, not the same");
		goto out;
	}
	if (ht_setup(c, &t, rel) != 0)
		goto out;
	t.whole = true;
	if (strcmp(c->dataset_type, "DelimitedText") == 0)
		rc = conn_csv_stream(c, cd[0], qc[0], header, ht_pull, &t, t.url, s);
	else
		rc = conn_json_stream(c, lines, ht_pull, &t, t.url, s);
out:
	ht_free(&t);
	return rc;
}

static const char *const ht_datasets[] = { "Json", NULL };

const struct auth_store conn_http_store = {
	.type = "HttpServer",
	.datasets = ht_datasets,
	.test = ht_test,
	.browse = NULL,
	.schema = ht_rows,
	.preview = ht_rows,
	.stream = ht_stream,
};
