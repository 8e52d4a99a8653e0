/* SPDX-License-Identifier: MIT */
/* ttrpc framing (partial reads, oversize frames, messages) and the one ttrpc client:
 * replies on any split, deadlines, protocol violations, a free from inside its own
 * callbacks, and the read budget that keeps a flooding peer from starving the loop. */
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent.pb-c.h"
#include "event.h"
#include "ttrpc-client.h"
#include "ttrpc-msg.h"
#include "util.h"

/* Turn the loop until cond holds, at most ~10 s: a hang fails the assertion after it
 * instead of stalling the suite. */
#define TURN_UNTIL(loop, cond)                                            \
	do {                                                              \
		for (int turn_ = 0; turn_ < 200 && !(cond); turn_++)      \
			assert_int_equal(event_loop_once((loop), 50), 0); \
	} while (0)

static void test_header_roundtrip(void **state)
{
	uint8_t h[TTRPC_HEADER_SIZE];
	(void)state;

	ttrpc_header_encode(h, 0x01020304, 0x0a0b0c0d, TTRPC_TYPE_RESPONSE,
	                    TTRPC_FLAG_REMOTE_CLOSED);
	/* Big-endian on the wire, as containerd's ttrpc. */
	const uint8_t want[] = {1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 2, 1};
	assert_memory_equal(h, want, sizeof(want));
}

static void test_partial_reads(void **state)
{
	struct buf out = {0};
	struct ttrpc_decoder d = {0};
	struct ttrpc_frame f;
	const char payload[] = "hello, agent";
	(void)state;

	ttrpc_frame_append(&out, 7, TTRPC_TYPE_REQUEST, 0, payload, sizeof(payload));
	/* One byte at a time: nothing until the last byte. */
	for (size_t i = 0; i < out.len - 1; i++) {
		ttrpc_decoder_feed(&d, buf_head(&out) + i, 1);
		assert_int_equal(ttrpc_decoder_next(&d, &f), 0);
	}
	ttrpc_decoder_feed(&d, buf_head(&out) + out.len - 1, 1);
	assert_int_equal(ttrpc_decoder_next(&d, &f), 1);
	assert_int_equal(f.stream_id, 7);
	assert_int_equal(f.type, TTRPC_TYPE_REQUEST);
	assert_int_equal(f.length, sizeof(payload));
	assert_memory_equal(f.payload, payload, sizeof(payload));
	assert_int_equal(ttrpc_decoder_next(&d, &f), 0);
	buf_release(&out);
	ttrpc_decoder_release(&d);
}

static void test_several_frames_one_read(void **state)
{
	struct buf out = {0};
	struct ttrpc_decoder d = {0};
	struct ttrpc_frame f;
	(void)state;

	ttrpc_frame_append(&out, 1, TTRPC_TYPE_REQUEST, 0, "a", 1);
	ttrpc_frame_append(&out, 3, TTRPC_TYPE_DATA, 0, NULL, 0);
	ttrpc_frame_append(&out, 5, TTRPC_TYPE_REQUEST, 0, "ccc", 3);
	ttrpc_decoder_feed(&d, buf_head(&out), out.len);
	assert_int_equal(ttrpc_decoder_next(&d, &f), 1);
	assert_int_equal(f.stream_id, 1);
	assert_int_equal(ttrpc_decoder_next(&d, &f), 1);
	assert_int_equal(f.stream_id, 3);
	assert_int_equal(f.length, 0);
	assert_int_equal(ttrpc_decoder_next(&d, &f), 1);
	assert_int_equal(f.stream_id, 5);
	assert_memory_equal(f.payload, "ccc", 3);
	assert_int_equal(ttrpc_decoder_next(&d, &f), 0);
	buf_release(&out);
	ttrpc_decoder_release(&d);
}

static void test_oversize_frame_is_skipped(void **state)
{
	struct ttrpc_decoder d = {0};
	struct buf out = {0};
	struct ttrpc_frame f;
	uint8_t h[TTRPC_HEADER_SIZE];
	uint8_t junk[4096];
	uint32_t big = TTRPC_MAX_PAYLOAD + 1;
	(void)state;

	memset(junk, 0xab, sizeof(junk));
	ttrpc_header_encode(h, big, 9, TTRPC_TYPE_REQUEST, 0);
	ttrpc_decoder_feed(&d, h, sizeof(h));
	assert_int_equal(ttrpc_decoder_next(&d, &f), -EMSGSIZE);
	assert_int_equal(f.stream_id, 9);
	assert_int_equal(f.length, big);
	/* The oversize payload streams past without being buffered... */
	for (uint32_t left = big; left > 0;) {
		uint32_t n = left < sizeof(junk) ? left : sizeof(junk);
		ttrpc_decoder_feed(&d, junk, n);
		assert_int_equal(ttrpc_decoder_next(&d, &f), 0);
		assert_true(d.in.len == 0);
		left -= n;
	}
	/* ...and the connection stays usable for the next frame. */
	ttrpc_frame_append(&out, 11, TTRPC_TYPE_REQUEST, 0, "ok", 2);
	ttrpc_decoder_feed(&d, buf_head(&out), out.len);
	assert_int_equal(ttrpc_decoder_next(&d, &f), 1);
	assert_int_equal(f.stream_id, 11);
	buf_release(&out);
	ttrpc_decoder_release(&d);
}

