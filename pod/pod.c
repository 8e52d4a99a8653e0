/* SPDX-License-Identifier: MIT */
/* The pod core: a sandbox, its containers and processes, every agent call of theirs in
 * flight, and what the front end hears of it (struct pod_sink). */
#include "pod.h"

#include <signal.h>
#include <string.h>
#include <time.h>

#include "agent.pb-c.h"
#include "log.h"
#include "pod-internal.h"
#include "util.h"

#define CALL_TIMEOUT_MS 30000

/* ---- calls in flight ---------------------------------------------------------------- */

enum op_kind {
	OP_CREATE,
	OP_EXEC,
	OP_START,
	OP_WAIT,
	OP_SIGNAL,
	OP_REMOVE,
	OP_CALL,
	_OP_KIND_MAX,
};

struct pod_op {
	struct pod *pod;
	enum op_kind kind;
	uint32_t sid;
	struct pod_ctr *c;  /* NULL once it is gone */
	struct pod_proc *p; /* NULL once it is gone */
	pod_done_fn done;
	pod_reply_fn reply;
	void *userdata;
	struct pod_op *next;
};

static void on_op_reply(struct ttrpc_client *cl, int code, const char *message,
                        const uint8_t *payload, size_t len, void *userdata);

/* Send an agent call on behalf of c/p; the op is answered once (reply, error, or the
 * VM's loss). */
static int op_send(struct pod *pod, enum op_kind kind, const char *method,
                   const ProtobufCMessage *msg, int timeout_ms, struct pod_ctr *c,
                   struct pod_proc *p, pod_done_fn done, pod_reply_fn reply, void *userdata,
                   struct hull_error **err)
{
	struct pod_op *op = xcalloc(1, sizeof(*op));

	op->pod = pod;
	op->kind = kind;
	op->c = c;
	op->p = p;
	op->done = done;
	op->reply = reply;
	op->userdata = userdata;
	op->sid =
	    ttrpc_client_call(pod->sb->agent, method, msg, 0, timeout_ms, on_op_reply, NULL, op);
	if (!op->sid) {
		free(op);
		return hull_error_set(err, -EBUSY, "%s: the agent channel is gone or busy", method);
	}
	op->next = pod->ops;
	pod->ops = op;
	return 0;
}

static void op_unlink(struct pod_op *op)
{
	for (struct pod_op **pp = &op->pod->ops; *pp; pp = &(*pp)->next)
		if (*pp == op) {
			*pp = op->next;
			return;
		}
}

/* Calls on behalf of something that goes away keep their completion (a front end
 * waits on it) but no longer touch it. */
static void ops_forget_ctr(struct pod *pod, struct pod_ctr *c)
{
	for (struct pod_op *op = pod->ops; op; op = op->next)
		if (op->c == c) {
			op->c = NULL;
			op->p = NULL;
		}
}

static void ops_forget_proc(struct pod *pod, struct pod_proc *p)
{
	for (struct pod_op *op = pod->ops; op; op = op->next)
		if (op->p == p)
			op->p = NULL;
}

/* A completion the front end gets from the loop, not inside the call that caused it. */
struct deferred_done {
	pod_done_fn done;
	void *userdata;
	int r;
	struct hull_error *err;
};

static void run_deferred_done(void *userdata)
{
	struct deferred_done *d = userdata;
	d->done(d->userdata, d->r, d->err);
	hull_error_free(d->err);
	free(d);
}

static void defer_done(struct pod *pod, pod_done_fn done, void *userdata, int r,
                       const struct hull_error *err)
{
	struct deferred_done *d = xcalloc(1, sizeof(*d));
	if (!done) {
		free(d);
		return;
	}
	d->done = done;
	d->userdata = userdata;
	d->r = r;
	if (err)
		hull_error_set(&d->err, err->code, "%s", err->msg);
	event_defer(pod->loop, run_deferred_done, d);
}

/* ---- processes ---------------------------------------------------------------------- */

static struct pod_proc *proc_new(struct pod_ctr *c, const char *exec_id, bool terminal)
{
	struct pod_proc *p = xcalloc(1, sizeof(*p));
	struct pod_proc **pp;

	p->c = c;
	p->exec_id = xstrdup(exec_id);
	p->terminal = terminal;
	p->in_fd = -1;
	/* The init first, execs after it. */
	for (pp = &c->procs; *pp; pp = &(*pp)->next)
		;
	*pp = p;
	return p;
}

