/* upload: see upload.h. */
#include "config.h"

#include <pthread.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/log.h"
#include "node/copy/upload.h"
#include "proxy/proxy.h"

int
upload_fail(struct blob_error *e, const char *code, bool retryable, const char *fmt, ...)
{
	va_list ap;

	snprintf(e->code, sizeof e->code, "%s", code);
	e->retryable = retryable;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	return -1;
}

char *
upload_uri_encode(const char *s, bool keep_slash)
{
	size_t n = strlen(s), i, o = 0;
	char *r = malloc(3 * n + 1);

	if (r == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/'))
			r[o++] = (char)c;
		else
			o += (size_t)sprintf(r + o, "%%%02X", c);
	}
	r[o] = '\0';
	return r;
}

/* ---- one request ---------------------------------------------------------------- */

void
upload_keep(char *body, size_t cap, size_t *n, const char *p, size_t len)
{
	size_t k = len < cap - 1 - *n ? len : cap - 1 - *n;

	memcpy(body + *n, p, k);
	*n += k;
	body[*n] = '\0';
}

bool
upload_header_value(const char *p, size_t n, const char *name, const char **v, size_t *vl)
{
	size_t nl = strlen(name), l;

	if (n <= nl || strncasecmp(p, name, nl) != 0)
		return false;
	p += nl;
	l = n - nl;
	while (l > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		l--;
	}
	while (l > 0 && (p[l - 1] == '\r' || p[l - 1] == '\n' || p[l - 1] == ' '))
		l--;
	*v = p;
	*vl = l;
	return true;
}

CURLcode
upload_perform(CURL *easy, const struct upload_conn *c, const struct upload_http *r, long *status,
    char *cerr)
{
	struct curl_slist *res = c->resolve ? curl_slist_append(NULL, c->resolve) : NULL;
	struct proxy_decision dec;
	CURLcode rc;

	curl_easy_reset(easy);
	curl_easy_setopt(easy, CURLOPT_URL, r->url);
	if (r->method != NULL)
		curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, r->method);
	if (r->body != NULL) {
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, r->body);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->len);
	}
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, r->on_answer);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, r->answer);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, r->on_header);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, r->answer);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT, 15L);
	/* a store that hangs: less than 1 KiB/s for 30 s ends the request */
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, 30L);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, c->loopback ? "http,https" : "https");
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->ca_file)
		curl_easy_setopt(easy, CURLOPT_CAINFO, c->ca_file);
	curl_easy_setopt(easy, CURLOPT_NOPROXY, "");
	/* the job's thread may decide (PAC may fetch): never the loop's */
	if (c->pc != NULL && proxy_decide(c->pc, r->url, &dec) == 0 && !dec.direct && dec.nproxies > 0) {
		proxy_curl_setup(c->pc, easy, dec.proxies[0]);
		if (r->via != NULL)	/* the proxy's URL: it holds no credentials */
			snprintf(r->via, r->vialen, "%s", dec.proxies[0]);
	} else {
		curl_easy_setopt(easy, CURLOPT_PROXY, "");
		if (r->via != NULL)
			snprintf(r->via, r->vialen, "direct");
	}
	if (res != NULL)	/* the address local machine access checked, and no other */
		curl_easy_setopt(easy, CURLOPT_RESOLVE, res);
	rc = curl_easy_perform(easy);
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, status);
	curl_slist_free_all(res);
	return rc;
}

/* ---- retries ---------------------------------------------------------------------- */

bool
upload_curl_again(CURLcode rc)
{
	return rc != CURLE_UNSUPPORTED_PROTOCOL && rc != CURLE_PEER_FAILED_VERIFICATION &&
	    rc != CURLE_SSL_CACERT_BADFILE && rc != CURLE_URL_MALFORMAT;
}

bool
upload_status_again(long st)
{
	return st >= 500 || st == 408 || st == 429;
}

int
upload_curl_error(struct blob_error *e, CURLcode rc, bool again, const char *what, const char *url,
    int attempt, const char *cerr, const char *via)
{
	bool proxied = via != NULL && via[0] != '\0' && strcmp(via, "direct") != 0;

	return upload_fail(e, rc == CURLE_PEER_FAILED_VERIFICATION ? "AuthenticationFailed" :
	    "StoreUnreachable", again, "%s of %s failed after %d attempt%s%s%s: %s", what, url, attempt,
	    attempt == 1 ? "" : "s", proxied ? " through the proxy " : "", proxied ? via : "",
	    cerr[0] ? cerr : curl_easy_strerror(rc));
}

int
upload_backoff(const char *event, const char *what, long st, const char *error, int attempt,
    const char *via, int *wait, atomic_int *stop, struct blob_error *e)
{
	int slept;

	log_warn("copy", "event=%s what=%s status=%ld error=%s attempt=%d wait_ms=%d via=%s", event,
	    log_q(what), st, log_q(error), attempt, *wait, log_q(via != NULL && *via ? via : "direct"));
	for (slept = 0; slept < *wait; slept += 100) {
		if (stop != NULL && atomic_load(stop))
			return upload_fail(e, "Stopped", true, "the job was stopped");
		usleep(100 * 1000);
	}
	*wait = *wait * 2 > 30000 ? 30000 : *wait * 2;
	return 0;
}

