/* SPDX-License-Identifier: MIT */
/* The streaming server's HTTP/1.1 side: the request head parsed (bounded, strict the
 * way Go's net/http is: one request line, token header names, no control characters
 * in values, no obsolete line folding), query strings decoded as url.ParseQuery does,
 * error responses as http.Error writes them; and the small encoders the handshakes
 * need (base64, Sec-WebSocket-Accept, JSON strings). Pure: no I/O. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cri-stream-internal.h"
#include "macros.h"
#include "util.h"

/* ---- the request head ---- */

static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* The request line: METHOD SP TARGET SP HTTP/x.y. */
static int parse_request_line(char *line, struct http_request *r)
{
	char *sp1 = strchr(line, ' '), *sp2;
	size_t ml;

	if (!sp1)
		return -EINVAL;
	sp2 = strchr(sp1 + 1, ' ');
	if (!sp2 || strchr(sp2 + 1, ' '))
		return -EINVAL;
	*sp1 = *sp2 = '\0';
	ml = strlen(line);
	if (ml == 0 || ml > 16)
		return -EINVAL;
	for (size_t i = 0; i < ml; i++)
		if (!is_tchar((unsigned char)line[i]))
			return -EINVAL;
	r->method = line;
	r->target = sp1 + 1;
	if (!*r->target)
		return -EINVAL;
	for (const char *t = r->target; *t; t++)
		if (is_ctl((unsigned char)*t))
			return -EINVAL;
	r->version = sp2 + 1;
	if (strncmp(r->version, "HTTP/", 5) != 0 ||
	    !(r->version[5] >= '0' && r->version[5] <= '9') || r->version[6] != '.' ||
	    !(r->version[7] >= '0' && r->version[7] <= '9') || r->version[8] != '\0')
		return -EINVAL;
	if (r->version[5] != '1')
		return -EPROTONOSUPPORT;
	return 0;
}

static int parse_header_line(char *line, struct http_request *r)
{
	char *colon = strchr(line, ':'), *v, *e;

	if (!colon || colon == line)
		return -EINVAL; /* also a folded line: it starts with a space */
	for (char *n = line; n < colon; n++)
		if (!is_tchar((unsigned char)*n))
			return -EINVAL;
	*colon = '\0';
	v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	e = v + strlen(v);
	while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	for (const char *c = v; *c; c++)
		if (is_ctl((unsigned char)*c) && *c != '\t')
			return -EINVAL;
	if (r->n_headers == CS_MAX_HEADERS)
		return -EMSGSIZE;
	r->headers[r->n_headers].name = line;
	r->headers[r->n_headers].value = v;
	r->n_headers++;
	return 0;
}

ssize_t http_parse_request(const uint8_t *p, size_t n, struct http_request *ret)
{
	size_t end = 0, line_start = 0, lines = 0, limit = MIN(n, (size_t)CS_HEAD_MAX);
	struct http_request r = {0};
	char *line;
	int rc;

	for (size_t i = 0; i < limit; i++) {
		if (p[i] == '\0')
			return -EINVAL; /* not text: no need to wait for more */
		if (p[i] != '\n')
			continue;
		size_t len = i - line_start;
		if (len > 0 && p[i - 1] == '\r')
			len--;
		if (len == 0) {
			if (line_start == 0)
				return -EINVAL; /* no request line */
			end = i + 1;
			break;
		}
		if (++lines > CS_MAX_HEADERS + 1)
			return -EMSGSIZE;
		line_start = i + 1;
	}
	if (end == 0)
		return n >= CS_HEAD_MAX ? -EMSGSIZE : 0;

	r.head = xmalloc(end + 1);
	memcpy(r.head, p, end);
	r.head[end] = '\0';
	line = r.head;
	for (size_t k = 0;; k++) {
		char *nl = strchr(line, '\n');
		*nl = '\0';
		if (nl > line && nl[-1] == '\r')
			nl[-1] = '\0';
		if (!*line)
			break;
		rc = k == 0 ? parse_request_line(line, &r) : parse_header_line(line, &r);
		if (rc < 0) {
			free(r.head);
			return rc;
		}
		line = nl + 1;
	}
	*ret = r;
	return (ssize_t)end;
}

void http_request_release(struct http_request *r)
{
	free(r->head);
	*r = (struct http_request){0};
}

const char *http_header(const struct http_request *r, const char *name)
{
	for (size_t i = 0; i < r->n_headers; i++)
		if (strcasecmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

char **http_header_list(const struct http_request *r, const char *name)
{
	char **l = xcalloc(1, sizeof(char *));

	for (size_t i = 0; i < r->n_headers; i++) {
		const char *v = r->headers[i].value;
		if (strcasecmp(r->headers[i].name, name) != 0)
			continue;
		while (*v) {
			const char *comma = strchr(v, ','), *e = comma ? comma : v + strlen(v);
			const char *b = v;
			while (b < e && (*b == ' ' || *b == '\t'))
				b++;
			while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
				e--;
			if (e > b)
				strv_push(&l, xstrndup(b, (size_t)(e - b)));
			v = comma ? comma + 1 : v + strlen(v);
		}
	}
	return l;
}

static int unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *http_unescape(const char *s, size_t n, bool plus)
{
	char *out = xmalloc(n + 1), *o = out;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			int hi = i + 2 < n ? unhex(s[i + 1]) : -1;
			int lo = i + 2 < n ? unhex(s[i + 2]) : -1;
			if (hi < 0 || lo < 0) {
				free(out);
				return NULL;
			}
			c = (char)(hi << 4 | lo);
			i += 2;
		} else if (c == '+' && plus) {
			c = ' ';
		}
		if (c == '\0') {
			free(out);
			return NULL;
		}
		*o++ = c;
	}
	*o = '\0';
	return out;
}

