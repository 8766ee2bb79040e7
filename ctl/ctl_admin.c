/* shirctl: helpers of the admin commands, credentials and backups. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "common/atomicfile.h"
#include "node/admin/backup.h"
#include "node/conf.h"
#include "node/admin/credstore.h"
#include "ctl/ctl_admin.h"
#include "ctl/ctl_client.h"
#include "node/admin/registration.h"
#include "node/admin/seal.h"
#include "ctl/shirctl.h"

#define CTL_SECRET_MAX (64 * 1024)

const char *
ctl_admin_conf_path(const struct ctl_ctx *ctx)
{
	return ctx->shird_conf ? ctx->shird_conf : SHIRD_CONF_DEFAULT;
}

struct conf *
ctl_admin_conf(const struct ctl_ctx *ctx)
{
	struct shir_error err;
	struct conf *c = NULL;
	int rc = conf_load_file(ctl_admin_conf_path(ctx), &c, &err);

	if (rc == SHIR_ENOENT && ctx->shird_conf == NULL)
		return conf_new_defaults();
	if (rc != 0) {
		fprintf(stderr, "shirctl: %s\n", err.msg);
		return NULL;
	}
	return c;
}

int
ctl_admin_is(const char *arg, const char *a, const char *b)
{
	return (a && strcasecmp(arg, a) == 0) || (b && strcasecmp(arg, b) == 0);
}

static int
ctl_read_tty_line(FILE *tty, const char *prompt, char *buf, size_t len)
{
	struct termios old, noecho;
	int fd = fileno(tty), ok;

	/* echo off before the prompt, so nothing typed after it is ever shown */
	if (tcgetattr(fd, &old) != 0)
		return -1;
	noecho = old;
	noecho.c_lflag &= ~(tcflag_t)ECHO;
	noecho.c_lflag |= ECHONL;
	if (tcsetattr(fd, TCSAFLUSH, &noecho) != 0)
		return -1;
	fprintf(tty, "%s", prompt);
	fflush(tty);
	ok = fgets(buf, (int)len, tty) != NULL;
	tcsetattr(fd, TCSAFLUSH, &old);
	if (!ok)
		return -1;
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

int
ctl_read_secret(const char *prompt, int confirm, char **out, struct shir_error *err)
{
	char *buf = NULL, *again = NULL;
	size_t len = 0;
	int rc = 0;

	*out = NULL;
	buf = calloc(1, CTL_SECRET_MAX + 2);
	if (buf == NULL)
		return shir_error_set(err, SHIR_ENOMEM, "out of memory");
	if (isatty(STDIN_FILENO)) {
		FILE *tty = fopen("/dev/tty", "r+");

		if (tty == NULL) {
			rc = shir_error_set(err, SHIR_EIO, "cannot open the terminal to ask for the "
			    "secret; pipe it on standard input instead");
			goto out;
		}
		if (ctl_read_tty_line(tty, prompt, buf, CTL_SECRET_MAX + 1) != 0) {
			fclose(tty);
			rc = shir_error_set(err, SHIR_EIO, "no secret was entered");
			goto out;
		}
		if (confirm) {
			again = calloc(1, CTL_SECRET_MAX + 2);
			if (again == NULL || ctl_read_tty_line(tty, "Again: ", again,
			    CTL_SECRET_MAX + 1) != 0 || strcmp(buf, again) != 0) {
				fclose(tty);
				rc = shir_error_set(err, SHIR_EINVAL, "the two entries differ");
				goto out;
			}
		}
		fclose(tty);
		len = strlen(buf);
	} else {
		size_t n;

		while ((n = fread(buf + len, 1, CTL_SECRET_MAX + 1 - len, stdin)) > 0)
			len += n;
		if (len > CTL_SECRET_MAX) {
			rc = shir_error_set(err, SHIR_ETOOBIG, "the secret on standard input is longer "
			    "than %d bytes", CTL_SECRET_MAX);
			goto out;
		}
		if (len > 0 && buf[len - 1] == '\n')
			buf[--len] = '\0';
		if (len > 0 && buf[len - 1] == '\r')
			buf[--len] = '\0';
		if (memchr(buf, '\0', len) != NULL) {
			rc = shir_error_set(err, SHIR_EINVAL, "the secret contains a NUL byte");
			goto out;
		}
	}
	if (len == 0) {
		rc = shir_error_set(err, SHIR_EINVAL, "the secret is empty: type it at the prompt "
		    "or pipe it on standard input (never on the command line)");
		goto out;
	}
	*out = buf;
	buf = NULL;
out:
	if (buf != NULL)
		atomicfile_secret_free(buf, CTL_SECRET_MAX + 2);
	if (again != NULL)
		atomicfile_secret_free(again, CTL_SECRET_MAX + 2);
	return rc;
}

int
ctl_shird_running(const struct ctl_ctx *ctx)
{
	struct ctl_response resp;
	struct shir_error err;

	if (ctl_client_request(ctx->socket, "GET", "/v1/node", NULL, &resp, &err) != 0)
		return 0;
	ctl_response_clear(&resp);
	return 1;
}

