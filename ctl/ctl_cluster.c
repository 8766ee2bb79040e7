/* shirctl cluster: the runtime data key the nodes of one runtime share to keep
 * the same credentials (docs/ha.md), and the sync status of the running node. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ctl/ctl_admin.h"
#include "ctl/ctl_client.h"
#include "ctl/shirctl.h"
#include "node/admin/credstore.h"
#include "node/admin/seal.h"
#include "node/cluster/rtgrant.h"
#include "node/cluster/rtkey.h"

static const char ctl_cluster_usage[] = "cluster init | cluster export-key FILE | "
    "cluster join FILE | cluster request FILE | cluster grant REQUEST-FILE FILE | "
    "cluster status [--json]";

/* request (new node), grant (member), join of a grant (new node): the data
 * key sealed to the new node's own X25519 key, no password (rtgrant.h). */
static int
ctl_cluster_grant(const struct conf *c, int argc, char **argv, struct shir_error *err)
{
	char fp[RTGRANT_FP_LEN + 1];
	int rc;

	if (strcmp(argv[1], "request") == 0) {
		if ((rc = rtgrant_request(c->state_dir, c->node_name, argv[2], fp, err)) == 0)
			printf("wrote the key request to %s (fingerprint %s); on a member node: "
			    "'shirctl cluster grant %s GRANT-FILE', check that it prints the same "
			    "fingerprint, then here: 'shirctl cluster join GRANT-FILE'\n", argv[2], fp,
			    argv[2]);
		return rc;
	}
	if (strcmp(argv[1], "grant") == 0) {
		if ((rc = rtgrant_grant(c->state_dir, argv[2], argv[3], fp, err)) == 0)
			printf("wrote the runtime data key to %s, sealed to the request with "
			    "fingerprint %s (compare it with what the new node printed); only that node "
			    "can open it\n", argv[3], fp);
		return rc;
	}
	if ((rc = rtgrant_accept(c->state_dir, argv[2], err)) == 0)
		printf("took the runtime data key from the grant %s; a running shird starts syncing "
		    "within a second\n", argv[2]);
	return rc;
}

/* GET /v1/node from the running shird: the whole document in *doc (free it)
 * and its "cluster" object in *c. Returns 0, or the exit code (7: shird is
 * not running, 1: another failure) after saying why. */
static int
ctl_cluster_fetch(const struct ctl_ctx *ctx, cJSON **doc, cJSON **c)
{
	struct ctl_response r = { 0 };
	int rc = ctl_admin_call(ctx, "GET", "/v1/node", NULL, &r);

	*doc = *c = NULL;
	if (rc != 0) {
		ctl_response_clear(&r);
		if (rc == 2)
			fprintf(stderr, "shirctl: shird is not running\n");
		return rc == 2 ? 7 : 1;
	}
	*doc = cJSON_Parse(r.body);
	ctl_response_clear(&r);
	*c = cJSON_GetObjectItemCaseSensitive(*doc, "cluster");
	if (*c == NULL) {
		fprintf(stderr, "shirctl: shird gave no cluster status\n");
		cJSON_Delete(*doc);
		*doc = NULL;
		return 1;
	}
	return 0;
}

/* The sync messages by path: "direct D sent / D received, relay R sent / R
 * received" (digests and records together). */
static void
ctl_cluster_paths(cJSON *c)
{
	cJSON *m = cJSON_GetObjectItem(c, "syncMessages");
	const char *path[2] = { "direct", "relay" };
	double v[2][2];
	int i, j;

	if (m == NULL)
		return;
	for (i = 0; i < 2; i++)
		for (j = 0; j < 2; j++) {
			cJSON *d = cJSON_GetObjectItem(cJSON_GetObjectItem(m, path[i]),
			    j ? "received" : "sent");

			v[i][j] = cJSON_GetNumberValue(cJSON_GetObjectItem(d, "digest")) +
			    cJSON_GetNumberValue(cJSON_GetObjectItem(d, "records"));
		}
	printf("sync messages: direct %.0f sent / %.0f received, relay %.0f sent / %.0f received\n",
	    v[0][0], v[0][1], v[1][0], v[1][1]);
}

