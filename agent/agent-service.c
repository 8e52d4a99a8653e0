/* SPDX-License-Identifier: MIT */
/*
 * The agent service: ttrpc frames in, thin handlers (decode -> validate -> do_*), errors
 * mapped to wire status in one place (agent_reply_error). Everything the host sends is
 * validated before the container engine sees it.
 */
#include "agent.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/timerfd.h>
#include <termios.h>

#include "agent-net.h"
#include "agent.pb-c.h"
#include "container/oci-spec.h"
#include "log.h"
#include "ttrpc-msg.h"
#include "util.h"

#define AGENT_API_VERSION 1
#define MAX_MOUNTS 64
#define MAX_LAYERS 64
#define MAX_TAG_LEN 31 /* virtio-9p mount tags */
#define MAX_OUT_QUEUED (4u << 20)

/* ---- output ---------------------------------------------------------------------- */

static void agent_update_out_interest(struct agent *a);

void agent_flush(struct agent *a)
{
	while (a->out.len > 0) {
		ssize_t n = write(a->chan_fd, buf_head(&a->out), a->out.len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				log_debug("channel write: %m");
			break;
		}
		buf_consume(&a->out, (size_t)n);
	}
	agent_update_out_interest(a);
}

static void agent_reply(struct agent *a, uint32_t sid, const ProtobufCMessage *msg)
{
	ttrpc_response_append(&a->out, sid, TTRPC_OK, NULL, msg);
}

/* The one place where an error becomes a wire status. */
static void agent_reply_error(struct agent *a, uint32_t sid, int r, const struct hull_error *err)
{
	char fallback[128];
	const char *msg = err ? err->msg : NULL;

	if (!msg) {
		snprintf(fallback, sizeof(fallback), "%s", strerror(-r));
		msg = fallback;
	}
	ttrpc_response_append(&a->out, sid, (int)ttrpc_code_from_errno(r), msg, NULL);
}

/* ---- containers ------------------------------------------------------------------ */

static struct agent_container *container_find(struct agent *a, const char *id)
{
	for (struct agent_container *c = a->containers; c; c = c->next)
		if (strcmp(c->id, id) == 0)
			return c;
	return NULL;
}

#define for_each_process(a, c, p)                                         \
	for (struct agent_container *c = (a)->containers; c; c = c->next) \
		for (struct agent_process *p = c->procs; p; p = p->next)

static bool uses_fd(const struct agent_process *p, int fd)
{
	return p->proc.stdin_fd == fd || p->proc.stdout_fd == fd || p->proc.stderr_fd == fd;
}

static struct agent_process *process_by_sid(struct agent *a, uint32_t sid)
{
	for_each_process(a, c, p) if (p->attach_sid == sid) return p;
	for (struct agent_process *p = a->forwards.procs; p; p = p->next)
		if (p->attach_sid == sid)
			return p;
	return NULL;
}

static struct agent_process *process_by_fd(struct agent *a, int fd)
{
	for_each_process(a, c, p) if (uses_fd(p, fd)) return p;
	for (struct agent_process *p = a->forwards.procs; p; p = p->next)
		if (uses_fd(p, fd))
			return p;
	return NULL;
}

static struct agent_process *process_find(struct agent_container *c, const char *exec_id)
{
	for (struct agent_process *p = c->procs; p; p = p->next)
		if (strcmp(p->exec_id, exec_id) == 0)
			return p;
	return NULL;
}

static void close_fd_ev(struct agent *a, int *fd)
{
	if (*fd < 0)
		return;
	event_del(a->loop, *fd);
	close(*fd);
	*fd = -1;
}

static void process_free(struct agent *a, struct agent_process *p)
{
	if (p->proc.pid > 0 && !p->exited)
		kill(p->proc.pid, SIGKILL);
	close_fd_ev(a, &p->proc.stdin_fd);
	close_fd_ev(a, &p->proc.stdout_fd);
	close_fd_ev(a, &p->proc.stderr_fd);
	if (p->proc.sync_fd >= 0)
		close(p->proc.sync_fd);
	buf_release(&p->stdin_buf);
	free(p->wait_sids);
	free(p->exec_id);
	free(p);
}

static void container_free(struct agent *a, struct agent_container *c)
{
	while (c->procs) {
		struct agent_process *p = c->procs;
		c->procs = p->next;
		process_free(a, p);
	}
	container_cleanup_dir(c->id);
	container_cgroup_remove(c->id);
	container_spec_done(&c->spec);
	free(c->id);
	free(c);
}

