/* SPDX-License-Identifier: MIT */
#include "sandbox.h"

#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <time.h>

#include "agent.pb-c.h"
#include "cni.h"
#include "log.h"
#include "util.h"

#define DEFAULT_BOOT_TIMEOUT_MS 30000
#define NAT_MAC "52:54:00:12:34:56"

uint64_t sandbox_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

char *sandbox_default_guest_file(const char *name)
{
	const char *env = getenv(strcmp(name, "vmlinuz") == 0 ? "HULL_KERNEL" : "HULL_INITRD");
	char exe[4096];
	ssize_t n;

	if (env && *env)
		return xstrdup(env);
	/* Next to the binary in the build tree (build/hull -> build/guest/), or the
	 * installed layout (bin/hull -> lib/hull/). */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			char *p = xasprintf("%s/guest/%s", exe, name);
			if (access(p, R_OK) == 0)
				return p;
			free(p);
			p = xasprintf("%s/../lib/hull/%s", exe, name);
			if (access(p, R_OK) == 0)
				return p;
			free(p);
		}
	}
	return xasprintf("/usr/local/lib/hull/%s", name);
}

char *sandbox_default_state_root(void)
{
	const char *env = getenv("HULL_STATE_DIR");
	if (env && *env)
		return xstrdup(env);
	if (geteuid() == 0)
		return xstrdup("/run/hull");
	env = getenv("XDG_RUNTIME_DIR");
	if (env && *env)
		return xasprintf("%s/hull", env);
	return xasprintf("/tmp/hull-%u", (unsigned)geteuid());
}

/* A mountinfo path field: octal escapes (\040 for space) decoded in place. */
static void unescape_octal(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

int sandbox_unmount_below(const char *dir)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	_cleanup_strv_free_ char **points = NULL;
	_cleanup_free_ char *line = NULL;
	size_t cap = 0, n = 0, dlen = strlen(dir);
	int count = 0;

	if (!f)
		return 0;
	while (getline(&line, &cap, f) > 0) {
		char mp[4096];
		/* id parent major:minor root mount-point ... */
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
			continue;
		unescape_octal(mp);
		if (strncmp(mp, dir, dlen) == 0 && mp[dlen] == '/') {
			points = xrealloc(points, (n + 2) * sizeof(char *));
			points[n++] = xstrdup(mp);
			points[n] = NULL;
		}
	}
	/* Later lines are mounted later, so on top or deeper: undo them first. */
	for (size_t i = n; i-- > 0;)
		if (umount2(points[i], MNT_DETACH) == 0)
			count++;
	return count;
}

void sandbox_remove_state(const char *dir)
{
	(void)sandbox_unmount_below(dir);
	rm_tree(dir);
}

char *sandbox_console_tail(struct sandbox *sb, size_t max)
{
	_cleanup_free_ char *path = vmm_console_path(sb->state_dir);
	return vmm_file_tail(path, max);
}

/* Field 22 of /proc/PID/stat: when the process started, to tell a live owner from a
 * recycled pid. 0 when the process does not exist or is a zombie (a killed shim waits
 * as one until containerd, its subreaper, reaps it). */
static unsigned long long proc_start_time(pid_t pid)
{
	_cleanup_free_ char *path = xasprintf("/proc/%d/stat", (int)pid);
	char buf[1024];
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	unsigned long long start = 0;
	ssize_t n;
	char *p;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* comm may hold spaces and parens */
	if (!p)
		return 0;
	/* After ")": state is field 3; starttime is field 22, 19 fields on. */
	char state = 0;
	if (sscanf(
	        p + 1,
	        " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
	        &state, &start) != 2)
		return 0;
	return state == 'Z' || state == 'X' ? 0 : start;
}

static void write_owner(const char *state_dir)
{
	_cleanup_free_ char *path = xasprintf("%s/owner", state_dir);
	_cleanup_free_ char *line =
	    xasprintf("%d %llu\n", (int)getpid(), proc_start_time(getpid()));
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0)
		(void)write_all(fd, line, strlen(line));
}

/* Remove state dirs whose owning process is gone (a hull or shim killed with SIGKILL:
 * its QEMU died with it through PDEATHSIG, but nobody removed the directory). */
/* The owner file's pid when that process still runs (same start time), 0 when it is
 * gone, -ENOENT without an owner file, -EBADMSG while it is being written. */
static int owner_of(const char *state_dir)
{
	_cleanup_free_ char *path = xasprintf("%s/owner", state_dir);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	unsigned long long start = 0;
	int pid = 0;
	if (!f)
		return -errno;
	if (fscanf(f, "%d %llu", &pid, &start) != 2 || pid <= 0)
		return -EBADMSG;
	return proc_start_time(pid) == start ? pid : 0;
}

