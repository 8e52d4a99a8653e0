/* SPDX-License-Identifier: MIT */
/* hull-cri's CRI -> OCI spec builder (cri/cri-spec.c): the fields containerd's CRI plugin
 * would write, and every spec read back by what consumes it: the shim's bundle parser
 * (pod/bundle.c, what it groups and places the pod by) and the guest agent's OCI parser
 * (agent/container/oci-spec.c, which refuses what it cannot run), before and after the
 * shim's rewrite for the guest (pod/task-spec.c). */
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "bundle.h"
#include "container/oci-spec.h"
#include "cri-spec.h"
#include "task-spec.h"
#include "util.h"

#define POD_ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define CTR_ID "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define SC_FIELD "config.linux.security_context"

/* ---- fixtures: the messages the kubelet would send ---- */

struct pod_fx {
	Runtime__V1__PodSandboxConfig cfg;
	Runtime__V1__PodSandboxMetadata meta;
	Runtime__V1__LinuxPodSandboxConfig lnx;
	Runtime__V1__LinuxSandboxSecurityContext sc;
	Runtime__V1__NamespaceOption ns;
	Runtime__V1__SecurityProfile seccomp;
	Runtime__V1__LinuxPodSandboxConfig__SysctlsEntry sysctl;
	Runtime__V1__LinuxPodSandboxConfig__SysctlsEntry *sysctls[1];
	Runtime__V1__PodSandboxConfig__AnnotationsEntry ann[2];
	Runtime__V1__PodSandboxConfig__AnnotationsEntry *anns[2];
	struct cri_spec_pod pod;
};

static void pod_fx_init(struct pod_fx *f)
{
	memset(f, 0, sizeof(*f));
	f->cfg = (Runtime__V1__PodSandboxConfig)RUNTIME__V1__POD_SANDBOX_CONFIG__INIT;
	f->meta = (Runtime__V1__PodSandboxMetadata)RUNTIME__V1__POD_SANDBOX_METADATA__INIT;
	f->lnx = (Runtime__V1__LinuxPodSandboxConfig)RUNTIME__V1__LINUX_POD_SANDBOX_CONFIG__INIT;
	f->sc = (Runtime__V1__LinuxSandboxSecurityContext)
	    RUNTIME__V1__LINUX_SANDBOX_SECURITY_CONTEXT__INIT;
	f->ns = (Runtime__V1__NamespaceOption)RUNTIME__V1__NAMESPACE_OPTION__INIT;
	f->seccomp = (Runtime__V1__SecurityProfile)RUNTIME__V1__SECURITY_PROFILE__INIT;
	f->sysctl = (Runtime__V1__LinuxPodSandboxConfig__SysctlsEntry)
	    RUNTIME__V1__LINUX_POD_SANDBOX_CONFIG__SYSCTLS_ENTRY__INIT;
	f->meta.name = "web";
	f->meta.uid = "uid-1";
	f->meta.namespace_ = "shop";
	f->cfg.metadata = &f->meta;
	f->cfg.hostname = "web-host";
	f->cfg.log_directory = "/var/log/pods/shop_web_uid-1";
	f->lnx.cgroup_parent = "/kubepods/besteffort/poduid-1";
	f->lnx.security_context = &f->sc;
	f->sc.namespace_options = &f->ns;
	f->sysctl.key = "net.ipv4.ip_unprivileged_port_start";
	f->sysctl.value = "0";
	f->sysctls[0] = &f->sysctl;
	f->lnx.n_sysctls = 1;
	f->lnx.sysctls = f->sysctls;
	f->cfg.linux = &f->lnx;
	for (int i = 0; i < 2; i++) {
		f->ann[i] = (Runtime__V1__PodSandboxConfig__AnnotationsEntry)
		    RUNTIME__V1__POD_SANDBOX_CONFIG__ANNOTATIONS_ENTRY__INIT;
		f->anns[i] = &f->ann[i];
	}
	f->ann[0].key = "io.hull.template-domain";
	f->ann[0].value = "team";
	f->ann[1].key = "kubernetes.io/config.seen";
	f->ann[1].value = "now";
	f->cfg.n_annotations = 2;
	f->cfg.annotations = f->anns;
	f->pod = (struct cri_spec_pod){.id = POD_ID,
	                               .config = &f->cfg,
	                               .netns_path = "/var/run/netns/cni-1",
	                               .sandbox_pid = 42,
	                               .cgroup_driver = "cgroupfs"};
}

struct ctr_fx {
	Runtime__V1__ContainerConfig cfg;
	Runtime__V1__ContainerMetadata meta;
	Runtime__V1__ImageSpec image;
	Runtime__V1__LinuxContainerConfig lnx;
	Runtime__V1__LinuxContainerSecurityContext sc;
	Runtime__V1__NamespaceOption ns;
	Runtime__V1__Capability caps;
	Runtime__V1__LinuxContainerResources res;
	Runtime__V1__SecurityProfile seccomp;
	Runtime__V1__Int64Value run_as_user, run_as_group;
	Runtime__V1__KeyValue env[2], *envs[2];
	Runtime__V1__Mount mount[4], *mounts[4];
	Runtime__V1__ContainerConfig__AnnotationsEntry ann[2], *anns[2];
	struct image_config img;
};

static char *img_entrypoint[] = {"/docker-entrypoint.sh", NULL};
static char *img_cmd[] = {"nginx", "-g", "daemon off;", NULL};
static char *img_env[] = {"PATH=/usr/local/nginx/bin:/usr/bin:/bin", "NGINX_VERSION=1.25",
                          "FOO=image", NULL};

static void ctr_fx_init(struct ctr_fx *f)
{
	memset(f, 0, sizeof(*f));
	f->cfg = (Runtime__V1__ContainerConfig)RUNTIME__V1__CONTAINER_CONFIG__INIT;
	f->meta = (Runtime__V1__ContainerMetadata)RUNTIME__V1__CONTAINER_METADATA__INIT;
	f->image = (Runtime__V1__ImageSpec)RUNTIME__V1__IMAGE_SPEC__INIT;
	f->lnx = (Runtime__V1__LinuxContainerConfig)RUNTIME__V1__LINUX_CONTAINER_CONFIG__INIT;
	f->sc = (Runtime__V1__LinuxContainerSecurityContext)
	    RUNTIME__V1__LINUX_CONTAINER_SECURITY_CONTEXT__INIT;
	f->ns = (Runtime__V1__NamespaceOption)RUNTIME__V1__NAMESPACE_OPTION__INIT;
	f->caps = (Runtime__V1__Capability)RUNTIME__V1__CAPABILITY__INIT;
	f->res = (Runtime__V1__LinuxContainerResources)RUNTIME__V1__LINUX_CONTAINER_RESOURCES__INIT;
	f->seccomp = (Runtime__V1__SecurityProfile)RUNTIME__V1__SECURITY_PROFILE__INIT;
	f->run_as_user = (Runtime__V1__Int64Value)RUNTIME__V1__INT64_VALUE__INIT;
	f->run_as_group = (Runtime__V1__Int64Value)RUNTIME__V1__INT64_VALUE__INIT;
	for (int i = 0; i < 2; i++) {
		f->env[i] = (Runtime__V1__KeyValue)RUNTIME__V1__KEY_VALUE__INIT;
		f->envs[i] = &f->env[i];
		f->ann[i] = (Runtime__V1__ContainerConfig__AnnotationsEntry)
		    RUNTIME__V1__CONTAINER_CONFIG__ANNOTATIONS_ENTRY__INIT;
		f->anns[i] = &f->ann[i];
	}
	for (int i = 0; i < 4; i++) {
		f->mount[i] = (Runtime__V1__Mount)RUNTIME__V1__MOUNT__INIT;
		f->mounts[i] = &f->mount[i];
	}
	f->meta.name = "nginx";
	f->cfg.metadata = &f->meta;
	f->image.image = "docker.io/library/nginx:1.25";
	f->cfg.image = &f->image;
	f->cfg.envs = f->envs;
	f->cfg.mounts = f->mounts;
	f->cfg.annotations = f->anns;
	f->sc.namespace_options = &f->ns;
	f->lnx.security_context = &f->sc;
	f->cfg.linux = &f->lnx;
	f->img.entrypoint = img_entrypoint;
	f->img.cmd = img_cmd;
	f->img.env = img_env;
}

