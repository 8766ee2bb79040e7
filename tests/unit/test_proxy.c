/* Unit tests for proxy/: the .NET <defaultProxy> loader, the decision
 * procedure (C.2/C.3 of the proxy spec), libcurl's environment and no_proxy
 * rules (C.4), custom mode, and loader errors with line numbers. Each row of
 * the decision table is its own TAP case. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <curl/curl.h>

#include "node/conf.h"
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"
#include "proxy/proxy_noproxy.h"
#include "proxy/proxy_sysinfo.h"

static const char *const test_addrs[] = { "10.1.2.3", "fe80::1234", "192.168.7.7" };

struct dcase {
	const char *name;
	const char *xml;	/* the content of <system.net>; NULL: use conf */
	const char *conf;	/* shird.conf text when xml is NULL */
	const char *env[8];	/* NAME=value */
	const char *url;
	const char *want;	/* "DIRECT" or the proxy URL */
	const char *reason;	/* substring of the reason, or NULL */
	const char *domain;	/* NULL: corp.contoso.com */
};

#define P8080 "<defaultProxy><proxy proxyaddress=\"http://proxy.corp:8080\" bypassonlocal=\"%s\"/>" \
	"<bypasslist>%s</bypasslist></defaultProxy>"
#define BP(x) "<add address=\"" x "\"/>"
#define PX(bol, list) "<defaultProxy><proxy proxyaddress=\"http://proxy.corp:8080\" " \
	"bypassonlocal=\"" bol "\"/><bypasslist>" list "</bypasslist></defaultProxy>"
#define PROXY1 "http://proxy.corp:8080"
#define EMPTY "<defaultProxy useDefaultCredentials=\"true\"/>"
#define USD "<defaultProxy><proxy usesystemdefault=\"true\"/></defaultProxy>"

