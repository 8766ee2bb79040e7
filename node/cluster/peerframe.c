/* peerframe: see peerframe.h. */
#include "config.h"

#include <stdio.h>

#include "node/cluster/peerframe.h"

void
peerframe_header(uint8_t out[PEERFRAME_HDR], uint8_t type, size_t plen)
{
	out[0] = type;
	out[1] = (uint8_t)(plen >> 16);
	out[2] = (uint8_t)(plen >> 8);
	out[3] = (uint8_t)plen;
}

static int
peerframe_hello_ok(const uint8_t *p, size_t n)
{
	size_t i;

	if (n > PEERFRAME_HELLO_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (p[i] <= 0x20 || p[i] >= 0x7f)
			return 0;
	return 1;
}

long
peerframe_parse(const uint8_t *buf, size_t len, struct peerframe *f, char *why, size_t whylen)
{
	size_t plen;

	if (len < 1)
		return 0;
	if (buf[0] != PEERFRAME_SYNC && buf[0] != PEERFRAME_HELLO) {
		snprintf(why, whylen, "unknown frame type 0x%02x", buf[0]);
		return -1;
	}
	if (len < PEERFRAME_HDR)
		return 0;
	plen = (size_t)buf[1] << 16 | (size_t)buf[2] << 8 | buf[3];
	if (plen == 0 || plen > PEERFRAME_MAX) {
		snprintf(why, whylen, "a frame of %zu bytes (1 to %d allowed)", plen, PEERFRAME_MAX);
		return -1;
	}
	if (buf[0] == PEERFRAME_HELLO && plen > PEERFRAME_HELLO_MAX) {
		snprintf(why, whylen, "a hello of %zu bytes (at most %d)", plen, PEERFRAME_HELLO_MAX);
		return -1;
	}
	if (len < PEERFRAME_HDR + plen)
		return 0;
	if (buf[0] == PEERFRAME_HELLO && !peerframe_hello_ok(buf + PEERFRAME_HDR, plen)) {
		snprintf(why, whylen, "a hello that is not a node id");
		return -1;
	}
	f->type = buf[0];
	f->payload = buf + PEERFRAME_HDR;
	f->len = plen;
	return (long)(PEERFRAME_HDR + plen);
}