static void proc_free(struct pod_proc *p)
{
	ops_forget_proc(p->c->pod, p);
	p->stream = stream_free(p->stream);
	for (int i = 1; i <= 2; i++)
		if (p->sink[i])
			p->sink[i]->close(p->sink[i]);
	if (p->in_fd >= 0)
		close(p->in_fd);
	free(p->exec_id);
	free(p->why);
	free(p);
}

static void proc_unlink(struct pod_proc *p)
{
	for (struct pod_proc **pp = &p->c->procs; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			return;
		}
}

/* The process ended: record it once and tell the front end. */
static void proc_ended(struct pod_proc *p, uint32_t status, const char *why)
{
	struct pod *pod = p->c->pod;
	if (p->exited)
		return;
	p->exited = true;
	p->exit_status = status;
	p->exited_at_ns = realtime_ns();
	p->why = why ? xstrdup(why) : NULL;
	if (pod->sink->exited)
		pod->sink->exited(p, pod->userdata);
}

struct pod_proc *pod_proc_find(struct pod_ctr *c, const char *exec_id)
{
	for (struct pod_proc *p = c->procs; p; p = p->next)
		if (strcmp(p->exec_id, exec_id) == 0)
			return p;
	return NULL;
}

struct pod_proc *pod_ctr_init(struct pod_ctr *c)
{
	return c->procs;
}

struct pod_proc *pod_proc_next(struct pod_ctr *c, struct pod_proc *after)
{
	return after ? after->next : c->procs;
}

struct pod_ctr *pod_proc_ctr(const struct pod_proc *p)
{
	return p->c;
}

const char *pod_proc_exec_id(const struct pod_proc *p)
{
	return p->exec_id;
}

void pod_proc_set_data(struct pod_proc *p, void *data)
{
	p->data = data;
}

void *pod_proc_data(const struct pod_proc *p)
{
	return p->data;
}

bool pod_proc_terminal(const struct pod_proc *p)
{
	return p->terminal;
}

bool pod_proc_started(const struct pod_proc *p)
{
	return p->started;
}

uint32_t pod_proc_pid(const struct pod_proc *p)
{
	return p->pid;
}

bool pod_proc_exit(const struct pod_proc *p, uint32_t *ret_status, uint64_t *ret_at_ns,
                   const char **ret_why)
{
	if (!p->exited)
		return false;
	if (ret_status)
		*ret_status = p->exit_status;
	if (ret_at_ns)
		*ret_at_ns = p->exited_at_ns;
	if (ret_why)
		*ret_why = p->why;
	return true;
}

bool pod_proc_draining(const struct pod_proc *p)
{
	return p->stream && !stream_is_done(p->stream);
}

/* ---- containers --------------------------------------------------------------------- */

static void ctr_free(struct pod_ctr *c)
{
	ops_forget_ctr(c->pod, c);
	while (c->procs) {
		struct pod_proc *p = c->procs;
		c->procs = p->next;
		proc_free(p);
	}
	pod_ctr_undo_host(c);
	free(c->create_req);
	free(c->id);
	free(c->shared);
	free(c);
}

static void ctr_unlink(struct pod_ctr *c)
{
	for (struct pod_ctr **pp = &c->pod->ctrs; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			return;
		}
}

struct pod_ctr *pod_ctr_find(struct pod *pod, const char *id)
{
	for (struct pod_ctr *c = pod->ctrs; c; c = c->next)
		if (strcmp(c->id, id) == 0)
			return c;
	return NULL;
}

struct pod_ctr *pod_ctr_next(struct pod *pod, struct pod_ctr *after)
{
	return after ? after->next : pod->ctrs;
}

const char *pod_ctr_id(const struct pod_ctr *c)
{
	return c->id;
}

struct pod *pod_ctr_pod(const struct pod_ctr *c)
{
	return c->pod;
}

void pod_ctr_set_data(struct pod_ctr *c, void *data)
{
	c->data = data;
}

void *pod_ctr_data(const struct pod_ctr *c)
{
	return c->data;
}

/* ---- the sandbox -------------------------------------------------------------------- */

static void send_create(struct pod_ctr *c);

