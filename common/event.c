/* SPDX-License-Identifier: MIT */
#include "event.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "log.h"

#include "macros.h"

struct event_source {
	int fd;
	uint32_t events; /* as registered: event_mod() skips no-op epoll_ctl calls */
	event_cb cb;
	void *userdata;
	bool dead;
	struct event_source *next;
};

struct event_deferred {
	event_defer_cb fn;
	void *userdata;
	struct event_deferred *next;
};

struct event_loop {
	int epfd;
	struct event_source *sources;
	struct event_deferred *deferred, **deferred_tail;
};

struct event_loop *event_loop_new(void)
{
	struct event_loop *loop = xcalloc(1, sizeof(*loop));
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0)
		abort();
	loop->deferred_tail = &loop->deferred;
	return loop;
}

static void sources_sweep(struct event_loop *loop)
{
	struct event_source **pp = &loop->sources;
	while (*pp) {
		struct event_source *s = *pp;
		if (s->dead) {
			*pp = s->next;
			free(s);
		} else {
			pp = &s->next;
		}
	}
}

struct event_loop *event_loop_free(struct event_loop *loop)
{
	if (!loop)
		return NULL;
	for (struct event_source *s = loop->sources; s; s = s->next)
		s->dead = true;
	sources_sweep(loop);
	while (loop->deferred) {
		struct event_deferred *d = loop->deferred;
		loop->deferred = d->next;
		free(d);
	}
	close(loop->epfd);
	free(loop);
	return NULL;
}

static struct event_source *source_find(struct event_loop *loop, int fd)
{
	for (struct event_source *s = loop->sources; s; s = s->next)
		if (!s->dead && s->fd == fd)
			return s;
	return NULL;
}

int event_add(struct event_loop *loop, int fd, uint32_t events, event_cb cb, void *userdata)
{
	struct event_source *s = xcalloc(1, sizeof(*s));
	struct epoll_event ev = {.events = events};

	s->fd = fd;
	s->events = events;
	s->cb = cb;
	s->userdata = userdata;
	ev.data.ptr = s;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int r = -errno;
		free(s);
		return r;
	}
	s->next = loop->sources;
	loop->sources = s;
	return 0;
}

int event_mod(struct event_loop *loop, int fd, uint32_t events)
{
	struct event_source *s = source_find(loop, fd);
	struct epoll_event ev = {.events = events};

	if (!s)
		return -ENOENT;
	if (s->events == events)
		return 0;
	ev.data.ptr = s;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	s->events = events;
	return 0;
}

void event_del(struct event_loop *loop, int fd)
{
	struct event_source *s = source_find(loop, fd);
	if (!s)
		return;
	(void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
	/* Freed after dispatch: a callback may delete a source that has a pending event. */
	s->dead = true;
}

void event_defer(struct event_loop *loop, event_defer_cb fn, void *userdata)
{
	struct event_deferred *d = xcalloc(1, sizeof(*d));
	d->fn = fn;
	d->userdata = userdata;
	*loop->deferred_tail = d;
	loop->deferred_tail = &d->next;
}

void event_defer_cancel(struct event_loop *loop, event_defer_cb fn, void *userdata)
{
	for (struct event_deferred *d = loop->deferred; d; d = d->next)
		if (d->fn == fn && d->userdata == userdata)
			d->fn = NULL;
}

/* Deferred calls may defer more: those run in the same pass. Returns how many ran. */
static int run_deferred(struct event_loop *loop)
{
	int n = 0;
	while (loop->deferred) {
		struct event_deferred *d = loop->deferred;
		loop->deferred = d->next;
		if (!loop->deferred)
			loop->deferred_tail = &loop->deferred;
		if (d->fn) {
			d->fn(d->userdata);
			n++;
		}
		free(d);
	}
	return n;
}

int event_loop_once(struct event_loop *loop, int timeout_ms)
{
	struct epoll_event evs[32];
	int n;

	/* Deferred work is an iteration of its own: the caller looks at what it changed
	 * (a sandbox that became ready) before the loop waits. */
	if (run_deferred(loop) > 0) {
		sources_sweep(loop);
		return 0;
	}
	n = epoll_wait(loop->epfd, evs, (int)ELEMENTSOF(evs), timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		struct event_source *s = evs[i].data.ptr;
		if (!s->dead)
			s->cb(loop, s->fd, evs[i].events, s->userdata);
	}
	run_deferred(loop);
	sources_sweep(loop);
	return 0;
}

static void on_stop_signal(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct signalfd_siginfo si;
	(void)loop, (void)revents;
	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		log_info("%s: stopping the sandbox", strsignal((int)si.ssi_signo));
		*(bool *)userdata = true;
	}
}

int event_add_stop_signals(struct event_loop *loop, bool *stop)
{
	sigset_t mask;
	int fd, r;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGPIPE);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sigdelset(&mask, SIGPIPE);
	fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	r = event_add(loop, fd, EPOLLIN, on_stop_signal, stop);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}
