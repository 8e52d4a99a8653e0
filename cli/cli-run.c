/* SPDX-License-Identifier: MIT */
/* hull run: boot a VM, run one command in a container inside it, stream its stdio,
 * forward signals, return its exit status, and leave nothing behind. */
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <linux/openat2.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <termios.h>

#include "agent.pb-c.h"
#include "cli-run.h"
#include "cli-spec.h"
#include "cli.h"
#include "event.h"
#include "image.h"
#include "log.h"
#include "bundle.h"
#include "cni.h"
#include "json.h"
#include "sandbox.h"
#include "shim.h"
#include "util.h"

#define STDIO_WINDOW (4u << 20)
#define STDIO_CHUNK (256u << 10)
#define CALL_TIMEOUT_MS 60000
#define MICROVM_VIRTIO_SLOTS 24 /* QEMU 7.2's microvm: virtio-mmio transports */
#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static void run_opts_done(struct run_opts *o)
{
	free(o->rootfs);
	free(o->bundle_dir);
	bundle_done(&o->bundle);
	strv_free(o->env);
	free(o->workdir);
	for (size_t i = 0; i < o->n_vols; i++) {
		free(o->vols[i].host);
		free(o->vols[i].container);
	}
	free(o->vols);
	for (size_t i = 0; i < o->n_files; i++) {
		free(o->files[i].host);
		free(o->files[i].container);
	}
	free(o->files);
	free(o->hostname);
	free(o->kernel);
	free(o->initrd);
	free(o->name);
	strv_free(o->cmd_owned);
	free(o->entrypoint);
	strv_free(o->image_env);
	strv_free(o->layers);
	strv_free(o->hostfwd);
	json_object_putp(&o->port_mappings);
	free(o->netns);
	free(o->cni_net);
	for (char **t = o->temp_files; t && *t; t++)
		(void)unlink(*t);
	strv_free(o->temp_files);
	image_store_close(o->image_store);
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: hull run [OPTIONS] IMAGE [--] [CMD [ARG...]]\n"
	        "       hull run [OPTIONS] --rootfs DIR -- CMD [ARG...]\n"
	        "       hull run [OPTIONS] --bundle DIR\n"
	        "\n"
	        "  IMAGE                 an image in the store (hull images; busybox is built in)\n"
	        "      --entrypoint CMD  replace the image's entrypoint (and drop its Cmd)\n"
	        "  --bundle DIR          run an OCI bundle (config.json + rootfs) as runc would\n"
	        "  --rootfs DIR          directory to use as the container's root (not modified)\n"
	        "  --rootfs-rw           let the container write to DIR itself\n"
	        "  -e, --env K=V|K       set an environment variable (K alone: take it from here)\n"
	        "      --env-file F      read K=V lines from F\n"
	        "  -w, --workdir DIR     working directory inside the container (default /)\n"
	        "  -u, --user UID[:GID]  run as this numeric uid/gid (default 0:0)\n"
	        "  -v, --volume H:C[:ro] share host directory H at C (read-only with :ro)\n"
	        "      --hostname NAME   container hostname (default: the sandbox id)\n"
	        "      --net MODE        network: none (loopback only, default), user (QEMU's\n"
	        "                        NAT), cni:NAME (a CNI network from $HULL_CNI_CONF_DIR,\n"
	        "                        default /etc/cni/net.d), ns:/PATH (a namespace's NICs)\n"
	        "  -p, --publish [IP:]HOST:CONTAINER[/tcp|udp]  with --net=user: forward a port\n"
	        "  -i, --interactive     feed our stdin to CMD\n"
	        "      --privileged      all capabilities, no seccomp filter, no masked paths\n"
	        "  -d, --detach          keep running in the background; prints the sandbox name\n"
	        "      --name NAME       name the sandbox (default: a random id)\n"
	        "  -t, --tty             allocate a terminal\n"
	        "      --cpus N          virtual CPUs (default 1)\n"
	        "  -m, --memory SIZE     VM memory, e.g. 512M, 1G (default 256M)\n"
	        "      --timeout DUR     kill CMD after DUR (e.g. 30s, 5m); exit status 124\n"
	        "      --stop-timeout DUR  after forwarding SIGINT/SIGTERM, kill after DUR "
	        "(default 10s)\n"
	        "      --boot-timeout DUR  give up if the VM is not ready after DUR (default 30s)\n"
	        "      --kernel F        guest kernel (default: hull's own)\n"
	        "      --initrd F        guest initramfs (default: hull's own)\n"
	        "      --accel A         auto, kvm or tcg (default auto; env HULL_ACCEL)\n"
	        "      --machine M       microvm or q35 (default microvm)\n"
	        "      --channel C       auto, serial or vsock (default auto)\n"
	        "      --log-level L     error, warn, info or debug\n"
	        "\n"
	        "Exit status: CMD's own; 128+N if CMD died of signal N; 124 timeout;\n"
	        "125 hull failed; 126 CMD not executable; 127 CMD not found.\n");
}

_printf_(1, 2) static int usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("hull run: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'hull run --help'.\n", stderr);
	return -EINVAL;
}

/* Set or replace KEY=VALUE in env. */
static void env_set(char ***env, const char *kv)
{
	size_t klen = strcspn(kv, "=");
	for (char **e = *env; e && *e; e++)
		if (strncmp(*e, kv, klen) == 0 && (*e)[klen] == '=') {
			free(*e);
			*e = xstrdup(kv);
			return;
		}
	strv_push(env, xstrdup(kv));
}

static int env_add_arg(char ***env, const char *arg, const char *where)
{
	if (arg[0] == '=' || arg[0] == '\0')
		return usage_error("%s: '%s' has no variable name", where, arg);
	if (strchr(arg, '='))
		env_set(env, arg);
	else if (getenv(arg)) {
		_cleanup_free_ char *kv = xasprintf("%s=%s", arg, getenv(arg));
		env_set(env, kv);
	}
	return 0;
}

static int env_file_load(char ***env, const char *path)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned lineno = 0;
	int r = 0;

	if (!f) {
		fprintf(stderr, "hull run: --env-file '%s': %s\n", path, strerror(errno));
		return -errno;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		_cleanup_free_ char *where = NULL;
		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		where = xasprintf("--env-file '%s' line %u", path, lineno);
		r = env_add_arg(env, line, where);
		if (r < 0)
			break;
	}
	free(line);
	return r;
}

static int parse_user(const char *s, struct run_opts *o)
{
	char *end;
	unsigned long uid, gid;

	errno = 0;
	uid = strtoul(s, &end, 10);
	if (errno || end == s || uid > UINT32_MAX - 1 || (*end && *end != ':'))
		return usage_error("--user '%s': want a numeric UID[:GID]", s);
	gid = 0;
	if (*end == ':') {
		const char *g = end + 1;
		errno = 0;
		gid = strtoul(g, &end, 10);
		if (errno || end == g || *end || gid > UINT32_MAX - 1)
			return usage_error("--user '%s': want a numeric UID[:GID]", s);
	}
	o->uid = (uint32_t)uid;
	o->gid = (uint32_t)gid;
	return 0;
}

/* -p [IP:]HOST:CONTAINER[/tcp|udp] -> QEMU's hostfwd "tcp:IP:HOST-:CONTAINER". The host
 * port is tried here first, so a port in use is a clear error before anything boots. */
