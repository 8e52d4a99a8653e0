/* SPDX-License-Identifier: MIT */
/* QEMU's command line from a VM description: a pure function, unit-tested. */
#include <stdarg.h>
#include <string.h>

#include "util.h"
#include "vmm.h"

static const char *const accel_names[_VMM_ACCEL_MAX] = {"auto", "kvm", "tcg"};
static const char *const machine_names[_VMM_MACHINE_MAX] = {"microvm", "q35"};

const char *vmm_accel_to_string(enum vmm_accel a)
{
	return (unsigned)a < _VMM_ACCEL_MAX ? accel_names[a] : "?";
}

int vmm_accel_from_string(const char *s)
{
	for (int i = 0; i < _VMM_ACCEL_MAX; i++)
		if (strcmp(s, accel_names[i]) == 0)
			return i;
	return -EINVAL;
}

const char *vmm_machine_to_string(enum vmm_machine m)
{
	return (unsigned)m < _VMM_MACHINE_MAX ? machine_names[m] : "?";
}

int vmm_machine_from_string(const char *s)
{
	for (int i = 0; i < _VMM_MACHINE_MAX; i++)
		if (strcmp(s, machine_names[i]) == 0)
			return i;
	return -EINVAL;
}

char *vmm_qmp_path(const char *state_dir)
{
	return xasprintf("%s/qmp.sock", state_dir);
}

char *vmm_agent_path(const char *state_dir)
{
	return xasprintf("%s/agent.sock", state_dir);
}

char *vmm_console_path(const char *state_dir)
{
	return xasprintf("%s/console.log", state_dir);
}

char *vmm_log_path(const char *state_dir)
{
	return xasprintf("%s/qemu.log", state_dir);
}

/* QEMU option values separate with ','; a literal comma is written ",,". */
static char *opt_escape(const char *s)
{
	size_t n = 0;
	char *out, *o;
	for (const char *p = s; *p; p++)
		n += *p == ',' ? 2 : 1;
	o = out = xmalloc(n + 1);
	for (const char *p = s; *p; p++) {
		*o++ = *p;
		if (*p == ',')
			*o++ = ',';
	}
	*o = '\0';
	return out;
}

static void push(char ***argv, const char *s)
{
	strv_push(argv, xstrdup(s));
}

_printf_(2, 3) static void pushf(char ***argv, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	strv_push(argv, xvasprintf(fmt, ap));
	va_end(ap);
}

/* "52:54:00:12:34:56", lower case: safe inside an option string. */
static bool mac_valid(const char *m)
{
	if (!m || strlen(m) != 17)
		return false;
	for (int i = 0; i < 17; i++)
		if (i % 3 == 2 ? m[i] != ':' : !strchr("0123456789abcdef", m[i]) || !m[i])
			return false;
	return true;
}

static bool valid_tag(const char *t)
{
	size_t n = strlen(t);
	if (n == 0 || n > 31)
		return false;
	for (const char *p = t; *p; p++)
		if (*p == ',' || *p == '=' || *p <= ' ')
			return false;
	return true;
}

