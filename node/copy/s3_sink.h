/* s3_sink: an object in S3-compatible storage written by a copy job, over
 * the S3 REST API with libcurl, every request signed with AWS Signature
 * Version 4 (our own code: s3_sigv4, checked against AWS's published
 * examples by the unit test).
 *
 * The bytes are cut into parts of part_size. An object smaller than one part
 * is sent with one PutObject at commit. A larger one is a multipart upload:
 * CreateMultipartUpload when the first part is full, UploadPart for each part
 * (Content-MD5 of the part; the service checks it) on uploader threads of
 * the job, at most `parallel` parts in flight while the job fills one more
 * buffer; with every buffer taken the job waits (the reader's backpressure).
 * s3_sink_commit sends the last part and CompleteMultipartUpload: nothing is
 * visible under the key before that succeeds. Any failure, and any sink freed
 * without a commit, sends AbortMultipartUpload, so the parts of an unfinished
 * upload are dropped by the service (a node killed with -9 cannot: its
 * upload stays invisible until the bucket's lifecycle rule for incomplete
 * uploads removes it).
 *
 * Memory: (parallel + 1) part buffers, plus the parts' ETags (at most 10,000).
 *
 * A request with a body carries its Content-MD5 in a signed header and the
 * payload hash UNSIGNED-PAYLOAD: the signature covers the MD5, the service
 * checks the body against it, and the body is hashed once, not twice.
 *
 * Requests go through the node's proxy decision (proxy_decide,
 * proxy_curl_setup) with TLS verification on; plain http only to loopback.
 * Addressing: virtual-hosted (https://bucket.endpoint/key) or path style
 * (https://endpoint/bucket/key), path style always for an IP or localhost. */
#ifndef SHIR_S3_SINK_H
#define SHIR_S3_SINK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "node/copy/blob_sink.h"	/* struct blob_error: a sink's error */

struct proxy_config;
struct s3_sink;

#define S3_PART_DEFAULT (8u * 1024 * 1024)
#define S3_PART_MIN (5u * 1024 * 1024)	/* S3's minimum for every part but the last */
#define S3_PART_MAX (512u * 1024 * 1024)
#define S3_MAX_PARTS 10000
#define S3_PARALLEL_MAX 16

struct s3_target {
	const char *endpoint;		/* https://s3.eu-west-1.amazonaws.com, http://127.0.0.1:P */
	const char *region;		/* us-east-1 ... */
	const char *bucket;
	const char *key;		/* the object's key */
	bool path_style;
	const char *access_key_id;
	const char *secret;		/* the secret access key */
	const char *session_token;	/* temporary credentials, or NULL */
	size_t part_size;
	unsigned parallel;		/* parts in flight, 1..S3_PARALLEL_MAX */
	struct proxy_config *pc;	/* the node's proxy configuration (may be NULL) */
	const char *ca_file;		/* NULL: the system's CAs */
	atomic_int *stop;		/* set when the job must stop */
	int retries;			/* attempts per request for 5xx and network errors */
	int backoff_ms;			/* first back-off, doubled each retry */
};

struct s3_sink *s3_sink_new(const struct s3_target *t, struct blob_error *e);
/* Buffers bytes, uploading each part as it fills. -1 with *e on a failure. */
int s3_sink_write(struct s3_sink *s, const void *p, size_t n, struct blob_error *e);
/* PutObject, or the last part and CompleteMultipartUpload: the object
 * appears whole. -1 with *e (and the upload aborted) on a failure. */
int s3_sink_commit(struct s3_sink *s, struct blob_error *e);
/* The object's URL, the number of parts (0: one PutObject), the ETag as the
 * service gave it (quotes removed), and for one PutObject the MD5 of the
 * bytes (base64; "" for a multipart upload: each part's MD5 was sent and
 * checked, the whole object's is not computed). */
const char *s3_sink_url(const struct s3_sink *s);
unsigned s3_sink_parts(const struct s3_sink *s);
const char *s3_sink_etag(const struct s3_sink *s);
const char *s3_sink_md5(const struct s3_sink *s);
/* Pins the host to the address the node checked ("host:port:address",
 * CURLOPT_RESOLVE), before the first write. 0 or -1 (out of memory). */
int s3_sink_pin(struct s3_sink *s, const char *resolve);
/* Aborts an upload that was not completed, then frees. */
void s3_sink_free(struct s3_sink *s);

/* SigV4, for the sink and the unit test. headers: "name:value" lines, names
 * lower case, sorted by name, values trimmed, each ending in '\n' (the
 * canonical headers); signed: "host;x-amz-date"; uri and query already
 * canonical (encoded, the query sorted). Writes the Authorization header's
 * value. 0 or -1. */
struct s3_sigv4_in {
	const char *method, *uri, *query, *headers, *signed_headers, *payload_sha256;
	const char *access_key_id, *secret, *region, *service;
	const char *amz_date;		/* 20150830T123600Z */
};
int s3_sigv4(const struct s3_sigv4_in *in, char *auth, size_t authlen);
/* S3's URI encoding of s (RFC 3986 unreserved kept; '/' kept when keep_slash). */
char *s3_uri_encode(const char *s, bool keep_slash);
/* The text of the first <tag>...</tag> in an XML answer, entities &amp; &lt;
 * &gt; &quot; &apos; decoded; 0, or -1 when absent or longer than outlen. */
int s3_xml_text(const char *xml, size_t len, const char *tag, char *out, size_t outlen);

#endif