static const char *
ctl_admin_errmsg(const char *body)
{
	static char msg[1024];
	cJSON *o = cJSON_Parse(body), *m;

	m = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "error"), "message");
	snprintf(msg, sizeof msg, "%s", cJSON_IsString(m) ? m->valuestring : body);
	cJSON_Delete(o);
	return msg;
}

int
ctl_admin_call(const struct ctl_ctx *ctx, const char *method, const char *path,
    const char *body, struct ctl_response *resp)
{
	struct shir_error err;
	int rc = ctl_client_request(ctx->socket, method, path, body, resp, &err);

	if (rc == SHIR_ENOENT || rc == SHIR_ECONNREFUSED)
		return 2;
	if (rc != 0) {
		fprintf(stderr, "shirctl: %s\n", err.msg);
		return 1;
	}
	if (resp->status < 200 || resp->status > 299) {
		fprintf(stderr, "shirctl: shird answered %ld: %s\n", resp->status,
		    ctl_admin_errmsg(resp->body));
		ctl_response_clear(resp);
		return 1;
	}
	return 0;
}

int
ctl_admin_apply(const struct ctl_ctx *ctx, const char *path)
{
	struct ctl_response resp;
	int rc = ctl_admin_call(ctx, "POST", path, "{}", &resp);

	if (rc == 2) {
		printf("shird is not running; the change applies when it starts\n");
		return 0;
	}
	if (rc == 0) {
		printf("applied to the running shird (reloaded, no restart)\n");
		ctl_response_clear(&resp);
	} else {
		fprintf(stderr, "shirctl: the change is saved, but the running shird refused to "
		    "reload it; it keeps the old settings\n");
	}
	return rc;
}

/* --- credentials ----------------------------------------------------------- */

static int
ctl_creds_local(const struct ctl_ctx *ctx, struct credstore **cs, char **state_dir)
{
	struct conf *c = ctl_admin_conf(ctx);
	struct shir_error err;

	*cs = NULL;
	if (c == NULL)
		return 1;
	if (credstore_open(c->state_dir, cs, &err) != 0) {
		fprintf(stderr, "shirctl: %s\n", err.msg);
		conf_free(c);
		return 1;
	}
	*state_dir = strdup(c->state_dir);
	conf_free(c);
	return 0;
}

static void
ctl_print_time(time_t t)
{
	char ts[32];
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("%s", ts);
}

static int
ctl_creds_list(const struct ctl_ctx *ctx)
{
	struct ctl_response resp;
	struct credstore *cs = NULL;
	struct credstore_info *v = NULL;
	struct shir_error err;
	char *dir = NULL;
	uint64_t ver = 0;
	size_t n = 0, i;
	cJSON *o, *e;
	int rc = ctl_admin_call(ctx, "GET", "/v1/credentials", NULL, &resp);

	if (rc == 1)
		return 1;
	if (rc == 0) {
		o = cJSON_Parse(resp.body);
		if (ctx->json) {
			printf("%s\n", resp.body);
		} else {
			printf("credentials version %.0f\n",
			    cJSON_GetNumberValue(cJSON_GetObjectItem(o, "version")));
			cJSON_ArrayForEach(e, cJSON_GetObjectItem(o, "credentials")) {
				printf("  %-32s version %-5.0f updated %s\n",
				    cJSON_GetStringValue(cJSON_GetObjectItem(e, "name")),
				    cJSON_GetNumberValue(cJSON_GetObjectItem(e, "version")),
				    cJSON_GetStringValue(cJSON_GetObjectItem(e, "updated")));
			}
		}
		cJSON_Delete(o);
		ctl_response_clear(&resp);
		return 0;
	}
	/* shird is not running: read the store directly */
	if (ctl_creds_local(ctx, &cs, &dir) != 0)
		return 1;
	if (credstore_list(cs, 0, &v, &n, &err) != 0 || credstore_version(cs, &ver, &err) != 0) {
		fprintf(stderr, "shirctl: %s\n", err.msg);
		rc = 1;
		goto out;
	}
	printf("credentials version %llu (read from %s; shird is not running)\n",
	    (unsigned long long)ver, dir);
	for (i = 0; i < n; i++) {
		printf("  %-32s version %-5llu updated ", v[i].name, (unsigned long long)v[i].version);
		ctl_print_time(v[i].updated);
		printf("\n");
	}
	rc = 0;
out:
	free(v);
	free(dir);
	credstore_free(cs);
	return rc;
}

