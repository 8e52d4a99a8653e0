/* SPDX-License-Identifier: MIT */
#include "pod-stream.h"

#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "agent.pb-c.h"
#include "log.h"
#include "stream.h"
#include "util.h"

/* Source reads per wakeup: a fast source cannot keep the loop from its other fds. */
#define READS_PER_WAKEUP 4

struct stream {
	struct event_loop *loop;
	struct ttrpc_client *c;
	uint32_t sid;
	char *what;
	const struct stream_ops *ops;
	void *userdata;
	/* guest -> host */
	struct stream_sink *sink[3];
	struct buf pending[3]; /* what sink i has not taken yet */
	bool blocked[3];       /* sink i said -EAGAIN: wait for its fd */
	bool eof[3];           /* the guest closed fd i: close the sink once drained */
	uint64_t out_credit;   /* bytes the guest may still send */
	uint64_t consumed;     /* taken by the sinks since the last grant */
	/* host -> guest */
	int source;
	bool source_socket, source_pollable, source_eof;
	uint64_t in_credit;
	/* watched fds (source and sinks, each once) */
	int watch[3];
	size_t n_watch;
	/* the end */
	bool replied, over, finished;
	int result;
	struct hull_error *result_err;
};

/* ---- sinks ------------------------------------------------------------------------ */

struct fd_sink {
	struct stream_sink base;
	bool own, sock;
};

static ssize_t fd_sink_write(struct stream_sink *s, const void *p, size_t n)
{
	struct fd_sink *f = (struct fd_sink *)s;
	for (;;) {
		ssize_t r =
		    f->sock ? send(s->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT) : write(s->fd, p, n);
		if (r > 0)
			return r;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return -EAGAIN;
		return r < 0 ? -errno : -EPIPE;
	}
}

static void fd_sink_close(struct stream_sink *s)
{
	struct fd_sink *f = (struct fd_sink *)s;
	if (f->own)
		close(s->fd);
	else if (f->sock && !s->failed)
		(void)shutdown(s->fd, SHUT_WR); /* a port-forward's client: we are done writing */
	free(f);
}

struct stream_sink *stream_sink_fd(int fd, bool own)
{
	struct fd_sink *f = xcalloc(1, sizeof(*f));
	struct stat st;

	f->base.write = fd_sink_write;
	f->base.close = fd_sink_close;
	f->base.fd = fd;
	f->own = own;
	f->sock = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
	if (!f->sock && !(fstat(fd, &st) == 0 && S_ISREG(st.st_mode)))
		fd_set_nonblock(fd, 1);
	return &f->base;
}

/* A description of our own for a pipe, FIFO or terminal we inherited: O_NONBLOCK on
 * the shared one would change it for the shell and everyone else holding it. */
static int reopen(int fd, int flags)
{
	_cleanup_free_ char *p = xasprintf("/proc/self/fd/%d", fd);
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
		int r = open(p, flags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (r >= 0)
			return r;
		/* A pipe without a reader (ENXIO): a dup, whose writes fail at once. */
	}
	{
		int r = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		return r < 0 ? -errno : r;
	}
}

struct stream_sink *stream_sink_stdio(int fd)
{
	int own = reopen(fd, O_WRONLY);
	if (own < 0) {
		errno = -own;
		return NULL;
	}
	return stream_sink_fd(own, true);
}

int stream_source_stdio(int fd)
{
	return reopen(fd, O_RDONLY);
}

/* ---- the stream --------------------------------------------------------------------- */

static void on_fd(struct event_loop *loop, int fd, uint32_t revents, void *userdata);

static void watch_fd(struct stream *st, int fd)
{
	if (fd < 0)
		return;
	for (size_t i = 0; i < st->n_watch; i++)
		if (st->watch[i] == fd)
			return;
	/* Regular files cannot be polled (EPERM): they never make us wait either. */
	if (event_add(st->loop, fd, 0, on_fd, st) == 0)
		st->watch[st->n_watch++] = fd;
}

static bool watched(const struct stream *st, int fd)
{
	for (size_t i = 0; i < st->n_watch; i++)
		if (st->watch[i] == fd)
			return true;
	return false;
}

