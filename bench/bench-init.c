/* SPDX-License-Identifier: MIT */
/* /init for the benchmark floors. Default: power off at once (the boot floor hull's
 * startup is compared with). With "bench.raw=N" on the command line: write N bytes
 * straight into the agent's virtio-serial port, then power off (the raw channel speed
 * hull's stdio streaming is compared with). */
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <unistd.h>

#include "agent.h"
#include "util.h"

static unsigned long long raw_bytes(void)
{
	char line[4096];
	int fd = open("/proc/cmdline", O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, line, sizeof(line) - 1) : -1;
	char *p;

	if (n <= 0)
		return 0;
	line[n] = '\0';
	p = strstr(line, "bench.raw=");
	return p ? strtoull(p + 10, NULL, 10) : 0;
}

int main(void)
{
	static char chunk[64 << 10];
	unsigned long long left;
	int fd;

	if (mount("proc", "/proc", "proc", 0, NULL) < 0)
		reboot(RB_AUTOBOOT);
	left = raw_bytes();
	if (left > 0 && mount("sysfs", "/sys", "sysfs", 0, NULL) == 0 &&
	    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL) == 0 &&
	    agent_channel_open(false, &fd) == 0) {
		fd_set_nonblock(fd, 0);
		memset(chunk, 'x', sizeof(chunk));
		while (left > 0) {
			size_t n = left < sizeof(chunk) ? (size_t)left : sizeof(chunk);
			if (write_all(fd, chunk, n) < 0)
				break;
			left -= n;
		}
		/* Bytes still in the virtqueue die with a reboot: wait for the host to say
		 * it has them all (one byte back), at most 30 s. */
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		char ack;
		if (poll(&pfd, 1, 30000) > 0)
			(void)!read(fd, &ack, 1);
	}
	reboot(RB_AUTOBOOT);
	return 0;
}
