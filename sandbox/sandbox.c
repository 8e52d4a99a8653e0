/* SPDX-License-Identifier: MIT */
/* A sandbox's life: state dir, QEMU, the start as a sequence of steps driven by the
 * caller's event loop (a clone restored from its template, or a cold boot: agent
 * channel, Check, Sync, the guest's network), then supervision (the VM's exit, the
 * channel's end) and the stop. The template's own boot and save are steps of the first
 * sandbox that needs it (docs/templates.md). */
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
#define CONFIGURE_TIMEOUT_MS 30000
#define VSOCK_RETRY_MS 10
/* A clone answers Sync in tens of ms; one that has not in this long is given up and
 * the sandbox boots cold. */
#define RESTORE_TIMEOUT_MS 10000
#define RESTORE_POLL_MS 2
#define WAIT_POLL_MS 50
#define SYNC_ENTROPY 64
/* microvm's virtio-mmio transports: rng, the agent channel and the share take three. */
#define VIRTIO_SLOTS 24

static char *random_id(void)
{
	uint8_t b[6];
	if (getrandom(b, sizeof(b), 0) != sizeof(b))
		abort();
	return xasprintf("%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
}

static void try_connect_deferred(void *userdata);
static void template_only_done(void *userdata);

static void close_timer(struct sandbox *sb, int *fd)
{
	if (*fd >= 0) {
		event_del(sb->loop, *fd);
		close(*fd);
	}
	*fd = -1;
}

static void disarm(int fd)
{
	struct itimerspec off = {0};
	if (fd >= 0)
		timerfd_settime(fd, 0, &off, NULL);
}

static void arm(int fd, unsigned ms, bool periodic)
{
	struct itimerspec its = {
	    .it_value = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L}};
	if (periodic)
		its.it_interval = its.it_value;
	timerfd_settime(fd, 0, &its, NULL);
}

/* Let the current VM go (killed if it runs) with everything watching it. */
static void drop_vm(struct sandbox *sb)
{
	sb->agent = ttrpc_client_free(sb->agent);
	if (sb->exit_fd >= 0)
		event_del(sb->loop, sb->exit_fd);
	sb->exit_fd = -1;
	if (sb->connect_fd >= 0) {
		event_del(sb->loop, sb->connect_fd);
		close(sb->connect_fd);
	}
	sb->connect_fd = -1;
	disarm(sb->retry_fd);
	disarm(sb->tick_fd);
	event_defer_cancel(sb->loop, try_connect_deferred, sb);
	sb->vm = vmm_free(sb->vm);
	sb->net_calls = 0;
}

