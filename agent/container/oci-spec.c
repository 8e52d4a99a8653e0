/* SPDX-License-Identifier: MIT */
/* OCI runtime-spec config.json -> struct oci_spec, with every field type- and
 * range-checked and errors naming the field's path. Pure: no system calls, so the
 * fuzzer runs it as is. */
#include "oci-spec.h"

#include <json-c/json.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include "json.h"
#include "util.h"

#define MAX_STRV 4096
#define MAX_STR (128u << 10)
#define MAX_MOUNTS 512
#define MAX_RULES 4096
#define MAX_DEVICES 1024

static const char *const cap_names[] = {
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
};

int oci_cap_from_name(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(cap_names); i++)
		if (strcmp(name, cap_names[i]) == 0)
			return (int)i;
	return -EINVAL;
}

static const struct {
	const char *name;
	int resource;
} rlimit_names[] = {
    {"RLIMIT_AS", RLIMIT_AS},
    {"RLIMIT_CORE", RLIMIT_CORE},
    {"RLIMIT_CPU", RLIMIT_CPU},
    {"RLIMIT_DATA", RLIMIT_DATA},
    {"RLIMIT_FSIZE", RLIMIT_FSIZE},
    {"RLIMIT_LOCKS", RLIMIT_LOCKS},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
    {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_NPROC", RLIMIT_NPROC},
    {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
    {"RLIMIT_RTTIME", RLIMIT_RTTIME},
    {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_STACK", RLIMIT_STACK},
};

static const struct {
	const char *name;
	int type;
} ns_names[] = {
    {"pid", CLONE_NEWPID},       {"network", CLONE_NEWNET}, {"mount", CLONE_NEWNS},
    {"ipc", CLONE_NEWIPC},       {"uts", CLONE_NEWUTS},     {"user", CLONE_NEWUSER},
    {"cgroup", CLONE_NEWCGROUP},
};

static const struct {
	const char *name;
	bool clear;
	unsigned long flag;
	bool propagation;
} mount_opts[] = {
    {"ro", false, MS_RDONLY, false},
    {"rw", true, MS_RDONLY, false},
    {"nosuid", false, MS_NOSUID, false},
    {"suid", true, MS_NOSUID, false},
    {"nodev", false, MS_NODEV, false},
    {"dev", true, MS_NODEV, false},
    {"noexec", false, MS_NOEXEC, false},
    {"exec", true, MS_NOEXEC, false},
    {"sync", false, MS_SYNCHRONOUS, false},
    {"async", true, MS_SYNCHRONOUS, false},
    {"dirsync", false, MS_DIRSYNC, false},
    {"remount", false, MS_REMOUNT, false},
    {"mand", false, MS_MANDLOCK, false},
    {"nomand", true, MS_MANDLOCK, false},
    {"atime", true, MS_NOATIME, false},
    {"noatime", false, MS_NOATIME, false},
    {"diratime", true, MS_NODIRATIME, false},
    {"nodiratime", false, MS_NODIRATIME, false},
    {"relatime", false, MS_RELATIME, false},
    {"norelatime", true, MS_RELATIME, false},
    {"strictatime", false, MS_STRICTATIME, false},
    {"nostrictatime", true, MS_STRICTATIME, false},
    {"bind", false, MS_BIND, false},
    {"rbind", false, MS_BIND | MS_REC, false},
    {"private", false, MS_PRIVATE, true},
    {"rprivate", false, MS_PRIVATE | MS_REC, true},
    {"shared", false, MS_SHARED, true},
    {"rshared", false, MS_SHARED | MS_REC, true},
    {"slave", false, MS_SLAVE, true},
    {"rslave", false, MS_SLAVE | MS_REC, true},
    {"unbindable", false, MS_UNBINDABLE, true},
    {"runbindable", false, MS_UNBINDABLE | MS_REC, true},
};

static const char *const seccomp_actions[] = {
    "SCMP_ACT_KILL",  "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE",        "SCMP_ACT_ALLOW",       "SCMP_ACT_LOG",
};

static const char *const seccomp_ops[_OCI_OP_MAX] = {
    [OCI_OP_NE] = "SCMP_CMP_NE",
    [OCI_OP_LT] = "SCMP_CMP_LT",
    [OCI_OP_LE] = "SCMP_CMP_LE",
    [OCI_OP_EQ] = "SCMP_CMP_EQ",
    [OCI_OP_GE] = "SCMP_CMP_GE",
    [OCI_OP_GT] = "SCMP_CMP_GT",
    [OCI_OP_MASKED_EQ] = "SCMP_CMP_MASKED_EQ",
};

static const char *const seccomp_arches[] = {
    "SCMP_ARCH_X86",     "SCMP_ARCH_X86_64",   "SCMP_ARCH_X32",         "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64", "SCMP_ARCH_MIPS",     "SCMP_ARCH_MIPS64",      "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",  "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",   "SCMP_ARCH_PPC64LE",  "SCMP_ARCH_S390",        "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",  "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64",
};

static const char *const seccomp_flags[] = {
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
};

static bool in_list(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (list[i] && strcmp(s, list[i]) == 0)
			return true;
	return false;
}

/* ---- typed access with paths ------------------------------------------------------ */

static const char *type_name(json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "boolean";
	case json_type_double:
		return "number";
	case json_type_int:
		return "integer";
	case json_type_object:
		return "object";
	case json_type_array:
		return "array";
	default:
		return "string";
	}
}

static const char *want_name(json_type t)
{
	switch (t) {
	case json_type_boolean:
		return "a boolean";
	case json_type_int:
		return "an integer";
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	default:
		return "a string";
	}
}

/* Member key of obj with type want: 1 and *ret when present, 0 when absent or null,
 * < 0 with *err set when present with another type. */
static int member(json_object *obj, const char *path, const char *key, json_type want,
                  json_object **ret, struct hull_error **err)
{
	json_object *o = NULL;

	*ret = NULL;
	if (!obj || !json_object_object_get_ex(obj, key, &o) || !o)
		return 0;
	if (!json_object_is_type(o, want))
		return hull_error_set(err, -EINVAL, "%s%s%s: want %s, got %s", path,
		                      *path ? "." : "", key, want_name(want), type_name(o));
	*ret = o;
	return 1;
}

static int get_string(json_object *obj, const char *path, const char *key, char **ret,
                      struct hull_error **err)
{
	json_object *o;
	int r = member(obj, path, key, json_type_string, &o, err);
	if (r <= 0)
		return r;
	if ((size_t)json_object_get_string_len(o) > MAX_STR ||
	    strlen(json_object_get_string(o)) != (size_t)json_object_get_string_len(o))
		return hull_error_set(err, -EINVAL, "%s.%s: too long or holds a NUL byte", path,
		                      key);
	free(*ret);
	*ret = xstrdup(json_object_get_string(o));
	return 1;
}

static int get_bool(json_object *obj, const char *path, const char *key, bool *ret,
                    struct hull_error **err)
{
	json_object *o;
	int r = member(obj, path, key, json_type_boolean, &o, err);
	if (r > 0)
		*ret = json_object_get_boolean(o);
	return r;
}

static int get_i64(json_object *obj, const char *path, const char *key, int64_t min, int64_t max,
                   int64_t *ret, struct hull_error **err)
{
	json_object *o;
	int64_t v;
	int r = member(obj, path, key, json_type_int, &o, err);
	if (r <= 0)
		return r;
	errno = 0;
	v = json_object_get_int64(o);
	if (errno || v < min || v > max ||
	    (v == INT64_MAX && json_object_get_uint64(o) > INT64_MAX))
		return hull_error_set(err, -ERANGE, "%s.%s: %s out of range %lld..%lld", path, key,
		                      json_object_get_string(o), (long long)min, (long long)max);
	*ret = v;
	return 1;
}

static int get_u64(json_object *obj, const char *path, const char *key, uint64_t max, uint64_t *ret,
                   struct hull_error **err)
{
	json_object *o;
	int r = member(obj, path, key, json_type_int, &o, err);
	uint64_t v;
	if (r <= 0)
		return r;
	if (json_object_get_int64(o) < 0)
		return hull_error_set(err, -ERANGE, "%s.%s: %s is negative", path, key,
		                      json_object_get_string(o));
	v = json_object_get_int64(o) == INT64_MAX ? json_object_get_uint64(o)
	                                          : (uint64_t)json_object_get_int64(o);
	if (v > max)
		return hull_error_set(err, -ERANGE, "%s.%s: %s is over %llu", path, key,
		                      json_object_get_string(o), (unsigned long long)max);
	*ret = v;
	return 1;
}

static int get_u32(json_object *obj, const char *path, const char *key, uint32_t *ret,
                   struct hull_error **err)
{
	uint64_t v;
	int r = get_u64(obj, path, key, UINT32_MAX, &v, err);
	if (r > 0)
		*ret = (uint32_t)v;
	return r;
}

/* An array of strings; each element checked. */
static int get_strv(json_object *obj, const char *path, const char *key, char ***ret,
                    struct hull_error **err)
{
	json_object *a;
	size_t n;
	int r = member(obj, path, key, json_type_array, &a, err);

	if (r <= 0)
		return r;
	n = json_object_array_length(a);
	if (n > MAX_STRV)
		return hull_error_set(err, -E2BIG, "%s.%s: %zu entries, at most %d", path, key, n,
		                      MAX_STRV);
	strv_free(*ret);
	*ret = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(a, i);
		if (!e || !json_object_is_type(e, json_type_string))
			return hull_error_set(err, -EINVAL, "%s.%s[%zu]: want a string, got %s",
			                      path, key, i, e ? type_name(e) : "null");
		if ((size_t)json_object_get_string_len(e) > MAX_STR ||
		    strlen(json_object_get_string(e)) != (size_t)json_object_get_string_len(e))
			return hull_error_set(
			    err, -EINVAL, "%s.%s[%zu]: too long or holds a NUL byte", path, key, i);
		(*ret)[i] = xstrdup(json_object_get_string(e));
	}
	return 1;
}

/* An array of objects: calls each(elem, path_of_elem, index). */
static int
each_object(json_object *obj, const char *path, const char *key, size_t max, size_t *ret_n,
            int (*each)(json_object *, const char *, size_t, void *, struct hull_error **),
            void *userdata, struct hull_error **err)
{
	json_object *a;
	size_t n;
	int r = member(obj, path, key, json_type_array, &a, err);

	*ret_n = 0;
	if (r <= 0)
		return r;
	n = json_object_array_length(a);
	if (n > max)
		return hull_error_set(err, -E2BIG, "%s.%s: %zu entries, at most %zu", path, key, n,
		                      max);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(a, i);
		_cleanup_free_ char *p = xasprintf("%s%s%s[%zu]", path, *path ? "." : "", key, i);
		if (!e || !json_object_is_type(e, json_type_object))
			return hull_error_set(err, -EINVAL, "%s: want an object, got %s", p,
			                      e ? type_name(e) : "null");
		r = each(e, p, i, userdata, err);
		if (r < 0)
			return r;
		*ret_n = i + 1;
	}
	return 1;
}

