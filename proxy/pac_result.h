/* pac_result: the string FindProxyForURL returns ("PROXY a:8080; PROXY b:3128;
 * DIRECT"), parsed into the list the dialer tries in order. No I/O. */
#ifndef SHIR_PAC_RESULT_H
#define SHIR_PAC_RESULT_H

#include <stddef.h>

#define PAC_RESULT_MAX 8	/* entries kept; more are dropped and counted */
#define PAC_RESULT_MAX_LEN 4096	/* longer strings are refused */

enum pac_type { PAC_DIRECT = 0, PAC_HTTP, PAC_HTTPS, PAC_SOCKS4, PAC_SOCKS5 };

struct pac_entry {
	enum pac_type type;
	char host[256];		/* bracketed when IPv6 */
	int port;
};

struct pac_result {
	size_t n;
	struct pac_entry e[PAC_RESULT_MAX];
	size_t skipped;		/* entries not understood (or beyond the cap) */
	char note[256];		/* the first one skipped and why, "" when none */
};

/* Parses s (len bytes, need not be NUL-terminated). Returns 0 when at least one
 * entry is usable (or the string is empty or blank: DIRECT, as WinHTTP), else
 * SHIR_EINVAL with r->note saying why. */
int pac_result_parse(const char *s, size_t len, struct pac_result *r);
/* "DIRECT", "http://host:port", "https://...", "socks4a://...", "socks5h://..." */
void pac_entry_url(const struct pac_entry *e, char *buf, size_t len);

#endif