static const struct dcase cases[] = {
	/* enabled */
	{ "enabled_false", "<defaultProxy enabled=\"false\"><proxy proxyaddress=\"http://p:8080\"/>"
	  "</defaultProxy>", NULL, { NULL }, "https://x.example.com/", "DIRECT", "enabled=\"false\"" },
	{ "enabled_False_caseless", "<defaultProxy enabled=\"False\"/>", NULL,
	  { "https_proxy=http://envp:3128" }, "https://x.example.com/", "DIRECT", "enabled" },
	{ "enabled_true_explicit", "<defaultProxy enabled=\"true\"><proxy proxyaddress="
	  "\"http://proxy.corp:8080\"/></defaultProxy>", NULL, { NULL }, "https://x.example.com/",
	  PROXY1, "proxyaddress" },
	/* proxyaddress */
	{ "proxyaddress_basic", PX("false", ""), NULL, { NULL }, "https://www.example.com/a?b",
	  PROXY1, "proxyaddress (" },
	{ "proxyaddress_default_port_80", "<defaultProxy><proxy proxyaddress=\"http://proxy.corp\"/>"
	  "</defaultProxy>", NULL, { NULL }, "https://x.example.com", "http://proxy.corp:80", NULL },
	{ "proxyaddress_https", "<defaultProxy><proxy proxyaddress=\"https://proxy.corp\"/>"
	  "</defaultProxy>", NULL, { NULL }, "https://x.example.com", "https://proxy.corp:443", NULL },
	{ "proxyaddress_case", "<defaultProxy><proxy proxyaddress=\"HTTP://PROXY.Corp:3128/\"/>"
	  "</defaultProxy>", NULL, { NULL }, "https://x.example.com", "http://proxy.corp:3128", NULL },
	{ "proxyaddress_ignores_env", PX("false", ""), NULL, { "https_proxy=http://envp:1" },
	  "https://x.example.com", PROXY1, NULL },
	/* loopback */
	{ "loopback_localhost", PX("false", ""), NULL, { NULL }, "https://localhost/", "DIRECT",
	  "loopback" },
	{ "loopback_localhost_upper_port", PX("false", ""), NULL, { NULL }, "https://LOCALHOST:8443/",
	  "DIRECT", "loopback" },
	{ "loopback_127_8", PX("false", ""), NULL, { NULL }, "http://127.0.0.5:81/", "DIRECT",
	  "loopback" },
	{ "loopback_ipv6", PX("false", ""), NULL, { NULL }, "https://[::1]:8443/", "DIRECT",
	  "loopback" },
	{ "not_loopback_128", PX("false", ""), NULL, { NULL }, "https://128.0.0.1/", PROXY1, NULL },
	{ "loopback_env_mode", EMPTY, NULL, { "https_proxy=http://envp:3128" }, "https://localhost/",
	  "DIRECT", "loopback" },
	/* bypass list: .NET regular expressions */
	{ "bypass_plain", PX("false", BP("contoso\\.com")), NULL, { NULL },
	  "https://www.contoso.com/", "DIRECT", "bypasslist entry contoso\\.com" },
	{ "bypass_unanchored_overmatch", PX("false", BP("contoso\\.com")), NULL, { NULL },
	  "https://notcontoso.com.evil.net/", "DIRECT", "matches https://notcontoso.com.evil.net" },
	{ "bypass_anchored_no_overmatch", PX("false", BP("^https://([^/:]*\\.)?contoso\\.com$")),
	  NULL, { NULL }, "https://contoso.com.evil.net/", PROXY1, NULL },
	{ "bypass_anchored_subdomain", PX("false", BP("^https://([^/:]*\\.)?contoso\\.com$")),
	  NULL, { NULL }, "https://a.contoso.com/x", "DIRECT", "bypasslist" },
	{ "bypass_caseless", PX("false", BP("CONTOSO\\.COM")), NULL, { NULL },
	  "https://www.Contoso.com/", "DIRECT", "bypasslist" },
	{ "bypass_port_nondefault", PX("false", BP(":8443$")), NULL, { NULL },
	  "https://h.example.com:8443/", "DIRECT", "https://h.example.com:8443" },
	{ "bypass_default_port_omitted", PX("false", BP(":443")), NULL, { NULL },
	  "https://h.example.com:443/", PROXY1, NULL },
	{ "bypass_443_on_http_kept", PX("false", BP(":443")), NULL, { NULL },
	  "http://h.example.com:443/", "DIRECT", "http://h.example.com:443" },
	{ "bypass_scheme_http", PX("false", BP("^http://")), NULL, { NULL },
	  "http://x.example.com/", "DIRECT", NULL },
	{ "bypass_scheme_https_not", PX("false", BP("^http://")), NULL, { NULL },
	  "https://x.example.com/", PROXY1, NULL },
	{ "bypass_wss_scheme", PX("false", BP("^wss://relay\\.")), NULL, { NULL },
	  "wss://relay.example.com/$hc/x", "DIRECT", "wss://relay.example.com" },
	{ "bypass_ipv6_brackets", PX("false", BP("\\[2001:db8::1\\]$")), NULL, { NULL },
	  "https://[2001:db8::1]/", "DIRECT", "https://[2001:db8::1]" },
	{ "bypass_ipv6_port", PX("false", BP("\\[2001:db8::1\\]:8443")), NULL, { NULL },
	  "https://[2001:db8::1]:8443/", "DIRECT", NULL },
	{ "bypass_dot_is_wildcard", PX("false", BP("a.b.example.com")), NULL, { NULL },
	  "https://aXb.example.com/", "DIRECT", NULL },
	{ "bypass_ms_example_overmatch", PX("false",
	  BP("[factory].[region].datafactory.azure.net")), NULL, { NULL },
	  "https://a-r.datafactory.azure.net/", "DIRECT", NULL },
	{ "bypass_path_not_matched", PX("false", BP("/path")), NULL, { NULL },
	  "https://x.example.com/path", PROXY1, NULL },
	{ "bypass_userinfo_not_matched", PX("false", BP("user@")), NULL, { NULL },
	  "https://user@x.example.com/", PROXY1, NULL },
	{ "bypass_remove", PX("false", BP("alpha") BP("beta") "<remove address=\"alpha\"/>"), NULL,
	  { NULL }, "https://alpha.example.com/", PROXY1, NULL },
	{ "bypass_remove_keeps_other", PX("false", BP("alpha") BP("beta")
	  "<remove address=\"alpha\"/>"), NULL, { NULL }, "https://beta.example.com/", "DIRECT",
	  "beta" },
	{ "bypass_clear", PX("false", BP("alpha") "<clear/>" BP("beta")), NULL, { NULL },
	  "https://alpha.example.com/", PROXY1, NULL },
	{ "bypass_after_clear", PX("false", BP("alpha") "<clear/>" BP("beta")), NULL, { NULL },
	  "https://beta.example.com/", "DIRECT", NULL },
	{ "bypass_duplicate_add", PX("false", BP("alpha") BP("alpha")), NULL, { NULL },
	  "https://alpha.example.com/", "DIRECT", NULL },
	{ "bypass_first_match_named", PX("false", BP("zzz") BP("example") BP("x\\.")), NULL,
	  { NULL }, "https://x.example.com/", "DIRECT", "entry example (" },
	/* bypassonlocal */
	{ "local_dotless", PX("true", ""), NULL, { NULL }, "https://webserver/", "DIRECT",
	  "no dot" },
	{ "local_dotless_port", PX("true", ""), NULL, { NULL }, "http://webserver:8080/", "DIRECT",
	  "no dot" },
	{ "local_false_dotless_proxied", PX("false", ""), NULL, { NULL }, "https://webserver/",
	  PROXY1, NULL },
	{ "local_unspecified_dotless_proxied", "<defaultProxy><proxy proxyaddress="
	  "\"http://proxy.corp:8080\"/></defaultProxy>", NULL, { NULL }, "https://webserver/",
	  PROXY1, NULL },
	{ "local_domain_suffix", PX("true", ""), NULL, { NULL }, "https://db1.corp.contoso.com/",
	  "DIRECT", "domain corp.contoso.com" },
	{ "local_domain_suffix_caseless", PX("true", ""), NULL, { NULL },
	  "https://DB1.CORP.Contoso.COM/", "DIRECT", "domain" },
	{ "local_domain_two_levels_not", PX("true", ""), NULL, { NULL },
	  "https://a.b.corp.contoso.com/", PROXY1, NULL },
	{ "local_parent_domain_not", PX("true", ""), NULL, { NULL }, "https://x.contoso.com/",
	  PROXY1, NULL },
	{ "local_own_ipv4", PX("true", ""), NULL, { NULL }, "https://10.1.2.3:8443/", "DIRECT",
	  "this machine's addresses" },
	{ "local_own_ipv6", PX("true", ""), NULL, { NULL }, "https://[fe80::1234]/", "DIRECT",
	  "this machine's addresses" },
	{ "local_rfc1918_not_local", PX("true", ""), NULL, { NULL }, "https://10.9.9.9/", PROXY1,
	  NULL },
	{ "local_no_domain", PX("true", ""), NULL, { NULL }, "https://db1.corp.contoso.com/",
	  PROXY1, NULL, "" },
	{ "local_before_bypasslist", PX("true", BP("webserver")), NULL, { NULL },
	  "https://webserver/", "DIRECT", "bypassonlocal" },
	/* empty section and usesystemdefault: the environment */
	{ "empty_section_env_https", EMPTY, NULL, { "https_proxy=http://envp:3128" },
	  "https://x.example.com/", "http://envp:3128", "environment variable https_proxy" },
	{ "empty_section_env_http", EMPTY, NULL, { "http_proxy=http://envh:3128" },
	  "http://x.example.com/", "http://envh:3128", "http_proxy" },
	{ "env_HTTP_PROXY_upper_ignored", EMPTY, NULL, { "HTTP_PROXY=http://bad:1" },
	  "http://x.example.com/", "DIRECT", "none of http_proxy, all_proxy, ALL_PROXY" },
	{ "env_HTTPS_PROXY_upper", EMPTY, NULL, { "HTTPS_PROXY=http://up:3128" },
	  "https://x.example.com/", "http://up:3128", "HTTPS_PROXY" },
	{ "env_lower_wins", EMPTY, NULL, { "HTTPS_PROXY=http://up:1", "https_proxy=http://low:2" },
	  "https://x.example.com/", "http://low:2", "https_proxy" },
	{ "env_wss_uses_https", EMPTY, NULL, { "https_proxy=http://s:1", "http_proxy=http://h:2" },
	  "wss://relay.example.com/", "http://s:1", NULL },
	{ "env_ws_uses_http", EMPTY, NULL, { "https_proxy=http://s:1", "http_proxy=http://h:2" },
	  "ws://relay.example.com/", "http://h:2", NULL },
	{ "env_all_proxy_fallback", EMPTY, NULL, { "all_proxy=http://all:3" },
	  "https://x.example.com/", "http://all:3", "all_proxy" },
	{ "env_ALL_PROXY_fallback", EMPTY, NULL, { "ALL_PROXY=http://ALL:4" },
	  "http://x.example.com/", "http://all:4", "ALL_PROXY" },
	{ "env_all_lower_first", EMPTY, NULL, { "ALL_PROXY=http://u:4", "all_proxy=http://l:3" },
	  "https://x.example.com/", "http://l:3", NULL },
	{ "env_scheme_before_all", EMPTY, NULL, { "all_proxy=http://all:3",
	  "HTTPS_PROXY=http://up:5" }, "https://x.example.com/", "http://up:5", NULL },
	{ "env_empty_no_fallback", EMPTY, NULL, { "https_proxy=", "all_proxy=http://all:3" },
	  "https://x.example.com/", "DIRECT", "set but empty" },
	{ "env_nothing", EMPTY, NULL, { NULL }, "https://x.example.com/", "DIRECT",
	  "none of https_proxy, HTTPS_PROXY, all_proxy, ALL_PROXY" },
	{ "env_default_port_1080", EMPTY, NULL, { "https_proxy=envp" }, "https://x.example.com/",
	  "http://envp:1080", NULL },
	{ "env_https_proxy_443", EMPTY, NULL, { "https_proxy=https://envp" },
	  "https://x.example.com/", "https://envp:443", NULL },
	{ "env_socks5", EMPTY, NULL, { "all_proxy=socks5h://s5:1081" }, "https://x.example.com/",
	  "socks5h://s5:1081", NULL },
	{ "env_credentials_not_shown", EMPTY, NULL, { "https_proxy=http://u%5Cx:s3cret@envp:3128/" },
	  "https://x.example.com/", "http://envp:3128", NULL },
	{ "noproxy_suffix", EMPTY, NULL, { "https_proxy=http://envp:1", "no_proxy=example.com" },
	  "https://www.example.com/", "DIRECT", "no_proxy entry example.com" },
	{ "noproxy_exact", EMPTY, NULL, { "https_proxy=http://envp:1", "no_proxy=example.com" },
	  "https://example.com/", "DIRECT", NULL },
	{ "noproxy_not_substring", EMPTY, NULL, { "https_proxy=http://envp:1", "no_proxy=ample.com" },
	  "https://example.com/", "http://envp:1", NULL },
	{ "noproxy_leading_dot", EMPTY, NULL, { "https_proxy=http://envp:1",
	  "no_proxy=.example.com" }, "https://example.com/", "DIRECT", NULL },
	{ "noproxy_trailing_dot", EMPTY, NULL, { "https_proxy=http://envp:1",
	  "no_proxy=example.com." }, "https://a.example.com/", "DIRECT", NULL },
	{ "noproxy_star", EMPTY, NULL, { "https_proxy=http://envp:1", "no_proxy=*" },
	  "https://anything.example.org/", "DIRECT", "entry *" },
	{ "noproxy_glob_literal", EMPTY, NULL, { "https_proxy=http://envp:1",
	  "no_proxy=*.example.com" }, "https://www.example.com/", "http://envp:1", NULL },
	{ "noproxy_cidr4", EMPTY, NULL, { "https_proxy=http://envp:1",
	  "no_proxy=foo.com,192.168.0.0/16" }, "https://192.168.4.5/", "DIRECT", "192.168.0.0/16" },
	{ "noproxy_cidr4_outside", EMPTY, NULL, { "https_proxy=http://envp:1",
	  "no_proxy=192.168.0.0/16" }, "https://192.169.4.5/", "http://envp:1", NULL },
	{ "noproxy_cidr_names_not_resolved", EMPTY, NULL, { "https_proxy=http://envp:1",
	  "no_proxy=10.0.0.0/8" }, "https://ten.example.com/", "http://envp:1", NULL },
	{ "noproxy_cidr6", EMPTY, NULL, { "https_proxy=http://envp:1", "no_proxy=2001:db8::/32" },
	  "https://[2001:db8::5]/", "DIRECT", NULL },
	{ "noproxy_cidr6_odd_bits", EMPTY, NULL, { "https_proxy=http://envp:1",
	  "no_proxy=2001:db8:8000::/33" }, "https://[2001:db8:8000::5]/", "DIRECT", NULL },
	{ "noproxy_ip_exact", EMPTY, NULL, { "https_proxy=http://envp:1", "no_proxy=10.2.3.4" },
	  "https://10.2.3.4:8443/", "DIRECT", NULL },
	{ "noproxy_port_not_understood", EMPTY, NULL, { "https_proxy=http://envp:1",
	  "no_proxy=example.com:443" }, "https://example.com/", "http://envp:1", NULL },
	{ "noproxy_spaces", EMPTY, NULL, { "https_proxy=http://envp:1",
	  "no_proxy=a.com, example.com" }, "https://example.com/", "DIRECT", NULL },
	{ "noproxy_upper_used", EMPTY, NULL, { "https_proxy=http://envp:1",
	  "NO_PROXY=example.com" }, "https://example.com/", "DIRECT", "NO_PROXY" },
	{ "noproxy_lower_wins", EMPTY, NULL, { "https_proxy=http://envp:1", "no_proxy=a.com",
	  "NO_PROXY=example.com" }, "https://example.com/", "http://envp:1", NULL },
	{ "usd_true_env", USD, NULL, { "https_proxy=http://envp:3128" }, "https://x.example.com/",
	  "http://envp:3128", "usesystemdefault" },
	{ "usd_true_bypasslist_replaces_noproxy", "<defaultProxy><proxy usesystemdefault=\"true\"/>"
	  "<bypasslist>" BP("contoso") "</bypasslist></defaultProxy>", NULL,
	  { "https_proxy=http://envp:1", "no_proxy=example.com" }, "https://example.com/",
	  "http://envp:1", NULL },
	{ "usd_true_bypasslist_applies", "<defaultProxy><proxy usesystemdefault=\"true\"/>"
	  "<bypasslist>" BP("contoso") "</bypasslist></defaultProxy>", NULL,
	  { "https_proxy=http://envp:1", "no_proxy=example.com" }, "https://contoso.com/",
	  "DIRECT", "bypasslist" },
	{ "usd_true_noproxy_kept", USD, NULL, { "https_proxy=http://envp:1",
	  "no_proxy=example.com" }, "https://example.com/", "DIRECT", "no_proxy" },
	{ "usd_true_proxyaddress_wins", "<defaultProxy><proxy usesystemdefault=\"true\" "
	  "proxyaddress=\"http://proxy.corp:8080\"/></defaultProxy>", NULL,
	  { "https_proxy=http://envp:1" }, "https://x.example.com/", PROXY1, NULL },
	{ "usd_false_alone_explicit_none", "<defaultProxy><proxy usesystemdefault=\"false\"/>"
	  "</defaultProxy>", NULL, { "https_proxy=http://envp:1" }, "https://x.example.com/",
	  "DIRECT", "explicitly no proxy" },
	{ "usd_false_with_address", "<defaultProxy><proxy usesystemdefault=\"false\" "
	  "proxyaddress=\"http://proxy.corp:8080\"/></defaultProxy>", NULL, { NULL },
	  "https://x.example.com/", PROXY1, NULL },
	{ "usd_unspecified_is_empty", "<defaultProxy><proxy usesystemdefault=\"Unspecified\"/>"
	  "</defaultProxy>", NULL, { "https_proxy=http://envp:1" }, "https://x.example.com/",
	  "http://envp:1", NULL },
	{ "bypassonlocal_only_no_address", "<defaultProxy><proxy bypassonlocal=\"true\"/>"
	  "</defaultProxy>", NULL, { "https_proxy=http://envp:1" }, "https://x.example.com/",
	  "DIRECT", "no proxy address" },
	{ "script_missing_file_fallback_direct", "<defaultProxy><proxy scriptLocation="
	  "\"file:///nonexistent/shir-test.pac\"/></defaultProxy>", NULL,
	  { "https_proxy=http://envp:1" }, "https://x.example.com/", "DIRECT",
	  "PAC file:///nonexistent/shir-test.pac: " },
	{ "autodetect_with_address_static", "<defaultProxy><proxy autoDetect=\"true\" "
	  "proxyaddress=\"http://proxy.corp:8080\"/></defaultProxy>", NULL, { NULL },
	  "https://x.example.com/", PROXY1, NULL },
	{ "script_with_bypasslist_static", "<defaultProxy><proxy scriptLocation="
	  "\"http://wpad/proxy.pac\" proxyaddress=\"http://proxy.corp:8080\"/><bypasslist>"
	  BP("contoso") "</bypasslist></defaultProxy>", NULL, { NULL }, "https://contoso.com/",
	  "DIRECT", "bypasslist" },
	{ "no_defaultproxy_section_env", "", NULL, { "https_proxy=http://envp:1" },
	  "https://x.example.com/", "http://envp:1", "no defaultProxy element" },
	{ "other_sections_ignored", "<settings><httpWebRequest useUnsafeHeaderParsing=\"true\"/>"
	  "</settings>" PX("false", ""), NULL, { NULL }, "https://x.example.com/", PROXY1, NULL },
	/* custom and none */
	{ "custom_basic", NULL, "[proxy]\nmode = custom\naddress = proxy.corp\nport = 3128\n",
	  { "https_proxy=http://envp:1" }, "https://x.example.com/", "http://proxy.corp:3128",
	  "proxy.address" },
	{ "custom_https", NULL, "[proxy]\nmode = custom\naddress = https://Proxy.Corp\nport = 8443\n",
	  { NULL }, "wss://relay.example.com/", "https://proxy.corp:8443", NULL },
	{ "custom_port_in_address", NULL, "[proxy]\nmode = custom\naddress = http://p.corp:3129\n",
	  { NULL }, "https://x.example.com/", "http://p.corp:3129", NULL },
	{ "custom_loopback_direct", NULL, "[proxy]\nmode = custom\naddress = proxy.corp\n",
	  { NULL }, "http://127.0.0.1:5432/", "DIRECT", "loopback" },
	{ "custom_dotless_proxied", NULL, "[proxy]\nmode = custom\naddress = proxy.corp\n",
	  { NULL }, "https://webserver/", "http://proxy.corp:8080", NULL },
	{ "custom_ipv6", NULL, "[proxy]\nmode = custom\naddress = [fd00::5]\nport = 3128\n",
	  { NULL }, "https://x.example.com/", "http://[fd00::5]:3128", NULL },
	{ "env_ipv6_proxy", EMPTY, NULL, { "https_proxy=http://[fd00::6]:3129" },
	  "https://x.example.com/", "http://[fd00::6]:3129", NULL },
	{ "proxyaddress_ipv6", "<defaultProxy><proxy proxyaddress=\"http://[fd00::7]:8080\"/>"
	  "</defaultProxy>", NULL, { NULL }, "https://x.example.com", "http://[fd00::7]:8080", NULL },
	{ "loopback_name_loopback", PX("false", ""), NULL, { NULL }, "https://loopback/", "DIRECT",
	  "loopback" },
	{ "bypass_ws_default_port_omitted", PX("false", BP("^ws://h\\.example\\.com$")), NULL,
	  { NULL }, "ws://h.example.com:80/x", "DIRECT", "ws://h.example.com" },
	{ "mode_none", NULL, "[proxy]\nmode = none\n", { "https_proxy=http://envp:1" },
	  "https://x.example.com/", "DIRECT", "proxy.mode is none" },
};
#define NCASES (sizeof cases / sizeof cases[0])

