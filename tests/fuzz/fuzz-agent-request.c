/* SPDX-License-Identifier: MIT */
/* The agent's request path as the host reaches it: whatever a host writes on the
 * channel goes through the real ttrpc server (framing, envelopes, dispatch, DATA to
 * kept calls) into the agent's handlers, its process lifecycle and its stdio streams.
 * The container engine is stubbed (container-stub.c): nothing is cloned or mounted.
 *
 * One socketpair per input, written a frame at a time as a host does; after each the
 * event loop is turned with 0 timeouts until nothing moves, the agent's replies read
 * and dropped. No sleeps, no threads. Every fd an input opened
 * is closed when it is done (checked), every byte freed (LeakSanitizer). */
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "agent.h"
#include "ttrpc.h"

/* Rounds without a byte moving either way before the input counts as done. */
#define IDLE_ROUNDS 3
#define MAX_ROUNDS 4096

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d)))
		n++;
	if (d)
		closedir(d);
	return n;
}

/* Where the frame at data[off] ends: a host writes one frame and reads what comes
 * back before the next, so requests reach containers that finished their setup. A
 * truncated or oversized frame takes the rest of the input. */
static size_t frame_end(const uint8_t *data, size_t size, size_t off)
{
	uint32_t len;

	if (size - off < TTRPC_HEADER_SIZE)
		return size;
	len = (uint32_t)data[off] << 24 | (uint32_t)data[off + 1] << 16 |
	      (uint32_t)data[off + 2] << 8 | data[off + 3];
	if (len > size - off - TTRPC_HEADER_SIZE)
		return size;
	return off + TTRPC_HEADER_SIZE + len;
}

/* Turn the loop until nothing moved for a few rounds: bytes to the agent (up to end)
 * or from it. */
static void settle(struct agent *a, int fd, const uint8_t *data, size_t *off, size_t end)
{
	static uint8_t sink[256 << 10];
	int idle = 0;

	for (int round = 0; round < MAX_ROUNDS && idle < IDLE_ROUNDS; round++) {
		bool moved = false;
		ssize_t n;

		if (*off < end) {
			n = write(fd, data + *off, end - *off);
			if (n > 0) {
				*off += (size_t)n;
				moved = true;
			}
		}
		while ((n = read(fd, sink, sizeof(sink))) > 0)
			moved = true;
		if (event_loop_once(a->loop, 0) < 0)
			abort();
		idle = moved ? 0 : idle + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent a = {0};
	int fds = count_fds(), sv[2];
	size_t off = 0;

	/* As the agent's main() does: a stdin reader that is gone is EPIPE. */
	signal(SIGPIPE, SIG_IGN);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		abort();
	a.loop = event_loop_new();
	/* As on the virtio-serial port: the connection outlives a hangup. */
	if (agent_service_start(&a, sv[0], false) < 0)
		abort();
	do
		settle(&a, sv[1], data, &off, frame_end(data, size, off));
	while (off < size);
	agent_service_stop(&a);
	event_loop_free(a.loop);
	close(sv[1]);
	if (count_fds() != fds) {
		fprintf(stderr, "fuzz-agent-request: %d fds leaked\n", count_fds() - fds);
		abort();
	}
	return 0;
}
