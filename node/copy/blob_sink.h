/* blob_sink: an Azure Blob Storage block blob written by a copy job, over
 * the Blob service's REST API with libcurl: blocking calls on an uploader
 * thread of the job, one block in flight while the job fills the other
 * buffer; with both taken the job waits (the reader's backpressure).
 *
 * The bytes are cut into blocks of block_size; each full block is sent with
 * Put Block (Content-MD5 of the block), and blob_sink_commit sends the last
 * one and then Put Block List with the MD5 of the whole blob
 * (x-ms-blob-content-md5). Nothing is visible under the blob's name until
 * Put Block List succeeds, so an interrupted job never leaves a half blob.
 * Block ids are fixed by the job id and the block's number (not the attempt),
 * so a new attempt of the same job puts the same ids again: the service
 * replaces the uncommitted blocks of the same id, and the committed list
 * names only this attempt's blocks.
 *
 * Memory: two block buffers (one in flight) plus the block list (about 70
 * bytes a block, at most 50,000 blocks).
 *
 * Authentication: a SAS token (the query string of a SAS URL) or the
 * account's shared key (HMAC-SHA256 "SharedKey" signing). Requests go
 * through the node's proxy decision (proxy_decide, proxy_curl_setup) with TLS
 * verification on; plain http is accepted for loopback accounts only. */
#ifndef SHIR_BLOB_SINK_H
#define SHIR_BLOB_SINK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct proxy_config;
struct blob_sink;

#define BLOB_BLOCK_DEFAULT (4u * 1024 * 1024)
#define BLOB_BLOCK_MIN (64u * 1024)
#define BLOB_BLOCK_MAX (100u * 1024 * 1024)
#define BLOB_MAX_BLOCKS 50000

struct blob_target {
	const char *account_url;	/* https://acct.blob.core.windows.net or http://127.0.0.1:P/acct */
	const char *container;
	const char *blob;		/* the blob's name in the container */
	const char *sas;		/* a SAS token (no leading '?'), or NULL */
	const char *account;		/* for the shared key: the account's name */
	const char *key;		/* the account key (base64), or NULL */
	const char *job_id;		/* fixes the block ids */
	size_t block_size;
	struct proxy_config *pc;	/* the node's proxy configuration (may be NULL) */
	const char *ca_file;		/* NULL: the system's CAs */
	const char *resolve;		/* "host:port:address" the node checked, or NULL */
	atomic_int *stop;		/* set when the job must stop */
	int retries;			/* attempts per request for 5xx and network errors */
	int backoff_ms;			/* first back-off, doubled each retry */
};

/* What went wrong: a job code (AuthenticationFailed, NotFound, StoreError,
 * StoreUnreachable, InvalidRequest, Stopped), whether another attempt of the
 * job may help, and a sentence. */
struct blob_error {
	char code[48];
	bool retryable;
	char msg[1024];
};

struct blob_sink *blob_sink_new(const struct blob_target *t, struct blob_error *e);
/* Buffers bytes, sending each block as it fills. -1 with *e on a failure. */
int blob_sink_write(struct blob_sink *b, const void *p, size_t n, struct blob_error *e);
/* Sends the last block, then the block list: the blob appears whole. */
int blob_sink_commit(struct blob_sink *b, struct blob_error *e);
/* The blob's URL without the SAS, the number of blocks, the MD5 (base64). */
const char *blob_sink_url(const struct blob_sink *b);
unsigned blob_sink_blocks(const struct blob_sink *b);
const char *blob_sink_md5(const struct blob_sink *b);
void blob_sink_free(struct blob_sink *b);

/* The canonical "SharedKey" string-to-sign's last part and the signature, for
 * the unit test: base64(HMAC-SHA256(base64decode(key), sts)). */
int blob_sharedkey_sign(const char *key_b64, const char *sts, char *out, size_t outlen);

#endif
