/* SPDX-License-Identifier: MIT */
/* agentctl: boots one sandbox (real QEMU, real agent) through the pod core and drives it
 * from a script, for integration tests of what hull run alone cannot show: several
 * containers in one VM (pods), exec, containers that come and go, port-forward.
 *
 *   agentctl --rootfs DIR SCRIPT
 *
 * Every container's root is DIR, overlaid (the guest's writes never reach it).
 *
 * Script lines (words split on spaces; '#' comments):
 *   create-bg ID CONFIG.json  the same without waiting: "created ID" (or "error LINE:
 *                           message") is printed whenever the answer comes
 *   check                   Check; prints "check ok"
 *   create ID CONFIG.json   create a container; "{pid:OTHER}" in the file becomes
 *                           OTHER's pid
 *   start ID                attach its stdio, start it; prints "started ID"
 *   exec ID EXEC PROC.json  an exec with an OCI process object, attached and started
 *   wait ID [EXEC]          wait for exit; prints its output ("ID[/EXEC]> line") and
 *                           "exit ID[/EXEC] STATUS"
 *   signal ID SIG           signal the container's init
 *   remove ID               delete the container
 *   stats ID                prints "stats ID mem_limit=N pids=N pids_limit=N cpu=C mem=M"
 *                           (C, M: "used" or "none")
 *   update ID RES.json      UpdateContainer with an OCI linux.resources object
 *   pause ID / resume ID    PauseContainer / ResumeContainer
 *   ps ID                   prints "ps ID N" (how many processes it has)
 *   forward PORT FILE       port-forward: FILE's bytes to PORT on the guest's loopback,
 *                           then half-close; prints the reply ("forward> line", up to
 *                           a NUL), "forward bytes N" and "forward done" (or "error")
 *   forward-cancel PORT     PortForward to PORT, cancelled at once: "forward cancelled"
 *   sleep MS                the loop keeps turning meanwhile
 * A failing call prints "error LINE: message" and the script goes on. Each line runs to
 * its end on the event loop before the next one starts; a line the guest does not
 * answer within LINE_TIMEOUT_MS fails ("timed out") instead of hanging the test. When
 * the VM is lost the tool says so and exits 1. */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "agent.pb-c.h"
#include "event.h"
#include "log.h"
#include "pod.h"
#include "util.h"

#define MAX_PROCS 16
#ifndef LINE_TIMEOUT_MS /* -D for testing the tool's own timeouts */
#define LINE_TIMEOUT_MS 120000
#endif
#define STOP_TIMEOUT_MS 5000

/* What the script knows of a process, by name; kept after its container is removed (a
 * later {pid:ID} still names it). The pod's own objects are looked up by id each time. */
struct proc {
	char name[128]; /* ID or ID/EXEC */
	bool exited, drained;
	int drain_r;
	char *drain_msg;
	struct buf out; /* stdout and stderr, in the order they came */
	uint32_t pid;
};

/* One operation of a line. Never freed before the pod: a completion that comes after
 * the line gave up on it still lands here. */
struct op {
	bool done;
	int r;
	char *msg;
	struct buf reply;
	struct op *next;
};

static struct proc procs[MAX_PROCS];
static size_t n_procs;
static struct op *ops;
static struct event_loop *loop;
static struct pod *pod;
static const char *rootfs;
static bool booted, lost;
static int boot_r;
static char *boot_msg, *lost_msg;

static struct proc *proc_get(const char *id, const char *exec_id)
{
	char name[128];
	snprintf(name, sizeof(name), "%s%s%s", id, exec_id ? "/" : "", exec_id ? exec_id : "");
	for (size_t i = 0; i < n_procs; i++)
		if (strcmp(procs[i].name, name) == 0)
			return &procs[i];
	if (n_procs == MAX_PROCS)
		abort();
	struct proc *p = &procs[n_procs++];
	snprintf(p->name, sizeof(p->name), "%s", name);
	return p;
}

