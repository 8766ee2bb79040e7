#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "node/api.h"
#include "node/api_stream.h"
#include "common/log.h"
#include "common/shir_err.h"

#define API_MAX_ROUTES 64
#define API_MAX_HEADERS 1024

struct api_route {
	char *method;
	char *pattern;
	size_t plen;
	int prefix;
	unsigned channels;	/* API_FROM_* */
	api_handler_fn h;
	void *ud;
};

struct api {
	struct api_route routes[API_MAX_ROUTES];
	size_t nroutes;
	unsigned inflight;
	int draining;
};

struct api_reply {
	struct api *api;
	struct api_request rq;
	char *method, *target, *path, *body;
	char headers[API_MAX_HEADERS];
	api_done_fn done;
	api_stream_fn stream;	/* NULL: the channel takes whole answers only */
	void *arg;
	struct api_reply **handle;
	int cancelled;
	void (*on_cancel)(void *arg);	/* the handler stops its work */
	void *cancel_arg;
};

struct api *
api_new(void)
{
	return calloc(1, sizeof(struct api));
}

void
api_free(struct api *api)
{
	size_t i;

	if (api == NULL)
		return;
	for (i = 0; i < api->nroutes; i++)
		free(api->routes[i].method), free(api->routes[i].pattern);
	free(api);
}

const char *
api_channel_name(enum api_channel ch)
{
	switch (ch) {
	case API_CH_LOCAL: return "control-socket";
	case API_CH_RELAY: return "relay";
	case API_CH_SELF_CONTAINED: return "self-contained";
	}
	return "?";
}

int
api_route(struct api *api, const char *method, const char *pattern, unsigned channels,
    api_handler_fn h, void *ud)
{
	struct api_route *rt;
	size_t l = strlen(pattern);

	if ((channels & API_FROM_ANY) == 0 || (channels & ~API_FROM_ANY) != 0)
		return SHIR_EINVAL;
	if (api->nroutes == API_MAX_ROUTES)
		return SHIR_ETOOBIG;
	rt = &api->routes[api->nroutes];
	rt->method = method ? strdup(method) : NULL;
	rt->pattern = strdup(pattern);
	if ((method && rt->method == NULL) || rt->pattern == NULL) {
		free(rt->method), free(rt->pattern);
		return SHIR_ENOMEM;
	}
	rt->prefix = l > 0 && pattern[l - 1] == '*';
	rt->plen = rt->prefix ? l - 1 : l;
	rt->channels = channels;
	rt->h = h;
	rt->ud = ud;
	api->nroutes++;
	return 0;
}

void
api_log_routes(const struct api *api)
{
	size_t i;

	for (i = 0; i < api->nroutes; i++) {
		const struct api_route *rt = &api->routes[i];
		char chs[64] = "";
		int ch;

		for (ch = API_CH_LOCAL; ch <= API_CH_SELF_CONTAINED; ch++)
			if (rt->channels & API_FROM(ch))
				snprintf(chs + strlen(chs), sizeof chs - strlen(chs), "%s%s",
				    chs[0] ? "," : "", api_channel_name((enum api_channel)ch));
		log_info("api", "event=api.route method=%s path=%s channels=%s",
		    rt->method ? rt->method : "*", log_q(rt->pattern), chs);
	}
}

int
api_route_info(const struct api *api, size_t i, const char **method, const char **pattern,
    unsigned *channels)
{
	if (i >= api->nroutes)
		return -1;
	*method = api->routes[i].method;
	*pattern = api->routes[i].pattern;
	*channels = api->routes[i].channels;
	return 0;
}

static void
api_reply_free(struct api_reply *r)
{
	free(r->method), free(r->target), free(r->path), free(r->body);
	free(r);
}

