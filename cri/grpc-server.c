/* SPDX-License-Identifier: MIT */
/* gRPC over HTTP/2 on libnghttp2, for hull-cri. The HTTP/2 framing, HPACK and flow
 * control are nghttp2's; this file is the gRPC part: a request's `:path`,
 * `grpc-timeout` and length-prefixed message in, a response's headers, messages and
 * `grpc-status` trailers out (Trailers-Only when there is no message). */
#include <errno.h>
#include <inttypes.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "grpc-server.h"
#include "log.h"
#include "macros.h"
#include "ttrpc.h"
#include "util.h"

#define READ_CHUNK (64u << 10)
#define READ_PER_WAKEUP (512u << 10)
#define OUT_HIGH_WATER (16u << 20)
/* Request bytes a connection may hold before its calls are answered: beyond this a
 * new message is refused (RESOURCE_EXHAUSTED) rather than buffered. */
#define CONN_MAX_IN (64u << 20)
#define MAX_PATH_LEN 256u

struct grpc_conn;

struct grpc_call {
	struct grpc_server *s;
	struct grpc_conn *conn; /* NULL once the connection is gone */
	int32_t stream_id;
	char *path;
	uint64_t deadline; /* CLOCK_MONOTONIC ns, 0: none */
	struct buf in;     /* the request body as received (length-prefixed) */
	bool in_refused;   /* over a cap: answered, the rest of the body dropped */
	bool live;         /* nghttp2 still has the stream */
	bool kept;         /* a handler holds the call */
	bool answered;     /* status decided (reply, error or deadline) */
	bool headers_sent; /* response HEADERS submitted with a data provider */
	bool trailers_due; /* the body ends with trailers once out is drained */
	bool gone;         /* nothing more reaches the client */
	bool in_cb;        /* inside its gone callback: an answer there frees it later */
	int code;
	char *message;
	struct buf out; /* length-prefixed response messages not yet taken by nghttp2 */
	grpc_gone_fn gone_cb;
	void *gone_userdata;
	struct grpc_call *next_kept; /* the server's kept calls, for deadlines */
	struct grpc_call *next_live; /* the connection's open streams */
};

struct grpc_conn {
	struct grpc_server *s;
	int fd; /* -1: a fed connection (fuzzers) */
	nghttp2_session *h2;
	struct buf out;
	size_t in_bytes; /* request bytes held by this connection's calls */
	bool reading_paused;
	bool closing;
	bool in_callback;
	struct grpc_call *calls; /* open streams */
	struct grpc_conn *next;
};

struct grpc_server {
	struct event_loop *loop;
	const struct grpc_method *methods;
	size_t n_methods;
	void *userdata;
	int listen_fd;
	char *listen_path;
	int timer_fd;
	uint64_t timer_at;
	struct grpc_conn *conns;
	struct grpc_call *kept;
	nghttp2_session_callbacks *cbs;
};

/* ---- pure helpers ---- */

int grpc_parse_timeout(const char *s, uint64_t *ret_ns)
{
	uint64_t v = 0, mult;
	size_t n = 0;

	/* The spec: at most 8 ASCII digits, then one unit. */
	while (s[n] >= '0' && s[n] <= '9') {
		if (n == 8)
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[n] - '0');
		n++;
	}
	if (n == 0 || s[n] == '\0' || s[n + 1] != '\0')
		return -EINVAL;
	switch (s[n]) {
	case 'H':
		mult = 3600ull * 1000000000ull;
		break;
	case 'M':
		mult = 60ull * 1000000000ull;
		break;
	case 'S':
		mult = 1000000000ull;
		break;
	case 'm':
		mult = 1000000ull;
		break;
	case 'u':
		mult = 1000ull;
		break;
	case 'n':
		mult = 1ull;
		break;
	default:
		return -EINVAL;
	}
	*ret_ns = v * mult; /* 99999999H fits in 64 bits of ns */
	return 0;
}

char *grpc_percent_encode(const char *text)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(text);
	char *out = xmalloc(n * 3 + 1), *p = out;

	for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
		if (*c >= 0x20 && *c <= 0x7e && *c != '%') {
			*p++ = (char)*c;
		} else {
			*p++ = '%';
			*p++ = hex[*c >> 4];
			*p++ = hex[*c & 0xf];
		}
	}
	*p = '\0';
	return out;
}

/* ---- calls ---- */

