/* shirctl author: send authoring requests as a service would. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "relay/irkey.h"
#include "relay/sas.h"

#include "node/authoring/auth_rows.h"
#include "ctl/ctl_author.h"
#include "ctl/ctl_client.h"
#include "ctl/shirctl.h"

#define AUTHOR_USAGE \
	"author testConnection|browse|schema|preview [--local | --service-key KEY |\n" \
	"           --service-key-file FILE] [--ca-file PEM] [--json]\n" \
	"           [REQUEST.json | - | --linked-service FILE [--dataset FILE] [--path P] [--limit N]]"
#define AUTHOR_FILE_MAX (1024 * 1024)
#define AUTHOR_CELL_MAX 40
#define AUTHOR_TOKEN_TTL 3600	/* seconds a SAS token made for one request lives */
#define AUTHOR_RELAY_TIMEOUT 75	/* the relay gives up after 60 s */

static const char *const author_ops[] = { "testConnection", "browse", "schema", "preview" };

static char *
author_read(const char *path, struct shir_error *err)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, n;

	if (f == NULL) {
		shir_error_set(err, SHIR_EIO, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	buf = malloc(AUTHOR_FILE_MAX + 1);
	if (buf == NULL) {
		shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	while ((n = fread(buf + len, 1, AUTHOR_FILE_MAX + 1 - len, f)) > 0) {
		len += n;
		if (len > AUTHOR_FILE_MAX) {
			shir_error_set(err, SHIR_ETOOBIG, "%s is larger than %d bytes", path,
			    AUTHOR_FILE_MAX);
			free(buf);
			buf = NULL;
			goto out;
		}
	}
	buf[len] = '\0';
out:
	if (f != stdin)
		fclose(f);
	return buf;
}

static cJSON *
author_read_json(const char *path, struct shir_error *err)
{
	char *t = author_read(path, err);
	cJSON *j;

	if (t == NULL)
		return NULL;
	j = cJSON_Parse(t);
	free(t);
	if (j == NULL || !cJSON_IsObject(j)) {
		cJSON_Delete(j);
		shir_error_set(err, SHIR_EINVAL, "%s does not hold a JSON object",
		    strcmp(path, "-") ? path : "standard input");
		return NULL;
	}
	return j;
}

/* Display width of UTF-8 text (code points; good enough for tables). */
static int
author_width(const char *s)
{
	int w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

/* Copy of s cut to maxw code points ("..." at the end when cut), with
 * control characters shown as spaces. */
static char *
author_cut(const char *s, int maxw)
{
	size_t l = strlen(s), i, o = 0;
	char *out = malloc(l + 4);
	int w = 0;

	if (out == NULL)
		return NULL;
	for (i = 0; i < l; i++) {
		unsigned char ch = (unsigned char)s[i];

		if ((ch & 0xc0) != 0x80) {
			if (w == maxw) {
				while (o > 0 && w > maxw - 3) {
					o--;
					if (((unsigned char)out[o] & 0xc0) != 0x80)
						w--;
				}
				memcpy(out + o, "...", 3);
				o += 3;
				break;
			}
			w++;
		}
		out[o++] = ch < 0x20 ? ' ' : (char)ch;
	}
	out[o] = '\0';
	return out;
}

void
ctl_author_table(const char *const *headers, int ncols, char ***rows, int nrows, int maxw)
{
	int *w = calloc((size_t)ncols, sizeof *w);
	int i, k;

	if (w == NULL)
		return;
	for (k = 0; k < ncols; k++)
		w[k] = author_width(headers[k]);
	for (i = 0; i < nrows; i++)
		for (k = 0; k < ncols; k++) {
			int cw = author_width(rows[i][k]);

			if (cw > maxw)
				cw = maxw;
			if (cw > w[k])
				w[k] = cw;
		}
	for (i = -1; i < nrows; i++) {
		for (k = 0; k < ncols; k++) {
			char *c = author_cut(i < 0 ? headers[k] : rows[i][k], maxw);
			int pad;

			if (c == NULL)
				continue;
			pad = w[k] - author_width(c);
			printf("%s%s%*s", k ? "  " : "", c, k == ncols - 1 ? 0 : pad, "");
			free(c);
		}
		printf("\n");
		if (i < 0) {
			for (k = 0; k < ncols; k++) {
				printf("%s", k ? "  " : "");
				for (int d = 0; d < w[k]; d++)
					putchar('-');
			}
			printf("\n");
		}
	}
	free(w);
}

static char *
author_cell(const cJSON *v)
{
	char *s;

	if (v == NULL || cJSON_IsNull(v))
		return strdup("NULL");
	if (cJSON_IsString(v))
		return strdup(v->valuestring);
	if (cJSON_IsTrue(v))
		return strdup("true");
	if (cJSON_IsFalse(v))
		return strdup("false");
	if (cJSON_IsNumber(v)) {
		char buf[40];

		if (auth_number_text(v->valuedouble, buf, sizeof buf) == 0)
			return strdup(buf);
	}
	s = cJSON_PrintUnformatted(v);
	return s ? s : strdup("?");
}

static const char *
author_str(const cJSON *o, const char *k)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));

	return s ? s : "";
}