static bool path_escapes(const char *p)
{
	for (const char *s = p; (s = strstr(s, "..")); s += 2)
		if ((s == p || s[-1] == '/') && (s[2] == '\0' || s[2] == '/'))
			return true;
	return false;
}

static int check_abs_path(const char *path, const char *field, const char *value,
                          struct hull_error **err)
{
	if (value[0] != '/')
		return hull_error_set(err, -EINVAL, "%s.%s: '%.256s' is not an absolute path", path,
		                      field, value);
	if (path_escapes(value))
		return hull_error_set(err, -EINVAL, "%s.%s: '%.256s' escapes the rootfs with '..'",
		                      path, field, value);
	return 0;
}

/* ---- sections --------------------------------------------------------------------- */

static int parse_rlimit(json_object *o, const char *path, size_t i, void *userdata,
                        struct hull_error **err)
{
	struct oci_spec *s = userdata;
	_cleanup_free_ char *type = NULL;
	struct oci_rlimit *rl = &s->rlimits[i];
	int r;

	if ((r = get_string(o, path, "type", &type, err)) <= 0)
		return r < 0 ? r : hull_error_set(err, -EINVAL, "%s.type: missing", path);
	rl->resource = -1;
	for (size_t j = 0; j < ELEMENTSOF(rlimit_names); j++)
		if (strcmp(type, rlimit_names[j].name) == 0)
			rl->resource = rlimit_names[j].resource;
	if (rl->resource < 0)
		return hull_error_set(err, -EINVAL, "%s.type: unknown rlimit '%.64s'", path, type);
	for (size_t j = 0; j < i; j++)
		if (s->rlimits[j].resource == rl->resource)
			return hull_error_set(err, -EINVAL, "%s.type: '%s' given twice", path,
			                      type);
	if ((r = get_u64(o, path, "soft", UINT64_MAX, &rl->soft, err)) < 0 ||
	    (r = get_u64(o, path, "hard", UINT64_MAX, &rl->hard, err)) < 0)
		return r;
	if (rl->soft > rl->hard)
		return hull_error_set(err, -EINVAL, "%s: soft limit above hard limit", path);
	return 0;
}