static int
ctl_cluster_status(const struct ctl_ctx *ctx, int json)
{
	cJSON *doc, *c, *p;
	int rc = ctl_cluster_fetch(ctx, &doc, &c);

	if (rc != 0)
		return rc;
	if (json) {
		char *t = cJSON_Print(c);

		printf("%s\n", t ? t : "{}");
		free(t);
		cJSON_Delete(doc);
		return 0;
	}
	printf("sync:      %s\n", cJSON_GetStringValue(cJSON_GetObjectItem(c, "sync")));
	printf("node id:   %s\n", cJSON_GetStringValue(cJSON_GetObjectItem(c, "nodeId")));
	printf("digest:    %s (%d records)\n", cJSON_GetStringValue(cJSON_GetObjectItem(c, "digest")),
	    (int)cJSON_GetNumberValue(cJSON_GetObjectItem(c, "records")));
	printf("state:     %s", cJSON_GetStringValue(cJSON_GetObjectItem(c, "state")));
	if (cJSON_GetNumberValue(cJSON_GetObjectItem(c, "differsSeconds")) > 0)
		printf(" (differs from the majority for %ds)",
		    (int)cJSON_GetNumberValue(cJSON_GetObjectItem(c, "differsSeconds")));
	printf("\n");
	cJSON_ArrayForEach(p, cJSON_GetObjectItem(c, "differing"))
		printf("differing: %s\n", cJSON_GetStringValue(p));
	cJSON_ArrayForEach(p, cJSON_GetObjectItem(c, "peers"))
		printf("peer %s: %s, %d records, seen %ds ago, sync %s\n",
		    cJSON_GetStringValue(cJSON_GetObjectItem(p, "nodeId")),
		    cJSON_IsTrue(cJSON_GetObjectItem(p, "agrees")) ? "agrees" : "differs",
		    (int)cJSON_GetNumberValue(cJSON_GetObjectItem(p, "records")),
		    (int)cJSON_GetNumberValue(cJSON_GetObjectItem(p, "secondsSinceSeen")),
		    cJSON_GetStringValue(cJSON_GetObjectItem(p, "path")) ?: "relay");
	p = cJSON_GetObjectItem(c, "remoteAccess");
	if (cJSON_IsTrue(cJSON_GetObjectItem(p, "listening")))
		printf("remote access: listening, announced as %s (%s certificate)\n",
		    cJSON_GetStringValue(cJSON_GetObjectItem(p, "address")),
		    cJSON_GetStringValue(cJSON_GetObjectItem(p, "certificate")));
	else
		printf("remote access: not listening (disabled, or no runtime data key)\n");
	ctl_cluster_paths(c);
	cJSON_Delete(doc);
	return 0;
}

int
ctl_cmd_cluster(struct ctl_ctx *ctx, int argc, char **argv)
{
	struct shir_error err;
	struct conf *c = NULL;
	char *pw = NULL;
	int rc = 0, exp;

	if (argc >= 2 && strcmp(argv[1], "status") == 0 && argc <= 3 &&
	    (argc == 2 || strcmp(argv[2], "--json") == 0))
		return ctl_cluster_status(ctx, argc == 3);
	if (!((argc == 2 && strcmp(argv[1], "init") == 0) || (argc == 3 &&
	    (strcmp(argv[1], "export-key") == 0 || strcmp(argv[1], "join") == 0 ||
	    strcmp(argv[1], "request") == 0)) || (argc == 4 && strcmp(argv[1], "grant") == 0))) {
		ctl_die_usage("cluster", ctl_cluster_usage);
		return 2;
	}
	if ((c = ctl_admin_conf(ctx)) == NULL)
		return 1;
	if (strcmp(argv[1], "init") == 0) {
		rc = rtkey_create(c->state_dir, &err);
		if (rc == 0)
			printf("made the runtime data key in %s/%s; copy it to the other nodes with "
			    "'shirctl cluster export-key FILE' here and 'shirctl cluster join FILE' "
			    "there\n", c->state_dir, RTKEY_FILE);
		goto out;
	}
	if (strcmp(argv[1], "request") == 0 || strcmp(argv[1], "grant") == 0 ||
	    (strcmp(argv[1], "join") == 0 && rtgrant_is_grant(argv[2]))) {
		rc = ctl_cluster_grant(c, argc, argv, &err);
		goto out;
	}
	exp = strcmp(argv[1], "export-key") == 0;
	if ((rc = ctl_read_secret(exp ? "Password for the key file: " : "Password of the key "
	    "file: ", exp, &pw, &err)) != 0)
		goto out;
	if (exp)
		rc = rtkey_export(c->state_dir, pw, SEAL_SCRYPT_LOG2N, argv[2], &err);
	else
		rc = rtkey_import(c->state_dir, pw, argv[2], &err);
	credstore_secret_free(pw);
	if (rc == 0)
		printf(exp ? "wrote the runtime data key to %s (sealed under the password)\n" :
		    "took the runtime data key from %s; a running shird starts syncing within a "
		    "second\n", argv[2]);
out:
	if (rc != 0)
		fprintf(stderr, "shirctl: %s\n", err.msg);
	conf_free(c);
	return rc != 0;
}

