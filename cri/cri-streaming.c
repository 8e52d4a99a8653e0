/* SPDX-License-Identifier: MIT */
/* Exec, Attach and PortForward: the CRI calls return a URL on the streaming server
 * (cri-stream*.c); when the client connects, the session's backend here runs it:
 *  - exec: a process through the shim's Exec/Start/Wait/Delete, its stdin, stdout and
 *    stderr through FIFOs (a terminal when asked, sized by the resize channel), its exit
 *    status on the error channel; a client that leaves kills it;
 *  - attach: the container's own streams: what its log reader reads is also sent to
 *    the client, the client's stdin goes into the container's stdin FIFO (made at
 *    CreateContainer when the config asks for stdin; closed after the first attach
 *    when stdin_once); the session ends when the container's output does;
 *  - port-forward: each connection the client opens is a TCP connection to
 *    127.0.0.1:PORT made inside the pod's network namespace, as containerd makes it;
 *    for a hull pod the shim carries it into the VM (shim-portfwd.c).
 * Output waits when the client reads slowly (the session's 1 MiB bound): the source is
 * not read until the session drains. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "buf.h"
#include "cni.h"
#include "cri-internal.h"
#include "cri-stream.h"
#include "json.h"
#include "log.h"
#include "ttrpc.h"
#include "util.h"

#define IN_MAX (4u << 20)  /* client input queued for a process that does not read */
#define IN_HIGH (1u << 20) /* ... over which the session stops reading the client */
#define DRAIN_MS 2000

/* ---- a FIFO or socket pumped to the session ---- */

struct pump {
	struct cri *c;
	struct cri_stream_session *s;
	int fd;
	int channel;
	bool paused, done;
	void (*eof)(struct pump *p);
	void *owner;
};

static void pump_stop(struct pump *p)
{
	if (p->fd >= 0) {
		event_del(p->c->loop, p->fd);
		close(p->fd);
		p->fd = -1;
	}
}

static void on_pump(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct pump *p = userdata;
	uint8_t chunk[65536];
	(void)loop, (void)revents;

	for (int i = 0; i < 8; i++) {
		if (!cri_stream_session_writable(p->s)) {
			/* The client is slow: wait for its drain. */
			p->paused = true;
			event_mod(p->c->loop, fd, 0);
			return;
		}
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			p->done = true;
			pump_stop(p);
			if (p->eof)
				p->eof(p);
			return;
		}
		cri_stream_session_write(p->s, p->channel, chunk, (size_t)n);
	}
}

static void pump_resume(struct pump *p)
{
	if (p->paused && p->fd >= 0) {
		p->paused = false;
		event_mod(p->c->loop, p->fd, EPOLLIN);
	}
}

static int pump_start(struct pump *p, struct cri *c, struct cri_stream_session *s, int fd,
                      int channel, void (*eof)(struct pump *p), void *owner)
{
	p->c = c;
	p->s = s;
	p->fd = fd;
	p->channel = channel;
	p->eof = eof;
	p->owner = owner;
	fd_set_nonblock(fd, true);
	return event_add(c->loop, fd, EPOLLIN, on_pump, p);
}

/* Bytes for a process's stdin (or a socket), queued when it does not read. Over IN_HIGH
 * the session's input is paused (the client is not read, SPDY's windows and TCP hold it
 * back) until the reader takes the queue below it again: a client sends faster than the
 * FIFO into the VM drains, and what it sends must not be dropped. */
struct sink {
	struct cri *c;
	struct cri_stream_session *s; /* NULL once the session is gone */
	int fd;
	struct buf q;
	bool closing; /* close once q is written */
	bool watching;
	bool paused; /* we paused s's input */
};

static void sink_close(struct sink *k)
{
	if (k->fd >= 0) {
		if (k->watching)
			event_del(k->c->loop, k->fd);
		close(k->fd);
		k->fd = -1;
	}
	k->watching = false;
	buf_release(&k->q);
	k->s = NULL; /* closed with the session, or drained: no pause is left to undo */
	k->paused = false;
}

static void sink_flush(struct sink *k);

static void on_sink(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	(void)loop, (void)fd, (void)revents;
	sink_flush(userdata);
}