/* ---- reading the result ---- */

/* o at a dotted path; numbers index arrays ("mounts.0.destination"). */
static json_object *get(json_object *o, const char *path)
{
	_cleanup_free_ char *copy = xstrdup(path);
	char *save = NULL;

	for (char *k = strtok_r(copy, ".", &save); k && o; k = strtok_r(NULL, ".", &save)) {
		if (json_object_is_type(o, json_type_array))
			o = json_object_array_get_idx(o, (size_t)strtoul(k, NULL, 10));
		else if (!json_object_object_get_ex(o, k, &o))
			o = NULL;
	}
	return o;
}

static const char *gets(json_object *o, const char *path)
{
	o = get(o, path);
	return o && json_object_is_type(o, json_type_string) ? json_object_get_string(o) : NULL;
}

static int64_t geti(json_object *o, const char *path)
{
	json_object *v = get(o, path);
	if (!v || !json_object_is_type(v, json_type_int))
		fail_msg("%s: not an integer", path);
	return json_object_get_int64(v);
}

/* The array at path, its elements joined with spaces (or a string's own text). */
static char *joined(json_object *o, const char *path)
{
	json_object *a = get(o, path);
	char *out = xstrdup("");

	if (!a)
		return out;
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *e = json_object_array_get_idx(a, i);
		char *next = xasprintf("%s%s%s", out, i ? " " : "", json_object_get_string(e));
		free(out);
		out = next;
	}
	return out;
}

static void assert_joined(json_object *o, const char *path, const char *want)
{
	_cleanup_free_ char *got = joined(o, path);
	if (strcmp(got, want) != 0)
		fail_msg("%s: got '%s', want '%s'", path, got, want);
}

/* The field's values across an array of objects: "mounts" "destination". */
static char *column(json_object *o, const char *path, const char *key)
{
	json_object *a = get(o, path);
	char *out = xstrdup("");

	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		const char *v = gets(json_object_array_get_idx(a, i), key);
		char *next = xasprintf("%s%s%s", out, i ? " " : "", v ? v : "-");
		free(out);
		out = next;
	}
	return out;
}

static void assert_column(json_object *o, const char *path, const char *key, const char *want)
{
	_cleanup_free_ char *got = column(o, path, key);
	if (strcmp(got, want) != 0)
		fail_msg("%s[].%s: got '%s', want '%s'", path, key, got, want);
}

static json_object *mount_at(json_object *spec, const char *dst)
{
	json_object *a = get(spec, "mounts");
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		const char *d = gets(json_object_array_get_idx(a, i), "destination");
		if (d && strcmp(d, dst) == 0)
			return json_object_array_get_idx(a, i);
	}
	return NULL;
}

/* The namespace entry of a type; *path its path or NULL. false when absent. */
static bool ns_of(json_object *spec, const char *type, const char **path)
{
	json_object *a = get(spec, "linux.namespaces");
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *e = json_object_array_get_idx(a, i);
		if (strcmp(gets(e, "type"), type) == 0) {
			*path = gets(e, "path");
			return true;
		}
	}
	*path = NULL;
	return false;
}

/* Does a SCMP_ACT_ALLOW rule without arguments name the syscall? */
static bool seccomp_allows(json_object *spec, const char *name)
{
	json_object *rules = get(spec, "linux.seccomp.syscalls");
	for (size_t i = 0; rules && i < json_object_array_length(rules); i++) {
		json_object *r = json_object_array_get_idx(rules, i), *names = get(r, "names");
		if (strcmp(gets(r, "action"), "SCMP_ACT_ALLOW") != 0 || get(r, "args"))
			continue;
		for (size_t k = 0; k < json_object_array_length(names); k++)
			if (strcmp(json_object_get_string(json_object_array_get_idx(names, k)),
			           name) == 0)
				return true;
	}
	return false;
}

/* What reads a spec: the shim's bundle parser (as containerd-shim-hull-v2 groups and
 * places the task) and the guest agent's OCI parser. *b is left filled. */
static json_object *consume(const char *json, const char *type, struct bundle *b)
{
	struct hull_error *e = NULL;
	struct oci_spec o;
	json_object *root;

	*b = (struct bundle){0};
	/* DUMP_SPECS=1 build/tests/test-cri-spec prints every spec made. */
	if (getenv("DUMP_SPECS"))
		puts(json);
	if (bundle_parse_config(json, strlen(json), b, &e) < 0)
		fail_msg("bundle_parse_config: %s\n%s", e->msg, json);
	assert_string_equal(b->container_type, type);
	assert_string_equal(b->sandbox_id, POD_ID);
	assert_string_equal(b->k8s_namespace, "shop");
	assert_string_equal(b->rootfs, "rootfs");
	if (oci_spec_parse(json, strlen(json), &o, &e) < 0)
		fail_msg("guest oci_spec_parse: %s\n%s", e->msg, json);
	oci_spec_done(&o);
	/* What the guest gets from the shim's Task service. */
	{
		_cleanup_free_ char *guest = NULL;
		size_t len;
		if (task_spec_for_guest(json, strlen(json), &guest, &len, &e) < 0)
			fail_msg("task_spec_for_guest: %s", e->msg);
		if (oci_spec_parse(guest, len, &o, &e) < 0)
			fail_msg("guest oci_spec_parse after the shim: %s\n%s", e->msg, guest);
		for (size_t i = 0; i < o.n_namespaces; i++)
			if (o.namespaces[i].type == CLONE_NEWNET && o.namespaces[i].path)
				fail_msg("the guest got a network namespace path '%s'",
				         o.namespaces[i].path);
		oci_spec_done(&o);
	}
	root = json_tokener_parse(json);
	assert_non_null(root);
	return root;
}

static json_object *sandbox(struct pod_fx *p, struct bundle *b)
{
	struct hull_error *e = NULL;
	_cleanup_free_ char *json = NULL;

	if (cri_sandbox_spec(&p->pod, "/pause", &json, &e) < 0)
		fail_msg("cri_sandbox_spec: %s", e->msg);
	return consume(json, "sandbox", b);
}

static json_object *container_users(struct pod_fx *p, struct ctr_fx *c,
                                    const struct cri_spec_users *u)
{
	struct hull_error *e = NULL;
	_cleanup_free_ char *json = NULL;
	struct bundle b;
	json_object *root;

	if (cri_container_spec_users(&p->pod, CTR_ID, &c->cfg, &c->img, c->image.image, u, &json,
	                             &e) < 0)
		fail_msg("cri_container_spec: %s", e->msg);
	root = consume(json, "container", &b);
	bundle_done(&b);
	return root;
}