static char tmpdir[256];

static char *
write_tmp(const char *name, const char *text, mode_t mode)
{
	char *p = malloc(512);
	FILE *f;

	snprintf(p, 512, "%s/%s", tmpdir, name);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(p, mode);
	return p;
}

static char *
write_config(const char *name, const char *sysnet)
{
	char buf[16384];

	snprintf(buf, sizeof buf, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<configuration>\n"
	    "  <startup><supportedRuntime version=\"v4.0\"/></startup>\n  <system.net>\n%s\n"
	    "  </system.net>\n</configuration>\n", sysnet);
	return write_tmp(name, buf, 0644);
}

static void
sysinfo_for(const struct dcase *c, struct proxy_sysinfo *si)
{
	memset(si, 0, sizeof *si);
	si->env = c->env;
	si->domain = c->domain ? c->domain : "corp.contoso.com";
	si->addrs = test_addrs;
	si->naddrs = 3;
}

static void
test_decision(void **state)
{
	const struct dcase *c = *state;
	struct proxy_sysinfo si;
	struct proxy_config *pc = NULL;
	struct proxy_decision d;
	struct shir_error err;
	char *file = NULL;

	sysinfo_for(c, &si);
	if (c->xml != NULL) {
		file = write_config("diahost.exe.config", c->xml);
		if (proxy_config_load_dotnet_with(file, &si, &pc, &err) != 0)
			fail_msg("%s: load failed: %s", c->name, err.msg);
	} else {
		struct conf *conf = NULL;

		if (conf_load_buffer("t.conf", c->conf, strlen(c->conf), &conf, &err) != 0)
			fail_msg("%s: conf: %s", c->name, err.msg);
		if (proxy_config_load_with(&conf->proxy, &si, &pc, &err) != 0)
			fail_msg("%s: load failed: %s", c->name, err.msg);
		conf_free(conf);
	}
	assert_int_equal(proxy_decide(pc, c->url, &d), 0);
	if (strcmp(c->want, "DIRECT") == 0) {
		if (!d.direct)
			fail_msg("%s: %s: want DIRECT, got PROXY %s (%s)", c->name, c->url,
			    d.proxies[0], d.reason);
	} else {
		if (d.direct || d.nproxies != 1 || strcmp(d.proxies[0], c->want) != 0)
			fail_msg("%s: %s: want %s, got %s %s (%s)", c->name, c->url, c->want,
			    d.direct ? "DIRECT" : "PROXY", d.nproxies ? d.proxies[0] : "", d.reason);
	}
	if (c->reason && strstr(d.reason, c->reason) == NULL)
		fail_msg("%s: reason [%s] lacks [%s]", c->name, d.reason, c->reason);
	/* no secret ever reaches a decision */
	assert_null(strstr(d.reason, "s3cret"));
	assert_null(strstr(d.proxies[0], "s3cret"));
	proxy_config_unref(pc);
	if (file) {
		unlink(file);
		free(file);
	}
}

