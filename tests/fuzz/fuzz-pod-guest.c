/* SPDX-License-Identifier: MIT */
/* Whatever a hostile guest writes into the agent channel, as the pod core sees it with
 * a container started the way every front end starts one: its stdio stream attached
 * (sinks that take everything, or none at all), StartContainer answered, WaitProcess in
 * flight. The input's first byte picks the sink and how often the rest is fed (so that
 * more than the 4 MiB window can arrive); every frame after that is the guest's.
 *
 * Checked on every input: the host never holds more than the stream window for its
 * sinks, whatever the guest sends (the hard cap). */
#include <stdint.h>
#include <string.h>

#include "log.h"
#include "pod-internal.h"
#include "agent.pb-c.h"
#include "stream.h"
#include "ttrpc-msg.h"
#include "util.h"

struct mem_sink {
	struct stream_sink base;
	bool stuck;
};

static ssize_t sink_write(struct stream_sink *s, const void *p, size_t n)
{
	(void)p;
	return ((struct mem_sink *)s)->stuck ? -EAGAIN : (ssize_t)n;
}

static void sink_close(struct stream_sink *s)
{
	free(s);
}

static struct stream_sink *sink_new(bool stuck)
{
	struct mem_sink *m = xcalloc(1, sizeof(*m));
	m->base.write = sink_write;
	m->base.close = sink_close;
	m->base.fd = -1; /* never becomes writable: a reader that never reads */
	m->stuck = stuck;
	return &m->base;
}

static void noop_done(void *userdata, int r, const struct hull_error *err)
{
	(void)userdata, (void)r, (void)err;
}

static const struct pod_sink sink = {0};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct event_loop *loop;
	struct pod *pod;
	struct pod_ctr *c;
	struct pod_proc *p;
	struct sandbox *sb;
	struct buf out = {0};
	unsigned mode, repeat;

	if (size < 1 || size > 65536)
		return 0;
	if (!loop) {
		log_setup("fuzz", LOG_LEVEL_ERROR);
		loop = event_loop_new();
	}
	mode = data[0];
	repeat = 1 + (mode >> 2) % 32;
	data++, size--;

	pod = pod_new(loop, &sink, NULL);
	sb = sandbox_fake(loop, -1, NULL);
	pod_adopt(pod, sb);
	c = xcalloc(1, sizeof(*c));
	c->pod = pod;
	c->id = xstrdup("job");
	c->in_guest = true;
	pod->ctrs = c;
	p = xcalloc(1, sizeof(*p));
	p->c = c;
	p->exec_id = xstrdup("");
	p->in_fd = -1;
	c->procs = p;
	/* stdout and stderr: both taken, both stuck, or none (dropped, credit back). */
	if ((mode & 3) != 2)
		pod_proc_set_stdio(p, sink_new(mode & 1), sink_new(mode & 1), -1);
	/* Streams 1 (AttachStdio), 3 (StartContainer), 5 (WaitProcess). */
	if (pod_start(p, noop_done, NULL, NULL) < 0)
		abort();
	/* StartContainer answered with a pid, so the rest meets a running process. */
	{
		Hull__Agent__V1__StartContainerResponse sr =
		    HULL__AGENT__V1__START_CONTAINER_RESPONSE__INIT;
		sr.pid = 42;
		ttrpc_response_append(&out, 3, 0, NULL, &sr.base);
		ttrpc_client_feed(sb->agent, buf_head(&out), out.len);
	}
	for (unsigned i = 0; i < repeat && !ttrpc_client_failed(sb->agent, NULL); i++) {
		ttrpc_client_feed(sb->agent, data, size);
		if (p->stream && stream_buffered(p->stream) > STREAM_WINDOW)
			abort(); /* the guest made us hold more than the window */
	}
	for (int i = 0; i < 4; i++)
		(void)event_loop_once(loop, 0);
	buf_release(&out);
	pod_free(pod, 0);
	return 0;
}
