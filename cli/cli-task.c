/* SPDX-License-Identifier: MIT */
/* The Task API (containerd's shim v2 service) of a detached sandbox: hull ps, exec,
 * kill, rm and inspect talk to it on STATE/task.sock, and containerd's shim (issue 5)
 * will serve the same handlers. Thin adapters: decode, check, call the agent, answer
 * when the agent has. */
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include "agent.pb-c.h"
#include "cli-run.h"
#include "log.h"
#include "shim-task.pb-c.h"
#include "util.h"

#define TASK_SERVICE "containerd.task.v2.Task"
#define EXEC_WINDOW (1u << 20)

struct task_exec {
	char *exec_id;
	bool terminal, started, exited;
	uint32_t pid, exit_status;
	uint64_t exited_at_ns;
	char *stdin_path, *stdout_path, *stderr_path;
	int in_fd, out_fd, err_fd;
	uint32_t attach_sid;
	uint64_t in_credit;
	struct task_exec *next;
};

struct task_waiter {
	struct ttrpc_call *call;
	char *exec_id;
	struct task_waiter *next;
};

struct task_state {
	struct task_exec *execs;
	struct task_waiter *waiters;
};

static uint64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static Hull__Task__Timestamp *timestamp(uint64_t ns)
{
	Hull__Task__Timestamp *t = xmalloc(sizeof(*t));
	hull__task__timestamp__init(t);
	t->seconds = (int64_t)(ns / 1000000000ull);
	t->nanos = (int32_t)(ns % 1000000000ull);
	return t;
}

static struct task_exec *exec_find(struct run_state *s, const char *exec_id)
{
	for (struct task_exec *e = s->ts->execs; e; e = e->next)
		if (strcmp(e->exec_id, exec_id) == 0)
			return e;
	return NULL;
}

static void closefd(struct run_state *s, int *fd)
{
	if (*fd >= 0) {
		event_del(s->loop, *fd);
		close(*fd);
		*fd = -1;
	}
}

static void exec_free(struct run_state *s, struct task_exec *e)
{
	closefd(s, &e->in_fd);
	closefd(s, &e->out_fd);
	closefd(s, &e->err_fd);
	free(e->exec_id);
	free(e->stdin_path);
	free(e->stdout_path);
	free(e->stderr_path);
	free(e);
}

/* Is the process (exec_id "" = the job's init) done, and with what status? */
static bool process_exited(struct run_state *s, const char *exec_id, uint32_t *status, uint64_t *at)
{
	if (!exec_id[0]) {
		*status = (uint32_t)s->exit_code;
		*at = s->exited_at_ns;
		return s->waited || s->vm_died;
	}
	struct task_exec *e = exec_find(s, exec_id);
	if (!e)
		return false;
	*status = e->exit_status;
	*at = e->exited_at_ns;
	return e->exited;
}

static void answer_waiters(struct run_state *s)
{
	for (struct task_waiter **pp = &s->ts->waiters; *pp;) {
		struct task_waiter *w = *pp;
		Hull__Task__WaitResponse resp = HULL__TASK__WAIT_RESPONSE__INIT;
		uint64_t at;
		if (!process_exited(s, w->exec_id, &resp.exit_status, &at)) {
			pp = &w->next;
			continue;
		}
		resp.exited_at = timestamp(at);
		ttrpc_call_reply(w->call, 0, NULL, &resp.base);
		free(resp.exited_at);
		*pp = w->next;
		free(w->exec_id);
		free(w);
	}
}

void task_job_exited(struct run_state *s)
{
	if (!s->exited_at_ns)
		s->exited_at_ns = realtime_ns();
	if (s->ts)
		answer_waiters(s);
}

/* ---- agent calls answered to a kept ttrpc call ---- */

static void reply_empty(struct agent_client *ac, int code, const char *message,
                        const uint8_t *payload, size_t len, void *userdata)
{
	struct hull_error e = {.code = ttrpc_errno_from_code(code), .msg = (char *)message};
	(void)ac, (void)payload, (void)len;
	ttrpc_call_reply(userdata, code ? e.code : 0, code ? &e : NULL, NULL);
}

