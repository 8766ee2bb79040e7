/* Fuzz target: the frames of the node-to-node link (peerframe.h), as a peer
 * sends them after the TLS handshake: parsed one after the other as the node
 * does, each frame's bounds checked against the input. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "node/cluster/peerframe.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct peerframe f;
	char why[128];
	long n;

	while (size > 0) {
		n = peerframe_parse(data, size, &f, why, sizeof why);
		if (n <= 0)
			break;
		if ((size_t)n > size || f.payload + f.len != data + n || f.len == 0 ||
		    f.len > PEERFRAME_MAX)
			abort();
		data += n;
		size -= (size_t)n;
	}
	return 0;
}
