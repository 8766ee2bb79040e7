#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/atomicfile.h"
#include "common/random.h"
#include "node/admin/machinekey.h"
#include "node/admin/seal.h"
#include "node/cluster/rtkey.h"

#define RTKEY_FILE_MAX 4096

/* The key travels as 64 hex characters inside its seals. */
static void
rtkey_hex(const uint8_t key[RTKEY_LEN], char hex[2 * RTKEY_LEN + 1])
{
	size_t i;

	for (i = 0; i < RTKEY_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", key[i]);
}

static int
rtkey_unhex(const char *hex, size_t len, uint8_t key[RTKEY_LEN])
{
	size_t i;

	if (len != 2 * RTKEY_LEN)
		return -1;
	for (i = 0; i < RTKEY_LEN; i++) {
		unsigned v;

		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		key[i] = (uint8_t)v;
	}
	return 0;
}

static int
rtkey_path(const char *state_dir, char *out, size_t max, struct shir_error *err)
{
	if ((size_t)snprintf(out, max, "%s/%s", state_dir, RTKEY_FILE) >= max)
		return shir_error_set(err, SHIR_EINVAL, "state_dir is too long");
	return 0;
}

/* Opens a sealed key: under the machine key (password NULL) or a password. */
static int
rtkey_open(const char *path, const uint8_t *mkey, const char *password, uint8_t key[RTKEY_LEN],
    struct shir_error *err)
{
	char *raw = NULL, *plain = NULL;
	size_t rawlen = 0, plainlen = 0;
	int rc;

	if ((rc = atomicfile_read(path, RTKEY_FILE_MAX, &raw, &rawlen, err)) != 0)
		return rc;
	if (password != NULL)
		rc = seal_open_password(password, SEAL_PURPOSE_RTKEY, (const uint8_t *)raw, rawlen,
		    &plain, &plainlen, err);
	else
		rc = seal_open_key(mkey, SEAL_PURPOSE_RTKEY, (const uint8_t *)raw, rawlen, &plain,
		    &plainlen, err);
	free(raw);
	if (rc != 0) {
		char why[SHIR_ERROR_MSG_MAX / 2];

		snprintf(why, sizeof why, "%.1000s", err->msg);
		return shir_error_set(err, rc, "%s cannot be opened: %s", path, why);
	}
	if (rtkey_unhex(plain, plainlen, key) != 0)
		rc = shir_error_set(err, SHIR_EPROTO, "%s opens but holds no runtime data key", path);
	seal_plain_free(plain, plainlen);
	return rc;
}

int
rtkey_load(const char *state_dir, uint8_t key[RTKEY_LEN], struct shir_error *err)
{
	uint8_t mkey[MACHINEKEY_LEN];
	char path[4096];
	int rc;

	if ((rc = rtkey_path(state_dir, path, sizeof path, err)) != 0)
		return rc;
	if ((rc = machinekey_load(state_dir, 0, mkey, err)) != 0)
		return rc;
	rc = rtkey_open(path, mkey, NULL, key, err);
	OPENSSL_cleanse(mkey, sizeof mkey);
	if (rc == SHIR_ENOENT)
		shir_error_set(err, SHIR_ENOENT, "this node has no runtime data key yet: run "
		    "'shirctl cluster init' on the first node, 'shirctl cluster join FILE' on the "
		    "others");
	return rc;
}

/* Stores key under the machine key. */
static int
rtkey_store(const char *state_dir, const uint8_t key[RTKEY_LEN], struct shir_error *err)
{
	uint8_t mkey[MACHINEKEY_LEN], *sealed = NULL;
	char path[4096], hex[2 * RTKEY_LEN + 1];
	size_t sealedlen = 0;
	int rc;

	if ((rc = rtkey_path(state_dir, path, sizeof path, err)) != 0 ||
	    (rc = machinekey_load(state_dir, 1, mkey, err)) != 0)
		return rc;
	rtkey_hex(key, hex);
	rc = seal_with_key(mkey, SEAL_PURPOSE_RTKEY, hex, strlen(hex), &sealed, &sealedlen, err);
	OPENSSL_cleanse(mkey, sizeof mkey);
	OPENSSL_cleanse(hex, sizeof hex);
	if (rc == 0)
		rc = atomicfile_write(path, sealed, sealedlen, 0600, err);
	free(sealed);
	return rc;
}

int
rtkey_create(const char *state_dir, struct shir_error *err)
{
	uint8_t key[RTKEY_LEN];
	int rc = rtkey_load(state_dir, key, err);

	if (rc == 0) {
		OPENSSL_cleanse(key, sizeof key);
		return shir_error_set(err, SHIR_EEXIST, "this node already has a runtime data key");
	}
	if (rc != SHIR_ENOENT)
		return rc;
	if (random_bytes(key, sizeof key) != 0)
		return shir_error_set(err, SHIR_ECRYPTO, "no random bytes for a key");
	rc = rtkey_store(state_dir, key, err);
	OPENSSL_cleanse(key, sizeof key);
	return rc;
}

int
rtkey_export(const char *state_dir, const char *password, int log2n, const char *file,
    struct shir_error *err)
{
	uint8_t key[RTKEY_LEN], *sealed = NULL;
	char hex[2 * RTKEY_LEN + 1];
	size_t sealedlen = 0;
	int rc;

	if ((rc = rtkey_load(state_dir, key, err)) != 0)
		return rc;
	rtkey_hex(key, hex);
	OPENSSL_cleanse(key, sizeof key);
	rc = seal_with_password(password, log2n, SEAL_PURPOSE_RTKEY, hex, strlen(hex), &sealed,
	    &sealedlen, err);
	OPENSSL_cleanse(hex, sizeof hex);
	if (rc == 0)
		rc = atomicfile_write(file, sealed, sealedlen, 0600, err);
	free(sealed);
	return rc;
}

int
rtkey_import(const char *state_dir, const char *password, const char *file,
    struct shir_error *err)
{
	uint8_t key[RTKEY_LEN], cur[RTKEY_LEN];
	int rc;

	if ((rc = rtkey_open(file, NULL, password, key, err)) != 0)
		return rc;
	rc = rtkey_load(state_dir, cur, err);
	if (rc == 0) {
		rc = CRYPTO_memcmp(key, cur, RTKEY_LEN) == 0 ? 0 :
		    shir_error_set(err, SHIR_EEXIST, "this node already has another runtime data "
		    "key (it belongs to another runtime); remove %s/%s first if it must move",
		    state_dir, RTKEY_FILE);
	} else if (rc == SHIR_ENOENT) {
		rc = rtkey_store(state_dir, key, err);
	}
	OPENSSL_cleanse(key, sizeof key);
	OPENSSL_cleanse(cur, sizeof cur);
	return rc;
}

int
rtkey_hex_get(const char *state_dir, char hex[2 * RTKEY_LEN + 1], struct shir_error *err)
{
	uint8_t key[RTKEY_LEN];
	int rc;

	hex[0] = 0;
	if ((rc = rtkey_load(state_dir, key, err)) != 0)
		return rc;
	rtkey_hex(key, hex);
	OPENSSL_cleanse(key, sizeof key);
	return 0;
}

int
rtkey_hex_check(const char *state_dir, const char *hex, struct shir_error *err)
{
	uint8_t key[RTKEY_LEN], cur[RTKEY_LEN];
	int rc;

	if (rtkey_unhex(hex, strlen(hex), key) != 0)
		return shir_error_set(err, SHIR_EPROTO, "the runtime data key is malformed");
	rc = rtkey_load(state_dir, cur, err);
	if (rc == 0 && CRYPTO_memcmp(key, cur, RTKEY_LEN) != 0)
		rc = shir_error_set(err, SHIR_EEXIST, "this node already has another runtime data "
		    "key (it belongs to another runtime); remove %s/%s first if it must move",
		    state_dir, RTKEY_FILE);
	else if (rc == SHIR_ENOENT)
		rc = 0;
	OPENSSL_cleanse(key, sizeof key);
	OPENSSL_cleanse(cur, sizeof cur);
	return rc;
}

int
rtkey_hex_put(const char *state_dir, const char *hex, struct shir_error *err)
{
	uint8_t key[RTKEY_LEN];
	int rc;

	if ((rc = rtkey_hex_check(state_dir, hex, err)) != 0)
		return rc;
	rtkey_unhex(hex, strlen(hex), key);
	rc = rtkey_store(state_dir, key, err);
	OPENSSL_cleanse(key, sizeof key);
	return rc;
}
