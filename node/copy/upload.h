/*
 * upload: what the object-storage sinks (blob_sink, s3_sink) share.
 *
 * One request to object storage: the curl handle set up for an upload
 * (method, body, headers, answer and header capture, timeouts, the low-speed
 * limit, the protocols allowed, TLS verification, the CA file, the proxy the
 * node's configuration names, the pinned address) and performed on the
 * calling thread. The retry pieces: which failures another try may cure, the
 * error of a request the network failed, and the back-off between tries that
 * a stopped job ends.
 *
 * A pool of part uploaders: a fixed number of threads, each with its slot (a
 * buffer and a curl handle), sending the parts the writer hands over while it
 * fills the next buffer; the writer waits for a free slot (backpressure) and,
 * before the commit, for every part to be in. The first failure is kept and
 * handed back to the writer.
 */
#ifndef SHIR_UPLOAD_H
#define SHIR_UPLOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "node/copy/blob_sink.h"	/* struct blob_error: a sink's error */

struct proxy_config;

/* Fills e and returns -1. */
int upload_fail(struct blob_error *e, const char *code, bool retryable, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* s percent-encoded but for letters, digits, "-._~" and, with keep_slash,
 * '/' (malloc'd, NULL when out of memory). */
char *upload_uri_encode(const char *s, bool keep_slash);

/* Where a sink's requests go and how. */
struct upload_conn {
	const char *ca_file;		/* NULL: the system's CAs */
	struct proxy_config *pc;	/* may be NULL */
	const char *resolve;		/* "host:port:address" the node checked, or NULL */
	bool loopback;			/* plain http allowed */
};

/* One request. */
struct upload_http {
	const char *url;
	const char *method;		/* a custom method, or NULL for GET */
	const char *body;		/* sent (len bytes) when not NULL */
	size_t len;
	struct curl_slist *headers;
	curl_write_callback on_answer, on_header;
	void *answer;			/* their argument */
	char *via;			/* when not NULL (vialen bytes): set to the proxy the
					 * request went through, or "direct", for the logs */
	size_t vialen;
};

/* An answer's bytes kept in body (cap bytes, NUL-terminated, *n used so
 * far): what does not fit is dropped. */
void upload_keep(char *body, size_t cap, size_t *n, const char *p, size_t len);
/* A header line "name: value" (name with its ':', any case): its value
 * without the blanks around it in *v, *vl; false for another header. */
bool upload_header_value(const char *p, size_t n, const char *name, const char **v, size_t *vl);

/* Sets easy up for the request and performs it; the HTTP status in *status,
 * curl's message in cerr (CURL_ERROR_SIZE). */
CURLcode upload_perform(CURL *easy, const struct upload_conn *c, const struct upload_http *r,
    long *status, char *cerr);

/* Whether another try may cure a network failure (not a refused protocol,
 * certificate or URL), or an HTTP status (5xx, 408, 429). */
bool upload_curl_again(CURLcode rc);
bool upload_status_again(long st);

/* The error of a request the network failed (after attempt tries), naming
 * the proxy it went through (via, as upload_perform set it; NULL or "direct":
 * none). */
int upload_curl_error(struct blob_error *e, CURLcode rc, bool again, const char *what, const char *url,
    int attempt, const char *cerr, const char *via);

/* Logs the retry (event=<event> ... via=<proxy or direct>), sleeps *wait ms
 * (a stop ends it: -1 with the error) and doubles *wait up to 30 s. */
int upload_backoff(const char *event, const char *what, long st, const char *error, int attempt,
    const char *via, int *wait, atomic_int *stop, struct blob_error *e);

/* ---- the pool of part uploaders ---- */

struct upload_pool;

struct upload_slot {
	struct upload_pool *pool;
	pthread_t th;
	bool started, busy;
	char *buf;
	size_t len;
	unsigned num;			/* the part's number, as the sink counts */
	CURL *easy;
};

/* Sends one part (an uploader's thread). */
typedef int (*upload_send_fn)(void *arg, struct upload_slot *sl, struct blob_error *e);

struct upload_pool {
	struct upload_slot *slots;
	unsigned n;
	pthread_mutex_t mu;		/* the sinks may take it for what uploaders write */
	pthread_cond_t cv;
	bool ready, quit, failed;
	bool skip_on_quit;		/* a part handed over is dropped when the pool stops */
	struct blob_error err;
	upload_send_fn send;
	void *arg;
	unsigned long long wait_ns;	/* the writer waiting for a free slot */
};

/* n slots, each with its curl handle (the buffers: upload_pool_bufs). -1
 * when out of memory (upload_pool_free then frees what was made). */
int upload_pool_init(struct upload_pool *p, unsigned n, upload_send_fn send, void *arg);
/* Gives every slot without one a buffer of size bytes; -1 when out of memory. */
int upload_pool_bufs(struct upload_pool *p, size_t size);
/* Starts every uploader not started yet. */
int upload_pool_start(struct upload_pool *p, struct blob_error *e);
/* Hands *buf (len bytes, part num) to a free uploader, waiting for one, and
 * gives back that uploader's spare buffer in *buf; -1 with the first error
 * of an uploader. */
int upload_pool_hand(struct upload_pool *p, char **buf, size_t len, unsigned num, struct blob_error *e);
/* Waits until no part is in flight; -1 with the first part's error. */
int upload_pool_wait_idle(struct upload_pool *p, struct blob_error *e);
/* Ends the uploaders (joined). */
void upload_pool_stop(struct upload_pool *p);
/* Stops the uploaders and frees the slots. */
void upload_pool_free(struct upload_pool *p);

#endif