static void test_custom_cap(void **state)
{
	struct ttrpc_decoder d = {.max_payload = 16};
	struct buf out = {0};
	struct ttrpc_frame f;
	(void)state;

	ttrpc_frame_append(&out, 1, TTRPC_TYPE_REQUEST, 0, "0123456789abcdefX", 17);
	ttrpc_frame_append(&out, 3, TTRPC_TYPE_REQUEST, 0, "0123456789abcdef", 16);
	ttrpc_decoder_feed(&d, buf_head(&out), out.len);
	assert_int_equal(ttrpc_decoder_next(&d, &f), -EMSGSIZE);
	assert_int_equal(ttrpc_decoder_next(&d, &f), 1);
	assert_int_equal(f.stream_id, 3);
	buf_release(&out);
	ttrpc_decoder_release(&d);
}

static void test_request_message(void **state)
{
	Hull__Agent__V1__ContainerRequest cr = HULL__AGENT__V1__CONTAINER_REQUEST__INIT;
	struct ttrpc_decoder d = {0};
	struct buf out = {0};
	struct ttrpc_frame f;
	Hull__Ttrpc__Request *req;
	(void)state;

	cr.id = (char *)"web";
	ttrpc_request_append(&out, 5, 0, "hull.agent.v1.Agent", "StartContainer", &cr.base);
	ttrpc_decoder_feed(&d, buf_head(&out), out.len);
	assert_int_equal(ttrpc_decoder_next(&d, &f), 1);
	req = hull__ttrpc__request__unpack(NULL, f.length, f.payload);
	assert_non_null(req);
	assert_string_equal(req->service, "hull.agent.v1.Agent");
	assert_string_equal(req->method, "StartContainer");
	Hull__Agent__V1__ContainerRequest *inner =
	    hull__agent__v1__container_request__unpack(NULL, req->payload.len, req->payload.data);
	assert_string_equal(inner->id, "web");
	hull__agent__v1__container_request__free_unpacked(inner, NULL);
	hull__ttrpc__request__free_unpacked(req, NULL);
	buf_release(&out);
	ttrpc_decoder_release(&d);
}

static void test_errno_mapping(void **state)
{
	(void)state;
	assert_int_equal(ttrpc_code_from_errno(-ENOENT), TTRPC_NOT_FOUND);
	assert_int_equal(ttrpc_code_from_errno(-EEXIST), TTRPC_ALREADY_EXISTS);
	assert_int_equal(ttrpc_code_from_errno(-EOPNOTSUPP), TTRPC_UNIMPLEMENTED);
	assert_int_equal(ttrpc_code_from_errno(-EBUSY), TTRPC_FAILED_PRECONDITION);
	assert_int_equal(ttrpc_code_from_errno(0), TTRPC_OK);
	/* The codes the CLI turns into exit statuses survive the round trip. */
	assert_int_equal(ttrpc_errno_from_code(ttrpc_code_from_errno(-ENOENT)), -ENOENT);
	assert_int_equal(ttrpc_errno_from_code(ttrpc_code_from_errno(-EACCES)), -EACCES);
	assert_string_equal(ttrpc_code_name(TTRPC_UNIMPLEMENTED), "UNIMPLEMENTED");
	assert_string_equal(ttrpc_code_name(99), "UNKNOWN");
}

/* ---- the client ---- */

struct seen {
	int calls;
	int code;
	char msg[256];
	int data;     /* DATA frames */
	bool free_it; /* the callback frees the client */
	struct ttrpc_client **client;
};

static void count_cb(struct ttrpc_client *c, int code, const char *message, const uint8_t *payload,
                     size_t len, void *userdata)
{
	struct seen *s = userdata;
	(void)payload;
	(void)len;
	s->calls++;
	s->code = code;
	snprintf(s->msg, sizeof(s->msg), "%s", message);
	if (s->free_it) {
		assert_ptr_equal(*s->client, c);
		*s->client = ttrpc_client_free(c);
	}
}

