/* Unit tests for the machine key and the credential store. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/atomicfile.h"
#include "node/admin/credstore.h"
#include "node/admin/machinekey.h"
#include "node/admin/registration.h"
#include "node/admin/servicehosts.h"

static char dir[256];

static int
setup(void **state)
{
	snprintf(dir, sizeof dir, "/tmp/shir-credstore-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd);
}

static void
test_machine_key(void **state)
{
	struct shir_error err;
	uint8_t k1[MACHINEKEY_LEN], k2[MACHINEKEY_LEN];
	char sub[300], path[320];
	struct stat st;

	snprintf(sub, sizeof sub, "%s/state", dir);
	assert_int_equal(machinekey_load(sub, 0, k1, &err), SHIR_ENOENT);
	assert_int_equal(machinekey_load(sub, 1, k1, &err), 0);
	snprintf(path, sizeof path, "%s/machine.key", sub);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, MACHINEKEY_LEN);
	assert_int_equal(stat(sub, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(machinekey_load(sub, 1, k2, &err), 0);
	assert_memory_equal(k1, k2, MACHINEKEY_LEN);
	/* readable by the group: refused, with what to do */
	chmod(path, 0640);
	assert_int_equal(machinekey_load(sub, 1, k2, &err), SHIR_EPERM);
	assert_non_null(strstr(err.msg, "chmod 600"));
	chmod(path, 0600);
	/* wrong length */
	truncate(path, 31);
	assert_int_equal(machinekey_load(sub, 1, k2, &err), SHIR_ECRYPTO);
	assert_non_null(strstr(err.msg, "exactly 32 bytes"));
}

