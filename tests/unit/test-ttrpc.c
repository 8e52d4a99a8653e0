/* SPDX-License-Identifier: MIT */
/* ttrpc framing: partial reads, oversize frames, unknown stream ids, messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "agent-client.h"
#include "agent.pb-c.h"
#include "ttrpc-msg.h"
#include "util.h"

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

struct seen {
	int calls;
	int code;
	char msg[64];
};

static void count_cb(struct agent_client *ac, int code, const char *message, const uint8_t *payload,
                     size_t len, void *userdata)
{
	struct seen *s = userdata;
	(void)ac;
	(void)payload;
	(void)len;
	s->calls++;
	s->code = code;
	snprintf(s->msg, sizeof(s->msg), "%s", message);
}

static void test_client_unknown_stream_and_split_reply(void **state)
{
	struct agent_client *ac = agent_client_new(-1);
	struct buf out = {0};
	struct seen seen = {0};
	uint32_t sid;
	(void)state;

	sid = agent_client_call(ac, "Check", NULL, 0, count_cb, NULL, &seen);
	assert_int_equal(sid % 2, 1); /* client streams are odd */
	/* A reply on a stream nobody asked on is dropped without a callback. */
	ttrpc_response_append(&out, sid + 2, 0, NULL, NULL);
	agent_client_feed(ac, buf_head(&out), out.len);
	assert_int_equal(seen.calls, 0);
	buf_release(&out);
	/* The real reply, split in two reads, arrives once. */
	ttrpc_response_append(&out, sid, TTRPC_NOT_FOUND, "container 'x' not found", NULL);
	agent_client_feed(ac, buf_head(&out), 3);
	assert_int_equal(seen.calls, 0);
	agent_client_feed(ac, buf_head(&out) + 3, out.len - 3);
	assert_int_equal(seen.calls, 1);
	assert_int_equal(seen.code, TTRPC_NOT_FOUND);
	assert_string_equal(seen.msg, "container 'x' not found");
	/* A duplicate reply for the same stream is dropped too. */
	agent_client_feed(ac, buf_head(&out), out.len);
	assert_int_equal(seen.calls, 1);
	buf_release(&out);
	agent_client_free(ac);
}

static void test_client_sync_call_over_socket(void **state)
{
	int sv[2];
	struct agent_client *ac;
	struct hull_error *err = NULL;
	ProtobufCMessage *reply = NULL;
	(void)state;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ac = agent_client_new(sv[0]);
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
	assert_int_equal(agent_client_call_sync(ac, "Check", NULL,
	                                        &hull__agent__v1__check_response__descriptor,
	                                        &reply, 5000, &err),
	                 0);
	assert_string_equal(((Hull__Agent__V1__CheckResponse *)reply)->version, "9.9.9");
	protobuf_c_message_free_unpacked(reply, NULL);
	/* The peer is gone now: the next call fails cleanly, not hangs. */
	assert_true(agent_client_call_sync(ac, "Check", NULL, NULL, NULL, 5000, &err) < 0);
	assert_non_null(err);
	hull_error_free(err);
	agent_client_free(ac);
	int status;
	waitpid(pid, &status, 0);
	assert_int_equal(status, 0);
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
	    cmocka_unit_test(test_client_unknown_stream_and_split_reply),
	    cmocka_unit_test(test_client_sync_call_over_socket),
	};
	return cmocka_run_group_tests_name("ttrpc", tests, NULL, NULL);
}
