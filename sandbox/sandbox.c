/* SPDX-License-Identifier: MIT */
/* A sandbox's life: state dir, QEMU, the boot (agent channel, Check, the guest's network)
 * as a sequence of steps driven by the caller's event loop, then supervision (the VM's
 * exit, the channel's end) and the stop. */
#include "sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#include "agent.pb-c.h"
#include "cni.h"
#include "log.h"
#include "util.h"

#define AGENT_SERVICE "hull.agent.v1.Agent"
#define NAT_MAC "52:54:00:12:34:56"
#define CONFIGURE_TIMEOUT_MS 30000
#define VSOCK_RETRY_MS 10

static char *random_id(void)
{
	uint8_t b[6];
	if (getrandom(b, sizeof(b), 0) != sizeof(b))
		abort();
	return xasprintf("%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
}

static void try_connect_deferred(void *userdata);

static void sandbox_free(struct sandbox *sb)
{
	if (!sb)
		return;
	sb->agent = ttrpc_client_free(sb->agent);
	if (sb->exit_fd >= 0)
		event_del(sb->loop, sb->exit_fd);
	if (sb->retry_fd >= 0) {
		event_del(sb->loop, sb->retry_fd);
		close(sb->retry_fd);
	}
	if (sb->connect_fd >= 0) {
		event_del(sb->loop, sb->connect_fd);
		close(sb->connect_fd);
	}
	sb->vm = vmm_free(sb->vm);
	/* QEMU is gone: the taps can go. */
	sandbox_net_detach(sb->net);
	free(sb->nics);
	if (sb->state_dir)
		sandbox_remove_state(sb->state_dir);
	free(sb->state_dir);
	free(sb->shared_dir);
	free(sb->kernel);
	free(sb->initrd);
	free(sb->qemu);
	free(sb->id);
	hull_error_free(sb->kill_reason);
	event_defer_cancel(sb->loop, try_connect_deferred, sb);
	free(sb);
}

/* Prefix err with the boot failure and the console's last lines. */
static void boot_error_tail(struct sandbox *sb, struct hull_error *err)
{
	_cleanup_free_ char *tail = sandbox_console_tail(sb, 1536);
	size_t n = strlen(tail);
	while (n > 0 && (tail[n - 1] == '\n' || tail[n - 1] == '\r'))
		tail[--n] = '\0';
	if (n > 0) {
		char *msg = xasprintf("%s\n--- guest console (last lines) ---\n%s", err->msg, tail);
		free(err->msg);
		err->msg = msg;
	}
}

static struct hull_error *error_new(int code, const char *msg)
{
	struct hull_error *e = NULL;
	hull_error_set(&e, code, "%s", msg);
	return e;
}

/* The boot ended: tell the owner once. */
static void boot_done(struct sandbox *sb, int r, struct hull_error *err)
{
	if (sb->boot_done || sb->stopping) {
		hull_error_free(err);
		return;
	}
	sb->boot_done = true;
	if (r < 0) {
		if (!err)
			hull_error_set(&err, r, "%s", strerror(-r));
		hull_error_prefix(&err, "boot VM");
		boot_error_tail(sb, err);
		sb->ops->ready(sb, err->code, err, sb->userdata);
		hull_error_free(err);
		return;
	}
	sb->ready = true;
	sb->t_ready_ns = sandbox_now_ns();
	sb->ops->ready(sb, 0, NULL, sb->userdata);
}

/* After the boot: the VM or its channel is gone. */
static void lose(struct sandbox *sb, struct hull_error *err)
{
	if (sb->kill_reason) {
		/* Killed by us: that is the reason, not the exit or EOF it caused. */
		hull_error_free(err);
		err = error_new(sb->kill_reason->code, sb->kill_reason->msg);
	}
	if (!sb->boot_done) {
		boot_done(sb, err->code, err);
		return;
	}
	if (sb->lost || sb->stopping) {
		hull_error_free(err);
		return;
	}
	sb->lost = true;
	sb->ops->lost(sb, err, sb->userdata);
	hull_error_free(err);
}

static void on_vm_exit(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct sandbox *sb = userdata;
	struct hull_error *e = NULL;
	(void)revents;
	event_del(loop, fd);
	sb->exit_fd = -1;
	(void)sb->vm->ops->exited(sb->vm);
	hull_error_set(&e, -ECHILD, "the VM exited (QEMU status %d)", sb->vm->exit_status);
	lose(sb, e);
}

static void on_agent_error(struct ttrpc_client *c, const struct hull_error *err, void *userdata)
{
	struct sandbox *sb = userdata;
	struct hull_error *e = NULL;
	(void)c;
	if (err->code != -EPROTO && sb->vm && sb->vm->ops->exited(sb->vm)) {
		/* The channel closed because QEMU is gone: that says more. */
		hull_error_set(&e, -ECHILD, "the VM exited (QEMU status %d)", sb->vm->exit_status);
		lose(sb, e);
		return;
	}
	e = error_new(err->code, err->msg);
	hull_error_prefix(&e, "agent channel");
	if (err->code == -EPROTO && sb->vm) {
		/* Security: a guest that broke the channel is not left running. */
		log_warn("%s: the sandbox's VM is stopped", e->msg);
		sb->vm->ops->stop(sb->vm, 0);
	}
	lose(sb, e);
}

/* ---- the boot, step by step ------------------------------------------------------- */

static void on_net_configured(struct ttrpc_client *c, int code, const char *message,
                              const uint8_t *payload, size_t len, void *userdata)
{
	struct sandbox *sb = userdata;
	(void)c, (void)payload, (void)len;
	if (code) {
		struct hull_error *e = error_new(ttrpc_errno_from_code(code), message);
		hull_error_prefix(&e, "configure the guest's network");
		boot_done(sb, e->code, e);
		return;
	}
	if (--sb->net_calls == 0)
		boot_done(sb, 0, NULL);
}

static bool configure_call(struct sandbox *sb, const Hull__Agent__V1__ConfigureNetworkRequest *req)
{
	if (!ttrpc_client_call(sb->agent, "ConfigureNetwork", &req->base, 0, CONFIGURE_TIMEOUT_MS,
	                       on_net_configured, NULL, sb))
		return false;
	sb->net_calls++;
	return true;
}

/* Tell the guest about its NICs: QEMU's NAT as its built-in DHCP would hand it out,
 * and the pod namespace's interfaces as CNI made them. */
static void configure_guest_net(struct sandbox *sb)
{
	bool ok = true;

	if (sb->net_user) {
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
		ok = configure_call(sb, &net);
	}
	if (ok && sb->net && sb->net->n_nics) {
		Hull__Agent__V1__ConfigureNetworkRequest *net = sandbox_net_request(sb->net);
		ok = configure_call(sb, net);
		sandbox_net_request_free(net);
	}
	if (!ok)
		return; /* the client failed: on_agent_error reports it */
	if (sb->net_calls == 0)
		boot_done(sb, 0, NULL);
}

static void on_check(struct ttrpc_client *c, int code, const char *message, const uint8_t *payload,
                     size_t len, void *userdata)
{
	struct sandbox *sb = userdata;
	Hull__Agent__V1__CheckResponse *resp;
	(void)c;

	if (code == TTRPC_DEADLINE_EXCEEDED) {
		struct hull_error *e = NULL;
		hull_error_set(&e, -ETIMEDOUT, "Check: no answer from the agent in %llu ms",
		               (unsigned long long)sb->boot_timeout_ms);
		boot_done(sb, -ETIMEDOUT, e);
		return;
	}
	if (code) {
		boot_done(sb, ttrpc_errno_from_code(code),
		          error_new(ttrpc_errno_from_code(code), message));
		return;
	}
	resp = hull__agent__v1__check_response__unpack(NULL, len, payload);
	if (!resp) {
		boot_done(sb, -EPROTO,
		          error_new(-EPROTO, "protocol violation: the agent's Check reply does "
		                             "not decode"));
		return;
	}
	log_debug("agent %.32s ready", resp->version);
	hull__agent__v1__check_response__free_unpacked(resp, NULL);
	configure_guest_net(sb);
}

static int boot_left_ms(struct sandbox *sb)
{
	uint64_t now = sandbox_now_ns();
	return now >= sb->boot_deadline_ns ? 1 : (int)((sb->boot_deadline_ns - now) / 1000000u) + 1;
}

/* The channel is connected: the boot is done when the agent answers Check. */
static void agent_connected(struct sandbox *sb, int fd)
{
	Hull__Agent__V1__CheckRequest check = HULL__AGENT__V1__CHECK_REQUEST__INIT;
	int r;

	sb->agent = ttrpc_client_new(fd, AGENT_SERVICE);
	r = ttrpc_client_attach(sb->agent, sb->loop, on_agent_error, sb);
	if (r < 0) {
		boot_done(sb, r, error_new(r, "agent channel: event loop"));
		return;
	}
	if (!ttrpc_client_call(sb->agent, "Check", &check.base, 0, boot_left_ms(sb), on_check, NULL,
	                       sb))
		boot_done(sb, -EIO, error_new(-EIO, "agent channel: Check could not be sent"));
}

static void try_connect(struct sandbox *sb);

static void on_connecting(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct sandbox *sb = userdata;
	int soerr = 0;
	socklen_t l = sizeof(soerr);
	(void)revents;

	event_del(loop, fd);
	sb->connect_fd = -1;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &l) < 0)
		soerr = errno;
	if (soerr == 0) {
		agent_connected(sb, fd);
		return;
	}
	close(fd);
	if (soerr == ECONNRESET || soerr == ECONNREFUSED || soerr == ETIMEDOUT || soerr == ENODEV) {
		/* Not listening yet: again shortly, until the boot timeout. */
		struct itimerspec its = {.it_value = {.tv_nsec = VSOCK_RETRY_MS * 1000000L}};
		if (sandbox_now_ns() < sb->boot_deadline_ns) {
			timerfd_settime(sb->retry_fd, 0, &its, NULL);
			return;
		}
		boot_done(sb, -ETIMEDOUT,
		          error_new(-ETIMEDOUT, "the agent did not listen on vsock in time"));
		return;
	}
	boot_done(sb, -soerr, error_new(-soerr, "connect agent over vsock"));
}

