/* SPDX-License-Identifier: MIT */
/* hull run --rootfs: the OCI runtime spec the agent gets, built from the command line
 * with docker's defaults (capabilities, masked and read-only paths, a default seccomp
 * profile), so one engine path in the guest serves both --rootfs and --bundle. */
#include <json-c/json.h>
#include <string.h>

#include "cli-spec.h"
#include "util.h"

/* docker's default capability set for containers (moby's defaults). */
static const char *const default_caps[] = {
    "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
    "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
    "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
    "CAP_KILL",    "CAP_AUDIT_WRITE",
};

static const char *const masked_paths[] = {
    "/proc/asound",        "/proc/acpi",       "/proc/kcore",       "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi",          "/sys/firmware",
};

static const char *const readonly_paths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

/* The default seccomp profile. containerd's default is an allowlist that, for a
 * container holding only the default capabilities above, denies what follows; hull
 * writes it the other way round: allow by default, EPERM for these. Syscalls that
 * the capability drop already forbids (mount, ptrace of others, module loading) are
 * listed too, so the profile stands on its own. */
static const char *const denied_syscalls[] = {
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "quotactl_fd",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "sysfs",
    "_sysctl",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
};

static json_object *strv_json(const char *const *v, size_t n)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

static json_object *mount_json(const char *dest, const char *type, const char *source,
                               const char *const *opts, size_t n_opts)
{
	json_object *m = json_object_new_object();
	json_object_object_add(m, "destination", json_object_new_string(dest));
	json_object_object_add(m, "type", json_object_new_string(type));
	json_object_object_add(m, "source", json_object_new_string(source));
	json_object_object_add(m, "options", strv_json(opts, n_opts));
	return m;
}

#define OPTS(...) \
	(const char *const[]){__VA_ARGS__}, ELEMENTSOF(((const char *const[]){__VA_ARGS__}))

char *cli_build_oci_spec(const struct cli_spec_input *in, size_t *ret_len)
{
	json_object *spec = json_object_new_object();
	json_object *proc = json_object_new_object(), *user = json_object_new_object();
	json_object *caps = json_object_new_object(), *mounts = json_object_new_array();
	json_object *lin = json_object_new_object(), *ns = json_object_new_array();
	json_object *sc = json_object_new_object(), *rule = json_object_new_object();
	json_object *env = json_object_new_array(), *args = json_object_new_array();
	char *out;

	for (char *const *a = in->args; *a; a++)
		json_object_array_add(args, json_object_new_string(*a));
	for (char *const *e = in->env; e && *e; e++)
		json_object_array_add(env, json_object_new_string(*e));
	json_object_object_add(spec, "ociVersion", json_object_new_string("1.0.2"));
	json_object_object_add(proc, "terminal", json_object_new_boolean(in->terminal));
	if (in->terminal) {
		json_object *cs = json_object_new_object();
		json_object_object_add(cs, "height", json_object_new_int64(in->rows));
		json_object_object_add(cs, "width", json_object_new_int64(in->cols));
		json_object_object_add(proc, "consoleSize", cs);
	}
	json_object_object_add(user, "uid", json_object_new_int64(in->uid));
	json_object_object_add(user, "gid", json_object_new_int64(in->gid));
	json_object_object_add(proc, "user", user);
	json_object_object_add(proc, "args", args);
	json_object_object_add(proc, "env", env);
	json_object_object_add(proc, "cwd", json_object_new_string(in->cwd));
	if (!in->privileged) {
		static const char *const sets[] = {"bounding", "effective", "permitted"};
		for (size_t i = 0; i < ELEMENTSOF(sets); i++)
			json_object_object_add(caps, sets[i],
			                       strv_json(default_caps, ELEMENTSOF(default_caps)));
		json_object_object_add(proc, "capabilities", caps);
	} else {
		json_object_put(caps);
	}
	json_object_object_add(spec, "process", proc);
	json_object_object_add(spec, "hostname", json_object_new_string(in->hostname));

	json_object_array_add(
	    mounts, mount_json("/proc", "proc", "proc", OPTS("nosuid", "noexec", "nodev")));
	json_object_array_add(mounts,
	                      mount_json("/dev", "tmpfs", "tmpfs",
	                                 OPTS("nosuid", "strictatime", "mode=755", "size=65536k")));
	json_object_array_add(mounts, mount_json("/dev/pts", "devpts", "devpts",
	                                         OPTS("nosuid", "noexec", "newinstance",
	                                              "ptmxmode=0666", "mode=0620", "gid=5")));
	json_object_array_add(
	    mounts, mount_json("/dev/shm", "tmpfs", "shm",
	                       OPTS("nosuid", "noexec", "nodev", "mode=1777", "size=65536k")));
	json_object_array_add(mounts, mount_json("/dev/mqueue", "mqueue", "mqueue",
	                                         OPTS("nosuid", "noexec", "nodev")));
	json_object_array_add(
	    mounts, mount_json("/sys", "sysfs", "sysfs", OPTS("nosuid", "noexec", "nodev", "ro")));
	json_object_array_add(mounts,
	                      mount_json("/sys/fs/cgroup", "cgroup", "cgroup",
	                                 OPTS("nosuid", "noexec", "nodev", "relatime", "ro")));
	for (size_t i = 0; i < in->n_volumes; i++) {
		const struct cli_spec_volume *v = &in->volumes[i];
		if (v->readonly)
			json_object_array_add(mounts, mount_json(v->destination, "bind", v->source,
			                                         OPTS("rbind", "ro")));
		else
			json_object_array_add(
			    mounts, mount_json(v->destination, "bind", v->source, OPTS("rbind")));
	}
	json_object_object_add(spec, "mounts", mounts);

	/* No network namespace: the container shares the VM's, which is its sandbox. */
	static const char *const namespaces[] = {"pid", "ipc", "uts", "mount"};
	for (size_t i = 0; i < ELEMENTSOF(namespaces); i++) {
		json_object *n = json_object_new_object();
		json_object_object_add(n, "type", json_object_new_string(namespaces[i]));
		json_object_array_add(ns, n);
	}
	json_object_object_add(lin, "namespaces", ns);
	if (!in->privileged) {
		json_object_object_add(lin, "maskedPaths",
		                       strv_json(masked_paths, ELEMENTSOF(masked_paths)));
		json_object_object_add(lin, "readonlyPaths",
		                       strv_json(readonly_paths, ELEMENTSOF(readonly_paths)));
		json_object_object_add(sc, "defaultAction",
		                       json_object_new_string("SCMP_ACT_ALLOW"));
		json_object_object_add(
		    sc, "architectures",
		    strv_json(OPTS("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")));
		json_object_object_add(rule, "names",
		                       strv_json(denied_syscalls, ELEMENTSOF(denied_syscalls)));
		json_object_object_add(rule, "action", json_object_new_string("SCMP_ACT_ERRNO"));
		json_object_object_add(rule, "errnoRet", json_object_new_int64(EPERM));
		json_object *rules = json_object_new_array();
		json_object_array_add(rules, rule);
		json_object_object_add(sc, "syscalls", rules);
		json_object_object_add(lin, "seccomp", sc);
	} else {
		json_object_put(sc);
		json_object_put(rule);
	}
	json_object_object_add(spec, "linux", lin);

	out = xstrdup(json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PLAIN));
	json_object_put(spec);
	*ret_len = strlen(out);
	return out;
}
