/* Fuzz target: relay/hc_msg control JSON. Whatever decodes must re-encode,
 * and the re-encoded message must decode to the same type. Also runs the
 * query rules on the input. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/hc_msg.h"
#include "common/jsonutil.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hc_msg m, m2;
	struct shir_error e;
	char *j = NULL, *q;
	static int arena;

	if (!arena) {	/* as shird and shir-relay run: cJSON trees in the scratch arena */
		json_arena_install();
		arena = 1;
	}
	if (hc_msg_decode((const char *)data, size, &m, &e) == 0) {
		switch (m.type) {
		case HC_MSG_ACCEPT: j = hc_msg_encode_accept(&m.accept); break;
		case HC_MSG_REQUEST: j = hc_msg_encode_request(&m.request); break;
		case HC_MSG_RESPONSE: j = hc_msg_encode_response(&m.response); break;
		case HC_MSG_RENEW: j = hc_msg_encode_renew(m.renew_token); break;
		default: break;
		}
		if (j != NULL) {
			if (hc_msg_decode(j, strlen(j), &m2, &e) == 0) {
				if (m2.type != m.type)
					abort();
				hc_msg_clear(&m2);
			}
			free(j);
		}
		hc_msg_clear(&m);
	}
	q = malloc(size + 1);
	if (q != NULL) {
		char *s, *v = NULL;

		memcpy(q, data, size);
		q[size] = '\0';
		s = hc_strip_query(q);
		free(s);
		if (hc_query_get(q, "sb-hc-token", &v) == 0)
			free(v);
		free(q);
	}
	return 0;
}
