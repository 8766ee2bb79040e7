/* ctl_node: what the running shird can tell about itself, on the control
 * socket: get-ip (the routes Microsoft's service calls Get IP), send-logs FILE
 * (the redacted log bundle Send log makes, saved for a support case) and
 * logs [--follow] (the node's recent log lines, then new ones as they come). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "ctl/ctl_client.h"
#include "ctl/shirctl.h"

#define CTL_LOGS_DEFAULT 200
#define CTL_LOGS_MAX 5000	/* AUTH_LOG_LINES_MAX of the route */

int
ctl_node_get(struct ctl_ctx *ctx, const char *method, const char *path, const char *body,
    cJSON **out, char **raw)
{
	struct ctl_response resp;
	struct shir_error err;
	cJSON *o;

	*out = NULL;
	if (ctl_client_request(ctx->socket, method, path, body, &resp, &err) != 0) {
		fprintf(stderr, "shirctl: %s\n", err.msg);
		return ctl_request_exit_code(&err);
	}
	o = cJSON_Parse(resp.body);
	if (o == NULL || resp.status != 200) {
		fprintf(stderr, "shirctl: shird answered %ld: %s\n", resp.status, resp.body);
		cJSON_Delete(o);
		ctl_response_clear(&resp);
		return CTL_STATUS_ERROR;
	}
	if (raw != NULL) {
		*raw = resp.body;
		resp.body = NULL;
	}
	ctl_response_clear(&resp);
	*out = o;
	return 0;
}

int
ctl_cmd_get_ip(struct ctl_ctx *ctx, int argc, char **argv)
{
	int json = ctx->json || ctl_has_flag(argc, argv, "--json"), rc;
	cJSON *o, *a;
	char *raw = NULL;

	if (argc > 2 || (argc == 2 && !json))
		ctl_die_usage("get-ip", "get-ip [--json]");
	if ((rc = ctl_node_get(ctx, "GET", "/v1/node/ip", NULL, &o, &raw)) != 0)
		return rc;
	if (json) {
		printf("%s\n", raw);
	} else {
		printf("Node:     %s\nHost:     %s\n", ctl_json_str(o, "nodeName"),
		    ctl_json_str(o, "hostName"));
		cJSON_ArrayForEach(a, cJSON_GetObjectItem(o, "addresses")) {
			printf("  %-10s %-5s %s%s\n", ctl_json_str(a, "interface"),
			    ctl_json_str(a, "family"), ctl_json_str(a, "address"),
			    cJSON_IsTrue(cJSON_GetObjectItem(a, "loopback")) ? " (loopback)" : "");
		}
	}
	free(raw);
	cJSON_Delete(o);
	return 0;
}

/* "--lines N" among argv[1..]; the index of FILE (the first other word) in *file. */
static int
ctl_node_args(int argc, char **argv, int *lines, int *follow, int *file)
{
	int i;
	char *e;

	*file = 0;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--lines") == 0 && i + 1 < argc) {
			long n = strtol(argv[++i], &e, 10);

			if (*e || n < 1 || n > CTL_LOGS_MAX)
				return -1;
			*lines = (int)n;
		} else if (strcmp(argv[i], "--follow") == 0 && follow != NULL) {
			*follow = 1;
		} else if (argv[i][0] != '-' && *file == 0) {
			*file = i;
		} else {
			return -1;
		}
	}
	return 0;
}

static int
ctl_node_logs(struct ctl_ctx *ctx, int lines, cJSON **out)
{
	char body[64];

	snprintf(body, sizeof body, "{\"maxLines\":%d}", lines);
	return ctl_node_get(ctx, "POST", "/v1/node/logs", body, out, NULL);
}

