/* shirctl proxy explain | show: the proxy decision without a running daemon,
 * from shird.conf (or one .NET config file), exactly as shird would make it. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "node/conf.h"
#include "proxy/pac.h"
#include "proxy/proxy.h"
#include "ctl/shirctl.h"

#define CTL_PROXY_USAGE "proxy explain URL [--config FILE] [--json] | proxy show [--json]"

static int
ctl_proxy_load(struct ctl_ctx *ctx, const char *dotnet, struct proxy_config **pc)
{
	struct shir_error err;
	struct conf *c = NULL;
	const char *path = ctx->shird_conf ? ctx->shird_conf : SHIRD_CONF_DEFAULT;
	int rc;

	if (dotnet != NULL) {
		rc = proxy_config_load_dotnet(dotnet, pc, &err);
	} else {
		if (conf_load_file(path, &c, &err) != 0) {
			fprintf(stderr, "shirctl: %s\n", err.msg);
			if (err.code == SHIR_ENOENT)
				fprintf(stderr, "shirctl: name the configuration with --conf FILE, or "
				    "a .NET config file with --config FILE\n");
			return 1;
		}
		rc = proxy_config_load(&c->proxy, pc, &err);
		conf_free(c);
	}
	if (rc != 0) {
		fprintf(stderr, "shirctl: the proxy configuration cannot be loaded: %s\n", err.msg);
		return 1;
	}
	if (*proxy_config_warnings(*pc)) {
		const char *w = proxy_config_warnings(*pc);

		while (*w) {
			size_t l = strcspn(w, "\n");

			fprintf(stderr, "warning: %.*s\n", (int)l, w);
			w += l + (w[l] ? 1 : 0);
		}
	}
	return 0;
}

/* what PAC saw: its source, hash and age, the call and what it returned */
static void
ctl_proxy_pac_print(const struct pac_explain *ex)
{
	if (ex->tried[0])
		printf("PAC tried: %s\n", ex->tried);
	if (ex->source[0])
		printf("PAC:       %s (sha256 %s, fetched %ld s ago%s)\n", ex->source, ex->hash,
		    ex->age_s, ex->stale ? ", stale: its refresh failed" : "");
	printf("Called:    FindProxyForURL%s(\"%s\", \"%s\")\n", ex->ex_fn ? "Ex" : "",
	    ex->sanitized, ex->host);
	if (ex->error[0])
		printf("PAC error: %s\n", ex->error);
	else
		printf("Returned:  \"%s\"\n", ex->result);
}

static void
ctl_proxy_pac_json(cJSON *o, const struct pac_explain *ex)
{
	cJSON *p = cJSON_AddObjectToObject(o, "pac");

	if (p == NULL)
		return;
	cJSON_AddStringToObject(p, "source", ex->source);
	cJSON_AddStringToObject(p, "sha256", ex->hash);
	cJSON_AddNumberToObject(p, "ageSeconds", (double)ex->age_s);
	cJSON_AddBoolToObject(p, "stale", ex->stale);
	cJSON_AddStringToObject(p, "url", ex->sanitized);
	cJSON_AddStringToObject(p, "function", ex->result[0] ? (ex->ex_fn ? "FindProxyForURLEx" :
	    "FindProxyForURL") : "");
	cJSON_AddStringToObject(p, "returned", ex->result);
	cJSON_AddStringToObject(p, "tried", ex->tried);
	cJSON_AddStringToObject(p, "error", ex->error);
}

