/* SPDX-License-Identifier: MIT */
/* The CRI RuntimeService: pods and containers, each pod one shim and one VM.
 *
 * Every call that waits on a shim (a VM booting, a container stopping) keeps its gRPC
 * call and answers from the ttrpc reply: the loop goes on serving everyone else. A pod
 * or container has at most one such operation in flight; a second one is refused with
 * ABORTED ("busy"), and kubelet retries. Task exits reach us as the shims' events on
 * our TTRPC_ADDRESS, as they reach containerd. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "cri-log.h"
#include "cri-shim.h"
#include "cri-spec.h"
#include "cni.h"
#include "cri-internal.h"
#include "cri-stream.h"
#include "cri.h"
#include "image.h"
#include "json.h"
#include "log.h"
#include "shim-events.pb-c.h"
#include "shim-task.pb-c.h"
#include "ttrpc-server.h"
#include "ttrpc.h"
#include "util.h"

/* ---- small helpers ---- */

/* An owned deep copy of a message built from borrowed parts: what a handler returns. */
ProtobufCMessage *msg_own(const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	_cleanup_free_ uint8_t *b = xmalloc(n + 1);
	protobuf_c_message_pack(m, b);
	ProtobufCMessage *r = protobuf_c_message_unpack(m->descriptor, NULL, n, b);
	if (!r)
		abort();
	return r;
}

void *msg_dup(const ProtobufCMessage *m)
{
	return m ? msg_own(m) : NULL;
}

/* Map entries (every CRI map is string -> string) of any message type, borrowing the
 * strings: free with kv_free(). */
struct kv_entry {
	ProtobufCMessage base;
	char *key;
	char *value;
};

void *kv_copy(const ProtobufCMessageDescriptor *d, void *const *in, size_t n)
{
	struct kv_entry **out = xcalloc(n + 1, sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		const struct kv_entry *e = in[i];
		out[i] = xcalloc(1, d->sizeof_message);
		protobuf_c_message_init(d, out[i]);
		out[i]->key = e->key;
		out[i]->value = e->value;
	}
	return out;
}

void kv_free(void *v, size_t n)
{
	void **p = v;
	for (size_t i = 0; p && i < n; i++)
		free(p[i]);
	free(p);
}

bool labels_match(void *const *have, size_t n_have, void *const *want, size_t n_want)
{
	for (size_t i = 0; i < n_want; i++) {
		const struct kv_entry *w = want[i];
		bool found = false;
		for (size_t k = 0; k < n_have && !found; k++) {
			const struct kv_entry *h = have[k];
			found = strcmp(h->key, w->key) == 0 && strcmp(h->value, w->value) == 0;
		}
		if (!found)
			return false;
	}
	return true;
}

int invalid(struct hull_error **err, const char *field, const char *why)
{
	return hull_error_set(err, -EINVAL, "%s: %s", field, why);
}

int busy(struct hull_error **err, const char *what, const char *id)
{
	return hull_error_set(err, grpc_error_code(TTRPC_ABORTED),
	                      "%s '%s' is busy with another call; retry", what, id);
}

/* Find by full id or a unique prefix (crictl passes prefixes). */
struct cri_pod *pod_find(struct cri *c, const char *id)
{
	struct cri_pod *hit = NULL;
	size_t n = strlen(id);
	if (n == 0)
		return NULL;
	for (struct cri_pod *p = c->pods; p; p = p->next) {
		if (strcmp(p->id, id) == 0)
			return p;
		if (strncmp(p->id, id, n) == 0) {
			if (hit)
				return NULL;
			hit = p;
		}
	}
	return hit;
}

struct cri_ctr *ctr_find(struct cri *c, const char *id)
{
	struct cri_ctr *hit = NULL;
	size_t n = strlen(id);
	if (n == 0)
		return NULL;
	for (struct cri_ctr *k = c->ctrs; k; k = k->next) {
		if (strcmp(k->id, id) == 0)
			return k;
		if (strncmp(k->id, id, n) == 0) {
			if (hit)
				return NULL;
			hit = k;
		}
	}
	return hit;
}

struct cri_ctr *ctr_get(struct cri *c, const char *id, bool running, struct hull_error **err)
{
	struct cri_ctr *k = ctr_find(c, id);
	if (!k) {
		hull_error_set(err, -ENOENT, "container '%.80s' not found", id);
		return NULL;
	}
	if (running &&
	    (k->state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING || !k->pod->shim)) {
		hull_error_set(err, grpc_error_code(TTRPC_FAILED_PRECONDITION),
		               "container '%s' is not running", k->id);
		return NULL;
	}
	return k;
}

uint32_t shim_call(struct cri_pod *p, const char *method, const ProtobufCMessage *msg,
                   int timeout_ms, ttrpc_reply_cb cb, void *userdata)
{
	if (!p->shim)
		return 0;
	return ttrpc_client_call(p->shim, method, msg, 0, timeout_ms, cb, NULL, userdata);
}

/* ---- pods: records ---- */

