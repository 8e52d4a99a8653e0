/* SPDX-License-Identifier: MIT */
/* The pod core's own structures, shared by its files (pod.c, pod-create.c). */
#pragma once

#include "pod.h"

struct pod_op;

struct pod {
	struct event_loop *loop;
	const struct pod_sink *sink;
	void *userdata;
	struct sandbox *sb;
	bool ready, lost;
	struct hull_error *lost_err;
	struct pod_ctr *ctrs;     /* in creation order */
	struct pod_op *ops;       /* agent calls in flight, newest first */
	struct stream **forwards; /* port-forwards, ended with the VM */
	size_t n_forwards;
};

struct pod_ctr {
	struct pod *pod;
	char *id;
	char *shared; /* STATE/shared/<id> on the host, once made */
	bool in_guest;
	/* The guest's CreateContainer, packed, until it is sent (the boot may not be over). */
	uint8_t *create_req;
	size_t create_len;
	bool create_sent;
	pod_done_fn create_done;
	void *create_userdata;
	struct pod_proc *procs; /* the init first */
	void *data;
	struct pod_ctr *next;
};

struct pod_proc {
	struct pod_ctr *c;
	char *exec_id; /* "" for the init */
	bool terminal;
	bool created; /* an exec the guest made */
	bool started, exited;
	uint32_t pid, exit_status;
	uint64_t exited_at_ns;
	char *why;
	struct stream_sink *sink[3]; /* until start hands them to the stream */
	int in_fd;
	struct stream *stream;
	void *data;
	struct pod_proc *next;
};

/* The container's host side and its CreateContainer request (pod-create.c): binds below
 * the shared directory, the request packed into *ret. On failure what was made is undone. */
int pod_ctr_build(struct pod_ctr *c, const struct pod_ctr_config *cfg, uint8_t **ret,
                  size_t *ret_len, struct hull_error **err);
/* Undo the host side: unmount the binds, remove what was made. */
void pod_ctr_undo_host(struct pod_ctr *c);
