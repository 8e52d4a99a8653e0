/* SPDX-License-Identifier: MIT */
/* The ttrpc server against real clients over a unix socket: calls answered now and
 * later (out of order), errors as statuses, unknown methods, oversize frames,
 * metadata, and a client that leaves with a call pending. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "agent-client.h"
#include "shim-task.pb-c.h"
#include "ttrpc-msg.h"
#include "ttrpc-server.h"
#include "util.h"

#define TASK "containerd.task.v2.Task"

struct state {
	struct ttrpc_call *waiter;
	uint32_t exited; /* Kill's exit status once killed: Wait answers at once */
	bool stop;
	char ns[64];
};

static int do_connect(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                      ProtobufCMessage **ret, struct hull_error **err)
{
	struct state *st = userdata;
	Hull__Task__ConnectRequest *req = hull__task__connect_request__unpack(NULL, len, payload);
	Hull__Task__ConnectResponse *resp;
	const char *ns = ttrpc_call_metadata(call, "containerd-namespace-ttrpc");

	if (!req)
		return hull_error_set(err, -EINVAL, "bad request");
	snprintf(st->ns, sizeof(st->ns), "%s", ns ? ns : "");
	resp = xmalloc(sizeof(*resp));
	hull__task__connect_response__init(resp);
	resp->version = xasprintf("%s/%s", req->id, st->ns);
	resp->shim_pid = (uint32_t)getpid();
	hull__task__connect_request__free_unpacked(req, NULL);
	*ret = &resp->base;
	return 0;
}

static int do_wait(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                   ProtobufCMessage **ret, struct hull_error **err)
{
	struct state *st = userdata;
	(void)payload, (void)len, (void)ret, (void)err;
	if (st->exited) {
		/* Kept, but answered before the handler returns: the way a Task API
		 * Wait on a finished process goes. */
		Hull__Task__WaitResponse w = HULL__TASK__WAIT_RESPONSE__INIT;
		w.exit_status = st->exited;
		ttrpc_call_reply(call, 0, NULL, &w.base);
		return 1;
	}
	st->waiter = call; /* answered when Kill comes */
	return 1;
}

static int do_kill(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                   ProtobufCMessage **ret, struct hull_error **err)
{
	struct state *st = userdata;
	Hull__Task__KillRequest *req = hull__task__kill_request__unpack(NULL, len, payload);
	(void)call, (void)ret;
	if (!req)
		return hull_error_set(err, -EINVAL, "bad request");
	if (strcmp(req->id, "missing") == 0) {
		hull__task__kill_request__free_unpacked(req, NULL);
		return hull_error_set(err, -ENOENT, "container 'missing' not found");
	}
	if (req->signal == 15) {
		st->exited = 143;
	} else if (st->waiter) {
		Hull__Task__WaitResponse w = HULL__TASK__WAIT_RESPONSE__INIT;
		w.exit_status = 128 + req->signal;
		ttrpc_call_reply(st->waiter, 0, NULL, &w.base);
		st->waiter = NULL;
	}
	hull__task__kill_request__free_unpacked(req, NULL);
	return 0; /* empty reply */
}

static int do_shutdown(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                       ProtobufCMessage **ret, struct hull_error **err)
{
	struct state *st = userdata;
	(void)call, (void)payload, (void)len, (void)ret, (void)err;
	st->stop = true;
	return 0;
}

static const struct ttrpc_method methods[] = {
    {TASK, "Connect", do_connect},
    {TASK, "Wait", do_wait},
    {TASK, "Kill", do_kill},
    {TASK, "Shutdown", do_shutdown},
};