static void pod_free(struct cri_pod *p)
{
	struct cri *c = p->c;
	for (struct cri_pod **pp = &c->pods; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	cri_exec_abort_all(p, "the pod is gone");
	p->shim = ttrpc_client_free(p->shim);
	p->cni = cni_forget(p->cni);
	if (p->config)
		runtime__v1__pod_sandbox_config__free_unpacked(p->config, NULL);
	free(p->id);
	free(p->handler);
	free(p->dir);
	free(p->address);
	free(p->fail_msg);
	free(p);
}

/* The shim went away (its VM died, it was killed): the pod is over, and so is every
 * container in it. */
void pod_lost(struct cri_pod *p, const char *why)
{
	if (p->state == RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY && !p->call)
		log_warn("pod '%s': %s", p->id, why);
	p->state = RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_NOTREADY;
	for (struct cri_ctr *k = p->c->ctrs; k; k = k->next)
		if (k->pod == p && k->state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED) {
			if (k->state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED) {
				k->state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED;
				k->finished_at = cri_now_ns();
				k->exit_code = 128 + SIGKILL;
				k->reason = xstrdup("Error");
			} else {
				ctr_set_exited(k, 128 + SIGKILL, 0);
			}
			free(k->message);
			k->message = xstrdup(why);
		}
	cri_pod_save(p);
	for (struct cri_ctr *k = p->c->ctrs; k; k = k->next)
		if (k->pod == p)
			cri_ctr_save(k);
}

void on_shim_error(struct ttrpc_client *tc, const struct hull_error *err, void *userdata)
{
	struct cri_pod *p = userdata;
	(void)tc;
	_cleanup_free_ char *why = xasprintf("the pod's shim is gone: %s", err->msg);
	pod_lost(p, why);
}

/* What a failed or removed pod leaves goes away off the loop: `shim delete` waits for
 * a dying shim, and unmounting can block. */
struct cleanup {
	char *id, *binary, *dir;
	struct cni *cni;
	const struct cri *c;
};

static void cleanup_work(void *arg)
{
	struct cleanup *w = arg;
	if (w->id)
		cri_shim_delete(w->c, w->binary, w->id, w->dir);
	w->cni = cni_teardown(w->cni);
	if (w->dir)
		rm_tree(w->dir);
}

static void cleanup_done(struct cri *c, void *arg)
{
	struct cleanup *w = arg;
	(void)c;
	free(w->id);
	free(w->binary);
	free(w->dir);
	free(w);
}

const char *pod_shim_binary(const struct cri_pod *p)
{
	return pod_host_kernel(p) ? p->c->cfg.runc_shim : p->c->cfg.shim_binary;
}

bool pod_host_kernel(const struct cri_pod *p)
{
	return strcmp(p->handler, "runc") == 0;
}

void cleanup_later(struct cri *c, const struct cri_pod *shim_of, const char *dir, struct cni *cni)
{
	struct cleanup *w = xcalloc(1, sizeof(*w));
	w->id = shim_of ? xstrdup(shim_of->id) : NULL;
	w->binary = shim_of ? xstrdup(pod_shim_binary(shim_of)) : NULL;
	w->dir = dir ? xstrdup(dir) : NULL;
	w->cni = cni;
	w->c = c;
	if (cri_run_work(c, cleanup_work, cleanup_done, w) < 0) {
		cleanup_work(w);
		cleanup_done(c, w);
	}
}

/* ---- RunPodSandbox ---- */

static void pod_fail_finish(struct cri_pod *p)
{
	struct cri *c = p->c;
	struct hull_error e = {.code = p->fail_code, .msg = TAKE_PTR(p->fail_msg)};
	struct grpc_call *call = p->call;

	p->call = NULL;
	cri_pod_forget(p);
	cleanup_later(c, p->address ? p : NULL, p->dir, TAKE_PTR(p->cni));
	pod_free(p);
	grpc_call_reply(call, e.code, &e, NULL);
	free(e.msg);
}

static void on_fail_shutdown(struct ttrpc_client *tc, int code, const char *message,
                             const uint8_t *payload, size_t len, void *userdata)
{
	(void)tc, (void)code, (void)message, (void)payload, (void)len;
	pod_fail_finish(userdata);
}

/* A RunPodSandbox that fails leaves nothing: the shim is told to stop its VM and exit
 * (Shutdown now), then `shim delete` sweeps what is left and the state goes. */
static void pod_fail_run(struct cri_pod *p, int r, const char *msg)
{
	Hull__Task__ShutdownRequest sr = HULL__TASK__SHUTDOWN_REQUEST__INIT;

	p->fail_code = r;
	p->fail_msg = xasprintf("run pod sandbox: %s", msg);
	log_warn("pod '%s': %s", p->id, p->fail_msg);
	sr.id = p->id;
	sr.now = true;
	if (!shim_call(p, "Shutdown", &sr.base, SHIM_CALL_TIMEOUT_MS, on_fail_shutdown, p))
		pod_fail_finish(p);
}

static void on_pod_started(struct ttrpc_client *tc, int code, const char *message,
                           const uint8_t *payload, size_t len, void *userdata)
{
	struct cri_pod *p = userdata;
	Runtime__V1__RunPodSandboxResponse resp = RUNTIME__V1__RUN_POD_SANDBOX_RESPONSE__INIT;
	(void)tc;

	if (code != TTRPC_OK) {
		_cleanup_free_ char *m = xasprintf("start the sandbox task: %s", message);
		pod_fail_run(p, ttrpc_errno_from_code(code), m);
		return;
	}
	/* The sandbox process exists from Start on: its pid is the one containers join. */
	Hull__Task__StartResponse *sr = hull__task__start_response__unpack(NULL, len, payload);
	if (sr) {
		if (sr->pid)
			p->pid = sr->pid;
		hull__task__start_response__free_unpacked(sr, NULL);
	}
	p->state = RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY;
	cri_pod_save(p);
	resp.pod_sandbox_id = p->id;
	log_info("pod '%s' (%s/%s) is ready", p->id, p->config->metadata->namespace_,
	         p->config->metadata->name);
	struct grpc_call *call = p->call;
	p->call = NULL;
	grpc_call_reply(call, 0, NULL, &resp.base);
}

static void on_pod_created(struct ttrpc_client *tc, int code, const char *message,
                           const uint8_t *payload, size_t len, void *userdata)
{
	struct cri_pod *p = userdata;
	Hull__Task__StartRequest sr = HULL__TASK__START_REQUEST__INIT;
	(void)tc;

	if (code != TTRPC_OK) {
		_cleanup_free_ char *m = xasprintf("boot the VM: %s", message);
		pod_fail_run(p, ttrpc_errno_from_code(code), m);
		return;
	}
	Hull__Task__CreateTaskResponse *r =
	    hull__task__create_task_response__unpack(NULL, len, payload);
	if (!r) {
		pod_fail_run(p, -EPROTO, "the shim's Create answer does not decode");
		return;
	}
	p->pid = r->pid;
	hull__task__create_task_response__free_unpacked(r, NULL);
	sr.id = p->id;
	if (!shim_call(p, "Start", &sr.base, SHIM_CALL_TIMEOUT_MS, on_pod_started, p))
		pod_fail_run(p, -EIO, "the shim's connection failed");
}

/* The sandbox task's process: a static pause in an otherwise empty root. */
static int make_sandbox_rootfs(struct cri *c, const char *dir, struct hull_error **err)
{
	_cleanup_free_ char *root = xasprintf("%s/rootfs", dir);
	_cleanup_free_ char *dst = xasprintf("%s/pause", root);
	if (mkdir(root, 0755) < 0)
		return hull_error_set_errno(err, -errno, "mkdir '%s'", root);
	if (link(c->cfg.pause_binary, dst) == 0)
		return 0;
	/* Another filesystem: copy it. */
	_cleanup_close_ int in = open(c->cfg.pause_binary, O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	char b[65536];
	ssize_t n;
	if (in < 0 || out < 0)
		return hull_error_set_errno(err, -errno, "pause '%s'", c->cfg.pause_binary);
	while ((n = read(in, b, sizeof(b))) > 0)
		if (write_all(out, b, (size_t)n) < 0)
			return hull_error_set_errno(err, -errno, "copy pause");
	return n < 0 ? hull_error_set_errno(err, -errno, "read pause") : 0;
}

int write_file(const char *path, const char *text, struct hull_error **err)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write_all(fd, text, strlen(text)) < 0)
		return hull_error_set_errno(err, -errno, "write '%s'", path);
	return 0;
}

static void set_shim_options(struct cri *c, Hull__Task__Any *any, uint8_t **buf)
{
	Hull__Events__RuntimeOptions o = HULL__EVENTS__RUNTIME_OPTIONS__INIT;
	if (!c->cfg.shim_config)
		return;
	o.config_path = c->cfg.shim_config;
	*buf = xmalloc(protobuf_c_message_get_packed_size(&o.base) + 1);
	any->type_url = (char *)"runtimeoptions.v1.Options";
	any->value.len = protobuf_c_message_pack(&o.base, *buf);
	any->value.data = *buf;
}

/* The pod's /etc/hostname, /etc/hosts and /etc/resolv.conf, kept in its directory and
 * bound into each container as containerd does: the DNS config kubelet gives, else the
 * host's resolv.conf. */