int sandbox_owner(const char *state_dir)
{
	int pid = owner_of(state_dir);
	return pid > 0 ? pid : 0;
}

void sandbox_sweep_stale(const char *root)
{
	_cleanup_(closedirp) DIR *d = opendir(root);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		_cleanup_free_ char *dir = NULL;
		struct stat st;
		int owner;

		/* Dot entries are not sandboxes (the shim's sockets live in .s/). */
		if (de->d_name[0] == '.')
			continue;
		dir = xasprintf("%s/%s", root, de->d_name);
		owner = owner_of(dir);
		if (owner == -ENOENT) {
			/* No owner file: being created right now, or half-made by a process
			 * killed before it wrote one. Only old directories go. */
			if (lstat(dir, &st) == 0 && S_ISDIR(st.st_mode) &&
			    st.st_mtime + 60 < time(NULL))
				rm_tree(dir);
			continue;
		}
		if (owner != 0)
			continue; /* alive, or its owner file is being written */
		log_debug("removing stale sandbox state '%s' (owner gone)", dir);
		sandbox_remove_state(dir);
	}
}

static char *random_id(void)
{
	uint8_t b[6];
	if (getrandom(b, sizeof(b), 0) != sizeof(b))
		abort();
	return xasprintf("%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
}

static void sandbox_free(struct sandbox *sb)
{
	if (!sb)
		return;
	sb->ac = agent_client_free(sb->ac);
	sb->vm = vmm_free(sb->vm);
	/* QEMU is gone: the taps can go. */
	sandbox_net_detach(sb->net);
	free(sb->nics);
	if (sb->state_dir)
		sandbox_remove_state(sb->state_dir);
	free(sb->state_dir);
	free(sb->shared_dir);
	free(sb->shares);
	free(sb->files_dir);
	free(sb->id);
	free(sb);
}

#define MAX_FILE_COPY (16u << 20)

int sandbox_copy_file(const char *src, const char *dst, struct hull_error **err)
{
	_cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC), out = -1;
	struct stat st;
	char buf[65536];
	ssize_t n;

	if (in < 0 || fstat(in, &st) < 0)
		return hull_error_set_errno(err, -errno, "copy '%s'", src);
	if (!S_ISREG(st.st_mode) || st.st_size > MAX_FILE_COPY)
		return hull_error_set(err, -EFBIG,
		                      "copy '%s': not a regular file of at most 16 MiB", src);
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 0777);
	if (out < 0)
		return hull_error_set_errno(err, -errno, "copy to '%s'", dst);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write_all(out, buf, (size_t)n) < 0)
			return hull_error_set_errno(err, -errno, "copy to '%s'", dst);
	return n < 0 ? hull_error_set_errno(err, -errno, "copy '%s'", src) : 0;
}

/* Prefix *err with the boot failure and the console's last lines. */
static int boot_error(struct sandbox *sb, struct hull_error **err)
{
	_cleanup_free_ char *tail = sandbox_console_tail(sb, 1536);
	size_t n = strlen(tail);
	while (n > 0 && (tail[n - 1] == '\n' || tail[n - 1] == '\r'))
		tail[--n] = '\0';
	if (n > 0) {
		char *msg =
		    xasprintf("%s\n--- guest console (last lines) ---\n%s", (*err)->msg, tail);
		free((*err)->msg);
		(*err)->msg = msg;
	}
	return hull_error_prefix(err, "boot VM");
}

/* Tell the guest about its NICs: QEMU's NAT as its built-in DHCP would hand it out,
 * and the pod namespace's interfaces as CNI made them. */
static int configure_guest_net(struct sandbox *sb, const struct sandbox_config *cfg,
                               struct hull_error **err)
{
	int timeout = cfg->boot_timeout_ms > 0 ? cfg->boot_timeout_ms : DEFAULT_BOOT_TIMEOUT_MS;
	int r = 0;

