/* SPDX-License-Identifier: MIT */
/* hull check: what the host offers, and what hull will use. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "util.h"
#include "vmm.h"

int cli_check(int argc, char **argv)
{
	_cleanup_free_ char *why = NULL, *kernel = sandbox_default_guest_file("vmlinuz"),
	                    *initrd = sandbox_default_guest_file("initramfs.cpio");
	bool kvm = vmm_kvm_usable("/dev/kvm", "/proc/cpuinfo", &why);
	(void)argc;
	(void)argv;

	printf("kvm:     %s%s%s\n", kvm ? "usable" : "not usable", why ? ": " : "", why ? why : "");
	printf("accel:   %s\n", kvm ? "kvm" : "tcg");
	printf("vsock:   %s\n", vmm_vsock_available()
	                            ? "available (/dev/vhost-vsock)"
	                            : "not available: agent channel uses virtio-serial");
	printf("kernel:  %s%s\n", kernel, access(kernel, R_OK) == 0 ? "" : " (missing)");
	printf("initrd:  %s%s\n", initrd, access(initrd, R_OK) == 0 ? "" : " (missing)");
	return 0;
}