static void count_data_cb(struct ttrpc_client *c, const uint8_t *payload, size_t len,
                          void *userdata)
{
	struct seen *s = userdata;
	(void)payload;
	(void)len;
	s->data++;
	if (s->free_it) {
		assert_ptr_equal(*s->client, c);
		*s->client = ttrpc_client_free(c);
	}
}

struct failure {
	int calls;
	int code;
	char msg[256];
	struct ttrpc_client **free_client; /* non-NULL: free it from the error callback */
};

static void on_error(struct ttrpc_client *c, const struct hull_error *err, void *userdata)
{
	struct failure *f = userdata;
	f->calls++;
	f->code = err->code;
	snprintf(f->msg, sizeof(f->msg), "%s", err->msg);
	if (f->free_client) {
		assert_ptr_equal(*f->free_client, c);
		*f->free_client = ttrpc_client_free(c);
	}
}

/* A client on one end of a socketpair, attached to its own loop; the test plays the
 * server on peer. */
struct rig {
	struct event_loop *loop;
	struct ttrpc_client *c;
	int peer;
	struct failure failure;
	struct ttrpc_decoder dec; /* what the client sent */
};

static void rig_setup(struct rig *r)
{
	int sv[2];

	*r = (struct rig){0};
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	r->loop = event_loop_new();
	r->c = ttrpc_client_new(sv[0], "hull.test.v1.Test");
	r->peer = sv[1];
	assert_int_equal(ttrpc_client_attach(r->c, r->loop, on_error, &r->failure), 0);
}

static void rig_teardown(struct rig *r)
{
	ttrpc_client_free(r->c);
	event_loop_free(r->loop);
	ttrpc_decoder_release(&r->dec);
	if (r->peer >= 0)
		close(r->peer);
}

static void peer_send(struct rig *r, struct buf *out)
{
	assert_int_equal(send_all(r->peer, buf_head(out), out->len), 0);
	buf_release(out);
}

static void peer_reply(struct rig *r, uint32_t sid, int code, const char *message)
{
	struct buf out = {0};
	ttrpc_response_append(&out, sid, code, message, NULL);
	peer_send(r, &out);
}

/* The next frame the client sent: the client writes from the loop, so turn it until
 * one is there (at most ~10 s). */
static void peer_next_frame(struct rig *r, struct ttrpc_frame *ret)
{
	uint8_t tmp[4096];

	for (int i = 0; ttrpc_decoder_next(&r->dec, ret) != 1; i++) {
		ssize_t n = recv(r->peer, tmp, sizeof(tmp), MSG_DONTWAIT);
		if (n < 0) {
			assert_int_equal(errno, EAGAIN);
			assert_true(i < 200);
			assert_int_equal(event_loop_once(r->loop, 50), 0);
			continue;
		}
		assert_true(n > 0);
		ttrpc_decoder_feed(&r->dec, tmp, (size_t)n);
	}
}

/* The peer sees EOF: the client closed its end. */
static void assert_peer_sees_eof(struct rig *r)
{
	uint8_t tmp[4096];
	for (;;) {
		struct pollfd pfd = {.fd = r->peer, .events = POLLIN};
		assert_int_equal(poll(&pfd, 1, 5000), 1);
		ssize_t n = read(r->peer, tmp, sizeof(tmp));
		assert_true(n >= 0);
		if (n == 0)
			return;
	}
}

/* A response on a stream the client opened but no longer waits on (forgotten, answered
 * already) is dropped: no callback, no violation. A reply split across reads arrives
 * once. */