static int write_pod_files(const struct cri_pod *p, struct hull_error **err)
{
	const Runtime__V1__PodSandboxConfig *pc = p->config;
	_cleanup_free_ char *path = NULL, *text = NULL;
	const char *hostname = *pc->hostname ? pc->hostname : pc->metadata->name;
	int r;

	path = xasprintf("%s/hostname", p->dir);
	text = xasprintf("%s\n", hostname);
	r = write_file(path, text, err);
	if (r < 0)
		return r;
	free(path);
	free(text);
	path = xasprintf("%s/hosts", p->dir);
	text = xasprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	                 "127.0.1.1\t%s\n",
	                 hostname);
	r = write_file(path, text, err);
	if (r < 0)
		return r;
	free(path);
	free(text);
	text = NULL;
	path = xasprintf("%s/resolv.conf", p->dir);
	if (pc->dns_config && (pc->dns_config->n_servers || pc->dns_config->n_searches ||
	                       pc->dns_config->n_options)) {
		const Runtime__V1__DNSConfig *d = pc->dns_config;
		struct buf b = {0};
		for (size_t i = 0; i < d->n_servers; i++) {
			_cleanup_free_ char *l = xasprintf("nameserver %s\n", d->servers[i]);
			buf_append(&b, l, strlen(l));
		}
		if (d->n_searches) {
			buf_append(&b, "search", 6);
			for (size_t i = 0; i < d->n_searches; i++) {
				buf_append(&b, " ", 1);
				buf_append(&b, d->searches[i], strlen(d->searches[i]));
			}
			buf_append(&b, "\n", 1);
		}
		if (d->n_options) {
			buf_append(&b, "options", 7);
			for (size_t i = 0; i < d->n_options; i++) {
				buf_append(&b, " ", 1);
				buf_append(&b, d->options[i], strlen(d->options[i]));
			}
			buf_append(&b, "\n", 1);
		}
		buf_append(&b, "", 1);
		r = write_file(path, (const char *)buf_head(&b), err);
		buf_release(&b);
	} else {
		_cleanup_close_ int fd = open("/etc/resolv.conf", O_RDONLY | O_CLOEXEC);
		char host[16384];
		ssize_t n = fd < 0 ? 0 : read_all(fd, host, sizeof(host) - 1);
		host[n > 0 ? n : 0] = '\0';
		r = write_file(path, host, err);
	}
	return r;
}

/* The pod's files for a spec. */
void spec_pod(const struct cri_pod *p, struct cri_spec_pod *sp, char *paths[3])
{
	paths[0] = xasprintf("%s/hostname", p->dir);
	paths[1] = xasprintf("%s/hosts", p->dir);
	paths[2] = xasprintf("%s/resolv.conf", p->dir);
	*sp = (struct cri_spec_pod){.id = p->id,
	                            .config = p->config,
	                            .netns_path = p->cni ? p->cni->netns : NULL,
	                            .sandbox_pid = p->pid,
	                            .cgroup_driver = p->c->cfg.cgroup_driver,
	                            .hostname_path = paths[0],
	                            .hosts_path = paths[1],
	                            .resolv_path = paths[2],
	                            .host_kernel = pod_host_kernel(p),
	                            .oom_score_adj_floor = p->c->oom_floor};
}

void spec_pod_done(char *paths[3])
{
	for (int i = 0; i < 3; i++)
		free(paths[i]);
}

/* A small file of the image's tree (its /etc/passwd), or NULL. */
char *read_small(const char *tree, const char *name)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", tree, name);
	/* Security: the image's own file, not what a symlink in it names on the host. */
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	char *text;
	ssize_t n;
	if (fd < 0)
		return NULL;
	text = xmalloc(1u << 20);
	n = read_all(fd, text, (1u << 20) - 1);
	if (n < 0) {
		free(text);
		return NULL;
	}
	text[n] = '\0';
	return text;
}

/* Which runtime handler serves the pod (*ret_handler: "hull" or "runc"), and the
 * checks of its config that do not depend on the spec. A pod a VM cannot serve
 * honestly (hostNetwork, hostIPC) goes to runc when the config says so
 * (host_namespaces = "runc"), is refused otherwise (docs/kubernetes.md). */
static int pod_handler(const struct cri *c, const Runtime__V1__RunPodSandboxRequest *req,
                       const char **ret_handler, struct hull_error **err)
{
	const Runtime__V1__PodSandboxConfig *pc = req->config;
	const Runtime__V1__NamespaceOption *ns = NULL;
	const char *h = req->runtime_handler;
	bool host_net, host_ipc;

	if (!pc)
		return invalid(err, "config", "missing");
	if (!pc->metadata || !*pc->metadata->name || !*pc->metadata->namespace_ ||
	    !*pc->metadata->uid)
		return invalid(err, "config.metadata", "name, namespace and uid are required");
	if (*h && strcmp(h, "hull") != 0 && strcmp(h, "runc") != 0)
		return hull_error_set(
		    err, -EINVAL,
		    "runtime_handler '%.64s': hull-cri serves 'hull' (the default) "
		    "and 'runc'",
		    h);
	if (strcmp(h, "runc") == 0 && !c->cfg.runc_shim)
		return hull_error_set(err, -EINVAL,
		                      "runtime_handler 'runc': containerd-shim-runc-v2 is not "
		                      "installed (or set runc_shim)");
	if (pc->linux && pc->linux->security_context)
		ns = pc->linux->security_context->namespace_options;
	host_net = ns && ns->network == RUNTIME__V1__NAMESPACE_MODE__NODE;
	host_ipc = ns && ns->ipc == RUNTIME__V1__NAMESPACE_MODE__NODE;
	if (strcmp(h, "runc") == 0) {
		*ret_handler = "runc";
		return 0;
	}
	if ((host_net || host_ipc) && c->cfg.host_namespaces_to_runc && c->cfg.runc_shim) {
		log_info("pod '%s/%s' shares the node's %s: it runs with runc (host_namespaces)",
		         pc->metadata->namespace_, pc->metadata->name,
		         host_net ? "network" : "IPC objects");
		*ret_handler = "runc";
		return 0;
	}
	/* docs/kubernetes.md: a VM cannot share the node's network or IPC objects. */
	if (host_net)
		return invalid(err, "config.linux.security_context.namespace_options.network",
		               "NODE (hostNetwork) is not supported by the hull runtime: a VM "
		               "cannot share the node's network namespace (hull-cri's "
		               "host_namespaces = \"runc\" runs such pods with runc)");
	if (host_ipc)
		return invalid(err, "config.linux.security_context.namespace_options.ipc",
		               "NODE (hostIPC) is not supported by the hull runtime: a VM cannot "
		               "share the node's IPC objects (hull-cri's host_namespaces = "
		               "\"runc\" runs such pods with runc)");
	*ret_handler = "hull";
	return 0;
}

/* A CNI network is configured when the conf dir holds a .conf, .conflist or .json. */
static bool cni_configured(const char *dir, char **why)
{
	DIR *d = opendir(dir);
	bool ok = false;
	if (!d) {
		*why = xasprintf("no CNI configuration: '%s': %s", dir, strerror(errno));
		return false;
	}
	for (struct dirent *e; (e = readdir(d)) && !ok;) {
		const char *dot = strrchr(e->d_name, '.');
		ok = dot && (strcmp(dot, ".conf") == 0 || strcmp(dot, ".conflist") == 0 ||
		             strcmp(dot, ".json") == 0);
	}
	closedir(d);
	if (!ok)
		*why = xasprintf("no CNI configuration in '%s'", dir);
	return ok;
}

/* What RunPodSandbox does off the loop: the pod's network (CNI plugins run for
 * seconds), its spec, the shim's start. The work item owns copies of what it needs;
 * the pod's config is read, never written, until the work is done. */
struct run_work {
	const struct cri *c;
	struct cri_pod *p;
	json_object *port_mappings;
	bool want_cni;
	struct cni *cni;
	char *address;
	int fd; /* connected to the shim */
	int r;
	struct hull_error *err;
};

