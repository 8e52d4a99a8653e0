/* SPDX-License-Identifier: MIT */
/*
 * Containers and their processes in the agent: the registry, and each process's way
 * from clone() to its exit, driven by the event loop. CreateContainer, ExecProcess and
 * Start* keep their calls and answer them when the child reports on its setup socket
 * (container_step()): nothing here waits for a child, so a setup that hangs holds up
 * only its own caller. The SIGCHLD reaper collects every child, helpers included;
 * failure paths only kill.
 */
#include "agent.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "log.h"
#include "util.h"

#define MAX_WAITERS 64

struct agent_container *agent_container_find(struct agent *a, const char *id)
{
	for (struct agent_container *c = a->containers; c; c = c->next)
		if (strcmp(c->id, id) == 0)
			return c;
	return NULL;
}

struct agent_process *agent_process_find(struct agent_container *c, const char *exec_id)
{
	for (struct agent_process *p = c->procs; p; p = p->next)
		if (strcmp(p->exec_id, exec_id) == 0)
			return p;
	return NULL;
}

bool agent_process_running(const struct agent_process *p)
{
	return (p->proc.phase == CONTAINER_STARTING || p->proc.phase == CONTAINER_RUNNING) &&
	       !p->proc.exited;
}

struct agent_process *agent_process_new(struct agent_container *c, const char *exec_id)
{
	struct agent_process *p = xcalloc(1, sizeof(*p)), **pp;

	p->container = c;
	p->exec_id = xstrdup(exec_id);
	container_process_init(&p->proc);
	/* The init stays first: execs are appended. */
	for (pp = &c->procs; *pp; pp = &(*pp)->next)
		;
	*pp = p;
	return p;
}

static void process_unlink(struct agent_process *p)
{
	for (struct agent_process **pp = &p->container->procs; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			return;
		}
}

/* Answer a kept call and forget it (before answering: the answer may run callbacks). */
static void call_answer(struct ttrpc_call **call, int r, const struct hull_error *err,
                        const ProtobufCMessage *msg)
{
	struct ttrpc_call *c = TAKE_PTR(*call);
	if (c)
		ttrpc_call_reply(c, r, err, msg);
}

static void cancel_calls(struct agent_process *p, const char *why)
{
	const struct hull_error e = {.code = -ECANCELED, .msg = (char *)why};

	call_answer(&p->setup_call, -ECANCELED, &e, NULL);
	call_answer(&p->attach_call, -ECANCELED, &e, NULL);
	while (p->n_wait_calls > 0)
		ttrpc_call_reply(p->wait_calls[--p->n_wait_calls], -ECANCELED, &e, NULL);
}

/* Its calls answered, its fds out of the loop and closed, its process killed unless
 * reaped; the record keeps the pids for the reaper. */
static void process_stop(struct agent_process *p, const char *why)
{
	cancel_calls(p, why);
	agent_stdio_close(p);
	if (p->proc.sync_fd >= 0)
		event_del(p->container->agent->loop, p->proc.sync_fd);
	container_process_done(&p->proc);
}

void agent_process_free(struct agent_process *p)
{
	process_stop(p, "container removed");
	buf_release(&p->stdin_buf);
	free(p->wait_calls);
	free(p->exec_id);
	free(p);
}

static void container_free(struct agent_container *c)
{
	while (c->procs) {
		struct agent_process *p = c->procs;
		c->procs = p->next;
		agent_process_free(p);
	}
	container_spec_done(&c->spec);
	free(c->id);
	free(c);
}

static bool process_gone(const struct agent_process *p)
{
	return (p->proc.pid == 0 || p->proc.exited) && p->proc.helper == 0;
}

/* Free the removed containers whose processes are all reaped; their cgroups (empty
 * now) go with them unless a new container took the id. */
static void removed_sweep(struct agent *a)
{
	struct agent_container **pp = &a->removed;

	while (*pp) {
		struct agent_container *c = *pp;
		bool gone = true;
		for (struct agent_process *p = c->procs; p && gone; p = p->next)
			gone = process_gone(p);
		if (!gone) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		if (!agent_container_find(a, c->id))
			container_cgroup_remove(c->id);
		container_free(c);
	}
}

/* Out of the registry: its calls answered CANCELLED, its processes killed. The record
 * waits in a->removed until the reaper collected them, then its cgroup is removed
 * (rmdir fails while a process is in it). */
