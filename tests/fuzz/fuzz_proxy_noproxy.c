/* Fuzz target: the no_proxy parser and matcher (curl 7.88 rules). The input
 * is "host\nno_proxy value". */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy_noproxy.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const hosts[] = { "example.com", "a.b.example.com.", "10.1.2.3",
		"[2001:db8::1]", "[::1]", "x", "." };
	const uint8_t *nl = memchr(data, '\n', size), *p = data;
	struct proxy_noproxy *np;
	char host[256], tok[128];
	size_t i, hl = 0, n = size;

	if (nl != NULL) {
		hl = (size_t)(nl - data);
		if (hl >= sizeof host)
			hl = sizeof host - 1;
		memcpy(host, data, hl);
		n = size - (size_t)(nl - data) - 1;
		p = nl + 1;
	}
	host[hl] = '\0';
	np = proxy_noproxy_parse((const char *)p, n);
	if (np == NULL)
		return 0;
	(void)proxy_noproxy_count(np);
	(void)proxy_noproxy_match(np, host, tok, sizeof tok);
	for (i = 0; i < sizeof hosts / sizeof hosts[0]; i++)
		(void)proxy_noproxy_match(np, hosts[i], tok, sizeof tok);
	proxy_noproxy_free(np);
	return 0;
}
