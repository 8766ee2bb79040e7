/* Unit tests for shir-relay's routing and authorization (relay_route.c):
 * pure functions over the relay's own structures, no sockets. The target
 * taken apart, the entity a path names (longest prefix, case, deleted ones),
 * where a token is taken from, the verified-token cache (same token, entity
 * and right, unexpired; cleared), and the listener choice with the pinning
 * headers. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "relay/http1.h"
#include "relay/sas.h"
#include "relay/server/relay_srv_int.h"

static struct http1_msg
msg(struct http1_header *h, size_t nh)
{
	struct http1_msg m;

	memset(&m, 0, sizeof m);
	m.is_request = true;
	m.method = (char *)"GET";
	m.h = h;
	m.nh = nh;
	return m;
}

static void
test_split_target(void **state)
{
	char path[16];
	const char *q;

	(void)state;
	route_split_target("/a/b?c=d&e", path, sizeof path, &q);
	assert_string_equal(path, "/a/b");
	assert_string_equal(q, "c=d&e");
	route_split_target("/a/b", path, sizeof path, &q);
	assert_string_equal(path, "/a/b");
	assert_null(q);
	route_split_target("/0123456789abcdefghij?x", path, sizeof path, &q);
	assert_string_equal(path, "/0123456789abcd");	/* cut to the buffer */
	assert_string_equal(q, "x");
}

static void
test_entity_lookup(void **state)
{
	struct ent a, b, old;
	struct rsrv s;
	const char *rest = NULL;

	(void)state;
	memset(&s, 0, sizeof s);
	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	memset(&old, 0, sizeof old);
	a.name = (char *)"sales";
	b.name = (char *)"sales/eu";
	old.name = (char *)"old";
	old.deleted = true;
	a.next = &b;
	b.next = &old;
	s.ents = &a;
	assert_ptr_equal(route_entity(&s, "sales/eu/v1/preview", &rest), &b);	/* longest */
	assert_string_equal(rest, "/v1/preview");
	assert_ptr_equal(route_entity(&s, "SALES/us", &rest), &a);		/* any case */
	assert_string_equal(rest, "/us");
	assert_ptr_equal(route_entity(&s, "sales", &rest), &a);
	assert_string_equal(rest, "");
	assert_null(route_entity(&s, "salesx/a", &rest));			/* whole segments */
	assert_null(route_entity(&s, "old/a", &rest));				/* deleted */
	assert_null(route_entity(&s, "", &rest));
}

static void
test_token_sources(void **state)
{
	struct http1_header h[2] = { { (char *)"ServiceBusAuthorization", (char *)"SharedAccessSignature sb" },
		{ (char *)"Authorization", (char *)"SharedAccessSignature au" } };
	struct http1_msg m = msg(h, 2), only_auth = msg(h + 1, 1), none = msg(NULL, 0);
	bool used;
	char *t;

	(void)state;
	t = route_find_token(&m, "a=1&sb-hc-token=SharedAccessSignature%20q", &used);
	assert_string_equal(t, "SharedAccessSignature q");	/* the query first, decoded */
	assert_false(used);
	free(t);
	t = route_find_token(&m, "a=1", &used);
	assert_string_equal(t, "SharedAccessSignature sb");
	assert_false(used);
	free(t);
	t = route_find_token(&only_auth, NULL, &used);
	assert_string_equal(t, "SharedAccessSignature au");
	assert_true(used);
	free(t);
	assert_null(route_find_token(&none, NULL, &used));
}