static int parse_publish(const char *s, struct run_opts *o)
{
	_cleanup_free_ char *copy = xstrdup(s);
	char *proto = strchr(copy, '/'), *parts[3] = {0}, *ip = NULL, *end;
	int n = 0, udp = 0;
	unsigned long host, ctr;
	struct sockaddr_in sa = {.sin_family = AF_INET};

	if (proto) {
		*proto++ = '\0';
		if (strcmp(proto, "udp") == 0)
			udp = 1;
		else if (strcmp(proto, "tcp") != 0)
			return usage_error("-p '%s': the protocol is tcp or udp", s);
	}
	for (char *p = copy, *save = NULL, *t; (t = strtok_r(p, ":", &save)); p = NULL) {
		if (n == 3)
			return usage_error("-p '%s': want [IP:]HOST:CONTAINER[/tcp|udp]", s);
		parts[n++] = t;
	}
	if (n < 2)
		return usage_error("-p '%s': want [IP:]HOST:CONTAINER[/tcp|udp]", s);
	if (n == 3)
		ip = parts[0];
	host = strtoul(parts[n - 2], &end, 10);
	if (*end || host < 1 || host > 65535)
		return usage_error("-p '%s': host port '%s' is not 1-65535", s, parts[n - 2]);
	ctr = strtoul(parts[n - 1], &end, 10);
	if (*end || ctr < 1 || ctr > 65535)
		return usage_error("-p '%s': container port '%s' is not 1-65535", s, parts[n - 1]);
	if (ip && inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		return usage_error("-p '%s': '%s' is not an IPv4 address", s, ip);
	sa.sin_port = htons((uint16_t)host);
	{
		_cleanup_close_ int fd =
		    socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			return usage_error("-p '%s': host port %lu is in use (%s)", s, host,
			                   strerror(errno));
	}
	strv_push(&o->hostfwd,
	          xasprintf("%s:%s:%lu-:%lu", udp ? "udp" : "tcp", ip ? ip : "", host, ctr));
	{
		json_object *m = json_object_new_object();
		json_object_object_add(m, "hostPort", json_object_new_int((int)host));
		json_object_object_add(m, "containerPort", json_object_new_int((int)ctr));
		json_object_object_add(m, "protocol", json_object_new_string(udp ? "udp" : "tcp"));
		if (ip)
			json_object_object_add(m, "hostIP", json_object_new_string(ip));
		if (!o->port_mappings)
			o->port_mappings = json_object_new_array();
		json_object_array_add(o->port_mappings, m);
	}
	return 0;
}

static int parse_volume(const char *s, struct run_opts *o)
{
	_cleanup_free_ char *copy = xstrdup(s);
	char *host = copy, *ctr, *mode = NULL;
	struct volume v = {0};
	struct stat st;

	ctr = strchr(copy, ':');
	if (!ctr || ctr == copy)
		return usage_error("--volume '%s': want HOST:CONTAINER[:ro]", s);
	*ctr++ = '\0';
	mode = strchr(ctr, ':');
	if (mode)
		*mode++ = '\0';
	if (mode && strcmp(mode, "ro") != 0 && strcmp(mode, "rw") != 0)
		return usage_error("--volume '%s': mode '%s' is not ro or rw", s, mode);
	if (ctr[0] != '/' || strcmp(ctr, "/") == 0)
		return usage_error("--volume '%s': container path must be absolute and not '/'", s);
	if (stat(host, &st) < 0)
		return usage_error("--volume '%s': host path '%s': %s", s, host, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return usage_error("--volume '%s': host path '%s' is not a directory", s, host);
	if (o->n_vols >= 32)
		return usage_error("--volume: at most 32 volumes");
	v.host = realpath(host, NULL);
	if (!v.host)
		return usage_error("--volume '%s': %s", s, strerror(errno));
	v.container = xstrdup(ctr);
	v.readonly = mode && strcmp(mode, "ro") == 0;
	o->vols = xrealloc(o->vols, (o->n_vols + 1) * sizeof(*o->vols));
	o->vols[o->n_vols++] = v;
	return 0;
}

static int parse_dur(const char *opt, const char *s, uint64_t *ret)
{
	if (parse_duration_ms(s, ret) < 0)
		return usage_error("%s '%s': want a duration like 30s, 500ms, 5m", opt, s);
	return 0;
}

enum {
	OPT_ROOTFS = 0x100,
	OPT_BUNDLE,
	OPT_ENTRYPOINT,
	OPT_ROOTFS_RW,
	OPT_ENV_FILE,
	OPT_HOSTNAME,
	OPT_CPUS,
	OPT_TIMEOUT,
	OPT_STOP_TIMEOUT,
	OPT_BOOT_TIMEOUT,
	OPT_KERNEL,
	OPT_INITRD,
	OPT_ACCEL,
	OPT_MACHINE,
	OPT_CHANNEL,
	OPT_LOG_LEVEL,
	OPT_PRIVILEGED,
	OPT_NET,
	OPT_NAME,
};

static const struct option long_opts[] = {
    {"rootfs", required_argument, NULL, OPT_ROOTFS},
    {"entrypoint", required_argument, NULL, OPT_ENTRYPOINT},
    {"bundle", required_argument, NULL, OPT_BUNDLE},
    {"rootfs-rw", no_argument, NULL, OPT_ROOTFS_RW},
    {"env", required_argument, NULL, 'e'},
    {"env-file", required_argument, NULL, OPT_ENV_FILE},
    {"workdir", required_argument, NULL, 'w'},
    {"user", required_argument, NULL, 'u'},
    {"volume", required_argument, NULL, 'v'},
    {"hostname", required_argument, NULL, OPT_HOSTNAME},
    {"interactive", no_argument, NULL, 'i'},
    {"tty", no_argument, NULL, 't'},
    {"cpus", required_argument, NULL, OPT_CPUS},
    {"memory", required_argument, NULL, 'm'},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"stop-timeout", required_argument, NULL, OPT_STOP_TIMEOUT},
    {"boot-timeout", required_argument, NULL, OPT_BOOT_TIMEOUT},
    {"kernel", required_argument, NULL, OPT_KERNEL},
    {"initrd", required_argument, NULL, OPT_INITRD},
    {"accel", required_argument, NULL, OPT_ACCEL},
    {"machine", required_argument, NULL, OPT_MACHINE},
    {"channel", required_argument, NULL, OPT_CHANNEL},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"privileged", no_argument, NULL, OPT_PRIVILEGED},
    {"net", required_argument, NULL, OPT_NET},
    {"publish", required_argument, NULL, 'p'},
    {"detach", no_argument, NULL, 'd'},
    {"name", required_argument, NULL, OPT_NAME},
    {"help", no_argument, NULL, 'h'},
    {0},
};

/* "name[:group]" or "uid[:gid]" from the image, looked up in its /etc/passwd and
 * /etc/group, opened inside the rootfs (a symlink there cannot point at the host's). */
