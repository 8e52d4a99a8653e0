/* SPDX-License-Identifier: MIT */
/* The ttrpc server against real clients: over a unix socket (calls answered now and
 * later, out of order, errors as statuses, unknown methods, oversize frames, metadata,
 * a client that leaves with a call pending), over a pty (a character device, as the
 * guest's virtio-serial port), DATA frames both ways on a kept call's stream, one call
 * per stream, kept connections across a hangup, and backpressure on a peer that does
 * not read. */
#include <ctype.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent.pb-c.h"
#include "shim-task.pb-c.h"
#include "ttrpc-client.h"
#include "ttrpc-msg.h"
#include "ttrpc-server.h"
#include "util.h"

#define TASK "containerd.task.v2.Task"

/* Turn the loop until cond holds, at most ~10 s: a hang fails the assertion after it
 * instead of stalling the suite. */
#define TURN_UNTIL(loop, cond)                                            \
	do {                                                              \
		for (int turn_ = 0; turn_ < 200 && !(cond); turn_++)      \
			assert_int_equal(event_loop_once((loop), 50), 0); \
	} while (0)

struct state {
	struct ttrpc_call *waiter;
	uint32_t exited; /* Kill's exit status once killed: Wait answers at once */
	bool stop;
	char ns[64];
	struct ttrpc_call *attached; /* Attach, until its input ends */
	char got[64];                /* what came on Attach's stream */
	int n_data;
	int handled; /* Big calls */
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

/* Attach's input: each StdioData is echoed back upper-cased on the stream, eof ends
 * the call. */
static void attach_data(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *userdata)
{
	struct state *st = userdata;
	Hull__Agent__V1__StdioData *d = hull__agent__v1__stdio_data__unpack(NULL, len, payload);
	Hull__Agent__V1__StdioData echo = HULL__AGENT__V1__STDIO_DATA__INIT;
	uint8_t up[64];

	if (!d)
		return;
	st->n_data++;
	strncat(st->got, (const char *)d->data.data,
	        MIN(d->data.len, sizeof(st->got) - strlen(st->got) - 1));
	if (d->eof) {
		ttrpc_call_reply(call, 0, NULL, NULL);
		st->attached = NULL;
	} else {
		echo.fd = 1;
		echo.data.len = MIN(d->data.len, sizeof(up));
		echo.data.data = up;
		for (size_t i = 0; i < echo.data.len; i++)
			up[i] = (uint8_t)toupper(d->data.data[i]);
		ttrpc_call_send_data(call, &echo.base);
	}
	hull__agent__v1__stdio_data__free_unpacked(d, NULL);
}

static int do_attach(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                     ProtobufCMessage **ret, struct hull_error **err)
{
	struct state *st = userdata;
	(void)payload, (void)len, (void)ret, (void)err;
	st->attached = call;
	ttrpc_call_set_data_cb(call, attach_data, st);
	return 1;
}

/* A reply of request.credit bytes: every byte value, over and over. */
static int do_big(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                  ProtobufCMessage **ret, struct hull_error **err)
{
	struct state *st = userdata;
	Hull__Agent__V1__StdioData *req = hull__agent__v1__stdio_data__unpack(NULL, len, payload);
	Hull__Agent__V1__StdioData *resp;
	(void)call;

	if (!req)
		return hull_error_set(err, -EINVAL, "bad request");
	st->handled++;
	resp = xmalloc(sizeof(*resp));
	hull__agent__v1__stdio_data__init(resp);
	resp->data.len = req->credit;
	resp->data.data = xmalloc(req->credit);
	for (size_t i = 0; i < req->credit; i++)
		resp->data.data[i] = (uint8_t)i;
	hull__agent__v1__stdio_data__free_unpacked(req, NULL);
	*ret = &resp->base;
	return 0;
}

static const struct ttrpc_method methods[] = {
    {TASK, "Connect", do_connect},   {TASK, "Wait", do_wait},     {TASK, "Kill", do_kill},
    {TASK, "Shutdown", do_shutdown}, {TASK, "Attach", do_attach}, {TASK, "Big", do_big},
};

static pid_t server(const char *path)
{
	int ready[2];
	char c;

	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid > 0) {
		/* Listening once it says so (the socket file alone exists before listen()). */
		close(ready[1]);
		assert_int_equal(read(ready[0], &c, 1), 1);
		close(ready[0]);
		return pid;
	}
	close(ready[0]);
	struct state st = {0};
	struct event_loop *loop = event_loop_new();
	struct ttrpc_server *s = ttrpc_server_new(loop, methods, ELEMENTSOF(methods), &st);
	if (ttrpc_server_listen(s, path, NULL) < 0)
		_exit(2);
	if (write(ready[1], "", 1) != 1)
		_exit(2);
	close(ready[1]);
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

static struct ttrpc_client *client(const char *path)
{
	return ttrpc_client_new(connect_to(path), TASK);
}

struct result {
	bool done;
	int code;
	char message[128];
	uint32_t exit_status;
	uint8_t *payload; /* a copy of the reply's */
	size_t len;
	int n_data;        /* StdioData frames on the stream */
	int n_data_at_end; /* ...when the reply came */
	char data[64];
};

static void on_reply(struct ttrpc_client *c, int code, const char *message, const uint8_t *payload,
                     size_t len, void *userdata)
{
	struct result *res = userdata;
	(void)c;
	res->done = true;
	res->code = code;
	res->n_data_at_end = res->n_data;
	snprintf(res->message, sizeof(res->message), "%s", message);
	free(res->payload);
	res->payload = len ? xmalloc(len) : NULL;
	if (len)
		memcpy(res->payload, payload, len);
	res->len = len;
}

static void on_wait(struct ttrpc_client *c, int code, const char *message, const uint8_t *payload,
                    size_t len, void *userdata)
{
	struct result *res = userdata;
	Hull__Task__WaitResponse *w = hull__task__wait_response__unpack(NULL, len, payload);
	on_reply(c, code, message, payload, len, userdata);
	if (w) {
		res->exit_status = w->exit_status;
		hull__task__wait_response__free_unpacked(w, NULL);
	}
}

static void on_data(struct ttrpc_client *c, const uint8_t *payload, size_t len, void *userdata)
{
	struct result *res = userdata;
	Hull__Agent__V1__StdioData *d = hull__agent__v1__stdio_data__unpack(NULL, len, payload);
	(void)c;
	assert_non_null(d);
	assert_int_equal(d->fd, 1);
	res->n_data++;
	strncat(res->data, (const char *)d->data.data,
	        MIN(d->data.len, sizeof(res->data) - strlen(res->data) - 1));
	hull__agent__v1__stdio_data__free_unpacked(d, NULL);
}

static void result_clear(struct result *res)
{
	free(res->payload);
	*res = (struct result){0};
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

	struct event_loop *loop = event_loop_new();

	/* A client that leaves with a Wait pending: the server must carry on. */
	{
		struct ttrpc_client *gone = client(path);
		Hull__Task__WaitRequest w = HULL__TASK__WAIT_REQUEST__INIT;
		Hull__Task__ConnectRequest c = HULL__TASK__CONNECT_REQUEST__INIT;
		w.id = (char *)"c1";
		c.id = (char *)"c1";
		assert_int_equal(ttrpc_client_attach(gone, loop, NULL, NULL), 0);
		assert_int_not_equal(
		    ttrpc_client_call(gone, "Wait", &w.base, 0, 0, NULL, NULL, NULL), 0);
		TURN_UNTIL(loop, ttrpc_client_out_pending(gone) == 0);
		assert_int_equal(ttrpc_client_out_pending(gone), 0);
		assert_false(ttrpc_client_failed(gone, NULL));
		/* Answered in order on one connection: once Connect is, Wait was read. */
		assert_int_equal(
		    ttrpc_client_call_sync(gone, "Connect", &c.base, NULL, NULL, 5000, NULL), 0);
		ttrpc_client_free(gone);
	}

	struct ttrpc_client *ac = client(path);
	assert_int_equal(ttrpc_client_attach(ac, loop, NULL, NULL), 0);
	Hull__Task__ConnectRequest cr = HULL__TASK__CONNECT_REQUEST__INIT;
	cr.id = (char *)"c1";
	assert_int_equal(ttrpc_client_call_sync(ac, "Connect", &cr.base,
	                                        &hull__task__connect_response__descriptor, &ret,
	                                        5000, &err),
	                 0);
	assert_string_equal(((Hull__Task__ConnectResponse *)ret)->version, "c1/");
	assert_int_equal(((Hull__Task__ConnectResponse *)ret)->shim_pid, pid);
	protobuf_c_message_free_unpacked(ret, NULL);

	/* Wait is answered after Kill, on a later stream: out of order. */
	Hull__Task__WaitRequest wr = HULL__TASK__WAIT_REQUEST__INIT;
	wr.id = (char *)"c1";
	assert_int_not_equal(ttrpc_client_call(ac, "Wait", &wr.base, 0, 0, on_wait, NULL, &wres),
	                     0);
	Hull__Task__KillRequest kr = HULL__TASK__KILL_REQUEST__INIT;
	kr.id = (char *)"c1";
	kr.signal = 9;
	assert_int_equal(ttrpc_client_call_sync(ac, "Kill", &kr.base, NULL, NULL, 5000, &err), 0);
	TURN_UNTIL(loop, wres.done);
	assert_true(wres.done);
	assert_int_equal(wres.code, 0);
	assert_int_equal(wres.exit_status, 137);

	/* Waits answered inside their handler, then one kept for later: the server's
	 * list of kept calls must stay sound (it once took answered calls in). */
	kr.signal = 15;
	assert_int_equal(ttrpc_client_call_sync(ac, "Kill", &kr.base, NULL, NULL, 5000, &err), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ttrpc_client_call_sync(ac, "Wait", &wr.base,
		                                        &hull__task__wait_response__descriptor,
		                                        &ret, 5000, &err),
		                 0);
		assert_int_equal(((Hull__Task__WaitResponse *)ret)->exit_status, 143);
		protobuf_c_message_free_unpacked(ret, NULL);
	}
	assert_int_equal(ttrpc_client_call_sync(ac, "Connect", &cr.base,
	                                        &hull__task__connect_response__descriptor, &ret,
	                                        5000, &err),
	                 0);
	protobuf_c_message_free_unpacked(ret, NULL);

