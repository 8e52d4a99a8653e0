/* SPDX-License-Identifier: MIT */
/* evil-agent: a hostile guest for tests/integration/hostile.sh. PID 1 of its own
 * initramfs (given with --initrd, or the shim's config), it speaks just enough of the
 * agent protocol to get a container "started", then misbehaves the way the container's
 * command says (args[0]; the command of every container of a pod chooses for that
 * container):
 *
 *   flood [fd]     stdout (or fd 2) frames far past the credit the host granted; only
 *                  SIGKILL ends it
 *   frame-at-cap   one output frame of exactly the 4 MiB frame limit (legal), then exit 0
 *   frame-over-cap one frame 1 byte over the limit
 *   bad-stream     output on a stream id the host never opened
 *   silent         CreateContainer is never answered (Check was)
 *   bad-wait       the process "exits" with an impossible status (code 1000)
 *   tiny-frames N  N one-byte output frames within credit, then exit 0
 *   hangup         half a reply to StartContainer, then the VM powers off
 *   ignore-destroy exits 0 at once; DestroySandbox is answered but the VM stays up and
 *                  keeps sending on the finished stream
 *   sleep          prints "ready", then runs until signalled (exit 128+signal)
 *   deaf           prints "ready", then runs whatever it is sent (SIGKILL included)
 *
 * No process is ever run: pids are made up. Not a model of anything but malice. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/reboot.h>

#include "agent.h"
#include "agent.pb-c.h"
#include "stream.h"
#include "ttrpc-msg.h"
#include "util.h"

#define MAX_CTRS 16
#define OUT_LOW (1u << 20)

enum mode {
	MODE_SLEEP,
	MODE_FLOOD,
	MODE_AT_CAP,
	MODE_OVER_CAP,
	MODE_BAD_STREAM,
	MODE_SILENT,
	MODE_BAD_WAIT,
	MODE_TINY,
	MODE_HANGUP,
	MODE_IGNORE_DESTROY,
	MODE_DEAF,
};

struct ctr {
	char id[65];
	enum mode mode;
	unsigned arg;
	uint32_t attach_sid, wait_sid;
	uint64_t credit;
	bool started, ended;
	int code, sig; /* how it ended */
	uint64_t sent;
};

static int chan = -1;
static struct buf out;
static struct ttrpc_decoder dec;
static struct ctr ctrs[MAX_CTRS];
static size_t n_ctrs;
static bool destroyed, flooding_after_end;

static struct ctr *ctr_find(const char *id)
{
	for (size_t i = 0; i < n_ctrs; i++)
		if (strcmp(ctrs[i].id, id) == 0)
			return &ctrs[i];
	return NULL;
}

static void reply(uint32_t sid, const ProtobufCMessage *msg)
{
	ttrpc_response_append(&out, sid, 0, NULL, msg);
}

static void reply_empty(uint32_t sid)
{
	Hull__Agent__V1__Empty e = HULL__AGENT__V1__EMPTY__INIT;
	reply(sid, &e.base);
}

static void stdio(uint32_t sid, uint32_t fd, const void *data, size_t len, bool eof)
{
	Hull__Agent__V1__StdioData d = HULL__AGENT__V1__STDIO_DATA__INIT;
	d.fd = fd;
	d.data.data = (uint8_t *)data;
	d.data.len = len;
	d.eof = eof;
	ttrpc_data_append(&out, sid, 0, &d.base);
}

static void wait_reply(struct ctr *c, int code, int sig)
{
	Hull__Agent__V1__WaitResponse w = HULL__AGENT__V1__WAIT_RESPONSE__INIT;
	if (!c->wait_sid)
		return;
	w.exit_code = code;
	w.signal = sig;
	reply(c->wait_sid, &w.base);
	c->wait_sid = 0;
}

/* The process ends: its stream closes, then its wait is answered. */
static void end(struct ctr *c, int code, int sig)
{
	if (c->ended)
		return;
	c->ended = true;
	c->code = code;
	c->sig = sig;
	if (c->attach_sid) {
		stdio(c->attach_sid, 1, NULL, 0, true);
		stdio(c->attach_sid, 2, NULL, 0, true);
		reply_empty(c->attach_sid);
		if (c->mode != MODE_IGNORE_DESTROY)
			c->attach_sid = 0;
	}
	wait_reply(c, code, sig);
}

static enum mode mode_of(const char *s)
{
	static const char *const names[] = {
	    [MODE_SLEEP] = "sleep",
	    [MODE_FLOOD] = "flood",
	    [MODE_AT_CAP] = "frame-at-cap",
	    [MODE_OVER_CAP] = "frame-over-cap",
	    [MODE_BAD_STREAM] = "bad-stream",
	    [MODE_SILENT] = "silent",
	    [MODE_BAD_WAIT] = "bad-wait",
	    [MODE_TINY] = "tiny-frames",
	    [MODE_HANGUP] = "hangup",
	    [MODE_IGNORE_DESTROY] = "ignore-destroy",
	    [MODE_DEAF] = "deaf",
	};
	for (size_t i = 0; i < ELEMENTSOF(names); i++)
		if (strcmp(s, names[i]) == 0)
			return (enum mode)i;
	return MODE_SLEEP;
}

