/* SPDX-License-Identifier: MIT */
/* CRI configs -> OCI runtime specs, containerd 1.6's way: its default spec (oci/spec.go,
 * oci/mounts.go) under the CRI plugin's options (pkg/cri/server/sandbox_run_linux.go,
 * container_create_linux.go, pkg/cri/opts), so the shim and the guest agent get what
 * they get from containerd. Where hull-cri does otherwise, the comment says why:
 * - hostNetwork and hostIPC are refused here, by CRI field, as the shim refuses them
 *   later (docs/kubernetes.md). hostPID is what the shim makes of it: the sandbox asks
 *   for no PID namespace, so the pod shares the VM's.
 * - A user name is looked up in the image's /etc/passwd only when the caller passes it
 *   (cri_container_spec_users); containerd mounts the rootfs and reads it itself.
 * - Devices, image volumes, user namespaces, a debug container's TARGET PID namespace
 *   and Localhost seccomp profiles need the node (a stat, a file) or are not offered:
 *   refused by name rather than run without.
 * - Without masked_paths/readonly_paths in the security context, containerd gives a
 *   container none; hull-cri gives its defaults (the kubelet always sends them, so
 *   only a bare CRI client sees the difference). */
#include "cri-spec.h"

#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <linux/capability.h>
#include <sched.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "json.h"
#include "util.h"

#define OCI_VERSION "1.0.2-dev"
#define DEFAULT_PATH_ENV "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define SANDBOX_OOM_SCORE_ADJ (-998) /* containerd's defaultSandboxOOMAdj */
#define SANDBOX_CPU_SHARES 2         /* containerd's DefaultSandboxCPUshares */
#define ANN "io.kubernetes.cri."
#define PASSTHROUGH_PREFIX "io.hull." /* the pod and container annotations passed on */
#define SC "config.linux.security_context"

typedef Runtime__V1__NamespaceMode ns_mode;

static bool set(const char *s)
{
	return s && *s;
}

static const char *str(const char *s)
{
	return s ? s : "";
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* ---- JSON ------------------------------------------------------------------------- */

static void add_str(json_object *o, const char *key, const char *value)
{
	json_object_object_add(o, key, json_object_new_string(value));
}

static void add_int(json_object *o, const char *key, int64_t value)
{
	json_object_object_add(o, key, json_object_new_int64(value));
}

static json_object *strv_json(const char *const *v, size_t n)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < n && v[i]; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

static json_object *ns_json(const char *type, const char *path)
{
	json_object *o = json_object_new_object();
	add_str(o, "type", type);
	if (path)
		add_str(o, "path", path);
	return o;
}

/* ---- paths ------------------------------------------------------------------------ */

/* Lexically clean as Go's filepath.Clean: one slash between components, no "." and
 * no "x/.."; ".." at the root of an absolute path stays at the root. */
static char *path_clean(const char *p)
{
	bool abs = p[0] == '/';
	size_t n = strlen(p);
	char *out = xmalloc(n + 2);
	size_t len = 0;

	if (abs)
		out[len++] = '/';
	for (const char *c = p; *c;) {
		const char *end = strchrnul(c, '/');
		size_t k = (size_t)(end - c);
		if (k == 0 || (k == 1 && c[0] == '.')) {
			/* empty or "." */
		} else if (k == 2 && c[0] == '.' && c[1] == '.') {
			size_t base = abs ? 1 : 0;
			if (len > base &&
			    !(len - base >= 2 && memcmp(out + len - 2, "..", 2) == 0 &&
			      (len - base == 2 || out[len - 3] == '/'))) {
				while (len > base && out[len - 1] != '/')
					len--;
				if (len > base)
					len--;
			} else if (!abs) {
				if (len > 0)
					out[len++] = '/';
				out[len++] = '.';
				out[len++] = '.';
			}
		} else {
			if (len > (abs ? 1u : 0u))
				out[len++] = '/';
			memcpy(out + len, c, k);
			len += k;
		}
		c = *end ? end + 1 : end;
	}
	if (len == 0)
		out[len++] = '.';
	out[len] = '\0';
	return out;
}

/* Components of a clean path: what containerd sorts CRI mounts by. */
static size_t path_depth(const char *clean)
{
	size_t n = 1;
	for (const char *c = clean; *c; c++)
		n += *c == '/';
	return n;
}

/* ---- capabilities ----------------------------------------------------------------- */

/* By number, as the kernel numbers them; the CRI names them without "CAP_". */
static const char *const cap_names[] = {
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
};

_Static_assert(ELEMENTSOF(cap_names) == CAP_CHECKPOINT_RESTORE + 1, "one name per capability");

#define CAP(c) (1ull << (c))
#define CAPS_ALL ((1ull << ELEMENTSOF(cap_names)) - 1)
/* containerd's defaultUnixCaps (Docker's). */
#define CAPS_DEFAULT                                                                             \
	(CAP(CAP_CHOWN) | CAP(CAP_DAC_OVERRIDE) | CAP(CAP_FSETID) | CAP(CAP_FOWNER) |            \
	 CAP(CAP_MKNOD) | CAP(CAP_NET_RAW) | CAP(CAP_SETGID) | CAP(CAP_SETUID) |                 \
	 CAP(CAP_SETFCAP) | CAP(CAP_SETPCAP) | CAP(CAP_NET_BIND_SERVICE) | CAP(CAP_SYS_CHROOT) | \
	 CAP(CAP_KILL) | CAP(CAP_AUDIT_WRITE))

/* "net_admin" or "CAP_NET_ADMIN" -> CAP_NET_ADMIN; -1 when unknown. */
static int cap_of(const char *name)
{
	if (strncasecmp(name, "CAP_", 4) == 0)
		name += 4;
	for (size_t i = 0; i < ELEMENTSOF(cap_names); i++)
		if (strcasecmp(name, cap_names[i]) == 0)
			return (int)i;
	return -1;
}

/* pkg/cri/opts WithCapabilities: "ALL" in add, then "ALL" in drop, then each added,
 * then each dropped. A privileged container starts from every capability (with
 * privileged_without_host_devices, as docs/kubernetes.md configures containerd, its
 * add and drop still apply). */
static int caps_of(const Runtime__V1__LinuxContainerSecurityContext *sc, uint64_t *ret,
                   struct hull_error **err)
{
	const Runtime__V1__Capability *c = sc ? sc->capabilities : NULL;
	uint64_t caps = sc && sc->privileged ? CAPS_ALL : CAPS_DEFAULT;

	if (c) {
		for (size_t i = 0; i < c->n_add_capabilities; i++)
			if (strcasecmp(c->add_capabilities[i], "ALL") == 0)
				caps = CAPS_ALL;
		for (size_t i = 0; i < c->n_drop_capabilities; i++)
			if (strcasecmp(c->drop_capabilities[i], "ALL") == 0)
				caps = 0;
		for (int pass = 0; pass < 2; pass++) {
			char **names = pass ? c->drop_capabilities : c->add_capabilities;
			size_t n = pass ? c->n_drop_capabilities : c->n_add_capabilities;
			for (size_t i = 0; i < n; i++) {
				int cap = cap_of(names[i]);
				if (strcasecmp(names[i], "ALL") == 0)
					continue;
				if (cap < 0)
					return hull_error_set(
					    err, -EINVAL,
					    SC ".capabilities.%s_capabilities[%zu]: unknown "
					       "capability '%.64s'",
					    pass ? "drop" : "add", i, names[i]);
				if (pass)
					caps &= ~CAP(cap);
				else
					caps |= CAP(cap);
			}
		}
	}
	*ret = caps;
	return 0;
}

/* Bounding, effective and permitted alike; no inheritable or ambient set (containerd
 * 1.6 clears both). */
static json_object *caps_json(uint64_t caps)
{
	static const char *const sets[] = {"bounding", "effective", "permitted"};
	json_object *o = json_object_new_object();

	for (size_t s = 0; s < ELEMENTSOF(sets); s++) {
		json_object *a = json_object_new_array();
		for (size_t i = 0; i < ELEMENTSOF(cap_names); i++)
			if (caps & CAP(i)) {
				_cleanup_free_ char *name = xasprintf("CAP_%s", cap_names[i]);
				json_object_array_add(a, json_object_new_string(name));
			}
		json_object_object_add(o, sets[s], a);
	}
	return o;
}

/* ---- seccomp ---------------------------------------------------------------------- */

/* Seccomp, and why hull-cri writes a filter for RuntimeDefault: under containerd the CRI
 * plugin writes its default profile into linux.seccomp and the shim passes it on; the
 * guest agent compiles it with libseccomp and loads it before execve
 * (agent/container/container-seccomp.c; seccomp_kill_like_runc tests it), skipping
 * syscall names its libseccomp does not know. Leaving it out would quietly run pods that
 * ask for RuntimeDefault (the restricted Pod Security Standard does) unconfined, so the
 * profile below is containerd 1.6's contrib/seccomp DefaultProfile: this list allowed,
 * personality with Linux's and the 32-bit personalities, the architecture's extras,
 * more for each capability in the bounding set, and without CAP_SYS_ADMIN clone only
 * without namespace flags and clone3 failing with ENOSYS (libc falls back to clone).
 * Everything else fails with EPERM. Unconfined (the kubelet's default) and a privileged
 * container get no filter; a Localhost profile would be read from the node and is
 * refused. */
/* clang-format off */
static const char *const seccomp_allowed[] = {
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset", "chdir",
    "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres",
    "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
    "clock_nanosleep_time64", "close", "close_range", "connect", "copy_file_range", "creat", "dup",
    "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
    "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat",
    "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
    "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchown", "fchown32", "fchownat", "fcntl",
    "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr",
    "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
    "ftruncate64", "futex", "futex_time64", "futimesat", "getcpu", "getcwd", "getdents",
    "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32",
    "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid",
    "getppid", "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32",
    "getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname", "getsockopt",
    "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr",
    "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl",
    "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "ioprio_get",
    "ioprio_set", "io_setup", "io_submit", "io_uring_enter", "io_uring_register", "io_uring_setup",
    "ipc", "kill", "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen", "listxattr",
    "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "madvise",
    "membarrier", "memfd_create", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock",
    "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
    "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64",
    "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
    "munlockall", "munmap", "nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2",
    "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "poll", "ppoll", "ppoll_time64",
    "prctl", "pread64", "preadv", "preadv2", "prlimit64", "pselect6", "pselect6_time64",
    "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv",
    "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages",
    "removexattr", "rename", "renameat", "renameat2", "restart_syscall", "rmdir", "rseq",
    "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
    "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
    "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_get_priority_max",
    "sched_get_priority_min", "sched_getscheduler", "sched_rr_get_interval",
    "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr", "sched_setparam",
    "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget", "semop",
    "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg",
    "sendto", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32",
    "setgroups", "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32",
    "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit",
    "set_robust_list", "setsid", "setsockopt", "set_thread_area", "set_tid_address", "setuid",
    "setuid32", "setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack",
    "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socket", "socketcall", "socketpair",
    "splice", "stat", "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync",
    "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create",
    "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
    "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
    "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask",
    "uname", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "vfork",
    "vmsplice", "wait4", "waitid", "waitpid", "write", "writev", NULL,
};
/* clang-format on */

/* The personalities allowed: Linux, UNAME26, PER_LINUX32, PER_LINUX32|UNAME26, and the
 * query (0xffffffff). */
static const uint64_t seccomp_personalities[] = {0x0, 0x0008, 0x20000, 0x20008, 0xffffffff};

#if defined(__x86_64__)
static const char *const seccomp_arches[] = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32",
                                             NULL};
