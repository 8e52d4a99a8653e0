/* SPDX-License-Identifier: MIT */
#pragma once

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "event.h"

/* gRPC over HTTP/2 (libnghttp2) on unix sockets: hull-cri's door for kubelet.
 *
 * Driven by an event loop and never blocking it: many connections, many calls in
 * flight on each, answers in any order. A handler answers at once or keeps the call
 * and answers later (a pod that boots for seconds does not hold up a ListContainers).
 * Server-streaming calls (GetContainerEvents) send messages until they end.
 *
 * Bounded against the client: a request message is capped (GRPC_MAX_MESSAGE, checked
 * from its 5-byte prefix before anything is allocated, answered RESOURCE_EXHAUSTED),
 * a connection holds at most GRPC_MAX_STREAMS calls (SETTINGS_MAX_CONCURRENT_STREAMS),
 * and a client that does not read its answers stops being read once 16 MiB wait for
 * it. A deadline (`grpc-timeout`) is honoured: a kept call still unanswered when it
 * runs out is answered DEADLINE_EXCEEDED (its handler's late answer is dropped).
 * Malformed HTTP/2 ends the connection with GOAWAY; nothing else is touched. */
#define GRPC_MAX_MESSAGE (16u << 20)
#define GRPC_MAX_STREAMS 128u

struct grpc_server;
struct grpc_call;

/* Return 0 with *ret set (answered now; *ret freed with protobuf_c_message_free_unpacked,
 * may be NULL for an empty message), 1 when the handler keeps `call` and answers with
 * grpc_call_reply() (or streams with grpc_call_send() then grpc_call_reply()), or < 0
 * with *err set (its errno becomes the status; see grpc_call_reply). */
typedef int (*grpc_method_fn)(void *userdata, struct grpc_call *call, const uint8_t *msg,
                              size_t len, ProtobufCMessage **ret, struct hull_error **err);

struct grpc_method {
	const char *path; /* "/runtime.v1.RuntimeService/Version" */
	grpc_method_fn fn;
};

struct grpc_server *grpc_server_new(struct event_loop *loop, const struct grpc_method *methods,
                                    size_t n_methods, void *userdata);
/* Listen on path with mode (an existing socket file is replaced). */
int grpc_server_listen(struct grpc_server *s, const char *path, mode_t mode,
                       struct hull_error **err);
/* Serve a connected stream fd (taken; made non-blocking). */
int grpc_server_add_fd(struct grpc_server *s, int fd);
/* Close every connection and the listening socket; calls kept by handlers stay valid
 * (their answers are dropped) until answered. Accepts NULL; returns NULL. */
struct grpc_server *grpc_server_free(struct grpc_server *s);
/* Run bytes through a connection of its own as if a client sent them, every handler
 * answering as usual and the output dropped (fuzzers, unit tests); *ret_out, when
 * non-NULL, gets a copy of what the server sent (caller frees), *ret_out_len its size. */
void grpc_server_feed(struct grpc_server *s, const void *data, size_t len, uint8_t **ret_out,
                      size_t *ret_out_len);

/* Answer a kept call: r < 0 with err (may be NULL: strerror), else msg (may be NULL:
 * an empty message, or none at all after a stream). The status is the gRPC code for
 * r (ttrpc_code_from_errno), or err's own code when it carries one set with
 * grpc_error_code(). Frees the call once its answer is out. */
void grpc_call_reply(struct grpc_call *call, int r, const struct hull_error *err,
                     const ProtobufCMessage *msg);
/* A server-streaming call: queue one message. Dropped once the client is gone. */
void grpc_call_send(struct grpc_call *call, const ProtobufCMessage *msg);
/* The client went away (RST_STREAM, connection closed) or the deadline passed:
 * nothing sent now reaches anyone. A streaming handler looks before its next send. */
bool grpc_call_gone(const struct grpc_call *call);
/* Told once when the call becomes gone while kept (may be NULL to stop). */
typedef void (*grpc_gone_fn)(struct grpc_call *call, void *userdata);
void grpc_call_set_gone_cb(struct grpc_call *call, grpc_gone_fn fn, void *userdata);
/* The deadline (CLOCK_MONOTONIC ns) the client gave, or 0. */
uint64_t grpc_call_deadline(const struct grpc_call *call);
const char *grpc_call_path(const struct grpc_call *call);

/* Errors whose gRPC code is not what their errno maps to: a hull_error code in this
 * range is taken as -(GRPC_CODE_BASE + code). */
#define GRPC_CODE_BASE 100000
static inline int grpc_error_code(int grpc_code)
{
	return -(GRPC_CODE_BASE + grpc_code);
}

/* "10S", "250m", "3000000n" (digits then H M S m u n) -> ns; -EINVAL when malformed. */
int grpc_parse_timeout(const char *s, uint64_t *ret_ns);
/* grpc-message's percent-encoding of text (caller frees). */
char *grpc_percent_encode(const char *text);
