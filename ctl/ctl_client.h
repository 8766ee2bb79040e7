/* ctl_client: shirctl's side of the control socket (libcurl over a unix
 * socket; shirctl has no event loop, so the easy interface is right here). */
#ifndef SHIR_CTL_CLIENT_H
#define SHIR_CTL_CLIENT_H

#include <stddef.h>

#include "common/shir_err.h"

struct ctl_response {
	long status;
	char *body;	/* NUL-terminated */
	size_t len;
};

/* The socket path: --socket, else $SHIR_SOCKET, else node.control_socket of
 * shird_conf (if readable), else the built-in default. */
const char *ctl_client_socket(const char *opt, const char *shird_conf);
/* Why shird.conf did not load when ctl_client_socket read it (the socket then
 * came from its good lines, or the default), or NULL. */
const char *ctl_client_conf_error(void);

/* Sends one request. On failure err says, in words, why (not running,
 * permission, timeout). */
int ctl_client_request(const char *sock, const char *method, const char *path,
    const char *body, struct ctl_response *resp, struct shir_error *err);
void ctl_response_clear(struct ctl_response *resp);

/* A libcurl write callback that collects a response body, NUL-terminated,
 * up to CTL_MAX_RESPONSE bytes (then it stops the transfer and sets
 * too_big). Start from { NULL, 0, 0 }; free data. */
#define CTL_MAX_RESPONSE (64 * 1024 * 1024)
struct ctl_buf {
	char *data;
	size_t len;
	int too_big;
};
size_t ctl_buf_write(char *data, size_t size, size_t n, void *arg);

#endif
