/* SPDX-License-Identifier: MIT */
#pragma once

/* The engine's topic files, called from the staged setup in container.c. Each returns
 * 0 or -errno with *err naming what failed; the child reports it with its stage. */
#include "container.h"
#include "oci-spec.h"

/* container-process.c */
int container_apply_rlimits(const struct oci_spec *s, struct hull_error **err);
/* Parent side: the process's oom_score_adj from the spec. */
int container_set_oom_score_adj(pid_t pid, const struct oci_spec *s, struct hull_error **err);
int container_set_identity(const struct container_spec *spec, struct hull_error **err);
int container_set_no_new_privs(const struct oci_spec *s, struct hull_error **err);

/* container-mounts.c: before pivot_root, paths below root */
int container_mount_oci(const char *root, const struct container_spec *spec,
                        struct hull_error **err);
/* after pivot_root */
int container_mask_paths(const struct oci_spec *s, struct hull_error **err);
int container_apply_sysctl(const struct oci_spec *s, struct hull_error **err);
void container_make_default_devices(const char *root);

/* container-seccomp.c */
int container_seccomp_load(const struct oci_seccomp *sc, struct hull_error **err);

/* container-cgroup.c: parent side */
int container_cgroup_setup(const char *id, const struct oci_spec *s, pid_t pid,
                           struct hull_error **err);
