/* random: the one source of random bytes and ids for the project. Bytes come
 * from OpenSSL's CSPRNG through a per-thread pool (4 KiB refilled at a time:
 * masking keys and ids are small and frequent, and one RAND_bytes call per
 * refill is much cheaper than one per key); what was handed out is wiped
 * from the pool (RAND_bytes per masking key or id was a sixth of the relay's
 * CPU per request).
 *
 * One failure policy: a CSPRNG failure is returned as SHIR_ECRYPTO and the
 * caller fails what it was doing (a frame, a dial, a request). Nothing ever
 * falls back to predictable bytes: ids here are capabilities (a rendezvous
 * address) or must not collide (a listener id). */
#ifndef SHIR_RANDOM_H
#define SHIR_RANDOM_H

#include <stddef.h>

#include "common/shir_err.h"

#define RANDOM_UUID_LEN 36	/* without the terminating NUL */

/* Fills buf with len random bytes. 0 or SHIR_ECRYPTO. */
int random_bytes(void *buf, size_t len);
/* A version 4 UUID in lower-case hex, 8-4-4-4-12, NUL-terminated (122 random
 * bits). 0 or SHIR_ECRYPTO (out is then the empty string). */
int random_uuid(char out[RANDOM_UUID_LEN + 1]);

#endif
