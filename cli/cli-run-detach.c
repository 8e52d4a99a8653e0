/* SPDX-License-Identifier: MIT */
/* hull run -d: a per-sandbox process keeps the VM and serves the Task API
 * (pod/task-service.c, the containerd shim's own) on STATE/task.sock, with the job as
 * its first task; `hull ps/exec/logs/kill/rm/inspect` are its clients, as ctr is of a
 * shim. The job's output, and the process's own messages, go to a size-capped log with
 * rotation (STATE/container.log). */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

#include "cli-run.h"
#include "cli.h"
#include "log.h"
#include "pod-log.h"
#include "task-service.h"
#include "ttrpc-server.h"
#include "util.h"

#define STOP_TIMEOUT_MS 5000
#define GIVE_UP_MS 5000

struct detach {
	struct run_opts *o;
	struct run_job job;
	struct event_loop *loop;
	struct task_service *ts;
	struct ttrpc_server *srv;
	struct pod *pod;
	struct pod_ctr *c;
	struct logfile *log;
	char *sock;
	int ready_fd; /* until the job runs: where the waiting `hull run -d` reads */
	int sig_fd, timer_fd;
	bool shutdown, killed;
};

/* Tell the waiting caller (once): "ok NAME" or why not. */
_printf_(2, 3) static void say(struct detach *d, const char *fmt, ...)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	va_list ap;

	if (d->ready_fd < 0)
		return;
	va_start(ap, fmt);
	(void)vdprintf(d->ready_fd, fmt, ap);
	va_end(ap);
	close(d->ready_fd);
	d->ready_fd = -1;
	/* The caller sees EOF once no copy of the pipe is left: our stdout and stderr were
	 * it until now. */
	if (null >= 0) {
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		close(null);
	}
}

static void fail(struct detach *d, const char *what, const struct hull_error *err)
{
	say(d, "hull: %s%s%s\n", what, *what ? ": " : "", err ? err->msg : "failed");
	d->shutdown = true;
}

static void log_to_file(const char *line, size_t n, void *userdata)
{
	logfile_write(userdata, line, n);
}

static void arm(int fd, uint64_t ms)
{
	struct itimerspec its = {
	    .it_value = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000}};
	timerfd_settime(fd, 0, &its, NULL);
}

static void on_started(void *userdata, int r, const struct hull_error *err)
{
	struct detach *d = userdata;
	_cleanup_free_ char *what = xasprintf("start '%s'", CONTAINER_ID);

	if (r < 0) {
		fail(d, what, err);
		return;
	}
	say(d, "ok %s\n", pod_id(d->pod));
	if (d->o->timeout_ms)
		arm(d->timer_fd, d->o->timeout_ms);
}

static void on_created(void *userdata, int r, const struct hull_error *err)
{
	struct detach *d = userdata;
	_cleanup_error_ struct hull_error *e = NULL;
	struct pod_proc *p;

	if (r < 0) {
		fail(d, "", err);
		return;
	}
	p = pod_ctr_init(d->c);
	/* stdout and stderr interleaved in one log, as `docker logs` shows them. */
	pod_proc_set_stdio(p, logfile_sink(d->log), logfile_sink(d->log), -1);
	d->sock = xasprintf("%s/task.sock", pod_state_dir(d->pod));
	if (ttrpc_server_listen(d->srv, d->sock, &e) < 0 || pod_start(p, on_started, d, &e) < 0)
		fail(d, "", e);
}

static void on_booted(void *userdata, int r, const struct hull_error *err)
{
	struct detach *d = userdata;
	if (r < 0)
		fail(d, "", err);
}

static void on_shutdown(void *userdata)
{
	struct detach *d = userdata;
	d->shutdown = true;
}

static const struct task_service_ops ops = {.booted = on_booted, .shutdown = on_shutdown};

/* --timeout: SIGKILL, and a guest that does not end the job then loses its VM. */
static void on_timer(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct detach *d = userdata;
	struct pod_proc *p = pod_ctr_find(d->pod, CONTAINER_ID)
	                         ? pod_ctr_init(pod_ctr_find(d->pod, CONTAINER_ID))
	                         : NULL;
	uint64_t ticks;
	(void)loop, (void)revents;

	(void)!read(fd, &ticks, sizeof(ticks));
	if (!p || pod_proc_exit(p, NULL, NULL, NULL))
		return;
	if (!d->killed) {
		log_warn("timeout: killing '%s'", CONTAINER_ID);
		(void)pod_signal(p, SIGKILL, NULL, NULL, NULL);
		d->killed = true;
		arm(d->timer_fd, GIVE_UP_MS);
		return;
	}
	{
		struct hull_error e = {.code = -ETIMEDOUT,
		                       .msg =
		                           (char *)"the guest did not end the job after SIGKILL"};
		pod_kill(d->pod, &e);
	}
}

