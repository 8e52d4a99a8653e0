/* SPDX-License-Identifier: MIT */
/* The QEMU argv builder and accel detection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util.h"
#include "vmm.h"

static const struct vmm_share shares[] = {
    {.tag = "hull-root", .path = "/srv/root", .readonly = true},
    {.tag = "vol0", .path = "/a,b", .readonly = false},
};

static struct vmm_config base_config(void)
{
	return (struct vmm_config){
	    .qemu = "qemu-system-x86_64",
	    .kernel = "/k/vmlinuz",
	    .initrd = "/k/initramfs.cpio",
	    .state_dir = "/run/hull/abc",
	    .name = "abc",
	    .accel = VMM_ACCEL_TCG,
	    .machine = VMM_MACHINE_MICROVM,
	    .channel = VMM_CHANNEL_SERIAL,
	    .cpus = 2,
	    .memory_mib = 256,
	    .shares = shares,
	    .n_shares = 2,
	    .sandbox = true,
	};
}

/* Index of the first arg equal to s, or -1. */
static int find(char **argv, const char *s)
{
	for (int i = 0; argv[i]; i++)
		if (strcmp(argv[i], s) == 0)
			return i;
	return -1;
}

/* The value following flag (first occurrence with value containing needle). */
static const char *value_of(char **argv, const char *flag, const char *needle)
{
	for (int i = 0; argv[i] && argv[i + 1]; i++)
		if (strcmp(argv[i], flag) == 0 && (!needle || strstr(argv[i + 1], needle)))
			return argv[i + 1];
	return NULL;
}

static void test_layer_disks(void **state)
{
	const struct vmm_disk disks[] = {{"/store/layers/a,b.erofs", "hull-l0"},
	                                 {"/store/layers/c.erofs", "hull-l1"}};
	struct vmm_config c = base_config();
	_cleanup_strv_free_ char **argv = NULL;
	(void)state;

	c.disks = disks;
	c.n_disks = 2;
	assert_int_equal(vmm_build_argv(&c, &argv, NULL), 0);
	/* Read-only at the device; commas in paths escaped. */
	assert_string_equal(
	    value_of(argv, "-drive", "id=disk0"),
	    "file=/store/layers/a,,b.erofs,if=none,id=disk0,format=raw,readonly=on");
	assert_string_equal(value_of(argv, "-device", "drive=disk1"),
	                    "virtio-blk-device,drive=disk1,serial=hull-l1");
	const struct vmm_disk bad = {"/x", "a serial longer than twenty"};
	c.disks = &bad;
	c.n_disks = 1;
	strv_free(argv);
	argv = NULL;
	assert_int_equal(vmm_build_argv(&c, &argv, NULL), -EINVAL);
}

static void test_user_network(void **state)
{
	char *fwd[] = {(char *)"tcp:127.0.0.1:8080-:80", (char *)"udp::5353-:53", NULL};
	struct vmm_config c = base_config();
	_cleanup_strv_free_ char **argv = NULL;
	(void)state;

	c.net_user = true;
	c.net_mac = "52:54:00:12:34:56";
	c.hostfwd = fwd;
	assert_int_equal(vmm_build_argv(&c, &argv, NULL), 0);
	assert_string_equal(value_of(argv, "-netdev", "user"),
	                    "user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp::5353-:53");
	assert_string_equal(value_of(argv, "-device", "virtio-net"),
	                    "virtio-net-device,netdev=net0,mac=52:54:00:12:34:56");
	/* A forward that would smuggle another option in is refused. */
	char *bad[] = {(char *)"tcp::1-:2,guestfwd=x", NULL};
	c.hostfwd = bad;
	strv_free(argv);
	argv = NULL;
	assert_int_equal(vmm_build_argv(&c, &argv, NULL), -EINVAL);
}

