/* SPDX-License-Identifier: MIT */
/* agentctl: boots one sandbox (real QEMU, real agent) and drives the agent API from a
 * script, for integration tests of what hull run alone cannot show: several
 * containers in one VM (pods), exec, containers that come and go.
 *
 *   agentctl --rootfs DIR SCRIPT
 *
 * Script lines (words split on spaces; '#' comments):
 *   create ID CONFIG.json   CreateContainer; "{pid:OTHER}" in the file becomes OTHER's pid
 *   create-bg ID CONFIG.json  the same without waiting: "created ID" (or "error LINE:
 *                           message") is printed whenever the answer comes
 *   check                   Check; prints "check ok"
 *   start ID                attach its stdio, start it; prints "started ID"
 *   exec ID EXEC PROC.json  ExecProcess with an OCI process object, attach, start
 *   wait ID [EXEC]          wait for exit; prints its output ("ID[/EXEC]> line") and
 *                           "exit ID[/EXEC] STATUS"
 *   signal ID SIG           SignalProcess
 *   remove ID               RemoveContainer
 *   stats ID                prints "stats ID mem_limit=N pids=N pids_limit=N"
 *   update ID RES.json      UpdateContainer with an OCI linux.resources object
 *   pause ID / resume ID    PauseContainer / ResumeContainer
 *   ps ID                   prints "ps ID N" (how many processes it has)
 *   forward PORT FILE       PortForward: FILE's bytes to PORT on the guest's loopback,
 *                           then half-close; prints the reply ("forward> line", up to
 *                           a NUL), "forward bytes N" and "forward done" (or "error")
 *   sleep MS
 * A failing call prints "error LINE: message" and the script goes on. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "agent.pb-c.h"
#include "event.h"
#include "log.h"
#include "port-forward.h"
#include "sandbox.h"
#include "util.h"

#define MAX_PROCS 16

struct proc {
	char name[128]; /* ID or ID/EXEC */
	char *id, *exec_id;
	uint32_t attach_sid;
	bool done, waited;
	int status;
	struct buf out;
	uint32_t pid;
};

static struct proc procs[MAX_PROCS];
static size_t n_procs;
static struct sandbox *sb;

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
	p->id = xstrdup(id);
	p->exec_id = exec_id ? xstrdup(exec_id) : NULL;
	return p;
}

static void on_data(struct agent_client *ac, const uint8_t *payload, size_t len, void *userdata)
{
	struct proc *p = userdata;
	Hull__Agent__V1__StdioData *d = hull__agent__v1__stdio_data__unpack(NULL, len, payload);
	(void)ac;
	if (!d)
		return;
	buf_append(&p->out, d->data.data, d->data.len);
	if (d->data.len)
		agent_client_send_stdio(sb->ac, p->attach_sid, NULL, 0, false, d->data.len);
	hull__agent__v1__stdio_data__free_unpacked(d, NULL);
}

static void on_done(struct agent_client *ac, int code, const char *message, const uint8_t *payload,
                    size_t len, void *userdata)
{
	struct proc *p = userdata;
	(void)ac, (void)code, (void)message, (void)payload, (void)len;
	p->done = true;
}

static void on_wait(struct agent_client *ac, int code, const char *message, const uint8_t *payload,
                    size_t len, void *userdata)
{
	struct proc *p = userdata;
	Hull__Agent__V1__WaitResponse *w =
	    hull__agent__v1__wait_response__unpack(NULL, len, payload);
	(void)ac;
	p->waited = true;
	if (code != 0 || !w) {
		printf("error wait %s: %s\n", p->name, message);
		p->status = -1;
	} else {
		p->status = w->signal ? 128 + w->signal : w->exit_code;
	}
	if (w)
		hull__agent__v1__wait_response__free_unpacked(w, NULL);
}

static void pump_until(bool *flag1, bool *flag2)
{
	while (!*flag1 || !*flag2) {
		struct pollfd pfd = {.fd = agent_client_fd(sb->ac),
		                     .events =
		                         POLLIN | (agent_client_wants_write(sb->ac) ? POLLOUT : 0)};
		if (poll(&pfd, 1, 60000) <= 0 || agent_client_io(sb->ac, NULL) < 0) {
			printf("error: agent channel lost\n");
			exit(1);
		}
	}
}