/* A new process under an old name: forget what the old one did. */
static void proc_reset(struct proc *p)
{
	p->exited = p->drained = false;
	p->drain_r = 0;
	free(p->drain_msg);
	p->drain_msg = NULL;
	buf_release(&p->out);
	p->out = (struct buf){0};
	p->pid = 0;
}

/* ---- the process output sink: everything in memory, printed by "wait" ---------------- */

struct mem_sink {
	struct stream_sink base;
	struct proc *p;
};

static ssize_t mem_sink_write(struct stream_sink *s, const void *data, size_t n)
{
	struct mem_sink *m = (struct mem_sink *)s;
	buf_append(&m->p->out, data, n);
	return (ssize_t)n;
}

static void mem_sink_close(struct stream_sink *s)
{
	free(s);
}

static struct stream_sink *mem_sink_new(struct proc *p)
{
	struct mem_sink *m = xcalloc(1, sizeof(*m));
	m->base.write = mem_sink_write;
	m->base.close = mem_sink_close;
	m->base.fd = -1; /* never -EAGAIN */
	m->p = p;
	return &m->base;
}

/* ---- what the pod tells us -------------------------------------------------------------- */

static void on_booted(struct pod *pd, int r, const struct hull_error *err, void *userdata)
{
	(void)pd, (void)userdata;
	booted = true;
	boot_r = r;
	if (r < 0)
		boot_msg = xstrdup(err ? err->msg : strerror(-r));
}

static void on_exited(struct pod_proc *pp, void *userdata)
{
	struct proc *p = pod_proc_data(pp);
	(void)userdata;
	if (p)
		p->exited = true;
}

static void on_drained(struct pod_proc *pp, int r, const struct hull_error *err, void *userdata)
{
	struct proc *p = pod_proc_data(pp);
	(void)userdata;
	if (!p)
		return;
	p->drained = true;
	p->drain_r = r;
	if (r < 0)
		p->drain_msg = xstrdup(err ? err->msg : strerror(-r));
}

static void on_lost(struct pod *pd, const struct hull_error *err, void *userdata)
{
	(void)pd, (void)userdata;
	lost = true;
	lost_msg = xstrdup(err ? err->msg : "?");
}

static const struct pod_sink sink = {
    .booted = on_booted,
    .exited = on_exited,
    .drained = on_drained,
    .lost = on_lost,
};

/* ---- turning the loop ------------------------------------------------------------------- */

static uint64_t now_ms(void)
{
	return sandbox_now_ns() / 1000000u;
}

/* Turn the loop until cond(userdata) holds (0) or timeout_ms passed (-ETIMEDOUT). cond
 * NULL: just turn it for timeout_ms. */
static int turn_until(bool (*cond)(void *), void *userdata, uint64_t timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;

	while (!cond || !cond(userdata)) {
		uint64_t now = now_ms();
		int r;
		if (now >= deadline)
			return -ETIMEDOUT;
		r = event_loop_once(loop, (int)MIN(deadline - now, (uint64_t)INT_MAX));
		if (r < 0 && r != -EINTR) {
			printf("error: event loop: %s\n", strerror(-r));
			exit(1);
		}
	}
	return 0;
}

static bool op_is_done(void *userdata)
{
	return ((struct op *)userdata)->done;
}

static struct op *op_new(void)
{
	struct op *op = xcalloc(1, sizeof(*op));
	op->next = ops;
	ops = op;
	return op;
}

static void ops_free(void)
{
	while (ops) {
		struct op *op = ops;
		ops = op->next;
		free(op->msg);
		buf_release(&op->reply);
		free(op);
	}
}

static void op_done(void *userdata, int r, const struct hull_error *err)
{
	struct op *op = userdata;
	op->done = true;
	op->r = r;
	if (r < 0)
		op->msg = xstrdup(err && err->msg ? err->msg : strerror(-r));
}

static void op_reply(void *userdata, int r, const struct hull_error *err, const uint8_t *payload,
                     size_t len)
{
	struct op *op = userdata;
	op_done(userdata, r, err);
	if (r == 0 && len)
		buf_append(&op->reply, payload, len);
}

