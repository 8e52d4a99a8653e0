/* SPDX-License-Identifier: MIT */
/* hull-cri's streaming server against real TCP clients on loopback, through the real
 * event loop, with a fake backend: exec over WebSocket (binary v5 with its close
 * signal, base64 v4 with a terminal), exec over SPDY/3.1 (streams, data both ways,
 * window updates, flow control, the exit status, a stream-creation timeout),
 * port-forward over both (two ports, an error on one), backpressure and paused input,
 * and bad input of every kind (unknown and expired tokens, garbage, oversized heads,
 * oversized SPDY frames and header blocks, oversized and unmasked WebSocket frames),
 * each ending its connection while the server goes on.
 *
 * The clients are written here from the protocols' definitions (the WebSocket framing
 * by hand); the SPDY client frames with the codec of cri-stream-internal.h, and what
 * it expects (the server's inflated headers, the statuses) is spelled out here. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "cri-stream-internal.h"
#include "event.h"
#include "util.h"

/* ---- the fake backend ---- */

struct fake {
	struct cri_stream_session *s;
	int starts, gones, unuseds, drains;
	int start_error;
	struct buf in[4]; /* data() per channel */
	int close_inputs[4];
	uint16_t w[16], h[16];
	int n_sizes;
	int opens[8], n_opens;
	int resets[8], n_resets;
	bool has[3];
};

static int fk_start(void *userdata, struct cri_stream_session *s, struct hull_error **err)
{
	struct fake *fk = userdata;
	fk->s = s;
	fk->starts++;
	for (int i = 0; i < 3; i++)
		fk->has[i] = cri_stream_session_has(s, (enum cri_stream_channel)i);
	if (fk->start_error)
		return hull_error_set(err, -fk->start_error, "no such container");
	return 0;
}

static void fk_data(void *userdata, struct cri_stream_session *s, int ch, const uint8_t *p,
                    size_t n)
{
	struct fake *fk = userdata;
	(void)s;
	assert_true(ch >= 0 && ch < 4);
	buf_append(&fk->in[ch], p, n);
}

static void fk_close_input(void *userdata, struct cri_stream_session *s, int ch)
{
	struct fake *fk = userdata;
	(void)s;
	fk->close_inputs[ch]++;
}

static void fk_resize(void *userdata, struct cri_stream_session *s, uint16_t w, uint16_t h)
{
	struct fake *fk = userdata;
	(void)s;
	fk->w[fk->n_sizes] = w;
	fk->h[fk->n_sizes++] = h;
}

static void fk_gone(void *userdata, struct cri_stream_session *s)
{
	struct fake *fk = userdata;
	assert_ptr_equal(s, fk->s);
	fk->gones++;
	fk->s = NULL;
}

static void fk_unused(void *userdata)
{
	struct fake *fk = userdata;
	fk->unuseds++;
}

static void fk_port_open(void *userdata, struct cri_stream_session *s, int ch)
{
	struct fake *fk = userdata;
	(void)s;
	fk->opens[fk->n_opens++] = ch;
}

static void fk_port_reset(void *userdata, struct cri_stream_session *s, int ch)
{
	struct fake *fk = userdata;
	(void)s;
	fk->resets[fk->n_resets++] = ch;
}

static void fk_drain(void *userdata)
{
	struct fake *fk = userdata;
	fk->drains++;
}

static const struct cri_stream_backend backend = {
    .start = fk_start,
    .data = fk_data,
    .close_input = fk_close_input,
    .resize = fk_resize,
    .gone = fk_gone,
    .unused = fk_unused,
    .port_open = fk_port_open,
    .port_reset = fk_port_reset,
};

static void fk_release(struct fake *fk)
{
	for (int i = 0; i < 4; i++)
		buf_release(&fk->in[i]);
}

static bool buf_is(const struct buf *b, const char *s)
{
	return b->len == strlen(s) && (b->len == 0 || memcmp(buf_head(b), s, b->len) == 0);
}

/* ---- the fixture and a TCP client ---- */

struct fixture {
	struct event_loop *loop;
	struct cri_stream_server *srv;
	char *base;
	uint16_t port;
};

struct client {
	int fd;
	struct buf in;
	bool eof;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct hull_error *err = NULL;

	f->loop = event_loop_new();
	f->srv = cri_stream_server_new(f->loop, "127.0.0.1:0", &f->base, &err);
	assert_non_null(f->srv);
	assert_true(strncmp(f->base, "http://127.0.0.1:", 17) == 0);
	f->port = (uint16_t)atoi(f->base + 17);
	assert_true(f->port > 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	cri_stream_server_free(f->srv);
	event_loop_free(f->loop);
	free(f->base);
	free(f);
	return 0;
}

static struct client *client_connect(struct fixture *f, int rcvbuf)
{
	struct client *c = calloc(1, sizeof(*c));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(f->port)};

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(c->fd >= 0);
	if (rcvbuf)
		setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	/* Loopback: connect completes at once (the listener's backlog takes it). */
	assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	fd_set_nonblock(c->fd, true);
	return c;
}

static void client_free(struct client *c)
{
	close(c->fd);
	buf_release(&c->in);
	free(c);
}