static json_object *port_mappings_json(const Runtime__V1__PodSandboxConfig *pc)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < pc->n_port_mappings; i++) {
		const Runtime__V1__PortMapping *m = pc->port_mappings[i];
		if (m->host_port <= 0)
			continue; /* no host port: nothing for portmap to do */
		json_object *o = json_object_new_object();
		json_object_object_add(o, "hostPort", json_object_new_int(m->host_port));
		json_object_object_add(o, "containerPort", json_object_new_int(m->container_port));
		json_object_object_add(
		    o, "protocol",
		    json_object_new_string(m->protocol == RUNTIME__V1__PROTOCOL__UDP    ? "udp"
		                           : m->protocol == RUNTIME__V1__PROTOCOL__SCTP ? "sctp"
		                                                                        : "tcp"));
		if (*m->host_ip)
			json_object_object_add(o, "hostIP", json_object_new_string(m->host_ip));
		json_object_array_add(a, o);
	}
	return a;
}

/* In the pod's namespace: its loopback up, as containerd's CRI brings it up (the
 * loopback CNI plugin); port-forward dials 127.0.0.1 there. */
static int lo_up(void *userdata)
{
	struct ifreq ifr = {0};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = 0;
	(void)userdata;
	if (fd < 0)
		return -errno;
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		r = -errno;
	ifr.ifr_flags |= IFF_UP;
	if (r == 0 && ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		r = -errno;
	close(fd);
	return r;
}

static void run_work(void *arg)
{
	struct run_work *w = arg;
	struct cri_pod *p = w->p;
	_cleanup_free_ char *spec = NULL, *path = NULL, *profile = NULL;
	const Runtime__V1__LinuxSandboxSecurityContext *lsc =
	    p->config->linux ? p->config->linux->security_context : NULL;
	struct cri_spec_pod sp;
	char *paths[3];

	if (w->want_cni) {
		w->r = cni_setup(NULL, p->id, w->c->cfg.state, w->port_mappings, &w->cni, &w->err);
		if (w->r < 0) {
			hull_error_prefix(&w->err, "pod network");
			return;
		}
		int nsfd = open(w->cni->netns, O_RDONLY | O_CLOEXEC);
		w->r = nsfd < 0 ? -errno : netns_run(nsfd, lo_up, NULL);
		if (nsfd >= 0)
			close(nsfd);
		if (w->r < 0) {
			hull_error_set_errno(&w->err, w->r, "pod network: loopback up in '%s'",
			                     w->cni->netns);
			goto fail;
		}
	}
	spec_pod(p, &sp, paths);
	sp.netns_path = w->cni ? w->cni->netns : NULL;
	/* The sandbox's Localhost seccomp profile, from the node. */
	if (lsc && lsc->seccomp &&
	    lsc->seccomp->profile_type == RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Localhost &&
	    lsc->seccomp->localhost_ref[0] == '/')
		profile = read_small("", lsc->seccomp->localhost_ref + 1);
	sp.seccomp_localhost = profile;
	w->r = cri_sandbox_spec(&sp, "/pause", &spec, &w->err);
	spec_pod_done(paths);
	if (w->r < 0)
		goto fail;
	path = xasprintf("%s/config.json", p->dir);
	w->r = write_file(path, spec, &w->err);
	if (w->r < 0)
		goto fail;
	w->r = cri_shim_start(w->c, pod_shim_binary(p), p->id, p->dir, &w->address, &w->err);
	if (w->r < 0)
		goto fail;
	w->r = cri_shim_connect_fd(w->address, &w->fd, &w->err);
	if (w->r < 0)
		goto fail;
	return;
fail:
	w->cni = cni_teardown(w->cni);
}

static void run_done(struct cri *c, void *arg)
{
	struct run_work *w = arg;
	struct cri_pod *p = w->p;
	Hull__Task__CreateTaskRequest cr = HULL__TASK__CREATE_TASK_REQUEST__INIT;
	Hull__Task__Any opts = HULL__TASK__ANY__INIT;
	_cleanup_free_ uint8_t *opts_buf = NULL;

	json_object_put(w->port_mappings);
	p->cni = w->cni;
	p->address = w->address;
	if (w->r < 0) {
		if (w->fd >= 0)
			close(w->fd);
		p->fail_code = w->r;
		p->fail_msg = xasprintf("run pod sandbox: %s", w->err->msg);
		log_warn("pod '%s': %s", p->id, p->fail_msg);
		hull_error_free(w->err);
		free(w);
		pod_fail_finish(p);
		return;
	}
	free(w->err);
	cri_pod_save(p);
	p->shim = ttrpc_client_new(w->fd, CRI_SHIM_SERVICE);
	free(w);
	ttrpc_client_attach(p->shim, c->loop, on_shim_error, p);
	cr.id = p->id;
	cr.bundle = p->dir;
	/* The runc shim takes its own options type; it gets none (its defaults). */
	if (!pod_host_kernel(p))
		set_shim_options(c, &opts, &opts_buf);
	if (opts_buf)
		cr.options = &opts;
	if (!shim_call(p, "Create", &cr.base, BOOT_TIMEOUT_MS, on_pod_created, p))
		pod_fail_run(p, -EIO, "the shim's connection failed");
}

static int m_run_pod(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                     ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__RunPodSandboxRequest *req =
	    runtime__v1__run_pod_sandbox_request__unpack(NULL, len, msg);
	_cleanup_free_ char *path = NULL, *why = NULL;
	const char *handler = "hull";
	struct run_work *w;
	struct cri_pod *p;
	int r;
	(void)ret;

	if (!req)
		return hull_error_set(err, -EINVAL, "the request does not decode");
	r = pod_handler(c, req, &handler, err);
	if (r < 0)
		goto out;
	for (p = c->pods; p; p = p->next) {
		const Runtime__V1__PodSandboxMetadata *a = p->config->metadata,
		                                      *b = req->config->metadata;
		if (strcmp(a->name, b->name) == 0 && strcmp(a->namespace_, b->namespace_) == 0 &&
		    strcmp(a->uid, b->uid) == 0 && a->attempt == b->attempt) {
			r = hull_error_set(err, -EEXIST,
			                   "config.metadata: pod '%s/%s' attempt %u exists as '%s'",
			                   b->namespace_, b->name, b->attempt, p->id);
			goto out;
		}
	}

	p = xcalloc(1, sizeof(*p));
	p->c = c;
	p->id = cri_new_id();
	p->config = msg_dup(&req->config->base);
	p->handler = xstrdup(handler);
	p->state = RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_NOTREADY;
	p->created_at = cri_now_ns();
	p->dir = xasprintf("%s/pods/%s", c->cfg.state, p->id);
	p->next = c->pods;
	c->pods = p;
	r = mkdir_p(p->dir, 0711);
	if (r < 0) {
		hull_error_set_errno(err, r, "mkdir '%s'", p->dir);
		goto fail;
	}
	r = make_sandbox_rootfs(c, p->dir, err);
	if (r < 0)
		goto fail;
	r = write_pod_files(p, err);
	if (r < 0)
		goto fail;
	/* The shim's own log (a plain file here; containerd makes it a FIFO). */
	path = xasprintf("%s/log", p->dir);
	r = write_file(path, "", err);
	if (r < 0)
		goto fail;

	/* A record from the start: a hull-cri killed while the pod boots finds its shim
	 * (by the address the shim writes in the bundle) and stops it. */
	cri_pod_save(p);
	w = xcalloc(1, sizeof(*w));
	w->c = c;
	w->p = p;
	w->fd = -1;
	/* A hostNetwork pod (runc) is on the node's network: no CNI. */
	w->want_cni = cni_configured(c->cfg.cni_conf_dir, &why) &&
	              !(p->config->linux && p->config->linux->security_context &&
	                p->config->linux->security_context->namespace_options &&
	                p->config->linux->security_context->namespace_options->network ==
	                    RUNTIME__V1__NAMESPACE_MODE__NODE);
	w->port_mappings = port_mappings_json(p->config);
	p->call = call;
	r = cri_run_work(c, run_work, run_done, w);
	if (r < 0) {
		p->call = NULL;
		json_object_put(w->port_mappings);
		free(w);
		hull_error_set_errno(err, r, "start a worker");
		goto fail;
	}
	runtime__v1__run_pod_sandbox_request__free_unpacked(req, NULL);
	return 1;

fail:
	hull_error_prefix(err, "run pod sandbox");
	cri_pod_forget(p);
	cleanup_later(c, NULL, p->dir, TAKE_PTR(p->cni));
	pod_free(p);
out:
	runtime__v1__run_pod_sandbox_request__free_unpacked(req, NULL);
	return r;
}

/* ---- stopping: every task of the pod killed, waited for, deleted; then the shim ---- */

static void pod_stop_next(struct cri_pod *p);

static void pod_stop_complete(struct cri_pod *p);

struct net_down {
	struct cri_pod *p; /* not touched by the worker */
	struct cni *cni;
};

static void net_down_work(void *arg)
{
	struct net_down *w = arg;
	w->cni = cni_teardown(w->cni);
}

static void net_down_done(struct cri *c, void *arg)
{
	struct net_down *w = arg;
	struct cri_pod *p = w->p;
	(void)c;
	free(w);
	pod_stop_complete(p);
}

/* The VM is gone: the pod's network goes next (CNI DEL, off the loop), as containerd
 * tears it down in StopPodSandbox; the pod's own record stays until the worker is done
 * with it (Stop and Remove are refused meanwhile: p->call is set). */
static void pod_stop_finish(struct cri_pod *p)
{
	if (p->cni) {
		struct net_down *w = xcalloc(1, sizeof(*w));
		w->p = p;
		w->cni = TAKE_PTR(p->cni);
		if (cri_run_work(p->c, net_down_work, net_down_done, w) == 0)
			return;
		cni_teardown(w->cni);
		free(w);
	}
	pod_stop_complete(p);
}

static void pod_stop_complete(struct cri_pod *p)
{
	struct grpc_call *call = p->call;
	p->call = NULL;
	p->state = RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_NOTREADY;
	for (struct cri_ctr *k = p->c->ctrs; k; k = k->next)
		if (k->pod == p) {
			ctr_close_logs(k);
			k->in_shim = false;
			if (k->state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED)
				ctr_set_exited(k, 128 + SIGKILL, 0);
		}
	if (p->removing) {
		struct cri *c = p->c;
		for (struct cri_ctr *k = c->ctrs, *next; k; k = next) {
			next = k->next;
			if (k->pod == p) {
				cri_event(
				    k, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_DELETED_EVENT);
				cri_ctr_forget(k);
				cleanup_later(c, NULL, k->dir, NULL);
				ctr_free(k);
			}
		}
		cri_pod_forget(p);
		cleanup_later(c, p->address ? p : NULL, p->dir, TAKE_PTR(p->cni));
		log_info("pod '%s' removed", p->id);
		pod_free(p);
	} else {
		cri_pod_save(p);
		for (struct cri_ctr *k = p->c->ctrs; k; k = k->next)
			if (k->pod == p)
				cri_ctr_save(k);
	}
	grpc_call_reply(call, 0, NULL, NULL);
}

static void on_stop_step(struct ttrpc_client *tc, int code, const char *message,
                         const uint8_t *payload, size_t len, void *userdata)
{
	struct cri_pod *p = userdata;
	(void)tc, (void)payload, (void)len;
	/* Errors are fine here: a task already gone is what we want. */
	if (code != TTRPC_OK)
		log_debug("pod '%s': stop step %d: %s", p->id, p->stop_phase, message);
	if (--p->waiting == 0)
		pod_stop_next(p);
}

enum { STOP_KILL, STOP_WAIT, STOP_DELETE, STOP_SHUTDOWN, STOP_DONE };

/* One phase at a time over every task (containers first, then the sandbox), as
 * containerd does it: kill, wait for the exits, delete, shut the shim down. */
static void pod_stop_phase(struct cri_pod *p, int phase)
{
	struct cri *c = p->c;
	p->waiting = 1; /* held while the calls are queued */
	for (struct cri_ctr *k = c->ctrs;; k = k->next) {
		bool sandbox = !k;
		const char *id = sandbox ? p->id : k->id;
		if (!sandbox && k->pod != p)
			continue;
		if (!sandbox && !k->in_shim)
			goto next; /* not (or no longer) a task of the shim */
		if (phase == STOP_KILL) {
			Hull__Task__KillRequest kr = HULL__TASK__KILL_REQUEST__INIT;
			kr.id = (char *)id;
			kr.signal = SIGKILL;
			kr.all = true;
			if (shim_call(p, "Kill", &kr.base, SHIM_CALL_TIMEOUT_MS, on_stop_step, p))
				p->waiting++;
		} else if (phase == STOP_WAIT) {
			Hull__Task__WaitRequest wr = HULL__TASK__WAIT_REQUEST__INIT;
			wr.id = (char *)id;
			if (shim_call(p, "Wait", &wr.base, SHIM_CALL_TIMEOUT_MS, on_stop_step, p))
				p->waiting++;
		} else if (phase == STOP_DELETE) {
			Hull__Task__DeleteRequest dr = HULL__TASK__DELETE_REQUEST__INIT;
			dr.id = (char *)id;
			if (shim_call(p, "Delete", &dr.base, SHIM_CALL_TIMEOUT_MS, on_stop_step, p))
				p->waiting++;
		} else if (phase == STOP_SHUTDOWN && sandbox) {
			Hull__Task__ShutdownRequest sr = HULL__TASK__SHUTDOWN_REQUEST__INIT;
			sr.id = p->id;
			if (shim_call(p, "Shutdown", &sr.base, SHIM_CALL_TIMEOUT_MS, on_stop_step,
			              p))
				p->waiting++;
		}
next:
		if (sandbox)
			break;
	}
	if (--p->waiting == 0)
		pod_stop_next(p);
}

static void pod_stop_next(struct cri_pod *p)
{
	p->stop_phase++;
	if (p->stop_phase >= STOP_DONE || !p->shim) {
		if (p->shim) {
			cri_exec_abort_all(p, "the pod was stopped");
			/* What still waits on the shim (stats) is answered, not dropped. */
			ttrpc_client_cancel_all(p->shim, "the pod was stopped");
			p->shim = ttrpc_client_free(p->shim);
		}
		pod_stop_finish(p);
		return;
	}
	pod_stop_phase(p, p->stop_phase);
}

static void pod_stop_start(struct cri_pod *p, struct grpc_call *call)
{
	p->call = call;
	p->stop_phase = STOP_KILL;
	if (!p->shim) {
		pod_stop_finish(p);
		return;
	}
	pod_stop_phase(p, STOP_KILL);
}

static int m_stop_pod(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                      ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__StopPodSandboxRequest *req =
	    runtime__v1__stop_pod_sandbox_request__unpack(NULL, len, msg);
	struct cri_pod *p;
	int r = 0;

	if (!req)
		return hull_error_set(err, -EINVAL, "the request does not decode");
	p = pod_find(c, req->pod_sandbox_id);
	if (!p) {
		/* kubelet: stopping what is gone is done. */
		*ret = msg_own(&(Runtime__V1__StopPodSandboxResponse)
		                    RUNTIME__V1__STOP_POD_SANDBOX_RESPONSE__INIT.base);
	} else if (p->call) {
		r = busy(err, "pod", p->id);
	} else {
		pod_stop_start(p, call);
		r = 1;
	}
	runtime__v1__stop_pod_sandbox_request__free_unpacked(req, NULL);
	return r;
}

static int m_remove_pod(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                        ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__RemovePodSandboxRequest *req =
	    runtime__v1__remove_pod_sandbox_request__unpack(NULL, len, msg);
	struct cri_pod *p;
	int r = 0;

	if (!req)
		return hull_error_set(err, -EINVAL, "the request does not decode");
	p = pod_find(c, req->pod_sandbox_id);
	if (!p) {
		*ret = msg_own(&(Runtime__V1__RemovePodSandboxResponse)
		                    RUNTIME__V1__REMOVE_POD_SANDBOX_RESPONSE__INIT.base);
	} else if (p->call) {
		r = busy(err, "pod", p->id);
	} else {
		/* containerd stops a ready pod first; so do we. */
		p->removing = true;
		pod_stop_start(p, call);
		r = 1;
	}
	runtime__v1__remove_pod_sandbox_request__free_unpacked(req, NULL);
	return r;
}

/* ---- PodSandboxStatus, ListPodSandbox ---- */

static char *pod_info_json(const struct cri_pod *p)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "pid", json_object_new_int64(p->pid));
	json_object_object_add(o, "runtimeHandler", json_object_new_string(p->handler));
	json_object_object_add(o, "bundle", json_object_new_string(p->dir));
	json_object_object_add(o, "shimAddress",
	                       json_object_new_string(p->address ? p->address : ""));
	char *s = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

