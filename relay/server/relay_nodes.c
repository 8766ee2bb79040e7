#include "config.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "relay/server/relay_nodes.h"

#define NODES_STATUS_MAX (8 * 1024 * 1024)

/* GET /status from host:port (the admin address, loopback); the body, or
 * NULL with why filled. */
static char *
nodes_fetch(const char *admin, char *why, size_t whylen)
{
	char host[256], *port, req[512], *buf = NULL, *body;
	struct addrinfo hints, *ai = NULL;
	struct timeval tv = { 5, 0 };
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd = -1;

	snprintf(host, sizeof host, "%s", admin);
	if ((port = strrchr(host, ':')) == NULL) {
		snprintf(why, whylen, "relay.admin %s is not host:port", admin);
		return NULL;
	}
	*port++ = '\0';
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host[0] == '[' ? host + 1 : host, port, &hints, &ai) != 0 || ai == NULL) {
		snprintf(why, whylen, "cannot resolve relay.admin %s", admin);
		return NULL;
	}
	if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
	    connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		snprintf(why, whylen, "the relay does not answer on relay.admin %s (is it running?)",
		    admin);
		goto fail;
	}
	n = snprintf(req, sizeof req, "GET /status HTTP/1.0\r\nHost: %s\r\n\r\n", admin);
	if (write(fd, req, (size_t)n) != n) {
		snprintf(why, whylen, "cannot send to relay.admin %s", admin);
		goto fail;
	}
	for (;;) {
		if (len + 4096 + 1 > cap) {
			char *nb;

			if (cap >= NODES_STATUS_MAX) {
				snprintf(why, whylen, "the relay's /status is over %d bytes",
				    NODES_STATUS_MAX);
				goto fail;
			}
			cap = cap ? cap * 2 : 65536;
			if ((nb = realloc(buf, cap)) == NULL) {
				snprintf(why, whylen, "out of memory");
				goto fail;
			}
			buf = nb;
		}
		if ((n = read(fd, buf + len, cap - len - 1)) < 0) {
			snprintf(why, whylen, "no answer from relay.admin %s within 5 s", admin);
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	freeaddrinfo(ai);
	if (strncmp(buf, "HTTP/1.", 7) != 0 || strncmp(buf + 8, " 200", 4) != 0 ||
	    (body = strstr(buf, "\r\n\r\n")) == NULL) {
		snprintf(why, whylen, "relay.admin %s did not answer /status with 200", admin);
		free(buf);
		return NULL;
	}
	memmove(buf, body + 4, strlen(body + 4) + 1);
	return buf;
fail:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	free(buf);
	return NULL;
}

cJSON *
relay_nodes_status(const char *admin, char *why, size_t whylen)
{
	char *body;
	cJSON *doc;

	if (admin == NULL || *admin == '\0') {
		snprintf(why, whylen, "relay.admin is not set (the runtime status comes from the "
		    "running relay's admin address)");
		return NULL;
	}
	if ((body = nodes_fetch(admin, why, whylen)) == NULL)
		return NULL;
	doc = cJSON_Parse(body);
	free(body);
	if (doc == NULL)
		snprintf(why, whylen, "relay.admin %s answered /status with invalid JSON", admin);
	return doc;
}

/* Offline known nodes of ent (not connected now), for the listing. */
static void
nodes_print_offline(const cJSON *ent)
{
	const cJSON *k;

	cJSON_ArrayForEach(k, cJSON_GetObjectItem(ent, "knownNodes"))
		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(k, "status")) ?: "",
		    "Offline") == 0)
			printf("%-24s %-10s (not connected)\n",
			    cJSON_GetStringValue(cJSON_GetObjectItem(k, "node")) ?: "", "Offline");
}

int
relay_nodes_print(const char *admin, const char *name, bool json)
{
	char why[512], *body;
	cJSON *doc, *e, *ent = NULL, *l, *out;
	int n = 0;

	if (admin == NULL || *admin == '\0') {
		fprintf(stderr, "shir-relay: ir nodes asks the running relay: set relay.admin "
		    "(a loopback host:port) in its configuration\n");
		return 1;
	}
	if ((body = nodes_fetch(admin, why, sizeof why)) == NULL) {
		fprintf(stderr, "shir-relay: %s\n", why);
		return 1;
	}
	doc = cJSON_Parse(body);
	free(body);
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(doc, "entities"))
		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(e, "name")) ?: "", name) == 0)
			ent = e;
	if (ent == NULL) {
		fprintf(stderr, "shir-relay: the running relay has no integration runtime named %s\n",
		    name);
		cJSON_Delete(doc);
		return 1;
	}
	n = cJSON_GetArraySize(cJSON_GetObjectItem(ent, "listeners"));
	if (json) {
		char *t;

		out = cJSON_CreateObject();
		cJSON_AddStringToObject(out, "name", name);
		cJSON_AddStringToObject(out, "status",
		    cJSON_GetStringValue(cJSON_GetObjectItem(ent, "runtimeStatus")) ?:
		    (n > 0 ? "Online" : "Offline"));
		cJSON_AddItemToObject(out, "nodes",
		    cJSON_Duplicate(cJSON_GetObjectItem(ent, "listeners"), 1));
		if (cJSON_GetObjectItem(ent, "knownNodes") != NULL)
			cJSON_AddItemToObject(out, "knownNodes",
			    cJSON_Duplicate(cJSON_GetObjectItem(ent, "knownNodes"), 1));
		t = cJSON_Print(out);
		printf("%s\n", t ? t : "{}");
		free(t);
		cJSON_Delete(out);
		cJSON_Delete(doc);
		return 0;
	}
	printf("Integration runtime %s: %s, %d node%s connected\n", name,
	    cJSON_GetStringValue(cJSON_GetObjectItem(ent, "runtimeStatus")) ?:
	    (n > 0 ? "Online" : "Offline"), n, n == 1 ? "" : "s");
	if (n > 0 || cJSON_GetArraySize(cJSON_GetObjectItem(ent, "knownNodes")) > 0)
		printf("%-24s %-10s %-12s %-22s %-10s %s\n", "NODE", "STATUS", "VERSION", "REMOTE",
		    "CONNECTED", "LISTENER ID");
	cJSON_ArrayForEach(l, cJSON_GetObjectItem(ent, "listeners")) {
		const char *node = cJSON_GetStringValue(cJSON_GetObjectItem(l, "node"));

		printf("%-24s %-10s %-12s %-22s %-10.0f %s\n", node && *node ? node : "(unnamed)",
		    cJSON_GetStringValue(cJSON_GetObjectItem(l, "status")) ?: "Online",
		    cJSON_GetStringValue(cJSON_GetObjectItem(l, "nodeVersion")) ?: "",
		    cJSON_GetStringValue(cJSON_GetObjectItem(l, "remote")) ?: "",
		    cJSON_GetNumberValue(cJSON_GetObjectItem(l, "connectedSeconds")),
		    cJSON_GetStringValue(cJSON_GetObjectItem(l, "id")) ?: "");
	}
	nodes_print_offline(ent);
	cJSON_Delete(doc);
	return 0;
}
