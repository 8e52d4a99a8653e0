/* SPDX-License-Identifier: MIT */
#pragma once

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <sys/types.h>

#include "buf.h"
#include "error.h"
#include "event.h"
#include "ttrpc-client.h"

/* The host's end of one agent stream (a process's stdio, a port-forward): the one
 * implementation of the protocol in common/stream.h for `hull run`, `hull run -d`, the
 * shim and port-forward.
 *
 * Guest -> host: the stream grants STREAM_WINDOW, buffers what arrives until its sink
 * takes it, and grants again what the sink took once that reaches STREAM_REGRANT; what
 * is buffered plus what the guest may still send never exceeds the window, so a guest
 * can never make the host hold more than that. A frame past the guest's credit, an
 * undecodable frame or an unknown fd is a protocol violation: the stream is cut (the
 * agent told to cancel it, its further frames dropped) and done() reports it.
 *
 * Host -> guest: read from the source only as far as the guest's credit goes, at most
 * STREAM_CHUNK per frame. Nothing here blocks: sinks are written without blocking and
 * polled for room; a sink that cannot take more holds the guest back, never the loop. */

/* Where the guest's output goes. */
struct stream_sink {
	/* Take up to n bytes: how many were taken (1..n), -EAGAIN when it has no room now
	 * (poll fd for EPOLLOUT), or another -errno when it is broken for good (the rest
	 * is dropped). */
	ssize_t (*write)(struct stream_sink *s, const void *p, size_t n);
	/* The data is over (EOF): release. Called once. */
	void (*close)(struct stream_sink *s);
	int fd;      /* polled after -EAGAIN; -1 for a sink that never says -EAGAIN */
	bool failed; /* set before close when the stream ended in an error */
};

/* A sink over an fd: non-blocking writes (send() on a socket), closed at EOF when own.
 * Regular files are written as they are (a write to them does not wait for a reader).
 * A socket not owned is shut for writing at a clean end, left as it is after an
 * error (its owner may reset it: a refused port-forward must not look like an
 * empty answer). */
struct stream_sink *stream_sink_fd(int fd, bool own);
/* A sink over one of our stdio fds (hull run's stdout): a non-blocking writer of its
 * own (a new open file description of the pipe or terminal, so the shell's stays as it
 * is). Returns NULL with errno when fd cannot be written. */
struct stream_sink *stream_sink_stdio(int fd);
/* The same for reading: our stdin as a non-blocking source (a new description), or a
 * dup for files; -errno. The caller owns the fd. */
int stream_source_stdio(int fd);

struct stream;

struct stream_ops {
	/* The stream is over: the guest answered (r is its status, err its message) and
	 * all it sent was given to the sinks; or the host cut it (a protocol violation:
	 * r = -EPROTO, err says what the guest did; or the channel ended). Once. */
	void (*done)(struct stream *st, int r, const struct hull_error *err, void *userdata);
};

struct stream_config {
	const char *what;            /* for messages: "container 'job'", "port-forward to 8080" */
	struct stream_sink *sink[3]; /* [1] stdout, [2] stderr (NULL: dropped); taken */
	int source;                  /* fd 0's bytes, or -1; taken (closed by the stream) */
	bool source_socket;          /* source is the sink's socket: shut it for reading only */
};

/* Open a stream: send method(msg) on c with the REMOTE_OPEN flag, grant the window, and
 * carry bytes until the call's reply. NULL (errno set) when the call could not be sent. */
struct stream *stream_open(struct event_loop *loop, struct ttrpc_client *c, const char *method,
                           const ProtobufCMessage *msg, const struct stream_config *cfg,
                           const struct stream_ops *ops, void *userdata);
/* fd 0 is over (CloseIO): tell the guest EOF once what was read is sent. */
void stream_close_input(struct stream *st);
/* Abandon the stream: the agent is told to cancel it and what still comes is dropped;
 * done() follows at once with -ECANCELED. */
void stream_cancel(struct stream *st);
/* The channel is gone: what is buffered is written as far as the sinks take it without
 * waiting, then done() with err. */
void stream_abort(struct stream *st, const struct hull_error *err);
/* Stop everything, drop what is buffered, no done(). Accepts NULL; returns NULL. */
struct stream *stream_free(struct stream *st);
bool stream_is_done(const struct stream *st);
/* Bytes held for the sinks (at most STREAM_WINDOW), for tests and metrics. */
size_t stream_buffered(const struct stream *st);
