#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "common/atomicfile.h"
#include "node/admin/backup.h"
#include "node/conf.h"
#include "node/admin/confedit.h"
#include "node/admin/credstore.h"
#include "common/log.h"
#include "node/admin/registration.h"
#include "node/cluster/rtkey.h"
#include "node/admin/seal.h"

#define BACKUP_FILE_MAX (32u * 1024 * 1024)

int
backup_create(const char *conf_path, const char *state_dir, const char *password, int log2n,
    const char *file, struct backup_summary *sum, struct shir_error *err)
{
	struct credstore *cs = NULL;
	char path[PATH_MAX], host[256] = "", *creds = NULL, *reg = NULL, *settings = NULL;
	char *plain = NULL;
	uint8_t *sealed = NULL;
	size_t sealedlen = 0;
	cJSON *o = NULL, *st;
	int rc;

	memset(sum, 0, sizeof *sum);
	if ((rc = credstore_open(state_dir, &cs, err)) != 0 ||
	    (rc = credstore_export(cs, &creds, err)) != 0)
		goto out;
	snprintf(path, sizeof path, "%s/%s", state_dir, REGISTRATION_FILE);
	rc = atomicfile_read(path, 64 * 1024, &reg, NULL, err);
	if (rc != 0 && rc != SHIR_ENOENT)
		goto out;
	rc = atomicfile_read(conf_path, 1024 * 1024, &settings, NULL, err);
	if (rc != 0 && rc != SHIR_ENOENT)
		goto out;
	rc = 0;
	gethostname(host, sizeof host - 1);
	o = cJSON_CreateObject();
	if (o == NULL) {
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	cJSON_AddNumberToObject(o, "format", 1);
	cJSON_AddNumberToObject(o, "created", (double)time(NULL));
	cJSON_AddStringToObject(o, "host", host);
	cJSON_AddStringToObject(o, "shir", PACKAGE_VERSION);
	if (reg != NULL) {
		cJSON *r = cJSON_Parse(reg);

		if (r == NULL) {
			rc = shir_error_set(err, SHIR_EPROTO, "%s is not valid JSON; fix or re-register "
			    "before a backup", path);
			goto out;
		}
		cJSON_AddItemToObject(o, "registration", r);
		sum->registered = 1;
		snprintf(sum->ir, sizeof sum->ir, "%s",
		    cJSON_GetStringValue(cJSON_GetObjectItem(r, "ir")) ?: "");
	} else {
		cJSON_AddNullToObject(o, "registration");
	}
	cJSON_AddItemToObject(o, "credentials", cJSON_Parse(creds));
	sum->ncredentials = cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(o,
	    "credentials"), "credentials"));
	st = cJSON_AddObjectToObject(o, "settings");
	if (settings != NULL) {
		struct conf *c = NULL;

		cJSON_AddStringToObject(st, "shird.conf", settings);
		sum->settings = 1;
		/* the custom proxy's password lives in its own 0600 file */
		if (conf_load_buffer(conf_path, settings, strlen(settings), &c, err) == 0 &&
		    c->proxy.password_file != NULL && *c->proxy.password_file) {
			char *pw = NULL;
			size_t pwlen = 0;

			if (atomicfile_read(c->proxy.password_file, 64 * 1024, &pw, &pwlen, err) == 0) {
				cJSON_AddStringToObject(st, "proxyPassword", pw);
				atomicfile_secret_free(pw, pwlen);
			}
		}
		conf_free(c);
		shir_error_clear(err);
	}
	/* the runtime data key (docs/ha.md), when the node has one */
	{
		char hex[2 * RTKEY_LEN + 1];

		if (rtkey_hex_get(state_dir, hex, err) == 0) {
			cJSON_AddStringToObject(o, "runtimeDataKey", hex);
			OPENSSL_cleanse(hex, sizeof hex);
		}
		shir_error_clear(err);
	}
	plain = cJSON_PrintUnformatted(o);
	if (plain == NULL) {
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = seal_with_password(password, log2n, SEAL_PURPOSE_BACKUP, plain, strlen(plain),
	    &sealed, &sealedlen, err)) != 0)
		goto out;
	if ((rc = atomicfile_write(file, sealed, sealedlen, 0600, err)) != 0)
		goto out;
	log_info("admin", "event=backup.created file=%s credentials=%d registered=%d",
	    log_q(file), sum->ncredentials, sum->registered);
