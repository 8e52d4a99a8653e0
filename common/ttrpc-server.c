/* SPDX-License-Identifier: MIT */
#include "ttrpc-server.h"

#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>

#include "log.h"
#include "ttrpc-msg.h"
#include "util.h"

#define MAX_CONNECTIONS 64
#define MAX_CALLS_PER_CONNECTION 256
/* Output a peer has not read yet: above HIGH its requests wait, below LOW they are read
 * again. */
#define OUT_HIGH (16u << 20)
#define OUT_LOW (4u << 20)
/* Bytes read per wakeup: a peer that floods cannot keep the loop from its other fds. */
#define READ_BUDGET (512u << 10)
#define PARK_MS 50

struct ttrpc_conn {
	struct ttrpc_server *server;
	int fd;
	bool is_socket;
	bool keep;    /* TTRPC_FD_KEEP */
	bool parked;  /* keep: hung up, polled again by retry_fd */
	bool paused;  /* the peer does not read: its requests wait */
	int retry_fd; /* keep: timerfd */
	struct ttrpc_decoder dec;
	struct buf out;
	struct ttrpc_call *calls; /* kept by handlers */
	size_t n_calls;
	struct ttrpc_conn *next;
};

struct ttrpc_call {
	struct ttrpc_conn *conn; /* NULL once the connection closed */
	uint32_t stream_id;
	Hull__Ttrpc__Request *req;
	ttrpc_call_data_fn data_fn;
	void *data_userdata;
	struct ttrpc_call *next;
};

struct ttrpc_server {
	struct event_loop *loop;
	const struct ttrpc_method *methods;
	size_t n_methods;
	void *userdata;
	ttrpc_drain_fn drain_fn;
	void *drain_userdata;
	int listen_fd;
	struct ttrpc_conn *conns;
	size_t n_conns;
};

struct ttrpc_server *ttrpc_server_new(struct event_loop *loop, const struct ttrpc_method *methods,
                                      size_t n_methods, void *userdata)
{
	struct ttrpc_server *s = xcalloc(1, sizeof(*s));
	s->loop = loop;
	s->methods = methods;
	s->n_methods = n_methods;
	s->userdata = userdata;
	s->listen_fd = -1;
	return s;
}

void ttrpc_server_set_drain_cb(struct ttrpc_server *s, ttrpc_drain_fn fn, void *userdata)
{
	s->drain_fn = fn;
	s->drain_userdata = userdata;
}

static void conn_update(struct ttrpc_conn *c)
{
	if (c->parked)
		return;
	event_mod(c->server->loop, c->fd, (c->paused ? 0 : EPOLLIN) | (c->out.len ? EPOLLOUT : 0));
}

static ssize_t conn_write(struct ttrpc_conn *c, const void *p, size_t n)
{
	return c->is_socket ? send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT) : write(c->fd, p, n);
}

static void conn_flush(struct ttrpc_conn *c)
{
	size_t before = c->out.len;

	while (c->out.len > 0 && !c->parked) {
		ssize_t n = conn_write(c, buf_head(&c->out), c->out.len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break; /* EAGAIN: wait for EPOLLOUT; errors show up as EPOLLHUP/ERR */
		}
		buf_consume(&c->out, (size_t)n);
	}
	if (c->paused && c->out.len < OUT_LOW)
		c->paused = false;
	conn_update(c);
	if (c->out.len < before && c->server->drain_fn)
		c->server->drain_fn(c->server->drain_userdata);
}

static void call_free(struct ttrpc_call *call)
{
	if (call->req)
		hull__ttrpc__request__free_unpacked(call->req, NULL);
	free(call);
}

static void call_unlink(struct ttrpc_call *call)
{
	struct ttrpc_conn *c = call->conn;
	for (struct ttrpc_call **pp = &c->calls; *pp; pp = &(*pp)->next)
		if (*pp == call) {
			*pp = call->next;
			c->n_calls--;
			return;
		}
}

