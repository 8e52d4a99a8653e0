/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "bundle.h"
#include "pod.h"
#include "vmm.h"

#define CONTAINER_ID "job"

/* A host directory or file the job sees (-v, a bundle's bind mounts, /etc files). */
struct volume {
	char *host; /* absolute */
	char *container;
	bool readonly;
	bool copy; /* a host file, copied into the sandbox (decision 24) */
};

/* What `hull run`'s command line asks for (cli-run-args.c). */
struct run_opts {
	struct vmm_settings vm; /* --cpus, -m, --kernel, ...: vmm_settings_set() */
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
	struct volume *vols; /* -v, and a bundle's bind mounts */
	size_t n_vols;
	struct volume *files; /* /etc files hull adds (resolv.conf, hosts) */
	size_t n_files;
	char *hostname;
	uint64_t timeout_ms, stop_timeout_ms;
	uint64_t log_max_size; /* -d: --log-opt max-size */
	unsigned log_max_files;
	bool interactive, tty, debug, privileged;
	bool detach; /* -d: a per-sandbox process keeps the VM, serving the Task API */
	char *name;  /* --name: the sandbox's id */
};

/* Returns 0, 1 for --help, or -EINVAL after printing why. */
int run_parse_args(int argc, char **argv, struct run_opts *o);
void run_opts_done(struct run_opts *o);
_printf_(1, 2) int run_usage_error(const char *fmt, ...);

/* The job as the pod core takes it, built once from the options for both the
 * foreground run and the detached one. */
struct run_job {
	struct pod_config pod;
	struct pod_ctr_config ctr;
	char *config; /* the spec: the bundle's, or one generated from the options */
	struct pod_mount *mounts;
	struct vmm_disk *disks;
	char **serials;
};

int run_job_prepare(const struct run_opts *o, const char *name, struct run_job *j,
                    struct hull_error **err);
void run_job_done(struct run_job *j);
/* The terminal's size (of stdin, or stdout). */
void run_tty_size(uint32_t *rows, uint32_t *cols);
/* A file of the container's /etc (path): text, or the host's own file when text is
 * NULL, bound into the sandbox like a bundle's host files. A bundle keeps its own. */
int run_add_etc_file(struct run_opts *o, const char *path, const char *text,
                     struct hull_error **err);
/* /etc/hosts as docker writes it: localhost, and the sandbox's name at its addresses. */
char *run_hosts_text(const char *name, char *const *cidrs);
/* A sandbox name when none is given: 12 hex digits. */
char *run_random_name(void);
/* 0 when name is an executable (a path, or found in $PATH). */
int run_check_binary(const char *name);

/* hull run -d (cli-run-detach.c): fork the per-sandbox process. In the caller: wait
 * until it says the job runs, print its name, return the exit code. In the child:
 * return -1 with *ret_ready_fd, where it says so (run_detached). */
int run_detach_fork(struct run_opts *o, int *ret_ready_fd);
/* The per-sandbox process: boot, run the job, serve the Task API until Shutdown. */
int run_detached(struct run_opts *o, int ready_fd);
