/* FileSystem connector: browse folders, DelimitedText and Json datasets.
 * Files are streamed in chunks through an iconv decoder into the incremental
 * readers (csv_reader, json_reader) and reading stops as soon as enough rows
 * were seen, so a file of any size costs a bounded amount of memory. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <limits.h>

#include <cjson/cJSON.h>

#include "node/authoring/auth_ctx.h"
#include "node/authoring/auth_rows.h"
#include "node/authoring/csv_reader.h"
#include "node/authoring/json_reader.h"

#define FS_CHUNK (64 * 1024)
#define FS_BROWSE_SCAN_MAX 100000
#define FS_JSON_RECORD_MAX (1024 * 1024)

/* ---- paths ------------------------------------------------------------ */

/* The linked service's root, resolved and checked (spec 6). */
static int
fs_root(struct auth_ctx *c, char **root)
{
	const char *r = auth_prop_str(c, "root", true, NULL);

	if (r == NULL)
		return -1;
	if (auth_check_local_path(c, "the FileSystem root", r, root) != 0)
		return -1;
	return 0;
}

/* root + rel, resolved, inside the root and the allowed folders. */
static int
fs_resolve(struct auth_ctx *c, const char *root, const char *rel, const char *what, char **out)
{
	size_t l = strlen(root) + strlen(rel) + 2;
	char *joined = malloc(l), *real = NULL;
	int rc;

	*out = NULL;
	if (joined == NULL)
		return auth_fail(c, AUTH_E_INTERNAL, "out of memory");
	while (*rel == '/')
		rel++;
	snprintf(joined, l, "%s/%s", root, rel);
	rc = auth_check_local_path(c, what, joined, &real);
	if (rc == 0 && c->policy.path_validation && !auth_path_inside(real, root)) {
		rc = auth_fail(c, AUTH_E_PATH, "%s %s leaves the linked service's root %s (through a "
		    "symbolic link)", what, rel, root);
		free(real);
		real = NULL;
	}
	free(joined);
	*out = real;
	return rc;
}

/* Where an open descriptor really is (Linux: the /proc/self/fd link is the
 * kernel's own path of the open file, whatever links led to it). */
static bool
fs_fd_path(int fd, char *buf, size_t n)
{
	char link[64];
	ssize_t l;

	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	l = readlink(link, buf, n - 1);
	if (l <= 0 || (size_t)l >= n - 1)
		return false;
	buf[l] = '\0';
	return true;
}

/* Opens a path that fs_resolve checked, without following a final link,
 * and makes sure the descriptor is that very path: a link swapped into the
 * path between the check and the open (a race) is refused, not read. */
static int
fs_open_checked(struct auth_ctx *c, const char *path, int flags, const char *what)
{
	char real[PATH_MAX];
	int fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0) {
		if (errno == ENOENT)
			auth_fail(c, AUTH_E_NOTFOUND, "%s %s does not exist", what, path);
		else if (errno == ELOOP)
			auth_fail(c, AUTH_E_PATH, "%s %s became a symbolic link after it was checked; "
			    "it is not read", what, path);
		else
			auth_fail(c, AUTH_E_STORE, "cannot open %s %s: %s", what, path, strerror(errno));
		return -1;
	}
	if (c->policy.path_validation && (!fs_fd_path(fd, real, sizeof real) ||
	    strcmp(real, path) != 0)) {
		close(fd);
		auth_fail(c, AUTH_E_PATH, "%s %s changed (a symbolic link on its way) after it was "
		    "checked; it is not read", what, path);
		return -1;
	}
	return fd;
}

/* The metadata browse may show for entry name of the folder dirfd. A
 * symbolic link shows its target's metadata only when the target lies
 * inside the linked service's root (so inside the allowed folders):
 * otherwise the entry is left out, as a dangling link is, and nothing of
 * what lies behind it (type, size, time) leaves the node. The target is
 * opened (O_PATH) and checked by the path of that descriptor, and the
 * metadata comes from the same descriptor: no race between the two. */