static void sandbox_free(struct sandbox *sb)
{
	if (!sb)
		return;
	drop_vm(sb);
	close_timer(sb, &sb->retry_fd);
	close_timer(sb, &sb->tick_fd);
	/* A build nobody finished: gone, nothing recorded (the owner stopped it). */
	template_build_abort(sb->build, NULL);
	sb->tpl = template_close(sb->tpl);
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
	free(sb->template_id);
	free(sb->domain);
	free(sb->root);
	free(sb->slot_disks);
	free(sb->slot_nics);
	free(sb->slot_macs);
	hull_error_free(sb->kill_reason);
	event_defer_cancel(sb->loop, template_only_done, sb);
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

/* The start ended: tell the owner once. */
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

static void fall_back(struct sandbox *sb, const char *why);

/* A step of the start failed: a cold boot's failure is the start's; a template's
 * (its build, a restore, waiting for a builder) gives a cold boot instead. Takes err. */
static void step_failed(struct sandbox *sb, int r, struct hull_error *err)
{
	_cleanup_free_ char *why = NULL;
	if (!err)
		hull_error_set(&err, r, "%s", strerror(-r));
	if (sb->phase == SANDBOX_BOOT || sb->kill_reason || sb->stopping) {
		boot_done(sb, r, err);
		return;
	}
	why = xstrdup(err->msg);
	hull_error_free(err);
	if (sb->phase == SANDBOX_BUILD) {
		/* The template VM's console tells why its boot failed. */
		_cleanup_free_ char *console = vmm_console_path(sb->vm->cfg.state_dir);
		_cleanup_free_ char *tail = vmm_file_tail(console, 400);
		char *w = xasprintf("%s%s%s", why, *tail ? "; console: " : "", tail);
		free(why);
		why = w;
		drop_vm(sb);
		template_build_abort(sb->build, why);
		sb->build = NULL;
	} else if (sb->phase == SANDBOX_RESTORE) {
		drop_vm(sb);
		template_restore_failed(sb->root, sb->tpl->id, why);
		sb->tpl = template_close(sb->tpl);
	}
	fall_back(sb, why);
}

/* After the start: the VM or its channel is gone. */
static void lose(struct sandbox *sb, struct hull_error *err)
{
	if (sb->kill_reason) {
		/* Killed by us: that is the reason, not the exit or EOF it caused. */
		hull_error_free(err);
		err = error_new(sb->kill_reason->code, sb->kill_reason->msg);
	}
	if (!sb->boot_done) {
		step_failed(sb, err->code, err);
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

/* An agent call's failure as an error: its status, or a timeout that names the step. */
static struct hull_error *call_error(const char *what, int code, const char *message,
                                     int timeout_ms)
{
	struct hull_error *e = NULL;
	if (code == TTRPC_DEADLINE_EXCEEDED)
		hull_error_set(&e, -ETIMEDOUT, "%s: no answer from the agent in %d ms", what,
		               timeout_ms);
	else
		hull_error_set(&e, ttrpc_errno_from_code(code), "%s: %s", what, message);
	return e;
}

/* ---- the start, step by step ------------------------------------------------------ */

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
		nic.mac = sb->net_mac;
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

static int boot_left_ms(struct sandbox *sb)
{
	uint64_t now = sandbox_now_ns();
	return now >= sb->boot_deadline_ns ? 1 : (int)((sb->boot_deadline_ns - now) / 1000000u) + 1;
}

static int sync_timeout_ms(struct sandbox *sb)
{
	int left = boot_left_ms(sb);
	return sb->phase == SANDBOX_RESTORE ? MIN(left, RESTORE_TIMEOUT_MS) : left;
}

static void on_sync(struct ttrpc_client *c, int code, const char *message, const uint8_t *payload,
                    size_t len, void *userdata)
{
	struct sandbox *sb = userdata;
	(void)c, (void)payload, (void)len;
	if (code) {
		step_failed(sb, ttrpc_errno_from_code(code),
		            call_error("Sync", code, message, sync_timeout_ms(sb)));
		return;
	}
	/* The guest is this sandbox's own from here: what fails now is not a template's. */
	log_debug("synced %.1f ms after QEMU started",
	          (double)(sandbox_now_ns() - sb->t_vmm_ns) / 1e6);
	sb->phase = SANDBOX_BOOT;
	configure_guest_net(sb);
}

/* The guest's clock, fresh entropy and identity, before anything else runs in it. */
static void send_sync(struct sandbox *sb)
{
	Hull__Agent__V1__SyncRequest req = HULL__AGENT__V1__SYNC_REQUEST__INIT;
	Hull__Agent__V1__NicRename renames[SANDBOX_NET_MAX_NICS + 1], *rp[SANDBOX_NET_MAX_NICS + 1];
	uint8_t entropy[SYNC_ENTROPY];
	struct timespec ts;
	size_t n = 0;

	if (getrandom(entropy, sizeof(entropy), 0) != sizeof(entropy))
		abort();
	clock_gettime(CLOCK_REALTIME, &ts);
	req.realtime_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	req.entropy.data = entropy;
	req.entropy.len = sizeof(entropy);
	req.hostname = sb->id;
	if (sb->template_id) {
		/* A clone's NICs have their template slots' MACs until now. */
		if (sb->net_user) {
			hull__agent__v1__nic_rename__init(&renames[n]);
			renames[n].from_mac = sb->nat_slot_mac;
			renames[n].to_mac = sb->net_mac;
			rp[n] = &renames[n];
			n++;
		}
		for (size_t i = 0; sb->net && i < sb->net->n_nics; i++) {
			hull__agent__v1__nic_rename__init(&renames[n]);
			renames[n].from_mac = sb->slot_macs[i];
			renames[n].to_mac = sb->net->nics[i].mac;
			rp[n] = &renames[n];
			n++;
		}
	}
	req.nics = rp;
	req.n_nics = n;
	if (!ttrpc_client_call(sb->agent, "Sync", &req.base, 0, sync_timeout_ms(sb), on_sync, NULL,
	                       sb))
		step_failed(sb, -EIO, error_new(-EIO, "agent channel: Sync could not be sent"));
}

static void save_template(struct sandbox *sb);

static void on_check(struct ttrpc_client *c, int code, const char *message, const uint8_t *payload,
                     size_t len, void *userdata)
{
	struct sandbox *sb = userdata;
	Hull__Agent__V1__CheckResponse *resp;
	(void)c;

	if (code) {
		step_failed(sb, ttrpc_errno_from_code(code),
		            call_error("Check", code, message, (int)sb->boot_timeout_ms));
		return;
	}
	resp = hull__agent__v1__check_response__unpack(NULL, len, payload);
	if (!resp) {
		step_failed(sb, -EPROTO,
		            error_new(-EPROTO, "protocol violation: the agent's Check reply does "
		                               "not decode"));
		return;
	}
	log_debug("agent %.32s ready", resp->version);
	hull__agent__v1__check_response__free_unpacked(resp, NULL);
	if (sb->phase == SANDBOX_BUILD)
		save_template(sb);
	else
		send_sync(sb);
}

/* The channel is connected: a boot asks Check (a clone's agent answered it when its
 * template was made), a clone goes straight to Sync. */
static void agent_connected(struct sandbox *sb, int fd)
{
	Hull__Agent__V1__CheckRequest check = HULL__AGENT__V1__CHECK_REQUEST__INIT;
	int r;

	sb->agent = ttrpc_client_new(fd, AGENT_SERVICE);
	r = ttrpc_client_attach(sb->agent, sb->loop, on_agent_error, sb);
	if (r < 0) {
		step_failed(sb, r, error_new(r, "agent channel: event loop"));
		return;
	}
	if (sb->phase == SANDBOX_RESTORE) {
		send_sync(sb);
		return;
	}
	if (!ttrpc_client_call(sb->agent, "Check", &check.base, 0, boot_left_ms(sb), on_check, NULL,
	                       sb))
		step_failed(sb, -EIO, error_new(-EIO, "agent channel: Check could not be sent"));
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
		if (sandbox_now_ns() < sb->boot_deadline_ns) {
			arm(sb->retry_fd, VSOCK_RETRY_MS, false);
			return;
		}
		step_failed(sb, -ETIMEDOUT,
		            error_new(-ETIMEDOUT, "the agent did not listen on vsock in time"));
		return;
	}
	step_failed(sb, -soerr, error_new(-soerr, "connect agent over vsock"));
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
		arm(sb->retry_fd, VSOCK_RETRY_MS, false);
		return;
	}
	if (r < 0) {
		step_failed(sb, r, e);
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
		step_failed(sb, -errno, error_new(-errno, "agent channel: event loop"));
	}
}

/* QEMU for vc, watched from the loop. */
static int launch(struct sandbox *sb, const struct vmm_config *vc, struct hull_error **err)
{
	int r;

	sb->vm = vmm_new(&vmm_qemu_ops, vc);
	r = sb->vm->ops->start(sb->vm, err);
	if (r < 0) {
		sb->vm = vmm_free(sb->vm);
		return hull_error_prefix(err, "start VM");
	}
	sb->t_vmm_ns = sandbox_now_ns();
	sb->exit_fd = sb->vm->ops->exit_fd(sb->vm);
	if (sb->exit_fd >= 0 && event_add(sb->loop, sb->exit_fd, EPOLLIN, on_vm_exit, sb) < 0) {
		sb->exit_fd = -1;
		sb->vm = vmm_free(sb->vm);
		return hull_error_set_errno(err, -errno, "watch the VM");
	}
	return 0;
}

/* What a failed clone or template VM left in the state dir: the sockets QEMU made. */
static void clean_state_dir(struct sandbox *sb)
{
	char *(*const paths[])(const char *) = {vmm_qmp_path, vmm_agent_path};
	for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
		_cleanup_free_ char *p = paths[i](sb->state_dir);
		(void)unlink(p);
	}
}