/* Print "error LINE: message" for a call refused at once. Returns -1. */
static int fail(const char *line, struct hull_error *err)
{
	printf("error %s: %s\n", line, err ? err->msg : "failed");
	hull_error_free(err);
	return -1;
}

/* Wait for op: 0 when it succeeded, -1 after printing why not. */
static int op_wait(const char *line, struct op *op)
{
	if (turn_until(op_is_done, op, LINE_TIMEOUT_MS) < 0) {
		printf("error %s: timed out after %d s\n", line, LINE_TIMEOUT_MS / 1000);
		return -1;
	}
	if (op->r < 0) {
		printf("error %s: %s\n", line, op->msg);
		return -1;
	}
	return 0;
}

/* ---- script lines ----------------------------------------------------------------------- */

static char *read_config(const char *path)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char *text = NULL;
	size_t cap = 0;
	if (!f || getdelim(&text, &cap, '\0', f) < 0) {
		free(text);
		return NULL;
	}
	/* {pid:ID} -> the agent-side pid of a started container. */
	for (char *p; (p = strstr(text, "{pid:"));) {
		char *end = strchr(p, '}');
		if (!end)
			break;
		*end = '\0';
		struct proc *pr = proc_get(p + 5, NULL);
		char *next = xasprintf("%.*s%u%s", (int)(p - text), text, pr->pid, end + 1);
		free(text);
		text = next;
	}
	return text;
}

static struct pod_ctr *ctr_get(const char *line, const char *id)
{
	struct pod_ctr *c = pod_ctr_find(pod, id);
	if (!c)
		printf("error %s: no container '%s'\n", line, id);
	return c;
}

/* Attach p's stdio to the script's memory and start it. */
static int attach_start(const char *line, struct proc *p, struct pod_proc *pp)
{
	struct hull_error *err = NULL;
	struct op *op = op_new();

	pod_proc_set_data(pp, p);
	pod_proc_set_stdio(pp, mem_sink_new(p), mem_sink_new(p), -1);
	if (pod_start(pp, op_done, op, &err) < 0)
		return fail(line, err);
	if (op_wait(line, op) < 0)
		return -1;
	p->pid = pod_proc_pid(pp);
	return 0;
}

/* create-bg: the answer is printed when it comes, whatever line the script is at. */
struct bg_create {
	char *line, *id;
};

static void bg_created(void *userdata, int r, const struct hull_error *err)
{
	struct bg_create *bg = userdata;
	if (r < 0)
		printf("error %s: %s\n", bg->line, err && err->msg ? err->msg : strerror(-r));
	else
		printf("created %s\n", bg->id);
	fflush(stdout);
	free(bg->line);
	free(bg->id);
	free(bg);
}

static void do_check(const char *line)
{
	struct hull_error *err = NULL;
	struct op *op = op_new();
	Hull__Agent__V1__CheckRequest cr = HULL__AGENT__V1__CHECK_REQUEST__INIT;

	if (pod_call(pod, "Check", &cr.base, op_reply, op, &err) < 0) {
		fail(line, err);
		return;
	}
	if (op_wait(line, op) == 0)
		printf("check ok\n");
}

static void do_create(const char *line, const char *id, const char *file, bool bg)
{
	_cleanup_free_ char *cfg = read_config(file);
	struct hull_error *err = NULL;
	struct pod_ctr_config cc = {.id = id, .rootfs = rootfs, .root_overlay = true};
	struct pod_ctr *c;
	struct op *op;

	if (!cfg) {
		printf("error %s: cannot read config\n", line);
		return;
	}
	cc.config = cfg;
	cc.config_len = strlen(cfg);
	if (bg) {
		struct bg_create *b = xcalloc(1, sizeof(*b));
		b->line = xstrdup(line);
		b->id = xstrdup(id);
		if (pod_create(pod, &cc, bg_created, b, &c, &err) < 0) {
			free(b->line);
			free(b->id);
			free(b);
			fail(line, err);
			return;
		}
		proc_reset(proc_get(id, NULL));
		return;
	}
	op = op_new();
	if (pod_create(pod, &cc, op_done, op, &c, &err) < 0) {
		fail(line, err);
		return;
	}
	proc_reset(proc_get(id, NULL));
	(void)op_wait(line, op);
}