static int parse_process(json_object *root, struct oci_spec *s, struct hull_error **err)
{
	json_object *p, *user, *caps, *rl, *cs;
	size_t n;
	int r;

	if ((r = member(root, "", "process", json_type_object, &p, err)) <= 0)
		return r < 0 ? r : hull_error_set(err, -EINVAL, "process: missing");
	if ((r = get_strv(p, "process", "args", &s->args, err)) < 0)
		return r;
	if (!s->args || !s->args[0] || !s->args[0][0])
		return hull_error_set(err, -EINVAL, "process.args: missing or empty");
	if ((r = get_strv(p, "process", "env", &s->env, err)) < 0)
		return r;
	if (!s->env)
		s->env = xcalloc(1, sizeof(char *));
	for (size_t i = 0; s->env[i]; i++)
		if (!strchr(s->env[i], '=') || s->env[i][0] == '=')
			return hull_error_set(err, -EINVAL,
			                      "process.env[%zu]: '%.128s' is not KEY=VALUE", i,
			                      s->env[i]);
	if ((r = get_string(p, "process", "cwd", &s->cwd, err)) < 0)
		return r;
	if (!s->cwd)
		return hull_error_set(err, -EINVAL, "process.cwd: missing");
	if ((r = check_abs_path("process", "cwd", s->cwd, err)) < 0)
		return r;
	if ((r = get_bool(p, "process", "terminal", &s->terminal, err)) < 0 ||
	    (r = get_bool(p, "process", "noNewPrivileges", &s->no_new_privileges, err)) < 0)
		return r;
	if ((r = member(p, "process", "consoleSize", json_type_object, &cs, err)) < 0)
		return r;
	if (cs && ((r = get_u32(cs, "process.consoleSize", "height", &s->rows, err)) < 0 ||
	           (r = get_u32(cs, "process.consoleSize", "width", &s->cols, err)) < 0))
		return r;
	if (s->rows > 65535 || s->cols > 65535)
		return hull_error_set(err, -ERANGE, "process.consoleSize: over 65535");

	if ((r = member(p, "process", "user", json_type_object, &user, err)) < 0)
		return r;
	if (!user)
		return hull_error_set(err, -EINVAL, "process.user: missing");
	if ((r = get_u32(user, "process.user", "uid", &s->uid, err)) < 0 ||
	    (r = get_u32(user, "process.user", "gid", &s->gid, err)) < 0)
		return r;
	if ((r = get_u32(user, "process.user", "umask", &s->umask, err)) < 0)
		return r;
	s->has_umask = r > 0;
	if (s->umask > 0777)
		return hull_error_set(err, -ERANGE, "process.user.umask: %o is not a mode",
		                      s->umask);
	{
		json_object *g;
		if ((r = member(user, "process.user", "additionalGids", json_type_array, &g, err)) <
		    0)
			return r;
		if (g) {
			n = json_object_array_length(g);
			if (n > 256)
				return hull_error_set(err, -E2BIG,
				                      "process.user.additionalGids: more than 256");
			s->additional_gids = xcalloc(n, sizeof(uint32_t));
			for (size_t i = 0; i < n; i++) {
				json_object *e = json_object_array_get_idx(g, i);
				int64_t v = e && json_object_is_type(e, json_type_int)
				                ? json_object_get_int64(e)
				                : -1;
				if (v < 0 || v > UINT32_MAX - 1)
					return hull_error_set(
					    err, -EINVAL,
					    "process.user.additionalGids[%zu]: want a gid", i);
				s->additional_gids[i] = (uint32_t)v;
			}
			s->n_additional_gids = n;
		}
	}

	if ((r = member(p, "process", "capabilities", json_type_object, &caps, err)) < 0)
		return r;
	if (caps) {
		static const char *const sets[_OCI_CAP_SET_MAX] = {
		    "bounding", "effective", "inheritable", "permitted", "ambient"};
		s->has_caps = true;
		for (int i = 0; i < _OCI_CAP_SET_MAX; i++) {
			_cleanup_strv_free_ char **names = NULL;
			if ((r = get_strv(caps, "process.capabilities", sets[i], &names, err)) < 0)
				return r;
			for (size_t j = 0; names && names[j]; j++) {
				int c = oci_cap_from_name(names[j]);
				if (c < 0)
					return hull_error_set(err, -EINVAL,
					                      "process.capabilities.%s[%zu]: "
					                      "unknown capability '%.64s'",
					                      sets[i], j, names[j]);
				s->caps[i] |= 1ull << c;
			}
		}
	}
	if ((r = member(p, "process", "rlimits", json_type_array, &rl, err)) < 0)
		return r;
	if (rl) {
		s->rlimits =
		    xcalloc(MIN(json_object_array_length(rl), (size_t)64) + 1, sizeof(*s->rlimits));
		if ((r = each_object(p, "process", "rlimits", 64, &s->n_rlimits, parse_rlimit, s,
		                     err)) < 0)
			return r;
	}
	{
		int64_t adj;
		if ((r = get_i64(p, "process", "oomScoreAdj", -1000, 1000, &adj, err)) < 0)
			return r;
		s->has_oom_score_adj = r > 0;
		s->oom_score_adj = (int)adj;
	}
	return 0;
}