static void test_tap_nics(void **state)
{
	const struct vmm_nic nics[] = {{7, "aa:bb:cc:dd:ee:01", 1450}, {9, "aa:bb:cc:dd:ee:02", 0}};
	struct vmm_config c = base_config();
	_cleanup_strv_free_ char **argv = NULL;
	(void)state;

	c.nics = nics;
	c.n_nics = 2;
	assert_int_equal(vmm_build_argv(&c, &argv, NULL), 0);
	/* The inherited tap fd, the pod interface's MAC, its MTU offered to the guest. */
	assert_string_equal(value_of(argv, "-netdev", "id=nic0"), "tap,id=nic0,fd=7");
	assert_string_equal(value_of(argv, "-device", "netdev=nic0"),
	                    "virtio-net-device,netdev=nic0,mac=aa:bb:cc:dd:ee:01,host_mtu=1450");
	assert_string_equal(value_of(argv, "-device", "netdev=nic1"),
	                    "virtio-net-device,netdev=nic1,mac=aa:bb:cc:dd:ee:02");
	strv_free(argv);
	argv = NULL;
	c.vhost_net = true;
	c.n_nics = 1;
	assert_int_equal(vmm_build_argv(&c, &argv, NULL), 0);
	assert_string_equal(value_of(argv, "-netdev", "id=nic0"), "tap,id=nic0,fd=7,vhost=on");
	/* A MAC that could carry another option, a stdio fd, an MTU out of range. */
	const struct vmm_nic bad[] = {
	    {7, "aa:bb:cc:dd:ee:0,", 0}, {1, "aa:bb:cc:dd:ee:01", 0}, {7, "aa:bb:cc:dd:ee:01", 9}};
	for (size_t i = 0; i < 3; i++) {
		c.nics = &bad[i];
		strv_free(argv);
		argv = NULL;
		assert_int_equal(vmm_build_argv(&c, &argv, NULL), -EINVAL);
	}
}

static void test_microvm_serial(void **state)
{
	struct vmm_config c = base_config();
	_cleanup_strv_free_ char **argv = NULL;
	(void)state;

	assert_int_equal(vmm_build_argv(&c, &argv, NULL), 0);
	assert_string_equal(argv[0], "qemu-system-x86_64");
	assert_true(find(argv, "-nodefaults") > 0);
	assert_true(find(argv, "-no-user-config") > 0);
	assert_true(find(argv, "-no-reboot") > 0);
	assert_string_equal(value_of(argv, "-machine", NULL), "microvm,acpi=off,rtc=off");
	assert_string_equal(value_of(argv, "-accel", NULL), "tcg");
	assert_int_equal(find(argv, "-cpu"), -1);
	strv_free(argv);
	argv = NULL;
	c.tcg_cache_mib = 32;
	assert_int_equal(vmm_build_argv(&c, &argv, NULL), 0);
	assert_string_equal(value_of(argv, "-accel", NULL), "tcg,tb-size=32");
	assert_string_equal(value_of(argv, "-smp", NULL), "2");
	assert_string_equal(value_of(argv, "-m", NULL), "256M");
	assert_string_equal(value_of(argv, "-kernel", NULL), "/k/vmlinuz");
	assert_string_equal(value_of(argv, "-initrd", NULL), "/k/initramfs.cpio");
	assert_non_null(value_of(argv, "-device", "virtio-serial-device"));
	assert_string_equal(value_of(argv, "-device", "virtio-rng"), "virtio-rng-device,rng=rng0");
	assert_string_equal(value_of(argv, "-device", "virtserialport"),
	                    "virtserialport,chardev=agent,name=io.hull.agent");
	assert_string_equal(value_of(argv, "-chardev", "id=agent"),
	                    "socket,id=agent,path=/run/hull/abc/agent.sock,server=on,wait=off");
	assert_string_equal(value_of(argv, "-qmp", NULL),
	                    "unix:/run/hull/abc/qmp.sock,server=on,wait=off");
	assert_string_equal(value_of(argv, "-chardev", "id=console"),
	                    "file,id=console,path=/run/hull/abc/console.log");
	assert_string_equal(
	    value_of(argv, "-fsdev", "id=fs0"),
	    "local,id=fs0,path=/srv/root,security_model=none,multidevs=remap,readonly=on");
	assert_string_equal(value_of(argv, "-device", "fsdev=fs0"),
	                    "virtio-9p-device,fsdev=fs0,mount_tag=hull-root");
	assert_non_null(value_of(argv, "-sandbox", "on,"));
	const char *append = value_of(argv, "-append", NULL);
	assert_non_null(strstr(append, "console=ttyS0"));
	assert_non_null(strstr(append, "reboot=t"));
	assert_non_null(strstr(append, "panic=-1"));
	assert_non_null(strstr(append, "hull.channel=serial"));
	assert_null(strstr(append, "hull.debug"));
}

