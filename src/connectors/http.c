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

#include "auth_ctx.h"
#include "auth_rows.h"

struct ht {
	struct auth_ctx *c;
	CURL *h;
	char *url;
	char *userpwd;
	/* body handling */
	void *feeder;
	auth_feed_fn feed;
	int feed_rc;		/* 1 enough rows, -1 reader error */
	long status;
	bool proxied;		/* through the node's proxy */
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
	return socket(a->family, a->socktype, a->protocol);
}

/* Once connected, before the request: the address again (direct), or the
 * destination's name (through a proxy, which resolves it). */
static int
ht_prereq(void *arg, char *ip, char *local_ip, int remote_port, int local_port)
{
	struct ht *t = arg;
	char *url = NULL, *host = NULL;
	CURLU *u = NULL;
	int rc = CURL_PREREQFUNC_ABORT;

	(void)local_ip;
	(void)remote_port;
	(void)local_port;
	if (t->c->policy.local_machine_access)
		return CURL_PREREQFUNC_OK;
	if (!t->proxied)
		return auth_check_host(t->c, ip) == 0 ? CURL_PREREQFUNC_OK : CURL_PREREQFUNC_ABORT;
	if (curl_easy_getinfo(t->h, CURLINFO_EFFECTIVE_URL, &url) != CURLE_OK || url == NULL ||
	    (u = curl_url()) == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		auth_fail(t->c, AUTH_E_LOCAL, "the destination of a redirect could not be checked "
		    "against local machine access");
		goto out;
	}
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		host[strlen(host) - 1] = '\0';
		memmove(host, host + 1, strlen(host));
	}
	if (auth_check_host(t->c, host) == 0)
		rc = CURL_PREREQFUNC_OK;
out:
	curl_free(host);
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
	if (t->status >= 400 || t->feed == NULL) {
		size_t k = len < sizeof t->errbody - 1 - t->errlen ? len :
		    sizeof t->errbody - 1 - t->errlen;

		memcpy(t->errbody + t->errlen, p, k);
		t->errlen += k;
		t->errbody[t->errlen] = '\0';
		/* test: the status is known, the body is not needed */
		return t->feed == NULL && t->status < 400 ? 0 : len;
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
	CURLU *u = NULL;
	char *host = NULL;
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
	u = curl_url();
	if (u == NULL || curl_url_set(u, CURLUPART_URL, t->url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		auth_fail(c, AUTH_E_INVALID, "linkedService.properties.url is not a valid URL");
		goto out;
	}
	if (strncmp(t->url, "http://", 7) != 0 && strncmp(t->url, "https://", 8) != 0) {
		auth_fail(c, AUTH_E_INVALID, "linkedService.properties.url must start with http:// or "
		    "https://");
		goto out;
	}
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
	t->h = curl_easy_init();
	if (t->h == NULL) {
		auth_fail(c, AUTH_E_INTERNAL, "out of memory");
		goto out;
	}
	curl_easy_setopt(t->h, CURLOPT_URL, t->url);
	curl_easy_setopt(t->h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(t->h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(t->h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(t->h, CURLOPT_MAXREDIRS, 5L);
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
	if (auth_proxy_setup(c, t->h, t->url, &t->proxied) != 0)
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
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}

/* Performs the transfer and classifies the outcome. */
static int
ht_perform(struct ht *t)
{
	struct auth_ctx *c = t->c;
	CURLcode e = curl_easy_perform(t->h);

	if (t->status == 0)
		curl_easy_getinfo(t->h, CURLINFO_RESPONSE_CODE, &t->status);
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

static const char *const ht_datasets[] = { "Json", NULL };

const struct auth_store conn_http_store = {
	.type = "HttpServer",
	.datasets = ht_datasets,
	.test = ht_test,
	.browse = NULL,
	.schema = ht_rows,
	.preview = ht_rows,
};
