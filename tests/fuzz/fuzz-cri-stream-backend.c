/* SPDX-License-Identifier: MIT */
/* What the streaming server's fuzzers share: a server without sockets with one token
 * of each shape registered under a fixed name (so that inputs can name them), a fake
 * backend that answers as a runtime would (echoes stdin, ends on EOF, fails, pauses,
 * errors a port when the bytes say so), and the client requests each fuzzer prefixes
 * to its input.
 *
 * Built with -DFUZZ_MAKE_SEEDS it is instead the seed generator of the three corpora:
 * compile it with the sources of FUZZ_CRI_STREAM (tests/tests.mk) and -lprotobuf-c
 * -ljson-c -lwslay -lz -lcrypto, run it with tests/fuzz/corpus as its argument; it
 * writes valid sessions of every mode (and a few refused requests), framed with the
 * server's own SPDY codec. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cri-stream-internal.h"
#include "log.h"

/* Shared with fuzz-cri-stream-{http,spdy,ws}.c (which declare them too). */
#define FUZZ_STREAM_MODES 6
struct cri_stream_server *fuzz_stream_server(void);
char *fuzz_stream_request(int mode, bool websocket);
void fuzz_stream_run(const uint8_t *prefix, size_t np, const uint8_t *data, size_t n);

static int fz_start(void *userdata, struct cri_stream_session *s, struct hull_error **err)
{
	(void)userdata;
	if (cri_stream_session_kind(s) != CRI_STREAM_PORTFORWARD)
		cri_stream_session_write(s, CRI_CH_STDOUT, (const uint8_t *)"ready\n", 6);
	(void)err;
	return 0;
}

static int out_channel(struct cri_stream_session *s, int ch)
{
	return cri_stream_session_kind(s) == CRI_STREAM_PORTFORWARD ? ch : CRI_CH_STDOUT;
}

/* The first byte of what the client sends steers the runtime. */
static void fz_data(void *userdata, struct cri_stream_session *s, int ch, const uint8_t *p,
                    size_t n)
{
	struct hull_error e = {-EIO, (char *)"the runtime failed"};
	(void)userdata;

	switch (p[0]) {
	case 'E':
		cri_stream_session_end(s, 0, &e);
		return;
	case 'Q':
		cri_stream_session_end(s, n > 1 ? p[1] : 1, NULL);
		return;
	case 'X':
		cri_stream_session_port_error(s, ch, "error forwarding port: refused");
		return;
	case 'C':
		cri_stream_session_close_output(s, out_channel(s, ch));
		return;
	case 'P':
		cri_stream_session_set_input_paused(s, true);
		break;
	case 'R':
		cri_stream_session_set_input_paused(s, false);
		break;
	case 'B': {
		/* A burst past the high-water mark. */
		static uint8_t big[256 << 10];
		for (int i = 0; i < 6; i++)
			cri_stream_session_write(s, out_channel(s, ch), big, sizeof(big));
		(void)cri_stream_session_writable(s);
		return;
	}
	default:
		break;
	}
	cri_stream_session_write(s, out_channel(s, ch), p, n);
	if (ch == CRI_CH_STDIN && cri_stream_session_kind(s) != CRI_STREAM_PORTFORWARD)
		cri_stream_session_write(s, CRI_CH_STDERR, p, MIN(n, (size_t)4));
}

static void fz_close_input(void *userdata, struct cri_stream_session *s, int ch)
{
	(void)userdata;
	if (cri_stream_session_kind(s) == CRI_STREAM_PORTFORWARD) {
		cri_stream_session_close_output(s, ch);
	} else {
		cri_stream_session_close_output(s, CRI_CH_STDOUT);
		cri_stream_session_end(s, 7, NULL);
	}
}

static void fz_resize(void *userdata, struct cri_stream_session *s, uint16_t w, uint16_t h)
{
	char line[32];
	(void)userdata;
	snprintf(line, sizeof(line), "%ux%u\n", w, h);
	cri_stream_session_write(s, CRI_CH_STDOUT, (const uint8_t *)line, strlen(line));
}