static json_object *container(struct pod_fx *p, struct ctr_fx *c)
{
	return container_users(p, c, NULL);
}

static void expect_error_users(struct pod_fx *p, struct ctr_fx *c, const struct cri_spec_users *u,
                               const char *want)
{
	struct hull_error *e = NULL;
	char *json = NULL;
	int r = cri_container_spec_users(&p->pod, CTR_ID, &c->cfg, &c->img, c->image.image, u,
	                                 &json, &e);
	if (r >= 0)
		fail_msg("want an error with '%s', got a spec", want);
	assert_int_equal(r, -EINVAL);
	assert_null(json);
	if (!strstr(e->msg, want))
		fail_msg("error '%s' does not say '%s'", e->msg, want);
	hull_error_free(e);
}

static void expect_error(struct pod_fx *p, struct ctr_fx *c, const char *want)
{
	expect_error_users(p, c, NULL, want);
}

static void expect_sandbox_error(struct pod_fx *p, const char *want)
{
	struct hull_error *e = NULL;
	char *json = NULL;
	int r = cri_sandbox_spec(&p->pod, "/pause", &json, &e);
	if (r >= 0)
		fail_msg("want an error with '%s', got a spec", want);
	assert_int_equal(r, -EINVAL);
	assert_null(json);
	if (!strstr(e->msg, want))
		fail_msg("error '%s' does not say '%s'", e->msg, want);
	hull_error_free(e);
}

#define DEFAULT_CAPS                                                                       \
	"CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_FSETID CAP_KILL CAP_SETGID CAP_SETUID " \
	"CAP_SETPCAP CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_SYS_CHROOT CAP_MKNOD "           \
	"CAP_AUDIT_WRITE CAP_SETFCAP"

/* ---- the sandbox ---- */

static void test_sandbox(void **state)
{
	struct pod_fx p;
	struct bundle b;
	json_object *s;
	const char *path;

	(void)state;
	pod_fx_init(&p);
	s = sandbox(&p, &b);
	/* What the shim acts on. */
	assert_string_equal(b.netns_path, "/var/run/netns/cni-1");
	assert_string_equal(b.cgroups_path, "/kubepods/besteffort/poduid-1/" POD_ID);
	assert_string_equal(b.template_domain, "team");
	assert_false(b.host_network || b.host_ipc || b.host_pid);
	assert_true(b.root_readonly);
	assert_int_equal(b.n_binds, 0);
	bundle_done(&b);

	assert_joined(s, "process.args", "/pause");
	assert_string_equal(gets(s, "process.cwd"), "/");
	assert_int_equal(geti(s, "process.user.uid"), 0);
	assert_int_equal(geti(s, "process.oomScoreAdj"), -998);
	assert_true(json_object_get_boolean(get(s, "process.noNewPrivileges")));
	assert_joined(s, "process.capabilities.bounding", DEFAULT_CAPS);
	assert_string_equal(gets(s, "hostname"), "web-host");
	assert_true(json_object_get_boolean(get(s, "root.readonly")));
	assert_column(s, "linux.namespaces", "type", "pid ipc uts mount network");
	assert_true(ns_of(s, "network", &path));
	assert_string_equal(path, "/var/run/netns/cni-1");
	assert_true(ns_of(s, "pid", &path));
	assert_null(path);
	{
		json_object *sysctl = get(s, "linux.sysctl");
		json_object *v = NULL;
		assert_true(
		    json_object_object_get_ex(sysctl, "net.ipv4.ip_unprivileged_port_start", &v));
		assert_string_equal(json_object_get_string(v), "0");
	}
	assert_int_equal(geti(s, "linux.resources.cpu.shares"), 2);
	assert_column(s, "mounts", "destination", "/proc /dev /dev/pts /dev/shm /dev/mqueue /sys");
	assert_non_null(get(s, "linux.maskedPaths"));
	assert_non_null(get(s, "linux.readonlyPaths"));
	assert_null(get(s, "linux.seccomp"));
	assert_null(get(s, "process.rlimits"));
	{
		json_object *a = get(s, "annotations"), *v;
#define ANN_IS(k, want)                                               \
	do {                                                          \
		assert_true(json_object_object_get_ex(a, k, &v));     \
		assert_string_equal(json_object_get_string(v), want); \
	} while (0)
		ANN_IS("io.kubernetes.cri.container-type", "sandbox");
		ANN_IS("io.kubernetes.cri.sandbox-id", POD_ID);
		ANN_IS("io.kubernetes.cri.sandbox-name", "web");
		ANN_IS("io.kubernetes.cri.sandbox-namespace", "shop");
		ANN_IS("io.kubernetes.cri.sandbox-uid", "uid-1");
		ANN_IS("io.kubernetes.cri.sandbox-log-directory", "/var/log/pods/shop_web_uid-1");
		ANN_IS("io.hull.template-domain", "team");
		assert_false(json_object_object_get_ex(a, "kubernetes.io/config.seen", &v));
	}
	json_object_put(s);
}

/* hostPID, no CNI namespace, the pod's files, a systemd slice. */
static void test_sandbox_host_pid_and_files(void **state)
{
	struct pod_fx p;
	struct bundle b;
	json_object *s, *m;
	const char *path;

	(void)state;
	pod_fx_init(&p);
	p.ns.pid = RUNTIME__V1__NAMESPACE_MODE__NODE;
	p.pod.netns_path = NULL;
	p.pod.shm_path = "/run/hull/cri/pods/x/shm";
	p.pod.resolv_path = "/run/hull/cri/pods/x/resolv.conf";
	p.pod.cgroup_driver = "systemd";
	p.lnx.cgroup_parent = "/kubepods.slice/kubepods-besteffort.slice/"
	                      "kubepods-besteffort-poduid_1.slice";
	p.cfg.hostname = "";
	s = sandbox(&p, &b);
	assert_true(b.host_pid);
	assert_false(b.host_network);
	assert_null(b.netns_path);
	assert_string_equal(b.cgroups_path,
	                    "kubepods-besteffort-poduid_1.slice:cri-containerd:" POD_ID);
	{
		_cleanup_free_ char *where = bundle_cgroup_path(b.cgroups_path);
		assert_string_equal(where, "/kubepods.slice/kubepods-besteffort.slice/"
		                           "kubepods-besteffort-poduid_1.slice/"
		                           "cri-containerd-" POD_ID ".scope");
	}
	assert_int_equal(b.n_binds, 2);
	bundle_done(&b);
	assert_false(ns_of(s, "pid", &path));
	assert_true(ns_of(s, "network", &path));
	assert_null(path);
	assert_null(get(s, "hostname"));
	assert_column(s, "mounts", "destination",
	              "/proc /dev /dev/pts /dev/mqueue /sys /dev/shm /etc/resolv.conf");
	m = mount_at(s, "/dev/shm");
	assert_string_equal(gets(m, "type"), "bind");
	assert_string_equal(gets(m, "source"), "/run/hull/cri/pods/x/shm");
	assert_joined(m, "options", "rbind ro nosuid nodev noexec");
	json_object_put(s);
}

