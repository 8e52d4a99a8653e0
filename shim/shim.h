/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "event.h"
#include "shim-task.pb-c.h"
#include "vmm.h"

/* containerd-shim-hull-v2: one process per pod (or per container outside Kubernetes)
 * that owns the pod's VM and serves containerd's shim v2 Task API for every container
 * of the pod. See docs/kubernetes.md and docs/shim.md. */

/* The shim's configuration file (a small TOML subset, docs/shim.md). */
struct shim_config {
	char *kernel, *initrd, *qemu;
	enum vmm_accel accel;
	enum vmm_machine machine;
	int channel; /* enum vmm_channel, or -1: auto */
	unsigned cpus;
	uint64_t memory_mib;
	int boot_timeout_ms;
	int log_level; /* enum log_level */
};

void shim_config_defaults(struct shim_config *c);
/* Parse text (path names the file, for messages) over the values already in c. */
int shim_config_parse(const char *text, size_t len, const char *path, struct shim_config *c,
                      struct hull_error **err);
/* Defaults, then the file at path if it exists (path NULL: /etc/hull/shim.toml if it
 * exists). A path that was named but cannot be read is an error. */
int shim_config_load(const char *path, bool named, struct shim_config *c, struct hull_error **err);
void shim_config_done(struct shim_config *c);

/* Where containerd's flags and environment put us. */
struct shim_args {
	const char *namespace;
	const char *address;       /* containerd's grpc socket */
	const char *ttrpc_address; /* $TTRPC_ADDRESS: where events go */
	const char *id;
	const char *bundle;
	bool debug;
};

/* Host mounts for one container (shim-mount.c). */
/* Mount containerd's rootfs mounts (overlay snapshots, binds) on target, in order. */
int shim_mount_rootfs(const char *target, Hull__Task__Mount *const *m, size_t n,
                      struct hull_error **err);
/* Unmount target as often as something is mounted on it. */
void shim_unmount_all(const char *target);
/* Bind src (a directory or file) at dst, made as an empty dir or file first. */
int shim_bind(const char *src, const char *dst, bool readonly, struct hull_error **err);

/* Join the pod's host cgroup (a cgroupfs-style linux.cgroupsPath) in every hierarchy,
 * before the VM boots; *made collects the dirs we created, for shim_cgroup_leave(). */
int shim_cgroup_join(const char *path, char ***made, struct hull_error **err);
void shim_cgroup_leave(char **made);

/* The config.json the guest gets (shim-spec.c): network namespace paths dropped (the
 * VM is the pod's network namespace). *out is the rewritten JSON; caller frees. */
int shim_spec_for_guest(const char *json, size_t len, char **out, size_t *out_len,
                        struct hull_error **err);

struct bundle;
struct sandbox_config;

/* What `hull run -d` leaves running: one container in a sandbox of its own. */
struct shim_job {
	const char *id;
	const char *bundle_dir;      /* reported by State, or NULL */
	const struct bundle *bundle; /* config (sent as is), rootfs, bind sources, terminal */
	bool root_overlay;           /* rootfs shared read-only, writes to a tmpfs overlay */
	const char *log_name; /* stdout and stderr (and ours) appended to STATE/NAME/log_name */
	uint64_t timeout_ms;  /* SIGKILL the job after this, or 0 */
};

/* Boot a sandbox from cfg, create and start job in it, write "ok NAME\n" (or
 * "hull: why\n") to ready_fd, then serve the Task API on STATE/NAME/task.sock until
 * Shutdown; returns the exit code. Host files among the bind sources are copied in. */
int shim_serve_job(const struct shim_args *a, const struct sandbox_config *cfg,
                   const struct shim_job *job, int ready_fd);

/* The service (shim-service.c): listens on sock_path, writes "ok\n" (or the reason it
 * cannot) to ready_fd, serves until Shutdown or SIGTERM; returns the exit code. */
int shim_serve(const struct shim_args *a, const char *sock_path, int ready_fd);
