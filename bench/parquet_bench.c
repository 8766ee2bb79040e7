/* parquet_bench: the Parquet writer (node/copy/parquet.c) against the CSV
 * text of the same rows, in one run. N rows of an orders table (Int64 id,
 * String customer, Decimal amount, Int32 quantity, DateTime placed, Boolean
 * paid, 10 % nulls in the nullable columns) are generated as the text cells
 * a connector hands over; each format is written to a byte counter.
 * Prints rows/s, MB/s (of CSV text), output bytes, and the peak RSS.
 * Usage: parquet_bench ROWS [ROW_GROUP_BYTES]. See BENCHMARKS.md. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zstd.h>

#include "node/copy/parquet.h"

struct counter {
	unsigned long long n;
	ZSTD_CCtx *z;		/* CSV + zstd: compress each chunk as it comes */
	char *zbuf;
	size_t zcap;
	unsigned long long zn;
};

static int
count_out(void *arg, const void *d, size_t n)
{
	struct counter *c = arg;

	c->n += n;
	return 0;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long
hwm_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char l[256];
	long v = 0;

	while (f && fgets(l, sizeof l, f))
		if (strncmp(l, "VmHWM:", 6) == 0)
			v = strtol(l + 6, NULL, 10);
	if (f)
		fclose(f);
	return v;
}

/* Row i's cells (deterministic). */
static void
row(unsigned long long i, char cells[6][48], int isnull[6])
{
	unsigned long long x = i * 2654435761ULL + 12345;
	time_t t = 1700000000 + (time_t)(x % 40000000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(cells[0], 48, "%llu", i + 1);
	snprintf(cells[1], 48, "customer-%llu", x % 100000);
	snprintf(cells[2], 48, "%llu.%02llu", x % 100000, x % 100);
	snprintf(cells[3], 48, "%llu", 1 + x % 50);
	strftime(cells[4], 48, "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(cells[5], 48, "%s", (x >> 7) & 1 ? "t" : "f");
	memset(isnull, 0, 6 * sizeof *isnull);
	isnull[2] = x % 10 == 3;
	isnull[4] = x % 10 == 7;
}

static void
run_csv(unsigned long long n, int zstd)
{
	struct counter c = { 0 };
	char buf[1 << 16], cells[6][48];
	size_t bl = 0;
	int isnull[6], k;
	unsigned long long i;
	double t0 = now(), dt;

	if (zstd) {
		c.z = ZSTD_createCCtx();
		c.zcap = ZSTD_compressBound(sizeof buf);
		c.zbuf = malloc(c.zcap);
	}
	for (i = 0; i < n; i++) {
		row(i, cells, isnull);
		for (k = 0; k < 6; k++) {
			size_t l = isnull[k] ? 0 : strlen(cells[k]);

			memcpy(buf + bl, cells[k], l);
			bl += l;
			buf[bl++] = k == 5 ? '\n' : ',';
		}
		if (bl > sizeof buf - 512 || i + 1 == n) {
			c.n += bl;
			if (zstd) {
				ZSTD_inBuffer in = { buf, bl, 0 };
				ZSTD_outBuffer out = { c.zbuf, c.zcap, 0 };

				ZSTD_compressStream2(c.z, &out, &in, i + 1 == n ? ZSTD_e_end : ZSTD_e_continue);
				c.zn += out.pos;
			}
			bl = 0;
		}
	}
	dt = now() - t0;
	printf("csv%s rows=%llu seconds=%.3f rows_per_s=%.0f csv_mb_per_s=%.1f bytes=%llu\n",
	    zstd ? "+zstd" : "", n, dt, n / dt, c.n / dt / 1e6, zstd ? c.zn : c.n);
	if (zstd) {
		ZSTD_freeCCtx(c.z);
		free(c.zbuf);
	}
}

static int
run_parquet(unsigned long long n, enum parquet_codec codec, size_t rg, unsigned long long csv_bytes)
{
	static const struct parquet_column cols[] = {
		{ "id", "Int64", false }, { "customer", "String", false }, { "amount", "Decimal", true },
		{ "quantity", "Int32", false }, { "placed", "DateTime", true }, { "paid", "Boolean", false },
	};
	struct counter c = { 0 };
	struct shir_error e = { 0 };
	struct parquet_writer *w = parquet_writer_new(cols, 6, codec, rg, count_out, &c, &e);
	char cells[6][48];
	int isnull[6], k;
	unsigned long long i;
	double t0 = now(), dt;

	if (w == NULL)
		goto fail;
	for (i = 0; i < n; i++) {
		row(i, cells, isnull);
		for (k = 0; k < 6; k++)
			if ((isnull[k] ? parquet_null(w, &e) : parquet_text(w, cells[k], strlen(cells[k]), &e)) != 0)
				goto fail;
		if (parquet_end_row(w, &e) != 0)
			goto fail;
	}
	if (parquet_finish(w, &e) != 0)
		goto fail;
	dt = now() - t0;
	printf("parquet-%s rows=%llu seconds=%.3f rows_per_s=%.0f csv_mb_per_s=%.1f bytes=%llu\n",
	    codec == PARQUET_SNAPPY ? "snappy" : codec == PARQUET_ZSTD ? "zstd" : "none", n, dt, n / dt,
	    csv_bytes / dt / 1e6, c.n);
	parquet_writer_free(w);
	return 0;
fail:
	fprintf(stderr, "parquet_bench: %s\n", e.msg);
	parquet_writer_free(w);
	return 1;
}

int
main(int argc, char **argv)
{
	unsigned long long n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
	size_t rg = argc > 2 ? strtoul(argv[2], NULL, 10) : PARQUET_ROW_GROUP_DEFAULT;
	unsigned long long csv_bytes = 0, i;
	char cells[6][48];
	int isnull[6], k;

	for (i = 0; i < n; i++) {	/* the CSV size, for MB/s of the same data */
		row(i, cells, isnull);
		for (k = 0; k < 6; k++)
			csv_bytes += (isnull[k] ? 0 : strlen(cells[k])) + 1;
	}
	printf("rows=%llu csv_bytes=%llu row_group_bytes=%zu\n", n, csv_bytes, rg);
	run_csv(n, 0);
	run_csv(n, 1);
	if (run_parquet(n, PARQUET_SNAPPY, rg, csv_bytes) != 0 ||
	    run_parquet(n, PARQUET_ZSTD, rg, csv_bytes) != 0 ||
	    run_parquet(n, PARQUET_NONE, rg, csv_bytes) != 0)
		return 1;
	printf("peak_rss_kb=%ld\n", hwm_kb());
	return 0;
}
