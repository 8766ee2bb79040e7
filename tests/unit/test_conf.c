/* Unit tests for the shird.conf loader: every key valid, out of range,
 * unknown, and broken syntax with the right line number. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/conf.h"
#include "common/log.h"

static int
load(const char *text, struct conf **c, struct shir_error *err)
{
	return conf_load_buffer("t.conf", text, strlen(text), c, err);
}

static void
expect_error(const char *text, const char *needle)
{
	struct shir_error err;
	struct conf *c = NULL;
	int rc = load(text, &c, &err);

	if (rc == 0 || strstr(err.msg, needle) == NULL)
		fail_msg("config:\n%s\nwanted an error containing [%s], got rc=%d [%s]", text, needle,
		    rc, err.msg);
	assert_null(c);
}

static void
test_defaults(void **state)
{
	struct shir_error err;
	struct conf *c = NULL;

	assert_int_equal(load("", &c, &err), 0);
	assert_non_null(c);
	assert_int_equal(c->concurrent_jobs, 0);
	assert_int_equal(c->queue_size, 64);
	assert_int_equal(c->operation_timeout, 45);
	assert_int_equal(c->shutdown_timeout, 10);
	assert_int_equal(c->log_level, LOG_LVL_INFO);
	assert_true(c->local_folder_path_validation);
	assert_false(c->local_machine_access);
	assert_int_equal(c->proxy.mode, PROXY_MODE_NONE);
	assert_int_equal(c->relay_ping_interval, 30);
	assert_null(c->relay_endpoint);
	assert_string_equal(c->path, "t.conf");
	conf_free(c);
}

/* A valid and an invalid text for every key, derived from the table. */
static void
valid_value(const struct conf_key *k, char *buf, size_t n)
{
	switch (k->type) {
	case CONF_T_PATH: snprintf(buf, n, "/tmp/x-%s", k->name); break;
	case CONF_T_STR:
		if (strcmp(k->name, "allowed_folders") == 0)
			snprintf(buf, n, "/srv/a:/srv/b");
		else
			snprintf(buf, n, "value-%s", k->name);
		break;
	case CONF_T_INT: snprintf(buf, n, "%ld", k->max); break;
	case CONF_T_BOOL: snprintf(buf, n, "%s", "yes"); break;
	case CONF_T_ENUM: snprintf(buf, n, "%.*s", (int)strcspn(k->choices, "|"), k->choices); break;
	}
}

static void
test_every_key_valid(void **state)
{
	size_t n, i;
	const struct conf_key *keys = conf_keys(&n);

	for (i = 0; i < n; i++) {
		char text[512], v[128];
		struct shir_error err;
		struct conf *c = NULL;

		valid_value(&keys[i], v, sizeof v);
		snprintf(text, sizeof text, "; comment\n[%s]\n%s = %s\n", keys[i].section,
		    keys[i].name, v);
		if (strcmp(keys[i].section, "proxy") == 0)
			strcat(text, strcmp(keys[i].name, "address") ? "address = p.corp\n" : "");
		if (load(text, &c, &err) != 0)
			fail_msg("key %s.%s = %s refused: %s", keys[i].section, keys[i].name, v,
			    err.msg);
		if (keys[i].type == CONF_T_INT) {
			int got = *(int *)((char *)c + keys[i].offset);
			assert_int_equal(got, keys[i].max);
		} else if (keys[i].type == CONF_T_STR || keys[i].type == CONF_T_PATH) {
			assert_string_equal(*(char **)((char *)c + keys[i].offset), v);
		}
		conf_free(c);
	}
}

static void
test_every_key_invalid(void **state)
{
	size_t n, i;
	const struct conf_key *keys = conf_keys(&n);

	for (i = 0; i < n; i++) {
		const struct conf_key *k = &keys[i];
		char text[512], want[128];

		snprintf(want, sizeof want, "t.conf:3: %s.%s must", k->section, k->name);
		switch (k->type) {
		case CONF_T_INT:
			snprintf(text, sizeof text, "\n[%s]\n%s = %ld\n", k->section, k->name, k->max + 1);
			expect_error(text, want);
			snprintf(text, sizeof text, "\n[%s]\n%s = %ld\n", k->section, k->name, k->min - 1);
			expect_error(text, want);
			snprintf(text, sizeof text, "\n[%s]\n%s = 12abc\n", k->section, k->name);
			expect_error(text, want);
			break;
		case CONF_T_BOOL:
			snprintf(text, sizeof text, "\n[%s]\n%s = maybe\n", k->section, k->name);
			expect_error(text, want);
			break;
		case CONF_T_ENUM:
			snprintf(text, sizeof text, "\n[%s]\n%s = bogus\n", k->section, k->name);
			expect_error(text, want);
			break;
		case CONF_T_PATH:
			snprintf(text, sizeof text, "\n[%s]\n%s = relative/path\n", k->section, k->name);
			expect_error(text, want);
			break;
		case CONF_T_STR:
			break;	/* any text is valid */
		}
	}
}