/* --- loader errors -------------------------------------------------------- */

static void
expect_load_error(const char *sysnet, const char *needle1, const char *needle2)
{
	static const char *const noenv[] = { NULL };
	struct proxy_sysinfo si = { noenv, "corp.contoso.com", test_addrs, 3 };
	struct proxy_config *pc = NULL;
	struct shir_error err;
	char *file = write_config("bad.exe.config", sysnet);
	int rc = proxy_config_load_dotnet_with(file, &si, &pc, &err);

	if (rc == 0)
		fail_msg("wanted a load error for %s", sysnet);
	assert_null(pc);
	if (strstr(err.msg, needle1) == NULL || (needle2 && strstr(err.msg, needle2) == NULL))
		fail_msg("error [%s] lacks [%s] / [%s]", err.msg, needle1, needle2 ? needle2 : "");
	if (strstr(err.msg, file) == NULL)
		fail_msg("error [%s] does not name the file", err.msg);
	unlink(file);
	free(file);
}

static void
test_err_unknown_attribute(void **state)
{
	/* line 5: <configuration> is 2, <startup> 3, <system.net> 4 */
	expect_load_error("<defaultProxy>\n<proxy proxyAddress=\"http://p:1\"/></defaultProxy>",
	    "bad.exe.config:6:", "unrecognized attribute proxyAddress");
}

