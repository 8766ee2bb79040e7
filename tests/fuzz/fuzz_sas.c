/* Fuzz target: relay/sas token parsing and verification (audience parsing
 * of arbitrary sr values included). */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/sas.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct sas_rule rules[] = {
		{ "k", "secret", SAS_LISTEN | SAS_SEND },
		{ "RootManageSharedAccessKey", "K1bR8pX3nQ2vL6tY9wZ4cF7hJ0mA5sD8gE1uI3oP6rT=", SAS_MANAGE },
	};
	char *s = malloc(size + 1), *d = NULL, *a = NULL;
	struct shir_error e;

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	sas_verify(s, rules, 2, "myhc/sub", "contoso.servicebus.windows.net", SAS_SEND, 0, 5, NULL, &e);
	sas_verify(s, rules, 2, "myhc", NULL, SAS_LISTEN, 1735689600, 5, NULL, &e);
	if (sas_url_decode(s, size, true, &d) == 0)
		free(d);
	if (sas_audience_hyco(s, &a) == 0)
		free(a);
	if (sas_audience_dotnet(s, &a) == 0)
		free(a);
	free(s);
	return 0;
}