static void do_start(const char *line, const char *id)
{
	struct pod_ctr *c = ctr_get(line, id);
	struct proc *p = proc_get(id, NULL);

	if (c && attach_start(line, p, pod_ctr_init(c)) == 0)
		printf("started %s\n", p->name);
}

static void do_exec(const char *line, const char *id, const char *exec_id, const char *file)
{
	_cleanup_free_ char *cfg = read_config(file);
	struct pod_ctr *c = ctr_get(line, id);
	struct hull_error *err = NULL;
	struct pod_proc *pp;
	struct op *op;

	if (!c)
		return;
	if (!cfg) {
		printf("error %s: cannot read process\n", line);
		return;
	}
	op = op_new();
	if (pod_exec(c, exec_id, cfg, strlen(cfg), false, op_done, op, &pp, &err) < 0) {
		fail(line, err);
		return;
	}
	if (op_wait(line, op) < 0)
		return;
	proc_reset(proc_get(id, exec_id));
	(void)attach_start(line, proc_get(id, exec_id), pp);
}

static bool proc_is_over(void *userdata)
{
	struct proc *p = userdata;
	return p->exited && p->drained;
}

static void do_wait(const char *id, const char *exec_id)
{
	struct proc *p = proc_get(id, exec_id);
	struct pod_ctr *c = pod_ctr_find(pod, id);
	struct pod_proc *pp = c ? pod_proc_find(c, exec_id ? exec_id : "") : NULL;
	const char *why = NULL;
	uint32_t status = 0;
	int code = -1;

	if (!pp || !pod_proc_started(pp) || pod_proc_data(pp) != p) {
		printf("error wait %s: %s\n", p->name, !pp ? "no such process" : "not started");
	} else if (turn_until(proc_is_over, p, LINE_TIMEOUT_MS) < 0) {
		printf("error wait %s: timed out after %d s\n", p->name, LINE_TIMEOUT_MS / 1000);
	} else {
		(void)pod_proc_exit(pp, &status, NULL, &why);
		if (why) /* the VM died, or the guest lied */
			printf("error wait %s: %s\n", p->name, why);
		else
			code = (int)status;
		if (p->drain_r < 0 && !why)
			printf("error wait %s: output: %s\n", p->name, p->drain_msg);
	}
	buf_append(&p->out, "", 1);
	for (char *s = (char *)buf_head(&p->out), *nl; *s; s = nl + 1) {
		nl = strchrnul(s, '\n');
		printf("%s> %.*s\n", p->name, (int)(nl - s), s);
		if (!*nl)
			break;
	}
	p->out.len--; /* the NUL: a later wait prints the same */
	printf("exit %s %d\n", p->name, code);
}

static void do_signal(const char *line, const char *id, int sig)
{
	struct pod_ctr *c = ctr_get(line, id);
	struct hull_error *err = NULL;
	struct op *op;

	if (!c)
		return;
	op = op_new();
	if (pod_signal(pod_ctr_init(c), sig, op_done, op, &err) < 0) {
		fail(line, err);
		return;
	}
	(void)op_wait(line, op);
}

static void do_remove(const char *line, const char *id)
{
	struct pod_ctr *c = ctr_get(line, id);
	struct hull_error *err = NULL;
	struct op *op;

	if (!c)
		return;
	op = op_new();
	if (pod_delete(c, op_done, op, &err) < 0) {
		fail(line, err);
		return;
	}
	(void)op_wait(line, op);
}

/* Any other agent call; with desc, *ret is its reply unpacked (free it with
 * protobuf_c_message_free_unpacked). 0, or -1 after printing why not. */
