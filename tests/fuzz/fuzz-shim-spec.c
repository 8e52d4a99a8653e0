/* SPDX-License-Identifier: MIT */
/* A bundle's config.json as the shim reads it from containerd: the host's reading
 * (root, binds, CRI annotations, the cgroup path) and the rewrite the guest gets. */
#include <stdint.h>
#include <stdlib.h>

#include "bundle.h"
#include "task-spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bundle b = {0};
	struct hull_error *err = NULL;
	char *out = NULL;
	size_t out_len = 0;

	if (task_spec_for_guest((const char *)data, size, &out, &out_len, &err) == 0) {
		/* The rewrite is JSON again, and reads back. */
		(void)bundle_parse_config(out, out_len, &b, &err);
		free(out);
	}
	bundle_done(&b);
	/* containerd's own config.json, and its cgroup path as the shim joins it. */
	b = (struct bundle){0};
	hull_error_free(err);
	err = NULL;
	if (bundle_parse_config((const char *)data, size, &b, &err) == 0)
		free(bundle_cgroup_path(b.cgroups_path));
	bundle_done(&b);
	hull_error_free(err);
	return 0;
}
