/* SPDX-License-Identifier: MIT */
/* spdyexec: what kubectl does with the URL a CRI Exec, Attach or PortForward call
 * returned (the API server relays its SPDY session to the streaming server as it is),
 * over SPDY/3.1, the protocol kubectl's clients use by default: the client of
 * tests/integration/cri.sh's SPDY streaming test. Frames and header blocks go through
 * the streaming server's own codec (cri-stream-internal.h); which streams are opened,
 * in what order and with which headers is client-go's (remotecommand's v4 protocol,
 * portforward), written here from its source.
 *
 *   spdyexec exec URL OUTDIR [--stdin FILE] [--tty] [--resize WxH]
 *     X-Stream-Protocol-Version: v4.channel.k8s.io. Streams error, stdin (with
 *     --stdin), stdout, stderr (not with --tty), resize (with --tty), each opened once
 *     the previous one is replied, as spdystream's CreateStream waits; headers
 *     streamtype alone. {"Width":W,"Height":H} on resize, FILE's bytes then a FIN on
 *     stdin; OUTDIR/stdout, OUTDIR/stderr and OUTDIR/status (the error stream's bytes:
 *     v4's metav1.Status JSON) written until the server closes the connection. Exit 0
 *     when the session ended cleanly, whatever the command's exit code (that is in
 *     status).
 *   spdyexec portforward URL PORT REQUEST-FILE
 *     X-Stream-Protocol-Version: portforward.k8s.io. An error stream, closed at once
 *     (the client writes nothing on it), and a data stream, both with headers
 *     streamtype, port and requestid; REQUEST-FILE's bytes on data then a FIN; what
 *     comes back on data to stdout until both streams are closed. Exit 1 with the
 *     error stream's text on stderr when it carried any.
 *
 * Flow control both ways: no more is sent than the server's windows allow, and what
 * arrives is given back (WINDOW_UPDATE for the stream and the session every 32 KiB),
 * which makes the server keep our windows too. PINGs are answered. What the server
 * sends is bounded: the upgrade's reply head (16 KiB), frames (the server's own
 * limits), header blocks (16 KiB inflated), the error stream (64 KiB); no traffic
 * for IDLE_TIMEOUT_MS is an error. Usage errors exit 2, failures 1, with one line on
 * stderr saying why. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cri-stream-internal.h"
#include "error.h"
#include "util.h"

#define HEAD_MAX (16u << 10)       /* the upgrade's reply head */
#define BODY_MAX 4096u             /* a refusal's body, for the message */
#define ERROR_TEXT_MAX (64u << 10) /* the error stream's bytes */
#define READ_CHUNK (64u << 10)
#define OUT_HIGH (256u << 10) /* queued for the server: stdin waits above this */
#define MAX_STREAMS 8
#define IDLE_TIMEOUT_MS 120000

struct stream {
	uint32_t id;
	const char *type;
	bool replied;
	bool fin; /* the server is done sending (FIN or RST) */
	bool rst; /* reset by the server */
	uint32_t rst_status;
	bool closed;    /* our FIN went out */
	int64_t window; /* what we may send on it */
	uint32_t unacked;
	int out_fd; /* where its data goes, or -1 */
	bool keep;  /* its data is kept in text (the error stream) */
	struct buf text;
};

struct client {
	int fd;
	struct buf in, out;
	struct buf hb; /* an inflated header block */
	struct spdy_zstream out_z, in_z;
	struct stream st[MAX_STREAMS];
	size_t n_streams;
	int64_t initial_window; /* for the streams (the server's SETTINGS) */
	int64_t session_window;
	uint32_t session_unacked;
	bool eof;    /* the server closed its side */
	bool broken; /* the server no longer reads: what we send is dropped */
	bool goaway;
	uint32_t goaway_status;
};

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void client_init(struct client *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	spdy_z_init(&c->out_z, false);
	spdy_z_init(&c->in_z, true);
	c->initial_window = CS_SPDY_WINDOW;
	c->session_window = CS_SPDY_WINDOW;
}

