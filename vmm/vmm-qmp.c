/* SPDX-License-Identifier: MIT */
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "json.h"
#include "qmp.h"
#include "util.h"

struct qmp *qmp_new(int fd)
{
	struct qmp *q = xcalloc(1, sizeof(*q));
	q->fd = fd;
	q->max_message = QMP_MAX_MESSAGE;
	q->next_id = 1;
	return q;
}

struct qmp *qmp_free(struct qmp *q)
{
	if (!q)
		return NULL;
	if (q->fd >= 0)
		close(q->fd);
	free(q->in);
	free(q);
	return NULL;
}

int qmp_connect(const char *path, struct qmp **ret, struct hull_error **err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = -1;

	if (strlen(path) >= sizeof(sa.sun_path))
		return hull_error_set(err, -ENAMETOOLONG, "QMP socket path '%s' too long", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return hull_error_set_errno(err, -errno, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return hull_error_set_errno(err, -errno, "connect to QMP '%s'", path);
	*ret = qmp_new(TAKE_FD(fd));
	return 0;
}

int qmp_parse_message(const char *line, size_t len, json_object **ret, struct hull_error **err)
{
	json_object *o;

	if (len > QMP_MAX_MESSAGE)
		return hull_error_set(err, -EMSGSIZE, "QMP message over %u bytes", QMP_MAX_MESSAGE);
	if (json_parse(line, len, 32, true, &o, NULL) < 0)
		return hull_error_set(err, -EBADMSG,
		                      "QMP sent a message that is not a JSON object");
	*ret = o;
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Take the next complete message out of the input buffer, if any. */
static int take_message(struct qmp *q, json_object **ret, struct hull_error **err)
{
	char *nl = q->in_len ? memchr(q->in, '\n', q->in_len) : NULL;
	size_t len;
	int r;

	if (!nl) {
		if (q->in_len > q->max_message)
			return hull_error_set(err, -EMSGSIZE, "QMP message over %zu bytes: refused",
			                      q->max_message);
		return 0;
	}
	len = (size_t)(nl - q->in);
	if (len > q->max_message)
		return hull_error_set(err, -EMSGSIZE, "QMP message over %zu bytes: refused",
		                      q->max_message);
	/* QMP may send CRLF. */
	r = qmp_parse_message(q->in, len > 0 && q->in[len - 1] == '\r' ? len - 1 : len, ret, err);
	memmove(q->in, nl + 1, q->in_len - len - 1);
	q->in_len -= len + 1;
	return r < 0 ? r : 1;
}

/* Read once (waiting up to timeout_ms, 0 = don't wait). */
static int fill(struct qmp *q, int timeout_ms, struct hull_error **err)
{
	struct pollfd pfd = {.fd = q->fd, .events = POLLIN};
	ssize_t n;
	int r;

	r = poll(&pfd, 1, timeout_ms);
	if (r < 0)
		return errno == EINTR ? 0 : hull_error_set_errno(err, -errno, "poll QMP");
	if (r == 0)
		return timeout_ms == 0
		           ? 0
		           : hull_error_set(err, -ETIMEDOUT, "QMP did not answer in time");
	if (q->in_cap - q->in_len < 65536) {
		q->in_cap = q->in_len + 65536;
		q->in = xrealloc(q->in, q->in_cap);
	}
	n = read(q->fd, q->in + q->in_len, q->in_cap - q->in_len);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN
		           ? 0
		           : hull_error_set_errno(err, -errno, "read QMP");
	if (n == 0)
		return hull_error_set(err, -ECONNRESET, "QMP connection closed");
	q->in_len += (size_t)n;
	return 1;
}

static void dispatch_event(struct qmp *q, json_object *msg)
{
	json_object *ev, *data = NULL;
	if (!json_object_object_get_ex(msg, "event", &ev) ||
	    !json_object_is_type(ev, json_type_string))
		return;
	json_object_object_get_ex(msg, "data", &data);
	if (q->on_event)
		q->on_event(json_object_get_string(ev), data, q->userdata);
}

/* Wait for a message that is not an event (greeting or reply), dispatching events. */
static int read_reply(struct qmp *q, int timeout_ms, json_object **ret, struct hull_error **err)
{
	int64_t deadline = now_ms() + timeout_ms;

	for (;;) {
		json_object *msg = NULL;
		int r = take_message(q, &msg, err);
		if (r < 0)
			return r;
		if (r > 0) {
			if (json_object_object_get_ex(msg, "event", NULL)) {
				dispatch_event(q, msg);
				json_object_put(msg);
				continue;
			}
			*ret = msg;
			return 0;
		}
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return hull_error_set(err, -ETIMEDOUT, "QMP did not answer in time");
		r = fill(q, (int)left, err);
		if (r < 0)
			return r;
	}
}

int qmp_handshake(struct qmp *q, int timeout_ms, struct hull_error **err)
{
	json_object *greeting = NULL;
	int r = read_reply(q, timeout_ms, &greeting, err);

	if (r < 0)
		return hull_error_prefix(err, "QMP greeting");
	if (!json_object_object_get_ex(greeting, "QMP", NULL)) {
		json_object_put(greeting);
		return hull_error_set(err, -EPROTO, "QMP greeting: no \"QMP\" member");
	}
	json_object_put(greeting);
	return qmp_execute(q, "qmp_capabilities", NULL, NULL, timeout_ms, err);
}

/* The line, with fd (>= 0) passed alongside its first byte (SCM_RIGHTS), as QMP's getfd
 * expects. */
static int send_line(int sock, const char *line, int fd)
{
	size_t len = strlen(line);
	if (fd >= 0) {
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(int))];
		} ctl = {0};
		struct iovec iov = {.iov_base = (void *)line, .iov_len = 1};
		struct msghdr m = {.msg_iov = &iov,
		                   .msg_iovlen = 1,
		                   .msg_control = ctl.buf,
		                   .msg_controllen = sizeof(ctl.buf)};
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
		while (sendmsg(sock, &m, MSG_NOSIGNAL) < 0)
			if (errno != EINTR)
				return -errno;
		line++, len--;
	}
	return send_all(sock, line, len);
}

