/* authoring_load: the load generator of the authoring benchmarks
 * (bench/authoring_bench.py). It runs the same preview either directly
 * against the store (a connection per operation, as shird makes one) or as
 * requests to shird's control socket, or as an author's requests through
 * shir-relay (HTTP POST /{hc}/v1/OP with a ServiceBusAuthorization SAS token
 * made from a service key, on one keep-alive connection per client), and
 * prints one JSON line of figures.
 *
 *   authoring_load direct-sqlite DB SQL THREADS SECONDS
 *   authoring_load direct-pg CONNINFO SQL THREADS SECONDS
 *   authoring_load shird SOCKET OP REQUEST_FILE THREADS SECONDS
 *   authoring_load relay SERVICE_KEY_FILE OP REQUEST_FILE THREADS SECONDS
 *   authoring_load burst SOCKET OP REQUEST_FILE COUNT
 *
 * The service key (IR@v1@...) is read from a file, never from argv.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <http_parser.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "relay/irkey.h"
#include "relay/sas.h"

#define MAX_SAMPLES 2000000

struct worker {
	pthread_t t;
	const char *mode, *target, *arg;
	double until;
	double *lat;
	size_t n, cap;
	unsigned long errors;
	unsigned long connections;	/* relay mode: connections opened */
	unsigned long status[600];
};

static const char *g_body;
static size_t g_body_len;

/* relay mode: the relay's address and the request (head and body), built
 * once from the service key */
static struct addrinfo *g_relay_ai;
/* shird mode: the request, built once */
static char *g_shird_req;
static size_t g_shird_req_len;
static char *g_relay_req;
static size_t g_relay_req_len;

static char *slurp(const char *path, size_t *len);

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
op_sqlite(const char *db, const char *sql)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	int rc = -1, s, i, n;
	size_t bytes = 0;

	if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		goto out;
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
		goto out;
	n = sqlite3_column_count(st);
	while ((s = sqlite3_step(st)) == SQLITE_ROW)
		for (i = 0; i < n; i++)
			bytes += (size_t)sqlite3_column_bytes(st, i) + (sqlite3_column_text(st, i) != NULL);
	rc = s == SQLITE_DONE && bytes > 0 ? 0 : -1;
out:
	sqlite3_finalize(st);
	sqlite3_close(h);
	return rc;
}

static int
op_pg(const char *conninfo, const char *sql)
{
	PGconn *c = PQconnectdb(conninfo);
	PGresult *r = NULL;
	int rc = -1;

	if (PQstatus(c) != CONNECTION_OK)
		goto out;
	r = PQexec(c, "BEGIN READ ONLY");
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		goto out;
	PQclear(r);
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) == 0)
		goto out;
	rc = 0;
out:
	PQclear(r);
	PQfinish(c);
	return rc;
}

static int
unix_connect(const char *path, int nonblock)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);

	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS &&
	    errno != EAGAIN) {
		close(fd);
		return -1;
	}
	return fd;
}

static char *
request_text(const char *op, size_t *len)
{
	size_t cap = g_body_len + 256;
	char *r = malloc(cap);
	int n = snprintf(r, cap, "POST /v1/%s HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
	    "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", op, g_body_len);

	memcpy(r + n, g_body, g_body_len);
	*len = (size_t)n + g_body_len;
	return r;
}

/* One request on a new connection; returns the HTTP status or -1. */
static int
op_shird(const char *sock)
{
	const char *req = g_shird_req;
	size_t rlen = g_shird_req_len;
	char buf[65536];
	size_t off = 0, got = 0;
	ssize_t n;
	int fd, status = -1;

	fd = unix_connect(sock, 0);
	if (fd < 0)
		return -1;
	while (off < rlen) {
		n = write(fd, req + off, rlen - off);
		if (n <= 0)
			goto out;
		off += (size_t)n;
	}
	while ((n = read(fd, buf + (got < 64 ? got : 0), got < 64 ? sizeof buf - got : sizeof buf)) > 0)
		got += (size_t)n;
	if (got >= 12 && strncmp(buf, "HTTP/1.1 ", 9) == 0)
		status = atoi(buf + 9);
out:
	close(fd);
	return status;
}