static void test_comma_in_path_is_escaped(void **state)
{
	struct vmm_config c = base_config();
	_cleanup_strv_free_ char **argv = NULL;
	(void)state;

	assert_int_equal(vmm_build_argv(&c, &argv, NULL), 0);
	assert_string_equal(value_of(argv, "-fsdev", "id=fs1"),
	                    "local,id=fs1,path=/a,,b,security_model=none,multidevs=remap");
}

static void test_q35_kvm_vsock(void **state)
{
	struct vmm_config c = base_config();
	_cleanup_strv_free_ char **argv = NULL;
	(void)state;

	c.machine = VMM_MACHINE_Q35;
	c.accel = VMM_ACCEL_KVM;
	c.channel = VMM_CHANNEL_VSOCK;
	c.vsock_cid = 42;
	c.tcg_cache_mib = 32; /* TCG's only */
	c.debug = true;
	assert_int_equal(vmm_build_argv(&c, &argv, NULL), 0);
	assert_string_equal(value_of(argv, "-machine", NULL), "q35");
	assert_string_equal(value_of(argv, "-accel", NULL), "kvm");
	assert_string_equal(value_of(argv, "-cpu", NULL), "host");
	assert_string_equal(value_of(argv, "-device", "vsock"), "vhost-vsock-pci,guest-cid=42");
	assert_string_equal(value_of(argv, "-device", "virtio-rng"), "virtio-rng-pci,rng=rng0");
	assert_null(value_of(argv, "-device", "virtserialport"));
	assert_string_equal(value_of(argv, "-device", "fsdev=fs0"),
	                    "virtio-9p-pci,fsdev=fs0,mount_tag=hull-root");
	const char *append = value_of(argv, "-append", NULL);
	assert_non_null(strstr(append, "hull.channel=vsock"));
	assert_non_null(strstr(append, "hull.debug=1"));
	assert_null(strstr(append, "quiet"));
}

static void expect_invalid(struct vmm_config *c, const char *msg)
{
	struct hull_error *err = NULL;
	char **argv = NULL;

	assert_int_equal(vmm_build_argv(c, &argv, &err), -EINVAL);
	assert_null(argv);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, msg));
	hull_error_free(err);
}

static void test_invalid_configs(void **state)
{
	static const struct vmm_share bad = {.tag = "a,b", .path = "/x"};
	struct vmm_config c;
	(void)state;

	c = base_config(), c.kernel = NULL;
	expect_invalid(&c, "lacks kernel");
	c = base_config(), c.accel = VMM_ACCEL_AUTO;
	expect_invalid(&c, "not resolved");
	c = base_config(), c.cpus = 0;
	expect_invalid(&c, "cpus");
	c = base_config(), c.memory_mib = 16;
	expect_invalid(&c, "memory");
	c = base_config(), c.channel = VMM_CHANNEL_VSOCK, c.vsock_cid = 2;
	expect_invalid(&c, "reserved");
	c = base_config(), c.shares = &bad, c.n_shares = 1;
	expect_invalid(&c, "bad tag");
}

/* A template's VM: RAM in a file mapped shared, so its pages are the template. */
static void test_template_memory_backend(void **state)
{
	struct vmm_config c = base_config();
	_cleanup_strv_free_ char **argv = NULL;
	(void)state;

	c.mem_path = "/run/hull/.templates/.build-x/ram";
	c.mem_shared = true;
	assert_int_equal(vmm_build_argv(&c, &argv, NULL), 0);
	assert_string_equal(value_of(argv, "-machine", NULL),
	                    "microvm,acpi=off,rtc=off,memory-backend=mem");
	assert_string_equal(value_of(argv, "-m", NULL), "256M");
	assert_string_equal(
	    value_of(argv, "-object", "memory-backend-file"),
	    "memory-backend-file,id=mem,size=256M,mem-path=/run/hull/.templates/.build-x/ram,"
	    "share=on");
	/* Booted, not restored. */
	assert_int_equal(find(argv, "-incoming"), -1);
	/* The other -object (entropy) is still there. */
	assert_string_equal(value_of(argv, "-object", "rng-random"),
	                    "rng-random,id=rng0,filename=/dev/urandom");
}

