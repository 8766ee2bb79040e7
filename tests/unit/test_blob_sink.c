/* Unit tests for node/copy/blob_sink.c: the SharedKey signature (HMAC-SHA256
 * under the base64-decoded account key, checked against values computed
 * independently with Python's hmac), keys that are not base64, and the
 * checks blob_sink_new makes before any request, and the reader of the
 * uncommitted block list a resumed copy uses. Requests themselves are
 * tested against Azurite in tests/integration/test_copy_blob.py. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "node/copy/blob_sink.h"

static void
t_sign(void **state)
{
	char sig[64];
	const char *sts = "PUT\n\n\n5\n\n\n\n\n\n\n\n\nx-ms-date:Thu, 03 Dec 2026 17:00:00 GMT\n"
	    "x-ms-version:2021-08-06\n/devstoreaccount1/devstoreaccount1/landing/a.csv\n"
	    "blockid:AAAA\ncomp:block";

	(void)state;
	assert_int_equal(blob_sharedkey_sign("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6t"
	    "q/K1SZFPTOtr/KBHBeksoGMGw==", sts, sig, sizeof sig), 0);
	assert_string_equal(sig, "iLzEVXHZ1iDYje5k1rj9vizT3BDoBGKQT214Gwm1pz0=");
	/* a key whose length needs no padding */
	assert_int_equal(blob_sharedkey_sign("a2V5", "x", sig, sizeof sig), 0);
	assert_string_equal(sig, "T8O36vNNfllKb1HZUXulQ6v0EGeydYf/2CujWE5NPN0=");
	/* not base64, empty, a short output buffer */
	assert_int_equal(blob_sharedkey_sign("not base64!", "x", sig, sizeof sig), -1);
	assert_int_equal(blob_sharedkey_sign("", "x", sig, sizeof sig), -1);
	assert_int_equal(blob_sharedkey_sign("a2V5", "x", sig, 10), -1);
}

static void
t_new_refuses(void **state)
{
	struct blob_target t;
	struct blob_error e;
	struct blob_sink *b;

	(void)state;
	memset(&t, 0, sizeof t);
	t.container = "landing";
	t.blob = "a b/ü.csv";
	t.sas = "sv=x";
	t.job_id = "0d6c1b1e-5b0a-4f5e-9a51-1f7c52f0b3c2";
	/* plain http to a host that is not loopback */
	t.account_url = "http://acct.blob.core.windows.net";
	memset(&e, 0, sizeof e);
	assert_null(blob_sink_new(&t, &e));
	assert_string_equal(e.code, "InvalidRequest");
	assert_false(e.retryable);
	assert_non_null(strstr(e.msg, "https://"));
	/* user info that looks like loopback does not make the host loopback (the URL is
	 * read by libcurl's parser, not by hand) */
	t.account_url = "http://127.0.0.1@acct.blob.core.windows.net/acct";
	memset(&e, 0, sizeof e);
	assert_null(blob_sink_new(&t, &e));
	assert_non_null(strstr(e.msg, "https://"));
	/* a shared key without the account's name */
	t.account_url = "https://acct.blob.core.windows.net";
	t.sas = NULL;
	t.key = "a2V5";
	assert_null(blob_sink_new(&t, &e));
	assert_non_null(strstr(e.msg, "accountName"));
	/* accepted: the name is escaped in the URL, '/' kept */
	t.account = "acct";
	b = blob_sink_new(&t, &e);
	assert_non_null(b);
	assert_string_equal(blob_sink_url(b), "https://acct.blob.core.windows.net/landing/a%20b/%C3%BC.csv");
	assert_int_equal(blob_sink_blocks(b), 0);
	blob_sink_free(b);
	/* http is fine for a loopback emulator */
	t.account_url = "http://127.0.0.1:10000/devstoreaccount1/";
	b = blob_sink_new(&t, &e);
	assert_non_null(b);
	assert_string_equal(blob_sink_url(b), "http://127.0.0.1:10000/devstoreaccount1/landing/a%20b/%C3%BC.csv");
	blob_sink_free(b);
}

/* The Get Block List answer, however libcurl cuts it: only the uncommitted
 * ids of this sink's format are kept (not a committed one, not a foreign
 * one), and at most max of them. */
static void
t_block_list(void **state)
{
	static const char body[] = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><CommittedBlocks><Block><Name>c2hpci0yLTAwMDAwMC0wMDAwMDY1NTM2LTAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVm</Name>"
	    "<Size>65536</Size></Block></CommittedBlocks><UncommittedBlocks><Block><Name>c2hpci0yLTAwMDAwMS0wMDAwMDY1NTM2LTAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVm</Name>"
	    "<Size>65536</Size></Block><Block><Name>QUJD</Name><Size>3</Size></Block><Block><Name>c2hpci0yLTAwMDAwMi0wMDAwMDY1NTM2LTAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVm"
	    "</Name><Size>65536</Size></Block></UncommittedBlocks></BlockList>";
	struct blob_list_parser p;
	size_t piece, off;

	(void)state;
	for (piece = 1; piece <= sizeof body; piece++) {
		memset(&p, 0, sizeof p);
		p.max = 10;
		for (off = 0; off < sizeof body - 1; off += piece)
			blob_list_feed(&p, body + off, sizeof body - 1 - off < piece ? sizeof body - 1 - off : piece);
		assert_int_equal(blob_list_count(&p), 2);
		assert_memory_equal(p.ids, "shir-2-000001-0000065536-0123456789abcdef0123456789abcdef", 57);
		assert_memory_equal(p.ids + 57, "shir-2-000002-0000065536-0123456789abcdef0123456789abcdef", 57);
		blob_list_free(&p);
	}
	memset(&p, 0, sizeof p);
	p.max = 1;
	blob_list_feed(&p, body, sizeof body - 1);
	assert_int_equal(blob_list_count(&p), 1);
	blob_list_free(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_sign),
		cmocka_unit_test(t_new_refuses),
		cmocka_unit_test(t_block_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
