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
#define ID_RAW 57		/* "shir-2-%06u-%010zu-" and the block's MD5 in hex */
#define BLOCK_ID_LEN 76		/* its base64 (57 bytes: no padding) */
#define IDS_PER_PAGE 1024

/* A block in the uploaders' hands: its buffer, number and length. */
struct slot {
	char *buf;
	size_t len;
	unsigned idx;
	bool busy;
};

struct blob_sink {
	struct blob_target t;
	char *url;		/* account_url/container/blob (escaped), no query */
	char *path;		/* its path, for the canonical resource */
	char *block;		/* the block being filled */
	size_t used;
	unsigned nblocks;
	/* the block ids in order, written by the uploaders (fixed pages, so
	 * the writer never moves one an uploader writes to) */
	char *ids[BLOB_MAX_BLOCKS / IDS_PER_PAGE + 1];
	EVP_MD_CTX *md5;
	char md5_b64[32];
	bool loopback;
	/* the uploaders: BLOB_IN_FLIGHT threads, each with its slot and its
	 * curl handle, while the writer fills one more buffer */
	struct slot slot[BLOB_IN_FLIGHT];
	CURL *easy[BLOB_IN_FLIGHT];
	pthread_t th[BLOB_IN_FLIGHT];
	int nth;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool quit, ufailed;
	struct blob_error uerr;
	/* resuming: the ids (raw, sorted) of the uncommitted blocks the service
	 * already holds for this blob, read once before the first block */
	char *have;
	size_t nhave;
	unsigned skipped;
	unsigned long long wait_ns;	/* the writer waiting for a free slot */
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

/* The raw block id of block i: its number, its length and its MD5, so an
 * id the service already holds names these very bytes (the service checked
 * the MD5 when it took the block). */
static void
block_raw_id(unsigned i, size_t len, const unsigned char md5[16], char out[ID_RAW + 1])
{
	int k;

	snprintf(out, ID_RAW + 1, "shir-2-%06u-%010zu-", i, len);
	for (k = 0; k < 16; k++)
		snprintf(out + 25 + 2 * k, 3, "%02x", md5[k]);
}

struct answer {
	char body[ANSWER_MAX];
	size_t n;
	char errcode[96];
	char via[512];		/* the proxy the request went through, or "direct" */
	struct blob_list_parser *lp;	/* Get Block List: the names as they come */
};

static size_t
on_answer(char *p, size_t sz, size_t nm, void *arg)
{
	struct answer *a = arg;
	size_t n = sz * nm, k = n < sizeof a->body - 1 - a->n ? n : sizeof a->body - 1 - a->n;

	if (a->lp != NULL)
		blob_list_feed(a->lp, p, n);
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
put_once(struct blob_sink *b, CURL *easy, const char *verb, const char *query, const char *canon,
    const char *body, size_t len, const char *md5_hdr, const char *extra, struct answer *a,
    long *status, char *cerr)
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
		if (asprintf(&sts, "%s\n\n\n%s\n%s\n\n\n\n\n\n\n\n%sx-ms-date:%s\nx-ms-version:%s\n/%s%s%s",
		    verb, len ? len_s : "", md5_hdr ? md5_hdr : "", xh, date, API_VERSION, b->t.account,
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
	curl_easy_reset(easy);
	curl_easy_setopt(easy, CURLOPT_URL, url);
	if (strcmp(verb, "PUT") == 0) {
		curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, "PUT");
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_answer);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, a);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT, 15L);
	/* a store that hangs: less than 1 KiB/s for 30 s ends the request */
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, 30L);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, b->loopback ? "http,https" : "https");
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (b->t.ca_file)
		curl_easy_setopt(easy, CURLOPT_CAINFO, b->t.ca_file);
	curl_easy_setopt(easy, CURLOPT_NOPROXY, "");
	/* the job's thread may decide (PAC may fetch): never the loop's */
	if (b->t.pc != NULL && proxy_decide(b->t.pc, url, &dec) == 0 && !dec.direct && dec.nproxies > 0) {
		proxy_curl_setup(b->t.pc, easy, dec.proxies[0]);
		snprintf(a->via, sizeof a->via, "%s", dec.proxies[0]);
	} else {
		curl_easy_setopt(easy, CURLOPT_PROXY, "");
		snprintf(a->via, sizeof a->via, "direct");
	}
	if (res != NULL)	/* the address local machine access checked, and no other */
		curl_easy_setopt(easy, CURLOPT_RESOLVE, res);
	rc = curl_easy_perform(easy);
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, status);
	curl_slist_free_all(h);
	curl_slist_free_all(res);
	return rc;
}

