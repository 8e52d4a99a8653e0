/* SPDX-License-Identifier: MIT */
/* Task events to containerd, Forward calls on its events service at $TTRPC_ADDRESS.
 * Queued, at most MAX_QUEUED, each kept until containerd acknowledged it: while
 * containerd restarts, the shim keeps serving, tries to reconnect every second and sends
 * what waited (an event whose acknowledgement was lost may arrive twice; containerd
 * tolerates that, losing a TaskExit it does not). */
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>

#include "log.h"
#include "shim-events.pb-c.h"
#include "shim.h"
#include "ttrpc-client.h"
#include "util.h"

#define EVENTS_SERVICE "containerd.services.events.ttrpc.v1.Events"
#define MAX_QUEUED 1024
#define RETRY_MS 1000
#define FORWARD_TIMEOUT_MS 10000

struct shim_events;

struct event_entry {
	char *topic;
	uint8_t *packed; /* a ForwardRequest */
	size_t len;
	uint32_t sid; /* in flight on the current connection, or 0 */
	struct shim_events *ev;
	struct event_entry *next;
};

struct shim_events {
	struct event_loop *loop;
	char *address;
	char *namespace;
	struct ttrpc_client *c;
	int retry_fd;
	struct event_entry *head, **tail;
	size_t n;
	size_t dropped;
};

static void entry_free(struct event_entry *e)
{
	free(e->topic);
	free(e->packed);
	free(e);
}

static void retry_later(struct shim_events *ev)
{
	struct itimerspec its = {
	    .it_value = {.tv_sec = RETRY_MS / 1000, .tv_nsec = (RETRY_MS % 1000) * 1000000L}};
	if (ev->retry_fd >= 0 && ev->head)
		timerfd_settime(ev->retry_fd, 0, &its, NULL);
}

static void on_error(struct ttrpc_client *c, const struct hull_error *err, void *userdata)
{
	struct shim_events *ev = userdata;
	(void)c;
	log_warn("events: containerd's event socket: %s (%zu event(s) wait for it)", err->msg,
	         ev->n);
	/* What was in flight goes again on the next connection. */
	for (struct event_entry *e = ev->head; e; e = e->next)
		e->sid = 0;
	ev->c = ttrpc_client_free(ev->c);
	retry_later(ev);
}

static void entry_unlink(struct shim_events *ev, struct event_entry *e)
{
	for (struct event_entry **pp = &ev->head; *pp; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			if (ev->tail == &e->next)
				ev->tail = pp;
			ev->n--;
			return;
		}
}

static void on_forwarded(struct ttrpc_client *c, int code, const char *message,
                         const uint8_t *payload, size_t len, void *userdata)
{
	struct event_entry *e = userdata;
	struct shim_events *ev = e->ev;
	(void)c, (void)payload, (void)len;

	if (code == TTRPC_UNAVAILABLE || code == TTRPC_DEADLINE_EXCEEDED) {
		/* Not delivered for sure: again on the next connection, or shortly. */
		e->sid = 0;
		retry_later(ev);
		return;
	}
	if (code)
		log_warn("event %s: containerd answered %d: %s", e->topic, code, message);
	else
		log_debug("event %s delivered", e->topic);
	entry_unlink(ev, e);
	entry_free(e);
}

static void send_queued(struct shim_events *ev);

static int connect_events(struct shim_events *ev)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *addr = ev->address;
	int fd, r;

	if (strncmp(addr, "unix://", 7) == 0)
		addr += 7;
	if (strlen(addr) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, addr);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* A unix socket's connect succeeds or fails at once. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	ev->c = ttrpc_client_new(fd, EVENTS_SERVICE);
	r = ttrpc_client_attach(ev->c, ev->loop, on_error, ev);
	if (r < 0) {
		ev->c = ttrpc_client_free(ev->c);
		return r;
	}
	return 0;
}

static void on_retry(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	uint64_t ticks;
	(void)loop, (void)revents;
	(void)!read(fd, &ticks, sizeof(ticks));
	send_queued(userdata);
}