static void container_retire(struct agent_container *c, const char *why)
{
	struct agent *a = c->agent;

	for (struct agent_container **pp = &a->containers; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	c->next = a->removed;
	a->removed = c;
	for (struct agent_process *p = c->procs; p; p = p->next)
		process_stop(p, why);
	/* Its mounts live in the child's namespace: the directories can go now. */
	container_cleanup_dir(c->id);
	removed_sweep(a);
}

int agent_container_remove(struct agent_container *c, struct hull_error **err)
{
	if (agent_process_running(c->procs))
		return hull_error_set(err, -EBUSY, "container '%s' is running", c->id);
	/* A container still being set up is killed here; the reaper collects it. */
	container_retire(c, "container removed");
	return 0;
}

static void on_sync(struct event_loop *loop, int fd, uint32_t revents, void *userdata);

static void watch_sync(struct agent_process *p)
{
	struct agent *a = p->container->agent;
	if (p->proc.sync_fd >= 0 && event_add(a->loop, p->proc.sync_fd, EPOLLIN, on_sync, p) < 0)
		log_error("container '%s': cannot watch its setup socket", p->container->id);
}

static void wait_reply(struct agent_process *p, struct ttrpc_call *call)
{
	Hull__Agent__V1__WaitResponse w = HULL__AGENT__V1__WAIT_RESPONSE__INIT;
	if (WIFSIGNALED(p->wait_status))
		w.signal = WTERMSIG(p->wait_status);
	else
		w.exit_code = WEXITSTATUS(p->wait_status);
	w.oom_killed = container_cgroup_oom_killed(p->container->id);
	ttrpc_call_reply(call, 0, NULL, &w.base);
}

int agent_process_wait(struct agent_process *p, struct ttrpc_call *call, struct hull_error **err)
{
	if (p->proc.exited) {
		wait_reply(p, call);
		return 1;
	}
	if (p->n_wait_calls >= MAX_WAITERS)
		return hull_error_set(err, -EMFILE, "too many waiters");
	p->wait_calls = xrealloc(p->wait_calls, (p->n_wait_calls + 1) * sizeof(*p->wait_calls));
	p->wait_calls[p->n_wait_calls++] = call;
	return 1;
}

/* The step failed: r and err from the child's report (or the engine). */
static void step_failed(struct agent_process *p, enum container_phase was, int r,
                        struct hull_error **err)
{
	struct agent_container *c = p->container;
	bool init = p == c->procs;

	if (was == CONTAINER_STARTING) {
		/* ENOEXEC and friends are "cannot execute" to the user, as EACCES. The
		 * process exits by itself (126, 127) and its waiters hear that. */
		if (r != -ENOENT && r != -EACCES && (*err)->msg &&
		    strncmp((*err)->msg, "exec", 4) == 0)
			(*err)->code = r = -EACCES;
		hull_error_prefix(err, "start container '%s'", c->id);
		log_info("%s", (*err)->msg);
		call_answer(&p->setup_call, r, *err, NULL);
		return;
	}
	hull_error_prefix(err, init ? "create container '%s'" : "exec in container '%s'", c->id);
	log_info("%s", (*err)->msg);
	call_answer(&p->setup_call, r, *err, NULL);
	if (init) {
		container_retire(c, "container setup failed");
	} else {
		process_stop(p, "exec setup failed");
		process_unlink(p);
		agent_process_free(p);
	}
}

static void on_sync(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	_cleanup_error_ struct hull_error *err = NULL;
	struct agent_process *p = userdata;
	enum container_phase was = p->proc.phase;
	int r;

	(void)revents;
	/* Out of the loop first: the step may close the socket. */
	event_del(loop, fd);
	r = container_step(&p->proc, &err);
	if (r == 0) {
		watch_sync(p);
		return;
	}
	if (r < 0) {
		if (!err)
			hull_error_set_errno(&err, r, "container setup");
		step_failed(p, was, r, &err);
		return;
	}
	if (p->proc.phase == CONTAINER_CREATED) {
		Hull__Agent__V1__Empty e = HULL__AGENT__V1__EMPTY__INIT;
		agent_stdio_ready(p);
		log_info("container '%s' process '%s' created, pid %d", p->container->id,
		         p->exec_id, (int)p->proc.pid);
		call_answer(&p->setup_call, 0, NULL, &e.base);
	} else if (p->proc.phase == CONTAINER_RUNNING) {
		Hull__Agent__V1__StartContainerResponse resp =
		    HULL__AGENT__V1__START_CONTAINER_RESPONSE__INIT;
		resp.pid = (uint32_t)p->proc.pid;
		call_answer(&p->setup_call, 0, NULL, &resp.base);
	}
}

int agent_container_create(struct agent *a, struct container_spec *spec, struct ttrpc_call *call,
                           struct hull_error **err)
{
	struct agent_container *c;
	struct agent_process *p;
	int r;

	if (agent_container_find(a, spec->id)) {
		r = hull_error_set(err, -EEXIST, "container '%s' exists", spec->id);
		container_spec_done(spec);
		return r;
	}
	c = xcalloc(1, sizeof(*c));
	c->agent = a;
	c->id = xstrdup(spec->id);
	c->spec = *spec;
	*spec = (struct container_spec){0};
	p = agent_process_new(c, "");
	/* Listed before the child exists: a second create with this id is refused, and
	 * RemoveContainer finds (and kills) it while it is being set up. */
	c->next = a->containers;
	a->containers = c;
	r = container_create(&c->spec, &p->proc, err);
	if (r < 0) {
		hull_error_prefix(err, "create container '%s'", c->id);
		container_retire(c, "container setup failed");
		return r;
	}
	log_info("container '%s': setting up, pid %d", c->id, (int)p->proc.pid);
	p->setup_call = call;
	watch_sync(p);
	return 1;
}

int agent_process_exec(struct agent_container *c, const char *exec_id, const char *process_json,
                       size_t len, struct ttrpc_call *call, struct hull_error **err)
{
	struct agent_process *init = c->procs, *p;
	int r;

	if (agent_process_find(c, exec_id))
		return hull_error_set(err, -EEXIST, "container '%s': exec '%s' exists", c->id,
		                      exec_id);
	if (init->proc.phase != CONTAINER_RUNNING || init->proc.exited)
		return hull_error_set(err, -EBUSY, "container '%s' is not running", c->id);
	p = agent_process_new(c, exec_id);
	r = container_exec(&c->spec, init->proc.pid, process_json, len, &p->proc, err);
	if (r < 0) {
		process_unlink(p);
		agent_process_free(p);
		return hull_error_prefix(err, "exec in container '%s'", c->id);
	}
	p->setup_call = call;
	watch_sync(p);
	return 1;
}

int agent_process_start(struct agent_process *p, struct ttrpc_call *call, struct hull_error **err)
{
	int r = container_start(&p->proc, err);
	if (r < 0)
		return hull_error_prefix(err, "start container '%s'", p->container->id);
	p->setup_call = call;
	watch_sync(p);
	return 1;
}

/* pid was one of the processes in list: record its status, answer its waiters. */
static bool reaped_in(struct agent_container *list, pid_t pid, int status)
{
	for (struct agent_container *c = list; c; c = c->next)
		for (struct agent_process *p = c->procs; p; p = p->next) {
			if (!container_process_reaped(&p->proc, pid))
				continue;
			p->wait_status = status;
			log_info("container '%s' process '%s' exited, status 0x%x", c->id,
			         p->exec_id, status);
			while (p->n_wait_calls > 0)
				wait_reply(p, p->wait_calls[--p->n_wait_calls]);
			return true;
		}
	return false;
}

void agent_service_reap(struct agent *a)
{
	int status;
	pid_t pid;

	/* Every child: containers' inits and execs, exec helpers, children that failed
	 * their setup. Pids of no record (a helper's) are just collected. */
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		if (!reaped_in(a->containers, pid, status))
			(void)reaped_in(a->removed, pid, status);
	removed_sweep(a);
}

void agent_free_containers(struct agent *a)
{
	while (a->forwards.procs) {
		struct agent_process *p = a->forwards.procs;
		a->forwards.procs = p->next;
		agent_process_free(p);
	}
	while (a->containers) {
		struct agent_container *c = a->containers;
		a->containers = c->next;
		container_cleanup_dir(c->id);
		container_cgroup_remove(c->id);
		container_free(c);
	}
	while (a->removed) {
		struct agent_container *c = a->removed;
		a->removed = c->next;
		container_free(c);
	}
}