static int forward(struct run_state *s, struct ttrpc_call *call, const char *method,
                   const ProtobufCMessage *msg)
{
	agent_client_call(s->sb->ac, method, msg, 0, reply_empty, NULL, call);
	event_mod(s->loop, agent_client_fd(s->sb->ac), EPOLLIN | EPOLLOUT);
	return 1;
}

/* ---- handlers ---- */

#define DECODE_TASK(type, fn)                                                                     \
	type *req = fn(NULL, len, payload);                                                       \
	if (!req)                                                                                 \
		return hull_error_set(err, -EINVAL, "request does not decode");                   \
	if (strcmp(req->id, CONTAINER_ID) != 0) {                                                 \
		int _r = hull_error_set(err, -ENOENT,                                             \
		                        "no task '%.64s' (this sandbox runs '" CONTAINER_ID "')", \
		                        req->id);                                                 \
		protobuf_c_message_free_unpacked(&req->base, NULL);                               \
		return _r;                                                                        \
	}

static int t_connect(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                     ProtobufCMessage **ret, struct hull_error **err)
{
	struct run_state *s = userdata;
	Hull__Task__ConnectResponse *resp;
	DECODE_TASK(Hull__Task__ConnectRequest, hull__task__connect_request__unpack);
	(void)call;
	hull__task__connect_request__free_unpacked(req, NULL);
	resp = xmalloc(sizeof(*resp));
	hull__task__connect_response__init(resp);
	resp->shim_pid = (uint32_t)getpid();
	resp->task_pid = s->pid;
	resp->version = xstrdup(HULL_VERSION);
	*ret = &resp->base;
	return 0;
}

static int t_state(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                   ProtobufCMessage **ret, struct hull_error **err)
{
	struct run_state *s = userdata;
	Hull__Task__StateResponse *resp;
	struct task_exec *e = NULL;
	uint64_t at = 0;
	DECODE_TASK(Hull__Task__StateRequest, hull__task__state_request__unpack);
	(void)call;
	if (req->exec_id[0] && !(e = exec_find(s, req->exec_id))) {
		int r = hull_error_set(err, -ENOENT, "no exec '%.64s'", req->exec_id);
		hull__task__state_request__free_unpacked(req, NULL);
		return r;
	}
	resp = xmalloc(sizeof(*resp));
	hull__task__state_response__init(resp);
	resp->id = xstrdup(CONTAINER_ID);
	resp->exec_id = xstrdup(req->exec_id);
	resp->bundle = xstrdup(s->o->bundle_dir ? s->o->bundle_dir : "");
	bool exited = process_exited(s, req->exec_id, &resp->exit_status, &at);
	resp->pid = e ? e->pid : s->pid;
	resp->status = exited                    ? HULL__TASK__STATUS__STOPPED
	               : (e ? e->started : true) ? HULL__TASK__STATUS__RUNNING
	                                         : HULL__TASK__STATUS__CREATED;
	if (!e && s->paused && !exited)
		resp->status = HULL__TASK__STATUS__PAUSED;
	resp->terminal = e ? e->terminal : s->o->tty;
	if (exited)
		resp->exited_at = timestamp(at);
	resp->stdin = xstrdup(e && e->stdin_path ? e->stdin_path : "");
	resp->stdout = xstrdup(e && e->stdout_path ? e->stdout_path : "");
	resp->stderr = xstrdup(e && e->stderr_path ? e->stderr_path : "");
	hull__task__state_request__free_unpacked(req, NULL);
	*ret = &resp->base;
	return 0;
}

static int t_kill(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                  ProtobufCMessage **ret, struct hull_error **err)
{
	struct run_state *s = userdata;
	uint32_t st;
	uint64_t at;
	DECODE_TASK(Hull__Task__KillRequest, hull__task__kill_request__unpack);
	(void)call, (void)ret;
	if (req->signal == 0 || req->signal >= 65) {
		int r = hull_error_set(err, -EINVAL, "signal %u out of range", req->signal);
		hull__task__kill_request__free_unpacked(req, NULL);
		return r;
	}
	if (process_exited(s, req->exec_id, &st, &at)) {
		hull__task__kill_request__free_unpacked(req, NULL);
		return hull_error_set(err, -ESRCH, "process already finished");
	}
	run_send_signal(s, req->exec_id, (int)req->signal);
	hull__task__kill_request__free_unpacked(req, NULL);
	return 0;
}