/* A clone: the template's RAM by inherited fd, mapped privately; state loaded later. */
static void test_clone_incoming(void **state)
{
	struct vmm_config c = base_config();
	_cleanup_strv_free_ char **argv = NULL;
	int i;
	(void)state;

	c.mem_fd = 12;
	c.incoming = true;
	c.incoming_fd = 13;
	assert_int_equal(vmm_build_argv(&c, &argv, NULL), 0);
	assert_string_equal(value_of(argv, "-machine", NULL),
	                    "microvm,acpi=off,rtc=off,memory-backend=mem");
	assert_string_equal(value_of(argv, "-object", "memory-backend-file"),
	                    "memory-backend-file,id=mem,size=256M,mem-path=/proc/self/fd/12,"
	                    "share=off");
	i = find(argv, "-incoming");
	assert_true(i > 0);
	assert_string_equal(argv[i + 1], "defer");
	/* The state fd is QMP's business (restore), not the command line's. */
	assert_null(value_of(argv, "-incoming", "13"));
	assert_string_equal(value_of(argv, "-initrd", NULL), "/k/initramfs.cpio");

	/* A clone runs without the initramfs it will never unpack again. */
	strv_free(argv);
	argv = NULL;
	c.initrd = NULL;
	assert_int_equal(vmm_build_argv(&c, &argv, NULL), 0);
	assert_int_equal(find(argv, "-initrd"), -1);
	assert_string_equal(value_of(argv, "-kernel", NULL), "/k/vmlinuz");

	/* An fd wins over a path when both are given. */
	strv_free(argv);
	argv = NULL;
	c.mem_path = "/somewhere/else";
	assert_int_equal(vmm_build_argv(&c, &argv, NULL), 0);
	assert_string_equal(value_of(argv, "-object", "memory-backend-file"),
	                    "memory-backend-file,id=mem,size=256M,mem-path=/proc/self/fd/12,"
	                    "share=off");
}

static void test_q35_memory_backend(void **state)
{
	struct vmm_config c = base_config();
	_cleanup_strv_free_ char **argv = NULL;
	(void)state;

	c.machine = VMM_MACHINE_Q35;
	c.memory_mib = 1024;
	c.mem_path = "/dev/shm/ram";
	assert_int_equal(vmm_build_argv(&c, &argv, NULL), 0);
	assert_string_equal(value_of(argv, "-machine", NULL), "q35,memory-backend=mem");
	assert_string_equal(value_of(argv, "-m", NULL), "1024M");
	/* Not shared unless asked. */
	assert_string_equal(
	    value_of(argv, "-object", "memory-backend-file"),
	    "memory-backend-file,id=mem,size=1024M,mem-path=/dev/shm/ram,share=off");
}

/* No file, no fd (or a stdio fd, which is "none"): anonymous memory, no backend. */
static void test_no_memory_backend(void **state)
{
	struct vmm_config c = base_config();
	_cleanup_strv_free_ char **argv = NULL;
	(void)state;

	c.mem_fd = 2;
	c.mem_shared = true;
	assert_int_equal(vmm_build_argv(&c, &argv, NULL), 0);
	assert_string_equal(value_of(argv, "-machine", NULL), "microvm,acpi=off,rtc=off");
	assert_null(value_of(argv, "-object", "memory-backend"));
	strv_free(argv);
	argv = NULL;
	c.mem_fd = -1;
	assert_int_equal(vmm_build_argv(&c, &argv, NULL), 0);
	assert_null(value_of(argv, "-object", "memory-backend"));
}

