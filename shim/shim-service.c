/* SPDX-License-Identifier: MIT */
/* The shim's Task service: every container of one pod in one VM. The first Create
 * boots the VM; each container's rootfs (the snapshot containerd mounted for it) and
 * bind sources reach the guest through binds below the sandbox's shared directory;
 * stdio goes through containerd's FIFOs with the agent's credit-based streams; task
 * events go to containerd over $TTRPC_ADDRESS. Handlers decode, check and call the
 * agent; the answer leaves when the agent has answered. */
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>

#include "agent.pb-c.h"
#include "bundle.h"
#include "log.h"
#include "sandbox.h"
#include "shim-events.pb-c.h"
#include "shim.h"
#include "ttrpc-server.h"
#include "util.h"

#define TASK_SERVICE "containerd.task.v2.Task"
#define EVENTS_SERVICE "containerd.services.events.ttrpc.v1.Events"
#define STDIO_WINDOW (1u << 20)
#define CALL_TIMEOUT_MS 30000
#define EXIT_VM_GONE 255 /* what a process reports when its VM died under it */

struct proc {
	struct ctr *c;
	char *exec_id; /* "" for the container's init */
	bool terminal, started, exited;
	uint32_t pid, exit_status;
	uint64_t exited_at_ns;
	char *stdin_path, *stdout_path, *stderr_path;
	int in_fd, out_fd[3];  /* out_fd[1], out_fd[2]: the stdout and stderr FIFOs */
	struct buf pending[3]; /* output the FIFO could not take yet */
	uint32_t attach_sid;
	uint64_t in_credit;
	bool stdio_open;
	struct proc *next;
};

struct ctr {
	char *id, *bundle;
	char *shared;        /* STATE/shared/<id> on the host */
	bool rootfs_mounted; /* containerd's mounts on bundle/rootfs are ours to undo */
	bool in_guest;
	bool paused;
	struct proc *procs; /* the init first */
	struct ctr *next;
};

struct waiter {
	struct ttrpc_call *call;
	char *id, *exec_id;
	struct waiter *next;
};

struct shim {
	const struct shim_args *a;
	struct event_loop *loop;
	struct ttrpc_server *srv;
	struct sandbox *sb;
	struct shim_config cfg;
	struct ctr *ctrs;
	struct waiter *waiters;
	struct agent_client *ev; /* to containerd's events service, connected on demand */
	int sig_fd;
	bool shutdown, vm_gone;
	char **cgroups; /* host cgroup dirs we made for the pod (removed at exit) */
};

static struct shim *S; /* one per process: callbacks find it here */

static uint64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

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

/* ---- events to containerd ---------------------------------------------------------- */

static void on_events_io(struct event_loop *loop, int fd, uint32_t revents, void *userdata);

static void events_drop(void)
{
	if (!S->ev)
		return;
	event_del(S->loop, agent_client_fd(S->ev));
	S->ev = agent_client_free(S->ev);
}

static int events_connect(void)
{
	const char *addr = S->a->ttrpc_address;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (S->ev)
		return 0;
	if (!addr || !*addr)
		return -ENOTCONN;
	if (strncmp(addr, "unix://", 7) == 0)
		addr += 7;
	if (strlen(addr) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, addr);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	S->ev = agent_client_new(fd);
	agent_client_set_service(S->ev, EVENTS_SERVICE);
	event_add(S->loop, fd, EPOLLIN, on_events_io, NULL);
	return 0;
}

static void on_events_io(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	_cleanup_error_ struct hull_error *err = NULL;
	(void)loop, (void)fd, (void)revents, (void)userdata;
	if (agent_client_io(S->ev, &err) < 0) {
		log_warn("events: %s (reconnecting at the next event)", err->msg);
		events_drop();
		return;
	}
	event_mod(S->loop, agent_client_fd(S->ev),
	          EPOLLIN | (agent_client_wants_write(S->ev) ? EPOLLOUT : 0));
}

static void on_forwarded(struct agent_client *ac, int code, const char *message,
                         const uint8_t *payload, size_t len, void *userdata)
{
	(void)ac, (void)payload, (void)len;
	if (code)
		log_warn("event %s: containerd answered %d: %s", (const char *)userdata, code,
		         message);
}

/* Send topic with event (type containerd.events.<name>). Lost if containerd is away:
 * it asks State again when it reconnects. */
static void publish(const char *topic, const char *name, const ProtobufCMessage *msg)
{
	Hull__Events__ForwardRequest fr = HULL__EVENTS__FORWARD_REQUEST__INIT;
	Hull__Events__Envelope env = HULL__EVENTS__ENVELOPE__INIT;
	Hull__Task__Timestamp ts;
	Hull__Task__Any any = HULL__TASK__ANY__INIT;
	_cleanup_free_ char *type = xasprintf("containerd.events.%s", name);
	_cleanup_free_ uint8_t *packed = xmalloc(protobuf_c_message_get_packed_size(msg) + 1);
	int r = events_connect();

	if (r < 0) {
		/* hull's own detached sandboxes have no containerd to tell. */
		if (S->a->ttrpc_address)
			log_warn("event %s dropped: containerd's event socket: %s", topic,
			         strerror(-r));
		return;
	}
	set_timestamp(&ts, realtime_ns());
	any.type_url = type;
	any.value.len = protobuf_c_message_pack(msg, packed);
	any.value.data = packed;
	env.timestamp = &ts;
	env.namespace_ = (char *)(S->a->namespace ? S->a->namespace : "default");
	env.topic = (char *)topic;
	env.event = &any;
	fr.envelope = &env;
	agent_client_call(S->ev, "Forward", &fr.base, 0, on_forwarded, NULL, (void *)topic);
	event_mod(S->loop, agent_client_fd(S->ev), EPOLLIN | EPOLLOUT);
	log_debug("event %s", topic);
}

static void publish_container(const char *topic, const char *name, const char *id)
{
	Hull__Events__TaskContainer e = HULL__EVENTS__TASK_CONTAINER__INIT;
	e.container_id = (char *)id;
	publish(topic, name, &e.base);
}

/* ---- containers and processes ------------------------------------------------------ */

static struct ctr *ctr_find(const char *id)
{
	for (struct ctr *c = S->ctrs; c; c = c->next)
		if (strcmp(c->id, id) == 0)
			return c;
	return NULL;
}

static struct proc *proc_find(const char *id, const char *exec_id)
{
	struct ctr *c = ctr_find(id);
	for (struct proc *p = c ? c->procs : NULL; p; p = p->next)
		if (strcmp(p->exec_id, exec_id) == 0)
			return p;
	return NULL;
}

/* The key of a process, for callbacks that outlive it: "id\0exec_id". */
static char *proc_key(const struct proc *p)
{
	size_t a = strlen(p->c->id), b = strlen(p->exec_id);
	char *k = xmalloc(a + b + 2);
	memcpy(k, p->c->id, a + 1);
	memcpy(k + a + 1, p->exec_id, b + 1);
	return k;
}

static struct proc *proc_by_key(const char *k)
{
	return proc_find(k, k + strlen(k) + 1);
}

