/* SPDX-License-Identifier: MIT */
/* containerd-shim-hull-v2: the binary containerd runs for runtime io.containerd.hull.v2.
 *   start   print the address of the pod's shim (starting one for a new pod)
 *   delete  clean up after a shim that is gone; print a DeleteResponse
 *   (none)  serve (what start forks) */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "bundle.h"
#include "log.h"
#include "pod-mount.h"
#include "sandbox.h"
#include "shim-task.pb-c.h"
#include "shim.h"
#include "util.h"

#define EXIT_USAGE 2

static void usage(FILE *f)
{
	fputs("usage: containerd-shim-hull-v2 [-namespace NS] [-address ADDR] [-publish-binary B]\n"
	      "                               [-id ID] [-bundle DIR] [-debug] [start|delete]\n"
	      "       containerd-shim-hull-v2 -v\n"
	      "Run by containerd for runtime type io.containerd.hull.v2 (docs/kubernetes.md).\n",
	      f);
}

/* Which shim serves this bundle's container: the pod's (grouped by the CRI sandbox id)
 * or, outside Kubernetes, its own. */
static char *group_of(const struct shim_args *a, const struct bundle *b)
{
	if (b->container_type && strcmp(b->container_type, "container") == 0 && b->sandbox_id &&
	    *b->sandbox_id)
		return xstrdup(b->sandbox_id);
	return xstrdup(a->id);
}

static char *socket_path(const struct shim_args *a, const char *group)
{
	_cleanup_free_ char *root = sandbox_default_state_root();
	_cleanup_free_ char *key = xasprintf("%s/%s", a->namespace ? a->namespace : "", group);
	/* A dot directory: the stale-state sweep leaves it alone; FNV-1a keeps the name
	 * short whatever the ids are. */
	return xasprintf("%s/.s/%016llx.sock", root,
	                 (unsigned long long)fnv1a(FNV1A_INIT, key, strlen(key)));
}

/* The bundle's config.json, parsed for what the host acts on (no paths checked). */
static int read_bundle_config(const char *bundle, struct bundle *b, struct hull_error **err)
{
	_cleanup_free_ char *cfg = xasprintf("%s/config.json", bundle);
	_cleanup_close_ int fd = open(cfg, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *text = xmalloc(1u << 20);
	ssize_t len = fd < 0 ? -errno : read_all(fd, text, 1u << 20);
	if (len < 0)
		return hull_error_set_errno(err, (int)len, "config.json");
	return bundle_parse_config(text, (size_t)len, b, err);
}

static bool socket_alive(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || strlen(path) >= sizeof(sa.sun_path))
		return false;
	strcpy(sa.sun_path, path);
	return connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
}

static int write_address(const char *bundle, const char *addr)
{
	_cleanup_free_ char *path = xasprintf("%s/address", bundle);
	_cleanup_free_ char *tmp = xasprintf("%s/.address.tmp", bundle);
	_cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, addr, strlen(addr)) < 0 || rename(tmp, path) < 0)
		return -errno;
	return 0;
}