static void test_mem_path_comma_is_escaped(void **state)
{
	struct vmm_config c = base_config();
	_cleanup_strv_free_ char **argv = NULL;
	(void)state;

	c.mem_path = "/run/a,b/ram,share=on";
	assert_int_equal(vmm_build_argv(&c, &argv, NULL), 0);
	assert_string_equal(value_of(argv, "-object", "memory-backend-file"),
	                    "memory-backend-file,id=mem,size=256M,mem-path=/run/a,,b/ram,,share=on,"
	                    "share=off");
}

/* A template's NIC slot: a hub port of its own, the slot's MAC, no MTU offered. */
static void test_placeholder_nics(void **state)
{
	const struct vmm_nic nics[] = {{-1, "0a:68:75:6c:6c:00", 0},
	                               {-1, "0a:68:75:6c:6c:01", 0},
	                               {7, "aa:bb:cc:dd:ee:01", 0}};
	struct vmm_config c = base_config();
	_cleanup_strv_free_ char **argv = NULL;
	(void)state;

	c.nics = nics;
	c.n_nics = 3;
	c.vhost_net = true;
	assert_int_equal(vmm_build_argv(&c, &argv, NULL), 0);
	assert_string_equal(value_of(argv, "-netdev", "id=nic0"), "hubport,id=nic0,hubid=0");
	assert_string_equal(value_of(argv, "-device", "netdev=nic0"),
	                    "virtio-net-device,netdev=nic0,mac=0a:68:75:6c:6c:00");
	assert_string_equal(value_of(argv, "-netdev", "id=nic1"), "hubport,id=nic1,hubid=1");
	assert_string_equal(value_of(argv, "-device", "netdev=nic1"),
	                    "virtio-net-device,netdev=nic1,mac=0a:68:75:6c:6c:01");
	/* vhost is the taps' business: a real tap beside the slots still gets it. */
	assert_string_equal(value_of(argv, "-netdev", "id=nic2"), "tap,id=nic2,fd=7,vhost=on");

	/* On q35 the slot is a PCI NIC, and an MTU given is offered as for a tap. */
	const struct vmm_nic mtu[] = {{-1, "0a:68:75:6c:6c:00", 1400}};
	strv_free(argv);
	argv = NULL;
	c.machine = VMM_MACHINE_Q35;
	c.nics = mtu;
	c.n_nics = 1;
	assert_int_equal(vmm_build_argv(&c, &argv, NULL), 0);
	assert_string_equal(value_of(argv, "-netdev", "id=nic0"), "hubport,id=nic0,hubid=0");
	assert_string_equal(value_of(argv, "-device", "netdev=nic0"),
	                    "virtio-net-pci,netdev=nic0,mac=0a:68:75:6c:6c:00,host_mtu=1400");
}

static void test_invalid_template_configs(void **state)
{
	const struct vmm_nic stdio_nic[] = {{0, "aa:bb:cc:dd:ee:01", 0}};
	struct vmm_nic nic = stdio_nic[0];
	struct vmm_config c;
	(void)state;

	/* A clone without its state fd (none, or a stdio one). */
	const int bad_state_fds[] = {0, 1, 2, -1};
	for (size_t i = 0; i < ELEMENTSOF(bad_state_fds); i++) {
		c = base_config(), c.mem_fd = 12, c.incoming = true;
		c.incoming_fd = bad_state_fds[i];
		expect_invalid(&c, "a clone needs its state fd and a private RAM file");
	}
	/* A clone that would write into the template's pages. */
	c = base_config(), c.mem_fd = 12, c.incoming = true, c.incoming_fd = 13;
	c.mem_shared = true;
	expect_invalid(&c, "a clone needs its state fd and a private RAM file");
	/* A clone with no RAM file at all (no path, no fd or a stdio one). */
	c = base_config(), c.incoming = true, c.incoming_fd = 13;
	expect_invalid(&c, "a clone needs its state fd and a private RAM file");
	c.mem_fd = 2;
	expect_invalid(&c, "a clone needs its state fd and a private RAM file");
	/* With a path instead of an fd it is fine. */
	c.mem_fd = -1, c.mem_path = "/x/ram";
	{
		_cleanup_strv_free_ char **argv = NULL;
		assert_int_equal(vmm_build_argv(&c, &argv, NULL), 0);
	}
	/* A NIC fd of 0..2 (or another negative than -1) is refused; only -1 is a slot. */
	const int bad_nic_fds[] = {0, 1, 2, -2};
	for (size_t i = 0; i < ELEMENTSOF(bad_nic_fds); i++) {
		c = base_config();
		nic.fd = bad_nic_fds[i];
		c.nics = &nic;
		c.n_nics = 1;
		expect_invalid(&c, "nic 0: bad fd, MAC or MTU");
	}
	/* A slot with a bad MAC is refused like a tap's. */
	nic = (struct vmm_nic){-1, "0A:68:75:6C:6C:00", 0};
	c = base_config(), c.nics = &nic, c.n_nics = 1;
	expect_invalid(&c, "nic 0: bad fd, MAC or MTU");
}

