/* irkey: see irkey.h. */
#include "config.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "relay/irkey.h"

void
irkey_clear(struct irkey *k)
{
	if (k == NULL)
		return;
	free(k->ir);
	free(k->endpoint);
	free(k->hc);
	free(k->key_name);
	if (k->key != NULL) {
		OPENSSL_cleanse(k->key, strlen(k->key));
		free(k->key);
	}
	free(k->tls_pin);
	memset(k, 0, sizeof *k);
}

static bool
endpoint_ok(const char *s)
{
	const char *h;

	if (strncmp(s, "wss://", 6) == 0)
		h = s + 6;
	else if (strncmp(s, "ws://", 5) == 0)
		h = s + 5;
	else
		return false;
	if (*h == '\0' || *h == '/' || *h == ':')
		return false;
	for (; *h; h++)
		if ((unsigned char)*h <= 0x20 || *h == '?' || *h == '#' || *h == '@' || *h == '"')
			return false;
	return true;
}

static bool
pin_ok(const char *s)
{
	unsigned char buf[64];
	size_t n;

	if (strncmp(s, "sha256/", 7) != 0)
		return false;
	s += 7;
	n = strlen(s);
	if (n != 44 || s[43] != '=')
		return false;
	return EVP_DecodeBlock(buf, (const unsigned char *)s, 44) == 33;
}

