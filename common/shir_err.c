#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/shir_err.h"

static const char *const shir_err_names[] = {
	[0] = "success",
	[1] = "out of memory",
	[2] = "invalid input",
	[3] = "configuration error",
	[4] = "I/O error",
	[5] = "not found",
	[6] = "not permitted",
	[7] = "protocol error",
	[8] = "timed out",
	[9] = "connection refused",
	[10] = "name resolution failed",
	[11] = "TLS failure",
	[12] = "authentication failed",
	[13] = "proxy failure",
	[14] = "too large",
	[15] = "busy",
	[16] = "connection closed",
	[17] = "not supported",
	[18] = "already exists",
	[19] = "cryptographic failure",
	[20] = "try again",
	[21] = "internal error",
};

const char *
shir_strerror(int code)
{
	if (code > 0 || code < SHIR_E_MIN)
		return "unknown error";
	return shir_err_names[-code];
}

void
shir_error_clear(struct shir_error *e)
{
	if (e == NULL)
		return;
	e->code = 0;
	e->msg[0] = '\0';
}

int
shir_error_set(struct shir_error *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (e == NULL)
		return code;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	return code;
}

int
shir_error_append(struct shir_error *e, int code, const char *fmt, ...)
{
	va_list ap;
	size_t len;

	if (e == NULL)
		return code;
	if (e->code == 0)
		e->code = code;
	len = strlen(e->msg);
	if (len > 0 && len + 1 < sizeof e->msg)
		e->msg[len++] = '\n', e->msg[len] = '\0';
	if (len + 1 >= sizeof e->msg)
		return e->code;
	va_start(ap, fmt);
	vsnprintf(e->msg + len, sizeof e->msg - len, fmt, ap);
	va_end(ap);
	return e->code;
}
