/* SPDX-License-Identifier: MIT */
/* hull ps, logs, kill, rm, inspect, exec: clients of a detached sandbox's Task API
 * (STATE/NAME/task.sock), as ctr is of a shim. */
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>

#include <json-c/json.h>

#include "cli-run.h"
#include "ttrpc-client.h"
#include "cli.h"
#include "agent.pb-c.h"
#include "shim-events.pb-c.h"
#include "shim-task.pb-c.h"
#include "util.h"

#define TASK_SERVICE "containerd.task.v2.Task"
#define TIMEOUT_MS 30000
#define RM_KILL_WAIT_MS 10000

static int task_connect(const char *name, struct ttrpc_client **ret, char **ret_dir)
{
	_cleanup_free_ char *root = sandbox_default_state_root();
	_cleanup_free_ char *dir = xasprintf("%s/%s", root, name);
	_cleanup_free_ char *sock = xasprintf("%s/task.sock", dir);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (!id_is_valid(name) || strlen(sock) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "hull: '%s' is not a sandbox name\n", name);
		return -EINVAL;
	}
	strcpy(sa.sun_path, sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		if (fd >= 0)
			close(fd);
		fprintf(stderr, "hull: no detached sandbox '%s' (%s)\n", name, strerror(-r));
		return r;
	}
	*ret = ttrpc_client_new(fd, TASK_SERVICE);
	if (ret_dir)
		*ret_dir = TAKE_PTR(dir);
	return 0;
}

static int task_state(struct ttrpc_client *ac, const char *exec_id, Hull__Task__StateResponse **ret)
{
	Hull__Task__StateRequest req = HULL__TASK__STATE_REQUEST__INIT;
	struct hull_error *err = NULL;
	req.id = (char *)CONTAINER_ID;
	req.exec_id = (char *)exec_id;
	int r =
	    ttrpc_client_call_sync(ac, "State", &req.base, &hull__task__state_response__descriptor,
	                           (ProtobufCMessage **)ret, TIMEOUT_MS, &err);
	if (r < 0) {
		fprintf(stderr, "hull: state: %s\n", err->msg);
		hull_error_free(err);
	}
	return r;
}

static const char *status_name(Hull__Task__Status st)
{
	switch (st) {
	case HULL__TASK__STATUS__CREATED:
		return "created";
	case HULL__TASK__STATUS__RUNNING:
		return "running";
	case HULL__TASK__STATUS__STOPPED:
		return "exited";
	case HULL__TASK__STATUS__PAUSED:
		return "paused";
	default:
		return "unknown";
	}
}

int cli_ps(int argc, char **argv)
{
	_cleanup_free_ char *root = sandbox_default_state_root();
	_cleanup_(closedirp) DIR *d = opendir(root);
	struct dirent *de;
	(void)argc, (void)argv;

	printf("%-24s %-8s %-8s %s\n", "NAME", "STATUS", "PID", "EXIT");
	while (d && (de = readdir(d))) {
		_cleanup_free_ char *sock = xasprintf("%s/%s/task.sock", root, de->d_name);
		struct ttrpc_client *ac = NULL;
		Hull__Task__StateResponse *st = NULL;
		if (de->d_name[0] == '.' || access(sock, F_OK) < 0)
			continue; /* foreground runs have no Task API */
		if (task_connect(de->d_name, &ac, NULL) < 0)
			continue;
		if (task_state(ac, "", &st) == 0) {
			char ex[16] = "-";
			if (st->status == HULL__TASK__STATUS__STOPPED)
				snprintf(ex, sizeof(ex), "%u", st->exit_status);
			printf("%-24s %-8s %-8u %s\n", de->d_name, status_name(st->status), st->pid,
			       ex);
			hull__task__state_response__free_unpacked(st, NULL);
		}
		ttrpc_client_free(ac);
	}
	return 0;
}

static int kill_task(struct ttrpc_client *ac, int sig)
{
	Hull__Task__KillRequest req = HULL__TASK__KILL_REQUEST__INIT;
	struct hull_error *err = NULL;
	req.id = (char *)CONTAINER_ID;
	req.exec_id = (char *)"";
	req.signal = (uint32_t)sig;
	int r = ttrpc_client_call_sync(ac, "Kill", &req.base, NULL, NULL, TIMEOUT_MS, &err);
	if (r < 0) {
		fprintf(stderr, "hull: kill: %s\n", err->msg);
		hull_error_free(err);
	}
	return r;
}

