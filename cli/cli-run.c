/* SPDX-License-Identifier: MIT */
/* hull run: a pod of one container plus a terminal. Boot, create, stream stdio, forward
 * signals, return the job's exit status, leave nothing behind. One event loop that never
 * blocks: not on the guest (the pod core), not on our own stdout (a non-blocking sink:
 * a reader that does not read holds the guest back, never hull), so signals and
 * --timeout are always answered. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <termios.h>

#include "agent.pb-c.h"
#include "cli-run.h"
#include "cli.h"
#include "cni.h"
#include "log.h"
#include "pod-mount.h"
#include "util.h"

#define STOP_TIMEOUT_MS 5000
/* After SIGKILL, how long a guest may take to report the end before its VM is
 * stopped: a guest that never answers must not keep hull. */
#define GIVE_UP_MS 5000

enum phase {
	PHASE_BOOT,  /* until the container is created */
	PHASE_START, /* StartContainer in flight */
	PHASE_RUN,   /* running: signals are forwarded */
	PHASE_DONE,
};

struct run_state {
	struct run_opts *o;
	struct run_job job;
	struct event_loop *loop;
	struct pod *pod;
	struct pod_ctr *c;
	struct pod_proc *p;
	enum phase phase;
	int sig_fd, winch_fd, timeout_fd, kill_fd, give_up_fd;
	int code;               /* the exit status, once known */
	struct hull_error *why; /* hull's failure: printed, 125 unless code says else */
	bool exited, drained, timed_out, killed;
	unsigned forwarded;
	struct termios saved_tty;
	bool tty_raw;
};

/* ---- terminal -------------------------------------------------------------------- */

static void tty_raw(struct run_state *s)
{
	struct termios t;
	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &s->saved_tty) < 0)
		return;
	t = s->saved_tty;
	cfmakeraw(&t);
	if (tcsetattr(STDIN_FILENO, TCSADRAIN, &t) == 0)
		s->tty_raw = true;
}

static void tty_restore(struct run_state *s)
{
	if (s->tty_raw)
		tcsetattr(STDIN_FILENO, TCSADRAIN, &s->saved_tty);
	s->tty_raw = false;
}

/* ---- the end ----------------------------------------------------------------------- */

/* The run is over with code, or with hull's error (125 unless code is given). */
static void finish(struct run_state *s, int code, const struct hull_error *why)
{
	if (s->phase == PHASE_DONE)
		return;
	s->phase = PHASE_DONE;
	s->code = code;
	if (why)
		hull_error_set(&s->why, why->code, "%s", why->msg);
}

static void maybe_finish(struct run_state *s)
{
	uint32_t status = 0;
	const char *why = NULL;
	struct hull_error e = {.code = -EPROTO};

	if (!s->exited || !s->drained)
		return;
	pod_proc_exit(s->p, &status, NULL, &why);
	if (why) {
		/* Not the job's doing: its VM died, or the guest reported nonsense. */
		e.msg = (char *)why;
		finish(s, EXIT_HULL_ERROR, &e);
		return;
	}
	finish(s, s->timed_out ? EXIT_HULL_TIMEOUT : (int)status, NULL);
}

static void arm_timer(int fd, uint64_t ms)
{
	struct itimerspec its = {
	    .it_value = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000}};
	if (ms == 0)
		its.it_value.tv_nsec = 1;
	timerfd_settime(fd, 0, &its, NULL);
}

static void send_signal(struct run_state *s, int sig)
{
	/* A process that already exited answers NOT_FOUND: nothing to do. */
	(void)pod_signal(s->p, sig, NULL, NULL, NULL);
	if (sig == SIGKILL && !s->killed) {
		s->killed = true;
		arm_timer(s->give_up_fd, GIVE_UP_MS);
	}
}

/* ---- what the pod tells us ------------------------------------------------------------ */

static void on_booted(struct pod *pod, int r, const struct hull_error *err, void *userdata)
{
	struct run_state *s = userdata;
	(void)pod;
	if (r < 0)
		finish(s, EXIT_HULL_ERROR, err);
}

static void on_exited(struct pod_proc *p, void *userdata)
{
	struct run_state *s = userdata;
	(void)p;
	log_debug("container exited");
	s->exited = true;
	maybe_finish(s);
}

static void on_drained(struct pod_proc *p, int r, const struct hull_error *err, void *userdata)
{
	struct run_state *s = userdata;
	(void)p;
	log_debug("stdio drained");
	s->drained = true;
	if (r == -EPROTO) {
		/* A guest that broke the stream is not believed about the rest either: the
		 * sandbox ends with what it did. */
		pod_kill(s->pod, err);
		finish(s, EXIT_HULL_ERROR, err);
		return;
	}
	maybe_finish(s);
}