static void test_client_dropped_and_split_reply(void **state)
{
	struct ttrpc_client *c = ttrpc_client_new(-1, "hull.agent.v1.Agent");
	struct buf out = {0};
	struct seen seen = {0}, other = {0};
	uint32_t sid, gone;
	(void)state;

	sid = ttrpc_client_call(c, "Check", NULL, 0, 0, count_cb, NULL, &seen);
	assert_int_equal(sid % 2, 1); /* client streams are odd */
	gone = ttrpc_client_call(c, "Check", NULL, 0, 0, count_cb, NULL, &other);
	assert_int_equal(gone % 2, 1);
	assert_int_not_equal(gone, sid);
	ttrpc_client_forget(c, gone);
	/* A reply on a stream nobody waits on any more is dropped without a callback. */
	ttrpc_response_append(&out, gone, 0, NULL, NULL);
	ttrpc_client_feed(c, buf_head(&out), out.len);
	assert_int_equal(other.calls, 0);
	assert_int_equal(seen.calls, 0);
	assert_false(ttrpc_client_failed(c, NULL));
	buf_release(&out);
	/* The real reply, split in two reads, arrives once. */
	ttrpc_response_append(&out, sid, TTRPC_NOT_FOUND, "container 'x' not found", NULL);
	ttrpc_client_feed(c, buf_head(&out), 3);
	assert_int_equal(seen.calls, 0);
	ttrpc_client_feed(c, buf_head(&out) + 3, out.len - 3);
	assert_int_equal(seen.calls, 1);
	assert_int_equal(seen.code, TTRPC_NOT_FOUND);
	assert_string_equal(seen.msg, "container 'x' not found");
	/* A duplicate reply for the same stream is dropped too. */
	ttrpc_client_feed(c, buf_head(&out), out.len);
	assert_int_equal(seen.calls, 1);
	assert_false(ttrpc_client_failed(c, NULL));
	buf_release(&out);
	ttrpc_client_free(c);
}

static void test_client_sync_call_over_socket(void **state)
{
	int sv[2];
	struct ttrpc_client *c;
	struct hull_error *err = NULL;
	ProtobufCMessage *reply = NULL;
	(void)state;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	c = ttrpc_client_new(sv[0], "hull.agent.v1.Agent");
	pid_t pid = fork();
	if (pid == 0) {
		/* Scripted agent: read one request, answer on its stream with a version. */
		struct ttrpc_decoder d = {0};
		struct ttrpc_frame f;
		struct buf o = {0};
		uint8_t tmp[4096];
		Hull__Agent__V1__CheckResponse cr = HULL__AGENT__V1__CHECK_RESPONSE__INIT;
		for (;;) {
			ssize_t n = read(sv[1], tmp, sizeof(tmp));
			if (n <= 0)
				_exit(1);
			ttrpc_decoder_feed(&d, tmp, (size_t)n);
			if (ttrpc_decoder_next(&d, &f) == 1)
				break;
		}
		cr.version = (char *)"9.9.9";
		ttrpc_response_append(&o, f.stream_id, 0, NULL, &cr.base);
		_exit(write_all(sv[1], buf_head(&o), o.len) == 0 ? 0 : 1);
	}
	close(sv[1]);
	assert_int_equal(ttrpc_client_call_sync(c, "Check", NULL,
	                                        &hull__agent__v1__check_response__descriptor,
	                                        &reply, 5000, &err),
	                 0);
	assert_string_equal(((Hull__Agent__V1__CheckResponse *)reply)->version, "9.9.9");
	protobuf_c_message_free_unpacked(reply, NULL);
	/* The peer is gone now: the next call fails cleanly, not hangs. */
	assert_true(ttrpc_client_call_sync(c, "Check", NULL, NULL, NULL, 5000, &err) < 0);
	assert_non_null(err);
	hull_error_free(err);
	ttrpc_client_free(c);
	int status;
	waitpid(pid, &status, 0);
	assert_int_equal(status, 0);
}

/* A call with a timeout is answered DEADLINE_EXCEEDED when the peer never answers; the
 * reply that comes late is dropped without a violation and the connection serves on. */
static void test_client_deadline_then_late_reply(void **state)
{
	struct rig r;
	struct seen slow = {0}, next = {0};
	struct ttrpc_frame f;
	uint32_t sid, sid2;
	(void)state;

	rig_setup(&r);
	sid = ttrpc_client_call(r.c, "Slow", NULL, 0, 20, count_cb, NULL, &slow);
	assert_int_not_equal(sid, 0);
	peer_next_frame(&r, &f);
	assert_int_equal(f.stream_id, sid);
	TURN_UNTIL(r.loop, slow.calls > 0);
	assert_int_equal(slow.calls, 1);
	assert_int_equal(slow.code, TTRPC_DEADLINE_EXCEEDED);
	assert_string_equal(slow.msg, "Slow: no answer in 20 ms");

	/* The late reply, then the answer to a new call: once the second arrives, the
	 * first was read (one stream, in order). */
	sid2 = ttrpc_client_call(r.c, "Fast", NULL, 0, 0, count_cb, NULL, &next);
	peer_next_frame(&r, &f);
	assert_int_equal(f.stream_id, sid2);
	peer_reply(&r, sid, 0, NULL);
	peer_reply(&r, sid2, TTRPC_NOT_FOUND, "nope");
	TURN_UNTIL(r.loop, next.calls > 0);
	assert_int_equal(next.calls, 1);
	assert_int_equal(next.code, TTRPC_NOT_FOUND);
	assert_int_equal(slow.calls, 1); /* answered once: the deadline */
	assert_int_equal(r.failure.calls, 0);
	assert_false(ttrpc_client_failed(r.c, NULL));
	rig_teardown(&r);
}