/* Prints an array of objects as a table of the given fields. */
static void
author_print_objects(const cJSON *arr, const char *const *fields, const char *const *headers,
    int nf)
{
	int n = cJSON_GetArraySize(arr), i, k;
	char ***rows = calloc((size_t)(n ? n : 1), sizeof *rows);
	const cJSON *o;

	if (rows == NULL)
		return;
	i = 0;
	cJSON_ArrayForEach(o, arr) {
		rows[i] = calloc((size_t)nf, sizeof **rows);
		for (k = 0; rows[i] && k < nf; k++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, fields[k]);

			rows[i][k] = v ? author_cell(v) : strdup("");
		}
		i++;
	}
	ctl_author_table(headers, nf, rows, n, 60);
	for (i = 0; i < n; i++) {
		for (k = 0; rows[i] && k < nf; k++)
			free(rows[i][k]);
		free(rows[i]);
	}
	free(rows);
}

static void
author_print_preview(const cJSON *o)
{
	const cJSON *cols = cJSON_GetObjectItemCaseSensitive(o, "columns");
	const cJSON *rws = cJSON_GetObjectItemCaseSensitive(o, "rows"), *r, *c;
	int nc = cJSON_GetArraySize(cols), nr = cJSON_GetArraySize(rws), i, k;
	const char **hdr = calloc((size_t)(nc ? nc : 1), sizeof *hdr);
	char ***rows = calloc((size_t)(nr ? nr : 1), sizeof *rows);

	if (hdr == NULL || rows == NULL)
		goto out;
	k = 0;
	cJSON_ArrayForEach(c, cols)
		hdr[k++] = author_str(c, "name");
	i = 0;
	cJSON_ArrayForEach(r, rws) {
		rows[i] = calloc((size_t)(nc ? nc : 1), sizeof **rows);
		for (k = 0; rows[i] && k < nc; k++)
			rows[i][k] = author_cell(cJSON_GetArrayItem(r, k));
		i++;
	}
	if (nc > 0)
		ctl_author_table(hdr, nc, rows, nr, AUTHOR_CELL_MAX);
	printf("(%d row%s%s)\n", nr, nr == 1 ? "" : "s",
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "truncated")) ? ", more available" : "");
	for (i = 0; i < nr; i++) {
		for (k = 0; rows[i] && k < nc; k++)
			free(rows[i][k]);
		free(rows[i]);
	}
out:
	free(hdr);
	free(rows);
}

static void
author_print(int op, const cJSON *o)
{
	static const char *const bf[] = { "name", "type", "schema", "size", "modified" };
	static const char *const bh[] = { "NAME", "TYPE", "SCHEMA", "SIZE", "MODIFIED" };
	static const char *const sf[] = { "name", "type", "nullable" };
	static const char *const sh[] = { "NAME", "TYPE", "NULLABLE" };
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "store");

	switch (op) {
	case 0:
		printf("Connection succeeded: %s%s%s (%.0f ms)\n", author_str(st, "product"),
		    *author_str(st, "version") ? " " : "", author_str(st, "version"),
		    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "durationMs")));
		break;
	case 1:
		author_print_objects(cJSON_GetObjectItemCaseSensitive(o, "items"), bf, bh, 5);
		printf("(%d item%s%s)\n", cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "items")),
		    cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "items")) == 1 ? "" : "s",
		    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "truncated")) ? ", more available" : "");
		break;
	case 2:
		author_print_objects(cJSON_GetObjectItemCaseSensitive(o, "columns"), sf, sh, 3);
		break;
	case 3:
		author_print_preview(o);
		break;
	}
}


/* Reads a service key from a file (first line), keeping it out of argv. */
static char *
author_key_file(const char *path, struct shir_error *err)
{
	char *t = author_read(path, err);

	if (t != NULL)
		t[strcspn(t, "\r\n")] = '\0';
	return t;
}

