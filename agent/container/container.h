/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* What the agent needs to make one container. The service layer fills this from a
 * validated CreateContainerRequest; nothing here points into wire buffers. */
struct container_mount {
	char *tag;         /* 9p mount tag of the host share */
	char *subpath;     /* a relative path inside the share, or NULL: the share itself */
	char *destination; /* absolute, inside the container */
	bool readonly;
};

struct oci_spec;

struct container_spec {
	char *id;
	struct oci_spec *oci; /* the runtime spec; the fields below are taken from it */
	char *root_tag;       /* 9p tag of the root filesystem */
	bool root_readonly;   /* mount the root read-only */
	bool root_overlay;    /* writes go to a tmpfs overlay */
	char *root_subpath;   /* the root is this directory inside the share, or NULL */
	char **root_layers;   /* or: erofs layers by disk serial, bottom first (overlay) */
	char **args;          /* argv, NULL-terminated, at least one */
	char **env;           /* NULL-terminated */
	char *cwd;            /* absolute */
	char *hostname;       /* may be NULL */
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	size_t n_groups;
	bool terminal;
	uint16_t rows, cols;
	struct container_mount *mounts;
	size_t n_mounts;
};

void container_spec_done(struct container_spec *spec);

/* Setup stages the child walks through; a failure names its stage. */
enum container_stage {
	STAGE_CHILD_INIT,
	STAGE_NAMESPACES,
	STAGE_MOUNT_ROOT,
	STAGE_MOUNT_SPECIAL,
	STAGE_PIVOT_ROOT,
	STAGE_HOSTNAME,
	STAGE_MASK_PATHS,
	STAGE_SYSCTL,
	STAGE_RLIMITS,
	STAGE_SECCOMP,
	STAGE_USER,
	STAGE_CWD,
	STAGE_EXEC,
	_STAGE_MAX,
};
const char *container_stage_name(enum container_stage s);

struct container_process {
	pid_t pid;
	int sync_fd;   /* parent end of the setup protocol; -1 once started */
	int stdin_fd;  /* write end, or the pty master (dup) */
	int stdout_fd; /* read end, or the pty master */
	int stderr_fd; /* read end, -1 with a terminal */
};

/* Clone the container's init with fresh mnt/pid/ipc/uts namespaces and run the setup
 * stages up to just before exec. On success the child waits for container_start().
 * On failure *err says "stage: message: strerror" and no process is left. */
int container_create(const struct container_spec *spec, struct container_process *ret,
                     struct hull_error **err);
/* Make an extra process in the running container whose init is init_pid, from an OCI
 * "process" JSON object: it joins the init's namespaces and the container's cgroup,
 * gets the container's seccomp filter, and waits for container_start() as a created
 * container does. Its parent is the agent (which reaps it). */
int container_exec(const struct container_spec *container, pid_t init_pid, const char *process_json,
                   size_t len, struct container_process *ret, struct hull_error **err);
/* Mount the host share `tag` once in the agent (idempotent); containers bind from
 * container_share_path(tag). */
int container_share_mount(const char *tag, bool readonly, struct hull_error **err);
char *container_share_path(const char *tag);
/* Let the created child exec its process. Returns 0 once exec succeeded; on failure
 * (e.g. -ENOENT for a missing binary) the child is gone and *err says why. */
int container_start(struct container_process *proc, struct hull_error **err);
/* Remove the per-container run directory (its mounts lived in the child's namespace
 * and went with it). */
void container_cleanup_dir(const char *id);

/* The container's cgroup (container-cgroup.c). */
char *container_cgroup_path(const char *id);
bool container_cgroup_oom_killed(const char *id);
void container_cgroup_remove(const char *id);

struct container_stats {
	uint64_t cpu_usage_usec, memory_current, memory_limit, pids_current, pids_limit, oom_kills;
};
int container_cgroup_stats(const char *id, struct container_stats *ret);
/* New limits from an OCI linux.resources JSON object. */
int container_cgroup_update(const char *id, const char *json, size_t len, struct hull_error **err);
/* Freeze (pause) or thaw (resume) every process of the container; waits until done. */
int container_cgroup_freeze(const char *id, bool frozen, struct hull_error **err);
int container_cgroup_pids(const char *id, uint32_t **ret, size_t *ret_n);
