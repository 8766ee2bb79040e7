/* shirctl: the rest of dmgcmd's actions, under its flags (case-insensitive)
 * and as readable subcommands: remote access, start/stop/restart, local
 * machine access, local folder path validation and allowed folders, the
 * service account, auto-update, and `proxy set`. Settings are changed in
 * shird.conf in place (confedit) and applied with a reload. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/atomicfile.h"
#include "node/conf.h"
#include "node/admin/confedit.h"
#include "node/admin/credstore.h"
#include "ctl/ctl_admin.h"
#include "ctl/ctl_client.h"
#include "ctl/shirctl.h"
#include "common/jsonutil.h"

/* Edits shird.conf, then reloads a running shird. */
static int
ctl_dmg_edit(struct ctl_ctx *ctx, const struct confedit *ed, size_t n)
{
	struct shir_error err;
	const char *path = ctl_admin_conf_path(ctx);
	size_t i;

	if (confedit_file(path, ed, n, &err) != 0) {
		fprintf(stderr, "shirctl: %s\n", err.msg);
		return 1;
	}
	for (i = 0; i < n; i++) {
		if (ed[i].value)
			printf("%s: [%s] %s = %s\n", path, ed[i].section, ed[i].key, ed[i].value);
		else
			printf("%s: [%s] %s removed\n", path, ed[i].section, ed[i].key);
	}
	return ctl_admin_apply(ctx, "/v1/node/reload");
}

static int
ctl_dmg_port(const char *s, int *port)
{
	char *e;
	long v;

	errno = 0;
	v = strtol(s, &e, 10);
	if (errno || *e || v < 1 || v > 65535) {
		fprintf(stderr, "shirctl: %s is not a TCP port (1 to 65535)\n", s);
		return -1;
	}
	*port = (int)v;
	return 0;
}

/* --- remote access ------------------------------------------------------- */