/* Sends the request through the relay named by a service key: POST to
 * {endpoint as http(s)}/{hc}/v1/{op} with a ServiceBusAuthorization SAS
 * token made from the key's Send rule. TLS is verified (the system CAs, or
 * --ca-file; the key's tlsPin, when present, pins the relay's public key). */
static int
author_via_relay(const char *keystr, const char *ca, const char *op, const char *body,
    struct ctl_response *resp, struct shir_error *err)
{
	struct irkey k;
	struct ctl_buf b = { NULL, 0, 0 };
	struct curl_slist *hdrs = NULL;
	char *aud_uri = NULL, *aud = NULL, *tok = NULL, *hc = NULL, *url = NULL, *auth = NULL;
	char pin[128];
	const char *scheme, *rest;
	CURL *c = NULL;
	CURLcode cc;
	size_t l;
	int rc = SHIR_ENOMEM;

	memset(&k, 0, sizeof k);
	if ((rc = irkey_decode(keystr, &k, err)) != 0)
		goto out;
	if (strncmp(k.endpoint, "wss://", 6) == 0)
		scheme = "https://", rest = k.endpoint + 6;
	else
		scheme = "http://", rest = k.endpoint + 5;
	hc = sas_url_encode(k.hc);
	l = strlen(k.endpoint) + strlen(k.hc) * 3 + 64;
	url = malloc(l);
	aud_uri = malloc(l);
	if (hc == NULL || url == NULL || aud_uri == NULL)
		goto oom;
	snprintf(url, l, "%s%.*s/%s/v1/%s", scheme, (int)strcspn(rest, "/"), rest, hc, op);
	snprintf(aud_uri, l, "%.*s/%s", (int)(strlen(k.endpoint) - strlen(rest) + strcspn(rest, "/")),
	    k.endpoint, k.hc);
	if (sas_audience_hyco(aud_uri, &aud) != 0 ||
	    sas_token_build(aud, k.key_name, k.key, (int64_t)time(NULL) + AUTHOR_TOKEN_TTL, &tok) != 0)
		goto oom;
	l = strlen(tok) + 64;
	if ((auth = malloc(l)) == NULL)
		goto oom;
	snprintf(auth, l, "ServiceBusAuthorization: %s", tok);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, auth);
	if (hdrs == NULL || (c = curl_easy_init()) == NULL)
		goto oom;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (ca != NULL)
		curl_easy_setopt(c, CURLOPT_CAINFO, ca);
	if (k.tls_pin != NULL && strncmp(k.tls_pin, "sha256/", 7) == 0) {
		snprintf(pin, sizeof pin, "sha256//%s", k.tls_pin + 7);
		curl_easy_setopt(c, CURLOPT_PINNEDPUBLICKEY, pin);
	}
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)AUTHOR_RELAY_TIMEOUT);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 15L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "shirctl/" PACKAGE_VERSION);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ctl_buf_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		rc = shir_error_set(err, cc == CURLE_PEER_FAILED_VERIFICATION ||
		    cc == CURLE_SSL_PINNEDPUBKEYNOTMATCH ? SHIR_ETLS : SHIR_EIO,
		    "cannot reach the relay at %s%.*s: %s%s", scheme, (int)strcspn(rest, "/"), rest,
		    b.too_big ? "the answer is too large" : curl_easy_strerror(cc),
		    cc == CURLE_PEER_FAILED_VERIFICATION ? " (give the relay's CA with --ca-file)" : "");
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
	resp->body = b.data ? b.data : strdup("");
	resp->len = b.len;
	b.data = NULL;
	rc = resp->body ? 0 : SHIR_ENOMEM;
	goto out;
oom:
	rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
out:
	if (auth)
		explicit_bzero(auth, strlen(auth));
	if (tok)
		explicit_bzero(tok, strlen(tok));
	free(auth), free(tok), free(aud), free(aud_uri), free(url), free(hc), free(b.data);
	curl_slist_free_all(hdrs);
	if (c)
		curl_easy_cleanup(c);
	irkey_clear(&k);
	return rc;
}

