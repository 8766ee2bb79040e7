/* pq_write: writes a Parquet file with node/copy/parquet.c from rows on
 * stdin, for tests/integration/test_parquet.py (an independent reader checks
 * every value). Usage: pq_write OUT CODEC ROW_GROUP_BYTES SCHEMA, where
 * SCHEMA is name:Type[:null],... and each stdin line is a JSON array of
 * strings (text as the connectors give it; base64 for ByteArray) or nulls.
 * Prints "rows=N bytes=N groups_max_buffered=N" on success. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "node/copy/parquet.h"

static int
out_file(void *arg, const void *d, size_t n)
{
	return fwrite(d, 1, n, arg) == n ? 0 : -1;
}

int
main(int argc, char **argv)
{
	struct parquet_column cols[PARQUET_COLUMNS_MAX];
	bool isbytes[PARQUET_COLUMNS_MAX];
	char *spec, *tok, *save = NULL, line[1 << 20];
	int n = 0;
	enum parquet_codec codec;
	struct parquet_writer *w;
	struct shir_error e = { 0 };
	FILE *f;
	size_t maxbuf = 0;
	int idx;

	if (argc != 5 || parquet_codec_parse(argv[2], &codec) != 0) {
		fprintf(stderr, "usage: pq_write OUT snappy|zstd|none ROW_GROUP_BYTES name:Type[:null],...\n");
		return 2;
	}
	spec = strdup(argv[4]);
	for (tok = strtok_r(spec, ",", &save); tok && n < PARQUET_COLUMNS_MAX;
	    tok = strtok_r(NULL, ",", &save), n++) {
		char *t = strchr(tok, ':'), *nl;

		if (t == NULL)
			return 2;
		*t++ = '\0';
		nl = strchr(t, ':');
		if (nl)
			*nl = '\0';
		cols[n].name = tok;
		cols[n].type = t;
		cols[n].nullable = nl != NULL;
		isbytes[n] = strcmp(t, "ByteArray") == 0;
	}
	f = fopen(argv[1], "wb");
	if (f == NULL)
		return 1;
	w = parquet_writer_new(cols, n, codec, strtoul(argv[3], NULL, 10), out_file, f, &e);
	if (w == NULL)
		goto fail;
	while (fgets(line, sizeof line, stdin) != NULL) {
		cJSON *a = cJSON_Parse(line), *c;

		if (!cJSON_IsArray(a)) {
			cJSON_Delete(a);
			continue;
		}
		idx = 0;
		cJSON_ArrayForEach(c, a) {
			const char *s = cJSON_GetStringValue(c);
			int rc;

			if (cJSON_IsNull(c)) {
				rc = parquet_null(w, &e);
			} else if (s == NULL) {
				cJSON_Delete(a);
				fprintf(stderr, "pq_write: cells are strings or null\n");
				return 2;
			} else if (idx < n && isbytes[idx]) {
				size_t l = strlen(s);
				unsigned char *b = malloc(l + 4);
				int bl = b ? EVP_DecodeBlock(b, (const unsigned char *)s, (int)l) : -1;

				if (bl >= 0 && l >= 1 && s[l - 1] == '=')
					bl--;
				if (bl >= 0 && l >= 2 && s[l - 2] == '=')
					bl--;
				rc = bl < 0 ? -1 : parquet_bytes(w, b, (size_t)bl, &e);
				free(b);
			} else {
				rc = parquet_text(w, s, strlen(s), &e);
			}
			idx++;
			if (rc != 0) {
				cJSON_Delete(a);
				goto fail;
			}
		}
		cJSON_Delete(a);
		if (parquet_buffered(w) > maxbuf)
			maxbuf = parquet_buffered(w);
		if (parquet_end_row(w, &e) != 0)
			goto fail;
	}
	if (parquet_finish(w, &e) != 0)
		goto fail;
	printf("rows=%llu bytes=%llu max_buffered=%zu\n", (unsigned long long)parquet_rows(w),
	    (unsigned long long)parquet_bytes_written(w), maxbuf);
	parquet_writer_free(w);
	fclose(f);
	free(spec);
	return 0;
fail:
	fprintf(stderr, "pq_write: %s\n", e.msg);
	parquet_writer_free(w);
	fclose(f);
	free(spec);
	return 1;
}
