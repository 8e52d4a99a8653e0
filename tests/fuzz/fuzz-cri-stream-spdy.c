/* SPDX-License-Identifier: MIT */
/* SPDY/3.1 as a client sends it after the upgrade: the first byte picks a session
 * (exec v4, exec with a terminal v3, attach v2, exec v1, port-forward to the
 * request's ports or to any), its upgrade request is prefixed, and the rest is the
 * client's frames: SYN_STREAMs with zlib header blocks (inflated with SPDY's
 * dictionary, capped), DATA, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, and
 * anything else. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

char *fuzz_stream_request(int mode, bool websocket);
void fuzz_stream_run(const uint8_t *prefix, size_t np, const uint8_t *data, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *req;

	if (size < 1)
		return 0;
	req = fuzz_stream_request(data[0], false);
	fuzz_stream_run((const uint8_t *)req, strlen(req), data + 1, size - 1);
	free(req);
	return 0;
}
