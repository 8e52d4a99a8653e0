/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

enum vmm_accel {
	VMM_ACCEL_AUTO,
	VMM_ACCEL_KVM,
	VMM_ACCEL_TCG,
	_VMM_ACCEL_MAX,
};

enum vmm_machine {
	VMM_MACHINE_MICROVM,
	VMM_MACHINE_Q35,
	_VMM_MACHINE_MAX,
};

enum vmm_channel {
	VMM_CHANNEL_SERIAL, /* virtio-serial port "io.hull.agent" over a unix socket */
	VMM_CHANNEL_VSOCK,  /* AF_VSOCK, guest port 1024; needs /dev/vhost-vsock */
	_VMM_CHANNEL_MAX,
};

#define VMM_CPUS_MAX 64
#define VMM_MEMORY_MIN_MIB 64
#define VMM_MEMORY_MAX_MIB (1u << 20)
#define VMM_TCG_CACHE_MIN_MIB 8
#define VMM_TCG_CACHE_MAX_MIB 1024

/* What a user chooses about a VM, the same for every front end (hull run's flags, the
 * shim's config file, the CRI server): one default table and one validator
 * (vmm-settings.c). */
struct vmm_settings {
	char *kernel, *initrd; /* NULL: hull's own guest */
	char *qemu;            /* NULL: $HULL_QEMU or qemu-system-x86_64 */
	enum vmm_accel accel;
	enum vmm_machine machine;
	int channel; /* enum vmm_channel, or -1: vsock where the host has it */
	unsigned cpus;
	uint64_t memory_mib;
	uint64_t tcg_cache_mib; /* TCG's tb-size */
	uint64_t boot_timeout_ms;
	bool template;         /* restore from a template rather than boot (docs/templates.md) */
	char *template_domain; /* who may share one; NULL: the front end's default */
};

struct vmm_setting {
	const char *key;    /* "boot_timeout"; hull run's flag is --boot-timeout */
	const char *syntax; /* what a value looks like, for errors and help */
	const char *def;    /* the default as text, or NULL */
	const char *help;
};

/* Every setting at its default. */
void vmm_settings_init(struct vmm_settings *s);
void vmm_settings_done(struct vmm_settings *s);
void vmm_settings_copy(struct vmm_settings *dst, const struct vmm_settings *src);
/* Set key from text, checked. -ENOENT for a key that is not a VM setting, -EINVAL for a
 * bad value ("bad value 'x': want a number from 1 to 64"); s is unchanged then. */
int vmm_settings_set(struct vmm_settings *s, const char *key, const char *value,
                     struct hull_error **err);
/* The table, for help texts and docs. */
const struct vmm_setting *vmm_settings_list(size_t *ret_n);

/* A host directory shared into the guest over virtio-9p under a mount tag. */
struct vmm_share {
	const char *tag;
	const char *path;
	bool readonly;
};

/* A host file attached read-only as a virtio-blk disk; the guest finds it by serial
 * (/sys/block/vdX/serial). */
struct vmm_disk {
	const char *path;
	const char *serial; /* at most 20 characters */
};

/* A tap the caller opened (a pod's interface): QEMU inherits fd as -netdev tap,fd=,
 * and the guest sees a virtio-net NIC with this MAC and MTU (0: none offered). fd -1
 * is a template's slot: a NIC on a hub port of its own, which carries nothing. */
struct vmm_nic {
	int fd;
	const char *mac;
	unsigned mtu;
};

/* Everything needed to describe one VM. Strings are borrowed from the caller. */
struct vmm_config {
	const char *qemu;          /* binary, e.g. "qemu-system-x86_64" (PATH lookup) */
	const char *kernel;        /* bzImage */
	const char *initrd;        /* initramfs with the agent as /init */
	const char *cmdline_extra; /* appended to the kernel command line, may be NULL */
	const char *state_dir;     /* sockets and logs of this VM */
	const char *name;          /* shown in ps and QEMU's -name */
	enum vmm_accel accel;      /* resolved: KVM or TCG by the time argv is built */
	enum vmm_machine machine;
	enum vmm_channel channel;
	unsigned cpus;
	uint64_t memory_mib;
	uint64_t tcg_cache_mib; /* TCG's tb-size; 0: QEMU's default (1 GiB) */
	uint32_t vsock_cid;
	const struct vmm_share *shares;
	size_t n_shares;
	const struct vmm_disk *disks;
	size_t n_disks;
	/* User-mode networking (QEMU's NAT): one virtio-net NIC with this MAC, and host
	 * ports forwarded into the guest ("tcp:127.0.0.1:8080-:80", QEMU's hostfwd). */
	bool net_user;
	const char *net_mac;
	char *const *hostfwd;
	const struct vmm_nic *nics;
	size_t n_nics;
	bool vhost_net; /* the taps' data path in the host kernel (KVM only) */
	bool debug;     /* kernel messages on the console, agent debug logs */
	bool sandbox;   /* QEMU's own seccomp sandbox (-sandbox on,...) */
	/* Templates (docs/templates.md): guest RAM in this file, mapped shared while a
	 * template boots (its pages are the template), privately by a clone (read from
	 * the template's pages, copy-on-write). NULL: anonymous memory. */
	const char *mem_path;
	int mem_fd; /* > 2: instead of mem_path, this inherited fd's file (a clone's) */
	bool mem_shared;
	/* A clone: QEMU starts waiting for its state (-incoming defer) and inherits
	 * incoming_fd, the template's state file, which restore() loads. */
	bool incoming;
	int incoming_fd;
};

