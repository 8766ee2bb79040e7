/* shir-pac-helper: runs a PAC script for shird in a process of its own.
 *
 * shird starts it with one end of a socketpair as standard input and talks in
 * frames: a 4-byte big-endian length, a type byte, the payload.
 *   shird -> helper  'L' script (UTF-8)     helper -> 'O' | 'E' message
 *   shird -> helper  'F' url NUL host       helper -> 'R' result | 'E' message,
 *                                           after any number of
 *   helper -> shird  'D' op host            shird -> 'A' answer ("" = none)
 *   helper -> shird  'M' text               (alert(); no answer)
 * The helper opens nothing, resolves nothing (DNS questions go to shird) and
 * confines itself before reading a frame: no new privileges, CPU and address
 * space limits, a memory cap inside the JavaScript heap, and a seccomp filter
 * that allows only the system calls it needs. shird kills it when a call takes
 * longer than its limit. SHIR_PAC_TEST_NOW (seconds since the epoch) fixes
 * the clock of the date and time functions, for tests. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include <duktape.h>

#include "proxy/pac_js.h"

#define PH_MAX_FRAME (4u * 1024 * 1024)
#define PH_HEAP_CAP ((size_t)64 * 1024 * 1024)	/* bytes the JavaScript heap may hold */
#define PH_CPU_S 120				/* CPU seconds for the whole process */

#if defined(__SANITIZE_ADDRESS__)
#define PH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PH_ASAN 1
#endif
#endif

static int ph_fd = 0;
static double ph_fixed_now = -1;
static size_t ph_heap_used;
static duk_context *ph_ctx;

/* --- frames ------------------------------------------------------------- */

static void
ph_die(void)
{
	_exit(1);	/* shird sees EOF and restarts us */
}

