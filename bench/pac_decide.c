/* bench/pac_decide: proxy_decide() per second when a PAC file decides, beside
 * the static custom proxy measured in the same run: warm (the same host again:
 * the short result cache answers), cold (a new host each time: a round trip to
 * shir-pac-helper running FindProxyForURL), and the helper's resident memory.
 * The PAC file is read from a file: URL (its download is not measured); the
 * script asks no DNS question (isInNet only for address literals).
 * Needs SHIR_PAC_HELPER when the helper is not installed.
 * Usage: pac_decide [--seconds S] */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proxy/pac.h"
#include "proxy/proxy.h"

static const char pac_text[] =
    "function FindProxyForURL(url, host) {\n"
    "  if (isPlainHostName(host) || dnsDomainIs(host, '.local.example')) return 'DIRECT';\n"
    "  if (/^[0-9.]+$/.test(host) && isInNet(host, '10.0.0.0', '255.0.0.0'))\n"
    "    return 'PROXY inner.corp:3128; DIRECT';\n"
    "  if (shExpMatch(host, '*.corp.example') || shExpMatch(url, 'https://intranet*'))\n"
    "    return 'PROXY corp-a.corp:8080; PROXY corp-b.corp:8080';\n"
    "  if (dnsDomainIs(host, '.windows.net') || dnsDomainIs(host, '.microsoft.com'))\n"
    "    return 'PROXY cloud.corp:8080; DIRECT';\n"
    "  return 'PROXY default.corp:8080';\n"
    "}\n";

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* cold: a new host each call (a name or an IP literal, alternately) */
static double
run(struct proxy_config *pc, int cold, double secs, unsigned long *base)
{
	struct proxy_decision d;
	char url[200];
	double t0 = now_s(), t;
	unsigned long n = 0;
	int i;

	do {
		for (i = 0; i < 100; i++, n++) {
			unsigned long k = cold ? (*base)++ : 7;

			if (k % 2)
				snprintf(url, sizeof url, "https://h%lu.corp.example/x", k);
			else
				snprintf(url, sizeof url, "https://10.%lu.%lu.%lu/", (k >> 16) & 255,
				    (k >> 8) & 255, k & 255);
			proxy_decide(pc, url, &d);
			if (d.direct && !cold) {
				fprintf(stderr, "unexpected DIRECT: %s\n", d.reason);
				exit(1);
			}
		}
		t = now_s() - t0;
	} while (t < secs);
	return n / t;
}

static long
rss_kb(int pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

int
main(int argc, char **argv)
{
	char dir[] = "/tmp/shir-bench-pac-XXXXXX", pacf[256], url[300];
	struct proxy_settings st, sp;
	struct proxy_config *stat = NULL, *pac = NULL;
	struct proxy_decision d;
	struct shir_error err;
	double secs = 2, r_static, r_warm, r_cold;
	unsigned long base = 1;
	FILE *f;
	int i;

	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			secs = atof(argv[++i]);
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(pacf, sizeof pacf, "%s/proxy.pac", dir);
	if ((f = fopen(pacf, "w")) == NULL)
		return 1;
	fputs(pac_text, f);
	fclose(f);
	snprintf(url, sizeof url, "file://%s", pacf);
	memset(&st, 0, sizeof st);
	st.mode = PROXY_MODE_CUSTOM;
	st.address = "proxy.corp";
	st.port = 8080;
	sp = st;
	sp.address = NULL;
	sp.pac_url = url;
	if (proxy_config_load(&st, &stat, &err) != 0 || proxy_config_load(&sp, &pac, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	proxy_decide(pac, "https://warmup.corp.example/", &d);	/* fetch, start the helper */
	if (d.direct) {
		fprintf(stderr, "PAC did not work: %s\n", d.reason);
		return 1;
	}
	r_static = run(stat, 0, secs, &base);
	r_warm = run(pac, 0, secs, &base);
	r_cold = run(pac, 1, secs, &base);
	printf("seconds_per_case=%.1f\n", secs);
	printf("static custom proxy:              %10.0f decisions/s  (1)\n", r_static);
	printf("PAC, warm (cached result):        %10.0f decisions/s  (%.3fx)\n", r_warm,
	    r_warm / r_static);
	printf("PAC, cold (FindProxyForURL runs): %10.0f decisions/s  (%.4fx)\n", r_cold,
	    r_cold / r_static);
	printf("helper pid %d RSS %ld kB after %lu cold decisions\n", pac_helper_pid(),
	    rss_kb(pac_helper_pid()), base - 1);
	pac_shutdown();
	proxy_config_unref(stat);
	proxy_config_unref(pac);
	unlink(pacf);
	rmdir(dir);
	return 0;
}