	if (cfg->net_user) {
		Hull__Agent__V1__ConfigureNetworkRequest net =
		    HULL__AGENT__V1__CONFIGURE_NETWORK_REQUEST__INIT;
		Hull__Agent__V1__NetworkInterface nic = HULL__AGENT__V1__NETWORK_INTERFACE__INIT;
		Hull__Agent__V1__Route route = HULL__AGENT__V1__ROUTE__INIT;
		Hull__Agent__V1__NetworkInterface *nics[] = {&nic};
		Hull__Agent__V1__Route *routes[] = {&route};
		char *addrs[] = {(char *)SANDBOX_NAT_GUEST "/24"};
		nic.mac = (char *)NAT_MAC;
		nic.addresses = addrs;
		nic.n_addresses = 1;
		route.destination = (char *)"default";
		route.gateway = (char *)"10.0.2.2";
		net.interfaces = nics;
		net.n_interfaces = 1;
		net.routes = routes;
		net.n_routes = 1;
		r = agent_client_call_sync(sb->ac, "ConfigureNetwork", &net.base, NULL, NULL,
		                           timeout, err);
	}
	if (r >= 0 && sb->net && sb->net->n_nics) {
		Hull__Agent__V1__ConfigureNetworkRequest *net = sandbox_net_request(sb->net);
		r = agent_client_call_sync(sb->ac, "ConfigureNetwork", &net->base, NULL, NULL,
		                           timeout, err);
		sandbox_net_request_free(net);
	}
	if (r < 0)
		hull_error_prefix(err, "configure the guest's network");
	return r;
}

