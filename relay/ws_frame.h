/* ws_frame: the WebSocket frame codec of RFC 6455 section 5, pure: bytes in,
 * a header out, no I/O and no endpoint state. The endpoint (ws.c) decides
 * from a decoded header who reads the frame: its own fast path (binary data,
 * unmasked in place) or wslay (text, control frames, anything invalid, so that
 * wslay's close codes stay the answer to bad input).
 *
 * These run once per frame (decode, put_header) or per payload byte (unmask)
 * on the relay's hot path, so they are inline here; tests/unit/test_ws.c feeds
 * the decoder every frame shape split at every offset. */
#ifndef SHIR_WS_FRAME_H
#define SHIR_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The longest header: 2 + 8 (length) + 4 (mask key). */
#define WS_FRAME_HEADER_MAX 14

struct ws_frame_hdr {
	bool fin;
	unsigned op;		/* 0 continuation, 1 text, 2 binary, 8 close, 9 ping, 10 pong */
	bool masked;
	uint8_t mask[4];	/* when masked */
	size_t hl;		/* header length, mask key included */
	uint64_t len;		/* payload length */
};

enum ws_frame_verdict {
	WS_FRAME_NEED_MORE,	/* the header is not complete yet */
	WS_FRAME_DATA,		/* a valid binary or continuation frame */
	WS_FRAME_OTHER,		/* a valid text or control frame */
	WS_FRAME_BAD,		/* not a frame RFC 6455 allows here */
};

/* The size of the frame at p, if its header is complete: header and payload
 * lengths, without validation. */
static inline bool
ws_frame_size(const uint8_t *p, size_t avail, size_t *hl, uint64_t *len)
{
	unsigned l7;
	int i;

	if (avail < 2)
		return false;
	l7 = p[1] & 0x7f;
	*hl = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((p[1] & 0x80) ? 4 : 0);
	if (avail < *hl)
		return false;
	if (l7 == 126)
		*len = ((uint64_t)p[2] << 8) | p[3];
	else if (l7 == 127)
		for (*len = 0, i = 2; i < 10; i++)
			*len = (*len << 8) | p[i];
	else
		*len = l7;
	return true;
}

/* Decodes and checks the header at p. expect_masked: frames from a client
 * must be masked, frames from a server must not (section 5.1). Checked: the
 * reserved bits (no extension is negotiated), reserved opcodes, control frames
 * (final, at most 125 bytes), the shortest length encoding, the top bit of a
 * 64-bit length. Message sequencing is the endpoint's. */
static inline enum ws_frame_verdict
ws_frame_decode(const uint8_t *p, size_t avail, bool expect_masked, struct ws_frame_hdr *h)
{
	unsigned l7;
	bool valid = true;

	if (!ws_frame_size(p, avail, &h->hl, &h->len))
		return WS_FRAME_NEED_MORE;
	h->fin = (p[0] & 0x80) != 0;
	h->op = p[0] & 0x0f;
	h->masked = (p[1] & 0x80) != 0;
	if (h->masked)
		memcpy(h->mask, p + h->hl - 4, 4);
	else
		memset(h->mask, 0, 4);
	l7 = p[1] & 0x7f;
	if (l7 == 126)
		valid = h->len >= 126;
	else if (l7 == 127)
		valid = h->len >= 65536 && !(h->len >> 63);
	if ((p[0] & 0x70) != 0 || h->masked != expect_masked)
		valid = false;
	if (h->op >= 8 && (!h->fin || h->len > 125 || h->op > 10))
		valid = false;
	if ((h->op >= 3 && h->op <= 7) || h->op > 10)
		valid = false;
	if (!valid)
		return WS_FRAME_BAD;
	return h->op == 0 || h->op == 2 ? WS_FRAME_DATA : WS_FRAME_OTHER;
}

/* XORs the mask into p[0..n), the mask's phase given by the payload offset;
 * a word at a time. */
static inline void
ws_frame_unmask(uint8_t *p, size_t n, const uint8_t key[4], uint64_t off)
{
	uint8_t k[8];
	uint64_t kw, w;
	size_t i;

	for (i = 0; i < 8; i++)
		k[i] = key[(off + i) & 3];
	memcpy(&kw, k, 8);
	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		w ^= kw;
		memcpy(p + i, &w, 8);
	}
	for (; i < n; i++)
		p[i] ^= k[i & 7];
}

/* Writes a frame header without the mask bit and key: returns its length
 * (2, 4 or 10 bytes). */
static inline size_t
ws_frame_put_header(uint8_t *out, bool fin, unsigned op, uint64_t len)
{
	size_t n = 0;
	int i;

	out[n++] = (uint8_t)((fin ? 0x80 : 0) | (op & 0x0f));
	if (len < 126) {
		out[n++] = (uint8_t)len;
	} else if (len <= 0xffff) {
		out[n++] = 126;
		out[n++] = (uint8_t)(len >> 8);
		out[n++] = (uint8_t)len;
	} else {
		out[n++] = 127;
		for (i = 7; i >= 0; i--)
			out[n++] = (uint8_t)(len >> (8 * i));
	}
	return n;
}

#endif