static void
test_err_unknown_attribute_defaultproxy(void **state)
{
	expect_load_error("<defaultProxy enable=\"false\"/>", ":5:", "unrecognized attribute enable");
}

static void
test_err_module(void **state)
{
	expect_load_error("<defaultProxy>\n\n<module type=\"Corp.Proxy, Corp\"/></defaultProxy>",
	    ":7:", "not supported");
}

static void
test_err_glob_regex(void **state)
{
	expect_load_error("<defaultProxy><proxy proxyaddress=\"http://p:1\"/>\n<bypasslist>\n"
	    "<add address=\"*.contoso.com\"/></bypasslist></defaultProxy>",
	    ":7: <bypasslist> entry *.contoso.com is not a valid regular expression",
	    "wildcard");
}

static void
test_err_bad_regex_no_glob_hint(void **state)
{
	struct proxy_config *pc = NULL;
	struct shir_error err;
	char *file = write_config("r.exe.config", "<defaultProxy><bypasslist><add address="
	    "\"(unclosed\"/></bypasslist></defaultProxy>");

	assert_int_not_equal(proxy_config_load_dotnet(file, &pc, &err), 0);
	assert_non_null(strstr(err.msg, "(unclosed"));
	assert_null(strstr(err.msg, "wildcard"));
	unlink(file);
	free(file);
}

static void
test_err_removed_bad_regex_is_fine(void **state)
{
	struct proxy_config *pc = NULL;
	struct shir_error err;
	char *file = write_config("r2.exe.config", "<defaultProxy><bypasslist><add address="
	    "\"*bad\"/><remove address=\"*bad\"/></bypasslist></defaultProxy>");

	assert_int_equal(proxy_config_load_dotnet(file, &pc, &err), 0);
	proxy_config_unref(pc);
	unlink(file);
	free(file);
}

static void
test_err_bad_bool(void **state)
{
	expect_load_error("<defaultProxy enabled=\"yes\"/>", ":5:", "true or false");
}

static void
test_err_bad_tristate(void **state)
{
	expect_load_error("<defaultProxy><proxy bypassonlocal=\"1\"/></defaultProxy>", ":5:",
	    "true, false or unspecified");
}

static void
test_err_malformed_xml(void **state)
{
	expect_load_error("<defaultProxy>\n<proxy>\n</defaultProxy>", ":7:", "not well-formed");
}

static void
test_err_duplicate_section(void **state)
{
	expect_load_error("<defaultProxy/>\n<defaultProxy/>", ":6:", "second time");
}

static void
test_err_duplicate_proxy(void **state)
{
	expect_load_error("<defaultProxy><proxy/>\n<proxy/></defaultProxy>", ":6:", "only appear once");
}

static void
test_err_bare_host_port(void **state)
{
	expect_load_error("<defaultProxy><proxy proxyaddress=\"proxy.corp:8080\"/></defaultProxy>",
	    "not an absolute URI", "http://proxy.corp:8080");
}

static void
test_err_unknown_element(void **state)
{
	expect_load_error("<defaultProxy><Proxy/></defaultProxy>", ":5:", "unrecognized element");
}

static void
test_err_bypass_unknown_child(void **state)
{
	expect_load_error("<defaultProxy><bypasslist><item address=\"x\"/></bypasslist>"
	    "</defaultProxy>", ":5:", "unrecognized element");
}

static void
test_err_add_without_address(void **state)
{
	expect_load_error("<defaultProxy><bypasslist><add/></bypasslist></defaultProxy>", ":5:",
	    "'address' is missing");
}

static void
test_err_config_source(void **state)
{
	expect_load_error("<defaultProxy configSource=\"proxy.config\"/>", ":5:", "not supported");
}

static void
test_err_proxy_scheme(void **state)
{
	expect_load_error("<defaultProxy><proxy proxyaddress=\"ftp://p:21\"/></defaultProxy>", ":5:",
	    "scheme must be http");
}

static void
test_lock_attributes_accepted(void **state)
{
	struct proxy_config *pc = NULL;
	struct shir_error err;
	char *file = write_config("l.exe.config", "<defaultProxy lockItem=\"true\" enabled=\"false\"/>");

	assert_int_equal(proxy_config_load_dotnet(file, &pc, &err), 0);
	proxy_config_unref(pc);
	unlink(file);
	free(file);
}

