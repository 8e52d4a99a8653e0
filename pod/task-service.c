/* SPDX-License-Identifier: MIT */
/* The Task API over a pod. Each handler decodes its request, checks it, and hands the
 * work to the pod core; the answer leaves when the work completes (kept calls), and the
 * loop serves everyone else meanwhile. */
#include "task-service.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "pod-mount.h"
#include "shim-events.pb-c.h"
#include "task-spec.h"
#include "util.h"

#define TASK_SERVICE "containerd.task.v2.Task"

/* What the Task API keeps about a container beyond the pod core's record. */
struct task {
	char *bundle;
	bool rootfs_mounted; /* containerd's mounts on bundle/rootfs are ours to undo */
	bool paused;
	bool deleting; /* a Delete is on its way */
};

/* A process's stdio paths, reported by State. */
struct task_io {
	char *stdin, *stdout, *stderr;
};

struct waiter {
	struct ttrpc_call *call;
	char *id, *exec_id;
	struct waiter *next;
};

struct task_service {
	struct event_loop *loop;
	const struct task_service_ops *ops;
	void *userdata;
	struct pod *pod;
	struct waiter *waiters;
};

static void set_timestamp(Hull__Task__Timestamp *t, uint64_t ns)
{
	hull__task__timestamp__init(t);
	t->seconds = (int64_t)(ns / 1000000000ull);
	t->nanos = (int32_t)(ns % 1000000000ull);
}

static Hull__Task__Timestamp *timestamp_new(uint64_t ns)
{
	Hull__Task__Timestamp *t = xmalloc(sizeof(*t));
	set_timestamp(t, ns);
	return t;
}

static void publish(struct task_service *ts, const char *topic, const char *name,
                    const ProtobufCMessage *msg)
{
	if (ts->ops->publish)
		ts->ops->publish(ts->userdata, topic, name, msg);
}

static void publish_container(struct task_service *ts, const char *topic, const char *name,
                              const char *id)
{
	Hull__Events__TaskContainer e = HULL__EVENTS__TASK_CONTAINER__INIT;
	e.container_id = (char *)id;
	publish(ts, topic, name, &e.base);
}

static void task_io_free(struct task_io *io)
{
	if (!io)
		return;
	free(io->stdin);
	free(io->stdout);
	free(io->stderr);
	free(io);
}

static struct task_io *task_io_new(const char *in, const char *out, const char *err)
{
	struct task_io *io = xcalloc(1, sizeof(*io));
	io->stdin = xstrdup(in ? in : "");
	io->stdout = xstrdup(out ? out : "");
	io->stderr = xstrdup(err ? err : "");
	return io;
}

static void task_free(struct task *t)
{
	if (!t)
		return;
	free(t->bundle);
	free(t);
}

/* Our records of a container's processes go with it. */
static void task_io_forget(struct pod_ctr *c)
{
	for (struct pod_proc *p = pod_proc_next(c, NULL); p; p = pod_proc_next(c, p)) {
		task_io_free(pod_proc_data(p));
		pod_proc_set_data(p, NULL);
	}
}

/* containerd's rootfs mounts are ours to undo, after the guest let go of them. */
static void task_release(struct task *t)
{
	if (t && t->rootfs_mounted) {
		_cleanup_free_ char *rootfs = xasprintf("%s/rootfs", t->bundle);
		pod_unmount_all(rootfs);
	}
	task_free(t);
}

/* ---- waiters ------------------------------------------------------------------------- */

static void answer_waiters(struct task_service *ts)
{
	for (struct waiter **pp = &ts->waiters; *pp;) {
		struct waiter *w = *pp;
		struct pod_ctr *c = pod_ctr_find(ts->pod, w->id);
		struct pod_proc *p = c ? pod_proc_find(c, w->exec_id) : NULL;
		Hull__Task__WaitResponse resp = HULL__TASK__WAIT_RESPONSE__INIT;
		Hull__Task__Timestamp t;
		uint64_t at = 0;
		uint32_t status = 0;

		if (p && !pod_proc_exit(p, &status, &at, NULL)) {
			pp = &w->next;
			continue;
		}
		if (p) {
			resp.exit_status = status;
			set_timestamp(&t, at);
			resp.exited_at = &t;
			ttrpc_call_reply(w->call, 0, NULL, &resp.base);
		} else {
			ttrpc_call_reply(w->call, -ENOENT, NULL, NULL);
		}
		*pp = w->next;
		free(w->id);
		free(w->exec_id);
		free(w);
	}
}

/* ---- what the pod tells us ------------------------------------------------------------ */

static void on_booted(struct pod *pod, int r, const struct hull_error *err, void *userdata)
{
	struct task_service *ts = userdata;
	(void)pod;
	if (ts->ops->booted)
		ts->ops->booted(ts->userdata, r, err);
}

static void on_started(struct pod_proc *p, void *userdata)
{
	struct task_service *ts = userdata;
	struct pod_ctr *c = pod_proc_ctr(p);

	if (pod_proc_exec_id(p)[0]) {
		Hull__Events__TaskExecStarted ev = HULL__EVENTS__TASK_EXEC_STARTED__INIT;
		ev.container_id = (char *)pod_ctr_id(c);
		ev.exec_id = (char *)pod_proc_exec_id(p);
		ev.pid = pod_proc_pid(p);
		publish(ts, "/tasks/exec-started", "TaskExecStarted", &ev.base);
	} else {
		Hull__Events__TaskStart ev = HULL__EVENTS__TASK_START__INIT;
		ev.container_id = (char *)pod_ctr_id(c);
		ev.pid = pod_proc_pid(p);
		publish(ts, "/tasks/start", "TaskStart", &ev.base);
	}
}

