/* SPDX-License-Identifier: MIT */
/* WebSocket frames as a client sends them after the handshake, through wslay: the
 * first byte picks a session (exec v5, exec base64 with a terminal, attach v1, exec
 * with no subprotocol, port-forward binary or base64), its handshake is prefixed, and
 * the rest is the client's frames (masked or not, fragmented, control frames, the
 * channel bytes and v5 close signals, base64 payloads, oversized lengths). */
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
	req = fuzz_stream_request(data[0], true);
	fuzz_stream_run((const uint8_t *)req, strlen(req), data + 1, size - 1);
	free(req);
	return 0;
}
