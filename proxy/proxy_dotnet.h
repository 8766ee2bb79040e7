/* proxy_dotnet: the <system.net><defaultProxy> element of a .NET application
 * configuration file (diahost.exe.config, diawp.exe.config), read with expat.
 * The whole file is parsed as XML; every other section is ignored. Inside
 * defaultProxy the element and attribute names are checked exactly as .NET
 * does (case-sensitive; an unknown one is a load error), bypass entries are
 * compiled as PCRE2 caseless regular expressions. The parser does no I/O:
 * proxy_dotnet_parse takes bytes; proxy_dotnet_load_file only reads the file. */
#ifndef SHIR_PROXY_DOTNET_H
#define SHIR_PROXY_DOTNET_H

#include <stddef.h>

#include "common/shir_err.h"

enum proxy_tri { PROXY_TRI_UNSPEC = 0, PROXY_TRI_TRUE, PROXY_TRI_FALSE };

struct proxy_bypass {
	char *pattern;
	int line;
	void *re;		/* pcre2_code * */
};

struct proxy_dotnet {
	char *file;
	int present;		/* a defaultProxy element was found */
	int line;		/* its line */
	int enabled;		/* default 1 */
	int use_default_credentials;	/* default 0 */
	enum proxy_tri auto_detect, bypass_on_local, use_system_default;
	char *proxy_address;	/* normalized "http://host:port" or NULL */
	int proxy_address_line;
	char *script_location;	/* as written, or NULL */
	struct proxy_bypass *bypass;	/* effective list after add/remove/clear */
	size_t nbypass;
	/* <system.net><settings><webProxyScript .../>: 0 when not given */
	long pac_download_timeout_ms;
	int pac_retry_interval_s;
};

/* Parses a whole file's bytes; name is used in messages ("name:line: ..."). */
int proxy_dotnet_parse(const char *name, const char *buf, size_t len, struct proxy_dotnet **out,
    struct shir_error *err);
/* Reads and parses path. A missing file is SHIR_ENOENT (err set). */
int proxy_dotnet_load_file(const char *path, struct proxy_dotnet **out, struct shir_error *err);
void proxy_dotnet_free(struct proxy_dotnet *d);

/* "name=value" lines describing the section (for comparing two files). */
void proxy_dotnet_canon(const struct proxy_dotnet *d, char *buf, size_t len);
/* Describes how a and b differ (one "; "-separated item per attribute). */
void proxy_dotnet_diff(const struct proxy_dotnet *a, const struct proxy_dotnet *b, char *buf,
    size_t len);

const char *proxy_tri_name(enum proxy_tri t);

#endif