static void pod_lose(struct pod *pod, const struct hull_error *err)
{
	struct hull_error gone = {.code = -ECONNRESET};

	if (pod->lost)
		return;
	pod->lost = true;
	hull_error_set(&pod->lost_err, err->code, "%s", err->msg);
	gone.msg = xasprintf("the VM is gone: %s", err->msg);
	log_warn("%s: every process is reported exited", gone.msg);
	/* Calls in flight: answered now, in the order they were sent. */
	while (pod->ops) {
		struct pod_op *op = pod->ops, **pp = &pod->ops;
		while ((*pp)->next)
			pp = &(*pp)->next;
		op = *pp;
		*pp = NULL;
		ttrpc_client_forget(pod->sb->agent, op->sid);
		if ((op->kind == OP_CREATE || op->kind == OP_REMOVE) && op->c) {
			ctr_unlink(op->c);
			ctr_free(op->c);
		} else if (op->kind == OP_EXEC && op->p) {
			proc_unlink(op->p);
			proc_free(op->p);
		}
		if (op->done && op->kind == OP_REMOVE)
			op->done(op->userdata, 0, NULL); /* gone from the host, as asked */
		else if (op->done)
			op->done(op->userdata, gone.code, &gone);
		if (op->reply)
			op->reply(op->userdata, gone.code, &gone, NULL, 0);
		free(op);
	}
	for (struct pod_ctr *c = pod->ctrs; c; c = c->next) {
		c->in_guest = false;
		for (struct pod_proc *p = c->procs; p; p = p->next) {
			if (p->stream)
				stream_abort(p->stream, &gone);
			if (p->started || !p->exec_id[0])
				proc_ended(p, POD_EXIT_VM_GONE, gone.msg);
		}
	}
	for (size_t i = 0; i < pod->n_forwards; i++)
		stream_abort(pod->forwards[i], &gone);
	free(gone.msg);
	if (pod->sink->lost)
		pod->sink->lost(pod, err, pod->userdata);
}

static void on_ready(struct sandbox *sb, int r, const struct hull_error *err, void *userdata)
{
	struct pod *pod = userdata;
	(void)sb;

	if (r < 0) {
		/* Containers waiting for the boot fail with it. */
		while (pod->ctrs) {
			struct pod_ctr *c = pod->ctrs;
			pod->ctrs = c->next;
			if (c->create_done)
				defer_done(pod, c->create_done, c->create_userdata, r, err);
			ctr_free(c);
		}
		pod->lost = true;
		hull_error_set(&pod->lost_err, r, "%s", err->msg);
		if (pod->sink->booted)
			pod->sink->booted(pod, r, err, pod->userdata);
		return;
	}
	pod->ready = true;
	log_info("sandbox %s booted", sb->id);
	if (pod->sink->booted)
		pod->sink->booted(pod, 0, NULL, pod->userdata);
	/* Containers created during the boot, in their order. */
	for (bool again = true; again && !pod->lost;) {
		again = false;
		for (struct pod_ctr *c = pod->ctrs; c; c = c->next)
			if (c->create_req && !c->create_sent) {
				send_create(c);
				again = true;
				break;
			}
	}
}

static void on_lost(struct sandbox *sb, const struct hull_error *err, void *userdata)
{
	(void)sb;
	pod_lose(userdata, err);
}

static const struct sandbox_ops sandbox_ops = {.ready = on_ready, .lost = on_lost};

struct pod *pod_new(struct event_loop *loop, const struct pod_sink *sink, void *userdata)
{
	struct pod *pod = xcalloc(1, sizeof(*pod));
	pod->loop = loop;
	pod->sink = sink;
	pod->userdata = userdata;
	return pod;
}

int pod_boot(struct pod *pod, const struct pod_config *cfg, struct hull_error **err)
{
	struct sandbox_config sc = {
	    .state_root = cfg->state_root,
	    .id = cfg->id,
	    .vm = cfg->vm,
	    .disks = cfg->disks,
	    .n_disks = cfg->n_disks,
	    .net_user = cfg->net_user,
	    .hostfwd = cfg->hostfwd,
	    .netns = cfg->netns,
	    .debug = cfg->debug,
	};
	if (pod->sb)
		return hull_error_set(err, -EALREADY, "the pod has a sandbox");
	return sandbox_start(pod->loop, &sc, &sandbox_ops, pod, &pod->sb, err);
}

void pod_adopt(struct pod *pod, struct sandbox *sb)
{
	pod->sb = sb;
	pod->ready = true;
}