static void try_connect_deferred(void *userdata)
{
	try_connect(userdata);
}

static void on_retry(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	uint64_t ticks;
	(void)loop, (void)revents;
	(void)!read(fd, &ticks, sizeof(ticks));
	try_connect(userdata);
}

static void try_connect(struct sandbox *sb)
{
	struct hull_error *e = NULL;
	int fd = -1, r;

	r = sb->vm->ops->connect_agent(sb->vm, &fd, &e);
	if (r == -EAGAIN) {
		struct itimerspec its = {.it_value = {.tv_nsec = VSOCK_RETRY_MS * 1000000L}};
		timerfd_settime(sb->retry_fd, 0, &its, NULL);
		return;
	}
	if (r < 0) {
		boot_done(sb, r, e);
		return;
	}
	if (sb->vm->cfg.channel == VMM_CHANNEL_SERIAL) {
		agent_connected(sb, fd);
		return;
	}
	/* vsock: the connect finishes in the background. */
	sb->connect_fd = fd;
	if (event_add(sb->loop, fd, EPOLLOUT, on_connecting, sb) < 0) {
		close(fd);
		sb->connect_fd = -1;
		boot_done(sb, -errno, error_new(-errno, "agent channel: event loop"));
	}
}

/* ---- start and stop --------------------------------------------------------------- */

