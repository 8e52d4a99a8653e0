/* SPDX-License-Identifier: MIT */
/* The event loop's deferred calls: after the round's callbacks, chains in one pass,
 * cancellation. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cmocka.h>

#include "event.h"
#include "util.h"

/* What ran, in order: one letter each. */
struct trace {
	struct event_loop *loop;
	char log[32];
	int fds[2][2]; /* two pipes */
};

static void trace_add(struct trace *t, char what)
{
	size_t n = strlen(t->log);
	assert_true(n + 1 < sizeof(t->log));
	t->log[n] = what;
}

static void trace_setup(struct trace *t)
{
	*t = (struct trace){0};
	t->loop = event_loop_new();
	for (int i = 0; i < 2; i++)
		assert_int_equal(pipe2(t->fds[i], O_CLOEXEC | O_NONBLOCK), 0);
}

static void trace_teardown(struct trace *t)
{
	event_loop_free(t->loop);
	for (int i = 0; i < 2; i++) {
		close(t->fds[i][0]);
		close(t->fds[i][1]);
	}
}

static void defer_d(void *userdata)
{
	trace_add(userdata, 'D');
}

static void defer_e(void *userdata)
{
	trace_add(userdata, 'E');
}

/* Readable pipe 0: defer D (and say so); pipe 1: just log. Both drain their pipe. */
static void on_a(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct trace *t = userdata;
	char c;
	(void)revents;
	assert_int_equal(read(fd, &c, 1), 1);
	trace_add(t, 'a');
	event_defer(loop, defer_d, t);
	/* Not run inside the callback that asked for it. */
	assert_null(strchr(t->log, 'D'));
}

static void on_b(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct trace *t = userdata;
	char c;
	(void)loop, (void)revents;
	assert_int_equal(read(fd, &c, 1), 1);
	trace_add(t, 'b');
}

/* A deferred call runs once, after every callback of the round it was asked in, and
 * before event_loop_once() returns. */
static void test_defer_after_round(void **state)
{
	struct trace t;
	(void)state;

	trace_setup(&t);
	assert_int_equal(event_add(t.loop, t.fds[0][0], EPOLLIN, on_a, &t), 0);
	assert_int_equal(event_add(t.loop, t.fds[1][0], EPOLLIN, on_b, &t), 0);
	/* Both readable before the round: one epoll_wait returns both, in either order. */
	assert_int_equal(write(t.fds[0][1], "x", 1), 1);
	assert_int_equal(write(t.fds[1][1], "x", 1), 1);
	assert_int_equal(event_loop_once(t.loop, 1000), 0);
	assert_int_equal(strlen(t.log), 3);
	assert_int_equal(t.log[2], 'D');
	assert_non_null(strchr(t.log, 'a'));
	assert_non_null(strchr(t.log, 'b'));
	/* Once. */
	assert_int_equal(event_loop_once(t.loop, 0), 0);
	assert_string_equal(t.log + 2, "D");
	trace_teardown(&t);
}

/* Asked outside a round: it runs at the start of the next one, even when that round
 * has nothing to dispatch. */
static void test_defer_outside_round(void **state)
{
	struct trace t;
	(void)state;

	trace_setup(&t);
	event_defer(t.loop, defer_d, &t);
	assert_string_equal(t.log, "");
	assert_int_equal(event_loop_once(t.loop, 0), 0);
	assert_string_equal(t.log, "D");
	trace_teardown(&t);
}

static void chain_3(void *userdata)
{
	trace_add(userdata, '3');
}

static void chain_2(void *userdata)
{
	struct trace *t = userdata;
	trace_add(t, '2');
	event_defer(t->loop, chain_3, t);
}

static void chain_1(void *userdata)
{
	struct trace *t = userdata;
	trace_add(t, '1');
	event_defer(t->loop, chain_2, t);
}

static void on_chain(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	char c;
	(void)revents;
	assert_int_equal(read(fd, &c, 1), 1);
	event_defer(loop, chain_1, userdata);
}

/* Deferred calls that defer more: all of them in the same pass, in order, before the
 * loop waits again. */
static void test_defer_chain_same_pass(void **state)
{
	struct trace t;
	(void)state;

	trace_setup(&t);
	assert_int_equal(event_add(t.loop, t.fds[0][0], EPOLLIN, on_chain, &t), 0);
	assert_int_equal(write(t.fds[0][1], "x", 1), 1);
	assert_int_equal(event_loop_once(t.loop, 1000), 0);
	assert_string_equal(t.log, "123");
	assert_int_equal(event_loop_once(t.loop, 0), 0);
	assert_string_equal(t.log, "123");
	trace_teardown(&t);
}

struct cancel {
	struct trace *t;
	void *victim; /* userdata of the defer_d to cancel */
};

static void cancel_first(void *userdata)
{
	struct cancel *c = userdata;
	trace_add(c->t, 'C');
	event_defer_cancel(c->t->loop, defer_d, c->victim);
}

/* event_defer_cancel() forgets exactly the calls of fn with userdata: asked before the
 * pass or by an earlier deferred call of the same pass. */
static void test_defer_cancel(void **state)
{
	struct trace t, other;
	struct cancel c;
	(void)state;

	trace_setup(&t);
	trace_setup(&other);
	event_defer(t.loop, defer_d, &t);
	event_defer(t.loop, defer_d, &other); /* same fn, other userdata */
	event_defer(t.loop, defer_e, &t);     /* same userdata, other fn */
	event_defer(t.loop, defer_d, &t);     /* every call of the pair goes */
	event_defer_cancel(t.loop, defer_d, &t);
	assert_int_equal(event_loop_once(t.loop, 0), 0);
	assert_string_equal(t.log, "E");
	assert_string_equal(other.log, "D");

	/* The first deferred call frees what the second would touch. */
	t.log[0] = '\0';
	c = (struct cancel){.t = &t, .victim = &other};
	event_defer(t.loop, cancel_first, &c);
	event_defer(t.loop, defer_d, &other);
	assert_int_equal(event_loop_once(t.loop, 0), 0);
	assert_string_equal(t.log, "C");
	assert_string_equal(other.log, "D");

	/* Cancelling what is not there is harmless; a freed loop runs nothing. */
	event_defer_cancel(t.loop, defer_e, &other);
	event_defer(t.loop, defer_e, &t);
	trace_teardown(&t);
	assert_string_equal(t.log, "C");
	trace_teardown(&other);
}

/* Deferred work is a round of its own: a loop waiting forever (-1) with nothing to
 * wake it still returns after running it, so its caller sees what it changed (the
 * sandbox of `hull template create` ready from a deferred call). SIGALRM ends a test
 * that would hang. */
static void test_defer_is_a_round(void **state)
{
	struct trace t;
	(void)state;

	trace_setup(&t);
	alarm(10);
	event_defer(t.loop, defer_d, &t);
	assert_int_equal(event_loop_once(t.loop, -1), 0);
	assert_string_equal(t.log, "D");
	alarm(0);
	trace_teardown(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defer_after_round),
	    cmocka_unit_test(test_defer_outside_round),
	    cmocka_unit_test(test_defer_chain_same_pass),
	    cmocka_unit_test(test_defer_cancel),
	    cmocka_unit_test(test_defer_is_a_round),
	};
	return cmocka_run_group_tests_name("event", tests, NULL, NULL);
}
