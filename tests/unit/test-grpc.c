/* SPDX-License-Identifier: MIT */
/* hull-cri's gRPC server against a real HTTP/2 client (nghttp2's client session) over a
 * socketpair: unary answers, errors as grpc-status trailers, unknown methods, calls
 * kept and answered later out of order, server streaming, deadlines (grpc-timeout),
 * a client that resets a kept call, a message over the cap refused from its prefix,
 * and a connection that does not speak HTTP/2. */
#include <errno.h>
#include <fcntl.h>
#include <nghttp2/nghttp2.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "grpc-server.h"
#include "ttrpc.h"
#include "ttrpc.pb-c.h"
#include "util.h"

/* ---- the server's methods (messages are hull.ttrpc.KeyValue) ---- */

struct fixture {
	struct event_loop *loop;
	struct grpc_server *s;
	struct grpc_call *kept[8];
	int n_kept;
	int gone_calls;
};

static int m_echo(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                  ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Ttrpc__KeyValue *kv = hull__ttrpc__key_value__unpack(NULL, len, msg);
	(void)userdata, (void)call;
	if (!kv)
		return hull_error_set(err, -EINVAL, "request does not decode");
	*ret = &kv->base;
	return 0;
}

static int m_fail(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                  ProtobufCMessage **ret, struct hull_error **err)
{
	(void)userdata, (void)call, (void)msg, (void)len, (void)ret;
	return hull_error_set(err, -ENOENT, "no such thing '100%%'");
}

static void on_gone(struct grpc_call *call, void *userdata)
{
	struct fixture *f = userdata;
	(void)call;
	f->gone_calls++;
}

static int m_keep(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                  ProtobufCMessage **ret, struct hull_error **err)
{
	struct fixture *f = userdata;
	(void)msg, (void)len, (void)ret, (void)err;
	grpc_call_set_gone_cb(call, on_gone, f);
	f->kept[f->n_kept++] = call;
	return 1;
}

static const struct grpc_method methods[] = {
    {"/t.T/Echo", m_echo},
    {"/t.T/Fail", m_fail},
    {"/t.T/Keep", m_keep},
};

/* ---- a client ---- */

struct answer {
	int status; /* grpc-status, -1 until seen */
	char message[256];
	bool http_ok; /* :status 200 */
	uint8_t body[4096];
	size_t body_len;
	bool closed;
	uint32_t close_code;
};

struct client {
	nghttp2_session *h2;
	int fd;
	struct answer answers[16]; /* by (stream id - 1) / 2 */
	bool goaway;
};

static struct answer *answer_of(struct client *c, int32_t sid)
{
	return &c->answers[(sid - 1) / 2 % 16];
}

static int c_on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name,
                       size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                       void *userdata)
{
	struct answer *a = answer_of(userdata, frame->hd.stream_id);
	(void)h2, (void)flags;
	if (namelen == 7 && memcmp(name, ":status", 7) == 0)
		a->http_ok = valuelen == 3 && memcmp(value, "200", 3) == 0;
	if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0)
		a->status = atoi(strndupa((const char *)value, valuelen));
	if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0)
		snprintf(a->message, sizeof(a->message), "%.*s", (int)valuelen, value);
	return 0;
}

static int c_on_data(nghttp2_session *h2, uint8_t flags, int32_t sid, const uint8_t *data,
                     size_t len, void *userdata)
{
	struct answer *a = answer_of(userdata, sid);
	(void)h2, (void)flags;
	if (a->body_len + len <= sizeof(a->body)) {
		memcpy(a->body + a->body_len, data, len);
		a->body_len += len;
	}
	return 0;
}

static int c_on_close(nghttp2_session *h2, int32_t sid, uint32_t code, void *userdata)
{
	struct answer *a = answer_of(userdata, sid);
	(void)h2;
	a->closed = true;
	a->close_code = code;
	return 0;
}

static int c_on_frame(nghttp2_session *h2, const nghttp2_frame *frame, void *userdata)
{
	struct client *c = userdata;
	(void)h2;
	if (frame->hd.type == NGHTTP2_GOAWAY)
		c->goaway = true;
	return 0;
}

