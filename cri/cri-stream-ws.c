/* SPDX-License-Identifier: MIT */
/* WebSocket (RFC 6455, through libwslay) for the streaming server, as kubelet's
 * wsstream.Conn speaks it: every message is one channel's, its first byte the channel
 * number (binary protocols) or the channel digit followed by base64 (the base64
 * protocols, text messages from us; the client's may be text or binary). Frames,
 * masking, fragments, ping/pong and the close handshake are wslay's; a message over
 * 1 MiB, an unmasked or malformed frame ends the connection (close 1009/1002).
 *
 * exec/attach (kubelet's remotecommand websocket.go): channels 0 stdin, 1 stdout,
 * 2 stderr, 3 error, 4 resize; an empty message on the first output channel says the
 * session is up; v5.channel.k8s.io adds the client's [255, channel] close signal.
 * port-forward (portforward websocket.go): channels 2k and 2k+1 are the data and error
 * of the k-th port, each opened with the port, 2 bytes little-endian; the connection
 * closes when every port is done. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#include "cri-stream-internal.h"
#include "log.h"
#include "macros.h"

#define WS_CLOSE_SIGNAL 255

struct cs_ws {
	wslay_event_context_ptr ctx;
	int in_recv; /* inside wslay_event_recv(): sends wait until it returns */
	bool close_queued;
	/* A close decided inside wslay_event_recv(): queued once it returned and the data
	 * before it is written (wslay sends queued control frames first, and nothing
	 * after a close). */
	uint16_t close_due;
	const char *fail; /* and why, when the client broke the protocol */
	bool *pf_done;    /* port-forward: connection k is over */
	size_t n_pf, n_pf_done;
};

static void ws_send(struct cri_stream_session *s)
{
	struct cs_ws *ws = s->ws;

	if (ws->in_recv)
		return;
	/* Our send callback takes everything: the queue is the connection's. */
	if (wslay_event_send(ws->ctx) != 0)
		log_debug("cri: stream: WebSocket send failed");
}

/* One whole, unmasked message (a server's frame, RFC 6455 5.2) straight onto the
 * connection's queue: our messages go out in the order they are made, and before
 * wslay's control frames (a pong, its close reply) for what the client sent after.
 * wslay never leaves half a frame there: our send callback takes all it writes. */
static void ws_put_message(struct cri_stream_session *s, uint8_t opcode, uint8_t first,
                           const uint8_t *p, size_t n)
{
	struct buf *out = &s->conn->out;
	size_t len = n + 1;
	uint8_t h[10];
	size_t hl;

	if (s->ws->close_queued || wslay_event_get_close_sent(s->ws->ctx))
		return;
	h[0] = (uint8_t)(0x80 | opcode);
	if (len < 126) {
		h[1] = (uint8_t)len;
		hl = 2;
	} else if (len < 65536) {
		h[1] = 126;
		h[2] = (uint8_t)(len >> 8);
		h[3] = (uint8_t)len;
		hl = 4;
	} else {
		h[1] = 127;
		for (int i = 0; i < 8; i++)
			h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
		hl = 10;
	}
	buf_append(out, h, hl);
	buf_append(out, &first, 1);
	buf_append(out, p, n);
}

/* One channel's bytes as messages of at most 32 KiB each (one, empty, when n is 0). */
static void ws_channel_msg(struct cri_stream_session *s, unsigned channel, const uint8_t *p,
                           size_t n)
{
	static const uint8_t none[1];
	size_t off = 0;

	if (!p)
		p = none, n = 0;
	do {
		size_t chunk = MIN(n - off, (size_t)CS_WS_MSG_CHUNK);
		if (s->base64) {
			_cleanup_free_ char *b = cs_base64_encode(p + off, chunk, false, true);
			ws_put_message(s, WSLAY_TEXT_FRAME, (uint8_t)('0' + channel),
			               (const uint8_t *)b, strlen(b));
		} else {
			ws_put_message(s, WSLAY_BINARY_FRAME, (uint8_t)channel, p + off, chunk);
		}
		off += chunk;
	} while (off < n);
}

/* Our close, after every message so far (through wslay: it then reads no more). */
static void ws_close(struct cri_stream_session *s, uint16_t code)
{
	struct cs_ws *ws = s->ws;

	if (ws->in_recv) {
		if (!ws->close_due)
			ws->close_due = code;
		s->ended = true;
		return;
	}
	ws_send(s);
	if (!ws->close_queued && !wslay_event_get_close_sent(ws->ctx))
		wslay_event_queue_close(ws->ctx, code, NULL, 0);
	ws->close_queued = true;
	ws_send(s);
}

