/* ctl_jobs: `shirctl jobs [--json]`, the copy jobs the running shird is
 * working on (GET /v1/copy/jobs on the control socket): id, attempt, rows
 * read and bytes written so far, for how long, from where to where. The
 * queue itself (every job and its state) is on the relay: shir-relay jobs. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ctl/ctl_client.h"
#include "ctl/shirctl.h"

int
ctl_cmd_jobs(struct ctl_ctx *ctx, int argc, char **argv)
{
	int json = ctx->json || ctl_has_flag(argc, argv, "--json");
	char *raw = NULL;
	cJSON *o, *j;
	int rc;

	if (argc > 2 || (argc == 2 && !json))
		ctl_die_usage("jobs", "jobs [--json]");
	if ((rc = ctl_node_get(ctx, "GET", "/v1/copy/jobs", NULL, &o, &raw)) != 0)
		return rc;
	if (json) {
		printf("%s\n", raw);
	} else if (!cJSON_IsTrue(cJSON_GetObjectItem(o, "enabled"))) {
		printf("Copy jobs are off on this node: %s.\n", ctl_json_str(o, "why"));
	} else {
		printf("Copy jobs: %d running of at most %d (queue %s)\n",
		    cJSON_GetArraySize(cJSON_GetObjectItem(o, "jobs")),
		    (int)cJSON_GetNumberValue(cJSON_GetObjectItem(o, "maxJobs")), ctl_json_str(o, "queue"));
		if (cJSON_GetArraySize(cJSON_GetObjectItem(o, "jobs")) > 0)
			printf("%-36s %-7s %12s %14s %8s  %s\n", "ID", "ATTEMPT", "ROWS", "BYTES",
			    "SECONDS", "SOURCE -> SINK (FORMAT)");
		cJSON_ArrayForEach(j, cJSON_GetObjectItem(o, "jobs")) {
			printf("%-36s %-7d %12.0f %14.0f %8.0f  %s -> %s (%s)\n", ctl_json_str(j, "id"),
			    (int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "dequeueCount")),
			    cJSON_GetNumberValue(cJSON_GetObjectItem(j, "rowsRead")),
			    cJSON_GetNumberValue(cJSON_GetObjectItem(j, "bytesWritten")),
			    cJSON_GetNumberValue(cJSON_GetObjectItem(j, "runningSeconds")),
			    ctl_json_str(j, "source"), ctl_json_str(j, "sink"), ctl_json_str(j, "format"));
		}
	}
	cJSON_Delete(o);
	free(raw);
	return 0;
}