static int
ctl_dmg_check_cert(const char *path)
{
	FILE *f;
	X509 *x;
	EVP_PKEY *k;
	int ok;

	if (path[0] != '/') {
		fprintf(stderr, "shirctl: the certificate must be an absolute path, not %s\n", path);
		return -1;
	}
	f = fopen(path, "r");
	if (f == NULL) {
		fprintf(stderr, "shirctl: cannot read the certificate %s: %s\n", path,
		    strerror(errno));
		return -1;
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	if (x == NULL) {
		fclose(f);
		fprintf(stderr, "shirctl: %s holds no PEM certificate (BEGIN CERTIFICATE); dmgcmd "
		    "takes a thumbprint from the Windows store, shir takes a PEM file\n", path);
		return -1;
	}
	/* shird presents it on the node-to-node port: its key must be there too */
	rewind(f);
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	ok = k != NULL && X509_check_private_key(x, k) == 1;
	EVP_PKEY_free(k);
	X509_free(x);
	if (!ok) {
		fprintf(stderr, "shirctl: %s holds no private key matching its certificate; put the "
		    "certificate and its unencrypted key in one PEM file (mode 0600)\n", path);
		return -1;
	}
	return 0;
}

int
ctl_cmd_remote_access(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const char usage[] = "remote-access enable --port PORT [--cert FILE] | disable | "
	    "show | check HOST:PORT (also -era PORT [CERT], -dra)";
	const char *cert = NULL, *port_s = NULL;
	char portbuf[16];
	int enable, port = 0, i, rc;

	if ((ctl_admin_is(argv[0], "-era", "-EnableRemoteAccess") ||
	    ctl_admin_is(argv[0], "-eraic", "-EnableRemoteAccessInContainer")) &&
	    (argc == 2 || argc == 3)) {
		enable = 1;
		port_s = argv[1];
		cert = argc == 3 ? argv[2] : NULL;
	} else if (ctl_admin_is(argv[0], "-dra", "-DisableRemoteAccess") && argc == 1) {
		enable = 0;
	} else if (argc >= 2 && strcmp(argv[1], "enable") == 0) {
		enable = 1;
		for (i = 2; i < argc; i++) {
			if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
				port_s = argv[++i];
			else if (strcmp(argv[i], "--cert") == 0 && i + 1 < argc)
				cert = argv[++i];
			else
				ctl_die_usage("remote-access", usage);
		}
		if (port_s == NULL)
			ctl_die_usage("remote-access", usage);
	} else if (argc == 2 && strcmp(argv[1], "disable") == 0) {
		enable = 0;
	} else if (argc == 2 && strcmp(argv[1], "show") == 0) {
		struct conf *c = ctl_admin_conf(ctx);

		if (c == NULL)
			return 1;
		printf("remote access: %s, port %d%s%s\n", c->remote_access ? "enabled" : "disabled",
		    c->remote_access_port, c->remote_access_cert ? ", certificate " : "",
		    c->remote_access_cert ? c->remote_access_cert : "");
		printf("shird listens on the port once the node has the runtime data key; "
		    "'shirctl cluster status' shows the links and the sync path\n");
		conf_free(c);
		return 0;
	} else if (argc == 3 && strcmp(argv[1], "check") == 0) {
		struct conf *c = ctl_admin_conf(ctx);

		if (c == NULL)
			return 1;
		rc = ctl_remote_access_check(c, argv[2]);
		conf_free(c);
		return rc;
	} else {
		ctl_die_usage("remote-access", usage);
		return 2;
	}
	if (enable) {
		struct confedit ed[3] = {
			{ "node", "remote_access", "true" },
			{ "node", "remote_access_port", portbuf },
			{ "node", "remote_access_cert", cert },
		};

		if (ctl_dmg_port(port_s, &port) != 0 || (cert && ctl_dmg_check_cert(cert) != 0))
			return 1;
		snprintf(portbuf, sizeof portbuf, "%d", port);
		rc = ctl_dmg_edit(ctx, ed, cert ? 3 : 2);
	} else {
		struct confedit ed[1] = { { "node", "remote_access", "false" } };

		rc = ctl_dmg_edit(ctx, ed, 1);
	}
	if (rc == 0)
		printf("note: a running shird %s the node-to-node port on reload (credential sync "
		    "goes direct between nodes that reach each other, through the relay "
		    "otherwise)\n", enable ? "opens" : "closes");
	return rc;
}

/* --- local machine access, folder validation, allowed folders -------------- */

static int
ctl_dmg_bool(struct ctl_ctx *ctx, int argc, char **argv, const char *on_a, const char *on_b,
    const char *off_a, const char *off_b, const char *key, const char *usage, const char *what)
{
	struct confedit ed = { "security", key, NULL };
	int on;

	if (argc == 1 && ctl_admin_is(argv[0], on_a, on_b))
		on = 1;
	else if (argc == 1 && ctl_admin_is(argv[0], off_a, off_b))
		on = 0;
	else if (argc == 2 && strcmp(argv[1], "enable") == 0)
		on = 1;
	else if (argc == 2 && strcmp(argv[1], "disable") == 0)
		on = 0;
	else if (argc == 2 && strcmp(argv[1], "show") == 0) {
		struct conf *c = ctl_admin_conf(ctx);

		if (c == NULL)
			return 1;
		on = strcmp(key, "local_machine_access") == 0 ? c->local_machine_access
							      : c->local_folder_path_validation;
		printf("%s: %s\n", what, on ? "enabled" : "disabled");
		conf_free(c);
		return 0;
	} else {
		ctl_die_usage(argv[0], usage);
		return 2;
	}
	ed.value = on ? "true" : "false";
	return ctl_dmg_edit(ctx, &ed, 1);
}

int
ctl_cmd_local_machine_access(struct ctl_ctx *ctx, int argc, char **argv)
{
	return ctl_dmg_bool(ctx, argc, argv, "-elma", "-EnableLocalMachineAccess", "-dlma",
	    "-DisableLocalMachineAccess", "local_machine_access",
	    "local-machine-access enable|disable|show (also -elma, -dlma)", "local machine access");
}

int
ctl_cmd_local_folder_path_validation(struct ctl_ctx *ctx, int argc, char **argv)
{
	int rc = ctl_dmg_bool(ctx, argc, argv, "-EnableLocalFolderPathValidation", NULL,
	    "-DisableLocalFolderPathValidation", NULL, "local_folder_path_validation",
	    "local-folder-path-validation enable|disable|show", "local folder path validation");

	if (rc == 0 && (ctl_admin_is(argv[0], "-DisableLocalFolderPathValidation", NULL) ||
	    (argc == 2 && strcmp(argv[1], "disable") == 0)))
		printf("warning: file stores may now use any path shird's user can read\n");
	return rc;
}

int
ctl_cmd_allowed_folders(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const char usage[] = "allowed-folders list | add DIR | remove DIR | set DIR[:DIR...]";
	struct confedit ed = { "security", "allowed_folders", NULL };
	struct conf *c = NULL;
	char cur[4096] = "", out[4096] = "";
	const char *s;
	int rc;

	if (argc < 2 || (strcmp(argv[1], "list") == 0 ? argc != 2 : argc != 3))
		ctl_die_usage("allowed-folders", usage);
	if ((c = ctl_admin_conf(ctx)) == NULL)
		return 1;
	snprintf(cur, sizeof cur, "%s", c->allowed_folders ? c->allowed_folders : "");
	if (strcmp(argv[1], "list") == 0) {
		printf("local folder path validation: %s\n",
		    c->local_folder_path_validation ? "enabled" : "disabled");
		for (s = cur; *s;) {
			size_t l = strcspn(s, ":");

			if (l)
				printf("  %.*s\n", (int)l, s);
			s += l + (s[l] == ':');
		}
		conf_free(c);
		return 0;
	}
	conf_free(c);
	if (strcmp(argv[1], "set") == 0) {
		snprintf(out, sizeof out, "%s", argv[2]);
	} else if (strcmp(argv[1], "add") == 0 || strcmp(argv[1], "remove") == 0) {
		int add = argv[1][0] == 'a', found = 0;
		size_t dl = strlen(argv[2]);

		if (argv[2][0] != '/' || strchr(argv[2], ':') != NULL) {
			fprintf(stderr, "shirctl: %s: a folder is an absolute path without ':'\n",
			    argv[2]);
			return 1;
		}
		while (dl > 1 && argv[2][dl - 1] == '/')
			argv[2][--dl] = '\0';
		for (s = cur; *s;) {
			size_t l = strcspn(s, ":");

			if (l == dl && strncmp(s, argv[2], l) == 0)
				found = 1;
			else if (l)
				snprintf(out + strlen(out), sizeof out - strlen(out), "%s%.*s",
				    *out ? ":" : "", (int)l, s);
			s += l + (s[l] == ':');
		}
		if (add)
			snprintf(out + strlen(out), sizeof out - strlen(out), "%s%s", *out ? ":" : "",
			    argv[2]);
		else if (!found) {
			fprintf(stderr, "shirctl: %s is not an allowed folder\n", argv[2]);
			return 1;
		}
	} else {
		ctl_die_usage("allowed-folders", usage);
	}
	ed.value = out;
	rc = ctl_dmg_edit(ctx, &ed, 1);
	return rc;
}

/* --- start, stop, restart -------------------------------------------------- */

static int
ctl_dmg_systemd(void)
{
	const char *force = getenv("SHIRCTL_SERVICE_MANAGER");

	if (force != NULL)
		return strcmp(force, "systemd") == 0;
	return access("/run/systemd/system", F_OK) == 0;
}

static int
ctl_dmg_systemctl(const char *verb)
{
	pid_t pid;
	int st;

	printf("systemctl %s shird.service\n", verb);
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		execlp("systemctl", "systemctl", verb, "shird.service", (char *)NULL);
		fprintf(stderr, "shirctl: cannot run systemctl: %s\n", strerror(errno));
		_exit(127);
	}
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return 1;
	return 0;
}