static void fz_gone(void *userdata, struct cri_stream_session *s)
{
	(void)userdata, (void)s;
}

static void fz_unused(void *userdata)
{
	(void)userdata;
}

static void fz_port_open(void *userdata, struct cri_stream_session *s, int ch)
{
	(void)userdata;
	if (cri_stream_session_port_of(s, ch) == 443)
		cri_stream_session_port_error(s, ch, "error forwarding port 443: refused");
	else
		cri_stream_session_write(s, ch, (const uint8_t *)"220 hello\r\n", 11);
}

static void fz_port_reset(void *userdata, struct cri_stream_session *s, int ch)
{
	(void)userdata, (void)s, (void)ch;
}

static const struct cri_stream_backend fz_backend = {
    .start = fz_start,
    .data = fz_data,
    .close_input = fz_close_input,
    .resize = fz_resize,
    .gone = fz_gone,
    .unused = fz_unused,
    .port_open = fz_port_open,
    .port_reset = fz_port_reset,
};

/* Each mode: a registration and the client's way in. */
struct fuzz_mode {
	const char *token;
	enum cri_stream_kind kind;
	bool tty, in, out, err;
	int n_ports;
	const char *spdy_version; /* X-Stream-Protocol-Version */
	const char *ws_protocol;  /* Sec-WebSocket-Protocol, "" for none */
	const char *query;
};

static const int32_t fz_ports[] = {80, 443};

static const struct fuzz_mode modes[FUZZ_STREAM_MODES] = {
    {"exec", CRI_STREAM_EXEC, false, true, true, true, 0, "v4.channel.k8s.io", "v5.channel.k8s.io",
     "?command=sh&stdin=1&stdout=1&stderr=1"},
    {"exec-tty", CRI_STREAM_EXEC, true, true, true, false, 0, "v3.channel.k8s.io",
     "v4.base64.channel.k8s.io", "?tty=1&input=1&output=1"},
    {"attach", CRI_STREAM_ATTACH, false, false, true, true, 0, "v2.channel.k8s.io",
     "channel.k8s.io", ""},
    {"exec-v1", CRI_STREAM_EXEC, false, true, false, false, 0, "channel.k8s.io", "", ""},
    {"pf", CRI_STREAM_PORTFORWARD, false, false, false, false, 2, "portforward.k8s.io",
     "v4.channel.k8s.io", "?port=80&port=443"},
    {"pf-any", CRI_STREAM_PORTFORWARD, false, false, false, false, 0, "portforward.k8s.io",
     "v4.base64.channel.k8s.io", "?port=8080,9090"},
};

struct cri_stream_server *fuzz_stream_server(void)
{
	struct cri_stream_server *srv = cri_stream_server_new(NULL, NULL, NULL, NULL);

	log_set_level(LOG_LEVEL_ERROR); /* every input ends a session with a warning */
	for (int i = 0; i < FUZZ_STREAM_MODES; i++) {
		const struct fuzz_mode *m = &modes[i];
		if (cri_stream_server_register_token(srv, m->token, m->kind, m->tty, m->in, m->out,
		                                     m->err, m->n_ports ? fz_ports : NULL,
		                                     (size_t)m->n_ports, &fz_backend, NULL,
		                                     NULL) != 0)
			abort();
	}
	return srv;
}

char *fuzz_stream_request(int mode, bool websocket)
{
	const struct fuzz_mode *m = &modes[mode % FUZZ_STREAM_MODES];
	const char *kind = m->kind == CRI_STREAM_EXEC     ? "exec"
	                   : m->kind == CRI_STREAM_ATTACH ? "attach"
	                                                  : "portforward";

	if (websocket)
		return xasprintf(
		    "GET /%s/%s%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
		    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		    "Sec-WebSocket-Version: 13\r\n%s%s%s\r\n",
		    kind, m->token, m->query, *m->ws_protocol ? "Sec-WebSocket-Protocol: " : "",
		    m->ws_protocol, *m->ws_protocol ? "\r\n" : "");
	return xasprintf("POST /%s/%s%s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
	                 "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: %s\r\n\r\n",
	                 kind, m->token, m->query, m->spdy_version);
}