static void on_exited(struct pod_proc *p, void *userdata)
{
	struct task_service *ts = userdata;
	Hull__Events__TaskExit ev = HULL__EVENTS__TASK_EXIT__INIT;
	Hull__Task__Timestamp t;
	const char *why = NULL;
	uint64_t at = 0;
	uint32_t status = 0;

	pod_proc_exit(p, &status, &at, &why);
	if (why)
		log_warn("task '%s' process '%s' reported exited %u: %s",
		         pod_ctr_id(pod_proc_ctr(p)), pod_proc_exec_id(p), status, why);
	set_timestamp(&t, at);
	ev.container_id = (char *)pod_ctr_id(pod_proc_ctr(p));
	ev.id = pod_proc_exec_id(p)[0] ? (char *)pod_proc_exec_id(p) : ev.container_id;
	ev.pid = pod_proc_pid(p);
	ev.exit_status = status;
	ev.exited_at = &t;
	publish(ts, "/tasks/exit", "TaskExit", &ev.base);
	answer_waiters(ts);
}

static void on_drained(struct pod_proc *p, int r, const struct hull_error *err, void *userdata)
{
	(void)userdata;
	if (r < 0 && r != -ECONNRESET && r != -ECANCELED)
		log_warn("task '%s' process '%s': output: %s", pod_ctr_id(pod_proc_ctr(p)),
		         pod_proc_exec_id(p), err ? err->msg : strerror(-r));
}

static void on_oom(struct pod_ctr *c, void *userdata)
{
	publish_container(userdata, "/tasks/oom", "TaskOOM", pod_ctr_id(c));
}

static void on_lost(struct pod *pod, const struct hull_error *err, void *userdata)
{
	(void)pod, (void)err, (void)userdata;
	/* Every process was reported exited; containerd deletes the tasks as usual. */
}

static const struct pod_sink sink = {
    .booted = on_booted,
    .started = on_started,
    .exited = on_exited,
    .drained = on_drained,
    .oom = on_oom,
    .lost = on_lost,
};

/* ---- request helpers ------------------------------------------------------------------- */

/* Decode a request into req and find its container (c) — the shape of most handlers. */
#define DECODE(type, fn)                                                           \
	type *req = fn(NULL, len, payload);                                        \
	if (!req)                                                                  \
		return hull_error_set(err, -EINVAL, "request does not decode");    \
	struct pod_ctr *c = pod_ctr_find(ts->pod, req->id);                        \
	if (!c || !pod_ctr_data(c)) {                                              \
		int _r = hull_error_set(err, -ENOENT, "no task '%.76s'", req->id); \
		protobuf_c_message_free_unpacked(&req->base, NULL);                \
		return _r;                                                         \
	}

#define FIND_PROC(p)                                                                        \
	struct pod_proc *p = pod_proc_find(c, req->exec_id);                                \
	if (!p) {                                                                           \
		int _r = hull_error_set(err, -ENOENT, "no process '%.76s' in task '%.76s'", \
		                        req->exec_id, pod_ctr_id(c));                       \
		protobuf_c_message_free_unpacked(&req->base, NULL);                         \
		return _r;                                                                  \
	}

#define FREE_REQ() protobuf_c_message_free_unpacked(&req->base, NULL)

/* A reply with no payload, from a pod completion. */
static void reply_done(void *userdata, int r, const struct hull_error *err)
{
	ttrpc_call_reply(userdata, r, err, NULL);
}

static void reply_empty(void *userdata, int r, const struct hull_error *err, const uint8_t *payload,
                        size_t len)
{
	(void)payload, (void)len;
	ttrpc_call_reply(userdata, r, err, NULL);
}

static int open_fifo(const char *path, int flags, int *ret)
{
	struct stat st;
	*ret = -1;
	if (!path || !*path)
		return 0;
	/* containerd names FIFOs it made; anything else (a device, a file) is refused
	 * before it is opened. */
	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISFIFO(st.st_mode))
		return -EINVAL;
	/* O_RDWR on output FIFOs: the open never waits for a reader (containerd's shims do
	 * the same). Non-blocking: a reader that stops reading holds back the guest's
	 * credit, never the shim. */
	*ret = open(path, flags | O_CLOEXEC | O_NONBLOCK);
	return *ret < 0 ? -errno : 0;
}

/* containerd's FIFOs, opened before anything is made for the process. */
static int open_stdio(const char *in, const char *out, const char *errp, int fds[3],
                      struct hull_error **err)
{
	int r;

