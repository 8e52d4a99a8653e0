/* SPDX-License-Identifier: MIT */
/* The shim's process: an event loop with the Task service (pod/task-service.c) on the
 * shim's socket, signals, and events to containerd. How the first Create boots the pod
 * is the shim's own: its config file, the pod's host cgroup, the bundle's network
 * namespace. */
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>

#include "log.h"
#include "pod-mount.h"
#include "shim-events.pb-c.h"
#include "shim.h"
#include "task-service.h"
#include "ttrpc-server.h"
#include "util.h"

#define STOP_TIMEOUT_MS 5000

struct shim {
	const struct shim_args *a;
	struct event_loop *loop;
	struct ttrpc_server *srv;
	struct task_service *ts;
	struct shim_events *events;
	struct shim_portfwd *portfwd;
	struct shim_config cfg;
	char **cgroups; /* host cgroup dirs we made for the pod (removed at exit) */
	int sig_fd;
	bool shutdown;
};

static char *options_config_path(const Hull__Task__Any *opts)
{
	Hull__Events__RuntimeOptions *o;
	char *path = NULL;
	if (!opts || !opts->value.len)
		return NULL;
	/* runtimeoptions.v1.Options (containerd's CRI runtime `options` table). */
	if (!strstr(opts->type_url, "runtimeoptions.v1.Options"))
		return NULL;
	o = hull__events__runtime_options__unpack(NULL, opts->value.len, opts->value.data);
	if (o && o->config_path[0])
		path = xstrdup(o->config_path);
	if (o)
		hull__events__runtime_options__free_unpacked(o, NULL);
	return path;
}

/* The pod's trust domain (docs/templates.md): the config file's template_domain if the
 * operator set one (every pod shares it), else its Kubernetes namespace, else its
 * containerd namespace. The pod annotation only narrows it (a pod may keep apart from
 * the rest of its namespace, never join another's). */
static int pod_domain(const struct shim *s, const struct bundle *b, char **ret,
                      struct hull_error **err)
{
	const char *ns = s->a->namespace && *s->a->namespace ? s->a->namespace : "default";
	char *base;

	if (b->template_domain && !id_is_valid(b->template_domain))
		return hull_error_set(err, -EINVAL,
		                      "annotation io.hull.template-domain: '%.64s' is not a name "
		                      "(1 to 64 of A-Z a-z 0-9 _ . -, not starting with '.')",
		                      b->template_domain);
	if (s->cfg.vm.template_domain)
		base = xstrdup(s->cfg.vm.template_domain);
	else if (b->k8s_namespace && id_is_valid(b->k8s_namespace))
		base = xasprintf("k8s-%s", b->k8s_namespace);
	else
		base = xasprintf("ctd-%s", id_is_valid(ns) ? ns : "default");
	if (b->template_domain) {
		*ret = xasprintf("%s.%s", base, b->template_domain);
		free(base);
	} else {
		*ret = base;
	}
	return 0;
}

static int boot(void *userdata, struct pod *pod, const Hull__Task__Any *options,
                const struct bundle *b, struct hull_error **err)
{
	struct shim *s = userdata;
	_cleanup_free_ char *config_path = options_config_path(options);
	struct pod_config pc = {0};
	int r;

	shim_config_done(&s->cfg);
	r = shim_config_load(config_path, config_path != NULL, &s->cfg, err);
	if (r < 0)
		return r;
	/* The node's namespaces cannot reach into a VM (docs/kubernetes.md): a pod
	 * asking for them fails by name rather than running without what it asked for.
	 * hostPID gets the VM's PID namespace, which the pod's hostPID containers share. */
	if (b->host_network)
		return hull_error_set(
		    err, -EINVAL,
		    "hostNetwork (no network namespace in linux.namespaces): a "
		    "hull pod runs in a VM, which cannot share the node's network "
		    "namespace; give the pod a network of its own");
	if (b->host_ipc)
		return hull_error_set(
		    err, -EINVAL,
		    "hostIPC (no ipc namespace in linux.namespaces): a hull pod runs "
		    "in a VM, which cannot share the node's IPC objects");
	if (b->host_pid)
		log_info("hostPID: the pod's containers share the VM's PID namespace, not the "
		         "node's");
	log_set_level((enum log_level)(s->a->debug ? LOG_LEVEL_DEBUG : s->cfg.log_level));
	/* The pod's cgroup first: QEMU inherits it. */
	r = shim_cgroup_join(b->cgroups_path, &s->cgroups, err);
	if (r < 0)
		return r;
	/* The sandbox is named after the shim's first task (the pod sandbox in
	 * Kubernetes), so hull's tools and the cleanup find it. */
	pc.id = id_is_valid(s->a->id) ? s->a->id : NULL;
	{
		char *domain = NULL;
		r = pod_domain(s, b, &domain, err);
		if (r < 0)
			return r;
		free(s->cfg.vm.template_domain);
		s->cfg.vm.template_domain = domain;
	}
	pc.vm = &s->cfg.vm;
	pc.netns = b->netns_path;
	pc.debug = log_get_level() >= LOG_LEVEL_DEBUG;
	r = pod_boot(pod, &pc, err);
	if (r == 0 && b->netns_path)
		s->portfwd = shim_portfwd_new(s->loop, pod, b->netns_path);
	return r;
}