out:
	credstore_json_free(o);
	credstore_secret_free(plain);
	credstore_secret_free(creds);
	free(reg);
	free(settings);
	free(sealed);
	credstore_free(cs);
	return rc;
}

/* The backup's shird.conf, with what belongs to this machine kept: its
 * node.name (two nodes of one runtime must not share a name), node.state_dir,
 * node.control_socket and log.file. */
static int
backup_settings(const struct conf *cur, const char *text, char **out, struct shir_error *err)
{
	struct confedit ed[4];

	*out = NULL;
	ed[0] = (struct confedit){ "node", "state_dir", cur->state_dir };
	ed[1] = (struct confedit){ "node", "control_socket", cur->control_socket };
	ed[2] = (struct confedit){ "node", "name", cur->node_name };	/* NULL: removed */
	ed[3] = (struct confedit){ "log", "file", cur->log_file };
	return confedit_apply("the backup's shird.conf", text, ed, 4, out, err);
}

/* The name this node goes by: its registration's, else shird.conf's, else
 * the host name (as node_name() decides). */
static char *
backup_local_name(const struct conf *cur, const char *state_dir)
{
	struct registration *reg = NULL;
	struct shir_error e;
	char host[256] = "";
	char *name;

	if (registration_load_public(state_dir, &reg, &e) == 0 && reg->node_name && *reg->node_name)
		name = strdup(reg->node_name);
	else if (cur->node_name != NULL && *cur->node_name)
		name = strdup(cur->node_name);
	else
		name = strdup(gethostname(host, sizeof host - 1) == 0 ? host : "");
	registration_free(reg);
	return name;
}

