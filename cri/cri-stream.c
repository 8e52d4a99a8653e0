/* SPDX-License-Identifier: MIT */
/* hull-cri's streaming server: the listener, the tokens (single use, expiring on a
 * timerfd), the connections (read, parse the request, upgrade, write with bounded
 * queues, close gracefully) and the sessions the backend sees. The protocols are in
 * cri-stream-spdy.c and cri-stream-ws.c, the HTTP parser in cri-stream-http.c.
 *
 * Lifetimes: a connection and its session are freed only from the sweep, a deferred
 * call of the event loop, so no callback ever returns into freed memory; the backend's
 * gone() and unused() are called from there too (or from cri_stream_server_free()). */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "cri-stream-internal.h"
#include "log.h"
#include "macros.h"
#include "util.h"

#define READ_CHUNK (64u << 10)
#define READ_PER_WAKEUP (512u << 10)

struct cri_stream_server {
	struct event_loop *loop;
	int listen_fd;
	int timer_fd;
	uint64_t timer_at;
	char *base;
	struct cs_reg *regs; /* in expiry order (one TTL for all) */
	size_t n_regs;
	struct cs_conn *conns;
	size_t n_conns;
	bool sweep_due;
	bool freeing; /* no sweep is deferred any more: free() releases everything */
	uint32_t token_ttl_ms, stream_timeout_ms;
};

static const char *kind_name(enum cri_stream_kind k)
{
	switch (k) {
	case CRI_STREAM_EXEC:
		return "exec";
	case CRI_STREAM_ATTACH:
		return "attach";
	case CRI_STREAM_PORTFORWARD:
		return "portforward";
	}
	return "?";
}

uint64_t cs_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void server_sweep(void *userdata);

static void server_schedule(struct cri_stream_server *srv)
{
	if (srv->sweep_due || srv->freeing)
		return;
	srv->sweep_due = true;
	if (srv->loop)
		event_defer(srv->loop, server_sweep, srv);
}

/* ---- registrations ---- */

static void reg_free(struct cs_reg *r)
{
	if (!r)
		return;
	free(r->ports);
	free(r);
}

/* Hand userdata back: the registration never reached start(). */
static void reg_unused(struct cs_reg *r)
{
	if (r->backend.unused)
		r->backend.unused(r->userdata);
	reg_free(r);
}

static struct cs_reg *reg_consume(struct cri_stream_server *srv, const char *token)
{
	size_t n = strlen(token);

	for (struct cs_reg **pp = &srv->regs; *pp; pp = &(*pp)->next) {
		struct cs_reg *r = *pp;
		/* Security: the token is the only credential; compared in constant time. */
		if (strlen(r->token) == n && CRYPTO_memcmp(r->token, token, n) == 0) {
			*pp = r->next;
			r->next = NULL;
			srv->n_regs--;
			return r;
		}
	}
	return NULL;
}

int cri_stream_server_register_token(struct cri_stream_server *s, const char *token,
                                     enum cri_stream_kind kind, bool tty, bool want_stdin,
                                     bool want_stdout, bool want_stderr, const int32_t *ports,
                                     size_t n_ports, const struct cri_stream_backend *backend,
                                     void *userdata, char **ret_url)
{
	struct cs_reg *r, **tail;

	if (kind != CRI_STREAM_EXEC && kind != CRI_STREAM_ATTACH && kind != CRI_STREAM_PORTFORWARD)
		return -EINVAL;
	if (strlen(token) == 0 || strlen(token) >= sizeof(r->token) || strchr(token, '/'))
		return -EINVAL;
	if (n_ports > CS_MAX_PORTS)
		return -EINVAL;
	for (size_t i = 0; i < n_ports; i++)
		if (ports[i] < 1 || ports[i] > 65535)
			return -EINVAL;
	if (s->n_regs >= CS_MAX_REGS)
		return -EBUSY;

	r = xcalloc(1, sizeof(*r));
	snprintf(r->token, sizeof(r->token), "%s", token);
	r->kind = kind;
	r->tty = tty;
	r->want[CRI_CH_STDIN] = want_stdin;
	r->want[CRI_CH_STDOUT] = want_stdout;
	/* kubelet's remotecommand.NewOptions: a terminal has no separate stderr, and a
	 * client with tty opens no stderr stream. */
	r->want[CRI_CH_STDERR] = want_stderr && !tty;
	if (n_ports) {
		r->ports = xcalloc(n_ports, sizeof(uint16_t));
		for (size_t i = 0; i < n_ports; i++)
			r->ports[i] = (uint16_t)ports[i];
	}
	r->n_ports = n_ports;
	if (backend)
		r->backend = *backend;
	r->userdata = userdata;
	r->expires = cs_now_ms() + s->token_ttl_ms;
	for (tail = &s->regs; *tail; tail = &(*tail)->next)
		;
	*tail = r;
	s->n_regs++;
	if (ret_url)
		*ret_url = xasprintf("%s/%s/%s", s->base, kind_name(kind), r->token);
	cs_server_rearm(s);
	return 0;
}

int cri_stream_server_register(struct cri_stream_server *s, enum cri_stream_kind kind, bool tty,
                               bool want_stdin, bool want_stdout, bool want_stderr,
                               const int32_t *ports, size_t n_ports,
                               const struct cri_stream_backend *backend, void *userdata,
                               char **ret_url)
{
	uint8_t rnd[32];
	_cleanup_close_ int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read_all(fd, rnd, sizeof(rnd));
	if (n < 0)
		return (int)n;
	if (n != (ssize_t)sizeof(rnd))
		return -EIO;
	/* 256 bits, base64url: as kubelet's request cache, only longer. */
	_cleanup_free_ char *token = cs_base64_encode(rnd, sizeof(rnd), true, false);
	return cri_stream_server_register_token(s, token, kind, tty, want_stdin, want_stdout,
	                                        want_stderr, ports, n_ports, backend, userdata,
	                                        ret_url);
}

/* ---- connections: I/O ---- */

static size_t session_queued(const struct cri_stream_session *s)
{
	size_t n = s->conn->out.len;
	if (s->spdy)
		n += cs_spdy_pending(s);
	return n;
}

