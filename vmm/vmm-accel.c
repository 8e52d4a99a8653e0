/* SPDX-License-Identifier: MIT */
/* Accelerator choice. A /dev/kvm that opens is not proof: on hosts without VMX/SVM
 * (nested setups that expose the device anyway) QEMU aborts or hangs. KVM is chosen
 * only when the CPU advertises virtualisation *and* the device creates a VM. */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "util.h"
#include "vmm.h"

static bool cpuinfo_has_virt(const char *cpuinfo)
{
	_cleanup_fclose_ FILE *f = fopen(cpuinfo, "re");
	char line[8192];

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5) != 0)
			continue;
		for (char *tok = strtok(strchr(line, ':') ? strchr(line, ':') + 1 : line, " \t\n");
		     tok; tok = strtok(NULL, " \t\n"))
			if (strcmp(tok, "vmx") == 0 || strcmp(tok, "svm") == 0)
				return true;
		return false; /* the first CPU speaks for all */
	}
	return false;
}

bool vmm_kvm_usable(const char *dev, const char *cpuinfo, char **ret_why)
{
	_cleanup_close_ int fd = -1, vm = -1;

	if (!cpuinfo_has_virt(cpuinfo)) {
		if (ret_why)
			*ret_why = xasprintf("no vmx/svm flag in %s", cpuinfo);
		return false;
	}
	fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		if (ret_why)
			*ret_why = xasprintf("cannot open %s: %s", dev, strerror(errno));
		return false;
	}
	if (ioctl(fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		if (ret_why)
			*ret_why = xasprintf("%s: unexpected KVM API version", dev);
		return false;
	}
	vm = ioctl(fd, KVM_CREATE_VM, 0);
	if (vm < 0) {
		if (ret_why)
			*ret_why = xasprintf("%s: KVM_CREATE_VM: %s", dev, strerror(errno));
		return false;
	}
	return true;
}

int vmm_accel_resolve(enum vmm_accel want, enum vmm_accel *ret, struct hull_error **err)
{
	_cleanup_free_ char *why = NULL;
	const char *env = getenv("HULL_ACCEL");

	if (want == VMM_ACCEL_AUTO && env && *env) {
		int a = vmm_accel_from_string(env);
		if (a < 0)
			return hull_error_set(err, -EINVAL,
			                      "HULL_ACCEL='%s': want auto, kvm or tcg", env);
		want = (enum vmm_accel)a;
	}
	switch (want) {
	case VMM_ACCEL_TCG:
		*ret = VMM_ACCEL_TCG;
		return 0;
	case VMM_ACCEL_KVM:
		if (!vmm_kvm_usable("/dev/kvm", "/proc/cpuinfo", &why))
			return hull_error_set(err, -ENODEV, "accel kvm requested but unusable: %s",
			                      why);
		*ret = VMM_ACCEL_KVM;
		return 0;
	default:
		*ret = vmm_kvm_usable("/dev/kvm", "/proc/cpuinfo", NULL) ? VMM_ACCEL_KVM
		                                                         : VMM_ACCEL_TCG;
		return 0;
	}
}

bool vmm_vsock_available(void)
{
	return access("/dev/vhost-vsock", R_OK | W_OK) == 0;
}