int
ctl_cmd_send_logs(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const char usage[] = "send-logs FILE [--lines N]";
	int lines = CTL_LOGS_MAX, file, fd, rc;
	cJSON *o;
	char *text;
	size_t len;
	FILE *f;

	if (ctl_node_args(argc, argv, &lines, NULL, &file) != 0 || file == 0)
		ctl_die_usage("send-logs", usage);
	if ((rc = ctl_node_logs(ctx, lines, &o)) != 0)
		return rc;
	text = cJSON_Print(o);
	cJSON_Delete(o);
	if (text == NULL) {
		fprintf(stderr, "shirctl: out of memory\n");
		return 1;
	}
	/* a support bundle: redacted by shird, still the admin's to hand out */
	fd = open(argv[file], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		fprintf(stderr, "shirctl: cannot create %s: %s%s\n", argv[file], strerror(errno),
		    errno == EEXIST ? " (it is not overwritten; name a new file)" : "");
		if (fd >= 0)
			close(fd);
		free(text);
		return 1;
	}
	len = strlen(text);
	rc = fwrite(text, 1, len, f) != len || fputc('\n', f) == EOF;
	rc |= fclose(f) != 0;
	free(text);
	if (rc) {
		fprintf(stderr, "shirctl: writing %s failed: %s\n", argv[file], strerror(errno));
		unlink(argv[file]);
		return 1;
	}
	printf("saved the node's log bundle (redacted) to %s\n", argv[file]);
	return 0;
}

static volatile sig_atomic_t ctl_node_stop;

static void
ctl_node_on_signal(int sig)
{
	(void)sig;
	ctl_node_stop = 1;
}

int
ctl_cmd_logs(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const char usage[] = "logs [--lines N] [--follow]";
	int lines = CTL_LOGS_DEFAULT, follow = 0, file, rc, i, n, from;
	char *last = NULL;
	cJSON *o, *arr;

	if (ctl_node_args(argc, argv, &lines, &follow, &file) != 0 || file != 0)
		ctl_die_usage("logs", usage);
	if (follow) {
		signal(SIGINT, ctl_node_on_signal);
		signal(SIGTERM, ctl_node_on_signal);
	}
	for (;;) {
		if ((rc = ctl_node_logs(ctx, follow && last ? CTL_LOGS_MAX : lines, &o)) != 0)
			break;
		arr = cJSON_GetObjectItem(o, "lines");
		n = cJSON_GetArraySize(arr);
		from = 0;
		if (last != NULL) {	/* what came after the last line printed */
			for (i = n - 1; i >= 0; i--)
				if (strcmp(cJSON_GetArrayItem(arr, i)->valuestring, last) == 0)
					break;
			from = i + 1;
		}
		for (i = from; i < n; i++) {
			const char *l = cJSON_GetArrayItem(arr, i)->valuestring;
			size_t ll = strlen(l);

			/* the follower's own polls are not news */
			if (last != NULL && (strstr(l, "event=authoring.logs ") != NULL ||
			    strstr(l, " path=/v1/node/logs ") != NULL))
				continue;
			printf("%.*s\n", (int)(ll > 0 && l[ll - 1] == '\n' ? ll - 1 : ll), l);
		}
		fflush(stdout);
		if (n > 0 && from < n) {
			free(last);
			last = strdup(cJSON_GetArrayItem(arr, n - 1)->valuestring);
		}
		cJSON_Delete(o);
		if (!follow || ctl_node_stop)
			break;
		sleep(1);
		if (ctl_node_stop)
			break;
	}
	free(last);
	return rc;
}

/* ui: the local status page's address with its token in the fragment (the
 * part a browser never sends), from GET /v1/node/ui. */
int
ctl_cmd_ui(struct ctl_ctx *ctx, int argc, char **argv)
{
	int json = ctx->json || ctl_has_flag(argc, argv, "--json"), rc;
	cJSON *o;
	char *raw = NULL;

	if (argc > 2 || (argc == 2 && !json))
		ctl_die_usage("ui", "ui [--json]");
	if ((rc = ctl_node_get(ctx, "GET", "/v1/node/ui", NULL, &o, &raw)) != 0)
		return rc;
	if (json)
		printf("%s\n", raw);
	else
		printf("%s#token=%s\n", ctl_json_str(o, "url"), ctl_json_str(o, "token"));
	free(raw);
	cJSON_Delete(o);
	return 0;
}
