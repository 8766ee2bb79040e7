/* evread: see evread.h. */
#include "config.h"

#include <errno.h>
#include <malloc.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#include "common/evread.h"

#define EVREAD_VECS 2
#define EVREAD_LIBEVENT_MAX 4096	/* EVBUFFER_MAX_READ in libevent 2.1 */
/* most reserved per call: a new chain of 64 KiB with libevent's chain header,
 * so a burst does not leave quarter-megabyte holes in the heap */
#define EVREAD_STEP (64 * 1024 - 256)

size_t
evread_more(struct bufferevent *bev, size_t limit)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_iovec v[EVREAD_VECS];
	struct iovec iov[EVREAD_VECS];
	struct msghdr mh;
	size_t have = evbuffer_get_length(in), want;
	evutil_socket_t fd = bufferevent_getfd(bev);
	ssize_t n;
	int i, nv;

	/* libevent reads min(FIONREAD, 4 KiB): less than 4 KiB buffered means it
	 * found the socket nearly empty, and a quiet endpoint should not get a
	 * large buffer (nor a system call that finds nothing) */
	if (have < EVREAD_LIBEVENT_MAX)
		return 0;
	if (fd < 0 || have >= limit || bufferevent_get_underlying(bev) != NULL ||
	    bufferevent_openssl_get_ssl(bev) != NULL ||
	    !(bufferevent_get_enabled(bev) & EV_READ))
		return 0;
	want = limit - have;
	if (want > EVREAD_STEP)
		want = EVREAD_STEP;
	/* a socket bufferevent keeps the end of its input frozen except while it
	 * reads itself (bufferevent_sock.c); thaw it for our read the same way */
	evbuffer_unfreeze(in, 0);
	if ((nv = evbuffer_reserve_space(in, (ev_ssize_t)want, v, EVREAD_VECS)) <= 0) {
		evbuffer_freeze(in, 0);
		return 0;
	}
	for (i = 0; i < nv; i++) {
		iov[i].iov_base = v[i].iov_base;
		iov[i].iov_len = v[i].iov_len;
	}
	/* reserve_space may offer more than asked: read no more than `want` */
	for (i = 0; i < nv; i++) {
		if (iov[i].iov_len >= want) {
			iov[i].iov_len = want;
			nv = i + 1;
			break;
		}
		want -= iov[i].iov_len;
	}
	/* MSG_DONTWAIT: never block, even on a socket someone left blocking */
	memset(&mh, 0, sizeof mh);
	mh.msg_iov = iov;
	mh.msg_iovlen = (size_t)nv;
	do
		n = recvmsg(fd, &mh, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		evbuffer_commit_space(in, v, 0);
		evbuffer_freeze(in, 0);
		return 0;
	}
	for (i = 0; i < nv; i++) {
		size_t take = (size_t)n < iov[i].iov_len ? (size_t)n : iov[i].iov_len;

		v[i].iov_len = take;
		n -= (ssize_t)take;
	}
	evbuffer_commit_space(in, v, nv);
	evbuffer_freeze(in, 0);
	return evbuffer_get_length(in) - have;
}

void
evread_tune_malloc(void)
{
	mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);
}
