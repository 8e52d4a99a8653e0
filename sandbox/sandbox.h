/* SPDX-License-Identifier: MIT */
#pragma once

#include "event.h"
#include "sandbox-net.h"
#include "sandbox-template.h"
#include "ttrpc-client.h"
#include "vmm.h"

/* One sandbox: a VM with the agent, its state dir, the agent channel. The pod core
 * (pod/) owns one; nothing above it reaches in here.
 *
 * Started from an event loop and never blocking it on the guest: sandbox_start()
 * returns once QEMU runs (its own start, to the QMP greeting, is a few tens of ms and
 * does not depend on the guest); the rest runs from the loop, and ops->ready says how
 * the start ended. By default the VM is a clone of a template (docs/templates.md):
 * restored instead of booted, the template built first when there is none; anything
 * a template cannot serve boots cold, logged at info with the reason. */
struct sandbox_config {
	const char *state_root; /* parent of the per-sandbox state dir, NULL: the default */
	const char *id;         /* the sandbox's name, or NULL for a random id */
	const struct vmm_settings *vm;
	const struct vmm_disk *disks; /* read-only block devices (image layers) */
	size_t n_disks;
	/* --net=user: QEMU's NAT (guest 10.0.2.15/24, gateway 10.0.2.2, DNS 10.0.2.3),
	 * configured in the guest once it is up; hostfwd as QEMU spells it. */
	bool net_user;
	char *const *hostfwd;
	/* A network namespace made by CNI (a pod's, or --net=cni): its interfaces are
	 * joined to the VM by taps and configured in the guest (docs/networking.md). */
	const char *netns;
	bool debug;
	/* `hull template create`: only make sure the template this sandbox would restore
	 * from exists (built if not), then report ready; no clone runs. The shape is
	 * n_disks disks (disks may be NULL) and template_nics tap NICs. */
	bool template_only;
	unsigned template_nics;
};

struct sandbox;

struct sandbox_ops {
	/* The boot ended: r == 0, the agent answered and the guest's network is set;
	 * otherwise why it failed (with the console's last lines). Either way exactly
	 * once; after a failure the owner calls sandbox_stop(). */
	void (*ready)(struct sandbox *sb, int r, const struct hull_error *err, void *userdata);
	/* After ready: the VM exited or its agent channel ended (a protocol violation
	 * included); err says which. At most once. */
	void (*lost)(struct sandbox *sb, const struct hull_error *err, void *userdata);
};

enum sandbox_phase {
	SANDBOX_BOOT,    /* its own VM boots: channel, Check, Sync, network */
	SANDBOX_WAIT,    /* another process builds the template it needs */
	SANDBOX_BUILD,   /* the template's VM boots first: channel, Check, save */
	SANDBOX_RESTORE, /* a clone loads the template's state; Sync waits for it */
};

struct sandbox {
	char *id;
	char *state_dir;
	/* STATE/shared, shared as tag "hull-shared": the host binds what containers need
	 * (rootfs, volumes, files) below it, at any time after boot (docs/decisions.md). */
	char *shared_dir;
	struct ttrpc_client *agent; /* attached to the loop; NULL until connected */
	bool ready, lost;
	char *template_id;                         /* restored from this template; NULL: booted */
	uint64_t t_start_ns, t_vmm_ns, t_ready_ns; /* phases, for bench/ */
	/* the rest is the sandbox's own */
	struct event_loop *loop;
	const struct sandbox_ops *ops;
	void *userdata;
	struct vmm *vm;
	struct vmm_config vc; /* its own VM, as a cold boot runs it */
	struct vmm_share share;
	struct sandbox_net *net; /* with cfg->netns */
	struct vmm_nic *nics;
	char *kernel, *initrd, *qemu;
	bool net_user;
	bool boot_done;
	int exit_fd;    /* QEMU's pidfd, in the loop */
	int retry_fd;   /* vsock: timerfd between connection attempts */
	int connect_fd; /* vsock: a connection in progress */
	uint64_t boot_deadline_ns, boot_timeout_ms;
	unsigned net_calls;             /* ConfigureNetwork calls not yet answered */
	struct hull_error *kill_reason; /* sandbox_kill()'s */
	bool stopping;                  /* in sandbox_stop(): no more callbacks */
	char net_mac[18];               /* --net=user's NIC: random, the sandbox's own */
	/* templates */
	enum sandbox_phase phase;
	bool template_only;
	char *domain, *root;
	struct template_spec tspec;
	struct template *tpl;         /* open while a clone restores */
	struct template_build *build; /* while the template's VM boots */
	struct vmm_disk *slot_disks;  /* a clone's or template's devices, by slot */
	struct vmm_nic *slot_nics;
	char (*slot_macs)[18];
	char nat_slot_mac[18];
	int tick_fd;               /* timerfd: restore progress, waiting for a builder */
	uint64_t wait_deadline_ns; /* stop waiting for another builder */
};

/* Create the state dir, launch QEMU and begin the boot. On failure nothing is left and
 * no callback runs; on success *ret is the sandbox and ops->ready follows. */
int sandbox_start(struct event_loop *loop, const struct sandbox_config *cfg,
                  const struct sandbox_ops *ops, void *userdata, struct sandbox **ret,
                  struct hull_error **err);
/* Ask the agent to power off, wait up to timeout_ms, then force; remove the state dir
 * and free. No callback runs during or after it. Accepts NULL; returns NULL. */
struct sandbox *sandbox_stop(struct sandbox *sb, int timeout_ms);
/* For tests and fuzzers: a sandbox with no VM, ready, whose agent channel is fd (a
 * socketpair end, attached to loop) or, with fd -1, a client fed by hand
 * (ttrpc_client_feed). shared_dir may be NULL. Freed by sandbox_stop(). */
struct sandbox *sandbox_fake(struct event_loop *loop, int fd, const char *shared_dir);
/* Stop the VM at once (a guest that broke the protocol): QEMU is killed here, and
 * ops->lost (or ops->ready during the boot) follows from the loop with err. */
void sandbox_kill(struct sandbox *sb, const struct hull_error *err);
/* The last lines of the guest console, for error messages. Caller frees. */
char *sandbox_console_tail(struct sandbox *sb, size_t max);
uint64_t sandbox_now_ns(void);
#define SANDBOX_SHARED_TAG "hull-shared"
#define SANDBOX_NAT_GUEST "10.0.2.15"
#define SANDBOX_NAT_DNS "10.0.2.3"
/* Write STATE/owner ("pid starttime") for this process. */
void sandbox_write_owner(const char *state_dir);
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
