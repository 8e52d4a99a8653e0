/* SPDX-License-Identifier: MIT */
/* The shim's events to containerd (shim/shim-events.c) against a real ttrpc server on
 * a unix socket standing in for containerd's events service: delivered when it is
 * there, queued while it is away and sent when it is back, in order, each until it is
 * acknowledged; bounded, the oldest dropped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "shim-events.pb-c.h"
#include "shim.h"
#include "ttrpc-server.h"
#include "util.h"

struct containerd {
	struct event_loop *loop;
	struct ttrpc_server *srv;
	char *topics[2048];
	size_t n;
};

static int do_forward(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                      ProtobufCMessage **ret, struct hull_error **err)
{
	struct containerd *cd = userdata;
	Hull__Events__ForwardRequest *fr =
	    hull__events__forward_request__unpack(NULL, len, payload);
	(void)call, (void)ret;
	if (!fr || !fr->envelope)
		return hull_error_set(err, -EINVAL, "bad forward");
	if (cd->n < ELEMENTSOF(cd->topics))
		cd->topics[cd->n++] = xstrdup(fr->envelope->topic);
	hull__events__forward_request__free_unpacked(fr, NULL);
	return 0;
}

static const struct ttrpc_method methods[] = {
    {"containerd.services.events.ttrpc.v1.Events", "Forward", do_forward},
};

static void containerd_up(struct containerd *cd, const char *path)
{
	cd->srv = ttrpc_server_new(cd->loop, methods, ELEMENTSOF(methods), cd);
	assert_int_equal(ttrpc_server_listen(cd->srv, path, NULL), 0);
}

static void containerd_down(struct containerd *cd, const char *path)
{
	cd->srv = ttrpc_server_free(cd->srv);
	unlink(path);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Turn the loop until cd has seen n events (or 10 s passed). */
static void turn_until(struct containerd *cd, struct shim_events *ev, size_t n)
{
	int64_t end = now_ms() + 10000;
	while ((cd->n < n || shim_events_queued(ev)) && now_ms() < end)
		assert_int_equal(event_loop_once(cd->loop, 50), 0);
}

static void publish_exit(struct shim_events *ev, const char *id)
{
	Hull__Events__TaskExit e = HULL__EVENTS__TASK_EXIT__INIT;
	_cleanup_free_ char *topic = xasprintf("/tasks/exit/%s", id);
	e.container_id = (char *)id;
	shim_events_publish(ev, topic, "TaskExit", &e.base);
}

static void test_queued_while_away(void **state)
{
	char dir[] = "/tmp/hull-ev-XXXXXX";
	_cleanup_free_ char *path = NULL, *addr = NULL;
	struct containerd cd = {0};
	struct shim_events *ev;
	(void)state;

	assert_non_null(mkdtemp(dir));
	path = xasprintf("%s/ttrpc.sock", dir);
	addr = xasprintf("unix://%s", path);
	cd.loop = event_loop_new();
	containerd_up(&cd, path);
	ev = shim_events_new(cd.loop, addr, "k8s.io");
	publish_exit(ev, "a");
	turn_until(&cd, ev, 1);
	assert_int_equal(cd.n, 1);
	assert_string_equal(cd.topics[0], "/tasks/exit/a");
	assert_int_equal(shim_events_queued(ev), 0);

	/* containerd restarts: what happens meanwhile waits, then goes in order. */
	containerd_down(&cd, path);
	for (int i = 0; i < 4; i++)
		(void)event_loop_once(cd.loop, 20);
	publish_exit(ev, "b");
	publish_exit(ev, "c");
	for (int i = 0; i < 4; i++)
		(void)event_loop_once(cd.loop, 20);
	assert_int_equal(shim_events_queued(ev), 2);
	assert_int_equal(cd.n, 1);
	containerd_up(&cd, path);
	turn_until(&cd, ev, 3);
	assert_int_equal(cd.n, 3);
	assert_string_equal(cd.topics[1], "/tasks/exit/b");
	assert_string_equal(cd.topics[2], "/tasks/exit/c");
	assert_int_equal(shim_events_queued(ev), 0);

	/* Away long: the queue holds 1024, the oldest go. */
	containerd_down(&cd, path);
	for (int i = 0; i < 4; i++)
		(void)event_loop_once(cd.loop, 20);
	for (int i = 0; i < 1100; i++) {
		_cleanup_free_ char *id = xasprintf("n%d", i);
		publish_exit(ev, id);
	}
	assert_int_equal(shim_events_queued(ev), 1024);
	containerd_up(&cd, path);
	turn_until(&cd, ev, 3 + 1024);
	assert_int_equal(cd.n, 3 + 1024);
	assert_string_equal(cd.topics[3], "/tasks/exit/n76"); /* 0..75 dropped */
	assert_string_equal(cd.topics[cd.n - 1], "/tasks/exit/n1099");

	shim_events_free(ev);
	containerd_down(&cd, path);
	for (size_t i = 0; i < cd.n; i++)
		free(cd.topics[i]);
	event_loop_free(cd.loop);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_queued_while_away),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