/* args[0] and args[1] of the spec: found by hand, the JSON is the host's. */
static void parse_args(const char *json, size_t len, struct ctr *c)
{
	_cleanup_free_ char *s = xstrndup(json, len);
	char *a = strstr(s, "\"args\""), *q1, *q2;
	if (!a || !(q1 = strchr(a + 6, '"')) || !(q2 = strchr(q1 + 1, '"')))
		return;
	*q2 = '\0';
	c->mode = mode_of(q1 + 1);
	if (q2[1] == ',' && q2[2] == '"')
		c->arg = (unsigned)strtoul(q2 + 3, NULL, 10);
}

static void started(struct ctr *c, uint32_t sid)
{
	Hull__Agent__V1__StartContainerResponse sr =
	    HULL__AGENT__V1__START_CONTAINER_RESPONSE__INIT;

	if (c->mode == MODE_HANGUP) {
		/* Half a reply, then the VM is gone. */
		uint8_t hdr[TTRPC_HEADER_SIZE];
		ttrpc_header_encode(hdr, 64, sid, TTRPC_TYPE_RESPONSE, 0);
		buf_append(&out, hdr, 6);
		while (out.len && write(chan, buf_head(&out), out.len) > 0)
			buf_consume(&out, out.len);
		sync();
		reboot(RB_AUTOBOOT);
	}
	sr.pid = 100 + (uint32_t)(c - ctrs);
	reply(sid, &sr.base);
	c->started = true;
	switch (c->mode) {
	case MODE_SLEEP:
	case MODE_DEAF:
		if (c->attach_sid)
			stdio(c->attach_sid, 1, "ready\n", 6, false);
		break;
	case MODE_AT_CAP: {
		/* A StdioData whose encoding is exactly TTRPC_MAX_PAYLOAD bytes: fd (2 bytes),
		 * the data's tag (1) and length (a 4-byte varint), the data. */
		size_t n = TTRPC_MAX_PAYLOAD - 7;
		_cleanup_free_ char *big = xmalloc(n);
		memset(big, 'a', n);
		if (c->attach_sid)
			stdio(c->attach_sid, 1, big, n, false);
		end(c, 0, 0);
		break;
	}
	case MODE_OVER_CAP: {
		uint8_t hdr[TTRPC_HEADER_SIZE];
		ttrpc_header_encode(hdr, TTRPC_MAX_PAYLOAD + 1, c->attach_sid, TTRPC_TYPE_DATA, 0);
		buf_append(&out, hdr, sizeof(hdr));
		memset(buf_reserve(&out, TTRPC_MAX_PAYLOAD + 1), 'b', TTRPC_MAX_PAYLOAD + 1);
		buf_commit(&out, TTRPC_MAX_PAYLOAD + 1);
		break;
	}
	case MODE_BAD_STREAM:
		stdio(2, 1, "who asked?\n", 11, false);
		stdio(c->attach_sid + 1000, 1, "nobody\n", 7, false);
		break;
	case MODE_BAD_WAIT:
		end(c, 1000, 0);
		break;
	case MODE_IGNORE_DESTROY:
		end(c, 0, 0);
		break;
	default:
		break;
	}
}