static void attach(struct proc *p)
{
	Hull__Agent__V1__AttachRequest att = HULL__AGENT__V1__ATTACH_REQUEST__INIT;
	att.id = p->id;
	att.exec_id = p->exec_id ? p->exec_id : (char *)"";
	p->attach_sid = agent_client_call(sb->ac, "AttachStdio", &att.base, 0, on_done, on_data, p);
	/* No stdin; a window for its output. */
	agent_client_send_stdio(sb->ac, p->attach_sid, NULL, 0, true, 1 << 20);
}

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

static void on_created(struct agent_client *ac, int code, const char *message,
                       const uint8_t *payload, size_t len, void *userdata)
{
	char *line = userdata;
	(void)ac, (void)payload, (void)len;
	if (code)
		printf("error %s: %s\n", line, message);
	else
		printf("created %s\n", line + strlen("create-bg "));
	fflush(stdout);
	free(line);
}

static void call(const char *line, const char *method, const ProtobufCMessage *msg,
                 const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret)
{
	struct hull_error *err = NULL;
	if (agent_client_call_sync(sb->ac, method, msg, desc, ret, 60000, &err) < 0) {
		printf("error %s: %s\n", line, err->msg);
		hull_error_free(err);
	}
}

struct fwd {
	bool done;
	int err;
	char *msg;
};

static void on_fwd_done(struct port_forward *pf, int e, const char *msg, void *userdata)
{
	struct fwd *f = userdata;
	(void)pf;
	f->done = true;
	f->err = e;
	f->msg = msg ? xstrdup(msg) : NULL;
}

static void on_agent_io(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	(void)loop, (void)fd, (void)revents, (void)userdata;
	if (agent_client_io(sb->ac, NULL) < 0) {
		printf("error: agent channel lost\n");
		exit(1);
	}
}

/* The client's end: read the reply as it comes (the forward waits for room). */
static void on_client(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct buf *got = userdata;
	ssize_t n = read(fd, buf_reserve(got, 65536), 65536);
	(void)revents;
	if (n > 0)
		buf_commit(got, (size_t)n);
	else if (n == 0 || errno != EAGAIN)
		event_mod(loop, fd, 0);
}

/* The port-forward API as a CRI server would drive it: an event loop pumping the agent
 * client, a socket per client connection (here one end of a socketpair). */