static int lookup_in_rootfs(const char *rootfs, const char *file, const char *name,
                            unsigned long *id, unsigned long *gid)
{
	struct open_how how = {.flags = O_RDONLY | O_CLOEXEC,
	                       .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
	_cleanup_close_ int root = open(rootfs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int fd = root < 0 ? -1 : (int)syscall(SYS_openat2, root, file, &how, sizeof(how));
	_cleanup_fclose_ FILE *f = fd >= 0 ? fdopen(fd, "re") : NULL;
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;

	if (!f) {
		if (fd >= 0)
			close(fd);
		return -ENOENT;
	}
	while (getline(&line, &cap, f) > 0) {
		/* name:x:id[:gid:...] */
		char *save = NULL, *n = strtok_r(line, ":", &save),
		     *pw = strtok_r(NULL, ":", &save), *i = strtok_r(NULL, ":", &save),
		     *g = strtok_r(NULL, ":", &save);
		(void)pw;
		if (n && i && strcmp(n, name) == 0) {
			*id = strtoul(i, NULL, 10);
			if (gid)
				*gid = g ? strtoul(g, NULL, 10) : 0;
			return 0;
		}
	}
	return -ENOENT;
}

static int image_user(const char *rootfs, const char *spec, struct run_opts *o)
{
	_cleanup_free_ char *copy = xstrdup(spec);
	char *group = strchr(copy, ':'), *end;
	unsigned long uid, gid = 0;

	if (group)
		*group++ = '\0';
	uid = strtoul(copy, &end, 10);
	if (!*copy || *end) {
		if (lookup_in_rootfs(rootfs, "/etc/passwd", copy, &uid, &gid) < 0)
			return usage_error("the image's user '%s' is not in its /etc/passwd", spec);
	}
	if (group) {
		gid = strtoul(group, &end, 10);
		if (!*group || *end) {
			if (lookup_in_rootfs(rootfs, "/etc/group", group, &gid, NULL) < 0)
				return usage_error(
				    "the image's group '%s' is not in its /etc/group", group);
		}
	}
	if (uid > UINT32_MAX - 1 || gid > UINT32_MAX - 1)
		return usage_error("the image's user '%s' is out of range", spec);
	o->uid = (uint32_t)uid;
	o->gid = (uint32_t)gid;
	return 0;
}

/* hull run IMAGE: the unpacked rootfs, and the image config's process unless the
 * command line gives one (docker's rules: a CMD replaces Cmd, --entrypoint replaces
 * Entrypoint and drops Cmd). */
static int image_prepare(struct run_opts *o, const char *image, char **cmd)
{
	_cleanup_error_ struct hull_error *err = NULL;
	_cleanup_free_ char *name = NULL, *digest = NULL;
	struct image_manifest m = {0};
	struct image_config c = {0};
	int r;

	r = cli_image_resolve(image, &o->image_store, &name, &digest, &err);
	if (r >= 0)
		r = image_store_load(o->image_store, digest, &m, &c, &err);
	/* Device nodes in the image's layers only for a privileged container. */
	if (r >= 0)
		image_store_set_privileged(o->image_store, o->privileged);
	/* Layers as erofs disks stacked in the guest (docs/images.md); the unpacked tree
	 * over 9p for detached sandboxes, without root, or when asked. */
	bool erofs = r >= 0 && !o->detach && image_backend_erofs();
	/* microvm has 24 virtio-mmio slots: rng, the agent channel and the volumes come
	 * first; an image with more layers than fit goes the 9p way. */
	if (erofs && o->machine == VMM_MACHINE_MICROVM &&
	    (m.n_entries - 1) + o->n_vols + 3 > MICROVM_VIRTIO_SLOTS) {
		log_info("%zu layers do not fit microvm's virtio slots: the image goes over 9p "
		         "(or use --machine q35)",
		         m.n_entries - 1);
		erofs = false;
	}
	if (erofs)
		r = image_store_layer_images(o->image_store, digest, &o->layers, &err);
	/* The tree also serves to look the image's user up by name. */
	if (r >= 0 && (!o->layers || (c.user && *c.user && !o->user_set)))
		r = image_store_rootfs(o->image_store, digest, &o->rootfs, &err);
	if (r < 0) {
		fprintf(stderr, "hull: %s\n", err->msg);
		image_manifest_done(&m);
		image_config_done(&c);
		return -EINVAL;
	}
	/* Held while the job runs: `hull image prune` leaves this image alone. */
	image_store_hold(o->image_store);
	if (o->entrypoint)
		strv_push(&o->cmd_owned, xstrdup(o->entrypoint));
	else
		for (char **e = c.entrypoint; e && *e; e++)
			strv_push(&o->cmd_owned, xstrdup(*e));
	if (*cmd)
		for (char **a = cmd; *a; a++)
			strv_push(&o->cmd_owned, xstrdup(*a));
	else if (!o->entrypoint)
		for (char **a = c.cmd; a && *a; a++)
			strv_push(&o->cmd_owned, xstrdup(*a));
	if (!o->cmd_owned) {
		image_manifest_done(&m);
		image_config_done(&c);
		return usage_error("image '%s' has no Entrypoint or Cmd: give a command", image);
	}
	o->cmd = o->cmd_owned;
	if (!o->workdir && c.workdir && c.workdir[0] == '/')
		o->workdir = xstrdup(c.workdir);
	r = 0;
	if (!o->user_set && c.user && *c.user)
		r = image_user(o->rootfs, c.user, o);
	o->image_env = TAKE_PTR(c.env);
	if (c.stop_signal && *c.stop_signal) {
		o->stop_signal = signal_from_string(c.stop_signal);
		if (o->stop_signal < 0)
			fprintf(stderr, "hull: ignoring the image's StopSignal '%.32s'\n",
			        c.stop_signal);
	}
	image_manifest_done(&m);
	image_config_done(&c);
	return r;
}

/* Returns 0, 1 for --help, or -EINVAL after printing why. */
static int parse_args(int argc, char **argv, struct run_opts *o)
{
	char **cli_env = NULL;
	const char *env_file = NULL;
	uint64_t v;
	int c, r;

	*o = (struct run_opts){.ready_fd = -1,
	                       .cpus = 1,
	                       .memory_mib = 256,
	                       .stop_timeout_ms = 10000,
	                       .boot_timeout_ms = 30000,
	                       .channel = -1,
	                       .accel = VMM_ACCEL_AUTO,
	                       .machine = VMM_MACHINE_MICROVM};
	optind = 1;
	/* '+': options end at the first non-option (CMD), as with docker run. */
	while ((c = getopt_long(argc, argv, "+e:w:u:v:itm:hdp:", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_ROOTFS:
			free(o->rootfs);
			o->rootfs = xstrdup(optarg);
			break;
		case OPT_ENTRYPOINT:
			free(o->entrypoint);
			o->entrypoint = xstrdup(optarg);
			break;
		case OPT_BUNDLE:
			free(o->bundle_dir);
			o->bundle_dir = xstrdup(optarg);
			break;
		case OPT_ROOTFS_RW:
			o->rootfs_rw = true;
			break;
		case 'e':
			strv_push(&cli_env, xstrdup(optarg));
			break;
		case OPT_ENV_FILE:
			env_file = optarg;
			break;
		case 'w':
			if (optarg[0] != '/') {
				strv_free(cli_env);
				return usage_error("--workdir '%s': must be an absolute path",
				                   optarg);
			}
			free(o->workdir);
			o->workdir = xstrdup(optarg);
			break;
		case 'u':
			o->user_set = true;
			r = parse_user(optarg, o);
			if (r < 0)
				goto fail;
			break;
		case 'v':
			r = parse_volume(optarg, o);
			if (r < 0)
				goto fail;
			break;
		case OPT_HOSTNAME:
			/* It also lands in /etc/hosts: no spaces or control characters. */
			if (strlen(optarg) == 0 || strlen(optarg) > 64 ||
			    strcspn(optarg, " \t\r\n\v\f") != strlen(optarg)) {
				r = usage_error(
				    "--hostname '%s': want 1 to 64 characters, no spaces", optarg);
				goto fail;
			}
			free(o->hostname);
			o->hostname = xstrdup(optarg);
			break;
		case 'i':
			o->interactive = true;
			break;
		case 't':
			o->tty = true;
			break;
		case OPT_CPUS: {
			char *end;
			unsigned long n = strtoul(optarg, &end, 10);
			if (*end || n < 1 || n > 64) {
				r = usage_error("--cpus '%s': want 1 to 64", optarg);
				goto fail;
			}
			o->cpus = (unsigned)n;
			break;
		}
		case 'm':
			if (parse_size(optarg, &v) < 0 || v < (64u << 20) || v > (1ull << 40)) {
				r = usage_error(
				    "--memory '%s': want a size from 64M to 1T, like 512M", optarg);
				goto fail;
			}
			o->memory_mib = v >> 20;
			break;
		case OPT_TIMEOUT:
			r = parse_dur("--timeout", optarg, &o->timeout_ms);
			if (r < 0)
				goto fail;
			if (o->timeout_ms == 0) {
				r = usage_error("--timeout '%s': must be more than 0", optarg);
				goto fail;
			}
			break;
		case OPT_STOP_TIMEOUT:
			r = parse_dur("--stop-timeout", optarg, &o->stop_timeout_ms);
			if (r < 0)
				goto fail;
			break;
		case OPT_BOOT_TIMEOUT:
			r = parse_dur("--boot-timeout", optarg, &v);
			if (r < 0)
				goto fail;
			o->boot_timeout_ms = (int)MIN(v, (uint64_t)INT32_MAX);
			break;
		case OPT_KERNEL:
			free(o->kernel);
			o->kernel = xstrdup(optarg);
			break;
		case OPT_INITRD:
			free(o->initrd);
			o->initrd = xstrdup(optarg);
			break;
		case OPT_ACCEL:
			r = vmm_accel_from_string(optarg);
			if (r < 0) {
				r = usage_error("--accel '%s': want auto, kvm or tcg", optarg);
				goto fail;
			}
			o->accel = (enum vmm_accel)r;
			break;
		case OPT_MACHINE:
			r = vmm_machine_from_string(optarg);
			if (r < 0) {
				r = usage_error("--machine '%s': want microvm or q35", optarg);
				goto fail;
			}
			o->machine = (enum vmm_machine)r;
			break;
		case OPT_CHANNEL:
			if (strcmp(optarg, "auto") == 0)
				o->channel = -1;
			else if (strcmp(optarg, "serial") == 0)
				o->channel = VMM_CHANNEL_SERIAL;
			else if (strcmp(optarg, "vsock") == 0)
				o->channel = VMM_CHANNEL_VSOCK;
			else {
				r = usage_error("--channel '%s': want auto, serial or vsock",
				                optarg);
				goto fail;
			}
			break;
		case OPT_LOG_LEVEL:
			r = log_level_from_string(optarg);
			if (r < 0) {
				r = usage_error("--log-level '%s': want error, warn, info or debug",
				                optarg);
				goto fail;
			}
			log_set_level((enum log_level)r);
			o->debug = r == LOG_LEVEL_DEBUG;
			break;
		case OPT_NET:
			o->net_user = false;
			free(o->netns);
			free(o->cni_net);
			o->netns = o->cni_net = NULL;
			if (strcmp(optarg, "user") == 0) {
				o->net_user = true;
			} else if (strncmp(optarg, "ns:", 3) == 0 && optarg[3] == '/') {
				o->netns = xstrdup(optarg + 3);
			} else if (strncmp(optarg, "cni:", 4) == 0 && id_is_valid(optarg + 4)) {
				o->cni_net = xstrdup(optarg + 4);
			} else if (strcmp(optarg, "none") != 0) {
				r = usage_error("--net '%s': want none, user, cni:NAME or ns:/PATH",
				                optarg);
				goto fail;
			}
			break;
		case 'p':
			r = parse_publish(optarg, o);
			if (r < 0)
				goto fail;
			break;
		case OPT_PRIVILEGED:
			o->privileged = true;
			break;
		case 'd':
			o->detach = true;
			break;
		case OPT_NAME: {
			if (!id_is_valid(optarg)) {
				r = usage_error("--name '%s': want 1 to 64 of [A-Za-z0-9_.-]",
				                optarg);
				goto fail;
			}
			free(o->name);
			o->name = xstrdup(optarg);
			break;
		}
		case 'h':
			strv_free(cli_env);
			usage(stdout);
			return 1;
		default:
			r = usage_error("unknown option");
			goto fail;
		}
	}
	if (o->hostfwd && !o->net_user && !o->cni_net) {
		r = usage_error("-p publishes ports of a networked sandbox: add --net=user or "
		                "--net=cni:NAME");
		goto fail;
	}
	if (o->bundle_dir) {
		/* The spec decides the process: flags that would contradict it are refused. */
		if (o->rootfs || o->entrypoint || optind < argc || cli_env || env_file ||
		    o->workdir || o->uid || o->gid || o->n_vols || o->hostname || o->tty ||
		    o->rootfs_rw) {
			r = usage_error(
			    "--bundle takes the command, user, env, mounts and terminal "
			    "from config.json: drop --rootfs/-e/-w/-u/-v/-t/--hostname "
			    "and CMD");
			goto fail;
		}
		strv_free(cli_env);
		return 0;
	}
	if (!o->rootfs) {
		/* hull run IMAGE [--] [CMD...]: the image's config fills in what is not given. */
		if (optind >= argc) {
			r = usage_error("no image given: hull run [OPTIONS] IMAGE [CMD...], or "
			                "--rootfs DIR -- CMD");
			goto fail;
		}
		r = image_prepare(o, argv[optind],
		                  argv + optind + 1 +
		                      (optind + 1 < argc && strcmp(argv[optind + 1], "--") == 0));
		if (r < 0)
			goto fail;
	} else {
		if (o->entrypoint) {
			r = usage_error("--entrypoint goes with an IMAGE, not --rootfs");
			goto fail;
		}
		if (optind >= argc) {
			r = usage_error(
			    "no command given: hull run [OPTIONS] --rootfs DIR -- CMD [ARG...]");
			goto fail;
		}
		o->cmd = argv + optind;
	}

	/* Environment: defaults, the image's, then --env-file, then -e, later entries
	 * winning. */
	env_set(&o->env, DEFAULT_PATH);
	{
		_cleanup_free_ char *h = xasprintf("HOME=%s", o->uid == 0 ? "/root" : "/");
		env_set(&o->env, h);
	}
	if (o->tty)
		env_set(&o->env, "TERM=xterm");
	for (char **e = o->image_env; e && *e; e++)
		if (strchr(*e, '='))
			env_set(&o->env, *e);
	if (env_file) {
		r = env_file_load(&o->env, env_file);
		if (r < 0)
			goto fail;
	}
	for (char **e = cli_env; e && *e; e++) {
		r = env_add_arg(&o->env, *e, "--env");
		if (r < 0)
			goto fail;
	}
	strv_free(cli_env);
	return 0;
fail:
	strv_free(cli_env);
	return r;
}

/* ---- terminal ------------------------------------------------------------------ */

static void tty_raw(struct run_state *s)
{
	struct termios t;
	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &s->saved_tty) < 0)
		return;
	t = s->saved_tty;
	cfmakeraw(&t);
	if (tcsetattr(STDIN_FILENO, TCSADRAIN, &t) == 0)
		s->tty_raw = true;
}

static void tty_restore(struct run_state *s)
{
	if (s->tty_raw)
		tcsetattr(STDIN_FILENO, TCSADRAIN, &s->saved_tty);
	s->tty_raw = false;
}

static void tty_size(uint32_t *rows, uint32_t *cols)
{
	struct winsize ws = {0};
	if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0 && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0)
		return;
	*rows = ws.ws_row;
	*cols = ws.ws_col;
}

