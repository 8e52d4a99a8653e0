/* SPDX-License-Identifier: MIT */
/* Host mounts for a container: a rootfs given as a list of mounts (containerd's
 * snapshot on bundle/rootfs, as the runc shim does), and binds below the sandbox's
 * shared directory so the guest reaches them over the one 9p share. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sched.h>
#include <sys/stat.h>

#include "pod-mount.h"
#include "util.h"

/* mount(8) option words that are flags; everything else is filesystem data. */
static const struct {
	const char *name;
	bool clear;
	unsigned long flag;
} mount_flags[] = {
    {"ro", false, MS_RDONLY},        {"rw", true, MS_RDONLY},
    {"nosuid", false, MS_NOSUID},    {"suid", true, MS_NOSUID},
    {"nodev", false, MS_NODEV},      {"dev", true, MS_NODEV},
    {"noexec", false, MS_NOEXEC},    {"exec", true, MS_NOEXEC},
    {"noatime", false, MS_NOATIME},  {"relatime", false, MS_RELATIME},
    {"bind", false, MS_BIND},        {"rbind", false, MS_BIND | MS_REC},
    {"sync", false, MS_SYNCHRONOUS}, {"nodiratime", false, MS_NODIRATIME},
};

static void parse_options(char *const *opts, size_t n, unsigned long *flags, char **data)
{
	size_t len = 0;
	*flags = 0;
	*data = xstrdup("");
	for (size_t i = 0; i < n; i++) {
		bool known = false;
		for (size_t k = 0; k < ELEMENTSOF(mount_flags); k++)
			if (strcmp(opts[i], mount_flags[k].name) == 0) {
				if (mount_flags[k].clear)
					*flags &= ~mount_flags[k].flag;
				else
					*flags |= mount_flags[k].flag;
				known = true;
			}
		if (known)
			continue;
		size_t add = strlen(opts[i]);
		*data = xrealloc(*data, len + add + 2);
		if (len)
			(*data)[len++] = ',';
		memcpy(*data + len, opts[i], add + 1);
		len += add;
	}
}

int pod_mount_list(const char *target, const struct pod_host_mount *m, size_t n,
                   struct hull_error **err)
{
	for (size_t i = 0; i < n; i++) {
		unsigned long flags;
		_cleanup_free_ char *data = NULL;
		const char *type = m[i].type;

		parse_options(m[i].options, m[i].n_options, &flags, &data);
		if (strcmp(type, "bind") == 0)
			flags |= MS_BIND;
		/* Security: what the caller (containerd) names, mounted as the runc shim
		 * would, on a target the caller owns. */
		if (mount(m[i].source, target, (flags & MS_BIND) ? NULL : type, flags & ~MS_RDONLY,
		          *data ? data : NULL) < 0) {
			int r = -errno;
			pod_unmount_all(target);
			return hull_error_set_errno(err, r, "rootfs mount %zu (%s '%s' on '%s')", i,
			                            type, m[i].source, target);
		}
		/* A bind ignores MS_RDONLY on the first call: remount to apply it. */
		if ((flags & MS_RDONLY) &&
		    mount(NULL, target, NULL,
		          (flags & MS_BIND) ? MS_BIND | MS_REMOUNT | MS_RDONLY : MS_REMOUNT | flags,
		          NULL) < 0) {
			int r = -errno;
			pod_unmount_all(target);
			return hull_error_set_errno(err, r, "rootfs mount %zu: read-only", i);
		}
	}
	return 0;
}

static bool is_mountpoint(const char *path)
{
	struct stat st, parent;
	_cleanup_free_ char *up = xasprintf("%s/..", path);
	/* Different device from the parent; a bind from the same filesystem shows in
	 * mountinfo only, so look there too. */
	if (stat(path, &st) < 0 || stat(up, &parent) < 0)
		return false;
	if (st.st_dev != parent.st_dev)
		return true;
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	while (f && getline(&line, &cap, f) > 0) {
		char mp[4096];
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1 && strcmp(mp, path) == 0)
			return true;
	}
	return false;
}

