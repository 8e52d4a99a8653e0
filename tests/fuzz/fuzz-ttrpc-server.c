/* SPDX-License-Identifier: MIT */
/* The ttrpc server's request path: whatever a client writes on its socket, through
 * framing, envelope decoding, metadata and dispatch (to handlers that decode their
 * Task API payloads, answer now, keep calls, or fail). */
#include <stdint.h>
#include <sys/socket.h>

#include "shim-task.pb-c.h"
#include "ttrpc-server.h"
#include "util.h"

static struct ttrpc_call *kept;

static int do_state(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                    ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Task__StateRequest *req = hull__task__state_request__unpack(NULL, len, payload);
	(void)userdata;
	(void)ttrpc_call_metadata(call, "containerd-namespace-ttrpc");
	if (!req)
		return hull_error_set(err, -EINVAL, "bad request");
	hull__task__state_request__free_unpacked(req, NULL);
	*ret = NULL;
	return 0;
}

static int do_wait(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                   ProtobufCMessage **ret, struct hull_error **err)
{
	(void)userdata, (void)payload, (void)len, (void)ret, (void)err;
	if (kept)
		ttrpc_call_reply(kept, -ECANCELED, NULL, NULL);
	kept = call;
	return 1;
}

static const struct ttrpc_method methods[] = {
    {"containerd.task.v2.Task", "State", do_state},
    {"containerd.task.v2.Task", "Wait", do_wait},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct event_loop *loop;
	struct ttrpc_server *s;
	int sv[2];

	if (size > 60000 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	loop = event_loop_new();
	s = ttrpc_server_new(loop, methods, ELEMENTSOF(methods), NULL);
	(void)write_all(sv[1], data, size);
	shutdown(sv[1], SHUT_WR);
	if (ttrpc_server_add_fd(s, sv[0], 0) == 0)
		for (int i = 0; i < 64; i++)
			if (event_loop_once(loop, 0) < 0)
				break;
	if (kept) {
		ttrpc_call_reply(kept, -ECANCELED, NULL, NULL);
		kept = NULL;
	}
	ttrpc_server_free(s);
	event_loop_free(loop);
	close(sv[1]);
	return 0;
}