/* ---- stdio stream ---------------------------------------------------------------- */

static void send_stdio(struct run_state *s, const uint8_t *data, size_t len, bool eof,
                       uint64_t credit)
{
	agent_client_send_stdio(s->sb->ac, s->attach_sid, data, len, eof, credit);
}

static void update_interest(struct run_state *s);

static void on_stdio_data(struct agent_client *ac, const uint8_t *payload, size_t len,
                          void *userdata)
{
	struct run_state *s = userdata;
	Hull__Agent__V1__StdioData *d = hull__agent__v1__stdio_data__unpack(NULL, len, payload);
	(void)ac;

	if (!d) {
		log_warn("agent sent an undecodable stdio frame: dropped");
		return;
	}
	if ((d->fd == 1 || d->fd == 2) && d->data.len > 0) {
		if (!s->out_broken[d->fd]) {
			int r = write_all((int)d->fd, d->data.data, d->data.len);
			if (r < 0) {
				/* Our reader went away (EPIPE): drop the rest, keep the job going.
				 */
				s->out_broken[d->fd] = true;
			}
		}
		s->out_unacked += d->data.len;
		if (s->out_unacked >= STDIO_WINDOW / 4) {
			send_stdio(s, NULL, 0, false, s->out_unacked);
			s->out_unacked = 0;
		}
	}
	if (d->credit > 0)
		s->in_credit = MIN(s->in_credit + d->credit, (uint64_t)64 << 20);
	hull__agent__v1__stdio_data__free_unpacked(d, NULL);
	update_interest(s);
}