static int m_pod_status(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                        ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__PodSandboxStatusRequest *req =
	    runtime__v1__pod_sandbox_status_request__unpack(NULL, len, msg);
	Runtime__V1__PodSandboxStatusResponse resp = RUNTIME__V1__POD_SANDBOX_STATUS_RESPONSE__INIT;
	Runtime__V1__PodSandboxStatus st = RUNTIME__V1__POD_SANDBOX_STATUS__INIT;
	Runtime__V1__PodSandboxNetworkStatus net = RUNTIME__V1__POD_SANDBOX_NETWORK_STATUS__INIT;
	Runtime__V1__LinuxPodSandboxStatus lst = RUNTIME__V1__LINUX_POD_SANDBOX_STATUS__INIT;
	Runtime__V1__Namespace ns = RUNTIME__V1__NAMESPACE__INIT;
	Runtime__V1__NamespaceOption nso = RUNTIME__V1__NAMESPACE_OPTION__INIT;
	Runtime__V1__PodSandboxStatusResponse__InfoEntry info =
	    RUNTIME__V1__POD_SANDBOX_STATUS_RESPONSE__INFO_ENTRY__INIT;
	Runtime__V1__PodSandboxStatusResponse__InfoEntry *infos[1] = {&info};
	_cleanup_free_ char *info_json = NULL;
	struct cri_pod *p;
	(void)call;

	if (!req)
		return hull_error_set(err, -EINVAL, "the request does not decode");
	p = pod_find(c, req->pod_sandbox_id);
	if (!p) {
		int r = hull_error_set(err, -ENOENT, "pod sandbox '%.80s' not found",
		                       req->pod_sandbox_id);
		runtime__v1__pod_sandbox_status_request__free_unpacked(req, NULL);
		return r;
	}
	st.id = p->id;
	st.metadata = p->config->metadata;
	st.state = p->state;
	st.created_at = p->created_at;
	/* The pod's addresses as CNI gave them, without their prefix lengths. */
	_cleanup_strv_free_ char **ips = NULL;
	Runtime__V1__PodIP *extra = NULL, **extras = NULL;
	for (size_t i = 0; p->cni && p->cni->res.ips && p->cni->res.ips[i]; i++)
		strv_push(&ips, xstrndup(p->cni->res.ips[i], strcspn(p->cni->res.ips[i], "/")));
	if (ips && ips[0]) {
		size_t n = 0;
		while (ips[n])
			n++;
		net.ip = ips[0];
		extra = xcalloc(n, sizeof(*extra));
		extras = xcalloc(n, sizeof(*extras));
		for (size_t i = 1; i < n; i++) {
			runtime__v1__pod_ip__init(&extra[i - 1]);
			extra[i - 1].ip = ips[i];
			extras[i - 1] = &extra[i - 1];
		}
		net.n_additional_ips = n - 1;
		net.additional_ips = extras;
	}
	st.network = &net;
	if (p->config->linux && p->config->linux->security_context &&
	    p->config->linux->security_context->namespace_options)
		ns.options = p->config->linux->security_context->namespace_options;
	else
		ns.options = &nso;
	lst.namespaces = &ns;
	st.linux = &lst;
	st.n_labels = p->config->n_labels;
	st.labels = kv_copy(&runtime__v1__pod_sandbox_status__labels_entry__descriptor,
	                    (void *const *)p->config->labels, p->config->n_labels);
	st.n_annotations = p->config->n_annotations;
	st.annotations = kv_copy(&runtime__v1__pod_sandbox_status__annotations_entry__descriptor,
	                         (void *const *)p->config->annotations, p->config->n_annotations);
	st.runtime_handler = p->handler;
	resp.status = &st;
	if (req->verbose) {
		info_json = pod_info_json(p);
		info.key = (char *)"info";
		info.value = info_json;
		resp.n_info = 1;
		resp.info = infos;
	}
	resp.timestamp = cri_now_ns();
	*ret = msg_own(&resp.base);
	kv_free(st.labels, st.n_labels);
	kv_free(st.annotations, st.n_annotations);
	free(extra);
	free(extras);
	runtime__v1__pod_sandbox_status_request__free_unpacked(req, NULL);
	return 0;
}

