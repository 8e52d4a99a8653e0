/* SPDX-License-Identifier: MIT */
/* The agent's end of the host channel: a named virtio-serial port, or AF_VSOCK. */
#include "agent.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"
#include "util.h"

static int find_serial_port(char **ret_path)
{
	_cleanup_(closedirp) DIR *d = opendir("/sys/class/virtio-ports");
	struct dirent *de;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		_cleanup_free_ char *p = NULL;
		char name[64] = "";
		_cleanup_close_ int fd = -1;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		p = xasprintf("/sys/class/virtio-ports/%s/name", de->d_name);
		fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, name, sizeof(name) - 1);
		if (n <= 0)
			continue;
		name[n] = '\0';
		name[strcspn(name, "\n")] = '\0';
		if (strcmp(name, AGENT_SERIAL_PORT) == 0) {
			*ret_path = xasprintf("/dev/%s", de->d_name);
			return 0;
		}
	}
	return -ENOENT;
}

static int open_serial(int *ret_fd)
{
	_cleanup_free_ char *path = NULL;
	int r = -ENOENT;

	/* Ports appear when the host's control messages arrive, which can be after /init
	 * starts: poll for a while before giving up. */
	for (int i = 0; i < 500; i++) {
		r = find_serial_port(&path);
		if (r == 0)
			break;
		nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
	}
	if (r < 0)
		return r;
	for (int i = 0; i < 100; i++) {
		int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (fd >= 0) {
			*ret_fd = fd;
			return 0;
		}
		r = -errno;
		nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
	}
	return r;
}

/* The listening socket: the host connects once per boot, and again after every restore
 * of a template (the transport resets and the template's connection drops; the
 * listener stays). Only the host can reach a guest's vsock port. */
static int open_vsock(int *ret_fd)
{
	struct sockaddr_vm addr = {
	    .svm_family = AF_VSOCK,
	    .svm_port = AGENT_VSOCK_PORT,
	    .svm_cid = VMADDR_CID_ANY,
	};
	_cleanup_close_ int lfd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (lfd < 0)
		return -errno;
	if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(lfd, 4) < 0)
		return -errno;
	*ret_fd = TAKE_FD(lfd);
	return 0;
}

int agent_channel_open(bool vsock, int *ret_fd)
{
	return vsock ? open_vsock(ret_fd) : open_serial(ret_fd);
}