void pod_unmount_all(const char *target)
{
	for (int i = 0; i < 64 && is_mountpoint(target); i++)
		if (umount2(target, MNT_DETACH) < 0)
			break;
}

int pod_bind(const char *src, const char *dst, bool readonly, struct hull_error **err)
{
	struct stat st;
	int r;

	/* Security: the source is what the spec names on the host; symlinks in it are
	 * resolved by the kernel here, on the host, as runc would. */
	if (stat(src, &st) < 0)
		return hull_error_set_errno(err, -errno, "bind source '%s'", src);
	if (S_ISDIR(st.st_mode)) {
		r = mkdir(dst, 0755) < 0 && errno != EEXIST ? -errno : 0;
	} else {
		int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
		r = fd < 0 ? -errno : 0;
		if (fd >= 0)
			close(fd);
	}
	if (r < 0)
		return hull_error_set_errno(err, r, "create bind target '%s'", dst);
	if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
		return hull_error_set_errno(err, -errno, "bind '%s'", src);
	if (readonly && mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0) {
		r = -errno;
		(void)umount2(dst, MNT_DETACH);
		return hull_error_set_errno(err, r, "bind '%s' read-only", src);
	}
	return 0;
}

bool pod_has_submounts(const char *path)
{
	_cleanup_free_ char *real = realpath(path, NULL);
	_cleanup_strv_free_ char **below = real ? mounts_below(real) : NULL;
	return below != NULL;
}

static int write_file(const char *path, const char *text)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write_all(fd, text, strlen(text)) < 0)
		return -errno;
	return 0;
}

int pod_private_mounts(struct hull_error **err)
{
	uid_t uid = geteuid();
	gid_t gid = getegid();
	int flags = CLONE_NEWNS | (uid != 0 ? CLONE_NEWUSER : 0);
	int r;

	/* Security: a user namespace maps only our own ids to themselves, so nothing we do
	 * in it reaches further than we could before; it only lets us bind-mount what we
	 * can already read, inside a mount namespace no one else sees. */
	if (unshare(flags) < 0)
		return hull_error_set_errno(err, -errno, "a mount namespace of our own");
	if (uid != 0) {
		_cleanup_free_ char *um = xasprintf("%u %u 1\n", (unsigned)uid, (unsigned)uid);
		_cleanup_free_ char *gm = xasprintf("%u %u 1\n", (unsigned)gid, (unsigned)gid);
		r = write_file("/proc/self/setgroups", "deny");
		if (r >= 0)
			r = write_file("/proc/self/uid_map", um);
		if (r >= 0)
			r = write_file("/proc/self/gid_map", gm);
		if (r < 0)
			return hull_error_set_errno(err, r, "map our ids in a user namespace");
	}
	/* Security: host mounts keep reaching us (a volume mounted later), ours never
	 * reach the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return hull_error_set_errno(err, -errno, "make our mounts private");
	return 0;
}

#define MAX_FILE_COPY (16u << 20)

int pod_copy_file(const char *src, const char *dst, struct hull_error **err)
{
	_cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC), out = -1;
	struct stat st;
	char buf[65536];
	ssize_t n;

	if (in < 0 || fstat(in, &st) < 0)
		return hull_error_set_errno(err, -errno, "copy '%s'", src);
	if (!S_ISREG(st.st_mode) || st.st_size > MAX_FILE_COPY)
		return hull_error_set(err, -EFBIG,
		                      "copy '%s': not a regular file of at most 16 MiB", src);
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 0777);
	if (out < 0)
		return hull_error_set_errno(err, -errno, "copy to '%s'", dst);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write_all(out, buf, (size_t)n) < 0)
			return hull_error_set_errno(err, -errno, "copy to '%s'", dst);
	return n < 0 ? hull_error_set_errno(err, -errno, "copy '%s'", src) : 0;
}