static int start_cold(struct sandbox *sb, struct hull_error **err)
{
	int r;

	sb->phase = SANDBOX_BOOT;
	free(sb->template_id);
	sb->template_id = NULL;
	clean_state_dir(sb);
	r = launch(sb, &sb->vc, err);
	if (r < 0)
		return r;
	/* From the loop: the owner hears how the boot went only after it holds the
	 * sandbox. */
	event_defer(sb->loop, try_connect_deferred, sb);
	return 0;
}

/* From the loop: a template could not serve this start. */
static void fall_back(struct sandbox *sb, const char *why)
{
	struct hull_error *e = NULL;
	int r;

	drop_vm(sb);
	if (sb->template_only) {
		hull_error_set(&e, -EIO, "%s", why);
		boot_done(sb, -EIO, e);
		return;
	}
	log_info("booting without a template: %s", why);
	r = start_cold(sb, &e);
	if (r < 0)
		boot_done(sb, r, e);
}

/* ---- templates ---------------------------------------------------------------------- */

/* The devices of a template or clone: n_disks slots (the sandbox's disks first, then
 * blanks), the sandbox's NICs (taps in a clone, hub ports in a template) with slot
 * MACs, and the NAT NIC with its slot MAC. */
static void slot_devices(struct sandbox *sb, struct vmm_config *vc, const char *blank,
                         bool template)
{
	unsigned nd = sb->tspec.n_disks, nn = sb->tspec.n_nics;

	free(sb->slot_disks);
	free(sb->slot_nics);
	free(sb->slot_macs);
	sb->slot_disks = xcalloc(nd + 1, sizeof(*sb->slot_disks));
	sb->slot_nics = xcalloc(nn + 1, sizeof(*sb->slot_nics));
	sb->slot_macs = xcalloc(nn + 1, sizeof(*sb->slot_macs));
	for (unsigned i = 0; i < nd; i++)
		sb->slot_disks[i] = !template && i < sb->vc.n_disks
		                        ? sb->vc.disks[i]
		                        : (struct vmm_disk){.path = blank, .serial = "hull-blank"};
	for (unsigned i = 0; i < nn; i++) {
		template_slot_mac(i, sb->slot_macs[i]);
		/* No host_mtu: the feature must match between template and clone; the
		 * guest gets its MTU from ConfigureNetwork. */
		sb->slot_nics[i] = (struct vmm_nic){
		    .fd = template ? -1 : sb->vc.nics[i].fd, .mac = sb->slot_macs[i], .mtu = 0};
	}
	template_slot_mac(TEMPLATE_NAT_SLOT, sb->nat_slot_mac);
	vc->disks = sb->slot_disks;
	vc->n_disks = nd;
	vc->nics = sb->slot_nics;
	vc->n_nics = nn;
	vc->net_mac = sb->nat_slot_mac;
}