static void
test_token_cache(void **state)
{
	struct tokcache c;
	struct ent e1, e2;
	struct sas_verified v = { NULL, 1000 }, got;

	(void)state;
	memset(&c, 0, sizeof c);
	memset(&e1, 0, sizeof e1);
	memset(&e2, 0, sizeof e2);
	assert_false(tokcache_find(&c, "tok", &e1, SAS_SEND, 500, 0, &got));
	tokcache_add(&c, "tok", &e1, SAS_SEND, &v);
	assert_true(tokcache_find(&c, "tok", &e1, SAS_SEND, 500, 0, &got));
	assert_true(got.expiry == 1000);
	assert_false(tokcache_find(&c, "tok", &e2, SAS_SEND, 500, 0, &got));	/* other entity */
	assert_false(tokcache_find(&c, "tok", &e1, SAS_LISTEN, 500, 0, &got));	/* other right */
	assert_false(tokcache_find(&c, "to", &e1, SAS_SEND, 500, 0, &got));	/* a prefix */
	assert_false(tokcache_find(&c, "tokx", &e1, SAS_SEND, 500, 0, &got));
	assert_false(tokcache_find(&c, "tok", &e1, SAS_SEND, 1000, 0, &got));	/* expired */
	assert_true(tokcache_find(&c, "tok", &e1, SAS_SEND, 1000, 60, &got));	/* within the skew */
	for (int i = 0; i < TOKCACHE_SLOTS; i++) {	/* a full turn pushes it out */
		char t[16];

		snprintf(t, sizeof t, "other%d", i);
		tokcache_add(&c, t, &e1, SAS_SEND, &v);
	}
	assert_false(tokcache_find(&c, "tok", &e1, SAS_SEND, 500, 0, &got));
	assert_true(tokcache_find(&c, "other3", &e1, SAS_SEND, 500, 0, &got));
	tokcache_clear(&c);
	assert_false(tokcache_find(&c, "other3", &e1, SAS_SEND, 500, 0, &got));
}

static void
test_listener_choice(void **state)
{
	struct ctl l1, l2, l3;
	struct ent e;
	struct http1_header allow = { (char *)"Microsoft-Relay-AllowedListeners", (char *)"l2, l3" };
	struct http1_header deny = { (char *)"Microsoft-Relay-DisallowedListeners", (char *)"l1,l2" };
	struct http1_header none_ok = { (char *)"Microsoft-Relay-AllowedListeners", (char *)"nobody" };
	struct http1_msg plain = msg(NULL, 0), am = msg(&allow, 1), dm = msg(&deny, 1),
	    nm = msg(&none_ok, 1);
	bool filtered;
	int i, seen[3] = { 0, 0, 0 };

	(void)state;
	memset(&e, 0, sizeof e);
	memset(&l1, 0, sizeof l1);
	memset(&l2, 0, sizeof l2);
	memset(&l3, 0, sizeof l3);
	strcpy(l1.id, "l1");
	strcpy(l2.id, "l2");
	strcpy(l3.id, "l3");
	l1.next = &l2;
	l2.next = &l3;
	e.ctls = &l1;
	assert_null(route_pick_listener(&(struct ent){ 0 }, &plain, &filtered));
	assert_false(filtered);
	for (i = 0; i < 300; i++) {	/* every live listener gets requests */
		struct ctl *c = route_pick_listener(&e, &plain, &filtered);

		seen[c == &l1 ? 0 : c == &l2 ? 1 : 2]++;
	}
	assert_true(seen[0] > 0 && seen[1] > 0 && seen[2] > 0);
	for (i = 0; i < 50; i++) {
		struct ctl *c = route_pick_listener(&e, &am, &filtered);

		assert_true(c == &l2 || c == &l3);
		assert_ptr_equal(route_pick_listener(&e, &dm, &filtered), &l3);
	}
	l3.closing = true;	/* a closing listener gets nothing */
	assert_null(route_pick_listener(&e, &dm, &filtered));
	assert_true(filtered);	/* listeners exist, none qualifies */
	assert_null(route_pick_listener(&e, &nm, &filtered));
	assert_true(filtered);
	assert_true(route_listener_allowed(&l1, &plain));
	assert_false(route_listener_allowed(&l1, &am));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_target),
		cmocka_unit_test(test_entity_lookup),
		cmocka_unit_test(test_token_sources),
		cmocka_unit_test(test_token_cache),
		cmocka_unit_test(test_listener_choice),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
