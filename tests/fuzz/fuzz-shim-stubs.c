/* SPDX-License-Identifier: MIT */
/* Host mounts and cgroups for the shim fuzzer: refused or skipped, so a fuzzed Create
 * never mounts and never moves the fuzzer between host cgroups. */
#include "shim.h"

int shim_mount_rootfs(const char *target, Hull__Task__Mount *const *m, size_t n,
                      struct hull_error **err)
{
	(void)target, (void)m, (void)n;
	return hull_error_set(err, -EPERM, "fuzz: no mounts");
}

void shim_unmount_all(const char *target)
{
	(void)target;
}

int shim_bind(const char *src, const char *dst, bool readonly, struct hull_error **err)
{
	(void)src, (void)dst, (void)readonly;
	return hull_error_set(err, -EPERM, "fuzz: no mounts");
}

int shim_cgroup_join(const char *path, char ***made, struct hull_error **err)
{
	(void)path, (void)made, (void)err;
	return 0;
}

void shim_cgroup_leave(char **made)
{
	(void)made;
}
