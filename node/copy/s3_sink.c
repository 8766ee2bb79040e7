/* s3_sink: see s3_sink.h. */
#include "config.h"

#include <ctype.h>
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
#include "node/copy/s3_sink.h"
#include "node/copy/upload.h"
#include "proxy/proxy.h"

#define ANSWER_MAX 16384	/* bytes of an answer kept */
#define ETAG_MAX 80
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct s3_sink {
	struct s3_target t;
	char *hostport;			/* the Host header's value */
	char *uri;			/* the canonical URI of the object */
	char *url;			/* scheme://hostport + uri */
	char *resolve;			/* the pinned address, or NULL */
	char *cur;			/* the part being filled */
	size_t used;
	unsigned nparts;
	char upload_id[512];
	bool completed;
	char (*etags)[ETAG_MAX];	/* by part number - 1 */
	size_t etag_cap;
	char md5_b64[32], etag[ETAG_MAX];	/* md5_b64: a PutObject's body */
	CURL *easy;			/* the job thread's requests */
	bool loopback;
	struct upload_pool pool;	/* the uploaders, t.parallel of them */
};

static void
hex(const unsigned char *d, size_t n, char *out)
{
	static const char x[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = x[d[i] >> 4];
		out[2 * i + 1] = x[d[i] & 15];
	}
	out[2 * n] = '\0';
}

static void
sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char dg[EVP_MAX_MD_SIZE];
	unsigned dl = 0;

	EVP_Digest(p, n, dg, &dl, EVP_sha256(), NULL);
	hex(dg, dl, out);
}

/* ---- SigV4 ------------------------------------------------------------------------ */

static int
hmac(const void *key, size_t kl, const char *msg, unsigned char out[32])
{
	unsigned ol = 0;

	return HMAC(EVP_sha256(), key, (int)kl, (const unsigned char *)msg, strlen(msg), out, &ol) ==
	    NULL || ol != 32 ? -1 : 0;
}

int
s3_sigv4(const struct s3_sigv4_in *in, char *auth, size_t authlen)
{
	char *creq = NULL, *sts = NULL, *k0 = NULL, chash[65], date[9], sig[65];
	unsigned char kd[32], kr[32], ks[32], kk[32], mac[32];
	int rc = -1, n;

	if (strlen(in->amz_date) != 16)
		return -1;
	snprintf(date, sizeof date, "%.8s", in->amz_date);
	if (asprintf(&creq, "%s\n%s\n%s\n%s\n%s\n%s", in->method, in->uri, in->query, in->headers,
	    in->signed_headers, in->payload_sha256) < 0) {
		creq = NULL;
		goto out;
	}
	sha256_hex(creq, strlen(creq), chash);
	if (asprintf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", in->amz_date, date,
	    in->region, in->service, chash) < 0) {
		sts = NULL;
		goto out;
	}
	if (asprintf(&k0, "AWS4%s", in->secret) < 0) {
		k0 = NULL;
		goto out;
	}
	if (hmac(k0, strlen(k0), date, kd) != 0 || hmac(kd, 32, in->region, kr) != 0 ||
	    hmac(kr, 32, in->service, ks) != 0 || hmac(ks, 32, "aws4_request", kk) != 0 ||
	    hmac(kk, 32, sts, mac) != 0)
		goto out;
	hex(mac, 32, sig);
	n = snprintf(auth, authlen, "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, "
	    "SignedHeaders=%s, Signature=%s", in->access_key_id, date, in->region, in->service,
	    in->signed_headers, sig);
	rc = n > 0 && (size_t)n < authlen ? 0 : -1;
out:
	if (k0 != NULL) {
		OPENSSL_cleanse(k0, strlen(k0));
		free(k0);
	}
	OPENSSL_cleanse(kd, sizeof kd);
	OPENSSL_cleanse(kr, sizeof kr);
	OPENSSL_cleanse(ks, sizeof ks);
	OPENSSL_cleanse(kk, sizeof kk);
	free(creq);
	free(sts);
	return rc;
}

char *
s3_uri_encode(const char *s, bool keep_slash)
{
	return upload_uri_encode(s, keep_slash);
}