/* Logs go to the bundle's `log` FIFO, which containerd reads into its own log. */
static void redirect_logs(const char *bundle)
{
	_cleanup_free_ char *path = xasprintf("%s/log", bundle);
	int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		fd = dup(null);
	dup2(null, STDIN_FILENO);
	dup2(null, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
	close(null);
}

static int do_start(const struct shim_args *a)
{
	_cleanup_error_ struct hull_error *err = NULL;
	_cleanup_free_ char *group = NULL, *sock = NULL, *addr = NULL, *dir = NULL;
	struct bundle b = {0};
	char msg[1024];
	ssize_t n = 0;
	int p[2], r;
	pid_t pid;

	/* containerd may write runtime options on stdin; Create brings them again. */
	{
		char sink[4096];
		fd_set_nonblock(STDIN_FILENO, 1);
		while (read(STDIN_FILENO, sink, sizeof(sink)) > 0)
			;
	}
	if (read_bundle_config(a->bundle, &b, &err) < 0) {
		fprintf(stderr, "hull shim: bundle '%s': %s\n", a->bundle, err->msg);
		return 1;
	}
	group = group_of(a, &b);
	sock = socket_path(a, group);
	addr = xasprintf("unix://%s", sock);
	if (strcmp(group, a->id) != 0 || socket_alive(sock)) {
		/* A container of a pod whose shim runs: that shim serves it. */
		bundle_done(&b);
		if (!socket_alive(sock)) {
			fprintf(stderr, "hull shim: the shim of pod sandbox '%s' is not running\n",
			        group);
			return 1;
		}
		if (write_address(a->bundle, addr) < 0) {
			fprintf(stderr, "hull shim: write address: %s\n", strerror(errno));
			return 1;
		}
		fputs(addr, stdout);
		return 0;
	}
	bundle_done(&b);
	dir = xstrndup(sock, (size_t)(strrchr(sock, '/') - sock));
	r = mkdir_p(dir, 0711);
	if (r < 0 || pipe2(p, O_CLOEXEC) < 0) {
		fprintf(stderr, "hull shim: %s: %s\n", dir, strerror(r < 0 ? -r : errno));
		return 1;
	}
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "hull shim: fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		/* The shim proper: its own session, out of containerd's way. */
		close(p[0]);
		(void)setsid();
		if (chdir(a->bundle) < 0)
			_exit(1);
		redirect_logs(a->bundle);
		_exit(shim_serve(a, sock, p[1]));
	}
	close(p[1]);
	for (ssize_t k; n < (ssize_t)sizeof(msg) - 1 &&
	                (k = read(p[0], msg + n, sizeof(msg) - 1 - (size_t)n)) != 0;)
		if (k > 0)
			n += k;
		else if (errno != EINTR)
			break;
	close(p[0]);
	msg[n] = '\0';
	if (strcmp(msg, "ok\n") != 0) {
		fprintf(stderr, "hull shim: %s", n ? msg : "the shim ended without a word\n");
		return 1;
	}
	if (write_address(a->bundle, addr) < 0) {
		fprintf(stderr, "hull shim: write address: %s\n", strerror(errno));
		kill(pid, SIGTERM);
		return 1;
	}
	fputs(addr, stdout);
	return 0;
}

/* After the shim is gone (or when containerd cleans up a bundle): undo what a dead shim
 * left, say the task died of SIGKILL. Safe to run any number of times. */
