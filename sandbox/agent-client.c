/* SPDX-License-Identifier: MIT */
#include "agent-client.h"

#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "agent.pb-c.h"
#include "log.h"
#include "ttrpc-msg.h"
#include "util.h"

#define AGENT_SERVICE "hull.agent.v1.Agent"
#define MAX_PENDING 1024

struct pending {
	uint32_t sid;
	agent_reply_cb cb;
	agent_data_cb data_cb;
	void *userdata;
	struct pending *next;
};

struct agent_client {
	const char *service;
	int fd;
	int interrupt_fd;
	int exit_fd;
	uint32_t next_sid;
	size_t n_pending;
	struct pending *pending;
	struct ttrpc_decoder dec;
	struct buf out;
};

struct agent_client *agent_client_new(int fd)
{
	struct agent_client *ac = xcalloc(1, sizeof(*ac));
	ac->service = AGENT_SERVICE;
	ac->fd = fd;
	ac->interrupt_fd = -1;
	ac->exit_fd = -1;
	ac->next_sid = 1; /* client streams are odd */
	if (fd >= 0)
		fd_set_nonblock(fd, 1);
	return ac;
}

struct agent_client *agent_client_free(struct agent_client *ac)
{
	if (!ac)
		return NULL;
	while (ac->pending) {
		struct pending *p = ac->pending;
		ac->pending = p->next;
		free(p);
	}
	if (ac->fd >= 0)
		close(ac->fd);
	ttrpc_decoder_release(&ac->dec);
	buf_release(&ac->out);
	free(ac);
	return NULL;
}

void agent_client_set_service(struct agent_client *ac, const char *service)
{
	ac->service = service;
}

int agent_client_fd(struct agent_client *ac)
{
	return ac->fd;
}

void agent_client_set_interrupt_fd(struct agent_client *ac, int fd)
{
	ac->interrupt_fd = fd;
}

void agent_client_set_exit_fd(struct agent_client *ac, int fd)
{
	ac->exit_fd = fd;
}

uint32_t agent_client_call(struct agent_client *ac, const char *method, const ProtobufCMessage *msg,
                           uint8_t flags, agent_reply_cb cb, agent_data_cb data_cb, void *userdata)
{
	struct pending *p = xcalloc(1, sizeof(*p));

	p->sid = ac->next_sid;
	ac->next_sid += 2;
	p->cb = cb;
	p->data_cb = data_cb;
	p->userdata = userdata;
	p->next = ac->pending;
	ac->pending = p;
	ac->n_pending++;
	ttrpc_request_append(&ac->out, p->sid, flags, ac->service, method, msg);
	return p->sid;
}

void agent_client_send_data(struct agent_client *ac, uint32_t stream_id,
                            const ProtobufCMessage *msg)
{
	ttrpc_data_append(&ac->out, stream_id, 0, msg);
}

void agent_client_send_stdio(struct agent_client *ac, uint32_t stream_id, const uint8_t *data,
                             size_t len, bool eof, uint64_t credit)
{
	Hull__Agent__V1__StdioData d = HULL__AGENT__V1__STDIO_DATA__INIT;
	d.fd = 0;
	d.data.data = (uint8_t *)data;
	d.data.len = len;
	d.eof = eof;
	d.credit = credit;
	agent_client_send_data(ac, stream_id, &d.base);
}

bool agent_client_wants_write(struct agent_client *ac)
{
	return ac->out.len > 0;
}

static struct pending *pending_find(struct agent_client *ac, uint32_t sid, bool unlink)
{
	for (struct pending **pp = &ac->pending; *pp; pp = &(*pp)->next) {
		struct pending *p = *pp;
		if (p->sid != sid)
			continue;
		if (unlink) {
			*pp = p->next;
			ac->n_pending--;
		}
		return p;
	}
	return NULL;
}

static void dispatch(struct agent_client *ac)
{
	struct ttrpc_frame f;
	int r;

	while ((r = ttrpc_decoder_next(&ac->dec, &f)) != 0) {
		struct pending *p;
		if (r == -EMSGSIZE) {
			log_warn("agent sent a %u-byte frame on stream %u: over the limit, dropped",
			         f.length, f.stream_id);
			p = f.type == TTRPC_TYPE_RESPONSE ? pending_find(ac, f.stream_id, true)
			                                  : NULL;
			if (p) {
				if (p->cb)
					p->cb(ac, TTRPC_RESOURCE_EXHAUSTED,
					      "reply over the size limit", NULL, 0, p->userdata);
				free(p);
			}
			continue;
		}
		if (f.type == TTRPC_TYPE_DATA) {
			p = pending_find(ac, f.stream_id, false);
			if (p && p->data_cb)
				p->data_cb(ac, f.payload, f.length, p->userdata);
			continue;
		}
		if (f.type != TTRPC_TYPE_RESPONSE)
			continue;
		p = pending_find(ac, f.stream_id, true);
		if (!p) {
			log_debug("agent replied on unknown stream %u: dropped", f.stream_id);
			continue;
		}
		Hull__Ttrpc__Response *resp =
		    hull__ttrpc__response__unpack(NULL, f.length, f.payload);
		if (!resp) {
			if (p->cb)
				p->cb(ac, TTRPC_INTERNAL, "agent reply does not decode", NULL, 0,
				      p->userdata);
		} else {
			int code = resp->status ? resp->status->code : 0;
			const char *msg =
			    resp->status && resp->status->message ? resp->status->message : "";
			if (p->cb)
				p->cb(ac, code, msg, resp->payload.data, resp->payload.len,
				      p->userdata);
			hull__ttrpc__response__free_unpacked(resp, NULL);
		}
		free(p);
	}
}