static void closefd(int *fd)
{
	if (*fd >= 0) {
		event_del(S->loop, *fd);
		close(*fd);
		*fd = -1;
	}
}

static void proc_close_output(struct proc *p)
{
	for (int i = 1; i <= 2; i++) {
		closefd(&p->out_fd[i]);
		buf_release(&p->pending[i]);
	}
}

static void proc_free(struct proc *p)
{
	closefd(&p->in_fd);
	proc_close_output(p);
	free(p->exec_id);
	free(p->stdin_path);
	free(p->stdout_path);
	free(p->stderr_path);
	free(p);
}

static struct proc *proc_new(struct ctr *c, const char *exec_id, bool terminal, const char *in,
                             const char *out, const char *errp)
{
	struct proc *p = xcalloc(1, sizeof(*p));
	p->c = c;
	p->exec_id = xstrdup(exec_id);
	p->terminal = terminal;
	p->in_fd = p->out_fd[0] = p->out_fd[1] = p->out_fd[2] = -1;
	p->stdin_path = in && *in ? xstrdup(in) : NULL;
	p->stdout_path = out && *out ? xstrdup(out) : NULL;
	p->stderr_path = errp && *errp ? xstrdup(errp) : NULL;
	return p;
}

static int open_fifo(const char *path, int flags, int *ret)
{
	struct stat st;
	if (!path)
		return 0;
	/* containerd names FIFOs it made; anything else (a device, a file) is refused
	 * before it is opened. */
	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISFIFO(st.st_mode))
		return -EINVAL;
	/* O_RDWR on output FIFOs: the open never waits for a reader (containerd's shims do
	 * the same). Non-blocking: a reader that stops reading holds back the agent's
	 * credit, never the shim. */
	*ret = open(path, flags | O_CLOEXEC | O_NONBLOCK);
	return *ret < 0 ? -errno : 0;
}

static int proc_open_stdio(struct proc *p, struct hull_error **err)
{
	int r = open_fifo(p->stdout_path, O_RDWR, &p->out_fd[1]);
	if (r >= 0)
		r = open_fifo(p->stderr_path, O_RDWR, &p->out_fd[2]);
	if (r >= 0)
		r = open_fifo(p->stdin_path, O_RDONLY, &p->in_fd);
	if (r < 0)
		return hull_error_set_errno(err, r, "'%s': open stdio FIFOs", p->c->id);
	return 0;
}

/* ---- agent plumbing ---------------------------------------------------------------- */

static void agent_kick(void)
{
	if (S->sb && S->sb->ac && !S->vm_gone)
		event_mod(S->loop, agent_client_fd(S->sb->ac),
		          EPOLLIN | (agent_client_wants_write(S->sb->ac) ? EPOLLOUT : 0));
}

static void agent_call(const char *method, const ProtobufCMessage *msg, agent_reply_cb cb,
                       agent_data_cb data_cb, void *userdata)
{
	agent_client_call(S->sb->ac, method, msg, 0, cb, data_cb, userdata);
	agent_kick();
}

static void answer_waiters(void);

static void proc_exited(struct proc *p, uint32_t status, bool oom)
{
	Hull__Events__TaskExit ev = HULL__EVENTS__TASK_EXIT__INIT;
	Hull__Task__Timestamp ts;

	if (p->exited)
		return;
	p->exited = true;
	p->exited_at_ns = realtime_ns();
	p->exit_status = status;
	if (oom)
		publish_container("/tasks/oom", "TaskOOM", p->c->id);
	set_timestamp(&ts, p->exited_at_ns);
	ev.container_id = p->c->id;
	ev.id = p->exec_id[0] ? p->exec_id : p->c->id;
	ev.pid = p->pid;
	ev.exit_status = status;
	ev.exited_at = &ts;
	publish("/tasks/exit", "TaskExit", &ev.base);
	answer_waiters();
}

/* The VM is gone: every process that ran in it has ended. */
static void vm_gone(const char *why)
{
	if (S->vm_gone)
		return;
	log_warn("the sandbox VM is gone (%s): every process is reported exited", why);
	S->vm_gone = true;
	if (S->sb && S->sb->ac)
		event_del(S->loop, agent_client_fd(S->sb->ac));
	for (struct ctr *c = S->ctrs; c; c = c->next) {
		c->in_guest = false;
		for (struct proc *p = c->procs; p; p = p->next) {
			if (p->started || !p->exec_id[0])
				proc_exited(p, EXIT_VM_GONE, false);
			proc_close_output(p);
		}
	}
}

static void on_agent(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	_cleanup_error_ struct hull_error *err = NULL;
	(void)loop, (void)fd, (void)revents, (void)userdata;
	if (agent_client_io(S->sb->ac, &err) < 0) {
		vm_gone(err->msg);
		return;
	}
	agent_kick();
}

static void on_vm_exit(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	(void)revents, (void)userdata;
	event_del(loop, fd);
	vm_gone("QEMU exited");
}

static void reply_empty(struct agent_client *ac, int code, const char *message,
                        const uint8_t *payload, size_t len, void *userdata)
{
	struct hull_error e = {.code = ttrpc_errno_from_code(code), .msg = (char *)message};
	(void)ac, (void)payload, (void)len;
	ttrpc_call_reply(userdata, code ? e.code : 0, code ? &e : NULL, NULL);
}

/* ---- stdio ---------------------------------------------------------------------------- */

static void grant(struct proc *p, uint64_t n)
{
	agent_client_send_stdio(S->sb->ac, p->attach_sid, NULL, 0, false, n);
	agent_kick();
}

/* Write what is pending on fd i; grant the agent what left. */
static void flush_output(struct proc *p, int i)
{
	struct buf *b = &p->pending[i];
	uint64_t written = 0;

	while (b->len > 0 && p->out_fd[i] >= 0) {
		ssize_t n = write(p->out_fd[i], buf_head(b), b->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			event_mod(S->loop, p->out_fd[i], EPOLLOUT);
			break;
		}
		if (n <= 0) { /* the reader is gone for good: drop */
			written += b->len;
			buf_consume(b, b->len);
			break;
		}
		buf_consume(b, (size_t)n);
		written += (uint64_t)n;
	}
	if (b->len == 0 && p->out_fd[i] >= 0)
		event_mod(S->loop, p->out_fd[i], 0);
	if (written && !S->vm_gone && p->stdio_open)
		grant(p, written);
}

static void on_output_writable(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	(void)loop, (void)revents;
	struct proc *p = proc_by_key(userdata);
	if (!p)
		return;
	for (int i = 1; i <= 2; i++)
		if (p->out_fd[i] == fd)
			flush_output(p, i);
}