static void forward_free(struct agent *a, struct agent_process *p)
{
	for (struct agent_process **pp = &a->forwards.procs; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	process_free(a, p);
}

void agent_free_containers(struct agent *a)
{
	while (a->forwards.procs)
		forward_free(a, a->forwards.procs);
	while (a->containers) {
		struct agent_container *c = a->containers;
		a->containers = c->next;
		container_free(a, c);
	}
}

/* A new process record for a created child, its fds in the event loop. */
static struct agent_process *process_add(struct agent *a, struct agent_container *c,
                                         const char *exec_id, const struct container_process *proc);

/* ---- stdio ----------------------------------------------------------------------- */

static void stdio_send(struct agent *a, struct agent_process *c, uint32_t fd, const uint8_t *data,
                       size_t len, bool eof, uint64_t credit)
{
	Hull__Agent__V1__StdioData d = HULL__AGENT__V1__STDIO_DATA__INIT;
	d.fd = fd;
	d.data.data = (uint8_t *)data;
	d.data.len = len;
	d.eof = eof;
	d.credit = credit;
	ttrpc_data_append(&a->out, c->attach_sid, 0, &d.base);
}

static void stdio_update_interest(struct agent *a, struct agent_process *c)
{
	/* Read container output only while the host granted credit and our queue to the
	 * host is not backed up: backpressure reaches the process through its pipe. */
	uint32_t ev = (c->out_credit > 0 && a->out.len < MAX_OUT_QUEUED) ? EPOLLIN : 0;
	if (c->proc.stdout_fd >= 0 && c->stdout_open)
		event_mod(a->loop, c->proc.stdout_fd, ev);
	if (c->proc.stderr_fd >= 0 && c->stderr_open)
		event_mod(a->loop, c->proc.stderr_fd, ev);
}

static void stdio_maybe_finish(struct agent *a, struct agent_process *c)
{
	Hull__Agent__V1__Empty e = HULL__AGENT__V1__EMPTY__INIT;
	if (!c->attach_sid || c->stdout_open || c->stderr_open)
		return;
	agent_reply(a, c->attach_sid, &e.base);
	c->attach_sid = 0;
	if (c->container == &a->forwards)
		forward_free(a, c);
}

/* Read up to want bytes from fd straight into a DATA frame at the tail of the output
 * queue, encoded as StdioData{fd: which, data: ...} by hand: the bytes are copied once
 * (pipe -> queue) instead of twice (pipe -> chunk -> packed message), which matters
 * when every guest memcpy is emulated. Returns read()'s result; queues only on n > 0. */
static ssize_t stdio_read_frame(struct agent *a, struct agent_process *c, int fd, uint32_t which,
                                size_t want)
{
	/* header, fd tag+value, data tag, length varint (3 bytes cover < 2 MiB) */
	const size_t pre = TTRPC_HEADER_SIZE + 2 + 1 + 3;
	uint8_t *p = buf_reserve(&a->out, pre + want);
	size_t vlen, off;
	ssize_t n;

	n = read(fd, p + pre, want);
	if (n <= 0)
		return n;
	vlen = n < (1 << 7) ? 1 : n < (1 << 14) ? 2 : 3;
	off = TTRPC_HEADER_SIZE;
	p[off++] = 0x08; /* field 1, varint */
	p[off++] = (uint8_t)which;
	p[off++] = 0x12; /* field 2, length-delimited */
	for (size_t v = (size_t)n, i = 0; i < vlen; i++, v >>= 7)
		p[off++] = (uint8_t)((v & 0x7f) | (i + 1 < vlen ? 0x80 : 0));
	if (off != pre)
		memmove(p + off, p + pre, (size_t)n);
	ttrpc_header_encode(p, (uint32_t)(off - TTRPC_HEADER_SIZE + (size_t)n), c->attach_sid,
	                    TTRPC_TYPE_DATA, 0);
	buf_commit(&a->out, off + (size_t)n);
	return n;
}

static void on_output(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct agent *a = userdata;
	struct agent_process *c = NULL;
	uint32_t which;
	ssize_t n;

	(void)loop;
	(void)revents;
	c = process_by_fd(a, fd);
	if (!c || (fd != c->proc.stdout_fd && fd != c->proc.stderr_fd))
		return;
	which = fd == c->proc.stdout_fd ? 1 : 2;
	/* Drain while there is credit and room: one flush for many reads keeps the
	 * syscall count per byte low, which is what costs under TCG. */
	while (c->out_credit > 0 && a->out.len < MAX_OUT_QUEUED) {
		size_t want = (size_t)MIN((uint64_t)AGENT_STDIO_CHUNK, c->out_credit);
		n = stdio_read_frame(a, c, fd, which, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			/* EOF, or EIO from a pty master once the last slave is closed. */
			stdio_send(a, c, which, NULL, 0, true, 0);
			if (which == 1) {
				c->stdout_open = false;
				/* With a terminal stdin is a dup of the master: it stays. */
				close_fd_ev(a, &c->proc.stdout_fd);
			} else {
				c->stderr_open = false;
				close_fd_ev(a, &c->proc.stderr_fd);
			}
			stdio_maybe_finish(a, c);
			agent_flush(a);
			return;
		}
		c->out_credit -= (uint64_t)n;
		if ((size_t)n < want)
			break; /* the pipe is empty for now */
	}
	stdio_update_interest(a, c);
	agent_flush(a);
}

static void stdin_grant(struct agent *a, struct agent_process *c, bool force)
{
	if (!c->attach_sid || c->in_unacked == 0)
		return;
	if (!force && c->in_unacked < AGENT_STDIO_WINDOW / 4)
		return;
	stdio_send(a, c, 0, NULL, 0, false, c->in_unacked);
	c->in_unacked = 0;
}

static void stdin_close(struct agent *a, struct agent_process *c)
{
	/* With a terminal the stdin fd is a dup of the master: closing it does not hang
	 * up the terminal, as with docker -t. A forward's is a dup of its socket: the
	 * server is told the client is done. */
	if (c->container == &a->forwards && c->proc.stdin_fd >= 0)
		(void)shutdown(c->proc.stdin_fd, SHUT_WR);
	close_fd_ev(a, &c->proc.stdin_fd);
	c->in_unacked += c->stdin_buf.len;
	buf_consume(&c->stdin_buf, c->stdin_buf.len);
}

static void stdin_pump(struct agent *a, struct agent_process *c);

static void on_stdin_writable(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct agent *a = userdata;
	(void)loop;
	(void)revents;
	struct agent_process *c = process_by_fd(a, fd);
	if (c && c->proc.stdin_fd == fd) {
		stdin_pump(a, c);
		agent_flush(a);
	}
}

static void stdin_pump(struct agent *a, struct agent_process *c)
{
	if (c->proc.stdin_fd < 0) {
		c->in_unacked += c->stdin_buf.len;
		buf_consume(&c->stdin_buf, c->stdin_buf.len);
		stdin_grant(a, c, true);
		return;
	}
	while (c->stdin_buf.len > 0) {
		/* A forward's server may be gone: EPIPE, not SIGPIPE. */
		ssize_t n =
		    c->container == &a->forwards
		        ? send(c->proc.stdin_fd, buf_head(&c->stdin_buf), c->stdin_buf.len,
		               MSG_NOSIGNAL)
		        : write(c->proc.stdin_fd, buf_head(&c->stdin_buf), c->stdin_buf.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			event_mod(a->loop, c->proc.stdin_fd, EPOLLOUT);
			stdin_grant(a, c, false);
			return;
		}
		if (n < 0) {
			/* EPIPE: the process closed its stdin; drop what is left. */
			stdin_close(a, c);
			stdin_grant(a, c, true);
			return;
		}
		buf_consume(&c->stdin_buf, (size_t)n);
		c->in_unacked += (uint64_t)n;
	}
	event_mod(a->loop, c->proc.stdin_fd, 0);
	if (c->stdin_eof)
		stdin_close(a, c);
	stdin_grant(a, c, true);
}

static void handle_data(struct agent *a, const struct ttrpc_frame *f)
{
	struct agent_process *c = process_by_sid(a, f->stream_id);
	Hull__Agent__V1__StdioData *d;

	if (!c) {
		log_debug("data frame for unknown stream %u dropped", f->stream_id);
		return;
	}
	d = hull__agent__v1__stdio_data__unpack(NULL, f->length, f->payload);
	if (!d) {
		log_warn("%s: undecodable stdio frame dropped", c->container->id);
		return;
	}
	if (d->credit > 0) {
		/* Cap: credit beyond any sane window is a confused or hostile peer. */
		c->out_credit = MIN(c->out_credit + d->credit, (uint64_t)64 << 20);
		stdio_update_interest(a, c);
	}
	if (d->fd == 0 && (d->data.len > 0 || d->eof) && !c->stdin_eof) {
		buf_append(&c->stdin_buf, d->data.data, d->data.len);
		c->stdin_eof = d->eof;
		stdin_pump(a, c);
	}
	hull__agent__v1__stdio_data__free_unpacked(d, NULL);
}

/* ---- validation ------------------------------------------------------------------ */

static bool valid_tag(const char *s)
{
	return id_is_valid(s) && strlen(s) <= MAX_TAG_LEN;
}

static bool valid_abs_path(const char *s)
{
	return s[0] == '/' && strlen(s) < 4096;
}

static int copy_shares(const Hull__Agent__V1__CreateContainerRequest *req,
                       struct container_spec *spec, struct hull_error **err)
{
	if (req->n_mounts > MAX_MOUNTS)
		return hull_error_set(err, -E2BIG, "mounts: more than %d", MAX_MOUNTS);
	for (size_t i = 0; i < req->n_mounts; i++) {
		const Hull__Agent__V1__Mount *m = req->mounts[i];
		if (!m->storage || !valid_tag(m->storage->source))
			return hull_error_set(err, -EINVAL,
			                      "mounts[%zu].storage: not a valid 9p tag", i);
		if (m->subpath[0] && !subpath_is_valid(m->subpath))
			return hull_error_set(
			    err, -EINVAL,
			    "mounts[%zu].subpath: '%.64s' is not a relative path of "
			    "plain names",
			    i, m->subpath);
		if (!valid_abs_path(m->destination) || strcmp(m->destination, "/") == 0)
			return hull_error_set(
			    err, -EINVAL,
			    "mounts[%zu].destination: '%.256s' is not an absolute path below /", i,
			    m->destination);
	}
	spec->n_mounts = req->n_mounts;
	spec->mounts = xcalloc(spec->n_mounts, sizeof(*spec->mounts));
	for (size_t i = 0; i < spec->n_mounts; i++) {
		spec->mounts[i].tag = xstrdup(req->mounts[i]->storage->source);
		spec->mounts[i].destination = xstrdup(req->mounts[i]->destination);
		spec->mounts[i].subpath =
		    req->mounts[i]->subpath[0] ? xstrdup(req->mounts[i]->subpath) : NULL;
		spec->mounts[i].readonly =
		    req->mounts[i]->readonly || req->mounts[i]->storage->readonly;
	}
	return 0;
}

/* A full runtime spec: parsed and validated here, in the guest. */
static int spec_from_oci(const Hull__Agent__V1__CreateContainerRequest *req,
                         struct container_spec *spec, struct hull_error **err)
{
	struct oci_spec *o = xcalloc(1, sizeof(*o));
	int r;

	*spec = (struct container_spec){0};
	r = oci_spec_parse((const char *)req->oci_config.data, req->oci_config.len, o, err);
	if (r < 0) {
		free(o);
		return r;
	}
	spec->oci = o;
	spec->id = xstrdup(req->id);
	spec->root_tag = xstrdup(req->root->source[0] ? req->root->source : "layers");
	if (req->root->n_layers) {
		spec->root_layers = xcalloc(req->root->n_layers + 1, sizeof(char *));
		for (size_t i = 0; i < req->root->n_layers; i++)
			spec->root_layers[i] = xstrdup(req->root->layers[i]);
	}
	spec->root_readonly = req->root->readonly;
	spec->root_overlay = req->root->overlay || req->root->n_layers > 0;
	spec->root_subpath = req->root->subpath[0] ? xstrdup(req->root->subpath) : NULL;
	spec->args = TAKE_PTR(o->args);
	spec->env = TAKE_PTR(o->env);
	spec->cwd = TAKE_PTR(o->cwd);
	spec->hostname = TAKE_PTR(o->hostname);
	spec->uid = o->uid;
	spec->gid = o->gid;
	spec->n_groups = o->n_additional_gids;
	spec->groups = xcalloc(spec->n_groups, sizeof(gid_t));
	for (size_t i = 0; i < spec->n_groups; i++)
		spec->groups[i] = o->additional_gids[i];
	spec->terminal = o->terminal;
	spec->rows = (uint16_t)o->rows;
	spec->cols = (uint16_t)o->cols;
	r = copy_shares(req, spec, err);
	if (r < 0)
		container_spec_done(spec);
	return r;
}

/* Wire request -> container_spec, refusing anything malformed. */
static int spec_from_request(const Hull__Agent__V1__CreateContainerRequest *req,
                             struct container_spec *spec, struct hull_error **err)
{
	if (!id_is_valid(req->id))
		return hull_error_set(err, -EINVAL, "id: '%.64s' is not a valid container id",
		                      req->id);
	if (!req->root)
		return hull_error_set(err, -EINVAL, "root: missing");
	if (strcmp(req->root->fstype, "erofs") == 0) {
		if (req->root->n_layers == 0 || req->root->n_layers > MAX_LAYERS)
			return hull_error_set(err, -EINVAL, "root.layers: 1 to %d wanted, got %zu",
			                      MAX_LAYERS, req->root->n_layers);
		for (size_t i = 0; i < req->root->n_layers; i++)
			if (!valid_tag(req->root->layers[i]) || strlen(req->root->layers[i]) > 20)
				return hull_error_set(err, -EINVAL,
				                      "root.layers[%zu]: not a disk serial", i);
	} else if (!valid_tag(req->root->source)) {
		return hull_error_set(err, -EINVAL, "root.source: missing or not a valid 9p tag");
	} else if (strcmp(req->root->fstype, "9p") != 0) {
		return hull_error_set(err, -EINVAL,
		                      "root.fstype: '%.32s' unsupported (want 9p or erofs)",
		                      req->root->fstype);
	}
	if (req->root->subpath[0] && !subpath_is_valid(req->root->subpath))
		return hull_error_set(err, -EINVAL,
		                      "root.subpath: '%.64s' is not a relative path of plain names",
		                      req->root->subpath);
	if (req->oci_config.len == 0)
		return hull_error_set(err, -EINVAL, "oci_config: missing");
	return spec_from_oci(req, spec, err);
}

/* ---- handlers -------------------------------------------------------------------- */

/* A handler returns 0 with *ret set (reply now), 1 when it replies later itself, or
 * < 0 with *err set. */
typedef int (*agent_handler)(struct agent *a, uint32_t sid, const ProtobufCBinaryData *in,
                             ProtobufCMessage **ret, struct hull_error **err);

#define DECODE(type, fn, in, err)                                                               \
	({                                                                                      \
		type *_m = fn((in)->len, (in)->data);                                           \
		if (!_m)                                                                        \
			return hull_error_set(err, -EINVAL, "request payload does not decode"); \
		_m;                                                                             \
	})

static ProtobufCMessage *empty_reply(void)
{
	Hull__Agent__V1__Empty *e = xmalloc(sizeof(*e));
	hull__agent__v1__empty__init(e);
	return &e->base;
}

static Hull__Agent__V1__CreateContainerRequest *unpack_create(size_t n, const uint8_t *d)
{
	return hull__agent__v1__create_container_request__unpack(NULL, n, d);
}
static Hull__Agent__V1__ContainerRequest *unpack_container(size_t n, const uint8_t *d)
{
	return hull__agent__v1__container_request__unpack(NULL, n, d);
}
static Hull__Agent__V1__SignalRequest *unpack_signal(size_t n, const uint8_t *d)
{
	return hull__agent__v1__signal_request__unpack(NULL, n, d);
}
static Hull__Agent__V1__ResizeRequest *unpack_resize(size_t n, const uint8_t *d)
{
	return hull__agent__v1__resize_request__unpack(NULL, n, d);
}
static Hull__Agent__V1__AttachRequest *unpack_attach(size_t n, const uint8_t *d)
{
	return hull__agent__v1__attach_request__unpack(NULL, n, d);
}

static int do_check(struct agent *a, uint32_t sid, const ProtobufCBinaryData *in,
                    ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__CheckResponse *r = xmalloc(sizeof(*r));
	(void)sid;
	(void)in;
	(void)err;
	hull__agent__v1__check_response__init(r);
	r->version = xstrdup(HULL_VERSION);
	r->api_version = AGENT_API_VERSION;
	r->uptime_ms = agent_now_ms() - a->start_ms;
	*ret = &r->base;
	return 0;
}

static struct agent_process *process_add(struct agent *a, struct agent_container *c,
                                         const char *exec_id, const struct container_process *proc)
{
	struct agent_process *p = xcalloc(1, sizeof(*p)), **pp;

	p->container = c;
	p->exec_id = xstrdup(exec_id);
	p->proc = *proc;
	p->stdout_open = p->proc.stdout_fd >= 0;
	p->stderr_open = p->proc.stderr_fd >= 0;
	for (int *fd = &p->proc.stdin_fd; fd <= &p->proc.stderr_fd; fd++)
		if (*fd >= 0) {
			fd_set_nonblock(*fd, 1);
			event_add(a->loop, *fd, 0,
			          fd == &p->proc.stdin_fd ? on_stdin_writable : on_output, a);
		}
	/* The init stays first: execs are appended. */
	for (pp = &c->procs; *pp; pp = &(*pp)->next)
		;
	*pp = p;
	return p;
}

static int do_create(struct agent *a, uint32_t sid, const ProtobufCBinaryData *in,
                     ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__CreateContainerRequest *req =
	    DECODE(Hull__Agent__V1__CreateContainerRequest, unpack_create, in, err);
	struct container_process proc;
	struct agent_container *c;
	int r;

	(void)sid;
	c = xcalloc(1, sizeof(*c));
	r = spec_from_request(req, &c->spec, err);
	hull__agent__v1__create_container_request__free_unpacked(req, NULL);
	if (r < 0) {
		free(c);
		return r;
	}
	if (container_find(a, c->spec.id)) {
		r = hull_error_set(err, -EEXIST, "container '%s' exists", c->spec.id);
		goto fail;
	}
	r = container_create(&c->spec, &proc, err);
	if (r < 0) {
		hull_error_prefix(err, "create container '%s'", c->spec.id);
		goto fail;
	}
	c->id = xstrdup(c->spec.id);
	process_add(a, c, "", &proc);
	c->next = a->containers;
	a->containers = c;
	log_info("container '%s' created, pid %d", c->id, proc.pid);
	*ret = empty_reply();
	return 0;
fail:
	container_spec_done(&c->spec);
	free(c);
	return r;
}

static int lookup(struct agent *a, const char *id, struct agent_container **ret,
                  struct hull_error **err)
{
	*ret = container_find(a, id);
	if (!*ret)
		return hull_error_set(err, -ENOENT, "container '%.64s' not found", id);
	return 0;
}

/* The process (id, exec_id) names; exec_id "" is the container's init. */
static int lookup_process(struct agent *a, const char *id, const char *exec_id,
                          struct agent_process **ret, struct hull_error **err)
{
	struct agent_container *c;
	int r = lookup(a, id, &c, err);
	if (r < 0)
		return r;
	*ret = process_find(c, exec_id ? exec_id : "");
	if (!*ret)
		return hull_error_set(err, -ENOENT, "container '%.64s': no process '%.64s'", id,
		                      exec_id);
	return 0;
}

/* Decode a ContainerRequest and find its process: the shape of most handlers. */
static int process_from_request(struct agent *a, const ProtobufCBinaryData *in,
                                struct agent_process **ret, struct hull_error **err)
{
	Hull__Agent__V1__ContainerRequest *req =
	    DECODE(Hull__Agent__V1__ContainerRequest, unpack_container, in, err);
	int r = lookup_process(a, req->id, req->exec_id, ret, err);
	hull__agent__v1__container_request__free_unpacked(req, NULL);
	return r;
}

static int start_process(struct agent_process *p, ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__StartContainerResponse *resp;
	int r = container_start(&p->proc, err);

	if (r < 0) {
		/* ENOEXEC and friends are "cannot execute" to the user, as EACCES. */
		if (r != -ENOENT && r != -EACCES && (*err)->msg &&
		    strncmp((*err)->msg, "exec", 4) == 0)
			(*err)->code = r = -EACCES;
		return hull_error_prefix(err, "start container '%s'", p->container->id);
	}
	p->started = true;
	resp = xmalloc(sizeof(*resp));
	hull__agent__v1__start_container_response__init(resp);
	resp->pid = (uint32_t)p->proc.pid;
	*ret = &resp->base;
	return 0;
}

static int do_start(struct agent *a, uint32_t sid, const ProtobufCBinaryData *in,
                    ProtobufCMessage **ret, struct hull_error **err)
{
	struct agent_process *p;
	int r;

	(void)sid;
	r = process_from_request(a, in, &p, err);
	if (r < 0)
		return r;
	return start_process(p, ret, err);
}

static Hull__Agent__V1__ExecProcessRequest *unpack_exec(size_t n, const uint8_t *d)
{
	return hull__agent__v1__exec_process_request__unpack(NULL, n, d);
}

static int do_exec(struct agent *a, uint32_t sid, const ProtobufCBinaryData *in,
                   ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__ExecProcessRequest *req =
	    DECODE(Hull__Agent__V1__ExecProcessRequest, unpack_exec, in, err);
	struct container_process proc;
	struct agent_container *c;
	struct agent_process *init;
	int r;

	(void)sid;
	r = lookup(a, req->id, &c, err);
	if (r < 0)
		goto out;
	if (!id_is_valid(req->exec_id)) {
		r = hull_error_set(err, -EINVAL, "exec_id: '%.64s' is not a valid id",
		                   req->exec_id);
		goto out;
	}
	if (process_find(c, req->exec_id)) {
		r = hull_error_set(err, -EEXIST, "container '%s': exec '%s' exists", c->id,
		                   req->exec_id);
		goto out;
	}
	init = c->procs;
	if (!init->started || init->exited) {
		r = hull_error_set(err, -EBUSY, "container '%s' is not running", c->id);
		goto out;
	}
	r = container_exec(&c->spec, init->proc.pid, (const char *)req->process.data,
	                   req->process.len, &proc, err);
	if (r < 0) {
		hull_error_prefix(err, "exec in container '%s'", c->id);
		goto out;
	}
	process_add(a, c, req->exec_id, &proc);
	*ret = empty_reply();
out:
	hull__agent__v1__exec_process_request__free_unpacked(req, NULL);
	return r;
}

static Hull__Agent__V1__StartProcessRequest *unpack_start_process(size_t n, const uint8_t *d)
{
	return hull__agent__v1__start_process_request__unpack(NULL, n, d);
}

static int do_start_process(struct agent *a, uint32_t sid, const ProtobufCBinaryData *in,
                            ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__StartProcessRequest *req =
	    DECODE(Hull__Agent__V1__StartProcessRequest, unpack_start_process, in, err);
	struct agent_process *p;
	int r;

	(void)sid;
	r = lookup_process(a, req->id, req->exec_id, &p, err);
	hull__agent__v1__start_process_request__free_unpacked(req, NULL);
	if (r < 0)
		return r;
	return start_process(p, ret, err);
}

static void wait_reply(struct agent *a, struct agent_process *p, uint32_t sid)
{
	Hull__Agent__V1__WaitResponse w = HULL__AGENT__V1__WAIT_RESPONSE__INIT;
	if (WIFSIGNALED(p->wait_status))
		w.signal = WTERMSIG(p->wait_status);
	else
		w.exit_code = WEXITSTATUS(p->wait_status);
	w.oom_killed = container_cgroup_oom_killed(p->container->id);
	agent_reply(a, sid, &w.base);
}

static int do_wait(struct agent *a, uint32_t sid, const ProtobufCBinaryData *in,
                   ProtobufCMessage **ret, struct hull_error **err)
{
	struct agent_process *p;
	int r;

	(void)ret;
	r = process_from_request(a, in, &p, err);
	if (r < 0)
		return r;
	if (p->exited) {
		wait_reply(a, p, sid);
		return 1;
	}
	if (p->n_wait_sids >= 64)
		return hull_error_set(err, -EMFILE, "too many waiters");
	p->wait_sids = xrealloc(p->wait_sids, (p->n_wait_sids + 1) * sizeof(uint32_t));
	p->wait_sids[p->n_wait_sids++] = sid;
	return 1;
}

static int do_attach(struct agent *a, uint32_t sid, const ProtobufCBinaryData *in,
                     ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__AttachRequest *req =
	    DECODE(Hull__Agent__V1__AttachRequest, unpack_attach, in, err);
	struct agent_process *p;
	int r;

	(void)ret;
	r = lookup_process(a, req->id, req->exec_id, &p, err);
	hull__agent__v1__attach_request__free_unpacked(req, NULL);
	if (r < 0)
		return r;
	if (p->attach_sid)
		return hull_error_set(err, -EBUSY, "container '%s': stdio already attached",
		                      p->container->id);
	if (process_by_sid(a, sid))
		return hull_error_set(err, -EBUSY, "stream %u already in use", sid);
	p->attach_sid = sid;
	/* Grant the host its stdin window; it grants ours in its first data frame. */
	stdio_send(a, p, 0, NULL, 0, false, AGENT_STDIO_WINDOW);
	stdio_maybe_finish(a, p);
	return 1;
}

static int do_signal(struct agent *a, uint32_t sid, const ProtobufCBinaryData *in,
                     ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__SignalRequest *req =
	    DECODE(Hull__Agent__V1__SignalRequest, unpack_signal, in, err);
	struct agent_process *p;
	uint32_t sig = req->signal;
	int r;

	(void)sid;
	r = lookup_process(a, req->id, req->exec_id, &p, err);
	hull__agent__v1__signal_request__free_unpacked(req, NULL);
	if (r < 0)
		return r;
	if (sig == 0 || sig >= (uint32_t)NSIG)
		return hull_error_set(err, -EINVAL, "signal %u out of range", sig);
	if (!p->started || p->exited)
		return hull_error_set(err, -ESRCH, "container '%s' is not running",
		                      p->container->id);
	if (kill(p->proc.pid, (int)sig) < 0)
		return hull_error_set_errno(err, -errno, "signal container '%s'", p->container->id);
	*ret = empty_reply();
	return 0;
}

static int do_resize(struct agent *a, uint32_t sid, const ProtobufCBinaryData *in,
                     ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__ResizeRequest *req =
	    DECODE(Hull__Agent__V1__ResizeRequest, unpack_resize, in, err);
	struct agent_process *p;
	struct winsize ws = {0};
	int r;

	(void)sid;
	r = lookup_process(a, req->id, req->exec_id, &p, err);
	ws.ws_row = (unsigned short)MIN(req->rows, 65535u);
	ws.ws_col = (unsigned short)MIN(req->cols, 65535u);
	hull__agent__v1__resize_request__free_unpacked(req, NULL);
	if (r < 0)
		return r;
	if (p->proc.stderr_fd >= 0 || p->proc.stdin_fd < 0)
		return hull_error_set(err, -ENOTTY, "container '%s' has no terminal",
		                      p->container->id);
	if (ioctl(p->proc.stdin_fd, TIOCSWINSZ, &ws) < 0)
		return hull_error_set_errno(err, -errno, "resize terminal");
	*ret = empty_reply();
	return 0;
}

static int do_remove(struct agent *a, uint32_t sid, const ProtobufCBinaryData *in,
                     ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__ContainerRequest *req =
	    DECODE(Hull__Agent__V1__ContainerRequest, unpack_container, in, err);
	struct agent_container *c, **pp;
	int r;

	(void)sid;
	r = lookup(a, req->id, &c, err);
	hull__agent__v1__container_request__free_unpacked(req, NULL);
	if (r < 0)
		return r;
	if (c->procs->started && !c->procs->exited)
		return hull_error_set(err, -EBUSY, "container '%s' is running", c->id);
	for (struct agent_process *p = c->procs; p; p = p->next) {
		if (p->attach_sid)
			ttrpc_response_append(&a->out, p->attach_sid, TTRPC_CANCELLED,
			                      "container removed", NULL);
		for (size_t i = 0; i < p->n_wait_sids; i++)
			ttrpc_response_append(&a->out, p->wait_sids[i], TTRPC_CANCELLED,
			                      "container removed", NULL);
	}
	for (pp = &a->containers; *pp != c; pp = &(*pp)->next)
		;
	*pp = c->next;
	/* Created but never started processes are killed here; the reaper collects them. */
	container_free(a, c);
	*ret = empty_reply();
	return 0;
}

/* Decode a ContainerRequest and find its container. */
static int container_from_request(struct agent *a, const ProtobufCBinaryData *in,
                                  struct agent_container **ret, struct hull_error **err)
{
	Hull__Agent__V1__ContainerRequest *req =
	    DECODE(Hull__Agent__V1__ContainerRequest, unpack_container, in, err);
	int r = lookup(a, req->id, ret, err);
	hull__agent__v1__container_request__free_unpacked(req, NULL);
	return r;
}

static int do_stats(struct agent *a, uint32_t sid, const ProtobufCBinaryData *in,
                    ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__StatsResponse *resp;
	struct container_stats st;
	struct agent_container *c;
	int r;

	(void)sid;
	r = container_from_request(a, in, &c, err);
	if (r < 0)
		return r;
	r = container_cgroup_stats(c->id, &st);
	if (r < 0)
		return hull_error_set_errno(err, r, "stats of container '%s'", c->id);
	resp = xmalloc(sizeof(*resp));
	hull__agent__v1__stats_response__init(resp);
	resp->cpu_usage_usec = st.cpu_usage_usec;
	resp->memory_current = st.memory_current;
	resp->memory_limit = st.memory_limit;
	resp->pids_current = st.pids_current;
	resp->pids_limit = st.pids_limit;
	resp->oom_kills = st.oom_kills;
	*ret = &resp->base;
	return 0;
}

static Hull__Agent__V1__UpdateRequest *unpack_update(size_t n, const uint8_t *d)
{
	return hull__agent__v1__update_request__unpack(NULL, n, d);
}

static int do_update(struct agent *a, uint32_t sid, const ProtobufCBinaryData *in,
                     ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__UpdateRequest *req =
	    DECODE(Hull__Agent__V1__UpdateRequest, unpack_update, in, err);
	struct agent_container *c;
	int r;

	(void)sid;
	r = lookup(a, req->id, &c, err);
	if (r == 0)
		r = container_cgroup_update(c->id, (const char *)req->resources.data,
		                            req->resources.len, err);
	hull__agent__v1__update_request__free_unpacked(req, NULL);
	if (r < 0)
		return hull_error_prefix(err, "update container");
	*ret = empty_reply();
	return 0;
}

static int freeze(struct agent *a, const ProtobufCBinaryData *in, bool frozen,
                  ProtobufCMessage **ret, struct hull_error **err)
{
	struct agent_container *c;
	int r = container_from_request(a, in, &c, err);
	if (r < 0)
		return r;
	r = container_cgroup_freeze(c->id, frozen, err);
	if (r < 0)
		return r;
	*ret = empty_reply();
	return 0;
}

static int do_pause(struct agent *a, uint32_t sid, const ProtobufCBinaryData *in,
                    ProtobufCMessage **ret, struct hull_error **err)
{
	(void)sid;
	return freeze(a, in, true, ret, err);
}

static int do_resume(struct agent *a, uint32_t sid, const ProtobufCBinaryData *in,
                     ProtobufCMessage **ret, struct hull_error **err)
{
	(void)sid;
	return freeze(a, in, false, ret, err);
}

static int do_pids(struct agent *a, uint32_t sid, const ProtobufCBinaryData *in,
                   ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__PidsResponse *resp;
	struct agent_container *c;
	uint32_t *pids = NULL;
	size_t n = 0;
	int r;

	(void)sid;
	r = container_from_request(a, in, &c, err);
	if (r < 0)
		return r;
	r = container_cgroup_pids(c->id, &pids, &n);
	if (r < 0)
		return hull_error_set_errno(err, r, "processes of container '%s'", c->id);
	resp = xmalloc(sizeof(*resp));
	hull__agent__v1__pids_response__init(resp);
	resp->pids = pids;
	resp->n_pids = n;
	*ret = &resp->base;
	return 0;
}

static int do_network(struct agent *a, uint32_t sid, const ProtobufCBinaryData *in,
                      ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__ConfigureNetworkRequest *req =
	    hull__agent__v1__configure_network_request__unpack(NULL, in->len, in->data);
	int r;
	(void)a, (void)sid;
	if (!req)
		return hull_error_set(err, -EINVAL, "ConfigureNetwork: request does not decode");
	r = net_configure(req, err);
	hull__agent__v1__configure_network_request__free_unpacked(req, NULL);
	if (r < 0)
		return r;
	*ret = empty_reply();
	return 0;
}

static int do_port_forward(struct agent *a, uint32_t sid, const ProtobufCBinaryData *in,
                           ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__PortForwardRequest *req =
	    hull__agent__v1__port_forward_request__unpack(NULL, in->len, in->data);
	struct container_process proc = {.pid = 0, .sync_fd = -1, .stderr_fd = -1};
	struct agent_process *p;
	unsigned port;
	int fd;

	(void)ret;
	if (!req)
		return hull_error_set(err, -EINVAL, "PortForward: request does not decode");
	port = req->port;
	hull__agent__v1__port_forward_request__free_unpacked(req, NULL);
	if (port < 1 || port > 65535)
		return hull_error_set(err, -EINVAL, "port %u: want 1..65535", port);
	if (process_by_sid(a, sid))
		return hull_error_set(err, -EBUSY, "stream %u already in use", sid);
	fd = net_dial_local(port, err);
	if (fd < 0)
		return fd;
	proc.stdout_fd = fd;
	proc.stdin_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (proc.stdin_fd < 0) {
		close(fd);
		return hull_error_set_errno(err, -errno, "dup");
	}
	a->forwards.id = (char *)"port-forward";
	p = process_add(a, &a->forwards, "", &proc);
	p->started = true;
	p->attach_sid = sid;
	/* As AttachStdio: the host's window first, ours comes with its first frame. */
	stdio_send(a, p, 0, NULL, 0, false, AGENT_STDIO_WINDOW);
	return 1;
}

static int do_destroy(struct agent *a, uint32_t sid, const ProtobufCBinaryData *in,
                      ProtobufCMessage **ret, struct hull_error **err)
{
	(void)sid;
	(void)in;
	(void)err;
	a->shutdown_requested = true;
	*ret = empty_reply();
	return 0;
}

static const struct {
	const char *method;
	agent_handler handler;
} handlers[] = {
    {"Check", do_check},
    {"CreateContainer", do_create},
    {"StartContainer", do_start},
    {"ExecProcess", do_exec},
    {"StartProcess", do_start_process},
    {"StatsContainer", do_stats},
    {"UpdateContainer", do_update},
    {"PauseContainer", do_pause},
    {"ResumeContainer", do_resume},
    {"ListProcesses", do_pids},
    {"AttachStdio", do_attach},
    {"WaitProcess", do_wait},
    {"SignalProcess", do_signal},
    {"ResizePty", do_resize},
    {"RemoveContainer", do_remove},
    {"DestroySandbox", do_destroy},
    {"ConfigureNetwork", do_network},
    {"PortForward", do_port_forward},
};

static void handle_request(struct agent *a, const struct ttrpc_frame *f)
{
	_cleanup_error_ struct hull_error *err = NULL;
	Hull__Ttrpc__Request *req;
	ProtobufCMessage *reply = NULL;
	agent_handler h = NULL;
	int r;

	req = hull__ttrpc__request__unpack(NULL, f->length, f->payload);
	if (!req) {
		agent_reply_error(a, f->stream_id, -EINVAL, NULL);
		return;
	}
	if (strcmp(req->service, AGENT_SERVICE) == 0)
		for (size_t i = 0; i < ELEMENTSOF(handlers); i++)
			if (strcmp(req->method, handlers[i].method) == 0)
				h = handlers[i].handler;
	if (!h) {
		hull_error_set(&err, -EOPNOTSUPP, "%.64s/%.64s: not implemented", req->service,
		               req->method);
		agent_reply_error(a, f->stream_id, -EOPNOTSUPP, err);
		hull__ttrpc__request__free_unpacked(req, NULL);
		return;
	}
	log_debug("request %s on stream %u", req->method, f->stream_id);
	r = h(a, f->stream_id, &req->payload, &reply, &err);
	hull__ttrpc__request__free_unpacked(req, NULL);
	if (r < 0)
		agent_reply_error(a, f->stream_id, r, err);
	else if (r == 0)
		agent_reply(a, f->stream_id, reply);
	if (reply)
		protobuf_c_message_free_unpacked(reply, NULL);
}

void agent_service_process(struct agent *a)
{
	struct ttrpc_frame f;
	int r;

	while ((r = ttrpc_decoder_next(&a->dec, &f)) != 0) {
		if (r == -EMSGSIZE) {
			if (f.type == TTRPC_TYPE_REQUEST)
				ttrpc_response_append(&a->out, f.stream_id,
				                      TTRPC_RESOURCE_EXHAUSTED,
				                      "message over the 4 MiB limit", NULL);
			continue;
		}
		switch (f.type) {
		case TTRPC_TYPE_REQUEST:
			handle_request(a, &f);
			break;
		case TTRPC_TYPE_DATA:
			handle_data(a, &f);
			break;
		default:
			log_debug("frame type %u on stream %u ignored", f.type, f.stream_id);
			break;
		}
	}
}

/* ---- channel ---------------------------------------------------------------------- */

static void on_channel(struct event_loop *loop, int fd, uint32_t revents, void *userdata);

static void agent_update_out_interest(struct agent *a)
{
	if (a->chan_registered)
		event_mod(a->loop, a->chan_fd, EPOLLIN | (a->out.len ? EPOLLOUT : 0));
	for_each_process(a, c, p) if (p->attach_sid) stdio_update_interest(a, p);
}

static void channel_park(struct agent *a)
{
	/* virtio-serial reports HUP while no host is connected; poll again shortly
	 * instead of spinning on it. */
	struct itimerspec its = {.it_value = {.tv_nsec = 50 * 1000 * 1000}};
	event_del(a->loop, a->chan_fd);
	a->chan_registered = false;
	timerfd_settime(a->retry_timer_fd, 0, &its, NULL);
}

static void on_retry(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct agent *a = userdata;
	uint64_t ticks;
	(void)revents;
	(void)!read(fd, &ticks, sizeof(ticks));
	if (!a->chan_registered && event_add(loop, a->chan_fd, EPOLLIN, on_channel, a) == 0)
		a->chan_registered = true;
	agent_update_out_interest(a);
}

static void on_channel(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct agent *a = userdata;
	uint8_t tmp[128 << 10];
	(void)loop;

	if (revents & EPOLLOUT)
		agent_flush(a);
	if (revents & EPOLLIN) {
		for (;;) {
			ssize_t n = read(fd, tmp, sizeof(tmp));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			ttrpc_decoder_feed(&a->dec, tmp, (size_t)n);
			agent_service_process(a);
		}
		agent_flush(a);
	} else if (revents & (EPOLLHUP | EPOLLERR)) {
		channel_park(a);
	}
}

void agent_service_start(struct agent *a)
{
	a->retry_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	event_add(a->loop, a->retry_timer_fd, EPOLLIN, on_retry, a);
	if (event_add(a->loop, a->chan_fd, EPOLLIN, on_channel, a) == 0)
		a->chan_registered = true;
}

void agent_service_reap(struct agent *a)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for_each_process(a, c, p)
		{
			if (p->proc.pid != pid)
				continue;
			p->exited = true;
			p->wait_status = status;
			log_info("container '%s' process '%s' exited, status 0x%x", c->id,
			         p->exec_id, status);
			for (size_t i = 0; i < p->n_wait_sids; i++)
				wait_reply(a, p, p->wait_sids[i]);
			p->n_wait_sids = 0;
		}
	}
	agent_flush(a);
}