struct resp {
	int status;
	bool done, keep_alive;
};

static int
on_resp_complete(http_parser *p)
{
	struct resp *r = p->data;

	r->status = (int)p->status_code;
	r->keep_alive = http_should_keep_alive(p) != 0;
	r->done = true;
	return 0;
}

static int
relay_connect(void)
{
	int fd = socket(g_relay_ai->ai_family, SOCK_STREAM, 0), one = 1;

	if (fd < 0)
		return -1;
	if (connect(fd, g_relay_ai->ai_addr, g_relay_ai->ai_addrlen) != 0) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

/* One request on the client's keep-alive connection to the relay (opened
 * again when the relay closed it); returns the HTTP status or -1. */
static int
op_relay(int *fdp, unsigned long *reconnects)
{
	static const http_parser_settings settings = { .on_message_complete = on_resp_complete };
	http_parser p;
	struct resp r = { 0, false, false };
	char buf[65536];
	size_t off = 0;
	ssize_t n;

	if (*fdp < 0) {
		if ((*fdp = relay_connect()) < 0)
			return -1;
		(*reconnects)++;
	}
	while (off < g_relay_req_len) {
		n = write(*fdp, g_relay_req + off, g_relay_req_len - off);
		if (n <= 0)
			goto failed;
		off += (size_t)n;
	}
	http_parser_init(&p, HTTP_RESPONSE);
	p.data = &r;
	while (!r.done) {
		n = read(*fdp, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto failed;
		if (http_parser_execute(&p, &settings, buf, (size_t)n) != (size_t)n ||
		    HTTP_PARSER_ERRNO(&p) != HPE_OK)
			goto failed;
		if (n == 0)
			break;	/* a body ended by the close was completed by the call above */
	}
	if (!r.done)
		goto failed;
	if (!r.keep_alive) {
		close(*fdp);
		*fdp = -1;
	}
	return r.status;
failed:
	close(*fdp);
	*fdp = -1;
	return -1;
}

/* Reads the service key, resolves the relay's address and builds the
 * request: POST /{hc}/v1/OP, the SAS token for the hybrid connection (hyco
 * audience, an hour of validity), keep-alive. */
static int
relay_setup(const char *keyfile, const char *op)
{
	struct irkey k;
	struct shir_error e;
	struct addrinfo hints;
	char *key, *aud_uri = NULL, *aud = NULL, *tok = NULL, *hc = NULL, host[256], port[16];
	const char *rest, *hp, *colon;
	size_t keylen, l;
	int n, rc = -1;

	memset(&k, 0, sizeof k);
	memset(&e, 0, sizeof e);
	key = slurp(keyfile, &keylen);
	key[strcspn(key, "\r\n")] = '\0';
	if (irkey_decode(key, &k, &e) != 0) {
		fprintf(stderr, "%s: %s\n", keyfile, e.msg);
		goto out;
	}
	if (strncmp(k.endpoint, "ws://", 5) != 0) {
		fprintf(stderr, "the relay benchmark speaks plain HTTP on loopback; the key's endpoint "
		    "is not ws://\n");
		goto out;
	}
	rest = k.endpoint + 5;
	l = strcspn(rest, "/");
	hp = rest;
	colon = memchr(hp, ':', l);
	if (colon == NULL || (size_t)(colon - hp) >= sizeof host || l - (size_t)(colon - hp) > sizeof port) {
		fprintf(stderr, "the key's endpoint has no host:port\n");
		goto out;
	}
	snprintf(host, sizeof host, "%.*s", (int)(colon - hp), hp);
	snprintf(port, sizeof port, "%.*s", (int)(l - (size_t)(colon - hp) - 1), colon + 1);
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, port, &hints, &g_relay_ai) != 0) {
		fprintf(stderr, "cannot resolve %s\n", host);
		goto out;
	}
	hc = sas_url_encode(k.hc);
	l = strlen(k.endpoint) + strlen(k.hc) + 8;
	aud_uri = malloc(l);
	snprintf(aud_uri, l, "ws://%s:%s/%s", host, port, k.hc);
	if (hc == NULL || sas_audience_hyco(aud_uri, &aud) != 0 ||
	    sas_token_build(aud, k.key_name, k.key, (int64_t)time(NULL) + 3600, &tok) != 0) {
		fprintf(stderr, "cannot build the SAS token\n");
		goto out;
	}
	l = strlen(tok) + strlen(hc) + strlen(op) + strlen(host) + g_body_len + 512;
	g_relay_req = malloc(l);
	n = snprintf(g_relay_req, l, "POST /%s/v1/%s HTTP/1.1\r\nHost: %s:%s\r\n"
	    "Content-Type: application/json\r\nServiceBusAuthorization: %s\r\n"
	    "Content-Length: %zu\r\n\r\n", hc, op, host, port, tok, g_body_len);
	memcpy(g_relay_req + n, g_body, g_body_len);
	g_relay_req_len = (size_t)n + g_body_len;
	rc = 0;
out:
	free(aud_uri);
	free(aud);
	free(tok);
	free(hc);
	irkey_clear(&k);
	memset(key, 0, keylen);
	free(key);
	return rc;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	int fd = -1;

	while (now() < w->until) {
		double t0 = now();
		int st;

		if (strcmp(w->mode, "direct-sqlite") == 0)
			st = op_sqlite(w->target, w->arg) == 0 ? 200 : -1;
		else if (strcmp(w->mode, "direct-pg") == 0)
			st = op_pg(w->target, w->arg) == 0 ? 200 : -1;
		else if (strcmp(w->mode, "relay") == 0)
			st = op_relay(&fd, &w->connections);
		else
			st = op_shird(w->target);
		if (st != 200)
			w->errors++;
		if (st > 0 && st < 600)
			w->status[st]++;
		if (w->n < w->cap)
			w->lat[w->n++] = (now() - t0) * 1000.0;
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void
print_status(const unsigned long *status)
{
	int i, first = 1;

	printf("\"status\":{");
	for (i = 0; i < 600; i++)
		if (status[i]) {
			printf("%s\"%d\":%lu", first ? "" : ",", i, status[i]);
			first = 0;
		}
	printf("}");
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *b = malloc(1 << 20);

	if (f == NULL || b == NULL) {
		perror(path);
		exit(2);
	}
	*len = fread(b, 1, (1 << 20) - 1, f);
	b[*len] = '\0';
	fclose(f);
	return b;
}

/* All COUNT requests at once on COUNT connections, driven by poll. */
static int
burst(const char *sock, const char *op, int count)
{
	struct pollfd *p = calloc((size_t)count, sizeof *p);
	size_t *off = calloc((size_t)count, sizeof *off), rlen;
	char (*head)[16] = calloc((size_t)count, 16);
	unsigned long status[600] = { 0 }, errors = 0;
	char *req = request_text(op, &rlen), buf[65536];
	struct rlimit rl;
	int i, left = count;
	double t0 = now();

	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	for (i = 0; i < count; i++) {
		/* a blocking connect waits while shird's listen backlog is full,
		 * as any client would; then the connection is driven by poll */
		p[i].fd = unix_connect(sock, 0);
		if (p[i].fd >= 0)
			fcntl(p[i].fd, F_SETFL, fcntl(p[i].fd, F_GETFL) | O_NONBLOCK);
		p[i].events = POLLOUT;
		if (p[i].fd < 0) {
			errors++;
			left--;
		}
	}
	while (left > 0 && now() - t0 < 120) {
		if (poll(p, (nfds_t)count, 1000) <= 0)
			continue;
		for (i = 0; i < count; i++) {
			ssize_t n;

			if (p[i].fd < 0 || !p[i].revents)
				continue;
			if (p[i].events == POLLOUT) {
				n = write(p[i].fd, req + off[i], rlen - off[i]);
				if (n > 0 && (off[i] += (size_t)n) == rlen) {
					p[i].events = POLLIN;
					off[i] = 0;
				} else if (n < 0 && errno != EAGAIN) {
					goto failed;
				}
				continue;
			}
			n = read(p[i].fd, buf, sizeof buf);
			if (n > 0) {
				if (off[i] < 15) {
					size_t k = (size_t)n < 15 - off[i] ? (size_t)n : 15 - off[i];

					memcpy(head[i] + off[i], buf, k);
					off[i] += k;
				}
				continue;
			}
			if (n < 0 && errno == EAGAIN)
				continue;
			if (off[i] >= 12 && strncmp(head[i], "HTTP/1.1 ", 9) == 0) {
				int st = atoi(head[i] + 9);

				if (st > 0 && st < 600)
					status[st]++;
				close(p[i].fd);
				p[i].fd = -1;
				left--;
				continue;
			}
failed:
			errors++;
			close(p[i].fd);
			p[i].fd = -1;
			left--;
		}
	}
	printf("{\"mode\":\"burst\",\"requests\":%d,\"transport_errors\":%lu,\"unanswered\":%d,"
	    "\"seconds\":%.3f,", count, errors, left, now() - t0);
	print_status(status);
	printf("}\n");
	for (i = 0; i < count; i++)
		if (p[i].fd >= 0)
			close(p[i].fd);
	free(p);
	free(off);
	free(head);
	free(req);
	return 0;
}

int
main(int argc, char **argv)
{
	struct worker *w;
	double *all, secs, t0;
	size_t total = 0, i;
	unsigned long errors = 0, conns = 0, status[600] = { 0 };
	int threads, k, s;

	if (argc == 6 && strcmp(argv[1], "burst") == 0) {
		g_body = slurp(argv[4], &g_body_len);
		k = burst(argv[2], argv[3], atoi(argv[5]));
		free((char *)g_body);
		return k;
	}
	if (argc == 6 && strncmp(argv[1], "direct-", 7) == 0) {
		threads = atoi(argv[4]);
		secs = atof(argv[5]);
	} else if (argc == 7 && strcmp(argv[1], "shird") == 0) {
		g_body = slurp(argv[4], &g_body_len);
		g_shird_req = request_text(argv[3], &g_shird_req_len);
		threads = atoi(argv[5]);
		secs = atof(argv[6]);
	} else if (argc == 7 && strcmp(argv[1], "relay") == 0) {
		g_body = slurp(argv[4], &g_body_len);
		if (relay_setup(argv[2], argv[3]) != 0)
			return 1;
		threads = atoi(argv[5]);
		secs = atof(argv[6]);
	} else {
		fprintf(stderr, "usage: see the comment at the top of bench/authoring_load.c\n");
		return 2;
	}
	w = calloc((size_t)threads, sizeof *w);
	t0 = now();
	for (k = 0; k < threads; k++) {
		w[k].mode = argv[1];
		w[k].target = argv[2];
		w[k].arg = argv[3];
		w[k].until = t0 + secs;
		w[k].cap = MAX_SAMPLES / (size_t)threads;
		w[k].lat = malloc(w[k].cap * sizeof(double));
		pthread_create(&w[k].t, NULL, worker_main, &w[k]);
	}
	for (k = 0; k < threads; k++) {
		pthread_join(w[k].t, NULL);
		total += w[k].n;
		errors += w[k].errors;
		conns += w[k].connections;
		for (s = 0; s < 600; s++)
			status[s] += w[k].status[s];
	}
	secs = now() - t0;
	all = malloc((total ? total : 1) * sizeof(double));
	total = 0;
	for (k = 0; k < threads; k++)
		for (i = 0; i < w[k].n; i++)
			all[total++] = w[k].lat[i];
	qsort(all, total, sizeof(double), cmp_d);
	printf("{\"mode\":\"%s\",\"threads\":%d,\"requests\":%zu,\"errors\":%lu,\"seconds\":%.3f,"
	    "\"rps\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,", argv[1], threads, total, errors, secs,
	    (double)total / secs, total ? all[total / 2] : 0.0,
	    total ? all[(size_t)((double)total * 0.99)] : 0.0);
	if (strcmp(argv[1], "relay") == 0)
		printf("\"connections\":%lu,", conns);
	print_status(status);
	printf("}\n");
	for (k = 0; k < threads; k++)
		free(w[k].lat);
	free(w);
	free(all);
	free(g_relay_req);
	free(g_shird_req);
	if (g_relay_ai != NULL)
		freeaddrinfo(g_relay_ai);
	free((char *)g_body);
	return 0;
}
