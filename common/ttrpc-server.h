/* SPDX-License-Identifier: MIT */
#pragma once

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>

#include "buf.h"
#include "error.h"
#include "event.h"

/* The one ttrpc server: the shim's and `hull run -d`'s Task API on a unix socket, and the
 * agent's service on its virtio-serial port or vsock connection. Driven by an event
 * loop: several connections, several calls in flight per connection, replies in any
 * order, DATA frames of a call's stream handed to that call. Handlers are thin adapters
 * (decode -> validate -> do_*); errno becomes a wire status in one place.
 *
 * Bounded against its peer: frames are capped by the decoder, a connection holds at
 * most 256 kept calls, and a peer that does not read its replies stops being read once
 * 16 MiB of output wait for it (it is read again when they drain). */
struct ttrpc_server;
struct ttrpc_call;

/* Return 0 with *ret set (reply now; *ret is freed with protobuf_c_message_free_unpacked,
 * may be NULL for an empty reply), 1 when the handler keeps `call` and answers later
 * with ttrpc_call_reply(), or < 0 with *err set. */
typedef int (*ttrpc_method_fn)(void *userdata, struct ttrpc_call *call, const uint8_t *payload,
                               size_t len, ProtobufCMessage **ret, struct hull_error **err);
/* A DATA frame on a kept call's stream; payload valid during the call. */
typedef void (*ttrpc_call_data_fn)(struct ttrpc_call *call, const uint8_t *payload, size_t len,
                                   void *userdata);
/* A connection's output queue got shorter (the peer read): producers that wait for
 * room (the agent's stdio) look again. */
typedef void (*ttrpc_drain_fn)(void *userdata);

struct ttrpc_method {
	const char *service;
	const char *method;
	ttrpc_method_fn fn;
};

enum {
	/* A hangup or EOF does not end the connection: the fd is polled again every 50 ms
	 * and kept calls stay (a virtio-serial port reports HUP while no host is
	 * connected). */
	TTRPC_FD_KEEP = 1 << 0,
};

struct ttrpc_server *ttrpc_server_new(struct event_loop *loop, const struct ttrpc_method *methods,
                                      size_t n_methods, void *userdata);
/* Listen on path (mode 0600, an existing socket file is replaced). */
int ttrpc_server_listen(struct ttrpc_server *s, const char *path, struct hull_error **err);
/* Accept connections on a listening socket (taken): the agent's vsock port, where a
 * restored clone's host connects anew. 0 or -errno (the fd is closed). */
int ttrpc_server_listen_fd(struct ttrpc_server *s, int fd);
/* Serve an open stream fd (an accepted socket, a socketpair end, a character device);
 * takes the fd and makes it non-blocking. flags: TTRPC_FD_*. */
int ttrpc_server_add_fd(struct ttrpc_server *s, int fd, unsigned flags);
void ttrpc_server_set_drain_cb(struct ttrpc_server *s, ttrpc_drain_fn fn, void *userdata);
/* Write what is queued, blocking up to timeout_ms (the agent's last words before the
 * VM powers off). */
void ttrpc_server_flush(struct ttrpc_server *s, int timeout_ms);
/* Close every connection and the listening socket. Calls still kept by handlers stay
 * valid (their answers are dropped) until answered. Accepts NULL; returns NULL. */
struct ttrpc_server *ttrpc_server_free(struct ttrpc_server *s);

/* The value of a request's metadata key (e.g. "containerd-namespace-ttrpc"), or NULL.
 * Valid until the call is answered. */
const char *ttrpc_call_metadata(struct ttrpc_call *call, const char *key);
/* DATA frames on this call's stream go to fn until the call is answered. */
void ttrpc_call_set_data_cb(struct ttrpc_call *call, ttrpc_call_data_fn fn, void *userdata);
/* Queue a DATA frame on the call's stream (dropped once its connection is gone). */
void ttrpc_call_send_data(struct ttrpc_call *call, const ProtobufCMessage *msg);
/* The call's stream id, for DATA frames built in place. */
uint32_t ttrpc_call_stream_id(const struct ttrpc_call *call);
/* The connection's output queue, for frames built in place (the agent's single-copy
 * stdio path), or NULL once the connection is gone; ttrpc_call_flush() sends them. */
struct buf *ttrpc_call_out(struct ttrpc_call *call);
void ttrpc_call_flush(struct ttrpc_call *call);
/* Answer a call kept by its handler: r < 0 with err (may be NULL), or msg (may be
 * NULL). Frees the call; if its connection is gone the answer is dropped. */
void ttrpc_call_reply(struct ttrpc_call *call, int r, const struct hull_error *err,
                      const ProtobufCMessage *msg);