static int
ctl_creds_change(const struct ctl_ctx *ctx, const char *name, int put)
{
	struct ctl_response resp;
	struct credstore *cs = NULL;
	struct shir_error err;
	char *value = NULL, *body = NULL, path[256], prompt[256], *dir = NULL;
	cJSON *o = NULL;
	int rc;

	if (credstore_name_check(name, 0, &err) != 0) {
		fprintf(stderr, "shirctl: %s\n", err.msg);
		return 2;
	}
	if (put) {
		snprintf(prompt, sizeof prompt, "Value of credential %s: ", name);
		if (ctl_read_secret(prompt, 1, &value, &err) != 0) {
			fprintf(stderr, "shirctl: %s\n", err.msg);
			return 1;
		}
		o = cJSON_CreateObject();
		if (o == NULL || cJSON_AddStringToObject(o, "value", value) == NULL ||
		    (body = cJSON_PrintUnformatted(o)) == NULL) {
			fprintf(stderr, "shirctl: out of memory\n");
			rc = 1;
			goto out;
		}
	}
	snprintf(path, sizeof path, "/v1/credentials/%s", name);
	rc = ctl_admin_call(ctx, put ? "PUT" : "DELETE", path, body, &resp);
	if (rc == 0) {
		printf("%s credential %s in the running shird\n", put ? "stored" : "deleted", name);
		ctl_response_clear(&resp);
		goto out;
	}
	if (rc == 1)
		goto out;
	if (ctl_creds_local(ctx, &cs, &dir) != 0) {
		rc = 1;
		goto out;
	}
	rc = put ? credstore_put(cs, name, value, &err) : credstore_delete(cs, name, &err);
	if (rc != 0) {
		fprintf(stderr, "shirctl: %s\n", err.msg);
		rc = 1;
		goto out;
	}
	printf("%s credential %s in %s/credentials (shird is not running)\n",
	    put ? "stored" : "deleted", name, dir);
out:
	if (o != NULL) {
		cJSON *v = cJSON_GetObjectItem(o, "value");

		if (v != NULL)
			OPENSSL_cleanse(v->valuestring, strlen(v->valuestring));
	}
	cJSON_Delete(o);
	credstore_secret_free(body);
	credstore_secret_free(value);
	credstore_free(cs);
	free(dir);
	return rc;
}

int
ctl_cmd_credentials(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const char usage[] = "credentials list [--json] | set NAME | delete NAME";

	if (argc == 3 && strcmp(argv[1], "list") == 0 && strcmp(argv[2], "--json") == 0) {
		ctx->json = 1;
		return ctl_creds_list(ctx);
	}
	if (argc == 2 && strcmp(argv[1], "list") == 0)
		return ctl_creds_list(ctx);
	if (argc == 3 && strcmp(argv[1], "set") == 0)
		return ctl_creds_change(ctx, argv[2], 1);
	if (argc == 3 && strcmp(argv[1], "delete") == 0)
		return ctl_creds_change(ctx, argv[2], 0);
	if (argc >= 3 && strcmp(argv[1], "set") == 0)
		fprintf(stderr, "shirctl: the value is never taken from the command line: type it "
		    "at the prompt or pipe it on standard input\n");
	ctl_die_usage("credentials", usage);
	return 2;
}

/* --- backups --------------------------------------------------------------- */

int
ctl_cmd_backup(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const char usage[] = "backup create FILE | backup import FILE "
	    "(also -gbf FILE, -ibf FILE)";
	struct backup_summary sum;
	struct shir_error err;
	struct conf *c = NULL;
	const char *file;
	char *pw = NULL;
	int create, rc;

	if (ctl_admin_is(argv[0], "-gbf", "-GenerateBackupFile") && argc == 2)
		create = 1, file = argv[1];
	else if (ctl_admin_is(argv[0], "-ibf", "-ImportBackupFile") && argc == 2)
		create = 0, file = argv[1];
	else if (strcmp(argv[0], "backup") == 0 && argc == 3 &&
	    (strcmp(argv[1], "create") == 0 || strcmp(argv[1], "import") == 0))
		create = strcmp(argv[1], "create") == 0, file = argv[2];
	else {
		if (argc > (strcmp(argv[0], "backup") == 0 ? 3 : 2))	/* -gbf FILE PASSWORD */
			fprintf(stderr, "shirctl: the password is never taken from the command line: "
			    "type it at the prompt or pipe it on standard input\n");
		ctl_die_usage("backup", usage);
		return 2;
	}
	if ((c = ctl_admin_conf(ctx)) == NULL)
		return 1;
	if (ctl_read_secret(create ? "Backup password: " : "Password of the backup: ", create,
	    &pw, &err) != 0) {
		fprintf(stderr, "shirctl: %s\n", err.msg);
		conf_free(c);
		return 1;
	}
	if (create)
		rc = backup_create(ctl_admin_conf_path(ctx), c->state_dir, pw, SEAL_SCRYPT_LOG2N, file,
		    &sum, &err);
	else
		rc = backup_import(ctl_admin_conf_path(ctx), c->state_dir, pw, file, &sum, &err);
	credstore_secret_free(pw);
	conf_free(c);
	if (rc != 0) {
		fprintf(stderr, "shirctl: %s\n", err.msg);
		return 1;
	}
	printf("%s %s: %s%s, %d credential%s%s\n", create ? "wrote" : "imported", file,
	    sum.registered ? "registration of IR " : "no registration", sum.ir,
	    sum.ncredentials, sum.ncredentials == 1 ? "" : "s",
	    sum.settings ? ", settings (shird.conf)" : "");
	if (!create)
		return ctl_admin_apply(ctx, "/v1/node/registration");
	return 0;
}