static int parse_mount(json_object *o, const char *path, size_t i, void *userdata,
                       struct hull_error **err)
{
	struct oci_spec *s = userdata;
	struct oci_mount *m = &s->mounts[i];
	_cleanup_strv_free_ char **opts = NULL;
	char *data = NULL;
	int r;

	if ((r = get_string(o, path, "destination", &m->destination, err)) <= 0)
		return r < 0 ? r : hull_error_set(err, -EINVAL, "%s.destination: missing", path);
	if ((r = check_abs_path(path, "destination", m->destination, err)) < 0)
		return r;
	for (size_t j = 0; j < i; j++)
		if (strcmp(s->mounts[j].destination, m->destination) == 0)
			return hull_error_set(err, -EINVAL,
			                      "%s.destination: '%.256s' is mounted twice", path,
			                      m->destination);
	if ((r = get_string(o, path, "type", &m->type, err)) < 0 ||
	    (r = get_string(o, path, "source", &m->source, err)) < 0 ||
	    (r = get_strv(o, path, "options", &opts, err)) < 0)
		return r;
	for (size_t j = 0; opts && opts[j]; j++) {
		bool known = false;
		for (size_t k = 0; k < ELEMENTSOF(mount_opts); k++) {
			if (strcmp(opts[j], mount_opts[k].name) != 0)
				continue;
			known = true;
			if (mount_opts[k].propagation)
				m->propagation = mount_opts[k].flag;
			else if (mount_opts[k].clear)
				m->flags &= ~mount_opts[k].flag;
			else
				m->flags |= mount_opts[k].flag;
		}
		if (!known) {
			/* Filesystem-specific: passed on as mount data. */
			char *n = data ? xasprintf("%s,%s", data, opts[j]) : xstrdup(opts[j]);
			free(data);
			data = n;
		}
	}
	m->data = data;
	m->bind = (m->flags & MS_BIND) || (m->type && strcmp(m->type, "bind") == 0);
	if (m->bind && !m->source)
		return hull_error_set(err, -EINVAL, "%s.source: a bind mount needs a source", path);
	if (!m->bind && !m->type)
		return hull_error_set(err, -EINVAL, "%s.type: missing", path);
	return 0;
}

static int parse_namespace(json_object *o, const char *path, size_t i, void *userdata,
                           struct hull_error **err)
{
	struct oci_spec *s = userdata;
	struct oci_namespace *ns = &s->namespaces[i];
	_cleanup_free_ char *type = NULL;
	int r;

	if ((r = get_string(o, path, "type", &type, err)) <= 0)
		return r < 0 ? r : hull_error_set(err, -EINVAL, "%s.type: missing", path);
	ns->type = 0;
	for (size_t j = 0; j < ELEMENTSOF(ns_names); j++)
		if (strcmp(type, ns_names[j].name) == 0)
			ns->type = ns_names[j].type;
	if (!ns->type)
		return hull_error_set(err, -EINVAL, "%s.type: unknown namespace '%.64s'", path,
		                      type);
	for (size_t j = 0; j < i; j++)
		if (s->namespaces[j].type == ns->type)
			return hull_error_set(err, -EINVAL, "%s.type: '%s' given twice", path,
			                      type);
	if ((r = get_string(o, path, "path", &ns->path, err)) < 0)
		return r;
	if (ns->path && ns->path[0] != '/')
		return hull_error_set(err, -EINVAL, "%s.path: '%.256s' is not absolute", path,
		                      ns->path);
	return 0;
}

