/* SPDX-License-Identifier: MIT */
/*
 * Container setup across clone(), as a protocol (runc's nsexec, crun): the parent
 * clones a child into new namespaces; the child walks named stages and either reports
 * READY or reports {stage, errno, message} and _exit()s. Start is one byte from the
 * parent; a successful execve() closes the CLOEXEC sync socket, which the parent reads
 * as EOF.
 */
#include "container.h"
#include "container-internal.h"

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>

#include "macros.h"
#include "util.h"

#define CONTAINER_RUN_DIR "/run/hull/c"
#define CONTAINER_SHARES_DIR "/run/hull/shares"

enum sync_type {
	SYNC_READY = 1,
	SYNC_START,
	SYNC_ERROR,
	SYNC_PID,    /* exec helper -> parent: the process's pid in .err */
	SYNC_MAPPED, /* parent -> child: uid/gid maps written, go on */
};

struct sync_msg {
	uint32_t type;
	int32_t stage;
	int32_t err; /* positive errno */
	char msg[512];
};

/* ---- child side ------------------------------------------------------------------- */

_printf_(4, 5) _noreturn_
    static void child_fail(int sync_fd, enum container_stage stage, int err, const char *fmt, ...)
{
	struct sync_msg m = {.type = SYNC_ERROR, .stage = stage, .err = err};
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m.msg, sizeof(m.msg), fmt, ap);
	va_end(ap);
	(void)!write(sync_fd, &m, sizeof(m));
	_exit(stage == STAGE_EXEC ? (err == ENOENT ? 127 : 126) : 125);
}

/* Report a topic function's error for stage and exit. */
_noreturn_ static void child_fail_err(int sync_fd, enum container_stage stage, struct hull_error *e)
{
	child_fail(sync_fd, stage, e && e->code < 0 ? -e->code : EIO, "%s", e ? e->msg : "failed");
}

char *container_share_path(const char *tag)
{
	return xasprintf(CONTAINER_SHARES_DIR "/%s", tag);
}

#define CONTAINER_LAYERS_DIR "/run/hull/layers"

static char *layer_path(const char *serial)
{
	return xasprintf(CONTAINER_LAYERS_DIR "/%s", serial);
}

/* The virtio-blk disk whose serial the host set, mounted once (read-only erofs) at
 * /run/hull/layers/<serial> for every container that stacks it. */
static int layer_mount(const char *serial, struct hull_error **err)
{
	_cleanup_free_ char *path = layer_path(serial);
	_cleanup_free_ char *name = NULL, *dev = NULL;
	struct stat st, parent;
	int r = mkdir_p(path, 0711);

	if (r < 0)
		return hull_error_set_errno(err, r, "mkdir '%s'", path);
	if (stat(path, &st) == 0 && stat(CONTAINER_LAYERS_DIR, &parent) == 0 &&
	    st.st_dev != parent.st_dev)
		return 0; /* mounted already */
	name = sysfs_find("/sys/block", "serial", serial);
	if (!name) {
		(void)rmdir(path);
		return hull_error_set(err, -ENODEV, "no disk with serial '%s'", serial);
	}
	dev = xasprintf("/dev/%s", name);
	/* Security: read-only, and the device is read-only at QEMU too. */
	if (mount(dev, path, "erofs", MS_RDONLY | MS_NODEV, NULL) < 0)
		return hull_error_set_errno(err, -errno, "mount layer '%s' (%s)", serial, dev);
	return 0;
}

int container_share_mount(const char *tag, bool readonly, struct hull_error **err)
{
	_cleanup_free_ char *path = container_share_path(tag);
	struct stat st, parent;
	int r;

	/* A virtio-9p tag can be mounted once: the agent mounts each share once, in its
	 * own namespace, and containers bind or overlay from there. */
	r = mkdir_p(path, 0711);
	if (r < 0)
		return hull_error_set_errno(err, r, "mkdir '%s'", path);
	if (stat(path, &st) == 0 && stat(CONTAINER_SHARES_DIR, &parent) == 0 &&
	    st.st_dev != parent.st_dev)
		return 0; /* mounted already */
	/* cache=mmap: no stale dentries against a live host directory, mmap still works.
	 * Security: read-only unless a container needs to write to the share itself. */
	if (mount(tag, path, "9p", readonly ? MS_RDONLY : 0,
	          "trans=virtio,version=9p2000.L,msize=262144,cache=mmap") < 0) {
		r = -errno;
		(void)rmdir(path);
		return hull_error_set_errno(err, r, "mount 9p share '%s'", tag);
	}
	return 0;
}

