/* proxy_sysinfo: what .NET's bypassonlocal needs from the machine: its own
 * addresses (getifaddrs) and its primary DNS domain: the host name's suffix,
 * else the domain of its full name in /etc/hosts (as `hostname -d`), else
 * resolv.conf's domain, else its first search domain. No DNS lookups. */
#ifndef SHIR_PROXY_SYSINFO_H
#define SHIR_PROXY_SYSINFO_H

#include <stddef.h>

struct proxy_addr {
	int family;		/* AF_INET or AF_INET6 */
	unsigned char a[16];
};

/* Parses an IP literal ("10.0.0.1", "::1", "[::1]", "fe80::1%eth0"); 0 or -1. */
int proxy_addr_parse(const char *s, struct proxy_addr *out);
int proxy_addr_equal(const struct proxy_addr *a, const struct proxy_addr *b);

/* The machine's addresses; caller frees *out. Returns 0 or a SHIR_E* code. */
int proxy_sysinfo_addrs(struct proxy_addr **out, size_t *n);
/* The primary DNS domain, "" when none is known. */
void proxy_sysinfo_domain(char *buf, size_t len);
/* The same from the texts of /etc/hosts and /etc/resolv.conf (for tests). */
void proxy_sysinfo_domain_from(const char *hostname, const char *etc_hosts,
    const char *resolv_conf, char *buf, size_t len);

#endif
