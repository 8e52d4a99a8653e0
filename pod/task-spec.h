/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

#include "error.h"

/* The config.json the guest gets for a Task API container (task-spec.c): network
 * namespace paths dropped (the VM is the pod's network namespace), duplicate mount
 * destinations resolved last-wins as runc mounts them. *out is the rewritten JSON;
 * caller frees. */
int task_spec_for_guest(const char *json, size_t len, char **out, size_t *out_len,
                        struct hull_error **err);
