/* SPDX-License-Identifier: MIT */
#pragma once

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "event.h"
#include "pod-stream.h"
#include "sandbox.h"
#include "vmm.h"

/* The host-side pod core: one sandbox (a VM and its agent), its containers and their
 * processes, with no globals. Every front end drives one: `hull run` (a pod of one
 * container plus a terminal), `hull run -d` and the containerd shim (through the Task
 * service, task-service.h), later the CRI server. A front end never reaches below it.
 *
 * Everything is asynchronous on the caller's event loop: an operation that needs the
 * guest takes a completion callback and returns at once, so a loop serving a pod never
 * waits on its guest. What the guest sends is checked here (exit statuses, stream
 * credit); a guest that breaks the protocol fails the part it broke (a stream, a
 * process) or, when the channel itself is broken, its own sandbox. */
struct pod;
struct pod_ctr;
struct pod_proc;

/* What the front end hears, always from the loop (never inside one of its own calls). */
struct pod_sink {
	/* The sandbox booted (r == 0) or could not (err; the pod is lost then). */
	void (*booted)(struct pod *pod, int r, const struct hull_error *err, void *userdata);
	/* A process started: pod_proc_pid() is known. */
	void (*started)(struct pod_proc *p, void *userdata);
	/* A process ended: pod_proc_exit(). */
	void (*exited)(struct pod_proc *p, void *userdata);
	/* Its output stream is over: all it wrote is with its sinks (r == 0), or the
	 * stream was cut (r < 0, err says why: -EPROTO for a guest that broke it). */
	void (*drained)(struct pod_proc *p, int r, const struct hull_error *err, void *userdata);
	/* The container's cgroup saw an OOM kill (before the process's exit). */
	void (*oom)(struct pod_ctr *c, void *userdata);
	/* The VM is gone (after the boot); every process was reported exited first. */
	void (*lost)(struct pod *pod, const struct hull_error *err, void *userdata);
};

/* Exit status of a process whose VM died, or whose guest lied about how it ended. */
#define POD_EXIT_VM_GONE 255

/* Completion of an operation: r == 0 or < 0 with err (borrowed). */
typedef void (*pod_done_fn)(void *userdata, int r, const struct hull_error *err);
/* Completion of a plain agent call: the reply's payload (valid during the call). */
typedef void (*pod_reply_fn)(void *userdata, int r, const struct hull_error *err,
                             const uint8_t *payload, size_t len);

struct pod_config {
	const char *state_root; /* NULL: the default */
	const char *id;         /* the sandbox's name, NULL: a random one */
	const struct vmm_settings *vm;
	const struct vmm_disk *disks; /* image layers as read-only disks, known at boot */
	size_t n_disks;
	bool net_user;
	char *const *hostfwd;
	const char *netns;
	bool debug;
};

struct pod *pod_new(struct event_loop *loop, const struct pod_sink *sink, void *userdata);
/* Start the sandbox; sink->booted follows. Containers may be created meanwhile (they
 * reach the guest once it is up). */
int pod_boot(struct pod *pod, const struct pod_config *cfg, struct hull_error **err);
/* For tests and fuzzers: a pod over a sandbox made elsewhere, ready at once. */
void pod_adopt(struct pod *pod, struct sandbox *sb);
/* Stop the VM (the guest gets timeout_ms to power off), undo every container's host
 * side (binds, its directory below the shared dir), free. No callback runs. Accepts
 * NULL; returns NULL. */
struct pod *pod_free(struct pod *pod, int timeout_ms);
const char *pod_id(const struct pod *pod);
const char *pod_state_dir(const struct pod *pod);
struct sandbox *pod_sandbox(const struct pod *pod);
/* Kill the VM now, for the reason given (a guest that broke the protocol). */
void pod_kill(struct pod *pod, const struct hull_error *err);

/* ---- containers ------------------------------------------------------------------- */

/* A host path the container sees at destination: a directory or a file, bound below the
 * sandbox's shared directory (the one way host files reach a guest, decision 44). */
struct pod_mount {
	const char *source;
	const char *destination;
	bool readonly;
	/* A file copied in instead (hull run's: the container writes its copy, never the
	 * host's file; docs/decisions.md 24). */
	bool copy;
};

struct pod_ctr_config {
	const char *id;
	const char *config; /* the OCI config.json for the guest, sent as is */
	size_t config_len;
	const char *rootfs;  /* host directory for the root, or NULL with layers */
	char *const *layers; /* serials of erofs layer disks given at boot, bottom first */
	/* The guest stacks a tmpfs overlay on the root and the host binds rootfs read-only:
	 * writes never reach rootfs (hull run --rootfs, a read-only bundle root). */
	bool root_overlay;
	const struct pod_mount *mounts;
	size_t n_mounts;
	bool terminal;
};

