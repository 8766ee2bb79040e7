/* authoring_load: the load generator of the authoring benchmarks
 * (bench/authoring_bench.py). It runs the same preview either directly
 * against the store (a connection per operation, as shird makes one) or as
 * requests to shird's control socket, and prints one JSON line of figures.
 *
 *   authoring_load direct-sqlite DB SQL THREADS SECONDS
 *   authoring_load direct-pg CONNINFO SQL THREADS SECONDS
 *   authoring_load shird SOCKET OP REQUEST_FILE THREADS SECONDS
 *   authoring_load burst SOCKET OP REQUEST_FILE COUNT
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#define MAX_SAMPLES 2000000

struct worker {
	pthread_t t;
	const char *mode, *target, *arg;
	double until;
	double *lat;
	size_t n, cap;
	unsigned long errors;
	unsigned long status[600];
};

static const char *g_body;
static size_t g_body_len;

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
op_shird(const char *sock, const char *op)
{
	static __thread char *req;
	static __thread size_t rlen;
	char buf[65536];
	size_t off = 0, got = 0;
	ssize_t n;
	int fd, status = -1;

	if (req == NULL)
		req = request_text(op, &rlen);
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

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	while (now() < w->until) {
		double t0 = now();
		int st;

		if (strcmp(w->mode, "direct-sqlite") == 0)
			st = op_sqlite(w->target, w->arg) == 0 ? 200 : -1;
		else if (strcmp(w->mode, "direct-pg") == 0)
			st = op_pg(w->target, w->arg) == 0 ? 200 : -1;
		else
			st = op_shird(w->target, w->arg);
		if (st != 200)
			w->errors++;
		if (st > 0 && st < 600)
			w->status[st]++;
		if (w->n < w->cap)
			w->lat[w->n++] = (now() - t0) * 1000.0;
	}
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
	return 0;
}

int
main(int argc, char **argv)
{
	struct worker *w;
	double *all, secs, t0;
	size_t total = 0, i;
	unsigned long errors = 0, status[600] = { 0 };
	int threads, k, s;

	if (argc == 6 && strcmp(argv[1], "burst") == 0) {
		g_body = slurp(argv[4], &g_body_len);
		return burst(argv[2], argv[3], atoi(argv[5]));
	}
	if (argc == 6 && strncmp(argv[1], "direct-", 7) == 0) {
		threads = atoi(argv[4]);
		secs = atof(argv[5]);
	} else if (argc == 7 && strcmp(argv[1], "shird") == 0) {
		g_body = slurp(argv[4], &g_body_len);
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
	print_status(status);
	printf("}\n");
	return 0;
}