static void conn_update_events(struct cs_conn *c)
{
	uint32_t ev = 0;

	if (c->fd < 0 || c->dead)
		return;
	if (!c->peer_eof && (!c->in_paused || c->state != CS_UPGRADED))
		ev |= EPOLLIN;
	if (c->out.len > 0)
		ev |= EPOLLOUT;
	if (ev != c->events && event_mod(c->srv->loop, c->fd, ev) == 0)
		c->events = ev;
}

static void conn_kill(struct cs_conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	if (c->sess)
		c->sess->ended = true;
	server_schedule(c->srv);
}

/* Write what is queued; a connection whose last bytes are out is shut for writing and
 * lingers until the client's FIN, so that closing it does not reset what it has not
 * read yet. */
static void conn_flush(struct cs_conn *c)
{
	while (c->fd >= 0 && !c->dead && c->out.len > 0) {
		ssize_t w = send(c->fd, buf_head(&c->out), c->out.len, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				conn_kill(c);
			break;
		}
		buf_consume(&c->out, (size_t)w);
	}
	if (c->state == CS_CLOSING && c->out.len == 0 && !c->dead &&
	    (!c->sess || !c->sess->spdy || cs_spdy_pending(c->sess) == 0)) {
		if (c->fd < 0 || c->peer_eof) {
			conn_kill(c);
		} else {
			shutdown(c->fd, SHUT_WR);
			c->state = CS_LINGER;
			c->deadline = cs_now_ms() + CS_LINGER_MS;
			cs_server_rearm(c->srv);
		}
	}
	conn_update_events(c);
}

/* The backend's drain callback when the queue went below the mark. */
static void conn_after_io(struct cs_conn *c)
{
	struct cri_stream_session *s = c->sess;

	if (!s || s->ended || !s->full || session_queued(s) >= CS_OUT_HIGH)
		return;
	s->full = false;
	if (s->drain_fn)
		s->drain_fn(s->drain_userdata);
}

static void conn_respond(struct cs_conn *c, int code, const char *extra, const char *body)
{
	http_put_error(&c->out, code, extra, body);
	c->state = CS_CLOSING;
	c->deadline = cs_now_ms() + 2 * CS_LINGER_MS;
	cs_server_rearm(c->srv);
	conn_flush(c);
}

/* ---- the request ---- */

static bool ieq(const char *a, const char *b)
{
	return a && strcasecmp(a, b) == 0;
}

static bool contains_ci(const char *h, const char *needle)
{
	return h && strcasestr(h, needle) != NULL;
}

/* wsstream.IsWebSocketRequest: "Upgrade: websocket" and "upgrade" among the tokens of
 * the first Connection header. */
static bool is_websocket(const struct http_request *r)
{
	const char *conn = http_header(r, "Connection");

	if (!ieq(http_header(r, "Upgrade"), "websocket") || !conn)
		return false;
	for (const char *p = conn; *p;) {
		const char *comma = strchr(p, ','), *e = comma ? comma : p + strlen(p);
		while (p < e && (*p == ' ' || *p == '\t'))
			p++;
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e - p == 7 && strncasecmp(p, "upgrade", 7) == 0)
			return true;
		p = comma ? comma + 1 : e + strlen(e);
	}
	return false;
}

struct proto_name {
	const char *name;
	int version;
	bool base64;
};

/* What kubelet's remotecommand and portforward servers accept, per transport. */
static const struct proto_name spdy_exec_protos[] = {
    {"v5.channel.k8s.io", 5, false}, {"v4.channel.k8s.io", 4, false},
    {"v3.channel.k8s.io", 3, false}, {"v2.channel.k8s.io", 2, false},
    {"channel.k8s.io", 1, false},
};
static const struct proto_name spdy_pf_protos[] = {{"portforward.k8s.io", 0, false}};
static const struct proto_name ws_exec_protos[] = {
    {"v5.channel.k8s.io", 5, false},       {"v4.channel.k8s.io", 4, false},
    {"v4.base64.channel.k8s.io", 4, true}, {"channel.k8s.io", 1, false},
    {"base64.channel.k8s.io", 1, true},    {"", 1, false},
};
static const struct proto_name ws_pf_protos[] = {
    {"v4.channel.k8s.io", 0, false},
    {"v4.base64.channel.k8s.io", 0, true},
    {"", 0, false},
};

/* httpstream.Handshake and wsstream's handshake: the first of the client's protocols
 * that the server has. */
static const struct proto_name *negotiate(char **client, const struct proto_name *server, size_t n)
{
	for (char **c = client; *c; c++)
		for (size_t i = 0; i < n; i++)
			if (strcmp(*c, server[i].name) == 0)
				return &server[i];
	return NULL;
}

static char *proto_list(const struct proto_name *p, size_t n, bool go_style)
{
	struct buf b = {0};
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_append(&b, go_style ? " " : ", ", go_style ? 1 : 2);
		buf_append(&b, p[i].name, strlen(p[i].name));
	}
	buf_append(&b, "", 1);
	return (char *)b.data;
}

/* The ports a port-forward session serves: those of ?port= (kubelet's V4Options
 * syntax: repeated and comma-separated, each 1..65535), which must be among the
 * registered ones, else the registered ones. Returns an HTTP error code with *msg. */
