/* sas: Shared Access Signature tokens as Azure Relay uses them
 * (hybrid-connections spec §6): building, parsing and verifying.
 *
 *   SharedAccessSignature sr=<enc resource>&sig=<enc base64 hmac>&se=<unix>&skn=<rule>
 *
 * The HMAC-SHA256 key is the key string's bytes as displayed; the string to
 * sign is the encoded sr exactly as sent, LF, se. Verification follows §6.4:
 * sr is verified as received (never re-encoded), the signature is compared in
 * constant time, the audience match ignores scheme, port, case and slashes at
 * both ends. No I/O. */
#ifndef SHIR_SAS_H
#define SHIR_SAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/shir_err.h"

/* Rights (claims) of a rule. Manage implies Listen and Send. */
#define SAS_LISTEN 0x1u
#define SAS_SEND 0x2u
#define SAS_MANAGE 0x4u

#define SAS_DEFAULT_SKEW 5	/* seconds of clock skew allowed on expiry */

struct sas_rule {
	const char *name;
	const char *key;
	unsigned rights;
};

struct sas_token {
	char *sr;		/* as received (still percent-encoded) */
	char *sig;		/* decoded once: base64 text */
	char *se;		/* as received */
	char *skn;		/* decoded */
	int64_t expiry;
};

/* Audiences for a URI such as "wss://ns:443/$hc/myhc?x" or "sb://ns/myhc":
 * hyco style (createRelayToken): "http://ns:443/myhc" (port kept, "$hc/"
 * removed, query dropped, host lower-cased, no trailing slash);
 * .NET style (NormalizeAudience): "http://ns/myhc/" (port dropped, trailing
 * slash). *out is malloc'ed. */
int sas_audience_hyco(const char *uri, char **out);
int sas_audience_dotnet(const char *uri, char **out);

/* Builds a token for audience (unencoded; it is encoded like
 * encodeURIComponent). *out is malloc'ed. */
int sas_token_build(const char *audience, const char *key_name, const char *key,
    int64_t expiry, char **out);

/* Parses a token (prefix and field names case-insensitive; field order
 * free). Returns 0 or SHIR_EAUTH with e explaining. */
int sas_token_parse(const char *token, struct sas_token *t, struct shir_error *e);
void sas_token_clear(struct sas_token *t);

struct sas_verified {
	const struct sas_rule *rule;	/* the rule that signed it */
	int64_t expiry;
};

/* Verifies token for entity (the hybrid connection path, e.g. "myhc") and
 * the rights needed. ns_host: the namespace host to match, or NULL to skip
 * the host check (loopback testing). Returns 0; SHIR_EAUTH (answer 401) when
 * the token is missing, malformed, signed with an unknown rule or wrong key,
 * or expired; SHIR_EPERM (answer 403) when it is valid but not for this
 * entity or lacks the right. e says which, without secrets. */
int sas_verify(const char *token, const struct sas_rule *rules, size_t nrules,
    const char *entity, const char *ns_host, unsigned need, int64_t now, int skew,
    struct sas_verified *out, struct shir_error *e);

/* Percent-decoding: form style turns '+' into a space. Returns 0 or
 * SHIR_EINVAL on a bad escape. *out is malloc'ed (NUL-terminated; embedded
 * NULs are refused). */
int sas_url_decode(const char *in, size_t len, bool form, char **out);
/* encodeURIComponent: everything but A-Z a-z 0-9 - _ . ! ~ * ' ( ) as %XX
 * (upper-case hex). */
char *sas_url_encode(const char *s);

/* A new random key: base64 of 32 random bytes (44 characters); out must hold 45. */
int sas_make_key(char out[45]);

#endif