static void on_stdio_done(struct agent_client *ac, int code, const char *message,
                          const uint8_t *payload, size_t len, void *userdata)
{
	struct run_state *s = userdata;
	(void)ac;
	(void)payload;
	(void)len;
	if (code != 0)
		log_warn("stdio stream ended: %s", message);
	log_debug("stdio drained");
	s->stdio_done = true;
}

static void on_wait(struct agent_client *ac, int code, const char *message, const uint8_t *payload,
                    size_t len, void *userdata)
{
	struct run_state *s = userdata;
	Hull__Agent__V1__WaitResponse *w;
	(void)ac;

	s->waited = true;
	log_debug("container exited");
	if (code != 0) {
		fprintf(stderr, "hull: wait for container: %s\n", message);
		s->exit_code = EXIT_HULL_ERROR;
		return;
	}
	w = hull__agent__v1__wait_response__unpack(NULL, len, payload);
	if (!w || w->signal < 0 || w->signal > 127 || w->exit_code < 0 || w->exit_code > 255) {
		/* The guest is untrusted: a status outside what waitpid can give is a lie. */
		fprintf(stderr, "hull: the agent reported an impossible exit status\n");
		s->exit_code = EXIT_HULL_ERROR;
	} else {
		s->exit_code = w->signal ? 128 + w->signal : w->exit_code;
		if (w->oom_killed)
			fprintf(stderr,
			        "hull: the container was OOM-killed (memory limit reached)\n");
	}
	if (w)
		hull__agent__v1__wait_response__free_unpacked(w, NULL);
}

static void read_stdin(struct run_state *s)
{
	static uint8_t chunk[STDIO_CHUNK];
	size_t want = (size_t)MIN((uint64_t)sizeof(chunk), s->in_credit);
	ssize_t n;

	if (!s->stdin_open || want == 0)
		return;
	n = read(STDIN_FILENO, chunk, want);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		send_stdio(s, NULL, 0, true, 0);
		s->stdin_open = false;
		if (s->stdin_pollable)
			event_del(s->loop, STDIN_FILENO);
		return;
	}
	s->in_credit -= (uint64_t)n;
	send_stdio(s, chunk, (size_t)n, false, 0);
}

/* ---- event loop ------------------------------------------------------------------ */

static void update_interest(struct run_state *s)
{
	if (s->stdin_open && s->stdin_pollable)
		event_mod(s->loop, STDIN_FILENO, s->in_credit > 0 ? EPOLLIN : 0);
	event_mod(s->loop, agent_client_fd(s->sb->ac),
	          EPOLLIN | (agent_client_wants_write(s->sb->ac) ? EPOLLOUT : 0));
}

static void on_agent(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct run_state *s = userdata;
	_cleanup_error_ struct hull_error *err = NULL;
	(void)loop;
	(void)fd;
	(void)revents;
	if (agent_client_io(s->sb->ac, &err) < 0) {
		log_debug("agent channel: %s", err->msg);
		s->agent_lost = true;
		event_del(s->loop, agent_client_fd(s->sb->ac));
		return;
	}
	update_interest(s);
}

static void on_stdin(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct run_state *s = userdata;
	(void)loop;
	(void)fd;
	(void)revents;
	read_stdin(s);
	update_interest(s);
}

static void on_vm_exit(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct run_state *s = userdata;
	(void)revents;
	s->vm_died = true;
	event_del(loop, fd);
}

static void send_signal(struct run_state *s, int sig)
{
	Hull__Agent__V1__SignalRequest req = HULL__AGENT__V1__SIGNAL_REQUEST__INIT;
	req.id = (char *)CONTAINER_ID;
	req.exec_id = (char *)"";
	req.signal = (uint32_t)sig;
	/* Fire and forget: a container that already exited answers NOT_FOUND/ESRCH. */
	agent_client_call(s->sb->ac, "SignalProcess", &req.base, 0, NULL, NULL, NULL);
	update_interest(s);
}

static void arm_timer(int fd, uint64_t ms)
{
	struct itimerspec its = {
	    .it_value = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000}};
	if (ms == 0)
		its.it_value.tv_nsec = 1;
	timerfd_settime(fd, 0, &its, NULL);
}

static void on_signal(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct run_state *s = userdata;
	struct signalfd_siginfo si;
	(void)loop;
	(void)revents;

	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		int sig = (int)si.ssi_signo;
		if (sig == SIGWINCH) {
			Hull__Agent__V1__ResizeRequest req = HULL__AGENT__V1__RESIZE_REQUEST__INIT;
			req.id = (char *)CONTAINER_ID;
			tty_size(&req.rows, &req.cols);
			agent_client_call(s->sb->ac, "ResizePty", &req.base, 0, NULL, NULL, NULL);
			continue;
		}
		/* A second interrupt means "now": a PID 1 that ignores SIGINT/SIGTERM (the
		 * default in a pid namespace) would otherwise never stop. */
		if (s->forwarded++ > 0) {
			log_info("second %s: killing the container", strsignal(sig));
			send_signal(s, SIGKILL);
			continue;
		}
		/* The image's StopSignal is how its process wants to be stopped. */
		if (sig == SIGTERM && s->o->stop_signal > 0)
			sig = s->o->stop_signal;
		log_info("forwarding %s", strsignal(sig));
		send_signal(s, sig);
		arm_timer(s->kill_fd, s->o->stop_timeout_ms);
	}
	update_interest(s);
}

static void on_timeout(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct run_state *s = userdata;
	uint64_t ticks;
	(void)loop;
	(void)revents;
	(void)!read(fd, &ticks, sizeof(ticks));
	if (fd == s->timeout_fd) {
		s->timed_out = true;
		fprintf(stderr, "hull: timeout: killing the job after %.3gs\n",
		        (double)s->o->timeout_ms / 1000.0);
	} else {
		log_info("stop timeout: killing the container");
	}
	send_signal(s, SIGKILL);
}

/* ---- the run --------------------------------------------------------------------- */

static int check_binary_in_path(const char *name)
{
	const char *path = getenv("PATH");
	if (strchr(name, '/'))
		return access(name, X_OK) == 0 ? 0 : -errno;
	for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
		const char *colon = strchrnul(p, ':');
		_cleanup_free_ char *cand = xasprintf("%.*s/%s", (int)(colon - p), p, name);
		if (access(cand, X_OK) == 0)
			return 0;
		p = *colon ? colon + 1 : colon;
	}
	return -ENOENT;
}

/* The config.json of a --rootfs or IMAGE job: docker's defaults, the options, and a
 * bind mount for each -v directory and each host file (resolv.conf of --net=user). */
static char *generated_spec(const struct run_opts *o, const char *default_hostname, size_t *len)
{
	_cleanup_free_ struct cli_spec_volume *vols =
	    xcalloc(o->n_vols + o->n_files + 1, sizeof(*vols));
	for (size_t i = 0; i < o->n_vols; i++)
		vols[i] = (struct cli_spec_volume){.source = o->vols[i].host,
		                                   .destination = o->vols[i].container,
		                                   .readonly = o->vols[i].readonly};
	for (size_t i = 0; i < o->n_files; i++)
		vols[o->n_vols + i] = (struct cli_spec_volume){
		    .source = o->files[i].host, .destination = o->files[i].container};
	struct cli_spec_input in = {
	    .args = o->cmd,
	    .env = o->env,
	    .cwd = o->workdir ? o->workdir : "/",
	    .hostname = o->hostname ? o->hostname : default_hostname,
	    .uid = o->uid,
	    .gid = o->gid,
	    .terminal = o->tty,
	    .privileged = o->privileged,
	    .volumes = vols,
	    .n_volumes = o->n_vols + o->n_files,
	};
	if (o->tty)
		tty_size(&in.rows, &in.cols);
	return cli_build_oci_spec(&in, len);
}

