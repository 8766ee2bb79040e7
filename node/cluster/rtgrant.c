/* rtgrant: the runtime data key sealed to a new node's X25519 key (rtgrant.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/sha.h>

#include "common/atomicfile.h"
#include "node/admin/machinekey.h"
#include "node/admin/seal.h"
#include "node/cluster/rtgrant.h"
#include "node/cluster/rtkey.h"

#define RTG_FILE_MAX 8192
#define RTG_PUB 32
static const char RTG_INFO[] = "shir runtime key grant v1";

static void
rtg_hex(const uint8_t *b, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static int
rtg_unhex(const char *hex, uint8_t *out, size_t max, size_t *n)
{
	size_t i, len = hex ? strlen(hex) : 0;

	if (len == 0 || len % 2 || len / 2 > max)
		return -1;
	for (i = 0; i < len / 2; i++) {
		unsigned v;

		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	*n = len / 2;
	return 0;
}

static void
rtg_fp(const uint8_t pub[RTG_PUB], char fp[RTGRANT_FP_LEN + 1])
{
	uint8_t h[SHA256_DIGEST_LENGTH];

	SHA256(pub, RTG_PUB, h);
	rtg_hex(h, RTGRANT_FP_LEN / 2, fp);
}

static EVP_PKEY *
rtg_keygen(uint8_t pub[RTG_PUB])
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	size_t n = RTG_PUB;

	if (k != NULL && (EVP_PKEY_get_raw_public_key(k, pub, &n) != 1 || n != RTG_PUB)) {
		EVP_PKEY_free(k);
		k = NULL;
	}
	return k;
}

/* ECDH of mine with their public key, then HKDF-SHA256 with salt
 * sender || recipient: the seal key. */
static int
rtg_derive(EVP_PKEY *mine, const uint8_t theirs[RTG_PUB], const uint8_t eph[RTG_PUB],
    const uint8_t rcpt[RTG_PUB], uint8_t key[SEAL_KEY_LEN], struct shir_error *err)
{
	EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, theirs, RTG_PUB);
	EVP_PKEY_CTX *c = NULL, *h = NULL;
	uint8_t shared[32], salt[2 * RTG_PUB];
	size_t sl = sizeof shared, kl = SEAL_KEY_LEN;
	int ok = 0;

	memcpy(salt, eph, RTG_PUB);
	memcpy(salt + RTG_PUB, rcpt, RTG_PUB);
	ok = peer != NULL && (c = EVP_PKEY_CTX_new(mine, NULL)) != NULL &&
	    EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, peer) == 1 &&
	    EVP_PKEY_derive(c, shared, &sl) == 1 && sl == sizeof shared &&
	    (h = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL)) != NULL &&
	    EVP_PKEY_derive_init(h) == 1 && EVP_PKEY_CTX_set_hkdf_md(h, EVP_sha256()) == 1 &&
	    EVP_PKEY_CTX_set1_hkdf_salt(h, salt, sizeof salt) == 1 &&
	    EVP_PKEY_CTX_set1_hkdf_key(h, shared, sizeof shared) == 1 &&
	    EVP_PKEY_CTX_add1_hkdf_info(h, (const unsigned char *)RTG_INFO, sizeof RTG_INFO - 1) == 1 &&
	    EVP_PKEY_derive(h, key, &kl) == 1 && kl == SEAL_KEY_LEN;
	OPENSSL_cleanse(shared, sizeof shared);
	EVP_PKEY_CTX_free(c);
	EVP_PKEY_CTX_free(h);
	EVP_PKEY_free(peer);
	return ok ? 0 : shir_error_set(err, SHIR_ECRYPTO, "the key agreement failed (a malformed "
	    "public key?)");
}

static int
rtg_req_path(const char *state_dir, char *out, size_t max, struct shir_error *err)
{
	if ((size_t)snprintf(out, max, "%s/%s", state_dir, RTGRANT_REQ_FILE) >= max)
		return shir_error_set(err, SHIR_EINVAL, "state_dir is too long");
	return 0;
}

/* The JSON object under top in file. */
static cJSON *
rtg_read(const char *file, const char *top, cJSON **doc, struct shir_error *err)
{
	char *raw = NULL;
	size_t len = 0;
	cJSON *o;

	*doc = NULL;
	if (atomicfile_read(file, RTG_FILE_MAX, &raw, &len, err) != 0)
		return NULL;
	*doc = cJSON_ParseWithLength(raw, len);
	free(raw);
	o = cJSON_GetObjectItemCaseSensitive(*doc, top);
	if (!cJSON_IsObject(o)) {
		shir_error_set(err, SHIR_EPROTO, "%s is not a %s file", file,
		    strcmp(top, "shirKeyGrant") == 0 ? "key grant ('shirctl cluster grant')" :
		    "key request ('shirctl cluster request')");
		return NULL;
	}
	return o;
}

