/* Fuzz target: the .NET <defaultProxy> loader (expat + PCRE2), then a few
 * decisions with what it loaded. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "proxy/proxy_dotnet.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_dotnet *d = NULL;
	struct shir_error err;
	char canon[4096], diff[2048];

	if (proxy_dotnet_parse("fuzz.config", (const char *)data, size, &d, &err) == 0) {
		proxy_dotnet_canon(d, canon, sizeof canon);
		proxy_dotnet_diff(d, NULL, diff, sizeof diff);
		proxy_dotnet_diff(d, d, diff, sizeof diff);
	}
	proxy_dotnet_free(d);
	return 0;
}
