/* Unit tests for relay/relay_state (the state file: round trip, atomic write
 * and mode, bad files, names) and relay/relay_conf (defaults, bounds,
 * unknown keys, plain listeners). */
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

#include "relay/server/relay_conf.h"
#include "relay/server/relay_state.h"

static char dir[256];

static int
setup(void **state)
{
	snprintf(dir, sizeof dir, "/tmp/shir-test-state-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void
test_roundtrip(void **state)
{
	char path[300], tmp[310];
	struct rstate *s = NULL, *t = NULL;
	struct rstate_entity *e;
	struct shir_error err;
	struct stat st;

	snprintf(path, sizeof path, "%s/state.json", dir);
	assert_int_equal(rstate_load(path, &s, &err), 0);
	assert_int_equal(s->n, 0);
	e = rstate_add(s, "sales-ir", &err);
	assert_non_null(e);
	e->ir = true;
	e->endpoint = strdup("wss://relay:443");
	assert_int_equal(rstate_add_rule(e, "node-key1", "k1", SAS_LISTEN), 0);
	assert_int_equal(rstate_add_rule(e, "root", "k2", SAS_MANAGE | SAS_SEND), 0);
	assert_null(rstate_add(s, "SALES-IR", &err));
	assert_int_equal(err.code, SHIR_EEXIST);
	assert_null(rstate_add(s, "/bad", &err));
	assert_null(rstate_add(s, "a//b", &err));
	assert_null(rstate_add(s, "$hc", &err));
	assert_non_null(rstate_add(s, "team/a.b-c_d", &err));
	assert_int_equal(rstate_save(s, path, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	assert_int_not_equal(access(tmp, F_OK), 0);
	assert_int_equal(rstate_load(path, &t, &err), 0);
	assert_int_equal(t->n, 2);
	e = rstate_find(t, "sales-ir");
	assert_non_null(e);
	assert_true(e->ir);
	assert_string_equal(e->endpoint, "wss://relay:443");
	assert_int_equal(e->nrules, 2);
	assert_string_equal(rstate_rule(e, "root")->key, "k2");
	assert_int_equal(rstate_rule(e, "root")->rights, SAS_MANAGE | SAS_SEND);
	assert_int_equal(rstate_remove(t, "sales-ir"), 0);
	assert_int_equal(rstate_remove(t, "sales-ir"), SHIR_ENOENT);
	assert_int_equal(t->n, 1);
	rstate_free(s);
	rstate_free(t);
}

static void
test_bad_files(void **state)
{
	char path[300];
	struct rstate *s = NULL;
	struct shir_error err;

	snprintf(path, sizeof path, "%s/bad.json", dir);
	write_file(path, "{not json");
	assert_int_equal(rstate_load(path, &s, &err), SHIR_ECONFIG);
	assert_null(s);
	write_file(path, "{\"entities\":[{\"name\":\"x\",\"rules\":[{\"name\":\"k\"}]}]}");
	assert_int_equal(rstate_load(path, &s, &err), SHIR_ECONFIG);
	assert_non_null(strstr(err.msg, "bad rule"));
	write_file(path, "{\"entities\":[{\"name\":\"x\"},{\"name\":\"X\"}]}");
	assert_int_equal(rstate_load(path, &s, &err), SHIR_ECONFIG);
	assert_int_equal(rstate_load("/nonexistent-dir/state.json", &s, &err), 0);
	rstate_free(s);
}

static void
test_conf(void **state)
{
	char path[300];
	struct relay_conf *c;
	struct shir_error err;

	snprintf(path, sizeof path, "%s/r.conf", dir);
	write_file(path, "[relay]\nlisten = 127.0.0.1:9300\nstate_file = /tmp/x.json\n");
	c = relay_conf_load(path, &err);
	assert_non_null(c);
	assert_int_equal(c->max_listeners, 25);
	assert_int_equal(c->inline_max, 65536);
	assert_int_equal(c->response_timeout, 60);
	assert_int_equal(c->rendezvous_timeout, 30);
	relay_conf_free(c);
	write_file(path, "[relay]\nlisten = 127.0.0.1:1\n[limits]\nresponse_timeout = 0\nbogus = 1\n");
	assert_null(relay_conf_load(path, &err));
	assert_non_null(strstr(err.msg, "response_timeout must be a whole number from 1"));
	assert_non_null(strstr(err.msg, "unknown key [limits] bogus"));
	write_file(path, "[relay]\nlisten_tls = 0.0.0.0:443\n");
	assert_null(relay_conf_load(path, &err));
	assert_non_null(strstr(err.msg, "tls_cert"));
	write_file(path, "[log]\nlevel = info\n");
	assert_null(relay_conf_load(path, &err));
	assert_null(relay_conf_load("/nonexistent.conf", &err));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_conf),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
