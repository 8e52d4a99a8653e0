/* SPDX-License-Identifier: MIT */
#include "ttrpc-server.h"

#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "log.h"
#include "ttrpc-msg.h"
#include "util.h"

#define MAX_CONNECTIONS 64
#define MAX_CALLS_PER_CONNECTION 256
#define MAX_OUT_QUEUED (16u << 20)

struct ttrpc_conn {
	struct ttrpc_server *server;
	int fd;
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
	struct ttrpc_call *next;
};

struct ttrpc_server {
	struct event_loop *loop;
	const struct ttrpc_method *methods;
	size_t n_methods;
	void *userdata;
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

static void conn_update(struct ttrpc_conn *c)
{
	event_mod(c->server->loop, c->fd, EPOLLIN | (c->out.len ? EPOLLOUT : 0));
}

static void conn_flush(struct ttrpc_conn *c)
{
	while (c->out.len > 0) {
		ssize_t n = send(c->fd, buf_head(&c->out), c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break; /* EAGAIN: wait for EPOLLOUT; errors show up as EPOLLHUP/ERR */
		}
		buf_consume(&c->out, (size_t)n);
	}
	conn_update(c);
}

static void call_free(struct ttrpc_call *call)
{
	if (call->req)
		hull__ttrpc__request__free_unpacked(call->req, NULL);
	free(call);
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

void ttrpc_call_reply(struct ttrpc_call *call, int r, const struct hull_error *err,
                      const ProtobufCMessage *msg)
{
	struct ttrpc_conn *c = call->conn;
	if (c) {
		for (struct ttrpc_call **pp = &c->calls; *pp; pp = &(*pp)->next)
			if (*pp == call) {
				*pp = call->next;
				c->n_calls--;
				break;
			}
		reply(c, call->stream_id, r, err, msg);
		conn_flush(c);
	}
	call_free(call);
}

static void handle_request(struct ttrpc_conn *c, const struct ttrpc_frame *f)
{
	struct ttrpc_server *s = c->server;
	_cleanup_error_ struct hull_error *err = NULL;
	struct ttrpc_call *call = xcalloc(1, sizeof(*call));
	const struct ttrpc_method *m = NULL;
	ProtobufCMessage *ret = NULL;
	int r;

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
		reply(c, f->stream_id, -EBUSY, NULL, NULL);
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
	c->calls = call->next;
	c->n_calls--;
	reply(c, f->stream_id, r, err, ret);
	if (ret)
		protobuf_c_message_free_unpacked(ret, NULL);
	call_free(call);
}

static void on_conn(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct ttrpc_conn *c = userdata;
	uint8_t tmp[64 << 10];
	struct ttrpc_frame f;
	ssize_t n;
	int r;

	(void)loop;
	(void)fd;
	if (revents & EPOLLOUT)
		conn_flush(c);
	if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	n = recv(c->fd, tmp, sizeof(tmp), MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_close(c);
		return;
	}
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
	}
	/* A peer that sends requests but never reads its answers is cut off. */
	if (c->out.len > MAX_OUT_QUEUED) {
		log_warn("ttrpc client does not read its replies: disconnected");
		conn_close(c);
		return;
	}
	conn_flush(c);
}

int ttrpc_server_add_connection(struct ttrpc_server *s, int fd)
{
	struct ttrpc_conn *c;
	int r;

	if (s->n_conns >= MAX_CONNECTIONS) {
		close(fd);
		return -EMFILE;
	}
	c = xcalloc(1, sizeof(*c));
	c->server = s;
	c->fd = fd;
	fd_set_nonblock(fd, 1);
	r = event_add(s->loop, fd, EPOLLIN, on_conn, c);
	if (r < 0) {
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
		if (ttrpc_server_add_connection(s, c) < 0)
			log_warn("ttrpc: connection refused: too many");
	}
}

int ttrpc_server_listen(struct ttrpc_server *s, const char *path, struct hull_error **err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = -1;
	mode_t old;

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
	if (event_add(s->loop, fd, EPOLLIN, on_accept, s) < 0)
		return hull_error_set_errno(err, -errno, "listen '%s'", path);
	s->listen_fd = TAKE_FD(fd);
	return 0;
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
