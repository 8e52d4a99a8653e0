/* SPDX-License-Identifier: MIT */
#pragma once

/* What the RuntimeService's files share (cri-runtime.c: pods and the runtime's own
 * calls; cri-ctr.c: containers; cri-exec.c: ExecSync): the records, and the helpers
 * every handler uses. Not an API. */
#include <stdbool.h>
#include <stdint.h>

#include "cri-log.h"
#include "cri-spec.h"
#include "cri.h"
#include "grpc-server.h"
#include "shim-task.pb-c.h"
#include "ttrpc-client.h"

#define SHIM_CALL_TIMEOUT_MS 10000
/* A VM boots (or a template restores) in this time even under TCG. */
#define BOOT_TIMEOUT_MS 120000

struct cri_exec;
struct cni;

struct cri_pod {
	struct cri *c;
	char *id;
	Runtime__V1__PodSandboxConfig *config;
	char *handler;
	Runtime__V1__PodSandboxState state;
	int64_t created_at;
	char *dir; /* STATE/pods/ID: the sandbox task's bundle */
	char *address;
	struct ttrpc_client *shim;
	uint32_t pid;           /* the sandbox task's (guest) pid */
	struct grpc_call *call; /* Run/Stop/Remove in flight */
	unsigned waiting;       /* replies the operation still waits for */
	int stop_phase;         /* STOP_* */
	int fail_code;          /* a failed RunPodSandbox's answer */
	char *fail_msg;
	bool removing;
	struct cri_exec *execs; /* ExecSync calls in flight */
	struct cni *cni;        /* the pod's network (CNI), or NULL */
	struct cri_pod *next;
};

struct cri_ctr {
	struct cri *c;
	char *id;
	struct cri_pod *pod;
	Runtime__V1__ContainerConfig *config;
	char *image_name, *image_id;
	Runtime__V1__ContainerState state;
	int64_t created_at, started_at, finished_at;
	int32_t exit_code;
	char *reason, *message;
	bool oom;
	char *dir; /* STATE/containers/ID: bundle, FIFOs, the writable layer */
	char *log_path;
	struct cri_log *log;
	struct cri_log_reader *out, *err;
	int hold[2];               /* our write ends of the FIFOs until the shim opened its own */
	uint32_t pid;              /* from Start */
	bool in_shim;              /* the shim has the task (created, not yet deleted) */
	char *rootfs_opts[3];      /* the overlay's lowerdir, upperdir, workdir */
	char *out_path, *err_path; /* the FIFOs */
	uint64_t layer_bytes, layer_inodes; /* the writable layer, last walked */
	bool layer_walking;
	int stdin_fd;    /* the write end of its stdin FIFO (config.stdin), or -1 */
	char *in_path;   /* that FIFO */
	void **attaches; /* attach sessions (cri-streaming.c), NULL-terminated */
	size_t n_attaches;
	int64_t prev_cpu_ts; /* the last stats sample, for a CPU rate */
	uint64_t prev_cpu_ns;
	struct grpc_call *call; /* Create/Start/Stop/Remove in flight */
	bool removing;
	int64_t stop_timeout;
	struct cri_ctr *next;
};

/* An owned deep copy of a message built from borrowed parts: what a handler returns. */
ProtobufCMessage *msg_own(const ProtobufCMessage *m);
void *msg_dup(const ProtobufCMessage *m);
/* Map entries (every CRI map is string -> string) of any message type, borrowing the
 * strings: free with kv_free(). */
void *kv_copy(const ProtobufCMessageDescriptor *d, void *const *in, size_t n);
void kv_free(void *v, size_t n);
/* Every wanted label is there with its value. */
bool labels_match(void *const *have, size_t n_have, void *const *want, size_t n_want);
/* -EINVAL naming the CRI field. */
int invalid(struct hull_error **err, const char *field, const char *why);
/* ABORTED: another call holds the object; kubelet retries. */
int busy(struct hull_error **err, const char *what, const char *id);
/* By full id or a unique prefix (crictl passes prefixes), or NULL. */
struct cri_pod *pod_find(struct cri *c, const char *id);
struct cri_ctr *ctr_find(struct cri *c, const char *id);
/* The container by id for a call that needs it (running: and its task running in a
 * live shim), or NULL with *err NOT_FOUND / FAILED_PRECONDITION. */
struct cri_ctr *ctr_get(struct cri *c, const char *id, bool running, struct hull_error **err);
/* A Task API call to the pod's shim; 0 when it has no connection. */
uint32_t shim_call(struct cri_pod *p, const char *method, const ProtobufCMessage *msg,
                   int timeout_ms, ttrpc_reply_cb cb, void *userdata);

void ctr_close_logs(struct cri_ctr *k);
void ctr_free(struct cri_ctr *k);
void ctr_set_exited(struct cri_ctr *k, uint32_t status, int64_t at);