/* ---- the pool of part uploaders --------------------------------------------------- */

int
upload_pool_init(struct upload_pool *p, unsigned n, upload_send_fn send, void *arg)
{
	unsigned i;

	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->ready = true;
	p->send = send;
	p->arg = arg;
	p->slots = calloc(n, sizeof *p->slots);
	if (p->slots == NULL)
		return -1;
	p->n = n;
	for (i = 0; i < n; i++) {
		p->slots[i].pool = p;
		if ((p->slots[i].easy = curl_easy_init()) == NULL)
			return -1;
	}
	return 0;
}

int
upload_pool_bufs(struct upload_pool *p, size_t size)
{
	unsigned i;

	for (i = 0; i < p->n; i++)
		if (p->slots[i].buf == NULL && (p->slots[i].buf = malloc(size)) == NULL)
			return -1;
	return 0;
}

/* An uploader: sends the parts handed to its slot while the writer fills
 * another buffer. */
static void *
uploader(void *arg)
{
	struct upload_slot *sl = arg;
	struct upload_pool *p = sl->pool;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		struct blob_error e;
		bool skip;
		int rc;

		while (!sl->busy && !p->quit)
			pthread_cond_wait(&p->cv, &p->mu);
		if (!sl->busy)
			break;
		/* another part failed: the job fails anyway */
		skip = p->failed || (p->skip_on_quit && p->quit);
		pthread_mutex_unlock(&p->mu);
		memset(&e, 0, sizeof e);
		rc = skip ? -1 : p->send(p->arg, sl, &e);
		pthread_mutex_lock(&p->mu);
		if (rc != 0 && !p->failed) {
			p->failed = true;
			p->err = e;
		}
		sl->busy = false;
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int
upload_pool_start(struct upload_pool *p, struct blob_error *e)
{
	unsigned i;

	for (i = 0; i < p->n; i++) {
		if (p->slots[i].started)
			continue;
		if (pthread_create(&p->slots[i].th, NULL, uploader, &p->slots[i]) != 0)
			return upload_fail(e, "Internal", true, "cannot start the uploader threads");
		p->slots[i].started = true;
	}
	return 0;
}

static void
add_ns(struct upload_pool *p, const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	p->wait_ns += (unsigned long long)((t1.tv_sec - t0->tv_sec) * 1000000000LL +
	    (t1.tv_nsec - t0->tv_nsec));
}

int
upload_pool_hand(struct upload_pool *p, char **buf, size_t len, unsigned num, struct blob_error *e)
{
	struct upload_slot *sl = NULL;
	struct timespec t0;
	unsigned i;
	char *t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_mutex_lock(&p->mu);
	for (;;) {
		if (p->failed) {
			*e = p->err;
			pthread_mutex_unlock(&p->mu);
			return -1;
		}
		for (i = 0; i < p->n && sl == NULL; i++)
			if (!p->slots[i].busy)
				sl = &p->slots[i];
		if (sl != NULL)
			break;
		pthread_cond_wait(&p->cv, &p->mu);
	}
	if (!sl->started) {
		if (pthread_create(&sl->th, NULL, uploader, sl) != 0) {
			pthread_mutex_unlock(&p->mu);
			return upload_fail(e, "Internal", true, "cannot start an uploader thread");
		}
		sl->started = true;
	}
	t = sl->buf;		/* the uploader takes the full buffer, the writer fills its old one */
	sl->buf = *buf;
	*buf = t;
	sl->len = len;
	sl->num = num;
	sl->busy = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	add_ns(p, &t0);
	return 0;
}

int
upload_pool_wait_idle(struct upload_pool *p, struct blob_error *e)
{
	unsigned i;
	bool busy;
	int rc = 0;

	pthread_mutex_lock(&p->mu);
	do {
		busy = false;
		for (i = 0; i < p->n; i++)
			busy = busy || p->slots[i].busy;
		if (busy)
			pthread_cond_wait(&p->cv, &p->mu);
	} while (busy);
	if (p->failed) {
		*e = p->err;
		rc = -1;
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

void
upload_pool_stop(struct upload_pool *p)
{
	unsigned i;

	if (!p->ready)
		return;
	pthread_mutex_lock(&p->mu);
	p->quit = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; p->slots != NULL && i < p->n; i++)
		if (p->slots[i].started) {
			pthread_join(p->slots[i].th, NULL);
			p->slots[i].started = false;
		}
}

void
upload_pool_free(struct upload_pool *p)
{
	unsigned i;

	if (!p->ready)
		return;
	upload_pool_stop(p);
	for (i = 0; p->slots != NULL && i < p->n; i++) {
		if (p->slots[i].easy)
			curl_easy_cleanup(p->slots[i].easy);
		free(p->slots[i].buf);
	}
	free(p->slots);
	p->slots = NULL;
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	p->ready = false;
}