static int call(const char *line, const char *method, const ProtobufCMessage *msg,
                const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret)
{
	struct hull_error *err = NULL;
	struct op *op = op_new();

	if (pod_call(pod, method, msg, op_reply, op, &err) < 0)
		return fail(line, err);
	if (op_wait(line, op) < 0)
		return -1;
	if (!desc)
		return 0;
	*ret = protobuf_c_message_unpack(desc, NULL, op->reply.len, buf_head(&op->reply));
	if (!*ret) {
		printf("error %s: the guest's %s reply does not decode\n", line, method);
		return -1;
	}
	return 0;
}

static void do_stats(const char *line, const char *id)
{
	Hull__Agent__V1__ContainerRequest cr = HULL__AGENT__V1__CONTAINER_REQUEST__INIT;
	Hull__Agent__V1__StatsResponse *st;
	ProtobufCMessage *ret;

	cr.id = (char *)id;
	if (call(line, "StatsContainer", &cr.base, &hull__agent__v1__stats_response__descriptor,
	         &ret) < 0)
		return;
	st = (Hull__Agent__V1__StatsResponse *)ret;
	printf("stats %s mem_limit=%llu pids=%llu pids_limit=%llu cpu=%s mem=%s\n", id,
	       (unsigned long long)st->memory_limit, (unsigned long long)st->pids_current,
	       (unsigned long long)st->pids_limit, st->cpu_usage_usec ? "used" : "none",
	       st->memory_current ? "used" : "none");
	protobuf_c_message_free_unpacked(&st->base, NULL);
}

static void do_update(const char *line, const char *id, const char *file)
{
	Hull__Agent__V1__UpdateRequest req = HULL__AGENT__V1__UPDATE_REQUEST__INIT;
	_cleanup_free_ char *res = read_config(file);

	if (!res) {
		printf("error %s: cannot read resources\n", line);
		return;
	}
	req.id = (char *)id;
	req.resources.data = (uint8_t *)res;
	req.resources.len = strlen(res);
	(void)call(line, "UpdateContainer", &req.base, NULL, NULL);
}

static void do_pause(const char *line, const char *id, bool pause)
{
	Hull__Agent__V1__ContainerRequest cr = HULL__AGENT__V1__CONTAINER_REQUEST__INIT;

	cr.id = (char *)id;
	(void)call(line, pause ? "PauseContainer" : "ResumeContainer", &cr.base, NULL, NULL);
}

static void do_ps(const char *line, const char *id)
{
	Hull__Agent__V1__ContainerRequest cr = HULL__AGENT__V1__CONTAINER_REQUEST__INIT;
	ProtobufCMessage *ret;

	cr.id = (char *)id;
	if (call(line, "ListProcesses", &cr.base, &hull__agent__v1__pids_response__descriptor,
	         &ret) < 0)
		return;
	printf("ps %s %zu\n", id, ((Hull__Agent__V1__PidsResponse *)ret)->n_pids);
	protobuf_c_message_free_unpacked(ret, NULL);
}

/* ---- forward ---------------------------------------------------------------------------- */

static void on_fwd_done(struct stream *st, int r, const struct hull_error *err, void *userdata)
{
	(void)st;
	op_done(userdata, r, err);
}

static const struct stream_ops fwd_ops = {.done = on_fwd_done};

/* The client's end: read the reply as it comes (the stream waits for room). */
static void on_client(struct event_loop *lp, int fd, uint32_t revents, void *userdata)
{
	struct buf *got = userdata;
	ssize_t n = read(fd, buf_reserve(got, 65536), 65536);
	(void)revents;
	if (n > 0)
		buf_commit(got, (size_t)n);
	else if (n == 0 || errno != EAGAIN)
		event_mod(lp, fd, 0);
}

/* forward-cancel: a forward the host abandons while it is open (its client sends
 * nothing and stays): cancelled, the agent closes the guest's socket. */
