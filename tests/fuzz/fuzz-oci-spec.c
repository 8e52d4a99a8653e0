/* SPDX-License-Identifier: MIT */
/* config.json parsing and validation, as the agent does it for every container. */
#include <stdint.h>

#include "container/oci-spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct oci_spec spec;
	struct hull_error *err = NULL;

	if (oci_spec_parse((const char *)data, size, &spec, &err) == 0)
		oci_spec_done(&spec);
	hull_error_free(err);
	return 0;
}