/* True when path has a ".." component. */
static bool path_has_dotdot(const char *path)
{
	for (const char *p = path; (p = strstr(p, "..")); p += 2)
		if ((p == path || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
			return true;
	return false;
}

/* Make dir (and parents) below root, refusing '..' so a destination cannot climb out of
 * the rootfs by name. Symlinked components are issue #3's (openat2 RESOLVE_IN_ROOT). */
static int mkdir_in_root(const char *root, const char *path, char **ret)
{
	if (path[0] != '/' || path_has_dotdot(path))
		return -EINVAL;
	*ret = xasprintf("%s%s", root, path);
	return mkdir_p(*ret, 0755);
}

static void child_mount_root(int sync_fd, const struct container_spec *spec, const char *base,
                             const char *root)
{
	_cleanup_free_ char *tagdir = container_share_path(spec->root_tag);
	_cleanup_free_ char *share =
	    spec->root_subpath ? xasprintf("%s/%s", tagdir, spec->root_subpath) : xstrdup(tagdir);

	if (spec->root_layers) {
		/* overlayfs lists lower layers top first. */
		size_t n = strv_length(spec->root_layers);
		free(share);
		share = xstrdup("");
		for (size_t i = n; i-- > 0;) {
			_cleanup_free_ char *lp = layer_path(spec->root_layers[i]);
			char *j = xasprintf("%s%s%s", share, *share ? ":" : "", lp);
			free(share);
			share = j;
		}
	}

	if (mkdir_p(root, 0755) < 0)
		child_fail(sync_fd, STAGE_MOUNT_ROOT, errno, "mkdir '%s'", root);
	if (!spec->root_overlay) {
		/* Security: the host directory itself, writable only when the user asked. */
		if (mount(share, root, NULL, MS_BIND, NULL) < 0)
			child_fail(sync_fd, STAGE_MOUNT_ROOT, errno, "bind share '%s'",
			           spec->root_tag);
		if (spec->root_readonly &&
		    mount(NULL, root, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
			child_fail(sync_fd, STAGE_MOUNT_ROOT, errno, "read-only share '%s'",
			           spec->root_tag);
		return;
	}
	_cleanup_free_ char *scratch = xasprintf("%s/scratch", base);
	_cleanup_free_ char *upper = xasprintf("%s/scratch/upper", base);
	_cleanup_free_ char *work = xasprintf("%s/scratch/work", base);
	_cleanup_free_ char *opts = NULL;

	if (mkdir_p(scratch, 0755) < 0)
		child_fail(sync_fd, STAGE_MOUNT_ROOT, errno, "mkdir '%s'", base);
	/* Security: the share (read-only) is the lower layer; the container's writes land
	 * in a tmpfs upper layer in its own mount namespace, so the host rootfs is never
	 * modified and each container of a pod has its own copy-on-write root. */
	if (mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755") < 0)
		child_fail(sync_fd, STAGE_MOUNT_ROOT, errno, "mount tmpfs for overlay");
	if (mkdir(upper, 0755) < 0 || mkdir(work, 0755) < 0)
		child_fail(sync_fd, STAGE_MOUNT_ROOT, errno, "mkdir overlay dirs");
	opts = xasprintf("lowerdir=%s,upperdir=%s,workdir=%s", share, upper, work);
	if (mount("overlay", root, "overlay", 0, opts) < 0)
		child_fail(sync_fd, STAGE_MOUNT_ROOT, errno, "mount overlay");
}

static void child_pivot_root(int sync_fd, const char *root)
{
	/* Security: pivot_root (not chroot) so the agent's filesystem is detached from the
	 * container's mount namespace entirely and cannot be reached with '..'. */
	if (chdir(root) < 0)
		child_fail(sync_fd, STAGE_PIVOT_ROOT, errno, "chdir '%s'", root);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		child_fail(sync_fd, STAGE_PIVOT_ROOT, errno, "pivot_root");
	if (umount2(".", MNT_DETACH) < 0)
		child_fail(sync_fd, STAGE_PIVOT_ROOT, errno, "detach old root");
	if (chdir("/") < 0)
		child_fail(sync_fd, STAGE_PIVOT_ROOT, errno, "chdir '/'");
}

static const char *env_get(char **env, const char *name)
{
	size_t n = strlen(name);
	for (char **e = env; e && *e; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

/* HOME for uid from the container's /etc/passwd, "/" when it has none: what runc
 * sets when the spec's env lacks HOME. Runs after pivot_root. */
static char *home_for(uid_t uid)
{
	_cleanup_fclose_ FILE *f = fopen("/etc/passwd", "re");
	char line[1024];

	while (f && fgets(line, sizeof(line), f)) {
		char *fields[7] = {0}, *p = line;
		size_t n = 0;
		line[strcspn(line, "\n")] = '\0';
		/* strsep keeps empty fields, which passwd has. */
		while (n < 7 && (fields[n] = strsep(&p, ":")))
			n++;
		if (n >= 6 && fields[2][0] && strtoul(fields[2], NULL, 10) == uid && fields[5][0])
			return xstrdup(fields[5]);
	}
	return xstrdup("/");
}

_noreturn_ static void child_exec(int sync_fd, const struct container_spec *spec)
{
	const char *file = spec->args[0];
	const char *path = env_get(spec->env, "PATH");
	int err = ENOENT;

	if (strchr(file, '/')) {
		execve(file, spec->args, spec->env);
		child_fail(sync_fd, STAGE_EXEC, errno, "'%s'", file);
	}
	/* PATH search with the container's PATH, not the agent's. */
	if (!path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	for (const char *p = path; *p;) {
		const char *colon = strchrnul(p, ':');
		_cleanup_free_ char *cand =
		    xasprintf("%.*s/%s", (int)(colon - p), colon == p ? "." : p, file);
		execve(cand, spec->args, spec->env);
		if (errno != ENOENT && errno != ENOTDIR)
			err = errno;
		p = *colon ? colon + 1 : colon;
	}
	child_fail(sync_fd, STAGE_EXEC, err, "'%s'", file);
}

/* Send buf with fd attached (SCM_RIGHTS). */
static int send_with_fd(int sock, const void *buf, size_t len, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = {0};
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -errno;
}

/* The terminal is made inside the container's own devpts (as runc's console socket
 * does), so ttyname() and /dev/pts/N work there; the master goes to the agent. The
 * caller has already pivoted into the new root and may still have privileges. */
static int child_open_terminal(int sync_fd, const struct container_spec *spec)
{
	struct winsize ws = {.ws_row = spec->rows ? spec->rows : 24,
	                     .ws_col = spec->cols ? spec->cols : 80};
	int master, slave;
	char name[64];

	master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		child_fail(sync_fd, STAGE_CHILD_INIT, errno, "open /dev/ptmx");
	if (grantpt(master) < 0 || unlockpt(master) < 0 ||
	    ptsname_r(master, name, sizeof(name)) != 0)
		child_fail(sync_fd, STAGE_CHILD_INIT, errno, "unlock pty");
	slave = open(name, O_RDWR | O_NOCTTY);
	if (slave < 0)
		child_fail(sync_fd, STAGE_CHILD_INIT, errno, "open '%s'", name);
	(void)ioctl(slave, TIOCSWINSZ, &ws);
	/* The process may run as another user: the terminal must be its own. */
	if (fchown(slave, spec->uid, spec->gid) < 0)
		child_fail(sync_fd, STAGE_CHILD_INIT, errno, "chown '%s'", name);
	for (int i = 0; i < 3; i++)
		if (dup2(slave, i) < 0)
			child_fail(sync_fd, STAGE_CHILD_INIT, errno, "dup2 terminal");
	if (slave > 2)
		close(slave);
	if (ioctl(0, TIOCSCTTY, 0) < 0)
		child_fail(sync_fd, STAGE_CHILD_INIT, errno, "set controlling terminal");
	return master;
}

/* First stage of every container process: signals, stdio, session. */
static bool wants_userns(const struct container_spec *spec)
{
	for (size_t i = 0; i < spec->oci->n_namespaces; i++)
		if (spec->oci->namespaces[i].type == CLONE_NEWUSER &&
		    !spec->oci->namespaces[i].path)
			return true;
	return false;
}

/* The host id that container id 0 maps to (0 when unmapped: the setup then fails with
 * a clear message when it tries to become root). */
static uid_t host_id_of_root(const struct oci_id_mapping *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (m[i].container_id == 0)
			return m[i].host_id;
	return 0;
}

/* Write /proc/PID/{uid,gid}_map from the spec. */
static int write_id_maps(pid_t pid, const struct oci_spec *o, struct hull_error **err)
{
	for (int g = 0; g < 2; g++) {
		const struct oci_id_mapping *m = g ? o->gid_mappings : o->uid_mappings;
		size_t n = g ? o->n_gid_mappings : o->n_uid_mappings;
		_cleanup_free_ char *path =
		    xasprintf("/proc/%d/%s", (int)pid, g ? "gid_map" : "uid_map");
		_cleanup_free_ char *text = xstrdup("");
		_cleanup_close_ int fd = -1;
		for (size_t i = 0; i < n; i++) {
			char *t = xasprintf("%s%u %u %u\n", text, m[i].container_id, m[i].host_id,
			                    m[i].size);
			free(text);
			text = t;
		}
		/* Security: the container's ids are these host ids, nothing else. */
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
			return hull_error_set_errno(err, -errno, "write %s",
			                            g ? "gid_map" : "uid_map");
	}
	return 0;
}

static void child_begin(int sync_fd, const struct container_spec *spec, int stdio[3])
{
	sigset_t all;

	(void)prctl(PR_SET_NAME, "hull:setup");
	/* The agent blocks signals for its signalfd; the container starts with none. */
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	if (!spec->terminal)
		for (int i = 0; i < 3; i++)
			if (dup2(stdio[i], i) < 0)
				child_fail(sync_fd, STAGE_CHILD_INIT, errno, "dup2 stdio");
	/* The agent's other fds (other containers' pipe ends and setup sockets) are
	 * CLOEXEC, but a setup that hangs would hold them open until its exec: another
	 * container's stdin would not see EOF. Only the setup socket stays. */
	if (sync_fd > 3)
		(void)close_range(3, (unsigned)sync_fd - 1, 0);
	(void)close_range((unsigned)sync_fd + 1, ~0u, 0);
	if (setsid() < 0)
		child_fail(sync_fd, STAGE_CHILD_INIT, errno, "setsid");
}

_noreturn_ static void child_finish(int sync_fd, const struct container_spec *spec);

/* The mount namespace path the spec joins, or NULL. */
static const char *joined_mount_ns(const struct container_spec *spec)
{
	for (size_t i = 0; i < spec->oci->n_namespaces; i++)
		if (spec->oci->namespaces[i].type == CLONE_NEWNS && spec->oci->namespaces[i].path)
			return spec->oci->namespaces[i].path;
	return NULL;
}

_noreturn_ static void child_main(int sync_fd, const struct container_spec *spec, int stdio[3])
{
	_cleanup_free_ char *base = xasprintf(CONTAINER_RUN_DIR "/%s", spec->id);
	_cleanup_free_ char *root = xasprintf("%s/root", base);
	struct hull_error *e = NULL;

	child_begin(sync_fd, spec, stdio);
	if (wants_userns(spec)) {
		/* Until the parent wrote our maps we are nobody: wait before any setup. */
		struct sync_msg mm;
		if (read(sync_fd, &mm, sizeof(mm)) != sizeof(mm) || mm.type != SYNC_MAPPED)
			_exit(125);
		/* Security: become the namespace's root (a mapped id) for the setup; our host
		 * uid 0 means nothing in here and files could not be created. */
		if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
			child_fail(sync_fd, STAGE_NAMESPACES, errno,
			           "user namespace: become its root (is 0 mapped?)");
	}

	/* Security: join the namespaces the spec names by path (a pod's shared ones); the
	 * mount namespace last, since the paths are the agent's. */
	for (size_t i = 0; i < spec->oci->n_namespaces; i++) {
		const struct oci_namespace *ns = &spec->oci->namespaces[i];
		if (!ns->path || ns->type == CLONE_NEWPID || ns->type == CLONE_NEWNS)
			continue; /* pid: the parent cloned us into it */
		int fd = open(ns->path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, ns->type) < 0)
			child_fail(sync_fd, STAGE_NAMESPACES, errno, "'%s'", ns->path);
		close(fd);
	}
	if (joined_mount_ns(spec)) {
		/* Another container's filesystem view, as it is (nsenter -m): its root and
		 * mounts are that container's; this spec's root, mounts and masks do not
		 * apply, and nothing of the other container's view is changed. */
		const char *path = joined_mount_ns(spec);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWNS) < 0)
			child_fail(sync_fd, STAGE_NAMESPACES, errno, "'%s'", path);
		close(fd);
		if (chdir("/") < 0)
			child_fail(sync_fd, STAGE_CWD, errno, "'/'");
		if (spec->hostname && sethostname(spec->hostname, strlen(spec->hostname)) < 0)
			child_fail(sync_fd, STAGE_HOSTNAME, errno, "'%s'", spec->hostname);
		child_finish(sync_fd, spec);
	}
	/* Security: nothing the container mounts propagates back to the agent. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		child_fail(sync_fd, STAGE_MOUNT_ROOT, errno, "make / private");
	child_mount_root(sync_fd, spec, base, root);

	/* The spec's mounts in order; host shares stand in for bind mounts of host paths
	 * at the destinations the host named. */
	if (container_mount_oci(root, spec, &e) < 0)
		child_fail_err(sync_fd, STAGE_MOUNT_SPECIAL, e);

	{
		_cleanup_free_ char *cwd = NULL;
		int r = mkdir_in_root(root, spec->cwd, &cwd);
		if (r < 0)
			child_fail(sync_fd, STAGE_CWD, -r, "'%s'", spec->cwd);
	}
	child_pivot_root(sync_fd, root);
	{
		const struct oci_spec *o = spec->oci;
		if (o->rootfs_propagation &&
		    mount(NULL, "/", NULL, o->rootfs_propagation, NULL) < 0)
			child_fail(sync_fd, STAGE_PIVOT_ROOT, errno, "rootfs propagation");
		/* Sysctls before the masked and read-only paths (runc's order): every
		 * runc-made spec lists /proc/sys as read-only. */
		if (container_apply_sysctl(o, &e) < 0)
			child_fail_err(sync_fd, STAGE_SYSCTL, e);
		if (container_mask_paths(o, &e) < 0)
			child_fail_err(sync_fd, STAGE_MASK_PATHS, e);
		/* Security: root.readonly makes the whole root read-only for the process. */
		if (o->root_readonly &&
		    mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
			child_fail(sync_fd, STAGE_PIVOT_ROOT, errno, "remount / read-only");
	}
	if (spec->hostname && sethostname(spec->hostname, strlen(spec->hostname)) < 0)
		child_fail(sync_fd, STAGE_HOSTNAME, errno, "'%s'", spec->hostname);
	child_finish(sync_fd, spec);
}

/* Last stages, shared by a container's init and exec'd processes: terminal, HOME,
 * rlimits, seccomp, identity and capabilities, cwd; then READY, START, exec. */
_noreturn_ static void child_finish(int sync_fd, const struct container_spec *spec)
{
	struct hull_error *e = NULL;
	struct sync_msg m;
	int master = -1;

	if (spec->terminal)
		master = child_open_terminal(sync_fd, spec);
	if (!env_get(spec->env, "HOME")) {
		/* The child owns its copy of the spec: add HOME as runc does. */
		_cleanup_free_ char *home = home_for(spec->uid);
		strv_push(&((struct container_spec *)spec)->env, xasprintf("HOME=%s", home));
	}

	if (container_apply_rlimits(spec->oci, &e) < 0)
		child_fail_err(sync_fd, STAGE_RLIMITS, e);
	/* Without no_new_privs a filter may only be loaded with CAP_SYS_ADMIN: load it
	 * now, before the capabilities go (runc's order). */
	if (!spec->oci->no_new_privileges && container_seccomp_load(spec->oci->seccomp, &e) < 0)
		child_fail_err(sync_fd, STAGE_SECCOMP, e);
	if (container_set_identity(spec, &e) < 0)
		child_fail_err(sync_fd, STAGE_USER, e);
	if (chdir(spec->cwd) < 0)
		child_fail(sync_fd, STAGE_CWD, errno, "'%s'", spec->cwd);

	m = (struct sync_msg){.type = SYNC_READY};
	if (master >= 0) {
		int r = send_with_fd(sync_fd, &m, sizeof(m), master);
		close(master);
		if (r < 0)
			_exit(125);
	} else if (write(sync_fd, &m, sizeof(m)) != sizeof(m)) {
		_exit(125);
	}
	if (read(sync_fd, &m, sizeof(m)) != sizeof(m) || m.type != SYNC_START)
		_exit(125); /* parent gone or removed before start */
	(void)prctl(PR_SET_NAME, "hull:exec");
	if (container_set_no_new_privs(spec->oci, &e) < 0)
		child_fail_err(sync_fd, STAGE_SECCOMP, e);
	/* Security: with no_new_privs the filter goes on last, right before execve. */
	if (spec->oci->no_new_privileges && container_seccomp_load(spec->oci->seccomp, &e) < 0)
		child_fail_err(sync_fd, STAGE_SECCOMP, e);
	child_exec(sync_fd, spec);
}

/* ---- parent side ------------------------------------------------------------------ */

/* Read one sync message without waiting; a passed fd (the terminal master) lands in
 * *ret_fd. 1: a message, 0: EOF, -EAGAIN: nothing yet, else -errno. */
static int sync_read(int fd, struct sync_msg *m, int *ret_fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {.iov_base = m, .iov_len = sizeof(*m)};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	ssize_t n;

	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int passed;
			memcpy(&passed, CMSG_DATA(c), sizeof(int));
			if (ret_fd && *ret_fd < 0)
				*ret_fd = passed;
			else
				close(passed);
		}
	if (n == 0)
		return 0;
	if ((size_t)n != sizeof(*m))
		return -EBADMSG;
	m->msg[sizeof(m->msg) - 1] = '\0';
	return 1;
}

static int sync_error(const struct sync_msg *m, struct hull_error **err)
{
	int e = m->err > 0 && m->err < 4096 ? m->err : EIO;
	const char *why = strerror(e);
	size_t n = strlen(m->msg), w = strlen(why);

	/* Messages from the topic files already end with the reason. */
	if (n >= w && strcmp(m->msg + n - w, why) == 0)
		return hull_error_set(err, -e, "%s: %s",
		                      container_stage_name((enum container_stage)m->stage), m->msg);
	return hull_error_set_errno(err, -e, "%s: %s",
	                            container_stage_name((enum container_stage)m->stage), m->msg);
}

static void close_fd(int *fd)
{
	closep(fd);
	*fd = -1;
}

void container_process_init(struct container_process *proc)
{
	*proc = (struct container_process){
	    .sync_fd = -1, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1};
}

/* Only pids not reaped yet: a reaped one may already name another process. The
 * caller's reaper collects the dead (no waitpid here: it would stall its loop). */
static void kill_unreaped(struct container_process *proc)
{
	if (proc->pid > 0 && !proc->exited)
		(void)kill(proc->pid, SIGKILL);
	if (proc->helper > 0)
		(void)kill(proc->helper, SIGKILL);
}

void container_process_done(struct container_process *proc)
{
	kill_unreaped(proc);
	close_fd(&proc->sync_fd);
	close_fd(&proc->stdin_fd);
	close_fd(&proc->stdout_fd);
	close_fd(&proc->stderr_fd);
}

bool container_process_reaped(struct container_process *proc, pid_t pid)
{
	if (pid <= 0)
		return false;
	if (pid == proc->helper) {
		proc->helper = 0;
		return false;
	}
	if (pid != proc->pid || proc->exited)
		return false;
	proc->exited = true;
	return true;
}

int container_signal(struct container_process *proc, int sig)
{
	if (proc->pid <= 0 || proc->exited)
		return -ESRCH;
	return kill(proc->pid, sig) < 0 ? -errno : 0;
}

/* The setup failed (r, *err set): the child goes, so does the socket. */
static int setup_failed(struct container_process *proc, int r)
{
	kill_unreaped(proc);
	close_fd(&proc->sync_fd);
	proc->phase = CONTAINER_FAILED;
	return r;
}

/* READY from a child whose pid is known. */
static int setup_ready(struct container_process *proc, struct hull_error **err)
{
	if (proc->terminal) {
		if (proc->stdout_fd < 0)
			return setup_failed(proc, hull_error_set(err, -EBADMSG,
			                                         "container setup: a terminal was "
			                                         "asked for and none came"));
		/* One master, two roles: output is read from it, input written to a dup. */
		proc->stdin_fd = fcntl(proc->stdout_fd, F_DUPFD_CLOEXEC, 3);
		if (proc->stdin_fd < 0)
			return setup_failed(proc,
			                    hull_error_set_errno(err, -errno, "dup terminal"));
	}
	proc->phase = CONTAINER_CREATED;
	return 1;
}

/* START was written: EOF is a successful execve (the socket is CLOEXEC), a message its
 * error. The child exits by itself then, with the status a shell would give. */
static int start_step(struct container_process *proc, struct hull_error **err)
{
	struct sync_msg m;
	int r = sync_read(proc->sync_fd, &m, NULL);

	if (r == -EAGAIN)
		return 0;
	close_fd(&proc->sync_fd);
	if (r == 0) {
		proc->phase = CONTAINER_RUNNING;
		return 1;
	}
	proc->phase = CONTAINER_FAILED;
	if (r > 0 && m.type == SYNC_ERROR)
		return sync_error(&m, err);
	return hull_error_set_errno(err, r < 0 ? r : -EBADMSG, "start: bad report from child");
}

int container_step(struct container_process *proc, struct hull_error **err)
{
	struct sync_msg m;
	int r;

	if (proc->sync_fd < 0)
		return 0;
	if (proc->phase == CONTAINER_STARTING)
		return start_step(proc, err);
	if (proc->phase != CONTAINER_SETUP)
		return 0;
	r = sync_read(proc->sync_fd, &m, proc->terminal ? &proc->stdout_fd : NULL);
	if (r == -EAGAIN)
		return 0;
	if (r > 0 && m.type == SYNC_PID && proc->pid == 0 && m.err > 0) {
		/* An exec's helper: the process runs its setup now, in the container. */
		struct oci_spec adj = {.has_oom_score_adj = proc->has_oom_score_adj,
		                       .oom_score_adj = proc->oom_score_adj};
		proc->pid = (pid_t)m.err;
		r = container_set_oom_score_adj(proc->pid, &adj, err);
		if (r < 0)
			return setup_failed(proc, r);
		return proc->ready_early ? setup_ready(proc, err) : 0;
	}
	if (r > 0 && m.type == SYNC_READY) {
		/* The helper and its child both write to the socket: READY may come first. */
		if (proc->pid == 0) {
			proc->ready_early = true;
			return 0;
		}
		return setup_ready(proc, err);
	}
	if (r > 0 && m.type == SYNC_ERROR)
		return setup_failed(proc, sync_error(&m, err));
	if (r > 0)
		return setup_failed(proc, hull_error_set(err, -EBADMSG,
		                                         "container setup: unexpected message %u",
		                                         m.type));
	if (r < 0)
		return setup_failed(proc, hull_error_set_errno(err, r, "container setup"));
	return setup_failed(proc,
	                    hull_error_set(err, -EIO,
	                                   proc->pid ? "container setup ended without a report"
	                                             : "exec: the helper ended without a "
	                                               "report"));
}

/* Namespaces to create. A mount namespace unless one is joined: every mount the
 * container makes must die with it. Joining by path happens in the child (setns),
 * except for the ones that cannot be joined after clone. */
static int clone_flags(const struct container_spec *spec, unsigned long *ret,
                       struct hull_error **err)
{
	unsigned long flags = joined_mount_ns(spec) ? 0 : CLONE_NEWNS;

	for (size_t i = 0; i < spec->oci->n_namespaces; i++) {
		const struct oci_namespace *ns = &spec->oci->namespaces[i];
		if (ns->type == CLONE_NEWUSER && ns->path)
			return hull_error_set(
			    err, -EOPNOTSUPP,
			    "linux.namespaces: joining a user namespace by path is not "
			    "supported");
		if (ns->type == CLONE_NEWUSER &&
		    (!spec->oci->n_uid_mappings || !spec->oci->n_gid_mappings))
			return hull_error_set(
			    err, -EINVAL,
			    "linux.namespaces: a user namespace needs uidMappings and "
			    "gidMappings");
		if (ns->type == CLONE_NEWUSER && joined_mount_ns(spec))
			return hull_error_set(
			    err, -EOPNOTSUPP,
			    "linux.namespaces: a new user namespace cannot join a mount "
			    "namespace by path");
		if (!ns->path)
			flags |= (unsigned long)ns->type;
	}
	*ret = flags;
	return 0;
}

/* The parent's and child's ends of one container process's setup: the sync socket and,
 * without a terminal, the three stdio pipes. */
struct spawn {
	int sync_parent, sync_child;
	int in_r, in_w, out_r, out_w, err_r, err_w;
};

static void spawn_done(struct spawn *sp)
{
	int *fds[] = {&sp->sync_parent, &sp->sync_child, &sp->in_r,  &sp->in_w,
	              &sp->out_r,       &sp->out_w,      &sp->err_r, &sp->err_w};
	for (size_t i = 0; i < ELEMENTSOF(fds); i++)
		closep(fds[i]);
}

static int spawn_prepare(bool terminal, struct spawn *sp)
{
	int sv[2], p[3][2];

	*sp = (struct spawn){-1, -1, -1, -1, -1, -1, -1, -1};
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	sp->sync_parent = sv[0];
	sp->sync_child = sv[1];
	if (terminal)
		return 0; /* the child makes the terminal and passes its master back */
	for (int i = 0; i < 3; i++)
		if (pipe2(p[i], O_CLOEXEC) < 0) {
			int r = -errno;
			for (int k = 0; k < i; k++)
				close(p[k][0]), close(p[k][1]);
			return r;
		}
	sp->in_r = p[0][0], sp->in_w = p[0][1];
	sp->out_r = p[1][0], sp->out_w = p[1][1];
	sp->err_r = p[2][0], sp->err_w = p[2][1];
	/* Bigger pipes: fewer wakeups per byte on the output path (best effort). */
	(void)fcntl(sp->out_r, F_SETPIPE_SZ, 1 << 20);
	(void)fcntl(sp->err_r, F_SETPIPE_SZ, 1 << 20);
	return 0;
}

static int pid_ns_enter(const struct container_spec *spec, int *ret_own, struct hull_error **err)
{
	for (size_t i = 0; i < spec->oci->n_namespaces; i++) {
		const struct oci_namespace *ns = &spec->oci->namespaces[i];
		_cleanup_close_ int fd = -1;
		if (!ns->path || ns->type != CLONE_NEWPID)
			continue;
		*ret_own = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
		fd = open(ns->path, O_RDONLY | O_CLOEXEC);
		/* Security: only our children enter it; the agent itself stays where it is. */
		if (*ret_own < 0 || fd < 0 || setns(fd, CLONE_NEWPID) < 0)
			return hull_error_set_errno(err, -errno, "join namespace: '%s'", ns->path);
	}
	return 0;
}

int container_create(const struct container_spec *spec, struct container_process *proc,
                     struct hull_error **err)
{
	_cleanup_free_ char *base = xasprintf(CONTAINER_RUN_DIR "/%s", spec->id);
	struct spawn sp;
	unsigned long flags = 0;
	_cleanup_close_ int own_pidns = -1;
	int r;
	pid_t pid;

	container_process_init(proc);
	sp = (struct spawn){-1, -1, -1, -1, -1, -1, -1, -1};
	r = clone_flags(spec, &flags, err);
	if (r < 0)
		return r;
	/* An overlay's lower share is only read; a direct root is written unless read-only.
	 * A share holding several roots (root_subpath) serves writable ones too. */
	for (char **l = spec->root_layers; l && *l && r >= 0; l++)
		r = layer_mount(*l, err);
	if (r >= 0 && !spec->root_layers)
		r = container_share_mount(
		    spec->root_tag,
		    !spec->root_subpath && (spec->root_overlay || spec->root_readonly), err);
	for (size_t i = 0; r >= 0 && i < spec->n_mounts; i++)
		/* A share of copied files serves read-only and writable binds alike. */
		r = container_share_mount(
		    spec->mounts[i].tag, spec->mounts[i].readonly && !spec->mounts[i].subpath, err);
	if (r < 0)
		return hull_error_prefix(err, "create container '%s'", spec->id);
	/* Traversable (not listable) by the ids of user-namespaced containers. */
	r = mkdir_p(CONTAINER_RUN_DIR, 0711);
	if (r < 0)
		return hull_error_set_errno(err, r, "mkdir " CONTAINER_RUN_DIR);
	if (mkdir(base, 0700) < 0)
		return hull_error_set_errno(err, -errno, "container '%s'", spec->id);
	r = spawn_prepare(spec->terminal, &sp);
	if (r < 0) {
		hull_error_set_errno(err, r, "create container '%s'", spec->id);
		goto out;
	}

	/* A pid namespace named by path (a pod sharing its processes) can only be entered
	 * by a new process: point our children's pid namespace there for the clone. */
	r = pid_ns_enter(spec, &own_pidns, err);
	if (r < 0)
		goto out;
	/* Security: the container gets its own namespaces (clone_flags); a pid namespace
	 * makes it PID 1 of its own tree so every descendant dies with it. */
	pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0);
	/* Back to our own for the agent's later children (the parent only: the child
	 * cannot, and need not, leave the namespace it was born into). */
	if (pid != 0 && own_pidns >= 0 && setns(own_pidns, CLONE_NEWPID) < 0)
		abort(); /* our own namespace: cannot fail, and must not stay switched */
	if (pid < 0) {
		r = hull_error_set_errno(err, -errno, "create container '%s': clone", spec->id);
		goto out;
	}
	if (pid == 0) {
		int stdio[3] = {sp.in_r, sp.out_w, sp.err_w};
		close(sp.sync_parent);
		child_main(sp.sync_child, spec, stdio);
	}
	close_fd(&sp.sync_child);
	proc->pid = pid;
	/* Into its cgroup before it can exec (exec waits for START). On failure from here
	 * on the child is killed; the caller reaps it, then removes its cgroup. */
	r = container_cgroup_setup(spec->id, spec->oci, pid, err);
	if (r < 0)
		goto out;
	r = container_set_oom_score_adj(pid, spec->oci, err);
	if (r < 0)
		goto out;
	if (flags & CLONE_NEWUSER) {
		struct sync_msg mapped = {.type = SYNC_MAPPED};
		r = write_id_maps(pid, spec->oci, err);
		/* The setup runs as the namespace's root: its work dir must be that user's. */
		if (r >= 0 &&
		    chown(base, host_id_of_root(spec->oci->uid_mappings, spec->oci->n_uid_mappings),
		          host_id_of_root(spec->oci->gid_mappings, spec->oci->n_gid_mappings)) < 0)
			r = hull_error_set_errno(err, -errno, "user namespace: chown '%s'", base);
		if (r >= 0 &&
		    send(sp.sync_parent, &mapped, sizeof(mapped), MSG_NOSIGNAL) != sizeof(mapped))
			r = hull_error_set_errno(err, -errno, "user namespace: tell the child");
		if (r < 0)
			goto out;
	}
	/* The rest is the child's: its reports arrive on the socket (container_step()). */
	fd_set_nonblock(sp.sync_parent, 1);
	proc->phase = CONTAINER_SETUP;
	proc->terminal = spec->terminal;
	proc->sync_fd = TAKE_FD(sp.sync_parent);
	proc->stdin_fd = TAKE_FD(sp.in_w);
	proc->stdout_fd = TAKE_FD(sp.out_r);
	proc->stderr_fd = TAKE_FD(sp.err_r);
out:
	spawn_done(&sp);
	if (r < 0 && proc->pid > 0)
		(void)kill(proc->pid, SIGKILL);
	if (r < 0 && proc->pid == 0)
		(void)rmdir(base);
	if (r < 0)
		proc->phase = CONTAINER_FAILED;
	return r;
}

/* The helper of an exec: joins the container's namespaces and cgroup, then clones the
 * process (as a child of the agent, CLONE_PARENT) into its pid namespace. */
_noreturn_ static void exec_helper(struct spawn *sp, const struct container_spec *spec,
                                   pid_t init_pid)
{
	static const struct {
		const char *name;
		int type;
	} nss[] = {{"ipc", CLONE_NEWIPC},       {"uts", CLONE_NEWUTS}, {"net", CLONE_NEWNET},
	           {"cgroup", CLONE_NEWCGROUP}, {"pid", CLONE_NEWPID}, {"mnt", CLONE_NEWNS}};
	int fds[ELEMENTSOF(nss)];
	struct sync_msg m = {.type = SYNC_PID};
	_cleanup_free_ char *cg = container_cgroup_path(spec->id);
	_cleanup_free_ char *procs = xasprintf("%s/cgroup.procs", cg);
	char me[16];
	int fd, n;
	pid_t pid;

	close(sp->sync_parent);
	(void)prctl(PR_SET_NAME, "hull:exec-join");
	/* All ns files first: after the mount namespace changes, /proc is the container's. */
	for (size_t i = 0; i < ELEMENTSOF(nss); i++) {
		_cleanup_free_ char *path = xasprintf("/proc/%d/ns/%s", (int)init_pid, nss[i].name);
		fds[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (fds[i] < 0)
			child_fail(sp->sync_child, STAGE_NAMESPACES, errno, "'%s'", path);
	}
	/* Security: accounted and limited with the container from the first instruction. */
	fd = open(procs, O_WRONLY | O_CLOEXEC);
	n = snprintf(me, sizeof(me), "%d", (int)getpid());
	if (fd < 0 || write(fd, me, (size_t)n) != n)
		child_fail(sp->sync_child, STAGE_NAMESPACES, errno, "join cgroup '%s'", cg);
	close(fd);
	/* Security: into the container's namespaces; the same one twice is a no-op. */
	for (size_t i = 0; i < ELEMENTSOF(nss); i++) {
		if (setns(fds[i], nss[i].type) < 0 && errno != EINVAL)
			child_fail(sp->sync_child, STAGE_NAMESPACES, errno, "setns %s",
			           nss[i].name);
		close(fds[i]);
	}
	pid = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, NULL, NULL, NULL, 0);
	if (pid < 0)
		child_fail(sp->sync_child, STAGE_NAMESPACES, errno, "clone into the container");
	if (pid == 0) {
		int stdio[3] = {sp->in_r, sp->out_w, sp->err_w};
		child_begin(sp->sync_child, spec, stdio);
		if (chdir("/") < 0)
			child_fail(sp->sync_child, STAGE_CWD, errno, "'/'");
		child_finish(sp->sync_child, spec);
	}
	m.err = (int32_t)pid;
	_exit(write(sp->sync_child, &m, sizeof(m)) == sizeof(m) ? 0 : 1);
}

int container_exec(const struct container_spec *container, pid_t init_pid, const char *process_json,
                   size_t len, struct container_process *proc, struct hull_error **err)
{
	struct oci_spec *o = xcalloc(1, sizeof(*o));
	struct container_spec xs = {0};
	struct spawn sp = {-1, -1, -1, -1, -1, -1, -1, -1};
	pid_t helper;
	int r;

	container_process_init(proc);
	r = oci_process_parse(process_json, len, o, err);
	if (r < 0) {
		free(o);
		return r;
	}
	/* The exec'd process: its own process fields, the container's seccomp filter. */
	o->seccomp = container->oci->seccomp;
	xs.oci = o;
	xs.id = xstrdup(container->id);
	xs.args = TAKE_PTR(o->args);
	xs.env = TAKE_PTR(o->env);
	xs.cwd = TAKE_PTR(o->cwd);
	xs.uid = o->uid;
	xs.gid = o->gid;
	xs.n_groups = o->n_additional_gids;
	xs.groups = xcalloc(xs.n_groups, sizeof(gid_t));
	for (size_t i = 0; i < xs.n_groups; i++)
		xs.groups[i] = o->additional_gids[i];
	xs.terminal = o->terminal;
	xs.rows = (uint16_t)o->rows;
	xs.cols = (uint16_t)o->cols;

	r = spawn_prepare(xs.terminal, &sp);
	if (r < 0) {
		hull_error_set_errno(err, r, "exec");
		goto out;
	}
	helper = fork();
	if (helper < 0) {
		r = hull_error_set_errno(err, -errno, "exec: fork");
		goto out;
	}
	if (helper == 0)
		exec_helper(&sp, &xs, init_pid);
	close_fd(&sp.sync_child);
	/* The helper reports the process's pid (or why it could not join), then the
	 * process its READY: both through container_step(). */
	fd_set_nonblock(sp.sync_parent, 1);
	proc->phase = CONTAINER_SETUP;
	proc->helper = helper;
	proc->terminal = xs.terminal;
	proc->has_oom_score_adj = o->has_oom_score_adj;
	proc->oom_score_adj = o->oom_score_adj;
	proc->sync_fd = TAKE_FD(sp.sync_parent);
	proc->stdin_fd = TAKE_FD(sp.in_w);
	proc->stdout_fd = TAKE_FD(sp.out_r);
	proc->stderr_fd = TAKE_FD(sp.err_r);
out:
	spawn_done(&sp);
	o->seccomp = NULL; /* the container's */
	container_spec_done(&xs);
	return r;
}

int container_start(struct container_process *proc, struct hull_error **err)
{
	struct sync_msg m = {.type = SYNC_START};
	ssize_t n;
	int r;

	if (proc->phase == CONTAINER_SETUP)
		return hull_error_set(err, -EBUSY, "still being set up");
	if (proc->phase != CONTAINER_CREATED)
		return hull_error_set(err, -EALREADY, "already started");
	n = send(proc->sync_fd, &m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n != (ssize_t)sizeof(m)) {
		/* The child is gone (killed before start). */
		r = n < 0 ? -errno : -EIO;
		close_fd(&proc->sync_fd);
		proc->phase = CONTAINER_FAILED;
		return hull_error_set_errno(err, r, "start");
	}
	proc->phase = CONTAINER_STARTING;
	return 0;
}

void container_cleanup_dir(const char *id)
{
	_cleanup_free_ char *base = xasprintf(CONTAINER_RUN_DIR "/%s", id);
	_cleanup_free_ char *root = xasprintf("%s/root", base);
	_cleanup_free_ char *scratch = xasprintf("%s/scratch", base);
	(void)rmdir(root);
	(void)rmdir(scratch);
	(void)rmdir(base);
}