static void on_oom(struct pod_ctr *c, void *userdata)
{
	(void)c, (void)userdata;
	fprintf(stderr, "hull: the container was OOM-killed (memory limit reached)\n");
}

static void on_lost(struct pod *pod, const struct hull_error *err, void *userdata)
{
	struct run_state *s = userdata;
	_cleanup_free_ char *tail = NULL;
	struct hull_error e = {.code = err->code};
	(void)pod;

	if (s->phase == PHASE_DONE)
		return;
	if (s->exited && s->drained)
		return; /* maybe_finish reported it */
	tail = sandbox_console_tail(pod_sandbox(s->pod), 1024);
	e.msg = xasprintf("the VM exited before the job finished (%s)%s%s", err->msg,
	                  *tail ? "\n--- guest console (last lines) ---\n" : "", tail);
	finish(s, EXIT_HULL_ERROR, &e);
	free(e.msg);
}

static const struct pod_sink sink = {
    .booted = on_booted,
    .exited = on_exited,
    .drained = on_drained,
    .oom = on_oom,
    .lost = on_lost,
};

static void on_started(void *userdata, int r, const struct hull_error *err)
{
	struct run_state *s = userdata;

	if (r < 0) {
		/* Only a failed exec becomes 126/127 (as docker): every other failure is
		 * hull's, 125. */
		finish(s,
		       r == -ENOENT   ? EXIT_CMD_NOT_FOUND
		       : r == -EACCES ? EXIT_CMD_NOT_EXEC
		                      : EXIT_HULL_ERROR,
		       err);
		return;
	}
	log_debug("container started");
	s->phase = PHASE_RUN;
	if (s->o->timeout_ms)
		arm_timer(s->timeout_fd, s->o->timeout_ms);
	if (s->o->tty)
		tty_raw(s);
}

static void on_created(void *userdata, int r, const struct hull_error *err)
{
	struct run_state *s = userdata;
	_cleanup_error_ struct hull_error *e = NULL;
	struct stream_sink *out, *errs = NULL;
	int in = -1;

	if (r < 0) {
		s->c = NULL;
		if (s->phase != PHASE_DONE)
			finish(s, EXIT_HULL_ERROR, err);
		return;
	}
	log_debug("container created");
	s->p = pod_ctr_init(s->c);
	/* Our stdout and stderr as non-blocking sinks of their own; with -t the terminal
	 * merges them as docker does. */
	out = stream_sink_stdio(STDOUT_FILENO);
	if (!s->o->tty)
		errs = stream_sink_stdio(STDERR_FILENO);
	if (s->o->interactive) {
		in = stream_source_stdio(STDIN_FILENO);
		if (in < 0) {
			hull_error_set_errno(&e, in, "stdin");
			finish(s, EXIT_HULL_ERROR, e);
			return;
		}
	}
	pod_proc_set_stdio(s->p, out, errs, in);
	if (pod_start(s->p, on_started, s, &e) < 0) {
		finish(s, EXIT_HULL_ERROR, e);
		return;
	}
	s->phase = PHASE_START;
}

/* ---- our own events ------------------------------------------------------------------- */

static void on_signal(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct run_state *s = userdata;
	struct signalfd_siginfo si;
	(void)loop, (void)revents;

	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		int sig = (int)si.ssi_signo;
		if (sig == SIGWINCH) {
			Hull__Agent__V1__ResizeRequest req = HULL__AGENT__V1__RESIZE_REQUEST__INIT;
			if (s->phase != PHASE_RUN)
				continue;
			req.id = (char *)CONTAINER_ID;
			run_tty_size(&req.rows, &req.cols);
			(void)pod_call(s->pod, "ResizePty", &req.base, NULL, NULL, NULL);
			continue;
		}
		if (s->phase == PHASE_BOOT || s->phase == PHASE_START) {
			/* Until the job runs, a signal ends the attempt. */
			log_info("%s: stopping", strsignal(sig));
			finish(s, 128 + sig, NULL);
			continue;
		}
		if (s->phase != PHASE_RUN || s->exited) {
			/* The job is over and its output does not drain: stop waiting. */
			if (s->exited) {
				s->drained = true;
				maybe_finish(s);
			}
			continue;
		}
		/* A second interrupt means "now": a PID 1 that ignores SIGINT/SIGTERM (the
		 * default in a pid namespace) would otherwise never stop. */
		if (s->forwarded++ > 0) {
			log_info("second %s: killing the container", strsignal(sig));
			send_signal(s, SIGKILL);
			continue;
		}
		/* The image's StopSignal is how its process wants to be stopped. */
		if (sig == SIGTERM && s->o->stop_signal > 0)
			sig = s->o->stop_signal;
		log_info("forwarding %s", strsignal(sig));
		send_signal(s, sig);
		arm_timer(s->kill_fd, s->o->stop_timeout_ms);
	}
}