static void on_stdio_data(struct agent_client *ac, const uint8_t *payload, size_t len,
                          void *userdata)
{
	struct proc *p = proc_by_key(userdata);
	Hull__Agent__V1__StdioData *d = hull__agent__v1__stdio_data__unpack(NULL, len, payload);
	(void)ac;
	if (!d || !p)
		goto out;
	if ((d->fd == 1 || d->fd == 2) && d->data.len) {
		/* Terminal output comes as fd 1. No FIFO for it: dropped, credit back. */
		int i = (int)d->fd;
		if (p->out_fd[i] < 0) {
			grant(p, d->data.len);
		} else {
			buf_append(&p->pending[i], d->data.data, d->data.len);
			flush_output(p, i);
		}
	}
	if (d->credit) {
		p->in_credit = MIN(p->in_credit + d->credit, (uint64_t)64 << 20);
		if (p->in_fd >= 0)
			event_mod(S->loop, p->in_fd, EPOLLIN);
	}
out:
	if (d)
		hull__agent__v1__stdio_data__free_unpacked(d, NULL);
}

static void on_stdio_done(struct agent_client *ac, int code, const char *message,
                          const uint8_t *payload, size_t len, void *userdata)
{
	struct proc *p = proc_by_key(userdata);
	(void)ac, (void)code, (void)message, (void)payload, (void)len;
	free(userdata);
	if (p) {
		p->stdio_open = false;
		/* Readers see EOF once what is pending has been written. */
		for (int i = 1; i <= 2; i++)
			if (p->pending[i].len == 0)
				closefd(&p->out_fd[i]);
	}
}

static void send_stdin_eof(struct proc *p)
{
	closefd(&p->in_fd);
	if (p->stdio_open && !S->vm_gone) {
		agent_client_send_stdio(S->sb->ac, p->attach_sid, NULL, 0, true, 0);
		agent_kick();
	}
}

static void on_stdin(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct proc *p = proc_by_key(userdata);
	uint8_t chunk[64 << 10];
	ssize_t n;
	(void)revents;

	if (!p || p->in_fd != fd)
		return;
	if (p->in_credit == 0) {
		event_mod(loop, fd, 0);
		return;
	}
	n = read(fd, chunk, (size_t)MIN((uint64_t)sizeof(chunk), p->in_credit));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		send_stdin_eof(p);
		return;
	}
	p->in_credit -= (uint64_t)n;
	agent_client_send_stdio(S->sb->ac, p->attach_sid, chunk, (size_t)n, false, 0);
	agent_kick();
}

/* Attach before start, so not a byte is lost, and grant the output window. */
static void proc_attach(struct proc *p)
{
	Hull__Agent__V1__AttachRequest att = HULL__AGENT__V1__ATTACH_REQUEST__INIT;
	char *key = proc_key(p);

	att.id = p->c->id;
	att.exec_id = p->exec_id;
	p->attach_sid =
	    agent_client_call(S->sb->ac, "AttachStdio", &att.base, TTRPC_FLAG_REMOTE_OPEN,
	                      on_stdio_done, on_stdio_data, key);
	p->stdio_open = true;
	agent_client_send_stdio(S->sb->ac, p->attach_sid, NULL, 0, p->in_fd < 0, STDIO_WINDOW);
	for (int i = 1; i <= 2; i++)
		if (p->out_fd[i] >= 0)
			event_add(S->loop, p->out_fd[i], 0, on_output_writable, key);
	if (p->in_fd >= 0)
		event_add(S->loop, p->in_fd, 0, on_stdin, key);
}

/* ---- request helpers -------------------------------------------------------------- */

static int vm_check(struct hull_error **err)
{
	if (!S->sb)
		return hull_error_set(err, -ENOENT, "no container has been created");
	if (S->vm_gone)
		return hull_error_set(err, -EBUSY, "the sandbox VM is gone");
	return 0;
}

/* Decode a request into req; find its container (and process when the request has an
 * exec_id field). */
#define DECODE(type, fn)                                                           \
	type *req = fn(NULL, len, payload);                                        \
	if (!req)                                                                  \
		return hull_error_set(err, -EINVAL, "request does not decode");    \
	struct ctr *c = ctr_find(req->id);                                         \
	if (!c) {                                                                  \
		int _r = hull_error_set(err, -ENOENT, "no task '%.76s'", req->id); \
		protobuf_c_message_free_unpacked(&req->base, NULL);                \
		return _r;                                                         \
	}

#define FIND_PROC(p)                                                                        \
	struct proc *p = proc_find(c->id, req->exec_id);                                    \
	if (!p) {                                                                           \
		int _r = hull_error_set(err, -ENOENT, "no process '%.76s' in task '%.76s'", \
		                        req->exec_id, c->id);                               \
		protobuf_c_message_free_unpacked(&req->base, NULL);                         \
		return _r;                                                                  \
	}

#define FREE_REQ() protobuf_c_message_free_unpacked(&req->base, NULL)

/* ---- Create ------------------------------------------------------------------------ */

static char *options_config_path(const Hull__Task__Any *opts)
{
	Hull__Events__RuntimeOptions *o;
	char *path = NULL;
	if (!opts || !opts->value.len)
		return NULL;
	/* runtimeoptions.v1.Options (containerd's CRI runtime `options` table). */
	if (!strstr(opts->type_url, "runtimeoptions.v1.Options"))
		return NULL;
	o = hull__events__runtime_options__unpack(NULL, opts->value.len, opts->value.data);
	if (o && o->config_path[0])
		path = xstrdup(o->config_path);
	if (o)
		hull__events__runtime_options__free_unpacked(o, NULL);
	return path;
}

static int boot_sandbox(const char *config_path, const char *netns, struct hull_error **err)
{
	struct sandbox_config sc = {0};
	_cleanup_free_ char *kernel = NULL, *initrd = NULL, *name = NULL;
	int r;

	shim_config_done(&S->cfg);
	r = shim_config_load(config_path, config_path != NULL, &S->cfg, err);
	if (r < 0)
		return r;
	log_set_level((enum log_level)(S->a->debug ? LOG_LEVEL_DEBUG : S->cfg.log_level));
	kernel = S->cfg.kernel ? xstrdup(S->cfg.kernel) : sandbox_default_guest_file("vmlinuz");
	initrd =
	    S->cfg.initrd ? xstrdup(S->cfg.initrd) : sandbox_default_guest_file("initramfs.cpio");
	/* The sandbox is named after the shim's first task (the pod sandbox in
	 * Kubernetes), so `hull ps`-style tools and cleanup find it. */
	name = id_is_valid(S->a->id) ? xstrdup(S->a->id) : NULL;
	sc.id = name;
	sc.kernel = kernel;
	sc.initrd = initrd;
	sc.qemu = S->cfg.qemu ? S->cfg.qemu : "qemu-system-x86_64";
	sc.accel = S->cfg.accel;
	sc.machine = S->cfg.machine;
	sc.channel = S->cfg.channel;
	sc.cpus = S->cfg.cpus;
	sc.memory_mib = S->cfg.memory_mib;
	sc.shared_dir = true;
	sc.netns = netns;
	sc.boot_timeout_ms = S->cfg.boot_timeout_ms;
	sc.debug = log_get_level() >= LOG_LEVEL_DEBUG;
	sc.interrupt_fd = S->sig_fd;
	r = sandbox_start(&sc, &S->sb, err);
	if (r < 0)
		return r;
	event_add(S->loop, agent_client_fd(S->sb->ac), EPOLLIN, on_agent, NULL);
	event_add(S->loop, S->sb->vm->ops->exit_fd(S->sb->vm), EPOLLIN, on_vm_exit, NULL);
	log_info("sandbox %s booted", S->sb->id);
	return 0;
}

