/* SPDX-License-Identifier: MIT */
/* The host's agent client: whatever a hostile guest writes into the channel, with
 * calls in flight the way hull run has them (Check, AttachStdio with a data stream,
 * WaitProcess), each reply unpacked as the CLI does. */
#include <stdint.h>

#include "agent-client.h"
#include "agent.pb-c.h"

static void on_reply(struct agent_client *ac, int code, const char *message, const uint8_t *payload,
                     size_t len, void *userdata)
{
	const ProtobufCMessageDescriptor *desc = userdata;
	(void)ac;
	(void)code;
	(void)message;
	ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, payload);
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
}

static void on_data(struct agent_client *ac, const uint8_t *payload, size_t len, void *userdata)
{
	(void)ac;
	(void)userdata;
	Hull__Agent__V1__StdioData *d = hull__agent__v1__stdio_data__unpack(NULL, len, payload);
	if (d)
		hull__agent__v1__stdio_data__free_unpacked(d, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_client *ac = agent_client_new(-1);

	agent_client_call(ac, "Check", NULL, 0, on_reply, NULL,
	                  (void *)&hull__agent__v1__check_response__descriptor);
	agent_client_call(ac, "AttachStdio", NULL, 0, on_reply, on_data,
	                  (void *)&hull__agent__v1__empty__descriptor);
	agent_client_call(ac, "WaitProcess", NULL, 0, on_reply, NULL,
	                  (void *)&hull__agent__v1__wait_response__descriptor);
	agent_client_feed(ac, data, size);
	agent_client_free(ac);
	return 0;
}