	/* Errors travel as statuses that map back to errno. */
	kr.id = (char *)"missing";
	assert_int_equal(ttrpc_client_call_sync(ac, "Kill", &kr.base, NULL, NULL, 5000, &err),
	                 -ENOENT);
	assert_string_equal(err->msg, "container 'missing' not found");
	hull_error_free(err), err = NULL;
	assert_int_equal(ttrpc_client_call_sync(ac, "Checkpoint", NULL, NULL, NULL, 5000, &err),
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

	ttrpc_client_call_sync(ac, "Shutdown", NULL, NULL, NULL, 5000, NULL);
	ttrpc_client_free(ac);
	event_loop_free(loop);
	result_clear(&wres);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	unlink(path);
	rmdir(dir);
}

/* ---- in one process: the server and its peer on one loop ---- */

struct harness {
	struct event_loop *loop;
	struct ttrpc_server *s;
	struct state st;
};

static void harness_setup(struct harness *h)
{
	*h = (struct harness){0};
	h->loop = event_loop_new();
	h->s = ttrpc_server_new(h->loop, methods, ELEMENTSOF(methods), &h->st);
}

static void harness_teardown(struct harness *h)
{
	ttrpc_server_free(h->s);
	/* Kept calls outlive the server: still ours to answer (and free). */
	if (h->st.waiter)
		ttrpc_call_reply(h->st.waiter, -ECANCELED, NULL, NULL);
	if (h->st.attached)
		ttrpc_call_reply(h->st.attached, -ECANCELED, NULL, NULL);
	event_loop_free(h->loop);
}

/* A peer speaking raw frames on fd, to do what ttrpc_client never does. */
struct raw {
	int fd;
	struct ttrpc_decoder dec;
};

static void raw_request(struct raw *r, uint32_t sid, const char *method,
                        const ProtobufCMessage *msg)
{
	struct buf out = {0};
	ttrpc_request_append(&out, sid, 0, TASK, method, msg);
	assert_int_equal(write_all(r->fd, buf_head(&out), out.len), 0);
	buf_release(&out);
}

/* The next response on r, turning the loop until it is there (at most ~10 s); NULL at
 * EOF. Free with hull__ttrpc__response__free_unpacked. */
static Hull__Ttrpc__Response *raw_response(struct harness *h, struct raw *r, uint32_t *ret_sid)
{
	struct ttrpc_frame f;
	uint8_t tmp[64 << 10];

	for (int i = 0; ttrpc_decoder_next(&r->dec, &f) != 1; i++) {
		struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
		ssize_t n;
		assert_true(poll(&pfd, 1, 0) >= 0);
		if (!pfd.revents) {
			assert_true(i < 200);
			assert_int_equal(event_loop_once(h->loop, 50), 0);
			continue;
		}
		n = read(r->fd, tmp, sizeof(tmp));
		assert_true(n >= 0);
		if (n == 0)
			return NULL;
		ttrpc_decoder_feed(&r->dec, tmp, (size_t)n);
	}
	assert_int_equal(f.type, TTRPC_TYPE_RESPONSE);
	*ret_sid = f.stream_id;
	Hull__Ttrpc__Response *resp = hull__ttrpc__response__unpack(NULL, f.length, f.payload);
	assert_non_null(resp);
	return resp;
}

static int status_code(const Hull__Ttrpc__Response *resp)
{
	return resp->status ? resp->status->code : 0;
}

static uint32_t wait_exit_status(const Hull__Ttrpc__Response *resp)
{
	Hull__Task__WaitResponse *w =
	    hull__task__wait_response__unpack(NULL, resp->payload.len, resp->payload.data);
	uint32_t v;
	assert_non_null(w);
	v = w->exit_status;
	hull__task__wait_response__free_unpacked(w, NULL);
	return v;
}

/* A pty master; *name is its slave's path. */
static int pty_open(char *name, size_t size)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	assert_true(m >= 0);
	assert_int_equal(grantpt(m), 0);
	assert_int_equal(unlockpt(m), 0);
	assert_int_equal(ptsname_r(m, name, size), 0);
	return m;
}