static bool
fs_entry_stat(struct auth_ctx *c, int dirfd, const char *name, const char *root,
    struct stat *st)
{
	char real[PATH_MAX];
	bool ok;
	int fd;

	if (fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) != 0)
		return false;
	if (!S_ISLNK(st->st_mode))
		return true;
	if (!c->policy.path_validation)
		return fstatat(dirfd, name, st, 0) == 0;
	fd = openat(dirfd, name, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return false;	/* a dangling link */
	ok = fs_fd_path(fd, real, sizeof real) && auth_path_inside(real, root) && fstat(fd, st) == 0;
	close(fd);
	return ok;
}

static void
fs_iso_time(time_t t, char *buf, size_t n)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- test and browse ---------------------------------------------------- */

static int
fs_test(struct auth_ctx *c)
{
	char *root = NULL;
	struct stat st;
	DIR *d;

	if (fs_root(c, &root) != 0)
		return -1;
	if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode)) {
		auth_fail(c, AUTH_E_NOTFOUND, "the FileSystem root %s is not a folder", root);
		free(root);
		return -1;
	}
	d = opendir(root);
	if (d == NULL) {
		auth_fail(c, AUTH_E_AUTH, "the node cannot read the folder %s: %s (check the "
		    "permissions of the user shird runs as)", root, strerror(errno));
		free(root);
		return -1;
	}
	closedir(d);
	auth_result_store(c, "FileSystem", "");
	free(root);
	return 0;
}

static void
fs_add_item(cJSON *items, const char *name, const struct stat *st)
{
	char ts[32];
	cJSON *it;

	if (S_ISDIR(st->st_mode)) {
		auth_item(items, name, "folder");
	} else if (S_ISREG(st->st_mode)) {
		it = auth_item(items, name, "file");
		if (it == NULL)
			return;
		cJSON_AddNumberToObject(it, "size", (double)st->st_size);
		fs_iso_time(st->st_mtime, ts, sizeof ts);
		cJSON_AddStringToObject(it, "modified", ts);
	}
}

static int
fs_browse(struct auth_ctx *c, cJSON *items, bool *truncated)
{
	char *root = NULL, *dir = NULL;
	struct dirent *e;
	struct stat st;
	DIR *d = NULL;
	int n = 0, rc = -1, fd = -1;

	if (fs_root(c, &root) != 0)
		goto out;
	if (fs_resolve(c, root, c->path, "the path", &dir) != 0)
		goto out;
	/* metadata from the descriptor that was checked, never from a path */
	if ((fd = fs_open_checked(c, dir, O_PATH, "the path")) < 0)
		goto out;
	if (fstat(fd, &st) != 0) {
		auth_fail(c, AUTH_E_STORE, "cannot read %s: %s", c->path, strerror(errno));
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		const char *base = strrchr(dir, '/');

		fs_add_item(items, base ? base + 1 : dir, &st);
		rc = 0;
		goto out;
	}
	close(fd);
	fd = fs_open_checked(c, dir, O_RDONLY | O_DIRECTORY, "the folder");
	if (fd < 0)
		goto out;
	d = fdopendir(fd);
	if (d == NULL) {
		auth_fail(c, AUTH_E_STORE, "cannot list %s: %s", c->path[0] ? c->path : "the root",
		    strerror(errno));
		goto out;
	}
	fd = -1;	/* the DIR owns it */
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (!fs_entry_stat(c, dirfd(d), e->d_name, root, &st))
			continue;	/* a dangling link, or one that leaves the root */
		if (++n > FS_BROWSE_SCAN_MAX) {
			*truncated = true;
			break;
		}
		if ((n & 1023) == 0 && auth_should_stop(c)) {
			auth_fail_timeout(c, "listing the folder");
			goto out;
		}
		fs_add_item(items, e->d_name, &st);
	}
	rc = 0;