static char *write_fixture(const char *content)
{
	char *path = xstrdup("/tmp/hull-cpuinfo-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, content, strlen(content)), 0);
	close(fd);
	return path;
}

static void test_kvm_detection(void **state)
{
	_cleanup_free_ char *novirt =
	    write_fixture("processor\t: 0\nflags\t\t: fpu vme sse sse2 hypervisor\n");
	_cleanup_free_ char *virt = write_fixture("processor\t: 0\nflags\t\t: fpu vmx sse\n");
	char *why = NULL;
	(void)state;

	/* No vmx/svm: not fooled by a /dev/kvm that opens. */
	assert_false(vmm_kvm_usable("/dev/null", novirt, &why));
	assert_non_null(strstr(why, "no vmx/svm"));
	free(why);
	why = NULL;
	/* Flags present but no usable device. */
	assert_false(vmm_kvm_usable("/nonexistent/kvm", virt, &why));
	assert_non_null(strstr(why, "cannot open"));
	free(why);
	why = NULL;
	/* A device that is not KVM at all. */
	assert_false(vmm_kvm_usable("/dev/null", virt, &why));
	assert_non_null(why);
	free(why);
	unlink(novirt);
	unlink(virt);
}

static void test_accel_override(void **state)
{
	enum vmm_accel a = VMM_ACCEL_AUTO;
	struct hull_error *err = NULL;
	(void)state;

	assert_int_equal(vmm_accel_resolve(VMM_ACCEL_TCG, &a, NULL), 0);
	assert_int_equal(a, VMM_ACCEL_TCG);
	setenv("HULL_ACCEL", "tcg", 1);
	assert_int_equal(vmm_accel_resolve(VMM_ACCEL_AUTO, &a, NULL), 0);
	assert_int_equal(a, VMM_ACCEL_TCG);
	setenv("HULL_ACCEL", "warp", 1);
	assert_int_equal(vmm_accel_resolve(VMM_ACCEL_AUTO, &a, &err), -EINVAL);
	assert_non_null(strstr(err->msg, "HULL_ACCEL"));
	hull_error_free(err);
	unsetenv("HULL_ACCEL");
	assert_int_equal(vmm_accel_from_string("kvm"), VMM_ACCEL_KVM);
	assert_int_equal(vmm_accel_from_string("xen"), -EINVAL);
	assert_int_equal(vmm_machine_from_string("q35"), VMM_MACHINE_Q35);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_microvm_serial),
	    cmocka_unit_test(test_layer_disks),
	    cmocka_unit_test(test_comma_in_path_is_escaped),
	    cmocka_unit_test(test_q35_kvm_vsock),
	    cmocka_unit_test(test_invalid_configs),
	    cmocka_unit_test(test_kvm_detection),
	    cmocka_unit_test(test_accel_override),
	    cmocka_unit_test(test_user_network),
	    cmocka_unit_test(test_tap_nics),
	    cmocka_unit_test(test_template_memory_backend),
	    cmocka_unit_test(test_clone_incoming),
	    cmocka_unit_test(test_q35_memory_backend),
	    cmocka_unit_test(test_no_memory_backend),
	    cmocka_unit_test(test_mem_path_comma_is_escaped),
	    cmocka_unit_test(test_placeholder_nics),
	    cmocka_unit_test(test_invalid_template_configs),
	};
	return cmocka_run_group_tests_name("vmm-argv", tests, NULL, NULL);
}
