/* blob_sink: see blob_sink.h. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/log.h"
#include "node/copy/blob_sink.h"
#include "node/copy/upload.h"
#include "proxy/proxy.h"

#define API_VERSION "2021-08-06"
#define ANSWER_MAX 8192		/* bytes of an error answer kept */
#define ID_RAW 57		/* "shir-2-%06u-%010zu-" and the block's MD5 in hex */
#define BLOCK_ID_LEN 76		/* its base64 (57 bytes: no padding) */
#define IDS_PER_PAGE 1024

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
	struct upload_pool pool;
	/* resuming: the ids (raw, sorted) of the uncommitted blocks the service
	 * already holds for this blob, read once before the first block */
	char *have;
	size_t nhave;
	unsigned skipped;
};

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
	size_t n = sz * nm;

	if (a->lp != NULL)
		blob_list_feed(a->lp, p, n);
	upload_keep(a->body, sizeof a->body, &a->n, p, n);
	return n;
}

static size_t
on_header(char *p, size_t sz, size_t nm, void *arg)
{
	struct answer *a = arg;
	size_t n = sz * nm, l;
	const char *v;

	if (upload_header_value(p, n, "x-ms-error-code:", &v, &l))
		snprintf(a->errcode, sizeof a->errcode, "%.*s", (int)l, v);
	return n;
}

/* One PUT with its body; status in *status. query is "comp=..." (decoded
 * value pairs for signing are given in canon, "\nname:value" lines). */
static CURLcode
put_once(struct blob_sink *b, CURL *easy, const char *verb, const char *query, const char *canon,
    const char *body, size_t len, const char *md5_hdr, const char *extra, struct answer *a,
    long *status, char *cerr)
{
	struct curl_slist *h = NULL;
	struct upload_conn conn = { b->t.ca_file, b->t.pc, b->t.resolve, b->loopback };
	struct upload_http r;
	bool put = strcmp(verb, "PUT") == 0;
	char url[4096], date[64], hdr[512], len_s[32];
	time_t now = time(NULL);
	struct tm tm;
	CURLcode rc;

	memset(&r, 0, sizeof r);
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
			snprintf(cerr, CURL_ERROR_SIZE, "cannot sign the request (is the account key base64?)");
			return CURLE_BAD_FUNCTION_ARGUMENT;
		}
		free(sts);
		snprintf(hdr, sizeof hdr, "Authorization: SharedKey %s:%s", b->t.account, sig);
		h = curl_slist_append(h, hdr);
	}
	r.url = url;
	r.method = put ? "PUT" : NULL;
	r.body = put ? body : NULL;
	r.len = len;
	r.headers = h;
	r.on_answer = on_answer;
	r.on_header = on_header;
	r.answer = a;
	r.via = a->via;
	r.vialen = sizeof a->via;
	rc = upload_perform(easy, &conn, &r, status, cerr);
	curl_slist_free_all(h);
	return rc;
}