static void
test_utf16_file(void **state)
{
	/* Windows tools save config files as UTF-16 with a BOM */
	const char *xml = "<?xml version=\"1.0\" encoding=\"utf-16\"?><configuration><system.net>"
	    "<defaultProxy enabled=\"false\"/></system.net></configuration>";
	char path[512];
	struct proxy_config *pc = NULL;
	struct proxy_decision d;
	struct shir_error err;
	FILE *f;
	size_t i;

	snprintf(path, sizeof path, "%s/u16.config", tmpdir);
	f = fopen(path, "wb");
	fputc(0xff, f), fputc(0xfe, f);
	for (i = 0; xml[i]; i++)
		fputc(xml[i], f), fputc(0, f);
	fclose(f);
	assert_int_equal(proxy_config_load_dotnet(path, &pc, &err), 0);
	assert_int_equal(proxy_decide(pc, "https://a.example.com", &d), 0);
	assert_true(d.direct);
	proxy_config_unref(pc);
	unlink(path);
}

static void
test_err_env_scheme(void **state)
{
	static const char *const env[] = { "https_proxy=gopher://x:1", NULL };
	struct proxy_sysinfo si = { env, "", test_addrs, 0 };
	struct proxy_config *pc = NULL;
	struct shir_error err;
	char *file = write_config("e.exe.config", EMPTY);

	assert_int_not_equal(proxy_config_load_dotnet_with(file, &si, &pc, &err), 0);
	assert_non_null(strstr(err.msg, "https_proxy"));
	unlink(file);
	free(file);
}

static void
test_bad_url(void **state)
{
	struct proxy_config *pc = NULL;
	struct proxy_decision d;
	struct shir_error err;
	struct conf *c = conf_new_defaults();

	assert_int_equal(proxy_config_load(&c->proxy, &pc, &err), 0);
	assert_int_equal(proxy_decide(pc, "contoso.com", &d), SHIR_EINVAL);
	assert_non_null(strstr(d.reason, "scheme"));
	proxy_config_unref(pc);
	conf_free(c);
}

/* --- shird.conf modes -------------------------------------------------------- */

static int
load_conf(const char *text, struct proxy_config **pc, struct shir_error *err)
{
	static const char *const noenv[] = { NULL };
	struct proxy_sysinfo si = { noenv, "corp.contoso.com", test_addrs, 3 };
	struct conf *c = NULL;
	int rc;

	if (conf_load_buffer("t.conf", text, strlen(text), &c, err) != 0)
		fail_msg("conf: %s", err->msg);
	rc = proxy_config_load_with(&c->proxy, &si, pc, err);
	conf_free(c);
	return rc;
}

static void
test_mode_none_reads_nothing(void **state)
{
	struct proxy_config *pc = NULL;
	struct shir_error err;

	assert_int_equal(load_conf("[proxy]\nmode = none\ndotnet_config = /nonexistent/a.config\n"
	    "dotnet_config_worker = /nonexistent/b.config\npassword_file = /nonexistent/pw\n",
	    &pc, &err), 0);
	assert_string_equal(proxy_config_warnings(pc), "");
	proxy_config_unref(pc);
}

/* Which credentials a tunnel uses: auth = negotiate without a user means the
 * service's Kerberos ticket (user "" so that libcurl starts proxy auth at all),
 * like useDefaultCredentials; other schemes without a user send nothing. */
static void
test_cred_negotiate_without_user(void **state)
{
	static const struct { const char *auth; int kerberos; } rows[] = {
		{ "negotiate", 1 }, { "basic", 0 }, { "any", 0 }, { "ntlm", 0 },
	};
	char *pw = write_tmp("pw-cred", "s3cret\n", 0600), conf[1024];
	struct proxy_config *pc = NULL;
	struct proxy_cred cred;
	struct shir_error err;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		snprintf(conf, sizeof conf, "[proxy]\nmode = custom\naddress = p.corp\n"
		    "auth = %s\n", rows[i].auth);
		assert_int_equal(load_conf(conf, &pc, &err), 0);
		proxy_config_cred(pc, "http://p.corp:8080", &cred);
		if (rows[i].kerberos) {
			assert_non_null(cred.user);
			assert_string_equal(cred.user, "");
			assert_true(cred.auth == CURLAUTH_NEGOTIATE);
		} else {
			assert_null(cred.user);
		}
		proxy_config_unref(pc);
	}
	/* a configured user wins over the ticket */
	snprintf(conf, sizeof conf, "[proxy]\nmode = custom\naddress = p.corp\nauth = negotiate\n"
	    "user = svc\npassword_file = %s\n", pw);
	assert_int_equal(load_conf(conf, &pc, &err), 0);
	proxy_config_cred(pc, "http://p.corp:8080", &cred);
	assert_string_equal(cred.user, "svc");
	assert_string_equal(cred.password, "s3cret");
	proxy_config_unref(pc);
	unlink(pw);
	free(pw);
}

static void
test_password_file_modes(void **state)
{
	char *pw = write_tmp("pw", "s3cret\n", 0644), conf[1024];
	struct proxy_config *pc = NULL;
	struct shir_error err;
	cJSON *o;
	char *js;

	snprintf(conf, sizeof conf, "[proxy]\nmode = custom\naddress = p.corp\nuser = CORP\\svc\n"
	    "password_file = %s\n", pw);
	assert_int_not_equal(load_conf(conf, &pc, &err), 0);
	assert_non_null(strstr(err.msg, "readable by group or others"));
	assert_non_null(strstr(err.msg, "chmod 600"));
	assert_null(strstr(err.msg, "s3cret"));
	chmod(pw, 0640);
	assert_int_not_equal(load_conf(conf, &pc, &err), 0);
	chmod(pw, 0600);
	assert_int_equal(load_conf(conf, &pc, &err), 0);
	o = cJSON_CreateObject();
	proxy_config_describe(pc, o);
	js = cJSON_PrintUnformatted(o);
	assert_null(strstr(js, "s3cret"));
	assert_non_null(strstr(js, "CORP\\\\svc"));
	free(js);
	cJSON_Delete(o);
	proxy_config_unref(pc);
	unlink(pw);
	free(pw);
}