static void pf_mark_done(struct cri_stream_session *s, size_t k)
{
	struct cs_ws *ws = s->ws;

	if (k >= ws->n_pf || ws->pf_done[k])
		return;
	ws->pf_done[k] = true;
	/* kubelet's websocketStreamHandler: the connection closes once every port's
	 * forward returned. */
	if (++ws->n_pf_done == ws->n_pf)
		cri_stream_session_end(s, 0, NULL);
}

static void on_message(struct cri_stream_session *s, const uint8_t *p, size_t n)
{
	uint8_t ch;

	if (n == 0 || s->ended)
		return;
	if (s->version == 5 && p[0] == WS_CLOSE_SIGNAL) {
		if (n != 2 || p[1] > CRI_CH_RESIZE) {
			s->ws->fail = "a v5 close signal that names no channel";
			ws_close(s, WSLAY_CODE_PROTOCOL_ERROR); /* nothing more is delivered */
			return;
		}
		if (p[1] == CRI_CH_STDIN && s->has[CRI_CH_STDIN])
			cs_deliver_close_input(s, CRI_CH_STDIN);
		else if (p[1] == CRI_CH_RESIZE)
			s->resize_dead = true;
		return;
	}
	ch = s->base64 ? (uint8_t)(p[0] - '0') : p[0];
	p++, n--;

	size_t nch = s->reg->kind == CRI_STREAM_PORTFORWARD ? 2 * s->n_ports : 5;
	if (ch >= nch)
		return; /* kubelet drops these ("possible protocol error") */
	bool wanted = s->reg->kind == CRI_STREAM_PORTFORWARD
	                  ? ch % 2 == 0 && !s->ws->pf_done[ch / 2]
	                  : (ch == CRI_CH_STDIN && s->has[CRI_CH_STDIN]) || ch == CRI_CH_RESIZE;
	if (!wanted || n == 0)
		return;

	_cleanup_free_ uint8_t *dec = NULL;
	if (s->base64) {
		size_t dl;
		dec = xmalloc(n / 4 * 3 + 3);
		if (cs_base64_decode((const char *)p, n, dec, &dl) < 0) {
			log_debug("cri: stream: a base64 message that does not decode: dropped");
			return;
		}
		p = dec, n = dl;
	}
	if (s->reg->kind == CRI_STREAM_PORTFORWARD)
		cs_deliver_data(s, ch / 2, p, n);
	else if (ch == CRI_CH_STDIN)
		cs_deliver_data(s, CRI_CH_STDIN, p, n);
	else
		cs_deliver_resize(s, p, n);
}

static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                          void *user_data)
{
	struct cri_stream_session *s = user_data;
	struct cs_conn *c = s->conn;
	(void)flags;

	if (c->in.len == 0 || s->ended || s->ws->close_queued ||
	    (c->in_paused && c->state == CS_UPGRADED)) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	size_t n = MIN(len, c->in.len);
	memcpy(buf, buf_head(&c->in), n);
	buf_consume(&c->in, n);
	return (ssize_t)n;
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                          void *user_data)
{
	struct cri_stream_session *s = user_data;
	(void)ctx, (void)flags;
	buf_append(&s->conn->out, data, len);
	return (ssize_t)len;
}

static void ws_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                      void *user_data)
{
	struct cri_stream_session *s = user_data;
	(void)ctx;

	/* wsstream's websocket.Message.Receive takes text and binary alike; wslay answers
	 * pings and closes. */
	if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME)
		on_message(s, arg->msg, arg->msg_length);
}

void cs_ws_open(struct cri_stream_session *s)
{
	static const struct wslay_event_callbacks cbs = {
	    .recv_callback = ws_recv_cb,
	    .send_callback = ws_send_cb,
	    .on_msg_recv_callback = ws_msg_cb,
	};
	struct cs_ws *ws = xcalloc(1, sizeof(*ws));

	if (wslay_event_context_server_init(&ws->ctx, &cbs, s) != 0)
		abort(); /* only WSLAY_ERR_NOMEM */
	wslay_event_config_set_max_recv_msg_length(ws->ctx, CS_WS_MSG_MAX);
	s->ws = ws;

	if (s->reg->kind == CRI_STREAM_PORTFORWARD) {
		ws->n_pf = s->n_ports;
		ws->pf_done = xcalloc(s->n_ports, sizeof(bool));
		for (size_t k = 0; k < s->n_ports; k++) {
			uint8_t port[2] = {(uint8_t)(s->ports[k] & 0xff),
			                   (uint8_t)(s->ports[k] >> 8)};
			ws_channel_msg(s, (unsigned)(2 * k), port, 2);
			ws_channel_msg(s, (unsigned)(2 * k + 1), port, 2);
		}
		cs_session_start(s);
		for (size_t k = 0; k < s->n_ports && !s->ended; k++)
			cs_deliver_port_open(s, (int)k);
		return;
	}
	for (int i = 0; i < 3; i++)
		s->has[i] = s->reg->want[i];
	/* kubelet: "an empty message to the lowest writable channel to notify the client
	 * the connection is established". */
	ws_channel_msg(s,
	               s->has[CRI_CH_STDOUT]   ? CRI_CH_STDOUT
	               : s->has[CRI_CH_STDERR] ? CRI_CH_STDERR
	                                       : CRI_CH_ERROR,
	               NULL, 0);
	cs_session_start(s);
}

