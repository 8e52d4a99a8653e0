/* SPDX-License-Identifier: MIT */
#include "ttrpc-msg.h"

#include "macros.h"

static void pack_into(const ProtobufCMessage *msg, ProtobufCBinaryData *ret)
{
	ret->len = msg ? protobuf_c_message_get_packed_size(msg) : 0;
	ret->data = xmalloc(ret->len);
	if (msg)
		protobuf_c_message_pack(msg, ret->data);
}

static void message_append(struct buf *out, uint32_t stream_id, uint8_t type, uint8_t flags,
                           const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t *p = buf_reserve(out, TTRPC_HEADER_SIZE + len);

	/* Pack straight into the output queue: no intermediate copy on the stdio path. */
	ttrpc_header_encode(p, (uint32_t)len, stream_id, type, flags);
	protobuf_c_message_pack(msg, p + TTRPC_HEADER_SIZE);
	buf_commit(out, TTRPC_HEADER_SIZE + len);
}

void ttrpc_request_append(struct buf *out, uint32_t stream_id, uint8_t flags, const char *service,
                          const char *method, const ProtobufCMessage *msg)
{
	Hull__Ttrpc__Request req = HULL__TTRPC__REQUEST__INIT;

	req.service = (char *)service;
	req.method = (char *)method;
	pack_into(msg, &req.payload);
	message_append(out, stream_id, TTRPC_TYPE_REQUEST, flags, &req.base);
	free(req.payload.data);
}

void ttrpc_response_append(struct buf *out, uint32_t stream_id, int code, const char *message,
                           const ProtobufCMessage *msg)
{
	Hull__Ttrpc__Response resp = HULL__TTRPC__RESPONSE__INIT;
	Hull__Ttrpc__Status status = HULL__TTRPC__STATUS__INIT;

	status.code = code;
	status.message = (char *)(message ? message : "");
	resp.status = &status;
	pack_into(code == 0 ? msg : NULL, &resp.payload);
	message_append(out, stream_id, TTRPC_TYPE_RESPONSE, 0, &resp.base);
	free(resp.payload.data);
}

void ttrpc_data_append(struct buf *out, uint32_t stream_id, uint8_t flags,
                       const ProtobufCMessage *msg)
{
	message_append(out, stream_id, TTRPC_TYPE_DATA, flags, msg);
}