static void unwatch_all(struct stream *st)
{
	for (size_t i = 0; i < st->n_watch; i++)
		event_del(st->loop, st->watch[i]);
	st->n_watch = 0;
}

/* Stop reading the source; close it unless it is also the sink (a socket). */
static void drop_source(struct stream *st)
{
	if (st->source < 0)
		return;
	if (!st->source_socket) {
		for (size_t i = 0; i < st->n_watch; i++)
			if (st->watch[i] == st->source) {
				event_del(st->loop, st->watch[i]);
				st->watch[i] = st->watch[--st->n_watch];
				break;
			}
		close(st->source);
	}
	st->source = -1;
}

static bool source_wanted(const struct stream *st)
{
	return st->source >= 0 && !st->source_eof && st->in_credit > 0 && !st->over;
}

static void pump_deferred(void *userdata);

static void update(struct stream *st)
{
	for (size_t w = 0; w < st->n_watch; w++) {
		int fd = st->watch[w];
		uint32_t ev = 0;
		if (fd == st->source && source_wanted(st))
			ev |= EPOLLIN;
		for (int i = 1; i <= 2; i++)
			if (st->sink[i] && st->sink[i]->fd == fd && st->blocked[i])
				ev |= EPOLLOUT;
		event_mod(st->loop, fd, ev);
	}
	/* A source that cannot be polled (a regular file as stdin) is read as credit
	 * allows, one round of the loop at a time. */
	if (source_wanted(st) && !st->source_pollable) {
		event_defer_cancel(st->loop, pump_deferred, st);
		event_defer(st->loop, pump_deferred, st);
	}
}

static void send_frame(struct stream *st, const uint8_t *data, size_t len, bool eof,
                       uint64_t credit, bool cancel)
{
	Hull__Agent__V1__StdioData d = HULL__AGENT__V1__STDIO_DATA__INIT;
	d.fd = 0;
	d.data.data = (uint8_t *)data;
	d.data.len = len;
	d.eof = eof;
	d.credit = credit;
	d.cancel = cancel;
	ttrpc_client_send_data(st->c, st->sid, &d.base);
}

static void close_sink(struct stream *st, int i)
{
	if (!st->sink[i])
		return;
	st->sink[i]->close(st->sink[i]);
	st->sink[i] = NULL;
	buf_release(&st->pending[i]);
	st->blocked[i] = false;
}

static void finish_deferred(void *userdata)
{
	struct stream *st = userdata;
	st->finished = true;
	st->ops->done(st, st->result, st->result_err, st->userdata);
}

/* The stream is over for us: no more frames either way; done() from the loop. */
static void end(struct stream *st, int r, struct hull_error *err)
{
	if (st->over) {
		hull_error_free(err);
		return;
	}
	st->over = true;
	st->result = r;
	st->result_err = err;
	for (int i = 1; i <= 2; i++) {
		if (st->sink[i])
			st->sink[i]->failed = r < 0;
		close_sink(st, i);
	}
	drop_source(st);
	unwatch_all(st);
	event_defer_cancel(st->loop, pump_deferred, st);
	event_defer(st->loop, finish_deferred, st);
}

/* The host cuts the stream: the agent is told, its further frames are dropped. */
static void cut(struct stream *st, int r, struct hull_error *err)
{
	if (st->over) {
		hull_error_free(err);
		return;
	}
	if (!st->replied) {
		ttrpc_client_forget(st->c, st->sid);
		send_frame(st, NULL, 0, false, 0, true);
	}
	end(st, r, err);
}

_printf_(2, 3) static void violation(struct stream *st, const char *fmt, ...)
{
	struct hull_error *e = xcalloc(1, sizeof(*e));
	va_list ap;
	_cleanup_free_ char *what = NULL;

	va_start(ap, fmt);
	what = xvasprintf(fmt, ap);
	va_end(ap);
	e->code = -EPROTO;
	e->msg = xasprintf("protocol violation: %s: the guest %s", st->what, what);
	log_warn("%s; the stream is cut", e->msg);
	cut(st, -EPROTO, e);
}