/* The slave end, raw: no echo, no line editing, no CR/LF games, all 8 bits. */
static int pty_open_slave(const char *name)
{
	struct termios t;
	struct stat sb;
	int fd = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(tcgetattr(fd, &t), 0);
	cfmakeraw(&t);
	assert_int_equal(tcsetattr(fd, TCSANOW, &t), 0);
	assert_int_equal(fstat(fd, &sb), 0);
	assert_true(S_ISCHR(sb.st_mode));
	return fd;
}

/* A pty, the way the agent's virtio-serial port is a character device: requests answered
 * over it, one kept and answered out of order, a reply much larger than the tty's
 * buffers with every byte value in it. */
static void test_server_pty(void **state)
{
	struct harness h;
	struct result res = {0}, wres = {0};
	char name[128];
	(void)state;

	harness_setup(&h);
	int m = pty_open(name, sizeof(name));
	assert_int_equal(ttrpc_server_add_fd(h.s, pty_open_slave(name), 0), 0);
	struct ttrpc_client *c = ttrpc_client_new(m, TASK);
	assert_int_equal(ttrpc_client_attach(c, h.loop, NULL, NULL), 0);

	Hull__Task__ConnectRequest cr = HULL__TASK__CONNECT_REQUEST__INIT;
	cr.id = (char *)"c1";
	assert_int_not_equal(ttrpc_client_call(c, "Connect", &cr.base, 0, 0, on_reply, NULL, &res),
	                     0);
	TURN_UNTIL(h.loop, res.done);
	assert_true(res.done);
	assert_int_equal(res.code, 0);
	Hull__Task__ConnectResponse *resp =
	    hull__task__connect_response__unpack(NULL, res.len, res.payload);
	assert_non_null(resp);
	assert_string_equal(resp->version, "c1/");
	assert_int_equal(resp->shim_pid, getpid());
	hull__task__connect_response__free_unpacked(resp, NULL);
	result_clear(&res);

	/* Wait kept, answered by a later Kill. */
	Hull__Task__WaitRequest wr = HULL__TASK__WAIT_REQUEST__INIT;
	Hull__Task__KillRequest kr = HULL__TASK__KILL_REQUEST__INIT;
	wr.id = kr.id = (char *)"c1";
	kr.signal = 9;
	ttrpc_client_call(c, "Wait", &wr.base, 0, 0, on_wait, NULL, &wres);
	ttrpc_client_call(c, "Kill", &kr.base, 0, 0, on_reply, NULL, &res);
	TURN_UNTIL(h.loop, wres.done && res.done);
	assert_int_equal(res.code, 0);
	assert_int_equal(wres.code, 0);
	assert_int_equal(wres.exit_status, 137);
	result_clear(&res);
	result_clear(&wres);

	/* An error status. */
	kr.id = (char *)"missing";
	ttrpc_client_call(c, "Kill", &kr.base, 0, 0, on_reply, NULL, &res);
	TURN_UNTIL(h.loop, res.done);
	assert_int_equal(res.code, TTRPC_NOT_FOUND);
	assert_string_equal(res.message, "container 'missing' not found");
	result_clear(&res);

	/* 256 KiB of every byte value (^C, ^S, ^Q, CR, LF, DEL among them). */
	Hull__Agent__V1__StdioData big = HULL__AGENT__V1__STDIO_DATA__INIT;
	big.credit = 256u << 10;
	ttrpc_client_call(c, "Big", &big.base, 0, 0, on_reply, NULL, &res);
	TURN_UNTIL(h.loop, res.done);
	assert_int_equal(res.code, 0);
	Hull__Agent__V1__StdioData *d =
	    hull__agent__v1__stdio_data__unpack(NULL, res.len, res.payload);
	assert_non_null(d);
	assert_int_equal(d->data.len, 256u << 10);
	for (size_t i = 0; i < d->data.len; i++)
		if (d->data.data[i] != (uint8_t)i)
			fail_msg("byte %zu is 0x%02x, not 0x%02x", i, d->data.data[i], (uint8_t)i);
	hull__agent__v1__stdio_data__free_unpacked(d, NULL);
	result_clear(&res);

	ttrpc_client_free(c);
	harness_teardown(&h);
}