static int session_ports(struct cri_stream_session *s, const char *query, char **msg)
{
	_cleanup_strv_free_ char **vals = http_query_values(query, "port");
	uint16_t q[CS_MAX_PORTS];
	size_t nq = 0;

	for (char **v = vals; *v; v++) {
		if (!**v) {
			*msg = xstrdup("query parameter \"port\" cannot be empty");
			return 400;
		}
		for (char *p = *v, *e; p; p = e ? e + 1 : NULL) {
			e = strchr(p, ',');
			_cleanup_free_ char *one = e ? xstrndup(p, (size_t)(e - p)) : xstrdup(p);
			char *end;
			errno = 0;
			unsigned long port = strtoul(one, &end, 10);
			if (!*one || *end || errno || port > 65535 || one[0] == '-' ||
			    one[0] == '+') {
				*msg = xasprintf("unable to parse '%s' as a port", one);
				return 400;
			}
			if (port < 1) {
				*msg = xasprintf("port '%s' must be > 0", one);
				return 400;
			}
			bool known = s->reg->n_ports == 0;
			for (size_t i = 0; i < s->reg->n_ports; i++)
				known = known || s->reg->ports[i] == port;
			if (!known) {
				*msg = xasprintf("port %lu is not among the ports of this request",
				                 port);
				return 403;
			}
			if (nq == CS_MAX_PORTS) {
				*msg = xstrdup("too many ports");
				return 400;
			}
			q[nq++] = (uint16_t)port;
		}
	}
	if (nq) {
		s->ports = xcalloc(nq, sizeof(uint16_t));
		memcpy(s->ports, q, nq * sizeof(uint16_t));
		s->n_ports = nq;
	} else if (s->reg->n_ports) {
		s->ports = xcalloc(s->reg->n_ports, sizeof(uint16_t));
		memcpy(s->ports, s->reg->ports, s->reg->n_ports * sizeof(uint16_t));
		s->n_ports = s->reg->n_ports;
	}
	return 0;
}

/* The query of an exec or attach names the streams again (stdin=1 as kubectl, or
 * input=1 as the API server's kubelet URLs): the registered request decides; a
 * disagreement is only noted. */
static void check_query(const struct cs_reg *r, const char *query)
{
	static const char *const names[][2] = {
	    {"stdin", "input"}, {"stdout", "output"}, {"stderr", "error"}, {"tty", "tty"}};

	for (size_t i = 0; i < ELEMENTSOF(names); i++) {
		bool want = i < 3 ? r->want[i] : r->tty;
		for (size_t k = 0; k < 2; k++) {
			_cleanup_strv_free_ char **v = http_query_values(query, names[i][k]);
			if (v[0] && (strcmp(v[0], "1") == 0) != want)
				log_debug(
				    "cri: stream: %s: the query's %s=%s differs from the request",
				    kind_name(r->kind), names[i][k], v[0]);
		}
	}
}

static void conn_process(struct cs_conn *c);

