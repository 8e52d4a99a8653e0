/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "event.h"

/* hull-cri's streaming server: the URLs that Exec, Attach and PortForward return, as
 * kubelet's streaming server serves them (k8s.io/kubelet/pkg/cri/streaming), on a TCP
 * address of its own (loopback by default). One event loop, never blocking.
 *
 * A client (the API server, kubectl through it, crictl) GETs (or POSTs, as kubelet
 * also routes) /exec/TOKEN, /attach/TOKEN or /portforward/TOKEN with an upgrade to
 *   - SPDY/3.1 (Upgrade: SPDY/3.1; X-Stream-Protocol-Version: v5.channel.k8s.io,
 *     v4.channel.k8s.io, v3.channel.k8s.io, v2.channel.k8s.io, channel.k8s.io;
 *     portforward.k8s.io): one SPDY stream per channel, named by its "streamType"
 *     header (stdin, stdout, stderr, error, resize; for port-forward data and error
 *     with "port" and "requestID" headers, a pair per forwarded connection);
 *   - WebSocket (Upgrade: websocket; Sec-WebSocket-Protocol: v5.channel.k8s.io,
 *     v4.channel.k8s.io, v4.base64.channel.k8s.io, channel.k8s.io,
 *     base64.channel.k8s.io or none; port-forward: v4.channel.k8s.io,
 *     v4.base64.channel.k8s.io or none, as kubelet accepts): binary messages whose
 *     first byte is the channel (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize; v5
 *     adds 255 = close a channel), or text messages of the channel digit and base64;
 *     port-forward uses channels 2k (data) and 2k+1 (error) for the k-th port, each
 *     opening with the port number (2 bytes little-endian) as kubelet sends it.
 * The protocol is the first of the client's list that is supported, as kubelet's
 * negotiation picks (clients list their best first).
 * A token is single-use and expires (CRI_STREAM_TOKEN_TTL_S) unless used; a request
 * that names it uses it up, whether or not its upgrade succeeds.
 *
 * Everything the client sends is outside input: HTTP requests, SPDY frames (headers
 * zlib-inflated with SPDY's dictionary, capped before allocation) and WebSocket frames
 * are bounded, malformed ones end that session with a clear log line; the server goes
 * on.
 *
 * Each registration ends in exactly one of the backend's gone() (start() was called,
 * whether it succeeded or not) and unused() (it never was: the token expired, the
 * request was refused, the client did not open its streams in time, the server was
 * freed). Both are called from the event loop (or cri_stream_server_free()), never
 * from inside a call the backend makes on a session. */
#define CRI_STREAM_TOKEN_TTL_S 60

enum cri_stream_kind {
	CRI_STREAM_EXEC,
	CRI_STREAM_ATTACH,
	CRI_STREAM_PORTFORWARD,
};

/* The k8s channels of exec and attach (and their numbers on a WebSocket). */
enum cri_stream_channel {
	CRI_CH_STDIN = 0,
	CRI_CH_STDOUT = 1,
	CRI_CH_STDERR = 2,
	CRI_CH_ERROR = 3,
	CRI_CH_RESIZE = 4,
};

struct cri_stream_server;
struct cri_stream_session;

/* What a session asks of the runtime (hull-cri's exec/attach/port-forward backend).
 * userdata is what cri_stream_server_register() was given for the token.
 *
 * Port-forward: `channel` is a connection number, not a port. Each forwarded
 * connection gets its own (over WebSocket: one per port of the request, channel k
 * being the k-th port; over SPDY: one per requestID pair of streams, numbered from 0
 * in the order they open), announced by port_open(); its port is
 * cri_stream_session_port_of(s, channel). */
struct cri_stream_backend {
	/* The client connected and the channels it asked for are open: start the process
	 * (exec), join the container's streams (attach); port-forward: the session is open
	 * (connections follow with port_open). Return 0, or < 0 with *err set: the session
	 * then ends with that error on the error channel (gone() follows as always). For
	 * exec/attach, has[] says which of stdin, stdout, stderr the client opened, tty
	 * whether it asked for a terminal (from the registered request). */
	int (*start)(void *userdata, struct cri_stream_session *s, struct hull_error **err);
	/* Bytes from the client on stdin (exec/attach), or on port-forward connection
	 * `channel`. */
	void (*data)(void *userdata, struct cri_stream_session *s, int channel, const uint8_t *p,
	             size_t n);
	/* The client closed its stdin (or a port-forward connection's data stream, a
	 * half-close): EOF for the process or the connection. */
	void (*close_input)(void *userdata, struct cri_stream_session *s, int channel);
	/* A terminal size from the resize channel (tty sessions only). */
	void (*resize)(void *userdata, struct cri_stream_session *s, uint16_t width,
	               uint16_t height);
	/* The client went away (or the session ended): release everything; the session
	 * must not be used after this returns. Called exactly once after start() (even a
	 * start() that failed). */
	void (*gone)(void *userdata, struct cri_stream_session *s);
	/* The registration expired unused, or the server is being freed: free userdata. */
	void (*unused)(void *userdata);
	/* Port-forward: a new connection `channel` to cri_stream_session_port_of(s,
	 * channel): dial it (without blocking; data() may follow at once and is the
	 * backend's to buffer), report a failure with cri_stream_session_port_error(). NULL:
	 * the backend learns of connections from their first data(). */
	void (*port_open)(void *userdata, struct cri_stream_session *s, int channel);
	/* Port-forward over SPDY: the client reset connection `channel` (RST_STREAM): drop
	 * it; nothing more is delivered or sent on it. May be NULL. */
	void (*port_reset)(void *userdata, struct cri_stream_session *s, int channel);
};

