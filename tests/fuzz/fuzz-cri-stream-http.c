/* SPDX-License-Identifier: MIT */
/* The streaming server's HTTP side: bytes from a client (the request head, whatever
 * follows it) through a connection of their own: the parser, the routing to the
 * fixed tokens of fuzz-cri-stream-backend.c, both upgrade handshakes and their
 * refusals, and the first frames of an upgraded session. */
#include <stddef.h>
#include <stdint.h>

void fuzz_stream_run(const uint8_t *prefix, size_t np, const uint8_t *data, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_stream_run(NULL, 0, data, size);
	return 0;
}