	fds[0] = fds[1] = fds[2] = -1;
	r = open_fifo(out, O_RDWR, &fds[1]);
	if (r >= 0)
		r = open_fifo(errp, O_RDWR, &fds[2]);
	if (r >= 0)
		r = open_fifo(in, O_RDONLY, &fds[0]);
	if (r < 0) {
		for (int i = 0; i < 3; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		return hull_error_set_errno(err, r, "open stdio FIFOs");
	}
	return 0;
}

/* ... and handed to the process, which owns them from here on. */
static void set_stdio(struct pod_proc *p, const int fds[3], const char *in, const char *out,
                      const char *errp)
{
	pod_proc_set_stdio(p, fds[1] >= 0 ? stream_sink_fd(fds[1], true) : NULL,
	                   fds[2] >= 0 ? stream_sink_fd(fds[2], true) : NULL, fds[0]);
	pod_proc_set_data(p, task_io_new(in, out, errp));
}

static void close_stdio(int fds[3])
{
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* ---- Create --------------------------------------------------------------------------- */

struct create_ctx {
	struct task_service *ts;
	struct ttrpc_call *call;
	char *id;
	Hull__Task__CreateTaskRequest *req;
	struct task *task; /* the container's data, ours to free if it fails */
	struct task_io *io;
};

static void on_created(void *userdata, int r, const struct hull_error *err)
{
	struct create_ctx *cc = userdata;
	struct task_service *ts = cc->ts;

	if (r < 0) {
		struct hull_error e = {.code = r, .msg = NULL};
		e.msg = xasprintf("create '%s': %s", cc->id, err ? err->msg : strerror(-r));
		/* The pod core removed the container (and its stdio); its rootfs mounts and
		 * our record of it are ours. */
		task_release(cc->task);
		task_io_free(cc->io);
		ttrpc_call_reply(cc->call, r, &e, NULL);
		free(e.msg);
	} else {
		Hull__Task__CreateTaskResponse resp = HULL__TASK__CREATE_TASK_RESPONSE__INIT;
		Hull__Events__TaskCreate ev = HULL__EVENTS__TASK_CREATE__INIT;
		Hull__Events__TaskIO io = HULL__EVENTS__TASK_IO__INIT;
		ttrpc_call_reply(cc->call, 0, NULL, &resp.base);
		io.stdin = cc->req->stdin;
		io.stdout = cc->req->stdout;
		io.stderr = cc->req->stderr;
		io.terminal = cc->req->terminal;
		ev.container_id = cc->id;
		ev.bundle = cc->req->bundle;
		ev.io = &io;
		ev.n_rootfs = cc->req->n_rootfs;
		ev.rootfs = cc->req->rootfs;
		publish(ts, "/tasks/create", "TaskCreate", &ev.base);
	}
	hull__task__create_task_request__free_unpacked(cc->req, NULL);
	free(cc->id);
	free(cc);
}

static int mount_rootfs(const char *rootfs, Hull__Task__Mount *const *m, size_t n,
                        struct hull_error **err)
{
	_cleanup_free_ struct pod_host_mount *hm = xcalloc(n + 1, sizeof(*hm));
	for (size_t i = 0; i < n; i++)
		hm[i] = (struct pod_host_mount){.type = m[i]->type,
		                                .source = m[i]->source,
		                                .options = m[i]->options,
		                                .n_options = m[i]->n_options};
	(void)mkdir(rootfs, 0711);
	return pod_mount_list(rootfs, hm, n, err);
}

static int t_create(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                    ProtobufCMessage **ret, struct hull_error **err)
{
	struct task_service *ts = userdata;
	Hull__Task__CreateTaskRequest *req =
	    hull__task__create_task_request__unpack(NULL, len, payload);
	struct bundle b = {0};
	struct task *t = NULL;
	struct pod_ctr *c = NULL;
	struct create_ctx *cc;
	_cleanup_free_ char *rootfs = NULL, *config = NULL;
	_cleanup_free_ struct pod_mount *mounts = NULL;
	size_t config_len = 0;
	int fds[3] = {-1, -1, -1}, r;
	(void)ret;

	if (!req)
		return hull_error_set(err, -EINVAL, "request does not decode");
	if (!id_is_valid(req->id)) {
		r = hull_error_set(err, -EINVAL,
		                   "task id '%.80s': hull takes 1-64 of [A-Za-z0-9_.-]", req->id);
		goto out;
	}
	if (pod_ctr_find(ts->pod, req->id)) {
		r = hull_error_set(err, -EEXIST, "task '%s' exists", req->id);
		goto out;
	}
	if (req->checkpoint[0]) {
		r = hull_error_set(err, -EOPNOTSUPP, "restoring a checkpoint is not supported");
		goto out;
	}
	if (req->bundle[0] != '/') {
		r = hull_error_set(err, -EINVAL, "bundle '%.256s' is not absolute", req->bundle);
		goto out;
	}
	rootfs = xasprintf("%s/rootfs", req->bundle);
	if (req->n_rootfs > 0) {
		r = mount_rootfs(rootfs, req->rootfs, req->n_rootfs, err);
		if (r < 0)
			goto fail;
	}
	r = bundle_read(req->bundle, &b, err);
	if (r < 0)
		goto fail;
	if (!pod_sandbox(ts->pod)) {
		r = ts->ops->boot ? ts->ops->boot(ts->userdata, ts->pod, req->options, &b, err)
		                  : hull_error_set(err, -ENOENT, "the pod has no sandbox");
		if (r < 0)
			goto fail;
	}
	r = task_spec_for_guest(b.config, b.config_len, &config, &config_len, err);
	if (r < 0)
		goto fail;
	r = open_stdio(req->stdin, req->stdout, req->stderr, fds, err);
	if (r < 0)
		goto fail;
	mounts = xcalloc(b.n_binds + 1, sizeof(*mounts));
	for (size_t i = 0; i < b.n_binds; i++)
		mounts[i] = (struct pod_mount){.source = b.binds[i].source,
		                               .destination = b.binds[i].destination,
		                               .readonly = b.binds[i].readonly};
	cc = xcalloc(1, sizeof(*cc));
	cc->ts = ts;
	cc->call = call;
	cc->id = xstrdup(req->id);
	cc->req = req;
	{
		struct pod_ctr_config pc = {
		    .id = req->id,
		    .config = config,
		    .config_len = config_len,
		    .rootfs = b.rootfs,
		    .mounts = mounts,
		    .n_mounts = b.n_binds,
		    .terminal = req->terminal || b.terminal,
		};
		r = pod_create(ts->pod, &pc, on_created, cc, &c, err);
	}
	if (r < 0) {
		free(cc->id);
		free(cc);
		close_stdio(fds);
		goto fail;
	}
	t = xcalloc(1, sizeof(*t));
	t->bundle = xstrdup(req->bundle);
	t->rootfs_mounted = req->n_rootfs > 0;
	pod_ctr_set_data(c, t);
	cc->task = t;
	set_stdio(pod_ctr_init(c), fds, req->stdin, req->stdout, req->stderr);
	cc->io = pod_proc_data(pod_ctr_init(c));
	bundle_done(&b);
	return 1; /* on_created answers */
fail:
	hull_error_prefix(err, "create '%s'", req->id);
	if (req->n_rootfs > 0)
		pod_unmount_all(rootfs);
out:
	bundle_done(&b);
	hull__task__create_task_request__free_unpacked(req, NULL);
	return r;
}

/* ---- Start, Wait, State, Kill, Delete -------------------------------------------------- */

struct start_ctx {
	struct task_service *ts;
	struct ttrpc_call *call;
	char *id, *exec_id;
};

static void on_start_done(void *userdata, int r, const struct hull_error *err)
{
	struct start_ctx *sc = userdata;
	struct pod_ctr *c = pod_ctr_find(sc->ts->pod, sc->id);
	struct pod_proc *p = c ? pod_proc_find(c, sc->exec_id) : NULL;
	Hull__Task__StartResponse resp = HULL__TASK__START_RESPONSE__INIT;

	if (r == 0)
		resp.pid = p ? pod_proc_pid(p) : 0;
	ttrpc_call_reply(sc->call, r, err, r == 0 ? &resp.base : NULL);
	free(sc->id);
	free(sc->exec_id);
	free(sc);
}

static int t_start(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                   ProtobufCMessage **ret, struct hull_error **err)
{
	struct task_service *ts = userdata;
	struct start_ctx *sc;
	int r;
	(void)ret;
	DECODE(Hull__Task__StartRequest, hull__task__start_request__unpack);
	FIND_PROC(p);
	FREE_REQ();
	sc = xcalloc(1, sizeof(*sc));
	sc->ts = ts;
	sc->call = call;
	sc->id = xstrdup(pod_ctr_id(c));
	sc->exec_id = xstrdup(pod_proc_exec_id(p));
	r = pod_start(p, on_start_done, sc, err);
	if (r < 0) {
		free(sc->id);
		free(sc->exec_id);
		free(sc);
		return r;
	}
	return 1;
}

static int t_wait(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                  ProtobufCMessage **ret, struct hull_error **err)
{
	struct task_service *ts = userdata;
	struct waiter *w;
	(void)ret;
	DECODE(Hull__Task__WaitRequest, hull__task__wait_request__unpack);
	FIND_PROC(p);
	(void)p;
	w = xcalloc(1, sizeof(*w));
	w->call = call;
	w->id = xstrdup(pod_ctr_id(c));
	w->exec_id = xstrdup(req->exec_id);
	w->next = ts->waiters;
	ts->waiters = w;
	FREE_REQ();
	answer_waiters(ts);
	return 1;
}

static int t_state(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                   ProtobufCMessage **ret, struct hull_error **err)
{
	struct task_service *ts = userdata;
	Hull__Task__StateResponse *resp;
	struct task_io *io;
	struct task *t;
	uint64_t at = 0;
	uint32_t status = 0;
	bool exited;
	(void)call;
	DECODE(Hull__Task__StateRequest, hull__task__state_request__unpack);
	FIND_PROC(p);
	FREE_REQ();
	t = pod_ctr_data(c);
	io = pod_proc_data(p);
	exited = pod_proc_exit(p, &status, &at, NULL);
	resp = xmalloc(sizeof(*resp));
	hull__task__state_response__init(resp);
	resp->id = xstrdup(pod_ctr_id(c));
	resp->exec_id = xstrdup(pod_proc_exec_id(p));
	resp->bundle = xstrdup(t->bundle ? t->bundle : "");
	resp->pid = pod_proc_pid(p);
	resp->status = exited                 ? HULL__TASK__STATUS__STOPPED
	               : !pod_proc_started(p) ? HULL__TASK__STATUS__CREATED
	               : t->paused            ? HULL__TASK__STATUS__PAUSED
	                                      : HULL__TASK__STATUS__RUNNING;
	resp->terminal = pod_proc_terminal(p);
	resp->stdin = xstrdup(io ? io->stdin : "");
	resp->stdout = xstrdup(io ? io->stdout : "");
	resp->stderr = xstrdup(io ? io->stderr : "");
	resp->exit_status = status;
	if (exited)
		resp->exited_at = timestamp_new(at);
	*ret = &resp->base;
	return 0;
}

static int t_kill(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                  ProtobufCMessage **ret, struct hull_error **err)
{
	struct task_service *ts = userdata;
	uint32_t sig;
	int r;
	(void)ret;
	DECODE(Hull__Task__KillRequest, hull__task__kill_request__unpack);
	FIND_PROC(p);
	sig = req->signal;
	FREE_REQ();
	if (sig == 0 || sig >= 65)
		return hull_error_set(err, -EINVAL, "signal %u out of range", sig);
	/* `all`: the init is PID 1 of its pid namespace; its end takes the rest along.
	 * NotFound for a finished process: what containerd expects when it stops one. */
	r = pod_signal(p, (int)sig, reply_done, call, err);
	return r < 0 ? r : 1;
}

struct delete_ctx {
	struct task_service *ts;
	struct ttrpc_call *call;
	char *id;
	struct task *task;
	struct task_io **ios;
	size_t n_ios;
	uint32_t pid, status;
	uint64_t at;
};

static void on_deleted(void *userdata, int r, const struct hull_error *err)
{
	struct delete_ctx *dc = userdata;
	Hull__Task__DeleteResponse resp = HULL__TASK__DELETE_RESPONSE__INIT;
	Hull__Events__TaskDelete ev = HULL__EVENTS__TASK_DELETE__INIT;
	Hull__Task__Timestamp t;
	(void)r, (void)err;

	task_release(dc->task);
	for (size_t i = 0; i < dc->n_ios; i++)
		task_io_free(dc->ios[i]);
	free(dc->ios);
	set_timestamp(&t, dc->at);
	resp.pid = dc->pid;
	resp.exit_status = dc->status;
	resp.exited_at = &t;
	ttrpc_call_reply(dc->call, 0, NULL, &resp.base);
	ev.container_id = dc->id;
	ev.id = dc->id;
	ev.pid = dc->pid;
	ev.exit_status = dc->status;
	ev.exited_at = &t;
	publish(dc->ts, "/tasks/delete", "TaskDelete", &ev.base);
	answer_waiters(dc->ts);
	free(dc->id);
	free(dc);
}

static int t_delete(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                    ProtobufCMessage **ret, struct hull_error **err)
{
	struct task_service *ts = userdata;
	struct delete_ctx *dc;
	uint64_t at = 0;
	uint32_t status = 0;
	bool exited;
	int r;
	DECODE(Hull__Task__DeleteRequest, hull__task__delete_request__unpack);
	FIND_PROC(p);
	FREE_REQ();
	exited = pod_proc_exit(p, &status, &at, NULL);
	if (pod_proc_started(p) && !exited)
		return hull_error_set(err, -EBUSY, "'%s' is still running",
		                      pod_proc_exec_id(p)[0] ? pod_proc_exec_id(p) : pod_ctr_id(c));
	if (pod_proc_exec_id(p)[0]) {
		Hull__Task__DeleteResponse *resp;
		if (pod_proc_draining(p))
			return hull_error_set(err, -EBUSY, "'%s' output is still draining",
			                      pod_proc_exec_id(p));
		resp = xmalloc(sizeof(*resp));
		hull__task__delete_response__init(resp);
		resp->pid = pod_proc_pid(p);
		resp->exit_status = status;
		resp->exited_at = timestamp_new(at ? at : realtime_ns());
		*ret = &resp->base;
		task_io_free(pod_proc_data(p));
		pod_proc_delete(p);
		return 0;
	}
	/* The container: out of the guest, then its host mounts. */
	dc = xcalloc(1, sizeof(*dc));
	dc->ts = ts;
	dc->call = call;
	dc->id = xstrdup(pod_ctr_id(c));
	dc->pid = pod_proc_pid(p);
	dc->status = status;
	dc->at = at ? at : realtime_ns();
	dc->task = pod_ctr_data(c);
	if (dc->task->deleting) {
		free(dc->id);
		free(dc);
		return hull_error_set(err, -EBUSY, "'%s' is being deleted", pod_ctr_id(c));
	}
	/* What we keep of its processes goes with it, in on_deleted (the pod core may free
	 * the container inside pod_delete: nothing of it is touched after the call). */
	for (struct pod_proc *q = pod_proc_next(c, NULL); q; q = pod_proc_next(c, q)) {
		dc->ios = xrealloc(dc->ios, (dc->n_ios + 1) * sizeof(*dc->ios));
		dc->ios[dc->n_ios++] = pod_proc_data(q);
	}
	dc->task->deleting = true;
	r = pod_delete(c, on_deleted, dc, err);
	if (r < 0) {
		dc->task->deleting = false;
		free(dc->ios);
		free(dc->id);
		free(dc);
		return r;
	}
	return 1;
}

/* ---- Exec, Pids, Pause/Resume, Stats, Update, ResizePty, CloseIO ------------------------- */

struct exec_ctx {
	struct task_service *ts;
	struct ttrpc_call *call;
	char *id, *exec_id;
	struct task_io *io; /* the exec's data, ours to free if it fails */
};

static void on_exec_done(void *userdata, int r, const struct hull_error *err)
{
	struct exec_ctx *ec = userdata;
	ttrpc_call_reply(ec->call, r, err, NULL);
	if (r < 0)
		task_io_free(ec->io); /* the pod core removed the exec */
	if (r == 0) {
		Hull__Events__TaskExecAdded ev = HULL__EVENTS__TASK_EXEC_ADDED__INIT;
		ev.container_id = ec->id;
		ev.exec_id = ec->exec_id;
		publish(ec->ts, "/tasks/exec-added", "TaskExecAdded", &ev.base);
	}
	free(ec->id);
	free(ec->exec_id);
	free(ec);
}

static int t_exec(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                  ProtobufCMessage **ret, struct hull_error **err)
{
	struct task_service *ts = userdata;
	struct exec_ctx *ec;
	struct pod_proc *p = NULL;
	int fds[3], r;
	(void)ret;
	DECODE(Hull__Task__ExecProcessRequest, hull__task__exec_process_request__unpack);
	if (!req->spec) {
		FREE_REQ();
		return hull_error_set(err, -EINVAL, "exec: no process spec");
	}
	r = open_stdio(req->stdin, req->stdout, req->stderr, fds, err);
	if (r < 0) {
		FREE_REQ();
		return r;
	}
	ec = xcalloc(1, sizeof(*ec));
	ec->ts = ts;
	ec->call = call;
	ec->id = xstrdup(pod_ctr_id(c));
	ec->exec_id = xstrdup(req->exec_id);
	/* The spec is an OCI process object as JSON, as containerd's Any carries it. */
	r = pod_exec(c, req->exec_id, (const char *)req->spec->value.data, req->spec->value.len,
	             req->terminal, on_exec_done, ec, &p, err);
	if (r < 0) {
		close_stdio(fds);
		FREE_REQ();
		free(ec->id);
		free(ec->exec_id);
		free(ec);
		return r;
	}
	set_stdio(p, fds, req->stdin, req->stdout, req->stderr);
	ec->io = pod_proc_data(p);
	FREE_REQ();
	return 1;
}

static void on_pids(void *userdata, int r, const struct hull_error *err, const uint8_t *payload,
                    size_t len)
{
	Hull__Agent__V1__PidsResponse *p =
	    r < 0 ? NULL : hull__agent__v1__pids_response__unpack(NULL, len, payload);
	Hull__Task__PidsResponse resp = HULL__TASK__PIDS_RESPONSE__INIT;
	_cleanup_free_ Hull__Task__ProcessInfo *infos = NULL;

	if (!p) {
		struct hull_error bad = {.code = -EPROTO,
		                         .msg = (char *)"the guest's reply does "
		                                        "not decode"};
		ttrpc_call_reply(userdata, r < 0 ? r : bad.code, r < 0 ? err : &bad, NULL);
		return;
	}
	resp.n_processes = MIN(p->n_pids, (size_t)4096);
	resp.processes = xcalloc(resp.n_processes + 1, sizeof(*resp.processes));
	infos = xcalloc(resp.n_processes + 1, sizeof(*infos));
	for (size_t i = 0; i < resp.n_processes; i++) {
		hull__task__process_info__init(&infos[i]);
		infos[i].pid = p->pids[i];
		resp.processes[i] = &infos[i];
	}
	ttrpc_call_reply(userdata, 0, NULL, &resp.base);
	free(resp.processes);
	hull__agent__v1__pids_response__free_unpacked(p, NULL);
}

/* The request carries only the container id: one agent call on it. */
static int container_call(struct task_service *ts, struct ttrpc_call *call, const char *id,
                          const char *method, pod_reply_fn fn, struct hull_error **err)
{
	Hull__Agent__V1__ContainerRequest cr = HULL__AGENT__V1__CONTAINER_REQUEST__INIT;
	int r;
	cr.id = (char *)id;
	r = pod_call(ts->pod, method, &cr.base, fn, call, err);
	return r < 0 ? r : 1;
}

static int t_pids(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                  ProtobufCMessage **ret, struct hull_error **err)
{
	struct task_service *ts = userdata;
	(void)ret;
	DECODE(Hull__Task__PidsRequest, hull__task__pids_request__unpack);
	FREE_REQ();
	return container_call(ts, call, pod_ctr_id(c), "ListProcesses", on_pids, err);
}

struct pause_ctx {
	struct task_service *ts;
	struct ttrpc_call *call;
	char *id;
	bool pause;
};

static void on_paused(void *userdata, int r, const struct hull_error *err, const uint8_t *payload,
                      size_t len)
{
	struct pause_ctx *pc = userdata;
	struct pod_ctr *c = pod_ctr_find(pc->ts->pod, pc->id);
	(void)payload, (void)len;
	ttrpc_call_reply(pc->call, r, err, NULL);
	if (r == 0 && c && pod_ctr_data(c)) {
		((struct task *)pod_ctr_data(c))->paused = pc->pause;
		publish_container(pc->ts, pc->pause ? "/tasks/paused" : "/tasks/resumed",
		                  pc->pause ? "TaskPaused" : "TaskResumed", pc->id);
	}
	free(pc->id);
	free(pc);
}

static int pause_resume(struct task_service *ts, struct pod_ctr *c, struct ttrpc_call *call,
                        bool pause, struct hull_error **err)
{
	Hull__Agent__V1__ContainerRequest cr = HULL__AGENT__V1__CONTAINER_REQUEST__INIT;
	struct pause_ctx *pc = xmalloc(sizeof(*pc));
	int r;
	pc->ts = ts;
	pc->call = call;
	pc->id = xstrdup(pod_ctr_id(c));
	pc->pause = pause;
	cr.id = pc->id;
	r = pod_call(ts->pod, pause ? "PauseContainer" : "ResumeContainer", &cr.base, on_paused, pc,
	             err);
	if (r < 0) {
		free(pc->id);
		free(pc);
		return r;
	}
	return 1;
}

static int t_pause(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                   ProtobufCMessage **ret, struct hull_error **err)
{
	struct task_service *ts = userdata;
	(void)ret;
	DECODE(Hull__Task__PauseRequest, hull__task__pause_request__unpack);
	FREE_REQ();
	return pause_resume(ts, c, call, true, err);
}

static int t_resume(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                    ProtobufCMessage **ret, struct hull_error **err)
{
	struct task_service *ts = userdata;
	(void)ret;
	DECODE(Hull__Task__ResumeRequest, hull__task__resume_request__unpack);
	FREE_REQ();
	return pause_resume(ts, c, call, false, err);
}

/* containerd decodes metrics by type: cgroup v2's, since the guest runs cgroup v2. */
static void on_stats(void *userdata, int r, const struct hull_error *err, const uint8_t *payload,
                     size_t len)
{
	Hull__Agent__V1__StatsResponse *st =
	    r < 0 ? NULL : hull__agent__v1__stats_response__unpack(NULL, len, payload);
	Hull__Task__StatsResponse resp = HULL__TASK__STATS_RESPONSE__INIT;
	Hull__Task__Any any = HULL__TASK__ANY__INIT;
	Hull__Events__Metrics m = HULL__EVENTS__METRICS__INIT;
	Hull__Events__PidsStat pids = HULL__EVENTS__PIDS_STAT__INIT;
	Hull__Events__CPUStat cpu = HULL__EVENTS__CPUSTAT__INIT;
	Hull__Events__MemoryStat mem = HULL__EVENTS__MEMORY_STAT__INIT;
	Hull__Events__MemoryEvents mev = HULL__EVENTS__MEMORY_EVENTS__INIT;
	uint8_t packed[256];

	if (!st) {
		struct hull_error bad = {.code = -EPROTO,
		                         .msg = (char *)"the guest's reply does "
		                                        "not decode"};
		ttrpc_call_reply(userdata, r < 0 ? r : bad.code, r < 0 ? err : &bad, NULL);
		return;
	}
	pids.current = st->pids_current;
	pids.limit = st->pids_limit;
	cpu.usage_usec = st->cpu_usage_usec;
	mem.usage = st->memory_current;
	mem.usage_limit = st->memory_limit ? st->memory_limit : UINT64_MAX;
	mev.oom_kill = st->oom_kills;
	m.pids = &pids;
	m.cpu = &cpu;
	m.memory = &mem;
	m.memory_events = &mev;
	any.type_url = (char *)"io.containerd.cgroups.v2.Metrics";
	any.value.data = packed;
	any.value.len = protobuf_c_message_pack(&m.base, packed);
	resp.stats = &any;
	ttrpc_call_reply(userdata, 0, NULL, &resp.base);
	hull__agent__v1__stats_response__free_unpacked(st, NULL);
}

static int t_stats(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                   ProtobufCMessage **ret, struct hull_error **err)
{
	struct task_service *ts = userdata;
	(void)ret;
	DECODE(Hull__Task__StatsRequest, hull__task__stats_request__unpack);
	FREE_REQ();
	return container_call(ts, call, pod_ctr_id(c), "StatsContainer", on_stats, err);
}

static int t_update(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                    ProtobufCMessage **ret, struct hull_error **err)
{
	struct task_service *ts = userdata;
	Hull__Agent__V1__UpdateRequest ur = HULL__AGENT__V1__UPDATE_REQUEST__INIT;
	int r;
	(void)ret;
	DECODE(Hull__Task__UpdateTaskRequest, hull__task__update_task_request__unpack);
	if (!req->resources) {
		FREE_REQ();
		return hull_error_set(err, -EINVAL, "update: no resources");
	}
	/* An OCI linux.resources object as JSON; the agent checks it as in a full spec. */
	ur.id = (char *)pod_ctr_id(c);
	ur.resources = req->resources->value;
	r = pod_call(ts->pod, "UpdateContainer", &ur.base, reply_empty, call, err);
	FREE_REQ();
	return r < 0 ? r : 1;
}

static int t_resize(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                    ProtobufCMessage **ret, struct hull_error **err)
{
	struct task_service *ts = userdata;
	Hull__Agent__V1__ResizeRequest rr = HULL__AGENT__V1__RESIZE_REQUEST__INIT;
	int r;
	(void)ret;
	DECODE(Hull__Task__ResizePtyRequest, hull__task__resize_pty_request__unpack);
	FIND_PROC(p);
	rr.rows = req->height;
	rr.cols = req->width;
	FREE_REQ();
	rr.id = (char *)pod_ctr_id(c);
	rr.exec_id = (char *)pod_proc_exec_id(p);
	r = pod_call(ts->pod, "ResizePty", &rr.base, reply_empty, call, err);
	return r < 0 ? r : 1;
}

static int t_close_io(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                      ProtobufCMessage **ret, struct hull_error **err)
{
	struct task_service *ts = userdata;
	(void)call, (void)ret;
	DECODE(Hull__Task__CloseIORequest, hull__task__close_iorequest__unpack);
	FIND_PROC(p);
	if (req->stdin)
		pod_proc_close_stdin(p);
	FREE_REQ();
	return 0;
}

static int t_connect(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                     ProtobufCMessage **ret, struct hull_error **err)
{
	struct task_service *ts = userdata;
	Hull__Task__ConnectResponse *resp;
	(void)call;
	DECODE(Hull__Task__ConnectRequest, hull__task__connect_request__unpack);
	FREE_REQ();
	resp = xmalloc(sizeof(*resp));
	hull__task__connect_response__init(resp);
	resp->shim_pid = (uint32_t)getpid();
	resp->task_pid = pod_proc_pid(pod_ctr_init(c));
	resp->version = xstrdup(HULL_VERSION);
	*ret = &resp->base;
	return 0;
}

static bool task_service_empty(struct task_service *ts);

static int t_shutdown(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                      ProtobufCMessage **ret, struct hull_error **err)
{
	struct task_service *ts = userdata;
	Hull__Task__ShutdownRequest *req = hull__task__shutdown_request__unpack(NULL, len, payload);
	(void)call, (void)ret;
	if (!req)
		return hull_error_set(err, -EINVAL, "request does not decode");
	/* containerd asks after every task delete: the pod's shim stays while it has tasks. */
	if ((task_service_empty(ts) || req->now) && ts->ops->shutdown)
		ts->ops->shutdown(ts->userdata);
	hull__task__shutdown_request__free_unpacked(req, NULL);
	return 0;
}

static const struct ttrpc_method methods[] = {
    {TASK_SERVICE, "Create", t_create},    {TASK_SERVICE, "Start", t_start},
    {TASK_SERVICE, "State", t_state},      {TASK_SERVICE, "Wait", t_wait},
    {TASK_SERVICE, "Kill", t_kill},        {TASK_SERVICE, "Delete", t_delete},
    {TASK_SERVICE, "Exec", t_exec},        {TASK_SERVICE, "Pids", t_pids},
    {TASK_SERVICE, "Pause", t_pause},      {TASK_SERVICE, "Resume", t_resume},
    {TASK_SERVICE, "Stats", t_stats},      {TASK_SERVICE, "Update", t_update},
    {TASK_SERVICE, "ResizePty", t_resize}, {TASK_SERVICE, "CloseIO", t_close_io},
    {TASK_SERVICE, "Connect", t_connect},  {TASK_SERVICE, "Shutdown", t_shutdown},
};

const struct ttrpc_method *task_service_methods(size_t *ret_n)
{
	*ret_n = ELEMENTSOF(methods);
	return methods;
}

/* ---- the service ------------------------------------------------------------------------ */

struct task_service *task_service_new(struct event_loop *loop, const struct task_service_ops *ops,
                                      void *userdata)
{
	struct task_service *ts = xcalloc(1, sizeof(*ts));
	ts->loop = loop;
	ts->ops = ops;
	ts->userdata = userdata;
	ts->pod = pod_new(loop, &sink, ts);
	return ts;
}

struct pod *task_service_pod(struct task_service *ts)
{
	return ts->pod;
}

void task_service_adopt(struct task_service *ts, struct pod_ctr *c, const char *bundle)
{
	struct task *t = xcalloc(1, sizeof(*t));
	(void)ts;
	t->bundle = xstrdup(bundle ? bundle : "");
	pod_ctr_set_data(c, t);
}

static bool task_service_empty(struct task_service *ts)
{
	for (struct pod_ctr *c = pod_ctr_next(ts->pod, NULL); c; c = pod_ctr_next(ts->pod, c))
		if (pod_ctr_data(c))
			return false;
	return true;
}

struct task_service *task_service_free(struct task_service *ts, int stop_timeout_ms)
{
	if (!ts)
		return NULL;
	while (ts->waiters) {
		struct waiter *w = ts->waiters;
		ts->waiters = w->next;
		ttrpc_call_reply(w->call, -ECANCELED, NULL, NULL);
		free(w->id);
		free(w->exec_id);
		free(w);
	}
	/* The guest goes first, then what containerd mounted under it. */
	for (struct pod_ctr *c = pod_ctr_next(ts->pod, NULL); c; c = pod_ctr_next(ts->pod, c))
		task_io_forget(c);
	{
		struct task **tasks = NULL;
		size_t n = 0;
		for (struct pod_ctr *c = pod_ctr_next(ts->pod, NULL); c;
		     c = pod_ctr_next(ts->pod, c)) {
			tasks = xrealloc(tasks, (n + 1) * sizeof(*tasks));
			tasks[n++] = pod_ctr_data(c);
		}
		ts->pod = pod_free(ts->pod, stop_timeout_ms);
		for (size_t i = 0; i < n; i++)
			task_release(tasks[i]);
		free(tasks);
	}
	free(ts);
	return NULL;
}
