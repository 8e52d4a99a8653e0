/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <termios.h>

#include "bundle.h"
#include "event.h"
#include "sandbox.h"
#include "ttrpc-server.h"
#include "vmm.h"

#define CONTAINER_ID "job"

struct volume {
	char *host; /* realpath */
	char *container;
	bool readonly;
};

struct run_opts {
	char *rootfs;
	char *bundle_dir;
	struct bundle bundle; /* with --bundle */
	bool rootfs_rw;
	char **cmd;
	char **cmd_owned;                /* when cmd is built from an image's config */
	char *entrypoint;                /* --entrypoint */
	char **image_env;                /* the image's Env, before --env-file and -e */
	int stop_signal;                 /* the image's StopSignal: sent for a SIGTERM, or 0 */
	bool user_set;                   /* -u given */
	struct image_store *image_store; /* held while an image's rootfs is in use */
	char **layers;  /* an image's layers as erofs disks (bottom first), or NULL */
	bool net_user;  /* --net=user: QEMU's NAT */
	char **hostfwd; /* -p, as QEMU's hostfwd */
	struct json_object *port_mappings; /* -p, as CNI's portMappings (portmap plugin) */
	char **temp_files; /* made for the sandbox (resolv.conf, hosts), removed at the end */
	char *netns;       /* --net=ns:PATH, or the namespace made for --net=cni:NAME */
	char *cni_net;     /* --net=cni:NAME */
	char **env;
	char *workdir;
	uint32_t uid, gid;
	struct volume *vols;
	size_t n_vols;
	struct volume *files; /* --bundle: bind mounts of host files, copied in at start */
	size_t n_files;
	char *hostname;
	unsigned cpus;
	uint64_t memory_mib;
	uint64_t timeout_ms, stop_timeout_ms;
	int boot_timeout_ms;
	char *kernel, *initrd, *qemu;
	enum vmm_accel accel;
	enum vmm_machine machine;
	int channel;
	bool interactive, tty, debug, privileged;
	bool detach;  /* -d: a per-sandbox process keeps the VM, serving the Task API */
	char *name;   /* --name: the sandbox's id */
	int ready_fd; /* -d: where the per-sandbox process says "ok" or why not */
};

struct run_state {
	struct run_opts *o;
	struct sandbox *sb;
	struct event_loop *loop;
	uint32_t attach_sid;
	bool stdio_done, waited, vm_died, timed_out, agent_lost;
	bool exec_failed; /* StartContainer failed: 126/127 apply, not 125 */
	int exit_code;
	/* stdin towards the guest */
	bool stdin_open, stdin_pollable;
	uint64_t in_credit;
	/* output towards our stdout/stderr */
	uint64_t out_unacked;
	bool out_broken[3];
	int sig_fd, winch_fd, timeout_fd, kill_fd;
	unsigned forwarded;
	struct termios saved_tty;
	bool tty_raw;
};