static void handle_request(struct cs_conn *c, const struct http_request *req)
{
	const char *target = req->target, *q;
	_cleanup_free_ char *path = NULL;
	const char *query = "";
	enum cri_stream_kind kind;
	const char *token;
	struct cs_reg *reg;
	_cleanup_free_ char *msg = NULL;

	/* An absolute-form target names the path after the authority. */
	if (strncasecmp(target, "http://", 7) == 0 || strncasecmp(target, "https://", 8) == 0) {
		const char *slash = strchr(strstr(target, "//") + 2, '/');
		target = slash ? slash : "/";
	}
	q = strchr(target, '?');
	path = q ? xstrndup(target, (size_t)(q - target)) : xstrdup(target);
	if (q)
		query = q + 1;

	if (strncmp(path, "/exec/", 6) == 0)
		kind = CRI_STREAM_EXEC, token = path + 6;
	else if (strncmp(path, "/attach/", 8) == 0)
		kind = CRI_STREAM_ATTACH, token = path + 8;
	else if (strncmp(path, "/portforward/", 13) == 0)
		kind = CRI_STREAM_PORTFORWARD, token = path + 13;
	else
		return conn_respond(c, 404, "", "404 page not found");
	if (!*token || strchr(token, '/'))
		return conn_respond(c, 404, "", "404 page not found");
	/* kubelet routes GET and POST (kubectl POSTs through the API server). */
	if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "POST") != 0)
		return conn_respond(c, 405, "Allow: GET, POST\r\n", "405: Method Not Allowed");

	/* The token is used up by this request whatever becomes of it, as kubelet's
	 * cache.Consume() does. */
	reg = reg_consume(c->srv, token);
	if (!reg) {
		log_debug("cri: stream: %s: unknown or expired token", kind_name(kind));
		return conn_respond(c, 404, "", "404 page not found");
	}
	if (reg->kind != kind) {
		reg_unused(reg);
		return conn_respond(c, 404, "", "404 page not found");
	}
	const char *cl = http_header(req, "Content-Length");
	if ((cl && strcmp(cl, "0") != 0) || http_header(req, "Transfer-Encoding")) {
		reg_unused(reg);
		return conn_respond(c, 400, "", "a request body is not accepted here");
	}
	if (kind != CRI_STREAM_PORTFORWARD)
		check_query(reg, query);

	struct cri_stream_session *s = xcalloc(1, sizeof(*s));
	s->conn = c;
	s->reg = reg;
	int code = 0;
	const struct proto_name *pn = NULL;
	struct buf resp = {0};

	if (kind == CRI_STREAM_PORTFORWARD) {
		code = session_ports(s, query, &msg);
		s->ports_any = code == 0 && s->n_ports == 0;
	}
	if (code) {
		/* as reported below */
	} else if (is_websocket(req)) {
		const char *key = http_header(req, "Sec-WebSocket-Key");
		const char *protos = http_header(req, "Sec-WebSocket-Protocol");
		_cleanup_strv_free_ char **offered = NULL;
		const struct proto_name *table =
		    kind == CRI_STREAM_PORTFORWARD ? ws_pf_protos : ws_exec_protos;
		size_t nt = kind == CRI_STREAM_PORTFORWARD ? ELEMENTSOF(ws_pf_protos)
		                                           : ELEMENTSOF(ws_exec_protos);

		/* x/net/websocket's checks, in its order. */
		if (strcmp(req->method, "GET") != 0) {
			code = 405, msg = xstrdup("a WebSocket handshake must be a GET");
		} else if (!ieq(http_header(req, "Sec-WebSocket-Version"), "13")) {
			code = 400, msg = xstrdup("missing or bad WebSocket Version");
		} else if (!key || !*key) {
			code = 400, msg = xstrdup("mismatch challenge/response");
		} else {
			if (protos && *protos) {
				offered = xcalloc(1, sizeof(char *));
				for (const char *p = protos; p;) {
					const char *comma = strchr(p, ','),
					           *e = comma ? comma : p + strlen(p);
					while (p < e && (*p == ' ' || *p == '\t'))
						p++;
					while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
						e--;
					strv_push(&offered, xstrndup(p, (size_t)(e - p)));
					p = comma ? comma + 1 : NULL;
				}
			} else {
				offered = xcalloc(2, sizeof(char *));
				offered[0] = xstrdup("");
			}
			pn = negotiate(offered, table, nt);
			if (!pn) {
				_cleanup_free_ char *sup = proto_list(table, nt - 1, false);
				code = 403;
				msg = xasprintf("requested protocol(s) are not supported: '%s'; "
				                "supports %s",
				                protos ? protos : "", sup);
			} else if (kind == CRI_STREAM_PORTFORWARD && s->n_ports == 0) {
				code = 400, msg = xstrdup("query parameter \"port\" is required");
			}
		}
		if (!code) {
			char accept[29];
			cs_ws_accept(key, accept);
			_cleanup_free_ char *r =
			    xasprintf("HTTP/1.1 101 Switching Protocols\r\n"
			              "Upgrade: websocket\r\n"
			              "Connection: Upgrade\r\n"
			              "Sec-WebSocket-Accept: %s\r\n"
			              "%s%s%s"
			              "\r\n",
			              accept, *pn->name ? "Sec-WebSocket-Protocol: " : "", pn->name,
			              *pn->name ? "\r\n" : "");
			buf_append(&resp, r, strlen(r));
			s->proto = CS_PROTO_WS;
		}
	} else {
		_cleanup_strv_free_ char **offered =
		    http_header_list(req, "X-Stream-Protocol-Version");
		const struct proto_name *table =
		    kind == CRI_STREAM_PORTFORWARD ? spdy_pf_protos : spdy_exec_protos;
		size_t nt = kind == CRI_STREAM_PORTFORWARD ? ELEMENTSOF(spdy_pf_protos)
		                                           : ELEMENTSOF(spdy_exec_protos);

		if (!offered[0]) {
			code = 400;
			msg = xstrdup("unable to upgrade: X-Stream-Protocol-Version is required");
		} else if (!(pn = negotiate(offered, table, nt))) {
			_cleanup_free_ char *cli = NULL, *sup = proto_list(table, nt, true);
			struct buf hb = {0}, cb = {0};
			for (size_t i = 0; i < nt; i++) {
				_cleanup_free_ char *h = xasprintf(
				    "X-Accepted-Stream-Protocol-Versions: %s\r\n", table[i].name);
				buf_append(&hb, h, strlen(h));
			}
			buf_append(&hb, "", 1);
			for (char **o = offered; *o; o++) {
				if (o != offered)
					buf_append(&cb, " ", 1);
				buf_append(&cb, *o, strlen(*o));
			}
			buf_append(&cb, "", 1);
			cli = (char *)cb.data;
			_cleanup_free_ char *body =
			    xasprintf("unable to upgrade: unable to negotiate protocol: client "
			              "supports [%s], server accepts [%s]",
			              cli, sup);
			conn_respond(c, 403, (const char *)hb.data, body);
			buf_release(&hb);
			free(s->ports);
			free(s);
			reg_unused(reg);
			return;
		} else if (!contains_ci(http_header(req, "Connection"), "upgrade") ||
		           !contains_ci(http_header(req, "Upgrade"), "spdy/3.1")) {
			code = 400;
			msg = xstrdup("unable to upgrade: missing upgrade headers in request");
		}
		if (!code) {
			_cleanup_free_ char *r = xasprintf("HTTP/1.1 101 Switching Protocols\r\n"
			                                   "Connection: Upgrade\r\n"
			                                   "Upgrade: SPDY/3.1\r\n"
			                                   "X-Stream-Protocol-Version: %s\r\n"
			                                   "\r\n",
			                                   pn->name);
			buf_append(&resp, r, strlen(r));
			s->proto = CS_PROTO_SPDY;
		}
	}
	if (code) {
		log_debug("cri: stream: %s: refused (%d): %s", kind_name(kind), code, msg);
		conn_respond(c, code, "", msg);
		free(s->ports);
		free(s);
		reg_unused(reg);
		return;
	}

	s->version = pn->version;
	s->base64 = pn->base64;
	c->sess = s;
	c->state = CS_UPGRADED;
	c->deadline = 0;
	cs_server_rearm(c->srv);
	buf_append(&c->out, resp.data, resp.len);
	buf_release(&resp);
	log_debug("cri: stream: %s session over %s%s%s", kind_name(kind),
	          s->proto == CS_PROTO_SPDY ? "SPDY/3.1" : "WebSocket", *pn->name ? ", " : "",
	          pn->name);
	if (s->proto == CS_PROTO_SPDY)
		cs_spdy_open(s);
	else
		cs_ws_open(s);
}

static void conn_process(struct cs_conn *c)
{
	if (c->feeding) {
		c->feed_due = true;
		return;
	}
	c->feeding = true;
	c->feed_due = false;
	while (!c->dead) {
		if (c->state == CS_HEAD) {
			struct http_request req;
			if (c->in.len == 0)
				break;
			ssize_t r = http_parse_request(buf_head(&c->in), c->in.len, &req);
			if (r == 0)
				break;
			if (r < 0) {
				log_debug("cri: stream: a malformed request (%s)",
				          strerror((int)-r));
				buf_release(&c->in);
				if (r == -EMSGSIZE)
					conn_respond(c, 431, "",
					             "431 Request Header Fields Too Large");
				else if (r == -EPROTONOSUPPORT)
					conn_respond(c, 505, "", "unsupported protocol version");
				else
					conn_respond(c, 400, "", "400 Bad Request");
				break;
			}
			buf_consume(&c->in, (size_t)r);
			handle_request(c, &req);
			http_request_release(&req);
			continue;
		}
		if (c->state == CS_UPGRADED || (c->state == CS_CLOSING && c->sess &&
		                                c->sess->spdy && cs_spdy_pending(c->sess) > 0)) {
			/* SPDY goes on reading after its end for the WINDOW_UPDATEs that let its
			 * last bytes out. */
			if (c->in_paused && c->state == CS_UPGRADED)
				break;
			if (c->sess->proto == CS_PROTO_SPDY)
				cs_spdy_feed(c->sess);
			else
				cs_ws_feed(c->sess);
			break;
		}
		buf_consume(&c->in, c->in.len); /* closing: what the client sends is dropped */
		break;
	}
	c->feeding = false;
	if (c->feed_due && !c->dead)
		server_schedule(c->srv);
}