static int do_delete(const struct shim_args *a)
{
	Hull__Task__DeleteResponse resp = HULL__TASK__DELETE_RESPONSE__INIT;
	Hull__Task__Timestamp ts = HULL__TASK__TIMESTAMP__INIT;
	_cleanup_free_ char *rootfs = xasprintf("%s/rootfs", a->bundle);
	_cleanup_free_ char *root = sandbox_default_state_root();
	struct timespec now;
	uint8_t out[64];
	size_t n;

	pod_unmount_all(rootfs);
	/* A sandbox whose shim died: QEMU went with it (PDEATHSIG); its state goes now,
	 * and its socket, unless a shim still answers there. */
	sandbox_sweep_stale(root);
	{
		struct bundle b = {0};
		_cleanup_free_ char *group = NULL, *sock = NULL;
		if (read_bundle_config(a->bundle, &b, NULL) == 0) {
			group = group_of(a, &b);
			sock = socket_path(a, group);
			if (!socket_alive(sock)) {
				/* The pod's shim does not answer: it is gone, or going (stopping
				 * its VM after Shutdown; containerd calls us as soon as the socket
				 * closes). Give it time to finish, kill it only if it hangs, then
				 * sweep what it left. */
				_cleanup_free_ char *dir = xasprintf("%s/%s", root, group);
				bool ours = id_is_valid(group) && access(dir, F_OK) == 0;
				for (int i = 0; ours && i < 150 && access(dir, F_OK) == 0; i++) {
					int pid = sandbox_owner(dir);
					if (i == 100 && pid > 1 && pid != getpid())
						(void)kill(pid, SIGKILL); /* 10 s: it hangs */
					sandbox_sweep_stale(root);
					if (access(dir, F_OK) == 0)
						usleep(100000);
				}
				(void)unlink(sock);
				/* A shim killed before its teardown left its tc wiring on the
				 * pod's interfaces. */
				/* Only a namespace of the pod's own (CNI's, named by path): a
				 * container's bundle from containerd names the sandbox by
				 * /proc/<guest pid>/ns/net, which on the host is whatever
				 * process has that pid, maybe another pod's. */
				if (b.netns_path && strncmp(b.netns_path, "/proc/", 6) != 0)
					(void)sandbox_net_sweep(b.netns_path);
			}
		}
		bundle_done(&b);
	}
	clock_gettime(CLOCK_REALTIME, &now);
	ts.seconds = now.tv_sec;
	ts.nanos = (int32_t)now.tv_nsec;
	resp.exit_status = 128 + SIGKILL;
	resp.exited_at = &ts;
	n = protobuf_c_message_pack(&resp.base, out);
	return write_all(STDOUT_FILENO, out, n) < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct shim_args a = {0};
	const char *action = NULL;
	_cleanup_free_ char *cwd = NULL;

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *val = NULL, *eq;
		_cleanup_free_ char *name = NULL;
		if (arg[0] != '-') {
			if (action) {
				fprintf(stderr, "hull shim: unexpected '%s'\n", arg);
				return EXIT_USAGE;
			}
			action = arg;
			continue;
		}
		arg += arg[1] == '-' ? 2 : 1; /* Go flags: -name or --name, value after = or next */
		eq = strchr(arg, '=');
		name = eq ? xstrndup(arg, (size_t)(eq - arg)) : xstrdup(arg);
		if (strcmp(name, "v") == 0 || strcmp(name, "version") == 0) {
			printf("containerd-shim-hull-v2 %s\n", HULL_VERSION);
			return 0;
		}
		if (strcmp(name, "h") == 0 || strcmp(name, "help") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(name, "debug") == 0) {
			a.debug = !eq || strcmp(eq + 1, "false") != 0;
			continue;
		}
		if (eq)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		else {
			fprintf(stderr, "hull shim: -%s needs a value\n", name);
			return EXIT_USAGE;
		}
		if (strcmp(name, "namespace") == 0)
			a.namespace = val;
		else if (strcmp(name, "address") == 0)
			a.address = val;
		else if (strcmp(name, "id") == 0)
			a.id = val;
		else if (strcmp(name, "bundle") == 0)
			a.bundle = val;
		else if (strcmp(name, "publish-binary") == 0 || strcmp(name, "socket") == 0)
			; /* we publish over $TTRPC_ADDRESS, as containerd 1.6 prefers */
		else {
			fprintf(stderr, "hull shim: unknown flag -%s\n", name);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!a.id || !*a.id) {
		fprintf(stderr, "hull shim: -id is required\n");
		return EXIT_USAGE;
	}
	if (!a.bundle) {
		cwd = getcwd(NULL, 0);
		a.bundle = cwd ? cwd : ".";
	}
	a.ttrpc_address = getenv("TTRPC_ADDRESS");
	log_setup("shim", a.debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	signal(SIGPIPE, SIG_IGN);
	if (!action) {
		/* Serving without start: the socket is the default one for our id. */
		_cleanup_free_ char *sock = NULL;
		struct bundle b = {0};
		sock = socket_path(&a, a.id);
		bundle_done(&b);
		return shim_serve(&a, sock, STDOUT_FILENO);
	}
	if (strcmp(action, "start") == 0)
		return do_start(&a);
	if (strcmp(action, "delete") == 0)
		return do_delete(&a);
	fprintf(stderr, "hull shim: unknown action '%s'\n", action);
	usage(stderr);
	return EXIT_USAGE;
}
