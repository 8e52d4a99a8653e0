/* SPDX-License-Identifier: MIT */
/* ExecSync: a process in a running container, its output collected and returned with
 * its exit code (kubelet's exec probes, critest's checks). As containerd does it: the
 * container's own process spec with the command swapped in, through the shim's Exec,
 * Start, Wait and Delete; stdout and stderr through FIFOs. A timeout kills the process
 * and answers DEADLINE_EXCEEDED. The output kept is capped (CRI_EXEC_MAX_OUTPUT a
 * stream): the answer fits in kubelet's 16 MiB message limit. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "buf.h"
#include "cri-internal.h"
#include "json.h"
#include "log.h"
#include "ttrpc.h"
#include "util.h"

#define CRI_EXEC_MAX_OUTPUT (8u << 20)
/* After the process exits, what it left in the pipes still comes: this long at most
 * (a background child holding stdout open must not hold the answer forever). */
#define DRAIN_MS 2000

struct exec_pipe {
	struct cri_exec *e;
	int fd, hold;
	char *path;
	struct buf data;
	bool done, truncated;
};

struct cri_exec {
	struct cri *c;
	struct cri_pod *pod;
	char *ctr_id, *exec_id;
	struct grpc_call *call;
	struct exec_pipe pipes[2];
	int timer_fd;
	int64_t timeout_s;
	bool started, exited, timed_out, finished;
	uint32_t status;
	struct cri_exec *next;
};

static void exec_finish(struct cri_exec *e);

static void pipe_close(struct cri *c, struct exec_pipe *p)
{
	if (p->fd >= 0) {
		event_del(c->loop, p->fd);
		close(p->fd);
		p->fd = -1;
	}
	if (p->hold >= 0) {
		close(p->hold);
		p->hold = -1;
	}
}

static void exec_maybe_finish(struct cri_exec *e)
{
	if (e->exited && e->pipes[0].done && e->pipes[1].done)
		exec_finish(e);
}

static void on_pipe(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct exec_pipe *p = userdata;
	uint8_t chunk[65536];
	(void)loop, (void)revents;

	for (int i = 0; i < 8; i++) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			p->done = true;
			pipe_close(p->e->c, p);
			exec_maybe_finish(p->e);
			return;
		}
		size_t room = CRI_EXEC_MAX_OUTPUT - MIN(p->data.len, CRI_EXEC_MAX_OUTPUT);
		if ((size_t)n > room)
			p->truncated = true;
		buf_append(&p->data, chunk, MIN((size_t)n, room));
	}
}

static void on_drain_timer(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct cri_exec *e = userdata;
	uint64_t ticks;
	(void)loop, (void)revents;
	(void)!read(fd, &ticks, sizeof(ticks));
	exec_finish(e);
}

