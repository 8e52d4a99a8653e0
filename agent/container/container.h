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

/* Where a container process is on its way from clone() to execve(). Every step is
 * driven by the caller's event loop: nothing here waits for a child. */
enum container_phase {
	CONTAINER_NONE,     /* no process (yet) */
	CONTAINER_SETUP,    /* cloned: the child walks its stages (an exec's helper first
	                     * reports the pid) */
	CONTAINER_CREATED,  /* the child reported READY: stdio is valid, it waits for START */
	CONTAINER_STARTING, /* START written: waiting for execve (EOF) or its error */
	CONTAINER_RUNNING,  /* exec'd */
	CONTAINER_FAILED,   /* setup or exec failed */
	_CONTAINER_PHASE_MAX,
};

struct container_process {
	enum container_phase phase;
	pid_t pid;   /* 0 while an exec's helper has not reported it */
	bool exited; /* the caller's reaper collected pid (container_process_reaped) */
	/* The setup socket, non-blocking: poll it for input while SETUP or STARTING and
	 * call container_step(); -1 once running or failed. */
	int sync_fd;
	int stdin_fd;  /* from CREATED on: the write end, or the pty master (dup) */
	int stdout_fd; /* the read end, or the pty master */
	int stderr_fd; /* the read end, -1 with a terminal */
	/* The engine's own. */
	pid_t helper; /* an exec's helper, until reaped */
	bool terminal;
	bool ready_early; /* an exec's READY came before its helper's report */
	bool has_oom_score_adj;
	int oom_score_adj;
};

/* An empty record: no process, every fd -1. */
void container_process_init(struct container_process *proc);
/* Clone the container's init with fresh mnt/pid/ipc/uts namespaces, put it into its
 * cgroup, set its oom_score_adj and user-namespace maps: the parent's own quick
 * syscalls. Returns 0 with proc in CONTAINER_SETUP: the child walks the setup stages
 * up to just before exec and reports on proc->sync_fd (container_step()). On failure
 * *err says why; a child already cloned was killed and proc->pid names it until the
 * caller's reaper collects it (its cgroup can be removed after that). */
int container_create(const struct container_spec *spec, struct container_process *proc,
                     struct hull_error **err);
/* Make an extra process in the running container whose init is init_pid, from an OCI
 * "process" JSON object: a helper joins the init's namespaces and the container's
 * cgroup and clones the process into its pid namespace (as a child of the caller,
 * CLONE_PARENT), which gets the container's seccomp filter and stops before exec as a
 * created container does. Returns 0 with proc in CONTAINER_SETUP (proc->pid is 0 until
 * the helper reported it through container_step()), or < 0 with *err set. */
int container_exec(const struct container_spec *container, pid_t init_pid, const char *process_json,
                   size_t len, struct container_process *proc, struct hull_error **err);
/* proc->sync_fd turned readable: read what the child (or an exec's helper) reported,
 * without blocking. Take sync_fd out of the event loop before calling: this may close
 * it. Returns 0 when the phase did not change (poll again), 1 when it advanced
 * (CONTAINER_CREATED: stdio valid; CONTAINER_RUNNING: exec succeeded, sync_fd closed),
 * or < 0 with *err saying at which stage the child failed: proc is CONTAINER_FAILED. A
 * child that failed its setup is killed; one that failed its exec exits by itself
 * (126/127, as a shell would). */
int container_step(struct container_process *proc, struct hull_error **err);
/* Let a CONTAINER_CREATED child exec its process: writes START and returns 0 with proc
 * CONTAINER_STARTING; container_step() says when exec succeeded (or e.g. -ENOENT for a
 * missing binary). < 0 with *err set when the child is gone or the phase is wrong. */
int container_start(struct container_process *proc, struct hull_error **err);
/* Send sig to the process: 0, -ESRCH once it was reaped or before its pid is known. */
int container_signal(struct container_process *proc, int sig);
/* The caller's SIGCHLD reaper collected pid: forget it (nothing signals a reused pid).
 * True when it was proc's process (not its helper). */
bool container_process_reaped(struct container_process *proc, pid_t pid);
/* Close every fd proc holds and SIGKILL its process and helper unless reaped. The
 * pids stay: the caller's reaper still matches them (container_process_reaped()). */
void container_process_done(struct container_process *proc);
/* Mount the host share `tag` once in the agent (idempotent); containers bind from
 * container_share_path(tag). */
int container_share_mount(const char *tag, bool readonly, struct hull_error **err);
char *container_share_path(const char *tag);
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
