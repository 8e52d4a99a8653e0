/* SPDX-License-Identifier: MIT */
/* Process attributes from the spec: rlimits, oom_score_adj, identity, capabilities,
 * no_new_privs, umask. Runs in the container's init between setup and exec. */
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "container-internal.h"
#include "util.h"

int container_apply_rlimits(const struct oci_spec *s, struct hull_error **err)
{
	for (size_t i = 0; i < s->n_rlimits; i++) {
		struct rlimit rl = {.rlim_cur = s->rlimits[i].soft, .rlim_max = s->rlimits[i].hard};
		if (setrlimit(s->rlimits[i].resource, &rl) < 0)
			return hull_error_set_errno(err, -errno, "rlimit %d",
			                            s->rlimits[i].resource);
	}
	return 0;
}

int container_set_oom_score_adj(pid_t pid, const struct oci_spec *s, struct hull_error **err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int fd = -1;
	char v[16];
	int n;

	if (!s->has_oom_score_adj)
		return 0;
	/* From the parent, as runc does: inside a user namespace /proc/self is not ours
	 * to write. */
	path = xasprintf("/proc/%d/oom_score_adj", (int)pid);
	n = snprintf(v, sizeof(v), "%d", s->oom_score_adj);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, v, (size_t)n) != n)
		return hull_error_set_errno(err, -errno, "oom_score_adj %d", s->oom_score_adj);
	return 0;
}

static int cap_last(void)
{
	char buf[16] = "";
	_cleanup_close_ int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) <= 0)
		return CAP_LAST_CAP;
	return atoi(buf);
}

int container_set_identity(const struct container_spec *spec, struct hull_error **err)
{
	const struct oci_spec *s = spec->oci;
	bool caps = s && s->has_caps;
	int last = cap_last();

	if (caps) {
		/* Security: the bounding set goes first, while we still hold CAP_SETPCAP. */
		for (int c = 0; c <= last; c++)
			if (!(s->caps[OCI_CAP_BOUNDING] & (1ull << c)) &&
			    prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0)
				return hull_error_set_errno(
				    err, -errno, "drop capability %d from the bounding set", c);
		/* Keep the permitted set across the uid change; capset() below trims it. */
		if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
			return hull_error_set_errno(err, -errno, "keep capabilities");
	}
	/* Security: drop to the requested identity; groups first, uid last. */
	if (setgroups(spec->n_groups, spec->groups) < 0)
		return hull_error_set_errno(err, -errno, "setgroups");
	if (setresgid(spec->gid, spec->gid, spec->gid) < 0)
		return hull_error_set_errno(err, -errno, "setgid %u", spec->gid);
	if (setresuid(spec->uid, spec->uid, spec->uid) < 0)
		return hull_error_set_errno(err, -errno, "setuid %u", spec->uid);
	if (caps) {
		struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
		struct __user_cap_data_struct data[2] = {0};
		for (int i = 0; i < 2; i++) {
			data[i].effective = (uint32_t)(s->caps[OCI_CAP_EFFECTIVE] >> (32 * i));
			data[i].permitted = (uint32_t)(s->caps[OCI_CAP_PERMITTED] >> (32 * i));
			data[i].inheritable = (uint32_t)(s->caps[OCI_CAP_INHERITABLE] >> (32 * i));
		}
		/* Security: the five sets exactly as the spec says. */
		if (syscall(SYS_capset, &hdr, data) < 0)
			return hull_error_set_errno(err, -errno, "capset");
		/* An ambient capability must also be permitted and inheritable; one that is
		 * not cannot be raised, and runc goes on without it: so do we. */
		for (int c = 0; c <= last; c++)
			if (s->caps[OCI_CAP_AMBIENT] & (1ull << c))
				(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0);
	}
	if (s && s->has_umask)
		umask((mode_t)s->umask);
	return 0;
}

int container_set_no_new_privs(const struct oci_spec *s, struct hull_error **err)
{
	/* Security: execve can no longer grant privileges (setuid bits, file caps). */
	if (s && s->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return hull_error_set_errno(err, -errno, "no_new_privs");
	return 0;
}
