/* blob_sink: see blob_sink.h. */
#include "config.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/log.h"
#include "node/copy/blob_sink.h"
#include "proxy/proxy.h"

#define API_VERSION "2021-08-06"
#define ANSWER_MAX 8192		/* bytes of an error answer kept */
#define BLOCK_ID_LEN 64		/* base64 of 48 bytes */

struct blob_sink {
	struct blob_target t;
	char *url;		/* account_url/container/blob (escaped), no query */
	char *path;		/* its path, for the canonical resource */
	char *block;		/* the block being filled */
	size_t used;
	unsigned nblocks;
	char *list;		/* the block list's XML body, as blocks are sent */
	size_t list_len, list_cap;
	EVP_MD_CTX *md5;
	char md5_b64[32];
	CURL *easy;
	bool loopback;
	/* the uploader thread: one block in flight while the other fills */
	char *spare;
	pthread_t th;
	bool th_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool busy, quit, ufailed;
	const char *pend;
	size_t pend_len;
	unsigned pend_idx;
	struct blob_error uerr;
};

static int
fail(struct blob_error *e, const char *code, bool retryable, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
fail(struct blob_error *e, const char *code, bool retryable, const char *fmt, ...)
{
	va_list ap;

	snprintf(e->code, sizeof e->code, "%s", code);
	e->retryable = retryable;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	return -1;
}

static void
b64(const unsigned char *d, size_t n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, d, (int)n);
}

int
blob_sharedkey_sign(const char *key_b64, const char *sts, char *out, size_t outlen)
{
	unsigned char key[256], mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;
	size_t kl = strlen(key_b64);
	int n;

	if (kl == 0 || kl > 340 || kl % 4 != 0 || outlen < 45)
		return -1;
	n = EVP_DecodeBlock(key, (const unsigned char *)key_b64, (int)kl);
	if (n < 0)
		return -1;
	while (kl > 0 && key_b64[kl - 1] == '=') {	/* DecodeBlock counts padding as zeros */
		n--;
		kl--;
	}
	if (HMAC(EVP_sha256(), key, n, (const unsigned char *)sts, strlen(sts), mac, &maclen) == NULL) {
		OPENSSL_cleanse(key, sizeof key);
		return -1;
	}
	OPENSSL_cleanse(key, sizeof key);
	b64(mac, maclen, out);
	return 0;
}

/* Percent-encodes a blob name's characters (not '/'). */
static char *
escape_name(const char *s)
{
	size_t n = strlen(s), i, o = 0;
	char *r = malloc(3 * n + 1);

	if (r == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (isalnum(c) || strchr("-._~/", c))
			r[o++] = (char)c;
		else
			o += (size_t)sprintf(r + o, "%%%02X", c);
	}
	r[o] = '\0';
	return r;
}

static bool
host_is_loopback(const char *url)
{
	struct proxy_url u;
	char why[300];

	return proxy_url_parse(url, &u, why, sizeof why) == 0 && u.loopback;
}

/* The block id of block i: base64 of 48 bytes fixed by the job and i. */
static void
block_id(const struct blob_sink *b, unsigned i, char *out)
{
	char raw[49];

	snprintf(raw, sizeof raw, "shir-%-36.36s-%06u", b->t.job_id, i);
	b64((const unsigned char *)raw, 48, out);
}

struct answer {
	char body[ANSWER_MAX];
	size_t n;
	char errcode[96];
};

static size_t
on_answer(char *p, size_t sz, size_t nm, void *arg)
{
	struct answer *a = arg;
	size_t n = sz * nm, k = n < sizeof a->body - 1 - a->n ? n : sizeof a->body - 1 - a->n;

	memcpy(a->body + a->n, p, k);
	a->n += k;
	a->body[a->n] = '\0';
	return n;
}

static size_t
on_header(char *p, size_t sz, size_t nm, void *arg)
{
	struct answer *a = arg;
	size_t n = sz * nm;

	if (n > 16 && strncasecmp(p, "x-ms-error-code:", 16) == 0) {
		const char *v = p + 16;
		size_t l = n - 16;

		while (l > 0 && (*v == ' ' || *v == '\t')) {
			v++;
			l--;
		}
		while (l > 0 && (v[l - 1] == '\r' || v[l - 1] == '\n' || v[l - 1] == ' '))
			l--;
		snprintf(a->errcode, sizeof a->errcode, "%.*s", (int)l, v);
	}
	return n;
}

