/* SPDX-License-Identifier: MIT */
/* The QEMU backend: launch as a child that dies with us, supervise through a pidfd,
 * talk QMP, stop politely then by force. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <linux/vm_sockets.h>
#include <time.h>

#include "log.h"
#include "qmp.h"
#include "util.h"
#include "vmm.h"

#define QMP_WAIT_MS 10000

struct vmm *vmm_new(const struct vmm_ops *ops, const struct vmm_config *cfg)
{
	struct vmm *vm = xcalloc(1, sizeof(*vm));
	vm->ops = ops;
	vm->cfg = *cfg;
	vm->pid = -1;
	vm->pidfd = -1;
	return vm;
}

struct vmm *vmm_free(struct vmm *vm)
{
	if (!vm)
		return NULL;
	vm->ops->free(vm);
	free(vm);
	return NULL;
}

char *vmm_file_tail(const char *path, size_t max)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *s;
	ssize_t n;

	if (fd < 0 || fstat(fd, &st) < 0)
		return xstrdup("");
	if ((size_t)st.st_size > max)
		(void)lseek(fd, st.st_size - (off_t)max, SEEK_SET);
	s = xmalloc(max + 1);
	n = read_all(fd, s, max);
	s[n > 0 ? n : 0] = '\0';
	return s;
}

static void sleep_ms(long ms)
{
	nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000}, NULL);
}

static bool qemu_exited(struct vmm *vm)
{
	siginfo_t si = {0};
	if (vm->reaped)
		return true;
	if (vm->pid <= 0)
		return true;
	if (waitid(P_PID, (id_t)vm->pid, &si, WEXITED | WNOHANG) < 0)
		return errno == ECHILD;
	if (si.si_pid == 0)
		return false;
	vm->reaped = true;
	vm->exit_status = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
	return true;
}

static int qemu_exit_error(struct vmm *vm, struct hull_error **err)
{
	_cleanup_free_ char *log = vmm_log_path(vm->cfg.state_dir);
	_cleanup_free_ char *tail = vmm_file_tail(log, 2048);
	size_t n = strlen(tail);
	while (n > 0 && tail[n - 1] == '\n')
		tail[--n] = '\0';
	return hull_error_set(err, -ECHILD, "QEMU exited with status %d%s%s", vm->exit_status,
	                      n ? ":\n" : "", tail);
}

static int qemu_start(struct vmm *vm, struct hull_error **err)
{
	_cleanup_strv_free_ char **argv = NULL;
	_cleanup_free_ char *log = vmm_log_path(vm->cfg.state_dir);
	_cleanup_free_ char *qmp_path = vmm_qmp_path(vm->cfg.state_dir);
	_cleanup_close_ int logfd = -1;
	int r;

	r = vmm_build_argv(&vm->cfg, &argv, err);
	if (r < 0)
		return r;
	if (log_get_level() >= LOG_LEVEL_DEBUG) {
		_cleanup_free_ char *line = xstrdup("");
		for (char **a = argv; *a; a++) {
			char *n = xasprintf("%s %s", line, *a);
			free(line);
			line = n;
		}
		log_debug("qemu:%s", line);
	}
	logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (logfd < 0)
		return hull_error_set_errno(err, -errno, "create '%s'", log);

	vm->pid = fork();
	if (vm->pid < 0)
		return hull_error_set_errno(err, -errno, "fork");
	if (vm->pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);
		sigset_t none;
		/* If the sandbox process dies, so does its VM: nothing is left behind
		 * even on SIGKILL. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(127);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* Ctrl-C at a terminal goes to the sandbox process, which decides. */
		setpgid(0, 0);
		/* TCG asks for huge pages on its 1 GiB translation buffer, so a few KiB
		 * of translated code costs 2 MiB each: an idle clone's largest cost.
		 * Inherited across exec; KVM's guest RAM keeps its huge pages. */
		if (vm->cfg.accel == VMM_ACCEL_TCG)
			(void)prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
		dup2(devnull, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		/* The taps (and a clone's state file) are ours until QEMU has them. */
		for (size_t i = 0; i < vm->cfg.n_nics; i++)
			if (vm->cfg.nics[i].fd >= 0)
				(void)fcntl(vm->cfg.nics[i].fd, F_SETFD, 0);
		if (vm->cfg.incoming)
			(void)fcntl(vm->cfg.incoming_fd, F_SETFD, 0);
		if (vm->cfg.mem_fd > 2)
			(void)fcntl(vm->cfg.mem_fd, F_SETFD, 0);
		execvp(argv[0], argv);
		dprintf(2, "exec '%s': %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	vm->pidfd = (int)syscall(SYS_pidfd_open, vm->pid, 0);

	/* The monitor socket appears once QEMU has set up; it is also our proof of life. */
	for (int waited = 0;; waited += 2) {
		r = qmp_connect(qmp_path, &vm->qmp, NULL);
		if (r == 0)
			break;
		if (qemu_exited(vm)) {
			r = qemu_exit_error(vm, err);
			if (vm->exit_status == 127)
				(*err)->code = -ENOENT;
			return r;
		}
		if (waited >= QMP_WAIT_MS) {
			vm->ops->stop(vm, 0);
			return hull_error_set(
			    err, -ETIMEDOUT, "QEMU did not open its monitor in %d ms", QMP_WAIT_MS);
		}
		sleep_ms(2);
	}
	r = qmp_handshake(vm->qmp, QMP_WAIT_MS, err);
	if (r < 0) {
		/* QEMU quitting during the handshake (it refused the kernel, a device, an
		 * option) says more in its own log than the broken socket does. */
		for (int i = 0; i < 100 && !qemu_exited(vm); i++)
			sleep_ms(2);
		if (qemu_exited(vm) && err) {
			*err = hull_error_free(*err);
			r = qemu_exit_error(vm, err);
		}
		vm->ops->stop(vm, 0);
		return r;
	}
	return 0;
}

static int connect_unix(const char *path, int *ret_fd)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* Non-blocking: 0 with *ret_fd connected or still connecting (writable once it is
 * decided; SO_ERROR tells), or -errno. */
static int connect_vsock(uint32_t cid, int *ret_fd)
{
	struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = 1024};
	_cleanup_close_ int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		return -errno;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int qemu_connect_agent(struct vmm *vm, int *ret_fd, struct hull_error **err)
{
	int r;

	if (vm->cfg.channel == VMM_CHANNEL_SERIAL) {
		_cleanup_free_ char *path = vmm_agent_path(vm->cfg.state_dir);
		/* QEMU is the server and buffers nothing for us: bytes written before the
		 * guest opens the port wait in the socket until it does. */
		r = connect_unix(path, ret_fd);
		if (r < 0)
			return hull_error_set_errno(err, r, "connect agent channel '%s'", path);
		return 0;
	}
	/* vsock: the guest listens only once the agent runs; the caller tries again
	 * while the connection is refused. */
	r = connect_vsock(vm->cfg.vsock_cid, ret_fd);
	if (r == -ECONNRESET || r == -ETIMEDOUT || r == -ECONNREFUSED || r == -ENODEV)
		return -EAGAIN;
	if (r < 0)
		return hull_error_set_errno(err, r, "connect agent over vsock cid %u",
		                            vm->cfg.vsock_cid);
	return 0;
}

static int qemu_exit_fd(struct vmm *vm)
{
	return vm->pidfd;
}

static void qemu_stop(struct vmm *vm, unsigned timeout_ms)
{
	if (qemu_exited(vm))
		return;
	if (timeout_ms > 0 && vm->qmp) {
		/* "quit" ends QEMU at once; the guest already flushed what mattered. */
		(void)qmp_execute(vm->qmp, "quit", NULL, NULL, (int)timeout_ms, NULL);
		for (unsigned waited = 0; waited < timeout_ms && !qemu_exited(vm); waited += 5)
			sleep_ms(5);
	}
	if (!qemu_exited(vm)) {
		kill(vm->pid, SIGKILL);
		while (!qemu_exited(vm))
			sleep_ms(1);
	}
}

/* ---- templates: save and restore with x-ignore-shared ------------------------------
 *
 * Guest RAM lives in a file (cfg.mem_path), so only the device state travels: the
 * migration capability x-ignore-shared leaves shared RAM out of the stream. QEMU 7.2
 * has no file: URI and -sandbox forbids exec:, so the stream goes to an fd: passed
 * with getfd to save, inherited by the clone to load. x-ignore-shared is a QMP-only
 * setting there (docs/templates.md). */

#define MIGRATE_WAIT_MS 10000
#define STATE_FDNAME "hull-state"

static json_object *ignore_shared_caps(void)
{
	json_object *args = json_object_new_object(), *caps = json_object_new_array();
	json_object *cap = json_object_new_object();
	json_object_object_add(cap, "capability", json_object_new_string("x-ignore-shared"));
	json_object_object_add(cap, "state", json_object_new_boolean(1));
	json_object_array_add(caps, cap);
	json_object_object_add(args, "capabilities", caps);
	return args;
}

/* Does this QEMU know x-ignore-shared? From its own answer, not its version. */
static int check_ignore_shared(struct vmm *vm, struct hull_error **err)
{
	json_object *ret = NULL;
	bool found = false;
	int r = qmp_execute(vm->qmp, "query-migrate-capabilities", NULL, &ret, QMP_WAIT_MS, err);
	if (r < 0)
		return r;
	for (size_t i = 0;
	     json_object_is_type(ret, json_type_array) && i < json_object_array_length(ret); i++) {
		json_object *c = json_object_array_get_idx(ret, i), *name = NULL;
		if (json_object_object_get_ex(c, "capability", &name) &&
		    strcmp(json_object_get_string(name), "x-ignore-shared") == 0)
			found = true;
	}
	json_object_put(ret);
	if (!found)
		return hull_error_set(err, -EOPNOTSUPP,
		                      "this QEMU has no x-ignore-shared migration capability");
	return 0;
}

static int set_ignore_shared(struct vmm *vm, struct hull_error **err)
{
	json_object *args = ignore_shared_caps();
	int r = check_ignore_shared(vm, err);
	if (r == 0)
		r = qmp_execute(vm->qmp, "migrate-set-capabilities", args, NULL, QMP_WAIT_MS, err);
	json_object_put(args);
	return r;
}

/* query-migrate's status: 1 completed, 0 still going, < 0 failed. */
static int migrate_status(struct vmm *vm, struct hull_error **err)
{
	json_object *ret = NULL, *st = NULL, *desc = NULL;
	const char *status;
	int r = qmp_execute(vm->qmp, "query-migrate", NULL, &ret, QMP_WAIT_MS, err);

	if (r < 0)
		return r;
	json_object_object_get_ex(ret, "status", &st);
	status = st ? json_object_get_string(st) : "none";
	if (strcmp(status, "completed") == 0)
		r = 1;
	else if (strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0) {
		json_object_object_get_ex(ret, "error-desc", &desc);
		r = hull_error_set(err, -EIO, "migration %s: %.256s", status,
		                   desc ? json_object_get_string(desc) : "(no reason given)");
	} else
		r = 0;
	json_object_put(ret);
	return r;
}

static int qemu_save(struct vmm *vm, int fd, struct hull_error **err)
{
	json_object *args;
	int r;

	if (!vm->qmp || !vm->cfg.mem_shared)
		return hull_error_set(err, -EINVAL, "save: the VM's RAM is not a shared file");
	r = qmp_execute(vm->qmp, "stop", NULL, NULL, QMP_WAIT_MS, err);
	if (r == 0)
		r = set_ignore_shared(vm, err);
	if (r < 0)
		return r;
	args = json_object_new_object();
	json_object_object_add(args, "fdname", json_object_new_string(STATE_FDNAME));
	r = qmp_execute_fd(vm->qmp, "getfd", args, fd, NULL, QMP_WAIT_MS, err);
	json_object_put(args);
	if (r < 0)
		return r;
	args = json_object_new_object();
	json_object_object_add(args, "uri", json_object_new_string("fd:" STATE_FDNAME));
	r = qmp_execute(vm->qmp, "migrate", args, NULL, QMP_WAIT_MS, err);
	json_object_put(args);
	/* The device state is tens of KB: done in milliseconds. */
	for (int waited = 0; r == 0; waited++) {
		r = migrate_status(vm, err);
		if (r == 0 && waited >= MIGRATE_WAIT_MS)
			r = hull_error_set(err, -ETIMEDOUT, "save: not done in %d ms",
			                   MIGRATE_WAIT_MS);
		if (r == 0)
			sleep_ms(1);
	}
	return r < 0 ? hull_error_prefix(err, "save the template's state") : 0;
}

static int qemu_restore(struct vmm *vm, struct hull_error **err)
{
	json_object *args;
	int r;

	if (!vm->qmp || !vm->cfg.incoming)
		return hull_error_set(err, -EINVAL, "restore: the VM was not started to restore");
	r = set_ignore_shared(vm, err);
	if (r < 0)
		return r;
	/* No self-announcement after the load: it would send the template's MAC (in the
	 * device state) onto the clone's network before the guest takes its own. */
	args = json_object_new_object();
	json_object_object_add(args, "announce-rounds", json_object_new_int(0));
	r = qmp_execute(vm->qmp, "migrate-set-parameters", args, NULL, QMP_WAIT_MS, err);
	json_object_put(args);
	if (r < 0)
		return r;
	{
		_cleanup_free_ char *uri = xasprintf("fd:%d", vm->cfg.incoming_fd);
		args = json_object_new_object();
		json_object_object_add(args, "uri", json_object_new_string(uri));
		r = qmp_execute(vm->qmp, "migrate-incoming", args, NULL, QMP_WAIT_MS, err);
		json_object_put(args);
	}
	return r;
}

static int qemu_restore_poll(struct vmm *vm, struct hull_error **err)
{
	int r = migrate_status(vm, err);
	if (r <= 0)
		return r < 0 ? hull_error_prefix(err, "restore from the template") : 0;
	/* The template was stopped before its state was saved: so is the clone. */
	r = qmp_execute(vm->qmp, "cont", NULL, NULL, QMP_WAIT_MS, err);
	return r < 0 ? r : 1;
}

static void qemu_free(struct vmm *vm)
{
	if (vm->pid > 0 && !vm->reaped)
		qemu_stop(vm, 0);
	vm->qmp = qmp_free(vm->qmp);
	if (vm->pidfd >= 0)
		close(vm->pidfd);
	vm->pidfd = -1;
}

const struct vmm_ops vmm_qemu_ops = {
    .name = "qemu",
    .start = qemu_start,
    .connect_agent = qemu_connect_agent,
    .exit_fd = qemu_exit_fd,
    .exited = qemu_exited,
    .stop = qemu_stop,
    .save = qemu_save,
    .restore = qemu_restore,
    .restore_poll = qemu_restore_poll,
    .free = qemu_free,
};