static const char *const seccomp_arch_allowed[] = {"arch_prctl", "modify_ldt", NULL};
#elif defined(__aarch64__)
static const char *const seccomp_arches[] = {"SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64", NULL};
static const char *const seccomp_arch_allowed[] = {"arm_fadvise64_64",
                                                   "arm_sync_file_range",
                                                   "sync_file_range2",
                                                   "breakpoint",
                                                   "cacheflush",
                                                   "set_tls",
                                                   NULL};
#else
static const char *const seccomp_arches[] = {NULL};
static const char *const seccomp_arch_allowed[] = {NULL};
#endif

static const struct {
	int cap;
	const char *const names[24];
} seccomp_cap_allowed[] = {
    {CAP_DAC_READ_SEARCH, {"open_by_handle_at"}},
    {CAP_SYS_ADMIN, {"bpf",           "clone",           "clone3",
                     "fanotify_init", "fsconfig",        "fsmount",
                     "fsopen",        "fspick",          "lookup_dcookie",
                     "mount",         "move_mount",      "name_to_handle_at",
                     "open_tree",     "perf_event_open", "quotactl",
                     "setdomainname", "sethostname",     "setns",
                     "syslog",        "umount",          "umount2",
                     "unshare"}},
    {CAP_SYS_BOOT, {"reboot"}},
    {CAP_SYS_CHROOT, {"chroot"}},
    {CAP_SYS_MODULE, {"delete_module", "init_module", "finit_module"}},
    {CAP_SYS_PACCT, {"acct"}},
    {CAP_SYS_PTRACE,
     {"kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"}},
    {CAP_SYS_RAWIO, {"iopl", "ioperm"}},
    {CAP_SYS_TIME, {"settimeofday", "stime", "clock_settime"}},
    {CAP_SYS_TTY_CONFIG, {"vhangup"}},
    {CAP_SYSLOG, {"syslog"}},
};

static json_object *seccomp_rule(const char *const *names, const char *action)
{
	json_object *r = json_object_new_object();
	json_object_object_add(r, "names", strv_json(names, SIZE_MAX));
	add_str(r, "action", action);
	return r;
}

static json_object *seccomp_arg(unsigned index, uint64_t value, uint64_t value_two, const char *op)
{
	json_object *a = json_object_new_object();
	add_int(a, "index", index);
	json_object_object_add(a, "value", json_object_new_uint64(value));
	if (value_two)
		json_object_object_add(a, "valueTwo", json_object_new_uint64(value_two));
	add_str(a, "op", op);
	return a;
}

static json_object *seccomp_default(uint64_t bounding)
{
	static const char *const personality[] = {"personality", NULL};
	static const char *const clone_[] = {"clone", NULL};
	static const char *const clone3[] = {"clone3", NULL};
	json_object *sc = json_object_new_object(), *rules = json_object_new_array(), *r, *args;

	add_str(sc, "defaultAction", "SCMP_ACT_ERRNO");
	json_object_object_add(sc, "architectures", strv_json(seccomp_arches, SIZE_MAX));
	json_object_array_add(rules, seccomp_rule(seccomp_allowed, "SCMP_ACT_ALLOW"));
	for (size_t i = 0; i < ELEMENTSOF(seccomp_personalities); i++) {
		r = seccomp_rule(personality, "SCMP_ACT_ALLOW");
		args = json_object_new_array();
		json_object_array_add(args,
		                      seccomp_arg(0, seccomp_personalities[i], 0, "SCMP_CMP_EQ"));
		json_object_object_add(r, "args", args);
		json_object_array_add(rules, r);
	}
	if (seccomp_arch_allowed[0])
		json_object_array_add(rules, seccomp_rule(seccomp_arch_allowed, "SCMP_ACT_ALLOW"));
	for (size_t i = 0; i < ELEMENTSOF(seccomp_cap_allowed); i++)
		if (bounding & CAP(seccomp_cap_allowed[i].cap))
			json_object_array_add(
			    rules, seccomp_rule(seccomp_cap_allowed[i].names, "SCMP_ACT_ALLOW"));
	if (!(bounding & CAP(CAP_SYS_ADMIN))) {
		const uint64_t ns_flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC |
		                          CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
		                          CLONE_NEWCGROUP;
		r = seccomp_rule(clone_, "SCMP_ACT_ALLOW");
		args = json_object_new_array();
		/* s390 passes clone's flags second; everywhere else first. */
#if defined(__s390x__)
		json_object_array_add(args, seccomp_arg(1, ns_flags, 0, "SCMP_CMP_MASKED_EQ"));
#else
		json_object_array_add(args, seccomp_arg(0, ns_flags, 0, "SCMP_CMP_MASKED_EQ"));
#endif
		json_object_object_add(r, "args", args);
		json_object_array_add(rules, r);
		r = seccomp_rule(clone3, "SCMP_ACT_ERRNO");
		add_int(r, "errnoRet", ENOSYS);
		json_object_array_add(rules, r);
	}
	json_object_object_add(sc, "syscalls", rules);
	return sc;
}

/* linux.seccomp for a security context's profile (the message, else the deprecated
 * path), *ret NULL for none. field names the security context. */
/* A seccomp profile file in Docker's form (what kubelet's Localhost profiles are; an
 * OCI linux.seccomp object reads the same) as the OCI linux.seccomp for this
 * container, as containerd's LoadProfile makes it: the architectures of the host's
 * entry in archMap, the syscall rules whose includes/excludes (capabilities in the
 * bounding set, the host's architecture) hold, name and names merged. */
static bool json_list_has(json_object *list, const char *v)
{
	for (size_t i = 0; list && json_object_is_type(list, json_type_array) &&
	                   i < json_object_array_length(list);
	     i++) {
		const char *e = json_object_get_string(json_object_array_get_idx(list, i));
		if (e && strcmp(e, v) == 0)
			return true;
	}
	return false;
}

static bool caps_any(json_object *caps, uint64_t bounding)
{
	for (size_t i = 0; i < json_object_array_length(caps); i++) {
		int c = cap_of(str(json_object_get_string(json_object_array_get_idx(caps, i))));
		if (c >= 0 && (bounding & CAP(c)))
			return true;
	}
	return false;
}

/* The rule applies to this container and host. */
static bool rule_applies(json_object *rule, uint64_t bounding, const char *arch)
{
	json_object *inc, *exc, *v;
	if (json_object_object_get_ex(rule, "includes", &inc)) {
		if (json_object_object_get_ex(inc, "caps", &v) &&
		    json_object_is_type(v, json_type_array) && json_object_array_length(v) > 0 &&
		    !caps_any(v, bounding))
			return false;
		if (json_object_object_get_ex(inc, "arches", &v) &&
		    json_object_is_type(v, json_type_array) && json_object_array_length(v) > 0 &&
		    !json_list_has(v, arch))
			return false;
	}
	if (json_object_object_get_ex(rule, "excludes", &exc)) {
		if (json_object_object_get_ex(exc, "caps", &v) &&
		    json_object_is_type(v, json_type_array) && caps_any(v, bounding))
			return false;
		if (json_object_object_get_ex(exc, "arches", &v) && json_list_has(v, arch))
			return false;
	}
	return true;
}