/* Frames a violating peer sends, given the client's two open streams. */
typedef void (*violation_fn)(struct buf *out, uint32_t sid_a, uint32_t sid_b);

/* The peer sends what build makes: the connection ends with -EPROTO and a message with
 * want in it, told once to the error callback, and every pending call is answered
 * UNAVAILABLE with that same message. Returns the DATA frames call A got first. */
static int check_violation(violation_fn build, const char *want)
{
	struct rig r;
	struct seen a = {0}, b = {0};
	struct buf out = {0};
	const struct hull_error *reason = NULL;
	uint32_t sid_a, sid_b;

	rig_setup(&r);
	sid_a = ttrpc_client_call(r.c, "Attach", NULL, 0, 0, count_cb, count_data_cb, &a);
	sid_b = ttrpc_client_call(r.c, "Wait", NULL, 0, 5000, count_cb, NULL, &b);
	build(&out, sid_a, sid_b);
	peer_send(&r, &out);
	TURN_UNTIL(r.loop, r.failure.calls > 0);

	assert_int_equal(r.failure.calls, 1);
	assert_int_equal(r.failure.code, -EPROTO);
	assert_non_null(strstr(r.failure.msg, want));
	assert_true(ttrpc_client_failed(r.c, &reason));
	assert_non_null(reason);
	assert_int_equal(reason->code, -EPROTO);
	assert_string_equal(reason->msg, r.failure.msg);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.code, TTRPC_UNAVAILABLE);
	assert_string_equal(a.msg, r.failure.msg);
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.code, TTRPC_UNAVAILABLE);
	assert_string_equal(b.msg, r.failure.msg);
	/* Over for good: no new calls, nothing more is read or told. */
	assert_int_equal(ttrpc_client_call(r.c, "Check", NULL, 0, 0, count_cb, NULL, &b), 0);
	peer_reply(&r, sid_b, 0, NULL);
	for (int i = 0; i < 3; i++)
		assert_int_equal(event_loop_once(r.loop, 0), 0);
	assert_int_equal(r.failure.calls, 1);
	assert_int_equal(b.calls, 1);
	rig_teardown(&r);
	return a.data;
}

static void data_on_server_stream(struct buf *out, uint32_t sid_a, uint32_t sid_b)
{
	Hull__Agent__V1__StdioData d = HULL__AGENT__V1__STDIO_DATA__INIT;
	(void)sid_b;
	/* One DATA frame on a stream the client has, then one on an even stream. */
	ttrpc_data_append(out, sid_a, 0, &d.base);
	ttrpc_data_append(out, 4, 0, &d.base);
}

static void data_on_future_stream(struct buf *out, uint32_t sid_a, uint32_t sid_b)
{
	Hull__Agent__V1__StdioData d = HULL__AGENT__V1__STDIO_DATA__INIT;
	(void)sid_a;
	/* Odd, but the client has not opened it yet. */
	ttrpc_data_append(out, sid_b + 2, 0, &d.base);
}

static void reply_on_unopened_stream(struct buf *out, uint32_t sid_a, uint32_t sid_b)
{
	(void)sid_a;
	ttrpc_response_append(out, sid_b + 4, 0, NULL, NULL);
}

static void request_from_server(struct buf *out, uint32_t sid_a, uint32_t sid_b)
{
	(void)sid_a;
	(void)sid_b;
	ttrpc_request_append(out, 2, 0, "hull.test.v1.Test", "Hello", NULL);
}

static void oversize_reply(struct buf *out, uint32_t sid_a, uint32_t sid_b)
{
	uint8_t h[TTRPC_HEADER_SIZE];
	uint8_t junk[1024] = {0};
	(void)sid_b;
	/* A reply to a call the client made, one byte over the 4 MiB cap: the header is
	 * enough to refuse it. */
	ttrpc_header_encode(h, TTRPC_MAX_PAYLOAD + 1, sid_a, TTRPC_TYPE_RESPONSE, 0);
	buf_append(out, h, sizeof(h));
	buf_append(out, junk, sizeof(junk));
}

static void test_client_data_on_unopened_stream(void **state)
{
	(void)state;
	/* The frame on the open stream before the violation was delivered. */
	assert_int_equal(check_violation(data_on_server_stream, "data on stream 4, which was "
	                                                        "never opened"),
	                 1);
	assert_int_equal(check_violation(data_on_future_stream, "which was never opened"), 0);
}