static void send_stdio(struct ttrpc_client *c, uint32_t sid, const char *s, bool eof)
{
	Hull__Agent__V1__StdioData d = HULL__AGENT__V1__STDIO_DATA__INIT;
	d.data.data = (uint8_t *)s;
	d.data.len = strlen(s);
	d.eof = eof;
	ttrpc_client_send_data(c, sid, &d.base);
}

/* DATA frames from the client on a kept call's stream reach its data callback, frames
 * the call sends reach the client's data callback, and they come before the reply. */
static void test_server_call_data(void **state)
{
	struct harness h;
	struct result res = {0}, check = {0};
	int sv[2];
	(void)state;

	harness_setup(&h);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(ttrpc_server_add_fd(h.s, sv[0], 0), 0);
	struct ttrpc_client *c = ttrpc_client_new(sv[1], TASK);
	assert_int_equal(ttrpc_client_attach(c, h.loop, NULL, NULL), 0);

	uint32_t sid = ttrpc_client_call(c, "Attach", NULL, TTRPC_FLAG_REMOTE_OPEN, 0, on_reply,
	                                 on_data, &res);
	assert_int_not_equal(sid, 0);
	TURN_UNTIL(h.loop, h.st.attached != NULL);
	assert_non_null(h.st.attached);

	send_stdio(c, sid, "ping", false);
	TURN_UNTIL(h.loop, res.n_data == 1);
	assert_int_equal(h.st.n_data, 1);
	assert_string_equal(h.st.got, "ping");
	assert_int_equal(res.n_data, 1);
	assert_string_equal(res.data, "PING");

	send_stdio(c, sid, "pong", false);
	send_stdio(c, sid, "!", true);
	TURN_UNTIL(h.loop, res.done);
	assert_true(res.done);
	assert_int_equal(res.code, 0);
	assert_string_equal(h.st.got, "pingpong!");
	assert_null(h.st.attached);
	assert_int_equal(res.n_data_at_end, 2);
	assert_string_equal(res.data, "PINGPONG");

	/* DATA on a stream no call keeps any more is dropped, and the connection serves
	 * on. */
	send_stdio(c, sid, "late", false);
	Hull__Task__ConnectRequest cr = HULL__TASK__CONNECT_REQUEST__INIT;
	cr.id = (char *)"c1";
	ttrpc_client_call(c, "Connect", &cr.base, 0, 0, on_reply, NULL, &check);
	TURN_UNTIL(h.loop, check.done);
	assert_int_equal(check.code, 0);
	assert_int_equal(h.st.n_data, 3);
	assert_string_equal(h.st.got, "pingpong!");

	result_clear(&res);
	result_clear(&check);
	ttrpc_client_free(c);
	harness_teardown(&h);
}