char **http_query_values(const char *query, const char *key)
{
	char **l = xcalloc(1, sizeof(char *));

	for (const char *q = query ? query : ""; *q;) {
		const char *amp = strchr(q, '&'), *e = amp ? amp : q + strlen(q);
		const char *eq = memchr(q, '=', (size_t)(e - q));
		/* Go drops pairs with a ';' (Go 1.17 on) and pairs that do not decode. */
		if (e > q && !memchr(q, ';', (size_t)(e - q))) {
			const char *ke = eq ? eq : e;
			_cleanup_free_ char *k = http_unescape(q, (size_t)(ke - q), true);
			char *v =
			    eq ? http_unescape(eq + 1, (size_t)(e - eq - 1), true) : xstrdup("");
			if (k && v && strcmp(k, key) == 0)
				strv_push(&l, v);
			else
				free(v);
		}
		q = amp ? amp + 1 : e;
	}
	return l;
}

const char *http_reason(int code)
{
	switch (code) {
	case 101:
		return "Switching Protocols";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 431:
		return "Request Header Fields Too Large";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Internal Server Error";
	}
}

void http_put_error(struct buf *out, int code, const char *extra_headers, const char *body)
{
	_cleanup_free_ char *s =
	    xasprintf("HTTP/1.1 %d %s\r\n"
	              "Content-Type: text/plain; charset=utf-8\r\n"
	              "X-Content-Type-Options: nosniff\r\n"
	              "%s"
	              "Content-Length: %zu\r\n"
	              "Connection: close\r\n"
	              "\r\n"
	              "%s\n",
	              code, http_reason(code), extra_headers, strlen(body) + 1, body);
	buf_append(out, s, strlen(s));
}

/* ---- encoders ---- */

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *cs_base64_encode(const uint8_t *p, size_t n, bool url, bool pad)
{
	const char *a = url ? b64_url : b64_std;
	char *out = xmalloc((n + 2) / 3 * 4 + 1), *o = out;
	size_t i;

	for (i = 0; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = a[v >> 18 & 63];
		*o++ = a[v >> 12 & 63];
		*o++ = a[v >> 6 & 63];
		*o++ = a[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		*o++ = a[v >> 18 & 63];
		*o++ = a[v >> 12 & 63];
		if (pad)
			*o++ = '=', *o++ = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		*o++ = a[v >> 18 & 63];
		*o++ = a[v >> 12 & 63];
		*o++ = a[v >> 6 & 63];
		if (pad)
			*o++ = '=';
	}
	*o = '\0';
	return out;
}

static int b64_value(char c)
{
	const char *p = c ? strchr(b64_std, c) : NULL;
	return p ? (int)(p - b64_std) : -1;
}

int cs_base64_decode(const char *s, size_t n, uint8_t *out, size_t *ret_len)
{
	char q[4];
	size_t nq = 0, len = 0;
	bool ended = false;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r' || s[i] == '\n')
			continue;
		if (ended)
			return -EINVAL; /* data after the padded quantum */
		q[nq++] = s[i];
		if (nq < 4)
			continue;
		nq = 0;
		int v[4];
		for (int k = 0; k < 4; k++)
			v[k] = b64_value(q[k]);
		if (v[0] < 0 || v[1] < 0)
			return -EINVAL;
		if (q[2] == '=') {
			if (q[3] != '=')
				return -EINVAL;
			out[len++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
			ended = true;
		} else if (q[3] == '=') {
			if (v[2] < 0)
				return -EINVAL;
			out[len++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
			out[len++] = (uint8_t)(v[1] << 4 | v[2] >> 2);
			ended = true;
		} else {
			if (v[2] < 0 || v[3] < 0)
				return -EINVAL;
			out[len++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
			out[len++] = (uint8_t)(v[1] << 4 | v[2] >> 2);
			out[len++] = (uint8_t)(v[2] << 6 | v[3]);
		}
	}
	if (nq != 0)
		return -EINVAL;
	*ret_len = len;
	return 0;
}

void cs_ws_accept(const char *key, char out[29])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	_cleanup_free_ char *k = xasprintf("%s%s", key, guid);
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!EVP_Digest(k, strlen(k), md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
		abort(); /* SHA-1 is always there */
	_cleanup_free_ char *b = cs_base64_encode(md, 20, false, true);
	memcpy(out, b, 29);
}

void cs_json_quote(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	buf_append(b, "\"", 1);
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		switch (*c) {
		case '"':
			buf_append(b, "\\\"", 2);
			break;
		case '\\':
			buf_append(b, "\\\\", 2);
			break;
		case '\n':
			buf_append(b, "\\n", 2);
			break;
		case '\r':
			buf_append(b, "\\r", 2);
			break;
		case '\t':
			buf_append(b, "\\t", 2);
			break;
		default:
			if (*c < 0x20) {
				char e[6] = {'\\', 'u', '0', '0', hex[*c >> 4], hex[*c & 15]};
				buf_append(b, e, 6);
			} else {
				buf_append(b, c, 1);
			}
		}
	}
	buf_append(b, "\"", 1);
}
