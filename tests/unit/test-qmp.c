/* SPDX-License-Identifier: MIT */
/* The QMP client against a scripted fake QMP server (a forked child on a socketpair):
 * greeting, capabilities, errors, interleaved events, oversize replies, EOF, timeouts.
 * The messages follow QEMU's QMP spec; the integration suite checks the commands we
 * use against a real QEMU's schema. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "qmp.h"
#include "util.h"

#define GREETING                                                                          \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, " \
	"\"package\": \"Debian\"}, \"capabilities\": [\"oob\"]}}\r\n"

/* One step of the script: wait for a line containing `expect` (NULL: don't read), then
 * send `reply` verbatim (NULL: close the connection). */
struct step {
	const char *expect;
	const char *reply;
};

static pid_t fake_server(int fd, int client_fd, const struct step *steps, size_t n)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid > 0)
		return pid;
	/* Only the client's end may keep the line open, or EOF never comes. */
	close(client_fd);
	char line[4096];
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		if (steps[i].expect) {
			/* Read up to and including a newline. */
			len = 0;
			for (;;) {
				ssize_t r = read(fd, line + len, 1);
				if (r <= 0)
					_exit(2);
				if (line[len] == '\n')
					break;
				if (++len >= sizeof(line) - 1)
					_exit(3);
			}
			line[len] = '\0';
			if (!strstr(line, steps[i].expect)) {
				fprintf(stderr, "fake qmp: wanted '%s', got '%s'\n",
				        steps[i].expect, line);
				_exit(4);
			}
		}
		if (!steps[i].reply)
			_exit(0);
		if (write_all(fd, steps[i].reply, strlen(steps[i].reply)) < 0)
			_exit(5);
	}
	/* Hold the line open until the client is done. */
	(void)!read(fd, line, 1);
	_exit(0);
}

static struct qmp *client_for(const struct step *steps, size_t n, pid_t *pid)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	*pid = fake_server(sv[1], sv[0], steps, n);
	close(sv[1]);
	return qmp_new(sv[0]);
}