static const char *
what_of(const char *verb, const char *query)
{
	if (strcmp(verb, "GET") == 0)
		return "Get Block List";
	return strncmp(query, "comp=blocklist", 14) == 0 ? "Put Block List" : "Put Block";
}

static bool
proxied(const struct answer *a)
{
	return a->via[0] != '\0' && strcmp(a->via, "direct") != 0;
}

/* A PUT with retries for what another try may cure (5xx, 408, 429, the
 * network), and a precise error for the rest. */
static int
put(struct blob_sink *b, CURL *easy, const char *verb, const char *query, const char *canon,
    const char *body, size_t len, const char *md5_hdr, const char *extra,
    struct blob_list_parser *lp, struct blob_error *e)
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
		a.lp = lp;
		if (lp != NULL)
			blob_list_reset(lp);
		rc = put_once(b, easy, verb, query, canon, body, len, md5_hdr, extra, &a, &st, cerr);
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
				    "StoreUnreachable", again, "%s of %s failed after %d attempt%s%s%s: %s",
				    what_of(verb, query), b->url, attempt, attempt == 1 ? "" : "s",
				    proxied(&a) ? " through the proxy " : "", proxied(&a) ? a.via : "",
				    cerr[0] ? cerr : curl_easy_strerror(rc));
			if (st == 403)
				return fail(e, "AuthenticationFailed", false, "%s of %s: 403 %s: %s", what_of(verb, query),
				    b->url, a.errcode[0] ? a.errcode : "Forbidden", b->t.sas ?
				    "the SAS does not allow write to this blob (check its permissions sp=w or "
				    "sp=cw, its expiry and its signature)" :
				    "the storage account refused the shared key signature (check the "
				    "account name and key)");
			if (st == 404)
				return fail(e, "NotFound", false, "%s of %s: 404 %s: %s", what_of(verb, query), b->url,
				    a.errcode[0] ? a.errcode : "NotFound",
				    strcmp(a.errcode, "ContainerNotFound") == 0 ? "container not found (create "
				    "it first: the node does not create containers)" : "not found");
			if (st == 409)
				return fail(e, "StoreError", false, "%s of %s: 409 %s: %s", what_of(verb, query), b->url,
				    a.errcode[0] ? a.errcode : "Conflict",
				    strstr(a.errcode, "Lease") ? "the blob has an active lease; break it or "
				    "choose another name" : "the blob's state conflicts with the write");
			return fail(e, "StoreError", again, "%s of %s: HTTP %ld %s%s", what_of(verb, query), b->url,
			    st, a.errcode, again ? " (after retries)" : "");
		}
		log_warn("copy", "event=blob.retry what=%s status=%ld error=%s attempt=%d wait_ms=%d via=%s",
		    log_q(what_of(verb, query)), st, log_q(rc != CURLE_OK ? cerr : a.errcode), attempt, wait,
		    log_q(a.via));
		for (slept = 0; slept < wait; slept += 100) {
			if (b->t.stop != NULL && atomic_load(b->t.stop))
				return fail(e, "Stopped", true, "the job was stopped");
			usleep(100 * 1000);
		}
		wait = wait * 2 > 30000 ? 30000 : wait * 2;
	}
}

/* ---- the uncommitted block list (Get Block List), read as it streams --------- */

static bool
is_ours(const char *name, size_t n, char raw[ID_RAW + 1])
{
	unsigned char dec[BLOCK_ID_LEN];

	if (n != BLOCK_ID_LEN || EVP_DecodeBlock(dec, (const unsigned char *)name, BLOCK_ID_LEN) !=
	    ID_RAW || memcmp(dec, "shir-2-", 7) != 0)
		return false;
	memcpy(raw, dec, ID_RAW);
	raw[ID_RAW] = '\0';
	return true;
}

void
blob_list_reset(struct blob_list_parser *p)
{
	p->nc = 0;
	p->n = 0;
	p->in_uncommitted = false;
}

/* Handles the complete tags at the start of the carry; returns how many
 * bytes it used (the rest waits for more). */