/* EOF or a read error: the client is gone. */
static void conn_lost(struct cs_conn *c)
{
	c->peer_eof = true;
	if (c->state == CS_CLOSING && c->out.len > 0)
		return; /* it may still read: what is queued goes out, then the close */
	conn_kill(c);
}

static void on_conn_event(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct cs_conn *c = userdata;
	size_t total = 0;
	(void)loop;

	if (c->dead)
		return;
	if (revents & EPOLLOUT)
		conn_flush(c);
	if ((revents & (EPOLLHUP | EPOLLERR)) && c->in_paused && c->state == CS_UPGRADED) {
		conn_lost(c);
	} else if ((revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->peer_eof) {
		while (!c->dead && !c->peer_eof && !(c->in_paused && c->state == CS_UPGRADED) &&
		       total < READ_PER_WAKEUP) {
			ssize_t n = read(fd, buf_reserve(&c->in, READ_CHUNK), READ_CHUNK);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN)
				break;
			if (n <= 0) {
				conn_lost(c);
				break;
			}
			buf_commit(&c->in, (size_t)n);
			total += (size_t)n;
			conn_process(c);
			conn_flush(c);
		}
	}
	conn_flush(c);
	conn_after_io(c);
}

static struct cs_conn *conn_new(struct cri_stream_server *srv, int fd)
{
	struct cs_conn *c = xcalloc(1, sizeof(*c));

	c->srv = srv;
	c->fd = fd;
	c->state = CS_HEAD;
	c->deadline = cs_now_ms() + CS_HEAD_TIMEOUT_MS;
	c->next = srv->conns;
	srv->conns = c;
	srv->n_conns++;
	return c;
}

static void session_release(struct cri_stream_session *s)
{
	struct cs_reg *r = s->reg;

	if (s->released)
		return;
	s->released = true;
	s->ended = true;
	if (s->start_called) {
		if (r->backend.gone)
			r->backend.gone(r->userdata, s);
	} else if (r->backend.unused) {
		r->backend.unused(r->userdata);
	}
}

static void conn_free(struct cs_conn *c)
{
	struct cri_stream_server *srv = c->srv;
	struct cri_stream_session *s = c->sess;

	for (struct cs_conn **pp = &srv->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			srv->n_conns--;
			break;
		}
	if (s) {
		if (s->spdy)
			cs_spdy_free(s);
		if (s->ws)
			cs_ws_free(s);
		if (s->resize_tok)
			json_tokener_free(s->resize_tok);
		reg_free(s->reg);
		free(s->ports);
		free(s);
	}
	if (c->fd >= 0) {
		if (srv->loop)
			event_del(srv->loop, c->fd);
		close(c->fd);
	}
	buf_release(&c->in);
	buf_release(&c->out);
	free(c);
}

static void server_sweep(void *userdata)
{
	struct cri_stream_server *srv = userdata;

	srv->sweep_due = false;
	for (struct cs_conn *c = srv->conns; c; c = c->next) {
		if (c->sess && c->sess->ended && !c->sess->released)
			session_release(c->sess);
		if (c->feed_due && !c->dead && !c->in_paused) {
			conn_process(c);
			conn_flush(c);
		}
		if (!c->dead)
			conn_after_io(c);
	}
	for (struct cs_conn **pp = &srv->conns; *pp;) {
		struct cs_conn *c = *pp;
		if (c->dead && (!c->sess || c->sess->released)) {
			conn_free(c); /* unlinks c: *pp is the next one now */
			continue;
		}
		pp = &c->next;
	}
}

static void on_accept(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct cri_stream_server *srv = userdata;
	(void)loop, (void)revents;

	for (int i = 0; i < 64; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (cfd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_warn("cri: stream: accept: %m");
			return;
		}
		if (srv->n_conns >= CS_MAX_CONNS) {
			log_warn("cri: stream: %u connections already: refusing one", CS_MAX_CONNS);
			close(cfd);
			continue;
		}
		struct cs_conn *c = conn_new(srv, cfd);
		if (event_add(srv->loop, cfd, EPOLLIN, on_conn_event, c) < 0) {
			log_warn("cri: stream: watch a connection: %m");
			c->fd = -1;
			close(cfd);
			conn_free(c);
			continue;
		}
		c->events = EPOLLIN;
		cs_server_rearm(srv);
	}
}

/* ---- deadlines ---- */