/* The state dir: a fresh id (or the name asked for) whose directory does not exist yet;
 * mkdir is the claim. */
static int claim_state_dir(struct sandbox *sb, const char *root, const char *id,
                           struct hull_error **err)
{
	for (int i = 0;; i++) {
		int r;
		sb->id = id ? xstrdup(id) : random_id();
		sb->state_dir = xasprintf("%s/%s", root, sb->id);
		if (mkdir(sb->state_dir, 0700) == 0)
			return 0;
		r = -errno;
		free(sb->state_dir);
		sb->state_dir = NULL;
		if (r == -EEXIST && id)
			return hull_error_set(err, r, "a sandbox named '%s' exists", id);
		free(sb->id);
		sb->id = NULL;
		if (r != -EEXIST || i > 8)
			return hull_error_set_errno(err, r, "create state dir under '%s'", root);
	}
}

static int prepare(struct sandbox *sb, const struct sandbox_config *cfg, struct vmm_config *vc,
                   struct hull_error **err)
{
	_cleanup_free_ char *root =
	    cfg->state_root ? xstrdup(cfg->state_root) : sandbox_default_state_root();
	const char *env_qemu = getenv("HULL_QEMU");
	int r;

	sb->kernel =
	    cfg->vm->kernel ? xstrdup(cfg->vm->kernel) : sandbox_default_guest_file("vmlinuz");
	sb->initrd = cfg->vm->initrd ? xstrdup(cfg->vm->initrd)
	                             : sandbox_default_guest_file("initramfs.cpio");
	sb->qemu = xstrdup(cfg->vm->qemu           ? cfg->vm->qemu
	                   : env_qemu && *env_qemu ? env_qemu
	                                           : "qemu-system-x86_64");
	r = vmm_accel_resolve(cfg->vm->accel, &vc->accel, err);
	if (r < 0)
		return r;
	if (access(sb->kernel, R_OK) < 0)
		return hull_error_set_errno(err, -errno, "kernel '%s'", sb->kernel);
	if (access(sb->initrd, R_OK) < 0)
		return hull_error_set_errno(err, -errno, "initrd '%s'", sb->initrd);
	r = mkdir_p(root, 0700);
	if (r < 0)
		return hull_error_set_errno(err, r, "create state root '%s'", root);
	sandbox_sweep_stale(root);
	cni_sweep(root, sandbox_owner);
	r = claim_state_dir(sb, root, cfg->id, err);
	if (r < 0)
		return r;
	sandbox_write_owner(sb->state_dir);
	log_set_sandbox(sb->id);
	sb->shared_dir = xasprintf("%s/shared", sb->state_dir);
	/* 0711: containers with user namespaces in the guest traverse it (pod-create.c). */
	if (mkdir(sb->shared_dir, 0711) < 0 || chmod(sb->shared_dir, 0711) < 0)
		return hull_error_set_errno(err, -errno, "mkdir '%s'", sb->shared_dir);
	sb->share = (struct vmm_share){.tag = SANDBOX_SHARED_TAG, .path = sb->shared_dir};