static void client_release(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	buf_release(&c->in);
	buf_release(&c->out);
	buf_release(&c->hb);
	spdy_z_end(&c->out_z);
	spdy_z_end(&c->in_z);
	for (size_t i = 0; i < c->n_streams; i++)
		buf_release(&c->st[i].text);
}

static struct stream *stream_find(struct client *c, uint32_t id)
{
	for (size_t i = 0; i < c->n_streams; i++)
		if (c->st[i].id == id)
			return &c->st[i];
	return NULL;
}

/* ---- the connection ---- */

/* http://HOST[:PORT]/PATH into its parts (caller frees each). */
static int parse_url(const char *url, char **ret_host, char **ret_port, char **ret_authority,
                     char **ret_path, struct hull_error **err)
{
	const char *p, *slash, *colon, *host_end;
	size_t hl;

	if (strncmp(url, "http://", 7) != 0)
		return hull_error_set(err, -EINVAL, "URL '%s': not http://", url);
	p = url + 7;
	slash = strchr(p, '/');
	if (!slash)
		slash = p + strlen(p);
	if (*p == '[') {
		host_end = memchr(p, ']', (size_t)(slash - p));
		if (!host_end)
			return hull_error_set(err, -EINVAL, "URL '%s': bad IPv6 address", url);
		colon = host_end + 1 < slash && host_end[1] == ':' ? host_end + 1 : NULL;
		p++;
	} else {
		colon = memchr(p, ':', (size_t)(slash - p));
		host_end = colon ? colon : slash;
	}
	hl = (size_t)(host_end - p);
	if (hl == 0)
		return hull_error_set(err, -EINVAL, "URL '%s': no host", url);
	*ret_host = xstrndup(p, hl);
	*ret_port = colon ? xstrndup(colon + 1, (size_t)(slash - colon - 1)) : xstrdup("80");
	*ret_authority = xstrndup(url + 7, (size_t)(slash - (url + 7)));
	*ret_path = xstrdup(*slash ? slash : "/");
	return 0;
}

static int dial(const char *host, const char *port, struct hull_error **err)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
	int r, fd = -1, e = ECONNREFUSED;

	r = getaddrinfo(host, port, &hints, &res);
	if (r != 0)
		return hull_error_set(err, -EHOSTUNREACH, "resolve '%s': %s", host,
		                      gai_strerror(r));
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return hull_error_set_errno(err, -e, "connect to %s:%s", host, port);
	return fd;
}

/* Wait for events on the connection; 0 (revents set), or -ETIMEDOUT. */
static int wait_fd(struct client *c, short events, short *ret_revents, struct hull_error **err)
{
	struct pollfd pfd = {.fd = c->fd, .events = events};

	for (;;) {
		int n = poll(&pfd, 1, IDLE_TIMEOUT_MS);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return hull_error_set_errno(err, -errno, "poll");
		if (n == 0)
			return hull_error_set(err, -ETIMEDOUT,
			                      "no traffic from the server for %d s",
			                      IDLE_TIMEOUT_MS / 1000);
		*ret_revents = pfd.revents;
		return 0;
	}
}

/* Send what is queued, as far as the socket takes it. */
static int client_flush(struct client *c, struct hull_error **err)
{
	while (c->out.len > 0 && !c->broken) {
		ssize_t w = send(c->fd, buf_head(&c->out), c->out.len, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return 0;
		if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) {
			/* The server is gone: what it said before is still to be read. */
			c->broken = true;
			break;
		}
		if (w < 0)
			return hull_error_set_errno(err, -errno, "send");
		buf_consume(&c->out, (size_t)w);
	}
	if (c->broken)
		buf_consume(&c->out, c->out.len);
	return 0;
}

/* Read once into c->in; sets c->eof at the end. */
static int client_read(struct client *c, struct hull_error **err)
{
	for (;;) {
		ssize_t n = recv(c->fd, buf_reserve(&c->in, READ_CHUNK), READ_CHUNK, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n < 0)
			return hull_error_set_errno(err, -errno, "recv");
		if (n == 0)
			c->eof = true;
		buf_commit(&c->in, (size_t)n);
		return 0;
	}
}