static void
api_complete(struct api_reply *r, int status, const char *ctype, const char *body, size_t len)
{
	struct api *api = r->api;

	api->inflight--;
	if (r->handle != NULL)
		*r->handle = NULL;
	if (!r->cancelled && r->done != NULL)
		r->done(r->arg, status, r->headers, ctype, body, len);
	log_debug("api", "event=api.done method=%s path=%s status=%d cancelled=%d", r->method,
	    log_q(r->path), status, r->cancelled);
	api_reply_free(r);
}

void
api_reply_send(struct api_reply *r, int status, const char *ctype, const char *body, size_t len)
{
	api_complete(r, status, ctype, body, len);
}

void
api_reply_json(struct api_reply *r, int status, cJSON *json)
{
	char *s = json ? cJSON_PrintUnformatted(json) : NULL;

	cJSON_Delete(json);
	if (s == NULL) {
		static const char oom[] =
		    "{\"status\":\"Failed\",\"error\":{\"code\":\"Internal\",\"message\":\"out of memory\"}}";

		api_complete(r, 500, "application/json", oom, sizeof oom - 1);
		return;
	}
	api_complete(r, status, "application/json", s, strlen(s));
	cJSON_free(s);
}

void
api_reply_error(struct api_reply *r, int status, const char *code, const char *fmt, ...)
{
	char msg[1024];
	cJSON *o, *e;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	o = cJSON_CreateObject();
	e = cJSON_CreateObject();
	if (o == NULL || e == NULL) {
		cJSON_Delete(o), cJSON_Delete(e);
		api_reply_json(r, 500, NULL);
		return;
	}
	cJSON_AddStringToObject(o, "status", "Failed");
	cJSON_AddStringToObject(e, "code", code);
	cJSON_AddStringToObject(e, "message", msg);
	cJSON_AddItemToObject(o, "error", e);
	api_reply_json(r, status, o);
}

int
api_reply_header(struct api_reply *r, const char *name, const char *value)
{
	size_t l = strlen(r->headers);
	int n;

	if (strpbrk(name, "\r\n:") != NULL || strpbrk(value, "\r\n") != NULL)
		return SHIR_EINVAL;
	n = snprintf(r->headers + l, sizeof r->headers - l, "%s: %s\r\n", name, value);
	if (n < 0 || (size_t)n >= sizeof r->headers - l) {
		r->headers[l] = '\0';
		return SHIR_ETOOBIG;
	}
	return 0;
}

const struct api_request *
api_reply_request(const struct api_reply *r)
{
	return &r->rq;
}

const char *
api_reply_path(const struct api_reply *r)
{
	return r->path;
}

void
api_reply_cancel(struct api_reply *r)
{
	if (r != NULL) {
		r->cancelled = 1;
		r->handle = NULL;
		if (r->on_cancel != NULL) {
			void (*fn)(void *) = r->on_cancel;

			r->on_cancel = NULL;
			fn(r->cancel_arg);
		}
	}
}

void
api_reply_on_cancel(struct api_reply *r, void (*fn)(void *arg), void *arg)
{
	r->on_cancel = fn;
	r->cancel_arg = arg;
}

unsigned
api_inflight(const struct api *api)
{
	return api->inflight;
}

void
api_set_draining(struct api *api, int on)
{
	api->draining = on;
}

static const struct api_route *
api_find(const struct api *api, const char *method, const char *path, int *path_known)
{
	size_t i;

	*path_known = 0;
	for (i = 0; i < api->nroutes; i++) {
		const struct api_route *rt = &api->routes[i];
		int match = rt->prefix ? strncmp(path, rt->pattern, rt->plen) == 0
				       : strcmp(path, rt->pattern) == 0;

		if (!match)
			continue;
		*path_known = 1;
		if (rt->method == NULL || strcmp(rt->method, method) == 0)
			return rt;
	}
	return NULL;
}

int
api_reply_can_stream(const struct api_reply *r)
{
	return r->stream != NULL && !r->cancelled;
}

void
api_reply_stream(struct api_reply *r, int status, const char *ctype, struct api_stream *s)
{
	if (r->handle != NULL)
		*r->handle = NULL;
	r->api->inflight--;
	if (!r->cancelled) {
		api_stream_ref(s);
		r->stream(r->arg, status, r->headers, ctype, s);
	}
	api_reply_free(r);
}

