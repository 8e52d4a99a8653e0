/* SPDX-License-Identifier: MIT */
/* Container spec helpers that do not touch the system: shared by the engine and the
 * fuzzers that exercise request validation without cloning anything. */
#include "container.h"

#include "oci-spec.h"
#include "util.h"

static const char *const stage_names[_STAGE_MAX] = {
    [STAGE_CHILD_INIT] = "init",
    [STAGE_NAMESPACES] = "join namespace",
    [STAGE_MASK_PATHS] = "masked/readonly paths",
    [STAGE_SYSCTL] = "sysctl",
    [STAGE_RLIMITS] = "rlimits",
    [STAGE_SECCOMP] = "seccomp",
    [STAGE_MOUNT_ROOT] = "mount rootfs",

    [STAGE_MOUNT_SPECIAL] = "mount special fs",
    [STAGE_PIVOT_ROOT] = "pivot_root",
    [STAGE_HOSTNAME] = "set hostname",
    [STAGE_USER] = "set user",
    [STAGE_CWD] = "set working directory",
    [STAGE_EXEC] = "exec",
};

const char *container_stage_name(enum container_stage s)
{
	return (unsigned)s < _STAGE_MAX ? stage_names[s] : "unknown stage";
}

void container_spec_done(struct container_spec *spec)
{
	if (spec->oci) {
		oci_spec_done(spec->oci);
		free(spec->oci);
	}
	free(spec->id);
	free(spec->root_tag);
	free(spec->root_subpath);
	strv_free(spec->root_layers);
	strv_free(spec->args);
	strv_free(spec->env);
	free(spec->cwd);
	free(spec->hostname);
	free(spec->groups);
	for (size_t i = 0; i < spec->n_mounts; i++) {
		free(spec->mounts[i].tag);
		free(spec->mounts[i].subpath);
		free(spec->mounts[i].destination);
	}
	free(spec->mounts);
	*spec = (struct container_spec){0};
}