static void test_sandbox_errors(void **state)
{
	struct pod_fx p;
	struct hull_error *e = NULL;
	char *json = NULL;

	(void)state;
	pod_fx_init(&p);
	p.ns.network = RUNTIME__V1__NAMESPACE_MODE__NODE;
	expect_sandbox_error(&p, SC_FIELD ".namespace_options.network: NODE (hostNetwork) is not "
	                                  "supported by hull");
	pod_fx_init(&p);
	p.ns.ipc = RUNTIME__V1__NAMESPACE_MODE__NODE;
	expect_sandbox_error(&p, SC_FIELD ".namespace_options.ipc: NODE (hostIPC)");
	pod_fx_init(&p);
	p.pod.cgroup_driver = "systemd";
	expect_sandbox_error(&p, "config.linux.cgroup_parent: '/kubepods/besteffort/poduid-1' is "
	                         "not a systemd slice");
	pod_fx_init(&p);
	p.lnx.cgroup_parent = "kubepods/x";
	expect_sandbox_error(&p, "config.linux.cgroup_parent: 'kubepods/x' is not an absolute");
	pod_fx_init(&p);
	p.sc.seccomp = &p.seccomp;
	p.seccomp.profile_type = RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Localhost;
	p.seccomp.localhost_ref = "profiles/audit.json";
	expect_sandbox_error(&p, SC_FIELD ".seccomp.localhost_ref: seccomp profile "
	                                  "'profiles/audit.json' cannot be read");
	pod_fx_init(&p);
	assert_int_equal(cri_sandbox_spec(&p.pod, "pause", &json, &e), -EINVAL);
	assert_null(json);
	hull_error_free(e);
}

/* ---- containers ---- */

static void test_container_basics(void **state)
{
	struct pod_fx p;
	struct ctr_fx c;
	json_object *s, *a, *v;
	const char *path;

	(void)state;
	pod_fx_init(&p);
	ctr_fx_init(&c);
	s = container(&p, &c);
	assert_joined(s, "process.args", "/docker-entrypoint.sh nginx -g daemon off;");
	assert_string_equal(gets(s, "process.cwd"), "/");
	assert_false(json_object_get_boolean(get(s, "process.terminal")));
	assert_false(json_object_get_boolean(get(s, "process.noNewPrivileges")));
	assert_null(get(s, "process.oomScoreAdj"));
	assert_null(get(s, "hostname"));
	assert_false(json_object_get_boolean(get(s, "root.readonly")));
	assert_string_equal(gets(s, "linux.cgroupsPath"), "/kubepods/besteffort/poduid-1/" CTR_ID);
	assert_column(s, "mounts", "destination",
	              "/proc /dev /dev/pts /dev/shm /dev/mqueue /sys /sys/fs/cgroup");
	assert_joined(mount_at(s, "/sys/fs/cgroup"), "options", "nosuid noexec nodev relatime ro");
	assert_joined(s, "linux.maskedPaths",
	              "/proc/acpi /proc/asound /proc/kcore /proc/keys /proc/latency_stats "
	              "/proc/timer_list /proc/timer_stats /proc/sched_debug /sys/firmware "
	              "/proc/scsi");
	assert_null(get(s, "linux.seccomp"));
	assert_null(get(s, "linux.sysctl"));
	assert_column(s, "linux.resources.devices", "access", "rwm");
	/* The pod's namespaces by the sandbox task's (guest) pid. */
	assert_column(s, "linux.namespaces", "type", "pid ipc uts mount network");
	assert_true(ns_of(s, "pid", &path));
	assert_string_equal(path, "/proc/42/ns/pid");
	assert_true(ns_of(s, "ipc", &path));
	assert_string_equal(path, "/proc/42/ns/ipc");
	assert_true(ns_of(s, "uts", &path));
	assert_string_equal(path, "/proc/42/ns/uts");
	assert_true(ns_of(s, "mount", &path));
	assert_null(path);
	assert_true(ns_of(s, "network", &path));
	assert_string_equal(path, "/var/run/netns/cni-1");
	a = get(s, "annotations");
	assert_true(json_object_object_get_ex(a, "io.kubernetes.cri.container-type", &v));
	assert_string_equal(json_object_get_string(v), "container");
	assert_true(json_object_object_get_ex(a, "io.kubernetes.cri.container-name", &v));
	assert_string_equal(json_object_get_string(v), "nginx");
	assert_true(json_object_object_get_ex(a, "io.kubernetes.cri.image-name", &v));
	assert_string_equal(json_object_get_string(v), "docker.io/library/nginx:1.25");
	assert_true(json_object_object_get_ex(a, "io.kubernetes.cri.sandbox-name", &v));
	assert_string_equal(json_object_get_string(v), "web");
	assert_true(json_object_object_get_ex(a, "io.kubernetes.cri.sandbox-uid", &v));
	assert_string_equal(json_object_get_string(v), "uid-1");
	assert_true(json_object_object_get_ex(a, "io.hull.template-domain", &v));
	json_object_put(s);

	/* What the shim reads from a container's bundle. */
	{
		struct hull_error *e = NULL;
		_cleanup_free_ char *json = NULL;
		struct bundle b;
		assert_int_equal(
		    cri_container_spec(&p.pod, CTR_ID, &c.cfg, &c.img, "img", &json, &e), 0);
		s = consume(json, "container", &b);
		assert_string_equal(b.cgroups_path, "/kubepods/besteffort/poduid-1/" CTR_ID);
		assert_string_equal(b.netns_path, "/var/run/netns/cni-1");
		assert_false(b.host_network || b.host_ipc || b.host_pid);
		bundle_done(&b);
		json_object_put(s);
	}

	/* Annotations: io.hull.* of the container's pass, others do not. */
	c.ann[0].key = "io.hull.note";
	c.ann[0].value = "x";
	c.ann[1].key = "io.kubernetes.container.hash";
	c.ann[1].value = "1234";
	c.cfg.n_annotations = 2;
	s = container(&p, &c);
	a = get(s, "annotations");
	assert_true(json_object_object_get_ex(a, "io.hull.note", &v));
	assert_false(json_object_object_get_ex(a, "io.kubernetes.container.hash", &v));
	json_object_put(s);

	/* The CRI's working directory, else the image's. */
	c.img.workdir = "/usr/share/nginx";
	s = container(&p, &c);
	assert_string_equal(gets(s, "process.cwd"), "/usr/share/nginx");
	json_object_put(s);
	c.cfg.working_dir = "/srv";
	s = container(&p, &c);
	assert_string_equal(gets(s, "process.cwd"), "/srv");
	json_object_put(s);
}

/* Docker's and the kubelet's rules for command and args over entrypoint and cmd. */
static void test_args(void **state)
{
	static char *cmd[] = {"/bin/sh", "-c"}, *args[] = {"echo hi"};
	static char *empty_ep[] = {"", NULL};
	struct pod_fx p;
	struct ctr_fx c;
	json_object *s;

	(void)state;
	pod_fx_init(&p);
	ctr_fx_init(&c);
	/* Neither: entrypoint + cmd (test_container_basics). Command and args. */
	c.cfg.command = cmd;
	c.cfg.n_command = 2;
	c.cfg.args = args;
	c.cfg.n_args = 1;
	s = container(&p, &c);
	assert_joined(s, "process.args", "/bin/sh -c echo hi");
	json_object_put(s);
	/* Command alone: the image's entrypoint and cmd both go. */
	c.cfg.n_args = 0;
	s = container(&p, &c);
	assert_joined(s, "process.args", "/bin/sh -c");
	json_object_put(s);
	/* Args alone: after the entrypoint, in place of cmd. */
	c.cfg.n_command = 0;
	c.cfg.n_args = 1;
	s = container(&p, &c);
	assert_joined(s, "process.args", "/docker-entrypoint.sh echo hi");
	json_object_put(s);
	/* An entrypoint of one empty string is none. */
	c.img.entrypoint = empty_ep;
	c.cfg.n_args = 0;
	s = container(&p, &c);
	assert_joined(s, "process.args", "nginx -g daemon off;");
	json_object_put(s);
	/* Nothing to run. */
	c.img.entrypoint = NULL;
	c.img.cmd = NULL;
	expect_error(&p, &c, "config.command: no command, and the image has no entrypoint or cmd");
}