static void server_arm_timer(struct grpc_server *s);
static void conn_flush(struct grpc_conn *c);

static void call_free(struct grpc_call *call)
{
	buf_release(&call->in);
	buf_release(&call->out);
	free(call->path);
	free(call->message);
	free(call);
}

static void call_unkeep(struct grpc_call *call)
{
	struct grpc_server *s = call->s; /* NULL: the server is gone */
	for (struct grpc_call **pp = s ? &s->kept : NULL; pp && *pp; pp = &(*pp)->next_kept)
		if (*pp == call) {
			*pp = call->next_kept;
			break;
		}
	call->kept = false;
	call->next_kept = NULL;
}

/* Free the call when neither nghttp2 nor a handler holds it. */
static void call_maybe_free(struct grpc_call *call)
{
	if (!call->live && !call->kept)
		call_free(call);
}

/* Tell the handler; it may answer (and so release) the call from the callback, which
 * then frees it only when the caller's call_maybe_free() runs. */
static void call_tell_gone(struct grpc_call *call)
{
	if (!call->kept || !call->gone_cb)
		return;
	call->in_cb = true;
	call->gone_cb(call, call->gone_userdata);
	call->in_cb = false;
}

static void call_set_gone(struct grpc_call *call)
{
	if (call->gone)
		return;
	call->gone = true;
	call_tell_gone(call);
}

static ssize_t body_read(nghttp2_session *h2, int32_t stream_id, uint8_t *dst, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *userdata)
{
	struct grpc_call *call = source->ptr;
	(void)userdata;

	if (call->out.len > 0) {
		size_t n = MIN(length, call->out.len);
		memcpy(dst, buf_head(&call->out), n);
		buf_consume(&call->out, n);
		return (ssize_t)n;
	}
	if (!call->trailers_due)
		return NGHTTP2_ERR_DEFERRED;

	char status[16];
	_cleanup_free_ char *msg = grpc_percent_encode(call->message ? call->message : "");
	snprintf(status, sizeof(status), "%d", call->code);
	nghttp2_nv trailers[] = {
	    {(uint8_t *)"grpc-status", (uint8_t *)status, 11, strlen(status), NGHTTP2_NV_FLAG_NONE},
	    {(uint8_t *)"grpc-message", (uint8_t *)msg, 12, strlen(msg), NGHTTP2_NV_FLAG_NONE},
	};
	*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	if (nghttp2_submit_trailer(h2, stream_id, trailers, call->message ? 2 : 1) == 0)
		*data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
	call->trailers_due = false;
	return 0;
}