out:
	if (d)
		closedir(d);
	if (fd >= 0)
		close(fd);
	free(root);
	free(dir);
	return rc;
}

/* ---- sampled table ------------------------------------------------------ */

/* The rows file column types are inferred from: a fixed sample, the schema
 * operation's (a preview reads at least as many, and returns its limit). */
#define FS_INFER_ROWS AUTH_PREVIEW_DEFAULT

enum fs_kind { FK_NULL = 0, FK_TEXT, FK_JSTRING, FK_JSCALAR, FK_JSTRUCT };

struct fs_cell {
	char *s;
	unsigned char kind;
};

struct fs_table {
	char **names;
	int ncols;
	struct fs_cell **rows;	/* each ncols_at_add cells, grown lazily */
	int *rowlen;
	int nrows, want;	/* want = limit */
	size_t bytes;
	bool more;		/* a row beyond want (or beyond the cap) exists */
	bool header_done;
	/* DelimitedText */
	bool header;
	/* errors */
	struct auth_ctx *c;
};

static void
fs_table_free(struct fs_table *t)
{
	int i, k;

	for (i = 0; i < t->ncols; i++)
		free(t->names[i]);
	free(t->names);
	for (i = 0; i < t->nrows; i++) {
		for (k = 0; k < t->rowlen[i]; k++)
			free(t->rows[i][k].s);
		free(t->rows[i]);
	}
	free(t->rows);
	free(t->rowlen);
}

static int
fs_col(struct fs_table *t, const char *name)
{
	char **nn, buf[32];
	int i;

	if (name != NULL)
		for (i = 0; i < t->ncols; i++)
			if (strcmp(t->names[i], name) == 0)
				return i;
	if (t->ncols >= AUTH_COLUMNS_MAX)
		return -1;
	nn = realloc(t->names, sizeof *nn * (size_t)(t->ncols + 1));
	if (nn == NULL)
		return -1;
	t->names = nn;
	if (name == NULL || !*name) {
		snprintf(buf, sizeof buf, "Prop_%d", t->ncols);
		name = buf;
	}
	t->names[t->ncols] = strdup(name);
	if (t->names[t->ncols] == NULL)
		return -1;
	return t->ncols++;
}

/* Starts a row; returns its index or -1 (and sets more) when full. */
static int
fs_row(struct fs_table *t)
{
	struct fs_cell **nr;
	int *nl;

	if (t->nrows >= t->want || t->bytes >= AUTH_RESPONSE_MAX) {
		t->more = true;
		return -1;
	}
	nr = realloc(t->rows, sizeof *nr * (size_t)(t->nrows + 1));
	if (nr == NULL)
		return -1;
	t->rows = nr;
	nl = realloc(t->rowlen, sizeof *nl * (size_t)(t->nrows + 1));
	if (nl == NULL)
		return -1;
	t->rowlen = nl;
	t->rows[t->nrows] = NULL;
	t->rowlen[t->nrows] = 0;
	return t->nrows++;
}

static int
fs_set(struct fs_table *t, int row, int col, const char *s, size_t len, enum fs_kind kind)
{
	struct fs_cell *cells = t->rows[row];
	int n = t->rowlen[row];

	if (col >= n) {
		cells = realloc(cells, sizeof *cells * (size_t)(col + 1));
		if (cells == NULL)
			return -1;
		memset(cells + n, 0, sizeof *cells * (size_t)(col + 1 - n));
		t->rows[row] = cells;
		t->rowlen[row] = col + 1;
	}
	free(cells[col].s);
	cells[col].s = NULL;
	cells[col].kind = FK_NULL;
	if (kind == FK_NULL)
		return 0;
	cells[col].s = auth_clean_text(s, len, AUTH_VALUE_MAX);
	if (cells[col].s == NULL)
		return -1;
	cells[col].kind = (unsigned char)kind;
	t->bytes += strlen(cells[col].s) + 8;
	return 0;
}

