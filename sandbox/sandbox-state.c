/* SPDX-License-Identifier: MIT */
/* Where sandboxes live on the host: default paths, state directories, their owners, and
 * the sweep of what a killed hull or shim left behind. */
#include "sandbox.h"

#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <time.h>

#include "agent.pb-c.h"
#include "cni.h"
#include "log.h"
#include "util.h"

uint64_t sandbox_now_ns(void)
{
	return monotonic_ns();
}

char *sandbox_default_guest_file(const char *name)
{
	const char *env = getenv(strcmp(name, "vmlinuz") == 0 ? "HULL_KERNEL" : "HULL_INITRD");
	char exe[4096];
	ssize_t n;

	if (env && *env)
		return xstrdup(env);
	/* Next to the binary in the build tree (build/hull -> build/guest/), or the
	 * installed layout (bin/hull -> lib/hull/). */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			char *p = xasprintf("%s/guest/%s", exe, name);
			if (access(p, R_OK) == 0)
				return p;
			free(p);
			p = xasprintf("%s/../lib/hull/%s", exe, name);
			if (access(p, R_OK) == 0)
				return p;
			free(p);
		}
	}
	return xasprintf("/usr/local/lib/hull/%s", name);
}

char *sandbox_default_state_root(void)
{
	const char *env = getenv("HULL_STATE_DIR");
	if (env && *env)
		return xstrdup(env);
	if (geteuid() == 0)
		return xstrdup("/run/hull");
	env = getenv("XDG_RUNTIME_DIR");
	if (env && *env)
		return xasprintf("%s/hull", env);
	return xasprintf("/tmp/hull-%u", (unsigned)geteuid());
}

int sandbox_unmount_below(const char *dir)
{
	_cleanup_strv_free_ char **points = mounts_below(dir);
	size_t n = strv_length(points);
	int count = 0;

	/* Later lines are mounted later, so on top or deeper: undo them first. */
	for (size_t i = n; i-- > 0;)
		if (umount2(points[i], MNT_DETACH) == 0)
			count++;
	return count;
}

void sandbox_remove_state(const char *dir)
{
	(void)sandbox_unmount_below(dir);
	rm_tree(dir);
}

char *sandbox_console_tail(struct sandbox *sb, size_t max)
{
	_cleanup_free_ char *path = vmm_console_path(sb->state_dir);
	return vmm_file_tail(path, max);
}

/* Field 22 of /proc/PID/stat: when the process started, to tell a live owner from a
 * recycled pid. 0 when the process does not exist or is a zombie (a killed shim waits
 * as one until containerd, its subreaper, reaps it). */
static unsigned long long proc_start_time(pid_t pid)
{
	_cleanup_free_ char *path = xasprintf("/proc/%d/stat", (int)pid);
	char buf[1024];
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	unsigned long long start = 0;
	ssize_t n;
	char *p;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* comm may hold spaces and parens */
	if (!p)
		return 0;
	/* After ")": state is field 3; starttime is field 22, 19 fields on. */
	char state = 0;
	if (sscanf(
	        p + 1,
	        " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
	        &state, &start) != 2)
		return 0;
	return state == 'Z' || state == 'X' ? 0 : start;
}

void sandbox_write_owner(const char *state_dir)
{
	_cleanup_free_ char *path = xasprintf("%s/owner", state_dir);
	_cleanup_free_ char *line =
	    xasprintf("%d %llu\n", (int)getpid(), proc_start_time(getpid()));
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0)
		(void)write_all(fd, line, strlen(line));
}

/* Remove state dirs whose owning process is gone (a hull or shim killed with SIGKILL:
 * its QEMU died with it through PDEATHSIG, but nobody removed the directory). */
/* The owner file's pid when that process still runs (same start time), 0 when it is
 * gone, -ENOENT without an owner file, -EBADMSG while it is being written. */
static int owner_of(const char *state_dir)
{
	_cleanup_free_ char *path = xasprintf("%s/owner", state_dir);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	unsigned long long start = 0;
	int pid = 0;
	if (!f)
		return -errno;
	if (fscanf(f, "%d %llu", &pid, &start) != 2 || pid <= 0)
		return -EBADMSG;
	return proc_start_time(pid) == start ? pid : 0;
}

int sandbox_owner(const char *state_dir)
{
	int pid = owner_of(state_dir);
	return pid > 0 ? pid : 0;
}

void sandbox_sweep_stale(const char *root)
{
	_cleanup_(closedirp) DIR *d = opendir(root);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		_cleanup_free_ char *dir = NULL;
		struct stat st;
		int owner;

		/* Dot entries are not sandboxes (the shim's sockets live in .s/). */
		if (de->d_name[0] == '.')
			continue;
		dir = xasprintf("%s/%s", root, de->d_name);
		owner = owner_of(dir);
		if (owner == -ENOENT) {
			/* No owner file: being created right now, or half-made by a process
			 * killed before it wrote one. Only old directories go. */
			if (lstat(dir, &st) == 0 && S_ISDIR(st.st_mode) &&
			    st.st_mtime + 60 < time(NULL))
				rm_tree(dir);
			continue;
		}
		if (owner != 0)
			continue; /* alive, or its owner file is being written */
		log_debug("removing stale sandbox state '%s' (owner gone)", dir);
		sandbox_remove_state(dir);
	}
}
