/* SPDX-License-Identifier: MIT */
/* Stand-in for the container engine in the agent fuzzer: requests get through
 * validation into the agent's process lifecycle, and no process, mount or signal
 * happens. A "child" is a socketpair whose other end already holds its whole script,
 * one byte per report, chosen by the process's args[0]:
 *   "hang"     never reports (only RemoveContainer ends it)
 *   "fail"     fails its setup
 *   "missing"  gets READY, then fails its exec (ENOENT)
 *   else       READY, then exec succeeds (EOF)
 * An exec's helper reports a pid first. Stdio are pipes whose other ends are closed:
 * output is args[0] then EOF, stdin writes fail with EPIPE; a terminal is a socket.
 * "cat" is one pipe: stdin comes back as stdout (and fills up when nobody reads). */
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent-net.h"
#include "container/container.h"
#include "container/oci-spec.h"
#include "util.h"

#define FAKE_PID 100000

void container_process_init(struct container_process *proc)
{
	*proc = (struct container_process){
	    .sync_fd = -1, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1};
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void container_process_done(struct container_process *proc)
{
	close_fd(&proc->sync_fd);
	close_fd(&proc->stdin_fd);
	close_fd(&proc->stdout_fd);
	close_fd(&proc->stderr_fd);
}

bool container_process_reaped(struct container_process *proc, pid_t pid)
{
	if (pid <= 0 || pid != proc->pid || proc->exited)
		return false;
	proc->exited = true;
	return true;
}

int container_signal(struct container_process *proc, int sig)
{
	(void)sig;
	return proc->pid > 0 && !proc->exited ? 0 : -ESRCH;
}

/* The child's stdio: the agent's ends, the other ends closed after args[0] is written. */
static int fake_stdio(struct container_process *proc, bool terminal, const char *out)
{
	int in[2], o[2], e[2];

	if (terminal) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, o) < 0)
			return -errno;
		(void)!write(o[1], out, strlen(out));
		close(o[1]);
		proc->stdout_fd = o[0];
		return 0;
	}
	if (pipe2(in, O_CLOEXEC) < 0)
		return -errno;
	if (strcmp(out, "cat") == 0) {
		if (pipe2(e, O_CLOEXEC) < 0) {
			close(in[0]), close(in[1]);
			return -errno;
		}
		close(e[1]);
		proc->stdin_fd = in[1];
		proc->stdout_fd = in[0];
		proc->stderr_fd = e[0];
		return 0;
	}
	if (pipe2(o, O_CLOEXEC) < 0) {
		close(in[0]), close(in[1]);
		return -errno;
	}
	if (pipe2(e, O_CLOEXEC) < 0) {
		close(in[0]), close(in[1]), close(o[0]), close(o[1]);
		return -errno;
	}
	(void)!write(o[1], out, strlen(out));
	close(in[0]), close(o[1]), close(e[1]);
	proc->stdin_fd = in[1];
	proc->stdout_fd = o[0];
	proc->stderr_fd = e[0];
	return 0;
}

static int fake_child(struct container_process *proc, bool exec, bool terminal, const char *arg0,
                      struct hull_error **err)
{
	const char *script = strcmp(arg0, "fail") == 0      ? "F"
	                     : strcmp(arg0, "missing") == 0 ? "RX"
	                                                    : "R";
	char buf[4];
	int sv[2], r;

	container_process_init(proc);
	if (strcmp(arg0, "hang") == 0) {
		/* Never readable. */
		proc->sync_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (proc->sync_fd < 0)
			return hull_error_set_errno(err, -errno, "eventfd");
	} else {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
			return hull_error_set_errno(err, -errno, "socketpair");
		snprintf(buf, sizeof(buf), "%s%s", exec ? "P" : "", script);
		(void)!write(sv[1], buf, strlen(buf));
		close(sv[1]);
		proc->sync_fd = sv[0];
	}
	r = fake_stdio(proc, terminal, arg0);
	if (r < 0) {
		container_process_done(proc);
		return hull_error_set_errno(err, r, "stdio");
	}
	proc->phase = CONTAINER_SETUP;
	proc->terminal = terminal;
	proc->pid = exec ? 0 : FAKE_PID;
	return 0;
}

int container_create(const struct container_spec *spec, struct container_process *proc,
                     struct hull_error **err)
{
	return fake_child(proc, false, spec->terminal, spec->args[0], err);
}

