/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <sys/epoll.h>

#include "buf.h"
#include "container/container.h"
#include "event.h"
#include "ttrpc.h"

#define AGENT_SERVICE "hull.agent.v1.Agent"
#define AGENT_SERIAL_PORT "io.hull.agent"
#define AGENT_VSOCK_PORT 1024
/* Flow-control window each side grants for stdio, in bytes. */
#define AGENT_STDIO_WINDOW (4u << 20)
#define AGENT_STDIO_CHUNK (256u << 10)

/* One process of a container: its init (exec_id "") or an exec'd one. */
struct agent_process {
	struct agent_container *container;
	char *exec_id;
	struct container_process proc;
	bool started, exited;
	int wait_status; /* waitpid() status */
	/* stdio stream */
	uint32_t attach_sid; /* 0: not attached */
	uint64_t out_credit; /* bytes we may still send the host */
	uint64_t in_unacked; /* stdin bytes consumed but not yet re-granted */
	struct buf stdin_buf;
	bool stdin_eof;
	bool stdout_open, stderr_open;
	uint32_t *wait_sids;
	size_t n_wait_sids;
	struct agent_process *next;
};

struct agent_container {
	char *id;
	struct container_spec spec;  /* kept: execs inherit its namespaces, cgroup, seccomp */
	struct agent_process *procs; /* the init first */
	struct agent_container *next;
};

struct agent {
	struct event_loop *loop;
	int chan_fd;
	bool chan_registered;
	int retry_timer_fd;
	struct ttrpc_decoder dec;
	struct buf out;
	struct agent_container *containers;
	/* Port forwards: processes of no container, a connected socket as stdio. */
	struct agent_container forwards;
	uint64_t start_ms;
	bool shutdown_requested;
};

/* PID 1 duties (agent-init.c). */
int agent_init_system(void);
_noreturn_ void agent_poweroff(const char *why);
uint64_t agent_now_ms(void);

/* The channel to the host (agent-channel.c): an open, non-blocking fd. */
int agent_channel_open(bool vsock, int *ret_fd);

/* The service (agent-service.c). */
void agent_service_start(struct agent *a);
/* Process complete frames sitting in a->dec. Exposed for the fuzzer. */
void agent_service_process(struct agent *a);
void agent_service_reap(struct agent *a);
void agent_flush(struct agent *a);
void agent_free_containers(struct agent *a);
