/* SPDX-License-Identifier: MIT */
/* The host's reading of a user's bundle config.json (root, terminal, bind sources). */
#include <stdint.h>

#include "bundle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bundle b = {0};
	struct hull_error *err = NULL;

	(void)bundle_parse_config((const char *)data, size, &b, &err);
	bundle_done(&b);
	hull_error_free(err);
	return 0;
}
