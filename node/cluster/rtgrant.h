/* rtgrant: the runtime data key handed to a new node sealed to that node's
 * own X25519 key pair by a member, with no password (docs/ha.md):
 *
 *   new node:  rtgrant_request  -> a key pair; the private half stays in
 *              state_dir/RTGRANT_REQ_FILE sealed under the machine key; the
 *              request file holds the public half:
 *                {"shirKeyRequest":{"v":1,"node":NAME,"publicKey":HEX}}
 *   member:    rtgrant_grant    -> an ephemeral X25519 pair, ECDH with the
 *              request's key, HKDF-SHA256 (salt: both public keys, info
 *              "shir runtime key grant v1") -> an AES-256-GCM seal (purpose
 *              'G') of the data key:
 *                {"shirKeyGrant":{"v":1,"ephemeralKey":HEX,"recipient":FP,
 *                 "box":HEX}}
 *   new node:  rtgrant_accept   -> opens it with its private key, stores the
 *              data key (refused when the node has another one), forgets the
 *              request key.
 *
 * Both files are useless to anyone else: the request is public, the grant
 * opens only with the private key that never left the new node. What they do
 * not prove is who made the request: the member compares the fingerprint
 * both commands print (the first 128 bits of SHA-256 of the public key) with
 * the one the new node printed, by a channel it trusts. */
#ifndef SHIR_RTGRANT_H
#define SHIR_RTGRANT_H

#include "common/shir_err.h"

#define RTGRANT_REQ_FILE "runtime-key-request"
#define RTGRANT_FP_LEN 32	/* hex characters */
#define SEAL_PURPOSE_GRANT 'G'
#define SEAL_PURPOSE_GRANTREQ 'Q'

int rtgrant_request(const char *state_dir, const char *node_name, const char *file,
    char fp[RTGRANT_FP_LEN + 1], struct shir_error *err);
int rtgrant_grant(const char *state_dir, const char *reqfile, const char *file,
    char fp[RTGRANT_FP_LEN + 1], struct shir_error *err);
int rtgrant_accept(const char *state_dir, const char *file, struct shir_error *err);
/* 1 when the file starts like a grant, else 0. */
int rtgrant_is_grant(const char *file);

#endif