/* One turn of the server's loop, then whatever the client can read. */
static void pump(struct fixture *f, struct client *c)
{
	event_loop_once(f->loop, 5);
	while (c && !c->eof) {
		ssize_t n = read(c->fd, buf_reserve(&c->in, 65536), 65536);
		if (n > 0) {
			buf_commit(&c->in, (size_t)n);
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			c->eof = true;
		break;
	}
}

#define PUMP_UNTIL(f, c, cond)                                        \
	do {                                                          \
		for (int _i = 0; _i < 600 && !(cond); _i++)           \
			pump(f, c);                                   \
		if (!(cond))                                          \
			fail_msg("timed out waiting for: %s", #cond); \
	} while (0)

static void client_send(struct fixture *f, struct client *c, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n > 0) {
		ssize_t w = write(c->fd, b, n);
		if (w < 0 && errno == EAGAIN) {
			pump(f, c);
			continue;
		}
		assert_true(w > 0);
		b += w;
		n -= (size_t)w;
	}
}

static void client_sendf(struct fixture *f, struct client *c, const char *fmt, ...)
{
	va_list ap;
	char *s;
	va_start(ap, fmt);
	assert_true(vasprintf(&s, fmt, ap) >= 0);
	va_end(ap);
	client_send(f, c, s, strlen(s));
	free(s);
}

/* The response head (up to the blank line), taken from c->in; *code its status. */
static char *client_response(struct fixture *f, struct client *c, int *code)
{
	const uint8_t *end = NULL;
	char *head;
	size_t n;

	for (int i = 0; i < 600 && !end; i++) {
		pump(f, c);
		if (c->in.len >= 4)
			end = memmem(buf_head(&c->in), c->in.len, "\r\n\r\n", 4);
		if (c->eof && !end)
			break;
	}
	assert_non_null(end);
	n = (size_t)(end - buf_head(&c->in)) + 4;
	head = strndup((const char *)buf_head(&c->in), n);
	buf_consume(&c->in, n);
	assert_true(strncmp(head, "HTTP/1.1 ", 9) == 0);
	*code = atoi(head + 9);
	return head;
}

/* An error response: its code, and the connection closed after it. */
static int client_refused(struct fixture *f, struct client *c)
{
	int code;
	free(client_response(f, c, &code));
	PUMP_UNTIL(f, c, c->eof);
	return code;
}

static const char *path_of(struct fixture *f, const char *url)
{
	assert_true(strncmp(url, f->base, strlen(f->base)) == 0);
	return url + strlen(f->base);
}

/* ---- a WebSocket client: masked frames out, the server's unmasked frames in ---- */

#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" /* RFC 6455's own example */

static void ws_frame(struct fixture *f, struct client *c, uint8_t opcode, const void *p, size_t n,
                     bool masked)
{
	uint8_t h[14], mask[4] = {0x37, 0xfa, 0x21, 0x3d};
	size_t hl = 2;
	uint8_t *m = malloc(n + 1);

	h[0] = (uint8_t)(0x80 | opcode);
	if (n < 126) {
		h[1] = (uint8_t)n;
	} else if (n < 65536) {
		h[1] = 126;
		h[2] = (uint8_t)(n >> 8), h[3] = (uint8_t)n;
		hl = 4;
	} else {
		h[1] = 127;
		for (int i = 0; i < 8; i++)
			h[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
		hl = 10;
	}
	if (masked) {
		h[1] |= 0x80;
		memcpy(h + hl, mask, 4);
		hl += 4;
	}
	for (size_t i = 0; i < n; i++)
		m[i] = (uint8_t)(((const uint8_t *)p)[i] ^ (masked ? mask[i % 4] : 0));
	client_send(f, c, h, hl);
	client_send(f, c, m, n);
	free(m);
}

static void ws_binary(struct fixture *f, struct client *c, uint8_t ch, const char *s)
{
	size_t n = strlen(s);
	uint8_t *m = malloc(n + 1);
	m[0] = ch;
	memcpy(m + 1, s, n);
	ws_frame(f, c, 2, m, n + 1, true);
	free(m);
}

/* The next whole server frame: its opcode and payload (payload freed by the caller). */
static bool ws_next(struct client *c, uint8_t *opcode, uint8_t **payload, size_t *len)
{
	const uint8_t *p = buf_head(&c->in);
	size_t n = c->in.len, hl = 2;
	uint64_t pl;

	if (n < 2)
		return false;
	assert_int_equal(p[0] & 0x70, 0);    /* no RSV bits */
	assert_int_equal(p[1] & 0x80, 0);    /* a server does not mask */
	assert_int_equal(p[0] & 0x80, 0x80); /* and sends whole messages */
	pl = p[1] & 0x7f;
	if (pl == 126) {
		if (n < 4)
			return false;
		pl = (uint64_t)p[2] << 8 | p[3];
		hl = 4;
	} else if (pl == 127) {
		if (n < 10)
			return false;
		pl = 0;
		for (int i = 0; i < 8; i++)
			pl = pl << 8 | p[2 + i];
		hl = 10;
	}
	if (n < hl + pl)
		return false;
	*opcode = p[0] & 0x0f;
	*payload = malloc(pl + 1);
	memcpy(*payload, p + hl, pl);
	(*payload)[pl] = '\0';
	*len = (size_t)pl;
	buf_consume(&c->in, hl + pl);
	return true;
}

/* The next message, pumping until it is there. */
static uint8_t *ws_expect(struct fixture *f, struct client *c, uint8_t opcode, size_t *len)
{
	uint8_t op = 0, *p = NULL;
	for (int i = 0; i < 600 && !ws_next(c, &op, &p, len); i++)
		pump(f, c);
	if (!p)
		fail_msg("no WebSocket message came");
	assert_int_equal(op, opcode);
	return p;
}

static void ws_expect_binary(struct fixture *f, struct client *c, const void *want, size_t n)
{
	size_t len;
	uint8_t *p = ws_expect(f, c, 2, &len);
	assert_int_equal(len, n);
	assert_memory_equal(p, want, n);
	free(p);
}

static void ws_expect_close(struct fixture *f, struct client *c, uint16_t code)
{
	size_t len;
	uint8_t *p = ws_expect(f, c, 8, &len);
	assert_true(len >= 2);
	assert_int_equal((p[0] << 8 | p[1]), code);
	free(p);
	PUMP_UNTIL(f, c, c->eof);
}

static struct client *ws_open(struct fixture *f, const char *url, const char *query,
                              const char *protocol)
{
	struct client *c = client_connect(f, 0);
	char proto_line[256] = "";
	int code;

	if (protocol)
		snprintf(proto_line, sizeof(proto_line), "Sec-WebSocket-Protocol: %s\r\n",
		         protocol);
	client_sendf(f, c,
	             "GET %s%s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
	             "Connection: Upgrade\r\nSec-WebSocket-Key: " WS_KEY "\r\n"
	             "Sec-WebSocket-Version: 13\r\n%s\r\n",
	             path_of(f, url), query, proto_line);
	char *head = client_response(f, c, &code);
	assert_int_equal(code, 101);
	assert_non_null(strstr(head, "\r\nSec-WebSocket-Accept: " WS_ACCEPT "\r\n"));
	assert_non_null(strcasestr(head, "\r\nUpgrade: websocket\r\n"));
	free(head);
	return c;
}

/* The error channel's JSON: status, reason, and the first cause's reason and message. */
static void check_status(const char *json, const char *status, const char *reason,
                         const char *cause_reason, const char *cause_message)
{
	json_object *o = json_tokener_parse(json), *v, *d, *causes, *c0;

	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "status", &v));
	assert_string_equal(json_object_get_string(v), status);
	assert_true(json_object_object_get_ex(o, "metadata", &v));
	if (reason) {
		assert_true(json_object_object_get_ex(o, "reason", &v));
		assert_string_equal(json_object_get_string(v), reason);
		assert_true(json_object_object_get_ex(o, "details", &d));
		assert_true(json_object_object_get_ex(d, "causes", &causes));
		c0 = json_object_array_get_idx(causes, 0);
		assert_non_null(c0);
		if (cause_reason) {
			assert_true(json_object_object_get_ex(c0, "reason", &v));
			assert_string_equal(json_object_get_string(v), cause_reason);
		}
		assert_true(json_object_object_get_ex(c0, "message", &v));
		assert_string_equal(json_object_get_string(v), cause_message);
	} else {
		assert_false(json_object_object_get_ex(o, "reason", &v));
	}
	json_object_put(o);
}

/* ---- WebSocket exec ---- */

static void test_ws_exec(void **state)
{
	struct fixture *f = *state;
	struct fake fk = {0};
	char *url = NULL;
	size_t len;

	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_EXEC, false, true, true,
	                                            true, NULL, 0, &backend, &fk, &url),
	                 0);
	assert_non_null(strstr(url, "/exec/"));
	struct client *c = ws_open(f, url, "?command=sh&command=-c&stdin=1&stdout=1&stderr=1",
	                           "v5.channel.k8s.io, v4.channel.k8s.io");
	assert_int_equal(fk.starts, 1);
	assert_true(fk.has[0] && fk.has[1] && fk.has[2]);

	/* "Connection established": an empty message on stdout. */
	ws_expect_binary(f, c, "\x01", 1);

	ws_binary(f, c, 0, "hi there");
	PUMP_UNTIL(f, c, fk.in[0].len == 8);
	assert_true(buf_is(&fk.in[0], "hi there"));

	cri_stream_session_write(fk.s, CRI_CH_STDOUT, (const uint8_t *)"out", 3);
	cri_stream_session_write(fk.s, CRI_CH_STDERR, (const uint8_t *)"err!", 4);
	ws_expect_binary(f, c, "\x01out", 4);
	ws_expect_binary(f, c,
	                 "\x02"
	                 "err!",
	                 5);

	/* No terminal: resize messages are not for this session. */
	ws_binary(f, c, 4, "{\"Width\":80,\"Height\":24}");
	/* A ping is answered with its payload. */
	ws_frame(f, c, 9, "pp", 2, true);
	uint8_t *p = ws_expect(f, c, 10, &len);
	assert_int_equal(len, 2);
	assert_memory_equal(p, "pp", 2);
	free(p);
	assert_int_equal(fk.n_sizes, 0);

	/* v5: the client closes stdin. */
	ws_frame(f, c, 2, "\xff\x00", 2, true);
	PUMP_UNTIL(f, c, fk.close_inputs[0] == 1);

	/* Exit code 3: the status on the error channel, then the close. */
	cri_stream_session_end(fk.s, 3, NULL);
	p = ws_expect(f, c, 2, &len);
	assert_int_equal(p[0], 3);
	check_status((const char *)p + 1, "Failure", "NonZeroExitCode", "ExitCode", "3");
	assert_non_null(strstr((const char *)p + 1,
	                       "\"message\":\"command terminated with non-zero exit code"));
	free(p);
	ws_expect_close(f, c, 1000);
	PUMP_UNTIL(f, NULL, fk.gones == 1);
	assert_int_equal(fk.unuseds, 0);

	client_free(c);
	free(url);
	fk_release(&fk);
}

