/* A main for fuzz targets in builds without libFuzzer: runs the target over
 * every file of its seed corpus (tests/fuzz/corpus/NAME/) and over random
 * mutations of them, and reports in TAP. With --enable-fuzzing, libFuzzer's
 * own main is linked instead. */
#include "config.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT (1024 * 1024)
#define MUTATIONS 2000

static unsigned long long rng_state = 0x9e3779b97f4a7c15ULL;

static unsigned
rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (unsigned)rng_state;
}

static void
mutate_and_run(const uint8_t *seed, size_t len)
{
	static uint8_t buf[FUZZ_MAX_INPUT + 64];
	size_t n = len, k, edits;

	memcpy(buf, seed, len);
	edits = 1 + rnd() % 8;
	for (k = 0; k < edits; k++) {
		size_t pos = n ? rnd() % n : 0;

		switch (rnd() % 4) {
		case 0: if (n) buf[pos] = (uint8_t)rnd(); break;
		case 1: if (n) buf[pos] ^= (uint8_t)(1u << (rnd() % 8)); break;
		case 2: if (n) n = pos; break;	/* truncate */
		case 3:
			if (n < FUZZ_MAX_INPUT) {
				memmove(buf + pos + 1, buf + pos, n - pos);
				buf[pos] = (uint8_t)"\n\r\0=[]:;\"{}<>&%"[rnd() % 16];
				n++;
			}
			break;
		}
	}
	LLVMFuzzerTestOneInput(buf, n);
}

int
main(int argc, char **argv)
{
	const char *src = getenv("SHIR_SRCDIR"), *name = strrchr(argv[0], '/');
	char dir[4096];
	struct dirent *de;
	uint8_t *buf = malloc(FUZZ_MAX_INPUT);
	size_t nfiles = 0, m;
	DIR *d;

	name = name ? name + 1 : argv[0];
	if (strncmp(name, "lt-", 3) == 0)
		name += 3;
	snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", src ? src : ".", name);
	printf("1..1\n");
	d = opendir(dir);
	if (d == NULL || buf == NULL) {
		printf("not ok 1 - %s: no seed corpus at %s\n", name, dir);
		return 1;
	}
	while ((de = readdir(d)) != NULL) {
		char path[8192];
		FILE *f;
		size_t len;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		if ((f = fopen(path, "rb")) == NULL)
			continue;
		len = fread(buf, 1, FUZZ_MAX_INPUT, f);
		fclose(f);
		LLVMFuzzerTestOneInput(buf, len);
		for (m = 0; m < MUTATIONS; m++)
			mutate_and_run(buf, len);
		nfiles++;
	}
	closedir(d);
	free(buf);
	if (nfiles == 0) {
		printf("not ok 1 - %s: the seed corpus %s is empty\n", name, dir);
		return 1;
	}
	printf("ok 1 - %s: %zu seeds and %zu mutations ran clean\n", name, nfiles,
	    nfiles * MUTATIONS);
	return 0;
}
