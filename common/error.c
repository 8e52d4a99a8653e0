/* SPDX-License-Identifier: MIT */
#include "error.h"

#include <stdarg.h>
#include <string.h>

static int error_setv(struct hull_error **err, int code, int with_errno, const char *fmt,
                      va_list ap)
{
	char *msg = NULL;

	if (!err || *err)
		return code;
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	if (with_errno && code < 0) {
		char *full = xasprintf("%s: %s", msg, strerror(-code));
		free(msg);
		msg = full;
	}
	*err = xmalloc(sizeof(**err));
	(*err)->code = code;
	(*err)->msg = msg;
	return code;
}

int hull_error_set(struct hull_error **err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	error_setv(err, code, 0, fmt, ap);
	va_end(ap);
	return code;
}

int hull_error_set_errno(struct hull_error **err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	error_setv(err, code, 1, fmt, ap);
	va_end(ap);
	return code;
}

int hull_error_prefix(struct hull_error **err, const char *fmt, ...)
{
	char *prefix = NULL, *full;
	va_list ap;

	if (!err || !*err)
		return -EIO;
	va_start(ap, fmt);
	if (vasprintf(&prefix, fmt, ap) < 0)
		abort();
	va_end(ap);
	full = xasprintf("%s: %s", prefix, (*err)->msg);
	free(prefix);
	free((*err)->msg);
	(*err)->msg = full;
	return (*err)->code;
}

struct hull_error *hull_error_free(struct hull_error *e)
{
	if (e) {
		free(e->msg);
		free(e);
	}
	return NULL;
}
