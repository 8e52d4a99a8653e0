/* SPDX-License-Identifier: MIT */
#pragma once

/* What the streaming server's files share (cri-stream.c: the server, tokens,
 * connections and sessions; cri-stream-http.c: the HTTP/1.1 request parser, the
 * upgrade handshakes and small encoders; cri-stream-spdy.c: SPDY/3.1 and the
 * remotecommand/portforward protocols over it; cri-stream-ws.c: the same over
 * WebSocket through wslay). The SPDY frame codec is here too so that the unit test's
 * client frames what it sends with the same code. Not an API. */
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <zlib.h>

#include "buf.h"
#include "cri-stream.h"

/* ---- limits (all against the client) ---- */
#define CS_HEAD_MAX (16u << 10)         /* request line + headers, else 431 */
#define CS_MAX_HEADERS 100u             /* header lines, else 431 */
#define CS_OUT_HIGH (1u << 20)          /* queued for the client: writable() below this */
#define CS_OUT_HARD (16u << 20)         /* a backend that ignores writable(): dropped */
#define CS_IN_MAX (4u << 20)            /* client bytes held for the backend, else dropped */
#define CS_SPDY_DATA_MAX (1u << 20)     /* one DATA frame's payload */
#define CS_SPDY_CTRL_MAX (64u << 10)    /* one control frame's payload */
#define CS_SPDY_HEADERS_MAX (16u << 10) /* one inflated header block */
#define CS_SPDY_MAX_HEADERS 64u         /* name/value pairs in one block */
#define CS_SPDY_MAX_STREAMS 256u        /* open streams on a connection */
#define CS_SPDY_WINDOW 65536            /* SPDY/3.1's initial flow-control window */
#define CS_SPDY_DATA_CHUNK (32u << 10)  /* our DATA frames */
#define CS_WS_MSG_MAX (1u << 20)        /* one WebSocket message */
#define CS_WS_MSG_CHUNK (32u << 10)     /* our messages' payload */
#define CS_RESIZE_MAX 4096u             /* one resize JSON object */
#define CS_STREAM_TIMEOUT_MS 30000u     /* kubelet's DefaultStreamCreationTimeout */
#define CS_HEAD_TIMEOUT_MS 30000u       /* a connection that never sends its request */
#define CS_LINGER_MS 5000u              /* after the last byte: wait for the client's FIN */
#define CS_MAX_CONNS 512u
#define CS_MAX_REGS 1000u /* kubelet's request cache holds as many */
#define CS_MAX_PORTS 64u

uint64_t cs_now_ms(void);

/* ---- HTTP/1.1 requests (cri-stream-http.c) ---- */

struct http_header {
	const char *name, *value;
};

struct http_request {
	char *head; /* owned: the head copied, NUL-separated */
	const char *method, *target, *version;
	struct http_header headers[CS_MAX_HEADERS];
	size_t n_headers;
};

/* Parse the request head at p (n bytes so far; lines end in CRLF or LF). Returns the
 * head's size (> 0) with *ret filled (release with http_request_release()), 0 when
 * more bytes are needed, -EMSGSIZE when the head is over CS_HEAD_MAX or has more than
 * CS_MAX_HEADERS lines (431), -EPROTONOSUPPORT for an HTTP version other than 1.x
 * (505), -EINVAL when malformed (400). */
ssize_t http_parse_request(const uint8_t *p, size_t n, struct http_request *ret);
void http_request_release(struct http_request *r);
/* The first value of header name (case-insensitive), or NULL. */
const char *http_header(const struct http_request *r, const char *name);
/* Every value of header name, split at commas and trimmed, in order; NULL-terminated,
 * never NULL itself (caller frees with strv_free). */
char **http_header_list(const struct http_request *r, const char *name);
/* The values of key in a query string ("a=1&b=2&a=3"), percent- and '+'-decoded;
 * NULL-terminated, never NULL (caller frees). A malformed escape drops that pair. */