int
rtgrant_request(const char *state_dir, const char *node_name, const char *file,
    char fp[RTGRANT_FP_LEN + 1], struct shir_error *err)
{
	uint8_t pub[RTG_PUB], priv[32], mkey[MACHINEKEY_LEN], *sealed = NULL;
	char path[4096], hex[2 * 32 + 1], *text = NULL;
	size_t pl = sizeof priv, sealedlen = 0;
	EVP_PKEY *k;
	cJSON *doc, *o;
	int rc;

	if ((rc = rtg_req_path(state_dir, path, sizeof path, err)) != 0)
		return rc;
	if ((k = rtg_keygen(pub)) == NULL || EVP_PKEY_get_raw_private_key(k, priv, &pl) != 1) {
		EVP_PKEY_free(k);
		return shir_error_set(err, SHIR_ECRYPTO, "cannot make an X25519 key pair");
	}
	EVP_PKEY_free(k);
	if ((rc = machinekey_load(state_dir, 1, mkey, err)) == 0) {
		rtg_hex(priv, sizeof priv, hex);
		rc = seal_with_key(mkey, SEAL_PURPOSE_GRANTREQ, hex, strlen(hex), &sealed, &sealedlen,
		    err);
		OPENSSL_cleanse(hex, sizeof hex);
		OPENSSL_cleanse(mkey, sizeof mkey);
	}
	OPENSSL_cleanse(priv, sizeof priv);
	if (rc == 0)
		rc = atomicfile_write(path, sealed, sealedlen, 0600, err);
	free(sealed);
	if (rc != 0)
		return rc;
	rtg_hex(pub, sizeof pub, hex);
	doc = cJSON_CreateObject();
	o = cJSON_AddObjectToObject(doc, "shirKeyRequest");
	cJSON_AddNumberToObject(o, "v", 1);
	cJSON_AddStringToObject(o, "node", node_name ? node_name : "");
	cJSON_AddStringToObject(o, "publicKey", hex);
	if ((text = cJSON_Print(doc)) == NULL)
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
	else
		rc = atomicfile_write(file, text, strlen(text), 0644, err);
	free(text);
	cJSON_Delete(doc);
	rtg_fp(pub, fp);
	return rc;
}

int
rtgrant_grant(const char *state_dir, const char *reqfile, const char *file,
    char fp[RTGRANT_FP_LEN + 1], struct shir_error *err)
{
	uint8_t rcpt[RTG_PUB], eph[RTG_PUB], skey[SEAL_KEY_LEN], *sealed = NULL;
	char khex[2 * RTKEY_LEN + 1], hex[2 * RTG_PUB + 1], *boxhex = NULL, *text = NULL;
	size_t n = 0, sealedlen = 0;
	EVP_PKEY *k = NULL;
	cJSON *doc = NULL, *o, *out = NULL;
	int rc;

	fp[0] = 0;
	if ((o = rtg_read(reqfile, "shirKeyRequest", &doc, err)) == NULL) {
		cJSON_Delete(doc);
		return err->code ? err->code : SHIR_EPROTO;
	}
	if (rtg_unhex(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "publicKey")), rcpt,
	    sizeof rcpt, &n) != 0 || n != RTG_PUB) {
		cJSON_Delete(doc);
		return shir_error_set(err, SHIR_EPROTO, "%s holds no valid X25519 public key",
		    reqfile);
	}
	cJSON_Delete(doc);
	rtg_fp(rcpt, fp);
	if ((rc = rtkey_hex_get(state_dir, khex, err)) != 0)
		return rc;
	if ((k = rtg_keygen(eph)) == NULL)
		rc = shir_error_set(err, SHIR_ECRYPTO, "cannot make an X25519 key pair");
	else if ((rc = rtg_derive(k, rcpt, eph, rcpt, skey, err)) == 0)
		rc = seal_with_key(skey, SEAL_PURPOSE_GRANT, khex, strlen(khex), &sealed, &sealedlen,
		    err);
	EVP_PKEY_free(k);
	OPENSSL_cleanse(khex, sizeof khex);
	OPENSSL_cleanse(skey, sizeof skey);
	if (rc != 0)
		goto out;
	if ((boxhex = malloc(2 * sealedlen + 1)) == NULL) {
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	rtg_hex(sealed, sealedlen, boxhex);
	rtg_hex(eph, sizeof eph, hex);
	out = cJSON_CreateObject();
	o = cJSON_AddObjectToObject(out, "shirKeyGrant");
	cJSON_AddNumberToObject(o, "v", 1);
	cJSON_AddStringToObject(o, "ephemeralKey", hex);
	cJSON_AddStringToObject(o, "recipient", fp);
	cJSON_AddStringToObject(o, "box", boxhex);
	if ((text = cJSON_Print(out)) == NULL)
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
	else
		rc = atomicfile_write(file, text, strlen(text), 0600, err);
out:
	free(text);
	free(boxhex);
	free(sealed);
	cJSON_Delete(out);
	return rc;
}

