/* SPDX-License-Identifier: MIT */
#pragma once

#include <protobuf-c/protobuf-c.h>

#include "error.h"
#include "event.h"

/* A ttrpc server on a unix socket, driven by an event loop: several connections,
 * several calls in flight per connection, replies in any order. Handlers are thin
 * adapters (decode -> validate -> do_*); errno becomes a wire status in one place.
 * Serves the shim v2 Task API of the per-sandbox process. */
struct ttrpc_server;
struct ttrpc_call;

/* Return 0 with *ret set (reply now; *ret is freed with protobuf_c_message_free_unpacked,
 * may be NULL for an empty reply), 1 when the handler keeps `call` and answers later
 * with ttrpc_call_reply(), or < 0 with *err set. */
typedef int (*ttrpc_method_fn)(void *userdata, struct ttrpc_call *call, const uint8_t *payload,
                               size_t len, ProtobufCMessage **ret, struct hull_error **err);

struct ttrpc_method {
	const char *service;
	const char *method;
	ttrpc_method_fn fn;
};

struct ttrpc_server *ttrpc_server_new(struct event_loop *loop, const struct ttrpc_method *methods,
                                      size_t n_methods, void *userdata);
/* Listen on path (mode 0600, an existing socket file is replaced). */
int ttrpc_server_listen(struct ttrpc_server *s, const char *path, struct hull_error **err);
/* Serve an already connected stream (socketpair end, accepted fd); takes the fd. */
int ttrpc_server_add_connection(struct ttrpc_server *s, int fd);
struct ttrpc_server *ttrpc_server_free(struct ttrpc_server *s);

/* The value of a request's metadata key (e.g. "containerd-namespace-ttrpc"), or NULL.
 * Valid until the call is answered. */
const char *ttrpc_call_metadata(struct ttrpc_call *call, const char *key);
/* Answer a call kept by its handler: r < 0 with err (may be NULL), or msg (may be
 * NULL). Frees the call; if its connection is gone the answer is dropped. */
void ttrpc_call_reply(struct ttrpc_call *call, int r, const struct hull_error *err,
                      const ProtobufCMessage *msg);