static int parse_device(json_object *o, const char *path, size_t i, void *userdata,
                        struct hull_error **err)
{
	struct oci_spec *s = userdata;
	struct oci_device *d = &s->devices[i];
	_cleanup_free_ char *type = NULL;
	int r;

	if ((r = get_string(o, path, "path", &d->path, err)) <= 0)
		return r < 0 ? r : hull_error_set(err, -EINVAL, "%s.path: missing", path);
	if ((r = check_abs_path(path, "path", d->path, err)) < 0)
		return r;
	if ((r = get_string(o, path, "type", &type, err)) <= 0)
		return r < 0 ? r : hull_error_set(err, -EINVAL, "%s.type: missing", path);
	if (strlen(type) != 1 || !strchr("cbup", type[0]))
		return hull_error_set(err, -EINVAL, "%s.type: '%.8s' is not c, b, u or p", path,
		                      type);
	d->type = type[0];
	if ((r = get_u32(o, path, "major", &d->major, err)) < 0 ||
	    (r = get_u32(o, path, "minor", &d->minor, err)) < 0 ||
	    (r = get_u32(o, path, "fileMode", &d->mode, err)) < 0 ||
	    (r = get_u32(o, path, "uid", &d->uid, err)) < 0 ||
	    (r = get_u32(o, path, "gid", &d->gid, err)) < 0)
		return r;
	if (d->mode > 07777)
		return hull_error_set(err, -ERANGE, "%s.fileMode: %o is not a mode", path, d->mode);
	return 0;
}

static int parse_seccomp_arg(json_object *o, const char *path, size_t i, void *userdata,
                             struct hull_error **err)
{
	struct oci_seccomp_rule *rule = userdata;
	struct oci_seccomp_arg *a = &rule->args[i];
	_cleanup_free_ char *op = NULL;
	uint64_t idx = 0;
	int r;

	if ((r = get_u64(o, path, "index", 5, &idx, err)) <= 0)
		return r < 0 ? r : hull_error_set(err, -EINVAL, "%s.index: missing", path);
	a->index = (unsigned)idx;
	if ((r = get_u64(o, path, "value", UINT64_MAX, &a->value, err)) < 0 ||
	    (r = get_u64(o, path, "valueTwo", UINT64_MAX, &a->value_two, err)) < 0)
		return r;
	if ((r = get_string(o, path, "op", &op, err)) <= 0)
		return r < 0 ? r : hull_error_set(err, -EINVAL, "%s.op: missing", path);
	for (int j = 0; j < _OCI_OP_MAX; j++)
		if (strcmp(op, seccomp_ops[j]) == 0) {
			a->op = (enum oci_seccomp_op)j;
			return 0;
		}
	return hull_error_set(err, -EINVAL, "%s.op: unknown operator '%.64s'", path, op);
}

static int parse_seccomp_rule(json_object *o, const char *path, size_t i, void *userdata,
                              struct hull_error **err)
{
	struct oci_seccomp *sc = userdata;
	struct oci_seccomp_rule *rule = &sc->rules[i];
	json_object *args;
	int r;

	if ((r = get_strv(o, path, "names", &rule->names, err)) < 0)
		return r;
	if (!rule->names || !rule->names[0])
		return hull_error_set(err, -EINVAL, "%s.names: missing or empty", path);
	if ((r = get_string(o, path, "action", &rule->action_name, err)) <= 0)
		return r < 0 ? r : hull_error_set(err, -EINVAL, "%s.action: missing", path);
	if (!in_list(rule->action_name, seccomp_actions, ELEMENTSOF(seccomp_actions)))
		return hull_error_set(err, -EINVAL, "%s.action: unknown action '%.64s'", path,
		                      rule->action_name);
	if ((r = get_u32(o, path, "errnoRet", &rule->errno_ret, err)) < 0)
		return r;
	rule->has_errno = r > 0;
	if ((r = member(o, path, "args", json_type_array, &args, err)) < 0)
		return r;
	if (args) {
		rule->args = xcalloc(MIN(json_object_array_length(args), (size_t)6) + 1,
		                     sizeof(*rule->args));
		if ((r = each_object(o, path, "args", 6, &rule->n_args, parse_seccomp_arg, rule,
		                     err)) < 0)
			return r;
	}
	return 0;
}