int
rtgrant_accept(const char *state_dir, const char *file, struct shir_error *err)
{
	uint8_t eph[RTG_PUB], mine[RTG_PUB], priv[32], mkey[MACHINEKEY_LEN], skey[SEAL_KEY_LEN];
	uint8_t *box = NULL;
	char path[4096], *raw = NULL, *plain = NULL, fp[RTGRANT_FP_LEN + 1];
	const char *bh;
	size_t n = 0, rawlen = 0, plainlen = 0, boxlen = 0, pl = RTG_PUB;
	EVP_PKEY *k = NULL;
	cJSON *doc = NULL, *o;
	int rc;

	if ((rc = rtg_req_path(state_dir, path, sizeof path, err)) != 0)
		return rc;
	if ((o = rtg_read(file, "shirKeyGrant", &doc, err)) == NULL) {
		cJSON_Delete(doc);
		return err->code ? err->code : SHIR_EPROTO;
	}
	bh = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "box"));
	if (rtg_unhex(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "ephemeralKey")),
	    eph, sizeof eph, &n) != 0 || n != RTG_PUB || bh == NULL || strlen(bh) > RTG_FILE_MAX ||
	    (box = malloc(strlen(bh) / 2 + 1)) == NULL ||
	    rtg_unhex(bh, box, strlen(bh) / 2 + 1, &boxlen) != 0) {
		free(box);
		cJSON_Delete(doc);
		return shir_error_set(err, SHIR_EPROTO, "%s is a malformed key grant", file);
	}
	cJSON_Delete(doc);
	rc = atomicfile_read(path, RTG_FILE_MAX, &raw, &rawlen, err);
	if (rc == SHIR_ENOENT)
		rc = shir_error_set(err, SHIR_ENOENT, "this node made no key request (or already took "
		    "a grant): run 'shirctl cluster request FILE' first");
	if (rc == 0 && (rc = machinekey_load(state_dir, 0, mkey, err)) == 0) {
		rc = seal_open_key(mkey, SEAL_PURPOSE_GRANTREQ, (const uint8_t *)raw, rawlen, &plain,
		    &plainlen, err);
		OPENSSL_cleanse(mkey, sizeof mkey);
	}
	free(raw);
	if (rc != 0)
		goto out;
	if (rtg_unhex(plain, priv, sizeof priv, &n) != 0 || n != sizeof priv ||
	    (k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, sizeof priv)) == NULL ||
	    EVP_PKEY_get_raw_public_key(k, mine, &pl) != 1) {
		rc = shir_error_set(err, SHIR_EPROTO, "%s holds no key", path);
		goto out;
	}
	seal_plain_free(plain, plainlen);
	plain = NULL;
	if ((rc = rtg_derive(k, eph, eph, mine, skey, err)) != 0)
		goto out;
	rc = seal_open_key(skey, SEAL_PURPOSE_GRANT, box, boxlen, &plain, &plainlen, err);
	if (rc != 0) {
		rtg_fp(mine, fp);
		rc = shir_error_set(err, SHIR_ECRYPTO, "%s does not open with this node's request key "
		    "(fingerprint %s): it was granted to another request, or changed", file, fp);
		goto out;
	}
	if ((rc = rtkey_hex_put(state_dir, plain, err)) == 0)
		unlink(path);
out:
	OPENSSL_cleanse(priv, sizeof priv);
	OPENSSL_cleanse(skey, sizeof skey);
	if (plain != NULL)
		seal_plain_free(plain, plainlen);
	EVP_PKEY_free(k);
	free(box);
	return rc;
}

int
rtgrant_is_grant(const char *file)
{
	char buf[64];
	size_t n;
	FILE *f = fopen(file, "re");

	if (f == NULL)
		return 0;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	return strstr(buf, "\"shirKeyGrant\"") != NULL;
}
