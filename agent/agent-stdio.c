/* SPDX-License-Identifier: MIT */
/*
 * The guest half of the stdio and port-forward streams (docs/agent-protocol.md):
 * StdioData frames on the call's ttrpc stream, credit based both ways with the window
 * of common/stream.h. Output is read from the pipe straight into a DATA frame at the
 * tail of the connection's output queue, and only while the host granted credit and
 * that queue is short: backpressure reaches the writing process through its pipe.
 */
#include "agent.h"

#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>

#include "agent-net.h"
#include "log.h"
#include "stream.h"
#include "ttrpc-msg.h"
#include "util.h"

/* Output queued for the host beyond which container output waits in its pipe. */
#define MAX_OUT_QUEUED (4u << 20)

/* The hand-encoded frame's data length takes at most 3 varint bytes. */
_Static_assert(STREAM_CHUNK < (1u << 21), "STREAM_CHUNK needs a longer length varint");

static void on_output(struct event_loop *loop, int fd, uint32_t revents, void *userdata);
static void on_stdin(struct event_loop *loop, int fd, uint32_t revents, void *userdata);

static bool is_forward(const struct agent_process *p)
{
	return p->container == &p->container->agent->forwards;
}

/* In the loop for events (or out of it for none: epoll reports a hangup even to an fd
 * that asked for nothing, which would spin). */
static void watch(struct agent_process *p, int fd, bool *watched, uint32_t events, event_cb cb)
{
	struct event_loop *loop = p->container->agent->loop;

	if (fd < 0)
		return;
	if (!events) {
		if (*watched)
			event_del(loop, fd);
		*watched = false;
	} else if (*watched) {
		event_mod(loop, fd, events);
	} else {
		*watched = event_add(loop, fd, events, cb, p) == 0;
	}
}

static void close_watched(struct agent_process *p, int *fd, bool *watched)
{
	if (*fd < 0)
		return;
	if (*watched)
		event_del(p->container->agent->loop, *fd);
	*watched = false;
	close(*fd);
	*fd = -1;
}

void agent_stdio_close(struct agent_process *p)
{
	close_watched(p, &p->proc.stdin_fd, &p->watch_in);
	close_watched(p, &p->proc.stdout_fd, &p->watch_out);
	close_watched(p, &p->proc.stderr_fd, &p->watch_err);
	p->stdout_open = p->stderr_open = false;
	p->stdin_eof = true;
	buf_consume(&p->stdin_buf, p->stdin_buf.len);
}

void agent_stdio_ready(struct agent_process *p)
{
	int *fds[] = {&p->proc.stdin_fd, &p->proc.stdout_fd, &p->proc.stderr_fd};
	for (size_t i = 0; i < ELEMENTSOF(fds); i++)
		if (*fds[i] >= 0)
			fd_set_nonblock(*fds[i], 1);
	p->stdout_open = p->proc.stdout_fd >= 0;
	p->stderr_open = p->proc.stderr_fd >= 0;
}

static struct buf *out_queue(struct agent_process *p)
{
	return p->attach_call ? ttrpc_call_out(p->attach_call) : NULL;
}

/* Read container output only while the host granted credit and our queue to the host
 * is not backed up. */
static void output_update(struct agent_process *p)
{
	struct buf *out = out_queue(p);
	uint32_t ev = out && p->out_credit > 0 && out->len < MAX_OUT_QUEUED ? EPOLLIN : 0;

	if (p->stdout_open)
		watch(p, p->proc.stdout_fd, &p->watch_out, ev, on_output);
	if (p->stderr_open)
		watch(p, p->proc.stderr_fd, &p->watch_err, ev, on_output);
}

static void flush(struct agent_process *p)
{
	if (p->attach_call)
		ttrpc_call_flush(p->attach_call);
}

static void stdio_send(struct agent_process *p, uint32_t fd, bool eof, uint64_t credit)
{
	Hull__Agent__V1__StdioData d = HULL__AGENT__V1__STDIO_DATA__INIT;
	d.fd = fd;
	d.eof = eof;
	d.credit = credit;
	ttrpc_call_send_data(p->attach_call, &d.base);
}

