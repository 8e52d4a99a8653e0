/* SPDX-License-Identifier: MIT */
/* hull-cri's gRPC transport: bytes from a client (HTTP/2 frames, HPACK headers, gRPC
 * length prefixes) through grpc-server.c on a connection of their own, the requests
 * that decode reaching handlers that unpack them as CRI requests do. */
#include <stdint.h>
#include <stdlib.h>

#include "cri.pb-c.h"
#include "grpc-server.h"

static int m_unpack(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                    ProtobufCMessage **ret, struct hull_error **err)
{
	Runtime__V1__RunPodSandboxRequest *r =
	    runtime__v1__run_pod_sandbox_request__unpack(NULL, len, msg);
	(void)userdata, (void)call;
	if (!r)
		return hull_error_set(err, -EINVAL, "the request does not decode");
	*ret = &r->base; /* answered with itself: the response path is exercised too */
	return 0;
}

static struct grpc_call *kept[4096];
static size_t n_kept;

static int m_hold(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                  ProtobufCMessage **ret, struct hull_error **err)
{
	(void)userdata, (void)msg, (void)len, (void)ret, (void)err;
	if (n_kept == 4096)
		return hull_error_set(err, -EBUSY, "full");
	kept[n_kept++] = call;
	return 1;
}

static int m_keep(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                  ProtobufCMessage **ret, struct hull_error **err)
{
	Runtime__V1__VersionResponse v = RUNTIME__V1__VERSION_RESPONSE__INIT;
	/* Kept and streamed to: the deferred-data path. */
	v.version = (char *)"v1";
	grpc_call_send(call, &v.base);
	return m_hold(userdata, call, msg, len, ret, err);
}

static const struct grpc_method methods[] = {
    {"/runtime.v1.RuntimeService/RunPodSandbox", m_unpack},
    {"/runtime.v1.RuntimeService/Version", m_keep},
    {"/runtime.v1.RuntimeService/GetContainerEvents", m_hold},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct grpc_server *s = grpc_server_new(NULL, methods, 3, NULL);
	uint8_t *out = NULL;
	size_t out_len = 0;

	n_kept = 0;
	grpc_server_feed(s, data, size, &out, &out_len);
	free(out);
	/* Calls kept past their connection are answered late, as a pod booting is. */
	for (size_t i = 0; i < n_kept; i++)
		grpc_call_reply(kept[i], 0, NULL, NULL);
	grpc_server_free(s);
	return 0;
}
