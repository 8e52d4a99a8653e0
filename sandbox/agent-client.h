/* SPDX-License-Identifier: MIT */
#pragma once

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"
#include "ttrpc.h"

/* The host's ttrpc client for the agent API. Non-blocking at heart: calls are queued
 * and their replies dispatched from agent_client_io(); agent_client_call_sync() pumps
 * until its reply arrives. Every byte from the agent is untrusted: frames are capped by
 * the decoder, payloads checked by protobuf-c, replies for unknown streams dropped. */
struct agent_client;

/* code is a ttrpc/gRPC status code; payload valid only during the call. */
typedef void (*agent_reply_cb)(struct agent_client *ac, int code, const char *message,
                               const uint8_t *payload, size_t len, void *userdata);
typedef void (*agent_data_cb)(struct agent_client *ac, const uint8_t *payload, size_t len,
                              void *userdata);

struct agent_client *agent_client_new(int fd);
struct agent_client *agent_client_free(struct agent_client *ac);
int agent_client_fd(struct agent_client *ac);
/* Talk to another ttrpc service than the agent's (e.g. a Task API server). The string
 * is borrowed. */
void agent_client_set_service(struct agent_client *ac, const char *service);
/* Wake the sync pump early when this fd turns readable (a signalfd): -EINTR. */
void agent_client_set_interrupt_fd(struct agent_client *ac, int fd);
/* Also watch this fd (a QEMU pidfd): readable means the peer is gone: -ECHILD. */
void agent_client_set_exit_fd(struct agent_client *ac, int fd);

/* Queue a call; returns its stream id. data_cb (may be NULL) gets DATA frames of the
 * stream until the reply. */
uint32_t agent_client_call(struct agent_client *ac, const char *method, const ProtobufCMessage *msg,
                           uint8_t flags, agent_reply_cb cb, agent_data_cb data_cb, void *userdata);
/* Queue a DATA frame on a stream. */
void agent_client_send_data(struct agent_client *ac, uint32_t stream_id,
                            const ProtobufCMessage *msg);
/* Queue StdioData for the guest's side of a stdio or port-forward stream: bytes for
 * its fd 0 (len may be 0), eof closes it, credit grants the guest that many more bytes
 * of output. */
void agent_client_send_stdio(struct agent_client *ac, uint32_t stream_id, const uint8_t *data,
                             size_t len, bool eof, uint64_t credit);
/* Call and wait up to timeout_ms. On success, when desc is non-NULL, *ret is the
 * unpacked reply (free with protobuf_c_message_free_unpacked). */
int agent_client_call_sync(struct agent_client *ac, const char *method, const ProtobufCMessage *msg,
                           const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret,
                           int timeout_ms, struct hull_error **err);
/* Read what is available, dispatch, write what is queued. -ECONNRESET at EOF. */
int agent_client_io(struct agent_client *ac, struct hull_error **err);
bool agent_client_wants_write(struct agent_client *ac);
/* Feed raw bytes as if read from the channel (fuzzer). */
void agent_client_feed(struct agent_client *ac, const void *data, size_t len);