static void on_tick(struct event_loop *loop, int fd, uint32_t revents, void *userdata);

static void template_only_done(void *userdata)
{
	boot_done(userdata, 0, NULL);
}

/* A clone of t: QEMU waits for the template's state, the channel is connected before
 * it loads (the template was saved connected, so the guest sees no hangup), Sync
 * is queued, and the tick follows the load. Takes t. */
static int start_clone(struct sandbox *sb, struct template *t, struct hull_error **err)
{
	_cleanup_free_ char *boot_header = NULL;
	struct vmm_config vc = sb->vc;
	int r;

	if (sb->template_only) {
		/* hull template create: it exists, which is all that was asked. */
		free(sb->template_id);
		sb->template_id = xstrdup(t->id);
		template_close(t);
		event_defer(sb->loop, template_only_done, sb);
		return 0;
	}
	sb->phase = SANDBOX_RESTORE;
	sb->tpl = t;
	free(sb->template_id);
	sb->template_id = xstrdup(t->id);
	slot_devices(sb, &vc, t->blank, false);
	(void)template_reclaim(t);
	vc.mem_fd = t->ram_fd;
	vc.mem_shared = false;
	vc.incoming = true;
	vc.incoming_fd = t->state_fd;
	clean_state_dir(sb);
	/* Neither the kernel nor the initramfs runs again in a clone; QEMU would hold
	 * both in memory for nothing. */
	boot_header = xasprintf("%s/boot-header", sb->state_dir);
	if (template_boot_header(vc.kernel, boot_header) > 0)
		vc.kernel = boot_header;
	vc.initrd = NULL;
	r = launch(sb, &vc, err);
	if (r == 0)
		r = sb->vm->ops->restore(sb->vm, err);
	if (r < 0) {
		drop_vm(sb);
		template_restore_failed(sb->root, t->id, (*err)->msg);
		sb->tpl = template_close(sb->tpl);
		return r;
	}
	arm(sb->tick_fd, RESTORE_POLL_MS, true);
	/* vsock: the guest listens once it runs (the tick connects then). */
	if (vc.channel == VMM_CHANNEL_SERIAL)
		event_defer(sb->loop, try_connect_deferred, sb);
	return 0;
}

