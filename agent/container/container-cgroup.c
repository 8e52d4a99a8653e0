/* SPDX-License-Identifier: MIT */
/* linux.resources on cgroup v2: one cgroup per container under /sys/fs/cgroup/hull. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "container-internal.h"
#include "util.h"

#define CGROUP_ROOT "/sys/fs/cgroup"
#define CGROUP_HULL CGROUP_ROOT "/hull"

static int write_file(const char *dir, const char *file, const char *value)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, file);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return write_all(fd, value, strlen(value));
}

char *container_cgroup_path(const char *id)
{
	return xasprintf(CGROUP_HULL "/%s", id);
}

int container_cgroup_setup(const char *id, const struct oci_spec *s, pid_t pid,
                           struct hull_error **err)
{
	_cleanup_free_ char *dir = container_cgroup_path(id);
	const struct oci_resources *rs = s ? &s->resources : NULL;
	char v[64];
	int r;

	/* Controllers must be enabled on every level above the container's cgroup. */
	(void)mkdir(CGROUP_HULL, 0755);
	(void)write_file(CGROUP_ROOT, "cgroup.subtree_control", "+cpu +cpuset +memory +pids");
	(void)write_file(CGROUP_HULL, "cgroup.subtree_control", "+cpu +cpuset +memory +pids");
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return hull_error_set_errno(err, -errno, "cgroup: mkdir '%s'", dir);

#define SET(file, ...)                                                                   \
	do {                                                                             \
		snprintf(v, sizeof(v), __VA_ARGS__);                                     \
		r = write_file(dir, file, v);                                            \
		if (r < 0)                                                               \
			return hull_error_set_errno(err, r, "cgroup: %s = %s", file, v); \
	} while (0)

	if (rs && s->has_resources) {
		if (rs->has_memory_limit)
			SET("memory.max", rs->memory_limit < 0 ? "max" : "%lld",
			    (long long)rs->memory_limit);
		if (rs->has_memory_reservation)
			SET("memory.low", rs->memory_reservation < 0 ? "max" : "%lld",
			    (long long)rs->memory_reservation);
		/* OCI's swap is memory+swap; v2 counts swap alone. */
		if (rs->has_memory_swap) {
			if (rs->memory_swap < 0)
				SET("memory.swap.max", "max");
			else if (rs->has_memory_limit && rs->memory_limit >= 0)
				SET("memory.swap.max", "%lld",
				    (long long)(rs->memory_swap - rs->memory_limit));
		}
		/* runc's shares -> weight conversion, so both runtimes agree. */
		if (rs->has_cpu_shares && rs->cpu_shares >= 2)
			SET("cpu.weight", "%llu",
			    (unsigned long long)(1 + ((rs->cpu_shares - 2) * 9999) / 262142));
		if (rs->has_cpu_quota || rs->has_cpu_period) {
			unsigned long long period =
			    rs->has_cpu_period && rs->cpu_period ? rs->cpu_period : 100000;
			if (!rs->has_cpu_quota || rs->cpu_quota < 0)
				SET("cpu.max", "max %llu", period);
			else
				SET("cpu.max", "%lld %llu", (long long)rs->cpu_quota, period);
		}
		if (rs->cpuset_cpus && *rs->cpuset_cpus)
			SET("cpuset.cpus", "%s", rs->cpuset_cpus);
		if (rs->cpuset_mems && *rs->cpuset_mems)
			SET("cpuset.mems", "%s", rs->cpuset_mems);
		if (rs->has_pids_limit)
			SET("pids.max", rs->pids_limit <= 0 ? "max" : "%lld",
			    (long long)rs->pids_limit);
	}
	/* Security: the container's init and all it forks are accounted and limited here. */
	SET("cgroup.procs", "%d", (int)pid);
#undef SET
	return 0;
}

bool container_cgroup_oom_killed(const char *id)
{
	_cleanup_free_ char *path = xasprintf(CGROUP_HULL "/%s/memory.events", id);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char key[64];
	unsigned long long n;

	while (f && fscanf(f, "%63s %llu", key, &n) == 2)
		if (strcmp(key, "oom_kill") == 0)
			return n > 0;
	return false;
}

void container_cgroup_remove(const char *id)
{
	_cleanup_free_ char *dir = container_cgroup_path(id);
	(void)rmdir(dir);
}