static int submit_headers(struct grpc_call *call)
{
	nghttp2_nv hdrs[] = {
	    {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
	    {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16,
	     NGHTTP2_NV_FLAG_NONE},
	};
	nghttp2_data_provider prd = {.source.ptr = call, .read_callback = body_read};
	int r =
	    nghttp2_submit_response(call->conn->h2, call->stream_id, hdrs, ELEMENTSOF(hdrs), &prd);
	if (r == 0)
		call->headers_sent = true;
	return r;
}

/* Decide the status once; what is queued goes out first, then the trailers. */
static void call_finish(struct grpc_call *call, int code, const char *message)
{
	if (call->answered)
		return;
	call->answered = true;
	call->code = code;
	call->message = message && *message ? xstrdup(message) : NULL;
	if (!call->live || !call->conn || call->gone)
		return;

	if (call->headers_sent) {
		call->trailers_due = true;
		nghttp2_session_resume_data(call->conn->h2, call->stream_id);
	} else if (code != TTRPC_OK || call->out.len == 0) {
		/* Trailers-Only: one HEADERS frame with the status, END_STREAM. */
		char status[16];
		_cleanup_free_ char *msg = grpc_percent_encode(call->message ? call->message : "");
		snprintf(status, sizeof(status), "%d", code);
		nghttp2_nv hdrs[] = {
		    {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
		    {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16,
		     NGHTTP2_NV_FLAG_NONE},
		    {(uint8_t *)"grpc-status", (uint8_t *)status, 11, strlen(status),
		     NGHTTP2_NV_FLAG_NONE},
		    {(uint8_t *)"grpc-message", (uint8_t *)msg, 12, strlen(msg),
		     NGHTTP2_NV_FLAG_NONE},
		};
		buf_release(&call->out);
		nghttp2_submit_response(call->conn->h2, call->stream_id, hdrs,
		                        call->message ? 4 : 3, NULL);
	} else {
		call->trailers_due = true;
		submit_headers(call);
	}
	call->gone = true; /* nothing else is sent on it */
	if (!call->conn->in_callback)
		conn_flush(call->conn);
}

static void frame_message(struct buf *out, const ProtobufCMessage *msg)
{
	size_t n = msg ? protobuf_c_message_get_packed_size(msg) : 0;
	uint8_t *p = buf_reserve(out, 5 + n);
	p[0] = 0;
	p[1] = (uint8_t)(n >> 24);
	p[2] = (uint8_t)(n >> 16);
	p[3] = (uint8_t)(n >> 8);
	p[4] = (uint8_t)n;
	if (msg)
		protobuf_c_message_pack(msg, p + 5);
	buf_commit(out, 5 + n);
}

static int code_of(int r, const struct hull_error *err)
{
	int c = err ? err->code : r;
	if (c <= -GRPC_CODE_BASE && c > -(GRPC_CODE_BASE + _TTRPC_CODE_MAX))
		return -c - GRPC_CODE_BASE;
	return (int)ttrpc_code_from_errno(c < 0 ? c : r);
}

static void answer(struct grpc_call *call, int r, const struct hull_error *err,
                   const ProtobufCMessage *msg)
{
	if (r < 0) {
		int code = code_of(r, err);
		const char *m =
		    err && err->msg ? err->msg : strerror(r <= -GRPC_CODE_BASE ? EIO : -r);
		call_finish(call, code, m);
		return;
	}
	if (!call->answered && !call->gone && !call->headers_sent)
		frame_message(&call->out, msg); /* unary: the one message, even empty */
	else if (msg && !call->answered && !call->gone)
		grpc_call_send(call, msg);
	call_finish(call, TTRPC_OK, NULL);
}

void grpc_call_reply(struct grpc_call *call, int r, const struct hull_error *err,
                     const ProtobufCMessage *msg)
{
	if (!call->answered)
		answer(call, r, err, msg);
	if (call->kept)
		call_unkeep(call);
	if (!call->in_cb)
		call_maybe_free(call);
}

void grpc_call_send(struct grpc_call *call, const ProtobufCMessage *msg)
{
	if (call->gone || call->answered || !call->live || !call->conn)
		return;
	frame_message(&call->out, msg);
	if (!call->headers_sent)
		submit_headers(call);
	else
		nghttp2_session_resume_data(call->conn->h2, call->stream_id);
	if (!call->conn->in_callback)
		conn_flush(call->conn);
}

bool grpc_call_gone(const struct grpc_call *call)
{
	return call->gone || call->answered;
}

void grpc_call_set_gone_cb(struct grpc_call *call, grpc_gone_fn fn, void *userdata)
{
	call->gone_cb = fn;
	call->gone_userdata = userdata;
}

uint64_t grpc_call_deadline(const struct grpc_call *call)
{
	return call->deadline;
}

const char *grpc_call_path(const struct grpc_call *call)
{
	return call->path ? call->path : "";
}

/* The request is complete: decode the envelope, find the method, run it. */
static void call_dispatch(struct grpc_call *call)
{
	struct grpc_server *s = call->s;
	const struct grpc_method *m = NULL;
	ProtobufCMessage *ret = NULL;
	_cleanup_error_ struct hull_error *err = NULL;
	const uint8_t *p = buf_head(&call->in);
	size_t len = call->in.len;
	uint32_t n;
	int r;

	if (call->in_refused || call->answered)
		return;
	for (size_t i = 0; i < s->n_methods && call->path; i++)
		if (strcmp(s->methods[i].path, call->path) == 0)
			m = &s->methods[i];
	if (!m) {
		_cleanup_free_ char *msg = xasprintf("unknown method '%s'", grpc_call_path(call));
		call_finish(call, TTRPC_UNIMPLEMENTED, msg);
		return;
	}
	if (len < 5) {
		call_finish(call, TTRPC_INVALID_ARGUMENT, "the request carries no message");
		return;
	}
	n = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
	if (p[0] != 0) {
		call_finish(
		    call, TTRPC_UNIMPLEMENTED,
		    "compressed messages are not accepted (no grpc-accept-encoding was offered)");
		return;
	}
	if ((size_t)n != len - 5) {
		call_finish(call, TTRPC_INVALID_ARGUMENT,
		            "a unary request must carry exactly one message");
		return;
	}

	r = m->fn(s->userdata, call, p + 5, n, &ret, &err);
	if (call->conn)
		call->conn->in_bytes -= MIN(call->conn->in_bytes, call->in.len);
	buf_release(&call->in);
	if (r == 1) {
		call->kept = true;
		call->next_kept = s->kept;
		s->kept = call;
		if (call->deadline)
			server_arm_timer(s);
		return;
	}
	answer(call, r, err, ret);
	if (ret)
		protobuf_c_message_free_unpacked(ret, NULL);
}

/* The stream is over (closed, reset, or its connection gone). */
static void call_close(struct grpc_call *call)
{
	struct grpc_conn *c = call->conn;

	if (c) {
		for (struct grpc_call **pp = &c->calls; *pp; pp = &(*pp)->next_live)
			if (*pp == call) {
				*pp = call->next_live;
				break;
			}
		c->in_bytes -= MIN(c->in_bytes, call->in.len);
	}
	buf_release(&call->in);
	call->live = false;
	call->conn = NULL;
	call_set_gone(call);
	call_maybe_free(call);
}

/* ---- nghttp2 callbacks ---- */

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *frame, void *userdata)
{
	struct grpc_conn *c = userdata;
	struct grpc_call *call;

	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	call = xcalloc(1, sizeof(*call));
	call->s = c->s;
	call->conn = c;
	call->stream_id = frame->hd.stream_id;
	call->live = true;
	call->next_live = c->calls;
	c->calls = call;
	nghttp2_session_set_stream_user_data(h2, frame->hd.stream_id, call);
	return 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *userdata)
{
	struct grpc_call *call;
	(void)flags, (void)userdata;

	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	call = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
	if (!call)
		return 0;
	if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
		if (valuelen > MAX_PATH_LEN || call->path)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM */
		call->path = xstrndup((const char *)value, valuelen);
	} else if (namelen == 12 && memcmp(name, "grpc-timeout", 12) == 0) {
		char v[16];
		uint64_t ns;
		if (valuelen >= sizeof(v))
			return 0;
		memcpy(v, value, valuelen);
		v[valuelen] = '\0';
		/* A malformed timeout is ignored, as grpc-go's server does. */
		if (grpc_parse_timeout(v, &ns) == 0)
			call->deadline = monotonic_ns() + MAX(ns, 1);
	}
	return 0;
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t stream_id, const uint8_t *data,
                         size_t len, void *userdata)
{
	struct grpc_conn *c = userdata;
	struct grpc_call *call = nghttp2_session_get_stream_user_data(h2, stream_id);
	(void)flags;

	if (!call || call->in_refused || call->answered)
		return 0;
	/* The first message's length is known from its prefix: check it before keeping
	 * anything (a unary call carries one message). */
	if (call->in.len + len > 5 + (size_t)GRPC_MAX_MESSAGE) {
		call->in_refused = true;
		goto refused;
	}
	if (c->in_bytes + len > CONN_MAX_IN) {
		call->in_refused = true;
		buf_release(&call->in);
		call_finish(call, TTRPC_RESOURCE_EXHAUSTED,
		            "too many request bytes in flight on this connection");
		return 0;
	}
	buf_append(&call->in, data, len);
	c->in_bytes += len;
	if (call->in.len >= 5) {
		const uint8_t *p = buf_head(&call->in);
		uint32_t n =
		    (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
		if (n > GRPC_MAX_MESSAGE) {
			call->in_refused = true;
			goto refused;
		}
	}
	return 0;

refused:
	c->in_bytes -= MIN(c->in_bytes, call->in.len);
	buf_release(&call->in);
	{
		_cleanup_free_ char *m =
		    xasprintf("the request message is over the %u-byte limit", GRPC_MAX_MESSAGE);
		call_finish(call, TTRPC_RESOURCE_EXHAUSTED, m);
	}
	return 0;
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame, void *userdata)
{
	struct grpc_call *call;
	(void)userdata;

	if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
		return 0;
	if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	call = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
	if (call)
		call_dispatch(call);
	return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t stream_id, uint32_t error_code,
                           void *userdata)
{
	struct grpc_conn *c = userdata;
	struct grpc_call *call = nghttp2_session_get_stream_user_data(h2, stream_id);
	(void)error_code;

	(void)c;
	if (!call)
		return 0;
	nghttp2_session_set_stream_user_data(h2, stream_id, NULL);
	call_close(call);
	return 0;
}

/* ---- connections ---- */

static void conn_free(struct grpc_conn *c)
{
	struct grpc_server *s = c->s;

	for (struct grpc_conn **pp = &s->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	/* nghttp2_session_del() tells no one: the open streams are closed here. */
	while (c->calls)
		call_close(c->calls);
	nghttp2_session_del(c->h2);
	if (c->fd >= 0) {
		event_del(s->loop, c->fd);
		close(c->fd);
	}
	buf_release(&c->out);
	free(c);
}

static void conn_update_events(struct grpc_conn *c)
{
	uint32_t ev = 0;
	if (c->fd < 0)
		return;
	c->reading_paused = c->out.len > OUT_HIGH_WATER;
	if (!c->reading_paused)
		ev |= EPOLLIN;
	if (c->out.len > 0)
		ev |= EPOLLOUT;
	event_mod(c->s->loop, c->fd, ev);
}

/* Move what nghttp2 has to send into out and write as much as the socket takes. */
static void conn_flush(struct grpc_conn *c)
{
	for (;;) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(c->h2, &data);
		if (n < 0) {
			c->closing = true;
			break;
		}
		if (n == 0)
			break;
		buf_append(&c->out, data, (size_t)n);
		if (c->out.len > 2 * OUT_HIGH_WATER)
			break; /* written first; nghttp2 keeps the rest */
	}
	while (c->fd >= 0 && c->out.len > 0) {
		ssize_t w = write(c->fd, buf_head(&c->out), c->out.len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				c->closing = true, buf_release(&c->out);
			break;
		}
		buf_consume(&c->out, (size_t)w);
	}
	if (c->fd >= 0 && !c->closing && !nghttp2_session_want_read(c->h2) &&
	    !nghttp2_session_want_write(c->h2) && c->out.len == 0)
		c->closing = true;
	conn_update_events(c);
}

static void conn_feed(struct grpc_conn *c, const uint8_t *data, size_t len)
{
	c->in_callback = true;
	ssize_t r = nghttp2_session_mem_recv(c->h2, data, len);
	c->in_callback = false;
	if (r < 0) {
		log_debug("cri: connection: %s", nghttp2_strerror((int)r));
		/* Say why (GOAWAY PROTOCOL_ERROR) before the close. */
		nghttp2_session_terminate_session(c->h2, NGHTTP2_PROTOCOL_ERROR);
		c->closing = true;
	}
}

static void on_conn_event(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct grpc_conn *c = userdata;
	uint8_t chunk[READ_CHUNK];
	size_t total = 0;
	(void)loop;

	if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		while (!c->closing && !c->reading_paused && total < READ_PER_WAKEUP) {
			ssize_t n = read(fd, chunk, sizeof(chunk));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN)
				break;
			if (n <= 0) {
				c->closing = true;
				buf_release(&c->out);
				break;
			}
			total += (size_t)n;
			conn_feed(c, chunk, (size_t)n);
			conn_flush(c);
		}
	}
	conn_flush(c);
	if (c->closing && (c->out.len == 0 || (revents & (EPOLLHUP | EPOLLERR))))
		conn_free(c);
}