int
backup_import(const char *conf_path, const char *state_dir, const char *password,
    const char *file, struct backup_summary *sum, struct shir_error *err)
{
	struct credstore *cs = NULL;
	struct registration *reg = NULL;
	char *raw = NULL, *plain = NULL, *creds = NULL, *regtext = NULL, *settings = NULL;
	char *pwpath = NULL;
	cJSON *pwj = NULL;
	char path[PATH_MAX];
	size_t rawlen = 0, plainlen = 0;
	cJSON *o = NULL, *r, *c, *st, *rk;
	struct conf *cur = NULL;
	char *local_name = NULL;
	int rc;

	memset(sum, 0, sizeof *sum);
	rc = conf_load_file(conf_path, &cur, err);
	if (rc == SHIR_ENOENT)
		cur = conf_new_defaults(), rc = 0;
	if (rc != 0 || cur == NULL) {
		rc = rc ? rc : shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	if ((local_name = backup_local_name(cur, state_dir)) == NULL) {
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = atomicfile_read(file, BACKUP_FILE_MAX, &raw, &rawlen, err)) != 0)
		goto out;
	rc = seal_open_password(password, SEAL_PURPOSE_BACKUP, (const uint8_t *)raw, rawlen,
	    &plain, &plainlen, err);
	if (rc != 0) {
		char why[SHIR_ERROR_MSG_MAX / 2];

		snprintf(why, sizeof why, "%.1000s", err->msg);
		rc = shir_error_set(err, rc, "%s: %s; nothing was changed", file, why);
		goto out;
	}
	o = cJSON_ParseWithLength(plain, plainlen);
	r = cJSON_GetObjectItem(o, "registration");
	c = cJSON_GetObjectItem(o, "credentials");
	st = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "settings"), "shird.conf");
	if (!cJSON_IsObject(o) || cJSON_GetNumberValue(cJSON_GetObjectItem(o, "format")) != 1 ||
	    !cJSON_IsObject(c) || (r != NULL && !cJSON_IsNull(r) && !cJSON_IsObject(r)) ||
	    (st != NULL && !cJSON_IsString(st))) {
		rc = shir_error_set(err, SHIR_EPROTO, "%s decrypts but is not a shir backup of a "
		    "known format; nothing was changed", file);
		goto out;
	}
	/* Check every part before writing any. */
	if (st != NULL && (rc = backup_settings(cur, st->valuestring, &settings, err)) != 0)
		goto out;
	pwj = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "settings"), "proxyPassword");
	if (settings != NULL && cJSON_IsString(pwj)) {
		struct conf *nc = NULL;

		if ((rc = conf_load_buffer(conf_path, settings, strlen(settings), &nc, err)) != 0)
			goto out;
		if (nc->proxy.password_file != NULL && *nc->proxy.password_file)
			pwpath = strdup(nc->proxy.password_file);
		conf_free(nc);
		if (pwpath != NULL) {
			char *slash = strrchr(pwpath, '/');
			struct stat ds;

			*slash = '\0';
			if (stat(*pwpath ? pwpath : "/", &ds) != 0 || !S_ISDIR(ds.st_mode)) {
				rc = shir_error_set(err, SHIR_ENOENT, "the backup's proxy.password_file is in "
				    "%s, which does not exist here; nothing was changed", pwpath);
				goto out;
			}
			*slash = '/';
		}
	}
	if (cJSON_IsObject(r)) {
		/* the registration comes over, under this node's own name */
		if (*local_name)
			cJSON_ReplaceItemInObject(r, "nodeName", cJSON_CreateString(local_name));
		regtext = cJSON_Print(r);
		if (regtext == NULL) {
			rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
			goto out;
		}
		if ((rc = registration_parse(regtext, "the backup's registration", &reg, err)) != 0) {
			char why[SHIR_ERROR_MSG_MAX / 2];

			snprintf(why, sizeof why, "%.1000s", err->msg);
			rc = shir_error_set(err, rc, "%s; nothing was changed", why);
			goto out;
		}
		snprintf(sum->ir, sizeof sum->ir, "%s", reg->ir);
		sum->registered = 1;
	}
	rk = cJSON_GetObjectItem(o, "runtimeDataKey");
	if (rk != NULL && (!cJSON_IsString(rk) ||
	    (rc = rtkey_hex_check(state_dir, rk->valuestring, err)) != 0)) {
		char why[SHIR_ERROR_MSG_MAX / 2];

		snprintf(why, sizeof why, "%.1000s", cJSON_IsString(rk) ? err->msg :
		    "the runtime data key is malformed");
		rc = shir_error_set(err, rc ? rc : SHIR_EPROTO, "%s; nothing was changed", why);
		goto out;
	}
	creds = cJSON_PrintUnformatted(c);
	if (creds == NULL) {
		rc = shir_error_set(err, SHIR_ENOMEM, "out of memory");
		goto out;
	}
	/* Write: credentials (checked again inside, before it writes), then
	 * node.json, then shird.conf. */
	if ((rc = credstore_open(state_dir, &cs, err)) != 0 ||
	    (rc = credstore_import(cs, creds, err)) != 0)
		goto out;
	sum->ncredentials = cJSON_GetArraySize(cJSON_GetObjectItem(c, "credentials"));
	if (rk != NULL && (rc = rtkey_hex_put(state_dir, rk->valuestring, err)) != 0)
		goto out;
	if (regtext != NULL) {
		if ((rc = atomicfile_mkdir(state_dir, err)) != 0)
			goto out;
		snprintf(path, sizeof path, "%s/%s", state_dir, REGISTRATION_FILE);
		if ((rc = atomicfile_write(path, regtext, strlen(regtext), 0600, err)) != 0)
			goto out;
	}
	if (settings != NULL) {
		struct stat sb;
		mode_t mode = stat(conf_path, &sb) == 0 ? sb.st_mode & 07777 : 0644;

		if (pwpath != NULL && (rc = atomicfile_write(pwpath, pwj->valuestring,
		    strlen(pwj->valuestring), 0600, err)) != 0)
			goto out;
		if ((rc = atomicfile_write(conf_path, settings, strlen(settings), mode, err)) != 0)
			goto out;
		sum->settings = 1;
	}
	log_info("admin", "event=backup.imported file=%s credentials=%d registered=%d",
	    log_q(file), sum->ncredentials, sum->registered);
out:
	conf_free(cur);
	free(local_name);
	registration_free(reg);
	credstore_free(cs);
	credstore_json_free(o);
	seal_plain_free(plain, plainlen);
	credstore_secret_free(creds);
	free(regtext);
	free(settings);
	free(pwpath);
	free(raw);
	return rc;
}
