/* SPDX-License-Identifier: MIT */
/* The sandbox task of a hull-cri pod (and the CRI tests' pause image): sleeps until
 * SIGTERM/SIGINT and reaps orphans (it is PID 1 of the pod's pid namespace when the pod
 * shares one). */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig)
{
	(void)sig;
	_exit(0);
}

static void on_child(int sig)
{
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int main(void)
{
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	signal(SIGCHLD, on_child);
	for (;;)
		pause();
}
