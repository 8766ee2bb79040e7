/* Fuzz target: the listener's control-message handling (lmsg_handle), on the
 * control channel and on a rendezvous, and the response it would build. */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/listener/lmsg.h"

static bool
fuzz_has_forward(void *arg, const char *name)
{
	return strcmp(name, "echo") == 0 || strcmp(name, "db") == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lmsg_policy p = { "myhc", true, fuzz_has_forward, NULL };
	struct lmsg_msg m;
	struct shir_error err;
	int pass;

	for (pass = 0; pass < 2; pass++) {
		p.control = pass == 0;
		if (lmsg_handle((const char *)data, size, &p, &m, &err) != 0)
			continue;
		if (m.kind == LMSG_REQUEST && m.id != NULL) {
			char *s = lmsg_response_json(m.id, 200, "X-A: b\r\n", "text/plain", m.body);

			free(s);
		}
		if (m.kind == LMSG_REJECT && m.address != NULL) {
			char url[4096];

			(void)lmsg_reject_url(m.address, m.code, m.desc, url, sizeof url);
		}
		lmsg_msg_clear(&m);
	}
	return 0;
}
