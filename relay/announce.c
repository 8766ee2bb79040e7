/* announce: see announce.h. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/shir_err.h"
#include "relay/announce.h"
#include "relay/sas.h"

int
announce_headers(const char *node, const char *version, const char *instance,
    struct announce_lines *out)
{
	char *enc;

	if (strlen(node) > ANNOUNCE_NAME_MAX || (enc = sas_url_encode(node)) == NULL)
		return -1;
	snprintf(out->node, sizeof out->node, "%s: %s", ANNOUNCE_NODE, enc);
	free(enc);
	snprintf(out->version, sizeof out->version, "%s: %.*s", ANNOUNCE_VERSION,
	    ANNOUNCE_VERSION_MAX, version);
	snprintf(out->instance, sizeof out->instance, "%s: %.*s", ANNOUNCE_INSTANCE,
	    ANNOUNCE_INSTANCE_MAX, instance);
	return 0;
}

/* Visible ASCII only (a version, an instance id): no spaces, no controls. */
static void
announce_token(const char *v, char *out, size_t max)
{
	size_t i, n = v ? strlen(v) : 0;

	out[0] = '\0';
	if (n == 0 || n > max)
		return;
	for (i = 0; i < n; i++)
		if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] >= 0x7f)
			return;
	memcpy(out, v, n + 1);
}

void
announce_parse(const char *node, const char *version, const char *instance,
    struct announce *out)
{
	char *dec = NULL;
	size_t i, n;

	memset(out, 0, sizeof *out);
	announce_token(version, out->version, ANNOUNCE_VERSION_MAX);
	announce_token(instance, out->instance, ANNOUNCE_INSTANCE_MAX);
	if (node == NULL || strlen(node) > 3 * ANNOUNCE_NAME_MAX ||
	    sas_url_decode(node, strlen(node), false, &dec) != 0)
		return;
	n = strlen(dec);
	if (n == 0 || n > ANNOUNCE_NAME_MAX) {
		free(dec);
		return;
	}
	for (i = 0; i < n; i++)
		if ((unsigned char)dec[i] < 0x20 || dec[i] == 0x7f) {
			free(dec);
			return;
		}
	memcpy(out->node, dec, n + 1);
	free(dec);
}