static int m_list_pods(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                       ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__ListPodSandboxRequest *req =
	    runtime__v1__list_pod_sandbox_request__unpack(NULL, len, msg);
	Runtime__V1__ListPodSandboxResponse resp = RUNTIME__V1__LIST_POD_SANDBOX_RESPONSE__INIT;
	const Runtime__V1__PodSandboxFilter *f;
	size_t n = 0, i = 0;
	(void)call;

	if (!req)
		return hull_error_set(err, -EINVAL, "the request does not decode");
	f = req->filter;
	for (struct cri_pod *p = c->pods; p; p = p->next)
		n++;
	Runtime__V1__PodSandbox *items = xcalloc(n + 1, sizeof(*items));
	resp.items = xcalloc(n + 1, sizeof(*resp.items));
	for (struct cri_pod *p = c->pods; p; p = p->next) {
		if (p->call && p->state != RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY &&
		    !p->removing && p->stop_phase == 0 && !p->shim)
			continue;
		if (f && *f->id && strncmp(p->id, f->id, strlen(f->id)) != 0)
			continue;
		if (f && f->state && f->state->state != p->state)
			continue;
		if (f && !labels_match((void *const *)p->config->labels, p->config->n_labels,
		                       (void *const *)f->label_selector, f->n_label_selector))
			continue;
		Runtime__V1__PodSandbox *it = &items[i];
		runtime__v1__pod_sandbox__init(it);
		it->id = p->id;
		it->metadata = p->config->metadata;
		it->state = p->state;
		it->created_at = p->created_at;
		it->n_labels = p->config->n_labels;
		it->labels = kv_copy(&runtime__v1__pod_sandbox__labels_entry__descriptor,
		                     (void *const *)p->config->labels, p->config->n_labels);
		it->n_annotations = p->config->n_annotations;
		it->annotations =
		    kv_copy(&runtime__v1__pod_sandbox__annotations_entry__descriptor,
		            (void *const *)p->config->annotations, p->config->n_annotations);
		it->runtime_handler = p->handler;
		resp.items[i++] = it;
	}
	resp.n_items = i;
	*ret = msg_own(&resp.base);
	for (size_t k = 0; k < i; k++) {
		kv_free(items[k].labels, items[k].n_labels);
		kv_free(items[k].annotations, items[k].n_annotations);
	}
	free(items);
	free(resp.items);
	runtime__v1__list_pod_sandbox_request__free_unpacked(req, NULL);
	return 0;
}

