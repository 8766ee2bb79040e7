/* Fuzz target: the key request and key grant files of 'shirctl cluster
 * request/grant/join' (node/cluster/rtgrant.c). The input is written as a
 * grant and opened by a node that made a real request (so the parser, the hex
 * decoding and the opening of the box are all reached), then read as a
 * request by a member without a runtime key. Nothing may crash, leak or read
 * out of bounds, and no input may be taken as a grant. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/shir_err.h"
#include "node/cluster/rtgrant.h"

static char dir[64], req[128], grant[128];

static void
fuzz_cleanup(void)
{
	char cmd[128];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz_rtgrant: cannot remove %s\n", dir);
}

static int
fuzz_init(void)
{
	char fp[RTGRANT_FP_LEN + 1];
	struct shir_error err;

	snprintf(dir, sizeof dir, "/tmp/fuzz_rtgrant.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	atexit(fuzz_cleanup);
	snprintf(req, sizeof req, "%s/request.json", dir);
	snprintf(grant, sizeof grant, "%s/grant.json", dir);
	return rtgrant_request(dir, "fuzz-node", req, fp, &err);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready = -2;
	struct shir_error err;
	char fp[RTGRANT_FP_LEN + 1], out[160];
	FILE *f;

	if (ready == -2)
		ready = fuzz_init();
	if (ready != 0 || size > 256 * 1024)
		return 0;
	if ((f = fopen(grant, "wb")) == NULL)
		return 0;
	fwrite(data, 1, size, f);
	fclose(f);
	if (rtgrant_accept(dir, grant, &err) == 0)
		abort();	/* only a member's seal opens */
	snprintf(out, sizeof out, "%s/out.json", dir);
	(void)rtgrant_grant(dir, grant, out, fp, &err);
	(void)rtgrant_is_grant(grant);
	return 0;
}
