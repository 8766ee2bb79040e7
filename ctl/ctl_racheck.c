/* shirctl remote-access check HOST:PORT: connects to a node's remote-access
 * port the way a member node does (TLS 1.3, this node's certificate: the
 * admin's from shird.conf or one issued by the runtime CA from this node's
 * data key) and says whether the peer accepted it (its hello arrived) or
 * refused it, and whether the peer's certificate is this runtime's. */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "ctl/shirctl.h"
#include "node/cluster/peerframe.h"
#include "node/cluster/peerlink.h"
#include "node/cluster/rtkey.h"

#define RACHECK_TIMEOUT_S 5

static int
racheck_connect(const char *addr)
{
	char host[PEERLINK_ADDR_MAX + 1], port[8];
	const char *colon = strrchr(addr, ':');
	struct addrinfo hints, *res = NULL, *ai;
	struct timeval tv = { RACHECK_TIMEOUT_S, 0 };
	int fd = -1, rc;
	size_t hl;

	if (colon == NULL || colon == addr || strlen(colon + 1) >= sizeof port ||
	    (hl = (size_t)(colon - addr)) >= sizeof host) {
		fprintf(stderr, "shirctl: %s is not HOST:PORT\n", addr);
		return -1;
	}
	if (addr[0] == '[' && hl >= 2 && addr[hl - 1] == ']') {
		memcpy(host, addr + 1, hl - 2);
		host[hl - 2] = 0;
	} else {
		memcpy(host, addr, hl);
		host[hl] = 0;
	}
	snprintf(port, sizeof port, "%s", colon + 1);
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		fprintf(stderr, "shirctl: cannot resolve %s: %s\n", host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol)) < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		rc = errno;
		close(fd);
		fd = -1;
		errno = rc;
	}
	freeaddrinfo(res);
	if (fd < 0)
		fprintf(stderr, "shirctl: cannot connect to %s: %s (the port is closed or "
		    "filtered: the nodes sync through the relay)\n", addr, strerror(errno));
	return fd;
}

/* Waits for the peer's hello: 0 accepted, -1 refused (why filled). */
static int
racheck_hello(SSL *ssl, char *node, size_t nlen, char *why, size_t wlen)
{
	uint8_t buf[PEERFRAME_HDR + PEERFRAME_HELLO_MAX];
	size_t have = 0;
	struct peerframe f;
	long n;
	int r;

	for (;;) {
		if ((n = peerframe_parse(buf, have, &f, why, wlen)) < 0)
			return -1;
		if (n > 0) {
			if (f.type != PEERFRAME_HELLO) {
				snprintf(why, wlen, "the peer sent no hello");
				return -1;
			}
			snprintf(node, nlen, "%.*s", (int)f.len, (const char *)f.payload);
			return 0;
		}
		if (have == sizeof buf)
			return -1;
		r = SSL_read(ssl, buf + have, (int)(sizeof buf - have));
		if (r <= 0) {
			unsigned long e = ERR_peek_last_error();
			char es[200];

			ERR_error_string_n(e, es, sizeof es);
			snprintf(why, wlen, "%s", e ? es : "the peer closed the connection or did not "
			    "answer within 5 s");
			return -1;
		}
		have += (size_t)r;
	}
}

int
ctl_remote_access_check(const struct conf *c, const char *addr)
{
	struct shir_error err;
	uint8_t key[RTKEY_LEN];
	char fp[PEERLINK_FP_LEN + 1], cn[128] = "", node[PEERFRAME_HELLO_MAX + 1], why[256];
	SSL_CTX *ctx;
	SSL *ssl = NULL;
	X509 *x;
	long vr;
	int fd, rc = 1;

	if (rtkey_load(c->state_dir, key, &err) != 0) {
		fprintf(stderr, "shirctl: %s\n", err.msg);
		return 1;
	}
	ctx = peerlink_ctx_new(c, key, "shirctl-check", fp, &err);
	OPENSSL_cleanse(key, sizeof key);
	if (ctx == NULL) {
		fprintf(stderr, "shirctl: %s\n", err.msg);
		return 1;
	}
	if ((fd = racheck_connect(addr)) < 0)
		goto out;
	/* the peer's certificate is judged below, not refused at once */
	if ((ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, fd) != 1)
		goto out;
	SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	if (SSL_connect(ssl) != 1) {
		ERR_error_string_n(ERR_peek_last_error(), why, sizeof why);
		fprintf(stderr, "shirctl: no TLS 1.3 handshake with %s: %s\n", addr, why);
		goto out;
	}
	x = SSL_get0_peer_certificate(ssl);
	peerlink_cert_cn(x, cn, sizeof cn);
	vr = SSL_get_verify_result(ssl);
	printf("peer certificate: CN %s, %s\n", cn[0] ? cn : "none", vr == X509_V_OK ?
	    "issued by this runtime's CA" : X509_verify_cert_error_string(vr));
	if (racheck_hello(ssl, node, sizeof node, why, sizeof why) != 0) {
		printf("refused: %s did not accept this node's certificate (%s); see its log "
		    "(event=peer.refused)\n", addr, why);
		goto out;
	}
	printf("accepted: %s is node %s and took this node's certificate (fingerprint %s)\n",
	    addr, node, fp);
	rc = vr == X509_V_OK ? 0 : 1;
	if (rc != 0)
		printf("note: the peer's certificate is not from this runtime's CA (an admin's "
		    "certificate is checked by the nodes against the fingerprints members announce)\n");
out:
	SSL_free(ssl);
	if (fd >= 0)
		close(fd);
	SSL_CTX_free(ctx);
	return rc;
}