	vc->qemu = sb->qemu;
	vc->kernel = sb->kernel;
	vc->initrd = sb->initrd;
	vc->state_dir = sb->state_dir;
	vc->name = sb->id;
	vc->machine = cfg->vm->machine;
	vc->channel = cfg->vm->channel >= 0
	                  ? (enum vmm_channel)cfg->vm->channel
	                  : (vmm_vsock_available() ? VMM_CHANNEL_VSOCK : VMM_CHANNEL_SERIAL);
	vc->vsock_cid = 3 + (uint32_t)(sandbox_now_ns() % 0x7fff0000u);
	vc->cpus = cfg->vm->cpus;
	vc->memory_mib = cfg->vm->memory_mib;
	vc->shares = &sb->share;
	vc->n_shares = 1;
	vc->disks = cfg->disks;
	vc->n_disks = cfg->n_disks;
	vc->net_user = cfg->net_user;
	vc->net_mac = NAT_MAC;
	vc->hostfwd = cfg->hostfwd;
	sb->net_user = cfg->net_user;
	if (cfg->netns) {
		r = sandbox_net_attach(cfg->netns, &sb->net, err);
		if (r < 0)
			return r;
		sb->nics = xcalloc(sb->net->n_nics + 1, sizeof(*sb->nics));
		for (size_t i = 0; i < sb->net->n_nics; i++)
			sb->nics[i] = (struct vmm_nic){.fd = sb->net->nics[i].tap_fd,
			                               .mac = sb->net->nics[i].mac,
			                               .mtu = sb->net->nics[i].mtu};
		vc->nics = sb->nics;
		vc->n_nics = sb->net->n_nics;
		vc->vhost_net =
		    vc->accel == VMM_ACCEL_KVM && access("/dev/vhost-net", R_OK | W_OK) == 0;
	}
	vc->debug = cfg->debug;
	vc->sandbox = true;
	return 0;
}

int sandbox_start(struct event_loop *loop, const struct sandbox_config *cfg,
                  const struct sandbox_ops *ops, void *userdata, struct sandbox **ret,
                  struct hull_error **err)
{
	struct sandbox *sb = xcalloc(1, sizeof(*sb));
	struct vmm_config vc = {0};
	int r;

