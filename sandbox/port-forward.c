/* SPDX-License-Identifier: MIT */
#include "port-forward.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "agent.pb-c.h"
#include "buf.h"
#include "log.h"
#include "util.h"

#define WINDOW (4u << 20) /* what we let the guest send before we have written it */
#define CHUNK (64u << 10)

struct port_forward {
	struct event_loop *loop;
	struct agent_client *ac;
	int fd;
	uint32_t sid;
	uint64_t credit; /* bytes the guest lets us send it */
	bool in_eof;     /* the client is done sending */
	bool out_eof;    /* the guest is done sending; shut our side once out is written */
	bool gone;       /* the client hung up both ways: fd no longer watched */
	bool finished;   /* the guest's reply came: the stream is over */
	bool reported;
	int code;
	char *msg;
	struct buf out; /* guest -> client, not yet written */
	port_forward_done_cb done;
	void *userdata;
};

static void update_interest(struct port_forward *pf)
{
	uint32_t ev = 0;
	if (pf->gone)
		return;
	if (!pf->in_eof && pf->credit > 0)
		ev |= EPOLLIN;
	if (pf->out.len > 0)
		ev |= EPOLLOUT;
	event_mod(pf->loop, pf->fd, ev);
}

/* Write what the guest sent; every byte written is credit back to the guest. */
static void flush_out(struct port_forward *pf)
{
	size_t written = 0;
	while (pf->out.len > 0) {
		ssize_t n = send(pf->fd, buf_head(&pf->out), pf->out.len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			/* The client is gone: drop what the guest sends from now on. */
			written += pf->out.len;
			buf_consume(&pf->out, pf->out.len);
			pf->in_eof = true;
			break;
		}
		buf_consume(&pf->out, (size_t)n);
		written += (size_t)n;
	}
	if (written && !pf->finished)
		agent_client_send_stdio(pf->ac, pf->sid, NULL, 0, false, written);
	if (pf->out_eof && pf->out.len == 0 && !pf->gone)
		(void)shutdown(pf->fd, SHUT_WR);
}

/* Done once the stream is over and what the guest sent is written to the client. */
static void maybe_done(struct port_forward *pf)
{
	if (!pf->finished || pf->reported || (pf->code == 0 && pf->out.len > 0))
		return;
	pf->reported = true;
	if (!pf->gone) {
		event_mod(pf->loop, pf->fd, 0);
		if (pf->code == 0)
			(void)shutdown(pf->fd, SHUT_WR);
	}
	pf->done(pf, pf->code ? -ttrpc_errno_from_code(pf->code) : 0, pf->msg, pf->userdata);
}

static void on_fd(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct port_forward *pf = userdata;
	uint8_t chunk[CHUNK];
	(void)loop, (void)fd;

	if (revents & EPOLLOUT)
		flush_out(pf);
	if ((revents & (EPOLLHUP | EPOLLERR)) && !(revents & EPOLLIN)) {
		/* Reported whatever we ask for: stop watching, or the loop spins. The guest
		 * is told the client is done; what it still sends is dropped. */
		pf->gone = true;
		event_del(pf->loop, pf->fd);
		if (!pf->in_eof && !pf->finished)
			agent_client_send_stdio(pf->ac, pf->sid, NULL, 0, true, 0);
		pf->in_eof = true;
		if (pf->out.len) {
			if (!pf->finished)
				agent_client_send_stdio(pf->ac, pf->sid, NULL, 0, false,
				                        pf->out.len);
			buf_consume(&pf->out, pf->out.len);
		}
	}
	if (pf->finished) {
		maybe_done(pf);
		return;
	}
	while ((revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !pf->in_eof && pf->credit > 0) {
		ssize_t n = read(pf->fd, chunk, (size_t)MIN((uint64_t)sizeof(chunk), pf->credit));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			pf->in_eof = true;
			agent_client_send_stdio(pf->ac, pf->sid, NULL, 0, true, 0);
			break;
		}
		pf->credit -= (uint64_t)n;
		agent_client_send_stdio(pf->ac, pf->sid, chunk, (size_t)n, false, 0);
	}
	update_interest(pf);
}

static void on_data(struct agent_client *ac, const uint8_t *payload, size_t len, void *userdata)
{
	struct port_forward *pf = userdata;
	Hull__Agent__V1__StdioData *d = hull__agent__v1__stdio_data__unpack(NULL, len, payload);
	(void)ac;

	if (!d) {
		log_warn("port-forward: undecodable frame from the guest dropped");
		return;
	}
	/* Credit beyond any sane window is a confused or hostile guest. */
	pf->credit = MIN(pf->credit + d->credit, (uint64_t)64 << 20);
	if (d->fd == 1 && d->data.len > 0 && !pf->out_eof) {
		if (pf->out.len + d->data.len > 2 * WINDOW) {
			log_warn("port-forward: the guest sent past its credit; closing");
			pf->out_eof = true;
		} else {
			buf_append(&pf->out, d->data.data, d->data.len);
		}
	}
	if (d->fd == 1 && d->eof)
		pf->out_eof = true;
	hull__agent__v1__stdio_data__free_unpacked(d, NULL);
	if (!pf->finished) {
		flush_out(pf);
		update_interest(pf);
	}
}

static void on_reply(struct agent_client *ac, int code, const char *message, const uint8_t *payload,
                     size_t len, void *userdata)
{
	struct port_forward *pf = userdata;
	(void)ac, (void)payload, (void)len;
	pf->finished = true;
	pf->code = code;
	pf->msg = message ? xstrdup(message) : NULL;
	pf->in_eof = true;
	flush_out(pf);
	update_interest(pf);
	maybe_done(pf);
}

struct port_forward *port_forward_start(struct event_loop *loop, struct agent_client *ac,
                                        unsigned port, int fd, port_forward_done_cb done,
                                        void *userdata)
{
	struct port_forward *pf = xcalloc(1, sizeof(*pf));
	Hull__Agent__V1__PortForwardRequest req = HULL__AGENT__V1__PORT_FORWARD_REQUEST__INIT;

	pf->loop = loop;
	pf->ac = ac;
	pf->fd = fd;
	pf->done = done;
	pf->userdata = userdata;
	fd_set_nonblock(fd, 1);
	req.port = port;
	pf->sid = agent_client_call(ac, "PortForward", &req.base, 0, on_reply, on_data, pf);
	/* Our window for the guest's bytes; it grants ours in its first frame. */
	agent_client_send_stdio(pf->ac, pf->sid, NULL, 0, false, WINDOW);
	event_add(loop, fd, 0, on_fd, pf);
	return pf;
}

void port_forward_free(struct port_forward *pf)
{
	if (!pf)
		return;
	event_del(pf->loop, pf->fd);
	buf_release(&pf->out);
	free(pf->msg);
	free(pf);
}