static void do_forward_cancel(const char *line, unsigned port)
{
	struct hull_error *err = NULL;
	struct stream *st;
	struct op *op;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		printf("error %s: socketpair\n", line);
		return;
	}
	op = op_new();
	st = pod_port_forward(pod, port, sv[0], &fwd_ops, op, &err);
	if (!st) {
		close(sv[0]);
		close(sv[1]);
		fail(line, err);
		return;
	}
	/* The request and the cancel go in order on the channel: the agent has dialled
	 * when the cancel reaches it. */
	stream_cancel(st);
	if (turn_until(op_is_done, op, LINE_TIMEOUT_MS) < 0)
		printf("error %s: timed out after %d s\n", line, LINE_TIMEOUT_MS / 1000);
	else if (op->r == -ECANCELED)
		printf("forward cancelled\n");
	else
		printf("error %s: %s\n", line, op->r < 0 ? op->msg : "not cancelled");
	pod_port_forward_free(pod, st);
	close(sv[0]);
	close(sv[1]);
}

/* The port-forward API as a CRI server drives it: a socket per client connection (here
 * one end of a socketpair), the pod carrying its bytes on the loop. */
static void do_forward(const char *line, unsigned port, const char *file)
{
	_cleanup_free_ char *req = read_config(file);
	struct hull_error *err = NULL;
	struct buf got = {0};
	struct stream *st;
	struct op *op;
	int sv[2], r;

	if (!req || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		printf("error %s: cannot read request\n", line);
		return;
	}
	(void)write_all(sv[1], req, strlen(req));
	shutdown(sv[1], SHUT_WR);
	fd_set_nonblock(sv[1], 1);
	event_add(loop, sv[1], EPOLLIN, on_client, &got);
	op = op_new();
	st = pod_port_forward(pod, port, sv[0], &fwd_ops, op, &err);
	if (!st) {
		event_del(loop, sv[1]);
		close(sv[0]);
		close(sv[1]);
		fail(line, err);
		return;
	}
	r = turn_until(op_is_done, op, LINE_TIMEOUT_MS);
	/* Over (or given up on): our end closed, what it wrote is still to be read. */
	pod_port_forward_free(pod, st);
	st = NULL;
	event_del(loop, sv[1]);
	close(sv[0]);
	fd_set_nonblock(sv[1], 0);
	for (ssize_t n; (n = read(sv[1], buf_reserve(&got, 65536), 65536)) > 0;)
		buf_commit(&got, (size_t)n);
	close(sv[1]);
	printf("forward bytes %zu\n", got.len);
	buf_append(&got, "", 1);
	for (char *s = (char *)buf_head(&got), *nl; *s; s = nl + 1) {
		nl = strchrnul(s, '\n');
		printf("forward> %.*s\n", (int)(nl - s), s);
		if (!*nl)
			break;
	}
	if (r < 0)
		printf("error %s: timed out after %d s\n", line, LINE_TIMEOUT_MS / 1000);
	else if (op->r < 0)
		printf("error %s: %s\n", line, op->msg);
	else
		printf("forward done\n");
	buf_release(&got);
}

static void run_line(char *line)
{
	char *w[8] = {0}, *save = NULL, copy[1024];
	size_t n = 0;

	snprintf(copy, sizeof(copy), "%s", line);
	for (char *t = strtok_r(line, " \t\n", &save); t && n < 8;
	     t = strtok_r(NULL, " \t\n", &save))
		w[n++] = t;
	copy[strcspn(copy, "\n")] = '\0';
	if (n == 0 || w[0][0] == '#')
		return;
	if (strcmp(w[0], "create") == 0 && n == 3)
		do_create(copy, w[1], w[2], false);
	else if (strcmp(w[0], "create-bg") == 0 && n == 3)
		do_create(copy, w[1], w[2], true);
	else if (strcmp(w[0], "check") == 0 && n == 1)
		do_check(copy);
	else if (strcmp(w[0], "start") == 0 && n == 2)
		do_start(copy, w[1]);
	else if (strcmp(w[0], "exec") == 0 && n == 4)
		do_exec(copy, w[1], w[2], w[3]);
	else if (strcmp(w[0], "wait") == 0 && (n == 2 || n == 3))
		do_wait(w[1], n == 3 ? w[2] : NULL);
	else if (strcmp(w[0], "signal") == 0 && n == 3)
		do_signal(copy, w[1], atoi(w[2]));
	else if (strcmp(w[0], "remove") == 0 && n == 2)
		do_remove(copy, w[1]);
	else if (strcmp(w[0], "stats") == 0 && n == 2)
		do_stats(copy, w[1]);
	else if (strcmp(w[0], "update") == 0 && n == 3)
		do_update(copy, w[1], w[2]);
	else if ((strcmp(w[0], "pause") == 0 || strcmp(w[0], "resume") == 0) && n == 2)
		do_pause(copy, w[1], w[0][0] == 'p');
	else if (strcmp(w[0], "ps") == 0 && n == 2)
		do_ps(copy, w[1]);
	else if (strcmp(w[0], "forward-cancel") == 0 && n == 2)
		do_forward_cancel(copy, (unsigned)atoi(w[1]));
	else if (strcmp(w[0], "forward") == 0 && n == 3)
		do_forward(copy, (unsigned)atoi(w[1]), w[2]);
	else if (strcmp(w[0], "sleep") == 0 && n == 2)
		(void)turn_until(NULL, NULL, (uint64_t)MAX(atoi(w[1]), 0));
	else
		printf("error %s: unknown script line\n", copy);
	fflush(stdout);
}