int
s3_xml_text(const char *xml, size_t len, const char *tag, char *out, size_t outlen)
{
	char open[64], close[64];
	const char *b, *e, *p;
	size_t o = 0;

	if (outlen == 0 || snprintf(open, sizeof open, "<%s>", tag) >= (int)sizeof open)
		return -1;
	snprintf(close, sizeof close, "</%s>", tag);
	b = memmem(xml, len, open, strlen(open));
	if (b == NULL)
		return -1;
	b += strlen(open);
	e = memmem(b, len - (size_t)(b - xml), close, strlen(close));
	if (e == NULL)
		return -1;
	for (p = b; p < e; o++) {
		static const struct { const char *ent; char c; } ents[] = {
			{ "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' }, { "&apos;", '\'' },
			{ "&#34;", '"' }, { "&#39;", '\'' },
		};
		size_t k;
		char c = *p;
		size_t adv = 1;

		if (o + 1 >= outlen)
			return -1;
		if (c == '&')
			for (k = 0; k < sizeof ents / sizeof ents[0]; k++) {
				size_t el = strlen(ents[k].ent);

				if ((size_t)(e - p) >= el && memcmp(p, ents[k].ent, el) == 0) {
					c = ents[k].c;
					adv = el;
					break;
				}
			}
		out[o] = c;
		p += adv;
	}
	out[o] = '\0';
	return 0;
}

/* ---- one request ---------------------------------------------------------------- */

struct answer {
	char body[ANSWER_MAX];
	size_t n;
	char etag[ETAG_MAX];
	char via[512];		/* the proxy the request went through, or "direct" */
};

static size_t
on_answer(char *p, size_t sz, size_t nm, void *arg)
{
	struct answer *a = arg;
	size_t n = sz * nm;

	upload_keep(a->body, sizeof a->body, &a->n, p, n);
	return n;
}

static size_t
on_header(char *p, size_t sz, size_t nm, void *arg)
{
	struct answer *a = arg;
	size_t n = sz * nm, l;
	const char *v;

	if (upload_header_value(p, n, "etag:", &v, &l) && l < sizeof a->etag)
		snprintf(a->etag, sizeof a->etag, "%.*s", (int)l, v);
	return n;
}

struct s3_req {
	const char *what;		/* "UploadPart" ... for messages */
	const char *method;
	const char *query;		/* canonical: sorted, encoded; "" for none */
	const char *body;
	size_t len;
	const char *md5;		/* Content-MD5 (base64) or NULL */
};

static CURLcode
req_once(struct s3_sink *s, CURL *easy, const struct s3_req *q, struct answer *a, long *status,
    char *cerr)
{
	struct curl_slist *h = NULL;
	struct upload_conn conn = { s->t.ca_file, s->t.pc, s->resolve, s->loopback };
	struct upload_http r;
	/* bounded: a key of 1,024 bytes escaped, a session token of a few KiB */
	char url[8192], date[20], payload[65], canon[8192], hdr[8300], auth[512];
	struct s3_sigv4_in in;
	time_t now = time(NULL);
	struct tm tm;
	CURLcode rc;
	int n;

	gmtime_r(&now, &tm);
	strftime(date, sizeof date, "%Y%m%dT%H%M%SZ", &tm);
	/* A body sent with its Content-MD5 is bound to the signature by that
	 * (signed) header and checked by the service: its SHA-256 is not computed
	 * again (UNSIGNED-PAYLOAD, as the SDKs send over https). Others are hashed. */
	if (q->md5 != NULL)
		snprintf(payload, sizeof payload, "UNSIGNED-PAYLOAD");
	else if (q->len > 0)
		sha256_hex(q->body, q->len, payload);
	else
		snprintf(payload, sizeof payload, "%s", EMPTY_SHA256);
	/* the canonical headers, sorted by name */
	n = snprintf(canon, sizeof canon, "%s%s%shost:%s\nx-amz-content-sha256:%s\nx-amz-date:%s\n%s%s%s",
	    q->md5 ? "content-md5:" : "", q->md5 ? q->md5 : "", q->md5 ? "\n" : "", s->hostport, payload,
	    date, s->t.session_token ? "x-amz-security-token:" : "",
	    s->t.session_token ? s->t.session_token : "", s->t.session_token ? "\n" : "");
	if (n < 0 || (size_t)n >= sizeof canon) {
		snprintf(cerr, CURL_ERROR_SIZE, "the session token is too long");
		return CURLE_BAD_FUNCTION_ARGUMENT;
	}
	memset(&in, 0, sizeof in);
	in.method = q->method;
	in.uri = s->uri;
	in.query = q->query;
	in.headers = canon;
	in.signed_headers = q->md5 ? (s->t.session_token ?
	    "content-md5;host;x-amz-content-sha256;x-amz-date;x-amz-security-token" :
	    "content-md5;host;x-amz-content-sha256;x-amz-date") : (s->t.session_token ?
	    "host;x-amz-content-sha256;x-amz-date;x-amz-security-token" :
	    "host;x-amz-content-sha256;x-amz-date");
	in.payload_sha256 = payload;
	in.access_key_id = s->t.access_key_id;
	in.secret = s->t.secret;
	in.region = s->t.region;
	in.service = "s3";
	in.amz_date = date;
	if (s3_sigv4(&in, auth, sizeof auth) != 0) {
		snprintf(cerr, CURL_ERROR_SIZE, "cannot sign the request (is the access key id too long?)");
		return CURLE_BAD_FUNCTION_ARGUMENT;
	}
	snprintf(url, sizeof url, "%s%s%s", s->url, q->query[0] ? "?" : "", q->query);
	snprintf(hdr, sizeof hdr, "Authorization: %s", auth);
	h = curl_slist_append(h, hdr);
	snprintf(hdr, sizeof hdr, "x-amz-date: %s", date);
	h = curl_slist_append(h, hdr);
	snprintf(hdr, sizeof hdr, "x-amz-content-sha256: %s", payload);
	h = curl_slist_append(h, hdr);
	if (q->md5 != NULL) {
		snprintf(hdr, sizeof hdr, "Content-MD5: %s", q->md5);
		h = curl_slist_append(h, hdr);
	}
	if (s->t.session_token != NULL) {
		snprintf(hdr, sizeof hdr, "x-amz-security-token: %s", s->t.session_token);
		h = curl_slist_append(h, hdr);
	}
	h = curl_slist_append(h, "Content-Type:");
	h = curl_slist_append(h, "Expect:");
	memset(&r, 0, sizeof r);
	r.url = url;
	r.method = q->method;
	if (strcmp(q->method, "DELETE") != 0) {
		r.body = q->body ? q->body : "";
		r.len = q->len;
	}
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

/* The service's answer as a job error: 403 and 404 named precisely. */
static int
answer_error(struct s3_sink *s, const struct s3_req *q, long st, const struct answer *a, bool again,
    int attempt, struct blob_error *e)
{
	char code[96] = "", msg[300] = "";

	s3_xml_text(a->body, a->n, "Code", code, sizeof code);
	s3_xml_text(a->body, a->n, "Message", msg, sizeof msg);
	if (st == 403)
		return upload_fail(e, "AuthenticationFailed", false, "%s of %s: 403 %s: %s", q->what, s->url,
		    code[0] ? code : "Forbidden",
		    strcmp(code, "SignatureDoesNotMatch") == 0 ? "the storage refused the signature: "
		    "the secret access key does not belong to the access key id (check "
		    "sink.secretAccessKey and sink.region)" :
		    strcmp(code, "InvalidAccessKeyId") == 0 ? "the access key id is not known to the "
		    "storage (check sink.accessKeyId)" :
		    strcmp(code, "RequestTimeTooSkewed") == 0 ? "this machine's clock is too far from "
		    "the storage's" :
		    "access denied: the key may not write this object (check the bucket's and the "
		    "key's policy)");
	if (st == 404)
		return upload_fail(e, "NotFound", strcmp(code, "NoSuchUpload") == 0, "%s of %s: 404 %s: %s",
		    q->what, s->url, code[0] ? code : "NotFound",
		    strcmp(code, "NoSuchBucket") == 0 ? "bucket not found (create it first: the node "
		    "does not create buckets)" :
		    strcmp(code, "NoSuchUpload") == 0 ? "the multipart upload is gone (aborted or "
		    "expired)" : msg[0] ? msg : "not found");
	return upload_fail(e, "StoreError", again, "%s of %s: HTTP %ld %s%s%s%s", q->what, s->url, st, code,
	    msg[0] ? ": " : "", msg, again ? attempt > 1 ? " (after retries)" : "" : "");
}

/* A request with retries for what another try may cure (5xx, 408, 429, the
 * network), and a precise error for the rest. tries 0: the target's. */
static int
req(struct s3_sink *s, CURL *easy, const struct s3_req *q, int tries, struct answer *a,
    struct blob_error *e)
{
	int attempt, wait = s->t.backoff_ms > 0 ? s->t.backoff_ms : 1000;

	if (tries <= 0)
		tries = s->t.retries > 0 ? s->t.retries : 5;
	for (attempt = 1;; attempt++) {
		char cerr[CURL_ERROR_SIZE] = "", code[96] = "";
		long st = 0;
		CURLcode rc;
		bool again, in_body;

		memset(a, 0, sizeof *a);
		rc = req_once(s, easy, q, a, &st, cerr);
		/* CompleteMultipartUpload may answer 200 with an <Error> body */
		in_body = rc == CURLE_OK && st == 200 && memmem(a->body, a->n, "<Error>", 7) != NULL;
		if (rc == CURLE_OK && st >= 200 && st < 300 && !in_body)
			return 0;
		if (rc == CURLE_BAD_FUNCTION_ARGUMENT)
			return upload_fail(e, "InvalidRequest", false, "%s", cerr);
		if (in_body)
			s3_xml_text(a->body, a->n, "Code", code, sizeof code);
		again = rc != CURLE_OK ? upload_curl_again(rc) :
		    in_body ? strcmp(code, "InternalError") == 0 || strcmp(code, "SlowDown") == 0 :
		    upload_status_again(st);
		if (!again || attempt >= tries) {
			if (rc != CURLE_OK)
				return upload_curl_error(e, rc, again, q->what, s->url, attempt, cerr, a->via);
			return answer_error(s, q, st, a, again, attempt, e);
		}
		if (upload_backoff("s3.retry", q->what, st, rc != CURLE_OK ? cerr : code[0] ? code : "-",
		    attempt, a->via, &wait, s->t.stop, e) != 0)
			return -1;
	}
}

static void
md5_b64(const void *p, size_t n, char out[32])
{
	unsigned char dg[EVP_MAX_MD_SIZE];
	unsigned dl = 0;

	EVP_Digest(p, n, dg, &dl, EVP_md5(), NULL);
	EVP_EncodeBlock((unsigned char *)out, dg, (int)dl);
}

static void
strip_quotes(const char *in, char *out, size_t outlen)
{
	size_t l = strlen(in);

	if (l >= 2 && in[0] == '"' && in[l - 1] == '"')
		snprintf(out, outlen, "%.*s", (int)(l - 2), in + 1);
	else
		snprintf(out, outlen, "%s", in);
}

/* ---- multipart ------------------------------------------------------------------- */

static int
upload_part(struct s3_sink *s, CURL *easy, unsigned num, const char *data, size_t len,
    struct blob_error *e)
{
	char query[700], md5[32], *id = s3_uri_encode(s->upload_id, false);
	struct answer *a = malloc(sizeof *a);
	struct s3_req q = { "UploadPart", "PUT", query, data, len, md5 };
	int rc;

	if (id == NULL || a == NULL) {
		free(id);
		free(a);
		return upload_fail(e, "Internal", true, "out of memory");
	}
	md5_b64(data, len, md5);
	snprintf(query, sizeof query, "partNumber=%u&uploadId=%s", num, id);
	free(id);
	rc = req(s, easy, &q, 0, a, e);
	if (rc == 0 && a->etag[0] == '\0')
		rc = upload_fail(e, "StoreError", false, "UploadPart of %s: the answer has no ETag", s->url);
	if (rc == 0) {
		pthread_mutex_lock(&s->pool.mu);
		snprintf(s->etags[num - 1], ETAG_MAX, "%s", a->etag);
		pthread_mutex_unlock(&s->pool.mu);
	}
	free(a);
	return rc;
}

/* An uploader's part (its thread). */
static int
send_slot(void *arg, struct upload_slot *sl, struct blob_error *e)
{
	return upload_part(arg, sl->easy, sl->num, sl->buf, sl->len, e);
}

static int
create_upload(struct s3_sink *s, struct blob_error *e)
{
	struct answer *a = malloc(sizeof *a);
	struct s3_req q = { "CreateMultipartUpload", "POST", "uploads=", NULL, 0, NULL };
	int rc;

	if (a == NULL)
		return upload_fail(e, "Internal", true, "out of memory");
	rc = req(s, s->easy, &q, 0, a, e);
	if (rc == 0 && s3_xml_text(a->body, a->n, "UploadId", s->upload_id, sizeof s->upload_id) != 0)
		rc = upload_fail(e, "StoreError", false, "CreateMultipartUpload of %s: no UploadId in the answer",
		    s->url);
	if (rc == 0)
		log_info("copy", "event=s3.upload_created url=%s upload=%s", log_q(s->url),
		    log_q(s->upload_id));
	free(a);
	return rc;
}

/* Hands the full buffer to an idle uploader (waiting for one: backpressure). */
static int
send_part(struct s3_sink *s, struct blob_error *e)
{
	if (s->nparts >= S3_MAX_PARTS)
		return upload_fail(e, "StoreError", false, "the object needs more than %d parts of %zu bytes: "
		    "raise sink.partSizeMB", S3_MAX_PARTS, s->t.part_size);
	if (s->upload_id[0] == '\0' && create_upload(s, e) != 0)
		return -1;
	if (s->nparts + 1 > s->etag_cap) {
		size_t cap = s->etag_cap ? s->etag_cap * 2 : 64;
		void *p;

		if (cap > S3_MAX_PARTS)
			cap = S3_MAX_PARTS;
		pthread_mutex_lock(&s->pool.mu);	/* uploaders write ETags into it */
		p = realloc(s->etags, cap * ETAG_MAX);
		if (p != NULL) {
			s->etags = p;
			s->etag_cap = cap;
		}
		pthread_mutex_unlock(&s->pool.mu);
		if (p == NULL)
			return upload_fail(e, "Internal", true, "out of memory");
	}
	pthread_mutex_lock(&s->pool.mu);
	s->etags[s->nparts][0] = '\0';
	pthread_mutex_unlock(&s->pool.mu);
	if (upload_pool_hand(&s->pool, &s->cur, s->used, s->nparts + 1, e) != 0)
		return -1;
	s->nparts++;
	s->used = 0;
	return 0;
}

static int
complete_upload(struct s3_sink *s, struct blob_error *e)
{
	size_t cap = (size_t)s->nparts * (ETAG_MAX + 64) + 128, o = 0;
	char *x = malloc(cap), query[700], etag[ETAG_MAX * 2], *id;
	struct answer *a = malloc(sizeof *a);
	struct s3_req q = { "CompleteMultipartUpload", "POST", query, NULL, 0, NULL };
	unsigned i;
	int rc;

	id = s3_uri_encode(s->upload_id, false);
	if (x == NULL || a == NULL || id == NULL) {
		free(x);
		free(a);
		free(id);
		return upload_fail(e, "Internal", true, "out of memory");
	}
	o += (size_t)snprintf(x + o, cap - o, "<CompleteMultipartUpload>");
	for (i = 0; i < s->nparts; i++)
		o += (size_t)snprintf(x + o, cap - o, "<Part><PartNumber>%u</PartNumber><ETag>%s</ETag></Part>",
		    i + 1, s->etags[i]);
	o += (size_t)snprintf(x + o, cap - o, "</CompleteMultipartUpload>");
	snprintf(query, sizeof query, "uploadId=%s", id);
	free(id);
	q.body = x;
	q.len = o;
	rc = req(s, s->easy, &q, 0, a, e);
	if (rc == 0) {
		if (s3_xml_text(a->body, a->n, "ETag", etag, sizeof etag) == 0)
			strip_quotes(etag, s->etag, sizeof s->etag);
		s->completed = true;
	}
	free(x);
	free(a);
	return rc;
}

static void
abort_upload(struct s3_sink *s)
{
	char query[700], *id = s3_uri_encode(s->upload_id, false);
	struct answer *a = malloc(sizeof *a);
	struct s3_req q = { "AbortMultipartUpload", "DELETE", query, NULL, 0, NULL };
	struct blob_error e;
	atomic_int *stop = s->t.stop;

	if (id == NULL || a == NULL) {
		free(id);
		free(a);
		return;
	}
	snprintf(query, sizeof query, "uploadId=%s", id);
	free(id);
	memset(&e, 0, sizeof e);
	s->t.stop = NULL;	/* abort even when the job was told to stop */
	if (req(s, s->easy, &q, 2, a, &e) == 0)
		log_info("copy", "event=s3.upload_aborted url=%s upload=%s", log_q(s->url),
		    log_q(s->upload_id));
	else
		log_warn("copy", "event=s3.abort_failed url=%s upload=%s error=%s", log_q(s->url),
		    log_q(s->upload_id), log_q(e.msg));
	s->t.stop = stop;
	free(a);
}

/* ---- the sink --------------------------------------------------------------------- */

static bool
bucket_ok(const char *b, bool dns)
{
	size_t n = strlen(b), i;

	if (n < 3 || n > 63)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)b[i];

		if (!(islower(c) || isdigit(c) || c == '-' || c == '.' || (!dns && (c == '_' || isupper(c)))))
			return false;
	}
	return true;
}

