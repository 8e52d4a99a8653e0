/* SPDX-License-Identifier: MIT */
/* hull check: what the host offers, and what hull will use. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "util.h"
#include "vmm.h"

char *cli_default_guest_file(const char *name)
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

int cli_check(int argc, char **argv)
{
	_cleanup_free_ char *why = NULL, *kernel = cli_default_guest_file("vmlinuz"),
	                    *initrd = cli_default_guest_file("initramfs.cpio");
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