int container_exec(const struct container_spec *container, pid_t init_pid, const char *process_json,
                   size_t len, struct container_process *proc, struct hull_error **err)
{
	struct oci_spec o = {0};
	int r;

	(void)container, (void)init_pid;
	container_process_init(proc);
	r = oci_process_parse(process_json, len, &o, err);
	if (r < 0)
		return r;
	r = fake_child(proc, true, o.terminal, o.args[0], err);
	oci_spec_done(&o);
	return r;
}

int container_step(struct container_process *proc, struct hull_error **err)
{
	char c;
	ssize_t n;

	if (proc->sync_fd < 0 ||
	    (proc->phase != CONTAINER_SETUP && proc->phase != CONTAINER_STARTING))
		return 0;
	n = read(proc->sync_fd, &c, 1);
	if (n < 0 && errno == EAGAIN)
		return 0;
	if (proc->phase == CONTAINER_STARTING) {
		close_fd(&proc->sync_fd);
		if (n == 0) {
			proc->phase = CONTAINER_RUNNING;
			return 1;
		}
		proc->phase = CONTAINER_FAILED;
		return hull_error_set_errno(err, -ENOENT, "exec: 'missing'");
	}
	if (n == 1 && c == 'P' && proc->pid == 0) {
		proc->pid = FAKE_PID + 1;
		return 0;
	}
	if (n == 1 && c == 'R' && proc->pid > 0) {
		if (proc->terminal)
			proc->stdin_fd = fcntl(proc->stdout_fd, F_DUPFD_CLOEXEC, 3);
		proc->phase = CONTAINER_CREATED;
		return 1;
	}
	close_fd(&proc->sync_fd);
	proc->phase = CONTAINER_FAILED;
	return hull_error_set(err, -EIO, "mount rootfs: fuzzing");
}

int container_start(struct container_process *proc, struct hull_error **err)
{
	if (proc->phase == CONTAINER_SETUP)
		return hull_error_set(err, -EBUSY, "still being set up");
	if (proc->phase != CONTAINER_CREATED)
		return hull_error_set(err, -EALREADY, "already started");
	proc->phase = CONTAINER_STARTING;
	return 0;
}

void container_cleanup_dir(const char *id)
{
	(void)id;
}

bool container_cgroup_oom_killed(const char *id)
{
	(void)id;
	return false;
}

void container_cgroup_remove(const char *id)
{
	(void)id;
}

int container_cgroup_stats(const char *id, struct container_stats *ret)
{
	(void)id;
	*ret = (struct container_stats){0};
	return 0;
}

int container_cgroup_update(const char *id, const char *json, size_t len, struct hull_error **err)
{
	(void)id, (void)json, (void)len;
	return hull_error_set(err, -EPERM, "fuzzing");
}

int container_cgroup_freeze(const char *id, bool frozen, struct hull_error **err)
{
	(void)id, (void)frozen;
	return hull_error_set(err, -EPERM, "fuzzing");
}

int container_cgroup_pids(const char *id, uint32_t **ret, size_t *ret_n)
{
	(void)id;
	*ret = NULL;
	*ret_n = 0;
	return 0;
}

/* The guest network: checked as the agent checks it, never applied to the host's. */
int net_configure(const Hull__Agent__V1__ConfigureNetworkRequest *req, struct hull_error **err)
{
	struct net_plan plan;
	return net_validate(req, &plan, err);
}

/* A forward connects to nothing real: one end of a socketpair whose other end wrote a
 * line and closed, so the forward reads it and sees its server hang up. */
int net_dial_local(unsigned port, struct hull_error **err)
{
	int sv[2];
	(void)port;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return hull_error_set_errno(err, -errno, "socketpair");
	(void)!write(sv[1], "HTTP/1.0 200 OK\r\n\r\n", 19);
	close(sv[1]);
	return sv[0];
}

int net_loopback_up(struct hull_error **err)
{
	(void)err;
	return 0;
}

/* Sync: checked as the agent checks it (agent-spec.c); the host's clock, RNG, name and
 * NICs are never touched. */
int agent_sync_apply(const Hull__Agent__V1__SyncRequest *req, struct hull_error **err)
{
	(void)req, (void)err;
	return 0;
}