static bool is_booted(void *userdata)
{
	(void)userdata;
	return booted;
}

/* The guest files under $BUILD (default "build"), absolute as VM settings want them. */
static int guest_files(struct vmm_settings *vm, struct hull_error **err)
{
	const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
	_cleanup_free_ char *dir = realpath(build, NULL);
	_cleanup_free_ char *kernel = NULL, *initrd = NULL;
	int r;

	if (!dir)
		return hull_error_set_errno(err, -errno, "build directory '%s'", build);
	kernel = xasprintf("%s/guest/vmlinuz", dir);
	initrd = xasprintf("%s/guest/initramfs.cpio", dir);
	r = vmm_settings_set(vm, "kernel", kernel, err);
	if (r >= 0)
		r = vmm_settings_set(vm, "initrd", initrd, err);
	return r;
}

int main(int argc, char **argv)
{
	struct hull_error *err = NULL;
	struct vmm_settings vm;
	struct pod_config pc = {.vm = &vm, .debug = getenv("AGENTCTL_DEBUG") != NULL};
	_cleanup_fclose_ FILE *script = NULL;
	_cleanup_free_ char *root = NULL;
	char line[1024];
	int code = 0;

	log_setup("agentctl", LOG_LEVEL_WARN);
	if (argc != 4 || strcmp(argv[1], "--rootfs") != 0) {
		fprintf(stderr, "usage: agentctl --rootfs DIR SCRIPT\n");
		return 2;
	}
	script = fopen(argv[3], "re");
	if (!script) {
		perror(argv[3]);
		return 2;
	}
	root = realpath(argv[2], NULL);
	if (!root) {
		perror(argv[2]);
		return 2;
	}
	rootfs = root;
	vmm_settings_init(&vm);
	if (guest_files(&vm, &err) < 0) {
		fprintf(stderr, "agentctl: %s\n", err->msg);
		hull_error_free(err);
		vmm_settings_done(&vm);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	loop = event_loop_new();
	pod = pod_new(loop, &sink, NULL);
	if (pod_boot(pod, &pc, &err) < 0) {
		fprintf(stderr, "agentctl: %s\n", err->msg);
		hull_error_free(err);
		code = 1;
	} else if (turn_until(is_booted, NULL, LINE_TIMEOUT_MS) < 0 || boot_r < 0) {
		fprintf(stderr, "agentctl: boot: %s\n", booted ? boot_msg : "timed out");
		code = 1;
	}
	while (code == 0 && fgets(line, sizeof(line), script)) {
		run_line(line);
		if (lost) {
			printf("error: agent channel lost: %s\n", lost_msg);
			code = 1;
		}
	}
	pod = pod_free(pod, STOP_TIMEOUT_MS);
	ops_free();
	for (size_t i = 0; i < n_procs; i++)
		proc_reset(&procs[i]);
	loop = event_loop_free(loop);
	vmm_settings_done(&vm);
	free(boot_msg);
	free(lost_msg);
	return code;
}
