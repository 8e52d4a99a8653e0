/* SPDX-License-Identifier: MIT */
/* The agent's request path: frames from the host -> dispatch -> decode -> validate.
 * The container engine is stubbed (container-stub.c): nothing is cloned or mounted. */
#include <stdint.h>

#include "agent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent a = {.chan_fd = -1, .retry_timer_fd = -1};

	a.loop = event_loop_new();
	ttrpc_decoder_feed(&a.dec, data, size);
	agent_service_process(&a);
	agent_free_containers(&a);
	ttrpc_decoder_release(&a.dec);
	buf_release(&a.out);
	event_loop_free(a.loop);
	return 0;
}
