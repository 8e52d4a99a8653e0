/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* What the host needs from an OCI bundle to boot it: the config bytes (the guest
 * parses and validates them fully), the rootfs directory, whether a terminal is
 * wanted, and the host directories that bind mounts name (shared into the guest). */
struct bundle_bind {
	char *source;      /* host directory or regular file */
	char *destination; /* in the container */
	bool readonly;
	bool is_file; /* copied into the sandbox at start (9p shares directories) */
};

struct bundle {
	char *config;
	size_t config_len;
	char *rootfs; /* absolute */
	bool root_readonly;
	bool terminal;
	struct bundle_bind *binds;
	size_t n_binds;
	/* What the containerd shim groups and places by (NULL when absent): the CRI
	 * annotations io.kubernetes.cri.container-type ("sandbox" or "container") and
	 * io.kubernetes.cri.sandbox-id, linux.cgroupsPath, and the path of the network
	 * namespace (CNI's, which the VM joins: docs/networking.md). */
	char *container_type;
	char *sandbox_id;
	char *cgroups_path;
	char *netns_path;
	/* Namespaces the spec does not ask for, so shares with the host (a pod's
	 * hostNetwork, hostIPC, hostPID): no entry of that type in linux.namespaces. */
	bool host_network, host_ipc, host_pid;
	/* Who may share the pod's template (docs/templates.md): the CRI annotation
	 * io.kubernetes.cri.sandbox-namespace, and the pod annotation
	 * io.hull.template-domain (containerd passes it with pod_annotations). */
	char *k8s_namespace;
	char *template_domain;
};

/* linux.cgroupsPath as a path under a cgroup hierarchy's root: a cgroupfs path
 * ("/kubepods/besteffort/podU/ID") as it is; systemd's "slice:prefix:name" (what
 * containerd builds when the kubelet's cgroup driver is systemd) as systemd lays it
 * out: "kubepods-besteffort-podU.slice:cri-containerd:ID" is
 * "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podU.slice/
 * cri-containerd-ID.scope". NULL when it is neither (a relative path, "..", a unit
 * name systemd would refuse). */
char *bundle_cgroup_path(const char *cgroups_path);

/* Read DIR/config.json (at most 1 MiB) and resolve what it names on the host. */
int bundle_read(const char *dir, struct bundle *ret, struct hull_error **err);
/* The pure part: fields from config bytes; paths are not checked on disk. */
int bundle_parse_config(const char *json, size_t len, struct bundle *ret, struct hull_error **err);
void bundle_done(struct bundle *b);