struct s3_sink *
s3_sink_new(const struct s3_target *t, struct blob_error *e)
{
	struct s3_sink *s = calloc(1, sizeof *s);
	struct proxy_url u;
	char why[300], *b = NULL, *k = NULL;
	bool def_port;
	int n;

	if (s == NULL) {
		upload_fail(e, "Internal", true, "out of memory");
		return NULL;
	}
	s->t = *t;
	if (s->t.part_size == 0)
		s->t.part_size = S3_PART_DEFAULT;
	if (s->t.parallel == 0)
		s->t.parallel = 2;
	if (s->t.parallel > S3_PARALLEL_MAX)
		s->t.parallel = S3_PARALLEL_MAX;
	if (proxy_url_parse(t->endpoint, &u, why, sizeof why) != 0 ||
	    (strcmp(u.scheme, "https") != 0 && strcmp(u.scheme, "http") != 0) || strcmp(u.path, "/") != 0) {
		upload_fail(e, "InvalidRequest", false, "sink.serviceUrl must be https://host[:port] with no path: "
		    "%.200s", t->endpoint);
		goto bad;
	}
	s->loopback = u.loopback;
	if (strcmp(u.scheme, "https") != 0 && !u.loopback) {
		upload_fail(e, "InvalidRequest", false, "sink.serviceUrl must be https:// (plain http only for "
		    "a loopback server): %.200s", t->endpoint);
		goto bad;
	}
	if (u.ip || strcmp(u.host, "localhost") == 0)
		s->t.path_style = true;	/* no bucket name in front of an address */
	if (!bucket_ok(t->bucket, !s->t.path_style)) {
		upload_fail(e, "InvalidRequest", false, "sink.bucket '%.100s' is not a bucket name (3 to 63 "
		    "lower-case letters, digits, '-' and '.')", t->bucket);
		goto bad;
	}
	if (t->key == NULL || *t->key == '\0' || strlen(t->key) > 1024) {
		upload_fail(e, "InvalidRequest", false, "the object's key must be 1 to 1024 bytes");
		goto bad;
	}
	if (t->access_key_id == NULL || *t->access_key_id == '\0' || strlen(t->access_key_id) > 128 ||
	    strpbrk(t->access_key_id, "\r\n\t /,=") != NULL || t->secret == NULL || *t->secret == '\0') {
		upload_fail(e, "InvalidRequest", false, "the S3 sink needs accessKeyId (1 to 128 bytes, no spaces, "
		    "'/', ',' or '=') and secretAccessKey");
		goto bad;
	}
	if (t->session_token != NULL && (*t->session_token == '\0' || strlen(t->session_token) > 6000 ||
	    strpbrk(t->session_token, "\r\n") != NULL)) {
		upload_fail(e, "InvalidRequest", false, "sink.sessionToken must be one line of at most 6,000 bytes");
		goto bad;
	}
	def_port = u.port == (strcmp(u.scheme, "https") == 0 ? 443 : 80);
	b = s3_uri_encode(t->bucket, false);
	k = s3_uri_encode(t->key, true);
	if (b == NULL || k == NULL)
		goto oom;
	if (def_port)
		n = asprintf(&s->hostport, "%s%s%s", s->t.path_style ? "" : t->bucket,
		    s->t.path_style ? "" : ".", u.host);
	else
		n = asprintf(&s->hostport, "%s%s%s:%d", s->t.path_style ? "" : t->bucket,
		    s->t.path_style ? "" : ".", u.host, u.port);
	if (n < 0) {
		s->hostport = NULL;
		goto oom;
	}
	if ((s->t.path_style ? asprintf(&s->uri, "/%s/%s", b, k) : asprintf(&s->uri, "/%s", k)) < 0) {
		s->uri = NULL;
		goto oom;
	}
	if (asprintf(&s->url, "%s://%s%s", u.scheme, s->hostport, s->uri) < 0) {
		s->url = NULL;
		goto oom;
	}
	s->cur = malloc(s->t.part_size);
	s->easy = curl_easy_init();
	if (s->cur == NULL || s->easy == NULL ||
	    upload_pool_init(&s->pool, s->t.parallel, send_slot, s) != 0)
		goto oom;
	s->pool.skip_on_quit = true;	/* the upload is lost anyway: it will be aborted */
	/* the buffers are allocated as parts are handed over (a small object needs one) */
	free(b);
	free(k);
	return s;
oom:
	upload_fail(e, "Internal", true, "out of memory");
bad:
	free(b);
	free(k);
	s3_sink_free(s);
	return NULL;
}