static struct grpc_conn *conn_new(struct grpc_server *s, int fd)
{
	struct grpc_conn *c = xcalloc(1, sizeof(*c));
	nghttp2_settings_entry iv[] = {
	    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, GRPC_MAX_STREAMS},
	    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 64u << 10},
	};

	c->s = s;
	c->fd = fd;
	if (nghttp2_session_server_new(&c->h2, s->cbs, c) != 0)
		abort(); /* only NGHTTP2_ERR_NOMEM */
	nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, ELEMENTSOF(iv));
	c->next = s->conns;
	s->conns = c;
	return c;
}

int grpc_server_add_fd(struct grpc_server *s, int fd)
{
	struct grpc_conn *c;
	int r = fd_set_nonblock(fd, true);
	if (r < 0) {
		close(fd);
		return r;
	}
	c = conn_new(s, fd);
	r = event_add(s->loop, fd, EPOLLIN, on_conn_event, c);
	if (r < 0) {
		c->fd = -1;
		close(fd);
		conn_free(c);
		return r;
	}
	conn_flush(c);
	return 0;
}

void grpc_server_feed(struct grpc_server *s, const void *data, size_t len, uint8_t **ret_out,
                      size_t *ret_out_len)
{
	struct grpc_conn *c = conn_new(s, -1);
	conn_feed(c, data, len);
	conn_flush(c);
	if (ret_out) {
		*ret_out = xmalloc(c->out.len + 1);
		memcpy(*ret_out, buf_head(&c->out), c->out.len);
		*ret_out_len = c->out.len;
	}
	conn_free(c);
}

