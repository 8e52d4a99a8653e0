/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* One mount as mount(8) takes it: type, source, option words ("ro", "lowerdir=..."). */
struct pod_host_mount {
	const char *type;
	const char *source;
	char *const *options;
	size_t n_options;
};

/* Mount m[0..n) on target in order (containerd's rootfs mounts: an overlay snapshot, or
 * binds). On failure what was mounted is undone. */
int pod_mount_list(const char *target, const struct pod_host_mount *m, size_t n,
                   struct hull_error **err);
/* Unmount target as often as something is mounted on it. */
void pod_unmount_all(const char *target);
/* Bind src (a directory or file) at dst with the mounts inside it, made as an empty dir
 * or file first; read-only when asked, as runc's "ro": the top only, the mounts inside
 * as they are. */
int pod_bind(const char *src, const char *dst, bool readonly, struct hull_error **err);
/* Whether anything is mounted below path (not on it) in our mount namespace. */
bool pod_has_submounts(const char *path);
/* Copy host file src to a new file dst (at most 16 MiB: resolv.conf-sized files). */
int pod_copy_file(const char *src, const char *dst, struct hull_error **err);
/* Give the calling process mounts of its own: a new mount namespace whose mounts (the
 * binds of its sandboxes) go when it does, even when killed; host mounts still
 * propagate in. Without root, a user namespace of its own too (the caller's uid and gid
 * mapped to themselves), so the binds need no privilege. Before any thread or child. */
int pod_private_mounts(struct hull_error **err);