static size_t
list_scan(struct blob_list_parser *p, bool last)
{
	size_t at = 0;

	while (at < p->nc) {
		char *lt = memchr(p->carry + at, '<', p->nc - at), *gt;
		size_t tl;

		if (lt == NULL)
			return p->nc;
		at = (size_t)(lt - p->carry);
		gt = memchr(lt, '>', p->nc - at);
		if (gt == NULL)
			break;
		tl = (size_t)(gt - lt) + 1;
		if (tl >= 19 && memcmp(lt, "<UncommittedBlocks", 18) == 0 && (lt[18] == '>' || lt[18] == ' '))
			p->in_uncommitted = lt[tl - 2] != '/';
		else if (tl >= 20 && memcmp(lt, "</UncommittedBlocks>", 20) == 0)
			p->in_uncommitted = false;
		else if (tl == 6 && memcmp(lt, "<Name>", 6) == 0) {
			char *v = gt + 1, *end;
			size_t rest = p->nc - (size_t)(v - p->carry);
			char raw[ID_RAW + 1];

			end = rest >= 7 ? memmem(v, rest, "</Name>", 7) : NULL;
			if (end == NULL)
				break;
			if (p->in_uncommitted && p->n < p->max &&
			    is_ours(v, (size_t)(end - v), raw)) {
				if (p->n == p->cap) {
					size_t cap = p->cap ? p->cap * 2 : 64;
					char *ni = realloc(p->ids, cap * ID_RAW);

					if (ni == NULL)
						return p->nc;	/* fewer skips, never a wrong one */
					p->ids = ni;
					p->cap = cap;
				}
				memcpy(p->ids + p->n * ID_RAW, raw, ID_RAW);
				p->n++;
			}
			at = (size_t)(end - p->carry) + 7;
			continue;
		}
		at += tl;
	}
	/* an unfinished tag: kept unless it already fills the carry (then it
	 * is nothing of ours, and is dropped) */
	if (!last && at < p->nc && p->nc - at < sizeof p->carry)
		return at;
	return p->nc;
}

void
blob_list_feed(struct blob_list_parser *p, const char *d, size_t n)
{
	while (n > 0) {
		size_t k = sizeof p->carry - p->nc < n ? sizeof p->carry - p->nc : n, used;

		memcpy(p->carry + p->nc, d, k);
		p->nc += k;
		d += k;
		n -= k;
		used = list_scan(p, false);
		if (used == 0 && p->nc == sizeof p->carry)
			used = 1;	/* a tag longer than the carry: skip its '<' */
		memmove(p->carry, p->carry + used, p->nc - used);
		p->nc -= used;
	}
}

static int
raw_cmp(const void *a, const void *b)
{
	return memcmp(a, b, ID_RAW);
}

size_t
blob_list_count(const struct blob_list_parser *p)
{
	return p->n;
}

void
blob_list_free(struct blob_list_parser *p)
{
	free(p->ids);
	p->ids = NULL;
	p->n = p->cap = 0;
}

/* A new attempt: the ids of the uncommitted blocks the service holds for
 * this blob (left by an attempt that did not commit). A service that does
 * not answer (a SAS without read permission, no such blob yet) means
 * nothing to skip: every block is sent. */
static void
read_uncommitted(struct blob_sink *b)
{
	struct blob_list_parser lp;
	struct blob_error e;

	memset(&lp, 0, sizeof lp);
	memset(&e, 0, sizeof e);
	lp.max = 2 * BLOB_MAX_BLOCKS;
	if (put(b, b->easy[0], "GET", "comp=blocklist&blocklisttype=uncommitted",
	    "\nblocklisttype:uncommitted\ncomp:blocklist", NULL, 0, NULL, NULL, &lp, &e) != 0) {
		log_info("copy", "event=blob.resume_none url=%s why=%s", log_q(b->url), log_q(e.msg));
		blob_list_free(&lp);
		return;
	}
	qsort(lp.ids, lp.n, ID_RAW, raw_cmp);
	b->have = lp.ids;
	b->nhave = lp.n;
	log_info("copy", "event=blob.resume url=%s uncommitted_blocks=%zu", log_q(b->url), lp.n);
}

/* ---- blocks ---------------------------------------------------------------------- */

/* Put Block of the block in slot s (an uploader's thread): skipped when the
 * service already holds a block of this id (the same number, length and
 * MD5: the same bytes). */