/* Done once the reply came and every sink has what was sent (or is gone). */
static void maybe_end(struct stream *st)
{
	if (!st->replied || st->over)
		return;
	for (int i = 1; i <= 2; i++)
		if (st->sink[i] && st->pending[i].len > 0)
			return;
	end(st, st->result, TAKE_PTR(st->result_err));
}

static void grant(struct stream *st)
{
	if (st->consumed < STREAM_REGRANT || st->replied || st->over)
		return;
	st->out_credit += st->consumed;
	send_frame(st, NULL, 0, false, st->consumed, false);
	st->consumed = 0;
}

static void flush_sink(struct stream *st, int i)
{
	struct buf *b = &st->pending[i];

	st->blocked[i] = false;
	while (b->len > 0 && st->sink[i]) {
		ssize_t n = st->sink[i]->write(st->sink[i], buf_head(b), b->len);
		if (n == -EAGAIN) {
			st->blocked[i] = true;
			break;
		}
		if (n < 0) {
			/* The reader is gone for good: what it would have read is dropped,
			 * and the guest keeps going. */
			log_debug("%s: output %d: %s: dropping it from now on", st->what, i,
			          strerror((int)-n));
			st->consumed += b->len;
			buf_consume(b, b->len);
			close_sink(st, i);
			break;
		}
		buf_consume(b, (size_t)n);
		st->consumed += (uint64_t)n;
	}
	if (b->len == 0 && st->eof[i])
		close_sink(st, i);
	grant(st);
}

static void on_data(struct ttrpc_client *c, const uint8_t *payload, size_t len, void *userdata)
{
	struct stream *st = userdata;
	Hull__Agent__V1__StdioData *d;
	(void)c;

	if (st->over)
		return;
	d = hull__agent__v1__stdio_data__unpack(NULL, len, payload);
	if (!d) {
		violation(st, "sent a stream frame that does not decode");
		return;
	}
	if (d->data.len > 0 || d->eof) {
		if (d->fd != 1 && d->fd != 2) {
			violation(st, "sent output for fd %u", d->fd);
			goto out;
		}
	}
	if (d->data.len > 0) {
		int i = (int)d->fd;
		if (d->data.len > st->out_credit) {
			violation(st, "sent %zu bytes with %llu bytes of credit left", d->data.len,
			          (unsigned long long)st->out_credit);
			goto out;
		}
		st->out_credit -= d->data.len;
		if (st->sink[i] && !st->eof[i]) {
			buf_append(&st->pending[i], d->data.data, d->data.len);
			if (!st->blocked[i])
				flush_sink(st, i);
		} else {
			st->consumed += d->data.len; /* nobody reads it: credit straight back */
			grant(st);
		}
	}
	if (d->eof) {
		st->eof[d->fd] = true;
		if (st->pending[d->fd].len == 0)
			close_sink(st, (int)d->fd);
	}
	if (d->credit)
		/* Credit far beyond the window is a confused guest; what we send is ours to
		 * bound anyway. */
		st->in_credit = MIN(st->in_credit + d->credit, (uint64_t)2 * STREAM_WINDOW);
	update(st);
out:
	hull__agent__v1__stdio_data__free_unpacked(d, NULL);
}

static void on_reply(struct ttrpc_client *c, int code, const char *message, const uint8_t *payload,
                     size_t len, void *userdata)
{
	struct stream *st = userdata;
	(void)c, (void)payload, (void)len;

	if (st->over)
		return;
	st->replied = true;
	st->result = code ? ttrpc_errno_from_code(code) : 0;
	if (code)
		hull_error_set(&st->result_err, st->result, "%s", message);
	/* Nothing more goes to the guest; the source stops being read. */
	drop_source(st);
	update(st);
	maybe_end(st);
}

static void read_source(struct stream *st)
{
	static uint8_t chunk[STREAM_CHUNK];

	for (int k = 0; k < READS_PER_WAKEUP && source_wanted(st); k++) {
		size_t want = (size_t)MIN((uint64_t)sizeof(chunk), st->in_credit);
		ssize_t n = read(st->source, chunk, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			stream_close_input(st);
			return;
		}
		st->in_credit -= (uint64_t)n;
		send_frame(st, chunk, (size_t)n, false, 0, false);
		if ((size_t)n < want)
			break;
	}
	update(st);
}

