/* Unit tests for node sync: the sealed messages (csync) and the merge of
 * records into a credential store (credstore_merge, tombstones, versions). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/admin/credstore.h"
#include "node/cluster/csync.h"

static char dir[256];
static const uint8_t KEY[CSYNC_KEY_LEN] = { 1, 2, 3 };
static const uint8_t OTHER[CSYNC_KEY_LEN] = { 9 };

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/shir-csync-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd);
}

static void
test_digest_roundtrip(void **state)
{
	struct shir_error err;
	struct csync_msg m;
	char *text = NULL;

	(void)state;
	struct csync_digest_info d = { "node-a", "0123456789abcdef0123456789abcdef", "alpha",
	    "1.2.3", 7, 42 };

	assert_int_equal(csync_encode_digest(KEY, &d, &text, &err), 0);
	/* the relay sees no name, no node id, no digest */
	assert_null(strstr(text, "node-a"));
	assert_null(strstr(text, "0123456789abcdef"));
	assert_int_equal(csync_decode(KEY, text, strlen(text), &m, &err), 0);
	assert_int_equal(m.kind, CSYNC_DIGEST);
	assert_string_equal(m.node, "node-a");
	assert_int_equal(m.count, 7);
	assert_string_equal(m.name, "alpha");
	assert_string_equal(m.version, "1.2.3");
	assert_int_equal(m.store_version, 42);
	assert_string_equal(m.state, "");
	csync_msg_clear(&m);
	/* another runtime's key: refused as such */
	assert_int_equal(csync_decode(OTHER, text, strlen(text), &m, &err), SHIR_ECRYPTO);
	/* one changed character of the box */
	text[40] = text[40] == 'A' ? 'B' : 'A';
	assert_int_not_equal(csync_decode(KEY, text, strlen(text), &m, &err), 0);
	free(text);
	assert_int_equal(csync_decode(KEY, "{\"shirSync\":{}}", 15, &m, &err), SHIR_EPROTO);
	assert_int_equal(csync_decode(KEY, "garbage", 7, &m, &err), SHIR_EPROTO);
}

/* The node's Active/Inactive state: sealed in the digest for the peers, and
 * the one unsealed envelope field for the relay's roster. */
static void
test_digest_state(void **state)
{
	struct shir_error err;
	struct csync_msg m;
	char *text = NULL, *marked;
	struct csync_digest_info d = { "node-a", "0123456789abcdef0123456789abcdef", "alpha",
	    "1.2.3", 7, 42, "Inactive" };

	(void)state;
	assert_int_equal(csync_encode_digest(KEY, &d, &text, &err), 0);
	assert_null(strstr(text, "Inactive"));
	marked = csync_mark_inactive(text);
	assert_non_null(marked);
	assert_non_null(strstr(marked, "{\"shirSync\":{\"v\":1,\"state\":\"Inactive\",\"box\":"));
	/* the marked envelope opens the same */
	assert_int_equal(csync_decode(KEY, marked, strlen(marked), &m, &err), 0);
	assert_string_equal(m.state, "Inactive");
	csync_msg_clear(&m);
	free(marked);
	free(text);
	assert_null(csync_mark_inactive("{\"other\":1}"));
	d.state = "Sleepy";
	assert_int_equal(csync_encode_digest(KEY, &d, &text, &err), 0);
	assert_int_equal(csync_decode(KEY, text, strlen(text), &m, &err), SHIR_EPROTO);
	free(text);
}

/* The remote-access address and certificate fingerprint a digest carries
 * (peerlink.h): round trip, and malformed ones refused. */