static void sink_flush(struct sink *k)
{
	while (k->fd >= 0 && k->q.len > 0) {
		ssize_t w = write(k->fd, buf_head(&k->q), k->q.len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			break;
		if (w < 0) {
			/* The reader is gone: what it would have read is dropped. */
			buf_release(&k->q);
			break;
		}
		buf_consume(&k->q, (size_t)w);
	}
	if (k->s && k->paused != (k->q.len >= IN_HIGH)) {
		k->paused = !k->paused;
		cri_stream_session_set_input_paused(k->s, k->paused);
	}
	if (k->fd < 0)
		return;
	if (k->q.len > 0 && !k->watching) {
		if (event_add(k->c->loop, k->fd, EPOLLOUT, on_sink, k) == 0)
			k->watching = true;
	} else if (k->q.len == 0 && k->watching) {
		event_del(k->c->loop, k->fd);
		k->watching = false;
	}
	if (k->q.len == 0 && k->closing)
		sink_close(k);
}

static void sink_write(struct sink *k, const uint8_t *p, size_t n)
{
	if (k->fd < 0 || k->closing)
		return;
	if (k->q.len + n > IN_MAX) {
		log_info("streaming: input dropped: %zu bytes wait for a reader", k->q.len);
		return;
	}
	buf_append(&k->q, p, n);
	sink_flush(k);
}

static void sink_end(struct sink *k)
{
	k->closing = true;
	sink_flush(k);
}

/* ---- exec ---- */

struct exec_req {
	struct cri *c;
	char *ctr_id;
	char **cmd;
	size_t n_cmd;
	bool tty, in, out, err;
	/* the running session */
	struct cri_stream_session *s;
	struct cri_pod *pod;
	char *exec_id;
	char *paths[3];
	struct pump pumps[2];
	struct sink stdin_;
	bool started, exited, ended;
	uint32_t status;
	int timer_fd;
	unsigned refs;          /* the session, and each shim call in flight */
	uint16_t width, height; /* the last terminal size asked for */
};

static void exec_req_free(struct exec_req *x);

/* A shim call's answer: false when the session is gone (x freed with the last one). */
static bool exec_answer(struct exec_req *x)
{
	x->refs--;
	if (x->s)
		return true;
	if (x->refs == 0)
		exec_req_free(x);
	return false;
}

static bool exec_call(struct exec_req *x, const char *method, const ProtobufCMessage *msg,
                      int timeout_ms, ttrpc_reply_cb cb)
{
	if (!shim_call(x->pod, method, msg, timeout_ms, cb, x))
		return false;
	x->refs++;
	return true;
}

static void exec_req_free(struct exec_req *x)
{
	for (size_t i = 0; i < x->n_cmd; i++)
		free(x->cmd[i]);
	free(x->cmd);
	for (int i = 0; i < 3; i++) {
		if (x->paths[i])
			unlink(x->paths[i]);
		free(x->paths[i]);
	}
	free(x->ctr_id);
	free(x->exec_id);
	free(x);
}

static void exec_end(struct exec_req *x, const struct hull_error *err)
{
	if (x->ended)
		return;
	x->ended = true;
	cri_stream_session_end(x->s, (int)x->status, err); /* gone() follows */
}

static void exec_maybe_end(struct exec_req *x)
{
	if (x->exited && (x->pumps[0].done || x->pumps[0].fd < 0) &&
	    (x->pumps[1].done || x->pumps[1].fd < 0))
		exec_end(x, NULL);
}

static void exec_pump_eof(struct pump *p)
{
	struct exec_req *x = p->owner;
	cri_stream_session_close_output(x->s, p->channel);
	exec_maybe_end(x);
}

static void on_exec_drain_timer(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	uint64_t t;
	(void)loop, (void)revents;
	(void)!read(fd, &t, sizeof(t));
	exec_end(userdata, NULL);
}

static void on_exec_waited(struct ttrpc_client *tc, int code, const char *message,
                           const uint8_t *payload, size_t len, void *userdata)
{
	struct exec_req *x = userdata;
	Hull__Task__WaitResponse *w;
	(void)tc;

	if (!exec_answer(x))
		return;
	if (code != TTRPC_OK) {
		struct hull_error e = {.code = -EIO, .msg = (char *)message};
		exec_end(x, &e);
		return;
	}
	w = hull__task__wait_response__unpack(NULL, len, payload);
	x->status = w ? w->exit_status : 255;
	if (w)
		hull__task__wait_response__free_unpacked(w, NULL);
	x->exited = true;
	exec_maybe_end(x);
	if (!x->ended) {
		struct itimerspec its = {.it_value = {.tv_sec = DRAIN_MS / 1000}};
		timerfd_settime(x->timer_fd, 0, &its, NULL);
	}
}

static void exec_send_size(struct exec_req *x);

static void on_exec_started(struct ttrpc_client *tc, int code, const char *message,
                            const uint8_t *payload, size_t len, void *userdata)
{
	struct exec_req *x = userdata;
	Hull__Task__WaitRequest wr = HULL__TASK__WAIT_REQUEST__INIT;
	(void)tc, (void)payload, (void)len;

	if (!exec_answer(x))
		return;
	if (code != TTRPC_OK) {
		struct hull_error e = {
		    .code = -EIO,
		    .msg = xasprintf("exec in container '%s': start: %s", x->ctr_id, message)};
		exec_end(x, &e);
		free(e.msg);
		return;
	}
	x->started = true;
	if (x->tty && x->width && x->height)
		exec_send_size(x);
	wr.id = x->ctr_id;
	wr.exec_id = x->exec_id;
	if (!exec_call(x, "Wait", &wr.base, 0, on_exec_waited)) {
		struct hull_error e = {.code = -EIO, .msg = (char *)"the pod's shim is gone"};
		exec_end(x, &e);
	}
}

static void on_exec_created(struct ttrpc_client *tc, int code, const char *message,
                            const uint8_t *payload, size_t len, void *userdata)
{
	struct exec_req *x = userdata;
	Hull__Task__StartRequest sr = HULL__TASK__START_REQUEST__INIT;
	(void)tc, (void)payload, (void)len;

	if (!exec_answer(x))
		return;
	if (code != TTRPC_OK) {
		struct hull_error e = {
		    .code = -EIO,
		    .msg = xasprintf("exec in container '%s': %s", x->ctr_id, message)};
		exec_end(x, &e);
		free(e.msg);
		return;
	}
	sr.id = x->ctr_id;
	sr.exec_id = x->exec_id;
	if (!exec_call(x, "Start", &sr.base, SHIM_CALL_TIMEOUT_MS, on_exec_started)) {
		struct hull_error e = {.code = -EIO, .msg = (char *)"the pod's shim is gone"};
		exec_end(x, &e);
	}
}

static void exec_drain(void *userdata)
{
	struct exec_req *x = userdata;
	pump_resume(&x->pumps[0]);
	pump_resume(&x->pumps[1]);
}

static int fifo_make(const char *path, int flags, int *ret, struct hull_error **err)
{
	if (mkfifo(path, 0600) < 0)
		return hull_error_set_errno(err, -errno, "mkfifo '%s'", path);
	*ret = open(path, flags | O_NONBLOCK | O_CLOEXEC);
	if (*ret < 0)
		return hull_error_set_errno(err, -errno, "open '%s'", path);
	return 0;
}

static int exec_start(void *userdata, struct cri_stream_session *s, struct hull_error **err)
{
	struct exec_req *x = userdata;
	struct cri_ctr *k = ctr_find(x->c, x->ctr_id);
	Hull__Task__ExecProcessRequest er = HULL__TASK__EXEC_PROCESS_REQUEST__INIT;
	Hull__Task__Any spec = HULL__TASK__ANY__INIT;
	_cleanup_free_ char *process = NULL, *id = NULL;
	int fd = -1, r;

	x->s = s;
	x->refs = 1;
	x->pumps[0].fd = x->pumps[1].fd = x->stdin_.fd = x->timer_fd = -1;
	x->stdin_.c = x->c;
	x->stdin_.s = s;
	if (!k || k->state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING || !k->pod->shim)
		return hull_error_set(err, -ENOENT, "container '%s' is not running", x->ctr_id);
	x->pod = k->pod;
	r = cri_exec_process(k, x->cmd, x->n_cmd, x->tty, &process, err);
	if (r < 0)
		return r;
	id = cri_new_id();
	x->exec_id = xstrndup(id, 24);
	x->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (x->timer_fd < 0 ||
	    event_add(x->c->loop, x->timer_fd, EPOLLIN, on_exec_drain_timer, x) < 0)
		return hull_error_set_errno(err, -EMFILE, "timer");
	static const char *const names[3] = {"stdin", "stdout", "stderr"};
	for (int i = 0; i < 3; i++) {
		bool want = i == 0 ? x->in : i == 1 ? x->out : x->err && !x->tty;
		if (!want)
			continue;
		x->paths[i] = xasprintf("%s/exec-%s-%s", k->dir, x->exec_id, names[i]);
		/* stdin: ours is the write end (O_RDWR, so that opening it never waits); the
		 * outputs: ours are the read ends. */
		r = fifo_make(x->paths[i], i == 0 ? O_RDWR : O_RDONLY, &fd, err);
		if (r < 0)
			return r;
		if (i == 0) {
			x->stdin_.fd = fd;
		} else {
			r = pump_start(&x->pumps[i - 1], x->c, s, fd,
			               i == 1 ? CRI_CH_STDOUT : CRI_CH_STDERR, exec_pump_eof, x);
			if (r < 0)
				return hull_error_set_errno(err, r, "watch '%s'", x->paths[i]);
		}
	}
	cri_stream_session_set_drain(s, exec_drain, x);
	spec.type_url = (char *)"types.containerd.io/opencontainers/runtime-spec/1/Process";
	spec.value.data = (uint8_t *)process;
	spec.value.len = strlen(process);
	er.id = x->ctr_id;
	er.exec_id = x->exec_id;
	er.terminal = x->tty;
	er.stdin = x->paths[0] ? x->paths[0] : (char *)"";
	er.stdout = x->paths[1] ? x->paths[1] : (char *)"";
	er.stderr = x->paths[2] ? x->paths[2] : (char *)"";
	er.spec = &spec;
	if (!exec_call(x, "Exec", &er.base, SHIM_CALL_TIMEOUT_MS, on_exec_created))
		return hull_error_set(err, -EIO, "the pod's shim is gone");
	return 0;
}

static void exec_data(void *userdata, struct cri_stream_session *s, int channel, const uint8_t *p,
                      size_t n)
{
	struct exec_req *x = userdata;
	(void)s, (void)channel;
	sink_write(&x->stdin_, p, n);
}

static void exec_close_input(void *userdata, struct cri_stream_session *s, int channel)
{
	struct exec_req *x = userdata;
	(void)s, (void)channel;
	sink_end(&x->stdin_);
}

static void on_resized(struct ttrpc_client *tc, int code, const char *message,
                       const uint8_t *payload, size_t len, void *userdata)
{
	(void)tc, (void)payload, (void)len, (void)userdata;
	if (code != TTRPC_OK)
		log_debug("resize: %s", message);
}

static void exec_send_size(struct exec_req *x)
{
	Hull__Task__ResizePtyRequest rr = HULL__TASK__RESIZE_PTY_REQUEST__INIT;
	rr.id = x->ctr_id;
	rr.exec_id = x->exec_id;
	rr.width = x->width;
	rr.height = x->height;
	log_debug("exec '%s' in '%s': terminal %ux%u", x->exec_id, x->ctr_id, x->width, x->height);
	(void)shim_call(x->pod, "ResizePty", &rr.base, SHIM_CALL_TIMEOUT_MS, on_resized, NULL);
}

static void exec_resize(void *userdata, struct cri_stream_session *s, uint16_t w, uint16_t h)
{
	struct exec_req *x = userdata;
	(void)s;
	log_debug("exec in '%s': resize to %ux%u%s", x->ctr_id, w, h,
	          x->started ? "" : " (at start)");
	x->width = w;
	x->height = h;
	/* Before the process started (the client sends its size at once), the size waits
	 * for Start. */
	if (x->started)
		exec_send_size(x);
}

static void exec_gone(void *userdata, struct cri_stream_session *s)
{
	struct exec_req *x = userdata;
	(void)s;
	/* The client left with the process running: it goes, as under kubelet. */
	if (x->pod && x->exec_id && ctr_find(x->c, x->ctr_id) && x->pod->shim) {
		Hull__Task__KillRequest kr = HULL__TASK__KILL_REQUEST__INIT;
		Hull__Task__DeleteRequest dr = HULL__TASK__DELETE_REQUEST__INIT;
		if (!x->exited) {
			kr.id = x->ctr_id;
			kr.exec_id = x->exec_id;
			kr.signal = SIGKILL;
			(void)shim_call(x->pod, "Kill", &kr.base, SHIM_CALL_TIMEOUT_MS, NULL, NULL);
		}
		if (x->started) {
			dr.id = x->ctr_id;
			dr.exec_id = x->exec_id;
			(void)shim_call(x->pod, "Delete", &dr.base, SHIM_CALL_TIMEOUT_MS, NULL,
			                NULL);
		}
	}
	x->s = NULL;
	pump_stop(&x->pumps[0]);
	pump_stop(&x->pumps[1]);
	sink_close(&x->stdin_);
	if (x->timer_fd >= 0) {
		event_del(x->c->loop, x->timer_fd);
		close(x->timer_fd);
		x->timer_fd = -1;
	}
	/* Shim calls still in flight name x: the last answer frees it. */
	if (--x->refs == 0)
		exec_req_free(x);
}

static void exec_unused(void *userdata)
{
	exec_req_free(userdata);
}

static const struct cri_stream_backend exec_backend = {
    .start = exec_start,
    .data = exec_data,
    .close_input = exec_close_input,
    .resize = exec_resize,
    .gone = exec_gone,
    .unused = exec_unused,
};

/* ---- attach ---- */

struct attach_req {
	struct cri *c;
	char *ctr_id;
	bool tty, in, out, err;
	struct cri_stream_session *s;
	struct cri_ctr *k; /* while the session runs: detached in cri_attach_end_all */
	bool ended;
	/* The client's stdin into a dup of the container's FIFO, queued and paced as an
	 * exec's (a container that does not read its stdin never stalls the loop). */
	struct sink stdin_;
};

static void attach_tap(void *userdata, const uint8_t *p, size_t n, int channel)
{
	struct attach_req *a = userdata;
	if (a->s && !a->ended)
		cri_stream_session_write(a->s, channel, p, n);
}

static void attach_tap_out(void *userdata, const uint8_t *p, size_t n)
{
	attach_tap(userdata, p, n, CRI_CH_STDOUT);
}

static void attach_tap_err(void *userdata, const uint8_t *p, size_t n)
{
	attach_tap(userdata, p, n, CRI_CH_STDERR);
}

static void attach_detach(struct attach_req *a)
{
	struct cri_ctr *k = a->k;
	if (!k)
		return;
	if (k->out)
		cri_log_reader_remove_tap(k->out, a);
	if (k->err)
		cri_log_reader_remove_tap(k->err, a);
	cri_attach_forget(k, a);
	a->k = NULL;
}

static int attach_start(void *userdata, struct cri_stream_session *s, struct hull_error **err)
{
	struct attach_req *a = userdata;
	struct cri_ctr *k = ctr_find(a->c, a->ctr_id);

	a->s = s;
	if (!k || k->state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING)
		return hull_error_set(err, -ENOENT, "container '%s' is not running", a->ctr_id);
	if (a->in && k->stdin_fd < 0)
		return hull_error_set(err, -EINVAL,
		                      "container '%s' was not created with stdin (config.stdin)",
		                      a->ctr_id);
	a->k = k;
	a->stdin_.c = a->c;
	a->stdin_.fd = -1;
	if (a->in) {
		a->stdin_.fd = fcntl(k->stdin_fd, F_DUPFD_CLOEXEC, 3);
		if (a->stdin_.fd < 0)
			return hull_error_set_errno(err, -errno, "stdin of container '%s'",
			                            a->ctr_id);
		a->stdin_.s = s;
	}
	cri_attach_remember(k, a);
	if (a->out && k->out)
		cri_log_reader_add_tap(k->out, attach_tap_out, a);
	if (a->err && k->err)
		cri_log_reader_add_tap(k->err, attach_tap_err, a);
	return 0;
}

static void attach_data(void *userdata, struct cri_stream_session *s, int channel, const uint8_t *p,
                        size_t n)
{
	struct attach_req *a = userdata;
	(void)s, (void)channel;
	sink_write(&a->stdin_, p, n);
}

static void attach_close_input(void *userdata, struct cri_stream_session *s, int channel)
{
	struct attach_req *a = userdata;
	(void)s, (void)channel;
	/* stdin_once: the first attach that closes stdin closes it for the container
	 * (ours goes once what is queued is written). */
	if (a->k && a->k->config->stdin_once && a->k->stdin_fd >= 0) {
		close(a->k->stdin_fd);
		a->k->stdin_fd = -1;
		sink_end(&a->stdin_);
	}
}

static void attach_resize(void *userdata, struct cri_stream_session *s, uint16_t w, uint16_t h)
{
	struct attach_req *a = userdata;
	Hull__Task__ResizePtyRequest rr = HULL__TASK__RESIZE_PTY_REQUEST__INIT;
	(void)s;
	if (!a->k)
		return;
	rr.id = a->ctr_id;
	rr.width = w;
	rr.height = h;
	(void)shim_call(a->k->pod, "ResizePty", &rr.base, SHIM_CALL_TIMEOUT_MS, NULL, NULL);
}

static void attach_free(struct attach_req *a)
{
	if (a->stdin_.c)
		sink_close(&a->stdin_);
	free(a->ctr_id);
	free(a);
}

static void attach_gone(void *userdata, struct cri_stream_session *s)
{
	struct attach_req *a = userdata;
	(void)s;
	attach_detach(a);
	attach_free(a);
}

static void attach_unused(void *userdata)
{
	attach_free(userdata);
}

static const struct cri_stream_backend attach_backend = {
    .start = attach_start,
    .data = attach_data,
    .close_input = attach_close_input,
    .resize = attach_resize,
    .gone = attach_gone,
    .unused = attach_unused,
};

void cri_attach_end_all(struct cri_ctr *k)
{
	while (k->attaches) {
		struct attach_req *a = k->attaches[0];
		attach_detach(a);
		if (!a->ended) {
			a->ended = true;
			cri_stream_session_end(a->s, 0, NULL);
		}
	}
}

void cri_attach_remember(struct cri_ctr *k, void *a)
{
	k->attaches = xrealloc(k->attaches, (k->n_attaches + 2) * sizeof(*k->attaches));
	k->attaches[k->n_attaches++] = a;
	k->attaches[k->n_attaches] = NULL;
}

void cri_attach_forget(struct cri_ctr *k, void *a)
{
	for (size_t i = 0; i < k->n_attaches; i++)
		if (k->attaches[i] == a) {
			memmove(&k->attaches[i], &k->attaches[i + 1],
			        (k->n_attaches - i) * sizeof(*k->attaches));
			k->n_attaches--;
			break;
		}
	if (k->n_attaches == 0) {
		free(k->attaches);
		k->attaches = NULL;
	}
}

/* ---- port-forward ---- */

struct fwd_conn {
	struct fwd_req *f;
	int channel;
	int fd;
	bool connected, in_closed, out_done, paused;
	struct buf q; /* client bytes before the connect completes, or while the socket is full */
};

struct fwd_req {
	struct cri *c;
	char *pod_id;
	struct cri_stream_session *s;
	struct fwd_conn **conns;
	size_t n_conns;
	bool in_paused; /* the client's input, while a target's queue is full */
};

static struct fwd_conn *conn_of(struct fwd_req *f, int channel)
{
	for (size_t i = 0; i < f->n_conns; i++)
		if (f->conns[i] && f->conns[i]->channel == channel)
			return f->conns[i];
	return NULL;
}

static void conn_drop(struct fwd_conn *fc)
{
	struct fwd_req *f = fc->f;
	if (f->in_paused && fc->q.len >= IN_HIGH && f->s) {
		f->in_paused = false;
		cri_stream_session_set_input_paused(f->s, false);
	}
	if (fc->fd >= 0) {
		event_del(f->c->loop, fc->fd);
		close(fc->fd);
	}
	buf_release(&fc->q);
	for (size_t i = 0; i < f->n_conns; i++)
		if (f->conns[i] == fc)
			f->conns[i] = NULL;
	free(fc);
}

static void conn_fail(struct fwd_conn *fc, const char *why)
{
	struct fwd_req *f = fc->f;
	uint16_t port = cri_stream_session_port_of(f->s, fc->channel);
	_cleanup_free_ char *msg =
	    xasprintf("error forwarding port %u to pod %s, uid : %s", port, f->pod_id, why);
	cri_stream_session_port_error(f->s, fc->channel, msg);
	conn_drop(fc);
}

static void conn_update(struct fwd_conn *fc)
{
	uint32_t ev = 0;
	if (!fc->connected)
		ev = EPOLLOUT;
	else {
		if (!fc->out_done && !fc->paused)
			ev |= EPOLLIN;
		if (fc->q.len > 0)
			ev |= EPOLLOUT;
	}
	event_mod(fc->f->c->loop, fc->fd, ev);
}

static void conn_flush(struct fwd_conn *fc)
{
	while (fc->q.len > 0) {
		ssize_t w = send(fc->fd, buf_head(&fc->q), fc->q.len, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			break;
		if (w < 0) {
			conn_fail(fc, strerror(errno));
			return;
		}
		buf_consume(&fc->q, (size_t)w);
	}
	if (fc->q.len < IN_HIGH && fc->f->in_paused) {
		fc->f->in_paused = false;
		cri_stream_session_set_input_paused(fc->f->s, false);
	}
	if (fc->q.len == 0 && fc->in_closed)
		(void)shutdown(fc->fd, SHUT_WR);
	conn_update(fc);
}

static void on_conn(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct fwd_conn *fc = userdata;
	struct fwd_req *f = fc->f;
	uint8_t chunk[65536];
	(void)loop;

	if (!fc->connected) {
		int e = 0;
		socklen_t l = sizeof(e);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l);
		if (e != 0 || (revents & (EPOLLERR | EPOLLHUP)) == EPOLLERR) {
			conn_fail(fc, strerror(e ? e : ECONNREFUSED));
			return;
		}
		fc->connected = true;
		conn_flush(fc);
		return;
	}
	if (revents & EPOLLOUT) {
		conn_flush(fc);
		if (!conn_of(f, fc->channel))
			return;
	}
	if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) || fc->out_done)
		return;
	for (int i = 0; i < 8; i++) {
		if (!cri_stream_session_writable(f->s)) {
			fc->paused = true;
			conn_update(fc);
			return;
		}
		ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			conn_fail(fc, strerror(errno));
			return;
		}
		if (n == 0) {
			fc->out_done = true;
			cri_stream_session_close_output(f->s, fc->channel);
			conn_update(fc);
			return;
		}
		cri_stream_session_write(f->s, fc->channel, chunk, (size_t)n);
	}
}