static void handle_request(const struct ttrpc_frame *f)
{
	Hull__Ttrpc__Request *req = hull__ttrpc__request__unpack(NULL, f->length, f->payload);
	const char *m;

	if (!req)
		return;
	m = req->method;
	if (strcmp(m, "Check") == 0) {
		Hull__Agent__V1__CheckResponse cr = HULL__AGENT__V1__CHECK_RESPONSE__INIT;
		cr.version = (char *)"evil";
		cr.api_version = 1;
		reply(f->stream_id, &cr.base);
	} else if (strcmp(m, "CreateContainer") == 0) {
		Hull__Agent__V1__CreateContainerRequest *cr =
		    hull__agent__v1__create_container_request__unpack(NULL, req->payload.len,
		                                                      req->payload.data);
		if (cr && n_ctrs < MAX_CTRS) {
			struct ctr *c = &ctrs[n_ctrs++];
			snprintf(c->id, sizeof(c->id), "%s", cr->id);
			parse_args((const char *)cr->oci_config.data, cr->oci_config.len, c);
			if (c->mode != MODE_SILENT)
				reply_empty(f->stream_id);
		}
		if (cr)
			hull__agent__v1__create_container_request__free_unpacked(cr, NULL);
	} else if (strcmp(m, "SignalProcess") == 0) {
		Hull__Agent__V1__SignalRequest *sr = hull__agent__v1__signal_request__unpack(
		    NULL, req->payload.len, req->payload.data);
		struct ctr *c = sr ? ctr_find(sr->id) : NULL;
		reply_empty(f->stream_id);
		/* A flood stops only for SIGKILL, a deaf one never; the others end by any. */
		if (c && c->mode != MODE_DEAF && (c->mode != MODE_FLOOD || sr->signal == SIGKILL))
			end(c, 0, (int)sr->signal);
		if (sr)
			hull__agent__v1__signal_request__free_unpacked(sr, NULL);
	} else if (strcmp(m, "AttachStdio") == 0 || strcmp(m, "StartContainer") == 0 ||
	           strcmp(m, "WaitProcess") == 0 || strcmp(m, "RemoveContainer") == 0) {
		/* These carry the container id as field 1 (and exec_id, a string, as 2). */
		Hull__Agent__V1__ContainerRequest *cr = hull__agent__v1__container_request__unpack(
		    NULL, req->payload.len, req->payload.data);
		struct ctr *c = cr ? ctr_find(cr->id) : NULL;
		if (!c) {
			ttrpc_response_append(&out, f->stream_id, TTRPC_NOT_FOUND, "no such", NULL);
		} else if (strcmp(m, "AttachStdio") == 0) {
			c->attach_sid = f->stream_id;
		} else if (strcmp(m, "StartContainer") == 0) {
			started(c, f->stream_id);
		} else if (strcmp(m, "WaitProcess") == 0) {
			c->wait_sid = f->stream_id;
			if (c->ended)
				wait_reply(c, c->code, c->sig);
		} else {
			reply_empty(f->stream_id);
		}
		if (cr)
			hull__agent__v1__container_request__free_unpacked(cr, NULL);
	} else if (strcmp(m, "DestroySandbox") == 0) {
		reply_empty(f->stream_id);
		destroyed = true;
		for (size_t i = 0; i < n_ctrs; i++)
			if (ctrs[i].mode == MODE_IGNORE_DESTROY)
				flooding_after_end = true;
	} else if (strcmp(m, "ConfigureNetwork") == 0 || strcmp(m, "Sync") == 0) {
		reply_empty(f->stream_id);
	} else {
		ttrpc_response_append(&out, f->stream_id, TTRPC_UNIMPLEMENTED, "evil", NULL);
	}
	hull__ttrpc__request__free_unpacked(req, NULL);
}

static void handle_data(const struct ttrpc_frame *f)
{
	Hull__Agent__V1__StdioData *d =
	    hull__agent__v1__stdio_data__unpack(NULL, f->length, f->payload);
	for (size_t i = 0; d && i < n_ctrs; i++)
		if (ctrs[i].attach_sid == f->stream_id)
			ctrs[i].credit += d->credit;
	if (d)
		hull__agent__v1__stdio_data__free_unpacked(d, NULL);
}

/* What each container does while the channel has room. */
static void produce(void)
{
	static char chunk[STREAM_CHUNK];
	memset(chunk, 'z', sizeof(chunk));
	for (size_t i = 0; i < n_ctrs && out.len < OUT_LOW; i++) {
		struct ctr *c = &ctrs[i];
		if (!c->started || !c->attach_sid)
			continue;
		if (c->mode == MODE_FLOOD && !c->ended)
			/* Whatever the credit says. */
			stdio(c->attach_sid, c->arg == 2 ? 2 : 1, chunk, sizeof(chunk), false);
		if (c->mode == MODE_TINY && !c->ended) {
			unsigned want = c->arg ? c->arg : 1000000;
			for (int k = 0; k < 4096 && c->credit > 0 && c->sent < want; k++) {
				stdio(c->attach_sid, 1, "t", 1, false);
				c->credit--;
				c->sent++;
			}
			if (c->sent >= want)
				end(c, 0, 0);
		}
		if (c->mode == MODE_IGNORE_DESTROY && flooding_after_end)
			stdio(c->attach_sid, 1, chunk, sizeof(chunk), false);
	}
}

int main(void)
{
	uint8_t tmp[65536];

	if (agent_init_system() < 0 || agent_channel_open(false, &chan) < 0)
		reboot(RB_AUTOBOOT);
	for (;;) {
		struct pollfd pfd = {.fd = chan, .events = POLLIN | (out.len ? POLLOUT : 0)};
		struct ttrpc_frame f;
		int r;

		produce();
		pfd.events = POLLIN | (out.len ? POLLOUT : 0);
		if (poll(&pfd, 1, 50) < 0)
			continue;
		if (pfd.revents & POLLOUT) {
			ssize_t n = write(chan, buf_head(&out), out.len);
			if (n > 0)
				buf_consume(&out, (size_t)n);
		}
		if (pfd.revents & POLLIN) {
			ssize_t n = read(chan, tmp, sizeof(tmp));
			if (n > 0)
				ttrpc_decoder_feed(&dec, tmp, (size_t)n);
		}
		while ((r = ttrpc_decoder_next(&dec, &f)) != 0) {
			if (r < 0)
				continue;
			if (f.type == TTRPC_TYPE_REQUEST)
				handle_request(&f);
			else if (f.type == TTRPC_TYPE_DATA)
				handle_data(&f);
		}
		if (destroyed && !flooding_after_end && out.len == 0)
			reboot(RB_AUTOBOOT);
	}
}
