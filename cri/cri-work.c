/* SPDX-License-Identifier: MIT */
/* The blocking parts of the CRI (a registry pull runs for minutes) on threads of their
 * own, so that the loop answers every other call meanwhile. A worker touches only what
 * its work item holds; it hands the item back through a pipe and the loop finishes it. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "cri.h"
#include "log.h"
#include "util.h"

struct work {
	cri_work_fn work;
	cri_done_fn done;
	void *arg;
	int fd; /* the pipe's write end */
};

static void *run(void *p)
{
	struct work *w = p;
	w->work(w->arg);
	/* A pointer is at most PIPE_BUF bytes: the write is atomic. */
	if (write(w->fd, &w, sizeof(w)) != sizeof(w))
		abort();
	return NULL;
}

static void on_done(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct cri *c = userdata;
	struct work *w;
	(void)loop, (void)revents;

	while (read(fd, &w, sizeof(w)) == sizeof(w)) {
		c->n_working--;
		w->done(c, w->arg);
		free(w);
	}
}

int cri_run_work(struct cri *c, cri_work_fn fn, cri_done_fn done, void *arg)
{
	struct work *w = xcalloc(1, sizeof(*w));
	pthread_attr_t attr;
	pthread_t t;
	int r;

	w->work = fn;
	w->done = done;
	w->arg = arg;
	w->fd = c->work_pipe[1];
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = pthread_create(&t, &attr, run, w);
	pthread_attr_destroy(&attr);
	if (r != 0) {
		free(w);
		return -r;
	}
	c->n_working++;
	return 0;
}

int cri_work_init(struct cri *c)
{
	if (pipe2(c->work_pipe, O_CLOEXEC) < 0)
		return -errno;
	fd_set_nonblock(c->work_pipe[0], true);
	return event_add(c->loop, c->work_pipe[0], EPOLLIN, on_done, c);
}

void cri_work_done(struct cri *c)
{
	/* Workers still running finish into the pipe; wait for them (a pull's curl
	 * timeout bounds it), so that none writes to a closed fd. */
	while (c->n_working > 0 && c->loop)
		event_loop_once(c->loop, 1000);
	if (c->loop && c->work_pipe[0] > 0)
		event_del(c->loop, c->work_pipe[0]);
	if (c->work_pipe[0] > 0) {
		close(c->work_pipe[0]);
		close(c->work_pipe[1]);
	}
}

char *cri_new_id(void)
{
	uint8_t b[32];
	char *id = xmalloc(65);
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read_all(fd, b, sizeof(b)) != (ssize_t)sizeof(b))
		abort();
	close(fd);
	for (int i = 0; i < 32; i++)
		snprintf(id + 2 * i, 3, "%02x", b[i]);
	return id;
}
