/* credwriter: a helper of test_admin.py. "credwriter DIR write" stores the
 * credential "counter" = "value-N" for N = 1, 2, ... as fast as it can and
 * prints N after each committed write; "credwriter DIR check" prints the
 * store's version and the value (or fails with the reason). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "credstore.h"

int
main(int argc, char **argv)
{
	struct credstore *cs = NULL;
	struct shir_error err;
	char val[64], *s = NULL;
	uint64_t ver;
	unsigned long n;

	if (argc != 3) {
		fprintf(stderr, "usage: credwriter DIR write|check\n");
		return 2;
	}
	if (credstore_open(argv[1], &cs, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	if (strcmp(argv[2], "check") == 0) {
		int rc = credstore_version(cs, &ver, &err);

		if (rc == 0)
			rc = credstore_get(cs, "counter", &s, &err);
		if (rc != 0) {
			fprintf(stderr, "%s\n", err.msg);
			credstore_free(cs);
			return 1;
		}
		printf("%llu %s\n", (unsigned long long)ver, s);
		credstore_secret_free(s);
		credstore_free(cs);
		return 0;
	}
	for (n = 1;; n++) {
		snprintf(val, sizeof val, "value-%lu", n);
		if (credstore_put(cs, "counter", val, &err) != 0) {
			fprintf(stderr, "%s\n", err.msg);
			return 1;
		}
		printf("%lu\n", n);
		fflush(stdout);
	}
}