/* Builds the request from the options. */
static cJSON *
author_request(const char *file, const char *ls, const char *ds, const char *path,
    const char *limit, struct shir_error *err)
{
	cJSON *req = NULL, *l = NULL, *d = NULL;
	char *end;
	long n;

	if (file != NULL) {
		req = author_read_json(file, err);
		if (req == NULL)
			return NULL;
	} else {
		req = cJSON_CreateObject();
		l = author_read_json(ls, err);
		if (req == NULL || l == NULL)
			goto fail;
		/* a file with {"linkedService": {...}} or the linked service itself */
		if (cJSON_GetObjectItemCaseSensitive(l, "linkedService")) {
			cJSON *in = cJSON_DetachItemFromObjectCaseSensitive(l, "linkedService");

			cJSON_Delete(l);
			l = in;
		}
		cJSON_AddItemToObject(req, "linkedService", l);
		l = NULL;
	}
	if (ds != NULL) {
		d = author_read_json(ds, err);
		if (d == NULL)
			goto fail;
		if (cJSON_GetObjectItemCaseSensitive(d, "dataset")) {
			cJSON *in = cJSON_DetachItemFromObjectCaseSensitive(d, "dataset");

			cJSON_Delete(d);
			d = in;
		}
		cJSON_DeleteItemFromObjectCaseSensitive(req, "dataset");
		cJSON_AddItemToObject(req, "dataset", d);
	}
	if (path != NULL) {
		cJSON_DeleteItemFromObjectCaseSensitive(req, "path");
		cJSON_AddStringToObject(req, "path", path);
	}
	if (limit != NULL) {
		errno = 0;
		n = strtol(limit, &end, 10);
		if (errno || *end || end == limit) {
			shir_error_set(err, SHIR_EINVAL, "--limit must be a whole number");
			goto fail;
		}
		cJSON_DeleteItemFromObjectCaseSensitive(req, "limit");
		cJSON_AddNumberToObject(req, "limit", (double)n);
	}
	return req;
fail:
	cJSON_Delete(l);
	cJSON_Delete(req);
	return NULL;
}

static const char author_help[] =
    "A request per store type (every field: docs/authoring.md, \"Requests by store\"):\n"
    "  {\"linkedService\": {\"type\": \"FileSystem\", \"properties\": {\"root\": \"/srv/data\"}},\n"
    "   \"dataset\": {\"type\": \"DelimitedText\", \"path\": \"orders.csv\", \"firstRowAsHeader\": true}}\n"
    "  {\"linkedService\": {\"type\": \"Sqlite\", \"properties\": {\"path\": \"/srv/data/shop.db\"}},\n"
    "   \"dataset\": {\"type\": \"Table\", \"table\": \"orders\"}}\n"
    "  {\"linkedService\": {\"type\": \"PostgreSql\", \"properties\": {\"host\": \"db1\", \"database\": \"sales\",\n"
    "    \"username\": \"reader\", \"password\": {\"type\": \"CredentialReference\", \"name\": \"sales-db\"}}},\n"
    "   \"dataset\": {\"type\": \"Query\", \"query\": \"SELECT * FROM public.orders\"}}\n"
    "  {\"linkedService\": {\"type\": \"MySql\", \"properties\": {\"host\": \"db2\", \"database\": \"shop\",\n"
    "    \"username\": \"reader\", \"password\": \"...\"}}, \"dataset\": {\"type\": \"Table\", \"table\": \"orders\"}}\n"
    "  {\"linkedService\": {\"type\": \"Odbc\", \"properties\": {\"connectionString\":\n"
    "    \"Driver={PostgreSQL Unicode};Server=db1;Database=sales\", \"username\": \"reader\",\n"
    "    \"password\": \"...\"}}, \"dataset\": {\"type\": \"Table\", \"schema\": \"public\", \"table\": \"orders\"}}\n"
    "  {\"linkedService\": {\"type\": \"HttpServer\", \"properties\": {\"url\": \"https://api.corp/v2/\"}},\n"
    "   \"dataset\": {\"type\": \"Json\", \"relativeUrl\": \"orders\"}}\n";

