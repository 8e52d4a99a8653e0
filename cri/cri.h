/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "cri.pb-c.h"
#include "error.h"
#include "event.h"
#include "grpc-server.h"
#include "util.h"

/* hull-cri: kubelet's CRI (runtime.v1 RuntimeService and ImageService) over gRPC on a
 * unix socket, each pod one containerd-shim-hull-v2 process and one VM, driven over
 * the shim v2 Task API exactly as containerd drives it. docs/kubernetes.md. */

#define CRI_DEFAULT_CONFIG "/etc/hull/cri.toml"
#define CRI_DEFAULT_SOCKET "/run/hull/cri.sock"
#define CRI_DEFAULT_ROOT "/var/lib/hull/cri"
#define CRI_DEFAULT_STATE "/run/hull/cri"
#define CRI_RUNTIME_NAME "hull"
#define CRI_API_VERSION "v1"

struct cri_config {
	char *socket;
	char *root;  /* persistent: metadata */
	char *state; /* runtime: bundles, shim sockets */
	char *image_root;
	char *stream_address; /* host:port of the streaming server */
	char *cni_conf_dir;
	char **cni_bin_dirs;
	char *cgroup_driver;          /* "cgroupfs" or "systemd" */
	char *shim_binary;            /* containerd-shim-hull-v2, found on PATH or beside us */
	char *shim_config;            /* passed to the shim (its ConfigPath), or NULL */
	char *pause_binary;           /* the sandbox task's process */
	char *runc_shim;              /* containerd-shim-runc-v2 for the runc handler, or NULL */
	bool host_namespaces_to_runc; /* hostNetwork/hostIPC pods go to runc, else refused */
	char **insecure_registries;
	char *registry_mirrors; /* "host=url,..." as hull pull's HULL_REGISTRY_MIRRORS */
	int log_level;
};

void cri_config_defaults(struct cri_config *c);
/* The file's keys over the values in c (docs/kubernetes.md lists them). */
int cri_config_parse(const char *text, size_t len, const char *path, struct cri_config *c,
                     struct hull_error **err);
int cri_config_load(const char *path, bool named, struct cri_config *c, struct hull_error **err);
void cri_config_done(struct cri_config *c);

struct cri_pod;
struct cri_ctr;
struct cri_stream_server;

struct cri {
	struct event_loop *loop;
	struct cri_config cfg;
	struct grpc_server *grpc;
	struct grpc_method *methods;
	struct image_store *images;
	int work_pipe[2];                 /* workers hand finished work back to the loop */
	unsigned n_working;               /* threads not yet finished */
	struct ttrpc_server *events;      /* the shims' TTRPC_ADDRESS */
	struct cri_stream_server *stream; /* Exec/Attach/PortForward URLs */
	char *stream_base;
	char *events_path;
	char *self_exe;
	struct cri_pod *pods;
	struct cri_ctr *ctrs;
	char *pod_cidr;
	int oom_floor; /* our own oom_score_adj: runc pods cannot go below it */
};

/* The methods of each service (cri-runtime.c, cri-image.c). */
extern const struct grpc_method cri_runtime_methods[];
extern const size_t cri_runtime_n_methods;
extern const struct grpc_method cri_image_methods[];
extern const size_t cri_image_n_methods;

int cri_runtime_init(struct cri *c, struct hull_error **err);
void cri_runtime_done(struct cri *c);

/* Blocking work (a registry pull) on a thread of its own: work(arg) runs there, then
 * done(c, arg) on the loop. */
typedef void (*cri_work_fn)(void *arg);
typedef void (*cri_done_fn)(struct cri *c, void *arg);
int cri_run_work(struct cri *c, cri_work_fn work, cri_done_fn done, void *arg);
int cri_work_init(struct cri *c);
void cri_work_done(struct cri *c);

/* An id of 64 lowercase hex digits, as containerd's. */
char *cri_new_id(void);
/* Nanoseconds since the epoch, as the CRI's int64 timestamps are. */
static inline int64_t cri_now_ns(void)
{
	return (int64_t)realtime_ns();
}