static void forward_free(struct agent_process *p)
{
	for (struct agent_process **pp = &p->container->procs; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	agent_process_free(p);
}

/* The stream ends with the call's answer: r (0 once both outputs reached EOF, else
 * why it was cut). A port forward is done with then. */
static void stream_end(struct agent_process *p, int r, const char *why)
{
	const struct hull_error e = {.code = r, .msg = (char *)why};
	Hull__Agent__V1__Empty empty = HULL__AGENT__V1__EMPTY__INIT;
	struct ttrpc_call *call = TAKE_PTR(p->attach_call);

	if (r < 0)
		agent_stdio_close(p);
	if (call)
		ttrpc_call_reply(call, r, r < 0 ? &e : NULL, r < 0 ? NULL : &empty.base);
	if (is_forward(p))
		forward_free(p);
}

static void stdio_maybe_finish(struct agent_process *p)
{
	if (p->attach_call && !p->stdout_open && !p->stderr_open)
		stream_end(p, 0, NULL);
}

/* Read up to want bytes from fd straight into a DATA frame at the tail of out, encoded
 * as StdioData{fd: which, data: ...} by hand: the bytes are copied once (pipe -> queue)
 * instead of twice (pipe -> chunk -> packed message), which matters when every guest
 * memcpy is emulated. Returns read()'s result; queues only on n > 0. */
static ssize_t stdio_read_frame(struct agent_process *p, struct buf *out, int fd, uint32_t which,
                                size_t want)
{
	/* header, fd tag+value, data tag, length varint (3 bytes cover < 2 MiB) */
	const size_t pre = TTRPC_HEADER_SIZE + 2 + 1 + 3;
	uint8_t *b = buf_reserve(out, pre + want);
	size_t vlen, off;
	ssize_t n;

	n = read(fd, b + pre, want);
	if (n <= 0)
		return n;
	vlen = n < (1 << 7) ? 1 : n < (1 << 14) ? 2 : 3;
	off = TTRPC_HEADER_SIZE;
	b[off++] = 0x08; /* field 1, varint */
	b[off++] = (uint8_t)which;
	b[off++] = 0x12; /* field 2, length-delimited */
	for (size_t v = (size_t)n, i = 0; i < vlen; i++, v >>= 7)
		b[off++] = (uint8_t)((v & 0x7f) | (i + 1 < vlen ? 0x80 : 0));
	if (off != pre)
		memmove(b + off, b + pre, (size_t)n);
	ttrpc_header_encode(b, (uint32_t)(off - TTRPC_HEADER_SIZE + (size_t)n),
	                    ttrpc_call_stream_id(p->attach_call), TTRPC_TYPE_DATA, 0);
	buf_commit(out, off + (size_t)n);
	return n;
}

static void on_output(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct agent_process *p = userdata;
	uint32_t which = fd == p->proc.stdout_fd ? 1 : 2;
	struct buf *out = out_queue(p);
	ssize_t n;

	(void)loop;
	(void)revents;
	if (fd != p->proc.stdout_fd && fd != p->proc.stderr_fd)
		return;
	/* Drain while there is credit and room: one flush for many reads keeps the
	 * syscall count per byte low, which is what costs under TCG. */
	while (out && p->out_credit > 0 && out->len < MAX_OUT_QUEUED) {
		size_t want = (size_t)MIN((uint64_t)STREAM_CHUNK, p->out_credit);
		n = stdio_read_frame(p, out, fd, which, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			/* EOF, or EIO from a pty master once the last slave is closed. */
			stdio_send(p, which, true, 0);
			if (which == 1) {
				p->stdout_open = false;
				/* With a terminal stdin is a dup of the master: it stays. */
				close_watched(p, &p->proc.stdout_fd, &p->watch_out);
			} else {
				p->stderr_open = false;
				close_watched(p, &p->proc.stderr_fd, &p->watch_err);
			}
			flush(p);
			stdio_maybe_finish(p); /* may free p */
			return;
		}
		p->out_credit -= (uint64_t)n;
		if ((size_t)n < want)
			break; /* the pipe is empty for now */
	}
	output_update(p);
	flush(p);
}

static void stdin_grant(struct agent_process *p, bool force)
{
	if (!p->attach_call || p->in_unacked == 0)
		return;
	if (!force && p->in_unacked < STREAM_REGRANT)
		return;
	stdio_send(p, 0, false, p->in_unacked);
	p->in_credit += p->in_unacked;
	p->in_unacked = 0;
}

static void stdin_close(struct agent_process *p)
{
	/* With a terminal the stdin fd is a dup of the master: closing it does not hang
	 * up the terminal, as with docker -t. A forward's is a dup of its socket: the
	 * server is told the client is done. */
	if (is_forward(p) && p->proc.stdin_fd >= 0)
		(void)shutdown(p->proc.stdin_fd, SHUT_WR);
	close_watched(p, &p->proc.stdin_fd, &p->watch_in);
	p->in_unacked += p->stdin_buf.len;
	buf_consume(&p->stdin_buf, p->stdin_buf.len);
}

static void stdin_pump(struct agent_process *p)
{
	if (p->proc.stdin_fd < 0) {
		p->in_unacked += p->stdin_buf.len;
		buf_consume(&p->stdin_buf, p->stdin_buf.len);
		stdin_grant(p, true);
		return;
	}
	while (p->stdin_buf.len > 0) {
		/* A forward's server may be gone: EPIPE, not SIGPIPE. */
		ssize_t n = is_forward(p) ? send(p->proc.stdin_fd, buf_head(&p->stdin_buf),
		                                 p->stdin_buf.len, MSG_NOSIGNAL)
		                          : write(p->proc.stdin_fd, buf_head(&p->stdin_buf),
		                                  p->stdin_buf.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			watch(p, p->proc.stdin_fd, &p->watch_in, EPOLLOUT, on_stdin);
			stdin_grant(p, false);
			return;
		}
		if (n < 0) {
			/* EPIPE: the process closed its stdin; drop what is left. */
			stdin_close(p);
			stdin_grant(p, true);
			return;
		}
		buf_consume(&p->stdin_buf, (size_t)n);
		p->in_unacked += (uint64_t)n;
	}
	watch(p, p->proc.stdin_fd, &p->watch_in, 0, on_stdin);
	if (p->stdin_eof)
		stdin_close(p);
	stdin_grant(p, true);
}

static void on_stdin(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct agent_process *p = userdata;

	(void)loop;
	(void)revents;
	if (fd != p->proc.stdin_fd)
		return;
	stdin_pump(p);
	flush(p);
}

static void on_stdio_data(struct ttrpc_call *call, const uint8_t *payload, size_t len,
                          void *userdata)
{
	struct agent_process *p = userdata;
	Hull__Agent__V1__StdioData *d = hull__agent__v1__stdio_data__unpack(NULL, len, payload);

	(void)call;
	if (!d) {
		log_warn("%s: undecodable stdio frame dropped", p->container->id);
		return;
	}
	if (d->cancel) {
		/* The host abandons the stream: our end of the process's stdio (or the
		 * forward's socket) closes; the process itself runs on. */
		hull__agent__v1__stdio_data__free_unpacked(d, NULL);
		stream_end(p, -ECANCELED, "stream cancelled by the host");
		return;
	}
	if (d->credit > 0) {
		/* Capped at the window: a host granting more is confused or hostile. */
		p->out_credit = MIN(p->out_credit + d->credit, (uint64_t)STREAM_WINDOW);
		output_update(p);
	}
	if (d->fd == 0 && (d->data.len > 0 || d->eof) && !p->stdin_eof) {
		if (d->data.len > p->in_credit) {
			/* More than we granted: we would have to buffer without bound. */
			hull__agent__v1__stdio_data__free_unpacked(d, NULL);
			log_warn("%s: the host sent stdin past its credit: stream cut",
			         p->container->id);
			stream_end(p, -EMSGSIZE, "stdin past the credit granted");
			return;
		}
		p->in_credit -= d->data.len;
		buf_append(&p->stdin_buf, d->data.data, d->data.len);
		p->stdin_eof = d->eof;
		stdin_pump(p);
	}
	hull__agent__v1__stdio_data__free_unpacked(d, NULL);
	flush(p);
}

static void stream_begin(struct agent_process *p, struct ttrpc_call *call)
{
	p->attach_call = call;
	p->out_credit = 0;
	p->in_credit = STREAM_WINDOW;
	p->in_unacked = 0;
	ttrpc_call_set_data_cb(call, on_stdio_data, p);
	/* Grant the host its stdin window; it grants ours in its first data frame. */
	stdio_send(p, 0, false, STREAM_WINDOW);
}

int agent_stdio_attach(struct agent_process *p, struct ttrpc_call *call, struct hull_error **err)
{
	if (p->proc.phase == CONTAINER_SETUP || p->proc.phase == CONTAINER_NONE)
		return hull_error_set(err, -EBUSY, "container '%s' is being created",
		                      p->container->id);
	if (p->attach_call)
		return hull_error_set(err, -EBUSY, "container '%s': stdio already attached",
		                      p->container->id);
	stream_begin(p, call);
	stdio_maybe_finish(p);
	flush(p);
	return 1;
}

int agent_port_forward(struct agent *a, unsigned port, struct ttrpc_call *call,
                       struct hull_error **err)
{
	struct agent_process *p;
	int fd, r;

	fd = net_dial_local(port, err);
	if (fd < 0)
		return fd;
	p = agent_process_new(&a->forwards, "");
	p->proc.stdout_fd = fd;
	p->proc.stdin_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (p->proc.stdin_fd < 0) {
		r = -errno;
		forward_free(p);
		return hull_error_set_errno(err, r, "dup");
	}
	agent_stdio_ready(p);
	/* As AttachStdio: the host's window first, ours comes with its first frame. */
	stream_begin(p, call);
	flush(p);
	return 1;
}

static void drained(void *userdata)
{
	struct agent *a = userdata;

	a->drain_pending = false;
	for (struct agent_container *c = a->containers; c; c = c->next)
		for (struct agent_process *p = c->procs; p; p = p->next)
			if (p->attach_call)
				output_update(p);
	for (struct agent_process *p = a->forwards.procs; p; p = p->next)
		output_update(p);
}

void agent_stdio_drained(void *userdata)
{
	struct agent *a = userdata;

	/* Called from inside the server's flush, which may be inside one of our own
	 * replies: look again once the current callbacks are done. */
	if (!a->drain_pending) {
		a->drain_pending = true;
		event_defer(a->loop, drained, a);
	}
}

void agent_stdio_stop(struct agent *a)
{
	event_defer_cancel(a->loop, drained, a);
	a->drain_pending = false;
}