static void test_ws_exec_base64_tty(void **state)
{
	struct fixture *f = *state;
	struct fake fk = {0};
	char *url = NULL;
	size_t len;

	/* With a terminal kubelet expects no stderr: it is dropped from the request. */
	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_EXEC, true, true, true, true,
	                                            NULL, 0, &backend, &fk, &url),
	                 0);
	struct client *c = ws_open(f, url, "", "v4.base64.channel.k8s.io");
	assert_true(fk.has[0] && fk.has[1] && !fk.has[2]);
	assert_true(cri_stream_session_tty(fk.s));
	assert_true(cri_stream_session_has(fk.s, CRI_CH_RESIZE));

	uint8_t *p = ws_expect(f, c, 1, &len); /* text: '1' and base64 of nothing */
	assert_int_equal(len, 1);
	assert_int_equal(p[0], '1');
	free(p);

	const char hello[] = "0aGVsbG8="; /* "hello" */
	const char r1[] = "4eyJXaWR0aCI6ODAsIkhlaWdodCI6MjR9eyJ3aWR0aCI6";
	/* {"Width":80,"Height":24}{"width": */
	const char r2[] = "4MTAwLCAiSGVpZ2h0Ijo1MH0="; /* 100, "Height":50} */
	ws_frame(f, c, 1, hello, strlen(hello), true);
	ws_frame(f, c, 1, r1, strlen(r1), true);
	ws_frame(f, c, 2, r2, strlen(r2), true); /* binary works as well as text */
	ws_frame(f, c, 1, "0!!!", 4, true);      /* not base64: dropped */
	PUMP_UNTIL(f, c, fk.n_sizes == 2);
	assert_true(buf_is(&fk.in[0], "hello"));
	assert_int_equal(fk.w[0], 80);
	assert_int_equal(fk.h[0], 24);
	assert_int_equal(fk.w[1], 100);
	assert_int_equal(fk.h[1], 50);

	cri_stream_session_write(fk.s, CRI_CH_STDOUT, (const uint8_t *)"xyz", 3);
	cri_stream_session_write(fk.s, CRI_CH_STDERR, (const uint8_t *)"no", 2); /* not open */
	p = ws_expect(f, c, 1, &len);
	assert_string_equal((char *)p, "1eHl6");
	free(p);

	cri_stream_session_end(fk.s, 0, NULL);
	p = ws_expect(f, c, 1, &len);
	assert_int_equal(p[0], '3');
	uint8_t dec[256];
	size_t dl;
	assert_int_equal(cs_base64_decode((char *)p + 1, len - 1, dec, &dl), 0);
	dec[dl] = '\0';
	assert_string_equal((char *)dec, "{\"metadata\":{},\"status\":\"Success\"}");
	free(p);
	ws_expect_close(f, c, 1000);
	PUMP_UNTIL(f, NULL, fk.gones == 1);

	client_free(c);
	free(url);
	fk_release(&fk);
}

/* ---- a SPDY client ---- */

struct sstream {
	struct buf data;
	bool replied, fin, rst;
	uint32_t window_update;
};

struct sclient {
	struct client *c;
	struct spdy_zstream out_z, in_z;
	struct sstream st[32]; /* by (id - 1) / 2 */
	int goaways;
	uint32_t goaway_status;
	uint32_t pings[4];
	int n_pings;
	uint32_t session_window_update;
};

static struct sstream *sst(struct sclient *sc, uint32_t id)
{
	assert_true(id % 2 == 1 && id < 64);
	return &sc->st[(id - 1) / 2];
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Everything the server sent so far, into the client's picture of its streams. */
static void sc_process(struct sclient *sc)
{
	struct spdy_frame fr;
	size_t size;

	while (spdy_frame_parse(buf_head(&sc->c->in), sc->c->in.len, 1u << 24, 1u << 24, &fr,
	                        &size) == 1) {
		if (!fr.control) {
			struct sstream *s = sst(sc, fr.stream_id);
			assert_true(s->replied);
			assert_false(s->fin);
			buf_append(&s->data, fr.payload, fr.length);
			if (fr.flags & SPDY_FLAG_FIN)
				s->fin = true;
		} else {
			assert_int_equal(fr.version, 3);
			switch (fr.type) {
			case SPDY_SYN_REPLY: {
				/* kubelet's SYN_REPLY carries no headers: the block inflates
				 * (on the connection's one stream) to a count of 0. */
				struct buf hb = {0};
				assert_int_equal(spdy_z_inflate(&sc->in_z, fr.payload + 4,
				                                fr.length - 4, 4096, &hb),
				                 0);
				assert_int_equal(hb.len, 4);
				assert_memory_equal(buf_head(&hb), "\0\0\0\0", 4);
				buf_release(&hb);
				sst(sc, rd32(fr.payload))->replied = true;
				break;
			}
			case SPDY_RST_STREAM:
				sst(sc, rd32(fr.payload))->rst = true;
				break;
			case SPDY_GOAWAY:
				assert_int_equal(fr.length, 8);
				sc->goaways++;
				sc->goaway_status = rd32(fr.payload + 4);
				break;
			case SPDY_PING:
				sc->pings[sc->n_pings++ % 4] = rd32(fr.payload);
				break;
			case SPDY_WINDOW_UPDATE: {
				uint32_t id = rd32(fr.payload) & 0x7fffffff;
				if (id == 0)
					sc->session_window_update += rd32(fr.payload + 4);
				else
					sst(sc, id)->window_update += rd32(fr.payload + 4);
				break;
			}
			default:
				fail_msg("unexpected control frame %u", fr.type);
			}
		}
		buf_consume(&sc->c->in, size);
	}
}

static void sc_pump(struct fixture *f, struct sclient *sc)
{
	pump(f, sc->c);
	sc_process(sc);
}

#define SC_UNTIL(f, sc, cond)                                         \
	do {                                                          \
		for (int _i = 0; _i < 600 && !(cond); _i++)           \
			sc_pump(f, sc);                               \
		if (!(cond))                                          \
			fail_msg("timed out waiting for: %s", #cond); \
	} while (0)

static struct sclient *spdy_open(struct fixture *f, const char *url, const char *versions,
                                 const char *want)
{
	struct sclient *sc = calloc(1, sizeof(*sc));
	int code;

	sc->c = client_connect(f, 0);
	spdy_z_init(&sc->out_z, false);
	spdy_z_init(&sc->in_z, true);
	/* POST, as kubectl's requests reach kubelet through the API server. */
	client_sendf(f, sc->c,
	             "POST %s HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n"
	             "Upgrade: SPDY/3.1\r\n%sContent-Length: 0\r\n\r\n",
	             path_of(f, url), versions);
	char *head = client_response(f, sc->c, &code);
	assert_int_equal(code, 101);
	assert_non_null(strstr(head, "\r\nUpgrade: SPDY/3.1\r\n"));
	char line[128];
	snprintf(line, sizeof(line), "\r\nX-Stream-Protocol-Version: %s\r\n", want);
	assert_non_null(strstr(head, line));
	free(head);
	return sc;
}

static void sc_free(struct sclient *sc)
{
	spdy_z_end(&sc->out_z);
	spdy_z_end(&sc->in_z);
	for (int i = 0; i < 32; i++)
		buf_release(&sc->st[i].data);
	client_free(sc->c);
	free(sc);
}

static void sc_syn(struct fixture *f, struct sclient *sc, uint32_t id, const char *const *nv,
                   size_t n)
{
	struct buf b = {0};
	spdy_put_headers_frame(&b, &sc->out_z, SPDY_SYN_STREAM, id, 0, nv, n);
	client_send(f, sc->c, b.data, b.len);
	buf_release(&b);
}

static void sc_stream(struct fixture *f, struct sclient *sc, uint32_t id, const char *type)
{
	const char *nv[] = {"streamtype", type};
	sc_syn(f, sc, id, nv, 1);
}

static void sc_data(struct fixture *f, struct sclient *sc, uint32_t id, bool fin, const void *p,
                    size_t n)
{
	struct buf b = {0};
	spdy_put_data(&b, id, fin ? SPDY_FLAG_FIN : 0, p, n);
	client_send(f, sc->c, b.data, b.len);
	buf_release(&b);
}

static void sc_u32_pair(struct fixture *f, struct sclient *sc, uint16_t type, uint32_t a,
                        uint32_t v)
{
	struct buf b = {0};
	spdy_put_u32_pair(&b, type, a, v);
	client_send(f, sc->c, b.data, b.len);
	buf_release(&b);
}

/* ---- SPDY exec ---- */

static void test_spdy_exec(void **state)
{
	struct fixture *f = *state;
	struct fake fk = {0};
	char *url = NULL;

	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_EXEC, false, true, true,
	                                            true, NULL, 0, &backend, &fk, &url),
	                 0);
	struct sclient *sc =
	    spdy_open(f, url,
	              "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
	              "X-Stream-Protocol-Version: v3.channel.k8s.io, v2.channel.k8s.io\r\n",
	              "v4.channel.k8s.io");

