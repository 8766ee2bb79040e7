/* credwriter: a helper of test_admin.py. "credwriter DIR write [NAME [COUNT]]"
 * stores the credential NAME (default "counter") = "value-N" for N = 1, 2, ...
 * (COUNT times, default forever) as fast as it can and prints N after each
 * committed write; "credwriter DIR check" prints the store's version and the
 * value of "counter" (or fails with the reason); "credwriter DIR dump" prints
 * every shared record (test_ha.py): NAME TAB MS.C.ORIGIN TAB VALUE or -deleted-. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/admin/credstore.h"

int
main(int argc, char **argv)
{
	struct credstore *cs = NULL;
	struct shir_error err;
	char val[64], *s = NULL;
	uint64_t ver;
	unsigned long n;

	const char *name = argc > 3 ? argv[3] : "counter";
	unsigned long count = argc > 4 ? strtoul(argv[4], NULL, 10) : 0;

	if (argc < 3 || argc > 5) {
		fprintf(stderr, "usage: credwriter DIR write [NAME [COUNT]] | DIR check\n");
		return 2;
	}
	if (credstore_open(argv[1], &cs, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	if (strcmp(argv[2], "dump") == 0) {
		struct credstore_rec *v = NULL;
		size_t k, i;

		if (credstore_records(cs, &v, &k, &err) != 0) {
			fprintf(stderr, "%s\n", err.msg);
			credstore_free(cs);
			return 1;
		}
		for (i = 0; i < k; i++)
			printf("%s\t%llu.%u.%s\t%s\n", v[i].name, (unsigned long long)v[i].hlc.ms,
			    v[i].hlc.c, v[i].hlc.origin, v[i].value ? v[i].value : "-deleted-");
		credstore_records_free(v, k);
		credstore_free(cs);
		return 0;
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
	for (n = 1; count == 0 || n <= count; n++) {
		snprintf(val, sizeof val, "value-%lu", n);
		if (credstore_put(cs, name, val, &err) != 0) {
			fprintf(stderr, "%s\n", err.msg);
			return 1;
		}
		printf("%lu\n", n);
		fflush(stdout);
	}
	credstore_free(cs);
	return 0;
}