static int parse_seccomp(json_object *linux_o, struct oci_spec *s, struct hull_error **err)
{
	json_object *o, *rules;
	struct oci_seccomp *sc;
	int r;

	if ((r = member(linux_o, "linux", "seccomp", json_type_object, &o, err)) <= 0)
		return r;
	sc = s->seccomp = xcalloc(1, sizeof(*sc));
	if ((r = get_string(o, "linux.seccomp", "defaultAction", &sc->default_action, err)) <= 0)
		return r < 0 ? r
		             : hull_error_set(err, -EINVAL, "linux.seccomp.defaultAction: missing");
	if (!in_list(sc->default_action, seccomp_actions, ELEMENTSOF(seccomp_actions)))
		return hull_error_set(err, -EINVAL,
		                      "linux.seccomp.defaultAction: unknown action '%.64s'",
		                      sc->default_action);
	if ((r = get_u32(o, "linux.seccomp", "defaultErrnoRet", &sc->default_errno, err)) < 0)
		return r;
	sc->has_default_errno = r > 0;
	if ((r = get_strv(o, "linux.seccomp", "architectures", &sc->architectures, err)) < 0 ||
	    (r = get_strv(o, "linux.seccomp", "flags", &sc->flags, err)) < 0)
		return r;
	for (size_t i = 0; sc->architectures && sc->architectures[i]; i++)
		if (!in_list(sc->architectures[i], seccomp_arches, ELEMENTSOF(seccomp_arches)))
			return hull_error_set(err, -EINVAL,
			                      "linux.seccomp.architectures[%zu]: unknown '%.64s'",
			                      i, sc->architectures[i]);
	for (size_t i = 0; sc->flags && sc->flags[i]; i++)
		if (!in_list(sc->flags[i], seccomp_flags, ELEMENTSOF(seccomp_flags)))
			return hull_error_set(err, -EINVAL,
			                      "linux.seccomp.flags[%zu]: unknown '%.64s'", i,
			                      sc->flags[i]);
	if ((r = member(o, "linux.seccomp", "syscalls", json_type_array, &rules, err)) < 0)
		return r;
	if (rules) {
		sc->rules = xcalloc(MIN(json_object_array_length(rules), (size_t)MAX_RULES) + 1,
		                    sizeof(*sc->rules));
		if ((r = each_object(o, "linux.seccomp", "syscalls", MAX_RULES, &sc->n_rules,
		                     parse_seccomp_rule, sc, err)) < 0)
			return r;
	}
	return 0;
}

static int parse_resources(json_object *linux_o, struct oci_spec *s, struct hull_error **err)
{
	json_object *res, *mem, *cpu, *pids;
	struct oci_resources *rs = &s->resources;
	int r;

	if ((r = member(linux_o, "linux", "resources", json_type_object, &res, err)) <= 0)
		return r;
	s->has_resources = true;
	if ((r = member(res, "linux.resources", "memory", json_type_object, &mem, err)) < 0)
		return r;
	if (mem) {
		const char *p = "linux.resources.memory";
		if ((r = get_i64(mem, p, "limit", -1, INT64_MAX, &rs->memory_limit, err)) < 0)
			return r;
		rs->has_memory_limit = r > 0;
		if ((r = get_i64(mem, p, "swap", -1, INT64_MAX, &rs->memory_swap, err)) < 0)
			return r;
		rs->has_memory_swap = r > 0;
		if ((r = get_i64(mem, p, "reservation", -1, INT64_MAX, &rs->memory_reservation,
		                 err)) < 0)
			return r;
		rs->has_memory_reservation = r > 0;
		if (rs->has_memory_limit && rs->has_memory_swap && rs->memory_limit > 0 &&
		    rs->memory_swap > 0 && rs->memory_swap < rs->memory_limit)
			return hull_error_set(
			    err, -EINVAL, "%s.swap: below limit (swap counts memory plus swap)", p);
	}
	if ((r = member(res, "linux.resources", "cpu", json_type_object, &cpu, err)) < 0)
		return r;
	if (cpu) {
		const char *p = "linux.resources.cpu";
		if ((r = get_u64(cpu, p, "shares", 262144, &rs->cpu_shares, err)) < 0)
			return r;
		rs->has_cpu_shares = r > 0;
		if ((r = get_i64(cpu, p, "quota", -1, INT64_MAX, &rs->cpu_quota, err)) < 0)
			return r;
		rs->has_cpu_quota = r > 0;
		if ((r = get_u64(cpu, p, "period", 1000000, &rs->cpu_period, err)) < 0)
			return r;
		rs->has_cpu_period = r > 0;
		if ((r = get_string(cpu, p, "cpus", &rs->cpuset_cpus, err)) < 0 ||
		    (r = get_string(cpu, p, "mems", &rs->cpuset_mems, err)) < 0)
			return r;
	}
	if ((r = member(res, "linux.resources", "pids", json_type_object, &pids, err)) < 0)
		return r;
	if (pids) {
		if ((r = get_i64(pids, "linux.resources.pids", "limit", -1, INT64_MAX,
		                 &rs->pids_limit, err)) < 0)
			return r;
		rs->has_pids_limit = r > 0;
	}
	return 0;
}

static int parse_kv(json_object *obj, const char *path, const char *key, char ***keys,
                    char ***values, struct hull_error **err)
{
	json_object *o;
	size_t n = 0;
	int r = member(obj, path, key, json_type_object, &o, err);

	if (r <= 0)
		return r;
	*keys = xcalloc((size_t)json_object_object_length(o) + 1, sizeof(char *));
	*values = xcalloc((size_t)json_object_object_length(o) + 1, sizeof(char *));
	json_object_object_foreach(o, k, v)
	{
		if (!v || !json_object_is_type(v, json_type_string))
			return hull_error_set(err, -EINVAL, "%s.%s.%.128s: want a string, got %s",
			                      path, key, k, v ? type_name(v) : "null");
		if (n >= MAX_STRV)
			return hull_error_set(err, -E2BIG, "%s.%s: more than %d entries", path, key,
			                      MAX_STRV);
		(*keys)[n] = xstrdup(k);
		(*values)[n] = xstrdup(json_object_get_string(v));
		n++;
	}
	return 1;
}