int
irkey_encode(const struct irkey *k, char **out, struct shir_error *e)
{
	cJSON *o = NULL;
	char *json = NULL, *r = NULL;
	size_t jl, bl, i;
	unsigned char *b64 = NULL;
	int rc;

	*out = NULL;
	if (k->ir == NULL || k->endpoint == NULL || k->hc == NULL || k->key_name == NULL ||
	    k->key == NULL || !*k->ir || !*k->hc || !*k->key_name || !*k->key)
		return shir_error_set(e, SHIR_EINVAL,
		    "a key needs ir, endpoint, hc, keyName and key");
	if (!endpoint_ok(k->endpoint))
		return shir_error_set(e, SHIR_EINVAL,
		    "the endpoint must look like wss://host:port or ws://host:port");
	if (k->tls_pin != NULL && !pin_ok(k->tls_pin))
		return shir_error_set(e, SHIR_EINVAL,
		    "tlsPin must be sha256/ followed by the base64 of a SHA-256 hash");
	o = cJSON_CreateObject();
	if (o == NULL || !cJSON_AddStringToObject(o, "ir", k->ir) ||
	    !cJSON_AddStringToObject(o, "endpoint", k->endpoint) ||
	    !cJSON_AddStringToObject(o, "hc", k->hc) ||
	    !cJSON_AddStringToObject(o, "keyName", k->key_name) ||
	    !cJSON_AddStringToObject(o, "key", k->key) ||
	    (k->tls_pin != NULL && !cJSON_AddStringToObject(o, "tlsPin", k->tls_pin)) ||
	    (json = cJSON_PrintUnformatted(o)) == NULL) {
		rc = shir_error_set(e, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	jl = strlen(json);
	bl = 4 * ((jl + 2) / 3);
	if ((b64 = malloc(bl + 1)) == NULL || (r = malloc(strlen(IRKEY_PREFIX) + bl + 1)) == NULL) {
		rc = shir_error_set(e, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	EVP_EncodeBlock(b64, (unsigned char *)json, (int)jl);
	while (bl > 0 && b64[bl - 1] == '=')
		bl--;
	for (i = 0; i < bl; i++)
		if (b64[i] == '+')
			b64[i] = '-';
		else if (b64[i] == '/')
			b64[i] = '_';
	strcpy(r, IRKEY_PREFIX);
	memcpy(r + strlen(IRKEY_PREFIX), b64, bl);
	r[strlen(IRKEY_PREFIX) + bl] = '\0';
	*out = r;
	r = NULL;
	rc = 0;
out:
	if (json != NULL) {
		OPENSSL_cleanse(json, strlen(json));
		free(json);
	}
	if (b64 != NULL) {
		OPENSSL_cleanse(b64, strlen((char *)b64));
		free(b64);
	}
	free(r);
	cJSON_Delete(o);
	return rc;
}

static int
take(const cJSON *o, const char *name, bool required, char **dst, struct shir_error *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (v == NULL) {
		if (required)
			return shir_error_set(e, SHIR_EINVAL, "the key lacks the field \"%s\"", name);
		return 0;
	}
	if (!cJSON_IsString(v) || v->valuestring == NULL || v->valuestring[0] == '\0')
		return shir_error_set(e, SHIR_EINVAL, "the key's field \"%s\" must be a non-empty string",
		    name);
	if ((*dst = strdup(v->valuestring)) == NULL)
		return shir_error_set(e, SHIR_ENOMEM, "out of memory");
	return 0;
}

int
irkey_decode(const char *s, struct irkey *k, struct shir_error *e)
{
	size_t n, pl = strlen(IRKEY_PREFIX), i, bl, padded;
	unsigned char *b = NULL, *raw = NULL;
	cJSON *o = NULL;
	int rc, dl;

	memset(k, 0, sizeof *k);
	if (s == NULL)
		return shir_error_set(e, SHIR_EINVAL, "no key given");
	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	if (n > IRKEY_MAX)
		return shir_error_set(e, SHIR_EINVAL, "the key is longer than %d characters", IRKEY_MAX);
	if (n < pl || strncmp(s, IRKEY_PREFIX, pl) != 0) {
		if (n >= 3 && strncmp(s, "IR@", 3) == 0)
			return shir_error_set(e, SHIR_EINVAL,
			    "this key has a format version this program does not know (want IR@v1@)");
		return shir_error_set(e, SHIR_EINVAL,
		    "this is not an integration runtime key: it must start with IR@v1@");
	}
	s += pl;
	bl = n - pl;
	if (bl == 0)
		return shir_error_set(e, SHIR_EINVAL, "the key is empty after IR@v1@");
	if (bl % 4 == 1)
		return shir_error_set(e, SHIR_EINVAL, "the key is truncated (bad base64url length)");
	padded = (bl + 3) / 4 * 4;
	if ((b = malloc(padded + 1)) == NULL || (raw = malloc(padded)) == NULL) {
		rc = shir_error_set(e, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < bl; i++) {
		char c = s[i];

		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (!isalnum((unsigned char)c)) {
			rc = shir_error_set(e, SHIR_EINVAL,
			    "the key has a character outside base64url at position %zu", pl + i);
			goto out;
		}
		b[i] = (unsigned char)c;
	}
	for (; i < padded; i++)
		b[i] = '=';
	b[padded] = '\0';
	dl = EVP_DecodeBlock(raw, b, (int)padded);
	if (dl < 0) {
		rc = shir_error_set(e, SHIR_EINVAL, "the key is not valid base64url");
		goto out;
	}
	dl -= (int)(padded - bl);
	if (dl <= 0 || memchr(raw, '\0', (size_t)dl) != NULL) {
		rc = shir_error_set(e, SHIR_EINVAL, "the key does not decode to JSON");
		goto out;
	}
	o = cJSON_ParseWithLength((const char *)raw, (size_t)dl);
	if (o == NULL || !cJSON_IsObject(o)) {
		rc = shir_error_set(e, SHIR_EINVAL, "the key does not decode to a JSON object");
		goto out;
	}
	if ((rc = take(o, "ir", true, &k->ir, e)) != 0 ||
	    (rc = take(o, "endpoint", true, &k->endpoint, e)) != 0 ||
	    (rc = take(o, "hc", true, &k->hc, e)) != 0 ||
	    (rc = take(o, "keyName", true, &k->key_name, e)) != 0 ||
	    (rc = take(o, "key", true, &k->key, e)) != 0 ||
	    (rc = take(o, "tlsPin", false, &k->tls_pin, e)) != 0)
		goto out;
	if (!endpoint_ok(k->endpoint)) {
		rc = shir_error_set(e, SHIR_EINVAL,
		    "the key's endpoint %s is not a ws:// or wss:// URL with a host", k->endpoint);
		goto out;
	}
	if (k->tls_pin != NULL && !pin_ok(k->tls_pin)) {
		rc = shir_error_set(e, SHIR_EINVAL,
		    "the key's tlsPin must be sha256/ followed by the base64 of a SHA-256 hash");
		goto out;
	}
	rc = 0;
out:
	if (raw != NULL) {
		OPENSSL_cleanse(raw, padded);
		free(raw);
	}
	if (b != NULL) {
		OPENSSL_cleanse(b, padded);
		free(b);
	}
	cJSON_Delete(o);
	if (rc != 0)
		irkey_clear(k);
	return rc;
}