static void test_client_reply_on_unopened_stream(void **state)
{
	(void)state;
	check_violation(reply_on_unopened_stream, "a reply on stream 7, which was never opened");
}

static void test_client_request_from_server(void **state)
{
	(void)state;
	check_violation(request_from_server, "which a server does not send");
}

static void test_client_oversize_frame(void **state)
{
	(void)state;
	check_violation(oversize_reply, "over the 4 MiB limit");
}

/* ---- ttrpc_client_free() from inside the client's own callbacks ---- */

static void test_client_free_in_reply_cb(void **state)
{
	struct rig r;
	struct seen a = {.free_it = true}, b = {0};
	(void)state;

	rig_setup(&r);
	a.client = &r.c;
	uint32_t sid_a = ttrpc_client_call(r.c, "A", NULL, 0, 0, count_cb, NULL, &a);
	uint32_t sid_b = ttrpc_client_call(r.c, "B", NULL, 0, 5000, count_cb, NULL, &b);
	/* Both replies in one read: the second must not reach a freed client. */
	struct buf out = {0};
	ttrpc_response_append(&out, sid_a, 0, NULL, NULL);
	ttrpc_response_append(&out, sid_b, 0, NULL, NULL);
	peer_send(&r, &out);
	TURN_UNTIL(r.loop, a.calls > 0);
	assert_null(r.c);
	for (int i = 0; i < 3; i++)
		assert_int_equal(event_loop_once(r.loop, 0), 0);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 0); /* pending calls are dropped without callbacks */
	assert_int_equal(r.failure.calls, 0);
	assert_peer_sees_eof(&r); /* the fd is closed */
	rig_teardown(&r);
}

static void test_client_free_in_data_cb(void **state)
{
	struct rig r;
	struct seen a = {.free_it = true};
	Hull__Agent__V1__StdioData d = HULL__AGENT__V1__STDIO_DATA__INIT;
	struct buf out = {0};
	(void)state;

	rig_setup(&r);
	a.client = &r.c;
	uint32_t sid = ttrpc_client_call(r.c, "Attach", NULL, 0, 0, count_cb, count_data_cb, &a);
	ttrpc_data_append(&out, sid, 0, &d.base);
	ttrpc_data_append(&out, sid, 0, &d.base);
	ttrpc_response_append(&out, sid, 0, NULL, NULL);
	peer_send(&r, &out);
	TURN_UNTIL(r.loop, a.data > 0);
	assert_null(r.c);
	for (int i = 0; i < 3; i++)
		assert_int_equal(event_loop_once(r.loop, 0), 0);
	assert_int_equal(a.data, 1);
	assert_int_equal(a.calls, 0);
	assert_peer_sees_eof(&r);
	rig_teardown(&r);
}

static void test_client_free_in_error_cb(void **state)
{
	struct rig r;
	struct seen a = {0};
	(void)state;

	rig_setup(&r);
	r.failure.free_client = &r.c;
	struct ttrpc_frame f;
	ttrpc_client_call(r.c, "Wait", NULL, 0, 5000, count_cb, NULL, &a);
	/* Read, then hang up: a clean EOF (unread data would make it ECONNRESET too, by
	 * another path). */
	peer_next_frame(&r, &f);
	close(r.peer), r.peer = -1;
	TURN_UNTIL(r.loop, r.failure.calls > 0);
	assert_null(r.c);
	for (int i = 0; i < 3; i++)
		assert_int_equal(event_loop_once(r.loop, 0), 0);
	assert_int_equal(r.failure.calls, 1);
	assert_int_equal(r.failure.code, -ECONNRESET);
	assert_string_equal(r.failure.msg, "the connection was closed");
	assert_int_equal(a.calls, 0); /* freed before the pending calls were told */
	rig_teardown(&r);
}

static void test_client_free_in_deadline_cb(void **state)
{
	struct rig r;
	struct seen a = {.free_it = true}, b = {.free_it = true};
	(void)state;

	rig_setup(&r);
	a.client = b.client = &r.c;
	ttrpc_client_call(r.c, "A", NULL, 0, 10, count_cb, NULL, &a);
	ttrpc_client_call(r.c, "B", NULL, 0, 10, count_cb, NULL, &b);
	TURN_UNTIL(r.loop, a.calls + b.calls > 0);
	assert_null(r.c);
	for (int i = 0; i < 3; i++)
		assert_int_equal(event_loop_once(r.loop, 20), 0);
	/* Whichever ran out first freed the client: the other is not told. */
	assert_int_equal(a.calls + b.calls, 1);
	assert_int_equal(a.calls ? a.code : b.code, TTRPC_DEADLINE_EXCEEDED);
	rig_teardown(&r);
}