/* The image's env under the config's: same key, the config's value in its place. */
static void test_env(void **state)
{
	struct pod_fx p;
	struct ctr_fx c;
	json_object *s;

	(void)state;
	pod_fx_init(&p);
	ctr_fx_init(&c);
	c.env[0].key = "FOO";
	c.env[0].value = "config";
	c.env[1].key = "NEW";
	c.env[1].value = "a=b";
	c.cfg.n_envs = 2;
	c.cfg.tty = true;
	s = container(&p, &c);
	assert_true(json_object_get_boolean(get(s, "process.terminal")));
	assert_joined(s, "process.env",
	              "PATH=/usr/local/nginx/bin:/usr/bin:/bin TERM=xterm HOSTNAME=web-host "
	              "NGINX_VERSION=1.25 FOO=config NEW=a=b");
	json_object_put(s);
	/* No image env: containerd's PATH. */
	c.img.env = NULL;
	c.cfg.n_envs = 0;
	c.cfg.tty = false;
	s = container(&p, &c);
	assert_joined(s, "process.env",
	              "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "
	              "HOSTNAME=web-host");
	json_object_put(s);
}

static const char passwd[] = "root:x:0:0:root:/root:/bin/sh\n"
                             "# a comment\n"
                             "nginx:x:101:101:nginx:/var/cache/nginx:/sbin/nologin\n"
                             "app:x:1000:1000::/home/app:/bin/sh\n";
static const char group[] = "root:x:0:root\n"
                            "bin:x:1:root,bin,daemon\n"
                            "nginx:x:101:nginx\n"
                            "www:x:33:nginx,app\n"
                            "staff:x:50:\n";

static void test_users(void **state)
{
	const struct cri_spec_users users = {.passwd = passwd, .group = group};
	struct pod_fx p;
	struct ctr_fx c;
	json_object *s;

	(void)state;
	pod_fx_init(&p);
	ctr_fx_init(&c);
	/* The image's USER: numeric, with and without a group. */
	c.img.user = "1000";
	s = container(&p, &c);
	assert_int_equal(geti(s, "process.user.uid"), 1000);
	assert_int_equal(geti(s, "process.user.gid"), 0);
	assert_null(get(s, "process.user.additionalGids"));
	json_object_put(s);
	c.img.user = "1000:2000";
	s = container(&p, &c);
	assert_int_equal(geti(s, "process.user.uid"), 1000);
	assert_int_equal(geti(s, "process.user.gid"), 2000);
	json_object_put(s);
	/* A name cannot be resolved without the image's /etc/passwd... */
	c.img.user = "nginx";
	expect_error(&p, &c, "config.image user 'nginx': not numeric and no run_as_user");
	/* ...unless run_as_user overrides it... */
	c.sc.run_as_user = &c.run_as_user;
	c.run_as_user.value = 5;
	s = container(&p, &c);
	assert_int_equal(geti(s, "process.user.uid"), 5);
	assert_int_equal(geti(s, "process.user.gid"), 0);
	json_object_put(s);
	c.sc.run_as_group = &c.run_as_group;
	c.run_as_group.value = 7;
	s = container(&p, &c);
	assert_int_equal(geti(s, "process.user.uid"), 5);
	assert_int_equal(geti(s, "process.user.gid"), 7);
	json_object_put(s);
	/* ...or the image's files are given: its uid, gid and groups. */
	c.sc.run_as_user = c.sc.run_as_group = NULL;
	s = container_users(&p, &c, &users);
	assert_int_equal(geti(s, "process.user.uid"), 101);
	assert_int_equal(geti(s, "process.user.gid"), 101);
	assert_joined(s, "process.user.additionalGids", "33");
	json_object_put(s);
	c.img.user = "nobody";
	expect_error_users(
	    &p, &c, &users,
	    "config.image user 'nobody': no user 'nobody' in the image's /etc/passwd");
	/* run_as_username, as the kubelet sends an image's named USER; supplemental
	 * groups merged, sorted, once each. */
	c.sc.run_as_username = "app";
	c.sc.n_supplemental_groups = 3;
	c.sc.supplemental_groups = (int64_t[]){2000, 33, 5};
	s = container_users(&p, &c, &users);
	assert_int_equal(geti(s, "process.user.uid"), 1000);
	assert_int_equal(geti(s, "process.user.gid"), 1000);
	assert_joined(s, "process.user.additionalGids", "5 33 2000");
	json_object_put(s);
	expect_error(&p, &c, SC_FIELD ".run_as_username 'app': not numeric");
	/* Root, from the files: root's groups but its own. */
	c.sc.run_as_username = "";
	c.sc.n_supplemental_groups = 0;
	c.img.user = NULL;
	s = container_users(&p, &c, &users);
	assert_int_equal(geti(s, "process.user.uid"), 0);
	assert_joined(s, "process.user.additionalGids", "1");
	json_object_put(s);
	/* A group without a user; more than user:group; group names. */
	c.sc.run_as_group = &c.run_as_group;
	expect_error(&p, &c, SC_FIELD ".run_as_group: set without run_as_user or run_as_username");
	c.sc.run_as_group = NULL;
	c.img.user = "1:2:3";
	expect_error(&p, &c, "config.image user '1:2:3': not a user, uid, user:group or uid:gid");
	c.img.user = "1000:staff";
	s = container_users(&p, &c, &users);
	assert_int_equal(geti(s, "process.user.gid"), 50);
	json_object_put(s);
	expect_error(&p, &c, "group 'staff' is not numeric");
	c.sc.run_as_user = &c.run_as_user;
	c.run_as_user.value = -1;
	expect_error(&p, &c, SC_FIELD ".run_as_user: -1 is not a uid or gid");
}

