#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/atomicfile.h"
#include "node/conf.h"
#include "node/admin/confedit.h"
#include "common/log.h"

#define CONFEDIT_LINE_MAX 198	/* the loader's longest line */
#define CONFEDIT_FILE_MAX (1024 * 1024)

struct confedit_buf {
	char *p;
	size_t len, cap;
};

static int
confedit_add(struct confedit_buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;
		char *np = realloc(b->p, cap);

		if (np == NULL)
			return -1;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

/* Is [s, e) a section header; if so, its name in name. */
static int
confedit_section(const char *s, const char *e, char *name, size_t len)
{
	const char *rb;

	while (s < e && (*s == ' ' || *s == '\t'))
		s++;
	if (s == e || *s != '[')
		return 0;
	rb = memchr(s, ']', (size_t)(e - s));
	if (rb == NULL)
		return 0;
	s++;
	while (s < rb && isspace((unsigned char)*s))
		s++;
	while (rb > s && isspace((unsigned char)rb[-1]))
		rb--;
	snprintf(name, len, "%.*s", (int)(rb - s), s);
	return 1;
}

/* Does [s, e) set key; returns the indentation length, or -1. */
static int
confedit_is_key(const char *s, const char *e, const char *key)
{
	const char *p = s;
	size_t kl = strlen(key);
	int indent;

	while (p < e && (*p == ' ' || *p == '\t'))
		p++;
	indent = (int)(p - s);
	if ((size_t)(e - p) < kl || strncmp(p, key, kl) != 0)
		return -1;
	p += kl;
	while (p < e && (*p == ' ' || *p == '\t'))
		p++;
	if (p == e || (*p != '=' && *p != ':'))
		return -1;
	return indent;
}

/* The inline comment of a key line (" ; ..." after the value), or NULL. */
static const char *
confedit_inline_comment(const char *s, const char *e)
{
	const char *eq = memchr(s, '=', (size_t)(e - s)), *p;

	if (eq == NULL)
		eq = memchr(s, ':', (size_t)(e - s));
	for (p = eq ? eq + 1 : s; p < e; p++)
		if ((*p == ';' || *p == '#') && (p[-1] == ' ' || p[-1] == '\t'))
			break;
	if (p >= e)
		return NULL;
	while (p > s && (p[-1] == ' ' || p[-1] == '\t'))
		p--;
	return p;
}

int
confedit_set(const char *text, const struct confedit *ed, char **out, struct shir_error *err)
{
	struct confedit_buf b = { NULL, 0, 0 };
	const char *end = text + strlen(text), *p, *key_line = NULL, *insert_at = NULL;
	char cur[128] = "", line[CONFEDIT_LINE_MAX + 256];
	int in_sec = 0, seen_sec = 0, indent = 0;

	*out = NULL;
	if (ed->value != NULL && strpbrk(ed->value, "\r\n") != NULL)
		return shir_error_set(err, SHIR_EINVAL, "%s.%s: a value cannot contain a line break",
		    ed->section, ed->key);
	if (ed->value != NULL &&
	    strlen(ed->key) + strlen(ed->value) + 3 > CONFEDIT_LINE_MAX)
		return shir_error_set(err, SHIR_EINVAL, "%s.%s: the value is too long for one line "
		    "of shird.conf (%d characters)", ed->section, ed->key, CONFEDIT_LINE_MAX);
	/* Pass 1: the key's line in the first [section], or where to add it. */
	for (p = text; p < end && key_line == NULL;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end, *next = nl ? nl + 1 : end, *q = p;
		int ind;

		if (confedit_section(p, le, cur, sizeof cur)) {
			if (seen_sec && in_sec)
				break;	/* the end of the first matching section */
			in_sec = strcmp(cur, ed->section) == 0;
			if (in_sec) {
				seen_sec = 1;
				insert_at = next;
			}
		} else if (in_sec && (ind = confedit_is_key(p, le, ed->key)) >= 0) {
			key_line = p;
			indent = ind;
		} else if (in_sec) {
			while (q < le && (*q == ' ' || *q == '\t'))
				q++;
			if (q < le && *q != ';' && *q != '#')
				insert_at = next;
		}
		p = next;
	}
	/* Pass 2: copy, replacing or inserting. */
	if (key_line != NULL) {
		const char *le = memchr(key_line, '\n', (size_t)(end - key_line));
		const char *next = le ? le + 1 : end, *cm;

		if (le == NULL)
			le = end;
		cm = confedit_inline_comment(key_line, le);
		if (confedit_add(&b, text, (size_t)(key_line - text)) != 0)
			goto oom;
		/* the pieces go in one by one: a fixed buffer would cut a long
		 * inline comment and its line break */
		if (ed->value != NULL &&
		    (confedit_add(&b, key_line, (size_t)indent) != 0 ||
		    confedit_add(&b, ed->key, strlen(ed->key)) != 0 ||
		    confedit_add(&b, " = ", 3) != 0 ||
		    confedit_add(&b, ed->value, strlen(ed->value)) != 0 ||
		    (cm != NULL && confedit_add(&b, cm, (size_t)(le - cm)) != 0) ||
		    confedit_add(&b, "\n", 1) != 0))
			goto oom;
		if (confedit_add(&b, next, (size_t)(end - next)) != 0)
			goto oom;
	} else if (ed->value == NULL) {
		if (confedit_add(&b, text, (size_t)(end - text)) != 0)
			goto oom;
	} else if (insert_at != NULL) {
		if (confedit_add(&b, text, (size_t)(insert_at - text)) != 0)
			goto oom;
		if (insert_at > text && insert_at[-1] != '\n' && confedit_add(&b, "\n", 1) != 0)
			goto oom;
		snprintf(line, sizeof line, "%s = %s\n", ed->key, ed->value);
		if (confedit_add(&b, line, strlen(line)) != 0 ||
		    confedit_add(&b, insert_at, (size_t)(end - insert_at)) != 0)
			goto oom;
	} else {
		if (confedit_add(&b, text, (size_t)(end - text)) != 0)
			goto oom;
		snprintf(line, sizeof line, "%s[%s]\n%s = %s\n",
		    end > text && end[-1] != '\n' ? "\n\n" : end > text ? "\n" : "", ed->section,
		    ed->key, ed->value);
		if (confedit_add(&b, line, strlen(line)) != 0)
			goto oom;
	}
	if (b.p == NULL && confedit_add(&b, "", 0) != 0)
		goto oom;
	*out = b.p;
	return 0;
oom:
	free(b.p);
	return shir_error_set(err, SHIR_ENOMEM, "out of memory");
}

int
confedit_apply(const char *name, const char *text, const struct confedit *edits, size_t n,
    char **out, struct shir_error *err)
{
	struct conf *c = NULL;
	char *cur = strdup(text), *next = NULL;
	size_t i;
	int rc = 0;

	*out = NULL;
	if (cur == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		if ((rc = confedit_set(cur, &edits[i], &next, err)) != 0)
			goto out;
		free(cur);
		cur = next;
	}
	if ((rc = conf_load_buffer(name, cur, strlen(cur), &c, err)) != 0) {
		char why[SHIR_ERROR_MSG_MAX / 2];

		snprintf(why, sizeof why, "%.1000s", err->msg);
		rc = shir_error_set(err, rc, "the change would make %s invalid, so nothing was "
		    "written:\n%s", name, why);
		goto out;
	}
	/* A text value must read back as written (" ;" or " #" would start a
	 * comment, and the loader trims blanks). */
	for (i = 0; i < n; i++) {
		size_t nk, k;
		const struct conf_key *keys = conf_keys(&nk);

		for (k = 0; k < nk && edits[i].value != NULL; k++) {
			const char *got;

			if (strcmp(keys[k].section, edits[i].section) != 0 ||
			    strcmp(keys[k].name, edits[i].key) != 0 ||
			    (keys[k].type != CONF_T_STR && keys[k].type != CONF_T_PATH))
				continue;
			got = *(char *const *)((const char *)c + keys[k].offset);
			if (got == NULL || strcmp(got, edits[i].value) != 0) {
				rc = shir_error_set(err, SHIR_EINVAL, "%s.%s: the value %s would not read "
				    "back as written (a ';' or '#' after a blank starts a comment, and "
				    "blanks at the ends are dropped); nothing was written",
				    edits[i].section, edits[i].key, log_q(edits[i].value));
				goto out;
			}
		}
	}
	*out = cur;
	cur = NULL;
out:
	conf_free(c);
	free(cur);
	return rc;
}

int
confedit_file(const char *path, const struct confedit *edits, size_t n, struct shir_error *err)
{
	char *text = NULL, *out = NULL;
	struct stat st;
	mode_t mode = 0644;
	int rc;

	rc = atomicfile_read(path, CONFEDIT_FILE_MAX, &text, NULL, err);
	if (rc == SHIR_ENOENT) {
		text = strdup("");
		if (text == NULL)
			return shir_error_set(err, SHIR_ENOMEM, "out of memory");
		shir_error_clear(err);
	} else if (rc != 0) {
		return rc;
	} else if (stat(path, &st) == 0) {
		mode = st.st_mode & 07777;
	}
	if ((rc = confedit_apply(path, text, edits, n, &out, err)) == 0)
		rc = atomicfile_write(path, out, strlen(out), mode, err);
	free(text);
	free(out);
	return rc;
}