static int t_wait(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                  ProtobufCMessage **ret, struct hull_error **err)
{
	struct run_state *s = userdata;
	struct task_waiter *w;
	DECODE_TASK(Hull__Task__WaitRequest, hull__task__wait_request__unpack);
	(void)ret;
	if (req->exec_id[0] && !exec_find(s, req->exec_id)) {
		int r = hull_error_set(err, -ENOENT, "no exec '%.64s'", req->exec_id);
		hull__task__wait_request__free_unpacked(req, NULL);
		return r;
	}
	w = xcalloc(1, sizeof(*w));
	w->call = call;
	w->exec_id = xstrdup(req->exec_id);
	w->next = s->ts->waiters;
	s->ts->waiters = w;
	hull__task__wait_request__free_unpacked(req, NULL);
	answer_waiters(s);
	return 1;
}

static void on_pids(struct agent_client *ac, int code, const char *message, const uint8_t *payload,
                    size_t len, void *userdata)
{
	struct hull_error e = {.code = ttrpc_errno_from_code(code), .msg = (char *)message};
	Hull__Agent__V1__PidsResponse *p =
	    code ? NULL : hull__agent__v1__pids_response__unpack(NULL, len, payload);
	Hull__Task__PidsResponse resp = HULL__TASK__PIDS_RESPONSE__INIT;
	(void)ac;
	if (!p) {
		ttrpc_call_reply(userdata, code ? e.code : -EBADMSG, code ? &e : NULL, NULL);
		return;
	}
	resp.n_processes = MIN(p->n_pids, (size_t)4096);
	resp.processes = xcalloc(resp.n_processes, sizeof(*resp.processes));
	Hull__Task__ProcessInfo *infos = xcalloc(resp.n_processes, sizeof(*infos));
	for (size_t i = 0; i < resp.n_processes; i++) {
		hull__task__process_info__init(&infos[i]);
		infos[i].pid = p->pids[i];
		resp.processes[i] = &infos[i];
	}
	ttrpc_call_reply(userdata, 0, NULL, &resp.base);
	free(infos);
	free(resp.processes);
	hull__agent__v1__pids_response__free_unpacked(p, NULL);
}

static int t_pids(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                  ProtobufCMessage **ret, struct hull_error **err)
{
	struct run_state *s = userdata;
	Hull__Agent__V1__ContainerRequest cr = HULL__AGENT__V1__CONTAINER_REQUEST__INIT;
	DECODE_TASK(Hull__Task__PidsRequest, hull__task__pids_request__unpack);
	(void)ret;
	hull__task__pids_request__free_unpacked(req, NULL);
	cr.id = (char *)CONTAINER_ID;
	agent_client_call(s->sb->ac, "ListProcesses", &cr.base, 0, on_pids, NULL, call);
	event_mod(s->loop, agent_client_fd(s->sb->ac), EPOLLIN | EPOLLOUT);
	return 1;
}

static int pause_resume(struct run_state *s, struct ttrpc_call *call, bool pause)
{
	Hull__Agent__V1__ContainerRequest cr = HULL__AGENT__V1__CONTAINER_REQUEST__INIT;
	cr.id = (char *)CONTAINER_ID;
	s->paused = pause;
	return forward(s, call, pause ? "PauseContainer" : "ResumeContainer", &cr.base);
}

static int t_pause(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                   ProtobufCMessage **ret, struct hull_error **err)
{
	DECODE_TASK(Hull__Task__PauseRequest, hull__task__pause_request__unpack);
	(void)ret;
	hull__task__pause_request__free_unpacked(req, NULL);
	return pause_resume(userdata, call, true);
}

static int t_resume(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                    ProtobufCMessage **ret, struct hull_error **err)
{
	DECODE_TASK(Hull__Task__ResumeRequest, hull__task__resume_request__unpack);
	(void)ret;
	hull__task__resume_request__free_unpacked(req, NULL);
	return pause_resume(userdata, call, false);
}

/* ---- exec: stdio through the FIFOs the client named ---- */

static void exec_on_data(struct agent_client *ac, const uint8_t *payload, size_t len,
                         void *userdata);
static void exec_on_stdin(struct event_loop *loop, int fd, uint32_t revents, void *userdata);

static struct run_state *exec_owner;