static void
test_digest_address(void **state)
{
	static const char fp[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	struct shir_error err;
	struct csync_msg m;
	char *text = NULL;
	struct csync_digest_info d = { "node-a", "0123456789abcdef0123456789abcdef", "alpha",
	    "1.2.3", 7, 42, "Active", "127.0.0.1:8060", fp };

	(void)state;
	assert_int_equal(csync_encode_digest(KEY, &d, &text, &err), 0);
	assert_null(strstr(text, "8060"));	/* sealed */
	assert_int_equal(csync_decode(KEY, text, strlen(text), &m, &err), 0);
	assert_string_equal(m.addr, "127.0.0.1:8060");
	assert_string_equal(m.fp, fp);
	csync_msg_clear(&m);
	free(text);
	d.addr = "host name:1";
	assert_int_equal(csync_encode_digest(KEY, &d, &text, &err), 0);
	assert_int_equal(csync_decode(KEY, text, strlen(text), &m, &err), SHIR_EPROTO);
	free(text);
	d.addr = "h:1";
	d.fp = "ABCDEF";
	assert_int_equal(csync_encode_digest(KEY, &d, &text, &err), 0);
	assert_int_equal(csync_decode(KEY, text, strlen(text), &m, &err), SHIR_EPROTO);
	free(text);
	/* without them (remote access off): empty */
	d.addr = d.fp = NULL;
	assert_int_equal(csync_encode_digest(KEY, &d, &text, &err), 0);
	assert_int_equal(csync_decode(KEY, text, strlen(text), &m, &err), 0);
	assert_string_equal(m.addr, "");
	assert_string_equal(m.fp, "");
	csync_msg_clear(&m);
	free(text);
}

static void
test_records_roundtrip_and_split(void **state)
{
	struct credstore_rec v[4];
	struct shir_error err;
	struct csync_msg m;
	size_t next = 0, got = 0;
	char *big = malloc(CREDSTORE_VALUE_MAX + 1), *text;
	int msgs = 0;

	(void)state;
	memset(v, 0, sizeof v);
	memset(big, 'x', CREDSTORE_VALUE_MAX);
	big[CREDSTORE_VALUE_MAX] = 0;
	snprintf(v[0].name, sizeof v[0].name, "a");
	v[0].value = "s3cret\twith \"quotes\" and \xc3\xa9";
	v[0].hlc.ms = 1000;
	snprintf(v[0].hlc.origin, sizeof v[0].hlc.origin, "n1");
	snprintf(v[1].name, sizeof v[1].name, "b");
	v[1].value = big;
	v[1].hlc.ms = 2000;
	v[1].hlc.c = 3;
	snprintf(v[2].name, sizeof v[2].name, "b2");
	v[2].value = big;
	v[2].hlc.ms = 2500;
	snprintf(v[3].name, sizeof v[3].name, "c");	/* a tombstone */
	v[3].hlc.ms = 3000;
	while (next < 4) {
		assert_int_equal(csync_encode_records(KEY, "n1", v, 4, &next, &text, &err), 0);
		assert_true(strlen(text) <= CSYNC_MSG_MAX);
		assert_null(strstr(text, "s3cret"));
		assert_int_equal(csync_decode(KEY, text, strlen(text), &m, &err), 0);
		assert_int_equal(m.kind, CSYNC_RECORDS);
		for (size_t i = 0; i < m.nrecs; i++, got++) {
			assert_string_equal(m.recs[i].name, v[got].name);
			assert_int_equal(m.recs[i].hlc.ms, v[got].hlc.ms);
			assert_int_equal(m.recs[i].hlc.c, v[got].hlc.c);
			if (v[got].value)
				assert_string_equal(m.recs[i].value, v[got].value);
			else
				assert_null(m.recs[i].value);
		}
		csync_msg_clear(&m);
		free(text);
		msgs++;
	}
	assert_int_equal(got, 4);
	assert_int_equal(msgs, 2);	/* two 64 KiB values do not share a message */
	free(big);
}

static struct credstore_rec
rec(const char *name, const char *value, uint64_t ms, uint32_t c, const char *origin)
{
	struct credstore_rec r;

	memset(&r, 0, sizeof r);
	snprintf(r.name, sizeof r.name, "%s", name);
	r.value = (char *)value;
	r.hlc.ms = ms;
	r.hlc.c = c;
	snprintf(r.hlc.origin, sizeof r.hlc.origin, "%s", origin);
	return r;
}

static void
test_merge_newest_wins(void **state)
{
	struct credstore *cs = NULL;
	struct credstore_rec r, *v = NULL;
	struct shir_error err;
	size_t applied, n;
	char *s = NULL, id[CREDSTORE_ORIGIN_MAX + 1];
	uint64_t ver0, ver1;

	(void)state;
	assert_int_equal(credstore_open(dir, &cs, &err), 0);
	assert_int_equal(credstore_put(cs, "db", "local", &err), 0);
	assert_int_equal(credstore_node_id(cs, id, &err), 0);
	assert_true(strlen(id) > 0);
	assert_int_equal(credstore_records(cs, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].hlc.origin, id);
	r = v[0];
	credstore_records_free(v, n);

	/* older: ignored */
	struct credstore_rec old = rec("db", "older", r.hlc.ms - 1, 0, "zz");
	assert_int_equal(credstore_merge(cs, &old, 1, "peer", &applied, &err), 0);
	assert_int_equal(applied, 0);
	assert_int_equal(credstore_get(cs, "db", &s, &err), 0);
	assert_string_equal(s, "local");
	credstore_secret_free(s);

	/* same time, same counter: the origin decides, both ways the same */
	struct credstore_rec tie = rec("db", "tie", r.hlc.ms, r.hlc.c, "~~~~");
	assert_int_equal(credstore_merge(cs, &tie, 1, "peer", &applied, &err), 0);
	assert_int_equal(applied, 1);

	/* newer: wins; the store version grows once */
	assert_int_equal(credstore_version(cs, &ver0, &err), 0);
	struct credstore_rec two[2] = { rec("db", "newer", r.hlc.ms + 10, 0, "p"),
	    rec("api", "k", 5, 0, "p") };
	assert_int_equal(credstore_merge(cs, two, 2, "peer", &applied, &err), 0);
	assert_int_equal(applied, 2);
	assert_int_equal(credstore_version(cs, &ver1, &err), 0);
	assert_int_equal(ver1, ver0 + 1);
	assert_int_equal(credstore_get(cs, "db", &s, &err), 0);
	assert_string_equal(s, "newer");
	credstore_secret_free(s);

	/* a local write after seeing a version from the future still wins: the
	 * clock never goes back */
	struct credstore_rec fut = rec("far", "x", r.hlc.ms + 3600 * 1000, 0, "p");
	assert_int_equal(credstore_merge(cs, &fut, 1, "peer", &applied, &err), 0);
	assert_int_equal(credstore_put(cs, "far", "mine", &err), 0);
	assert_int_equal(credstore_records(cs, &v, &n, &err), 0);
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, "far") == 0) {
			assert_int_equal(v[i].hlc.ms, r.hlc.ms + 3600 * 1000);
			assert_int_equal(v[i].hlc.c, 1);
		}
	credstore_records_free(v, n);

	/* reserved names never come from a peer */
	struct credstore_rec res = rec("_node-key", "x", ~0ULL >> 12, 0, "p");
	assert_int_equal(credstore_merge(cs, &res, 1, "peer", &applied, &err), SHIR_EPERM);
	credstore_free(cs);
}