/* One call per stream: a second request on the stream a kept call holds is refused
 * FAILED_PRECONDITION, and the first call is still answered on it. */
static void test_server_stream_in_use(void **state)
{
	struct harness h;
	struct raw r = {0};
	Hull__Ttrpc__Response *resp;
	uint32_t sid;
	int sv[2];
	(void)state;

	harness_setup(&h);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(ttrpc_server_add_fd(h.s, sv[0], 0), 0);
	r.fd = sv[1];

	Hull__Task__WaitRequest wr = HULL__TASK__WAIT_REQUEST__INIT;
	Hull__Task__ConnectRequest cr = HULL__TASK__CONNECT_REQUEST__INIT;
	Hull__Task__KillRequest kr = HULL__TASK__KILL_REQUEST__INIT;
	wr.id = cr.id = kr.id = (char *)"c1";
	kr.signal = 9;
	raw_request(&r, 1, "Wait", &wr.base);
	raw_request(&r, 1, "Connect", &cr.base);
	resp = raw_response(&h, &r, &sid);
	assert_int_equal(sid, 1);
	assert_int_equal(status_code(resp), TTRPC_FAILED_PRECONDITION);
	assert_string_equal(resp->status->message, "stream 1 is in use");
	hull__ttrpc__response__free_unpacked(resp, NULL);
	assert_non_null(h.st.waiter);

	/* Kill answers the Wait that kept stream 1. */
	raw_request(&r, 3, "Kill", &kr.base);
	for (int i = 0; i < 2; i++) {
		resp = raw_response(&h, &r, &sid);
		assert_int_equal(status_code(resp), 0);
		if (sid == 1)
			assert_int_equal(wait_exit_status(resp), 137);
		else
			assert_int_equal(sid, 3);
		hull__ttrpc__response__free_unpacked(resp, NULL);
	}
	assert_null(h.st.waiter);

	ttrpc_decoder_release(&r.dec);
	close(r.fd);
	harness_teardown(&h);
}