/* The template's VM: this sandbox's device shape with placeholder backends, RAM in
 * the build's file mapped shared, nothing of the sandbox's own. Takes lock_fd. */
static int start_build(struct sandbox *sb, int lock_fd, struct hull_error **err)
{
	struct vmm_config vc = sb->vc;
	int r;

	r = template_build_begin(&sb->tspec, lock_fd, &sb->build, err);
	if (r < 0)
		return r;
	sb->phase = SANDBOX_BUILD;
	log_info("building template %s", sb->build->id);
	slot_devices(sb, &vc, sb->build->blank, true);
	sb->share = (struct vmm_share){.tag = SANDBOX_SHARED_TAG, .path = sb->build->shared};
	vc.shares = &sb->share;
	/* Its sockets and logs in the sandbox's state dir (short paths: a socket's is
	 * at most 107 bytes), where the clone's replace them. */
	vc.name = sb->build->id;
	vc.hostfwd = NULL;
	vc.vsock_cid = 3 + (uint32_t)((sandbox_now_ns() / 7) % 0x7fff0000u);
	vc.mem_path = sb->build->ram;
	vc.mem_shared = true;
	r = launch(sb, &vc, err);
	/* The sandbox's own share again (the clone's and a cold boot's). */
	sb->share = (struct vmm_share){.tag = SANDBOX_SHARED_TAG, .path = sb->shared_dir};
	if (r < 0) {
		template_build_abort(sb->build, (*err)->msg);
		sb->build = NULL;
		return r;
	}
	event_defer(sb->loop, try_connect_deferred, sb);
	return 0;
}

/* No sound template: build it under the lock, or wait while another process does. */
static int build_or_wait(struct sandbox *sb, struct hull_error **err)
{
	_cleanup_free_ char *key = NULL, *id = NULL;
	struct template *t = NULL;
	int lock_fd = -1, r;

	r = template_key(&sb->tspec, &key, &id, err);
	if (r < 0)
		return r;
	r = template_lock(sb->root, id, &lock_fd, err);
	if (r < 0)
		return r;
	if (r == 0) {
		if (sb->phase != SANDBOX_WAIT) {
			log_debug("waiting for template %s: another process builds it", id);
			sb->phase = SANDBOX_WAIT;
			/* Half the boot time for the builder; the rest is a cold boot's. */
			sb->wait_deadline_ns = sb->t_start_ns + sb->boot_timeout_ms * 500000u;
			arm(sb->tick_fd, WAIT_POLL_MS, true);
		}
		return 0;
	}
	/* The lock is ours: the template may have been finished while we looked. */
	r = template_open(&sb->tspec, &t, err);
	if (r != 0) {
		close(lock_fd);
		return r > 0 ? start_clone(sb, t, err) : r;
	}
	disarm(sb->tick_fd);
	return start_build(sb, lock_fd, err);
}

/* Clone the template if it is there, else build or wait for it. 0 when one of these
 * started; < 0 with *err: boot cold. */
static int start_from_template(struct sandbox *sb, struct hull_error **err)
{
	struct template *t = NULL;
	int r = template_open(&sb->tspec, &t, err);
	if (r > 0)
		return start_clone(sb, t, err);
	if (r < 0)
		return r;
	return build_or_wait(sb, err);
}