/* The pid of the running shird (from GET /v1/node), or 0. */
static long
ctl_dmg_pid(const struct ctl_ctx *ctx)
{
	struct ctl_response resp;
	struct shir_error err;
	cJSON *o;
	long pid = 0;

	if (ctl_client_request(ctx->socket, "GET", "/v1/node", NULL, &resp, &err) != 0)
		return 0;
	o = cJSON_Parse(resp.body);
	{
		long long n;

		if (json_whole(cJSON_GetObjectItem(o, "pid"), 1, 1 << 30, &n) == 0)
			pid = (long)n;
	}
	cJSON_Delete(o);
	ctl_response_clear(&resp);
	return pid > 0 ? pid : 0;
}

static int
ctl_dmg_wait(const struct ctl_ctx *ctx, int running, int seconds)
{
	struct timespec ts = { 0, 50 * 1000 * 1000 };
	time_t end = time(NULL) + seconds;

	while (time(NULL) <= end) {
		if (ctl_shird_running(ctx) == running)
			return 0;
		nanosleep(&ts, NULL);
	}
	return -1;
}

static int
ctl_dmg_stop(struct ctl_ctx *ctx)
{
	struct conf *c = ctl_admin_conf(ctx);
	long pid = ctl_dmg_pid(ctx);
	int wait_s = (c ? c->shutdown_timeout : 10) + 10;

	conf_free(c);
	if (pid == 0) {
		printf("shird is not running\n");
		return 0;
	}
	if (kill((pid_t)pid, SIGTERM) != 0) {
		fprintf(stderr, "shirctl: cannot signal shird (pid %ld): %s\n", pid, strerror(errno));
		return 1;
	}
	printf("sent SIGTERM to shird (pid %ld); waiting for it to drain\n", pid);
	if (ctl_dmg_wait(ctx, 0, wait_s) != 0) {
		fprintf(stderr, "shirctl: shird (pid %ld) still answers after %d s\n", pid, wait_s);
		return 1;
	}
	printf("shird stopped\n");
	return 0;
}

