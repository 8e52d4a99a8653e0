/* SPDX-License-Identifier: MIT */
/* A pod's shim, started and spoken to exactly as containerd does it (the facts in
 * docs/shim.md): `start` in the bundle with -namespace, -address, -publish-binary and
 * -id, $TTRPC_ADDRESS for its events, the address on stdout; the Task API over ttrpc;
 * `delete` to clean up after it. The shim is a black box to hull-cri. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cri-shim.h"
#include "log.h"
#include "util.h"

#define SHIM_NAMESPACE "k8s.io"
#define START_TIMEOUT_MS 10000
#define DELETE_TIMEOUT_MS 20000

/* Run the shim binary with action in bundle; its stdout and stderr together into out
 * (at most cap - 1 bytes, NUL-terminated), waiting up to timeout_ms. Returns its exit
 * status, or -errno (-ETIMEDOUT: killed). */
static int run_shim(const struct cri *c, const char *binary, const char *id, const char *bundle,
                    const char *action, char *out, size_t cap, int timeout_ms)
{
	int p[2], status = 0;
	size_t n = 0;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int r = -errno;
		close(p[0]);
		close(p[1]);
		return r;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (chdir(bundle) < 0)
			_exit(126);
		dup2(null, STDIN_FILENO);
		dup2(p[1], STDOUT_FILENO);
		dup2(p[1], STDERR_FILENO);
		setenv("TTRPC_ADDRESS", c->events_path, 1);
		if (strcmp(action, "delete") == 0)
			execl(binary, binary, "-namespace", SHIM_NAMESPACE, "-address",
			      c->cfg.socket, "-publish-binary", c->self_exe, "-id", id, "-bundle",
			      bundle, action, (char *)NULL);
		else
			execl(binary, binary, "-namespace", SHIM_NAMESPACE, "-address",
			      c->cfg.socket, "-publish-binary", c->self_exe, "-id", id, action,
			      (char *)NULL);
		dprintf(STDERR_FILENO, "exec '%s': %s", binary, strerror(errno));
		_exit(127);
	}
	close(p[1]);
	for (int64_t end = (int64_t)(monotonic_ns() / 1000000) + timeout_ms;;) {
		struct pollfd pfd = {.fd = p[0], .events = POLLIN};
		int left = (int)(end - (int64_t)(monotonic_ns() / 1000000));
		if (left <= 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			close(p[0]);
			out[n] = '\0';
			return -ETIMEDOUT;
		}
		if (poll(&pfd, 1, left) < 0 && errno != EINTR)
			break;
		ssize_t k = read(p[0], out + n, cap - 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
		if (n == cap - 1)
			break;
	}
	close(p[0]);
	out[n] = '\0';
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int cri_shim_start(const struct cri *c, const char *binary, const char *id, const char *bundle,
                   char **ret_address, struct hull_error **err)
{
	char out[2048];
	int r = run_shim(c, binary, id, bundle, "start", out, sizeof(out), START_TIMEOUT_MS);
	char *s = out, *e;

	if (r < 0)
		return hull_error_set(err, r, "start shim '%s': %s", binary,
		                      r == -ETIMEDOUT ? "no answer in 10 s" : strerror(-r));
	while (*s == ' ' || *s == '\n')
		s++;
	for (e = s + strlen(s); e > s && (e[-1] == '\n' || e[-1] == ' '); e--)
		*(e - 1) = '\0';
	if (r != 0)
		return hull_error_set(err, -EIO, "start shim: exit %d: %.900s", r,
		                      *s ? s : "(silent)");
	if (strncmp(s, "unix://", 7) != 0 || strchr(s, '\n'))
		return hull_error_set(err, -EPROTO, "start shim: not an address: '%.200s'", s);
	*ret_address = xstrdup(s);
	return 0;
}

int cri_shim_connect(const char *address, struct ttrpc_client **ret, struct hull_error **err)
{
	int fd;
	int r = cri_shim_connect_fd(address, &fd, err);
	if (r < 0)
		return r;
	*ret = ttrpc_client_new(fd, CRI_SHIM_SERVICE);
	return 0;
}

int cri_shim_connect_fd(const char *address, int *ret, struct hull_error **err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *path = address + (strncmp(address, "unix://", 7) == 0 ? 7 : 0);
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return hull_error_set(err, -ENAMETOOLONG, "shim socket '%s' is too long", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return hull_error_set_errno(err, -errno, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		close(fd);
		return hull_error_set_errno(err, r, "connect to shim '%s'", path);
	}
	*ret = fd;
	return 0;
}

void cri_shim_delete(const struct cri *c, const char *binary, const char *id, const char *bundle)
{
	char out[512];
	int r = run_shim(c, binary, id, bundle, "delete", out, sizeof(out), DELETE_TIMEOUT_MS);
	if (r < 0 || r > 0)
		log_warn("shim delete '%s': %s", id, r < 0 ? strerror(-r) : "failed");
}