static void
ph_read_all(void *p, size_t n)
{
	unsigned char *q = p;

	while (n > 0) {
		ssize_t r = read(ph_fd, q, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			_exit(0);	/* shird went away */
		q += r;
		n -= (size_t)r;
	}
}

static void
ph_write_all(const void *p, size_t n)
{
	const unsigned char *q = p;

	while (n > 0) {
		ssize_t r = write(ph_fd, q, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			ph_die();
		q += r;
		n -= (size_t)r;
	}
}

static void
ph_send(char type, const void *p, size_t n)
{
	unsigned char h[5];
	uint32_t l = (uint32_t)n + 1;

	h[0] = (unsigned char)(l >> 24);
	h[1] = (unsigned char)(l >> 16);
	h[2] = (unsigned char)(l >> 8);
	h[3] = (unsigned char)l;
	h[4] = (unsigned char)type;
	ph_write_all(h, 5);
	if (n > 0)
		ph_write_all(p, n);
}

/* A frame into a malloc'd buffer (NUL-terminated); its type in *type. */
static char *
ph_recv(char *type, size_t *len)
{
	unsigned char h[5];
	uint32_t l;
	char *b;

	ph_read_all(h, 5);
	l = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
	if (l < 1 || l > PH_MAX_FRAME)
		ph_die();
	*type = (char)h[4];
	if ((b = malloc(l)) == NULL)
		ph_die();
	ph_read_all(b, l - 1);
	b[l - 1] = '\0';
	*len = l - 1;
	return b;
}

/* --- the JavaScript heap, with a cap -------------------------------------- */

static void *
ph_alloc(void *ud, duk_size_t n)
{
	size_t *p;

	(void)ud;
	if (n == 0 || n > PH_HEAP_CAP - ph_heap_used)
		return NULL;
	if ((p = malloc(n + sizeof(size_t) * 2)) == NULL)
		return NULL;
	p[0] = n;
	ph_heap_used += n;
	return p + 2;
}

static void
ph_free(void *ud, void *ptr)
{
	size_t *p = ptr;

	(void)ud;
	if (p == NULL)
		return;
	ph_heap_used -= p[-2];
	free(p - 2);
}

static void *
ph_realloc(void *ud, void *ptr, duk_size_t n)
{
	size_t *p = ptr, old;

	if (p == NULL)
		return ph_alloc(ud, n);
	if (n == 0) {
		ph_free(ud, ptr);
		return NULL;
	}
	old = p[-2];
	if (n > old && n - old > PH_HEAP_CAP - ph_heap_used)
		return NULL;
	if ((p = realloc(p - 2, n + sizeof(size_t) * 2)) == NULL)
		return NULL;
	ph_heap_used = ph_heap_used - old + n;
	p[0] = n;
	return p + 2;
}

static void
ph_fatal(void *ud, const char *msg)
{
	char m[512];

	(void)ud;
	snprintf(m, sizeof m, "the JavaScript engine failed: %s", msg ? msg : "?");
	ph_send('E', m, strlen(m));
	_exit(2);
}

/* --- native functions ----------------------------------------------------- */

static duk_ret_t
ph_js_dns(duk_context *ctx)
{
	const char *op = duk_require_string(ctx, 0), *host = duk_require_string(ctx, 1);
	char q[300], type, *a;
	size_t hl = strlen(host), al;

	if (hl > 253 || strlen(op) != 1) {
		duk_push_null(ctx);
		return 1;
	}
	q[0] = op[0];
	memcpy(q + 1, host, hl);
	ph_send('D', q, hl + 1);
	a = ph_recv(&type, &al);
	if (type != 'A')
		ph_die();
	if (al == 0)
		duk_push_null(ctx);
	else
		duk_push_lstring(ctx, a, al);
	free(a);
	return 1;
}

static duk_ret_t
ph_js_now(duk_context *ctx)
{
	struct timespec ts;

	if (ph_fixed_now >= 0) {
		duk_push_number(ctx, ph_fixed_now * 1000.0);
		return 1;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	duk_push_number(ctx, (double)ts.tv_sec * 1000.0 + (double)(ts.tv_nsec / 1000000));
	return 1;
}

static duk_ret_t
ph_js_alert(duk_context *ctx)
{
	duk_size_t l;
	const char *m = duk_safe_to_lstring(ctx, 0, &l);

	ph_send('M', m, l > 512 ? 512 : l);
	return 0;
}

/* --- requests ------------------------------------------------------------- */

static void
ph_error_from_stack(const char *what)
{
	char m[1024];

	snprintf(m, sizeof m, "%s: %s", what, duk_safe_to_string(ph_ctx, -1));
	ph_send('E', m, strlen(m));
}

static void
ph_load(const char *src, size_t len)
{
	if (ph_ctx != NULL)
		duk_destroy_heap(ph_ctx);
	ph_ctx = duk_create_heap(ph_alloc, ph_realloc, ph_free, NULL, ph_fatal);
	if (ph_ctx == NULL) {
		ph_send('E', "cannot create a JavaScript heap", 31);
		return;
	}
	duk_push_c_function(ph_ctx, ph_js_dns, 2);
	duk_put_global_string(ph_ctx, "__dns");
	duk_push_c_function(ph_ctx, ph_js_now, 0);
	duk_put_global_string(ph_ctx, "__now");
	duk_push_c_function(ph_ctx, ph_js_alert, 1);
	duk_put_global_string(ph_ctx, "__alert");
	if (duk_peval_string(ph_ctx, pac_js_source) != 0) {
		ph_error_from_stack("the built-in PAC functions failed");
		return;
	}
	duk_pop(ph_ctx);
	if (duk_peval_lstring(ph_ctx, src, len) != 0) {
		ph_error_from_stack("the script failed to load");
		return;
	}
	duk_pop(ph_ctx);
	if (!duk_get_global_string(ph_ctx, "FindProxyForURLEx")) {
		duk_pop(ph_ctx);
		if (!duk_get_global_string(ph_ctx, "FindProxyForURL") || !duk_is_function(ph_ctx, -1)) {
			duk_pop(ph_ctx);
			ph_send('E', "the script defines no function FindProxyForURL", 46);
			return;
		}
	}
	duk_pop(ph_ctx);
	ph_send('O', NULL, 0);
}

static void
ph_call(const char *p, size_t len)
{
	const char *url = p, *host = memchr(p, '\0', len), *fn = "FindProxyForURLEx";
	char m[256];

	if (ph_ctx == NULL || host == NULL) {
		ph_send('E', "no script is loaded", 19);
		return;
	}
	host++;
	if (!duk_get_global_string(ph_ctx, fn) || !duk_is_function(ph_ctx, -1)) {
		duk_pop(ph_ctx);
		fn = "FindProxyForURL";
		duk_get_global_string(ph_ctx, fn);
	}
	duk_push_string(ph_ctx, url);
	duk_push_string(ph_ctx, host);
	if (duk_pcall(ph_ctx, 2) != 0) {
		snprintf(m, sizeof m, "%s threw an exception", fn);
		ph_error_from_stack(m);
	} else if (!duk_is_string(ph_ctx, -1)) {
		snprintf(m, sizeof m, "%s returned %s, not a string", fn,
		    duk_is_null(ph_ctx, -1) ? "null" : duk_is_undefined(ph_ctx, -1) ? "undefined" :
		    duk_is_number(ph_ctx, -1) ? "a number" : duk_is_object(ph_ctx, -1) ? "an object" :
		    duk_is_boolean(ph_ctx, -1) ? "a boolean" : "a non-string");
		ph_send('E', m, strlen(m));
	} else {
		duk_size_t l;
		const char *r = duk_get_lstring(ph_ctx, -1, &l);

		/* 'X': FindProxyForURLEx answered, 'R': FindProxyForURL */
		ph_send(fn[15] == 'E' ? 'X' : 'R', r, l > 8192 ? 8192 : l);
	}
	duk_pop(ph_ctx);
	duk_gc(ph_ctx, 0);
}

/* --- confinement ------------------------------------------------------------ */

#define PH_ALLOW(nr) \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), \
	BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)

#if defined(__x86_64__)
static int
ph_seccomp(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		PH_ALLOW(__NR_read), PH_ALLOW(__NR_write), PH_ALLOW(__NR_readv),
		PH_ALLOW(__NR_writev), PH_ALLOW(__NR_close), PH_ALLOW(__NR_brk),
		PH_ALLOW(__NR_mmap), PH_ALLOW(__NR_munmap), PH_ALLOW(__NR_mremap),
		PH_ALLOW(__NR_mprotect), PH_ALLOW(__NR_madvise), PH_ALLOW(__NR_exit),
		PH_ALLOW(__NR_exit_group), PH_ALLOW(__NR_rt_sigreturn), PH_ALLOW(__NR_rt_sigprocmask),
		PH_ALLOW(__NR_clock_gettime), PH_ALLOW(__NR_gettimeofday), PH_ALLOW(__NR_time),
		PH_ALLOW(__NR_futex), PH_ALLOW(__NR_getpid), PH_ALLOW(__NR_gettid),
		PH_ALLOW(__NR_tgkill), PH_ALLOW(__NR_sched_yield), PH_ALLOW(__NR_fstat),
		PH_ALLOW(__NR_newfstatat), PH_ALLOW(__NR_lseek), PH_ALLOW(__NR_getrandom),
		PH_ALLOW(__NR_restart_syscall), PH_ALLOW(__NR_sigaltstack),
		PH_ALLOW(__NR_rt_sigaction), PH_ALLOW(__NR_getuid), PH_ALLOW(__NR_geteuid),
		PH_ALLOW(__NR_getgid), PH_ALLOW(__NR_getegid),
		/* everything else: EPERM (the process keeps running and reports it) */
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
	};
	struct sock_fprog prog = { (unsigned short)(sizeof f / sizeof f[0]), f };

	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}
#else
/* The filter lists x86-64 system call numbers; elsewhere the other limits
 * apply without it (docs/proxy.md says so). */
static int
ph_seccomp(void)
{
	return 0;
}
#endif

/* Started by a root shird (shird normally runs as its own user): become
 * nobody, with no supplementary groups. */
static int
ph_drop_root(char *why, size_t wl)
{
	struct passwd *pw;
	uid_t uid = 65534;
	gid_t gid = 65534;

	if (geteuid() != 0 && getuid() != 0)
		return 0;
	if ((pw = getpwnam("nobody")) != NULL) {
		uid = pw->pw_uid;
		gid = pw->pw_gid;
	}
	if (setgroups(0, NULL) != 0 || setresgid(gid, gid, gid) != 0 ||
	    setresuid(uid, uid, uid) != 0) {
		snprintf(why, wl, "cannot drop root to nobody: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static int
ph_confine(char *why, size_t wl)
{
	struct rlimit cpu = { PH_CPU_S, PH_CPU_S + 1 };

	if (ph_drop_root(why, wl) != 0)
		return -1;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		snprintf(why, wl, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		return -1;
	}
	if (setrlimit(RLIMIT_CPU, &cpu) != 0) {
		snprintf(why, wl, "RLIMIT_CPU: %s", strerror(errno));
		return -1;
	}
#ifndef PH_ASAN
	{
		/* AddressSanitizer reserves terabytes of shadow memory: there the
		 * heap cap above is the only memory limit */
		struct rlimit as = { (rlim_t)512 * 1024 * 1024, (rlim_t)512 * 1024 * 1024 };

		if (setrlimit(RLIMIT_AS, &as) != 0) {
			snprintf(why, wl, "RLIMIT_AS: %s", strerror(errno));
			return -1;
		}
	}
#endif
	if (ph_seccomp() != 0) {
		snprintf(why, wl, "seccomp: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* --selftest: confine, then try what a script must never do. */
static int
ph_selftest(void)
{
	char why[256];
	int s, fd;

	if (ph_confine(why, sizeof why) != 0) {
		printf("confine failed: %s\n", why);
		return 1;
	}
	printf("uid: %d\n", (int)getuid());
	s = socket(AF_INET, SOCK_STREAM, 0);
	printf("socket: %s\n", s < 0 ? strerror(errno) : "allowed");
	fd = (int)syscall(__NR_openat, -100, "/etc/hostname", 0);
	printf("openat: %s\n", fd < 0 ? strerror(errno) : "allowed");
	printf("fork: %s\n", syscall(__NR_fork) < 0 ? strerror(errno) : "allowed");
	fflush(stdout);
	_exit(0);
}

int
main(int argc, char **argv)
{
	const char *now = getenv("SHIR_PAC_TEST_NOW");
	char why[256];

	tzset();	/* the zone is read before the filter closes open() */
	if (now != NULL && *now)
		ph_fixed_now = strtod(now, NULL);
	if (argc > 1 && strcmp(argv[1], "--selftest") == 0)
		return ph_selftest();
	if (argc > 1) {
		fprintf(stderr, "shir-pac-helper: run by shird only (its standard input is a "
		    "socket); --selftest checks the confinement\n");
		return 2;
	}
	syscall(__NR_close_range, 3U, ~0U, 0);
	if (ph_confine(why, sizeof why) != 0) {
		char m[300];

		snprintf(m, sizeof m, "the helper cannot confine itself: %s", why);
		ph_send('E', m, strlen(m));
		return 1;
	}
	for (;;) {
		char type, *p;
		size_t len;

		p = ph_recv(&type, &len);
		if (type == 'L')
			ph_load(p, len);
		else if (type == 'F')
			ph_call(p, len);
		else
			ph_die();
		free(p);
	}
}
