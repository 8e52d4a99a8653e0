/* SPDX-License-Identifier: MIT */
/* hull-agent: PID 1 of the guest. Mounts the system, opens the host channel, serves
 * the agent API until told to destroy the sandbox, then powers the VM off. */
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>

#include <json-c/json.h>

#include "agent-net.h"
#include "agent.h"
#include "log.h"
#include "util.h"

static bool cmdline_has(const char *word)
{
	char line[4096];
	_cleanup_close_ int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = read(fd, line, sizeof(line) - 1);
	if (n <= 0)
		return false;
	line[n] = '\0';
	for (char *tok = strtok(line, " \n"); tok; tok = strtok(NULL, " \n"))
		if (strcmp(tok, word) == 0)
			return true;
	return false;
}

static void on_signal(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct agent *a = userdata;
	struct signalfd_siginfo si;
	(void)loop;
	(void)revents;

	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD)
			agent_service_reap(a);
		else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			a->shutdown_requested = true;
	}
}

int main(void)
{
	struct agent a = {0};
	sigset_t mask;
	int sfd, chan_fd = -1, r;
	bool vsock;

	log_setup("hull-agent", LOG_LEVEL_WARN);
	/* json-c seeds its default string hash from the kernel RNG, which can block early
	 * in boot; the JSON we parse comes from the host, so hash flooding is no threat. */
	json_global_set_string_hash(JSON_C_STR_HASH_PERLLIKE);
	a.start_ms = agent_now_ms();
	r = agent_init_system();
	if (r < 0) {
		errno = -r;
		log_error("system setup: %m");
		agent_poweroff("system setup failed");
	}
	if (cmdline_has("hull.debug=1"))
		log_set_level(LOG_LEVEL_DEBUG);
	{
		/* Loopback for every sandbox, networked or not. */
		struct hull_error *e = NULL;
		if (net_loopback_up(&e) < 0) {
			log_warn("%s", e->msg);
			hull_error_free(e);
		}
	}

	/* PID 1 gets no default signal actions; all arrive through the signalfd. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGPIPE);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		agent_poweroff("signalfd failed");

	vsock = cmdline_has("hull.channel=vsock");
	r = agent_channel_open(vsock, &chan_fd);
	if (r < 0) {
		errno = -r;
		log_error("open host channel: %m");
		agent_poweroff("no host channel");
	}
	log_info("channel open after %llu ms", (unsigned long long)(agent_now_ms() - a.start_ms));

	a.loop = event_loop_new();
	event_add(a.loop, sfd, EPOLLIN, on_signal, &a);
	r = agent_service_start(&a, chan_fd, vsock);
	if (r < 0) {
		errno = -r;
		log_error("serve the host channel: %m");
		agent_poweroff("cannot serve the host channel");
	}

	while (!a.shutdown_requested) {
		r = event_loop_once(a.loop, -1);
		if (r < 0) {
			errno = -r;
			log_error("event loop: %m");
			break;
		}
	}
	/* Let the reply to DestroySandbox reach the host before the VM goes away. */
	ttrpc_server_flush(a.server, 2000);
	agent_service_stop(&a);
	agent_poweroff(r < 0 ? "event loop failed" : NULL);
}