static void test_capabilities(void **state)
{
	static char *add[] = {"NET_ADMIN", "cap_sys_time"}, *drop[] = {"CHOWN", "KILL"};
	static char *all[] = {"ALL"}, *bind[] = {"NET_BIND_SERVICE"}, *bad[] = {"FLY"};
	struct pod_fx p;
	struct ctr_fx c;
	json_object *s;

	(void)state;
	pod_fx_init(&p);
	ctr_fx_init(&c);
	s = container(&p, &c);
	assert_joined(s, "process.capabilities.bounding", DEFAULT_CAPS);
	assert_joined(s, "process.capabilities.effective", DEFAULT_CAPS);
	assert_joined(s, "process.capabilities.permitted", DEFAULT_CAPS);
	assert_null(get(s, "process.capabilities.inheritable"));
	assert_null(get(s, "process.capabilities.ambient"));
	json_object_put(s);

	c.sc.capabilities = &c.caps;
	c.caps.add_capabilities = add;
	c.caps.n_add_capabilities = 2;
	c.caps.drop_capabilities = drop;
	c.caps.n_drop_capabilities = 2;
	s = container(&p, &c);
	assert_joined(s, "process.capabilities.bounding",
	              "CAP_DAC_OVERRIDE CAP_FOWNER CAP_FSETID CAP_SETGID CAP_SETUID CAP_SETPCAP "
	              "CAP_NET_BIND_SERVICE CAP_NET_ADMIN CAP_NET_RAW CAP_SYS_CHROOT CAP_SYS_TIME "
	              "CAP_MKNOD CAP_AUDIT_WRITE CAP_SETFCAP");
	json_object_put(s);
	/* ALL, less what is dropped. */
	c.caps.add_capabilities = all;
	c.caps.n_add_capabilities = 1;
	s = container(&p, &c);
	{
		_cleanup_free_ char *b = joined(s, "process.capabilities.bounding");
		assert_non_null(strstr(b, "CAP_SYS_ADMIN"));
		assert_non_null(strstr(b, "CAP_CHECKPOINT_RESTORE"));
		assert_null(strstr(b, "CAP_CHOWN"));
		assert_null(strstr(b, "CAP_KILL"));
	}
	json_object_put(s);
	/* Drop ALL, add one back. */
	c.caps.add_capabilities = bind;
	c.caps.drop_capabilities = all;
	c.caps.n_drop_capabilities = 1;
	s = container(&p, &c);
	assert_joined(s, "process.capabilities.bounding", "CAP_NET_BIND_SERVICE");
	json_object_put(s);
	c.caps.add_capabilities = bad;
	expect_error(&p, &c,
	             SC_FIELD ".capabilities.add_capabilities[0]: unknown capability 'FLY'");

	/* Privileged: every capability, no masked or read-only paths, /sys writable; only
	 * in a privileged pod. */
	c.sc.capabilities = NULL;
	c.sc.privileged = true;
	expect_error(&p, &c, SC_FIELD ".privileged: a privileged container in a pod that is not");
	p.sc.privileged = true;
	s = container(&p, &c);
	{
		json_object *b = get(s, "process.capabilities.bounding");
		assert_int_equal(json_object_array_length(b), 41);
	}
	assert_null(get(s, "linux.maskedPaths"));
	assert_null(get(s, "linux.readonlyPaths"));
	assert_joined(mount_at(s, "/sys"), "options", "nosuid noexec nodev rw");
	assert_joined(mount_at(s, "/sys/fs/cgroup"), "options", "nosuid noexec nodev relatime rw");
	json_object_put(s);
}

static void test_mounts(void **state)
{
	struct pod_fx p;
	struct ctr_fx c;
	struct bundle b;
	json_object *s, *m;
	struct hull_error *e = NULL;
	_cleanup_free_ char *json = NULL;

	(void)state;
	pod_fx_init(&p);
	ctr_fx_init(&c);
	p.pod.hosts_path = "/run/hull/cri/pods/x/hosts";
	p.pod.resolv_path = "/run/hull/cri/pods/x/resolv.conf";
	p.pod.hostname_path = "/run/hull/cri/pods/x/hostname";
	p.pod.shm_path = "/run/hull/cri/pods/x/shm";
	c.sc.readonly_rootfs = true;
	c.mount[0].container_path = "/data/cache";
	c.mount[0].host_path = "/var/lib/kubelet/pods/u/volumes/cache";
	c.mount[1].container_path = "/data";
	c.mount[1].host_path = "/var/lib/kubelet/pods/u/volumes/data";
	c.mount[1].readonly = true;
	c.mount[1].propagation = RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_HOST_TO_CONTAINER;
	c.mount[2].container_path = "/etc/hosts";
	c.mount[2].host_path = "/var/lib/kubelet/pods/u/etc-hosts";
	c.mount[3].container_path = "/shared";
	c.mount[3].host_path = "/mnt/shared";
	c.mount[3].propagation = RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_BIDIRECTIONAL;
	c.cfg.n_mounts = 4;
	assert_int_equal(cri_container_spec(&p.pod, CTR_ID, &c.cfg, &c.img, "img", &json, &e), 0);
	s = consume(json, "container", &b);
	/* The shim shares every bind source into the VM. */
	assert_int_equal(b.n_binds, 7);
	bundle_done(&b);
	/* Defaults but the pod's /dev/shm; then by depth, CRI mounts first among equals,
	 * the kubelet's /etc/hosts over the pod's. */
	assert_column(
	    s, "mounts", "destination",
	    "/proc /dev /dev/pts /dev/mqueue /sys /sys/fs/cgroup /data /shared /data/cache "
	    "/etc/hosts /etc/hostname /etc/resolv.conf /dev/shm");
	assert_string_equal(gets(mount_at(s, "/etc/hosts"), "source"),
	                    "/var/lib/kubelet/pods/u/etc-hosts");
	m = mount_at(s, "/data");
	assert_string_equal(gets(m, "type"), "bind");
	assert_joined(m, "options", "rbind rslave ro");
	assert_joined(mount_at(s, "/data/cache"), "options", "rbind rprivate rw");
	assert_joined(mount_at(s, "/shared"), "options", "rbind rshared rw");
	/* The pod's files read-only with the root, /dev/shm writable. */
	assert_joined(mount_at(s, "/etc/resolv.conf"), "options", "rbind rprivate ro");
	assert_joined(mount_at(s, "/etc/hostname"), "options", "rbind rprivate ro");
	assert_joined(mount_at(s, "/dev/shm"), "options", "rbind rprivate rw");
	assert_string_equal(gets(s, "linux.rootfsPropagation"), "rshared");
	assert_true(json_object_get_boolean(get(s, "root.readonly")));
	json_object_put(s);

	/* A /dev of its own covers every default under /dev. */
	c.mount[0].container_path = "/dev";
	c.cfg.n_mounts = 1;
	p.pod.shm_path = NULL;
	s = container(&p, &c);
	assert_column(s, "mounts", "destination",
	              "/proc /sys /sys/fs/cgroup /dev /etc/hostname /etc/hosts /etc/resolv.conf");
	assert_null(get(s, "linux.rootfsPropagation"));
	json_object_put(s);

	c.mount[0].container_path = "data";
	expect_error(&p, &c, "config.mounts[0].container_path: 'data' is not an absolute path");
	c.mount[0].container_path = "/data";
	c.mount[0].host_path = "";
	c.mount[0].image = &c.image;
	expect_error(&p, &c, "config.mounts[0].image: image volumes");
	c.mount[0].host_path = "/x";
	c.mount[0].recursive_read_only = true;
	expect_error(&p, &c, "config.mounts[0].recursive_read_only: not supported");
}