static void client_init(struct client *c, int fd)
{
	nghttp2_session_callbacks *cbs;
	memset(c, 0, sizeof(*c));
	for (int i = 0; i < 16; i++)
		c->answers[i].status = -1;
	c->fd = fd;
	assert_int_equal(nghttp2_session_callbacks_new(&cbs), 0);
	nghttp2_session_callbacks_set_on_header_callback(cbs, c_on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, c_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, c_on_close);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, c_on_frame);
	assert_int_equal(nghttp2_session_client_new(&c->h2, cbs, c), 0);
	nghttp2_session_callbacks_del(cbs);
	nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, NULL, 0);
}

struct body_src {
	uint8_t *data;
	size_t len, off;
};

static ssize_t c_read_body(nghttp2_session *h2, int32_t sid, uint8_t *buf, size_t length,
                           uint32_t *data_flags, nghttp2_data_source *source, void *userdata)
{
	struct body_src *b = source->ptr;
	size_t n = b->len - b->off < length ? b->len - b->off : length;
	(void)h2, (void)sid, (void)userdata;
	memcpy(buf, b->data + b->off, n);
	b->off += n;
	if (b->off == b->len) {
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
		free(b->data);
		free(b);
	}
	return (ssize_t)n;
}

/* A request with body bytes (framed by the caller); returns the stream id. */
static int32_t client_call_raw(struct client *c, const char *path, const char *timeout,
                               const void *body, size_t len)
{
	nghttp2_nv nv[8];
	size_t n = 0;
#define NV(k, v) nv[n++] = (nghttp2_nv){(uint8_t *)k, (uint8_t *)v, strlen(k), strlen(v), 0}
	NV(":method", "POST");
	NV(":scheme", "http");
	NV(":authority", "localhost");
	NV(":path", path);
	NV("content-type", "application/grpc");
	NV("te", "trailers");
	if (timeout)
		NV("grpc-timeout", timeout);
#undef NV
	struct body_src *b = calloc(1, sizeof(*b));
	b->data = malloc(len + 1);
	memcpy(b->data, body, len);
	b->len = len;
	nghttp2_data_provider prd = {.source.ptr = b, .read_callback = c_read_body};
	int32_t sid = nghttp2_submit_request(c->h2, NULL, nv, n, &prd, NULL);
	assert_true(sid > 0);
	return sid;
}

static int32_t client_call(struct client *c, const char *path, const char *timeout, const char *key,
                           const char *value)
{
	Hull__Ttrpc__KeyValue kv = HULL__TTRPC__KEY_VALUE__INIT;
	uint8_t buf[1024];
	kv.key = (char *)key;
	kv.value = (char *)value;
	size_t n = protobuf_c_message_pack(&kv.base, buf + 5);
	buf[0] = 0;
	buf[1] = (uint8_t)(n >> 24), buf[2] = (uint8_t)(n >> 16), buf[3] = (uint8_t)(n >> 8);
	buf[4] = (uint8_t)n;
	return client_call_raw(c, path, timeout, buf, n + 5);
}

/* Exchange bytes both ways and turn the server's loop a few times. */
static void pump(struct fixture *f, struct client *c, int rounds)
{
	for (int i = 0; i < rounds; i++) {
		const uint8_t *data;
		ssize_t n;
		while ((n = nghttp2_session_mem_send(c->h2, &data)) > 0)
			assert_int_equal(write(c->fd, data, (size_t)n), n);
		event_loop_once(f->loop, 10);
		uint8_t in[65536];
		while ((n = read(c->fd, in, sizeof(in))) > 0)
			assert_true(nghttp2_session_mem_recv(c->h2, in, (size_t)n) >= 0);
	}
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->loop = event_loop_new();
	f->s = grpc_server_new(f->loop, methods, 3, f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	grpc_server_free(f->s);
	event_loop_free(f->loop);
	free(f);
	return 0;
}

static void connect_client(struct fixture *f, struct client *c)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(grpc_server_add_fd(f->s, sv[0]), 0);
	fd_set_nonblock(sv[1], true);
	client_init(c, sv[1]);
}

static void client_done(struct client *c)
{
	nghttp2_session_del(c->h2);
	close(c->fd);
}

/* The body's one message, unpacked. */
static Hull__Ttrpc__KeyValue *body_message(const struct answer *a)
{
	assert_true(a->body_len >= 5);
	uint32_t n = (uint32_t)a->body[1] << 24 | (uint32_t)a->body[2] << 16 |
	             (uint32_t)a->body[3] << 8 | a->body[4];
	assert_int_equal(a->body_len, 5 + n);
	return hull__ttrpc__key_value__unpack(NULL, n, a->body + 5);
}

