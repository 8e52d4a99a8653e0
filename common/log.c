/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *log_component = "hull";
static const char *log_sandbox;
static enum log_level log_level = LOG_LEVEL_WARN;
static bool log_journal;

static const char *const level_names[_LOG_LEVEL_MAX] = {
    [LOG_LEVEL_ERROR] = "error",
    [LOG_LEVEL_WARN] = "warn",
    [LOG_LEVEL_INFO] = "info",
    [LOG_LEVEL_DEBUG] = "debug",
};

void log_setup(const char *component, enum log_level level)
{
	log_component = component;
	log_level = level;
}

void log_set_journal(bool on)
{
	log_journal = on;
}

void log_set_sandbox(const char *sandbox)
{
	log_sandbox = sandbox;
}

void log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level log_get_level(void)
{
	return log_level;
}

int log_level_from_string(const char *s)
{
	for (int i = 0; i < _LOG_LEVEL_MAX; i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return i;
	return -EINVAL;
}

static log_writer_fn log_writer;
static void *log_writer_userdata;

void log_set_writer(log_writer_fn fn, void *userdata)
{
	log_writer = fn;
	log_writer_userdata = userdata;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	int saved = errno;
	char line[4096];
	size_t n = 0;
	struct timespec ts;
	va_list ap;

	if (level > log_level)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (log_journal) {
		/* sd-daemon(3)'s prefix: journald takes the priority from it (error 3, warning
		 * 4, info 6, debug 7) and stamps the time itself. */
		static const char prio[_LOG_LEVEL_MAX] = {
		    [LOG_LEVEL_ERROR] = '3',
		    [LOG_LEVEL_WARN] = '4',
		    [LOG_LEVEL_INFO] = '6',
		    [LOG_LEVEL_DEBUG] = '7',
		};
		n += (size_t)snprintf(line, sizeof(line), "<%c>%s: ", prio[level],
		                      level_names[level]);
	} else {
		n += (size_t)snprintf(line, sizeof(line), "%s[%ld.%03ld] %s: ", log_component,
		                      (long)ts.tv_sec, ts.tv_nsec / 1000000, level_names[level]);
	}
	if (log_sandbox && n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n, "sandbox=%s ", log_sandbox);
	if (n < sizeof(line)) {
		errno = saved;
		va_start(ap, fmt);
		n += (size_t)vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		va_end(ap);
	}
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* One write so concurrent writers do not interleave mid-line. */
	if (log_writer)
		log_writer(line, n, log_writer_userdata);
	else
		(void)!write(STDERR_FILENO, line, n);
	errno = saved;
}
