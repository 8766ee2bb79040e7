#include "config.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/proxy_sysinfo.h"
#include "common/shir_err.h"

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

/* The FQDN of a short host name from an /etc/hosts text, as `hostname -f`
 * finds it without DNS: a line naming the host whose first name is
 * "host.domain". */
static void
sysinfo_domain_from_hosts(const char *hostname, const char *hosts, char *buf, size_t len)
{
	size_t hl = strlen(hostname);
	const char *p;

	for (p = hosts ? hosts : ""; *p; ) {
		size_t ll = strcspn(p, "\n");
		char line[1024], *save = NULL, *tok, *first = NULL;
		int named = 0;

		if (ll < sizeof line) {
			memcpy(line, p, ll);
			line[ll] = '\0';
			if (strchr(line, '#'))
				*strchr(line, '#') = '\0';
			tok = strtok_r(line, " \t\r", &save);	/* the address */
			while (tok && (tok = strtok_r(NULL, " \t\r", &save)) != NULL) {
				if (first == NULL)
					first = tok;
				if (strcmp(tok, hostname) == 0 ||
				    (strncmp(tok, hostname, hl) == 0 && tok[hl] == '.'))
					named = 1;
			}
			if (named && first && strncmp(first, hostname, hl) == 0 &&
			    first[hl] == '.' && first[hl + 1] != '\0') {
				sysinfo_copy(buf, len, first + hl + 1, strlen(first + hl + 1));
				return;
			}
		}
		p += ll + (p[ll] ? 1 : 0);
	}
}

void
proxy_sysinfo_domain_from(const char *hostname, const char *etc_hosts, const char *resolv,
    char *buf, size_t len)
{
	const char *dot = hostname ? strchr(hostname, '.') : NULL, *p;
	char search[256] = "";

	if (len)
		buf[0] = '\0';
	if (dot != NULL && dot[1] != '\0') {
		sysinfo_copy(buf, len, dot + 1, strlen(dot + 1));
		return;
	}
	if (hostname != NULL && *hostname) {
		sysinfo_domain_from_hosts(hostname, etc_hosts, buf, len);
		if (len && *buf)
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

static void
sysinfo_read(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;

	if (f != NULL) {
		n = fread(buf, 1, len - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
}

void
proxy_sysinfo_domain(char *buf, size_t len)
{
	char host[256] = "", resolv[8192], hosts[16384];

	if (gethostname(host, sizeof host - 1) != 0)
		host[0] = '\0';
	sysinfo_read("/etc/resolv.conf", resolv, sizeof resolv);
	sysinfo_read("/etc/hosts", hosts, sizeof hosts);
	proxy_sysinfo_domain_from(host, hosts, resolv, buf, len);
}