static void on_timer(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct run_state *s = userdata;
	uint64_t ticks;
	(void)loop, (void)revents;

	(void)!read(fd, &ticks, sizeof(ticks));
	if (s->phase != PHASE_RUN)
		return;
	if (fd == s->give_up_fd) {
		struct hull_error e = {.code = -ETIMEDOUT,
		                       .msg =
		                           (char *)"the guest did not end the job after SIGKILL: "
		                                   "its VM is stopped"};
		if (s->exited) {
			/* It ended, but its output does not drain (a reader that does not
			 * read): what is left is dropped. */
			s->drained = true;
			maybe_finish(s);
			return;
		}
		pod_kill(s->pod, &e);
		finish(s, s->timed_out ? EXIT_HULL_TIMEOUT : EXIT_HULL_ERROR, &e);
		return;
	}
	if (fd == s->timeout_fd) {
		s->timed_out = true;
		fprintf(stderr, "hull: timeout: killing the job after %.3gs\n",
		        (double)s->o->timeout_ms / 1000.0);
	} else {
		log_info("stop timeout: killing the container");
	}
	send_signal(s, SIGKILL);
}

static int setup_loop(struct run_state *s, struct hull_error **err)
{
	sigset_t mask;

	/* Signals become events. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGWINCH);
	sigaddset(&mask, SIGPIPE);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sigdelset(&mask, SIGPIPE);
	s->loop = event_loop_new();
	s->sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	s->timeout_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	s->kill_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	s->give_up_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (s->sig_fd < 0 || s->timeout_fd < 0 || s->kill_fd < 0 || s->give_up_fd < 0)
		return hull_error_set_errno(err, -errno, "event loop");
	event_add(s->loop, s->sig_fd, EPOLLIN, on_signal, s);
	event_add(s->loop, s->timeout_fd, EPOLLIN, on_timer, s);
	event_add(s->loop, s->kill_fd, EPOLLIN, on_timer, s);
	event_add(s->loop, s->give_up_fd, EPOLLIN, on_timer, s);
	return 0;
}

static void print_phases(struct run_state *s, uint64_t t_teardown_ns)
{
	struct sandbox *sb = pod_sandbox(s->pod);
	if (!getenv("HULL_BENCH_PHASES") || !sb)
		return;
	fprintf(stderr, "hull-phases: vmm_start_ms=%.1f boot_ms=%.1f job_ms=%.1f\n",
	        (double)(sb->t_vmm_ns - sb->t_start_ns) / 1e6,
	        (double)(sb->t_ready_ns - sb->t_vmm_ns) / 1e6,
	        (double)(t_teardown_ns - sb->t_ready_ns) / 1e6);
}

/* The foreground run, once the options are ready. Returns the exit code. */
static int run_foreground(struct run_opts *o, const char *name)
{
	struct run_state s = {.o = o,
	                      .sig_fd = -1,
	                      .winch_fd = -1,
	                      .timeout_fd = -1,
	                      .kill_fd = -1,
	                      .give_up_fd = -1};
	_cleanup_error_ struct hull_error *err = NULL;
	int code, fds[4];

	if (setup_loop(&s, &err) < 0 || run_job_prepare(o, name, &s.job, &err) < 0) {
		fprintf(stderr, "hull: %s\n", err->msg);
		code = EXIT_HULL_ERROR;
		goto out;
	}
	s.pod = pod_new(s.loop, &sink, &s);
	if (pod_boot(s.pod, &s.job.pod, &err) < 0 ||
	    pod_create(s.pod, &s.job.ctr, on_created, &s, &s.c, &err) < 0) {
		finish(&s, EXIT_HULL_ERROR, err);
	}
	while (s.phase != PHASE_DONE) {
		int r = event_loop_once(s.loop, -1);
		if (r < 0) {
			hull_error_set_errno(&err, r, "event loop");
			finish(&s, EXIT_HULL_ERROR, err);
		}
	}
	tty_restore(&s);
	code = s.code;
	if (s.why) {
		fprintf(stderr, "hull: %s\n", s.why->msg);
		hull_error_free(s.why);
	}
	{
		uint64_t t0 = sandbox_now_ns();
		print_phases(&s, t0);
		s.pod = pod_free(s.pod, STOP_TIMEOUT_MS);
		if (getenv("HULL_BENCH_PHASES"))
			fprintf(stderr, "hull-phases: teardown_ms=%.1f\n",
			        (double)(sandbox_now_ns() - t0) / 1e6);
	}
out:
	run_job_done(&s.job);
	s.loop = event_loop_free(s.loop);
	fds[0] = s.sig_fd, fds[1] = s.timeout_fd, fds[2] = s.kill_fd, fds[3] = s.give_up_fd;
	for (size_t i = 0; i < ELEMENTSOF(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return code;
}

/* Everything the host must arrange before booting: the bundle's mounts, the network,
 * the /etc files that go with it. */
static int prepare(struct run_opts *o, struct cni **cni, struct hull_error **err)
{
	struct stat st;
	int r;

	if (o->bundle_dir) {
		r = bundle_read(o->bundle_dir, &o->bundle, err);
		if (r < 0)
			return r;
		/* The spec's bind mounts: host paths the guest reaches through binds. */
		o->vols = xcalloc(o->bundle.n_binds + 1, sizeof(*o->vols));
		for (size_t i = 0; i < o->bundle.n_binds; i++)
			o->vols[o->n_vols++] =
			    (struct volume){.host = xstrdup(o->bundle.binds[i].source),
			                    .container = xstrdup(o->bundle.binds[i].destination),
			                    .readonly = o->bundle.binds[i].readonly,
			                    .copy = o->bundle.binds[i].is_file};
		o->tty = o->bundle.terminal;
	} else if (!o->layers) {
		if (stat(o->rootfs, &st) < 0 || !S_ISDIR(st.st_mode))
			return hull_error_set(err, -ENOTDIR, "rootfs '%s': %s", o->rootfs,
			                      errno && !S_ISDIR(st.st_mode) ? strerror(errno)
			                                                    : "not a directory");
		char *real = realpath(o->rootfs, NULL);
		if (real) {
			free(o->rootfs);
			o->rootfs = real;
		}
	}
	if (o->cni_net) {
		/* Our own namespace with the network's plugins run on it; the VM joins it
		 * as it joins a pod's. Removed (CNI DEL) when the sandbox ends. */
		_cleanup_free_ char *root = sandbox_default_state_root();
		_cleanup_free_ char *dns = NULL, *hosts = NULL;
		r = cni_setup(o->cni_net, o->name, root, o->port_mappings, cni, err);
		if (r < 0)
			return r;
		o->netns = xstrdup((*cni)->netns);
		dns = cni_resolv_conf(&(*cni)->res);
		hosts = run_hosts_text(o->hostname ? o->hostname : o->name, (*cni)->res.ips);
		/* No DNS in the result: the host's, as CRI does. */
		r = run_add_etc_file(o, "/etc/resolv.conf", dns, err);
		if (r == 0)
			r = run_add_etc_file(o, "/etc/hosts", hosts, err);
		if (r < 0)
			return r;
	}
	/* QEMU's NAT answers DNS at 10.0.2.3: the container's resolv.conf says so. */
	if (o->net_user)
		return run_add_etc_file(o, "/etc/resolv.conf", "nameserver " SANDBOX_NAT_DNS "\n",
		                        err);
	return 0;
}

int cli_run(int argc, char **argv)
{
	_cleanup_error_ struct hull_error *err = NULL;
	struct run_opts o;
	struct cni *cni = NULL;
	const char *qemu;
	int r, code, ready_fd = -1;

	r = run_parse_args(argc, argv, &o);
	if (r != 0) {
		run_opts_done(&o);
		return r > 0 ? 0 : EXIT_HULL_ERROR;
	}
	/* Check what we can before anything is made. */
	qemu = o.vm.qemu                                     ? o.vm.qemu
	       : getenv("HULL_QEMU") && *getenv("HULL_QEMU") ? getenv("HULL_QEMU")
	                                                     : "qemu-system-x86_64";
	if (run_check_binary(qemu) < 0) {
		fprintf(
		    stderr,
		    "hull: QEMU binary '%s' not found (install qemu-system-x86 or set HULL_QEMU)\n",
		    qemu);
		run_opts_done(&o);
		return EXIT_HULL_ERROR;
	}
	if (!o.name)
		o.name = run_random_name();
	if (o.detach) {
		/* The per-sandbox process does the rest; we wait for its word. */
		code = run_detach_fork(&o, &ready_fd);
		if (code >= 0) {
			run_opts_done(&o);
			return code;
		}
	}
	/* Without root, the binds of the sandbox's shared directory need a mount (and
	 * user) namespace of our own (pod_private_mounts). */
	r = geteuid() != 0 ? pod_private_mounts(&err) : 0;
	if (r >= 0)
		r = prepare(&o, &cni, &err);
	if (r < 0) {
		/* -d: our stderr is the waiting caller's pipe until the job runs. */
		fprintf(stderr, "hull: %s\n", err->msg);
		cni = cni_teardown(cni);
		run_opts_done(&o);
		return EXIT_HULL_ERROR;
	}
	code = o.detach ? run_detached(&o, ready_fd) : run_foreground(&o, o.name);
	cni = cni_teardown(cni);
	run_opts_done(&o);
	return code;
}