static void exec_free(struct cri_exec *e)
{
	for (struct cri_exec **pp = &e->pod->execs; *pp; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	for (int i = 0; i < 2; i++) {
		pipe_close(e->c, &e->pipes[i]);
		if (e->pipes[i].path)
			unlink(e->pipes[i].path);
		free(e->pipes[i].path);
		buf_release(&e->pipes[i].data);
	}
	if (e->timer_fd >= 0) {
		event_del(e->c->loop, e->timer_fd);
		close(e->timer_fd);
	}
	free(e->ctr_id);
	free(e->exec_id);
	free(e);
}

/* Answer, tell the shim to forget the process, and go. */
static void exec_finish(struct cri_exec *e)
{
	Hull__Task__DeleteRequest dr = HULL__TASK__DELETE_REQUEST__INIT;
	struct grpc_call *call = e->call;

	if (e->finished)
		return;
	e->finished = true;
	if (e->started) {
		dr.id = e->ctr_id;
		dr.exec_id = e->exec_id;
		(void)shim_call(e->pod, "Delete", &dr.base, SHIM_CALL_TIMEOUT_MS, NULL, NULL);
	}
	if (e->timed_out) {
		struct hull_error err = {
		    .code = grpc_error_code(TTRPC_DEADLINE_EXCEEDED),
		    .msg = xasprintf("exec in container '%s': timeout %llds exceeded", e->ctr_id,
		                     (long long)e->timeout_s)};
		grpc_call_reply(call, err.code, &err, NULL);
		free(err.msg);
	} else {
		Runtime__V1__ExecSyncResponse resp = RUNTIME__V1__EXEC_SYNC_RESPONSE__INIT;
		resp.stdout.data = (uint8_t *)buf_head(&e->pipes[0].data);
		resp.stdout.len = e->pipes[0].data.len;
		resp.stderr.data = (uint8_t *)buf_head(&e->pipes[1].data);
		resp.stderr.len = e->pipes[1].data.len;
		resp.exit_code = (int32_t)e->status;
		if (e->pipes[0].truncated || e->pipes[1].truncated)
			log_info("exec in container '%s': output over %u bytes, cut", e->ctr_id,
			         CRI_EXEC_MAX_OUTPUT);
		grpc_call_reply(call, 0, NULL, &resp.base);
	}
	exec_free(e);
}

static void exec_fail(struct cri_exec *e, int r, const char *what, const char *message)
{
	struct hull_error err = {
	    .code = r,
	    .msg = xasprintf("exec in container '%s': %s: %s", e->ctr_id, what, message)};
	grpc_call_reply(e->call, r, &err, NULL);
	free(err.msg);
	e->finished = true;
	if (e->started) {
		Hull__Task__DeleteRequest dr = HULL__TASK__DELETE_REQUEST__INIT;
		dr.id = e->ctr_id;
		dr.exec_id = e->exec_id;
		(void)shim_call(e->pod, "Delete", &dr.base, SHIM_CALL_TIMEOUT_MS, NULL, NULL);
	}
	exec_free(e);
}

static void exec_wait(struct cri_exec *e, int timeout_ms);

static void on_waited(struct ttrpc_client *tc, int code, const char *message,
                      const uint8_t *payload, size_t len, void *userdata)
{
	struct cri_exec *e = userdata;
	(void)tc;

	if (code == TTRPC_DEADLINE_EXCEEDED && !e->timed_out) {
		Hull__Task__KillRequest kr = HULL__TASK__KILL_REQUEST__INIT;
		e->timed_out = true;
		kr.id = e->ctr_id;
		kr.exec_id = e->exec_id;
		kr.signal = SIGKILL;
		(void)shim_call(e->pod, "Kill", &kr.base, SHIM_CALL_TIMEOUT_MS, NULL, NULL);
		exec_wait(e, SHIM_CALL_TIMEOUT_MS);
		return;
	}
	if (code != TTRPC_OK && !e->timed_out) {
		exec_fail(e, ttrpc_errno_from_code(code), "wait", message);
		return;
	}
	Hull__Task__WaitResponse *w = hull__task__wait_response__unpack(NULL, len, payload);
	if (w) {
		e->status = w->exit_status;
		hull__task__wait_response__free_unpacked(w, NULL);
	}
	e->exited = true;
	if (e->pipes[0].done && e->pipes[1].done) {
		exec_finish(e);
		return;
	}
	struct itimerspec its = {
	    .it_value = {.tv_sec = DRAIN_MS / 1000, .tv_nsec = (DRAIN_MS % 1000) * 1000000L}};
	timerfd_settime(e->timer_fd, 0, &its, NULL);
}

static void exec_wait(struct cri_exec *e, int timeout_ms)
{
	Hull__Task__WaitRequest wr = HULL__TASK__WAIT_REQUEST__INIT;
	wr.id = e->ctr_id;
	wr.exec_id = e->exec_id;
	if (!shim_call(e->pod, "Wait", &wr.base, timeout_ms, on_waited, e))
		exec_fail(e, -EIO, "wait", "the pod's shim is gone");
}

static void on_started(struct ttrpc_client *tc, int code, const char *message,
                       const uint8_t *payload, size_t len, void *userdata)
{
	struct cri_exec *e = userdata;
	(void)tc, (void)payload, (void)len;
	if (code != TTRPC_OK) {
		exec_fail(e, ttrpc_errno_from_code(code), "start", message);
		return;
	}
	/* The shim holds the write ends now (the runc shim opens them at Start, ours at
	 * Exec): ours go, so that its close is our EOF. */
	for (int i = 0; i < 2; i++)
		if (e->pipes[i].hold >= 0) {
			close(e->pipes[i].hold);
			e->pipes[i].hold = -1;
		}
	exec_wait(e, e->timeout_s > 0 ? (int)MIN(e->timeout_s, 86400) * 1000 : 0);
}

static void on_execed(struct ttrpc_client *tc, int code, const char *message,
                      const uint8_t *payload, size_t len, void *userdata)
{
	struct cri_exec *e = userdata;
	Hull__Task__StartRequest sr = HULL__TASK__START_REQUEST__INIT;
	(void)tc, (void)payload, (void)len;

	if (code != TTRPC_OK) {
		exec_fail(e, ttrpc_errno_from_code(code), "exec", message);
		return;
	}
	e->started = true;
	sr.id = e->ctr_id;
	sr.exec_id = e->exec_id;
	if (!shim_call(e->pod, "Start", &sr.base, SHIM_CALL_TIMEOUT_MS, on_started, e))
		exec_fail(e, -EIO, "start", "the pod's shim is gone");
}

int cri_exec_process(const struct cri_ctr *k, char *const *cmd, size_t n_cmd, bool tty, char **ret,
                     struct hull_error **err)
{
	_cleanup_free_ char *path = xasprintf("%s/config.json", k->dir);
	_cleanup_free_ char *text = read_small(k->dir, "config.json");
	json_object *root, *proc, *args;

	if (!text)
		return hull_error_set_errno(err, -errno, "read '%s'", path);
	if (json_parse(text, strlen(text), 64, true, &root, err) < 0)
		return hull_error_prefix(err, "'%s'", path);
	if (!json_object_object_get_ex(root, "process", &proc)) {
		json_object_put(root);
		return hull_error_set(err, -EINVAL, "'%s' has no process", path);
	}
	args = json_object_new_array();
	for (size_t i = 0; i < n_cmd; i++)
		json_object_array_add(args, json_object_new_string(cmd[i]));
	json_object_object_add(proc, "args", args);
	json_object_object_add(proc, "terminal", json_object_new_boolean(tty));
	json_object_object_del(proc, "consoleSize");
	*ret = xstrdup(json_object_to_json_string_ext(proc, JSON_C_TO_STRING_PLAIN));
	json_object_put(root);
	return 0;
}

static int pipe_open(struct cri_exec *e, int i, const char *dir, struct hull_error **err)
{
	struct exec_pipe *p = &e->pipes[i];
	p->e = e;
	p->path = xasprintf("%s/exec-%s-%s", dir, e->exec_id, i ? "stderr" : "stdout");
	if (mkfifo(p->path, 0600) < 0)
		return hull_error_set_errno(err, -errno, "mkfifo '%s'", p->path);
	p->fd = open(p->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	p->hold = p->fd < 0 ? -1 : open(p->path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (p->fd < 0 || p->hold < 0)
		return hull_error_set_errno(err, -errno, "open '%s'", p->path);
	return event_add(e->c->loop, p->fd, EPOLLIN, on_pipe, p);
}

int cri_exec_sync(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                  ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__ExecSyncRequest *req = runtime__v1__exec_sync_request__unpack(NULL, len, msg);
	Hull__Task__ExecProcessRequest er = HULL__TASK__EXEC_PROCESS_REQUEST__INIT;
	Hull__Task__Any spec = HULL__TASK__ANY__INIT;
	_cleanup_free_ char *process = NULL, *id = NULL;
	struct cri_exec *e = NULL;
	struct cri_ctr *k;
	int r;
	(void)ret;

	if (!req)
		return hull_error_set(err, -EINVAL, "the request does not decode");
	k = ctr_get(c, req->container_id, true, err);
	if (!k) {
		r = (*err)->code;
		goto out;
	}
	if (req->n_cmd == 0 || !*req->cmd[0]) {
		r = invalid(err, "cmd", "empty");
		goto out;
	}
	if (req->timeout < 0) {
		r = invalid(err, "timeout", "negative");
		goto out;
	}
	r = cri_exec_process(k, req->cmd, req->n_cmd, false, &process, err);
	if (r < 0)
		goto out;

	id = cri_new_id();
	e = xcalloc(1, sizeof(*e));
	e->c = c;
	e->pod = k->pod;
	e->ctr_id = xstrdup(k->id);
	e->exec_id = xstrndup(id, 24);
	e->call = call;
	e->timeout_s = req->timeout;
	e->pipes[0].fd = e->pipes[0].hold = e->pipes[1].fd = e->pipes[1].hold = -1;
	e->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	e->next = k->pod->execs;
	k->pod->execs = e;
	if (e->timer_fd < 0 || event_add(c->loop, e->timer_fd, EPOLLIN, on_drain_timer, e) < 0) {
		r = hull_error_set_errno(err, -EMFILE, "timer");
		goto fail;
	}
	for (int i = 0; i < 2; i++) {
		r = pipe_open(e, i, k->dir, err);
		if (r < 0)
			goto fail;
	}
	spec.type_url = (char *)"types.containerd.io/opencontainers/runtime-spec/1/Process";
	spec.value.data = (uint8_t *)process;
	spec.value.len = strlen(process);
	er.id = e->ctr_id;
	er.exec_id = e->exec_id;
	er.stdin = (char *)"";
	er.stdout = e->pipes[0].path;
	er.stderr = e->pipes[1].path;
	er.spec = &spec;
	if (!shim_call(k->pod, "Exec", &er.base, SHIM_CALL_TIMEOUT_MS, on_execed, e)) {
		r = hull_error_set(err, -EIO, "the pod's shim is gone");
		goto fail;
	}
	runtime__v1__exec_sync_request__free_unpacked(req, NULL);
	return 1;

fail:
	hull_error_prefix(err, "exec in container '%s'", k->id);
	exec_free(e);
out:
	runtime__v1__exec_sync_request__free_unpacked(req, NULL);
	return r;
}

void cri_exec_abort_all(struct cri_pod *p, const char *why)
{
	while (p->execs) {
		struct cri_exec *e = p->execs;
		if (e->finished) {
			exec_free(e);
			continue;
		}
		e->started = false; /* the shim is gone: nothing to delete */
		exec_fail(e, -ECONNRESET, "the pod's sandbox", why);
	}
}
