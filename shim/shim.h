/* SPDX-License-Identifier: MIT */
#pragma once

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "event.h"
#include "vmm.h"

/* containerd-shim-hull-v2: one process per pod (or per container outside Kubernetes)
 * that owns the pod's VM and serves containerd's shim v2 Task API for every container
 * of the pod (pod/task-service.c over the pod core). See docs/kubernetes.md and
 * docs/shim.md. */

/* The shim's configuration file (a small TOML subset, docs/shim.md): the VM settings
 * of vmm_settings_set() by the same keys, and log_level. */
struct shim_config {
	struct vmm_settings vm;
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

/* Join the pod's host cgroup (a cgroupfs-style linux.cgroupsPath) in every hierarchy,
 * before the VM boots; *made collects the dirs we created, for shim_cgroup_leave(). */
int shim_cgroup_join(const char *path, char ***made, struct hull_error **err);
void shim_cgroup_leave(char **made);

/* kubectl port-forward through containerd (shim-portfwd.c): in the pod's network
 * namespace at netns_path, loopback TCP redirected to listeners of ours and carried to
 * the same port in the guest. NULL (logged) when the namespace cannot be entered. Free
 * before the pod. */
struct pod;
struct shim_portfwd;
struct shim_portfwd *shim_portfwd_new(struct event_loop *loop, struct pod *pod,
                                      const char *netns_path);
struct shim_portfwd *shim_portfwd_free(struct shim_portfwd *pf);

/* Task events for containerd (shim-events.c): sent over ttrpc to $TTRPC_ADDRESS, never
 * blocking the shim. While containerd is away (restarting) they wait in a queue of at
 * most 1024 (the oldest dropped first, with a log line) and go once it is back; an event
 * leaves the queue when containerd has acknowledged it. */
struct shim_events;
struct shim_events *shim_events_new(struct event_loop *loop, const char *ttrpc_address,
                                    const char *namespace);
void shim_events_publish(struct shim_events *ev, const char *topic, const char *name,
                         const ProtobufCMessage *msg);
/* Events still queued (unsent or unacknowledged). */
size_t shim_events_queued(const struct shim_events *ev);
struct shim_events *shim_events_free(struct shim_events *ev);

/* The service (shim-serve.c): listens on sock_path, writes "ok\n" (or the reason it
 * cannot) to ready_fd, serves until Shutdown or SIGTERM; returns the exit code. */
int shim_serve(const struct shim_args *a, const char *sock_path, int ready_fd);
