/* ctlsock: the control socket, HTTP/1.1 over a unix socket (mode 0660),
 * serving the node's API to shirctl and to curl --unix-socket. */
#ifndef SHIR_CTLSOCK_H
#define SHIR_CTLSOCK_H

#include "common/shir_err.h"

struct node;
struct ctlsock;

int ctlsock_open(struct node *n, const char *path, struct ctlsock **out, struct shir_error *err);
/* Stops accepting and closes; pending replies are cancelled. */
void ctlsock_free(struct ctlsock *c);

#endif