/* ---- Version, Status, RuntimeConfig, UpdateRuntimeConfig ---- */

static int m_version(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                     ProtobufCMessage **ret, struct hull_error **err)
{
	Runtime__V1__VersionResponse resp = RUNTIME__V1__VERSION_RESPONSE__INIT;
	(void)userdata, (void)call, (void)msg, (void)len, (void)err;
	resp.version = (char *)"0.1.0";
	resp.runtime_name = (char *)CRI_RUNTIME_NAME;
	resp.runtime_version = (char *)HULL_VERSION;
	resp.runtime_api_version = (char *)CRI_API_VERSION;
	*ret = msg_own(&resp.base);
	return 0;
}

static int m_status(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                    ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__StatusResponse resp = RUNTIME__V1__STATUS_RESPONSE__INIT;
	Runtime__V1__RuntimeStatus st = RUNTIME__V1__RUNTIME_STATUS__INIT;
	Runtime__V1__RuntimeCondition rt = RUNTIME__V1__RUNTIME_CONDITION__INIT,
	                              net = RUNTIME__V1__RUNTIME_CONDITION__INIT;
	Runtime__V1__RuntimeCondition *conds[2] = {&rt, &net};
	Runtime__V1__RuntimeHandler h = RUNTIME__V1__RUNTIME_HANDLER__INIT,
	                            runc = RUNTIME__V1__RUNTIME_HANDLER__INIT;
	Runtime__V1__RuntimeHandler *hs[2] = {&h, &runc};
	_cleanup_free_ char *why = NULL, *shim_why = NULL;
	(void)call, (void)msg, (void)len, (void)err;

	rt.type = (char *)"RuntimeReady";
	rt.status = access(c->cfg.shim_binary, X_OK) == 0 && access(c->cfg.pause_binary, R_OK) == 0;
	if (!rt.status) {
		rt.reason = (char *)"ShimMissing";
		shim_why = xasprintf("the shim '%s' or the pause binary '%s' is not there",
		                     c->cfg.shim_binary, c->cfg.pause_binary);
		rt.message = shim_why;
	}
	net.type = (char *)"NetworkReady";
	net.status = cni_configured(c->cfg.cni_conf_dir, &why);
	if (!net.status) {
		net.reason = (char *)"NetworkPluginNotReady";
		net.message = why;
	}
	st.n_conditions = 2;
	st.conditions = conds;
	resp.status = &st;
	h.name = (char *)"hull";
	runc.name = (char *)"runc";
	resp.n_runtime_handlers = c->cfg.runc_shim ? 2 : 1;
	resp.runtime_handlers = hs;
	*ret = msg_own(&resp.base);
	return 0;
}

static int m_runtime_config(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                            ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__RuntimeConfigResponse resp = RUNTIME__V1__RUNTIME_CONFIG_RESPONSE__INIT;
	Runtime__V1__LinuxRuntimeConfiguration l = RUNTIME__V1__LINUX_RUNTIME_CONFIGURATION__INIT;
	(void)call, (void)msg, (void)len, (void)err;
	l.cgroup_driver = strcmp(c->cfg.cgroup_driver, "systemd") == 0
	                      ? RUNTIME__V1__CGROUP_DRIVER__SYSTEMD
	                      : RUNTIME__V1__CGROUP_DRIVER__CGROUPFS;
	resp.linux = &l;
	*ret = msg_own(&resp.base);
	return 0;
}

static int m_update_runtime_config(void *userdata, struct grpc_call *call, const uint8_t *msg,
                                   size_t len, ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__UpdateRuntimeConfigRequest *req =
	    runtime__v1__update_runtime_config_request__unpack(NULL, len, msg);
	(void)call;
	if (!req)
		return hull_error_set(err, -EINVAL, "the request does not decode");
	if (req->runtime_config && req->runtime_config->network_config &&
	    *req->runtime_config->network_config->pod_cidr) {
		free(c->pod_cidr);
		c->pod_cidr = xstrdup(req->runtime_config->network_config->pod_cidr);
		log_info("pod CIDR '%s'", c->pod_cidr);
	}
	runtime__v1__update_runtime_config_request__free_unpacked(req, NULL);
	*ret = msg_own(&(Runtime__V1__UpdateRuntimeConfigResponse)
	                    RUNTIME__V1__UPDATE_RUNTIME_CONFIG_RESPONSE__INIT.base);
	return 0;
}

/* No metrics beyond the stats calls' (kubelet's PodAndContainerStatsFromCRI asks):
 * an empty list is the honest answer; both responses have the list as field 1. */
static int m_no_metrics(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                        ProtobufCMessage **ret, struct hull_error **err)
{
	(void)userdata, (void)msg, (void)len, (void)err;
	if (strstr(grpc_call_path(call), "Descriptors"))
		*ret = msg_own(&(Runtime__V1__ListMetricDescriptorsResponse)
		                    RUNTIME__V1__LIST_METRIC_DESCRIPTORS_RESPONSE__INIT.base);
	else
		*ret = msg_own(&(Runtime__V1__ListPodSandboxMetricsResponse)
		                    RUNTIME__V1__LIST_POD_SANDBOX_METRICS_RESPONSE__INIT.base);
	return 0;
}

static int m_checkpoint(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                        ProtobufCMessage **ret, struct hull_error **err)
{
	(void)userdata, (void)call, (void)msg, (void)len, (void)ret;
	return hull_error_set(err, grpc_error_code(TTRPC_UNIMPLEMENTED),
	                      "checkpoint/restore of containers is not supported by hull");
}

/* ---- the shims' events ---- */

static void on_task_exit(struct cri *c, const Hull__Events__TaskExit *e)
{
	struct cri_ctr *k;
	struct cri_pod *p;
	int64_t at = e->exited_at ? e->exited_at->seconds * 1000000000 + e->exited_at->nanos : 0;

	if (strcmp(e->container_id, e->id) != 0)
		return; /* an exec's */
	for (k = c->ctrs; k; k = k->next)
		if (strcmp(k->id, e->container_id) == 0) {
			if (k->state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING)
				ctr_set_exited(k, e->exit_status, at);
			return;
		}
	for (p = c->pods; p; p = p->next)
		if (strcmp(p->id, e->container_id) == 0 && !p->call) {
			pod_lost(p, "the sandbox task exited");
			return;
		}
}