static void on_accept(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct grpc_server *s = userdata;
	(void)loop, (void)revents;

	for (int i = 0; i < 64; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (cfd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_warn("cri: accept: %m");
			return;
		}
		grpc_server_add_fd(s, cfd);
	}
}

/* ---- deadlines ---- */

static void server_arm_timer(struct grpc_server *s)
{
	uint64_t next = 0;
	for (struct grpc_call *k = s->kept; k; k = k->next_kept)
		if (k->deadline && !k->answered && (!next || k->deadline < next))
			next = k->deadline;
	s->timer_at = next;
	struct itimerspec its = {0};
	if (next) {
		its.it_value.tv_sec = (time_t)(next / 1000000000ull);
		its.it_value.tv_nsec = (long)(next % 1000000000ull);
	}
	timerfd_settime(s->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void on_timer(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct grpc_server *s = userdata;
	uint64_t ticks, now = monotonic_ns();
	(void)loop, (void)revents;

	(void)!read(fd, &ticks, sizeof(ticks));
	/* One expired call at a time: its handler may answer it from the callback, which
	 * takes it off the kept list. */
	for (;;) {
		struct grpc_call *k = s->kept;
		while (k && (k->answered || !k->deadline || k->deadline > now))
			k = k->next_kept;
		if (!k)
			break;
		struct grpc_conn *c = k->conn;
		call_finish(k, TTRPC_DEADLINE_EXCEEDED,
		            "the call's deadline (grpc-timeout) passed");
		call_tell_gone(k);
		call_maybe_free(k);
		if (c)
			conn_flush(c);
	}
	server_arm_timer(s);
}

/* ---- the server ---- */

struct grpc_server *grpc_server_new(struct event_loop *loop, const struct grpc_method *methods,
                                    size_t n_methods, void *userdata)
{
	struct grpc_server *s = xcalloc(1, sizeof(*s));

	s->loop = loop;
	s->methods = methods;
	s->n_methods = n_methods;
	s->userdata = userdata;
	s->listen_fd = -1;
	s->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (s->timer_fd < 0)
		abort();
	if (loop)
		event_add(loop, s->timer_fd, EPOLLIN, on_timer, s);
	if (nghttp2_session_callbacks_new(&s->cbs) != 0)
		abort();
	nghttp2_session_callbacks_set_on_begin_headers_callback(s->cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(s->cbs, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(s->cbs, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(s->cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(s->cbs, on_stream_close);
	return s;
}

int grpc_server_listen(struct grpc_server *s, const char *path, mode_t mode,
                       struct hull_error **err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = -1;
	int r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return hull_error_set(err, -ENAMETOOLONG, "socket path '%s' is too long", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return hull_error_set_errno(err, -errno, "socket");
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return hull_error_set_errno(err, -errno, "bind '%s'", path);
	if (chmod(path, mode) < 0)
		return hull_error_set_errno(err, -errno, "chmod '%s'", path);
	if (listen(fd, 128) < 0)
		return hull_error_set_errno(err, -errno, "listen on '%s'", path);
	r = event_add(s->loop, fd, EPOLLIN, on_accept, s);
	if (r < 0)
		return hull_error_set_errno(err, r, "watch '%s'", path);
	s->listen_fd = TAKE_FD(fd);
	s->listen_path = xstrdup(path);
	return 0;
}

struct grpc_server *grpc_server_free(struct grpc_server *s)
{
	if (!s)
		return NULL;
	while (s->conns)
		conn_free(s->conns);
	/* Kept calls stay with their handlers; they are no longer the server's. */
	while (s->kept) {
		struct grpc_call *k = s->kept;
		s->kept = k->next_kept;
		k->next_kept = NULL;
		k->s = NULL;
	}
	if (s->listen_fd >= 0) {
		event_del(s->loop, s->listen_fd);
		close(s->listen_fd);
		unlink(s->listen_path);
	}
	if (s->loop)
		event_del(s->loop, s->timer_fd);
	close(s->timer_fd);
	free(s->listen_path);
	nghttp2_session_callbacks_del(s->cbs);
	free(s);
	return NULL;
}