static int open_fifo(const char *path, int flags, int *ret)
{
	if (!path || !*path)
		return 0;
	/* O_RDWR on the output FIFOs: the open never waits for the reader (as
	 * containerd's shims do); the reader sees EOF once we close. */
	*ret = open(path, flags | O_CLOEXEC);
	return *ret < 0 ? -errno : 0;
}

static int t_exec(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                  ProtobufCMessage **ret, struct hull_error **err)
{
	struct run_state *s = userdata;
	Hull__Agent__V1__ExecProcessRequest er = HULL__AGENT__V1__EXEC_PROCESS_REQUEST__INIT;
	struct task_exec *e;
	int r;
	DECODE_TASK(Hull__Task__ExecProcessRequest, hull__task__exec_process_request__unpack);
	(void)ret;
	if (!req->exec_id[0] || exec_find(s, req->exec_id) || !req->spec) {
		r = hull_error_set(
		    err, req->exec_id[0] && !exec_find(s, req->exec_id) ? -EINVAL : -EEXIST,
		    "exec '%.64s': missing spec, empty or existing id", req->exec_id);
		hull__task__exec_process_request__free_unpacked(req, NULL);
		return r;
	}
	e = xcalloc(1, sizeof(*e));
	e->in_fd = e->out_fd = e->err_fd = -1;
	e->exec_id = xstrdup(req->exec_id);
	e->terminal = req->terminal;
	e->stdin_path = req->stdin[0] ? xstrdup(req->stdin) : NULL;
	e->stdout_path = req->stdout[0] ? xstrdup(req->stdout) : NULL;
	e->stderr_path = req->stderr[0] ? xstrdup(req->stderr) : NULL;
	r = open_fifo(e->stdout_path, O_RDWR, &e->out_fd);
	if (r >= 0)
		r = open_fifo(e->stderr_path, O_RDWR, &e->err_fd);
	if (r >= 0)
		r = open_fifo(e->stdin_path, O_RDONLY | O_NONBLOCK, &e->in_fd);
	if (r < 0) {
		hull_error_set_errno(err, r, "exec '%s': open stdio", e->exec_id);
		exec_free(s, e);
		hull__task__exec_process_request__free_unpacked(req, NULL);
		return r;
	}
	e->next = s->ts->execs;
	s->ts->execs = e;
	/* The spec is an OCI process object, as JSON (containerd's Any carries the same). */
	er.id = (char *)CONTAINER_ID;
	er.exec_id = e->exec_id;
	er.process = req->spec->value;
	r = forward(s, call, "ExecProcess", &er.base);
	hull__task__exec_process_request__free_unpacked(req, NULL);
	return r;
}

static void exec_on_wait(struct agent_client *ac, int code, const char *message,
                         const uint8_t *payload, size_t len, void *userdata)
{
	struct run_state *s = exec_owner;
	struct task_exec *e = exec_find(s, userdata);
	Hull__Agent__V1__WaitResponse *w =
	    code ? NULL : hull__agent__v1__wait_response__unpack(NULL, len, payload);
	(void)ac, (void)message;
	free(userdata);
	if (!e)
		goto out;
	e->exited = true;
	e->exited_at_ns = realtime_ns();
	e->exit_status = !w          ? 255
	                 : w->signal ? (uint32_t)(128 + w->signal)
	                             : (uint32_t)w->exit_code;
	answer_waiters(s);
out:
	if (w)
		hull__agent__v1__wait_response__free_unpacked(w, NULL);
}

static void exec_on_stdio_done(struct agent_client *ac, int code, const char *message,
                               const uint8_t *payload, size_t len, void *userdata)
{
	struct task_exec *e = exec_find(exec_owner, userdata);
	(void)ac, (void)code, (void)message, (void)payload, (void)len;
	free(userdata);
	if (e) {
		closefd(exec_owner, &e->out_fd);
		closefd(exec_owner, &e->err_fd);
	}
}