static int wait_task_ms(struct ttrpc_client *ac, const char *exec_id, uint32_t *ret_status,
                        int timeout_ms)
{
	Hull__Task__WaitRequest req = HULL__TASK__WAIT_REQUEST__INIT;
	Hull__Task__WaitResponse *resp = NULL;
	struct hull_error *err = NULL;
	req.id = (char *)CONTAINER_ID;
	req.exec_id = (char *)exec_id;
	int r =
	    ttrpc_client_call_sync(ac, "Wait", &req.base, &hull__task__wait_response__descriptor,
	                           (ProtobufCMessage **)&resp, timeout_ms, &err);
	if (r < 0) {
		if (r != -ETIMEDOUT)
			fprintf(stderr, "hull: wait: %s\n", err->msg);
		hull_error_free(err);
		return r;
	}
	*ret_status = resp->exit_status;
	hull__task__wait_response__free_unpacked(resp, NULL);
	return 0;
}

/* No deadline: a job may run for hours; the server answers when it exits. */
static int wait_task(struct ttrpc_client *ac, const char *exec_id, uint32_t *ret_status)
{
	return wait_task_ms(ac, exec_id, ret_status, INT32_MAX);
}

int cli_kill(int argc, char **argv)
{
	struct ttrpc_client *ac;
	int sig = SIGKILL, c, r;

	optind = 1;
	while ((c = getopt(argc, argv, "+s:")) != -1) {
		if (c != 's' || (sig = signal_from_string(optarg)) < 0) {
			fprintf(stderr, "usage: hull kill [-s SIGNAL] NAME\n");
			return EXIT_HULL_ERROR;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: hull kill [-s SIGNAL] NAME\n");
		return EXIT_HULL_ERROR;
	}
	if (task_connect(argv[optind], &ac, NULL) < 0)
		return EXIT_HULL_ERROR;
	r = kill_task(ac, sig);
	ttrpc_client_free(ac);
	return r < 0 ? EXIT_HULL_ERROR : 0;
}

int cli_rm(int argc, char **argv)
{
	Hull__Task__ShutdownRequest sd = HULL__TASK__SHUTDOWN_REQUEST__INIT;
	Hull__Task__DeleteRequest dr = HULL__TASK__DELETE_REQUEST__INIT;
	Hull__Task__StateResponse *st = NULL;
	_cleanup_free_ char *dir = NULL;
	struct ttrpc_client *ac;
	bool force = false;
	uint32_t status;
	int c;

	optind = 1;
	while ((c = getopt(argc, argv, "+f")) != -1)
		force = c == 'f';
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: hull rm [-f] NAME\n");
		return EXIT_HULL_ERROR;
	}
	if (task_connect(argv[optind], &ac, &dir) < 0)
		return EXIT_HULL_ERROR;
	if (task_state(ac, "", &st) < 0) {
		ttrpc_client_free(ac);
		return EXIT_HULL_ERROR;
	}
	bool running = st->status != HULL__TASK__STATUS__STOPPED;
	hull__task__state_response__free_unpacked(st, NULL);
	if (running && !force) {
		fprintf(stderr, "hull: sandbox '%s' is running: kill it first, or rm -f\n",
		        argv[optind]);
		ttrpc_client_free(ac);
		return EXIT_HULL_ERROR;
	}
	/* A guest that does not end its job even for SIGKILL has 10 s: then the sandbox
	 * goes with its VM all the same (Shutdown now). */
	if (running && (kill_task(ac, SIGKILL) < 0 ||
	                wait_task_ms(ac, "", &status, RM_KILL_WAIT_MS) == -ETIMEDOUT))
		sd.now = true;
	/* Delete the job, then the process ends with the sandbox (it has no task left). */
	dr.id = sd.id = (char *)CONTAINER_ID;
	(void)ttrpc_client_call_sync(ac, "Delete", &dr.base, NULL, NULL, TIMEOUT_MS, NULL);
	(void)ttrpc_client_call_sync(ac, "Shutdown", &sd.base, NULL, NULL, TIMEOUT_MS, NULL);
	ttrpc_client_free(ac);
	/* The sandbox process removes its state dir once the VM is down. */
	for (int i = 0; i < 300 && access(dir, F_OK) == 0; i++)
		usleep(50000);
	if (access(dir, F_OK) == 0) {
		fprintf(stderr, "hull: sandbox '%s' did not go away in 15 s\n", argv[optind]);
		return EXIT_HULL_ERROR;
	}
	return 0;
}