/* Create a container: its host side now (binds), the guest's part once the sandbox is
 * up; done follows. On a failure reported by done the container is already gone; on a
 * failure returned here nothing was made. *ret is valid until pod_delete(). */
int pod_create(struct pod *pod, const struct pod_ctr_config *cfg, pod_done_fn done, void *userdata,
               struct pod_ctr **ret, struct hull_error **err);
struct pod_ctr *pod_ctr_find(struct pod *pod, const char *id);
/* Each container in turn (NULL after the last). */
struct pod_ctr *pod_ctr_next(struct pod *pod, struct pod_ctr *after);
const char *pod_ctr_id(const struct pod_ctr *c);
struct pod *pod_ctr_pod(const struct pod_ctr *c);
/* The front end's own pointer for this container. */
void pod_ctr_set_data(struct pod_ctr *c, void *data);
void *pod_ctr_data(const struct pod_ctr *c);
/* Remove it from the guest (its init must have ended), then undo its host side and free
 * it with its processes; done follows (called with 0 also when the guest is gone). */
int pod_delete(struct pod_ctr *c, pod_done_fn done, void *userdata, struct hull_error **err);

/* ---- processes -------------------------------------------------------------------- */

/* The container's init (exec_id "") or one of its execs. */
struct pod_proc *pod_proc_find(struct pod_ctr *c, const char *exec_id);
struct pod_proc *pod_ctr_init(struct pod_ctr *c);
/* Each process of the container in turn, the init first (NULL after the last). */
struct pod_proc *pod_proc_next(struct pod_ctr *c, struct pod_proc *after);
struct pod_ctr *pod_proc_ctr(const struct pod_proc *p);
const char *pod_proc_exec_id(const struct pod_proc *p);
void pod_proc_set_data(struct pod_proc *p, void *data);
void *pod_proc_data(const struct pod_proc *p);
bool pod_proc_terminal(const struct pod_proc *p);
bool pod_proc_started(const struct pod_proc *p);
uint32_t pod_proc_pid(const struct pod_proc *p);
/* Ended: its exit status (128+N for signal N, POD_EXIT_VM_GONE when the VM died or
 * the guest reported nonsense), when (CLOCK_REALTIME ns), and why, when it was not the
 * process's own doing (NULL otherwise). false while it runs. */
bool pod_proc_exit(const struct pod_proc *p, uint32_t *ret_status, uint64_t *ret_at_ns,
                   const char **ret_why);
/* Its output stream is attached and not over yet. */
bool pod_proc_draining(const struct pod_proc *p);

/* An exec in a running container: process_json is an OCI "process" object. done
 * follows when the guest made it (stopped before exec). */
int pod_exec(struct pod_ctr *c, const char *exec_id, const char *process_json, size_t len,
             bool terminal, pod_done_fn done, void *userdata, struct pod_proc **ret,
             struct hull_error **err);
/* Delete a finished (or never started) exec. */
void pod_proc_delete(struct pod_proc *p);
/* Where the process's stdio goes (before pod_start; the stream takes the sinks and the
 * source). Without it the guest's output is dropped and its stdin is empty. */
void pod_proc_set_stdio(struct pod_proc *p, struct stream_sink *out, struct stream_sink *err,
                        int in_fd);
/* Attach stdio, start, and watch for the exit; done follows when exec succeeded (or
 * failed: -ENOENT no such file, -EACCES not executable). */
int pod_start(struct pod_proc *p, pod_done_fn done, void *userdata, struct hull_error **err);
/* fd 0 of the process is over (CloseIO). */
void pod_proc_close_stdin(struct pod_proc *p);
/* Signal it (done may be NULL). -ENOENT when it is not running. */
int pod_signal(struct pod_proc *p, int sig, pod_done_fn done, void *userdata,
               struct hull_error **err);
/* Any other agent call (stats, pids, pause, resize, update): msg as the agent API has
 * it; fn gets the reply. -EBUSY when the sandbox is not up or gone. */
int pod_call(struct pod *pod, const char *method, const ProtobufCMessage *msg, pod_reply_fn fn,
             void *userdata, struct hull_error **err);
/* A port-forward connection's bytes (fd, a connected socket the caller keeps and closes
 * after done), to a port on the guest's loopback. stream_cancel() abandons it (the
 * agent closes its socket); the VM's end ends it. Free with pod_port_forward_free(). */
struct stream *pod_port_forward(struct pod *pod, unsigned port, int fd,
                                const struct stream_ops *ops, void *userdata,
                                struct hull_error **err);
void pod_port_forward_free(struct pod *pod, struct stream *st);