static int parse_propagation(const char *s, unsigned long *ret)
{
	for (size_t k = 0; k < ELEMENTSOF(mount_opts); k++)
		if (mount_opts[k].propagation && strcmp(s, mount_opts[k].name) == 0) {
			*ret = mount_opts[k].flag;
			return 0;
		}
	return -EINVAL;
}

struct mapping_ctx {
	struct oci_id_mapping *m;
};

static int parse_mapping(json_object *o, const char *path, size_t i, void *userdata,
                         struct hull_error **err)
{
	struct mapping_ctx *ctx = userdata;
	struct oci_id_mapping *m = &ctx->m[i];
	int r;

	if ((r = get_u32(o, path, "containerID", &m->container_id, err)) <= 0 ||
	    (r = get_u32(o, path, "hostID", &m->host_id, err)) <= 0 ||
	    (r = get_u32(o, path, "size", &m->size, err)) <= 0)
		return r < 0 ? r
		             : hull_error_set(err, -EINVAL,
		                              "%s: wants containerID, hostID and size", path);
	if (m->size == 0 || (uint64_t)m->container_id + m->size > UINT32_MAX ||
	    (uint64_t)m->host_id + m->size > UINT32_MAX)
		return hull_error_set(err, -ERANGE, "%s: empty or past 2^32", path);
	return 0;
}

static int parse_mappings(json_object *l, const char *key, struct oci_id_mapping **ret,
                          size_t *ret_n, struct hull_error **err)
{
	json_object *a;
	struct mapping_ctx ctx;
	int r = member(l, "linux", key, json_type_array, &a, err);
	if (r <= 0)
		return r;
	/* The kernel takes at most 340 lines per map. */
	ctx.m = *ret = xcalloc(MIN(json_object_array_length(a), (size_t)340) + 1, sizeof(**ret));
	return each_object(l, "linux", key, 340, ret_n, parse_mapping, &ctx, err);
}

static int parse_linux(json_object *root, struct oci_spec *s, struct hull_error **err)
{
	json_object *l;
	_cleanup_free_ char *prop = NULL;
	int r;

	if ((r = member(root, "", "linux", json_type_object, &l, err)) <= 0)
		return r;
	{
		json_object *a;
		if ((r = member(l, "linux", "namespaces", json_type_array, &a, err)) < 0)
			return r;
		if (a) {
			s->namespaces = xcalloc(MIN(json_object_array_length(a), (size_t)16) + 1,
			                        sizeof(*s->namespaces));
			if ((r = each_object(l, "linux", "namespaces", 16, &s->n_namespaces,
			                     parse_namespace, s, err)) < 0)
				return r;
		}
		if ((r = member(l, "linux", "devices", json_type_array, &a, err)) < 0)
			return r;
		if (a) {
			s->devices =
			    xcalloc(MIN(json_object_array_length(a), (size_t)MAX_DEVICES) + 1,
			            sizeof(*s->devices));
			if ((r = each_object(l, "linux", "devices", MAX_DEVICES, &s->n_devices,
			                     parse_device, s, err)) < 0)
				return r;
		}
	}
	if ((r = parse_mappings(l, "uidMappings", &s->uid_mappings, &s->n_uid_mappings, err)) < 0 ||
	    (r = parse_mappings(l, "gidMappings", &s->gid_mappings, &s->n_gid_mappings, err)) < 0)
		return r;
	if ((r = get_strv(l, "linux", "maskedPaths", &s->masked_paths, err)) < 0 ||
	    (r = get_strv(l, "linux", "readonlyPaths", &s->readonly_paths, err)) < 0)
		return r;
	for (size_t i = 0; s->masked_paths && s->masked_paths[i]; i++)
		if ((r = check_abs_path("linux", "maskedPaths[]", s->masked_paths[i], err)) < 0)
			return r;
	for (size_t i = 0; s->readonly_paths && s->readonly_paths[i]; i++)
		if ((r = check_abs_path("linux", "readonlyPaths[]", s->readonly_paths[i], err)) < 0)
			return r;
	if ((r = parse_kv(l, "linux", "sysctl", &s->sysctl_keys, &s->sysctl_values, err)) < 0)
		return r;
	for (size_t i = 0; s->sysctl_keys && s->sysctl_keys[i]; i++)
		if (strstr(s->sysctl_keys[i], "..") || strchr(s->sysctl_keys[i], '/') ||
		    !s->sysctl_keys[i][0])
			return hull_error_set(err, -EINVAL,
			                      "linux.sysctl: '%.128s' is not a sysctl name",
			                      s->sysctl_keys[i]);
	if ((r = get_string(l, "linux", "rootfsPropagation", &prop, err)) < 0)
		return r;
	if (prop && parse_propagation(prop, &s->rootfs_propagation) < 0)
		return hull_error_set(err, -EINVAL, "linux.rootfsPropagation: unknown '%.64s'",
		                      prop);
	if ((r = parse_resources(l, s, err)) < 0)
		return r;
	return parse_seccomp(l, s, err);
}

