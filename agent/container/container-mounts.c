/* SPDX-License-Identifier: MIT */
/* The spec's mounts, devices, masked and read-only paths, sysctls. */
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "container-internal.h"
#include "util.h"

struct dev_node {
	const char *name;
	unsigned maj, min;
};

static const struct dev_node default_devices[] = {
    {"null", 1, 3},   {"zero", 1, 5},    {"full", 1, 7},
    {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
};

static const char *const default_links[][2] = {
    {"pts/ptmx", "ptmx"},          {"/proc/self/fd", "fd"},       {"/proc/self/fd/0", "stdin"},
    {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
};

void container_make_default_devices(const char *root)
{
	/* The devices every runtime provides (runc's defaults); existing ones stay. */
	for (size_t j = 0; j < ELEMENTSOF(default_devices); j++) {
		_cleanup_free_ char *p = xasprintf("%s/dev/%s", root, default_devices[j].name);
		_cleanup_free_ char *host = xasprintf("/dev/%s", default_devices[j].name);
		if (mknod(p, S_IFCHR | 0666,
		          makedev(default_devices[j].maj, default_devices[j].min)) == 0) {
			(void)chmod(p, 0666);
		} else if (errno != EEXIST) {
			/* In a user namespace mknod is refused: bind the agent's node, as
			 * runc does for rootless containers. */
			_cleanup_close_ int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
			if (fd >= 0)
				(void)mount(host, p, NULL, MS_BIND, NULL);
		}
	}
	for (size_t j = 0; j < ELEMENTSOF(default_links); j++) {
		_cleanup_free_ char *p = xasprintf("%s/dev/%s", root, default_links[j][1]);
		(void)symlink(default_links[j][0], p);
	}
}

/* The host share the host set up for a bind mount at this destination, if any. */
static const struct container_mount *share_for(const struct container_spec *spec, const char *dest)
{
	for (size_t i = 0; i < spec->n_mounts; i++)
		if (strcmp(spec->mounts[i].destination, dest) == 0)
			return &spec->mounts[i];
	return NULL;
}

static int make_target(const char *target, bool file)
{
	struct stat st;
	if (lstat(target, &st) == 0)
		return 0;
	if (!file)
		return mkdir_p(target, 0755);
	_cleanup_free_ char *dir = xstrdup(target);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		int r = mkdir_p(dir, 0755);
		if (r < 0)
			return r;
	}
	_cleanup_close_ int fd = open(target, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	return fd < 0 ? -errno : 0;
}

int container_mount_oci(const char *root, const struct container_spec *spec,
                        struct hull_error **err)
{
	const struct oci_spec *s = spec->oci;

	for (size_t i = 0; i < s->n_mounts; i++) {
		const struct oci_mount *m = &s->mounts[i];
		_cleanup_free_ char *target = xasprintf("%s%s", root, m->destination);
		const struct container_mount *share =
		    m->bind ? share_for(spec, m->destination) : NULL;
		const char *type = m->type;
		unsigned long flags = m->flags & ~(MS_BIND | MS_REC | MS_REMOUNT);
		struct stat st;
		int r;

		if (m->bind && !share && stat(m->source, &st) < 0)
			return hull_error_set_errno(err, -errno, "mounts: bind source '%s'",
			                            m->source);
		if (share && share->subpath) {
			_cleanup_free_ char *dir = container_share_path(share->tag);
			_cleanup_free_ char *src = xasprintf("%s/%s", dir, share->subpath);
			if (stat(src, &st) < 0)
				return hull_error_set_errno(err, -errno,
				                            "mounts: '%s' in share '%s'",
				                            share->subpath, share->tag);
		}
		r = make_target(target, m->bind && (share ? share->subpath && !S_ISDIR(st.st_mode)
		                                          : !S_ISDIR(st.st_mode)));
		if (r < 0)
			return hull_error_set_errno(err, r, "mounts: create '%s'", m->destination);
		if (share) {
			/* Security: a host path reaches the guest only as a share the host
			 * made for this very mount, and the host's mount of it is read-only
			 * when the spec says so. The guest makes it read-only too when the
			 * host says (not when a mount inside it must stay writable: runc's
			 * "ro" is the top only, and 9p shows the guest one tree). */
			_cleanup_free_ char *dir = container_share_path(share->tag);
			_cleanup_free_ char *src =
			    share->subpath ? xasprintf("%s/%s", dir, share->subpath) : xstrdup(dir);
			if (mount(src, target, NULL, MS_BIND, NULL) < 0)
				return hull_error_set_errno(err, -errno,
				                            "mounts: '%s' (host share '%s')",
				                            m->destination, share->tag);
			if (share->readonly &&
			    mount(NULL, target, NULL,
			          MS_BIND | MS_REMOUNT | MS_RDONLY | (flags & ~MS_RDONLY),
			          NULL) < 0)
				return hull_error_set_errno(err, -errno, "mounts: read-only '%s'",
				                            m->destination);
		} else if (m->bind) {
			/* Security: bind sources are paths inside the guest. */
			if (mount(m->source, target, NULL, MS_BIND | (m->flags & MS_REC), NULL) < 0)
				return hull_error_set_errno(err, -errno,
				                            "mounts: bind '%s' at '%s'", m->source,
				                            m->destination);
			if (flags &&
			    mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | flags, NULL) < 0)
				return hull_error_set_errno(err, -errno, "mounts: remount '%s'",
				                            m->destination);
		} else {
			/* cgroup v1 does not exist in the guest: "cgroup" is the v2 tree. */
			if (strcmp(type, "cgroup") == 0)
				type = "cgroup2";
			/* Security: a fresh instance of a kernel filesystem, with the spec's flags.
			 */
			if (mount(m->source ? m->source : type, target, type, flags, m->data) < 0)
				return hull_error_set_errno(err, -errno, "mounts: %s at '%s'", type,
				                            m->destination);
			if (strcmp(m->destination, "/dev") == 0 && strcmp(type, "tmpfs") == 0)
				container_make_default_devices(root);
		}
		if (m->propagation && mount(NULL, target, NULL, m->propagation, NULL) < 0)
			return hull_error_set_errno(err, -errno, "mounts: propagation of '%s'",
			                            m->destination);
	}
	for (size_t i = 0; i < s->n_devices; i++) {
		const struct oci_device *d = &s->devices[i];
		_cleanup_free_ char *p = xasprintf("%s%s", root, d->path);
		mode_t type = d->type == 'b' ? S_IFBLK : d->type == 'p' ? S_IFIFO : S_IFCHR;
		int r = make_target(p, true);
		(void)r;
		(void)unlink(p);
		/* Security: only the device nodes the spec lists. */
		if (mknod(p, type | (d->mode ? d->mode & 07777 : 0666),
		          makedev(d->major, d->minor)) < 0)
			return hull_error_set_errno(err, -errno, "devices: mknod '%s'", d->path);
		if (chown(p, d->uid, d->gid) < 0)
			return hull_error_set_errno(err, -errno, "devices: chown '%s'", d->path);
	}
	return 0;
}

int container_mask_paths(const struct oci_spec *s, struct hull_error **err)
{
	for (size_t i = 0; s->masked_paths && s->masked_paths[i]; i++) {
		const char *p = s->masked_paths[i];
		struct stat st;
		if (stat(p, &st) < 0)
			continue; /* nothing to hide */
		/* Security: masked paths read as empty: /dev/null over files, an empty
		 * read-only tmpfs over directories. */
		if (S_ISDIR(st.st_mode) ? mount("tmpfs", p, "tmpfs", MS_RDONLY, "size=0") < 0
		                        : mount("/dev/null", p, NULL, MS_BIND, NULL) < 0)
			return hull_error_set_errno(err, -errno, "mask '%s'", p);
	}
	for (size_t i = 0; s->readonly_paths && s->readonly_paths[i]; i++) {
		const char *p = s->readonly_paths[i];
		if (access(p, F_OK) < 0)
			continue;
		/* Security: bind onto itself, then remount read-only. */
		if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0 ||
		    mount(NULL, p, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC, NULL) < 0)
			return hull_error_set_errno(err, -errno, "read-only '%s'", p);
	}
	return 0;
}

int container_apply_sysctl(const struct oci_spec *s, struct hull_error **err)
{
	for (size_t i = 0; s->sysctl_keys && s->sysctl_keys[i]; i++) {
		_cleanup_free_ char *path = xasprintf("/proc/sys/%s", s->sysctl_keys[i]);
		for (char *c = path + strlen("/proc/sys/"); *c; c++)
			if (*c == '.')
				*c = '/';
		_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write_all(fd, s->sysctl_values[i], strlen(s->sysctl_values[i])) < 0)
			return hull_error_set_errno(err, -errno, "sysctl '%s'", s->sysctl_keys[i]);
	}
	return 0;
}
