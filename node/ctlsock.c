#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "node/api.h"
#include "node/ctlsock.h"
#include "common/log.h"
#include "node/node.h"

struct ctlsock {
	struct node *node;
	struct evhttp *http;
	struct evconnlistener *lst;
	char *path;
};

/* One request in flight on the control socket. */
struct ctl_pending {
	struct evhttp_request *req;
	struct api_reply *reply;
};

static void
ctl_conn_closed(struct evhttp_connection *conn, void *arg)
{
	struct ctl_pending *p = arg;

	/* the client went away before the answer: the api must not call us */
	api_reply_cancel(p->reply);
	free(p);
}

static void
ctl_done(void *arg, int status, const char *headers, const char *ctype, const char *body,
    size_t len)
{
	struct ctl_pending *p = arg;
	struct evhttp_request *req = p->req;
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
	struct evbuffer *buf = evbuffer_new();
	const char *h = headers;

	evhttp_connection_set_closecb(evhttp_request_get_connection(req), NULL, NULL);
	free(p);
	while (h != NULL && *h) {
		const char *colon = strchr(h, ':'), *eol = strstr(h, "\r\n");
		char name[128], value[512];

		if (colon == NULL || eol == NULL || colon > eol)
			break;
		snprintf(name, sizeof name, "%.*s", (int)(colon - h), h);
		snprintf(value, sizeof value, "%.*s", (int)(eol - colon - 2), colon + 2);
		evhttp_add_header(oh, name, value);
		h = eol + 2;
	}
	if (ctype != NULL)
		evhttp_add_header(oh, "Content-Type", ctype);
	if (buf != NULL && len > 0)
		evbuffer_add(buf, body, len);
	evhttp_send_reply(req, status, NULL, buf);
	evbuffer_free(buf);
}

static void
ctl_request(struct evhttp_request *req, void *arg)
{
	struct ctlsock *c = arg;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct ctl_pending *p;
	struct api_request rq;
	const char *method;
	char *body = NULL;
	size_t len = evbuffer_get_length(in);

	switch (evhttp_request_get_command(req)) {
	case EVHTTP_REQ_GET: method = "GET"; break;
	case EVHTTP_REQ_POST: method = "POST"; break;
	case EVHTTP_REQ_PUT: method = "PUT"; break;
	case EVHTTP_REQ_DELETE: method = "DELETE"; break;
	default:
		evhttp_send_error(req, 405, "Method Not Allowed");
		return;
	}
	p = calloc(1, sizeof *p);
	body = malloc(len + 1);
	if (p == NULL || body == NULL) {
		free(p), free(body);
		evhttp_send_error(req, 500, "Out of memory");
		return;
	}
	evbuffer_remove(in, body, len);
	body[len] = '\0';
	p->req = req;
	rq.method = method;
	rq.target = evhttp_request_get_uri(req);
	rq.body = body;
	rq.body_len = len;
	rq.channel = API_CH_LOCAL;
	evhttp_connection_set_closecb(evhttp_request_get_connection(req), ctl_conn_closed, p);
	api_dispatch(node_api(c->node), &rq, ctl_done, p, &p->reply);
	free(body);
}

int
ctlsock_open(struct node *n, const char *path, struct ctlsock **out, struct shir_error *err)
{
	struct ctlsock *c = NULL;
	struct sockaddr_un sun;
	int fd = -1, rc = 0;
	mode_t old;

	*out = NULL;
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path)
		return shir_error_set(err, SHIR_ECONFIG,
		    "control socket path %s is longer than %zu bytes", path, sizeof sun.sun_path - 1);
	strcpy(sun.sun_path, path);

	c = calloc(1, sizeof *c);
	if (c == NULL || (c->path = strdup(path)) == NULL) {
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	c->node = n;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		rc = shir_error_set(err, SHIR_EIO, "socket: %s", strerror(errno));
		goto out;
	}
	/* A stale socket from a crashed daemon: remove it only if nobody answers. */
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0) {
		rc = shir_error_set(err, SHIR_EEXIST,
		    "another shird is already listening on %s; stop it first", path);
		goto out;
	}
	if (errno == ECONNREFUSED)
		unlink(path);
	close(fd);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		rc = shir_error_set(err, SHIR_EIO, "socket: %s", strerror(errno));
		goto out;
	}
	old = umask(0117);
	if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
		int e = errno;

		umask(old);
		rc = shir_error_set(err, SHIR_EIO,
		    "cannot create the control socket %s: %s%s", path, strerror(e),
		    e == ENOENT ? " (create its directory, or set node.control_socket)" : "");
		goto out;
	}
	umask(old);
	chmod(path, 0660);
	c->lst = evconnlistener_new(node_base(n), NULL, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 64, fd);
	if (c->lst == NULL) {
		rc = shir_error_set(err, SHIR_EIO, "cannot listen on %s", path);
		goto out;
	}
	fd = -1;
	c->http = evhttp_new(node_base(n));
	if (c->http == NULL || evhttp_bind_listener(c->http, c->lst) == NULL) {
		rc = shir_error_set(err, SHIR_EIO, "cannot serve HTTP on %s", path);
		goto out;
	}
	c->lst = NULL;	/* owned by evhttp now */
	evhttp_set_max_body_size(c->http, API_MAX_BODY);
	evhttp_set_max_headers_size(c->http, 32 * 1024);
	evhttp_set_timeout(c->http, 120);
	evhttp_set_allowed_methods(c->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
	    EVHTTP_REQ_DELETE);
	evhttp_set_gencb(c->http, ctl_request, c);
	log_info("ctl", "event=listening socket=%s mode=0660", log_q(path));
	*out = c;
	c = NULL;
out:
	if (fd >= 0)
		close(fd);
	if (c != NULL) {
		if (c->lst != NULL)
			evconnlistener_free(c->lst);
		ctlsock_free(c);
	}
	return rc;
}

void
ctlsock_free(struct ctlsock *c)
{
	if (c == NULL)
		return;
	if (c->http != NULL) {
		evhttp_free(c->http);
		if (c->path != NULL)
			unlink(c->path);
	}
	free(c->path);
	free(c);
}
