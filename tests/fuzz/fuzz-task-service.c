/* SPDX-License-Identifier: MIT */
/* containerd's Task requests as they reach the shim (or hull run -d): through the ttrpc
 * server into the Task service's handlers, over a pod with a running container c1 and a
 * started exec e1, whose agent is a scripted peer in the same loop that answers every
 * call UNIMPLEMENTED (a ttrpc server without methods). Host mounts are stubbed
 * (fuzz-mount-stubs.c): nothing is mounted, nothing booted. Each input is turned
 * through the loop with zero timeouts until it is idle: no threads, no sleeps. */
#include <sys/socket.h>

#include "log.h"
#include "pod-internal.h"
#include "task-service.h"
#include "util.h"

static struct event_loop *loop;
static struct task_service *ts;
static struct ttrpc_server *srv, *agent;

static const struct task_service_ops ops = {0};

static void setup_once(void)
{
	const struct ttrpc_method *methods;
	size_t n;
	int sv[2];

	if (loop)
		return;
	log_setup("fuzz", LOG_LEVEL_ERROR);
	loop = event_loop_new();
	ts = task_service_new(loop, &ops, NULL);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	agent = ttrpc_server_new(loop, NULL, 0, NULL);
	if (ttrpc_server_add_fd(agent, sv[1], 0) < 0)
		abort();
	pod_adopt(task_service_pod(ts), sandbox_fake(loop, sv[0], "/nonexistent/hull-fuzz"));
	methods = task_service_methods(&n);
	srv = ttrpc_server_new(loop, methods, n, ts);
}

static struct pod_proc *proc_add(struct pod_ctr *c, const char *exec_id, uint32_t pid)
{
	struct pod_proc *p = xcalloc(1, sizeof(*p)), **pp;
	p->c = c;
	p->exec_id = xstrdup(exec_id);
	p->in_fd = -1;
	p->created = p->started = true;
	p->pid = pid;
	for (pp = &c->procs; *pp; pp = &(*pp)->next)
		;
	*pp = p;
	return p;
}

/* A running c1 with a started exec e1, as after Create and Start (made anew when an
 * input deleted them). */
static void reset_pod(void)
{
	struct pod *pod = task_service_pod(ts);
	struct pod_ctr *c = pod_ctr_find(pod, "c1");

	if (!c) {
		c = xcalloc(1, sizeof(*c));
		c->pod = pod;
		c->id = xstrdup("c1");
		c->in_guest = true;
		c->next = pod->ctrs;
		pod->ctrs = c;
		proc_add(c, "", 1);
		task_service_adopt(ts, c, "/nonexistent/bundle");
	}
	if (!pod_proc_find(c, "e1"))
		proc_add(c, "e1", 2);
	c->in_guest = true;
}

/* What the last input left waiting (Wait calls) is answered, as if the processes had
 * ended, so nothing piles up over millions of inputs; then they run again. */
static void settle_pod(void)
{
	struct pod *pod = task_service_pod(ts);
	for (struct pod_ctr *c = pod->ctrs; c; c = c->next)
		for (struct pod_proc *p = c->procs; p; p = p->next) {
			p->exited = true;
			pod->sink->exited(p, pod->userdata);
			p->exited = false;
			free(p->why);
			p->why = NULL;
		}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];

	if (size > 60000)
		return 0;
	setup_once();
	reset_pod();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	(void)write_all(sv[1], data, size);
	shutdown(sv[1], SHUT_WR);
	if (ttrpc_server_add_fd(srv, sv[0], 0) == 0)
		/* Request -> handler -> agent call -> the scripted answer -> reply: a few
		 * rounds per call, all without waiting. */
		for (int i = 0; i < 64; i++)
			if (event_loop_once(loop, 0) < 0)
				break;
	close(sv[1]);
	for (int i = 0; i < 4; i++)
		(void)event_loop_once(loop, 0);
	settle_pod();
	return 0;
}