static void test_unary_and_errors(void **state)
{
	struct fixture *f = *state;
	struct client c;
	connect_client(f, &c);

	int32_t echo = client_call(&c, "/t.T/Echo", NULL, "k", "v");
	int32_t fail = client_call(&c, "/t.T/Fail", NULL, "", "");
	int32_t unknown = client_call(&c, "/t.T/Nope", NULL, "", "");
	pump(f, &c, 5);

	struct answer *a = answer_of(&c, echo);
	assert_true(a->closed && a->http_ok);
	assert_int_equal(a->status, 0);
	Hull__Ttrpc__KeyValue *kv = body_message(a);
	assert_non_null(kv);
	assert_string_equal(kv->key, "k");
	assert_string_equal(kv->value, "v");
	hull__ttrpc__key_value__free_unpacked(kv, NULL);

	a = answer_of(&c, fail);
	assert_true(a->closed);
	assert_int_equal(a->status, TTRPC_NOT_FOUND);
	assert_string_equal(a->message, "no such thing '100%25'");
	assert_int_equal(a->body_len, 0);

	a = answer_of(&c, unknown);
	assert_int_equal(a->status, TTRPC_UNIMPLEMENTED);
	assert_string_equal(a->message, "unknown method '/t.T/Nope'");
	client_done(&c);
}

static void test_kept_out_of_order_and_streaming(void **state)
{
	struct fixture *f = *state;
	struct client c;
	Hull__Ttrpc__KeyValue kv = HULL__TTRPC__KEY_VALUE__INIT;
	connect_client(f, &c);

	int32_t slow = client_call(&c, "/t.T/Keep", NULL, "", "");
	int32_t stream = client_call(&c, "/t.T/Keep", NULL, "", "");
	pump(f, &c, 5);
	assert_int_equal(f->n_kept, 2);
	/* A call made while two are kept is answered at once. */
	int32_t echo = client_call(&c, "/t.T/Echo", NULL, "fast", "");
	pump(f, &c, 5);
	assert_true(answer_of(&c, echo)->closed);
	assert_false(answer_of(&c, slow)->closed);

	kv.key = (char *)"one";
	grpc_call_send(f->kept[1], &kv.base);
	kv.key = (char *)"two";
	grpc_call_send(f->kept[1], &kv.base);
	pump(f, &c, 5);
	assert_false(answer_of(&c, stream)->closed);
	assert_true(answer_of(&c, stream)->body_len > 10);
	grpc_call_reply(f->kept[1], 0, NULL, NULL);
	kv.key = (char *)"late";
	grpc_call_reply(f->kept[0], 0, NULL, &kv.base);
	pump(f, &c, 5);

	struct answer *a = answer_of(&c, stream);
	assert_true(a->closed);
	assert_int_equal(a->status, 0);
	/* Two messages: 5 + 5 bytes each of "one" and "two" (key field: 2 + 3 bytes). */
	assert_int_equal(a->body_len, 2 * (5 + 5));
	a = answer_of(&c, slow);
	assert_true(a->closed);
	assert_int_equal(a->status, 0);
	Hull__Ttrpc__KeyValue *got = body_message(a);
	assert_string_equal(got->key, "late");
	hull__ttrpc__key_value__free_unpacked(got, NULL);
	assert_int_equal(f->gone_calls, 0);
	client_done(&c);
}

static void test_deadline_and_reset(void **state)
{
	struct fixture *f = *state;
	struct client c;
	connect_client(f, &c);

	int32_t timed = client_call(&c, "/t.T/Keep", "30m", "", "");
	int32_t reset = client_call(&c, "/t.T/Keep", NULL, "", "");
	pump(f, &c, 3);
	assert_int_equal(f->n_kept, 2);
	nghttp2_submit_rst_stream(c.h2, NGHTTP2_FLAG_NONE, reset, NGHTTP2_CANCEL);
	for (int i = 0; i < 50 && !answer_of(&c, timed)->closed; i++)
		pump(f, &c, 1);

	struct answer *a = answer_of(&c, timed);
	assert_true(a->closed);
	assert_int_equal(a->status, TTRPC_DEADLINE_EXCEEDED);
	assert_true(grpc_call_gone(f->kept[0]));
	assert_true(grpc_call_gone(f->kept[1]));
	assert_int_equal(f->gone_calls, 2);
	/* The handlers' late answers are dropped, and free the calls. */
	grpc_call_reply(f->kept[0], 0, NULL, NULL);
	grpc_call_reply(f->kept[1], -EIO, NULL, NULL);
	pump(f, &c, 2);
	client_done(&c);
}

