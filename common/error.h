/* SPDX-License-Identifier: MIT */
#pragma once

#include "macros.h"

/* An error with context for the operator: a negative errno and a message that is
 * wrapped on the way up ("start sandbox: boot VM: open kernel '/x': No such file or
 * directory"). Functions take `struct hull_error **err` last and set it exactly once on
 * failure, never on success. */
struct hull_error {
	int code; /* < 0: -errno */
	char *msg;
};

/* Set *err (when err is non-NULL and *err is NULL) to a new error; returns code. */
_printf_(3, 4) int hull_error_set(struct hull_error **err, int code, const char *fmt, ...);
/* Like hull_error_set() and appends ": strerror(-code)". */
_printf_(3, 4) int hull_error_set_errno(struct hull_error **err, int code, const char *fmt, ...);
/* Prefix an existing error's message with context; returns its code. */
_printf_(2, 3) int hull_error_prefix(struct hull_error **err, const char *fmt, ...);
struct hull_error *hull_error_free(struct hull_error *e);
static inline void hull_error_freep(struct hull_error **e)
{
	hull_error_free(*e);
}
#define _cleanup_error_ _cleanup_(hull_error_freep)
