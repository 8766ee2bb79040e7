#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "common/jsonutil.h"
#include "node/admin/seal.h"
#include "node/cluster/csync.h"

/* plaintext budget of one records message: base64 of the seal plus the
 * envelope must stay under CSYNC_MSG_MAX */
#define CSYNC_PLAIN_MAX ((CSYNC_MSG_MAX - 256) / 4 * 3 - 64)

void
csync_digest(const struct credstore_rec *v, size_t n, char out[CSYNC_DIGEST_LEN + 1])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	char line[CREDSTORE_NAME_MAX + CREDSTORE_ORIGIN_MAX + 64];
	size_t i;

	memset(md, 0, sizeof md);
	if (ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1) {
		for (i = 0; i < n; i++) {
			int k = snprintf(line, sizeof line, "%s\n%llu.%u.%s\n%c\n", v[i].name,
			    (unsigned long long)v[i].hlc.ms, v[i].hlc.c, v[i].hlc.origin,
			    v[i].value ? 'v' : 'd');

			EVP_DigestUpdate(ctx, line, (size_t)k);
		}
		EVP_DigestFinal_ex(ctx, md, NULL);
	}
	EVP_MD_CTX_free(ctx);
	for (i = 0; i < CSYNC_DIGEST_LEN / 2; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static char *
csync_b64(const void *d, size_t n)
{
	char *o = malloc(4 * ((n + 2) / 3) + 1);

	if (o != NULL)
		EVP_EncodeBlock((unsigned char *)o, d, (int)n);
	return o;
}

/* Strict standard base64 with padding; *out is NUL-terminated. */
static int
csync_unb64(const char *s, uint8_t **out, size_t *outlen)
{
	size_t n = strlen(s), pad = 0, i;
	int k;

	*out = NULL;
	if (n % 4 != 0 || n > 2 * CSYNC_MSG_MAX)
		return -1;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '+' || c == '/' || (c == '=' && i >= n - 2)))
			return -1;
	}
	if (n > 0 && s[n - 1] == '=')
		pad++;
	if (n > 1 && s[n - 2] == '=') {
		if (s[n - 1] != '=')
			return -1;
		pad++;
	}
	if ((*out = malloc(n / 4 * 3 + 1)) == NULL)
		return -1;
	k = EVP_DecodeBlock(*out, (const unsigned char *)s, (int)n);
	if (k < 0 || (size_t)k < pad) {
		free(*out);
		*out = NULL;
		return -1;
	}
	*outlen = (size_t)k - pad;
	(*out)[*outlen] = 0;
	return 0;
}