static void test_namespaces(void **state)
{
	struct pod_fx p;
	struct ctr_fx c;
	json_object *s;
	const char *path;

	(void)state;
	pod_fx_init(&p);
	ctr_fx_init(&c);
	p.pod.sandbox_pid = 4711;
	p.pod.netns_path = NULL;
	c.ns.pid = RUNTIME__V1__NAMESPACE_MODE__CONTAINER;
	s = container(&p, &c);
	assert_column(s, "linux.namespaces", "type", "pid ipc uts mount");
	assert_true(ns_of(s, "pid", &path));
	assert_null(path);
	assert_true(ns_of(s, "ipc", &path));
	assert_string_equal(path, "/proc/4711/ns/ipc");
	json_object_put(s);
	/* hostPID: the sandbox's, which is the VM's. */
	c.ns.pid = RUNTIME__V1__NAMESPACE_MODE__NODE;
	s = container(&p, &c);
	assert_true(ns_of(s, "pid", &path));
	assert_string_equal(path, "/proc/4711/ns/pid");
	json_object_put(s);

	c.ns.pid = RUNTIME__V1__NAMESPACE_MODE__TARGET;
	c.ns.target_id = "abc";
	expect_error(&p, &c, SC_FIELD ".namespace_options.pid: TARGET");
	c.ns.pid = RUNTIME__V1__NAMESPACE_MODE__POD;
	c.ns.network = RUNTIME__V1__NAMESPACE_MODE__NODE;
	expect_error(&p, &c,
	             SC_FIELD ".namespace_options.network: NODE (hostNetwork) is not supported by "
	                      "hull");
	c.ns.network = RUNTIME__V1__NAMESPACE_MODE__POD;
	c.ns.ipc = RUNTIME__V1__NAMESPACE_MODE__NODE;
	expect_error(&p, &c, SC_FIELD ".namespace_options.ipc: NODE (hostIPC) is not supported");
	c.ns.ipc = RUNTIME__V1__NAMESPACE_MODE__POD;
	{
		Runtime__V1__UserNamespace u = RUNTIME__V1__USER_NAMESPACE__INIT;
		u.mode = RUNTIME__V1__NAMESPACE_MODE__POD;
		c.ns.userns_options = &u;
		expect_error(&p, &c, SC_FIELD ".namespace_options.userns_options.mode: POD");
		c.ns.userns_options = NULL;
	}
}

static void test_cgroups(void **state)
{
	struct pod_fx p;
	struct ctr_fx c;
	json_object *s;

	(void)state;
	pod_fx_init(&p);
	ctr_fx_init(&c);
	p.pod.cgroup_driver = "systemd";
	p.lnx.cgroup_parent = "/kubepods.slice/kubepods-burstable.slice/"
	                      "kubepods-burstable-poduid_1.slice";
	s = container(&p, &c);
	assert_string_equal(gets(s, "linux.cgroupsPath"),
	                    "kubepods-burstable-poduid_1.slice:cri-containerd:" CTR_ID);
	json_object_put(s);
	p.pod.cgroup_driver = NULL;
	p.lnx.cgroup_parent = "/kubepods//burstable/poduid-1/";
	s = container(&p, &c);
	assert_string_equal(gets(s, "linux.cgroupsPath"), "/kubepods/burstable/poduid-1/" CTR_ID);
	json_object_put(s);
	/* No parent: containerd's namespace default. */
	p.lnx.cgroup_parent = "";
	s = container(&p, &c);
	assert_string_equal(gets(s, "linux.cgroupsPath"), "/k8s.io/" CTR_ID);
	json_object_put(s);
	p.pod.cgroup_driver = "cgroupv3";
	expect_error(&p, &c, "cgroup driver 'cgroupv3' is neither cgroupfs nor systemd");
}

static void test_resources(void **state)
{
	static Runtime__V1__HugepageLimit hp = RUNTIME__V1__HUGEPAGE_LIMIT__INIT, *hps[] = {&hp};
	struct pod_fx p;
	struct ctr_fx c;
	json_object *s;
	struct hull_error *e = NULL;
	_cleanup_free_ char *json = NULL;
	struct oci_spec o;

	(void)state;
	pod_fx_init(&p);
	ctr_fx_init(&c);
	c.lnx.resources = &c.res;
	c.res.cpu_shares = 512;
	c.res.cpu_quota = 50000;
	c.res.cpu_period = 100000;
	c.res.memory_limit_in_bytes = 128 << 20;
	c.res.memory_swap_limit_in_bytes = 128 << 20;
	c.res.cpuset_cpus = "0-1";
	c.res.oom_score_adj = 999;
	hp.page_size = "2MB";
	hp.limit = 4 << 20;
	c.res.hugepage_limits = hps;
	c.res.n_hugepage_limits = 1;
	s = container(&p, &c);
	assert_int_equal(geti(s, "linux.resources.cpu.shares"), 512);
	assert_int_equal(geti(s, "linux.resources.cpu.quota"), 50000);
	assert_int_equal(geti(s, "linux.resources.cpu.period"), 100000);
	assert_string_equal(gets(s, "linux.resources.cpu.cpus"), "0-1");
	assert_null(get(s, "linux.resources.cpu.mems"));
	assert_int_equal(geti(s, "linux.resources.memory.limit"), 128 << 20);
	assert_int_equal(geti(s, "linux.resources.memory.swap"), 128 << 20);
	assert_string_equal(gets(s, "linux.resources.hugepageLimits.0.pageSize"), "2MB");
	assert_int_equal(geti(s, "process.oomScoreAdj"), 999);
	json_object_put(s);
	/* The guest reads them as the cgroup it makes. */
	assert_int_equal(cri_container_spec(&p.pod, CTR_ID, &c.cfg, &c.img, "i", &json, &e), 0);
	assert_int_equal(oci_spec_parse(json, strlen(json), &o, &e), 0);
	assert_true(o.has_resources && o.resources.has_cpu_shares && o.resources.has_memory_limit);
	assert_int_equal(o.resources.cpu_shares, 512);
	assert_int_equal(o.resources.memory_limit, 128 << 20);
	assert_true(o.has_oom_score_adj);
	assert_int_equal(o.oom_score_adj, 999);
	oci_spec_done(&o);

	c.res.oom_score_adj = -1001;
	expect_error(&p, &c, "config.linux.resources.oom_score_adj: -1001 is outside");
	c.res.oom_score_adj = 0;
	c.res.cpu_shares = -2;
	expect_error(&p, &c, "config.linux.resources.cpu_shares: negative");
}

static void test_security_paths_and_flags(void **state)
{
	static char *masked[] = {"/proc/kcore"}, *ro[] = {"/proc/sys", "/proc/bus"};
	struct pod_fx p;
	struct ctr_fx c;
	json_object *s;

	(void)state;
	pod_fx_init(&p);
	ctr_fx_init(&c);
	c.sc.masked_paths = masked;
	c.sc.n_masked_paths = 1;
	c.sc.readonly_paths = ro;
	c.sc.n_readonly_paths = 2;
	c.sc.no_new_privs = true;
	s = container(&p, &c);
	assert_joined(s, "linux.maskedPaths", "/proc/kcore");
	assert_joined(s, "linux.readonlyPaths", "/proc/sys /proc/bus");
	assert_true(json_object_get_boolean(get(s, "process.noNewPrivileges")));
	json_object_put(s);

	{
		static Runtime__V1__Device d = RUNTIME__V1__DEVICE__INIT, *ds[] = {&d};
		d.host_path = "/dev/fuse";
		d.container_path = "/dev/fuse";
		c.cfg.devices = ds;
		c.cfg.n_devices = 1;
		expect_error(&p, &c, "config.devices[0]: host device '/dev/fuse' is not supported");
		c.cfg.n_devices = 0;
	}
	c.cfg.working_dir = "srv";
	expect_error(&p, &c, "config.working_dir: 'srv' is not an absolute path");
	c.cfg.working_dir = "";
	p.pod.sandbox_pid = 0;
	expect_error(&p, &c, "no sandbox task pid for the container to join");
	p.pod.sandbox_pid = 42;
	c.meta.name = "";
	expect_error(&p, &c, "config.metadata.name: missing");
}

