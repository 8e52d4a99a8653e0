/* SPDX-License-Identifier: MIT */
#include "ttrpc-client.h"

#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>

#include "log.h"
#include "ttrpc-msg.h"
#include "util.h"

#define MAX_PENDING 4096
#define READ_BUDGET (512u << 10)

struct pending {
	uint32_t sid;
	ttrpc_reply_cb cb;
	ttrpc_data_cb data_cb;
	void *userdata;
	int64_t deadline_ms; /* 0: none */
	int timeout_ms;
	char *method;
	struct pending *next;
};

struct ttrpc_client {
	const char *service;
	int fd;
	bool is_socket;
	uint32_t next_sid;
	struct pending *pending;
	size_t n_pending;
	struct ttrpc_decoder dec;
	struct buf out;
	/* attached */
	struct event_loop *loop;
	int timer_fd;
	ttrpc_client_error_cb error_cb;
	void *error_userdata;
	bool failed;
	struct hull_error *failure;
	unsigned depth; /* inside our own callbacks */
	bool doomed;    /* freed inside a callback: free when it returns */
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct ttrpc_client *ttrpc_client_new(int fd, const char *service)
{
	struct ttrpc_client *c = xcalloc(1, sizeof(*c));
	struct stat st;

	c->service = service;
	c->fd = fd;
	c->timer_fd = -1;
	c->next_sid = 1; /* client streams are odd */
	if (fd >= 0) {
		c->is_socket = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
		fd_set_nonblock(fd, 1);
	}
	return c;
}

static void pending_free(struct pending *p)
{
	free(p->method);
	free(p);
}

static void detach(struct ttrpc_client *c)
{
	if (!c->loop)
		return;
	if (c->fd >= 0)
		event_del(c->loop, c->fd);
	if (c->timer_fd >= 0) {
		event_del(c->loop, c->timer_fd);
		close(c->timer_fd);
		c->timer_fd = -1;
	}
	c->loop = NULL;
}

static void really_free(struct ttrpc_client *c)
{
	detach(c);
	while (c->pending) {
		struct pending *p = c->pending;
		c->pending = p->next;
		pending_free(p);
	}
	if (c->fd >= 0)
		close(c->fd);
	ttrpc_decoder_release(&c->dec);
	buf_release(&c->out);
	hull_error_free(c->failure);
	free(c);
}

struct ttrpc_client *ttrpc_client_free(struct ttrpc_client *c)
{
	if (!c)
		return NULL;
	if (c->depth > 0) {
		c->doomed = true;
		detach(c);
		return NULL;
	}
	really_free(c);
	return NULL;
}

/* After our callbacks returned: a free asked for inside them happens now. Returns false
 * when c is gone. */
static bool leave(struct ttrpc_client *c)
{
	if (--c->depth == 0 && c->doomed) {
		really_free(c);
		return false;
	}
	return true;
}

_printf_(3, 4) static void fail_with(struct ttrpc_client *c, int code, const char *fmt, ...);

void ttrpc_client_cancel_all(struct ttrpc_client *c, const char *why)
{
	if (!c || c->failed)
		return;
	/* The owner is the one asking: it is not told. */
	c->error_cb = NULL;
	c->depth++;
	fail_with(c, -ECANCELED, "%s", why);
	(void)leave(c);
}

bool ttrpc_client_failed(struct ttrpc_client *c, const struct hull_error **ret_err)
{
	if (ret_err)
		*ret_err = c->failure;
	return c->failed;
}

size_t ttrpc_client_out_pending(struct ttrpc_client *c)
{
	return c->out.len;
}

static void update_interest(struct ttrpc_client *c)
{
	if (c->loop && !c->failed)
		event_mod(c->loop, c->fd, EPOLLIN | (c->out.len ? EPOLLOUT : 0));
}

static void rearm_timer(struct ttrpc_client *c)
{
	struct itimerspec its = {0};
	int64_t first = 0;

	if (c->timer_fd < 0)
		return;
	for (struct pending *p = c->pending; p; p = p->next)
		if (p->deadline_ms && (!first || p->deadline_ms < first))
			first = p->deadline_ms;
	if (first) {
		its.it_value.tv_sec = (time_t)(first / 1000);
		its.it_value.tv_nsec = (long)(first % 1000) * 1000000L;
	}
	timerfd_settime(c->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* The connection is over (c->depth > 0 here): tell the owner, then answer every call. */
static void fail(struct ttrpc_client *c, struct hull_error *e)
{
	if (c->failed) {
		hull_error_free(e);
		return;
	}
	c->failed = true;
	c->failure = e;
	if (c->loop) {
		event_del(c->loop, c->fd);
		if (c->timer_fd >= 0)
			timerfd_settime(c->timer_fd, 0, &(struct itimerspec){0}, NULL);
	}
	if (c->error_cb && !c->doomed)
		c->error_cb(c, e, c->error_userdata);
	while (c->pending && !c->doomed) {
		struct pending *p = c->pending;
		c->pending = p->next;
		c->n_pending--;
		if (p->cb)
			p->cb(c, TTRPC_UNAVAILABLE, e->msg, NULL, 0, p->userdata);
		pending_free(p);
	}
}

_printf_(3, 4) static void fail_with(struct ttrpc_client *c, int code, const char *fmt, ...)
{
	struct hull_error *e = xcalloc(1, sizeof(*e));
	va_list ap;
	e->code = code;
	va_start(ap, fmt);
	e->msg = xvasprintf(fmt, ap);
	va_end(ap);
	fail(c, e);
}

static struct pending *pending_find(struct ttrpc_client *c, uint32_t sid, bool unlink)
{
	for (struct pending **pp = &c->pending; *pp; pp = &(*pp)->next) {
		struct pending *p = *pp;
		if (p->sid != sid)
			continue;
		if (unlink) {
			*pp = p->next;
			c->n_pending--;
		}
		return p;
	}
	return NULL;
}

/* A stream this client opened at some point (it may be over by now). */
static bool issued(const struct ttrpc_client *c, uint32_t sid)
{
	return (sid & 1) && sid < c->next_sid;
}

static void flush(struct ttrpc_client *c)
{
	while (c->out.len > 0 && !c->failed) {
		ssize_t n = c->is_socket ? send(c->fd, buf_head(&c->out), c->out.len,
		                                MSG_NOSIGNAL | MSG_DONTWAIT)
		                         : write(c->fd, buf_head(&c->out), c->out.len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			fail_with(c, -errno, "write: %s", strerror(errno));
			return;
		}
		buf_consume(&c->out, (size_t)n);
	}
}

static void dispatch_response(struct ttrpc_client *c, const struct ttrpc_frame *f)
{
	struct pending *p = pending_find(c, f->stream_id, true);
	Hull__Ttrpc__Response *resp;

	if (!p) {
		if (!issued(c, f->stream_id))
			fail_with(c, -EPROTO,
			          "protocol violation: a reply on stream %u, which was never "
			          "opened",
			          f->stream_id);
		else
			log_debug("ttrpc: late reply on stream %u dropped", f->stream_id);
		return;
	}
	resp = hull__ttrpc__response__unpack(NULL, f->length, f->payload);
	if (!resp) {
		if (p->cb)
			p->cb(c, TTRPC_INTERNAL, "the reply does not decode", NULL, 0, p->userdata);
		pending_free(p);
		fail_with(c, -EPROTO, "protocol violation: the reply on stream %u does not decode",
		          f->stream_id);
		return;
	}
	if (p->cb) {
		int code = resp->status ? resp->status->code : 0;
		const char *msg =
		    resp->status && resp->status->message ? resp->status->message : "";
		p->cb(c, code, msg, resp->payload.data, resp->payload.len, p->userdata);
	}
	hull__ttrpc__response__free_unpacked(resp, NULL);
	pending_free(p);
}

static void dispatch(struct ttrpc_client *c)
{
	struct ttrpc_frame f;
	int r;

	while (!c->failed && !c->doomed && (r = ttrpc_decoder_next(&c->dec, &f)) != 0) {
		if (r == -EMSGSIZE) {
			fail_with(c, -EPROTO,
			          "protocol violation: a %u-byte frame on stream %u, over the "
			          "%u MiB limit",
			          f.length, f.stream_id, TTRPC_MAX_PAYLOAD >> 20);
			return;
		}
		switch (f.type) {
		case TTRPC_TYPE_DATA: {
			struct pending *p = pending_find(c, f.stream_id, false);
			if (p && p->data_cb)
				p->data_cb(c, f.payload, f.length, p->userdata);
			else if (!p && !issued(c, f.stream_id))
				fail_with(c, -EPROTO,
				          "protocol violation: data on stream %u, which was never "
				          "opened",
				          f.stream_id);
			break;
		}
		case TTRPC_TYPE_RESPONSE:
			dispatch_response(c, &f);
			break;
		default:
			fail_with(c, -EPROTO,
			          "protocol violation: a frame of type %u on stream %u, which a "
			          "server does not send",
			          f.type, f.stream_id);
			return;
		}
	}
}

void ttrpc_client_feed(struct ttrpc_client *c, const void *data, size_t len)
{
	c->depth++;
	ttrpc_decoder_feed(&c->dec, data, len);
	dispatch(c);
	if (!c->doomed)
		update_interest(c);
	leave(c);
}

/* Write what is queued, read up to a budget and dispatch. Returns false when c is gone. */
static bool client_io(struct ttrpc_client *c)
{
	uint8_t tmp[128 << 10];
	size_t budget = READ_BUDGET;

	c->depth++;
	flush(c);
	while (budget > 0 && !c->failed && !c->doomed) {
		ssize_t n = read(c->fd, tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			fail_with(c, -errno, "read: %s", strerror(errno));
			break;
		}
		if (n == 0) {
			fail_with(c, -ECONNRESET, "the connection was closed");
			break;
		}
		budget -= MIN(budget, (size_t)n);
		ttrpc_decoder_feed(&c->dec, tmp, (size_t)n);
		dispatch(c);
	}
	flush(c);
	update_interest(c);
	return leave(c);
}

static void on_fd(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	(void)loop, (void)fd, (void)revents;
	client_io(userdata);
}

static void on_timer(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct ttrpc_client *c = userdata;
	int64_t now = mono_ms();
	uint64_t ticks;
	(void)loop, (void)revents;

	(void)!read(fd, &ticks, sizeof(ticks));
	c->depth++;
	for (bool again = true; again && !c->doomed && !c->failed;) {
		again = false;
		for (struct pending *p = c->pending; p; p = p->next) {
			if (!p->deadline_ms || p->deadline_ms > now)
				continue;
			_cleanup_free_ char *msg =
			    xasprintf("%s: no answer in %d ms", p->method, p->timeout_ms);
			pending_find(c, p->sid, true);
			if (p->cb)
				p->cb(c, TTRPC_DEADLINE_EXCEEDED, msg, NULL, 0, p->userdata);
			pending_free(p);
			again = true; /* the list may have changed under us */
			break;
		}
	}
	if (!c->doomed) {
		rearm_timer(c);
		update_interest(c); /* a callback may have queued a call (a retry) */
	}
	leave(c);
}

int ttrpc_client_attach(struct ttrpc_client *c, struct event_loop *loop,
                        ttrpc_client_error_cb error_cb, void *userdata)
{
	int r;

	c->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (c->timer_fd < 0)
		return -errno;
	r = event_add(loop, c->timer_fd, EPOLLIN, on_timer, c);
	if (r < 0) {
		close(c->timer_fd);
		c->timer_fd = -1;
		return r;
	}
	r = event_add(loop, c->fd, EPOLLIN | (c->out.len ? EPOLLOUT : 0), on_fd, c);
	if (r < 0) {
		event_del(loop, c->timer_fd);
		close(c->timer_fd);
		c->timer_fd = -1;
		return r;
	}
	c->loop = loop;
	c->error_cb = error_cb;
	c->error_userdata = userdata;
	rearm_timer(c);
	return 0;
}

/* Queued output goes from the loop (EPOLLOUT), never from inside the caller's call: a
 * write that fails there would answer every pending call re-entrantly. */
static void kick(struct ttrpc_client *c)
{
	if (c->depth > 0 || !c->loop)
		return; /* client_io() writes at its end */
	update_interest(c);
}

uint32_t ttrpc_client_call(struct ttrpc_client *c, const char *method, const ProtobufCMessage *msg,
                           uint8_t flags, int timeout_ms, ttrpc_reply_cb cb, ttrpc_data_cb data_cb,
                           void *userdata)
{
	struct pending *p;

	if (c->failed || c->doomed || c->n_pending >= MAX_PENDING)
		return 0;
	p = xcalloc(1, sizeof(*p));
	p->sid = c->next_sid;
	c->next_sid += 2;
	p->cb = cb;
	p->data_cb = data_cb;
	p->userdata = userdata;
	p->method = xstrdup(method);
	if (timeout_ms > 0) {
		p->timeout_ms = timeout_ms;
		p->deadline_ms = mono_ms() + timeout_ms;
	}
	p->next = c->pending;
	c->pending = p;
	c->n_pending++;
	ttrpc_request_append(&c->out, p->sid, flags, c->service, method, msg);
	if (p->deadline_ms)
		rearm_timer(c);
	kick(c);
	return p->sid;
}

void ttrpc_client_forget(struct ttrpc_client *c, uint32_t sid)
{
	struct pending *p = c ? pending_find(c, sid, true) : NULL;
	if (p)
		pending_free(p);
}

void ttrpc_client_send_data(struct ttrpc_client *c, uint32_t sid, const ProtobufCMessage *msg)
{
	if (c->failed || c->doomed)
		return;
	ttrpc_data_append(&c->out, sid, 0, msg);
	kick(c);
}

struct sync_state {
	bool done;
	int code;
	char *message;
	uint8_t *payload;
	size_t len;
};

static void sync_cb(struct ttrpc_client *c, int code, const char *message, const uint8_t *payload,
                    size_t len, void *userdata)
{
	struct sync_state *s = userdata;
	(void)c;
	s->done = true;
	s->code = code;
	s->message = xstrndup(message, 1024);
	if (len) {
		s->payload = xmalloc(len);
		memcpy(s->payload, payload, len);
	}
	s->len = len;
}

int ttrpc_client_call_sync(struct ttrpc_client *c, const char *method, const ProtobufCMessage *msg,
                           const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret,
                           int timeout_ms, struct hull_error **err)
{
	struct sync_state s = {0};
	int64_t deadline = mono_ms() + timeout_ms;
	uint32_t sid;
	int r = 0;

	if (c->failed)
		return hull_error_set(err, c->failure->code, "%s: %s", method, c->failure->msg);
	sid = ttrpc_client_call(c, method, msg, 0, 0, sync_cb, NULL, &s);
	if (!sid)
		return hull_error_set(err, -EBUSY, "%s: too many calls in flight", method);
	while (!s.done && !c->failed) {
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN | (c->out.len ? POLLOUT : 0)};
		int64_t left = deadline - mono_ms();
		if (left <= 0) {
			r = hull_error_set(err, -ETIMEDOUT, "%s: no answer in %d ms", method,
			                   timeout_ms);
			break;
		}
		if (poll(&pfd, 1, (int)MIN(left, (int64_t)INT32_MAX)) < 0 && errno != EINTR) {
			r = hull_error_set_errno(err, -errno, "poll");
			break;
		}
		if (pfd.revents)
			client_io(c);
	}
	if (!s.done) {
		ttrpc_client_forget(c, sid);
		if (r == 0)
			r = hull_error_set(err, c->failure ? c->failure->code : -ECONNRESET,
			                   "%s: %s", method,
			                   c->failure ? c->failure->msg : "no answer");
		free(s.message);
		return r;
	}
	if (s.code != 0) {
		r = hull_error_set(err, ttrpc_errno_from_code(s.code), "%s", s.message);
	} else if (desc) {
		*ret = protobuf_c_message_unpack(desc, NULL, s.len, s.payload);
		if (!*ret)
			r = hull_error_set(err, -EBADMSG, "%s: the reply does not decode", method);
	}
	free(s.message);
	free(s.payload);
	return r;
}
