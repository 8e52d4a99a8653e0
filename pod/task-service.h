/* SPDX-License-Identifier: MIT */
#pragma once

#include "bundle.h"
#include "pod.h"
#include "shim-task.pb-c.h"
#include "ttrpc-server.h"

/* containerd's shim v2 Task API (containerd.task.v2.Task) over one pod: the service
 * containerd-shim-hull-v2 serves for containerd and `hull run -d` serves for hull's own
 * clients. The handlers decode, check and call the pod core; a call that needs the
 * guest is answered when the guest has answered, and every other call is served
 * meanwhile. Front ends fill in what differs (how the first Create boots, where events
 * go) through task_service_ops. */
struct task_service;

struct task_service_ops {
	/* The first Create of a pod without a sandbox: boot one (pod_boot) as the front
	 * end sees fit (the shim: its config file named by the runtime options, the pod's
	 * host cgroup, the bundle's network namespace). NULL: such a Create fails. */
	int (*boot)(void *userdata, struct pod *pod, const Hull__Task__Any *options,
	            const struct bundle *b, struct hull_error **err);
	/* The boot ended (may be NULL). */
	void (*booted)(void *userdata, int r, const struct hull_error *err);
	/* A task event for containerd: topic "/tasks/exit", name "TaskExit" (may be NULL). */
	void (*publish)(void *userdata, const char *topic, const char *name,
	                const ProtobufCMessage *event);
	/* Shutdown was asked for, and nothing runs (or with `now`). */
	void (*shutdown)(void *userdata);
};

/* A service over a pod of its own, made here (task_service_pod()). */
struct task_service *task_service_new(struct event_loop *loop, const struct task_service_ops *ops,
                                      void *userdata);
/* Answer what still waits (CANCELLED), stop the pod, undo every host mount. */
struct task_service *task_service_free(struct task_service *ts, int stop_timeout_ms);
struct pod *task_service_pod(struct task_service *ts);
/* The methods for a ttrpc server whose userdata is the task service. */
const struct ttrpc_method *task_service_methods(size_t *ret_n);
/* Serve as a task a container made directly on the pod (hull run -d's job): bundle is
 * what State reports (may be NULL). */
void task_service_adopt(struct task_service *ts, struct pod_ctr *c, const char *bundle);