static void exec_on_start(struct agent_client *ac, int code, const char *message,
                          const uint8_t *payload, size_t len, void *userdata)
{
	struct ttrpc_call *call = userdata;
	struct hull_error e = {.code = ttrpc_errno_from_code(code), .msg = (char *)message};
	Hull__Agent__V1__StartContainerResponse *sr =
	    code ? NULL : hull__agent__v1__start_container_response__unpack(NULL, len, payload);
	Hull__Task__StartResponse resp = HULL__TASK__START_RESPONSE__INIT;
	(void)ac;
	if (!sr) {
		ttrpc_call_reply(call, code ? e.code : -EBADMSG, code ? &e : NULL, NULL);
		return;
	}
	resp.pid = sr->pid;
	hull__agent__v1__start_container_response__free_unpacked(sr, NULL);
	ttrpc_call_reply(call, 0, NULL, &resp.base);
}

static int t_start(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                   ProtobufCMessage **ret, struct hull_error **err)
{
	struct run_state *s = userdata;
	Hull__Agent__V1__AttachRequest att = HULL__AGENT__V1__ATTACH_REQUEST__INIT;
	Hull__Agent__V1__StartProcessRequest sp = HULL__AGENT__V1__START_PROCESS_REQUEST__INIT;
	Hull__Agent__V1__ContainerRequest cr = HULL__AGENT__V1__CONTAINER_REQUEST__INIT;
	Hull__Agent__V1__StdioData grant = HULL__AGENT__V1__STDIO_DATA__INIT;
	struct task_exec *e;
	DECODE_TASK(Hull__Task__StartRequest, hull__task__start_request__unpack);
	(void)ret;
	e = req->exec_id[0] ? exec_find(s, req->exec_id) : NULL;
	hull__task__start_request__free_unpacked(req, NULL);
	if (!e)
		return hull_error_set(err, -EALREADY, "the task is started; start names an exec");
	if (e->started)
		return hull_error_set(err, -EALREADY, "exec '%s' already started", e->exec_id);
	e->started = true;
	exec_owner = s;
	att.id = sp.id = cr.id = (char *)CONTAINER_ID;
	att.exec_id = sp.exec_id = cr.exec_id = e->exec_id;
	e->attach_sid =
	    agent_client_call(s->sb->ac, "AttachStdio", &att.base, TTRPC_FLAG_REMOTE_OPEN,
	                      exec_on_stdio_done, exec_on_data, xstrdup(e->exec_id));
	grant.credit = EXEC_WINDOW;
	grant.eof = e->in_fd < 0;
	agent_client_send_data(s->sb->ac, e->attach_sid, &grant.base);
	if (e->in_fd >= 0)
		event_add(s->loop, e->in_fd, 0, exec_on_stdin, s);
	agent_client_call(s->sb->ac, "StartProcess", &sp.base, 0, exec_on_start, NULL, call);
	agent_client_call(s->sb->ac, "WaitProcess", &cr.base, 0, exec_on_wait, NULL,
	                  xstrdup(e->exec_id));
	event_mod(s->loop, agent_client_fd(s->sb->ac), EPOLLIN | EPOLLOUT);
	return 1;
}

static void exec_on_data(struct agent_client *ac, const uint8_t *payload, size_t len,
                         void *userdata)
{
	struct task_exec *e = exec_find(exec_owner, userdata);
	Hull__Agent__V1__StdioData *d = hull__agent__v1__stdio_data__unpack(NULL, len, payload);
	(void)ac;
	if (!d || !e)
		goto out;
	if (d->data.len) {
		int fd = d->fd == 2 ? e->err_fd : e->out_fd;
		Hull__Agent__V1__StdioData g = HULL__AGENT__V1__STDIO_DATA__INIT;
		if (fd >= 0)
			(void)write_all(fd, d->data.data, d->data.len);
		g.credit = d->data.len; /* written out: the window moves on */
		agent_client_send_data(exec_owner->sb->ac, e->attach_sid, &g.base);
	}
	if (d->credit) {
		e->in_credit += d->credit;
		if (e->in_fd >= 0)
			event_mod(exec_owner->loop, e->in_fd, EPOLLIN);
	}
out:
	if (d)
		hull__agent__v1__stdio_data__free_unpacked(d, NULL);
}

