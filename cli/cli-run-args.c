/* SPDX-License-Identifier: MIT */
/* hull run's command line: options into struct run_opts, each checked as it is read
 * (VM settings by the one validator of vmm-settings.c), an image's config filled in,
 * and the environment assembled. */
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/openat2.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <json-c/json.h>

#include "cli-run.h"
#include "cli.h"
#include "image.h"
#include "json.h"
#include "log.h"
#include "pod-log.h"
#include "util.h"

#define MICROVM_VIRTIO_SLOTS 24 /* QEMU 7.2's microvm: virtio-mmio transports */
#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

void run_opts_done(struct run_opts *o)
{
	vmm_settings_done(&o->vm);
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
	        "      --log-opt K=V     -d: max-size=SIZE (default 10M), max-file=N (default 3)\n"
	        "  -t, --tty             allocate a terminal\n"
	        "      --cpus N          virtual CPUs (default 1)\n"
	        "  -m, --memory SIZE     VM memory, e.g. 512M, 1G (default 256M)\n"
	        "      --tcg-cache SIZE  TCG: host memory for translated code (default 32M)\n"
	        "      --timeout DUR     kill CMD after DUR (e.g. 30s, 5m); exit status 124\n"
	        "      --stop-timeout DUR  after forwarding SIGINT/SIGTERM, kill after DUR "
	        "(default 10s)\n"
	        "      --boot-timeout DUR  give up if the VM is not ready after DUR (default 30s)\n"
	        "      --kernel F        guest kernel (default: hull's own)\n"
	        "      --initrd F        guest initramfs (default: hull's own)\n"
	        "      --accel A         auto, kvm or tcg (default auto; env HULL_ACCEL)\n"
	        "      --machine M       microvm or q35 (default microvm)\n"
	        "      --channel C       auto, serial or vsock (default auto)\n"
	        "      --no-template     boot the VM instead of restoring it from a template\n"
	        "      --template-domain NAME  share templates only with sandboxes of NAME\n"
	        "                        (default: one domain per user; docs/templates.md)\n"
	        "      --log-level L     error, warn, info or debug\n"
	        "\n"
	        "Exit status: CMD's own; 128+N if CMD died of signal N; 124 timeout;\n"
	        "125 hull failed; 126 CMD not executable; 127 CMD not found.\n");
}