struct pod *pod_free(struct pod *pod, int timeout_ms)
{
	if (!pod)
		return NULL;
	/* No callback of ours runs again: calls in flight are forgotten first. */
	while (pod->ops) {
		struct pod_op *op = pod->ops;
		pod->ops = op->next;
		ttrpc_client_forget(pod->sb ? pod->sb->agent : NULL, op->sid);
		free(op);
	}
	while (pod->ctrs) {
		struct pod_ctr *c = pod->ctrs;
		pod->ctrs = c->next;
		ctr_free(c);
	}
	while (pod->n_forwards)
		stream_free(pod->forwards[--pod->n_forwards]);
	free(pod->forwards);
	pod->sb = sandbox_stop(pod->sb, timeout_ms);
	hull_error_free(pod->lost_err);
	free(pod);
	return NULL;
}

const char *pod_id(const struct pod *pod)
{
	return pod->sb ? pod->sb->id : NULL;
}

const char *pod_state_dir(const struct pod *pod)
{
	return pod->sb ? pod->sb->state_dir : NULL;
}

struct sandbox *pod_sandbox(const struct pod *pod)
{
	return pod->sb;
}

void pod_kill(struct pod *pod, const struct hull_error *err)
{
	if (pod->sb && !pod->lost)
		sandbox_kill(pod->sb, err);
}

/* The operations that need a running guest. */
static int need_ready(struct pod *pod, struct hull_error **err)
{
	if (pod->lost)
		return hull_error_set(err, -EBUSY, "the sandbox VM is gone: %s",
		                      pod->lost_err ? pod->lost_err->msg : "?");
	if (!pod->ready)
		return hull_error_set(err, -EBUSY, "the sandbox is still booting");
	return 0;
}

/* ---- replies ------------------------------------------------------------------------ */

/* An exit status the guest cannot have produced is a lie: the process is reported as
 * lost with it, the rest of the pod goes on. */
static void wait_replied(struct pod_proc *p, int r, const struct hull_error *err,
                         const uint8_t *payload, size_t len)
{
	Hull__Agent__V1__WaitResponse *w = NULL;
	_cleanup_free_ char *why = NULL;
	uint32_t status = POD_EXIT_VM_GONE;

	if (r < 0) {
		why = xasprintf("waiting for it failed: %s", err->msg);
	} else if (!(w = hull__agent__v1__wait_response__unpack(NULL, len, payload))) {
		why = xstrdup("protocol violation: the guest's WaitProcess reply does not decode");
	} else if (w->signal < 0 || w->signal >= 128 || w->exit_code < 0 || w->exit_code > 255 ||
	           (w->signal && w->exit_code)) {
		why = xasprintf("protocol violation: the guest reported an impossible exit status "
		                "(exit code %d, signal %d)",
		                w->exit_code, w->signal);
	} else {
		status = w->signal ? (uint32_t)(128 + w->signal) : (uint32_t)w->exit_code;
		if (w->oom_killed && p->c->pod->sink->oom)
			p->c->pod->sink->oom(p->c, p->c->pod->userdata);
	}
	if (why && strncmp(why, "protocol violation", 18) == 0)
		log_warn("container '%s' process '%s': %s", p->c->id, p->exec_id, why);
	if (w)
		hull__agent__v1__wait_response__free_unpacked(w, NULL);
	proc_ended(p, status, why);
}

static void start_replied(struct pod_op *op, int r, const struct hull_error *err,
                          const uint8_t *payload, size_t len)
{
	struct pod_proc *p = op->p;
	Hull__Agent__V1__StartContainerResponse *sr = NULL;
	struct hull_error bad = {.code = -EPROTO,
	                         .msg = (char *)"protocol violation: the guest's start reply does "
	                                        "not decode"};

	if (r == 0 &&
	    !(sr = hull__agent__v1__start_container_response__unpack(NULL, len, payload))) {
		r = bad.code;
		err = &bad;
	}
	if (r == 0 && p) {
		p->pid = sr->pid;
		if (p->c->pod->sink->started)
			p->c->pod->sink->started(p, p->c->pod->userdata);
	}
	if (sr)
		hull__agent__v1__start_container_response__free_unpacked(sr, NULL);
	if (op->done)
		op->done(op->userdata, r, err);
}