	/* client-go's order: error, stdin, stdout, stderr. */
	sc_stream(f, sc, 1, "error");
	sc_stream(f, sc, 3, "stdin");
	sc_stream(f, sc, 5, "stdout");
	sc_data(f, sc, 3, false, "early", 5); /* before the session starts: held */
	SC_UNTIL(f, sc, sst(sc, 5)->replied);
	assert_true(sst(sc, 1)->replied && sst(sc, 3)->replied);
	assert_int_equal(fk.starts, 0);
	sc_stream(f, sc, 7, "stderr");
	SC_UNTIL(f, sc, fk.starts == 1 && sst(sc, 7)->replied);
	PUMP_UNTIL(f, sc->c, fk.in[0].len == 5);
	assert_true(buf_is(&fk.in[0], "early"));
	assert_true(fk.has[0] && fk.has[1] && fk.has[2]);
	assert_false(cri_stream_session_has(fk.s, CRI_CH_RESIZE));

	/* 40000 bytes of stdin: delivered, and given back in WINDOW_UPDATEs. */
	uint8_t *big = malloc(40000);
	for (int i = 0; i < 40000; i++)
		big[i] = (uint8_t)i;
	sc_data(f, sc, 3, false, big, 40000);
	SC_UNTIL(f, sc, fk.in[0].len == 40005 && sst(sc, 3)->window_update > 0);
	assert_memory_equal(buf_head(&fk.in[0]) + 5, big, 40000);
	assert_true(sst(sc, 3)->window_update >= 32768);
	assert_true(sc->session_window_update >= 32768);
	free(big);

	cri_stream_session_write(fk.s, CRI_CH_STDOUT, (const uint8_t *)"out1", 4);
	cri_stream_session_write(fk.s, CRI_CH_STDERR, (const uint8_t *)"err1", 4);
	SC_UNTIL(f, sc, sst(sc, 5)->data.len == 4 && sst(sc, 7)->data.len == 4);
	assert_true(buf_is(&sst(sc, 5)->data, "out1"));
	assert_true(buf_is(&sst(sc, 7)->data, "err1"));

	/* PING: the client's (odd) ids are answered. */
	struct buf b = {0};
	spdy_put_ping(&b, 7);
	client_send(f, sc->c, b.data, b.len);
	buf_release(&b);
	SC_UNTIL(f, sc, sc->n_pings == 1);
	assert_int_equal(sc->pings[0], 7);

	/* stdin's FIN: EOF for the process. */
	sc_data(f, sc, 3, true, NULL, 0);
	PUMP_UNTIL(f, sc->c, fk.close_inputs[0] == 1);
	cri_stream_session_close_output(fk.s, CRI_CH_STDOUT);
	SC_UNTIL(f, sc, sst(sc, 5)->fin);

	cri_stream_session_end(fk.s, 3, NULL);
	SC_UNTIL(f, sc, sst(sc, 1)->fin && sc->goaways == 1);
	char *status = strndup((char *)buf_head(&sst(sc, 1)->data), sst(sc, 1)->data.len);
	assert_string_equal(
	    status, "{\"metadata\":{},\"status\":\"Failure\",\"message\":\"command terminated "
	            "with non-zero exit code: exit status 3\",\"reason\":\"NonZeroExitCode\","
	            "\"details\":{\"causes\":[{\"reason\":\"ExitCode\",\"message\":\"3\"}]}}");
	check_status(status, "Failure", "NonZeroExitCode", "ExitCode", "3");
	free(status);
	assert_true(sst(sc, 7)->fin);
	assert_int_equal(sc->goaway_status, 0);
	/* The server shuts its side and waits for ours. */
	PUMP_UNTIL(f, sc->c, sc->c->eof);
	PUMP_UNTIL(f, NULL, fk.gones == 1);

	sc_free(sc);
	free(url);
	fk_release(&fk);
}

static void test_spdy_flow_control(void **state)
{
	struct fixture *f = *state;
	struct fake fk = {0};
	char *url = NULL;
	uint8_t out[100];

	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_ATTACH, false, false, true,
	                                            false, NULL, 0, &backend, &fk, &url),
	                 0);
	struct sclient *sc = spdy_open(f, url, "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n",
	                               "v4.channel.k8s.io");
	sc_stream(f, sc, 1, "error");
	sc_stream(f, sc, 3, "stdout");
	SC_UNTIL(f, sc, fk.starts == 1);

	/* A client that keeps windows: 16 bytes per stream. */
	struct buf b = {0};
	uint32_t id = SPDY_SETTINGS_INITIAL_WINDOW_SIZE, v = 16;
	spdy_put_settings(&b, &id, &v, 1);
	client_send(f, sc->c, b.data, b.len);
	buf_release(&b);
	pump(f, sc->c);
	for (int i = 0; i < 100; i++)
		out[i] = (uint8_t)('a' + i % 26);
	cri_stream_session_write(fk.s, CRI_CH_STDOUT, out, 100);
	SC_UNTIL(f, sc, sst(sc, 3)->data.len == 16);
	for (int i = 0; i < 20; i++)
		sc_pump(f, sc);
	assert_int_equal(sst(sc, 3)->data.len, 16);
	assert_true(cri_stream_session_writable(fk.s));

	sc_u32_pair(f, sc, SPDY_WINDOW_UPDATE, 3, 50);
	SC_UNTIL(f, sc, sst(sc, 3)->data.len == 66);
	sc_u32_pair(f, sc, SPDY_WINDOW_UPDATE, 3, 1000);
	SC_UNTIL(f, sc, sst(sc, 3)->data.len == 100);
	assert_memory_equal(buf_head(&sst(sc, 3)->data), out, 100);

	/* The end waits for the windows too: the error stream's is 16 bytes, its status
	 * 34, so the GOAWAY waits until the client makes room. */
	cri_stream_session_write(fk.s, CRI_CH_STDOUT, out, 20);
	cri_stream_session_end(fk.s, 3, NULL); /* attach: Success whatever the code */
	SC_UNTIL(f, sc, sst(sc, 3)->fin && sst(sc, 1)->data.len == 16);
	for (int i = 0; i < 20; i++)
		sc_pump(f, sc);
	assert_int_equal(sc->goaways, 0);
	assert_false(sst(sc, 1)->fin);
	assert_int_equal(fk.gones, 1); /* gone() came already: the session is not ours */
	sc_u32_pair(f, sc, SPDY_WINDOW_UPDATE, 1, 100);
	SC_UNTIL(f, sc, sst(sc, 1)->fin && sc->goaways == 1);
	assert_int_equal(sst(sc, 3)->data.len, 120);
	assert_true(buf_is(&sst(sc, 1)->data, "{\"metadata\":{},\"status\":\"Success\"}"));
	PUMP_UNTIL(f, NULL, fk.gones == 1);

	sc_free(sc);
	free(url);
	fk_release(&fk);
}

