/* SPDX-License-Identifier: MIT */
/* kubectl port-forward through containerd's CRI plugin: containerd enters the pod's
 * network namespace on the host and dials localhost:PORT there, but the pod's servers
 * run in the VM. In that namespace (where nothing else of the pod runs) the shim
 * listens on 127.0.0.1 and ::1, a nat rule redirects every loopback TCP connection
 * to those listeners, SO_ORIGINAL_DST names the port that was dialled, and the
 * connection travels on the agent's PortForward stream to that port in the guest
 * (docs/kubernetes.md). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "pod.h"
#include "shim.h"
#include "util.h"

/* linux/netfilter_ipv4.h and ip6_tables.h (which clash with net/if.h): the
 * destination a connection had before a nat redirect. */
#define SO_ORIGINAL_DST 80
#define IP6T_SO_ORIGINAL_DST 80

/* More at once is refused: only containerd dials here, one connection a client's. */
#define PORTFWD_MAX 256

struct shim_portfwd;

struct fwd_conn {
	struct shim_portfwd *pf;
	struct stream *st;
	int fd;
};

struct rule_job {
	struct shim_portfwd *pf;
	const char *tool;
	pid_t pid;
	int pidfd;
};

struct shim_portfwd {
	struct event_loop *loop;
	struct pod *pod;
	int listen[2]; /* 127.0.0.1, ::1 (-1: none) */
	unsigned port[2];
	struct rule_job jobs[2];
	struct fwd_conn *conns[PORTFWD_MAX];
	size_t n_conns;
};

static void conn_free(void *userdata)
{
	struct fwd_conn *c = userdata;
	struct shim_portfwd *pf = c->pf;

	for (size_t i = 0; i < pf->n_conns; i++)
		if (pf->conns[i] == c) {
			pf->conns[i] = pf->conns[--pf->n_conns];
			break;
		}
	if (c->st)
		pod_port_forward_free(pf->pod, c->st);
	close(c->fd);
	free(c);
}

static void on_conn_done(struct stream *st, int r, const struct hull_error *err, void *userdata)
{
	struct fwd_conn *c = userdata;
	(void)st;
	if (r < 0) {
		/* As a refused dial looks under runc: the client's read fails (a reset),
		 * rather than a clean end it would take for the server's answer. */
		struct linger reset = {.l_onoff = 1, .l_linger = 0};
		(void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
		log_info("port-forward: %s", err ? err->msg : strerror(-r));
	}
	/* Not from inside the stream's own callback. */
	event_defer(c->pf->loop, conn_free, c);
}

static const struct stream_ops conn_ops = {.done = on_conn_done};

/* The port the client dialled, before the redirect; 0 when unknown. */
static unsigned original_port(int fd, bool v6)
{
	struct sockaddr_in6 a6;
	struct sockaddr_in a4;
	socklen_t len;

	if (v6) {
		len = sizeof(a6);
		if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &a6, &len) < 0)
			return 0;
		return ntohs(a6.sin6_port);
	}
	len = sizeof(a4);
	if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &a4, &len) < 0)
		return 0;
	return ntohs(a4.sin_port);
}