static void on_op_reply(struct ttrpc_client *cl, int code, const char *message,
                        const uint8_t *payload, size_t len, void *userdata)
{
	struct pod_op *op = userdata;
	struct hull_error e = {.code = code ? ttrpc_errno_from_code(code) : 0,
	                       .msg = (char *)message};
	const struct hull_error *err = code ? &e : NULL;
	int r = e.code;
	(void)cl;

	op_unlink(op);
	switch (op->kind) {
	case OP_CREATE:
		if (op->c) {
			struct pod_ctr *c = op->c;
			if (r < 0) {
				ctr_unlink(c);
				ctr_free(c);
			} else {
				c->in_guest = true;
			}
		}
		break;
	case OP_EXEC:
		if (op->p) {
			if (r < 0) {
				proc_unlink(op->p);
				proc_free(op->p);
			} else {
				op->p->created = true;
			}
		}
		break;
	case OP_START:
		start_replied(op, r, err, payload, len);
		free(op);
		return;
	case OP_WAIT:
		if (op->p)
			wait_replied(op->p, r, err, payload, len);
		break;
	case OP_REMOVE:
		if (r < 0)
			log_warn("remove container '%s' in the guest: %s", op->c ? op->c->id : "?",
			         message);
		if (op->c) {
			ctr_unlink(op->c);
			ctr_free(op->c);
		}
		r = 0; /* gone from the host either way */
		err = NULL;
		break;
	case OP_SIGNAL:
	case OP_CALL:
	case _OP_KIND_MAX:
		break;
	}
	if (op->done)
		op->done(op->userdata, r, err);
	if (op->reply)
		op->reply(op->userdata, r, err, payload, len);
	free(op);
}

/* ---- operations --------------------------------------------------------------------- */

static void send_create(struct pod_ctr *c)
{
	struct pod *pod = c->pod;
	_cleanup_error_ struct hull_error *err = NULL;
	Hull__Agent__V1__CreateContainerRequest *req =
	    hull__agent__v1__create_container_request__unpack(NULL, c->create_len, c->create_req);
	int r;

	c->create_sent = true;
	r = op_send(pod, OP_CREATE, "CreateContainer", &req->base, CALL_TIMEOUT_MS, c, NULL,
	            c->create_done, NULL, c->create_userdata, &err);
	hull__agent__v1__create_container_request__free_unpacked(req, NULL);
	free(c->create_req);
	c->create_req = NULL;
	if (r < 0) {
		defer_done(pod, c->create_done, c->create_userdata, r, err);
		ctr_unlink(c);
		ctr_free(c);
	}
}

int pod_create(struct pod *pod, const struct pod_ctr_config *cfg, pod_done_fn done, void *userdata,
               struct pod_ctr **ret, struct hull_error **err)
{
	struct pod_ctr *c, **pp;
	int r;

	if (!pod->sb || pod->lost)
		return need_ready(pod, err);
	if (!id_is_valid(cfg->id))
		return hull_error_set(err, -EINVAL,
		                      "container id '%.80s': want 1-64 of [A-Za-z0-9_.-]", cfg->id);
	if (pod_ctr_find(pod, cfg->id))
		return hull_error_set(err, -EEXIST, "container '%s' exists", cfg->id);
	c = xcalloc(1, sizeof(*c));
	c->pod = pod;
	c->id = xstrdup(cfg->id);
	r = pod_ctr_build(c, cfg, &c->create_req, &c->create_len, err);
	if (r < 0) {
		ctr_free(c);
		return r;
	}
	(void)proc_new(c, "", cfg->terminal);
	c->create_done = done;
	c->create_userdata = userdata;
	/* Listed in creation order. */
	for (pp = &pod->ctrs; *pp; pp = &(*pp)->next)
		;
	*pp = c;
	if (pod->ready)
		send_create(c);
	*ret = c;
	return 0;
}

int pod_delete(struct pod_ctr *c, pod_done_fn done, void *userdata, struct hull_error **err)
{
	struct pod *pod = c->pod;
	Hull__Agent__V1__ContainerRequest cr = HULL__AGENT__V1__CONTAINER_REQUEST__INIT;
	struct pod_proc *init = c->procs;

	if (init->started && !init->exited)
		return hull_error_set(err, -EBUSY, "'%s' is still running", c->id);
	if (c->create_req) {
		/* Waiting for the boot: it never reaches the guest. */
		struct hull_error gone = {.code = -ECANCELED,
		                          .msg = (char *)"container removed before it was created"};
		defer_done(pod, c->create_done, c->create_userdata, gone.code, &gone);
		ctr_unlink(c);
		ctr_free(c);
		defer_done(pod, done, userdata, 0, NULL);
		return 0;
	}
	for (struct pod_proc *p = c->procs; p; p = p->next)
		p->stream = stream_free(p->stream);
	/* In the guest, or on its way (the agent kills a setup in progress and answers its
	 * create CANCELLED, which frees the container here). */
	if ((c->in_guest || c->create_sent) && !pod->lost) {
		cr.id = c->id;
		return op_send(pod, OP_REMOVE, "RemoveContainer", &cr.base, CALL_TIMEOUT_MS, c,
		               NULL, done, NULL, userdata, err);
	}
	ctr_unlink(c);
	ctr_free(c);
	defer_done(pod, done, userdata, 0, NULL);
	return 0;
}

