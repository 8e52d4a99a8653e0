/* SPDX-License-Identifier: MIT */
/* containerd's Task requests as they reach the shim: through the ttrpc server into the
 * shim's handlers (shim/shim-service.c, built into this file to reach its state), with
 * a pod of one container and one exec, and a scripted agent on the other side that
 * answers every call with NOT_FOUND (so sync calls return and callbacks run). Host
 * mounts are stubbed (fuzz-shim-stubs.c): nothing is mounted, nothing booted. */
#include "../../shim/shim-service.c"

#include <pthread.h>

#include "ttrpc-msg.h"

static int agent_peer = -1;

/* The scripted agent: a NOT_FOUND answer to every request, DATA frames dropped. */
static void *fake_agent(void *arg)
{
	struct ttrpc_decoder d = {0};
	struct ttrpc_frame f;
	uint8_t tmp[65536];
	ssize_t n;
	(void)arg;

	while ((n = read(agent_peer, tmp, sizeof(tmp))) > 0) {
		struct buf out = {0};
		ttrpc_decoder_feed(&d, tmp, (size_t)n);
		while (ttrpc_decoder_next(&d, &f) == 1)
			if (f.type == TTRPC_TYPE_REQUEST)
				ttrpc_response_append(&out, f.stream_id, TTRPC_NOT_FOUND, "fuzz",
				                      NULL);
		if (out.len)
			(void)write_all(agent_peer, buf_head(&out), out.len);
		buf_release(&out);
	}
	ttrpc_decoder_release(&d);
	return NULL;
}

static struct shim shim;
static struct shim_args args = {.namespace = "fuzz", .id = "c1"};

static void setup_once(void)
{
	static struct sandbox sb;
	pthread_t t;
	int sv[2];

	if (S)
		return;
	log_setup("fuzz", LOG_LEVEL_ERROR);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	agent_peer = sv[1];
	pthread_create(&t, NULL, fake_agent, NULL);
	pthread_detach(t);
	sb.id = (char *)"fuzz";
	sb.state_dir = (char *)"/nonexistent/hull-fuzz";
	sb.shared_dir = (char *)"/nonexistent/hull-fuzz/shared";
	sb.ac = agent_client_new(sv[0]);
	shim.a = &args;
	shim.sig_fd = -1;
	shim.loop = event_loop_new();
	shim.srv = ttrpc_server_new(shim.loop, methods, ELEMENTSOF(methods), &shim);
	shim.sb = &sb;
	shim_config_defaults(&shim.cfg);
	S = &shim;
	event_add(S->loop, agent_client_fd(sb.ac), EPOLLIN, on_agent, NULL);
}

/* A running container c1 with a started exec e1, as after Create and Start. */
static void reset_pod(void)
{
	while (S->ctrs) {
		struct ctr *c = S->ctrs;
		S->ctrs = c->next;
		ctr_free(c);
	}
	struct ctr *c = xcalloc(1, sizeof(*c));
	c->id = xstrdup("c1");
	c->bundle = xstrdup("/nonexistent/bundle");
	c->procs = proc_new(c, "", false, NULL, NULL, NULL);
	c->procs->started = true;
	c->procs->pid = 1;
	struct proc *e = proc_new(c, "e1", false, NULL, NULL, NULL);
	e->started = true;
	e->pid = 2;
	c->procs->next = e;
	S->ctrs = c;
	S->vm_gone = false;
	S->shutdown = false;
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
	if (ttrpc_server_add_fd(S->srv, sv[0], 0) == 0)
		for (int i = 0; i < 48; i++)
			if (event_loop_once(S->loop, i < 32 ? 0 : 2) < 0)
				break;
	close(sv[1]);
	/* The connection is gone: pending waiters are answered into the void. */
	for (int i = 0; i < 4; i++)
		(void)event_loop_once(S->loop, 0);
	while (S->waiters) {
		struct waiter *w = S->waiters;
		S->waiters = w->next;
		ttrpc_call_reply(w->call, -ECANCELED, NULL, NULL);
		free(w->id);
		free(w->exec_id);
		free(w);
	}
	return 0;
}
