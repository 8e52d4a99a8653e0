/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

#include "cri.pb-c.h"
#include "error.h"
#include "image.h"

/* CRI configs -> OCI runtime specs (config.json), as containerd 1.6's CRI plugin writes
 * them for runc, so containerd-shim-hull-v2 and the guest agent see what they see under
 * containerd. Pure: no I/O; what the host knows (paths of the pod's files, the sandbox
 * task's pid, the image's account files) comes in through the arguments.
 * Errors are -EINVAL, for what is wrong and for what hull cannot do alike, with a
 * message that names the CRI field: "config.linux.security_context.namespace_options.
 * network: NODE (hostNetwork) is not supported by hull: ...". */

/* What the pod contributes to every spec of its own. */
struct cri_spec_pod {
	const char *id; /* the pod sandbox id (64 hex) */
	const Runtime__V1__PodSandboxConfig *config;
	/* CNI's network namespace on the host, or NULL. The shim joins the VM to it; the
	 * guest never sees the path (pod/task-spec.c drops it). */
	const char *netns_path;
	/* The sandbox task's pid as the shim reported it (a guest pid): containers join
	 * /proc/PID/ns/{pid,ipc,uts}; required for them, unused for the sandbox. */
	uint32_t sandbox_pid;
	/* The kubelet's cgroup driver: "cgroupfs" (or NULL) or "systemd". */
	const char *cgroup_driver;
	/* Files the caller keeps on the host for the pod, bind-mounted as containerd
	 * does (NULL: not mounted): /etc/hostname, /etc/hosts and /etc/resolv.conf into
	 * every container (read-only when its root is), /etc/resolv.conf into the
	 * sandbox; the pod's /dev/shm into the sandbox (read-only) and into every
	 * container (read-write) in place of a tmpfs of its own. */
	const char *hostname_path, *hosts_path, *resolv_path, *shm_path;
	/* The pod runs on the host's kernel (the runc handler), not in a VM: the node's
	 * namespaces may be shared (hostNetwork, hostIPC, hostPID: no entry for them),
	 * containers join the sandbox's network namespace by /proc/PID/ns/net when there
	 * is no CNI one, and no oomScoreAdj goes below oom_score_adj_floor (containerd's
	 * restrict_oom_score_adj: a process cannot lower its own without
	 * CAP_SYS_RESOURCE). */
	bool host_kernel;
	int oom_score_adj_floor;
	/* The text of the sandbox's Localhost seccomp profile (the file its
	 * security_context names, read by the caller), or NULL. */
	const char *seccomp_localhost;
};

/* The pod sandbox task's spec: pause_path (absolute in the sandbox's read-only
 * "rootfs") as the process, the pod's hostname, namespaces (pid unless hostPID, ipc,
 * uts, mount, network at netns_path), sysctls, cgroupsPath from cgroup_parent and the
 * io.kubernetes.cri.* annotations the shim groups by. *ret_json is malloc'd JSON
 * (caller frees), set only on success. */
int cri_sandbox_spec(const struct cri_spec_pod *pod, const char *pause_path, char **ret_json,
                     struct hull_error **err);

/* The image's /etc/passwd and /etc/group as text, read by the caller from the
 * container's root filesystem (either NULL when absent). containerd resolves user and
 * group names and the user's supplementary groups from these files. */
struct cri_spec_users {
	const char *passwd;
	const char *group;
	/* The text of the Localhost seccomp profile the config names (read by the caller
	 * from the node), or NULL: such a profile then fails with the field that named
	 * it. */
	const char *seccomp_localhost;
};

/* A container's spec: cfg over the image config img (whose name image_name goes in
 * the io.kubernetes.cri.image-name annotation), in the namespaces of the pod's sandbox
 * task. With users NULL, a user name (an image's USER nginx, run_as_username) fails
 * with the field that named it, and numeric users get gid 0 unless a group is given.
 * *ret_json is malloc'd JSON (caller frees), set only on success. */
int cri_container_spec_users(const struct cri_spec_pod *pod, const char *ctr_id,
                             const Runtime__V1__ContainerConfig *cfg,
                             const struct image_config *img, const char *image_name,
                             const struct cri_spec_users *users, char **ret_json,
                             struct hull_error **err);
/* cri_container_spec_users() without account files. */
int cri_container_spec(const struct cri_spec_pod *pod, const char *ctr_id,
                       const Runtime__V1__ContainerConfig *cfg, const struct image_config *img,
                       const char *image_name, char **ret_json, struct hull_error **err);
