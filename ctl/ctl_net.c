/* shirctl service-urls: the hosts and ports this node needs (relay endpoint,
 * rendezvous hosts it has seen, proxy), and with --resolve the outbound
 * allowlist rules for nftables or iptables. */
#include "config.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "node/conf.h"
#include "ctl/ctl_admin.h"
#include "ctl/ctl_client.h"
#include "proxy/proxy.h"
#include "node/admin/registration.h"
#include "node/admin/servicehosts.h"
#include "ctl/shirctl.h"

#define SVC_MAX (SERVICEHOSTS_MAX + 8)
#define SVC_ADDRS 16

struct svc {
	char host[256];
	int port;
	char purpose[160];
	char via[512];		/* "" = direct */
	int naddrs;
	int fam[SVC_ADDRS];
	char addr[SVC_ADDRS][INET6_ADDRSTRLEN];
	char error[256];	/* resolution failure */
	int dns;		/* a name server: udp and tcp */
};

struct svc_list {
	struct svc v[SVC_MAX];
	int n;
};

static struct svc *
svc_add(struct svc_list *l, const char *host, int port, const char *purpose, const char *via)
{
	int i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->v[i].host, host) == 0 && l->v[i].port == port)
			return &l->v[i];
	if (l->n == SVC_MAX)
		return NULL;
	memset(&l->v[l->n], 0, sizeof l->v[l->n]);
	snprintf(l->v[l->n].host, sizeof l->v[l->n].host, "%s", host);
	l->v[l->n].port = port;
	snprintf(l->v[l->n].purpose, sizeof l->v[l->n].purpose, "%s", purpose);
	snprintf(l->v[l->n].via, sizeof l->v[l->n].via, "%s", via ? via : "");
	return &l->v[l->n++];
}

/* Adds a destination the node reaches by URL, and the proxy it goes through. */
static void
svc_add_dest(struct svc_list *l, const struct proxy_config *pc, const char *url,
    const char *purpose)
{
	struct proxy_decision d;
	char host[256], phost[256], dec[600];
	int port, pport, tls;

	if (registration_endpoint_hostport(url, host, sizeof host, &port, &tls) != 0)
		return;
	snprintf(dec, sizeof dec, "%s://%s:%d/", tls ? "https" : "http", host, port);
	if (pc != NULL && proxy_decide(pc, dec, &d) == 0 && !d.direct && d.nproxies > 0 &&
	    registration_endpoint_hostport(d.proxies[0], phost, sizeof phost, &pport, &tls) == 0) {
		char p[600];

		snprintf(p, sizeof p, "%s:%d", phost, pport);
		svc_add(l, host, port, purpose, p);
		svc_add(l, phost, pport, "proxy", NULL);
		return;
	}
	svc_add(l, host, port, purpose, NULL);
}

/* The name servers of /etc/resolv.conf: the node resolves the relay (or its
 * proxy) itself, so a firewall that rejects everything else must let DNS out. */
static void
svc_add_resolvers(struct svc_list *l, const char *path)
{
	FILE *f = fopen(path, "r");
	char line[512], addr[INET6_ADDRSTRLEN];

	if (f == NULL)
		return;
	while (fgets(line, sizeof line, f) != NULL) {
		struct svc *s;
		unsigned char buf[sizeof(struct in6_addr)];
		int fam;

		if (sscanf(line, " nameserver %45s", addr) != 1)
			continue;
		fam = strchr(addr, ':') ? AF_INET6 : AF_INET;
		if (inet_pton(fam, addr, buf) != 1)
			continue;
		s = svc_add(l, addr, 53, "dns resolver", NULL);
		if (s == NULL)
			break;
		s->dns = 1;
		if (s->naddrs == 0) {
			s->fam[0] = fam;
			snprintf(s->addr[0], INET6_ADDRSTRLEN, "%s", addr);
			s->naddrs = 1;
		}
	}
	fclose(f);
}

/* The running shird's word on the runtime's self-contained mode: 1 on, 0 off,
 * -1 unknown (shird not running, or no self-contained channel). */
