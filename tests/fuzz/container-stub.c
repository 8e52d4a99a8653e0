/* SPDX-License-Identifier: MIT */
/* Stand-in for the container engine in the agent fuzzer: requests get all the way
 * through validation, then creation is refused; no process, mount or signal happens. */
#include <sys/socket.h>
#include <unistd.h>

#include "agent-net.h"
#include "container/container.h"

int container_create(const struct container_spec *spec, struct container_process *ret,
                     struct hull_error **err)
{
	(void)ret;
	return hull_error_set(err, -EPERM, "fuzzing: not creating '%s'", spec->id);
}

int container_start(struct container_process *proc, struct hull_error **err)
{
	(void)proc;
	return hull_error_set(err, -EPERM, "fuzzing");
}

void container_cleanup_dir(const char *id)
{
	(void)id;
}

bool container_cgroup_oom_killed(const char *id)
{
	(void)id;
	return false;
}

void container_cgroup_remove(const char *id)
{
	(void)id;
}

int container_exec(const struct container_spec *container, pid_t init_pid, const char *process_json,
                   size_t len, struct container_process *ret, struct hull_error **err)
{
	(void)container, (void)init_pid, (void)process_json, (void)len, (void)ret;
	return hull_error_set(err, -EPERM, "fuzzing");
}

int container_cgroup_stats(const char *id, struct container_stats *ret)
{
	(void)id;
	*ret = (struct container_stats){0};
	return 0;
}

int container_cgroup_update(const char *id, const char *json, size_t len, struct hull_error **err)
{
	(void)id, (void)json, (void)len;
	return hull_error_set(err, -EPERM, "fuzzing");
}

int container_cgroup_freeze(const char *id, bool frozen, struct hull_error **err)
{
	(void)id, (void)frozen;
	return hull_error_set(err, -EPERM, "fuzzing");
}

int container_cgroup_pids(const char *id, uint32_t **ret, size_t *ret_n)
{
	(void)id;
	*ret = NULL;
	*ret_n = 0;
	return 0;
}

/* The guest network: checked as the agent checks it, never applied to the host's. */
int net_configure(const Hull__Agent__V1__ConfigureNetworkRequest *req, struct hull_error **err)
{
	struct net_plan plan;
	return net_validate(req, &plan, err);
}

/* A forward connects to nothing real: one end of a socketpair, the other end closed,
 * so the forward sees its server hang up. */
int net_dial_local(unsigned port, struct hull_error **err)
{
	int sv[2];
	(void)port;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return hull_error_set_errno(err, -errno, "socketpair");
	close(sv[1]);
	return sv[0];
}

int net_loopback_up(struct hull_error **err)
{
	(void)err;
	return 0;
}