static int m_forward(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                     ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Hull__Events__ForwardRequest *fr =
	    hull__events__forward_request__unpack(NULL, len, payload);
	const Hull__Events__Envelope *env;
	(void)call, (void)ret;

	if (!fr)
		return hull_error_set(err, -EINVAL, "the event does not decode");
	env = fr->envelope;
	if (env && env->event && strcmp(env->topic, "/tasks/exit") == 0) {
		Hull__Events__TaskExit *e = hull__events__task_exit__unpack(
		    NULL, env->event->value.len, env->event->value.data);
		if (e) {
			on_task_exit(c, e);
			hull__events__task_exit__free_unpacked(e, NULL);
		}
	} else if (env && env->event && strcmp(env->topic, "/tasks/oom") == 0) {
		Hull__Events__TaskContainer *e = hull__events__task_container__unpack(
		    NULL, env->event->value.len, env->event->value.data);
		for (struct cri_ctr *k = c->ctrs; e && k; k = k->next)
			if (strcmp(k->id, e->container_id) == 0)
				k->oom = true;
		if (e)
			hull__events__task_container__free_unpacked(e, NULL);
	}
	hull__events__forward_request__free_unpacked(fr, NULL);
	return 0;
}

static const struct ttrpc_method event_methods[] = {
    {"containerd.services.events.ttrpc.v1.Events", "Forward", m_forward},
};

#define RT(name) "/runtime.v1.RuntimeService/" name

const struct grpc_method cri_runtime_methods[] = {
    {RT("Version"), m_version},
    {RT("Status"), m_status},
    {RT("RuntimeConfig"), m_runtime_config},
    {RT("UpdateRuntimeConfig"), m_update_runtime_config},
    {RT("RunPodSandbox"), m_run_pod},
    {RT("StopPodSandbox"), m_stop_pod},
    {RT("RemovePodSandbox"), m_remove_pod},
    {RT("PodSandboxStatus"), m_pod_status},
    {RT("ListPodSandbox"), m_list_pods},
    {RT("CreateContainer"), m_create_ctr},
    {RT("StartContainer"), m_start_ctr},
    {RT("StopContainer"), m_stop_ctr},
    {RT("RemoveContainer"), m_remove_ctr},
    {RT("ContainerStatus"), m_ctr_status},
    {RT("ListContainers"), m_list_ctrs},
    {RT("ReopenContainerLog"), m_reopen_log},
    {RT("ExecSync"), cri_exec_sync},
    {RT("Exec"), cri_exec},
    {RT("Attach"), cri_attach},
    {RT("PortForward"), cri_port_forward},
    {RT("ContainerStats"), cri_container_stats},
    {RT("ListContainerStats"), cri_list_container_stats},
    {RT("PodSandboxStats"), cri_pod_sandbox_stats},
    {RT("ListPodSandboxStats"), cri_list_pod_sandbox_stats},
    {RT("UpdateContainerResources"), m_update_ctr},
    {RT("GetContainerEvents"), cri_get_events},
    {RT("ListMetricDescriptors"), m_no_metrics},
    {RT("ListPodSandboxMetrics"), m_no_metrics},
    {RT("CheckpointContainer"), m_checkpoint},
};
const size_t cri_runtime_n_methods = ELEMENTSOF(cri_runtime_methods);

/* The shim and pause binaries: configured, else beside us (the build tree, an install
 * prefix), else the shim on PATH. */
static char *beside_self(const char *self, const char *name)
{
	_cleanup_free_ char *dir = xstrndup(self, (size_t)(strrchr(self, '/') - self));
	char *p = xasprintf("%s/%s", dir, name);
	if (access(p, F_OK) == 0)
		return p;
	free(p);
	return NULL;
}

int cri_runtime_init(struct cri *c, struct hull_error **err)
{
	int r;

	c->self_exe = realpath("/proc/self/exe", NULL);
	if (!c->self_exe)
		return hull_error_set_errno(err, -errno, "/proc/self/exe");
	if (!c->cfg.shim_binary) {
		c->cfg.shim_binary = beside_self(c->self_exe, "containerd-shim-hull-v2");
		if (!c->cfg.shim_binary)
			c->cfg.shim_binary = find_program("containerd-shim-hull-v2");
		if (!c->cfg.shim_binary)
			return hull_error_set(err, -ENOENT,
			                      "containerd-shim-hull-v2: not beside hull-cri nor on "
			                      "PATH (set shim_binary)");
	}
	if (!c->cfg.pause_binary) {
		c->cfg.pause_binary = beside_self(c->self_exe, "hull-pause");
		if (!c->cfg.pause_binary)
			c->cfg.pause_binary = beside_self(c->self_exe, "../lib/hull/hull-pause");
		if (!c->cfg.pause_binary)
			return hull_error_set(err, -ENOENT,
			                      "hull-pause: not beside hull-cri (set pause_binary)");
	}
	if (!c->cfg.runc_shim)
		c->cfg.runc_shim = find_program("containerd-shim-runc-v2");
	{
		_cleanup_free_ char *adj = read_small("/proc/self", "oom_score_adj");
		c->oom_floor = adj ? atoi(adj) : 0;
	}
	for (const char *sub = "pods"; sub; sub = strcmp(sub, "pods") == 0 ? "containers" : NULL) {
		_cleanup_free_ char *d = xasprintf("%s/%s", c->cfg.state, sub);
		r = mkdir_p(d, 0711);
		if (r < 0)
			return hull_error_set_errno(err, r, "mkdir '%s'", d);
	}
	r = mkdir_p(c->cfg.root, 0711);
	if (r < 0)
		return hull_error_set_errno(err, r, "mkdir '%s'", c->cfg.root);
	c->stream = cri_stream_server_new(c->loop, c->cfg.stream_address, &c->stream_base, err);
	if (!c->stream)
		return hull_error_prefix(err, "streaming server on '%s'", c->cfg.stream_address);
	log_info("streaming server on %s", c->stream_base);
	c->events_path = xasprintf("%s/events.sock", c->cfg.state);
	c->events = ttrpc_server_new(c->loop, event_methods, ELEMENTSOF(event_methods), c);
	r = ttrpc_server_listen(c->events, c->events_path, err);
	if (r < 0)
		return r;
	/* The events socket first: shims that queued exits while we were away send them
	 * as soon as it answers. */
	return cri_store_load(c, err);
}

void cri_runtime_done(struct cri *c)
{
	/* Pods outlive hull-cri: their shims keep running; only our handles go, and
	 * the calls still waiting on a shim end (their clients are gone with the
	 * server). */
	struct hull_error gone = {.code = -ECANCELED, .msg = (char *)"hull-cri is stopping"};
	c->stream = cri_stream_server_free(c->stream);
	free(c->stream_base);
	while (c->ctrs) {
		if (c->ctrs->call)
			grpc_call_reply(TAKE_PTR(c->ctrs->call), -ECANCELED, &gone, NULL);
		ctr_free(c->ctrs);
	}
	while (c->pods) {
		if (c->pods->call)
			grpc_call_reply(TAKE_PTR(c->pods->call), -ECANCELED, &gone, NULL);
		pod_free(c->pods);
	}
	cri_events_done(c);
	c->events = ttrpc_server_free(c->events);
	free(c->events_path);
	free(c->self_exe);
	free(c->pod_cidr);
}