struct dial {
	uint16_t port;
	int fd;
	int err;
};

/* In the pod's network namespace: a socket of that namespace, connecting to its
 * loopback (where a hull pod's shim redirects to the VM). */
static int dial_in_ns(void *userdata)
{
	struct dial *d = userdata;
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons(d->port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	d->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (d->fd < 0) {
		d->err = errno;
		return 0;
	}
	if (connect(d->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		d->err = errno;
		close(d->fd);
		d->fd = -1;
	}
	return 0;
}

static char *pod_netns_path(const struct cri_pod *p)
{
	if (p->cni && p->cni->netns)
		return xstrdup(p->cni->netns);
	if (pod_host_kernel(p) && p->pid)
		return xasprintf("/proc/%u/ns/net", p->pid);
	return NULL;
}

static void fwd_port_open(void *userdata, struct cri_stream_session *s, int channel)
{
	struct fwd_req *f = userdata;
	struct fwd_conn *fc = xcalloc(1, sizeof(*fc));
	struct cri_pod *p = pod_find(f->c, f->pod_id);
	_cleanup_free_ char *ns = p ? pod_netns_path(p) : NULL;
	struct dial d = {.port = cri_stream_session_port_of(s, channel), .fd = -1};
	int nsfd, r;

	fc->f = f;
	fc->channel = channel;
	fc->fd = -1;
	f->conns = xrealloc(f->conns, (f->n_conns + 1) * sizeof(*f->conns));
	f->conns[f->n_conns++] = fc;
	if (!ns) {
		conn_fail(fc, p ? "the pod has no network namespace of its own (no CNI network)"
		                : "the pod is gone");
		return;
	}
	nsfd = open(ns, O_RDONLY | O_CLOEXEC);
	r = nsfd < 0 ? -errno : netns_run(nsfd, dial_in_ns, &d);
	if (nsfd >= 0)
		close(nsfd);
	if (r < 0 || d.fd < 0) {
		conn_fail(fc, strerror(r < 0 ? -r : d.err));
		return;
	}
	fc->fd = d.fd;
	if (event_add(f->c->loop, fc->fd, EPOLLOUT, on_conn, fc) < 0) {
		conn_fail(fc, "cannot watch the connection");
		return;
	}
}

static int fwd_start(void *userdata, struct cri_stream_session *s, struct hull_error **err)
{
	struct fwd_req *f = userdata;
	struct cri_pod *p = pod_find(f->c, f->pod_id);
	f->s = s;
	if (!p || p->state != RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY)
		return hull_error_set(err, -ENOENT, "pod sandbox '%s' is not ready", f->pod_id);
	return 0;
}

static void fwd_data(void *userdata, struct cri_stream_session *s, int channel, const uint8_t *p,
                     size_t n)
{
	struct fwd_req *f = userdata;
	struct fwd_conn *fc = conn_of(f, channel);
	(void)s;
	if (!fc)
		return;
	if (fc->q.len + n > IN_MAX) {
		conn_fail(fc, "the pod does not read what is sent");
		return;
	}
	buf_append(&fc->q, p, n);
	/* The target reads slower than the client sends: hold the client back. */
	if (fc->q.len >= IN_HIGH && !f->in_paused) {
		f->in_paused = true;
		cri_stream_session_set_input_paused(f->s, true);
	}
	if (fc->connected)
		conn_flush(fc);
}

static void fwd_close_input(void *userdata, struct cri_stream_session *s, int channel)
{
	struct fwd_req *f = userdata;
	struct fwd_conn *fc = conn_of(f, channel);
	(void)s;
	if (!fc)
		return;
	fc->in_closed = true;
	if (fc->connected)
		conn_flush(fc);
}

static void fwd_port_reset(void *userdata, struct cri_stream_session *s, int channel)
{
	struct fwd_req *f = userdata;
	struct fwd_conn *fc = conn_of(f, channel);
	(void)s;
	if (fc)
		conn_drop(fc);
}

static void fwd_drain(void *userdata)
{
	struct fwd_req *f = userdata;
	for (size_t i = 0; i < f->n_conns; i++)
		if (f->conns[i] && f->conns[i]->paused) {
			f->conns[i]->paused = false;
			conn_update(f->conns[i]);
		}
}

static void fwd_free(struct fwd_req *f)
{
	for (size_t i = 0; i < f->n_conns; i++)
		if (f->conns[i])
			conn_drop(f->conns[i]);
	free(f->conns);
	free(f->pod_id);
	free(f);
}

static void fwd_gone(void *userdata, struct cri_stream_session *s)
{
	struct fwd_req *f = userdata;
	(void)s;
	f->s = NULL; /* gone: nothing is resumed on it */
	fwd_free(f);
}

static void fwd_unused(void *userdata)
{
	fwd_free(userdata);
}

static int fwd_start_drain(void *userdata, struct cri_stream_session *s, struct hull_error **err)
{
	int r = fwd_start(userdata, s, err);
	if (r == 0)
		cri_stream_session_set_drain(s, fwd_drain, userdata);
	return r;
}

static const struct cri_stream_backend fwd_backend = {
    .start = fwd_start_drain,
    .data = fwd_data,
    .close_input = fwd_close_input,
    .gone = fwd_gone,
    .unused = fwd_unused,
    .port_open = fwd_port_open,
    .port_reset = fwd_port_reset,
};

/* ---- the CRI calls ---- */

static int answer_url(const ProtobufCMessageDescriptor *d, const char *url, ProtobufCMessage **ret)
{
	/* ExecResponse, AttachResponse and PortForwardResponse: url is field 1 of each. */
	struct {
		ProtobufCMessage base;
		char *url;
	} *m = xcalloc(1, d->sizeof_message);
	protobuf_c_message_init(d, m);
	m->url = (char *)url;
	*ret = msg_own(&m->base);
	free(m);
	return 0;
}

int cri_exec(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
             ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__ExecRequest *req = runtime__v1__exec_request__unpack(NULL, len, msg);
	_cleanup_free_ char *url = NULL;
	struct exec_req *x;
	struct cri_ctr *k;
	int r;
	(void)call;

	if (!req)
		return hull_error_set(err, -EINVAL, "the request does not decode");
	k = ctr_get(c, req->container_id, true, err);
	if (!k)
		r = (*err)->code;
	else if (req->n_cmd == 0 || !*req->cmd[0])
		r = invalid(err, "cmd", "empty");
	else if (!req->stdin && !req->stdout && !req->stderr)
		r = invalid(err, "stdin, stdout, stderr", "one of them must be asked for");
	else if (!c->stream)
		r = hull_error_set(err, -EIO, "the streaming server is not running");
	else {
		x = xcalloc(1, sizeof(*x));
		x->c = c;
		x->ctr_id = xstrdup(k->id);
		x->cmd = xcalloc(req->n_cmd + 1, sizeof(*x->cmd));
		for (size_t i = 0; i < req->n_cmd; i++)
			x->cmd[i] = xstrdup(req->cmd[i]);
		x->n_cmd = req->n_cmd;
		x->tty = req->tty;
		x->in = req->stdin;
		x->out = req->stdout;
		x->err = req->stderr;
		r = cri_stream_server_register(c->stream, CRI_STREAM_EXEC, req->tty, req->stdin,
		                               req->stdout, req->stderr && !req->tty, NULL, 0,
		                               &exec_backend, x, &url);
		if (r < 0) {
			exec_req_free(x);
			hull_error_set_errno(err, r, "register the exec session");
		} else {
			r = answer_url(&runtime__v1__exec_response__descriptor, url, ret);
		}
	}
	runtime__v1__exec_request__free_unpacked(req, NULL);
	return r;
}

int cri_attach(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
               ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__AttachRequest *req = runtime__v1__attach_request__unpack(NULL, len, msg);
	_cleanup_free_ char *url = NULL;
	struct cri_ctr *k;
	int r;
	(void)call;

	if (!req)
		return hull_error_set(err, -EINVAL, "the request does not decode");
	k = ctr_get(c, req->container_id, true, err);
	if (!k)
		r = (*err)->code;
	else if (!req->stdin && !req->stdout && !req->stderr)
		r = invalid(err, "stdin, stdout, stderr", "one of them must be asked for");
	else if (req->stdin && !k->config->stdin)
		r = invalid(err, "stdin", "the container was not created with stdin");
	else if (!c->stream)
		r = hull_error_set(err, -EIO, "the streaming server is not running");
	else {
		struct attach_req *a = xcalloc(1, sizeof(*a));
		bool tty = k->config->tty;
		a->c = c;
		a->ctr_id = xstrdup(k->id);
		a->tty = tty;
		a->in = req->stdin;
		a->out = req->stdout;
		a->err = req->stderr && !tty;
		r = cri_stream_server_register(c->stream, CRI_STREAM_ATTACH, tty, req->stdin,
		                               req->stdout, req->stderr && !tty, NULL, 0,
		                               &attach_backend, a, &url);
		if (r < 0) {
			attach_free(a);
			hull_error_set_errno(err, r, "register the attach session");
		} else {
			r = answer_url(&runtime__v1__attach_response__descriptor, url, ret);
		}
	}
	runtime__v1__attach_request__free_unpacked(req, NULL);
	return r;
}

int cri_port_forward(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                     ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__PortForwardRequest *req =
	    runtime__v1__port_forward_request__unpack(NULL, len, msg);
	_cleanup_free_ char *url = NULL;
	struct cri_pod *p;
	int r;
	(void)call;

	if (!req)
		return hull_error_set(err, -EINVAL, "the request does not decode");
	p = pod_find(c, req->pod_sandbox_id);
	if (!p)
		r = hull_error_set(err, -ENOENT, "pod sandbox '%.80s' not found",
		                   req->pod_sandbox_id);
	else if (p->state != RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY)
		r = hull_error_set(err, grpc_error_code(TTRPC_FAILED_PRECONDITION),
		                   "pod sandbox '%s' is not ready", p->id);
	else if (!c->stream)
		r = hull_error_set(err, -EIO, "the streaming server is not running");
	else {
		struct fwd_req *f = xcalloc(1, sizeof(*f));
		f->c = c;
		f->pod_id = xstrdup(p->id);
		r = cri_stream_server_register(c->stream, CRI_STREAM_PORTFORWARD, false, false,
		                               false, false, req->port, req->n_port, &fwd_backend,
		                               f, &url);
		if (r < 0) {
			fwd_free(f);
			if (r == -EINVAL)
				hull_error_set(err, r,
				               "port: each must be in 1..65535, at most 64");
			else
				hull_error_set_errno(err, r, "register the port-forward session");
		} else {
			r = answer_url(&runtime__v1__port_forward_response__descriptor, url, ret);
		}
	}
	runtime__v1__port_forward_request__free_unpacked(req, NULL);
	return r;
}
