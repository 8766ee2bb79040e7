/* shir_err: the one error convention. Functions return 0 or a negative SHIR_E*
 * code; user-facing failures also fill a struct shir_error with a sentence that
 * says what happened and what to do. */
#ifndef SHIR_ERR_H
#define SHIR_ERR_H

#include <stddef.h>

enum shir_err {
	SHIR_OK = 0,
	SHIR_ENOMEM = -1,	/* out of memory */
	SHIR_EINVAL = -2,	/* invalid argument or input */
	SHIR_ECONFIG = -3,	/* configuration error */
	SHIR_EIO = -4,		/* I/O error */
	SHIR_ENOENT = -5,	/* not found */
	SHIR_EPERM = -6,	/* not permitted */
	SHIR_EPROTO = -7,	/* protocol violation by the peer */
	SHIR_ETIMEDOUT = -8,	/* deadline passed */
	SHIR_ECONNREFUSED = -9,	/* connection refused */
	SHIR_EDNS = -10,	/* name resolution failed */
	SHIR_ETLS = -11,	/* TLS handshake or verification failed */
	SHIR_EAUTH = -12,	/* authentication failed */
	SHIR_EPROXY = -13,	/* the proxy refused or failed */
	SHIR_ETOOBIG = -14,	/* over a size cap */
	SHIR_EBUSY = -15,	/* queue full, try later */
	SHIR_ECLOSED = -16,	/* peer closed */
	SHIR_EUNSUPPORTED = -17,	/* not supported (by this build or this mode) */
	SHIR_EEXIST = -18,	/* already exists */
	SHIR_ECRYPTO = -19,	/* cryptographic failure (bad MAC, wrong password) */
	SHIR_EAGAIN = -20,	/* try again */
	SHIR_EINTERNAL = -21,	/* a bug */
	SHIR_E_MIN = -21
};

const char *shir_strerror(int code);

/* A user-facing error: the code plus one or more sentences. */
#define SHIR_ERROR_MSG_MAX 2048
struct shir_error {
	int code;
	char msg[SHIR_ERROR_MSG_MAX];
};

void shir_error_clear(struct shir_error *e);
/* Sets code and message (printf style); returns code. e may be NULL. */
int shir_error_set(struct shir_error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Appends a line to the message (for errors that list several problems). */
int shir_error_append(struct shir_error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