static void test_spdy_tty_v3(void **state)
{
	struct fixture *f = *state;
	struct fake fk = {0};
	char *url = NULL;

	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_EXEC, true, true, true,
	                                            false, NULL, 0, &backend, &fk, &url),
	                 0);
	struct sclient *sc = spdy_open(f, url, "X-Stream-Protocol-Version: v3.channel.k8s.io\r\n",
	                               "v3.channel.k8s.io");
	sc_stream(f, sc, 1, "error");
	sc_stream(f, sc, 3, "stdin");
	sc_stream(f, sc, 5, "stdout");
	sc_stream(f, sc, 7, "bogus"); /* replied, unused */
	SC_UNTIL(f, sc, sst(sc, 7)->replied);
	assert_int_equal(fk.starts, 0); /* v3 with a terminal waits for resize too */
	sc_stream(f, sc, 9, "resize");
	const char r1[] = "{\"Width\":10,\"Height\":20} {\"Width\":30,";
	sc_data(f, sc, 9, false, r1, strlen(r1));
	SC_UNTIL(f, sc, fk.starts == 1 && fk.n_sizes == 1);
	sc_data(f, sc, 9, false, "\"Height\":40}", 12);
	PUMP_UNTIL(f, sc->c, fk.n_sizes == 2);
	assert_int_equal(fk.w[0], 10);
	assert_int_equal(fk.h[0], 20);
	assert_int_equal(fk.w[1], 30);
	assert_int_equal(fk.h[1], 40);
	/* What is not a terminal size ends the resize loop, as in kubelet. */
	sc_data(f, sc, 9, false, "[1,2]{\"Width\":1}", 16);
	for (int i = 0; i < 10; i++)
		sc_pump(f, sc);
	assert_int_equal(fk.n_sizes, 2);

	struct hull_error e = {-EIO, (char *)"boom"};
	cri_stream_session_end(fk.s, 0, &e);
	SC_UNTIL(f, sc, sst(sc, 1)->fin && sc->goaways == 1);
	/* v3: the failure as text. */
	assert_true(buf_is(&sst(sc, 1)->data,
	                   "Internal error occurred: error executing command in container: boom"));
	PUMP_UNTIL(f, NULL, fk.gones == 1);

	sc_free(sc);
	free(url);
	fk_release(&fk);
}

static void test_spdy_stream_timeout(void **state)
{
	struct fixture *f = *state;
	struct fake fk = {0};
	char *url = NULL;

	cri_stream_server_set_timeouts(f->srv, 0, 100);
	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_EXEC, false, true, true,
	                                            false, NULL, 0, &backend, &fk, &url),
	                 0);
	struct sclient *sc = spdy_open(f, url, "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n",
	                               "v4.channel.k8s.io");
	sc_stream(f, sc, 1, "error");
	sc_stream(f, sc, 3, "stdin");
	/* stdout never comes */
	SC_UNTIL(f, sc, sst(sc, 1)->fin && sc->goaways == 1);
	char *status = strndup((char *)buf_head(&sst(sc, 1)->data), sst(sc, 1)->data.len);
	check_status(status, "Failure", "InternalError", NULL,
	             "error executing command in container: timed out waiting for client to "
	             "create streams");
	free(status);
	PUMP_UNTIL(f, sc->c, sc->c->eof);
	/* Never started: the registration comes back unused. */
	PUMP_UNTIL(f, NULL, fk.unuseds == 1);
	assert_int_equal(fk.starts, 0);
	assert_int_equal(fk.gones, 0);
	cri_stream_server_set_timeouts(f->srv, 0, 0);

	sc_free(sc);
	free(url);
	fk_release(&fk);
}

/* ---- port-forward ---- */

static void test_portforward_ws(void **state)
{
	struct fixture *f = *state;
	struct fake fk = {0};
	char *url = NULL;
	int32_t ports[] = {80, 443, 8080};
	const uint16_t *sp;

	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_PORTFORWARD, false, false,
	                                            false, false, ports, 3, &backend, &fk, &url),
	                 0);
	assert_non_null(strstr(url, "/portforward/"));
	/* The client forwards two of the request's three ports, in its own order. */
	struct client *c = ws_open(f, url, "?port=443&port=80", "v4.channel.k8s.io");
	assert_int_equal(cri_stream_session_kind(fk.s), CRI_STREAM_PORTFORWARD);
	assert_int_equal(cri_stream_session_ports(fk.s, &sp), 2);
	assert_int_equal(sp[0], 443);
	assert_int_equal(sp[1], 80);
	/* Each channel opens with its port, little-endian. */
	ws_expect_binary(f, c, "\x00\xbb\x01", 3);
	ws_expect_binary(f, c, "\x01\xbb\x01", 3);
	ws_expect_binary(f, c, "\x02\x50\x00", 3);
	ws_expect_binary(f, c, "\x03\x50\x00", 3);
	assert_int_equal(fk.n_opens, 2);
	assert_int_equal(fk.opens[0], 0);
	assert_int_equal(fk.opens[1], 1);
	assert_int_equal(cri_stream_session_port_of(fk.s, 0), 443);
	assert_int_equal(cri_stream_session_port_of(fk.s, 1), 80);
	assert_int_equal(cri_stream_session_port_of(fk.s, 2), 0);

	ws_binary(f, c, 0, "GET / HTTP/1.0\r\n\r\n");
	ws_binary(f, c, 2, "hello");
	ws_binary(f, c, 1, "ignored"); /* an error channel is the server's */
	ws_binary(f, c, 9, "ignored"); /* no such channel */
	PUMP_UNTIL(f, c, fk.in[1].len == 5);
	assert_true(buf_is(&fk.in[0], "GET / HTTP/1.0\r\n\r\n"));
	assert_true(buf_is(&fk.in[1], "hello"));

	cri_stream_session_write(fk.s, 0, (const uint8_t *)"HTTP/1.0 200 OK", 15);
	cri_stream_session_write(fk.s, 1, (const uint8_t *)"world", 5);
	ws_expect_binary(f, c, "\x00HTTP/1.0 200 OK", 16);
	ws_expect_binary(f, c, "\x02world", 6);

	/* An error on port 80 only. */
	cri_stream_session_port_error(fk.s, 1, "error forwarding port 80 to pod p, uid : refused");
	ws_expect_binary(f, c,
	                 "\x03"
	                 "error forwarding port 80 to pod p, uid : refused",
	                 49);
	cri_stream_session_write(fk.s, 1, (const uint8_t *)"late", 4); /* dropped */
	ws_binary(f, c, 2, "late");
	/* Port 443's target closes: every port is done, the connection closes. */
	cri_stream_session_close_output(fk.s, 0);
	ws_expect_close(f, c, 1000);
	PUMP_UNTIL(f, NULL, fk.gones == 1);
	assert_int_equal(fk.in[1].len, 5);

	client_free(c);
	free(url);
	fk_release(&fk);
}

static void pf_pair(struct fixture *f, struct sclient *sc, uint32_t id, const char *port,
                    const char *rid)
{
	const char *err_nv[] = {"streamtype", "error", "port", port, "requestid", rid};
	const char *data_nv[] = {"streamtype", "data", "port", port, "requestid", rid};
	sc_syn(f, sc, id, err_nv, 3);
	sc_syn(f, sc, id + 2, data_nv, 3);
	/* client-go: "we're not writing to this stream" */
	sc_data(f, sc, id, true, NULL, 0);
}