static int seccomp_from_profile(const char *text, const char *path, uint64_t bounding,
                                json_object **ret, struct hull_error **err)
{
	json_object *prof, *out, *v, *syscalls, *arches;
	/* amd64 only: hull's guests are x86_64 (docs/guest-kernel.md). */
	const char *arch = "amd64", *scmp_arch = "SCMP_ARCH_X86_64";

	if (!text)
		return hull_error_set(err, -EINVAL, "seccomp profile '%.200s' cannot be read",
		                      path);
	if (json_parse(text, strlen(text), 32, true, &prof, err) < 0)
		return hull_error_prefix(err, "seccomp profile '%.200s'", path);
	if (!json_object_is_type(prof, json_type_object) ||
	    !json_get_string(prof, "defaultAction")) {
		json_object_put(prof);
		return hull_error_set(err, -EINVAL, "seccomp profile '%.200s': no defaultAction",
		                      path);
	}
	out = json_object_new_object();
	add_str(out, "defaultAction", json_get_string(prof, "defaultAction"));
	if (json_object_object_get_ex(prof, "defaultErrnoRet", &v))
		json_object_object_add(out, "defaultErrnoRet", json_object_get(v));
	arches = json_object_new_array();
	if (json_object_object_get_ex(prof, "archMap", &v) &&
	    json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			json_object *m = json_object_array_get_idx(v, i), *subs;
			if (strcmp(str(json_get_string(m, "architecture")), scmp_arch) != 0)
				continue;
			json_object_array_add(arches, json_object_new_string(scmp_arch));
			if (json_object_object_get_ex(m, "subArchitectures", &subs) &&
			    json_object_is_type(subs, json_type_array))
				for (size_t k = 0; k < json_object_array_length(subs); k++)
					json_object_array_add(
					    arches,
					    json_object_get(json_object_array_get_idx(subs, k)));
		}
	}
	if (json_object_object_get_ex(prof, "architectures", &v) &&
	    json_object_is_type(v, json_type_array))
		for (size_t i = 0; i < json_object_array_length(v); i++)
			json_object_array_add(arches,
			                      json_object_get(json_object_array_get_idx(v, i)));
	if (json_object_array_length(arches) > 0)
		json_object_object_add(out, "architectures", arches);
	else
		json_object_put(arches);
	if (json_object_object_get_ex(prof, "flags", &v) && json_object_is_type(v, json_type_array))
		json_object_object_add(out, "flags", json_object_get(v));
	syscalls = json_object_new_array();
	if (json_object_object_get_ex(prof, "syscalls", &v) &&
	    json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			json_object *rule = json_object_array_get_idx(v, i), *names, *o, *x;
			if (!json_object_is_type(rule, json_type_object) ||
			    !rule_applies(rule, bounding, arch))
				continue;
			o = json_object_new_object();
			names = json_object_new_array();
			if (json_get_string(rule, "name"))
				json_object_array_add(
				    names, json_object_new_string(json_get_string(rule, "name")));
			if (json_object_object_get_ex(rule, "names", &x) &&
			    json_object_is_type(x, json_type_array))
				for (size_t k = 0; k < json_object_array_length(x); k++)
					json_object_array_add(
					    names,
					    json_object_get(json_object_array_get_idx(x, k)));
			json_object_object_add(o, "names", names);
			add_str(o, "action", str(json_get_string(rule, "action")));
			if (json_object_object_get_ex(rule, "errnoRet", &x))
				json_object_object_add(o, "errnoRet", json_object_get(x));
			if (json_object_object_get_ex(rule, "args", &x) &&
			    json_object_is_type(x, json_type_array))
				json_object_object_add(o, "args", json_object_get(x));
			json_object_array_add(syscalls, o);
		}
	}
	json_object_object_add(out, "syscalls", syscalls);
	json_object_put(prof);
	*ret = out;
	return 0;
}

static int seccomp_of(const Runtime__V1__SecurityProfile *sp, const char *legacy, const char *field,
                      bool privileged, uint64_t bounding, const char *localhost_text,
                      json_object **ret, struct hull_error **err)
{
	*ret = NULL;
	if (privileged)
		return 0; /* containerd: no filter for a privileged container */
	if (sp) {
		if (sp->profile_type != RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Localhost &&
		    set(sp->localhost_ref))
			return hull_error_set(err, -EINVAL,
			                      "%s.seccomp.localhost_ref: set, but profile_type is "
			                      "not Localhost",
			                      field);
		switch (sp->profile_type) {
		case RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Unconfined:
			return 0;
		case RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__RuntimeDefault:
			*ret = seccomp_default(bounding);
			return 0;
		case RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Localhost:
			if (seccomp_from_profile(localhost_text, str(sp->localhost_ref), bounding,
			                         ret, err) < 0)
				return hull_error_prefix(err, "%s.seccomp.localhost_ref", field);
			return 0;
		default:
			return hull_error_set(err, -EINVAL, "%s.seccomp.profile_type: unknown %d",
			                      field, (int)sp->profile_type);
		}
	}
	if (!set(legacy))
		return 0;
	if (strcmp(legacy, "runtime/default") == 0 || strcmp(legacy, "docker/default") == 0) {
		*ret = seccomp_default(bounding);
		return 0;
	}
	if (strcmp(legacy, "unconfined") == 0)
		return 0;
	if (strncmp(legacy, "localhost/", strlen("localhost/")) == 0) {
		if (seccomp_from_profile(localhost_text, legacy + strlen("localhost/"), bounding,
		                         ret, err) < 0)
			return hull_error_prefix(err, "%s.seccomp_profile_path", field);
		return 0;
	}
	return hull_error_set(err, -EINVAL, "%s.seccomp_profile_path: invalid profile '%.200s'",
	                      field, legacy);
}

/* ---- users ------------------------------------------------------------------------ */

/* A uid or gid as the CRI or an image's USER writes it: decimal, 32 bits. */
static bool parse_id(const char *s, size_t n, uint32_t *ret)
{
	uint64_t v = 0;

	if (n == 0 || n > 10)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return false;
	*ret = (uint32_t)v;
	return true;
}

/* The next line of text: [*line, *line + *len). */
static bool next_line(const char **p, const char **line, size_t *len)
{
	const char *nl;

	if (!*p || !**p)
		return false;
	nl = strchrnul(*p, '\n');
	*line = *p;
	*len = (size_t)(nl - *p);
	*p = *nl ? nl + 1 : nl;
	return true;
}

/* Up to max ':'-separated fields of a line; the number found. */
static size_t fields_of(const char *line, size_t len, const char **f, size_t *flen, size_t max)
{
	size_t n = 0;
	const char *end = line + len;

	for (const char *c = line; n < max;) {
		const char *colon = memchr(c, ':', (size_t)(end - c));
		f[n] = c;
		flen[n] = (size_t)((colon ? colon : end) - c);
		n++;
		if (!colon)
			break;
		c = colon + 1;
	}
	return n;
}

static bool field_is(const char *f, size_t n, const char *s)
{
	return strlen(s) == n && memcmp(f, s, n) == 0;
}

/* /etc/passwd: the first entry named name (or, name NULL, with uid *uid). */
static bool passwd_find(const char *passwd, const char *name, uint32_t *uid, uint32_t *gid,
                        char **ret_name)
{
	const char *p = passwd, *line, *f[4];
	size_t len, flen[4];

	while (next_line(&p, &line, &len)) {
		uint32_t u, g;
		if (len == 0 || line[0] == '#' || fields_of(line, len, f, flen, 4) < 4 ||
		    !parse_id(f[2], flen[2], &u) || !parse_id(f[3], flen[3], &g))
			continue;
		if (name ? !field_is(f[0], flen[0], name) : u != *uid)
			continue;
		*uid = u;
		*gid = g;
		if (ret_name)
			*ret_name = xstrndup(f[0], flen[0]);
		return true;
	}
	return false;
}

/* /etc/group: the gid of the group named name. */
static bool group_find(const char *group, const char *name, uint32_t *gid)
{
	const char *p = group, *line, *f[3];
	size_t len, flen[3];

	while (next_line(&p, &line, &len))
		if (len > 0 && line[0] != '#' && fields_of(line, len, f, flen, 3) == 3 &&
		    field_is(f[0], flen[0], name) && parse_id(f[2], flen[2], gid))
			return true;
	return false;
}

static void gids_add(uint32_t **gids, size_t *n, uint32_t gid)
{
	for (size_t i = 0; i < *n; i++)
		if ((*gids)[i] == gid)
			return;
	*gids = xrealloc(*gids, (*n + 1) * sizeof(**gids));
	(*gids)[(*n)++] = gid;
}

/* oci.WithAdditionalGIDs: the groups whose member list names user, except the group
 * of the user's own name. */