/* Send every entry not yet in flight, connecting first if need be. */
static void send_queued(struct shim_events *ev)
{
	int r;

	if (!ev->head)
		return;
	if (!ev->c) {
		r = connect_events(ev);
		if (r < 0) {
			log_debug("events: containerd's event socket: %s", strerror(-r));
			retry_later(ev);
			return;
		}
		if (ev->dropped)
			log_warn("events: containerd is back; %zu event(s) were dropped while it "
			         "was away",
			         ev->dropped);
		ev->dropped = 0;
	}
	for (struct event_entry *e = ev->head; e && ev->c; e = e->next) {
		Hull__Events__ForwardRequest *fr;
		if (e->sid)
			continue;
		fr = hull__events__forward_request__unpack(NULL, e->len, e->packed);
		if (!fr)
			abort(); /* we packed it */
		e->sid = ttrpc_client_call(ev->c, "Forward", &fr->base, 0, FORWARD_TIMEOUT_MS,
		                           on_forwarded, NULL, e);
		hull__events__forward_request__free_unpacked(fr, NULL);
		if (!e->sid || !ev->c) {
			e->sid = 0; /* the client failed: on_error requeued the rest */
			break;
		}
	}
}

struct shim_events *shim_events_new(struct event_loop *loop, const char *ttrpc_address,
                                    const char *namespace)
{
	struct shim_events *ev = xcalloc(1, sizeof(*ev));
	ev->loop = loop;
	ev->address = xstrdup(ttrpc_address);
	ev->namespace = xstrdup(namespace && *namespace ? namespace : "default");
	ev->tail = &ev->head;
	ev->retry_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (ev->retry_fd >= 0 && event_add(loop, ev->retry_fd, EPOLLIN, on_retry, ev) < 0) {
		close(ev->retry_fd);
		ev->retry_fd = -1;
	}
	return ev;
}

void shim_events_publish(struct shim_events *ev, const char *topic, const char *name,
                         const ProtobufCMessage *msg)
{
	Hull__Events__ForwardRequest fr = HULL__EVENTS__FORWARD_REQUEST__INIT;
	Hull__Events__Envelope env = HULL__EVENTS__ENVELOPE__INIT;
	Hull__Task__Timestamp ts = HULL__TASK__TIMESTAMP__INIT;
	Hull__Task__Any any = HULL__TASK__ANY__INIT;
	_cleanup_free_ char *type = xasprintf("containerd.events.%s", name);
	_cleanup_free_ uint8_t *packed = xmalloc(protobuf_c_message_get_packed_size(msg) + 1);
	struct event_entry *e;
	uint64_t now = realtime_ns();

	if (ev->n >= MAX_QUEUED) {
		/* containerd has been away long: the oldest event goes. */
		struct event_entry *old = ev->head;
		if (old->sid && ev->c)
			ttrpc_client_forget(ev->c, old->sid);
		log_warn("events: %zu events wait for containerd: dropping the oldest (%s)", ev->n,
		         old->topic);
		entry_unlink(ev, old);
		entry_free(old);
		ev->dropped++;
	}
	ts.seconds = (int64_t)(now / 1000000000ull);
	ts.nanos = (int32_t)(now % 1000000000ull);
	any.type_url = type;
	any.value.len = protobuf_c_message_pack(msg, packed);
	any.value.data = packed;
	env.timestamp = &ts;
	env.namespace_ = ev->namespace;
	env.topic = (char *)topic;
	env.event = &any;
	fr.envelope = &env;
	e = xcalloc(1, sizeof(*e));
	e->ev = ev;
	e->topic = xstrdup(topic);
	e->len = protobuf_c_message_get_packed_size(&fr.base);
	e->packed = xmalloc(e->len + 1);
	protobuf_c_message_pack(&fr.base, e->packed);
	*ev->tail = e;
	ev->tail = &e->next;
	ev->n++;
	log_debug("event %s", topic);
	send_queued(ev);
}

size_t shim_events_queued(const struct shim_events *ev)
{
	return ev ? ev->n : 0;
}

struct shim_events *shim_events_free(struct shim_events *ev)
{
	if (!ev)
		return NULL;
	ev->c = ttrpc_client_free(ev->c);
	if (ev->n)
		log_warn("events: %zu event(s) never reached containerd", ev->n);
	while (ev->head) {
		struct event_entry *e = ev->head;
		ev->head = e->next;
		entry_free(e);
	}
	if (ev->retry_fd >= 0) {
		event_del(ev->loop, ev->retry_fd);
		close(ev->retry_fd);
	}
	free(ev->address);
	free(ev->namespace);
	free(ev);
	return NULL;
}