static void
test_two_files_disagree(void **state)
{
	char *a = write_config("diahost.exe.config", PX("true", BP("contoso"))),
	     *b = write_config("diawp.exe.config", "<defaultProxy><proxy proxyaddress="
	     "\"http://other:3128\"/></defaultProxy>"), conf[2048];
	struct proxy_config *pc = NULL;
	struct proxy_decision d;
	struct shir_error err;
	const char *w;

	snprintf(conf, sizeof conf, "[proxy]\nmode = system\ndotnet_config = %s\n"
	    "dotnet_config_worker = %s\n", a, b);
	assert_int_equal(load_conf(conf, &pc, &err), 0);
	w = proxy_config_warnings(pc);
	if (strstr(w, "differ") == NULL || strstr(w, "proxyaddress=http://proxy.corp:8080 vs "
	    "proxyaddress=http://other:3128") == NULL || strstr(w, "bypassonlocal=true vs "
	    "bypassonlocal=unspecified") == NULL)
		fail_msg("warnings: %s", w);
	assert_int_equal(proxy_decide(pc, "https://x.example.com", &d), 0);
	assert_string_equal(d.proxies[0], PROXY1);
	proxy_config_unref(pc);
	/* the same section in both: no warning */
	unlink(b);
	free(b);
	b = write_config("diawp.exe.config", PX("true", BP("contoso")));
	assert_int_equal(load_conf(conf, &pc, &err), 0);
	assert_string_equal(proxy_config_warnings(pc), "");
	proxy_config_unref(pc);
	/* a broken worker file is an error too */
	unlink(b);
	free(b);
	b = write_config("diawp.exe.config", "<defaultProxy><module type=\"X\"/></defaultProxy>");
	assert_int_not_equal(load_conf(conf, &pc, &err), 0);
	assert_non_null(strstr(err.msg, "diawp.exe.config:5"));
	unlink(a), unlink(b);
	free(a), free(b);
}

static void
test_missing_files_warn(void **state)
{
	struct proxy_config *pc = NULL;
	struct shir_error err;

	assert_int_equal(load_conf("[proxy]\nmode = system\ndotnet_config = /nonexistent/a\n"
	    "dotnet_config_worker = /nonexistent/b\n", &pc, &err), 0);
	assert_non_null(strstr(proxy_config_warnings(pc), "/nonexistent/a does not exist"));
	proxy_config_unref(pc);
}

static void
test_pac_warnings(void **state)
{
	static const char *const noenv[] = { NULL };
	struct proxy_sysinfo si = { noenv, "", test_addrs, 0 };
	struct proxy_config *pc = NULL;
	struct shir_error err;
	char *f = write_config("pac.config", "<defaultProxy><proxy scriptLocation="
	    "\"http://wpad/p.pac\"/></defaultProxy>");

	cJSON *o;
	char *txt;

	assert_int_equal(proxy_config_load_dotnet_with(f, &si, &pc, &err), 0);
	assert_string_equal(proxy_config_warnings(pc), "");	/* PAC is used now */
	o = cJSON_CreateObject();
	proxy_config_describe(pc, o);
	txt = cJSON_PrintUnformatted(o);
	assert_non_null(strstr(txt, "\"scriptLocation\":\"http://wpad/p.pac\""));
	assert_non_null(strstr(txt, "\"downloadTimeoutMs\":60000"));
	assert_non_null(strstr(txt, "\"retryIntervalS\":600"));
	free(txt);
	cJSON_Delete(o);
	proxy_config_unref(pc);
	unlink(f);
	free(f);
	/* <webProxyScript> in <system.net><settings> sets the download limits */
	f = write_config("pac.config", "<settings><webProxyScript downloadTimeout=\"00:00:07\" "
	    "autoConfigUrlRetryInterval=\"45\"/></settings><defaultProxy><proxy "
	    "scriptLocation=\"http://wpad/p.pac\"/></defaultProxy>");
	assert_int_equal(proxy_config_load_dotnet_with(f, &si, &pc, &err), 0);
	o = cJSON_CreateObject();
	proxy_config_describe(pc, o);
	txt = cJSON_PrintUnformatted(o);
	assert_non_null(strstr(txt, "\"downloadTimeoutMs\":7000"));
	assert_non_null(strstr(txt, "\"retryIntervalS\":45"));
	free(txt);
	cJSON_Delete(o);
	proxy_config_unref(pc);
	unlink(f);
	free(f);
	f = write_config("pac.config", "<settings><webProxyScript downloadTimeout=\"soon\"/>"
	    "</settings><defaultProxy/>");
	assert_int_not_equal(proxy_config_load_dotnet_with(f, &si, &pc, &err), 0);
	assert_non_null(strstr(err.msg, "<webProxyScript downloadTimeout="));
	assert_non_null(strstr(err.msg, "not a time span"));
	unlink(f);
	free(f);
	f = write_config("pac.config", "<defaultProxy><proxy autoDetect=\"true\" "
	    "proxyaddress=\"http://p:1\"/></defaultProxy>");
	assert_int_equal(proxy_config_load_dotnet_with(f, &si, &pc, &err), 0);
	assert_non_null(strstr(proxy_config_warnings(pc), "drops the script engine"));
	assert_non_null(strstr(proxy_config_warnings(pc), "http://p:1"));
	proxy_config_unref(pc);
	unlink(f);
	free(f);
}

/* proxy_url_parse: libcurl's URL parser, as the copy sinks use it */
static void
test_url_parse(void **state)
{
	struct proxy_url u;
	char why[300];

	(void)state;
	assert_int_equal(proxy_url_parse("https://Acct.Blob.Core.Windows.NET/landing?sv=x", &u, why,
	    sizeof why), 0);
	assert_string_equal(u.scheme, "https");
	assert_string_equal(u.host, "acct.blob.core.windows.net");
	assert_int_equal(u.port, 443);
	assert_string_equal(u.path, "/landing");
	assert_false(u.ip);
	assert_false(u.loopback);
	assert_int_equal(proxy_url_parse("http://127.0.0.1:10000/devstoreaccount1", &u, why, sizeof why), 0);
	assert_true(u.ip && u.loopback);
	assert_int_equal(u.port, 10000);
	assert_string_equal(u.path, "/devstoreaccount1");
	assert_int_equal(proxy_url_parse("http://[::1]:9000", &u, why, sizeof why), 0);
	assert_string_equal(u.host, "[::1]");
	assert_true(u.ip && u.loopback);
	assert_string_equal(u.path, "/");
	assert_int_equal(proxy_url_parse("http://localhost/", &u, why, sizeof why), 0);
	assert_true(!u.ip && u.loopback);
	/* a name that starts like an address is a name; 10.x is not loopback; "loopback" is a name */
	assert_int_equal(proxy_url_parse("http://127.0.0.1.example.com/", &u, why, sizeof why), 0);
	assert_false(u.ip || u.loopback);
	assert_int_equal(proxy_url_parse("http://10.0.0.1/", &u, why, sizeof why), 0);
	assert_true(u.ip && !u.loopback);
	assert_int_equal(proxy_url_parse("http://loopback/", &u, why, sizeof why), 0);
	assert_false(u.loopback);
	/* user info does not fool the host */
	assert_int_equal(proxy_url_parse("http://127.0.0.1@evil.example/", &u, why, sizeof why), 0);
	assert_string_equal(u.host, "evil.example");
	assert_false(u.loopback);
	assert_int_equal(proxy_url_parse("no-scheme.example.com", &u, why, sizeof why), -1);
	assert_int_equal(proxy_url_parse("https://", &u, why, sizeof why), -1);
}

