/* SPDX-License-Identifier: MIT */
#pragma once

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"
#include "event.h"
#include "ttrpc.h"

/* The one ttrpc client: the host's end of the agent channel, the shim's connection to
 * containerd's events service, and the CLI's to a detached sandbox's Task API.
 *
 * Attached to an event loop it never blocks: calls are queued, replies and DATA frames
 * dispatched as they arrive, at most 512 KiB read per wakeup (a peer that floods the
 * channel cannot keep the loop from its signals and timers), and a call given a
 * timeout is answered DEADLINE_EXCEEDED when it runs out. Detached, a CLI uses
 * ttrpc_client_call_sync().
 *
 * The peer is untrusted: frames are capped (4 MiB) by the decoder, payloads are checked
 * by the callers. A frame over the cap, a request or unknown frame type from the
 * server, or DATA/response on a stream the client never opened ends the connection as
 * a protocol violation (error callback, then every pending call answered UNAVAILABLE
 * with the reason). A response or DATA frame on a stream the client opened but no
 * longer waits on (timed out, forgotten) is dropped. */
struct ttrpc_client;

/* code is a ttrpc/gRPC status code; message and payload are valid during the call. */
typedef void (*ttrpc_reply_cb)(struct ttrpc_client *c, int code, const char *message,
                               const uint8_t *payload, size_t len, void *userdata);
/* A DATA frame on a call's stream, until its reply. */
typedef void (*ttrpc_data_cb)(struct ttrpc_client *c, const uint8_t *payload, size_t len,
                              void *userdata);
/* The connection is over: closed by the peer, a read/write error, or a protocol
 * violation. err->code is -ECONNRESET (closed), -EPROTO (violation) or the errno. */
typedef void (*ttrpc_client_error_cb)(struct ttrpc_client *c, const struct hull_error *err,
                                      void *userdata);

/* Take over a connected stream fd (made non-blocking) for calls to service (borrowed). */
struct ttrpc_client *ttrpc_client_new(int fd, const char *service);
/* Close the fd; pending calls are dropped without their callbacks. Safe inside one of
 * this client's callbacks (the free then happens when it returns). Accepts NULL;
 * returns NULL. */
struct ttrpc_client *ttrpc_client_free(struct ttrpc_client *c);
/* Drive the client from loop; error_cb (may be NULL) is told once when the connection
 * ends. */
int ttrpc_client_attach(struct ttrpc_client *c, struct event_loop *loop,
                        ttrpc_client_error_cb error_cb, void *userdata);
/* End the connection now and answer every pending call (UNAVAILABLE, with why), without
 * telling the error callback: the owner is going away, and what waited on its calls
 * must not hang. New calls fail from then on. Safe inside this client's callbacks. */
void ttrpc_client_cancel_all(struct ttrpc_client *c, const char *why);
/* True once the connection ended; *ret_err (may be NULL) is the reason (borrowed). */
bool ttrpc_client_failed(struct ttrpc_client *c, const struct hull_error **ret_err);

/* Queue a call with msg (may be NULL). data_cb (may be NULL) gets the DATA frames of
 * its stream; timeout_ms 0: no deadline. Returns its stream id, or 0 when the client
 * failed already or has 4096 calls in flight (no callback runs then). */
uint32_t ttrpc_client_call(struct ttrpc_client *c, const char *method, const ProtobufCMessage *msg,
                           uint8_t flags, int timeout_ms, ttrpc_reply_cb cb, ttrpc_data_cb data_cb,
                           void *userdata);
/* The caller no longer wants the answer of stream sid (its owner is going away): no
 * callback of it runs again; what still comes on it is dropped. */
void ttrpc_client_forget(struct ttrpc_client *c, uint32_t sid);
/* Queue a DATA frame on a stream. */
void ttrpc_client_send_data(struct ttrpc_client *c, uint32_t sid, const ProtobufCMessage *msg);
/* Bytes queued for the peer and not yet written. */
size_t ttrpc_client_out_pending(struct ttrpc_client *c);

/* Call and wait up to timeout_ms, pumping the fd directly (the CLI's clients; a
 * sandbox's last DestroySandbox). On success, when desc is non-NULL, *ret is the
 * unpacked reply (free with protobuf_c_message_free_unpacked). */
int ttrpc_client_call_sync(struct ttrpc_client *c, const char *method, const ProtobufCMessage *msg,
                           const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret,
                           int timeout_ms, struct hull_error **err);
/* Feed raw bytes as if read from the fd (fuzzers, unit tests). */
void ttrpc_client_feed(struct ttrpc_client *c, const void *data, size_t len);
