#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <curl/curl.h>

#include "node/conf.h"
#include "ctl/ctl_client.h"


static char ctl_conf_error[SHIR_ERROR_MSG_MAX];

const char *
ctl_client_conf_error(void)
{
	return ctl_conf_error[0] ? ctl_conf_error : NULL;
}

const char *
ctl_client_socket(const char *opt, const char *shird_conf)
{
	static char path[512];
	const char *env = getenv("SHIR_SOCKET");
	struct conf *c = NULL, *partial = NULL;
	struct shir_error err;
	int rc;

	if (opt != NULL)
		return opt;
	if (env != NULL && *env)
		return env;
	rc = conf_load_file_partial(shird_conf ? shird_conf : SHIRD_CONF_DEFAULT, &c, &partial, &err);
	if (rc == 0) {
		snprintf(path, sizeof path, "%s", c->control_socket);
		conf_free(c);
		return path;
	}
	if (rc != SHIR_ENOENT)	/* a missing file is no news: defaults, as shird */
		snprintf(ctl_conf_error, sizeof ctl_conf_error, "%s", err.msg);
	if (partial != NULL) {
		/* a typo elsewhere: the running shird still uses the socket the
		 * file names (it kept its last good configuration) */
		snprintf(path, sizeof path, "%s", partial->control_socket);
		conf_free(partial);
		return path;
	}
	c = conf_new_defaults();
	if (c == NULL)
		return "/run/shir/shird.sock";
	snprintf(path, sizeof path, "%s", c->control_socket);
	conf_free(c);
	return path;
}

/* Classifies why the socket cannot be reached, in words. */
static int
ctl_probe(const char *sock, struct shir_error *err)
{
	struct sockaddr_un sun;
	int fd, e;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(sock) >= sizeof sun.sun_path)
		return shir_error_set(err, SHIR_EINVAL, "control socket path %s is too long", sock);
	strcpy(sun.sun_path, sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return shir_error_set(err, SHIR_EIO, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0) {
		close(fd);
		return 0;
	}
	e = errno;
	close(fd);
	switch (e) {
	case ENOENT:
		return shir_error_set(err, SHIR_ENOENT,
		    "shird is not running: there is no control socket at %s "
		    "(start it with `systemctl start shird`, or name the socket with --socket)", sock);
	case ECONNREFUSED:
		return shir_error_set(err, SHIR_ECONNREFUSED,
		    "shird is not running: nothing listens on %s (a stale socket)", sock);
	case EACCES:
	case EPERM:
		return shir_error_set(err, SHIR_EPERM,
		    "permission denied on the control socket %s: run shirctl as root or as a "
		    "member of the socket's group", sock);
	default:
		return shir_error_set(err, SHIR_EIO, "cannot connect to %s: %s", sock, strerror(e));
	}
}

size_t
ctl_buf_write(char *data, size_t size, size_t n, void *arg)
{
	struct ctl_buf *b = arg;
	size_t add = size * n;
	char *np;

	if (b->len + add > CTL_MAX_RESPONSE) {
		b->too_big = 1;
		return 0;
	}
	np = realloc(b->data, b->len + add + 1);
	if (np == NULL)
		return 0;
	b->data = np;
	memcpy(b->data + b->len, data, add);
	b->len += add;
	b->data[b->len] = '\0';
	return add;
}

int
ctl_client_request(const char *sock, const char *method, const char *path, const char *body,
    struct ctl_response *resp, struct shir_error *err)
{
	struct curl_slist *hdrs = NULL;
	struct ctl_buf b = { NULL, 0, 0 };
	char url[1024];
	CURL *c = NULL;
	CURLcode cc;
	int rc = 0;

	memset(resp, 0, sizeof *resp);
	if ((rc = ctl_probe(sock, err)) != 0)
		return rc;
	c = curl_easy_init();
	if (c == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	snprintf(url, sizeof url, "http://localhost%s", path);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ctl_buf_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (body != NULL) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		if (b.too_big)
			rc = shir_error_set(err, SHIR_ETOOBIG, "the answer from shird is larger than %d bytes",
			    CTL_MAX_RESPONSE);
		else if (cc == CURLE_OPERATION_TIMEDOUT)
			rc = shir_error_set(err, SHIR_ETIMEDOUT, "shird did not answer within 120 s on %s",
			    sock);
		else
			rc = shir_error_set(err, SHIR_EIO, "talking to shird on %s failed: %s", sock,
			    curl_easy_strerror(cc));
		free(b.data);
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
	resp->body = b.data ? b.data : strdup("");
	resp->len = b.len;
out:
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return rc;
}

void
ctl_response_clear(struct ctl_response *resp)
{
	free(resp->body);
	memset(resp, 0, sizeof *resp);
}