/* The template steps that wait: a clone's load, another process's build. */
static void on_tick(struct event_loop *loop, int fd, uint32_t revents, void *userdata)
{
	struct sandbox *sb = userdata;
	struct hull_error *e = NULL;
	struct template *t = NULL;
	uint64_t ticks;
	int r;

	(void)loop, (void)revents;
	(void)!read(fd, &ticks, sizeof(ticks));
	if (sb->phase == SANDBOX_RESTORE) {
		r = sb->vm->ops->restore_poll(sb->vm, &e);
		if (r == 0 && sandbox_now_ns() - sb->t_vmm_ns > RESTORE_TIMEOUT_MS * 1000000ull)
			r = hull_error_set(&e, -ETIMEDOUT, "the state did not load in %d ms",
			                   RESTORE_TIMEOUT_MS);
		if (r == 0)
			return;
		disarm(sb->tick_fd);
		if (r < 0) {
			step_failed(sb, r, e);
			return;
		}
		log_info("restored from template %s in %.1f ms", sb->template_id,
		         (double)(sandbox_now_ns() - sb->t_vmm_ns) / 1e6);
		/* vsock: the guest runs, so its agent listens again. */
		if (sb->vm->cfg.channel != VMM_CHANNEL_SERIAL)
			try_connect(sb);
		return;
	}
	if (sb->phase != SANDBOX_WAIT) {
		disarm(sb->tick_fd);
		return;
	}
	if (sandbox_now_ns() >= sb->wait_deadline_ns)
		r = hull_error_set(&e, -ETIMEDOUT,
		                   "another process's template build took too long");
	else if ((r = template_open(&sb->tspec, &t, &e)) > 0) {
		disarm(sb->tick_fd);
		r = start_clone(sb, t, &e);
	} else if (r == 0)
		r = build_or_wait(sb, &e);
	if (r < 0) {
		disarm(sb->tick_fd);
		sb->phase = SANDBOX_WAIT;
		fall_back(sb, e->msg);
		hull_error_free(e);
	}
}