static int
ctl_proxy_explain(struct ctl_ctx *ctx, int argc, char **argv)
{
	struct proxy_config *pc = NULL;
	struct proxy_decision d;
	struct pac_explain ex;
	const char *url = NULL, *dotnet = NULL;
	int json = ctx->json, i, rc;
	size_t k;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			dotnet = argv[++i];
		else if (argv[i][0] != '-' && url == NULL)
			url = argv[i];
		else
			ctl_die_usage("proxy", CTL_PROXY_USAGE);
	}
	if (url == NULL)
		ctl_die_usage("proxy", CTL_PROXY_USAGE);
	if ((rc = ctl_proxy_load(ctx, dotnet, &pc)) != 0)
		return rc;
	rc = proxy_decide_explain(pc, url, &d, &ex);
	pac_shutdown();
	if (rc != 0) {
		fprintf(stderr, "shirctl: %s\n", d.reason);
		proxy_config_unref(pc);
		return 1;
	}
	if (json) {
		cJSON *o = cJSON_CreateObject(), *a;
		char *s;

		cJSON_AddStringToObject(o, "decision", d.direct ? "DIRECT" : "PROXY");
		a = cJSON_AddArrayToObject(o, "proxies");
		for (k = 0; k < d.nproxies; k++)
			cJSON_AddItemToArray(a, cJSON_CreateString(d.proxies[k]));
		cJSON_AddStringToObject(o, "reason", d.reason);
		if (ex.sanitized[0])
			ctl_proxy_pac_json(o, &ex);
		s = cJSON_PrintUnformatted(o);
		printf("%s\n", s ? s : "{}");
		free(s);
		cJSON_Delete(o);
	} else {
		printf("URL:       %s\n", url);
		if (ex.sanitized[0])
			ctl_proxy_pac_print(&ex);
		if (d.direct) {
			printf("Decision:  DIRECT\n");
		} else {
			printf("Decision:  PROXY");
			for (k = 0; k < d.nproxies; k++)
				printf("%s%s", k ? ", then " : " ", d.proxies[k]);
			printf("\n");
		}
		printf("Reason:    %s\n", d.reason);
	}
	proxy_config_unref(pc);
	return 0;
}

static void
ctl_proxy_print_item(const cJSON *it, int indent)
{
	const cJSON *c;

	if (cJSON_IsArray(it)) {
		if (cJSON_GetArraySize(it) == 0)
			printf("(none)\n");
		else
			printf("\n");
		cJSON_ArrayForEach(c, it)
			printf("%*s- %s\n", indent + 2, "", cJSON_IsString(c) ? c->valuestring : "?");
	} else if (cJSON_IsObject(it)) {
		printf("%s\n", it->child ? "" : "(none)");
		cJSON_ArrayForEach(c, it)
			printf("%*s%s=%s\n", indent + 2, "", c->string,
			    cJSON_IsString(c) ? c->valuestring : "?");
	} else if (cJSON_IsBool(it)) {
		printf("%s\n", cJSON_IsTrue(it) ? "true" : "false");
	} else if (cJSON_IsNumber(it)) {
		printf("%g\n", it->valuedouble);
	} else if (cJSON_IsString(it)) {
		const char *s = it->valuestring;

		/* multi-line values (warnings) indented under the key */
		while (*s) {
			size_t l = strcspn(s, "\n");

			printf("%.*s\n", (int)l, s);
			s += l + (s[l] ? 1 : 0);
			if (*s)
				printf("%*s", indent + 22, "");
		}
		if (!*it->valuestring)
			printf("\n");
	}
}

static int
ctl_proxy_show(struct ctl_ctx *ctx, int argc, char **argv)
{
	struct proxy_config *pc = NULL;
	int json = ctx->json, i, rc;
	const char *dotnet = NULL;
	cJSON *o, *it;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			dotnet = argv[++i];
		else
			ctl_die_usage("proxy", CTL_PROXY_USAGE);
	}
	if ((rc = ctl_proxy_load(ctx, dotnet, &pc)) != 0)
		return rc;
	o = cJSON_CreateObject();
	proxy_config_describe(pc, o);
	if (json) {
		char *s = cJSON_Print(o);

		printf("%s\n", s ? s : "{}");
		free(s);
	} else {
		cJSON_ArrayForEach(it, o) {
			printf("%-22s", it->string);
			ctl_proxy_print_item(it, 0);
		}
	}
	cJSON_Delete(o);
	proxy_config_unref(pc);
	return 0;
}

int
ctl_cmd_proxy(struct ctl_ctx *ctx, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "explain") == 0)
		return ctl_proxy_explain(ctx, argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "show") == 0)
		return ctl_proxy_show(ctx, argc - 1, argv + 1);
	ctl_die_usage("proxy", CTL_PROXY_USAGE);
	return 2;
}