static int
svc_selfcontained_mode(struct ctl_ctx *ctx)
{
	struct ctl_response resp;
	struct shir_error err;
	cJSON *o, *sc;
	int mode = -1;

	memset(&resp, 0, sizeof resp);
	if (ctl_client_request(ctx->socket, "GET", "/v1/node", NULL, &resp, &err) != 0)
		return -1;
	o = resp.status == 200 ? cJSON_Parse(resp.body) : NULL;
	sc = cJSON_GetObjectItemCaseSensitive(o, "selfContained");
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sc, "configured")))
		mode = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sc, "mode"));
	cJSON_Delete(o);
	ctl_response_clear(&resp);
	return mode;
}

static void
svc_resolve(struct svc *s)
{
	struct addrinfo hints, *res = NULL, *ai;
	int e, i;

	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	e = getaddrinfo(s->host, NULL, &hints, &res);
	if (e != 0) {
		snprintf(s->error, sizeof s->error, "%s does not resolve: %s", s->host, gai_strerror(e));
		return;
	}
	for (ai = res; ai != NULL && s->naddrs < SVC_ADDRS; ai = ai->ai_next) {
		char a[INET6_ADDRSTRLEN];
		const void *p = ai->ai_family == AF_INET6
		    ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
		    : (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;

		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		inet_ntop(ai->ai_family, p, a, sizeof a);
		for (i = 0; i < s->naddrs; i++)
			if (strcmp(s->addr[i], a) == 0)
				break;
		if (i < s->naddrs)
			continue;
		s->fam[s->naddrs] = ai->ai_family;
		snprintf(s->addr[s->naddrs++], INET6_ADDRSTRLEN, "%s", a);
	}
	freeaddrinfo(res);
}

/* A comment safe for nft and iptables: printable, no quotes. */
static void
svc_comment(const struct svc *s, char *out, size_t len)
{
	size_t i;

	snprintf(out, len, "shir %.40s %.70s", s->purpose, s->host);	/* nft: <= 128 */
	for (i = 0; out[i]; i++)
		if (out[i] == '"' || out[i] == '\\' || (unsigned char)out[i] < 0x20 ||
		    (unsigned char)out[i] > 0x7e)
			out[i] = '_';
}

static void
svc_print_nft(const struct svc_list *l, const char *node, const struct passwd *pw,
    const char *user)
{
	char cm[256];
	int i, j;

	printf("# shir: outbound allowlist of node %s (shirctl service-urls --resolve "
	    "--format nftables)\n# load with: nft -f FILE (again after a change: the table is "
	    "replaced, not added to)\n", node);
	/* create-then-delete: one transaction that replaces the table, so a
	 * second load does not append every rule again */
	printf("table inet shir\ndelete table inet shir\n");
	printf("table inet shir {\n\tchain egress {\n"
	    "\t\ttype filter hook output priority filter; policy accept;\n"
	    "\t\toifname \"lo\" accept\n\t\tct state established,related accept\n");
	for (i = 0; i < l->n; i++) {
		const struct svc *s = &l->v[i];

		if (s->via[0])
			continue;
		svc_comment(s, cm, sizeof cm);
		if (s->error[0])
			printf("\t\t# %s: no rule\n", s->error);
		for (j = 0; j < s->naddrs; j++) {
			printf("\t\t%s daddr %s tcp dport %d accept comment \"%s\"\n",
			    s->fam[j] == AF_INET6 ? "ip6" : "ip", s->addr[j], s->port, cm);
			if (s->dns)
				printf("\t\t%s daddr %s udp dport %d accept comment \"%s\"\n",
				    s->fam[j] == AF_INET6 ? "ip6" : "ip", s->addr[j], s->port, cm);
		}
	}
	if (pw != NULL)
		printf("\t\tmeta skuid %u counter reject comment \"shir: anything else from %s\"\n",
		    (unsigned)pw->pw_uid, user);
	else
		printf("\t\t# the user %s does not exist here: add\n\t\t#   meta skuid UID counter "
		    "reject\n\t\t# for the user shird runs as (--user NAME)\n", user);
	printf("\t}\n}\n");
}

static void
svc_print_ipt(const struct svc_list *l, const char *node, const struct passwd *pw,
    const char *user, int v6)
{
	char cm[256];
	int i, j;

	printf("# shir: outbound allowlist of node %s (shirctl service-urls --resolve "
	    "--format %s)\n# load with: %s-restore --noflush FILE\n", node,
	    v6 ? "ip6tables" : "iptables", v6 ? "ip6tables" : "iptables");
	printf("*filter\n:SHIR-EGRESS - [0:0]\n-A SHIR-EGRESS -o lo -j ACCEPT\n"
	    "-A SHIR-EGRESS -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n");
	for (i = 0; i < l->n; i++) {
		const struct svc *s = &l->v[i];

		if (s->via[0])
			continue;
		svc_comment(s, cm, sizeof cm);
		if (s->error[0])
			printf("# %s: no rule\n", s->error);
		for (j = 0; j < s->naddrs; j++) {
			if ((s->fam[j] == AF_INET6) != v6)
				continue;
			printf("-A SHIR-EGRESS -d %s/%d -p tcp -m tcp --dport %d -m comment --comment "
			    "\"%s\" -j ACCEPT\n", s->addr[j], v6 ? 128 : 32, s->port, cm);
			if (s->dns)
				printf("-A SHIR-EGRESS -d %s/%d -p udp -m udp --dport %d -m comment "
				    "--comment \"%s\" -j ACCEPT\n", s->addr[j], v6 ? 128 : 32, s->port, cm);
		}
	}
	if (pw != NULL)
		printf("-A SHIR-EGRESS -m owner --uid-owner %u -j REJECT\n", (unsigned)pw->pw_uid);
	else
		printf("# the user %s does not exist here: add\n#   -A SHIR-EGRESS -m owner "
		    "--uid-owner UID -j REJECT\n# for the user shird runs as (--user NAME)\n", user);
	printf("-A OUTPUT -j SHIR-EGRESS\nCOMMIT\n");
}

int
ctl_cmd_service_urls(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const char usage[] = "service-urls [--resolve] [--json | --format text|json|nftables|"
	    "iptables|ip6tables] [--user NAME]";
	struct svc_list *l = NULL;
	struct servicehost *sh = NULL;
	struct registration *reg = NULL;
	struct proxy_config *pc = NULL;
	struct shir_error err;
	struct conf *c = NULL;
	const char *format = "text", *user = "shir";
	char node[256] = "";
	size_t nsh = 0, k;
	int i, j, resolve = 0, rc = 1, unresolved = 0, sc_mode = -1;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--resolve") == 0)
			resolve = 1;
		else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc)
			format = argv[++i];
		else if (strcmp(argv[i], "--json") == 0)	/* as every command that prints data */
			format = "json";
		else if (strcmp(argv[i], "--user") == 0 && i + 1 < argc)
			user = argv[++i];
		else
			ctl_die_usage("service-urls", usage);
	}
	if (ctx->json)
		format = "json";
	if (strcmp(format, "text") && strcmp(format, "json") && strcmp(format, "nftables") &&
	    strcmp(format, "iptables") && strcmp(format, "ip6tables"))
		ctl_die_usage("service-urls", usage);
	if (!resolve && format[0] != 't' && format[0] != 'j') {
		fprintf(stderr, "shirctl: firewall rules need addresses: add --resolve\n");
		return 2;
	}
	if ((c = ctl_admin_conf(ctx)) == NULL)
		return 1;
	l = calloc(1, sizeof *l);
	if (l == NULL)
		goto out;
	if (proxy_config_load(&c->proxy, &pc, &err) != 0) {
		fprintf(stderr, "shirctl: the proxy configuration does not load, so the hosts "
		    "cannot be listed: %s\n", err.msg);
		goto out;
	}
	if (c->sc_endpoint != NULL && *c->sc_endpoint)
		sc_mode = svc_selfcontained_mode(ctx);
	if (sc_mode == 1) {
		/* self-contained mode: the one outbound connection is all there is */
		svc_add_dest(l, pc, c->sc_endpoint, "self-contained service endpoint (mode on)");
		if (registration_load_public(c->state_dir, &reg, &err) == 0)
			snprintf(node, sizeof node, "%s", reg->node_name ? reg->node_name : "");
	} else if (registration_load_public(c->state_dir, &reg, &err) == 0) {
		svc_add_dest(l, pc, reg->endpoint, "relay endpoint");
		snprintf(node, sizeof node, "%s", reg->node_name ? reg->node_name : "");
	} else if (err.code != SHIR_ENOENT) {
		fprintf(stderr, "shirctl: %s\n", err.msg);
	}
	if (sc_mode != 1 && c->relay_endpoint != NULL && *c->relay_endpoint)
		svc_add_dest(l, pc, c->relay_endpoint, "relay endpoint (shird.conf)");
	if (sc_mode == 0 || (sc_mode == -1 && c->sc_endpoint != NULL && *c->sc_endpoint))
		svc_add_dest(l, pc, c->sc_endpoint, "self-contained service endpoint");
	if (sc_mode != 1 && servicehosts_list(c->state_dir, &sh, &nsh, &err) == 0) {
		for (k = 0; k < nsh; k++) {
			char url[300];

			snprintf(url, sizeof url, "wss://%s:%d", sh[k].host, sh[k].port);
			svc_add_dest(l, pc, url, sh[k].purpose[0] ? sh[k].purpose : "rendezvous");
		}
	}
	if (c->proxy.mode == PROXY_MODE_CUSTOM && c->proxy.address != NULL) {
		char url[600];

		snprintf(url, sizeof url, "%s%s:%d", strstr(c->proxy.address, "://") ? "" : "http://",
		    c->proxy.address, c->proxy.port);
		{
			char h[256];
			int p, t;

			if (registration_endpoint_hostport(url, h, sizeof h, &p, &t) == 0)
				svc_add(l, h, c->proxy.port, "proxy", NULL);
		}
	}
	if (!node[0])
		snprintf(node, sizeof node, "%s", c->node_name ? c->node_name : "");
	if (!node[0])
		gethostname(node, sizeof node - 1);
	if (l->n > 0)
		svc_add_resolvers(l, getenv("SHIRCTL_RESOLV_CONF") ? getenv("SHIRCTL_RESOLV_CONF")
								   : "/etc/resolv.conf");
	if (l->n == 0) {
		fprintf(stderr, "shirctl: this node needs no host yet: it is not registered "
		    "(`shirctl register-node KEY`) and shird.conf names no relay\n");
		goto out;
	}
	if (resolve) {
		for (i = 0; i < l->n; i++) {
			if (l->v[i].via[0] || l->v[i].dns)
				continue;
			svc_resolve(&l->v[i]);
			if (l->v[i].error[0]) {
				fprintf(stderr, "shirctl: %s\n", l->v[i].error);
				unresolved++;
			}
		}
	}
	if (strcmp(format, "json") == 0) {
		cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "services");
		char *s;

		cJSON_AddStringToObject(o, "node", node);
		for (i = 0; i < l->n; i++) {
			cJSON *e = cJSON_CreateObject();

			cJSON_AddStringToObject(e, "host", l->v[i].host);
			cJSON_AddNumberToObject(e, "port", l->v[i].port);
			cJSON_AddStringToObject(e, "protocol", l->v[i].dns ? "udp+tcp" : "tcp");
			cJSON_AddStringToObject(e, "purpose", l->v[i].purpose);
			if (l->v[i].via[0])
				cJSON_AddStringToObject(e, "via", l->v[i].via);
			else
				cJSON_AddNullToObject(e, "via");
			if (resolve && !l->v[i].via[0]) {
				cJSON *a = cJSON_AddArrayToObject(e, "addresses");

				for (j = 0; j < l->v[i].naddrs; j++)
					cJSON_AddItemToArray(a, cJSON_CreateString(l->v[i].addr[j]));
			}
			cJSON_AddItemToArray(arr, e);
		}
		s = cJSON_Print(o);
		printf("%s\n", s);
		cJSON_free(s);
		cJSON_Delete(o);
	} else if (strcmp(format, "text") == 0) {
		printf("%-40s %-6s %-28s %s\n", "HOST", "PORT", "PURPOSE", "REACHED");
		for (i = 0; i < l->n; i++) {
			printf("%-40s %-6d %-28s %s%s", l->v[i].host, l->v[i].port, l->v[i].purpose,
			    l->v[i].via[0] ? "through the proxy " : "direct", l->v[i].via);
			for (j = 0; j < l->v[i].naddrs; j++)
				printf("%s%s", j ? ", " : " = ", l->v[i].addr[j]);
			printf("\n");
		}
		printf("(this node's firewall must allow the rows reached directly; the proxy must "
		    "allow the others)\n");
	} else {
		struct passwd *pw = getpwnam(user);

		if (format[0] == 'n')
			svc_print_nft(l, node, pw, user);
		else
			svc_print_ipt(l, node, pw, user, format[2] == '6');
	}
	rc = unresolved ? 1 : 0;
out:
	free(sh);
	free(l);
	registration_free(reg);
	proxy_config_unref(pc);
	conf_free(c);
	return rc;
}