void fuzz_stream_run(const uint8_t *prefix, size_t np, const uint8_t *data, size_t n)
{
	struct cri_stream_server *srv = fuzz_stream_server();
	uint8_t *in = xmalloc(np + n + 1), *out = NULL;
	size_t out_len = 0;

	if (np)
		memcpy(in, prefix, np);
	if (n)
		memcpy(in + np, data, n);
	cri_stream_server_feed(srv, in, np + n, &out, &out_len);
	free(out);
	free(in);
	cri_stream_server_free(srv);
}

#ifdef FUZZ_MAKE_SEEDS
#include <openssl/evp.h>
#include <sys/stat.h>

static const char *corpus;

/* A seed, named by its SHA-1 as libFuzzer names its own. */
static void seed(const char *fuzzer, const void *p, size_t n)
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int ml;
	char name[41], *path;
	FILE *f;

	EVP_Digest(p, n, md, &ml, EVP_sha1(), NULL);
	for (int i = 0; i < 20; i++)
		sprintf(name + 2 * i, "%02x", md[i]);
	path = xasprintf("%s/%s", corpus, fuzzer);
	mkdir(path, 0755);
	free(path);
	path = xasprintf("%s/%s/%s", corpus, fuzzer, name);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n)
		abort();
	fclose(f);
	free(path);
}

static void seed_buf(const char *fuzzer, struct buf *b)
{
	seed(fuzzer, buf_head(b), b->len);
	buf_release(b);
}

/* ---- SPDY inputs: a mode byte, then the client's frames ---- */

struct spdy_seed {
	struct buf b;
	struct spdy_zstream z;
};

static void ss_begin(struct spdy_seed *s, uint8_t mode)
{
	memset(s, 0, sizeof(*s));
	buf_append(&s->b, &mode, 1);
	spdy_z_init(&s->z, false);
}

static void ss_syn(struct spdy_seed *s, uint32_t id, uint8_t flags, const char *const *nv, size_t n)
{
	spdy_put_headers_frame(&s->b, &s->z, SPDY_SYN_STREAM, id, flags, nv, n);
}

static void ss_type(struct spdy_seed *s, uint32_t id, const char *type)
{
	const char *nv[] = {"streamtype", type};
	ss_syn(s, id, 0, nv, 1);
}

static void ss_data(struct spdy_seed *s, uint32_t id, uint8_t flags, const char *p)
{
	spdy_put_data(&s->b, id, flags, (const uint8_t *)p, strlen(p));
}

static void ss_end(struct spdy_seed *s)
{
	spdy_z_end(&s->z);
	seed_buf("cri-stream-spdy", &s->b);
}