static void test_portforward_spdy(void **state)
{
	struct fixture *f = *state;
	struct fake fk = {0};
	char *url = NULL;
	int32_t ports[] = {80, 443};

	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_PORTFORWARD, false, false,
	                                            false, false, ports, 2, &backend, &fk, &url),
	                 0);
	struct sclient *sc = spdy_open(f, url, "X-Stream-Protocol-Version: portforward.k8s.io\r\n",
	                               "portforward.k8s.io");
	SC_UNTIL(f, sc, fk.starts == 1);

	pf_pair(f, sc, 1, "80", "0");
	pf_pair(f, sc, 5, "443", "1");
	SC_UNTIL(f, sc, fk.n_opens == 2 && sst(sc, 7)->replied);
	assert_int_equal(fk.opens[0], 0);
	assert_int_equal(fk.opens[1], 1);
	assert_int_equal(cri_stream_session_port_of(fk.s, 0), 80);
	assert_int_equal(cri_stream_session_port_of(fk.s, 1), 443);

	sc_data(f, sc, 3, false, "ping", 4);
	sc_data(f, sc, 7, false, "x", 1);
	PUMP_UNTIL(f, sc->c, fk.in[0].len == 4 && fk.in[1].len == 1);
	assert_true(buf_is(&fk.in[0], "ping"));
	cri_stream_session_write(fk.s, 0, (const uint8_t *)"pong", 4);
	SC_UNTIL(f, sc, sst(sc, 3)->data.len == 4);
	assert_true(buf_is(&sst(sc, 3)->data, "pong"));

	/* 443 fails: the message on its error stream, both its streams closed. */
	cri_stream_session_port_error(fk.s, 1, "error forwarding port 443 to pod p, uid : refused");
	SC_UNTIL(f, sc, sst(sc, 5)->fin && sst(sc, 7)->fin);
	assert_true(buf_is(&sst(sc, 5)->data, "error forwarding port 443 to pod p, uid : refused"));
	assert_int_equal(sst(sc, 7)->data.len, 0);
	/* 80 goes on: its target closes, then the client's side. */
	cri_stream_session_close_output(fk.s, 0);
	SC_UNTIL(f, sc, sst(sc, 3)->fin && sst(sc, 1)->fin);
	assert_int_equal(sst(sc, 1)->data.len, 0);
	sc_data(f, sc, 3, true, "bye", 3);
	PUMP_UNTIL(f, sc->c, fk.close_inputs[0] == 1);
	assert_true(buf_is(&fk.in[0], "pingbye"));

	/* A new connection to 80: a new channel. A port the request did not name is
	 * refused on the pair's error stream; a stream without a port is reset. */
	pf_pair(f, sc, 9, "80", "2");
	pf_pair(f, sc, 13, "8080", "3");
	const char *noport[] = {"streamtype", "data", "requestid", "4"};
	sc_syn(f, sc, 17, noport, 2);
	SC_UNTIL(f, sc, fk.n_opens == 3 && sst(sc, 13)->fin && sst(sc, 17)->rst);
	assert_int_equal(fk.opens[2], 2);
	assert_int_equal(cri_stream_session_port_of(fk.s, 2), 80);
	assert_true(
	    buf_is(&sst(sc, 13)->data, "port 8080 is not forwarded by this port-forward request"));
	assert_true(sst(sc, 15)->fin);

	/* The client resets connection 2. */
	sc_u32_pair(f, sc, SPDY_RST_STREAM, 11, SPDY_RST_CANCEL);
	PUMP_UNTIL(f, sc->c, fk.n_resets == 1);
	assert_int_equal(fk.resets[0], 2);

	/* The client goes: the session is gone. */
	close(sc->c->fd);
	sc->c->fd = -1;
	PUMP_UNTIL(f, NULL, fk.gones == 1);
	sc->c->fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	sc_free(sc);
	free(url);
	fk_release(&fk);
}

/* ---- limits and bad input ---- */

/* A fresh session works: the server survived whatever came before. */
static void check_server_alive(struct fixture *f)
{
	struct fake fk = {0};
	char *url = NULL;

	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_EXEC, false, true, true,
	                                            false, NULL, 0, &backend, &fk, &url),
	                 0);
	struct client *c = ws_open(f, url, "", "v4.channel.k8s.io");
	ws_expect_binary(f, c, "\x01", 1);
	ws_binary(f, c, 0, "ok");
	PUMP_UNTIL(f, c, fk.in[0].len == 2);
	cri_stream_session_end(fk.s, 0, NULL);
	size_t len;
	free(ws_expect(f, c, 2, &len));
	ws_expect_close(f, c, 1000);
	PUMP_UNTIL(f, NULL, fk.gones == 1);
	client_free(c);
	free(url);
	fk_release(&fk);
}

static int refused(struct fixture *f, const char *request, size_t n)
{
	struct client *c = client_connect(f, 0);
	client_send(f, c, request, n ? n : strlen(request));
	int code = client_refused(f, c);
	client_free(c);
	return code;
}

static void test_bad_requests(void **state)
{
	struct fixture *f = *state;
	struct fake fk = {0};
	char *url = NULL, *req;

	assert_int_equal(refused(f, "GET /exec/nosuchtoken HTTP/1.1\r\nHost: x\r\n\r\n", 0), 404);
	assert_int_equal(refused(f, "GET /metrics HTTP/1.1\r\n\r\n", 0), 404);
	assert_int_equal(refused(f, "DELETE /exec/x HTTP/1.1\r\n\r\n", 0), 405);
	assert_int_equal(refused(f, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), 400);
	assert_int_equal(refused(f, "GET / HTTP/1.1\r\n folded: header\r\n\r\n", 0), 400);
	assert_int_equal(refused(f, "GET /exec/x HTTP/2.0\r\n\r\n", 0), 505);
	char *big = malloc(20000);
	memset(big, 'a', 20000);
	memcpy(big, "GET / HTTP/1.1\r\nX-Big: ", 23);
	assert_int_equal(refused(f, big, 20000), 431);
	free(big);
	check_server_alive(f);

	/* Tokens are single use and of one kind; each refusal uses one up. */
	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_EXEC, false, true, true,
	                                            false, NULL, 0, &backend, &fk, &url),
	                 0);
	req = NULL;
	assert_true(asprintf(&req, "GET /attach/%s HTTP/1.1\r\n\r\n", strrchr(url, '/') + 1) > 0);
	assert_int_equal(refused(f, req, 0), 404);
	free(req);
	PUMP_UNTIL(f, NULL, fk.unuseds == 1);
	assert_true(asprintf(&req, "GET %s HTTP/1.1\r\n\r\n", path_of(f, url)) > 0);
	assert_int_equal(refused(f, req, 0), 404); /* used up above */
	free(req);
	free(url);

	/* SPDY without a protocol version (400), with none we speak (403, and the list). */
	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_EXEC, false, true, true,
	                                            false, NULL, 0, &backend, &fk, &url),
	                 0);
	assert_true(asprintf(&req,
	                     "GET %s HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n",
	                     path_of(f, url)) > 0);
	assert_int_equal(refused(f, req, 0), 400);
	free(req);
	free(url);
	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_EXEC, false, true, true,
	                                            false, NULL, 0, &backend, &fk, &url),
	                 0);
	struct client *c = client_connect(f, 0);
	client_sendf(f, c,
	             "GET %s HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
	             "X-Stream-Protocol-Version: v9.channel.k8s.io\r\n\r\n",
	             path_of(f, url));
	int code;
	char *head = client_response(f, c, &code);
	assert_int_equal(code, 403);
	assert_non_null(strstr(head, "X-Accepted-Stream-Protocol-Versions: v4.channel.k8s.io\r\n"));
	free(head);
	PUMP_UNTIL(f, c, c->eof);
	assert_non_null(memmem(buf_head(&c->in), c->in.len, "unable to negotiate protocol", 28));
	client_free(c);
	free(url);

	/* WebSocket: a protocol we do not speak (403), a bad version (400). */
	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_EXEC, false, true, true,
	                                            false, NULL, 0, &backend, &fk, &url),
	                 0);
	assert_true(asprintf(&req,
	                     "GET %s HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive, "
	                     "Upgrade\r\nSec-WebSocket-Key: " WS_KEY "\r\n"
	                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
	                     path_of(f, url)) > 0);
	assert_int_equal(refused(f, req, 0), 403);
	free(req);
	free(url);
	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_PORTFORWARD, false, false,
	                                            false, false, NULL, 0, &backend, &fk, &url),
	                 0);
	assert_true(asprintf(&req,
	                     "GET %s HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	                     "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 8\r\n\r\n",
	                     path_of(f, url)) > 0);
	assert_int_equal(refused(f, req, 0), 400);
	free(req);
	free(url);
	PUMP_UNTIL(f, NULL, fk.unuseds == 5);
	assert_int_equal(fk.starts, 0);
	check_server_alive(f);
	fk_release(&fk);
}