static int client_process(struct client *c, struct hull_error **err);

static const char *head_header(const char *head, const char *name, char *v, size_t vn)
{
	size_t nl = strlen(name);

	for (const char *l = strstr(head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
		const char *line = l + 2, *end = strstr(line, "\r\n");
		if (!end)
			end = line + strlen(line);
		if ((size_t)(end - line) <= nl || strncasecmp(line, name, nl) != 0 ||
		    line[nl] != ':')
			continue;
		line += nl + 1;
		while (line < end && (*line == ' ' || *line == '\t'))
			line++;
		snprintf(v, vn, "%.*s", (int)(end - line), line);
		return v;
	}
	return NULL;
}

/* Connect and upgrade to SPDY/3.1 with protocol version proto. What follows the reply's
 * head stays in c->in: the first frames. */
static int client_connect(struct client *c, const char *url, const char *proto,
                          struct hull_error **err)
{
	_cleanup_free_ char *host = NULL, *port = NULL, *authority = NULL, *path = NULL;
	_cleanup_free_ char *req = NULL, *head = NULL;
	char v[256];
	short rev;
	int r, code;

	r = parse_url(url, &host, &port, &authority, &path, err);
	if (r < 0)
		return r;
	r = dial(host, port, err);
	if (r < 0)
		return r;
	c->fd = r;
	r = fd_set_nonblock(c->fd, 1);
	if (r < 0)
		return hull_error_set_errno(err, r, "make the socket non-blocking");
	/* POST, as kubectl's requests come through the API server. */
	req = xasprintf("POST %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\n"
	                "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: %s\r\n"
	                "Content-Length: 0\r\n\r\n",
	                path, authority, proto);
	buf_append(&c->out, req, strlen(req));

	const uint8_t *end = NULL;
	while (!end) {
		r = wait_fd(c, (short)(POLLIN | (c->out.len ? POLLOUT : 0)), &rev, err);
		if (r < 0)
			return r;
		r = client_flush(c, err);
		if (r < 0)
			return r;
		if (rev & (POLLIN | POLLHUP | POLLERR)) {
			r = client_read(c, err);
			if (r < 0)
				return r;
		}
		end = memmem(buf_head(&c->in), c->in.len, "\r\n\r\n", 4);
		if (!end && c->in.len > HEAD_MAX)
			return hull_error_set(
			    err, -EMSGSIZE, "the upgrade's reply head is over %u bytes", HEAD_MAX);
		if (!end && c->eof)
			return hull_error_set(err, -ECONNRESET,
			                      "the server closed the connection "
			                      "before its reply");
	}
	size_t hl = (size_t)(end - buf_head(&c->in)) + 4;
	head = xstrndup((const char *)buf_head(&c->in), hl - 2);
	buf_consume(&c->in, hl);
	if (sscanf(head, "HTTP/1.%*1[01] %3d", &code) != 1)
		return hull_error_set(err, -EPROTO, "a reply that is not HTTP/1.x: '%.80s'", head);
	if (code != 101) {
		/* The body says why (the server closes after it). */
		while (!c->eof && c->in.len < BODY_MAX) {
			r = wait_fd(c, POLLIN, &rev, err);
			if (r < 0)
				return r;
			r = client_read(c, err);
			if (r < 0)
				return r;
		}
		const char *line_end = strstr(head, "\r\n");
		size_t bl = MIN(c->in.len, (size_t)BODY_MAX);
		while (bl > 0 &&
		       (buf_head(&c->in)[bl - 1] == '\n' || buf_head(&c->in)[bl - 1] == '\r'))
			bl--;
		return hull_error_set(err, -EPROTO, "the upgrade was refused: %.*s: %.*s",
		                      (int)(line_end ? line_end - head : 80), head, (int)bl,
		                      (const char *)buf_head(&c->in));
	}
	if (!head_header(head, "Upgrade", v, sizeof(v)) || strcasecmp(v, "SPDY/3.1") != 0)
		return hull_error_set(err, -EPROTO, "a 101 without 'Upgrade: SPDY/3.1'");
	if (!head_header(head, "X-Stream-Protocol-Version", v, sizeof(v)) || strcmp(v, proto) != 0)
		return hull_error_set(err, -EPROTO, "the server chose protocol '%s', not '%s'", v,
		                      proto);
	return client_process(c, err); /* frames that came with the reply */
}

/* ---- frames from the server ---- */

static void put_window_update(struct client *c, uint32_t id, uint32_t delta)
{
	if (!c->broken)
		spdy_put_u32_pair(&c->out, SPDY_WINDOW_UPDATE, id, delta);
}

static int on_data(struct client *c, const struct spdy_frame *f, struct hull_error **err)
{
	struct stream *st = stream_find(c, f->stream_id);
	int r;

	/* Give back what arrived, as the server does. */
	c->session_unacked += f->length;
	if (c->session_unacked >= CS_SPDY_WINDOW / 2) {
		put_window_update(c, 0, c->session_unacked);
		c->session_unacked = 0;
	}
	if (!st)
		return 0; /* not one of ours: dropped, as spdystream does */
	if (!st->replied || st->fin)
		return hull_error_set(err, -EPROTO, "DATA on stream '%s' %s", st->type,
		                      st->fin ? "after its FIN" : "before its SYN_REPLY");
	st->unacked += f->length;
	if (st->unacked >= CS_SPDY_WINDOW / 2 && !(f->flags & SPDY_FLAG_FIN)) {
		put_window_update(c, st->id, st->unacked);
		st->unacked = 0;
	}
	if (st->keep && f->length) {
		if (st->text.len + f->length > ERROR_TEXT_MAX)
			return hull_error_set(err, -EMSGSIZE, "stream '%s' carried over %u bytes",
			                      st->type, ERROR_TEXT_MAX);
		buf_append(&st->text, f->payload, f->length);
	} else if (st->out_fd >= 0 && f->length) {
		r = write_all(st->out_fd, f->payload, f->length);
		if (r < 0)
			return hull_error_set_errno(err, r, "write stream '%s'", st->type);
	}
	if (f->flags & SPDY_FLAG_FIN)
		st->fin = true;
	return 0;
}

/* Inflate a header block (every one: the zlib stream is the connection's) and check that
 * it splits. */
static int frame_headers(struct client *c, const uint8_t *p, size_t n, struct hull_error **err)
{
	struct spdy_header h[CS_SPDY_MAX_HEADERS];
	size_t nh;
	int r;

	c->hb.start = c->hb.len = 0;
	r = spdy_z_inflate(&c->in_z, p, n, CS_SPDY_HEADERS_MAX, &c->hb);
	if (r == 0)
		r = spdy_headers_parse(buf_head(&c->hb), c->hb.len, h, CS_SPDY_MAX_HEADERS, &nh);
	if (r < 0)
		return hull_error_set_errno(err, r, "a header block from the server");
	return 0;
}

static int on_control(struct client *c, const struct spdy_frame *f, struct hull_error **err)
{
	const uint8_t *p = f->payload;
	struct stream *st;
	int r;

	if (f->version != SPDY_VERSION)
		return hull_error_set(err, -EPROTO, "a control frame of SPDY version %u",
		                      f->version);
	switch (f->type) {
	case SPDY_SYN_REPLY:
	case SPDY_HEADERS:
		if (f->length < 4)
			return hull_error_set(err, -EPROTO,
			                      "a header frame shorter than its fields");
		r = frame_headers(c, p + 4, f->length - 4, err);
		if (r < 0)
			return r;
		st = stream_find(c, get32(p) & 0x7fffffffu);
		if (!st)
			return hull_error_set(err, -EPROTO, "a reply for stream %u, not ours",
			                      get32(p) & 0x7fffffffu);
		if (f->type == SPDY_SYN_REPLY) {
			if (st->replied)
				return hull_error_set(err, -EPROTO, "stream '%s' replied twice",
				                      st->type);
			st->replied = true;
		}
		if (f->flags & SPDY_FLAG_FIN)
			st->fin = true;
		return 0;
	case SPDY_SYN_STREAM:
		/* The server opens none in these protocols: refused. */
		if (f->length < 10)
			return hull_error_set(err, -EPROTO, "a SYN_STREAM shorter than its fields");
		r = frame_headers(c, p + 10, f->length - 10, err);
		if (r < 0)
			return r;
		if (!c->broken)
			spdy_put_u32_pair(&c->out, SPDY_RST_STREAM, get32(p) & 0x7fffffffu,
			                  SPDY_RST_REFUSED_STREAM);
		return 0;
	case SPDY_RST_STREAM:
		if (f->length != 8)
			return hull_error_set(err, -EPROTO, "a RST_STREAM of %u bytes", f->length);
		st = stream_find(c, get32(p) & 0x7fffffffu);
		if (st) {
			st->rst = st->fin = st->closed = true;
			st->rst_status = get32(p + 4);
		}
		return 0;
	case SPDY_SETTINGS: {
		uint32_t n = f->length >= 4 ? get32(p) : 0;
		if (f->length < 4 || (uint64_t)n * 8 + 4 != f->length)
			return hull_error_set(err, -EPROTO, "a SETTINGS frame of the wrong size");
		for (uint32_t i = 0; i < n; i++) {
			uint32_t v = get32(p + 8 + 8 * i);
			if ((get32(p + 4 + 8 * i) & 0xffffffu) != SPDY_SETTINGS_INITIAL_WINDOW_SIZE)
				continue;
			if (v > 0x7fffffffu)
				return hull_error_set(err, -EPROTO,
				                      "an initial window over 2^31-1");
			for (size_t k = 0; k < c->n_streams; k++)
				c->st[k].window += (int64_t)v - c->initial_window;
			c->initial_window = v;
		}
		return 0;
	}
	case SPDY_PING:
		if (f->length != 4)
			return hull_error_set(err, -EPROTO, "a PING of %u bytes", f->length);
		/* Even ids are the server's; odd ones would answer ours (we send none). */
		if (!(get32(p) & 1) && !c->broken)
			spdy_put_ping(&c->out, get32(p));
		return 0;
	case SPDY_GOAWAY:
		if (f->length < 8)
			return hull_error_set(err, -EPROTO, "a GOAWAY of %u bytes", f->length);
		c->goaway = true;
		c->goaway_status = get32(p + 4);
		return 0;
	case SPDY_WINDOW_UPDATE: {
		if (f->length != 8)
			return hull_error_set(err, -EPROTO, "a WINDOW_UPDATE of %u bytes",
			                      f->length);
		uint32_t id = get32(p) & 0x7fffffffu, delta = get32(p + 4) & 0x7fffffffu;
		if (id == 0)
			c->session_window += delta;
		else if ((st = stream_find(c, id)))
			st->window += delta;
		return 0;
	}
	default:
		return 0; /* unknown control frames are ignored (SPDY/3 2.2.1) */
	}
}

static int client_process(struct client *c, struct hull_error **err)
{
	struct spdy_frame f;
	size_t size;
	int r;

	for (;;) {
		r = spdy_frame_parse(buf_head(&c->in), c->in.len, CS_SPDY_DATA_MAX,
		                     CS_SPDY_CTRL_MAX, &f, &size);
		if (r == 0)
			break;
		if (r < 0)
			return hull_error_set(err, r, "a SPDY frame of %u bytes from the server",
			                      get32(buf_head(&c->in) + 4) & 0xffffffu);
		r = f.control ? on_control(c, &f, err) : on_data(c, &f, err);
		if (r < 0)
			return r;
		buf_consume(&c->in, size);
	}
	if (c->eof && c->in.len > 0)
		return hull_error_set(err, -EPROTO, "the connection closed inside a frame");
	return 0;
}

/* One turn: wait for the server (or room to send), read, process, send. */
static int client_pump(struct client *c, struct hull_error **err)
{
	short rev = 0;
	int r;

	if (c->eof && (c->out.len == 0 || c->broken))
		return 0;
	r = wait_fd(c, (short)((c->eof ? 0 : POLLIN) | (c->out.len ? POLLOUT : 0)), &rev, err);
	if (r < 0)
		return r;
	if (!c->eof && (rev & (POLLIN | POLLHUP | POLLERR))) {
		r = client_read(c, err);
		if (r < 0)
			return r;
		r = client_process(c, err);
		if (r < 0)
			return r;
	}
	return client_flush(c, err);
}

/* ---- frames to the server ---- */

/* Open a stream with headers nv and wait for its SYN_REPLY, as spdystream's CreateStream
 * does. */
static int stream_open(struct client *c, const char *type, const char *const *nv, size_t n,
                       struct stream **ret, struct hull_error **err)
{
	struct stream *st;
	int r;

	if (c->n_streams == MAX_STREAMS)
		return hull_error_set(err, -ENOSPC, "too many streams");
	st = &c->st[c->n_streams++];
	st->id = (uint32_t)(2 * c->n_streams - 1);
	st->type = type;
	st->window = c->initial_window;
	st->out_fd = -1;
	spdy_put_headers_frame(&c->out, &c->out_z, SPDY_SYN_STREAM, st->id, 0, nv, n);
	r = client_flush(c, err);
	while (r == 0 && !st->replied && !st->rst && !c->eof && !c->goaway)
		r = client_pump(c, err);
	if (r < 0)
		return hull_error_prefix(err, "open stream '%s'", type);
	if (st->rst)
		return hull_error_set(err, -ECONNRESET,
		                      "stream '%s' reset by the server (status %u)", type,
		                      st->rst_status);
	if (!st->replied)
		return hull_error_set(err, -ECONNRESET,
		                      "the server %s before replying to stream '%s'",
		                      c->goaway ? "went away" : "closed the connection", type);
	*ret = st;
	return 0;
}

/* Send p on st within the windows (waiting for the server's WINDOW_UPDATEs), then a
 * FIN when fin. A stream the server reset, or a session that ended, takes no more:
 * what is left is dropped, as kubectl's copy stops. */
static int stream_send(struct client *c, struct stream *st, const uint8_t *p, size_t n, bool fin,
                       struct hull_error **err)
{
	size_t sent = 0;
	int r = 0;

	while (r == 0 && (sent < n || fin) && !st->rst && !st->closed && !c->eof && !c->broken) {
		int64_t room = MIN(MIN(st->window, c->session_window), (int64_t)CS_SPDY_DATA_CHUNK);
		if (sent < n && (room <= 0 || c->out.len >= OUT_HIGH)) {
			r = client_pump(c, err);
			continue;
		}
		size_t chunk = MIN(n - sent, (size_t)MAX(room, 0));
		bool last = fin && sent + chunk == n;
		spdy_put_data(&c->out, st->id, last ? SPDY_FLAG_FIN : 0, p + sent, chunk);
		st->window -= (int64_t)chunk;
		c->session_window -= (int64_t)chunk;
		sent += chunk;
		if (last)
			st->closed = true;
		r = client_flush(c, err);
		if (sent == n && !fin)
			break;
	}
	return r < 0 ? hull_error_prefix(err, "send on stream '%s'", st->type) : 0;
}

/* A file's bytes onto st in chunks, then the FIN. */
static int stream_send_file(struct client *c, struct stream *st, const char *path,
                            struct hull_error **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint8_t chunk[CS_SPDY_DATA_CHUNK];
	int r;

	if (fd < 0)
		return hull_error_set_errno(err, -errno, "open '%s'", path);
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return hull_error_set_errno(err, -errno, "read '%s'", path);
		r = stream_send(c, st, chunk, (size_t)n, n == 0, err);
		if (r < 0 || n == 0)
			return r;
	}
}