int
ctl_cmd_author(struct ctl_ctx *ctx, int argc, char **argv)
{
	const char *file = NULL, *ls = NULL, *ds = NULL, *path = NULL, *limit = NULL;
	const char *key = NULL, *key_file = NULL, *ca = NULL;
	int json = ctx->json, local = 0, op = -1, i, rc = 1;
	struct ctl_response resp = { 0, NULL, 0 };
	struct shir_error err;
	cJSON *req = NULL, *o = NULL, *e;
	char *body = NULL, target[64];

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("usage: shirctl %s\n\n%s", AUTHOR_USAGE, author_help);
		return 0;
	}
	if (argc < 2)
		ctl_die_usage("author", AUTHOR_USAGE);
	for (i = 0; i < 4; i++)
		if (strcmp(argv[1], author_ops[i]) == 0)
			op = i;
	if (op < 0) {
		fprintf(stderr, "shirctl: unknown author operation %s: use testConnection, browse, "
		    "schema or preview\n", argv[1]);
		return 2;
	}
	for (i = 2; i < argc; i++) {
		const char *a = argv[i];
		int has = i + 1 < argc;

		if (strcmp(a, "--local") == 0)
			local = 1;
		else if (strcmp(a, "--json") == 0)
			json = 1;
		else if (strcmp(a, "--linked-service") == 0 && has)
			ls = argv[++i];
		else if (strcmp(a, "--dataset") == 0 && has)
			ds = argv[++i];
		else if (strcmp(a, "--path") == 0 && has)
			path = argv[++i];
		else if (strcmp(a, "--limit") == 0 && has)
			limit = argv[++i];
		else if (strcmp(a, "--service-key") == 0 && has)
			key = argv[++i];
		else if (strcmp(a, "--service-key-file") == 0 && has)
			key_file = argv[++i];
		else if (strcmp(a, "--ca-file") == 0 && has)
			ca = argv[++i];
		else if ((a[0] != '-' || strcmp(a, "-") == 0) && file == NULL)
			file = a;
		else
			ctl_die_usage("author", AUTHOR_USAGE);
	}
	if (key == NULL && key_file == NULL && getenv("SHIR_SERVICE_KEY") != NULL)
		key = getenv("SHIR_SERVICE_KEY");
	if (file != NULL && ls != NULL) {
		fprintf(stderr, "shirctl: give either a request file or --linked-service, not both\n");
		return 2;
	}
	if (file == NULL && ls == NULL) {
		if (isatty(STDIN_FILENO)) {
			fprintf(stderr, "shirctl: give the request as a file, on standard input, or with "
			    "--linked-service FILE\n");
			return 2;
		}
		file = "-";
	}
	if (local && (key || key_file)) {
		fprintf(stderr, "shirctl: --local and --service-key exclude each other\n");
		return 2;
	}
	if (!local && !key && !key_file) {
		fprintf(stderr, "shirctl: say where to send the request: --local (this node's control "
		    "socket) or --service-key KEY (through the relay)\n");
		return 2;
	}
	req = author_request(file, ls, ds, path, limit, &err);
	if (req == NULL) {
		fprintf(stderr, "shirctl: %s\n", err.msg);
		return 1;
	}
	body = cJSON_PrintUnformatted(req);
	if (body == NULL) {
		fprintf(stderr, "shirctl: out of memory\n");
		goto out;
	}
	snprintf(target, sizeof target, "/v1/%s", author_ops[op]);
	if (local) {
		if (ctl_client_request(ctx->socket, "POST", target, body, &resp, &err) != 0) {
			fprintf(stderr, "shirctl: %s\n", err.msg);
			goto out;
		}
	} else {
		char *kf = key_file ? author_key_file(key_file, &err) : NULL;

		if (key_file && kf == NULL) {
			fprintf(stderr, "shirctl: %s\n", err.msg);
			goto out;
		}
		i = author_via_relay(kf ? kf : key, ca, author_ops[op], body, &resp, &err);
		if (kf) {
			explicit_bzero(kf, strlen(kf));
			free(kf);
		}
		if (i != 0) {
			fprintf(stderr, "shirctl: %s\n", err.msg);
			goto out;
		}
	}
	if (json) {
		printf("%s\n", resp.body);
		rc = resp.status == 200 ? 0 : 1;
		goto out;
	}
	o = cJSON_Parse(resp.body);
	if (o == NULL || (resp.status != 200 && !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(o,
	    "error")))) {
		fprintf(stderr, "shirctl: the %s answered HTTP %ld: %.300s\n", local ? "node" : "relay",
		    resp.status, resp.body);
		goto out;
	}
	if (resp.status != 200) {
		e = cJSON_GetObjectItemCaseSensitive(o, "error");
		fprintf(stderr, "shirctl: %s failed: %s\n  (%s, HTTP %ld)\n", author_ops[op],
		    author_str(e, "message"), author_str(e, "code"), resp.status);
		goto out;
	}
	author_print(op, o);
	rc = 0;
out:
	cJSON_Delete(o);
	cJSON_Delete(req);
	cJSON_free(body);
	ctl_response_clear(&resp);
	return rc;
}
