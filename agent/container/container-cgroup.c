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

static int apply_resources(const char *dir, const struct oci_spec *s, struct hull_error **err)
{
	const struct oci_resources *rs = s ? &s->resources : NULL;
	char v[64];
	int r;

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
#undef SET
	return 0;
}

int container_cgroup_setup(const char *id, const struct oci_spec *s, pid_t pid,
                           struct hull_error **err)
{
	_cleanup_free_ char *dir = container_cgroup_path(id);
	char v[16];
	int r;

	/* Controllers must be enabled on every level above the container's cgroup. */
	(void)mkdir(CGROUP_HULL, 0755);
	(void)write_file(CGROUP_ROOT, "cgroup.subtree_control", "+cpu +cpuset +memory +pids");
	(void)write_file(CGROUP_HULL, "cgroup.subtree_control", "+cpu +cpuset +memory +pids");
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return hull_error_set_errno(err, -errno, "cgroup: mkdir '%s'", dir);
	r = apply_resources(dir, s, err);
	if (r < 0)
		return r;
	/* Security: the container's init and all it forks are accounted and limited here. */
	snprintf(v, sizeof(v), "%d", (int)pid);
	r = write_file(dir, "cgroup.procs", v);
	return r < 0 ? hull_error_set_errno(err, r, "cgroup: move %d into '%s'", (int)pid, dir) : 0;
}

int container_cgroup_update(const char *id, const char *json, size_t len, struct hull_error **err)
{
	_cleanup_free_ char *dir = container_cgroup_path(id);
	struct oci_spec s;
	int r = oci_resources_parse(json, len, &s, err);
	if (r < 0)
		return r;
	r = apply_resources(dir, &s, err);
	oci_spec_done(&s);
	return r;
}

static int read_u64(const char *dir, const char *file, const char *key, uint64_t *ret)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, file);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char k[64], val[64];

	*ret = 0;
	if (!f)
		return -errno;
	if (!key) {
		if (fscanf(f, "%63s", val) != 1)
			return -EIO;
		*ret = strcmp(val, "max") == 0 ? 0 : strtoull(val, NULL, 10);
		return 0;
	}
	while (fscanf(f, "%63s %63s", k, val) == 2)
		if (strcmp(k, key) == 0) {
			*ret = strtoull(val, NULL, 10);
			return 0;
		}
	return -ENOENT;
}

int container_cgroup_stats(const char *id, struct container_stats *ret)
{
	_cleanup_free_ char *dir = container_cgroup_path(id);
	*ret = (struct container_stats){0};
	if (access(dir, F_OK) < 0)
		return -errno;
	(void)read_u64(dir, "cpu.stat", "usage_usec", &ret->cpu_usage_usec);
	(void)read_u64(dir, "memory.current", NULL, &ret->memory_current);
	(void)read_u64(dir, "memory.max", NULL, &ret->memory_limit);
	(void)read_u64(dir, "pids.current", NULL, &ret->pids_current);
	(void)read_u64(dir, "pids.max", NULL, &ret->pids_limit);
	(void)read_u64(dir, "memory.events", "oom_kill", &ret->oom_kills);
	return 0;
}

int container_cgroup_freeze(const char *id, bool frozen, struct hull_error **err)
{
	_cleanup_free_ char *dir = container_cgroup_path(id);
	uint64_t state = 0;
	int r = write_file(dir, "cgroup.freeze", frozen ? "1" : "0");

	if (r < 0)
		return hull_error_set_errno(err, r, "cgroup: %s '%s'", frozen ? "freeze" : "thaw",
		                            dir);
	/* Freezing completes asynchronously: cgroup.events says when. */
	for (int i = 0; i < 1000; i++) {
		if (read_u64(dir, "cgroup.events", "frozen", &state) == 0 &&
		    state == (frozen ? 1 : 0))
			return 0;
		usleep(1000);
	}
	return hull_error_set(err, -ETIMEDOUT, "cgroup: '%s' did not %s within 1 s", dir,
	                      frozen ? "freeze" : "thaw");
}

int container_cgroup_pids(const char *id, uint32_t **ret, size_t *ret_n)
{
	_cleanup_free_ char *path = xasprintf(CGROUP_HULL "/%s/cgroup.procs", id);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	unsigned long pid;
	size_t n = 0;

	*ret = NULL;
	if (!f)
		return -errno;
	while (n < 65536 && fscanf(f, "%lu", &pid) == 1) {
		*ret = xrealloc(*ret, (n + 1) * sizeof(uint32_t));
		(*ret)[n++] = (uint32_t)pid;
	}
	*ret_n = n;
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
