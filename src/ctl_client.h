/* ctl_client: shirctl's side of the control socket (libcurl over a unix
 * socket; shirctl has no event loop, so the easy interface is right here). */
#ifndef SHIR_CTL_CLIENT_H
#define SHIR_CTL_CLIENT_H

#include <stddef.h>

#include "shir_err.h"

struct ctl_response {
	long status;
	char *body;	/* NUL-terminated */
	size_t len;
};

/* The socket path: --socket, else $SHIR_SOCKET, else node.control_socket of
 * shird_conf (if readable), else the built-in default. */
const char *ctl_client_socket(const char *opt, const char *shird_conf);

/* Sends one request. On failure err says, in words, why (not running,
 * permission, timeout). */
int ctl_client_request(const char *sock, const char *method, const char *path,
    const char *body, struct ctl_response *resp, struct shir_error *err);
void ctl_response_clear(struct ctl_response *resp);

#endif