static void forward(const char *line, unsigned port, const char *file)
{
	_cleanup_free_ char *req = read_config(file);
	struct event_loop *loop = event_loop_new();
	struct fwd f = {0};
	struct buf got = {0};
	struct port_forward *pf;
	int sv[2];

	if (!req || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		printf("error %s: cannot read request\n", line);
		event_loop_free(loop);
		return;
	}
	(void)write_all(sv[1], req, strlen(req));
	shutdown(sv[1], SHUT_WR);
	event_add(loop, agent_client_fd(sb->ac), EPOLLIN, on_agent_io, NULL);
	fd_set_nonblock(sv[1], 1);
	event_add(loop, sv[1], EPOLLIN, on_client, &got);
	pf = port_forward_start(loop, sb->ac, port, sv[0], on_fwd_done, &f);
	while (!f.done) {
		event_mod(loop, agent_client_fd(sb->ac),
		          EPOLLIN | (agent_client_wants_write(sb->ac) ? EPOLLOUT : 0));
		if (event_loop_once(loop, 60000) < 0)
			break;
	}
	port_forward_free(pf);
	event_del(loop, agent_client_fd(sb->ac));
	event_del(loop, sv[1]);
	event_loop_free(loop);
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
	if (f.err)
		printf("error %s: %s\n", line, f.msg ? f.msg : strerror(-f.err));
	else
		printf("forward done\n");
	free(f.msg);
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
	if ((strcmp(w[0], "create") == 0 || strcmp(w[0], "create-bg") == 0) && n == 3) {
		Hull__Agent__V1__CreateContainerRequest req =
		    HULL__AGENT__V1__CREATE_CONTAINER_REQUEST__INIT;
		Hull__Agent__V1__Storage root = HULL__AGENT__V1__STORAGE__INIT;
		_cleanup_free_ char *cfg = read_config(w[2]);
		if (!cfg) {
			printf("error %s: cannot read config\n", copy);
			return;
		}
		root.source = (char *)"hull-root";
		root.fstype = (char *)"9p";
		root.overlay = true;
		req.id = w[1];
		req.root = &root;
		req.oci_config.data = (uint8_t *)cfg;
		req.oci_config.len = strlen(cfg);
		if (w[0][6] == '-')
			agent_client_call(sb->ac, "CreateContainer", &req.base, 0, on_created, NULL,
			                  xstrdup(copy));
		else
			call(copy, "CreateContainer", &req.base, NULL, NULL);
	} else if (strcmp(w[0], "check") == 0 && n == 1) {
		ProtobufCMessage *ret = NULL;
		call(copy, "Check", NULL, &hull__agent__v1__check_response__descriptor, &ret);
		if (ret) {
			printf("check ok\n");
			protobuf_c_message_free_unpacked(ret, NULL);
		}
	} else if (strcmp(w[0], "start") == 0 && n == 2) {
		Hull__Agent__V1__ContainerRequest cr = HULL__AGENT__V1__CONTAINER_REQUEST__INIT;
		ProtobufCMessage *ret = NULL;
		struct proc *p = proc_get(w[1], NULL);
		cr.id = w[1];
		attach(p);
		call(copy, "StartContainer", &cr.base,
		     &hull__agent__v1__start_container_response__descriptor, &ret);
		if (ret) {
			p->pid = ((Hull__Agent__V1__StartContainerResponse *)ret)->pid;
			protobuf_c_message_free_unpacked(ret, NULL);
			printf("started %s\n", p->name);
		}
	} else if (strcmp(w[0], "exec") == 0 && n == 4) {
		Hull__Agent__V1__ExecProcessRequest req =
		    HULL__AGENT__V1__EXEC_PROCESS_REQUEST__INIT;
		_cleanup_free_ char *cfg = read_config(w[3]);
		struct proc *p = proc_get(w[1], w[2]);
		if (!cfg) {
			printf("error %s: cannot read process\n", copy);
			return;
		}
		req.id = w[1];
		req.exec_id = w[2];
		req.process.data = (uint8_t *)cfg;
		req.process.len = strlen(cfg);
		call(copy, "ExecProcess", &req.base, NULL, NULL);
		attach(p);
		Hull__Agent__V1__StartProcessRequest st =
		    HULL__AGENT__V1__START_PROCESS_REQUEST__INIT;
		st.id = w[1];
		st.exec_id = w[2];
		call(copy, "StartProcess", &st.base, NULL, NULL);
	} else if (strcmp(w[0], "wait") == 0 && (n == 2 || n == 3)) {
		Hull__Agent__V1__ContainerRequest cr = HULL__AGENT__V1__CONTAINER_REQUEST__INIT;
		struct proc *p = proc_get(w[1], n == 3 ? w[2] : NULL);
		cr.id = w[1];
		cr.exec_id = n == 3 ? w[2] : (char *)"";
		agent_client_call(sb->ac, "WaitProcess", &cr.base, 0, on_wait, NULL, p);
		if (!p->attach_sid)
			p->done = true; /* nothing attached: only the exit status to wait for */
		pump_until(&p->waited, &p->done);
		buf_append(&p->out, "", 1);
		for (char *s = (char *)buf_head(&p->out), *nl; *s; s = nl + 1) {
			nl = strchrnul(s, '\n');
			printf("%s> %.*s\n", p->name, (int)(nl - s), s);
			if (!*nl)
				break;
		}
		printf("exit %s %d\n", p->name, p->status);
	} else if (strcmp(w[0], "signal") == 0 && n == 3) {
		Hull__Agent__V1__SignalRequest req = HULL__AGENT__V1__SIGNAL_REQUEST__INIT;
		req.id = w[1];
		req.signal = (uint32_t)atoi(w[2]);
		call(copy, "SignalProcess", &req.base, NULL, NULL);
	} else if (strcmp(w[0], "remove") == 0 && n == 2) {
		Hull__Agent__V1__ContainerRequest cr = HULL__AGENT__V1__CONTAINER_REQUEST__INIT;
		cr.id = w[1];
		call(copy, "RemoveContainer", &cr.base, NULL, NULL);
	} else if (strcmp(w[0], "stats") == 0 && n == 2) {
		Hull__Agent__V1__ContainerRequest cr = HULL__AGENT__V1__CONTAINER_REQUEST__INIT;
		ProtobufCMessage *ret = NULL;
		cr.id = w[1];
		call(copy, "StatsContainer", &cr.base, &hull__agent__v1__stats_response__descriptor,
		     &ret);
		if (ret) {
			Hull__Agent__V1__StatsResponse *st = (Hull__Agent__V1__StatsResponse *)ret;
			printf("stats %s mem_limit=%llu pids=%llu pids_limit=%llu cpu=%s mem=%s\n",
			       w[1], (unsigned long long)st->memory_limit,
			       (unsigned long long)st->pids_current,
			       (unsigned long long)st->pids_limit,
			       st->cpu_usage_usec ? "used" : "none",
			       st->memory_current ? "used" : "none");
			protobuf_c_message_free_unpacked(ret, NULL);
		}
	} else if (strcmp(w[0], "update") == 0 && n == 3) {
		Hull__Agent__V1__UpdateRequest req = HULL__AGENT__V1__UPDATE_REQUEST__INIT;
		_cleanup_free_ char *res = read_config(w[2]);
		if (!res) {
			printf("error %s: cannot read resources\n", copy);
			return;
		}
		req.id = w[1];
		req.resources.data = (uint8_t *)res;
		req.resources.len = strlen(res);
		call(copy, "UpdateContainer", &req.base, NULL, NULL);
	} else if ((strcmp(w[0], "pause") == 0 || strcmp(w[0], "resume") == 0) && n == 2) {
		Hull__Agent__V1__ContainerRequest cr = HULL__AGENT__V1__CONTAINER_REQUEST__INIT;
		cr.id = w[1];
		call(copy, w[0][0] == 'p' ? "PauseContainer" : "ResumeContainer", &cr.base, NULL,
		     NULL);
	} else if (strcmp(w[0], "ps") == 0 && n == 2) {
		Hull__Agent__V1__ContainerRequest cr = HULL__AGENT__V1__CONTAINER_REQUEST__INIT;
		ProtobufCMessage *ret = NULL;
		cr.id = w[1];
		call(copy, "ListProcesses", &cr.base, &hull__agent__v1__pids_response__descriptor,
		     &ret);
		if (ret) {
			printf("ps %s %zu\n", w[1], ((Hull__Agent__V1__PidsResponse *)ret)->n_pids);
			protobuf_c_message_free_unpacked(ret, NULL);
		}
	} else if (strcmp(w[0], "forward") == 0 && n == 3) {
		forward(copy, (unsigned)atoi(w[1]), w[2]);
	} else if (strcmp(w[0], "sleep") == 0 && n == 2) {
		usleep((useconds_t)atoi(w[1]) * 1000);
	} else {
		printf("error %s: unknown script line\n", copy);
	}
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct hull_error *err = NULL;
	struct vmm_share share = {.tag = "hull-root", .readonly = true};
	struct sandbox_config sc = {.channel = -1, .interrupt_fd = -1};
	_cleanup_fclose_ FILE *script = NULL;
	char line[1024];
	const char *build = getenv("BUILD") ? getenv("BUILD") : "build";

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
	share.path = argv[2];
	_cleanup_free_ char *kernel = xasprintf("%s/guest/vmlinuz", build);
	_cleanup_free_ char *initrd = xasprintf("%s/guest/initramfs.cpio", build);
	sc.kernel = kernel;
	sc.initrd = initrd;
	sc.shares = &share;
	sc.n_shares = 1;
	sc.debug = getenv("AGENTCTL_DEBUG") != NULL;
	signal(SIGPIPE, SIG_IGN);
	if (sandbox_start(&sc, &sb, &err) < 0) {
		fprintf(stderr, "agentctl: %s\n", err->msg);
		return 1;
	}
	while (fgets(line, sizeof(line), script))
		run_line(line);
	sb = sandbox_stop(sb, 5000);
	return 0;
}