char **http_query_values(const char *query, const char *key);
/* %XX and (when plus) '+' decoded; NULL on a bad escape or a NUL. Caller frees. */
char *http_unescape(const char *s, size_t n, bool plus);
/* An error response (plain text body, then the connection closes), as Go's http.Error
 * writes it; extra_headers is "" or "Name: value\r\n" lines. */
void http_put_error(struct buf *out, int code, const char *extra_headers, const char *body);
const char *http_reason(int code);

/* ---- encoders (cri-stream-http.c) ---- */

/* Base64 of p (standard or URL alphabet, with or without '=' padding). Caller frees. */
char *cs_base64_encode(const uint8_t *p, size_t n, bool url, bool pad);
/* Standard base64 with padding as Go's base64.StdEncoding decodes it (CR and LF
 * skipped); out has room for n * 3 / 4 bytes. -EINVAL when malformed. */
int cs_base64_decode(const char *s, size_t n, uint8_t *out, size_t *ret_len);
/* RFC 6455's Sec-WebSocket-Accept for key: base64(SHA-1(key + GUID)), 28 chars. */
void cs_ws_accept(const char *key, char out[29]);
/* s quoted as a JSON string into b. */
void cs_json_quote(struct buf *b, const char *s);

/* ---- SPDY/3.1 frames (cri-stream-spdy.c; the test's client uses them too) ---- */

#define SPDY_VERSION 3
enum {
	SPDY_SYN_STREAM = 1,
	SPDY_SYN_REPLY = 2,
	SPDY_RST_STREAM = 3,
	SPDY_SETTINGS = 4,
	SPDY_PING = 6,
	SPDY_GOAWAY = 7,
	SPDY_HEADERS = 8,
	SPDY_WINDOW_UPDATE = 9,
};
#define SPDY_FLAG_FIN 0x01
#define SPDY_FLAG_UNIDIRECTIONAL 0x02
enum {
	SPDY_RST_PROTOCOL_ERROR = 1,
	SPDY_RST_INVALID_STREAM = 2,
	SPDY_RST_REFUSED_STREAM = 3,
	SPDY_RST_CANCEL = 5,
	SPDY_RST_FLOW_CONTROL_ERROR = 7,
	SPDY_RST_STREAM_IN_USE = 8,
	SPDY_RST_FRAME_TOO_LARGE = 11,
};
enum {
	SPDY_GOAWAY_OK = 0,
	SPDY_GOAWAY_PROTOCOL_ERROR = 1,
	SPDY_GOAWAY_INTERNAL_ERROR = 2,
};
#define SPDY_SETTINGS_MAX_CONCURRENT_STREAMS 4
#define SPDY_SETTINGS_INITIAL_WINDOW_SIZE 7

/* The SPDY/3 header compression dictionary (its Adler-32 is 0xe3c6a7c2). */
#define SPDY_DICTIONARY_SIZE 1423
extern const uint8_t spdy_dictionary[SPDY_DICTIONARY_SIZE];

struct spdy_frame {
	bool control;
	uint16_t version;   /* control frames */
	uint16_t type;      /* control frames */
	uint32_t stream_id; /* data frames */
	uint8_t flags;
	uint32_t length;
	const uint8_t *payload;
};

/* One frame at p: 1 with *ret and *ret_size (8 + length) set, 0 when more bytes are
 * needed, -EMSGSIZE when its length is over max_data (DATA) or max_ctrl (control). */
int spdy_frame_parse(const uint8_t *p, size_t n, uint32_t max_data, uint32_t max_ctrl,
                     struct spdy_frame *ret, size_t *ret_size);

/* One direction's header compression: a single zlib stream per connection and
 * direction, primed with spdy_dictionary. */
struct spdy_zstream {
	z_stream z;
	bool inflate;
};
void spdy_z_init(struct spdy_zstream *zs, bool inflate);
void spdy_z_end(struct spdy_zstream *zs);
/* Inflate one header block, appending at most cap bytes to out: 0, -EMSGSIZE when it
 * inflates beyond cap, -EBADMSG when it is not zlib data with the dictionary. */
int spdy_z_inflate(struct spdy_zstream *zs, const uint8_t *p, size_t n, size_t cap,
                   struct buf *out);