/* The peer hangs up (shuts its side down) while a call is kept. With TTRPC_FD_KEEP the
 * connection stays: the call can still be answered, and the answer still goes out.
 * Without it the connection is gone and the answer is dropped, without a crash. */
static void test_server_keep_across_hangup(void **state)
{
	struct harness h;
	struct raw r = {0};
	Hull__Ttrpc__Response *resp;
	Hull__Task__WaitRequest wr = HULL__TASK__WAIT_REQUEST__INIT;
	Hull__Task__WaitResponse w = HULL__TASK__WAIT_RESPONSE__INIT;
	uint32_t sid;
	int sv[2];
	(void)state;

	wr.id = (char *)"c1";
	w.exit_status = 137;
	for (int keep = 1; keep >= 0; keep--) {
		harness_setup(&h);
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		assert_int_equal(ttrpc_server_add_fd(h.s, sv[0], keep ? TTRPC_FD_KEEP : 0), 0);
		r = (struct raw){.fd = sv[1]};
		raw_request(&r, 1, "Wait", &wr.base);
		TURN_UNTIL(h.loop, h.st.waiter != NULL);
		assert_non_null(h.st.waiter);

		assert_int_equal(shutdown(r.fd, SHUT_WR), 0);
		for (int i = 0; i < 3; i++)
			assert_int_equal(event_loop_once(h.loop, 0), 0);
		if (keep) {
			/* The connection is still there for the call to answer on... */
			assert_non_null(ttrpc_call_out(h.st.waiter));
			ttrpc_call_reply(h.st.waiter, 0, NULL, &w.base);
			h.st.waiter = NULL;
			/* ...and the answer reaches the peer (its read side is open). */
			resp = raw_response(&h, &r, &sid);
			assert_non_null(resp);
			assert_int_equal(sid, 1);
			assert_int_equal(wait_exit_status(resp), 137);
			hull__ttrpc__response__free_unpacked(resp, NULL);
		} else {
			assert_null(ttrpc_call_out(h.st.waiter));
			ttrpc_call_reply(h.st.waiter, 0, NULL, &w.base);
			h.st.waiter = NULL;
			assert_null(raw_response(&h, &r, &sid)); /* EOF, no answer */
		}
		ttrpc_decoder_release(&r.dec);
		close(r.fd);
		harness_teardown(&h);
	}
}