int
s3_sink_write(struct s3_sink *s, const void *p, size_t n, struct blob_error *e)
{
	const char *c = p;

	while (n > 0) {
		size_t k = s->t.part_size - s->used < n ? s->t.part_size - s->used : n;

		memcpy(s->cur + s->used, c, k);
		s->used += k;
		c += k;
		n -= k;
		if (s->used == s->t.part_size) {
			/* the slots' buffers, made when first needed */
			if (upload_pool_bufs(&s->pool, s->t.part_size) != 0)
				return upload_fail(e, "Internal", true, "out of memory");
			if (send_part(s, e) != 0)
				return -1;
		}
	}
	return 0;
}

int
s3_sink_commit(struct s3_sink *s, struct blob_error *e)
{
	if (s->upload_id[0] == '\0') {
		/* smaller than a part: one PutObject, its Content-MD5 checked */
		struct answer *a = malloc(sizeof *a);
		struct s3_req q = { "PutObject", "PUT", "", s->cur, s->used, s->md5_b64 };
		int rc;

		if (a == NULL)
			return upload_fail(e, "Internal", true, "out of memory");
		md5_b64(s->cur, s->used, s->md5_b64);
		rc = req(s, s->easy, &q, 0, a, e);
		if (rc == 0) {
			strip_quotes(a->etag, s->etag, sizeof s->etag);
			s->completed = true;
		}
		free(a);
		return rc;
	}
	if (s->used > 0 && send_part(s, e) != 0)
		return -1;
	if (upload_pool_wait_idle(&s->pool, e) != 0)	/* every part is in before the list */
		return -1;
	return complete_upload(s, e);
}

const char *
s3_sink_url(const struct s3_sink *s)
{
	return s->url;
}

unsigned
s3_sink_parts(const struct s3_sink *s)
{
	return s->nparts;
}

const char *
s3_sink_etag(const struct s3_sink *s)
{
	return s->etag;
}

const char *
s3_sink_md5(const struct s3_sink *s)
{
	return s->md5_b64;
}

int
s3_sink_pin(struct s3_sink *s, const char *resolve)
{
	free(s->resolve);
	s->resolve = strdup(resolve);
	return s->resolve != NULL ? 0 : -1;
}

void
s3_sink_free(struct s3_sink *s)
{
	if (s == NULL)
		return;
	upload_pool_stop(&s->pool);
	if (s->upload_id[0] != '\0' && !s->completed && s->easy != NULL)
		abort_upload(s);	/* nothing of an unfinished upload stays */
	upload_pool_free(&s->pool);
	if (s->easy)
		curl_easy_cleanup(s->easy);
	free(s->etags);
	free(s->hostport);
	free(s->uri);
	free(s->url);
	free(s->resolve);
	free(s->cur);
	free(s);
}