/* Deflate one header block (ending in a sync flush) onto out. */
void spdy_z_deflate(struct spdy_zstream *zs, const uint8_t *p, size_t n, struct buf *out);

struct spdy_header {
	const uint8_t *name, *value;
	uint32_t name_len, value_len;
};
/* Split an inflated header block into at most max pairs: the count, then per pair a
 * 32-bit length and the name, a 32-bit length and the value (NUL-separated values).
 * 0 with *ret_n, or -EBADMSG (truncated, trailing bytes, more than max pairs). */
int spdy_headers_parse(const uint8_t *p, size_t n, struct spdy_header *hdrs, size_t max,
                       size_t *ret_n);
/* The first value of name (case-insensitive) as a C string into v (size vn), or NULL. */
const char *spdy_header_get(const struct spdy_header *hdrs, size_t n, const char *name, char *v,
                            size_t vn);
/* An uncompressed header block of n_pairs name/value pairs (nv: name, value, ...). */
void spdy_headers_put(struct buf *b, const char *const *nv, size_t n_pairs);

void spdy_put_control(struct buf *b, uint16_t type, uint8_t flags, const uint8_t *payload,
                      size_t n);
void spdy_put_data(struct buf *b, uint32_t stream_id, uint8_t flags, const uint8_t *p, size_t n);
/* SYN_STREAM (client: stream id, no association, priority 0), SYN_REPLY or HEADERS
 * with a header block deflated on z. */
void spdy_put_headers_frame(struct buf *b, struct spdy_zstream *z, uint16_t type,
                            uint32_t stream_id, uint8_t flags, const char *const *nv,
                            size_t n_pairs);
void spdy_put_u32_pair(struct buf *b, uint16_t type, uint32_t a, uint32_t v);
void spdy_put_ping(struct buf *b, uint32_t id);
void spdy_put_settings(struct buf *b, const uint32_t *ids, const uint32_t *values, size_t n);

/* ---- the server's inside ---- */

/* A token waiting for its client. */
struct cs_reg {
	char token[48];
	enum cri_stream_kind kind;
	bool tty;
	bool want[3]; /* stdin, stdout, stderr */
	uint16_t *ports;
	size_t n_ports;
	struct cri_stream_backend backend;
	void *userdata;
	uint64_t expires; /* ms, CLOCK_MONOTONIC */
	struct cs_reg *next;
};

enum cs_conn_state {
	CS_HEAD,     /* reading the request */
	CS_UPGRADED, /* a session speaks SPDY or WebSocket */
	CS_CLOSING,  /* nothing new goes out: flushing, then shutdown(SHUT_WR) */
	CS_LINGER,   /* written and shut: reading until the client's FIN */
};

struct cs_conn {
	struct cri_stream_server *srv;
	int fd; /* -1: a fed connection */
	enum cs_conn_state state;
	struct buf in, out;
	uint64_t deadline; /* ms; 0: none */
	uint32_t events;   /* registered epoll events */
	bool dead;         /* to be freed at the next sweep */
	bool peer_eof;
	bool in_paused; /* the backend asked us to stop reading */
	bool feed_due;  /* buffered input waits for a feed (unpaused) */
	bool feeding;
	struct cri_stream_session *sess;
	struct cs_conn *next;
};

enum cs_proto {
	CS_PROTO_SPDY,
	CS_PROTO_WS,
};

struct cs_spdy;
struct cs_ws;

struct cri_stream_session {
	struct cs_conn *conn;
	struct cs_reg *reg; /* owned: the registration this session consumed */
	enum cs_proto proto;
	int version; /* exec/attach: 1 (channel.k8s.io) .. 5; port-forward: 0 */
	bool base64; /* WebSocket base64.channel.k8s.io variants */
	bool has[3];
	bool start_called, started;
	bool ended;    /* no more output is generated; gone() or unused() comes */
	bool released; /* gone() or unused() has been called */
	uint16_t *ports;
	size_t n_ports;
	bool ports_any; /* port-forward over SPDY: no list given, any port (recorded) */
	int next_conn;  /* port-forward over SPDY: the next connection number */
	void (*drain_fn)(void *userdata);
	void *drain_userdata;
	bool full; /* writable() was false: drain is due when it is true again */
	json_tokener *resize_tok;
	size_t resize_bytes;
	bool resize_dead;
	size_t held; /* client bytes held for the backend (before start) */
	struct cs_spdy *spdy;
	struct cs_ws *ws;
};