void agent_client_feed(struct agent_client *ac, const void *data, size_t len)
{
	ttrpc_decoder_feed(&ac->dec, data, len);
	dispatch(ac);
}

int agent_client_io(struct agent_client *ac, struct hull_error **err)
{
	uint8_t tmp[128 << 10];

	while (ac->out.len > 0) {
		ssize_t n =
		    send(ac->fd, buf_head(&ac->out), ac->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return hull_error_set_errno(err, -errno, "write to agent");
		}
		buf_consume(&ac->out, (size_t)n);
	}
	for (;;) {
		ssize_t n = read(ac->fd, tmp, sizeof(tmp));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return hull_error_set_errno(err, -errno, "read from agent");
		}
		if (n == 0)
			return hull_error_set(err, -ECONNRESET, "agent channel closed");
		agent_client_feed(ac, tmp, (size_t)n);
	}
}

struct sync_state {
	bool done;
	int code;
	char *message;
	uint8_t *payload;
	size_t len;
};

static void sync_cb(struct agent_client *ac, int code, const char *message, const uint8_t *payload,
                    size_t len, void *userdata)
{
	struct sync_state *s = userdata;
	(void)ac;
	s->done = true;
	s->code = code;
	s->message = xstrndup(message, 1024);
	if (len) {
		s->payload = xmalloc(len);
		memcpy(s->payload, payload, len);
	}
	s->len = len;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int agent_client_call_sync(struct agent_client *ac, const char *method, const ProtobufCMessage *msg,
                           const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret,
                           int timeout_ms, struct hull_error **err)
{
	struct sync_state s = {0};
	int64_t deadline = mono_ms() + timeout_ms;
	uint32_t sid;
	int r = 0;

	if (ac->n_pending >= MAX_PENDING)
		return hull_error_set(err, -EBUSY, "%s: too many calls in flight", method);
	sid = agent_client_call(ac, method, msg, 0, sync_cb, NULL, &s);
	while (!s.done) {
		struct pollfd pfds[3] = {
		    {.fd = ac->fd, .events = POLLIN | (ac->out.len ? POLLOUT : 0)},
		    {.fd = ac->interrupt_fd, .events = POLLIN},
		    {.fd = ac->exit_fd, .events = POLLIN},
		};
		int64_t left = deadline - mono_ms();
		if (left <= 0) {
			r = hull_error_set(err, -ETIMEDOUT, "%s: no answer from the agent in %d ms",
			                   method, timeout_ms);
			break;
		}
		r = poll(pfds, 3, (int)left);
		if (r < 0 && errno != EINTR) {
			r = hull_error_set_errno(err, -errno, "poll");
			break;
		}
		r = 0;
		if (pfds[1].revents & POLLIN) {
			r = hull_error_set(err, -EINTR, "%s: interrupted", method);
			break;
		}
		if (pfds[0].revents) {
			struct hull_error *io_err = NULL;
			r = agent_client_io(ac, &io_err);
			if (r < 0) {
				/* Our reply may have come in the same read as the EOF. */
				if (!s.done) {
					if (err && !*err)
						*err = io_err;
					else
						hull_error_free(io_err);
				} else {
					hull_error_free(io_err);
					r = 0;
				}
				break;
			}
		} else if (pfds[2].revents & POLLIN) {
			r = hull_error_set(err, -ECHILD, "%s: the VM exited", method);
			break;
		}
	}
	if (!s.done) {
		struct pending *p = pending_find(ac, sid, true);
		free(p);
		return r;
	}
	if (s.code != 0) {
		r = hull_error_set(err, ttrpc_errno_from_code(s.code), "%s", s.message);
	} else if (desc) {
		*ret = protobuf_c_message_unpack(desc, NULL, s.len, s.payload);
		if (!*ret)
			r = hull_error_set(err, -EBADMSG, "%s: agent reply does not decode",
			                   method);
	}
	free(s.message);
	free(s.payload);
	return r;
}
