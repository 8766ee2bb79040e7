/* proxy_noproxy: the no_proxy / NO_PROXY list with libcurl 7.88's rules
 * (lib/noproxy.c): tokens separated by commas (blanks tolerated, with a
 * warning); "*" alone disables proxying; a name token matches the same name or
 * any name ending in "." + token, case-insensitively, leading and trailing
 * dots of the token ignored; no globs, no ports; IP tokens (optionally with a
 * /bits CIDR suffix, IPv6 without brackets) apply only when the host is an IP
 * literal. Parsing does no I/O. */
#ifndef SHIR_PROXY_NOPROXY_H
#define SHIR_PROXY_NOPROXY_H

#include <stddef.h>

struct proxy_noproxy;

/* Parses text (a copy is kept). Never fails on content: tokens curl would never
 * match are kept and simply never match. NULL only when out of memory. */
struct proxy_noproxy *proxy_noproxy_parse(const char *text, size_t len);
void proxy_noproxy_free(struct proxy_noproxy *np);

/* 1 when blanks separated tokens (curl warns about that). */
int proxy_noproxy_blank_separated(const struct proxy_noproxy *np);
size_t proxy_noproxy_count(const struct proxy_noproxy *np);
const char *proxy_noproxy_text(const struct proxy_noproxy *np);

/* host: a name, an IPv4 literal or a bracketed IPv6 literal. Returns 1 on a
 * match and copies the matching token (or "*") into tok. */
int proxy_noproxy_match(const struct proxy_noproxy *np, const char *host, char *tok, size_t toklen);

#endif