static void conn_close(struct ttrpc_conn *c)
{
	struct ttrpc_server *s = c->server;
	/* Calls still kept by handlers outlive the connection: their answers are dropped. */
	for (struct ttrpc_call *call = c->calls; call; call = call->next)
		call->conn = NULL;
	for (struct ttrpc_conn **pp = &s->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	s->n_conns--;
	event_del(s->loop, c->fd);
	close(c->fd);
	if (c->retry_fd >= 0) {
		event_del(s->loop, c->retry_fd);
		close(c->retry_fd);
	}
	ttrpc_decoder_release(&c->dec);
	buf_release(&c->out);
	free(c);
}

static void reply(struct ttrpc_conn *c, uint32_t sid, int r, const struct hull_error *err,
                  const ProtobufCMessage *msg)
{
	if (r < 0)
		ttrpc_response_append(&c->out, sid, (int)ttrpc_code_from_errno(r),
		                      err ? err->msg : strerror(-r), NULL);
	else
		ttrpc_response_append(&c->out, sid, 0, NULL, msg);
}

const char *ttrpc_call_metadata(struct ttrpc_call *call, const char *key)
{
	for (size_t i = 0; call->req && i < call->req->n_metadata; i++)
		if (call->req->metadata[i]->key && strcmp(call->req->metadata[i]->key, key) == 0)
			return call->req->metadata[i]->value;
	return NULL;
}

void ttrpc_call_set_data_cb(struct ttrpc_call *call, ttrpc_call_data_fn fn, void *userdata)
{
	call->data_fn = fn;
	call->data_userdata = userdata;
}

uint32_t ttrpc_call_stream_id(const struct ttrpc_call *call)
{
	return call->stream_id;
}

struct buf *ttrpc_call_out(struct ttrpc_call *call)
{
	return call->conn ? &call->conn->out : NULL;
}

void ttrpc_call_flush(struct ttrpc_call *call)
{
	if (call->conn)
		conn_flush(call->conn);
}

void ttrpc_call_send_data(struct ttrpc_call *call, const ProtobufCMessage *msg)
{
	if (!call->conn)
		return;
	ttrpc_data_append(&call->conn->out, call->stream_id, 0, msg);
	conn_update(call->conn);
}

void ttrpc_call_reply(struct ttrpc_call *call, int r, const struct hull_error *err,
                      const ProtobufCMessage *msg)
{
	struct ttrpc_conn *c = call->conn;
	if (c) {
		call_unlink(call);
		reply(c, call->stream_id, r, err, msg);
		conn_flush(c);
	}
	call_free(call);
}

static struct ttrpc_call *call_find(struct ttrpc_conn *c, uint32_t sid)
{
	for (struct ttrpc_call *call = c->calls; call; call = call->next)
		if (call->stream_id == sid)
			return call;
	return NULL;
}

static void handle_request(struct ttrpc_conn *c, const struct ttrpc_frame *f)
{
	struct ttrpc_server *s = c->server;
	_cleanup_error_ struct hull_error *err = NULL;
	const struct ttrpc_method *m = NULL;
	struct ttrpc_call *call;
	ProtobufCMessage *ret = NULL;
	int r;

	if (call_find(c, f->stream_id)) {
		/* One call per stream: a second request on a live stream is refused without
		 * touching the first. */
		hull_error_set(&err, -EBUSY, "stream %u is in use", f->stream_id);
		reply(c, f->stream_id, -EBUSY, err, NULL);
		return;
	}
	call = xcalloc(1, sizeof(*call));
	call->conn = c;
	call->stream_id = f->stream_id;
	call->req = hull__ttrpc__request__unpack(NULL, f->length, f->payload);
	if (!call->req) {
		reply(c, f->stream_id, -EINVAL, NULL, NULL);
		call_free(call);
		return;
	}
	for (size_t i = 0; i < s->n_methods; i++)
		if (strcmp(s->methods[i].service, call->req->service) == 0 &&
		    strcmp(s->methods[i].method, call->req->method) == 0)
			m = &s->methods[i];
	if (!m) {
		hull_error_set(&err, -EOPNOTSUPP, "%.128s/%.64s: not implemented",
		               call->req->service, call->req->method);
		reply(c, f->stream_id, -EOPNOTSUPP, err, NULL);
		call_free(call);
		return;
	}
	if (c->n_calls >= MAX_CALLS_PER_CONNECTION) {
		hull_error_set(&err, -EBUSY, "%u calls in flight on this connection: busy",
		               MAX_CALLS_PER_CONNECTION);
		reply(c, f->stream_id, -EBUSY, err, NULL);
		call_free(call);
		return;
	}
	log_debug("ttrpc %s/%s on stream %u", m->service, m->method, f->stream_id);
	/* Listed before the handler runs: a handler that keeps the call may also answer it
	 * at once (ttrpc_call_reply frees it), before it returns 1. */
	call->next = c->calls;
	c->calls = call;
	c->n_calls++;
	r = m->fn(s->userdata, call, call->req->payload.data, call->req->payload.len, &ret, &err);
	if (r == 1)
		return; /* kept: answered with ttrpc_call_reply(), maybe already */
	if (call->conn)
		call_unlink(call);
	if (call->conn)
		reply(c, f->stream_id, r, err, ret);
	if (ret)
		protobuf_c_message_free_unpacked(ret, NULL);
	call_free(call);
}

static void handle_data(struct ttrpc_conn *c, const struct ttrpc_frame *f)
{
	struct ttrpc_call *call = call_find(c, f->stream_id);
	if (!call || !call->data_fn) {
		log_debug("ttrpc: data on stream %u, which no call keeps: dropped", f->stream_id);
		return;
	}
	call->data_fn(call, f->payload, f->length, call->data_userdata);
}

static void conn_park(struct ttrpc_conn *c)
{
	struct itimerspec its = {.it_value = {.tv_nsec = PARK_MS * 1000000L}};
	event_del(c->server->loop, c->fd);
	c->parked = true;
	timerfd_settime(c->retry_fd, 0, &its, NULL);
}

static void on_retry(struct event_loop *loop, int fd, uint32_t revents, void *userdata);
static void on_conn(struct event_loop *loop, int fd, uint32_t revents, void *userdata);

/* Returns false when c was closed (it is freed). */
static bool conn_hangup(struct ttrpc_conn *c)
{
	if (c->keep) {
		conn_park(c);
		return true;
	}
	conn_close(c);
	return false;
}

static void on_conn(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct ttrpc_conn *c = userdata;
	uint8_t tmp[64 << 10];
	struct ttrpc_frame f;
	size_t budget = READ_BUDGET;
	int r;

	(void)loop;
	(void)fd;
	if (revents & EPOLLOUT)
		conn_flush(c);
	if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	if (!(revents & EPOLLIN)) {
		/* Hung up with nothing left to read. */
		conn_hangup(c);
		return;
	}
	while (budget > 0 && !c->paused) {
		ssize_t n = read(c->fd, tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			if (!conn_hangup(c))
				return;
			break;
		}
		budget -= MIN(budget, (size_t)n);
		ttrpc_decoder_feed(&c->dec, tmp, (size_t)n);
		while ((r = ttrpc_decoder_next(&c->dec, &f)) != 0) {
			if (r == -EMSGSIZE) {
				if (f.type == TTRPC_TYPE_REQUEST)
					ttrpc_response_append(&c->out, f.stream_id,
					                      TTRPC_RESOURCE_EXHAUSTED,
					                      "message over the 4 MiB limit", NULL);
				continue;
			}
			if (f.type == TTRPC_TYPE_REQUEST)
				handle_request(c, &f);
			else if (f.type == TTRPC_TYPE_DATA)
				handle_data(c, &f);
		}
		/* A peer that sends requests but never reads its answers waits. */
		if (c->out.len > OUT_HIGH) {
			if (!c->paused)
				log_warn("ttrpc: the peer does not read its replies: not reading "
				         "its requests until it does");
			c->paused = true;
		}
	}
	conn_flush(c);
}

static void on_retry(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct ttrpc_conn *c = userdata;
	uint64_t ticks;
	(void)revents;
	(void)!read(fd, &ticks, sizeof(ticks));
	if (c->parked && event_add(loop, c->fd, EPOLLIN, on_conn, c) == 0) {
		c->parked = false;
		conn_flush(c);
	}
}

int ttrpc_server_add_fd(struct ttrpc_server *s, int fd, unsigned flags)
{
	struct ttrpc_conn *c;
	struct stat st;
	int r;

	if (s->n_conns >= MAX_CONNECTIONS) {
		close(fd);
		return -EMFILE;
	}
	c = xcalloc(1, sizeof(*c));
	c->server = s;
	c->fd = fd;
	c->retry_fd = -1;
	c->is_socket = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
	c->keep = flags & TTRPC_FD_KEEP;
	fd_set_nonblock(fd, 1);
	if (c->keep) {
		c->retry_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (c->retry_fd < 0 || event_add(s->loop, c->retry_fd, EPOLLIN, on_retry, c) < 0) {
			r = -errno;
			if (c->retry_fd >= 0)
				close(c->retry_fd);
			close(fd);
			free(c);
			return r;
		}
	}
	r = event_add(s->loop, fd, EPOLLIN, on_conn, c);
	if (r < 0) {
		if (c->retry_fd >= 0) {
			event_del(s->loop, c->retry_fd);
			close(c->retry_fd);
		}
		close(fd);
		free(c);
		return r;
	}
	c->next = s->conns;
	s->conns = c;
	s->n_conns++;
	return 0;
}

static void on_accept(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct ttrpc_server *s = userdata;
	(void)loop;
	(void)revents;
	for (;;) {
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (c < 0)
			return;
		if (ttrpc_server_add_fd(s, c, 0) < 0)
			log_warn("ttrpc: connection refused: too many");
	}
}

int ttrpc_server_listen(struct ttrpc_server *s, const char *path, struct hull_error **err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = -1;
	mode_t old;
	int r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return hull_error_set(err, -ENAMETOOLONG, "socket path '%s' too long", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return hull_error_set_errno(err, -errno, "socket");
	(void)unlink(path);
	/* Security: only our user may talk to the sandbox. */
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		umask(old);
		return hull_error_set_errno(err, -errno, "bind '%s'", path);
	}
	umask(old);
	if (listen(fd, 16) < 0)
		return hull_error_set_errno(err, -errno, "listen '%s'", path);
	r = ttrpc_server_listen_fd(s, TAKE_FD(fd));
	if (r < 0)
		return hull_error_set_errno(err, r, "listen '%s'", path);
	return 0;
}

int ttrpc_server_listen_fd(struct ttrpc_server *s, int fd)
{
	fd_set_nonblock(fd, 1);
	if (s->listen_fd >= 0 || event_add(s->loop, fd, EPOLLIN, on_accept, s) < 0) {
		int r = s->listen_fd >= 0 ? -EBUSY : -errno;
		close(fd);
		return r;
	}
	s->listen_fd = fd;
	return 0;
}

void ttrpc_server_flush(struct ttrpc_server *s, int timeout_ms)
{
	struct timespec ts;
	int64_t deadline;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	deadline = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + timeout_ms;
	for (struct ttrpc_conn *c = s->conns; c; c = c->next) {
		while (c->out.len > 0) {
			struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
			int64_t left;
			ssize_t n;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			left = deadline - ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
			/* A peer that is gone (a hangup, an error) or that does not read in
			 * time gets no more: this is the last thing before power-off. */
			if (left <= 0 || poll(&pfd, 1, (int)left) <= 0 ||
			    (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)))
				break;
			n = conn_write(c, buf_head(&c->out), c->out.len);
			if (n < 0 && errno != EINTR && errno != EAGAIN)
				break;
			if (n > 0)
				buf_consume(&c->out, (size_t)n);
		}
	}
}

struct ttrpc_server *ttrpc_server_free(struct ttrpc_server *s)
{
	if (!s)
		return NULL;
	while (s->conns)
		conn_close(s->conns);
	if (s->listen_fd >= 0) {
		event_del(s->loop, s->listen_fd);
		close(s->listen_fd);
	}
	free(s);
	return NULL;
}
