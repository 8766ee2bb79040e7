/* Fuzz target: a copy job's Json source (connectors/text_stream.c): records
 * from the incremental reader become columns (inferred from the first
 * records) and rows. The first byte picks JSON Lines and the chunk size; the
 * same bytes fed in chunks and byte by byte must give the same outcome, the
 * same columns and the same rows, each row exactly as wide as the columns. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "node/authoring/auth_ctx.h"

struct src {
	const uint8_t *d;
	size_t n, chunk;
};

struct sink {
	size_t ncols;
	unsigned long rows;
	EVP_MD_CTX *md;		/* everything the sink saw */
};

static int
pull(void *arg, void *feeder, auth_feed_fn feed)
{
	struct src *s = arg;
	size_t off = 0;

	while (off < s->n) {
		size_t k = s->n - off < s->chunk ? s->n - off : s->chunk;

		if (feed(feeder, (const char *)s->d + off, k, false) != 0)
			return -1;
		off += k;
	}
	return feed(feeder, "", 0, true) != 0 ? -1 : 0;
}

static int
on_columns(void *arg, size_t n, const char *const *names, const char *const *types,
    const int *nullable)
{
	struct sink *k = arg;
	size_t i;

	(void)nullable;
	if (n == 0 || n > AUTH_COLUMNS_MAX || k->ncols != 0)
		abort();
	k->ncols = n;
	for (i = 0; i < n; i++) {
		EVP_DigestUpdate(k->md, names[i], strlen(names[i]) + 1);
		EVP_DigestUpdate(k->md, types[i], strlen(types[i]) + 1);
	}
	return 0;
}

static int
on_row(void *arg, size_t n, const char *const *vals, const size_t *lens)
{
	struct sink *k = arg;
	size_t i;

	if (n != k->ncols)
		abort();
	for (i = 0; i < n; i++) {
		EVP_DigestUpdate(k->md, vals[i] ? "v" : "n", 1);
		if (vals[i] != NULL)
			EVP_DigestUpdate(k->md, vals[i], lens[i]);
	}
	k->rows++;
	return 0;
}

static int
run(const uint8_t *d, size_t n, size_t chunk, bool lines, unsigned char *dg, int *code)
{
	struct auth_ctx c;
	struct src s = { d, n, chunk };
	struct sink k = { 0 };
	struct auth_stream st = { on_columns, on_row, &k };
	unsigned len = 0;
	int rc;

	memset(&c, 0, sizeof c);
	c.policy.mem_limit = 4096;	/* records and held records are capped */
	c.dataset_type = "Json";
	clock_gettime(CLOCK_MONOTONIC, &c.deadline);
	c.deadline.tv_sec += 3600;
	k.md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(k.md, EVP_sha256(), NULL);
	rc = conn_json_stream(&c, lines, pull, &s, "fuzz", &st);
	if ((rc == 0) != (c.code == AUTH_OK))
		abort();
	EVP_DigestUpdate(k.md, &k.rows, sizeof k.rows);
	EVP_DigestFinal_ex(k.md, dg, &len);
	EVP_MD_CTX_free(k.md);
	*code = c.code;
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
	int ca, cb;
	bool lines;
	size_t chunk;

	if (size < 1 || size > 65536)
		return 0;
	lines = data[0] & 1;
	chunk = (data[0] >> 1) + 1;
	data++, size--;
	if (run(data, size, chunk, lines, a, &ca) != run(data, size, 1, lines, b, &cb) || ca != cb ||
	    memcmp(a, b, 32) != 0)
		abort();
	return 0;
}