static void publish(void *userdata, const char *topic, const char *name,
                    const ProtobufCMessage *event)
{
	struct shim *s = userdata;
	if (s->events)
		shim_events_publish(s->events, topic, name, event);
}

static void shutdown_asked(void *userdata)
{
	struct shim *s = userdata;
	s->shutdown = true;
}

static const struct task_service_ops ops = {
    .boot = boot,
    .publish = publish,
    .shutdown = shutdown_asked,
};

int shim_serve(const struct shim_args *a, const char *sock_path, int ready_fd)
{
	struct shim s = {.a = a, .sig_fd = -1};
	_cleanup_error_ struct hull_error *err = NULL;
	const struct ttrpc_method *methods;
	size_t n_methods;
	int r;

	/* The pod's mounts (rootfs, volume binds) in a mount namespace of the shim's own:
	 * the node never holds them, so a host directory under a volume can be unmounted
	 * and removed while the pod runs, and they go with the shim even on SIGKILL.
	 * Host mounts still propagate in. */
	if (pod_private_mounts(&err) < 0) {
		log_warn("%s: the pod's mounts stay in the node's namespace", err->msg);
		err = hull_error_free(err);
	}
	shim_config_defaults(&s.cfg);
	s.loop = event_loop_new();
	s.sig_fd = event_add_stop_signals(s.loop, &s.shutdown);
	if (a->ttrpc_address && *a->ttrpc_address)
		s.events = shim_events_new(s.loop, a->ttrpc_address, a->namespace);
	s.ts = task_service_new(s.loop, &ops, &s);
	methods = task_service_methods(&n_methods);
	s.srv = ttrpc_server_new(s.loop, methods, n_methods, s.ts);
	if (ttrpc_server_listen(s.srv, sock_path, &err) < 0) {
		dprintf(ready_fd, "%s\n", err->msg);
		close(ready_fd);
		r = 1;
		goto out;
	}
	(void)!write(ready_fd, "ok\n", 3);
	close(ready_fd);

	while (!s.shutdown) {
		r = event_loop_once(s.loop, -1);
		if (r < 0) {
			log_error("event loop: %s", strerror(-r));
			break;
		}
	}
	log_info("shutting down");
	/* What containerd should still hear (the last events), for a moment. */
	for (int i = 0; i < 50 && shim_events_queued(s.events); i++)
		(void)event_loop_once(s.loop, 20);
	r = 0;
out:
	s.srv = ttrpc_server_free(s.srv);
	(void)unlink(sock_path);
	/* Port-forwards ride the pod's streams; then the VM, every host mount of the pod,
	 * its state. */
	s.portfwd = shim_portfwd_free(s.portfwd);
	s.ts = task_service_free(s.ts, STOP_TIMEOUT_MS);
	shim_cgroup_leave(s.cgroups);
	strv_free(s.cgroups);
	s.events = shim_events_free(s.events);
	s.loop = event_loop_free(s.loop);
	if (s.sig_fd >= 0)
		close(s.sig_fd);
	shim_config_done(&s.cfg);
	return r;
}