int cli_inspect(int argc, char **argv)
{
	Hull__Task__StateResponse *st = NULL;
	_cleanup_free_ char *dir = NULL;
	struct ttrpc_client *ac;
	json_object *o;

	if (argc != 2) {
		fprintf(stderr, "usage: hull inspect NAME\n");
		return EXIT_HULL_ERROR;
	}
	if (task_connect(argv[1], &ac, &dir) < 0)
		return EXIT_HULL_ERROR;
	if (task_state(ac, "", &st) < 0) {
		ttrpc_client_free(ac);
		return EXIT_HULL_ERROR;
	}
	o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(argv[1]));
	json_object_object_add(o, "status", json_object_new_string(status_name(st->status)));
	json_object_object_add(o, "pid", json_object_new_int64(st->pid));
	if (st->status == HULL__TASK__STATUS__STOPPED) {
		json_object_object_add(o, "exit_status", json_object_new_int64(st->exit_status));
		if (st->exited_at)
			json_object_object_add(o, "exited_at",
			                       json_object_new_int64(st->exited_at->seconds));
	}
	json_object_object_add(o, "terminal", json_object_new_boolean(st->terminal));
	if (st->bundle[0])
		json_object_object_add(o, "bundle", json_object_new_string(st->bundle));
	if (st->status != HULL__TASK__STATUS__STOPPED) {
		/* Live usage from the job's cgroup. */
		Hull__Task__StatsRequest sr = HULL__TASK__STATS_REQUEST__INIT;
		Hull__Task__StatsResponse *stats = NULL;
		sr.id = (char *)CONTAINER_ID;
		if (ttrpc_client_call_sync(ac, "Stats", &sr.base,
		                           &hull__task__stats_response__descriptor,
		                           (ProtobufCMessage **)&stats, TIMEOUT_MS, NULL) == 0) {
			/* containerd's cgroup v2 metrics, as the shim reports them. */
			Hull__Events__Metrics *m =
			    stats->stats
			        ? hull__events__metrics__unpack(NULL, stats->stats->value.len,
			                                        stats->stats->value.data)
			        : NULL;
			if (m) {
				json_object *u = json_object_new_object();
				json_object_object_add(
				    u, "cpu_usage_usec",
				    json_object_new_int64(
				        (int64_t)(m->cpu ? m->cpu->usage_usec : 0)));
				json_object_object_add(
				    u, "memory_bytes",
				    json_object_new_int64(
				        (int64_t)(m->memory ? m->memory->usage : 0)));
				json_object_object_add(
				    u, "pids",
				    json_object_new_int64(
				        (int64_t)(m->pids ? m->pids->current : 0)));
				json_object_object_add(o, "usage", u);
				hull__events__metrics__free_unpacked(m, NULL);
			}
			hull__task__stats_response__free_unpacked(stats, NULL);
		}
	}
	json_object_object_add(o, "state_dir", json_object_new_string(dir));
	{
		_cleanup_free_ char *log = xasprintf("%s/container.log", dir);
		json_object_object_add(o, "log", json_object_new_string(log));
	}
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
	                                                     JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	hull__task__state_response__free_unpacked(st, NULL);
	ttrpc_client_free(ac);
	return 0;
}

/* Copy what fd has from where it is to its end. false when our stdout is gone. */
static bool copy_out(int fd)
{
	char buf[65536];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
			return false;
	return true;
}