static void ctr_undo_host(struct ctr *c)
{
	if (c->shared) {
		(void)sandbox_unmount_below(c->shared);
		_cleanup_free_ char *root = xasprintf("%s/rootfs", c->shared);
		(void)rmdir(root);
		/* The bind targets left are empty files and dirs we made. */
		_cleanup_(closedirp) DIR *d = opendir(c->shared);
		struct dirent *de;
		while (d && (de = readdir(d)))
			if (de->d_name[0] == 'm') {
				_cleanup_free_ char *t = xasprintf("%s/%s", c->shared, de->d_name);
				if (unlink(t) < 0)
					(void)rmdir(t);
			}
		(void)rmdir(c->shared);
	}
	if (c->rootfs_mounted) {
		_cleanup_free_ char *rootfs = xasprintf("%s/rootfs", c->bundle);
		shim_unmount_all(rootfs);
		c->rootfs_mounted = false;
	}
}

static void ctr_free(struct ctr *c)
{
	while (c->procs) {
		struct proc *p = c->procs;
		c->procs = p->next;
		proc_free(p);
	}
	free(c->id);
	free(c->bundle);
	free(c->shared);
	free(c);
}

/* How a container's files reach the guest: containerd's containers use the snapshot
 * as is; `hull run -d` keeps its foreground semantics (docs/cli.md). */
struct ctr_opts {
	bool overlay;    /* the guest stacks a tmpfs overlay on the root */
	bool root_ro;    /* bind the rootfs read-only */
	bool copy_files; /* bind sources that are files are copied in, not bound */
	bool rewrite;    /* shim_spec_for_guest() the spec */
};

static const struct ctr_opts containerd_ctr = {.rewrite = true};

/* Make the container's files reachable in the guest and ask the agent to create it. */
static int create_in_guest(struct ctr *c, const struct bundle *b, const struct ctr_opts *o,
                           struct hull_error **err)
{
	Hull__Agent__V1__CreateContainerRequest req =
	    HULL__AGENT__V1__CREATE_CONTAINER_REQUEST__INIT;
	Hull__Agent__V1__Storage root = HULL__AGENT__V1__STORAGE__INIT;
	_cleanup_free_ Hull__Agent__V1__Mount *mounts = xcalloc(b->n_binds + 1, sizeof(*mounts));
	_cleanup_free_ Hull__Agent__V1__Mount **mptrs = xcalloc(b->n_binds + 1, sizeof(*mptrs));
	_cleanup_free_ Hull__Agent__V1__Storage *stores = xcalloc(b->n_binds + 1, sizeof(*stores));
	_cleanup_strv_free_ char **subpaths = xcalloc(b->n_binds + 2, sizeof(char *));
	_cleanup_free_ char *rootdir = NULL, *config = NULL;
	size_t config_len = 0;
	int r;

	if (o->rewrite) {
		r = shim_spec_for_guest(b->config, b->config_len, &config, &config_len, err);
		if (r < 0)
			return r;
	} else {
		config = xstrndup(b->config, b->config_len);
		config_len = b->config_len;
	}
	c->shared = xasprintf("%s/%s", S->sb->shared_dir, c->id);
	if (mkdir(c->shared, 0700) < 0)
		return hull_error_set_errno(err, -errno, "mkdir '%s'", c->shared);
	rootdir = xasprintf("%s/rootfs", c->shared);
	r = shim_bind(b->rootfs, rootdir, o->root_ro, err);
	if (r < 0)
		return hull_error_prefix(err, "rootfs");
	root.overlay = o->overlay;
	subpaths[0] = xasprintf("%s/rootfs", c->id);
	root.source = (char *)SANDBOX_SHARED_TAG;
	root.fstype = (char *)"9p";
	root.subpath = subpaths[0];
	for (size_t i = 0; i < b->n_binds; i++) {
		_cleanup_free_ char *dst = xasprintf("%s/m%zu", c->shared, i);
		if (o->copy_files && b->binds[i].is_file)
			r = sandbox_copy_file(b->binds[i].source, dst, err);
		else
			r = shim_bind(b->binds[i].source, dst, b->binds[i].readonly, err);
		if (r < 0)
			return hull_error_prefix(err, "mounts: '%s'", b->binds[i].destination);
		subpaths[i + 1] = xasprintf("%s/m%zu", c->id, i);
		hull__agent__v1__storage__init(&stores[i]);
		hull__agent__v1__mount__init(&mounts[i]);
		stores[i].source = (char *)SANDBOX_SHARED_TAG;
		stores[i].fstype = (char *)"9p";
		mounts[i].storage = &stores[i];
		mounts[i].destination = b->binds[i].destination;
		mounts[i].readonly = b->binds[i].readonly;
		mounts[i].subpath = subpaths[i + 1];
		mptrs[i] = &mounts[i];
	}
	req.id = c->id;
	req.root = &root;
	req.mounts = mptrs;
	req.n_mounts = b->n_binds;
	req.oci_config.data = (uint8_t *)config;
	req.oci_config.len = config_len;
	r = agent_client_call_sync(S->sb->ac, "CreateContainer", &req.base, NULL, NULL,
	                           CALL_TIMEOUT_MS, err);
	if (r < 0)
		return r;
	c->in_guest = true;
	return 0;
}