static void pump_deferred(void *userdata)
{
	read_source(userdata);
}

static void on_fd(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct stream *st = userdata;
	(void)loop;

	if (revents & (EPOLLOUT | EPOLLERR | EPOLLHUP))
		for (int i = 1; i <= 2; i++)
			if (st->sink[i] && st->sink[i]->fd == fd && st->blocked[i])
				flush_sink(st, i);
	if ((revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && fd == st->source)
		read_source(st);
	if (!st->over) {
		update(st);
		maybe_end(st);
	}
}

struct stream *stream_open(struct event_loop *loop, struct ttrpc_client *c, const char *method,
                           const ProtobufCMessage *msg, const struct stream_config *cfg,
                           const struct stream_ops *ops, void *userdata)
{
	struct stream *st = xcalloc(1, sizeof(*st));

	st->loop = loop;
	st->c = c;
	st->what = xstrdup(cfg->what);
	st->ops = ops;
	st->userdata = userdata;
	st->source = cfg->source;
	st->source_socket = cfg->source_socket;
	for (int i = 1; i <= 2; i++)
		st->sink[i] = cfg->sink[i];
	st->sid =
	    ttrpc_client_call(c, method, msg, TTRPC_FLAG_REMOTE_OPEN, 0, on_reply, on_data, st);
	if (!st->sid) {
		for (int i = 1; i <= 2; i++)
			close_sink(st, i);
		if (st->source >= 0 && !st->source_socket)
			close(st->source);
		free(st->what);
		free(st);
		errno = ECONNRESET;
		return NULL;
	}
	/* The guest may send the window; without a source its fd 0 is closed at once. */
	st->out_credit = STREAM_WINDOW;
	send_frame(st, NULL, 0, st->source < 0, STREAM_WINDOW, false);
	if (st->source >= 0) {
		fd_set_nonblock(st->source, 1);
		watch_fd(st, st->source);
		st->source_pollable = watched(st, st->source);
	}
	for (int i = 1; i <= 2; i++)
		if (st->sink[i])
			watch_fd(st, st->sink[i]->fd);
	return st;
}

void stream_close_input(struct stream *st)
{
	if (st->over || st->source_eof)
		return;
	st->source_eof = true;
	if (st->source >= 0 && st->source_socket) {
		/* Also the sink: it stays, only its reading side is done. */
		(void)shutdown(st->source, SHUT_RD);
	} else {
		drop_source(st);
	}
	if (!st->replied)
		send_frame(st, NULL, 0, true, 0, false);
	update(st);
}

void stream_cancel(struct stream *st)
{
	struct hull_error *e = NULL;
	hull_error_set(&e, -ECANCELED, "%s: cancelled", st->what);
	cut(st, -ECANCELED, e);
}

void stream_abort(struct stream *st, const struct hull_error *err)
{
	struct hull_error *e = NULL;
	if (st->over)
		return;
	/* What the sinks take now, without waiting for them. */
	for (int i = 1; i <= 2; i++)
		if (st->sink[i] && st->pending[i].len && !st->blocked[i])
			flush_sink(st, i);
	ttrpc_client_forget(st->c, st->sid);
	st->replied = true;
	hull_error_set(&e, err->code, "%s", err->msg);
	end(st, err->code, e);
}

struct stream *stream_free(struct stream *st)
{
	if (!st)
		return NULL;
	if (!st->replied && !st->over) {
		ttrpc_client_forget(st->c, st->sid);
		send_frame(st, NULL, 0, false, 0, true);
	}
	for (int i = 1; i <= 2; i++)
		close_sink(st, i);
	drop_source(st);
	unwatch_all(st);
	event_defer_cancel(st->loop, finish_deferred, st);
	event_defer_cancel(st->loop, pump_deferred, st);
	for (int i = 0; i < 3; i++)
		buf_release(&st->pending[i]);
	hull_error_free(st->result_err);
	free(st->what);
	free(st);
	return NULL;
}

bool stream_is_done(const struct stream *st)
{
	return st->finished;
}

size_t stream_buffered(const struct stream *st)
{
	return st->pending[1].len + st->pending[2].len;
}