static int
upload_block(struct blob_sink *b, int s, struct blob_error *e)
{
	struct slot *sl = &b->slot[s];
	char raw[ID_RAW + 1], *id, esc[3 * BLOCK_ID_LEN + 1], q[300], canon[200], md5b[32];
	unsigned char dg[EVP_MAX_MD_SIZE];
	unsigned dl = 0, i, o = 0;

	EVP_Digest(sl->buf, sl->len, dg, &dl, EVP_md5(), NULL);
	block_raw_id(sl->idx, sl->len, dg, raw);
	id = b->ids[sl->idx / IDS_PER_PAGE] + (sl->idx % IDS_PER_PAGE) * (BLOCK_ID_LEN + 1);
	b64((const unsigned char *)raw, ID_RAW, id);
	if (b->nhave > 0 && bsearch(raw, b->have, b->nhave, ID_RAW, raw_cmp) != NULL) {
		pthread_mutex_lock(&b->mu);
		b->skipped++;
		pthread_mutex_unlock(&b->mu);
		return 0;
	}
	for (i = 0; id[i]; i++)
		if (id[i] == '+' || id[i] == '/' || id[i] == '=')
			o += (unsigned)sprintf(esc + o, "%%%02X", (unsigned char)id[i]);
		else
			esc[o++] = id[i];
	esc[o] = '\0';
	b64(dg, dl, md5b);
	snprintf(q, sizeof q, "comp=block&blockid=%s", esc);
	snprintf(canon, sizeof canon, "\nblockid:%s\ncomp:block", id);
	return put(b, b->easy[s], "PUT", q, canon, sl->buf, sl->len, md5b, NULL, NULL, e);
}

struct uploader_arg {
	struct blob_sink *b;
	int s;
};

/* An uploader: sends the blocks handed to its slot while the writer fills
 * another buffer. */