int pod_exec(struct pod_ctr *c, const char *exec_id, const char *process_json, size_t len,
             bool terminal, pod_done_fn done, void *userdata, struct pod_proc **ret,
             struct hull_error **err)
{
	Hull__Agent__V1__ExecProcessRequest er = HULL__AGENT__V1__EXEC_PROCESS_REQUEST__INIT;
	struct pod_proc *p;
	int r;

	if ((r = need_ready(c->pod, err)) < 0)
		return r;
	if (!id_is_valid(exec_id))
		return hull_error_set(err, -EINVAL, "exec id '%.76s': want 1-64 of [A-Za-z0-9_.-]",
		                      exec_id);
	if (pod_proc_find(c, exec_id))
		return hull_error_set(err, -EEXIST, "exec '%s' exists in '%s'", exec_id, c->id);
	if (!c->in_guest)
		return hull_error_set(err, -EBUSY, "'%s' is not created", c->id);
	p = proc_new(c, exec_id, terminal);
	er.id = c->id;
	er.exec_id = p->exec_id;
	er.process.data = (uint8_t *)process_json;
	er.process.len = len;
	r = op_send(c->pod, OP_EXEC, "ExecProcess", &er.base, CALL_TIMEOUT_MS, c, p, done, NULL,
	            userdata, err);
	if (r < 0) {
		proc_unlink(p);
		proc_free(p);
		return r;
	}
	*ret = p;
	return 0;
}

void pod_proc_delete(struct pod_proc *p)
{
	if (!p->exec_id[0])
		return; /* the init goes with its container */
	proc_unlink(p);
	proc_free(p);
}

void pod_proc_set_stdio(struct pod_proc *p, struct stream_sink *out, struct stream_sink *err,
                        int in_fd)
{
	for (int i = 1; i <= 2; i++)
		if (p->sink[i])
			p->sink[i]->close(p->sink[i]);
	if (p->in_fd >= 0)
		close(p->in_fd);
	p->sink[1] = out;
	p->sink[2] = err;
	p->in_fd = in_fd;
}

static void on_stream_done(struct stream *st, int r, const struct hull_error *err, void *userdata)
{
	struct pod_proc *p = userdata;
	(void)st;
	if (p->c->pod->sink->drained)
		p->c->pod->sink->drained(p, r, err, p->c->pod->userdata);
}

static const struct stream_ops proc_stream_ops = {.done = on_stream_done};