static void
test_put_get_delete(void **state)
{
	struct credstore *cs = NULL, *cs2 = NULL;
	struct credstore_info *v = NULL;
	struct shir_error err;
	char *s = NULL, path[300], *raw = NULL;
	uint64_t ver;
	size_t n, rawlen;

	assert_int_equal(credstore_open(dir, &cs, &err), 0);
	assert_int_equal(credstore_version(cs, &ver, &err), 0);
	assert_int_equal(ver, 0);
	assert_int_equal(credstore_get(cs, "db", &s, &err), SHIR_ENOENT);
	assert_null(s);
	assert_int_equal(credstore_put(cs, "db", "pa55word", &err), 0);
	assert_int_equal(credstore_put(cs, "api.token", "tok", &err), 0);
	assert_int_equal(credstore_put(cs, "db", "pa66word", &err), 0);
	assert_int_equal(credstore_version(cs, &ver, &err), 0);
	assert_int_equal(ver, 3);
	/* a second handle (another process) sees the same */
	assert_int_equal(credstore_open(dir, &cs2, &err), 0);
	assert_int_equal(credstore_get(cs2, "db", &s, &err), 0);
	assert_string_equal(s, "pa66word");
	credstore_secret_free(s);
	assert_int_equal(credstore_list(cs2, 0, &v, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].name, "api.token");
	assert_int_equal(v[0].version, 1);
	assert_string_equal(v[1].name, "db");
	assert_int_equal(v[1].version, 2);
	assert_true(v[1].updated > 0);
	free(v);
	/* the file never holds a value in clear, and is 0600 */
	snprintf(path, sizeof path, "%s/credentials", dir);
	assert_int_equal(atomicfile_read(path, 1 << 20, &raw, &rawlen, &err), 0);
	assert_null(memmem(raw, rawlen, "pa66word", 8));
	assert_null(memmem(raw, rawlen, "api.token", 9));
	free(raw);
	{
		struct stat st;

		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	assert_int_equal(credstore_delete(cs, "db", &err), 0);
	assert_int_equal(credstore_delete(cs, "db", &err), SHIR_ENOENT);
	assert_int_equal(credstore_get(cs2, "db", &s, &err), SHIR_ENOENT);
	assert_int_equal(credstore_version(cs2, &ver, &err), 0);
	assert_int_equal(ver, 4);
	credstore_free(cs);
	credstore_free(cs2);
}

static void
test_names(void **state)
{
	struct credstore *cs = NULL;
	struct credstore_info *v = NULL;
	struct shir_error err;
	char big[CREDSTORE_VALUE_MAX + 2];
	size_t n;

	assert_int_equal(credstore_open(dir, &cs, &err), 0);
	assert_int_equal(credstore_put(cs, "", "x", &err), SHIR_EINVAL);
	assert_int_equal(credstore_put(cs, "a/b", "x", &err), SHIR_EINVAL);
	assert_int_equal(credstore_put(cs, "a b", "x", &err), SHIR_EINVAL);
	assert_int_equal(credstore_name_check("_node-key", 0, &err), SHIR_EPERM);
	assert_non_null(strstr(err.msg, "reserved"));
	assert_int_equal(credstore_put(cs, "_node-key", "k", &err), 0);
	/* a CredentialReference never reaches the node key */
	{
		char *sec = NULL;

		assert_int_equal(credstore_resolve(cs, "_node-key", &sec, &err), SHIR_ENOENT);
		assert_null(sec);
		assert_int_equal(credstore_put(cs, "db", "v", &err), 0);
		assert_int_equal(credstore_resolve(cs, "db", &sec, &err), 0);
		assert_string_equal(sec, "v");
		credstore_secret_free(sec);
		assert_int_equal(credstore_resolve(cs, "nope", &sec, &err), SHIR_ENOENT);
		assert_int_equal(credstore_delete(cs, "db", &err), 0);
	}
	assert_int_equal(credstore_list(cs, 0, &v, &n, &err), 0);
	assert_int_equal(n, 0);
	free(v);
	assert_int_equal(credstore_list(cs, 1, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	free(v);
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	assert_int_equal(credstore_put(cs, "big", big, &err), SHIR_ETOOBIG);
	credstore_free(cs);
}

static void
test_corrupt_and_foreign(void **state)
{
	struct credstore *cs = NULL;
	struct shir_error err;
	char path[300], kpath[300], *s = NULL;
	uint64_t ver;

	assert_int_equal(credstore_open(dir, &cs, &err), 0);
	assert_int_equal(credstore_put(cs, "db", "v1", &err), 0);
	credstore_free(cs);
	/* another machine key: the file does not open, and says why */
	snprintf(kpath, sizeof kpath, "%s/machine.key", dir);
	unlink(kpath);
	assert_int_equal(credstore_open(dir, &cs, &err), 0);
	assert_int_equal(credstore_get(cs, "db", &s, &err), SHIR_ECRYPTO);
	assert_non_null(strstr(err.msg, "machine key"));
	/* and a put refuses to overwrite what it cannot read */
	assert_int_equal(credstore_put(cs, "db", "v2", &err), SHIR_ECRYPTO);
	/* a file that is not sealed */
	snprintf(path, sizeof path, "%s/credentials", dir);
	assert_int_equal(atomicfile_write(path, "{}", 2, 0600, &err), 0);
	assert_int_equal(credstore_version(cs, &ver, &err), SHIR_ECRYPTO);
	credstore_free(cs);
}

static void
test_export_import(void **state)
{
	struct credstore *cs = NULL;
	struct shir_error err;
	char *json = NULL, *s = NULL;
	uint64_t ver;

	assert_int_equal(credstore_open(dir, &cs, &err), 0);
	assert_int_equal(credstore_put(cs, "a", "1", &err), 0);
	assert_int_equal(credstore_put(cs, "b", "2", &err), 0);
	assert_int_equal(credstore_export(cs, &json, &err), 0);
	assert_int_equal(credstore_delete(cs, "a", &err), 0);
	assert_int_equal(credstore_put(cs, "c", "3", &err), 0);
	assert_int_equal(credstore_import(cs, json, &err), 0);
	credstore_secret_free(json);
	assert_int_equal(credstore_get(cs, "a", &s, &err), 0);
	assert_string_equal(s, "1");
	credstore_secret_free(s);
	assert_int_equal(credstore_get(cs, "c", &s, &err), SHIR_ENOENT);
	assert_int_equal(credstore_version(cs, &ver, &err), 0);
	assert_int_equal(ver, 5);	/* grows, never goes back to the backup's 2 */
	assert_int_not_equal(credstore_import(cs, "{\"credentials\":3}", &err), 0);
	credstore_free(cs);
}

static void
test_registration_files(void **state)
{
	struct credstore *cs = NULL;
	struct registration r = { "node-1", "sales-ir", "wss://relay.example:9443", "sales-ir",
	    "node-key1", "S3cretKey=", NULL, 1700000000 }, *l = NULL;
	struct shir_error err;
	char path[300], *raw = NULL, host[64];
	int port, tls;

	assert_int_equal(credstore_open(dir, &cs, &err), 0);
	assert_int_equal(registration_load(dir, cs, &l, &err), SHIR_ENOENT);
	assert_non_null(strstr(err.msg, "register-node"));
	assert_int_equal(registration_save(dir, cs, &r, &err), 0);
	assert_int_equal(registration_load(dir, cs, &l, &err), 0);
	assert_string_equal(l->key, "S3cretKey=");
	{
		struct registration *d = registration_dup(l);

		assert_true(registration_equal(l, d));
		assert_true(registration_equal(NULL, NULL));
		assert_false(registration_equal(l, NULL));
		d->key[0] = 'X';
		assert_false(registration_equal(l, d));
		registration_free(d);
	}
	assert_string_equal(l->endpoint, "wss://relay.example:9443");
	assert_string_equal(l->node_name, "node-1");
	assert_null(l->tls_pin);
	registration_free(l);
	snprintf(path, sizeof path, "%s/node.json", dir);
	assert_int_equal(atomicfile_read(path, 1 << 16, &raw, NULL, &err), 0);
	assert_null(strstr(raw, "S3cretKey"));
	free(raw);
	assert_int_equal(registration_endpoint_hostport("wss://relay.example:9443", host,
	    sizeof host, &port, &tls), 0);
	assert_string_equal(host, "relay.example");
	assert_int_equal(port, 9443);
	assert_int_equal(tls, 1);
	assert_int_equal(registration_endpoint_hostport("ws://[::1]/x", host, sizeof host, &port,
	    &tls), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 80);
	assert_int_equal(registration_endpoint_hostport("ftp://x", host, sizeof host, &port, &tls),
	    SHIR_EINVAL);
	assert_int_equal(registration_endpoint_hostport("wss://x:99999", host, sizeof host, &port,
	    &tls), SHIR_EINVAL);
	/* the key gone from the store: a clear error */
	assert_int_equal(credstore_delete(cs, REGISTRATION_KEY_CREDENTIAL, &err), 0);
	assert_int_equal(registration_load(dir, cs, &l, &err), SHIR_ECONFIG);
	assert_non_null(strstr(err.msg, "register again"));
	credstore_free(cs);
}

static void
test_servicehosts(void **state)
{
	struct servicehost *v = NULL;
	struct shir_error err;
	size_t n;
	char h[64];
	int i;

	assert_int_equal(servicehosts_list(dir, &v, &n, &err), 0);
	assert_int_equal(n, 0);
	free(v);
	assert_int_equal(servicehosts_note(dir, "g1.relay.example", 443, "rendezvous", &err), 0);
	assert_int_equal(servicehosts_note(dir, "g1.relay.example", 443, "rendezvous", &err), 0);
	assert_int_equal(servicehosts_list(dir, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].host, "g1.relay.example");
	assert_int_equal(v[0].port, 443);
	free(v);
	for (i = 0; i < SERVICEHOSTS_MAX + 5; i++) {
		snprintf(h, sizeof h, "h%d.example", i);
		assert_int_equal(servicehosts_note(dir, h, 443, "rendezvous", &err), 0);
	}
	assert_int_equal(servicehosts_list(dir, &v, &n, &err), 0);
	assert_int_equal(n, SERVICEHOSTS_MAX);
	free(v);
	assert_int_equal(servicehosts_note(dir, "", 443, "x", &err), SHIR_EINVAL);
	assert_int_equal(servicehosts_note(dir, "a", 0, "x", &err), SHIR_EINVAL);
}

/* Run as root (shirctl writing state while shird is stopped), new files take
 * the state directory's owner, so shird's user can use them. */
static void
test_files_take_directory_owner(void **state)
{
	static const char *const files[] = { "machine.key", "credentials", "credentials.lock" };
	struct credstore *cs = NULL;
	struct shir_error err;
	char path[300];
	struct stat st;
	size_t i;

	if (geteuid() != 0) {
		print_message("# not root: ownership is the caller's (nothing to adopt)\n");
		return;
	}
	assert_int_equal(chown(dir, 65534, 65534), 0);
	assert_int_equal(credstore_open(dir, &cs, &err), 0);
	assert_int_equal(credstore_put(cs, "db", "v", &err), 0);
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		assert_int_equal(stat(path, &st), 0);
		if (st.st_uid != 65534 || st.st_gid != 65534)
			fail_msg("%s is owned by %u:%u, not the directory's 65534:65534", files[i],
			    (unsigned)st.st_uid, (unsigned)st.st_gid);
	}
	credstore_free(cs);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_machine_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_get_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_and_foreign, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_import, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registration_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_servicehosts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_files_take_directory_owner, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