/* Kept across an absent host, the way the agent keeps its virtio-serial port: the server
 * on a pty master, the host on the slave. The host goes away (its last fd closes, the
 * master reports HUP) while a call is kept; the call is answered meanwhile; the host
 * comes back and gets that answer, and new requests are served. */
static void test_server_keep_across_reconnect(void **state)
{
	struct harness h;
	struct raw r = {0};
	Hull__Ttrpc__Response *resp;
	Hull__Task__WaitRequest wr = HULL__TASK__WAIT_REQUEST__INIT;
	Hull__Task__WaitResponse w = HULL__TASK__WAIT_RESPONSE__INIT;
	Hull__Task__ConnectRequest cr = HULL__TASK__CONNECT_REQUEST__INIT;
	char name[128];
	uint32_t sid;
	(void)state;

	harness_setup(&h);
	assert_int_equal(ttrpc_server_add_fd(h.s, pty_open(name, sizeof(name)), TTRPC_FD_KEEP), 0);
	r.fd = pty_open_slave(name);
	wr.id = cr.id = (char *)"c1";
	raw_request(&r, 1, "Wait", &wr.base);
	TURN_UNTIL(h.loop, h.st.waiter != NULL);
	assert_non_null(h.st.waiter);

	close(r.fd);
	/* Several turns, retries of the parked connection among them (every 50 ms). */
	for (int i = 0; i < 4; i++)
		assert_int_equal(event_loop_once(h.loop, 30), 0);
	assert_non_null(ttrpc_call_out(h.st.waiter));
	w.exit_status = 137;
	ttrpc_call_reply(h.st.waiter, 0, NULL, &w.base);
	h.st.waiter = NULL;
	for (int i = 0; i < 4; i++)
		assert_int_equal(event_loop_once(h.loop, 30), 0);

	r.fd = pty_open_slave(name);
	resp = raw_response(&h, &r, &sid);
	assert_non_null(resp);
	assert_int_equal(sid, 1);
	assert_int_equal(status_code(resp), 0);
	assert_int_equal(wait_exit_status(resp), 137);
	hull__ttrpc__response__free_unpacked(resp, NULL);

	raw_request(&r, 3, "Connect", &cr.base);
	resp = raw_response(&h, &r, &sid);
	assert_non_null(resp);
	assert_int_equal(sid, 3);
	assert_int_equal(status_code(resp), 0);
	hull__ttrpc__response__free_unpacked(resp, NULL);

	ttrpc_decoder_release(&r.dec);
	close(r.fd);
	harness_teardown(&h);
}