/* Called by the protocols (cri-stream.c). Each checks that the session is started and
 * not ended, and that the backend has the callback. */
void cs_session_start(struct cri_stream_session *s);
void cs_deliver_data(struct cri_stream_session *s, int channel, const uint8_t *p, size_t n);
void cs_deliver_close_input(struct cri_stream_session *s, int channel);
void cs_deliver_resize(struct cri_stream_session *s, const uint8_t *p, size_t n);
void cs_deliver_port_open(struct cri_stream_session *s, int channel);
void cs_deliver_port_reset(struct cri_stream_session *s, int channel);
/* The client broke the protocol or went away: log why (NULL: quietly), end the session
 * without a status, close the connection once what is queued (a GOAWAY, a close frame)
 * is out. */
void cs_session_abort(struct cri_stream_session *s, const char *why);
/* The session's last bytes are queued: close the connection once they are out. */
void cs_session_close(struct cri_stream_session *s);
/* Held bytes: over CS_IN_MAX the session is aborted; returns false then. */
bool cs_session_hold(struct cri_stream_session *s, ssize_t delta);
/* The server's timer needs recomputing (a deadline changed). */
void cs_server_rearm(struct cri_stream_server *srv);
/* Is port one of the session's (adding it when the session has no list yet)? */
bool cs_session_port_allowed(struct cri_stream_session *s, uint16_t port);

/* The protocols (cri-stream-spdy.c, cri-stream-ws.c). open: after the 101 is queued;
 * feed: consume conn->in (stops when the input is paused); finish: the error channel's
 * last bytes (status, may be NULL) then close every stream, the session's last output. */
void cs_spdy_open(struct cri_stream_session *s);
void cs_spdy_feed(struct cri_stream_session *s);
void cs_spdy_write(struct cri_stream_session *s, int channel, const uint8_t *p, size_t n);
void cs_spdy_close_output(struct cri_stream_session *s, int channel);
void cs_spdy_port_error(struct cri_stream_session *s, int channel, const char *msg);
void cs_spdy_finish(struct cri_stream_session *s, const char *status, bool goaway_error);
size_t cs_spdy_pending(const struct cri_stream_session *s);
uint16_t cs_spdy_port_of(const struct cri_stream_session *s, int channel);
uint64_t cs_spdy_deadline(const struct cri_stream_session *s);
void cs_spdy_timer(struct cri_stream_session *s, uint64_t now);
void cs_spdy_free(struct cri_stream_session *s);

void cs_ws_open(struct cri_stream_session *s);
void cs_ws_feed(struct cri_stream_session *s);
void cs_ws_write(struct cri_stream_session *s, int channel, const uint8_t *p, size_t n);
void cs_ws_close_output(struct cri_stream_session *s, int channel);
void cs_ws_port_error(struct cri_stream_session *s, int channel, const char *msg);
void cs_ws_finish(struct cri_stream_session *s, const char *status, bool error);
uint16_t cs_ws_port_of(const struct cri_stream_session *s, int channel);
void cs_ws_free(struct cri_stream_session *s);

/* Tests: shorter token lifetimes and stream-creation timeouts (0: the defaults). */
void cri_stream_server_set_timeouts(struct cri_stream_server *s, uint32_t token_ttl_ms,
                                    uint32_t stream_timeout_ms);
uint32_t cs_server_stream_timeout(const struct cri_stream_server *s);

/* Tests and fuzzers: register with a chosen token (so that their requests can name it). */
int cri_stream_server_register_token(struct cri_stream_server *s, const char *token,
                                     enum cri_stream_kind kind, bool tty, bool want_stdin,
                                     bool want_stdout, bool want_stderr, const int32_t *ports,
                                     size_t n_ports, const struct cri_stream_backend *backend,
                                     void *userdata, char **ret_url);