static pid_t server(const char *path)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid > 0) {
		for (int i = 0; i < 500 && access(path, F_OK) < 0; i++)
			usleep(2000);
		return pid;
	}
	struct state st = {0};
	struct event_loop *loop = event_loop_new();
	struct ttrpc_server *s = ttrpc_server_new(loop, methods, ELEMENTSOF(methods), &st);
	if (ttrpc_server_listen(s, path, NULL) < 0)
		_exit(2);
	while (!st.stop)
		if (event_loop_once(loop, 10000) < 0)
			_exit(3);
	/* A Wait kept across a vanished connection is still ours to free. */
	if (st.waiter)
		ttrpc_call_reply(st.waiter, -ECANCELED, NULL, NULL);
	ttrpc_server_free(s);
	event_loop_free(loop);
	_exit(0);
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	strcpy(sa.sun_path, path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static struct agent_client *client(const char *path)
{
	struct agent_client *ac = agent_client_new(connect_to(path));
	agent_client_set_service(ac, TASK);
	return ac;
}

struct result {
	bool done;
	int code;
	uint32_t exit_status;
};

static void on_wait(struct agent_client *ac, int code, const char *message, const uint8_t *payload,
                    size_t len, void *userdata)
{
	struct result *res = userdata;
	Hull__Task__WaitResponse *w = hull__task__wait_response__unpack(NULL, len, payload);
	(void)ac, (void)message;
	res->done = true;
	res->code = code;
	if (w) {
		res->exit_status = w->exit_status;
		hull__task__wait_response__free_unpacked(w, NULL);
	}
}

static void test_server(void **state)
{
	char dir[] = "/tmp/hull-ttrpc-XXXXXX";
	struct hull_error *err = NULL;
	ProtobufCMessage *ret = NULL;
	struct result wres = {0};
	int status;
	(void)state;

	assert_non_null(mkdtemp(dir));
	_cleanup_free_ char *path = xasprintf("%s/task.sock", dir);
	pid_t pid = server(path);

	/* A client that leaves with a Wait pending: the server must carry on. */
	{
		struct agent_client *gone = client(path);
		Hull__Task__WaitRequest w = HULL__TASK__WAIT_REQUEST__INIT;
		w.id = (char *)"c1";
		agent_client_call(gone, "Wait", &w.base, 0, NULL, NULL, NULL);
		assert_int_equal(agent_client_io(gone, NULL), 0);
		usleep(50000);
		agent_client_free(gone);
	}

	struct agent_client *ac = client(path);
	Hull__Task__ConnectRequest cr = HULL__TASK__CONNECT_REQUEST__INIT;
	cr.id = (char *)"c1";
	assert_int_equal(agent_client_call_sync(ac, "Connect", &cr.base,
	                                        &hull__task__connect_response__descriptor, &ret,
	                                        5000, &err),
	                 0);
	assert_string_equal(((Hull__Task__ConnectResponse *)ret)->version, "c1/");
	assert_int_equal(((Hull__Task__ConnectResponse *)ret)->shim_pid, pid);
	protobuf_c_message_free_unpacked(ret, NULL);

	/* Wait is answered after Kill, on a later stream: out of order. */
	Hull__Task__WaitRequest wr = HULL__TASK__WAIT_REQUEST__INIT;
	wr.id = (char *)"c1";
	agent_client_call(ac, "Wait", &wr.base, 0, on_wait, NULL, &wres);
	Hull__Task__KillRequest kr = HULL__TASK__KILL_REQUEST__INIT;
	kr.id = (char *)"c1";
	kr.signal = 9;
	assert_int_equal(agent_client_call_sync(ac, "Kill", &kr.base, NULL, NULL, 5000, &err), 0);
	for (int i = 0; i < 100 && !wres.done; i++) {
		agent_client_io(ac, NULL);
		usleep(10000);
	}
	assert_true(wres.done);
	assert_int_equal(wres.code, 0);
	assert_int_equal(wres.exit_status, 137);

	/* Waits answered inside their handler, then one kept for later: the server's
	 * list of kept calls must stay sound (it once took answered calls in). */
	kr.signal = 15;
	assert_int_equal(agent_client_call_sync(ac, "Kill", &kr.base, NULL, NULL, 5000, &err), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(agent_client_call_sync(ac, "Wait", &wr.base,
		                                        &hull__task__wait_response__descriptor,
		                                        &ret, 5000, &err),
		                 0);
		assert_int_equal(((Hull__Task__WaitResponse *)ret)->exit_status, 143);
		protobuf_c_message_free_unpacked(ret, NULL);
	}
	assert_int_equal(agent_client_call_sync(ac, "Connect", &cr.base,
	                                        &hull__task__connect_response__descriptor, &ret,
	                                        5000, &err),
	                 0);
	protobuf_c_message_free_unpacked(ret, NULL);

	/* Errors travel as statuses that map back to errno. */
	kr.id = (char *)"missing";
	assert_int_equal(agent_client_call_sync(ac, "Kill", &kr.base, NULL, NULL, 5000, &err),
	                 -ENOENT);
	assert_string_equal(err->msg, "container 'missing' not found");
	hull_error_free(err), err = NULL;
	assert_int_equal(agent_client_call_sync(ac, "Checkpoint", NULL, NULL, NULL, 5000, &err),
	                 -EOPNOTSUPP);
	assert_non_null(strstr(err->msg, "not implemented"));
	hull_error_free(err), err = NULL;

	/* Metadata (containerd's namespace) and an oversize frame, on a raw connection. */
	{
		int fd = connect_to(path);
		struct buf out = {0};
		uint8_t h[TTRPC_HEADER_SIZE], resp[4096];
		Hull__Ttrpc__Request req = HULL__TTRPC__REQUEST__INIT;
		Hull__Ttrpc__KeyValue kv = HULL__TTRPC__KEY_VALUE__INIT, *kvs[] = {&kv};
		uint8_t inner[64];
		cr.id = (char *)"c2";
		req.service = (char *)TASK;
		req.method = (char *)"Connect";
		req.payload.len = protobuf_c_message_pack(&cr.base, inner);
		req.payload.data = inner;
		kv.key = (char *)"containerd-namespace-ttrpc";
		kv.value = (char *)"k8s.io";
		req.metadata = kvs;
		req.n_metadata = 1;
		/* First a 5 MiB frame: refused, skipped, and the connection still serves. */
		ttrpc_header_encode(h, 5u << 20, 1, TTRPC_TYPE_REQUEST, 0);
		assert_int_equal(write_all(fd, h, sizeof(h)), 0);
		_cleanup_free_ uint8_t *junk = xcalloc(1, 5u << 20);
		assert_int_equal(write_all(fd, junk, 5u << 20), 0);
		uint8_t *p = buf_reserve(&out, TTRPC_HEADER_SIZE +
		                                   protobuf_c_message_get_packed_size(&req.base));
		size_t n = protobuf_c_message_pack(&req.base, p + TTRPC_HEADER_SIZE);
		ttrpc_header_encode(p, (uint32_t)n, 3, TTRPC_TYPE_REQUEST, 0);
		buf_commit(&out, TTRPC_HEADER_SIZE + n);
		assert_int_equal(write_all(fd, buf_head(&out), out.len), 0);
		struct ttrpc_decoder d = {0};
		struct ttrpc_frame f;
		int frames = 0;
		while (frames < 2) {
			ssize_t got = read(fd, resp, sizeof(resp));
			assert_true(got > 0);
			ttrpc_decoder_feed(&d, resp, (size_t)got);
			while (ttrpc_decoder_next(&d, &f) == 1) {
				Hull__Ttrpc__Response *r =
				    hull__ttrpc__response__unpack(NULL, f.length, f.payload);
				assert_non_null(r);
				if (f.stream_id == 1) {
					assert_int_equal(r->status->code, TTRPC_RESOURCE_EXHAUSTED);
				} else {
					assert_int_equal(f.stream_id, 3);
					Hull__Task__ConnectResponse *c =
					    hull__task__connect_response__unpack(
					        NULL, r->payload.len, r->payload.data);
					assert_string_equal(c->version, "c2/k8s.io");
					hull__task__connect_response__free_unpacked(c, NULL);
				}
				hull__ttrpc__response__free_unpacked(r, NULL);
				frames++;
			}
		}
		ttrpc_decoder_release(&d);
		buf_release(&out);
		close(fd);
	}

	agent_client_call_sync(ac, "Shutdown", NULL, NULL, NULL, 5000, NULL);
	agent_client_free(ac);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_server),
	};
	return cmocka_run_group_tests_name("ttrpc-server", tests, NULL, NULL);
}