	sb->loop = loop;
	sb->ops = ops;
	sb->userdata = userdata;
	sb->exit_fd = sb->retry_fd = sb->connect_fd = -1;
	sb->t_start_ns = sandbox_now_ns();
	sb->boot_timeout_ms = cfg->vm->boot_timeout_ms;
	sb->boot_deadline_ns = sb->t_start_ns + cfg->vm->boot_timeout_ms * 1000000u;
	r = prepare(sb, cfg, &vc, err);
	if (r < 0)
		goto fail;
	log_debug("accel %s, machine %s, channel %s", vmm_accel_to_string(vc.accel),
	          vmm_machine_to_string(vc.machine),
	          vc.channel == VMM_CHANNEL_VSOCK ? "vsock" : "serial");
	sb->retry_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (sb->retry_fd < 0 || event_add(loop, sb->retry_fd, EPOLLIN, on_retry, sb) < 0) {
		r = hull_error_set_errno(err, -errno, "timer");
		if (sb->retry_fd >= 0)
			close(sb->retry_fd);
		sb->retry_fd = -1;
		goto fail;
	}
	sb->vm = vmm_new(&vmm_qemu_ops, &vc);
	r = sb->vm->ops->start(sb->vm, err);
	if (r < 0) {
		hull_error_prefix(err, "start VM");
		goto fail;
	}
	sb->t_vmm_ns = sandbox_now_ns();
	sb->exit_fd = sb->vm->ops->exit_fd(sb->vm);
	if (sb->exit_fd >= 0 && event_add(loop, sb->exit_fd, EPOLLIN, on_vm_exit, sb) < 0) {
		sb->exit_fd = -1;
		r = hull_error_set_errno(err, -errno, "watch the VM");
		goto fail;
	}
	/* From the loop: the owner hears how the boot went only after it holds *ret. */
	event_defer(loop, try_connect_deferred, sb);
	*ret = sb;
	return 0;
fail:
	sandbox_free(sb);
	log_set_sandbox(NULL);
	return r;
}

void sandbox_kill(struct sandbox *sb, const struct hull_error *err)
{
	if (sb->kill_reason || !sb->vm || sb->vm->ops->exited(sb->vm))
		return;
	log_warn("stopping the VM: %s", err->msg);
	sb->kill_reason = error_new(err->code, err->msg);
	/* The exit comes through the pidfd, from the loop; lost (or ready) then gives the
	 * reason recorded here. */
	sb->vm->ops->stop(sb->vm, 0);
}

struct sandbox *sandbox_fake(struct event_loop *loop, int fd, const char *shared_dir)
{
	struct sandbox *sb = xcalloc(1, sizeof(*sb));
	sb->loop = loop;
	sb->exit_fd = sb->retry_fd = sb->connect_fd = -1;
	sb->id = xstrdup("fake");
	sb->shared_dir = shared_dir ? xstrdup(shared_dir) : NULL;
	sb->agent = ttrpc_client_new(fd, AGENT_SERVICE);
	if (fd >= 0 && ttrpc_client_attach(sb->agent, loop, NULL, NULL) < 0)
		abort();
	sb->ready = sb->boot_done = true;
	return sb;
}

struct sandbox *sandbox_stop(struct sandbox *sb, int timeout_ms)
{
	Hull__Agent__V1__Empty e = HULL__AGENT__V1__EMPTY__INIT;

	if (!sb)
		return NULL;
	/* The owner is going away: nothing is reported to it from here on. */
	sb->stopping = true;
	if (!sb->vm) {
		/* sandbox_fake()'s: nothing runs. */
		sandbox_free(sb);
		return NULL;
	}
	if (sb->agent && !ttrpc_client_failed(sb->agent, NULL) && !sb->vm->ops->exited(sb->vm)) {
		/* Ask the guest to power off; it answers first, then QEMU exits. A guest
		 * that does not gets timeout_ms, then QEMU is stopped by force. */
		if (ttrpc_client_call_sync(sb->agent, "DestroySandbox", &e.base, NULL, NULL,
		                           timeout_ms, NULL) == 0) {
			struct pollfd pfd = {.fd = sb->vm->ops->exit_fd(sb->vm), .events = POLLIN};
			(void)poll(&pfd, 1, timeout_ms);
		}
	}
	/* No callback after this point: the client's pending calls go without theirs. */
	sb->agent = ttrpc_client_free(sb->agent);
	sb->vm->ops->stop(sb->vm, (unsigned)timeout_ms);
	sandbox_free(sb);
	log_set_sandbox(NULL);
	return NULL;
}
