/* log: the one log module. Lines are "ts=... level=... sub=... key=value ...".
 * Values that come from peers or users must go through log_q() (escaped and
 * quoted when needed). Values of secret-looking keys (password, secret, token,
 * sig, key, authorization) are redacted by the module itself before a line is
 * written, so a careless call cannot leak them. Thread safe. */
#ifndef SHIR_LOG_H
#define SHIR_LOG_H

#include <stdatomic.h>
#include <stddef.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

/* path NULL or "" or "-": stderr. Returns 0 or SHIR_EIO. */
int log_open(const char *path);
void log_close(void);
void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Parses "error|warn|info|debug"; returns 0 or SHIR_EINVAL. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level lvl);

void log_write(enum log_level lvl, const char *sub, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The level check comes before the arguments are evaluated: a filtered line
 * costs no log_q() escaping (that was a tenth of shird's CPU per relayed
 * request with debug lines off). */
extern _Atomic int log_threshold;
#define log_wants(lvl) ((int)(lvl) <= atomic_load_explicit(&log_threshold, memory_order_relaxed))
#define log_at(lvl, sub, ...) (log_wants(lvl) ? log_write(lvl, sub, __VA_ARGS__) : (void)0)
#define log_error(sub, ...) log_at(LOG_LVL_ERROR, sub, __VA_ARGS__)
#define log_warn(sub, ...) log_at(LOG_LVL_WARN, sub, __VA_ARGS__)
#define log_info(sub, ...) log_at(LOG_LVL_INFO, sub, __VA_ARGS__)
#define log_debug(sub, ...) log_at(LOG_LVL_DEBUG, sub, __VA_ARGS__)

/* Escapes s for a log value: quoted when it has spaces, quotes, '=' or is
 * empty; control and non-ASCII bytes as \xNN. Returns a thread-local buffer
 * from a small ring (valid for the next 7 calls on this thread). */
const char *log_q(const char *s);
const char *log_qn(const void *bytes, size_t len);

/* Redacts the values of secret-looking keys in a formatted line, in place.
 * Exposed for tests. */
void log_redact(char *line);

/* The most recent lines (for log bundles): calls fn for each, oldest first. */
void log_recent(void (*fn)(const char *line, void *arg), void *arg);

#endif