void cs_server_rearm(struct cri_stream_server *srv)
{
	uint64_t next = srv->regs ? srv->regs->expires : 0;
	struct itimerspec its = {0};

	for (struct cs_conn *c = srv->conns; c; c = c->next) {
		uint64_t d = c->dead ? 0 : c->deadline;
		if (c->sess && c->sess->spdy && !c->dead) {
			uint64_t sd = cs_spdy_deadline(c->sess);
			if (sd && (!d || sd < d))
				d = sd;
		}
		if (d && (!next || d < next))
			next = d;
	}
	if (next == srv->timer_at || !srv->loop)
		return;
	srv->timer_at = next;
	if (next) {
		its.it_value.tv_sec = (time_t)(next / 1000u);
		its.it_value.tv_nsec = (long)(next % 1000u) * 1000000L;
	}
	timerfd_settime(srv->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void on_timer(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct cri_stream_server *srv = userdata;
	uint64_t ticks, now = cs_now_ms();
	(void)loop, (void)revents;

	(void)!read(fd, &ticks, sizeof(ticks));
	srv->timer_at = 0;
	while (srv->regs && srv->regs->expires <= now) {
		struct cs_reg *r = srv->regs;
		srv->regs = r->next;
		srv->n_regs--;
		log_debug("cri: stream: a %s token expired unused", kind_name(r->kind));
		reg_unused(r);
	}
	for (struct cs_conn *c = srv->conns; c; c = c->next) {
		if (c->dead)
			continue;
		if (c->deadline && c->deadline <= now) {
			if (c->state == CS_HEAD)
				log_debug("cri: stream: a connection sent no request in time");
			else if (c->state != CS_LINGER)
				log_debug(
				    "cri: stream: a client did not read its last bytes in time");
			conn_kill(c);
			continue;
		}
		if (c->sess && c->sess->spdy)
			cs_spdy_timer(c->sess, now);
		conn_flush(c);
	}
	cs_server_rearm(srv);
}

/* ---- sessions: for the protocols ---- */

void cs_session_start(struct cri_stream_session *s)
{
	struct cs_reg *r = s->reg;
	_cleanup_error_ struct hull_error *err = NULL;
	int rc = 0;

	if (s->start_called || s->ended)
		return;
	s->start_called = true;
	if (r->backend.start)
		rc = r->backend.start(r->userdata, s, &err);
	if (s->ended)
		return; /* the backend ended it from start() */
	if (rc < 0) {
		if (!err)
			hull_error_set_errno(&err, rc, "start");
		cri_stream_session_end(s, 0, err);
		return;
	}
	s->started = true;
}

static bool deliverable(const struct cri_stream_session *s)
{
	return s->started && !s->ended;
}

void cs_deliver_data(struct cri_stream_session *s, int channel, const uint8_t *p, size_t n)
{
	if (n && deliverable(s) && s->reg->backend.data)
		s->reg->backend.data(s->reg->userdata, s, channel, p, n);
}

void cs_deliver_close_input(struct cri_stream_session *s, int channel)
{
	if (deliverable(s) && s->reg->backend.close_input)
		s->reg->backend.close_input(s->reg->userdata, s, channel);
}

void cs_deliver_port_open(struct cri_stream_session *s, int channel)
{
	if (deliverable(s) && s->reg->backend.port_open)
		s->reg->backend.port_open(s->reg->userdata, s, channel);
}

void cs_deliver_port_reset(struct cri_stream_session *s, int channel)
{
	if (deliverable(s) && s->reg->backend.port_reset)
		s->reg->backend.port_reset(s->reg->userdata, s, channel);
}

/* One remotecommand.TerminalSize as Go's json.Decoder fills it: an object whose
 * "Width" and "Height" (any case) are integers of 0..65535 (null leaves 0). false:
 * a decode error, which ends kubelet's resize loop. */
static bool resize_from_json(json_object *o, uint16_t *w, uint16_t *h)
{
	*w = *h = 0;
	if (!json_object_is_type(o, json_type_object))
		return false;
	json_object_object_foreach(o, key, val)
	{
		uint16_t *dst = strcasecmp(key, "width") == 0    ? w
		                : strcasecmp(key, "height") == 0 ? h
		                                                 : NULL;
		if (!dst || !val)
			continue;
		if (!json_object_is_type(val, json_type_int))
			return false;
		int64_t v = json_object_get_int64(val);
		if (v < 0 || v > 65535)
			return false;
		*dst = (uint16_t)v;
	}
	return true;
}

void cs_deliver_resize(struct cri_stream_session *s, const uint8_t *p, size_t n)
{
	if (!deliverable(s) || !s->reg->tty || s->resize_dead)
		return;
	if (!s->resize_tok) {
		s->resize_tok = json_tokener_new_ex(4);
		if (!s->resize_tok)
			abort();
		/* Strict JSON, and objects back to back: the rest of the input is the
		 * next one's. */
		json_tokener_set_flags(s->resize_tok,
		                       JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
	}
	while (n > 0 && !s->resize_dead && deliverable(s)) {
		json_object *o = json_tokener_parse_ex(s->resize_tok, (const char *)p, (int)n);
		enum json_tokener_error e = json_tokener_get_error(s->resize_tok);
		if (e == json_tokener_continue) {
			s->resize_bytes += n;
			if (s->resize_bytes > CS_RESIZE_MAX) {
				log_debug("cri: stream: a resize message over %u bytes",
				          CS_RESIZE_MAX);
				s->resize_dead = true;
			}
			return;
		}
		uint16_t w, h;
		if (e != json_tokener_success || !o || !resize_from_json(o, &w, &h)) {
			log_debug("cri: stream: the resize stream is not JSON terminal sizes: "
			          "ignoring the rest");
			if (o)
				json_object_put(o);
			s->resize_dead = true;
			return;
		}
		size_t used = json_tokener_get_parse_end(s->resize_tok);
		json_object_put(o);
		json_tokener_reset(s->resize_tok);
		s->resize_bytes = 0;
		used = MIN(MAX(used, (size_t)1), n);
		p += used;
		n -= used;
		if (s->reg->backend.resize)
			s->reg->backend.resize(s->reg->userdata, s, w, h);
	}
}

void cs_session_close(struct cri_stream_session *s)
{
	struct cs_conn *c = s->conn;

	s->ended = true;
	server_schedule(c->srv);
	if (c->dead || c->state == CS_CLOSING || c->state == CS_LINGER)
		return;
	c->state = CS_CLOSING;
	c->deadline = cs_now_ms() + 2 * CS_LINGER_MS;
	cs_server_rearm(c->srv);
	conn_flush(c);
}

void cs_session_abort(struct cri_stream_session *s, const char *why)
{
	if (why)
		log_warn("cri: stream: %s session: %s: closing it", kind_name(s->reg->kind), why);
	s->ended = true;
	cs_session_close(s);
}

bool cs_session_hold(struct cri_stream_session *s, ssize_t delta)
{
	s->held = (size_t)((ssize_t)s->held + delta);
	if (s->held <= CS_IN_MAX)
		return true;
	cs_session_abort(s, "the client sent over 4 MiB that could not be delivered yet");
	return false;
}

bool cs_session_port_allowed(struct cri_stream_session *s, uint16_t port)
{
	for (size_t i = 0; i < s->n_ports; i++)
		if (s->ports[i] == port)
			return true;
	if (!s->ports_any || s->n_ports >= CS_MAX_PORTS)
		return false;
	s->ports = xrealloc(s->ports, (s->n_ports + 1) * sizeof(uint16_t));
	s->ports[s->n_ports++] = port;
	return true;
}

/* ---- sessions: the API ---- */

enum cri_stream_kind cri_stream_session_kind(const struct cri_stream_session *s)
{
	return s->reg->kind;
}

bool cri_stream_session_has(const struct cri_stream_session *s, enum cri_stream_channel ch)
{
	switch (ch) {
	case CRI_CH_STDIN:
	case CRI_CH_STDOUT:
	case CRI_CH_STDERR:
		return s->has[ch];
	case CRI_CH_ERROR:
		return true;
	case CRI_CH_RESIZE:
		return s->reg->tty && (s->proto == CS_PROTO_WS || s->version >= 3);
	}
	return false;
}

bool cri_stream_session_tty(const struct cri_stream_session *s)
{
	return s->reg->tty;
}

size_t cri_stream_session_ports(const struct cri_stream_session *s, const uint16_t **ret)
{
	*ret = s->ports;
	return s->n_ports;
}

uint16_t cri_stream_session_port_of(const struct cri_stream_session *s, int channel)
{
	if (s->reg->kind != CRI_STREAM_PORTFORWARD || channel < 0)
		return 0;
	return s->proto == CS_PROTO_SPDY ? cs_spdy_port_of(s, channel) : cs_ws_port_of(s, channel);
}

void cri_stream_session_write(struct cri_stream_session *s, int channel, const uint8_t *p, size_t n)
{
	if (!s || s->ended || n == 0)
		return;
	if (session_queued(s) + n > CS_OUT_HARD) {
		cs_session_abort(s, "over 16 MiB queued for a client that does not read");
		return;
	}
	if (s->proto == CS_PROTO_SPDY)
		cs_spdy_write(s, channel, p, n);
	else
		cs_ws_write(s, channel, p, n);
	if (session_queued(s) >= CS_OUT_HIGH)
		s->full = true;
	conn_flush(s->conn);
}

bool cri_stream_session_writable(const struct cri_stream_session *s)
{
	return !s->ended && session_queued(s) < CS_OUT_HIGH;
}

void cri_stream_session_set_drain(struct cri_stream_session *s, void (*fn)(void *userdata),
                                  void *userdata)
{
	s->drain_fn = fn;
	s->drain_userdata = userdata;
}

void cri_stream_session_port_error(struct cri_stream_session *s, int channel, const char *msg)
{
	if (!s || s->ended || s->reg->kind != CRI_STREAM_PORTFORWARD)
		return;
	if (s->proto == CS_PROTO_SPDY)
		cs_spdy_port_error(s, channel, msg ? msg : "");
	else
		cs_ws_port_error(s, channel, msg ? msg : "");
	conn_flush(s->conn);
}

void cri_stream_session_close_output(struct cri_stream_session *s, int channel)
{
	if (!s || s->ended)
		return;
	if (s->proto == CS_PROTO_SPDY)
		cs_spdy_close_output(s, channel);
	else
		cs_ws_close_output(s, channel);
	if (!s->conn->dead)
		conn_flush(s->conn);
}

/* What kubelet's remotecommand writes on the error channel. */
static char *status_text(const struct cri_stream_session *s, int exit_code,
                         const struct hull_error *err)
{
	struct buf b = {0};
	_cleanup_free_ char *inner = NULL, *message = NULL;
	bool exec = s->reg->kind == CRI_STREAM_EXEC;

	if (err)
		inner = xasprintf("%s: %s",
		                  exec ? "error executing command in container"
		                       : "error attaching to container",
		                  err->msg ? err->msg : strerror(err->code < 0 ? -err->code : EIO));
	if (inner)
		message = xasprintf("Internal error occurred: %s", inner);
	else if (exec && exit_code != 0)
		message = xasprintf("command terminated with non-zero exit code: exit status %d",
		                    exit_code);
	if (s->version < 4)
		return message ? xstrdup(message) : NULL; /* v1-v3: text, and only failures */

	buf_append(&b, "{\"metadata\":{},\"status\":", 24);
	if (!message) {
		buf_append(&b, "\"Success\"}", 10);
	} else {
		buf_append(&b, "\"Failure\",\"message\":", 20);
		cs_json_quote(&b, message);
		if (inner) {
			static const char m[] =
			    ",\"reason\":\"InternalError\",\"details\":{\"causes\":[{\"message\":";
			buf_append(&b, m, sizeof(m) - 1);
			cs_json_quote(&b, inner);
			buf_append(&b, "}]},\"code\":500}", 15);
		} else {
			_cleanup_free_ char *t = xasprintf(
			    ",\"reason\":\"NonZeroExitCode\",\"details\":{\"causes\":[{\"reason\":"
			    "\"ExitCode\",\"message\":\"%d\"}]}}",
			    exit_code);
			buf_append(&b, t, strlen(t));
		}
	}
	buf_append(&b, "", 1);
	return (char *)b.data;
}

void cri_stream_session_end(struct cri_stream_session *s, int exit_code,
                            const struct hull_error *err)
{
	_cleanup_free_ char *status = NULL;

	if (!s || s->ended)
		return;
	if (s->reg->kind == CRI_STREAM_PORTFORWARD) {
		if (err)
			status = xstrdup(err->msg ? err->msg : "port-forward failed");
	} else {
		status = status_text(s, exit_code, err);
	}
	if (err)
		log_debug("cri: stream: %s session ends: %s", kind_name(s->reg->kind),
		          err->msg ? err->msg : "");
	if (s->proto == CS_PROTO_SPDY)
		cs_spdy_finish(s, status, false);
	else
		cs_ws_finish(s, status, false);
	/* The protocol closes the connection when its last bytes are queued (SPDY may
	 * wait for flow-control windows: bounded by the closing deadline). */
	s->ended = true;
	struct cs_conn *c = s->conn;
	if (c->state == CS_UPGRADED && !c->dead) {
		c->deadline = cs_now_ms() + 2 * CS_LINGER_MS;
		cs_server_rearm(c->srv);
	}
	server_schedule(c->srv);
	if (!c->dead)
		conn_flush(c);
}

void cri_stream_session_set_input_paused(struct cri_stream_session *s, bool paused)
{
	struct cs_conn *c = s->conn;

	if (c->in_paused == paused)
		return;
	c->in_paused = paused;
	if (!paused && c->in.len > 0) {
		c->feed_due = true;
		server_schedule(c->srv);
	}
	conn_update_events(c);
}

/* ---- the server ---- */

void cri_stream_server_set_timeouts(struct cri_stream_server *s, uint32_t token_ttl_ms,
                                    uint32_t stream_timeout_ms)
{
	s->token_ttl_ms = token_ttl_ms ? token_ttl_ms : CRI_STREAM_TOKEN_TTL_S * 1000u;
	s->stream_timeout_ms = stream_timeout_ms ? stream_timeout_ms : CS_STREAM_TIMEOUT_MS;
}

uint32_t cs_server_stream_timeout(const struct cri_stream_server *s)
{
	return s->stream_timeout_ms;
}

/* "1.2.3.4:N", "[v6]:N": numeric only (no resolver call on the loop). */
static int parse_address(const char *address, struct sockaddr_storage *ss, socklen_t *len,
                         struct hull_error **err)
{
	const char *colon;
	_cleanup_free_ char *host = NULL;
	char *end;
	unsigned long port;

	if (address[0] == '[') {
		const char *rb = strchr(address, ']');
		if (!rb || rb[1] != ':')
			goto bad;
		host = xstrndup(address + 1, (size_t)(rb - address - 1));
		colon = rb + 1;
	} else {
		colon = strrchr(address, ':');
		if (!colon || colon == address)
			goto bad;
		host = xstrndup(address, (size_t)(colon - address));
	}
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (!colon[1] || *end || errno || port > 65535 || colon[1] == '-' || colon[1] == '+')
		goto bad;
	memset(ss, 0, sizeof(*ss));
	if (address[0] == '[') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			goto bad;
		*len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			goto bad;
		*len = sizeof(*s4);
	}
	return 0;
bad:
	return hull_error_set(err, -EINVAL,
	                      "streaming address '%s' is not IPv4:PORT or [IPv6]:PORT", address);
}

struct cri_stream_server *cri_stream_server_new(struct event_loop *loop, const char *address,
                                                char **ret_base, struct hull_error **err)
{
	struct cri_stream_server *srv;
	struct sockaddr_storage ss;
	socklen_t len = 0;
	_cleanup_close_ int fd = -1;
	char host[INET6_ADDRSTRLEN];
	int r;

	if (address) {
		if (!loop) {
			hull_error_set(err, -EINVAL, "a listening streaming server needs a loop");
			return NULL;
		}
		if (parse_address(address, &ss, &len, err) < 0)
			return NULL;
		fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			hull_error_set_errno(err, -errno, "socket");
			return NULL;
		}
		int one = 1;
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
			hull_error_set_errno(err, -errno, "bind '%s'", address);
			return NULL;
		}
		if (listen(fd, 128) < 0) {
			hull_error_set_errno(err, -errno, "listen on '%s'", address);
			return NULL;
		}
		len = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
			hull_error_set_errno(err, -errno, "getsockname");
			return NULL;
		}
	}

	srv = xcalloc(1, sizeof(*srv));
	srv->loop = loop;
	srv->token_ttl_ms = CRI_STREAM_TOKEN_TTL_S * 1000u;
	srv->stream_timeout_ms = CS_STREAM_TIMEOUT_MS;
	srv->listen_fd = -1;
	srv->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (srv->timer_fd < 0)
		abort();
	if (loop && event_add(loop, srv->timer_fd, EPOLLIN, on_timer, srv) < 0)
		abort();
	if (address) {
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
			srv->base = xasprintf("http://[%s]:%u", host, ntohs(s6->sin6_port));
		} else {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
			srv->base = xasprintf("http://%s:%u", host, ntohs(s4->sin_port));
		}
		r = event_add(loop, fd, EPOLLIN, on_accept, srv);
		if (r < 0) {
			hull_error_set_errno(err, r, "watch '%s'", address);
			cri_stream_server_free(srv);
			return NULL;
		}
		srv->listen_fd = TAKE_FD(fd);
	} else {
		srv->base = xstrdup("http://fed");
	}
	if (ret_base)
		*ret_base = xstrdup(srv->base);
	return srv;
}