/* Infers the column types and writes the columns (and rows) to the sink.
 * Types come from the first FS_INFER_ROWS rows whatever the limit, so that
 * schema and preview (of any limit) say the same types. */
static int
fs_table_emit(struct auth_ctx *c, struct fs_table *t)
{
	struct auth_infer inf;
	int i, k;

	for (k = 0; k < t->ncols; k++) {
		auth_infer_init(&inf);
		for (i = 0; i < t->nrows && i < FS_INFER_ROWS; i++)
			if (k < t->rowlen[i] && t->rows[i][k].kind != FK_NULL)
				auth_infer_add(&inf, t->rows[i][k].s,
				    t->rows[i][k].kind == FK_JSTRING || t->rows[i][k].kind == FK_JSTRUCT);
		if (auth_rows_add_column(c->rows, t->names[k], auth_infer_type(&inf), -1) != 0)
			return auth_fail(c, AUTH_E_INTERNAL, "out of memory");
	}
	if (c->op != AUTH_OP_PREVIEW)
		return 0;
	for (i = 0; i < t->nrows && auth_rows_want(c->rows); i++) {
		auth_rows_begin(c->rows);
		for (k = 0; k < t->ncols; k++) {
			if (k >= t->rowlen[i] || t->rows[i][k].kind == FK_NULL)
				auth_rows_null(c->rows);
			else
				auth_rows_text(c->rows, t->rows[i][k].s, strlen(t->rows[i][k].s));
		}
		auth_rows_end(c->rows);
	}
	if (i < t->nrows || t->more)
		auth_rows_set_truncated(c->rows);
	return 0;
}

/* ---- streaming a file ----------------------------------------------------- */

typedef int (*fs_feed_fn)(void *arg, const char *buf, size_t len, bool last);

static const char *
fs_iconv_name(const char *enc)
{
	static const struct {
		const char *name, *iconv;
	} map[] = {
		{ "UTF-8", NULL }, { "UTF8", NULL },
		{ "UTF-16", "UTF-16" }, { "UTF-16LE", "UTF-16LE" }, { "UTF-16BE", "UTF-16BE" },
		{ "ISO-8859-1", "ISO-8859-1" }, { "Latin-1", "ISO-8859-1" }, { "Latin1", "ISO-8859-1" },
		{ "Windows-1252", "WINDOWS-1252" }, { "US-ASCII", "ISO-8859-1" },
	};
	size_t i;

	for (i = 0; i < sizeof map / sizeof map[0]; i++)
		if (strcasecmp(map[i].name, enc) == 0)
			return map[i].iconv ? map[i].iconv : "";
	return NULL;
}

/* Reads path in chunks, decodes to UTF-8 and calls feed until it returns
 * non-zero (stop), the end of the file, or the scan cap (none when capped
 * is NULL: a copy reads the whole file). */