void cs_ws_feed(struct cri_stream_session *s)
{
	struct cs_ws *ws = s->ws;
	int r;

	ws->in_recv++;
	r = wslay_event_recv(ws->ctx);
	ws->in_recv--;
	ws_send(s);
	if (ws->close_due) {
		uint16_t code = ws->close_due;
		ws->close_due = 0;
		ws_close(s, code);
		if (ws->fail)
			cs_session_abort(s, ws->fail);
		else
			cs_session_close(s);
		return;
	}
	if (s->ended)
		return;
	if (r != 0) {
		cs_session_abort(s, "the WebSocket connection failed");
	} else if (!wslay_event_get_read_enabled(ws->ctx)) {
		/* The client closed, or broke the protocol and wslay queued the close. */
		uint16_t code = wslay_event_get_status_code_sent(ws->ctx);
		ws->close_queued = true;
		if (wslay_event_get_close_received(ws->ctx)) {
			cs_session_abort(s, NULL);
		} else {
			_cleanup_free_ char *why = xasprintf("%s (WebSocket close %u)",
			                                     code == WSLAY_CODE_MESSAGE_TOO_BIG
			                                         ? "a WebSocket message over 1 MiB"
			                                         : "a malformed WebSocket frame",
			                                     code);
			cs_session_abort(s, why);
		}
	}
}

void cs_ws_write(struct cri_stream_session *s, int channel, const uint8_t *p, size_t n)
{
	if (s->reg->kind == CRI_STREAM_PORTFORWARD) {
		if (channel >= 0 && (size_t)channel < s->ws->n_pf && !s->ws->pf_done[channel])
			ws_channel_msg(s, (unsigned)(2 * channel), p, n);
	} else if ((channel == CRI_CH_STDOUT || channel == CRI_CH_STDERR) && s->has[channel]) {
		ws_channel_msg(s, (unsigned)channel, p, n);
	}
}

void cs_ws_close_output(struct cri_stream_session *s, int channel)
{
	/* Nothing goes on the wire: kubelet's server sends no close signals. A
	 * port-forward connection is over with its output. */
	if (s->reg->kind == CRI_STREAM_PORTFORWARD && channel >= 0)
		pf_mark_done(s, (size_t)channel);
}

void cs_ws_port_error(struct cri_stream_session *s, int channel, const char *msg)
{
	if (channel < 0 || (size_t)channel >= s->ws->n_pf || s->ws->pf_done[channel])
		return;
	ws_channel_msg(s, (unsigned)(2 * channel + 1), (const uint8_t *)msg, strlen(msg));
	pf_mark_done(s, (size_t)channel);
}

void cs_ws_finish(struct cri_stream_session *s, const char *status, bool error)
{
	struct cs_ws *ws = s->ws;

	if (ws->close_queued) {
		if (!ws->in_recv)
			cs_session_close(s);
		return;
	}
	if (status && s->reg->kind == CRI_STREAM_PORTFORWARD) {
		for (size_t k = 0; k < ws->n_pf; k++)
			if (!ws->pf_done[k])
				ws_channel_msg(s, (unsigned)(2 * k + 1), (const uint8_t *)status,
				               strlen(status));
	} else if (status) {
		ws_channel_msg(s, CRI_CH_ERROR, (const uint8_t *)status, strlen(status));
	}
	/* x/net/websocket's Close: a close frame with 1000. */
	ws_close(s, error ? WSLAY_CODE_INTERNAL_SERVER_ERROR : WSLAY_CODE_NORMAL_CLOSURE);
	if (!ws->in_recv)
		cs_session_close(s);
}

uint16_t cs_ws_port_of(const struct cri_stream_session *s, int channel)
{
	return channel >= 0 && (size_t)channel < s->n_ports ? s->ports[channel] : 0;
}

void cs_ws_free(struct cri_stream_session *s)
{
	if (!s->ws)
		return;
	wslay_event_context_free(s->ws->ctx);
	free(s->ws->pf_done);
	free(s->ws);
	s->ws = NULL;
}