int oci_spec_parse(const char *json, size_t len, struct oci_spec *ret, struct hull_error **err)
{
	json_object *root, *o;
	int r;

	*ret = (struct oci_spec){0};
	if (len > OCI_MAX_CONFIG)
		return hull_error_set(err, -E2BIG, "config.json: %zu bytes, at most %u", len,
		                      OCI_MAX_CONFIG);
	r = json_parse(json, len, 64, false, &root, err);
	if (r < 0)
		return hull_error_prefix(err, "config.json");
	if (!json_object_is_type(root, json_type_object)) {
		r = hull_error_set(err, -EINVAL, "config.json: want an object, got %s",
		                   type_name(root));
		goto out;
	}
	if ((r = parse_process(root, ret, err)) < 0)
		goto out;
	if ((r = member(root, "", "root", json_type_object, &o, err)) < 0)
		goto out;
	if (o && ((r = get_string(o, "root", "path", &ret->root_path, err)) < 0 ||
	          (r = get_bool(o, "root", "readonly", &ret->root_readonly, err)) < 0))
		goto out;
	if ((r = get_string(root, "", "hostname", &ret->hostname, err)) < 0)
		goto out;
	if (ret->hostname && strlen(ret->hostname) > 64) {
		r = hull_error_set(err, -EINVAL, "hostname: longer than 64 bytes");
		goto out;
	}
	if ((r = member(root, "", "mounts", json_type_array, &o, err)) < 0)
		goto out;
	if (o) {
		ret->mounts = xcalloc(MIN(json_object_array_length(o), (size_t)MAX_MOUNTS) + 1,
		                      sizeof(*ret->mounts));
		/* On failure the entry that failed may hold allocations: oci_spec_done()
		 * frees up to the first all-NULL entry (the arrays have one spare). */
		if ((r = each_object(root, "", "mounts", MAX_MOUNTS, &ret->n_mounts, parse_mount,
		                     ret, err)) < 0)
			goto out;
	}
	if ((r = parse_linux(root, ret, err)) < 0)
		goto out;
	r = parse_kv(root, "", "annotations", &ret->annotation_keys, &ret->annotation_values, err);
	if (r > 0)
		r = 0;
out:
	json_object_put(root);
	if (r < 0)
		oci_spec_done(ret);
	return r < 0 ? r : 0;
}

/* A JSON fragment (a "process" or a linux.resources object) parsed as it would be in
 * a whole spec: wrapped under wrap_key in a new object and handed to parse, so checks
 * and field paths are the same. */
static int parse_fragment(const char *json, size_t len, const char *what, const char *wrap_key,
                          int (*parse)(json_object *, struct oci_spec *, struct hull_error **),
                          struct oci_spec *ret, struct hull_error **err)
{
	json_object *frag, *wrap;
	int r;

	*ret = (struct oci_spec){0};
	if (len > OCI_MAX_CONFIG)
		return hull_error_set(err, -E2BIG, "%s: %zu bytes, at most %u", what, len,
		                      OCI_MAX_CONFIG);
	r = json_parse(json, len, 64, false, &frag, err);
	if (r < 0)
		return hull_error_prefix(err, "%s", what);
	wrap = json_object_new_object();
	json_object_object_add(wrap, wrap_key, frag);
	r = parse(wrap, ret, err);
	json_object_put(wrap);
	if (r < 0)
		oci_spec_done(ret);
	return r < 0 ? r : 0;
}

int oci_process_parse(const char *json, size_t len, struct oci_spec *ret, struct hull_error **err)
{
	return parse_fragment(json, len, "process", "process", parse_process, ret, err);
}

int oci_resources_parse(const char *json, size_t len, struct oci_spec *ret, struct hull_error **err)
{
	return parse_fragment(json, len, "resources", "resources", parse_resources, ret, err);
}

void oci_spec_done(struct oci_spec *s)
{
	strv_free(s->args);
	strv_free(s->env);
	free(s->cwd);
	free(s->additional_gids);
	free(s->rlimits);
	free(s->root_path);
	free(s->hostname);
	for (size_t i = 0; s->mounts && (i < s->n_mounts || s->mounts[i].destination); i++) {
		free(s->mounts[i].destination);
		free(s->mounts[i].type);
		free(s->mounts[i].source);
		free(s->mounts[i].data);
	}
	free(s->mounts);
	for (size_t i = 0; s->namespaces && (i < s->n_namespaces || s->namespaces[i].path); i++)
		free(s->namespaces[i].path);
	free(s->namespaces);
	free(s->uid_mappings);
	free(s->gid_mappings);
	strv_free(s->masked_paths);
	strv_free(s->readonly_paths);
	for (size_t i = 0; s->devices && (i < s->n_devices || s->devices[i].path); i++)
		free(s->devices[i].path);
	free(s->devices);
	strv_free(s->sysctl_keys);
	strv_free(s->sysctl_values);
	free(s->resources.cpuset_cpus);
	free(s->resources.cpuset_mems);
	if (s->seccomp) {
		struct oci_seccomp *sc = s->seccomp;
		free(sc->default_action);
		strv_free(sc->architectures);
		strv_free(sc->flags);
		for (size_t i = 0; sc->rules && (i < sc->n_rules || sc->rules[i].names ||
		                                 sc->rules[i].action_name);
		     i++) {
			strv_free(sc->rules[i].names);
			free(sc->rules[i].action_name);
			free(sc->rules[i].args);
		}
		free(sc->rules);
		free(sc);
	}
	strv_free(s->annotation_keys);
	strv_free(s->annotation_values);
	*s = (struct oci_spec){0};
}
