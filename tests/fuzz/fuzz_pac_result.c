/* Fuzz target: the PAC result-string parser ("PROXY a:1; SOCKS5 b; DIRECT"). */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/pac_result.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pac_result r;
	char url[600];
	size_t i;

	if (pac_result_parse((const char *)data, size, &r) == 0) {
		if (r.n == 0 || r.n > PAC_RESULT_MAX)
			abort();
		for (i = 0; i < r.n; i++) {
			pac_entry_url(&r.e[i], url, sizeof url);
			if (r.e[i].type != PAC_DIRECT && (r.e[i].port < 1 || r.e[i].port > 65535))
				abort();
		}
	}
	return 0;
}