static void test_expired_token(void **state)
{
	struct fixture *f = *state;
	struct fake fk = {0};
	char *url = NULL, *req = NULL;

	cri_stream_server_set_timeouts(f->srv, 50, 0);
	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_EXEC, false, true, true,
	                                            false, NULL, 0, &backend, &fk, &url),
	                 0);
	cri_stream_server_set_timeouts(f->srv, 0, 0);
	PUMP_UNTIL(f, NULL, fk.unuseds == 1);
	assert_true(asprintf(&req, "GET %s HTTP/1.1\r\n\r\n", path_of(f, url)) > 0);
	assert_int_equal(refused(f, req, 0), 404);
	free(req);
	free(url);
	assert_int_equal(fk.starts, 0);

	/* Ports out of range, an unknown kind: refused, nothing kept. */
	int32_t bad[] = {0};
	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_PORTFORWARD, false, false,
	                                            false, false, bad, 1, &backend, &fk, &url),
	                 -EINVAL);
	assert_int_equal(cri_stream_server_register(f->srv, (enum cri_stream_kind)9, false, false,
	                                            false, false, NULL, 0, &backend, &fk, &url),
	                 -EINVAL);
}

static void test_bad_frames(void **state)
{
	struct fixture *f = *state;
	struct fake fk = {0};
	char *url = NULL;

	/* A DATA frame that says 16 MiB. */
	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_EXEC, false, true, true,
	                                            false, NULL, 0, &backend, &fk, &url),
	                 0);
	struct sclient *sc = spdy_open(f, url, "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n",
	                               "v4.channel.k8s.io");
	client_send(f, sc->c, "\x00\x00\x00\x01\x00\xff\xff\xff", 8);
	SC_UNTIL(f, sc, sc->goaways == 1);
	assert_int_equal(sc->goaway_status, SPDY_GOAWAY_PROTOCOL_ERROR);
	PUMP_UNTIL(f, sc->c, sc->c->eof);
	PUMP_UNTIL(f, NULL, fk.unuseds == 1);
	sc_free(sc);
	free(url);

	/* A header block that inflates beyond the cap (20000 bytes of value). */
	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_EXEC, false, true, true,
	                                            false, NULL, 0, &backend, &fk, &url),
	                 0);
	sc = spdy_open(f, url, "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n",
	               "v4.channel.k8s.io");
	char *v = malloc(20001);
	memset(v, 'a', 20000);
	v[20000] = '\0';
	const char *nv[] = {"streamtype", "error", "x-padding", v};
	sc_syn(f, sc, 1, nv, 2);
	free(v);
	SC_UNTIL(f, sc, sc->goaways == 1);
	assert_int_equal(sc->goaway_status, SPDY_GOAWAY_PROTOCOL_ERROR);
	assert_false(sst(sc, 1)->replied);
	PUMP_UNTIL(f, sc->c, sc->c->eof);
	PUMP_UNTIL(f, NULL, fk.unuseds == 2);
	sc_free(sc);
	free(url);

	/* Not zlib at all. */
	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_EXEC, false, true, true,
	                                            false, NULL, 0, &backend, &fk, &url),
	                 0);
	sc = spdy_open(f, url, "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n",
	               "v4.channel.k8s.io");
	client_send(f, sc->c,
	            "\x80\x03\x00\x01\x00\x00\x00\x10\x00\x00\x00\x01\x00\x00\x00\x00"
	            "\x00\x00garbage!",
	            24);
	SC_UNTIL(f, sc, sc->goaways == 1);
	PUMP_UNTIL(f, sc->c, sc->c->eof);
	PUMP_UNTIL(f, NULL, fk.unuseds == 3);
	sc_free(sc);
	free(url);

	/* A WebSocket message of 2 MiB: refused at its first bytes, never buffered. */
	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_EXEC, false, true, true,
	                                            false, NULL, 0, &backend, &fk, &url),
	                 0);
	struct client *c = ws_open(f, url, "", NULL);
	ws_expect_binary(f, c, "\x01", 1);
	client_send(f, c,
	            "\x82\xff\x00\x00\x00\x00\x00\x20\x00\x00\x01\x02\x03\x04"
	            "abcdefgh",
	            22);
	ws_expect_close(f, c, 1009);
	PUMP_UNTIL(f, NULL, fk.gones == 1);
	client_free(c);
	free(url);

	/* An unmasked client frame. */
	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_EXEC, false, true, true,
	                                            false, NULL, 0, &backend, &fk, &url),
	                 0);
	c = ws_open(f, url, "", "channel.k8s.io");
	ws_expect_binary(f, c, "\x01", 1);
	ws_frame(f, c, 2, "\x00hi", 3, false);
	ws_expect_close(f, c, 1002);
	PUMP_UNTIL(f, NULL, fk.gones == 2);
	assert_int_equal(fk.in[0].len, 0);
	client_free(c);
	free(url);

	/* A v5 close signal without its channel. */
	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_EXEC, false, true, true,
	                                            false, NULL, 0, &backend, &fk, &url),
	                 0);
	c = ws_open(f, url, "", "v5.channel.k8s.io");
	ws_expect_binary(f, c, "\x01", 1);
	ws_frame(f, c, 2, "\xff", 1, true);
	ws_expect_close(f, c, 1002);
	PUMP_UNTIL(f, NULL, fk.gones == 3);
	client_free(c);
	free(url);

	check_server_alive(f);
	fk_release(&fk);
}

static void test_backpressure_and_pause(void **state)
{
	struct fixture *f = *state;
	struct fake fk = {0};
	char *url = NULL;
	size_t written = 0, len;

	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_EXEC, false, true, true,
	                                            false, NULL, 0, &backend, &fk, &url),
	                 0);
	struct client *c = ws_open(f, url, "", "v4.channel.k8s.io");
	ws_expect_binary(f, c, "\x01", 1);
	cri_stream_session_set_drain(fk.s, fk_drain, &fk);

	/* The client reads nothing: the kernel's buffers fill, then our 1 MiB. */
	uint8_t *chunk = calloc(1, 65536);
	while (cri_stream_session_writable(fk.s) && written < (12u << 20)) {
		cri_stream_session_write(fk.s, CRI_CH_STDOUT, chunk, 65536);
		written += 65536;
		event_loop_once(f->loop, 0);
	}
	assert_false(cri_stream_session_writable(fk.s));
	assert_int_equal(fk.drains, 0);
	/* Reading it all lets the queue drain: the backend hears of it. */
	size_t got = 0;
	while (got < written) {
		uint8_t *p = ws_expect(f, c, 2, &len);
		assert_int_equal(p[0], 1);
		got += len - 1;
		free(p);
	}
	assert_int_equal(got, written);
	assert_true(fk.drains >= 1);
	assert_true(cri_stream_session_writable(fk.s));
	free(chunk);

	/* Paused input stays with us until resumed. */
	cri_stream_session_set_input_paused(fk.s, true);
	ws_binary(f, c, 0, "wait");
	for (int i = 0; i < 20; i++)
		pump(f, c);
	assert_int_equal(fk.in[0].len, 0);
	cri_stream_session_set_input_paused(fk.s, false);
	PUMP_UNTIL(f, c, fk.in[0].len == 4);

	/* The client just goes away: gone(). */
	close(c->fd);
	c->fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	PUMP_UNTIL(f, NULL, fk.gones == 1);
	client_free(c);
	free(url);
	fk_release(&fk);
}