static void *
uploader(void *arg)
{
	struct uploader_arg *ua = arg;
	struct blob_sink *b = ua->b;
	int s = ua->s;

	free(ua);
	pthread_mutex_lock(&b->mu);
	for (;;) {
		struct blob_error e;
		bool skip;
		int rc;

		while (!b->slot[s].busy && !b->quit)
			pthread_cond_wait(&b->cv, &b->mu);
		if (!b->slot[s].busy)
			break;
		skip = b->ufailed;	/* another block failed: the job fails anyway */
		pthread_mutex_unlock(&b->mu);
		memset(&e, 0, sizeof e);
		rc = skip ? 0 : upload_block(b, s, &e);
		pthread_mutex_lock(&b->mu);
		if (rc != 0 && !b->ufailed) {
			b->ufailed = true;
			b->uerr = e;
		}
		b->slot[s].busy = false;
		pthread_cond_broadcast(&b->cv);
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

static void
add_ns(struct blob_sink *b, const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	b->wait_ns += (unsigned long long)((t1.tv_sec - t0->tv_sec) * 1000000000LL +
	    (t1.tv_nsec - t0->tv_nsec));
}

/* Waits until every block handed over is in; -1 with the error if one failed. */
static int
wait_all(struct blob_sink *b, struct blob_error *e)
{
	int rc = 0, s;
	bool busy = true;

	pthread_mutex_lock(&b->mu);
	while (busy) {
		busy = false;
		for (s = 0; s < b->nth; s++)
			busy |= b->slot[s].busy;
		if (busy)
			pthread_cond_wait(&b->cv, &b->mu);
	}
	if (b->ufailed) {
		*e = b->uerr;
		rc = -1;
	}
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int
start_uploaders(struct blob_sink *b, struct blob_error *e)
{
	for (; b->nth < BLOB_IN_FLIGHT; b->nth++) {
		struct uploader_arg *ua = malloc(sizeof *ua);

		if (ua == NULL)
			return fail(e, "Internal", true, "out of memory");
		ua->b = b;
		ua->s = b->nth;
		if (pthread_create(&b->th[b->nth], NULL, uploader, ua) != 0) {
			free(ua);
			return fail(e, "Internal", true, "cannot start the uploader threads");
		}
	}
	return 0;
}

/* Hands the filled block to a free uploader (waiting for one: the reader's
 * backpressure) and takes that uploader's spare buffer to fill next. */
static int
send_block(struct blob_sink *b, struct blob_error *e)
{
	unsigned page = b->nblocks / IDS_PER_PAGE;
	struct timespec t0;
	char *t;
	int s, free_s = -1;

	if (b->nblocks >= BLOB_MAX_BLOCKS)
		return fail(e, "StoreError", false, "the blob needs more than %d blocks of %zu bytes: "
		    "raise sink.blockSizeMB", BLOB_MAX_BLOCKS, b->t.block_size);
	if (b->ids[page] == NULL &&
	    (b->ids[page] = calloc(IDS_PER_PAGE, BLOCK_ID_LEN + 1)) == NULL)
		return fail(e, "Internal", true, "out of memory");
	if (b->nth < BLOB_IN_FLIGHT && start_uploaders(b, e) != 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_mutex_lock(&b->mu);
	for (;;) {
		if (b->ufailed) {
			*e = b->uerr;
			pthread_mutex_unlock(&b->mu);
			return -1;
		}
		for (s = 0; s < b->nth && free_s < 0; s++)
			if (!b->slot[s].busy)
				free_s = s;
		if (free_s >= 0)
			break;
		pthread_cond_wait(&b->cv, &b->mu);
	}
	t = b->slot[free_s].buf;
	b->slot[free_s].buf = b->block;
	b->slot[free_s].len = b->used;
	b->slot[free_s].idx = b->nblocks;
	b->slot[free_s].busy = true;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
	add_ns(b, &t0);
	b->block = t;
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
	int s;

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
	/* buffers are touched only as they fill: a small blob costs little */
	b->block = malloc(b->t.block_size);
	b->md5 = EVP_MD_CTX_new();
	if (b->path == NULL || b->block == NULL || b->md5 == NULL ||
	    EVP_DigestInit_ex(b->md5, EVP_md5(), NULL) != 1)
		goto nomem;
	for (s = 0; s < BLOB_IN_FLIGHT; s++)
		if ((b->slot[s].buf = malloc(b->t.block_size)) == NULL ||
		    (b->easy[s] = curl_easy_init()) == NULL)
			goto nomem;
	free(c);
	free(n);
	if (t->resume)
		read_uncommitted(b);
	return b;
nomem:
	fail(e, "Internal", true, "out of memory");
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
	static const char head[] = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>";
	unsigned char dg[EVP_MAX_MD_SIZE];
	unsigned dl = 0, i;
	char x[200], lmd5[32], *list;
	size_t len = 0;
	int rc;

	if (b->used > 0 && send_block(b, e) != 0)
		return -1;
	if (wait_all(b, e) != 0)	/* every block is in before the list */
		return -1;
	list = malloc(sizeof head + (size_t)b->nblocks * (BLOCK_ID_LEN + 17) + 16);
	if (list == NULL)
		return fail(e, "Internal", true, "out of memory");
	len += (size_t)sprintf(list, "%s", head);
	for (i = 0; i < b->nblocks; i++)
		len += (size_t)sprintf(list + len, "<Latest>%s</Latest>",
		    b->ids[i / IDS_PER_PAGE] + (i % IDS_PER_PAGE) * (BLOCK_ID_LEN + 1));
	len += (size_t)sprintf(list + len, "</BlockList>");
	EVP_DigestFinal_ex(b->md5, dg, &dl);
	b64(dg, dl, b->md5_b64);
	EVP_Digest(list, len, dg, &dl, EVP_md5(), NULL);
	b64(dg, dl, lmd5);
	snprintf(x, sizeof x, "x-ms-blob-content-md5: %s", b->md5_b64);
	/* x-ms-blob-content-type is left to the service's default: one x-ms-
	 * header to sign besides date and version keeps the signing simple */
	rc = put(b, b->easy[0], "PUT", "comp=blocklist", "\ncomp:blocklist", list, len, lmd5, x, NULL, e);
	free(list);
	return rc;
}

unsigned
blob_sink_skipped(const struct blob_sink *b)
{
	return b->skipped;
}

unsigned long long
blob_sink_wait_ms(const struct blob_sink *b)
{
	return b->wait_ns / 1000000;
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
	int s;
	unsigned i;

	if (b == NULL)
		return;
	if (b->nth > 0) {
		pthread_mutex_lock(&b->mu);
		b->quit = true;
		pthread_cond_broadcast(&b->cv);
		pthread_mutex_unlock(&b->mu);
		for (s = 0; s < b->nth; s++)
			pthread_join(b->th[s], NULL);
	}
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cv);
	for (s = 0; s < BLOB_IN_FLIGHT; s++) {
		if (b->easy[s])
			curl_easy_cleanup(b->easy[s]);
		free(b->slot[s].buf);
	}
	for (i = 0; i < sizeof b->ids / sizeof b->ids[0]; i++)
		free(b->ids[i]);
	EVP_MD_CTX_free(b->md5);
	free(b->url);
	free(b->path);
	free(b->block);
	free(b->have);
	free(b);
}