static void save_template(struct sandbox *sb)
{
	struct hull_error *e = NULL;
	struct template *t = NULL;
	int r;

	r = sb->vm->ops->save(sb->vm, sb->build->state_fd, &e);
	if (r < 0) {
		step_failed(sb, r, e);
		return;
	}
	/* Saved: the template's VM has done its part (it stays stopped until killed). */
	drop_vm(sb);
	r = template_build_commit(sb->build, &e);
	if (r < 0) {
		template_build_abort(sb->build, e->msg);
		sb->build = NULL;
		sb->phase = SANDBOX_WAIT;
		fall_back(sb, e->msg);
		hull_error_free(e);
		return;
	}
	sb->build = NULL;
	r = template_open(&sb->tspec, &t, &e);
	if (r > 0)
		r = start_clone(sb, t, &e);
	else if (r == 0)
		r = hull_error_set(&e, -ENOENT, "the template just built is gone");
	if (r < 0) {
		sb->phase = SANDBOX_WAIT;
		fall_back(sb, e->msg);
		hull_error_free(e);
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
	sb->root = xstrdup(root);
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
	vc->tcg_cache_mib = cfg->vm->tcg_cache_mib;
	vc->shares = &sb->share;
	vc->n_shares = 1;
	vc->disks = cfg->disks;
	vc->n_disks = cfg->n_disks;
	vc->net_user = cfg->net_user;
	/* The sandbox's own MAC, random (QEMU's prefix): two sandboxes never show the
	 * same one to a workload. */
	{
		uint8_t b[3];
		if (getrandom(b, sizeof(b), 0) != sizeof(b))
			abort();
		snprintf(sb->net_mac, sizeof(sb->net_mac), "52:54:00:%02x:%02x:%02x", b[0], b[1],
		         b[2]);
	}
	vc->net_mac = sb->net_mac;
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

	/* What a template for this sandbox must match (sandbox-template.h). */
	sb->domain = cfg->vm->template_domain ? xstrdup(cfg->vm->template_domain)
	                                      : xasprintf("uid-%u", (unsigned)geteuid());
	sb->tspec = (struct template_spec){
	    .root = sb->root,
	    .domain = sb->domain,
	    .vm = vc,
	    .n_disks =
	        template_disk_slots((unsigned)vc->n_disks, VIRTIO_SLOTS - 3 - (unsigned)vc->n_nics -
	                                                       (vc->net_user ? 1u : 0u)),
	    .n_nics = cfg->template_only ? cfg->template_nics : (unsigned)vc->n_nics,
	    .net_user = vc->net_user,
	};
	sb->template_only = cfg->template_only;
	return 0;
}

/* Why this sandbox boots cold whatever the store holds, or NULL. */
static const char *template_unwanted(const struct sandbox *sb, const struct sandbox_config *cfg)
{
	const char *env = getenv("HULL_TEMPLATE");
	if (!cfg->vm->template)
		return "templates are off (template = false, --no-template)";
	if (env && (strcmp(env, "0") == 0 || strcmp(env, "false") == 0))
		return "templates are off (HULL_TEMPLATE)";
	for (size_t i = 0; sb->vc.disks && i < sb->vc.n_disks; i++) {
		struct stat st;
		if (stat(sb->vc.disks[i].path, &st) == 0 &&
		    (uint64_t)st.st_size > TEMPLATE_BLANK_SIZE)
			return "a disk is larger than a template's slot";
	}
	return NULL;
}

int sandbox_start(struct event_loop *loop, const struct sandbox_config *cfg,
                  const struct sandbox_ops *ops, void *userdata, struct sandbox **ret,
                  struct hull_error **err)
{
	struct sandbox *sb = xcalloc(1, sizeof(*sb));
	const char *why;
	int r;

	sb->loop = loop;
	sb->ops = ops;
	sb->userdata = userdata;
	sb->exit_fd = sb->retry_fd = sb->connect_fd = sb->tick_fd = -1;
	sb->t_start_ns = sandbox_now_ns();
	sb->boot_timeout_ms = cfg->vm->boot_timeout_ms;
	sb->boot_deadline_ns = sb->t_start_ns + cfg->vm->boot_timeout_ms * 1000000u;
	r = prepare(sb, cfg, &sb->vc, err);
	if (r < 0)
		goto fail;
	log_debug("accel %s, machine %s, channel %s", vmm_accel_to_string(sb->vc.accel),
	          vmm_machine_to_string(sb->vc.machine),
	          sb->vc.channel == VMM_CHANNEL_VSOCK ? "vsock" : "serial");
	sb->retry_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	sb->tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (sb->retry_fd < 0 || event_add(loop, sb->retry_fd, EPOLLIN, on_retry, sb) < 0 ||
	    sb->tick_fd < 0 || event_add(loop, sb->tick_fd, EPOLLIN, on_tick, sb) < 0) {
		r = hull_error_set_errno(err, -errno, "timer");
		goto fail;
	}
	why = cfg->template_only ? NULL : template_unwanted(sb, cfg);
	if (cfg->template_only) {
		/* Asked for: a failure recorded earlier does not hold it back. */
		_cleanup_free_ char *key = NULL, *id = NULL;
		if (template_key(&sb->tspec, &key, &id, NULL) == 0)
			template_forget_failure(sb->root, id);
		r = start_from_template(sb, err);
		if (r < 0)
			goto fail;
		*ret = sb;
		return 0;
	}
	if (!why) {
		struct hull_error *e = NULL;
		r = start_from_template(sb, &e);
		if (r == 0) {
			*ret = sb;
			return 0;
		}
		log_info("booting without a template: %s", e->msg);
		hull_error_free(e);
	} else {
		log_debug("booting without a template: %s", why);
	}
	r = start_cold(sb, err);
	if (r < 0)
		goto fail;
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
	sb->exit_fd = sb->retry_fd = sb->connect_fd = sb->tick_fd = -1;
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
		/* sandbox_fake()'s, or waiting for a template: nothing runs. */
		sandbox_free(sb);
		log_set_sandbox(NULL);
		return NULL;
	}
	/* A template's VM or a clone still loading is just killed. */
	if (sb->phase == SANDBOX_BOOT && sb->agent && !ttrpc_client_failed(sb->agent, NULL) &&
	    !sb->vm->ops->exited(sb->vm)) {
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