static void spdy_seeds(void)
{
	struct spdy_seed s;
	uint32_t wid = SPDY_SETTINGS_INITIAL_WINDOW_SIZE, wv = 8;

	/* exec: every stream, stdin both ways, a ping, window updates, EOF. */
	ss_begin(&s, 0);
	ss_type(&s, 1, "error");
	ss_type(&s, 3, "stdin");
	ss_data(&s, 3, 0, "early");
	ss_type(&s, 5, "stdout");
	ss_type(&s, 7, "stderr");
	ss_data(&s, 3, 0, "echo hello\n");
	spdy_put_ping(&s.b, 1);
	spdy_put_u32_pair(&s.b, SPDY_WINDOW_UPDATE, 5, 4096);
	spdy_put_u32_pair(&s.b, SPDY_WINDOW_UPDATE, 0, 4096);
	ss_data(&s, 3, SPDY_FLAG_FIN, "");
	ss_end(&s);

	/* exec with a terminal (v3): resize, a tiny window, an exit code. */
	ss_begin(&s, 1);
	spdy_put_settings(&s.b, &wid, &wv, 1);
	ss_type(&s, 1, "error");
	ss_type(&s, 3, "stdin");
	ss_type(&s, 5, "stdout");
	ss_type(&s, 7, "resize");
	ss_data(&s, 7, 0, "{\"Width\":80,\"Height\":24}{\"Width\":");
	ss_data(&s, 7, 0, "100,\"Height\":50}");
	ss_data(&s, 3, 0, "ls\n");
	spdy_put_u32_pair(&s.b, SPDY_WINDOW_UPDATE, 5, 100);
	ss_data(&s, 3, 0, "Q\x03");
	ss_end(&s);

	/* attach (v2): HEADERS, an unknown control frame, a reset, GOAWAY. */
	ss_begin(&s, 2);
	ss_type(&s, 1, "error");
	ss_type(&s, 3, "stdout");
	ss_type(&s, 5, "stderr");
	{
		const char *nv[] = {"x-extra", "1"};
		spdy_put_headers_frame(&s.b, &s.z, SPDY_HEADERS, 3, 0, nv, 1);
	}
	spdy_put_control(&s.b, 10, 0, (const uint8_t *)"\0\0\0\0", 4);
	spdy_put_u32_pair(&s.b, SPDY_RST_STREAM, 5, SPDY_RST_CANCEL);
	spdy_put_u32_pair(&s.b, SPDY_GOAWAY, 0, SPDY_GOAWAY_OK);
	ss_type(&s, 7, "stdin");
	ss_end(&s);

	/* port-forward: two pairs, data, an error, a reset, a FIN. */
	ss_begin(&s, 4);
	for (int i = 0; i < 2; i++) {
		const char *port = i ? "443" : "80", *rid = i ? "1" : "0";
		const char *e[] = {"streamtype", "error", "port", port, "requestid", rid};
		const char *d[] = {"streamtype", "data", "port", port, "requestid", rid};
		ss_syn(&s, 1 + 4 * (uint32_t)i, 0, e, 3);
		ss_data(&s, 1 + 4 * (uint32_t)i, SPDY_FLAG_FIN, "");
		ss_syn(&s, 3 + 4 * (uint32_t)i, 0, d, 3);
	}
	ss_data(&s, 3, 0, "GET / HTTP/1.0\r\n\r\n");
	ss_data(&s, 7, 0, "X");
	spdy_put_u32_pair(&s.b, SPDY_RST_STREAM, 7, SPDY_RST_CANCEL);
	ss_data(&s, 3, SPDY_FLAG_FIN, "bye");
	ss_end(&s);

	/* port-forward to any port, without requestIDs (old clients), a bad port. */
	ss_begin(&s, 5);
	{
		const char *e[] = {"streamtype", "error", "port", "8080"};
		const char *d[] = {"streamtype", "data", "port", "8080"};
		const char *bad[] = {"streamtype", "data", "port", "0"};
		ss_syn(&s, 1, 0, e, 2);
		ss_syn(&s, 3, 0, d, 2);
		ss_data(&s, 3, 0, "hello");
		ss_syn(&s, 5, 0, bad, 2);
		ss_data(&s, 3, 0, "C");
	}
	ss_end(&s);
}

/* ---- WebSocket inputs: a mode byte, then the client's (masked) frames ---- */

static void ws_put(struct buf *b, uint8_t first, const void *p, size_t n)
{
	static const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
	uint8_t h[8] = {first};
	size_t hl = 2;

	if (n < 126) {
		h[1] = (uint8_t)(0x80 | n);
	} else {
		h[1] = 0x80 | 126;
		h[2] = (uint8_t)(n >> 8);
		h[3] = (uint8_t)n;
		hl = 4;
	}
	buf_append(b, h, hl);
	buf_append(b, mask, 4);
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)(((const uint8_t *)p)[i] ^ mask[i % 4]);
		buf_append(b, &c, 1);
	}
}

static void ws_bin(struct buf *b, uint8_t ch, const char *s)
{
	struct buf m = {0};
	buf_append(&m, &ch, 1);
	buf_append(&m, s, strlen(s));
	ws_put(b, 0x82, m.data, m.len);
	buf_release(&m);
}

static void ws_text(struct buf *b, const char *s)
{
	ws_put(b, 0x81, s, strlen(s));
}