/* Listen on address ("127.0.0.1:0", "[::1]:10010", "0.0.0.0:10010": a numeric host
 * and a port); *ret_base (may be NULL) gets the URL prefix for tokens
 * ("http://127.0.0.1:41234", "http://[::1]:10010"), with the port the kernel chose.
 * loop and address may both be NULL: a server that only serves
 * cri_stream_server_feed() (fuzzers), with "http://fed" as its base. */
struct cri_stream_server *cri_stream_server_new(struct event_loop *loop, const char *address,
                                                char **ret_base, struct hull_error **err);
/* Close every connection (each session's gone(), or unused() before its start) and
 * the listening socket, and drop the tokens not yet used (unused()). Accepts NULL;
 * returns NULL. */
struct cri_stream_server *cri_stream_server_free(struct cri_stream_server *s);
/* Run bytes through a connection of its own as if a client sent them (the request
 * head and what follows it), the backends called as usual, then close it (gone() or
 * unused() for its registration) and drop what it queued; *ret_out, when non-NULL,
 * gets a copy of what the server sent (caller frees), *ret_out_len its size. */
void cri_stream_server_feed(struct cri_stream_server *s, const void *data, size_t len,
                            uint8_t **ret_out, size_t *ret_out_len);

/* A single-use token for a request: *ret_url is the full URL to return to the CRI
 * client (base + "/exec/" + token, ...). For port-forward, ports are the request's
 * (the client's ?port= query may name them again: they must be among these, or all
 * of them when the request named none; over SPDY, each stream's port header must be
 * among the session's ports when it has any). With tty, stderr is not expected (as
 * kubelet drops it: a terminal has one output). backend and userdata are kept until
 * the session ends (gone) or the token expires (unused). 0, or -EINVAL (a port out of
 * 1..65535, more than 64 ports, a kind unknown), -EBUSY (1000 tokens wait already),
 * -errno from /dev/urandom; on failure nothing is kept (unused() is not called). */
int cri_stream_server_register(struct cri_stream_server *s, enum cri_stream_kind kind, bool tty,
                               bool want_stdin, bool want_stdout, bool want_stderr,
                               const int32_t *ports, size_t n_ports,
                               const struct cri_stream_backend *backend, void *userdata,
                               char **ret_url);

/* ---- a session, for the backend ---- */

enum cri_stream_kind cri_stream_session_kind(const struct cri_stream_session *s);
/* Which of stdin, stdout, stderr the client opened; whether it wants a terminal. */
bool cri_stream_session_has(const struct cri_stream_session *s, enum cri_stream_channel ch);
bool cri_stream_session_tty(const struct cri_stream_session *s);
/* Port-forward: the ports of this session (over WebSocket, index = channel; over
 * SPDY, every port its connections may use: empty until the first when the request
 * named none). */
size_t cri_stream_session_ports(const struct cri_stream_session *s, const uint16_t **ret);
/* Port-forward: the port of connection `channel`, 0 when there is no such connection. */
uint16_t cri_stream_session_port_of(const struct cri_stream_session *s, int channel);
/* Output to the client: stdout or stderr (exec/attach; a channel the client did not
 * open is dropped), or the data of port-forward connection `channel`. Queued;
 * bounded: when more than 1 MiB waits for a slow client, cri_stream_session_writable()
 * says false and the backend stops reading its source until the drain callback (set
 * below) says go (a backend that goes on past 16 MiB has its session dropped). After
 * the session ended, writes are dropped. */
void cri_stream_session_write(struct cri_stream_session *s, int channel, const uint8_t *p,
                              size_t n);
bool cri_stream_session_writable(const struct cri_stream_session *s);
void cri_stream_session_set_drain(struct cri_stream_session *s, void (*fn)(void *userdata),
                                  void *userdata);
/* Port-forward: connection `channel` failed: msg goes to its error stream (kubelet's
 * words are "error forwarding port N to pod ID, uid : cause"), then both its streams
 * close; nothing more is delivered for it. */
void cri_stream_session_port_error(struct cri_stream_session *s, int channel, const char *msg);
/* The output channel is done (EOF on stdout or stderr; a port-forward connection's
 * target closed: over SPDY its data stream gets a FIN and client bytes may still
 * come, over WebSocket that connection is over, and the session ends when all are). */
void cri_stream_session_close_output(struct cri_stream_session *s, int channel);
/* End the session: exec/attach write the status to the error channel as kubelet does
 * (v4+: a JSON metav1.Status, "Success", or "Failure" with reason "NonZeroExitCode" and
 * details.causes [{reason: ExitCode, message: "N"}]; err non-NULL: "Failure" with its
 * message, reason InternalError; v1-v3: the failure's message as text, nothing on
 * success; attach reports no exit code), then close everything once what is queued
 * is out. gone() follows (from the event loop). */
void cri_stream_session_end(struct cri_stream_session *s, int exit_code,
                            const struct hull_error *err);
/* Stop (true) or resume reading the client: the backend's sink for data() is full.
 * Input already read is held (bounded) and delivered once resumed. */
void cri_stream_session_set_input_paused(struct cri_stream_session *s, bool paused);
