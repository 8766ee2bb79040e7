/* bench/proxy_decide: proxy_decide() per second with a 200-entry .NET bypass
 * list (anchored regular expressions, as Microsoft recommends), against the
 * same proxy with an empty list. Runs each case for --seconds (default 2).
 * Usage: proxy_decide [--seconds S] [--entries N] */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proxy/proxy.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *
write_config(const char *dir, const char *name, int entries)
{
	char *path = malloc(512);
	FILE *f;
	int i;

	snprintf(path, 512, "%s/%s", dir, name);
	f = fopen(path, "w");
	if (f == NULL)
		exit(1);
	fprintf(f, "<configuration><system.net><defaultProxy>\n"
	    "<proxy proxyaddress=\"http://proxy.corp:8080\" bypassonlocal=\"true\"/>\n"
	    "<bypasslist>\n");
	for (i = 0; i < entries; i++)
		fprintf(f, "<add address=\"^https?://([^/:]*\\.)?host%d\\.site%d\\.corp\\.example"
		    "(:\\d+)?$\"/>\n", i, i % 17);
	fprintf(f, "</bypasslist></defaultProxy></system.net></configuration>\n");
	fclose(f);
	return path;
}

static double
run(struct proxy_config *pc, const char *const *urls, size_t nurls, double secs, int *direct)
{
	struct proxy_decision d;
	double t0 = now_s(), t;
	unsigned long n = 0;
	size_t i;

	*direct = 0;
	do {
		for (i = 0; i < 1000; i++, n++) {
			proxy_decide(pc, urls[n % nurls], &d);
			*direct += d.direct;
		}
		t = now_s() - t0;
	} while (t < secs);
	return n / t;
}

int
main(int argc, char **argv)
{
	static const char *const env[] = { NULL };
	static const char *const addrs[] = { "10.1.2.3" };
	struct proxy_sysinfo si = { env, "corp.example", addrs, 1 };
	char dir[] = "/tmp/shir-bench-proxy-XXXXXX", last[200], mid[200];
	const char *miss[] = { "https://relay.servicebus.windows.net/$hc/x",
		"https://login.microsoftonline.com/", "wss://relay.example.net:443/x",
		"https://storage.blob.core.windows.net/c" };
	const char *hit_last[1], *hit_mid[1];
	struct proxy_config *big = NULL, *empty = NULL;
	struct shir_error err;
	double secs = 2, r_miss, r_last, r_mid, r_empty;
	int entries = 200, i, dummy;
	char *f1, *f0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			secs = atof(argv[++i]);
		else if (strcmp(argv[i], "--entries") == 0 && i + 1 < argc)
			entries = atoi(argv[++i]);
	}
	if (mkdtemp(dir) == NULL)
		return 1;
	f1 = write_config(dir, "big.config", entries);
	f0 = write_config(dir, "empty.config", 0);
	if (proxy_config_load_dotnet_with(f1, &si, &big, &err) != 0 ||
	    proxy_config_load_dotnet_with(f0, &si, &empty, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	snprintf(last, sizeof last, "https://a.host%d.site%d.corp.example/", entries - 1,
	    (entries - 1) % 17);
	snprintf(mid, sizeof mid, "https://host%d.site%d.corp.example:8443/", entries / 2,
	    (entries / 2) % 17);
	hit_last[0] = last;
	hit_mid[0] = mid;
	r_empty = run(empty, miss, 4, secs, &dummy);
	r_miss = run(big, miss, 4, secs, &dummy);
	r_last = run(big, hit_last, 1, secs, &dummy);
	r_mid = run(big, hit_mid, 1, secs, &dummy);
	printf("entries=%d seconds_per_case=%.1f\n", entries, secs);
	printf("no bypass list (proxied):           %10.0f decisions/s\n", r_empty);
	printf("%d entries, no entry matches:      %10.0f decisions/s  (%.2fx of no list)\n",
	    entries, r_miss, r_miss / r_empty);
	printf("%d entries, middle entry matches:  %10.0f decisions/s\n", entries, r_mid);
	printf("%d entries, last entry matches:    %10.0f decisions/s\n", entries, r_last);
	proxy_config_unref(big);
	proxy_config_unref(empty);
	unlink(f1);
	unlink(f0);
	rmdir(dir);
	free(f1);
	free(f0);
	return 0;
}