static void on_accept(struct event_loop *loop, int lfd, uint32_t revents, void *userdata)
{
	struct shim_portfwd *pf = userdata;
	bool v6 = lfd == pf->listen[1];
	_cleanup_error_ struct hull_error *err = NULL;
	struct fwd_conn *c;
	unsigned port;
	int fd;
	(void)loop;
	(void)revents;

	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	port = original_port(fd, v6);
	if (port == 0 || port == pf->port[v6]) {
		close(fd); /* not redirected: someone dialled our listener itself */
		return;
	}
	if (pf->n_conns >= PORTFWD_MAX) {
		log_warn("port-forward to %u refused: %d connections already", port, PORTFWD_MAX);
		close(fd);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->pf = pf;
	c->fd = fd;
	c->st = pod_port_forward(pf->pod, port, fd, &conn_ops, c, &err);
	if (!c->st) {
		log_info("port-forward to %u: %s", port, err ? err->msg : "failed");
		close(fd);
		free(c);
		return;
	}
	pf->conns[pf->n_conns++] = c;
}

static void on_rule_exit(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct rule_job *j = userdata;
	int status = 0;
	(void)revents;

	event_del(loop, fd);
	if (waitpid(j->pid, &status, 0) == j->pid &&
	    !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		log_warn("port-forward: %s in the pod's namespace failed (status %d): kubectl "
		         "port-forward will not reach this pod",
		         j->tool, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	close(j->pidfd);
	j->pidfd = -1;
	j->pid = 0;
}

/* The nat rule, from a child in the pod's namespace; its exit is watched, not waited
 * for. */
static void add_rule(struct shim_portfwd *pf, int netns_fd, bool v6)
{
	struct rule_job *j = &pf->jobs[v6];
	_cleanup_free_ char *to = xasprintf("%u", pf->port[v6]);
	char *argv[] = {(char *)(v6 ? "ip6tables" : "iptables"),
	                (char *)"-w",
	                (char *)"5",
	                (char *)"-t",
	                (char *)"nat",
	                (char *)"-A",
	                (char *)"OUTPUT",
	                (char *)"-p",
	                (char *)"tcp",
	                (char *)"-d",
	                (char *)(v6 ? "::1" : "127.0.0.1"),
	                (char *)"-j",
	                (char *)"REDIRECT",
	                (char *)"--to-ports",
	                to,
	                NULL};

	j->pf = pf;
	j->tool = argv[0];
	j->pid = fork();
	if (j->pid < 0) {
		log_warn("port-forward: fork: %s", strerror(errno));
		j->pid = 0;
		return;
	}
	if (j->pid == 0) {
		int devnull = open("/dev/null", O_RDWR);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (setns(netns_fd, CLONE_NEWNET) < 0)
			_exit(126);
		dup2(devnull, 0);
		dup2(devnull, 1);
		execvp(argv[0], argv);
		dprintf(2, "port-forward: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	j->pidfd = (int)syscall(SYS_pidfd_open, j->pid, 0);
	if (j->pidfd < 0 || event_add(pf->loop, j->pidfd, EPOLLIN, on_rule_exit, j) < 0) {
		int status;
		(void)waitpid(j->pid, &status, 0);
		if (j->pidfd >= 0)
			close(j->pidfd);
		j->pidfd = -1;
		j->pid = 0;
	}
}

/* A listener on addr:0 in the current namespace; its port in *port. */
static int listen_on(bool v6, unsigned *port)
{
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} a = {0};
	socklen_t len = v6 ? sizeof(a.in6) : sizeof(a.in);
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -errno;
	if (v6) {
		a.in6.sin6_family = AF_INET6;
		a.in6.sin6_addr = in6addr_loopback;
	} else {
		a.in.sin_family = AF_INET;
		a.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	}
	if (bind(fd, &a.sa, len) < 0 || listen(fd, 128) < 0 || getsockname(fd, &a.sa, &len) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	*port = ntohs(v6 ? a.in6.sin6_port : a.in.sin_port);
	return fd;
}

/* In the pod's namespace: a listener on each loopback. */
static int make_listeners(void *userdata)
{
	struct shim_portfwd *pf = userdata;
	for (int v6 = 0; v6 < 2; v6++)
		pf->listen[v6] = listen_on(v6, &pf->port[v6]);
	return 0;
}

struct shim_portfwd *shim_portfwd_new(struct event_loop *loop, struct pod *pod,
                                      const char *netns_path)
{
	_cleanup_close_ int netns = open(netns_path, O_RDONLY | O_CLOEXEC);
	struct shim_portfwd *pf = xcalloc(1, sizeof(*pf));
	int r = netns < 0 ? -errno : 0;

	pf->loop = loop;
	pf->pod = pod;
	pf->listen[0] = pf->listen[1] = pf->jobs[0].pidfd = pf->jobs[1].pidfd = -1;
	if (r == 0)
		r = netns_run(netns, make_listeners, pf);
	if (r < 0) {
		log_warn("port-forward: enter '%s': %s", netns_path, strerror(-r));
		free(pf);
		return NULL;
	}
	for (int v6 = 0; v6 < 2; v6++) {
		if (pf->listen[v6] < 0) {
			/* No IPv6 in the namespace is common; no IPv4 is not. */
			if (!v6)
				log_warn("port-forward: listen on 127.0.0.1 in '%s': %s",
				         netns_path, strerror(-pf->listen[v6]));
			continue;
		}
		if (event_add(loop, pf->listen[v6], EPOLLIN, on_accept, pf) < 0) {
			close(pf->listen[v6]);
			pf->listen[v6] = -1;
			continue;
		}
		add_rule(pf, netns, v6);
	}
	log_debug("port-forward: listening on 127.0.0.1:%u and [::1]:%u in %s", pf->port[0],
	          pf->port[1], netns_path);
	return pf;
}

struct shim_portfwd *shim_portfwd_free(struct shim_portfwd *pf)
{
	if (!pf)
		return NULL;
	while (pf->n_conns) {
		event_defer_cancel(pf->loop, conn_free, pf->conns[0]);
		conn_free(pf->conns[0]);
	}
	for (int v6 = 0; v6 < 2; v6++) {
		if (pf->listen[v6] >= 0) {
			event_del(pf->loop, pf->listen[v6]);
			close(pf->listen[v6]);
		}
		if (pf->jobs[v6].pidfd >= 0) {
			int status;
			event_del(pf->loop, pf->jobs[v6].pidfd);
			(void)waitpid(pf->jobs[v6].pid, &status, 0);
			close(pf->jobs[v6].pidfd);
		}
	}
	free(pf);
	return NULL;
}