static int create_container(struct run_state *s, struct hull_error **err)
{
	Hull__Agent__V1__CreateContainerRequest req =
	    HULL__AGENT__V1__CREATE_CONTAINER_REQUEST__INIT;
	Hull__Agent__V1__Storage root = HULL__AGENT__V1__STORAGE__INIT;
	struct run_opts *o = s->o;
	size_t n_mounts = o->n_vols + o->n_files;
	Hull__Agent__V1__Mount *mounts = xcalloc(n_mounts, sizeof(*mounts));
	Hull__Agent__V1__Storage *stores = xcalloc(n_mounts, sizeof(*stores));
	Hull__Agent__V1__Mount **mptrs = xcalloc(n_mounts, sizeof(*mptrs));
	_cleanup_strv_free_ char **tags = xcalloc(n_mounts + 1, sizeof(char *));
	_cleanup_free_ char *generated = NULL;
	int r;

	root.source = (char *)"hull-root";
	root.fstype = (char *)"9p";
	/* --rootfs: copy-on-write over the read-only share unless --rootfs-rw. A bundle's
	 * rootfs is written directly, as under runc, unless root.readonly: then the
	 * overlay takes the mount targets the spec needs and the guest makes the root
	 * read-only after mounting, so the bundle is never written. */
	root.overlay = o->bundle_dir ? o->bundle.root_readonly : !o->rootfs_rw;
	/* Each host directory is a share; the spec's bind mount at the same destination
	 * is where the guest mounts it. */
	for (size_t i = 0; i < o->n_vols; i++) {
		hull__agent__v1__storage__init(&stores[i]);
		hull__agent__v1__mount__init(&mounts[i]);
		tags[i] = xasprintf("vol%zu", i);
		stores[i].source = tags[i];
		stores[i].fstype = (char *)"9p";
		stores[i].readonly = o->vols[i].readonly;
		mounts[i].storage = &stores[i];
		mounts[i].destination = o->vols[i].container;
		mounts[i].readonly = o->vols[i].readonly;
		mptrs[i] = &mounts[i];
	}
	/* Host files: copies in the sandbox's "hull-files" share, f0, f1, ... */
	for (size_t i = 0; i < o->n_files; i++) {
		size_t k = o->n_vols + i;
		hull__agent__v1__storage__init(&stores[k]);
		hull__agent__v1__mount__init(&mounts[k]);
		tags[k] = xasprintf("f%zu", i);
		stores[k].source = (char *)SANDBOX_FILES_TAG;
		stores[k].fstype = (char *)"9p";
		mounts[k].storage = &stores[k];
		mounts[k].destination = o->files[i].container;
		mounts[k].readonly = o->files[i].readonly;
		mounts[k].subpath = tags[k];
		mptrs[k] = &mounts[k];
	}
	if (o->bundle_dir) {
		req.oci_config.data = (uint8_t *)o->bundle.config;
		req.oci_config.len = o->bundle.config_len;
	} else {
		generated = generated_spec(o, s->sb->id, &req.oci_config.len);
		req.oci_config.data = (uint8_t *)generated;
	}
	req.id = (char *)CONTAINER_ID;
	if (o->layers) {
		/* The image's layers, stacked in the guest; the disks are hull-l0, hull-l1... */
		root.fstype = (char *)"erofs";
		root.source = (char *)"";
		root.n_layers = strv_length(o->layers);
		root.layers = xcalloc(root.n_layers + 1, sizeof(char *));
		for (size_t i = 0; i < root.n_layers; i++)
			root.layers[i] = xasprintf("hull-l%zu", i);
	}
	req.root = &root;
	req.n_mounts = n_mounts;
	req.mounts = mptrs;
	r = agent_client_call_sync(s->sb->ac, "CreateContainer", &req.base, NULL, NULL,
	                           CALL_TIMEOUT_MS, err);
	for (size_t i = 0; i < root.n_layers; i++)
		free(root.layers[i]);
	free(root.layers);
	free(mptrs);
	free(stores);
	free(mounts);
	return r;
}

static int setup_loop(struct run_state *s)
{
	sigset_t mask;

	s->loop = event_loop_new();
	s->timeout_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	s->kill_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	sigemptyset(&mask);
	sigaddset(&mask, SIGWINCH);
	s->winch_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (s->timeout_fd < 0 || s->kill_fd < 0 || s->winch_fd < 0)
		return -errno;
	event_add(s->loop, s->sig_fd, EPOLLIN, on_signal, s);
	event_add(s->loop, s->winch_fd, EPOLLIN, on_signal, s);
	event_add(s->loop, s->timeout_fd, EPOLLIN, on_timeout, s);
	event_add(s->loop, s->kill_fd, EPOLLIN, on_timeout, s);
	event_add(s->loop, agent_client_fd(s->sb->ac), EPOLLIN, on_agent, s);
	event_add(s->loop, s->sb->vm->ops->exit_fd(s->sb->vm), EPOLLIN, on_vm_exit, s);
	if (s->o->interactive) {
		s->stdin_open = true;
		fd_set_nonblock(STDIN_FILENO, 1);
		/* Regular files and /dev/null cannot be polled: read them as credit allows. */
		s->stdin_pollable = event_add(s->loop, STDIN_FILENO, 0, on_stdin, s) == 0;
	}
	return 0;
}

static int run_job(struct run_state *s, struct hull_error **err)
{
	Hull__Agent__V1__AttachRequest att = HULL__AGENT__V1__ATTACH_REQUEST__INIT;
	Hull__Agent__V1__ContainerRequest cr = HULL__AGENT__V1__CONTAINER_REQUEST__INIT;
	int r;

	/* The loop exists before the first call: replies and output may come early. */
	r = setup_loop(s);
	if (r < 0)
		return hull_error_set_errno(err, r, "event loop");
	r = create_container(s, err);
	if (r < 0)
		return r;
	log_debug("container created");
	att.id = cr.id = (char *)CONTAINER_ID;
	/* Attach before start so not a byte of output is lost; grant the output window. */
	s->attach_sid = agent_client_call(s->sb->ac, "AttachStdio", &att.base,
	                                  TTRPC_FLAG_REMOTE_OPEN, on_stdio_done, on_stdio_data, s);
	send_stdio(s, NULL, 0, !s->o->interactive, STDIO_WINDOW);
	{
		ProtobufCMessage *started = NULL;
		r = agent_client_call_sync(s->sb->ac, "StartContainer", &cr.base,
		                           &hull__agent__v1__start_container_response__descriptor,
		                           &started, CALL_TIMEOUT_MS, err);
		if (r < 0) {
			s->exec_failed = true;
			return r;
		}
		protobuf_c_message_free_unpacked(started, NULL);
	}
	log_debug("container started");
	if (s->o->timeout_ms)
		arm_timer(s->timeout_fd, s->o->timeout_ms);
	agent_client_call(s->sb->ac, "WaitProcess", &cr.base, 0, on_wait, NULL, s);
	if (s->o->tty)
		tty_raw(s);
	update_interest(s);

	while (!(s->waited && s->stdio_done) && !s->vm_died && !s->agent_lost) {
		bool poll_stdin = s->stdin_open && !s->stdin_pollable && s->in_credit > 0;
		if (poll_stdin) {
			read_stdin(s);
			update_interest(s);
		}
		r = event_loop_once(s->loop, poll_stdin ? 0 : -1);
		if (r < 0)
			return hull_error_set_errno(err, r, "event loop");
	}
	tty_restore(s);
	if (!s->waited || !s->stdio_done) {
		_cleanup_free_ char *tail = sandbox_console_tail(s->sb, 1024);
		return hull_error_set(err, -ECHILD, "the VM exited before the job finished%s%s",
		                      *tail ? "\n--- guest console (last lines) ---\n" : "", tail);
	}
	return 0;
}