static void test_oversized_message_refused_from_its_prefix(void **state)
{
	struct fixture *f = *state;
	struct client c;
	uint8_t prefix[5 + 100] = {0, 0x01, 0x10, 0, 0}; /* 17 MiB declared, 100 bytes sent */
	connect_client(f, &c);

	int32_t big = client_call_raw(&c, "/t.T/Echo", NULL, prefix, sizeof(prefix));
	pump(f, &c, 5);
	struct answer *a = answer_of(&c, big);
	assert_true(a->closed);
	assert_int_equal(a->status, TTRPC_RESOURCE_EXHAUSTED);
	/* The connection still serves. */
	int32_t echo = client_call(&c, "/t.T/Echo", NULL, "after", "");
	pump(f, &c, 5);
	assert_int_equal(answer_of(&c, echo)->status, 0);

	/* Two messages in a unary request, and none. */
	uint8_t two[10] = {0};
	int32_t t = client_call_raw(&c, "/t.T/Echo", NULL, two, sizeof(two));
	int32_t none = client_call_raw(&c, "/t.T/Echo", NULL, two, 0);
	pump(f, &c, 5);
	assert_int_equal(answer_of(&c, t)->status, TTRPC_INVALID_ARGUMENT);
	assert_int_equal(answer_of(&c, none)->status, TTRPC_INVALID_ARGUMENT);
	client_done(&c);
}

static void test_not_http2(void **state)
{
	struct fixture *f = *state;
	static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	uint8_t *out = NULL;
	size_t out_len = 0;

	grpc_server_feed(f->s, junk, sizeof(junk) - 1, &out, &out_len);
	/* SETTINGS first (9-byte header, type 4), then a GOAWAY (type 7). */
	assert_true(out_len >= 18);
	assert_int_equal(out[3], 4);
	bool goaway = false;
	for (size_t off = 0; off + 9 <= out_len;) {
		size_t flen = (size_t)out[off] << 16 | (size_t)out[off + 1] << 8 | out[off + 2];
		if (out[off + 3] == 7)
			goaway = true;
		off += 9 + flen;
	}
	assert_true(goaway);
	free(out);

	/* Over a socket: the server closes the connection. */
	int sv[2];
	char b[256];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(grpc_server_add_fd(f->s, sv[0]), 0);
	assert_int_equal(write(sv[1], junk, sizeof(junk) - 1), (ssize_t)sizeof(junk) - 1);
	ssize_t n = 1;
	for (int i = 0; i < 20 && n != 0; i++) {
		event_loop_once(f->loop, 10);
		fd_set_nonblock(sv[1], true);
		while ((n = read(sv[1], b, sizeof(b))) > 0)
			;
	}
	assert_int_equal(n, 0);
	close(sv[1]);
}

static void test_timeout_and_encoding(void **state)
{
	uint64_t ns;
	(void)state;
	assert_int_equal(grpc_parse_timeout("10S", &ns), 0);
	assert_true(ns == 10000000000ull);
	assert_int_equal(grpc_parse_timeout("250m", &ns), 0);
	assert_true(ns == 250000000ull);
	assert_int_equal(grpc_parse_timeout("99999999H", &ns), 0);
	assert_int_equal(grpc_parse_timeout("123456789S", &ns), -EINVAL);
	assert_int_equal(grpc_parse_timeout("S", &ns), -EINVAL);
	assert_int_equal(grpc_parse_timeout("10", &ns), -EINVAL);
	assert_int_equal(grpc_parse_timeout("10x", &ns), -EINVAL);
	assert_int_equal(grpc_parse_timeout("10SS", &ns), -EINVAL);
	char *e = grpc_percent_encode("a%b\n\xc3\xa9");
	assert_string_equal(e, "a%25b%0A%C3%A9");
	free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_unary_and_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_kept_out_of_order_and_streaming, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deadline_and_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oversized_message_refused_from_its_prefix, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_not_http2, setup, teardown),
	    cmocka_unit_test(test_timeout_and_encoding),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
