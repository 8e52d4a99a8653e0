/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cli_spec_volume {
	const char *source; /* host directory (shared into the guest by the host) */
	const char *destination;
	bool readonly;
};

struct cli_spec_input {
	char *const *args;
	char *const *env;
	const char *cwd;
	const char *hostname;
	uint32_t uid, gid;
	bool terminal;
	uint32_t rows, cols;
	bool privileged; /* all capabilities, no seccomp, no masked paths */
	const struct cli_spec_volume *volumes;
	size_t n_volumes;
};

/* The config.json for a hull run --rootfs job. Caller frees. */
char *cli_build_oci_spec(const struct cli_spec_input *in, size_t *ret_len);