static int
fs_stream(struct auth_ctx *c, const char *path, const char *encoding, fs_feed_fn feed, void *arg,
    bool *capped)
{
	const char *ic = fs_iconv_name(encoding);
	iconv_t cd = (iconv_t)-1;
	char *in = NULL, *out = NULL;
	size_t have = 0, total = 0, bom_done = 0;
	int fd = -1, rc = -1;
	ssize_t n;

	if (capped != NULL)
		*capped = false;
	if (ic == NULL)
		return auth_fail(c, AUTH_E_INVALID, "dataset.encoding \"%s\" is not supported: use "
		    "UTF-8, UTF-16, UTF-16LE, UTF-16BE, ISO-8859-1 (Latin-1) or Windows-1252", encoding);
	if (*ic && (cd = iconv_open("UTF-8", ic)) == (iconv_t)-1)
		return auth_fail(c, AUTH_E_INTERNAL, "this system's iconv cannot decode %s", ic);
	/* path is resolved and checked; O_NONBLOCK so that opening a FIFO does
	 * not wait for a writer, and only a regular file is read (a FIFO or a
	 * device would hold the worker past the deadline) */
	fd = fs_open_checked(c, path, O_RDONLY | O_NONBLOCK, "the file");
	if (fd < 0)
		goto out;
	{
		struct stat st;

		if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
			auth_fail(c, AUTH_E_INVALID, "%s is not a regular file (a folder, FIFO, socket "
			    "or device): only files are read", path);
			goto out;
		}
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	}
	in = malloc(FS_CHUNK + 8);
	out = malloc(FS_CHUNK * 4 + 16);
	if (in == NULL || out == NULL) {
		auth_fail(c, AUTH_E_INTERNAL, "out of memory");
		goto out;
	}
	for (;;) {
		char *ip = in, *op = out;
		size_t il, ol = FS_CHUNK * 4 + 16, outlen;
		bool eof;
		int stop;

		if (auth_should_stop(c)) {
			auth_fail_timeout(c, "reading the file");
			goto out;
		}
		n = read(fd, in + have, FS_CHUNK);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			auth_fail(c, AUTH_E_STORE, "cannot read %s: %s", path, strerror(errno));
			goto out;
		}
		eof = n == 0;
		total += (size_t)n;
		il = have + (size_t)n;
		if (cd == (iconv_t)-1) {
			op = in;	/* UTF-8: no copy */
			outlen = il;
			have = 0;
			if (!bom_done && (outlen >= 3 || eof)) {
				bom_done = 1;
				if (outlen >= 3 && memcmp(op, "\xef\xbb\xbf", 3) == 0)
					op += 3, outlen -= 3;
			} else if (!bom_done) {
				have = il;	/* wait for three bytes */
				continue;
			}
		} else {
			if (iconv(cd, &ip, &il, &op, &ol) == (size_t)-1 && errno != EINVAL) {
				auth_fail(c, AUTH_E_STORE, "the file %s is not valid %s near byte %zu; set "
				    "dataset.encoding to the file's encoding", path, encoding,
				    total - il);
				goto out;
			}
			if (eof && il > 0) {
				auth_fail(c, AUTH_E_STORE, "the file %s ends inside a %s character", path,
				    encoding);
				goto out;
			}
			memmove(in, ip, il);	/* an incomplete sequence waits */
			have = il;
			outlen = (size_t)(op - out);
			op = out;
			if (!bom_done && outlen >= 3) {
				bom_done = 1;
				if (memcmp(op, "\xef\xbb\xbf", 3) == 0)
					op += 3, outlen -= 3;
			}
		}
		stop = feed(arg, op, outlen, eof);
		if (stop < 0)
			goto out;
		if (stop > 0 || eof)
			break;
		if (capped != NULL && total >= AUTH_FILE_SCAN_MAX) {
			*capped = true;
			break;
		}
	}
	rc = 0;
out:
	if (cd != (iconv_t)-1)
		iconv_close(cd);
	if (fd >= 0)
		close(fd);
	free(in);
	free(out);
	return rc;
}

/* ---- DelimitedText ------------------------------------------------------ */

struct fs_csv {
	struct fs_table t;
	struct csv_reader *rd;
	const char *rel;
};

static int
fs_csv_record(void *arg, const struct csv_field *f, size_t n)
{
	struct fs_csv *x = arg;
	struct fs_table *t = &x->t;
	size_t i;
	int row;

	if (t->header && !t->header_done) {
		t->header_done = true;
		for (i = 0; i < n; i++) {
			char *name = auth_clean_text(f[i].data, f[i].len, 256);

			if (name == NULL || fs_col(t, name[0] ? name : NULL) < 0) {
				free(name);
				return auth_fail(t->c, AUTH_E_STORE, "the file has more than %d columns",
				    AUTH_COLUMNS_MAX), -1;
			}
			free(name);
		}
		return 0;
	}
	row = fs_row(t);
	if (row < 0)
		return 1;	/* enough rows: stop reading */
	for (i = 0; i < n; i++) {
		if ((int)i >= t->ncols && fs_col(t, NULL) < 0)
			return auth_fail(t->c, AUTH_E_STORE, "the file has more than %d columns",
			    AUTH_COLUMNS_MAX), -1;
		/* an empty unquoted field is null; "" is an empty string */
		if (fs_set(t, row, (int)i, f[i].data, f[i].len,
			f[i].len == 0 && !f[i].quoted ? FK_NULL : FK_TEXT) != 0)
			return auth_fail(t->c, AUTH_E_INTERNAL, "out of memory"), -1;
	}
	return 0;
}