static void
test_tombstones(void **state)
{
	struct credstore *cs = NULL;
	struct credstore_rec *v = NULL, r;
	struct credstore_info *info = NULL;
	struct shir_error err;
	size_t applied, n;
	char *s = NULL;

	(void)state;
	assert_int_equal(credstore_open(dir, &cs, &err), 0);
	assert_int_equal(credstore_put(cs, "db", "v1", &err), 0);
	assert_int_equal(credstore_delete(cs, "db", &err), 0);
	/* the delete is kept as a tombstone: not listed, not readable, shared */
	assert_int_equal(credstore_get(cs, "db", &s, &err), SHIR_ENOENT);
	assert_int_equal(credstore_list(cs, 0, &info, &n, &err), 0);
	assert_int_equal(n, 0);
	free(info);
	assert_int_equal(credstore_records(cs, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_null(v[0].value);
	r = v[0];
	credstore_records_free(v, n);
	/* an older value from a node that missed the delete does not come back */
	struct credstore_rec old = rec("db", "v1", r.hlc.ms - 5, 0, "p");
	assert_int_equal(credstore_merge(cs, &old, 1, "peer", &applied, &err), 0);
	assert_int_equal(applied, 0);
	assert_int_equal(credstore_get(cs, "db", &s, &err), SHIR_ENOENT);
	/* a newer set does */
	struct credstore_rec nw = rec("db", "v2", r.hlc.ms + 5, 0, "p");
	assert_int_equal(credstore_merge(cs, &nw, 1, "peer", &applied, &err), 0);
	assert_int_equal(applied, 1);
	assert_int_equal(credstore_get(cs, "db", &s, &err), 0);
	assert_string_equal(s, "v2");
	credstore_secret_free(s);
	/* a remote delete of a name never seen is kept too */
	struct credstore_rec del = rec("gone", NULL, 10, 0, "p");
	assert_int_equal(credstore_merge(cs, &del, 1, "peer", &applied, &err), 0);
	assert_int_equal(applied, 1);
	struct credstore_rec late = rec("gone", "back", 9, 0, "p");
	assert_int_equal(credstore_merge(cs, &late, 1, "peer", &applied, &err), 0);
	assert_int_equal(applied, 0);
	/* a local put after a delete replaces the tombstone */
	assert_int_equal(credstore_put(cs, "gone", "here", &err), 0);
	assert_int_equal(credstore_records(cs, &v, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_non_null(v[1].value);
	credstore_records_free(v, n);
	credstore_free(cs);
}

/* A store written before versions and tombstones (only name, value, version,
 * updated) opens, lists, and its entries read as old versions that any
 * synced write wins over. */
static void
test_old_store_opens(void **state)
{
	struct credstore *cs = NULL;
	struct credstore_rec *v = NULL;
	struct shir_error err;
	size_t n, applied;
	char *s = NULL;

	(void)state;
	assert_int_equal(credstore_open(dir, &cs, &err), 0);
	assert_int_equal(credstore_import(cs, "{\"format\":1,\"version\":7,\"credentials\":["
	    "{\"name\":\"db\",\"value\":\"old\",\"version\":3,\"updated\":1700000000}]}", &err),
	    0);
	assert_int_equal(credstore_get(cs, "db", &s, &err), 0);
	assert_string_equal(s, "old");
	credstore_secret_free(s);
	assert_int_equal(credstore_records(cs, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].hlc.ms, 1700000000ULL * 1000);
	assert_string_equal(v[0].hlc.origin, "");
	credstore_records_free(v, n);
	struct credstore_rec nw = rec("db", "new", 1700000000ULL * 1000 + 1, 0, "p");
	assert_int_equal(credstore_merge(cs, &nw, 1, "peer", &applied, &err), 0);
	assert_int_equal(applied, 1);
	credstore_free(cs);
}

static void
test_digest_orders_by_name(void **state)
{
	struct credstore_rec a[2] = { rec("a", "1", 1, 0, "x"), rec("b", NULL, 2, 0, "x") };
	struct credstore_rec b[2] = { rec("a", "other value", 1, 0, "x"), rec("b", NULL, 2, 0, "x") };
	struct credstore_rec c[2] = { rec("a", "1", 1, 1, "x"), rec("b", NULL, 2, 0, "x") };
	char da[CSYNC_DIGEST_LEN + 1], db[CSYNC_DIGEST_LEN + 1], dc[CSYNC_DIGEST_LEN + 1];

	(void)state;
	csync_digest(a, 2, da);
	csync_digest(b, 2, db);
	csync_digest(c, 2, dc);
	assert_int_equal(strlen(da), CSYNC_DIGEST_LEN);
	/* versions, not values, make the digest (values never leave sealed) */
	assert_string_equal(da, db);
	assert_string_not_equal(da, dc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digest_roundtrip),
		cmocka_unit_test(test_digest_state),
		cmocka_unit_test(test_digest_address),
		cmocka_unit_test(test_records_roundtrip_and_split),
		cmocka_unit_test_setup_teardown(test_merge_newest_wins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tombstones, setup, teardown),
		cmocka_unit_test_setup_teardown(test_old_store_opens, setup, teardown),
		cmocka_unit_test(test_digest_orders_by_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
