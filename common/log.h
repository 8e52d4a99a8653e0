/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

#include "macros.h"

enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
	_LOG_LEVEL_MAX,
};

/* One logger for every hull binary. Library code does not log errors it returns;
 * top-level code logs them once. Lines carry the component (and the sandbox when set). */
void log_setup(const char *component, enum log_level level);
void log_set_sandbox(const char *sandbox);
/* Lines for the systemd journal (stderr is a journal stream: $JOURNAL_STREAM): the
 * syslog priority as a "<N>" prefix, no timestamp of ours. */
void log_set_journal(bool on);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
int log_level_from_string(const char *s);
_printf_(2, 3) void log_msg(enum log_level level, const char *fmt, ...);
/* Lines go to fn instead of stderr (NULL: stderr again): a detached sandbox's own
 * messages into its size-capped log. */
typedef void (*log_writer_fn)(const char *line, size_t n, void *userdata);
void log_set_writer(log_writer_fn fn, void *userdata);

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                         \
	do {                                                   \
		if (log_get_level() >= LOG_LEVEL_DEBUG)        \
			log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__); \
	} while (0)

/* Log "msg: strerror(-r)" at error level and return r (< 0). */
#define log_error_errno(r, fmt, ...)                                 \
	({                                                           \
		int _r = (r);                                        \
		errno = -_r;                                         \
		log_msg(LOG_LEVEL_ERROR, fmt ": %m", ##__VA_ARGS__); \
		_r;                                                  \
	})