static int
fs_csv_feed(void *arg, const char *buf, size_t len, bool last)
{
	struct fs_csv *x = arg;
	enum csv_status s = csv_reader_feed(x->rd, buf, len, fs_csv_record, x);

	if (s == CSV_OK && last)
		s = csv_reader_finish(x->rd, fs_csv_record, x);
	if (s == CSV_ERROR) {
		if (x->t.c->code == AUTH_OK)
			auth_fail(x->t.c, AUTH_E_STORE, "%s is not valid delimited text: %s", x->rel,
			    csv_reader_error(x->rd));
		return -1;
	}
	if (x->t.c->code != AUTH_OK)
		return -1;
	return s == CSV_STOPPED ? 1 : 0;
}

static int
fs_one_char(struct auth_ctx *c, const char *field, const char *v, char *out, bool allow_empty)
{
	if (strcmp(v, "\\t") == 0 || strcmp(v, "\t") == 0) {
		*out = '\t';
		return 0;
	}
	if (allow_empty && *v == '\0') {
		*out = '\0';
		return 0;
	}
	if (strlen(v) != 1 || v[0] == '\n' || v[0] == '\r')
		return auth_fail(c, AUTH_E_INVALID, "dataset.%s must be one character (or \\t)", field);
	*out = v[0];
	return 0;
}

static int
fs_file(struct auth_ctx *c, const char **rel, char **root, char **file)
{
	*rel = auth_ds_str(c, "path", true, NULL);
	if (*rel == NULL)
		return -1;
	if (fs_root(c, root) != 0)
		return -1;
	return fs_resolve(c, *root, *rel, "the file", file);
}

static int
fs_delimited(struct auth_ctx *c)
{
	struct fs_csv x;
	const char *cd, *qc, *enc;
	char *root = NULL, *file = NULL, delim, quote;
	bool header, capped;
	int rc = -1;

	memset(&x, 0, sizeof x);
	x.t.c = c;
	if ((cd = auth_ds_str(c, "columnDelimiter", false, ",")) == NULL ||
	    (qc = auth_ds_str(c, "quoteChar", false, "\"")) == NULL ||
	    (enc = auth_ds_str(c, "encoding", false, "UTF-8")) == NULL ||
	    auth_ds_bool(c, "firstRowAsHeader", true, &header) != 0 ||
	    fs_one_char(c, "columnDelimiter", cd, &delim, false) != 0 ||
	    fs_one_char(c, "quoteChar", qc, &quote, true) != 0)
		goto out;
	if (delim == quote) {
		auth_fail(c, AUTH_E_INVALID, "dataset.columnDelimiter and dataset.quoteChar must differ");
		goto out;
	}
	if (fs_file(c, &x.rel, &root, &file) != 0)
		goto out;
	x.t.header = header;
	x.t.want = c->limit > FS_INFER_ROWS ? c->limit : FS_INFER_ROWS;
	x.rd = csv_reader_new(delim, quote, AUTH_VALUE_MAX + 64, AUTH_COLUMNS_MAX);
	if (x.rd == NULL) {
		auth_fail(c, AUTH_E_INTERNAL, "out of memory");
		goto out;
	}
	if (fs_stream(c, file, enc, fs_csv_feed, &x, &capped) != 0)
		goto out;
	if (capped)
		x.t.more = true;
	rc = fs_table_emit(c, &x.t);
out:
	csv_reader_free(x.rd);
	fs_table_free(&x.t);
	free(root);
	free(file);
	return rc;
}

