/* evread: larger reads for plain-socket bufferevents.
 *
 * libevent 2.1's bufferevent_socket reads at most 4 KiB per wakeup
 * (EVBUFFER_MAX_READ in buffer.c, whatever bufferevent_set_max_single_read
 * says) and asks FIONREAD first; the write event is added and deleted around
 * each flush. A busy stream therefore costs about six system calls per 4 KiB.
 * A read callback calls evread_more() first: one recvmsg() pulls what else the
 * socket holds, so a 64 KiB WebSocket message arrives in one or two wakeups.
 *
 * Only plain sockets: a TLS bufferevent (or a filter, or a pair) is left
 * alone. End of file is left for the bufferevent to find: the socket stays
 * readable, so its own next read reports it through the event callback. An
 * error (a reset) that this read meets is consumed by it, so the bufferevent
 * then reports end of file instead: the connection ends either way. */
#ifndef SHIR_EVREAD_H
#define SHIR_EVREAD_H

#include <stddef.h>
#include <sys/types.h>

struct bufferevent;

/* When the input holds at least libevent's 4 KiB (so the socket likely has
 * more), reads up to 64 KiB more without passing `limit` bytes buffered:
 * one recvmsg with MSG_DONTWAIT. Returns the bytes added: 0 when nothing was
 * waiting, less than 4 KiB was buffered, reading is disabled or the
 * bufferevent is not a plain socket. */
size_t evread_more(struct bufferevent *bev, size_t limit);

/* Called once at start by programs that stream: fixed malloc thresholds, so
 * the 64 KiB buffers a busy stream allocates and frees for every read are
 * reused from the heap instead of being mapped, faulted in and unmapped each
 * time (glibc's sliding thresholds otherwise trim and regrow the heap: a
 * quarter of the relay's CPU went to page faults). Idle memory still goes
 * back through malloc_trim. */
void evread_tune_malloc(void);

#endif