/* The VM the options ask for. */
static void vm_config(const struct run_opts *o, struct sandbox_config *sc)
{
	sc->kernel = o->kernel;
	sc->initrd = o->initrd;
	sc->qemu = o->qemu;
	sc->accel = o->accel;
	sc->machine = o->machine;
	sc->channel = o->channel;
	sc->cpus = o->cpus;
	sc->memory_mib = o->memory_mib;
	sc->boot_timeout_ms = o->boot_timeout_ms;
	sc->debug = o->debug;
	sc->net_user = o->net_user;
	sc->hostfwd = o->hostfwd;
	sc->netns = o->netns;
}

/* A sandbox name when none is given: 12 hex digits. */
static char *random_name(void)
{
	uint8_t rnd[6];
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		abort();
	return xasprintf("%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
	                 rnd[5]);
}

/* A file of the container's /etc (path): text, or the host's own file when text is
 * NULL, copied into the sandbox like a bundle's host files. A bundle keeps its own. */
static int add_etc_file(struct run_opts *o, const char *path, const char *text,
                        struct hull_error **err)
{
	char tmpl[] = "/tmp/hull-etc.XXXXXX";
	int fd;

	if (o->bundle_dir)
		return 0;
	if (!text) {
		o->files = xrealloc(o->files, (o->n_files + 1) * sizeof(*o->files));
		o->files[o->n_files++] =
		    (struct volume){.host = xstrdup(path), .container = xstrdup(path)};
		return 0;
	}
	fd = mkstemp(tmpl);
	if (fd < 0 || write_all(fd, text, strlen(text)) < 0) {
		int e = -errno;
		if (fd >= 0) {
			close(fd);
			(void)unlink(tmpl);
		}
		return hull_error_set_errno(err, e, "%s", path);
	}
	close(fd);
	(void)chmod(tmpl, 0644);
	strv_push(&o->temp_files, xstrdup(tmpl));
	o->files = xrealloc(o->files, (o->n_files + 1) * sizeof(*o->files));
	o->files[o->n_files++] = (struct volume){.host = xstrdup(tmpl), .container = xstrdup(path)};
	return 0;
}

