/* pac_fetch: downloading a PAC file (http:, https:, file:) and decoding it to
 * UTF-8. Blocking (libcurl easy): called from the PAC thread and shirctl,
 * never from the event loop. */
#ifndef SHIR_PAC_FETCH_H
#define SHIR_PAC_FETCH_H

#include <stddef.h>

#include "common/shir_err.h"

#define PAC_FETCH_MAX (1024 * 1024)	/* bytes on the wire */

/* Fetches url, never through a proxy, within timeout_ms; http(s) must answer
 * 200. *text is the script as NUL-terminated UTF-8 (free() it). Errors read
 * "HTTP 404", "larger than 1 MiB", "timed out after 60 s", ... (the caller
 * puts "PAC URL: " in front). */
int pac_fetch(const char *url, long timeout_ms, char **text, size_t *len, struct shir_error *err);

/* The decoding alone (for the fuzz target and tests): the charset of
 * content_type (NULL: none), else a byte order mark, else ISO-8859-1. */
int pac_fetch_decode(const unsigned char *body, size_t blen, const char *content_type,
    char **text, size_t *len, struct shir_error *err);

#endif
