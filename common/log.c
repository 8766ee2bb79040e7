#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/shir_err.h"

#define LOG_LINE_MAX 4096
#define LOG_RING_LINES 512
#define LOG_Q_BUFS 8
#define LOG_Q_SIZE 1024

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static int log_fd = 2;
_Atomic int log_threshold = LOG_LVL_INFO;	/* see log_wants() */
static char *log_ring[LOG_RING_LINES];
static size_t log_ring_next;

static const char *const log_names[] = { "error", "warn", "info", "debug" };

int
log_open(const char *path)
{
	int fd = 2;

	if (path != NULL && *path != '\0' && strcmp(path, "-") != 0) {
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0)
			return SHIR_EIO;
	}
	pthread_mutex_lock(&log_mu);
	if (log_fd > 2)
		close(log_fd);
	log_fd = fd;
	pthread_mutex_unlock(&log_mu);
	return 0;
}

void
log_close(void)
{
	size_t i;

	pthread_mutex_lock(&log_mu);
	if (log_fd > 2)
		close(log_fd);
	log_fd = 2;
	for (i = 0; i < LOG_RING_LINES; i++) {
		free(log_ring[i]);
		log_ring[i] = NULL;
	}
	pthread_mutex_unlock(&log_mu);
}

void
log_set_level(enum log_level lvl)
{
	atomic_store(&log_threshold, (int)lvl);
}

enum log_level
log_get_level(void)
{
	return (enum log_level)atomic_load(&log_threshold);
}

int
log_level_parse(const char *s, enum log_level *out)
{
	size_t i;

	for (i = 0; i < sizeof log_names / sizeof log_names[0]; i++) {
		if (strcasecmp(s, log_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return SHIR_EINVAL;
}

const char *
log_level_name(enum log_level lvl)
{
	if ((unsigned)lvl >= sizeof log_names / sizeof log_names[0])
		return "?";
	return log_names[lvl];
}

static int
log_needs_quotes(const unsigned char *p, size_t n)
{
	size_t i;

	if (n == 0)
		return 1;
	for (i = 0; i < n; i++)
		if (p[i] <= ' ' || p[i] == '"' || p[i] == '=' || p[i] == '\\' || p[i] >= 0x7f)
			return 1;
	return 0;
}

const char *
log_qn(const void *bytes, size_t len)
{
	static __thread char bufs[LOG_Q_BUFS][LOG_Q_SIZE];
	static __thread unsigned next;
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = bytes;
	char *out = bufs[next++ % LOG_Q_BUFS];
	size_t i, o = 0, cap = LOG_Q_SIZE - 8;	/* room for "...\"" and NUL */
	int quote;

	if (p == NULL) {
		strcpy(out, "-");
		return out;
	}
	quote = log_needs_quotes(p, len);
	if (quote)
		out[o++] = '"';
	for (i = 0; i < len && o < cap; i++) {
		unsigned char c = p[i];

		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			if (o + 4 > cap)
				break;
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	if (i < len) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	if (quote)
		out[o++] = '"';
	out[o] = '\0';
	return out;
}

const char *
log_q(const char *s)
{
	return log_qn(s, s == NULL ? 0 : strlen(s));
}

/* Key names whose values are secrets: a key that ends with one of these. */
static int
log_key_is_secret(const char *key, size_t n)
{
	static const char *const words[] = {
		"password", "passwd", "secret", "token", "sig", "key", "authorization",
		"credential", "signature",
	};
	size_t i;

	for (i = 0; i < sizeof words / sizeof words[0]; i++) {
		size_t w = strlen(words[i]);

		if (n >= w && strncasecmp(key + n - w, words[i], w) == 0)
			return 1;
	}
	return 0;
}

void
log_redact(char *line)
{
	static const char red[] = "[redacted]";
	char *p = line;

	while ((p = strchr(p, '=')) != NULL) {
		char *k = p, *v = p + 1, *end;

		while (k > line && (isalnum((unsigned char)k[-1]) || k[-1] == '_' ||
		    k[-1] == '-' || k[-1] == '.'))
			k--;
		if (k == p || !log_key_is_secret(k, (size_t)(p - k)) ||
		    (strncmp(v, red, sizeof red - 1) == 0)) {
			p++;
			continue;
		}
		/* find the end of the value: a quoted string or up to a space */
		if (*v == '"') {
			end = v + 1;
			while (*end && *end != '"') {
				if (*end == '\\' && end[1])
					end++;
				end++;
			}
			if (*end == '"')
				end++;
		} else {
			end = v;
			while (*end && *end != ' ')
				end++;
		}
		/* the redaction marker is never longer than what it replaces
		 * unless the value is short; shift the rest of the line */
		{
			size_t vlen = (size_t)(end - v), rlen = sizeof red - 1;
			size_t rest = strlen(end);

			if (rlen > vlen && strlen(line) + rlen - vlen >= LOG_LINE_MAX)
				return;
			memmove(v + rlen, end, rest + 1);
			memcpy(v, red, rlen);
			p = v + rlen;
		}
	}
}

void
log_write(enum log_level lvl, const char *sub, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	size_t n;
	int r;

	if (!log_wants(lvl))
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof line, "ts=%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(line + n, sizeof line - n, ".%03dZ level=%s sub=%s ",
	    (int)(tv.tv_usec / 1000), log_level_name(lvl), sub);
	if (r > 0)
		n += (size_t)r;
	va_start(ap, fmt);
	r = vsnprintf(line + n, sizeof line - n - 1024, fmt, ap);
	va_end(ap);
	if (r < 0)
		return;
	log_redact(line);
	n = strlen(line);
	line[n++] = '\n';
	line[n] = '\0';

	pthread_mutex_lock(&log_mu);
	{
		const char *p = line;
		size_t left = n;

		while (left > 0) {
			ssize_t w = write(log_fd, p, left);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			p += w;
			left -= (size_t)w;
		}
	}
	free(log_ring[log_ring_next]);
	log_ring[log_ring_next] = strdup(line);
	log_ring_next = (log_ring_next + 1) % LOG_RING_LINES;
	pthread_mutex_unlock(&log_mu);
}

void
log_recent(void (*fn)(const char *line, void *arg), void *arg)
{
	size_t i;

	pthread_mutex_lock(&log_mu);
	for (i = 0; i < LOG_RING_LINES; i++) {
		const char *l = log_ring[(log_ring_next + i) % LOG_RING_LINES];

		if (l != NULL)
			fn(l, arg);
	}
	pthread_mutex_unlock(&log_mu);
}