/* Seals doc under key into the envelope. */
static int
csync_seal(const uint8_t key[CSYNC_KEY_LEN], cJSON *doc, char **out, struct shir_error *err)
{
	char *plain = cJSON_PrintUnformatted(doc), *box = NULL;
	uint8_t *sealed = NULL;
	size_t sealedlen = 0;
	int rc;

	*out = NULL;
	if (plain == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	rc = seal_with_key(key, SEAL_PURPOSE_SYNC, plain, strlen(plain), &sealed, &sealedlen, err);
	OPENSSL_cleanse(plain, strlen(plain));
	free(plain);
	if (rc != 0)
		return rc;
	box = csync_b64(sealed, sealedlen);
	free(sealed);
	if (box == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	if (strlen(box) + 64 > CSYNC_MSG_MAX) {
		free(box);
		return shir_error_set(err, SHIR_ETOOBIG, "a sync message would exceed %d bytes",
		    CSYNC_MSG_MAX);
	}
	if (asprintf(out, "{\"shirSync\":{\"v\":1,\"box\":\"%s\"}}", box) < 0) {
		*out = NULL;
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
	}
	free(box);
	return rc;
}

int
csync_encode_digest(const uint8_t key[CSYNC_KEY_LEN], const struct csync_digest_info *d,
    char **out, struct shir_error *err)
{
	cJSON *doc = cJSON_CreateObject();
	int rc;

	if (doc == NULL || !cJSON_AddStringToObject(doc, "t", "digest") ||
	    !cJSON_AddStringToObject(doc, "node", d->node) ||
	    !cJSON_AddStringToObject(doc, "digest", d->digest) ||
	    !cJSON_AddNumberToObject(doc, "n", (double)d->count) ||
	    !cJSON_AddStringToObject(doc, "name", d->name ? d->name : "") ||
	    !cJSON_AddStringToObject(doc, "version", d->version ? d->version : "") ||
	    !cJSON_AddNumberToObject(doc, "storeVersion", (double)d->store_version) ||
	    (d->state != NULL && !cJSON_AddStringToObject(doc, "state", d->state)) ||
	    (d->addr != NULL && !cJSON_AddStringToObject(doc, "addr", d->addr)) ||
	    (d->fp != NULL && !cJSON_AddStringToObject(doc, "fp", d->fp))) {
		cJSON_Delete(doc);
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	}
	rc = csync_seal(key, doc, out, err);
	cJSON_Delete(doc);
	return rc;
}

/* Wipes the strings of a document that held values, then frees it. */
static void
csync_doc_free(cJSON *doc)
{
	credstore_json_free(doc);
}

static cJSON *
csync_rec_json(const struct credstore_rec *r)
{
	cJSON *o = cJSON_CreateObject(), *h = cJSON_CreateArray();
	char *b = NULL;

	if (o == NULL || h == NULL)
		goto fail;
	cJSON_AddItemToObject(o, "n", cJSON_CreateString(r->name));
	cJSON_AddItemToArray(h, cJSON_CreateNumber((double)r->hlc.ms));
	cJSON_AddItemToArray(h, cJSON_CreateNumber((double)r->hlc.c));
	cJSON_AddItemToArray(h, cJSON_CreateString(r->hlc.origin));
	cJSON_AddItemToObject(o, "h", h);
	h = NULL;
	if (r->value != NULL) {
		if ((b = csync_b64(r->value, strlen(r->value))) == NULL ||
		    cJSON_AddStringToObject(o, "v", b) == NULL)
			goto fail;
		OPENSSL_cleanse(b, strlen(b));
		free(b);
	} else if (cJSON_AddTrueToObject(o, "d") == NULL) {
		goto fail;
	}
	return o;
fail:
	if (b != NULL) {
		OPENSSL_cleanse(b, strlen(b));
		free(b);
	}
	cJSON_Delete(h);
	csync_doc_free(o);
	return NULL;
}

static size_t
csync_rec_size(const struct credstore_rec *r)
{
	size_t v = r->value ? 4 * ((strlen(r->value) + 2) / 3) : 8;

	return strlen(r->name) + strlen(r->hlc.origin) + v + 80;
}

int
csync_encode_records(const uint8_t key[CSYNC_KEY_LEN], const char *node,
    const struct credstore_rec *v, size_t n, size_t *next, char **out, struct shir_error *err)
{
	cJSON *doc = cJSON_CreateObject(), *arr;
	size_t used = 128 + strlen(node), i = *next;
	int rc;

	*out = NULL;
	if (doc == NULL || !cJSON_AddStringToObject(doc, "t", "records") ||
	    !cJSON_AddStringToObject(doc, "node", node) ||
	    (arr = cJSON_AddArrayToObject(doc, "records")) == NULL) {
		cJSON_Delete(doc);
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	}
	for (; i < n; i++) {
		size_t sz = csync_rec_size(&v[i]);
		cJSON *o;

		if (used + sz > CSYNC_PLAIN_MAX) {
			if (i == *next) {
				csync_doc_free(doc);
				return shir_error_set(err, SHIR_ETOOBIG, "credential %s does not fit in "
				    "a sync message", v[i].name);
			}
			break;
		}
		if ((o = csync_rec_json(&v[i])) == NULL) {
			csync_doc_free(doc);
			return shir_error_set(err, SHIR_ENOMEM, "out of memory");
		}
		cJSON_AddItemToArray(arr, o);
		used += sz;
	}
	rc = csync_seal(key, doc, out, err);
	csync_doc_free(doc);
	if (rc == 0)
		*next = i;
	return rc;
}

void
csync_msg_clear(struct csync_msg *m)
{
	credstore_records_free(m->recs, m->nrecs);
	memset(m, 0, sizeof *m);
}

static int
csync_str(cJSON *o, const char *k, char *out, size_t max)
{
	cJSON *s = cJSON_GetObjectItemCaseSensitive(o, k);

	if (!cJSON_IsString(s) || strlen(s->valuestring) >= max)
		return -1;
	snprintf(out, max, "%s", s->valuestring);
	return 0;
}

static int
csync_decode_rec(cJSON *o, struct credstore_rec *r, struct shir_error *err)
{
	cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "h");
	cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "v");
	long long ms, c;
	uint8_t *val = NULL;
	size_t vlen = 0;

	if (!cJSON_IsObject(o) || csync_str(o, "n", r->name, sizeof r->name) != 0 ||
	    credstore_name_check(r->name, 0, err) != 0)
		return shir_error_set(err, SHIR_EPROTO, "a record has no valid name");
	if (!cJSON_IsArray(h) || cJSON_GetArraySize(h) != 3 ||
	    json_whole(cJSON_GetArrayItem(h, 0), 0, (1LL << 52), &ms) != 0 ||
	    json_whole(cJSON_GetArrayItem(h, 1), 0, UINT32_MAX, &c) != 0 ||
	    !cJSON_IsString(cJSON_GetArrayItem(h, 2)) ||
	    strlen(cJSON_GetArrayItem(h, 2)->valuestring) > CREDSTORE_ORIGIN_MAX)
		return shir_error_set(err, SHIR_EPROTO, "record %s has no valid version", r->name);
	r->hlc.ms = (uint64_t)ms;
	r->hlc.c = (uint32_t)c;
	snprintf(r->hlc.origin, sizeof r->hlc.origin, "%s", cJSON_GetArrayItem(h, 2)->valuestring);
	if (v == NULL) {
		if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "d")))
			return shir_error_set(err, SHIR_EPROTO, "record %s has neither a value nor "
			    "a delete", r->name);
		return 0;
	}
	if (!cJSON_IsString(v) || csync_unb64(v->valuestring, &val, &vlen) != 0)
		return shir_error_set(err, SHIR_EPROTO, "record %s has a malformed value", r->name);
	if (vlen > CREDSTORE_VALUE_MAX || memchr(val, 0, vlen) != NULL) {
		OPENSSL_cleanse(val, vlen);
		free(val);
		return shir_error_set(err, SHIR_EPROTO, "record %s has a value over %d bytes or "
		    "with a NUL", r->name, CREDSTORE_VALUE_MAX);
	}
	r->value = (char *)val;
	return 0;
}