/* The deadline timer and a reply both ready in one round, each callback freeing the
 * client: whichever runs first, the other source must not reach it. */
static void test_client_free_with_timer_and_reply_in_one_round(void **state)
{
	struct rig r;
	struct seen a = {.free_it = true}, b = {.free_it = true};
	(void)state;

	rig_setup(&r);
	a.client = b.client = &r.c;
	ttrpc_client_call(r.c, "A", NULL, 0, 5, count_cb, NULL, &a);
	uint32_t sid_b = ttrpc_client_call(r.c, "B", NULL, 0, 0, count_cb, NULL, &b);
	peer_reply(&r, sid_b, 0, NULL);
	/* Not a timing assertion: past A's deadline, its timerfd is readable for sure, so
	 * both sources are in the same epoll_wait. */
	usleep(30000);
	assert_int_equal(event_loop_once(r.loop, 1000), 0);
	assert_null(r.c);
	assert_int_equal(event_loop_once(r.loop, 0), 0);
	assert_int_equal(a.calls + b.calls, 1);
	rig_teardown(&r);
}

/* Fed by hand (the fuzzer's way), the free waits for the feed to return. */
static void test_client_free_in_feed(void **state)
{
	struct ttrpc_client *c = ttrpc_client_new(-1, "hull.agent.v1.Agent");
	struct seen a = {.free_it = true, .client = &c}, b = {0};
	struct buf out = {0};
	(void)state;

	uint32_t sid_a = ttrpc_client_call(c, "A", NULL, 0, 0, count_cb, NULL, &a);
	uint32_t sid_b = ttrpc_client_call(c, "B", NULL, 0, 0, count_cb, NULL, &b);
	ttrpc_response_append(&out, sid_a, 0, NULL, NULL);
	ttrpc_response_append(&out, sid_b, 0, NULL, NULL);
	ttrpc_client_feed(c, buf_head(&out), out.len);
	assert_null(c);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 0);
	buf_release(&out);
}

/* A call made from a deadline callback (a retry) goes out at once, without waiting for
 * the peer to speak first. */
struct retry {
	struct seen first, second;
	uint32_t sid;
};

static void retry_cb(struct ttrpc_client *c, int code, const char *message, const uint8_t *payload,
                     size_t len, void *userdata)
{
	struct retry *rt = userdata;
	count_cb(c, code, message, payload, len, &rt->first);
	rt->sid = ttrpc_client_call(c, "Again", NULL, 0, 0, count_cb, NULL, &rt->second);
}

