/* Fuzz target: node/admin/statuspage's [admin] address parser (loopback only). */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/admin/statuspage.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), host[64];
	struct shir_error err;
	int port = 0;

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (statuspage_parse_addr("status_page", s, host, sizeof host, &port, &err) == 0 &&
	    (port < 1 || port > 65535 || strlen(host) == 0))
		abort();
	free(s);
	return 0;
}
