#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "node/admin/seal.h"

#define SEAL_MAGIC "SHIRSEAL"
#define SEAL_VERSION 1
#define SEAL_SRC_KEY 0
#define SEAL_SRC_SCRYPT 1
#define SEAL_FIXED 12
#define SEAL_KDF_LEN 20
#define SEAL_SALT_LEN 16
#define SEAL_NONCE_LEN 12
#define SEAL_TAG_LEN 16
#define SEAL_MAX_PLAIN (64u * 1024 * 1024)

static int
seal_scrypt(const char *password, const uint8_t *salt, int log2n, int r, int p,
    uint8_t key[SEAL_KEY_LEN], struct shir_error *err)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
	EVP_KDF_CTX *ctx = NULL;
	uint64_t n = (uint64_t)1 << log2n;
	uint32_t ur = (uint32_t)r, up = (uint32_t)p;
	uint64_t maxmem = 256ull * 1024 * 1024;
	OSSL_PARAM params[7], *q = params;
	int rc = 0;

	if (kdf == NULL || (ctx = EVP_KDF_CTX_new(kdf)) == NULL) {
		rc = shir_error_set(err, SHIR_ECRYPTO, "scrypt is not available in this OpenSSL");
		goto out;
	}
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)password,
	    strlen(password));
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, SEAL_SALT_LEN);
	*q++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n);
	*q++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &ur);
	*q++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &up);
	*q++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem);
	*q = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, key, SEAL_KEY_LEN, params) != 1)
		rc = shir_error_set(err, SHIR_ECRYPTO, "deriving the key from the password failed");
out:
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return rc;
}

/* AES-256-GCM; enc 1 encrypts in -> out (+tag), 0 decrypts and checks tag. */
static int
seal_gcm(int enc, const uint8_t key[SEAL_KEY_LEN], const uint8_t *nonce, const uint8_t *aad,
    size_t aadlen, const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int ok = 0, n = 0;

	if (c == NULL)
		return 0;
	if (EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, SEAL_NONCE_LEN, NULL) != 1 ||
	    EVP_CipherInit_ex(c, NULL, NULL, key, nonce, enc) != 1 ||
	    EVP_CipherUpdate(c, NULL, &n, aad, (int)aadlen) != 1)
		goto out;
	if (len > 0 && EVP_CipherUpdate(c, out, &n, in, (int)len) != 1)
		goto out;
	if (!enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN, tag) != 1)
		goto out;
	if (EVP_CipherFinal_ex(c, out + n, &n) != 1)
		goto out;
	if (enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN, tag) != 1)
		goto out;
	ok = 1;
out:
	EVP_CIPHER_CTX_free(c);
	return ok;
}

