/* SPDX-License-Identifier: MIT */
/* Host mounts for the fuzzers that reach the pod core: refused or skipped, so a fuzzed
 * Create never mounts anything on the host (the fuzzers may run as root). */
#include "pod-mount.h"

int pod_mount_list(const char *target, const struct pod_host_mount *m, size_t n,
                   struct hull_error **err)
{
	(void)target, (void)m, (void)n;
	return hull_error_set(err, -EPERM, "fuzz: no mounts");
}

void pod_unmount_all(const char *target)
{
	(void)target;
}

int pod_bind(const char *src, const char *dst, bool readonly, struct hull_error **err)
{
	(void)src, (void)dst, (void)readonly;
	return hull_error_set(err, -EPERM, "fuzz: no mounts");
}

bool pod_has_submounts(const char *path)
{
	(void)path;
	return false;
}

int pod_private_mounts(struct hull_error **err)
{
	return hull_error_set(err, -EPERM, "fuzz: no mounts");
}

int pod_copy_file(const char *src, const char *dst, struct hull_error **err)
{
	(void)src, (void)dst;
	return hull_error_set(err, -EPERM, "fuzz: no copies");
}