static void test_client_call_from_deadline_cb_is_sent(void **state)
{
	struct rig r;
	struct retry rt = {0};
	struct ttrpc_frame f;
	(void)state;

	rig_setup(&r);
	uint32_t sid = ttrpc_client_call(r.c, "Once", NULL, 0, 10, retry_cb, NULL, &rt);
	peer_next_frame(&r, &f);
	assert_int_equal(f.stream_id, sid);
	TURN_UNTIL(r.loop, rt.first.calls > 0);
	assert_int_equal(rt.first.code, TTRPC_DEADLINE_EXCEEDED);
	assert_int_not_equal(rt.sid, 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(event_loop_once(r.loop, 20), 0);
	assert_int_equal(ttrpc_client_out_pending(r.c), 0);
	peer_next_frame(&r, &f);
	assert_int_equal(f.type, TTRPC_TYPE_REQUEST);
	assert_int_equal(f.stream_id, rt.sid);
	rig_teardown(&r);
}

/* ---- the read budget ---- */

struct flood {
	uint32_t next; /* DATA frames seen, and the sequence number expected next */
	uint32_t bad;  /* frames out of order or of the wrong size */
	int replies;
	int code;
};

static void flood_data_cb(struct ttrpc_client *c, const uint8_t *payload, size_t len,
                          void *userdata)
{
	struct flood *fl = userdata;
	uint32_t seq;
	(void)c;
	if (len != sizeof(seq)) {
		fl->bad++;
		return;
	}
	memcpy(&seq, payload, sizeof(seq));
	if (seq != fl->next)
		fl->bad++;
	fl->next++;
}

static void flood_reply_cb(struct ttrpc_client *c, int code, const char *message,
                           const uint8_t *payload, size_t len, void *userdata)
{
	struct flood *fl = userdata;
	(void)c, (void)message, (void)payload, (void)len;
	fl->replies++;
	fl->code = code;
}

/* Send what the socket takes now, from *off on. */
static void fill(int fd, const struct buf *b, size_t *off)
{
	while (*off < b->len) {
		ssize_t n =
		    send(fd, buf_head(b) + *off, b->len - *off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			assert_int_equal(errno, EAGAIN);
			return;
		}
		*off += (size_t)n;
	}
}

/* A peer flooding 10 MiB of tiny valid DATA frames: one wakeup reads at most the
 * 512 KiB budget and returns; every frame arrives, in order, over later wakeups. */
static void test_client_read_budget(void **state)
{
	const size_t frame = TTRPC_HEADER_SIZE + sizeof(uint32_t);
	const uint32_t n_frames = (uint32_t)((10u << 20) / frame);
	struct rig r;
	struct flood fl = {0};
	struct ttrpc_frame f;
	struct buf flood = {0};
	int size = 32 << 20;
	size_t off = 0, readable;
	(void)state;

	rig_setup(&r);
	/* A unix socket holds what its sender's buffer allows: raise it so that more than
	 * the budget waits for the client at once (root may pass net.core.wmem_max). */
	(void)setsockopt(r.peer, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	(void)setsockopt(r.peer, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size));
	uint32_t sid =
	    ttrpc_client_call(r.c, "Attach", NULL, 0, 0, flood_reply_cb, flood_data_cb, &fl);
	peer_next_frame(&r, &f);
	assert_int_equal(f.stream_id, sid);

	for (uint32_t i = 0; i < n_frames; i++)
		ttrpc_frame_append(&flood, sid, TTRPC_TYPE_DATA, 0, &i, sizeof(i));
	fill(r.peer, &flood, &off);
	readable = off / frame;
	if (off < (1u << 20)) {
		buf_release(&flood);
		rig_teardown(&r);
		print_message("a unix socket here holds %zu bytes, not the 1 MiB (twice the read "
		              "budget) this needs: raise net.core.wmem_max or run as root\n",
		              off);
		skip();
	}

	/* One wakeup: some frames, not all that were there to read. */
	assert_int_equal(event_loop_once(r.loop, 1000), 0);
	assert_true(fl.next > 0);
	assert_true(fl.next < readable);
	assert_true(fl.next * frame <= (512u << 10));

	/* The rest over later wakeups, the socket refilled as it drains. */
	for (int i = 0; i < 10000 && fl.next < n_frames; i++) {
		fill(r.peer, &flood, &off);
		assert_int_equal(event_loop_once(r.loop, 1000), 0);
	}
	assert_int_equal(fl.next, n_frames);
	assert_int_equal(fl.bad, 0);
	assert_int_equal(r.failure.calls, 0);
	/* The stream is still the call's: its reply ends it. */
	peer_reply(&r, sid, 0, NULL);
	TURN_UNTIL(r.loop, fl.replies > 0);
	assert_int_equal(fl.replies, 1);
	assert_int_equal(fl.code, 0);
	buf_release(&flood);
	rig_teardown(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header_roundtrip),
	    cmocka_unit_test(test_partial_reads),
	    cmocka_unit_test(test_several_frames_one_read),
	    cmocka_unit_test(test_oversize_frame_is_skipped),
	    cmocka_unit_test(test_custom_cap),
	    cmocka_unit_test(test_request_message),
	    cmocka_unit_test(test_errno_mapping),
	    cmocka_unit_test(test_client_dropped_and_split_reply),
	    cmocka_unit_test(test_client_sync_call_over_socket),
	    cmocka_unit_test(test_client_deadline_then_late_reply),
	    cmocka_unit_test(test_client_data_on_unopened_stream),
	    cmocka_unit_test(test_client_reply_on_unopened_stream),
	    cmocka_unit_test(test_client_request_from_server),
	    cmocka_unit_test(test_client_oversize_frame),
	    cmocka_unit_test(test_client_free_in_reply_cb),
	    cmocka_unit_test(test_client_free_in_data_cb),
	    cmocka_unit_test(test_client_free_in_error_cb),
	    cmocka_unit_test(test_client_free_in_deadline_cb),
	    cmocka_unit_test(test_client_free_with_timer_and_reply_in_one_round),
	    cmocka_unit_test(test_client_free_in_feed),
	    cmocka_unit_test(test_client_read_budget),
	    cmocka_unit_test(test_client_call_from_deadline_cb_is_sent),
	};
	/* A peer that is gone is an error to see, not a SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("ttrpc", tests, NULL, NULL);
}
