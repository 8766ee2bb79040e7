/* rtca: the runtime CA the node-to-node transport (peerlink.h) uses as proof
 * of membership (docs/ha.md, "Node-to-node transport").
 *
 * The CA key (Ed25519) is derived from the runtime data key with HKDF-SHA256
 * (label "shir runtime CA v1"), and the CA certificate from it is the same
 * bytes on every member (fixed serial, names and dates; Ed25519 signatures
 * are deterministic). A node issues itself a short-lived certificate naming
 * its node id; a peer's certificate is accepted when it chains to the CA. */
#ifndef SHIR_RTCA_H
#define SHIR_RTCA_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/shir_err.h"

#define RTCA_KEY_LEN 32

int rtca_derive(const uint8_t data_key[RTCA_KEY_LEN], EVP_PKEY **ca_key, X509 **ca_cert,
    struct shir_error *err);
/* A new Ed25519 key and a certificate for node_id valid from now - 60 s for
 * seconds (a negative value makes an already expired one, for tests). */
int rtca_issue(EVP_PKEY *ca_key, X509 *ca_cert, const char *node_id, long seconds,
    EVP_PKEY **key, X509 **cert, struct shir_error *err);
/* 0 when peer chains to ca_cert and is valid now; else -1 with why filled
 * ("certificate has expired", "unable to get local issuer certificate", ...). */
int rtca_verify(X509 *ca_cert, X509 *peer, char *why, size_t whylen);

#endif
