/* SPDX-License-Identifier: MIT */
#include "pod-log.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "util.h"

struct logfile {
	unsigned refs;
	char *path;
	int fd;
	uint64_t size, max_size;
	unsigned max_files;
};

struct logfile *logfile_open(const char *path, uint64_t max_size, unsigned max_files,
                             struct hull_error **err)
{
	struct logfile *l;
	struct stat st;
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

	if (fd < 0) {
		hull_error_set_errno(err, -errno, "open '%s'", path);
		return NULL;
	}
	l = xcalloc(1, sizeof(*l));
	l->refs = 1;
	l->path = xstrdup(path);
	l->fd = fd;
	l->size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	l->max_size = max_size ? max_size : LOGFILE_DEFAULT_MAX_SIZE;
	l->max_files = max_files ? max_files : LOGFILE_DEFAULT_MAX_FILES;
	return l;
}

/* PATH.(k-1) -> PATH.k, then the full PATH becomes PATH.1 and a new PATH takes its place
 * in one step (RENAME_EXCHANGE): a reader (hull logs -f) never finds PATH missing. */
static void rotate(struct logfile *l)
{
	_cleanup_free_ char *fresh = xasprintf("%s.new", l->path);
	int fd;

	for (unsigned i = l->max_files - 1; i >= 2; i--) {
		_cleanup_free_ char *from = xasprintf("%s.%u", l->path, i - 1);
		_cleanup_free_ char *to = xasprintf("%s.%u", l->path, i);
		(void)rename(from, to);
	}
	fd = open(fresh, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return; /* keep writing where we were: the cap is then best effort */
	if (renameat2(AT_FDCWD, fresh, AT_FDCWD, l->path, RENAME_EXCHANGE) < 0) {
		/* A filesystem without exchange: the old way, PATH briefly missing. */
		if (l->max_files > 1) {
			_cleanup_free_ char *one = xasprintf("%s.1", l->path);
			(void)rename(l->path, one);
		}
		if (rename(fresh, l->path) < 0) {
			close(fd);
			(void)unlink(fresh);
			return;
		}
	} else if (l->max_files > 1) {
		_cleanup_free_ char *one = xasprintf("%s.1", l->path);
		(void)rename(fresh, one); /* fresh now names the full one */
	} else {
		(void)unlink(fresh);
	}
	close(l->fd);
	l->fd = fd;
	l->size = 0;
}

void logfile_write(struct logfile *l, const void *p, size_t n)
{
	const uint8_t *b = p;

	/* In pieces that fit: one write (up to the stream window) never takes a file past
	 * max_size. */
	while (n > 0) {
		size_t take = (size_t)MIN((uint64_t)n, l->max_size);
		if (l->size > 0 && l->size + take > l->max_size)
			rotate(l);
		take = (size_t)MIN((uint64_t)take, l->max_size - MIN(l->size, l->max_size));
		if (take == 0)
			take = (size_t)MIN((uint64_t)n, l->max_size); /* rotation failed */
		/* A regular file on the state dir: a write does not wait for anyone. */
		if (write_all(l->fd, b, take) < 0)
			return;
		l->size += take;
		b += take;
		n -= take;
	}
}

struct logfile *logfile_unref(struct logfile *l)
{
	if (l && --l->refs == 0) {
		close(l->fd);
		free(l->path);
		free(l);
	}
	return NULL;
}

struct log_sink {
	struct stream_sink base;
	struct logfile *l;
};

static ssize_t sink_write(struct stream_sink *s, const void *p, size_t n)
{
	logfile_write(((struct log_sink *)s)->l, p, n);
	return (ssize_t)n;
}

static void sink_close(struct stream_sink *s)
{
	logfile_unref(((struct log_sink *)s)->l);
	free(s);
}

struct stream_sink *logfile_sink(struct logfile *l)
{
	struct log_sink *s = xcalloc(1, sizeof(*s));
	s->base.write = sink_write;
	s->base.close = sink_close;
	s->base.fd = -1;
	s->l = l;
	l->refs++;
	return &s->base;
}