static void ws_seeds(void)
{
	struct buf b = {0};
	uint8_t mode;

	/* v5 exec: stdin, a ping, the close signal for stdin, a close. */
	mode = 0;
	buf_append(&b, &mode, 1);
	ws_bin(&b, 0, "echo hi\n");
	ws_put(&b, 0x89, "ping", 4);
	ws_bin(&b, 4, "{\"Width\":1,\"Height\":2}");
	ws_put(&b, 0x82, "\xff\x00", 2);
	ws_put(&b, 0x88, "\x03\xe8", 2);
	seed_buf("cri-stream-ws", &b);

	/* base64 with a terminal: stdin, resize split over two messages, junk. */
	mode = 1;
	buf_append(&b, &mode, 1);
	ws_text(&b, "0bHMK");                                         /* "ls\n" */
	ws_text(&b, "4eyJXaWR0aCI6ODAsIkhlaWdodCI6MjR9eyJ3aWR0aCI6"); /* {"Width":80,... */
	ws_text(&b, "4MTAwLCAiSGVpZ2h0Ijo1MH0=");                     /* 100, "Height":50} */
	ws_text(&b, "0!!");
	ws_text(&b, "0UQc="); /* "Q\x07": exit 7 */
	seed_buf("cri-stream-ws", &b);

	/* exec with no subprotocol (v1, stdin only): a fragmented message, a channel out
	 * of range, a failure (its text on the error channel). */
	mode = 3;
	buf_append(&b, &mode, 1);
	ws_put(&b, 0x02, "\x00par", 4);
	ws_put(&b, 0x80, "tial", 4);
	ws_bin(&b, 9, "nowhere");
	ws_bin(&b, 0, "E");
	seed_buf("cri-stream-ws", &b);

	/* port-forward: data on both ports, the error channel, an error. */
	mode = 4;
	buf_append(&b, &mode, 1);
	ws_bin(&b, 0, "GET / HTTP/1.0\r\n\r\n");
	ws_bin(&b, 1, "not the client's");
	ws_bin(&b, 2, "X");
	ws_bin(&b, 0, "C");
	seed_buf("cri-stream-ws", &b);

	/* port-forward in base64, a big message, a pause and a resume. */
	mode = 5;
	buf_append(&b, &mode, 1);
	ws_text(&b, "0UA=="); /* "P" */
	ws_text(&b, "0aGk="); /* "hi" */
	ws_text(&b, "2Ug=="); /* "R" */
	{
		char big[600];
		memset(big, 'A', sizeof(big) - 1);
		big[0] = '0';
		big[sizeof(big) - 1] = '\0';
		ws_text(&b, big);
	}
	seed_buf("cri-stream-ws", &b);
}

static void http_seeds(void)
{
	for (int m = 0; m < FUZZ_STREAM_MODES; m++) {
		for (int ws = 0; ws < 2; ws++) {
			char *r = fuzz_stream_request(m, ws);
			seed("cri-stream-http", r, strlen(r));
			free(r);
		}
	}
	static const char *const raw[] = {
	    "GET /exec/nosuchtoken HTTP/1.1\r\nHost: x\r\n\r\n",
	    "DELETE /attach/attach HTTP/1.1\r\n\r\n",
	    "GET http://127.0.0.1:10010/exec/exec?stdin=1 HTTP/1.1\r\nConnection: Upgrade\r\n"
	    "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v9.channel.k8s.io, v4.channel.k8s.io"
	    "\r\n\r\n",
	    "GET /exec/exec HTTP/1.1\nConnection: upgrade\nUpgrade: spdy/3.1\n\n",
	    "POST /portforward/pf?port=99999 HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody",
	    "GET / HTTP/1.1\r\n folded: line\r\n\r\n",
	    "GET /exec/exec HTTP/2.0\r\n\r\n",
	    "GET /portforward/pf-any HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: x\r\nSec-WebSocket-Version: 13\r\n\r\n",
	};
	for (size_t i = 0; i < ELEMENTSOF(raw); i++)
		seed("cri-stream-http", raw[i], strlen(raw[i]));
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS-DIR\n", argv[0]);
		return 2;
	}
	corpus = argv[1];
	http_seeds();
	spdy_seeds();
	ws_seeds();
	return 0;
}
#endif
