/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "agent.pb-c.h"
#include "buf.h"
#include "container/container.h"
#include "event.h"
#include "ttrpc-server.h"

#define AGENT_SERVICE "hull.agent.v1.Agent"
#define AGENT_SERIAL_PORT "io.hull.agent"
#define AGENT_VSOCK_PORT 1024

/* One process of a container: its init (exec_id "") or an exec'd one; or a port
 * forward (a process of no container: a connected socket as its stdio). */
struct agent_process {
	struct agent_container *container;
	char *exec_id;
	struct container_process proc;
	int wait_status; /* waitpid() status, once proc.exited */
	/* CreateContainer, ExecProcess or Start*: answered when the child reports. */
	struct ttrpc_call *setup_call;
	struct ttrpc_call **wait_calls;
	size_t n_wait_calls;
	/* The stdio stream (agent-stdio.c). */
	struct ttrpc_call *attach_call; /* AttachStdio or PortForward; NULL: not attached */
	uint64_t out_credit;            /* output bytes the host lets us send */
	uint64_t in_credit;             /* stdin bytes the host may still send us */
	uint64_t in_unacked;            /* stdin bytes passed on, not granted again yet */
	struct buf stdin_buf;
	bool stdin_eof;
	bool stdout_open, stderr_open;
	bool watch_in, watch_out, watch_err; /* the fd is in the event loop */
	struct agent_process *next;
};

struct agent_container {
	struct agent *agent;
	char *id;
	struct container_spec spec;  /* kept: execs inherit its namespaces, cgroup, seccomp */
	struct agent_process *procs; /* the init first */
	struct agent_container *next;
};

struct agent {
	struct event_loop *loop;
	struct ttrpc_server *server;
	struct agent_container *containers;
	/* Removed (or failed) containers whose processes were killed but not reaped yet:
	 * their cgroups go when they are. */
	struct agent_container *removed;
	/* Port forwards: processes of no container. */
	struct agent_container forwards;
	bool drain_pending;
	uint64_t start_ms;
	bool shutdown_requested;
};

/* PID 1 duties (agent-init.c). */
int agent_init_system(void);
_noreturn_ void agent_poweroff(const char *why);
uint64_t agent_now_ms(void);

/* The channel to the host (agent-channel.c): the virtio-serial port (an open,
 * non-blocking fd), or with vsock a listening socket. */
int agent_channel_open(bool vsock, int *ret_fd);

/* The service (agent-service.c): serve the agent API with the shared ttrpc server on fd
 * (taken): a stream, kept across hangups, or a listening socket. a->loop must be set.
 * 0 or -errno. */
int agent_service_start(struct agent *a, int fd, bool listening);
/* Answer every kept call CANCELLED, kill and free every container and forward, close
 * the channel. */
void agent_service_stop(struct agent *a);

/* Wire request -> container_spec, refusing anything malformed (agent-spec.c). spec is
 * filled on success only. */
int agent_spec_from_request(const Hull__Agent__V1__CreateContainerRequest *req,
                            struct container_spec *spec, struct hull_error **err);
/* SyncRequest: every field checked (agent-spec.c); applied to the system (agent-sync.c):
 * the clock, entropy and a CRNG reseed, the host name, MACs, disks probed again. */
int agent_sync_check(const Hull__Agent__V1__SyncRequest *req, struct hull_error **err);
int agent_sync_apply(const Hull__Agent__V1__SyncRequest *req, struct hull_error **err);

/* Containers and their processes (agent-process.c). */
struct agent_container *agent_container_find(struct agent *a, const char *id);
struct agent_process *agent_process_find(struct agent_container *c, const char *exec_id);
/* A new record in c (appended: the init stays first), no process yet. */
struct agent_process *agent_process_new(struct agent_container *c, const char *exec_id);
/* Register the container at once (a duplicate id is refused) and clone its init; call is
 * answered when the child reports READY or its error. Takes *spec on success and
 * failure. 1 (call kept) or < 0 with *err set. */
int agent_container_create(struct agent *a, struct container_spec *spec, struct ttrpc_call *call,
                           struct hull_error **err);
/* ExecProcess: answered when the new process reports READY. 1 or < 0 with *err. */
int agent_process_exec(struct agent_container *c, const char *exec_id, const char *process_json,
                       size_t len, struct ttrpc_call *call, struct hull_error **err);
/* Start*: answered with the pid once exec succeeded. 1 or < 0 with *err. */
int agent_process_start(struct agent_process *p, struct ttrpc_call *call, struct hull_error **err);
/* WaitProcess: answered when the process exits. 1 or < 0 with *err. */
int agent_process_wait(struct agent_process *p, struct ttrpc_call *call, struct hull_error **err);
/* RemoveContainer: kill what is left of it, answer its kept calls CANCELLED. */
int agent_container_remove(struct agent_container *c, struct hull_error **err);
/* Started and not yet exited. */
bool agent_process_running(const struct agent_process *p);
/* SIGCHLD: collect every exited child (waitpid(-1)), answer its waiters. */
void agent_service_reap(struct agent *a);
void agent_free_containers(struct agent *a);
/* Free a process record: its stdio out of the loop and closed, its process killed
 * unless reaped, its kept calls answered CANCELLED. Unlinked by the caller. */
void agent_process_free(struct agent_process *p);

/* The guest half of stdio and port-forward streams (agent-stdio.c). */
/* The process reported READY: its stdio fds are valid. */
void agent_stdio_ready(struct agent_process *p);
/* AttachStdio on call: 1 (kept until both outputs reached EOF) or < 0 with *err. */
int agent_stdio_attach(struct agent_process *p, struct ttrpc_call *call, struct hull_error **err);
/* PortForward to port on the guest's loopback: 1 or < 0 with *err. */
int agent_port_forward(struct agent *a, unsigned port, struct ttrpc_call *call,
                       struct hull_error **err);
/* Take p's stdio fds out of the loop and close them. */
void agent_stdio_close(struct agent_process *p);
/* The connection's output queue drained (ttrpc_drain_fn, userdata the agent): readers
 * waiting for room look again, once the current callbacks are done. */
void agent_stdio_drained(void *userdata);
/* Forget a pending look (the agent stops). */
void agent_stdio_stop(struct agent *a);
