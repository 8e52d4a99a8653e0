/* SPDX-License-Identifier: MIT */
#pragma once

#include "agent-client.h"
#include "sandbox-net.h"
#include "vmm.h"

/* One sandbox: a VM booted with the agent, its state dir, the agent channel. `hull run`
 * drives one in-process; the shim will own one per pod. */
struct sandbox_config {
	const char *state_root; /* parent of the per-sandbox state dir */
	const char *id;         /* the sandbox's name, or NULL for a random id */
	const char *kernel, *initrd, *qemu;
	enum vmm_accel accel;
	enum vmm_machine machine;
	int channel; /* enum vmm_channel, or -1 for auto (vsock where the host has it) */
	unsigned cpus;
	uint64_t memory_mib;
	const struct vmm_share *shares;
	size_t n_shares;
	const struct vmm_disk *disks; /* read-only block devices (image layers) */
	size_t n_disks;
	/* --net=user: QEMU's NAT (guest 10.0.2.15/24, gateway 10.0.2.2, DNS 10.0.2.3),
	 * configured in the guest once it is up; hostfwd as QEMU spells it. */
	bool net_user;
	char *const *hostfwd;
	/* A network namespace made by CNI (a pod's, or --net=cni): its interfaces are
	 * joined to the VM by taps and configured in the guest (docs/networking.md). */
	const char *netns;
	/* Host files copied into STATE/files/f<N> before boot and shared as tag
	 * "hull-files" (9p shares directories, not single files). */
	const char *const *files;
	size_t n_files;
	/* Make STATE/shared, shared as tag "hull-shared": the host bind-mounts what a
	 * container added after boot needs (rootfs, bind sources) below it. */
	bool shared_dir;
	int boot_timeout_ms;
	bool debug;
	int interrupt_fd; /* a signalfd that aborts the boot when readable, or -1 */
};

struct sandbox {
	char *id;
	char *state_dir;
	struct vmm_share *shares; /* the caller's and "hull-files" */
	char *files_dir;          /* STATE/files, when files were copied in */
	char *shared_dir;         /* STATE/shared, with cfg->shared_dir */
	struct vmm *vm;
	struct agent_client *ac;
	struct sandbox_net *net; /* with cfg->netns */
	struct vmm_nic *nics;
	uint64_t t_start_ns, t_vmm_ns, t_ready_ns; /* phases, for bench/ */
};

/* Boot a VM and wait until its agent answers. On failure nothing is left: no QEMU, no
 * state dir; *err carries the reason and, for boot failures, the console's tail. */
int sandbox_start(const struct sandbox_config *cfg, struct sandbox **ret, struct hull_error **err);
/* Ask the agent to power off, wait up to timeout_ms, then force; remove the state dir
 * and free. Accepts NULL; returns NULL. */
struct sandbox *sandbox_stop(struct sandbox *sb, int timeout_ms);
/* The last lines of the guest console, for error messages. Caller frees. */
char *sandbox_console_tail(struct sandbox *sb, size_t max);
uint64_t sandbox_now_ns(void);
#define SANDBOX_FILES_TAG "hull-files"
#define SANDBOX_SHARED_TAG "hull-shared"
#define SANDBOX_NAT_GUEST "10.0.2.15"
#define SANDBOX_NAT_DNS "10.0.2.3"
/* Copy host file src to a new file dst (at most 16 MiB: resolv.conf-sized files). */
int sandbox_copy_file(const char *src, const char *dst, struct hull_error **err);
/* The live process that owns state_dir (a hull or shim), or 0 when it is gone. */
int sandbox_owner(const char *state_dir);
/* Remove the state dirs under root whose owning process is gone. */
void sandbox_sweep_stale(const char *root);
/* Unmount everything mounted below dir (deepest first, lazily). Returns how many. */
int sandbox_unmount_below(const char *dir);
/* Remove a sandbox's state dir: unmount what is below it, then delete without
 * crossing into other filesystems. */
void sandbox_remove_state(const char *dir);
/* The guest kernel ("vmlinuz") or initramfs ("initramfs.cpio") to boot by default:
 * $HULL_KERNEL/$HULL_INITRD, next to the binary (guest/), or ../lib/hull/. */
char *sandbox_default_guest_file(const char *name);
/* Default state root: $HULL_STATE_DIR, /run/hull for root, else $XDG_RUNTIME_DIR/hull
 * or /tmp/hull-UID. Caller frees. */
char *sandbox_default_state_root(void);