int vmm_build_argv(const struct vmm_config *cfg, char ***ret_argv, struct hull_error **err)
{
	_cleanup_strv_free_ char **argv = NULL;
	_cleanup_free_ char *state = NULL;
	const char *bus; /* device suffix: virtio-mmio on microvm, PCI on q35 */
	_cleanup_free_ char *cmdline = NULL;

	if (!cfg->kernel || !cfg->state_dir)
		return hull_error_set(err, -EINVAL, "VM description lacks kernel or state dir");
	if (cfg->accel != VMM_ACCEL_KVM && cfg->accel != VMM_ACCEL_TCG)
		return hull_error_set(err, -EINVAL, "accelerator not resolved (kvm or tcg)");
	/* Values come checked from vmm_settings_set(); the builder only refuses what it
	 * cannot express. */
	if (cfg->cpus < 1 || cfg->cpus > VMM_CPUS_MAX)
		return hull_error_set(err, -EINVAL, "cpus: %u out of range 1..64", cfg->cpus);
	if (cfg->memory_mib < VMM_MEMORY_MIN_MIB || cfg->memory_mib > VMM_MEMORY_MAX_MIB)
		return hull_error_set(err, -EINVAL, "memory: %llu MiB out of range 64 MiB..1 TiB",
		                      (unsigned long long)cfg->memory_mib);
	if (cfg->channel == VMM_CHANNEL_VSOCK && cfg->vsock_cid < 3)
		return hull_error_set(err, -EINVAL, "vsock: guest cid %u is reserved",
		                      cfg->vsock_cid);
	for (size_t i = 0; i < cfg->n_shares; i++)
		if (!valid_tag(cfg->shares[i].tag) || !cfg->shares[i].path)
			return hull_error_set(err, -EINVAL, "share %zu: bad tag or path", i);
	if (cfg->net_user && !mac_valid(cfg->net_mac))
		return hull_error_set(err, -EINVAL, "net: bad MAC");
	for (char *const *f = cfg->hostfwd; f && *f; f++)
		if (strpbrk(*f, ", \n"))
			return hull_error_set(err, -EINVAL, "net: bad port forward '%.64s'", *f);
	for (size_t i = 0; i < cfg->n_nics; i++)
		if ((cfg->nics[i].fd < 3 && cfg->nics[i].fd != -1) ||
		    !mac_valid(cfg->nics[i].mac) ||
		    (cfg->nics[i].mtu && (cfg->nics[i].mtu < 68 || cfg->nics[i].mtu > 65535)))
			return hull_error_set(err, -EINVAL, "nic %zu: bad fd, MAC or MTU", i);
	for (size_t i = 0; i < cfg->n_disks; i++)
		if (!cfg->disks[i].path || !valid_tag(cfg->disks[i].serial) ||
		    strlen(cfg->disks[i].serial) > 20)
			return hull_error_set(err, -EINVAL, "disk %zu: bad path or serial", i);
	if (cfg->incoming &&
	    (cfg->incoming_fd < 3 || (!cfg->mem_path && cfg->mem_fd < 3) || cfg->mem_shared))
		return hull_error_set(err, -EINVAL,
		                      "a clone needs its state fd and a private RAM file");

	state = opt_escape(cfg->state_dir);
	bus = cfg->machine == VMM_MACHINE_MICROVM ? "device" : "pci";

	push(&argv, cfg->qemu ? cfg->qemu : "qemu-system-x86_64");
	if (cfg->name) {
		push(&argv, "-name");
		push(&argv, cfg->name);
	}
	push(&argv, "-nodefaults");
	push(&argv, "-no-user-config");
	push(&argv, "-display");
	push(&argv, "none");
	push(&argv, "-no-reboot");
	push(&argv, "-machine");
	/* No ACPI on microvm: QEMU then lists the virtio-mmio devices on the kernel
	 * command line (CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES). */
	pushf(&argv, "%s%s",
	      cfg->machine == VMM_MACHINE_MICROVM ? "microvm,acpi=off,rtc=off" : "q35",
	      cfg->mem_path || cfg->mem_fd > 2 ? ",memory-backend=mem" : "");
	push(&argv, "-accel");
	/* TCG's translated code is host memory a guest grows by running code: capped
	 * (docs/decisions.md 54). */
	if (cfg->accel == VMM_ACCEL_KVM)
		push(&argv, "kvm");
	else if (cfg->tcg_cache_mib)
		pushf(&argv, "tcg,tb-size=%llu", (unsigned long long)cfg->tcg_cache_mib);
	else
		push(&argv, "tcg");
	if (cfg->accel == VMM_ACCEL_KVM) {
		push(&argv, "-cpu");
		push(&argv, "host");
	}
	push(&argv, "-smp");
	pushf(&argv, "%u", cfg->cpus);
	push(&argv, "-m");
	pushf(&argv, "%lluM", (unsigned long long)cfg->memory_mib);
	if (cfg->mem_path || cfg->mem_fd > 2) {
		_cleanup_free_ char *mem = cfg->mem_fd > 2
		                               ? xasprintf("/proc/self/fd/%d", cfg->mem_fd)
		                               : opt_escape(cfg->mem_path);
		/* share=off: a private mapping, so a clone's writes never reach the
		 * template's file (nor another clone). */
		push(&argv, "-object");
		pushf(&argv, "memory-backend-file,id=mem,size=%lluM,mem-path=%s,share=%s",
		      (unsigned long long)cfg->memory_mib, mem, cfg->mem_shared ? "on" : "off");
	}
	if (cfg->incoming) {
		push(&argv, "-incoming");
		push(&argv, "defer");
	}
	if (cfg->sandbox) {
		/* Security: QEMU's own seccomp filter; it may not exec or raise privileges. */
		push(&argv, "-sandbox");
		push(&argv,
		     "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
	}

	push(&argv, "-kernel");
	push(&argv, cfg->kernel);
	if (cfg->initrd) {
		push(&argv, "-initrd");
		push(&argv, cfg->initrd);
	}
	cmdline =
	    xasprintf("console=ttyS0 reboot=t panic=-1 no_timer_check cryptomgr.notests%s "
	              "hull.channel=%s%s%s%s",
	              cfg->debug ? " hull.debug=1" : " quiet loglevel=3",
	              cfg->channel == VMM_CHANNEL_VSOCK ? "vsock" : "serial",
	              cfg->machine == VMM_MACHINE_MICROVM ? " pci=off" : "",
	              cfg->cmdline_extra ? " " : "", cfg->cmdline_extra ? cfg->cmdline_extra : "");
	push(&argv, "-append");
	strv_push(&argv, TAKE_PTR(cmdline));

	/* Monitor and console: both files/sockets in the state dir. */
	push(&argv, "-qmp");
	pushf(&argv, "unix:%s/qmp.sock,server=on,wait=off", state);
	push(&argv, "-chardev");
	pushf(&argv, "file,id=console,path=%s/console.log", state);
	push(&argv, "-serial");
	push(&argv, "chardev:console");

	/* Entropy from the host: without it the guest's RNG takes a second or more to
	 * initialise under TCG, and everything that wants random bytes waits. */
	push(&argv, "-object");
	push(&argv, "rng-random,id=rng0,filename=/dev/urandom");
	push(&argv, "-device");
	pushf(&argv, "virtio-rng-%s,rng=rng0", bus);

	if (cfg->channel == VMM_CHANNEL_SERIAL) {
		push(&argv, "-device");
		pushf(&argv, "virtio-serial-%s,max_ports=2", bus);
		push(&argv, "-chardev");
		pushf(&argv, "socket,id=agent,path=%s/agent.sock,server=on,wait=off", state);
		push(&argv, "-device");
		push(&argv, "virtserialport,chardev=agent,name=io.hull.agent");
	} else {
		push(&argv, "-device");
		pushf(&argv, "vhost-vsock-%s,guest-cid=%u", bus, cfg->vsock_cid);
	}

	for (size_t i = 0; i < cfg->n_shares; i++) {
		_cleanup_free_ char *path = opt_escape(cfg->shares[i].path);
		push(&argv, "-fsdev");
		/* security_model=none: files are created as QEMU's user and ownership
		 * changes the host refuses are ignored rather than failing the guest.
		 * multidevs=remap: a share may span mounts (the shim binds each
		 * container's rootfs below one); inode numbers stay unique. */
		pushf(&argv, "local,id=fs%zu,path=%s,security_model=none,multidevs=remap%s", i,
		      path, cfg->shares[i].readonly ? ",readonly=on" : "");
		push(&argv, "-device");
		pushf(&argv, "virtio-9p-%s,fsdev=fs%zu,mount_tag=%s", bus, i, cfg->shares[i].tag);
	}
	if (cfg->net_user) {
		_cleanup_free_ char *netdev = xstrdup("user,id=net0");
		for (char *const *f = cfg->hostfwd; f && *f; f++) {
			char *n = xasprintf("%s,hostfwd=%s", netdev, *f);
			free(netdev);
			netdev = n;
		}
		push(&argv, "-netdev");
		strv_push(&argv, TAKE_PTR(netdev));
		push(&argv, "-device");
		pushf(&argv, "virtio-net-%s,netdev=net0,mac=%s", bus, cfg->net_mac);
	}
	for (size_t i = 0; i < cfg->n_nics; i++) {
		push(&argv, "-netdev");
		if (cfg->nics[i].fd < 0)
			pushf(&argv, "hubport,id=nic%zu,hubid=%zu", i, i);
		else
			pushf(&argv, "tap,id=nic%zu,fd=%d%s", i, cfg->nics[i].fd,
			      cfg->vhost_net ? ",vhost=on" : "");
		push(&argv, "-device");
		if (cfg->nics[i].mtu)
			pushf(&argv, "virtio-net-%s,netdev=nic%zu,mac=%s,host_mtu=%u", bus, i,
			      cfg->nics[i].mac, cfg->nics[i].mtu);
		else
			pushf(&argv, "virtio-net-%s,netdev=nic%zu,mac=%s", bus, i,
			      cfg->nics[i].mac);
	}
	for (size_t i = 0; i < cfg->n_disks; i++) {
		_cleanup_free_ char *path = opt_escape(cfg->disks[i].path);
		/* Security: read-only at the device, whatever the guest asks. */
		push(&argv, "-drive");
		pushf(&argv, "file=%s,if=none,id=disk%zu,format=raw,readonly=on", path, i);
		push(&argv, "-device");
		pushf(&argv, "virtio-blk-%s,drive=disk%zu,serial=%s", bus, i, cfg->disks[i].serial);
	}

	*ret_argv = TAKE_PTR(argv);
	return 0;
}