/* A peer that writes requests and does not read: its requests wait once more than
 * 16 MiB of replies are queued for it, the connection stays, and they are read again
 * once it reads. */
static void test_server_backpressure(void **state)
{
	struct harness h;
	struct raw r = {0};
	Hull__Agent__V1__StdioData big = HULL__AGENT__V1__STDIO_DATA__INIT;
	int written = 0, answered = 0;
	int sv[2];
	(void)state;

	harness_setup(&h);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(ttrpc_server_add_fd(h.s, sv[0], 0), 0);
	r.fd = sv[1];
	big.credit = 1u << 20;

	/* One 1 MiB reply per request, none read. The request is in the socket before
	 * the loop turns: a turn that does not handle it did not read it. */
	while (written < 48) {
		int before = h.st.handled;
		raw_request(&r, (uint32_t)(2 * written + 1), "Big", &big.base);
		written++;
		assert_int_equal(event_loop_once(h.loop, 0), 0);
		if (h.st.handled == before)
			break;
	}
	assert_int_equal(h.st.handled, written - 1);
	assert_true(h.st.handled >= 16); /* not before 16 MiB are queued */
	for (int i = 0; i < 3; i++)
		assert_int_equal(event_loop_once(h.loop, 0), 0);
	assert_int_equal(h.st.handled, written - 1);
	/* Not disconnected. */
	struct pollfd pfd = {.fd = r.fd, .events = POLLIN | POLLRDHUP};
	assert_int_equal(poll(&pfd, 1, 0), 1);
	assert_int_equal(pfd.revents & (POLLHUP | POLLRDHUP | POLLERR), 0);

	/* The peer reads: every request is answered, the one that waited too. */
	while (answered < written) {
		uint32_t sid;
		Hull__Ttrpc__Response *resp = raw_response(&h, &r, &sid);
		assert_non_null(resp);
		assert_int_equal(status_code(resp), 0);
		assert_int_equal(sid, (uint32_t)(2 * answered + 1));
		assert_true(resp->payload.len > big.credit);
		hull__ttrpc__response__free_unpacked(resp, NULL);
		answered++;
	}
	assert_int_equal(h.st.handled, written);

	ttrpc_decoder_release(&r.dec);
	close(r.fd);
	harness_teardown(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_server),
	    cmocka_unit_test(test_server_pty),
	    cmocka_unit_test(test_server_call_data),
	    cmocka_unit_test(test_server_stream_in_use),
	    cmocka_unit_test(test_server_keep_across_hangup),
	    cmocka_unit_test(test_server_keep_across_reconnect),
	    cmocka_unit_test(test_server_backpressure),
	};
	/* A peer that is gone is an error to see, not a SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("ttrpc-server", tests, NULL, NULL);
}
