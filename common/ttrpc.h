/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"

/* ttrpc framing as containerd speaks it: a 10-byte big-endian header (u32 payload
 * length, u32 stream id, u8 type, u8 flags) then the payload. One implementation
 * serves the agent channel (both ends) and, later, the shim v2 server. */
#define TTRPC_HEADER_SIZE 10u
#define TTRPC_MAX_PAYLOAD (4u << 20)

enum ttrpc_type {
	TTRPC_TYPE_REQUEST = 1,
	TTRPC_TYPE_RESPONSE = 2,
	TTRPC_TYPE_DATA = 3,
	_TTRPC_TYPE_MAX,
};

enum {
	TTRPC_FLAG_REMOTE_CLOSED = 0x1,
	TTRPC_FLAG_REMOTE_OPEN = 0x2,
	TTRPC_FLAG_NO_DATA = 0x4,
};

/* gRPC status codes carried in ttrpc responses. */
enum ttrpc_code {
	TTRPC_OK = 0,
	TTRPC_CANCELLED = 1,
	TTRPC_UNKNOWN = 2,
	TTRPC_INVALID_ARGUMENT = 3,
	TTRPC_DEADLINE_EXCEEDED = 4,
	TTRPC_NOT_FOUND = 5,
	TTRPC_ALREADY_EXISTS = 6,
	TTRPC_PERMISSION_DENIED = 7,
	TTRPC_RESOURCE_EXHAUSTED = 8,
	TTRPC_FAILED_PRECONDITION = 9,
	TTRPC_ABORTED = 10,
	TTRPC_OUT_OF_RANGE = 11,
	TTRPC_UNIMPLEMENTED = 12,
	TTRPC_INTERNAL = 13,
	TTRPC_UNAVAILABLE = 14,
	_TTRPC_CODE_MAX,
};

struct ttrpc_frame {
	uint32_t length;
	uint32_t stream_id;
	uint8_t type;
	uint8_t flags;
	const uint8_t *payload; /* valid until the next decoder call */
};

/* Incremental frame decoder: feed it bytes as they arrive (any split), take frames out. */
struct ttrpc_decoder {
	struct buf in;
	uint32_t max_payload; /* 0: TTRPC_MAX_PAYLOAD */
	uint64_t discard;     /* bytes of an oversized payload still to skip */
};

void ttrpc_decoder_feed(struct ttrpc_decoder *d, const void *data, size_t n);
/* Take the next frame out.
 * Returns 1 with *ret filled; 0 when more bytes are needed; -EMSGSIZE when the next
 * frame's payload is over the cap: *ret has its header (payload NULL), the payload is
 * skipped as it arrives, and the stream stays usable (answer RESOURCE_EXHAUSTED). */
int ttrpc_decoder_next(struct ttrpc_decoder *d, struct ttrpc_frame *ret);
void ttrpc_decoder_release(struct ttrpc_decoder *d);

void ttrpc_header_encode(uint8_t out[TTRPC_HEADER_SIZE], uint32_t length, uint32_t stream_id,
                         uint8_t type, uint8_t flags);
/* Append one frame to an output queue. */
void ttrpc_frame_append(struct buf *out, uint32_t stream_id, uint8_t type, uint8_t flags,
                        const void *payload, size_t len);

/* errno (negative) -> gRPC code, in one place for every server. */
enum ttrpc_code ttrpc_code_from_errno(int r);
/* gRPC code -> a negative errno, for clients. */
int ttrpc_errno_from_code(int code);
const char *ttrpc_code_name(int code);
