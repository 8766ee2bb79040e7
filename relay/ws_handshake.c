/* ws_handshake: see ws_handshake.h. */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/log.h"
#include "common/random.h"
#include "relay/http1.h"
#include "relay/ws_handshake.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

int
ws_handshake_accept_key(const char *key, char out[29])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int rc = SHIR_ECRYPTO;

	if (c == NULL)
		return SHIR_ENOMEM;
	if (EVP_DigestInit_ex(c, EVP_sha1(), NULL) != 1 ||
	    EVP_DigestUpdate(c, key, strlen(key)) != 1 ||
	    EVP_DigestUpdate(c, WS_GUID, strlen(WS_GUID)) != 1 ||
	    EVP_DigestFinal_ex(c, md, &mdlen) != 1 || mdlen != 20)
		goto out;
	EVP_EncodeBlock((unsigned char *)out, md, 20);
	rc = 0;
out:
	EVP_MD_CTX_free(c);
	return rc;
}

int
ws_handshake_make_key(char out[25])
{
	unsigned char r[16];

	if (random_bytes(r, sizeof r) != 0)
		return SHIR_ECRYPTO;
	EVP_EncodeBlock((unsigned char *)out, r, sizeof r);
	return 0;
}

/* A valid Sec-WebSocket-Key is base64 of 16 bytes: 24 characters. */
static bool
key_valid(const char *k)
{
	unsigned char buf[32];
	int n;

	if (k == NULL || strlen(k) != 24 || k[22] != '=' || k[23] != '=')
		return false;
	n = EVP_DecodeBlock(buf, (const unsigned char *)k, 24);
	return n == 18;	/* 16 bytes + 2 padding bytes counted by OpenSSL */
}

int
ws_handshake_check_request(const struct http1_msg *m, struct shir_error *e)
{
	const char *v;

	if (strcmp(m->method, "GET") != 0)
		return shir_error_set(e, SHIR_EPROTO, "a WebSocket upgrade must use GET, not %s",
		    m->method);
	if (m->http_major != 1 || m->http_minor < 1)
		return shir_error_set(e, SHIR_EPROTO, "a WebSocket upgrade needs HTTP/1.1");
	if (!http1_msg_has_token(m, "Upgrade", "websocket") ||
	    !http1_msg_has_token(m, "Connection", "upgrade"))
		return shir_error_set(e, SHIR_EPROTO,
		    "the request lacks Upgrade: websocket and Connection: Upgrade");
	v = http1_msg_get(m, "Sec-WebSocket-Version");
	if (v == NULL || strcmp(v, "13") != 0)
		return shir_error_set(e, SHIR_EUNSUPPORTED,
		    "Sec-WebSocket-Version must be 13");
	if (!key_valid(http1_msg_get(m, "Sec-WebSocket-Key")))
		return shir_error_set(e, SHIR_EPROTO,
		    "Sec-WebSocket-Key is missing or not base64 of 16 bytes");
	return 0;
}

int
ws_handshake_check_101(const struct http1_msg *m, const char *key, const char *offered,
    char **protocol, struct shir_error *e)
{
	char want[29];
	const char *acc = http1_msg_get(m, "Sec-WebSocket-Accept");
	const char *proto = http1_msg_get(m, "Sec-WebSocket-Protocol");

	if (!http1_msg_has_token(m, "Upgrade", "websocket") ||
	    !http1_msg_has_token(m, "Connection", "upgrade"))
		return shir_error_set(e, SHIR_EPROTO,
		    "the server answered 101 without Upgrade: websocket / Connection: Upgrade");
	if (ws_handshake_accept_key(key, want) != 0 || acc == NULL || strcmp(acc, want) != 0)
		return shir_error_set(e, SHIR_EPROTO,
		    "the server's Sec-WebSocket-Accept does not match our key");
	if (http1_msg_get(m, "Sec-WebSocket-Extensions") != NULL)
		return shir_error_set(e, SHIR_EPROTO,
		    "the server negotiated an extension we did not offer");
	if (proto != NULL) {
		struct http1_msg off = { 0 };
		struct http1_header h = { (char *)"P", (char *)offered };

		off.h = &h;
		off.nh = 1;
		if (offered == NULL || !http1_msg_has_token(&off, "P", proto))
			return shir_error_set(e, SHIR_EPROTO,
			    "the server chose subprotocol %s, which we did not offer", log_q(proto));
		if ((*protocol = strdup(proto)) == NULL)
			return shir_error_set(e, SHIR_ENOMEM, "out of memory");
	}
	return 0;
}