static void test_start_failure_and_free(void **state)
{
	struct fixture *f = *state;
	struct fake fk = {.start_error = ENOENT}, live = {0}, waiting = {0}, pending = {0};
	char *url = NULL;
	size_t len;

	/* start() fails: the error on the error channel (attach's words), then gone(). */
	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_ATTACH, false, false, true,
	                                            false, NULL, 0, &backend, &fk, &url),
	                 0);
	struct client *c = ws_open(f, url, "", "v4.channel.k8s.io");
	ws_expect_binary(f, c, "\x01", 1);
	uint8_t *p = ws_expect(f, c, 2, &len);
	assert_int_equal(p[0], 3);
	check_status((char *)p + 1, "Failure", "InternalError", NULL,
	             "error attaching to container: no such container");
	free(p);
	ws_expect_close(f, c, 1000);
	PUMP_UNTIL(f, NULL, fk.gones == 1);
	assert_int_equal(fk.starts, 1);
	assert_int_equal(fk.unuseds, 0);
	client_free(c);
	free(url);

	/* The server goes with a live session, one waiting for its streams and a token
	 * nobody used: gone() for the first, unused() for the others. */
	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_EXEC, false, true, true,
	                                            false, NULL, 0, &backend, &live, &url),
	                 0);
	c = ws_open(f, url, "", NULL);
	free(url);
	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_EXEC, false, true, true,
	                                            false, NULL, 0, &backend, &waiting, &url),
	                 0);
	struct sclient *sc = spdy_open(f, url, "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n",
	                               "v4.channel.k8s.io");
	free(url);
	assert_int_equal(cri_stream_server_register(f->srv, CRI_STREAM_PORTFORWARD, false, false,
	                                            false, false, NULL, 0, &backend, &pending,
	                                            &url),
	                 0);
	free(url);
	assert_int_equal(live.starts, 1);
	cri_stream_server_free(f->srv);
	f->srv = NULL;
	assert_int_equal(live.gones, 1);
	assert_int_equal(live.unuseds, 0);
	assert_int_equal(waiting.unuseds, 1);
	assert_int_equal(waiting.starts + waiting.gones, 0);
	assert_int_equal(pending.unuseds, 1);
	PUMP_UNTIL(f, c, c->eof);
	PUMP_UNTIL(f, sc->c, sc->c->eof);
	client_free(c);
	sc_free(sc);
	fk_release(&fk);
	fk_release(&live);
}

static void test_addresses(void **state)
{
	struct event_loop *loop = event_loop_new();
	struct hull_error *err = NULL;
	char *base = NULL;
	struct cri_stream_server *s;
	(void)state;

	s = cri_stream_server_new(loop, "[::1]:0", &base, &err);
	if (s) {
		assert_true(strncmp(base, "http://[::1]:", 13) == 0 && atoi(base + 13) > 0);
		free(base);
		cri_stream_server_free(s);
	} else {
		/* A kernel without IPv6 loopback: that case is skipped. */
		print_message("skipped [::1]: %s\n", err->msg);
		err = hull_error_free(err);
	}
	s = cri_stream_server_new(loop, "0.0.0.0:0", &base, &err);
	assert_non_null(s);
	assert_true(strncmp(base, "http://0.0.0.0:", 15) == 0 && atoi(base + 15) > 0);
	free(base);
	cri_stream_server_free(s);

	const char *bad[] = {"nope",         "127.0.0.1",  ":80",    "[::1]80", "127.0.0.1:99999",
	                     "localhost:80", "1.2.3.4:-1", "[::1:80"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_null(cri_stream_server_new(loop, bad[i], &base, &err));
		assert_int_equal(err->code, -EINVAL);
		err = hull_error_free(err);
	}
	event_loop_free(loop);
}

static void test_http_parser(void **state)
{
	struct http_request r;
	(void)state;

	const char ok[] = "GET /exec/t?a=1 HTTP/1.1\nHost: x\r\nConnection:  keep-alive, Upgrade \n"
	                  "X-Stream-Protocol-Version: v4.channel.k8s.io,v3.channel.k8s.io\n"
	                  "x-stream-protocol-version: channel.k8s.io\n\nextra";
	assert_int_equal(http_parse_request((const uint8_t *)ok, sizeof(ok) - 1, &r),
	                 (ssize_t)(sizeof(ok) - 1 - 5));
	assert_string_equal(r.method, "GET");
	assert_string_equal(r.target, "/exec/t?a=1");
	assert_string_equal(http_header(&r, "connection"), "keep-alive, Upgrade");
	char **l = http_header_list(&r, "X-Stream-Protocol-Version");
	assert_int_equal(strv_length(l), 3);
	assert_string_equal(l[2], "channel.k8s.io");
	strv_free(l);
	http_request_release(&r);

	/* Incomplete, then complete. */
	assert_int_equal(http_parse_request((const uint8_t *)"GET / HTTP/1.1\r\n", 16, &r), 0);
	assert_int_equal(http_parse_request((const uint8_t *)"GET  / HTTP/1.1\r\n\r\n", 19, &r),
	                 -EINVAL);
	assert_int_equal(
	    http_parse_request((const uint8_t *)"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 31, &r),
	    -EINVAL);
	assert_int_equal(
	    http_parse_request((const uint8_t *)"GET / HTTP/1.1\r\nX: a\001b\r\n\r\n", 26, &r),
	    -EINVAL);

	char **v = http_query_values("port=80,443&port=%38%30&x=1&port=%zz&a;b=1&port=+1", "port");
	assert_int_equal(strv_length(v), 3);
	assert_string_equal(v[0], "80,443");
	assert_string_equal(v[1], "80");
	assert_string_equal(v[2], " 1");
	strv_free(v);

	uint8_t out[16];
	size_t n;
	assert_int_equal(cs_base64_decode("aGk=", 4, out, &n), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "hi", 2);
	assert_int_equal(cs_base64_decode("aGk", 3, out, &n), -EINVAL);
	assert_int_equal(cs_base64_decode("aG=k", 4, out, &n), -EINVAL);
	assert_int_equal(cs_base64_decode("aGk=aGk=", 8, out, &n), -EINVAL);
	char acc[29];
	cs_ws_accept(WS_KEY, acc);
	assert_string_equal(acc, WS_ACCEPT);
}

/* The SPDY/3 dictionary is a protocol constant: zlib checks its Adler-32 against the
 * one real clients put in their streams (0xe3c6a7c2, "38 ea e3 c6 a7 c2"). */
static void test_spdy_dictionary(void **state)
{
	(void)state;
	assert_int_equal(adler32(adler32(0, NULL, 0), spdy_dictionary, SPDY_DICTIONARY_SIZE),
	                 0xe3c6a7c2);
	struct spdy_zstream z;
	struct buf b = {0};
	spdy_z_init(&z, false);
	spdy_z_deflate(&z, (const uint8_t *)"\0\0\0\0", 4, &b);
	spdy_z_end(&z);
	assert_true(b.len > 6);
	assert_memory_equal(buf_head(&b) + 2, "\xe3\xc6\xa7\xc2", 4); /* FDICT's id */
	buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_http_parser),
	    cmocka_unit_test(test_spdy_dictionary),
	    cmocka_unit_test(test_addresses),
	    cmocka_unit_test_setup_teardown(test_ws_exec, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ws_exec_base64_tty, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_spdy_exec, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_spdy_flow_control, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_spdy_tty_v3, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_spdy_stream_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_portforward_ws, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_portforward_spdy, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expired_token, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_frames, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backpressure_and_pause, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_start_failure_and_free, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
