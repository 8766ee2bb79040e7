/* auth_guard: the statement check (MySQL) and the ODBC connection string
 * reader; see auth_guard.h. */
#include "config.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "node/authoring/auth_guard.h"

/* ---- statements ------------------------------------------------------- */

/* Words a Query may start with: the statements that only read. */
static const char *const guard_first[] = {
	"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "VALUES", "TABLE", NULL
};

/* Words that make the server or the client read or write a file. */
static const char *const guard_file_words[] = { "INFILE", "OUTFILE", "DUMPFILE", NULL };

static bool
guard_word_in(const char *w, size_t l, const char *const *list)
{
	for (; *list; list++)
		if (strlen(*list) == l && strncasecmp(w, *list, l) == 0)
			return true;
	return false;
}

static bool
guard_word_char(unsigned char ch)
{
	return isalnum(ch) || ch == '_' || ch == '$' || ch >= 0x80;
}

/* One pass of the lexer; backslash: whether '\' escapes in strings. */
static int
guard_sql_pass(const char *sql, bool backslash, char *why, size_t whylen)
{
	const char *p = sql;
	bool first = true;

	while (*p) {
		unsigned char ch = (unsigned char)*p;

		if (isspace(ch) || ch == '(') {
			p++;
		} else if (ch == '#' || (ch == '-' && p[1] == '-' &&
		    (p[2] == '\0' || isspace((unsigned char)p[2]) || iscntrl((unsigned char)p[2])))) {
			p += strcspn(p, "\n");
		} else if (ch == '/' && p[1] == '*') {
			const char *e;

			if (p[2] == '!' || (p[2] == 'M' && p[3] == '!')) {
				snprintf(why, whylen, "dataset.query has an executable comment (/*! ... */), "
				    "which the server runs as code: write the statement without it");
				return -1;
			}
			e = strstr(p + 2, "*/");
			p = e ? e + 2 : p + strlen(p);
		} else if (ch == '\'' || ch == '"' || ch == '`') {
			p++;
			while (*p) {
				if (backslash && *p == '\\' && ch != '`' && p[1]) {
					p += 2;
				} else if ((unsigned char)*p == ch) {
					if ((unsigned char)p[1] != ch)
						break;
					p += 2;		/* doubled quote */
				} else {
					p++;
				}
			}
			if (*p)
				p++;
			if (first) {
				snprintf(why, whylen, "dataset.query must start with a statement that reads "
				    "(SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, VALUES or TABLE)");
				return -1;
			}
		} else if (guard_word_char(ch)) {
			const char *w = p;
			size_t l;

			while (*p && guard_word_char((unsigned char)*p))
				p++;
			l = (size_t)(p - w);
			if (first && !guard_word_in(w, l, guard_first)) {
				snprintf(why, whylen, "dataset.query must start with a statement that reads "
				    "(SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, VALUES or TABLE), not %.*s: "
				    "authoring is read-only", (int)(l > 32 ? 32 : l), w);
				return -1;
			}
			first = false;
			if (guard_word_in(w, l, guard_file_words)) {
				snprintf(why, whylen, "dataset.query names a file (%.*s): statements that "
				    "read or write files (LOAD DATA, SELECT ... INTO OUTFILE) are not allowed "
				    "in authoring", (int)l, w);
				return -1;
			}
		} else {
			if (first) {
				snprintf(why, whylen, "dataset.query must start with a statement that reads "
				    "(SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, VALUES or TABLE)");
				return -1;
			}
			p++;
		}
	}
	if (first) {
		snprintf(why, whylen, "dataset.query is empty");
		return -1;
	}
	return 0;
}

int
auth_guard_sql(const char *sql, char *why, size_t whylen)
{
	if (guard_sql_pass(sql, true, why, whylen) != 0)
		return -1;
	return guard_sql_pass(sql, false, why, whylen);	/* NO_BACKSLASH_ESCAPES */
}

/* ---- ODBC connection strings ------------------------------------------ */

int
auth_guard_odbc_pairs(const char *cs, auth_guard_pair_fn fn, void *arg, char *why, size_t whylen)
{
	const char *p = cs;
	int rc;

	while (*p) {
		const char *k, *ke, *v;
		char key[64];
		size_t kl, vl, i;

		while (*p == ' ' || *p == ';')
			p++;
		if (!*p)
			break;
		k = p;
		ke = p + strcspn(p, "=;{}");
		if (*ke != '=') {
			snprintf(why, whylen, "the connection string has \"%.*s\" where a KEY=value pair "
			    "belongs", (int)((size_t)(ke - k) > 40 ? 40 : (size_t)(ke - k)), k);
			return -1;
		}
		p = ke + 1;
		while (ke > k && ke[-1] == ' ')
			ke--;
		kl = (size_t)(ke - k);
		if (kl == 0 || kl >= sizeof key) {
			snprintf(why, whylen, "the connection string has a pair with %s key",
			    kl ? "a too long" : "an empty");
			return -1;
		}
		for (i = 0; i < kl; i++) {
			unsigned char ch = (unsigned char)k[i];

			if (!isalnum(ch) && ch != ' ' && ch != '_' && ch != '-' && ch != '.') {
				snprintf(why, whylen, "the connection string key \"%.*s\" has a character "
				    "keys do not have", (int)kl, k);
				return -1;
			}
			key[i] = (char)toupper(ch);
		}
		key[kl] = '\0';
		if (*p == '{') {
			v = ++p;
			vl = strcspn(p, "{}");
			if (p[vl] != '}') {
				snprintf(why, whylen, "the value of %s in the connection string %s", key,
				    p[vl] ? "has a '{' inside braces" : "has no closing '}'");
				return -1;
			}
			p += vl + 1;
			while (*p == ' ')
				p++;
			if (*p && *p != ';') {
				snprintf(why, whylen, "the value of %s in the connection string goes on "
				    "after its closing '}' (a '}' inside a braced value is not allowed)", key);
				return -1;
			}
		} else {
			v = p;
			vl = strcspn(p, ";{}");
			if (p[vl] == '{' || p[vl] == '}') {
				snprintf(why, whylen, "the value of %s in the connection string has a brace; "
				    "put the whole value in braces, without braces inside", key);
				return -1;
			}
			p += vl;
		}
		rc = fn(arg, key, v, vl);
		if (rc != 0)
			return rc;
	}
	return 0;
}