static void
test_unknown_key_and_section(void **state)
{
	expect_error("[node]\nname = a\nnmae = b\n", "t.conf:3: unknown key nmae in [node]");
	expect_error("[nodes]\nname = a\n", "t.conf:2: unknown section [nodes]");
	expect_error("name = a\n", "t.conf:1: name is outside any section");
}

static void
test_syntax_errors(void **state)
{
	expect_error("[node]\nname = a\n\n[log\nlevel = info\n", "t.conf:4: syntax error");
	expect_error("[node]\n; fine\nthis line has no equals sign\n", "t.conf:3: syntax error");
}

static void
test_duplicate_and_long_line(void **state)
{
	char text[600];

	expect_error("[node]\nname = a\nname = b\n", "t.conf:3: node.name is set twice (first at line 2)");
	memset(text, 0, sizeof text);
	strcpy(text, "[node]\nname = ");
	memset(text + strlen(text), 'x', 300);
	strcat(text, "\n");
	expect_error(text, "t.conf:2: the line is too long");
}

static void
test_indented_keys(void **state)
{
	struct shir_error err;
	struct conf *c = NULL;

	assert_int_equal(load("[node]\n  name = a\n\tqueue_size = 5\n", &c, &err), 0);
	assert_string_equal(c->node_name, "a");
	assert_int_equal(c->queue_size, 5);
	conf_free(c);
}

static void
test_forwards(void **state)
{
	struct shir_error err;
	struct conf *c = NULL;

	assert_int_equal(load("[forward]\nssh = 127.0.0.1:22\ndb = [::1]:5432\n", &c, &err), 0);
	assert_int_equal(c->nforwards, 2);
	assert_string_equal(c->forwards[0].name, "ssh");
	assert_string_equal(c->forwards[0].host, "127.0.0.1");
	assert_int_equal(c->forwards[0].port, 22);
	assert_string_equal(c->forwards[1].host, "::1");
	conf_free(c);
	expect_error("[forward]\nssh = 127.0.0.1\n", "t.conf:2: forward ssh must be host:port");
	expect_error("[forward]\nssh = h:70000\n", "t.conf:2: forward ssh must be host:port");
	expect_error("[forward]\nssh = h:22\nssh = h:23\n", "t.conf:3: forward ssh is defined twice");
	expect_error("[forward]\na/b = h:22\n", "t.conf:2: forward name a/b may hold only");
}

static void
test_cross_key_checks(void **state)
{
	expect_error("[proxy]\nmode = custom\n", "proxy.mode is custom but neither proxy.address nor proxy.pac_url is set");
	expect_error("[security]\nallowed_folders = /srv:data\n", "data is not an absolute path");
}

static void
test_all_errors_reported(void **state)
{
	struct shir_error err;
	struct conf *c = NULL;

	assert_int_not_equal(load("[node]\nqueue_size = 0\n[log]\nlevel = loud\n", &c, &err), 0);
	assert_non_null(strstr(err.msg, "t.conf:2:"));
	assert_non_null(strstr(err.msg, "t.conf:4:"));
}

static void
test_keep_unreloadable(void **state)
{
	struct shir_error err, warn;
	struct conf *a = NULL, *b = NULL;

	assert_int_equal(load("[node]\nstate_dir = /a\nqueue_size = 3\n", &a, &err), 0);
	assert_int_equal(load("[node]\nstate_dir = /b\nqueue_size = 9\n", &b, &err), 0);
	shir_error_clear(&warn);
	assert_int_equal(conf_keep_unreloadable(b, a, &warn), 1);
	assert_string_equal(b->state_dir, "/a");
	assert_int_equal(b->queue_size, 9);
	assert_non_null(strstr(warn.msg, "node.state_dir cannot change on reload"));
	conf_free(a);
	conf_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_key_valid),
		cmocka_unit_test(test_every_key_invalid),
		cmocka_unit_test(test_unknown_key_and_section),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_duplicate_and_long_line),
		cmocka_unit_test(test_indented_keys),
		cmocka_unit_test(test_forwards),
		cmocka_unit_test(test_cross_key_checks),
		cmocka_unit_test(test_all_errors_reported),
		cmocka_unit_test(test_keep_unreloadable),
	};

	return cmocka_run_group_tests_name("conf", tests, NULL, NULL);
}