static void group_memberships(const char *group, const char *user, uint32_t **gids, size_t *n)
{
	const char *p = group, *line, *f[4];
	size_t len, flen[4];

	while (next_line(&p, &line, &len)) {
		uint32_t gid;
		const char *m, *end;
		if (len == 0 || line[0] == '#' || fields_of(line, len, f, flen, 4) < 4 ||
		    field_is(f[0], flen[0], user) || !parse_id(f[2], flen[2], &gid))
			continue;
		end = f[3] + flen[3];
		for (m = f[3]; m < end;) {
			const char *comma = memchr(m, ',', (size_t)(end - m));
			size_t k = (size_t)((comma ? comma : end) - m);
			if (field_is(m, k, user)) {
				gids_add(gids, n, gid);
				break;
			}
			m = comma ? comma + 1 : end;
		}
	}
}

/* userstr as oci.WithUser reads it: "uid", "name", "uid:gid", "name:group",
 * "uid:group", "name:gid". A numeric uid alone takes its gid from /etc/passwd (0 when
 * it is not there); names must be in the files. what names the source for errors
 * ("config.image user 'nginx'"); *ret_name is the user's name when known. */
static int user_parse(const char *userstr, const char *what, bool from_image,
                      const struct cri_spec_users *users, uint32_t *ret_uid, uint32_t *ret_gid,
                      char **ret_name, struct hull_error **err)
{
	const char *colon = strchr(userstr, ':');
	const char *passwd = users ? users->passwd : NULL, *group = users ? users->group : NULL;
	size_t ulen = colon ? (size_t)(colon - userstr) : strlen(userstr);
	uint32_t uid = 0, gid = 0;
	bool uid_numeric = parse_id(userstr, ulen, &uid);
	_cleanup_free_ char *uname = xstrndup(userstr, ulen);

	if (colon && strchr(colon + 1, ':'))
		return hull_error_set(err, -EINVAL, "%s: not a user, uid, user:group or uid:gid",
		                      what);
	if (!uid_numeric) {
		uint32_t pw_gid;
		if (ulen == 0)
			return hull_error_set(err, -EINVAL, "%s: no user before ':'", what);
		if (!passwd)
			return hull_error_set(err, -EINVAL,
			                      "%s: not numeric%s (hull-cri has no /etc/passwd of "
			                      "the image to look the name up in)",
			                      what, from_image ? " and no run_as_user" : "");
		if (!passwd_find(passwd, uname, &uid, &pw_gid, NULL))
			return hull_error_set(err, -EINVAL,
			                      "%s: no user '%.64s' in the image's "
			                      "/etc/passwd%s",
			                      what, uname, from_image ? " and no run_as_user" : "");
		gid = pw_gid;
	} else if (!colon) {
		/* oci.WithUserID: the passwd entry's gid, or 0. */
		if (!passwd || !passwd_find(passwd, NULL, &uid, &gid, ret_name))
			gid = 0;
	}
	if (colon) {
		const char *g = colon + 1;
		if (!parse_id(g, strlen(g), &gid)) {
			if (!*g)
				return hull_error_set(err, -EINVAL, "%s: no group after ':'", what);
			if (!group)
				return hull_error_set(
				    err, -EINVAL,
				    "%s: group '%.64s' is not numeric (hull-cri has "
				    "no /etc/group of the image to look it up in)",
				    what, g);
			if (!group_find(group, g, &gid))
				return hull_error_set(
				    err, -EINVAL, "%s: no group '%.64s' in the image's /etc/group",
				    what, g);
		}
	}
	if (!uid_numeric && ret_name)
		*ret_name = TAKE_PTR(uname);
	*ret_uid = uid;
	*ret_gid = gid;
	return 0;
}

static int id_of(const Runtime__V1__Int64Value *v, const char *field, uint32_t *ret,
                 struct hull_error **err)
{
	if (v->value < 0 || v->value > (int64_t)UINT32_MAX - 1)
		return hull_error_set(err, -EINVAL, "%s: %lld is not a uid or gid", field,
		                      (long long)v->value);
	*ret = (uint32_t)v->value;
	return 0;
}