static const char *
what_of(const char *verb, const char *query)
{
	if (strcmp(verb, "GET") == 0)
		return "Get Block List";
	return strncmp(query, "comp=blocklist", 14) == 0 ? "Put Block List" : "Put Block";
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
	const char *what = what_of(verb, query);

	for (attempt = 1;; attempt++) {
		struct answer a;
		char cerr[CURL_ERROR_SIZE] = "";
		long st = 0;
		CURLcode rc;
		bool again;

		memset(&a, 0, sizeof a);
		a.lp = lp;
		if (lp != NULL)
			blob_list_reset(lp);
		rc = put_once(b, easy, verb, query, canon, body, len, md5_hdr, extra, &a, &st, cerr);
		if (rc == CURLE_OK && st >= 200 && st < 300)
			return 0;
		if (rc == CURLE_BAD_FUNCTION_ARGUMENT)
			return upload_fail(e, "InvalidRequest", false, "%s", cerr);
		again = rc != CURLE_OK ? upload_curl_again(rc) : upload_status_again(st);
		if (!again || attempt >= tries) {
			if (rc != CURLE_OK)
				return upload_curl_error(e, rc, again, what, b->url, attempt, cerr, a.via);
			if (st == 403)
				return upload_fail(e, "AuthenticationFailed", false, "%s of %s: 403 %s: %s", what, b->url,
				    a.errcode[0] ? a.errcode : "Forbidden", b->t.sas ?
				    "the SAS does not allow write to this blob (check its permissions sp=w or "
				    "sp=cw, its expiry and its signature)" :
				    "the storage account refused the shared key signature (check the "
				    "account name and key)");
			if (st == 404)
				return upload_fail(e, "NotFound", false, "%s of %s: 404 %s: %s", what, b->url,
				    a.errcode[0] ? a.errcode : "NotFound",
				    strcmp(a.errcode, "ContainerNotFound") == 0 ? "container not found (create "
				    "it first: the node does not create containers)" : "not found");
			if (st == 409)
				return upload_fail(e, "StoreError", false, "%s of %s: 409 %s: %s", what, b->url,
				    a.errcode[0] ? a.errcode : "Conflict",
				    strstr(a.errcode, "Lease") ? "the blob has an active lease; break it or "
				    "choose another name" : "the blob's state conflicts with the write");
			return upload_fail(e, "StoreError", again, "%s of %s: HTTP %ld %s%s", what, b->url,
			    st, a.errcode, again ? " (after retries)" : "");
		}
		if (upload_backoff("blob.retry", what, st, rc != CURLE_OK ? cerr : a.errcode,
		    attempt, a.via, &wait, b->t.stop, e) != 0)
			return -1;
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
	if (put(b, b->pool.slots[0].easy, "GET", "comp=blocklist&blocklisttype=uncommitted",
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
upload_block(void *arg, struct upload_slot *sl, struct blob_error *e)
{
	struct blob_sink *b = arg;
	char raw[ID_RAW + 1], *id, esc[3 * BLOCK_ID_LEN + 1], q[300], canon[200], md5b[32];
	unsigned char dg[EVP_MAX_MD_SIZE];
	unsigned dl = 0, i, o = 0;

	EVP_Digest(sl->buf, sl->len, dg, &dl, EVP_md5(), NULL);
	block_raw_id(sl->num, sl->len, dg, raw);
	id = b->ids[sl->num / IDS_PER_PAGE] + (sl->num % IDS_PER_PAGE) * (BLOCK_ID_LEN + 1);
	b64((const unsigned char *)raw, ID_RAW, id);
	if (b->nhave > 0 && bsearch(raw, b->have, b->nhave, ID_RAW, raw_cmp) != NULL) {
		pthread_mutex_lock(&b->pool.mu);
		b->skipped++;
		pthread_mutex_unlock(&b->pool.mu);
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
	return put(b, sl->easy, "PUT", q, canon, sl->buf, sl->len, md5b, NULL, NULL, e);
}

/* Hands the filled block to a free uploader (waiting for one: the reader's
 * backpressure) and takes that uploader's spare buffer to fill next. */
static int
send_block(struct blob_sink *b, struct blob_error *e)
{
	unsigned page = b->nblocks / IDS_PER_PAGE;

	if (b->nblocks >= BLOB_MAX_BLOCKS)
		return upload_fail(e, "StoreError", false, "the blob needs more than %d blocks of %zu bytes: "
		    "raise sink.blockSizeMB", BLOB_MAX_BLOCKS, b->t.block_size);
	if (b->ids[page] == NULL &&
	    (b->ids[page] = calloc(IDS_PER_PAGE, BLOCK_ID_LEN + 1)) == NULL)
		return upload_fail(e, "Internal", true, "out of memory");
	if (upload_pool_start(&b->pool, e) != 0 ||
	    upload_pool_hand(&b->pool, &b->block, b->used, b->nblocks, e) != 0)
		return -1;
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
		upload_fail(e, "Internal", true, "out of memory");
		return NULL;
	}
	b->t = *t;
	if (b->t.block_size == 0)
		b->t.block_size = BLOB_BLOCK_DEFAULT;
	while (aul > 0 && au[aul - 1] == '/')
		aul--;
	b->loopback = host_is_loopback(au);
	if (strncmp(au, "https://", 8) != 0 && !(strncmp(au, "http://", 7) == 0 && b->loopback)) {
		upload_fail(e, "InvalidRequest", false, "sink.accountUrl must be https:// (plain http only "
		    "for a loopback emulator): %.200s", au);
		goto bad;
	}
	if (t->key != NULL && (t->account == NULL || *t->account == '\0')) {
		upload_fail(e, "InvalidRequest", false, "a shared key needs the account's name (sink.accountName)");
		goto bad;
	}
	if ((c = upload_uri_encode(t->container, true)) == NULL ||
	    (n = upload_uri_encode(t->blob, true)) == NULL ||
	    asprintf(&u, "%.*s/%s/%s", (int)aul, au, c, n) < 0) {
		u = NULL;
		upload_fail(e, "Internal", true, "out of memory");
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
	if (upload_pool_init(&b->pool, BLOB_IN_FLIGHT, upload_block, b) != 0 ||
	    upload_pool_bufs(&b->pool, b->t.block_size) != 0)
		goto nomem;
	free(c);
	free(n);
	if (t->resume)
		read_uncommitted(b);
	return b;
nomem:
	upload_fail(e, "Internal", true, "out of memory");
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
	if (upload_pool_wait_idle(&b->pool, e) != 0)	/* every block is in before the list */
		return -1;
	list = malloc(sizeof head + (size_t)b->nblocks * (BLOCK_ID_LEN + 17) + 16);
	if (list == NULL)
		return upload_fail(e, "Internal", true, "out of memory");
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
	rc = put(b, b->pool.slots[0].easy, "PUT", "comp=blocklist", "\ncomp:blocklist", list, len, lmd5, x, NULL, e);
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
	return b->pool.wait_ns / 1000000;
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
	unsigned i;

	if (b == NULL)
		return;
	upload_pool_free(&b->pool);
	for (i = 0; i < sizeof b->ids / sizeof b->ids[0]; i++)
		free(b->ids[i]);
	EVP_MD_CTX_free(b->md5);
	free(b->url);
	free(b->path);
	free(b->block);
	free(b->have);
	free(b);
}