/* ---- the commands ---- */

static int open_out(const char *dir, const char *name, int *ret, struct hull_error **err)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return hull_error_set_errno(err, -errno, "create '%s'", path);
	*ret = fd;
	return 0;
}

static int parse_resize(const char *s, unsigned *ret_w, unsigned *ret_h)
{
	char *end;
	unsigned long w, h;

	errno = 0;
	w = strtoul(s, &end, 10);
	if (errno || end == s || *end != 'x' || w == 0 || w > 65535)
		return -EINVAL;
	s = end + 1;
	h = strtoul(s, &end, 10);
	if (errno || end == s || *end || h == 0 || h > 65535)
		return -EINVAL;
	*ret_w = (unsigned)w;
	*ret_h = (unsigned)h;
	return 0;
}

static int cmd_exec(int argc, char **argv, struct hull_error **err)
{
	const char *url, *outdir, *stdin_path = NULL;
	bool tty = false, resize = false;
	unsigned width = 0, height = 0;
	_cleanup_close_ int out_fd = -1, err_fd = -1, status_fd = -1;
	struct client c;
	struct stream *errs = NULL, *in = NULL, *out = NULL, *serr = NULL, *rs = NULL;
	int r;

	if (argc < 4)
		return hull_error_set(err, -EINVAL, "usage");
	url = argv[2];
	outdir = argv[3];
	for (int i = 4; i < argc; i++) {
		if (strcmp(argv[i], "--stdin") == 0 && i + 1 < argc) {
			stdin_path = argv[++i];
		} else if (strcmp(argv[i], "--tty") == 0) {
			tty = true;
		} else if (strcmp(argv[i], "--resize") == 0 && i + 1 < argc) {
			if (parse_resize(argv[++i], &width, &height) < 0)
				return hull_error_set(err, -EINVAL, "usage: --resize '%s': not WxH",
				                      argv[i]);
			resize = true;
		} else {
			return hull_error_set(err, -EINVAL, "usage: unknown option '%s'", argv[i]);
		}
	}
	if (resize && !tty)
		return hull_error_set(err, -EINVAL, "usage: --resize needs --tty");
	if ((r = open_out(outdir, "stdout", &out_fd, err)) < 0 ||
	    (r = open_out(outdir, "stderr", &err_fd, err)) < 0 ||
	    (r = open_out(outdir, "status", &status_fd, err)) < 0)
		return r;

	client_init(&c);
	r = client_connect(&c, url, "v4.channel.k8s.io", err);
	/* client-go's order, each stream with its type alone (v4's createStreams). */
	const char *nv_error[] = {"streamtype", "error"}, *nv_stdin[] = {"streamtype", "stdin"},
	           *nv_stdout[] = {"streamtype", "stdout"}, *nv_stderr[] = {"streamtype", "stderr"},
	           *nv_resize[] = {"streamtype", "resize"};
	if (r == 0)
		r = stream_open(&c, "error", nv_error, 1, &errs, err);
	if (r == 0 && errs)
		errs->keep = true;
	if (r == 0 && stdin_path)
		r = stream_open(&c, "stdin", nv_stdin, 1, &in, err);
	if (r == 0)
		r = stream_open(&c, "stdout", nv_stdout, 1, &out, err);
	if (r == 0 && out)
		out->out_fd = out_fd;
	if (r == 0 && !tty)
		r = stream_open(&c, "stderr", nv_stderr, 1, &serr, err);
	if (r == 0 && serr)
		serr->out_fd = err_fd;
	if (r == 0 && tty)
		r = stream_open(&c, "resize", nv_resize, 1, &rs, err);
	if (r == 0 && resize) {
		_cleanup_free_ char *json =
		    xasprintf("{\"Width\":%u,\"Height\":%u}", width, height);
		r = stream_send(&c, rs, (const uint8_t *)json, strlen(json), false, err);
	}
	if (r == 0 && in)
		r = stream_send_file(&c, in, stdin_path, err);
	/* The session ends with the status on the error stream, a FIN on every stream, a
	 * GOAWAY and the close. */
	while (r == 0 && !c.eof)
		r = client_pump(&c, err);

	if (errs && errs->text.len) {
		int w = write_all(status_fd, buf_head(&errs->text), errs->text.len);
		if (w < 0 && r == 0)
			r = hull_error_set_errno(err, w, "write the status");
	}
	if (r == 0) {
		for (size_t i = 0; i < c.n_streams && r == 0; i++)
			if (c.st[i].rst)
				r = hull_error_set(err, -ECONNRESET,
				                   "stream '%s' reset by the server (status %u)",
				                   c.st[i].type, c.st[i].rst_status);
	}
	if (r == 0 && c.goaway && c.goaway_status != SPDY_GOAWAY_OK)
		r = hull_error_set(err, -EPROTO, "GOAWAY with status %u", c.goaway_status);
	if (r == 0 && !errs->fin)
		r = hull_error_set(err, -ECONNRESET,
		                   "the connection closed before the error stream's FIN");
	client_release(&c);
	return r;
}

