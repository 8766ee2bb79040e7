/* ws_handshake: the HTTP side of RFC 6455 section 4, pure (no I/O, no
 * endpoint): the keys, the server's check of an upgrade request, and the
 * client's check of a 101. ws.c builds and sends the heads. */
#ifndef SHIR_WS_HANDSHAKE_H
#define SHIR_WS_HANDSHAKE_H

#include "common/shir_err.h"

struct http1_msg;

/* Sec-WebSocket-Accept for a key; out must hold 29 bytes. */
int ws_handshake_accept_key(const char *key, char out[29]);
/* A fresh random Sec-WebSocket-Key; out must hold 25 bytes. */
int ws_handshake_make_key(char out[25]);
/* A server's check of an upgrade request: GET, HTTP/1.1, Upgrade and
 * Connection tokens, version 13 (SHIR_EUNSUPPORTED otherwise: answer 426),
 * a key that is base64 of 16 bytes. 0 or SHIR_EPROTO with e saying what. */
int ws_handshake_check_request(const struct http1_msg *m, struct shir_error *e);
/* A client's check of the server's 101 to a request made with key, offering
 * the subprotocols offered ("p1, p2" or NULL): Upgrade and Connection, the
 * accept value, no extension, a chosen subprotocol among those offered
 * (*protocol: a copy of it, or left NULL). 0 or SHIR_EPROTO/ENOMEM. */
int ws_handshake_check_101(const struct http1_msg *m, const char *key, const char *offered,
    char **protocol, struct shir_error *e);

#endif