const char *vmm_accel_to_string(enum vmm_accel a);
int vmm_accel_from_string(const char *s);
const char *vmm_machine_to_string(enum vmm_machine m);
int vmm_machine_from_string(const char *s);

/* Pure: the QEMU argv for cfg, NULL-terminated, owned by the caller (strv_free).
 * Returns 0, or -EINVAL with *err set when cfg is incomplete. */
int vmm_build_argv(const struct vmm_config *cfg, char ***ret_argv, struct hull_error **err);

/* Paths inside cfg->state_dir. Caller frees. */
char *vmm_qmp_path(const char *state_dir);
char *vmm_agent_path(const char *state_dir);
char *vmm_console_path(const char *state_dir);
char *vmm_log_path(const char *state_dir);

/* Accel detection: KVM only where it really works. cpuinfo and dev are paths (tests
 * pass fixtures). *ret_why (may be NULL) explains a "no". */
bool vmm_kvm_usable(const char *dev, const char *cpuinfo, char **ret_why);
/* AUTO -> KVM or TCG; KVM asked for but unusable -> -ENODEV with *err set. */
int vmm_accel_resolve(enum vmm_accel want, enum vmm_accel *ret, struct hull_error **err);
bool vmm_vsock_available(void);

/* ---- a running VM, behind an ops table so a libvirt backend can follow ---- */

struct qmp;
struct vmm;

struct vmm_ops {
	const char *name;
	/* Launch the VM described by vm->cfg; returns once the monitor answers. */
	int (*start)(struct vmm *vm, struct hull_error **err);
	/* Connect to the agent channel without blocking: a stream fd, connected or still
	 * connecting (it polls writable once that is decided; SO_ERROR then says how),
	 * or -EAGAIN while the guest does not listen yet (try again shortly). */
	int (*connect_agent)(struct vmm *vm, int *ret_fd, struct hull_error **err);
	/* An fd that polls readable when the VM process has exited (-1 if none). */
	int (*exit_fd)(struct vmm *vm);
	/* Has it exited? Non-blocking. */
	bool (*exited)(struct vmm *vm);
	/* Ask to stop, wait up to timeout_ms, then force it. Always leaves it gone. */
	void (*stop)(struct vmm *vm, unsigned timeout_ms);
	/* Templates. Stop the VM and write its device state to fd (RAM is not written:
	 * it is cfg.mem_path, mapped shared); the VM stays stopped. -EOPNOTSUPP when
	 * the VMM cannot. */
	int (*save)(struct vmm *vm, int fd, struct hull_error **err);
	/* A VM started with cfg.incoming: begin loading its state. */
	int (*restore)(struct vmm *vm, struct hull_error **err);
	/* Non-blocking: 1 once the state is loaded and the VM runs, 0 while it loads,
	 * < 0 with *err when the load failed. */
	int (*restore_poll)(struct vmm *vm, struct hull_error **err);
	void (*free)(struct vmm *vm);
};

struct vmm {
	const struct vmm_ops *ops;
	struct vmm_config cfg;
	pid_t pid;
	int pidfd;
	struct qmp *qmp;
	bool reaped;
	int exit_status;
};

extern const struct vmm_ops vmm_qemu_ops;

/* New VM of the given backend; cfg is copied shallowly (strings stay the caller's). */
struct vmm *vmm_new(const struct vmm_ops *ops, const struct vmm_config *cfg);
struct vmm *vmm_free(struct vmm *vm);
/* The last max bytes of a file (console or QEMU log), for error messages. */
char *vmm_file_tail(const char *path, size_t max);