static int cmd_portforward(int argc, char **argv, struct hull_error **err)
{
	const char *url, *port_s, *request;
	struct client c;
	struct stream *errs = NULL, *data = NULL;
	char *end;
	unsigned long port;
	int r;

	if (argc != 5)
		return hull_error_set(err, -EINVAL, "usage");
	url = argv[2];
	port_s = argv[3];
	request = argv[4];
	errno = 0;
	port = strtoul(port_s, &end, 10);
	if (errno || end == port_s || *end || port == 0 || port > 65535)
		return hull_error_set(err, -EINVAL, "usage: port '%s'", port_s);

	client_init(&c);
	r = client_connect(&c, url, "portforward.k8s.io", err);
	/* client-go's forward(): the error stream, closed for writing at once, then the
	 * data stream, with the same headers but the type; one request, id 0. */
	const char *nv_error[] = {"streamtype", "error", "port", port_s, "requestid", "0"};
	const char *nv_data[] = {"streamtype", "data", "port", port_s, "requestid", "0"};
	if (r == 0)
		r = stream_open(&c, "error", nv_error, 3, &errs, err);
	if (r == 0) {
		errs->keep = true;
		r = stream_send(&c, errs, NULL, 0, true, err);
	}
	if (r == 0)
		r = stream_open(&c, "data", nv_data, 3, &data, err);
	if (r == 0) {
		data->out_fd = STDOUT_FILENO;
		r = stream_send_file(&c, data, request, err);
	}
	/* Until the server is done with both (after the target closed, or failed), and what
	 * we queued is out: closing the connection ends the session, and what the server
	 * did not read yet is lost. */
	while (r == 0 && (!(data->fin && errs->fin) || (c.out.len && !c.broken)) && !c.eof)
		r = client_pump(&c, err);

	if (errs && errs->text.len) {
		/* The forward's failure, as kubectl prints it; it outranks what followed. */
		fprintf(stderr, "%.*s\n", (int)errs->text.len, (const char *)buf_head(&errs->text));
		hull_error_free(*err);
		*err = NULL;
		r = hull_error_set(err, -EIO, "port %lu: the error stream carried a failure", port);
	} else if (r == 0 && (!data->fin || data->rst)) {
		r = data->rst
		        ? hull_error_set(err, -ECONNRESET,
		                         "the data stream was reset by the server (status %u)",
		                         data->rst_status)
		        : hull_error_set(err, -ECONNRESET,
		                         "the connection closed before the data stream's FIN");
	}
	client_release(&c);
	return r;
}

int main(int argc, char **argv)
{
	_cleanup_error_ struct hull_error *err = NULL;
	int r;

	if (argc >= 2 && strcmp(argv[1], "exec") == 0)
		r = cmd_exec(argc, argv, &err);
	else if (argc >= 2 && strcmp(argv[1], "portforward") == 0)
		r = cmd_portforward(argc, argv, &err);
	else
		r = hull_error_set(&err, -EINVAL, "usage");
	if (r == 0)
		return 0;
	if (r == -EINVAL && err && strncmp(err->msg, "usage", 5) == 0) {
		fprintf(stderr,
		        "spdyexec: %s\n"
		        "usage: spdyexec exec URL OUTDIR [--stdin FILE] [--tty] [--resize WxH]\n"
		        "       spdyexec portforward URL PORT REQUEST-FILE\n",
		        err->msg);
		return 2;
	}
	fprintf(stderr, "spdyexec: %s\n", err ? err->msg : strerror(-r));
	return 1;
}
