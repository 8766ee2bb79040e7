/* peerframe: the framing of the node-to-node link (docs/ha.md, "Node-to-node
 * transport"). Inside TLS, each frame is one type byte, a 3-byte big-endian
 * payload length and the payload:
 *
 *   'S' len {"shirSync":...}   a sync message, the same text as on the relay
 *   'H' len NODE-ID            the accepting node's hello after the handshake
 *
 * A payload is 1 to PEERFRAME_MAX bytes. Protocol-style code: no I/O. */
#ifndef SHIR_PEERFRAME_H
#define SHIR_PEERFRAME_H

#include <stddef.h>
#include <stdint.h>

#include "node/cluster/csync.h"

#define PEERFRAME_HDR 4
#define PEERFRAME_MAX CSYNC_MSG_MAX
#define PEERFRAME_SYNC 'S'
#define PEERFRAME_HELLO 'H'
#define PEERFRAME_HELLO_MAX 64

struct peerframe {
	uint8_t type;
	const uint8_t *payload;	/* inside the buffer given */
	size_t len;
};

/* Looks at the start of buf. Returns 0 when more bytes are needed, the
 * frame's whole length (header + payload) with f filled, or -1 with why
 * (unknown type, empty or oversized payload, a hello that is not a node id):
 * the connection is to be closed. */
long peerframe_parse(const uint8_t *buf, size_t len, struct peerframe *f, char *why,
    size_t whylen);
/* The header of a frame of type with plen payload bytes (plen <= PEERFRAME_MAX). */
void peerframe_header(uint8_t out[PEERFRAME_HDR], uint8_t type, size_t plen);

#endif