int qmp_execute(struct qmp *q, const char *cmd, json_object *args, json_object **ret_return,
                int timeout_ms, struct hull_error **err)
{
	return qmp_execute_fd(q, cmd, args, -1, ret_return, timeout_ms, err);
}

int qmp_execute_fd(struct qmp *q, const char *cmd, json_object *args, int fd,
                   json_object **ret_return, int timeout_ms, struct hull_error **err)
{
	json_object *req = json_object_new_object();
	uint64_t id = q->next_id++;
	const char *s;
	int r;

	json_object_object_add(req, "execute", json_object_new_string(cmd));
	if (args)
		json_object_object_add(req, "arguments", json_object_get(args));
	json_object_object_add(req, "id", json_object_new_uint64(id));
	s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	{
		_cleanup_free_ char *line = xasprintf("%s\n", s);
		r = send_line(q->fd, line, fd);
	}
	json_object_put(req);
	if (r < 0)
		return hull_error_set_errno(err, r, "QMP '%s': send", cmd);

	for (;;) {
		json_object *reply = NULL, *rid, *e, *ret;
		r = read_reply(q, timeout_ms, &reply, err);
		if (r < 0)
			return hull_error_prefix(err, "QMP '%s'", cmd);
		/* Replies to other ids (a late answer to a timed-out call) are skipped. */
		if (!json_object_object_get_ex(reply, "id", &rid) ||
		    json_object_get_uint64(rid) != id) {
			json_object_put(reply);
			continue;
		}
		if (json_object_object_get_ex(reply, "error", &e)) {
			json_object *cls = NULL, *desc = NULL;
			json_object_object_get_ex(e, "class", &cls);
			json_object_object_get_ex(e, "desc", &desc);
			r = hull_error_set(err, -EIO, "QMP '%s': %.64s: %.512s", cmd,
			                   cls ? json_object_get_string(cls) : "GenericError",
			                   desc ? json_object_get_string(desc)
			                        : "(no description)");
			json_object_put(reply);
			return r;
		}
		if (!json_object_object_get_ex(reply, "return", &ret)) {
			json_object_put(reply);
			return hull_error_set(err, -EPROTO, "QMP '%s': reply without return", cmd);
		}
		if (ret_return)
			*ret_return = json_object_get(ret);
		json_object_put(reply);
		return 0;
	}
}

int qmp_poll_events(struct qmp *q, struct hull_error **err)
{
	for (;;) {
		json_object *msg = NULL;
		int r = take_message(q, &msg, err);
		if (r < 0)
			return r;
		if (r > 0) {
			dispatch_event(q, msg);
			json_object_put(msg);
			continue;
		}
		r = fill(q, 0, err);
		if (r <= 0)
			return r;
	}
}