int cli_logs(int argc, char **argv)
{
	_cleanup_free_ char *dir = NULL, *log = NULL;
	_cleanup_close_ int fd = -1;
	struct ttrpc_client *ac;
	struct stat st, now;
	bool follow = false;
	int c;

	optind = 1;
	while ((c = getopt(argc, argv, "+f")) != -1)
		follow = c == 'f';
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: hull logs [-f] NAME\n");
		return EXIT_HULL_ERROR;
	}
	if (task_connect(argv[optind], &ac, &dir) < 0)
		return EXIT_HULL_ERROR;
	log = xasprintf("%s/container.log", dir);
	/* Rotated logs first, the oldest (highest number) first. */
	for (int i = 100; i >= 1; i--) {
		_cleanup_free_ char *old = xasprintf("%s.%d", log, i);
		_cleanup_close_ int ofd = open(old, O_RDONLY | O_CLOEXEC);
		if (ofd >= 0 && !copy_out(ofd)) {
			ttrpc_client_free(ac);
			return 0;
		}
	}
	fd = open(log, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "hull: '%s': %s\n", log, strerror(errno));
		ttrpc_client_free(ac);
		return EXIT_HULL_ERROR;
	}
	while (copy_out(fd) && follow) {
		/* At the end: follow while the job runs, then drain once more. */
		Hull__Task__StateResponse *state = NULL;
		if (task_state(ac, "", &state) < 0)
			break;
		bool done = state->status == HULL__TASK__STATUS__STOPPED;
		hull__task__state_response__free_unpacked(state, NULL);
		if (done) {
			(void)copy_out(fd);
			break;
		}
		/* Rotated: what is left of the old file, then the new one. */
		if (stat(log, &now) == 0 && now.st_ino != st.st_ino) {
			int nfd = open(log, O_RDONLY | O_CLOEXEC);
			if (nfd >= 0) {
				(void)copy_out(fd);
				close(fd);
				fd = nfd;
				(void)fstat(fd, &st);
				continue;
			}
		}
		usleep(100000);
	}
	ttrpc_client_free(ac);
	return 0;
}

