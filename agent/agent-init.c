/* SPDX-License-Identifier: MIT */
/* The agent's PID 1 duties: move off the initramfs, mount the kernel filesystems (a data
 * table), and power the VM off in a way that makes QEMU exit. */
#include "agent.h"

#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "util.h"

struct init_mount {
	const char *source, *target, *fstype;
	unsigned long flags;
	const char *data;
};

static const struct init_mount init_mounts[] = {
    {"proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL},
    {"sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL},
    {"devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755"},
    {"devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "ptmxmode=0666,mode=0620,gid=5"},
    {"shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"},
    {"run", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"},
    {"tmp", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"},
    {"cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL},
};

uint64_t agent_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The initramfs root ("rootfs") cannot be pivot_root'ed away from, which containers
 * need. Do what switch_root does: a tmpfs moved over / and chrooted into. */
static int leave_initramfs(void)
{
	if (mkdir("/root.tmp", 0755) < 0 && errno != EEXIST)
		return -errno;
	if (mount("root", "/root.tmp", "tmpfs", 0, "mode=0755") < 0)
		return -errno;
	/* The running image stays mapped; freeing the file returns its pages. */
	(void)unlink("/init");
	if (chdir("/root.tmp") < 0)
		return -errno;
	/* Security: from here on the initramfs is shadowed and unreachable. */
	if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
		return -errno;
	if (chroot(".") < 0 || chdir("/") < 0)
		return -errno;
	return 0;
}

int agent_init_system(void)
{
	int r;

	if (getpid() != 1)
		return 0; /* run by hand (tests): the system is someone else's */

	r = leave_initramfs();
	if (r < 0)
		return r;
	for (size_t i = 0; i < ELEMENTSOF(init_mounts); i++) {
		const struct init_mount *m = &init_mounts[i];
		if (mkdir_p(m->target, 0755) < 0)
			return -errno;
		if (mount(m->source, m->target, m->fstype, m->flags, m->data) < 0)
			return -errno;
	}
	/* Without /dev/console in the initramfs the kernel gave us no stdio. */
	if (fcntl(STDERR_FILENO, F_GETFD) < 0) {
		int fd = open("/dev/console", O_RDWR | O_NOCTTY);
		if (fd >= 0) {
			for (int i = 0; i < 3; i++)
				dup2(fd, i);
			if (fd > 2)
				close(fd);
		}
	}
	(void)symlink("/proc/self/fd", "/dev/fd");
	return 0;
}

void agent_poweroff(const char *why)
{
	if (why)
		log_error("powering off: %s", why);
	sync();
	/* With reboot=t on the command line and QEMU's -no-reboot, a reboot ends QEMU on
	 * every machine model (microvm has no ACPI power-off). */
	if (getpid() == 1)
		reboot(RB_AUTOBOOT);
	_exit(why ? 1 : 0);
}