/* Visible ASCII, no space (an address). */
static int
csync_visible(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

static int
csync_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return i == n;
}

static int
csync_decode_plain(cJSON *doc, struct csync_msg *m, struct shir_error *err)
{
	char t[16];
	cJSON *arr, *o;
	long long cnt;
	size_t i = 0;

	if (!cJSON_IsObject(doc) || csync_str(doc, "t", t, sizeof t) != 0 ||
	    csync_str(doc, "node", m->node, sizeof m->node) != 0 || m->node[0] == 0)
		return shir_error_set(err, SHIR_EPROTO, "the sync message has no type or node");
	if (strcmp(t, "digest") == 0) {
		m->kind = CSYNC_DIGEST;
		if (csync_str(doc, "digest", m->digest, sizeof m->digest) != 0 ||
		    json_whole(cJSON_GetObjectItemCaseSensitive(doc, "n"), 0, 1LL << 40, &cnt) != 0)
			return shir_error_set(err, SHIR_EPROTO, "the digest message is malformed");
		m->count = (uint64_t)cnt;
		/* optional: who it is */
		if (cJSON_GetObjectItemCaseSensitive(doc, "name") != NULL &&
		    csync_str(doc, "name", m->name, sizeof m->name) != 0)
			return shir_error_set(err, SHIR_EPROTO, "the digest's node name is malformed");
		if (cJSON_GetObjectItemCaseSensitive(doc, "version") != NULL &&
		    csync_str(doc, "version", m->version, sizeof m->version) != 0)
			return shir_error_set(err, SHIR_EPROTO, "the digest's version is malformed");
		if (cJSON_GetObjectItemCaseSensitive(doc, "storeVersion") != NULL) {
			if (json_whole(cJSON_GetObjectItemCaseSensitive(doc, "storeVersion"), 0,
			    1LL << 52, &cnt) != 0)
				return shir_error_set(err, SHIR_EPROTO, "the digest's store version is "
				    "malformed");
			m->store_version = (uint64_t)cnt;
		}
		if (cJSON_GetObjectItemCaseSensitive(doc, "state") != NULL &&
		    (csync_str(doc, "state", m->state, sizeof m->state) != 0 ||
		    (strcmp(m->state, "Active") != 0 && strcmp(m->state, "Inactive") != 0)))
			return shir_error_set(err, SHIR_EPROTO, "the digest's state is malformed");
		/* optional: where its remote-access port is, and its certificate */
		if (cJSON_GetObjectItemCaseSensitive(doc, "addr") != NULL &&
		    (csync_str(doc, "addr", m->addr, sizeof m->addr) != 0 || !csync_visible(m->addr)))
			return shir_error_set(err, SHIR_EPROTO, "the digest's address is malformed");
		if (cJSON_GetObjectItemCaseSensitive(doc, "fp") != NULL &&
		    (csync_str(doc, "fp", m->fp, sizeof m->fp) != 0 || !csync_hex(m->fp, 64)))
			return shir_error_set(err, SHIR_EPROTO, "the digest's fingerprint is malformed");
		return 0;
	}
	if (strcmp(t, "records") != 0)
		return shir_error_set(err, SHIR_EPROTO, "unknown sync message type %s", t);
	m->kind = CSYNC_RECORDS;
	arr = cJSON_GetObjectItemCaseSensitive(doc, "records");
	if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) > CREDSTORE_MAX_ENTRIES * 2)
		return shir_error_set(err, SHIR_EPROTO, "the records message is malformed");
	if ((m->recs = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof *m->recs)) == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	cJSON_ArrayForEach(o, arr) {
		int rc = csync_decode_rec(o, &m->recs[i], err);

		m->nrecs = i + 1;
		if (rc != 0)
			return rc;
		i++;
	}
	return 0;
}

