/* SPDX-License-Identifier: MIT */
#pragma once

#include "cri.h"
#include "error.h"
#include "ttrpc-client.h"

#define CRI_SHIM_SERVICE "containerd.task.v2.Task"

/* `BINARY start` (containerd-shim-hull-v2, or containerd-shim-runc-v2 for the runc
 * handler) for task id in bundle (config.json there): blocks until the shim
 * answers (at most 10 s: it only forks its daemon and listens; the VM boots on Create).
 * *ret_address is "unix:///...". */
int cri_shim_start(const struct cri *c, const char *binary, const char *id, const char *bundle,
                   char **ret_address, struct hull_error **err);
/* A ttrpc client on the shim's socket (not yet attached to a loop). */
int cri_shim_connect(const char *address, struct ttrpc_client **ret, struct hull_error **err);
/* The same as a connected socket fd (for a worker thread: the client is made on the
 * loop). */
int cri_shim_connect_fd(const char *address, int *ret, struct hull_error **err);
/* `shim delete`: what a dead shim left is cleaned up (idempotent). Blocks (at most 20 s). */
void cri_shim_delete(const struct cri *c, const char *binary, const char *id, const char *bundle);