int pod_start(struct pod_proc *p, pod_done_fn done, void *userdata, struct hull_error **err)
{
	struct pod *pod = p->c->pod;
	Hull__Agent__V1__AttachRequest att = HULL__AGENT__V1__ATTACH_REQUEST__INIT;
	Hull__Agent__V1__StartProcessRequest sp = HULL__AGENT__V1__START_PROCESS_REQUEST__INIT;
	Hull__Agent__V1__ContainerRequest cr = HULL__AGENT__V1__CONTAINER_REQUEST__INIT;
	_cleanup_free_ char *what = NULL;
	struct stream_config sc = {0};
	int r;

	if ((r = need_ready(pod, err)) < 0)
		return r;
	if (p->started)
		return hull_error_set(err, -EALREADY, "'%s' already started",
		                      p->exec_id[0] ? p->exec_id : p->c->id);
	if (p->exec_id[0] ? !p->created : !p->c->in_guest)
		return hull_error_set(err, -EBUSY, "'%s' is not created yet",
		                      p->exec_id[0] ? p->exec_id : p->c->id);
	/* Attach before start, so not a byte is lost. */
	what = p->exec_id[0] ? xasprintf("container '%s' exec '%s'", p->c->id, p->exec_id)
	                     : xasprintf("container '%s'", p->c->id);
	sc.what = what;
	sc.sink[1] = TAKE_PTR(p->sink[1]);
	sc.sink[2] = TAKE_PTR(p->sink[2]);
	sc.source = TAKE_FD(p->in_fd);
	att.id = p->c->id;
	att.exec_id = p->exec_id;
	p->stream = stream_open(pod->loop, pod->sb->agent, "AttachStdio", &att.base, &sc,
	                        &proc_stream_ops, p);
	if (!p->stream)
		return hull_error_set(err, -ECONNRESET, "attach stdio: the agent channel is gone");
	p->started = true;
	cr.id = sp.id = p->c->id;
	cr.exec_id = sp.exec_id = p->exec_id;
	r = p->exec_id[0] ? op_send(pod, OP_START, "StartProcess", &sp.base, CALL_TIMEOUT_MS, p->c,
	                            p, done, NULL, userdata, err)
	                  : op_send(pod, OP_START, "StartContainer", &cr.base, CALL_TIMEOUT_MS,
	                            p->c, p, done, NULL, userdata, err);
	if (r >= 0)
		r = op_send(pod, OP_WAIT, "WaitProcess", &cr.base, 0, p->c, p, NULL, NULL, NULL,
		            err);
	return r;
}

void pod_proc_close_stdin(struct pod_proc *p)
{
	if (p->stream)
		stream_close_input(p->stream);
	else if (p->in_fd >= 0) {
		close(p->in_fd); /* not started: it starts with stdin closed */
		p->in_fd = -1;
	}
}

int pod_signal(struct pod_proc *p, int sig, pod_done_fn done, void *userdata,
               struct hull_error **err)
{
	Hull__Agent__V1__SignalRequest sr = HULL__AGENT__V1__SIGNAL_REQUEST__INIT;
	int r;

	if (sig <= 0 || sig >= 65)
		return hull_error_set(err, -EINVAL, "signal %d out of range", sig);
	if (p->exited || !p->started)
		return hull_error_set(err, -ENOENT, "process already finished");
	if ((r = need_ready(p->c->pod, err)) < 0)
		return r;
	sr.id = p->c->id;
	sr.exec_id = p->exec_id;
	sr.signal = (uint32_t)sig;
	return op_send(p->c->pod, OP_SIGNAL, "SignalProcess", &sr.base, CALL_TIMEOUT_MS, p->c, p,
	               done, NULL, userdata, err);
}

int pod_call(struct pod *pod, const char *method, const ProtobufCMessage *msg, pod_reply_fn fn,
             void *userdata, struct hull_error **err)
{
	int r = need_ready(pod, err);
	if (r < 0)
		return r;
	return op_send(pod, OP_CALL, method, msg, CALL_TIMEOUT_MS, NULL, NULL, NULL, fn, userdata,
	               err);
}

struct stream *pod_port_forward(struct pod *pod, unsigned port, int fd,
                                const struct stream_ops *ops, void *userdata,
                                struct hull_error **err)
{
	Hull__Agent__V1__PortForwardRequest req = HULL__AGENT__V1__PORT_FORWARD_REQUEST__INIT;
	_cleanup_free_ char *what = xasprintf("port-forward to %u", port);
	struct stream_config sc = {.what = what, .source = fd, .source_socket = true};
	struct stream *st;

	if (need_ready(pod, err) < 0)
		return NULL;
	req.port = port;
	/* The client's connection is both ends: the caller keeps it and closes it after
	 * done; we only shut its directions down. */
	sc.sink[1] = stream_sink_fd(fd, false);
	st = stream_open(pod->loop, pod->sb->agent, "PortForward", &req.base, &sc, ops, userdata);
	if (!st) {
		hull_error_set(err, -ECONNRESET, "port-forward: the agent channel is gone");
		return NULL;
	}
	/* Ours to end when the VM goes; the caller's to free. */
	pod->forwards = xrealloc(pod->forwards, (pod->n_forwards + 1) * sizeof(*pod->forwards));
	pod->forwards[pod->n_forwards++] = st;
	return st;
}

void pod_port_forward_free(struct pod *pod, struct stream *st)
{
	for (size_t i = 0; i < pod->n_forwards; i++)
		if (pod->forwards[i] == st) {
			pod->forwards[i] = pod->forwards[--pod->n_forwards];
			break;
		}
	stream_free(st);
}