/* shirctl nodes: the runtime's nodes as this node knows them: itself, and each
 * node whose sync digest it heard in the last 4 digest periods. */
int
ctl_cmd_nodes(struct ctl_ctx *ctx, int argc, char **argv)
{
	cJSON *doc, *c, *p;
	int rc, json = argc == 2 && strcmp(argv[1], "--json") == 0, n = 1;

	if (argc > 2 || (argc == 2 && !json)) {
		ctl_die_usage("nodes", "nodes [--json]");
		return 2;
	}
	if ((rc = ctl_cluster_fetch(ctx, &doc, &c)) != 0)
		return rc;
	if (json) {
		cJSON *out = cJSON_CreateArray(), *me = cJSON_CreateObject();
		char *t;

		cJSON_AddStringToObject(me, "name", cJSON_GetStringValue(cJSON_GetObjectItem(c, "name")));
		cJSON_AddStringToObject(me, "nodeId", cJSON_GetStringValue(cJSON_GetObjectItem(c,
		    "nodeId")));
		cJSON_AddStringToObject(me, "version", cJSON_GetStringValue(cJSON_GetObjectItem(c,
		    "version")));
		cJSON_AddStringToObject(me, "status", cJSON_GetStringValue(cJSON_GetObjectItem(doc,
		    "status")));
		cJSON_AddStringToObject(me, "state", cJSON_GetStringValue(cJSON_GetObjectItem(c,
		    "state")));
		cJSON_AddNumberToObject(me, "credentialsVersion",
		    cJSON_GetNumberValue(cJSON_GetObjectItem(c, "credentialsVersion")));
		cJSON_AddBoolToObject(me, "self", 1);
		cJSON_AddItemToArray(out, me);
		cJSON_ArrayForEach(p, cJSON_GetObjectItem(c, "peers"))
			cJSON_AddItemToArray(out, cJSON_Duplicate(p, 1));
		t = cJSON_Print(out);
		printf("%s\n", t ? t : "[]");
		free(t);
		cJSON_Delete(out);
		cJSON_Delete(doc);
		return 0;
	}
	printf("%-24s %-12s %-10s %-10s %-12s %-7s %s\n", "NAME", "VERSION", "STATUS", "CREDS",
	    "CRED-VER", "SYNC", "NODE ID");
	/* STATUS: a node's channels (Online / Limited / Offline), or Inactive when
	 * its credentials have differed from the majority's (docs/ha.md) */
	{
		const char *st = cJSON_GetStringValue(cJSON_GetObjectItem(c, "state"));

		printf("%-24s %-12s %-10s %-10s %-12.0f %-7s %s (this node)\n",
		    cJSON_GetStringValue(cJSON_GetObjectItem(c, "name")),
		    cJSON_GetStringValue(cJSON_GetObjectItem(c, "version")),
		    st && strcmp(st, "Inactive") == 0 ? st :
		    cJSON_GetStringValue(cJSON_GetObjectItem(doc, "status")), "-",
		    cJSON_GetNumberValue(cJSON_GetObjectItem(c, "credentialsVersion")), "-",
		    cJSON_GetStringValue(cJSON_GetObjectItem(c, "nodeId")));
	}
	cJSON_ArrayForEach(p, cJSON_GetObjectItem(c, "peers")) {
		const char *st = cJSON_GetStringValue(cJSON_GetObjectItem(p, "state"));

		n++;
		printf("%-24s %-12s %-10s %-10s %-12.0f %-7s %s\n",
		    cJSON_GetStringValue(cJSON_GetObjectItem(p, "name")),
		    cJSON_GetStringValue(cJSON_GetObjectItem(p, "version")),
		    st && strcmp(st, "Inactive") == 0 ? "Inactive" : "Online",
		    cJSON_IsTrue(cJSON_GetObjectItem(p, "agrees")) ? "same" : "differ",
		    cJSON_GetNumberValue(cJSON_GetObjectItem(p, "credentialsVersion")),
		    cJSON_GetStringValue(cJSON_GetObjectItem(p, "path")) ?: "relay",
		    cJSON_GetStringValue(cJSON_GetObjectItem(p, "nodeId")));
	}
	printf("%d node%s heard from%s\n", n, n == 1 ? "" : "s",
	    cJSON_IsTrue(cJSON_GetObjectItem(c, "dataKey")) ? "" :
	    " (no runtime data key: other nodes are not heard)");
	ctl_cluster_paths(c);
	cJSON_Delete(doc);
	return 0;
}