/* hull exec: an extra process in a detached sandbox's job, stdio through FIFOs. */
int cli_exec(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"interactive", no_argument, NULL, 'i'}, {"tty", no_argument, NULL, 't'},
	    {"env", required_argument, NULL, 'e'},   {"workdir", required_argument, NULL, 'w'},
	    {"user", required_argument, NULL, 'u'},  {0}};
	char tmpl[] = "/tmp/hull-exec-XXXXXX";
	_cleanup_free_ char *in = NULL, *out = NULL, *errp = NULL, *process = NULL;
	Hull__Task__ExecProcessRequest er = HULL__TASK__EXEC_PROCESS_REQUEST__INIT;
	Hull__Task__Any spec = HULL__TASK__ANY__INIT;
	Hull__Task__StartRequest sr = HULL__TASK__START_REQUEST__INIT;
	Hull__Task__DeleteRequest dr = HULL__TASK__DELETE_REQUEST__INIT;
	struct hull_error *err = NULL;
	struct ttrpc_client *ac = NULL;
	bool interactive = false, tty = false;
	const char *cwd = "/";
	uint32_t uid = 0, gid = 0, status = 0;
	json_object *p, *args, *env, *user;
	int c, code = EXIT_HULL_ERROR, fds[3] = {-1, -1, -1};
	char exec_id[16];
	uint8_t rnd[4];
	struct termios saved;
	bool raw = false;

	env = json_object_new_array();
	json_object_array_add(
	    env, json_object_new_string(
	             "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
	optind = 1;
	while ((c = getopt_long(argc, argv, "+ite:w:u:", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			interactive = true;
			break;
		case 't':
			tty = true;
			break;
		case 'e':
			json_object_array_add(env, json_object_new_string(optarg));
			break;
		case 'w':
			cwd = optarg;
			break;
		case 'u':
			if (sscanf(optarg, "%u:%u", &uid, &gid) < 1)
				goto usage;
			break;
		default:
			goto usage;
		}
	}
	if (optind + 1 >= argc)
		goto usage;
	if (tty)
		json_object_array_add(env, json_object_new_string("TERM=xterm"));
	p = json_object_new_object();
	args = json_object_new_array();
	for (int i = optind + 1; i < argc; i++)
		json_object_array_add(args, json_object_new_string(argv[i]));
	user = json_object_new_object();
	json_object_object_add(user, "uid", json_object_new_int64(uid));
	json_object_object_add(user, "gid", json_object_new_int64(gid));
	json_object_object_add(p, "args", args);
	json_object_object_add(p, "env", env);
	json_object_object_add(p, "cwd", json_object_new_string(cwd));
	json_object_object_add(p, "user", user);
	json_object_object_add(p, "terminal", json_object_new_boolean(tty));
	process = xstrdup(json_object_to_json_string_ext(p, JSON_C_TO_STRING_PLAIN));
	json_object_put(p);
	env = NULL;

	if (task_connect(argv[optind], &ac, NULL) < 0)
		return EXIT_HULL_ERROR;
	if (!mkdtemp(tmpl)) {
		fprintf(stderr, "hull: mkdtemp: %s\n", strerror(errno));
		goto out;
	}
	out = xasprintf("%s/stdout", tmpl);
	errp = tty ? NULL : xasprintf("%s/stderr", tmpl);
	in = interactive ? xasprintf("%s/stdin", tmpl) : NULL;
	if (mkfifo(out, 0600) < 0 || (errp && mkfifo(errp, 0600) < 0) ||
	    (in && mkfifo(in, 0600) < 0)) {
		fprintf(stderr, "hull: mkfifo: %s\n", strerror(errno));
		goto out;
	}
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		abort();
	snprintf(exec_id, sizeof(exec_id), "exec-%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
	spec.type_url = (char *)"types.containerd.io/opencontainers/runtime-spec/1/Process";
	spec.value.data = (uint8_t *)process;
	spec.value.len = strlen(process);
	er.id = sr.id = dr.id = (char *)CONTAINER_ID;
	er.exec_id = sr.exec_id = dr.exec_id = exec_id;
	er.terminal = tty;
	er.stdout = out;
	er.stderr = errp ? errp : (char *)"";
	er.stdin = in ? in : (char *)"";
	er.spec = &spec;
	if (ttrpc_client_call_sync(ac, "Exec", &er.base, NULL, NULL, TIMEOUT_MS, &err) < 0) {
		fprintf(stderr, "hull: exec: %s\n", err->msg);
		goto out;
	}
	/* The sandbox process holds the FIFOs open already: these opens do not block. */
	fds[1] = open(out, O_RDONLY | O_CLOEXEC);
	fds[2] = errp ? open(errp, O_RDONLY | O_CLOEXEC) : -1;
	fds[0] = in ? open(in, O_WRONLY | O_CLOEXEC) : -1;
	if (fds[1] < 0 || (errp && fds[2] < 0) || (in && fds[0] < 0)) {
		fprintf(stderr, "hull: exec: open stdio: %s\n", strerror(errno));
		goto out;
	}
	if (ttrpc_client_call_sync(ac, "Start", &sr.base, NULL, NULL, TIMEOUT_MS, &err) < 0) {
		fprintf(stderr, "hull: exec: %s\n", err->msg);
		code = err->code == -ENOENT   ? EXIT_CMD_NOT_FOUND
		       : err->code == -EACCES ? EXIT_CMD_NOT_EXEC
		                              : code;
		goto out;
	}
	if (tty && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0) {
		struct termios t = saved;
		cfmakeraw(&t);
		raw = tcsetattr(STDIN_FILENO, TCSADRAIN, &t) == 0;
	}
	/* Relay until the process's output ends. */
	for (bool in_open = fds[0] >= 0; fds[1] >= 0 || fds[2] >= 0;) {
		struct pollfd pfd[3] = {{.fd = in_open ? STDIN_FILENO : -1, .events = POLLIN},
		                        {.fd = fds[1], .events = POLLIN},
		                        {.fd = fds[2], .events = POLLIN}};
		char buf[65536];
		if (poll(pfd, 3, -1) < 0 && errno != EINTR)
			break;
		for (int i = 1; i < 3; i++)
			if (pfd[i].revents) {
				ssize_t n = read(fds[i], buf, sizeof(buf));
				if (n <= 0) {
					close(fds[i]);
					fds[i] = -1;
				} else {
					(void)write_all(i, buf, (size_t)n);
				}
			}
		if (pfd[0].revents) {
			ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
			if (n <= 0 || write_all(fds[0], buf, (size_t)n) < 0) {
				close(fds[0]);
				fds[0] = -1;
				in_open = false;
			}
		}
	}
	if (raw)
		tcsetattr(STDIN_FILENO, TCSADRAIN, &saved);
	if (wait_task(ac, exec_id, &status) == 0)
		code = (int)status;
	(void)ttrpc_client_call_sync(ac, "Delete", &dr.base, NULL, NULL, TIMEOUT_MS, NULL);
out:
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (in)
		unlink(in);
	if (out)
		unlink(out);
	if (errp)
		unlink(errp);
	rmdir(tmpl);
	hull_error_free(err);
	ttrpc_client_free(ac);
	return code;
usage:
	if (env)
		json_object_put(env);
	fprintf(stderr,
	        "usage: hull exec [-i] [-t] [-e K=V] [-w DIR] [-u UID[:GID]] NAME CMD [ARG...]\n");
	return EXIT_HULL_ERROR;
}
