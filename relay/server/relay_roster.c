/* relay_roster: every node name a hybrid connection has had, and the runtime's
 * status from it (relay_roster.h). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/log.h"
#include "relay/server/relay_roster.h"
#include "relay/server/relay_srv_int.h"

#define ROSTER_FILE_MAX (4 * 1024 * 1024)

static cJSON *roster;		/* {"hc": ["node", ...]} */
static char *roster_path;

static void
roster_load(struct rsrv *s)
{
	FILE *f;
	char *buf;
	size_t n;

	if (roster != NULL)
		return;
	if (asprintf(&roster_path, "%s.nodes", s->conf->state_file) < 0)
		roster_path = NULL;
	roster = NULL;
	if (roster_path != NULL && (f = fopen(roster_path, "re")) != NULL) {
		if ((buf = malloc(ROSTER_FILE_MAX + 1)) != NULL) {
			n = fread(buf, 1, ROSTER_FILE_MAX, f);
			buf[n] = '\0';
			roster = cJSON_Parse(buf);
			free(buf);
		}
		fclose(f);
		if (!cJSON_IsObject(roster)) {
			log_warn("relay", "event=roster.unreadable file=%s reason=%s", log_q(roster_path),
			    log_q("not a JSON object; starting an empty roster"));
			cJSON_Delete(roster);
			roster = NULL;
		}
	}
	if (roster == NULL)
		roster = cJSON_CreateObject();
}

static void
roster_save(void)
{
	char tmp[4096], *text;
	FILE *f;
	int ok;

	if (roster_path == NULL || (text = cJSON_PrintUnformatted(roster)) == NULL)
		return;
	snprintf(tmp, sizeof tmp, "%s.tmp", roster_path);
	if ((f = fopen(tmp, "we")) == NULL) {
		log_warn("relay", "event=roster.save_failed file=%s reason=%s", log_q(tmp),
		    log_q(strerror(errno)));
		free(text);
		return;
	}
	ok = fputs(text, f) >= 0;
	ok = (fclose(f) == 0) && ok;
	free(text);
	if (!ok || rename(tmp, roster_path) != 0) {
		log_warn("relay", "event=roster.save_failed file=%s reason=%s", log_q(roster_path),
		    log_q(strerror(errno)));
		unlink(tmp);
	}
}

static int
roster_has(const cJSON *arr, const char *node)
{
	const cJSON *x;

	cJSON_ArrayForEach(x, arr)
		if (cJSON_IsString(x) && strcmp(x->valuestring, node) == 0)
			return 1;
	return 0;
}

void
relay_roster_note(struct rsrv *s, const struct ent *e, const char *node)
{
	cJSON *arr;

	if (node == NULL || *node == '\0')
		return;
	roster_load(s);
	if ((arr = cJSON_GetObjectItemCaseSensitive(roster, e->name)) == NULL)
		arr = cJSON_AddArrayToObject(roster, e->name);
	if (!cJSON_IsArray(arr) || roster_has(arr, node))
		return;
	if (cJSON_GetArraySize(arr) >= ROSTER_NODES_MAX)
		cJSON_DeleteItemFromArray(arr, 0);
	cJSON_AddItemToArray(arr, cJSON_CreateString(node));
	log_info("relay", "event=roster.new_node hc=%s node=%s nodes=%d", log_q(e->name), log_q(node),
	    cJSON_GetArraySize(arr));
	roster_save();
}

/* The live listener of e announcing node, or NULL. */
static const struct ctl *
roster_live(const struct ent *e, const char *node)
{
	const struct ctl *c, *found = NULL;

	for (c = e->ctls; c; c = c->next)
		if (!c->closing && strcmp(c->ann.node, node) == 0) {
			if (!c->inactive)
				return c;
			found = c;
		}
	return found;
}

void
relay_roster_status(struct rsrv *s, const struct ent *e, cJSON *j)
{
	const struct ctl *c;
	cJSON *arr, *known, *x;
	int total = 0, up = 0, live = 0;

	roster_load(s);
	known = cJSON_AddArrayToObject(j, "knownNodes");
	arr = cJSON_GetObjectItemCaseSensitive(roster, e->name);
	cJSON_ArrayForEach(x, arr) {
		cJSON *o;

		if (!cJSON_IsString(x))
			continue;
		c = roster_live(e, x->valuestring);
		total++;
		up += c != NULL && !c->inactive;
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "node", x->valuestring);
		cJSON_AddStringToObject(o, "status", c == NULL ? "Offline" :
		    c->inactive ? "Inactive" : "Online");
		cJSON_AddItemToArray(known, o);
	}
	/* listeners that announce no name (other clients) count as nodes while
	 * they are connected */
	for (c = e->ctls; c; c = c->next) {
		if (c->closing)
			continue;
		live++;
		if (c->ann.node[0] == '\0') {
			total++;
			up++;
		}
	}
	cJSON_AddStringToObject(j, "runtimeStatus", total == 0 && live == 0 ? "Need Registration" :
	    live == 0 ? "Offline" : up >= total ? "Online" : "Limited");
}

void
relay_roster_free(void)
{
	cJSON_Delete(roster);
	roster = NULL;
	free(roster_path);
	roster_path = NULL;
}
