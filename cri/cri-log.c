/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cri-log.h"
#include "log.h"
#include "macros.h"
#include "util.h"

/* Bytes read per wakeup: a container that floods its stdout cannot keep the loop from
 * the other calls. */
#define READ_PER_WAKEUP (256u << 10)

struct cri_log {
	unsigned refs;
	int fd;
	char *path;
};

struct tap {
	cri_log_tap_fn fn;
	void *userdata;
	struct tap *next;
};

struct cri_log_reader {
	struct tap *taps;
	struct event_loop *loop;
	int fd;
	struct cri_log *log;
	const char *stream;
	struct buf line; /* the current line, less than CRI_LOG_MAX_LINE bytes */
	bool done;
	void (*eof)(void *userdata);
	void *userdata;
};

size_t cri_log_format(char *out, int64_t ns, const char *stream, bool partial, const void *msg,
                      size_t n)
{
	time_t sec = (time_t)(ns / 1000000000);
	struct tm tm;
	size_t len;

	gmtime_r(&sec, &tm);
	len = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	len += (size_t)sprintf(out + len, ".%09lldZ %s %c ", (long long)(ns % 1000000000), stream,
	                       partial ? 'P' : 'F');
	memcpy(out + len, msg, n);
	len += n;
	out[len++] = '\n';
	return len;
}

static int log_open_fd(const char *path, struct hull_error **err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return hull_error_set_errno(err, -errno, "open log '%s'", path);
	return fd;
}

struct cri_log *cri_log_open(const char *path, struct hull_error **err)
{
	int fd = log_open_fd(path, err);
	if (fd < 0)
		return NULL;
	struct cri_log *l = xcalloc(1, sizeof(*l));
	l->refs = 1;
	l->fd = fd;
	l->path = xstrdup(path);
	return l;
}

int cri_log_reopen(struct cri_log *l, struct hull_error **err)
{
	int fd = log_open_fd(l->path, err);
	if (fd < 0)
		return fd;
	close(l->fd);
	l->fd = fd;
	return 0;
}

struct cri_log *cri_log_ref(struct cri_log *l)
{
	l->refs++;
	return l;
}

struct cri_log *cri_log_unref(struct cri_log *l)
{
	if (l && --l->refs == 0) {
		close(l->fd);
		free(l->path);
		free(l);
	}
	return NULL;
}

/* One record; a full disk loses the record (logged once per reader), never blocks. */
static void emit(struct cri_log_reader *r, const void *msg, size_t n, bool partial)
{
	_cleanup_free_ char *rec = xmalloc(64 + n);
	size_t len = cri_log_format(rec, (int64_t)realtime_ns(), r->stream, partial, msg, n);
	if (write_all(r->log->fd, rec, len) < 0)
		log_debug("log '%s': %m", r->log->path);
}

static void take(struct cri_log_reader *r, const uint8_t *p, size_t n)
{
	while (n > 0) {
		const uint8_t *nl = memchr(p, '\n', n);
		size_t k = nl ? (size_t)(nl - p) : n;
		if (r->line.len + k > CRI_LOG_MAX_LINE) {
			/* Over the line cap: what we have goes out as a partial record. */
			size_t fit = CRI_LOG_MAX_LINE - r->line.len;
			buf_append(&r->line, p, fit);
			emit(r, buf_head(&r->line), r->line.len, true);
			buf_consume(&r->line, r->line.len);
			p += fit;
			n -= fit;
			continue;
		}
		buf_append(&r->line, p, k);
		if (!nl)
			return;
		emit(r, buf_head(&r->line), r->line.len, false);
		buf_consume(&r->line, r->line.len);
		p += k + 1;
		n -= k + 1;
	}
}

static void reader_finish(struct cri_log_reader *r)
{
	if (r->done)
		return;
	r->done = true;
	if (r->line.len > 0)
		emit(r, buf_head(&r->line), r->line.len, false);
	buf_release(&r->line);
	event_del(r->loop, r->fd);
	close(r->fd);
	r->fd = -1;
	if (r->eof)
		r->eof(r->userdata);
}

static void on_readable(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct cri_log_reader *r = userdata;
	uint8_t chunk[65536];
	size_t total = 0;
	(void)loop, (void)revents;

	while (total < READ_PER_WAKEUP) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			reader_finish(r);
			return;
		}
		take(r, chunk, (size_t)n);
		for (struct tap *t = r->taps, *next; t; t = next) {
			next = t->next; /* a tap may remove itself */
			t->fn(t->userdata, chunk, (size_t)n);
		}
		total += (size_t)n;
	}
}

struct cri_log_reader *cri_log_reader_new(struct event_loop *loop, int fd, struct cri_log *l,
                                          const char *stream, void (*eof)(void *userdata),
                                          void *userdata)
{
	struct cri_log_reader *r = xcalloc(1, sizeof(*r));
	r->loop = loop;
	r->fd = fd;
	r->log = cri_log_ref(l);
	r->stream = stream;
	r->eof = eof;
	r->userdata = userdata;
	fd_set_nonblock(fd, true);
	if (event_add(loop, fd, EPOLLIN, on_readable, r) < 0) {
		r->eof = NULL;
		reader_finish(r);
	}
	return r;
}

void cri_log_reader_add_tap(struct cri_log_reader *r, cri_log_tap_fn fn, void *userdata)
{
	struct tap *t = xcalloc(1, sizeof(*t));
	t->fn = fn;
	t->userdata = userdata;
	t->next = r->taps;
	r->taps = t;
}

void cri_log_reader_remove_tap(struct cri_log_reader *r, void *userdata)
{
	for (struct tap **pp = &r->taps; *pp; pp = &(*pp)->next)
		if ((*pp)->userdata == userdata) {
			struct tap *t = *pp;
			*pp = t->next;
			free(t);
			return;
		}
}

struct cri_log_reader *cri_log_reader_free(struct cri_log_reader *r)
{
	if (!r)
		return NULL;
	while (r->taps)
		cri_log_reader_remove_tap(r, r->taps->userdata);
	r->eof = NULL;
	reader_finish(r);
	cri_log_unref(r->log);
	free(r);
	return NULL;
}

bool cri_log_reader_done(const struct cri_log_reader *r)
{
	return r->done;
}
