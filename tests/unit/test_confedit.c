/* Unit tests for the in-place shird.conf editor. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/atomicfile.h"
#include "node/conf.h"
#include "node/admin/confedit.h"

static const char sample[] =
    "; shird.conf: a comment at the top\n"
    "\n"
    "[node]\n"
    "name = n1\n"
    "  queue_size = 10   ; inline comment\n"
    "\n"
    "; a comment between\n"
    "[security]\n"
    "; local_machine_access = false\n"
    "allowed_folders = /srv\n"
    "\n"
    "# trailing comment of security\n"
    "[proxy]\n"
    "; nothing set\n";

static char *
edit(const char *text, const char *sec, const char *key, const char *val)
{
	struct confedit e = { sec, key, val };
	struct shir_error err;
	char *out = NULL;

	assert_int_equal(confedit_set(text, &e, &out, &err), 0);
	return out;
}

static void
test_replace_keeps_everything_else(void **state)
{
	char *o = edit(sample, "node", "queue_size", "20");

	assert_non_null(strstr(o, "  queue_size = 20   ; inline comment\n"));
	assert_null(strstr(o, "= 10"));
	/* everything else byte for byte */
	assert_int_equal(strlen(o), strlen(sample));
	assert_memory_equal(o, sample, (size_t)(strstr(o, "queue_size") - o));
	free(o);
}

/* A long inline comment on the key's line stays whole, line break included
 * (found by libFuzzer: a fixed buffer cut it and merged two lines). */
static void
test_long_inline_comment_kept(void **state)
{
	char text[2048], want[2048], comment[1200], *o;

	memset(comment, 'c', sizeof comment - 1);
	comment[sizeof comment - 1] = '\0';
	snprintf(text, sizeof text, "[node]\nname = a   ; %s\n[log]\nlevel = info\n", comment);
	snprintf(want, sizeof want, "[node]\nname = bb   ; %s\n[log]\nlevel = info\n", comment);
	o = edit(text, "node", "name", "bb");
	assert_string_equal(o, want);
	free(o);
}

static void
test_add_to_section_after_last_key(void **state)
{
	char *o = edit(sample, "security", "local_machine_access", "true");
	const char *want = "allowed_folders = /srv\nlocal_machine_access = true\n\n# trailing";

	assert_non_null(strstr(o, want));
	assert_non_null(strstr(o, "; local_machine_access = false\n"));	/* comment kept */
	free(o);
	/* a section with only comments: right after its header */
	o = edit(sample, "proxy", "mode", "system");
	assert_non_null(strstr(o, "[proxy]\nmode = system\n; nothing set\n"));
	free(o);
}

static void
test_add_section(void **state)
{
	char *o = edit(sample, "log", "level", "debug");

	assert_non_null(strstr(o, "; nothing set\n\n[log]\nlevel = debug\n"));
	free(o);
	o = edit("", "log", "level", "debug");
	assert_string_equal(o, "[log]\nlevel = debug\n");
	free(o);
	o = edit("[node]\nname = x", "log", "level", "warn");	/* no final newline */
	assert_string_equal(o, "[node]\nname = x\n\n[log]\nlevel = warn\n");
	free(o);
}

static void
test_remove(void **state)
{
	char *o = edit(sample, "security", "allowed_folders", NULL);

	assert_null(strstr(o, "allowed_folders = /srv"));
	assert_int_equal(strlen(o), strlen(sample) - strlen("allowed_folders = /srv\n"));
	free(o);
	o = edit(sample, "security", "nothing_here", NULL);
	assert_string_equal(o, sample);
	free(o);
}

static void
test_same_key_other_section(void **state)
{
	/* "name" in [node] is not touched by an edit of [forward] name */
	char *o = edit(sample, "forward", "name", "127.0.0.1:22");

	assert_non_null(strstr(o, "name = n1\n"));
	assert_non_null(strstr(o, "[forward]\nname = 127.0.0.1:22\n"));
	free(o);
}

static void
test_refusals(void **state)
{
	struct confedit bad_nl = { "node", "name", "a\nb" };
	struct confedit bad_val = { "node", "queue_size", "lots" };
	struct shir_error err;
	char *out = NULL, big[400];

	assert_int_equal(confedit_set(sample, &bad_nl, &out, &err), SHIR_EINVAL);
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	{
		struct confedit e = { "node", "name", big };

		assert_int_equal(confedit_set(sample, &e, &out, &err), SHIR_EINVAL);
	}
	/* a value that would not read back as written */
	{
		struct confedit e = { "proxy", "user", "svc ;x" };

		assert_int_equal(confedit_apply("t.conf", sample, &e, 1, &out, &err), SHIR_EINVAL);
		assert_null(out);
		assert_non_null(strstr(err.msg, "read back"));
	}
	/* the loader refuses the result: nothing comes out */
	assert_int_equal(confedit_apply("t.conf", sample, &bad_val, 1, &out, &err), SHIR_ECONFIG);
	assert_null(out);
	assert_non_null(strstr(err.msg, "nothing was written"));
	assert_non_null(strstr(err.msg, "queue_size"));
}

static void
test_file_atomic_and_mode(void **state)
{
	char dir[] = "/tmp/shir-confedit-XXXXXX", path[64], *text = NULL;
	struct confedit ok = { "security", "local_machine_access", "true" };
	struct confedit bad = { "node", "queue_size", "0" };
	struct shir_error err;
	struct stat st;
	struct conf *c = NULL;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/shird.conf", dir);
	assert_int_equal(atomicfile_write(path, sample, strlen(sample), 0640, &err), 0);
	assert_int_equal(confedit_file(path, &ok, 1, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_int_equal(conf_load_file(path, &c, &err), 0);
	assert_true(c->local_machine_access);
	conf_free(c);
	assert_int_not_equal(confedit_file(path, &bad, 1, &err), 0);
	assert_int_equal(atomicfile_read(path, 1 << 20, &text, NULL, &err), 0);
	assert_non_null(strstr(text, "queue_size = 10"));
	free(text);
	unlink(path);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replace_keeps_everything_else),
		cmocka_unit_test(test_long_inline_comment_kept),
		cmocka_unit_test(test_add_to_section_after_last_key),
		cmocka_unit_test(test_add_section),
		cmocka_unit_test(test_remove),
		cmocka_unit_test(test_same_key_other_section),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_file_atomic_and_mode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
