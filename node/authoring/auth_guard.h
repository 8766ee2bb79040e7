/* auth_guard: what an authoring request may hand to a store client, checked
 * before the client sees it (docs/security-connectors.md). Two parsers that
 * do no I/O:
 *
 * - the statement check for MySQL/MariaDB: a Query must be one reading
 *   statement (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, VALUES, TABLE) and may
 *   not name a file (INFILE, OUTFILE, DUMPFILE) nor hide code in an
 *   executable comment; the text is lexed twice, with and without backslash
 *   escapes in strings, so no sql_mode makes the server read it differently;
 * - the ODBC connection string: KEY=value pairs (values plain or in braces)
 *   handed one by one to a callback; anything that two parsers could read
 *   differently (a '}' or '{' outside a braced value, text after a closing
 *   brace, a pair without '=') is refused. */
#ifndef SHIR_AUTH_GUARD_H
#define SHIR_AUTH_GUARD_H

#include <stddef.h>

/* 0: sql may be sent; -1: refused, why says which rule (a sentence). */
int auth_guard_sql(const char *sql, char *why, size_t whylen);

/* Called for each pair: key upper-cased with its surrounding spaces trimmed
 * (at most 63 bytes), the value without braces (not NUL-terminated). A
 * non-zero return stops the walk and is returned. */
typedef int (*auth_guard_pair_fn)(void *arg, const char *key, const char *val, size_t vlen);

/* 0 after every pair was handed over; -1 when cs is malformed (why says
 * where); or the callback's non-zero return. */
int auth_guard_odbc_pairs(const char *cs, auth_guard_pair_fn fn, void *arg, char *why,
    size_t whylen);

#endif
