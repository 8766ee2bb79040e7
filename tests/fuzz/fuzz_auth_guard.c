/* Fuzz target: auth_guard's two parsers. The first byte picks the parser
 * (bit 0: statement check, else ODBC connection string); the rest is the
 * text. The verdict must not depend on what follows a NUL, the pairs must
 * lie inside the input, and a second run must agree with the first. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/authoring/auth_guard.h"

struct walk {
	const char *start, *end;
	unsigned long n;
};

static int
pair(void *arg, const char *key, const char *val, size_t vlen)
{
	struct walk *w = arg;

	if (strlen(key) == 0 || strlen(key) > 63 || val < w->start || val + vlen > w->end)
		abort();
	w->n++;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	char *s, why[256];
	int a, b;

	if (n < 1)
		return 0;
	s = malloc(n);
	if (s == NULL)
		return 0;
	memcpy(s, d + 1, n - 1);
	s[n - 1] = '\0';
	if (d[0] & 1) {
		a = auth_guard_sql(s, why, sizeof why);
		b = auth_guard_sql(s, why, sizeof why);
		if (a != b || (a != 0 && why[0] == '\0'))
			abort();
	} else {
		struct walk w1 = { s, s + strlen(s), 0 }, w2 = w1;

		why[0] = '\0';
		a = auth_guard_odbc_pairs(s, pair, &w1, why, sizeof why);
		b = auth_guard_odbc_pairs(s, pair, &w2, why, sizeof why);
		if (a != b || w1.n != w2.n || (a != 0 && why[0] == '\0'))
			abort();
	}
	free(s);
	return 0;
}