/* RuntimeDefault: containerd's default profile, which the guest agent loads. */
static void test_seccomp(void **state)
{
	static char *admin[] = {"SYS_ADMIN"};
	struct pod_fx p;
	struct ctr_fx c;
	json_object *s;
	struct hull_error *e = NULL;
	_cleanup_free_ char *json = NULL;
	struct oci_spec o;
	struct bundle b;

	(void)state;
	pod_fx_init(&p);
	ctr_fx_init(&c);
	c.sc.seccomp = &c.seccomp;
	c.seccomp.profile_type = RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__RuntimeDefault;
	s = container(&p, &c);
	assert_string_equal(gets(s, "linux.seccomp.defaultAction"), "SCMP_ACT_ERRNO");
	assert_true(seccomp_allows(s, "read"));
	assert_true(seccomp_allows(s, "chroot")); /* CAP_SYS_CHROOT is a default */
	assert_false(seccomp_allows(s, "mount"));
	assert_false(seccomp_allows(s, "ptrace"));
	assert_false(seccomp_allows(s, "clone"));
	assert_non_null(get(s, "linux.seccomp.architectures.0"));
	json_object_put(s);
	assert_int_equal(cri_container_spec(&p.pod, CTR_ID, &c.cfg, &c.img, "i", &json, &e), 0);
	assert_int_equal(oci_spec_parse(json, strlen(json), &o, &e), 0);
	assert_non_null(o.seccomp);
	assert_string_equal(o.seccomp->default_action, "SCMP_ACT_ERRNO");
	/* The allow list, five personalities, the arch's extras, chroot, clone, clone3. */
	assert_true(o.seccomp->n_rules >= 9);
	oci_spec_done(&o);

	/* CAP_SYS_ADMIN opens mount and clone; no clone3 ENOSYS rule. */
	c.sc.capabilities = &c.caps;
	c.caps.add_capabilities = admin;
	c.caps.n_add_capabilities = 1;
	s = container(&p, &c);
	assert_true(seccomp_allows(s, "mount"));
	assert_true(seccomp_allows(s, "clone"));
	json_object_put(s);
	c.sc.capabilities = NULL;

	/* Unconfined, privileged: no filter. */
	c.seccomp.profile_type = RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Unconfined;
	s = container(&p, &c);
	assert_null(get(s, "linux.seccomp"));
	json_object_put(s);
	c.seccomp.profile_type = RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__RuntimeDefault;
	c.sc.privileged = p.sc.privileged = true;
	s = container(&p, &c);
	assert_null(get(s, "linux.seccomp"));
	json_object_put(s);
	c.sc.privileged = p.sc.privileged = false;

	/* The deprecated path field when there is no message. */
	c.sc.seccomp = NULL;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	c.sc.seccomp_profile_path = "runtime/default";
	s = container(&p, &c);
	assert_non_null(get(s, "linux.seccomp"));
	json_object_put(s);
	c.sc.seccomp_profile_path = "localhost/x.json";
	expect_error(&p, &c,
	             SC_FIELD ".seccomp_profile_path: seccomp profile 'x.json' cannot be read");
	c.sc.seccomp_profile_path = "";
#pragma GCC diagnostic pop

	c.sc.seccomp = &c.seccomp;
	c.seccomp.profile_type = RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Localhost;
	c.seccomp.localhost_ref = "/var/lib/kubelet/seccomp/audit.json";
	expect_error(&p, &c,
	             SC_FIELD ".seccomp.localhost_ref: seccomp profile "
	                      "'/var/lib/kubelet/seccomp/audit.json' cannot be read");
	{
		/* Docker's form, as kubelet's Localhost profiles are: the host's archMap entry,
		 * rules kept or dropped by their includes/excludes, name and names merged. */
		struct cri_spec_users u = {
		    .seccomp_localhost =
		        "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"defaultErrnoRet\": 1,"
		        " \"archMap\": [{\"architecture\": \"SCMP_ARCH_AARCH64\"},"
		        " {\"architecture\": \"SCMP_ARCH_X86_64\","
		        " \"subArchitectures\": [\"SCMP_ARCH_X86\"]}],"
		        " \"syscalls\": [{\"name\": \"chmod\", \"names\": [\"fchmod\"],"
		        " \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 1},"
		        " {\"names\": [\"mount\"], \"action\": \"SCMP_ACT_ERRNO\","
		        " \"includes\": {\"caps\": [\"CAP_SYS_ADMIN\"]}},"
		        " {\"names\": [\"kill\"], \"action\": \"SCMP_ACT_ERRNO\","
		        " \"excludes\": {\"caps\": [\"CAP_KILL\"]}},"
		        " {\"names\": [\"ptrace\"], \"action\": \"SCMP_ACT_ERRNO\","
		        " \"includes\": {\"arches\": [\"arm64\"]}}]}"};
		s = container_users(&p, &c, &u);
		assert_string_equal(gets(s, "linux.seccomp.defaultAction"), "SCMP_ACT_ALLOW");
		assert_string_equal(gets(s, "linux.seccomp.architectures.0"), "SCMP_ARCH_X86_64");
		assert_string_equal(gets(s, "linux.seccomp.architectures.1"), "SCMP_ARCH_X86");
		assert_null(get(s, "linux.seccomp.architectures.2"));
		assert_string_equal(gets(s, "linux.seccomp.syscalls.0.names.0"), "chmod");
		assert_string_equal(gets(s, "linux.seccomp.syscalls.0.names.1"), "fchmod");
		/* mount: CAP_SYS_ADMIN is not in the default set; kill: CAP_KILL is; ptrace:
		 * arm64 only. None of them is kept. */
		assert_null(get(s, "linux.seccomp.syscalls.1"));
		json_object_put(s);
		u.seccomp_localhost = "{\"syscalls\": []}";
		expect_error_users(&p, &c, &u, SC_FIELD ".seccomp.localhost_ref: seccomp profile");
	}
	c.seccomp.profile_type = RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__RuntimeDefault;
	expect_error(&p, &c, SC_FIELD ".seccomp.localhost_ref: set, but profile_type is not");

	/* The sandbox's, with the pod's security context. */
	p.sc.seccomp = &p.seccomp;
	p.seccomp.profile_type = RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__RuntimeDefault;
	s = sandbox(&p, &b);
	bundle_done(&b);
	assert_string_equal(gets(s, "linux.seccomp.defaultAction"), "SCMP_ACT_ERRNO");
	json_object_put(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sandbox),
	    cmocka_unit_test(test_sandbox_host_pid_and_files),
	    cmocka_unit_test(test_sandbox_errors),
	    cmocka_unit_test(test_container_basics),
	    cmocka_unit_test(test_args),
	    cmocka_unit_test(test_env),
	    cmocka_unit_test(test_users),
	    cmocka_unit_test(test_capabilities),
	    cmocka_unit_test(test_mounts),
	    cmocka_unit_test(test_namespaces),
	    cmocka_unit_test(test_cgroups),
	    cmocka_unit_test(test_resources),
	    cmocka_unit_test(test_security_paths_and_flags),
	    cmocka_unit_test(test_seccomp),
	};
	return cmocka_run_group_tests_name("cri-spec", tests, NULL, NULL);
}