static void
test_refcount(void **state)
{
	struct proxy_config *pc = NULL;
	struct shir_error err;
	struct proxy_decision d;

	assert_int_equal(load_conf("[proxy]\nmode = custom\naddress = p.corp\n", &pc, &err), 0);
	assert_ptr_equal(proxy_config_ref(pc), pc);
	proxy_config_unref(pc);
	assert_int_equal(proxy_decide(pc, "https://a.b", &d), 0);	/* still alive */
	proxy_config_unref(pc);
	proxy_config_unref(NULL);
}

/* --- no_proxy parser and sysinfo ------------------------------------------ */

static void
test_noproxy_parser(void **state)
{
	struct proxy_noproxy *np = proxy_noproxy_parse(",, a.com ,,b.com\tc.com,", 24);
	char tok[64];

	assert_non_null(np);
	assert_int_equal(proxy_noproxy_count(np), 3);
	assert_true(proxy_noproxy_blank_separated(np));
	assert_true(proxy_noproxy_match(np, "x.c.com", tok, sizeof tok));
	assert_string_equal(tok, "c.com");
	assert_false(proxy_noproxy_match(np, "", tok, sizeof tok));
	assert_false(proxy_noproxy_match(np, "[::1", tok, sizeof tok));
	proxy_noproxy_free(np);
	np = proxy_noproxy_parse("10.0.0.0/99,::1/200,[::1]", 24);
	assert_false(proxy_noproxy_match(np, "10.1.1.1", tok, sizeof tok));
	assert_false(proxy_noproxy_match(np, "[::1]", tok, sizeof tok));
	proxy_noproxy_free(np);
	np = proxy_noproxy_parse(" * ", 3);	/* only "*" exactly disables */
	assert_false(proxy_noproxy_match(np, "a.com", tok, sizeof tok));
	proxy_noproxy_free(np);
}

static void
test_sysinfo_domain(void **state)
{
	const char *hosts = "127.0.0.1 localhost\n# 10.0.0.1 node1.wrong.example node1\n"
	    "127.0.1.1\tnode1.corp.example.org\tnode1\n::1 localhost ip6-localhost\n";
	char d[256];

	proxy_sysinfo_domain_from("node1.corp.contoso.com", hosts, "domain other.com\n", d, sizeof d);
	assert_string_equal(d, "corp.contoso.com");
	proxy_sysinfo_domain_from("node1", hosts, "domain other.com\n", d, sizeof d);
	assert_string_equal(d, "corp.example.org");
	proxy_sysinfo_domain_from("node2", hosts, "# x\nsearch a.com b.com\ndomain corp.example.\n",
	    d, sizeof d);
	assert_string_equal(d, "corp.example");
	proxy_sysinfo_domain_from("node1x", hosts, "nameserver 1.1.1.1\nsearch a.com b.com\n", d,
	    sizeof d);
	assert_string_equal(d, "a.com");
	proxy_sysinfo_domain_from("node1", "", "", d, sizeof d);
	assert_string_equal(d, "");
}

static void
test_sysinfo_real_addrs(void **state)
{
	struct proxy_addr *a = NULL, lo;
	size_t n = 0, i;
	int found = 0;

	assert_int_equal(proxy_sysinfo_addrs(&a, &n), 0);
	assert_int_equal(proxy_addr_parse("127.0.0.1", &lo), 0);
	for (i = 0; i < n; i++)
		found |= proxy_addr_equal(&a[i], &lo);
	assert_true(found);
	free(a);
}

int
main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_err_unknown_attribute),
		cmocka_unit_test(test_err_unknown_attribute_defaultproxy),
		cmocka_unit_test(test_err_module),
		cmocka_unit_test(test_err_glob_regex),
		cmocka_unit_test(test_err_bad_regex_no_glob_hint),
		cmocka_unit_test(test_err_removed_bad_regex_is_fine),
		cmocka_unit_test(test_err_bad_bool),
		cmocka_unit_test(test_err_bad_tristate),
		cmocka_unit_test(test_err_malformed_xml),
		cmocka_unit_test(test_err_duplicate_section),
		cmocka_unit_test(test_err_duplicate_proxy),
		cmocka_unit_test(test_err_bare_host_port),
		cmocka_unit_test(test_err_unknown_element),
		cmocka_unit_test(test_err_bypass_unknown_child),
		cmocka_unit_test(test_err_add_without_address),
		cmocka_unit_test(test_err_config_source),
		cmocka_unit_test(test_err_proxy_scheme),
		cmocka_unit_test(test_lock_attributes_accepted),
		cmocka_unit_test(test_utf16_file),
		cmocka_unit_test(test_err_env_scheme),
		cmocka_unit_test(test_bad_url),
		cmocka_unit_test(test_mode_none_reads_nothing),
		cmocka_unit_test(test_password_file_modes),
		cmocka_unit_test(test_cred_negotiate_without_user),
		cmocka_unit_test(test_two_files_disagree),
		cmocka_unit_test(test_missing_files_warn),
		cmocka_unit_test(test_pac_warnings),
		cmocka_unit_test(test_url_parse),
		cmocka_unit_test(test_refcount),
		cmocka_unit_test(test_noproxy_parser),
		cmocka_unit_test(test_sysinfo_domain),
		cmocka_unit_test(test_sysinfo_real_addrs),
	};
	size_t nfixed = sizeof fixed / sizeof fixed[0], i;
	struct CMUnitTest *all = calloc(NCASES + nfixed, sizeof *all);
	int rc;

	snprintf(tmpdir, sizeof tmpdir, "/tmp/shir-test-proxy-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 1;
	for (i = 0; i < NCASES; i++) {
		all[i].name = cases[i].name;
		all[i].test_func = test_decision;
		all[i].initial_state = (void *)&cases[i];
	}
	memcpy(all + NCASES, fixed, sizeof fixed);
	rc = _cmocka_run_group_tests("proxy", all, NCASES + nfixed, NULL, NULL);
	free(all);
	rmdir(tmpdir);
	return rc;
}