/* One PUT with its body; status in *status. query is "comp=..." (decoded
 * value pairs for signing are given in canon, "\nname:value" lines). */
static CURLcode
put_once(struct blob_sink *b, const char *query, const char *canon, const char *body, size_t len,
    const char *md5_hdr, const char *extra, struct answer *a, long *status, char *cerr)
{
	struct curl_slist *h = NULL, *res = b->t.resolve ? curl_slist_append(NULL, b->t.resolve) : NULL;
	char url[4096], date[64], hdr[512], len_s[32];
	struct proxy_decision dec;
	time_t now = time(NULL);
	struct tm tm;
	CURLcode rc;

	gmtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	snprintf(url, sizeof url, "%s?%s%s%s", b->url, query, b->t.sas ? "&" : "", b->t.sas ? b->t.sas : "");
	snprintf(len_s, sizeof len_s, "%zu", len);
	snprintf(hdr, sizeof hdr, "x-ms-date: %s", date);
	h = curl_slist_append(h, hdr);
	h = curl_slist_append(h, "x-ms-version: " API_VERSION);
	h = curl_slist_append(h, "Content-Type:");
	h = curl_slist_append(h, "Expect:");
	if (md5_hdr != NULL) {
		snprintf(hdr, sizeof hdr, "Content-MD5: %s", md5_hdr);
		h = curl_slist_append(h, hdr);
	}
	if (extra != NULL)
		h = curl_slist_append(h, extra);
	if (b->t.key != NULL) {
		/* the SharedKey string to sign: verb, the standard headers (only
		 * Content-Length and Content-MD5 are set), the x-ms- headers sorted,
		 * the canonical resource */
		char *sts = NULL, sig[64];
		const char *x = extra != NULL ? extra : "";
		char xh[512] = "";

		if (extra != NULL) {	/* "x-ms-blob-content-md5: v" -> "x-ms-blob-content-md5:v\n" */
			const char *c = strchr(x, ':');

			snprintf(xh, sizeof xh, "%.*s:%s\n", (int)(c - x), x, c + 1 + (c[1] == ' '));
		}
		if (asprintf(&sts, "PUT\n\n\n%s\n%s\n\n\n\n\n\n\n\n%sx-ms-date:%s\nx-ms-version:%s\n/%s%s%s",
		    len ? len_s : "", md5_hdr ? md5_hdr : "", xh, date, API_VERSION, b->t.account,
		    b->path, canon) < 0 || blob_sharedkey_sign(b->t.key, sts, sig, sizeof sig) != 0) {
			free(sts);
			curl_slist_free_all(h);
			curl_slist_free_all(res);
			snprintf(cerr, CURL_ERROR_SIZE, "cannot sign the request (is the account key base64?)");
			return CURLE_BAD_FUNCTION_ARGUMENT;
		}
		free(sts);
		snprintf(hdr, sizeof hdr, "Authorization: SharedKey %s:%s", b->t.account, sig);
		h = curl_slist_append(h, hdr);
	}
	curl_easy_reset(b->easy);
	curl_easy_setopt(b->easy, CURLOPT_URL, url);
	curl_easy_setopt(b->easy, CURLOPT_CUSTOMREQUEST, "PUT");
	curl_easy_setopt(b->easy, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(b->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(b->easy, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(b->easy, CURLOPT_WRITEFUNCTION, on_answer);
	curl_easy_setopt(b->easy, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(b->easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(b->easy, CURLOPT_HEADERDATA, a);
	curl_easy_setopt(b->easy, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(b->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(b->easy, CURLOPT_CONNECTTIMEOUT, 15L);
	/* a store that hangs: less than 1 KiB/s for 30 s ends the request */
	curl_easy_setopt(b->easy, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(b->easy, CURLOPT_LOW_SPEED_TIME, 30L);
	curl_easy_setopt(b->easy, CURLOPT_PROTOCOLS_STR, b->loopback ? "http,https" : "https");
	curl_easy_setopt(b->easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(b->easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (b->t.ca_file)
		curl_easy_setopt(b->easy, CURLOPT_CAINFO, b->t.ca_file);
	curl_easy_setopt(b->easy, CURLOPT_NOPROXY, "");
	/* the job's thread may decide (PAC may fetch): never the loop's */
	if (b->t.pc != NULL && proxy_decide(b->t.pc, url, &dec) == 0 && !dec.direct && dec.nproxies > 0)
		proxy_curl_setup(b->t.pc, b->easy, dec.proxies[0]);
	else
		curl_easy_setopt(b->easy, CURLOPT_PROXY, "");
	if (res != NULL)	/* the address local machine access checked, and no other */
		curl_easy_setopt(b->easy, CURLOPT_RESOLVE, res);
	rc = curl_easy_perform(b->easy);
	curl_easy_getinfo(b->easy, CURLINFO_RESPONSE_CODE, status);
	curl_slist_free_all(h);
	curl_slist_free_all(res);
	return rc;
}

static const char *
what_of(const char *query)
{
	return strncmp(query, "comp=blocklist", 14) == 0 ? "Put Block List" : "Put Block";
}

/* A PUT with retries for what another try may cure (5xx, 408, 429, the
 * network), and a precise error for the rest. */
static int
put(struct blob_sink *b, const char *query, const char *canon, const char *body, size_t len,
    const char *md5_hdr, const char *extra, struct blob_error *e)
{
	int attempt, wait = b->t.backoff_ms > 0 ? b->t.backoff_ms : 1000;
	int tries = b->t.retries > 0 ? b->t.retries : 5;

	for (attempt = 1;; attempt++) {
		struct answer a;
		char cerr[CURL_ERROR_SIZE] = "";
		long st = 0;
		CURLcode rc;
		bool again;
		int slept;

		memset(&a, 0, sizeof a);
		rc = put_once(b, query, canon, body, len, md5_hdr, extra, &a, &st, cerr);
		if (rc == CURLE_OK && st >= 200 && st < 300)
			return 0;
		if (rc == CURLE_BAD_FUNCTION_ARGUMENT)
			return fail(e, "InvalidRequest", false, "%s", cerr);
		again = rc != CURLE_OK ? rc != CURLE_UNSUPPORTED_PROTOCOL && rc != CURLE_PEER_FAILED_VERIFICATION &&
		    rc != CURLE_SSL_CACERT_BADFILE && rc != CURLE_URL_MALFORMAT :
		    st >= 500 || st == 408 || st == 429;
		if (!again || attempt >= tries) {
			if (rc != CURLE_OK)
				return fail(e, rc == CURLE_PEER_FAILED_VERIFICATION ? "AuthenticationFailed" :
				    "StoreUnreachable", again, "%s of %s failed after %d attempt%s: %s",
				    what_of(query), b->url, attempt, attempt == 1 ? "" : "s",
				    cerr[0] ? cerr : curl_easy_strerror(rc));
			if (st == 403)
				return fail(e, "AuthenticationFailed", false, "%s of %s: 403 %s: %s", what_of(query),
				    b->url, a.errcode[0] ? a.errcode : "Forbidden", b->t.sas ?
				    "the SAS does not allow write to this blob (check its permissions sp=w or "
				    "sp=cw, its expiry and its signature)" :
				    "the storage account refused the shared key signature (check the "
				    "account name and key)");
			if (st == 404)
				return fail(e, "NotFound", false, "%s of %s: 404 %s: %s", what_of(query), b->url,
				    a.errcode[0] ? a.errcode : "NotFound",
				    strcmp(a.errcode, "ContainerNotFound") == 0 ? "container not found (create "
				    "it first: the node does not create containers)" : "not found");
			if (st == 409)
				return fail(e, "StoreError", false, "%s of %s: 409 %s: %s", what_of(query), b->url,
				    a.errcode[0] ? a.errcode : "Conflict",
				    strstr(a.errcode, "Lease") ? "the blob has an active lease; break it or "
				    "choose another name" : "the blob's state conflicts with the write");
			return fail(e, "StoreError", again, "%s of %s: HTTP %ld %s%s", what_of(query), b->url,
			    st, a.errcode, again ? " (after retries)" : "");
		}
		log_warn("copy", "event=blob.retry what=%s status=%ld error=%s attempt=%d wait_ms=%d",
		    log_q(what_of(query)), st, log_q(rc != CURLE_OK ? cerr : a.errcode), attempt, wait);
		for (slept = 0; slept < wait; slept += 100) {
			if (b->t.stop != NULL && atomic_load(b->t.stop))
				return fail(e, "Stopped", true, "the job was stopped");
			usleep(100 * 1000);
		}
		wait = wait * 2 > 30000 ? 30000 : wait * 2;
	}
}

static int
list_add(struct blob_sink *b, const char *s, size_t n)
{
	if (b->list_len + n + 1 > b->list_cap) {
		size_t cap = b->list_cap ? b->list_cap * 2 : 4096;
		char *p;

		while (cap < b->list_len + n + 1)
			cap *= 2;
		if ((p = realloc(b->list, cap)) == NULL)
			return -1;
		b->list = p;
		b->list_cap = cap;
	}
	memcpy(b->list + b->list_len, s, n);
	b->list_len += n;
	b->list[b->list_len] = '\0';
	return 0;
}

/* Put Block of block idx (the uploader's thread, or the caller's). */
static int
upload_block(struct blob_sink *b, unsigned idx, const char *data, size_t len, struct blob_error *e)
{
	char id[BLOCK_ID_LEN + 1], esc[3 * BLOCK_ID_LEN + 1], q[300], canon[200], md5b[32];
	unsigned char dg[EVP_MAX_MD_SIZE];
	unsigned dl = 0, i, o = 0;

	block_id(b, idx, id);
	for (i = 0; id[i]; i++)
		if (id[i] == '+' || id[i] == '/' || id[i] == '=')
			o += (unsigned)sprintf(esc + o, "%%%02X", (unsigned char)id[i]);
		else
			esc[o++] = id[i];
	esc[o] = '\0';
	EVP_Digest(data, len, dg, &dl, EVP_md5(), NULL);
	b64(dg, dl, md5b);
	snprintf(q, sizeof q, "comp=block&blockid=%s", esc);
	snprintf(canon, sizeof canon, "\nblockid:%s\ncomp:block", id);
	return put(b, q, canon, data, len, md5b, NULL, e);
}

/* The uploader: sends the block handed over while the caller fills the
 * other buffer (two blocks in memory, one in flight). */
static void *
uploader(void *arg)
{
	struct blob_sink *b = arg;

	pthread_mutex_lock(&b->mu);
	for (;;) {
		struct blob_error e;
		int rc;

		while (!b->busy && !b->quit)
			pthread_cond_wait(&b->cv, &b->mu);
		if (!b->busy)
			break;
		pthread_mutex_unlock(&b->mu);
		memset(&e, 0, sizeof e);
		rc = upload_block(b, b->pend_idx, b->pend, b->pend_len, &e);
		pthread_mutex_lock(&b->mu);
		if (rc != 0 && !b->ufailed) {
			b->ufailed = true;
			b->uerr = e;
		}
		b->busy = false;
		pthread_cond_broadcast(&b->cv);
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

/* Waits for the uploader to be idle; -1 with its error if a block failed. */
static int
wait_idle(struct blob_sink *b, struct blob_error *e)
{
	int rc = 0;

	if (!b->th_started)
		return 0;
	pthread_mutex_lock(&b->mu);
	while (b->busy)
		pthread_cond_wait(&b->cv, &b->mu);
	if (b->ufailed) {
		*e = b->uerr;
		rc = -1;
	}
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int
send_block(struct blob_sink *b, struct blob_error *e)
{
	char id[BLOCK_ID_LEN + 1], x[128], *t;

	if (b->nblocks >= BLOB_MAX_BLOCKS)
		return fail(e, "StoreError", false, "the blob needs more than %d blocks of %zu bytes: "
		    "raise sink.blockSizeMB", BLOB_MAX_BLOCKS, b->t.block_size);
	block_id(b, b->nblocks, id);
	snprintf(x, sizeof x, "<Latest>%s</Latest>", id);
	if (list_add(b, x, strlen(x)) != 0)
		return fail(e, "Internal", true, "out of memory");
	if (!b->th_started) {
		if (pthread_create(&b->th, NULL, uploader, b) != 0)
			return fail(e, "Internal", true, "cannot start the uploader thread");
		b->th_started = true;
	}
	if (wait_idle(b, e) != 0)
		return -1;
	pthread_mutex_lock(&b->mu);
	b->pend = b->block;
	b->pend_len = b->used;
	b->pend_idx = b->nblocks;
	b->busy = true;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
	t = b->block;		/* fill the other buffer meanwhile */
	b->block = b->spare;
	b->spare = t;
	b->nblocks++;
	b->used = 0;
	return 0;
}

struct blob_sink *
blob_sink_new(const struct blob_target *t, struct blob_error *e)
{
	struct blob_sink *b = calloc(1, sizeof *b);
	char *c = NULL, *n = NULL, *u = NULL;
	const char *au = t->account_url, *p;
	size_t aul = strlen(au);

	if (b == NULL) {
		fail(e, "Internal", true, "out of memory");
		return NULL;
	}
	b->t = *t;
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	if (b->t.block_size == 0)
		b->t.block_size = BLOB_BLOCK_DEFAULT;
	while (aul > 0 && au[aul - 1] == '/')
		aul--;
	b->loopback = host_is_loopback(au);
	if (strncmp(au, "https://", 8) != 0 && !(strncmp(au, "http://", 7) == 0 && b->loopback)) {
		fail(e, "InvalidRequest", false, "sink.accountUrl must be https:// (plain http only "
		    "for a loopback emulator): %.200s", au);
		goto bad;
	}
	if (t->key != NULL && (t->account == NULL || *t->account == '\0')) {
		fail(e, "InvalidRequest", false, "a shared key needs the account's name (sink.accountName)");
		goto bad;
	}
	if ((c = escape_name(t->container)) == NULL || (n = escape_name(t->blob)) == NULL ||
	    asprintf(&u, "%.*s/%s/%s", (int)aul, au, c, n) < 0) {
		u = NULL;
		fail(e, "Internal", true, "out of memory");
		goto bad;
	}
	b->url = u;
	p = strstr(u, "://") + 3;
	p += strcspn(p, "/");
	b->path = strdup(p);
	b->block = malloc(b->t.block_size);
	b->spare = malloc(b->t.block_size);
	b->md5 = EVP_MD_CTX_new();
	b->easy = curl_easy_init();
	if (b->path == NULL || b->block == NULL || b->spare == NULL || b->md5 == NULL || b->easy == NULL ||
	    EVP_DigestInit_ex(b->md5, EVP_md5(), NULL) != 1 ||
	    list_add(b, "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>", 49) != 0) {
		fail(e, "Internal", true, "out of memory");
		goto bad;
	}
	free(c);
	free(n);
	return b;
bad:
	free(c);
	free(n);
	blob_sink_free(b);
	return NULL;
}

int
blob_sink_write(struct blob_sink *b, const void *p, size_t n, struct blob_error *e)
{
	const char *s = p;

	EVP_DigestUpdate(b->md5, p, n);
	while (n > 0) {
		size_t k = b->t.block_size - b->used < n ? b->t.block_size - b->used : n;

		memcpy(b->block + b->used, s, k);
		b->used += k;
		s += k;
		n -= k;
		if (b->used == b->t.block_size && send_block(b, e) != 0)
			return -1;
	}
	return 0;
}

int
blob_sink_commit(struct blob_sink *b, struct blob_error *e)
{
	unsigned char dg[EVP_MAX_MD_SIZE];
	unsigned dl = 0;
	char x[200], lmd5[32];

	if (b->used > 0 && send_block(b, e) != 0)
		return -1;
	if (wait_idle(b, e) != 0)	/* every block is in before the list */
		return -1;
	if (list_add(b, "</BlockList>", 12) != 0)
		return fail(e, "Internal", true, "out of memory");
	EVP_DigestFinal_ex(b->md5, dg, &dl);
	b64(dg, dl, b->md5_b64);
	EVP_Digest(b->list, b->list_len, dg, &dl, EVP_md5(), NULL);
	b64(dg, dl, lmd5);
	snprintf(x, sizeof x, "x-ms-blob-content-md5: %s", b->md5_b64);
	/* x-ms-blob-content-type is left to the service's default: one x-ms-
	 * header to sign besides date and version keeps the signing simple */
	return put(b, "comp=blocklist", "\ncomp:blocklist", b->list, b->list_len, lmd5, x, e);
}

const char *
blob_sink_url(const struct blob_sink *b)
{
	return b->url;
}

unsigned
blob_sink_blocks(const struct blob_sink *b)
{
	return b->nblocks;
}

const char *
blob_sink_md5(const struct blob_sink *b)
{
	return b->md5_b64;
}

void
blob_sink_free(struct blob_sink *b)
{
	if (b == NULL)
		return;
	if (b->th_started) {
		pthread_mutex_lock(&b->mu);
		b->quit = true;
		pthread_cond_broadcast(&b->cv);
		pthread_mutex_unlock(&b->mu);
		pthread_join(b->th, NULL);
	}
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cv);
	if (b->easy)
		curl_easy_cleanup(b->easy);
	EVP_MD_CTX_free(b->md5);
	free(b->url);
	free(b->path);
	free(b->block);
	free(b->spare);
	free(b->list);
	free(b);
}
