/* Unit tests for node/copy/s3_sink.c: the SigV4 signature against examples
 * AWS publishes (the signature test suite's get-vanilla and
 * get-vanilla-query-order-key-case, and the S3 documentation's GetObject,
 * ListObjects and PutObject examples), S3's URI encoding, the XML answers'
 * text (entities decoded, a missing or an oversized value refused), and the
 * checks s3_sink_new makes before any request. Requests are tested against
 * an S3-compatible server in tests/integration/test_copy_s3.py. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/copy/s3_sink.h"

#define EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static void
sign(const char *method, const char *uri, const char *query, const char *headers, const char *signed_h,
    const char *payload, const char *akid, const char *secret, const char *service, const char *date,
    const char *want_sig)
{
	struct s3_sigv4_in in;
	char auth[600], want[600];

	memset(&in, 0, sizeof in);
	in.method = method;
	in.uri = uri;
	in.query = query;
	in.headers = headers;
	in.signed_headers = signed_h;
	in.payload_sha256 = payload;
	in.access_key_id = akid;
	in.secret = secret;
	in.region = "us-east-1";
	in.service = service;
	in.amz_date = date;
	assert_int_equal(s3_sigv4(&in, auth, sizeof auth), 0);
	snprintf(want, sizeof want, "AWS4-HMAC-SHA256 Credential=%s/%.8s/us-east-1/%s/aws4_request, "
	    "SignedHeaders=%s, Signature=%s", akid, date, service, signed_h, want_sig);
	assert_string_equal(auth, want);
}

static void
t_sigv4_suite(void **state)
{
	(void)state;
	/* get-vanilla */
	sign("GET", "/", "", "host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n", "host;x-amz-date",
	    EMPTY, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "service", "20150830T123600Z",
	    "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
	/* get-vanilla-query-order-key-case: the caller sorts the query */
	sign("GET", "/", "Param1=value1&Param2=value2", "host:example.amazonaws.com\n"
	    "x-amz-date:20150830T123600Z\n", "host;x-amz-date", EMPTY, "AKIDEXAMPLE",
	    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "service", "20150830T123600Z",
	    "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
}

static void
t_sigv4_s3(void **state)
{
	const char *sk = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
	char *k;

	(void)state;
	/* GET Object with a Range */
	sign("GET", "/test.txt", "", "host:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
	    "x-amz-content-sha256:" EMPTY "\nx-amz-date:20130524T000000Z\n",
	    "host;range;x-amz-content-sha256;x-amz-date", EMPTY, "AKIAIOSFODNN7EXAMPLE", sk, "s3",
	    "20130524T000000Z", "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	/* GET Bucket (List Objects) with a query */
	sign("GET", "/", "max-keys=2&prefix=J", "host:examplebucket.s3.amazonaws.com\n"
	    "x-amz-content-sha256:" EMPTY "\nx-amz-date:20130524T000000Z\n",
	    "host;x-amz-content-sha256;x-amz-date", EMPTY, "AKIAIOSFODNN7EXAMPLE", sk, "s3",
	    "20130524T000000Z", "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
	/* PUT Object "test$file.text": the key encoded as S3 wants it */
	k = s3_uri_encode("/test$file.text", true);
	assert_string_equal(k, "/test%24file.text");
	sign("PUT", k, "", "date:Fri, 24 May 2013 00:00:00 GMT\nhost:examplebucket.s3.amazonaws.com\n"
	    "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
	    "x-amz-date:20130524T000000Z\nx-amz-storage-class:REDUCED_REDUNDANCY\n",
	    "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
	    "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072", "AKIAIOSFODNN7EXAMPLE",
	    sk, "s3", "20130524T000000Z", "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
	free(k);
}

static void
t_encode(void **state)
{
	char *a;

	(void)state;
	a = s3_uri_encode("orders/2026 12/ü~a-b_c.d+e=f&g", true);
	assert_string_equal(a, "orders/2026%2012/%C3%BC~a-b_c.d%2Be%3Df%26g");
	free(a);
	a = s3_uri_encode("a/b", false);
	assert_string_equal(a, "a%2Fb");
	free(a);
}

static void
t_xml(void **state)
{
	const char *x = "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The "
	    "bucket &lt;x&gt; &amp; more</Message></Error>";
	const char *c = "<CompleteMultipartUploadResult><ETag>&quot;3858f62230ac3c915f300c664312c11f-9"
	    "&quot;</ETag></CompleteMultipartUploadResult>";
	char out[64], tiny[5];

	(void)state;
	assert_int_equal(s3_xml_text(x, strlen(x), "Code", out, sizeof out), 0);
	assert_string_equal(out, "NoSuchBucket");
	assert_int_equal(s3_xml_text(x, strlen(x), "Message", out, sizeof out), 0);
	assert_string_equal(out, "The bucket <x> & more");
	assert_int_equal(s3_xml_text(c, strlen(c), "ETag", out, sizeof out), 0);
	assert_string_equal(out, "\"3858f62230ac3c915f300c664312c11f-9\"");
	assert_int_equal(s3_xml_text(x, strlen(x), "UploadId", out, sizeof out), -1);
	assert_int_equal(s3_xml_text(x, strlen(x), "Code", tiny, sizeof tiny), -1);
	/* an open tag with no close, and a length that cuts the text */
	assert_int_equal(s3_xml_text("<Code>abc", 9, "Code", out, sizeof out), -1);
	assert_int_equal(s3_xml_text(x, 40, "Code", out, sizeof out), -1);
}

static void
t_new_refuses(void **state)
{
	struct s3_target t;
	struct blob_error e;
	struct s3_sink *s;

	(void)state;
	memset(&t, 0, sizeof t);
	t.region = "us-east-1";
	t.bucket = "landing";
	t.key = "orders/a.csv";
	t.access_key_id = "AKIAIOSFODNN7EXAMPLE";
	t.secret = "secret";
	/* plain http to a host that is not loopback */
	t.endpoint = "http://s3.example.com";
	assert_null(s3_sink_new(&t, &e));
	assert_string_equal(e.code, "InvalidRequest");
	assert_false(e.retryable);
	assert_non_null(strstr(e.msg, "https://"));
	/* a path after the host, and no URL at all */
	t.endpoint = "https://s3.example.com/landing";
	assert_null(s3_sink_new(&t, &e));
	assert_non_null(strstr(e.msg, "no path"));
	t.endpoint = "s3.example.com";
	assert_null(s3_sink_new(&t, &e));
	/* a bucket name that cannot be a host name's label */
	t.endpoint = "https://s3.example.com";
	t.bucket = "Landing_Zone";
	assert_null(s3_sink_new(&t, &e));
	assert_non_null(strstr(e.msg, "bucket"));
	/* an access key id that would break the Authorization header, a session token of two lines */
	t.bucket = "landing";
	t.access_key_id = "AKIA\r\nX-Injected: 1";
	assert_null(s3_sink_new(&t, &e));
	assert_non_null(strstr(e.msg, "accessKeyId"));
	t.access_key_id = "AKIAIOSFODNN7EXAMPLE";
	t.session_token = "a\nb";
	assert_null(s3_sink_new(&t, &e));
	assert_non_null(strstr(e.msg, "sessionToken"));
	t.session_token = NULL;
	/* no secret */
	t.bucket = "landing";
	t.secret = NULL;
	assert_null(s3_sink_new(&t, &e));
	assert_non_null(strstr(e.msg, "secretAccessKey"));
	/* accepted: virtual-hosted by default, path style forced for an address */
	t.secret = "secret";
	assert_non_null(s = s3_sink_new(&t, &e));
	assert_string_equal(s3_sink_url(s), "https://landing.s3.example.com/orders/a.csv");
	s3_sink_free(s);
	t.path_style = true;
	t.key = "a b/ü.csv";
	assert_non_null(s = s3_sink_new(&t, &e));
	assert_string_equal(s3_sink_url(s), "https://s3.example.com/landing/a%20b/%C3%BC.csv");
	s3_sink_free(s);
	t.path_style = false;
	t.endpoint = "http://127.0.0.1:9000";
	assert_non_null(s = s3_sink_new(&t, &e));
	assert_string_equal(s3_sink_url(s), "http://127.0.0.1:9000/landing/a%20b/%C3%BC.csv");
	s3_sink_free(s);
	t.endpoint = "http://[::1]:9000";
	assert_non_null(s = s3_sink_new(&t, &e));
	assert_string_equal(s3_sink_url(s), "http://[::1]:9000/landing/a%20b/%C3%BC.csv");
	s3_sink_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_sigv4_suite),
		cmocka_unit_test(t_sigv4_s3),
		cmocka_unit_test(t_encode),
		cmocka_unit_test(t_xml),
		cmocka_unit_test(t_new_refuses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
