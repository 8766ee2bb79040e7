/* backup: a node's registration, credentials and settings in one file,
 * sealed under a key derived from a password (scrypt, see seal.h).
 *
 * Plaintext (JSON): {"format": 1, "created": T, "host": H, "shir": V,
 *   "registration": <node.json object or null>,
 *   "credentials": <the credential store document, with values>,
 *   "settings": {"shird.conf": "<text>",
 *                "proxyPassword": "<the file named by proxy.password_file>"},
 *   "runtimeDataKey": "<64 hex>" (when the node has one, docs/ha.md)}
 *
 * Import checks everything before it writes anything: a wrong password, a
 * changed or truncated file, or a content that does not load (registration,
 * credentials, shird.conf) leaves the node as it was. The imported shird.conf
 * keeps this node's node.state_dir and node.control_socket. */
#ifndef SHIR_BACKUP_H
#define SHIR_BACKUP_H

#include "common/shir_err.h"

struct backup_summary {
	int registered;
	char ir[128];
	int ncredentials;
	int settings;
};

int backup_create(const char *conf_path, const char *state_dir, const char *password, int log2n,
    const char *file, struct backup_summary *sum, struct shir_error *err);
int backup_import(const char *conf_path, const char *state_dir, const char *password,
    const char *file, struct backup_summary *sum, struct shir_error *err);

#endif