struct cri_stream_server *cri_stream_server_free(struct cri_stream_server *srv)
{
	if (!srv)
		return NULL;
	srv->freeing = true;
	/* Every session ends here: gone() (or unused()) before its memory goes. */
	for (struct cs_conn *c = srv->conns; c; c = c->next)
		if (c->sess)
			session_release(c->sess);
	while (srv->conns)
		conn_free(srv->conns);
	while (srv->regs) {
		struct cs_reg *r = srv->regs;
		srv->regs = r->next;
		reg_unused(r);
	}
	if (srv->listen_fd >= 0) {
		event_del(srv->loop, srv->listen_fd);
		close(srv->listen_fd);
	}
	if (srv->loop) {
		event_del(srv->loop, srv->timer_fd);
		event_defer_cancel(srv->loop, server_sweep, srv);
	}
	close(srv->timer_fd);
	free(srv->base);
	free(srv);
	return NULL;
}

void cri_stream_server_feed(struct cri_stream_server *srv, const void *data, size_t len,
                            uint8_t **ret_out, size_t *ret_out_len)
{
	struct cs_conn *c = conn_new(srv, -1);

	buf_append(&c->in, data, len);
	conn_process(c);
	/* What the backend's callbacks made due (a resumed input, the releases), a bounded
	 * number of rounds: a fed connection has no loop. */
	for (int i = 0; i < 16 && srv->sweep_due && !c->dead; i++) {
		srv->sweep_due = false;
		if (c->sess && c->sess->ended && !c->sess->released)
			session_release(c->sess);
		if (c->feed_due && !c->in_paused)
			conn_process(c);
		conn_after_io(c);
	}
	if (ret_out) {
		*ret_out = xmalloc(c->out.len + 1);
		if (c->out.len)
			memcpy(*ret_out, buf_head(&c->out), c->out.len);
		*ret_out_len = c->out.len;
	}
	if (c->sess)
		session_release(c->sess);
	conn_free(c);
	if (srv->sweep_due && !srv->loop)
		server_sweep(srv);
}