int sandbox_start(const struct sandbox_config *cfg, struct sandbox **ret, struct hull_error **err)
{
	struct sandbox *sb = xcalloc(1, sizeof(*sb));
	_cleanup_free_ char *root =
	    cfg->state_root ? xstrdup(cfg->state_root) : sandbox_default_state_root();
	struct vmm_config vc = {0};
	enum vmm_accel accel;
	ProtobufCMessage *reply = NULL;
	Hull__Agent__V1__CheckRequest check = HULL__AGENT__V1__CHECK_REQUEST__INIT;
	int fd = -1, r;

	sb->t_start_ns = sandbox_now_ns();
	r = vmm_accel_resolve(cfg->accel, &accel, err);
	if (r < 0)
		goto fail;
	for (const char *const *p = (const char *const[]){cfg->kernel, cfg->initrd, NULL}; *p; p++)
		if (access(*p, R_OK) < 0) {
			r = hull_error_set_errno(err, -errno, "%s '%s'",
			                         *p == cfg->kernel ? "kernel" : "initrd", *p);
			goto fail;
		}
	r = mkdir_p(root, 0700);
	if (r < 0) {
		hull_error_set_errno(err, r, "create state root '%s'", root);
		goto fail;
	}
	sandbox_sweep_stale(root);
	cni_sweep(root, sandbox_owner);
	/* A fresh id (or the name asked for) whose directory does not exist yet: mkdir is
	 * the claim. */
	for (int i = 0;; i++) {
		sb->id = cfg->id ? xstrdup(cfg->id) : random_id();
		sb->state_dir = xasprintf("%s/%s", root, sb->id);
		if (mkdir(sb->state_dir, 0700) == 0)
			break;
		r = -errno;
		free(sb->state_dir);
		sb->state_dir = NULL;
		if (r == -EEXIST && cfg->id) {
			hull_error_set(err, r, "a sandbox named '%s' exists", cfg->id);
			goto fail;
		}
		free(sb->id);
		sb->id = NULL;
		if (r != -EEXIST || i > 8) {
			hull_error_set_errno(err, r, "create state dir under '%s'", root);
			goto fail;
		}
	}
	write_owner(sb->state_dir);
	log_set_sandbox(sb->id);

	vc.qemu = cfg->qemu;
	vc.kernel = cfg->kernel;
	vc.initrd = cfg->initrd;
	vc.state_dir = sb->state_dir;
	vc.name = sb->id;
	vc.accel = accel;
	vc.machine = cfg->machine;
	vc.channel = cfg->channel >= 0
	                 ? (enum vmm_channel)cfg->channel
	                 : (vmm_vsock_available() ? VMM_CHANNEL_VSOCK : VMM_CHANNEL_SERIAL);
	vc.vsock_cid = 3 + (uint32_t)(sandbox_now_ns() % 0x7fff0000u);
	vc.cpus = cfg->cpus ? cfg->cpus : 1;
	vc.memory_mib = cfg->memory_mib ? cfg->memory_mib : 256;
	sb->shares = xcalloc(cfg->n_shares + 2, sizeof(*sb->shares));
	for (size_t i = 0; i < cfg->n_shares; i++)
		sb->shares[i] = cfg->shares[i];
	vc.n_shares = cfg->n_shares;
	if (cfg->n_files > 0) {
		sb->files_dir = xasprintf("%s/files", sb->state_dir);
		if (mkdir(sb->files_dir, 0700) < 0) {
			r = hull_error_set_errno(err, -errno, "mkdir '%s'", sb->files_dir);
			goto fail;
		}
		for (size_t i = 0; i < cfg->n_files; i++) {
			_cleanup_free_ char *dst = xasprintf("%s/f%zu", sb->files_dir, i);
			r = sandbox_copy_file(cfg->files[i], dst, err);
			if (r < 0)
				goto fail;
		}
		sb->shares[vc.n_shares++] =
		    (struct vmm_share){.tag = SANDBOX_FILES_TAG, .path = sb->files_dir};
	}
	if (cfg->shared_dir) {
		sb->shared_dir = xasprintf("%s/shared", sb->state_dir);
		if (mkdir(sb->shared_dir, 0700) < 0) {
			r = hull_error_set_errno(err, -errno, "mkdir '%s'", sb->shared_dir);
			goto fail;
		}
		sb->shares[vc.n_shares++] =
		    (struct vmm_share){.tag = SANDBOX_SHARED_TAG, .path = sb->shared_dir};
	}
	vc.shares = sb->shares;
	vc.disks = cfg->disks;
	vc.n_disks = cfg->n_disks;
	vc.net_user = cfg->net_user;
	vc.net_mac = NAT_MAC;
	vc.hostfwd = cfg->hostfwd;
	if (cfg->netns) {
		r = sandbox_net_attach(cfg->netns, &sb->net, err);
		if (r < 0)
			goto fail;
		sb->nics = xcalloc(sb->net->n_nics + 1, sizeof(*sb->nics));
		for (size_t i = 0; i < sb->net->n_nics; i++)
			sb->nics[i] = (struct vmm_nic){.fd = sb->net->nics[i].tap_fd,
			                               .mac = sb->net->nics[i].mac,
			                               .mtu = sb->net->nics[i].mtu};
		vc.nics = sb->nics;
		vc.n_nics = sb->net->n_nics;
		vc.vhost_net = accel == VMM_ACCEL_KVM && access("/dev/vhost-net", R_OK | W_OK) == 0;
	}
	vc.debug = cfg->debug;
	vc.sandbox = true;
	log_debug("accel %s, machine %s, channel %s", vmm_accel_to_string(accel),
	          vmm_machine_to_string(vc.machine),
	          vc.channel == VMM_CHANNEL_VSOCK ? "vsock" : "serial");

	sb->vm = vmm_new(&vmm_qemu_ops, &vc);
	r = sb->vm->ops->start(sb->vm, err);
	if (r < 0) {
		hull_error_prefix(err, "start VM");
		goto fail;
	}
	sb->t_vmm_ns = sandbox_now_ns();
	r = sb->vm->ops->connect_agent(sb->vm, &fd, err);
	if (r < 0) {
		boot_error(sb, err);
		goto fail;
	}
	sb->ac = agent_client_new(fd);
	agent_client_set_interrupt_fd(sb->ac, cfg->interrupt_fd);
	agent_client_set_exit_fd(sb->ac, sb->vm->ops->exit_fd(sb->vm));
	r = agent_client_call_sync(
	    sb->ac, "Check", &check.base, &hull__agent__v1__check_response__descriptor, &reply,
	    cfg->boot_timeout_ms > 0 ? cfg->boot_timeout_ms : DEFAULT_BOOT_TIMEOUT_MS, err);
	if (r < 0) {
		if (r != -EINTR)
			boot_error(sb, err);
		goto fail;
	}
	log_debug("agent %s ready", ((Hull__Agent__V1__CheckResponse *)reply)->version);
	protobuf_c_message_free_unpacked(reply, NULL);
	r = configure_guest_net(sb, cfg, err);
	if (r < 0)
		goto fail;
	sb->t_ready_ns = sandbox_now_ns();
	*ret = sb;
	return 0;

fail:
	sandbox_free(sb);
	log_set_sandbox(NULL);
	return r;
}

struct sandbox *sandbox_stop(struct sandbox *sb, int timeout_ms)
{
	Hull__Agent__V1__Empty e = HULL__AGENT__V1__EMPTY__INIT;

	if (!sb)
		return NULL;
	if (sb->ac && !sb->vm->ops->exited(sb->vm)) {
		/* Ask the guest to power off; it answers first, then QEMU exits. */
		agent_client_set_interrupt_fd(sb->ac, -1);
		if (agent_client_call_sync(sb->ac, "DestroySandbox", &e.base, NULL, NULL,
		                           timeout_ms, NULL) == 0) {
			struct pollfd pfd = {.fd = sb->vm->ops->exit_fd(sb->vm), .events = POLLIN};
			(void)poll(&pfd, 1, timeout_ms);
		}
	}
	sb->vm->ops->stop(sb->vm, (unsigned)timeout_ms);
	sandbox_free(sb);
	log_set_sandbox(NULL);
	return NULL;
}