static void api_dispatch_r(struct api *api, const struct api_request *rq, api_done_fn done,
    api_stream_fn stream, void *arg, struct api_reply **handle);

void
api_dispatch(struct api *api, const struct api_request *rq, api_done_fn done, void *arg,
    struct api_reply **handle)
{
	api_dispatch_r(api, rq, done, NULL, arg, handle);
}

void
api_dispatch_stream(struct api *api, const struct api_request *rq, api_done_fn done,
    api_stream_fn stream, void *arg, struct api_reply **handle)
{
	api_dispatch_r(api, rq, done, stream, arg, handle);
}

static void
api_dispatch_r(struct api *api, const struct api_request *rq, api_done_fn done,
    api_stream_fn stream, void *arg, struct api_reply **handle)
{
	const struct api_route *rt;
	struct api_reply *r;
	size_t plen;
	int known;

	r = calloc(1, sizeof *r);
	if (r == NULL) {
		static const char oom[] =
		    "{\"status\":\"Failed\",\"error\":{\"code\":\"Internal\",\"message\":\"out of memory\"}}";

		done(arg, 500, "", "application/json", oom, sizeof oom - 1);
		return;
	}
	plen = strcspn(rq->target, "?#");
	r->api = api;
	r->done = done;
	r->stream = stream;
	r->arg = arg;
	r->method = strdup(rq->method);
	r->target = strdup(rq->target);
	r->path = strndup(rq->target, plen);
	r->body = malloc(rq->body_len + 1);
	if (r->method == NULL || r->target == NULL || r->path == NULL || r->body == NULL) {
		api_reply_free(r);
		done(arg, 500, "", "text/plain", "out of memory\n", 14);
		return;
	}
	if (rq->body_len > 0)
		memcpy(r->body, rq->body, rq->body_len);
	r->body[rq->body_len] = '\0';
	r->rq.method = r->method;
	r->rq.target = r->target;
	r->rq.body = r->body;
	r->rq.body_len = rq->body_len;
	r->rq.channel = rq->channel;
	r->handle = handle;
	if (handle != NULL)
		*handle = r;
	api->inflight++;
	log_debug("api", "event=api.request method=%s path=%s channel=%d bytes=%zu",
	    log_q(r->method), log_q(r->path), (int)rq->channel, rq->body_len);

	if (api->draining) {
		api_reply_error(r, 503, "ShuttingDown", "the node is shutting down; retry on another node");
		return;
	}
	if (rq->body_len > API_MAX_BODY) {
		api_reply_error(r, 413, "InvalidRequest", "the request body is larger than %d bytes",
		    API_MAX_BODY);
		return;
	}
	rt = api_find(api, r->method, r->path, &known);
	if (rt == NULL) {
		if (known)
			api_reply_error(r, 405, "InvalidRequest", "%s is not allowed on %s", r->method,
			    r->path);
		else
			api_reply_error(r, 404, "NotFound", "no such API path: %s", r->path);
		return;
	}
	if ((rt->channels & API_FROM(rq->channel)) == 0) {
		log_warn("api", "event=api.forbidden method=%s path=%s channel=%s reason=\"route not "
		    "open to this channel\"", log_q(r->method), log_q(r->path),
		    api_channel_name(rq->channel));
		if (rt->channels == API_FROM_LOCAL)
			api_reply_error(r, 403, "Forbidden", "%s %s administers the node and is accepted "
			    "on its control socket only (shirctl on the node), not over the %s channel",
			    r->method, r->path, api_channel_name(rq->channel));
		else
			api_reply_error(r, 403, "Forbidden", "%s %s is not accepted over the %s channel",
			    r->method, r->path, api_channel_name(rq->channel));
		return;
	}
	/* The handler owns r from here; it may answer at once or later. */
	rt->h(r, &r->rq, rt->ud);
}