/* /etc/hosts as docker writes it: localhost, and the sandbox's name at its addresses. */
static char *hosts_text(const char *name, char *const *cidrs)
{
	char *text = xstrdup("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
	for (char *const *c = cidrs; c && *c; c++) {
		char *n = xasprintf("%s%.*s\t%s\n", text, (int)strcspn(*c, "/"), *c, name);
		free(text);
		text = n;
	}
	return text;
}

/* hull run -d, in the per-sandbox process: the containerd shim's Task service runs the
 * job (shim_serve_job), so `hull ps/exec/kill/rm` and containerd speak to the same
 * code. The caller waits on o->ready_fd for "ok NAME". */
static int run_detached(struct run_opts *o)
{
	struct sandbox_config sc = {0};
	struct bundle b = {0};
	struct shim_args a = {.namespace = "hull"};
	_cleanup_free_ char *generated = NULL, *name = NULL;
	int code;

	if (o->name) {
		name = xstrdup(o->name);
	} else {
		name = random_name();
	}
	a.id = name;
	if (o->bundle_dir) {
		b = o->bundle; /* borrowed: run_opts_done frees it */
	} else {
		b.binds = xcalloc(o->n_vols + o->n_files + 1, sizeof(*b.binds));
		for (size_t i = 0; i < o->n_files; i++) {
			size_t k = o->n_vols + i;
			b.binds[k] = (struct bundle_bind){.source = o->files[i].host,
			                                  .destination = o->files[i].container,
			                                  .is_file = true};
		}
		for (size_t i = 0; i < o->n_vols; i++) {
			b.binds[i] = (struct bundle_bind){.source = o->vols[i].host,
			                                  .destination = o->vols[i].container,
			                                  .readonly = o->vols[i].readonly};
		}
		b.n_binds = o->n_vols + o->n_files;
		generated = generated_spec(o, name, &b.config_len);
		b.config = generated;
		b.rootfs = o->rootfs;
	}
	sc.id = name;
	vm_config(o, &sc);
	struct shim_job job = {
	    .id = CONTAINER_ID,
	    .bundle_dir = o->bundle_dir,
	    .bundle = &b,
	    .root_overlay = o->bundle_dir ? o->bundle.root_readonly : !o->rootfs_rw,
	    .log_name = "container.log",
	    .timeout_ms = o->timeout_ms,
	};
	code = shim_serve_job(&a, &sc, &job, o->ready_fd);
	o->ready_fd = -1;
	if (!o->bundle_dir)
		free(b.binds);
	return code;
}

/* Only a failed exec becomes 126/127 (as docker): every other failure is hull's, 125. */
static int exit_code_for(const struct run_state *s, int r)
{
	if (!s->exec_failed)
		return EXIT_HULL_ERROR;
	switch (r) {
	case -ENOENT:
		return EXIT_CMD_NOT_FOUND;
	case -EACCES:
		return EXIT_CMD_NOT_EXEC;
	default:
		return EXIT_HULL_ERROR;
	}
}

int cli_run(int argc, char **argv)
{
	_cleanup_error_ struct hull_error *err = NULL;
	struct run_opts o;
	struct run_state s = {
	    .o = &o, .sig_fd = -1, .winch_fd = -1, .timeout_fd = -1, .kill_fd = -1};
	struct vmm_share *shares = NULL;
	struct sandbox_config sc = {0};
	struct cni *cni = NULL;
	struct stat st;
	sigset_t mask;
	int r, code;

	r = parse_args(argc, argv, &o);
	if (r != 0) {
		run_opts_done(&o);
		return r > 0 ? 0 : EXIT_HULL_ERROR;
	}
	if (o.bundle_dir) {
		r = bundle_read(o.bundle_dir, &o.bundle, &err);
		if (r < 0) {
			fprintf(stderr, "hull: %s\n", err->msg);
			run_opts_done(&o);
			return EXIT_HULL_ERROR;
		}
		/* Bind mounts of host directories become shares, as -v does. */
		o.rootfs = xstrdup(o.bundle.rootfs);
		o.rootfs_rw = !o.bundle.root_readonly;
		o.tty = o.bundle.terminal;
		o.vols = xcalloc(o.bundle.n_binds, sizeof(*o.vols));
		o.files = xcalloc(o.bundle.n_binds, sizeof(*o.files));
		for (size_t i = 0; i < o.bundle.n_binds; i++) {
			const struct bundle_bind *bb = &o.bundle.binds[i];
			struct volume v = {.host = xstrdup(bb->source),
			                   .container = xstrdup(bb->destination),
			                   .readonly = bb->readonly};
			if (bb->is_file)
				o.files[o.n_files++] = v;
			else
				o.vols[o.n_vols++] = v;
		}
	}
	if (!o.kernel)
		o.kernel = sandbox_default_guest_file("vmlinuz");
	if (!o.initrd)
		o.initrd = sandbox_default_guest_file("initramfs.cpio");
	o.qemu = getenv("HULL_QEMU") && *getenv("HULL_QEMU") ? getenv("HULL_QEMU")
	                                                     : "qemu-system-x86_64";

	/* Check what we can before booting anything. */
	if (!o.layers && (stat(o.rootfs, &st) < 0 || !S_ISDIR(st.st_mode))) {
		fprintf(stderr, "hull: rootfs '%s': %s\n", o.rootfs,
		        errno && !S_ISDIR(st.st_mode) && errno != 0 ? strerror(errno)
		                                                    : "not a directory");
		run_opts_done(&o);
		return EXIT_HULL_ERROR;
	}
	if (check_binary_in_path(o.qemu) < 0) {
		fprintf(
		    stderr,
		    "hull: QEMU binary '%s' not found (install qemu-system-x86 or set HULL_QEMU)\n",
		    o.qemu);
		run_opts_done(&o);
		return EXIT_HULL_ERROR;
	}
	if (o.detach) {
		/* The per-sandbox process: runs the job, keeps the VM, serves the Task API.
		 * We wait only until it says the job runs (or why it could not). */
		if (o.interactive || o.tty) {
			fprintf(stderr,
			        "hull run: -d cannot take -i or -t (use hull exec -i -t)\n");
			run_opts_done(&o);
			return EXIT_HULL_ERROR;
		}
		int p[2];
		char msg[4096];
		size_t got = 0;
		if (pipe2(p, O_CLOEXEC) < 0) {
			fprintf(stderr, "hull: pipe: %s\n", strerror(errno));
			return EXIT_HULL_ERROR;
		}
		pid_t child = fork();
		if (child < 0) {
			fprintf(stderr, "hull: fork: %s\n", strerror(errno));
			return EXIT_HULL_ERROR;
		}
		if (child > 0) {
			close(p[1]);
			for (ssize_t n; got < sizeof(msg) - 1 &&
			                (n = read(p[0], msg + got, sizeof(msg) - 1 - got)) != 0;)
				if (n > 0)
					got += (size_t)n;
				else if (errno != EINTR)
					break;
			msg[got] = '\0';
			run_opts_done(&o);
			if (strncmp(msg, "ok ", 3) == 0) {
				fputs(msg + 3, stdout);
				return 0;
			}
			fputs(got ? msg : "hull: the sandbox process ended without a word\n",
			      stderr);
			return EXIT_HULL_ERROR;
		}
		/* Until the job runs, what we would print goes to the waiting caller. */
		close(p[0]);
		o.ready_fd = p[1];
		(void)setsid();
		int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
		dup2(devnull, STDIN_FILENO);
		dup2(p[1], STDOUT_FILENO);
		dup2(p[1], STDERR_FILENO);
		if (devnull > 2)
			close(devnull);
	}
	{
		char *real = realpath(o.rootfs, NULL);
		if (real) {
			free(o.rootfs);
			o.rootfs = real;
		}
	}
	if (o.cni_net) {
		/* Our own namespace with the network's plugins run on it; the VM joins it
		 * as it joins a pod's. Removed (CNI DEL) when the sandbox ends. */
		_cleanup_free_ char *root = sandbox_default_state_root();
		_cleanup_free_ char *dns = NULL, *hosts = NULL;
		if (!o.name)
			o.name = random_name();
		r = cni_setup(o.cni_net, o.name, root, o.port_mappings, &cni, &err);
		if (r == 0) {
			o.netns = xstrdup(cni->netns);
			dns = cni_resolv_conf(&cni->res);
			hosts = hosts_text(o.hostname ? o.hostname : o.name, cni->res.ips);
			/* No DNS in the result: the host's, as CRI does. */
			r = add_etc_file(&o, "/etc/resolv.conf", dns, &err);
			if (r == 0)
				r = add_etc_file(&o, "/etc/hosts", hosts, &err);
		}
		if (r < 0) {
			fprintf(stderr, "hull: %s\n", err->msg);
			cni = cni_teardown(cni);
			run_opts_done(&o);
			return EXIT_HULL_ERROR;
		}
	}
	if (o.net_user && !o.bundle_dir) {
		/* QEMU's NAT answers DNS at 10.0.2.3: the container's resolv.conf says so. */
		r = add_etc_file(&o, "/etc/resolv.conf", "nameserver " SANDBOX_NAT_DNS "\n", &err);
		if (r < 0) {
			fprintf(stderr, "hull: %s\n", err->msg);
			run_opts_done(&o);
			return EXIT_HULL_ERROR;
		}
	}
	if (o.detach) {
		code = run_detached(&o);
		cni = cni_teardown(cni);
		run_opts_done(&o);
		return code;
	}

	/* Signals become events; until the job runs they abort the boot. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGWINCH);
	sigaddset(&mask, SIGPIPE);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sigdelset(&mask, SIGWINCH);
	sigdelset(&mask, SIGPIPE);
	s.sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

	shares = xcalloc(o.n_vols + 1, sizeof(*shares));
	shares[0] =
	    (struct vmm_share){.tag = "hull-root", .path = o.rootfs, .readonly = !o.rootfs_rw};
	_cleanup_strv_free_ char **tags = xcalloc(o.n_vols + 1, sizeof(char *));
	for (size_t i = 0; i < o.n_vols; i++) {
		tags[i] = xasprintf("vol%zu", i);
		shares[i + 1] = (struct vmm_share){
		    .tag = tags[i], .path = o.vols[i].host, .readonly = o.vols[i].readonly};
	}
	vm_config(&o, &sc);
	sc.shares = shares;
	_cleanup_free_ const char **files = xcalloc(o.n_files + 1, sizeof(char *));
	for (size_t i = 0; i < o.n_files; i++)
		files[i] = o.files[i].host;
	sc.files = files;
	sc.n_files = o.n_files;
	sc.n_shares = o.n_vols + 1;
	sc.interrupt_fd = s.sig_fd;
	/* An image's layers as read-only disks: no root share then. */
	_cleanup_free_ struct vmm_disk *disks = xcalloc(strv_length(o.layers) + 1, sizeof(*disks));
	_cleanup_strv_free_ char **serials = xcalloc(strv_length(o.layers) + 1, sizeof(char *));
	if (o.layers) {
		sc.shares = shares + 1;
		sc.n_shares = o.n_vols;
		for (size_t i = 0; o.layers[i]; i++) {
			serials[i] = xasprintf("hull-l%zu", i);
			disks[i] = (struct vmm_disk){.path = o.layers[i], .serial = serials[i]};
		}
		sc.disks = disks;
		sc.n_disks = strv_length(o.layers);
	}

	sc.id = o.name;
	r = sandbox_start(&sc, &s.sb, &err);
	if (r == 0) {
		agent_client_set_interrupt_fd(s.sb->ac, s.sig_fd);
		r = run_job(&s, &err);
	}
	tty_restore(&s);

	if (r == -EINTR) {
		struct signalfd_siginfo si = {.ssi_signo = SIGINT};
		(void)!read(s.sig_fd, &si, sizeof(si));
		code = 128 + (int)si.ssi_signo;
	} else if (r < 0) {
		code = exit_code_for(&s, r);
		fprintf(stderr, "hull: %s\n", err->msg);
	} else if (s.timed_out) {
		code = EXIT_HULL_TIMEOUT;
	} else {
		code = s.exit_code;
	}
	if (getenv("HULL_BENCH_PHASES") && s.sb) {
		uint64_t t_end = sandbox_now_ns();
		fprintf(stderr, "hull-phases: vmm_start_ms=%.1f boot_ms=%.1f job_ms=%.1f\n",
		        (double)(s.sb->t_vmm_ns - s.sb->t_start_ns) / 1e6,
		        (double)(s.sb->t_ready_ns - s.sb->t_vmm_ns) / 1e6,
		        (double)(t_end - s.sb->t_ready_ns) / 1e6);
	}
	{
		uint64_t t0 = sandbox_now_ns();
		s.sb = sandbox_stop(s.sb, 5000);
		if (getenv("HULL_BENCH_PHASES"))
			fprintf(stderr, "hull-phases: teardown_ms=%.1f\n",
			        (double)(sandbox_now_ns() - t0) / 1e6);
	}
	cni = cni_teardown(cni);
	s.loop = event_loop_free(s.loop);
	for (int *fd = &s.sig_fd; fd <= &s.kill_fd; fd++)
		if (*fd >= 0)
			close(*fd);
	free(shares);
	run_opts_done(&o);
	return code;
}