/* ---- Json --------------------------------------------------------------- */

struct fs_json {
	struct fs_table t;
	struct json_reader *rd;
	const char *rel;
};

/* Adds one JSON record (an object: its members are columns) to the table. */
static int
fs_json_record(void *arg, const cJSON *v)
{
	struct fs_table *t = arg;
	const cJSON *m;
	int row = fs_row(t);

	if (row < 0)
		return 1;
	for (m = cJSON_IsObject(v) ? v->child : v; m != NULL; m = cJSON_IsObject(v) ? m->next : NULL) {
		const char *name = cJSON_IsObject(v) ? m->string : "value";
		int col = fs_col(t, name);
		char *s = NULL, num[64];
		int rc;

		if (col < 0)
			return auth_fail(t->c, AUTH_E_STORE, "the records have more than %d fields",
			    AUTH_COLUMNS_MAX), -1;
		if (cJSON_IsNull(m)) {
			rc = fs_set(t, row, col, NULL, 0, FK_NULL);
		} else if (cJSON_IsString(m)) {
			rc = fs_set(t, row, col, m->valuestring, strlen(m->valuestring), FK_JSTRING);
		} else if (cJSON_IsBool(m)) {
			rc = fs_set(t, row, col, cJSON_IsTrue(m) ? "true" : "false",
			    cJSON_IsTrue(m) ? 4 : 5, FK_JSCALAR);
		} else if (cJSON_IsNumber(m)) {
			double d = m->valuedouble;

			/* range first: casting a double beyond long long is undefined */
			if (d < 9007199254740992.0 && d > -9007199254740992.0 && d == (double)(long long)d)
				snprintf(num, sizeof num, "%lld", (long long)d);
			else
				snprintf(num, sizeof num, "%.17g", d);
			rc = fs_set(t, row, col, num, strlen(num), FK_JSCALAR);
		} else {
			s = cJSON_PrintUnformatted(m);
			rc = s ? fs_set(t, row, col, s, strlen(s), FK_JSTRUCT) : -1;
			cJSON_free(s);
		}
		if (rc != 0)
			return auth_fail(t->c, AUTH_E_INTERNAL, "out of memory"), -1;
		if (!cJSON_IsObject(v))
			break;
	}
	return 0;
}

static int
fs_json_feed(void *arg, const char *buf, size_t len, bool last)
{
	struct fs_json *x = arg;
	enum json_status s = json_reader_feed(x->rd, buf, len, fs_json_record, &x->t);

	if (s == JSON_OK && last)
		s = json_reader_finish(x->rd, fs_json_record, &x->t);
	if (s == JSON_ERROR) {
		if (x->t.c->code == AUTH_OK)
			auth_fail(x->t.c, AUTH_E_STORE, "%s is not valid %s: %s", x->rel,
			    x->t.header ? "JSON Lines" : "JSON", json_reader_error(x->rd));
		return -1;
	}
	if (x->t.c->code != AUTH_OK)
		return -1;
	return s == JSON_STOPPED ? 1 : 0;
}

int
conn_json_rows(struct auth_ctx *c, bool lines, auth_pull_fn pull, void *pull_arg, const char *what)
{
	struct fs_json x;
	int rc = -1;

	memset(&x, 0, sizeof x);
	x.t.c = c;
	x.t.want = c->limit > FS_INFER_ROWS ? c->limit : FS_INFER_ROWS;
	x.t.header = lines;	/* only for the error message */
	x.rel = what;
	x.rd = json_reader_new(lines, FS_JSON_RECORD_MAX);
	if (x.rd == NULL) {
		auth_fail(c, AUTH_E_INTERNAL, "out of memory");
		goto out;
	}
	if (pull(pull_arg, &x, fs_json_feed) != 0)
		goto out;
	rc = fs_table_emit(c, &x.t);
out:
	json_reader_free(x.rd);
	fs_table_free(&x.t);
	return rc;
}

