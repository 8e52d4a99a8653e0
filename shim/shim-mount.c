/* SPDX-License-Identifier: MIT */
/* Host mounts the shim makes for a container: containerd's rootfs snapshot on
 * bundle/rootfs (as the runc shim does), and binds below the sandbox's shared
 * directory so the guest reaches them over the one 9p share. */
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "shim.h"
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

int shim_mount_rootfs(const char *target, Hull__Task__Mount *const *m, size_t n,
                      struct hull_error **err)
{
	for (size_t i = 0; i < n; i++) {
		unsigned long flags;
		_cleanup_free_ char *data = NULL;
		const char *type = m[i]->type;

		parse_options(m[i]->options, m[i]->n_options, &flags, &data);
		if (strcmp(type, "bind") == 0)
			flags |= MS_BIND;
		if (mount(m[i]->source, target, (flags & MS_BIND) ? NULL : type, flags & ~MS_RDONLY,
		          *data ? data : NULL) < 0) {
			int r = -errno;
			shim_unmount_all(target);
			return hull_error_set_errno(err, r, "rootfs mount %zu (%s '%s' on '%s')", i,
			                            type, m[i]->source, target);
		}
		/* A bind ignores MS_RDONLY on the first call: remount to apply it. */
		if ((flags & MS_RDONLY) &&
		    mount(NULL, target, NULL,
		          (flags & MS_BIND) ? MS_BIND | MS_REMOUNT | MS_RDONLY : MS_REMOUNT | flags,
		          NULL) < 0) {
			int r = -errno;
			shim_unmount_all(target);
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

void shim_unmount_all(const char *target)
{
	for (int i = 0; i < 64 && is_mountpoint(target); i++)
		if (umount2(target, MNT_DETACH) < 0)
			break;
}

int shim_bind(const char *src, const char *dst, bool readonly, struct hull_error **err)
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