int run_usage_error(const char *fmt, ...)
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
		return run_usage_error("%s: '%s' has no variable name", where, arg);
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
		return run_usage_error("--user '%s': want a numeric UID[:GID]", s);
	gid = 0;
	if (*end == ':') {
		const char *g = end + 1;
		errno = 0;
		gid = strtoul(g, &end, 10);
		if (errno || end == g || *end || gid > UINT32_MAX - 1)
			return run_usage_error("--user '%s': want a numeric UID[:GID]", s);
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
			return run_usage_error("-p '%s': the protocol is tcp or udp", s);
	}
	for (char *p = copy, *save = NULL, *t; (t = strtok_r(p, ":", &save)); p = NULL) {
		if (n == 3)
			return run_usage_error("-p '%s': want [IP:]HOST:CONTAINER[/tcp|udp]", s);
		parts[n++] = t;
	}
	if (n < 2)
		return run_usage_error("-p '%s': want [IP:]HOST:CONTAINER[/tcp|udp]", s);
	if (n == 3)
		ip = parts[0];
	host = strtoul(parts[n - 2], &end, 10);
	if (*end || host < 1 || host > 65535)
		return run_usage_error("-p '%s': host port '%s' is not 1-65535", s, parts[n - 2]);
	ctr = strtoul(parts[n - 1], &end, 10);
	if (*end || ctr < 1 || ctr > 65535)
		return run_usage_error("-p '%s': container port '%s' is not 1-65535", s,
		                       parts[n - 1]);
	if (ip && inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		return run_usage_error("-p '%s': '%s' is not an IPv4 address", s, ip);
	sa.sin_port = htons((uint16_t)host);
	{
		_cleanup_close_ int fd =
		    socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			return run_usage_error("-p '%s': host port %lu is in use (%s)", s, host,
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
		return run_usage_error("--volume '%s': want HOST:CONTAINER[:ro]", s);
	*ctr++ = '\0';
	mode = strchr(ctr, ':');
	if (mode)
		*mode++ = '\0';
	if (mode && strcmp(mode, "ro") != 0 && strcmp(mode, "rw") != 0)
		return run_usage_error("--volume '%s': mode '%s' is not ro or rw", s, mode);
	if (ctr[0] != '/' || strcmp(ctr, "/") == 0)
		return run_usage_error("--volume '%s': container path must be absolute and not '/'",
		                       s);
	if (stat(host, &st) < 0)
		return run_usage_error("--volume '%s': host path '%s': %s", s, host,
		                       strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return run_usage_error("--volume '%s': host path '%s' is not a directory", s, host);
	if (o->n_vols >= 32)
		return run_usage_error("--volume: at most 32 volumes");
	v.host = realpath(host, NULL);
	if (!v.host)
		return run_usage_error("--volume '%s': %s", s, strerror(errno));
	v.container = xstrdup(ctr);
	v.readonly = mode && strcmp(mode, "ro") == 0;
	o->vols = xrealloc(o->vols, (o->n_vols + 1) * sizeof(*o->vols));
	o->vols[o->n_vols++] = v;
	return 0;
}

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
			return run_usage_error("the image's user '%s' is not in its /etc/passwd",
			                       spec);
	}
	if (group) {
		gid = strtoul(group, &end, 10);
		if (!*group || *end) {
			if (lookup_in_rootfs(rootfs, "/etc/group", group, &gid, NULL) < 0)
				return run_usage_error(
				    "the image's group '%s' is not in its /etc/group", group);
		}
	}
	if (uid > UINT32_MAX - 1 || gid > UINT32_MAX - 1)
		return run_usage_error("the image's user '%s' is out of range", spec);
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
	 * over 9p without root, or when asked. */
	bool erofs = r >= 0 && image_backend_erofs();
	/* microvm has 24 virtio-mmio slots: rng, the agent channel, the shared directory
	 * and a NIC come first; an image with more layers than fit goes the 9p way. */
	if (erofs && o->vm.machine == VMM_MACHINE_MICROVM &&
	    (m.n_entries - 1) + 4 > MICROVM_VIRTIO_SLOTS) {
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
		return run_usage_error("image '%s' has no Entrypoint or Cmd: give a command",
		                       image);
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

enum {
	OPT_ROOTFS = 0x100,
	OPT_BUNDLE,
	OPT_ENTRYPOINT,
	OPT_ROOTFS_RW,
	OPT_ENV_FILE,
	OPT_HOSTNAME,
	OPT_TIMEOUT,
	OPT_STOP_TIMEOUT,
	OPT_LOG_LEVEL,
	OPT_LOG_OPT,
	OPT_PRIVILEGED,
	OPT_NET,
	OPT_NAME,
	/* the VM's settings, by their vmm_settings key */
	OPT_VM_CPUS,
	OPT_VM_BOOT_TIMEOUT,
	OPT_VM_TCG_CACHE,
	OPT_VM_KERNEL,
	OPT_VM_INITRD,
	OPT_VM_ACCEL,
	OPT_VM_MACHINE,
	OPT_VM_CHANNEL,
	OPT_VM_TEMPLATE_DOMAIN,
	OPT_NO_TEMPLATE,
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
    {"cpus", required_argument, NULL, OPT_VM_CPUS},
    {"memory", required_argument, NULL, 'm'},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"stop-timeout", required_argument, NULL, OPT_STOP_TIMEOUT},
    {"boot-timeout", required_argument, NULL, OPT_VM_BOOT_TIMEOUT},
    {"tcg-cache", required_argument, NULL, OPT_VM_TCG_CACHE},
    {"kernel", required_argument, NULL, OPT_VM_KERNEL},
    {"initrd", required_argument, NULL, OPT_VM_INITRD},
    {"accel", required_argument, NULL, OPT_VM_ACCEL},
    {"machine", required_argument, NULL, OPT_VM_MACHINE},
    {"channel", required_argument, NULL, OPT_VM_CHANNEL},
    {"template-domain", required_argument, NULL, OPT_VM_TEMPLATE_DOMAIN},
    {"no-template", no_argument, NULL, OPT_NO_TEMPLATE},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"log-opt", required_argument, NULL, OPT_LOG_OPT},
    {"privileged", no_argument, NULL, OPT_PRIVILEGED},
    {"net", required_argument, NULL, OPT_NET},
    {"publish", required_argument, NULL, 'p'},
    {"detach", no_argument, NULL, 'd'},
    {"name", required_argument, NULL, OPT_NAME},
    {"help", no_argument, NULL, 'h'},
    {0},
};

/* Flags that are VM settings: the flag, and its key in vmm_settings_set(). */
static const struct {
	int opt;
	const char *flag, *key;
} vm_flags[] = {
    {OPT_VM_CPUS, "--cpus", "cpus"},
    {'m', "--memory", "memory"},
    {OPT_VM_BOOT_TIMEOUT, "--boot-timeout", "boot_timeout"},
    {OPT_VM_TCG_CACHE, "--tcg-cache", "tcg_cache"},
    {OPT_VM_KERNEL, "--kernel", "kernel"},
    {OPT_VM_INITRD, "--initrd", "initrd"},
    {OPT_VM_ACCEL, "--accel", "accel"},
    {OPT_VM_MACHINE, "--machine", "machine"},
    {OPT_VM_CHANNEL, "--channel", "channel"},
    {OPT_VM_TEMPLATE_DOMAIN, "--template-domain", "template_domain"},
    {OPT_NO_TEMPLATE, "--no-template", "template"},
};

/* 0 when c is not a VM setting's flag; 1 when set; -EINVAL after saying why. */
static int parse_vm_option(struct run_opts *o, int c, const char *arg)
{
	_cleanup_error_ struct hull_error *err = NULL;
	_cleanup_free_ char *abs = NULL;

	for (size_t i = 0; i < ELEMENTSOF(vm_flags); i++) {
		if (vm_flags[i].opt != c)
			continue;
		/* Paths relative to where hull runs; the setting takes absolute ones. */
		if (c == OPT_NO_TEMPLATE)
			arg = "false";
		if ((c == OPT_VM_KERNEL || c == OPT_VM_INITRD) && arg[0] != '/') {
			_cleanup_free_ char *cwd = getcwd(NULL, 0);
			abs = xasprintf("%s/%s", cwd ? cwd : ".", arg);
			arg = abs;
		}
		if (vmm_settings_set(&o->vm, vm_flags[i].key, arg, &err) < 0)
			return run_usage_error("%s '%s': %s", vm_flags[i].flag, arg, err->msg);
		return 1;
	}
	return 0;
}

static int parse_dur(const char *opt, const char *s, uint64_t *ret)
{
	if (parse_duration_ms(s, ret) < 0)
		return run_usage_error("%s '%s': want a duration like 30s, 500ms, 5m", opt, s);
	return 0;
}

/* --net none|user|cni:NAME|ns:/PATH */
static int parse_net(struct run_opts *o, const char *arg)
{
	o->net_user = false;
	free(o->netns);
	free(o->cni_net);
	o->netns = o->cni_net = NULL;
	if (strcmp(arg, "user") == 0)
		o->net_user = true;
	else if (strncmp(arg, "ns:", 3) == 0 && arg[3] == '/')
		o->netns = xstrdup(arg + 3);
	else if (strncmp(arg, "cni:", 4) == 0 && id_is_valid(arg + 4))
		o->cni_net = xstrdup(arg + 4);
	else if (strcmp(arg, "none") != 0)
		return run_usage_error("--net '%s': want none, user, cni:NAME or ns:/PATH", arg);
	return 0;
}

/* --log-opt max-size=SIZE | max-file=N, docker's names. */
static int parse_log_opt(struct run_opts *o, const char *arg)
{
	uint64_t v;
	char *end;

	if (strncmp(arg, "max-size=", 9) == 0) {
		if (parse_size(arg + 9, &v) < 0 || v < 4096 || v > (1ull << 40))
			return run_usage_error("--log-opt '%s': want a size from 4K, like 10M",
			                       arg);
		o->log_max_size = v;
		return 0;
	}
	if (strncmp(arg, "max-file=", 9) == 0) {
		unsigned long n = strtoul(arg + 9, &end, 10);
		if (!arg[9] || *end || n < 1 || n > 100)
			return run_usage_error("--log-opt '%s': want max-file=1 to 100", arg);
		o->log_max_files = (unsigned)n;
		return 0;
	}
	return run_usage_error("--log-opt '%s': want max-size=SIZE or max-file=N", arg);
}

/* The options of the container's process and its sandbox. */
static int parse_option(struct run_opts *o, int c, const char *arg, char ***cli_env,
                        const char **env_file)
{
	int r;

	switch (c) {
	case OPT_ROOTFS:
		free(o->rootfs);
		o->rootfs = xstrdup(arg);
		return 0;
	case OPT_ENTRYPOINT:
		free(o->entrypoint);
		o->entrypoint = xstrdup(arg);
		return 0;
	case OPT_BUNDLE:
		free(o->bundle_dir);
		o->bundle_dir = xstrdup(arg);
		return 0;
	case OPT_ROOTFS_RW:
		o->rootfs_rw = true;
		return 0;
	case 'e':
		strv_push(cli_env, xstrdup(arg));
		return 0;
	case OPT_ENV_FILE:
		*env_file = arg;
		return 0;
	case 'w':
		if (arg[0] != '/')
			return run_usage_error("--workdir '%s': must be an absolute path", arg);
		free(o->workdir);
		o->workdir = xstrdup(arg);
		return 0;
	case 'u':
		o->user_set = true;
		return parse_user(arg, o);
	case 'v':
		return parse_volume(arg, o);
	case OPT_HOSTNAME:
		/* It also lands in /etc/hosts: no spaces or control characters. */
		if (strlen(arg) == 0 || strlen(arg) > 64 ||
		    strcspn(arg, " \t\r\n\v\f") != strlen(arg))
			return run_usage_error(
			    "--hostname '%s': want 1 to 64 characters, no spaces", arg);
		free(o->hostname);
		o->hostname = xstrdup(arg);
		return 0;
	case 'i':
		o->interactive = true;
		return 0;
	case 't':
		o->tty = true;
		return 0;
	case OPT_TIMEOUT:
		r = parse_dur("--timeout", arg, &o->timeout_ms);
		if (r == 0 && o->timeout_ms == 0)
			r = run_usage_error("--timeout '%s': must be more than 0", arg);
		return r;
	case OPT_STOP_TIMEOUT:
		return parse_dur("--stop-timeout", arg, &o->stop_timeout_ms);
	case OPT_LOG_LEVEL:
		r = log_level_from_string(arg);
		if (r < 0)
			return run_usage_error("--log-level '%s': want error, warn, info or debug",
			                       arg);
		log_set_level((enum log_level)r);
		o->debug = r == LOG_LEVEL_DEBUG;
		return 0;
	case OPT_LOG_OPT:
		return parse_log_opt(o, arg);
	case OPT_NET:
		return parse_net(o, arg);
	case 'p':
		return parse_publish(arg, o);
	case OPT_PRIVILEGED:
		o->privileged = true;
		return 0;
	case 'd':
		o->detach = true;
		return 0;
	case OPT_NAME:
		if (!id_is_valid(arg))
			return run_usage_error("--name '%s': want 1 to 64 of [A-Za-z0-9_.-]", arg);
		free(o->name);
		o->name = xstrdup(arg);
		return 0;
	default:
		return run_usage_error("unknown option");
	}
}

/* What only makes sense together, checked once every option is read. */
static int check_combinations(struct run_opts *o, int argc, char **argv, char **cli_env,
                              const char *env_file)
{
	if (o->hostfwd && !o->net_user && !o->cni_net)
		return run_usage_error("-p publishes ports of a networked sandbox: add --net=user "
		                       "or --net=cni:NAME");
	if ((o->log_max_size || o->log_max_files) && !o->detach)
		return run_usage_error("--log-opt sets the log of a detached sandbox: add -d");
	if (o->detach && (o->interactive || o->tty))
		return run_usage_error("-d cannot take -i or -t (use hull exec -i -t)");
	/* With a bundle the spec decides the process: flags that would contradict it are
	 * refused. */
	if (o->bundle_dir &&
	    (o->rootfs || o->entrypoint || optind < argc || cli_env || env_file || o->workdir ||
	     o->uid || o->gid || o->n_vols || o->hostname || o->tty || o->rootfs_rw))
		return run_usage_error("--bundle takes the command, user, env, mounts and terminal "
		                       "from config.json: drop --rootfs/-e/-w/-u/-v/-t/--hostname "
		                       "and CMD");
	if (!o->bundle_dir && o->rootfs && o->entrypoint)
		return run_usage_error("--entrypoint goes with an IMAGE, not --rootfs");
	(void)argv;
	return 0;
}

/* Environment: defaults, the image's, then --env-file, then -e, later entries winning. */
static int build_env(struct run_opts *o, char **cli_env, const char *env_file)
{
	_cleanup_free_ char *home = xasprintf("HOME=%s", o->uid == 0 ? "/root" : "/");
	int r;

	env_set(&o->env, DEFAULT_PATH);
	env_set(&o->env, home);
	if (o->tty)
		env_set(&o->env, "TERM=xterm");
	for (char **e = o->image_env; e && *e; e++)
		if (strchr(*e, '='))
			env_set(&o->env, *e);
	if (env_file) {
		r = env_file_load(&o->env, env_file);
		if (r < 0)
			return r;
	}
	for (char **e = cli_env; e && *e; e++) {
		r = env_add_arg(&o->env, *e, "--env");
		if (r < 0)
			return r;
	}
	return 0;
}

int run_parse_args(int argc, char **argv, struct run_opts *o)
{
	_cleanup_strv_free_ char **cli_env = NULL;
	const char *env_file = NULL;
	int c, r;

	*o = (struct run_opts){.stop_timeout_ms = 10000};
	vmm_settings_init(&o->vm);
	optind = 1;
	/* '+': options end at the first non-option (CMD), as with docker run. */
	while ((c = getopt_long(argc, argv, "+e:w:u:v:itm:hdp:", long_opts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return 1;
		}
		r = parse_vm_option(o, c, optarg);
		if (r == 0)
			r = parse_option(o, c, optarg, &cli_env, &env_file);
		if (r < 0)
			return r;
	}
	r = check_combinations(o, argc, argv, cli_env, env_file);
	if (r < 0)
		return r;
	if (o->bundle_dir)
		return 0;
	if (!o->rootfs) {
		/* hull run IMAGE [--] [CMD...]: the image's config fills in what is not given. */
		if (optind >= argc)
			return run_usage_error("no image given: hull run [OPTIONS] IMAGE [CMD...], "
			                       "or --rootfs DIR -- CMD");
		r = image_prepare(o, argv[optind],
		                  argv + optind + 1 +
		                      (optind + 1 < argc && strcmp(argv[optind + 1], "--") == 0));
		if (r < 0)
			return r;
	} else {
		if (optind >= argc)
			return run_usage_error(
			    "no command given: hull run [OPTIONS] --rootfs DIR -- CMD [ARG...]");
		o->cmd = argv + optind;
	}
	return build_env(o, cli_env, env_file);
}