/* A file read for the JSON reader or a copy's (whole: the whole file, no
 * cap; else a preview's, which says there was more when the cap cut it). */
struct fs_pull {
	struct auth_ctx *c;
	const char *file, *enc;
	bool whole, capped;
};

static int
fs_pull(void *arg, void *feeder, auth_feed_fn feed)
{
	struct fs_pull *p = arg;

	if (fs_stream(p->c, p->file, p->enc, feed, feeder, p->whole ? NULL : &p->capped) != 0)
		return -1;
	if (p->capped)
		((struct fs_json *)feeder)->t.more = true;
	return 0;
}

static int
fs_json(struct auth_ctx *c)
{
	struct fs_pull p;
	const char *rel, *enc;
	char *root = NULL, *file = NULL;
	bool lines;
	int rc = -1;

	memset(&p, 0, sizeof p);
	if (auth_ds_bool(c, "jsonLines", false, &lines) != 0 ||
	    (enc = auth_ds_str(c, "encoding", false, "UTF-8")) == NULL)
		goto out;
	if (fs_file(c, &rel, &root, &file) != 0)
		goto out;
	p.c = c;
	p.file = file;
	p.enc = enc;
	rc = conn_json_rows(c, lines, fs_pull, &p, rel);
out:
	free(root);
	free(file);
	return rc;
}

static int
fs_rows(struct auth_ctx *c)
{
	if (strcmp(c->dataset_type, "DelimitedText") == 0)
		return fs_delimited(c);
	return fs_json(c);
}

/* ---- copy jobs: the whole file --------------------------------------------- */

/* A Json or DelimitedText file in full, under the checks of a preview
 * (the root and the file inside the allowed folders, a regular file only,
 * the dataset's encoding decoded to UTF-8). */
static int
fs_stream_op(struct auth_ctx *c, const struct auth_stream *s)
{
	struct fs_pull p;
	const char *rel, *enc, *cd, *qc;
	char *root = NULL, *file = NULL, delim, quote;
	bool lines, header;
	int rc = -1;

	memset(&p, 0, sizeof p);
	if ((enc = auth_ds_str(c, "encoding", false, "UTF-8")) == NULL)
		goto out;
	if (strcmp(c->dataset_type, "Json") == 0) {
		if (auth_ds_bool(c, "jsonLines", false, &lines) != 0)
			goto out;
	} else if ((cd = auth_ds_str(c, "columnDelimiter", false, ",")) == NULL ||
	    (qc = auth_ds_str(c, "quoteChar", false, "\"")) == NULL ||
	    auth_ds_bool(c, "firstRowAsHeader", true, &header) != 0 ||
	    fs_one_char(c, "columnDelimiter", cd, &delim, false) != 0 ||
	    fs_one_char(c, "quoteChar", qc, &quote, true) != 0) {
		goto out;
	}
	if (fs_file(c, &rel, &root, &file) != 0)
		goto out;
	p.c = c;
	p.file = file;
	p.enc = enc;
	p.whole = true;
	if (strcmp(c->dataset_type, "Json") == 0)
		rc = conn_json_stream(c, lines, fs_pull, &p, rel, s);
	else
		rc = conn_csv_stream(c, delim, quote, header, fs_pull, &p, rel, s);
out:
	free(root);
	free(file);
	return rc;
}

static const char *const fs_datasets[] = { "DelimitedText", "Json", NULL };

const struct auth_store conn_fs_store = {
	.type = "FileSystem",
	.datasets = fs_datasets,
	.test = fs_test,
	.browse = fs_browse,
	.schema = fs_rows,
	.preview = fs_rows,
	.stream = fs_stream_op,
};
