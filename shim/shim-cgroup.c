/* SPDX-License-Identifier: MIT */
/* The pod's host cgroup: the shim joins the sandbox container's linux.cgroupsPath
 * before it boots the VM, so QEMU (and the shim) are charged to the pod and a
 * RuntimeClass's overhead.podFixed is honest, on cgroup v1, hybrid or v2 hosts: a
 * cgroupfs-style path ("/kubepods/...") as it is, a systemd-style one
 * ("slice:prefix:name") where systemd lays it out (bundle_cgroup_path(); made by
 * us, not registered with systemd as a unit: docs/kubernetes.md). */
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "bundle.h"
#include "log.h"
#include "shim.h"
#include "util.h"

#define CGROUP_ROOT "/sys/fs/cgroup"

static int write_file(const char *path, const char *text)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return write_all(fd, text, strlen(text));
}

/* cpuset (v1) takes no task until cpus and mems are set: inherit the parent's. */
static void cpuset_inherit(const char *dir)
{
	for (const char *const *f = (const char *const[]){"cpuset.cpus", "cpuset.mems", NULL}; *f;
	     f++) {
		_cleanup_free_ char *path = xasprintf("%s/%s", dir, *f);
		_cleanup_free_ char *parent = xasprintf("%s/../%s", dir, *f);
		char buf[4096];
		_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
		if (n != 1 && n != 0) /* set already, or no such file */
			continue;
		_cleanup_close_ int pfd = open(parent, O_RDONLY | O_CLOEXEC);
		n = pfd < 0 ? -1 : read(pfd, buf, sizeof(buf) - 1);
		if (n > 0) {
			buf[n] = '\0';
			(void)write_file(path, buf);
		}
	}
}

/* Join path in one hierarchy mounted at mnt; remember the dir when we made it. */
static int join_one(const char *mnt, const char *path, char ***made)
{
	_cleanup_free_ char *dir = xasprintf("%s%s", mnt, path);
	_cleanup_free_ char *procs = xasprintf("%s/cgroup.procs", dir);
	_cleanup_free_ char *pid = xasprintf("%d\n", (int)getpid());
	struct stat st;
	bool existed = stat(dir, &st) == 0;
	int r = mkdir_p(dir, 0755);

	if (r < 0)
		return r;
	if (!existed)
		strv_push(made, xstrdup(dir));
	/* Top down: a new parent's cpuset is empty too. */
	for (const char *p = path + 1;; p++) {
		const char *slash = strchrnul(p, '/');
		_cleanup_free_ char *level = xasprintf("%s%.*s", mnt, (int)(slash - path), path);
		cpuset_inherit(level);
		if (!*slash)
			break;
		p = slash;
	}
	return write_file(procs, pid);
}

int shim_cgroup_join(const char *cgroups_path, char ***made, struct hull_error **err)
{
	_cleanup_free_ char *path = bundle_cgroup_path(cgroups_path);
	struct stat st;
	int r, joined = 0;

	if (!cgroups_path || !*cgroups_path)
		return 0;
	if (!path) {
		return hull_error_set(err, -EINVAL,
		                      "linux.cgroupsPath '%.200s' is neither a cgroupfs path nor "
		                      "systemd's slice:prefix:name",
		                      cgroups_path);
	}
	if (!*path)
		return 0; /* systemd's root slice: nothing to join */
	/* Pure cgroup v2: one hierarchy at the root. */
	if (stat(CGROUP_ROOT "/cgroup.procs", &st) == 0) {
		r = join_one(CGROUP_ROOT, path, made);
		if (r < 0)
			return hull_error_set_errno(err, r, "join cgroup '%s'", path);
		log_debug("joined cgroup '%s'", path);
		return 0;
	}
	/* v1 or hybrid: every mounted hierarchy (named ones like name=systemd skipped). */
	_cleanup_(closedirp) DIR *d = opendir(CGROUP_ROOT);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		_cleanup_free_ char *mnt = xasprintf(CGROUP_ROOT "/%s", de->d_name);
		_cleanup_free_ char *procs = xasprintf("%s/cgroup.procs", mnt);
		if (de->d_name[0] == '.' || strcmp(de->d_name, "systemd") == 0 ||
		    lstat(mnt, &st) < 0 || !S_ISDIR(st.st_mode) || access(procs, F_OK) < 0)
			continue;
		r = join_one(mnt, path, made);
		if (r < 0)
			return hull_error_set_errno(err, r, "join cgroup '%s' (%s)", path,
			                            de->d_name);
		joined++;
	}
	log_debug("joined cgroup '%s' in %d hierarchies", path, joined);
	return 0;
}

void shim_cgroup_leave(char **made)
{
	/* Back to the parent of each cgroup we made, then remove it (empty now that the
	 * VM is gone). */
	for (char **p = made; p && *p; p++) {
		_cleanup_free_ char *parent = xasprintf("%s/../cgroup.procs", *p);
		_cleanup_free_ char *pid = xasprintf("%d\n", (int)getpid());
		(void)write_file(parent, pid);
		if (rmdir(*p) < 0 && errno != ENOENT)
			log_warn("remove cgroup '%s': %s", *p, strerror(errno));
	}
}
