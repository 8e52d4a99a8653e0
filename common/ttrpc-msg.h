/* SPDX-License-Identifier: MIT */
#pragma once

#include <protobuf-c/protobuf-c.h>

#include "buf.h"
#include "ttrpc.h"
#include "ttrpc.pb-c.h"

/* Append a Request frame for service/method carrying msg (may be NULL: empty payload). */
void ttrpc_request_append(struct buf *out, uint32_t stream_id, uint8_t flags, const char *service,
                          const char *method, const ProtobufCMessage *msg);
/* Append a Response frame: code/message as the status, msg (may be NULL) as payload. */
void ttrpc_response_append(struct buf *out, uint32_t stream_id, int code, const char *message,
                           const ProtobufCMessage *msg);
/* Append a DATA frame carrying msg. */
void ttrpc_data_append(struct buf *out, uint32_t stream_id, uint8_t flags,
                       const ProtobufCMessage *msg);