static void finish(struct qmp *q, pid_t pid)
{
	int status;
	qmp_free(q);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

struct events {
	int n;
	char last[64];
};

static void on_event(const char *event, json_object *data, void *userdata)
{
	struct events *e = userdata;
	(void)data;
	e->n++;
	snprintf(e->last, sizeof(e->last), "%s", event);
}

static void test_handshake_and_query_with_events(void **state)
{
	const struct step steps[] = {
	    {NULL, GREETING},
	    {"\"execute\":\"qmp_capabilities\"", "{\"return\": {}, \"id\": 1}\r\n"},
	    /* An event arrives before the reply: it must be dispatched, not taken
	     * for the answer. */
	    {"\"execute\":\"query-status\"",
	     "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"RESUME\"}\r\n"
	     "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}, "
	     "\"id\": 2}\r\n"},
	};
	struct events ev = {0};
	json_object *ret = NULL, *status;
	pid_t pid;
	struct qmp *q = client_for(steps, ELEMENTSOF(steps), &pid);
	(void)state;

	q->on_event = on_event;
	q->userdata = &ev;
	assert_int_equal(qmp_handshake(q, 5000, NULL), 0);
	assert_int_equal(qmp_execute(q, "query-status", NULL, &ret, 5000, NULL), 0);
	assert_true(json_object_object_get_ex(ret, "status", &status));
	assert_string_equal(json_object_get_string(status), "running");
	json_object_put(ret);
	assert_int_equal(ev.n, 1);
	assert_string_equal(ev.last, "RESUME");
	finish(q, pid);
}

static void test_error_reply(void **state)
{
	const struct step steps[] = {
	    {NULL, GREETING},
	    {"qmp_capabilities", "{\"return\": {}, \"id\": 1}\n"},
	    {"\"execute\":\"no-such-command\"",
	     "{\"id\": 2, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command "
	     "no-such-command has not been found\"}}\n"},
	};
	struct hull_error *err = NULL;
	pid_t pid;
	struct qmp *q = client_for(steps, ELEMENTSOF(steps), &pid);
	(void)state;

	assert_int_equal(qmp_handshake(q, 5000, NULL), 0);
	assert_int_equal(qmp_execute(q, "no-such-command", NULL, NULL, 5000, &err), -EIO);
	assert_non_null(strstr(err->msg, "CommandNotFound"));
	assert_non_null(strstr(err->msg, "no-such-command"));
	hull_error_free(err);
	finish(q, pid);
}

static void test_reply_over_size_cap(void **state)
{
	_cleanup_free_ char *huge = xmalloc(8192);
	memset(huge, 'x', 8191);
	huge[8191] = '\0';
	_cleanup_free_ char *reply = xasprintf("{\"return\": \"%s\", \"id\": 2}\n", huge);
	const struct step steps[] = {
	    {NULL, GREETING},
	    {"qmp_capabilities", "{\"return\": {}, \"id\": 1}\n"},
	    {"query-status", reply},
	};
	struct hull_error *err = NULL;
	pid_t pid;
	struct qmp *q = client_for(steps, ELEMENTSOF(steps), &pid);
	(void)state;

	q->max_message = 1024;
	assert_int_equal(qmp_handshake(q, 5000, NULL), 0);
	assert_int_equal(qmp_execute(q, "query-status", NULL, NULL, 5000, &err), -EMSGSIZE);
	assert_non_null(strstr(err->msg, "over 1024 bytes"));
	hull_error_free(err);
	finish(q, pid);
}

static void test_garbage_and_bad_greeting(void **state)
{
	const struct step garbage[] = {{NULL, "this is not json\n"}};
	const struct step no_qmp[] = {{NULL, "{\"hello\": 1}\n"}};
	const struct step array[] = {{NULL, "[1, 2, 3]\n"}};
	struct hull_error *err = NULL;
	pid_t pid;
	struct qmp *q;
	(void)state;

	q = client_for(garbage, 1, &pid);
	assert_int_equal(qmp_handshake(q, 5000, &err), -EBADMSG);
	hull_error_free(err), err = NULL;
	finish(q, pid);

	q = client_for(no_qmp, 1, &pid);
	assert_int_equal(qmp_handshake(q, 5000, &err), -EPROTO);
	assert_non_null(strstr(err->msg, "greeting"));
	hull_error_free(err), err = NULL;
	finish(q, pid);

	q = client_for(array, 1, &pid);
	assert_int_equal(qmp_handshake(q, 5000, &err), -EBADMSG);
	hull_error_free(err);
	finish(q, pid);
}

static void test_eof_and_timeout(void **state)
{
	const struct step eof[] = {
	    {NULL, GREETING},
	    {"qmp_capabilities", "{\"return\": {}, \"id\": 1}\n"},
	    {"quit", NULL}, /* QEMU closes the socket as it quits */
	};
	const struct step silent[] = {{NULL, GREETING}, {"qmp_capabilities", ""}};
	struct hull_error *err = NULL;
	pid_t pid;
	struct qmp *q;
	(void)state;

	q = client_for(eof, ELEMENTSOF(eof), &pid);
	assert_int_equal(qmp_handshake(q, 5000, NULL), 0);
	assert_int_equal(qmp_execute(q, "quit", NULL, NULL, 5000, &err), -ECONNRESET);
	hull_error_free(err), err = NULL;
	finish(q, pid);

	q = client_for(silent, ELEMENTSOF(silent), &pid);
	assert_int_equal(qmp_handshake(q, 200, &err), -ETIMEDOUT);
	assert_non_null(strstr(err->msg, "in time"));
	hull_error_free(err);
	finish(q, pid);
}

static void test_stale_reply_skipped_and_events_polled(void **state)
{
	const struct step steps[] = {
	    {NULL, GREETING},
	    {"qmp_capabilities", "{\"return\": {}, \"id\": 1}\n"},
	    /* A late reply to an earlier id, then ours; then an unsolicited event. */
	    {"query-status",
	     "{\"return\": {}, \"id\": 77}\n{\"return\": {\"running\": false}, \"id\": 2}\n"
	     "{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true, \"reason\": "
	     "\"guest-reset\"}}\n"},
	};
	struct events ev = {0};
	json_object *ret = NULL, *running;
	pid_t pid;
	struct qmp *q = client_for(steps, ELEMENTSOF(steps), &pid);
	(void)state;

	q->on_event = on_event;
	q->userdata = &ev;
	assert_int_equal(qmp_handshake(q, 5000, NULL), 0);
	assert_int_equal(qmp_execute(q, "query-status", NULL, &ret, 5000, NULL), 0);
	assert_true(json_object_object_get_ex(ret, "running", &running));
	assert_false(json_object_get_boolean(running));
	json_object_put(ret);
	for (int i = 0; i < 100 && ev.n == 0; i++) {
		assert_true(qmp_poll_events(q, NULL) >= 0);
		usleep(10000);
	}
	assert_int_equal(ev.n, 1);
	assert_string_equal(ev.last, "SHUTDOWN");
	finish(q, pid);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_handshake_and_query_with_events),
	    cmocka_unit_test(test_error_reply),
	    cmocka_unit_test(test_reply_over_size_cap),
	    cmocka_unit_test(test_garbage_and_bad_greeting),
	    cmocka_unit_test(test_eof_and_timeout),
	    cmocka_unit_test(test_stale_reply_skipped_and_events_polled),
	};
	return cmocka_run_group_tests_name("qmp", tests, NULL, NULL);
}