static void exec_on_stdin(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct run_state *s = userdata;
	struct task_exec *e = NULL;
	uint8_t chunk[64 << 10];
	Hull__Agent__V1__StdioData d = HULL__AGENT__V1__STDIO_DATA__INIT;
	ssize_t n;
	(void)revents;

	for (e = s->ts->execs; e && e->in_fd != fd; e = e->next)
		;
	if (!e)
		return;
	if (e->in_credit == 0) {
		event_mod(loop, fd, 0);
		return;
	}
	n = read(fd, chunk, (size_t)MIN((uint64_t)sizeof(chunk), e->in_credit));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		d.eof = true;
		closefd(s, &e->in_fd);
	} else {
		d.data.data = chunk;
		d.data.len = (size_t)n;
		e->in_credit -= (uint64_t)n;
	}
	agent_client_send_data(s->sb->ac, e->attach_sid, &d.base);
	event_mod(s->loop, agent_client_fd(s->sb->ac), EPOLLIN | EPOLLOUT);
}

static int t_delete(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                    ProtobufCMessage **ret, struct hull_error **err)
{
	struct run_state *s = userdata;
	Hull__Task__DeleteResponse *resp;
	uint64_t at = 0;
	uint32_t st = 0;
	DECODE_TASK(Hull__Task__DeleteRequest, hull__task__delete_request__unpack);
	(void)call;
	if (!process_exited(s, req->exec_id, &st, &at)) {
		int r = hull_error_set(err, -EBUSY, "'%.64s' is still running",
		                       req->exec_id[0] ? req->exec_id : req->id);
		hull__task__delete_request__free_unpacked(req, NULL);
		return r;
	}
	resp = xmalloc(sizeof(*resp));
	hull__task__delete_response__init(resp);
	resp->exit_status = st;
	resp->exited_at = timestamp(at);
	if (req->exec_id[0]) {
		for (struct task_exec **pp = &s->ts->execs; *pp; pp = &(*pp)->next)
			if (strcmp((*pp)->exec_id, req->exec_id) == 0) {
				struct task_exec *e = *pp;
				resp->pid = e->pid;
				*pp = e->next;
				exec_free(s, e);
				break;
			}
	} else {
		resp->pid = s->pid;
	}
	hull__task__delete_request__free_unpacked(req, NULL);
	*ret = &resp->base;
	return 0;
}

static void on_stats(struct agent_client *ac, int code, const char *message, const uint8_t *payload,
                     size_t len, void *userdata)
{
	struct hull_error e = {.code = ttrpc_errno_from_code(code), .msg = (char *)message};
	Hull__Task__StatsResponse resp = HULL__TASK__STATS_RESPONSE__INIT;
	Hull__Task__Any any = HULL__TASK__ANY__INIT;
	(void)ac;
	if (code) {
		ttrpc_call_reply(userdata, e.code, &e, NULL);
		return;
	}
	/* The agent's StatsResponse, as is: containerd decodes its own metrics type by
	 * type_url, so the shim (issue 5) will translate; our clients read this one. */
	any.type_url = (char *)"hull.agent.v1.StatsResponse";
	any.value.data = (uint8_t *)payload;
	any.value.len = len;
	resp.stats = &any;
	ttrpc_call_reply(userdata, 0, NULL, &resp.base);
}

static int t_stats(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                   ProtobufCMessage **ret, struct hull_error **err)
{
	struct run_state *s = userdata;
	Hull__Agent__V1__ContainerRequest cr = HULL__AGENT__V1__CONTAINER_REQUEST__INIT;
	DECODE_TASK(Hull__Task__StatsRequest, hull__task__stats_request__unpack);
	(void)ret;
	hull__task__stats_request__free_unpacked(req, NULL);
	cr.id = (char *)CONTAINER_ID;
	agent_client_call(s->sb->ac, "StatsContainer", &cr.base, 0, on_stats, NULL, call);
	event_mod(s->loop, agent_client_fd(s->sb->ac), EPOLLIN | EPOLLOUT);
	return 1;
}

static int t_update(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                    ProtobufCMessage **ret, struct hull_error **err)
{
	struct run_state *s = userdata;
	Hull__Agent__V1__UpdateRequest ur = HULL__AGENT__V1__UPDATE_REQUEST__INIT;
	int r;
	DECODE_TASK(Hull__Task__UpdateTaskRequest, hull__task__update_task_request__unpack);
	(void)ret;
	if (!req->resources) {
		hull__task__update_task_request__free_unpacked(req, NULL);
		return hull_error_set(err, -EINVAL, "update: no resources");
	}
	/* An OCI linux.resources object as JSON; the agent checks it as in a full spec. */
	ur.id = (char *)CONTAINER_ID;
	ur.resources = req->resources->value;
	r = forward(s, call, "UpdateContainer", &ur.base);
	hull__task__update_task_request__free_unpacked(req, NULL);
	return r;
}

