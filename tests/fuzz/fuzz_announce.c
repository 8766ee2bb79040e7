/* Fuzz target: relay/announce, the relay reading a listener's Shir-Node,
 * Shir-Version and Shir-Node-Instance headers (the input split at '\n'). */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/announce.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), *v[3] = { NULL, NULL, NULL }, *p;
	struct announce a;
	struct announce_lines l;
	int i;

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	for (i = 0, p = s; i < 3 && p != NULL; i++) {
		v[i] = p;
		p = strchr(p, '\n');
		if (p != NULL)
			*p++ = '\0';
	}
	announce_parse(v[0], v[1], v[2], &a);
	if (strlen(a.node) > ANNOUNCE_NAME_MAX || strlen(a.version) > ANNOUNCE_VERSION_MAX)
		abort();
	/* what a node sends, the relay reads back the same */
	if (v[0] != NULL && announce_headers(v[0], "0.1.0", "id", &l) == 0 && *v[0] &&
	    !strpbrk(v[0], "\r\x7f")) {
		struct announce b;
		int ctl = 0;

		for (p = v[0]; *p; p++)
			ctl |= (unsigned char)*p < 0x20;
		announce_parse(l.node + strlen(ANNOUNCE_NODE) + 2, "0.1.0", "id", &b);
		if (!ctl && strcmp(b.node, v[0]) != 0)
			abort();
	}
	free(s);
	return 0;
}
