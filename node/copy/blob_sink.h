/* blob_sink: an Azure Blob Storage block blob written by a copy job, over
 * the Blob service's REST API with libcurl: blocking calls on uploader
 * threads of the job, BLOB_IN_FLIGHT blocks in flight while the job fills
 * one more buffer; with every uploader busy the job waits (the reader's
 * backpressure).
 *
 * The bytes are cut into blocks of block_size; each full block is sent with
 * Put Block (Content-MD5 of the block), and blob_sink_commit sends the last
 * one and then Put Block List with the MD5 of the whole blob
 * (x-ms-blob-content-md5). Nothing is visible under the blob's name until
 * Put Block List succeeds, so an interrupted job never leaves a half blob.
 *
 * Block ids name the block's number, length and MD5 ("shir-2-NNNNNN-
 * LLLLLLLLLL-<md5 hex>", base64): the same bytes at the same place always
 * get the same id, other bytes another id. A new attempt (resume) first
 * reads the uncommitted blocks the service holds for the blob (Get Block
 * List) and does not send again a block whose id is there: the service
 * checked that block's MD5 when it took it, so it holds these very bytes.
 * The committed list names exactly this attempt's blocks, in order.
 *
 * Memory: BLOB_IN_FLIGHT + 1 block buffers, the block ids (77 bytes a
 * block, at most 50,000 blocks), and on a resume the uncommitted ids read
 * (57 bytes each).
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
#define BLOB_IN_FLIGHT 3		/* blocks uploading at once */

struct blob_target {
	const char *account_url;	/* https://acct.blob.core.windows.net or http://127.0.0.1:P/acct */
	const char *container;
	const char *blob;		/* the blob's name in the container */
	const char *sas;		/* a SAS token (no leading '?'), or NULL */
	const char *account;		/* for the shared key: the account's name */
	const char *key;		/* the account key (base64), or NULL */
	const char *job_id;		/* the job (logs) */
	bool resume;			/* a new attempt: skip blocks the service holds */
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

/* Blocks not sent because the service held them already (a resume), and
 * the milliseconds the writer waited for a free uploader. */
unsigned blob_sink_skipped(const struct blob_sink *b);
unsigned long long blob_sink_wait_ms(const struct blob_sink *b);

/* The Get Block List answer, read as it streams: the raw ids of this
 * sink's format found among the uncommitted blocks (at most max), in a
 * carry of bounded size. Exposed for the fuzz target. */
struct blob_list_parser {
	char carry[512];
	size_t nc;
	bool in_uncommitted;
	char *ids;			/* n raw ids of 57 bytes */
	size_t n, cap, max;
};
void blob_list_reset(struct blob_list_parser *p);
void blob_list_feed(struct blob_list_parser *p, const char *d, size_t n);
size_t blob_list_count(const struct blob_list_parser *p);
void blob_list_free(struct blob_list_parser *p);

/* The canonical "SharedKey" string-to-sign's last part and the signature, for
 * the unit test: base64(HMAC-SHA256(base64decode(key), sts)). */
int blob_sharedkey_sign(const char *key_b64, const char *sts, char *out, size_t outlen);

#endif