static int t_resize(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                    ProtobufCMessage **ret, struct hull_error **err)
{
	struct run_state *s = userdata;
	Hull__Agent__V1__ResizeRequest rr = HULL__AGENT__V1__RESIZE_REQUEST__INIT;
	int r;
	DECODE_TASK(Hull__Task__ResizePtyRequest, hull__task__resize_pty_request__unpack);
	(void)ret;
	rr.id = (char *)CONTAINER_ID;
	rr.exec_id = req->exec_id;
	rr.rows = req->height;
	rr.cols = req->width;
	r = forward(s, call, "ResizePty", &rr.base);
	hull__task__resize_pty_request__free_unpacked(req, NULL);
	return r;
}

static int t_close_io(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                      ProtobufCMessage **ret, struct hull_error **err)
{
	struct run_state *s = userdata;
	struct task_exec *e;
	DECODE_TASK(Hull__Task__CloseIORequest, hull__task__close_iorequest__unpack);
	(void)call, (void)ret;
	e = req->exec_id[0] ? exec_find(s, req->exec_id) : NULL;
	if (req->stdin && e && e->in_fd >= 0) {
		/* As if the client closed its end: EOF reaches the process. */
		Hull__Agent__V1__StdioData d = HULL__AGENT__V1__STDIO_DATA__INIT;
		d.eof = true;
		closefd(s, &e->in_fd);
		agent_client_send_data(s->sb->ac, e->attach_sid, &d.base);
		event_mod(s->loop, agent_client_fd(s->sb->ac), EPOLLIN | EPOLLOUT);
	}
	hull__task__close_iorequest__free_unpacked(req, NULL);
	return 0;
}

static int t_shutdown(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                      ProtobufCMessage **ret, struct hull_error **err)
{
	struct run_state *s = userdata;
	DECODE_TASK(Hull__Task__ShutdownRequest, hull__task__shutdown_request__unpack);
	(void)call, (void)ret;
	hull__task__shutdown_request__free_unpacked(req, NULL);
	/* The VM goes down after this answer leaves: the loop ends, the sandbox stops. */
	s->shutdown = true;
	return 0;
}

static const struct ttrpc_method task_methods[] = {
    {TASK_SERVICE, "Connect", t_connect},   {TASK_SERVICE, "State", t_state},
    {TASK_SERVICE, "Kill", t_kill},         {TASK_SERVICE, "Wait", t_wait},
    {TASK_SERVICE, "Pids", t_pids},         {TASK_SERVICE, "Pause", t_pause},
    {TASK_SERVICE, "Resume", t_resume},     {TASK_SERVICE, "Exec", t_exec},
    {TASK_SERVICE, "Start", t_start},       {TASK_SERVICE, "Delete", t_delete},
    {TASK_SERVICE, "Shutdown", t_shutdown}, {TASK_SERVICE, "Stats", t_stats},
    {TASK_SERVICE, "Update", t_update},     {TASK_SERVICE, "ResizePty", t_resize},
    {TASK_SERVICE, "CloseIO", t_close_io},
};

int task_serve(struct run_state *s, struct hull_error **err)
{
	_cleanup_free_ char *path = xasprintf("%s/task.sock", s->sb->state_dir);
	s->ts = xcalloc(1, sizeof(*s->ts));
	s->task = ttrpc_server_new(s->loop, task_methods, ELEMENTSOF(task_methods), s);
	return ttrpc_server_listen(s->task, path, err);
}

void task_free(struct run_state *s)
{
	if (!s->ts)
		return;
	while (s->ts->waiters) {
		struct task_waiter *w = s->ts->waiters;
		s->ts->waiters = w->next;
		ttrpc_call_reply(w->call, -ECANCELED, NULL, NULL);
		free(w->exec_id);
		free(w);
	}
	s->task = ttrpc_server_free(s->task);
	while (s->ts->execs) {
		struct task_exec *e = s->ts->execs;
		s->ts->execs = e->next;
		exec_free(s, e);
	}
	free(s->ts);
	s->ts = NULL;
}