static int t_create(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                    ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Task__CreateTaskRequest *req =
	    hull__task__create_task_request__unpack(NULL, len, payload);
	Hull__Task__CreateTaskResponse *resp;
	Hull__Events__TaskCreate ev = HULL__EVENTS__TASK_CREATE__INIT;
	Hull__Events__TaskIO io = HULL__EVENTS__TASK_IO__INIT;
	struct bundle b = {0};
	struct ctr *c = NULL;
	struct proc *p;
	_cleanup_free_ char *rootfs = NULL;
	int r;
	(void)userdata, (void)call;

	if (!req)
		return hull_error_set(err, -EINVAL, "request does not decode");
	if (!id_is_valid(req->id)) {
		r = hull_error_set(err, -EINVAL,
		                   "task id '%.80s': hull takes 1-64 of [A-Za-z0-9_.-]", req->id);
		goto out;
	}
	if (ctr_find(req->id)) {
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
	c = xcalloc(1, sizeof(*c));
	c->id = xstrdup(req->id);
	c->bundle = xstrdup(req->bundle);
	rootfs = xasprintf("%s/rootfs", c->bundle);
	if (req->n_rootfs > 0) {
		(void)mkdir(rootfs, 0711);
		r = shim_mount_rootfs(rootfs, req->rootfs, req->n_rootfs, err);
		if (r < 0)
			goto fail;
		c->rootfs_mounted = true;
	}
	r = bundle_read(c->bundle, &b, err);
	if (r < 0)
		goto fail;
	if (!S->sb) {
		_cleanup_free_ char *cfg = options_config_path(req->options);
		/* The pod's cgroup first: QEMU inherits it. */
		r = shim_cgroup_join(b.cgroups_path, &S->cgroups, err);
		if (r >= 0)
			r = boot_sandbox(cfg, b.netns_path, err);
		if (r < 0)
			goto fail;
	} else if ((r = vm_check(err)) < 0) {
		goto fail;
	}
	p = proc_new(c, "", req->terminal || b.terminal, req->stdin, req->stdout, req->stderr);
	c->procs = p;
	r = proc_open_stdio(p, err);
	if (r < 0)
		goto fail;
	r = create_in_guest(c, &b, &containerd_ctr, err);
	if (r < 0)
		goto fail;
	c->next = S->ctrs;
	S->ctrs = c;

	io.stdin = req->stdin;
	io.stdout = req->stdout;
	io.stderr = req->stderr;
	io.terminal = req->terminal;
	ev.container_id = c->id;
	ev.bundle = c->bundle;
	ev.io = &io;
	ev.n_rootfs = req->n_rootfs;
	ev.rootfs = req->rootfs;
	publish("/tasks/create", "TaskCreate", &ev.base);
	resp = xmalloc(sizeof(*resp));
	hull__task__create_task_response__init(resp);
	*ret = &resp->base;
	r = 0;
	goto out;
fail:
	hull_error_prefix(err, "create '%s'", c->id);
	ctr_undo_host(c);
	ctr_free(c);
out:
	bundle_done(&b);
	hull__task__create_task_request__free_unpacked(req, NULL);
	return r;
}

/* ---- Start ------------------------------------------------------------------------ */

static void on_wait(struct agent_client *ac, int code, const char *message, const uint8_t *payload,
                    size_t len, void *userdata)
{
	struct proc *p = proc_by_key(userdata);
	Hull__Agent__V1__WaitResponse *w =
	    code ? NULL : hull__agent__v1__wait_response__unpack(NULL, len, payload);
	uint32_t status = EXIT_VM_GONE;
	(void)ac, (void)message;

	free(userdata);
	if (w && w->signal >= 0 && w->signal < 128 && w->exit_code >= 0 && w->exit_code < 256)
		status = w->signal ? (uint32_t)(128 + w->signal) : (uint32_t)w->exit_code;
	if (p)
		proc_exited(p, status, w && w->oom_killed);
	if (w)
		hull__agent__v1__wait_response__free_unpacked(w, NULL);
}

struct start_ctx {
	struct ttrpc_call *call; /* NULL: hull's own job, started by shim_serve_job() */
	int ready_fd;            /* then: where to say "ok NAME" or why not */
	char *key;
};

static void on_started(struct agent_client *ac, int code, const char *message,
                       const uint8_t *payload, size_t len, void *userdata)
{
	struct start_ctx *sc = userdata;
	struct proc *p = proc_by_key(sc->key);
	struct hull_error e = {.code = ttrpc_errno_from_code(code), .msg = (char *)message};
	Hull__Agent__V1__StartContainerResponse *sr =
	    code ? NULL : hull__agent__v1__start_container_response__unpack(NULL, len, payload);
	Hull__Task__StartResponse resp = HULL__TASK__START_RESPONSE__INIT;
	(void)ac;

	if (!sr || !p) {
		if (!code)
			e = (struct hull_error){.code = -EBADMSG, .msg = (char *)"bad reply"};
		if (sc->call) {
			ttrpc_call_reply(sc->call, e.code, &e, NULL);
		} else {
			dprintf(sc->ready_fd, "hull: start '%s': %s\n", sc->key, e.msg);
			close(sc->ready_fd);
			S->shutdown = true;
		}
	} else {
		p->pid = sr->pid;
		resp.pid = sr->pid;
		if (sc->call) {
			ttrpc_call_reply(sc->call, 0, NULL, &resp.base);
		} else {
			dprintf(sc->ready_fd, "ok %s\n", S->sb->id);
			close(sc->ready_fd);
		}
		if (p->exec_id[0]) {
			Hull__Events__TaskExecStarted ev = HULL__EVENTS__TASK_EXEC_STARTED__INIT;
			ev.container_id = p->c->id;
			ev.exec_id = p->exec_id;
			ev.pid = p->pid;
			publish("/tasks/exec-started", "TaskExecStarted", &ev.base);
		} else {
			Hull__Events__TaskStart ev = HULL__EVENTS__TASK_START__INIT;
			ev.container_id = p->c->id;
			ev.pid = p->pid;
			publish("/tasks/start", "TaskStart", &ev.base);
		}
	}
	if (sr)
		hull__agent__v1__start_container_response__free_unpacked(sr, NULL);
	free(sc->key);
	free(sc);
}

/* Attach, start, wait in the background; on_started answers call (or ready_fd). */
static void proc_start(struct proc *p, struct ttrpc_call *call, int ready_fd)
{
	Hull__Agent__V1__StartProcessRequest sp = HULL__AGENT__V1__START_PROCESS_REQUEST__INIT;
	Hull__Agent__V1__ContainerRequest cr = HULL__AGENT__V1__CONTAINER_REQUEST__INIT;
	struct start_ctx *sc = xmalloc(sizeof(*sc));

	p->started = true;
	proc_attach(p);
	sc->call = call;
	sc->ready_fd = ready_fd;
	sc->key = proc_key(p);
	cr.id = sp.id = p->c->id;
	cr.exec_id = sp.exec_id = p->exec_id;
	if (p->exec_id[0])
		agent_call("StartProcess", &sp.base, on_started, NULL, sc);
	else
		agent_call("StartContainer", &cr.base, on_started, NULL, sc);
	agent_call("WaitProcess", &cr.base, on_wait, NULL, proc_key(p));
}

static int t_start(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                   ProtobufCMessage **ret, struct hull_error **err)
{
	int r;
	(void)userdata, (void)ret;
	DECODE(Hull__Task__StartRequest, hull__task__start_request__unpack);
	FIND_PROC(p);
	FREE_REQ();
	if ((r = vm_check(err)) < 0)
		return r;
	if (p->started)
		return hull_error_set(err, -EALREADY, "'%s' already started",
		                      p->exec_id[0] ? p->exec_id : c->id);
	proc_start(p, call, -1);
	return 1;
}

/* ---- Wait, State, Kill, Delete ------------------------------------------------------ */

static void answer_waiters(void)
{
	for (struct waiter **pp = &S->waiters; *pp;) {
		struct waiter *w = *pp;
		struct proc *p = proc_find(w->id, w->exec_id);
		Hull__Task__WaitResponse resp = HULL__TASK__WAIT_RESPONSE__INIT;
		Hull__Task__Timestamp ts;
		if (p && !p->exited) {
			pp = &w->next;
			continue;
		}
		if (p) {
			resp.exit_status = p->exit_status;
			set_timestamp(&ts, p->exited_at_ns);
			resp.exited_at = &ts;
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

static int t_wait(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                  ProtobufCMessage **ret, struct hull_error **err)
{
	struct waiter *w;
	(void)userdata, (void)ret;
	DECODE(Hull__Task__WaitRequest, hull__task__wait_request__unpack);
	FIND_PROC(p);
	(void)p;
	w = xcalloc(1, sizeof(*w));
	w->call = call;
	w->id = xstrdup(c->id);
	w->exec_id = xstrdup(req->exec_id);
	w->next = S->waiters;
	S->waiters = w;
	FREE_REQ();
	answer_waiters();
	return 1;
}

static int t_state(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                   ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Task__StateResponse *resp;
	(void)userdata, (void)call;
	DECODE(Hull__Task__StateRequest, hull__task__state_request__unpack);
	FIND_PROC(p);
	FREE_REQ();
	resp = xmalloc(sizeof(*resp));
	hull__task__state_response__init(resp);
	resp->id = xstrdup(c->id);
	resp->exec_id = xstrdup(p->exec_id);
	resp->bundle = xstrdup(c->bundle);
	resp->pid = p->pid;
	resp->status = p->exited     ? HULL__TASK__STATUS__STOPPED
	               : !p->started ? HULL__TASK__STATUS__CREATED
	               : c->paused   ? HULL__TASK__STATUS__PAUSED
	                             : HULL__TASK__STATUS__RUNNING;
	resp->terminal = p->terminal;
	resp->stdin = xstrdup(p->stdin_path ? p->stdin_path : "");
	resp->stdout = xstrdup(p->stdout_path ? p->stdout_path : "");
	resp->stderr = xstrdup(p->stderr_path ? p->stderr_path : "");
	resp->exit_status = p->exit_status;
	if (p->exited)
		resp->exited_at = timestamp_new(p->exited_at_ns);
	*ret = &resp->base;
	return 0;
}

static int t_kill(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                  ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__SignalRequest sr = HULL__AGENT__V1__SIGNAL_REQUEST__INIT;
	int r;
	(void)userdata, (void)ret;
	DECODE(Hull__Task__KillRequest, hull__task__kill_request__unpack);
	FIND_PROC(p);
	sr.signal = req->signal;
	FREE_REQ();
	if (sr.signal == 0 || sr.signal >= 65)
		return hull_error_set(err, -EINVAL, "signal %u out of range", sr.signal);
	/* NotFound for a finished process: what containerd expects when it stops one. */
	if (p->exited || !p->started)
		return hull_error_set(err, -ENOENT, "process already finished");
	if ((r = vm_check(err)) < 0)
		return r;
	/* `all`: the init is PID 1 of its pid namespace; its end takes the rest along. */
	sr.id = c->id;
	sr.exec_id = p->exec_id;
	agent_call("SignalProcess", &sr.base, reply_empty, NULL, call);
	return 1;
}

static int t_delete(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                    ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Task__DeleteResponse *resp;
	Hull__Events__TaskDelete ev = HULL__EVENTS__TASK_DELETE__INIT;
	Hull__Task__Timestamp ts;
	(void)userdata, (void)call;
	DECODE(Hull__Task__DeleteRequest, hull__task__delete_request__unpack);
	FIND_PROC(p);
	FREE_REQ();
	if (p->started && !p->exited)
		return hull_error_set(err, -EBUSY, "'%s' is still running",
		                      p->exec_id[0] ? p->exec_id : c->id);
	if (p->exec_id[0] && p->stdio_open)
		return hull_error_set(err, -EBUSY, "'%s' output is still draining", p->exec_id);
	resp = xmalloc(sizeof(*resp));
	hull__task__delete_response__init(resp);
	resp->pid = p->pid;
	resp->exit_status = p->exit_status;
	resp->exited_at = timestamp_new(p->exited_at_ns ? p->exited_at_ns : realtime_ns());
	*ret = &resp->base;
	if (p->exec_id[0]) {
		for (struct proc **pp = &c->procs; *pp; pp = &(*pp)->next)
			if (*pp == p) {
				*pp = p->next;
				break;
			}
		proc_free(p);
		return 0;
	}
	/* The container: out of the guest, then its host mounts. */
	if (c->in_guest && !S->vm_gone) {
		Hull__Agent__V1__ContainerRequest cr = HULL__AGENT__V1__CONTAINER_REQUEST__INIT;
		_cleanup_error_ struct hull_error *e = NULL;
		cr.id = c->id;
		if (agent_client_call_sync(S->sb->ac, "RemoveContainer", &cr.base, NULL, NULL,
		                           CALL_TIMEOUT_MS, &e) < 0)
			log_warn("remove '%s' in the guest: %s", c->id, e->msg);
		agent_kick();
	}
	ctr_undo_host(c);
	set_timestamp(&ts, p->exited_at_ns ? p->exited_at_ns : realtime_ns());
	ev.container_id = c->id;
	ev.id = c->id;
	ev.pid = p->pid;
	ev.exit_status = p->exit_status;
	ev.exited_at = &ts;
	publish("/tasks/delete", "TaskDelete", &ev.base);
	for (struct ctr **cp = &S->ctrs; *cp; cp = &(*cp)->next)
		if (*cp == c) {
			*cp = c->next;
			break;
		}
	ctr_free(c);
	answer_waiters();
	return 0;
}

/* ---- Exec, Pids, Pause/Resume, Stats, Update, ResizePty, CloseIO -------------------- */

static int t_exec(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                  ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__ExecProcessRequest er = HULL__AGENT__V1__EXEC_PROCESS_REQUEST__INIT;
	Hull__Events__TaskExecAdded ev = HULL__EVENTS__TASK_EXEC_ADDED__INIT;
	struct proc *p;
	int r;
	(void)userdata, (void)ret;
	DECODE(Hull__Task__ExecProcessRequest, hull__task__exec_process_request__unpack);
	if (!id_is_valid(req->exec_id) || proc_find(c->id, req->exec_id) || !req->spec) {
		r = hull_error_set(err, proc_find(c->id, req->exec_id) ? -EEXIST : -EINVAL,
		                   "exec '%.76s': an unused id of [A-Za-z0-9_.-] and a spec",
		                   req->exec_id);
		FREE_REQ();
		return r;
	}
	if ((r = vm_check(err)) < 0) {
		FREE_REQ();
		return r;
	}
	p = proc_new(c, req->exec_id, req->terminal, req->stdin, req->stdout, req->stderr);
	r = proc_open_stdio(p, err);
	if (r < 0) {
		proc_free(p);
		FREE_REQ();
		return r;
	}
	p->next = c->procs->next;
	c->procs->next = p;
	/* The spec is an OCI process object as JSON, as containerd's Any carries it. */
	er.id = c->id;
	er.exec_id = p->exec_id;
	er.process = req->spec->value;
	agent_call("ExecProcess", &er.base, reply_empty, NULL, call);
	ev.container_id = c->id;
	ev.exec_id = p->exec_id;
	publish("/tasks/exec-added", "TaskExecAdded", &ev.base);
	FREE_REQ();
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
	resp.processes = xcalloc(resp.n_processes + 1, sizeof(*resp.processes));
	Hull__Task__ProcessInfo *infos = xcalloc(resp.n_processes + 1, sizeof(*infos));
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
	Hull__Agent__V1__ContainerRequest cr = HULL__AGENT__V1__CONTAINER_REQUEST__INIT;
	int r;
	(void)userdata, (void)ret;
	DECODE(Hull__Task__PidsRequest, hull__task__pids_request__unpack);
	FREE_REQ();
	if ((r = vm_check(err)) < 0)
		return r;
	cr.id = c->id;
	agent_call("ListProcesses", &cr.base, on_pids, NULL, call);
	return 1;
}

struct pause_ctx {
	struct ttrpc_call *call;
	char *id;
	bool pause;
};

static void on_paused(struct agent_client *ac, int code, const char *message,
                      const uint8_t *payload, size_t len, void *userdata)
{
	struct pause_ctx *pc = userdata;
	struct ctr *c = ctr_find(pc->id);
	reply_empty(ac, code, message, payload, len, pc->call);
	if (!code && c) {
		c->paused = pc->pause;
		publish_container(pc->pause ? "/tasks/paused" : "/tasks/resumed",
		                  pc->pause ? "TaskPaused" : "TaskResumed", c->id);
	}
	free(pc->id);
	free(pc);
}

static int pause_resume(struct ctr *c, struct ttrpc_call *call, bool pause, struct hull_error **err)
{
	Hull__Agent__V1__ContainerRequest cr = HULL__AGENT__V1__CONTAINER_REQUEST__INIT;
	struct pause_ctx *pc;
	int r = vm_check(err);
	if (r < 0)
		return r;
	pc = xmalloc(sizeof(*pc));
	pc->call = call;
	pc->id = xstrdup(c->id);
	pc->pause = pause;
	cr.id = c->id;
	agent_call(pause ? "PauseContainer" : "ResumeContainer", &cr.base, on_paused, NULL, pc);
	return 1;
}

static int t_pause(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                   ProtobufCMessage **ret, struct hull_error **err)
{
	(void)userdata, (void)ret;
	DECODE(Hull__Task__PauseRequest, hull__task__pause_request__unpack);
	FREE_REQ();
	return pause_resume(c, call, true, err);
}

static int t_resume(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                    ProtobufCMessage **ret, struct hull_error **err)
{
	(void)userdata, (void)ret;
	DECODE(Hull__Task__ResumeRequest, hull__task__resume_request__unpack);
	FREE_REQ();
	return pause_resume(c, call, false, err);
}

/* containerd decodes metrics by type: cgroup v2's, since the guest runs cgroup v2. */
static void on_stats(struct agent_client *ac, int code, const char *message, const uint8_t *payload,
                     size_t len, void *userdata)
{
	struct hull_error e = {.code = ttrpc_errno_from_code(code), .msg = (char *)message};
	Hull__Agent__V1__StatsResponse *st =
	    code ? NULL : hull__agent__v1__stats_response__unpack(NULL, len, payload);
	Hull__Task__StatsResponse resp = HULL__TASK__STATS_RESPONSE__INIT;
	Hull__Task__Any any = HULL__TASK__ANY__INIT;
	Hull__Events__Metrics m = HULL__EVENTS__METRICS__INIT;
	Hull__Events__PidsStat pids = HULL__EVENTS__PIDS_STAT__INIT;
	Hull__Events__CPUStat cpu = HULL__EVENTS__CPUSTAT__INIT;
	Hull__Events__MemoryStat mem = HULL__EVENTS__MEMORY_STAT__INIT;
	Hull__Events__MemoryEvents mev = HULL__EVENTS__MEMORY_EVENTS__INIT;
	uint8_t packed[256];
	(void)ac;

	if (!st) {
		ttrpc_call_reply(userdata, code ? e.code : -EBADMSG, code ? &e : NULL, NULL);
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
	Hull__Agent__V1__ContainerRequest cr = HULL__AGENT__V1__CONTAINER_REQUEST__INIT;
	int r;
	(void)userdata, (void)ret;
	DECODE(Hull__Task__StatsRequest, hull__task__stats_request__unpack);
	FREE_REQ();
	if ((r = vm_check(err)) < 0)
		return r;
	cr.id = c->id;
	agent_call("StatsContainer", &cr.base, on_stats, NULL, call);
	return 1;
}

static int t_update(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                    ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__UpdateRequest ur = HULL__AGENT__V1__UPDATE_REQUEST__INIT;
	int r;
	(void)userdata, (void)ret;
	DECODE(Hull__Task__UpdateTaskRequest, hull__task__update_task_request__unpack);
	if (!req->resources || (r = vm_check(err)) < 0) {
		r = req->resources ? r : hull_error_set(err, -EINVAL, "update: no resources");
		FREE_REQ();
		return r;
	}
	/* An OCI linux.resources object as JSON; the agent checks it as in a full spec. */
	ur.id = c->id;
	ur.resources = req->resources->value;
	agent_call("UpdateContainer", &ur.base, reply_empty, NULL, call);
	FREE_REQ();
	return 1;
}

static int t_resize(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                    ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__ResizeRequest rr = HULL__AGENT__V1__RESIZE_REQUEST__INIT;
	int r;
	(void)userdata, (void)ret;
	DECODE(Hull__Task__ResizePtyRequest, hull__task__resize_pty_request__unpack);
	FIND_PROC(p);
	rr.rows = req->height;
	rr.cols = req->width;
	FREE_REQ();
	if ((r = vm_check(err)) < 0)
		return r;
	rr.id = c->id;
	rr.exec_id = p->exec_id;
	agent_call("ResizePty", &rr.base, reply_empty, NULL, call);
	return 1;
}

static int t_close_io(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                      ProtobufCMessage **ret, struct hull_error **err)
{
	(void)userdata, (void)call, (void)ret;
	DECODE(Hull__Task__CloseIORequest, hull__task__close_iorequest__unpack);
	FIND_PROC(p);
	if (req->stdin && p->in_fd >= 0) {
		if (p->started)
			send_stdin_eof(p);
		else
			closefd(&p->in_fd); /* start sends EOF with the first grant */
	}
	FREE_REQ();
	return 0;
}

static int t_connect(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                     ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Task__ConnectResponse *resp;
	(void)userdata, (void)call;
	DECODE(Hull__Task__ConnectRequest, hull__task__connect_request__unpack);
	FREE_REQ();
	resp = xmalloc(sizeof(*resp));
	hull__task__connect_response__init(resp);
	resp->shim_pid = (uint32_t)getpid();
	resp->task_pid = c->procs->pid;
	resp->version = xstrdup(HULL_VERSION);
	*ret = &resp->base;
	return 0;
}

static int t_shutdown(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                      ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Task__ShutdownRequest *req = hull__task__shutdown_request__unpack(NULL, len, payload);
	(void)userdata, (void)call, (void)ret;
	if (!req)
		return hull_error_set(err, -EINVAL, "request does not decode");
	/* containerd asks after every task delete: the pod's shim stays while it has tasks. */
	if (!S->ctrs || req->now)
		S->shutdown = true;
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

/* ---- the loop ------------------------------------------------------------------------ */

static void on_signal(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct signalfd_siginfo si;
	(void)loop, (void)revents, (void)userdata;
	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		log_info("%s: stopping the sandbox", strsignal((int)si.ssi_signo));
		S->shutdown = true;
	}
}

static void serve_setup(struct shim *s, const struct shim_args *a)
{
	sigset_t mask;

	*s = (struct shim){.a = a, .sig_fd = -1};
	S = s;
	shim_config_defaults(&s->cfg);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGPIPE);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sigdelset(&mask, SIGPIPE);
	s->sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	s->loop = event_loop_new();
	event_add(s->loop, s->sig_fd, EPOLLIN, on_signal, NULL);
	s->srv = ttrpc_server_new(s->loop, methods, ELEMENTSOF(methods), s);
}

static int serve_run_and_stop(struct shim *s, const char *sock_path, bool run);

int shim_serve(const struct shim_args *a, const char *sock_path, int ready_fd)
{
	struct shim s;
	_cleanup_error_ struct hull_error *err = NULL;

	serve_setup(&s, a);
	if (ttrpc_server_listen(s.srv, sock_path, &err) < 0) {
		dprintf(ready_fd, "%s\n", err->msg);
		close(ready_fd);
		return 1;
	}
	(void)!write(ready_fd, "ok\n", 3);
	close(ready_fd);
	return serve_run_and_stop(&s, sock_path, true);
}

static void on_job_timeout(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	Hull__Agent__V1__SignalRequest sr = HULL__AGENT__V1__SIGNAL_REQUEST__INIT;
	struct proc *p = proc_by_key(userdata);
	uint64_t ticks;
	(void)revents;
	(void)!read(fd, &ticks, sizeof(ticks));
	event_del(loop, fd);
	if (!p || p->exited || S->vm_gone)
		return;
	log_warn("timeout: killing '%s'", p->c->id);
	sr.id = p->c->id;
	sr.exec_id = (char *)"";
	sr.signal = SIGKILL;
	agent_call("SignalProcess", &sr.base, NULL, NULL, NULL);
}

int shim_serve_job(const struct shim_args *a, const struct sandbox_config *cfg,
                   const struct shim_job *job, int ready_fd)
{
	const struct ctr_opts o = {
	    .overlay = job->root_overlay, .root_ro = job->root_overlay, .copy_files = true};
	struct sandbox_config sc = *cfg;
	struct shim s;
	_cleanup_error_ struct hull_error *err = NULL;
	_cleanup_free_ char *sock = NULL, *key = NULL, *log = NULL;
	_cleanup_close_ int timer = -1;
	struct ctr *c;
	struct proc *p;
	int r;

	serve_setup(&s, a);
	sc.shared_dir = true;
	sc.interrupt_fd = s.sig_fd;
	r = sandbox_start(&sc, &s.sb, &err);
	if (r < 0) {
		dprintf(ready_fd, "hull: %s\n", err->msg);
		close(ready_fd);
		serve_run_and_stop(&s, NULL, false);
		return 1;
	}
	event_add(s.loop, agent_client_fd(s.sb->ac), EPOLLIN, on_agent, NULL);
	event_add(s.loop, s.sb->vm->ops->exit_fd(s.sb->vm), EPOLLIN, on_vm_exit, NULL);
	log = xasprintf("%s/%s", s.sb->state_dir, job->log_name);
	c = xcalloc(1, sizeof(*c));
	c->id = xstrdup(job->id);
	c->bundle = xstrdup(job->bundle_dir ? job->bundle_dir : "");
	c->procs = p = proc_new(c, "", job->bundle->terminal, NULL, NULL, NULL);
	for (int i = 1; i <= 2; i++) {
		p->out_fd[i] = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (p->out_fd[i] < 0) {
			r = hull_error_set_errno(&err, -errno, "open '%s'", log);
			break;
		}
	}
	/* From here on our own messages go to the log too, not to the waiting caller. */
	if (r >= 0) {
		fflush(stdout);
		dup2(p->out_fd[1], STDOUT_FILENO);
		dup2(p->out_fd[1], STDERR_FILENO);
	}
	sock = xasprintf("%s/task.sock", s.sb->state_dir);
	if (r >= 0)
		r = create_in_guest(c, job->bundle, &o, &err);
	if (r >= 0)
		r = ttrpc_server_listen(s.srv, sock, &err);
	if (r < 0) {
		dprintf(ready_fd, "hull: %s\n", err->msg);
		close(ready_fd);
		ctr_undo_host(c);
		ctr_free(c);
		serve_run_and_stop(&s, sock, false);
		return 1;
	}
	c->next = S->ctrs;
	S->ctrs = c;
	/* "ok NAME" once the job runs (on_started); then the Task API serves. */
	proc_start(p, NULL, ready_fd);
	if (job->timeout_ms) {
		struct itimerspec its = {
		    .it_value = {.tv_sec = (time_t)(job->timeout_ms / 1000),
		                 .tv_nsec = (long)(job->timeout_ms % 1000) * 1000000}};
		key = proc_key(p);
		timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (timer >= 0 && timerfd_settime(timer, 0, &its, NULL) == 0)
			event_add(s.loop, timer, EPOLLIN, on_job_timeout, key);
	}
	return serve_run_and_stop(&s, sock, true);
}

/* Serve until Shutdown (run) or not at all; then stop the VM, undo every host mount,
 * remove the socket and the sandbox's state. */
static int serve_run_and_stop(struct shim *s, const char *sock_path, bool run)
{
	int r;

	while (run && !s->shutdown) {
		r = event_loop_once(s->loop, -1);
		if (r < 0 && r != -EINTR) {
			log_error("event loop: %s", strerror(-r));
			break;
		}
	}
	log_info("shutting down");
	while (s->waiters) {
		struct waiter *w = s->waiters;
		s->waiters = w->next;
		ttrpc_call_reply(w->call, -ECANCELED, NULL, NULL);
		free(w->id);
		free(w->exec_id);
		free(w);
	}
	/* Flush what containerd should still hear (the last events) before we go. */
	for (int i = 0; i < 50 && s->ev && agent_client_wants_write(s->ev); i++)
		(void)event_loop_once(s->loop, 20);
	s->srv = ttrpc_server_free(s->srv);
	if (sock_path)
		(void)unlink(sock_path);
	while (s->ctrs) {
		struct ctr *c = s->ctrs;
		s->ctrs = c->next;
		ctr_undo_host(c);
		ctr_free(c);
	}
	if (s->sb) {
		if (!s->vm_gone)
			event_del(s->loop, agent_client_fd(s->sb->ac));
		s->sb = sandbox_stop(s->sb, 5000);
	}
	shim_cgroup_leave(s->cgroups);
	strv_free(s->cgroups);
	events_drop();
	s->loop = event_loop_free(s->loop);
	close(s->sig_fd);
	shim_config_done(&s->cfg);
	S = NULL;
	return 0;
}