int
csync_decode(const uint8_t key[CSYNC_KEY_LEN], const char *text, size_t len,
    struct csync_msg *m, struct shir_error *err)
{
	cJSON *env = NULL, *inner = NULL, *box;
	uint8_t *sealed = NULL;
	char *plain = NULL;
	size_t sealedlen = 0, plainlen = 0;
	int rc;

	memset(m, 0, sizeof *m);
	if (len > CSYNC_MSG_MAX)
		return shir_error_set(err, SHIR_ETOOBIG, "a sync message of %zu bytes (at most %d)",
		    len, CSYNC_MSG_MAX);
	env = cJSON_ParseWithLength(text, len);
	box = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(env, "shirSync"),
	    "box");
	if (!cJSON_IsString(box) || csync_unb64(box->valuestring, &sealed, &sealedlen) != 0) {
		rc = shir_error_set(err, SHIR_EPROTO, "not a sync message (no base64 box)");
		goto out;
	}
	if ((rc = seal_open_key(key, SEAL_PURPOSE_SYNC, sealed, sealedlen, &plain, &plainlen,
	    err)) != 0) {
		rc = shir_error_set(err, SHIR_ECRYPTO, "the sync message does not open under this "
		    "runtime's data key (another runtime, a forgery, or a changed byte)");
		goto out;
	}
	if ((inner = cJSON_ParseWithLength(plain, plainlen)) == NULL) {
		rc = shir_error_set(err, SHIR_EPROTO, "the sync message opens but is not JSON");
		goto out;
	}
	rc = csync_decode_plain(inner, m, err);
out:
	if (rc != 0)
		csync_msg_clear(m);
	credstore_json_free(inner);
	if (plain != NULL)
		seal_plain_free(plain, plainlen);
	free(sealed);
	cJSON_Delete(env);
	return rc;
}

char *
csync_mark_inactive(const char *text)
{
	static const char head[] = "{\"shirSync\":{\"v\":1,";
	char *out;

	if (strncmp(text, head, sizeof head - 1) != 0)
		return NULL;
	if (asprintf(&out, "%s\"state\":\"Inactive\",%s", head, text + sizeof head - 1) < 0)
		return NULL;
	return out;
}
