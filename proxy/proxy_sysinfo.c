#include "config.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy_sysinfo.h"
#include "shir_err.h"

int
proxy_addr_parse(const char *s, struct proxy_addr *out)
{
	char buf[128];
	size_t l = strlen(s);
	char *pct;

	if (s[0] == '[') {
		if (l < 2 || s[l - 1] != ']')
			return -1;
		s++, l -= 2;
	}
	if (l >= sizeof buf)
		return -1;
	memcpy(buf, s, l);
	buf[l] = '\0';
	if ((pct = strchr(buf, '%')) != NULL)
		*pct = '\0';	/* zone id */
	memset(out, 0, sizeof *out);
	if (inet_pton(AF_INET, buf, out->a) == 1) {
		out->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, buf, out->a) == 1) {
		out->family = AF_INET6;
		return 0;
	}
	return -1;
}

int
proxy_addr_equal(const struct proxy_addr *a, const struct proxy_addr *b)
{
	return a->family == b->family &&
	    memcmp(a->a, b->a, a->family == AF_INET ? 4 : 16) == 0;
}

int
proxy_sysinfo_addrs(struct proxy_addr **out, size_t *n)
{
	struct ifaddrs *ifa = NULL, *i;
	struct proxy_addr *v = NULL;
	size_t cnt = 0;

	*out = NULL;
	*n = 0;
	if (getifaddrs(&ifa) != 0)
		return SHIR_EIO;
	for (i = ifa; i; i = i->ifa_next)
		if (i->ifa_addr && (i->ifa_addr->sa_family == AF_INET ||
		    i->ifa_addr->sa_family == AF_INET6))
			cnt++;
	if (cnt > 0 && (v = calloc(cnt, sizeof *v)) == NULL) {
		freeifaddrs(ifa);
		return SHIR_ENOMEM;
	}
	cnt = 0;
	for (i = ifa; i; i = i->ifa_next) {
		if (i->ifa_addr == NULL)
			continue;
		if (i->ifa_addr->sa_family == AF_INET) {
			v[cnt].family = AF_INET;
			memcpy(v[cnt++].a, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, 4);
		} else if (i->ifa_addr->sa_family == AF_INET6) {
			v[cnt].family = AF_INET6;
			memcpy(v[cnt++].a, &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, 16);
		}
	}
	freeifaddrs(ifa);
	*out = v;
	*n = cnt;
	return 0;
}

static void
sysinfo_copy(char *buf, size_t len, const char *s, size_t l)
{
	if (len == 0)
		return;
	if (l >= len)
		l = len - 1;
	memcpy(buf, s, l);
	buf[l] = '\0';
	/* a trailing dot is not part of the domain */
	if (l > 0 && buf[l - 1] == '.')
		buf[l - 1] = '\0';
}

void
proxy_sysinfo_domain_from(const char *hostname, const char *resolv, char *buf, size_t len)
{
	const char *dot = hostname ? strchr(hostname, '.') : NULL, *p;
	char search[256] = "";

	if (len)
		buf[0] = '\0';
	if (dot != NULL && dot[1] != '\0') {
		sysinfo_copy(buf, len, dot + 1, strlen(dot + 1));
		return;
	}
	for (p = resolv ? resolv : ""; *p; ) {
		size_t ll = strcspn(p, "\n");
		const char *v = NULL;

		if (ll > 7 && strncmp(p, "domain", 6) == 0 && (p[6] == ' ' || p[6] == '\t'))
			v = p + 7;
		else if (ll > 7 && strncmp(p, "search", 6) == 0 && (p[6] == ' ' || p[6] == '\t') &&
		    !*search) {
			const char *s = p + 7;
			size_t sl;

			while (*s == ' ' || *s == '\t')
				s++;
			sl = strcspn(s, " \t\n");
			sysinfo_copy(search, sizeof search, s, sl);
		}
		if (v != NULL) {
			while (*v == ' ' || *v == '\t')
				v++;
			sysinfo_copy(buf, len, v, strcspn(v, " \t\n"));
			if (*buf)
				return;
		}
		p += ll + (p[ll] ? 1 : 0);
	}
	sysinfo_copy(buf, len, search, strlen(search));
}

void
proxy_sysinfo_domain(char *buf, size_t len)
{
	char host[256] = "", resolv[8192] = "";
	FILE *f;

	if (gethostname(host, sizeof host - 1) != 0)
		host[0] = '\0';
	if ((f = fopen("/etc/resolv.conf", "r")) != NULL) {
		size_t n = fread(resolv, 1, sizeof resolv - 1, f);

		resolv[n] = '\0';
		fclose(f);
	}
	proxy_sysinfo_domain_from(host, resolv, buf, len);
}
