/* SPDX-License-Identifier: MIT */
/* The shim's configuration file parser (a TOML subset, named by containerd's runtime
 * options). */
#include <stdint.h>

#include "shim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct shim_config c;
	struct hull_error *err = NULL;

	shim_config_defaults(&c);
	(void)shim_config_parse((const char *)data, size, "fuzz.toml", &c, &err);
	shim_config_done(&c);
	hull_error_free(err);
	return 0;
}