static int
seal_common(const uint8_t *key, const uint8_t *kdf_params, int purpose, const void *plain,
    size_t len, uint8_t **out, size_t *outlen, struct shir_error *err)
{
	size_t hl = SEAL_FIXED + (kdf_params ? SEAL_KDF_LEN : 0) + SEAL_NONCE_LEN;
	uint8_t *buf;

	*out = NULL;
	*outlen = 0;
	if (len > SEAL_MAX_PLAIN)
		return shir_error_set(err, SHIR_ETOOBIG, "%zu bytes is too much to seal", len);
	buf = malloc(hl + len + SEAL_TAG_LEN);
	if (buf == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	memcpy(buf, SEAL_MAGIC, 8);
	buf[8] = SEAL_VERSION;
	buf[9] = kdf_params ? SEAL_SRC_SCRYPT : SEAL_SRC_KEY;
	buf[10] = (uint8_t)purpose;
	buf[11] = 0;
	if (kdf_params)
		memcpy(buf + SEAL_FIXED, kdf_params, SEAL_KDF_LEN);
	if (RAND_bytes(buf + hl - SEAL_NONCE_LEN, SEAL_NONCE_LEN) != 1 ||
	    !seal_gcm(1, key, buf + hl - SEAL_NONCE_LEN, buf, hl, plain, len, buf + hl,
	    buf + hl + len)) {
		free(buf);
		return shir_error_set(err, SHIR_ECRYPTO, "encryption failed (OpenSSL)");
	}
	*out = buf;
	*outlen = hl + len + SEAL_TAG_LEN;
	return 0;
}

int
seal_with_key(const uint8_t key[SEAL_KEY_LEN], int purpose, const void *plain, size_t len,
    uint8_t **out, size_t *outlen, struct shir_error *err)
{
	return seal_common(key, NULL, purpose, plain, len, out, outlen, err);
}

int
seal_with_password(const char *password, int log2n, int purpose, const void *plain, size_t len,
    uint8_t **out, size_t *outlen, struct shir_error *err)
{
	uint8_t kp[SEAL_KDF_LEN] = { (uint8_t)log2n, 8, 1, 0 }, key[SEAL_KEY_LEN];
	int rc;

	*out = NULL;
	if (log2n < 10 || log2n > 17)
		return shir_error_set(err, SHIR_EINVAL, "scrypt cost 2^%d is out of range", log2n);
	if (RAND_bytes(kp + 4, SEAL_SALT_LEN) != 1)
		return shir_error_set(err, SHIR_ECRYPTO, "the random generator failed");
	rc = seal_scrypt(password, kp + 4, log2n, 8, 1, key, err);
	if (rc == 0)
		rc = seal_common(key, kp, purpose, plain, len, out, outlen, err);
	OPENSSL_cleanse(key, sizeof key);
	return rc;
}

int
seal_looks_sealed(const uint8_t *buf, size_t len)
{
	return len >= SEAL_FIXED && memcmp(buf, SEAL_MAGIC, 8) == 0 && buf[8] == SEAL_VERSION;
}

/* Checks the header; returns its length or a negative code. */
static int
seal_header(int src, int purpose, const uint8_t *in, size_t len, const char *what,
    struct shir_error *err)
{
	size_t hl = SEAL_FIXED + (src == SEAL_SRC_SCRYPT ? SEAL_KDF_LEN : 0) + SEAL_NONCE_LEN;

	if (len < SEAL_FIXED || memcmp(in, SEAL_MAGIC, 8) != 0)
		return shir_error_set(err, SHIR_ECRYPTO, "%s is not a shir encrypted file "
		    "(its first bytes are not SHIRSEAL)", what);
	if (in[8] != SEAL_VERSION)
		return shir_error_set(err, SHIR_EUNSUPPORTED,
		    "%s has format version %u, which this shir does not read", what, in[8]);
	if (in[9] != src || in[10] != purpose || in[11] != 0)
		return shir_error_set(err, SHIR_ECRYPTO, "%s is a different kind of shir "
		    "encrypted file, or its header was changed", what);
	if (len < hl + SEAL_TAG_LEN)
		return shir_error_set(err, SHIR_ECRYPTO, "%s is truncated", what);
	return (int)hl;
}

static int
seal_open_common(const uint8_t *key, size_t hl, const uint8_t *in, size_t len, char **plain,
    size_t *plainlen, const char *why, struct shir_error *err)
{
	size_t n = len - hl - SEAL_TAG_LEN;
	uint8_t tag[SEAL_TAG_LEN];
	char *p;

	if (n > SEAL_MAX_PLAIN)
		return shir_error_set(err, SHIR_ETOOBIG, "the encrypted file is too large");
	p = malloc(n + 1);
	if (p == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	memcpy(tag, in + len - SEAL_TAG_LEN, SEAL_TAG_LEN);
	if (!seal_gcm(0, key, in + hl - SEAL_NONCE_LEN, in, hl, in + hl, n, (uint8_t *)p, tag)) {
		seal_plain_free(p, n + 1);
		return shir_error_set(err, SHIR_ECRYPTO, "%s", why);
	}
	p[n] = '\0';
	*plain = p;
	if (plainlen != NULL)
		*plainlen = n;
	return 0;
}

int
seal_open_key(const uint8_t key[SEAL_KEY_LEN], int purpose, const uint8_t *in, size_t len,
    char **plain, size_t *plainlen, struct shir_error *err)
{
	int hl;

	*plain = NULL;
	hl = seal_header(SEAL_SRC_KEY, purpose, in, len, "the file", err);
	if (hl < 0)
		return hl;
	return seal_open_common(key, (size_t)hl, in, len, plain, plainlen,
	    "the file does not decrypt with this node's machine key: it was changed, truncated, "
	    "or written by another node", err);
}

int
seal_open_password(const char *password, int purpose, const uint8_t *in, size_t len,
    char **plain, size_t *plainlen, struct shir_error *err)
{
	uint8_t key[SEAL_KEY_LEN];
	const uint8_t *kp = in + SEAL_FIXED;
	int hl, rc;

	*plain = NULL;
	hl = seal_header(SEAL_SRC_SCRYPT, purpose, in, len, "the file", err);
	if (hl < 0)
		return hl;
	if (kp[0] < 10 || kp[0] > 17 || kp[1] < 1 || kp[1] > 8 || kp[2] != 1 || kp[3] != 0)
		return shir_error_set(err, SHIR_ECRYPTO,
		    "the file's key derivation parameters were changed (scrypt N=2^%u r=%u p=%u)",
		    kp[0], kp[1], kp[2]);
	rc = seal_scrypt(password, kp + 4, kp[0], kp[1], kp[2], key, err);
	if (rc == 0)
		rc = seal_open_common(key, (size_t)hl, in, len, plain, plainlen,
		    "wrong password, or the file was changed or truncated (authentication failed)",
		    err);
	OPENSSL_cleanse(key, sizeof key);
	return rc;
}

void
seal_plain_free(char *plain, size_t len)
{
	if (plain == NULL)
		return;
	OPENSSL_cleanse(plain, len);
	free(plain);
}
