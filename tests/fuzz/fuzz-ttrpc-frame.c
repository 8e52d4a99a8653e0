/* SPDX-License-Identifier: MIT */
/* The ttrpc frame decoder and envelope messages, fed arbitrary bytes in arbitrary
 * splits (the first byte picks the split size). */
#include <stdint.h>
#include <string.h>

#include "ttrpc-msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ttrpc_decoder d = {.max_payload = 1u << 16};
	struct ttrpc_frame f;
	size_t step;

	if (size == 0)
		return 0;
	step = (size_t)data[0] % 17 + 1;
	data++, size--;
	for (size_t off = 0; off < size; off += step) {
		size_t n = size - off < step ? size - off : step;
		int r;
		ttrpc_decoder_feed(&d, data + off, n);
		while ((r = ttrpc_decoder_next(&d, &f)) != 0) {
			if (r < 0)
				continue;
			if (f.type == TTRPC_TYPE_REQUEST) {
				Hull__Ttrpc__Request *req =
				    hull__ttrpc__request__unpack(NULL, f.length, f.payload);
				if (req)
					hull__ttrpc__request__free_unpacked(req, NULL);
			} else if (f.type == TTRPC_TYPE_RESPONSE) {
				Hull__Ttrpc__Response *resp =
				    hull__ttrpc__response__unpack(NULL, f.length, f.payload);
				if (resp)
					hull__ttrpc__response__free_unpacked(resp, NULL);
			}
		}
	}
	ttrpc_decoder_release(&d);
	return 0;
}