/* The per-sandbox process. */
static void serve(struct run_opts *o, int ready_fd)
{
	struct detach d = {.o = o, .ready_fd = ready_fd, .sig_fd = -1, .timer_fd = -1};
	_cleanup_error_ struct hull_error *err = NULL;
	const struct ttrpc_method *methods;
	_cleanup_free_ char *logpath = NULL;
	size_t n_methods;

	d.loop = event_loop_new();
	d.sig_fd = event_add_stop_signals(d.loop, &d.shutdown);
	d.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	event_add(d.loop, d.timer_fd, EPOLLIN, on_timer, &d);
	d.ts = task_service_new(d.loop, &ops, &d);
	d.pod = task_service_pod(d.ts);
	methods = task_service_methods(&n_methods);
	d.srv = ttrpc_server_new(d.loop, methods, n_methods, d.ts);
	if (run_job_prepare(o, o->name, &d.job, &err) < 0 ||
	    pod_boot(d.pod, &d.job.pod, &err) < 0) {
		fail(&d, "", err);
		goto out;
	}
	logpath = xasprintf("%s/container.log", pod_state_dir(d.pod));
	d.log = logfile_open(logpath, o->log_max_size, o->log_max_files, &err);
	if (!d.log || pod_create(d.pod, &d.job.ctr, on_created, &d, &d.c, &err) < 0) {
		fail(&d, "", err);
		goto out;
	}
	task_service_adopt(d.ts, d.c, o->bundle_dir);
	/* From here on our own messages go to the job's log, not to the caller. */
	log_set_writer(log_to_file, d.log);
	while (!d.shutdown) {
		int r = event_loop_once(d.loop, -1);
		if (r < 0) {
			log_error("event loop: %s", strerror(-r));
			break;
		}
	}
out:
	log_info("shutting down");
	say(&d, "hull: the sandbox process ended before the job ran\n");
	d.srv = ttrpc_server_free(d.srv);
	if (d.sock)
		(void)unlink(d.sock);
	d.ts = task_service_free(d.ts, STOP_TIMEOUT_MS);
	log_set_writer(NULL, NULL);
	d.log = logfile_unref(d.log);
	run_job_done(&d.job);
	free(d.sock);
	d.loop = event_loop_free(d.loop);
	if (d.sig_fd >= 0)
		close(d.sig_fd);
	close(d.timer_fd);
}

int run_detach_fork(struct run_opts *o, int *ret_ready_fd)
{
	char msg[4096];
	size_t got = 0;
	int p[2], devnull;
	pid_t child;

	(void)o;
	if (pipe2(p, O_CLOEXEC) < 0) {
		fprintf(stderr, "hull: pipe: %s\n", strerror(errno));
		return EXIT_HULL_ERROR;
	}
	child = fork();
	if (child < 0) {
		fprintf(stderr, "hull: fork: %s\n", strerror(errno));
		return EXIT_HULL_ERROR;
	}
	if (child > 0) {
		/* We wait only until it says the job runs (or why it could not). */
		close(p[1]);
		for (ssize_t n; got < sizeof(msg) - 1 &&
		                (n = read(p[0], msg + got, sizeof(msg) - 1 - got)) != 0;)
			if (n > 0)
				got += (size_t)n;
			else if (errno != EINTR)
				break;
		msg[got] = '\0';
		close(p[0]);
		if (strncmp(msg, "ok ", 3) == 0) {
			fputs(msg + 3, stdout);
			return 0;
		}
		fputs(got ? msg : "hull: the sandbox process ended without a word\n", stderr);
		return EXIT_HULL_ERROR;
	}
	/* Until the job runs, what we would print goes to the waiting caller. */
	close(p[0]);
	(void)setsid();
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	dup2(devnull, STDIN_FILENO);
	dup2(p[1], STDOUT_FILENO);
	dup2(p[1], STDERR_FILENO);
	if (devnull > 2)
		close(devnull);
	*ret_ready_fd = p[1];
	return -1;
}

int run_detached(struct run_opts *o, int ready_fd)
{
	serve(o, ready_fd);
	return 0;
}
