/* seal: the one encrypted file format of a node (credentials, backups).
 * AES-256-GCM, authenticated; the whole header is additional data, so a
 * changed byte anywhere (header, nonce, ciphertext, tag) or a truncation makes
 * opening fail with SHIR_ECRYPTO and nothing is returned.
 *
 *   offset  size  field
 *   0       8     magic "SHIRSEAL"
 *   8       1     format version (1)
 *   9       1     key source: 0 = a raw 256-bit key (the machine key),
 *                             1 = scrypt of a password
 *   10      1     purpose: 'C' credentials, 'B' backup (a file of one kind
 *                 cannot be passed off as the other)
 *   11      1     0
 *   12      20    only for scrypt: log2(N), r, p, 0, salt (16 bytes)
 *   ..      12    nonce (random per seal)
 *   ..      n     ciphertext
 *   ..      16    GCM tag
 *
 * Protocol-style code: buffers in, buffers out, no I/O. */
#ifndef SHIR_SEAL_H
#define SHIR_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/shir_err.h"

#define SEAL_KEY_LEN 32
#define SEAL_PURPOSE_CREDENTIALS 'C'
#define SEAL_PURPOSE_BACKUP 'B'
/* scrypt cost of new password seals: N = 2^15, r = 8, p = 1 (32 MiB). */
#define SEAL_SCRYPT_LOG2N 15

int seal_with_key(const uint8_t key[SEAL_KEY_LEN], int purpose, const void *plain, size_t len,
    uint8_t **out, size_t *outlen, struct shir_error *err);
int seal_with_password(const char *password, int log2n, int purpose, const void *plain,
    size_t len, uint8_t **out, size_t *outlen, struct shir_error *err);

/* The plaintext is NUL-terminated (*plainlen excludes the NUL); free it with
 * seal_plain_free, which wipes it. */
int seal_open_key(const uint8_t key[SEAL_KEY_LEN], int purpose, const uint8_t *in, size_t len,
    char **plain, size_t *plainlen, struct shir_error *err);
int seal_open_password(const char *password, int purpose, const uint8_t *in, size_t len,
    char **plain, size_t *plainlen, struct shir_error *err);
void seal_plain_free(char *plain, size_t len);

/* 1 when buf starts like a seal (magic and version), else 0. */
int seal_looks_sealed(const uint8_t *buf, size_t len);

#endif
