/* SPDX-License-Identifier: MIT */
/* Host mounts for the shim fuzzer: refused, so a fuzzed Create never mounts. */
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