static const char *
ctl_dmg_shird_path(char *buf, size_t len)
{
	const char *env = getenv("SHIRD");
	char self[PATH_MAX - 32];
	ssize_t n;

	if (env != NULL && *env)
		return env;
	n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n > 0) {
		char *slash;

		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash != NULL) {
			*slash = '\0';
			snprintf(buf, len, "%s/shird", self);
			if (access(buf, X_OK) == 0)
				return buf;
			snprintf(buf, len, "%s/../sbin/shird", self);
			if (access(buf, X_OK) == 0)
				return buf;
		}
	}
	return "/usr/sbin/shird";
}

static int
ctl_dmg_start(struct ctl_ctx *ctx)
{
	struct conf *c = NULL;
	char bin[PATH_MAX], logpath[PATH_MAX] = "/dev/null";
	const char *shird, *conf = ctl_admin_conf_path(ctx);
	pid_t pid;
	int st;

	if (ctl_shird_running(ctx)) {
		printf("shird is already running\n");
		return 0;
	}
	if ((c = ctl_admin_conf(ctx)) == NULL)
		return 1;
	if (c->log_file == NULL || strcmp(c->log_file, "-") == 0)
		snprintf(logpath, sizeof logpath, "%s/shird.log", c->state_dir);
	shird = ctl_dmg_shird_path(bin, sizeof bin);
	pid = fork();
	if (pid < 0) {
		conf_free(c);
		return 1;
	}
	if (pid == 0) {
		/* detach twice so shird is nobody's child here */
		int fd;

		setsid();
		if (fork() != 0)
			_exit(0);
		fd = open("/dev/null", O_RDWR);
		if (fd >= 0)
			dup2(fd, 0);
		if (strcmp(logpath, "/dev/null") != 0) {
			atomicfile_mkdir(c->state_dir, NULL);
			fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		}
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(shird, "shird", "-f", conf, (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	printf("started %s -f %s%s%s\n", shird, conf,
	    strcmp(logpath, "/dev/null") ? "; its log goes to " : "",
	    strcmp(logpath, "/dev/null") ? logpath : "");
	conf_free(c);
	if (ctl_dmg_wait(ctx, 1, 20) != 0) {
		fprintf(stderr, "shirctl: shird did not open its control socket within 20 s; see its "
		    "log (%s)\n", logpath);
		return 1;
	}
	printf("shird is running (pid %ld)\n", ctl_dmg_pid(ctx));
	return 0;
}

int
ctl_cmd_service(struct ctl_ctx *ctx, int argc, char **argv)
{
	const char *verb = argv[0];
	int rc;

	if (argc != 1)
		ctl_die_usage(argv[0], "start|stop|restart (also -s, -t, -r)");
	if (ctl_admin_is(verb, "-s", "-Start"))
		verb = "start";
	else if (ctl_admin_is(verb, "-t", "-Stop"))
		verb = "stop";
	else if (ctl_admin_is(verb, "-r", "-Restart"))
		verb = "restart";
	if (ctl_dmg_systemd())
		return ctl_dmg_systemctl(verb);
	if (strcmp(verb, "stop") == 0)
		return ctl_dmg_stop(ctx);
	if (strcmp(verb, "start") == 0)
		return ctl_dmg_start(ctx);
	rc = ctl_dmg_stop(ctx);
	return rc ? rc : ctl_dmg_start(ctx);
}

/* --- explanations ---------------------------------------------------------- */

int
ctl_cmd_service_account(struct ctl_ctx *ctx, int argc, char **argv)
{
	printf("shird runs as the user and group of its systemd unit (User=shir, Group=shir).\n"
	    "shirctl does not change it and never takes a password: Linux services need none.\n"
	    "To run shird as another user (dmgcmd -SwitchServiceAccount):\n"
	    "  1. systemctl edit shird      and add:\n"
	    "       [Service]\n"
	    "       User=NEWUSER\n"
	    "       Group=NEWGROUP\n"
	    "  2. chown -R NEWUSER:NEWGROUP /var/lib/shir   (state_dir: machine key, "
	    "credentials, node.json)\n"
	    "  3. give NEWUSER read access to /etc/shir and to the data it must reach\n"
	    "  4. systemctl restart shird\n"
	    "Kerberos (a domain account on Windows): put the keytab in the unit with\n"
	    "  Environment=KRB5_CLIENT_KTNAME=/etc/shir/shird.keytab\n");
	return 0;
}

int
ctl_cmd_auto_update(struct ctl_ctx *ctx, int argc, char **argv)
{
	printf("shir has no update service of its own (dmgcmd -TurnOnAutoUpdate, "
	    "-TurnOffAutoUpdate,\n-StartUpgradeService, -StopUpgradeService): updates come from "
	    "the package manager.\n"
	    "  on Debian/Ubuntu: apt-get install --only-upgrade shir\n"
	    "  automatic: apt-get install unattended-upgrades, and add the shir repository to\n"
	    "             Unattended-Upgrade::Origins-Pattern in "
	    "/etc/apt/apt.conf.d/50unattended-upgrades\n"
	    "  to hold the version: apt-mark hold shir (apt-mark unhold shir to release it)\n"
	    "After an upgrade, `shirctl restart` (or systemctl restart shird) runs the new "
	    "version.\n");
	return 0;
}

/* --- proxy set --------------------------------------------------------------- */

int
ctl_cmd_proxy_set(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const char usage[] = "proxy set none | system [--user USER [--auth A]] | custom "
	    "--address HOST --port PORT [--user USER [--auth A]] | pac URL [--user USER [--auth A]] "
	    "(A: any|basic|digest|ntlm|negotiate; the password from stdin or a prompt)";
	struct confedit ed[8];
	struct shir_error err;
	struct conf *c = NULL;
	const char *mode, *addr = NULL, *port_s = NULL, *user = NULL, *auth = NULL, *pac = NULL;
	char portbuf[16], pwpath[PATH_MAX], *pw = NULL;
	size_t n = 0;
	int i, port, rc;

	/* argv: "proxy" "set" MODE ... (or "proxy-set" MODE ...) */
	i = strcmp(argv[0], "proxy") == 0 ? 2 : 1;
	if (argc <= i)
		ctl_die_usage("proxy set", usage);
	mode = argv[i++];
	if (strcmp(mode, "pac") == 0) {
		if (i >= argc || argv[i][0] == '-')
			ctl_die_usage("proxy set", usage);
		pac = argv[i++];
		if (strncasecmp(pac, "http://", 7) != 0 && strncasecmp(pac, "https://", 8) != 0 &&
		    strncasecmp(pac, "file:", 5) != 0) {
			fprintf(stderr, "shirctl: %s: a PAC file URL starts with http://, https:// "
			    "or file://\n", pac);
			return 2;
		}
	}
	for (; i < argc; i++) {
		if (strcmp(argv[i], "--address") == 0 && i + 1 < argc)
			addr = argv[++i];
		else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
			port_s = argv[++i];
		else if (strcmp(argv[i], "--user") == 0 && i + 1 < argc)
			user = argv[++i];
		else if (strcmp(argv[i], "--auth") == 0 && i + 1 < argc)
			auth = argv[++i];
		else {
			if (strcmp(argv[i], "--password") == 0)
				fprintf(stderr, "shirctl: the password is never taken from the command "
				    "line: type it at the prompt or pipe it on standard input\n");
			ctl_die_usage("proxy set", usage);
		}
	}
	if (strcmp(mode, "none") == 0) {
		if (addr || port_s || user || auth)
			ctl_die_usage("proxy set", usage);
		ed[n++] = (struct confedit){ "proxy", "mode", mode };
		return ctl_dmg_edit(ctx, ed, n);
	}
	if (strcmp(mode, "system") == 0) {
		/* the proxy comes from the .NET files; a user (and its password)
		 * may come from here, for a proxy that wants one the files cannot
		 * give (they only say useDefaultCredentials) */
		if (addr || port_s || (auth && !user))
			ctl_die_usage("proxy set", usage);
		ed[n++] = (struct confedit){ "proxy", "mode", "system" };
	} else if (pac != NULL) {
		/* custom mode with a PAC file instead of a fixed proxy */
		if (addr || port_s)
			ctl_die_usage("proxy set", usage);
		ed[n++] = (struct confedit){ "proxy", "mode", "custom" };
		ed[n++] = (struct confedit){ "proxy", "pac_url", pac };
		ed[n++] = (struct confedit){ "proxy", "address", NULL };
	} else {
		if (strcmp(mode, "custom") != 0 || addr == NULL || port_s == NULL)
			ctl_die_usage("proxy set", usage);
		if (ctl_dmg_port(port_s, &port) != 0)
			return 1;
		snprintf(portbuf, sizeof portbuf, "%d", port);
		ed[n++] = (struct confedit){ "proxy", "mode", "custom" };
		ed[n++] = (struct confedit){ "proxy", "address", addr };
		ed[n++] = (struct confedit){ "proxy", "port", portbuf };
		ed[n++] = (struct confedit){ "proxy", "pac_url", NULL };
	}
	ed[n++] = (struct confedit){ "proxy", "user", user };
	ed[n++] = (struct confedit){ "proxy", "auth", auth ? auth : "any" };
	if (user != NULL) {
		/* The password goes to the 0600 file named by proxy.password_file
		 * (state_dir/proxy.password when unset), never into shird.conf. */
		if ((c = ctl_admin_conf(ctx)) == NULL)
			return 1;
		if (c->proxy.password_file && *c->proxy.password_file)
			snprintf(pwpath, sizeof pwpath, "%s", c->proxy.password_file);
		else
			snprintf(pwpath, sizeof pwpath, "%s/proxy.password", c->state_dir);
		if (ctl_read_secret("Proxy password: ", 1, &pw, &err) != 0 ||
		    (c->proxy.password_file == NULL && atomicfile_mkdir(c->state_dir, &err) != 0) ||
		    atomicfile_write(pwpath, pw, strlen(pw), 0600, &err) != 0) {
			fprintf(stderr, "shirctl: %s\n", err.msg);
			credstore_secret_free(pw);
			conf_free(c);
			return 1;
		}
		credstore_secret_free(pw);
		conf_free(c);
		printf("wrote the proxy password to %s (mode 0600)\n", pwpath);
		ed[n++] = (struct confedit){ "proxy", "password_file", pwpath };
	} else {
		ed[n++] = (struct confedit){ "proxy", "password_file", NULL };
	}
	rc = ctl_dmg_edit(ctx, ed, n);
	return rc;
}