static int groups_add(uint32_t **gids, size_t *n, const int64_t *groups, size_t n_groups,
                      const char *field, struct hull_error **err)
{
	for (size_t i = 0; i < n_groups; i++) {
		if (groups[i] < 0 || groups[i] > (int64_t)UINT32_MAX - 1)
			return hull_error_set(err, -EINVAL, "%s[%zu]: %lld is not a gid", field, i,
			                      (long long)groups[i]);
		gids_add(gids, n, (uint32_t)groups[i]);
	}
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* process.user; additionalGids sorted and unique, as containerd's mergeGids. */
static json_object *user_json(uint32_t uid, uint32_t gid, uint32_t *gids, size_t n)
{
	json_object *u = json_object_new_object();

	add_int(u, "uid", uid);
	add_int(u, "gid", gid);
	if (n) {
		json_object *a = json_object_new_array();
		qsort(gids, n, sizeof(*gids), cmp_u32);
		for (size_t i = 0; i < n; i++)
			json_object_array_add(a, json_object_new_int64(gids[i]));
		json_object_object_add(u, "additionalGids", a);
	}
	return u;
}

/* ---- environment ------------------------------------------------------------------ */

/* containerd's replaceOrAppendEnvValues as runc's init applies it (each entry set in
 * order): a key already there takes the new value in its place, a new key goes last;
 * "KEY" without '=' removes KEY. */
static void env_set(char ***env, const char *kv)
{
	const char *eq = strchr(kv, '=');
	size_t klen = eq ? (size_t)(eq - kv) : strlen(kv);
	size_t n = strv_length(*env);

	if (klen == 0)
		return;
	for (size_t i = 0; i < n; i++) {
		char *e = (*env)[i];
		if (strncmp(e, kv, klen) != 0 || e[klen] != '=')
			continue;
		free(e);
		if (eq) {
			(*env)[i] = xstrdup(kv);
		} else {
			memmove(&(*env)[i], &(*env)[i + 1], (n - i) * sizeof(char *));
		}
		return;
	}
	if (eq)
		strv_push(env, xstrdup(kv));
}

/* ---- the pod ---------------------------------------------------------------------- */

static const char *mode_name(ns_mode m)
{
	switch (m) {
	case RUNTIME__V1__NAMESPACE_MODE__POD:
		return "POD";
	case RUNTIME__V1__NAMESPACE_MODE__CONTAINER:
		return "CONTAINER";
	case RUNTIME__V1__NAMESPACE_MODE__NODE:
		return "NODE";
	case RUNTIME__V1__NAMESPACE_MODE__TARGET:
		return "TARGET";
	default:
		return "unknown";
	}
}

/* What hull cannot give a pod's or a container's namespaces; field names the
 * namespace_options. */
static int namespaces_check(const Runtime__V1__NamespaceOption *ns, const char *field,
                            bool container, bool host_kernel, struct hull_error **err)
{
	if (!ns)
		return 0;
	if (ns->network == RUNTIME__V1__NAMESPACE_MODE__NODE && !host_kernel)
		return hull_error_set(
		    err, -EINVAL,
		    "%s.network: NODE (hostNetwork) is not supported by hull: the "
		    "pod's VM cannot share the node's network namespace",
		    field);
	if (ns->ipc == RUNTIME__V1__NAMESPACE_MODE__NODE && !host_kernel)
		return hull_error_set(err, -EINVAL,
		                      "%s.ipc: NODE (hostIPC) is not supported by hull: the node's "
		                      "IPC objects cannot be reached from the pod's VM",
		                      field);
	if (ns->pid == RUNTIME__V1__NAMESPACE_MODE__TARGET)
		return hull_error_set(err, -EINVAL,
		                      container ? "%s.pid: TARGET (another container's PID "
		                                  "namespace, '%.64s') is not supported by hull-cri"
		                                : "%s.pid: TARGET is for containers ('%.64s')",
		                      field, str(ns->target_id));
	if (ns->pid != RUNTIME__V1__NAMESPACE_MODE__POD &&
	    ns->pid != RUNTIME__V1__NAMESPACE_MODE__CONTAINER &&
	    ns->pid != RUNTIME__V1__NAMESPACE_MODE__NODE)
		return hull_error_set(err, -EINVAL, "%s.pid: unknown mode %d", field, (int)ns->pid);
	if (ns->userns_options && ns->userns_options->mode != RUNTIME__V1__NAMESPACE_MODE__NODE)
		return hull_error_set(err, -EINVAL,
		                      "%s.userns_options.mode: %s (a user namespace) is not "
		                      "supported by hull-cri",
		                      field, mode_name(ns->userns_options->mode));
	return 0;
}

static int pod_check(const struct cri_spec_pod *pod, struct hull_error **err)
{
	if (!pod || !set(pod->id) || !pod->config)
		return hull_error_set(err, -EINVAL, "pod: no sandbox id or config");
	if (!pod->config->metadata)
		return hull_error_set(err, -EINVAL, "config.metadata: missing");
	if (pod->cgroup_driver && strcmp(pod->cgroup_driver, "cgroupfs") != 0 &&
	    strcmp(pod->cgroup_driver, "systemd") != 0)
		return hull_error_set(err, -EINVAL,
		                      "cgroup driver '%.64s' is neither cgroupfs nor systemd",
		                      pod->cgroup_driver);
	return 0;
}

static const Runtime__V1__LinuxSandboxSecurityContext *pod_sc(const struct cri_spec_pod *pod)
{
	return pod->config->linux ? pod->config->linux->security_context : NULL;
}

/* containerd's getCgroupsPath: under a parent named "*.slice", the systemd form
 * "SLICE:cri-containerd:ID" (SLICE the parent's last component); else PARENT/ID.
 * Without a parent, containerd's default "/k8s.io/ID". */
static int cgroups_path(const struct cri_spec_pod *pod, const char *id, char **ret,
                        struct hull_error **err)
{
	const char *parent = pod->config->linux ? pod->config->linux->cgroup_parent : NULL;
	bool systemd = pod->cgroup_driver && strcmp(pod->cgroup_driver, "systemd") == 0;
	_cleanup_free_ char *clean = NULL, *joined = NULL;
	const char *base;

	if (!set(parent)) {
		*ret = xasprintf("/k8s.io/%s", id);
		return 0;
	}
	clean = path_clean(parent);
	base = strrchr(clean, '/') ? strrchr(clean, '/') + 1 : clean;
	if (ends_with(base, ".slice") && strlen(base) > strlen(".slice")) {
		*ret = xasprintf("%s:cri-containerd:%s", base, id);
		return 0;
	}
	if (systemd)
		return hull_error_set(err, -EINVAL,
		                      "config.linux.cgroup_parent: '%.200s' is not a systemd slice "
		                      "(the cgroup driver is systemd)",
		                      parent);
	if (parent[0] != '/')
		return hull_error_set(
		    err, -EINVAL, "config.linux.cgroup_parent: '%.200s' is not an absolute path",
		    parent);
	joined = xasprintf("%s/%s", clean, id);
	*ret = path_clean(joined);
	return 0;
}

/* The pod's own annotations that are passed on (containerd passes the runtime's
 * pod_annotations; hull's are io.hull.*), then what identifies the pod. */
static json_object *pod_annotations(const struct cri_spec_pod *pod, const char *type)
{
	const Runtime__V1__PodSandboxConfig *c = pod->config;
	json_object *a = json_object_new_object();

	for (size_t i = 0; i < c->n_annotations; i++)
		if (c->annotations[i]->key && strncmp(c->annotations[i]->key, PASSTHROUGH_PREFIX,
		                                      strlen(PASSTHROUGH_PREFIX)) == 0)
			add_str(a, c->annotations[i]->key, str(c->annotations[i]->value));
	add_str(a, ANN "container-type", type);
	add_str(a, ANN "sandbox-id", pod->id);
	add_str(a, ANN "sandbox-namespace", str(c->metadata->namespace_));
	add_str(a, ANN "sandbox-name", str(c->metadata->name));
	add_str(a, ANN "sandbox-uid", str(c->metadata->uid));
	return a;
}

/* ---- mounts ----------------------------------------------------------------------- */

struct mount_def {
	const char *dst, *type, *src;
	const char *opts[8];
};

/* containerd's defaultMounts but /run (the CRI plugin drops it). */
static const struct mount_def default_mounts[] = {
    {"/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}},
    {"/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}},
    {"/dev/pts",
     "devpts",
     "devpts",
     {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
    {"/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
    {"/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}},
    {"/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}},
};
/* Containers also get the cgroup tree read-only (Docker's behaviour); the guest agent
 * mounts its cgroup2 there. */
static const struct mount_def cgroup_mount = {
    "/sys/fs/cgroup", "cgroup", "cgroup", {"nosuid", "noexec", "nodev", "relatime", "ro"}};

/* writable: "ro" becomes "rw" (sysfs and cgroup of a privileged container). */
static json_object *mount_json(const struct mount_def *m, bool writable)
{
	json_object *o = json_object_new_object(), *opts = json_object_new_array();

	add_str(o, "destination", m->dst);
	add_str(o, "type", m->type);
	add_str(o, "source", m->src);
	for (size_t i = 0; i < ELEMENTSOF(m->opts) && m->opts[i]; i++)
		json_object_array_add(
		    opts, json_object_new_string(
		              writable && strcmp(m->opts[i], "ro") == 0 ? "rw" : m->opts[i]));
	json_object_object_add(o, "options", opts);
	return o;
}

static json_object *bind_json(const char *dst, const char *src, const char *const *opts)
{
	json_object *o = json_object_new_object();

	add_str(o, "destination", dst);
	add_str(o, "type", "bind");
	add_str(o, "source", src);
	json_object_object_add(o, "options", strv_json(opts, SIZE_MAX));
	return o;
}

/* A bind the container gets: a CRI mount or one of the pod's files. */
struct bind {
	const char *dst, *src;
	bool readonly;
	Runtime__V1__MountPropagation propagation;
	char *clean;
	size_t depth;
};

static void binds_free(struct bind *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(b[i].clean);
	free(b);
}

/* Security: a CRI mount names a host path; what hull-cri checks here is its form, the
 * shim shares it into the VM and the guest agent binds it. */
static int cri_mount_check(const Runtime__V1__Mount *m, size_t i, struct hull_error **err)
{
	if (!set(m->container_path) || m->container_path[0] != '/')
		return hull_error_set(err, -EINVAL,
		                      "config.mounts[%zu].container_path: '%.200s' is not an "
		                      "absolute path",
		                      i, str(m->container_path));
	if (!set(m->host_path)) {
		if (m->image && set(m->image->image))
			return hull_error_set(err, -EINVAL,
			                      "config.mounts[%zu].image: image volumes ('%.200s') "
			                      "are not supported by hull-cri",
			                      i, m->image->image);
		return hull_error_set(err, -EINVAL, "config.mounts[%zu].host_path: missing", i);
	}
	if (m->recursive_read_only)
		return hull_error_set(err, -EINVAL,
		                      "config.mounts[%zu].recursive_read_only: not supported by "
		                      "hull-cri (containerd 1.6 does not offer it)",
		                      i);
	if (m->n_uidmappings || m->n_gidmappings)
		return hull_error_set(err, -EINVAL,
		                      "config.mounts[%zu]: id-mapped mounts are not supported by "
		                      "hull-cri",
		                      i);
	return 0;
}

static bool binds_have(const struct bind *b, size_t n, const char *clean)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(b[i].clean, clean) == 0)
			return true;
	return false;
}

static void binds_push(struct bind **b, size_t *n, const char *dst, const char *src, bool readonly,
                       Runtime__V1__MountPropagation propagation)
{
	struct bind *e;

	*b = xrealloc(*b, (*n + 1) * sizeof(**b));
	e = &(*b)[(*n)++];
	*e =
	    (struct bind){.dst = dst, .src = src, .readonly = readonly, .propagation = propagation};
	e->clean = path_clean(dst);
	e->depth = path_depth(e->clean);
}

/* pkg/cri/opts WithMounts: the CRI mounts and the pod's files (a CRI mount at the same
 * place wins), sorted by depth so a mount does not hide one below it; the defaults
 * they cover (everything under /dev when /dev is one of them) dropped; then each as
 * an rbind with its propagation. */
static int container_mounts(const struct cri_spec_pod *pod, const Runtime__V1__ContainerConfig *cfg,
                            bool readonly_root, bool privileged, json_object *linux_,
                            json_object **ret, struct hull_error **err)
{
	const struct {
		const char *dst, *src;
		bool readonly;
	} extra[] = {
	    {"/etc/hostname", pod->hostname_path, readonly_root},
	    {"/etc/hosts", pod->hosts_path, readonly_root},
	    {"/etc/resolv.conf", pod->resolv_path, readonly_root},
	    {"/dev/shm", pod->shm_path, false},
	};
	struct bind *b = NULL;
	size_t n = 0, n_cri;
	const char *rootfs_propagation = NULL;
	bool dev_covered;
	json_object *mounts;
	int r;

	for (size_t i = 0; i < cfg->n_mounts; i++) {
		const Runtime__V1__Mount *m = cfg->mounts[i];
		if ((r = cri_mount_check(m, i, err)) < 0) {
			binds_free(b, n);
			return r;
		}
		binds_push(&b, &n, m->container_path, m->host_path, m->readonly, m->propagation);
	}
	n_cri = n;
	for (size_t i = 0; i < ELEMENTSOF(extra); i++) {
		_cleanup_free_ char *clean = path_clean(extra[i].dst);
		if (extra[i].src && !binds_have(b, n_cri, clean))
			binds_push(&b, &n, extra[i].dst, extra[i].src, extra[i].readonly,
			           RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_PRIVATE);
	}
	/* Stable: equal depths keep the order they came in. */
	for (size_t i = 1; i < n; i++)
		for (size_t k = i; k > 0 && b[k - 1].depth > b[k].depth; k--) {
			struct bind t = b[k];
			b[k] = b[k - 1];
			b[k - 1] = t;
		}

	mounts = json_object_new_array();
	dev_covered = binds_have(b, n, "/dev");
	for (size_t i = 0; i <= ELEMENTSOF(default_mounts); i++) {
		const struct mount_def *d =
		    i < ELEMENTSOF(default_mounts) ? &default_mounts[i] : &cgroup_mount;
		if (binds_have(b, n, d->dst) || (dev_covered && strncmp(d->dst, "/dev/", 5) == 0))
			continue;
		json_object_array_add(
		    mounts, mount_json(d, privileged && (strcmp(d->type, "sysfs") == 0 ||
		                                         strcmp(d->type, "cgroup") == 0)));
	}
	for (size_t i = 0; i < n; i++) {
		const char *opts[] = {"rbind", "rprivate", b[i].readonly ? "ro" : "rw", NULL};
		switch (b[i].propagation) {
		case RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_BIDIRECTIONAL:
			/* Mounts made in the guest stay in the guest (docs/kubernetes.md). */
			opts[1] = "rshared";
			rootfs_propagation = "rshared";
			break;
		case RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_HOST_TO_CONTAINER:
			opts[1] = "rslave";
			if (!rootfs_propagation)
				rootfs_propagation = "rslave";
			break;
		default:
			/* containerd: private, and anything unknown as private too. */
			break;
		}
		json_object_array_add(mounts, bind_json(b[i].dst, b[i].src, opts));
	}
	if (rootfs_propagation)
		add_str(linux_, "rootfsPropagation", rootfs_propagation);
	binds_free(b, n);
	*ret = mounts;
	return 0;
}

/* ---- resources -------------------------------------------------------------------- */

/* linux.resources: containerd's deny-all device rule (the guest makes only the
 * devices the spec lists), then what the CRI asks for (pkg/cri/opts WithResources:
 * zero means unset). */
static int resources_json(const Runtime__V1__LinuxContainerResources *res, json_object **ret,
                          struct hull_error **err)
{
	json_object *o = json_object_new_object(), *devs = json_object_new_array(), *dev;
	json_object *cpu = json_object_new_object(), *mem = json_object_new_object();

	dev = json_object_new_object();
	json_object_object_add(dev, "allow", json_object_new_boolean(false));
	add_str(dev, "access", "rwm");
	json_object_array_add(devs, dev);
	json_object_object_add(o, "devices", devs);
	if (res) {
		const char *bad = res->cpu_period < 0               ? "cpu_period"
		                  : res->cpu_quota < -1             ? "cpu_quota"
		                  : res->cpu_shares < 0             ? "cpu_shares"
		                  : res->memory_limit_in_bytes < -1 ? "memory_limit_in_bytes"
		                  : res->memory_swap_limit_in_bytes < -1
		                      ? "memory_swap_limit_in_bytes"
		                      : NULL;
		if (bad) {
			json_object_put(o);
			json_object_put(cpu);
			json_object_put(mem);
			return hull_error_set(err, -EINVAL, "config.linux.resources.%s: negative",
			                      bad);
		}
		if (res->cpu_period)
			add_int(cpu, "period", res->cpu_period);
		if (res->cpu_quota)
			add_int(cpu, "quota", res->cpu_quota);
		if (res->cpu_shares)
			add_int(cpu, "shares", res->cpu_shares);
		if (set(res->cpuset_cpus))
			add_str(cpu, "cpus", res->cpuset_cpus);
		if (set(res->cpuset_mems))
			add_str(cpu, "mems", res->cpuset_mems);
		if (res->memory_limit_in_bytes)
			add_int(mem, "limit", res->memory_limit_in_bytes);
		if (res->memory_swap_limit_in_bytes)
			add_int(mem, "swap", res->memory_swap_limit_in_bytes);
		if (res->n_hugepage_limits) {
			json_object *h = json_object_new_array();
			for (size_t i = 0; i < res->n_hugepage_limits; i++) {
				json_object *e = json_object_new_object();
				add_str(e, "pageSize", str(res->hugepage_limits[i]->page_size));
				json_object_object_add(
				    e, "limit",
				    json_object_new_uint64(res->hugepage_limits[i]->limit));
				json_object_array_add(h, e);
			}
			json_object_object_add(o, "hugepageLimits", h);
		}
		if (res->n_unified) {
			json_object *u = json_object_new_object();
			for (size_t i = 0; i < res->n_unified; i++)
				add_str(u, str(res->unified[i]->key), str(res->unified[i]->value));
			json_object_object_add(o, "unified", u);
		}
	}
	if (json_object_object_length(cpu))
		json_object_object_add(o, "cpu", cpu);
	else
		json_object_put(cpu);
	if (json_object_object_length(mem))
		json_object_object_add(o, "memory", mem);
	else
		json_object_put(mem);
	*ret = o;
	return 0;
}

/* ---- the specs -------------------------------------------------------------------- */

static json_object *default_paths(bool masked)
{
	/* containerd's default spec. */
	static const char *const masked_paths[] = {"/proc/acpi",
	                                           "/proc/asound",
	                                           "/proc/kcore",
	                                           "/proc/keys",
	                                           "/proc/latency_stats",
	                                           "/proc/timer_list",
	                                           "/proc/timer_stats",
	                                           "/proc/sched_debug",
	                                           "/sys/firmware",
	                                           "/proc/scsi",
	                                           NULL};
	static const char *const readonly_paths[] = {
	    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", NULL};
	return strv_json(masked ? masked_paths : readonly_paths, SIZE_MAX);
}

static char *spec_string(json_object *root)
{
	return xstrdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN |
	                                                        JSON_C_TO_STRING_NOSLASHESCAPE));
}

int cri_sandbox_spec(const struct cri_spec_pod *pod, const char *pause_path, char **ret_json,
                     struct hull_error **err)
{
	_cleanup_(json_object_putp) json_object *root = NULL;
	_cleanup_free_ char *cgroups = NULL;
	_cleanup_free_ uint32_t *gids = NULL;
	const Runtime__V1__LinuxSandboxSecurityContext *sc;
	const Runtime__V1__NamespaceOption *ns;
	json_object *process, *o, *linux_, *a, *seccomp = NULL;
	uint32_t uid = 0, gid = 0;
	size_t n_gids = 0;
	int r;

	if ((r = pod_check(pod, err)) < 0)
		return r;
	if (!set(pause_path) || pause_path[0] != '/')
		return hull_error_set(err, -EINVAL, "pause binary '%.200s': not an absolute path",
		                      str(pause_path));
	sc = pod_sc(pod);
	ns = sc ? sc->namespace_options : NULL;
	if ((r = namespaces_check(ns, SC ".namespace_options", false, pod->host_kernel, err)) < 0)
		return r;
	if ((r = cgroups_path(pod, pod->id, &cgroups, err)) < 0)
		return r;

	/* The user: run_as_user and run_as_group, numeric (the pause image has no
	 * /etc/passwd: a uid alone gets gid 0). */
	if (sc && sc->run_as_group && !sc->run_as_user)
		return hull_error_set(err, -EINVAL, SC ".run_as_group: set without run_as_user");
	if (sc && sc->run_as_user && (r = id_of(sc->run_as_user, SC ".run_as_user", &uid, err)) < 0)
		return r;
	if (sc && sc->run_as_group &&
	    (r = id_of(sc->run_as_group, SC ".run_as_group", &gid, err)) < 0)
		return r;
	if (sc && (r = groups_add(&gids, &n_gids, sc->supplemental_groups,
	                          sc->n_supplemental_groups, SC ".supplemental_groups", err)) < 0)
		return r;
	if (sc) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
		const char *legacy = sc->seccomp_profile_path;
#pragma GCC diagnostic pop
		if ((r = seccomp_of(sc->seccomp, legacy, SC, sc->privileged, CAPS_DEFAULT,
		                    pod->seccomp_localhost, &seccomp, err)) < 0)
			return r;
	}

	root = json_object_new_object();
	add_str(root, "ociVersion", OCI_VERSION);

	process = json_object_new_object();
	json_object_object_add(process, "user", user_json(uid, gid, gids, n_gids));
	a = json_object_new_array();
	json_object_array_add(a, json_object_new_string(pause_path));
	json_object_object_add(process, "args", a);
	a = json_object_new_array();
	json_object_array_add(a, json_object_new_string(DEFAULT_PATH_ENV));
	json_object_object_add(process, "env", a);
	add_str(process, "cwd", "/");
	json_object_object_add(process, "capabilities", caps_json(CAPS_DEFAULT));
	/* containerd leaves the default spec's no_new_privs on for the sandbox. */
	json_object_object_add(process, "noNewPrivileges", json_object_new_boolean(true));
	add_int(process, "oomScoreAdj",
	        pod->host_kernel ? MAX(SANDBOX_OOM_SCORE_ADJ, pod->oom_score_adj_floor)
	                         : SANDBOX_OOM_SCORE_ADJ);
	json_object_object_add(root, "process", process);

	o = json_object_new_object();
	add_str(o, "path", "rootfs");
	json_object_object_add(o, "readonly", json_object_new_boolean(true));
	json_object_object_add(root, "root", o);
	if (set(pod->config->hostname))
		add_str(root, "hostname", pod->config->hostname);

	a = json_object_new_array();
	for (size_t i = 0; i < ELEMENTSOF(default_mounts); i++)
		if (!pod->shm_path || strcmp(default_mounts[i].dst, "/dev/shm") != 0)
			json_object_array_add(a, mount_json(&default_mounts[i], false));
	if (pod->shm_path) {
		static const char *const opts[] = {"rbind", "ro",     "nosuid",
		                                   "nodev", "noexec", NULL};
		json_object_array_add(a, bind_json("/dev/shm", pod->shm_path, opts));
	}
	if (pod->resolv_path) {
		static const char *const opts[] = {"rbind", "ro", NULL};
		json_object_array_add(a, bind_json("/etc/resolv.conf", pod->resolv_path, opts));
	}
	json_object_object_add(root, "mounts", a);
	json_object_object_add(root, "annotations", pod_annotations(pod, "sandbox"));
	add_str(json_object_object_get(root, "annotations"), ANN "sandbox-log-directory",
	        str(pod->config->log_directory));

	linux_ = json_object_new_object();
	{
		json_object *res = NULL, *cpu = json_object_new_object();
		(void)resources_json(NULL, &res, NULL);
		add_int(cpu, "shares", SANDBOX_CPU_SHARES);
		json_object_object_add(res, "cpu", cpu);
		json_object_object_add(linux_, "resources", res);
	}
	add_str(linux_, "cgroupsPath", cgroups);
	a = json_object_new_array();
	/* hostPID: no PID namespace of its own, so the pod shares the VM's. */
	if (!ns || ns->pid != RUNTIME__V1__NAMESPACE_MODE__NODE)
		json_object_array_add(a, ns_json("pid", NULL));
	/* On the host's kernel, hostIPC and hostNetwork (with its UTS, as containerd
	 * does) are the node's: no entry. */
	if (!ns || ns->ipc != RUNTIME__V1__NAMESPACE_MODE__NODE)
		json_object_array_add(a, ns_json("ipc", NULL));
	if (!ns || ns->network != RUNTIME__V1__NAMESPACE_MODE__NODE)
		json_object_array_add(a, ns_json("uts", NULL));
	json_object_array_add(a, ns_json("mount", NULL));
	if (!ns || ns->network != RUNTIME__V1__NAMESPACE_MODE__NODE)
		json_object_array_add(a, ns_json("network", pod->netns_path));
	json_object_object_add(linux_, "namespaces", a);
	json_object_object_add(linux_, "maskedPaths", default_paths(true));
	json_object_object_add(linux_, "readonlyPaths", default_paths(false));
	if (pod->config->linux && pod->config->linux->n_sysctls) {
		o = json_object_new_object();
		for (size_t i = 0; i < pod->config->linux->n_sysctls; i++)
			add_str(o, str(pod->config->linux->sysctls[i]->key),
			        str(pod->config->linux->sysctls[i]->value));
		json_object_object_add(linux_, "sysctl", o);
	}
	if (seccomp)
		json_object_object_add(linux_, "seccomp", seccomp);
	json_object_object_add(root, "linux", linux_);

	*ret_json = spec_string(root);
	return 0;
}

/* customopts.WithProcessArgs (Docker's rules): a command replaces the image's
 * entrypoint and cmd, args follow it; args alone replace cmd after the entrypoint;
 * neither runs the image's entrypoint and cmd. An entrypoint of one empty string is
 * none. */
static int process_args(const Runtime__V1__ContainerConfig *cfg, const struct image_config *img,
                        json_object **ret, struct hull_error **err)
{
	json_object *a = json_object_new_array();
	char *const *ep = img ? img->entrypoint : NULL, *const *cmd = img ? img->cmd : NULL;

	if (cfg->n_command) {
		for (size_t i = 0; i < cfg->n_command; i++)
			json_object_array_add(a, json_object_new_string(str(cfg->command[i])));
	} else if (ep && !(ep[0] && !ep[0][0] && !ep[1])) {
		for (size_t i = 0; ep[i]; i++)
			json_object_array_add(a, json_object_new_string(ep[i]));
	}
	if (cfg->n_args) {
		for (size_t i = 0; i < cfg->n_args; i++)
			json_object_array_add(a, json_object_new_string(str(cfg->args[i])));
	} else if (!cfg->n_command && cmd) {
		for (size_t i = 0; cmd[i]; i++)
			json_object_array_add(a, json_object_new_string(cmd[i]));
	}
	if (json_object_array_length(a) == 0) {
		json_object_put(a);
		return hull_error_set(err, -EINVAL,
		                      "config.command: no command, and the image has no "
		                      "entrypoint or cmd");
	}
	if (!*json_object_get_string(json_object_array_get_idx(a, 0))) {
		json_object_put(a);
		return hull_error_set(err, -EINVAL,
		                      "config.command: the program to run (the first of the "
		                      "command, or the image's entrypoint and cmd) is empty");
	}
	*ret = a;
	return 0;
}

/* process.user: oci.WithUser of what the CRI asks for (generateUserString:
 * run_as_username or run_as_user, ":" run_as_group), else the image's USER; then the
 * user's groups from /etc/group and supplemental_groups. containerd looks the groups
 * up for run_as_username, else for run_as_user (0 when unset); hull-cri for the user
 * the container runs as, which is the same whenever the kubelet is the client (it
 * sets run_as_user or run_as_username from the image's USER). */
static int process_user(const Runtime__V1__LinuxContainerSecurityContext *sc,
                        const struct image_config *img, const struct cri_spec_users *users,
                        json_object **ret, struct hull_error **err)
{
	_cleanup_free_ char *userstr = NULL, *what = NULL, *name = NULL;
	_cleanup_free_ uint32_t *gids = NULL;
	uint32_t uid = 0, gid = 0, g;
	size_t n_gids = 0;
	bool from_image = false;
	int r;

	if (sc && sc->run_as_user && (r = id_of(sc->run_as_user, SC ".run_as_user", &g, err)) < 0)
		return r;
	if (sc && sc->run_as_group &&
	    (r = id_of(sc->run_as_group, SC ".run_as_group", &g, err)) < 0)
		return r;
	if (sc && set(sc->run_as_username)) {
		userstr = xstrdup(sc->run_as_username);
		what = xasprintf(SC ".run_as_username '%.64s'", sc->run_as_username);
	} else if (sc && sc->run_as_user) {
		userstr = xasprintf("%lld", (long long)sc->run_as_user->value);
		what = xstrdup(SC ".run_as_user");
	}
	if (!userstr && sc && sc->run_as_group)
		return hull_error_set(
		    err, -EINVAL, SC ".run_as_group: set without run_as_user or run_as_username");
	if (userstr && sc && sc->run_as_group) {
		char *s = xasprintf("%s:%lld", userstr, (long long)sc->run_as_group->value);
		free(userstr);
		userstr = s;
	}
	if (!userstr && img && set(img->user)) {
		userstr = xstrdup(img->user);
		what = xasprintf("config.image user '%.64s'", img->user);
		from_image = true;
	}
	if (userstr &&
	    (r = user_parse(userstr, what, from_image, users, &uid, &gid, &name, err)) < 0)
		return r;
	if (users && users->group) {
		if (!name && users->passwd) {
			uint32_t u = uid, ignored;
			(void)passwd_find(users->passwd, NULL, &u, &ignored, &name);
		}
		if (name)
			group_memberships(users->group, name, &gids, &n_gids);
	}
	if (sc && (r = groups_add(&gids, &n_gids, sc->supplemental_groups,
	                          sc->n_supplemental_groups, SC ".supplemental_groups", err)) < 0)
		return r;
	*ret = user_json(uid, gid, gids, n_gids);
	return 0;
}

/* PATH, TERM for a terminal, HOSTNAME, the image's env, the config's envs: each over
 * what came before (containerd's order). */
static json_object *process_env(const struct cri_spec_pod *pod,
                                const Runtime__V1__ContainerConfig *cfg,
                                const struct image_config *img)
{
	_cleanup_strv_free_ char **env = NULL;

	env_set(&env, DEFAULT_PATH_ENV);
	if (cfg->tty)
		strv_push(&env, xstrdup("TERM=xterm"));
	/* containerd falls back to the node's hostname; a pure function has none, and
	 * the kubelet names every pod with a network of its own. */
	if (set(pod->config->hostname)) {
		_cleanup_free_ char *h = xasprintf("HOSTNAME=%s", pod->config->hostname);
		env_set(&env, h);
	}
	for (size_t i = 0; img && img->env && img->env[i]; i++)
		env_set(&env, img->env[i]);
	for (size_t i = 0; i < cfg->n_envs; i++) {
		_cleanup_free_ char *kv =
		    xasprintf("%s=%s", str(cfg->envs[i]->key), str(cfg->envs[i]->value));
		env_set(&env, kv);
	}
	return strv_json((const char *const *)env, SIZE_MAX);
}

int cri_container_spec_users(const struct cri_spec_pod *pod, const char *ctr_id,
                             const Runtime__V1__ContainerConfig *cfg,
                             const struct image_config *img, const char *image_name,
                             const struct cri_spec_users *users, char **ret_json,
                             struct hull_error **err)
{
	_cleanup_(json_object_putp) json_object *root = NULL;
	_cleanup_(json_object_putp) json_object *args = NULL, *user = NULL, *seccomp = NULL,
	                                        *res = NULL;
	_cleanup_free_ char *cgroups = NULL, *pid_path = NULL;
	const Runtime__V1__LinuxContainerSecurityContext *sc;
	const Runtime__V1__LinuxSandboxSecurityContext *psc;
	const Runtime__V1__NamespaceOption *ns;
	json_object *process, *o, *linux_, *a, *mounts = NULL;
	const char *cwd;
	bool privileged;
	uint64_t caps = 0;
	int r;

	if ((r = pod_check(pod, err)) < 0)
		return r;
	if (!set(ctr_id) || !cfg)
		return hull_error_set(err, -EINVAL, "container: no id or config");
	if (!pod->sandbox_pid)
		return hull_error_set(err, -EINVAL,
		                      "pod '%.64s': no sandbox task pid for the container to join",
		                      pod->id);
	if (!cfg->metadata || !set(cfg->metadata->name))
		return hull_error_set(err, -EINVAL, "config.metadata.name: missing");
	sc = cfg->linux ? cfg->linux->security_context : NULL;
	psc = pod_sc(pod);
	ns = sc ? sc->namespace_options : NULL;
	privileged = sc && sc->privileged;
	if (privileged && !(psc && psc->privileged))
		return hull_error_set(err, -EINVAL,
		                      SC ".privileged: a privileged container in a pod that is "
		                         "not privileged");
	if ((r = namespaces_check(ns, SC ".namespace_options", true, pod->host_kernel, err)) < 0)
		return r;
	if (cfg->n_devices)
		return hull_error_set(err, -EINVAL,
		                      "config.devices[0]: host device '%.200s' is not supported by "
		                      "hull-cri",
		                      str(cfg->devices[0]->host_path));
	if (cfg->n_cdi_devices)
		return hull_error_set(
		    err, -EINVAL, "config.CDI_devices[0]: '%.200s' is not supported by hull-cri",
		    str(cfg->cdi_devices[0]->name));
	cwd = set(cfg->working_dir)      ? cfg->working_dir
	      : img && set(img->workdir) ? img->workdir
	                                 : "/";
	if (cwd[0] != '/')
		return hull_error_set(err, -EINVAL, "%s: '%.200s' is not an absolute path",
		                      set(cfg->working_dir) ? "config.working_dir"
		                                            : "config.image working directory",
		                      cwd);
	if ((r = process_args(cfg, img, &args, err)) < 0 ||
	    (r = process_user(sc, img, users, &user, err)) < 0 || (r = caps_of(sc, &caps, err)) < 0)
		return r;
	if (sc) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
		const char *legacy = sc->seccomp_profile_path;
#pragma GCC diagnostic pop
		if ((r = seccomp_of(sc->seccomp, legacy, SC, privileged, caps,
		                    users ? users->seccomp_localhost : NULL, &seccomp, err)) < 0)
			return r;
	}
	if (cfg->linux && cfg->linux->resources) {
		int64_t adj = cfg->linux->resources->oom_score_adj;
		if (adj < -1000 || adj > 1000)
			return hull_error_set(
			    err, -EINVAL,
			    "config.linux.resources.oom_score_adj: %lld is outside "
			    "-1000..1000",
			    (long long)adj);
	}
	if ((r = resources_json(cfg->linux ? cfg->linux->resources : NULL, &res, err)) < 0 ||
	    (r = cgroups_path(pod, ctr_id, &cgroups, err)) < 0)
		return r;

	root = json_object_new_object();
	linux_ = json_object_new_object();
	if ((r = container_mounts(pod, cfg, sc && sc->readonly_rootfs, privileged, linux_, &mounts,
	                          err)) < 0) {
		json_object_put(linux_);
		return r;
	}
	add_str(root, "ociVersion", OCI_VERSION);

	process = json_object_new_object();
	json_object_object_add(process, "terminal", json_object_new_boolean(cfg->tty));
	json_object_object_add(process, "user", TAKE_PTR(user));
	json_object_object_add(process, "args", TAKE_PTR(args));
	json_object_object_add(process, "env", process_env(pod, cfg, img));
	add_str(process, "cwd", cwd);
	json_object_object_add(process, "capabilities", caps_json(caps));
	json_object_object_add(process, "noNewPrivileges",
	                       json_object_new_boolean(sc && sc->no_new_privs));
	if (cfg->linux && cfg->linux->resources)
		add_int(process, "oomScoreAdj",
		        pod->host_kernel ? MAX(cfg->linux->resources->oom_score_adj,
		                               (int64_t)pod->oom_score_adj_floor)
		                         : cfg->linux->resources->oom_score_adj);
	json_object_object_add(root, "process", process);

	o = json_object_new_object();
	add_str(o, "path", "rootfs");
	json_object_object_add(o, "readonly", json_object_new_boolean(sc && sc->readonly_rootfs));
	json_object_object_add(root, "root", o);
	/* No hostname: the container is in the sandbox's UTS namespace, which has it. */
	json_object_object_add(root, "mounts", mounts);

	o = pod_annotations(pod, "container");
	for (size_t i = 0; i < cfg->n_annotations; i++)
		if (cfg->annotations[i]->key &&
		    strncmp(cfg->annotations[i]->key, PASSTHROUGH_PREFIX,
		            strlen(PASSTHROUGH_PREFIX)) == 0)
			add_str(o, cfg->annotations[i]->key, str(cfg->annotations[i]->value));
	/* io.hull.* cannot pose as io.kubernetes.cri.*, whatever their order. */
	add_str(o, ANN "container-name", cfg->metadata->name);
	add_str(o, ANN "image-name", str(image_name));
	json_object_object_add(root, "annotations", o);

	json_object_object_add(linux_, "resources", TAKE_PTR(res));
	add_str(linux_, "cgroupsPath", cgroups);
	/* The sandbox task's namespaces by its guest pid (pod/task-spec.c): the shim
	 * reports guest pids, so /proc/PID/ns/... resolves in the guest. The network
	 * namespace is the VM's own, whatever path names it (the shim drops it):
	 * containerd writes /proc/PID/ns/net, hull-cri the CNI namespace, a path that
	 * means the same on the host, where the shim's delete sweeps it. */
	a = json_object_new_array();
	pid_path = xasprintf("/proc/%u/ns/pid", pod->sandbox_pid);
	const Runtime__V1__NamespaceOption *pns =
	    pod->config->linux && pod->config->linux->security_context
	        ? pod->config->linux->security_context->namespace_options
	        : NULL;
	bool host_net =
	    pod->host_kernel && pns && pns->network == RUNTIME__V1__NAMESPACE_MODE__NODE;
	bool host_ipc = pod->host_kernel && pns && pns->ipc == RUNTIME__V1__NAMESPACE_MODE__NODE;
	bool host_pid = pod->host_kernel && ns && ns->pid == RUNTIME__V1__NAMESPACE_MODE__NODE;
	if (ns && ns->pid == RUNTIME__V1__NAMESPACE_MODE__CONTAINER) {
		json_object_array_add(a, ns_json("pid", NULL));
	} else if (!host_pid) {
		/* POD, and NODE (hostPID) in a VM: the sandbox's, which is the VM's for
		 * hostPID. On the host's kernel hostPID is the node's: no entry. */
		json_object_array_add(a, ns_json("pid", pid_path));
	}
	{
		_cleanup_free_ char *ipc = xasprintf("/proc/%u/ns/ipc", pod->sandbox_pid);
		_cleanup_free_ char *uts = xasprintf("/proc/%u/ns/uts", pod->sandbox_pid);
		if (!host_ipc)
			json_object_array_add(a, ns_json("ipc", ipc));
		if (!host_net)
			json_object_array_add(a, ns_json("uts", uts));
	}
	json_object_array_add(a, ns_json("mount", NULL));
	if (pod->netns_path && !host_net) {
		json_object_array_add(a, ns_json("network", pod->netns_path));
	} else if (pod->host_kernel && !host_net) {
		/* No CNI namespace: the sandbox's own, which on the host is a real one. */
		_cleanup_free_ char *net = xasprintf("/proc/%u/ns/net", pod->sandbox_pid);
		json_object_array_add(a, ns_json("network", net));
	}
	json_object_object_add(linux_, "namespaces", a);
	if (!privileged) {
		json_object_object_add(
		    linux_, "maskedPaths",
		    sc && sc->n_masked_paths
		        ? strv_json((const char *const *)sc->masked_paths, sc->n_masked_paths)
		        : default_paths(true));
		json_object_object_add(
		    linux_, "readonlyPaths",
		    sc && sc->n_readonly_paths
		        ? strv_json((const char *const *)sc->readonly_paths, sc->n_readonly_paths)
		        : default_paths(false));
	}
	if (seccomp)
		json_object_object_add(linux_, "seccomp", TAKE_PTR(seccomp));
	json_object_object_add(root, "linux", linux_);

	*ret_json = spec_string(root);
	return 0;
}

int cri_container_spec(const struct cri_spec_pod *pod, const char *ctr_id,
                       const Runtime__V1__ContainerConfig *cfg, const struct image_config *img,
                       const char *image_name, char **ret_json, struct hull_error **err)
{
	return cri_container_spec_users(pod, ctr_id, cfg, img, image_name, NULL, ret_json, err);
}