/* On a worker thread: `shim delete` the shim of pod shim_of (when non-NULL), tear the network cni
 * down (taken; may be NULL), remove dir (may be NULL). */
void cleanup_later(struct cri *c, const struct cri_pod *shim_of, const char *dir, struct cni *cni);
/* The pod runs on the host's kernel (the runc handler), not in a VM. */
bool pod_host_kernel(const struct cri_pod *p);
/* The shim binary of the pod's handler. */
const char *pod_shim_binary(const struct cri_pod *p);
int write_file(const char *path, const char *text, struct hull_error **err);
char *read_small(const char *tree, const char *name);

/* The pod's part of a spec (its files' paths in paths[], freed by spec_pod_done). */
void spec_pod(const struct cri_pod *p, struct cri_spec_pod *sp, char *paths[3]);
void spec_pod_done(char *paths[3]);

/* Container handlers (cri-ctr.c). */
int m_create_ctr(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                 ProtobufCMessage **ret, struct hull_error **err);
int m_start_ctr(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                ProtobufCMessage **ret, struct hull_error **err);
int m_stop_ctr(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
               ProtobufCMessage **ret, struct hull_error **err);
int m_remove_ctr(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                 ProtobufCMessage **ret, struct hull_error **err);
int m_ctr_status(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                 ProtobufCMessage **ret, struct hull_error **err);
int m_list_ctrs(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                ProtobufCMessage **ret, struct hull_error **err);
int m_reopen_log(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                 ProtobufCMessage **ret, struct hull_error **err);

/* ExecSync (cri-exec.c); every exec of a pod whose shim is going is answered with why. */
int cri_exec_sync(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                  ProtobufCMessage **ret, struct hull_error **err);
void cri_exec_abort_all(struct cri_pod *p, const char *why);
/* The container's process (user, env, cwd, capabilities) running cmd, as the OCI
 * process JSON an Exec carries (*ret, caller frees). */
int cri_exec_process(const struct cri_ctr *k, char *const *cmd, size_t n_cmd, bool tty, char **ret,
                     struct hull_error **err);

/* The pod is over (its shim gone, its sandbox exited): NOTREADY, its containers exited
 * with why as their message (cri-runtime.c). */
void pod_lost(struct cri_pod *p, const char *why);
/* The ttrpc client's error callback for a pod's shim connection (userdata: the pod). */
void on_shim_error(struct ttrpc_client *tc, const struct hull_error *err, void *userdata);

/* Records that survive a restart (cri-store.c): saved on every change, forgotten at
 * removal; cri_store_load() brings them back at start and speaks to the shims again. */
void cri_pod_save(const struct cri_pod *p);
void cri_ctr_save(const struct cri_ctr *k);
void cri_pod_forget(const struct cri_pod *p);
void cri_ctr_forget(const struct cri_ctr *k);
int cri_store_load(struct cri *c, struct hull_error **err);

/* Stats (cri-stats.c). */
int cri_container_stats(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                        ProtobufCMessage **ret, struct hull_error **err);
int cri_list_container_stats(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                             ProtobufCMessage **ret, struct hull_error **err);
int cri_pod_sandbox_stats(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                          ProtobufCMessage **ret, struct hull_error **err);
int cri_list_pod_sandbox_stats(void *userdata, struct grpc_call *call, const uint8_t *msg,
                               size_t len, ProtobufCMessage **ret, struct hull_error **err);

/* A container's status as ContainerStatus gives it, borrowing from k (cri-ctr.c); also
 * what GetContainerEvents sends. */
struct ctr_status_parts {
	Runtime__V1__ContainerStatus st;
	Runtime__V1__ImageSpec img;
	Runtime__V1__ContainerResources res;
};
void ctr_status_fill(const struct cri_ctr *k, struct ctr_status_parts *sp);
void ctr_status_done(struct ctr_status_parts *sp);
int m_update_ctr(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                 ProtobufCMessage **ret, struct hull_error **err);

/* GetContainerEvents (cri-events.c): every subscriber gets each container's created,
 * started, stopped and deleted, with the container's and its pod's status. */
int cri_get_events(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                   ProtobufCMessage **ret, struct hull_error **err);
void cri_event(struct cri_ctr *k, Runtime__V1__ContainerEventType type);
void cri_events_done(struct cri *c);

/* Exec, Attach, PortForward (cri-streaming.c): URLs on the streaming server; attach
 * sessions of a container end with its output (cri_attach_end_all). */
int cri_exec(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
             ProtobufCMessage **ret, struct hull_error **err);
int cri_attach(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
               ProtobufCMessage **ret, struct hull_error **err);
int cri_port_forward(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                     ProtobufCMessage **ret, struct hull_error **err);
void cri_attach_end_all(struct cri_ctr *k);
/* A container log reader's EOF callback (userdata: the container). */
void ctr_output_eof(void *userdata);
void cri_attach_remember(struct cri_ctr *k, void *a);
void cri_attach_forget(struct cri_ctr *k, void *a);
